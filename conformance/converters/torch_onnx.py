"""``torch-onnx:torch->onnxruntime``: a PyTorch layer exported by ``torch.onnx.export`` (the
TorchScript exporter, ``dynamo=False``) and run by ONNX Runtime. Imported only in its worker,
which imports onnx and onnxruntime, never torch: the export runs in a subprocess
(``torch_onnx_export``), whose ``train.onnx`` and ``eval.onnx`` this module loads.

Running the exported graphs (the same harness as the ``onnxruntime`` adapter, whose sessions
it reuses): a train step runs ``train.onnx`` (BatchNormalization ``training_mode=1``), an eval
step ``eval.onnx``; a frozen spec's train steps run ``eval.onnx``, as the torch source keeps a
frozen batch norm in ``eval()``. An ONNX graph keeps no state, and the exporter writes the
running statistics as initializers: the harness turns each BatchNormalization's
``input_mean``/``input_var`` initializers into graph inputs (their exported values the initial
state, fed at every call) and, in ``train.onnx``, exposes the node's ``running_mean`` /
``running_var`` outputs (which the exporter leaves dangling) as graph outputs, fed back at the
next call. Nothing else of the exported graph is changed: a node the exporter did not write
(no statistics outputs at all, say) leaves the state as it was, and the verdict shows it.

The column promises torch's semantics (``documented`` is torch's table): a converted layer that
behaves as torch documents conforms; one that behaves otherwise is a divergence that names what
explains it (ONNX Runtime's biased running variance, say). No gradients (an InferenceSession
computes none: ``unsupported``); CPU only.
"""

from __future__ import annotations

from importlib import metadata
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import onnx
import onnxruntime as ort
from onnx import helper, numpy_helper

from conformance.adapters.base import (
    DeviceUnavailable,
    Documented,
    LayerHandle,
    Unsupported,
)
from conformance.adapters.documentation import DOCUMENTED
from conformance.adapters.onnx_graphs import NUMPY_TYPES
from conformance.adapters.onnxruntime import PROVIDERS, _session_context, open_session
from conformance.converters.base import ConverterAdapter
from conformance.model import BatchNormSpec, LayerSpec, Mode


class _Graph:
    """One exported graph, its batch norms' statistics made inputs (and, in training, outputs)."""

    def __init__(self, path: Path, expose_updates: bool) -> None:
        model = onnx.load(str(path))
        graph = model.graph
        inits = {init.name: init for init in graph.initializer}
        # the exporter shares initializers of equal values: running_var = Identity(weight) when
        # both are ones; such a statistic is a constant of its own, fed like the others
        copies = {node.output[0]: node for node in graph.node
                  if node.op_type == "Identity" and node.input[0] in inits}
        self.statistics: list[tuple[str, str]] = []  # (input name, updated output name or "")
        self.initial: dict[str, np.ndarray] = {}
        for node in list(graph.node):
            if node.op_type != "BatchNormalization":
                continue
            for position in (3, 4):
                name = node.input[position]
                if name in copies and name not in self.initial:
                    init = inits[copies[name].input[0]]
                    self.initial[name] = numpy_helper.to_array(init).copy()
                    graph.input.append(helper.make_tensor_value_info(name, init.data_type, list(init.dims)))
                    graph.node.remove(copies[name])
                    inits[name] = init
                elif name in inits and name not in self.initial:
                    self.initial[name] = numpy_helper.to_array(inits[name]).copy()
                    graph.input.append(helper.make_tensor_value_info(
                        name, inits[name].data_type, list(inits[name].dims)))
                    graph.initializer.remove(inits[name])
                updated = node.output[position - 2] if len(node.output) > position - 2 else ""
                if expose_updates and updated:
                    graph.output.append(helper.make_tensor_value_info(
                        updated, inits[name].data_type if name in inits else onnx.TensorProto.FLOAT, None))
                self.statistics.append((name, updated if expose_updates else ""))
        self.model = model
        self.sessions: dict[str, ort.InferenceSession] = {}

    def run(self, feeds: dict[str, np.ndarray], level: str) -> dict[str, np.ndarray]:
        if level not in self.sessions:
            self.sessions[level] = open_session(self.model, PROVIDERS["cpu"], level)
        session = self.sessions[level]
        names = [o.name for o in session.get_outputs()]
        return dict(zip(names, session.run(None, feeds)))


