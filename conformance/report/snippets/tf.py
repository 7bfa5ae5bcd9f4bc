"""TensorFlow snippets: the Keras layers bundled with TF (``BatchNormalization``,
``Dropout``, ``SpatialDropout{1,2,3}D``), ``training=True/False`` per call, gradients
through ``tf.GradientTape``."""

from __future__ import annotations

from typing import Any

from conformance.report.snippets import common
from conformance.report.snippets.common import Layer

SHOWN = {"output": "y", "grad_input": "grad_input", "grad_scale": "grad_scale", "grad_shift": "grad_shift",
         "running_mean": "layer.moving_mean", "running_var": "layer.moving_variance"}


def imports() -> list[str]:
    return ["import numpy as np", "import tensorflow as tf", "", "keras = tf.keras  # Keras 3 in TF >= 2.16"]


def tensor(name: str, dtype: str) -> str:
    """The numpy input ``name`` as a tensor, converted as the kit's TF adapter does."""
    return f"{name} = tf.cast(tf.constant({name}), tf.{dtype})  # as the kit's adapter converts it"


def batch_norm(layer: Layer, dtype: str) -> list[str]:
    first = not common.channels_last(layer)
    args = [("axis=1" if first else "axis=-1", f"the channel axis (channel_axis: {'first' if first else 'last'})"),
            common.momentum(layer, weighs_old=True), common.eps(layer, "epsilon")]
    if not layer.get("affine", True):
        args += [("center=False", "affine: false -> no beta (shift)"), ("scale=False", "no gamma (scale)")]
    if not layer.get("running_stats", True):
        args.append(("", "Keras always keeps moving statistics: no equivalent of running_stats: false"))
    args.append((f"dtype={dtype!r}", ""))
    lines = common.call("layer = keras.layers.BatchNormalization", args)
    initial = common.initial_values(layer, {"scale": "gamma", "shift": "beta", "running_mean": "moving_mean",
                                            "running_var": "moving_variance"})
    if initial:
        shape: list[int | None] = [None] * int(layer["rank"])
        shape[1 if first else -1] = layer["num_features"]
        lines.append(f"layer.build({tuple(shape)})  # create the variables to set the spec's initial values")
        lines += [f"layer.{attr}.assign(tf.cast(np.array({layer[key]!r}, dtype=np.float64), layer.{attr}.dtype))"
                  f"  # {key}, cast as the kit's adapter does" for key, attr in initial]
    if layer.get("frozen", False):
        lines.append("layer.trainable = False  # frozen: Keras freezes the statistics (and scale, shift) this way")
    elif not layer.get("trainable", True):
        lines.append("# trainable: false -> Keras' trainable=False would also freeze the statistics; "
                     "gamma and beta are left out of the gradients instead")
    return lines


def dropout(layer: Layer, dtype: str) -> list[str]:
    rate, comment = common.rate(layer)
    seed = f", seed={layer['seed']}" if layer.get("seed") is not None else ""
    lines = [common.mask_comment("Keras' own generator (the layer's seed=, as the kit sets it)")]
    if layer.get("scaling", "train") == "eval":
        lines.append("# Keras has no downscale-in-inference dropout (scaling: eval): inverted dropout here")
    rank, first = int(layer["rank"]), not common.channels_last(layer)
    if layer.get("granularity", "element") == "element" or rank == 2:
        return [*lines, f"layer = keras.layers.Dropout({rate}{seed})  # rate: {comment}"]
    fmt = "channels_first" if first else "channels_last"
    if rank in (4, 5):
        return [*lines, (f"layer = keras.layers.SpatialDropout{rank - 2}D({rate}, data_format={fmt!r}{seed})"
                        f"  # whole channels; channel_axis: {'first' if first else 'last'}")]
    noise = tuple(None if a in (0, common.channel_index(layer)) else 1 for a in range(rank))
    return [*lines, (f"layer = keras.layers.Dropout({rate}, noise_shape={noise}{seed})"
                    "  # one draw per (sample, channel): the mask is broadcast along the 1 axes")]


def reset(layer: Layer) -> list[str]:
    return ["layer.moving_mean.assign(tf.zeros_like(layer.moving_mean))  # Keras has no reset method",
            "layer.moving_variance.assign(tf.ones_like(layer.moving_variance))"]


def compiler() -> list[str]:
    return ["compiled = tf.function(layer)  # through TF's graph compiler"]


def prints(observe: list[str]) -> list[str]:
    return common.prints(observe, SHOWN, "Keras")


def forward(step: dict[str, Any], layer: Layer, observe: list[str], switch: bool) -> list[str]:
    x, g = step["input"], step.get("grad_output")
    training = "True" if step["mode"] == "train" else "False"
    context = step.get("context", "plain")
    lines = []
    module = "compiled" if context == "compiled" else "layer"
    if context not in ("plain", "compiled"):
        lines.append(f"# {context}: TF records gradients only inside a GradientTape; a plain call is one")
    call = f"y = {module}({x}, training={training})  # Keras has no mode state: training= per call"
    if not g:
        return [*lines, call, *prints(observe)]
    affine = layer.get("kind") == "batch_norm" and layer.get("affine", True) and layer.get("trainable", True)
    sources = f"[{x}, layer.gamma, layer.beta]" if affine else f"[{x}]"
    targets = "grad_input, grad_scale, grad_shift" if affine else "(grad_input,)"
    lines += ["with tf.GradientTape() as tape:", f"    tape.watch({x})", "    " + call,
              f"    loss = tf.reduce_sum(y * {g})  # gradients of sum(grad_output * output)",
              f"{targets} = tape.gradient(loss, {sources})"]
    for quantity in observe:
        if quantity in ("grad_scale", "grad_shift") and not affine:
            lines.append(f"# {quantity}: no gradient taken (no trainable gamma and beta here)")
        else:
            lines += prints([quantity])
    return lines
