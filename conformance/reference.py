"""The numpy float64 reference: canonical BatchNorm and Dropout semantics, with every
convention an explicit parameter.

BatchNorm over an input x with C channels. The statistics reduce over every axis but the
channel axis, m values per channel (m = N * prod(spatial)).

During training::

    mu    = mean(x)                          sigma2 = mean((x - mu)^2)      (biased)
    x_hat = (x - mu) / sqrt(sigma2 + eps)    (eps_placement="inside")
          = (x - mu) / (sqrt(sigma2) + eps)  (eps_placement="outside")
    y     = scale * x_hat + shift

(sigma2 * m / (m - 1) in x_hat under ``normalization_var_estimator="unbiased"``; the running
statistics in place of mu and sigma2 under ``train_statistics="running"``, the bug of a
training-mode layer turned into an inference one).

and, when the layer keeps running statistics, with s the batch statistic that feeds them
(s_var = sigma2 * m / (m - 1) for the unbiased estimator, sigma2 for the biased one)::

    running <- (1 - w) * running + w * s     (momentum_weights="new": w weighs the new value)
    running <- w * running + (1 - w) * s     (momentum_weights="old": the reversed convention)
    running <- running + (s - running) / k   (update="cumulative", k = batches seen so far)
    running unchanged                        (running_update="none")

During inference::

    y = scale * (x - running_mean) / sqrt(running_var + eps) + shift

(batch statistics instead when the layer keeps no running statistics, or under
``eval_statistics="batch"``). Under ``eval_updates="yes"`` an inference pass also updates the
running statistics with the batch's, as in training (a kernel that updates them whenever it
is not told to use the global ones).

Dropout with rate p: in training each unit is kept with probability q = 1 - p (q = p under
``rate_meaning="keep"``, the rate taken for a keep probability) and kept values are multiplied
by 1/q (``train_scale="inverted"``) or left as they are (``"none"``); in inference y = x
(``eval="identity"``), y = q * x (``"downscale"``), or the training rule again (``"active"``:
dropout left on in inference).
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from typing import Any, Literal

import numpy as np

from conformance.model import BatchNormSpec, DropoutSpec, Mode


@dataclass(frozen=True)
class BatchNormConventions:
    """The choices on which frameworks differ; each field names one convention."""

    running_var_estimator: Literal["unbiased", "biased"] = "unbiased"
    momentum_weights: Literal["new", "old"] = "new"
    eps_placement: Literal["inside", "outside"] = "inside"
    running_update: Literal["as_specified", "none", "cumulative"] = "as_specified"
    train_statistics: Literal["batch", "running"] = "batch"
    normalization_var_estimator: Literal["biased", "unbiased"] = "biased"
    eval_statistics: Literal["running", "batch"] = "running"
    eval_updates: Literal["no", "yes"] = "no"


@dataclass(frozen=True)
class DropoutConventions:
    rate_meaning: Literal["drop", "keep"] = "drop"
    train_scale: Literal["inverted", "none"] = "inverted"
    eval: Literal["identity", "downscale", "active"] = "identity"


@dataclass(frozen=True)
class ModelConventions:
    """How a model's mode reaches its leaves (``conformance.reference_model``)."""

    eval_propagates: Literal["all", "partial", "none"] = "all"
    call_site_flag: Literal["honoured", "overridden"] = "honoured"
    call_mode: Literal["current", "inference", "train"] = "current"
    train_step_mode: Literal["current", "train"] = "current"
    freeze_survives_mode_switch: Literal["false", "true"] = "false"
    override_respected: Literal["true", "false"] = "true"
    predict_switches: Literal["false", "true"] = "false"
    freeze_scope: Literal["statistics", "layer"] = "statistics"
    call_flag_scope: Literal["call", "pass"] = "call"


@dataclass(frozen=True)
class FunctionalConventions:
    """What the functional forms do when called without a training flag."""

    dropout_default_training: Literal["true", "false"] = "true"
    batch_norm_default_training: Literal["false", "true"] = "false"


