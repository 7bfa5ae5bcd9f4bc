"""The spec loader (conformance.spec), its YAML layer (conformance.yamlines), the published
JSON Schema and input generation (conformance.inputs).

Malformed specs are loaded from text; every test asserts the exact line reported and that
the message names both the problem and what was expected."""

from __future__ import annotations

import contextlib
import math
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import jsonschema
import numpy as np
import pytest

from conformance import SPEC_VERSION, yamlines
from conformance.inputs import MAX_ELEMENTS, round_to_dtype
from conformance.model import (
    BN_QUANTITIES,
    DEFAULT_TOLERANCES,
    DROPOUT_QUANTITIES,
    BatchNormSpec,
)
from conformance.reference import CONVENTION_VALUES
from conformance.spec import (
    SpecError,
    SpecErrors,
    load_file,
    load_paths,
    load_text,
    schema,
)

SPECS = Path(__file__).resolve().parents[1] / "specs"

# The trailing comments give each line's number, so the expected lines below can be checked
# by eye. Tests replace whole lines of this text to break it in one place.
BASE = """\
conformance_spec: 1                # 1
cases:                             # 2
  - name: c                        # 3
    layer:                         # 4
      kind: batch_norm             # 5
      eps: 0.001                   # 6
    inputs:                        # 7
      x: {shape: [4, 3], seed: 1}  # 8
      g: {shape: [4, 3], seed: 2}  # 9
    steps:                         # 10
      - train: x                   # 11
      - eval: x                    # 12
"""


def variant(old: str, new: str, text: str = BASE) -> str:
    """BASE with the one line starting (after indentation) with ``old`` replaced by ``new``
    (which may hold several lines, each given its indentation by the caller)."""
    lines = text.splitlines(keepends=True)
    hits = [i for i, line in enumerate(lines) if line.strip().startswith(old)]
    assert len(hits) == 1, f"{old!r} matches lines {hits}"
    lines[hits[0]] = new + "\n"
    return "".join(lines)


def errors_of(text: str) -> list[SpecError]:
    with pytest.raises(SpecErrors) as info:
        load_text(text, file="x.yaml")
    return info.value.errors


def assert_error(text: str, line: int, *parts: str) -> SpecError:
    """Loading ``text`` fails with exactly one error, at ``line``, whose message contains
    every one of ``parts`` (the problem and what was expected)."""
    errors = errors_of(text)
    assert len(errors) == 1, "\n".join(map(str, errors))
    error = errors[0]
    assert (error.file, error.line) == ("x.yaml", line), str(error)
    for part in parts:
        assert part in error.message, f"{part!r} not in {error.message!r}"
    assert "; expected" in error.message, error.message  # every message says what was expected
    assert str(error).startswith(f"x.yaml:{line}: ")
    return error


def load_one(text: str):
    cases = load_text(text, file="x.yaml")
    assert len(cases) == 1
    return cases[0]


# --- the committed corpus and the schema -------------------------------------------------

def test_corpus_loads_without_errors() -> None:
    cases, errors = load_paths([SPECS])
    assert errors == []
    assert len(cases) >= 20  # the three committed files hold 22 cases; none may vanish silently
    assert {c.layer.kind for c in cases} == {"batch_norm", "dropout", "model"}


def test_corpus_ids_are_unique_folder_stem_name_and_every_case_has_areas() -> None:
    cases, _ = load_paths([SPECS])
    ids = [c.id for c in cases]
    assert len(ids) == len(set(ids))
    for case in cases:
        path = Path(case.file)
        assert case.id == f"{path.parent.name}/{path.stem}::{case.name}"
        assert re.fullmatch(r"[a-z0-9_]+/[a-z0-9_]+::[a-z0-9][a-z0-9_.-]*", case.id), case.id
        assert case.areas, f"{case.id} has no areas"
        # areas are "<family>.<topic>": bn.* for batch norm, dropout.* for dropout, a model's
        # model.*, functional.* or dropout.mc; the seeds' worked examples also name theirs
        family = {"batch_norm": {"bn"}, "dropout": {"dropout"},
                  "model": {"model", "functional", "dropout"}}[case.layer.kind] | {"seeds"}
        assert all(a.split(".")[0] in family for a in case.areas), (case.id, case.areas)


