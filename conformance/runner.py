"""Run cases on frameworks: one long-lived worker process per framework, all frameworks side
by side (one thread each waiting on its worker), each case judged in the parent as it
finishes and logged at once, so an interrupted run keeps every finished case.

An interrupted run (``stop`` set, by Ctrl-C in ``conformance run``) kills the workers and
records nothing more: a case cut off has no verdict (the kill would read as a crash), and
only the results files of devices whose every case finished are written."""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from conformance import expectations, results
from conformance.adapters import AdapterRef
from conformance.model import Case
from conformance.program import CaseRun
from conformance.verdicts import judge
from conformance.worker import CASE_TIMEOUT_S, WorkerFailed, WorkerProcess, log_files
from conformance.worker_logs import WorkerLog

Progress = Callable[[str, str, dict[str, Any]], None]


def _entry(case: Case, verdict: str, message: str, **extra: Any) -> dict[str, Any]:
    return {"id": case.id, "file": case.file, "line": case.line, "areas": list(case.areas),
            "verdict": verdict, "message": message, **extra}


class FrameworkSession:
    """One framework for the length of a run: its worker (started on first use), its
    registry of expected divergences, and one results document per device."""

    def __init__(self, ref: AdapterRef, registry_dir: Path | None, out_dir: Path | None = None,
                 case_timeout_s: float = CASE_TIMEOUT_S, resume: bool = False,
                 worker: WorkerProcess | None = None, stop: threading.Event | None = None,
                 log: WorkerLog | None = None) -> None:
        self.ref = ref
        self.resume = resume
        self.stop = stop
        self.log = log
        self.kept: dict[str, int] = {}  # device -> cases kept from an interrupted run's log
        self.completed: set[str] = set()  # devices whose every case was recorded
        self.finished: dict[str, dict[str, dict[str, Any]]] = {}  # device -> id -> entry
        self.case_timeout_s = case_timeout_s
        self.registry_dir = registry_dir
        self.out_dir = out_dir
        self.worker: WorkerProcess | None = worker  # possibly spawned already (``prestart``)
        self.info: dict[str, Any] = {"name": ref.name, "version": "unknown", "devices": [],
                                     "documented": {}}
        self.startup_problem = ""
        self.skip_reason = ""
        self.entries: list[expectations.Expected] = []
        self.documents: dict[str, dict[str, Any]] = {}
        self._started = False

    @property
    def stopped(self) -> bool:
        """The run was interrupted: nothing more is recorded."""
        return self.stop is not None and self.stop.is_set()

    def abort(self) -> None:
        """Kill the worker now (from another thread); see ``WorkerProcess.abort``."""
        if self.worker is not None:
            self.worker.abort()

    def _start(self) -> None:
        self._started = True
        if not self.ref.installed():
            self.skip_reason = f"{self.ref.name} is not installed; to install it: {self.ref.install_hint}"
            return
        if self.worker is None:
            self.worker = WorkerProcess(self.ref, self.case_timeout_s, self.log)
        try:
            self.info = self.worker.start()
        except (WorkerFailed, TimeoutError, ChildProcessError) as exc:
            self.startup_problem = str(exc)
            return
        # the adapter's own name (a third-party class's ``name``) keys the registry and files
        self.entries = expectations.load(self.registry_dir, self.info["name"])

    def document(self, device: str) -> dict[str, Any]:
        """The results document for ``device``, created on first use."""
        if not self._started:
            self._start()
        if device not in self.documents:
            environment: dict[str, Any] = {}
            if self.worker is not None and not self.startup_problem and device in self.info["devices"]:
                environment = self.worker.environment(device)
            self.documents[device] = results.new_results(self.info, device, environment)
            not_run = self._not_run(device)
            if not_run:
                self.documents[device]["not_run"] = not_run
            if self.out_dir is not None and not self.stopped:  # an interrupted start keeps the log as it is
                self.finished[device] = self._restart_log(device)
                self.kept[device] = len(self.finished[device])
        return self.documents[device]

    def _not_run(self, device: str) -> dict[str, str] | None:
        """Why no case of ``device`` runs (``kind``: framework, startup or device), or None."""
        if self.skip_reason:
            return {"kind": "framework", "reason": self.skip_reason}
        if self.startup_problem:
            return {"kind": "startup", "reason": self.startup_problem}
        if device not in self.info["devices"]:
            return {"kind": "device", "reason": (
                f"{self.ref.name} sees no {device} here (visible: {', '.join(self.info['devices'])}); "
                f"run on a machine with a {device} and a {device}-enabled build of {self.ref.name}")}
        return None

    def _restart_log(self, device: str) -> dict[str, dict[str, Any]]:
        """With ``resume``, the cases a killed run already logged (same framework version);
        otherwise a fresh log. The log's first line records the version it belongs to."""
        assert self.out_dir is not None
        name, version = self.info["name"], self.info["version"]
        done = results.read_log(self.out_dir, name, device, version) if self.resume else {}
        if not done:
            results.start_log(self.out_dir, name, device, version)
        return done

    def run_case(self, case: Case, device: str) -> dict[str, Any]:
        """Run and judge one case; the entry is recorded in the device's document."""
        return next(self.run_many([case], device))

    def run_many(self, cases: list[Case], device: str) -> Iterator[dict[str, Any]]:
        """Run and judge ``cases`` in order, each entry recorded as it is judged. The worker
        gets every case that needs it at once (``WorkerProcess.stream``), so it runs ahead
        while the parent judges."""
        self.document(device)
        if self.stopped:
            return
        needs_worker = [case.id not in self.finished.get(device, {})
                        and self._without_worker(case, device) is None for case in cases]
        to_run = [case for case, needs in zip(cases, needs_worker) if needs]
        if not to_run:
            for case in cases:
                yield self._record(case, device, None)
            self.completed.add(device)
            return
        assert self.worker is not None
        runs = self.worker.stream(to_run, device)
        try:
            for case, needs in zip(cases, needs_worker):
                run = next(runs) if needs else None
                if self.stopped:  # cut off: this run may be the kill's doing, never a verdict
                    return
                yield self._record(case, device, self._judged(case, run, device) if run is not None else None)
            self.completed.add(device)
        finally:
            runs.close()  # an abandoned stream kills the worker instead of leaving it running

    def _judged(self, case: Case, run: CaseRun, device: str) -> dict[str, Any]:
        # a divergence the registry expects (its reason says why) is explained by single
        # changes only: the full search of every known divergence would cost each run again
        known = any(e.matches(case.id, self.info["version"], device) for e in self.entries)
        return judge(case, run, self.info["documented"], thorough=not known)

    def _record(self, case: Case, device: str, entry: dict[str, Any] | None) -> dict[str, Any]:
        doc = self.documents[device]
        if case.id in self.finished.get(device, {}):
            entry = self.finished[device][case.id]  # finished before the run was interrupted
            doc["cases"].append(entry)
            return entry
        if entry is None:
            entry = self._without_worker(case, device)
            assert entry is not None
        expectations.apply(entry, self.entries, self.info["version"], device)
        doc["cases"].append(entry)
        if self.out_dir is not None:
            results.append_log(self.out_dir, self.info["name"], device, entry)
        return entry

    def _without_worker(self, case: Case, device: str) -> dict[str, Any] | None:
        """The entry of a case that cannot run here (framework, device or spec says so)."""
        not_run = self._not_run(device)
        if not_run is not None and not_run["kind"] == "startup":
            return _entry(case, "error", not_run["reason"],
                          error={"kind": "startup", "message": not_run["reason"]})
        if not_run is not None:
            return _entry(case, "skipped", not_run["reason"], skip_kind=not_run["kind"])
        if device not in case.devices:
            return _entry(case, "skipped", f"the spec limits this case to {', '.join(case.devices)}",
                          skip_kind="spec")
        return None

    def finish(self) -> list[dict[str, Any]]:
        """Stop the worker and write the final results files; an interrupted run writes
        only those of devices that finished (the others' cases are in the logs)."""
        if self.worker is not None:
            self.worker.stop()  # it exits while the files are written
        documents = [doc for device, doc in self.documents.items()
                     if not self.stopped or device in self.completed]
        if self.out_dir is not None:
            for doc in documents:
                results.write(self.out_dir, doc)
        if self.worker is not None:
            self.worker.close()
        return documents

    def tally(self, total: int) -> list[Tally]:
        """Per device: cases recorded (all of them in the log), kept from a log, asked for."""
        return [Tally(f"{self.info['name']}-{device}",
                      len({c["id"] for c in doc["cases"]} | set(self.finished.get(device, {}))),
                      self.kept.get(device, 0), total)
                for device, doc in self.documents.items()]


