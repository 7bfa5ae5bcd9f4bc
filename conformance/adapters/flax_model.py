"""Flax linen models for model cases (``conformance.tree``), in linen's own idiom. Imported
only by ``FlaxAdapter.build``, inside the Flax worker process.

A linen model has no mode of its own (no ``train()``/``eval()``): the mode is a call argument,
as in Keras. Every block is ``_Block``, a linen module whose ``__call__(self, x, train: bool =
True, dropout: bool | None = None)`` calls its children in order, as the module of Flax's
imagenet example does (``train: bool = True``, ``nn.BatchNorm(use_running_average=not
train)``), each as its call site says: ``training: true|false`` -> the child gets that literal
(``child(x, train=<literal>)``, ``use_running_average=not <literal>``, ``deterministic=not
<literal>``); ``mode`` or omitted -> the block's own ``train`` (a linen call has no other way to
receive a mode; ``nn.Sequential`` passes its arguments to the first layer only, so a
``sequential`` block is the same ``_Block``). ``dropout`` (None: ``train``) lets a call turn
the dropouts on alone: the Monte Carlo recipe.

- leaves: ``linear`` -> ``nn.Dense`` (kernel W^T); ``batch_norm`` -> ``nn.BatchNorm`` and
  ``dropout`` -> ``nn.Dropout``, built exactly as the layer adapter translates the spec
  (``conformance.adapters.flax``); functional leaves are unsupported (linen has none).
- entries: every pass is ``model.apply(variables, x, ..., mutable=['batch_stats'],
  rngs={'dropout': key})`` and keeps the returned ``batch_stats`` (an apply with
  ``mutable=False`` would refuse a pass that updates them, and one without a key a dropout
  that drops: the adapter measures what the layers do instead); ``train`` -> ``train=True``,
  ``eval`` -> ``train=False``, ``call`` -> no ``train`` argument (the module's default,
  True, decides), ``train_step`` -> ``jax.grad`` of ``sum(grad_output * y)`` through an apply
  with ``train=True`` (linen's training step names its mode), then plain SGD on every
  parameter (``params - lr * grads``; a batch norm with ``trainable: false`` keeps its scale
  and bias), ``mc_dropout`` -> ``train=False, dropout=True`` (dropout on, batch norm on its
  running statistics); ``predict`` and ``switch`` are unsupported.
- ``freeze`` (``default`` or ``flag``) -> the batch norm rebuilt with its own
  ``use_running_average=True`` (and called without the flag: linen's ``merge_param`` refuses
  both), which every later apply keeps; through its mode: unsupported.

Recording: ``nn.intercept_methods`` sees every ``BatchNorm`` and ``Dropout`` call with the flag
it was given or built with (``<leaf>.training``, as Flax resolves it) and a dropout's input and
output (``<leaf>.mask``); inside ``jax.grad`` those are returned as the loss's auxiliary values.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from conformance.adapters import flax_common as common
from conformance.adapters.base import Unsupported
from conformance.adapters.flax import (
    batch_norm_module,
    dropout_module,
    set_batch_norm_values,
)
from conformance.model import BatchNormSpec, DropoutSpec, Step
from conformance.program import kept_mask
from conformance.tree import Block, LinearSpec, ModelSpec


@dataclass(frozen=True)
class _Node:
    """One child of a block, as a linen module's attribute holds it (hashable, no values):
    its name, kind, call-site flag, and a block's children."""

    name: str
    kind: str  # block | linear | batch_norm | dropout
    flag: str = "omitted"
    children: tuple[_Node, ...] = ()