def test_corpus_is_valid_under_the_published_schema_alone() -> None:
    validator = jsonschema.Draft202012Validator(schema())
    files = sorted(SPECS.rglob("*.yaml"))
    assert files
    for file in files:
        doc = yamlines.load(file.read_text(encoding="utf-8"))
        assert list(validator.iter_errors(doc)) == [], file


def test_schema_is_a_valid_draft_2020_12_schema() -> None:
    jsonschema.Draft202012Validator.check_schema(schema())
    assert schema()["properties"]["conformance_spec"]["const"] == SPEC_VERSION


def test_schema_quantities_match_the_model() -> None:
    # the schema's quantity enum and the loader's per-layer lists must not drift apart
    assert tuple(schema()["$defs"]["quantity"]["enum"]) == tuple(dict.fromkeys(BN_QUANTITIES + DROPOUT_QUANTITIES))
    assert tuple(schema()["$defs"]["dtype"]["enum"]) == tuple(DEFAULT_TOLERANCES)


def test_schema_reference_conventions_match_the_reference() -> None:
    # a spec's `reference:` may name exactly the conventions the numpy reference implements
    properties = schema()["$defs"]["caseFields"]["properties"]["reference"]["properties"]
    assert {k: tuple(v["enum"]) for k, v in properties.items()} == CONVENTION_VALUES


# --- what a valid spec becomes -----------------------------------------------------------

def test_base_spec_loads_into_one_case() -> None:
    case = load_one(BASE)
    assert case.name == "c" and case.line == 3 and case.file == "x.yaml"
    assert case.id == "x::c"  # a file given without a folder: <stem>::<name>
    assert isinstance(case.layer, BatchNormSpec)
    assert (case.layer.rank, case.layer.num_features, case.layer.eps) == (2, 3, 0.001)
    assert [(s.mode, s.input, s.line) for s in case.steps] == [("train", "x", 11), ("eval", "x", 12)]
    # with no observe given, a batch-norm step observes output and running statistics
    assert case.steps[0].observe == ("output", "running_mean", "running_var")
    assert case.dtype == "float32" and case.tolerance == DEFAULT_TOLERANCES["float32"]


def test_defaults_are_merged_key_by_key() -> None:
    text = """\
conformance_spec: 1
defaults:
  layer: {kind: batch_norm, eps: 0.001}
  dtype: float16
  inputs:
    x: {shape: [4, 3]}
  steps: [{train: x}]
cases:
  - name: all_defaults
  - name: own_dtype
    dtype: float64
  - name: own_layer
    layer: {kind: batch_norm, update_weight: 0.5}
  - name: own_tolerance
    tolerance: {atol: 0.5}
"""
    cases = {c.name: c for c in load_text(text, file="x.yaml")}
    assert cases["all_defaults"].dtype == "float16"
    assert cases["all_defaults"].layer.eps == 0.001
    assert cases["all_defaults"].inputs["x"].dtype == np.float16
    assert cases["own_dtype"].dtype == "float64"
    assert cases["own_dtype"].inputs["x"].dtype == np.float64
    assert cases["own_dtype"].layer.eps == 0.001  # untouched keys still come from defaults
    # a case's key replaces the default's whole value: the layer is not deep-merged, so eps
    # falls back to the model default rather than the defaults' 0.001
    assert cases["own_layer"].layer.update_weight == 0.5
    assert cases["own_layer"].layer.eps == 1e-5
    assert cases["own_layer"].dtype == "float16"
    # a tolerance key not given keeps the dtype's default
    assert cases["own_tolerance"].tolerance.atol == 0.5
    assert cases["own_tolerance"].tolerance.rtol == DEFAULT_TOLERANCES["float16"].rtol


