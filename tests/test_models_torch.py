"""Model cases on the torch adapter (conformance/adapters/torch_model.py), judged in-process
against the reference. Every expectation below was measured on torch 2.13 CPU first; each
comment says what torch does."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("torch")

from helpers import cases_from, run_of, series, verdict_of

from conformance.adapters.torch import TorchAdapter
from conformance.model import Case
from conformance.program import CaseRun

ADAPTER = TorchAdapter()

HEAD = """
defaults:
  dtype: float32
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


def case_of(text: str) -> Case:
    (case,) = cases_from(HEAD + text)
    return case


def measured(case: Case) -> CaseRun:
    """The torch run of ``case``: what each step observed."""
    return run_of(ADAPTER, case)


# --- entries and the mode switch -------------------------------------------------------------


def test_train_eval_call_and_switch_conform() -> None:
    case = case_of("""
  - name: entries
    observe: [output, bn1.training, drop1.training, bn1.running_mean, bn1.batch_count]
    steps: [{train: x}, {eval: y}, {call: x}, {switch: train}, {call: y}, {switch: eval}, {call: x}]
""")
    assert verdict_of(ADAPTER, case)["verdict"] == "conforms"
    run = measured(case)
    # train() then eval() reach the batch norm; a plain call runs in the mode last switched to
    assert series(run, "bn1.training") == [1.0, 0.0, 0.0, 0.0, 1.0, 1.0, 0.0]
    assert series(run, "bn1.batch_count") == [1.0, 1.0, 1.0, 1.0, 2.0, 2.0, 2.0]


def test_a_plain_call_runs_in_the_current_mode() -> None:
    # a torch call after train() trains (statistics move); a reference whose plain call always
    # infers differs exactly as torch's documented model.call_mode=current
    case = case_of("""
  - name: call_after_training
    reference: {model.call_mode: inference}
    observe: [output, bn1.training, bn1.running_mean]
    steps: [{train: x}, {call: y}]
""")
    result = verdict_of(ADAPTER, case)
    assert result["verdict"] == "convention"
    assert result["explained_by"] == {"model.call_mode": "current"}
    assert series(measured(case), "bn1.training") == [1.0, 1.0]


def test_predict_is_unsupported() -> None:
    case = case_of("""
  - name: predict
    steps: [{train: x}, {predict: y}]
""")
    result = verdict_of(ADAPTER, case)
    assert result["verdict"] == "unsupported"
    assert "no predict entry" in result["message"] and "model.eval()" in result["message"]


# --- train_step ------------------------------------------------------------------------------


def test_train_step_updates_parameters_and_statistics() -> None:
    case = case_of("""
  - name: steps
    observe: [output, fc1.weight, fc1.bias, bn1.scale, bn1.shift, fc2.weight, bn1.running_mean, bn1.running_var]
    steps: [{eval: x}, {switch: train}, {train_step: x, grad_output: g, lr: 0.1}, {train_step: y, grad_output: g, lr: 0.1}]
""")
    assert verdict_of(ADAPTER, case)["verdict"] == "conforms"
    run = measured(case)
    before, after = run.steps[1], run.steps[3]
    for quantity in ("fc1.weight", "bn1.scale", "bn1.shift", "fc2.weight", "bn1.running_mean"):
        assert not np.allclose(before[quantity], after[quantity]), quantity
    # a bias right before a training batch norm gets a zero gradient (the batch mean cancels it)
    np.testing.assert_allclose(before["fc1.bias"], after["fc1.bias"], atol=1e-6)


def test_train_step_runs_in_the_current_mode() -> None:
    # the hand-written step after eval(): batch norm on its running statistics, no update,
    # but the weights move; a reference whose step always trains differs exactly as torch's
    # documented model.train_step_mode=current
    text = """
  - name: step_after_eval
    observe: [output, bn1.training, drop1.training, bn1.running_mean, fc1.weight]
    steps: [{train: x}, {eval: y}, {train_step: x, grad_output: g, lr: 0.1}]
"""
    case = case_of(text)
    assert verdict_of(ADAPTER, case)["verdict"] == "conforms"
    run = measured(case)
    assert series(run, "bn1.training")[2] == 0.0 and series(run, "drop1.training")[2] == 0.0
    np.testing.assert_array_equal(run.steps[1]["bn1.running_mean"], run.steps[2]["bn1.running_mean"])
    assert not np.allclose(run.steps[1]["fc1.weight"], run.steps[2]["fc1.weight"])
    result = verdict_of(ADAPTER, case_of(text + "    reference: {model.train_step_mode: train}\n"))
    assert result["verdict"] == "convention"
    assert result["explained_by"] == {"model.train_step_mode": "current"}


