"""PyTorch snippets: ``torch.nn.BatchNorm{1,2,3}d``, ``Dropout`` / ``Dropout{1,2,3}d``,
``train()``/``eval()``, gradients through ``backward()``."""

from __future__ import annotations

from typing import Any

from conformance.report.snippets import common, models
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


def batch_norm(layer: Layer, dtype: str, name: str = "layer") -> list[str]:
    args = [(str(layer["num_features"]), "num_features"), common.eps(layer, "eps"),
            common.momentum(layer, weighs_old=False)]
    if not layer.get("affine", True):
        args.append(("affine=False", "no scale (weight) and shift (bias)"))
    if not layer.get("running_stats", True):
        args.append(("track_running_stats=False", "no running statistics: batch statistics in eval too"))
    args.append((f"dtype=torch.{dtype}", ""))
    lines = common.call(f"{name} = torch.nn.{BATCH_NORMS[int(layer['rank'])]}", args)
    initial = common.initial_values(layer, {"scale": "weight", "shift": "bias", "running_mean": "running_mean",
                                            "running_var": "running_var"})
    if initial:
        lines.append("with torch.no_grad():  # the spec's initial values")
        lines += [f"    {name}.{attr}.copy_(torch.tensor({layer[key]!r}, dtype=torch.float64))  # {key}, cast as the kit's adapter does"
                  for key, attr in initial]
    if not layer.get("trainable", True) and layer.get("affine", True):
        lines += [f"{name}.weight.requires_grad_(False)  # trainable: false -> no gradient for scale",
                  f"{name}.bias.requires_grad_(False)  # ... nor for shift"]
    return lines


