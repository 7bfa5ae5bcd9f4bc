"""Sound verdicts: literal values are the truth, no framework is canonical, explanations and
facts are found jointly, measured values reproduce, and what nothing explains still gets a
lead. Adapters here are the numpy reference with planted conventions, so every expected
answer is known by construction."""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any, ClassVar

import fake_adapters as fake
import numpy as np
import pytest
from helpers import cases_from, verdict_of

from conformance import conventions
from conformance.adapters.documentation import DOCUMENTED
from conformance.adapters.numpy import NumpyAdapter
from conformance.cli import main
from conformance.reference import CONVENTION_VALUES
from conformance.spec import SpecErrors, load_paths

SPECS = Path(__file__).resolve().parents[1] / "specs"
CANONICAL = {key: values[0] for key, values in CONVENTION_VALUES.items()}

# the facts of the table that read a convention of the reference (the others are numbers or
# feature checks, tested below where a convention changes them)
FACTS_OF = {
    "bn.running_var_estimator": [f"bn.running_var_estimator.rank{r}" for r in (2, 3, 4, 5)],
    "bn.eps_placement": ["bn.eps_placement"],
    "bn.normalization_var_estimator": ["bn.normalization_var_estimator"],
    "bn.train_statistics": ["bn.train_statistics"],
    "bn.eval_statistics": ["bn.eval_statistics"],
    "bn.eval_updates": ["bn.eval_updates"],
    "dropout.train_scale": ["dropout.train_scale"],
    "dropout.eval": ["dropout.eval"],
    "dropout.rate_meaning": ["dropout.rate_meaning"],
}


def planted(settings: dict[str, str]) -> NumpyAdapter:
    """The reference as a framework that follows ``settings`` and documents nothing."""
    return type("Planted", (NumpyAdapter,), {"name": "planted", "conventions": dict(settings)})()


@pytest.fixture(scope="module")
def probes() -> list[Any]:
    cases, errors = load_paths([SPECS])
    assert not errors
    return [c for c in cases if c.measures and c.layer.kind != "model"]  # models: tests/test_models.py


def facts_table(adapter: NumpyAdapter, probes: list[Any]) -> tuple[dict[str, Any], dict[str, str]]:
    """The conventions-table row the probe cases measure on ``adapter``, and the facts that
    were not measured, with why."""
    entries = [verdict_of(adapter, case) for case in probes]
    document = {"framework": "planted", "framework_version": "0", "device": "cpu", "cases": entries}
    (row,) = conventions.rows([document]) or [{"facts": {}}]
    unmeasured = {fact: why for e in entries for fact, why in e.get("unmeasured", {}).items()}
    return row["facts"], unmeasured


@pytest.fixture(scope="module")
def reference_facts(probes: list[Any]) -> dict[str, Any]:
    facts, unmeasured = facts_table(NumpyAdapter(), probes)
    assert not unmeasured, unmeasured
    return facts


def single_changes() -> list[dict[str, str]]:
    """Every other value of every layer convention (models: tests/test_models.py)."""
    return [{key: value} for key, values in CONVENTION_VALUES.items() for value in values[1:]
            if key.split(".")[0] in ("bn", "dropout")]


def pair_changes() -> list[dict[str, str]]:
    pairs = []
    for (a, b) in itertools.combinations(single_changes(), 2):
        (ka, _), (kb, _) = next(iter(a.items())), next(iter(b.items()))
        if ka != kb and ka.split(".")[0] == kb.split(".")[0]:
            pairs.append({**a, **b})
    return pairs


# numbers measured from a run; a reversed momentum changes what they are (checked on its own)
NUMBERS = ("bn.default_update_weight", "bn.default_momentum", "bn.momentum_weights", "bn.default_eps")


