"""Property-based: whatever a person puts in a spec file, loading it gives cases or
``file:line: ...; expected ...`` errors, never another exception, and never runs code."""

from __future__ import annotations

import copy
import math
from pathlib import Path
from typing import Any

import yaml
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from conformance.spec import SpecErrors, load_text

VALID: dict[str, Any] = yaml.safe_load("""
conformance_spec: 1
defaults: {dtype: float32}
cases:
  - name: c
    areas: [bn.train_forward]
    layer: {kind: batch_norm, update_weight: 0.1, eps: 0.001, channel_axis: first, scale: [1.0, 2.0]}
    inputs:
      x: {shape: [4, 2], seed: 1, distribution: normal, mean: 0.0, std: 1.0}
      g: {values: [[1.0, 2.0], [3.0, 4.0], [5.0, 6.0], [7.0, 8.0]]}
    steps:
      - {train: x, grad_output: g, observe: [output, grad_input]}
      - {eval: x}
      - {reset: running_stats}
    observe: [output, running_mean]
    expect:
      values: [{step: 2, quantity: running_mean, value: [0, 0]}]
    tolerance: {atol: 0.001, rtol: 0.001}
  - name: d
    layer: {kind: dropout, rate: 0.5, granularity: channel, seed: 3}
    inputs: {x: {shape: [8, 3, 2], distribution: uniform, low: 1, high: 2}}
    steps: [{train: x}, {rebuild: layer}, {train: x}]
    expect: {masks: {same: [[0, 2]]}}
""")

ODD_VALUES = st.one_of(
    st.none(), st.booleans(), st.integers(-10**12, 10**12),
    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=20),
    st.lists(st.integers(-5, 10**9), max_size=4), st.dictionaries(st.text(max_size=8), st.integers(), max_size=3),
    st.sampled_from([-1, 0, 10**9, 1.5, "default", "train", [], {}, [[1, 2], [3]], [0, 0], [1e40]]),
)


def _paths(node: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [prefix]
    if isinstance(node, dict):
        for key, child in node.items():
            found += _paths(child, prefix + (key,))
    elif isinstance(node, list):
        for i, child in enumerate(node):
            found += _paths(child, prefix + (i,))
    return found


PATHS = _paths(VALID)[1:]


def _mutate(doc: dict[str, Any], path: tuple[Any, ...], how: str, value: Any, key: str) -> dict[str, Any]:
    doc = copy.deepcopy(doc)
    parent = doc
    for part in path[:-1]:
        parent = parent[part]
    last = path[-1]
    if how == "replace":
        parent[last] = value
    elif how == "delete":
        del parent[last]
    elif how == "add_key" and isinstance(parent[last], dict):
        parent[last][key] = value
    elif how == "duplicate" and isinstance(parent, list):
        parent.append(copy.deepcopy(parent[last]))
    return doc


def _assert_clean(text: str) -> None:
    try:
        load_text(text, file="fuzz.yaml")
    except SpecErrors as exc:
        assert exc.errors
        for error in exc.errors:
            assert error.file == "fuzz.yaml"
            assert isinstance(error.line, int) and error.line >= 0
            assert "expected" in error.message, error.message


FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@FUZZ
@given(path=st.sampled_from(PATHS), how=st.sampled_from(["replace", "delete", "add_key", "duplicate"]),
       value=ODD_VALUES, key=st.text(min_size=1, max_size=12))
def test_mutated_specs_load_or_fail_cleanly(path: tuple[Any, ...], how: str, value: Any, key: str) -> None:
    doc = _mutate(VALID, path, how, value, key)
    _assert_clean(yaml.safe_dump(doc, allow_unicode=True, sort_keys=False))


@FUZZ
@given(st.text(max_size=300))
@example("._")  # matched a float pattern, then float('.') raised
@example("a: [._, -._, 1._, ._1]")
def test_arbitrary_text_loads_or_fails_cleanly(text: str) -> None:
    _assert_clean(text)


@FUZZ
@given(cut=st.integers(0, 2000))
def test_truncated_specs_fail_cleanly(cut: int) -> None:
    _assert_clean(yaml.safe_dump(VALID, sort_keys=False)[:cut])


def test_the_valid_seed_document_loads() -> None:
    cases = load_text(yaml.safe_dump(VALID, sort_keys=False), file="fuzz.yaml")
    assert [c.name for c in cases] == ["c", "d"]
    assert not math.isnan(cases[0].tolerance.atol)


def test_yaml_cannot_construct_objects_or_run_code(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    for tag in ("!!python/object/apply:os.system", "!!python/object/new:os.system"):
        text = f"conformance_spec: 1\ncases: {tag} [\"touch {marker}\"]\n"
        try:
            load_text(text, file="evil.yaml")
        except SpecErrors as exc:
            assert exc.errors[0].line == 2 and "YAML" in exc.errors[0].message
        assert not marker.exists()
