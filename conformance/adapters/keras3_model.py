"""Keras 3 models for model cases (``conformance.tree``), in Keras' own idiom, backend-neutral:
imports ``keras`` only; the backend adapters (``tf_model``, ``keras_torch``, ``keras_jax``) bind
the hooks of ``conformance.adapters.keras3.KerasBackend`` (tensors in and out, device scope, and
when a recorded value is concrete).

The mapping:

- ``sequential`` -> ``keras.Sequential`` of its children, named by the block (a nested block
  is a nested ``Sequential``); ``container`` -> ``_Container``, a ``keras.Model`` subclass
  whose ``call(inputs, training=None)`` calls its children in order, each as its call site
  says: ``training: true|false`` -> ``child(x, training=<literal>)``, ``mode`` ->
  ``child(x, training=training)`` (the container's own argument), omitted -> ``child(x)``.
- leaves: ``linear`` -> ``keras.layers.Dense`` (kernel W^T); ``batch_norm`` ->
  ``keras.layers.BatchNormalization`` and ``dropout`` -> ``keras.layers.Dropout`` /
  ``SpatialDropout*D``, each built exactly as the layer adapter translates the spec
  (``conformance.adapters.keras3.batch_norm`` / ``dropout``). A functional dropout is
  ``keras.random.dropout`` with a ``keras.random.SeedGenerator`` the container owns.
- entries: ``train`` -> ``model(x, training=True)``; ``eval`` -> ``model(x, training=False)``;
  ``call`` -> ``model(x)`` (Keras decides); ``predict`` -> ``model.predict``; ``train_step``
  -> ``compile`` (SGD, a sum(y_true * y_pred) loss) and ``train_on_batch(x, grad_output)``;
  ``mc_dropout`` -> Geron's MCDropout recipe (every dropout's call forced to training=True,
  the model called with training=False). ``freeze`` (flag, default) -> ``trainable = False``.

Recording: Keras has no forward hooks, so every batch-norm and dropout leaf is an instance of
a subclass of the very Keras class the layer adapter chose (``_RecordingBatchNorm`` /
``_RecordingDropout`` mixed into it) that only records (the ``training`` argument its call
received, its input and output) and then calls ``super().call`` with that argument
unchanged. The one exception is the mc_dropout pass, where the dropout subclass is the
recipe's MCDropout: its call passes ``training=True`` to ``super().call`` whatever it
received, and records that value (the mode the forward evaluated). Records are taken only
from concrete values (``KerasBackend.observe``: Keras also traces layers symbolically to build a
Sequential's graph or a training step; JAX's training step differentiates a traced
``stateless_call``, whose values reach the recorders through ``jax.debug.callback``);
``predict`` and ``train_on_batch`` run eagerly (``run_eagerly=True``) so that the recorders see
values. The training step's output is the ``y_pred`` Keras hands the loss, observed the same
way.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import keras
import numpy as np

from conformance.adapters.base import Unsupported
from conformance.adapters.keras3 import (
    KerasBackend,
    KerasLayer,
    assign,
    batch_norm,
    dropout,
    noise_shape,
    reset_moving,
    wide,
)
from conformance.model import BatchNormSpec, DropoutSpec, Step
from conformance.program import kept_mask
from conformance.tree import Block, Leaf, LinearSpec, ModelSpec


@dataclass
class _Log:
    """What the recorders saw at each leaf's last concrete call: ``<leaf>.training`` and
    ``<leaf>.mask``, as numpy."""

    backend: KerasBackend
    records: dict[str, np.ndarray] = field(default_factory=dict)
    masked: set[str] = field(default_factory=set)  # the dropout leaves (whose mask is recorded)

    def record(self, name: str, inputs: Any, outputs: Any, training: Any, flagged: bool = True) -> None:
        """One leaf's call with the ``training`` value it received (None counts as inference,
        as Keras treats it); ``flagged`` False where the call has no flag to record."""
        flag = np.asarray(1.0 if bool(training) else 0.0)

        def keep(x: np.ndarray, y: np.ndarray) -> None:
            if flagged:
                self.records[f"{name}.training"] = flag
            if name in self.masked:
                self.records[f"{name}.mask"] = kept_mask(x, y)

        # a symbolic call (Keras building a graph, a traced step) records nothing by itself
        self.backend.observe(keep, inputs, outputs)


# --- recording subclasses -------------------------------------------------------------------


class _RecordingBatchNorm:
    """Mixed into ``keras.layers.BatchNormalization``: records the ``training`` argument its
    call received (None counts as inference, as Keras treats it) and calls super().call with
    it unchanged. The signature keeps BatchNormalization's own defaults."""

    log: _Log

    def call(self, inputs: Any, training: Any = None, mask: Any = None) -> Any:
        outputs = super().call(inputs, training=training, mask=mask)  # type: ignore[misc]
        self.log.record(self.name, inputs, outputs, training)  # type: ignore[attr-defined]
        return outputs


