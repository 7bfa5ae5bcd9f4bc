"""The report's snippets rebuild a case's exact inputs (conformance.report.snippets, from
``Case.program()``): a generated input through the same numpy calls with the spec's seed, a
literal one from its values or its array file, rounded to the case's dtype as the kit rounds
it and converted as the framework's adapter converts it.

Without a framework, the snippet's numpy lines are run here and must give the case's arrays
bit for bit. With one, the whole snippet runs in a subprocess (one per framework) and must
print exactly what the kit's adapter observed for the same case."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from conformance.model import INLINE_VALUES_MAX, Case
from conformance.report.snippets import snippet
from conformance.spec import load_file

LITERAL = np.random.default_rng(11).normal(0.2, 1.3, (6, 3))
LONG = np.random.default_rng(12).normal(size=(INLINE_VALUES_MAX // 2 + 1, 2))  # over the inline bound
SPEC = """\
conformance_spec: 1
cases:
  - name: seeded
    areas: [bn.running_update]
    dtype: {dtype}
    layer: {{kind: batch_norm, update_weight: 0.2}}
    inputs:
      a: {{shape: [4, 3, 2, 2], seed: 21, distribution: normal, mean: 0.5, std: 2.0}}
      b: {{shape: [4, 3, 2, 2], seed: 22, distribution: uniform, low: -1.0, high: 3.0}}
      c: {{shape: [4, 3, 2, 2], distribution: constant, value: 0.25}}
    steps: [{{train: a}}, {{train: b}}, {{eval: c}}]
  - name: literal
    areas: [bn.running_update]
    dtype: {dtype}
    layer: {{kind: batch_norm, scale: [0.5, 1.5, 2.0], shift: [0.1, -0.2, 0.3], running_mean: [0.1, 0.2, 0.3],
             running_var: [1.5, 0.5, 2.0]}}
    inputs:
      x: {{file: vectors.npz, key: x}}
      g: {{values: [[1.0, -2.0, 0.5], [0.25, 3.0, -1.0], [2.0, 1.0, 0.0], [-1.5, 0.5, 1.0], [1.0, 1.0, 1.0], [0.0, 2.0, -3.0]]}}
    steps:
      - {{train: x, grad_output: g, observe: [output, grad_input, grad_scale, grad_shift, running_mean, running_var]}}
      - {{eval: x}}
  - name: long
    areas: [bn.running_update]
    dtype: {dtype}
    layer: {{kind: batch_norm}}
    inputs:
      x: {{file: long.npy}}
    steps: [{{train: x}}]
