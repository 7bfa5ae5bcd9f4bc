"""Facts of the conventions table, measured from observations, and cases resolved from
measurement.

A case may build its layer with the framework's defaults (``update_weight: default``,
``eps: default``) or pass a value untranslated to the framework's own argument
(``native_momentum``, ``native_rate``). The reference cannot know those values, so they are
*measured* from the first step and the reference then checks every later step with them:

    update weight  w   = median over channels of (r1 - r0) / (mu_B - r0)
                         (r0, r1: running mean before and after the first training step)
    eps                = median over elements of ((x - mu_B) / x_hat)^2 - sigma2_B
                         (x_hat = (y - shift) / scale, from the first training output)
    dropout kept share = kept units / units  (compared with 1 - r and with r)

A case lists in ``measures`` the facts its observations establish; each fact has an
estimator here, and a fact no case measured is absent from the table, never guessed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

import numpy as np

from conformance.checks import kept_fraction_bound, reproduces
from conformance.model import BatchNormSpec, Case, DropoutSpec
from conformance.program import CaseRun
from conformance.reference import CONVENTION_VALUES, channel_axis_index


class NotMeasurable(Exception):
    """The observations cannot establish the value (the message says why)."""


def significant(value: float, digits: int = 3) -> float:
    return float(f"{value:.{digits}g}")


def _first_train(case: Case, run: CaseRun, quantity: str) -> tuple[np.ndarray, np.ndarray]:
    first = case.steps[0]
    if not run.steps or first.action != "forward" or first.mode != "train" or quantity not in run.steps[0]:
        raise NotMeasurable(f"needs a first training step that observes {quantity}")
    return case.inputs[case.steps[0].input].astype(np.float64), run.steps[0][quantity]


def _batch_moments(layer: BatchNormSpec, x: np.ndarray) -> tuple[np.ndarray, np.ndarray, tuple[int, ...]]:
    axis = channel_axis_index(layer.rank, layer.channel_axis)
    reduce = tuple(a for a in range(layer.rank) if a != axis)
    shape = tuple(layer.num_features if a == axis else 1 for a in range(layer.rank))
    return x.mean(axis=reduce), x.var(axis=reduce), shape


def measured_update_weight(case: Case, run: CaseRun) -> float:
    assert isinstance(case.layer, BatchNormSpec)
    x, running_mean = _first_train(case, run, "running_mean")
    mean, _, _ = _batch_moments(case.layer, x)
    start = case.layer.running_mean if case.layer.running_mean is not None else np.zeros_like(mean)
    usable = np.abs(mean - start) > 1e-3
    if not usable.any():
        raise NotMeasurable("the first batch's mean equals the initial running mean")
    return float(np.median((running_mean[usable] - start[usable]) / (mean[usable] - start[usable])))


def measured_eps(case: Case, run: CaseRun) -> float:
    layer = case.layer
    assert isinstance(layer, BatchNormSpec)
    x, output = _first_train(case, run, "output")
    mean, var, shape = _batch_moments(layer, x)
    scale = layer.scale if layer.scale is not None and layer.affine else np.ones(layer.num_features)
    shift = layer.shift if layer.shift is not None and layer.affine else np.zeros(layer.num_features)
    x_hat = (output - shift.reshape(shape)) / scale.reshape(shape)
    centred = x - mean.reshape(shape)
    usable = np.abs(x_hat) > 0.1
    if not usable.any():
        raise NotMeasurable("no output far enough from the shift to invert")
    estimate = (centred / np.where(usable, x_hat, 1.0)) ** 2 - np.broadcast_to(var.reshape(shape), x.shape)
    return float(np.median(estimate[usable]))


def resolve(case: Case, run: CaseRun) -> tuple[Case, dict[str, Any]]:
    """The case with measured values in place of defaults and native arguments, and what
    was measured. Raises NotMeasurable when a needed value cannot be measured."""
    layer = case.layer
    measured: dict[str, Any] = {}
    if isinstance(layer, BatchNormSpec):
        changes: dict[str, Any] = {}
        if layer.update_weight is None or layer.native_momentum is not None:
            weight = measured_update_weight(case, run)
            measured["update_weight"] = weight
            changes.update(update_weight=significant(weight), native_momentum=None)
        if layer.eps is None:
            eps = measured_eps(case, run)
            measured["eps"] = eps
            changes["eps"] = significant(eps, 2)
        if changes:
            return replace(case, layer=replace(layer, **changes)), measured
    elif layer.native_rate is not None:
        meaning = rate_meaning(case, run)
        measured["rate_meaning"] = meaning
        rate = layer.native_rate if meaning == "drop" else 1.0 - layer.native_rate
        return replace(case, layer=replace(layer, rate=rate, native_rate=None)), measured
    return case, measured


def _dropout_units(case: Case, run: CaseRun) -> tuple[int, int]:
    assert isinstance(case.layer, DropoutSpec)
    x, output = _first_train(case, run, "output")
    informative = x != 0
    kept = (output != 0) & informative
    if case.layer.granularity == "channel":
        axis = channel_axis_index(x.ndim, case.layer.channel_axis)
        spatial = tuple(a for a in range(x.ndim) if a not in (0, axis))
        kept, informative = kept.any(axis=spatial), informative.any(axis=spatial)
    return int(kept[informative].sum()), int(informative.sum())


def rate_meaning(case: Case, run: CaseRun) -> str:
    """``drop`` when the share kept is 1 - r, ``keep`` when it is r (r: the native rate)."""
    assert isinstance(case.layer, DropoutSpec) and case.layer.native_rate is not None
    kept, units = _dropout_units(case, run)
    share, r, bound = kept / units, case.layer.native_rate, kept_fraction_bound(units)
    if abs(r - 0.5) <= bound:
        raise NotMeasurable("a native rate near 0.5 cannot tell drop from keep")
    if abs(share - (1 - r)) <= bound:
        return "drop"
    if abs(share - r) <= bound:
        return "keep"
    return f"other (kept {share:.3f})"


# --- fact estimators: (case resolved, run, result entry) -> value ------------------------

def _which(key: str) -> Callable[[Case, CaseRun, dict[str, Any]], str]:
    """The value of convention ``key`` under which the reference reproduces the run."""
    def estimate(case: Case, run: CaseRun, result: dict[str, Any]) -> str:
        if run.status != "ok":
            raise NotMeasurable(f"the case gave {run.status}")
        fits = [value for value in CONVENTION_VALUES[key]
                if reproduces(case, run, {**case.reference, key: value})]
        if len(fits) == 1:
            return fits[0]
        if not fits:
            return "neither " + " nor ".join(CONVENTION_VALUES[key])
        raise NotMeasurable(f"the observations fit {' and '.join(fits)} alike")
    return estimate


def _default_update_weight(case: Case, run: CaseRun, result: dict[str, Any]) -> float:
    return significant(result.get("measured", {}).get("update_weight", float("nan")))


def _default_eps(case: Case, run: CaseRun, result: dict[str, Any]) -> float:
    return significant(result.get("measured", {}).get("eps", float("nan")), 2)


def _momentum_weights(case: Case, run: CaseRun, result: dict[str, Any]) -> str:
    assert isinstance(case.layer, BatchNormSpec)
    native = result.get("native_momentum")
    weight = result.get("measured", {}).get("update_weight")
    if native is None or weight is None:
        raise NotMeasurable("needs a native_momentum probe")
    if abs(weight - native) < 1e-3:
        return "new"
    if abs(weight - (1 - native)) < 1e-3:
        return "old"
    return f"other (new value weighted {weight:.4g})"


def _single_value(case: Case, run: CaseRun, result: dict[str, Any]) -> str:
    if run.status == "error":
        return "error"
    if run.status != "ok" or not run.steps or "output" not in run.steps[0]:
        raise NotMeasurable(f"the case gave {run.status}")
    assert isinstance(case.layer, BatchNormSpec)
    y = run.steps[0]["output"]
    x = case.inputs[case.steps[0].input].astype(np.float64)
    shift = case.layer.shift if case.layer.shift is not None else np.zeros(case.layer.num_features)
    axis = channel_axis_index(case.layer.rank, case.layer.channel_axis)
    shape = tuple(case.layer.num_features if a == axis else 1 for a in range(case.layer.rank))
    if np.isnan(y).all():
        return "nan"
    if np.allclose(y, np.broadcast_to(shift.reshape(shape), y.shape), atol=1e-4):
        return "beta"
    if np.allclose(y, x, atol=1e-4):
        return "identity"
    return "other"


def _from_status(case: Case, run: CaseRun, result: dict[str, Any]) -> str:
    """Whether the framework has the feature the case exercises, and if so whether it
    behaves as specified."""
    verdict = result["verdict"]
    if verdict in ("unsupported", "error"):
        return str(verdict)
    if verdict == "skipped":
        raise NotMeasurable("the case was skipped")
    return "supported" if verdict in ("conforms", "convention") else "differs"


def _rate_one(case: Case, run: CaseRun, result: dict[str, Any]) -> str:
    if run.status == "error":
        return "error"
    if run.status != "ok" or not run.steps:
        raise NotMeasurable(f"the case gave {run.status}")
    y = run.steps[0]["output"]
    return "zeros" if np.all(y == 0) else ("nan" if np.isnan(y).any() else "other")


def _rate_meaning(case: Case, run: CaseRun, result: dict[str, Any]) -> str:
    meaning = result.get("measured", {}).get("rate_meaning")
    if meaning is None:
        raise NotMeasurable("needs a native_rate probe")
    return str(meaning)


FACTS: dict[str, Callable[[Case, CaseRun, dict[str, Any]], Any]] = {
    "bn.default_update_weight": _default_update_weight,
    "bn.default_eps": _default_eps,
    "bn.momentum_weights": _momentum_weights,
    "bn.running_var_estimator.rank2": _which("bn.running_var_estimator"),
    "bn.running_var_estimator.rank3": _which("bn.running_var_estimator"),
    "bn.running_var_estimator.rank4": _which("bn.running_var_estimator"),
    "bn.running_var_estimator.rank5": _which("bn.running_var_estimator"),
    "bn.single_value_per_channel_train": _single_value,
    "bn.cumulative_average": _from_status,
    "bn.batch_count": _from_status,
    "bn.no_running_stats": _from_status,
    "dropout.rate_meaning": _rate_meaning,
    "dropout.train_scale": _which("dropout.train_scale"),
    "dropout.eval": _which("dropout.eval"),
    "dropout.rate_one_train": _rate_one,
    "dropout.downscale_mode": _from_status,
    "dropout.channel": _from_status,
}


def measure(case: Case, run: CaseRun, result: dict[str, Any]) -> dict[str, Any]:
    """Every fact ``case`` measures: ``{fact: value}``, with ``{fact: "not measured: why"}``
    in ``result["unmeasured"]`` for those the observations could not establish."""
    values: dict[str, Any] = {}
    for fact in case.measures:
        try:
            values[fact] = FACTS[fact](case, run, result)
        except NotMeasurable as exc:
            result.setdefault("unmeasured", {})[fact] = str(exc)
    return values
