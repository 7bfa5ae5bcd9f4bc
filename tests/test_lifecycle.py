"""A run's life at its edges: Ctrl-C and --resume, the workers' output kept off the console
(in log files), the progress bars' last frame, and `conformance frameworks` without noise."""

from __future__ import annotations

import json
import os
import re
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from helpers import cases_from

from conformance import runner
from conformance.adapters import AdapterRef, from_target
from conformance.cli import main

ROOT = Path(__file__).resolve().parents[1]
SPECS = str(ROOT / "specs" / "dropout")
ENV = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "tests"), str(ROOT),
                                                    os.environ.get("PYTHONPATH", "")])}
ENV.pop("CI", None)


def _logged(log: Path) -> list[dict]:
    return [json.loads(line) for line in log.read_text().splitlines()[1:]] if log.is_file() else []


def test_ctrl_c_keeps_the_finished_cases_and_resume_runs_the_rest(tmp_path: Path) -> None:
    out = tmp_path / "out"
    argv = ["run", "--adapter", "fake_adapters:Slow", "--out", str(out), "-q", SPECS]
    # its own session, so that the SIGINT below goes to its whole process group, as a
    # terminal's Ctrl-C does: workers that shared the group would get it too
    run = subprocess.Popen([sys.executable, "-m", "conformance", *argv], cwd=ROOT, env=ENV, text=True,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
    log = out / "slow-cpu.jsonl"
    deadline = time.monotonic() + 60
    while len(_logged(log)) < 3 and time.monotonic() < deadline:
        time.sleep(0.05)
    os.killpg(run.pid, signal.SIGINT)
    stdout, stderr = run.communicate(timeout=60)

    assert run.returncode == 130, stderr
    assert "Traceback" not in stdout + stderr, stderr
    finished = _logged(log)
    total = 22
    assert 3 <= len(finished) < total, "the run was not interrupted midway"
    # no verdict for the case cut off: no crash, no "cannot load the adapter", only results
    assert {e["verdict"] for e in finished} <= {"conforms", "expected-error"}, finished
    assert not (out / "slow-cpu.json").exists()  # incomplete: only the log
    assert f"interrupted: {len(finished)} finished case(s) are safe in {out}/" in stderr, stderr
    command = re.search(r"to run the rest: (.*)", stderr)
    assert command is not None, stderr
    words = shlex.split(command.group(1))
    assert words[-len(argv) - 1:] == [*argv, "--resume"], words

    resumed = subprocess.run([sys.executable, *words[words.index("-m"):]], cwd=ROOT, env=ENV, text=True,
                             capture_output=True, timeout=120, check=False)
    assert resumed.returncode == 0, resumed.stderr
    assert (f"kept {len(finished)} finished case(s), re-ran {total - len(finished)}"
            in resumed.stdout), resumed.stdout
    cases = json.loads((out / "slow-cpu.json").read_text())["cases"]
    assert cases[:len(finished)] == finished and len(cases) == total


def test_a_stop_flag_kills_the_workers_and_records_no_cut_off_case(tmp_path: Path) -> None:
    import threading

    stop = threading.Event()
    cases = cases_from("""
cases:
  - name: hang
    layer: {kind: batch_norm, eps: 0.125}
    inputs: {x: {shape: [4, 3]}}
    steps: [{train: x}]
""")
    threading.Timer(1.0, stop.set).start()
    started = time.monotonic()
    outcome = runner.run(cases, [from_target("fake_adapters:Crashing")], ["cpu"], tmp_path, stop=stop)
    assert time.monotonic() - started < 30  # not the case's 120 s timeout
    assert outcome.interrupted and outcome.documents == []
    assert _logged(tmp_path / "crashing-cpu.jsonl") == []


NOISY_CASES = """
cases:
  - name: fine
    layer: {kind: batch_norm}
    inputs: {x: {shape: [4, 3]}}
    steps: [{train: x}]
  - name: aborts
    layer: {kind: batch_norm, eps: 0.5}
    inputs: {x: {shape: [4, 3]}}
    steps: [{train: x}]
"""


def test_worker_output_goes_to_a_log_and_a_dead_worker_quotes_it(tmp_path: Path,
                                                                   capfd: pytest.CaptureFixture[str]) -> None:
    outcome = runner.run(cases_from(NOISY_CASES), [from_target("fake_adapters:Noisy")], ["cpu"], tmp_path)
    console = capfd.readouterr()
    assert "noisy:" not in console.out + console.err, console  # nothing of the worker's on the console
    assert outcome.log_dir == tmp_path / "logs"
    log = (tmp_path / "logs" / "fake_adapters.log").read_text()
    for line in ("stdout at import", "C++ log line on fd 2", "building on stdout", "warning on sys.stderr"):
        assert f"noisy: {line}" in log, log
    entries = {c["id"].split("::")[1]: c for c in outcome.documents[0]["cases"]}
    assert entries["fine"]["verdict"] == "conforms"
    assert entries["aborts"]["verdict"] == "error"
    assert "SIGABRT" in entries["aborts"]["message"]
    assert "noisy: last words before the abort" in entries["aborts"]["message"], entries["aborts"]["message"]


def test_the_run_says_where_the_logs_are(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    monkey_out = tmp_path / "o"
    assert main(["run", "-q", "-f", "numpy", "--out", str(monkey_out), SPECS]) == 0
    assert f"(logs): {monkey_out / 'logs'}/" in capsys.readouterr().out


def _under_a_terminal(argv: list[str]) -> str:
    """What ``argv`` writes to a 100-column pseudo-terminal (stdout and stderr)."""
    import fcntl
    import pty
    import struct
    import termios

    pid, fd = pty.fork()
    if pid == 0:  # the child: the command, on the terminal
        os.environ.clear()
        os.environ.update(ENV)
        os.execv(sys.executable, [sys.executable, *argv])
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 100, 0, 0))
    chunks = []
    while True:
        try:
            chunk = os.read(fd, 65536)
        except OSError:  # the child closed the terminal
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.waitpid(pid, 0)
    return b"".join(chunks).decode("utf-8", "replace")


