"""Does a spec agree with itself? Literal expected values must be what the reference gives
under the case's own parameters and ``reference:`` conventions; otherwise no verdict about a
framework can be sound (the literal says one thing, the parameters another, and a framework
matching either would be judged against the wrong one).

Where they disagree, the literal values are read as if they were a framework's observations,
to say what they do imply: conventions found by the same search that explains a framework's
run (``explain.explain``), and the update weight and eps recovered from them the way
``facts`` measures a framework's defaults, each kept only when the reference re-run with it
reproduces the literal values.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from conformance.checks import QuantityCheck, check_one, reference_run, reproduces
from conformance.explain import explain
from conformance.model import BatchNormSpec, Case, DropoutSpec
from conformance.program import CaseRun
from conformance.reference import channel_axis_index
from conformance.tree import ModelSpec


def checkable(case: Case) -> bool:
    """Literal values can be checked before any run: the layer's parameters are neutral
    values, not framework defaults or native arguments measured from a run."""
    layer = case.layer
    if isinstance(layer, ModelSpec):  # after a random dropout leaf, only a run's masks tell
        return not layer.has("dropout")
    if isinstance(layer, BatchNormSpec):
        return layer.update_weight is not None and layer.eps is not None and layer.native_momentum is None
    return not isinstance(layer, DropoutSpec) or layer.native_rate is None


def contradictions(case: Case, expected: CaseRun | None = None) -> list[QuantityCheck]:
    """The literal values (one check each, in step order) that the reference does not give
    under the case's own parameters and conventions."""
    if not case.literal:
        return []
    expected = expected or reference_run(case, case.reference)
    found = []
    for (index, quantity), value in sorted(case.literal.items()):
        check = check_one(case, index, quantity, value, expected, case.reference, use_literal=False)
        if not check.ok:
            found.append(check)
    return found


def describe(check: QuantityCheck) -> str:
    """A contradiction in words: the literal value against what the reference gives."""
    if check.note:
        return check.note
    at = f" at {tuple(check.worst_index)}" if check.worst_index is not None else ""
    return (f"literal {check.observed!r}{at} where the reference gives {check.expected!r}: "
            f"error {check.max_abs_error:.3g} (relative {check.max_rel_error:.3g})")


def as_observations(case: Case) -> CaseRun:
    """The literal values as a run that observed them (nothing else) at their steps."""
    last = max(index for index, _ in case.literal)
    steps: list[dict[str, np.ndarray]] = [{} for _ in range(last + 1)]
    for (index, quantity), value in case.literal.items():
        steps[index][quantity] = value
    return CaseRun(status="ok", steps=steps)


def implied(case: Case) -> list[str]:
    """What the literal values imply where the case's own parameters do not give them: the
    conventions and parameter values under which the reference reproduces them, in words."""
    observed = as_observations(case)  # the checks of a search ignore literal values
    hints = []
    if isinstance(case.layer, BatchNormSpec):
        hints += _implied_update_weight(case, observed) + _implied_eps(case, observed)
    hints += [f"they match {_names(found)} (state it under reference:)"
              for found in explain(case, observed)[:2]]
    return hints


def _names(changed: dict[str, str]) -> str:
    return ", ".join(f"{k}={v}" for k, v in changed.items())


def _first_forward_with(case: Case, quantity: str, mode: str) -> int | None:
    for (index, q) in sorted(case.literal):
        step = case.steps[index]
        if q == quantity and step.action == "forward" and step.mode == mode:
            return index
    return None


def _reproducing(case: Case, observed: CaseRun) -> str:
    """'' when the reference reproduces ``observed`` under the case's conventions, else the
    smallest convention change that makes it (or None)."""
    if reproduces(case, observed, case.reference):
        return ""
    found = explain(case, observed)
    return f" with {_names(found[0])}" if found else "none"


