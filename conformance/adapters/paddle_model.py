"""Model cases (``conformance.tree``) on PaddlePaddle, in dynamic-graph (eager) mode.

Imported only by ``PaddleAdapter.build`` inside the Paddle worker process. A model is built
from Paddle's own layers: ``sequential`` is a ``paddle.nn.Sequential`` whose sub-layers are
added under their spec names, ``container`` a ``paddle.nn.Layer`` subclass written here whose
``forward`` calls its children in order (and the functional forms
``paddle.nn.functional.dropout`` / ``batch_norm`` for ``call: functional`` leaves); batch-norm
and dropout leaves are the layer adapter's own ``BatchNorm1D/2D/3D`` and ``Dropout``, linear
leaves ``paddle.nn.Linear``. Every step runs in Paddle's idiom (``conformance.model.Step``);
what Paddle cannot express raises ``Unsupported`` in Paddle's terms. Nothing here makes Paddle
behave like the reference: where it differs, the kit measures it.

The mode each leaf ran in and each dropout leaf's mask are recorded at the call, by forward
hooks on the layer objects (``register_forward_pre_hook`` / ``register_forward_post_hook``)
and by the container's ``forward`` for functional leaves.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import paddle
import paddle.nn.functional as F

from conformance.adapters.base import Unsupported
from conformance.adapters.paddle import _BATCH_NORMS, _to_numpy
from conformance.model import BatchNormSpec, DropoutSpec, Step
from conformance.program import kept_mask
from conformance.reference import channel_axis_index
from conformance.tree import Block, CallFlag, Leaf, LinearSpec, ModelSpec

if TYPE_CHECKING:
    from conformance.adapters.paddle import PaddleAdapter

Records = dict[str, np.ndarray]  # "<leaf>.training" / "<leaf>.mask" of each leaf's last call
HALF = ("float16", "bfloat16")


# --- conversions -----------------------------------------------------------------------------

def _tensor(a: np.ndarray, dtype: str) -> paddle.Tensor:
    """Numpy (float64) -> tensor of the case dtype, exactly as the layer adapter converts:
    float64 stays float64, anything else goes through float32 and is cast natively."""
    wide = np.float64 if dtype == "float64" else np.float32
    return paddle.to_tensor(np.asarray(a, dtype=wide)).astype(dtype)  # type: ignore[arg-type]


def _assign(param: paddle.Tensor, values: np.ndarray) -> None:
    """Set a parameter or buffer from spec values, cast to the tensor's own dtype."""
    wide = np.float64 if param.dtype == paddle.float64 else np.float32
    param.set_value(paddle.to_tensor(np.asarray(values, dtype=wide)).astype(param.dtype))


def _widen_bits(array: np.ndarray, dtype: str) -> np.ndarray:
    """A numpy result Paddle hands back for ``dtype``: bfloat16 comes as its raw uint16 bits
    (numpy has no bfloat16), widened here to float32 (the upper half of a float32)."""
    if dtype == "bfloat16" and array.dtype == np.uint16:
        return (array.astype(np.uint32) << 16).view(np.float32)
    return array


def _flag(value: bool) -> np.ndarray:
    return np.asarray(1.0 if value else 0.0)


# --- functional leaves -------------------------------------------------------------------------

@dataclass
class _FunctionalBatchNorm:
    """A ``call: functional`` batch norm: its parameters and statistics live on the container
    (keys ``<leaf>_Scale`` ... : upper case, so they cannot clash with a spec's lower-case
    names), and ``use_global_stats`` is what the container passes (None: Paddle's default)."""

    spec: BatchNormSpec
    data_format: str
    use_global_stats: bool | None


@dataclass
class _Site:
    """How a container calls one child: the child's name (a sub-layer, or a functional leaf),
    the call-site flag written there, and the functional leaf's spec if it is one."""

    name: str
    training: CallFlag
    functional: DropoutSpec | _FunctionalBatchNorm | None = None


