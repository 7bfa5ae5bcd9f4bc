"""Ctrl-C during ``conformance run``: stop cleanly, say what is safe and how to go on.

The first Ctrl-C sets a flag that the runner watches (``runner.run(stop=...)``): the workers
are killed, the cases cut off get no verdict, every finished case is already in the per-case
logs, and the command prints how many are safe and the command that resumes, then exits 130
(128 + SIGINT, what a shell reports for an interrupted command). A second Ctrl-C exits at
once; the logs are safe then too, since each line is written as its case finishes.
"""

from __future__ import annotations

import os
import shlex
import shutil
import signal
import sys
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

if TYPE_CHECKING:
    from conformance.runner import RunOutcome

EXIT_INTERRUPTED = 130


@contextmanager
def stop_on_interrupt() -> Iterator[threading.Event]:
    """An event set by Ctrl-C (SIGINT) while the block runs, instead of KeyboardInterrupt.
    Outside the main thread no handler can be installed: the event is then never set."""
    stop = threading.Event()

    def handler(signum: int, frame: Any) -> None:
        if stop.is_set():  # the user insists: leave now, the logs hold every finished case
            os.write(2, b"\ninterrupted again: exiting now\n")
            os._exit(EXIT_INTERRUPTED)
        stop.set()

    try:
        previous = signal.signal(signal.SIGINT, handler)
    except ValueError:  # not the main thread
        yield stop
        return
    try:
        yield stop
    finally:
        signal.signal(signal.SIGINT, previous)


def resume_command(argv: Sequence[str]) -> str:
    """The command line that was run (``argv``: its arguments), with ``--resume``."""
    words = list(argv)
    if "--resume" not in words:
        words.insert(words.index("--") if "--" in words else len(words), "--resume")
    return shlex.join([*_program(), *words])


def _program() -> list[str]:
    """How the user started the kit: ``conformance`` or ``python -m conformance``, spelled
    as short as still names the same program on this PATH."""
    if Path(sys.argv[0]).name == "__main__.py":
        return [_shortest(sys.executable, ("python", "python3")), "-m", "conformance"]
    if Path(sys.argv[0]).name == "conformance":
        return [_shortest(sys.argv[0], ("conformance",))]
    return ["conformance"]  # called in-process (``cli.main`` from a test or a script)


def _shortest(path: str, names: Sequence[str]) -> str:
    for name in names:
        found = shutil.which(name)
        if found is not None and os.path.abspath(found) == os.path.abspath(path):
            return name
    return path


def print_interrupted(outcome: RunOutcome, argv: Sequence[str], out: str, stream: TextIO | None = None) -> None:
    """What an interrupted run kept, and the command that runs the rest."""
    stream = stream or sys.stderr
    done = sum(t.done for t in outcome.tallies)
    total = sum(t.total for t in outcome.tallies)
    columns = ", ".join(f"{t.column} {t.done}/{t.total}" for t in outcome.tallies)
    stream.write(f"\ninterrupted: {done} finished case(s) are safe in {out}/"
                 f"{f' ({columns})' if columns else ''}; the {total - done} cut off have no result.\n"
                 f"to run the rest: {resume_command(argv)}\n")


def print_resumed(outcome: RunOutcome, out: str, stream: TextIO | None = None) -> None:
    """How many cases ``--resume`` kept from the interrupted run and how many it ran again."""
    stream = stream or sys.stdout
    kept = sum(t.kept for t in outcome.tallies)
    total = sum(t.total for t in outcome.tallies)
    columns = ", ".join(f"{t.column} kept {t.kept} of {t.total}" for t in outcome.tallies)
    stream.write(f"resumed from {out}/: kept {kept} finished case(s), re-ran {total - kept}"
                 f"{f' ({columns})' if columns else ''}\n")
