"""The ``conformance`` command line, run in-process through ``conformance.cli.main``.

``run`` uses the numpy adapter: it runs the numpy reference as if it were a framework, so
these tests need no real framework and every non-error case must conform."""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

import numpy as np
import pytest

from conformance import RESULTS_SCHEMA, runner
from conformance.cli import main
from conformance.reference import CONVENTION_VALUES
from conformance.spec import load_paths

SPECS = Path(__file__).resolve().parents[1] / "specs"
BROKEN = """\
conformance_spec: 1
cases:
  - name: c
    layer: {kind: batch_norm, eps: small}
    inputs: {x: {shape: [4, 3]}}
    steps: [{train: x}]
"""


@pytest.fixture(scope="module")
def corpus():
    cases, errors = load_paths([SPECS])
    assert not errors
    return cases


@pytest.fixture(autouse=True)
def _elsewhere(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # run from an empty folder, so that no ./expectations or ./results of the checkout is used
    monkeypatch.chdir(tmp_path)


def test_validate_the_corpus(capsys: pytest.CaptureFixture[str], corpus) -> None:
    assert main(["validate", str(SPECS)]) == 0
    out, err = capsys.readouterr()
    files = len({c.file for c in corpus})
    assert f"{len(corpus)} cases in {files} files: all valid" in out
    assert err == ""


def test_validate_a_broken_spec(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "bn" / "broken.yaml"
    path.parent.mkdir()
    path.write_text(BROKEN)
    assert main(["validate", str(tmp_path / "bn")]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert f"{path}:4: cases[0].layer.eps: got 'small'; expected a number or 'default'" in err
    assert "1 problem(s)" in err and "Traceback" not in err


def test_validate_a_missing_path(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", str(tmp_path / "nope")]) == 2
    _, err = capsys.readouterr()
    assert f"{tmp_path / 'nope'}:0: no such file or folder" in err


def test_validate_a_folder_without_specs(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", str(tmp_path)]) == 2
    _, err = capsys.readouterr()
    assert "no spec cases found" in err


def test_list_json(capsys: pytest.CaptureFixture[str], corpus) -> None:
    assert main(["list", "--format", "json", str(SPECS)]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert [row["id"] for row in listed] == [c.id for c in corpus]
    for row, case in zip(listed, corpus):
        assert isinstance(row["areas"], list) and row["areas"] == list(case.areas)
        assert row["layer"] == case.layer.kind in ("batch_norm", "dropout", "model")


def test_list_text(capsys: pytest.CaptureFixture[str], corpus) -> None:
    assert main(["list", str(SPECS)]) == 0
    # blank lines are left out here: see test_list_text_is_one_line_per_case
    lines = [line for line in capsys.readouterr().out.splitlines() if line.strip()]
    assert len(lines) == len(corpus)
    for line, case in zip(lines, corpus):
        assert line.split()[:2] == [case.id, ",".join(case.areas)]


def test_run_unknown_framework_says_did_you_mean(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", "--framework", "toch", str(SPECS)]) == 2
    out, err = capsys.readouterr()
    assert "unknown framework 'toch'" in err and "did you mean 'torch'" in err
    assert out == ""  # nothing was run


def test_run_unknown_device_says_did_you_mean(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", "--framework", "numpy", "--device", "gpuu", "--out", str(tmp_path / "o"),
                 str(SPECS)]) == 2
    _, err = capsys.readouterr()
    assert "unknown device 'gpuu'" in err and "did you mean 'gpu'" in err
    assert not (tmp_path / "o").exists()


def test_run_a_broken_spec_runs_nothing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "broken.yaml").write_text(BROKEN)
    assert main(["run", "-f", "numpy", "--out", str(tmp_path / "o"), str(tmp_path / "broken.yaml")]) == 2
    _, err = capsys.readouterr()
    assert f"{tmp_path / 'broken.yaml'}:4:" in err and "nothing was run" in err
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("argv, hint", [(["frobnicate"], ""), (["valdate"], " (did you mean 'validate'?)")])
def test_unknown_subcommand_exits_2(argv: list[str], hint: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(argv)
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert f"unknown command {argv[0]!r}{hint}; expected one of " in err
    assert "validate" in err.split("expected one of")[1] and "did you mean" not in err.replace(hint, "")


def test_run_numpy_on_the_corpus(tmp_path: Path, capsys: pytest.CaptureFixture[str], corpus) -> None:
    out_dir = tmp_path / "results"
    assert main(["run", "--framework", "numpy", "--out", str(out_dir),
                 "--expectations", str(tmp_path / "no-registry"), str(SPECS)]) == 0
    out = capsys.readouterr().out

    # the numpy adapter IS the reference: every case conforms, except those whose spec expects
    # the framework to refuse the program (invalid rates), which the reference does refuse,
    # and those whose reference: picks other conventions, where its own canonical ones are
    # documented conventions
    canonical = {key: values[0] for key, values in CONVENTION_VALUES.items()}
    expected = {c.id: "expected-error" if c.expect_error else "convention"
                if any(canonical[k] != v for k, v in c.reference.items()) else "conforms" for c in corpus}
    assert "batchnorm/train_eval::small_batch_biased_reference" in [i for i, v in expected.items()
                                                                     if v == "convention"]
    assert [i for i, v in expected.items() if v == "expected-error"] == [
        "dropout/train_eval::rate_above_one", "dropout/train_eval::rate_below_zero"]

    doc = json.loads((out_dir / "numpy-cpu.json").read_text())
    assert doc["schema"] == RESULTS_SCHEMA
    assert doc["framework"] == "numpy" and doc["framework_version"] == np.__version__
    assert doc["device"] == "cpu"
    assert isinstance(doc["environment"], dict) and doc["environment"]
    assert {c["id"]: c["verdict"] for c in doc["cases"]} == expected
    assert not any(c["unexpected"] for c in doc["cases"])
    # the per-case log holds the same cases
    header, *log = (out_dir / "numpy-cpu.jsonl").read_text().splitlines()
    assert json.loads(header) == {"log_of": "numpy", "framework_version": np.__version__}
    assert [json.loads(line)["id"] for line in log] == [c["id"] for c in doc["cases"]]

    # summary table: a header naming the column, one row per case with its verdict, totals
    lines = out.splitlines()
    assert lines[0].split() == ["case", "numpy-cpu"]
    rows = {line.split()[0]: line.split()[1:] for line in lines[1:len(corpus) + 1]}
    # a convention cell names the convention (the numpy stand-in documents an unbiased
    # running variance, and this case's reference asks for the biased one)
    assert rows == {i: ([v] if v != "convention" else [f"{v}:", "running_var_estimator=unbiased"])
                    for i, v in expected.items()}
    assert f"details (what differs, from which step, the fix, a snippet): conformance report {out_dir}\n" in out
    counts = {v: sum(e == v for e in expected.values()) for v in ("conforms", "convention", "expected-error")}
    assert ", ".join(f"{n} {v}" for v, n in counts.items()) in out
    assert f"results written to {out_dir}/" in out
    assert "UNEXPECTED" not in out


def test_stale_registry_entry_fails_the_run(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    registry = tmp_path / "registry"
    registry.mkdir()
    (registry / "numpy.yaml").write_text(
        "framework: numpy\n"
        "expected:\n"
        "  - case: \"batchnorm/cumulative::cumulative_average\"\n"
        "    verdict: divergence\n"
        "    reason: pretend numpy diverged here once\n"
        "    link: https://example.invalid/issue\n")
    out_dir = tmp_path / "results"
    code = main(["run", "-f", "numpy", "-o", str(out_dir), "--expectations", str(registry),
                 str(SPECS / "batchnorm" / "cumulative.yaml")])
    out = capsys.readouterr().out
    assert code == 1  # the case conforms, so the entry expecting a divergence is stale
    assert "UNEXPECTED conforms (stale) batchnorm/cumulative::cumulative_average" in out
    assert f"registry entry {registry / 'numpy.yaml'}:3 expects divergence" in out
    assert "remove or update the entry" in out
    cases = {c["id"]: c for c in json.loads((out_dir / "numpy-cpu.json").read_text())["cases"]}
    assert cases["batchnorm/cumulative::cumulative_average"]["stale"] is True
    assert not cases["batchnorm/cumulative::no_running_stats"]["unexpected"]


def test_frameworks_json(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["frameworks", "--format", "json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert {"torch", "paddle", "tf", "numpy"} <= set(rows)
    for name, row in rows.items():
        assert isinstance(row["installed"], bool), name
        if row["installed"]:
            assert "version" in row or "error" in row, row
        else:
            assert row["install"], row  # an uninstalled framework says how to install it
    # numpy is a dependency of the kit, so it is always there, on the CPU
    assert rows["numpy"] == {"installed": True, "version": np.__version__, "devices": ["cpu"]}


def test_validate_a_spec_with_a_complex_key_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "odd.yaml").write_text(BROKEN + "    ? [a, b]\n    : 1\n")
    assert main(["validate", str(tmp_path / "odd.yaml")]) == 2


def test_run_summary_goes_to_the_current_stdout() -> None:
    # regression: the default stream was bound to sys.stdout when conformance.runner was
    # imported, so in-process callers (capsys, redirect_stdout) lost the table
    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        runner.print_summary(runner.RunOutcome())
    assert buffer.getvalue().startswith("case")


def test_list_text_is_one_line_per_case(capsys: pytest.CaptureFixture[str], corpus) -> None:
    assert main(["list", str(SPECS)]) == 0
    assert len(capsys.readouterr().out.splitlines()) == len(corpus)


def test_the_command_exits_with_mains_code_and_complete_output(tmp_path: Path) -> None:
    """``python -m conformance`` (and the console script) goes through ``console_main``,
    which leaves the run's objects to the OS: the exit code, the output and the results
    files must be exactly those of ``main``."""
    import subprocess
    import sys

    bad = tmp_path / "bad.yaml"
    bad.write_text(BROKEN)
    usage = subprocess.run([sys.executable, "-m", "conformance", "validate", str(bad)],
                           capture_output=True, text=True, check=False)
    assert usage.returncode == 2 and "bad.yaml:4" in usage.stderr
    out = tmp_path / "out"
    done = subprocess.run([sys.executable, "-m", "conformance", "run", "-q", "-f", "numpy", "--out", str(out),
                           str(SPECS / "dropout")], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.rstrip().endswith(f"results written to {out}/")
    data = json.loads((out / "numpy-cpu.json").read_text())
    assert len(data["cases"]) == len(load_paths([str(SPECS / "dropout")])[0])
