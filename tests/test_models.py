"""Model cases without any framework: the loader (conformance/spec_model.py), the numpy
reference for models (conformance/reference_model.py) checked against hand computation and
finite differences, and planted model conventions found and read as facts."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from helpers import cases_from, verdict_of

from conformance import conventions
from conformance.adapters.numpy import NumpyAdapter
from conformance.checks import reference_run
from conformance.reference import CONVENTION_VALUES
from conformance.spec import SpecErrors, load_paths

SPECS = Path(__file__).resolve().parents[1] / "specs"

MLP = """
cases:
  - name: m
    model:
      kind: sequential
      children:
        - {kind: linear, name: fc1, weight: %s, bias: [0.5, -0.5]}
        - {kind: batch_norm, name: bn1, update_weight: 0.5}
        - {kind: linear, name: fc2, weight: [[1.0, -2.0]]}
    inputs:
      x: {values: [[1.0, 2.0], [3.0, -1.0], [0.0, 1.0]]}
      g: {values: [[1.0], [-2.0], [0.5]]}
    steps: %s
"""
W1 = "[[1.0, 0.5], [-1.0, 2.0]]"


def planted(settings: dict[str, str]) -> NumpyAdapter:
    return type("Planted", (NumpyAdapter,), {"name": "planted", "conventions": dict(settings),
                                              "documented": {}})()


def errors_of(text: str) -> list[str]:
    with pytest.raises(SpecErrors) as info:
        cases_from(text)
    return [str(e) for e in info.value.errors]


# --- the loader -------------------------------------------------------------------------

def test_a_model_case_loads_with_shapes_flowing_through_it() -> None:
    (case,) = cases_from(MLP % (W1, "[{train: x, observe: [output, bn1.running_mean]}]"))
    assert case.layer.kind == "model" and case.layer.rank == 2
    bn = case.layer.leaf("bn1").layer
    assert (bn.rank, bn.num_features, bn.update_weight) == (2, 2, 0.5)
    assert case.layer.leaf("fc2").layer.weight.shape == (1, 2)
    assert case.program()["layer"]["root"]["children"][0]["layer"]["weight"] == [[1.0, 0.5], [-1.0, 2.0]]


@pytest.mark.parametrize("change, line, words", [
    (("name: bn1", "name: fc1"), 9, "the name 'fc1' is used twice"),
    ((f"weight: {W1}", "weight: [[1.0, 0.5, 2.0]]"), 8, "weight of shape (1, 3); expected (out, 2)"),
    (("bias: [0.5, -0.5]", "bias: [0.5]"), 8, "bias of shape (1,); expected (2,)"),
    (("update_weight: 0.5", "update_weight: default"), 9, "expected neutral values of update_weight"),
    (("name: bn1, update_weight: 0.5", "name: bn1, call: functional"), 9, "expected those only in a custom container"),
])
def test_model_problems_are_reported_at_their_line(change: tuple[str, str], line: int, words: str) -> None:
    text = (MLP % (W1, "[{train: x}]")).replace(*change)
    errors = errors_of(text)
    assert any(f"test.yaml:{line}:" in e and words in e for e in errors), errors


@pytest.mark.parametrize("steps, words", [
    ("[{train: x, observe: [bn9.running_mean]}]", "observes bn9.running_mean, which this model does not have"),
    ("[{freeze: fc1}, {train: x}]", "freezes 'fc1'; expected a batch-norm leaf"),
    ("[{train_step: x, lr: 0.1}]", "expected grad_output (the loss weights) with train_step"),
    ("[{train_step: x, grad_output: g}]", "train_step without lr"),
    ("[{switch: eval}]", "no step calls the model"),
    ("[{switch: eval, observe: [output]}, {call: x}]", "has no output to observe"),
    ("[{train: x, context: no_grad}]", "context is for layer cases"),
    ("[{train: x, observe: [fc1.grad_weight]}]", "expected gradients only at a train_step"),
])
def test_model_steps_are_checked(steps: str, words: str) -> None:
    errors = errors_of(MLP % (W1, steps))
    assert any(words in e for e in errors), errors


def test_layer_steps_are_refused_in_a_layer_case() -> None:
    text = """
cases:
  - name: c
    layer: {kind: batch_norm}
    inputs: {x: {shape: [4, 3]}}
    steps: [{call: x}]
