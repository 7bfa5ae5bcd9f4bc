"""PaddlePaddle snippets: ``paddle.nn.BatchNorm1D/2D/3D`` and ``paddle.nn.Dropout``,
``train()``/``eval()``, gradients through ``backward()``."""

from __future__ import annotations

from typing import Any

from conformance.report.snippets import common
from conformance.report.snippets.common import Layer

BATCH_NORMS = {2: ("BatchNorm1D", "NC", "NC"), 3: ("BatchNorm1D", "NCL", "NLC"),
               4: ("BatchNorm2D", "NCHW", "NHWC"), 5: ("BatchNorm3D", "NCDHW", "NDHWC")}
SHOWN = {"output": "y", "grad_input": "x.grad", "grad_scale": "layer.weight.grad",
         "grad_shift": "layer.bias.grad", "running_mean": "layer._mean", "running_var": "layer._variance"}
CONTEXTS = {"no_grad": "with paddle.no_grad():  # gradient recording off",
            "inference": "with paddle.no_grad():  # Paddle has no separate inference context"}


def imports() -> list[str]:
    return ["import numpy as np", "import paddle"]


def tensor(name: str, dtype: str) -> str:
    """The numpy input ``name`` as a tensor, converted as the kit's Paddle adapter does:
    float64 or float32 numpy, then Paddle's cast to the dtype (exact: already rounded)."""
    wide = "float64" if dtype == "float64" else "float32"
    return (f"{name} = paddle.to_tensor(np.asarray({name}, dtype=np.{wide})).astype({dtype!r})"
            "  # as the kit's adapter converts it")


def batch_norm(layer: Layer, dtype: str) -> list[str]:
    cls, first, last = BATCH_NORMS[int(layer["rank"])]
    lines = []
    if dtype == "float64":
        lines.append('paddle.set_default_dtype("float64")  # parameters and statistics in float64')
    args = [(str(layer["num_features"]), "num_features"), common.momentum(layer, weighs_old=True),
            common.eps(layer, "epsilon")]
    if not layer.get("affine", True):
        args += [("weight_attr=False", "affine: false -> no scale"), ("bias_attr=False", "no shift")]
    args.append((f"data_format={last if common.channels_last(layer) else first!r}",
                 f"channel_axis: {layer.get('channel_axis', 'first')}"))
    if layer.get("frozen", False):
        args.append(("use_global_stats=True", "frozen: normalise with the running statistics, no update"))
    elif not layer.get("running_stats", True):
        args.append(("use_global_stats=False", "running_stats: false -> batch statistics in eval too"))
    lines += common.call(f"layer = paddle.nn.{cls}", args)
    wide = "float64" if dtype == "float64" else "float32"  # Paddle's parameter dtype
    for key, attr in common.initial_values(layer, {"scale": "weight", "shift": "bias", "running_mean": "_mean",
                                                   "running_var": "_variance"}):
        lines.append(f"layer.{attr}.set_value(np.array({layer[key]!r}, dtype={wide!r}))  # {key}")
    if not layer.get("trainable", True) and layer.get("affine", True):
        lines += ["layer.weight.stop_gradient = True  # trainable: false -> no gradient for scale",
                  "layer.bias.stop_gradient = True  # ... nor for shift"]
    return lines


def dropout(layer: Layer, dtype: str) -> list[str]:
    rate, comment = common.rate(layer)
    lines = [f"paddle.seed({layer['seed']})"] if layer.get("seed") is not None else []
    args = [(f"p={rate}", comment)]
    if layer.get("granularity", "element") == "channel":
        args.append((f"axis=[0, {common.channel_index(layer)}]",
                     "channel-wise: one draw per (sample, channel), shared along the other axes"))
    if layer.get("scaling", "train") == "eval":
        args.append(('mode="downscale_in_infer"', "scaling: eval -> unscaled in training, x (1-p) in eval"))
    else:
        args.append(('mode="upscale_in_train"', "scaling: train -> inverted dropout, x 1/(1-p) in training"))
    return [*lines, *common.call("layer = paddle.nn.Dropout", args),
            common.mask_comment("Paddle's own generator (paddle.seed, as the kit seeds it)")]


def reset(layer: Layer) -> list[str]:
    n = layer["num_features"]
    return ["# Paddle has no reset method: set the buffers",
            f"layer._mean.set_value(np.zeros({n}, dtype=layer._mean.numpy().dtype))",
            f"layer._variance.set_value(np.ones({n}, dtype=layer._variance.numpy().dtype))"]


def compiler() -> list[str]:
    return ["def run_layer(t):  # to_static on a function leaves layer's own forward eager",
            "    return layer(t)", "",
            "compiled = paddle.jit.to_static(run_layer, full_graph=True)  # through Paddle's compiler"]


def prints(observe: list[str]) -> list[str]:
    return common.prints(observe, SHOWN, "Paddle")


def forward(step: dict[str, Any], layer: Layer, observe: list[str], switch: bool) -> list[str]:
    x, g = step["input"], step.get("grad_output")
    context = step.get("context", "plain")
    lines = [("layer.train()" if step["mode"] == "train" else "layer.eval()")] if switch else []
    if g:
        lines += [f"x = {x}.clone()", "x.stop_gradient = False  # ask for the input's gradient"]
        x = "x"
    module = "compiled" if context == "compiled" else "layer"
    call = f"y = {module}({x})"
    lines += [CONTEXTS[context], "    " + call] if context in CONTEXTS else [call]
    if g:
        lines.append(f"(y * {g}).sum().backward()  # gradients of sum(grad_output * output)")
    lines += prints(observe)
    if g:
        lines.append("layer.clear_gradients()")
    return lines
