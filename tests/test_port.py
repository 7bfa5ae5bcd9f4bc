"""The porter without any framework: parsing, translation for every pair (with the round
trip), the notes on what has no equivalent, state conversion, and the command's usage errors.
"""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from port_cases import FUNCTIONS, LAYERS

from conformance.cli import main
from conformance.port import (
    PortError,
    StateError,
    adjust_variance,
    convert_state,
    translate,
    translate_params,
)
from conformance.port.catalog import FRAMEWORKS
from conformance.port.translation import port

PAIRS = [(a, b) for a in FRAMEWORKS for b in FRAMEWORKS if a != b]


def _layer_ids() -> list[str]:
    return [f"{fw}:{expr.split('(')[0].rsplit('.', 1)[-1]}{i}" for i, (fw, expr, _, _) in enumerate(LAYERS)]


# --- translation -----------------------------------------------------------------------------

@pytest.mark.parametrize("target", FRAMEWORKS)
@pytest.mark.parametrize("source, expression, rank, features", LAYERS, ids=_layer_ids())
def test_every_layer_translates_to_code_that_parses(source: str, expression: str, rank: int | None,
                                                    features: int | None, target: str) -> None:
    t = translate(expression, source, target, rank, features)
    ast.parse("\n".join(t.code))  # valid Python
    callee, _, _ = t.arguments
    prefix = {"torch": "torch.nn.", "paddle": "paddle.nn.", "tf": "keras.layers."}[target]
    assert callee.startswith(prefix), f"{expression} -> {target}: callee {callee}, expected {prefix}..."


LAYER_PAIRS = [pytest.param(i, case[0], t, id=f"{_layer_ids()[i]}->{t}")
               for i, case in enumerate(LAYERS) for t in FRAMEWORKS if t != case[0]]
FUNCTION_PAIRS = [pytest.param(i, case[0], t, id=f"{case[0]}:{case[1].split('(')[0]}{i}->{t}")
                  for i, case in enumerate(FUNCTIONS) for t in FRAMEWORKS if t != case[0]]


@pytest.mark.parametrize("index, source, target", LAYER_PAIRS)
def test_round_trip_gives_the_source_back(index: int, source: str, target: str) -> None:
    """A -> B -> A: the same neutral layer and, written in A, the same arguments as A's own
    canonical writing of the source. What B's construction cannot hold travels in its notes
    (a channels-last layout through PyTorch, frozen statistics through PyTorch and Keras, the
    dtype through Paddle's set_default_dtype): the round trip is checked without them, and
    the notes are checked to carry them."""
    _, expression, rank, features = LAYERS[index]
    there = translate(expression, source, target, rank, features)
    if not there.exact:
        pytest.skip("no exact equivalent in the target: the notes say so (tested below)")
    layer = there.ported.layer
    back = translate(there.construction, target, source, layer["rank"], layer.get("num_features"))
    outside = set()
    if target == "torch" and layer.get("channel_axis") == "last" and layer["rank"] > 2:
        outside.add("channel_axis")
        assert any(n.argument == "channels last" and n.recipe for n in there.notes)
    if target in ("torch", "tf") and layer.get("frozen"):
        outside.add("frozen")
        assert any(n.argument == "frozen statistics" and n.recipe for n in there.notes)
    got = {k: v for k, v in back.ported.layer.items() if k not in outside}
    want = {k: v for k, v in layer.items() if k not in outside}
    assert got == want, f"{expression} -> {target} -> {source}: {there.construction}"
    if not outside:
        canonical = translate(expression, source, source, rank, features).arguments
        _, args, kwargs = back.arguments
        if target == "paddle":  # Paddle's dtype is a separate set_default_dtype line
            kwargs.pop("dtype", None)
            canonical[2].pop("dtype", None)
        assert (back.arguments[0], args, kwargs) == canonical


