"""Every named framework for the length of a fuzz session: one long-lived worker each (the
same ``FrameworkSession``/``WorkerProcess`` as ``conformance run``), a case sent to all of
them at once, each run judged and marked by the registry as ``conformance run`` would."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from conformance import expectations
from conformance.adapters import AdapterRef
from conformance.fuzz.cause import (
    Signature,
    one_value_per_channel,
    signature_of,
)
from conformance.model import Case
from conformance.program import CaseRun
from conformance.runner import FrameworkSession
from conformance.spec import load_paths
from conformance.verdicts import judge
from conformance.worker import WorkerProcess


@dataclass
class Outcome:
    """One framework's run of one case and its judged, registry-marked entry."""

    run: CaseRun
    entry: dict[str, Any]

    def signature(self, case: Case, framework: str) -> Signature | None:
        """The signature of an unexpected divergence or error; None otherwise (a registry
        entry that matches the case id marks it expected)."""
        return None if self.entry.get("expected") else signature_of(case, self.entry, framework, self.run)


@dataclass(frozen=True)
class Registered:
    """A divergence the registry expects, as the signature its corpus case shows."""

    signature: Signature
    one_value_per_channel: bool
    dtype: str
    kind: str  # batch_norm | dropout
    case_id: str


class Lanes:
    """The frameworks of one fuzz session, each in its own worker."""

    def __init__(self, refs: list[AdapterRef], registry_dir: Path | None, device: str,
                 case_timeout_s: float) -> None:
        self.device = device
        self.sessions = [FrameworkSession(ref, registry_dir, None, case_timeout_s,
                                          worker=_spawned(ref, case_timeout_s)) for ref in refs]
        self.ready: dict[str, FrameworkSession] = {}
        self.problems: list[str] = []
        for session in self.sessions:
            session.document(device)  # starts the worker, loads the registry
            name = session.info["name"]
            if session.skip_reason or session.startup_problem:
                self.problems.append(f"{session.ref.name}: {session.skip_reason or session.startup_problem}")
            elif device not in session.info["devices"]:
                self.problems.append(f"{name}: no {device} here (visible: "
                                     f"{', '.join(session.info['devices'])})")
            else:
                self.ready[name] = session

    def versions(self) -> dict[str, str]:
        return {name: str(s.info["version"]) for name, s in self.ready.items()}

    def run(self, case: Case) -> dict[str, Outcome]:
        """Run ``case`` on every framework side by side and judge each run."""
        for session in self.ready.values():
            assert session.worker is not None
            session.worker.submit(case, self.device)
        outcomes = {}
        for name, session in self.ready.items():
            assert session.worker is not None
            run = session.worker.collect(case)
            entry = judge(case, run, session.info["documented"])
            expectations.apply(entry, session.entries, session.info["version"], self.device)
            outcomes[name] = Outcome(run, entry)
        return outcomes

    def registered(self, spec_paths: list[str]) -> tuple[dict[str, list[Registered]], int]:
        """The signatures of the divergences the registry expects, measured by running the corpus
        cases its entries name on each framework; and how many such cases ran."""
        cases, _ = load_paths([p for p in spec_paths if Path(p).exists()])
        known: dict[str, list[Registered]] = {}
        ran = 0
        for name, session in self.ready.items():
            version = str(session.info["version"])
            named = [c for c in cases if any(e.matches(c.id, version, self.device)
                                             for e in session.entries)]
            assert session.worker is not None
            for case in named:
                ran += 1
                run = session.worker.run_case(case, self.device)
                entry = judge(case, run, session.info["documented"])
                signature = signature_of(case, entry, name, run)
                if signature is not None:
                    regime = one_value_per_channel(case)
                    known.setdefault(name, []).append(Registered(signature, regime, case.dtype,
                                                                       case.layer.kind, case.id))
        return known, ran

    def close(self) -> None:
        for session in self.sessions:
            session.finish()


def _spawned(ref: AdapterRef, case_timeout_s: float) -> WorkerProcess | None:
    """The worker of ``ref``, already importing its framework (so all import at once);
    one per ref, even for two adapter classes of one module (which share ``ref.name``)."""
    if not ref.installed():
        return None
    worker = WorkerProcess(ref, case_timeout_s)
    worker.spawn()
    return worker
