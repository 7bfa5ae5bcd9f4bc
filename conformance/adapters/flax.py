"""Flax adapter, linen (the name ``flax``, the default): ``flax.linen.BatchNorm`` and
``flax.linen.Dropout`` on JAX. Flax's other API, NNX, is the adapter ``flax-nnx``
(``conformance.adapters.flax_nnx``): pick it with ``--framework flax-nnx``. Imported only
inside the Flax worker process.

Linen modules are stateless: the layer's variables (``params``: scale and bias;
``batch_stats``: the running mean and variance) live in a dict the adapter keeps, and each
pass is ``module.apply(variables, x, ..., mutable=['batch_stats'], rngs={'dropout': key})``,
whose returned ``batch_stats`` replace the old ones, as a linen training loop does. The mode is
a call argument: ``use_running_average`` (train -> False, eval -> True) and ``deterministic``
(train -> False, eval -> True). The translation, per the linen API pages:

- ``momentum`` weighs the OLD value (``ra = momentum * ra + (1 - momentum) * batch``):
  momentum = 1 - update weight (a probe's ``native_momentum`` passed as is); ``epsilon``;
  ``use_scale``/``use_bias`` for affine; ``axis`` the channel axis; the layer built with
  ``dtype`` and ``param_dtype`` the case's dtype (``batch_stats`` stay float32, Flax's
  ``force_float32_reductions`` default);
- a frozen batch norm is called with ``use_running_average=True`` in training too;
  ``trainable=False``: scale and bias are not differentiated (zeros reported);
- ``Dropout(rate, broadcast_dims)``: the spatial axes share one draw for channel-wise
  dropout; the key is the spec's seed with a call counter folded in (a new mask per call).

Gradients: ``jax.grad`` of ``sum(grad_output * output)`` with respect to the input and the
trainable parameters. Contexts: ``plain``; ``no_grad``, the same call (JAX records nothing
unless a function is differentiated); ``compiled``, the same pure function under
``jax.jit``; ``inference`` is unsupported (JAX has no such context).
"""

from __future__ import annotations

from typing import Any, ClassVar

import flax
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from conformance.adapters import flax_common as common
from conformance.adapters.base import Adapter, Documented, Unsupported
from conformance.adapters.documentation import DOCUMENTED
from conformance.model import BatchNormSpec, DropoutSpec, LayerSpec, Mode
from conformance.tree import ModelSpec


def batch_norm_module(spec: BatchNormSpec, dtype: Any, **extra: Any) -> nn.BatchNorm:
    """``nn.BatchNorm`` with the spec's parameters (the mode is given at each call)."""
    args = common.batch_norm_args(spec, "Flax linen")
    return nn.BatchNorm(axis=args.axis, use_scale=args.affine, use_bias=args.affine,
                        dtype=dtype, param_dtype=dtype, **args.options, **extra)


def dropout_module(spec: DropoutSpec, **extra: Any) -> nn.Dropout:
    rate, broadcast = common.dropout_args(spec, "Flax linen")
    return nn.Dropout(rate=rate, broadcast_dims=broadcast, **extra)


def init_batch_norm(module: nn.Module, spec: BatchNormSpec, device: Any) -> dict[str, Any]:
    """The variables ``module.init`` creates (their shapes and dtypes are Flax's), with the
    spec's initial scale, shift and running statistics written into them."""
    shape = [1] * spec.rank
    shape[common.channel_axis_index(spec.rank, spec.channel_axis)] = spec.num_features
    with jax.default_device(device):
        variables = module.init(jax.random.key(0), jnp.zeros(shape, module.param_dtype),
                                use_running_average=True)
    variables = jax.tree_util.tree_map(lambda a: a, flax.core.unfreeze(variables))
    set_batch_norm_values(variables.get("params", {}), variables["batch_stats"], spec)
    return dict(variables)


def set_batch_norm_values(params: dict[str, Any], stats: dict[str, Any], spec: BatchNormSpec) -> None:
    """Write the spec's values into a batch norm's variables, each in the dtype Flax gave it."""
    for collection, key, values in ((params, "scale", spec.scale), (params, "bias", spec.shift),
                                    (stats, "mean", spec.running_mean), (stats, "var", spec.running_var)):
        if values is not None and key in collection:
            old = collection[key]
            collection[key] = jax.device_put(
                jnp.asarray(np.asarray(values, np.float64).reshape(old.shape)).astype(old.dtype),
                next(iter(old.devices())))


