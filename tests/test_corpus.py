"""The spec corpus covers every area users trip on and measures every conventions fact."""

from __future__ import annotations

from pathlib import Path

from conformance.spec import load_paths

SPECS = Path(__file__).resolve().parents[1] / "specs"

AREAS = ["bn.train_forward", "bn.layouts", "bn.running_update", "bn.momentum", "bn.cumulative_average", "bn.running_var_estimator", "bn.eval_forward", "bn.mode_switching", "bn.defaults", "bn.eps", "bn.no_running_stats", "bn.frozen", "bn.single_value", "bn.affine", "bn.gradients", "bn.update_triggers", "bn.mixed_precision", "bn.numerics", "bn.recompute_stats", "dropout.train_statistics", "dropout.scaling", "dropout.eval", "dropout.rate_edges", "dropout.channel", "dropout.determinism",
         # models (the five areas issue 4 asked for, then what a model case exercises)
         "model.mode_propagation", "model.batch_of_one_inference", "functional.defaults", "dropout.mc",
         "seeds.worked_examples", "model.entry_points", "model.call_site_flags", "model.freeze",
         "model.forgotten_eval"]

# the fact keys ../shared/design.md requires of the conventions table
FACTS = ["bn.default_update_weight", "bn.momentum_weights", "bn.default_eps", "bn.running_var_estimator.rank2", "bn.running_var_estimator.rank4", "bn.single_value_per_channel_train", "bn.cumulative_average", "dropout.rate_meaning", "dropout.train_scale", "dropout.eval", "dropout.rate_one_train",
         # model and functional facts
         "functional.dropout.default_training", "functional.batch_norm.default_training",
         "model.eval_propagates", "model.freeze_survives_mode_switch", "model.mc_dropout",
         "model.call_site_flag.call", "model.call_site_flag.inference", "model.call_site_flag.predict",
         "model.call_site_flag.train_step"]


def test_every_area_has_cases() -> None:
    cases, errors = load_paths([SPECS])
    assert not errors
    covered = {area for case in cases for area in case.areas}
    assert sorted(set(AREAS) - covered) == []
    assert sorted(covered - set(AREAS)) == [], "an area outside the documented list"


def test_every_conventions_fact_is_measured_by_a_case() -> None:
    cases, _ = load_paths([SPECS])
    measured = {fact for case in cases for fact in case.measures}
    assert sorted(set(FACTS) - measured) == []


def test_the_corpus_reaches_150_cases_with_models_in_every_model_area() -> None:
    cases, _ = load_paths([SPECS])
    assert len(cases) >= 150
    models = [c for c in cases if c.layer.kind == "model"]
    for area in ("model.mode_propagation", "model.batch_of_one_inference", "functional.defaults", "dropout.mc"):
        assert any(area in c.areas for c in models), area


def test_batch_norm_ranks_and_layouts() -> None:
    cases, _ = load_paths([SPECS])
    shapes = {(c.layer.rank, c.layer.channel_axis) for c in cases if c.layer.kind == "batch_norm"}
    for rank in (3, 4, 5):
        assert {(rank, "first"), (rank, "last")} <= shapes
    assert (2, "first") in shapes


def test_dropout_eval_ranks_one_to_five() -> None:
    cases, _ = load_paths([SPECS])
    ranks = {c.layer.rank for c in cases if c.layer.kind == "dropout"
             and any(s.mode == "eval" for s in c.steps)}
    assert {1, 2, 3, 4, 5} <= ranks
