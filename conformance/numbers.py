"""Numbers as people read them in findings: as few significant digits as show the
difference between an observed and an expected value ("observed 20.00003, expected 20",
never "observed 20, expected 20")."""

from __future__ import annotations

import math
from typing import Any

MIN_DIGITS = 4


def short(value: Any, digits: int = MIN_DIGITS) -> str:
    """A float with ``digits`` significant digits; anything else as its text."""
    if isinstance(value, float) and math.isfinite(value):
        return f"{value:.{digits}g}"
    return str(value)


def pair(observed: Any, expected: Any) -> tuple[str, str]:
    """Both values with the fewest significant digits (at least ``MIN_DIGITS``, at most 17,
    enough for any float64) at which their printed difference is their real one to within a
    tenth: rounding must not hide a difference (20.00003 and 20 both "20"), nor make one up
    (-0.9999950 and -0.9999950068 as "-0.99999" and "-1")."""
    if not (isinstance(observed, float) and isinstance(expected, float)) or \
            not (math.isfinite(observed) and math.isfinite(expected)):
        return short(observed), short(expected)
    if observed == expected:
        return short(observed), short(expected)
    allowed = abs(observed - expected) / 10
    for digits in range(MIN_DIGITS, 18):
        a, b = short(observed, digits), short(expected, digits)
        if abs(float(a) - observed) <= allowed and abs(float(b) - expected) <= allowed:
            return a, b
    return repr(observed), repr(expected)
