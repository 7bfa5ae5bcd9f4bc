"""Keras 2 adapter: the ``tf_keras`` package (Keras 2 kept alive for TensorFlow >= 2.16, whose
``tf.keras`` is Keras 3), on TensorFlow. Imported only inside the tf_keras worker process.

Keras 2's ``BatchNormalization`` has two kernels, chosen by ``fused`` (default ``None``: the
fused one wherever it can be used, i.e. a rank-4 or rank-5 input with the channel on axis 1
or the last axis, a float16/bfloat16/float32 compute dtype, no renorm or virtual batches):

- fused: ``tf.compat.v1.nn.fused_batch_norm``, whose batch variance, fed to moving_variance, is
  Bessel-corrected, var(batch) * m / (m - 1) (m values per channel) - the layer's
  ``_bessels_correction_test_only = True`` keeps the kernel's value as it is;
- otherwise ``tf.nn.moments`` (the biased, divide-by-m variance) and
  ``tf.nn.batch_normalization``.

Both normalise with the biased variance. Its ``momentum`` weighs the *old* moving value.
"""

from __future__ import annotations

import os

os.environ["TF_CPP_MIN_LOG_LEVEL"] = "2"  # before the import: silence C++ INFO/WARNING logs

from conformance.adapters.keras_env import select_backend

# TensorFlow 2.21 loads Keras 3 as well (tf.keras), and Keras 3 imports jax when it is
# installed: keep torch and jax out of this worker, one framework per process
select_backend("tensorflow")

from typing import Any, ClassVar

import numpy as np
import tensorflow as tf
import tf_keras

from conformance.adapters.base import (
    Adapter,
    DeviceUnavailable,
    Documented,
    Unsupported,
)
from conformance.adapters.documentation import DOCUMENTED
from conformance.model import BatchNormSpec, DropoutSpec, LayerSpec, Mode

KerasLayer = Any  # tf_keras.layers.Layer (tf_keras ships no type information)
TF_DEVICE = {"cpu": "/CPU:0", "gpu": "/GPU:0"}


def to_numpy(t: Any) -> np.ndarray:
    """A tensor or variable as numpy; bfloat16 comes back as float32."""
    t = tf.convert_to_tensor(t)
    if t.dtype == tf.bfloat16:
        t = tf.cast(t, tf.float32)
    return np.asarray(t.numpy())