def dropout(layer: Layer, dtype: str, name: str = "layer") -> list[str]:
    rate, comment = common.rate(layer)
    lines = [f"torch.manual_seed({layer['seed']})"] if layer.get("seed") is not None else []
    if layer.get("scaling", "train") == "eval":
        lines.append("# torch has no downscale-in-inference dropout (scaling: eval): inverted dropout here")
    rank = int(layer["rank"])
    cls = "Dropout"
    if layer.get("granularity", "element") == "channel" and rank in CHANNEL_DROPOUTS:
        cls = CHANNEL_DROPOUTS[rank]
        comment += f"; {cls} zeroes whole channels (one draw per sample and channel)"
    return [*lines, f"{name} = torch.nn.{cls}(p={rate})  # {comment}",
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


# --- models ------------------------------------------------------------------------------------

FUNCTIONAL_CHANNEL_DROPOUTS = {3: "F.dropout1d", 4: "F.dropout2d", 5: "F.dropout3d"}
CHANNELS_LAST = [("class ChannelsLast(torch.nn.Module):  # torch's batch norm and channel dropout take channels "
                 "at axis 1: moved there and back"), "    def __init__(self, layer):", "        super().__init__()",
                 "        self.layer = layer", "", "    def forward(self, x):",
                 "        return self.layer(x.movedim(-1, 1)).movedim(1, -1)", ""]


class ModelSnippet(models.ModelSnippet):
    """A model in torch: ``nn.Sequential(OrderedDict(...))``, an ``nn.Module`` subclass per
    custom container, ``torch.nn.functional`` for functional leaves, every entry by hand."""

    framework = "torch"

    def imports(self) -> list[str]:
        lines = ["from collections import OrderedDict"] if any(
            b["kind"] == "sequential" for b in self.blocks.values()) else []
        return lines + (["import torch.nn.functional as F"] if any(map(self.functional, self.leaves.values())) else [])

    def moved(self, leaf: models.Node) -> bool:
        """A channels-last batch norm or dropout leaf of rank > 2 (torch wants channels at 1)."""
        layer = leaf["layer"]
        return layer["kind"] != "linear" and common.channels_last(layer) and int(layer["rank"]) > 2

    def head(self) -> list[str]:
        return CHANNELS_LAST if any(self.moved(leaf) and not self.functional(leaf) for leaf in self.leaves.values()) else []

    def module(self, child: models.Node) -> str:
        var = self.names[child["name"]]
        return f"ChannelsLast({var})" if not models.is_block(child) and self.moved(child) else var

    def linear(self, var: str, layer: models.Node) -> list[str]:
        lines = [(f"{var} = torch.nn.Linear({layer['in_features']}, {layer['out_features']}, bias={'bias' in layer}, "
                 f"dtype=torch.{self.dtype})  # in_features, out_features"),
                 "with torch.no_grad():  # the spec's values, cast as the kit's adapter does",
                 (f"    {var}.weight.copy_(torch.tensor({layer['weight']!r}, dtype=torch.float64))"
                 "  # W (out, in): torch stores it as the spec gives it")]
        if "bias" in layer:
            lines.append(f"    {var}.bias.copy_(torch.tensor({layer['bias']!r}, dtype=torch.float64))  # b")
        return lines

    def batch_norm(self, var: str, layer: models.Node) -> list[str]:
        lines = batch_norm(layer, self.dtype, var)
        if layer.get("frozen", False):
            lines.append("# unsupported: frozen: true: torch has no flag that freezes a batch norm's statistics; "
                         f"its way is {var}.eval() (a freeze step), which the model's next train() undoes")
        return lines

    def dropout(self, var: str, layer: models.Node) -> list[str]:
        unseeded = {k: v for k, v in layer.items() if k != "seed"}  # torch seeds once, after building
        return models.without_mask_comment(dropout(unseeded, self.dtype, var))

    def after_build(self) -> list[str]:
        seeds = [leaf["layer"]["seed"] for leaf in self.of_kind("dropout") if leaf["layer"].get("seed") is not None]
        lines = [(f"torch.manual_seed({seeds[0]})  # torch draws every mask from one global generator: seeded once, "
                 "after the model is built, with the spec's first seed (as the kit does)")] if seeds else []
        return lines + ([common.mask_comment("torch's own generator")] if self.of_kind("dropout") else [])

    def sequential(self, block: models.Node) -> list[str]:
        items = ", ".join(f"({c['name']!r}, {self.module(c)})" for c in block["children"])
        return [(f"{self.names[block['name']]} = torch.nn.Sequential(OrderedDict([{items}]))"
                f"  # sequential {block['name']!r}: its children in order, under their spec names")]

    def container_parts(self, block: models.Node) -> tuple[str, str, str]:
        return "torch.nn.Module", "forward(self, x)", ""

    def functional_state(self, leaf: models.Node) -> list[str]:
        layer, var = leaf["layer"], self.names[leaf["name"]]
        if layer["kind"] != "batch_norm":
            return []
        n, cast = int(layer["num_features"]), f"dtype=torch.float64).to(torch.{self.dtype}"

        def tensor(key: str, fill: float) -> str:
            return f"torch.tensor({layer.get(key, [fill] * n)!r}, {cast})"
        lines = [f"# {leaf['name']}: torch.nn.functional.batch_norm's state, held by the container"]
        if layer.get("running_stats", True):
            lines += [f"self.register_buffer({var + '_running_mean'!r}, {tensor('running_mean', 0.0)})",
                      f"self.register_buffer({var + '_running_var'!r}, {tensor('running_var', 1.0)})"]
        if layer.get("affine", True):
            grad = "" if layer.get("trainable", True) else ", requires_grad=False"
            lines += [f"self.{var}_weight = torch.nn.Parameter({tensor('scale', 1.0)}{grad})  # scale",
                      f"self.{var}_bias = torch.nn.Parameter({tensor('shift', 0.0)}{grad})  # shift"]
        return lines

    def mode_override(self, block: models.Node) -> list[str]:
        return [("def train(self, mode=True):  # override_mode_switch: its own mode only, never its children's "
                "(eval() calls train(False))"), "    self.training = mode", "    return self"]

    def call_child(self, child: models.Node, block: models.Node) -> list[str]:
        var, flag = self.names[child["name"]], child.get("training", "omitted")
        if models.is_block(child) or not self.functional(child):
            if flag in ("true", "false"):
                return [(f"x = self.{var}(x)  # unsupported: training={flag.capitalize()} at this call site: torch "
                        "modules take no training argument (a module's mode is set by train()/eval(); only the "
                        "functional forms take training=)")]
            mode = "  # training: mode -> the child's own mode, which train()/eval() set" if flag == "mode" else ""
            return [f"x = self.{var}(x){mode}"]
        layer = child["layer"]
        training = {"true": "training=True", "false": "training=False", "mode": "training=self.training"}.get(flag, "")
        flagged = (training, models.flag_comment(flag) + ("" if training else ": the function's default decides"))
        if layer["kind"] == "dropout":
            rank = int(layer["rank"])
            channel = layer.get("granularity", "element") == "channel" and rank in FUNCTIONAL_CHANNEL_DROPOUTS
            rate, comment = common.rate(layer)
            lines = common.call(f"x = {FUNCTIONAL_CHANNEL_DROPOUTS[rank] if channel else 'F.dropout'}",
                                [("x", ""), (f"p={rate}", comment), flagged])
        else:
            lines = self.functional_batch_norm(var, layer, flagged)
        if self.moved(child):
            lines = ["x = x.movedim(-1, 1)  # channels to axis 1, as torch wants them", *lines, "x = x.movedim(1, -1)"]
        return lines

    def functional_batch_norm(self, var: str, layer: models.Node, flagged: tuple[str, str]) -> list[str]:
        stats, affine = layer.get("running_stats", True), layer.get("affine", True)
        args = [("x", ""), (f"self.{var}_running_mean" if stats else "None", "running mean, held by the container"),
                (f"self.{var}_running_var" if stats else "None", "running variance"),
                (f"weight=self.{var}_weight" if affine else "", "scale"), (f"bias=self.{var}_bias" if affine else "", "shift"),
                flagged]
        if layer.get("update") == "cumulative":
            args.append(("", ("unsupported: update: cumulative: torch.nn.functional.batch_norm takes a float "
                             "momentum (the cumulative average exists only on the nn.BatchNorm modules)")))
        else:
            args.append(common.momentum(layer, weighs_old=False))
        args.append(common.eps(layer, "eps"))
        if layer.get("frozen", False):
            args.append(("", ("unsupported: frozen: true: torch.nn.functional.batch_norm has no flag that freezes "
                             "its statistics")))
        return common.call("x = F.batch_norm", args)

    def entry(self, step: dict[str, Any]) -> list[str]:
        x, out, entry = step["input"], self.out, step["entry"]
        if entry in ("train", "eval"):
            return [f"model.{entry}()", f"{out} = model({x})"]
        if entry == "call":
            return [f"{out} = model({x})  # a plain call, in the mode the model is in"]
        if entry == "predict":
            raise models.Unexpressible("torch has no predict entry (its inference idiom is model.eval() then a call)")
        if entry == "mc_dropout":
            lines = [("model.eval()  # the Monte Carlo dropout recipe: the model in inference (batch norm on its "
                     "running statistics) ...")]
            lines += [f"{self.names[d['name']]}.train()  # ... and every dropout module back to training"
                      if not self.functional(d) else f"# {d['name']}: a functional dropout, no module to switch: "
                      "its call site decides" for d in self.of_kind("dropout")]
            return [*lines, "with torch.no_grad():", f"    {out} = model({x})"]
        lines = [f"{out} = model({x})  # a hand-written step, in the model's current mode (no train() first)"]
        if not self.trains_something():
            return [*lines, "# nothing to train: no linear layer and no trainable scale or shift"]
        return [*lines, f"({out} * {step['grad_output']}).sum().backward()  # gradients of sum(grad_output * output)",
                (f"optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], "
                f"lr={common.num(step['lr'])})  # plain SGD, no momentum"),
                "optimizer.step()", "optimizer.zero_grad()"]

    def switch(self, mode: str) -> list[str]:
        return [f"model.{mode}()  # torch's mode switch: every submodule's train()"]

    def freeze(self, leaf: models.Node, via: str) -> list[str]:
        if self.functional(leaf):
            raise models.Unexpressible(f"{leaf['name']} is a functional batch norm: no module, so no eval() to "
                                       "freeze it (its training= is its call site's)")
        if via == "flag":
            raise models.Unexpressible("torch has no flag that freezes batch-norm statistics (its way is eval() "
                                       "on the module: via: mode)")
        return [(f"{self.names[leaf['name']]}.eval()  # torch's way: the module kept in eval mode "
                "(the model's next train() switches it back)")]

    def reset(self) -> list[str]:
        lines = []
        for leaf in self.of_kind("batch_norm"):
            var = self.names[leaf["name"]]
            if not self.functional(leaf):
                lines.append(f"{var}.reset_running_stats()  # mean 0, variance 1, count 0")
            elif leaf["layer"].get("running_stats", True):
                lines += [f"{self.owner(leaf)}.{var}_running_mean.zero_()", f"{self.owner(leaf)}.{var}_running_var.fill_(1.0)"]
        return lines

    def as_numpy(self, expr: str) -> str:
        return f"{expr}.detach().double().cpu().numpy()"  # a parameter that takes gradients

    def shown(self, leaf: models.Node, what: str) -> tuple[str, str]:
        var, kind = self.names[leaf["name"]], self.kind(leaf)
        if kind == "linear":
            return f"{var}.{what}", ""
        if what == "training":
            if self.functional(leaf):
                return "", f"a functional call has no mode of its own ({models.flag_comment(leaf.get('training', 'omitted'))})"
            return f"float({var}.training)", ""
        if not self.functional(leaf):
            attr = {"batch_count": "num_batches_tracked", "scale": "weight", "shift": "bias"}.get(what, what)
            return f"{var}.{attr}", ""
        attr = {"scale": "weight", "shift": "bias"}.get(what, what)
        if what == "batch_count":
            return "", "torch.nn.functional.batch_norm counts no batches"
        return f"{self.owner(leaf)}.{var}_{attr}", ""
