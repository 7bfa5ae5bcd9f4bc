"""The convention search's shortcuts give the same answers as the full checks."""

from __future__ import annotations

import fake_adapters as fake
import numpy as np
import pytest
from helpers import BN_PROGRAM, DROPOUT_PROGRAM, cases_from
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from conformance.adapters.numpy import NumpyAdapter
from conformance.checks import (
    compare,
    compare_arrays,
    reference_run,
    reproduces,
    within,
)
from conformance.model import Tolerance
from conformance.program import CaseRun, execute, run_steps
from conformance.verdicts import alternatives

SPECIAL = st.sampled_from([0.0, -0.0, 1.0, -1.0, 1e-300, 1e300, np.inf, -np.inf, np.nan])
VALUES = st.one_of(st.floats(allow_nan=True, allow_infinity=True, width=64), SPECIAL)


@given(observed=arrays(np.float64, 6, elements=VALUES), expected=arrays(np.float64, 6, elements=VALUES),
       nudged=st.booleans(), atol=st.sampled_from([0.0, 1e-9, 1e-4]), rtol=st.sampled_from([0.0, 1e-7, 1e-2]))
def test_within_agrees_with_compare_arrays(observed: np.ndarray, expected: np.ndarray, nudged: bool,
                                           atol: float, rtol: float) -> None:
    if nudged:  # mostly-equal arrays, where the tolerance decides
        with np.errstate(over="ignore", invalid="ignore"):
            observed = expected + np.where(np.isfinite(expected), 1e-6 * expected, 0.0)
    tol = Tolerance(atol, rtol)
    assert within(observed, expected, tol) == compare_arrays(0, "q", observed, expected, tol).ok


def test_within_refuses_other_shapes() -> None:
    assert not within(np.zeros(3), np.zeros((3, 1)), Tolerance(1.0, 1.0))


ADAPTERS = [NumpyAdapter(), fake.BiasedUndocumented(), fake.ReversedMomentum(), fake.EpsOutside(),
            fake.BatchStatsInEval(), fake.NeverUpdates(), fake.CumulativeRegardless(),
            fake.BiasedAndReversed(), fake.UnscaledDropout(), fake.OffByConstant()]


@pytest.mark.parametrize("adapter", ADAPTERS, ids=lambda a: a.name)
def test_reproduces_equals_running_the_reference_whole(adapter: NumpyAdapter) -> None:
    """Over every alternative convention of every case: stopping the reference at the
    first differing step gives the same answer as running it whole and comparing."""
    answers = []
    for case in cases_from(BN_PROGRAM) + cases_from(DROPOUT_PROGRAM):
        run = execute(lambda c=case: adapter.build(c.layer, c.dtype, "cpu"), case)
        for changed in alternatives(case):
            settings = {**case.reference, **changed}
            whole = reference_run(case, settings)
            expected = whole.status == "ok" and all(
                c.ok for c in compare(case, run, settings, whole, use_literal=False))
            assert reproduces(case, run, settings) == expected, (case.id, changed)
            answers.append(expected)
    assert False in answers  # the comparison saw conventions that do not reproduce the run


def test_run_steps_can_stop_early_and_execute_runs_to_the_end() -> None:
    case = cases_from(BN_PROGRAM)[0]
    partial = CaseRun(status="ok")
    for index in run_steps(lambda: NumpyAdapter().build(case.layer, case.dtype, "cpu"), case, partial):
        if index == 0:
            break
    assert len(partial.steps) == 1 and len(case.steps) > 1
    whole = execute(lambda: NumpyAdapter().build(case.layer, case.dtype, "cpu"), case)
    assert whole.status == "ok" and len(whole.steps) == len(case.steps)
    assert all(np.array_equal(partial.steps[0][q], whole.steps[0][q]) for q in whole.steps[0])