class TfKerasHandle:
    """One Keras 2 layer, driven on one device in one dtype: eagerly, through a
    ``tf.function`` (``compiled``) or in a TF1 graph and session (``graph``)."""

    def __init__(self, layer: KerasLayer, spec: LayerSpec, dtype: str, device: str) -> None:
        self.layer, self.spec, self.dtype, self.device = layer, spec, tf.as_dtype(dtype), device
        self.bn_spec = spec if isinstance(spec, BatchNormSpec) else None
        self._compiled: Any = None  # the tf.function, built on first use and kept per handle

    def forward(
        self, x: np.ndarray, mode: Mode, grad_output: np.ndarray | None, context: str = "plain"
    ) -> dict[str, np.ndarray]:
        """Call the layer with ``training = (mode == "train")``; with ``grad_output``, take the
        gradients of ``sum(grad_output * output)`` with a ``GradientTape``.

        ``plain`` and ``no_grad`` are both an eager call: TensorFlow records nothing unless a
        ``GradientTape`` is open, so a tape-less eager call is its no-grad pass. ``compiled``
        is the same call in a ``tf.function``; ``graph`` a TF1 graph run in a Session.
        ``inference`` is unsupported (TensorFlow has no inference-mode context).
        """
        if context == "inference":
            raise Unsupported(
                "TensorFlow/Keras 2 have no inference-mode context (torch.inference_mode, "
                "paddle's inference mode): an eager call without a GradientTape is the only "
                "no-recording pass, and it is already the no_grad context; Keras' predict() "
                "passes training=False (eval mode) rather than providing a context")
        if context not in ("plain", "no_grad", "compiled", "graph"):
            raise ValueError(f"unknown forward context {context!r}")
        if context == "no_grad" and grad_output is not None:
            raise ValueError("a no_grad forward pass cannot produce gradients")
        training = mode == "train"
        if self.bn_spec is not None and self.bn_spec.frozen and self.bn_spec.trainable:
            # Statistics frozen, gamma and beta still learning: Keras 2 has no switch for it;
            # the common practice is calling the layer with training=False inside the
            # training step (normalise with, and keep, the moving statistics) while gamma and
            # beta stay in trainable_weights and get their gradients.
            training = False
        if context == "graph":
            return {"output": self._graph_call(np.asarray(x), training)}
        with tf.device(self.device):
            xt = tf.cast(tf.constant(x), self.dtype)
            g = None if grad_output is None else tf.cast(tf.constant(grad_output), self.dtype)
            if context == "compiled":
                if self._compiled is None:
                    self._compiled = tf.function(self._call)
                result = self._compiled(xt, training, g)
            else:
                result = self._call(xt, training, g)
        return {k: to_numpy(v) for k, v in result.items()}

    def _call(self, xt: Any, training: bool, g: Any) -> dict[str, Any]:
        """The layer call (and its gradients), eager or traced by ``tf.function``."""
        if g is None:
            return {"output": self.layer(xt, training=training)}
        # Gradients with respect to the input and the layer's trainable_weights, as a Keras
        # train step takes them: a non-trainable layer's gamma and beta are not among them
        # and get no gradient, reported as zeros like the reference does.
        params = list(self.layer.trainable_weights)
        with tf.GradientTape() as tape:
            tape.watch(xt)
            y = self.layer(xt, training=training)
            wide = tf.float64 if self.dtype == tf.float64 else tf.float32
            loss = tf.reduce_sum(tf.cast(y, wide) * tf.cast(g, wide))  # dL/dy = g exactly
        # Dropout(rate=1) is unconnected to its input: ask for zeros
        grads = tape.gradient(loss, [xt, *params], unconnected_gradients=tf.UnconnectedGradients.ZERO)
        out = {"output": y, "grad_input": grads[0]}
        if self.bn_spec is not None and self.bn_spec.affine:
            for key, var in (("grad_scale", self.layer.gamma), ("grad_shift", self.layer.beta)):
                hit = [gr for p, gr in zip(params, grads[1:]) if p is var]
                out[key] = hit[0] if hit else tf.zeros(var.shape, var.dtype)
        return out

    def _graph_call(self, x: np.ndarray, training: bool) -> np.ndarray:
        """TF1-style graph mode: a twin of the layer (same config) built in a ``tf.Graph``,
        its variables loaded with this layer's values, the output fetched in a
        ``tf.compat.v1.Session`` under control dependencies on the UPDATE_OPS collection (the
        documented TF1 recipe for batch-norm updates,
        https://www.tensorflow.org/api_docs/python/tf/compat/v1/layers/batch_normalization).
        Measured: a Keras 2 layer built in a graph creates its update ops (``layer.updates``)
        but does not add them to UPDATE_OPS, so the recipe runs none of them.
        The twin's variables are copied back, so whatever the graph run changed (or did not)
        is what the next step sees."""
        if self.dtype not in (tf.float32, tf.float64):
            raise Unsupported("the graph context is driven in float32 and float64 only")
        values = [np.array(w.numpy()) for w in self.layer.weights]  # eager, before the graph
        graph = tf.Graph()
        with graph.as_default(), tf.device(self.device):
            twin = type(self.layer).from_config(self.layer.get_config())
            placeholder = tf.compat.v1.placeholder(self.dtype, x.shape)
            y = twin(placeholder, training=training)
            with tf.control_dependencies(tf.compat.v1.get_collection(tf.compat.v1.GraphKeys.UPDATE_OPS)):
                y = tf.identity(y)
            loads = [tf.compat.v1.assign(w, v) for w, v in zip(twin.weights, values)]
            reads = [tf.identity(w) for w in twin.weights]
            with tf.compat.v1.Session(graph=graph) as session:
                session.run(tf.compat.v1.global_variables_initializer())
                session.run(loads)
                output = session.run(y, {placeholder: x.astype(self.dtype.as_numpy_dtype)})
                after = session.run(reads)
        # Keras 2 made the twin a v1 layer by swapping, in place, the bases of the layer's
        # own class (version_utils.swap_class): every eager layer of that class is then "in an
        # invalid state". Constructing one outside the graph swaps them back.
        type(self.layer).from_config(self.layer.get_config())
        for var, value in zip(self.layer.weights, after):
            var.assign(value)
        return np.asarray(output)

    def reset_running_stats(self) -> None:
        """moving_mean <- 0, moving_variance <- 1 (Keras counts no batches)."""
        if self.bn_spec is None:
            raise Unsupported("Keras Dropout has no running statistics to reset")
        reset_moving_statistics(self.layer)

    def state(self) -> dict[str, np.ndarray]:
        """Moving statistics of a batch norm. Keras counts no batches: no ``batch_count``."""
        if self.bn_spec is None:
            return {}
        return {"running_mean": to_numpy(self.layer.moving_mean),
                "running_var": to_numpy(self.layer.moving_variance)}


