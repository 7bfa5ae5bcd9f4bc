"""TensorFlow/Keras 3 models for model cases (``conformance.tree``): the backend-neutral Keras
model tree of ``conformance.adapters.keras3_model`` on the TensorFlow hooks of
``conformance.adapters.tf`` (``tf.device`` scopes, ``tf.constant`` inputs, records only from
eager calls). Imported only by ``TfAdapter.build``, inside the TensorFlow worker process."""

from __future__ import annotations

from conformance.adapters.keras3_model import KerasModelHandle
from conformance.adapters.keras3_model import build_model as _build
from conformance.adapters.tf import TF_BACKEND
from conformance.tree import ModelSpec


def build_model(spec: ModelSpec, dtype: str, device: str) -> KerasModelHandle:
    """The Keras model of ``spec`` on TensorFlow ``device`` (``/CPU:0``, ``/GPU:0``)."""
    return _build(TF_BACKEND, spec, dtype, device)
