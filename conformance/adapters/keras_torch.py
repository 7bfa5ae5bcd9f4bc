"""Keras 3 on its PyTorch backend (``KERAS_BACKEND=torch``): the backend-neutral Keras layers
and models of ``conformance.adapters.keras3`` / ``keras3_model`` with torch's hooks. Imported
only inside the ``keras-torch`` worker process (it imports torch, never tensorflow or jax).

On torch a Keras variable holds a ``torch.nn.Parameter`` (``variable.value``), created with
``requires_grad = variable.trainable``; the gradients are ``torch.autograd.grad`` of
``sum(grad_output * output)`` with respect to the input and those parameters. Contexts:
``no_grad`` is ``torch.no_grad()``, ``inference`` is ``torch.inference_mode()`` (Keras' moving
updates are ``copy_`` into the parameters, which inference mode permits), ``compiled`` is
``torch.compile`` of the call, what Keras itself does on torch for ``jit_compile=True``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable

from conformance.adapters.keras_env import check_backend, select_backend

select_backend("torch")  # before keras is imported anywhere in this process

from typing import Any, ClassVar

import keras
import torch
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

check_backend(keras.backend.backend(), "torch", "keras-torch")

_DEVICE = {"cpu": "cpu", "gpu": "cuda:0"}  # Keras' torch device names


class TorchBackend(KerasBackend):
    """Keras' own device scope and tensor conversion (torch tensors on the scope's device);
    records skip Keras' symbolic calls (shape inference on the ``meta`` device, or on real
    tensors filled with a constant when an op lacks meta support)."""

    name = "torch"

    def observe(self, fn: Callable[..., None], *values: Any) -> None:
        if in_symbolic_scope() or any(getattr(v, "is_meta", False) for v in values):
            return
        fn(*(self.numpy(v) for v in values))


TORCH_BACKEND = TorchBackend()


class _KerasTorchHandle(KerasHandle):
    """One Keras layer on torch."""

    def _scope(self, context: str) -> contextlib.AbstractContextManager[Any]:
        if context == "graph":
            raise _no_graph()
        if context == "no_grad":
            return torch.no_grad()
        if context == "inference":
            return torch.inference_mode()
        return contextlib.nullcontext()

    def _compiled_call(self, xt: Any, training: bool, g: Any) -> dict[str, Any]:
        if self._compiled is None:
            # Keras on torch compiles its train/predict step with torch.compile when
            # jit_compile=True: the same compiler over the layer call
            self._compiled = torch.compile(self._call)
        return self._compiled(xt, training, g)  # type: ignore[no-any-return]

    def _gradients(self, xt: Any, training: bool, g: Any,
                   params: list[Any]) -> tuple[Any, Any, list[Any]]:
        """``torch.autograd.grad`` w.r.t. the input (a fresh leaf) and the parameters behind
        the trainable Keras variables (``variable.value``); an unused one gets zeros."""
        xt = xt.detach().requires_grad_(True)
        y = self.layer(xt, training=training)
        loss = (y.to(getattr(torch, wide(self.dtype))) * g.to(getattr(torch, wide(self.dtype)))).sum()
        tensors = [xt, *(p.value for p in params)]
        found = torch.autograd.grad(loss, tensors, allow_unused=True)
        grads = [torch.zeros_like(t) if gr is None else gr for t, gr in zip(tensors, found)]
        return y, grads[0], grads[1:]


def _no_graph() -> Exception:
    return Unsupported("the graph context is TensorFlow 1's Session graph; Keras on torch runs "
                       "eagerly (or through torch.compile: the compiled context)")


class KerasTorchAdapter(Adapter):
    """Keras 3 layers on the torch backend."""

    name = "keras-torch"
    install_hint = 'pip install "conformance[keras-torch]"  (or: pip install keras torch)'
    documented: ClassVar[dict[str, Documented]] = DOCUMENTED["keras-torch"]

    def version(self) -> str:
        return keras_version()

    def devices(self) -> list[str]:
        return ["cpu", "gpu"] if torch.cuda.is_available() else ["cpu"]

    def environment(self, device: str) -> dict[str, Any]:
        env = super().environment(device)
        env.update({
            "keras": keras_version(),
            "keras_backend": keras.backend.backend(),
            "torch": str(torch.__version__),
            "device": device,
            "deterministic_algorithms": torch.are_deterministic_algorithms_enabled(),
            "cudnn_deterministic": torch.backends.cudnn.deterministic,
            "cudnn_benchmark": torch.backends.cudnn.benchmark,
            "tf32_matmul": torch.backends.cuda.matmul.allow_tf32,
            "tf32_cudnn": torch.backends.cudnn.allow_tf32,
            "threads": torch.get_num_threads(),
            "device_name": torch.cuda.get_device_name(0) if device == "gpu" and torch.cuda.is_available()
            else "cpu",
        })
        if torch.cuda.is_available():
            env.update({"cuda": torch.version.cuda, "cudnn": torch.backends.cudnn.version()})
        return env

    def build(self, layer: LayerSpec | ModelSpec, dtype: str, device: str) -> Any:
        if device not in self.devices():
            raise DeviceUnavailable(
                "torch sees no CUDA GPU (torch.cuda.is_available() is False); run on a machine "
                "with a GPU and a CUDA build of torch" if device == "gpu" else f"unknown device {device!r}")
        target = _DEVICE[device]
        if isinstance(layer, ModelSpec):
            from conformance.adapters.keras3_model import build_model

            return build_model(TORCH_BACKEND, layer, dtype, target)
        with TORCH_BACKEND.device_scope(target):
            return _KerasTorchHandle(TORCH_BACKEND, layer_for(layer, dtype), layer, dtype, target)
