"""Model cases on the Flax adapters, judged in-process against the reference: linen
(conformance/adapters/flax_model.py: modules with a train argument, model.apply) and NNX
(conformance/adapters/flax_nnx_model.py: train()/eval() on stateful modules). Every
expectation below was measured on flax 0.12.8 / jax 0.10.2 CPU first; each comment says what
Flax does.

Flax feeds the running variance the biased batch variance (documented, a layer convention
measured elsewhere): the cases here name it under ``reference:`` so that the model
conventions are what the verdicts are about."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("flax")
pytest.importorskip("jax")

from helpers import cases_from, run_of, series, verdict_of

from conformance.adapters.flax import FlaxAdapter
from conformance.adapters.flax_nnx import FlaxNnxAdapter
from conformance.model import Case
from conformance.program import CaseRun
from conformance.spec import load_paths

LINEN, NNX = FlaxAdapter(), FlaxNnxAdapter()
BOTH = pytest.mark.parametrize("adapter", [LINEN, NNX], ids=["linen", "nnx"])
SPECS = Path(__file__).resolve().parents[1] / "specs"

HEAD = """
defaults:
  dtype: float32
  reference: {bn.running_var_estimator: biased}
  inputs:
    x: {shape: [12, 4], seed: 1}
    y: {shape: [12, 4], seed: 2, mean: 1.0}
    g: {shape: [12, 3], seed: 3}
  model:
    kind: sequential
    children:
      - {kind: linear, name: fc1, weight: {shape: [5, 4], seed: 4}, bias: {shape: [5], seed: 5}}
      - {kind: batch_norm, name: bn1, scale: [1.5, 0.5, 1.0, 2.0, 1.0]}
      - {kind: dropout, name: drop1, rate: 0.5, seed: 6}
      - {kind: linear, name: fc2, weight: {shape: [3, 5], seed: 7}}
cases:
"""

CONTAINER = """
    model:
      kind: container
      children:
        - {kind: linear, name: fc1, weight: {shape: [5, 4], seed: 4}}
        - kind: sequential
          name: sub
          training: "%s"
          children:
            - {kind: batch_norm, name: bn1}
            - {kind: dropout, name: drop1, rate: 0.5, seed: 6}
        - {kind: linear, name: fc2, weight: {shape: [3, 5], seed: 7}}
    observe: [output, bn1.training, drop1.training, bn1.running_mean]
"""


def case_of(text: str) -> Case:
    (case,) = cases_from(HEAD + text)
    return case


def measured(adapter: FlaxAdapter, case: Case) -> CaseRun:
    return run_of(adapter, case)


# --- both APIs -----------------------------------------------------------------------------------


@BOTH
def test_train_and_eval_conform(adapter: FlaxAdapter) -> None:
    case = case_of("""
  - name: entries
    observe: [output, bn1.training, drop1.training, bn1.running_mean, bn1.running_var]
    steps: [{train: x}, {eval: y}, {train: y}, {eval: x}]
""")
    assert verdict_of(adapter, case)["verdict"] == "conforms"
    assert series(measured(adapter, case), "bn1.training") == [1.0, 0.0, 1.0, 0.0]


@BOTH
def test_train_steps_update_parameters_and_statistics(adapter: FlaxAdapter) -> None:
    # jax.grad / nnx.grad of sum(g * output), then p - lr * grad on every parameter
    case = case_of("""
  - name: steps
    observe: [output, fc1.weight, fc1.bias, bn1.scale, bn1.shift, fc2.weight, bn1.running_mean, bn1.running_var]
    steps: [{train: x}, {train_step: y, grad_output: g, lr: 0.1}, {train_step: x, grad_output: g, lr: 0.05,
            observe: [output, fc1.grad_weight, bn1.grad_scale, fc2.grad_weight]}, {eval: y}]
""")
    assert verdict_of(adapter, case)["verdict"] == "conforms"
    run = measured(adapter, case)
    for quantity in ("fc1.weight", "bn1.scale", "bn1.running_mean"):
        assert not np.allclose(run.steps[1][quantity], run.steps[0][quantity]), quantity


@BOTH
def test_mc_dropout_draws_new_masks_and_keeps_the_statistics(adapter: FlaxAdapter) -> None:
    # linen: apply(train=False, dropout=True); NNX: eval(), then the dropouts' deterministic=False
    case = case_of("""
  - name: mc
    observe: [output, bn1.training, drop1.training, bn1.running_mean, bn1.running_var]
    steps: [{train: x}, {mc_dropout: y}, {mc_dropout: y}, {eval: y}]
    expect:
      masks: {different: [[1, 2]]}
