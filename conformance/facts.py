"""Facts of the conventions table, measured from observations, and cases resolved from
measurement.

A case may build its layer with the framework's defaults (``update_weight: default``,
``eps: default``) or pass a value untranslated to the framework's own argument
(``native_momentum``, ``native_rate``). The reference cannot know those values, so they are
*measured* from the first step and the reference then checks every later step with them:

    update weight  w   = median over channels of (r1 - r0) / (mu_B - r0)
                         (r0, r1: running mean before and after the first training step)
    eps                = median over elements of ((x - mu_B) / x_hat)^2 - sigma2_B
                         (x_hat = (y - shift) / scale, from the first training output), or
                         (x - mu_B) / x_hat - sigma_B for eps outside the root, whichever
                         reproduces that output (sigma2_B scaled by m/(m-1) too, for a
                         normalisation by the unbiased variance)
    dropout kept share = kept units / units  (compared with 1 - r and with r)

A case lists in ``measures`` the facts its observations establish; each fact has an
estimator here, and a fact no case measured is absent from the table, never guessed.

Facts are read jointly with the verdict's explanation: the smallest set of conventions
under which the reference, with the measured values, reproduces every observation of the
case (``explain``). A convention's fact is its value in that set, checked to be the only
value that reproduces the run with the others held there; a measured number is a fact only
when that set exists (the reference re-run with it reproduces the run). Anything else is
"not measured", with the reason.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

import numpy as np

from conformance.checks import kept_fraction_bound, reproduces
from conformance.model import BatchNormSpec, Case, DropoutSpec
from conformance.program import CaseRun
from conformance.reference import (
    CONVENTION_VALUES,
    channel_axis_index,
    settings_of,
)


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


def eps_candidates(case: Case, run: CaseRun) -> list[float]:
    """Every eps under which the first training output is reproduced: eps inside the root
    first, then outside, each with the biased and the unbiased normalisation (which of them
    the rest of the run follows decides between them: ``resolutions``)."""
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
    m = x.size // layer.num_features
    ratio = centred / np.where(usable, x_hat, 1.0)
    found: list[float] = []
    for inside, factor in ((True, 1.0), (True, m / (m - 1) if m > 1 else 1.0),
                           (False, 1.0), (False, m / (m - 1) if m > 1 else 1.0)):
        spread = np.broadcast_to((factor * var).reshape(shape), x.shape)
        estimate = ratio ** 2 - spread if inside else ratio - np.sqrt(spread)
        eps = float(np.median(estimate[usable]))
        if eps > 0 and _reproduces_output(centred, spread, eps, inside, x_hat, case.tolerance) \
                and all(abs(eps - other) > 1e-3 * eps for other in found):
            found.append(eps)
    if not found:
        raise NotMeasurable("no eps, inside or outside the root, reproduces the first training output")
    return found


def _reproduces_output(centred: np.ndarray, spread: np.ndarray, eps: float, inside: bool,
                       x_hat: np.ndarray, tol: Any) -> bool:
    """x_hat recomputed with ``eps`` (rounded as the fact is) matches the observed one."""
    eps = significant(eps, 2)
    with np.errstate(divide="ignore", invalid="ignore"):
        again = centred / (np.sqrt(spread + eps) if inside else np.sqrt(spread) + eps)
    return bool(np.all(np.abs(again - x_hat) <= tol.atol + tol.rtol * np.abs(x_hat)))


def resolutions(case: Case, run: CaseRun) -> list[tuple[Case, dict[str, Any]]]:
    """The case with measured values in place of defaults and native arguments, and what
    was measured; several where the first step allows several values (eps inside or outside
    the root), the likeliest first. Raises NotMeasurable when a needed value cannot be
    measured."""
    layer = case.layer
    measured: dict[str, Any] = {}
    if isinstance(layer, BatchNormSpec):
        changes: dict[str, Any] = {}
        if layer.update_weight is None or layer.native_momentum is not None:
            weight = measured_update_weight(case, run)
            measured["update_weight"] = weight
            changes.update(update_weight=significant(weight), native_momentum=None)
        if layer.eps is None:
            return [(replace(case, layer=replace(layer, **changes, eps=significant(eps, 2))),
                     {**measured, "eps": eps}) for eps in eps_candidates(case, run)]
        if changes:
            return [(replace(case, layer=replace(layer, **changes)), measured)]
    elif isinstance(layer, DropoutSpec) and layer.native_rate is not None:
        meaning = rate_meaning(case, run)
        measured["rate_meaning"] = meaning
        rate = layer.native_rate if meaning == "drop" else 1.0 - layer.native_rate
        return [(replace(case, layer=replace(layer, rate=rate, native_rate=None)), measured)]
    return [(case, measured)]


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

def explanations(result: dict[str, Any]) -> list[dict[str, str]]:
    """The smallest sets of changed conventions under which the reference, with the measured
    values, reproduces every observation of the case: ``[{}]`` for a case that conforms,
    the verdict's ``explained_by`` (and ``also_explained_by``) otherwise, none when nothing
    reproduces the run."""
    if result.get("verdict") == "conforms":
        return [{}]
    if "explained_by" in result:
        return [result["explained_by"], *result.get("also_explained_by", [])]
    return []


def _reproduced(result: dict[str, Any], what: str) -> dict[str, str]:
    """The explanation the measured values hold under; NotMeasurable when there is none."""
    found = explanations(result)
    if not found:
        raise NotMeasurable(f"the reference with {what} reproduces no combination of known "
                            f"conventions' observations of this case ({result.get('verdict')})")
    return found[0]


def _which(key: str) -> Callable[[Case, CaseRun, dict[str, Any]], str]:
    """The value of convention ``key`` in the joint explanation of the run, when no other
    value reproduces the run with every other convention held at its inferred value."""
    def estimate(case: Case, run: CaseRun, result: dict[str, Any]) -> str:
        if run.status != "ok":
            raise NotMeasurable(f"the case gave {run.status}")
        found = explanations(result)
        if not found:
            raise NotMeasurable("no combination of known conventions reproduces the observations")
        own = conventions_settings(case)
        values = {changed.get(key, own[key]) for changed in found}
        if len(values) > 1:
            raise NotMeasurable(f"the observations fit {' and '.join(sorted(values))} alike")
        held = {**case.reference, **found[0]}
        fits = [value for value in CONVENTION_VALUES[key] if reproduces(case, run, {**held, key: value})]
        if len(fits) > 1:
            raise NotMeasurable(f"the observations fit {' and '.join(fits)} alike")
        return fits[0] if fits else values.pop()
    return estimate


def conventions_settings(case: Case) -> dict[str, str]:
    """Every convention of the case's layer kind, as the case states it."""
    return settings_of(case.layer, case.reference)