def reset_moving_statistics(layer: KerasLayer) -> None:
    """A BatchNormalization's moving_mean <- 0 and moving_variance <- 1."""
    for var, fill in ((layer.moving_mean, 0.0), (layer.moving_variance, 1.0)):
        var.assign(tf.fill(var.shape, tf.cast(fill, var.dtype)))


class TfKerasAdapter(Adapter):
    """TensorFlow with the Keras 2 layers of the tf_keras package."""

    name = "tf_keras"
    install_hint = 'pip install "conformance[tf_keras]"  (or: pip install tensorflow-cpu tf-keras)'
    documented: ClassVar[dict[str, Documented]] = DOCUMENTED["tf_keras"]

    def version(self) -> str:
        return str(tf_keras.__version__)

    def devices(self) -> list[str]:
        found = ["cpu"]
        if tf.config.list_physical_devices("GPU"):
            found.append("gpu")
        return found

    def environment(self, device: str) -> dict[str, Any]:
        env = super().environment(device)
        build = dict(tf.sysconfig.get_build_info())
        from tensorflow.python.framework import config as tf_config

        is_det = getattr(tf_config, "is_op_determinism_enabled", None)
        env.update({
            "tensorflow": str(tf.__version__),
            "tf_keras": str(tf_keras.__version__),
            "device": device,
            "device_name": _device_name(device),
            "cuda_build": bool(build.get("is_cuda_build", False)),
            "cuda": build.get("cuda_version"),
            "cudnn": build.get("cudnn_version"),
            "op_determinism": bool(is_det()) if is_det else None,
            "tf_deterministic_ops_env": os.environ.get("TF_DETERMINISTIC_OPS"),
            "onednn_opts_env": os.environ.get("TF_ENABLE_ONEDNN_OPTS"),
            "tf32": bool(tf.config.experimental.tensor_float_32_execution_enabled()),
        })
        return env

    def build(self, layer: LayerSpec, dtype: str, device: str) -> Any:
        if device not in self.devices():
            raise DeviceUnavailable(
                f"TensorFlow {tf.__version__} sees no {device!r} device; for a GPU install "
                "the CUDA build (pip install 'tensorflow[and-cuda]') on a machine with an "
                "NVIDIA driver" if device == "gpu" else f"unknown device {device!r}")
        if getattr(layer, "kind", "") == "model":  # a model case: a Keras 2 model
            from conformance.adapters.tf_keras_model import build_model

            return build_model(layer, dtype, TF_DEVICE[device])  # type: ignore[arg-type]
        with tf.device(TF_DEVICE[device]):
            native = batch_norm(layer, dtype) if isinstance(layer, BatchNormSpec) else dropout(layer, dtype)
            return TfKerasHandle(native, layer, dtype, TF_DEVICE[device])


def _device_name(device: str) -> str:
    if device == "gpu":
        gpus = tf.config.list_physical_devices("GPU")
        details = tf.config.experimental.get_device_details(gpus[0]) if gpus else {}
        return str(details.get("device_name", gpus[0].name if gpus else ""))
    return "cpu"