""")
    assert verdict_of(adapter, case)["verdict"] == "conforms"
    run = measured(adapter, case)
    assert series(run, "drop1.training") == [1.0, 1.0, 1.0, 0.0]
    assert series(run, "bn1.training") == [1.0, 0.0, 0.0, 0.0]
    np.testing.assert_array_equal(run.steps[0]["bn1.running_mean"], run.steps[2]["bn1.running_mean"])


@BOTH
@pytest.mark.parametrize(("flag", "bn"), [("false", 0.0), ("true", 1.0)])
def test_a_sub_model_called_in_a_fixed_mode(adapter: FlaxAdapter, flag: str, bn: float) -> None:
    # linen: sub(x, train=<flag>); NNX: nnx.view(sub, use_running_average=..., deterministic=...)
    case = case_of("""
  - name: fixed
    steps: [{train: x}, {eval: y}]
""" + CONTAINER % flag)
    assert verdict_of(adapter, case)["verdict"] == "conforms"
    assert series(measured(adapter, case), "bn1.training") == [bn, bn]


@BOTH
@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_half_precision_models(adapter: FlaxAdapter, dtype: str) -> None:
    case = case_of(f"""
  - name: typed
    dtype: {dtype}
    observe: [output, fc1.weight, bn1.scale, bn1.running_var]
    steps: [{{train: x}}, {{train_step: y, grad_output: g, lr: 0.1}}, {{eval: y}}]
""")
    assert verdict_of(adapter, case)["verdict"] == "conforms"


@BOTH
def test_float64_models_keep_float32_batch_statistics(adapter: FlaxAdapter) -> None:
    # the corpus case model/mode_propagation::float64_model: batch_stats are created in float32
    # (linen's force_float32_reductions, NNX's BatchStat), so the first update multiplies the
    # old value in float32 (0.9 -> 0.89999998) and the eval output after it is off by 1e-7
    # relative, beyond float64's tolerance
    cases, _ = load_paths([SPECS / "model" / "mode_propagation.yaml"])
    (case,) = [replace(c, reference={"bn.running_var_estimator": "biased"})
               for c in cases if c.id == "model/mode_propagation::float64_model"]
    result = verdict_of(adapter, case)
    assert result["verdict"] == "divergence"
    worst = max(c["max_rel_error"] for c in result["checks"] if not c["ok"])
    assert 1e-8 < worst < 1e-5
    # linen's update promotes them to float64 after that; NNX keeps writing float32 variables
    kept = "float64" if adapter is LINEN else "float32"
    assert run_of(adapter, case).dtypes[0]["bn2.running_var"] == kept


@BOTH
def test_functional_leaves_and_predict_are_unsupported(adapter: FlaxAdapter) -> None:
    functional = verdict_of(adapter, case_of("""
  - name: functional
    steps: [{train: x}]
    model:
      kind: container
      children:
        - {kind: linear, name: fc1, weight: {shape: [5, 4], seed: 4}}
        - {kind: dropout, name: drop1, rate: 0.5, call: functional}
"""))
    assert functional["verdict"] == "unsupported" and "has no functional dropout" in functional["message"]
    predict = verdict_of(adapter, case_of("""
  - name: predict
    steps: [{predict: x}]
"""))
    assert predict["verdict"] == "unsupported" and "no predict entry" in predict["message"]


# --- linen: the mode is an argument of each apply --------------------------------------------------


def test_linen_a_plain_call_trains_whatever_came_before() -> None:
    # apply without train: the module's default, train=True (Flax's imagenet example), so a
    # call after an inference pass trains and moves the statistics: model.call_mode=train, as
    # the adapter's table documents after that example
    case = case_of("""
  - name: call_after_eval
    observe: [output, bn1.training, bn1.running_mean]
    steps: [{train: x}, {eval: y}, {call: x}]