"""


def write_spec(folder: Path, dtype: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    np.savez(folder / "vectors.npz", x=LITERAL)
    np.save(folder / "long.npy", LONG)
    path = folder / f"inputs_{dtype}.yaml"
    path.write_text(SPEC.format(dtype=dtype))
    return path


def cases(folder: Path, dtype: str) -> dict[str, Case]:
    return {c.name: c for c in load_file(write_spec(folder, dtype))}


def through_json(case: Case) -> dict[str, Any]:
    """The program as a results file keeps it and the report reads it back."""
    return dict(json.loads(json.dumps(case.program())))


def numpy_inputs(code: str) -> dict[str, Any]:
    """Run the numpy part of a torch snippet: every line before the layer is built, except
    those that make torch tensors."""
    lines = []
    for line in code.splitlines():
        if line.startswith("layer = "):
            break
        if "torch" not in line:
            lines.append(line)
    namespace: dict[str, Any] = {}
    exec(compile("\n".join(lines), "<snippet inputs>", "exec"), namespace)  # noqa: S102 - the kit's own snippet
    return namespace


# --- without a framework ----------------------------------------------------------------------

def test_results_keep_each_inputs_recipe_or_values(tmp_path: Path) -> None:
    found = cases(tmp_path, "float32")
    inputs = through_json(found["seeded"])["inputs"]
    assert inputs["a"] == {"shape": [4, 3, 2, 2], "distribution": "normal", "seed": 21, "mean": 0.5, "std": 2.0}
    assert inputs["b"] == {"shape": [4, 3, 2, 2], "distribution": "uniform", "seed": 22, "low": -1.0, "high": 3.0}
    assert inputs["c"] == {"shape": [4, 3, 2, 2], "distribution": "constant", "value": 0.25}
    literal = through_json(found["literal"])["inputs"]
    assert literal["x"]["file"] == "vectors.npz" and literal["x"]["key"] == "x"
    assert np.array(literal["x"]["values"], dtype=np.float32).tobytes() == LITERAL.astype(np.float32).tobytes()
    assert literal["g"]["values"][0] == [1.0, -2.0, 0.5] and literal["g"]["shape"] == [6, 3]
    long = through_json(found["long"])["inputs"]["x"]
    assert long == {"shape": list(LONG.shape), "file": "long.npy", "spec": str(tmp_path / "inputs_float32.yaml")}


@pytest.mark.parametrize("dtype", ["float64", "float32", "float16", "bfloat16"])
def test_the_snippet_makes_the_generated_inputs_bit_for_bit(tmp_path: Path, dtype: str) -> None:
    case = cases(tmp_path, dtype)["seeded"]
    code = snippet(through_json(case), "torch")
    assert "np.random.default_rng(21).normal(0.5, 2.0, (4, 3, 2, 2))" in code
    assert "np.random.default_rng(22).uniform(-1.0, 3.0, (4, 3, 2, 2))" in code
    assert "np.full((4, 3, 2, 2), 0.25)" in code
    assert ("def to_bfloat16(" in code) == (dtype == "bfloat16")
    made = numpy_inputs(code)
    for name in "abc":
        assert made[name].dtype == case.inputs[name].dtype, name
        assert made[name].tobytes() == case.inputs[name].tobytes(), name
    assert f"torch.as_tensor(np.asarray(a, dtype=np.float64)).to(torch.{dtype})" in code  # as the adapter


@pytest.mark.parametrize("dtype", ["float64", "bfloat16"])
def test_the_snippet_writes_literal_values_and_loads_long_ones(tmp_path: Path, dtype: str,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    found = cases(tmp_path, dtype)
    literal = snippet(through_json(found["literal"]), "torch")
    assert "(vectors.npz['x']), exactly" in literal
    assert repr(float(found["literal"].inputs["x"].flat[0])) in literal
    made = numpy_inputs(literal)
    for name in ("x", "g"):
        assert made[name].tobytes() == found["literal"].inputs[name].tobytes(), name
    long = snippet(through_json(found["long"]), "torch")
    assert "np.load('long.npy')" in long and "the file beside the spec" in long
    monkeypatch.chdir(tmp_path)  # as the comment says: run from the spec's folder
    assert numpy_inputs(long)["x"].tobytes() == found["long"].inputs["x"].tobytes()


def test_long_inline_values_are_read_back_with_the_kits_loader(tmp_path: Path) -> None:
    values = np.random.default_rng(13).normal(size=(INLINE_VALUES_MAX // 3 + 1, 3))
    path = tmp_path / "long_inline.yaml"
    path.write_text("conformance_spec: 1\ncases:\n  - name: inline\n    layer: {kind: batch_norm}\n"
                    f"    inputs:\n      x: {{values: {json.dumps(values.tolist())}}}\n    steps: [{{train: x}}]\n")
    (case,) = load_file(path)
    program = through_json(case)
    assert program["inputs"]["x"] == {"shape": list(values.shape), "spec": str(path), "case": "inline"}
    code = snippet(program, "torch")
    assert "from conformance.spec import load_file" in code
    assert numpy_inputs(code)["x"].tobytes() == case.inputs["x"].tobytes()


def test_an_old_results_file_with_only_shapes_still_gives_a_snippet() -> None:
    program = {"layer": {"kind": "batch_norm", "rank": 2, "num_features": 3, "update_weight": 0.1, "eps": 1e-5},
               "dtype": "float32", "inputs": {"a": [8, 3]},
               "steps": [{"mode": "train", "input": "a", "observe": ["running_mean"]}]}
    for framework in ("torch", "paddle", "tf"):
        code = snippet(program, framework)
        compile(code, framework, "exec")
        assert "rng = np.random.default_rng(0)  # random inputs: this results file keeps only the inputs' shapes" in code
        assert "a = rng.normal(size=(8, 3)).astype(np.float32)" in code


@pytest.mark.parametrize(("framework", "generator"), [
    ("torch", "torch's own generator"), ("paddle", "Paddle's own generator"), ("tf", "Keras' own generator")])
def test_dropout_snippets_say_the_masks_are_the_frameworks(framework: str, generator: str) -> None:
    program = {"layer": {"kind": "dropout", "rank": 2, "rate": 0.3, "seed": 3}, "dtype": "float32",
               "inputs": {"x": {"shape": [4, 5], "distribution": "uniform", "seed": 4, "low": 1.0, "high": 2.0}},
               "steps": [{"mode": "train", "input": "x", "observe": ["output"]}]}
    code = snippet(program, framework)
    compile(code, framework, "exec")
    assert f"# the masks come from {generator}" in code and "not the exact masks" in code
    assert "np.random.default_rng(4).uniform(1.0, 2.0, (4, 5))" in code


# --- in each framework: the snippet prints what the kit observed --------------------------------

RUNNER = r"""
import json, os, sys
import numpy as np
from conformance.adapters import BUILTIN, load_class
from conformance.program import execute
from conformance.report.snippets import snippet
from conformance.spec import load_paths