class _RecordingDropout:
    """Mixed into ``keras.layers.Dropout`` / ``SpatialDropout*D``: records the ``training``
    its forward evaluated, its input and output. ``force_training`` makes it Geron's MCDropout
    for one pass: super().call(inputs, training=True) whatever the call received. The
    signature keeps Dropout's own default (training=False)."""

    log: _Log
    force_training: bool = False

    def call(self, inputs: Any, training: Any = False) -> Any:
        ran = True if self.force_training else training  # MCDropout: always training=True
        outputs = super().call(inputs, training=ran)  # type: ignore[misc]
        self.log.record(self.name, inputs, outputs, ran)  # type: ignore[attr-defined]
        return outputs


def _recording_twin(layer: KerasLayer, recorder: type, name: str, log: _Log) -> KerasLayer:
    """The layer adapter's Keras layer as an instance of its recording subclass: same config
    (every translated argument), named ``name``, built like it, with its weights' values and
    trainable flags."""
    cls: Any = type(f"Recording{type(layer).__name__}", (recorder, type(layer)), {})
    twin = cls.from_config({**layer.get_config(), "name": name})
    if layer.built and layer.weights:
        twin.build_from_config(layer.get_build_config())  # the input shape it was built for
        for mine, theirs in zip(twin.weights, layer.weights):
            mine.assign(theirs)
            mine.trainable = theirs.trainable  # gamma/beta marked non-trainable stay so
    twin.log = log
    return twin


# --- leaves ---------------------------------------------------------------------------------


def _dense(name: str, spec: LinearSpec, rank: int, dtype: str) -> KerasLayer:
    """``Dense(out)`` holding the spec's W and b."""
    layer = keras.layers.Dense(spec.out_features, use_bias=spec.bias is not None, dtype=dtype, name=name)
    layer.build((None,) * (rank - 1) + (spec.in_features,))  # Dense acts on the last axis
    # Keras stores W^T: kernel is (in, out), y = x @ kernel + bias
    assign(layer.kernel, np.asarray(spec.weight, np.float64).T)
    if spec.bias is not None:
        assign(layer.bias, spec.bias)
    return layer


def _batch_norm_leaf(leaf: Leaf, spec: BatchNormSpec, dtype: str, log: _Log) -> KerasLayer:
    """The layer adapter's BatchNormalization, as a recorder."""
    if spec.frozen and spec.trainable:
        raise Unsupported(
            f"batch norm {leaf.name!r}: Keras BatchNormalization has no flag that freezes the "
            "moving statistics alone (trainable=False freezes gamma and beta too); in a Keras "
            "model the statistics are kept by calling the layer with training=False at its call "
            "site (a container child with training: false)")
    return _recording_twin(batch_norm(spec, dtype), _RecordingBatchNorm, leaf.name, log)


def _dropout_leaf(leaf: Leaf, spec: DropoutSpec, dtype: str, log: _Log) -> KerasLayer:
    """The layer adapter's Dropout / SpatialDropout (seed from the spec), as a recorder."""
    log.masked.add(leaf.name)
    return _recording_twin(dropout(spec, dtype), _RecordingDropout, leaf.name, log)


# --- containers -----------------------------------------------------------------------------


