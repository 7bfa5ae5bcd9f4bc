"""PaddlePaddle snippets: ``paddle.nn.BatchNorm1D/2D/3D`` and ``paddle.nn.Dropout``,
``train()``/``eval()``, gradients through ``backward()``."""

from __future__ import annotations

from typing import Any

from conformance.report.snippets import common, models
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


def batch_norm(layer: Layer, dtype: str, name: str = "layer") -> list[str]:
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
    lines += common.call(f"{name} = paddle.nn.{cls}", args)
    wide = "float64" if dtype == "float64" else "float32"  # Paddle's parameter dtype
    for key, attr in common.initial_values(layer, {"scale": "weight", "shift": "bias", "running_mean": "_mean",
                                                   "running_var": "_variance"}):
        lines.append(f"{name}.{attr}.set_value(np.array({layer[key]!r}, dtype={wide!r}))  # {key}")
    if not layer.get("trainable", True) and layer.get("affine", True):
        lines += [f"{name}.weight.stop_gradient = True  # trainable: false -> no gradient for scale",
                  f"{name}.bias.stop_gradient = True  # ... nor for shift"]
    return lines


def dropout(layer: Layer, dtype: str, name: str = "layer") -> list[str]:
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
    return [*lines, *common.call(f"{name} = paddle.nn.Dropout", args),
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


# --- models ------------------------------------------------------------------------------------

class ModelSnippet(models.ModelSnippet):
    """A model in Paddle: ``paddle.nn.Sequential((name, layer), ...)``, a ``paddle.nn.Layer``
    subclass per custom container, ``paddle.nn.functional`` for functional leaves, every
    entry by hand but ``predict`` (``paddle.Model(network).predict_batch``)."""

    framework = "Paddle"
    hapi = False  # paddle.Model made (by the first predict)

    def imports(self) -> list[str]:
        return ["import paddle.nn.functional as F"] if any(map(self.functional, self.leaves.values())) else []

    def head(self) -> list[str]:
        return [('paddle.set_default_dtype("float64")  # parameters and statistics in float64, as the kit builds '
                'them')] if self.dtype == "float64" else []

    def assign(self, target: str, values: Any, transpose: str = "") -> str:
        """``target.set_value(values)``, cast to the tensor's own dtype as the kit's adapter does."""
        wide = "float64" if self.dtype == "float64" else "float32"
        return f"{target}.set_value(paddle.to_tensor(np.array({values!r}, dtype=np.{wide}){transpose}).astype({target}.dtype))"

    def linear(self, var: str, layer: models.Node) -> list[str]:
        half = self.dtype in ("float16", "bfloat16")
        lines = [(f"paddle.set_default_dtype({self.dtype!r})  # the linear layer's parameters in {self.dtype}, "
                 "as the kit builds them")] if half else []
        bias = "" if "bias" in layer else ", bias_attr=False"
        lines.append(f"{var} = paddle.nn.Linear({layer['in_features']}, {layer['out_features']}{bias})"
                     f"  # in_features, out_features{'; bias_attr=False: no bias' if bias else ''}")
        lines += ['paddle.set_default_dtype("float32")'] if half else []
        lines.append(self.assign(f"{var}.weight", layer["weight"], ".T") + "  # Paddle stores W^T: its weight is (in, out)")
        return lines + ([self.assign(f"{var}.bias", layer["bias"]) + "  # b"] if "bias" in layer else [])

    def batch_norm(self, var: str, layer: models.Node) -> list[str]:
        return [line for line in batch_norm(layer, self.dtype, var) if not line.startswith("paddle.set_default_dtype")]

    def dropout(self, var: str, layer: models.Node) -> list[str]:
        return models.without_mask_comment(dropout(layer, self.dtype, var))

    def functional_leaf(self, leaf: models.Node) -> list[str]:
        seed = leaf["layer"].get("seed")
        return [(f"paddle.seed({seed})  # {leaf['name']} (functional): Paddle's global generator, seeded where the "
                "kit builds it")] if leaf["layer"]["kind"] == "dropout" and seed is not None else []

    def after_build(self) -> list[str]:
        self.hapi = False
        return [common.mask_comment("Paddle's own generator (paddle.seed, as the kit seeds it)")] \
            if self.of_kind("dropout") else []

    def sequential(self, block: models.Node) -> list[str]:
        items = ", ".join(f"({c['name']!r}, {self.module(c)})" for c in block["children"])
        return [(f"{self.names[block['name']]} = paddle.nn.Sequential({items})"
                f"  # sequential {block['name']!r}: its children in order, under their spec names")]

    def container_parts(self, block: models.Node) -> tuple[str, str, str]:
        return "paddle.nn.Layer", "forward(self, x)", ""

    def global_stats(self, leaf: models.Node) -> str | None:
        """A functional batch norm's ``use_global_stats``: False without running statistics,
        True frozen, else None (Paddle's default); "attr" when a step sets it later."""
        layer = leaf["layer"]
        if any(s.get("action") == "freeze" and s.get("target") == leaf["name"] and s.get("via") == "flag"
               for s in self.steps):
            return "attr"
        return "False" if not layer.get("running_stats", True) else "True" if layer.get("frozen", False) else None

    def functional_state(self, leaf: models.Node) -> list[str]:
        layer, var = leaf["layer"], self.names[leaf["name"]]
        if layer["kind"] != "batch_norm":
            return []
        n, wide = int(layer["num_features"]), "float64" if self.dtype == "float64" else "float32"

        def values(key: str, fill: float) -> str:
            return f"np.array({layer.get(key, [fill] * n)!r}, dtype=np.{wide})"
        lines = [f"# {leaf['name']}: paddle.nn.functional.batch_norm's statistics and parameters, held by the container",
                 f"self.register_buffer({var + '_mean'!r}, paddle.to_tensor({values('running_mean', 0.0)}))",
                 f"self.register_buffer({var + '_variance'!r}, paddle.to_tensor({values('running_var', 1.0)}))"]
        if layer.get("affine", True):
            for attr, key, fill in (("weight", "scale", 1.0), ("bias", "shift", 0.0)):
                lines.append(f"self.{var}_{attr} = self.create_parameter([{n}], dtype={wide!r}, default_initializer="
                             f"paddle.nn.initializer.Assign({values(key, fill)}))  # {key}")
                if not layer.get("trainable", True):
                    lines.append(f"self.{var}_{attr}.stop_gradient = True  # trainable: false -> no gradient")
        if self.global_stats(leaf) == "attr":
            lines.append(f"self.{var}_use_global_stats = None  # Paddle's default, until a step freezes it")
        return lines

    def mode_override(self, block: models.Node) -> list[str]:
        return ["def train(self):  # override_mode_switch: its own mode only, never its sublayers'",
                "    self.training = True", "    return self", "",
                "def eval(self):  # ... and the same for eval()", "    self.training = False", "    return self"]

    def call_child(self, child: models.Node, block: models.Node) -> list[str]:
        var, flag = self.names[child["name"]], child.get("training", "omitted")
        if models.is_block(child) or not self.functional(child):
            if flag in ("true", "false"):
                return [(f"x = self.{var}(x)  # unsupported: training={flag.capitalize()} at this call site: a "
                        "paddle.nn.Layer's forward takes no training flag (its mode is .training, set by "
                        "train()/eval(); only the functional forms take training=)")]
            mode = "  # training: mode -> the child's own mode, which train()/eval() set" if flag == "mode" else ""
            return [f"x = self.{var}(x){mode}"]
        layer = child["layer"]
        training = {"true": "training=True", "false": "training=False", "mode": "training=self.training"}.get(flag, "")
        flagged = (training, models.flag_comment(flag) + ("" if training else ": the function's default decides"))
        if layer["kind"] == "batch_norm":
            return self.functional_batch_norm(child, flagged)
        rate, comment = common.rate(layer)
        args = [("x", ""), (f"p={rate}", comment), flagged]
        if layer.get("granularity", "element") == "channel":
            args.append((f"axis=[0, {common.channel_index(layer)}]", "one draw per (sample, channel)"))
        args.append(('mode="upscale_in_train"', "inverted dropout: kept values times 1/(1-p)"))
        return common.call("x = F.dropout", args)

    def functional_batch_norm(self, leaf: models.Node, flagged: tuple[str, str]) -> list[str]:
        layer, var = leaf["layer"], self.names[leaf["name"]]
        _, first, last = BATCH_NORMS[int(layer["rank"])]
        affine = layer.get("affine", True)
        args = [("x", ""), (f"self.{var}_mean", "running mean, held by the container"),
                (f"self.{var}_variance", "running variance"),
                (f"weight=self.{var}_weight" if affine else "weight=None", "scale"),
                (f"bias=self.{var}_bias" if affine else "bias=None", "shift"), flagged]
        if layer.get("update") == "cumulative":
            args.append(("", ("unsupported: update: cumulative: Paddle's batch norm only has an exponential "
                             "moving average (momentum)")))
        else:
            args.append(common.momentum(layer, weighs_old=True))
        args += [common.eps(layer, "epsilon"),
                 (f"data_format={last if common.channels_last(layer) else first!r}",
                  f"channel_axis: {layer.get('channel_axis', 'first')}")]
        stats = self.global_stats(leaf)
        if stats == "attr":
            args.append((f"use_global_stats=self.{var}_use_global_stats", "None until a freeze step sets True"))
        elif stats is not None:
            args.append((f"use_global_stats={stats}", "frozen: running statistics, no update" if stats == "True"
                         else "running_stats: false -> batch statistics in eval too"))
        return common.call("x = F.batch_norm", args)

    def entry(self, step: dict[str, Any]) -> list[str]:
        x, out, entry = step["input"], self.out, step["entry"]
        if entry in ("train", "eval"):
            return [f"model.{entry}()", f"{out} = model({x})"]
        if entry == "call":
            return [f"{out} = model({x})  # a plain call, in the mode the model is in"]
        if entry == "predict":
            lines = [] if self.hapi else ["hapi = paddle.Model(model)  # Paddle's high-level API around the network"]
            self.hapi = True
            return [*lines, (f"({out},) = hapi.predict_batch([{x}])  # one predicting step on a batch (it calls "
                    "the network's eval() first, and leaves it so)")]
        if entry == "mc_dropout":
            lines = [("model.eval()  # the Monte Carlo dropout recipe: the model in inference (batch norm on its "
                     "running statistics) ...")]
            lines += [f"{self.names[d['name']]}.train()  # ... and every dropout layer back to training"
                      if not self.functional(d) else f"# {d['name']}: a functional dropout, no layer to switch: "
                      "its call site decides" for d in self.of_kind("dropout")]
            return [*lines, f"{out} = model({x})"]
        lines = [f"{out} = model({x})  # a hand-written step, in the model's current mode (no train() first)"]
        if not self.trains_something():
            return [*lines, "# nothing to train: no linear layer and no trainable scale or shift"]
        return [*lines, f"({out} * {step['grad_output']}).sum().backward()  # gradients of sum(grad_output * output)",
                (f"optimizer = paddle.optimizer.SGD(learning_rate={common.num(step['lr'])}, "
                "parameters=model.parameters())  # plain SGD; the statistics are buffers, SGD leaves them"),
                "optimizer.step()", "optimizer.clear_grad()"]

    def switch(self, mode: str) -> list[str]:
        return [f"model.{mode}()  # Paddle's mode switch: every sublayer's .training"]

    def freeze(self, leaf: models.Node, via: str) -> list[str]:
        var = self.names[leaf["name"]]
        if self.functional(leaf):
            if via != "flag":
                raise models.Unexpressible(f"{leaf['name']} is a functional batch norm: no layer, so no eval() to "
                                           "freeze it (its training= is its call site's)")
            return [f"{self.owner(leaf)}.{var}_use_global_stats = True  # the functional form's own switch"]
        if via == "flag":
            return [(f"{var}._use_global_stats = True  # Paddle's flag (use_global_stats): the layer's forward "
                    "passes it to F.batch_norm at every call")]
        return [f"{var}.eval()  # Paddle's way: the layer kept in eval mode (the model's next train() switches it back)"]

    def reset(self) -> list[str]:
        lines = ["# Paddle has no reset method: set the statistics"]
        for leaf in self.of_kind("batch_norm"):
            var = self.names[leaf["name"]]
            mean, variance = (f"{self.owner(leaf)}.{var}_mean", f"{self.owner(leaf)}.{var}_variance") \
                if self.functional(leaf) else (f"{var}._mean", f"{var}._variance")
            n = int(leaf["layer"]["num_features"])
            lines += [f"{mean}.set_value(np.zeros({n}, dtype={mean}.numpy().dtype))",
                      f"{variance}.set_value(np.ones({n}, dtype={variance}.numpy().dtype))"]
        return lines

    def shown(self, leaf: models.Node, what: str) -> tuple[str, str]:
        var, kind = self.names[leaf["name"]], self.kind(leaf)
        if kind == "linear":
            return (f"{var}.weight.T", "") if what == "weight" else (f"{var}.bias", "")  # weight: back to (out, in)
        if what == "training":
            if self.functional(leaf):
                return "", f"a functional call has no mode of its own ({models.flag_comment(leaf.get('training', 'omitted'))})"
            return f"float({var}.training)", ""
        if what == "batch_count":
            return "", "Paddle keeps no count of batches"
        if self.functional(leaf):
            attr = {"running_mean": "mean", "running_var": "variance", "scale": "weight", "shift": "bias"}[what]
            return f"{self.owner(leaf)}.{var}_{attr}", ""
        return f"{var}.{ {'running_mean': '_mean', 'running_var': '_variance', 'scale': 'weight', 'shift': 'bias'}[what]}", ""