def batch_norm(spec: BatchNormSpec, dtype: str) -> KerasLayer:
    """A built ``tf_keras.layers.BatchNormalization`` with the spec's parameters and state;
    ``fused`` left at its default (None: the fused kernel where it can be used)."""
    if spec.update == "cumulative":
        raise Unsupported("Keras BatchNormalization only has an exponential moving average "
                          "(momentum); there is no cumulative (1/k) running average")
    if not spec.running_stats:
        raise Unsupported("Keras BatchNormalization always keeps moving statistics and uses "
                          "them in inference; there is no track_running_stats=False")
    if not spec.frozen and not spec.trainable and spec.affine:
        raise Unsupported(
            "Keras 2 has no switch that freezes gamma and beta alone: layer.trainable=False "
            "also runs BatchNormalization in inference mode (statistics frozen), and its "
            "weights are tf.Variables whose trainable flag is fixed when the layer creates them")
    options: dict[str, Any] = {}
    if spec.native_momentum is not None:
        options["momentum"] = spec.native_momentum  # probe: Keras' own argument, as is
    elif spec.update_weight is not None:
        options["momentum"] = 1.0 - spec.update_weight  # Keras' momentum weighs the OLD value
    if spec.eps is not None:  # None: keep Keras' default
        options["epsilon"] = spec.eps  # added to the variance inside the sqrt, as in the reference
    layer = tf_keras.layers.BatchNormalization(
        axis=1 if spec.channel_axis == "first" else -1,  # the channel axis (NCHW vs NHWC)
        **options,
        center=spec.affine,  # beta (shift); affine False -> no beta
        scale=spec.affine,  # gamma (scale); affine False -> no gamma
        dtype=dtype,  # float16/bfloat16: Keras 2 keeps the layer's variables in float32
    )
    shape: list[int | None] = [None] * spec.rank
    shape[1 if spec.channel_axis == "first" else -1] = spec.num_features
    layer.build(tuple(shape))  # also settles layer.fused for this rank and dtype
    for var, values in ((layer.moving_mean, spec.running_mean),
                        (layer.moving_variance, spec.running_var),
                        (layer.gamma if spec.affine else None, spec.scale),
                        (layer.beta if spec.affine else None, spec.shift)):
        if var is not None and values is not None:
            var.assign(tf.cast(np.asarray(values, np.float64).reshape(-1), var.dtype))
    if spec.frozen and not spec.trainable:
        # Keras 2's freeze: a non-trainable BatchNormalization runs in inference mode even
        # when called with training=True (since TF 2.0), and gamma and beta leave
        # trainable_weights
        layer.trainable = False
    return layer


def dropout(spec: DropoutSpec, dtype: str) -> KerasLayer:
    """Inverted dropout; channel-wise through SpatialDropout or a ``noise_shape``."""
    if spec.scaling == "eval":
        raise Unsupported("Keras Dropout is inverted dropout only (scale 1/(1-rate) in "
                          "training, identity in inference); no downscale-in-inference mode")
    rate = spec.rate if spec.native_rate is None else spec.native_rate  # a native rate as is
    layers = tf_keras.layers
    if spec.granularity == "element" or spec.rank == 2:  # rank 2: one draw per (n, c) anyway
        return layers.Dropout(rate, seed=spec.seed, dtype=dtype)
    fmt = "channels_first" if spec.channel_axis == "first" else "channels_last"
    if spec.rank == 4:  # (SpatialDropout passes seed on to Dropout)
        return layers.SpatialDropout2D(rate, data_format=fmt, seed=spec.seed, dtype=dtype)
    if spec.rank == 5:
        return layers.SpatialDropout3D(rate, data_format=fmt, seed=spec.seed, dtype=dtype)
    if spec.rank == 3 and fmt == "channels_last":  # SpatialDropout1D has no data_format
        return layers.SpatialDropout1D(rate, seed=spec.seed, dtype=dtype)
    # Otherwise a mask of shape (N, C, 1, ...) / (N, ..., 1, C); None dims take the input's.
    return layers.Dropout(rate, noise_shape=noise_shape(spec), seed=spec.seed, dtype=dtype)


def noise_shape(spec: DropoutSpec) -> tuple[int | None, ...] | None:
    """Dropout's noise_shape for the spec's granularity: None (one draw per element), or one
    draw per sample and channel (1 along the spatial axes; None takes the input's size)."""
    if spec.granularity == "element" or spec.rank == 2:
        return None
    axis = 1 if spec.channel_axis == "first" else spec.rank - 1
    return tuple(None if a in (0, axis) else 1 for a in range(spec.rank))