@dataclass(frozen=True)
class _Call:
    """One line of a container's call: child ``name`` with its call-site ``flag``; a
    functional dropout has its spec in ``functional`` and no layer."""

    name: str
    flag: str
    functional: DropoutSpec | None = None


class _Container(keras.Model):  # type: ignore[misc,name-defined]
    """A custom container, as Keras users write one: a ``keras.Model`` subclass whose call
    calls its children in order, passing each the call-site flag its spec writes."""

    def __init__(self, name: str, calls: list[_Call], layers: dict[str, KerasLayer], log: _Log,
                 dtype: str) -> None:
        super().__init__(name=name, dtype=dtype)
        self.plan = tuple(calls)  # (tracked by Keras as a list of plain entries)
        self.nodes = dict(layers)  # the child layers and sub-models, tracked by Keras
        # a functional dropout's randomness, as Keras layers hold it: a SeedGenerator each
        # (an int seed would give keras.random.dropout the same mask at every call)
        self.seeds = {c.name: keras.random.SeedGenerator(c.functional.seed)
                      for c in calls if c.functional is not None}
        self.log = log

    def call(self, inputs: Any, training: Any = None) -> Any:
        x = inputs
        for entry in self.plan:
            if entry.functional is not None:
                x = self._functional_dropout(entry, x)
            elif entry.flag in ("true", "false"):
                x = self.nodes[entry.name](x, training=entry.flag == "true")  # hard-coded flag
            elif entry.flag == "mode":
                x = self.nodes[entry.name](x, training=training)  # the container's own argument
            else:
                x = self.nodes[entry.name](x)  # omitted: Keras resolves it
        return x

    def _functional_dropout(self, entry: _Call, x: Any) -> Any:
        """``keras.random.dropout``: no training argument, so it drops at every call
        (measured as it is); its mode is not recorded (the call has none)."""
        spec = entry.functional
        assert spec is not None
        y = keras.random.dropout(x, spec.rate, noise_shape=noise_shape(spec), seed=self.seeds[entry.name])
        self.log.record(entry.name, x, y, None, flagged=False)
        return y


def _block(block: Block, rank: int, dtype: str, log: _Log, found: dict[str, KerasLayer]) -> KerasLayer:
    """A block as a Keras Sequential or a _Container; its leaves' layers go into ``found``."""
    if block.override_mode_switch:
        raise Unsupported(
            f"container {block.name!r} overrides the mode switch: Keras models have no "
            "train()/eval() to override (the mode is the training argument of each call)")
    layers: dict[str, KerasLayer] = {}
    calls: list[_Call] = []
    for child in block.children:
        if isinstance(child, Block):
            layers[child.name] = _block(child, rank, dtype, log, found)
            calls.append(_Call(child.name, child.training))
        elif child.call == "functional":
            calls.append(_Call(child.name, child.training, _functional(child, log)))
        else:
            layers[child.name] = found[child.name] = _leaf(child, rank, dtype, log)
            calls.append(_Call(child.name, child.training))
    if block.kind == "sequential":  # the children in order, each named by its spec name
        return keras.Sequential(list(layers.values()), name=block.name)
    return _Container(block.name, calls, layers, log, dtype)  # a keras.Model subclass


def _leaf(leaf: Leaf, rank: int, dtype: str, log: _Log) -> KerasLayer:
    layer = leaf.layer
    if isinstance(layer, LinearSpec):
        return _dense(leaf.name, layer, rank, dtype)
    if isinstance(layer, BatchNormSpec):
        return _batch_norm_leaf(leaf, layer, dtype, log)
    return _dropout_leaf(leaf, layer, dtype, log)


def _functional(leaf: Leaf, log: _Log) -> DropoutSpec:
    """A functional leaf: keras.random.dropout when no flag is given, else unsupported."""
    if isinstance(leaf.layer, BatchNormSpec):
        raise Unsupported(
            f"functional batch norm {leaf.name!r}: Keras has no functional batch norm that keeps "
            "running statistics (keras.ops.batch_normalization normalises with the mean and "
            "variance it is given)")
    assert isinstance(leaf.layer, DropoutSpec)
    if leaf.training != "omitted":
        raise Unsupported(
            f"functional dropout {leaf.name!r} with training: {leaf.training}: "
            "keras.random.dropout takes no training flag (it drops at every call)")
    log.masked.add(leaf.name)
    return leaf.layer


