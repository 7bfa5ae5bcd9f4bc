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

from conformance.report.merge import Matrix, ResultsFileError, load

FORMATS = {"text": "text", "md": "markdown", "html": "html", "json": "jsonfmt", "junit": "junit"}

__all__ = ["FORMATS", "Matrix", "ResultsFileError", "load", "render"]


def render(matrix: Matrix, fmt: str, color: bool = False, width: int | None = None) -> str:
    """The report in format ``fmt`` (a key of ``FORMATS``); ``color`` and ``width`` only
    matter for ``text``."""
    module = importlib.import_module(f"conformance.report.{FORMATS[fmt]}")
    if fmt == "text":
        return str(module.render(matrix, color=color, width=width))
    return str(module.render(matrix))
