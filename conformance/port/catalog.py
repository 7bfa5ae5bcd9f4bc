"""What the porter knows of each framework's BatchNorm and Dropout API: the classes and
functions, their parameters in signature order, and their defaults.

The signatures are those of torch 2.13, paddlepaddle 3.3 and Keras 3 (TF 2.21). The defaults
here only say what an omitted argument means when parsing a construction; the defaults the
frameworks really use are measured by the probe cases (``bn.default_eps``,
``bn.default_momentum``) and the porter checks them against these (``conformance port``
prints a warning when they disagree).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

FRAMEWORKS = ("torch", "paddle", "tf")
ALIASES = {"keras": "tf", "tensorflow": "tf", "pytorch": "torch", "paddlepaddle": "paddle"}
LABEL = {"torch": "PyTorch", "paddle": "Paddle", "tf": "Keras"}


class Required:
    """The marker of a parameter without a default."""

    def __repr__(self) -> str:
        return "<required>"


REQUIRED: Any = Required()

# how an argument is read: "value" must be a literal (numbers, strings, booleans, None,
# lists); "tensor" is kept as source text (functional forms' inputs); "opaque" is any
# expression, translated only as a note (initializers, regularizers, names).
ArgKind = Literal["value", "tensor", "opaque"]


@dataclass(frozen=True)
class Param:
    name: str
    default: Any = REQUIRED
    kind: ArgKind = "value"


@dataclass(frozen=True)
class Entry:
    """One class (``form="layer"``) or function (``form="function"``) of a framework."""

    framework: str
    name: str
    qualified: str
    kind: Literal["batch_norm", "dropout"]
    form: Literal["layer", "function"]
    params: tuple[Param, ...]
    rank: int | None = None  # None: any rank (the input decides)
    granularity: Literal["element", "channel"] = "element"
    extra_keywords: tuple[str, ...] = ()  # accepted through **kwargs (Keras' base Layer)

    def defaults(self) -> dict[str, Any]:
        return {p.name: p.default for p in self.params}


def _p(*spec: tuple[Any, ...] | str) -> tuple[Param, ...]:
    return tuple(Param(s) if isinstance(s, str) else Param(*s) for s in spec)


_TORCH_BN = _p("num_features", ("eps", 1e-5), ("momentum", 0.1), ("affine", True),
               ("track_running_stats", True), ("device", None, "opaque"), ("dtype", None, "opaque"),
               ("bias", True))
_TORCH_DROP = _p(("p", 0.5), ("inplace", False))
_TORCH_FDROP = _p(("input", REQUIRED, "tensor"), ("p", 0.5), ("training", True, "opaque"), ("inplace", False))
_PADDLE_BN = _p("num_features", ("momentum", 0.9), ("epsilon", 1e-5), ("weight_attr", None, "opaque"),
                ("bias_attr", None, "opaque"))
_PADDLE_BN_TAIL = _p(("use_global_stats", None), ("name", None, "opaque"))
_KERAS_KW = ("name", "dtype", "trainable")

ENTRIES: tuple[Entry, ...] = (
    # --- PyTorch --------------------------------------------------------------------------
    Entry("torch", "BatchNorm1d", "torch.nn.BatchNorm1d", "batch_norm", "layer", _TORCH_BN, rank=2),
    Entry("torch", "BatchNorm2d", "torch.nn.BatchNorm2d", "batch_norm", "layer", _TORCH_BN, rank=4),
    Entry("torch", "BatchNorm3d", "torch.nn.BatchNorm3d", "batch_norm", "layer", _TORCH_BN, rank=5),
    Entry("torch", "Dropout", "torch.nn.Dropout", "dropout", "layer", _TORCH_DROP),
    Entry("torch", "Dropout1d", "torch.nn.Dropout1d", "dropout", "layer", _TORCH_DROP, 3, "channel"),
    Entry("torch", "Dropout2d", "torch.nn.Dropout2d", "dropout", "layer", _TORCH_DROP, 4, "channel"),
    Entry("torch", "Dropout3d", "torch.nn.Dropout3d", "dropout", "layer", _TORCH_DROP, 5, "channel"),
    Entry("torch", "batch_norm", "torch.nn.functional.batch_norm", "batch_norm", "function",
          _p(("input", REQUIRED, "tensor"), ("running_mean", REQUIRED, "tensor"),
             ("running_var", REQUIRED, "tensor"), ("weight", None, "tensor"), ("bias", None, "tensor"),
             ("training", False, "opaque"), ("momentum", 0.1), ("eps", 1e-5))),
    Entry("torch", "dropout", "torch.nn.functional.dropout", "dropout", "function", _TORCH_FDROP),
    Entry("torch", "dropout1d", "torch.nn.functional.dropout1d", "dropout", "function", _TORCH_FDROP, 3, "channel"),
    Entry("torch", "dropout2d", "torch.nn.functional.dropout2d", "dropout", "function", _TORCH_FDROP, 4, "channel"),
    Entry("torch", "dropout3d", "torch.nn.functional.dropout3d", "dropout", "function", _TORCH_FDROP, 5, "channel"),
    # --- PaddlePaddle ---------------------------------------------------------------------
    Entry("paddle", "BatchNorm1D", "paddle.nn.BatchNorm1D", "batch_norm", "layer",
          _PADDLE_BN + _p(("data_format", "NCL")) + _PADDLE_BN_TAIL, rank=2),
    Entry("paddle", "BatchNorm2D", "paddle.nn.BatchNorm2D", "batch_norm", "layer",
          _PADDLE_BN + _p(("data_format", "NCHW")) + _PADDLE_BN_TAIL, rank=4),
    Entry("paddle", "BatchNorm3D", "paddle.nn.BatchNorm3D", "batch_norm", "layer",
          _PADDLE_BN + _p(("data_format", "NCDHW")) + _PADDLE_BN_TAIL, rank=5),
    Entry("paddle", "BatchNorm", "paddle.nn.BatchNorm", "batch_norm", "layer",
          _p("num_channels", ("act", None), ("is_test", False), ("momentum", 0.9), ("epsilon", 1e-5),
             ("param_attr", None, "opaque"), ("bias_attr", None, "opaque"), ("dtype", "float32"),
             ("data_layout", "NCHW"), ("in_place", False), ("moving_mean_name", None, "opaque"),
             ("moving_variance_name", None, "opaque"), ("do_model_average_for_mean_and_var", True),
             ("use_global_stats", False), ("trainable_statistics", False))),
    Entry("paddle", "Dropout", "paddle.nn.Dropout", "dropout", "layer",
          _p(("p", 0.5), ("inplace", False), ("axis", None), ("mode", "upscale_in_train"),
             ("name", None, "opaque"))),
    Entry("paddle", "Dropout2D", "paddle.nn.Dropout2D", "dropout", "layer",
          _p(("p", 0.5), ("data_format", "NCHW"), ("name", None, "opaque")), 4, "channel"),
    Entry("paddle", "Dropout3D", "paddle.nn.Dropout3D", "dropout", "layer",
          _p(("p", 0.5), ("data_format", "NCDHW"), ("name", None, "opaque")), 5, "channel"),
    Entry("paddle", "batch_norm", "paddle.nn.functional.batch_norm", "batch_norm", "function",
          _p(("x", REQUIRED, "tensor"), ("running_mean", REQUIRED, "tensor"),
             ("running_var", REQUIRED, "tensor"), ("weight", None, "tensor"), ("bias", None, "tensor"),
             ("training", False, "opaque"), ("momentum", 0.9), ("epsilon", 1e-5), ("data_format", "NCHW"),
             ("use_global_stats", None), ("name", None, "opaque"))),
    Entry("paddle", "dropout", "paddle.nn.functional.dropout", "dropout", "function",
          _p(("x", REQUIRED, "tensor"), ("p", 0.5), ("axis", None), ("training", True, "opaque"),
             ("inplace", False), ("mode", "upscale_in_train"), ("name", None, "opaque"))),
    Entry("paddle", "dropout2d", "paddle.nn.functional.dropout2d", "dropout", "function",
          _p(("x", REQUIRED, "tensor"), ("p", 0.5), ("training", True, "opaque"), ("data_format", "NCHW"),
             ("name", None, "opaque")), 4, "channel"),
    Entry("paddle", "dropout3d", "paddle.nn.functional.dropout3d", "dropout", "function",
          _p(("x", REQUIRED, "tensor"), ("p", 0.5), ("training", True, "opaque"), ("data_format", "NCDHW"),
             ("name", None, "opaque")), 5, "channel"),
    # --- Keras 3 (tf.keras) and TensorFlow ------------------------------------------------
    Entry("tf", "BatchNormalization", "keras.layers.BatchNormalization", "batch_norm", "layer",
          _p(("axis", -1), ("momentum", 0.99), ("epsilon", 1e-3), ("center", True), ("scale", True),
             ("beta_initializer", "zeros", "opaque"), ("gamma_initializer", "ones", "opaque"),
             ("moving_mean_initializer", "zeros", "opaque"),
             ("moving_variance_initializer", "ones", "opaque"), ("beta_regularizer", None, "opaque"),
             ("gamma_regularizer", None, "opaque"), ("beta_constraint", None, "opaque"),
             ("gamma_constraint", None, "opaque"), ("renorm", False), ("renorm_clipping", None, "opaque"),
             ("renorm_momentum", 0.99), ("synchronized", False)), extra_keywords=_KERAS_KW),
    Entry("tf", "Dropout", "keras.layers.Dropout", "dropout", "layer",
          _p("rate", ("noise_shape", None), ("seed", None)), extra_keywords=_KERAS_KW),
    Entry("tf", "SpatialDropout1D", "keras.layers.SpatialDropout1D", "dropout", "layer",
          _p("rate", ("seed", None), ("name", None, "opaque"), ("dtype", None)), 3, "channel"),
    Entry("tf", "SpatialDropout2D", "keras.layers.SpatialDropout2D", "dropout", "layer",
          _p("rate", ("data_format", None), ("seed", None), ("name", None, "opaque"), ("dtype", None)),
          4, "channel"),
    Entry("tf", "SpatialDropout3D", "keras.layers.SpatialDropout3D", "dropout", "layer",
          _p("rate", ("data_format", None), ("seed", None), ("name", None, "opaque"), ("dtype", None)),
          5, "channel"),
    Entry("tf", "batch_normalization", "keras.ops.batch_normalization", "batch_norm", "function",
          _p(("x", REQUIRED, "tensor"), ("mean", REQUIRED, "tensor"), ("variance", REQUIRED, "tensor"),
             ("axis", REQUIRED), ("offset", None, "tensor"), ("scale", None, "tensor"),
             ("epsilon", 1e-3))),
    Entry("tf", "dropout", "keras.random.dropout", "dropout", "function",
          _p(("inputs", REQUIRED, "tensor"), "rate", ("noise_shape", None), ("seed", None))),
)

# Module paths under which a name may be written; tf.nn's forms are listed separately
# because their names collide with Keras' (tf.nn.dropout vs keras.random.dropout).
PREFIXES: dict[str, tuple[str, ...]] = {
    "torch": ("torch.nn.functional", "nn.functional", "torch.nn", "nn", "F", ""),
    "paddle": ("paddle.nn.functional", "nn.functional", "paddle.nn", "nn", "F", ""),
    "tf": ("tf.keras.layers", "keras.layers", "layers", "tf.keras.ops", "keras.ops", "ops",
           "tf.keras.random", "keras.random", "random", ""),
}

TF_NN: tuple[Entry, ...] = (
    Entry("tf", "batch_normalization", "tf.nn.batch_normalization", "batch_norm", "function",
          _p(("x", REQUIRED, "tensor"), ("mean", REQUIRED, "tensor"), ("variance", REQUIRED, "tensor"),
             ("offset", REQUIRED, "tensor"), ("scale", REQUIRED, "tensor"),
             ("variance_epsilon", REQUIRED), ("name", None, "opaque"))),
    Entry("tf", "dropout", "tf.nn.dropout", "dropout", "function",
          _p(("x", REQUIRED, "tensor"), "rate", ("noise_shape", None), ("seed", None), ("name", None, "opaque"))),
)


def entries(framework: str) -> dict[str, Entry]:
    """The classes and functions of ``framework`` by the name they are written with."""
    return {e.name: e for e in ENTRIES if e.framework == framework}


def canonical_framework(name: str) -> str | None:
    name = name.strip().lower()
    name = ALIASES.get(name, name)
    return name if name in FRAMEWORKS else None
