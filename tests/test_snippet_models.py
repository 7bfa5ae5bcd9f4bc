"""The report's snippets of model cases (``conformance.report.snippets``, each framework
module's ``ModelSnippet``): the model built in the framework's own code with every leaf's
parameters translated and the spec's weights set exactly, the steps in the framework's idiom,
the observed quantities printed.

Without a framework: the snippets of corpus model cases compile, name every leaf, carry the
translated momentum and the weights (W^T where the framework stores it so), and say where a
framework cannot express a step. With one: the snippets of deterministic model cases (no
dropout in a random pass) run in a subprocess per framework and print what the reference
computes for the case, under the framework's documented conventions (none for torch: it is
the reference's canonical one; Paddle's and Keras' biased running variance, Keras' plain call
that infers, ...), within the case's tolerance."""

from __future__ import annotations

import ast
import functools
import importlib
import importlib.util
import inspect
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from conformance.model import Case
from conformance.report.snippets import common, models, snippet
from conformance.spec import load_file, load_paths

SPECS = Path(__file__).resolve().parents[1] / "specs" / "model"
FRAMEWORKS = ("torch", "paddle", "tf")
MODULES = {"torch": "torch", "paddle": "paddle", "tf": "tensorflow"}

# Deterministic cases for the runs (no dropout in a random pass, or a rate of 0), covering
# nesting, containers, call-site flags, every entry, freezing, a reset, channels last, float64.
EXTRA = """\
conformance_spec: 1
defaults:
  dtype: float32
  inputs:
    x: {shape: [8, 4], seed: 1, mean: 0.5, std: 1.5}
    y: {shape: [8, 4], seed: 2, mean: -1.0}
    g: {shape: [8, 3], seed: 3}
  model:
    kind: sequential
    children:
      - {kind: linear, name: fc1, weight: {shape: [5, 4], seed: 4}, bias: {shape: [5], seed: 5}}
      - {kind: batch_norm, name: bn1, update_weight: 0.3, scale: [1.5, 0.5, 1.0, 2.0, 1.0], shift: [0.1, -0.2, 0.0, 0.3, 0.5]}
      - kind: sequential
        name: head
        children:
          - {kind: linear, name: fc2, weight: {shape: [3, 5], seed: 6}}
          - {kind: batch_norm, name: bn2, running_mean: [0.5, -0.5, 0.25]}
  observe: [output, bn1.running_mean, bn1.running_var, bn2.running_mean, bn2.running_var]
cases:
  - name: nested_training_steps
    areas: [model.entry_points]
    observe: [output, fc1.weight, fc1.bias, bn1.scale, bn1.shift, fc2.weight, bn1.running_mean, bn2.running_var]
    steps: [{train: x}, {train_step: y, grad_output: g, lr: 0.1}, {train_step: x, grad_output: g, lr: 0.05}, {eval: y}]
  - name: nested_float64
    description: Momentums exact in float32 (Paddle keeps its momentum attribute in float32).
    areas: [model.entry_points]
    dtype: float64
    model:
      kind: sequential
      children:
        - {kind: linear, name: fc1, weight: {shape: [5, 4], seed: 4}, bias: {shape: [5], seed: 5}}
        - {kind: batch_norm, name: bn1, update_weight: 0.25, scale: [1.5, 0.5, 1.0, 2.0, 1.0], shift: [0.1, -0.2, 0.0, 0.3, 0.5]}
        - kind: sequential
          name: head
          children:
            - {kind: linear, name: fc2, weight: {shape: [3, 5], seed: 6}}
            - {kind: batch_norm, name: bn2, update_weight: 0.5, running_mean: [0.5, -0.5, 0.25]}
    observe: [output, fc1.weight, bn1.scale, bn1.running_var, bn2.running_mean]
    steps: [{train: x}, {train_step: y, grad_output: g, lr: 0.1}, {eval: x}]
  - name: freeze_by_mode
    areas: [model.freeze]
    steps: [{train: x}, {freeze: bn1, via: mode}, {call: y}, {eval: x}]
  - name: freeze_by_flag
    areas: [model.freeze]
    steps: [{train: x}, {freeze: bn1, via: flag}, {train: y}, {eval: x}]
  - name: predict_after_training
    areas: [model.entry_points]
    steps: [{train: x}, {predict: y}, {eval: x}]
  - name: mc_dropout_rate_zero
    areas: [dropout.mc]
    model:
      kind: sequential
      children:
        - {kind: linear, name: fc1, weight: {shape: [5, 4], seed: 4}}
        - {kind: batch_norm, name: bn1}
        - {kind: dropout, name: drop1, rate: 0.0, seed: 7}
        - {kind: linear, name: fc2, weight: {shape: [3, 5], seed: 6}}
    observe: [output, bn1.running_mean, bn1.running_var]
    steps: [{train: x}, {mc_dropout: y}, {mc_dropout: x}, {eval: y}]
  - name: container_tied_to_its_mode
    areas: [model.call_site_flags]
    model:
      kind: container
      children:
        - {kind: linear, name: fc1, weight: {shape: [5, 4], seed: 4}}
        - {kind: batch_norm, name: bn1, training: mode}
        - kind: sequential
          name: head
          training: mode
          children:
            - {kind: linear, name: fc2, weight: {shape: [3, 5], seed: 6}}
            - {kind: batch_norm, name: bn2}
    observe: [output, bn1.running_mean, bn2.running_var]
    steps: [{train: x}, {eval: y}, {train: y}]
  - name: override_without_delegating
    areas: [model.mode_propagation]
    model:
      kind: sequential
      children:
        - {kind: linear, name: fc1, weight: {shape: [5, 4], seed: 4}}
        - {kind: batch_norm, name: bn1}
        - kind: container
          name: block
          override_mode_switch: true
          children:
            - {kind: linear, name: fc2, weight: {shape: [3, 5], seed: 6}}
            - {kind: batch_norm, name: bn2}
    observe: [output, bn1.running_mean, bn2.running_mean]
    steps: [{train: x}, {eval: y}, {eval: x}]
  - name: channels_last
    areas: [model.mode_propagation]
    inputs:
      z: {shape: [4, 5, 3], seed: 8, mean: 1.0, std: 2.0}
    model:
      kind: sequential
      children:
        - {kind: batch_norm, name: bn1, channel_axis: last, update_weight: 0.2}
        - {kind: linear, name: fc1, weight: {shape: [2, 3], seed: 9}}
    observe: [output, bn1.running_mean, bn1.running_var]
    steps: [{train: z}, {train: z}, {eval: z}]
  - name: reset_then_eval
    areas: [model.entry_points]
    steps: [{train: x}, {reset: running_stats}, {train: y}, {eval: x}]
"""

