"""TensorFlow snippets: the Keras layers bundled with TF (``BatchNormalization``,
``Dropout``, ``SpatialDropout{1,2,3}D``), ``training=True/False`` per call, gradients
through ``tf.GradientTape``."""

from __future__ import annotations

import re
from typing import Any

from conformance.report.snippets import common, models
from conformance.report.snippets.common import Layer

SHOWN = {"output": "y", "grad_input": "grad_input", "grad_scale": "grad_scale", "grad_shift": "grad_shift",
         "running_mean": "layer.moving_mean", "running_var": "layer.moving_variance"}


def imports() -> list[str]:
    return ["import numpy as np", "import tensorflow as tf", "", "keras = tf.keras  # Keras 3 in TF >= 2.16"]


def tensor(name: str, dtype: str) -> str:
    """The numpy input ``name`` as a tensor, converted as the kit's TF adapter does."""
    return f"{name} = tf.cast(tf.constant({name}), tf.{dtype})  # as the kit's adapter converts it"


def batch_norm(layer: Layer, dtype: str, name: str = "layer") -> list[str]:
    first = not common.channels_last(layer)
    args = [("axis=1" if first else "axis=-1", f"the channel axis (channel_axis: {'first' if first else 'last'})"),
            common.momentum(layer, weighs_old=True), common.eps(layer, "epsilon")]
    if not layer.get("affine", True):
        args += [("center=False", "affine: false -> no beta (shift)"), ("scale=False", "no gamma (scale)")]
    if not layer.get("running_stats", True):
        args.append(("", "Keras always keeps moving statistics: no equivalent of running_stats: false"))
    args.append((f"dtype={dtype!r}", ""))
    lines = common.call(f"{name} = keras.layers.BatchNormalization", args)
    initial = common.initial_values(layer, {"scale": "gamma", "shift": "beta", "running_mean": "moving_mean",
                                            "running_var": "moving_variance"})
    if initial:
        shape: list[int | None] = [None] * int(layer["rank"])
        shape[1 if first else -1] = layer["num_features"]
        lines.append(f"{name}.build({tuple(shape)})  # create the variables to set the spec's initial values")
        lines += [f"{name}.{attr}.assign(tf.cast(np.array({layer[key]!r}, dtype=np.float64), {name}.{attr}.dtype))"
                  f"  # {key}, cast as the kit's adapter does" for key, attr in initial]
    if layer.get("frozen", False):
        lines.append(f"{name}.trainable = False  # frozen: Keras freezes the statistics (and scale, shift) this way")
    elif not layer.get("trainable", True):
        lines.append("# trainable: false -> Keras' trainable=False would also freeze the statistics; "
                     "gamma and beta are left out of the gradients instead")
    return lines


