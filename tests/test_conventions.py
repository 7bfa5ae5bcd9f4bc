"""Facts measured by probe cases, and the conventions table built from them."""

from __future__ import annotations

import json

import fake_adapters as fake
import pytest
from helpers import cases_from, verdict_of

from conformance import conventions
from conformance.adapters.numpy import NumpyAdapter
from conformance.spec import load_file

PROBES = {c.name: c for c in load_file("specs/batchnorm/probes.yaml")}
DROPOUT = {c.name: c for c in load_file("specs/dropout/train_eval.yaml")}


def test_defaults_are_measured_then_checked_on_later_steps() -> None:
    result = verdict_of(NumpyAdapter(), PROBES["defaults"])
    assert result["verdict"] == "conforms"
    assert result["facts"] == {"bn.default_update_weight": 0.1, "bn.default_eps": 1e-5}
    assert result["measured"]["update_weight"] == pytest.approx(0.1, rel=1e-5)


def test_native_momentum_meaning_is_measured() -> None:
    assert verdict_of(NumpyAdapter(), PROBES["native_momentum_meaning"])["facts"] == {
        "bn.momentum_weights": "new"}
    # an adapter whose momentum weighs the old value: 0.3 becomes a new-value weight of 0.7
    reversed_result = verdict_of(fake.ReversedMomentum(), PROBES["native_momentum_meaning"])
    assert reversed_result["facts"] == {"bn.momentum_weights": "old"}
    assert reversed_result["measured"]["update_weight"] == pytest.approx(0.7)


@pytest.mark.parametrize("rank", [2, 3, 4, 5])
def test_running_variance_estimator_is_measured_per_rank(rank: int) -> None:
    case = PROBES[f"estimator_rank{rank}"]
    fact = f"bn.running_var_estimator.rank{rank}"
    assert verdict_of(NumpyAdapter(), case)["facts"] == {fact: "unbiased"}
    assert verdict_of(fake.BiasedUndocumented(), case)["facts"] == {fact: "biased"}


def test_a_fact_the_observations_cannot_settle_is_not_guessed() -> None:
    # with one value per channel... (m = 1) no: use a program where both estimators agree:
    # a constant batch has variance 0 under both, so the estimator cannot be told
    case = cases_from("""
cases:
  - name: constant
    measures: [bn.running_var_estimator.rank2]
    layer: {kind: batch_norm}
    inputs: {a: {shape: [4, 2], distribution: constant, value: 3.0}}
    steps: [{train: a, observe: [running_var]}]
""")[0]
    result = verdict_of(NumpyAdapter(), case)
    assert result["facts"] == {}
    assert "alike" in result["unmeasured"]["bn.running_var_estimator.rank2"]


def test_dropout_facts() -> None:
    assert verdict_of(NumpyAdapter(), DROPOUT["element_rank2"])["facts"] == {
        "dropout.train_scale": "inverted", "dropout.eval": "identity"}
    assert verdict_of(fake.UnscaledDropout(), DROPOUT["element_rank2"])["facts"][
        "dropout.train_scale"] == "none"
    assert verdict_of(NumpyAdapter(), DROPOUT["native_rate_meaning"])["facts"] == {
        "dropout.rate_meaning": "drop"}
    assert verdict_of(NumpyAdapter(), DROPOUT["rate_one"])["facts"] == {"dropout.rate_one_train": "zeros"}


def _doc(framework: str, cases: list[dict[str, object]]) -> dict[str, object]:
    return {"framework": framework, "framework_version": "1.0", "device": "cpu", "cases": cases}


def test_rows_derive_the_default_momentum_and_keep_evidence() -> None:
    doc = _doc("keraslike", [
        {"id": "p::defaults", "facts": {"bn.default_update_weight": 0.01, "bn.default_eps": 0.001}},
        {"id": "p::native", "facts": {"bn.momentum_weights": "old"}},
        {"id": "p::plain"},
    ])
    (row,) = conventions.rows([doc])
    assert row["facts"]["bn.default_momentum"] == pytest.approx(0.99)
    assert row["evidence"]["bn.default_momentum"] == "p::defaults, p::native"
    assert row["evidence"]["bn.default_eps"] == "p::defaults"
    assert "bn.running_var_estimator.rank4" not in row["facts"]  # nobody measured it


def test_conflicting_measurements_are_shown_not_hidden() -> None:
    doc = _doc("x", [{"id": "a", "facts": {"dropout.eval": "identity"}},
                     {"id": "b", "facts": {"dropout.eval": "downscale"}}])
    (row,) = conventions.rows([doc])
    assert row["facts"]["dropout.eval"].startswith("conflict: identity (a) vs downscale (b)")


def test_formats() -> None:
    docs = [_doc("torchlike", [{"id": "p::n", "facts": {"bn.momentum_weights": "new"}}]),
            _doc("paddlelike", [{"id": "p::n", "facts": {"bn.momentum_weights": "old"}}])]
    table = conventions.rows(docs)
    data = json.loads(conventions.to_json(table))
    assert data["schema"] == conventions.CONVENTIONS_SCHEMA
    assert [r["framework"] for r in data["rows"]] == ["paddlelike", "torchlike"]
    md = conventions.to_markdown(table)
    assert "| `bn.momentum_weights` | `old` | `new` |" in md
    assert "`p::n`" in md
    assert "No conventions were measured" in conventions.to_markdown([])