CORPUS_RUNS = ["batch_of_one::rows_of_a_fresh_model", "entry_points::steps_without_bias"]
RUNS = {
    "torch": [*CORPUS_RUNS, "functional::batch_norm_flag_true", "functional::batch_norm_flag_tied_to_the_mode",
              "functional::batch_norm_flag_false", "call_site::functional_flag_false_in_training_step",
              "snippet_models::nested_training_steps", "snippet_models::nested_float64", "snippet_models::freeze_by_mode", "snippet_models::mc_dropout_rate_zero",
              "snippet_models::container_tied_to_its_mode", "snippet_models::override_without_delegating", "snippet_models::channels_last", "snippet_models::reset_then_eval"],
    "paddle": [*CORPUS_RUNS, "functional::batch_norm_flag_true", "functional::batch_norm_flag_tied_to_the_mode",
               "functional::batch_norm_flag_false", "call_site::functional_flag_false_in_training",
               "snippet_models::nested_training_steps", "snippet_models::nested_float64", "snippet_models::freeze_by_mode", "snippet_models::freeze_by_flag",
               "snippet_models::predict_after_training", "snippet_models::mc_dropout_rate_zero", "snippet_models::container_tied_to_its_mode",
               "snippet_models::override_without_delegating", "snippet_models::channels_last", "snippet_models::reset_then_eval"],
    "tf": [*CORPUS_RUNS, "call_site::submodel_flag_false_in_training", "call_site::submodel_flag_false_in_training_step",
           "mode_propagation::freshly_built_model_trains", "snippet_models::nested_training_steps", "snippet_models::nested_float64",
           "snippet_models::freeze_by_flag", "snippet_models::predict_after_training", "snippet_models::mc_dropout_rate_zero", "snippet_models::container_tied_to_its_mode",
           "snippet_models::channels_last", "snippet_models::reset_then_eval"],
}


