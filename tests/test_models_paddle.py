"""Model cases on the Paddle adapter (conformance.adapters.paddle_model), judged in-process
against the reference. Every expectation below was measured first (paddlepaddle 3.3.1, CPU)
and is asserted as measured; the comments say what Paddle does.

The cases state ``reference: {bn.running_var_estimator: biased}``, Paddle's documented
running variance, so that what is left to compare is the model semantics."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

pytest.importorskip("paddle")

from helpers import cases_from, run_of, verdict_of

from conformance.adapters.paddle import PaddleAdapter
from conformance.program import CaseRun

ADAPTER = PaddleAdapter()
pytestmark = [pytest.mark.filterwarnings("ignore:When training, we now always track:UserWarning"),
              pytest.mark.filterwarnings("ignore:To copy construct from a tensor:UserWarning")]  # predict_batch

SEQUENTIAL = """
defaults:
  dtype: float32
  reference: {bn.running_var_estimator: biased}
  inputs:
    x: {shape: [16, 4], seed: 1}
    y: {shape: [16, 4], seed: 2, mean: 1.0, std: 2.0}
    g: {shape: [16, 3], seed: 3}
  model:
    kind: sequential
    children:
      - {kind: linear, name: fc1, weight: {shape: [6, 4], seed: 4}, bias: {shape: [6], seed: 5}}
      - {kind: batch_norm, name: bn1, scale: [1.0, 2.0, 0.5, 1.5, 1.0, 0.8],
         shift: [0.1, 0.0, -0.2, 0.3, 0.0, 0.1]}
      - kind: sequential
        name: head
        children:
          - {kind: dropout, name: drop1, rate: 0.5, seed: 6}
          - {kind: linear, name: fc2, weight: {shape: [3, 6], seed: 7}, bias: false}
  observe: [output, bn1.training, drop1.training, bn1.running_mean, bn1.running_var]
cases:
  - name: case
"""

CONTAINER = """
cases:
  - name: case
    dtype: {dtype}
    reference: {{bn.running_var_estimator: biased}}
    inputs:
      x: {{shape: [16, 4], seed: 1}}
      y: {{shape: [16, 4], seed: 2, mean: 1.0, std: 2.0}}
      g: {{shape: [16, 3], seed: 3}}
    model:
      kind: container
      override_mode_switch: {override}
      children:
        - {{kind: linear, name: fc1, weight: {{shape: [6, 4], seed: 4}}}}
{middle}
        - {{kind: linear, name: fc2, weight: {{shape: [3, 6], seed: 7}}}}
    steps: {steps}
