"""PyTorch adapter: ``torch.nn.BatchNorm{1,2,3}d`` and ``torch.nn.Dropout`` /
``Dropout{1,2,3}d``.

Documented conventions (https://pytorch.org/docs/stable/generated/torch.nn.BatchNorm2d.html):
``momentum`` is the weight of the new observed value, ``x_new = (1 - momentum) * x_hat +
momentum * x_t``; ``momentum=None`` is a cumulative moving average; the running variance is
updated with the unbiased estimator while normalisation uses the biased one; the layer
counts batches in ``num_batches_tracked``.
"""

from __future__ import annotations

import contextlib
from typing import Any, ClassVar

import numpy as np
import torch

from conformance.adapters.base import (
    Adapter,
    DeviceUnavailable,
    Documented,
    Unsupported,
)
from conformance.adapters.documentation import DOCUMENTED
from conformance.model import BatchNormSpec, DropoutSpec, LayerSpec, Mode
from conformance.tree import ModelSpec

DTYPES = {"float64": torch.float64, "float32": torch.float32,
          "float16": torch.float16, "bfloat16": torch.bfloat16}
BATCH_NORMS = {2: torch.nn.BatchNorm1d, 3: torch.nn.BatchNorm1d,
               4: torch.nn.BatchNorm2d, 5: torch.nn.BatchNorm3d}
CHANNEL_DROPOUTS = {3: torch.nn.Dropout1d, 4: torch.nn.Dropout2d, 5: torch.nn.Dropout3d}


def _to_numpy(t: torch.Tensor) -> np.ndarray:
    t = t.detach().cpu()
    # the dtype is kept as torch computed it (float16 stays float16), except bfloat16, which
    # numpy cannot hold: widened to float32, exactly (every bfloat16 value is a float32 value)
    # .numpy() shares memory with CPU tensors; running buffers change in place later
    return (t.float() if t.dtype == torch.bfloat16 else t).numpy().copy()


def _channels_to_front(x: torch.Tensor, channel_axis: str) -> torch.Tensor:
    # torch layers only take channels at axis 1 (NCHW); NHWC is moved there and back
    return x if channel_axis == "first" or x.dim() == 2 else torch.movedim(x, -1, 1)


def _channels_to_back(x: torch.Tensor, channel_axis: str) -> torch.Tensor:
    return x if channel_axis == "first" or x.dim() == 2 else torch.movedim(x, 1, -1)


CONTEXTS = ("plain", "no_grad", "inference", "compiled")


class _Handle:
    def __init__(self, module: torch.nn.Module, spec: LayerSpec, dtype: torch.dtype,
                 device: torch.device) -> None:
        self.module, self.spec, self.dtype, self.device = module, spec, dtype, device
        self._compiled: Any = None  # torch.compile(module), built on the first compiled step

    def _callable(self, context: str) -> Any:
        if context != "compiled":
            return self.module
        if self._compiled is None:
            if not hasattr(torch, "compile"):
                raise Unsupported(f"torch {torch.__version__} has no torch.compile (added in 2.0)")
            # backend="aot_eager": Dynamo captures the graph and AOTAutograd functionalises it
            # (the buffer mutations of the running statistics included) and traces the
            # backward, exactly the path the default inductor backend takes, but the graphs
            # then run with eager kernels, so no C++/Triton compiler is needed. "eager" would
            # skip AOTAutograd, the part that decides whether the buffer updates survive.
            self._compiled = torch.compile(self.module, backend="aot_eager")
        return self._compiled

    def _set_mode(self, mode: Mode) -> None:
        self.module.train(mode == "train")
        if mode == "train" and isinstance(self.spec, BatchNormSpec) and self.spec.frozen:
            # PyTorch's own way to freeze batch norm inside a model that trains: keep the BN
            # module in eval mode (it then normalises with, and does not update, its running
            # statistics; requires_grad of weight/bias is separate, see ``trainable``)
            self.module.eval()

    def forward(self, x: np.ndarray, mode: Mode, grad_output: np.ndarray | None,
                context: str = "plain") -> dict[str, np.ndarray]:
        if context == "graph":
            raise Unsupported("PyTorch has no deferred graph-and-session mode whose output is "
                              "fetched separately from its state updates; its graph compiler is "
                              "torch.compile (the compiled context), which keeps eager semantics")
        if context not in CONTEXTS:
            raise Unsupported(f"the torch adapter knows the contexts {', '.join(CONTEXTS)}, "
                              f"not {context!r}")
        self._set_mode(mode)
        call = self._callable(context)
        xt = torch.as_tensor(np.asarray(x, dtype=np.float64)).to(self.device, self.dtype)
        xt.requires_grad_(grad_output is not None)
        if context == "no_grad":
            scope: Any = torch.no_grad()
        elif context == "inference":
            scope = torch.inference_mode()
        else:
            scope = contextlib.nullcontext()
        with scope:
            y = _channels_to_back(call(_channels_to_front(xt, self.spec.channel_axis)),
                                  self.spec.channel_axis)
        out = {"output": _to_numpy(y)}
        if grad_output is not None:
            # a backward pass of an output computed under no_grad/inference_mode raises in
            # torch; that refusal is the framework's answer and is recorded as such
            g = torch.as_tensor(np.asarray(grad_output, np.float64)).to(self.device, self.dtype)
            (y * g).sum().backward()
            if xt.grad is not None:
                out["grad_input"] = _to_numpy(xt.grad)
            for name, quantity in (("weight", "grad_scale"), ("bias", "grad_shift")):
                param = getattr(self.module, name, None)
                if param is None:
                    continue
                if param.grad is not None:
                    out[quantity] = _to_numpy(param.grad)
                elif not param.requires_grad:
                    # trainable=False: the parameter gets no gradient, reported as zeros
                    out[quantity] = _to_numpy(torch.zeros_like(param))
            self.module.zero_grad(set_to_none=True)
        return out

    def reset_running_stats(self) -> None:
        reset = getattr(self.module, "reset_running_stats", None)
        if reset is None:
            raise Unsupported(f"torch {type(self.module).__name__} has no running statistics")
        reset()  # torch's own: running_mean 0, running_var 1, num_batches_tracked 0

    def state(self) -> dict[str, np.ndarray]:
        buffers: dict[str, torch.Tensor | None] = {
            name: getattr(self.module, attr, None) for name, attr in (
                ("running_mean", "running_mean"), ("running_var", "running_var"),
                ("batch_count", "num_batches_tracked"))}
        return {name: _to_numpy(t) for name, t in buffers.items() if t is not None}