def check_table(settings: dict[str, str], facts: dict[str, Any], reference: dict[str, Any]) -> None:
    """Every fact that reads a convention says the planted value where one is planted, the
    reference's own value elsewhere (or is absent: not measured); every measured number is
    the reference's (or absent). A wrong value is never acceptable. Facts that record what
    a feature case did (single value per channel, counters) change with the planted
    behaviour and are tested on their own."""
    for fact, value in facts.items():
        planted_key = next((k for k, fs in FACTS_OF.items() if fact in fs and k in settings), None)
        if planted_key is not None:
            assert value == settings[planted_key], (settings, fact, value)
        elif any(fact in fs for fs in FACTS_OF.values()) or (
                fact in NUMBERS and "bn.momentum_weights" not in settings):
            assert value == reference[fact], (settings, fact, value, reference[fact])


@pytest.mark.parametrize("settings", single_changes(), ids=lambda s: ",".join(f"{k}={v}" for k, v in s.items()))
def test_a_planted_convention_gives_the_right_facts(settings: dict[str, str], probes: list[Any],
                                                   reference_facts: dict[str, Any]) -> None:
    facts, unmeasured = facts_table(planted(settings), probes)
    check_table(settings, facts, reference_facts)
    (key, value), = settings.items()
    for fact in FACTS_OF.get(key, []):
        assert facts.get(fact) == value, (fact, facts.get(fact), unmeasured.get(fact))


@pytest.mark.parametrize("settings", pair_changes(), ids=lambda s: ",".join(f"{k}={v}" for k, v in s.items()))
def test_planted_pairs_give_the_right_facts(settings: dict[str, str], probes: list[Any],
                                            reference_facts: dict[str, Any]) -> None:
    facts, _ = facts_table(planted(settings), probes)
    check_table(settings, facts, reference_facts)


def test_two_dropout_conventions_at_once_are_both_read(probes: list[Any]) -> None:
    """Dropout scaled by 1/keep in training and downscaled in inference: each fact read with
    the other at its inferred value (one at a time, train_scale came out 'neither')."""
    settings = {"dropout.train_scale": "none", "dropout.eval": "downscale"}
    facts, unmeasured = facts_table(planted(settings), probes)
    assert facts["dropout.train_scale"] == "none" and facts["dropout.eval"] == "downscale", unmeasured


def test_eps_outside_the_root_still_measures_the_default_eps(probes: list[Any]) -> None:
    """The eps estimator assumed eps inside the root and printed 2.1e-07 for a framework
    whose default is 1e-5: every measured number must reproduce the run."""
    facts, unmeasured = facts_table(planted({"bn.eps_placement": "outside"}), probes)
    assert facts["bn.default_eps"] == pytest.approx(1e-5), unmeasured
    assert facts["bn.eps_placement"] == "outside"


def test_a_number_that_does_not_reproduce_is_not_a_fact(probes: list[Any]) -> None:
    """An output off by a constant: no eps reproduces it, so the default eps is not measured."""
    facts, unmeasured = facts_table(fake.OffByConstant(), probes)
    assert "bn.default_eps" not in facts and "no eps" in unmeasured["bn.default_eps"]


def test_statistics_that_never_move_measure_no_update_weight(probes: list[Any]) -> None:
    facts, unmeasured = facts_table(planted({"bn.running_update": "none"}), probes)
    assert "bn.default_update_weight" not in facts and "bn.momentum_weights" not in facts
    assert "bn.running_update=none" in unmeasured["bn.default_update_weight"]


def test_a_reversed_momentum_reads_as_a_framework_whose_momentum_weighs_the_old_value(
        probes: list[Any]) -> None:
    facts, _ = facts_table(planted({"bn.momentum_weights": "old"}), probes)
    assert facts["bn.momentum_weights"] == "old"
    # its default argument 0.1 weighs the old value: the new batch statistic gets 0.9
    assert facts["bn.default_update_weight"] == pytest.approx(0.9)
    assert facts["bn.default_momentum"] == pytest.approx(0.1)


# --- explanations ----------------------------------------------------------------------

