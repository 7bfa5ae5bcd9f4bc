"""Small helpers shared by the kit's tests."""

from __future__ import annotations

from typing import Any

from conformance.adapters.base import Adapter
from conformance.model import Case
from conformance.program import CaseRun, execute
from conformance.spec import load_text
from conformance.verdicts import judge


def cases_from(text: str) -> list[Case]:
    return load_text("conformance_spec: 1\n" + text, file="test.yaml")


def run_of(adapter: Adapter, case: Case) -> CaseRun:
    """Run ``case`` on ``adapter`` (CPU) in this process: what each step observed."""
    return execute(lambda: adapter.build(case.layer, case.dtype, "cpu"), case)


def verdict_of(adapter: Adapter, case: Case) -> dict[str, Any]:
    """Run ``case`` on ``adapter`` in this process and judge it as the runner would."""
    run = run_of(adapter, case)
    return judge(case, run, {k: v.as_dict() for k, v in adapter.documented.items()})


def series(run: CaseRun, quantity: str) -> list[float | None]:
    """A scalar quantity at every step (None where the step did not record it)."""
    return [float(step[quantity]) if quantity in step else None for step in run.steps]


BN_PROGRAM = """
cases:
  - name: program
    layer: {kind: batch_norm, update_weight: 0.2}
    inputs:
      a: {shape: [6, 3, 2, 2], seed: 1, mean: 2.0, std: 3.0}
      b: {shape: [6, 3, 2, 2], seed: 2, mean: -1.0, std: 0.5}
    steps: [{train: a}, {train: b}, {eval: a}]
"""

DROPOUT_PROGRAM = """
cases:
  - name: program
    layer: {kind: dropout, rate: 0.3, seed: 3}
    inputs:
      x: {shape: [100, 50], seed: 4, distribution: uniform, low: 1.0, high: 2.0}
    steps: [{train: x}, {eval: x}]
"""
