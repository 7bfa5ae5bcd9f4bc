"""Which spec texts have passed the schema before, so that a run need not import and run
the JSON Schema validator for them again: for the corpus that is about 0.13 s of CPU, the
largest part of the command line's start that the frameworks' imports cannot hide
(measured: a Paddle run 1.44 -> 1.38 s).

A text is remembered by a hash of itself together with the schema, the code that checks
it and the kit's version, so a change to any of them is a miss. Only passes are
remembered: a spec with problems is checked every time, and gets its full messages.

A spec that loads literal arrays from files beside it (``{file: vectors.npz, key: x}``) is
keyed by those files' contents too: its entry lists each referenced file (relative to the
spec's folder) with the SHA-256 of its bytes, and it is a hit only while every one of them
still hashes the same from the folder of the spec being loaded; a changed, missing or
unreadable file is a miss, and a file-referencing spec given as text (no folder) is never a
hit. (The files' own checks, shape, dtype and values, run on every load either way.)
The cache is a folder of empty files, ``$CONFORMANCE_CACHE_DIR`` or
``$XDG_CACHE_HOME/conformance`` (``~/.cache/conformance``); ``CONFORMANCE_NO_CACHE=1``
turns it off, and a folder that cannot be written only means no cache.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable
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


def _file_digests(spec_folder: Path, files: Iterable[str]) -> dict[str, str] | None:
    """``{file: sha256 of its bytes}`` for files relative to ``spec_folder``; None when one
    cannot be read."""
    try:
        return {name: hashlib.sha256((spec_folder / name).read_bytes()).hexdigest() for name in files}
    except (OSError, ValueError):  # missing, unreadable, a NUL in the name
        return None


def passed_before(text: str, spec_folder: Path | None = None) -> bool:
    """Did ``text`` pass before, with the same contents of the files it references (relative
    to ``spec_folder``, the folder of the spec file)?"""
    folder = cache_dir()
    if folder is None:
        return False
    try:
        recorded = _entry(folder, text).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return False
    if not recorded:
        return True  # references no files
    try:
        files = dict(json.loads(recorded)["files"])
    except (ValueError, KeyError, TypeError):
        return False
    return spec_folder is not None and _file_digests(spec_folder, files) == files


def remember_pass(text: str, spec_folder: Path | None = None, files: Iterable[str] = ()) -> None:
    """Remember that ``text`` passed, with the contents of the ``files`` it references
    (relative to ``spec_folder``); nothing is remembered when one of them cannot be read."""
    folder = cache_dir()
    files = sorted(set(files))
    if folder is None or (files and spec_folder is None):
        return
    digests = _file_digests(spec_folder, files) if spec_folder is not None else {}
    if digests is None:
        return
    try:
        folder.mkdir(parents=True, exist_ok=True)
        _entry(folder, text).write_text(json.dumps({"files": digests}) if digests else "", encoding="utf-8")
    except OSError:
        pass  # a read-only home: no cache, the same results
