"""Live progress of ``conformance run``: one bar per framework and device (cases done, and
how many did not conform so far: div, err, conv, n/a, skip), drawn with ``rich`` on stderr only when stderr is a
terminal and the ``CI`` environment variable is not set; otherwise nothing at all, so CI
logs keep only the summary."""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, TextIO

Progress = Callable[[str, str, dict[str, Any]], None]
NOTED = {"divergence": "div", "error": "err", "convention": "conv", "unsupported": "n/a", "skipped": "skip"}


def wanted(stream: TextIO | None = None) -> bool:
    """A terminal, outside CI."""
    stream = stream or sys.stderr
    is_tty = getattr(stream, "isatty", lambda: False)()
    return bool(is_tty) and not os.environ.get("CI")


@contextmanager
def live_progress(frameworks: Sequence[str], devices: Sequence[str], cases: int,
                  enabled: bool = True, stream: TextIO | None = None) -> Iterator[Progress | None]:
    """A progress callback for ``runner.run`` (None when no display is wanted); the bars
    stay on screen when the block ends."""
    stream = stream or sys.stderr
    if not enabled or not wanted(stream):
        yield None
        return
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        TextColumn,
        TimeElapsedColumn,
    )
    from rich.progress import Progress as RichProgress

    display = RichProgress(TextColumn("{task.description:<16}"), BarColumn(bar_width=24), MofNCompleteColumn(),
                           TimeElapsedColumn(), TextColumn("{task.fields[noted]}", style="dim"),
                           console=Console(file=stream), transient=False)
    tasks = {f"{fw}-{dev}": display.add_task(f"{fw}-{dev}", total=cases, noted="")
             for fw in frameworks for dev in devices}
    seen: dict[str, dict[str, int]] = {}
    lock = threading.Lock()

    def report(framework: str, device: str, entry: dict[str, Any]) -> None:
        key = f"{framework}-{device}"
        with lock:
            if key not in tasks:  # an adapter whose name differs from the one asked for
                tasks[key] = display.add_task(key, total=cases, noted="")
            counts = seen.setdefault(key, {})
            verdict = str(entry.get("verdict", ""))
            if verdict in NOTED:
                counts[verdict] = counts.get(verdict, 0) + 1
            noted = ", ".join(f"{counts[v]} {short}" for v, short in NOTED.items() if v in counts)
            display.update(tasks[key], advance=1, noted=noted)

    with display:
        yield report
