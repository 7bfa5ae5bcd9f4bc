"""A small SVG line-chart writer for the HTML report: panels with axes, ticks, labelled
lines and markers, drawn as text with no dependency. The output is deterministic (the same
data give the same bytes) and compact (points on whole pixels, marker shapes to 0.1 px,
one ``<g>`` per line, styles as classes)."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from html import escape

CHAR_WIDTH = 6.6  # px per character at the 11-12 px font the report uses: enough to lay out text


@dataclass(frozen=True)
class Style:
    """How one line is drawn: ``css``, the class whose rules (in the page's style sheet) give
    its colour, width and dash (``.c0 {stroke: ...}``, ``.c0 > .l {stroke-dasharray: ...}``
    for the line alone), the marker shape (a key of ``MARKERS``) and radius, and its legend
    text. Classes keep the pictures small: the style is written once, not on every line."""

    css: str
    marker: str
    radius: float
    label: str


@dataclass
class Line:
    """Points (x, y) of one line; a y of None or one not ``drawable`` breaks the line there."""

    style: Style
    xs: Sequence[float]
    ys: Sequence[float | None]


@dataclass(frozen=True)
class Box:
    """A panel's place in the picture, in px."""

    x: float
    y: float
    width: float
    height: float


def num(value: float) -> str:
    """A coordinate to 0.1 px, without a trailing ``.0``."""
    text = f"{value:.1f}"
    return "0" if text == "-0.0" else text.removesuffix(".0")


def nice_ticks(low: float, high: float, count: int = 5) -> list[float]:
    """About ``count`` round tick values (1, 2 or 5 times a power of ten apart) in
    [low, high]; ``low < high``."""
    raw = (high - low) / max(count - 1, 1)
    power = 10.0 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 5, 10) if m * power >= raw)
    first = math.ceil(low / step - 1e-9)
    ticks = []
    k = first
    while k * step <= high + step * 1e-9:
        ticks.append(0.0 if k == 0 else k * step)
        k += 1
    return ticks


def tick_labels(ticks: Sequence[float]) -> list[str]:
    """The shortest ``g`` formatting under which every tick reads differently, without an
    exponent between 1e-4 and 1e6 (``200``, not ``2e+02``)."""
    for digits in range(1, 16):
        labels = [_plain(t, digits) for t in ticks]
        if len(set(labels)) == len(labels):
            return labels
    return [repr(t) for t in ticks]


def _plain(value: float, digits: int) -> str:
    text = f"{value:.{digits}g}"
    if "e" in text and 1e-4 <= abs(value) < 1e6:
        text = f"{float(text):f}".rstrip("0").rstrip(".")
    return text


def value_range(values: Sequence[float], least: float = 1e-3) -> tuple[float, float]:
    """The finite values' extent, padded by 8 % so that no point sits on the frame, and at
    least ``least`` times the largest magnitude wide (1e-6 at 0): rounding noise of float32
    (1e-7 relative) stays a flat line instead of filling the panel."""
    finite = [v for v in values if drawable(v)]
    if not finite:
        return 0.0, 1.0
    low, high = min(finite), max(finite)
    span = max(high - low, least * max(abs(low), abs(high)), 1e-6)
    middle = (low + high) / 2
    return middle - span * 0.58, middle + span * 0.58


def drawable(value: float) -> bool:
    """Finite, and small enough that scaling it cannot overflow (a value beyond 1e300 breaks
    the line as a NaN does)."""
    return math.isfinite(value) and abs(value) < 1e300


def marker(shape: str, x: float, y: float, r: float) -> str:
    """Path data of one hollow marker centred on (x, y): every marker of a line goes into
    one ``<path>``."""
    return MARKERS[shape](x, y, r)


def _circle(x: float, y: float, r: float) -> str:
    return f"M{num(x - r)} {num(y)}a{num(r)} {num(r)} 0 1 0 {num(2 * r)} 0a{num(r)} {num(r)} 0 1 0 {num(-2 * r)} 0"


def _square(x: float, y: float, r: float) -> str:
    s = r * 0.85  # a square looks larger than a circle of the same radius
    return f"M{num(x - s)} {num(y - s)}h{num(2 * s)}v{num(2 * s)}h{num(-2 * s)}Z"


def _triangle(x: float, y: float, r: float) -> str:
    return f"M{num(x)} {num(y - r)}L{num(x + r * 0.9)} {num(y + r * 0.6)}H{num(x - r * 0.9)}Z"


def _diamond(x: float, y: float, r: float) -> str:
    return f"M{num(x)} {num(y - r)}L{num(x + r)} {num(y)}L{num(x)} {num(y + r)}L{num(x - r)} {num(y)}Z"