# --- the model ------------------------------------------------------------------------------


class _WeightedSum(keras.losses.Loss):  # type: ignore[misc,name-defined]
    """sum(y_true * y_pred) (reduction "sum"): with y_true = grad_output, the gradient of the
    loss with respect to the model's output is exactly grad_output. Keeps the ``y_pred`` the
    training step handed it (the step's output), before Keras casts it to the loss dtype."""

    def __init__(self, dtype: str, backend: KerasBackend) -> None:
        super().__init__(name="weighted_sum", reduction="sum", dtype=dtype)
        self.backend = backend
        self.y_pred: np.ndarray | None = None

    def __call__(self, y_true: Any, y_pred: Any, sample_weight: Any = None) -> Any:
        # the model's output in the training step, as it came (as numpy, once concrete)
        self.backend.observe(self._keep, y_pred)
        return super().__call__(y_true, y_pred, sample_weight)

    def _keep(self, y_pred: np.ndarray) -> None:
        self.y_pred = y_pred

    def call(self, y_true: Any, y_pred: Any) -> Any:
        return y_true * y_pred


@contextmanager
def _precision(dtype: str) -> Iterator[None]:
    """Keras' global float type (``floatx``) and dtype policy set to the case's dtype while
    the model is built or compiled, restored after: Keras' own way to make a whole model
    float64 (or float16). A Sequential takes no dtype argument and gets the global policy (a
    nested Sequential's graph input takes its first layer's dtype, so a float64 sub-model
    would run in float32), and the optimizer's learning-rate variable is created in floatx
    (a float32 0.1 is off by 1.5e-8). Every leaf is given the dtype explicitly too, as the
    layer adapter does."""
    floatx, policy = keras.config.floatx(), keras.config.dtype_policy()
    keras.config.set_floatx(dtype)
    keras.config.set_dtype_policy(dtype)
    try:
        yield
    finally:
        keras.config.set_floatx(floatx)
        keras.config.set_dtype_policy(policy)


