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
from conformance.model import BatchNormSpec, DropoutSpec, LayerSpec, Mode

keras = tf.keras  # Keras 3 in TF >= 2.16
KerasLayer = Any  # keras.layers.Layer; tf.keras is a lazy module mypy cannot resolve
BN_DOCS = "https://keras.io/api/layers/normalization_layers/batch_normalization/"
_TF_DEVICE = {"cpu": "/CPU:0", "gpu": "/GPU:0"}


def _to_numpy(t: Any) -> np.ndarray:
    """A tensor or variable as numpy; bfloat16 comes back as float32."""
    t = tf.convert_to_tensor(t)
    if t.dtype == tf.bfloat16:
        t = tf.cast(t, tf.float32)
    return np.asarray(t.numpy())


class _TfHandle:
    """One Keras layer, driven eagerly on one device in one dtype."""

    def __init__(self, layer: KerasLayer, dtype: str, device: str, bn: bool) -> None:
        self.layer, self.dtype, self.device, self.bn = layer, tf.as_dtype(dtype), device, bn

    def forward(
        self, x: np.ndarray, mode: Mode, grad_output: np.ndarray | None
    ) -> dict[str, np.ndarray]:
        """Call the layer with ``training=(mode == "train")``; with ``grad_output``, take
        the gradients of ``sum(grad_output * output)`` with a ``GradientTape``."""
        with tf.device(self.device):
            xt = tf.cast(tf.constant(x), self.dtype)
            training = mode == "train"
            if grad_output is None:
                return {"output": _to_numpy(self.layer(xt, training=training))}
            g = tf.cast(tf.constant(grad_output), self.dtype)
            with tf.GradientTape() as tape:
                tape.watch(xt)
                y = self.layer(xt, training=training)
                # The sum in float32 (float64 for float64); the cotangent dL/dy = g exactly.
                wide = tf.float64 if self.dtype == tf.float64 else tf.float32
                loss = tf.reduce_sum(tf.cast(y, wide) * tf.cast(g, wide))
            sources: list[Any] = [xt]
            if self.bn and self.layer.scale:
                sources.append(self.layer.gamma)
            if self.bn and self.layer.center:
                sources.append(self.layer.beta)
            # Dropout(rate=1) returns tf.zeros_like(x): unconnected, so ask for zeros.
            grads = tape.gradient(loss, sources,
                                  unconnected_gradients=tf.UnconnectedGradients.ZERO)
            out = {"output": _to_numpy(y), "grad_input": _to_numpy(grads[0])}
            if self.bn and self.layer.scale:
                out["grad_scale"] = _to_numpy(grads[1])
            if self.bn and self.layer.center:
                out["grad_shift"] = _to_numpy(grads[-1])
            return out

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
    documented: ClassVar[dict[str, Documented]] = {
        "bn.running_var_estimator": Documented(
            value="biased",
            link=BN_DOCS,
            fix="moving_variance is fed var(batch), the biased (divide-by-m) variance used to "
                "normalise; a PyTorch/Paddle running_var is fed the unbiased m/(m-1) one. "
                "Multiply the batch variance by m/(m-1) before the update (subclass and "
                "override the moving update) to match, or expect running_var lower by "
                "(m-1)/m per update (m = values per channel).",
        ),
    }

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

    def build(self, layer: LayerSpec, dtype: str, device: str) -> _TfHandle:
        if device not in self.devices():
            raise DeviceUnavailable(
                f"TensorFlow {tf.__version__} sees no {device!r} device; for a GPU install "
                "the CUDA build (pip install 'tensorflow[and-cuda]') on a machine with an "
                "NVIDIA driver" if device == "gpu" else f"unknown device {device!r}")
        with tf.device(_TF_DEVICE[device]):
            if isinstance(layer, BatchNormSpec):
                return _TfHandle(_batch_norm(layer, dtype), dtype, _TF_DEVICE[device], True)
            return _TfHandle(_dropout(layer, dtype), dtype, _TF_DEVICE[device], False)


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
