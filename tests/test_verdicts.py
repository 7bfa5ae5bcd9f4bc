"""Verdicts and convention inference, with adapters that implement other conventions."""

from __future__ import annotations

import math

import fake_adapters as fake
import numpy as np
import pytest
from helpers import BN_PROGRAM, DROPOUT_PROGRAM, cases_from, verdict_of

from conformance.adapters.numpy import NumpyAdapter
from conformance.checks import check_dropout_train, compare_arrays, kept_fraction_bound
from conformance.model import DropoutSpec, Tolerance
from conformance.reference import DropoutConventions
from conformance.spec import SpecErrors

TOL = Tolerance(atol=1e-6, rtol=1e-6)


def test_reference_adapter_conforms() -> None:
    for program in (BN_PROGRAM, DROPOUT_PROGRAM):
        assert verdict_of(NumpyAdapter(), cases_from(program)[0])["verdict"] == "conforms"


@pytest.mark.parametrize(
    ("adapter", "explained_by", "first_step", "quantity"),
    [
        (fake.BiasedUndocumented(), {"bn.running_var_estimator": "biased"}, 0, "running_var"),
        (fake.ReversedMomentum(), {"bn.momentum_weights": "old"}, 0, "running_mean"),
        # eps large enough that its placement shows in float32
        (fake.EpsOutside(), {"bn.eps_placement": "outside"}, 0, "output"),
        (fake.BatchStatsInEval(), {"bn.eval_statistics": "batch"}, 2, "output"),
        (fake.NeverUpdates(), {"bn.running_update": "none"}, 0, "running_mean"),
        (fake.CumulativeRegardless(), {"bn.running_update": "cumulative"}, 0, "running_mean"),
        (fake.BiasedAndReversed(), {"bn.running_var_estimator": "biased", "bn.momentum_weights": "old"},
         0, "running_mean"),
    ],
)
def test_undocumented_conventions_are_identified(adapter: NumpyAdapter, explained_by: dict[str, str],
                                                 first_step: int, quantity: str) -> None:
    result = verdict_of(adapter, cases_from(BN_PROGRAM.replace("0.2}", "0.2, eps: 0.5}"))[0])
    assert result["verdict"] == "divergence"
    assert result["explained_by"] == explained_by
    assert "also_explained_by" not in result
    assert result["first_divergent_step"] == first_step
    assert quantity in result["divergent_quantities"]
    assert "does not document" in result["message"]


def test_documented_convention_gives_convention_verdict_with_fix() -> None:
    result = verdict_of(fake.BiasedDocumented(), cases_from(BN_PROGRAM)[0])
    assert result["verdict"] == "convention"
    assert result["conventions"] == [{"fact": "bn.running_var_estimator", "value": "biased",
                                      "link": fake.LINK, "fix": "multiply running_var by m/(m-1)",
                                      "says": ""}]


def test_a_bug_no_convention_explains_is_a_plain_divergence() -> None:
    result = verdict_of(fake.OffByConstant(), cases_from(BN_PROGRAM)[0])
    assert result["verdict"] == "divergence"
    assert "explained_by" not in result
    assert result["worst"]["max_abs_error"] == pytest.approx(0.01, rel=1e-3)
    assert "no known convention" in result["message"]


def test_unscaled_dropout_is_identified() -> None:
    result = verdict_of(fake.UnscaledDropout(), cases_from(DROPOUT_PROGRAM)[0])
    assert result["verdict"] == "divergence"
    assert result["explained_by"] == {"dropout.train_scale": "none"}


def test_spec_stating_a_convention_makes_it_conform() -> None:
    case = cases_from(BN_PROGRAM.replace("steps:", "reference: {bn.running_var_estimator: biased}\n    steps:"))[0]
    assert verdict_of(fake.BiasedUndocumented(), case)["verdict"] == "conforms"
    # and the canonical adapter now diverges, explained by the unbiased estimator
    assert verdict_of(NumpyAdapter(), case)["explained_by"] == {"bn.running_var_estimator": "unbiased"}


LITERAL = """
cases:
  - name: literal
    layer: {kind: batch_norm, update_weight: 0.5, running_var: [5.0]}
    inputs: {a: {values: [[1.0], [3.0]]}}
    steps: [{train: a, observe: [running_var]}]
    expect:
      values: [{step: 0, quantity: running_var, value: [%s]}]
"""


def test_literal_values_decide_and_alternatives_still_explain() -> None:
    # running_var <- 0.5 * 5 + 0.5 * 2 (unbiased variance of [1, 3]); biased gives 3,
    # cumulative 2, no update 5: every alternative is distinguishable
    assert verdict_of(NumpyAdapter(), cases_from(LITERAL % "3.5")[0])["verdict"] == "conforms"
    # a literal value the case's own parameters do not give is a bad spec, never judged
    with pytest.raises(SpecErrors) as info:
        cases_from(LITERAL % "3.7")
    (error,) = info.value.errors
    assert error.line == 9 and "the literal running_var at step 0 is not what the reference gives" in error.message
    biased = verdict_of(fake.BiasedUndocumented(), cases_from(LITERAL % "3.5")[0])
    assert biased["explained_by"] == {"bn.running_var_estimator": "biased"}