def test_literal_inputs_keep_their_shape_and_values() -> None:
    case = load_one(variant("x:", "      x: {values: [[1.0, 2.0, 3.0], [4, 5, 6]]}"))
    x = case.inputs["x"]
    assert x.shape == (2, 3) and x.dtype == np.float32
    np.testing.assert_array_equal(x, [[1, 2, 3], [4, 5, 6]])
    assert case.layer.num_features == 3


@pytest.mark.parametrize("dtype, numpy_dtype", [
    ("float64", np.float64), ("float32", np.float32), ("float16", np.float16),
    ("bfloat16", np.float32),  # bfloat16 is held in float32 with the low 16 bits zero
])
def test_generated_inputs_have_the_shape_and_dtype_asked_for(dtype: str, numpy_dtype: type) -> None:
    text = variant("x:", "      x: {shape: [2, 3, 4, 5], seed: 7, mean: 1.0, std: 3.0}")
    text = variant("g:", f"    dtype: {dtype}", text)
    x = load_one(text).inputs["x"]
    assert x.shape == (2, 3, 4, 5) and x.dtype == numpy_dtype
    # every value is exactly representable in the dtype: rounding again changes nothing
    np.testing.assert_array_equal(round_to_dtype(x, dtype), x)
    if dtype == "bfloat16":
        assert not (x.view(np.uint32) & 0xFFFF).any()
    assert np.unique(x).size > 100  # genuinely random, not a constant


def test_generated_distributions() -> None:
    text = variant("x:", "      x: {shape: [50, 4], seed: 3, distribution: uniform, low: -2, high: 5}")
    text = variant("g:", "      g: {shape: [50, 4], distribution: constant, value: 2.5}", text)
    case = load_one(text)
    assert case.inputs["x"].min() >= -2 and case.inputs["x"].max() < 5
    assert np.all(case.inputs["g"] == 2.5)


def test_same_seed_gives_the_same_array_and_another_seed_another() -> None:
    first = load_one(BASE).inputs
    again = load_one(BASE).inputs
    np.testing.assert_array_equal(first["x"], again["x"])
    other = load_one(variant("x:", "      x: {shape: [4, 3], seed: 2}")).inputs["x"]
    # x with seed 2 is g (seed 2) of BASE, and differs from x with seed 1
    np.testing.assert_array_equal(other, first["g"])
    assert not np.array_equal(other, first["x"])


def test_bfloat16_rounding_keeps_8_significant_bits_round_half_even() -> None:
    def bf16(value: float) -> float:
        return float(round_to_dtype(np.array([value]), "bfloat16")[0])

    assert bf16(1 + 2**-9) == 1.0            # below half an ulp (2**-7): rounds down
    assert bf16(1 + 2**-7) == 1 + 2**-7      # representable: unchanged
    assert bf16(1 + 2**-8) == 1.0            # exactly half an ulp: to even (1.0)
    assert bf16(1 + 3 * 2**-8) == 1 + 2**-6  # exactly half an ulp: to even (1 + 2**-6)
    assert bf16(-(1 + 2**-9)) == -1.0
    assert bf16(0.0) == 0.0


def test_float16_rounding() -> None:
    rounded = round_to_dtype(np.array([1 + 2**-12, 1 + 2**-10, 65504.0]), "float16")
    assert rounded.dtype == np.float16
    np.testing.assert_array_equal(rounded.astype(np.float64), [1.0, 1 + 2**-10, 65504.0])


def test_literal_input_is_rounded_to_the_case_dtype() -> None:
    text = variant("x:", f"      x: {{values: [[1.001953125, {1 + 2**-7!r}, 3.0]]}}")  # 1 + 2**-9
    text = variant("g:", "    dtype: bfloat16", text)
    text = variant("- eval: x", "", text)
    np.testing.assert_array_equal(load_one(text).inputs["x"], [[1.0, 1 + 2**-7, 3.0]])


def test_literal_expected_values_are_keyed_by_step_and_quantity() -> None:
    # no update (weight 0): the literal values are what the reference gives, so the spec holds
    text = variant("eps:", "      eps: 0.001\n      update_weight: 0\n      running_var: [1, 2, 3]")
    text += "    expect:\n      values:\n        - {step: 1, quantity: running_var, value: [1, 2, 3]}\n"
    case = load_one(text)
    assert list(case.literal) == [(1, "running_var")]
    np.testing.assert_array_equal(case.literal[(1, "running_var")], [1.0, 2.0, 3.0])
    assert case.literal[(1, "running_var")].dtype == np.float64
    assert not case.expect_error