# Every convention the reference knows, its canonical value first. The canonical values are
# the semantics most frameworks document (and PyTorch's throughout); a spec that follows other
# ones names them under ``reference:``. No framework is canonical: every adapter documents its
# value of every key (conformance.adapters.documentation).
CONVENTION_VALUES: dict[str, tuple[str, ...]] = {
    "bn.running_var_estimator": ("unbiased", "biased"),
    "bn.momentum_weights": ("new", "old"),
    "bn.eps_placement": ("inside", "outside"),
    "bn.running_update": ("as_specified", "none", "cumulative"),
    "bn.train_statistics": ("batch", "running"),
    "bn.normalization_var_estimator": ("biased", "unbiased"),
    "bn.eval_statistics": ("running", "batch"),
    "bn.eval_updates": ("no", "yes"),
    "dropout.rate_meaning": ("drop", "keep"),
    "dropout.train_scale": ("inverted", "none"),
    "dropout.eval": ("identity", "downscale", "active"),
    # models (conformance.reference_model): the mode switch reaches every descendant (all),
    # only the root's children (partial) or the root alone (none); a hard-coded training flag
    # at a call site wins (honoured) or the model's mode does (overridden); a plain call runs
    # in the model's current mode or always in inference; a training step runs in the current
    # mode or always in training; a leaf frozen through its own mode stays frozen when the
    # model switches to training again (true) or is switched with it (false)
    "model.eval_propagates": ("all", "partial", "none"),
    "model.call_site_flag": ("honoured", "overridden"),
    "model.call_mode": ("current", "inference", "train"),
    "model.train_step_mode": ("current", "train"),
    "model.freeze_survives_mode_switch": ("false", "true"),
    # a nested container's own override of the mode switch runs (true), or the parent's switch
    # sets every descendant's mode itself, past it (false: Paddle's Layer.train()/eval());
    # predict leaves the model's mode as it was (false) or switches it to inference (true:
    # Paddle's paddle.Model.predict_batch calls eval())
    "model.override_respected": ("true", "false"),
    "model.predict_switches": ("false", "true"),
    # a frozen batch norm keeps its statistics and still learns its scale and shift
    # (statistics), or learns nothing (layer: Keras' trainable=False); a hard-coded flag at a
    # call site sets the mode of that call (call), or of every later call of the same forward
    # pass that gives none (pass: Keras 3 keeps it in the call context it shares)
    "model.freeze_scope": ("statistics", "layer"),
    "model.call_flag_scope": ("call", "pass"),
    # the functional forms called without a training flag: dropout drops (true) or does not
    # (false; a functional dropout with no flag at all, as Keras', drops: true); batch norm
    # normalises with the running statistics (false) or the batch's, updating them (true)
    "functional.dropout_default_training": ("true", "false"),
    "functional.batch_norm_default_training": ("false", "true"),
}


def conventions_for(
    layer: BatchNormSpec | DropoutSpec, settings: dict[str, str]
) -> BatchNormConventions | DropoutConventions:
    """Build the conventions of ``layer``'s kind from ``{"bn.x": value}`` settings.

    A dropout layer with ``scaling="eval"`` asks for the downscale-in-inference scheme, so
    its defaults are ``train_scale="none"`` and ``eval="downscale"``.
    """
    base: BatchNormConventions | DropoutConventions
    if isinstance(layer, BatchNormSpec):
        prefix, base = "bn.", BatchNormConventions()
    else:
        prefix = "dropout."
        base = (
            DropoutConventions(train_scale="none", eval="downscale")
            if layer.scaling == "eval"
            else DropoutConventions()
        )
    names = {f.name for f in fields(base)}
    chosen: dict[str, Any] = {k[len(prefix):]: v for k, v in settings.items() if k.startswith(prefix)}
    return replace(base, **{k: v for k, v in chosen.items() if k in names})


_PREFIXES = ((BatchNormConventions, "bn."), (DropoutConventions, "dropout."),
             (ModelConventions, "model."), (FunctionalConventions, "functional."))


def flatten_conventions(conv: Any) -> dict[str, str]:
    prefix = next(p for cls, p in _PREFIXES if isinstance(conv, cls))
    return {prefix + f.name: getattr(conv, f.name) for f in fields(conv)}