""")
    result = verdict_of(LINEN, case)
    assert result["verdict"] == "convention"
    assert result["explained_by"]["model.call_mode"] == "train"
    run = measured(LINEN, case)
    assert series(run, "bn1.training") == [1.0, 0.0, 1.0]
    assert not np.allclose(run.steps[1]["bn1.running_mean"], run.steps[2]["bn1.running_mean"])


def test_linen_a_training_step_always_trains() -> None:
    case = case_of("""
  - name: step_after_eval
    observe: [output, bn1.training, drop1.training, bn1.running_mean, fc2.weight]
    steps: [{train: x}, {eval: y}, {train_step: x, grad_output: g, lr: 0.1}]
""")
    result = verdict_of(LINEN, case)
    assert result["verdict"] == "convention"
    assert result["explained_by"] == {"model.train_step_mode": "train"}


def test_linen_a_freeze_is_use_running_average_and_survives_train() -> None:
    case = case_of("""
  - name: freeze
    observe: [output, bn1.training, bn1.running_mean]
    steps: [{train: x}, {freeze: bn1}, {eval: y}, {train: y}]
""")
    result = verdict_of(LINEN, case)
    assert result["verdict"] == "convention"
    assert result["explained_by"] == {"model.freeze_survives_mode_switch": "true"}
    run = measured(LINEN, case)
    np.testing.assert_array_equal(run.steps[0]["bn1.running_mean"], run.steps[3]["bn1.running_mean"])


@pytest.mark.parametrize(("text", "words"), [
    ("steps: [{switch: eval}, {call: x}]", "no mode to switch"),
    ("steps: [{train: x}, {freeze: bn1, via: mode}]", "has no mode of its own"),
])
def test_linen_has_no_mode_of_its_own(text: str, words: str) -> None:
    result = verdict_of(LINEN, case_of(f"""
  - name: no_mode
    {text}
"""))
    assert result["verdict"] == "unsupported" and words in result["message"]


# --- NNX: train()/eval() on stateful modules ---------------------------------------------------


def test_nnx_a_plain_call_and_a_training_step_run_in_the_current_mode() -> None:
    case = case_of("""
  - name: current
    observe: [output, bn1.training, drop1.training, bn1.running_mean, fc2.weight]
    steps: [{train: x}, {eval: y}, {call: x}, {train_step: x, grad_output: g, lr: 0.1}, {switch: train}, {call: y}]
""")
    assert verdict_of(NNX, case)["verdict"] == "conforms"
    assert series(measured(NNX, case), "bn1.training") == [1.0, 0.0, 0.0, 0.0, 0.0, 1.0]


def test_nnx_a_freeze_is_eval_on_the_layer_and_the_next_train_undoes_it() -> None:
    case = case_of("""
  - name: freeze
    observe: [output, bn1.training, bn1.running_mean]
    steps: [{train: x}, {freeze: bn1, via: mode}, {call: y}, {train: y}]
""")
    assert verdict_of(NNX, case)["verdict"] == "conforms"
    # (the freeze step makes no call: its record is still the training call's)
    assert series(measured(NNX, case), "bn1.training") == [1.0, 1.0, 0.0, 1.0]
    flag = verdict_of(NNX, case_of("""
  - name: flag
    steps: [{train: x}, {freeze: bn1, via: flag}]
"""))
    assert flag["verdict"] == "unsupported" and "no freeze flag apart from the mode" in flag["message"]


def test_nnx_a_nested_override_of_train_is_bypassed() -> None:
    # Module.train() is set_attributes over every nested module: a sub-container's own
    # (non-delegating) train()/eval() is never called, documented model.override_respected=false
    case = case_of("""
  - name: override
    observe: [output, bn1.training, drop1.training]
    steps: [{train: x}, {eval: y}]
    model:
      kind: sequential
      children:
        - {kind: linear, name: fc1, weight: {shape: [5, 4], seed: 4}}
        - kind: container
          name: head
          override_mode_switch: true
          children:
            - {kind: batch_norm, name: bn1}
            - {kind: dropout, name: drop1, rate: 0.5, seed: 6}
""")
    result = verdict_of(NNX, case)
    assert result["verdict"] == "convention"
    assert result["explained_by"] == {"model.override_respected": "false"}
    assert series(measured(NNX, case), "bn1.training") == [1.0, 0.0]
