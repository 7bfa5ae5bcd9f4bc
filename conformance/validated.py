"""Which spec texts have passed the schema before, so that a run need not import and run
the JSON Schema validator for them again: for the corpus that is about 0.13 s of CPU, the
largest part of the command line's start that the frameworks' imports cannot hide
(measured: a Paddle run 1.44 -> 1.38 s).

A text is remembered by a hash of itself together with the schema, the code that checks
it and the kit's version, so a change to any of them is a miss. Only passes are
remembered: a spec with problems is checked every time, and gets its full messages.
The cache is a folder of empty files, ``$CONFORMANCE_CACHE_DIR`` or
``$XDG_CACHE_HOME/conformance`` (``~/.cache/conformance``); ``CONFORMANCE_NO_CACHE=1``
turns it off, and a folder that cannot be written only means no cache.
"""

from __future__ import annotations

import hashlib
import os
from functools import cache
from pathlib import Path

from conformance import __version__

_CHECKED_BY = ("schema/spec-v1.json", "spec.py", "yamlines.py")


def cache_dir() -> Path | None:
    """Where passes are remembered; None when caching is off."""
    if os.environ.get("CONFORMANCE_NO_CACHE"):
        return None
    root = os.environ.get("CONFORMANCE_CACHE_DIR")
    if not root:
        base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
        root = os.path.join(base, "conformance")
    return Path(root) / "valid-specs"


@cache
def _checker_digest() -> bytes:
    digest = hashlib.sha256(__version__.encode())
    for name in _CHECKED_BY:
        digest.update((Path(__file__).parent / name).read_bytes())
    return digest.digest()


def _entry(folder: Path, text: str) -> Path:
    return folder / hashlib.sha256(_checker_digest() + text.encode("utf-8", "surrogatepass")).hexdigest()


def passed_before(text: str) -> bool:
    folder = cache_dir()
    return folder is not None and _entry(folder, text).is_file()


def remember_pass(text: str) -> None:
    folder = cache_dir()
    if folder is None:
        return
    try:
        folder.mkdir(parents=True, exist_ok=True)
        _entry(folder, text).touch()
    except OSError:
        pass  # a read-only home: no cache, the same results
