"""The GPU check in one command: ``python -m conformance.gpu_check`` (``scripts/gpu-check``).

On a machine with an NVIDIA GPU it finds every installed framework whose build sees the GPU
(``conformance frameworks``), runs the corpus on each with ``--device cpu,gpu`` (the CPU run on
the same machine, with the same versions, is what the GPU run is compared with), and writes

- ``<out>/<framework>-gpu.json`` and ``<out>/<framework>-cpu.json`` (the results files, whose
  ``environment`` holds the CUDA and cuDNN versions and the determinism and TF32 settings as
  each adapter reads them);
- ``<out>/gpu-summary.md``, also printed: per framework, the cases whose verdict or whose
  explaining convention differs between the devices, the measured conventions that differ,
  and the largest change of a check's error between the devices.

Without an NVIDIA GPU it says why and exits 0 (``--require-gpu``: exit 2), so the script can sit
in any CI; with a GPU but no framework that sees it, it names each installed framework's reason.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

SUMMARY_FILE = "gpu-summary.md"


def nvidia_gpus() -> tuple[list[str], str]:
    """The GPUs ``nvidia-smi -L`` lists, or none and the reason."""
    smi = shutil.which("nvidia-smi")
    if smi is None:
        return [], "nvidia-smi not found: no NVIDIA driver on this machine"
    try:
        done = subprocess.run([smi, "-L"], capture_output=True, text=True, timeout=60, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return [], f"nvidia-smi -L failed: {exc}"
    if done.returncode != 0:
        return [], f"nvidia-smi -L failed ({done.returncode}): {done.stderr.strip() or done.stdout.strip()}"
    gpus = [line.strip() for line in done.stdout.splitlines() if line.strip().startswith("GPU ")]
    return gpus, "" if gpus else "nvidia-smi lists no GPU"


def gpu_frameworks(rows: dict[str, dict[str, Any]]) -> tuple[list[str], dict[str, str]]:
    """From ``conformance.inventory`` rows: the frameworks that see a GPU, and for every other
    one the reason it is left out."""
    chosen, left_out = [], {}
    for name, row in rows.items():
        if not row.get("installed"):
            left_out[name] = "not installed"
        elif "error" in row:
            left_out[name] = f"fails to load: {row['error'].splitlines()[0] if row['error'] else ''}"
        elif "gpu" in row.get("devices", []):
            chosen.append(name)
        else:
            left_out[name] = f"its build sees no GPU (devices: {', '.join(row.get('devices', [])) or 'none'})"
    return chosen, left_out


@dataclass
class DeviceDiff:
    """What differs between one framework's CPU and GPU results."""

    framework: str
    environment: dict[str, Any]
    verdicts: list[tuple[str, str, str]] = field(default_factory=list)  # (case, cpu, gpu)
    explanations: list[tuple[str, str, str]] = field(default_factory=list)  # (case, cpu, gpu)
    facts: list[tuple[str, Any, Any]] = field(default_factory=list)  # (fact, cpu, gpu)
    largest_error_change: tuple[str, str, float, float] | None = None  # (case, quantity, cpu, gpu)
    only_on_one: list[str] = field(default_factory=list)  # cases run on one device only


def _explained(entry: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v}" for k, v in sorted((entry.get("explained_by") or {}).items()))


def _worst_errors(entry: dict[str, Any]) -> dict[str, float]:
    """quantity -> the largest max_abs_error of its checks."""
    worst: dict[str, float] = {}
    for check in entry.get("checks", []):
        error = check.get("max_abs_error")
        if isinstance(error, (int, float)):
            worst[check["quantity"]] = max(worst.get(check["quantity"], 0.0), float(error))
    return worst


def compare(cpu: dict[str, Any], gpu: dict[str, Any]) -> DeviceDiff:
    """The differences between two results documents of one framework (CPU, GPU)."""
    from conformance import conventions

    diff = DeviceDiff(gpu["framework"], dict(gpu.get("environment", {})))
    cpu_cases = {c["id"]: c for c in cpu.get("cases", [])}
    gpu_cases = {c["id"]: c for c in gpu.get("cases", [])}
    diff.only_on_one = sorted(set(cpu_cases) ^ set(gpu_cases))
    largest = 0.0
    for case_id in sorted(set(cpu_cases) & set(gpu_cases)):
        on_cpu, on_gpu = cpu_cases[case_id], gpu_cases[case_id]
        if on_cpu["verdict"] != on_gpu["verdict"]:
            diff.verdicts.append((case_id, on_cpu["verdict"], on_gpu["verdict"]))
        elif _explained(on_cpu) != _explained(on_gpu):
            diff.explanations.append((case_id, _explained(on_cpu) or "-", _explained(on_gpu) or "-"))
        cpu_errors, gpu_errors = _worst_errors(on_cpu), _worst_errors(on_gpu)
        for quantity in set(cpu_errors) & set(gpu_errors):
            change = abs(gpu_errors[quantity] - cpu_errors[quantity])
            if change > largest:
                largest = change
                diff.largest_error_change = (case_id, quantity, cpu_errors[quantity], gpu_errors[quantity])
    cpu_facts, gpu_facts = ({k: v for row in conventions.rows([doc]) for k, v in row["facts"].items()}
                            for doc in (cpu, gpu))
    for fact in sorted(set(cpu_facts) | set(gpu_facts)):
        if cpu_facts.get(fact) != gpu_facts.get(fact):
            diff.facts.append((fact, cpu_facts.get(fact, "not measured"), gpu_facts.get(fact, "not measured")))
    return diff


