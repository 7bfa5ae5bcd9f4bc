"""The pytest plugin, driven through pytester with the numpy reference as the framework."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

SPEC = """conformance_spec: 1
cases:
  - name: good
    layer: {kind: batch_norm}
    inputs: {a: {shape: [4, 2], seed: 1}}
    steps: [{train: a}]
  - name: exact_float32
    layer: {kind: batch_norm, update_weight: 0.5}
    inputs: {a: {values: [[1.0], [3.0]]}}
    steps: [{train: a, observe: [output]}]
    tolerance: {atol: 0, rtol: 0}
"""


# Records every test report through pytest's hooks, so that the tests below read outcomes
# and failure texts from pytest's report objects, not from how its terminal lays them out.
RECORDER = """
import json

def pytest_runtest_logreport(report):
    with open("reports.jsonl", "a", encoding="utf-8") as out:
        out.write(json.dumps({"nodeid": report.nodeid, "when": report.when,
                              "outcome": report.outcome, "text": report.longreprtext}) + "\\n")
"""


def recorded(pytester: pytest.Pytester) -> dict[str, dict[str, Any]]:
    """nodeid -> its outcome (failed or skipped in any phase, else passed) and failure text."""
    items: dict[str, dict[str, Any]] = {}
    for line in (pytester.path / "reports.jsonl").read_text(encoding="utf-8").splitlines():
        report = json.loads(line)
        item = items.setdefault(report["nodeid"], {"outcome": "passed", "text": ""})
        if report["outcome"] != "passed" and item["outcome"] == "passed":
            item.update(outcome=report["outcome"], text=report["text"])
    return items


def test_spec_cases_become_items_with_stable_ids(pytester: pytest.Pytester) -> None:
    pytester.makefile(".yaml", bn=SPEC)
    pytester.makeconftest(RECORDER)
    result = pytester.runpytest_subprocess("--framework", "numpy", "--device", "cpu,gpu", "-p", "no:cacheprovider")
    items = recorded(pytester)
    assert {nodeid: item["outcome"] for nodeid, item in items.items()} == {
        "bn.yaml::good[numpy-cpu]": "passed",
        "bn.yaml::good[numpy-gpu]": "skipped",
        "bn.yaml::exact_float32[numpy-cpu]": "failed",
        "bn.yaml::exact_float32[numpy-gpu]": "skipped",
    }
    # the stand-in rounds its float32 results, and the case allows no error at all: the
    # output x / sqrt(1 + 1e-5) differs from the float64 reference in its last bits
    failure = items["bn.yaml::exact_float32[numpy-cpu]"]["text"]
    assert "no known convention explains it" in failure and "reproduce: conformance run" in failure
    # the values are Python floats as the kit prints them: read them back, not their spelling
    values = re.search(r"output at step 0: .*\(observed (\S+), expected (\S+)\)", failure)
    assert values, failure
    observed, expected = float(values[1]), float(values[2])
    assert observed != expected and abs(observed - expected) < 1e-6
    # printed with as many digits as show the difference (conformance.numbers.pair): each
    # value within a tenth of the difference of what the kit computed
    assert abs(abs(expected) - 1.0 / (1.0 + 1e-5) ** 0.5) <= 0.1 * abs(observed - expected)
    result.assert_outcomes(passed=1, failed=1, skipped=2)


def test_framework_typo_is_a_usage_error(pytester: pytest.Pytester) -> None:
    pytester.makefile(".yaml", bn=SPEC)
    result = pytester.runpytest_subprocess("--framework", "toch")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*unknown framework 'toch' (did you mean 'torch'?)*"])


def test_a_broken_spec_is_a_collection_error_with_its_line(pytester: pytest.Pytester) -> None:
    pytester.makefile(".yaml", bad="conformance_spec: 1\ncases:\n  - name: x\n    layr: {}\n")
    result = pytester.runpytest_subprocess("--framework", "numpy")
    result.stdout.fnmatch_lines(["*bad.yaml:4: cases[[]0[]]: unknown key 'layr' (did you mean 'layer'?)*"])
    assert result.ret == pytest.ExitCode.INTERRUPTED


def test_yaml_files_that_are_not_specs_are_left_alone(pytester: pytest.Pytester) -> None:
    pytester.makefile(".yaml", other="key: value\n")
    result = pytester.runpytest_subprocess("--framework", "numpy")
    assert result.ret == pytest.ExitCode.NO_TESTS_COLLECTED


def test_results_are_written_when_asked(pytester: pytest.Pytester) -> None:
    pytester.makefile(".yaml", bn=SPEC)
    pytester.runpytest_subprocess("--framework", "numpy", "--conformance-out", "out")
    assert (pytester.path / "out" / "numpy-cpu.json").is_file()


REGISTRY = """framework: numpy
expected:
  - case: "*::exact_float32"
    verdict: divergence
    reason: the stand-in rounds its float32 results
    link: https://example.invalid/float32
  - case: "*::good"
    verdict: divergence
    reason: an entry whose case conforms
    link: https://example.invalid/stale