@pytest.mark.parametrize("index, source, target", FUNCTION_PAIRS)
def test_functional_forms_translate_and_round_trip(index: int, source: str, target: str) -> None:
    expression = FUNCTIONS[index][1]
    there = translate(expression, source, target)
    ast.parse("\n".join(there.code))
    if not there.construction:  # Keras' functional batch norm and an identity are recipes
        assert target == "tf"
        return
    back = translate(there.construction, target, source, there.ported.layer["rank"])
    if there.ported.layer.get("scaling") == "eval" and target != "paddle":
        # downscale_in_infer is the (1 - p) factor around the target's call (p read back as a number)
        factor = re.search(r"\(1 - ([^()\s]+)\) \*", "\n".join(there.code))
        assert factor and float(factor[1]) == there.ported.layer["rate"], there.code
        assert back.ported.layer == {**there.ported.layer, "scaling": "train"}
        return
    if "seed" in there.ported.layer and target != "tf":  # a global seed, said in a note
        assert any(n.argument.startswith("seed=") and n.recipe for n in there.notes)
        there.ported.layer.pop("seed")
    if target == "tf" and there.ported.kind == "dropout":
        # keras.random.dropout always drops: the training flag lives in the `if` around it
        assert f"if {there.ported.function['training']}" in "\n".join(there.code) \
            or there.ported.function["training"] is True
        assert back.ported.layer == there.ported.layer
        return
    assert back.ported.layer == there.ported.layer
    assert back.ported.function == there.ported.function


@pytest.mark.parametrize("target, momentum", [("paddle", 0.9), ("tf", 0.9)])
def test_torch_momentum_is_the_weight_of_the_new_value(target: str, momentum: float) -> None:
    t = translate("BatchNorm2d(64, momentum=0.1, eps=1e-5)", "torch", target)
    kwargs = t.arguments[2]
    assert kwargs["momentum"] == momentum and kwargs["epsilon"] == 1e-5
    assert t.ported.layer["update_weight"] == 0.1


def test_keras_defaults_are_passed_explicitly() -> None:
    t = translate("keras.layers.BatchNormalization()", "tf", "torch", rank=4, features=8)
    assert t.arguments == ("torch.nn.BatchNorm2d", [8], {"eps": 0.001, "momentum": 0.01, "dtype": "torch.float32"})
    assert any(n.argument == "epsilon" and "explicitly" in n.text for n in t.notes)
    assert any(n.argument == "channels last" for n in t.notes)  # Keras' default axis=-1


def test_keras_without_features_writes_a_placeholder() -> None:
    t = translate("keras.layers.BatchNormalization(axis=1)", "tf", "paddle")
    assert t.arguments[1] == ["C"]
    assert any(n.level == "assumed" and n.argument == "num_features" for n in t.notes)
    assert any(n.level == "assumed" and n.argument == "rank" for n in t.notes)


def test_python_values_translate_like_code() -> None:
    t = translate_params("torch", "tf", "BatchNorm1d", 32, momentum=0.01, eps=1e-3)
    assert t.arguments[2]["momentum"] == 0.99 and t.arguments[2]["epsilon"] == 1e-3


@pytest.mark.parametrize("target", ["paddle", "tf"])
def test_momentum_none_has_no_equivalent_and_an_emulation(target: str) -> None:
    t = translate("torch.nn.BatchNorm2d(8, momentum=None)", "torch", target)
    notes = [n for n in t.notes if n.level == "no_equivalent"]
    assert not t.exact and notes and "1 - 1/k" in notes[0].recipe[0].replace(".0", "")
    assert "momentum" not in t.arguments[2]


@pytest.mark.parametrize("target", ["torch", "tf"])
def test_paddle_downscale_in_infer_is_emulated_exactly(target: str) -> None:
    t = translate("paddle.nn.Dropout(0.4, mode='downscale_in_infer')", "paddle", target)
    note = next(n for n in t.notes if n.level == "no_equivalent")
    factor = re.match(r"y = \(1 - ([^()\s]+)\) \* layer\(x", note.recipe[0])
    assert factor and float(factor[1]) == 0.4, note.recipe


