"""Findings print enough digits to show a difference, and what a documented convention
leaves unexplained (the residual) headlines the finding."""

from __future__ import annotations

import re

import fake_adapters as fake
import pytest
from helpers import BN_PROGRAM, cases_from, verdict_of

from conformance.numbers import pair
from conformance.report.findings import Finding
from conformance.report.merge import Column


@pytest.mark.parametrize(("observed", "expected"), [
    (20.00003, 20.0), (1.0, 1.0000001), (-3.25e-8, -3.2500001e-8), (0.1 + 0.2, 0.3),
    (-0.99999499, -0.99999500), (-0.9999949931723, -0.99999500003750),
])
def test_the_printed_difference_is_the_real_one(observed: float, expected: float) -> None:
    a, b = pair(observed, expected)
    assert a != b
    real = observed - expected
    assert abs((float(a) - float(b)) - real) <= 0.2 * abs(real)  # rounding neither hides nor invents it


def test_equal_values_read_the_same_and_short() -> None:
    assert pair(20.0, 20.0) == ("20", "20")
    assert pair(0.5, 0.25) == ("0.5", "0.25")
    assert pair("nan", 1.0) == ("nan", "1")


def test_the_residual_after_a_documented_convention_headlines_the_finding() -> None:
    (case,) = cases_from(BN_PROGRAM)
    result = verdict_of(fake.BiasedDocumentedImprecise(), case)
    assert result["verdict"] == "divergence"
    residual = result["residual"]
    assert residual["after"] == {"bn.running_var_estimator": "biased"}
    # 0.1% of the running variance is what is left; the raw error (the estimator) is larger
    assert residual["worst"]["max_rel_error"] == pytest.approx(0.001, rel=1e-6)
    assert result["worst"]["max_abs_error"] > 3 * residual["worst"]["max_abs_error"]
    headline = result["message"].split(";")[0]
    assert "left after the documented bn.running_var_estimator=biased" in headline
    assert re.search(r"max rel error 0\.001\b", headline), headline
    column = Column("biased_documented_imprecise", "1", "cpu", {}, {})
    facts = dict(Finding(case.id, column, result).facts())
    assert "max rel 0.001" in facts["after the documented bn.running_var_estimator=biased"]


def test_no_residual_when_the_documentation_explains_nothing() -> None:
    (case,) = cases_from(BN_PROGRAM)
    result = verdict_of(fake.ReversedMomentum(), case)
    assert result["verdict"] == "divergence" and "residual" not in result