# --- mc_dropout ------------------------------------------------------------------------------


def test_mc_dropout_draws_new_masks_and_keeps_the_statistics() -> None:
    case = case_of("""
  - name: mc
    observe: [output, bn1.training, drop1.training, bn1.running_mean, bn1.running_var]
    steps: [{train: x}, {mc_dropout: y}, {mc_dropout: y}]
    expect: {masks: {different: [[1, 2]]}}
""")
    assert verdict_of(ADAPTER, case)["verdict"] == "conforms"
    run = measured(case)
    # eval() on the model, train() on the dropout modules: dropout on, batch norm inferring
    assert series(run, "bn1.training") == [1.0, 0.0, 0.0]
    assert series(run, "drop1.training") == [1.0, 1.0, 1.0]
    assert not np.array_equal(run.steps[1]["drop1.mask"], run.steps[2]["drop1.mask"])
    for quantity in ("bn1.running_mean", "bn1.running_var"):
        np.testing.assert_array_equal(run.steps[0][quantity], run.steps[2][quantity])


# --- freeze ----------------------------------------------------------------------------------


@pytest.mark.parametrize("via", ["mode", "default"])
def test_freeze_is_eval_on_the_module_and_the_next_train_undoes_it(via: str) -> None:
    case = case_of(f"""
  - name: freeze
    observe: [output, bn1.training, bn1.running_mean]
    steps: [{{train: x}}, {{freeze: bn1, via: {via}}}, {{call: y}}, {{train: y}}]
""")
    result = verdict_of(ADAPTER, case)
    assert result["verdict"] == "conforms"
    run = measured(case)
    # frozen: the call infers and leaves the statistics; model.train() resets the BN's mode
    assert series(run, "bn1.training") == [1.0, 1.0, 0.0, 1.0]
    np.testing.assert_array_equal(run.steps[0]["bn1.running_mean"], run.steps[2]["bn1.running_mean"])
    assert not np.allclose(run.steps[2]["bn1.running_mean"], run.steps[3]["bn1.running_mean"])


def test_freeze_via_flag_is_unsupported() -> None:
    result = verdict_of(ADAPTER, case_of("""
  - name: freeze_flag
    steps: [{train: x}, {freeze: bn1, via: flag}, {call: y}]
"""))
    assert result["verdict"] == "unsupported"
    assert "no flag that freezes batch-norm statistics" in result["message"]


# --- call-site flags and functional forms ----------------------------------------------------

FUNCTIONAL = """
    model:
      kind: container
      children:
        - {kind: linear, name: fc1, weight: {shape: [5, 4], seed: 4}}
        - {kind: batch_norm, name: bn1, call: functional, training: mode, update_weight: 0.3}
        - {kind: dropout, name: drop1, rate: 0.5, seed: 6, call: functional, training: "true"}
        - {kind: batch_norm, name: bn2, call: functional, training: "false", running_mean: [0.5, 0, 0, 0, 0]}
        - {kind: dropout, name: drop2, rate: 0.5, call: functional, training: "false"}
        - {kind: linear, name: fc2, weight: {shape: [3, 5], seed: 7}}
"""


def test_functional_flags_are_what_the_call_computes() -> None:
    case = case_of("""
  - name: functional_flags
    observe: [output, bn1.training, bn1.running_mean, drop1.training, bn2.training, bn2.running_mean, drop2.training]
    steps: [{train: x}, {eval: y}, {train_step: x, grad_output: g, lr: 0.1}]
""" + FUNCTIONAL)
    assert verdict_of(ADAPTER, case)["verdict"] == "conforms"
    run = measured(case)
    # training=self.training follows the container; literal flags hold in every entry
    assert series(run, "bn1.training") == [1.0, 0.0, 0.0]
    assert series(run, "drop1.training") == [1.0, 1.0, 1.0]
    assert series(run, "bn2.training") == [0.0, 0.0, 0.0]
    assert series(run, "drop2.training") == [0.0, 0.0, 0.0]
    np.testing.assert_array_equal(run.steps[2]["bn2.running_mean"], [0.5, 0, 0, 0, 0])