@functools.cache
def corpus() -> dict[str, Case]:
    cases, errors = load_paths([SPECS])
    assert not errors
    return {c.id.removeprefix("model/"): c for c in cases}


def program(case: Case) -> dict[str, Any]:
    """The program as a results file keeps it and the report reads it back."""
    return dict(json.loads(json.dumps(case.program())))


def assignments(code: str) -> dict[str, ast.Call]:
    """``name = <call>(...)`` at the snippet's top level, by name (the last one wins)."""
    found = {}
    for node in ast.parse(code).body:
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.Call):
            for target in node.targets:
                if isinstance(target, ast.Name):
                    found[target.id] = node.value
    return found


def keyword(call: ast.Call, name: str) -> Any:
    return next(ast.literal_eval(k.value) for k in call.keywords if k.arg == name)


# --- without a framework ----------------------------------------------------------------------

@pytest.mark.parametrize("framework", FRAMEWORKS)
@pytest.mark.parametrize("case_id", [
    "entry_points::training_step", "mode_propagation::custom_container_delegates",
    "mode_propagation::override_without_delegating", "mode_propagation::images_channels_first",
    "functional::batch_norm_flag_true", "functional::dropout_without_flag_in_inference",
    "call_site::submodel_flag_false_in_training", "mc_dropout::recipe_after_training",
    "freeze::freeze_then_training_steps", "entry_points::float64_training_step"])
def test_a_model_snippet_builds_every_leaf_translated(framework: str, case_id: str) -> None:
    case = corpus()[case_id]
    code = snippet(program(case), framework)
    compile(code, "<snippet>", "exec")
    built = assignments(code)
    lines = code.splitlines()
    for leaf in case.layer.leaves():  # type: ignore[union-attr]
        layer = leaf.layer
        if leaf.call == "functional":
            assert f"# {leaf.name}: the functional " in code, leaf.name
            continue
        assert leaf.name in built, f"{leaf.name} is not built in\n{code}"
        if layer.kind == "batch_norm":
            momentum = keyword(built[leaf.name], "momentum")
            w = layer.update_weight
            assert momentum == pytest.approx(w if framework == "torch" else 1 - w, abs=1e-12), leaf.name
        elif layer.kind == "linear":
            (line,) = [line for line in lines if repr(layer.weight.tolist()) in line]
            if framework == "torch":
                assert line.startswith(f"    {leaf.name}.weight.copy_(") and "W (out, in)" in line
            else:
                stored = "kernel" if framework == "tf" else "weight"
                assert line.startswith(f"{leaf.name}.{stored}.") and ").T" in line and "W^T" in line
    for block in case.layer.blocks():  # type: ignore[union-attr]
        var = "model" if block.name == case.layer.root.name else block.name  # type: ignore[union-attr]
        assert var in built, f"block {block.name} is not built"


