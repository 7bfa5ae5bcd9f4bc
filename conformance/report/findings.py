"""What every format shows: cells ordered worst first, and for each non-conforming cell
the quantity, the error, the step where it starts, the inferred convention and a snippet.

Severity, worst first: 0 unexpected (a divergence or error no registry entry expects, or a
stale entry), 1 expected by the registry, 2 documented convention, 3 unsupported,
4 skipped, 5 conforms or expected-error. Within a severity, errors come before numbers and
larger absolute errors before smaller ones.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from conformance.report.merge import Column, Matrix, is_unexpected
from conformance.report.snippets import snippet

SEVERITY_NAMES = ("unexpected", "expected", "convention", "unsupported", "skipped", "ok")
SHORT = {"conforms": "ok", "convention": "conv", "divergence": "DIV", "error": "ERR",
         "expected-error": "ok (refused)", "unsupported": "n/a", "skipped": "skip"}


def severity(entry: dict[str, Any] | None) -> int:
    """0 (worst) to 5; a missing cell counts as skipped."""
    if entry is None:
        return 4
    verdict = entry.get("verdict")
    if is_unexpected(entry):
        return 0
    if verdict in ("divergence", "error"):
        return 1
    return {"convention": 2, "unsupported": 3, "skipped": 4}.get(str(verdict), 5)


def magnitude(entry: dict[str, Any] | None) -> float:
    """The worst absolute error of the cell; an error counts as infinite."""
    if entry is None:
        return 0.0
    if entry.get("verdict") == "error":
        return float("inf")
    try:
        return float((entry.get("worst") or {}).get("max_abs_error", 0.0))
    except (TypeError, ValueError):  # "nan" / "inf" written as strings
        return float("inf")


def sort_key(entry: dict[str, Any] | None) -> tuple[int, float]:
    return severity(entry), -magnitude(entry)


def mark(entry: dict[str, Any] | None) -> str:
    """The verdict as a cell shows it: ``divergence*`` (expected), ``divergence!``
    (unexpected), ``conforms STALE``."""
    if entry is None:
        return "-"
    verdict = str(entry["verdict"])
    if entry.get("stale"):
        return f"{verdict} STALE"
    if is_unexpected(entry):
        return f"{verdict}!"
    return verdict + ("*" if entry.get("expected") else "")


def rows_worst_first(matrix: Matrix) -> list[str]:
    """Case ids ordered by their worst cell, then in spec order."""
    order = {case_id: i for i, case_id in enumerate(matrix.case_ids)}

    def key(case_id: str) -> tuple[int, float, int]:
        worst = min(sort_key(matrix.cell(case_id, col)) for col in matrix.columns)
        return (*worst, order[case_id])

    return sorted(matrix.case_ids, key=key)


@dataclass
class Finding:
    """One non-conforming cell, described for people."""

    case_id: str
    column: Column
    entry: dict[str, Any]

    @property
    def anchor(self) -> str:
        return "f-" + "".join(ch if ch.isalnum() else "-" for ch in f"{self.case_id}-{self.column.label}")

    @property
    def severity(self) -> int:
        return severity(self.entry)

    @property
    def title(self) -> str:
        return f"{self.case_id} [{self.column.label}]: {mark(self.entry)}"

    def facts(self) -> list[tuple[str, str]]:
        """(label, text) lines: quantity, error, first step, convention, fix, registry."""
        e = self.entry
        lines: list[tuple[str, str]] = []
        if e.get("stale"):
            lines.append(("stale", str(e.get("message", ""))))
        elif e.get("verdict") in ("unsupported", "skipped"):
            lines.append(("reason", str(e.get("message", ""))))
        worst = e.get("worst") or {}
        quantities = e.get("divergent_quantities") or ([worst["quantity"]] if "quantity" in worst else [])
        if quantities:
            lines.append(("quantity", ", ".join(quantities)))
        if worst:
            lines.append(("error", (f"max abs {_num(worst.get('max_abs_error'))}, max rel "
                          f"{_num(worst.get('max_rel_error'))} at {worst.get('quantity')} step "
                          f"{worst.get('step')} index {tuple(worst.get('worst_index') or ())} "
                          f"(observed {_num(worst.get('observed'))}, expected {_num(worst.get('expected'))})")))
        if "first_divergent_step" in e:
            lines.append(("starts at step", str(e["first_divergent_step"])))
        error = e.get("error") or {}
        if error and e.get("verdict") == "error":
            lines.append(("raised", str(error.get("message", e.get("message", "")))))
        lines.extend(self._explanation())
        if e.get("expected"):
            exp = e["expected"]
            lines.append(("registry", f"{exp.get('registry', '')}: {str(exp.get('reason', '')).strip()} "
                          f"{exp.get('link', '')}".strip()))
        return lines

    def _explanation(self) -> list[tuple[str, str]]:
        e = self.entry
        explained = e.get("explained_by") or {}
        if not explained:
            if e.get("verdict") == "divergence" and not e.get("stale"):
                message = str(e.get("message", ""))
                return [("convention", message.split("; ", 1)[1] if "; " in message else
                         message or "no known convention explains it")]
            return []
        names = ", ".join(f"{k}={v}" for k, v in explained.items())
        kind = "documented" if e.get("verdict") == "convention" else "not documented by the framework"
        lines = [("convention", f"{names} ({kind})")]
        for also in e.get("also_explained_by") or []:
            lines.append(("or", ", ".join(f"{k}={v}" for k, v in also.items())))
        for conv in e.get("conventions") or []:
            if conv.get("fix"):
                lines.append(("fix", str(conv["fix"])))
            if conv.get("link"):
                lines.append(("documented at", str(conv["link"])))
        return lines

    def summary(self) -> str:
        """One line: what differs, by how much, from which step (or the reason)."""
        e = self.entry
        if e.get("verdict") in ("unsupported", "skipped"):
            return str(e.get("message", ""))
        worst = e.get("worst") or {}
        parts = [", ".join(e.get("divergent_quantities") or [str(worst.get("quantity", "?"))])]
        if worst:
            parts.append(f"max abs {_num(worst.get('max_abs_error'))}, max rel {_num(worst.get('max_rel_error'))}")
        if "first_divergent_step" in e:
            parts.append(f"from step {e['first_divergent_step']}")
        return "; ".join(parts)

    def snippet(self) -> str:
        """Code in the framework's own API reproducing the case up to where it starts."""
        program = self.entry.get("program")
        if not program or self.entry.get("verdict") in ("unsupported", "skipped"):
            return ""
        until = self.entry.get("first_divergent_step")
        error = self.entry.get("error") or {}
        if until is None and isinstance(error.get("step"), int):
            until = max(error["step"], 0)
        focus = self.entry.get("divergent_quantities")
        return snippet(program, self.column.framework, until_step=until, focus=focus)


