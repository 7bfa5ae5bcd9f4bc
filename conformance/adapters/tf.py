"""TensorFlow adapter: the Keras layers bundled with TensorFlow (``tf.keras``, Keras 3 in TF
2.16+), run eagerly. Imported only inside the TensorFlow worker process.

Keras 3's ``BatchNormalization`` is not the fused kernel: it computes ``ops.moments`` (biased
variance) and ``tf.nn.batch_normalization`` in float32 (float16/bfloat16 inputs are upcast),
so any channel axis works on CPU. Its ``momentum`` weighs the *old* moving value.
"""

from __future__ import annotations

import os

os.environ["TF_CPP_MIN_LOG_LEVEL"] = "2"  # before the import: silence C++ INFO/WARNING logs

from typing import Any, ClassVar

import numpy as np
import tensorflow as tf

from conformance.adapters.base import (
    Adapter,
    DeviceUnavailable,
    Documented,
    Unsupported,
)
from conformance.adapters.documentation import DOCUMENTED
from conformance.model import BatchNormSpec, DropoutSpec, LayerSpec, Mode

keras = tf.keras  # Keras 3 in TF >= 2.16
KerasLayer = Any  # keras.layers.Layer; tf.keras is a lazy module mypy cannot resolve
_TF_DEVICE = {"cpu": "/CPU:0", "gpu": "/GPU:0"}


def _to_numpy(t: Any) -> np.ndarray:
    """A tensor or variable as numpy; bfloat16 comes back as float32."""
    t = tf.convert_to_tensor(t)
    if t.dtype == tf.bfloat16:
        t = tf.cast(t, tf.float32)
    return np.asarray(t.numpy())


class _TfHandle:
    """One Keras layer, driven on one device in one dtype, eagerly or through a
    ``tf.function`` (the ``compiled`` context)."""

    def __init__(self, layer: KerasLayer, spec: LayerSpec, dtype: str, device: str) -> None:
        self.layer, self.spec, self.dtype, self.device = layer, spec, tf.as_dtype(dtype), device
        self.bn_spec = spec if isinstance(spec, BatchNormSpec) else None
        self.bn = self.bn_spec is not None
        self._compiled: Any = None  # the tf.function, built on first use and kept per handle

    def forward(
        self, x: np.ndarray, mode: Mode, grad_output: np.ndarray | None, context: str = "plain"
    ) -> dict[str, np.ndarray]:
        """Call the layer in ``mode``; with ``grad_output``, take the gradients of
        ``sum(grad_output * output)`` with a ``GradientTape``.

        Contexts: ``plain`` and ``no_grad`` are both an eager call. Keras/TensorFlow have no
        no-grad context (no ``torch.no_grad`` counterpart): eager ops record nothing unless a
        ``GradientTape`` is open, so an eager call without a tape *is* the native no-grad
        pass (and the spec never asks for gradients under no_grad). ``compiled`` runs the same
        call inside a ``tf.function`` (graph mode, as ``model.fit`` does), cached on this
        handle; the moving statistics are read back from the variables afterwards, so a
        training-mode update made in the graph is observed as it is. ``inference`` is
        unsupported: TensorFlow has no inference-mode context distinct from a tape-less call
        (``predict`` forces training=False, i.e. the eval mode, not a context).
        """
        if context == "inference":
            raise Unsupported(
                "TensorFlow/Keras have no inference-mode context (torch.inference_mode, "
                "paddle's inference mode): an eager call without a GradientTape is the only "
                "no-recording pass, and it is already the no_grad context; Keras' predict() "
                "forces training=False (eval mode) rather than providing a context")
        if context not in ("plain", "no_grad", "compiled", "graph"):
            raise ValueError(f"unknown forward context {context!r}")
        if context == "no_grad" and grad_output is not None:
            raise ValueError("a no_grad forward pass cannot produce gradients")
        training = mode == "train"
        if self.bn_spec is not None and self.bn_spec.frozen and self.bn_spec.trainable:
            # Statistics frozen, scale/shift still learning: Keras has no single switch for
            # it; the common practice is calling the layer with training=False inside the
            # training step (normalise with, and keep, the moving statistics) while gamma and
            # beta stay in trainable_weights and get their gradients.
            training = False
        # (frozen and not trainable: layer.trainable = False was set at build time and the
        # layer gets the mode's training flag as is; Keras itself then runs in inference mode.)
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
        return {k: _to_numpy(v) for k, v in result.items()}

    def _call(self, xt: Any, training: bool, g: Any) -> dict[str, Any]:
        """The layer call (and its gradients), eager or traced by ``tf.function``."""
        if g is None:
            return {"output": self.layer(xt, training=training)}
        # Gradients with respect to the input and the layer's trainable_weights, as a Keras
        # train step takes them: a weight Keras marks non-trainable (layer.trainable=False,
        # or Variable.trainable=False) is not among them and gets no gradient, reported as
        # zeros like the reference does.
        params = list(self.layer.trainable_weights)
        with tf.GradientTape() as tape:
            tape.watch(xt)
            y = self.layer(xt, training=training)
            # The sum in float32 (float64 for float64); the cotangent dL/dy = g exactly.
            wide = tf.float64 if self.dtype == tf.float64 else tf.float32
            loss = tf.reduce_sum(tf.cast(y, wide) * tf.cast(g, wide))
        # Dropout(rate=1) returns tf.zeros_like(x): unconnected, so ask for zeros.
        grads = tape.gradient(loss, [xt, *params],
                              unconnected_gradients=tf.UnconnectedGradients.ZERO)
        out = {"output": y, "grad_input": grads[0]}
        if self.bn_spec is not None and self.bn_spec.affine:
            for key, var in (("grad_scale", self.layer.gamma), ("grad_shift", self.layer.beta)):
                hit = [gr for p, gr in zip(params, grads[1:]) if p is var]
                out[key] = hit[0] if hit else tf.zeros(var.shape, var.dtype)
        return out

    def _graph_call(self, x: np.ndarray, training: bool) -> np.ndarray:
        """TF1-style graph mode: a twin of the layer (same config) is built in a
        ``tf.Graph``, its variables loaded with this layer's values, and the output fetched
        in a ``tf.compat.v1.Session`` under control dependencies on the UPDATE_OPS
        collection, the documented TF1 recipe for running batch-norm updates
        (https://www.tensorflow.org/api_docs/python/tf/compat/v1/layers/batch_normalization).
        The twin's variables are then copied back, so whatever the graph run changed (or
        did not) is what the next step sees."""
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
            # Keras 3 variables wrap a tf.Variable in ``_value``; assign and read it directly
            loads = [tf.compat.v1.assign(w._value, v) for w, v in zip(twin.weights, values)]
            reads = [tf.identity(w._value) for w in twin.weights]
            with tf.compat.v1.Session(graph=graph) as session:
                session.run(tf.compat.v1.global_variables_initializer())
                session.run(loads)
                output = session.run(y, {placeholder: x.astype(self.dtype.as_numpy_dtype)})
                after = session.run(reads)
        for var, value in zip(self.layer.weights, after):
            var.assign(value)
        return np.asarray(output)

    def reset_running_stats(self) -> None:
        """moving_mean <- 0, moving_variance <- 1 (Keras counts no batches)."""
        if not self.bn:
            raise Unsupported("Keras Dropout has no running statistics to reset")
        for var, fill in ((self.layer.moving_mean, 0.0), (self.layer.moving_variance, 1.0)):
            var.assign(tf.fill(var.shape, tf.cast(fill, var.dtype)))

    def state(self) -> dict[str, np.ndarray]:
        """Moving statistics of a batch norm. Keras counts no batches: no ``batch_count``."""
        if not self.bn:
            return {}
        return {"running_mean": _to_numpy(self.layer.moving_mean),
                "running_var": _to_numpy(self.layer.moving_variance)}


