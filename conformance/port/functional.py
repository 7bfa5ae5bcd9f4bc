"""Functional forms in the target's code: ``torch.nn.functional.batch_norm`` / ``dropout*``,
``paddle.nn.functional.batch_norm`` / ``dropout``, and for Keras, which has no functional batch
norm that updates running statistics, the moments, the normalisation and the update written
out (``keras.ops``), with the source's own variance estimator, so that nothing differs.

Translations use the same helpers as the report's snippets (``common.momentum``,
``common.eps``, ``common.call``), so a number is written the same way everywhere.
"""

from __future__ import annotations

from typing import Any

from conformance.port.neutral import Note, Ported
from conformance.port.state import ESTIMATOR
from conformance.report.snippets import common
from conformance.report.snippets import paddle as paddle_snippets

IMPORTS = {"torch": ["import torch"], "paddle": ["import paddle"], "tf": ["import math", "", "import keras"]}


def emit(ported: Ported, target: str) -> tuple[list[str], list[Note]]:
    assert ported.function is not None
    writer = _BATCH_NORM[target] if ported.kind == "batch_norm" else _DROPOUT[target]
    notes: list[Note] = []
    return [*IMPORTS[target], "", *writer(ported, notes)], notes


def _tensors(ported: Ported) -> dict[str, str]:
    assert ported.function is not None
    return {k: v for k, v in ported.function["tensors"].items()}


def _training(ported: Ported) -> Any:
    assert ported.function is not None
    return ported.function["training"]


def _training_arg(ported: Ported) -> tuple[str, str]:
    value = _training(ported)
    return f"training={value}", "" if isinstance(value, bool) else "as the source wrote it"


def _channels_last(ported: Ported) -> bool:
    return common.channels_last(ported.layer) and int(ported.layer["rank"]) > 2


# --- batch norm ----------------------------------------------------------------------------

def _torch_bn(ported: Ported, notes: list[Note]) -> list[str]:
    t = _tensors(ported)
    x = f"{t['input']}.movedim(-1, 1)" if _channels_last(ported) else t["input"]
    args = [(x, "channels at axis 1" if _channels_last(ported) else "input"),
            (t["running_mean"], "running mean (updated in place in training)"),
            (t["running_var"], "running variance"), (t["weight"], "scale"), (t["bias"], "shift"),
            _training_arg(ported), common.momentum(ported.layer, weighs_old=False), common.eps(ported.layer, "eps")]
    lines = common.call("y = torch.nn.functional.batch_norm", args)
    if _channels_last(ported):
        lines.append("y = y.movedim(1, -1)  # channels back to the last axis")
    return lines


def _paddle_bn(ported: Ported, notes: list[Note]) -> list[str]:
    t, layer = _tensors(ported), ported.layer
    args = [(t["input"], "input"), (t["running_mean"], "running mean (updated in place in training)"),
            (t["running_var"], "running variance"), (t["weight"], "scale"), (t["bias"], "shift"),
            _training_arg(ported), common.momentum(layer, weighs_old=True), common.eps(layer, "epsilon"),
            (f"data_format={paddle_snippets.BATCH_NORMS[int(layer['rank'])][2 if common.channels_last(layer) else 1]!r}",
             f"channel_axis: {layer.get('channel_axis', 'first')}")]
    if not layer.get("running_stats", True):
        args.append(("use_global_stats=False", "batch statistics in eval too; pass any buffers of C values"))
    return common.call("y = paddle.nn.functional.batch_norm", args)


def _keras_bn(ported: Ported, notes: list[Note]) -> list[str]:
    t, layer = _tensors(ported), ported.layer
    rank, last = int(layer["rank"]), common.channels_last(ported.layer)
    axis = rank - 1 if last else 1
    reduce = [a for a in range(rank) if a != axis]
    eps = common.num(float(layer["eps"]))
    optional = ", ".join(f"{k}={t[v]}" for k, v in (("offset", "bias"), ("scale", "weight")) if t[v] != "None")
    norm = f"keras.ops.batch_normalization({t['input']}, {{m}}, {{v}}, axis={axis}, {optional + ', ' if optional else ''}" \
           f"epsilon={eps})"
    training = _training(ported)
    train = [f"mean, var = keras.ops.moments({t['input']}, axes={reduce})  # biased batch variance",
             f"y = {norm.format(m='mean', v='var')}"]
    if layer.get("running_stats", True) and t["running_mean"] != "None":
        train += _keras_update(ported, t, axis)
    evaluate = [f"y = {norm.format(m=t['running_mean'], v=t['running_var'])}  # the running statistics"]
    notes.append(Note("functional batch_norm", "Keras has no functional batch norm that updates running "
                      "statistics: moments, normalisation and update are written out (running_mean and "
                      "running_var must be keras.Variable objects)", "translated"))
    if training is True:
        return train
    if training is False:
        return evaluate
    return [f"if {training}:", *("    " + s for s in train), "else:", *("    " + s for s in evaluate)]