"""
    assert errors_of(text)


# --- the reference --------------------------------------------------------------------------

def run_reference(text: str, settings: dict[str, str] | None = None) -> Any:
    (case,) = cases_from(text)
    run = reference_run(case, settings or {})
    assert run.status == "ok", run.message
    return case, run


def test_linear_layers_compute_x_w_transposed_plus_b() -> None:
    case, run = run_reference(MLP % (W1, "[{eval: x, observe: [output]}]"))
    x = case.inputs["x"].astype(np.float64)
    h = x @ np.array([[1.0, 0.5], [-1.0, 2.0]]).T + np.array([0.5, -0.5])
    h = h / np.sqrt(1.0 + 1e-5)  # a fresh batch norm in inference: mean 0, variance 1
    np.testing.assert_allclose(run.steps[0]["output"], h @ np.array([[1.0], [-2.0]]), rtol=1e-12)


def loss_after(weight: np.ndarray, x: np.ndarray, g: np.ndarray) -> float:
    """sum(g * output) of the MLP in training mode, computed directly (batch statistics)."""
    h = x @ weight.T + np.array([0.5, -0.5])
    h = (h - h.mean(axis=0)) / np.sqrt(h.var(axis=0) + 1e-5)
    return float(np.sum(g * (h @ np.array([[1.0], [-2.0]]))))


def test_a_training_step_follows_the_gradient_finite_differences_give() -> None:
    case, run = run_reference(MLP % (W1, "[{train_step: x, grad_output: g, lr: 0.1, observe: [fc1.weight, bn1.running_mean]}]"))
    x, g = (case.inputs[n].astype(np.float64) for n in ("x", "g"))
    w = np.array([[1.0, 0.5], [-1.0, 2.0]])
    numeric = np.zeros_like(w)
    for index in np.ndindex(w.shape):
        step = np.zeros_like(w)
        step[index] = 1e-6
        numeric[index] = (loss_after(w + step, x, g) - loss_after(w - step, x, g)) / 2e-6
    np.testing.assert_allclose(run.steps[0]["fc1.weight"], w - 0.1 * numeric, atol=1e-7)
    # and the gradient the update applied, as a step observes it, is that gradient
    _, run2 = run_reference(MLP % (W1, "[{train_step: x, grad_output: g, lr: 0.1, observe: [fc1.grad_weight]}]"))
    np.testing.assert_allclose(run2.steps[0]["fc1.grad_weight"], numeric, atol=1e-6)
    # the forward of the step trained: the statistics moved halfway to the batch's mean
    h = x @ w.T + np.array([0.5, -0.5])
    np.testing.assert_allclose(run.steps[0]["bn1.running_mean"], 0.5 * h.mean(axis=0), rtol=1e-12)


NESTED = """
cases:
  - name: n
    model:
      kind: sequential
      children:
        - {kind: batch_norm, name: bn1}
        - kind: %s
          name: block
          %s
          children:
            - kind: sequential
              name: inner
              children:
                - {kind: dropout, name: drop1, rate: 0.5, seed: 1}
                - {kind: batch_norm, name: bn2}
    inputs: {x: {shape: [16, 3], seed: 2}}
    observe: [bn1.training, bn2.training, drop1.training]
    steps: %s
"""


def modes(run: Any, step: int) -> tuple[float, ...]:
    return tuple(float(run.steps[step][q]) for q in ("bn1.training", "bn2.training", "drop1.training"))


def test_a_mode_switch_reaches_every_descendant() -> None:
    _, run = run_reference(NESTED % ("sequential", "", "[{train: x}, {eval: x}, {call: x}]"))
    assert [modes(run, i) for i in range(3)] == [(1, 1, 1), (0, 0, 0), (0, 0, 0)]


def test_a_container_that_overrides_the_switch_keeps_its_children_as_they_were() -> None:
    _, run = run_reference(NESTED % ("container", "override_mode_switch: true", "[{eval: x}]"))
    assert modes(run, 0) == (0, 1, 1)  # built training, never switched below the override


@pytest.mark.parametrize("reach, expected", [("partial", (0, 1, 1)), ("none", (1, 1, 1))])
def test_partial_and_no_propagation(reach: str, expected: tuple[int, ...]) -> None:
    _, run = run_reference(NESTED % ("sequential", "", "[{eval: x}]"), {"model.eval_propagates": reach})
    # partial: the root and its children (bn1, the block) switch, not the block's contents
    assert modes(run, 0) == (expected if reach == "partial" else (1, 1, 1))


def test_a_hard_coded_flag_on_a_sub_model_wins_and_an_overridden_one_does_not() -> None:
    text = (NESTED % ("sequential", 'training: "false"', "[{train: x}]")).replace(
        "      kind: sequential\n      children:", "      kind: container\n      children:", 1)
    _, honoured = run_reference(text)
    assert modes(honoured, 0) == (1, 0, 0)
    _, overridden = run_reference(text, {"model.call_site_flag": "overridden"})
    assert modes(overridden, 0) == (1, 1, 1)


FUNCTIONAL = """
cases:
  - name: f
    model:
      kind: container
      children:
        - {kind: batch_norm, name: bn1, call: functional%s}
        - {kind: dropout, name: drop1, rate: 0.5, seed: 3, call: functional%s}
    inputs: {x: {shape: [16, 3], seed: 4}}
    observe: [drop1.training, bn1.training, bn1.running_mean]
    steps: [{eval: x}, {train: x}]
