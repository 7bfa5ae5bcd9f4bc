"""The numpy reference for model cases (``conformance.tree``): leaves are the layer
references of ``conformance.reference`` (and a linear layer), and the model's own semantics,
how a mode reaches its leaves, are explicit conventions (``ModelConventions``,
``FunctionalConventions``).

Modes, as PyTorch and Paddle document them (the canonical conventions):

- every node (container or leaf) has a mode, training at construction; a mode switch of the
  model sets it on every descendant (``model.eval_propagates=all``), except below a container
  that overrides the switch without delegating (it sets its own mode only);
- a leaf runs in its own mode, unless its call site fixes it: a hard-coded ``training: true``
  or ``false`` wins (``model.call_site_flag=honoured``) for the leaf or the whole sub-model it
  is given to; ``training: mode`` ties it to the calling container's mode; a functional form
  called without a flag uses its default (``functional.dropout_default_training=true``,
  ``functional.batch_norm_default_training=false``);
- a nested container's override of the switch is what the parent's switch calls
  (``model.override_respected=true``; false: the parent sets every descendant's mode itself);
- entries: ``train``/``eval`` switch the model and call it; ``call`` calls it as it is
  (``model.call_mode=inference``: a plain call always infers, as a Keras call without
  ``training`` does; ``train``: it always trains, as a Flax linen module whose ``train``
  argument defaults to True); ``predict`` infers without switching
  (``model.predict_switches=true``: it switches the model to inference first); ``train_step`` runs forward,
  backward and an SGD update in the current mode (``model.train_step_mode=train``: always in
  training, as Keras' ``train_on_batch``); ``mc_dropout`` switches to inference and then
  every dropout leaf back to training (the recipe PyTorch's and Paddle's users write);
- a leaf frozen through its own mode is switched back by the next mode switch
  (``model.freeze_survives_mode_switch=false``; true: the framework's own way, ``default``,
  freezes as a flag does); one frozen by a flag stays frozen; a frozen batch norm still
  learns its scale and shift (``model.freeze_scope=layer``: it learns nothing, as Keras'
  ``trainable=False``);
- a hard-coded call-site flag sets the mode of that call only (``model.call_flag_scope=pass``:
  of every later call of the same forward pass that gives none, as Keras 3's shared call
  context does).

A dropout leaf in a random pass keeps the units the framework's run kept, when the run is
given (its ``<leaf>.mask`` at that step): the rule (what is kept is scaled, the rest is 0) is
what the reference checks there, through the mask's own checks, and everything after the leaf
is then exactly computable.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from conformance.model import BatchNormSpec, DropoutSpec, Mode, Step
from conformance.program import kept_mask
from conformance.reference import (
    ReferenceBatchNorm,
    ReferenceDropout,
    conventions_for,
    model_conventions,
)
from conformance.tree import Block, Leaf, LinearSpec, ModelSpec


class ReferenceLinear:
    """``y = x W^T + b`` on the last axis, in float64."""

    def __init__(self, spec: LinearSpec) -> None:
        self.weight = np.asarray(spec.weight, np.float64).copy()
        self.bias = None if spec.bias is None else np.asarray(spec.bias, np.float64).copy()
        self.x: np.ndarray | None = None

    def forward(self, x: np.ndarray) -> np.ndarray:
        self.x = x
        y = x @ self.weight.T
        return y if self.bias is None else y + self.bias

    def backward(self, g: np.ndarray) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """d/dx, d/dW, d/db of sum(g * y), summed over every axis but the last."""
        assert self.x is not None
        flat_x = self.x.reshape(-1, self.x.shape[-1])
        flat_g = g.reshape(-1, g.shape[-1])
        grads = {"weight": flat_g.T @ flat_x}
        if self.bias is not None:
            grads["bias"] = flat_g.sum(axis=0)
        return g @ self.weight, grads


@dataclass
class _Call:
    """One leaf's part in the last forward pass, kept for the backward pass."""

    leaf: Leaf
    training: bool


@dataclass
class _State:
    modes: dict[str, bool] = field(default_factory=dict)  # every node's own mode
    frozen_by_mode: set[str] = field(default_factory=set)
    frozen_by_flag: set[str] = field(default_factory=set)
    records: dict[str, np.ndarray] = field(default_factory=dict)
    tape: list[_Call] = field(default_factory=list)
    leaked: bool | None = None  # model.call_flag_scope=pass: the last hard-coded flag of the pass