def _keras_update(ported: Ported, t: dict[str, str], axis: int) -> list[str]:
    layer = ported.layer
    var = "var"
    lines = []
    if ESTIMATOR[ported.source] == "unbiased":
        lines.append(f"m = math.prod({t['input']}.shape) // {t['input']}.shape[{axis}]  # values per channel")
        var = "var * m / (m - 1)"
        why = f"{ported.source}'s unbiased estimator, kept: nothing differs"
    else:
        why = f"{ported.source}'s biased estimator"
    if layer.get("update") == "cumulative":
        lines += ["k += 1  # batches seen: PyTorch's num_batches_tracked",
                  f"{t['running_mean']}.assign({t['running_mean']} + (mean - {t['running_mean']}) / k)",
                  f"{t['running_var']}.assign({t['running_var']} + ({var} - {t['running_var']}) / k)  # {why}"]
        return lines
    w = common.num(float(layer["update_weight"]))
    return lines + [
        f"{t['running_mean']}.assign((1 - {w}) * {t['running_mean']} + {w} * mean)  # update_weight {w}: the NEW value's weight",
        f"{t['running_var']}.assign((1 - {w}) * {t['running_var']} + {w} * {var})  # {why}"]


# --- dropout -------------------------------------------------------------------------------

def _rate(ported: Ported) -> str:
    return common.num(float(ported.layer["rate"]))


def _seed(ported: Ported, notes: list[Note], target: str) -> None:
    seed = ported.layer.get("seed")
    if seed is not None:
        call = "torch.manual_seed" if target == "torch" else "paddle.seed"
        notes.append(Note(f"seed={seed}", f"{target}'s functional dropout draws from the global generator; no "
                          "seed gives another framework's masks", "translated", (f"{call}({seed})",)))


def _downscale(ported: Ported, notes: list[Note], target: str) -> bool:
    if ported.layer.get("scaling") != "eval":
        return False
    notes.append(Note("mode='downscale_in_infer'", f"{target} has only inverted dropout: the (1 - p) "
                      "factor is applied in both modes, which is exactly Paddle's downscale_in_infer",
                      "translated"))
    return True


def _torch_dropout(ported: Ported, notes: list[Note]) -> list[str]:
    t, layer = _tensors(ported), ported.layer
    name = "dropout"
    x = t["input"]
    if layer.get("granularity") == "channel":
        name = {3: "dropout1d", 4: "dropout2d", 5: "dropout3d"}[int(layer["rank"])]
        x = f"{x}.movedim(-1, 1)" if _channels_last(ported) else x
    call = f"torch.nn.functional.{name}({x}, p={_rate(ported)}, {_training_arg(ported)[0]})"
    if _channels_last(ported) and layer.get("granularity") == "channel":
        call += ".movedim(1, -1)"
    if _downscale(ported, notes, "torch"):
        call = f"(1 - {_rate(ported)}) * {call}"
    _seed(ported, notes, "torch")
    return [f"y = {call}  # p: the probability of DROPPING"]


def _paddle_dropout(ported: Ported, notes: list[Note]) -> list[str]:
    t, layer = _tensors(ported), ported.layer
    args = [(t["input"], "input"), (f"p={_rate(ported)}", "the probability of DROPPING")]
    if "mask_shape_axes" in ported.extras:
        args.append((f"axis={list(ported.extras['mask_shape_axes'])}", "independent draws along these axes"))
    elif layer.get("granularity") == "channel":
        args.append((f"axis=[0, {common.channel_index(layer)}]", "one draw per (sample, channel)"))
    mode = "downscale_in_infer" if layer.get("scaling") == "eval" else "upscale_in_train"
    args += [_training_arg(ported), (f"mode={mode!r}", "")]
    _seed(ported, notes, "paddle")
    return common.call("y = paddle.nn.functional.dropout", args)


def _keras_dropout(ported: Ported, notes: list[Note]) -> list[str]:
    t, layer = _tensors(ported), ported.layer
    x, rank = t["input"], int(layer["rank"])
    noise = ""
    if "mask_shape_axes" in ported.extras or layer.get("granularity") == "channel":
        axes = ported.extras.get("mask_shape_axes", (0, common.channel_index(layer)))
        noise = ", noise_shape=(" + ", ".join(f"{x}.shape[{a}]" if a in axes else "1" for a in range(rank)) + ")"
    seed = f", seed={layer['seed']}" if layer.get("seed") is not None else ""
    drop = f"keras.random.dropout({x}, rate={_rate(ported)}{noise}{seed})"
    scale = f"(1 - {_rate(ported)}) * " if _downscale(ported, notes, "Keras") else ""
    training = _training(ported)
    if training is True:
        return [f"y = {scale}{drop}  # rate: the probability of DROPPING (training)"]
    if training is False:
        return [f"y = {scale}{x}  # dropout is the identity when not training"]
    return [f"y = {scale}{drop} if {training} else {scale}{x}  # keras.random.dropout always drops"]


_BATCH_NORM = {"torch": _torch_bn, "paddle": _paddle_bn, "tf": _keras_bn}
_DROPOUT = {"torch": _torch_dropout, "paddle": _paddle_dropout, "tf": _keras_dropout}