class _Container(paddle.nn.Layer):
    """A custom container: ``forward`` calls the children in order, exactly as the spec writes
    each call site. Module children are called plainly (a Paddle layer's forward takes no
    training flag); functional leaves call ``paddle.nn.functional`` with the flag."""

    def __init__(self, records: Records) -> None:
        super().__init__()
        self.records = records  # shared with the model's hooks
        self.sites: list[_Site] = []

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        for site in self.sites:
            if site.functional is None:
                x = self._sub_layers[site.name](x)  # training: mode or omitted: a plain call
            elif isinstance(site.functional, DropoutSpec):
                x = self._dropout(site, site.functional, x)
            else:
                x = self._batch_norm(site, site.functional, x)
        return x

    def _training(self, site: _Site) -> dict[str, Any]:
        """The ``training`` keyword the call site writes (none for ``omitted``: Paddle's own
        default decides), recorded as the mode the functional form was told."""
        if site.training == "omitted":
            return {}  # the default is Paddle's: the adapter does not know it, so no record
        flag = self.training if site.training == "mode" else site.training == "true"
        self.records[f"{site.name}.training"] = _flag(flag)
        return {"training": flag}

    def _dropout(self, site: _Site, spec: DropoutSpec, x: paddle.Tensor) -> paddle.Tensor:
        options = self._training(site)
        # one draw per (sample, channel) for channel dropout, as the layer adapter's axis
        options["axis"] = None if spec.granularity == "element" else \
            [0, channel_axis_index(spec.rank, spec.channel_axis)]
        options["mode"] = "upscale_in_train"  # inverted dropout: kept values times 1/(1-p)
        y = F.dropout(x, p=spec.rate, **options)  # p is the probability to drop, as rate
        self.records[f"{site.name}.mask"] = kept_mask(_to_numpy(x), _to_numpy(y))
        return y

    def _batch_norm(self, site: _Site, bn: _FunctionalBatchNorm, x: paddle.Tensor) -> paddle.Tensor:
        spec, name = bn.spec, site.name
        assert spec.update_weight is not None and spec.eps is not None  # a model's are neutral
        options = self._training(site)
        options["data_format"] = bn.data_format  # channels first or last, by rank
        if bn.use_global_stats is not None:
            options["use_global_stats"] = bn.use_global_stats  # frozen / no running statistics
        return F.batch_norm(
            x, getattr(self, f"{name}_Mean"), getattr(self, f"{name}_Variance"),
            weight=getattr(self, f"{name}_Scale") if spec.affine else None,
            bias=getattr(self, f"{name}_Shift") if spec.affine else None,
            momentum=1.0 - spec.update_weight,  # Paddle's momentum weighs the OLD value
            epsilon=spec.eps,  # added to the variance inside the square root
            **options)


class _OwnModeContainer(_Container):
    """A container whose ``train()``/``eval()`` set its own ``training`` only, without passing
    the switch on to its sub-layers (``override_mode_switch``)."""

    def train(self, mode: bool = True) -> _OwnModeContainer:
        self.training = mode
        return self

    def eval(self) -> _OwnModeContainer:
        self.training = False
        return self


# --- building ----------------------------------------------------------------------------------

