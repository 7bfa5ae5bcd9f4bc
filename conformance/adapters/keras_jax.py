"""Keras 3 on its JAX backend (``KERAS_BACKEND=jax``): the backend-neutral Keras layers and
models of ``conformance.adapters.keras3`` / ``keras3_model`` with JAX's hooks. Imported only
inside the ``keras-jax`` worker process (it imports jax, never tensorflow or torch).

JAX is functional: gradients are ``jax.value_and_grad`` of the layer's ``stateless_call``
(trainable and non-trainable values in, output and the new non-trainable values out) for
``loss = sum(grad_output * output)``, and the returned non-trainable values (the moving
statistics, a dropout's seed state) are assigned back to the layer's variables, as Keras' own
JAX trainer does after each step. ``compiled`` is ``jax.jit`` of that stateless call.
``jax_enable_x64`` is switched on at import: without it JAX holds no float64 array, and a Keras
float64 layer would silently compute in float32.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable

from conformance.adapters.keras_env import check_backend, select_backend

select_backend("jax")  # before keras is imported anywhere in this process

from typing import Any, ClassVar

import jax

jax.config.update("jax_enable_x64", True)  # float64 cases: JAX's arrays are 32-bit otherwise

import keras
from keras.src.backend.common.symbolic_scope import in_symbolic_scope

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
from conformance.model import LayerSpec
from conformance.tree import ModelSpec

check_backend(keras.backend.backend(), "jax", "keras-jax")

_DEVICE = {"cpu": "cpu:0", "gpu": "gpu:0"}  # Keras' JAX device names


class JaxBackend(KerasBackend):
    """Keras' own device scope and tensor conversion (jax arrays). A traced value (a training
    step differentiating ``stateless_call``) reaches the recorder through
    ``jax.debug.callback``, which runs it with the concrete values; Keras' symbolic calls
    (shape inference with ``jax.eval_shape``) record nothing."""

    name = "jax"

    def observe(self, fn: Callable[..., None], *values: Any) -> None:
        if not any(isinstance(v, jax.core.Tracer) for v in values):
            fn(*(self.numpy(v) for v in values))
        elif not in_symbolic_scope():
            jax.debug.callback(lambda *concrete: fn(*(self.numpy(v) for v in concrete)), *values)


JAX_BACKEND = JaxBackend()


class _KerasJaxHandle(KerasHandle):
    """One Keras layer on JAX."""

    def _scope(self, context: str) -> contextlib.AbstractContextManager[Any]:
        if context == "inference":
            raise Unsupported(
                "JAX/Keras have no inference-mode context (torch.inference_mode): JAX records "
                "nothing outside jax.grad, so a plain call is the only no-recording pass, and it "
                "is already the no_grad context; Keras' predict() forces training=False (eval "
                "mode) rather than providing a context")
        if context == "graph":
            raise Unsupported("the graph context is TensorFlow 1's Session graph; Keras on JAX "
                              "runs eagerly (or through jax.jit: the compiled context)")
        # plain and no_grad: JAX has no no-grad context (no torch.no_grad counterpart); an eager
        # call outside jax.grad records nothing, so it is the native no-grad pass
        return contextlib.nullcontext()

    def _values(self) -> tuple[list[Any], list[Any]]:
        return ([v.value for v in self.layer.trainable_variables],
                [v.value for v in self.layer.non_trainable_variables])

    def _stateless(self, training: bool) -> Callable[..., Any]:
        """``(x, trainable, non_trainable, g) -> ((loss, (y, non_trainable')))``: the layer's
        stateless call and the gradient sum, in ``wide(dtype)``."""
        def loss(x: Any, trainable: list[Any], non_trainable: list[Any], g: Any) -> Any:
            y, updated = self.layer.stateless_call(trainable, non_trainable, x, training=training)
            total = None if g is None else (y.astype(wide(self.dtype)) * g.astype(wide(self.dtype))).sum()
            return total, (y, updated)
        return loss

    def _store(self, updated: list[Any]) -> None:
        """Assign the stateless call's new non-trainable values back (Keras' JAX trainer does
        the same after a step): the moving statistics and the dropout seed state."""
        for var, value in zip(self.layer.non_trainable_variables, updated):
            var.assign(value)

    def _gradients(self, xt: Any, training: bool, g: Any,
                   params: list[Any]) -> tuple[Any, Any, list[Any]]:
        trainable, non_trainable = self._values()
        grad = jax.value_and_grad(self._stateless(training), argnums=(0, 1), has_aux=True)
        (_, (y, updated)), (grad_x, grad_w) = grad(xt, trainable, non_trainable, g)
        self._store(updated)
        by_var = dict(zip((id(v) for v in self.layer.trainable_variables), grad_w))
        return y, grad_x, [by_var[id(p)] for p in params]

    def _compiled_call(self, xt: Any, training: bool, g: Any) -> dict[str, Any]:
        if self._compiled is None:
            self._compiled = {}
        key = (training, g is None)
        if key not in self._compiled:  # one jitted function per training flag (a static argument)
            stateless = self._stateless(training)
            if g is None:
                self._compiled[key] = jax.jit(lambda x, t, n, _: stateless(x, t, n, None)[1])
            else:
                self._compiled[key] = jax.jit(jax.value_and_grad(stateless, argnums=(0, 1), has_aux=True))
        trainable, non_trainable = self._values()
        if g is None:
            y, updated = self._compiled[key](xt, trainable, non_trainable, None)
            self._store(updated)
            return {"output": y}
        (_, (y, updated)), (grad_x, grad_w) = self._compiled[key](xt, trainable, non_trainable, g)
        self._store(updated)
        return self.observed(y, grad_x, list(self.layer.trainable_variables), list(grad_w))


class KerasJaxAdapter(Adapter):
    """Keras 3 layers on the JAX backend."""

    name = "keras-jax"
    install_hint = 'pip install "conformance[keras-jax]"  (or: pip install keras jax)'
    documented: ClassVar[dict[str, Documented]] = DOCUMENTED["keras-jax"]

    def version(self) -> str:
        return keras_version()

    def devices(self) -> list[str]:
        found = ["cpu"]
        try:
            if jax.devices("gpu"):
                found.append("gpu")
        except RuntimeError:  # no GPU backend in this jaxlib, or no device
            pass
        return found

    def environment(self, device: str) -> dict[str, Any]:
        env = super().environment(device)
        platform = "gpu" if device == "gpu" else "cpu"
        try:
            target = jax.devices(platform)[0]
            name = str(getattr(target, "device_kind", platform))
        except RuntimeError:
            name = platform
        env.update({
            "keras": keras_version(),
            "keras_backend": keras.backend.backend(),
            "jax": str(jax.__version__),
            "jaxlib": str(getattr(jax.lib, "__version__", "")) or _package_version("jaxlib"),
            # JAX's CUDA build is a plugin package (its CUDA and cuDNN come as wheels with it)
            "cuda_plugin": _package_version("jax-cuda12-plugin") or _package_version("jax-cuda13-plugin") or None,
            "device": device,
            "device_name": name,
            "jax_enable_x64": bool(_flag("jax_enable_x64")),
            "jax_default_matmul_precision": _flag("jax_default_matmul_precision"),
            "xla_flags_env": os.environ.get("XLA_FLAGS"),
            "xla_gpu_deterministic_ops": "--xla_gpu_deterministic_ops=true" in os.environ.get("XLA_FLAGS", ""),
        })
        return env

    def build(self, layer: LayerSpec | ModelSpec, dtype: str, device: str) -> Any:
        if device not in self.devices():
            raise DeviceUnavailable(
                "jax sees no GPU (jax.devices('gpu') fails); install jax[cuda12] on a machine "
                "with an NVIDIA driver" if device == "gpu" else f"unknown device {device!r}")
        target = _DEVICE[device]
        if isinstance(layer, ModelSpec):
            from conformance.adapters.keras3_model import build_model

            return build_model(JAX_BACKEND, layer, dtype, target)
        with JAX_BACKEND.device_scope(target):
            return _KerasJaxHandle(JAX_BACKEND, layer_for(layer, dtype), layer, dtype, target)


def _flag(name: str) -> Any:
    """A jax.config flag's value (the flags are attributes mypy cannot see)."""
    return jax.config.values.get(name) if hasattr(jax.config, "values") else None


def _package_version(name: str) -> str:
    from importlib import metadata

    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return ""