def dropout(layer: Layer, dtype: str, name: str = "layer") -> list[str]:
    rate, comment = common.rate(layer)
    seed = f", seed={layer['seed']}" if layer.get("seed") is not None else ""
    lines = [common.mask_comment("Keras' own generator (the layer's seed=, as the kit sets it)")]
    if layer.get("scaling", "train") == "eval":
        lines.append("# Keras has no downscale-in-inference dropout (scaling: eval): inverted dropout here")
    rank, first = int(layer["rank"]), not common.channels_last(layer)
    if layer.get("granularity", "element") == "element" or rank == 2:
        return [*lines, f"{name} = keras.layers.Dropout({rate}{seed})  # rate: {comment}"]
    fmt = "channels_first" if first else "channels_last"
    if rank in (4, 5):
        return [*lines, (f"{name} = keras.layers.SpatialDropout{rank - 2}D({rate}, data_format={fmt!r}{seed})"
                        f"  # whole channels; channel_axis: {'first' if first else 'last'}")]
    noise = tuple(None if a in (0, common.channel_index(layer)) else 1 for a in range(rank))
    return [*lines, (f"{name} = keras.layers.Dropout({rate}, noise_shape={noise}{seed})"
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


# --- models ------------------------------------------------------------------------------------

MC_DROPOUT = [("class MC{cls}(keras.layers.{cls}):  # Geron's MCDropout, switchable: while .mc is set, its call "
              "runs in training whatever the model's call says"), "    mc = False", "",
              "    def call(self, inputs, training=False):",
              "        return super().call(inputs, training=True if self.mc else training)", ""]
WEIGHTED_SUM = [("class WeightedSum(keras.losses.Loss):  # sum(y_true * y_pred), reduction sum: with y_true = "
                "grad_output, the loss's gradient with respect to the output is grad_output"),
                "    def call(self, y_true, y_pred):",
                "        self.y_pred = y_pred  # the model's output in the training step, as Keras hands it to the loss",
                "        return y_true * y_pred", ""]


class ModelSnippet(models.ModelSnippet):
    """A model in Keras 3: ``keras.Sequential``, a ``keras.Model`` subclass per custom
    container whose ``call`` passes each child its call-site ``training=``, the mode of each
    entry as its ``training`` argument, ``predict``, ``train_on_batch``."""

    framework = "Keras"
    compiled: tuple[str, int] | None = None  # (lr, freezes so far) of the last compile
    freezes = 0

    def imports(self) -> list[str]:
        return []

    def mc_classes(self) -> list[str]:
        """The dropout classes the model's layers use, when a step asks for Monte Carlo dropout."""
        if not self.uses("mc_dropout"):
            return []
        lines = [line for d in self.of_kind("dropout", module_only=True) for line in dropout(d["layer"], self.dtype)]
        return sorted({m for line in lines for m in re.findall(r"keras\.layers\.(\w*Dropout\w*)\(", line)})

    def head(self) -> list[str]:
        lines = [(f"keras.config.set_floatx({self.dtype!r})  # Keras' float type and dtype policy: the whole model "
                 f"in {self.dtype}, as the kit builds it"), f"keras.config.set_dtype_policy({self.dtype!r})", ""]
        for cls in self.mc_classes():
            lines += [line.format(cls=cls) for line in MC_DROPOUT]
        if self.uses("train_step"):
            loss = "float64" if self.dtype == "float64" else "float32"
            lines += [*WEIGHTED_SUM, f'loss = WeightedSum(reduction="sum", dtype={loss!r})', ""]
        return lines

    def linear(self, var: str, layer: models.Node) -> list[str]:
        shape = (None,) * (self.rank - 1) + (int(layer["in_features"]),)
        lines = [(f"{var} = keras.layers.Dense({layer['out_features']}, use_bias={'bias' in layer}, "
                 f"dtype={self.dtype!r})  # out_features"),
                 f"{var}.build({shape})  # in_features: Dense acts on the last axis",
                 (f"{var}.kernel.assign(tf.cast(np.array({layer['weight']!r}, dtype=np.float64).T, {var}.kernel.dtype))"
                 "  # Keras stores W^T: the kernel is (in, out)")]
        if "bias" in layer:
            lines.append(f"{var}.bias.assign(tf.cast(np.array({layer['bias']!r}, dtype=np.float64), {var}.bias.dtype))"
                         "  # b")
        return lines

    def batch_norm(self, var: str, layer: models.Node) -> list[str]:
        lines = batch_norm(layer, self.dtype, var)
        if not any(".build(" in line for line in lines):
            shape: list[int | None] = [None] * int(layer["rank"])
            shape[-1 if common.channels_last(layer) else 1] = int(layer["num_features"])
            lines.append(f"{var}.build({tuple(shape)})  # its variables made now, as the kit builds it")
        if layer.get("frozen", False) and layer.get("trainable", True):
            lines.append("# unsupported: frozen: true with trainable: true: Keras has no flag that freezes the moving "
                         "statistics alone (trainable=False freezes gamma and beta too)")
        elif not layer.get("trainable", True) and layer.get("affine", True) and not layer.get("frozen", False):
            lines = [line for line in lines if not line.startswith("# trainable: false")]
            lines += [(f"{var}.gamma.trainable = False  # trainable: false -> gamma and beta leave the trainable "
                      "weights (the layer's trainable=False would freeze its statistics too)"),
                      f"{var}.beta.trainable = False"]
        return lines

    def dropout(self, var: str, layer: models.Node) -> list[str]:
        lines = models.without_mask_comment(dropout(layer, self.dtype, var))
        if self.uses("mc_dropout"):
            lines = [re.sub(r"keras\.layers\.(\w*Dropout\w*)\(", r"MC\1(", line) for line in lines]
        return lines

    def after_build(self) -> list[str]:
        self.compiled = None
        return [common.mask_comment("Keras' own generator (each layer's seed=, as the kit sets it)")] \
            if self.of_kind("dropout") else []

    def sequential(self, block: models.Node) -> list[str]:
        items = ", ".join(self.module(c) for c in block["children"])
        return [(f"{self.names[block['name']]} = keras.Sequential([{items}], name={block['name']!r})"
                "  # its children in order")]

    def container_parts(self, block: models.Node) -> tuple[str, str, str]:
        return "keras.Model", "call(self, x, training=None)", f"name={block['name']!r}"

    def functional_state(self, leaf: models.Node) -> list[str]:
        layer, var = leaf["layer"], self.names[leaf["name"]]
        if layer["kind"] != "dropout":
            return []
        seed = layer.get("seed")
        return [(f"self.{var}_seed = keras.random.SeedGenerator({seed})  # {leaf['name']}: keras.random.dropout's "
                "randomness, held as a Keras layer holds it")]

    def mode_override(self, block: models.Node) -> list[str]:
        return [("# unsupported: override_mode_switch: Keras models have no train()/eval() to override (the mode "
                "is the training argument of each call)")]

    def call_child(self, child: models.Node, block: models.Node) -> list[str]:
        var, flag = self.names[child["name"]], child.get("training", "omitted")
        if models.is_block(child) or not self.functional(child):
            training = {"true": ", training=True", "false": ", training=False", "mode": ", training=training"}.get(flag, "")
            comment = f"  # {models.flag_comment(flag)}" if training else ""
            return [f"x = self.{var}(x{training}){comment}"]
        layer = child["layer"]
        if layer["kind"] == "batch_norm":
            return [(f"# unsupported: {child['name']} is a functional batch norm: Keras has none that keeps running "
                    "statistics (keras.ops.batch_normalization normalises with the mean and variance it is given)")]
        rate, _ = common.rate(layer)
        rank = int(layer["rank"])
        noise = ""
        if layer.get("granularity", "element") == "channel" and rank > 2:
            noise = f", noise_shape={tuple(None if a in (0, common.channel_index(layer)) else 1 for a in range(rank))}"
        comment = ("no training flag: it drops at every call" if flag == "omitted" else
                   f"unsupported: training: {flag} at this call site: keras.random.dropout takes no training flag "
                   "(it drops at every call)")
        return [(f"x = keras.random.dropout(x, {rate}{noise}, seed=self.{var}_seed)  # rate: the probability of "
                f"DROPPING; {comment}")]

    def entry(self, step: dict[str, Any]) -> list[str]:
        x, out, entry = step["input"], self.out, step["entry"]
        if entry in ("train", "eval"):
            return [f"{out} = model({x}, training={entry == 'train'})  # Keras has no mode state: training= per call"]
        if entry == "call":
            return [f"{out} = model({x})  # no training argument: Keras decides"]
        if entry == "predict":
            return [f"{out} = model.predict({x}, batch_size=len({x}), verbose=0)  # one batch"]
        if entry == "mc_dropout":
            mc = " = ".join(f"{self.names[d['name']]}.mc" for d in self.of_kind("dropout", module_only=True))
            call = f"{out} = model({x}, training=False)  # batch norm in inference, on its moving statistics"
            if not mc:
                return [call]
            return [f"{mc} = True  # Geron's MCDropout for this pass: every dropout layer in training ...", call,
                    f"{mc} = False"]
        lr = common.num(step["lr"])
        lines = []
        if self.compiled != (lr, self.freezes):
            lines.append(f"model.compile(optimizer=keras.optimizers.SGD(learning_rate={lr}), loss=loss, run_eagerly=True)"
                         "  # plain SGD; compiled again whenever lr or what is trainable changes, as Keras requires")
            self.compiled = (lr, self.freezes)
        return [*lines, (f"model.train_on_batch({x}, {step['grad_output']})  # forward in training, "
                "sum(grad_output * output), backward, one SGD step"),
                f"{out} = loss.y_pred  # the step's output"]

    def switch(self, mode: str) -> list[str]:
        raise models.Unexpressible("Keras models have no mode to switch (no train()/eval()): the mode is the "
                                   "training argument of each call")

    def freeze(self, leaf: models.Node, via: str) -> list[str]:
        if via == "mode":
            raise models.Unexpressible(f"freezing {leaf['name']} through its mode: a Keras layer has no mode of its "
                                       "own to set (no eval())")
        if self.functional(leaf):
            raise models.Unexpressible(f"{leaf['name']} is a functional batch norm, which Keras does not have")
        self.freezes += 1
        return [(f"{self.names[leaf['name']]}.trainable = False  # Keras' way: a non-trainable BatchNormalization "
                "runs in inference and keeps its moving statistics (and gamma, beta)")]

    def reset(self) -> list[str]:
        lines = []
        for leaf in self.of_kind("batch_norm", module_only=True):
            var = self.names[leaf["name"]]
            lines += [f"{var}.moving_mean.assign(tf.zeros_like({var}.moving_mean))  # Keras has no reset method",
                      f"{var}.moving_variance.assign(tf.ones_like({var}.moving_variance))"]
        return lines

    def shown(self, leaf: models.Node, what: str) -> tuple[str, str]:
        var, kind = self.names[leaf["name"]], self.kind(leaf)
        if kind == "linear":
            return (f"tf.transpose({var}.kernel)", "") if what == "weight" else (f"{var}.bias", "")
        if self.functional(leaf) and kind == "batch_norm":
            return "", "no such layer in Keras (unsupported above)"
        if what == "training":
            return "", "Keras layers keep no mode: it is the training= their call receives"
        if what == "batch_count":
            return "", "Keras counts no batches"
        attr = {"running_mean": "moving_mean", "running_var": "moving_variance", "scale": "gamma", "shift": "beta"}
        return f"{var}.{attr[what]}", ""