BARS = """
import time
from conformance.report.progress import live_progress
with live_progress(["torch", "tf"], ["cpu"], 3) as progress:
    assert progress is not None, "no bars: stderr is not a terminal"
    for verdict in ("conforms", "divergence", "conforms"):
        progress("torch", "cpu", {"verdict": verdict})
        progress("tf", "cpu", {"verdict": "conforms"})
    time.sleep(0.6)  # rich's timer (4 a second) has drawn the final state by now
"""


def test_the_progress_bars_last_frame_is_drawn_once() -> None:
    screen = _under_a_terminal(["-c", BARS])
    frames = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", screen).replace("\r", "\n").splitlines()
    last = [f for f in frames if f.startswith("torch-cpu") and "3/3" in f]
    assert len(last) == 1, screen
    assert "Traceback" not in screen, screen


def test_a_run_on_a_terminal_draws_its_bars(tmp_path: Path) -> None:
    screen = _under_a_terminal(["-m", "conformance", "run", "-f", "numpy", "--out", str(tmp_path), SPECS])
    frames = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", screen).replace("\r", "\n").splitlines()
    assert len([f for f in frames if f.startswith("numpy-cpu") and "22/22" in f]) == 1, screen


def test_frameworks_shows_versions_and_none_of_the_frameworks_noise(
        monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]) -> None:
    import numpy as np

    from conformance import adapters

    noisy = AdapterRef("noisy", "fake_adapters:Noisy", "numpy", "n/a")
    monkeypatch.setattr(adapters, "BUILTIN", {**adapters.BUILTIN, "noisy": noisy})
    assert main(["frameworks"]) == 0
    shown = capfd.readouterr()
    assert "noisy:" not in shown.out + shown.err, shown
    assert re.search(rf"^noisy +{re.escape(np.__version__)} +devices: cpu$", shown.out, re.MULTILINE), shown.out
    assert main(["frameworks", "--no-devices", "--format", "json"]) == 0
    rows = json.loads(capfd.readouterr().out)
    assert rows["noisy"] == {"installed": True, "version": np.__version__}


def test_frameworks_versions_import_no_framework() -> None:
    code = ("import sys; from conformance.cli import main; main(['frameworks', '--no-devices']); "
            "print(sorted(m for m in ('torch', 'paddle', 'tensorflow') if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=ENV, check=True)
    assert done.stdout.splitlines()[-1] == "[]", done.stdout
