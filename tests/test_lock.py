"""The CI lock (constraints/ci.txt): made by a tool, complete, and in step with the versions
the committed results and the README's measured tables were measured with."""

from __future__ import annotations

import configparser
import json
import re
import sys
from pathlib import Path

import pytest

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - CI runs 3.11
    tomllib = pytest.importorskip("tomli")

ROOT = Path(__file__).resolve().parents[1]
LOCK = ROOT / "constraints" / "ci.txt"
PIN = re.compile(r"^(?P<name>[A-Za-z0-9][A-Za-z0-9._-]*)==(?P<version>[A-Za-z0-9.+!-]+)$")
REQUIREMENT_NAME = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)")


def normalized(name: str) -> str:
    """PEP 503: names compare case-insensitively, with runs of -_. as one '-'."""
    return re.sub(r"[-_.]+", "-", name).lower()


def lock() -> dict[str, str]:
    pins: dict[str, str] = {}
    for number, raw in enumerate(LOCK.read_text().splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        match = PIN.match(line)
        assert match, f"constraints/ci.txt:{number}: {raw!r} is not an exact pin name==version"
        pins[normalized(match["name"])] = match["version"]
    return pins


def requirement_names(requirements: list[str]) -> set[str]:
    names = set()
    for requirement in requirements:
        match = REQUIREMENT_NAME.match(requirement)
        assert match, requirement
        names.add(normalized(match[1]))
    return names


def test_the_lock_says_how_to_regenerate_it() -> None:
    header = LOCK.read_text().splitlines()[:3]
    assert any("uv pip compile pyproject.toml constraints/ci.in" in line
               and "-o constraints/ci.txt" in line for line in header), header
    readme = (ROOT / "README.md").read_text()
    assert "uv pip compile pyproject.toml constraints/ci.in" in readme


def test_every_package_tox_installs_is_pinned() -> None:
    pins = lock()
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    wanted = requirement_names(project["project"]["dependencies"])
    for extra in project["project"]["optional-dependencies"].values():
        wanted |= requirement_names(extra)
    wanted |= requirement_names(project["build-system"]["requires"])
    tox = configparser.ConfigParser(interpolation=None)
    tox.read(ROOT / "tox.ini")
    for section in tox.sections():
        wanted |= requirement_names(tox[section].get("deps", "").split())
    wanted.add("tox")
    assert wanted - set(pins) == set(), "add them to constraints/ci.in and regenerate the lock"
    # and their own dependencies: every pin but the inputs is there because something needs it
    assert len(pins) > len(wanted)


def test_every_env_but_the_drift_env_installs_against_the_lock() -> None:
    tox = configparser.ConfigParser(interpolation=None)
    tox.read(ROOT / "tox.ini")
    assert "PIP_CONSTRAINT = {toxinidir}/constraints/ci.txt" in tox["testenv"]["set_env"]
    assert "PIP_CONSTRAINT = {toxinidir}/constraints/ci.txt" in tox["pkgenv"]["set_env"]
    for section in tox.sections():
        if section.startswith("testenv:") and "set_env" in tox[section]:
            constraint = re.search(r"PIP_CONSTRAINT = (\S+)", tox[section]["set_env"])
            expected = "latest.txt" if section == "testenv:latest" else "ci.txt"
            assert constraint and constraint[1].endswith(expected), section
    ci = (ROOT / ".ci" / "run").read_text()
    assert "--constraint constraints/ci.txt tox" in ci


def test_the_drift_env_pins_only_the_torch_cpu_build() -> None:
    lines = [line.split("#", 1)[0].strip() for line in
             (ROOT / "constraints" / "latest.txt").read_text().splitlines()]
    assert [line for line in lines if line] == [f"torch=={lock()['torch']}"]
    assert lock()["torch"].endswith("+cpu")


@pytest.mark.parametrize("framework, package, environment_key, quoted", [
    ("torch", "torch", "torch", True), ("paddle", "paddlepaddle", "paddle", True),
    ("tf", "tensorflow-cpu", "tensorflow", True), ("tf", "keras", "keras", True),
    ("torch", "numpy", "numpy", False), ("tf_keras", "tf-keras", "tf_keras", True),
    ("keras-torch", "keras", "keras", True), ("keras-torch", "torch", "torch", False),
    ("keras-jax", "jax", "jax", True), ("flax", "flax", "flax", True), ("flax", "jax", "jax", True),
    ("flax-nnx", "flax", "flax", True), ("onnxruntime", "onnxruntime", "onnxruntime", True),
    ("onnxruntime", "onnx", "onnx", False)])
def test_framework_pins_match_the_committed_results(framework: str, package: str,
                                                     environment_key: str, quoted: bool) -> None:
    results = json.loads((ROOT / "docs" / "results" / f"{framework}-cpu.json").read_text())
    measured = results["environment"][environment_key]
    assert lock()[package] == measured, (
        f"docs/results/{framework}-cpu.json was measured with {package} {measured}; the lock pins "
        f"{lock()[package]}: re-run the corpus and regenerate the documents, or fix the pin")
    if quoted:  # the README's measured tables name the version they were measured with
        public = measured.split("+")[0]
        assert re.search(rf"{re.escape(package)} {re.escape(public)}\b|"
                         rf"{re.escape(framework)} {re.escape(public)}\b|"
                         rf"Keras {re.escape(public)}\b", (ROOT / "README.md").read_text()), \
            f"the README quotes no {package} {public}"