def settings_of(layer: Any, settings: dict[str, str]) -> dict[str, str]:
    """Every convention of ``layer``'s kind under ``settings``, flattened: a batch norm's or
    a dropout's own, or for a model (``layer.kind == "model"``) those of its model and
    functional forms and of every kind of leaf it has (a model's dropout leaves scale in
    training: the loader refuses ``scaling: eval`` there)."""
    if getattr(layer, "kind", "") != "model":
        return flatten_conventions(conventions_for(layer, settings))
    merged: dict[str, str] = {}
    for cls, prefix in _PREFIXES:
        if prefix == "bn." and not layer.has("batch_norm") or prefix == "dropout." and not layer.has("dropout"):
            continue
        base = flatten_conventions(cls())
        merged.update({k: settings.get(k, v) for k, v in base.items()})
    return merged


def model_conventions(settings: dict[str, str]) -> tuple[ModelConventions, FunctionalConventions]:
    """The model and functional conventions under ``settings``."""
    def build(cls: Any, prefix: str) -> Any:
        names = {f.name for f in fields(cls)}
        return cls(**{k[len(prefix):]: v for k, v in settings.items()
                      if k.startswith(prefix) and k[len(prefix):] in names})
    return build(ModelConventions, "model."), build(FunctionalConventions, "functional.")


def channel_axis_index(rank: int, channel_axis: str) -> int:
    return 1 if channel_axis == "first" else rank - 1


def _broadcast_shape(rank: int, axis: int, channels: int) -> tuple[int, ...]:
    shape = [1] * rank
    shape[axis] = channels
    return tuple(shape)


@dataclass
class BatchNormState:
    running_mean: np.ndarray
    running_var: np.ndarray
    batch_count: int = 0


