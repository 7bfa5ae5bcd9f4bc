"""Merge results files from many runs, possibly made on other machines, into one matrix of
case x column, where a column is one framework on one device on one machine.

Merge rule. Two results files belong to the same column when they agree on the framework,
its version, the device and the machine fingerprint (OS, architecture, device name, CUDA and
cuDNN versions); then the later file (later on the command line; inside a folder, by file
name) replaces the earlier one case by case, with a note, and cases only the earlier file
has are kept. Files for the same framework and device that differ in version or machine
(a CPU box and a GPU box, torch 2.12 and 2.13) are kept side by side as separate columns,
labelled ``torch-cpu@2.13.0`` etc., because both measurements are true.

Inputs are results files (``conformance.results/1``), folders of them (every ``*.json``
directly inside), or a report written by ``conformance report --format json``
(``conformance.report/1``), so that reports merge again.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from conformance import RESULTS_SCHEMA
from conformance.verdicts import VERDICTS

REPORT_SCHEMA = "conformance.report/1"
EXPECTED = (f"expected a results file written by `conformance run` (schema {RESULTS_SCHEMA}), "
            f"a folder of them, or a report written by `conformance report --format json` "
            f"(schema {REPORT_SCHEMA})")
HEADER_KEYS = ("framework", "framework_version", "device", "environment", "documented")
FINGERPRINT_KEYS = ("device_name", "machine", "cuda", "cudnn")


class ResultsFileError(ValueError):
    """A results file that cannot be read: the message names the file, what is wrong and
    what was expected."""


@dataclass
class Column:
    """One framework on one device on one machine, with its cases in spec order."""

    framework: str
    framework_version: str
    device: str
    environment: dict[str, Any]
    documented: dict[str, Any]
    sources: list[str] = field(default_factory=list)
    cases: dict[str, dict[str, Any]] = field(default_factory=dict)
    label: str = ""

    @property
    def name(self) -> str:
        """``<framework>-<device>``, the name results files use."""
        return f"{self.framework}-{self.device}"

    def fingerprint(self) -> tuple[str, ...]:
        """What makes two runs measurements of the same thing."""
        env = self.environment or {}
        system = str(env.get("platform", "")).split("-", 1)[0]
        return (self.framework, self.device, self.framework_version, system,
                *(str(env.get(k, "")) for k in FINGERPRINT_KEYS))

    def header(self) -> dict[str, Any]:
        return {"label": self.label, "framework": self.framework,
                "framework_version": self.framework_version, "device": self.device,
                "environment": self.environment, "documented": self.documented,
                "sources": list(self.sources)}


@dataclass
class Matrix:
    """Merged results: columns, the case ids in first-seen order, and notes on overrides."""

    columns: list[Column] = field(default_factory=list)
    case_ids: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def cell(self, case_id: str, column: Column) -> dict[str, Any] | None:
        return column.cases.get(case_id)

    def cells(self) -> Iterable[tuple[str, Column, dict[str, Any] | None]]:
        """Every (case id, column, entry or None) of the matrix, row by row."""
        for case_id in self.case_ids:
            for column in self.columns:
                yield case_id, column, column.cases.get(case_id)

    def case_info(self, case_id: str) -> dict[str, Any]:
        """The first entry of the case in any column (file, line, areas, program)."""
        for column in self.columns:
            if case_id in column.cases:
                return column.cases[case_id]
        return {"id": case_id}

    def unexpected(self) -> list[tuple[str, Column, dict[str, Any]]]:
        return [(c, col, e) for c, col, e in self.cells() if e is not None and is_unexpected(e)]


def is_unexpected(entry: dict[str, Any]) -> bool:
    """A divergence or error that no registry entry expects, or a stale registry entry."""
    if "unexpected" in entry:
        return bool(entry["unexpected"])
    return bool(entry.get("stale")) or (entry.get("verdict") in ("divergence", "error")
                                        and not entry.get("expected"))


def expand(paths: Sequence[str | Path]) -> list[Path]:
    """Files named, and the ``*.json`` files directly inside folders named, in order."""
    files: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            found = sorted(p for p in path.glob("*.json") if p.is_file())
            if not found:
                raise ResultsFileError(f"{path}: no results files (*.json) in this folder; "
                                       f"{EXPECTED}")
            files.extend(found)
        elif path.is_file():
            files.append(path)
        else:
            raise ResultsFileError(f"{path}: no such file or folder; {EXPECTED}")
    return files


def read_document(path: Path) -> dict[str, Any]:
    """One results or report file, checked: schema version, header keys, case entries."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError:
        raise ResultsFileError(f"{path}: not a text file; {EXPECTED}") from None
    except json.JSONDecodeError as exc:
        raise ResultsFileError(f"{path}: not JSON (line {exc.lineno} column {exc.colno}: "
                               f"{exc.msg}); {EXPECTED}") from None
    schema = data.get("schema") if isinstance(data, dict) else None
    if schema is None:
        raise ResultsFileError(f"{path}: not a conformance results file (no 'schema' key); {EXPECTED}")
    if schema not in (RESULTS_SCHEMA, REPORT_SCHEMA):
        known = str(schema).startswith(("conformance.results/", "conformance.report/"))
        hint = (" (written by another version of the kit: upgrade conformance to read it)"
                if known else "")
        raise ResultsFileError(f"{path}: schema {schema!r} is not supported{hint}; {EXPECTED}")
    runs = data.get("columns") if schema == REPORT_SCHEMA else [data]
    if not isinstance(runs, list):
        raise ResultsFileError(f"{path}: 'columns' is not a list; {EXPECTED}")
    for i, run in enumerate(runs):
        where = f"columns[{i}]." if schema == REPORT_SCHEMA else ""
        _check_run(path, where, run)
    return data


