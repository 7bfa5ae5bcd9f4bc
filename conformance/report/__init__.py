"""Reports people read, from results files of many runs: ``conformance report``.

``merge`` loads and merges results into a case x column matrix (a column is one framework
on one device on one machine), ``findings`` orders cells worst first and describes the
non-conforming ones, ``snippets`` writes code in each framework's own API that reproduces a
case, and one module per format renders the matrix: ``text`` (rich), ``markdown``,
``html`` (one self-contained page, SVG plots), ``jsonfmt`` and ``junit``. ``progress`` is the
live display of ``conformance run``.

Formats are imported on use, so that importing this package costs nothing.
"""

from __future__ import annotations

import importlib
from typing import Any

from conformance.errors import UNREADABLE
from conformance.report.merge import Column, Matrix, ResultsFileError, load

FORMATS = {"text": "text", "md": "markdown", "html": "html", "json": "jsonfmt", "junit": "junit"}

__all__ = ["FORMATS", "Matrix", "ResultsFileError", "load", "render"]


def render(matrix: Matrix, fmt: str, color: bool = False, width: int | None = None) -> str:
    """The report in format ``fmt`` (a key of ``FORMATS``); ``color`` and ``width`` only
    matter for ``text``. An entry whose content the format cannot read (a results file
    edited by hand or written by another tool: the types of its keys are checked when it
    is loaded, not everything inside them) is a ``ResultsFileError`` naming the file and
    the case."""
    try:
        return _render(matrix, fmt, color, width)
    except UNREADABLE as exc:
        culprit = _first_unreadable(matrix, fmt)
        if culprit is None:
            raise
        column, case_id, problem = culprit
        raise ResultsFileError(f"{', '.join(column.sources)}: case {case_id!r} cannot be read ({problem}); "
                               "expected an entry as `conformance run` writes it (re-run the case, or "
                               "remove the entry)") from exc


def _first_unreadable(matrix: Matrix, fmt: str) -> tuple[Column, str, str] | None:
    """The first (column, case id, problem) that fails to render on its own."""
    for column in matrix.columns:
        for case_id, entry in column.cases.items():
            alone = Matrix(columns=[_with_only(column, case_id, entry)], case_ids=[case_id])
            try:
                _render(alone, fmt, False, None)
            except UNREADABLE as exc:
                return column, case_id, f"{type(exc).__name__}: {exc}"
    return None


def _with_only(column: Column, case_id: str, entry: dict[str, Any]) -> Column:
    return Column(column.framework, column.framework_version, column.device, column.environment,
                  column.documented, list(column.sources), {case_id: entry}, column.label)


def _render(matrix: Matrix, fmt: str, color: bool, width: int | None) -> str:
    module = importlib.import_module(f"conformance.report.{FORMATS[fmt]}")
    if fmt == "text":
        return str(module.render(matrix, color=color, width=width))
    return str(module.render(matrix))