PROGRAM = """
cases:
  - name: program
    layer: {kind: batch_norm, update_weight: 0.2, eps: 0.5}
    inputs:
      a: {shape: [6, 3, 2, 2], seed: 1, mean: 2.0, std: 3.0}
      b: {shape: [6, 3, 2, 2], seed: 2, mean: -1.0, std: 0.5}
    steps: [{train: a}, {eval: b}, {train: b}, {eval: a}]
"""


@pytest.mark.parametrize("settings", [s for s in single_changes() + pair_changes() if next(iter(s)).startswith("bn.")],
                         ids=lambda s: ",".join(f"{k}={v}" for k, v in s.items()))
def test_planted_batch_norm_conventions_are_explained_jointly(settings: dict[str, str]) -> None:
    result = verdict_of(planted(settings), cases_from(PROGRAM)[0])
    if result["verdict"] == "conforms":  # a change this program cannot see
        return
    found = [result["explained_by"], *result.get("also_explained_by", [])]
    # the planted set, or a smaller part of it where the rest cannot show (an estimator
    # is invisible when the statistics never update)
    assert settings in found or all(set(f.items()) < set(settings.items()) for f in found), \
        (result["verdict"], found, result.get("message"))
    assert result["verdict"] == "divergence" and "does not document" in result["message"]


def test_eval_passes_that_update_the_statistics_are_explained() -> None:
    result = verdict_of(planted({"bn.eval_updates": "yes"}), cases_from(PROGRAM)[0])
    assert result["explained_by"] == {"bn.eval_updates": "yes"}
    assert result["first_divergent_step"] == 1  # the eval pass at step 1 moved the statistics
    assert result["divergent_quantities"][:2] == ["output", "running_mean"]


def test_no_framework_is_canonical_a_reference_that_differs_from_torch_is_a_convention() -> None:
    """A spec whose reference feeds the biased variance: torch's own, documented, unbiased
    estimator is a convention, not a divergence the framework does not document."""
    torch_like = type("TorchLike", (NumpyAdapter,), {"name": "torch_like", "documented": DOCUMENTED["torch"]})()
    case = cases_from(PROGRAM.replace("steps:", "reference: {bn.running_var_estimator: biased}\n    steps:"))[0]
    result = verdict_of(torch_like, case)
    assert result["verdict"] == "convention", result["message"]
    assert result["explained_by"] == {"bn.running_var_estimator": "unbiased"}
    assert result["conventions"][0]["link"].startswith("https://")


def test_a_silent_documentation_is_no_documented_convention() -> None:
    class Silent(NumpyAdapter):
        name = "silent"
        conventions: ClassVar[dict[str, str]] = {"bn.running_var_estimator": "biased"}
        documented: ClassVar[dict[str, fake.Documented]] = {
            "bn.running_var_estimator": fake.Documented("biased", "", says="")}
    result = verdict_of(Silent(), cases_from(PROGRAM)[0])
    assert result["verdict"] == "divergence" and "conventions" not in result


def test_documented_and_undocumented_parts_of_one_explanation() -> None:
    class Mixed(NumpyAdapter):
        name = "mixed"
        conventions: ClassVar[dict[str, str]] = {"bn.running_var_estimator": "biased", "bn.eval_updates": "yes"}
        documented: ClassVar[dict[str, fake.Documented]] = {
            "bn.running_var_estimator": fake.Documented("biased", fake.LINK)}
    result = verdict_of(Mixed(), cases_from(PROGRAM)[0])
    assert result["verdict"] == "divergence"
    assert result["explained_by"] == {"bn.running_var_estimator": "biased", "bn.eval_updates": "yes"}
    assert [c["fact"] for c in result["conventions"]] == ["bn.running_var_estimator"]
    assert "does not document bn.eval_updates=yes" in result["message"]


