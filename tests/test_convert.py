"""``conformance convert``: converters under test as columns of results, run with stand-in
converters (``fake_converters``: a real subprocess planting a converter's bug into the numpy
reference layer) in real worker processes, so that these tests need no framework."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from conformance.cli import main
from conformance.results import file_stem

TESTS = Path(__file__).resolve().parent
ROOT = TESTS.parent

SPEC = """conformance_spec: 1
defaults:
  dtype: float32
  inputs:
    a: {shape: [12, 3], seed: 201, mean: 3.0, std: 2.0}
    b: {shape: [12, 3], seed: 202, mean: -1.0, std: 0.5}
    x: {shape: [40, 30], seed: 4, distribution: uniform, low: 1.0, high: 2.0}
cases:
  - name: weight_0_2
    layer: {kind: batch_norm, update_weight: 0.2}
    steps: [{train: a, observe: [output, running_mean, running_var]},
            {train: b, observe: [running_mean, running_var]}, {eval: a}]
  - name: crash
    layer: {kind: batch_norm, eps: 0.0625}
    steps: [{train: a}]
  - name: hang
    layer: {kind: batch_norm, eps: 0.125}
    steps: [{train: a}]
  - name: cannot_express
    layer: {kind: batch_norm, eps: 0.03125}
    steps: [{train: a}]
  - name: downscale_dropout
    layer: {kind: dropout, rate: 0.5, scaling: eval}
    steps: [{eval: x}]
  - name: after_the_failures
    layer: {kind: batch_norm, update_weight: 0.3}
    steps: [{train: a, observe: [running_mean]}, {train: b, observe: [output, running_var]}, {rebuild: layer}, {eval: b}]
"""


@pytest.fixture(scope="module")
def spec(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("convert") / "specs"
    folder.mkdir()
    (folder / "convert.yaml").write_text(SPEC)
    return folder / "convert.yaml"


def _convert(spec: Path, out: Path, converter: str, *extra: str) -> tuple[int, dict[str, dict[str, Any]], Path]:
    """Run ``conformance convert`` in this process (its workers are real processes); the exit
    code, the entries by case name and the results file."""
    sys.path.insert(0, str(TESTS))  # the workers and the converter get this import path
    try:
        code = main(["convert", str(spec), "-q", "--converter", f"fake_converters:{converter}",
                     "--out", str(out), *extra])
    finally:
        sys.path.remove(str(TESTS))
    files = sorted(out.glob("*.json"))
    assert len(files) == 1, files
    doc = json.loads(files[0].read_text())
    return code, {c["id"].split("::")[1]: c for c in doc["cases"]}, files[0]


@pytest.fixture(scope="module")
def runs(spec: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Each stand-in converter run once on the spec (the hang costs its 3 s time limit each)."""
    found = {}
    for converter in ("Faithful", "MomentumUnconverted", "TrainingDropped"):
        out = tmp_path_factory.mktemp(converter)
        found[converter] = (*_convert(spec, out, converter), out)
    return found


def test_a_faithful_conversion_conforms(runs: dict[str, Any]) -> None:
    code, cases, path, _ = runs["Faithful"]
    assert cases["weight_0_2"]["verdict"] == "conforms"
    assert cases["after_the_failures"]["verdict"] == "conforms"
    assert code == 1  # the crash and the hang are unexpected errors
    doc = json.loads(path.read_text())
    assert doc["framework"] == "faithful:numpy->numpy"  # the display name is kept in the header
    assert path.name == "faithful__numpy_to_numpy-cpu.json"  # no ':' or '>' in the file name
    assert doc["environment"]["converter"] == "faithful" and doc["environment"]["source"] == "numpy"


def test_a_momentum_passed_unconverted_is_named(runs: dict[str, Any]) -> None:
    _, cases, _, _ = runs["MomentumUnconverted"]
    for name in ("weight_0_2", "after_the_failures"):
        assert cases[name]["verdict"] == "divergence"
        assert cases[name]["explained_by"] == {"bn.momentum_weights": "old"}
        assert cases[name]["unexpected"] is True


def test_a_dropped_training_flag_is_named(runs: dict[str, Any]) -> None:
    _, cases, _, _ = runs["TrainingDropped"]
    entry = cases["weight_0_2"]
    assert entry["verdict"] == "divergence"
    # the layer normalises with its running statistics in training and never updates them
    assert entry["explained_by"] == {"bn.running_update": "none", "bn.train_statistics": "running"}
    assert entry["series"]["running_mean"]["observed"][0] == [0.0, 0.0, 0.0]