@dataclass(frozen=True)
class Tally:
    """How far one framework and device got."""

    column: str
    done: int  # recorded, and logged when the run has an output folder
    kept: int  # of ``done``: taken from an interrupted run's log (``--resume``)
    total: int


@dataclass
class RunOutcome:
    """Everything a run produced: one results document per framework and device."""

    documents: list[dict[str, Any]] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    interrupted: bool = False  # stopped midway: ``documents`` holds only finished devices
    tallies: list[Tally] = field(default_factory=list)
    log_dir: Path | None = None  # the workers' output (``conformance.worker_logs``)

    @property
    def unexpected(self) -> list[tuple[str, dict[str, Any]]]:
        return [(f"{d['framework']}-{d['device']}", c) for d in self.documents
                for c in d["cases"] if c.get("unexpected")]

    @property
    def exit_code(self) -> int:
        return 1 if self.unexpected or self.problems else 0


def run_framework(ref: AdapterRef, cases: list[Case], devices: list[str], out_dir: Path | None,
                  registry_dir: Path | None, progress: Progress | None = None,
                  case_timeout_s: float = CASE_TIMEOUT_S, resume: bool = False,
                  worker: WorkerProcess | None = None) -> list[dict[str, Any]]:
    """All cases on all devices for one framework, in one long-lived worker."""
    session = FrameworkSession(ref, registry_dir, out_dir, case_timeout_s, resume, worker)
    return run_session(session, cases, devices, progress)


