"""The numpy reference run as if it were a framework.

The kit's own tests use it as a stand-in framework (so they pass with no framework
installed); ``conventions`` lets a test adapter behave like a framework with other
conventions. Conformance results for real frameworks never come from here.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any, ClassVar

import numpy as np

from conformance import inputs
from conformance.adapters.base import (
    Adapter,
    DeviceUnavailable,
    Documented,
    Unsupported,
)
from conformance.model import BatchNormSpec, LayerSpec, Mode, Step
from conformance.reference import (
    CONVENTION_VALUES,
    ReferenceBatchNorm,
    ReferenceDropout,
    build_reference,
)
from conformance.reference_model import ReferenceModel

DEFAULT_UPDATE_WEIGHT = 0.1
DEFAULT_EPS = 1e-5


class _Handle:
    def __init__(self, layer: ReferenceBatchNorm | ReferenceDropout, dtype: str) -> None:
        self.layer, self.dtype = layer, dtype

    def forward(self, x: np.ndarray, mode: Mode, grad_output: np.ndarray | None,
                context: str = "plain") -> dict[str, np.ndarray]:
        out = self.layer.forward(x, mode, grad_output, context)
        # a float32 framework rounds its results to float32; so does this stand-in
        return {k: inputs.round_to_dtype(v, self.dtype) for k, v in out.items()}

    def state(self) -> dict[str, np.ndarray]:
        return self.layer.observe()

    def reset_running_stats(self) -> None:
        if not isinstance(self.layer, ReferenceBatchNorm):
            raise Unsupported("dropout has no running statistics")
        self.layer.reset_running_stats()


class _ModelHandle:
    """A model case's model on the reference (``conformance.reference_model``)."""

    def __init__(self, model: ReferenceModel, dtype: str) -> None:
        self.model, self.dtype = model, dtype

    def run(self, step: Step, x: np.ndarray | None, grad_output: np.ndarray | None,
            index: int = -1) -> dict[str, np.ndarray]:
        out = self.model.run(step, x, grad_output, index)
        return {k: inputs.round_to_dtype(v, self.dtype) for k, v in out.items()}

    def state(self) -> dict[str, np.ndarray]:
        return self.model.observe()

    def reset_running_stats(self) -> None:
        self.model.reset_running_stats()


def reference_handle(layer: Any, settings: dict[str, str], dtype: str, observed: Any = None) -> Any:
    """The reference as a layer or model handle under ``settings``; a model follows the
    dropout masks of ``observed`` (a framework's run) in its random passes."""
    if getattr(layer, "kind", "") == "model":
        return _ModelHandle(ReferenceModel(layer, settings, observed), dtype)
    return _Handle(build_reference(NumpyAdapter._native(layer), settings), dtype)


REFERENCE_DOCS = "conformance/reference.py and conformance/reference_model.py (the kit's numpy reference)"


class NumpyAdapter(Adapter):
    """The reference as a framework. Its documentation is the reference's own: it documents
    the canonical value of every convention (a spec whose ``reference:`` picks another one
    finds it a documented ``convention``, as a framework's own documented value is). Subclasses
    that plant other conventions document nothing more, so what they plant is undocumented."""

    name = "numpy"
    install_hint = "numpy is a dependency of the kit; reinstall the kit"
    conventions: ClassVar[dict[str, str]] = {}
    documented: ClassVar[dict[str, Documented]] = {
        key: Documented(values[0], REFERENCE_DOCS, says="the reference's canonical value")
        for key, values in CONVENTION_VALUES.items()}

    def __init__(self, conventions: dict[str, str] | None = None) -> None:
        self.settings = dict(self.conventions if conventions is None else conventions)

    def version(self) -> str:
        return str(np.__version__)

    def devices(self) -> list[str]:
        return ["cpu"]

    def build(self, layer: LayerSpec, dtype: str, device: str) -> _Handle:
        if device != "cpu":
            raise DeviceUnavailable("the numpy reference runs on the CPU only")
        return reference_handle(layer, self.settings, dtype)

    @staticmethod
    def _native(layer: Any) -> Any:
        """This stand-in's own argument semantics: defaults update_weight 0.1 and eps 1e-5,
        a native momentum weighs the new value, a native rate is the probability to drop."""
        if isinstance(layer, BatchNormSpec):
            weight = layer.native_momentum if layer.native_momentum is not None else layer.update_weight
            return replace(layer, native_momentum=None,
                           update_weight=DEFAULT_UPDATE_WEIGHT if weight is None else weight,
                           eps=DEFAULT_EPS if layer.eps is None else layer.eps)
        if layer.native_rate is not None:
            return replace(layer, rate=layer.native_rate, native_rate=None)
        return layer
