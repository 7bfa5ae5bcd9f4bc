"""Model cases on the tf adapter (conformance/adapters/tf_model.py: Keras 3 models), judged
in-process against the reference. Every expectation below was measured on TensorFlow 2.21 /
Keras 3.15.1 CPU first; each comment says what Keras does.

Keras' moving variance is fed the biased batch variance (documented, a layer convention
measured elsewhere): the cases here name it under ``reference:`` so that the model
conventions are what the verdicts are about."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("tensorflow")

from helpers import cases_from, run_of, series, verdict_of

from conformance.adapters.tf import TfAdapter
from conformance.model import Case
from conformance.program import CaseRun

ADAPTER = TfAdapter()
# Keras' documented model conventions, for cases about something else
KERAS = "{bn.running_var_estimator: biased, model.call_mode: inference, model.train_step_mode: train}"

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

SUBMODEL = """
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


def measured(case: Case) -> CaseRun:
    """The Keras run of ``case``: what each step observed."""
    return run_of(ADAPTER, case)


# --- entries ------------------------------------------------------------------------------------


def test_train_eval_and_predict_conform() -> None:
    case = case_of("""
  - name: entries
    observe: [output, bn1.training, drop1.training, bn1.running_mean, bn1.running_var]
    steps: [{train: x}, {eval: y}, {predict: x}, {train: y}]
""")
    assert verdict_of(ADAPTER, case)["verdict"] == "conforms"
    # the training argument of the outer call reaches every leaf; predict infers
    assert series(measured(case), "bn1.training") == [1.0, 0.0, 0.0, 1.0]


def test_a_plain_call_infers() -> None:
    # model(x) without training runs in inference mode, whatever call came before: Keras'
    # documented model.call_mode=inference against the reference's canonical current mode
    case = case_of("""
  - name: call_after_training
    observe: [output, bn1.training, bn1.running_mean]
    steps: [{train: x}, {call: y}, {call: x}]
""")
    result = verdict_of(ADAPTER, case)
    assert result["verdict"] == "convention"
    assert result["explained_by"] == {"model.call_mode": "inference"}
    run = measured(case)
    assert series(run, "bn1.training") == [1.0, 0.0, 0.0]
    np.testing.assert_array_equal(run.steps[2]["bn1.running_mean"], run.steps[0]["bn1.running_mean"])


def test_train_step_updates_parameters_and_statistics() -> None:
    # train_on_batch with SGD on sum(g * output): every weight, bias, gamma and beta and the
    # moving statistics after each step are the reference's
    case = case_of("""
  - name: steps
    observe: [output, fc1.weight, fc1.bias, bn1.scale, bn1.shift, fc2.weight, bn1.running_mean, bn1.running_var]
    steps: [{train: x}, {train_step: y, grad_output: g, lr: 0.1}, {train_step: x, grad_output: g, lr: 0.05}, {eval: y}]
""")
    assert verdict_of(ADAPTER, case)["verdict"] == "conforms"
    run = measured(case)
    for quantity in ("fc1.weight", "bn1.scale", "bn1.running_mean"):
        assert not np.allclose(run.steps[1][quantity], run.steps[0][quantity]), quantity


def test_train_step_always_trains() -> None:
    # after an inference call, train_on_batch still calls the model with training=True:
    # Keras' documented model.train_step_mode=train
    case = case_of("""
  - name: step_after_eval
    observe: [output, bn1.training, drop1.training, bn1.running_mean, fc2.weight]
    steps: [{train: x}, {eval: y}, {train_step: x, grad_output: g, lr: 0.1}]
""")
    result = verdict_of(ADAPTER, case)
    assert result["verdict"] == "convention"
    assert result["explained_by"] == {"model.train_step_mode": "train"}
    assert series(measured(case), "drop1.training") == [1.0, 0.0, 1.0]


@pytest.mark.parametrize("dtype, kept", [("float64", "float64"), ("float16", "float16"),
                                         ("bfloat16", "float32")])