def _not_updating(changed: dict[str, str]) -> bool:
    return changed.get("bn.running_update", "as_specified") != "as_specified"


def _measured_weight(result: dict[str, Any]) -> float:
    weight = result.get("measured", {}).get("update_weight")
    if weight is None:
        raise NotMeasurable("needs a probe with update_weight: default or native_momentum")
    if abs(weight) < 1e-9:
        raise NotMeasurable("the running statistics did not move in training: a weight of 0 and "
                            "no update at all (bn.running_update=none) are the same observation")
    changed = _reproduced(result, f"update weight {weight:.4g}")
    if _not_updating(changed):
        raise NotMeasurable(f"the running statistics follow no update weight "
                            f"(bn.running_update={changed['bn.running_update']})")
    return float(weight)


def _default_update_weight(case: Case, run: CaseRun, result: dict[str, Any]) -> float:
    return significant(_measured_weight(result))


def _default_eps(case: Case, run: CaseRun, result: dict[str, Any]) -> float:
    eps = result.get("measured", {}).get("eps")
    if eps is None:
        raise NotMeasurable("needs a probe with eps: default")
    _reproduced(result, f"eps {eps:.2g}")
    return significant(eps, 2)


def _momentum_weights(case: Case, run: CaseRun, result: dict[str, Any]) -> str:
    assert isinstance(case.layer, BatchNormSpec)
    native = result.get("native_momentum")
    if native is None:
        raise NotMeasurable("needs a native_momentum probe")
    weight = _measured_weight(result)
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