class ReferenceBatchNorm:
    """A float64 batch norm that follows ``spec`` under ``conventions``."""

    def __init__(self, spec: BatchNormSpec, conventions: BatchNormConventions) -> None:
        if spec.update_weight is None or spec.eps is None or spec.native_momentum is not None:
            raise ValueError("the reference needs the neutral update weight and eps; a case "
                             "with framework defaults or native arguments is resolved first "
                             "(conformance.facts.resolutions)")
        self.spec = spec
        self.conv = conventions
        c = spec.num_features
        self.axis = channel_axis_index(spec.rank, spec.channel_axis)
        self.reduce_axes = tuple(a for a in range(spec.rank) if a != self.axis)
        self.bshape = _broadcast_shape(spec.rank, self.axis, c)
        self.scale = _init(spec.scale if spec.affine else None, c, 1.0)
        self.shift = _init(spec.shift if spec.affine else None, c, 0.0)
        self.state = BatchNormState(
            running_mean=_init(spec.running_mean, c, 0.0),
            running_var=_init(spec.running_var, c, 1.0),
        )
        self.frozen = spec.frozen  # a model may freeze the layer later (Paddle's use_global_stats)
        self.saved: tuple[np.ndarray, np.ndarray, bool, float] | None = None  # for backward()

    def _normalise(self, x: np.ndarray, mean: np.ndarray, var: np.ndarray) -> np.ndarray:
        mean_b, var_b = mean.reshape(self.bshape), var.reshape(self.bshape)
        if self.conv.eps_placement == "inside":
            return (x - mean_b) / np.sqrt(var_b + self.spec.eps)
        return (x - mean_b) / (np.sqrt(var_b) + self.spec.eps)

    def _uses_batch_statistics(self, mode: Mode) -> bool:
        if not self.spec.running_stats:
            return True
        if mode == "train":
            return not self.frozen and self.conv.train_statistics == "batch"
        return self.conv.eval_statistics == "batch"

    def _updates(self, mode: Mode) -> bool:
        """Whether this pass feeds the running statistics."""
        if not self.spec.running_stats or self.frozen:
            return False
        return mode == "train" or self.conv.eval_updates == "yes"

    def reset_running_stats(self) -> None:
        c = self.spec.num_features
        self.state = BatchNormState(running_mean=np.zeros(c), running_var=np.ones(c))

    def forward(
        self, x: np.ndarray, mode: Mode, grad_output: np.ndarray | None = None,
        context: str = "plain",
    ) -> dict[str, np.ndarray]:
        """Return ``output`` (and the gradients of ``sum(grad_output * output)``). The
        context (plain, no_grad, inference, compiled) changes nothing: a forward pass in
        training mode updates the statistics wherever it runs."""
        x = np.asarray(x, dtype=np.float64)
        count = x.size // self.spec.num_features
        with np.errstate(divide="ignore", invalid="ignore"):
            batch_mean, batch_var = x.mean(axis=self.reduce_axes), x.var(axis=self.reduce_axes)
            factor = 1.0  # m/(m-1) when the normalisation divides by the unbiased variance
            if self._uses_batch_statistics(mode):
                mean, var = batch_mean, batch_var
                if self.conv.normalization_var_estimator == "unbiased":
                    factor = count / (count - 1) if count > 1 else np.nan
                    var = var * factor
                batch_stats = True
            else:
                mean, var = self.state.running_mean, self.state.running_var
                batch_stats = False
            x_hat = self._normalise(x, mean, var)
            out = {"output": self.scale.reshape(self.bshape) * x_hat + self.shift.reshape(self.bshape)}
            self.saved = (x_hat, var, batch_stats, factor)
            if grad_output is not None:
                out.update(self._gradients(x_hat, var, np.asarray(grad_output, np.float64),
                                           batch_stats, factor))
            if self._updates(mode):
                self._update_running(batch_mean, batch_var, count=count)
        return out

    def backward(self, grad_output: np.ndarray) -> dict[str, np.ndarray]:
        """The gradients of ``sum(grad_output * output)`` of the last forward pass."""
        assert self.saved is not None, "backward() before any forward()"
        x_hat, var, batch_stats, factor = self.saved
        with np.errstate(divide="ignore", invalid="ignore"):
            return self._gradients(x_hat, var, np.asarray(grad_output, np.float64), batch_stats, factor)

    def _gradients(
        self, x_hat: np.ndarray, var: np.ndarray, g: np.ndarray, batch_stats: bool,
        factor: float = 1.0,
    ) -> dict[str, np.ndarray]:
        """d/dx of sum(g * y). With batch statistics (eps inside the root; ``var`` is c *
        sigma2, c = 1 for the biased normalisation and m/(m-1) for the unbiased one)::

            dx = scale / sqrt(var + eps) * (g - mean(g) - c * x_hat * mean(g * x_hat))

        and with fixed statistics dx = scale * g / sqrt(var + eps).
        """
        if self.conv.eps_placement != "inside":
            raise NotImplementedError("gradients are only derived for eps inside the root")
        inv_std = (1.0 / np.sqrt(var + self.spec.eps)).reshape(self.bshape)
        scale = self.scale.reshape(self.bshape)
        if batch_stats:
            g_mean = g.mean(axis=self.reduce_axes, keepdims=True)
            gx_mean = (g * x_hat).mean(axis=self.reduce_axes, keepdims=True)
            grad_input = scale * inv_std * (g - g_mean - factor * x_hat * gx_mean)
        else:
            grad_input = scale * inv_std * g
        grads = {"grad_input": grad_input}
        if self.spec.affine:
            # frozen (non-trainable) scale and shift get no gradient, reported as zeros
            live = 1.0 if self.spec.trainable else 0.0
            grads["grad_scale"] = live * (g * x_hat).sum(axis=self.reduce_axes)
            grads["grad_shift"] = live * g.sum(axis=self.reduce_axes)
        return grads

    def _update_running(self, mean: np.ndarray, var: np.ndarray, count: int) -> None:
        if self.conv.running_update == "none":
            return
        self.state.batch_count += 1
        if self.conv.running_var_estimator == "unbiased":
            var = var * count / (count - 1) if count > 1 else np.full_like(var, np.nan)
        st = self.state
        if self.spec.update == "cumulative" or self.conv.running_update == "cumulative":
            k = st.batch_count
            st.running_mean = st.running_mean + (mean - st.running_mean) / k
            st.running_var = st.running_var + (var - st.running_var) / k
            return
        w = self.spec.update_weight
        assert w is not None  # resolved before the reference is built (see __init__)
        if self.conv.momentum_weights == "old":
            w = 1.0 - w
        st.running_mean = (1.0 - w) * st.running_mean + w * mean
        st.running_var = (1.0 - w) * st.running_var + w * var

    def observe(self) -> dict[str, np.ndarray]:
        if not self.spec.running_stats:
            return {}
        return {
            "running_mean": self.state.running_mean.copy(),
            "running_var": self.state.running_var.copy(),
            "batch_count": np.asarray(self.state.batch_count, dtype=np.int64),
        }


