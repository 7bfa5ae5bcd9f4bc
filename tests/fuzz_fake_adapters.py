"""Numpy-backed adapters with one planted divergence each, for the fuzzer's tests. Each is
the reference everywhere except in one corner of the configuration space."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np

from conformance.adapters.numpy import NumpyAdapter
from conformance.model import BatchNormSpec, LayerSpec, Mode

PLANTED_SHIFT = 0.5
EPS_THRESHOLD = 1e-3


class _ShiftBatchOne:
    """Adds ``PLANTED_SHIFT`` to the training output of a batch of one sample."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner

    def forward(self, x: np.ndarray, mode: Mode, grad_output: np.ndarray | None,
                context: str = "plain") -> dict[str, np.ndarray]:
        out = self.inner.forward(x, mode, grad_output, context)
        if mode == "train" and x.shape[0] == 1:
            out["output"] = out["output"] + PLANTED_SHIFT
        return out

    def state(self) -> dict[str, np.ndarray]:
        return dict(self.inner.state())

    def reset_running_stats(self) -> None:
        self.inner.reset_running_stats()


class BatchOne(NumpyAdapter):
    """Diverges only for a training batch of one sample (any rank, any layer)."""

    name = "batch_one"

    def build(self, layer: LayerSpec, dtype: str, device: str) -> Any:
        return _ShiftBatchOne(super().build(layer, dtype, device))


class Rank4ChannelLast(NumpyAdapter):
    """Feeds the running variance the biased batch variance, but only for a rank-4 batch
    norm with the channel axis last (an NHWC kernel that differs from the NCHW one)."""

    name = "rank4_last"

    def build(self, layer: LayerSpec, dtype: str, device: str) -> Any:
        if isinstance(layer, BatchNormSpec) and layer.rank == 4 and layer.channel_axis == "last":
            return NumpyAdapter({"bn.running_var_estimator": "biased"}).build(layer, dtype, device)
        return super().build(layer, dtype, device)


class SmallEps(NumpyAdapter):
    """Replaces an eps below ``EPS_THRESHOLD`` by 1 (a units bug), so it diverges only for
    small eps, and only where the batch variance is not huge."""

    name = "small_eps"

    def build(self, layer: LayerSpec, dtype: str, device: str) -> Any:
        if isinstance(layer, BatchNormSpec) and layer.eps is not None and layer.eps < EPS_THRESHOLD:
            layer = replace(layer, eps=1.0)
        return super().build(layer, dtype, device)


class NoHalf(NumpyAdapter):
    """Raises when asked for a float16 layer."""

    name = "no_half"

    def build(self, layer: LayerSpec, dtype: str, device: str) -> Any:
        if dtype == "float16":
            raise RuntimeError("planted: no float16 kernel")
        return super().build(layer, dtype, device)