class _Block(nn.Module):
    """A container (sequential or custom): calls its children in order (module docstring).
    ``leaves`` builds each leaf's linen layer; ``frozen`` names the batch norms frozen by
    their own ``use_running_average=True``."""

    plan: tuple[_Node, ...]
    leaves: Any  # _Leaves: leaf name -> a function building its linen layer
    frozen: frozenset[str] = frozenset()

    @nn.compact
    def __call__(self, x: Any, train: bool = True, dropout: bool | None = None) -> Any:
        drop = train if dropout is None else dropout
        for node in self.plan:
            if node.flag in ("true", "false"):
                mode = node.flag == "true"
                site_train, site_drop = mode, mode  # a hard-coded flag at the call site
            else:
                site_train, site_drop = train, drop  # the block's own argument, passed down
            if node.kind == "block":
                x = _Block(node.children, self.leaves, self.frozen, name=node.name)(
                    x, train=site_train, dropout=site_drop)
            elif node.kind == "linear":
                x = self.leaves.build(node.name)(x)
            elif node.kind == "batch_norm":
                if node.name in self.frozen:  # its own flag: merge_param refuses a second one
                    # a flag is no mode: the mode recorded is the one its call site passes on
                    self.leaves.records[f"{node.name}.training"] = site_train
                    x = self.leaves.build(node.name, use_running_average=True)(x)
                else:
                    x = self.leaves.build(node.name)(x, use_running_average=not site_train)
            else:
                x = self.leaves.build(node.name)(x, deterministic=not site_drop)
        return x


class _Leaves:
    """Builds each leaf's linen layer by name, as the layer adapter does (hashed by identity:
    a linen attribute)."""

    def __init__(self, spec: ModelSpec, dtype: Any) -> None:
        self.spec, self.dtype = spec, dtype
        self.layers = {leaf.name: leaf.layer for leaf in spec.leaves()}
        self.records: dict[str, Any] = {}  # what the current apply's leaves ran with

    def build(self, name: str, **extra: Any) -> nn.Module:
        layer = self.layers[name]
        if isinstance(layer, LinearSpec):
            return nn.Dense(layer.out_features, use_bias=layer.bias is not None, dtype=self.dtype,
                            param_dtype=self.dtype, name=name)
        if isinstance(layer, BatchNormSpec):
            return batch_norm_module(layer, self.dtype, name=name, **extra)
        return dropout_module(layer, name=name)


def _plan(block: Block) -> tuple[_Node, ...]:
    if block.override_mode_switch:
        raise Unsupported(f"container {block.name!r} overrides the mode switch: a linen module has no "
                          "train()/eval() to override (the mode is the train argument of each call)")
    nodes = []
    for child in block.children:
        if isinstance(child, Block):
            nodes.append(_Node(child.name, "block", child.training, _plan(child)))
            continue
        if child.call == "functional":
            what = "dropout" if isinstance(child.layer, DropoutSpec) else "batch norm"
            raise Unsupported(f"functional {what} {child.name!r}: Flax linen has no functional {what} "
                              "(only the nn.Dropout / nn.BatchNorm modules; a mask written by hand with "
                              "jax.random.bernoulli is no Flax API)")
        nodes.append(_Node(child.name, child.layer.kind, child.training))
    return tuple(nodes)


def _paths(block: Block, prefix: tuple[str, ...] = ()) -> dict[str, tuple[str, ...]]:
    """Each leaf's path in the variables (the names of the blocks below the root, then its own)."""
    found = {}
    for child in block.children:
        if isinstance(child, Block):
            found.update(_paths(child, (*prefix, child.name)))
        else:
            found[child.name] = (*prefix, child.name)
    return found


def _dummy_shape(spec: ModelSpec) -> tuple[int, ...]:
    """An input shape the model accepts (for ``init``): the widths its first layers need."""
    shape: list[int | None] = [None] * spec.rank
    for leaf in spec.leaves():
        layer = leaf.layer
        if isinstance(layer, LinearSpec):
            shape[-1] = shape[-1] or layer.in_features
            break  # the last axis is the linear layer's output from here on
        if isinstance(layer, BatchNormSpec):
            axis = common.channel_axis_index(spec.rank, layer.channel_axis)
            shape[axis] = shape[axis] or layer.num_features
    return tuple(2 if i == 0 else (d or 1) for i, d in enumerate(shape))


def _at(tree: dict[str, Any], path: tuple[str, ...]) -> dict[str, Any] | None:
    for key in path:
        if key not in tree:
            return None
        tree = tree[key]
    return tree


def _mutable(tree: Any) -> Any:
    """A variables tree as nested plain dicts (values replaced in place below)."""
    return {k: _mutable(v) for k, v in tree.items()} if hasattr(tree, "items") else tree


