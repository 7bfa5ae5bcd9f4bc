"""The reference re-run under a column's documented conventions, for the plots: what the
framework's own documentation predicts for a case, next to the spec's reference.

Results files keep the case's program but not the Case itself, so the case is loaded again
from its spec file (``file`` in the entry, relative to the current folder, as ``conformance
run`` wrote it), and the reference is re-run with ``explain.ReferenceRuns`` under
``explain.documented_changes``: the conventions the column's results header (``documented``)
gives, at a link, that differ from the case's own. A spec file that is gone, or that no longer
holds the case, gives no such line; the plot says so.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from conformance.report.merge import Column, Matrix


@dataclass
class Documented:
    """The reference of one case under one set of documented changes: per quantity the
    values at each step (None where the run has none)."""

    changes: dict[str, str]
    values: dict[str, list[Any]]


@dataclass
class Specs:
    """Spec files loaded on first use, one load per file (``None``: it cannot be loaded)."""

    cases: dict[str, dict[str, Any] | None] = field(default_factory=dict)
    runs: dict[tuple[str, frozenset[tuple[str, str]]], Any] = field(default_factory=dict)

    def case(self, file: str, case_id: str) -> Any:
        """The Case ``case_id`` of spec file ``file``, or None."""
        if file not in self.cases:
            self.cases[file] = _load(file)
        return (self.cases[file] or {}).get(case_id)

    def run(self, case: Any, changes: dict[str, str]) -> Any:
        """The reference run of ``case`` under ``changes``, made once for every column that
        documents the same changes."""
        from conformance.explain import ReferenceRuns

        key = (case.id, frozenset(changes.items()))
        if key not in self.runs:
            self.runs[key] = ReferenceRuns(case).under(changes)
        return self.runs[key]


def _load(file: str) -> dict[str, Any] | None:
    # the spec loader costs ~0.3 s: imported only for a report with plots
    from conformance.errors import SpecErrors
    from conformance.spec import load_file

    if not Path(file).is_file():
        return None
    try:
        return {case.id: case for case in load_file(file)}
    except (SpecErrors, OSError, ValueError):  # changed or broken since the run: no such line
        return None


def reference(matrix: Matrix, case_id: str, column: Column, quantities: tuple[str, ...],
              specs: Specs) -> Documented | None:
    """The reference of ``case_id`` under ``column``'s documented conventions, at the steps of
    the column's series; None where nothing documented differs from the case's conventions,
    the spec cannot be found or the reference cannot run the case under them."""
    from conformance.explain import documented_changes

    entry = matrix.cell(case_id, column) or {}
    series = entry.get("series") or {}
    case = specs.case(str(entry.get("file", "")), case_id) if entry.get("file") else None
    if case is None or not series:
        return None
    changes = documented_changes(case, column.documented or {})
    if not changes:
        return None
    run = specs.run(case, changes)
    if run.status != "ok":
        return None
    values = {q: [run.steps[i][q].tolist() if i < len(run.steps) and q in run.steps[i] else None
                  for i in series[q].get("steps", [])]
              for q in quantities if q in series}
    return Documented(changes, values)


def missing_specs(specs: Specs) -> list[str]:
    """The spec files that could not be loaded: their cases have no documented reference."""
    return sorted(file for file, cases in specs.cases.items() if cases is None)
