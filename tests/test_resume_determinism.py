"""A run killed midway resumes to the same results; the same specs give the same results."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
SPECS = str(ROOT / "specs" / "dropout")
VOLATILE = {"duration_s", "started", "finished"}


def _stable(value: Any) -> Any:
    """Results without timestamps and timings."""
    if isinstance(value, dict):
        return {k: _stable(v) for k, v in value.items() if k not in VOLATILE}
    if isinstance(value, list):
        return [_stable(v) for v in value]
    return value


def _run(out: Path, *extra: str, framework: tuple[str, ...] = ("--adapter", "fake_adapters:Slow"),
         specs: str = SPECS) -> subprocess.Popen[bytes]:
    env = {**os.environ, "PYTHONPATH": f"{ROOT / 'tests'}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    return subprocess.Popen([sys.executable, "-m", "conformance", "run", *framework,
                             "--out", str(out), "-q", *extra, specs], cwd=ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _logged(out: Path) -> int:
    log = out / "slow-cpu.jsonl"
    return len(log.read_text().splitlines()) - 1 if log.is_file() else 0


def test_a_killed_run_resumes_to_the_same_results(tmp_path: Path) -> None:
    whole, broken = tmp_path / "whole", tmp_path / "broken"
    assert _run(whole).wait(timeout=120) == 0
    total = len(json.loads((whole / "slow-cpu.json").read_text())["cases"])

    victim = _run(broken)
    deadline = time.monotonic() + 60
    while _logged(broken) < 3 and time.monotonic() < deadline:
        time.sleep(0.05)
    victim.send_signal(signal.SIGKILL)
    victim.wait()
    before = [json.loads(line) for line in (broken / "slow-cpu.jsonl").read_text().splitlines()[1:]]
    assert 3 <= len(before) < total, "the run was not interrupted midway"
    assert not (broken / "slow-cpu.json").exists()  # only the log survived the kill

    assert _run(broken, "--resume").wait(timeout=120) == 0
    resumed = json.loads((broken / "slow-cpu.json").read_text())
    assert _stable(resumed["cases"]) == _stable(json.loads((whole / "slow-cpu.json").read_text())["cases"])
    # the cases finished before the kill were kept, not run again: their entries, timings
    # included, are the logged ones
    assert resumed["cases"][:len(before)] == before


def test_same_specs_and_seeds_give_the_same_results(tmp_path: Path) -> None:
    first, second = tmp_path / "a", tmp_path / "b"
    for out in (first, second):
        assert _run(out, framework=("--framework", "numpy"), specs=str(ROOT / "specs")).wait(timeout=120) == 0
    a, b = (json.loads((out / "numpy-cpu.json").read_text()) for out in (first, second))
    assert len(a["cases"]) > 50
    assert _stable(a) == _stable(b)
