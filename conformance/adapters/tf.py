"""TensorFlow adapter: the Keras layers bundled with TensorFlow (``tf.keras``, Keras 3 in TF
2.16+), run eagerly. Imported only inside the TensorFlow worker process.

The layers and their translation are Keras' own and backend-neutral
(``conformance.adapters.keras3``); this module binds TensorFlow: ``tf.device``, the
``GradientTape``, ``tf.function`` for the compiled context and the TF1 graph context.

Keras 3's ``BatchNormalization`` is not the fused kernel: it computes ``ops.moments`` (biased
variance) and ``tf.nn.batch_normalization`` in float32 (float16/bfloat16 inputs are upcast),
so any channel axis works on CPU. Its ``momentum`` weighs the *old* moving value.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable

os.environ["TF_CPP_MIN_LOG_LEVEL"] = "2"  # before the import: silence C++ INFO/WARNING logs

from conformance.adapters.keras_env import select_backend

# tf.keras is Keras 3 on TensorFlow, and Keras 3 imports jax when it is installed, whatever its
# backend: keep torch and jax out of this worker, as the other Keras workers keep theirs out
select_backend("tensorflow")

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
from conformance.adapters.keras3 import (
    KerasBackend,
    KerasHandle,
    keras_version,
    layer_for,
    wide,
)
from conformance.model import LayerSpec, Mode

keras = tf.keras  # Keras 3 in TF >= 2.16 (the very classes of ``import keras``)
_TF_DEVICE = {"cpu": "/CPU:0", "gpu": "/GPU:0"}


def _to_numpy(t: Any) -> np.ndarray:
    """A tensor or variable as numpy; bfloat16 comes back as float32."""
    t = tf.convert_to_tensor(t)
    if t.dtype == tf.bfloat16:
        t = tf.cast(t, tf.float32)
    return np.asarray(t.numpy())


class TfBackend(KerasBackend):
    """Keras 3 on TensorFlow: ``tf.device`` scopes, ``tf.constant`` inputs, records only from
    eager calls (Keras also traces layers into graphs to build a Sequential or a step)."""

    name = "tensorflow"

    def device_scope(self, device: str) -> contextlib.AbstractContextManager[Any]:
        return tf.device(device)  # type: ignore[no-any-return]

    def tensor(self, x: np.ndarray, dtype: str) -> Any:
        return tf.cast(tf.constant(x), tf.as_dtype(dtype))

    def numpy(self, t: Any) -> np.ndarray:
        return _to_numpy(t)

    def observe(self, fn: Callable[..., None], *values: Any) -> None:
        if tf.executing_eagerly():  # a symbolic call (Keras building a graph): no values
            fn(*(_to_numpy(v) for v in values))


TF_BACKEND = TfBackend()


class _TfHandle(KerasHandle):
    """One Keras layer, driven on one device in one dtype, eagerly, through a ``tf.function``
    (the ``compiled`` context) or in a TF1 graph (the ``graph`` context).

    Contexts: ``plain`` and ``no_grad`` are both an eager call. Keras/TensorFlow have no
    no-grad context (no ``torch.no_grad`` counterpart): eager ops record nothing unless a
    ``GradientTape`` is open, so an eager call without a tape *is* the native no-grad pass
    (and the spec never asks for gradients under no_grad). ``compiled`` runs the same call
    inside a ``tf.function`` (graph mode, as ``model.fit`` does), cached on this handle; the
    moving statistics are read back from the variables afterwards, so a training-mode update
    made in the graph is observed as it is. ``inference`` is unsupported: TensorFlow has no
    inference-mode context distinct from a tape-less call (``predict`` forces training=False,
    i.e. the eval mode, not a context).
    """

    def forward(
        self, x: np.ndarray, mode: Mode, grad_output: np.ndarray | None, context: str = "plain"
    ) -> dict[str, np.ndarray]:
        if context == "inference":
            raise Unsupported(
                "TensorFlow/Keras have no inference-mode context (torch.inference_mode, "
                "paddle's inference mode): an eager call without a GradientTape is the only "
                "no-recording pass, and it is already the no_grad context; Keras' predict() "
                "forces training=False (eval mode) rather than providing a context")
        if context == "graph":
            return {"output": self._graph_call(np.asarray(x), self.training(mode))}
        return super().forward(x, mode, grad_output, context)

    def _scope(self, context: str) -> contextlib.AbstractContextManager[Any]:
        return contextlib.nullcontext()  # plain and no_grad: an eager call without a tape

    def _compiled_call(self, xt: Any, training: bool, g: Any) -> dict[str, Any]:
        if self._compiled is None:
            self._compiled = tf.function(self._call)
        return self._compiled(xt, training, g)  # type: ignore[no-any-return]

    def _gradients(self, xt: Any, training: bool, g: Any,
                   params: list[Any]) -> tuple[Any, Any, list[Any]]:
        """A ``GradientTape`` over the call, watching the input."""
        with tf.GradientTape() as tape:
            tape.watch(xt)
            y = self.layer(xt, training=training)
            # The sum in float32 (float64 for float64); the cotangent dL/dy = g exactly.
            loss = tf.reduce_sum(tf.cast(y, wide(self.dtype)) * tf.cast(g, wide(self.dtype)))
        # Dropout(rate=1) returns tf.zeros_like(x): unconnected, so ask for zeros.
        grads = tape.gradient(loss, [xt, *params],
                              unconnected_gradients=tf.UnconnectedGradients.ZERO)
        return y, grads[0], list(grads[1:])

    def _graph_call(self, x: np.ndarray, training: bool) -> np.ndarray:
        """TF1-style graph mode: a twin of the layer (same config) is built in a
        ``tf.Graph``, its variables loaded with this layer's values, and the output fetched
        in a ``tf.compat.v1.Session`` under control dependencies on the UPDATE_OPS
        collection, the documented TF1 recipe for running batch-norm updates
        (https://www.tensorflow.org/api_docs/python/tf/compat/v1/layers/batch_normalization).
        The twin's variables are then copied back, so whatever the graph run changed (or
        did not) is what the next step sees."""
        if self.dtype not in ("float32", "float64"):
            raise Unsupported("the graph context is driven in float32 and float64 only")
        values = [np.array(w.numpy()) for w in self.layer.weights]  # eager, before the graph
        graph = tf.Graph()
        with graph.as_default(), tf.device(self.device):
            twin = type(self.layer).from_config(self.layer.get_config())
            placeholder = tf.compat.v1.placeholder(tf.as_dtype(self.dtype), x.shape)
            y = twin(placeholder, training=training)
            with tf.control_dependencies(tf.compat.v1.get_collection(tf.compat.v1.GraphKeys.UPDATE_OPS)):
                y = tf.identity(y)
            # Keras 3 variables wrap a tf.Variable in ``_value``; assign and read it directly
            loads = [tf.compat.v1.assign(w._value, v) for w, v in zip(twin.weights, values)]
            reads = [tf.identity(w._value) for w in twin.weights]
            with tf.compat.v1.Session(graph=graph) as session:
                session.run(tf.compat.v1.global_variables_initializer())
                session.run(loads)
                output = session.run(y, {placeholder: x.astype(self.dtype)})
                after = session.run(reads)
        for var, value in zip(self.layer.weights, after):
            var.assign(value)
        return np.asarray(output)


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
            "keras": keras_version(),
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
            native = layer_for(layer, dtype)
            return _TfHandle(TF_BACKEND, native, layer, dtype, _TF_DEVICE[device])


def _device_name(device: str) -> str:
    if device == "gpu":
        gpus = tf.config.list_physical_devices("GPU")
        details = tf.config.experimental.get_device_details(gpus[0]) if gpus else {}
        return str(details.get("device_name", gpus[0].name if gpus else ""))
    return "cpu"
