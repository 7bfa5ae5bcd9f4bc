"""The built-in frameworks' documented conventions: every key of the reference, each value
in its vocabulary, each with the page that states it (or marked silent). No framework is
imported: the adapter modules are read as text."""

from __future__ import annotations

from pathlib import Path

import pytest

from conformance.adapters.documentation import DOCUMENTED, Documented
from conformance.reference import CONVENTION_VALUES

FRAMEWORKS = ("torch", "paddle", "tf", "tf_keras", "onnxruntime", "keras-torch", "keras-jax", "flax", "flax-nnx")
ADAPTERS = Path(__file__).resolve().parent.parent / "conformance" / "adapters"


def entries() -> list[tuple[str, str, Documented]]:
    return [(fw, key, doc) for fw in FRAMEWORKS for key, doc in DOCUMENTED[fw].items()]


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_every_framework_documents_every_convention(framework: str) -> None:
    assert sorted(DOCUMENTED[framework]) == sorted(CONVENTION_VALUES)


def test_only_the_builtin_frameworks() -> None:
    assert sorted(DOCUMENTED) == sorted(FRAMEWORKS)


@pytest.mark.parametrize(("framework", "key", "doc"), entries(),
                         ids=[f"{fw}-{key}" for fw, key, _ in entries()])
def test_an_entry_is_a_value_with_its_page_or_silent(framework: str, key: str, doc: Documented) -> None:
    assert doc.says.strip(), f"{framework} {key}: says is empty"
    if doc.is_silent:
        assert doc.link == "", f"{framework} {key}: a silent entry has no link"
        assert doc.says.startswith("the documentation does not say")
    else:
        assert doc.value in CONVENTION_VALUES[key], f"{framework} {key}={doc.value}"
        assert doc.link.startswith("https://"), f"{framework} {key}: {doc.link!r}"


def test_torch_documents_the_canonical_values_its_pages_state() -> None:
    torch = DOCUMENTED["torch"]
    stated = {"bn.running_var_estimator": "unbiased", "bn.normalization_var_estimator": "biased",
              "bn.momentum_weights": "new", "bn.eps_placement": "inside",
              "dropout.train_scale": "inverted", "dropout.eval": "identity",
              "dropout.rate_meaning": "drop"}
    for key, value in stated.items():
        assert value == CONVENTION_VALUES[key][0]
        assert torch[key].value == value, key


@pytest.mark.parametrize("framework", ["paddle", "tf", "flax", "flax-nnx"])
def test_paddle_tf_and_flax_document_the_biased_running_variance(framework: str) -> None:
    doc = DOCUMENTED[framework]["bn.running_var_estimator"]
    assert doc.value == "biased"
    assert doc.fix  # how to match a framework with the unbiased estimator


def test_a_silent_entry_names_what_was_read() -> None:
    doc = Documented.silent("whether an inference pass updates the statistics",
                            "the BatchNorm2D page and its functional counterpart")
    assert doc.is_silent and doc.value == "" and doc.link == ""
    assert doc.says == ("the documentation does not say whether an inference pass updates the "
                        "statistics: the BatchNorm2D page and its functional counterpart")
    assert doc.as_dict() == {"value": "", "link": "", "fix": "", "says": doc.says}


def test_as_dict_carries_says() -> None:
    doc = DOCUMENTED["paddle"]["bn.momentum_weights"]
    assert doc.as_dict() == {"value": "new", "link": doc.link, "fix": doc.fix, "says": doc.says}


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_each_adapter_takes_its_table_from_documentation(framework: str) -> None:
    module = framework.replace("-", "_")  # the module of keras-torch is keras_torch.py
    source = (ADAPTERS / f"{module}.py").read_text(encoding="utf-8")
    assert "from conformance.adapters.documentation import DOCUMENTED" in source
    assert f'= DOCUMENTED["{framework}"]' in source


@pytest.mark.parametrize("framework", ["flax", "flax-nnx"])
def test_flax_tables_link_their_own_api_pages(framework: str) -> None:
    """Linen's entries link the flax.linen pages, NNX's the flax.nnx ones."""
    api = "flax.linen" if framework == "flax" else "flax.nnx"
    table = DOCUMENTED[framework]
    for key in ("bn.momentum_weights", "bn.eps_placement", "dropout.rate_meaning", "dropout.train_scale"):
        assert f"/api_reference/{api}/" in table[key].link, key
    # what differs between the two APIs: a mode of its own (NNX) or a call argument (linen)
    assert DOCUMENTED["flax"]["model.freeze_survives_mode_switch"].value == "true"
    assert DOCUMENTED["flax-nnx"]["model.freeze_survives_mode_switch"].value == "false"
