"""One framework per process.

The parent keeps one ``WorkerProcess`` per framework alive for the whole run and sends it
cases over a pipe; the child (``serve``) is the only place an adapter, and so a framework,
is ever imported. A worker that raises, aborts, segfaults or hangs past its timeout becomes
an ``error`` result for the case it was running, and is restarted for the next case.

The child is a fresh interpreter started with ``subprocess`` (``child_main``), talking over
one end of a socket pair, not with multiprocessing's spawn: spawn re-runs the parent's main
script in the child (the ``pytest`` or ``conformance`` script, whose imports cost 0.1 s
and more per start; a user's script without a ``__main__`` guard would run twice) and
starts a resource-tracker process besides. POSIX only (``pass_fds``).

The child runs in a session of its own and ignores SIGINT: a Ctrl-C at the terminal reaches
the parent alone, which stops the run and kills its workers (``abort``), instead of every
worker dying mid-case with an answer that looks like a crash. Its file descriptors 1 and 2
are a log file (``conformance.worker_logs``), so the framework's logs stay off the console;
the protocol is the socket, never those streams.

This module imports neither numpy nor the spec model at import time: the command line
spawns the workers before anything heavy is imported, so that the frameworks' imports
(the bulk of a run's start) begin as early as possible.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Generator, Sequence
from multiprocessing.connection import Connection
from pathlib import Path
from typing import TYPE_CHECKING, Any

from conformance.adapters import AdapterRef, load_class
from conformance.worker_logs import WorkerLog, file_names

if TYPE_CHECKING:
    from conformance.model import Case
    from conformance.program import CaseRun

START_TIMEOUT_S = 300.0
# set in every worker: this process runs one framework, so an adapter may keep the others out
ONE_FRAMEWORK_ENV = "CONFORMANCE_WORKER"
CASE_TIMEOUT_S = 120.0


class WorkerFailed(Exception):
    """The framework could not be started in its worker (not installed, import crash)."""


def serve(conn: Connection, target: str) -> None:
    """Child process: load the adapter, answer requests until told to stop.

    Requests: ``("run", case, device)`` answers one run; ``("run_all", cases, device)``
    answers one run per case, in order, each sent as soon as it is done.
    """
    from conformance.program import execute

    try:
        adapter = load_class(target)()
        conn.send(("ready", adapter.describe()))
    except BaseException as exc:  # noqa: BLE001 - a framework's import error is an answer, not a crash
        conn.send(("fatal", f"{type(exc).__name__}: {exc}"))
        return
    while True:
        try:
            request = conn.recv()
        except EOFError:
            return
        op = request[0]
        try:
            if op == "stop":
                conn.close()
                _exit()
            if op == "environment":
                conn.send(("ok", adapter.environment(request[1])))
            elif op == "run":
                conn.send(_run_one(adapter, execute, request[1], request[2]))
            elif op == "run_all":
                for case in request[1]:
                    conn.send(_run_one(adapter, execute, case, request[2]))
            else:
                conn.send(("error", f"unknown request {op!r}"))
        except Exception as exc:  # noqa: BLE001 - the parent gets every failure as an answer
            conn.send(("error", f"{type(exc).__name__}: {exc}"))


# The child's first statement: the parent's import path, set before anything is imported,
# so that the child loads the same ``conformance`` and third-party adapters as the parent
# whatever the working directory holds (``-m`` or ``-c`` would put it first on the path).
# SIGINT is ignored before anything else, so that no Ctrl-C (even one sent to the parent's
# whole process group) interrupts a framework's import or a case: the parent decides.
_BOOTSTRAP = ("import json, signal, sys; signal.signal(signal.SIGINT, signal.SIG_IGN); "
              "sys.path[:] = json.loads(sys.argv[1]); "
              "from conformance.worker import child_main; child_main(sys.argv[2:])")


def child_main(argv: Sequence[str]) -> None:
    """The worker process (``argv``: the socket's descriptor, the adapter's target, the
    parent's pid)."""
    os.environ[ONE_FRAMEWORK_ENV] = "1"  # before the adapter's import (conformance.adapters.keras_env)
    if len(argv) > 2:
        _exit_with_parent(int(argv[2]))
    try:
        serve(Connection(int(argv[0])), argv[1])
    except (EOFError, OSError, KeyboardInterrupt):
        pass  # the parent is gone or was interrupted: nobody is left to answer
    _exit()


def _exit_with_parent(parent: int) -> None:
    """Exit when the parent is gone: in a session of its own, a worker busy with a long case
    would otherwise outlive a parent killed without the chance to kill it."""
    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(1.0)
        os._exit(0)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


def _exit() -> None:
    """Leave without the interpreter's teardown, which with a framework loaded takes up to
    a second (threads, atexit hooks, allocators); every answer has been sent."""
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


class _Child:
    """The worker's process, with the few things the parent asks of it."""

    def __init__(self, target: str, log: WorkerLog, what: str,
                 env: tuple[tuple[str, str], ...] = ()) -> None:
        ours, theirs = socket.socketpair()
        with theirs, log.open_for(what) as output:
            self.popen = subprocess.Popen(
                [sys.executable, "-c", _BOOTSTRAP, json.dumps(sys.path), str(theirs.fileno()), target,
                 str(os.getpid())],
                pass_fds=[theirs.fileno()], stdin=subprocess.DEVNULL, stdout=output, stderr=output,
                start_new_session=True, env={**os.environ, **dict(env)} if env else None)
        self.conn = Connection(ours.detach())

    def is_alive(self) -> bool:
        return self.popen.poll() is None

    def join(self, timeout: float) -> None:
        try:
            self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            pass

    def kill(self) -> None:
        """Kill the worker and whatever it started (its session's process group, whose id
        is its pid while it is not reaped)."""
        if self.popen.returncode is None:
            try:
                os.killpg(self.popen.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                self.popen.kill()

    @property
    def exitcode(self) -> int | None:
        """Negative for a signal, as ``multiprocessing`` and ``subprocess`` both count."""
        return self.popen.poll()


def _run_one(adapter: Any, execute: Any, case: Case, device: str) -> tuple[str, Any]:
    try:
        begin = getattr(adapter, "begin_case", None)  # a converter names its artifacts after the case
        if begin is not None:
            begin(case, device)
        return ("ok", execute(lambda: adapter.build(case.layer, case.dtype, device), case))
    except Exception as exc:  # noqa: BLE001 - execute reports framework failures; this is a kit bug
        return ("error", f"{type(exc).__name__}: {exc}")


class WorkerProcess:
    """Parent side of one framework's worker."""

    def __init__(self, ref: AdapterRef, case_timeout_s: float = CASE_TIMEOUT_S,
                 log: WorkerLog | None = None) -> None:
        self.ref = ref
        self.log = log if log is not None else WorkerLog(name=ref.name)
        self.case_timeout_s = case_timeout_s
        self.info: dict[str, Any] = {}
        self._process: _Child | None = None
        self._conn: Connection | None = None
        self.restarts = 0
        self._submit_problem = ""
        self._stopping = False  # sent "stop"; the process exits on its own
        self._aborted = False  # interrupted: no process may start again
        self._spawning = threading.Lock()  # ``abort`` from another thread vs. a restart

    def spawn(self) -> None:
        """Start the process without waiting: the framework imports while the parent goes on
        (loading specs, say). ``start`` waits for it."""
        with self._spawning:
            if self._aborted:
                raise WorkerFailed(f"{self.ref.name}: the run was interrupted")
            what = f"{self.ref.name} worker ({self.ref.target})" + (f", restart {self.restarts}"
                                                                     if self.restarts else "")
            self._process = _Child(self.ref.target, self.log, what, self.ref.env)
            self._conn = self._process.conn

    def abort(self) -> None:
        """Kill the worker now and refuse to start another (the run was interrupted); a
        thread waiting for its answer gets a lost worker, which its caller discards."""
        with self._spawning:
            self._aborted = True
            process = self._process
        if process is not None:
            process.kill()

    @property
    def aborted(self) -> bool:
        return self._aborted

    def start(self) -> dict[str, Any]:
        """Start the process (unless ``spawn`` did) and wait until the adapter is loaded;
        returns its description."""
        if self._process is not None and self.info:
            return self.info  # started already
        if self._process is None:
            self.spawn()
        kind, payload = self._receive(START_TIMEOUT_S, "starting")
        if kind != "ready":
            self.close()
            raise WorkerFailed(f"{self.ref.name}: cannot load the adapter ({payload}). "
                               f"To install it: {self.ref.install_hint}")
        self.info = payload
        return payload

    def _receive(self, timeout: float, doing: str) -> tuple[str, Any]:
        assert self._conn is not None
        if not self._conn.poll(timeout):
            self.kill()
            raise TimeoutError(f"{self.ref.name} worker did not answer within {timeout:g} s while {doing}"
                               + self.log.quoted_tail())
        try:
            return self._conn.recv()  # type: ignore[no-any-return]
        except (EOFError, OSError):
            code = self._exit_code()
            raise ChildProcessError(_describe_exit(code) + self.log.quoted_tail()) from None

    def _ensure_alive(self) -> None:
        if self._process is None or self._stopping or not self._process.is_alive():
            if self._process is not None:
                self.close()
            self.restarts += 1
            self.start()

    def request(self, message: tuple[Any, ...], timeout: float, doing: str) -> Any:
        self._ensure_alive()
        assert self._conn is not None
        self._conn.send(message)
        kind, payload = self._receive(timeout, doing)
        if kind != "ok":
            raise RuntimeError(payload)
        return payload

    def environment(self, device: str) -> dict[str, Any]:
        return dict(self.request(("environment", device), START_TIMEOUT_S, "describing its environment"))

    def submit(self, case: Case, device: str) -> None:
        """Send a case to run; ``collect`` gets its result. Between the two the parent is
        free (to judge the previous case while this one runs)."""
        self._submit_problem = ""
        try:
            self._ensure_alive()
            assert self._conn is not None
            self._conn.send(("run", case, device))
        except (WorkerFailed, TimeoutError, ChildProcessError, OSError) as exc:
            self._submit_problem = str(exc)

    def collect(self, case: Case) -> CaseRun:
        """The submitted case's run; a crash or hang becomes an ``error`` run, and the next
        ``submit`` restarts the worker."""
        from conformance.program import CaseRun

        if self._submit_problem:
            return CaseRun(status="error", error_kind="startup", message=self._submit_problem)
        return self._receive_run(case)[0]

    def _receive_run(self, case: Case) -> tuple[CaseRun, bool]:
        """The next run on the pipe, and whether the worker was lost getting it (killed
        after a timeout, or died)."""
        from conformance.program import CaseRun

        try:
            kind, payload = self._receive(self.case_timeout_s, f"running {case.id}")
        except TimeoutError as exc:
            return CaseRun(status="error", error_kind="timeout", message=str(exc)), True
        except ChildProcessError as exc:
            return CaseRun(status="error", error_kind="signal" if "signal" in str(exc) else "exit",
                           message=f"{self.ref.name} worker died while running {case.id}: {exc}"), True
        if kind != "ok" or not isinstance(payload, CaseRun):
            return CaseRun(status="error", error_kind="exception", message=str(payload)), False
        return payload, False

    def stream(self, cases: list[Case], device: str) -> Generator[CaseRun, None, None]:
        """Run ``cases`` in order and yield each run as it arrives. The worker gets them all
        in one request and never waits for the parent, which judges one case while the
        worker runs the next ones. A case that crashes or hangs the worker is an ``error``
        run; the worker restarts and gets the cases after it.

        Leaving the iteration early kills the worker (it would still be running the rest)."""
        from conformance.program import CaseRun

        remaining = list(cases)
        try:
            while remaining:
                try:
                    self._ensure_alive()
                    assert self._conn is not None
                    self._conn.send(("run_all", remaining, device))
                except (WorkerFailed, TimeoutError, ChildProcessError, OSError) as exc:
                    while remaining:
                        remaining.pop(0)
                        yield CaseRun(status="error", error_kind="startup", message=str(exc))
                    return
                lost = False
                while remaining and not lost:
                    run, lost = self._receive_run(remaining[0])
                    remaining.pop(0)
                    yield run
        finally:
            if remaining:
                self.kill()
                self.close()

    def run_case(self, case: Case, device: str) -> CaseRun:
        """Run one case and wait for it."""
        self.submit(case, device)
        return self.collect(case)

    def _exit_code(self) -> int | None:
        if self._process is None:
            return None
        self._process.join(5)
        return self._process.exitcode

    def kill(self) -> None:
        if self._process is not None and self._process.is_alive():
            self._process.kill()
            self._process.join(5)

    def stop(self) -> None:
        """Ask the worker to exit and go on without waiting: a framework's process takes
        tens of milliseconds to exit, time the caller can spend writing results. ``close``
        then waits for it."""
        if self._conn is not None and self._process is not None and not self._stopping:
            try:
                self._conn.send(("stop",))
            except OSError:  # it is gone already; close reaps it
                pass
            self._stopping = True

    def close(self) -> None:
        if self._process is not None and self._process.is_alive():
            self.stop()
            self._process.join(10)
        self.kill()
        if self._conn is not None:
            self._conn.close()
        self._conn = None
        self._process = None
        self._stopping = False
        self.info = {}


def prestart(refs: list[AdapterRef], case_timeout_s: float = CASE_TIMEOUT_S,
             log_dir: Path | None = None) -> dict[str, WorkerProcess]:
    """Spawn the installed frameworks' workers now, so that their imports overlap with
    whatever the caller does next (importing the rest of the kit, loading specs); the run
    waits for them. Keyed by the adapter's ``module:Class`` target (two ``--adapter``
    classes from one module share a module name). Their output goes to ``log_dir``
    (``log_files``), or to a temporary folder."""
    workers = {}
    for ref, log in zip(refs, log_files(refs, log_dir)):
        if ref.installed():
            workers[ref.target] = WorkerProcess(ref, case_timeout_s, log)
            workers[ref.target].spawn()
    return workers


def log_files(refs: list[AdapterRef], log_dir: Path | None) -> list[WorkerLog | None]:
    """Each framework's log in ``log_dir`` (None: a temporary one), one file per adapter."""
    if log_dir is None:
        return [None] * len(refs)
    from conformance.results import file_stem  # stdlib only

    return [WorkerLog(log_dir / name) for name in file_names([file_stem(r.name) for r in refs])]


def _describe_exit(code: int | None) -> str:
    if code is None:
        return "the worker vanished"
    if code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = "unknown"
        return f"killed by signal {-code} ({name})"
    return f"exited with status {code}"