def test_exponent_numbers_without_a_dot_are_floats() -> None:
    doc = yamlines.load("a: 1e-5\nb: 1E3\nc: 2.5e+2\nd: 3\ne: -4e-1\nf: 1e\n")
    assert doc == {"a": 1e-5, "b": 1000.0, "c": 250.0, "d": 3, "e": -0.4, "f": "1e"}
    assert type(doc["a"]) is float and type(doc["b"]) is float and type(doc["d"]) is int
    case = load_one(variant("eps:", "      eps: 1e-5\n      update_weight: 2e-1"))
    assert (case.layer.eps, case.layer.update_weight) == (1e-5, 0.2)


def test_yamlines_records_lines_of_keys_and_items() -> None:
    doc = yamlines.load(BASE)
    assert yamlines.line_of(doc, ["cases", 0, "layer", "eps"]) == 6
    assert yamlines.line_of(doc, ["cases", 0, "steps", 1]) == 12
    # a path that leaves the document stops at the deepest node that exists
    assert yamlines.line_of(doc, ["cases", 0, "inputs", "nope"]) == 7


# --- malformed specs ---------------------------------------------------------------------

def test_yaml_syntax_error() -> None:
    error = assert_error(variant("kind:", "      kind: batch_norm: oops"), 5,
                         "YAML syntax error", "expected valid YAML")
    assert_passes_on_library_text(error)


def test_tab_indentation_is_a_syntax_error_at_its_line() -> None:
    error = assert_error(variant("- eval: x", "\t- eval: x"), 12, "YAML syntax error")
    assert_passes_on_library_text(error)


def test_unknown_key_with_did_you_mean() -> None:
    text = variant("layer:", "    layer: {kind: batch_norm, eps: 0.001, updte_weight: 0.2}")
    text = variant("kind:", "    # line 5", text)
    text = variant("eps:", "    # line 6", text)
    assert_error(text, 4, "cases[0].layer: unknown key 'updte_weight'",
                 "did you mean 'update_weight'?", "expected one of", "eps, frozen, kind,")


def test_unknown_key_in_a_block_mapping_is_reported_at_its_own_line() -> None:
    assert_error(variant("eps:", "      eps: 0.001\n      updte_weight: 0.2"), 7,
                 "cases[0].layer: unknown key 'updte_weight'",
                 "did you mean 'update_weight'?")


def test_unknown_case_key_is_reported_at_its_own_line() -> None:
    assert_error(variant("- eval: x", "      - eval: x\n    dtyp: float32"), 13,
                 "cases[0]: unknown key 'dtyp'", "did you mean 'dtype'?", "expected one of")


def test_wrong_type() -> None:
    assert_error(variant("eps:", "      eps: small"), 6,
                 "cases[0].layer.eps", "got 'small'", "expected a number or 'default'")


def test_bad_channel_axis_with_did_you_mean() -> None:
    assert_error(variant("eps:", "      channel_axis: frist"), 6, "cases[0].layer.channel_axis",
                 "got 'frist'", "did you mean 'first'?", "expected one of 'first', 'last'")


def test_missing_conformance_spec() -> None:
    without = BASE.split("\n", 1)[1]  # 'cases:' is now line 1
    assert_error(without, 1, "spec: missing key 'conformance_spec'; expected it to be given")


def test_wrong_spec_version() -> None:
    assert_error(variant("conformance_spec:", "conformance_spec: 2"), 1,
                 "conformance_spec: got 2", "expected 1")


def test_step_naming_an_undefined_input() -> None:
    assert_error(variant("- eval: x", "      - eval: y"), 12,
                 "steps[1] names input 'y', which is not defined", "expected one of g, x")


def test_grad_output_naming_an_undefined_input() -> None:
    assert_error(variant("- train: x", "      - {train: x, grad_output: h}"), 11,
                 "steps[0] names input 'h'", "not defined", "expected one of g, x")


