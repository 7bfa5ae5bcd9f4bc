"""Loading the ``model:`` of a model case (``conformance.tree``): the tree of blocks, the
shape of what flows through it (which gives every batch norm its rank and channels and every
linear layer its input width), the model's steps and the shapes of its observations.

Every problem is reported through the case builder of ``conformance.spec`` as
``file:line: what is wrong; expected ...``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from conformance import inputs
from conformance.model import BatchNormSpec, DropoutSpec, Step
from conformance.tree import GRADIENTS, LEAF_STATE, Block, Leaf, LinearSpec, ModelSpec

if TYPE_CHECKING:
    from conformance.spec import _CaseBuilder

ENTRIES = ("train", "eval", "call", "predict", "train_step", "mc_dropout")
MODEL_ONLY = ("call", "predict", "train_step", "mc_dropout", "switch", "freeze", "via", "lr")
ROOT = "model"


class ModelBuilder:
    """Builds one case's model with the case builder's error reporting."""

    def __init__(self, builder: _CaseBuilder, where: str, dtype: str) -> None:
        self.builder, self.where, self.dtype = builder, where, dtype
        self.names: dict[str, Any] = {}
        self.shapes: dict[str, tuple[int, ...]] = {}  # leaf name -> the shape it is called on
        self.ok = True

    def fail(self, node: Any, key: Any, message: str) -> None:
        self.ok = False
        self.builder.fail(node, key, f"{self.where}: {message}")

    # --- the tree ------------------------------------------------------------------------------

    def model(self, raw: Any, input_shape: tuple[int, ...]) -> tuple[ModelSpec, tuple[int, ...]] | None:
        """The model, and the shape of its output for an input of ``input_shape``."""
        if len(input_shape) < 2:
            self.fail(raw, "model", f"the model's input has shape {input_shape}; expected a batch: "
                      "rank 2 or more")
            return None
        spec = raw["model"]
        root, shape = self.block(spec, ROOT if "name" not in spec else str(spec["name"]), input_shape, top=True)
        if root is None or not self.ok:
            return None
        return ModelSpec(root=root, rank=len(input_shape)), shape

    def block(self, raw: Any, name: str, shape: tuple[int, ...],
              top: bool = False) -> tuple[Block | None, tuple[int, ...]]:
        if not self.claim(raw, name):
            return None, shape
        if raw.get("override_mode_switch") and raw["kind"] != "container":
            self.fail(raw, "override_mode_switch", f"block {name!r} is a sequential container; expected "
                      "override_mode_switch only on a custom container (kind: container)")
        children: list[Block | Leaf] = []
        for i, child in enumerate(raw["children"]):
            if child.get("call") == "functional" and raw["kind"] != "container" or \
                    child.get("training", "omitted") != "omitted" and raw["kind"] != "container":
                self.fail(raw["children"], i, f"a child of {name!r} gives a call-site flag (call: functional "
                          "or training:); expected those only in a custom container (kind: container), "
                          "whose forward is written out")
            made, shape = self.child(raw["children"], i, shape)
            if made is not None:
                children.append(made)
        training = "omitted" if top else str(raw.get("training", "omitted"))
        return Block(name=name, kind=raw["kind"], children=tuple(children), training=training,  # type: ignore[arg-type]
                     override_mode_switch=bool(raw.get("override_mode_switch", False))), shape

    def child(self, items: Any, i: int, shape: tuple[int, ...]) -> tuple[Block | Leaf | None, tuple[int, ...]]:
        raw = items[i]
        if raw["kind"] in ("sequential", "container"):
            name = str(raw.get("name", f"block{i}"))
            return self.block(raw, name, shape)
        name = str(raw["name"])
        if not self.claim(raw, name):
            return None, shape
        self.shapes[name] = shape
        layer = self.leaf_layer(raw, name, shape)
        if layer is None:
            return None, shape
        if raw.get("call") == "functional" and raw["kind"] == "linear":
            self.fail(raw, "call", f"leaf {name!r} is linear; expected call: functional only on "
                      "batch_norm and dropout leaves")
        leaf = Leaf(name=name, layer=layer, call=raw.get("call", "module"),
                    training=str(raw.get("training", "omitted")))  # type: ignore[arg-type]
        if isinstance(layer, LinearSpec):
            shape = (*shape[:-1], layer.out_features)
        return leaf, shape

    def claim(self, raw: Any, name: str) -> bool:
        if name in self.names:
            self.fail(raw, "name", f"the name {name!r} is used twice in the model; expected unique names "
                      "(observations name them)")
            return False
        self.names[name] = raw
        return True

    def leaf_layer(self, raw: Any, name: str, shape: tuple[int, ...]) -> Any:
        if raw["kind"] == "linear":
            return self.linear(raw, name, shape)
        if raw["kind"] == "dropout":
            if raw.get("scaling", "train") != "train" or "native_rate" in raw:
                self.fail(raw, "scaling" if "scaling" in raw else "native_rate", f"dropout leaf {name!r}: "
                          "expected a model's dropout to scale in training (scaling: train) with a "
                          "neutral rate; downscale-in-inference and native probes are layer cases")
                return None
            return DropoutSpec(rate=float(raw["rate"]), rank=len(shape),
                               granularity=raw.get("granularity", "element"),
                               channel_axis=raw.get("channel_axis", "first"),
                               seed=None if raw.get("seed") is None else int(raw["seed"]))
        return self.batch_norm(raw, name, shape)

    def linear(self, raw: Any, name: str, shape: tuple[int, ...]) -> LinearSpec | None:
        weight = self.array(raw, "weight", name)
        if weight is None:
            return None
        if weight.ndim != 2 or weight.shape[1] != shape[-1]:
            self.fail(raw, "weight", f"linear leaf {name!r} has weight of shape {weight.shape}; expected "
                      f"(out, {shape[-1]}): W is (out, in), and its input's last axis has {shape[-1]} values")
            return None
        bias = None
        if raw.get("bias", None) is not False:
            bias = np.zeros(weight.shape[0]) if "bias" not in raw else self.array(raw, "bias", name)
            if bias is None:
                return None
            if bias.shape != (weight.shape[0],):
                self.fail(raw, "bias", f"linear leaf {name!r} has bias of shape {bias.shape}; expected "
                          f"({weight.shape[0]},), one value per output")
                return None
        return LinearSpec(in_features=int(weight.shape[1]), out_features=int(weight.shape[0]),
                          weight=weight, bias=bias)

    def array(self, raw: Any, key: str, name: str) -> np.ndarray | None:
        """A parameter array given like an input (literal values, a file, a generator),
        rounded to the case's dtype as the framework holds it."""
        label = f"{self.where}: leaf {name!r} {key}"
        if isinstance(raw[key], list):  # the values themselves, a nested list
            try:
                values = np.asarray(raw[key], dtype=np.float64)
            except ValueError:
                self.fail(raw, key, f"leaf {name!r}: {key} is ragged; expected a rectangular nested list")
                return None
            return np.asarray(inputs.round_to_dtype(values, self.dtype), dtype=np.float64)
        ref = self.builder.file_of(raw[key], label)
        if isinstance(raw[key], dict) and "file" in raw[key] and ref is None:
            self.ok = False  # the file was refused, and said why
            return None
        made = self.builder.input_array(raw, key, label, self.dtype, ref)
        if made is None:
            self.ok = False
            return None
        array = np.asarray(made[0], dtype=np.float64)
        if not np.isfinite(array).all():
            self.fail(raw, key, f"leaf {name!r}: {key} overflows {self.dtype}; expected finite values")
            return None
        return array

    def batch_norm(self, raw: Any, name: str, shape: tuple[int, ...]) -> BatchNormSpec | None:
        rank = len(shape)
        if not 2 <= rank <= 5:
            self.fail(raw, "kind", f"batch norm leaf {name!r} is called on shape {shape}; expected rank 2 to 5")
            return None
        if raw.get("update_weight") == "default" or raw.get("eps") == "default" or "native_momentum" in raw:
            self.fail(raw, "kind", f"batch norm leaf {name!r}: expected neutral values of update_weight "
                      "and eps in a model; framework defaults and native probes are layer cases")
            return None
        axis = 1 if raw.get("channel_axis", "first") == "first" else rank - 1
        channels = shape[axis]
        per_channel = self.builder.per_channel(raw, f"{self.where}: batch norm leaf {name!r}: ", channels)
        if per_channel is None:
            self.ok = False
            return None
        return BatchNormSpec(rank=rank, num_features=channels, channel_axis=raw.get("channel_axis", "first"),
                             update=raw.get("update", "ema"), update_weight=float(raw.get("update_weight", 0.1)),
                             eps=float(raw.get("eps", 1e-5)), affine=bool(raw.get("affine", True)),
                             running_stats=bool(raw.get("running_stats", True)),
                             frozen=bool(raw.get("frozen", False)), trainable=bool(raw.get("trainable", True)),
                             **per_channel)