def test_the_model_is_the_frameworks_containers() -> None:
    case = corpus()["mode_propagation::override_without_delegating"]
    torch_code = snippet(program(case), "torch")
    assert "class Block(torch.nn.Module):" in torch_code
    assert "def train(self, mode=True):  # override_mode_switch" in torch_code
    assert "model = torch.nn.Sequential(OrderedDict([('fc1', fc1), ('bn1', bn1), ('block', block)]))" in torch_code
    paddle_code = snippet(program(case), "paddle")
    assert "class Block(paddle.nn.Layer):" in paddle_code and "def eval(self):" in paddle_code
    assert "model = paddle.nn.Sequential(('fc1', fc1), ('bn1', bn1), ('block', block))" in paddle_code
    tf_code = snippet(program(case), "tf")
    assert "class Block(keras.Model):" in tf_code
    assert "# unsupported: override_mode_switch: Keras models have no train()/eval()" in tf_code
    flags = snippet(program(corpus()["call_site::submodel_flag_false_in_training"]), "tf")
    assert "x = self.backbone(x, training=False)  # training: false at the call site" in flags
    torch_flags = snippet(program(corpus()["call_site::submodel_flag_false_in_training"]), "torch")
    assert "x = self.backbone(x)  # unsupported: training=False at this call site" in torch_flags
    functional = snippet(program(corpus()["functional::batch_norm_flag_tied_to_the_mode"]), "torch")
    assert "training=self.training,  # training: mode" in functional and "x = F.batch_norm(" in functional


@pytest.mark.parametrize(("framework", "case_id", "why"), [
    ("torch", "entry_points::predict_after_training", "# unsupported: torch has no predict entry"),
    ("tf", "mode_propagation::switch_then_call", "# unsupported: Keras models have no mode to switch"),
    ("torch", "freeze::freeze_by_flag_then_train_again", "# unsupported: torch has no flag that freezes"),
    ("tf", "freeze::freeze_by_mode_then_train_again", "# unsupported: freezing bn1 through its mode"),
])
def test_a_step_the_framework_cannot_express_ends_the_snippet(framework: str, case_id: str, why: str) -> None:
    case = corpus()[case_id]
    code = snippet(program(case), framework)
    compile(code, "<snippet>", "exec")
    assert why in code
    tail = code[code.index(why):]
    assert "# step" not in tail and "print(" not in tail  # nothing after it: the case is unsupported there


def test_steps_up_to_the_first_divergence_and_only_the_quantities_in_focus() -> None:
    case = corpus()["entry_points::training_step"]
    for framework in FRAMEWORKS:
        code = snippet(program(case), framework, until_step=1, focus=["bn1.running_mean", "fc1.weight"])
        compile(code, framework, "exec")
        assert "# step 1: train_step on x (grad_output g, lr 0.1)" in code and "# step 2" not in code
        printed = [line.split(",")[0] for line in code.splitlines() if line.startswith("print(")]
        assert printed == ["print('fc1.weight'", "print('bn1.running_mean'"] * 2, framework
    keras = snippet(program(case), "tf")
    assert keras.count("model.compile(") == 1 and keras.count("model.train_on_batch(") == 2
    assert 'loss = WeightedSum(reduction="sum"' in keras


def test_names_that_clash_are_renamed(tmp_path: Path) -> None:
    spec = tmp_path / "clash.yaml"
    spec.write_text(
        "conformance_spec: 1\ncases:\n  - name: clash\n    areas: [model.entry_points]\n"
        "    inputs:\n      out: {shape: [4, 3], seed: 1}\n    model:\n      kind: sequential\n      children:\n"
        "        - {kind: linear, name: x, weight: {shape: [2, 3], seed: 2}}\n"
        "        - {kind: batch_norm, name: np}\n"
        "    steps: [{train: out}, {eval: out}]\n")
    (case,) = load_file(spec)
    for framework in FRAMEWORKS:
        code = snippet(program(case), framework)
        compile(code, framework, "exec")
        built = assignments(code)
        assert {"x_", "np_", "out_"} <= set(built), framework  # the leaves, the output: none shadows
        assert "out_ = model(out" in code