def run_session(session: FrameworkSession, cases: list[Case], devices: list[str],
                progress: Progress | None = None) -> list[dict[str, Any]]:
    """All cases on all devices in ``session``; its results files are written at the end."""
    try:
        for device in devices:
            for entry in session.run_many(cases, device):
                if progress is not None:
                    progress(session.ref.name, device, entry)
    finally:
        documents = session.finish()
    return documents


def run(cases: list[Case], refs: list[AdapterRef], devices: list[str], out_dir: str | Path | None,
        registry_dir: str | Path | None = None, progress: Progress | None = None,
        case_timeout_s: float = CASE_TIMEOUT_S, resume: bool = False,
        workers: dict[str, WorkerProcess] | None = None, stop: threading.Event | None = None,
        log_dir: str | Path | None = None) -> RunOutcome:
    """Run every framework in its own worker, side by side; never lose one framework's
    results to another's failure. Setting ``stop`` (from a signal handler, say) ends the
    run early: the workers are killed and the cases cut off get no entry.

    The workers' output goes to ``log_dir``, by default ``<out_dir>/logs`` (a temporary
    folder without ``out_dir``); ``workers`` spawned by ``prestart`` keep theirs."""
    out = Path(out_dir) if out_dir is not None else None
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
    registry = Path(registry_dir) if registry_dir is not None else None
    logs = default_log_dir(out) if log_dir is None else Path(log_dir)
    outcome = RunOutcome(log_dir=logs)
    lock = threading.Lock()
    sessions = [FrameworkSession(ref, registry, out, case_timeout_s, resume, (workers or {}).get(ref.target),
                                 stop, log) for ref, log in zip(refs, log_files(refs, logs))]

    def one(session: FrameworkSession) -> None:
        try:
            docs = run_session(session, cases, devices, progress)
        except Exception as exc:  # noqa: BLE001 - a bug in one framework's thread must not lose the others
            with lock:
                outcome.problems.append(f"{session.ref.name}: {type(exc).__name__}: {exc}")
            return
        with lock:
            outcome.documents.extend(docs)

    threads = [threading.Thread(target=one, args=(s,), name=f"run-{s.ref.name}") for s in sessions]
    for t in threads:
        t.start()
    _wait(threads, sessions, stop)
    outcome.interrupted = stop is not None and stop.is_set()
    outcome.tallies = [t for s in sessions for t in s.tally(len(cases))]
    outcome.documents.sort(key=lambda d: (d["framework"], d["device"]))
    return outcome


