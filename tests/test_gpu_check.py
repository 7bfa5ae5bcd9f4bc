"""The one-command GPU check (``conformance.gpu_check``, ``scripts/gpu-check``), on the CPU:
its GPU branch is skipped with its reason here, and what it does on a GPU machine (choose the
frameworks, compare each one's CPU and GPU results, write the summary) is checked on
documents made from the committed results."""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from conformance import gpu_check

ROOT = Path(__file__).resolve().parents[1]
PADDLE_CPU = ROOT / "docs" / "results" / "paddle-cpu.json"


def _fake_smi(folder: Path, output: str, status: int = 0) -> dict[str, str]:
    """A PATH whose nvidia-smi prints ``output`` and exits with ``status``."""
    script = folder / "nvidia-smi"
    script.write_text(f"#!/bin/sh\ncat <<'EOF'\n{output}\nEOF\nexit {status}\n")
    script.chmod(0o755)
    return {**os.environ, "PATH": f"{folder}{os.pathsep}{os.environ['PATH']}"}


def test_no_driver_is_a_skip_with_its_reason(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")
    assert gpu_check.nvidia_gpus() == ([], "nvidia-smi not found: no NVIDIA driver on this machine")


def test_the_gpus_nvidia_smi_lists(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    env = _fake_smi(tmp_path, "GPU 0: NVIDIA H200 (UUID: GPU-1234)\nGPU 1: NVIDIA H200 (UUID: GPU-5678)")
    monkeypatch.setenv("PATH", env["PATH"])
    gpus, reason = gpu_check.nvidia_gpus()
    assert gpus == ["GPU 0: NVIDIA H200 (UUID: GPU-1234)", "GPU 1: NVIDIA H200 (UUID: GPU-5678)"]
    assert reason == ""


def test_a_failing_driver_is_quoted(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    env = _fake_smi(tmp_path, "NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver", 9)
    monkeypatch.setenv("PATH", env["PATH"])
    gpus, reason = gpu_check.nvidia_gpus()
    assert gpus == [] and reason.startswith("nvidia-smi -L failed (9): NVIDIA-SMI has failed")


def test_frameworks_are_chosen_by_the_devices_their_build_sees() -> None:
    rows = {
        "torch": {"installed": True, "version": "2.13.0", "devices": ["cpu", "gpu"]},
        "paddle": {"installed": True, "version": "3.3.1", "devices": ["cpu"]},
        "tf": {"installed": False, "install": "pip install ..."},
        "flax": {"installed": True, "error": "ImportError: libcudart.so.12\nmore"},
    }
    chosen, left_out = gpu_check.gpu_frameworks(rows)
    assert chosen == ["torch"]
    assert left_out == {"paddle": "its build sees no GPU (devices: cpu)", "tf": "not installed",
                        "flax": "fails to load: ImportError: libcudart.so.12"}


def _gpu_twin(cpu: dict) -> dict:
    """The committed Paddle CPU results as if from a GPU whose kernel feeds the unbiased
    variance (what the seeds printed on gpu:0): one case's explanation moves, one conforming
    case diverges with a larger error, and the measured estimator fact changes."""
    gpu = copy.deepcopy(cpu)
    gpu["device"] = "gpu"
    gpu["environment"].update({"device_name": "NVIDIA H200", "cuda": "12.9", "cudnn": 91002})
    cases = {c["id"]: c for c in gpu["cases"]}
    cases["batchnorm/affine::negative_scale_and_shift"]["explained_by"] = {"bn.eps_placement": "outside"}
    diverging = next(c for c in gpu["cases"] if c["verdict"] == "conforms" and c.get("checks"))
    diverging["verdict"] = "divergence"
    diverging["checks"][0]["max_abs_error"] = 0.5
    estimator = next(c for c in gpu["cases"] if "bn.running_var_estimator.rank2" in c.get("facts", {}))
    estimator["facts"]["bn.running_var_estimator.rank2"] = "unbiased"
    return gpu


def test_compare_names_every_difference_between_the_devices() -> None:
    cpu = json.loads(PADDLE_CPU.read_text())
    gpu = _gpu_twin(cpu)
    diff = gpu_check.compare(cpu, gpu)
    diverging = next(c for c in cpu["cases"] if c["verdict"] == "conforms" and c.get("checks"))
    assert diff.verdicts == [(diverging["id"], "conforms", "divergence")]
    assert diff.explanations == [("batchnorm/affine::negative_scale_and_shift",
                                  "bn.running_var_estimator=biased", "bn.eps_placement=outside")]
    assert ("bn.running_var_estimator.rank2", "biased", "unbiased") in diff.facts
    case_id, quantity, on_cpu, on_gpu = diff.largest_error_change  # type: ignore[misc]
    assert (case_id, quantity, on_gpu) == (diverging["id"], diverging["checks"][0]["quantity"], 0.5)
    assert on_cpu < 0.01
    assert diff.only_on_one == []


def test_identical_results_compare_equal() -> None:
    cpu = json.loads(PADDLE_CPU.read_text())
    diff = gpu_check.compare(cpu, copy.deepcopy(cpu))
    assert (diff.verdicts, diff.explanations, diff.facts, diff.largest_error_change) == ([], [], [], None)
    text = gpu_check.render([diff], ["GPU 0: NVIDIA H200"], {})
    assert "Same verdicts, explanations and measured conventions on both devices." in text


def test_the_summary_says_what_differs_and_the_gpu_environment() -> None:
    cpu = json.loads(PADDLE_CPU.read_text())
    text = gpu_check.render([gpu_check.compare(cpu, _gpu_twin(cpu))], ["GPU 0: NVIDIA H200"],
                            {"tf": "its build sees no GPU (devices: cpu)"})
    assert "GPUs: GPU 0: NVIDIA H200" in text
    assert "- `tf` not run on the GPU: its build sees no GPU (devices: cpu)" in text
    assert "device_name=NVIDIA H200, cuda=12.9, cudnn=91002" in text
    assert "convention `bn.running_var_estimator.rank2`: biased on the CPU, **unbiased** on the GPU" in text
    assert "conforms on the CPU, **divergence** on the GPU" in text


def _script(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(ROOT / "scripts" / "gpu-check"), *args], capture_output=True, text=True,
                          env={**env, "PYTHON": sys.executable}, timeout=300, check=False)


def test_the_script_skips_its_gpu_branch_without_a_gpu(tmp_path: Path) -> None:
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}/usr/bin:/bin"}
    if any((Path(p) / "nvidia-smi").exists() for p in env["PATH"].split(os.pathsep)):
        pytest.skip("this machine has nvidia-smi: the skip branch is not what runs here")
    done = _script(env, "--out", str(tmp_path))
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "gpu-check: skipped: nvidia-smi not found: no NVIDIA driver on this machine"
    assert _script(env, "--require-gpu", "--out", str(tmp_path)).returncode == 2
    assert list(tmp_path.iterdir()) == []


def test_a_gpu_no_framework_sees_is_reported_per_framework(tmp_path: Path) -> None:
    """A GPU listed (a stand-in nvidia-smi) but only the numpy reference asked for, which sees
    the CPU only: the real inventory says so, and nothing runs."""
    env = _fake_smi(tmp_path, "GPU 0: NVIDIA H200 (UUID: GPU-1234)")
    out = tmp_path / "results"
    done = _script(env, "--framework", "numpy", "--out", str(out))
    assert done.returncode == 0, done.stderr
    assert "- `numpy` not run on the GPU: its build sees no GPU (devices: cpu)" in done.stdout
    assert "gpu-check: no installed framework sees the GPU" in done.stdout
    assert not out.exists()
    assert _script(env, "--framework", "numpy", "--require-gpu", "--out", str(out)).returncode == 2