"""


def test_registered_divergences_are_xfail_and_stale_entries_fail(pytester: pytest.Pytester) -> None:
    pytester.makefile(".yaml", bn=SPEC)
    pytester.makeconftest(RECORDER)
    (pytester.path / "expectations").mkdir()
    (pytester.path / "expectations" / "numpy.yaml").write_text(REGISTRY)
    result = pytester.runpytest_subprocess("--framework", "numpy", "-p", "no:cacheprovider", "-rxX")
    result.assert_outcomes(failed=1, xfailed=1)
    result.stdout.fnmatch_lines(["*XFAIL*exact_float32*expected by*numpy.yaml:3*stand-in rounds*"])
    failure = recorded(pytester)["bn.yaml::good[numpy-cpu]"]["text"]
    assert "stale expectation" in failure and "remove or update the entry" in failure


def test_a_registry_mistake_is_a_collection_error_with_its_line(pytester: pytest.Pytester) -> None:
    pytester.makefile(".yaml", bn=SPEC)
    (pytester.path / "expectations").mkdir()
    (pytester.path / "expectations" / "numpy.yaml").write_text(REGISTRY.replace("    reason:", "    reasn:", 1))
    result = pytester.runpytest_subprocess("--framework", "numpy", "-p", "no:cacheprovider")
    assert result.ret == pytest.ExitCode.INTERRUPTED
    result.stdout.fnmatch_lines(["*numpy.yaml:3: expected[[]0[]]: unknown key 'reasn' (did you mean 'reason'?)*"])


def test_a_named_framework_that_is_not_installed_is_a_usage_error(pytester: pytest.Pytester) -> None:
    pytester.makefile(".yaml", bn=SPEC)
    # conftest modules load before the plugin's pytest_configure: torch "is not installed"
    pytester.makeconftest("from conformance.adapters import AdapterRef\n"
                          "AdapterRef.installed = lambda self: self.name != 'torch'\n")
    result = pytester.runpytest_subprocess("--framework", "numpy,torch", "-p", "no:cacheprovider")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    refusal = ("*torch (conformance.adapters.torch:TorchAdapter) was named but is not installed; "
               "to install it: pip install*")
    result.stderr.fnmatch_lines([refusal])


def test_the_reproduce_line_runs_the_one_failing_case(pytester: pytest.Pytester) -> None:
    import subprocess
    import sys

    pytester.makefile(".yaml", bn=SPEC)
    pytester.makeconftest(RECORDER)
    pytester.runpytest_subprocess("--framework", "numpy", "-p", "no:cacheprovider")
    failure = recorded(pytester)["bn.yaml::exact_float32[numpy-cpu]"]["text"]
    command = re.search(r"reproduce: conformance run (.*)", failure)
    assert command, failure
    assert "bn.yaml::exact_float32" in command[1]
    done = subprocess.run([sys.executable, "-m", "conformance", "run", *command[1].split(), "-q",
                           "--out", str(pytester.path / "out")], check=False, capture_output=True, text=True,
                          cwd=pytester.path, timeout=120)
    assert done.returncode == 1, done.stderr
    logged = json.loads((pytester.path / "out" / "numpy-cpu.json").read_text())
    assert [c["id"].split("::")[1] for c in logged["cases"]] == ["exact_float32"]