def test_grad_output_with_another_shape_than_the_input() -> None:
    text = variant("g:", "      g: {shape: [4, 2]}")
    assert_error(variant("- train: x", "      - {train: x, grad_output: g}", text), 11,
                 "grad_output 'g' has shape (4, 2)", "expected the input's shape (4, 3)")


def test_observing_a_quantity_a_dropout_layer_lacks() -> None:
    text = variant("eps:", "      rate: 0.5").replace("kind: batch_norm", "kind: dropout    ")
    assert_error(variant("- eval: x", "      - {eval: x, observe: [output, running_mean]}", text), 12,
                 "observes running_mean, which a dropout layer does not have",
                 "expected some of output, grad_input")


def test_step_input_of_another_rank() -> None:
    text = variant("g:", "      g: {shape: [4, 3, 2]}")
    assert_error(variant("- eval: x", "      - eval: g", text), 10,
                 "input 'g' has shape (4, 3, 2)", "expected rank 2 with 3 channels")


def test_duplicate_case_names_in_a_file() -> None:
    text = BASE + "  - name: c\n    layer: {kind: dropout, rate: 0.1}\n" \
                  "    inputs: {x: {shape: [3]}}\n    steps: [{train: x}]\n"
    assert_error(text, 13, "duplicate case name 'c' (first on line 3)", "expected unique names")


def test_duplicate_yaml_key() -> None:
    assert_error(variant("eps:", "      eps: 0.001\n      eps: 0.01"), 7,
                 "duplicate key 'eps' (first on line 6)", "expected valid YAML")


def got_number(error: SpecError, where: str) -> float:
    """The value in ``<where>: got <value>; expected ...``, read back as a number: how
    Python spells a float (nan, inf) is not the kit's to promise, the value is."""
    found = re.search(rf"(?:^|: ){re.escape(where)}: got (\S+); expected", error.message)
    assert found, f"no '{where}: got <value>; expected' in {error.message!r}"
    return float(found.group(1))


def same_number(got: float, wanted: float) -> bool:
    return got == wanted or (math.isnan(got) and math.isnan(wanted))


@pytest.mark.parametrize("line, where, value", [
    ("      eps: .nan", "cases[0].layer.eps", math.nan),
    ("      eps: .inf", "cases[0].layer.eps", math.inf),
    ("      eps: 1e400", "cases[0].layer.eps", math.inf),  # overflows to infinity when read
])
def test_non_finite_eps(line: str, where: str, value: float) -> None:
    error = assert_error(variant("eps:", line), 6, where, "expected a finite number")
    assert same_number(got_number(error, where), value), error.message


@pytest.mark.parametrize("text_value, value", [(".nan", math.nan), (".inf", math.inf)])
def test_non_finite_tolerance(text_value: str, value: float) -> None:
    text = variant("- eval: x", f"      - eval: x\n    tolerance:\n      rtol: 0.1\n      atol: {text_value}")
    error = assert_error(text, 15, "cases[0].tolerance.atol", "expected a finite number")
    assert same_number(got_number(error, "cases[0].tolerance.atol"), value), error.message


def test_non_finite_literal_input_value() -> None:
    error = assert_error(variant("x:", "      x: {values: [[1, 2, 3], [4, .nan, 6]]}"), 8,
                         "cases[0].inputs.x.values[1][1]", "expected a finite number")
    assert math.isnan(got_number(error, "cases[0].inputs.x.values[1][1]")), error.message


def test_shape_too_large_is_refused_with_the_bound() -> None:
    assert_error(variant("x:", "      x: {shape: [100000, 100000]}"), 8,
                 "input 'x' has 10000000000 values", f"expected at most {MAX_ELEMENTS} per input")


def test_inputs_too_large_together_are_refused() -> None:
    # each input is within the per-input bound, their sum is not within the per-case one
    text = variant("x:", "      x: {shape: [4096, 4096]}")
    text = variant("g:", "      g: {shape: [4096, 4096]}\n      h: {shape: [4096, 4096]}", text)
    assert_error(text, 10, "input 'h'", "per case")