class ReferenceModel:
    """A model case's model under ``settings``, observing what ``observed`` (a framework's
    run of the same case, if given) kept in its random dropout passes."""

    def __init__(self, spec: ModelSpec, settings: dict[str, str], observed: Any = None) -> None:
        self.spec = spec
        self.model_conv, self.functional = model_conventions(settings)
        self.observed = observed
        self.leaves: dict[str, Any] = {}
        for leaf in spec.leaves():
            layer = leaf.layer
            if isinstance(layer, LinearSpec):
                self.leaves[leaf.name] = ReferenceLinear(layer)
            elif isinstance(layer, BatchNormSpec):
                self.leaves[leaf.name] = ReferenceBatchNorm(layer, conventions_for(layer, settings))  # type: ignore[arg-type]
            else:
                self.leaves[leaf.name] = ReferenceDropout(layer, conventions_for(layer, settings))  # type: ignore[arg-type]
        self.state = _State(modes={node: True for node in _names(spec.root)})
        self.index = -1

    # --- steps ---------------------------------------------------------------------------

    def run(self, step: Step, x: np.ndarray | None, grad_output: np.ndarray | None,
            index: int = -1) -> dict[str, np.ndarray]:
        self.index = index
        if step.action == "switch":
            self.switch(step.mode == "train")
            return {}
        if step.action == "freeze":
            self.freeze(step.target, step.via)
            return {}
        assert x is not None
        entry = step.entry
        if entry in ("train", "eval"):
            self.switch(entry == "train")
            return {"output": self.call(x)}
        if entry == "call":
            forced = {"inference": False, "train": True}.get(self.model_conv.call_mode)
            return {"output": self.call(x, forced)}
        if entry == "predict":
            if self.model_conv.predict_switches == "true":
                self.switch(False)
                return {"output": self.call(x)}
            return {"output": self.call(x, forced=False)}
        if entry == "mc_dropout":
            self.switch(False)
            for leaf in self.spec.leaves():
                if isinstance(leaf.layer, DropoutSpec):
                    self.state.modes[leaf.name] = True
            return {"output": self.call(x)}
        assert entry == "train_step" and grad_output is not None
        forced = True if self.model_conv.train_step_mode == "train" else None
        output = self.call(x, forced)
        self.backward_and_update(np.asarray(grad_output, np.float64), step.lr)
        return {"output": output}

    def switch(self, training: bool) -> None:
        """The model's mode switch, as far as it reaches (module docstring)."""
        reach = {"all": None, "partial": 1, "none": 0}[self.model_conv.eval_propagates]
        self._switch(self.spec.root, training, 0, reach)

    def _switch(self, block: Block, training: bool, depth: int, reach: int | None) -> None:
        self.state.modes[block.name] = training
        respected = depth == 0 or self.model_conv.override_respected == "true"
        if block.override_mode_switch and respected or (reach is not None and depth >= reach):
            return
        for child in block.children:
            if isinstance(child, Block):
                self._switch(child, training, depth + 1, reach)
            elif child.name in self.state.frozen_by_mode and self.model_conv.freeze_survives_mode_switch == "true":
                continue
            else:
                self.state.modes[child.name] = training
                self.state.frozen_by_mode.discard(child.name)

    def freeze(self, name: str, via: str) -> None:
        # a framework whose own way (default) survives the switch freezes the way a flag does
        if via == "flag" or via == "default" and self.model_conv.freeze_survives_mode_switch == "true":
            self.state.frozen_by_flag.add(name)
            self.leaves[name].frozen = True
        else:
            self.state.modes[name] = False
            self.state.frozen_by_mode.add(name)

    # --- forward ---------------------------------------------------------------------------

    def call(self, x: np.ndarray, forced: bool | None = None) -> np.ndarray:
        self.state.tape = []
        self.state.leaked = None
        return self._block(self.spec.root, np.asarray(x, np.float64), forced)

    def _block(self, block: Block, x: np.ndarray, forced: bool | None) -> np.ndarray:
        for child in block.children:
            flag = self._call_site(child.training, block, forced)
            if child.training in ("true", "false") and self.model_conv.call_flag_scope == "pass":
                self.state.leaked = flag  # the rest of the pass inherits it
            if isinstance(child, Block):
                x = self._block(child, x, flag)
            else:
                x = self._leaf(child, x, flag, block)
        return x

    def _call_site(self, training: str, parent: Block, forced: bool | None) -> bool | None:
        """The mode a call site imposes on a child (None: none, the child's own), from the
        flag written there and the one its caller was given."""
        if training in ("true", "false") and self.model_conv.call_site_flag == "honoured":
            return training == "true"
        if training == "mode":
            return self.state.modes[parent.name] if forced is None else forced
        if self.state.leaked is not None:
            return self.state.leaked
        return forced

    def _leaf(self, leaf: Leaf, x: np.ndarray, forced: bool | None, parent: Block) -> np.ndarray:
        training = self._effective(leaf, forced, parent)
        self.state.records[f"{leaf.name}.training"] = np.asarray(1.0 if training else 0.0)
        self.state.tape.append(_Call(leaf, training))
        ref = self.leaves[leaf.name]
        if isinstance(ref, ReferenceLinear):
            return ref.forward(x)
        mode: Mode = "train" if training else "eval"
        if isinstance(ref, ReferenceDropout):
            out = ref.forward(x, mode, kept=self._observed_kept(leaf, x))["output"]
            self.state.records[f"{leaf.name}.mask"] = kept_mask(x, out)
            return out
        return ref.forward(x, mode)["output"]

    def _effective(self, leaf: Leaf, forced: bool | None, parent: Block) -> bool:
        """The mode a leaf runs in (module docstring)."""
        if leaf.call == "functional":
            dropout = isinstance(leaf.layer, DropoutSpec)
            if leaf.training in ("true", "false"):
                if self.model_conv.call_site_flag == "overridden":  # the model's mode wins
                    return self.state.modes[parent.name] if forced is None else forced
                return leaf.training == "true"
            if leaf.training == "mode":
                return self.state.modes[parent.name] if forced is None else forced
            default = (self.functional.dropout_default_training if dropout
                       else self.functional.batch_norm_default_training)
            return default == "true"
        return self.state.modes[leaf.name] if forced is None else forced

    def _observed_kept(self, leaf: Leaf, x: np.ndarray) -> np.ndarray | None:
        """The units the framework's run kept at this step, where it saw them."""
        if self.observed is None or not 0 <= self.index < len(self.observed.steps):
            return None
        mask = self.observed.steps[self.index].get(f"{leaf.name}.mask")
        if mask is None or np.shape(mask) != x.shape:
            return None
        return np.asarray(mask != 0)  # NaN (input 0, not visible): kept; the output is 0 either way

    # --- backward and update ---------------------------------------------------------------

    def backward_and_update(self, g: np.ndarray, lr: float) -> None:
        """Gradients of sum(g * output) through the last forward pass, then one SGD step
        ``p <- p - lr * dp`` for every linear weight and bias and every trainable batch-norm
        scale and shift."""
        updates: list[tuple[Any, str, np.ndarray]] = []
        for call in reversed(self.state.tape):
            ref = self.leaves[call.leaf.name]
            if isinstance(ref, ReferenceLinear):
                g, grads = ref.backward(g)
                updates += [(ref, name, grad) for name, grad in grads.items()]
            elif isinstance(ref, ReferenceDropout):
                g = g * ref.factor
            else:
                grads = ref.backward(g)
                g = grads["grad_input"]
                layer = call.leaf.layer
                frozen = call.leaf.name in self.state.frozen_by_flag | self.state.frozen_by_mode
                if isinstance(layer, BatchNormSpec) and layer.affine and layer.trainable \
                        and not (frozen and self.model_conv.freeze_scope == "layer"):
                    updates += [(ref, "scale", grads["grad_scale"]), (ref, "shift", grads["grad_shift"])]
        for ref, name, grad in updates:
            setattr(ref, name, getattr(ref, name) - lr * grad)

    # --- observations ------------------------------------------------------------------------

    def observe(self) -> dict[str, np.ndarray]:
        """Every leaf's state and the record of its last call (``conformance.tree``)."""
        found = dict(self.state.records)
        for name, ref in self.leaves.items():
            if isinstance(ref, ReferenceLinear):
                found[f"{name}.weight"] = ref.weight.copy()
                if ref.bias is not None:
                    found[f"{name}.bias"] = ref.bias.copy()
            elif isinstance(ref, ReferenceBatchNorm):
                found.update({f"{name}.{k}": v for k, v in ref.observe().items()})
                if ref.spec.affine:
                    found[f"{name}.scale"], found[f"{name}.shift"] = ref.scale.copy(), ref.shift.copy()
        return found

    def reset_running_stats(self) -> None:
        for ref in self.leaves.values():
            if isinstance(ref, ReferenceBatchNorm):
                ref.reset_running_stats()


def _names(block: Block) -> list[str]:
    found = [block.name]
    for child in block.children:
        found += _names(child) if isinstance(child, Block) else [child.name]
    return found

