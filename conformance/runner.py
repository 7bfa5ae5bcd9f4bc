"""Run cases on frameworks: one worker process per framework, all frameworks side by side
(one thread each waiting on its worker), each case judged in the parent as it finishes."""

from __future__ import annotations

import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, TextIO

from conformance import expectations, results
from conformance.adapters import AdapterRef
from conformance.model import Case
from conformance.verdicts import judge
from conformance.worker import WorkerFailed, WorkerProcess

Progress = Callable[[str, str, dict[str, Any]], None]


@dataclass
class RunOutcome:
    """Everything a run produced: one results document per framework and device."""

    documents: list[dict[str, Any]] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    @property
    def unexpected(self) -> list[tuple[str, dict[str, Any]]]:
        return [(f"{d['framework']}-{d['device']}", c) for d in self.documents
                for c in d["cases"] if c.get("unexpected")]

    @property
    def exit_code(self) -> int:
        return 1 if self.unexpected or self.problems else 0


def skipped_document(ref: AdapterRef, device: str, reason: str, cases: list[Case]) -> dict[str, Any]:
    info = {"name": ref.name, "version": "not installed", "documented": {}}
    doc = results.new_results(info, device, {})
    doc["cases"] = [{"id": c.id, "file": c.file, "line": c.line, "areas": list(c.areas),
                     "verdict": "skipped", "message": reason, "unexpected": False} for c in cases]
    return doc


def run_framework(ref: AdapterRef, cases: list[Case], devices: list[str], out_dir: Path | None,
                  registry_dir: Path | None, progress: Progress | None = None) -> list[dict[str, Any]]:
    """All cases on all devices for one framework, in one long-lived worker."""
    if not ref.installed():
        reason = f"{ref.name} is not installed; to install it: {ref.install_hint}"
        return [skipped_document(ref, d, reason, cases) for d in devices]
    worker = WorkerProcess(ref)
    try:
        info = worker.start()
    except (WorkerFailed, TimeoutError, ChildProcessError) as exc:
        return [_error_document(ref, d, str(exc), cases) for d in devices]
    entries = expectations.load(registry_dir, ref.name)
    documents = []
    try:
        for device in devices:
            documents.append(_run_device(worker, info, cases, device, out_dir, entries, progress))
    finally:
        worker.close()
    return documents


def _error_document(ref: AdapterRef, device: str, reason: str, cases: list[Case]) -> dict[str, Any]:
    doc = skipped_document(ref, device, reason, cases)
    for entry in doc["cases"]:
        entry.update(verdict="error", unexpected=True, error={"kind": "startup", "message": reason})
    return doc


def _run_device(worker: WorkerProcess, info: dict[str, Any], cases: list[Case], device: str,
                out_dir: Path | None, entries: list[expectations.Expected],
                progress: Progress | None) -> dict[str, Any]:
    if device not in info["devices"]:
        reason = (f"{info['name']} sees no {device} here (visible: {', '.join(info['devices'])}); "
                  f"run on a machine with a {device} and a {device}-enabled build of {info['name']}")
        ref_like = AdapterRef(info["name"], "", "", "")
        doc = skipped_document(ref_like, device, reason, cases)
        doc["framework_version"] = info["version"]
        return doc
    doc = results.new_results(info, device, worker.environment(device))
    if out_dir is not None:
        results.results_path(out_dir, info["name"], device, ".jsonl").unlink(missing_ok=True)
    for case in cases:
        if device not in case.devices:
            entry = {"id": case.id, "file": case.file, "line": case.line, "areas": list(case.areas),
                     "verdict": "skipped", "message": f"the spec limits this case to {list(case.devices)}"}
        else:
            entry = judge(case, worker.run_case(case, device), info["documented"])
        expectations.apply(entry, entries, info["version"], device)
        doc["cases"].append(entry)
        if out_dir is not None:
            results.append_log(out_dir, info["name"], device, entry)
        if progress is not None:
            progress(info["name"], device, entry)
    if out_dir is not None:
        results.write(out_dir, doc)
    return doc


def run(cases: list[Case], refs: list[AdapterRef], devices: list[str], out_dir: str | Path | None,
        registry_dir: str | Path | None = None, progress: Progress | None = None) -> RunOutcome:
    """Run every framework in its own worker, side by side; never lose one framework's
    results to another's failure."""
    out = Path(out_dir) if out_dir is not None else None
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
    registry = Path(registry_dir) if registry_dir is not None else None
    outcome = RunOutcome()
    lock = threading.Lock()

    def one(ref: AdapterRef) -> None:
        try:
            docs = run_framework(ref, cases, devices, out, registry, progress)
        except Exception as exc:  # a bug in one framework's thread must not lose the others
            with lock:
                outcome.problems.append(f"{ref.name}: {type(exc).__name__}: {exc}")
            return
        with lock:
            outcome.documents.extend(docs)

    threads = [threading.Thread(target=one, args=(ref,), name=f"run-{ref.name}") for ref in refs]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    outcome.documents.sort(key=lambda d: (d["framework"], d["device"]))
    return outcome


def print_summary(outcome: RunOutcome, stream: TextIO = sys.stdout) -> None:
    """Case x framework-device table of verdicts, then every unexpected result explained."""
    columns = [f"{d['framework']}-{d['device']}" for d in outcome.documents]
    verdicts: dict[str, dict[str, str]] = {}
    for column, doc in zip(columns, outcome.documents):
        for case in doc["cases"]:
            mark = case["verdict"] + ("*" if case.get("expected") and not case.get("stale") else "")
            mark += " STALE" if case.get("stale") else ""
            verdicts.setdefault(case["id"], {})[column] = mark
    width = max([len(k) for k in verdicts] + [4])
    colw = max([len(c) for c in columns] + [16])
    stream.write("case".ljust(width) + "  " + "  ".join(c.ljust(colw) for c in columns) + "\n")
    for case_id, row in verdicts.items():
        stream.write(case_id.ljust(width) + "  "
                     + "  ".join(row.get(c, "-").ljust(colw) for c in columns) + "\n")
    counts: dict[str, int] = {}
    for doc in outcome.documents:
        for case in doc["cases"]:
            counts[case["verdict"]] = counts.get(case["verdict"], 0) + 1
    stream.write("\n" + ", ".join(f"{n} {v}" for v, n in sorted(counts.items())) + "\n")
    if any(c.get("expected") for d in outcome.documents for c in d["cases"]):
        stream.write("(* expected: listed in the expectations registry)\n")
    for column, case in outcome.unexpected:
        stream.write(f"\nUNEXPECTED {case['verdict']} {case['id']} [{column}] ({case['file']}:"
                     f"{case['line']}):\n  {case.get('message', '')}\n")
    for problem in outcome.problems:
        stream.write(f"\nPROBLEM {problem}\n")