@pytest.mark.parametrize("shape, rank", [("[4]", 1), ("[2, 3, 1, 1, 1, 1]", 6)])
def test_batch_norm_rank_out_of_range(shape: str, rank: int) -> None:
    text = variant("x:", f"      x: {{shape: {shape}}}")
    text = variant("g:", "", text)
    assert_error(text, 4, f"batch norm input has rank {rank}", "expected 2 to 5")


def test_shape_of_rank_7_is_refused_by_the_schema() -> None:
    assert_error(variant("x:", "      x: {shape: [1, 1, 1, 1, 1, 1, 1]}"), 8,
                 "cases[0].inputs.x.shape", "expected maxItems 6")


def test_per_channel_scale_of_the_wrong_length() -> None:
    assert_error(variant("eps:", "      scale: [1.0, 2.0]"), 6,
                 "layer.scale has 2 values", "expected one per channel (3)")


def test_literal_expect_at_a_step_index_out_of_range() -> None:
    text = BASE + "    expect:\n      values:\n" \
                  "        - {step: 1, quantity: running_mean, value: [0, 0, 0]}\n" \
                  "        - {step: 2, quantity: running_mean, value: [0, 0, 0]}\n"
    assert_error(text, 16, "expect.values[1] refers to step 2", "expected a step index below 2")


def test_literal_expect_of_a_quantity_the_step_does_not_observe() -> None:
    text = variant("- eval: x", "      - {eval: x, observe: [output]}")
    text += "    expect:\n      values:\n        - {step: 1, quantity: running_var, value: [1, 1, 1]}\n"
    assert_error(text, 15, "gives running_var at step 1, which that step does not observe",
                 "expected one of output")


def test_ragged_literal_input() -> None:
    assert_error(variant("x:", "      x: {values: [[1, 2, 3], [4, 5]]}"), 8,
                 "input 'x' cannot be made", "expected a rectangular nested list")


@pytest.mark.parametrize("text", ["- a\n- b\n", "just text\n", "42\n"])
def test_a_document_that_is_not_a_mapping(text: str) -> None:
    assert_error(text, 1, "not a mapping", f"expected a spec starting with 'conformance_spec: {SPEC_VERSION}'")


@pytest.mark.parametrize("text", ["", "# only a comment\n", "\n\n"])
def test_an_empty_file(text: str) -> None:
    assert_error(text, 1, "not a mapping", "expected a spec")


def test_every_problem_of_a_file_is_reported_not_just_the_first() -> None:
    text = variant("eps:", "      eps: small")
    text = variant("x:", "      x: {shape: [4, 0]}", text)
    errors = errors_of(text)
    assert sorted(e.line for e in errors) == [6, 8]


# --- documents no spec needs: the loader's own bounds ------------------------------------
# Whatever the YAML library does about them (PyYAML 6.0.4 refuses nesting past 1000 levels in
# its own words, earlier releases recursed), the kit gives one file:line error.

LIBRARY_TEXT = re.compile(r"^YAML [a-z ]+: (?P<text>\S.*?) at column \d+.*; expected ")


def assert_passes_on_library_text(error: SpecError) -> None:
    """A message the kit builds around the YAML library's own words: the words are there."""
    match = LIBRARY_TEXT.match(error.message)
    assert match and match["text"].strip(), error.message


def test_nesting_past_the_yaml_librarys_own_limit_is_one_error_at_its_line() -> None:
    errors = errors_of("[" * 5000 + "]" * 5000)
    assert len(errors) == 1 and errors[0].line == 1, errors
    assert "YAML" in errors[0].message and "; expected" in errors[0].message


def test_nesting_deeper_than_a_spec_needs_is_refused_in_the_kits_words() -> None:
    depth = yamlines.MAX_DEPTH + 1
    text = variant("- eval: x", "      - eval: x\n    extra: " + "[" * depth + "1" + "]" * depth)
    assert_error(text, 13, f"YAML nested deeper than {yamlines.MAX_DEPTH} levels",
                 f"expected a spec nested at most {yamlines.MAX_DEPTH} levels deep")


