"""Benchmark: what the kit costs on top of the frameworks' own work.

    python -m conformance.bench [--json OUT] [--framework torch,paddle,tf] [SPECS...]

For each framework, in one run on one machine:

- ``kit_s``: wall time of ``conformance run -f NAME`` over the corpus (a fresh process:
  spec loading, the worker process, the framework calls, reference, verdicts, files);
- ``floor_s``: wall time of a plain process that imports the framework and makes the same
  framework calls on the same inputs (the cases' layers and steps, through the adapter's
  calls, with nothing else: no specs to parse, no reference, no verdicts, no files);
- ``overhead_ratio = kit_s / floor_s``, ``per_case_overhead_ms = (kit_s - floor_s) / cases``,
  ``cases_per_s = cases / kit_s``;

plus ``import_s`` (``import conformance`` in a fresh interpreter) and
``all_frameworks_wall_s`` (``conformance run`` with every framework at once, side by side).
Each time is the median of ``--repeat`` runs, the kit's and the floor's taken in turns. Numbers, never assertions: compare ratios
within one run.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import pickle
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from conformance import __version__
from conformance.adapters import REAL_FRAMEWORKS, load_class, resolve


def _timed(command: list[str]) -> float:
    start = time.perf_counter()
    done = subprocess.run(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, check=False)
    elapsed = time.perf_counter() - start
    if done.returncode not in (0, 1):  # 1: findings, still a complete run
        raise RuntimeError(f"{' '.join(command)} failed ({done.returncode}): {done.stderr[-2000:]}")
    return elapsed


def _median(command: list[str], repeat: int) -> float:
    return statistics.median(_timed(command) for _ in range(repeat))


def _interleaved(first: list[str], second: list[str], repeat: int) -> tuple[float, float]:
    """Medians of ``repeat`` runs of each command, taken in turns (first, second, first,
    ...) so that both see the same machine: a shared machine's load and page cache drift
    over seconds, and a framework's import is mostly reading its libraries."""
    times: tuple[list[float], list[float]] = ([], [])
    for _ in range(repeat):
        times[0].append(_timed(first))
        times[1].append(_timed(second))
    return statistics.median(times[0]), statistics.median(times[1])


def floor(framework: str, cases_file: str) -> None:
    """The plain script: import the framework, make the calls, nothing else."""
    from conformance.program import execute
    from conformance.worker import ONE_FRAMEWORK_ENV

    os.environ[ONE_FRAMEWORK_ENV] = "1"  # one framework here too: it imports what a worker imports
    with open(cases_file, "rb") as handle:
        cases = pickle.load(handle)
    adapter = load_class(resolve(framework)[0].target)()
    for case in cases:
        execute(functools.partial(adapter.build, case.layer, case.dtype, "cpu"), case)
    # the kit's worker skips the interpreter teardown (seconds with a framework loaded); the
    # floor does too, so that the ratio compares the work, not the exit
    sys.stdout.flush()
    os._exit(0)


def measure(framework: str, specs: list[str], cases_file: str, count: int, repeat: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as out:
        kit, plain = _interleaved(
            [sys.executable, "-m", "conformance", "run", "-q", "-f", framework, "--out", out, *specs],
            [sys.executable, "-m", "conformance.bench", "--floor", framework, cases_file], repeat)
        version = json.loads(Path(out, f"{framework}-cpu.json").read_text())["framework_version"]
    return {"version": version, "cases": count, "kit_s": round(kit, 3), "floor_s": round(plain, 3),
            "overhead_ratio": round(kit / plain, 3),
            "per_case_overhead_ms": round(1000 * (kit - plain) / count, 2),
            "cases_per_s": round(count / kit, 1)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m conformance.bench", description=__doc__.split("\n")[0])
    parser.add_argument("specs", nargs="*", default=["specs"])
    parser.add_argument("--framework", "-f", default="", help="default: every installed one")
    parser.add_argument("--json", default=None, metavar="OUT", help="write the numbers here")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--floor", nargs=2, metavar=("FRAMEWORK", "CASES"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.floor:
        floor(*args.floor)
        return 0

    from conformance.cli import load_cases

    names = [r.name for r in resolve(args.framework or list(REAL_FRAMEWORKS)) if r.installed()]
    cases = load_cases(args.specs)
    report: dict[str, Any] = {"kit_version": __version__,
                              "machine": {"python": platform.python_version(), "platform": platform.platform(),
                                          "cpus": _cpus()}, "repeat": args.repeat, "frameworks": {}}
    report["kit_bytecode_cached"] = _bytecode_cached()
    if not report["kit_bytecode_cached"]:
        print("note: the kit's modules have no cached bytecode (an editable install under "
              "PYTHONDONTWRITEBYTECODE?), so every kit process compiles them from source, which an "
              "installed kit never does; for representative numbers run: python -m compileall "
              f"{Path(__file__).parent}", file=sys.stderr)
    report["import_s"] = round(_median([sys.executable, "-c", "import conformance.cli"], args.repeat), 3)
    with tempfile.NamedTemporaryFile(suffix=".pkl", delete=False) as handle:
        pickle.dump(cases, handle)
    for name in names:
        report["frameworks"][name] = measure(name, args.specs, handle.name, len(cases), args.repeat)
        _print_row(name, report["frameworks"][name])
    if names:
        with tempfile.TemporaryDirectory() as out:
            report["all_frameworks_wall_s"] = round(_median(
                [sys.executable, "-m", "conformance", "run", "-q", "-f", ",".join(names), "--out", out,
                 *args.specs], args.repeat), 3)
    Path(handle.name).unlink()
    print(f"import conformance: {report['import_s']} s; all frameworks side by side: "
          f"{report.get('all_frameworks_wall_s', '-')} s ({len(cases)} cases each)")
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=1) + "\n")
    return 0


def _print_row(name: str, row: dict[str, Any]) -> None:
    print(f"{name:8} kit {row['kit_s']:7.2f} s  floor {row['floor_s']:7.2f} s  overhead x{row['overhead_ratio']:.2f}"
          f"  {row['per_case_overhead_ms']:7.1f} ms/case  {row['cases_per_s']:6.1f} cases/s", flush=True)


def _bytecode_cached() -> bool:
    """Whether the kit's modules load from compiled bytecode, as they do when installed."""
    import importlib.util

    from conformance import cli

    return Path(importlib.util.cache_from_source(cli.__file__)).is_file()


def _cpus() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 0)


if __name__ == "__main__":
    sys.exit(main())
