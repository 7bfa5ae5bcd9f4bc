"""Keras 2 (tf_keras) models for model cases (``conformance.tree``), in Keras 2's own idiom.
Imported only by ``TfKerasAdapter.build``, inside the tf_keras worker process.

The mapping:

- ``sequential`` -> ``tf_keras.Sequential`` of its children, named by the block (a nested
  block is a nested ``Sequential``); ``container`` -> ``_Container``, a ``tf_keras.Model``
  subclass whose ``call(inputs, training=None)`` calls its children in order, each as its call
  site says: ``training: true|false`` -> ``child(x, training=<literal>)``, ``mode`` ->
  ``child(x, training=training)`` (the container's own argument), omitted -> ``child(x)``
  (Keras 2 fills the argument from the enclosing call's, then from the learning phase).
- leaves: ``linear`` -> ``Dense`` (kernel W^T); ``batch_norm`` -> ``BatchNormalization`` and
  ``dropout`` -> ``Dropout`` / ``SpatialDropout*D``, built exactly as the layer adapter
  translates the spec (``conformance.adapters.tf_keras.batch_norm`` / ``dropout``). A
  functional dropout is ``tf.nn.dropout`` (no training argument: it drops at every call).
- entries: ``train`` -> ``model(x, training=True)``; ``eval`` -> ``model(x, training=False)``;
  ``call`` -> ``model(x)``; ``predict`` -> ``model.predict``; ``train_step`` -> ``compile``
  (SGD, loss sum(y_true * y_pred)) and ``train_on_batch(x, grad_output)``; ``mc_dropout`` ->
  Geron's MCDropout (every dropout's call forced to training=True, the model called with
  training=False). ``freeze`` (flag, default) -> ``trainable = False``.

Recording: every batch-norm and dropout leaf is an instance of a subclass of the Keras class
the layer adapter chose, which records the mode its call resolved and its input and output,
and calls ``super().call`` with the argument unchanged (except the MCDropout pass, where the
dropout passes ``training=True``). The recorded mode is the ``training`` the call received
as Keras 2 resolves it (None -> ``backend.learning_phase()``, as both layers do). Records come
only from eager calls; ``predict`` and ``train_on_batch`` run eagerly (``run_eagerly=True``).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import tensorflow as tf
import tf_keras

from conformance.adapters.base import Unsupported
from conformance.adapters.tf_keras import (
    KerasLayer,
    batch_norm,
    dropout,
    noise_shape,
    reset_moving_statistics,
    to_numpy,
)
from conformance.model import BatchNormSpec, DropoutSpec, Step
from conformance.program import kept_mask
from conformance.tree import Block, Leaf, LinearSpec, ModelSpec


@dataclass
class _Log:
    """What the recorders saw at each leaf's last eager call: ``<leaf>.training`` and
    ``<leaf>.mask``, as numpy."""

    records: dict[str, np.ndarray] = field(default_factory=dict)
    masked: set[str] = field(default_factory=set)  # the dropout leaves (whose mask is recorded)

    def record(self, name: str, inputs: Any, outputs: Any, training: Any, flagged: bool = True) -> None:
        if not tf.executing_eagerly():
            return  # a symbolic call (Keras building a graph network): no values to record
        if flagged:
            self.records[f"{name}.training"] = np.asarray(1.0 if bool(training) else 0.0)
        if name in self.masked:
            self.records[f"{name}.mask"] = kept_mask(to_numpy(inputs), to_numpy(outputs))


# --- recording subclasses -------------------------------------------------------------------


class _RecordingBatchNorm:
    """Mixed into ``BatchNormalization``: records the ``training`` its call received (Keras 2
    fills it from the enclosing call; None falls back to the learning phase, as the layer
    does) and calls super().call with it unchanged. A non-trainable layer then runs in
    inference whatever it received: that is the freeze flag, not the call's mode."""

    log: _Log

    def call(self, inputs: Any, training: Any = None, mask: Any = None) -> Any:
        outputs = super().call(inputs, training=training, mask=mask)  # type: ignore[misc]
        if training is None:
            training = tf_keras.backend.learning_phase()  # what the layer itself falls back to
        self.log.record(self.name, inputs, outputs, training)  # type: ignore[attr-defined]
        return outputs