def test_dtypes(dtype: str, kept: str) -> None:
    # the whole model in the case's dtype (bfloat16 read back widened to float32)
    case = case_of(f"""
  - name: typed
    dtype: {dtype}
    observe: [output, fc1.weight, bn1.scale, bn1.running_var]
    steps: [{{train: x}}, {{train_step: y, grad_output: g, lr: 0.1}}, {{eval: y}}]
""")
    assert verdict_of(ADAPTER, case)["verdict"] == "conforms"
    run = measured(case)
    assert {run.dtypes[-1][q] for q in ("output", "fc1.weight", "bn1.scale", "bn1.running_var")} == {kept}


# --- Monte Carlo dropout ---------------------------------------------------------------------------


def test_mc_dropout_draws_new_masks_and_keeps_the_statistics() -> None:
    case = case_of("""
  - name: mc
    observe: [output, bn1.training, drop1.training, bn1.running_mean, bn1.running_var]
    steps: [{train: x}, {mc_dropout: y}, {mc_dropout: y}, {eval: y}]
    expect: {masks: {different: [[1, 2]]}}
""")
    assert verdict_of(ADAPTER, case)["verdict"] == "conforms"
    run = measured(case)
    # MCDropout: dropout forced to training, batch norm called with training=False
    assert series(run, "drop1.training") == [1.0, 1.0, 1.0, 0.0]
    assert series(run, "bn1.training") == [1.0, 0.0, 0.0, 0.0]
    assert not np.array_equal(run.steps[1]["drop1.mask"], run.steps[2]["drop1.mask"])
    for quantity in ("bn1.running_mean", "bn1.running_var"):
        np.testing.assert_array_equal(run.steps[2][quantity], run.steps[0][quantity])


def test_mc_dropout_overrides_a_mode_flag_at_the_call_site() -> None:
    # the recipe's dropout passes training=True whatever its container gave it: a dropout
    # called with training=training (False in the recipe's call) drops; the reference leaves
    # a flag-tied dropout in the container's inference mode, and no convention says otherwise
    case = case_of("""
  - name: mc_mode_flag
    model:
      kind: container
      children:
        - {kind: linear, name: fc1, weight: {shape: [5, 4], seed: 4}}
        - {kind: batch_norm, name: bn1}
        - {kind: dropout, name: drop1, rate: 0.5, seed: 6, training: mode}
    observe: [output, bn1.training, drop1.training, bn1.running_mean]
    steps: [{train: x}, {mc_dropout: y}]
""")
    assert verdict_of(ADAPTER, case)["verdict"] == "divergence"
    assert series(measured(case), "drop1.training") == [1.0, 1.0]


# --- freezing ------------------------------------------------------------------------------------


FREEZE = """
  - name: freeze
    observe: [output, bn1.training, bn1.running_mean, bn1.running_var%s]
    steps: [{train: x}, {freeze: bn1, via: %s}, {train: y}, {train_step: x, grad_output: g, lr: 0.1}]
"""


def test_a_freeze_by_flag_survives_training_calls() -> None:
    # trainable=False: the layer still receives training=True and runs in inference mode,
    # its statistics kept through training calls and steps
    case = case_of(FREEZE % ("", "flag"))
    assert verdict_of(ADAPTER, case)["verdict"] == "conforms"
    run = measured(case)
    assert series(run, "bn1.training") == [1.0, 1.0, 1.0, 1.0]
    for quantity in ("bn1.running_mean", "bn1.running_var"):
        np.testing.assert_array_equal(run.steps[3][quantity], run.steps[0][quantity])