"""

INNER = """        - kind: container
          name: inner
          override_mode_switch: {override}
          training: {training}
          children:
            - {{kind: batch_norm, name: bn2}}
            - {{kind: dropout, name: drop2, rate: 0.5, seed: 8}}"""

BN_DROP = """        - {kind: batch_norm, name: bn1}
        - {kind: dropout, name: drop1, rate: 0.5, seed: 6}"""


def sequential(steps: str, extra: str = "") -> str:
    return SEQUENTIAL + f"    steps: {steps}\n" + extra


def container(middle: str, steps: str, override: bool = False, dtype: str = "float32") -> str:
    return CONTAINER.format(middle=middle, steps=steps, override=str(override).lower(), dtype=dtype)


def judged(text: str) -> dict[str, Any]:
    (case,) = cases_from(text)
    return verdict_of(ADAPTER, case)


def observed(text: str) -> CaseRun:
    (case,) = cases_from(text)
    run = run_of(ADAPTER, case)
    assert run.status == "ok", run.message
    return run


def modes(run: CaseRun, leaf: str) -> list[float]:
    """``<leaf>.training`` at every step (NaN where the step has no record)."""
    return [float(step.get(f"{leaf}.training", np.nan)) for step in run.steps]


# --- entries and the mode switch -----------------------------------------------------------------

def test_train_eval_and_plain_calls_conform() -> None:
    text = sequential("[{train: x}, {eval: y}, {call: x}, {train: y}, {call: x}]")
    assert judged(text)["verdict"] == "conforms"
    # train()/eval() reach the dropout two containers down; a plain call keeps the mode
    assert modes(observed(text), "drop1") == [1.0, 0.0, 0.0, 1.0, 1.0]


def test_switch_without_a_call_conforms() -> None:
    text = sequential("[{switch: eval}, {call: x}, {switch: train}, {call: y}]")
    assert judged(text)["verdict"] == "conforms"
    run = observed(text)
    assert "bn1.training" not in run.steps[0]  # no call yet, so no record
    assert modes(run, "bn1")[1:] == [0.0, 0.0, 1.0]  # a switch alone keeps the last call's record


def test_predict_is_paddle_model_predict_batch_in_inference() -> None:
    text = sequential("[{train: x}, {predict: y}]")
    assert judged(text)["verdict"] == "conforms"
    assert modes(observed(text), "bn1") == [1.0, 0.0]


def test_predict_leaves_the_model_in_evaluation_mode() -> None:
    # paddle.Model.predict_batch calls network.eval() and does not switch back: the next plain
    # call infers, where the reference's predict leaves the mode as it was
    # (model.predict_switches=true, which Paddle does not document); a plain call before
    # predict trains, so "every plain call infers" (model.call_mode=inference) does not fit
    text = sequential("[{train: x}, {call: x}, {predict: y}, {call: x}]")
    result = judged(text)
    assert result["verdict"] == "divergence"
    assert result["explained_by"] == {"model.predict_switches": "true"}
    assert modes(observed(text), "drop1") == [1.0, 1.0, 0.0, 0.0]


# --- training step -------------------------------------------------------------------------------

TRAIN_STEP_OBSERVES = ("[output, fc1.weight, fc1.bias, fc2.weight, bn1.scale, bn1.shift, "
                       "bn1.running_mean, bn1.running_var, bn1.training]")


def test_train_step_updates_every_parameter_and_the_statistics() -> None:
    text = sequential(f"[{{train: x}}, {{train_step: y, grad_output: g, lr: 0.1, observe: {TRAIN_STEP_OBSERVES}}}, "
                      "{eval: x}]")
    assert judged(text)["verdict"] == "conforms"  # values: the reference's SGD step
    run = observed(text)
    before, after = run.steps[0], run.steps[1]
    for quantity in ("bn1.running_mean", "bn1.running_var"):
        assert not np.allclose(before[quantity], after[quantity])  # a training-mode forward
    (case,) = cases_from(text)
    initial = np.asarray(case.layer.leaf("fc1").layer.weight)  # type: ignore[union-attr]
    assert not np.allclose(after["fc1.weight"], initial)  # reported (out, in), moved by SGD


def test_train_step_runs_in_the_current_mode() -> None:
    # by hand, without train(): after eval() the step normalises with the running statistics
    # and leaves them, and dropout is off (model.train_step_mode=current)
    text = sequential("[{train: x}, {eval: y}, {train_step: y, grad_output: g, lr: 0.1, "
                      "observe: [output, fc1.weight, bn1.scale, bn1.running_mean, bn1.training, drop1.training]}]")
    assert judged(text)["verdict"] == "conforms"
    run = observed(text)
    assert modes(run, "bn1")[2] == 0.0 and modes(run, "drop1")[2] == 0.0
    np.testing.assert_array_equal(run.steps[1]["bn1.running_mean"], run.steps[2]["bn1.running_mean"])


def test_train_step_with_batch_norm_variants() -> None:
    # trainable: false (stop_gradient scale/shift), affine: false, running_stats: false
    # (use_global_stats=False), frozen: true (use_global_stats=True), as module layers
    middle = """        - {kind: batch_norm, name: bn1, trainable: false, scale: [1, 2, 1, 1, 1, 0.5]}
        - {kind: batch_norm, name: bn2, affine: false}
        - {kind: batch_norm, name: bn3, running_stats: false}
        - {kind: batch_norm, name: bn4, frozen: true, running_mean: [0.1, 0, 0, 0, 0, 0.2]}"""
    steps = ("[{train: x}, {train_step: y, grad_output: g, lr: 0.1, observe: [output, bn1.scale, "
             "bn1.shift, bn2.running_mean, bn3.running_mean, bn4.running_mean, fc1.weight]}, {eval: x}]")
    assert judged(container(middle, steps))["verdict"] == "conforms"


# --- Monte Carlo dropout, freezing, reset ----------------------------------------------------------

def test_mc_dropout_draws_new_masks_and_leaves_the_statistics() -> None:
    text = sequential("[{train: x}, {mc_dropout: y}, {mc_dropout: y}, {eval: y}]",
                      "    expect: {masks: {different: [[1, 2]]}}\n")
    assert judged(text)["verdict"] == "conforms"
    run = observed(text)
    assert not np.array_equal(run.steps[1]["drop1.mask"], run.steps[2]["drop1.mask"])
    np.testing.assert_array_equal(run.steps[0]["bn1.running_mean"], run.steps[2]["bn1.running_mean"])
    assert modes(run, "bn1") == [1.0, 0.0, 0.0, 0.0] and modes(run, "drop1") == [1.0, 1.0, 1.0, 0.0]


def test_mc_dropout_leaves_a_functional_dropout_to_its_flag() -> None:
    # drop1 is functional with training=self.training (off after model.eval()), drop2 a layer
    middle = """        - {kind: batch_norm, name: bn1}
        - {kind: dropout, name: drop1, rate: 0.5, seed: 6, call: functional, training: mode}
        - {kind: dropout, name: drop2, rate: 0.5, seed: 6}"""
    text = container(middle, "[{train: x}, {mc_dropout: y}, {mc_dropout: y}]")
    assert judged(text)["verdict"] == "conforms"
    run = observed(text)
    assert modes(run, "drop1") == [1.0, 0.0, 0.0] and modes(run, "drop2") == [1.0, 1.0, 1.0]


@pytest.mark.parametrize("via", ["mode", "default"])
def test_a_freeze_by_eval_is_undone_by_model_train(via: str) -> None:
    # bn1.eval() holds for plain calls, model.train() switches it back
    # (model.freeze_survives_mode_switch=false)
    text = sequential(f"[{{train: x}}, {{freeze: bn1, via: {via}}}, {{call: y}}, {{train: y}}]")
    assert judged(text)["verdict"] == "conforms"
    assert modes(observed(text), "bn1") == [1.0, 1.0, 0.0, 1.0]


def test_a_freeze_by_use_global_stats_survives_model_train() -> None:
    # _use_global_stats=True on the live layer takes effect: the layer stays in training mode
    # but normalises with, and no longer updates, its running statistics
    text = sequential("[{train: x}, {freeze: bn1, via: flag}, {train: y}, {eval: x}, {train: x}]")
    assert judged(text)["verdict"] == "conforms"
    run = observed(text)
    assert modes(run, "bn1")[2] == 1.0
    np.testing.assert_array_equal(run.steps[0]["bn1.running_mean"], run.steps[4]["bn1.running_mean"])


def test_a_training_step_on_a_frozen_batch_norm() -> None:
    text = sequential("[{train: x}, {freeze: bn1, via: flag}, {train_step: y, grad_output: g, lr: 0.1, "
                      "observe: [output, bn1.running_mean, bn1.scale, fc1.weight]}]")
    assert judged(text)["verdict"] == "conforms"


def test_reset_running_stats() -> None:
    text = sequential("[{train: x}, {reset: running_stats}, {train: y}]")
    assert judged(text)["verdict"] == "conforms"
    np.testing.assert_array_equal(observed(text).steps[1]["bn1.running_mean"], np.zeros(6))


# --- custom containers -----------------------------------------------------------------------------

def test_a_custom_container_delegates_its_mode_switch() -> None:
    assert judged(container(BN_DROP, "[{train: x}, {eval: y}, {call: x}]"))["verdict"] == "conforms"
    nested = INNER.format(override="false", training="omitted")
    assert judged(container(nested, "[{train: x}, {eval: y}]"))["verdict"] == "conforms"


def test_an_override_at_the_root_switches_nothing_below() -> None:
    text = container(BN_DROP, "[{train: x}, {eval: y}, {call: x}]", override=True)
    assert judged(text)["verdict"] == "conforms"
    assert modes(observed(text), "drop1") == [1.0, 1.0, 1.0]  # eval() on the root set its own mode only


def test_an_override_below_the_root_is_bypassed() -> None:
    # Layer.eval() sets .training on every sublayer directly instead of calling their eval():
    # the overriding container's children are switched anyway (model.override_respected=false,
    # which the Layer page's "this layer and all its sublayers" says: documented)
    text = container(INNER.format(override="true", training="omitted"), "[{train: x}, {eval: y}]")
    result = judged(text)
    assert result["verdict"] == "convention", result["message"]
    assert result["explained_by"] == {"model.override_respected": "false"}
    assert modes(observed(text), "drop2") == [1.0, 0.0]


def test_a_mode_flag_on_a_layer_is_a_plain_call() -> None:
    text = container("        - {kind: batch_norm, name: bn1, training: mode}", "[{train: x}, {eval: y}]")
    assert judged(text)["verdict"] == "conforms"


# --- functional forms ------------------------------------------------------------------------------

FUNCTIONAL = {
    "dropout_true_in_eval": ("dropout", '"true"', "[{eval: x}, {eval: y}]"),
    "dropout_false_in_train": ("dropout", '"false"', "[{train: x}]"),
    "dropout_mode": ("dropout", "mode", "[{train: x}, {eval: y}]"),
    "dropout_omitted_drops": ("dropout", "omitted", "[{eval: x}, {train: y}]"),
    "batch_norm_true_in_eval": ("batch_norm", '"true"', "[{eval: x}, {eval: y}]"),
    "batch_norm_false_in_train": ("batch_norm", '"false"', "[{train: x}]"),
    "batch_norm_mode": ("batch_norm", "mode", "[{train: x}, {eval: y}]"),
    "batch_norm_omitted_infers": ("batch_norm", "omitted", "[{train: x}, {eval: y}]"),
    "batch_norm_mode_step": ("batch_norm", "mode", ("[{train: x}, {train_step: y, grad_output: g, lr: 0.1, "
                                                    "observe: [output, bn1.scale, bn1.shift, bn1.running_mean, "
                                                    "fc1.weight]}]")),
    "batch_norm_frozen_by_flag": ("batch_norm", "mode", "[{train: x}, {freeze: bn1, via: flag}, {train: y}]"),
}


def functional(kind: str, flag: str, steps: str) -> str:
    name = "drop1" if kind == "dropout" else "bn1"
    extra = ", rate: 0.5, seed: 6" if kind == "dropout" else ", scale: [1, 2, 1, 1, 1, 0.5]"
    return container(f"        - {{kind: {kind}, name: {name}{extra}, call: functional, training: {flag}}}", steps)


@pytest.mark.parametrize("name", sorted(FUNCTIONAL))
def test_functional_forms_conform(name: str) -> None:
    # paddle.nn.functional.dropout defaults to training=True, batch_norm to training=False:
    # the reference's canonical defaults; explicit flags and self.training are honoured
    assert judged(functional(*FUNCTIONAL[name]))["verdict"] == "conforms"


def test_a_functional_call_without_a_flag_records_no_mode() -> None:
    run = observed(functional("dropout", "omitted", "[{eval: x}]"))
    assert "drop1.training" not in run.steps[0]  # Paddle's default decided: not known here
    assert np.nanmean(run.steps[0]["drop1.mask"]) < 1.0  # it dropped, in an eval() model


def test_functional_batch_norm_variants_in_a_training_step() -> None:
    middle = """        - {kind: batch_norm, name: bn1, trainable: false, call: functional, training: mode, scale: [1, 2, 1, 1, 1, 0.5]}
        - {kind: batch_norm, name: bn2, affine: false, call: functional, training: mode}
        - {kind: batch_norm, name: bn3, running_stats: false, call: functional, training: mode}
        - {kind: batch_norm, name: bn4, frozen: true, call: functional, training: mode}"""
    steps = ("[{train: x}, {train_step: y, grad_output: g, lr: 0.1, observe: [output, bn1.scale, bn1.shift, "
             "bn2.running_mean, bn4.running_mean, fc1.weight]}, {eval: x}]")
    assert judged(container(middle, steps))["verdict"] == "conforms"


IMAGES = """
cases:
  - name: case
    reference: {bn.running_var_estimator: biased}
    inputs:
      x: {shape: [4, 3, 2, 5], seed: 1}
      g: {shape: [4, 3, 2, 2], seed: 3}
    model:
      kind: KIND
      children:
        - {kind: batch_norm, name: bn1}
        - {kind: dropout, name: drop1, rate: 0.5, seed: 6, granularity: channel CALL}
        - {kind: batch_norm, name: bn2, channel_axis: last CALL}
        - {kind: linear, name: fc1, weight: {shape: [2, 5], seed: 4}}
    steps: [{train: x}, {train_step: x, grad_output: g, lr: 0.1,
             observe: [output, fc1.weight, bn1.scale, bn2.shift, bn2.running_var]}, {eval: x}]