def step_of(builder: _CaseBuilder, steps: Any, i: int, item: dict[str, Any], where: str,
            arrays: dict[str, np.ndarray], default_observe: tuple[str, ...]) -> Step | None:
    """One step of a model case (quantities are checked once the model is built)."""
    here = f"{where}: steps[{i}]"
    line = _line(steps, i)
    calls = any(e in item for e in ENTRIES)
    observe = tuple(item.get("observe", default_observe if calls else
                             [q for q in default_observe if q != "output"]))
    if not calls and "output" in observe:
        builder.fail(steps, i, f"{here}: a step that does not call the model has no output to observe; "
                     "expected leaf quantities only (bn1.running_mean, ...)")
        return None
    if "switch" in item:
        return Step(action="switch", mode="train" if item["switch"] == "train" else "eval",
                    observe=observe, line=line)
    if "freeze" in item:
        return Step(action="freeze", target=str(item["freeze"]), via=str(item.get("via", "default")),
                    observe=observe, line=line)
    if "reset" in item or "rebuild" in item:
        return Step(action="reset" if "reset" in item else "rebuild", observe=observe, line=line)
    entry = next(e for e in ENTRIES if e in item)
    for ref in (item[entry], item.get("grad_output")):
        if ref is not None and ref not in arrays:
            builder.fail(steps, i, f"{here} names input {ref!r}, which is not defined; expected one of "
                         f"{', '.join(sorted(arrays))}")
            return None
    if (entry == "train_step") != ("grad_output" in item):
        builder.fail(steps, i, f"{here}: expected grad_output (the loss weights) with train_step, "
                     "and only there: a model step's gradients are its training step's")
        return None
    if entry == "train_step" and "lr" not in item:
        builder.fail(steps, i, f"{here}: train_step without lr; expected the learning rate (lr: 0.1)")
        return None
    if "context" in item:
        builder.fail(steps, i, f"{here}: context is for layer cases; expected a model's entry "
                     f"({', '.join(ENTRIES)}) to say how it is called")
        return None
    mode = "train" if entry in ("train", "train_step") else "eval"
    return Step(action="forward", entry=entry, mode=mode, input=str(item[entry]), observe=observe,  # type: ignore[arg-type]
                grad_output=item.get("grad_output"), lr=float(item.get("lr", 0.0)), line=line)