class _LinenHandle:
    """One linen layer and its variables, driven on one device in one dtype."""

    def __init__(self, module: nn.Module, spec: LayerSpec, dtype: Any, device: Any) -> None:
        self.module, self.spec, self.dtype, self.device = module, spec, dtype, device
        self.bn = spec if isinstance(spec, BatchNormSpec) else None
        self.variables: dict[str, Any] = init_batch_norm(module, self.bn, device) if self.bn else {}
        self.calls = 0  # dropout passes so far: folded into the key
        self._compiled: dict[tuple[bool, bool], Any] = {}  # (deterministic flag, grads) -> jitted

    def _pure(self, flag: bool, grads: bool) -> Any:
        """The pass as a pure function of (params, batch_stats, x, g, key): output, the new
        batch_stats and, with ``grads``, the gradients of sum(g * output)."""
        module = self.module
        trainable = self.bn is None or self.bn.trainable

        def apply(params: Any, stats: Any, x: Any, key: Any) -> tuple[Any, Any]:
            variables = {"params": params, "batch_stats": stats} if self.bn else {}
            if self.bn:
                # the update: batch_stats mutable; Flax returns them, replaced or not
                y, mutated = module.apply(variables, x, use_running_average=flag, mutable=["batch_stats"])
                return y, mutated["batch_stats"]
            return module.apply(variables, x, deterministic=flag, rngs={"dropout": key}), stats

        def run(params: Any, stats: Any, x: Any, g: Any, key: Any) -> dict[str, Any]:
            if not grads:
                y, new_stats = apply(params, stats, x, key)
                return {"output": y, "stats": new_stats}

            def loss(x: Any, params: Any) -> tuple[Any, tuple[Any, Any]]:
                y, new_stats = apply(params, stats, x, key)
                return common.weighted_sum(y, g), (y, new_stats)

            argnums = (0, 1) if trainable and params else 0
            found, (y, new_stats) = jax.grad(loss, argnums=argnums, has_aux=True)(x, params)
            grad_x, grad_params = found if argnums != 0 else (found, None)
            out = {"output": y, "stats": new_stats, "grad_input": grad_x}
            for key_, name in (("grad_scale", "scale"), ("grad_shift", "bias")):
                if name in params:
                    # trainable=False: not differentiated, reported as zeros
                    out[key_] = grad_params[name] if grad_params is not None else jnp.zeros_like(params[name])
            return out

        return run

    def forward(self, x: np.ndarray, mode: Mode, grad_output: np.ndarray | None,
                context: str = "plain") -> dict[str, np.ndarray]:
        common.check_context(context, "Flax")
        if context == "no_grad" and grad_output is not None:
            raise ValueError("a no_grad forward pass cannot produce gradients")
        train = mode == "train"
        # use_running_average / deterministic: True infers; a frozen batch norm infers in training too
        flag = not train or bool(self.bn and self.bn.frozen)
        grads = grad_output is not None
        run = self._pure(flag, grads)
        if context == "compiled":  # jax.jit of the same pure function, cached per flag
            if (flag, grads) not in self._compiled:
                self._compiled[flag, grads] = jax.jit(run)
            run = self._compiled[flag, grads]
        xj = common.to_jax(x, self.dtype, self.device)
        g = None if grad_output is None else common.to_jax(grad_output, self.dtype, self.device)
        key = common.dropout_key(getattr(self.spec, "seed", None), self.calls)
        self.calls += 1
        with jax.default_device(self.device):
            result = run(self.variables.get("params", {}), self.variables.get("batch_stats", {}), xj, g, key)
        if self.bn:
            self.variables["batch_stats"] = dict(result["stats"])
        return {k: common.to_numpy(v) for k, v in result.items() if k != "stats"}

    def reset_running_stats(self) -> None:
        """mean <- 0, var <- 1 in batch_stats (Flax counts no batches)."""
        if not self.bn:
            raise Unsupported("Flax Dropout has no running statistics to reset")
        stats = self.variables["batch_stats"]
        self.variables["batch_stats"] = {"mean": jnp.zeros_like(stats["mean"]), "var": jnp.ones_like(stats["var"])}

    def state(self) -> dict[str, np.ndarray]:
        """The running statistics of a batch norm; Flax counts no batches: no ``batch_count``."""
        if not self.bn:
            return {}
        stats = self.variables["batch_stats"]
        return {"running_mean": common.to_numpy(stats["mean"]), "running_var": common.to_numpy(stats["var"])}


class FlaxAdapter(Adapter):
    """Flax linen on JAX (the ``flax`` name; NNX is ``flax-nnx``)."""

    name = "flax"
    install_hint = 'pip install "conformance[flax]"  (or: pip install flax jax)'
    documented: ClassVar[dict[str, Documented]] = DOCUMENTED["flax"]  # every convention, with its page

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
        if isinstance(layer, ModelSpec):  # a model case: linen modules (flax_model)
            from conformance.adapters.flax_model import build_model

            return build_model(layer, common.DTYPES[dtype], target)
        if isinstance(layer, BatchNormSpec):
            return _LinenHandle(batch_norm_module(layer, common.DTYPES[dtype]), layer, common.DTYPES[dtype], target)
        return _LinenHandle(dropout_module(layer), layer, common.DTYPES[dtype], target)