def test_a_frozen_batch_norm_learns_no_scale_or_shift() -> None:
    # trainable=False also takes gamma and beta out of the training step; the reference's
    # flag (Paddle's use_global_stats) freezes the statistics only: they differ in the scale
    # and shift alone, as model.freeze_scope=layer, which the Keras FAQ documents, says
    case = case_of(FREEZE % (", bn1.scale, bn1.shift", "flag"))
    result = verdict_of(ADAPTER, case)
    assert result["verdict"] == "convention", result["message"]
    assert result["divergent_quantities"] == ["bn1.scale", "bn1.shift"]
    assert result["explained_by"] == {"model.freeze_scope": "layer"}
    run = measured(case)
    for quantity in ("bn1.scale", "bn1.shift"):
        np.testing.assert_array_equal(run.steps[3][quantity], run.steps[0][quantity])


def test_the_default_freeze_is_the_same_flag() -> None:
    # Keras' own way to freeze is trainable=False: the run is the flag's, observation for
    # observation
    flag, default = (measured(case_of(FREEZE % (", bn1.scale", via))) for via in ("flag", "default"))
    assert flag.status == default.status == "ok"
    for a, b in zip(flag.steps, default.steps):
        assert a.keys() == b.keys()
        for quantity in a:
            np.testing.assert_array_equal(a[quantity], b[quantity], err_msg=quantity)


# --- call-site flags ---------------------------------------------------------------------------


@pytest.mark.parametrize("flag, steps", [
    ("false", "[{train: x}, {train_step: y, grad_output: g, lr: 0.1}]"),
    ("true", "[{call: x}, {eval: y}, {predict: x}]"),
])
def test_a_flag_on_a_submodel_is_honoured(flag: str, steps: str) -> None:
    # sub(x, training=False) inside a model that trains, sub(x, training=True) inside every
    # inference entry: the flag wins over the outer call's argument, for the whole sub-model
    case = case_of("  - name: submodel" + SUBMODEL % flag + f"    steps: {steps}\n")
    assert verdict_of(ADAPTER, case)["verdict"] == "conforms"
    want = 1.0 if flag == "true" else 0.0
    run = measured(case)
    assert series(run, "bn1.training") == series(run, "drop1.training") == [want] * len(run.steps)


def test_a_hard_coded_flag_on_a_layer_is_honoured_at_every_entry() -> None:
    case = case_of(f"""
  - name: layer_true
    reference: {KERAS}
    model:
      kind: container
      children:
        - {{kind: linear, name: fc1, weight: {{shape: [5, 4], seed: 4}}}}
        - {{kind: dropout, name: drop1, rate: 0.5, seed: 6}}
        - {{kind: batch_norm, name: bn1, training: "true"}}
        - {{kind: linear, name: fc2, weight: {{shape: [3, 5], seed: 7}}}}
    observe: [output, bn1.training, drop1.training, bn1.running_mean]
    steps: [{{call: x}}, {{eval: y}}, {{predict: x}}, {{train_step: y, grad_output: g, lr: 0.1}}]
""")
    assert verdict_of(ADAPTER, case)["verdict"] == "conforms"
    run = measured(case)
    assert series(run, "bn1.training") == [1.0, 1.0, 1.0, 1.0]
    assert series(run, "drop1.training") == [0.0, 0.0, 0.0, 1.0]


def test_a_hard_coded_flag_leaks_to_the_siblings_after_it() -> None:
    # Keras 3 keeps the training value a call resolved in one call context shared by the
    # whole pass: after bn1(x, training=False), the plain drop1(x) of the same training call
    # receives False too, and drops nothing. The reference runs drop1 in the model's mode,
    # and no convention describes the leak: a divergence
    case = case_of("""
  - name: layer_false
    model:
      kind: container
      children:
        - {kind: linear, name: fc1, weight: {shape: [5, 4], seed: 4}}
        - {kind: batch_norm, name: bn1, training: "false"}
        - {kind: dropout, name: drop1, rate: 0.5, seed: 6}
        - {kind: linear, name: fc2, weight: {shape: [3, 5], seed: 7}}
    observe: [output, bn1.training, drop1.training, bn1.running_mean]
    steps: [{train: x}, {train_step: y, grad_output: g, lr: 0.1}]
""")
    result = verdict_of(ADAPTER, case)
    assert result["verdict"] == "divergence"
    assert "drop1.training" in result["divergent_quantities"]
    run = measured(case)
    assert series(run, "drop1.training") == [0.0, 0.0]
    assert all(bool((step["drop1.mask"] == 1).all()) for step in run.steps)


