"""One verdict per case, framework and device, and the convention that explains it.

``conforms``: every observed quantity matches the spec within tolerance.
``convention``: it differs, and the reference re-run under conventions that the framework
documents reproduces the observation (the verdict names them and their fixes).
``divergence``: it differs and no documented convention explains it; where some
alternative convention reproduces it anyway, the verdict says which (``explained_by``).
``error``: the framework raised where the spec expects values. ``expected-error``: it
raised where the spec expects it to. ``unsupported``: the framework has no such feature.
``skipped``: the device or framework is missing.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from typing import Any

from conformance import facts
from conformance.checks import QuantityCheck, compare, reference_run, reproduces
from conformance.model import BatchNormSpec, Case
from conformance.program import CaseRun
from conformance.reference import (
    CONVENTION_VALUES,
    conventions_for,
    flatten_conventions,
)

VERDICTS = ("conforms", "convention", "divergence", "error", "expected-error", "unsupported", "skipped")
FAILING = ("divergence", "error")


def judge(case: Case, run: CaseRun, documented: dict[str, dict[str, str]]) -> dict[str, Any]:
    """The result entry of one case: verdict, checks, errors, explanation, and the facts of
    the conventions table that the case measures."""
    result: dict[str, Any] = {"id": case.id, "file": case.file, "line": case.line,
                              "areas": list(case.areas), "duration_s": round(run.duration_s, 6),
                              "program": case.program()}
    if isinstance(case.layer, BatchNormSpec) and case.layer.native_momentum is not None:
        result["native_momentum"] = case.layer.native_momentum
    resolved = case
    if run.status == "ok":
        try:
            resolved, result["measured"] = facts.resolve(case, run)
        except facts.NotMeasurable as exc:
            return {**result, "verdict": "error", "error": {"kind": "measurement", "step": 0},
                    "message": f"cannot measure the framework's own parameter values: {exc}"}
    result.update(_verdict(resolved, run, documented, result))
    if case.measures:
        result["facts"] = facts.measure(resolved, run, result)
    return result


def _verdict(case: Case, run: CaseRun, documented: dict[str, dict[str, str]],
             result: dict[str, Any]) -> dict[str, Any]:
    if run.status in ("skipped", "unsupported"):
        return {**result, "verdict": run.status, "message": run.message}
    if run.status == "error":
        result["error"] = {"kind": run.error_kind, "step": run.error_step, "message": run.message}
    if case.expect_error:
        if run.status == "error":
            return {**result, "verdict": "expected-error", "message": run.message}
        return {**result, "verdict": "divergence",
                "message": "expected the framework to refuse this program; it returned values"}
    expected = reference_run(case, case.reference)
    checks = compare(case, run, case.reference, expected)
    result["checks"] = [c.as_dict() for c in checks]
    result["series"] = statistics_series(case, run, expected)
    failed = [c for c in checks if not c.ok]
    hidden = sorted({c.quantity for c in checks if not c.observable})
    if hidden:
        result["unobservable"] = hidden
        if all(not c.observable for c in checks):
            return {**result, "verdict": "unsupported",
                    "message": f"the framework does not expose {', '.join(hidden)}"}
    if run.status == "error":
        prefix = f"{len(failed)} quantities already differed before; " if failed else ""
        return {**result, "verdict": "error", "message": prefix + run.message}
    if not failed:
        return {**result, "verdict": "conforms", "message": ""}
    result.update(_divergence_summary(failed))
    if case.literal and all(c.ok for c in compare(case, run, case.reference, use_literal=False)):
        return {**result, "verdict": "divergence",
                "message": f"{failed[0].describe()}; the observation matches the reference, so the "
                           "spec's literal value disagrees with the reference: check the spec"}
    matches = explain(case, run, documented)
    if not matches:
        return {**result, "verdict": "divergence",
                "message": f"{failed[0].describe()}; no known convention explains it"}
    explanation = matches[0]
    result["explained_by"] = explanation
    if len(matches) > 1:
        result["also_explained_by"] = matches[1:]
    names = ", ".join(f"{k}={v}" for k, v in explanation.items())
    if not _is_documented(explanation, documented):
        return {**result, "verdict": "divergence",
                "message": f"{failed[0].describe()}; the observation matches {names}, which the "
                           "framework does not document"}
    result["conventions"] = [{"fact": k, **documented[k]} for k in explanation]
    return {**result, "verdict": "convention",
            "message": f"matches the documented convention {names}"}


SERIES_QUANTITIES = ("running_mean", "running_var", "batch_count")


def statistics_series(case: Case, run: CaseRun, expected: CaseRun) -> dict[str, Any]:
    """Per-step values of the running statistics, observed and reference, for plots:
    ``{quantity: {"steps": [...], "observed": [[per channel]...], "reference": [...]}}``."""
    series: dict[str, Any] = {}
    for quantity in SERIES_QUANTITIES:
        steps = [i for i, got in enumerate(run.steps) if quantity in got]
        if not steps:
            continue
        series[quantity] = {
            "steps": steps,
            "observed": [run.steps[i][quantity].tolist() for i in steps],
            "reference": [expected.steps[i][quantity].tolist() if i < len(expected.steps)
                          and quantity in expected.steps[i] else None for i in steps],
        }
    return series


def _divergence_summary(failed: list[QuantityCheck]) -> dict[str, Any]:
    worst = max(failed, key=lambda c: (c.max_abs_error, -c.step))
    return {"first_divergent_step": min(c.step for c in failed),
            "divergent_quantities": sorted({c.quantity for c in failed}),
            "worst": worst.as_dict()}


def alternatives(case: Case) -> Iterator[dict[str, str]]:
    """Every other combination of conventions for the case's layer, fewest changes first."""
    prefix = "bn." if isinstance(case.layer, BatchNormSpec) else "dropout."
    keys = [k for k in CONVENTION_VALUES if k.startswith(prefix)]
    canonical = flatten_conventions(conventions_for(case.layer, {}))
    current = {k: case.reference.get(k, canonical[k]) for k in keys}
    combos = []
    for values in itertools.product(*(CONVENTION_VALUES[k] for k in keys)):
        chosen = dict(zip(keys, values))
        changed = {k: v for k, v in chosen.items() if v != current[k]}
        if changed:
            combos.append(changed)
    combos.sort(key=len)
    yield from combos


def explain(case: Case, run: CaseRun, documented: dict[str, dict[str, str]] | None = None
            ) -> list[dict[str, str]]:
    """Every smallest set of changed conventions under which the reference reproduces all
    observations of ``run`` (empty when none does). Works from observations alone; among
    equally small sets, those the framework documents come first."""
    documented = documented or {}
    matches: list[dict[str, str]] = []
    for changed in alternatives(case):
        if matches and len(changed) > len(matches[0]):
            break
        # a convention under which the reference cannot run the case (gradients it does
        # not derive, say) explains nothing
        if reproduces(case, run, {**case.reference, **changed}):
            matches.append(changed)
    return sorted(matches, key=lambda m: not _is_documented(m, documented))


def _is_documented(changed: dict[str, str], documented: dict[str, dict[str, str]]) -> bool:
    return all(documented.get(k, {}).get("value") == v for k, v in changed.items())
