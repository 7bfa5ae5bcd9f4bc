"""The colours of the HTML matrix: the verdict first, the size of the error second.

Each cell falls in one category (``category``), ordered as ``findings.severity`` orders
cells (an error the registry expects is told apart from an expected divergence), and each
category has its own hue, so that no error size can make a cell look like another verdict:
a documented convention is blue however large its error, never the red of an unexpected
divergence; an error is purple, never the grey of "no values". Within the hue the cell is
darker the larger its error (an error raised has no size: always the darkest), measured as the text report measures it (``findings.magnitude``:
the worst absolute error, an error counting as infinite) on a log scale from ``LOW`` to
``HIGH``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from conformance.report.findings import magnitude, severity

LOW, HIGH = 1e-6, 1e2  # errors at or below LOW get the lightest shade, at or above HIGH the darkest


@dataclass(frozen=True)
class Category:
    """A verdict's colour: ``light`` for the smallest errors, ``dark`` for the largest."""

    key: str
    label: str
    light: str
    dark: str


CATEGORIES = (
    Category("unexpected", "unexpected divergence or error, or a stale registry entry (fails CI)",
             "#f6b8b0", "#a50f15"),
    Category("expected", "divergence expected by the registry", "#fcdcaa", "#b35806"),
    Category("error", "error expected by the registry", "#e3c9ef", "#6a2c8e"),
    Category("convention", "documented convention", "#cfe1f2", "#1f5f99"),
    Category("unsupported", "unsupported by the framework", "#e9dfc4", "#e9dfc4"),
    Category("none", "no values: skipped, or no result", "#eeeeee", "#eeeeee"),
    Category("conforms", "conforms (or refused as the spec expects)", "#cdeac5", "#cdeac5"),
)
BY_KEY = {c.key: c for c in CATEGORIES}


def category(entry: dict[str, Any] | None) -> Category:
    """The cell's category, from its severity (``findings.severity``)."""
    level = severity(entry)
    if entry is None or level == 4:
        return BY_KEY["none"]
    if level == 1:
        return BY_KEY["error" if entry.get("verdict") == "error" else "expected"]
    return BY_KEY[("unexpected", "", "convention", "unsupported", "", "conforms")[level]]


def contrast(a: str, b: str) -> float:
    """WCAG contrast ratio of two colours, 1 to 21."""
    lighter, darker = sorted((luminance(a), luminance(b)), reverse=True)
    return (lighter + 0.05) / (darker + 0.05)


def shade(error: float) -> float:
    """0 (lightest) to 1 (darkest): log10 of ``error`` between ``LOW`` and ``HIGH``; NaN
    and infinity are the darkest."""
    if math.isnan(error) or math.isinf(error):
        return 1.0
    if error <= LOW:
        return 0.0
    return min(1.0, (math.log10(error) - math.log10(LOW)) / (math.log10(HIGH) - math.log10(LOW)))


def mix(light: str, dark: str, t: float) -> str:
    """The colour ``t`` of the way from ``light`` to ``dark`` (``#rrggbb``)."""
    a, b = rgb(light), rgb(dark)
    return "#" + "".join(f"{round(x + (y - x) * t):02x}" for x, y in zip(a, b))


def rgb(color: str) -> tuple[int, int, int]:
    return int(color[1:3], 16), int(color[3:5], 16), int(color[5:7], 16)


def luminance(color: str) -> float:
    """Relative luminance (WCAG), 0 black to 1 white."""
    def linear(c: int) -> float:
        s = c / 255
        return s / 12.92 if s <= 0.03928 else ((s + 0.055) / 1.055) ** 2.4

    r, g, b = map(linear, rgb(color))
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def cell_color(entry: dict[str, Any] | None) -> tuple[str, str]:
    """(background, text colour) of a matrix cell: the category's hue, shaded by the error."""
    cat = category(entry)
    background = mix(cat.light, cat.dark, shade(magnitude(entry)))
    return background, max(("#1a1a1a", "#ffffff"), key=lambda text: contrast(background, text))
