"""The differences no argument fixes, for one (source, target) pair, each from measured
facts with its size on the small run and a compensation where one exists.

A residual is listed only when the two frameworks' measured facts differ; the sizes are
differences between the two frameworks' own observations of the same inputs, printed beside
what the numpy reference predicts under each framework's measured conventions.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from conformance.checks import reference_run
from conformance.model import BatchNormSpec
from conformance.port.catalog import LABEL
from conformance.port.measure import Measurement, channels
from conformance.port.neutral import MOMENTUM_WEIGHS, Ported
from conformance.program import CaseRun


@dataclass
class Residual:
    title: str
    facts: str
    size: list[str] = field(default_factory=list)
    compensation: str = ""
    warning: bool = False  # the measurement contradicts what the translation assumed
    numbers: dict[str, float] = field(default_factory=dict)  # the measured sizes, for programs


def residuals(ported: Ported, target: str, m: Measurement) -> list[Residual]:
    found = _warnings(ported, target, m)
    if ported.kind == "batch_norm":
        found += _batch_norm(ported, target, m)
    else:
        found += _dropout(ported, target, m)
    return found


def _pair(m: Measurement, source: str, target: str, fact: str) -> tuple[Any, Any, str]:
    a, b = m.fact(source, fact), m.fact(target, fact)
    cases = sorted({m.evidence(source, fact), m.evidence(target, fact)} - {""})
    line = f"{LABEL[source]} {a}, {LABEL[target]} {b} (`{fact}`, measured by {', '.join(cases) or '?'})"
    return a, b, line


def _differs(a: Any, b: Any) -> bool:
    return a is not None and b is not None and a != b


def _documented_fix(m: Measurement, framework: str, fact: str) -> str:
    runs = m.runs.get(framework)
    documented = runs.document.get("documented", {}) if runs else {}
    return str(documented.get(fact, {}).get("fix", ""))


def _warnings(ported: Ported, target: str, m: Measurement) -> list[Residual]:
    """Where a measured fact contradicts what the translator assumed."""
    out: list[Residual] = []
    if ported.kind != "batch_norm":
        return out
    for fw in (ported.source, target):
        weighs = m.fact(fw, "bn.momentum_weights")
        if weighs is not None and weighs != MOMENTUM_WEIGHS[fw]:
            out.append(Residual(f"{LABEL[fw]}'s momentum does not weigh the value the translation assumes",
                                f"measured `bn.momentum_weights` = {weighs}; assumed {MOMENTUM_WEIGHS[fw]}",
                                warning=True))
    entry = ported.call.entry
    defaults = {"eps": ("bn.default_eps", "eps" if ported.source == "torch" else "epsilon"),
                "momentum": ("bn.default_momentum", "momentum")}
    for fact, param in defaults.values():
        measured = m.fact(ported.source, fact)
        if param in entry.defaults() and param not in ported.call.given and measured is not None \
                and not np.isclose(float(measured), float(entry.defaults()[param]), rtol=1e-3):
            out.append(Residual(f"{LABEL[ported.source]}'s default {param} is not what the translation read",
                                f"measured `{fact}` = {measured}; the catalog says "
                                f"{entry.defaults()[param]}: pass {param} explicitly", warning=True))
    return out


# --- batch norm ----------------------------------------------------------------------------

def _batch_norm(ported: Ported, target: str, m: Measurement) -> list[Residual]:
    out = []
    source, rank = ported.source, ported.layer["rank"]
    fact = f"bn.running_var_estimator.rank{rank}"
    a, b, line = _pair(m, source, target, fact)
    if _differs(a, b):
        fixes = [_documented_fix(m, fw, "bn.running_var_estimator") for fw in (target, source)]
        fix = next((f.rstrip(". ") for f in fixes if f), "")
        numbers: dict[str, float] = {}
        out.append(Residual("which batch variance feeds the running variance", line,
                            _estimator_size(ported, target, m, a, b, numbers),
                            (fix + ". " if fix else "") + "For a trained state, conformance.port.convert_state("
                            "..., variance='adjust', count=m) converts the stored value.", numbers=numbers))
    a, b, line = _pair(m, source, target, "bn.single_value_per_channel_train")
    if _differs(a, b):
        out.append(Residual("a training batch with one value per channel (a batch of one, no spatial extent)",
                            line, _single_value_size(ported, target, m),
                            "no argument changes it: keep every training batch above one value per channel "
                            "(drop_last=True in the data loader, batch size >= 2 for (N, C) inputs), or run "
                            "such a batch in eval mode"))
    a, b, line = _pair(m, source, target, "bn.batch_count")
    if _differs(a, b):
        out.append(Residual("a counter of training batches (PyTorch's num_batches_tracked)", line,
                            _counter_size(ported, target, m),
                            "count the batches yourself if you need them; convert_state(..., steps=k) fills "
                            "num_batches_tracked when converting to PyTorch"))
    for fact, title in (("bn.cumulative_average", "the cumulative average (PyTorch momentum=None)"),
                        ("bn.no_running_stats", "a layer without running statistics")):
        if fact in _relevant(ported):
            a, b, line = _pair(m, source, target, fact)
            if _differs(a, b):
                out.append(Residual(title, line, _status_size(target, m),
                                    "see the emulation recipe above"))
    return out


def _relevant(ported: Ported) -> list[str]:
    from conformance.port.measure import relevant_facts

    return relevant_facts(ported)


def _runs(m: Measurement, source: str, target: str, name: str = "small_run") -> tuple[CaseRun | None, CaseRun | None]:
    return m.run(source, name), m.run(target, name)


def _status_size(target: str, m: Measurement, name: str = "small_run") -> list[str]:
    run = m.run(target, name)
    if run is None:
        return ["not measured: the small run did not run on " + target]
    if run.status != "ok":
        return [f"small run: {LABEL[target]} answered {run.status}: {run.message[:200]}"]
    return [f"small run: {LABEL[target]} ran it"]


def _estimator_size(ported: Ported, target: str, m: Measurement, src_est: Any, dst_est: Any,
                    numbers: dict[str, float]) -> list[str]:
    case = m.cases.get("small_run")
    src, dst = _runs(m, ported.source, target)
    if case is None or src is None or dst is None:
        return ["size not measured: the small run did not run on both frameworks"]
    failed = [f"{LABEL[fw]} answered {r.status} ({r.message.split(' (at ')[0][:160]})"
              for fw, r in ((ported.source, src), (target, dst)) if r.status != "ok"]
    if failed:
        return ["size not measured: the translated layer does not run: " + "; ".join(failed)]
    last = max(i for i, s in enumerate(case.steps) if s.mode == "train" and s.action == "forward")
    x = case.inputs[case.steps[0].input]
    count = x.size // channels(ported)
    ratio = dst.steps[last]["running_var"] / src.steps[last]["running_var"]
    predicted = [reference_run(case, {"bn.running_var_estimator": est}) for est in (src_est, dst_est)]
    want = predicted[1].steps[last]["running_var"] / predicted[0].steps[last]["running_var"]
    single = (count - 1) / count if dst_est == "biased" else count / (count - 1)
    numbers.update(m=count, ratio_min=float(ratio.min()), ratio_max=float(ratio.max()),
                   predicted_min=float(want.min()), predicted_max=float(want.max()), one_batch=single)
    lines = [(f"small run ({x.shape} inputs, m = {count} values per channel, {last + 1} training steps, "
             f"update_weight {ported.layer.get('update_weight', 'cumulative')}): running_var "
             f"{LABEL[target]}/{LABEL[ported.source]} = {_range(ratio)} per channel (reference under the "
             f"measured estimators: {_range(want)}; one batch alone: {'(m-1)/m' if dst_est == 'biased' else 'm/(m-1)'}"
             f" = {single:.4f})")]
    mean_diff = float(np.max(np.abs(dst.steps[last]["running_mean"] - src.steps[last]["running_mean"])))
    lines.append(f"running_mean agrees: max |difference| {mean_diff:.2g}")
    evaluated = [i for i, s in enumerate(case.steps) if s.mode == "eval"]
    if evaluated:
        i = evaluated[-1]
        diff = np.abs(dst.steps[i]["output"] - src.steps[i]["output"])
        numbers["eval_output_max_abs"] = float(diff.max())
        lines.append(f"eval output afterwards: max |difference| {float(diff.max()):.3g} (relative "
                     f"{float((diff / np.maximum(np.abs(src.steps[i]['output']), 1e-12)).max()):.2g})")
    return lines


def _range(values: np.ndarray) -> str:
    lo, hi = float(np.min(values)), float(np.max(values))
    return f"{lo:.4f}" if abs(hi - lo) < 5e-5 else f"{lo:.4f}..{hi:.4f}"


def _single_value_size(ported: Ported, target: str, m: Measurement) -> list[str]:
    case = m.cases.get("one_value_per_channel")
    if case is None:
        return []
    x = case.inputs["a"].astype(np.float64)
    layer = case.layer
    assert isinstance(layer, BatchNormSpec)
    shift = np.asarray(layer.shift).reshape(-1)
    lines = []
    for fw in (ported.source, target):
        run = m.run(fw, "one_value_per_channel")
        if run is None:
            continue
        if run.status != "ok":
            lines.append(f"{LABEL[fw]}: {run.status}: {run.message.split(' (at ')[0][:160]}")
            continue
        y = run.steps[0]["output"].reshape(-1)
        lines.append(f"{LABEL[fw]}: output {np.round(y, 4).tolist()} for input {np.round(x.reshape(-1), 4).tolist()} "
                     f"(shift {shift.tolist()}; max |y - x| {float(np.abs(y - x.reshape(-1)).max()):.3g}, "
                     f"max |y - shift| {float(np.abs(y - shift).max()):.3g})")
    return lines


def _counter_size(ported: Ported, target: str, m: Measurement) -> list[str]:
    lines = []
    for fw in (ported.source, target):
        run = m.run(fw)
        if run is None or run.status != "ok":
            continue
        counts = [s.get("batch_count") for s in run.steps]
        seen = [int(c) for c in counts if c is not None]
        lines.append(f"{LABEL[fw]}: " + (f"batch_count after each step {seen}" if seen else "no counter"))
    return lines


# --- dropout -------------------------------------------------------------------------------

def _dropout(ported: Ported, target: str, m: Measurement) -> list[Residual]:
    out = [Residual("which elements are dropped", "each framework draws its masks from its own generator",
                    _mask_size(ported, target, m),
                    "no seed makes two frameworks draw the same mask: to compare them, inject the masks "
                    "(multiply by a mask you draw, as `conformance port --demo` does) or disable dropout")]
    for fact in _relevant(ported):
        a, b, line = _pair(m, ported.source, target, fact)
        if _differs(a, b):
            out.append(Residual(f"`{fact}`", line, _status_size(target, m), "see the notes above"))
    return out


def _mask_size(ported: Ported, target: str, m: Measurement) -> list[str]:
    case = m.cases.get("small_run")
    src, dst = _runs(m, ported.source, target)
    if case is None or src is None or dst is None:
        return []
    if src.status != "ok" or dst.status != "ok":
        return [f"{LABEL[fw]}: {r.status}: {r.message[:160]}" for fw, r in ((ported.source, src), (target, dst))
                if r.status != "ok"]
    x = case.inputs["x"].astype(np.float64)
    kept = [s.steps[0]["output"] != 0 for s in (src, dst)]
    p = float(ported.layer["rate"])
    scales = [float(np.median(s.steps[0]["output"][k] / x[k])) if k.any() else 0.0 for s, k in zip((src, dst), kept)]
    agree = float(np.mean(kept[0] == kept[1]))
    eval_diff = float(np.abs(src.steps[1]["output"] - dst.steps[1]["output"]).max())
    return [(f"small run ({x.shape}, rate {p:g}, seed 0 in both): the masks agree on {agree:.1%} of the elements "
            f"(independent masks: {p * p + (1 - p) * (1 - p):.1%}); kept share {LABEL[ported.source]} "
            f"{kept[0].mean():.3f}, {LABEL[target]} {kept[1].mean():.3f}; kept values scaled by "
            f"{scales[0]:.4g} and {scales[1]:.4g}; eval outputs differ by at most {eval_diff:.2g}")]