def test_every_framework_writes_the_same_model_methods() -> None:
    required = {name for name, f in vars(models.ModelSnippet).items()
                if inspect.isfunction(f) and "NotImplementedError" in inspect.getsource(f)}
    assert {"linear", "batch_norm", "dropout", "sequential", "container_parts", "call_child", "entry",
            "switch", "freeze", "reset", "shown"} <= required
    for framework in FRAMEWORKS:
        cls = importlib.import_module(f"conformance.report.snippets.{framework}").ModelSnippet
        assert issubclass(cls, models.ModelSnippet)
        assert required <= set(vars(cls)), (framework, required - set(vars(cls)))


def test_the_masks_are_said_once() -> None:
    code = snippet(program(corpus()["mc_dropout::recipe_after_training"]), "tf")
    assert code.count(common.mask_comment("").split(" from ")[0]) == 1
    assert "class MCDropout(keras.layers.Dropout):" in code and "drop1 = MCDropout(0.5, seed=64)" in code
    assert "drop1.mc = drop2.mc = True" in code and "out = model(y, training=False)" in code


# --- in each framework: the snippet prints what the reference computes --------------------------

RUNNER = r"""
import json, sys
import numpy as np
from conformance.adapters.documentation import DOCUMENTED
from conformance.checks import reference_run
from conformance.report.snippets import snippet
from conformance.spec import load_paths

framework, folders, wanted = sys.argv[1], sys.argv[2:4], json.loads(sys.argv[4])
settings = {k: d.value for k, d in DOCUMENTED[framework].items() if d.value}  # torch: none
cases, errors = load_paths(folders)
assert not errors, errors
by_id = {c.id.split("/", 1)[-1]: c for c in cases}

def value(v):
    for attr in ("detach", "numpy"):
        if hasattr(v, attr):
            v = getattr(v, attr)()
    return np.array(v, dtype=np.float64, copy=True)  # a copy: a parameter changes in place later

found = {}
for name in wanted:
    case = by_id[name]
    printed = []
    code = snippet(json.loads(json.dumps(case.program())), framework)
    try:
        exec(compile(code, name, "exec"), {"print": lambda q, v: printed.append([q, value(v).tolist()])})
    except Exception as exc:
        found[name] = f"{type(exc).__name__}: {exc}"[:300]
        continue
    finally:
        if framework == "paddle":
            sys.modules["paddle"].set_default_dtype("float32")  # a float64 snippet changed it
    reference = reference_run(case, settings)
    assert reference.status == "ok", reference.message
    expected = [[q, np.asarray(reference.steps[i][q], np.float64).tolist()] for i, step in enumerate(case.steps)
                for q in step.observe if not q.endswith((".mask", ".training"))]
    found[name] = {"snippet": [p for p in printed if not p[0].endswith(".training")], "reference": expected,
                   "atol": case.tolerance.atol, "rtol": case.tolerance.rtol}
print("RESULT " + json.dumps(found))
"""


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_the_snippet_prints_what_the_reference_computes(tmp_path: Path, framework: str) -> None:
    if importlib.util.find_spec(MODULES[framework]) is None:
        pytest.skip(f"{MODULES[framework]} is not installed")
    folder = tmp_path / "specs"
    folder.mkdir()
    (folder / "snippet_models.yaml").write_text(EXTRA)
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    done = subprocess.run([sys.executable, "-c", RUNNER, framework, str(SPECS), str(folder),
                           json.dumps(RUNS[framework])], capture_output=True, text=True, timeout=600,
                          check=False, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    found = json.loads(next(line for line in done.stdout.splitlines() if line.startswith("RESULT "))[7:])
    assert sorted(found) == sorted(RUNS[framework])
    for name, result in found.items():
        assert isinstance(result, dict), f"{name} did not run in {framework}: {result}"
        assert [q for q, _ in result["snippet"]] == [q for q, _ in result["reference"]], name
        for (quantity, printed), (_, expected) in zip(result["snippet"], result["reference"]):
            assert np.allclose(printed, expected, atol=result["atol"], rtol=result["rtol"]), (name, quantity)