def _cross(x: float, y: float, r: float) -> str:
    s = r * 0.75
    return f"M{num(x - s)} {num(y - s)}l{num(2 * s)} {num(2 * s)}m0 {num(-2 * s)}l{num(-2 * s)} {num(2 * s)}"


def _plus(x: float, y: float, r: float) -> str:
    return f"M{num(x - r)} {num(y)}h{num(2 * r)}m{num(-r)} {num(-r)}v{num(2 * r)}"


MARKERS = {"circle": _circle, "square": _square, "triangle": _triangle, "diamond": _diamond,
           "cross": _cross, "plus": _plus}


def panel(box: Box, title: str, lines: Sequence[Line], x_range: tuple[float, float],
          x_ticks: Sequence[int], shaded: Sequence[float] = (), x_label: str = "step") -> str:
    """A framed plot: the lines scaled to the box (y range from their values), a tick and a
    label on each axis tick, a grey band of width 1 around each x in ``shaded``, the title
    above and ``x_label`` below. Text classes: ``t`` title, ``yl``/``xl`` axis labels."""
    y_low, y_high = value_range([y for line in lines for y in line.ys if y is not None])
    ticks = nice_ticks(y_low, y_high)
    labels = tick_labels(ticks)
    left = round(box.x + 10 + CHAR_WIDTH * max(map(len, labels)))
    top, right, bottom = box.y + 20, box.x + box.width - 8, box.y + box.height - 32

    # whole pixels: finer positions add bytes, not legibility
    def sx(x: float) -> float:
        return round(left + (x - x_range[0]) / (x_range[1] - x_range[0]) * (right - left))

    def sy(y: float) -> float:
        return round(bottom - (y - y_low) / (y_high - y_low) * (bottom - top))

    middle = num((left + right) / 2)
    parts = [f'<text x="{middle}" y="{num(box.y + 13)}" class="t">{escape(title)}</text>']
    for x in shaded:
        a, b = sx(max(x - 0.5, x_range[0])), sx(min(x + 0.5, x_range[1]))
        parts.append(f'<path d="M{num(a)} {num(top)}H{num(b)}V{num(bottom)}H{num(a)}Z" class="band"/>')
    grid = "".join(f"M{num(left)} {num(sy(t))}H{num(right)}" for t in ticks)
    marks = "".join(f"M{num(sx(x))} {num(bottom)}v4" for x in x_ticks)
    parts.append(f'<path d="{grid}" class="grid"/><path d="{marks}M{num(left)} {num(top)}H{num(right)}'
                 f'V{num(bottom)}H{num(left)}Z" class="axis"/><g class="yl">')
    parts += [f'<text x="{num(left - 4)}" y="{num(sy(t) + 4)}">{label}</text>' for t, label in zip(ticks, labels)]
    parts.append('</g><g class="xl">')
    parts += [f'<text x="{num(sx(x))}" y="{num(bottom + 14)}">{x}</text>' for x in x_ticks]
    parts.append(f'<text x="{middle}" y="{num(bottom + 28)}">{escape(x_label)}</text></g>')
    parts += [_line(line, sx, sy) for line in lines]
    return "".join(parts)


def _line(line: Line, sx: Callable[[float], float], sy: Callable[[float], float]) -> str:
    """The line's path (class ``l``) and its markers in a group of the style's class."""
    points = [(sx(x), sy(y)) if y is not None and drawable(y) else None
              for x, y in zip(line.xs, line.ys)]
    path, pen = [], "M"
    for point in points:
        if point is None:
            pen = "M"
            continue
        path.append(f"{pen}{num(point[0])} {num(point[1])}")
        pen = "L"
    style = line.style
    marks = "".join(marker(style.marker, x, y, style.radius) for x, y in filter(None, points))
    return f'<g class="{style.css}"><path d="{"".join(path)}" class="l"/><path d="{marks}"/></g>'


def legend(styles: Sequence[Style], x: float, y: float, width: float) -> tuple[str, float]:
    """Legend entries (line sample, marker, text) laid out left to right, wrapping at
    ``width``; returns the SVG and the height it takes."""
    parts, cx, cy = [], x, y + 10
    for style in styles:
        size = 40 + CHAR_WIDTH * len(style.label)
        if cx > x and cx + size > x + width:
            cx, cy = x, cy + 18
        parts.append(f'<g class="{style.css}"><path d="M{num(cx)} {num(cy)}h28" class="l"/>'
                     f'<path d="{marker(style.marker, cx + 14, cy, style.radius)}"/></g>'
                     f'<text x="{num(cx + 34)}" y="{num(cy + 4)}">{escape(style.label)}</text>')
        cx += size + 14
    return "".join(parts), cy - y + 12