def test_what_nothing_explains_gets_a_partial_fit() -> None:
    result = verdict_of(fake.OffByConstant(), cases_from(PROGRAM.replace(
        "steps: [", "observe: [output, running_mean, running_var]\n    steps: ["))[0])
    assert result["verdict"] == "divergence" and "explained_by" not in result
    fits = result["partly_explained_by"]
    assert fits and fits[0]["conventions"] == {}  # the statistics follow the spec's own conventions
    assert set(fits[0]["reproduces"]) == {"running_mean", "running_var"}
    assert fits[0]["differs"] == {"output": 0}


# --- literal values are the truth -------------------------------------------------------

# running_mean after one step of [[1], [3]] from 0: w * 2 = 0.2 with w = 0.1
MOMENTUM_COPIED = """
cases:
  - name: copied
    layer: {kind: batch_norm, update_weight: %s}
    inputs: {a: {values: [[1.0], [3.0]]}}
    steps: [{train: a, observe: [running_mean]}]
    expect:
      values: [{step: 0, quantity: running_mean, value: [0.2]}]
"""


def test_a_literal_that_contradicts_the_parameters_fails_validation_and_says_what_it_implies() -> None:
    with pytest.raises(SpecErrors) as info:
        cases_from(MOMENTUM_COPIED % "0.9")
    (error,) = info.value.errors
    assert error.line == 9  # cases_from puts 'conformance_spec: 1' first
    assert "the literal running_mean at step 0 is not what the reference gives" in error.message
    assert "matches update_weight 0.1" in error.message and "the spec says 0.9" in error.message
    assert "update_weight = 1 - momentum" in error.message
    assert cases_from(MOMENTUM_COPIED % "0.1")  # the same values with the weight they follow