class _RecordingDropout:
    """Mixed into ``Dropout`` / ``SpatialDropout*D``: records the mode Dropout's call
    evaluates (None -> the learning phase, as Dropout.call resolves it), its input and output.
    ``force_training`` makes it Geron's MCDropout for one pass."""

    log: _Log
    force_training: bool = False

    def call(self, inputs: Any, training: Any = None) -> Any:
        ran = True if self.force_training else training  # MCDropout: always training=True
        outputs = super().call(inputs, training=ran)  # type: ignore[misc]
        if ran is None:
            ran = tf_keras.backend.learning_phase()  # what Dropout.call itself falls back to
        self.log.record(self.name, inputs, outputs, ran)  # type: ignore[attr-defined]
        return outputs


def _recording_twin(layer: KerasLayer, recorder: type, name: str, log: _Log) -> KerasLayer:
    """The layer adapter's Keras layer as an instance of its recording subclass: same config
    (every translated argument), named ``name``, built like it, with its weights' values and
    its trainable flag."""
    cls: Any = type(f"Recording{type(layer).__name__}", (recorder, type(layer)), {})
    twin = cls.from_config({**layer.get_config(), "name": name})
    if layer.built and layer.weights:
        twin.build_from_config(layer.get_build_config())  # the input shape it was built for
        for mine, theirs in zip(twin.weights, layer.weights):
            mine.assign(theirs)
    if hasattr(layer, "data_format"):
        # SpatialDropout2D/3D.get_config() leaves data_format out (Keras 2 bug: from_config
        # gives channels_last), so it is carried over by hand
        twin.data_format = layer.data_format
    twin.trainable = layer.trainable
    twin.log = log
    return twin


# --- leaves ---------------------------------------------------------------------------------


def _dense(name: str, spec: LinearSpec, rank: int, dtype: str) -> KerasLayer:
    """``Dense(out)`` holding the spec's W and b."""
    layer = tf_keras.layers.Dense(spec.out_features, use_bias=spec.bias is not None, dtype=dtype, name=name)
    layer.build((None,) * (rank - 1) + (spec.in_features,))  # Dense acts on the last axis
    # Keras stores W^T: kernel is (in, out), y = x @ kernel + bias
    layer.kernel.assign(tf.cast(np.asarray(spec.weight, np.float64).T, layer.kernel.dtype))
    if spec.bias is not None:
        layer.bias.assign(tf.cast(np.asarray(spec.bias, np.float64), layer.bias.dtype))
    return layer


def _leaf(leaf: Leaf, rank: int, dtype: str, log: _Log) -> KerasLayer:
    layer = leaf.layer
    if isinstance(layer, LinearSpec):
        return _dense(leaf.name, layer, rank, dtype)
    if isinstance(layer, BatchNormSpec):
        if layer.frozen and layer.trainable:
            raise Unsupported(
                f"batch norm {leaf.name!r}: Keras 2 BatchNormalization has no flag that freezes "
                "the moving statistics alone (trainable=False freezes gamma and beta too); in a "
                "Keras model the statistics are kept by calling the layer with training=False "
                "at its call site (a container child with training: false)")
        return _recording_twin(batch_norm(layer, dtype), _RecordingBatchNorm, leaf.name, log)
    log.masked.add(leaf.name)
    return _recording_twin(dropout(layer, dtype), _RecordingDropout, leaf.name, log)


def _functional(leaf: Leaf, log: _Log) -> DropoutSpec:
    """A functional leaf: tf.nn.dropout when no flag is given, else unsupported."""
    if isinstance(leaf.layer, BatchNormSpec):
        raise Unsupported(
            f"functional batch norm {leaf.name!r}: TensorFlow/Keras 2 have no functional batch "
            "norm that keeps running statistics (tf.nn.batch_normalization and "
            "tf.compat.v1.nn.fused_batch_norm normalise with the mean and variance they are "
            "given; the moving averages live in the BatchNormalization layer)")
    assert isinstance(leaf.layer, DropoutSpec)
    if leaf.training != "omitted":
        raise Unsupported(
            f"functional dropout {leaf.name!r} with training: {leaf.training}: tf.nn.dropout "
            "takes no training flag (it drops at every call)")
    log.masked.add(leaf.name)
    return leaf.layer


# --- containers -----------------------------------------------------------------------------