def test_paddle_dropout_axes_shared_along_the_batch() -> None:
    to_torch = translate("paddle.nn.Dropout(0.5, axis=1)", "paddle", "torch", rank=2)
    assert not to_torch.exact and any("torch.rand" in line for n in to_torch.notes for line in n.recipe)
    to_keras = translate("paddle.nn.Dropout(0.5, axis=1)", "paddle", "tf", rank=2)
    assert to_keras.exact and to_keras.arguments[2]["noise_shape"] == (1, None)
    from_keras = translate("keras.layers.Dropout(0.5, noise_shape=(1, None))", "tf", "paddle")
    assert from_keras.arguments[2]["axis"] == [1]


def test_scale_without_shift_uses_each_targets_switch() -> None:
    torch_t = translate("keras.layers.BatchNormalization(axis=1, center=False)", "tf", "torch", 4, 8)
    assert torch_t.arguments[2]["bias"] is False
    paddle_t = translate("torch.nn.BatchNorm2d(8, bias=False)", "torch", "paddle")
    assert paddle_t.arguments[2]["bias_attr"] is False and "weight_attr" not in paddle_t.arguments[2]
    keras_t = translate("paddle.nn.BatchNorm2D(8, weight_attr=False)", "paddle", "tf")
    assert keras_t.arguments[2]["scale"] is False
    shift_only = translate("keras.layers.BatchNormalization(axis=1, scale=False)", "tf", "torch", 4, 8)
    assert not shift_only.exact


def test_frozen_and_no_running_statistics() -> None:
    keras_t = translate("paddle.nn.BatchNorm2D(8, use_global_stats=True)", "paddle", "tf")
    assert not any(line.startswith("layer.trainable") for line in keras_t.code)  # gamma and beta still learn
    no_stats = translate("torch.nn.BatchNorm1d(4, track_running_stats=False)", "torch", "tf")
    assert not no_stats.exact and "training=True" in no_stats.notes[-1].recipe[0]
    assert translate("torch.nn.BatchNorm1d(4, track_running_stats=False)", "torch", "paddle"
                     ).arguments[2]["use_global_stats"] is False


def test_torch_functional_batch_norm_to_keras_keeps_the_unbiased_estimator() -> None:
    t = translate("F.batch_norm(x, rm, rv, w, b, training=self.training, momentum=0.1)", "torch", "tf")
    code = "\n".join(t.code)
    assert "if self.training:" in code and "var * m / (m - 1)" in code
    # rm <- (1 - w) * rm + w * mean with w = 0.1, the numbers read back as numbers
    update = re.search(r"rm\.assign\(\(1 - ([^()\s]+)\) \* rm \+ ([^()\s]+) \* mean\)", code)
    assert update and (float(update[1]), float(update[2])) == (0.1, 0.1), code
    biased = translate("paddle.nn.functional.batch_norm(x, rm, rv, training=True)", "paddle", "tf")
    assert "m / (m - 1)" not in "\n".join(biased.code)


def test_functional_dropout_training_default_is_flagged() -> None:
    t = translate("torch.nn.functional.dropout(x, 0.5)", "torch", "paddle")
    assert t.arguments[2]["training"] is True
    assert any(n.argument == "training" and "training=self.training" in n.text for n in t.notes)


def test_paddle_legacy_batch_norm() -> None:
    t = translate("paddle.nn.BatchNorm(16, act='relu', is_test=True, data_layout='NHWC')", "paddle", "torch")
    assert t.ported.layer["frozen"] and t.ported.layer["channel_axis"] == "last"
    assert any(n.argument.startswith("act=") and "relu" in n.recipe[0] for n in t.notes)