def test_nesting_a_spec_needs_is_accepted() -> None:
    values = "[" * 5 + "1.0, 2.0, 3.0" + "]" * 5  # a rank-5 literal tensor
    text = variant("kind:", "      kind: batch_norm\n      channel_axis: last", BASE)
    case = load_one(variant("x:", f"      x: {{values: {values}}}", text))
    assert case.inputs["x"].tolist() == [[[[[1.0, 2.0, 3.0]]]]]


def billion_laughs(where: str) -> str:
    """Nine levels of nine aliases: 9**9 values in a few hundred bytes, at ``where``."""
    levels = ["a: &a [1, 1, 1, 1, 1, 1, 1, 1, 1]"]
    for prev, name in zip("abcdefgh", "bcdefghi"):
        levels.append(f"{name}: &{name} [" + ", ".join([f"*{prev}"] * 9) + "]")
    anchors = "laughs:\n" + "".join(f"  {line}\n" for line in levels)
    if where == "unused key":
        return BASE + anchors
    if where == "cases":
        return "conformance_spec: 1\n" + anchors + "cases: *i\n"
    return anchors + BASE.replace("x: {shape: [4, 3], seed: 1}", "x: {values: *i}")


@contextlib.contextmanager
def time_limit(seconds: int) -> Iterator[None]:
    """Fail instead of hanging: an unbounded loader walks 9**9 values for hours."""
    def give_up(*_: object) -> None:
        raise TimeoutError(f"still loading after {seconds} s")
    previous = signal.signal(signal.SIGALRM, give_up)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


@pytest.mark.parametrize("where", ["cases", "values", "unused key"])
def test_an_alias_bomb_is_refused_before_anything_expands_it(where: str) -> None:
    with time_limit(60):
        errors = errors_of(billion_laughs(where))
    assert len(errors) == 1, errors
    assert f"expands to more than {yamlines.MAX_NODES} values" in errors[0].message
    assert "; expected a spec of at most" in errors[0].message
    line = billion_laughs(where).splitlines()[errors[0].line - 1]
    assert ": &" in line and "*" in line  # the line whose aliases cross the bound


def test_aliases_that_stay_small_are_accepted() -> None:
    text = BASE.replace("x: {shape: [4, 3], seed: 1}", "x: &shared {shape: [4, 3], seed: 1}")
    text = text.replace("g: {shape: [4, 3], seed: 2}", "g: *shared")
    case = load_one(text)
    assert np.array_equal(case.inputs["g"], case.inputs["x"])


def test_a_value_that_contains_itself_is_refused() -> None:
    assert_error(variant("- eval: x", "      - eval: x\n    extra: &loop [1, *loop]"), 13,
                 "alias *loop inside its own anchor", "expected a finite value")


def test_a_python_tag_is_refused_at_its_line_with_the_librarys_words() -> None:
    error = assert_error(variant("eps:", "      eps: !!python/object/apply:os.getpid []"), 6,
                         "YAML content the kit does not read", "no tags")
    assert_passes_on_library_text(error)