def test_ambiguous_observations_list_every_explanation() -> None:
    # one step from running_var 1: the biased estimate of [1, 3] is 1 too, so "never
    # updates" explains the observation as well as "biased" does
    case = cases_from((LITERAL % "1.5").replace("running_var: [5.0]", "running_var: [1.0]"))[0]
    result = verdict_of(fake.BiasedUndocumented(), case)
    assert result["verdict"] == "divergence"
    assert [result["explained_by"], *result["also_explained_by"]] == [
        {"bn.running_var_estimator": "biased"}, {"bn.running_update": "none"}]
    # where the framework documents one of them, its documentation settles it: a convention
    documented = verdict_of(fake.BiasedDocumented(), case)
    assert documented["verdict"] == "convention"
    assert documented["explained_by"] == {"bn.running_var_estimator": "biased"}


def test_a_measured_fact_sees_the_explanations_that_would_change_it() -> None:
    # the probe for the estimator: "never updates" reproduces this observation too, so the
    # estimator is not measured, documented or not
    text = (LITERAL % "1.5").replace("running_var: [5.0]", "running_var: [1.0]").replace(
        "    steps:", "    measures: [bn.running_var_estimator.rank2]\n    steps:")
    result = verdict_of(fake.BiasedDocumented(), cases_from(text)[0])
    assert result["verdict"] == "convention"
    assert {"bn.running_update": "none"} in result["also_explained_by"]
    assert "bn.running_var_estimator.rank2" not in result.get("facts", {})
    assert "alike" in result["unmeasured"]["bn.running_var_estimator.rank2"]


def test_expected_error_and_missing_error() -> None:
    refuse = "\ncases:\n  - name: e\n    layer: {kind: dropout, rate: %s}\n    inputs: {x: {shape: [4, 4]}}\n" \
             "    steps: [{train: x}]\n    expect: {error: true}\n"
    assert verdict_of(NumpyAdapter(), cases_from(refuse % "1.5")[0])["verdict"] == "expected-error"
    accepted = verdict_of(NumpyAdapter(), cases_from(refuse % "0.5")[0])
    assert accepted["verdict"] == "divergence" and "refuse" in accepted["message"]


def test_error_keeps_message_and_step() -> None:
    case = cases_from(BN_PROGRAM.replace("update_weight: 0.2", "update_weight: 0.2, eps: 0.0625"))[0]
    result = verdict_of(fake.Crashing(), case)
    assert result["verdict"] == "error"
    assert result["error"]["step"] == -1 and "planted failure" in result["message"]


def test_compare_arrays_tolerance_edges() -> None:
    tol = Tolerance(atol=0.1, rtol=0.0)
    assert compare_arrays(0, "output", np.array([1.09]), np.array([1.0]), tol).ok
    assert not compare_arrays(0, "output", np.array([1.11]), np.array([1.0]), tol).ok
    assert compare_arrays(0, "output", np.array([np.nan]), np.array([np.nan]), tol).ok
    assert not compare_arrays(0, "output", np.array([np.nan]), np.array([1.0]), tol).ok
    shape = compare_arrays(0, "output", np.zeros(2), np.zeros(3), tol)
    assert not shape.ok and "shape" in shape.note


def test_an_infinity_matches_only_the_same_infinity() -> None:
    """A relative tolerance of an infinite expected value is infinite: without the exact
    rule any finite value, or the opposite infinity, would pass."""
    tol = Tolerance(atol=0.1, rtol=0.01)
    inf = np.inf
    assert compare_arrays(0, "output", np.array([inf, -inf]), np.array([inf, -inf]), tol).ok
    for observed, expected in [(1.0, inf), (-inf, inf), (inf, 1.0), (np.nan, inf), (inf, np.nan)]:
        check = compare_arrays(0, "output", np.array([observed]), np.array([expected]), tol)
        assert not check.ok and check.max_abs_error == inf, (observed, expected)


def test_kept_fraction_bound_is_hoeffding_at_one_in_a_billion() -> None:
    assert kept_fraction_bound(10_000) == pytest.approx(math.sqrt(math.log(2e9) / 20_000))
    assert kept_fraction_bound(10_000) == pytest.approx(0.0327, abs=1e-4)


def _dropout_check(observed: np.ndarray, x: np.ndarray, rate: float, granularity: str = "element"):
    spec = DropoutSpec(rate=rate, rank=x.ndim, granularity=granularity)  # type: ignore[arg-type]
    return check_dropout_train(0, "output", x, observed, spec, DropoutConventions(), TOL)


def test_dropout_property_check_accepts_correct_and_rejects_wrong() -> None:
    rng = np.random.default_rng(0)
    x = rng.uniform(1, 2, (100, 100))
    keep = rng.random(x.shape) >= 0.5
    assert _dropout_check(np.where(keep, 2 * x, 0), x, 0.5).ok
    wrong_scale = _dropout_check(np.where(keep, x, 0), x, 0.5)
    assert not wrong_scale.ok and "2 * input" in wrong_scale.note
    too_many_kept = _dropout_check(np.where(rng.random(x.shape) >= 0.1, 2 * x, 0), x, 0.5)
    assert not too_many_kept.ok and "kept" in too_many_kept.note


def test_channel_dropout_must_share_the_mask_spatially() -> None:
    rng = np.random.default_rng(1)
    x = rng.uniform(1, 2, (64, 8, 3, 3))
    channel_keep = rng.random((64, 8, 1, 1)) >= 0.5
    assert _dropout_check(np.where(channel_keep, 2 * x, 0), x, 0.5, "channel").ok
    element_keep = rng.random(x.shape) >= 0.5
    result = _dropout_check(np.where(element_keep, 2 * x, 0), x, 0.5, "channel")
    assert not result.ok and "within a channel" in result.note