framework, folder = sys.argv[1], sys.argv[2]
adapter_class = load_class(BUILTIN[framework].target)
to_numpy = sys.modules[adapter_class.__module__]._to_numpy  # what the kit reads back
adapter = adapter_class()
cases, errors = load_paths([folder])
assert not errors, errors
os.chdir(folder)  # a snippet loads array files from the spec's folder
found = {}
for case in cases:
    run = execute(lambda: adapter.build(case.layer, case.dtype, "cpu"), case)
    if run.status != "ok":
        found[case.id] = run.status + ": " + run.message[:200]
        continue
    kit = [[q, run.steps[i][q].tolist()] for i, step in enumerate(case.steps) for q in step.observe
           if q in run.steps[i]]
    printed = []
    def capture(quantity, value):
        if framework == "torch" and hasattr(value, "detach"):
            value = value.detach()
        printed.append([quantity, np.asarray(to_numpy(value), dtype=np.float64).tolist()])
    code = snippet(json.loads(json.dumps(case.program())), framework)
    exec(compile(code, case.id, "exec"), {"print": capture})
    found[case.id] = {"kit": kit, "snippet": printed}
    if framework == "paddle":
        sys.modules["paddle"].set_default_dtype("float32")  # a float64 snippet changed it
print("RESULT " + json.dumps(found))
"""


@pytest.mark.parametrize(("framework", "module", "dtypes"), [
    ("torch", "torch", ("float32", "float64", "bfloat16")),
    ("paddle", "paddle", ("float32", "float64")),
    ("tf", "tensorflow", ("float32", "float64", "bfloat16")),
])
def test_the_snippet_prints_what_the_kit_observed(tmp_path: Path, framework: str, module: str,
                                                 dtypes: tuple[str, ...]) -> None:
    if importlib.util.find_spec(module) is None:
        pytest.skip(f"{module} is not installed")
    folder = tmp_path / "specs"
    for dtype in dtypes:
        write_spec(folder, dtype)
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    done = subprocess.run([sys.executable, "-c", RUNNER, framework, str(folder)], capture_output=True,
                          text=True, timeout=600, check=False, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    found = json.loads(next(line for line in done.stdout.splitlines() if line.startswith("RESULT "))[7:])
    assert len(found) == 3 * len(dtypes)
    for case_id, result in found.items():
        assert isinstance(result, dict), f"{case_id} did not run in {framework}: {result}"
        assert result["kit"], case_id
        assert [q for q, _ in result["snippet"]] == [q for q, _ in result["kit"]], case_id
        for (quantity, printed), (_, observed) in zip(result["snippet"], result["kit"]):
            assert np.array_equal(np.array(printed), np.array(observed)), (case_id, quantity)
