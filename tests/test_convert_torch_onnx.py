"""The real ``torch-onnx`` pipeline (torch.onnx.export -> ONNX Runtime) on a few cases; skipped
where torch, onnx or onnxruntime is not installed. The verdicts come from the real exporter and
the real runtime, judged against torch's documented semantics."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

from conformance.cli import main

SPECS = Path(__file__).resolve().parents[1] / "specs"
NEEDED = ("torch", "onnx", "onnxruntime")
pytestmark = pytest.mark.skipif(any(importlib.util.find_spec(m) is None for m in NEEDED),
                                reason="torch-onnx needs torch, onnx and onnxruntime: "
                                       "pip install torch onnx onnxruntime")


@pytest.fixture(scope="module")
def converted(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, dict], Path]:
    out = tmp_path_factory.mktemp("torch-onnx")
    selected = "weight_0_9 or weight_0_keeps or element_rank2 or rate_zero"
    main(["convert", str(SPECS / "batchnorm" / "momentum.yaml"), str(SPECS / "dropout" / "train_eval.yaml"),
          "-q", "--converter", "torch-onnx", "--out", str(out), "-k", selected])
    doc = json.loads((out / "torch-onnx__torch_to_onnxruntime-cpu.json").read_text())
    assert doc["framework"] == "torch-onnx:torch->onnxruntime"
    return {c["id"]: c for c in doc["cases"]}, out


def test_the_momentum_survives_the_export_but_the_running_variance_turns_biased(
        converted: tuple[dict[str, dict], Path]) -> None:
    cases, _ = converted
    kept = cases["batchnorm/momentum::weight_0_keeps_the_initial_statistics"]
    assert kept["verdict"] == "conforms"
    moved = cases["batchnorm/momentum::weight_0_9"]
    assert moved["verdict"] == "divergence"
    # torch documents the unbiased estimator; ONNX Runtime's kernel feeds the biased one
    assert moved["explained_by"] == {"bn.running_var_estimator": "biased"}


def test_the_exported_graphs_are_kept_with_their_training_modes(converted: tuple[dict[str, dict], Path]) -> None:
    import onnx

    _, out = converted
    folder = out / "artifacts" / "torch-onnx__torch_to_onnxruntime" / "batchnorm_momentum__weight_0_9" / "cpu"
    assert "torch.nn.BatchNorm1d" in (folder / "source.py").read_text()
    modes = {}
    for name in ("train", "eval"):
        graph = onnx.load(str(folder / "converted" / f"{name}.onnx")).graph
        (node,) = [n for n in graph.node if n.op_type == "BatchNormalization"]
        attributes = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
        modes[name] = attributes.get("training_mode", 0)
        assert attributes["momentum"] == pytest.approx(0.1)  # torch's 0.9 weighs the new value
    assert modes == {"train": 1, "eval": 0}


def test_dropout_keeps_its_train_eval_semantics(converted: tuple[dict[str, dict], Path]) -> None:
    cases, _ = converted
    dropout = {k: v for k, v in cases.items() if k.startswith("dropout/")}
    assert dropout, "no dropout case was selected"
    for case_id, entry in dropout.items():
        assert entry["verdict"] == "conforms", (case_id, entry.get("message"))