def _implied_update_weight(case: Case, observed: CaseRun) -> list[str]:
    """w = median over channels of (r_k - r_{k-1}) / (mu_B - r_{k-1}) at the first training step
    whose running mean is given, r_{k-1} the reference's running mean before it."""
    layer = case.layer
    assert isinstance(layer, BatchNormSpec)
    index = _first_forward_with(case, "running_mean", "train")
    if index is None or layer.update == "cumulative" or layer.frozen or not layer.running_stats:
        return []
    before = _state_before(case, index)
    if before is None:
        return []
    x = case.inputs[case.steps[index].input].astype(np.float64)
    axis = channel_axis_index(layer.rank, layer.channel_axis)
    mean = x.mean(axis=tuple(a for a in range(layer.rank) if a != axis))
    usable = np.abs(mean - before) > 1e-6
    if not usable.any():
        return []
    literal = case.literal[(index, "running_mean")]
    weight = float(np.median((literal[usable] - before[usable]) / (mean[usable] - before[usable])))
    weight = float(f"{weight:.6g}")
    assert layer.update_weight is not None
    if not 0.0 <= weight <= 1.0 or abs(weight - layer.update_weight) < 1e-9:
        return []
    how = _reproducing(replace(case, layer=replace(layer, update_weight=weight)), observed)
    if how == "none":
        return []
    hint = (f"the literal running_mean at step {index} matches update_weight {weight:g}{how}; "
            f"the spec says {layer.update_weight:g}")
    if abs(weight - (1.0 - layer.update_weight)) < 1e-6:
        hint += (" (update_weight is the weight of the NEW batch statistic; the spec's value looks "
                 "like a momentum that weighs the old value, as Paddle's and Keras' do: "
                 "update_weight = 1 - momentum)")
    return [hint]


def _state_before(case: Case, index: int) -> np.ndarray | None:
    """The reference's running mean just before step ``index``."""
    if index == 0:
        layer = case.layer
        assert isinstance(layer, BatchNormSpec)
        return (np.zeros(layer.num_features) if layer.running_mean is None
                else np.asarray(layer.running_mean, np.float64))
    probe = replace(case, steps=tuple(replace(s, observe=("running_mean",)) if i == index - 1 else s
                                      for i, s in enumerate(case.steps[:index])), literal={},
                    literal_match={})
    run = reference_run(probe, case.reference)
    if run.status != "ok" or len(run.steps) < index or "running_mean" not in run.steps[index - 1]:
        return None
    return run.steps[index - 1]["running_mean"]


def _implied_eps(case: Case, observed: CaseRun) -> list[str]:
    """eps = median of ((x - mu_B) / x_hat)^2 - sigma2_B at the first training step whose
    output is given (x_hat = (y - shift) / scale), for an unfrozen layer."""
    layer = case.layer
    assert isinstance(layer, BatchNormSpec)
    index = _first_forward_with(case, "output", "train")
    if index is None or layer.frozen:
        return []
    x = case.inputs[case.steps[index].input].astype(np.float64)
    axis = channel_axis_index(layer.rank, layer.channel_axis)
    reduce = tuple(a for a in range(layer.rank) if a != axis)
    shape = tuple(layer.num_features if a == axis else 1 for a in range(layer.rank))
    scale = np.ones(layer.num_features) if layer.scale is None or not layer.affine else layer.scale
    shift = np.zeros(layer.num_features) if layer.shift is None or not layer.affine else layer.shift
    x_hat = (case.literal[(index, "output")] - shift.reshape(shape)) / scale.reshape(shape)
    centred = x - x.mean(axis=reduce, keepdims=True)
    usable = np.abs(x_hat) > 0.1
    if not usable.any():
        return []
    estimate = (centred / np.where(usable, x_hat, 1.0)) ** 2 - x.var(axis=reduce, keepdims=True)
    eps = float(f"{float(np.median(estimate[usable])):.2g}")
    assert layer.eps is not None
    if eps <= 0 or abs(eps - layer.eps) <= 1e-3 * layer.eps:
        return []
    how = _reproducing(replace(case, layer=replace(layer, eps=eps)), observed)
    if how == "none":
        return []
    return [f"the literal output at step {index} matches eps {eps:g}{how}; the spec says {layer.eps:g}"]