def test_a_self_contradicting_spec_never_passes_run(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    spec = tmp_path / "bn" / "copied.yaml"
    spec.parent.mkdir()
    spec.write_text("conformance_spec: 1\n" + MOMENTUM_COPIED % "0.9")
    for adapter in ("biased_documented", "numpy"):
        target = ["--adapter", f"fake_adapters:{fake.BiasedDocumented.__name__}"] if adapter != "numpy" else ["-f", "numpy"]
        assert main(["run", *target, "--out", str(tmp_path / "out"), str(spec)]) == 2
        assert "nothing was run" in capsys.readouterr().err
    assert main(["validate", str(spec)]) == 2


def test_a_literal_running_variance_points_to_its_estimator() -> None:
    # running_var from 1 after [[1], [3]] with w 0.5: biased 0.5 * 1 + 0.5 * 1 = 1.0,
    # unbiased 0.5 * 1 + 0.5 * 2 = 1.5
    text = MOMENTUM_COPIED.replace("running_mean", "running_var").replace("[0.2]", "[1.0]") % "0.5"
    with pytest.raises(SpecErrors) as info:
        cases_from(text)
    assert "they match bn.running_var_estimator=biased (state it under reference:)" in info.value.errors[0].message


def test_the_momentum_key_explains_the_neutral_update_weight() -> None:
    with pytest.raises(SpecErrors) as info:
        cases_from(MOMENTUM_COPIED.replace("update_weight: %s", "momentum: 0.9"))
    message = info.value.errors[0].message
    assert "unknown key 'momentum'" in message and "weight of the NEW batch statistic" in message
    assert "native_momentum passes a value UNTRANSLATED" in message and "did you mean" not in message


# --- dropout test vectors from someone else's generator ---------------------------------

X = [[1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0]] * 64


def dropout_vector(kept_scale: float, seed: int, rate: float = 0.5) -> list[list[float]]:
    """What another framework's dropout printed for X: its own mask (from ``seed``), kept
    values times ``kept_scale``."""
    keep = np.random.default_rng(seed).random(np.shape(X)) >= rate
    return (np.asarray(X) * keep * kept_scale).tolist()


def dropout_case(value: Any, quantity: str = "output", match: str = "", seed: int = 7) -> str:
    extra = f", match: {match}" if match else ""
    return f"""
cases:
  - name: vector
    layer: {{kind: dropout, rate: 0.5, seed: {seed}}}
    inputs: {{x: {{values: {X}}}}}
    steps: [{{train: x, observe: [output, mask]}}]
    expect:
      values: [{{step: 0, quantity: {quantity}, value: {value}{extra}}}]
"""


def test_a_dropout_vector_from_another_generator_is_compared_where_both_kept() -> None:
    case = cases_from(dropout_case(dropout_vector(2.0, seed=123)))[0]
    assert verdict_of(NumpyAdapter(), case)["verdict"] == "conforms"
    # compared value by value it differs: the masks are not the same
    exact = cases_from(dropout_case(dropout_vector(2.0, seed=123), match="elementwise"))[0]
    result = verdict_of(NumpyAdapter(), exact)
    assert result["verdict"] == "divergence" and result["divergent_quantities"] == ["output"]


def test_a_framework_whose_values_are_off_diverges_from_a_dropout_vector() -> None:
    case = cases_from(dropout_case(dropout_vector(2.0, seed=123)))[0]
    result = verdict_of(fake.OffByConstant(), case)  # every output 0.01 too large
    # the kept values are off, and no unit looks dropped: the mask keeps everything
    assert result["verdict"] == "divergence" and result["divergent_quantities"] == ["mask", "output"]


def test_an_unscaled_dropout_vector_contradicts_inverted_dropout_and_says_so() -> None:
    with pytest.raises(SpecErrors) as info:
        cases_from(dropout_case(dropout_vector(1.0, seed=123)))
    message = info.value.errors[0].message
    assert "the literal output at step 0 is not what the reference gives" in message
    assert "they match dropout.train_scale=none" in message


def test_a_literal_mask_compares_its_kept_share_or_exactly_with_the_same_generator() -> None:
    mask = (np.asarray(dropout_vector(1.0, seed=123)) != 0).astype(float).tolist()
    assert verdict_of(NumpyAdapter(), cases_from(dropout_case(mask, "mask"))[0])["verdict"] == "conforms"
    # the stand-in draws from numpy's generator with the layer's seed: the same mask exactly
    same = (np.asarray(dropout_vector(1.0, seed=7)) != 0).astype(float).tolist()
    exact = cases_from(dropout_case(same, "mask", match="elementwise", seed=7))[0]
    assert verdict_of(NumpyAdapter(), exact)["verdict"] == "conforms"
    other = cases_from(dropout_case(mask, "mask", match="elementwise", seed=7))[0]
    assert verdict_of(NumpyAdapter(), other)["verdict"] == "divergence"


def test_a_mask_that_keeps_everything_at_rate_one_half_is_a_bad_vector() -> None:
    with pytest.raises(SpecErrors) as info:
        cases_from(dropout_case(np.ones(np.shape(X)).tolist(), "mask"))
    assert "kept 512 of 512 units" in info.value.errors[0].message


def test_the_mask_is_observed_on_every_framework_run() -> None:
    result = verdict_of(fake.UnscaledDropout(), cases_from(dropout_case(
        (np.asarray(dropout_vector(1.0, seed=1)) != 0).astype(float).tolist(), "mask"))[0])
    # unscaled kept values show in the output; the mask itself is fine
    assert result["divergent_quantities"] == ["output"]
    assert result["explained_by"] == {"dropout.train_scale": "none"}


def test_match_applies_to_random_dropout_passes_only() -> None:
    text = dropout_case(X, match="kept").replace("train: x", "eval: x")
    with pytest.raises(SpecErrors) as info:
        cases_from(text)
    assert "match: kept applies to a random dropout pass only" in info.value.errors[0].message
    with pytest.raises(SpecErrors) as info:
        cases_from(dropout_case(dropout_vector(2.0, seed=1), match="share"))
    assert "match: share does not apply to output" in info.value.errors[0].message
