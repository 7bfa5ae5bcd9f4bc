"""The tf_keras adapter (Keras 2 layers) against numbers computed here with numpy: the
translated momentum, the two variance estimators of Keras 2's two kernels, the freeze, the
graph context and dropout. Every expectation was measured on tf_keras 2.21 / TensorFlow 2.21
CPU first; each comment says what Keras 2 does."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("tensorflow")
pytest.importorskip("tf_keras")

from conformance.adapters.base import Unsupported
from conformance.adapters.tf_keras import TfKerasAdapter
from conformance.model import BatchNormSpec, DropoutSpec

ADAPTER = TfKerasAdapter()


def _bn(**options: object) -> BatchNormSpec:
    fields = {"rank": 2, "num_features": 3, "update_weight": 0.5, "eps": 1e-5, **options}
    return BatchNormSpec(**fields)  # type: ignore[arg-type]


def _batch(shape: tuple[int, ...], seed: int) -> np.ndarray:
    return np.random.default_rng(seed).normal(1.0, 2.0, size=shape).astype(np.float32)


def _channel_var(x: np.ndarray, axis: int, ddof: int) -> np.ndarray:
    return np.var(x.astype(np.float64), axis=tuple(a for a in range(x.ndim) if a != axis), ddof=ddof)


@pytest.mark.parametrize(("shape", "axis", "ddof"), [
    ((4, 3), 1, 0),  # rank 2: no fused kernel, tf.nn.moments: biased (divide by m)
    ((2, 3, 2), 1, 0),  # rank 3: no fused kernel either
    ((2, 3, 2, 2), 1, 1),  # rank 4, NCHW: fused_batch_norm, Bessel-corrected (m - 1)
    ((2, 2, 2, 3), 3, 1),  # rank 4, NHWC: fused as well
    ((2, 3, 2, 2, 2), 1, 1),  # rank 5: fused (Keras 2 reshapes to rank 4)
])
def test_the_moving_variance_estimator_follows_the_kernel(shape: tuple[int, ...], axis: int, ddof: int) -> None:
    spec = _bn(rank=len(shape), channel_axis="first" if axis == 1 else "last")
    handle = ADAPTER.build(spec, "float32", "cpu")
    assert handle.layer.fused == (len(shape) >= 4)  # fused=None picks the fused kernel where it can
    x = _batch(shape, 7)
    handle.forward(x, "train", None)
    # momentum 0.5 on the initial variance 1: running = 0.5 * 1 + 0.5 * var_ddof(batch)
    expected = 0.5 + 0.5 * _channel_var(x, axis, ddof)
    np.testing.assert_allclose(handle.state()["running_var"], expected, rtol=1e-5)
    other = 0.5 + 0.5 * _channel_var(x, axis, 1 - ddof)
    assert not np.allclose(handle.state()["running_var"], other, rtol=1e-3)


def test_float64_has_no_fused_kernel_so_rank4_is_biased() -> None:
    # the fused kernel takes float16/bfloat16/float32 only: a float64 rank-4 layer is non-fused
    handle = ADAPTER.build(_bn(rank=4), "float64", "cpu")
    assert handle.layer.fused is False
    x = _batch((2, 3, 2, 2), 8).astype(np.float64)
    handle.forward(x, "train", None)
    np.testing.assert_allclose(handle.state()["running_var"], 0.5 + 0.5 * _channel_var(x, 1, 0), rtol=1e-10)


def test_the_update_weight_becomes_one_minus_momentum() -> None:
    handle = ADAPTER.build(_bn(update_weight=0.2), "float32", "cpu")
    assert handle.layer.momentum == pytest.approx(0.8)  # Keras' momentum weighs the old value
    x = _batch((8, 3), 9)
    out = handle.forward(x, "train", None)["output"]
    np.testing.assert_allclose(handle.state()["running_mean"], 0.2 * x.astype(np.float64).mean(0), rtol=1e-5)
    # training normalises with the biased batch variance, eps inside the square root
    z = (x - x.mean(0)) / np.sqrt(x.var(0) + 1e-5)
    np.testing.assert_allclose(out, z, atol=1e-5)


def test_float64_moving_average_weight_is_rounded_to_float32() -> None:
    # the non-fused update takes decay = 1 - momentum as a float32 tensor, cast to the float64
    # variable: update weight 0.1 becomes float32(0.1) = 0.10000000149, 1.49e-8 relative
    handle = ADAPTER.build(_bn(rank=2, update_weight=0.1, num_features=5), "float64", "cpu")
    x = np.random.default_rng(0).normal(3.0, 1.0, size=(12, 5))
    handle.forward(x, "train", None)
    weight = float(np.float32(1.0 - 0.9))
    np.testing.assert_allclose(handle.state()["running_mean"], weight * x.mean(0), rtol=1e-13)
    assert not np.allclose(handle.state()["running_mean"], 0.1 * x.mean(0), rtol=1e-9, atol=0)


def test_trainable_false_runs_in_inference_and_learns_nothing() -> None:
    # Keras 2 (since TF 2.0): a non-trainable BatchNormalization called with training=True
    # normalises with, and keeps, its moving statistics; gamma and beta get no gradient
    spec = _bn(frozen=True, trainable=False, running_mean=np.array([1.0, 2.0, 3.0]),
               running_var=np.array([4.0, 9.0, 1.0]), scale=np.array([1.5, 0.5, 2.0]))
    handle = ADAPTER.build(spec, "float32", "cpu")
    x, g = _batch((6, 3), 10), _batch((6, 3), 11)
    result = handle.forward(x, "train", g)
    expected = np.array([1.5, 0.5, 2.0]) * (x - [1.0, 2.0, 3.0]) / np.sqrt(np.array([4.0, 9.0, 1.0]) + 1e-5)
    np.testing.assert_allclose(result["output"], expected, atol=1e-5)
    np.testing.assert_array_equal(result["grad_scale"], np.zeros(3))
    np.testing.assert_allclose(handle.state()["running_mean"], [1.0, 2.0, 3.0])


def test_gamma_and_beta_alone_cannot_be_frozen() -> None:
    with pytest.raises(Unsupported, match="trainable=False"):
        ADAPTER.build(_bn(trainable=False), "float32", "cpu")


def test_the_graph_context_runs_no_update_and_leaves_the_layer_usable() -> None:
    # a Keras 2 layer built in a tf.compat.v1 Graph adds no op to UPDATE_OPS: the documented
    # recipe leaves the statistics at 0 and 1 (the registered divergence); the eager layer
    # still works afterwards (Keras swapped its class to v1 and back)
    handle = ADAPTER.build(_bn(), "float32", "cpu")
    x = _batch((8, 3), 12)
    out = handle.forward(x, "train", None, context="graph")["output"]
    np.testing.assert_allclose(out, (x - x.mean(0)) / np.sqrt(x.var(0) + 1e-5), atol=1e-5)
    np.testing.assert_array_equal(handle.state()["running_mean"], np.zeros(3))
    np.testing.assert_array_equal(handle.state()["running_var"], np.ones(3))
    handle.forward(x, "train", None)  # eager again: updates as usual
    np.testing.assert_allclose(handle.state()["running_mean"], 0.5 * x.astype(np.float64).mean(0), rtol=1e-5)


def test_compiled_training_updates_like_eager() -> None:
    eager, compiled = (ADAPTER.build(_bn(rank=4), "float32", "cpu") for _ in range(2))
    x = _batch((2, 3, 2, 2), 13)
    eager.forward(x, "train", None)
    compiled.forward(x, "train", None, context="compiled")
    np.testing.assert_allclose(compiled.state()["running_var"], eager.state()["running_var"], rtol=1e-6)
    np.testing.assert_allclose(compiled.state()["running_var"], 0.5 + 0.5 * _channel_var(x, 1, 1), rtol=1e-5)


def test_there_is_no_inference_context() -> None:
    with pytest.raises(Unsupported, match="inference-mode context"):
        ADAPTER.build(_bn(), "float32", "cpu").forward(_batch((4, 3), 1), "train", None, context="inference")


# --- dropout --------------------------------------------------------------------------------


def test_dropout_is_inverted_and_the_identity_in_eval() -> None:
    handle = ADAPTER.build(DropoutSpec(rate=0.25, rank=2, seed=3), "float32", "cpu")
    x = np.random.default_rng(4).uniform(1.0, 2.0, size=(100, 50)).astype(np.float32)
    y = handle.forward(x, "train", None)["output"]
    kept = y != 0
    np.testing.assert_allclose(y[kept], x[kept] / 0.75, rtol=1e-6)
    assert 0.7 < kept.mean() < 0.8
    np.testing.assert_array_equal(handle.forward(x, "eval", None)["output"], x)


def test_dropout_rate_one_is_refused_in_training() -> None:
    # Keras 2 accepts rate=1 at construction, tf.nn.dropout refuses it at the call
    handle = ADAPTER.build(DropoutSpec(rate=1.0, rank=2), "float32", "cpu")
    with pytest.raises(ValueError, match=r"range \[0, 1\)"):
        handle.forward(np.ones((4, 5), np.float32), "train", None)


def test_a_rebuilt_seeded_dropout_draws_another_mask() -> None:
    # legacy stateful random ops: the op seed plus a per-process counter (registered divergence)
    x = np.ones((50, 50), np.float32)
    spec = DropoutSpec(rate=0.5, rank=2, seed=1234)
    first, second = (ADAPTER.build(spec, "float32", "cpu").forward(x, "train", None)["output"] != 0
                     for _ in range(2))
    assert (first != second).any()


@pytest.mark.parametrize("axis", ["first", "last"])
def test_channel_dropout_draws_one_value_per_sample_and_channel(axis: str) -> None:
    handle = ADAPTER.build(DropoutSpec(rate=0.5, rank=4, granularity="channel", channel_axis=axis, seed=5),
                           "float32", "cpu")
    shape = (8, 6, 4, 4) if axis == "first" else (8, 4, 4, 6)
    kept = handle.forward(np.ones(shape, np.float32), "train", None)["output"] != 0
    spatial = (2, 3) if axis == "first" else (1, 2)
    assert (kept.all(axis=spatial) == kept.any(axis=spatial)).all()  # whole channels
    assert 0 < kept.mean() < 1


def test_environment_names_both_versions() -> None:
    env = ADAPTER.environment("cpu")
    import tensorflow as tf
    import tf_keras

    assert env["tensorflow"] == tf.__version__ and env["tf_keras"] == tf_keras.__version__
    assert ADAPTER.version() == tf_keras.__version__ and "cpu" in ADAPTER.devices()
