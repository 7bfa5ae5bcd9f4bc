"""Flax NNX models for model cases (``conformance.tree``), in NNX's own idiom. Imported only by
``FlaxNnxAdapter.build``, inside its worker process.

NNX modules are stateful objects with a mode switch, as torch's: ``Module.train()`` and
``Module.eval()`` call ``set_attributes`` on the module and every module below it (setting
``use_running_average`` and ``deterministic``), and a layer runs with its attributes unless its
call passes the flag (which takes precedence).

- ``sequential`` -> ``nnx.Sequential`` of its children (nested blocks nest); ``container`` ->
  ``_Container``, an ``nnx.Module`` whose ``__call__`` calls its children in order, each as its
  call site says: ``training: true|false`` on a layer -> ``bn(x, use_running_average=not
  <literal>)`` / ``dropout(x, deterministic=not <literal>)``, on a sub-model ->
  ``nnx.view(sub, use_running_average=..., deterministic=...)(x)`` (NNX's way to run a module
  in a given mode; the view shares its variables); ``mode`` or omitted -> ``child(x)`` (NNX
  modules hold their mode themselves, there is no container mode to pass). With
  ``override_mode_switch`` -> ``_SelfOnlyContainer``, whose ``train()``/``eval()`` return
  without delegating.
- leaves: ``linear`` -> ``nnx.Linear`` (kernel W^T); ``batch_norm`` / ``dropout`` ->
  ``nnx.BatchNorm`` / ``nnx.Dropout`` as the layer adapter translates them (``flax_nnx``), as
  recording subclasses; functional leaves are unsupported (NNX has none).
- entries: ``train`` -> ``model.train(); model(x)``, ``eval`` -> ``model.eval(); model(x)``,
  ``call`` -> ``model(x)``, ``train_step`` -> ``nnx.grad`` of ``sum(grad_output * y)`` with
  respect to every ``nnx.Param`` in the model's current mode, then plain SGD (a batch norm with
  ``trainable: false`` keeps its scale and bias), ``mc_dropout`` -> ``model.eval()`` then
  ``model.set_attributes(nnx.Dropout, deterministic=False)``, then a call; ``predict`` has no
  NNX counterpart.
- ``switch`` -> ``model.train()`` / ``model.eval()``; ``freeze`` (``mode`` or ``default``) ->
  ``eval()`` on the batch norm; through a flag: unsupported (NNX's flag is the attribute
  ``eval()`` sets).

Recording: every batch norm and dropout is an instance of a subclass of the NNX class that
records the flag its call resolved (the call's own, else the attribute: ``<leaf>.training``)
and a dropout's input and output (``<leaf>.mask``), then runs the class's own ``__call__``;
inside ``nnx.grad`` those records are returned as the loss's auxiliary values.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from conformance.adapters import flax_common as common
from conformance.adapters.base import Unsupported
from conformance.adapters.flax_nnx import batch_norm_layer, dropout_layer, set_variable
from conformance.model import BatchNormSpec, DropoutSpec, Step
from conformance.program import kept_mask
from conformance.tree import Block, Leaf, LinearSpec, ModelSpec


class _Log:
    """What the leaves of the current call ran with (hashable by identity: NNX keeps it as a
    static attribute of each recording layer)."""

    def __init__(self) -> None:
        self.records: dict[str, Any] = {}


class _RecordingBatchNorm(nnx.BatchNorm):
    """``nnx.BatchNorm`` that records the ``use_running_average`` its call resolves."""

    log: _Log
    leaf: str  # the spec's name of the leaf

    def __call__(self, x: Any, use_running_average: bool | None = None, **kwargs: Any) -> Any:
        running = self.use_running_average if use_running_average is None else use_running_average
        self.log.records[f"{self.leaf}.training"] = not running
        return super().__call__(x, use_running_average, **kwargs)


class _RecordingDropout(nnx.Dropout):
    """``nnx.Dropout`` that records the ``deterministic`` its call resolves, its input and output."""

    log: _Log
    leaf: str

    def __call__(self, inputs: Any, *, deterministic: bool | None = None, **kwargs: Any) -> Any:
        out = super().__call__(inputs, deterministic=deterministic, **kwargs)
        fixed = self.deterministic if deterministic is None else deterministic
        self.log.records[f"{self.leaf}.training"] = not fixed
        self.log.records[f"{self.leaf}.pass"] = (inputs, out)
        return out


class _Container(nnx.Module):
    """A custom container: its ``__call__`` calls its children in order, each as its call
    site says (module docstring). The children are attributes named by the spec."""

    def __init__(self, calls: tuple[tuple[str, str, str], ...]) -> None:
        self.calls = calls  # (name, kind, flag) in call order: static

    def __call__(self, x: Any) -> Any:
        for name, kind, flag in self.calls:
            child = getattr(self, name)
            if flag not in ("true", "false"):
                x = child(x)  # its own mode (mode / omitted: NNX containers hold no mode)
                continue
            inference = flag == "false"
            if kind == "batch_norm":
                x = child(x, use_running_average=inference)  # the call's flag takes precedence
            elif kind == "dropout":
                x = child(x, deterministic=inference)
            elif kind == "block":  # a sub-model in a fixed mode: a view of it, variables shared
                x = nnx.view(child, use_running_average=inference, deterministic=inference,
                             raise_if_not_found=False)(x)
            else:
                x = child(x)
        return x


class _SelfOnlyContainer(_Container):
    """A container whose ``train()``/``eval()`` override does not delegate (the pitfall of
    published model code): it returns without setting anything below it."""

    def train(self, **attributes: Any) -> None:
        return None

    def eval(self, **attributes: Any) -> None:
        return None


class _Builder:
    def __init__(self, dtype: Any, log: _Log) -> None:
        self.dtype, self.log = dtype, log
        self.layers: dict[str, Any] = {}  # leaf name -> its NNX layer

    def block(self, block: Block) -> Any:
        if block.kind == "sequential":
            return nnx.Sequential(*(self.node(child) for child in block.children))
        calls = []
        container = _SelfOnlyContainer(()) if block.override_mode_switch else _Container(())
        for child in block.children:
            if isinstance(child, Leaf) and child.call == "functional":
                what = "dropout" if isinstance(child.layer, DropoutSpec) else "batch norm"
                raise Unsupported(f"functional {what} {child.name!r}: Flax NNX has no functional {what} "
                                  "(only the nnx.Dropout / nnx.BatchNorm modules)")
            if hasattr(container, child.name):
                raise Unsupported(f"an nnx.Module cannot hold a child named {child.name!r}: the name "
                                  "is already an attribute of the module")
            setattr(container, child.name, self.node(child))
            kind = "block" if isinstance(child, Block) else child.layer.kind
            calls.append((child.name, kind, child.training))
        container.calls = tuple(calls)
        return container

    def node(self, node: Block | Leaf) -> Any:
        return self.block(node) if isinstance(node, Block) else self.leaf(node)

    def leaf(self, leaf: Leaf) -> Any:
        layer = leaf.layer
        module: Any
        if isinstance(layer, LinearSpec):
            module = nnx.Linear(layer.in_features, layer.out_features, use_bias=layer.bias is not None,
                                dtype=self.dtype, param_dtype=self.dtype, rngs=nnx.Rngs(0))
            set_variable(module.kernel, np.asarray(layer.weight, np.float64).T)  # NNX stores W^T: (in, out)
            if layer.bias is not None:
                set_variable(module.bias, layer.bias)
        elif isinstance(layer, BatchNormSpec):
            module = batch_norm_layer(layer, self.dtype, _RecordingBatchNorm)
            if layer.frozen:
                module.eval()  # frozen: true, NNX's way (the next model.train() undoes it)
        else:
            module = dropout_layer(layer, _RecordingDropout)
        if not isinstance(layer, LinearSpec):
            module.log, module.leaf = self.log, leaf.name  # static attributes of the recorder
        self.layers[leaf.name] = module
        return module


class FlaxNnxModelHandle:
    """A model case's NNX model (``conformance.adapters.base.ModelHandle``)."""

    def __init__(self, spec: ModelSpec, dtype: Any, device: Any) -> None:
        self.spec, self.dtype, self.device = spec, dtype, device
        self.log = _Log()
        builder = _Builder(dtype, self.log)
        self.model = builder.block(spec.root)
        self.layers = builder.layers
        self.records: dict[str, np.ndarray] = {}

    def run(self, step: Step, x: np.ndarray | None, grad_output: np.ndarray | None,
            index: int = -1) -> dict[str, np.ndarray]:
        """One step in NNX's idiom (module docstring)."""
        if step.action == "switch":
            self.model.train() if step.mode == "train" else self.model.eval()
            return {}
        if step.action == "freeze":
            self._freeze(step.target, step.via)
            return {}
        assert x is not None
        if step.entry == "predict":
            raise Unsupported("Flax NNX has no predict entry: its inference idiom is model.eval() then "
                              "a call (the eval entry)")
        xj = common.to_jax(x, self.dtype, self.device)
        self.log.records = {}
        with jax.default_device(self.device):
            if step.entry == "train_step":
                assert grad_output is not None
                y = self._train_step(xj, common.to_jax(grad_output, self.dtype, self.device), step.lr)
            else:
                if step.entry in ("train", "eval"):
                    self.model.train() if step.entry == "train" else self.model.eval()
                elif step.entry == "mc_dropout":
                    self.model.eval()  # batch norm on its statistics, then the dropouts on again
                    self.model.set_attributes(nnx.Dropout, deterministic=False, raise_if_not_found=False)
                y = self.model(xj)
        self._keep(self.log.records)
        return {"output": common.to_numpy(y)}

    def _train_step(self, xj: Any, g: Any, lr: float) -> Any:
        """nnx.grad of sum(g * y) in the current mode, then p <- p - lr * grad."""
        log = self.log

        def loss(model: Any) -> tuple[Any, tuple[Any, dict[str, Any]]]:
            log.records = {}
            y = model(xj)
            return common.weighted_sum(y, g), (y, dict(log.records))

        grads, (y, records) = nnx.grad(loss, has_aux=True)(self.model)
        params = nnx.state(self.model, nnx.Param)
        # trainable: false -> that batch norm's scale and bias keep their values
        kept = [(variable, variable[...]) for leaf in self.spec.leaves()
                if isinstance(leaf.layer, BatchNormSpec) and not leaf.layer.trainable
                for variable in (getattr(self.layers[leaf.name], "scale", None),
                                 getattr(self.layers[leaf.name], "bias", None)) if variable is not None]
        nnx.update(self.model, jax.tree_util.tree_map(lambda p, d: p - jnp.asarray(lr, p.dtype) * d, params, grads))
        for variable, value in kept:
            variable[...] = value
        self.log.records = records
        return y

    def _keep(self, records: dict[str, Any]) -> None:
        for name, value in records.items():
            if name.endswith(".pass"):
                x, y = value
                self.records[name[: -len(".pass")] + ".mask"] = kept_mask(common.to_numpy(x), common.to_numpy(y))
            else:
                self.records[name] = np.asarray(1.0 if value else 0.0)

    def _freeze(self, name: str, via: str) -> None:
        if via == "flag":
            raise Unsupported("Flax NNX has no freeze flag apart from the mode: eval() on the batch norm "
                              "sets use_running_average=True, the attribute the model's train() resets "
                              "(via: mode)")
        self.layers[name].eval()  # NNX's way: eval() on the batch norm module

    def reset_running_stats(self) -> None:
        for layer in self.layers.values():
            if isinstance(layer, nnx.BatchNorm):
                layer.mean[...] = jnp.zeros_like(layer.mean[...])
                layer.var[...] = jnp.ones_like(layer.var[...])

    def state(self) -> dict[str, np.ndarray]:
        """Every leaf's state (``ModelHandle.state``) and the records of its last call."""
        found = dict(self.records)
        for name, layer in self.layers.items():
            if isinstance(layer, nnx.Linear):
                found[f"{name}.weight"] = common.to_numpy(layer.kernel[...]).T  # back to (out, in)
                if layer.bias is not None:
                    found[f"{name}.bias"] = common.to_numpy(layer.bias[...])
            elif isinstance(layer, nnx.BatchNorm):
                found[f"{name}.running_mean"] = common.to_numpy(layer.mean[...])
                found[f"{name}.running_var"] = common.to_numpy(layer.var[...])
                if layer.scale is not None:
                    found[f"{name}.scale"] = common.to_numpy(layer.scale[...])
                if layer.bias is not None:
                    found[f"{name}.shift"] = common.to_numpy(layer.bias[...])
        return found


def build_model(spec: ModelSpec, dtype: Any, device: Any) -> FlaxNnxModelHandle:
    """The NNX model of ``spec`` (``FlaxNnxAdapter.build`` for a ``ModelSpec``)."""
    return FlaxNnxModelHandle(spec, dtype, device)
