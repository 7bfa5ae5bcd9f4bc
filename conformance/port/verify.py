"""``conformance port --verify``: the corpus's cases for the translated layer, run on the
source and the target with the translated parameters, compared with each other.

A case is relevant when its layer is of the same kind and has the same switches (channel
axis, frozen, running statistics, affine, update rule; for dropout the granularity, axis and
scaling) and it is not a probe, a refusal or a case with literal expectations; its update
weight and eps (dropout: rate) are replaced by the translated ones. Cases of the translated
rank come first; other ranks are used only when there is none.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from conformance.model import BatchNormSpec, Case, DropoutSpec
from conformance.port.catalog import LABEL
from conformance.port.neutral import Ported
from conformance.port.runs import FrameworkRuns, run_cases
from conformance.spec import load_paths

MATCH = {"batch_norm": ("channel_axis", "frozen", "running_stats", "affine", "update"),
         "dropout": ("granularity", "channel_axis", "scaling")}


def relevant_cases(ported: Ported, specs: Path) -> list[Case]:
    cases, errors = load_paths([specs])
    if errors:
        raise ValueError(f"the specs under {specs} do not load: {errors[0]}")
    layer = ported.layer
    chosen = []
    for case in cases:
        spec = case.layer
        if spec.kind != ported.kind or case.measures or case.expect_error or case.literal \
                or case.dtype not in ("float32", "float64"):
            continue
        if isinstance(spec, BatchNormSpec) and (spec.native_momentum is not None or spec.update_weight is None
                                                or spec.eps is None):
            continue
        if isinstance(spec, DropoutSpec) and (spec.native_rate is not None or spec.rate in (0.0, 1.0)):
            continue
        if any(getattr(spec, key) != layer.get(key, getattr(spec, key)) for key in MATCH[ported.kind]):
            continue
        chosen.append(_translated(case, ported))
    same_rank = [c for c in chosen if c.layer.rank == layer["rank"]]
    return same_rank or chosen


def _translated(case: Case, ported: Ported) -> Case:
    layer = ported.layer
    if isinstance(case.layer, BatchNormSpec):
        changes: dict[str, Any] = {"eps": layer["eps"]}
        if layer.get("update") != "cumulative":
            changes["update_weight"] = layer["update_weight"]
        return replace(case, layer=replace(case.layer, **changes))
    return replace(case, layer=replace(case.layer, rate=layer["rate"]))


@dataclass
class Comparison:
    case: Case
    verdicts: dict[str, str]
    differences: list[str]
    explained_by: str
    unexpected: bool


def compare(ported: Ported, target: str, cases: list[Case], runs: dict[str, FrameworkRuns]) -> list[Comparison]:
    source = ported.source
    out = []
    for case in cases:
        entries = {fw: runs[fw].entries.get(case.id, {}) for fw in (source, target)}
        verdicts = {fw: str(e.get("verdict", "-")) for fw, e in entries.items()}
        raw = [runs[fw].runs.get(case.id) for fw in (source, target)]
        differences = _differences(case, raw[0], raw[1]) if all(r is not None and r.status == "ok" for r in raw) else []
        explained = entries[target].get("explained_by") or entries[source].get("explained_by") or {}
        out.append(Comparison(case, verdicts, differences, ", ".join(f"{k}={v}" for k, v in explained.items()),
                              # a stale registry entry is no finding here: the parameters are the port's
                              any(e.get("unexpected") and not e.get("stale") for e in entries.values())))
    return out


def _differences(case: Case, a: Any, b: Any) -> list[str]:
    """Quantities on which the two frameworks' observations differ beyond the case's
    tolerance (dropout training outputs are random and left out), first step and size."""
    found: dict[str, tuple[int, float, float]] = {}
    for i, (sa, sb) in enumerate(zip(a.steps, b.steps)):
        step = case.steps[i]
        for quantity in sorted(set(sa) & set(sb)):
            if isinstance(case.layer, DropoutSpec) and step.mode == "train":
                continue
            x, y = np.asarray(sa[quantity], np.float64), np.asarray(sb[quantity], np.float64)
            if x.shape != y.shape:
                continue
            err = np.abs(x - y)
            if np.all(err <= case.tolerance.atol + case.tolerance.rtol * np.abs(x)):
                continue
            rel = float((err / np.maximum(np.abs(x), 1e-12)).max())
            first, worst, worst_rel = found.get(quantity, (i, 0.0, 0.0))
            found[quantity] = (first, max(worst, float(err.max())), max(worst_rel, rel))
    return [f"{q} from step {first}: max abs {abs_:.3g}, rel {rel:.3g}" for q, (first, abs_, rel) in found.items()]


def render(ported: Ported, target: str, comparisons: list[Comparison], runs: dict[str, FrameworkRuns]) -> str:
    source = ported.source
    versions = {fw: runs[fw].version or "?" for fw in (source, target)}
    lines = [(f"Verification: {len(comparisons)} corpus cases with the translated parameters, "
             f"{LABEL[source]} {versions[source]} and {LABEL[target]} {versions[target]} (cpu), compared "
             "with each other (within each case's tolerance)")]
    for fw in (source, target):
        if runs[fw].problem:
            lines.append(f"  {fw}: {runs[fw].problem}")
    width = max([len(c.case.id) for c in comparisons] + [4])
    for c in comparisons:
        head = f"  {c.case.id.ljust(width)}  {c.verdicts[source]:<12} {c.verdicts[target]:<12}"
        lines.append(head + ("  same" if not c.differences else "  differs") + ("  UNEXPECTED" if c.unexpected else ""))
        for d in c.differences:
            lines.append(f"      {d}")
        if c.differences and c.explained_by:
            lines.append(f"      explained by {c.explained_by}")
    same = sum(1 for c in comparisons if not c.differences)
    lines.append(f"  {same} of {len(comparisons)} cases agree; "
                 f"{len(comparisons) - same} differ (columns: {LABEL[source]} verdict, {LABEL[target]} verdict)")
    return "\n".join(lines)


def verify(ported: Ported, target: str, specs: Path, registry_dir: str | None) -> tuple[str, bool]:
    """The report text and whether anything was unexpected."""
    cases = relevant_cases(ported, specs)
    if not cases:
        return f"Verification: no corpus case under {specs} has this layer's switches", False
    runs = run_cases(cases, [ported.source, target], registry_dir)
    comparisons = compare(ported, target, cases, runs)
    problems = any(runs[fw].problem for fw in (ported.source, target))
    return render(ported, target, comparisons, runs), problems or any(c.unexpected for c in comparisons)