class _Handle:
    """Both exported graphs of one layer and the statistics carried between calls."""

    def __init__(self, folder: Path, spec: LayerSpec, dtype: str) -> None:
        self.spec, self.np_type = spec, NUMPY_TYPES[dtype]
        self.train = _Graph(folder / "train.onnx", expose_updates=True)
        self.eval = _Graph(folder / "eval.onnx", expose_updates=False)
        self.initial = dict(self.eval.initial)
        self.values = {k: v.copy() for k, v in self.initial.items()}
        for graph in (self.train, self.eval):
            graph.run(self._feeds(graph, self._dummy()), "plain")  # a missing kernel shows at build time

    def _dummy(self) -> np.ndarray:
        shape = [2] * self.spec.rank
        if isinstance(self.spec, BatchNormSpec):
            shape[self.spec.rank - 1 if self.spec.channel_axis == "last" and self.spec.rank > 2 else 1] = \
                self.spec.num_features
        return np.ones(shape, self.np_type)

    def _feeds(self, graph: _Graph, x: np.ndarray) -> dict[str, np.ndarray]:
        return {"X": x, **{name: self.values[name] for name, _ in graph.statistics if name in self.values}}

    def forward(self, x: np.ndarray, mode: Mode, grad_output: np.ndarray | None,
                context: str = "plain") -> dict[str, np.ndarray]:
        level = _session_context(context, grad_output)
        frozen = isinstance(self.spec, BatchNormSpec) and self.spec.frozen
        graph = self.train if mode == "train" and not frozen else self.eval
        out = graph.run(self._feeds(graph, np.asarray(x, self.np_type)), level)
        for name, updated in graph.statistics:
            if updated and name in self.values:
                self.values[name] = np.asarray(out[updated])
        return {"output": out["Y"]}

    def _pair(self) -> tuple[str, str] | None:
        names = [name for name, _ in self.eval.statistics if name in self.values]
        return (names[0], names[1]) if len(names) == 2 else None

    def reset_running_stats(self) -> None:
        pair = self._pair()
        if pair is None:
            raise Unsupported("the exported graph holds no running statistics")
        self.values[pair[0]] = np.zeros_like(self.values[pair[0]])
        self.values[pair[1]] = np.ones_like(self.values[pair[1]])

    def state(self) -> dict[str, np.ndarray]:
        pair = self._pair()
        if pair is None or (isinstance(self.spec, BatchNormSpec) and not self.spec.running_stats):
            return {}
        return {"running_mean": self.values[pair[0]].copy(), "running_var": self.values[pair[1]].copy()}


def _version(distribution: str) -> str:
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return "unknown"


class TorchOnnxConverter(ConverterAdapter):
    """torch.onnx.export (TorchScript exporter) -> ONNX Runtime."""

    converter = "torch-onnx"
    source = "torch"
    target_runtime = "onnxruntime"
    timeout_s: ClassVar[float] = 90.0
    install_hint = 'pip install torch onnx onnxruntime'
    documented: ClassVar[dict[str, Documented]] = DOCUMENTED["torch"]  # the source's semantics
    unsupported_words: ClassVar[tuple[str, ...]] = (
        r"UnsupportedOperatorError", r"is not supported", r"[Uu]nsupported")

    def version(self) -> str:
        """The exporter's version: torch's (read from its metadata, torch is not imported here)."""
        return _version("torch")

    def devices(self) -> list[str]:
        return ["cpu"]

    def environment(self, device: str) -> dict[str, Any]:
        env = super().environment(device)
        env.update({"torch": _version("torch"), "onnx": str(onnx.__version__),
                    "onnxruntime": str(ort.__version__), "provider": PROVIDERS["cpu"],
                    "exporter": "torch.onnx.export(dynamo=False)", "device_name": "cpu"})
        return env

    def command(self, source: Path, out: Path) -> list[str]:
        import sys

        return [sys.executable, "-m", "conformance.converters.torch_onnx_export", str(source), str(out)]

    def build(self, layer: Any, dtype: str, device: str) -> LayerHandle:
        if device != "cpu":
            raise DeviceUnavailable("the torch-onnx converter runs its graphs on ONNX Runtime's "
                                    "CPUExecutionProvider only (a GPU run is not built yet)")
        if dtype not in NUMPY_TYPES:
            raise Unsupported(f"the kit feeds ONNX Runtime numpy arrays, and numpy has no {dtype}")
        return super().build(layer, dtype, device)

    def load(self, converted: Path, layer: LayerSpec, dtype: str, device: str) -> LayerHandle:
        return _Handle(converted, layer, dtype)