class TfAdapter(Adapter):
    """TensorFlow with its bundled Keras layers."""

    name = "tf"
    install_hint = 'pip install "conformance[tf]"  (or: pip install tensorflow-cpu)'
    documented: ClassVar[dict[str, Documented]] = DOCUMENTED["tf"]  # every convention, with its page

    def version(self) -> str:
        return str(tf.__version__)

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
            "keras": str(getattr(keras, "__version__", "")) or str(keras.version()),
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
        if getattr(layer, "kind", "") == "model":  # a model case: a Keras model (tf_model)
            from conformance.adapters.tf_model import build_model

            return build_model(layer, dtype, _TF_DEVICE[device])  # type: ignore[arg-type]
        with tf.device(_TF_DEVICE[device]):
            native = _batch_norm(layer, dtype) if isinstance(layer, BatchNormSpec) \
                else _dropout(layer, dtype)
            return _TfHandle(native, layer, dtype, _TF_DEVICE[device])


def _device_name(device: str) -> str:
    if device == "gpu":
        gpus = tf.config.list_physical_devices("GPU")
        details = tf.config.experimental.get_device_details(gpus[0]) if gpus else {}
        return str(details.get("device_name", gpus[0].name if gpus else ""))
    return "cpu"


def _batch_norm(spec: BatchNormSpec, dtype: str) -> KerasLayer:
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
            var.assign(tf.cast(np.asarray(values, np.float64).reshape(-1), var.dtype))
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


def _dropout(spec: DropoutSpec, dtype: str) -> KerasLayer:
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
    axis = 1 if spec.channel_axis == "first" else spec.rank - 1
    noise = tuple(None if a in (0, axis) else 1 for a in range(spec.rank))
    return keras.layers.Dropout(rate, noise_shape=noise, seed=spec.seed, dtype=dtype)
