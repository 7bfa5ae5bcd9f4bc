"""Pictures for the HTML report, drawn with matplotlib's Agg canvas (no pyplot, no window,
no global backend change) and returned as PNG bytes.

matplotlib is an optional dependency (``pip install "conformance[report]"``): it is
imported inside the functions, and a missing one raises ``MissingDependency`` with the
command that installs it.
"""

from __future__ import annotations

import io
import math
from typing import Any

import numpy as np

from conformance.report.findings import SHORT, mark, rows_worst_first
from conformance.report.merge import Matrix

INSTALL = 'pip install "conformance[report]"  (or: pip install matplotlib)'
STAT_QUANTITIES = ("running_mean", "running_var")
MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*")  # one per column: overlapping lines stay visible


class MissingDependency(RuntimeError):
    """An optional package the requested output needs is not installed."""


def require() -> None:
    """Raise ``MissingDependency`` (with the install command) when matplotlib is missing."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise MissingDependency("the HTML report draws its pictures with matplotlib, which is not "
                                f"installed; install it with: {INSTALL}") from None


def _figure(width: float, height: float) -> Any:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height), dpi=72)
    FigureCanvasAgg(figure)
    return figure


def _png(figure: Any) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", bbox_inches="tight", pad_inches=0.1)
    return buffer.getvalue()


def largest_error(entry: dict[str, Any] | None) -> float | None:
    """The largest error over the checks of a cell that fail their tolerance: relative, or
    absolute where the relative error is 0 (expected values of 0). 0.0: every check is
    within tolerance; None: no values (an error, unsupported, skipped, missing)."""
    if entry is None or not entry.get("checks"):
        return None
    errors = [0.0]
    for check in entry["checks"]:
        if check.get("ok", True):
            continue
        try:
            rel, abs_ = float(check.get("max_rel_error", 0.0)), float(check.get("max_abs_error", 0.0))
        except (TypeError, ValueError):  # "nan" / "inf" written as strings
            rel = abs_ = math.inf
        errors.append(rel if rel > 0 or math.isnan(rel) else abs_)
    return max(errors)


def heat_map(matrix: Matrix) -> bytes:
    """Case x column: cells with checks outside tolerance coloured by log10 of their largest
    error, green where every check is within tolerance, grey where there are no values; each
    cell is labelled with its verdict."""
    from matplotlib import colormaps
    from matplotlib.cm import ScalarMappable
    from matplotlib.colors import Normalize

    rows = rows_worst_first(matrix)
    errors = [[largest_error(matrix.cell(c, col)) for col in matrix.columns] for c in rows]
    failing = [math.log10(e) for row in errors for e in row if e]
    low, top = (min(min(failing), -3.0), max(max(failing), 0.0)) if failing else (-3.0, 0.0)
    norm, cmap = Normalize(vmin=low, vmax=min(top, 6.0)), colormaps["YlOrRd"]
    colors = np.zeros((len(rows), len(matrix.columns), 4))
    for i, row in enumerate(errors):
        for j, error in enumerate(row):
            colors[i, j] = (cmap(norm(min(math.log10(error), 6.0))) if error
                            else (0.85, 0.94, 0.82, 1.0) if error == 0.0 else (0.85, 0.85, 0.85, 1.0))
    figure = _figure(2.0 + 1.6 * len(matrix.columns) + 0.07 * max(map(len, rows or [""])),
                     1.4 + 0.3 * len(rows))
    ax = figure.add_subplot()
    ax.imshow(colors, aspect="auto")
    for i, case_id in enumerate(rows):
        for j, col in enumerate(matrix.columns):
            entry = matrix.cell(case_id, col)
            label = SHORT.get(str(entry["verdict"]), "?") if entry else "-"
            if entry and (entry.get("stale") or mark(entry).endswith("!")):
                label += "!"
            error = errors[i][j]
            dark = error is not None and error > 0 and norm(math.log10(error)) > 0.7
            ax.text(j, i, label, ha="center", va="center", fontsize=8, color="white" if dark else "black")
    ax.set_xticks(range(len(matrix.columns)), [c.label for c in matrix.columns], rotation=20, ha="right")
    ax.set_yticks(range(len(rows)), rows, fontsize=8)
    ax.set_title("Largest error outside tolerance (relative; absolute where the expected value is 0)\n"
                 "green: every check within tolerance; grey: no values", fontsize=9)
    figure.colorbar(ScalarMappable(norm=norm, cmap=cmap), ax=ax, label="log10 error", shrink=0.6)
    return _png(figure)


def has_statistics(matrix: Matrix, case_id: str) -> bool:
    """Whether some column recorded running statistics for the case after two steps or more
    (a single step is a point: the matrix and the details say it)."""
    return any(len((((matrix.cell(case_id, col) or {}).get("series") or {}).get(q) or {}).get("steps", [])) >= 2
               for col in matrix.columns for q in STAT_QUANTITIES)


def statistics(matrix: Matrix, case_id: str) -> bytes:
    """Running mean and variance per step per column (every channel, one colour per column)
    against the reference (dashed); below, observed minus reference."""
    from matplotlib import colormaps

    quantities = [q for q in STAT_QUANTITIES
                  if any(q in ((matrix.cell(case_id, c) or {}).get("series") or {}) for c in matrix.columns)]
    figure = _figure(4.6 * len(quantities), 5.4)
    axes = figure.subplots(2, len(quantities), squeeze=False, sharex=True)
    figure.subplots_adjust(hspace=0.3, wspace=0.25)
    colors = colormaps["tab10"]
    program = matrix.case_info(case_id).get("program") or {}
    eval_steps = [i for i, s in enumerate(program.get("steps", [])) if s.get("mode") == "eval"]
    for k, quantity in enumerate(quantities):
        top, bottom = axes[0][k], axes[1][k]
        references: list[np.ndarray] = []
        last = 0
        for j, col in enumerate(matrix.columns):
            series = ((matrix.cell(case_id, col) or {}).get("series") or {}).get(quantity)
            if not series:
                continue
            steps = np.asarray(series["steps"])
            observed = _per_step(series["observed"], len(steps))
            style = {"color": colors(j % 10), "marker": MARKERS[j % len(MARKERS)], "fillstyle": "none",
                     "markersize": max(9 - 1.5 * j, 3), "linewidth": 1, "alpha": 0.85}
            top.plot(steps, observed, **style, label=[col.label] + ["_nolegend_"] * (observed.shape[1] - 1))
            reference = _per_step(series["reference"], len(steps))
            if not any(r.shape == reference.shape and np.allclose(r, reference, equal_nan=True)
                       for r in references):
                references.append(reference)
                top.plot(steps, reference, "--x", color="black", markersize=4, linewidth=0.8,
                         label=["reference"] + ["_nolegend_"] * (reference.shape[1] - 1))
            bottom.plot(steps, observed - reference, **style)
            last = max(last, int(steps.max()) if steps.size else 0)
        for ax in (top, bottom):
            for step in eval_steps:
                ax.axvspan(step - 0.5, step + 0.5, color="#eeeeee", zorder=0)
            ax.grid(alpha=0.3)
        top.set_title(f"{quantity} (grey: eval steps)", fontsize=9)
        bottom.set_title(f"{quantity}: observed - reference", fontsize=9)
        bottom.set_xlabel("step")
        bottom.set_xticks(range(last + 1))
        bottom.set_xlim(-0.5, last + 0.5)
        top.legend(fontsize=7)
    return _png(figure)


def _per_step(values: list[Any], steps: int) -> np.ndarray:
    """Steps x channels as float (``None`` for a missing reference becomes NaN)."""
    rows = [np.full(1, np.nan) if v is None else np.atleast_1d(np.asarray(v, dtype=float)) for v in values]
    width = max(r.size for r in rows) if rows else 1
    return np.array([np.resize(r, width) if r.size != width else r for r in rows]).reshape(steps, width)
