"""The report as one self-contained HTML file: inline style sheet, script and SVG, nothing
loaded from the network (a content security policy forbids it).

The matrix is the picture: a grid of case x column, worst rows first, each cell coloured by
its verdict first and the size of its error second (``colors``), labelled with its verdict
and error, and linking to its details. Filters (unexpected only, hide conventions, one switch
per column) act on the grid and the details. Below, one section per case: each column's
verdict with its facts (a snippet for each divergence and error, one per documented
convention and column), and for a case with running statistics over two steps or more a plot
per quantity and channel (``plots``).
"""

from __future__ import annotations

import math
from html import escape
from typing import Any

from conformance.report import plots
from conformance.report.colors import CATEGORIES, HIGH, LOW, category, cell_color, mix
from conformance.report.documented import Specs, missing_specs
from conformance.report.findings import (
    Finding,
    findings,
    grouped,
    magnitude,
    mark,
    rows_worst_first,
    severity,
    skip_reasons,
    summary_line,
)
from conformance.report.html_assets import CSP, CSS, SCRIPT
from conformance.report.merge import Matrix

SHARED_FACTS = ("fix", "documented at")  # what every cell of one convention group has alike


def render(matrix: Matrix) -> str:
    """The whole page."""
    rows = rows_worst_first(matrix)
    anchors = {case_id: case_anchor(i, case_id) for i, case_id in enumerate(matrix.case_ids)}
    shown = _snippets_shown(matrix)
    specs = Specs()
    parts = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
             f'<meta http-equiv="Content-Security-Policy" content="{CSP}">',
             '<meta name="viewport" content="width=device-width, initial-scale=1">',
             "<title>Conformance report</title>", f"<style>{CSS}\n{plots.css()}</style></head><body>",
             "<h1>Conformance report</h1>", f"<p>{escape(summary_line(matrix))}</p>",
             _sources(matrix), "<h2>Matrix</h2>", _filters(matrix), _legend(), _matrix(matrix, rows, anchors)]
    skipped = skip_reasons([(col.label, list(col.cases.values())) for col in matrix.columns])
    if skipped:
        parts += ['<h3 id="skipped">Skipped</h3><ul>'] + [f"<li>{escape(line)}</li>" for line in skipped] + ["</ul>"]
    parts.append("<h2>Details, worst first</h2>")
    parts += [_section(matrix, case_id, anchors[case_id], shown, specs) for case_id in rows]
    notes = list(matrix.notes) + [f"{file}: not found or not a valid spec here, so the plots of its cases "
                                  "lack the reference under the frameworks' documented conventions"
                                  for file in missing_specs(specs)]
    if notes:
        parts += ["<h2>Notes</h2><ul>"] + [f"<li>{escape(n)}</li>" for n in notes] + ["</ul>"]
    return "\n".join(parts + [f"<script>{SCRIPT}</script>", "</body></html>", ""])


def case_anchor(index: int, case_id: str) -> str:
    """The id of a case's details section (``index`` keeps ids that sanitise alike apart)."""
    return f"c{index}-" + "".join(ch if ch.isalnum() else "-" for ch in case_id)


def _sources(matrix: Matrix) -> str:
    rows = [("<table><tr><th>column</th><th>version</th><th>device name</th><th>python</th>"
            "<th>platform</th><th>from</th></tr>")]
    for col in matrix.columns:
        env = col.environment or {}
        cells = [col.label, col.framework_version, env.get("device_name", "?"), env.get("python", "?"),
                 env.get("platform", "?"), ", ".join(col.sources)]
        rows.append("<tr>" + "".join(f"<td>{escape(str(c))}</td>" for c in cells) + "</tr>")
    return "\n".join(rows + ["</table>"])


def _filters(matrix: Matrix) -> str:
    boxes = "".join(f'<label><input type="checkbox" data-col="{i}" value="{escape(c.label, quote=True)}" checked> '
                    f"{escape(c.label)}</label>" for i, c in enumerate(matrix.columns))
    return ('<form id="filters"><label><input type="checkbox" name="unexpected"> unexpected only</label>'
            '<label><input type="checkbox" name="conventions"> hide conventions</label>'
            f'<span>columns: {boxes}</span> <span id="count"></span></form>'
            "<noscript><p>The filters need JavaScript; without it the page shows everything.</p></noscript>")


def _legend() -> str:
    items = []
    for cat in CATEGORIES:
        swatch = (f'<span class="sw" style="background:{cat.light}"></span>' if cat.light == cat.dark else
                  f'<span class="sw" style="background:linear-gradient(90deg,{cat.light},'
                  f'{mix(cat.light, cat.dark, 0.5)},{cat.dark})"></span>')
        items.append(f"<li>{swatch}{escape(cat.label)}</li>")
    return ('<div class="legend"><p>Colour: the verdict first; within a verdict, darker for a larger '
            f"error (the worst absolute error, as the text report measures it: lightest at {LOW:g} or "
            f"less, darkest at {HIGH:g} or more, and for an error raised).</p><ul>{''.join(items)}</ul>"
            "<p><code>*</code> expected by the registry, <code>!</code> unexpected (fails CI), "
            "<code>STALE</code> a registry entry no longer needed, <code>-</code> no result; the number "
            "is the worst absolute error. Click a cell for its details.</p></div>")


