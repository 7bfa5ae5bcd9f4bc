"""Model snippets (``conformance.tree``): the walk every framework shares.

A model program (``Case.program()`` of a model case) is a tree of blocks whose leaves are
linear, batch-norm and dropout layers. ``ModelSnippet`` writes it out in the order a user
would: every leaf built at the top level with the spec's parameters translated (the layer
snippets' own ``batch_norm``/``dropout``, each translation commented at its line), then each
block from its children (a ``sequential`` block as the framework's Sequential, a custom
``container`` as a small class whose forward/call calls its children in order with the
call-site flags), then the steps in the framework's idiom, each followed by the prints of
what it observes (``bn1.running_mean`` as ``bn1.running_mean``, ``output`` as the step's
output).

Each framework module has a subclass named ``ModelSnippet`` that fills in the same methods
(the abstract ones below). A construction the framework cannot express (a hard-coded
``training=`` on a torch module, a functional batch norm in Keras) is written as the
framework can and commented ``unsupported:`` at its line; a step it cannot express (torch
``predict``, a Keras mode switch) is a comment at that step, where the snippet stops: the
case is ``unsupported`` there, and nothing is emulated.
"""

from __future__ import annotations

import keyword
import re
from typing import Any

from conformance.report.snippets import common

Node = dict[str, Any]  # a block or a leaf of program["layer"]["root"]
OUTPUT = "out"  # the variable a step's output goes to (renamed if an input has that name)
RESERVED = {"np", "torch", "paddle", "tf", "keras", "F", "OrderedDict", "ChannelsLast", "WeightedSum", "model",
            "self", "x", "loss", "optimizer", "hapi", "print", "float", "len", "super", "mode", "inputs",
            # attributes of the frameworks' containers a child attribute must not replace
            "training", "forward", "call", "train", "eval", "name", "layers", "weights", "trainable", "dtype",
            "built", "parameters", "modules", "children"}


class Unexpressible(Exception):
    """A step the framework cannot express: the snippet says why at that step and stops."""


def is_block(node: Node) -> bool:
    return "children" in node


def identifier(name: str, taken: set[str]) -> str:
    """``name`` as a Python variable that none of ``taken`` (nor a keyword) already is."""
    made = re.sub(r"\W", "_", name) or "node"
    if made[0].isdigit():
        made = "_" + made
    while keyword.iskeyword(made) or made in taken or made in RESERVED:
        made += "_"
    return made


def camel(name: str) -> str:
    """A container's class name: ``head`` -> ``Head``, ``my_block`` -> ``MyBlock``."""
    return "".join(part[:1].upper() + part[1:] for part in name.split("_") if part) or "Container"


