"""A short program in a framework's own API that reproduces a case: the layer built with the
neutral parameters translated (each translation commented on its line), then the steps as
``train()``/``eval()`` calls (torch, Paddle) or ``training=True/False`` (Keras), printing
what the case observes.

Translations, with ``w`` the spec's ``update_weight`` (the weight of the NEW batch statistic
in ``running <- (1 - w) * running + w * batch``):

- torch ``momentum = w``; a cumulative average is ``momentum=None``.
- Paddle and Keras ``momentum = 1 - w`` (their momentum weighs the OLD value).
- ``eps`` is torch's ``eps`` and Paddle's / Keras' ``epsilon``; the channel axis is Paddle's
  ``data_format`` and Keras' ``axis``; ``affine`` is torch's ``affine``, Paddle's
  ``weight_attr``/``bias_attr=False`` and Keras' ``center``/``scale``.

Inputs are random with the case's shapes (the kit's own values come from the spec's seeds).
Only the spec's parameters are known here, not values measured by the run.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

Program = dict[str, Any]
FRAMEWORKS = ("torch", "paddle", "tf")
TORCH_BN = {2: "BatchNorm1d", 3: "BatchNorm1d", 4: "BatchNorm2d", 5: "BatchNorm3d"}
TORCH_CHANNEL_DROPOUT = {3: "Dropout1d", 4: "Dropout2d", 5: "Dropout3d"}
PADDLE_BN = {2: ("BatchNorm1D", "NC", "NC"), 3: ("BatchNorm1D", "NCL", "NLC"),
             4: ("BatchNorm2D", "NCHW", "NHWC"), 5: ("BatchNorm3D", "NCDHW", "NDHWC")}
# quantity -> attribute holding it, per framework ("" where the framework has none)
STATE = {
    "torch": {"running_mean": "layer.running_mean", "running_var": "layer.running_var",
              "batch_count": "layer.num_batches_tracked"},
    "paddle": {"running_mean": "layer._mean", "running_var": "layer._variance", "batch_count": ""},
    "tf": {"running_mean": "layer.moving_mean", "running_var": "layer.moving_variance",
           "batch_count": ""},
}
GRADS = ("grad_input", "grad_scale", "grad_shift")


def snippet(program: Program, framework: str, until_step: int | None = None,
            focus: list[str] | None = None) -> str:
    """Code for ``framework`` (torch, paddle, tf) running ``program``'s steps up to
    ``until_step`` (all by default) and printing the observed quantities (only those in
    ``focus`` when given). Empty for other frameworks."""
    builder = BUILDERS.get(framework)
    if builder is None:
        return ""
    layer = program["layer"]
    steps = program["steps"][: None if until_step is None else until_step + 1]
    used = [n for s in steps for n in (s["input"], s.get("grad_output")) if n]
    names = list(dict.fromkeys(used))
    lines = builder["imports"]() + [
        "", "rng = np.random.default_rng(0)  # random inputs of the case's shapes"]
    dtype = program.get("dtype", "float32")
    lines += [builder["tensor"](n, program["inputs"][n], dtype) for n in names if n in program["inputs"]]
    build = builder["batch_norm"] if layer.get("kind") == "batch_norm" else builder["dropout"]
    lines += build(layer, dtype)
    mode = ""
    for i, step in enumerate(steps):
        wanted = [q for q in step.get("observe", ["output"]) if focus is None or q in focus]
        lines += ["", f"# step {i}: {step['mode']} on {step['input']}"]
        lines += builder["step"](step, layer, wanted, step["mode"] != mode)
        mode = step["mode"]
    return "\n".join(lines) + "\n"


# ---- shared translations -------------------------------------------------------------------

def _num(value: float) -> str:
    """A float as a short literal: 1 - 0.1 prints as 0.9, not 0.9000000000000001."""
    return repr(float(f"{value:.12g}"))


def _momentum(layer: dict[str, Any], native_old: bool) -> tuple[str, str]:
    """``(argument, comment)`` for the momentum; native_old: the framework's momentum
    weighs the old value (Paddle, Keras)."""
    if "native_momentum" in layer:
        return (f"momentum={_num(layer['native_momentum'])}",
                "passed as is, untranslated: probes what this framework's momentum means")
    if layer.get("update") == "cumulative":
        if not native_old:
            return "momentum=None", "None: cumulative average (update: cumulative)"
        return "", "no cumulative average in this framework: momentum is always an EMA"
    if "update_weight" not in layer:
        return "", "momentum left at the framework's default (update_weight: default)"
    w = float(layer["update_weight"])
    if native_old:
        return (f"momentum={_num(1.0 - w)}",
                f"momentum = 1 - update_weight ({_num(w)}): it weighs the OLD running value")
    return f"momentum={_num(w)}", "momentum = update_weight: the weight of the NEW batch statistic"


def _eps(layer: dict[str, Any], name: str) -> tuple[str, str]:
    if "eps" not in layer:
        return "", f"{name} left at the framework's default (eps: default)"
    renamed = "" if name == "eps" else f"{name} = eps, "
    return f"{name}={_num(layer['eps'])}", f"{renamed}added to the variance inside the sqrt"


def _call(head: str, args: list[tuple[str, str]]) -> list[str]:
    """``head(`` then one argument a line, each with its translation comment."""
    lines = [f"{head}("]
    for arg, comment in args:
        if arg:
            lines.append(f"    {arg},{'  # ' + comment if comment else ''}")
        elif comment:
            lines.append(f"    # {comment}")
    return lines + [")"]


def _channel_index(layer: dict[str, Any]) -> int:
    return 1 if layer.get("channel_axis", "first") == "first" else int(layer["rank"]) - 1


def _rate(layer: dict[str, Any]) -> tuple[str, str]:
    if "native_rate" in layer:
        return _num(layer["native_rate"]), "passed as is, untranslated: probes what the rate means"
    return _num(layer.get("rate", 0.5)), "the probability of DROPPING an element"


# ---- torch ---------------------------------------------------------------------------------

def _torch_imports() -> list[str]:
    return ["import numpy as np", "import torch"]


def _torch_tensor(name: str, shape: list[int], dtype: str) -> str:
    return f"{name} = torch.tensor(rng.normal(size={tuple(shape)}), dtype=torch.{dtype})"


def _torch_batch_norm(layer: dict[str, Any], dtype: str) -> list[str]:
    args = [(str(layer["num_features"]), "num_features"), _eps(layer, "eps"), _momentum(layer, False)]
    if not layer.get("affine", True):
        args.append(("affine=False", "no scale (weight) and shift (bias)"))
    if not layer.get("running_stats", True):
        args.append(("track_running_stats=False", "no running statistics: batch statistics in eval too"))
    args.append((f"dtype=torch.{dtype}", ""))
    lines = _call(f"layer = torch.nn.{TORCH_BN[int(layer['rank'])]}", args)
    initial = [(k, a) for k, a in (("scale", "weight"), ("shift", "bias"), ("running_mean", "running_mean"),
                                   ("running_var", "running_var")) if k in layer]
    if initial:
        lines.append("with torch.no_grad():  # the spec's initial values")
        lines += [f"    layer.{a}.copy_(torch.tensor({layer[k]!r}))  # {k}" for k, a in initial]
    return lines


def _torch_dropout(layer: dict[str, Any], dtype: str) -> list[str]:
    rate, comment = _rate(layer)
    lines = [f"torch.manual_seed({layer['seed']})"] if layer.get("seed") is not None else []
    if layer.get("scaling", "train") == "eval":
        lines.append("# torch has no downscale-in-inference dropout (scaling: eval): inverted dropout here")
    rank = int(layer["rank"])
    if layer.get("granularity", "element") == "channel" and rank in TORCH_CHANNEL_DROPOUT:
        cls = TORCH_CHANNEL_DROPOUT[rank]
        comment += f"; {cls} zeroes whole channels (one draw per sample and channel)"
    else:
        cls = "Dropout"
    return lines + [f"layer = torch.nn.{cls}(p={rate})  # {comment}"]


def _torch_step(step: dict[str, Any], layer: dict[str, Any], observe: list[str],
                switch: bool) -> list[str]:
    moved = layer.get("channel_axis", "first") == "last" and int(layer["rank"]) > 2
    x, g = step["input"], step.get("grad_output")
    lines = [_mode_call(step)] if switch else []
    if g:
        lines.append(f"x = {x}.clone().requires_grad_()")
        x = "x"
    if moved:
        lines.append(f"y = layer({x}.movedim(-1, 1)).movedim(1, -1)  # torch takes channels at "
                     "axis 1: move them there and back")
    else:
        lines.append(f"y = layer({x})")
    if g:
        lines.append(f"(y * {g}).sum().backward()  # gradients of sum(grad_output * output)")
    shown = {"output": "y", "grad_input": "x.grad", "grad_scale": "layer.weight.grad",
             "grad_shift": "layer.bias.grad", **STATE["torch"]}
    lines += _prints(observe, shown, "torch")
    if g:
        lines.append("layer.zero_grad()")
    return lines


# ---- paddle --------------------------------------------------------------------------------

def _paddle_imports() -> list[str]:
    return ["import numpy as np", "import paddle"]


def _paddle_tensor(name: str, shape: list[int], dtype: str) -> str:
    return f"{name} = paddle.to_tensor(rng.normal(size={tuple(shape)}), dtype={dtype!r})"


def _paddle_batch_norm(layer: dict[str, Any], dtype: str) -> list[str]:
    cls, first, last = PADDLE_BN[int(layer["rank"])]
    fmt = first if layer.get("channel_axis", "first") == "first" else last
    lines = []
    if dtype == "float64":
        lines.append('paddle.set_default_dtype("float64")  # parameters and statistics in float64')
    args = [(str(layer["num_features"]), "num_features"), _momentum(layer, True), _eps(layer, "epsilon")]
    if not layer.get("affine", True):
        args += [("weight_attr=False", "affine: false -> no scale"), ("bias_attr=False", "no shift")]
    args.append((f"data_format={fmt!r}", f"channel_axis: {layer.get('channel_axis', 'first')}"))
    if not layer.get("running_stats", True):
        args.append(("use_global_stats=False", "running_stats: false -> batch statistics in eval too"))
    lines += _call(f"layer = paddle.nn.{cls}", args)
    for key, attr in (("scale", "weight"), ("shift", "bias"), ("running_mean", "_mean"),
                      ("running_var", "_variance")):
        if key in layer:
            wide = "float64" if dtype == "float64" else "float32"  # Paddle's parameter dtype
            lines.append(f"layer.{attr}.set_value(np.array({layer[key]!r}, dtype={wide!r}))  # {key}")
    return lines


def _paddle_dropout(layer: dict[str, Any], dtype: str) -> list[str]:
    rate, comment = _rate(layer)
    lines = [f"paddle.seed({layer['seed']})"] if layer.get("seed") is not None else []
    args = [(f"p={rate}", comment)]
    if layer.get("granularity", "element") == "channel":
        args.append((f"axis=[0, {_channel_index(layer)}]",
                     "channel-wise: one draw per (sample, channel), shared along the other axes"))
    if layer.get("scaling", "train") == "eval":
        args.append(('mode="downscale_in_infer"', "scaling: eval -> unscaled in training, x (1-p) in eval"))
    else:
        args.append(('mode="upscale_in_train"', "scaling: train -> inverted dropout, x 1/(1-p) in training"))
    return lines + _call("layer = paddle.nn.Dropout", args)


def _paddle_step(step: dict[str, Any], layer: dict[str, Any], observe: list[str],
                 switch: bool) -> list[str]:
    x, g = step["input"], step.get("grad_output")
    lines = [_mode_call(step)] if switch else []
    if g:
        lines += [f"x = {x}.clone()", "x.stop_gradient = False  # ask for the input's gradient"]
        x = "x"
    lines.append(f"y = layer({x})")
    if g:
        lines.append(f"(y * {g}).sum().backward()  # gradients of sum(grad_output * output)")
    shown = {"output": "y", "grad_input": "x.grad", "grad_scale": "layer.weight.grad",
             "grad_shift": "layer.bias.grad", **STATE["paddle"]}
    lines += _prints(observe, shown, "Paddle")
    if g:
        lines.append("layer.clear_gradients()")
    return lines


# ---- tf (Keras) ----------------------------------------------------------------------------

def _tf_imports() -> list[str]:
    return ["import numpy as np", "import tensorflow as tf", "", "keras = tf.keras  # Keras 3 in TF >= 2.16"]


def _tf_tensor(name: str, shape: list[int], dtype: str) -> str:
    return f"{name} = tf.constant(rng.normal(size={tuple(shape)}), dtype={dtype!r})"


def _tf_batch_norm(layer: dict[str, Any], dtype: str) -> list[str]:
    first = layer.get("channel_axis", "first") == "first"
    args = [("axis=1" if first else "axis=-1", f"the channel axis (channel_axis: {'first' if first else 'last'})"),
            _momentum(layer, True), _eps(layer, "epsilon")]
    if not layer.get("affine", True):
        args += [("center=False", "affine: false -> no beta (shift)"), ("scale=False", "no gamma (scale)")]
    if not layer.get("running_stats", True):
        args.append(("", "Keras always keeps moving statistics: no equivalent of running_stats: false"))
    args.append((f"dtype={dtype!r}", ""))
    lines = _call("layer = keras.layers.BatchNormalization", args)
    initial = [(k, a) for k, a in (("scale", "gamma"), ("shift", "beta"), ("running_mean", "moving_mean"),
                                   ("running_var", "moving_variance")) if k in layer]
    if initial:
        shape = [None] * int(layer["rank"])
        shape[1 if first else -1] = layer["num_features"]
        lines.append(f"layer.build({tuple(shape)})  # create the variables to set the spec's initial values")
        lines += [f"layer.{a}.assign({layer[k]!r})  # {k}" for k, a in initial]
    return lines


def _tf_dropout(layer: dict[str, Any], dtype: str) -> list[str]:
    rate, comment = _rate(layer)
    seed = f", seed={layer['seed']}" if layer.get("seed") is not None else ""
    lines = []
    if layer.get("scaling", "train") == "eval":
        lines.append("# Keras has no downscale-in-inference dropout (scaling: eval): inverted dropout here")
    rank, first = int(layer["rank"]), layer.get("channel_axis", "first") == "first"
    if layer.get("granularity", "element") == "element" or rank == 2:
        return lines + [f"layer = keras.layers.Dropout({rate}{seed})  # rate: {comment}"]
    fmt = "channels_first" if first else "channels_last"
    if rank in (4, 5):
        return lines + [(f"layer = keras.layers.SpatialDropout{rank - 2}D({rate}, data_format={fmt!r}{seed})"
                        f"  # whole channels; channel_axis: {'first' if first else 'last'}")]
    noise = tuple(None if a in (0, _channel_index(layer)) else 1 for a in range(rank))
    return lines + [(f"layer = keras.layers.Dropout({rate}, noise_shape={noise}{seed})"
                    "  # one draw per (sample, channel): the mask is broadcast along the 1 axes")]


def _tf_step(step: dict[str, Any], layer: dict[str, Any], observe: list[str],
             switch: bool) -> list[str]:
    x, g = step["input"], step.get("grad_output")
    training = "True" if step["mode"] == "train" else "False"
    call = f"y = layer({x}, training={training})  # Keras has no mode state: training= per call"
    if not g:
        return [call] + _prints(observe, {"output": "y", **STATE["tf"]}, "Keras")
    bn = layer.get("kind") == "batch_norm"
    affine = bn and layer.get("affine", True)
    sources = f"[{x}, layer.gamma, layer.beta]" if affine else f"[{x}]"
    targets = "grad_input, grad_scale, grad_shift" if affine else "(grad_input,)"
    lines = ["with tf.GradientTape() as tape:", f"    tape.watch({x})", "    " + call,
             f"    loss = tf.reduce_sum(y * {g})  # gradients of sum(grad_output * output)",
             f"{targets} = tape.gradient(loss, {sources})"]
    return lines + _prints(observe, {"output": "y", "grad_input": "grad_input", "grad_scale": "grad_scale",
                                     "grad_shift": "grad_shift", **STATE["tf"]}, "Keras")


def _mode_call(step: dict[str, Any]) -> str:
    return "layer.train()" if step["mode"] == "train" else "layer.eval()"


def _prints(observe: list[str], shown: dict[str, str], name: str) -> list[str]:
    lines = []
    for quantity in observe:
        expr = shown.get(quantity, "")
        if expr:
            lines.append(f"print({quantity!r}, {expr})")
        else:
            lines.append(f"# {name} exposes no {quantity}")
    return lines


BUILDERS: dict[str, dict[str, Callable[..., Any]]] = {
    "torch": {"imports": _torch_imports, "tensor": _torch_tensor, "batch_norm": _torch_batch_norm,
              "dropout": _torch_dropout, "step": _torch_step},
    "paddle": {"imports": _paddle_imports, "tensor": _paddle_tensor, "batch_norm": _paddle_batch_norm,
               "dropout": _paddle_dropout, "step": _paddle_step},
    "tf": {"imports": _tf_imports, "tensor": _tf_tensor, "batch_norm": _tf_batch_norm,
           "dropout": _tf_dropout, "step": _tf_step},
}
