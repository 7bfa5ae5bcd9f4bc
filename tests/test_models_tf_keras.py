"""Model cases on the tf_keras adapter (conformance/adapters/tf_keras_model.py: Keras 2
models), judged in-process against the reference. Every expectation below was measured on
tf_keras 2.21 / TensorFlow 2.21 CPU first; each comment says what Keras 2 does.

Keras 2's non-fused moving variance (rank-2 models) is fed the biased batch variance (a layer
convention measured elsewhere): the cases here name it under ``reference:`` so that the model
conventions are what the verdicts are about."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("tensorflow")
pytest.importorskip("tf_keras")

from helpers import cases_from, run_of, series, verdict_of

from conformance.adapters.tf_keras import TfKerasAdapter
from conformance.model import Case
from conformance.program import CaseRun

ADAPTER = TfKerasAdapter()

HEAD = """
defaults:
  dtype: float32
  reference: {bn.running_var_estimator: biased}
  inputs:
    x: {shape: [12, 4], seed: 1}
    y: {shape: [12, 4], seed: 2, mean: 1.0}
    g: {shape: [12, 3], seed: 3}
    img: {shape: [4, 3, 2, 2], seed: 8}
  model:
    kind: sequential
    children:
      - {kind: linear, name: fc1, weight: {shape: [5, 4], seed: 4}, bias: {shape: [5], seed: 5}}
      - {kind: batch_norm, name: bn1, scale: [1.5, 0.5, 1.0, 2.0, 1.0]}
      - {kind: dropout, name: drop1, rate: 0.5, seed: 6}
      - {kind: linear, name: fc2, weight: {shape: [3, 5], seed: 7}}
cases:
"""


def case_of(text: str) -> Case:
    (case,) = cases_from(HEAD + text)
    return case


def measured(case: Case) -> CaseRun:
    return run_of(ADAPTER, case)


def test_train_eval_and_predict_conform() -> None:
    case = case_of("""
  - name: entries
    observe: [output, bn1.training, drop1.training, bn1.running_mean, bn1.running_var]
    steps: [{train: x}, {eval: y}, {predict: x}, {train: y}]
""")
    assert verdict_of(ADAPTER, case)["verdict"] == "conforms"
    assert series(measured(case), "bn1.training") == [1.0, 0.0, 0.0, 1.0]


def test_a_plain_call_infers() -> None:
    # model(x) without training: the learning phase (0 outside fit) decides, inference
    case = case_of("""
  - name: call_after_training
    observe: [output, bn1.training, bn1.running_mean]
    steps: [{train: x}, {call: y}]
""")
    result = verdict_of(ADAPTER, case)
    assert result["verdict"] == "convention"
    assert result["explained_by"] == {"model.call_mode": "inference"}


def test_train_on_batch_is_one_sgd_step() -> None:
    # compile(SGD) + train_on_batch on sum(g * output): every weight and statistic is the
    # reference's. (Not float64: Keras 2 rounds the moving-average weight to float32, see
    # test_adapter_tf_keras, and the eval output after it is off by 1.8e-7 relative.)
    case = case_of("""
  - name: steps
    observe: [output, fc1.weight, fc1.bias, bn1.scale, bn1.shift, fc2.weight, bn1.running_mean, bn1.running_var]
    steps: [{train: x}, {train_step: y, grad_output: g, lr: 0.1}, {eval: y}]
""")
    assert verdict_of(ADAPTER, case)["verdict"] == "conforms"
    run = measured(case)
    assert not np.allclose(run.steps[1]["fc1.weight"], run.steps[0]["fc1.weight"])


def test_a_hard_coded_flag_stays_at_its_call() -> None:
    # Keras 2 enters a call context per layer call: after bn1(x, training=False) the plain
    # drop1(x) still gets the model's training=True and drops (Keras 3 leaks the False to it)
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
    steps: [{train: x}, {train: x}]
""")
    assert verdict_of(ADAPTER, case)["verdict"] == "conforms"
    run = measured(case)
    assert series(run, "bn1.training") == [0.0, 0.0]
    assert series(run, "drop1.training") == [1.0, 1.0]
    assert all(bool((step["drop1.mask"] == 0).any()) for step in run.steps)
    np.testing.assert_array_equal(run.steps[1]["bn1.running_mean"], np.zeros(5))


def test_a_frozen_batch_norm_keeps_its_statistics_through_training_steps() -> None:
    # trainable=False: the layer runs in inference mode and gamma and beta stay
    case = case_of("""
  - name: freeze
    observe: [output, bn1.running_mean, bn1.scale, fc1.weight]
    steps: [{train: x}, {freeze: bn1}, {train_step: y, grad_output: g, lr: 0.1}, {train: x}]
""")
    result = verdict_of(ADAPTER, case)
    assert result["verdict"] == "convention", result["message"]
    assert result["explained_by"]["model.freeze_scope"] == "layer"
    run = measured(case)
    for quantity in ("bn1.running_mean", "bn1.scale"):
        np.testing.assert_array_equal(run.steps[3][quantity], run.steps[0][quantity])


def test_channels_first_spatial_dropout_in_a_model_drops_whole_channels() -> None:
    # SpatialDropout2D's get_config() leaves data_format out; the adapter carries it over
    case = case_of("""
  - name: images
    inputs:
      img: {shape: [4, 3, 2, 2], seed: 8}
    model:
      kind: sequential
      children:
        - {kind: batch_norm, name: bn1}
        - {kind: dropout, name: drop1, rate: 0.5, seed: 6, granularity: channel}
    observe: [output, drop1.mask]
    steps: [{train: img}]
""")
    assert verdict_of(ADAPTER, case)["verdict"] in ("conforms", "convention")
    mask = measured(case).steps[0]["drop1.mask"]
    assert (mask.min(axis=(2, 3)) == mask.max(axis=(2, 3))).all()


def test_a_functional_dropout_drops_in_inference() -> None:
    # tf.nn.dropout has no training argument: it drops in an inference call too
    case = case_of("""
  - name: functional
    model:
      kind: container
      children:
        - {kind: linear, name: fc1, weight: {shape: [5, 4], seed: 4}}
        - {kind: dropout, name: drop1, rate: 0.5, seed: 6, call: functional}
        - {kind: linear, name: fc2, weight: {shape: [3, 5], seed: 7}}
    observe: [output]
    steps: [{eval: y}, {eval: y}]
    expect: {masks: {different: [[0, 1]]}}
""")
    assert verdict_of(ADAPTER, case)["verdict"] == "conforms"
    assert all(bool((step["drop1.mask"] == 0).any()) for step in measured(case).steps)


@pytest.mark.parametrize("text, words", [
    ("steps: [{train: x}, {switch: eval}, {call: x}]", "no mode to switch"),
    ("steps: [{train: x}, {freeze: bn1, via: mode}, {train: y}]", "no mode of its own"),
    ("""model:
      kind: container
      children:
        - {kind: linear, name: fc1, weight: {shape: [5, 4], seed: 4}}
        - {kind: batch_norm, name: bn1, call: functional}
    steps: [{train: x}]""", "no functional batch"),
], ids=["switch", "freeze_by_mode", "functional_batch_norm"])
def test_what_keras_2_cannot_express_is_unsupported(text: str, words: str) -> None:
    result = verdict_of(ADAPTER, case_of(f"  - name: missing\n    {text}\n"))
    assert result["verdict"] == "unsupported"
    assert words in result["message"]