class _Builder:
    """Builds the Paddle layers of one model spec, with the layer adapter's leaf builders,
    and keeps the handles the model's steps need (leaf layers, functional owners)."""

    def __init__(self, adapter: PaddleAdapter, dtype: str, device: str) -> None:
        self.adapter, self.dtype, self.device = adapter, dtype, device
        self.records: Records = {}
        self.layers: dict[str, paddle.nn.Layer] = {}  # module leaves by name
        self.owners: dict[str, _Container] = {}  # functional leaves by name -> their container

    def block(self, block: Block) -> paddle.nn.Layer:
        if block.kind == "sequential":
            seq = paddle.nn.Sequential()
            for child in block.children:
                seq.add_sublayer(child.name, self.node(child))  # called in the order added
            return seq
        cls = _OwnModeContainer if block.override_mode_switch else _Container
        container = cls(self.records)
        for child in block.children:
            container.sites.append(self.site(container, child))
        return container

    def node(self, child: Block | Leaf) -> paddle.nn.Layer:
        return self.block(child) if isinstance(child, Block) else self.leaf(child)

    def site(self, container: _Container, child: Block | Leaf) -> _Site:
        """One child of a custom container: a sub-layer called plainly, or a functional leaf
        whose parameters the container holds."""
        if isinstance(child, Leaf) and child.call == "functional":
            self.owners[child.name] = container
            return _Site(child.name, child.training, self.functional(container, child))
        if child.training in ("true", "false"):
            what = "sub-model" if isinstance(child, Block) else f"{child.layer.kind} layer"
            raise Unsupported(
                f"Paddle layers take no training argument: {what} {child.name!r} is called with "
                f"training={child.training.capitalize()}, but a paddle.nn.Layer's forward(x) has no "
                "mode flag (its mode is its .training attribute, set by train()/eval()); only the "
                "functional forms paddle.nn.functional.dropout/batch_norm take training=")
        container.add_sublayer(child.name, self.node(child))
        return _Site(child.name, child.training)

    def leaf(self, leaf: Leaf) -> paddle.nn.Layer:
        layer = leaf.layer
        made: paddle.nn.Layer
        if isinstance(layer, LinearSpec):
            made = self.linear(layer)
        elif isinstance(layer, BatchNormSpec):
            self.check_half("batch_norm")
            made = self.adapter._batch_norm(layer, self.dtype)  # the layer adapter's BatchNorm1D/2D/3D
            self.watch(made, leaf.name, dropout=False)
        else:
            made = self.adapter._dropout(layer)  # the layer adapter's Dropout (seeds Paddle's generator)
            self.watch(made, leaf.name, dropout=True)
        self.layers[leaf.name] = made
        return made

    def linear(self, spec: LinearSpec) -> paddle.nn.Linear:
        self.check_half("matmul")
        saved = paddle.get_default_dtype()
        paddle.set_default_dtype(self.dtype)  # type: ignore[arg-type]  # parameters in the case's dtype
        try:
            fc = paddle.nn.Linear(spec.in_features, spec.out_features,
                                  bias_attr=None if spec.bias is not None else False)  # False: no bias
        finally:
            paddle.set_default_dtype(saved)
        _assign(fc.weight, np.asarray(spec.weight).T)  # Paddle stores W^T: weight is (in, out)
        if spec.bias is not None:
            _assign(fc.bias, spec.bias)
        return fc

    def functional(self, container: _Container, leaf: Leaf) -> DropoutSpec | _FunctionalBatchNorm:
        """A functional leaf's spec; a batch norm's parameters and statistics are created on
        the container, with the initial values of the spec."""
        layer = leaf.layer
        if isinstance(layer, DropoutSpec):
            if layer.seed is not None:
                paddle.seed(layer.seed)  # Paddle's global generator, as the layer adapter seeds it
            return layer
        assert isinstance(layer, BatchNormSpec)
        self.check_half("batch_norm")
        if layer.update == "cumulative":
            raise Unsupported("Paddle's batch norm only has an exponential moving average "
                              "(momentum); it has no cumulative average of the batches seen")
        _, first, last = _BATCH_NORMS[layer.rank]
        # the statistics' dtype the layer adapter uses: float64 for float64, else float32
        stats = "float64" if self.dtype == "float64" else "float32"
        c = layer.num_features
        for key, values, fill in (("Mean", layer.running_mean, 0.0), ("Variance", layer.running_var, 1.0)):
            buffer = paddle.full([c], fill, dtype=stats)  # type: ignore[arg-type]
            if values is not None:
                _assign(buffer, values)
            container.register_buffer(f"{leaf.name}_{key}", buffer)  # buffers: no gradient, no update by SGD
        if layer.affine:
            for key, values, fill in (("Scale", layer.scale, 1.0), ("Shift", layer.shift, 0.0)):
                param = container.create_parameter(
                    [c], dtype=stats, default_initializer=paddle.nn.initializer.Constant(fill))  # type: ignore[arg-type]
                if values is not None:
                    _assign(param, values)
                param.stop_gradient = not layer.trainable  # trainable: false: no gradient
                container.add_parameter(f"{leaf.name}_{key}", param)
        # as the layer adapter: no running statistics -> False (batch statistics always),
        # frozen -> True (running statistics, no update), else Paddle's default (None)
        use_global = False if not layer.running_stats else True if layer.frozen else None
        return _FunctionalBatchNorm(layer, first if layer.channel_axis == "first" else last, use_global)

    def watch(self, layer: paddle.nn.Layer, name: str, dropout: bool) -> None:
        """Record the mode the layer ran in at each call (``layer.training`` as its forward
        reads it) and, for a dropout, the units its output kept."""
        records = self.records

        def before(module: paddle.nn.Layer, inputs: tuple[paddle.Tensor, ...]) -> None:
            records[f"{name}.training"] = _flag(module.training)

        def after(module: paddle.nn.Layer, inputs: tuple[paddle.Tensor, ...], output: paddle.Tensor) -> None:
            records[f"{name}.mask"] = kept_mask(_to_numpy(inputs[0]), _to_numpy(output))

        # (Paddle's stubs type a hook's input as one Tensor; it passes the tuple of inputs)
        layer.register_forward_pre_hook(before)  # type: ignore[arg-type]
        if dropout:
            layer.register_forward_post_hook(after)  # type: ignore[arg-type]

    def check_half(self, kernel: str) -> None:
        """Measured (Paddle 3.3.1, CPU build): ``batch_norm`` and ``matmul`` (Linear) have no
        float16 or bfloat16 CPU kernel: the first forward raises "The kernel with key (CPU,
        Undefined(AnyLayout), float16) of kernel `matmul` is not registered ... Paddle support
        following DataTypes: int32, int64, float64, complex128, float32, complex64" (batch_norm:
        float64, float32). GPU builds have them and run natively."""
        if self.device == "cpu" and self.dtype in HALF:
            raise Unsupported(f"Paddle {paddle.__version__} has no CPU kernel for {kernel} in "
                              f"{self.dtype} (its CPU build registers no half-precision {kernel})")


