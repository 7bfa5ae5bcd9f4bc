"""Numpy-backed adapters that deliberately behave like frameworks with other conventions,
or crash, for the kit's own tests. They run in real worker processes like any adapter."""

from __future__ import annotations

import os
import signal
import time
from typing import Any, ClassVar

import numpy as np

from conformance.adapters.base import Documented
from conformance.adapters.numpy import NumpyAdapter
from conformance.model import LayerSpec, Mode

LINK = "https://example.invalid/docs"


class BiasedUndocumented(NumpyAdapter):
    name = "biased_undocumented"
    conventions: ClassVar[dict[str, str]] = {"bn.running_var_estimator": "biased"}


class BiasedDocumented(NumpyAdapter):
    name = "biased_documented"
    conventions: ClassVar[dict[str, str]] = {"bn.running_var_estimator": "biased"}
    documented: ClassVar[dict[str, Documented]] = {
        "bn.running_var_estimator": Documented("biased", LINK, "multiply running_var by m/(m-1)")}


class ReversedMomentum(NumpyAdapter):
    """The converter bug: PyTorch's momentum passed unchanged to a Keras-style layer."""

    name = "reversed_momentum"
    conventions: ClassVar[dict[str, str]] = {"bn.momentum_weights": "old"}


class EpsOutside(NumpyAdapter):
    name = "eps_outside"
    conventions: ClassVar[dict[str, str]] = {"bn.eps_placement": "outside"}


class BatchStatsInEval(NumpyAdapter):
    name = "batch_stats_in_eval"
    conventions: ClassVar[dict[str, str]] = {"bn.eval_statistics": "batch"}


class NeverUpdates(NumpyAdapter):
    name = "never_updates"
    conventions: ClassVar[dict[str, str]] = {"bn.running_update": "none"}


class CumulativeRegardless(NumpyAdapter):
    """Averages every batch equally whatever update weight it is given."""

    name = "cumulative_regardless"
    conventions: ClassVar[dict[str, str]] = {"bn.running_update": "cumulative"}


class BiasedAndReversed(NumpyAdapter):
    """Two conventions at once: only a search over combinations explains it."""

    name = "biased_and_reversed"
    conventions: ClassVar[dict[str, str]] = {"bn.running_var_estimator": "biased", "bn.momentum_weights": "old"}


class UnscaledDropout(NumpyAdapter):
    name = "unscaled_dropout"
    conventions: ClassVar[dict[str, str]] = {"dropout.train_scale": "none"}


class _Shifted:
    def __init__(self, inner: Any) -> None:
        self.inner = inner

    def forward(self, x: np.ndarray, mode: Mode, grad_output: np.ndarray | None) -> dict[str, np.ndarray]:
        out = self.inner.forward(x, mode, grad_output)
        out["output"] = out["output"] + 0.01  # a bug no convention explains
        return out

    def state(self) -> dict[str, np.ndarray]:
        return dict(self.inner.state())


class OffByConstant(NumpyAdapter):
    name = "off_by_constant"

    def build(self, layer: LayerSpec, dtype: str, device: str) -> Any:
        return _Shifted(super().build(layer, dtype, device))


class Crashing(NumpyAdapter):
    """Crashes in the way the layer's eps asks for: 0.5 abort, 0.25 segfault, 0.125 hang,
    0.0625 a Python exception; any other eps behaves."""

    name = "crashing"

    def build(self, layer: LayerSpec, dtype: str, device: str) -> Any:
        eps = getattr(layer, "eps", None)
        if eps == 0.5:
            os.abort()
        if eps == 0.25:
            os.kill(os.getpid(), signal.SIGSEGV)
        if eps == 0.125:
            time.sleep(3600)
        if eps == 0.0625:
            raise RuntimeError("planted failure")
        return super().build(layer, dtype, device)


class BrokenImport(NumpyAdapter):
    name = "broken_import"

    def __init__(self) -> None:
        raise ImportError("simulated: libframework.so: cannot open shared object file")


class Slow(NumpyAdapter):
    """The reference, a quarter of a second per case: slow enough to be killed midway."""

    name = "slow"

    def build(self, layer: LayerSpec, dtype: str, device: str) -> Any:
        time.sleep(0.25)
        return super().build(layer, dtype, device)


class _ImpreciseVariance:
    """The running variance read back 0.1% too large: a precision error, on top of a
    documented convention."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner

    def forward(self, x: np.ndarray, mode: Mode, grad_output: np.ndarray | None) -> dict[str, np.ndarray]:
        return self.inner.forward(x, mode, grad_output)

    def state(self) -> dict[str, np.ndarray]:
        state = dict(self.inner.state())
        if "running_var" in state:
            state["running_var"] = state["running_var"] * 1.001
        return state


class BiasedDocumentedImprecise(BiasedDocumented):
    name = "biased_documented_imprecise"

    def build(self, layer: LayerSpec, dtype: str, device: str) -> Any:
        return _ImpreciseVariance(super().build(layer, dtype, device))


class Noisy(NumpyAdapter):
    """Talks like a framework: Python prints, a C-level write to fd 2, once per case; a
    layer with eps 0.5 writes its last words and aborts."""

    name = "noisy"

    def __init__(self) -> None:
        super().__init__()
        print("noisy: stdout at import")
        os.write(2, b"noisy: C++ log line on fd 2\n")

    def build(self, layer: LayerSpec, dtype: str, device: str) -> Any:
        import sys

        print("noisy: building on stdout", flush=True)
        print("noisy: warning on sys.stderr", file=sys.stderr, flush=True)
        if getattr(layer, "eps", None) == 0.5:
            os.write(2, b"noisy: last words before the abort\n")
            os.abort()
        return super().build(layer, dtype, device)


class ReportsItsProcess(NumpyAdapter):
    """Says in its environment whether its process was told it runs one framework only."""

    name = "reports_its_process"

    def environment(self, device: str) -> dict[str, Any]:
        return {**super().environment(device), "one_framework": os.environ.get("CONFORMANCE_WORKER", "")}