class KerasModelHandle:
    """A model case's Keras model (``conformance.adapters.base.ModelHandle``) on ``backend``,
    ``device`` in the backend's own name."""

    def __init__(self, backend: KerasBackend, spec: ModelSpec, dtype: str, device: str) -> None:
        self.backend, self.spec, self.dtype, self.device = backend, spec, dtype, device
        self.log = _Log(backend)
        self.layers: dict[str, KerasLayer] = {}  # leaf name -> its layer (functional: none)
        with backend.device_scope(device), _precision(dtype):
            self.model = _block(spec.root, spec.rank, dtype, self.log, self.layers)
        self.model.run_eagerly = True  # predict/train_on_batch eagerly: the recorders see values
        # the loss in float32 (float64 for float64), like the layer adapter's gradient sum
        self.loss = _WeightedSum(wide(dtype), backend)
        self._compiled: tuple[float, tuple[int, ...]] | None = None  # (lr, trainable ids)

    def run(self, step: Step, x: np.ndarray | None, grad_output: np.ndarray | None,
            index: int = -1) -> dict[str, np.ndarray]:
        """One step in Keras' idiom (module docstring)."""
        if step.action == "switch":
            raise Unsupported("Keras models have no mode to switch (no train()/eval()): the mode "
                              "is the training argument of each call")
        if step.action == "freeze":
            self._freeze(step.target, step.via)
            return {}
        assert x is not None
        with self.backend.device_scope(self.device):
            xt = self.backend.tensor(x, self.dtype)  # as the layer adapter converts inputs
            g = None if grad_output is None else self.backend.tensor(grad_output, self.dtype)
            return {"output": self.backend.numpy(self._entry(step, xt, g))}

    def _entry(self, step: Step, xt: Any, g: Any) -> Any:
        entry = step.entry
        if entry == "train":
            return self.model(xt, training=True)  # Keras has no train(): the call's argument
        if entry == "eval":
            return self.model(xt, training=False)  # the inference idiom: training=False
        if entry == "call":
            return self.model(xt)  # no training argument: Keras decides
        if entry == "predict":
            return self.model.predict(xt, batch_size=len(xt), verbose=0)  # one batch, all rows
        if entry == "train_step":
            return self._train_step(xt, g, step.lr)  # compile + train_on_batch
        if entry == "mc_dropout":
            return self._mc_dropout(xt)  # Geron's MCDropout
        raise ValueError(f"unknown model entry {entry!r}")

    def _train_step(self, xt: Any, g: Any, lr: float) -> Any:
        """compile (again whenever the learning rate or the trainable weights changed: Keras
        requires it after a change of ``trainable``), then ``train_on_batch(x, grad_output)``."""
        trainable = tuple(id(w) for w in self.model.trainable_weights)
        if self._compiled != (lr, trainable):
            with _precision(self.dtype):  # the learning rate in the model's float type
                self.model.compile(optimizer=keras.optimizers.SGD(learning_rate=lr),  # no momentum
                                   loss=self.loss, run_eagerly=True)
            self._compiled = (lr, trainable)
        self.loss.y_pred = None
        self.model.train_on_batch(xt, g)  # y = grad_output: the loss's y_true
        if self.loss.y_pred is None:
            raise RuntimeError("the training step's loss saw no concrete y_pred")
        return self.loss.y_pred  # the output of the step's own forward pass

    def _mc_dropout(self, xt: Any) -> Any:
        """Geron's MCDropout: every dropout layer's call forced to training=True for this
        pass, the model called with training=False (batch norm on its moving statistics)."""
        dropouts = [layer for layer in self.layers.values() if isinstance(layer, _RecordingDropout)]
        for layer in dropouts:
            layer.force_training = True
        try:
            return self.model(xt, training=False)
        finally:
            for layer in dropouts:
                layer.force_training = False

    def _freeze(self, name: str, via: str) -> None:
        if via == "mode":
            raise Unsupported(f"freezing {name!r} through its mode: a Keras layer has no mode of its "
                              "own to set (no eval()); its mode is the training argument of each call")
        # flag or Keras' own way: trainable=False (Keras 3 runs a non-trainable
        # BatchNormalization in inference mode, and its gamma and beta get no updates)
        self.layers[name].trainable = False

    def reset_running_stats(self) -> None:
        """moving_mean <- 0, moving_variance <- 1 on every batch norm (Keras counts nothing)."""
        for layer in self.layers.values():
            if isinstance(layer, _RecordingBatchNorm):
                reset_moving(layer)

    def state(self) -> dict[str, np.ndarray]:
        """Every leaf's state (``ModelHandle.state``) and the records of its last call."""
        found = dict(self.log.records)
        for name, layer in self.layers.items():
            if isinstance(layer, _RecordingBatchNorm):
                found[f"{name}.running_mean"] = self.backend.numpy(layer.moving_mean)  # type: ignore[attr-defined]
                found[f"{name}.running_var"] = self.backend.numpy(layer.moving_variance)  # type: ignore[attr-defined]
                if layer.scale:  # type: ignore[attr-defined]
                    found[f"{name}.scale"] = self.backend.numpy(layer.gamma)  # type: ignore[attr-defined]
                if layer.center:  # type: ignore[attr-defined]
                    found[f"{name}.shift"] = self.backend.numpy(layer.beta)  # type: ignore[attr-defined]
            elif not isinstance(layer, _RecordingDropout):
                # Keras stores W^T: the kernel (in, out) transposed back to (out, in)
                found[f"{name}.weight"] = self.backend.numpy(layer.kernel).T
                if layer.use_bias:
                    found[f"{name}.bias"] = self.backend.numpy(layer.bias)
        return found


def build_model(backend: KerasBackend, spec: ModelSpec, dtype: str, device: str) -> KerasModelHandle:
    """The Keras model of ``spec`` on ``backend`` (the adapters' ``build`` for a ``ModelSpec``)."""
    return KerasModelHandle(backend, spec, dtype, device)