@pytest.mark.parametrize("expression, source, message", [
    ("BatchNorm2D(64)", "torch", "did you mean 'BatchNorm2d'"),
    ("BatchNorm2d(64, momentun=0.1)", "torch", "did you mean 'momentum'"),
    ("BatchNorm2d(64, momentum=cfg.m)", "torch", "not a literal"),
    ("Dropout(0.5)", None, "say which with --from"),
    ("torch.nn.BatchNorm2d(64)", "paddle", "use --from torch"),
    ("BatchNorm2d()", "torch", "needs num_features"),
    ("import os", "torch", "expected a call"),
    ("BatchNorm2d(64", "torch", "cannot parse"),
    ("paddle.nn.BatchNorm2D(8, data_format='NCL')", "paddle", "3-D layout"),
    ("keras.layers.BatchNormalization(axis=2)", "tf", "neither first"),
    ("BatchNorm2d(64, momentum=1.5)", "torch", "expected a number in [0, 1]"),
    ("AlphaDropout(0.5)", "torch", "did you mean 'Dropout'"),
])
def test_bad_input_says_what_was_expected(expression: str, source: str | None, message: str) -> None:
    with pytest.raises(PortError, match=message.replace("[", r"\[").replace("(", r"\(")):
        port(expression, source)


def test_parse_never_evaluates(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    with pytest.raises(PortError):
        port(f"BatchNorm2d(__import__('pathlib').Path({str(marker)!r}).touch())", "torch")
    assert not marker.exists()


# --- the command -----------------------------------------------------------------------------

def test_port_command_prints_the_translation(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["port", "--no-measure", "--from", "torch", "--to", "paddle",
                 "BatchNorm2d(64, momentum=0.1, eps=1e-5)"])
    out = capsys.readouterr().out
    assert code == 0
    assert "paddle.nn.BatchNorm2D(" in out and "not measured" in out
    # the construction's argument line (the number read back: Python spells the float)
    momentum = re.search(r"^\s+momentum=([^,\s]+),", out, re.MULTILINE)
    assert momentum and float(momentum[1]) == 0.9, out


@pytest.mark.parametrize("argv, message", [
    (["--from", "torch", "--to", "padle", "BatchNorm2d(8)"], "did you mean 'paddle'"),
    (["--from", "torch", "BatchNorm2D(8)"], "did you mean 'BatchNorm2d'"),
    ([], "expected a construction"),
])
def test_port_command_usage_errors_exit_2(argv: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["port", "--no-measure", *argv]) == 2
    assert message in capsys.readouterr().err


def test_importing_the_porter_imports_no_framework() -> None:
    code = ("import sys\nimport conformance.port, conformance.port.cli, conformance.port.measure\n"
            "import conformance.port.verify, conformance.port.demo\n"
            "from conformance.port import translate\n"
            "translate('torch.nn.BatchNorm2d(8)', 'torch', 'tf')\n"
            "print(sorted(m for m in ('torch', 'paddle', 'tensorflow', 'keras', 'sklearn') if m in sys.modules))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip().splitlines()[-1] == "[]"


# --- state -----------------------------------------------------------------------------------

def _torch_state(c: int = 3, steps: int = 5) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    return {"bn.weight": rng.normal(1, 0.1, c).astype(np.float32), "bn.bias": rng.normal(0, 0.1, c).astype(np.float32),
            "bn.running_mean": rng.normal(0, 1, c).astype(np.float32),
            "bn.running_var": rng.uniform(0.5, 2, c).astype(np.float32),
            "bn.num_batches_tracked": np.asarray(steps, np.int64)}


def test_state_names_and_layout() -> None:
    torch_state = _torch_state()
    paddle = convert_state(torch_state, "torch", "paddle", prefix="bn.")
    assert sorted(paddle.state) == ["bn._mean", "bn._variance", "bn.bias", "bn.weight"]
    assert any("num_batches_tracked=5 dropped" in n for n in paddle.notes)
    keras = convert_state(torch_state, "torch", "tf", prefix="bn.")
    assert isinstance(keras.state, list) and len(keras.state) == 4
    np.testing.assert_array_equal(keras.state[0], torch_state["bn.weight"])  # gamma first
    np.testing.assert_array_equal(keras.state[3], torch_state["bn.running_var"])  # moving_variance last
    back = convert_state(keras.state, "tf", "torch", target_prefix="bn.", steps=5)
    for key, value in torch_state.items():
        np.testing.assert_array_equal(back.state[key], value)


@pytest.mark.parametrize("source, target", PAIRS)
def test_state_round_trip(source: str, target: str) -> None:
    neutral = convert_state(_torch_state(), "torch", source, prefix="bn.", target_prefix="").state
    there = convert_state(neutral, source, target)
    again = convert_state(there.state, target, source)
    if isinstance(neutral, list):
        for a, b in zip(neutral, again.state):
            np.testing.assert_array_equal(a, b)
    else:
        assert isinstance(again.state, dict)
        for key in neutral:
            if key != "num_batches_tracked":
                np.testing.assert_array_equal(neutral[key], again.state[key])


def test_keras_weights_by_variable_path_and_without_affine() -> None:
    named = {"batch_normalization/moving_mean:0": np.zeros(2), "batch_normalization/moving_variance:0": np.ones(2)}
    out = convert_state(named, "tf", "paddle")
    assert sorted(out.state) == ["_mean", "_variance"]
    assert len(convert_state([np.zeros(2), np.ones(2)], "tf", "torch").state) == 3  # + num_batches_tracked
    with pytest.raises(StateError, match="expected 4"):
        convert_state([np.zeros(2)] * 3, "tf", "torch")
    with pytest.raises(StateError, match="no running statistics"):
        convert_state({"weight": np.ones(2)}, "torch", "tf")


def _ema(batches: list[np.ndarray], w: float, unbiased: bool, start: float = 1.0) -> np.ndarray:
    running = np.full(batches[0].shape[1], start)
    for x in batches:
        var = x.var(axis=0, ddof=1 if unbiased else 0)
        running = (1 - w) * running + w * var
    return running


def test_variance_adjustment_is_exact_with_w_and_k() -> None:
    rng = np.random.default_rng(1)
    batches = [rng.normal(0, 2, (8, 3)) for _ in range(4)]
    unbiased, biased = _ema(batches, 0.1, True), _ema(batches, 0.1, False)
    to_torch, exact, note = adjust_variance(biased, 8, "biased", "unbiased", update_weight=0.1, steps=4)
    assert exact and "exact" in note
    np.testing.assert_allclose(to_torch, unbiased, rtol=1e-12)
    to_paddle, exact, _ = adjust_variance(unbiased, 8, "unbiased", "biased", update_weight=0.1, steps=4)
    np.testing.assert_allclose(to_paddle, biased, rtol=1e-12)
    # through convert_state, k read from torch's num_batches_tracked
    state = {"running_mean": np.zeros(3), "running_var": unbiased, "num_batches_tracked": np.asarray(4)}
    converted = convert_state(state, "torch", "paddle", variance="adjust", count=8, update_weight=0.1)
    assert converted.exact
    np.testing.assert_allclose(converted.state["_variance"], biased, rtol=1e-12)


def test_variance_adjustment_without_k_is_approximate_within_its_bound() -> None:
    rng = np.random.default_rng(2)
    batches = [rng.normal(0, 2, (8, 3)) for _ in range(4)]
    unbiased, biased = _ema(batches, 0.1, True), _ema(batches, 0.1, False)
    approx, exact, note = adjust_variance(biased, 8, "biased", "unbiased")
    assert not exact and "not exact" in note
    assert np.abs(approx - unbiased).max() <= (8 / 7 - 1) * 1.0 + 1e-12
    with pytest.raises(StateError, match="needs count=m"):
        convert_state({"_mean": np.zeros(3), "_variance": biased}, "paddle", "torch", variance="adjust")
    kept = convert_state({"_mean": np.zeros(3), "_variance": biased}, "paddle", "tf", variance="adjust")
    assert "both feed it the biased" in kept.notes[0]


def test_verify_without_the_frameworks_says_how_to_install_them(monkeypatch: pytest.MonkeyPatch,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    from conformance.adapters import AdapterRef

    monkeypatch.setattr(AdapterRef, "installed", lambda self: False)
    code = main(["port", "--from", "torch", "--to", "paddle", "--verify", "BatchNorm2d(8)"])
    captured = capsys.readouterr()
    assert code == 2 and "not installed" in captured.err and "pip install" in captured.err
    assert "torch is not installed; to install it" in captured.out  # the measurement said so first