# what each adapter records about the GPU and its determinism (torch, TensorFlow, JAX, ONNX Runtime)
ENVIRONMENT_KEYS = ("device_name", "provider", "cuda", "cudnn", "cuda_plugin", "cudnn_deterministic",
                    "cudnn_benchmark", "deterministic_algorithms", "op_determinism", "deterministic_ops",
                    "xla_gpu_deterministic_ops", "tf32", "tf32_matmul", "tf32_cudnn",
                    "jax_default_matmul_precision", "xla_flags_env")


def render(diffs: list[DeviceDiff], gpus: list[str], left_out: dict[str, str]) -> str:
    """The Markdown summary of a GPU check."""
    lines = ["# GPU check", "", f"GPUs: {'; '.join(gpus)}", ""]
    for name, reason in sorted(left_out.items()):
        lines.append(f"- `{name}` not run on the GPU: {reason}")
    for diff in diffs:
        lines += ["", f"## {diff.framework}: GPU against CPU", ""]
        env = ", ".join(f"{k}={diff.environment[k]}" for k in ENVIRONMENT_KEYS if k in diff.environment)
        lines.append(f"GPU environment: {env or 'not recorded'}")
        if not (diff.verdicts or diff.explanations or diff.facts or diff.only_on_one):
            lines.append("Same verdicts, explanations and measured conventions on both devices.")
        for case_id, on_cpu, on_gpu in diff.verdicts:
            lines.append(f"- `{case_id}`: {on_cpu} on the CPU, **{on_gpu}** on the GPU")
        for case_id, on_cpu, on_gpu in diff.explanations:
            lines.append(f"- `{case_id}`: explained by {on_cpu} on the CPU, by **{on_gpu}** on the GPU")
        for fact, on_cpu, on_gpu in diff.facts:
            lines.append(f"- convention `{fact}`: {on_cpu} on the CPU, **{on_gpu}** on the GPU")
        if diff.only_on_one:
            lines.append(f"- run on one device only: {', '.join(f'`{c}`' for c in diff.only_on_one)}")
        if diff.largest_error_change is not None:
            case_id, quantity, cpu_error, gpu_error = diff.largest_error_change
            lines.append(f"- largest change of an error: `{case_id}` {quantity}, max abs error "
                         f"{cpu_error:.3g} on the CPU, {gpu_error:.3g} on the GPU")
    return "\n".join(lines) + "\n"


def run_corpus(frameworks: list[str], specs: list[str], out: Path, timeout: float | None) -> int:
    """``conformance run`` on both devices in a fresh process (its exit code: 0, or 1 for findings)."""
    command = [sys.executable, "-m", "conformance", "run", "--framework", ",".join(frameworks),
               "--device", "cpu,gpu", "--require-device", "--out", str(out), *specs]
    if timeout is not None:
        command += ["--timeout", str(timeout)]
    print("gpu-check: " + " ".join(command[2:]), flush=True)
    return subprocess.run(command, env=shared_gpu_environment(), check=False).returncode


def shared_gpu_environment() -> dict[str, str]:
    """The run's environment: the workers share one GPU, and JAX and TensorFlow would each
    take most of its memory at start-up (JAX preallocates 75 %, TensorFlow all of it)."""
    import os

    return {**os.environ, "XLA_PYTHON_CLIENT_PREALLOCATE": "false", "TF_FORCE_GPU_ALLOW_GROWTH": "true"}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m conformance.gpu_check", description=__doc__.split("\n\n")[0])
    parser.add_argument("specs", nargs="*", default=["specs"], help="spec files or folders (default: specs)")
    parser.add_argument("--out", default="results", help="results folder (default: results)")
    parser.add_argument("--framework", "-f", default="", help="only these (default: every installed one that sees a GPU)")
    parser.add_argument("--require-gpu", action="store_true", help="exit 2 when no GPU or no framework sees one")
    parser.add_argument("--timeout", type=float, default=None, help="per-case time limit in seconds")
    args = parser.parse_args(argv)
    from conformance.adapters import REAL_FRAMEWORKS, resolve
    from conformance.inventory import inventory

    gpus, reason = nvidia_gpus()
    if not gpus:
        print(f"gpu-check: skipped: {reason}")
        return 2 if args.require_gpu else 0
    names = args.framework.split(",") if args.framework else list(REAL_FRAMEWORKS)
    chosen, left_out = gpu_frameworks(inventory(resolve(names)))
    if not chosen:
        print(render([], gpus, left_out) + "gpu-check: no installed framework sees the GPU")
        return 2 if args.require_gpu else 0
    out = Path(args.out)
    status = run_corpus(chosen, args.specs, out, args.timeout)
    if status not in (0, 1):
        print(f"gpu-check: conformance run failed ({status}); the results written so far are in {out}/")
        return status
    diffs = [compare(load(out, name, "cpu"), load(out, name, "gpu")) for name in chosen]
    summary = render(diffs, gpus, left_out)
    (out / SUMMARY_FILE).write_text(summary, encoding="utf-8")
    print(summary + f"\ngpu-check: summary in {out / SUMMARY_FILE}")
    return status


def load(out: Path, framework: str, device: str) -> dict[str, Any]:
    import json

    return json.loads((out / f"{framework}-{device}.json").read_text(encoding="utf-8"))  # type: ignore[no-any-return]


if __name__ == "__main__":
    raise SystemExit(main())