# The type of each key a results file may hold (absent keys are fine); what readers rely on.
HEADER_TYPES: dict[str, tuple[type, ...]] = {
    "framework": (str,), "device": (str,), "framework_version": (str,), "cases": (list,),
    "environment": (dict,), "documented": (dict,), "not_run": (dict,), "sources": (list,),
    "label": (str,), "kit_version": (str,), "started": (str,), "finished": (str,),
}
CASE_TYPES: dict[str, tuple[type, ...]] = {
    "id": (str,), "verdict": (str,), "message": (str,), "file": (str,), "line": (int,),
    "areas": (list,), "checks": (list,), "series": (dict,), "worst": (dict,),
    "explained_by": (dict,), "expected": (dict,), "facts": (dict,), "error": (dict,),
    "residual": (dict,), "program": (dict,), "measured": (dict,), "unmeasured": (dict,),
    "conventions": (list,), "also_explained_by": (list,), "partly_explained_by": (list,),
    "divergent_quantities": (list,), "unobservable": (list,), "unexpected": (bool,),
    "stale": (bool,), "first_divergent_step": (int,), "duration_s": (int, float),
    "native_momentum": (int, float), "skip_kind": (str,),
}
# keys whose items must be objects (lists of them, or objects of them)
OBJECT_ITEMS = ("checks", "conventions", "also_explained_by", "partly_explained_by")
OBJECT_VALUES = ("series", "documented")
TYPE_NAMES = {str: "a string", int: "an integer", float: "a number", bool: "true or false",
              list: "a list", dict: "an object"}


def _check_run(path: Path, where: str, run: Any) -> None:
    if not isinstance(run, dict):
        raise ResultsFileError(f"{path}: {where.rstrip('.') or 'document'} is not an object; {EXPECTED}")
    for key in ("framework", "device", "cases"):
        if key not in run:
            raise ResultsFileError(f"{path}: {where}{key} is missing; {EXPECTED}")
    _check_types(path, where, run, HEADER_TYPES)
    for j, case in enumerate(run["cases"]):
        if not isinstance(case, dict) or "id" not in case or "verdict" not in case:
            raise ResultsFileError(f"{path}: {where}cases[{j}] has no 'id' and 'verdict'; "
                                   "expected one entry per case with its id and verdict")
        _check_types(path, f"{where}cases[{j}].", case, CASE_TYPES)
        if not case["id"].strip():
            raise ResultsFileError(f"{path}: {where}cases[{j}].id is empty; expected the case's id, "
                                   "e.g. batchnorm/momentum::weight_0_9")
        if case["verdict"] not in VERDICTS:
            raise ResultsFileError(f"{path}: {where}cases[{j}] ({case['id']}): verdict "
                                   f"{case['verdict']!r}; expected one of {', '.join(VERDICTS)}")