# --- the model handle ----------------------------------------------------------------------------

class PaddleModel:
    """A built model and its steps in Paddle's idiom (``conformance.adapters.base.ModelHandle``)."""

    def __init__(self, spec: ModelSpec, model: paddle.nn.Layer, builder: _Builder) -> None:
        self.spec, self.model, self.dtype = spec, model, builder.dtype
        self.records = builder.records
        self.layers, self.owners = builder.layers, builder.owners
        self._hapi: Any = None  # paddle.Model(network), built by the first predict
        self.entries: dict[str, Callable[[paddle.Tensor, Step, np.ndarray | None], paddle.Tensor | np.ndarray]] = {
            "train": self._train, "eval": self._eval, "call": self._call, "predict": self._predict,
            "train_step": self._train_step, "mc_dropout": self._mc_dropout,
        }

    def run(self, step: Step, x: np.ndarray | None, grad_output: np.ndarray | None,
            index: int = -1) -> dict[str, np.ndarray]:
        if step.action == "switch":
            self.model.train() if step.mode == "train" else self.model.eval()
            return {}
        if step.action == "freeze":
            self._freeze(step.target, step.via)
            return {}
        assert x is not None
        out = self.entries[step.entry](_tensor(x, self.dtype), step, grad_output)
        return {"output": out if isinstance(out, np.ndarray) else _to_numpy(out)}

    # --- entries ---------------------------------------------------------------------------

    def _train(self, x: paddle.Tensor, step: Step, g: np.ndarray | None) -> paddle.Tensor:
        self.model.train()
        return self.model(x)

    def _eval(self, x: paddle.Tensor, step: Step, g: np.ndarray | None) -> paddle.Tensor:
        self.model.eval()
        return self.model(x)

    def _call(self, x: paddle.Tensor, step: Step, g: np.ndarray | None) -> paddle.Tensor:
        return self.model(x)  # in whatever mode the model is in

    def _predict(self, x: paddle.Tensor, step: Step, g: np.ndarray | None) -> np.ndarray:
        # Paddle's high-level API: paddle.Model(network).predict_batch, its documented "one
        # predicting step on a batch". In dynamic-graph mode it calls network.eval() (a
        # lasting switch: the network stays in evaluation mode afterwards) and then the
        # network on the batch; it returns numpy arrays.
        if self._hapi is None:
            self._hapi = paddle.Model(self.model)
        (out,) = self._hapi.predict_batch([x])
        return _widen_bits(np.asarray(out), self.dtype)

    def _train_step(self, x: paddle.Tensor, step: Step, g: np.ndarray | None) -> paddle.Tensor:
        # by hand, in the model's CURRENT mode (no train() first): forward, the loss
        # sum(g * y) whose gradient w.r.t. y is g, backward, one plain SGD step (no momentum)
        assert g is not None
        y = self.model(x)
        (y * _tensor(g, self.dtype)).sum().backward()
        params = self.model.parameters()  # BN's _mean/_variance are stop_gradient: SGD skips them
        optimizer = paddle.optimizer.SGD(learning_rate=step.lr, parameters=params)
        optimizer.step()
        optimizer.clear_grad()
        return y

    def _mc_dropout(self, x: paddle.Tensor, step: Step, g: np.ndarray | None) -> paddle.Tensor:
        # the Monte Carlo dropout recipe Paddle users write: eval() on the model (batch norm
        # on its running statistics), then train() on every dropout layer. A functional
        # dropout has no layer to switch: its call site's flag decides, as written.
        self.model.eval()
        for leaf in self.spec.leaves():
            if isinstance(leaf.layer, DropoutSpec) and leaf.name in self.layers:
                self.layers[leaf.name].train()
        return self.model(x)

    # --- freezing --------------------------------------------------------------------------

    def _freeze(self, name: str, via: str) -> None:
        """Freeze batch-norm leaf ``name``: ``mode``/``default`` -> ``eval()`` on the layer,
        ``flag`` -> ``use_global_stats=True``."""
        if name in self.owners:
            self._freeze_functional(name, via)
        elif via == "flag":
            # BatchNorm1D/2D/3D.forward passes self._use_global_stats to F.batch_norm at
            # every call (Paddle 3.3), so setting it on the existing layer takes effect: no
            # rebuild needed; parameters and statistics stay as they are.
            self.layers[name]._use_global_stats = True
        else:
            self.layers[name].eval()  # the layer's own mode: Paddle's way to freeze it

    def _freeze_functional(self, name: str, via: str) -> None:
        site = next(s for s in self.owners[name].sites if s.name == name)
        assert isinstance(site.functional, _FunctionalBatchNorm)
        if via != "flag":
            raise Unsupported(f"a functional paddle.nn.functional.batch_norm has no mode of its own: "
                              f"{name!r} is not a layer, so there is no eval() to freeze it with "
                              "(its mode is the training= its call site passes)")
        site.functional.use_global_stats = True  # the functional form's own switch

    # --- state -----------------------------------------------------------------------------

    def state(self) -> dict[str, np.ndarray]:
        found = dict(self.records)
        for leaf in self.spec.leaves():
            found.update({f"{leaf.name}.{k}": v for k, v in self._leaf_state(leaf).items()})
        return found

    def _leaf_state(self, leaf: Leaf) -> dict[str, np.ndarray]:
        layer = leaf.layer
        if isinstance(layer, LinearSpec):
            fc = self.layers[leaf.name]
            found = {"weight": _to_numpy(fc.weight).T}  # Paddle stores W^T: back to (out, in)
            if layer.bias is not None:
                found["bias"] = _to_numpy(fc.bias)
            return found
        if not isinstance(layer, BatchNormSpec):
            return {}  # a dropout's mask and mode are in the records
        mean, var, scale, shift = self._bn_tensors(leaf.name)
        found = {}
        if layer.running_stats:  # Paddle keeps no count of batches: no batch_count
            found.update(running_mean=_to_numpy(mean), running_var=_to_numpy(var))
        if layer.affine:
            found.update(scale=_to_numpy(scale), shift=_to_numpy(shift))
        return found

    def _bn_tensors(self, name: str) -> tuple[Any, Any, Any, Any]:
        """A batch-norm leaf's running mean, running variance, scale, shift (None: none)."""
        if name in self.owners:
            owner = self.owners[name]
            return tuple(getattr(owner, f"{name}_{k}", None)  # type: ignore[return-value]
                         for k in ("Mean", "Variance", "Scale", "Shift"))
        bn = self.layers[name]
        return bn._mean, bn._variance, getattr(bn, "weight", None), getattr(bn, "bias", None)

    def reset_running_stats(self) -> None:
        """Running mean 0 and variance 1 (Paddle's batch norm has no reset method)."""
        for leaf in self.spec.leaves():
            if isinstance(leaf.layer, BatchNormSpec):
                mean, var, _, _ = self._bn_tensors(leaf.name)
                _assign(mean, np.zeros(mean.shape))
                _assign(var, np.ones(var.shape))


def build_model(adapter: PaddleAdapter, spec: ModelSpec, dtype: str, device: str) -> PaddleModel:
    """The Paddle model of ``spec`` in ``dtype`` on ``device`` (already selected)."""
    builder = _Builder(adapter, dtype, device)
    return PaddleModel(spec, builder.block(spec.root), builder)
