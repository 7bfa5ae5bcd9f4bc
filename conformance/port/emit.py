"""From the neutral layer to the target framework's own code.

Classes are written by the report's snippet modules (``conformance.report.snippets.<fw>``:
one translation of the neutral parameters, shared with the reports); this module adds what a
port needs on top: the notes on what the target lacks, with emulation recipes, and the
arguments the neutral model does not hold (a scale without a shift, Paddle's free dropout
axes). Functional forms are written by ``conformance.port.functional``.
"""

from __future__ import annotations

import ast
import importlib
from dataclasses import dataclass, field
from typing import Any

from conformance.port import functional
from conformance.port.catalog import LABEL
from conformance.port.neutral import Note, Ported
from conformance.report.snippets import common


@dataclass
class Emitted:
    """The target's code and what the reader must know about it."""

    code: list[str]
    notes: list[Note] = field(default_factory=list)
    single_call: bool = True  # False: a recipe of several statements (Keras' functional batch norm)


def emit(ported: Ported, target: str) -> Emitted:
    if ported.function is not None:
        code, notes = functional.emit(ported, target)
        recipe = ported.kind == "batch_norm" and target == "tf" and ported.function["training"] is not False
        return Emitted(code, notes, single_call=not recipe)
    api = importlib.import_module(f"conformance.report.snippets.{target}")
    layer = dict(ported.layer)
    layer.setdefault("num_features", "C")  # unknown (a Keras source): a name the reader fills in
    out = Emitted([*api.imports(), ""])
    if ported.kind == "batch_norm":
        out.code += api.batch_norm(layer, ported.dtype)
        _batch_norm_notes(ported, target, out)
    elif "mask_shape_axes" in ported.extras and target != "torch":
        out.code += _free_axes_dropout(ported, target)
    else:
        out.code += api.dropout(layer, ported.dtype)
        _dropout_notes(ported, target, out)
    _layout_note(ported, target, out)
    return out


def _batch_norm_notes(ported: Ported, target: str, out: Emitted) -> None:
    layer, extras, name = ported.layer, ported.extras, LABEL[target]
    if layer.get("update") == "cumulative" and target != "torch":
        attribute = "layer._momentum" if target == "paddle" else "layer.momentum"
        out.notes.append(Note(
            "momentum=None", f"{name} has no cumulative average, only an exponential moving average "
            "(measured: bn.cumulative_average unsupported). Emulate it: before the k-th training batch (k = 1, 2, ...) "
            "set the momentum so that the new statistic weighs 1/k (eager execution only: a compiled "
            "step reads the value once)", "no_equivalent",
            (f"{attribute} = 1.0 - 1.0 / k  # {name}'s momentum weighs the OLD value: 1 - 1/k",)))
    if extras.get("scale") is False or extras.get("shift") is False:
        missing = "scale" if extras.get("scale") is False else "shift"
        argument = {("torch", "shift"): "bias=False", ("paddle", "shift"): "bias_attr=False",
                    ("paddle", "scale"): "weight_attr=False", ("tf", "shift"): "center=False",
                    ("tf", "scale"): "scale=False"}.get((target, missing))
        if argument:
            _add_argument(out.code, argument, f"no {missing} ({'beta' if missing == 'shift' else 'gamma'})")
        else:
            out.notes.append(Note(f"no {missing}", "torch has no switch for a shift without a scale: keep "
                                  "affine=True, set weight to 1 and freeze it", "no_equivalent",
                                  ("torch.nn.init.ones_(layer.weight)", "layer.weight.requires_grad_(False)")))
    if layer.get("frozen"):
        _frozen_note(ported, target, out)
    if not layer.get("running_stats", True) and target == "tf":
        out.notes.append(Note(
            "no running statistics", "Keras always keeps moving statistics and normalises with them in "
            "inference (measured: bn.no_running_stats unsupported). Emulate it by calling the layer with "
            "training=True in inference too: batch statistics, and the unused moving statistics update",
            "no_equivalent", ("y = layer(x, training=True)  # batch statistics in inference too",)))
    if "activation" in extras:
        out.notes.append(Note(f"act={extras['activation']!r}", f"Paddle's legacy BatchNorm applies the activation "
                              f"after normalising; {name}'s batch norm does not: apply it after the layer",
                              "no_equivalent", (_activation(target, extras["activation"]),)))


def _frozen_note(ported: Ported, target: str, out: Emitted) -> None:
    trainable = ported.layer.get("trainable", True)
    if target == "torch":
        out.notes.append(Note(
            "frozen statistics", "torch has no constructor switch: keep the module in eval mode while the "
            "model trains (model.train() switches it back, so do it after every model.train())",
            "translated", ("model.train()", "layer.eval()  # frozen: running statistics used, not updated")))
    elif target == "tf" and trainable:
        # the snippet freezes the layer the Keras way, which freezes gamma and beta as well
        out.code[:] = [line for line in out.code if not line.startswith("layer.trainable = False")]
        out.notes.append(Note(
            "frozen statistics", "Keras' trainable=False also freezes gamma and beta; to keep them "
            "learning, leave trainable=True and call the layer with training=False in the training step",
            "translated", ("y = layer(x, training=False)  # frozen statistics, gamma and beta still learn",)))