class TorchAdapter(Adapter):
    name = "torch"
    install_hint = 'pip install "conformance[torch]"  (or: pip install torch)'
    documented: ClassVar[dict[str, Documented]] = DOCUMENTED["torch"]  # every convention, with its page

    def version(self) -> str:
        return str(torch.__version__)

    def devices(self) -> list[str]:
        return ["cpu", "gpu"] if torch.cuda.is_available() else ["cpu"]

    def environment(self, device: str) -> dict[str, Any]:
        env = super().environment(device)
        env.update({
            "torch": str(torch.__version__),
            "deterministic_algorithms": torch.are_deterministic_algorithms_enabled(),
            "threads": torch.get_num_threads(),
        })
        if device == "gpu" and torch.cuda.is_available():
            env.update({
                "device_name": torch.cuda.get_device_name(0),
                "cuda": torch.version.cuda,
                "cudnn": torch.backends.cudnn.version(),
                "cudnn_deterministic": torch.backends.cudnn.deterministic,
                "cudnn_benchmark": torch.backends.cudnn.benchmark,
                "tf32_matmul": torch.backends.cuda.matmul.allow_tf32,
                "tf32_cudnn": torch.backends.cudnn.allow_tf32,
            })
        else:
            env["device_name"] = "cpu"
        return env

    def build(self, layer: LayerSpec | ModelSpec, dtype: str, device: str) -> Any:
        if device not in self.devices():
            raise DeviceUnavailable("torch sees no CUDA GPU (torch.cuda.is_available() is False); "
                                    "run on a machine with a GPU and a CUDA build of torch")
        target = torch.device("cuda:0" if device == "gpu" else "cpu")
        torch_dtype = DTYPES[dtype]
        if isinstance(layer, ModelSpec):  # a model case: its own module, imported in this worker only
            from conformance.adapters.torch_model import build_model

            return build_model(layer, torch_dtype, target)
        if isinstance(layer, BatchNormSpec):
            module = self._batch_norm(layer, torch_dtype)
        else:
            module = self._dropout(layer)
        return _Handle(module.to(target, torch_dtype), layer, torch_dtype, target)

    def _batch_norm(self, spec: BatchNormSpec, dtype: torch.dtype) -> torch.nn.Module:
        options: dict[str, Any] = {}
        if spec.native_momentum is not None:
            options["momentum"] = spec.native_momentum  # probe: torch's own argument, as is
        elif spec.update == "cumulative":
            options["momentum"] = None  # torch: momentum=None is the cumulative average
        elif spec.update_weight is not None:
            # torch's momentum is the weight of the new batch statistic, as update_weight
            options["momentum"] = spec.update_weight
        if spec.eps is not None:  # None: keep torch's default
            options["eps"] = spec.eps
        module = BATCH_NORMS[spec.rank](
            spec.num_features,
            affine=spec.affine,
            track_running_stats=spec.running_stats,
            dtype=dtype,  # built in the case's dtype, so initial values are set without a float32 detour
            **options,
        )
        with torch.no_grad():
            for name, values in (("weight", spec.scale), ("bias", spec.shift),
                                 ("running_mean", spec.running_mean), ("running_var", spec.running_var)):
                target = getattr(module, name, None)
                if values is not None and target is not None:
                    target.copy_(torch.as_tensor(values, dtype=target.dtype))
        if not spec.trainable and spec.affine:
            # trainable=False: scale and shift take no gradient (torch's requires_grad_(False))
            module.weight.requires_grad_(False)
            module.bias.requires_grad_(False)
        return module

    def _dropout(self, spec: DropoutSpec) -> torch.nn.Module:
        if spec.scaling == "eval":
            raise Unsupported("torch dropout always scales kept values by 1/(1-p) in training; "
                              "it has no downscale-in-inference mode")
        if spec.seed is not None:
            torch.manual_seed(spec.seed)
        # torch's p is the probability to drop, as rate; a native rate is passed as is
        p = spec.rate if spec.native_rate is None else spec.native_rate
        if spec.granularity == "element":
            return torch.nn.Dropout(p=p)
        if spec.rank not in CHANNEL_DROPOUTS:
            raise Unsupported(f"torch has channel-wise dropout for rank 3 to 5 inputs, not rank {spec.rank}")
        # Dropout1d/2d/3d zero whole channels (one draw per sample and channel)
        return CHANNEL_DROPOUTS[spec.rank](p=p)