def test_yaml_bounds_exit_2_at_the_command_line_without_a_traceback(tmp_path: Path) -> None:
    texts = {"deep": "[" * 5000 + "]" * 5000, "bomb": billion_laughs("cases"),
             "tag": variant("eps:", "      eps: !!python/name:os.system")}
    for name, text in texts.items():
        (tmp_path / f"{name}.yaml").write_text(text)
    # a subprocess with a time limit: an unbounded loader would run for hours, not fail
    done = subprocess.run([sys.executable, "-m", "conformance", "validate", str(tmp_path)],
                          check=False, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    for name in texts:
        assert re.search(rf"{re.escape(str(tmp_path / name))}.yaml:\d+: YAML", done.stderr), done.stderr


# --- load_paths / load_file --------------------------------------------------------------

def test_same_id_under_two_roots_is_a_duplicate_id_error(tmp_path: Path) -> None:
    for root in ("one", "two"):
        (tmp_path / root / "bn").mkdir(parents=True)
        (tmp_path / root / "bn" / "basic.yaml").write_text(BASE)
    cases, errors = load_paths([tmp_path / "one", tmp_path / "two"])
    assert [c.id for c in cases] == ["bn/basic::c"]
    assert cases[0].file == str(tmp_path / "one" / "bn" / "basic.yaml")
    assert len(errors) == 1
    assert (errors[0].file, errors[0].line) == (str(tmp_path / "two" / "bn" / "basic.yaml"), 3)
    assert "duplicate case id 'bn/basic::c'" in errors[0].message
    assert f"first at {tmp_path / 'one' / 'bn' / 'basic.yaml'}:3" in errors[0].message
    assert "expected unique ids" in errors[0].message


def test_a_missing_path_is_an_error_not_an_exception(tmp_path: Path) -> None:
    (tmp_path / "bn").mkdir()
    (tmp_path / "bn" / "basic.yaml").write_text(BASE)
    missing = tmp_path / "nope"
    cases, errors = load_paths([missing, tmp_path])
    assert [c.id for c in cases] == ["bn/basic::c"]  # the good path still loads
    assert [(e.file, e.line) for e in errors] == [(str(missing), 0)]
    assert "no such file or folder" in errors[0].message and "expected a spec" in errors[0].message


def test_a_bad_file_does_not_hide_the_good_ones(tmp_path: Path) -> None:
    (tmp_path / "bn").mkdir()
    (tmp_path / "bn" / "a_good.yaml").write_text(BASE)
    (tmp_path / "bn" / "b_bad.yaml").write_text(variant("eps:", "      eps: small"))
    cases, errors = load_paths([tmp_path])
    assert [c.id for c in cases] == ["bn/a_good::c"]
    assert [(Path(e.file).name, e.line) for e in errors] == [("b_bad.yaml", 6)]


def test_a_file_that_is_not_utf8_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "latin1.yaml"
    path.write_bytes("conformance_spec: 1\ndescription: caf\xe9\n".encode("latin-1"))
    with pytest.raises(SpecErrors) as info:
        load_file(path)
    [error] = info.value.errors
    assert error.file == str(path) and "cannot read the file" in error.message
    assert "expected a readable UTF-8 YAML file" in error.message


# --- once bugs: each input used to escape as a traceback or a misleading result -------

def test_complex_yaml_key_is_a_spec_error() -> None:
    assert_error(variant("eps:", "      ? [a, b]\n      : 1"), 6, "keys must be plain names")


def test_float_valued_seed_is_a_spec_error_or_an_int() -> None:
    text = variant("x:", "      x: {shape: [4, 3], seed: 1.0}")
    try:
        case = load_one(text)
    except SpecErrors as exc:  # refusing it, at its line, is as good as reading it as 1
        assert [e.line for e in exc.errors] == [8]
    else:
        np.testing.assert_array_equal(case.inputs["x"], load_one(BASE).inputs["x"])


def test_float_valued_expect_step_is_a_spec_error_or_an_int() -> None:
    text = BASE + "    expect:\n      values:\n        - {step: 0.0, quantity: output, value: 0}\n"
    try:
        case = load_one(text)
    except SpecErrors as exc:
        assert [e.line for e in exc.errors] == [15]
    else:
        assert list(case.literal) == [(0, "output")]


def test_literal_expect_value_of_the_wrong_shape() -> None:
    text = BASE + "    expect:\n      values:\n" \
                  "        - {step: 0, quantity: running_mean, value: [1, 2, 3, 4, 5]}\n"
    assert_error(text, 15, "running_mean", "3")


def test_step_with_both_train_and_eval_says_to_give_exactly_one() -> None:
    assert_error(variant("- eval: x", "      - {eval: x, train: x}"), 12,
                 "expected exactly one of 'train: INPUT', 'eval: INPUT', 'reset: running_stats' or 'rebuild: layer'")


def test_literal_values_that_overflow_the_dtype_are_refused() -> None:
    assert_error(variant("x:", "      x: {values: [[1.0e39, 1.0, 2.0]]}"), 8, "overflow float32")