def _dropout_notes(ported: Ported, target: str, out: Emitted) -> None:
    layer, name = ported.layer, LABEL[target]
    rate = common.num(float(layer["rate"]))
    if layer.get("scaling") == "eval" and target != "paddle":
        call = "layer(x)" if target == "torch" else "layer(x, training=training)"
        out.notes.append(Note(
            "mode='downscale_in_infer'", f"{name} has only inverted dropout (measured: "
            "dropout.downscale_mode unsupported). Exact emulation: inverted dropout times (1 - p) in both "
            "modes (training: mask * x / (1 - p) * (1 - p) = mask * x; inference: (1 - p) * x)",
            "no_equivalent", (f"y = (1 - {rate}) * {call}  # Paddle's downscale_in_infer",)))
    if "mask_shape_axes" in ported.extras:  # torch: no free-axes dropout
        axes = list(ported.extras["mask_shape_axes"])
        out.notes.append(Note(
            "mask axes", f"torch draws element- or channel-wise only; a mask independent along axes {axes} "
            "and shared along the others is written by hand (the construction above is element-wise)",
            "no_equivalent",
            (f"shape = [n if a in {axes} else 1 for a, n in enumerate(x.shape)]",
             f"keep = (torch.rand(shape, device=x.device) >= {rate}).to(x.dtype)",
             f"y = x * keep / (1 - {rate}) if model.training else x")))
    if layer.get("seed") is not None and target != "tf":
        out.notes.append(Note(f"seed={layer['seed']}", f"{name} seeds dropout through the global generator; "
                              "no seed gives the same masks as another framework (measured below)", "translated"))


def _layout_note(ported: Ported, target: str, out: Emitted) -> None:
    layer = ported.layer
    channel_wise = ported.kind == "batch_norm" or layer.get("granularity") == "channel"
    if target == "torch" and layer.get("channel_axis") == "last" and layer["rank"] > 2 and channel_wise:
        out.notes.append(Note(
            "channels last", "torch layers take the channels at axis 1: move them there and back",
            "translated", ("y = layer(x.movedim(-1, 1)).movedim(1, -1)",)))


def _free_axes_dropout(ported: Ported, target: str) -> list[str]:
    """Paddle's ``axis`` and Keras' ``noise_shape`` both say which axes draw independently."""
    layer, axes = ported.layer, list(ported.extras["mask_shape_axes"])
    rate = common.num(float(layer["rate"]))
    if target == "paddle":
        mode = "downscale_in_infer" if layer.get("scaling") == "eval" else "upscale_in_train"
        return common.call("layer = paddle.nn.Dropout", [
            (f"p={rate}", "the probability of DROPPING"),
            (f"axis={axes}", "independent draws along these axes, shared along the others"),
            (f"mode={mode!r}", "")])
    noise = tuple(None if a in axes else 1 for a in range(int(layer["rank"])))
    return [f"layer = keras.layers.Dropout({rate}, noise_shape={noise})  # 1: one draw shared along that axis"]


def _add_argument(code: list[str], argument: str, comment: str) -> None:
    """Insert an argument into the construction ``layer = X(`` ... ``)`` the snippets write."""
    start = next(i for i, line in enumerate(code) if line.startswith("layer = "))
    end = code.index(")", start)
    code.insert(end, f"    {argument},  # {comment}")


def _activation(target: str, act: str) -> str:
    return {"torch": f"y = torch.nn.functional.{act}(layer(x))",
            "paddle": f"y = paddle.nn.functional.{act}(layer(x))",
            "tf": f"y = keras.activations.{act}(layer(x, training=training))"}[target]


def construction(code: list[str] | str) -> str:
    """The source text of the construction (or functional call) in emitted ``code``: the
    first call assigned to ``layer`` or ``y`` whose name is a class or function of the kit."""
    text = code if isinstance(code, str) else "\n".join(code)
    tree = ast.parse(text)
    for stmt in tree.body:
        if isinstance(stmt, ast.Assign) and isinstance(stmt.targets[0], ast.Name) \
                and stmt.targets[0].id in ("layer", "y"):
            for node in ast.walk(stmt.value):
                if isinstance(node, ast.Call) and _is_layer_call(node):
                    return ast.unparse(node)
    raise ValueError("no construction in the emitted code")


def _is_layer_call(node: ast.Call) -> bool:
    name = ast.unparse(node.func).rsplit(".", 1)[-1]
    return "norm" in name.lower() or "dropout" in name.lower()


def arguments(call_text: str) -> tuple[str, list[Any], dict[str, Any]]:
    """``(callee, positional, keywords)`` of a call, literals as values and anything else as
    its source text: the translated parameters as data."""
    node = ast.parse(call_text, mode="eval").body
    assert isinstance(node, ast.Call)

    def value(n: ast.expr) -> Any:
        try:
            return ast.literal_eval(n)
        except (ValueError, TypeError, SyntaxError):
            return ast.unparse(n)

    return (ast.unparse(node.func), [value(a) for a in node.args],
            {k.arg: value(k.value) for k in node.keywords if k.arg})
