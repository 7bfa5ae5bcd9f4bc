"""The running-statistics pictures of the HTML report, as inline SVG (``svg``, no
dependency): for each case whose running mean or variance was observed after two steps or
more, one panel per quantity and channel, a line per column (its own colour, dash and
marker), the spec's reference (black, dashed) and, where a column's framework documents
conventions other than the case's, the reference re-run under them (dotted, in the column's
colour: ``documented``). Grey bands mark evaluation steps.

Sizes are bounded (``MAX_CHANNELS`` panels per quantity, ``MAX_POINTS`` points per line)
so that a report of hundreds of cases stays small.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from html import escape
from typing import Any

from conformance.report import svg
from conformance.report.documented import Specs, reference
from conformance.report.merge import Column, Matrix

STAT_QUANTITIES = ("running_mean", "running_var")
# Okabe and Ito's colour-blind safe palette, in an order where neighbours differ most
PALETTE = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9")
DASHES = ("none", "7 3", "2 2", "9 3 2 3")
SHAPES = ("circle", "square", "triangle", "diamond")
PANEL_WIDTH, PANEL_HEIGHT, PER_ROW = 280.0, 200.0, 4
MAX_CHANNELS, MAX_POINTS = 8, 40
REFERENCE = svg.Style("r", "cross", 3.5, "reference (the spec's conventions)")

Values = list[list[float | None]]  # steps x channels


def css() -> str:
    """The style sheet rules of the plots' classes: ``k<i>`` column i, ``r`` the spec's
    reference, ``d`` (with ``k<i>``) a reference under documented conventions."""
    rules = [f".k{i}{{stroke:{c}}}" for i, c in enumerate(PALETTE)]
    rules += [f".k{i} .l{{stroke-dasharray:{d}}}" for i, d in enumerate(DASHES * 2) if i < len(PALETTE)]
    rules += [".r{stroke:#000}", ".r .l{stroke-dasharray:5 3}", ".d .l{stroke-dasharray:1.5 3;stroke-width:2.2}",
              "svg.plot path{fill:none;stroke-width:1.4}", "svg.plot .grid{stroke:#e6e6e6;stroke-width:1}",
              "svg.plot .axis{stroke:#666;stroke-width:1}", "svg.plot .band{fill:#efefef;stroke:none}",
              "svg.plot text{font:11px sans-serif;fill:#222;stroke:none}", "svg.plot .t{font-weight:600}",
              "svg.plot .t,svg.plot .xl{text-anchor:middle}", "svg.plot .yl{text-anchor:end}"]
    return "\n".join(rules)


@dataclass
class Curve:
    """One line per channel: a column's observations or a reference."""

    style: svg.Style
    steps: list[int]
    values: Values


def has_statistics(matrix: Matrix, case_id: str) -> bool:
    """Whether some column recorded running statistics for the case after two steps or more
    (a single step is a point: the details say it)."""
    return any(len(_series(matrix.cell(case_id, col), q).get("steps", [])) >= 2
               for col in matrix.columns for q in STAT_QUANTITIES)


def column_style(index: int, label: str) -> svg.Style:
    """Column ``index``'s line: colour, dash and marker all differ from its neighbours', and
    the markers shrink so that coinciding points stay visible inside each other."""
    return svg.Style(f"k{index % len(PALETTE)}", SHAPES[index % len(SHAPES)], max(5.5 - index, 2.5), label)


def curves(matrix: Matrix, case_id: str, quantity: str, specs: Specs) -> list[Curve]:
    """The references first (drawn below), each distinct one once, then each column's
    observations."""
    references: list[tuple[Curve, list[str]]] = []
    documented: list[tuple[Curve, list[str], str]] = []
    observed: list[Curve] = []
    for index, col in enumerate(matrix.columns):
        series = _series(matrix.cell(case_id, col), quantity)
        if not series.get("steps"):
            continue
        steps = [int(s) for s in series["steps"]]
        style = column_style(index, col.label)
        observed.append(Curve(style, steps, per_step(series.get("observed"), steps)))
        _add(references, Curve(REFERENCE, steps, per_step(series.get("reference"), steps)), col)
        under = reference(matrix, case_id, col, STAT_QUANTITIES, specs)
        if under is not None and quantity in under.values:
            names = ", ".join(f"{k}={v}" for k, v in under.changes.items())
            curve = Curve(svg.Style(f"{style.css} d", "plus", 4.0, ""), steps, per_step(under.values[quantity], steps))
            _add_documented(documented, curve, col, names)
    # a documented reference that the spec's gives too adds nothing (the running mean under
    # another variance estimator, say)
    documented = [d for d in documented if not any(_same(d[0], r) for r, _ in references)]
    out = [_labelled(c, REFERENCE.css, REFERENCE.label if len(references) == 1
                     else f"reference for {', '.join(cols)}") for c, cols in references]
    out += [_labelled(c, c.style.css, f"reference under {names}, documented by {', '.join(cols)}")
            for c, cols, names in documented]
    return out + observed


def _add(found: list[tuple[Curve, list[str]]], curve: Curve, col: Column) -> None:
    for known, cols in found:
        if _same(known, curve):
            cols.append(col.label)
            return
    found.append((curve, [col.label]))