def test_functional_forms_without_a_flag_use_their_defaults() -> None:
    text = """
  - name: omitted
    observe: [output, bn1.running_mean, drop1.training]
    steps: [{train: x}, {eval: y}]
    model:
      kind: container
      children:
        - {kind: linear, name: fc1, weight: {shape: [5, 4], seed: 4}}
        - {kind: batch_norm, name: bn1, call: functional}
        - {kind: dropout, name: drop1, rate: 0.5, seed: 6, call: functional}
        - {kind: linear, name: fc2, weight: {shape: [3, 5], seed: 7}}
"""
    case = case_of(text)
    assert verdict_of(ADAPTER, case)["verdict"] == "conforms"
    run = measured(case)
    # F.dropout drops in an eval() model (training=True by default), F.batch_norm never
    # updates in a training one (training=False); no flag, so no training record
    assert (run.steps[1]["drop1.mask"] == 0).any()
    np.testing.assert_array_equal(run.steps[0]["bn1.running_mean"], np.zeros(5))
    assert series(run, "drop1.training") == [None, None]
    swapped = text + ('    reference: {functional.dropout_default_training: "false", '
                      'functional.batch_norm_default_training: "true"}\n')
    result = verdict_of(ADAPTER, case_of(swapped))
    assert result["verdict"] == "convention"
    assert result["explained_by"] == {"functional.dropout_default_training": "true",
                                      "functional.batch_norm_default_training": "false"}


@pytest.mark.parametrize(("child", "what"), [
    ("- {kind: dropout, name: drop1, rate: 0.5, training: \"true\"}", "the dropout layer 'drop1'"),
    ("- {kind: sequential, name: body, training: \"false\", children: [{kind: batch_norm, name: bn1}]}",
     "the sub-model 'body'"),
])
def test_a_flag_on_a_module_child_is_unsupported(child: str, what: str) -> None:
    result = verdict_of(ADAPTER, case_of(f"""
  - name: module_flag
    steps: [{{train: x}}]
    model:
      kind: container
      children:
        - {{kind: linear, name: fc1, weight: {{shape: [5, 4], seed: 4}}}}
        {child}
"""))
    assert result["verdict"] == "unsupported"
    assert "torch modules take no training argument" in result["message"] and what in result["message"]


def test_a_mode_flag_on_a_module_child_is_a_plain_call() -> None:
    case = case_of("""
  - name: module_mode
    observe: [output, bn1.training, drop1.training, bn1.running_mean]
    steps: [{train: x}, {eval: y}, {train: y}]
    model:
      kind: container
      children:
        - {kind: linear, name: fc1, weight: {shape: [5, 4], seed: 4}}
        - {kind: batch_norm, name: bn1, training: mode}
        - {kind: sequential, name: body, training: mode, children: [{kind: dropout, name: drop1, rate: 0.5, seed: 6}]}
""")
    assert verdict_of(ADAPTER, case)["verdict"] == "conforms"
    assert series(measured(case), "drop1.training") == [1.0, 0.0, 1.0]


# --- custom containers -----------------------------------------------------------------------

CONTAINER = """
    observe: [output, bn1.training, drop1.training, bn2.training, bn1.running_mean]
    steps: [{{train: x}}, {{eval: y}}, {{mc_dropout: y}}]
    model:
      kind: sequential
      children:
        - {{kind: linear, name: fc1, weight: {{shape: [5, 4], seed: 4}}}}
        - kind: container
          name: body
          override_mode_switch: {override}
          children:
            - {{kind: batch_norm, name: bn1}}
            - {{kind: dropout, name: drop1, rate: 0.5, seed: 6}}
        - {{kind: batch_norm, name: bn2}}
"""


def test_a_custom_container_passes_the_switch_on() -> None:
    case = case_of("  - name: delegates" + CONTAINER.format(override="false"))
    assert verdict_of(ADAPTER, case)["verdict"] == "conforms"
    assert series(measured(case), "bn1.training") == [1.0, 0.0, 0.0]


def test_a_container_overriding_train_keeps_its_children_training() -> None:
    case = case_of("  - name: overrides" + CONTAINER.format(override="true"))
    assert verdict_of(ADAPTER, case)["verdict"] == "conforms"
    run = measured(case)
    # eval() stops at the overriding container: bn1 keeps training (and updating, in the MC
    # dropout passes too), bn2 beside it infers
    assert series(run, "bn1.training") == [1.0, 1.0, 1.0]
    assert series(run, "bn2.training") == [1.0, 0.0, 0.0]
    assert not np.allclose(run.steps[1]["bn1.running_mean"], run.steps[2]["bn1.running_mean"])


# --- leaf options, state, dtypes ------------------------------------------------------------


def test_channels_last_batch_norm_and_channel_dropout() -> None:
    case = case_of("""
  - name: images_last
    inputs:
      im: {shape: [4, 3, 3, 2], seed: 11}
    observe: [output, bn1.running_mean, bn1.running_var, drop1.training]
    steps: [{train: im}, {train: im}, {eval: im}]
    model:
      kind: sequential
      children:
        - {kind: batch_norm, name: bn1, channel_axis: last, scale: [1.0, 2.0]}
        - {kind: dropout, name: drop1, rate: 0.5, seed: 6, granularity: channel, channel_axis: last}
""")
    assert verdict_of(ADAPTER, case)["verdict"] == "conforms"
    assert measured(case).steps[0]["drop1.mask"].shape == (4, 3, 3, 2)  # the mask in the input's layout


