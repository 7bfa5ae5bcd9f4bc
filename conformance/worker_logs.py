"""Where a worker's own output goes: its file descriptors 1 and 2 (Python's prints and the
framework's C++ logs alike) are a log file, never the console, which shows only the kit's
output. ``conformance run`` keeps them in ``<out>/logs/<framework>.log``; elsewhere they go
to a temporary folder removed when the process exits, and a worker that dies has the end of
its log quoted in its error message either way."""

from __future__ import annotations

import atexit
import itertools
import os
import shutil
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import IO

TAIL_LINES = 12
TAIL_CHARS = 2000
_temporary: Path | None = None
_numbered = itertools.count(1)


def temporary_dir() -> Path:
    """One folder for the workers of this process, removed when it exits."""
    global _temporary
    if _temporary is None:
        _temporary = Path(tempfile.mkdtemp(prefix="conformance-worker-logs-"))
        atexit.register(shutil.rmtree, _temporary, True)
    return _temporary


def file_names(names: Sequence[str]) -> list[str]:
    """A log file name per adapter name; two adapters of one name (two classes of one
    module) get ``name.log`` and ``name-2.log``, so that their outputs never interleave."""
    seen: dict[str, int] = {}
    files = []
    for name in names:
        seen[name] = seen.get(name, 0) + 1
        files.append(f"{name}.log" if seen[name] == 1 else f"{name}-{seen[name]}.log")
    return files


class WorkerLog:
    """One worker's log file, shared by its restarts (appended to, a header line each)."""

    def __init__(self, path: Path | None = None, name: str = "worker") -> None:
        self.path = path if path is not None else temporary_dir() / f"{name}-{next(_numbered)}.log"
        self._since = 0  # where the current process's output begins

    def open_for(self, what: str) -> IO[bytes]:
        """The file a new worker process gets as fd 1 and 2 (the caller closes its copy)."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        log = self.path.open("ab")
        log.write(f"=== {what}, {time.strftime('%Y-%m-%d %H:%M:%S')} ===\n".encode())
        log.flush()
        self._since = log.tell()
        return log

    def tail(self) -> str:
        """The last lines the current worker process wrote ("" when it wrote nothing)."""
        try:
            with self.path.open("rb") as log:
                log.seek(max(self._since, os.path.getsize(self.path) - TAIL_CHARS))
                text = log.read().decode("utf-8", "replace")
        except OSError:
            return ""
        return "\n".join(text.strip().splitlines()[-TAIL_LINES:])

    def quoted_tail(self) -> str:
        """``tail`` as a suffix of an error message, naming the file."""
        tail = self.tail()
        if not tail:
            return f" (it wrote nothing; log: {self.path})"
        return f"; its last output ({self.path}):\n  " + tail.replace("\n", "\n  ")