def _feature(*feature_keys: str, labels: tuple[str, str] = ("supported", "differs")
             ) -> Callable[[Case, CaseRun, dict[str, Any]], str]:
    """Whether the framework has the feature the case exercises, and if so whether it behaves
    as specified: ``supported`` (``labels[0]``) when the case conforms, or differs only as
    conventions other than the feature's own (``feature_keys``) explain, read jointly like
    every fact; ``differs`` (``labels[1]``) otherwise."""
    def estimate(case: Case, run: CaseRun, result: dict[str, Any]) -> str:
        verdict = result["verdict"]
        if verdict in ("unsupported", "error"):
            return str(verdict)
        if verdict == "skipped":
            raise NotMeasurable("the case was skipped")
        found = explanations(result)
        if found and not any(k in changed for changed in found for k in feature_keys):
            return labels[0]
        return labels[1]
    return estimate


def _which_if_supported(key: str) -> Callable[[Case, CaseRun, dict[str, Any]], str]:
    """``_which(key)``, or ``unsupported`` where the framework has no such feature."""
    which = _which(key)

    def estimate(case: Case, run: CaseRun, result: dict[str, Any]) -> str:
        return "unsupported" if result.get("verdict") == "unsupported" else which(case, run, result)
    return estimate


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
    _reproduced(result, f"the native rate read as the probability to {meaning}")
    return str(meaning)


FACTS: dict[str, Callable[[Case, CaseRun, dict[str, Any]], Any]] = {
    "bn.default_update_weight": _default_update_weight,
    "bn.default_eps": _default_eps,
    "bn.momentum_weights": _momentum_weights,
    "bn.running_var_estimator.rank2": _which("bn.running_var_estimator"),
    "bn.running_var_estimator.rank3": _which("bn.running_var_estimator"),
    "bn.running_var_estimator.rank4": _which("bn.running_var_estimator"),
    "bn.running_var_estimator.rank5": _which("bn.running_var_estimator"),
    "bn.eps_placement": _which("bn.eps_placement"),
    "bn.normalization_var_estimator": _which("bn.normalization_var_estimator"),
    "bn.train_statistics": _which("bn.train_statistics"),
    "bn.eval_statistics": _which("bn.eval_statistics"),
    "bn.eval_updates": _which("bn.eval_updates"),
    "bn.single_value_per_channel_train": _single_value,
    "bn.cumulative_average": _feature("bn.running_update", "bn.momentum_weights"),
    "bn.batch_count": _feature("bn.running_update"),
    "bn.no_running_stats": _feature("bn.eval_statistics", "bn.train_statistics", "bn.eval_updates"),
    "dropout.rate_meaning": _rate_meaning,
    "dropout.train_scale": _which("dropout.train_scale"),
    "dropout.eval": _which("dropout.eval"),
    "dropout.rate_one_train": _rate_one,
    "dropout.downscale_mode": _feature("dropout.train_scale", "dropout.eval"),
    "dropout.channel": _feature(),
    # models: each convention read from the case that exercises it, per entry point where
    # the framework's behaviour may differ between them
    "model.eval_propagates": _which("model.eval_propagates"),
    "model.freeze_survives_mode_switch": _which_if_supported("model.freeze_survives_mode_switch"),
    # a framework has a call site with a flag on its functional forms (PyTorch, Paddle) or on
    # its layer objects (Keras): the case for the other kind is unsupported, and a measured
    # value from the first outweighs it (conventions.rows)
    "model.call_site_flag.call": _which_if_supported("model.call_site_flag"),
    "model.call_site_flag.inference": _which_if_supported("model.call_site_flag"),
    "model.call_site_flag.predict": _which_if_supported("model.call_site_flag"),
    "model.call_site_flag.train_step": _which_if_supported("model.call_site_flag"),
    "model.call_mode": _which("model.call_mode"),
    "model.override_respected": _which("model.override_respected"),
    "model.predict_switches": _which_if_supported("model.predict_switches"),
    "model.freeze_scope": _which_if_supported("model.freeze_scope"),
    "model.call_flag_scope": _which("model.call_flag_scope"),
    "model.train_step_mode": _which("model.train_step_mode"),
    "model.mc_dropout": _feature("dropout.eval", "bn.eval_updates", "model.eval_propagates",
                                 labels=("works", "broken")),
    "functional.dropout.default_training": _which_if_supported("functional.dropout_default_training"),
    "functional.batch_norm.default_training": _which_if_supported("functional.batch_norm_default_training"),
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