def _check_types(path: Path, where: str, record: dict[str, Any], types: dict[str, tuple[type, ...]]) -> None:
    """Every known key of ``record`` has its type (a bool is no number here), and the items
    of the keys that hold objects are objects."""
    for key, allowed in types.items():
        if key not in record:
            continue
        value = record[key]
        if not isinstance(value, allowed) or (isinstance(value, bool) and bool not in allowed):
            raise ResultsFileError(f"{path}: {where}{key} is {_kind(value)}; expected "
                                   f"{' or '.join(TYPE_NAMES[t] for t in allowed)}")
        items: Iterable[Any] = ()
        held: Any = record[key]  # a list or a dict here, as just checked
        if key in OBJECT_ITEMS:
            items = held
        elif key in OBJECT_VALUES:
            items = held.values()
        bad = next((item for item in items if not isinstance(item, dict)), None)
        if bad is not None:
            raise ResultsFileError(f"{path}: {where}{key} holds {_kind(bad)}; expected "
                                   f"{'a list' if key in OBJECT_ITEMS else 'an object'} of objects")


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    name = TYPE_NAMES.get(type(value), type(value).__name__)
    return f"{name} ({json.dumps(value)[:40]})" if isinstance(value, (str, int, float)) else name


def load_runs(paths: Sequence[str | Path]) -> list[dict[str, Any]]:
    """Every run in ``paths``, checked as ``load`` checks them, unmerged: one per results
    file, and each column of a merged report (``conformance conventions`` reads these)."""
    runs: list[dict[str, Any]] = []
    for path in expand(paths):
        data = read_document(path)
        for run in data["columns"] if data["schema"] == REPORT_SCHEMA else [data]:
            run.setdefault("sources", [str(path)])  # so that a message can name the file
            runs.append(run)
    return runs


def load(paths: Sequence[str | Path]) -> Matrix:
    """Read and merge results files and folders (see the module docstring for the rule)."""
    matrix = Matrix()
    by_fingerprint: dict[tuple[str, ...], Column] = {}
    seen: set[str] = set()
    for path in expand(paths):
        data = read_document(path)
        runs = data["columns"] if data["schema"] == REPORT_SCHEMA else [data]
        matrix.notes.extend(data.get("notes", []) if data["schema"] == REPORT_SCHEMA else [])
        for run in runs:
            sources = run.get("sources") or [str(path)]
            incoming = Column(framework=str(run["framework"]),
                              framework_version=str(run.get("framework_version", "unknown")),
                              device=str(run["device"]), environment=run.get("environment") or {},
                              documented=run.get("documented") or {})
            column = by_fingerprint.setdefault(incoming.fingerprint(), incoming)
            if column is not incoming:
                replaced = [c["id"] for c in run["cases"] if c["id"] in column.cases]
                if replaced:
                    matrix.notes.append(
                        f"{column.name}: {len(replaced)} case(s) from {', '.join(sources)} replace "
                        f"those from {', '.join(column.sources)} (same framework version and machine)")
                column.environment = incoming.environment or column.environment
                column.documented = incoming.documented or column.documented
            else:
                matrix.columns.append(column)
            column.sources.extend(s for s in sources if s not in column.sources)
            for case in run["cases"]:
                column.cases[case["id"]] = case
                if case["id"] not in seen:
                    seen.add(case["id"])
                    matrix.case_ids.append(case["id"])
    _label(matrix.columns)
    matrix.columns.sort(key=lambda c: (c.framework, c.device, c.label))
    return matrix


def _label(columns: list[Column]) -> None:
    """``torch-cpu``; where several columns share it, add what tells them apart."""
    groups: dict[str, list[Column]] = {}
    for column in columns:
        groups.setdefault(column.name, []).append(column)
    for name, group in groups.items():
        if len(group) == 1:
            group[0].label = name
            continue
        prints = [c.fingerprint()[2:] for c in group]
        differing = next(i for i in range(len(prints[0])) if len({p[i] for p in prints}) > 1)
        for column, fingerprint in zip(group, prints):
            column.label = f"{name}@{fingerprint[differing] or '?'}"
        if len({c.label for c in group}) < len(group):  # same value twice: number them
            for i, column in enumerate(group, 1):
                column.label = f"{column.label}#{i}"