def _init(values: np.ndarray | None, channels: int, fill: float) -> np.ndarray:
    if values is None:
        return np.full(channels, fill, dtype=np.float64)
    return np.asarray(values, dtype=np.float64).reshape(channels).copy()


def dropout_mask_shape(spec: DropoutSpec, shape: tuple[int, ...]) -> tuple[int, ...]:
    """Element-wise dropout draws one value per element; channel-wise one per (sample,
    channel), shared along every spatial axis."""
    if spec.granularity == "element":
        return shape
    axis = channel_axis_index(len(shape), spec.channel_axis)
    return tuple(n if a in (0, axis) else 1 for a, n in enumerate(shape))


def keep_probability(rate: float, conv: DropoutConventions) -> float:
    """q: 1 - p, or p itself when the rate is taken for the probability to keep."""
    return rate if conv.rate_meaning == "keep" else 1.0 - rate


def dropout_train_scale(rate: float, conv: DropoutConventions) -> float:
    """The factor kept values get in training: 1/q inverted, 1 otherwise (0 for q = 0)."""
    if conv.train_scale == "none":
        return 1.0
    keep = keep_probability(rate, conv)
    return 0.0 if keep <= 0.0 else 1.0 / keep


def dropout_is_random(mode: Mode, conv: DropoutConventions) -> bool:
    """Whether a pass in ``mode`` draws a mask: training, and inference left active."""
    return mode == "train" or conv.eval == "active"


def dropout_eval(x: np.ndarray, rate: float, conv: DropoutConventions) -> np.ndarray:
    """Inference without a mask: y = x (identity) or y = q * x (downscale)."""
    x = np.asarray(x, dtype=np.float64)
    return x * keep_probability(rate, conv) if conv.eval == "downscale" else x.copy()


class ReferenceDropout:
    """Dropout drawing its masks from a numpy generator; the reference for the *rules*
    (what is kept, how it is scaled), not for which elements a framework keeps."""

    def __init__(self, spec: DropoutSpec, conventions: DropoutConventions) -> None:
        if spec.native_rate is not None:
            raise ValueError("the reference needs the neutral rate; a case with a native rate "
                             "is resolved first (conformance.facts.resolutions)")
        if not 0.0 <= spec.rate <= 1.0:
            raise ValueError(f"Invalid value received for argument `rate`. Expected a float "
                             f"value between 0 and 1. Received: rate={spec.rate}")
        self.spec = spec
        self.conv = conventions
        self.rng = np.random.default_rng(spec.seed)

    def forward(
        self, x: np.ndarray, mode: Mode, grad_output: np.ndarray | None = None,
        context: str = "plain", kept: np.ndarray | None = None,
    ) -> dict[str, np.ndarray]:
        """``kept``: in a random pass, which units to keep (a framework's own mask, seen in its
        output), instead of drawing them."""
        x = np.asarray(x, dtype=np.float64)
        keep_share = keep_probability(self.spec.rate, self.conv)
        if not dropout_is_random(mode, self.conv):
            factor = np.full(dropout_mask_shape(self.spec, x.shape), keep_share
                             if self.conv.eval == "downscale" else 1.0)
        else:
            keep = (self.rng.random(dropout_mask_shape(self.spec, x.shape)) >= 1.0 - keep_share
                    if kept is None else kept)
            factor = keep * dropout_train_scale(self.spec.rate, self.conv)
        self.factor = factor
        out = {"output": x * factor}
        if grad_output is not None:
            out["grad_input"] = np.asarray(grad_output, np.float64) * factor
        return out

    def observe(self) -> dict[str, np.ndarray]:
        return {}


def build_reference(
    layer: BatchNormSpec | DropoutSpec, settings: dict[str, str] | None = None
) -> ReferenceBatchNorm | ReferenceDropout:
    conv = conventions_for(layer, settings or {})
    if isinstance(layer, BatchNormSpec):
        assert isinstance(conv, BatchNormConventions)
        return ReferenceBatchNorm(layer, conv)
    assert isinstance(conv, DropoutConventions)
    return ReferenceDropout(layer, conv)
