"""The terminal report (``rich``): the case x column matrix with the worst rows first, then
every divergence and error, worst first, with what differs, where it starts, the convention
that explains it and a snippet that reproduces it (the divergences of a column that one
convention the framework does not document reproduces form one finding: its scope, one line
per case, one snippet); then, per column, the cells a documented convention explains (one
line per case, the fix, one snippet) and the unsupported ones."""

from __future__ import annotations

import io

from rich.console import Console
from rich.console import Group as RichGroup
from rich.padding import Padding
from rich.syntax import Syntax
from rich.table import Table
from rich.text import Text

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

STYLES = ("bold red", "yellow", "cyan", "dim", "dim", "green")  # by severity


def render(matrix: Matrix, color: bool = False, width: int | None = None) -> str:
    """The report as text; ANSI colours when ``color``."""
    buffer = io.StringIO()
    console = Console(file=buffer, force_terminal=color, color_system="standard" if color else None,
                      width=width or _natural_width(matrix), highlight=False, soft_wrap=False)
    console.print(Text("Conformance report", style="bold"))
    console.print(summary_line(matrix))
    console.print(_sources(matrix))
    console.print(_matrix(matrix))
    console.print("verdict* expected by the registry   verdict! unexpected   STALE registry entry no "
                  "longer needed   - no result", style="dim")
    for line in skip_reasons([(col.label, list(col.cases.values())) for col in matrix.columns]):
        console.print(f"skipped: {line}", style="dim")
    single, groups = grouped(findings(matrix))
    if single:
        console.rule("Divergences and errors, worst first", align="left")
    for item in single:
        console.print(_group(item, color) if isinstance(item, Group) else _finding(item, color))
    if groups:
        console.rule("Documented conventions and unsupported features, per column", align="left")
    for group in groups:
        console.print(_group(group, color))
    for note in matrix.notes:
        console.print(f"note: {note}", style="dim")
    return buffer.getvalue()


def _natural_width(matrix: Matrix) -> int:
    """Wide enough for the matrix on one line each row, at least 100 columns."""
    case = max([len(c) for c in matrix.case_ids] + [4])
    cells = sum(max(len(col.label), 17) + 3 for col in matrix.columns)
    return max(100, case + cells + 4)


def _sources(matrix: Matrix) -> Table:
    table = Table(box=None, show_header=True, header_style="bold", pad_edge=False)
    for name in ("column", "version", "device name", "python", "from"):
        table.add_column(name)
    for col in matrix.columns:
        env = col.environment or {}
        table.add_row(col.label, col.framework_version, str(env.get("device_name", "?")),
                      str(env.get("python", "?")), ", ".join(col.sources))
    return table


def _matrix(matrix: Matrix) -> Table:
    table = Table(show_header=True, header_style="bold", show_lines=False)
    table.add_column("case", no_wrap=True)
    for col in matrix.columns:
        table.add_column(col.label, no_wrap=True)
    for case_id in rows_worst_first(matrix):
        cells = [matrix.cell(case_id, col) for col in matrix.columns]
        table.add_row(case_id, *(Text(mark(e), style=STYLES[severity(e)]) for e in cells))
    return table


def _finding(finding: Finding, color: bool) -> RichGroup:
    parts: list = [Text(""), Text(finding.title, style=STYLES[finding.severity] + " bold")]
    parts += [_fact(label, text) for label, text in finding.facts()]
    parts += _code(finding, "", color)
    return RichGroup(*parts)


def _group(group: Group, color: bool) -> RichGroup:
    """A column's cells with one explanation: shared facts, one line per case, one snippet."""
    head = f"{group.column.label}: {group.title}, {len(group.members)} case(s)"
    parts: list = [Text(""), Text(head, style=STYLES[group.severity] + " bold")]
    parts += [_fact(label, text) for label, text in group.shared()]
    parts += [_fact(case_id, text) for case_id, text in group.rows()]
    shown = group.snippet_finding()
    if shown is not None:
        parts += _code(shown, f" ({shown.case_id})", color)
    return RichGroup(*parts)


def _fact(label: str, text: str) -> Text:
    line = Text(f"  {label}: ", style="bold")
    line.append(text)
    return line


def _code(finding: Finding, which: str, color: bool) -> list:
    code = finding.snippet()
    if not code:
        return []
    head = Text(f"  reproduce with {finding.column.framework}{which}:", style="bold")
    if color:
        return [head, Padding(Syntax(code.rstrip(), "python", theme="ansi_dark",
                                     background_color="default"), (0, 0, 0, 4))]
    # plain text: no padding to the full width
    return [head, Text("\n".join(("    " + line).rstrip() for line in code.rstrip().splitlines()))]
