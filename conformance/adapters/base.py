"""The interface every framework adapter implements. Numpy in, numpy out.

An adapter module imports its framework; it is only ever imported inside that framework's
worker process (``conformance.worker``), never by the rest of the kit.
"""

from __future__ import annotations

import platform
import sys
from abc import ABC, abstractmethod
from typing import Any, ClassVar, Protocol

import numpy as np

from conformance.adapters.documentation import Documented
from conformance.model import LayerSpec, Mode, Step

__all__ = ["Adapter", "DeviceUnavailable", "Documented", "LayerHandle", "Unsupported"]


class Unsupported(Exception):
    """The framework has no such feature (a valid answer, recorded as ``unsupported``)."""


class DeviceUnavailable(Exception):
    """The requested device is not visible to the framework (recorded as ``skipped``)."""


class LayerHandle(Protocol):
    def forward(
        self, x: np.ndarray, mode: Mode, grad_output: np.ndarray | None, context: str = "plain"
    ) -> dict[str, np.ndarray]:
        """Run one forward pass in ``mode``. Return ``output`` and, when ``grad_output`` is
        given, the gradients of ``sum(grad_output * output)``: ``grad_input`` and, for an
        affine batch norm, ``grad_scale`` and ``grad_shift`` (zeros when they are frozen).
        ``context`` is ``plain``, ``no_grad``, ``inference`` or ``compiled`` (raise
        ``Unsupported`` for one the framework lacks)."""
        ...

    def reset_running_stats(self) -> None:
        """Running mean 0, running variance 1, batch count 0 (optional: a handle without it
        makes ``reset`` steps ``unsupported``)."""
        ...

    def state(self) -> dict[str, np.ndarray]:
        """Current ``running_mean``, ``running_var`` and ``batch_count``, where the layer
        has them."""
        ...


class ModelHandle(Protocol):
    """A model case's model (``conformance.tree``) built by an adapter: ``build`` returns one
    for a ``ModelSpec``. Names are the leaves' names of the spec."""

    def run(self, step: Step, x: np.ndarray | None, grad_output: np.ndarray | None,
            index: int = -1) -> dict[str, np.ndarray]:
        """Carry out one model step in the framework's own idiom (``Step`` says how each
        entry, switch and freeze translates) and return ``{"output": ...}`` for a step that
        calls the model, ``{}`` otherwise. Raise ``Unsupported`` with the framework's words
        for what it cannot express (a call-site flag on a layer object in PyTorch, ``predict``
        outside Keras, ...)."""
        ...

    def state(self) -> dict[str, np.ndarray]:
        """Every leaf's state after the step, and the record of its last call:
        ``<bn>.running_mean``, ``.running_var``, ``.batch_count`` (where the framework counts),
        ``.scale``, ``.shift`` (affine), ``<linear>.weight`` (out, in: transposed back where the
        framework stores W^T), ``.bias``, and for batch-norm and dropout leaves ``.training``
        (1.0 or 0.0: the mode the leaf ran in at its last call, as the framework resolved it;
        absent where the adapter cannot know it) and for dropout leaves ``.mask``
        (``conformance.program.kept_mask`` of the leaf's input and output at its last call)."""
        ...


class Adapter(ABC):
    """One framework. Subclasses set ``name`` (the one name used everywhere) and
    ``documented`` (fact key -> Documented: every key of the reference's
    CONVENTION_VALUES, the built-in ones from ``conformance.adapters.documentation``), and
    implement the methods below."""

    name: ClassVar[str]
    install_hint: ClassVar[str] = ""
    documented: ClassVar[dict[str, Documented]] = {}

    @abstractmethod
    def version(self) -> str: ...

    @abstractmethod
    def devices(self) -> list[str]:
        """The neutral device names (``cpu``, ``gpu``) the framework can see."""

    @abstractmethod
    def build(self, layer: LayerSpec, dtype: str, device: str) -> LayerHandle:
        """Construct the native layer. Raise ``Unsupported`` for a feature the framework
        lacks and ``DeviceUnavailable`` for a device it cannot see."""

    def environment(self, device: str) -> dict[str, Any]:
        """The fingerprint stored with results; adapters add device and library details."""
        return {
            "python": sys.version.split()[0],
            "platform": platform.platform(),
            "machine": platform.machine(),
            "numpy": np.__version__,
        }

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "version": self.version(),
            "devices": self.devices(),
            "documented": {k: v.as_dict() for k, v in self.documented.items()},
        }
