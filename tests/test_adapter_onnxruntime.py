"""The onnxruntime adapter (conformance/adapters/onnxruntime.py, onnx_graphs.py) against
numbers computed here in numpy, never read from the adapter: the graphs it builds pass
onnx.checker, the neutral update weight becomes ONNX's momentum (which weighs the old value),
ONNX Runtime feeds the running variance with the biased batch variance, and Dropout's
training_mode input switches it between inverted dropout and the identity. Measured first on
onnxruntime 1.32.0 / onnx 1.23.2, CPU."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("onnxruntime")
onnx = pytest.importorskip("onnx")

from conformance.adapters import onnx_graphs
from conformance.adapters.base import Unsupported
from conformance.adapters.onnxruntime import OnnxRuntimeAdapter
from conformance.model import BatchNormSpec, DropoutSpec

ADAPTER = OnnxRuntimeAdapter()
RNG = np.random.default_rng(7)


def _attributes(model: onnx.ModelProto, op: str) -> dict[str, object]:
    node = next(n for n in model.graph.node if n.op_type == op)
    return {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}


@pytest.mark.parametrize("variant", ["train", "eval", "eval_default"])
@pytest.mark.parametrize(("rank", "axis"), [(2, "first"), (4, "first"), (4, "last"), (5, "last")])
def test_batch_norm_graphs_pass_the_checker(variant: str, rank: int, axis: str) -> None:
    spec = BatchNormSpec(rank=rank, num_features=3, channel_axis=axis)  # type: ignore[arg-type]
    model = onnx_graphs.batch_norm_model(spec, "float32", variant)  # type: ignore[arg-type]
    onnx.checker.check_model(model, full_check=True)
    ops = [n.op_type for n in model.graph.node]
    transposed = axis == "last" and rank > 2
    assert ops == (["Transpose", "BatchNormalization", "Transpose"] if transposed else ["BatchNormalization"])
    attributes = _attributes(model, "BatchNormalization")
    assert attributes.get("training_mode") == {"train": 1, "eval": 0, "eval_default": None}[variant]
    assert len(model.graph.output) == (3 if variant == "train" else 1)


@pytest.mark.parametrize("variant", ["training_mode_input", "no_training_mode"])
def test_dropout_graphs_pass_the_checker(variant: str) -> None:
    model = onnx_graphs.dropout_model(DropoutSpec(rate=0.3, rank=3, seed=5), "float32", variant)  # type: ignore[arg-type]
    onnx.checker.check_model(model, full_check=True)
    assert _attributes(model, "Dropout") == {"seed": 5}
    names = [i.name for i in model.graph.input]
    assert names == (["data", "training_mode"] if variant == "training_mode_input" else ["data"])


def test_momentum_is_one_minus_the_update_weight() -> None:
    assert onnx_graphs.momentum_attribute(BatchNormSpec(rank=2, num_features=3, update_weight=0.25)) == 0.75
    probe = BatchNormSpec(rank=2, num_features=3, native_momentum=0.3)
    assert onnx_graphs.momentum_attribute(probe) == 0.3  # ONNX's own argument, untranslated
    default = BatchNormSpec(rank=2, num_features=3, update_weight=None)
    assert "momentum" not in _attributes(onnx_graphs.batch_norm_model(default, "float32", "train"),
                                         "BatchNormalization")


def test_training_updates_with_the_weight_on_the_new_batch_and_the_biased_variance() -> None:
    """running = (1 - w) * running + w * batch, the batch variance divided by m (not m - 1)."""
    w, mean0, var0 = 0.25, np.array([1.0, -1.0, 0.5]), np.array([2.0, 0.5, 1.0])
    spec = BatchNormSpec(rank=2, num_features=3, update_weight=w, eps=1e-3,
                         running_mean=mean0, running_var=var0)
    x = RNG.normal(2.0, 3.0, size=(5, 3))
    handle = ADAPTER.build(spec, "float64", "cpu")
    y = handle.forward(x, "train", None)["output"]
    state = handle.state()
    np.testing.assert_allclose(state["running_mean"], (1 - w) * mean0 + w * x.mean(0), rtol=1e-6)
    biased = (1 - w) * var0 + w * x.var(0)  # ddof=0
    np.testing.assert_allclose(state["running_var"], biased, rtol=1e-6)
    assert not np.allclose(state["running_var"], (1 - w) * var0 + w * x.var(0, ddof=1), rtol=1e-3)
    np.testing.assert_allclose(y, (x - x.mean(0)) / np.sqrt(x.var(0) + 1e-3), rtol=1e-6)


def test_eval_normalises_with_the_running_statistics_and_keeps_them() -> None:
    mean0, var0 = np.array([1.0, 2.0]), np.array([4.0, 0.25])
    spec = BatchNormSpec(rank=4, num_features=2, channel_axis="last", running_mean=mean0,
                         running_var=var0, scale=np.array([2.0, -1.0]), shift=np.array([0.5, 0.0]))
    x = RNG.normal(size=(2, 3, 3, 2))  # NHWC: channels last, transposed around the node
    handle = ADAPTER.build(spec, "float64", "cpu")
    y = handle.forward(x, "eval", None)["output"]
    expected = (x - mean0) / np.sqrt(var0 + 1e-5) * np.array([2.0, -1.0]) + np.array([0.5, 0.0])
    np.testing.assert_allclose(y, expected, rtol=1e-6)
    np.testing.assert_array_equal(handle.state()["running_mean"], mean0)
    np.testing.assert_array_equal(handle.state()["running_var"], var0)


def test_channels_last_training_reduces_over_every_axis_but_the_last() -> None:
    x = RNG.normal(1.0, 2.0, size=(2, 3, 4, 3))
    handle = ADAPTER.build(BatchNormSpec(rank=4, num_features=3, channel_axis="last",
                                         update_weight=1.0), "float64", "cpu")
    y = handle.forward(x, "train", None)["output"]
    axes = (0, 1, 2)
    np.testing.assert_allclose(y, (x - x.mean(axes)) / np.sqrt(x.var(axes) + 1e-5), rtol=1e-6)
    np.testing.assert_allclose(handle.state()["running_var"], x.var(axes), rtol=1e-6)


def test_dropout_training_mode_switches_inverted_dropout_and_identity() -> None:
    rate = 0.25
    x = RNG.uniform(1.0, 2.0, size=(200, 50)).astype(np.float32)
    handle = ADAPTER.build(DropoutSpec(rate=rate, rank=2, seed=3), "float32", "cpu")
    y = handle.forward(x, "train", None)["output"]
    kept = y != 0
    np.testing.assert_allclose(y[kept], x[kept] / np.float32(1 - rate), rtol=1e-6)
    assert abs(kept.mean() - (1 - rate)) < 0.02  # 10000 draws: the standard error is 0.004
    np.testing.assert_array_equal(handle.forward(x, "eval", None)["output"], x)


def test_a_seed_gives_the_same_first_mask_and_new_masks_after_it() -> None:
    """The kernel seeds its generator once from the seed attribute: a fresh session repeats
    the first mask, the next call of the same session draws another."""
    x = np.ones((100, 100), np.float32)
    spec = DropoutSpec(rate=0.5, rank=2, seed=1234)
    first = ADAPTER.build(spec, "float32", "cpu")
    a, b = (first.forward(x, "train", None)["output"] != 0 for _ in range(2))
    again = ADAPTER.build(spec, "float32", "cpu").forward(x, "train", None)["output"] != 0
    np.testing.assert_array_equal(a, again)
    assert (a != b).mean() > 0.4


def test_what_a_session_cannot_do_is_unsupported() -> None:
    bn = BatchNormSpec(rank=2, num_features=3)
    with pytest.raises(Unsupported, match="computes no gradients"):
        ADAPTER.build(bn, "float32", "cpu").forward(np.ones((4, 3)), "train", np.ones((4, 3)))
    with pytest.raises(Unsupported, match="NOT_IMPLEMENTED"):
        ADAPTER.build(bn, "bfloat16", "cpu")
    with pytest.raises(Unsupported, match="noise_shape"):
        ADAPTER.build(DropoutSpec(rate=0.5, rank=4, granularity="channel"), "float32", "cpu")
    with pytest.raises(Unsupported, match="cumulative"):
        ADAPTER.build(BatchNormSpec(rank=2, num_features=3, update="cumulative"), "float32", "cpu")


def test_momentum_is_a_32_bit_attribute_in_a_float64_graph() -> None:
    """The registered float64 divergence: 0.9 becomes float32(0.9), so the batch gets weight
    1 - 0.89999998 in a float64 graph (expectations/onnxruntime.yaml)."""
    x = RNG.normal(100.0, 1.0, size=(8, 2))
    handle = ADAPTER.build(BatchNormSpec(rank=2, num_features=2, update_weight=0.1), "float64", "cpu")
    handle.forward(x, "train", None)
    weight = 1.0 - float(np.float32(0.9))
    np.testing.assert_allclose(handle.state()["running_mean"], weight * x.mean(0), rtol=1e-12)
    assert not np.allclose(handle.state()["running_mean"], 0.1 * x.mean(0), rtol=1e-9)


def test_frozen_and_compiled() -> None:
    """A frozen spec trains as an inference node (training_mode=0: running statistics used and
    kept); the compiled context (ORT_ENABLE_ALL) computes what the graph as built does."""
    mean0, var0 = np.array([1.0, -2.0]), np.array([0.5, 2.0])
    x = RNG.normal(size=(6, 2))
    frozen = ADAPTER.build(BatchNormSpec(rank=2, num_features=2, frozen=True, running_mean=mean0,
                                         running_var=var0), "float64", "cpu")
    y = frozen.forward(x, "train", None)["output"]
    np.testing.assert_allclose(y, (x - mean0) / np.sqrt(var0 + 1e-5), rtol=1e-6)
    np.testing.assert_array_equal(frozen.state()["running_mean"], mean0)
    plain, compiled = (ADAPTER.build(BatchNormSpec(rank=2, num_features=2), "float64", "cpu")
                       for _ in range(2))
    y_plain = plain.forward(x, "train", None)["output"]
    y_compiled = compiled.forward(x, "train", None, context="compiled")["output"]
    np.testing.assert_allclose(y_compiled, y_plain, rtol=1e-12)
    np.testing.assert_allclose(compiled.state()["running_var"], plain.state()["running_var"], rtol=1e-12)
