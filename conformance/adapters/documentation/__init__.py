"""What each built-in framework's own documentation says about every convention of the
reference (``conformance.reference.CONVENTION_VALUES``).

Every framework documents every key, whether or not its value is the reference's canonical
one: a spec whose ``reference:`` picks other conventions must still find each framework's own
value here, or that framework's documented behaviour would read as an undocumented divergence.

A value is in the reference's vocabulary, for a neutral spec run through that framework's
adapter: the adapters translate (Paddle's and Keras' momentum = 1 - update weight, Paddle's
dropout ``mode``), so a value can follow from the documentation *and* the translation; ``says``
then tells both. ``link`` is the framework's official API page that states it, ``fix`` what a
user porting between frameworks does to get the same behaviour (empty where nothing needs
doing). Where the documentation is silent, the entry is ``Documented.silent(...)``: no value,
no link, and ``says`` names what was read.

Each framework's table is a module of this package, named after the framework
(``documentation/torch.py`` holds ``TORCH``); ``DOCUMENTED`` below maps every built-in adapter's
name to its table. A new adapter adds its module and one entry there.

This package imports nothing heavy (no numpy, no framework): the rest of the kit and the tests
read it without any framework installed. ``conformance.adapters.base`` re-exports
``Documented``.
"""

from __future__ import annotations

from conformance.adapters.documentation.documented import Documented
from conformance.adapters.documentation.flax import FLAX, FLAX_NNX
from conformance.adapters.documentation.keras3 import KERAS_JAX, KERAS_TORCH
from conformance.adapters.documentation.onnxruntime import ONNXRUNTIME
from conformance.adapters.documentation.paddle import PADDLE
from conformance.adapters.documentation.tf import TF
from conformance.adapters.documentation.tf_keras import TF_KERAS
from conformance.adapters.documentation.torch import TORCH

__all__ = ["DOCUMENTED", "Documented"]

# framework name (the adapter's ``name``) -> convention key -> what its documentation says
DOCUMENTED: dict[str, dict[str, Documented]] = {
    "torch": TORCH,
    "paddle": PADDLE,
    "tf": TF,
    "tf_keras": TF_KERAS,
    "onnxruntime": ONNXRUNTIME,
    "keras-torch": KERAS_TORCH,
    "keras-jax": KERAS_JAX,
    "flax": FLAX,
    "flax-nnx": FLAX_NNX,
}
