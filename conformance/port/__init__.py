"""Porting BatchNorm and Dropout between PyTorch, Paddle and Keras: translate a construction
(``translate``), convert a layer's state (``convert_state``), and measure what no argument
fixes (``conformance port``). Pure Python and numpy: frameworks run only in worker processes
and subprocesses.

The names below load on first use: every ``conformance`` command imports this package for
its argument parser, and ``conformance run`` must be able to start its framework workers
before numpy and the rest are imported.
"""

from __future__ import annotations

import importlib
from typing import Any

_WHERE = {
    "PortError": "conformance.port.parse",
    "StateConversion": "conformance.port.state",
    "StateError": "conformance.port.state",
    "adjust_variance": "conformance.port.state",
    "convert_state": "conformance.port.state",
    "Translation": "conformance.port.translation",
    "translate": "conformance.port.translation",
    "translate_params": "conformance.port.translation",
}

__all__ = ["PortError", "StateConversion", "StateError", "Translation", "adjust_variance", "convert_state",
           "translate", "translate_params"]


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module 'conformance.port' has no attribute {name!r}")
    value = getattr(importlib.import_module(_WHERE[name]), name)
    globals()[name] = value
    return value
