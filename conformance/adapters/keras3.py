"""Keras 3 layers, backend-neutral: what the ``tf``, ``keras-torch`` and ``keras-jax`` adapters
share. Imports ``keras`` only (never its backend): the backend adapter sets ``KERAS_BACKEND``
before anything imports this module, and binds the few backend hooks (``KerasBackend``: device
scope, tensors in and out, when a value is concrete; ``KerasHandle``: gradients, the
no-recording contexts and the compiled call).

The translation of the neutral spec is Keras' and the same on every backend:
``BatchNormalization(momentum = 1 - update weight, epsilon = eps, axis = channel axis)``, whose
update is ``moving = moving * momentum + batch * (1 - momentum)`` with the biased batch variance
(``keras.ops.moments``), and inverted ``Dropout`` / ``SpatialDropout*D`` (``y = x * m / (1 -
rate)`` in training, ``y = x`` in inference).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any

import keras
import numpy as np

from conformance.adapters.base import Unsupported
from conformance.model import BatchNormSpec, DropoutSpec, LayerSpec, Mode

KerasLayer = Any  # keras.layers.Layer (tf.keras is a lazy module mypy cannot resolve)
CONTEXTS = ("plain", "no_grad", "inference", "compiled", "graph")


class KerasBackend:
    """The backend hooks the layer and model handles need. Subclasses bind each to their
    backend (the ``tf``, ``keras_torch`` and ``keras_jax`` modules)."""

    name = "keras"

    def device_scope(self, device: str) -> contextlib.AbstractContextManager[Any]:
        """Where tensors and variables are created (``device``: the backend's own name)."""
        return keras.device(device)  # type: ignore[no-any-return]

    def tensor(self, x: np.ndarray, dtype: str) -> Any:
        """``x`` as a backend tensor of ``dtype`` (converted as is, then cast)."""
        return keras.ops.cast(keras.ops.convert_to_tensor(np.asarray(x)), dtype)

    def numpy(self, t: Any) -> np.ndarray:
        """A tensor or variable as numpy; bfloat16 comes back as float32 (exactly)."""
        if keras.backend.standardize_dtype(t.dtype) == "bfloat16":
            t = keras.ops.cast(t, "float32")
        return np.array(keras.ops.convert_to_numpy(t))

    def observe(self, fn: Callable[..., None], *values: Any) -> None:
        """Call ``fn`` with ``values`` as numpy where they are concrete; where the backend is
        tracing (a symbolic call that builds a model, a traced training step) record nothing,
        or defer to when the values exist (JAX)."""
        fn(*(self.numpy(v) for v in values))


def wide(dtype: str) -> str:
    """The dtype of a gradient's loss sum: float64 for float64, else float32."""
    return "float64" if dtype == "float64" else "float32"


class KerasHandle:
    """One Keras layer on one device in one dtype (``conformance.adapters.base.LayerHandle``).
    Subclasses implement ``_gradients``, ``_compiled_call`` and ``_scope``."""

    def __init__(self, backend: KerasBackend, layer: KerasLayer, spec: LayerSpec, dtype: str,
                 device: str) -> None:
        self.backend, self.layer, self.spec, self.dtype, self.device = backend, layer, spec, dtype, device
        self.bn_spec = spec if isinstance(spec, BatchNormSpec) else None
        self.bn = self.bn_spec is not None
        self._compiled: Any = None  # the compiled call, built on first use and kept per handle

    def training(self, mode: Mode) -> bool:
        """The training argument for ``mode``."""
        if self.bn_spec is not None and self.bn_spec.frozen and self.bn_spec.trainable:
            # Statistics frozen, scale/shift still learning: Keras has no single switch for
            # it; the common practice is calling the layer with training=False inside the
            # training step (normalise with, and keep, the moving statistics) while gamma and
            # beta stay in trainable_weights and get their gradients.
            return False
        # (frozen and not trainable: layer.trainable = False was set at build time and the
        # layer gets the mode's training flag as is; Keras itself then runs in inference mode.)
        return mode == "train"

    def forward(
        self, x: np.ndarray, mode: Mode, grad_output: np.ndarray | None, context: str = "plain"
    ) -> dict[str, np.ndarray]:
        """Call the layer in ``mode`` (``training=True`` or ``False``) inside ``context``;
        with ``grad_output``, the gradients of ``sum(grad_output * output)`` with respect to
        the input and the layer's ``trainable_weights``."""
        if context not in CONTEXTS:
            raise ValueError(f"unknown forward context {context!r}")
        if context == "no_grad" and grad_output is not None:
            raise ValueError("a no_grad forward pass cannot produce gradients")
        training = self.training(mode)
        with self.backend.device_scope(self.device):
            xt = self.backend.tensor(x, self.dtype)
            g = None if grad_output is None else self.backend.tensor(grad_output, self.dtype)
            if context == "compiled":
                result = self._compiled_call(xt, training, g)
            else:
                with self._scope(context):
                    result = self._call(xt, training, g)
        return {k: self.backend.numpy(v) for k, v in result.items()}

    def _call(self, xt: Any, training: bool, g: Any) -> dict[str, Any]:
        """The layer call and, with ``g``, its gradients."""
        if g is None:
            return {"output": self.layer(xt, training=training)}
        # Gradients with respect to the input and the layer's trainable_weights, as a Keras
        # train step takes them: a weight Keras marks non-trainable (layer.trainable=False,
        # or Variable.trainable=False) is not among them and gets no gradient, reported as
        # zeros like the reference does.
        params = list(self.layer.trainable_weights)
        y, grad_x, grads = self._gradients(xt, training, g, params)
        return self.observed(y, grad_x, params, grads)

    def observed(self, y: Any, grad_x: Any, params: list[Any], grads: list[Any]) -> dict[str, Any]:
        """The output and gradients as the spec names them: ``grad_scale`` / ``grad_shift`` of
        an affine batch norm, zeros for one not among ``params`` (frozen)."""
        out = {"output": y, "grad_input": grad_x}
        if self.bn_spec is not None and self.bn_spec.affine:
            for key, var in (("grad_scale", self.layer.gamma), ("grad_shift", self.layer.beta)):
                hit = [gr for p, gr in zip(params, grads) if p is var]
                out[key] = hit[0] if hit else keras.ops.zeros(var.shape, var.dtype)
        return out

    def _gradients(self, xt: Any, training: bool, g: Any,
                   params: list[Any]) -> tuple[Any, Any, list[Any]]:
        """``(y, d loss / d x, [d loss / d p for p in params])`` for ``loss = sum(g * y)``,
        the sum in ``wide(dtype)``; an unconnected gradient is zeros."""
        raise NotImplementedError

    def _compiled_call(self, xt: Any, training: bool, g: Any) -> dict[str, Any]:
        """``_call`` through the backend's compiler (cached in ``self._compiled``)."""
        raise NotImplementedError

    def _scope(self, context: str) -> contextlib.AbstractContextManager[Any]:
        """The context manager of ``plain``, ``no_grad``, ``inference`` or ``graph``; raise
        ``Unsupported`` with the backend's words for one it lacks."""
        raise NotImplementedError

    def reset_running_stats(self) -> None:
        """moving_mean <- 0, moving_variance <- 1 (Keras counts no batches)."""
        if not self.bn:
            raise Unsupported("Keras Dropout has no running statistics to reset")
        reset_moving(self.layer)

    def state(self) -> dict[str, np.ndarray]:
        """Moving statistics of a batch norm. Keras counts no batches: no ``batch_count``."""
        if not self.bn:
            return {}
        return {"running_mean": self.backend.numpy(self.layer.moving_mean),
                "running_var": self.backend.numpy(self.layer.moving_variance)}


def reset_moving(layer: KerasLayer) -> None:
    """A BatchNormalization's moving_mean <- 0, moving_variance <- 1."""
    for var, fill in ((layer.moving_mean, 0.0), (layer.moving_variance, 1.0)):
        var.assign(keras.ops.full(var.shape, fill, dtype=var.dtype))


def assign(var: Any, values: Any) -> None:
    """``var <- values`` (converted from float64 to the variable's dtype)."""
    var.assign(keras.ops.cast(np.asarray(values, np.float64), var.dtype))


def batch_norm(spec: BatchNormSpec, dtype: str) -> KerasLayer:
    """A built ``BatchNormalization`` with the spec's parameters and initial state."""
    if spec.update == "cumulative":
        raise Unsupported("Keras BatchNormalization only has an exponential moving average "
                          "(momentum); there is no cumulative (1/k) running average")
    if not spec.running_stats:
        raise Unsupported("Keras BatchNormalization always keeps moving statistics and uses "
                          "them in inference; there is no track_running_stats=False")
    options: dict[str, Any] = {}
    if spec.native_momentum is not None:
        options["momentum"] = spec.native_momentum  # probe: Keras' own argument, as is
    elif spec.update_weight is not None:
        options["momentum"] = 1.0 - spec.update_weight  # Keras' momentum weighs the OLD value
    if spec.eps is not None:  # None: keep Keras' default
        options["epsilon"] = spec.eps  # added to the variance inside the sqrt, as in the reference
    layer = keras.layers.BatchNormalization(
        axis=1 if spec.channel_axis == "first" else -1,  # the channel axis (NCHW vs NHWC)
        **options,
        center=spec.affine,  # beta (shift); affine False -> no beta
        scale=spec.affine,  # gamma (scale); affine False -> no gamma
        dtype=dtype,  # variables and output in this dtype (compute is float32 internally)
    )
    shape: list[int | None] = [None] * spec.rank
    shape[1 if spec.channel_axis == "first" else -1] = spec.num_features
    layer.build(tuple(shape))
    for var, values in ((layer.moving_mean, spec.running_mean),
                        (layer.moving_variance, spec.running_var),
                        (layer.gamma if spec.affine else None, spec.scale),
                        (layer.beta if spec.affine else None, spec.shift)):
        if var is not None and values is not None:
            assign(var, np.asarray(values, np.float64).reshape(-1))
    if spec.frozen and not spec.trainable:
        # Keras' own freeze switch: a non-trainable BatchNormalization runs in inference mode
        # even when called with training=True (moving statistics used and kept), and gamma
        # and beta leave trainable_weights.
        layer.trainable = False
    elif not spec.trainable and spec.affine:
        # Scale and shift frozen, statistics still updating: layer.trainable=False would also
        # freeze the statistics, but a Keras 3 Variable has a public ``trainable`` setter;
        # gamma and beta marked non-trainable leave layer.trainable_weights (what a train
        # step differentiates and the optimizer updates) while the layer keeps training.
        layer.gamma.trainable = False
        layer.beta.trainable = False
    return layer


def dropout(spec: DropoutSpec, dtype: str) -> KerasLayer:
    """Inverted dropout; channel-wise through SpatialDropout or a ``noise_shape``."""
    if spec.scaling == "eval":
        raise Unsupported("Keras Dropout is inverted dropout only (scale 1/(1-rate) in "
                          "training, identity in inference); no downscale-in-inference mode")
    rate = spec.rate if spec.native_rate is None else spec.native_rate  # a native rate as is
    if spec.granularity == "element" or spec.rank == 2:  # rank 2: one draw per (n, c) anyway
        return keras.layers.Dropout(rate, seed=spec.seed, dtype=dtype)
    fmt = "channels_first" if spec.channel_axis == "first" else "channels_last"
    if spec.rank == 4:
        return keras.layers.SpatialDropout2D(rate, data_format=fmt, seed=spec.seed,
                                             dtype=dtype)
    if spec.rank == 5:
        return keras.layers.SpatialDropout3D(rate, data_format=fmt, seed=spec.seed,
                                             dtype=dtype)
    if spec.rank == 3 and fmt == "channels_last":  # SpatialDropout1D has no data_format
        return keras.layers.SpatialDropout1D(rate, seed=spec.seed, dtype=dtype)
    # Otherwise a mask of shape (N, C, 1, ...) / (N, ..., 1, C); None dims take the input's.
    return keras.layers.Dropout(rate, noise_shape=noise_shape(spec), seed=spec.seed, dtype=dtype)


def noise_shape(spec: DropoutSpec) -> tuple[int | None, ...] | None:
    """The dropout mask's shape for the spec's granularity: None (one draw per element), or one
    draw per sample and channel (1 along the spatial axes; None takes the input's size)."""
    if spec.granularity == "element" or spec.rank == 2:
        return None
    axis = 1 if spec.channel_axis == "first" else spec.rank - 1
    return tuple(None if a in (0, axis) else 1 for a in range(spec.rank))


def layer_for(spec: LayerSpec, dtype: str) -> KerasLayer:
    """The Keras layer of a layer spec."""
    return batch_norm(spec, dtype) if isinstance(spec, BatchNormSpec) else dropout(spec, dtype)


def keras_version() -> str:
    return str(getattr(keras, "__version__", "")) or str(keras.version())
