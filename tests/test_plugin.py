"""The pytest plugin, driven through pytester with the numpy reference as the framework."""

from __future__ import annotations

import pytest

SPEC = """conformance_spec: 1
cases:
  - name: good
    layer: {kind: batch_norm}
    inputs: {a: {shape: [4, 2], seed: 1}}
    steps: [{train: a}]
  - name: wrong_literal
    layer: {kind: batch_norm, update_weight: 0.5}
    inputs: {a: {values: [[1.0], [3.0]]}}
    steps: [{train: a, observe: [running_mean]}]
    expect:
      values: [{step: 0, quantity: running_mean, value: [7.0]}]
"""


def test_spec_cases_become_items_with_stable_ids(pytester: pytest.Pytester) -> None:
    pytester.makefile(".yaml", bn=SPEC)
    result = pytester.runpytest_subprocess("--framework", "numpy", "--device", "cpu,gpu", "-v", "-p", "no:cacheprovider")
    result.stdout.fnmatch_lines([
        "*bn.yaml::good?numpy-cpu? PASSED*",
        "*bn.yaml::good?numpy-gpu? SKIPPED*",
        "*bn.yaml::wrong_literal?numpy-cpu? FAILED*",
    ])
    result.stdout.fnmatch_lines(["*running_mean at step 0*expected 7.0*literal value disagrees*",
                                 "*reproduce: conformance run*"])
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
