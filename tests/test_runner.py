"""The runner with real worker processes: results files, crashes, the registry."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from helpers import cases_from

from conformance import RESULTS_SCHEMA
from conformance.adapters import from_target, resolve
from conformance.runner import run

CRASH_SPEC = """
cases:
""" + "".join(
    f"""  - name: {name}
    layer: {{kind: batch_norm, eps: {eps}}}
    inputs: {{a: {{shape: [4, 2], seed: 1}}}}
    steps: [{{train: a}}]
"""
    for name, eps in [("before", 0.001), ("abort", 0.5), ("after_abort", 0.001), ("segfault", 0.25),
                      ("exception", 0.0625), ("hang", 0.125), ("last", 0.001)]
)


def test_crashes_become_results_and_the_run_goes_on(tmp_path: Path) -> None:
    cases = cases_from(CRASH_SPEC)
    outcome = run(cases, [from_target("fake_adapters:Crashing")], ["cpu"], tmp_path, case_timeout_s=5)
    entries = {c["id"].split("::")[1]: c for c in outcome.documents[0]["cases"]}
    assert [entries[n]["verdict"] for n in ("before", "after_abort", "last")] == ["conforms"] * 3
    assert entries["abort"]["error"]["kind"] == "signal" and "SIGABRT" in entries["abort"]["message"]
    assert entries["segfault"]["error"]["kind"] == "signal" and "SIGSEGV" in entries["segfault"]["message"]
    assert entries["exception"]["error"]["kind"] == "exception"
    assert "planted failure" in entries["exception"]["message"]
    assert entries["hang"]["error"]["kind"] == "timeout"
    assert outcome.exit_code == 1
    log = (tmp_path / "crashing-cpu.jsonl").read_text().splitlines()[1:]  # after the header
    assert [json.loads(line)["id"].split("::")[1] for line in log] == list(entries)


def test_results_file_contract(tmp_path: Path) -> None:
    cases = cases_from(CRASH_SPEC)[:1]
    outcome = run(cases, resolve("numpy"), ["cpu", "gpu"], tmp_path)
    assert outcome.exit_code == 0
    data = json.loads((tmp_path / "numpy-cpu.json").read_text())
    assert data["schema"] == RESULTS_SCHEMA
    assert (data["framework"], data["device"]) == ("numpy", "cpu")
    assert data["framework_version"] and data["environment"]["python"]
    assert [(c["id"], c["verdict"]) for c in data["cases"]] == [("test::before", "conforms")]
    gpu = json.loads((tmp_path / "numpy-gpu.json").read_text())
    assert gpu["cases"][0]["verdict"] == "skipped" and "sees no gpu" in gpu["cases"][0]["message"]


def test_a_framework_that_fails_to_load_loses_nothing_else(tmp_path: Path) -> None:
    cases = cases_from(CRASH_SPEC)[:1]
    refs = [from_target("fake_adapters:BrokenImport"), *resolve("numpy")]
    outcome = run(cases, refs, ["cpu"], tmp_path)
    by_framework = {d["framework"]: d for d in outcome.documents}
    assert by_framework["numpy"]["cases"][0]["verdict"] == "conforms"
    broken = by_framework["fake_adapters"]["cases"][0]
    assert broken["verdict"] == "error" and "cannot open shared object" in broken["message"]
    assert broken["error"]["kind"] == "startup"


@pytest.mark.parametrize(
    ("adapter", "case_name", "expected_flags"),
    [
        # a registered divergence that still happens: expected, not failing
        ("fake_adapters:BiasedUndocumented", "before", {"unexpected": False, "stale": None}),
        # a registered divergence that no longer happens: stale, failing
        ("conformance.adapters.numpy:NumpyAdapter", "before", {"unexpected": True, "stale": True}),
    ],
)
def test_expectations_registry(tmp_path: Path, adapter: str, case_name: str,
                               expected_flags: dict[str, object]) -> None:
    ref = from_target(adapter)
    registry = tmp_path / "expectations"
    registry.mkdir()
    name = "biased_undocumented" if "Biased" in adapter else "numpy"  # the adapter class's name
    (registry / f"{name}.yaml").write_text(
        "expected:\n"
        f"  - case: 'test::{case_name}'\n"
        "    verdict: divergence\n"
        "    reason: biased running variance\n"
        "    link: https://example.invalid\n")
    case = cases_from(CRASH_SPEC.replace("shape: [4, 2]", "shape: [4, 2], mean: 3.0"))[:1]
    outcome = run(case, [ref], ["cpu"], tmp_path / "out", registry)
    entry = outcome.documents[0]["cases"][0]
    assert entry["unexpected"] is expected_flags["unexpected"]
    assert entry.get("stale") is expected_flags["stale"]
    assert entry["expected"]["reason"] == "biased running variance"
    assert outcome.exit_code == (1 if expected_flags["unexpected"] else 0)


def test_registry_entries_respect_version_ranges(tmp_path: Path) -> None:
    registry = tmp_path / "expectations"
    registry.mkdir()
    (registry / "biased_undocumented.yaml").write_text(
        "expected:\n  - {case: 'test::*', verdict: divergence, versions: '<1.0', reason: old, link: x}\n")
    ref = from_target("fake_adapters:BiasedUndocumented")
    outcome = run(cases_from(CRASH_SPEC)[:1], [ref], ["cpu"], None, registry)
    # numpy's version is >= 1.0, so the entry does not apply: the divergence is unexpected
    assert outcome.documents[0]["cases"][0]["unexpected"] is True


def test_two_adapters_from_one_module_run_side_by_side(tmp_path: Path) -> None:
    from conformance.worker import prestart

    refs = [from_target("fake_adapters:BiasedUndocumented"), from_target("fake_adapters:ReversedMomentum")]
    assert refs[0].name == refs[1].name  # both named after the module
    workers = prestart(refs)
    assert len(workers) == 2
    outcome = run(cases_from(CRASH_SPEC)[:1], refs, ["cpu"], tmp_path, workers=workers)
    assert sorted(d["framework"] for d in outcome.documents) == ["biased_undocumented", "reversed_momentum"]


THREE_DIFFERENT = "cases:\n" + "".join(
    f"""  - name: case{seed}
    layer: {{kind: batch_norm, eps: {eps}}}
    inputs: {{a: {{shape: [4, 2], seed: {seed}}}}}
    steps: [{{train: a}}]