def test_a_custom_container_passes_its_training_argument() -> None:
    # a keras.Model subclass: bn1(x) inherits the call's argument, drop1(x, training=training)
    case = case_of(f"""
  - name: custom
    reference: {KERAS}
    model:
      kind: container
      children:
        - {{kind: linear, name: fc1, weight: {{shape: [5, 4], seed: 4}}}}
        - {{kind: batch_norm, name: bn1}}
        - {{kind: dropout, name: drop1, rate: 0.5, seed: 6, training: mode}}
        - {{kind: linear, name: fc2, weight: {{shape: [3, 5], seed: 7}}}}
    observe: [output, bn1.training, drop1.training, bn1.running_mean]
    steps: [{{train: x}}, {{eval: y}}, {{call: x}}, {{train_step: y, grad_output: g, lr: 0.1}}]
""")
    assert verdict_of(ADAPTER, case)["verdict"] == "conforms"
    assert series(measured(case), "drop1.training") == [1.0, 0.0, 0.0, 1.0]


# --- functional forms -----------------------------------------------------------------------------


def test_a_functional_dropout_drops_in_every_call() -> None:
    # keras.random.dropout has no training argument: it drops in inference calls and predict
    # too (the reference's functional default, training), a new mask at each call; its mode
    # is not recorded (the call has none)
    case = case_of("""
  - name: functional
    model:
      kind: container
      children:
        - {kind: linear, name: fc1, weight: {shape: [5, 4], seed: 4}}
        - {kind: batch_norm, name: bn1}
        - {kind: dropout, name: drop1, rate: 0.5, seed: 6, call: functional}
        - {kind: linear, name: fc2, weight: {shape: [3, 5], seed: 7}}
    observe: [output, bn1.training, drop1.training, bn1.running_mean]
    steps: [{train: x}, {eval: y}, {eval: y}, {predict: x}]
    expect: {masks: {different: [[1, 2]]}}
""")
    assert verdict_of(ADAPTER, case)["verdict"] == "conforms"
    run = measured(case)
    assert series(run, "drop1.training") == [None] * 4
    assert all(bool((step["drop1.mask"] == 0).any()) for step in run.steps)


# --- what Keras cannot express ---------------------------------------------------------------------


@pytest.mark.parametrize("text, words", [
    ("steps: [{train: x}, {switch: eval}, {call: x}]", "no mode to switch"),
    ("steps: [{train: x}, {freeze: bn1, via: mode}, {train: y}]", "no mode of its own"),
    ("""model:
      kind: container
      override_mode_switch: true
      children:
        - {kind: linear, name: fc1, weight: {shape: [5, 4], seed: 4}}
        - {kind: batch_norm, name: bn1}
    steps: [{train: x}]""", "no train()/eval() to override"),
    ("""model:
      kind: container
      children:
        - {kind: linear, name: fc1, weight: {shape: [5, 4], seed: 4}}
        - {kind: dropout, name: drop1, rate: 0.5, seed: 6, call: functional, training: "false"}
    steps: [{train: x}]""", "keras.random.dropout takes no training flag"),
    ("""model:
      kind: container
      children:
        - {kind: linear, name: fc1, weight: {shape: [5, 4], seed: 4}}
        - {kind: batch_norm, name: bn1, call: functional}
    steps: [{train: x}]""", "no functional batch norm that keeps running statistics"),
], ids=["switch", "freeze_by_mode", "override_mode_switch", "functional_dropout_flag", "functional_batch_norm"])
def test_what_keras_cannot_express_is_unsupported(text: str, words: str) -> None:
    result = verdict_of(ADAPTER, case_of(f"  - name: missing\n    {text}\n"))
    assert result["verdict"] == "unsupported"
    assert words in result["message"]