def _line(steps: Any, i: int) -> int:
    from conformance import yamlines

    return yamlines.line_of(steps, [i])


def check_steps(builder: _CaseBuilder, raw: Any, where: str, steps: list[Step], model: ModelSpec,
                shapes: dict[str, tuple[int, ...]], arrays: dict[str, np.ndarray]) -> list[Step] | None:
    """The steps checked against the model (leaf names, quantities, input shapes), each with
    its dropout leaves' masks added to what it observes: the reference computes what follows a
    random dropout leaf from the units the framework kept, so those are always checked."""
    allowed = set(model.quantities())
    leaves = {leaf.name: leaf for leaf in model.leaves()}
    masks = tuple(f"{leaf.name}.mask" for leaf in model.leaves() if isinstance(leaf.layer, DropoutSpec))
    first = next((s for s in steps if s.action == "forward"), None)
    if first is None:
        builder.fail(raw, "steps", f"{where}: no step calls the model; expected at least one of "
                     f"{', '.join(ENTRIES)}")
        return None
    checked = []
    for i, step in enumerate(steps):
        grads = [q for q in step.observe if q.rpartition(".")[2] in GRADIENTS]
        if grads and step.entry != "train_step":
            builder.fail(raw["steps"], i, f"{where}: steps[{i}] observes {', '.join(grads)}; expected "
                         "gradients only at a train_step (they are what its SGD update applied)")
            return None
        bad = [q for q in step.observe if q not in allowed]
        if bad:
            builder.fail(raw["steps"], i, f"{where}: steps[{i}] observes {', '.join(bad)}, which this model "
                         f"does not have; expected some of {', '.join(sorted(allowed))}")
            return None
        if step.action == "freeze":
            leaf = leaves.get(step.target)
            if leaf is None or not isinstance(leaf.layer, BatchNormSpec):
                names = ", ".join(n for n, lf in leaves.items() if isinstance(lf.layer, BatchNormSpec))
                builder.fail(raw["steps"], i, f"{where}: steps[{i}] freezes {step.target!r}; expected a "
                             f"batch-norm leaf of the model ({names or 'it has none'})")
                return None
        if step.action == "forward" and arrays[step.input].shape[1:] != arrays[first.input].shape[1:]:
            builder.fail(raw["steps"], i, f"{where}: steps[{i}] calls the model on shape "
                         f"{arrays[step.input].shape}; expected (N, {', '.join(map(str, arrays[first.input].shape[1:]))}) "
                         "like its first call")
            return None
        observe = step.observe + tuple(m for m in masks if m not in step.observe) \
            if step.action == "forward" else step.observe
        checked.append(_with(step, observe))
    return checked


def _with(step: Step, observe: tuple[str, ...]) -> Step:
    from dataclasses import replace

    return replace(step, observe=observe)


def quantity_shape(quantity: str, model: ModelSpec, shapes: dict[str, tuple[int, ...]],
                   output_shape: tuple[int, ...], batch: int) -> tuple[int, ...]:
    """The shape of an observation of a model case, for a call on a batch of ``batch``."""
    if quantity == "output":
        return (batch, *output_shape[1:])
    name, _, what = quantity.rpartition(".")
    layer = model.leaf(name).layer
    if what in ("training", "batch_count"):
        return ()
    if what == "mask":
        return (batch, *shapes[name][1:])
    if isinstance(layer, LinearSpec):
        return (layer.out_features, layer.in_features) if what in ("weight", "grad_weight") else (layer.out_features,)
    assert isinstance(layer, BatchNormSpec)
    return (layer.num_features,)


__all__ = ["LEAF_STATE", "MODEL_ONLY", "ModelBuilder", "check_steps", "quantity_shape", "step_of"]
