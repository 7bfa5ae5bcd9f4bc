"""The conventions table: one row per framework, version and device, every fact measured by
a probe case (its ``measures``), with the id of the case that established it.

Nothing here is typed in by hand: a fact that no case measured is absent. The one derived
fact, ``bn.default_momentum`` (the framework's own default momentum argument), is computed
from two measured ones: the default update weight w and which value the momentum weighs
(``new``: momentum = w; ``old``: momentum = 1 - w); its evidence names both cases.
"""

from __future__ import annotations

import json
from typing import Any

CONVENTIONS_SCHEMA = "conformance.conventions/1"

EXPLANATIONS: dict[str, str] = {
    "bn.default_update_weight": "weight of the new batch statistic in the running average, by default",
    "bn.default_momentum": "the default of the framework's own momentum argument",
    "bn.momentum_weights": "which value the framework's momentum multiplies: the new batch statistic or the old running value",
    "bn.default_eps": "default eps added to the variance",
    "bn.running_var_estimator.rank2": "variance estimator feeding the running variance, (N, C) input",
    "bn.running_var_estimator.rank3": "variance estimator feeding the running variance, (N, C, L) input",
    "bn.running_var_estimator.rank4": "variance estimator feeding the running variance, (N, C, H, W) input",
    "bn.running_var_estimator.rank5": "variance estimator feeding the running variance, (N, C, D, H, W) input",
    "bn.single_value_per_channel_train": "training on one value per channel (batch of one, no spatial extent)",
    "bn.cumulative_average": "cumulative moving average of all batches (PyTorch momentum=None)",
    "bn.batch_count": "a counter of training batches seen",
    "bn.no_running_stats": "a layer without running statistics (batch statistics in eval too)",
    "dropout.rate_meaning": "whether the framework's rate argument is the probability to drop or to keep",
    "dropout.train_scale": "scaling of kept values in training",
    "dropout.eval": "dropout in inference",
    "dropout.rate_one_train": "rate 1 in training",
    "dropout.downscale_mode": "downscale-in-inference mode (unscaled training, (1-p) in eval)",
    "dropout.channel": "channel-wise dropout (one draw per sample and channel)",
}


def rows(documents: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """``{framework, framework_version, device, facts, evidence}`` per results document
    that measured anything; two cases measuring one fact differently give a conflict."""
    table = []
    for doc in sorted(documents, key=lambda d: (d["framework"], d["device"])):
        facts: dict[str, Any] = {}
        evidence: dict[str, str] = {}
        for case in doc["cases"]:
            for fact, value in case.get("facts", {}).items():
                if fact in facts and facts[fact] != value:
                    facts[fact] = f"conflict: {facts[fact]} ({evidence[fact]}) vs {value} ({case['id']})"
                    evidence[fact] = f"{evidence[fact]}, {case['id']}"
                    continue
                facts[fact], evidence[fact] = value, case["id"]
        _derive_default_momentum(facts, evidence)
        if facts:
            table.append({"framework": doc["framework"], "framework_version": doc["framework_version"],
                          "device": doc["device"], "facts": dict(sorted(facts.items())),
                          "evidence": dict(sorted(evidence.items()))})
    return table


def _derive_default_momentum(facts: dict[str, Any], evidence: dict[str, str]) -> None:
    weight, weighs = facts.get("bn.default_update_weight"), facts.get("bn.momentum_weights")
    if not isinstance(weight, (int, float)) or weighs not in ("new", "old"):
        return
    facts["bn.default_momentum"] = round(weight if weighs == "new" else 1.0 - weight, 6)
    evidence["bn.default_momentum"] = (f"{evidence['bn.default_update_weight']}, "
                                       f"{evidence['bn.momentum_weights']}")


def to_json(table: list[dict[str, Any]]) -> str:
    return json.dumps({"schema": CONVENTIONS_SCHEMA, "rows": table}, indent=1, sort_keys=True)


def to_markdown(table: list[dict[str, Any]]) -> str:
    """Facts as rows, framework/version/device as columns, evidence case ids below."""
    if not table:
        return "No conventions were measured: run the probe cases (specs with `measures`).\n"
    columns = [f"{r['framework']} {r['framework_version']} ({r['device']})" for r in table]
    facts = sorted({f for r in table for f in r["facts"]})
    lines = ["| fact | " + " | ".join(columns) + " | meaning |",
             "|---" * (len(columns) + 2) + "|"]
    for fact in facts:
        cells = [_cell(r["facts"].get(fact, "")) for r in table]
        lines.append(f"| `{fact}` | " + " | ".join(cells) + f" | {EXPLANATIONS.get(fact, '')} |")
    lines += ["", "Evidence: the case whose observation established each cell.", "",
              "| fact | " + " | ".join(columns) + " |", "|---" * (len(columns) + 1) + "|"]
    for fact in facts:
        cases = {c for r in table for c in [r["evidence"].get(fact, "")]}
        if len(cases) == 1:  # the usual case: one probe measured the fact everywhere
            lines.append(f"| `{fact}` | " + " | ".join(f"`{next(iter(cases))}`" if r["evidence"].get(fact)
                                                       else "" for r in table) + " |")
        else:
            lines.append(f"| `{fact}` | " + " | ".join(_cell(r["evidence"].get(fact, "")) for r in table) + " |")
    return "\n".join(lines) + "\n"


def _cell(value: Any) -> str:
    return "" if value == "" else f"`{value}`"