def _add_documented(found: list[tuple[Curve, list[str], str]], curve: Curve, col: Column, names: str) -> None:
    for known, cols, known_names in found:
        if known_names == names and _same(known, curve):
            cols.append(col.label)
            return
    found.append((curve, [col.label], names))


def _labelled(curve: Curve, css: str, label: str) -> Curve:
    style = svg.Style(css, curve.style.marker, curve.style.radius, label)
    return Curve(style, curve.steps, curve.values)


def _same(a: Curve, b: Curve) -> bool:
    """Equal steps and values (to 1e-9 relative; a gap matches a gap)."""
    if a.steps != b.steps or [len(r) for r in a.values] != [len(r) for r in b.values]:
        return False
    for x, y in zip((v for r in a.values for v in r), (v for r in b.values for v in r)):
        if x is None or y is None or not (math.isfinite(x) and math.isfinite(y)):
            if repr(x) != repr(y):
                return False
        elif abs(x - y) > 1e-9 * (1.0 + abs(x)):
            return False
    return True


def per_step(values: Any, steps: list[int]) -> Values:
    """Steps x channels as floats: a scalar is one channel, a missing value (``None``, a
    step the series lacks) is None, ``"nan"``/``"inf"`` strings are floats."""
    rows = list(values or [])[:len(steps)]
    rows += [None] * (len(steps) - len(rows))
    out: Values = [[_float(v) for v in (row if isinstance(row, list) else [row])] for row in rows]
    width = max((len(r) for r in out), default=1)
    return [r + [None] * (width - len(r)) for r in out]


def _float(value: Any) -> float | None:
    try:
        return None if value is None else float(value)
    except (TypeError, ValueError):
        return None


def _series(entry: dict[str, Any] | None, quantity: str) -> dict[str, Any]:
    series = ((entry or {}).get("series") or {}).get(quantity)
    return series if isinstance(series, dict) else {}


def thin(steps: list[int], limit: int = MAX_POINTS) -> set[int]:
    """The steps drawn: all of them up to ``limit``, else evenly spaced ones, first and
    last kept."""
    if len(steps) <= limit:
        return set(steps)
    return {steps[round(i * (len(steps) - 1) / (limit - 1))] for i in range(limit)}


def statistics(matrix: Matrix, case_id: str, specs: Specs | None = None) -> str:
    """The case's picture: the legend, then per quantity a row of panels, one per channel
    (at most ``PER_ROW`` a row, ``MAX_CHANNELS`` in all)."""
    specs = specs if specs is not None else Specs()
    rows = [(q, c) for q in STAT_QUANTITIES if (c := curves(matrix, case_id, q, specs))]
    if not rows:
        return ""
    channels = {q: max(len(r) for curve in c for r in curve.values) for q, c in rows}
    width = PANEL_WIDTH * min(PER_ROW, max(channels.values()))
    styles = list(dict.fromkeys(c.style for _, cs in rows for c in cs))
    key, height = svg.legend(styles, 8, 4, width - 16)
    parts = [key]
    steps = sorted({s for _, cs in rows for c in cs for s in c.steps})
    drawn = thin(steps)
    x_range = (steps[0] - 0.5, steps[-1] + 0.5)
    every = max(1, math.ceil((steps[-1] - steps[0] + 1) / 12))
    x_ticks = list(range(steps[0], steps[-1] + 1, every))
    program = matrix.case_info(case_id).get("program") or {}
    shaded = [float(i) for i, s in enumerate(program.get("steps") or [])
              if isinstance(s, dict) and s.get("mode") == "eval" and steps[0] <= i <= steps[-1]]
    y = height + 8
    for quantity, cs in rows:
        shown = min(channels[quantity], MAX_CHANNELS)
        for channel in range(shown):
            box = svg.Box(PANEL_WIDTH * (channel % PER_ROW), y + PANEL_HEIGHT * (channel // PER_ROW),
                          PANEL_WIDTH, PANEL_HEIGHT)
            title = quantity + (f", channel {channel}" if channels[quantity] > 1 else "")
            lines = [_line(c, channel, drawn) for c in cs]
            parts.append(svg.panel(box, title, lines, x_range, x_ticks, shaded))
        y += PANEL_HEIGHT * math.ceil(shown / PER_ROW)
        if shown < channels[quantity]:
            parts.append(f'<text x="8" y="{svg.num(y + 4)}">{escape(quantity)}: channels {shown} to '
                         f"{channels[quantity] - 1} not drawn</text>")
            y += 16
    label = escape(f"running statistics of {case_id} per step and channel", quote=True)
    return (f'<svg class="plot" viewBox="0 0 {svg.num(width)} {svg.num(y)}" width="{svg.num(width)}" '
            f'height="{svg.num(y)}" role="img" aria-label="{label}">{"".join(parts)}</svg>')


def _line(curve: Curve, channel: int, drawn: set[int]) -> svg.Line:
    points = [(s, r[channel] if channel < len(r) else None) for s, r in zip(curve.steps, curve.values)
              if s in drawn]
    return svg.Line(curve.style, [float(s) for s, _ in points], [v for _, v in points])
