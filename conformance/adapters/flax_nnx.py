"""Flax NNX adapter (the name ``flax-nnx``): ``flax.nnx.BatchNorm`` and ``flax.nnx.Dropout`` on
JAX. Flax's linen API is the adapter ``flax``, the default (``conformance.adapters.flax``); pick
NNX with ``--framework flax-nnx``. Imported only inside its worker process.

NNX modules are stateful objects, as torch's: the running statistics are ``nnx.BatchStat``
variables of the layer and the mode is its attributes ``use_running_average`` /
``deterministic``, which ``Module.train()`` / ``Module.eval()`` set (``set_attributes`` on the
module and every module below it). So the mode is a switch, as in torch: each forward calls
``layer.train()`` or ``layer.eval()``, then ``layer(x)``. The translation is linen's
(``conformance.adapters.flax_common``): momentum = 1 - update weight (Flax's weighs the old
value), ``epsilon``, ``use_scale``/``use_bias``, ``axis``, ``dtype``/``param_dtype`` the
case's; a frozen batch norm is kept in ``eval()`` in training too (NNX's way, as torch's);
``trainable=False``: scale and bias are not differentiated (zeros reported). Dropout draws its
masks from ``nnx.Rngs(dropout=seed)``, whose stream advances at every call (a new mask per
call; a layer rebuilt from the spec draws the same masks again).

Gradients: ``nnx.grad`` of ``sum(grad_output * output)`` with respect to the input and the
layer's ``nnx.Param`` variables (the batch statistics it updates on the way are written back
to the layer, as NNX transforms do). Contexts: ``plain``; ``no_grad``, the same call (JAX
records nothing unless differentiated); ``compiled``, the call under ``nnx.jit`` (which writes
the updated statistics back); ``inference`` unsupported.
"""

from __future__ import annotations

from functools import partial
from typing import Any, ClassVar

import flax
import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from conformance.adapters import flax_common as common
from conformance.adapters.base import Adapter, Documented, Unsupported
from conformance.adapters.documentation import DOCUMENTED
from conformance.model import BatchNormSpec, DropoutSpec, LayerSpec, Mode
from conformance.tree import ModelSpec


def batch_norm_layer(spec: BatchNormSpec, dtype: Any, cls: Any = nnx.BatchNorm) -> Any:
    """``nnx.BatchNorm`` (or a subclass) with the spec's parameters and initial values."""
    args = common.batch_norm_args(spec, "Flax NNX")
    layer = cls(spec.num_features, axis=args.axis, use_scale=args.affine, use_bias=args.affine,
                dtype=dtype, param_dtype=dtype, rngs=nnx.Rngs(0), **args.options)
    for name, values in (("scale", spec.scale), ("bias", spec.shift),
                         ("mean", spec.running_mean), ("var", spec.running_var)):
        variable = getattr(layer, name, None)
        if values is not None and variable is not None:
            set_variable(variable, values)
    return layer


def dropout_layer(spec: DropoutSpec, cls: Any = nnx.Dropout) -> Any:
    rate, broadcast = common.dropout_args(spec, "Flax NNX")
    # the layer's own stream: nnx.Rngs(dropout=seed) advances a counter at every call
    return cls(rate, broadcast_dims=broadcast, rngs=nnx.Rngs(dropout=0 if spec.seed is None else spec.seed))


def set_variable(variable: Any, values: Any) -> None:
    """Write ``values`` into an NNX variable, in the dtype and on the device it has."""
    old = variable[...]
    variable[...] = jax.device_put(jnp.asarray(np.asarray(values, np.float64).reshape(old.shape)).astype(old.dtype),
                                   next(iter(old.devices())))