def findings(matrix: Matrix) -> list[Finding]:
    """Every non-conforming cell (severity 0 to 3), worst first; skipped cells are left out
    (their reason is in the matrix)."""
    found = [Finding(case_id, col, entry) for case_id, col, entry in matrix.cells()
             if entry is not None and severity(entry) <= 3]
    order = {case_id: i for i, case_id in enumerate(matrix.case_ids)}
    return sorted(found, key=lambda f: (*sort_key(f.entry), order[f.case_id], f.column.label))


@dataclass
class Group:
    """Cells of one column that one documented convention explains, or that the column does
    not support: the compact form of many similar cells (text and Markdown)."""

    column: Column
    title: str
    members: list[Finding]

    @property
    def severity(self) -> int:
        return self.members[0].severity

    def shared(self) -> list[tuple[str, str]]:
        """The facts all members share: fix and documentation link."""
        return [(label, text) for label, text in self.members[0].facts()
                if label in ("fix", "documented at")]

    def rows(self) -> list[tuple[str, str]]:
        """(case id, one-line summary) per member, worst first."""
        return [(f.case_id, f.summary()) for f in self.members]


def grouped(found: list[Finding]) -> tuple[list[Finding], list[Group]]:
    """Split findings into those shown one by one (unexpected and registry-expected cells)
    and groups of convention and unsupported cells per column and explanation."""
    single = [f for f in found if f.severity <= 1]
    groups: dict[tuple[str, str], Group] = {}
    for f in found:
        if f.severity <= 1:
            continue
        explained = f.entry.get("explained_by") or {}
        title = (", ".join(f"{k}={v}" for k, v in explained.items()) + " (documented convention)"
                 if f.severity == 2 else "unsupported")
        groups.setdefault((f.column.label, title), Group(f.column, title, [])).members.append(f)
    ordered = sorted(groups.values(), key=lambda g: (g.severity, g.column.label, -len(g.members)))
    return single, ordered


def counts(matrix: Matrix) -> dict[str, int]:
    """Cells per verdict, plus ``unexpected`` and ``missing``."""
    out: dict[str, int] = {}
    for _, _, entry in matrix.cells():
        key = "missing" if entry is None else str(entry["verdict"])
        out[key] = out.get(key, 0) + 1
    out["unexpected"] = len(matrix.unexpected())
    return out


def summary_line(matrix: Matrix) -> str:
    c = counts(matrix)
    parts = [f"{n} {v}" for v, n in sorted(c.items()) if v != "unexpected" and n]
    return (f"{len(matrix.case_ids)} cases x {len(matrix.columns)} columns: " + ", ".join(parts)
            + f"; {c['unexpected']} unexpected")


def _num(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.3g}"
    return str(value)
