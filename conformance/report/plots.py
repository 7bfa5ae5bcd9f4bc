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
FLOOR = -9.0
MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*")  # one per column: overlapping lines stay visible  # log10 of an error of 0 is drawn as 1e-9


class MissingDependency(RuntimeError):
    """An optional package the requested output needs is not installed."""


def _figure(width: float, height: float) -> Any:
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:
        raise MissingDependency("the HTML report draws its pictures with matplotlib, which is not "
                                f"installed; install it with: {INSTALL}") from None
    figure = Figure(figsize=(width, height), dpi=80, layout="constrained")
    FigureCanvasAgg(figure)
    return figure


def _png(figure: Any) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()


def largest_error(entry: dict[str, Any] | None) -> float | None:
    """The largest relative error over all checks of a cell, or the absolute one for a
    check whose relative error is 0 (expected values of 0); None: no numbers."""
    if entry is None:
        return None
    errors = []
    for check in entry.get("checks") or []:
        try:
            rel, abs_ = float(check.get("max_rel_error", 0.0)), float(check.get("max_abs_error", 0.0))
        except (TypeError, ValueError):  # "nan" / "inf"
            rel = abs_ = math.inf
        errors.append(rel if rel > 0 or math.isnan(rel) else abs_)
    return max(errors) if errors else None


def heat_map(matrix: Matrix) -> bytes:
    """Case x column, coloured by log10 of the largest error of every check (relative,
    absolute where the expected value is 0);
    cells without numbers (errors, unsupported, skipped) are grey; each cell is labelled
    with its verdict."""
    rows = rows_worst_first(matrix)
    values = np.full((len(rows), len(matrix.columns)), np.nan)
    for i, case_id in enumerate(rows):
        for j, col in enumerate(matrix.columns):
            error = largest_error(matrix.cell(case_id, col))
            if error is not None:
                values[i, j] = FLOOR if error <= 0 else min(math.log10(error), 6.0)
    figure = _figure(2.0 + 1.6 * len(matrix.columns) + 0.07 * max(map(len, rows or [""])),
                     1.4 + 0.32 * len(rows))
    ax = figure.add_subplot()
    top = max(1.0, float(np.nanmax(values)) if np.isfinite(values).any() else 1.0)
    cmap = _cmap()
    image = ax.imshow(np.ma.masked_invalid(values), cmap=cmap, vmin=FLOOR, vmax=top, aspect="auto")
    for i, case_id in enumerate(rows):
        for j, col in enumerate(matrix.columns):
            entry = matrix.cell(case_id, col)
            label = SHORT.get(str(entry["verdict"]), "?") if entry else "-"
            if entry and (entry.get("stale") or mark(entry).endswith("!")):
                label += "!"
            dark = np.isfinite(values[i, j]) and values[i, j] > FLOOR + 0.7 * (top - FLOOR)
            ax.text(j, i, label, ha="center", va="center", fontsize=8,
                    color="white" if dark else "black")
    ax.set_xticks(range(len(matrix.columns)), [c.label for c in matrix.columns], rotation=20, ha="right")
    ax.set_yticks(range(len(rows)), rows, fontsize=8)
    ax.set_title("Largest relative error over all checks (absolute where the expected value "
                 "is 0); grey: no values", fontsize=9)
    figure.colorbar(image, ax=ax, label="log10 error", shrink=0.8)
    return _png(figure)


def _cmap() -> Any:
    from matplotlib import colormaps

    return colormaps["YlOrRd"].with_extremes(bad="#d9d9d9")  # bad (masked): no numbers


def has_statistics(matrix: Matrix, case_id: str) -> bool:
    """Whether some column recorded running statistics for the case."""
    return any(q in ((matrix.cell(case_id, col) or {}).get("series") or {})
               for col in matrix.columns for q in STAT_QUANTITIES)


def statistics(matrix: Matrix, case_id: str) -> bytes:
    """Running mean and variance per step per column (every channel, one colour per column)
    against the reference (dashed); below, observed minus reference."""
    from matplotlib import colormaps

    quantities = [q for q in STAT_QUANTITIES
                  if any(q in ((matrix.cell(case_id, c) or {}).get("series") or {}) for c in matrix.columns)]
    figure = _figure(4.6 * len(quantities), 5.4)
    axes = figure.subplots(2, len(quantities), squeeze=False, sharex=True)
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