def test_cumulative_stateless_and_untrainable_batch_norms() -> None:
    case = case_of("""
  - name: options
    observe: [output, bn1.running_mean, bn1.batch_count, bn2.scale, bn2.shift, fc2.weight]
    steps: [{train_step: x, grad_output: g, lr: 0.5}, {train_step: y, grad_output: g, lr: 0.5}, {eval: x}]
    model:
      kind: sequential
      children:
        - {kind: linear, name: fc1, weight: {shape: [3, 4], seed: 4}}
        - {kind: batch_norm, name: bn1, update: cumulative}
        - {kind: batch_norm, name: bn2, running_stats: false, trainable: false, scale: [2.0, 1.0, 0.5]}
        - {kind: linear, name: fc2, weight: {shape: [3, 3], seed: 7}, bias: false}
""")
    assert verdict_of(ADAPTER, case)["verdict"] == "conforms"
    run = measured(case)
    assert series(run, "bn1.batch_count") == [1.0, 2.0, 2.0]
    np.testing.assert_array_equal(run.steps[1]["bn2.scale"], [2.0, 1.0, 0.5])  # requires_grad=False
    assert "bn2.running_mean" not in run.steps[0]  # track_running_stats=False keeps none


def test_reset_of_module_and_functional_statistics() -> None:
    case = case_of("""
  - name: reset
    observe: [output, bn1.running_mean, bn1.batch_count, bn2.running_mean, bn2.running_var]
    steps: [{train: x}, {reset: running_stats}, {eval: y}]
    model:
      kind: container
      children:
        - {kind: linear, name: fc1, weight: {shape: [3, 4], seed: 4}}
        - {kind: batch_norm, name: bn1}
        - {kind: batch_norm, name: bn2, call: functional, training: mode}
""")
    assert verdict_of(ADAPTER, case)["verdict"] == "conforms"
    run = measured(case)
    assert series(run, "bn1.batch_count") == [1.0, 0.0, 0.0]
    assert "bn2.batch_count" not in run.steps[0]  # F.batch_norm counts no batches


@pytest.mark.parametrize(("dtype", "kept"), [("float16", "float16"), ("bfloat16", "float32"),
                                             ("float64", "float64")])
def test_dtypes(dtype: str, kept: str) -> None:
    case = case_of(f"""
  - name: dtype
    dtype: {dtype}
    observe: [output, bn1.running_mean, fc1.weight]
    steps: [{{train_step: x, grad_output: g, lr: 0.1}}, {{eval: y}}]
    model:
      kind: sequential
      children:
        - {{kind: linear, name: fc1, weight: {{shape: [3, 4], seed: 4}}}}
        - {{kind: batch_norm, name: bn1}}
        - {{kind: dropout, name: drop1, rate: 0.5, seed: 6}}
""")
    assert verdict_of(ADAPTER, case)["verdict"] == "conforms"
    # the framework's dtype is kept; bfloat16 is widened to float32 (exactly)
    assert measured(case).dtypes[0]["output"] == kept


# --- what torch cannot express ---------------------------------------------------------------


@pytest.mark.parametrize(("text", "words"), [
    ("""
  - name: frozen_leaf
    steps: [{train: x}]
    model: {kind: sequential, children: [{kind: batch_norm, name: bn1, frozen: true}]}
""", "torch has no flag that freezes a batch norm's statistics"),
    ("""
  - name: functional_cumulative
    steps: [{train: x}]
    model: {kind: container, children: [{kind: batch_norm, name: bn1, call: functional, update: cumulative}]}
""", "the cumulative average (momentum=None) exists only on the nn.BatchNorm modules"),
    ("""
  - name: functional_freeze
    steps: [{train: x}, {freeze: bn1, via: mode}, {call: x}]
    model: {kind: container, children: [{kind: batch_norm, name: bn1, call: functional, training: mode}]}
""", "it has no module, hence no eval() to freeze it"),
    ("""
  - name: name_clash
    steps: [{train: x}]
    model: {kind: sequential, children: [{kind: batch_norm, name: forward}]}
""", "torch cannot register 'forward'"),
], ids=["frozen_leaf", "functional_cumulative", "functional_freeze", "name_clash"])
def test_what_torch_cannot_express_is_unsupported(text: str, words: str) -> None:
    result = verdict_of(ADAPTER, case_of(text))
    assert result["verdict"] == "unsupported"
    assert words in result["message"]
