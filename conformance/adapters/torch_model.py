"""PyTorch model cases (``conformance.tree``): a spec's tree of blocks built from torch's own
containers and layers, and run through torch's own idioms.

The mapping:

- ``sequential`` -> ``torch.nn.Sequential(OrderedDict(name -> module))`` (nested blocks nest);
  ``container`` -> ``_Container``, an ``nn.Module`` subclass whose ``forward`` calls its
  children in order; with ``override_mode_switch`` -> ``_SelfOnlyContainer``, whose
  ``train(mode)`` sets its own ``training`` and returns, never reaching its children;
- leaves: ``linear`` -> ``nn.Linear`` (W stored (out, in), as the spec gives it);
  ``batch_norm`` -> ``nn.BatchNorm1d/2d/3d`` by rank, ``dropout`` -> ``nn.Dropout`` or
  ``nn.Dropout1d/2d/3d`` (channel-wise), translated as the layer adapter translates them;
  ``call: functional`` -> ``torch.nn.functional.batch_norm`` / ``dropout`` (``dropout1d/2d/3d``)
  in the container's forward, on tensors the container registers under the leaf's name;
- entries: ``train`` -> ``model.train(); model(x)``, ``eval`` -> ``model.eval(); model(x)``,
  ``call`` -> ``model(x)``, ``train_step`` -> forward, ``(y * g).sum().backward()``, one
  ``torch.optim.SGD`` step, in the model's current mode; ``mc_dropout`` -> ``model.eval()``, then
  ``.train()`` on every dropout module, then a call; ``predict`` has no torch counterpart;
- ``switch`` -> ``model.train()`` / ``model.eval()``; ``freeze`` (via ``mode`` or ``default``)
  -> ``eval()`` on the batch-norm module.

What each leaf ran in is read from torch itself: a forward pre-hook records ``module.training``
of every batch-norm and dropout module as the call reaches it, a forward hook keeps each dropout
module's input and output (its mask); a functional leaf records the flag its call evaluated.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from conformance.adapters.base import Unsupported
from conformance.adapters.torch import (
    BATCH_NORMS,
    CHANNEL_DROPOUTS,
    _channels_to_back,
    _channels_to_front,
    _to_numpy,
)
from conformance.model import BatchNormSpec, DropoutSpec, Step
from conformance.program import kept_mask
from conformance.tree import Block, Leaf, LinearSpec, ModelSpec

FUNCTIONAL_CHANNEL_DROPOUTS = {3: F.dropout1d, 4: F.dropout2d, 5: F.dropout3d}
BATCH_NORM_MODULES = (torch.nn.BatchNorm1d, torch.nn.BatchNorm2d, torch.nn.BatchNorm3d)
DROPOUT_MODULES = (torch.nn.Dropout, torch.nn.Dropout1d, torch.nn.Dropout2d, torch.nn.Dropout3d)


@dataclass
class _Records:
    """What each leaf did at its last call: the mode it ran in, a dropout's input and output."""

    training: dict[str, bool] = field(default_factory=dict)
    passes: dict[str, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)

    def ran(self, name: str, training: bool) -> None:
        self.training[name] = bool(training)

    def dropped(self, name: str, x: torch.Tensor, y: torch.Tensor) -> None:
        self.passes[name] = (_to_numpy(x), _to_numpy(y))


# --- containers ------------------------------------------------------------------------------

CallSite = Callable[[torch.nn.Module, torch.Tensor], torch.Tensor]


class _Container(torch.nn.Module):
    """A custom container: its ``forward`` calls its children in order, each as its call
    site says (a module call, or a functional call with or without a ``training`` flag)."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[CallSite] = []  # plain Python callables, in call order

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for call in self.calls:
            x = call(self, x)
        return x


class _SelfOnlyContainer(_Container):
    """A container that overrides torch's mode switch without delegating to its children
    (the pitfall of published model code: ``eval()`` calls ``train(False)``, which lands here)."""

    def train(self, mode: bool = True) -> _SelfOnlyContainer:
        self.training = mode  # its own mode only; children keep theirs
        return self


class _ChannelsLast(torch.nn.Module):
    """A layer on channels-last data: torch's batch norm and channel dropout take channels at
    axis 1 (NCHW), so the channel axis is moved there and back, as the layer adapter does."""

    def __init__(self, layer: torch.nn.Module) -> None:
        super().__init__()
        self.layer = layer

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _channels_to_back(self.layer(_channels_to_front(x, "last")), "last")


def _module_call(name: str) -> CallSite:
    """A child called as a module: ``self.<name>(x)``, in the child's own mode."""
    return lambda owner, x: getattr(owner, name)(x)