def _matrix(matrix: Matrix, rows: list[str], anchors: dict[str, str]) -> str:
    head = "".join(f'<th data-col="{i}">{escape(c.label)}</th>' for i, c in enumerate(matrix.columns))
    out = [f'<table class="matrix"><thead><tr><th>case</th>{head}</tr></thead><tbody>']
    for case_id in rows:
        cells = [f'<th class="case"><a href="#{anchors[case_id]}">{escape(case_id)}</a></th>']
        for i, col in enumerate(matrix.columns):
            entry = matrix.cell(case_id, col)
            background, text = cell_color(entry)
            title = escape(str((entry or {}).get("message", "")), quote=True)
            cells.append(f'<td data-col="{i}" data-k="{category(entry).key}" style="background:{background};'
                         f'color:{text}" title="{title}"><a href="#{Finding(case_id, col, entry or {}).anchor}">'
                         f"{escape(mark(entry))}{_error_text(entry)}</a></td>")
        out.append('<tr class="row">' + "".join(cells) + "</tr>")
    return "\n".join(out + ["</tbody></table>"])


def _error_text(entry: dict[str, Any] | None) -> str:
    """The worst absolute error, where there is one to show."""
    error = magnitude(entry)
    if entry is None or entry.get("verdict") == "error" or error == 0.0:
        return ""
    return f"<small>{'nan' if math.isnan(error) else f'{error:.2g}'}</small>"


def _snippets_shown(matrix: Matrix) -> dict[tuple[str, str], str]:
    """(case id, column label) -> the case id whose snippet reproduces the cell: itself for a
    divergence or error, the worst member of its group for a documented convention (one
    snippet per column and convention, as the text report shows)."""
    shown: dict[tuple[str, str], str] = {}
    single, groups = grouped(findings(matrix))
    for item in single:
        for f in getattr(item, "members", [item]):
            shown[(f.case_id, f.column.label)] = f.case_id
    for group in groups:
        first = group.snippet_finding()
        if first is None:  # unsupported cells: nothing to reproduce
            continue
        for f in group.members:
            shown[(f.case_id, f.column.label)] = first.case_id
    return shown


def _section(matrix: Matrix, case_id: str, anchor: str, shown: dict[tuple[str, str], str],
             specs: Specs) -> str:
    info = matrix.case_info(case_id)
    where = f"{info.get('file', '?')}:{info.get('line', '?')}" if info.get("file") else ""
    parts = [(f'<section class="case row" id="{anchor}"><h3><code>{escape(case_id)}</code> '
              f"<small>{escape(where)}</small></h3>")]
    parts += [_cell(matrix, case_id, i, shown) for i in range(len(matrix.columns))]
    if plots.has_statistics(matrix, case_id):
        parts.append(plots.statistics(matrix, case_id, specs))
    return "".join(parts + ["</section>"])


def _cell(matrix: Matrix, case_id: str, index: int, shown: dict[tuple[str, str], str]) -> str:
    """One column's verdict on the case, with its facts when it does not conform."""
    col = matrix.columns[index]
    entry = matrix.cell(case_id, col)
    finding = Finding(case_id, col, entry or {})
    background, _ = cell_color(entry)
    head = (f'<div class="cell" id="{finding.anchor}" data-col="{index}" data-k="{category(entry).key}" '
            f'style="border-color:{background}"><p><b>{escape(col.label)}</b>: {escape(mark(entry))}')
    if entry is None:
        return head + " (no result)</p></div>"
    if severity(entry) > 3:
        message = str(entry.get("message", "")) if entry.get("verdict") == "skipped" else ""
        return head + (f" ({escape(message)})" if message else "") + "</p></div>"
    source = shown.get((case_id, col.label))
    elsewhere = source is not None and source != case_id  # a convention whose group shows it once
    facts = "".join(f"<dt>{escape(label)}</dt><dd>{escape(text)}</dd>" for label, text in finding.facts()
                    if not (elsewhere and label in SHARED_FACTS))
    return head + f"</p><dl>{facts}</dl>{_snippet(finding, source)}</div>"


def _snippet(finding: Finding, source: str | None) -> str:
    """The cell's snippet; for a member of a convention group, a link to the one that shows
    the group's fix, documentation and snippet."""
    if source is None:
        return ""
    if source != finding.case_id:
        return (f"<p>Fix, documentation and code with {escape(finding.column.framework)}: as for "
                f'<a href="#{Finding(source, finding.column, {}).anchor}">{escape(source)}</a> '
                "(the same convention, another program).</p>")
    code = finding.snippet()
    return (f"<p>Reproduce with {escape(finding.column.framework)}:</p><pre><code>{escape(code)}</code></pre>"
            if code else "")