"""


def test_functional_forms_default_to_dropping_and_to_running_statistics() -> None:
    _, run = run_reference(FUNCTIONAL % ("", ""))
    assert [float(run.steps[i]["drop1.training"]) for i in (0, 1)] == [1.0, 1.0]
    assert [float(run.steps[i]["bn1.training"]) for i in (0, 1)] == [0.0, 0.0]
    assert not run.steps[1]["bn1.running_mean"].any()  # never updated
    _, tied = run_reference(FUNCTIONAL % (", training: mode", ", training: mode"))
    assert [float(tied.steps[i]["drop1.training"]) for i in (0, 1)] == [0.0, 1.0]
    assert tied.steps[1]["bn1.running_mean"].any()


FREEZE = """
cases:
  - name: z
    model:
      kind: sequential
      children:
        - {kind: batch_norm, name: bn1}
        - {kind: batch_norm, name: bn2}
    inputs:
      x: {shape: [16, 3], seed: 5, mean: 1.0}
      y: {shape: [16, 3], seed: 6, mean: -2.0}
    observe: [bn1.running_mean, bn2.running_mean]
    steps: [{train: x}, {freeze: bn1, via: %s}, {call: y}, {train: y}]
"""


@pytest.mark.parametrize("via, survives", [("mode", False), ("default", False), ("flag", True)])
def test_a_freeze_by_mode_ends_with_the_next_switch_one_by_flag_does_not(via: str, survives: bool) -> None:
    _, run = run_reference(FREEZE % via)
    first = run.steps[0]["bn1.running_mean"]
    np.testing.assert_array_equal(run.steps[2]["bn1.running_mean"], first)  # frozen during the call
    assert run.steps[2]["bn2.running_mean"].tolist() != run.steps[0]["bn2.running_mean"].tolist()
    moved = not np.array_equal(run.steps[3]["bn1.running_mean"], first)
    assert moved is not survives


def test_a_mode_freeze_that_survives_the_switch_under_its_convention() -> None:
    _, run = run_reference(FREEZE % "default", {"model.freeze_survives_mode_switch": "true"})
    np.testing.assert_array_equal(run.steps[3]["bn1.running_mean"], run.steps[0]["bn1.running_mean"])


def test_mc_dropout_keeps_dropout_on_and_batch_norm_on_its_statistics() -> None:
    text = FUNCTIONAL.replace(", call: functional%s", "").replace("kind: container", "kind: sequential")
    text = text.replace("steps: [{eval: x}, {train: x}]", "steps: [{train: x}, {mc_dropout: x}, {mc_dropout: x}]")
    _, run = run_reference(text)
    assert [float(run.steps[i]["drop1.training"]) for i in (1, 2)] == [1.0, 1.0]
    assert [float(run.steps[i]["bn1.training"]) for i in (1, 2)] == [0.0, 0.0]
    np.testing.assert_array_equal(run.steps[2]["bn1.running_mean"], run.steps[0]["bn1.running_mean"])


# --- planted conventions in the corpus's model cases ----------------------------------------

@pytest.fixture(scope="module")
def model_cases() -> list[Any]:
    cases, errors = load_paths([SPECS / "model", SPECS / "seeds"])
    assert not errors
    return [c for c in cases if c.layer.kind == "model"]


MODEL_CHANGES = [{k: v} for k, values in CONVENTION_VALUES.items() if k.split(".")[0] in ("model", "functional")
                 for v in values[1:]]


@pytest.mark.parametrize("settings", MODEL_CHANGES, ids=lambda s: ",".join(f"{k}={v}" for k, v in s.items()))
def test_every_planted_model_convention_is_found_and_read_as_a_fact(settings: dict[str, str],
                                                                      model_cases: list[Any]) -> None:
    adapter = planted(settings)
    entries = [verdict_of(adapter, case) for case in model_cases]
    explained = [e for e in entries if e["verdict"] == "divergence"]
    assert explained, f"no model case shows {settings}"
    for entry in explained:  # every divergence is explained by the planted change, or part of it
        found = [entry.get("explained_by"), *entry.get("also_explained_by", [])]
        assert settings in found, (entry["id"], found, entry["message"])
    (row,) = conventions.rows([{"framework": "planted", "framework_version": "0", "device": "cpu",
                                "cases": entries}])
    (key, value), = settings.items()
    facts = {f: v for f, v in row["facts"].items() if f.replace(".", "_").startswith(key.replace(".", "_"))
             or f.startswith(key + ".")}
    assert facts and set(facts.values()) == {value}, (facts, row["facts"])


def test_a_dropout_that_keeps_the_wrong_share_inside_a_model_is_caught_by_its_mask(model_cases: list[Any]) -> None:
    """The reference computes what follows a random dropout from the units the framework
    kept; the masks are then checked by their properties, observed or not."""
    case = next(c for c in model_cases if c.id == "model/forgotten_eval::test_batches_left_in_training")
    assert all("drop1.mask" in s.observe for s in case.steps if s.action == "forward")
    result = verdict_of(planted({"dropout.rate_meaning": "keep"}), case)  # keeps 20%, not 80%
    assert result["verdict"] == "divergence" and "drop1.mask" in result["divergent_quantities"]
    assert result["explained_by"] == {"dropout.rate_meaning": "keep"}