def default_log_dir(out: Path | None) -> Path:
    """``<out>/logs``, or a fresh temporary folder (kept: the run's end names it)."""
    if out is not None:
        return out / "logs"
    import tempfile

    return Path(tempfile.mkdtemp(prefix="conformance-logs-"))


def _wait(threads: list[threading.Thread], sessions: list[FrameworkSession],
          stop: threading.Event | None) -> None:
    """Join the framework threads; once ``stop`` is set, kill every worker, again each
    round (a thread may have been starting one)."""
    for t in threads:
        while t.is_alive():
            t.join(0.1 if stop is not None else None)
            if stop is not None and stop.is_set():
                for session in sessions:
                    session.abort()


def print_summary(outcome: RunOutcome, stream: TextIO | None = None, details: str = "") -> None:
    """Case x framework-device table of verdicts (marked as the report marks them, with the
    convention that explains a cell), why cases were skipped, every unexpected result, and
    the command that shows the details (``details``)."""
    from conformance.report.findings import cell_text, skip_reasons

    stream = stream or sys.stdout  # looked up now: tests and tools replace sys.stdout
    columns = [f"{d['framework']}-{d['device']}" for d in outcome.documents]
    cells: dict[str, dict[str, str]] = {}
    counts: dict[str, int] = {}
    for column, doc in zip(columns, outcome.documents):
        for case in doc["cases"]:
            cells.setdefault(case["id"], {})[column] = cell_text(case)
            counts[case["verdict"]] = counts.get(case["verdict"], 0) + 1
    width = max([len(k) for k in cells] + [4])
    widths = [max([len(column), 16] + [len(row.get(column, "")) for row in cells.values()])
              for column in columns]
    stream.write("case".ljust(width) + "  " + "  ".join(c.ljust(w) for c, w in zip(columns, widths)).rstrip() + "\n")
    for case_id, row in cells.items():
        stream.write(case_id.ljust(width) + "  "
                     + "  ".join(row.get(c, "-").ljust(w) for c, w in zip(columns, widths)).rstrip() + "\n")
    stream.write("\n" + ", ".join(f"{n} {v}" for v, n in sorted(counts.items())) + "\n")
    stream.write("(verdict* expected by the registry, verdict! unexpected, STALE a registry entry no "
                 "longer needed)\n")
    skipped = skip_reasons([(c, d["cases"]) for c, d in zip(columns, outcome.documents)])
    for line in skipped:
        stream.write(f"skipped: {line}\n")
    for column, case in outcome.unexpected:
        stream.write(f"\nUNEXPECTED {case['verdict']}{' (stale)' if case.get('stale') else ''} "
                     f"{case['id']} [{column}] ({case['file']}:{case['line']}):\n  {case.get('message', '')}\n")
    for problem in outcome.problems:
        stream.write(f"\nPROBLEM {problem}\n")
    if details and outcome.documents:
        stream.write(f"\ndetails (what differs, from which step, the fix, a snippet): {details}\n")
