"""The report as one self-contained HTML file: inline CSS, PNG pictures embedded as
``data:`` URIs, nothing loaded from the network. It holds the runs, the matrix (worst rows
first, each non-conforming cell linking to its details), a heat map of the errors, every
non-conforming cell with its facts and snippet, and for each case with running statistics a
plot of running mean and variance per step per column against the reference."""

from __future__ import annotations

import base64
from html import escape

from conformance.report import plots
from conformance.report.findings import (
    Finding,
    findings,
    mark,
    rows_worst_first,
    severity,
    summary_line,
)
from conformance.report.merge import Matrix

COLORS = ("#f4b6b6", "#fde2a7", "#cfe8f6", "#eeeeee", "#f7f7f7", "#d8f0d2")  # by severity
CSS = """
body { font: 14px/1.45 system-ui, sans-serif; margin: 24px; color: #222; max-width: 1500px; }
h1 { font-size: 22px; } h2 { font-size: 18px; margin-top: 32px; border-bottom: 1px solid #ccc; }
table { border-collapse: collapse; margin: 8px 0; }
td, th { border: 1px solid #ccc; padding: 3px 8px; text-align: left; vertical-align: top; }
th { background: #f0f0f0; } td.case { font-family: monospace; white-space: nowrap; }
td.cell a { color: inherit; text-decoration: none; display: block; }
pre { background: #f6f8fa; padding: 8px 12px; overflow-x: auto; font-size: 12.5px; }
details { margin: 6px 0 10px; border: 1px solid #ddd; border-radius: 4px; padding: 4px 10px; }
summary { cursor: pointer; font-weight: 600; } dt { font-weight: 600; float: left; clear: left;
  width: 120px; } dd { margin-left: 130px; } img { max-width: 100%; }
.legend span { display: inline-block; padding: 1px 8px; margin-right: 6px; border: 1px solid #ccc; }
"""
SEVERITY_TEXT = ("unexpected (fails CI)", "expected by the registry", "documented convention",
                 "unsupported", "skipped", "conforms")


def render(matrix: Matrix) -> str:
    """The whole page. Raises ``plots.MissingDependency`` when matplotlib is missing."""
    plots.require()
    heat = plots.heat_map(matrix)
    parts = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
             "<title>Conformance report</title>", f"<style>{CSS}</style></head><body>",
             "<h1>Conformance report</h1>", f"<p>{escape(summary_line(matrix))}</p>",
             _sources(matrix), "<h2>Matrix</h2>", _legend(), _matrix(matrix),
             "<h2>Heat map</h2>", _img(heat, "heat map of errors, case x column"),
             "<h2>Non-conforming cells, worst first</h2>"]
    parts += [_finding(f) for f in findings(matrix)] or ["<p>None: every cell conforms.</p>"]
    stats = [c for c in rows_worst_first(matrix) if plots.has_statistics(matrix, c)]
    if stats:
        parts.append("<h2>Running statistics per step</h2><p>Cases with running statistics observed "
                     "after two steps or more, worst first.</p>")
    for case_id in stats:
        parts += [f'<h3 id="{_anchor(case_id)}"><code>{escape(case_id)}</code></h3>',
                  _img(plots.statistics(matrix, case_id), f"running statistics of {case_id}")]
    if matrix.notes:
        parts += ["<h2>Notes</h2><ul>"] + [f"<li>{escape(n)}</li>" for n in matrix.notes] + ["</ul>"]
    return "\n".join(parts + ["</body></html>", ""])


def _img(png: bytes, alt: str) -> str:
    data = base64.b64encode(png).decode("ascii")
    return f'<p><img alt="{escape(alt)}" src="data:image/png;base64,{data}"></p>'


def _anchor(case_id: str) -> str:
    return "s-" + "".join(ch if ch.isalnum() else "-" for ch in case_id)


def _sources(matrix: Matrix) -> str:
    rows = [("<table><tr><th>column</th><th>version</th><th>device name</th><th>python</th>"
            "<th>platform</th><th>from</th></tr>")]
    for col in matrix.columns:
        env = col.environment or {}
        cells = [col.label, col.framework_version, env.get("device_name", "?"), env.get("python", "?"),
                 env.get("platform", "?"), ", ".join(col.sources)]
        rows.append("<tr>" + "".join(f"<td>{escape(str(c))}</td>" for c in cells) + "</tr>")
    return "\n".join(rows + ["</table>"])


def _legend() -> str:
    spans = "".join(f'<span style="background:{c}">{t}</span>' for c, t in zip(COLORS, SEVERITY_TEXT))
    return (f'<p class="legend">{spans}</p><p><code>*</code> expected by the registry, '
            "<code>!</code> unexpected, <code>STALE</code> a registry entry no longer needed, "
            "<code>-</code> no result. Click a cell for its details.</p>")


def _matrix(matrix: Matrix) -> str:
    head = "".join(f"<th>{escape(c.label)}</th>" for c in matrix.columns)
    rows = [f"<table><tr><th>case</th>{head}</tr>"]
    for case_id in rows_worst_first(matrix):
        link = (f' <a href="#{_anchor(case_id)}" title="running statistics plot">plot</a>'
                if plots.has_statistics(matrix, case_id) else "")
        cells = [f'<td class="case">{escape(case_id)}{link}</td>']
        for col in matrix.columns:
            entry = matrix.cell(case_id, col)
            text = escape(mark(entry))
            if entry is not None and severity(entry) <= 3:
                text = f'<a href="#{Finding(case_id, col, entry).anchor}">{text}</a>'
            title = escape(str((entry or {}).get("message", "")), quote=True)
            cells.append(f'<td class="cell" style="background:{COLORS[severity(entry)]}" '
                         f'title="{title}">{text}</td>')
        rows.append("<tr>" + "".join(cells) + "</tr>")
    return "\n".join(rows + ["</table>"])


def _finding(finding: Finding) -> str:
    facts = "".join(f"<dt>{escape(label)}</dt><dd>{escape(text)}</dd>" for label, text in finding.facts())
    code = finding.snippet()
    snippet = (f"<p>Reproduce with {escape(finding.column.framework)}:</p><pre><code>{escape(code)}</code></pre>"
               if code else "")
    open_ = " open" if finding.severity <= 1 else ""
    return (f'<details id="{finding.anchor}"{open_} style="border-left: 6px solid '
            f'{COLORS[finding.severity]}"><summary><code>{escape(finding.case_id)}</code> '
            f"[{escape(finding.column.label)}]: {escape(mark(finding.entry))}</summary>"
            f"<dl>{facts}</dl>{snippet}</details>")