"""
    for seed, eps in [(1, 0.001), (2, 0.01), (3, 0.1)]
)


def test_a_stream_sends_every_case_at_once_and_keeps_their_order() -> None:
    from conformance.verdicts import judge
    from conformance.worker import WorkerProcess

    cases = cases_from(THREE_DIFFERENT)
    worker = WorkerProcess(from_target("fake_adapters:Slow"))
    try:
        worker.start()
        runs = list(worker.stream(cases, "cpu"))
        assert [judge(c, r, {})["verdict"] for c, r in zip(cases, runs)] == ["conforms"] * 3
        # a case judged against another case's run diverges: the check above can tell them apart
        assert judge(cases[2], runs[1], {})["verdict"] == "divergence"
    finally:
        worker.close()


def test_leaving_a_stream_early_leaves_no_stale_runs_behind() -> None:
    """The worker got the whole batch; if the caller stops reading, the rest of the batch
    must not be answered to the next request."""
    from conformance.verdicts import judge
    from conformance.worker import WorkerProcess

    cases = cases_from(THREE_DIFFERENT)
    worker = WorkerProcess(from_target("fake_adapters:Slow"))
    try:
        worker.start()
        stream = worker.stream(cases, "cpu")
        first = next(stream)
        stream.close()
        assert judge(cases[0], first, {})["verdict"] == "conforms"
        later = worker.run_case(cases[2], "cpu")
        assert judge(cases[2], later, {})["verdict"] == "conforms"
        assert worker.restarts == 1  # the abandoned worker was killed, not reused
    finally:
        worker.close()


def test_a_stopped_worker_is_not_sent_more_work() -> None:
    """``stop`` lets the process exit in the background; a request after it must go to a
    fresh worker, not to the one on its way out."""
    from conformance.verdicts import judge
    from conformance.worker import WorkerProcess

    cases = cases_from(THREE_DIFFERENT)
    worker = WorkerProcess(from_target("fake_adapters:Slow"))
    try:
        worker.start()
        worker.stop()
        run = worker.run_case(cases[1], "cpu")
        assert run.status == "ok" and judge(cases[1], run, {})["verdict"] == "conforms"
        assert worker.restarts == 1
    finally:
        worker.close()


def test_a_script_without_a_main_guard_can_use_the_runner(tmp_path: Path) -> None:
    """Workers are not started with multiprocessing's spawn, which re-runs the parent's
    main script in every child: a plain top-level script (and the pytest or conformance
    console scripts) must run once, not once per worker."""
    import subprocess
    import sys

    script = tmp_path / "plain_script.py"
    script.write_text(
        "from conformance.adapters import resolve\n"
        "from conformance.runner import run\n"
        "from conformance.spec import load_text\n"
        f"cases = load_text({('conformance_spec: 1' + chr(10) + CRASH_SPEC)!r})[:2]\n"
        "print('script body ran')\n"
        "outcome = run(cases, resolve('numpy'), ['cpu'], None)\n"
        "print([c['verdict'] for c in outcome.documents[0]['cases']])\n")
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["script body ran", "['conforms', 'conforms']"]


def test_a_worker_loads_the_parents_kit_whatever_the_working_directory_holds(tmp_path: Path) -> None:
    """The worker's interpreter takes the parent's import path before it imports anything:
    a folder named like the kit in the working directory must not shadow it."""
    import subprocess
    import sys

    workdir = tmp_path / "work"
    (workdir / "conformance").mkdir(parents=True)
    (workdir / "conformance" / "__init__.py").write_text("raise ImportError('the decoy was imported')\n")
    script = tmp_path / "scripts" / "run_two.py"
    script.parent.mkdir()
    script.write_text(
        "from conformance.adapters import resolve\n"
        "from conformance.runner import run\n"
        "from conformance.spec import load_text\n"
        f"cases = load_text({('conformance_spec: 1' + chr(10) + CRASH_SPEC)!r})[:2]\n"
        "outcome = run(cases, resolve('numpy'), ['cpu'], None)\n"
        "print([c['verdict'] for c in outcome.documents[0]['cases']])\n")
    done = subprocess.run([sys.executable, str(script)], cwd=workdir, capture_output=True, text=True,
                          check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["['conforms', 'conforms']"]