"""


@pytest.mark.parametrize(("kind", "call"), [("sequential", ""), ("container", ", call: functional, training: mode")])
def test_images_channel_dropout_and_channels_last(kind: str, call: str) -> None:
    assert judged(IMAGES.replace("KIND", kind).replace("CALL", call))["verdict"] == "conforms"


# --- what Paddle cannot express ------------------------------------------------------------------

UNSUPPORTED = {
    "submodel_flag": (container(INNER.format(override="false", training='"true"'), "[{eval: x}]"),
                      "sub-model 'inner' is called with training=True"),
    "layer_flag": (container('        - {kind: batch_norm, name: bn1, training: "false"}', "[{train: x}]"),
                   "Paddle layers take no training argument"),
    "freeze_functional_by_mode": (functional("batch_norm", "mode", "[{train: x}, {freeze: bn1, via: mode}]"),
                                  "has no mode of its own"),
    "half_linear_on_cpu": (container(BN_DROP, "[{train: x}]", dtype="float16"),
                           "no CPU kernel for matmul in float16"),
    "cumulative": (container("        - {kind: batch_norm, name: bn1, update: cumulative}", "[{train: x}]"),
                   "no cumulative average"),
}


@pytest.mark.parametrize("name", sorted(UNSUPPORTED))
def test_what_paddle_lacks_is_unsupported(name: str) -> None:
    text, words = UNSUPPORTED[name]
    result = judged(text)
    assert result["verdict"] == "unsupported"
    assert words in result["message"]
