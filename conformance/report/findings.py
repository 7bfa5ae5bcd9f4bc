"""What every format shows: cells ordered worst first, and for each non-conforming cell
the quantity, the error, the step where it starts, the inferred convention and a snippet.

Severity, worst first: 0 unexpected (a divergence or error no registry entry expects, or a
stale entry), 1 expected by the registry, 2 documented convention, 3 unsupported,
4 skipped, 5 conforms or expected-error. Within a severity, errors come before numbers and
larger absolute errors before smaller ones.

Text and Markdown group the cells of one column that one explanation covers (``grouped``):
a documented convention, an unsupported feature, or a convention the framework does not
document that reproduces several divergences (one finding for a single cause).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from conformance.numbers import pair
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


def cell_text(entry: dict[str, Any] | None) -> str:
    """``mark`` plus the conventions that explain the cell, without their prefix:
    ``convention: running_var_estimator=biased``, ``divergence!: momentum_weights=old``."""
    text = mark(entry)
    explained = (entry or {}).get("explained_by")
    if isinstance(explained, dict) and explained:
        text += ": " + ", ".join(f"{str(k).split('.', 1)[-1]}={v}" for k, v in explained.items())
    return text


def skip_reasons(columns: list[tuple[str, list[dict[str, Any]]]]) -> list[str]:
    """One line per column and reason why cases did not run: ``torch-gpu, 81 case(s):
    torch sees no gpu here ...``, from ``(column label, entries)`` pairs."""
    lines = []
    for label, entries in columns:
        reasons: dict[str, int] = {}
        for entry in entries:
            if entry.get("verdict") == "skipped":
                reason = str(entry.get("message") or "no reason given")
                reasons[reason] = reasons.get(reason, 0) + 1
        lines += [f"{label}, {n} case(s): {reason}" for reason, n in reasons.items()]
    return lines


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
                          "(observed {}, expected {})".format(*pair(worst.get("observed"), worst.get("expected"))))))
        lines += self._residual()
        if "first_divergent_step" in e:
            lines.append(("starts at step", str(e["first_divergent_step"])))
        error = e.get("error") or {}
        if error and e.get("verdict") == "error":
            lines.append(("raised", str(error.get("message", e.get("message", "")))))
        lines.extend(self._explanation())
        lines.extend(("fits partly", text) for text in partly_explained(e))
        if e.get("expected"):
            exp = e["expected"]
            lines.append(("registry", f"{exp.get('registry', '')}: {str(exp.get('reason', '')).strip()} "
                          f"{exp.get('link', '')}".strip()))
        return lines

    def _residual(self) -> list[tuple[str, str]]:
        """What differs still under the framework's documented conventions (``residual``)."""
        residual = residual_of(self.entry)
        return [(residual_label(residual), residual_text(residual))] if residual else []

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
        kind = "documented" if e.get("verdict") == "convention" else _undocumented(e)
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
        residual = residual_of(e)
        if residual:
            parts.append(f"{residual_label(residual)}: {residual_text(residual)}")
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
    """Cells of one column that one explanation covers: a documented convention, an
    unsupported feature, or (``undocumented``) a convention the framework does not document
    that reproduces several divergences. The compact form of many similar cells (text and
    Markdown)."""

    column: Column
    title: str
    members: list[Finding]
    undocumented: bool = False

    @property
    def severity(self) -> int:
        """The worst member's: one unexpected case makes the group unexpected."""
        return min(f.severity for f in self.members)

    @property
    def worst(self) -> Finding:
        return self.members[0]

    def shared(self) -> list[tuple[str, str]]:
        """The facts all members share: for an undocumented explanation its scope (ranks,
        dtypes, first steps) and the alternatives every member shares; fix and documentation
        link of the documented parts."""
        lines: list[tuple[str, str]] = []
        if self.undocumented:
            where = self.scope()
            if where:
                lines.append(("scope", where))
            also = [f.entry.get("also_explained_by") or [] for f in self.members]
            if all(a == also[0] for a in also):
                lines += [("or", ", ".join(f"{k}={v}" for k, v in a.items())) for a in also[0]]
        return lines + [(label, text) for label, text in self.worst.facts()
                        if label in ("fix", "documented at")]

    def scope(self) -> str:
        """``ranks 2, 4; float32, float64; from step 0``: what the members cover."""
        ranks: set[Any] = set()
        dtypes: set[str] = set()
        steps: set[Any] = set()
        for f in self.members:
            program = f.entry.get("program") or {}
            rank = (program.get("layer") or {}).get("rank")
            if rank is not None:
                ranks.add(rank)
            if program.get("dtype") is not None:
                dtypes.add(str(program["dtype"]))
            if f.entry.get("first_divergent_step") is not None:
                steps.add(f.entry["first_divergent_step"])
        parts = []
        if ranks:
            parts.append(("rank " if len(ranks) == 1 else "ranks ") + ", ".join(map(str, _sorted(ranks))))
        if dtypes:
            parts.append(", ".join(sorted(dtypes)))
        if steps:
            parts.append(("from step " if len(steps) == 1 else "from steps ") + ", ".join(map(str, _sorted(steps))))
        return "; ".join(parts)

    def rows(self) -> list[tuple[str, str]]:
        """(case id, one-line summary) per member, worst first; for an undocumented
        explanation the summary ends with the cell's registry mark (``divergence!``,
        ``divergence*`` and the registry entry, ``STALE``)."""
        if not self.undocumented:
            return [(f.case_id, f.summary()) for f in self.members]
        rows = []
        for f in self.members:
            expected = f.entry.get("expected")
            registry = expected.get("registry") if isinstance(expected, dict) else None
            rows.append((f.case_id, f"{f.summary()}; {mark(f.entry)}" + (f" ({registry})" if registry else "")))
        return rows

    def snippet_finding(self) -> Finding | None:
        """The member whose snippet the group shows (its worst), or None (unsupported)."""
        return self.worst if self.undocumented or self.severity == 2 else None