class FlaxModelHandle:
    """A model case's linen model (``conformance.adapters.base.ModelHandle``)."""

    def __init__(self, spec: ModelSpec, dtype: Any, device: Any) -> None:
        self.spec, self.dtype, self.device = spec, dtype, device
        self.leaves = _Leaves(spec, dtype)
        self.plan = _plan(spec.root)
        # frozen: true -> the batch norm's own use_running_average=True, as a freeze step sets it
        self.frozen = frozenset(leaf.name for leaf in spec.leaves()
                                if isinstance(leaf.layer, BatchNormSpec) and leaf.layer.frozen)
        self.model = _Block(self.plan, self.leaves, self.frozen)
        self.paths = _paths(spec.root)
        seeds = [leaf.layer.seed for leaf in spec.leaves()
                 if isinstance(leaf.layer, DropoutSpec) and leaf.layer.seed is not None]
        self.seed = seeds[0] if seeds else 0  # one key for the apply; linen folds in each path
        self.calls = 0
        self.records: dict[str, np.ndarray] = {}
        with jax.default_device(device):
            variables = self.model.init(jax.random.key(0), jnp.zeros(_dummy_shape(spec), dtype), train=False)
        self.variables = _mutable(variables)
        self._set_values()

    def _set_values(self) -> None:
        params, stats = self.variables.get("params", {}), self.variables.get("batch_stats", {})
        for leaf in self.spec.leaves():
            path, layer = self.paths[leaf.name], leaf.layer
            if isinstance(layer, LinearSpec):
                mine = _at(params, path)
                assert mine is not None
                # linen stores W^T: kernel is (in, out), y = x @ kernel + bias
                mine["kernel"] = self._array(np.asarray(layer.weight, np.float64).T, mine["kernel"])
                if layer.bias is not None:
                    mine["bias"] = self._array(layer.bias, mine["bias"])
            elif isinstance(layer, BatchNormSpec):
                set_batch_norm_values(_at(params, path) or {}, _at(stats, path) or {}, layer)

    def _array(self, values: Any, like: Any) -> Any:
        return jax.device_put(jnp.asarray(np.asarray(values, np.float64)).astype(like.dtype), self.device)

    # --- steps -----------------------------------------------------------------------------

    def run(self, step: Step, x: np.ndarray | None, grad_output: np.ndarray | None,
            index: int = -1) -> dict[str, np.ndarray]:
        """One step in linen's idiom (module docstring)."""
        if step.action == "switch":
            raise Unsupported("a linen model has no mode to switch (no train()/eval()): the mode is "
                              "the train argument of each apply")
        if step.action == "freeze":
            self._freeze(step.target, step.via)
            return {}
        assert x is not None
        if step.entry == "predict":
            raise Unsupported("linen has no predict entry: its inference is "
                              "model.apply(variables, x, train=False) (the eval entry)")
        xj = common.to_jax(x, self.dtype, self.device)
        key = common.dropout_key(self.seed, self.calls)
        self.calls += 1
        with jax.default_device(self.device):
            if step.entry == "train_step":
                assert grad_output is not None
                y = self._train_step(xj, common.to_jax(grad_output, self.dtype, self.device), key, step.lr)
            else:
                arguments = {"train": {"train": True}, "eval": {"train": False}, "call": {},
                             "mc_dropout": {"train": False, "dropout": True}}[step.entry]
                y, stats, records = self._apply(self.variables.get("params", {}), xj, key, arguments)
                self._keep(stats, records)
        return {"output": common.to_numpy(y)}

    def _apply(self, params: Any, xj: Any, key: Any, arguments: dict[str, Any]) -> tuple[Any, Any, dict[str, Any]]:
        """One apply with the recorder; returns the output, the new batch_stats, the records."""
        records = self.leaves.records = {}

        def record(next_fun: Any, args: Any, kwargs: Any, context: Any) -> Any:
            module = context.module
            out = next_fun(*args, **kwargs)
            if module.name in self.frozen:
                pass  # a frozen batch norm: its call site's mode, recorded by _Block
            elif context.method_name == "__call__" and isinstance(module, nn.BatchNorm):
                stored = module.use_running_average
                running = stored if stored is not None else kwargs.get("use_running_average")
                records[f"{module.name}.training"] = not running
            elif context.method_name == "__call__" and isinstance(module, nn.Dropout):
                stored = module.deterministic
                records[f"{module.name}.training"] = not (stored if stored is not None else kwargs.get("deterministic"))
                records[f"{module.name}.pass"] = (args[0], out)
            return out

        variables = {**self.variables, "params": params}
        with nn.intercept_methods(record):
            y, mutated = self.model.apply(variables, xj, **arguments, mutable=["batch_stats"],
                                          rngs={"dropout": key})
        return y, mutated.get("batch_stats", {}), records

    def _keep(self, stats: Any, records: dict[str, Any]) -> None:
        if stats:
            self.variables["batch_stats"] = _mutable(stats)
        for name, value in records.items():
            if name.endswith(".pass"):
                x, y = value
                self.records[name[: -len(".pass")] + ".mask"] = kept_mask(common.to_numpy(x), common.to_numpy(y))
            else:
                self.records[name] = np.asarray(1.0 if value else 0.0)

    def _train_step(self, xj: Any, g: Any, key: Any, lr: float) -> Any:
        """jax.grad of sum(g * y) through an apply with train=True, then SGD on the params."""
        params = self.variables.get("params", {})

        def loss(params: Any) -> tuple[Any, tuple[Any, Any, dict[str, Any]]]:
            y, stats, records = self._apply(params, xj, key, {"train": True})
            return common.weighted_sum(y, g), (y, stats, records)

        grads, (y, stats, records) = jax.grad(loss, has_aux=True)(params)
        fixed = {self.paths[leaf.name] for leaf in self.spec.leaves()
                 if isinstance(leaf.layer, BatchNormSpec) and not leaf.layer.trainable}
        self.variables["params"] = self._sgd(params, grads, lr, fixed)
        self._keep(stats, records)
        return y

    def _sgd(self, params: Any, grads: Any, lr: float, fixed: set[tuple[str, ...]],
             path: tuple[str, ...] = ()) -> Any:
        """p - lr * grad (no momentum) on every parameter but those of ``fixed`` leaves."""
        if not hasattr(params, "items"):
            return params if path[:-1] in fixed else params - jnp.asarray(lr, params.dtype) * grads
        return {k: self._sgd(v, grads[k], lr, fixed, (*path, k)) for k, v in params.items()}

    def _freeze(self, name: str, via: str) -> None:
        if via == "mode":
            raise Unsupported(f"freezing {name!r} through its mode: a linen layer has no mode of its own "
                              "(no eval()); its mode is the flag of each call")
        # linen's own switch: the BatchNorm's use_running_average=True attribute, kept by every apply
        self.frozen = self.frozen | {name}
        self.model = _Block(self.plan, self.leaves, self.frozen)

    def reset_running_stats(self) -> None:
        """mean <- 0, var <- 1 in every batch norm's batch_stats (Flax counts nothing)."""
        stats = self.variables.get("batch_stats", {})
        for leaf in self.spec.leaves():
            if isinstance(leaf.layer, BatchNormSpec):
                mine = _at(stats, self.paths[leaf.name])
                if mine is not None:
                    mine["mean"], mine["var"] = jnp.zeros_like(mine["mean"]), jnp.ones_like(mine["var"])

    def state(self) -> dict[str, np.ndarray]:
        """Every leaf's state (``ModelHandle.state``) and the records of its last call."""
        found = dict(self.records)
        params, stats = self.variables.get("params", {}), self.variables.get("batch_stats", {})
        for leaf in self.spec.leaves():
            path = self.paths[leaf.name]
            mine, kept = _at(params, path) or {}, _at(stats, path) or {}
            if isinstance(leaf.layer, LinearSpec):
                found[f"{leaf.name}.weight"] = common.to_numpy(mine["kernel"]).T  # back to (out, in)
                if "bias" in mine:
                    found[f"{leaf.name}.bias"] = common.to_numpy(mine["bias"])
            elif isinstance(leaf.layer, BatchNormSpec):
                found[f"{leaf.name}.running_mean"] = common.to_numpy(kept["mean"])
                found[f"{leaf.name}.running_var"] = common.to_numpy(kept["var"])
                for key, quantity in (("scale", "scale"), ("bias", "shift")):
                    if key in mine:
                        found[f"{leaf.name}.{quantity}"] = common.to_numpy(mine[key])
        return found


def build_model(spec: ModelSpec, dtype: Any, device: Any) -> FlaxModelHandle:
    """The linen model of ``spec`` (``FlaxAdapter.build`` for a ``ModelSpec``)."""
    return FlaxModelHandle(spec, dtype, device)
