"""Run cases on a few frameworks, side by side, each in its own worker process (the kit's
``WorkerProcess``), keeping both the judged result entries (for the conventions table and
the verdicts) and the raw observations (to compare two frameworks with each other, which
results files cannot: they hold errors against the reference, not the values)."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from conformance import expectations, results
from conformance.adapters import resolve
from conformance.model import Case
from conformance.program import CaseRun
from conformance.verdicts import judge
from conformance.worker import CASE_TIMEOUT_S, WorkerFailed, WorkerProcess

DEVICE = "cpu"


@dataclass
class FrameworkRuns:
    """One framework's answers: raw runs and judged entries by case id, the results
    document (for ``conventions.rows``), or the problem that prevented them."""

    name: str
    version: str = ""
    runs: dict[str, CaseRun] = field(default_factory=dict)
    entries: dict[str, dict[str, Any]] = field(default_factory=dict)
    document: dict[str, Any] = field(default_factory=dict)
    problem: str = ""


def run_cases(cases: list[Case], frameworks: list[str], registry_dir: str | Path | None = None,
              timeout_s: float = CASE_TIMEOUT_S) -> dict[str, FrameworkRuns]:
    """Every case on every framework (CPU); a framework that is not installed or fails to
    start gets ``problem`` set, with the command that installs it."""
    out = {name: FrameworkRuns(name) for name in frameworks}
    workers = {}
    for ref in resolve(frameworks):
        if ref.installed():
            workers[ref.name] = WorkerProcess(ref, timeout_s)
            workers[ref.name].spawn()  # all frameworks import at once
        else:
            out[ref.name].problem = f"{ref.name} is not installed; to install it: {ref.install_hint}"

    def one(name: str) -> None:
        runs, worker = out[name], workers[name]
        try:
            info = worker.start()
            runs.version = info["version"]
            runs.document = results.new_results(info, DEVICE, {})
            registry = expectations.load(registry_dir, name) if registry_dir else []
            for case in cases:
                run = worker.run_case(case, DEVICE)
                entry = judge(case, run, info["documented"])
                expectations.apply(entry, registry, runs.version, DEVICE)
                runs.runs[case.id], runs.entries[case.id] = run, entry
                runs.document["cases"].append(entry)
        except (WorkerFailed, TimeoutError, ChildProcessError, RuntimeError) as exc:
            runs.problem = str(exc)
        except Exception as exc:  # noqa: BLE001 - a bug here must not lose the other framework's answers
            runs.problem = f"{name}: {type(exc).__name__}: {exc}"
        finally:
            worker.close()

    threads = [threading.Thread(target=one, args=(name,), name=f"port-{name}") for name in workers]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return out
