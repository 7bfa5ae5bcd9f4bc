"""One verdict per case, framework and device, and the convention that explains it.

``conforms``: every observed quantity matches the spec within tolerance.
``convention``: it differs, and the reference re-run under conventions that the framework
documents reproduces the observation (the verdict names them and their fixes).
``divergence``: it differs and no documented convention explains it; where some
alternative conventions reproduce it anyway, the verdict says which (``explained_by``, with
the documented ones among them in ``conventions``), and where none does, what fits partly
(``partly_explained_by``). A case whose literal values the reference does not give under
its own parameters is a divergence whatever the framework does: the spec contradicts itself
(a loaded spec cannot: ``validate`` refuses it; this catches values measured from the run).
``error``: the framework raised where the spec expects values. ``expected-error``: it
raised where the spec expects it to. ``unsupported``: the framework has no such feature.
``skipped``: the device or framework is missing.
"""

from __future__ import annotations

from typing import Any

from conformance import consistency, facts
from conformance.checks import QuantityCheck, compare, reference_run
from conformance.explain import (
    MAX_CHANGES,
    ReferenceRuns,
    alternatives,
    documented_changes,
    explain,
    is_documented,
    partial_fits,
)
from conformance.model import BatchNormSpec, Case
from conformance.program import CaseRun

__all__ = ["FAILING", "VERDICTS", "alternatives", "explain", "judge", "statistics_series"]

VERDICTS = ("conforms", "convention", "divergence", "error", "expected-error", "unsupported", "skipped")
FAILING = ("divergence", "error")


def judge(case: Case, run: CaseRun, documented: dict[str, dict[str, str]],
          thorough: bool = True) -> dict[str, Any]:
    """The result entry of one case: verdict, checks, errors, explanation, and the facts of
    the conventions table that the case measures. Not ``thorough``: a run nothing documented
    explains is searched for single changes only, with no partial fits (a divergence the
    registry expects already says why)."""
    result: dict[str, Any] = {"id": case.id, "file": case.file, "line": case.line,
                              "areas": list(case.areas), "duration_s": round(run.duration_s, 6),
                              "program": case.program()}
    if isinstance(case.layer, BatchNormSpec) and case.layer.native_momentum is not None:
        result["native_momentum"] = case.layer.native_momentum
    resolved = case
    if run.status != "ok":
        result.update(_verdict(case, run, documented, result, thorough))
    else:
        try:
            candidates = facts.resolutions(case, run)
        except facts.NotMeasurable as exc:
            unmeasured = {fact: str(exc) for fact in case.measures}
            return {**result, "verdict": "error", "error": {"kind": "measurement", "step": 0},
                    "message": f"cannot measure the framework's own parameter values: {exc}",
                    **({"unmeasured": unmeasured} if unmeasured else {})}
        # the first reading of the measured values under which the reference reproduces the
        # whole run (conforming, or explained); else the likeliest one
        first = None
        for reading, measured in candidates:
            entry = _verdict(reading, run, documented, {**result, "measured": measured}, thorough)
            first = first or (reading, entry)
            if facts.explanations(entry):
                first = (reading, entry)
                break
        assert first is not None  # resolutions() gives at least one reading
        resolved, result = first
    if case.measures:
        result["facts"] = facts.measure(resolved, run, result)
    return result


def _verdict(case: Case, run: CaseRun, documented: dict[str, dict[str, str]],
             result: dict[str, Any], thorough: bool = True) -> dict[str, Any]:
    if run.status in ("skipped", "unsupported"):
        return {**result, "verdict": run.status, "message": run.message}
    if run.status == "error":
        result["error"] = {"kind": run.error_kind, "step": run.error_step, "message": run.message}
    if case.expect_error:
        if run.status == "error":
            return {**result, "verdict": "expected-error", "message": run.message}
        return {**result, "verdict": "divergence",
                "message": "expected the framework to refuse this program; it returned values"}
    expected = reference_run(case, case.reference, run)
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
    wrong = consistency.contradictions(case, expected)
    if wrong:
        return {**result, "verdict": "divergence",
                "message": f"{failed[0].describe()}; but the spec's literal {wrong[0].quantity} at "
                           f"step {wrong[0].step} is not what the reference gives with the case's "
                           f"parameters{_measured_text(result)}, so no convention can be judged "
                           "against it: check the spec"}
    runs = ReferenceRuns(case, own=expected, observed=run)
    # a case that measures facts needs every smallest explanation, to tell an ambiguous one
    matches = explain(case, run, documented, runs, exhaustive=bool(case.measures),
                      max_changes=MAX_CHANGES if thorough else 1)
    if not matches or not is_documented(matches[0], documented):
        residual, left = _residual(case, run, documented, runs, failed)
        if residual:
            result["residual"] = residual
            headline = f"{left[0].describe()} (left after the documented {_names(residual['after'])})"
        else:
            headline = failed[0].describe()
    if not matches:
        if thorough:
            result["partly_explained_by"] = partial_fits(case, run, runs=runs)
        return {**result, "verdict": "divergence",
                "message": f"{headline}; no known convention explains it"}
    explanation = matches[0]
    result["explained_by"] = explanation
    if len(matches) > 1:
        result["also_explained_by"] = matches[1:]
    known = {k: v for k, v in explanation.items() if is_documented({k: v}, documented)}
    if known:
        result["conventions"] = [{"fact": k, **documented[k]} for k in known]
    names = _names(explanation)
    if len(known) < len(explanation):
        unknown = ", ".join(f"{k}={v}" for k, v in explanation.items() if k not in known)
        together = (f" (documented: {', '.join(f'{k}={v}' for k, v in known.items())})"
                    if known else "")
        return {**result, "verdict": "divergence",
                "message": f"{headline}; the observation matches {names}{together}; "
                           f"the framework does not document {unknown}"}
    return {**result, "verdict": "convention",
            "message": f"matches the documented convention {names}"}


def _names(changes: dict[str, str]) -> str:
    return ", ".join(f"{k}={v}" for k, v in changes.items())


def _residual(case: Case, run: CaseRun, documented: dict[str, dict[str, str]], runs: ReferenceRuns,
              failed: list[QuantityCheck]) -> tuple[dict[str, Any] | None, list[QuantityCheck]]:
    """What still differs when the reference runs under every convention the framework
    documents for the case (``documented_changes``), where that explains part of the
    difference: fewer quantities differ, or the worst error shrinks. Then the finding is
    about what is left (a float precision error, say), not about the documented part (a
    variance estimator). ``(None, [])`` when the documentation explains nothing of it."""
    changes = documented_changes(case, documented)
    if not changes:
        return None, []
    predicted = runs.under(changes)
    if predicted.status != "ok":
        return None, []
    left = [c for c in compare(case, run, {**case.reference, **changes}, predicted, use_literal=False)
            if not c.ok]
    before = max(c.max_abs_error for c in failed)
    after = max((c.max_abs_error for c in left), default=0.0)
    if not left or (len(left) >= len(failed) and not after < before):
        return None, []
    left.sort(key=lambda c: (c.step, c.quantity))
    summary = _divergence_summary(left)
    return {"after": changes, **summary}, left


def _measured_text(result: dict[str, Any]) -> str:
    measured = result.get("measured", {})
    if not measured:
        return ""
    return " (measured from this run: " + ", ".join(f"{k} {v:.4g}" if isinstance(v, float) else
                                                   f"{k} {v}" for k, v in measured.items()) + ")"


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