def _training_argument(flag: str, owner: torch.nn.Module) -> dict[str, bool]:
    """The ``training=`` argument of a functional call: a literal, the container's own
    ``self.training`` (``mode``), or nothing (``omitted``: the function's default decides)."""
    if flag == "omitted":
        return {}
    if flag == "mode":
        return {"training": owner.training}
    return {"training": flag == "true"}


@dataclass
class _FunctionalDropout:
    """``torch.nn.functional.dropout`` (or ``dropout1d/2d/3d``) called in a container's forward."""

    name: str
    spec: DropoutSpec
    flag: str
    records: _Records

    def __call__(self, owner: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
        function = F.dropout if self.spec.granularity == "element" else FUNCTIONAL_CHANNEL_DROPOUTS[self.spec.rank]
        training = _training_argument(self.flag, owner)
        # torch's p is the probability to drop, as rate; channels moved to axis 1 and back
        y = _channels_to_back(function(_channels_to_front(x, self.spec.channel_axis), p=self.spec.rate,
                                       **training), self.spec.channel_axis)
        if training:  # the flag the call evaluated; without one, torch's default is not seen
            self.records.ran(self.name, training["training"])
        self.records.dropped(self.name, x, y)
        return y


@dataclass
class _FunctionalBatchNorm:
    """``torch.nn.functional.batch_norm`` called in a container's forward, on the running
    statistics and affine parameters the container registers as ``<leaf>_running_mean``,
    ``<leaf>_running_var``, ``<leaf>_weight``, ``<leaf>_bias``."""

    name: str
    spec: BatchNormSpec
    flag: str
    records: _Records

    def __call__(self, owner: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
        training = _training_argument(self.flag, owner)
        tensors = {k: getattr(owner, f"{self.name}_{k}", None)
                   for k in ("running_mean", "running_var", "weight", "bias")}
        weight, eps = self.spec.update_weight, self.spec.eps
        assert weight is not None and eps is not None  # a model's batch norm has neutral values
        # momentum is the weight of the new batch statistic, as update_weight; eps as is
        y = F.batch_norm(_channels_to_front(x, self.spec.channel_axis), tensors["running_mean"],
                         tensors["running_var"], tensors["weight"], tensors["bias"], **training,
                         momentum=weight, eps=eps)
        if training:
            self.records.ran(self.name, training["training"])
        return _channels_to_back(y, self.spec.channel_axis)


# --- building --------------------------------------------------------------------------------


class _Builder:
    """Builds a ``ModelSpec`` as torch modules in ``dtype`` on ``device``."""

    def __init__(self, dtype: torch.dtype, device: torch.device, records: _Records) -> None:
        self.options: dict[str, Any] = {"dtype": dtype, "device": device}  # factory kwargs
        self.records = records
        self.layers: dict[str, torch.nn.Module | None] = {}  # leaf -> its layer module (None: functional)
        self.functional: dict[str, tuple[torch.nn.Module, Leaf]] = {}  # functional leaf -> (container, leaf)

    def block(self, block: Block) -> torch.nn.Module:
        if block.kind == "sequential":
            probe = torch.nn.Sequential()  # the names an empty Sequential already holds
            for child in block.children:
                _check_name(probe, child.name)
            return torch.nn.Sequential(OrderedDict((child.name, self.node(child)) for child in block.children))
        container = _SelfOnlyContainer() if block.override_mode_switch else _Container()
        for child in block.children:
            container.calls.append(self.call_site(container, child))
        return container

    def node(self, node: Block | Leaf) -> torch.nn.Module:
        return self.block(node) if isinstance(node, Block) else self.leaf(node)

    def call_site(self, container: _Container, child: Block | Leaf) -> CallSite:
        """How a custom container's forward calls ``child``."""
        if isinstance(child, Leaf) and child.call == "functional":
            return self.functional_leaf(container, child)
        if child.training in ("true", "false"):
            what = "sub-model" if isinstance(child, Block) else f"{child.layer.kind} layer"
            raise Unsupported(
                f"torch modules take no training argument: the {what} {child.name!r} is called "
                f"with training={child.training.capitalize()} at its call site; only the functional "
                "forms (torch.nn.functional.dropout / batch_norm) take a training flag, and a "
                "module's mode is set by train()/eval()")
        # training: mode (or omitted) on a module child: a plain call, in the child's own mode
        _check_name(container, child.name)
        container.add_module(child.name, self.node(child))
        return _module_call(child.name)

    def leaf(self, leaf: Leaf) -> torch.nn.Module:
        layer = leaf.layer
        if isinstance(layer, LinearSpec):
            return self.linear(leaf.name, layer)
        module = self.batch_norm(layer) if isinstance(layer, BatchNormSpec) else self.dropout(layer)
        self.layers[leaf.name] = module
        module.register_forward_pre_hook(lambda m, args, name=leaf.name: self.records.ran(name, m.training))
        outer = _ChannelsLast(module) if layer.channel_axis == "last" and layer.rank > 2 else module
        if isinstance(layer, DropoutSpec):
            # the mask is read from the leaf's input and output as the model sees them
            outer.register_forward_hook(lambda m, args, y, name=leaf.name: self.records.dropped(name, args[0], y))
        return outer

    def linear(self, name: str, spec: LinearSpec) -> torch.nn.Module:
        module = torch.nn.Linear(spec.in_features, spec.out_features, bias=spec.bias is not None, **self.options)
        with torch.no_grad():
            module.weight.copy_(torch.as_tensor(spec.weight))  # torch stores W as (out, in), as the spec
            if spec.bias is not None:
                module.bias.copy_(torch.as_tensor(spec.bias))
        self.layers[name] = module
        return module

    def batch_norm(self, spec: BatchNormSpec) -> torch.nn.Module:
        if spec.frozen:
            raise Unsupported("torch has no flag that freezes a batch norm's statistics (frozen: true): "
                              "its way is eval() on the BN module, which the model's next train() "
                              "undoes (a freeze step via: mode measures that)")
        assert spec.eps is not None  # a model's batch norm has neutral values (spec_model)
        module = BATCH_NORMS[spec.rank](
            spec.num_features,
            eps=spec.eps,
            # torch's momentum is the weight of the new batch statistic, as update_weight;
            # momentum=None is torch's cumulative average
            momentum=None if spec.update == "cumulative" else spec.update_weight,
            affine=spec.affine,
            track_running_stats=spec.running_stats,
            **self.options,
        )
        _set_values(module, spec)
        return module

    def dropout(self, spec: DropoutSpec) -> torch.nn.Module:
        # torch's p is the probability to drop, as rate
        if spec.granularity == "element":
            return torch.nn.Dropout(p=spec.rate)
        if spec.rank not in CHANNEL_DROPOUTS:
            raise Unsupported(f"torch has channel-wise dropout for rank 3 to 5 inputs, not rank {spec.rank}")
        return CHANNEL_DROPOUTS[spec.rank](p=spec.rate)  # zero whole channels, one draw per sample and channel

    def functional_leaf(self, container: _Container, leaf: Leaf) -> CallSite:
        """A functional leaf: its tensors registered on the container, its call in the forward."""
        layer = leaf.layer
        self.layers[leaf.name] = None
        self.functional[leaf.name] = (container, leaf)
        if isinstance(layer, DropoutSpec):
            if layer.granularity == "channel" and layer.rank not in FUNCTIONAL_CHANNEL_DROPOUTS:
                raise Unsupported(f"torch has channel-wise dropout (dropout1d/2d/3d) for rank 3 to 5 "
                                  f"inputs, not rank {layer.rank}")
            return _FunctionalDropout(leaf.name, layer, leaf.training, self.records)
        assert isinstance(layer, BatchNormSpec)
        if layer.update == "cumulative":
            raise Unsupported("torch.nn.functional.batch_norm takes a float momentum and counts no "
                              "batches: the cumulative average (momentum=None) exists only on the "
                              "nn.BatchNorm modules")
        if layer.frozen:
            raise Unsupported("torch.nn.functional.batch_norm has no flag that freezes its statistics "
                              "(frozen: true); its training argument is the call site's")
        self.register_functional_tensors(container, leaf.name, layer)
        return _FunctionalBatchNorm(leaf.name, layer, leaf.training, self.records)

    def register_functional_tensors(self, container: torch.nn.Module, name: str, spec: BatchNormSpec) -> None:
        """The functional batch norm's state, owned by its container as buffers (running
        statistics) and parameters (scale as ``weight``, shift as ``bias``)."""
        channels, options = spec.num_features, self.options

        def values(given: np.ndarray | None, fill: float) -> torch.Tensor:
            return torch.as_tensor(given).to(**options) if given is not None else torch.full((channels,), fill, **options)
        if spec.running_stats:
            for key, given, fill in (("running_mean", spec.running_mean, 0.0), ("running_var", spec.running_var, 1.0)):
                _check_name(container, f"{name}_{key}")
                container.register_buffer(f"{name}_{key}", values(given, fill))
        if spec.affine:
            for key, given, fill in (("weight", spec.scale, 1.0), ("bias", spec.shift, 0.0)):
                _check_name(container, f"{name}_{key}")
                # trainable: false -> the parameter takes no gradient (requires_grad=False)
                container.register_parameter(f"{name}_{key}", torch.nn.Parameter(values(given, fill),
                                                                                 requires_grad=spec.trainable))


def _set_values(module: torch.nn.Module, spec: BatchNormSpec) -> None:
    """The spec's initial scale, shift and running statistics, in the module's dtype."""
    with torch.no_grad():
        for attr, values in (("weight", spec.scale), ("bias", spec.shift),
                             ("running_mean", spec.running_mean), ("running_var", spec.running_var)):
            target = getattr(module, attr, None)
            if values is not None and target is not None:
                target.copy_(torch.as_tensor(values))
    if not spec.trainable and spec.affine:
        # trainable=False: scale and shift take no gradient (torch's requires_grad_(False))
        module.weight.requires_grad_(False)
        module.bias.requires_grad_(False)


def _check_name(owner: torch.nn.Module, name: str) -> None:
    """torch registers a child, buffer or parameter only under a name that is not already an
    attribute of its owner (``add_module`` raises KeyError): that refusal, as the framework's."""
    if hasattr(owner, name):
        raise Unsupported(f"torch cannot register {name!r} on a {type(owner).__name__}: nn.Module "
                          "refuses a child, buffer or parameter name that is already an attribute")


# --- the handle ------------------------------------------------------------------------------


class TorchModel:
    """A model case's model on torch (``conformance.adapters.base.ModelHandle``)."""

    def __init__(self, spec: ModelSpec, dtype: torch.dtype, device: torch.device) -> None:
        self.spec, self.dtype, self.device = spec, dtype, device
        self.records = _Records()
        builder = _Builder(dtype, device, self.records)
        self.model = builder.block(spec.root)
        self.layers, self.functional = builder.layers, builder.functional
        seeds = [leaf.layer.seed for leaf in spec.leaves() if isinstance(leaf.layer, DropoutSpec)
                 and leaf.layer.seed is not None]
        if seeds:
            # torch draws every dropout mask from one global generator: seeded once, after
            # every layer's initialisation, with the first seed the model gives
            torch.manual_seed(seeds[0])

    # --- steps -------------------------------------------------------------------------------

    def run(self, step: Step, x: np.ndarray | None, grad_output: np.ndarray | None,
            index: int = -1) -> dict[str, np.ndarray]:
        """One model step in torch's idiom (``conformance.model.Step``)."""
        if step.action == "switch":
            self.model.train(step.mode == "train")  # torch's mode switch; eval() is train(False)
            return {}
        if step.action == "freeze":
            self.freeze(step.target, step.via)
            return {}
        assert x is not None
        entries: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
            "train": self.train_entry, "eval": self.eval_entry, "call": self.model,
            "mc_dropout": self.mc_dropout}
        if step.entry == "predict":
            raise Unsupported("torch has no predict entry: its inference idiom is model.eval() then a "
                              "call (the eval entry)")
        if step.entry == "train_step":
            assert grad_output is not None
            return {"output": _to_numpy(self.train_step(self.tensor(x), self.tensor(grad_output), step.lr))}
        return {"output": _to_numpy(entries[step.entry](self.tensor(x)))}

    def tensor(self, values: np.ndarray) -> torch.Tensor:
        # float64 numpy in, converted to the case's dtype on the device (as the layer adapter)
        return torch.as_tensor(np.asarray(values, dtype=np.float64)).to(self.device, self.dtype)

    def train_entry(self, x: torch.Tensor) -> torch.Tensor:
        self.model.train()
        return self.model(x)

    def eval_entry(self, x: torch.Tensor) -> torch.Tensor:
        self.model.eval()
        return self.model(x)

    def train_step(self, x: torch.Tensor, g: torch.Tensor, lr: float) -> torch.Tensor:
        """A hand-written training step in the model's current mode (no train() call): forward,
        backward of sum(g * y), one plain SGD step (no momentum) on every trainable parameter."""
        y = self.model(x)
        params = [p for p in self.model.parameters() if p.requires_grad]
        if params:  # a model with nothing to train has no backward (its output needs no gradient)
            (y * g).sum().backward()
            optimizer = torch.optim.SGD(params, lr=lr)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
        return y.detach()

    def mc_dropout(self, x: torch.Tensor) -> torch.Tensor:
        """PyTorch's usual Monte Carlo dropout recipe: eval() on the model, train() on every
        dropout module, then a call without gradients."""
        self.model.eval()
        for module in self.model.modules():
            if isinstance(module, DROPOUT_MODULES):
                module.train()
        with torch.no_grad():
            return self.model(x)

    def freeze(self, name: str, via: str) -> None:
        if via == "flag":
            raise Unsupported("PyTorch has no flag that freezes batch-norm statistics; eval() on the "
                              "BN module is the way (via: mode)")
        module = self.layers[name]
        if module is None:
            raise Unsupported(f"{name!r} is a functional batch norm (torch.nn.functional.batch_norm): it "
                              "has no module, hence no eval() to freeze it; its training argument is "
                              "its call site's")
        module.eval()  # PyTorch's way: the BN module kept in eval mode

    def reset_running_stats(self) -> None:
        for name, module in self.layers.items():
            if isinstance(module, BATCH_NORM_MODULES):
                module.reset_running_stats()  # torch's own: mean 0, variance 1, count 0
            elif name in self.functional and isinstance(self.functional[name][1].layer, BatchNormSpec):
                owner = self.functional[name][0]
                # a functional batch norm's statistics are the container's buffers: reset by hand
                for key, fill in (("running_mean", 0.0), ("running_var", 1.0)):
                    buffer = getattr(owner, f"{name}_{key}", None)
                    if buffer is not None:
                        buffer.fill_(fill)

    # --- observations ------------------------------------------------------------------------

    def state(self) -> dict[str, np.ndarray]:
        """Every leaf's state and the record of its last call (``ModelHandle.state``)."""
        found = {f"{name}.training": np.asarray(1.0 if ran else 0.0) for name, ran in self.records.training.items()}
        found.update({f"{name}.mask": kept_mask(x, y) for name, (x, y) in self.records.passes.items()})
        for leaf in self.spec.leaves():
            tensors = self.leaf_tensors(leaf)
            found.update({f"{leaf.name}.{q}": _to_numpy(t) for q, t in tensors.items() if t is not None})
        return found

    def leaf_tensors(self, leaf: Leaf) -> dict[str, torch.Tensor | None]:
        """A leaf's state tensors by the kit's names."""
        if isinstance(leaf.layer, DropoutSpec):
            return {}
        module = self.layers[leaf.name]
        if isinstance(leaf.layer, LinearSpec):
            assert isinstance(module, torch.nn.Linear)
            return {"weight": module.weight, "bias": module.bias}  # weight is (out, in) in torch
        if module is None:
            owner = self.functional[leaf.name][0]
            # the container's buffers and parameters; F.batch_norm counts no batches
            return {q: getattr(owner, f"{leaf.name}_{attr}", None) for q, attr in (
                ("running_mean", "running_mean"), ("running_var", "running_var"),
                ("scale", "weight"), ("shift", "bias"))}
        return {q: getattr(module, attr, None) for q, attr in (
            ("running_mean", "running_mean"), ("running_var", "running_var"),
            ("batch_count", "num_batches_tracked"), ("scale", "weight"), ("shift", "bias"))}


def build_model(spec: ModelSpec, dtype: torch.dtype, device: torch.device) -> TorchModel:
    """The torch model of a model case."""
    return TorchModel(spec, dtype, device)
