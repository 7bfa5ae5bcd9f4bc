"""Model cases: a small model, a tree of blocks whose leaves are layers, instead of one layer.

A block is a ``sequential`` container (its children called in order) or a custom
``container`` (a class of the framework's own, whose forward calls its children in order and
may fix the mode at a call site: ``training: true|false`` hard-coded, ``mode`` tied to the
container's own mode, ``omitted``; a leaf may be called through the framework's functional
API, ``call: functional``). A container may override its framework's mode switch without
delegating to its children (``override_mode_switch``, a pitfall of published model code).

Leaves are batch norm and dropout (the layer specs of ``conformance.model``) and ``linear``,
neutral in the kit's own terms::

    y = x W^T + b          W of shape (out, in), b of shape (out,), on the last axis of x

(PyTorch stores W as is; Paddle and Keras store W^T: every adapter says so at the line).

Every leaf has a name, unique in the model; a case's observations name them:
``bn1.running_mean``, ``drop1.mask``, ``bn1.training`` (the mode the leaf ran in at its last
call: 1 training, 0 inference), ``fc1.weight``, after a training step the gradients its SGD
update applied (``fc1.grad_weight``, ``fc1.grad_bias``, ``bn1.grad_scale``,
``bn1.grad_shift``: ``conformance.program.applied_gradients``), and ``output`` for the
model's own output.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, fields
from typing import Any, Literal

import numpy as np

from conformance.model import BatchNormSpec, DropoutSpec

CallFlag = Literal["omitted", "true", "false", "mode"]
LEAF_STATE = {
    "batch_norm": ("running_mean", "running_var", "batch_count", "scale", "shift", "training",
                   "grad_scale", "grad_shift"),
    "dropout": ("mask", "training"),
    "linear": ("weight", "bias", "grad_weight", "grad_bias"),
}
GRADIENTS = ("grad_weight", "grad_bias", "grad_scale", "grad_shift")  # train_step only


@dataclass(frozen=True)
class LinearSpec:
    """``y = x W^T + b`` on the last axis; ``bias`` None for a layer without one."""

    in_features: int
    out_features: int
    weight: np.ndarray
    bias: np.ndarray | None = None
    kind: Literal["linear"] = "linear"


LeafLayer = BatchNormSpec | DropoutSpec | LinearSpec


@dataclass(frozen=True)
class Leaf:
    """A layer in a model: its name, and how its container calls it (``call``: the layer
    object, or the framework's functional form with the same parameters; ``training``: the
    call-site flag, only in a custom container)."""

    name: str
    layer: LeafLayer
    call: Literal["module", "functional"] = "module"
    training: CallFlag = "omitted"


@dataclass(frozen=True)
class Block:
    """A container: ``sequential`` or a custom ``container``; ``training`` is the flag its
    own parent calls it with."""

    name: str
    kind: Literal["sequential", "container"]
    children: tuple[Block | Leaf, ...]
    training: CallFlag = "omitted"
    override_mode_switch: bool = False


@dataclass(frozen=True)
class ModelSpec:
    """A model case's model: the root block. ``rank`` is the input's rank."""

    root: Block
    rank: int
    kind: Literal["model"] = "model"

    def leaves(self) -> Iterator[Leaf]:
        yield from _leaves(self.root)

    def blocks(self) -> Iterator[Block]:
        yield from _blocks(self.root)

    def leaf(self, name: str) -> Leaf:
        return next(leaf for leaf in self.leaves() if leaf.name == name)

    def quantities(self) -> tuple[str, ...]:
        """Every quantity a step of this model can observe."""
        found = ["output"]
        for leaf in self.leaves():
            found += [f"{leaf.name}.{q}" for q in LEAF_STATE[leaf.layer.kind]]
        return tuple(found)

    def has(self, kind: str) -> bool:
        return any(leaf.layer.kind == kind for leaf in self.leaves())

    def as_program(self) -> dict[str, Any]:
        """The model as plain data for results files (every array as nested lists)."""
        return {"kind": "model", "rank": self.rank, "root": _plain(self.root)}


def _plain(node: Any) -> Any:
    if isinstance(node, np.ndarray):
        return node.tolist()
    if isinstance(node, (Block, Leaf)) or hasattr(node, "__dataclass_fields__"):
        return {f.name: _plain(getattr(node, f.name)) for f in fields(node)
                if getattr(node, f.name) is not None}
    if isinstance(node, tuple):
        return [_plain(item) for item in node]
    return node


def _leaves(block: Block) -> Iterator[Leaf]:
    for child in block.children:
        if isinstance(child, Leaf):
            yield child
        else:
            yield from _leaves(child)


def _blocks(block: Block) -> Iterator[Block]:
    yield block
    for child in block.children:
        if isinstance(child, Block):
            yield from _blocks(child)


def depth_of(block: Block, name: str, depth: int = 0) -> int | None:
    """How many containers lie between the root and the node ``name`` (its children: 1)."""
    for child in block.children:
        if child.name == name:
            return depth + 1
        if isinstance(child, Block):
            found = depth_of(child, name, depth + 1)
            if found is not None:
                return found
    return None


def split_quantity(quantity: str) -> tuple[str, str]:
    """``bn1.running_mean`` -> (``bn1``, ``running_mean``); ``output`` -> ("", ``output``)."""
    leaf, _, name = quantity.rpartition(".")
    return leaf, name
