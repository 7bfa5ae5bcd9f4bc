"""The numpy reference against hand-computed values and finite differences."""

from __future__ import annotations

import numpy as np
import pytest

from conformance.model import BatchNormSpec, DropoutSpec
from conformance.reference import (
    ReferenceBatchNorm,
    ReferenceDropout,
    build_reference,
    conventions_for,
    dropout_mask_shape,
)


def bn(settings: dict[str, str] | None = None, **kwargs: object) -> ReferenceBatchNorm:
    spec = BatchNormSpec(**{"rank": 2, "num_features": 1, **kwargs})  # type: ignore[arg-type]
    layer = build_reference(spec, settings)
    assert isinstance(layer, ReferenceBatchNorm)
    return layer


BATCH = np.array([[1.0], [3.0]])  # mean 2, biased variance 1, unbiased variance 2


@pytest.mark.parametrize(
    ("settings", "mean", "var"),
    [
        ({}, 0.2, 0.9 * 1 + 0.1 * 2),  # w weighs the new value; unbiased feeds running_var
        ({"bn.running_var_estimator": "biased"}, 0.2, 0.9 * 1 + 0.1 * 1),
        ({"bn.momentum_weights": "old"}, 1.8, 0.1 * 1 + 0.9 * 2),  # the reversed convention
        ({"bn.running_update": "none"}, 0.0, 1.0),
    ],
)
def test_running_update_conventions(settings: dict[str, str], mean: float, var: float) -> None:
    layer = bn(settings, update_weight=0.1)
    layer.forward(BATCH, "train")
    assert layer.state.running_mean == pytest.approx([mean])
    assert layer.state.running_var == pytest.approx([var])


def test_cumulative_average_is_the_plain_mean_of_batch_statistics() -> None:
    layer = bn(update="cumulative")
    layer.forward(BATCH, "train")  # mean 2, unbiased var 2
    layer.forward(BATCH + 2.0, "train")  # mean 4, unbiased var 2
    layer.forward(np.array([[0.0], [0.0]]), "train")  # mean 0, var 0
    assert layer.state.running_mean == pytest.approx([2.0])
    assert layer.state.running_var == pytest.approx([4.0 / 3.0])
    assert layer.observe()["batch_count"] == 3


def test_train_forward_normalises_with_biased_batch_variance() -> None:
    out = bn(eps=1e-5).forward(BATCH, "train")["output"]
    assert out[:, 0] == pytest.approx([-1 / np.sqrt(1 + 1e-5), 1 / np.sqrt(1 + 1e-5)])


def test_eps_outside_the_root() -> None:
    out = bn({"bn.eps_placement": "outside"}, eps=0.5).forward(BATCH, "train")["output"]
    assert out[:, 0] == pytest.approx([-1 / 1.5, 1 / 1.5])


def test_eval_uses_running_statistics_and_does_not_update() -> None:
    layer = bn(eps=0.0001, running_mean=np.array([1.0]), running_var=np.array([4.0]),
               scale=np.array([2.0]), shift=np.array([0.5]))
    out = layer.forward(np.array([[5.0]]), "eval")["output"]
    assert out[0, 0] == pytest.approx(2.0 * (5.0 - 1.0) / np.sqrt(4.0001) + 0.5)
    assert layer.state.running_mean == pytest.approx([1.0])
    assert layer.state.batch_count == 0


def test_no_running_statistics_uses_batch_statistics_in_eval() -> None:
    layer = bn(running_stats=False)
    train = layer.forward(BATCH, "train")["output"]
    assert layer.forward(BATCH, "eval")["output"] == pytest.approx(train)
    assert layer.observe() == {}


def test_channel_last_equals_channel_first_transposed() -> None:
    x = np.random.default_rng(0).normal(size=(3, 4, 5, 2))
    first = bn(rank=4, num_features=4).forward(x, "train")["output"]
    last = bn(rank=4, num_features=4, channel_axis="last").forward(np.moveaxis(x, 1, -1), "train")["output"]
    assert np.moveaxis(last, -1, 1) == pytest.approx(first)


@pytest.mark.parametrize("mode", ["train", "eval"])
def test_gradients_match_finite_differences(mode: str) -> None:
    rng = np.random.default_rng(1)
    x, g = rng.normal(size=(4, 2, 3)), rng.normal(size=(4, 2, 3))
    kwargs = {"rank": 3, "num_features": 2, "scale": np.array([1.5, -0.7]), "shift": np.array([0.2, 0.1]),
              "running_mean": np.array([0.3, -0.2]), "running_var": np.array([2.0, 0.5])}

    def loss(x_: np.ndarray, scale: np.ndarray | None = None, shift: np.ndarray | None = None) -> float:
        args = dict(kwargs)
        args.update({k: v for k, v in (("scale", scale), ("shift", shift)) if v is not None})
        return float((bn(**args).forward(x_, mode)["output"] * g).sum())  # type: ignore[arg-type]

    grads = bn(**kwargs).forward(x, mode, g)  # type: ignore[arg-type]
    h = 1e-6
    numeric = np.zeros_like(x)
    for i in np.ndindex(x.shape):
        d = np.zeros_like(x)
        d[i] = h
        numeric[i] = (loss(x + d) - loss(x - d)) / (2 * h)
    assert grads["grad_input"] == pytest.approx(numeric, abs=1e-6)
    for name in ("scale", "shift"):
        base = kwargs[name]
        numeric_p = np.array([(loss(x, **{name: base + h * e}) - loss(x, **{name: base - h * e})) / (2 * h)
                              for e in np.eye(2)])
        assert grads[f"grad_{name}"] == pytest.approx(numeric_p, abs=1e-6)


def dropout(rate: float, **kwargs: object) -> ReferenceDropout:
    spec = DropoutSpec(rate=rate, rank=kwargs.pop("rank", 2), seed=0, **kwargs)  # type: ignore[arg-type]
    layer = build_reference(spec)
    assert isinstance(layer, ReferenceDropout)
    return layer


def test_dropout_train_keeps_values_scaled_by_inverse_keep_probability() -> None:
    x = np.full((200, 200), 3.0)
    y = dropout(0.25).forward(x, "train")["output"]
    assert set(np.unique(y)) == {0.0, 4.0}
    assert abs((y != 0).mean() - 0.75) < 0.02


def test_dropout_eval_identity_and_downscale() -> None:
    x = np.arange(6.0).reshape(2, 3)
    assert dropout(0.4).forward(x, "eval")["output"] == pytest.approx(x)
    down = dropout(0.4, scaling="eval")
    assert down.forward(x, "eval")["output"] == pytest.approx(0.6 * x)
    assert set(np.unique(down.forward(np.ones((50, 50)), "train")["output"])) == {0.0, 1.0}


def test_channel_dropout_mask_shape() -> None:
    spec = DropoutSpec(rate=0.5, rank=4, granularity="channel", channel_axis="last")
    assert dropout_mask_shape(spec, (2, 5, 5, 3)) == (2, 1, 1, 3)
    assert conventions_for(spec, {}).train_scale == "inverted"  # type: ignore[union-attr]


@pytest.mark.parametrize("rate", [-0.1, 1.5])
def test_invalid_dropout_rate_is_refused(rate: float) -> None:
    with pytest.raises(ValueError, match="between 0 and 1"):
        dropout(rate)
