"""Stand-in converters for the kit's tests: numpy reference layer in, numpy reference layer out,
converted by a real subprocess (``fake_convert_tool.py``) that plants a converter's bug. They
run in real worker processes like any converter, with no framework installed."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any, ClassVar

from conformance.adapters.base import Documented, LayerHandle
from conformance.adapters.numpy import NumpyAdapter
from conformance.converters.base import ConverterAdapter, layer_from_json
from conformance.model import LayerSpec

TOOL = Path(__file__).resolve().parent / "fake_convert_tool.py"


class _StandIn(ConverterAdapter):
    source = "numpy"
    target_runtime = "numpy"
    plant: ClassVar[str] = "none"
    timeout_s: ClassVar[float] = 3.0
    unsupported_words: ClassVar[tuple[str, ...]] = (r"is not supported",)
    documented: ClassVar[dict[str, Documented]] = NumpyAdapter.documented  # the source's promise

    def version(self) -> str:
        return "0.1-standin"

    def devices(self) -> list[str]:
        return ["cpu"]

    def command(self, source: Path, out: Path) -> list[str]:
        return [sys.executable, str(TOOL), self.plant, str(source), str(out)]

    def load(self, converted: Path, layer: LayerSpec, dtype: str, device: str) -> LayerHandle:
        data: dict[str, Any] = json.loads((converted / "layer.json").read_text(encoding="utf-8"))
        return NumpyAdapter().build(layer_from_json(data), dtype, device)


class Faithful(_StandIn):
    converter = "faithful"


class MomentumUnconverted(_StandIn):
    converter = "momentum-unconverted"
    plant = "momentum"


class TrainingDropped(_StandIn):
    converter = "training-dropped"
    plant = "training"