class ModelSnippet:
    """The program of a model case as code for one framework (see the module docstring)."""

    framework = ""  # the framework's name in comments: torch, Paddle, Keras

    def __init__(self, program: dict[str, Any]) -> None:
        model = program["layer"]
        self.program, self.dtype = program, program.get("dtype", "float32")
        self.rank, self.root = int(model["rank"]), model["root"]
        self.steps: list[dict[str, Any]] = list(program.get("steps", []))
        inputs = set(program.get("inputs", {}))
        self.out = identifier(OUTPUT, inputs)
        self.leaves: dict[str, Node] = {}  # leaf name -> leaf, in call order
        self.blocks: dict[str, Node] = {}  # block name -> block, the root first
        self.parent: dict[str, Node] = {}  # node name -> the block that calls it
        self.names: dict[str, str] = {self.root["name"]: "model"}  # node name -> its variable
        self.classes: dict[str, str] = {}  # container name -> its class
        self._index(self.root, inputs | {self.out, "model"})

    def _index(self, block: Node, taken: set[str]) -> None:
        self.blocks[block["name"]] = block
        if block["kind"] == "container":
            self.classes[block["name"]] = identifier(camel(self.names[block["name"]]), taken)
            taken.add(self.classes[block["name"]])
        for child in block["children"]:
            self.parent[child["name"]] = block
            self.names[child["name"]] = identifier(child["name"], taken)
            taken.add(self.names[child["name"]])
            if is_block(child):
                self._index(child, taken)
            else:
                self.leaves[child["name"]] = child

    # --- what the tree holds -------------------------------------------------------------------

    def kind(self, leaf: Node) -> str:
        return str(leaf["layer"]["kind"])

    def functional(self, leaf: Node) -> bool:
        return leaf.get("call", "module") == "functional"

    def of_kind(self, kind: str, module_only: bool = False) -> list[Node]:
        return [leaf for leaf in self.leaves.values()
                if self.kind(leaf) == kind and not (module_only and self.functional(leaf))]

    def owner(self, leaf: Node) -> str:
        """The variable of the container that holds a functional leaf's state."""
        return self.names[self.parent[leaf["name"]]["name"]]

    def trains_something(self) -> bool:
        """Whether an SGD step has any parameter to update."""
        return any(self.kind(leaf) == "linear" or self.kind(leaf) == "batch_norm"
                   and leaf["layer"].get("affine", True) and leaf["layer"].get("trainable", True)
                   for leaf in self.leaves.values())

    def uses(self, entry: str) -> bool:
        return any(s.get("entry") == entry for s in self.steps)

    # --- the snippet -----------------------------------------------------------------------------

    def lines(self, steps: list[dict[str, Any]], focus: list[str] | None) -> list[str]:
        """The model section of the snippet: build, then ``steps``, each with its prints."""
        self.steps = steps  # what the snippet runs decides what it defines (a loss, MC dropout)
        lines = ["", *self.head(), "# the model: every leaf with the spec's parameters, translated", *self.build()]
        for i, step in enumerate(steps):
            lines += ["", f"# step {i}: {describe(step)}"]
            wanted = [q for q in step.get("observe", ["output"]) if focus is None or q in focus]
            lines += self.before_update(wanted)
            try:
                lines += self.step(step)
            except Unexpressible as why:
                lines.append(f"# unsupported: {why}; the case is unsupported in {self.framework} from here")
                break
            lines += self.prints(wanted, step.get("action", "forward") == "forward", step.get("lr"))
        return lines

    def before_update(self, observe: list[str]) -> list[str]:
        """Copies of the parameters whose gradient a training step observes: the kit reads the
        gradient an SGD update applied as (before - after) / lr."""
        lines = []
        for quantity in observe:
            name, _, what = quantity.rpartition(".")
            if what.startswith("grad_") and name:
                expr, _ = self.shown(self.leaves[name], what[len("grad_"):])
                lines.append(f"{self.saved(quantity)} = {self.as_numpy(expr)}  # before the update")
        return lines

    @staticmethod
    def saved(quantity: str) -> str:
        return quantity.replace(".", "_") + "_before"

    def as_numpy(self, expr: str) -> str:
        """A copy of a framework value as a float64 numpy array."""
        return f"np.array({expr}, dtype=np.float64)"

    def build(self) -> list[str]:
        return [*self.build_block(self.root), *self.after_build()]

    def build_block(self, block: Node) -> list[str]:
        """Post-order: every child before the block that holds it."""
        lines = []
        for child in block["children"]:
            if is_block(child):
                lines += self.build_block(child)
            elif self.functional(child):
                lines += self.functional_leaf(child)
            else:
                lines += {"linear": self.linear, "batch_norm": self.batch_norm,
                          "dropout": self.dropout}[self.kind(child)](self.names[child["name"]], child["layer"])
        if block["kind"] == "sequential":
            return [*lines, *self.sequential(block)]
        return [*lines, "", *self.container(block)]

    def container(self, block: Node) -> list[str]:
        """A custom container: a class whose forward calls its children in order, and the
        instance (its module children passed in, its functional leaves' state created)."""
        var, cls = self.names[block["name"]], self.classes[block["name"]]
        held = [c for c in block["children"] if is_block(c) or not self.functional(c)]
        args = [self.names[c["name"]] for c in held]
        base, signature, init = self.container_parts(block)
        lines = [f"class {cls}({base}):  # container {block['name']!r}: calls its children in order",
                 f"    def __init__(self{''.join(', ' + a for a in args)}):", f"        super().__init__({init})"]
        if args:
            lines.append(f"        {', '.join('self.' + a for a in args)} = {', '.join(self.module(c) for c in held)}")
        for child in block["children"]:
            if not is_block(child) and self.functional(child):
                lines += ["        " + line for line in self.functional_state(child)]
        lines += ["", *("    " + line for line in self.mode_override(block))] if block.get("override_mode_switch") else []
        lines += ["", f"    def {signature}:"]
        for child in block["children"]:
            if not is_block(child) and self.functional(child):
                lines.append(f"        # {child['name']}: the functional {self.kind(child).replace('_', ' ')}")
            lines += ["        " + line for line in self.call_child(child, block)]
        return [*lines, "        return x", "", f"{var} = {cls}({', '.join(args)})"]

    def module(self, child: Node) -> str:
        """What a container or Sequential holds for a child: its variable (torch wraps some)."""
        return self.names[child["name"]]

    def step(self, step: dict[str, Any]) -> list[str]:
        action = step.get("action", "forward")
        if action == "switch":
            return self.switch(step["mode"])
        if action == "freeze":
            leaf = self.leaves[step["target"]]
            return self.freeze(leaf, step.get("via", "default"))
        if action == "reset":
            return self.reset()
        if action == "rebuild":
            return ["# rebuild the model from the spec (the same values and seeds)", *self.build()]
        return self.entry(step)

    def prints(self, observe: list[str], called: bool, lr: float | None = None) -> list[str]:
        lines = []
        for quantity in observe:
            name, _, what = quantity.rpartition(".")
            if not name:
                lines.append(f"print({quantity!r}, {self.out})")
                continue
            leaf = self.leaves[name]
            if what.startswith("grad_"):
                expr, _ = self.shown(leaf, what[len("grad_"):])
                lines.append(f"print({quantity!r}, ({self.saved(quantity)} - {self.as_numpy(expr)}) / {lr!r})"
                             "  # the gradient the SGD step applied")
                continue
            if what == "mask":
                expr, why = "", "not printed (the kit reads the units kept from the leaf's input and output)"
            elif what == "training" and not called:
                expr, why = "", "the mode of its last call, printed at that step"
            else:
                expr, why = self.shown(leaf, what)
            lines.append(f"print({quantity!r}, {expr})" if expr else f"# {quantity}: {why}")
        return lines

    # --- per framework (each framework module's ModelSnippet) ----------------------------------

    def head(self) -> list[str]:
        """Lines before the leaves: global settings, helper classes."""
        return []

    def imports(self) -> list[str]:
        """Imports the model needs beyond the layer snippets' ``imports()``."""
        raise NotImplementedError

    def linear(self, var: str, layer: Node) -> list[str]:
        raise NotImplementedError

    def batch_norm(self, var: str, layer: Node) -> list[str]:
        raise NotImplementedError

    def dropout(self, var: str, layer: Node) -> list[str]:
        raise NotImplementedError

    def functional_leaf(self, leaf: Node) -> list[str]:
        """Top-level lines for a functional leaf, at its place in the build order."""
        return []

    def after_build(self) -> list[str]:
        return []

    def sequential(self, block: Node) -> list[str]:
        raise NotImplementedError

    def container_parts(self, block: Node) -> tuple[str, str, str]:
        """(base class, forward's ``def`` signature, ``super().__init__`` arguments)."""
        raise NotImplementedError

    def functional_state(self, leaf: Node) -> list[str]:
        """``__init__`` lines creating a functional leaf's state on its container."""
        return []

    def mode_override(self, block: Node) -> list[str]:
        """The train()/eval() override of ``override_mode_switch`` (methods, unindented)."""
        raise NotImplementedError

    def call_child(self, child: Node, block: Node) -> list[str]:
        """The forward's line(s) calling ``child``, with its call-site flag."""
        raise NotImplementedError

    def entry(self, step: dict[str, Any]) -> list[str]:
        raise NotImplementedError

    def switch(self, mode: str) -> list[str]:
        raise NotImplementedError

    def freeze(self, leaf: Node, via: str) -> list[str]:
        raise NotImplementedError

    def reset(self) -> list[str]:
        raise NotImplementedError

    def shown(self, leaf: Node, what: str) -> tuple[str, str]:
        """(expression, "") printing a leaf's quantity, or ("", why it is not printed)."""
        raise NotImplementedError


def describe(step: dict[str, Any]) -> str:
    """A step's header: ``train_step on x (grad_output g, lr 0.1)``, ``freeze bn1 via flag``."""
    action = step.get("action", "forward")
    if action == "switch":
        return f"switch the model to {step['mode']}"
    if action == "freeze":
        return f"freeze {step['target']} (via: {step.get('via', 'default')})"
    if action == "reset":
        return "reset the running statistics (mean 0, variance 1)"
    if action == "rebuild":
        return "rebuild the model"
    entry = step.get("entry", step.get("mode", "train"))
    extra = f" (grad_output {step['grad_output']}, lr {common.num(step.get('lr', 0.0))})" if step.get("grad_output") else ""
    return f"{entry} on {step['input']}{extra}"


def without_mask_comment(lines: list[str]) -> list[str]:
    """A layer snippet's dropout lines without its masks comment (a model says it once)."""
    return [line for line in lines if not line.startswith(common.mask_comment("").split(" from ")[0])]


def flag_comment(flag: str) -> str:
    return {"true": "training: true at the call site", "false": "training: false at the call site",
            "mode": "training: mode, the container's own", "omitted": "no training flag"}[flag]
