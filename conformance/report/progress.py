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
    from rich.live import Live
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        TextColumn,
        TimeElapsedColumn,
    )
    from rich.progress import Progress as RichProgress

    display = RichProgress(TextColumn("{task.description:<16}"), BarColumn(bar_width=24), MofNCompleteColumn(),
                           TimeElapsedColumn(), TextColumn("{task.fields[noted]}", style="dim"),
                           console=Console(file=stream), transient=False, auto_refresh=False)
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

    with _once_per_frame(Live)(console=display.console, get_renderable=display.get_renderable,
                               refresh_per_second=4, transient=False, frame=lambda: _frame(display)):
        yield report


def _frame(display: Any) -> tuple[Any, ...]:
    """What the bars show: equal keys draw equal frames (elapsed time is shown in seconds)."""
    return tuple((t.description, t.completed, t.fields.get("noted"),
                  int((t.finished_time if t.finished else t.elapsed) or 0)) for t in display.tasks)


def _once_per_frame(live: type) -> Any:
    """``rich.live.Live`` that skips a refresh showing the frame on screen already: rich's
    timer draws the last frame, and leaving the block drew it a second time (twice in every
    terminal log, and twice on screen when anything had moved the cursor in between)."""

    class OncePerFrame(live):  # type: ignore[valid-type,misc]
        def __init__(self, *args: Any, frame: Callable[[], Any], **kwargs: Any) -> None:
            self._frame, self._drawn = frame, None
            super().__init__(*args, **kwargs)

        def refresh(self) -> None:
            with self._lock:
                frame = self._frame()
                if frame == self._drawn:
                    return
                self._drawn = frame
                super().refresh()

    return OncePerFrame
