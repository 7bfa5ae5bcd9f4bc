"""What is measured for a translation: the facts of the conventions table that concern it
(from results files, or by running the probe cases now) and a small run of the translated
layer itself on the source and the target frameworks.

Sizes come from that run: the same generated inputs go through both frameworks' workers,
and their observations are compared with each other (running statistics, eval outputs,
dropout masks). The numpy reference under each framework's measured conventions gives the
prediction printed beside each measured number.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from conformance import conventions
from conformance.model import Case
from conformance.port.neutral import Ported
from conformance.port.parse import PortError
from conformance.port.runs import FrameworkRuns, run_cases
from conformance.report.merge import load_runs
from conformance.spec import load_paths, load_text

SMALL_RUN = Path("port/translated.yaml")  # gives the generated cases ids port/translated::<name>
BATCH = 8  # samples per generated batch-norm input; m = 8 x 2^(rank - 2) values per channel
SPEC_KEYS = {"batch_norm": ("kind", "channel_axis", "update", "update_weight", "eps", "affine", "running_stats",
                            "frozen", "trainable"),
             "dropout": ("kind", "rate", "granularity", "channel_axis", "scaling")}


def relevant_facts(ported: Ported) -> list[str]:
    """The conventions-table facts a translation of ``ported`` depends on."""
    layer = ported.layer
    if ported.kind == "batch_norm":
        facts = ["bn.default_update_weight", "bn.default_eps", "bn.momentum_weights",
                 f"bn.running_var_estimator.rank{layer['rank']}", "bn.single_value_per_channel_train",
                 "bn.batch_count"]
        if layer.get("update") == "cumulative":
            facts.append("bn.cumulative_average")
        if not layer.get("running_stats", True):
            facts.append("bn.no_running_stats")
        return facts
    facts = ["dropout.rate_meaning", "dropout.train_scale", "dropout.eval"]
    if layer.get("granularity") == "channel":
        facts.append("dropout.channel")
    if layer.get("scaling") == "eval":
        facts.append("dropout.downscale_mode")
    if float(layer["rate"]) >= 1.0:
        facts.append("dropout.rate_one_train")
    return facts


def channels(ported: Ported) -> int:
    return min(int(ported.layer.get("num_features") or 3), 4)


def _shape(ported: Ported, batch: int, spatial: int, channel_count: int) -> list[int]:
    rank, last = int(ported.layer["rank"]), ported.layer.get("channel_axis") == "last"
    inner = [spatial] * (rank - 2)
    return [batch, *inner, channel_count] if last and rank > 2 else [batch, channel_count, *inner]


def small_run_cases(ported: Ported) -> list[Case]:
    """The translated layer on generated inputs, and for a batch norm that trains its
    statistics, the batch with one value per channel."""
    layer = {k: v for k, v in ported.layer.items() if k in SPEC_KEYS[ported.kind]}
    cases: list[dict[str, Any]] = []
    if ported.kind == "batch_norm":
        c = channels(ported)
        shape = _shape(ported, BATCH, 2, c)
        cases.append({"name": "small_run", "layer": layer,
                      "inputs": {n: {"shape": shape, "seed": s, "mean": 1.0, "std": 2.0}
                                 for n, s in (("a", 1), ("b", 2), ("c", 3))},
                      "steps": [{"train": "a"}, {"train": "b"}, {"train": "c"}, {"eval": "a"}],
                      "observe": ["output", "running_mean", "running_var", "batch_count"]})
        if layer.get("running_stats", True) and not layer.get("frozen", False):
            one = {**layer, "affine": True, "scale": [2.0 + i for i in range(c)],
                   "shift": [0.5 - i for i in range(c)]}
            cases.append({"name": "one_value_per_channel", "layer": one,
                          "inputs": {"a": {"shape": _shape(ported, 1, 1, c), "seed": 4, "mean": 1.0}},
                          "steps": [{"train": "a"}], "observe": ["output"]})
    else:
        rank = int(ported.layer["rank"])
        shape = _shape(ported, 64, 2, 16) if rank > 2 else [64, 32]
        cases.append({"name": "small_run", "layer": {**layer, "seed": 0},
                      "inputs": {"x": {"shape": shape, "seed": 5, "distribution": "uniform", "low": 1.0,
                                       "high": 2.0}},
                      "steps": [{"train": "x"}, {"eval": "x"}], "observe": ["output"]})
    text = yaml.safe_dump({"conformance_spec": 1, "defaults": {"dtype": "float32"}, "cases": cases},
                          sort_keys=False)
    return load_text(text, file=str(SMALL_RUN), path=SMALL_RUN)


def find_specs(specs: str | Path | None) -> Path | None:
    """``specs``, else ./specs, else the specs folder beside the installed package."""
    if specs is not None:
        return Path(specs)
    for candidate in (Path("specs"), Path(__file__).resolve().parents[2] / "specs"):
        if candidate.is_dir():
            return candidate
    return None


def probe_cases(facts: list[str], specs: Path) -> list[Case]:
    cases, errors = load_paths([specs])
    if errors:
        raise PortError(f"the probe specs under {specs} do not load: {errors[0]}")
    return [c for c in cases if set(c.measures) & set(facts)]


@dataclass
class Measurement:
    """Facts per framework (``{facts, evidence, framework_version}`` rows of the conventions
    table), the small run's answers per framework, and where the facts came from."""

    facts: dict[str, dict[str, Any]] = field(default_factory=dict)
    runs: dict[str, FrameworkRuns] = field(default_factory=dict)
    cases: dict[str, Case] = field(default_factory=dict)
    origin: str = ""
    problems: list[str] = field(default_factory=list)

    def fact(self, framework: str, name: str) -> Any:
        return self.facts.get(framework, {}).get("facts", {}).get(name)

    def evidence(self, framework: str, name: str) -> str:
        return str(self.facts.get(framework, {}).get("evidence", {}).get(name, ""))

    def run(self, framework: str, name: str = "small_run") -> Any:
        runs = self.runs.get(framework)
        return None if runs is None else runs.runs.get(f"port/translated::{name}")


def measure(ported: Ported, targets: list[str], results: list[str] | None = None,
            specs: str | Path | None = None) -> Measurement:
    """Run the small cases (and, without ``results``, the probe cases) on the source and
    the targets; read the facts from the probes' results or from ``results``."""
    frameworks = [ported.source, *[t for t in targets if t != ported.source]]
    out = Measurement()
    cases = small_run_cases(ported)
    out.cases = {c.name: c for c in cases}
    documents: list[dict[str, Any]] = []
    if results:
        try:
            documents = load_runs(results)
        except ValueError as exc:
            raise PortError(str(exc)) from None
        out.origin = f"results in {', '.join(results)}"
    else:
        folder = find_specs(specs)
        if folder is None or not folder.is_dir():
            out.problems.append("no probe specs found (pass --specs DIR or --results DIR): facts not measured")
        else:
            cases += probe_cases(relevant_facts(ported), folder)
            out.origin = f"probe cases of {folder} run now"
    out.runs = run_cases(cases, frameworks)
    out.problems += [r.problem for r in out.runs.values() if r.problem]
    if not results:
        documents = [r.document for r in out.runs.values() if r.document]
    for row in conventions.rows(documents):
        if row["device"] == "cpu" or row["framework"] not in out.facts:
            out.facts[row["framework"]] = row
    return out
