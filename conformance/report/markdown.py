"""The report as Markdown, for pull-request comments: the runs, the matrix with one row per
case (worst first), then every divergence and error in a collapsible block with its facts and
a snippet that reproduces it (the divergences of a column that one convention the framework
does not document reproduces in one block: scope, a line per case, one snippet), then per
column the cells one documented convention explains (a line per case, the fix, one snippet)
and the unsupported ones, so that the comment stays short."""

from __future__ import annotations

from conformance.report.findings import (
    Finding,
    Group,
    findings,
    grouped,
    mark,
    rows_worst_first,
    severity,
    skip_reasons,
    summary_line,
)
from conformance.report.merge import Matrix

ICONS = ("\u274c", "\u26a0\ufe0f", "\u2139\ufe0f", "\u2796", "\u23ed\ufe0f", "\u2705")  # by severity


def render(matrix: Matrix) -> str:
    lines = ["## Conformance report", "", summary_line(matrix), ""]
    lines += ["| column | version | device name | python | from |", "|---|---|---|---|---|"]
    for col in matrix.columns:
        env = col.environment or {}
        lines.append(_row([col.label, col.framework_version, str(env.get("device_name", "?")),
                           str(env.get("python", "?")), ", ".join(f"`{s}`" for s in col.sources)]))
    lines += ["", "| case | " + " | ".join(c.label for c in matrix.columns) + " |",
              "|---|" + "---|" * len(matrix.columns)]
    for case_id in rows_worst_first(matrix):
        cells = []
        for col in matrix.columns:
            entry = matrix.cell(case_id, col)
            text = f"{ICONS[severity(entry)]} {mark(entry)}" if entry else "-"
            found = Finding(case_id, col, entry) if entry and severity(entry) <= 3 else None
            cells.append(f"[{text}](#{found.anchor})" if found else text)
        lines.append(_row([f"`{case_id}`", *cells]))
    lines += ["", ("`*` expected by the registry, `!` unexpected, `STALE` a registry entry no longer "
              "needed, `-` no result."), ""]
    skipped = skip_reasons([(col.label, list(col.cases.values())) for col in matrix.columns])
    if skipped:
        lines += ["### Skipped", ""] + [f"- {_escape(line)}" for line in skipped] + [""]
    single, groups = grouped(findings(matrix))
    if single:
        lines += ["### Divergences and errors, worst first", ""]
    for item in single:
        lines += _group(item) if isinstance(item, Group) else _finding(item)
    if groups:
        lines += ["### Documented conventions and unsupported features, per column", ""]
    for group in groups:
        lines += _group(group)
    if matrix.notes:
        lines += ["### Notes", ""] + [f"- {_escape(n)}" for n in matrix.notes] + [""]
    return "\n".join(lines)


def _finding(finding: Finding) -> list[str]:
    lines = [f'<a id="{finding.anchor}"></a>', "<details>",
             (f"<summary>{ICONS[finding.severity]} <code>{finding.case_id}</code> "
             f"[{finding.column.label}]: <b>{mark(finding.entry)}</b></summary>"), ""]
    lines += [f"- **{label}**: {_escape(text)}" for label, text in finding.facts()]
    code = finding.snippet()
    if code:
        lines += ["", f"Reproduce with {finding.column.framework}:", "", "```python", code.rstrip(), "```"]
    return lines + ["", "</details>", ""]


def _group(group: Group) -> list[str]:
    """One collapsible block per column and explanation; every member cell links here."""
    lines = [*(f'<a id="{f.anchor}"></a>' for f in group.members), "<details>",
             (f"<summary>{ICONS[group.severity]} [{group.column.label}] {_escape(group.title)}: "
             f"{len(group.members)} case(s)</summary>"), ""]
    lines += [f"- **{label}**: {_escape(text)}" for label, text in group.shared()]
    shown = group.snippet_finding()
    lines += ["", "| case | what differs |" if shown is not None else "| case | reason |", "|---|---|"]
    lines += [_row([f"`{case_id}`", _escape(text)]) for case_id, text in group.rows()]
    code = shown.snippet() if shown is not None else ""
    if shown is not None and code:
        lines += ["", f"Reproduce with {group.column.framework} (`{shown.case_id}`):", "",
                  "```python", code.rstrip(), "```"]
    return [*lines, "", "</details>", ""]


def _escape(text: str) -> str:
    """Keep table cells and list items on one line; ``|`` and ``<`` would break them."""
    return (text.replace("\\", "\\\\").replace("|", "\\|").replace("<", "&lt;")
            .replace("\r", " ").replace("\n", " "))


def _row(cells: list[str]) -> str:
    return "| " + " | ".join(c.replace("|", "\\|") if not c.startswith("[") else c for c in cells) + " |"