class _NnxHandle:
    """One NNX layer, switched by train()/eval() and called like torch's."""

    def __init__(self, layer: Any, spec: LayerSpec, dtype: Any, device: Any) -> None:
        self.layer, self.spec, self.dtype, self.device = layer, spec, dtype, device
        self.bn = spec if isinstance(spec, BatchNormSpec) else None
        self._compiled: dict[bool, Any] = {}  # grads? -> the nnx.jit function
        self.trainable = self.bn is None or self.bn.trainable

    def _set_mode(self, mode: Mode) -> None:
        self.layer.train() if mode == "train" else self.layer.eval()
        if mode == "train" and self.bn is not None and self.bn.frozen:
            self.layer.eval()  # NNX's way to freeze batch norm in a training model: eval() on it

    def forward(self, x: np.ndarray, mode: Mode, grad_output: np.ndarray | None,
                context: str = "plain") -> dict[str, np.ndarray]:
        common.check_context(context, "Flax NNX")
        if context == "no_grad" and grad_output is not None:
            raise ValueError("a no_grad forward pass cannot produce gradients")
        self._set_mode(mode)
        grads = grad_output is not None
        run = partial(_with_grads, trainable=self.trainable) if grads else _plain
        if context == "compiled":  # nnx.jit of the same function, cached per handle
            if grads not in self._compiled:
                self._compiled[grads] = nnx.jit(run)
            run = self._compiled[grads]
        xj = common.to_jax(x, self.dtype, self.device)
        g = None if grad_output is None else common.to_jax(grad_output, self.dtype, self.device)
        with jax.default_device(self.device):
            result = run(self.layer, xj, g)
        return {k: common.to_numpy(v) for k, v in result.items()}

    def reset_running_stats(self) -> None:
        """mean <- 0, var <- 1 (Flax counts no batches)."""
        if not self.bn:
            raise Unsupported("Flax NNX Dropout has no running statistics to reset")
        self.layer.mean[...] = jnp.zeros_like(self.layer.mean[...])
        self.layer.var[...] = jnp.ones_like(self.layer.var[...])

    def state(self) -> dict[str, np.ndarray]:
        """The BatchStat variables of a batch norm; no batch count."""
        if not self.bn:
            return {}
        return {"running_mean": common.to_numpy(self.layer.mean[...]),
                "running_var": common.to_numpy(self.layer.var[...])}


def _plain(layer: Any, x: Any, g: Any) -> dict[str, Any]:
    return {"output": layer(x)}


def _with_grads(layer: Any, x: Any, g: Any, trainable: bool) -> dict[str, Any]:
    """The output and the gradients of sum(g * output): with respect to the input, and to the
    layer's nnx.Param variables unless it is not trainable (zeros reported then)."""
    def loss(layer: Any, x: Any) -> tuple[Any, Any]:
        y = layer(x)
        return common.weighted_sum(y, g), y

    params = getattr(layer, "scale", None) is not None
    if params and trainable:
        (grad_layer, grad_x), y = nnx.grad(loss, argnums=(0, 1), has_aux=True)(layer, x)
    else:
        grad_x, y = nnx.grad(loss, argnums=1, has_aux=True)(layer, x)
        grad_layer = None
    out = {"output": y, "grad_input": grad_x}
    if params:
        for key, name in (("grad_scale", "scale"), ("grad_shift", "bias")):
            out[key] = grad_layer[name][...] if grad_layer is not None else jnp.zeros_like(getattr(layer, name)[...])
    return out


class FlaxNnxAdapter(Adapter):
    """Flax NNX on JAX (the ``flax-nnx`` name; linen is ``flax``)."""

    name = "flax-nnx"
    install_hint = 'pip install "conformance[flax]"  (or: pip install flax jax)'
    documented: ClassVar[dict[str, Documented]] = DOCUMENTED["flax-nnx"]  # every convention, with its page

    def version(self) -> str:
        return str(flax.__version__)

    def devices(self) -> list[str]:
        return common.visible_devices()

    def environment(self, device: str) -> dict[str, Any]:
        env = super().environment(device)
        env.update(common.environment(device))
        return env

    def build(self, layer: LayerSpec | ModelSpec, dtype: str, device: str) -> Any:
        target = common.device_of(device)
        jdtype = common.DTYPES[dtype]
        with jax.default_device(target):
            if isinstance(layer, ModelSpec):  # a model case: NNX modules (flax_nnx_model)
                from conformance.adapters.flax_nnx_model import build_model

                return build_model(layer, jdtype, target)
            native = batch_norm_layer(layer, jdtype) if isinstance(layer, BatchNormSpec) else dropout_layer(layer)
        return _NnxHandle(native, layer, jdtype, target)
