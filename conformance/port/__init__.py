"""Porting BatchNorm and Dropout between PyTorch, Paddle and Keras: translate a construction
(``translate``), convert a layer's state (``convert_state``), and measure what no argument
fixes (``conformance port``). Pure Python and numpy: frameworks run only in worker processes
and subprocesses."""

from conformance.port.parse import PortError
from conformance.port.state import (
           StateConversion,
           StateError,
           adjust_variance,
           convert_state,
)
from conformance.port.translate import Translation, translate, translate_params

__all__ = ["PortError", "StateConversion", "StateError", "Translation", "adjust_variance", "convert_state",
           "translate", "translate_params"]
