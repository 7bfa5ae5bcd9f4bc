"""The committed conventions document is what the generator makes of the committed results."""

from __future__ import annotations

from pathlib import Path

from conformance import conventions
from conformance.adapters import REAL_FRAMEWORKS
from conformance.report.merge import load_runs

ROOT = Path(__file__).resolve().parents[1]


def test_conventions_document_matches_its_results() -> None:
    documents = load_runs([str(ROOT / "docs" / "results")])
    assert {d["framework"] for d in documents} == set(REAL_FRAMEWORKS)  # every framework measured
    generated = conventions.to_document(conventions.rows(documents), documents)
    committed = (ROOT / "docs" / "conventions.md").read_text()
    assert committed == generated, (
        "docs/conventions.md is stale: run `conformance conventions docs/results --format doc "
        "> docs/conventions.md`")


def test_every_required_fact_is_in_the_document() -> None:
    text = (ROOT / "docs" / "conventions.md").read_text()
    for fact in ("bn.default_momentum", "bn.momentum_weights", "bn.default_eps",
                 "bn.running_var_estimator.rank2", "bn.running_var_estimator.rank4",
                 "bn.single_value_per_channel_train", "bn.cumulative_average",
                 "dropout.rate_meaning", "dropout.train_scale", "dropout.eval", "dropout.rate_one_train"):
        assert f"### `{fact}`" in text


def test_the_readme_links_the_document() -> None:
    assert "docs/conventions.md" in (ROOT / "README.md").read_text()


def test_every_fact_a_case_can_measure_is_explained_with_how_to_port() -> None:
    from conformance.facts import FACTS

    for fact in FACTS:
        assert conventions.EXPLANATIONS.get(fact), f"{fact} has no meaning in conventions.EXPLANATIONS"
    measured = {f for row in conventions.rows(load_runs([str(ROOT / "docs" / "results")])) for f in row["facts"]}
    for fact in measured:
        assert conventions.COMPENSATION.get(fact), f"{fact} has no porting advice in conventions.COMPENSATION"


def test_no_framework_is_canonical_in_the_committed_results() -> None:
    """Against a spec whose reference feeds the biased variance, PyTorch's documented unbiased
    estimator is a convention, and the frameworks that feed the biased one conform."""
    verdicts = {}
    for document in load_runs([str(ROOT / "docs" / "results")]):
        entry = next(c for c in document["cases"] if c["id"] == "batchnorm/train_eval::small_batch_biased_reference")
        verdicts[document["framework"]] = entry
    assert verdicts["torch"]["verdict"] == "convention"
    assert verdicts["torch"]["explained_by"] == {"bn.running_var_estimator": "unbiased"}
    assert verdicts["torch"]["conventions"][0]["link"].startswith("https://pytorch.org/")
    assert verdicts["paddle"]["verdict"] == verdicts["tf"]["verdict"] == "conforms"
