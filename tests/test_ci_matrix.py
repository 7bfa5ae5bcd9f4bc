"""The documented CI matrix (docs/ci/conformance-matrix.yml): its jobs name real frameworks and
tox envs, and its merge step, run here on results made by separate runs (as separate jobs on
separate machines make them), writes one HTML report and one JUnit file holding every column."""

from __future__ import annotations

import configparser
import os
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest
import yaml

from conformance.adapters import BUILTIN

ROOT = Path(__file__).resolve().parents[1]
WORKFLOW = ROOT / "docs" / "ci" / "conformance-matrix.yml"
SPEC = ROOT / "specs" / "batchnorm" / "momentum.yaml"


@pytest.fixture(scope="module")
def workflow() -> dict[str, Any]:
    return yaml.safe_load(WORKFLOW.read_text())  # type: ignore[no-any-return]


def _tox_envs() -> set[str]:
    config = configparser.ConfigParser(interpolation=None)
    config.read(ROOT / "tox.ini")
    return {name.strip() for name in config["tox"]["env_list"].split(",")}


def test_every_cpu_job_is_a_framework_with_its_tox_env(workflow: dict[str, Any]) -> None:
    frameworks = workflow["jobs"]["cpu"]["strategy"]["matrix"]["framework"]
    assert set(frameworks) <= set(BUILTIN) - {"numpy"}
    assert set(frameworks) <= _tox_envs(), "a CPU job runs a tox env that tox.ini does not have"
    run = [s["run"] for s in workflow["jobs"]["cpu"]["steps"] if "run" in s]
    assert "tox -e ${{ matrix.framework }}" in run


def test_gpu_jobs_run_on_a_gpu_runner_and_require_the_device(workflow: dict[str, Any]) -> None:
    gpu = workflow["jobs"]["gpu"]
    assert "gpu" in gpu["runs-on"]
    assert {job["framework"] for job in gpu["strategy"]["matrix"]["include"]} <= set(BUILTIN)
    command = next(s["run"] for s in gpu["steps"] if "conformance run" in s.get("run", ""))
    assert "--device gpu --require-device" in command


def test_every_job_uploads_its_results_even_when_it_fails(workflow: dict[str, Any]) -> None:
    for job in ("cpu", "gpu"):
        upload = next(s for s in workflow["jobs"][job]["steps"] if s.get("uses", "").startswith("actions/upload-artifact"))
        assert upload["if"] == "always()"
        assert upload["with"]["name"].startswith("results-")
    report = workflow["jobs"]["report"]
    assert report["needs"] == ["cpu", "gpu"] and report["if"] == "always()"
    download = next(s for s in report["steps"] if s.get("uses", "").startswith("actions/download-artifact"))
    assert download["with"] == {"pattern": "results-*", "path": "results", "merge-multiple": True}


def _merge_step(workflow: dict[str, Any]) -> str:
    return next(s["run"] for s in workflow["jobs"]["report"]["steps"] if s.get("name") == "merge")


def _separate_run(out: Path, *selection: str) -> None:
    """One job: a fresh `conformance run` process writing its own results folder."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "tests"), str(ROOT)])}
    done = subprocess.run([sys.executable, "-m", "conformance", "run", *selection, "-q", "--out", str(out), str(SPEC)],
                          capture_output=True, text=True, env=env, timeout=300, check=False)
    assert done.returncode in (0, 1), done.stderr


def test_the_merge_step_merges_results_from_separate_runs(workflow: dict[str, Any], tmp_path: Path) -> None:
    jobs = tmp_path / "jobs"
    _separate_run(jobs / "numpy", "-f", "numpy")
    _separate_run(jobs / "reversed", "--adapter", "fake_adapters:ReversedMomentum")
    # download-artifact with merge-multiple: every artifact's files land in one folder
    results = tmp_path / "work" / "results"
    results.mkdir(parents=True)
    for job in jobs.iterdir():
        shutil.copytree(job, results, dirs_exist_ok=True)
    script = _merge_step(workflow).replace("conformance report", f"{sys.executable} -m conformance report")
    summary = tmp_path / "summary.md"
    done = subprocess.run(["bash", "-e", "-c", script], cwd=results.parent, capture_output=True, text=True,
                          env={**os.environ, "GITHUB_STEP_SUMMARY": str(summary), "PYTHONPATH": str(ROOT)},
                          timeout=300, check=False)
    # the planted reversed momentum is an unexpected divergence: the step fails, after writing all
    assert done.returncode == 1, done.stderr
    html = (results.parent / "report.html").read_text()
    assert "numpy-cpu" in html and "reversed_momentum-cpu" in html
    suites = ET.parse(results.parent / "report.xml").getroot()
    names = {case.get("classname", "") + " " + case.get("name", "") for case in suites.iter("testcase")}
    assert any("numpy" in n for n in names) and any("reversed_momentum" in n for n in names)
    failed = [case for case in suites.iter("testcase") if case.find("failure") is not None]
    assert failed and all("reversed_momentum" in (c.get("classname", "") + c.get("name", "")) for c in failed)
    assert "reversed_momentum" in summary.read_text()