@dataclass(frozen=True)
class _Call:
    """One line of a container's call: child ``name`` with its call-site ``flag``; a
    functional dropout has its spec in ``functional`` and no layer."""

    name: str
    flag: str
    functional: DropoutSpec | None = None


class _Container(tf_keras.Model):  # type: ignore[misc]
    """A custom container, as Keras users write one: a ``tf_keras.Model`` subclass whose call
    calls its children in order, passing each the call-site flag its spec writes."""

    def __init__(self, name: str, calls: list[_Call], layers: dict[str, KerasLayer], log: _Log,
                 dtype: str) -> None:
        super().__init__(name=name, dtype=dtype)
        self.plan = tuple(calls)
        self.nodes = dict(layers)  # the child layers and sub-models, tracked by Keras
        self.log = log

    def call(self, inputs: Any, training: Any = None) -> Any:
        x = inputs
        for entry in self.plan:
            if entry.functional is not None:
                x = self._functional_dropout(entry.name, entry.functional, x)
            elif entry.flag in ("true", "false"):
                x = self.nodes[entry.name](x, training=entry.flag == "true")  # hard-coded flag
            elif entry.flag == "mode":
                x = self.nodes[entry.name](x, training=training)  # the container's own argument
            else:
                x = self.nodes[entry.name](x)  # omitted: Keras 2 resolves it
        return x

    def _functional_dropout(self, name: str, spec: DropoutSpec, x: Any) -> Any:
        """``tf.nn.dropout``: no training argument, so it drops at every call; the op seed
        (with TensorFlow's default global seed) gives a new mask at each eager call."""
        shape = noise_shape(spec)
        noise = None if shape is None else [x.shape[a] if s is None else s for a, s in enumerate(shape)]
        y = tf.nn.dropout(x, spec.rate, noise_shape=noise, seed=spec.seed)
        self.log.record(name, x, y, None, flagged=False)
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
        return tf_keras.Sequential(list(layers.values()), name=block.name)
    return _Container(block.name, calls, layers, log, dtype)


# --- the model ------------------------------------------------------------------------------


class _WeightedSum(tf_keras.losses.Loss):  # type: ignore[misc]
    """sum(y_true * y_pred) (reduction SUM): with y_true = grad_output, the gradient of the
    loss with respect to the model's output is exactly grad_output. Keeps the ``y_pred`` the
    training step handed it (the step's output)."""

    def __init__(self) -> None:
        super().__init__(name="weighted_sum", reduction=tf_keras.losses.Reduction.SUM)
        self.y_pred: Any = None

    def __call__(self, y_true: Any, y_pred: Any, sample_weight: Any = None) -> Any:
        if tf.executing_eagerly():
            self.y_pred = y_pred  # the model's output in the training step, as it came
        return super().__call__(y_true, y_pred, sample_weight)

    def call(self, y_true: Any, y_pred: Any) -> Any:
        wide = tf.float64 if y_pred.dtype == tf.float64 else tf.float32  # as the layer adapter sums
        return tf.cast(y_true, wide) * tf.cast(y_pred, wide)


@contextmanager
def _precision(dtype: str) -> Iterator[None]:
    """Keras 2's global float type (``backend.set_floatx``) and dtype policy set to the case's
    dtype while the model is built or compiled, restored after: a Sequential takes no dtype
    argument, and the optimizer's learning-rate variable is created in floatx (a float32 0.1
    is off by 1.5e-8 in a float64 model)."""
    backend, mp = tf_keras.backend, tf_keras.mixed_precision
    floatx, policy = backend.floatx(), mp.global_policy()
    backend.set_floatx(dtype if dtype in ("float16", "float32", "float64") else floatx)
    mp.set_global_policy(dtype)
    try:
        yield
    finally:
        backend.set_floatx(floatx)
        mp.set_global_policy(policy)


