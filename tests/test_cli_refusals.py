"""What the command line refuses before (or instead of) reporting a green run: frameworks and
adapters named explicitly that cannot load, a device required but missing, option values
that would turn every case into an error, output paths that cannot be written. Each is
exit 2 with ``where: what is wrong; expected ...``, never a traceback, never exit 0."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conformance.cli import main

SPECS = Path(__file__).resolve().parents[1] / "specs"
TESTS = Path(__file__).resolve().parent


@pytest.fixture()
def specs(tmp_path: Path) -> Path:
    """One small spec file (4 cases) in its own folder."""
    folder = tmp_path / "specs"
    folder.mkdir()
    shutil.copy(SPECS / "batchnorm" / "momentum.yaml", folder)
    return folder


@pytest.fixture(autouse=True)
def _elsewhere(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(TESTS))  # fake_adapters for --adapter


def test_a_named_adapter_that_is_not_installed_fails_the_run(specs: Path, tmp_path: Path,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", str(specs), "-q", "--adapter", "nosuchmod:X", "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    assert "nosuchmod (nosuchmod:X) was named but is not installed" in err
    assert "pip install" in err and "Nothing was run" in err
    assert not (tmp_path / "r" / "nosuchmod-cpu.json").exists()


def test_a_named_adapter_that_fails_to_start_fails_the_run_and_keeps_the_others(
        specs: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "r"
    code = main(["run", str(specs), "-q", "-f", "numpy", "--adapter", "fake_adapters:NoSuchClass",
                 "--out", str(out)])
    assert code == 2
    captured = capsys.readouterr()
    assert "fake_adapters was named but failed to start" in captured.err
    assert "NoSuchClass" in captured.err
    kept = json.loads((out / "numpy-cpu.json").read_text())
    assert [c["verdict"] for c in kept["cases"]] == ["conforms"] * 4
    failed = json.loads((out / "fake_adapters-cpu.json").read_text())
    assert failed["not_run"]["kind"] == "startup"


def test_unnamed_frameworks_that_are_missing_are_skipped_not_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    from conformance import cli
    from conformance.adapters import BUILTIN

    monkeypatch.setattr(type(BUILTIN["torch"]), "installed", lambda self: self.name == "paddle")
    assert [r.name for r in cli.select_frameworks("", [])] == ["paddle"]
    with pytest.raises(cli.UsageError, match="torch .* was named but is not installed"):
        cli.require_installed(cli.select_frameworks("torch,paddle", []))


def test_a_missing_device_is_skipped_and_its_reason_shown(specs: Path, tmp_path: Path,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "r"
    assert main(["run", str(specs), "-q", "-f", "numpy", "-d", "cpu,gpu", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "skipped: numpy-gpu, 4 case(s): numpy sees no gpu here (visible: cpu)" in printed
    assert main(["report", str(out)]) == 0
    assert "skipped: numpy-gpu, 4 case(s): numpy sees no gpu here" in capsys.readouterr().out
    for fmt in ("md", "html"):
        assert main(["report", str(out), "--format", fmt]) == 0
        assert "numpy-gpu, 4 case(s): numpy sees no gpu here" in capsys.readouterr().out


def test_require_device_fails_the_run_when_a_device_is_missing(specs: Path, tmp_path: Path,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "r"
    assert main(["run", str(specs), "-q", "-f", "numpy", "-d", "cpu,gpu", "--require-device",
                 "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "numpy-gpu: --require-device: numpy sees no gpu here" in err
    assert (out / "numpy-cpu.json").is_file()  # what did run is kept
    assert main(["run", str(specs), "-q", "-f", "numpy", "--require-device", "--out", str(out)]) == 0


@pytest.mark.parametrize("value", ["0", "-1", "nan", "inf", "abc"])
def test_timeouts_that_would_fail_every_case_are_refused(value: str, specs: Path,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["run", str(specs), "-f", "numpy", f"--timeout={value}"])
    assert exit_info.value.code == 2
    assert "argument --timeout" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_info:
        main(["fuzz", "-f", "numpy", f"--timeout={value}"])
    assert exit_info.value.code == 2


def test_out_that_is_a_file_is_refused(specs: Path, tmp_path: Path,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    blocker = tmp_path / "results"
    blocker.write_text("not a folder")
    assert main(["run", str(specs), "-q", "-f", "numpy", "--out", str(blocker)]) == 2
    assert f"--out {blocker}: is a file, not a folder; expected a folder" in capsys.readouterr().err
    assert blocker.read_text() == "not a folder"


@pytest.mark.parametrize("command", ["run", "fuzz"])
def test_out_that_cannot_be_written_is_refused(command: str, specs: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    args = [command, "-f", "numpy", "--out", "/proc/nope"] + ([str(specs)] if command == "run" else [])
    assert main(args) == 2
    assert "--out /proc/nope: cannot write there" in capsys.readouterr().err


def test_report_out_that_is_a_folder_is_refused(specs: Path, tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "r"
    assert main(["run", str(specs), "-q", "-f", "numpy", "--out", str(out)]) == 0
    capsys.readouterr()
    assert main(["report", str(out), "--out", str(tmp_path)]) == 2
    assert f"--out {tmp_path}: cannot write the report there" in capsys.readouterr().err


def test_none_of_these_is_a_traceback_from_the_console(specs: Path, tmp_path: Path) -> None:
    """The real command, as CI calls it: exit 2, and no Python traceback on stderr."""
    (tmp_path / "afile").write_text("x")
    for args in (["run", str(specs), "--adapter", "nosuchmod:X"],
                 ["run", str(specs), "-f", "numpy", "--timeout", "0"],
                 ["run", str(specs), "-f", "numpy", "--out", str(tmp_path / "afile")],
                 ["fuzz", "-f", "numpy", "--out", "/proc/nope"]):
        done = subprocess.run([sys.executable, "-m", "conformance", *args], check=False, capture_output=True,
                              text=True, timeout=120)
        assert done.returncode == 2, (args, done.stderr)
        assert "Traceback" not in done.stderr, args


@pytest.mark.parametrize(("registry", "message"), [
    (("framework: numpy\nexpected:\n  - case: '*'\n    verdict: divergence\n    reasn: typo\n"
     "    link: https://example.invalid\n"),
     "numpy.yaml:3: expected[0]: unknown key 'reasn' (did you mean 'reason'?)"),
    ("framework: numpy\nexpectd:\n  - case: '*'\n",
     "numpy.yaml:2: unknown top-level key 'expectd' (did you mean 'expected'?)"),
    ("expected:\n  - case: 3\n    verdict: divergence\n    reason: r\n    link: l\n",
     "numpy.yaml:2: expected[0]: case: got 3; expected a non-empty string"),
])
def test_a_registry_mistake_is_bad_input_before_anything_runs(
        registry: str, message: str, specs: Path, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    folder = tmp_path / "expectations"
    folder.mkdir()
    (folder / "numpy.yaml").write_text(registry)
    out = tmp_path / "r"
    assert main(["run", str(specs), "-q", "-f", "numpy", "--out", str(out)]) == 2
    captured = capsys.readouterr()
    assert message in captured.err and "PROBLEM" not in captured.out
    assert not out.exists()


def test_the_run_table_names_conventions_and_marks_unexpected_cells(
        specs: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    shutil.copy(SPECS / "batchnorm" / "train_eval.yaml", specs)
    code = main(["run", str(specs), "-q", "-k", "momentum::weight_0_9 or small_batch_unbiased",
                 "--adapter", "fake_adapters:BiasedDocumented", "--adapter", "fake_adapters:ReversedMomentum",
                 "--out", str(tmp_path / "r")])
    assert code == 1
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["case", "biased_documented-cpu", "reversed_momentum-cpu"]
    rows = {line.split()[0].split("/")[-1]: line.split()[1:] for line in lines[1:3]}
    assert rows["train_eval::small_batch_unbiased"] == [
        "convention:", "running_var_estimator=biased", "conforms"]
    assert rows["momentum::weight_0_9"] == ["convention:", "running_var_estimator=biased",
                                            "divergence!:", "momentum_weights=old"]


def test_fuzz_refuses_a_named_adapter_that_fails_to_start(tmp_path: Path,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["fuzz", "--adapter", "fake_adapters:NoSuchClass", "--budget", "1", "--out", str(tmp_path / "f")])
    assert code == 2
    assert "named but cannot run: fake_adapters" in capsys.readouterr().err
