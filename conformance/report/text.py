"""The terminal report (``rich``): the case x column matrix with the worst rows first, then
every non-conforming cell, worst first, with what differs, where it starts, the convention
that explains it and a snippet that reproduces it."""

from __future__ import annotations

import io

from rich.console import Console, Group
from rich.padding import Padding
from rich.syntax import Syntax
from rich.table import Table
from rich.text import Text

from conformance.report.findings import (
    Finding,
    findings,
    mark,
    rows_worst_first,
    severity,
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
    found = findings(matrix)
    if found:
        console.rule("Non-conforming cells, worst first", align="left")
    for finding in found:
        console.print(_finding(finding, color))
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


def _finding(finding: Finding, color: bool) -> Group:
    parts: list = [Text(""), Text(finding.title, style=STYLES[finding.severity] + " bold")]
    for label, text in finding.facts():
        line = Text(f"  {label}: ", style="bold")
        line.append(text)
        parts.append(line)
    code = finding.snippet()
    if code:
        parts.append(Text(f"  reproduce with {finding.column.framework}:", style="bold"))
        if color:
            parts.append(Padding(Syntax(code.rstrip(), "python", theme="ansi_dark",
                                        background_color="default"), (0, 0, 0, 4)))
        else:  # plain text: no padding to the full width
            parts.append(Text("\n".join(("    " + line).rstrip() for line in code.rstrip().splitlines())))
    return Group(*parts)