class TfKerasModelHandle:
    """A model case's Keras 2 model (``conformance.adapters.base.ModelHandle``)."""

    def __init__(self, spec: ModelSpec, dtype: str, device: str) -> None:
        self.spec, self.dtype, self.device = spec, tf.as_dtype(dtype), device
        self.log = _Log()
        self.layers: dict[str, KerasLayer] = {}  # leaf name -> its layer (functional: none)
        with tf.device(device), _precision(dtype):
            self.model = _block(spec.root, spec.rank, dtype, self.log, self.layers)
        self.model.run_eagerly = True  # predict/train_on_batch eagerly: the recorders see values
        self.loss = _WeightedSum()
        self._compiled: tuple[float, tuple[int, ...]] | None = None  # (lr, trainable ids)

    def run(self, step: Step, x: np.ndarray | None, grad_output: np.ndarray | None,
            index: int = -1) -> dict[str, np.ndarray]:
        """One step in Keras 2's idiom (module docstring)."""
        if step.action == "switch":
            raise Unsupported("Keras models have no mode to switch (no train()/eval()): the mode "
                              "is the training argument of each call")
        if step.action == "freeze":
            self._freeze(step.target, step.via)
            return {}
        assert x is not None
        with tf.device(self.device):
            xt = tf.cast(tf.constant(x), self.dtype)  # as the layer adapter converts inputs
            g = None if grad_output is None else tf.cast(tf.constant(grad_output), self.dtype)
            return {"output": to_numpy(self._entry(step, xt, g))}

    def _entry(self, step: Step, xt: Any, g: Any) -> Any:
        entry = step.entry
        if entry == "train":
            return self.model(xt, training=True)  # Keras has no train(): the call's argument
        if entry == "eval":
            return self.model(xt, training=False)  # the inference idiom: training=False
        if entry == "call":
            return self.model(xt)  # no training argument: Keras 2 decides (learning phase)
        if entry == "predict":
            return self.model.predict(xt, batch_size=len(xt), verbose=0)  # one batch, all rows
        if entry == "train_step":
            return self._train_step(xt, g, step.lr)
        if entry == "mc_dropout":
            return self._mc_dropout(xt)
        raise ValueError(f"unknown model entry {entry!r}")

    def _train_step(self, xt: Any, g: Any, lr: float) -> Any:
        """compile (again whenever the learning rate or the trainable weights changed: Keras
        requires it after a change of ``trainable``), then ``train_on_batch(x, grad_output)``."""
        if not self.model.built:  # Keras 2 lists no weights of an unbuilt nested model
            self.model.build(xt.shape)  # a symbolic call: nothing runs, nothing is recorded
        trainable = tuple(id(w) for w in self.model.trainable_weights)
        if self._compiled != (lr, trainable):
            with _precision(self.dtype.name):  # the learning rate in the model's float type
                self.model.compile(optimizer=tf_keras.optimizers.SGD(learning_rate=lr),  # no momentum
                                   loss=self.loss, run_eagerly=True)
            self._compiled = (lr, trainable)
        self.model.train_on_batch(xt, g)  # y = grad_output: the loss's y_true
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
        # flag or Keras' own way: trainable=False (Keras 2 runs a non-trainable
        # BatchNormalization in inference mode, and its gamma and beta get no updates)
        self.layers[name].trainable = False

    def reset_running_stats(self) -> None:
        """moving_mean <- 0, moving_variance <- 1 on every batch norm (Keras counts nothing)."""
        for layer in self.layers.values():
            if isinstance(layer, _RecordingBatchNorm):
                reset_moving_statistics(layer)

    def state(self) -> dict[str, np.ndarray]:
        """Every leaf's state (``ModelHandle.state``) and the records of its last call."""
        found = dict(self.log.records)
        for name, layer in self.layers.items():
            if isinstance(layer, _RecordingBatchNorm):
                bn: Any = layer
                found[f"{name}.running_mean"] = to_numpy(bn.moving_mean)
                found[f"{name}.running_var"] = to_numpy(bn.moving_variance)
                if bn.scale:
                    found[f"{name}.scale"] = to_numpy(bn.gamma)
                if bn.center:
                    found[f"{name}.shift"] = to_numpy(bn.beta)
            elif not isinstance(layer, _RecordingDropout):
                # Keras stores W^T: the kernel (in, out) transposed back to (out, in)
                found[f"{name}.weight"] = to_numpy(layer.kernel).T
                if layer.use_bias:
                    found[f"{name}.bias"] = to_numpy(layer.bias)
        return found


def build_model(spec: ModelSpec, dtype: str, device: str) -> TfKerasModelHandle:
    """The Keras 2 model of ``spec`` (``TfKerasAdapter.build`` for a ``ModelSpec``)."""
    return TfKerasModelHandle(spec, dtype, device)
