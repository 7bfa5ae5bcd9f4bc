"""PyTorch adapter: ``torch.nn.BatchNorm{1,2,3}d`` and ``torch.nn.Dropout`` /
``Dropout{1,2,3}d``.

Documented conventions (https://pytorch.org/docs/stable/generated/torch.nn.BatchNorm2d.html):
``momentum`` is the weight of the new observed value, ``x_new = (1 - momentum) * x_hat +
momentum * x_t``; ``momentum=None`` is a cumulative moving average; the running variance is
updated with the unbiased estimator while normalisation uses the biased one; the layer
counts batches in ``num_batches_tracked``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from conformance.adapters.base import Adapter, DeviceUnavailable, Unsupported
from conformance.model import BatchNormSpec, DropoutSpec, LayerSpec, Mode

DTYPES = {"float64": torch.float64, "float32": torch.float32,
          "float16": torch.float16, "bfloat16": torch.bfloat16}
BATCH_NORMS = {2: torch.nn.BatchNorm1d, 3: torch.nn.BatchNorm1d,
               4: torch.nn.BatchNorm2d, 5: torch.nn.BatchNorm3d}
CHANNEL_DROPOUTS = {3: torch.nn.Dropout1d, 4: torch.nn.Dropout2d, 5: torch.nn.Dropout3d}


def _to_numpy(t: torch.Tensor) -> np.ndarray:
    t = t.detach().cpu()
    # .numpy() shares memory with CPU tensors; running buffers change in place later
    return (t.float() if t.dtype == torch.bfloat16 else t).numpy().copy()


def _channels_to_front(x: torch.Tensor, channel_axis: str) -> torch.Tensor:
    # torch layers only take channels at axis 1 (NCHW); NHWC is moved there and back
    return x if channel_axis == "first" or x.dim() == 2 else torch.movedim(x, -1, 1)


def _channels_to_back(x: torch.Tensor, channel_axis: str) -> torch.Tensor:
    return x if channel_axis == "first" or x.dim() == 2 else torch.movedim(x, 1, -1)


class _Handle:
    def __init__(self, module: torch.nn.Module, spec: LayerSpec, dtype: torch.dtype,
                 device: torch.device) -> None:
        self.module, self.spec, self.dtype, self.device = module, spec, dtype, device

    def forward(self, x: np.ndarray, mode: Mode, grad_output: np.ndarray | None) -> dict[str, np.ndarray]:
        self.module.train(mode == "train")
        xt = torch.as_tensor(np.asarray(x, dtype=np.float64)).to(self.device, self.dtype)
        xt.requires_grad_(grad_output is not None)
        y = _channels_to_back(self.module(_channels_to_front(xt, self.spec.channel_axis)),
                              self.spec.channel_axis)
        out = {"output": _to_numpy(y)}
        if grad_output is not None:
            g = torch.as_tensor(np.asarray(grad_output, np.float64)).to(self.device, self.dtype)
            (y * g).sum().backward()
            out["grad_input"] = _to_numpy(xt.grad)
            weight, bias = getattr(self.module, "weight", None), getattr(self.module, "bias", None)
            if weight is not None and weight.grad is not None:
                out["grad_scale"] = _to_numpy(weight.grad)
                out["grad_shift"] = _to_numpy(bias.grad)
            self.module.zero_grad(set_to_none=True)
        return out

    def state(self) -> dict[str, np.ndarray]:
        m = self.module
        if getattr(m, "running_mean", None) is None:
            return {}
        return {"running_mean": _to_numpy(m.running_mean), "running_var": _to_numpy(m.running_var),
                "batch_count": _to_numpy(m.num_batches_tracked)}


class TorchAdapter(Adapter):
    name = "torch"
    install_hint = 'pip install "conformance[torch]"  (or: pip install torch)'
    documented = {}  # PyTorch's documented conventions are the kit's canonical ones

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
                "tf32_matmul": torch.backends.cuda.matmul.allow_tf32,
                "tf32_cudnn": torch.backends.cudnn.allow_tf32,
            })
        else:
            env["device_name"] = "cpu"
        return env

    def build(self, layer: LayerSpec, dtype: str, device: str) -> _Handle:
        if device not in self.devices():
            raise DeviceUnavailable("torch sees no CUDA GPU (torch.cuda.is_available() is False); "
                                    "run on a machine with a GPU and a CUDA build of torch")
        target = torch.device("cuda:0" if device == "gpu" else "cpu")
        torch_dtype = DTYPES[dtype]
        if isinstance(layer, BatchNormSpec):
            module = self._batch_norm(layer)
        else:
            module = self._dropout(layer)
        return _Handle(module.to(target, torch_dtype), layer, torch_dtype, target)

    def _batch_norm(self, spec: BatchNormSpec) -> torch.nn.Module:
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
            **options,
        )
        with torch.no_grad():
            for name, values in (("weight", spec.scale), ("bias", spec.shift),
                                 ("running_mean", spec.running_mean), ("running_var", spec.running_var)):
                target = getattr(module, name, None)
                if values is not None and target is not None:
                    target.copy_(torch.as_tensor(values))
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