def explanation_key(entry: dict[str, Any]) -> tuple[tuple[str, str], ...]:
    """``explained_by`` as a sorted tuple of items: the identity of an explanation."""
    return tuple(sorted((str(k), str(v)) for k, v in (entry.get("explained_by") or {}).items()))


def grouped(found: list[Finding]) -> tuple[list[Finding | Group], list[Group]]:
    """Split findings (worst first) into what the divergences section shows, worst first
    (unexpected and registry-expected cells one by one, except that the divergences of one
    column that one undocumented explanation reproduces form one group, placed where its
    worst member would be), and groups of convention and unsupported cells per column and
    explanation. An undocumented explanation of a single cell stays a single finding."""
    undocumented: dict[tuple[str, tuple[tuple[str, str], ...]], list[Finding]] = {}
    for f in found:
        if f.severity <= 1 and f.entry.get("verdict") == "divergence" and explanation_key(f.entry):
            undocumented.setdefault((f.column.label, explanation_key(f.entry)), []).append(f)
    shown: list[Finding | Group] = []
    placed: set[tuple[str, tuple[tuple[str, str], ...]]] = set()
    for f in found:
        if f.severity > 1:
            continue
        key = (f.column.label, explanation_key(f.entry))
        members = undocumented.get(key) if key[1] and f.entry.get("verdict") == "divergence" else None
        if not members or len(members) == 1:
            shown.append(f)
        elif key not in placed:
            placed.add(key)
            shown.append(Group(f.column, _undocumented_title(members), members, undocumented=True))
    groups: dict[tuple[str, str], Group] = {}
    for f in found:
        if f.severity <= 1:
            continue
        explained = f.entry.get("explained_by") or {}
        title = (", ".join(f"{k}={v}" for k, v in explained.items()) + " (documented convention)"
                 if f.severity == 2 else "unsupported")
        groups.setdefault((f.column.label, title), Group(f.column, title, [])).members.append(f)
    ordered = sorted(groups.values(), key=lambda g: (g.severity, g.column.label, -len(g.members)))
    return shown, ordered


def _undocumented_title(members: list[Finding]) -> str:
    """``k=v (not documented by the framework; unexpected, fails CI)``; which parts are
    documented when some are; "expected by the registry" when the registry expects every
    member."""
    first = members[0].entry
    names = ", ".join(f"{k}={v}" for k, v in (first.get("explained_by") or {}).items())
    status = ("expected by the registry" if all(f.severity == 1 for f in members)
              else "unexpected, fails CI")
    return f"{names} ({_undocumented(first)}; {status})"


def _undocumented(entry: dict[str, Any]) -> str:
    """"not documented by the framework", or which parts are and which are not."""
    explained = entry.get("explained_by") or {}
    facts = {str(c.get("fact")) for c in entry.get("conventions") or [] if isinstance(c, dict)}
    documented = [f"{k}={v}" for k, v in explained.items() if k in facts]
    if not documented:
        return "not documented by the framework"
    missing = [f"{k}={v}" for k, v in explained.items() if k not in facts]
    return f"{', '.join(missing)} not documented by the framework; {', '.join(documented)} documented"


def partly_explained(entry: dict[str, Any]) -> list[str]:
    """One line per item of ``partly_explained_by``: "under k=v the reference reproduces
    running_mean, output; running_var differs from step 2"."""
    lines = []
    for part in entry.get("partly_explained_by") or []:
        if not isinstance(part, dict):
            continue
        conventions = part.get("conventions") or {}
        under = (", ".join(f"{k}={v}" for k, v in conventions.items()) if conventions
                 else "the spec's own conventions")
        reproduces = ", ".join(map(str, part.get("reproduces") or [])) or "nothing"
        text = f"under {under} the reference reproduces {reproduces}"
        differs = part.get("differs") or {}
        if differs:
            text += "; " + ", ".join(f"{q} differs from step {step}" for q, step in differs.items())
        lines.append(text)
    return lines


def _sorted(values: set[Any]) -> list[Any]:
    """Numbers in numeric order, anything else after them by its text."""
    return sorted(values, key=lambda v: (0, v, "") if isinstance(v, (int, float)) else (1, 0, str(v)))


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


def residual_of(entry: dict[str, Any]) -> dict[str, Any] | None:
    """The entry's ``residual`` when it has a worst difference to show, else None."""
    residual = entry.get("residual")
    return residual if isinstance(residual, dict) and isinstance(residual.get("worst"), dict) else None


def residual_label(residual: dict[str, Any]) -> str:
    """``after the documented bn.running_var_estimator=biased``."""
    return "after the documented " + ", ".join(f"{k}={v}" for k, v in (residual.get("after") or {}).items())


def residual_text(residual: dict[str, Any]) -> str:
    """``running_var at step 3: max abs 2.1e-06, max rel 3e-06 (observed 0.70001, expected
    0.7)``: the worst difference left under the documented conventions."""
    worst = residual["worst"]
    observed, expected = pair(worst.get("observed"), worst.get("expected"))
    return (f"{worst.get('quantity')} at step {worst.get('step')}: max abs {_num(worst.get('max_abs_error'))}, "
            f"max rel {_num(worst.get('max_rel_error'))} (observed {observed}, expected {expected})")


def _num(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.3g}"
    return str(value)