@pytest.mark.parametrize("converter", ["Faithful", "MomentumUnconverted", "TrainingDropped"])
def test_a_converter_that_fails_on_a_case_loses_no_other_result(runs: dict[str, Any], converter: str) -> None:
    _, cases, _, _ = runs[converter]
    assert list(cases) == ["weight_0_2", "crash", "hang", "cannot_express", "downscale_dropout",
                           "after_the_failures"]
    crash, hang = cases["crash"], cases["hang"]
    assert crash["verdict"] == "error" and "planted converter crash" in crash["message"]
    assert "exited with status 1" in crash["message"] and "converter.log" in crash["message"]
    assert hang["verdict"] == "error" and "did not finish within 3 s and was killed" in hang["message"]
    # the converter's own words, not an error
    assert cases["cannot_express"]["verdict"] == "unsupported"
    assert "cannot express eps=0.03125 in the target runtime" in cases["cannot_express"]["message"]
    assert cases["downscale_dropout"]["verdict"] == "unsupported"
    assert "downscale_in_infer dropout is not supported" in cases["downscale_dropout"]["message"]
    assert cases["after_the_failures"]["verdict"] in ("conforms", "divergence")  # ran after the hang
    assert "error" not in cases["after_the_failures"]


def test_artifacts_are_kept_under_the_results_folder(runs: dict[str, Any]) -> None:
    _, _, _, out = runs["MomentumUnconverted"]
    folder = out / "artifacts" / "momentum-unconverted__numpy_to_numpy" / "specs_convert__weight_0_2" / "cpu"
    source = json.loads((folder / "case.json").read_text())
    assert source["layer"]["update_weight"] == 0.2 and source["case"] == "specs/convert::weight_0_2"
    converted = json.loads((folder / "converted" / "layer.json").read_text())
    assert converted["update_weight"] == pytest.approx(0.8)  # the planted slip, kept for a human
    assert "converting specs/convert::weight_0_2 (momentum)" in (folder / "converter.log").read_text()
    hang = folder.parents[1] / "specs_convert__hang" / "cpu" / "converter.log"
    assert "converting specs/convert::hang" in hang.read_text()
    # a rebuild step loads the same conversion afresh: one folder, one conversion
    rebuilt = folder.parents[1] / "specs_convert__after_the_failures"
    assert [p.name for p in rebuilt.iterdir()] == ["cpu"]
    assert (rebuilt / "cpu" / "converter.log").read_text().count("fake-convert: converting") == 1


def test_an_expected_divergence_of_a_converter_is_read_from_its_registry_file(
        spec: Path, tmp_path: Path) -> None:
    registry = tmp_path / "expectations"
    registry.mkdir()
    (registry / f"{file_stem('momentum-unconverted:numpy->numpy')}.yaml").write_text(
        "expected:\n  - case: '*::weight_0_2'\n    verdict: divergence\n"
        "    reason: the momentum is passed unconverted\n    link: https://example.invalid/issue\n")
    _, cases, _ = _convert(spec, tmp_path / "out", "MomentumUnconverted", "-k", "weight_0_2",
                           "--expectations", str(registry))
    assert cases["weight_0_2"]["verdict"] == "divergence"
    assert cases["weight_0_2"]["unexpected"] is False


def test_an_unknown_converter_is_bad_usage(spec: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["convert", str(spec), "--converter", "torch-onx", "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert "unknown converter (did you mean 'torch-onnx'?)" in err and "module:Class" in err
    assert main(["convert", str(spec), "--converter", "paconvert", "--out", str(tmp_path / "o")]) == 2
    assert "not built yet" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_file_stems_keep_framework_names_and_make_converter_names_safe() -> None:
    for name in ("torch", "flax-nnx", "tf_keras", "keras-torch", "onnxruntime"):
        assert file_stem(name) == name
    stem = file_stem("torch-onnx:torch->onnxruntime")
    assert stem == "torch-onnx__torch_to_onnxruntime"
    assert file_stem("a:b->c") != file_stem("a:b-c")


def test_finding_converters_imports_no_framework() -> None:
    code = ("import sys; from conformance import converters; from conformance.converters import base; "
            "converters.resolve('torch-onnx'); "
            "print(sorted(m for m in ('torch', 'onnx', 'onnxruntime', 'paddle', 'tensorflow') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT,
                         env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"}, check=True).stdout
    assert out.strip() == "[]"


def test_model_cases_are_skipped_with_the_kits_reason_not_unsupported(tmp_path: Path) -> None:
    from conformance.converters.base import MODELS_NOT_CONVERTED

    spec = ROOT / "specs" / "model" / "freeze.yaml"
    sys.path.insert(0, str(TESTS))
    try:
        main(["convert", str(spec), "-q", "--converter", "fake_converters:Faithful", "--out", str(tmp_path)])
    finally:
        sys.path.remove(str(TESTS))
    doc = json.loads((tmp_path / "faithful__numpy_to_numpy-cpu.json").read_text())
    assert doc["cases"] and {c["verdict"] for c in doc["cases"]} == {"skipped"}
    assert all(MODELS_NOT_CONVERTED in c["message"] for c in doc["cases"])
    assert not (tmp_path / "artifacts" / "faithful__numpy_to_numpy").exists()  # nothing was converted
