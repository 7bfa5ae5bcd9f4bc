"""PyTorch snippets: ``torch.nn.BatchNorm{1,2,3}d``, ``Dropout`` / ``Dropout{1,2,3}d``,
``train()``/``eval()``, gradients through ``backward()``."""

from __future__ import annotations

from typing import Any

from conformance.report.snippets import common
from conformance.report.snippets.common import Layer

BATCH_NORMS = {2: "BatchNorm1d", 3: "BatchNorm1d", 4: "BatchNorm2d", 5: "BatchNorm3d"}
CHANNEL_DROPOUTS = {3: "Dropout1d", 4: "Dropout2d", 5: "Dropout3d"}
SHOWN = {"output": "y", "grad_input": "x.grad", "grad_scale": "layer.weight.grad",
         "grad_shift": "layer.bias.grad", "running_mean": "layer.running_mean",
         "running_var": "layer.running_var", "batch_count": "layer.num_batches_tracked"}
CONTEXTS = {"no_grad": "with torch.no_grad():  # gradient recording off",
            "inference": "with torch.inference_mode():  # torch's inference context"}


def imports() -> list[str]:
    return ["import numpy as np", "import torch"]


def tensor(name: str, dtype: str) -> str:
    """The numpy input ``name`` as a tensor, converted as the kit's torch adapter does."""
    return (f"{name} = torch.as_tensor(np.asarray({name}, dtype=np.float64)).to(torch.{dtype})"
            "  # as the kit's adapter converts it")


def batch_norm(layer: Layer, dtype: str) -> list[str]:
    args = [(str(layer["num_features"]), "num_features"), common.eps(layer, "eps"),
            common.momentum(layer, weighs_old=False)]
    if not layer.get("affine", True):
        args.append(("affine=False", "no scale (weight) and shift (bias)"))
    if not layer.get("running_stats", True):
        args.append(("track_running_stats=False", "no running statistics: batch statistics in eval too"))
    args.append((f"dtype=torch.{dtype}", ""))
    lines = common.call(f"layer = torch.nn.{BATCH_NORMS[int(layer['rank'])]}", args)
    initial = common.initial_values(layer, {"scale": "weight", "shift": "bias", "running_mean": "running_mean",
                                            "running_var": "running_var"})
    if initial:
        lines.append("with torch.no_grad():  # the spec's initial values")
        lines += [f"    layer.{attr}.copy_(torch.tensor({layer[key]!r}))  # {key}" for key, attr in initial]
    if not layer.get("trainable", True) and layer.get("affine", True):
        lines += ["layer.weight.requires_grad_(False)  # trainable: false -> no gradient for scale",
                  "layer.bias.requires_grad_(False)  # ... nor for shift"]
    return lines


def dropout(layer: Layer, dtype: str) -> list[str]:
    rate, comment = common.rate(layer)
    lines = [f"torch.manual_seed({layer['seed']})"] if layer.get("seed") is not None else []
    if layer.get("scaling", "train") == "eval":
        lines.append("# torch has no downscale-in-inference dropout (scaling: eval): inverted dropout here")
    rank = int(layer["rank"])
    cls = "Dropout"
    if layer.get("granularity", "element") == "channel" and rank in CHANNEL_DROPOUTS:
        cls = CHANNEL_DROPOUTS[rank]
        comment += f"; {cls} zeroes whole channels (one draw per sample and channel)"
    return [*lines, f"layer = torch.nn.{cls}(p={rate})  # {comment}",
            common.mask_comment("torch's own generator (torch.manual_seed, as the kit seeds it)")]


def reset(layer: Layer) -> list[str]:
    return ["layer.reset_running_stats()"]


def compiler() -> list[str]:
    return ['compiled = torch.compile(layer, backend="aot_eager")  # graph capture, eager kernels']


def prints(observe: list[str]) -> list[str]:
    return common.prints(observe, SHOWN, "torch")


def forward(step: dict[str, Any], layer: Layer, observe: list[str], switch: bool) -> list[str]:
    x, g = step["input"], step.get("grad_output")
    context = step.get("context", "plain")
    frozen = layer.get("frozen", False) and step["mode"] == "train"
    lines = []
    if switch and frozen:
        lines.append("layer.eval()  # frozen: torch keeps a frozen batch norm in eval mode")
    elif switch:
        lines.append("layer.train()" if step["mode"] == "train" else "layer.eval()")
    if g:
        lines.append(f"x = {x}.clone().requires_grad_()")
        x = "x"
    module = "compiled" if context == "compiled" else "layer"
    if common.channels_last(layer) and int(layer["rank"]) > 2:
        call = (f"y = {module}({x}.movedim(-1, 1)).movedim(1, -1)  # torch takes channels at axis 1: "
                "move them there and back")
    else:
        call = f"y = {module}({x})"
    lines += [CONTEXTS[context], "    " + call] if context in CONTEXTS else [call]
    if g:
        lines.append(f"(y * {g}).sum().backward()  # gradients of sum(grad_output * output)")
    lines += prints(observe)
    if g:
        lines.append("layer.zero_grad()")
    return lines
