"""ONNX Runtime adapter: each layer spec becomes an ONNX graph (``onnx_graphs``), run by an
``onnxruntime.InferenceSession`` on the CPUExecutionProvider (CUDAExecutionProvider for the
gpu device). Imported only inside the onnxruntime worker process.

An ONNX graph keeps no state: the handle holds a batch norm's running mean and variance as
numpy arrays, feeds them as ``input_mean``/``input_var`` at every call and, in training mode
(``training_mode=1``), keeps the ``running_mean``/``running_var`` outputs for the next call.
ONNX Runtime's CPU kernel feeds the running variance with the biased (divide-by-m) batch
variance it normalises with, as the ONNX operator page states ("ReduceVar refers to the
population variance"; onnxruntime/core/providers/cpu/nn/batch_norm.h divides by N * spatial).

Contexts: ``plain`` runs the graph as built (``ORT_DISABLE_ALL``), ``compiled`` through ONNX
Runtime's graph optimizer (``ORT_ENABLE_ALL``, the level a default session uses), ``no_grad``
is ``plain`` (a session records no gradients); ``inference`` and ``graph`` are unsupported.
Measured on the CPU (onnxruntime 1.32): both levels give the same numbers for these graphs.

Dropout with a ``seed`` attribute: the kernel seeds its generator once, when the session is
created, and draws a new mask at every training call (measured: successive calls differ, a
new session repeats the first mask). Each context has its own session, hence its own
generator.

The gpu device (CUDAExecutionProvider, from the onnxruntime-gpu package) is unverified: the
CUDA kernel's source (onnxruntime/core/providers/cuda/nn/batch_norm.cc) trains only when all
five outputs of the opset-9 form are present, so an opset-15 training node (three outputs)
may run its inference path there; a GPU run would show it as a divergence, never a pass.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import onnx
import onnxruntime as ort

from conformance.adapters import onnx_graphs
from conformance.adapters.base import (
    Adapter,
    DeviceUnavailable,
    Documented,
    Unsupported,
)
from conformance.adapters.documentation import DOCUMENTED
from conformance.model import BatchNormSpec, DropoutSpec, LayerSpec, Mode

PROVIDERS = {"cpu": "CPUExecutionProvider", "gpu": "CUDAExecutionProvider"}
LEVELS = {"plain": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,  # the graph as built
          "compiled": ort.GraphOptimizationLevel.ORT_ENABLE_ALL}  # ORT's default level
NO_GRADIENTS = (
    "an onnxruntime.InferenceSession runs the forward graph only and computes no gradients; "
    "training with gradients needs the onnxruntime-training package's artifacts "
    "(onnxruntime.training.artifacts.generate_artifacts and a training session)")
_NotImplementedError: type[Exception] = getattr(
    ort.capi.onnxruntime_pybind11_state, "NotImplemented", RuntimeError)


@dataclass
class _Sessions:
    """The sessions of one layer on one device: one per (graph variant, context), built on
    first use and kept, so a Dropout kernel's random generator carries over between calls."""

    models: dict[str, onnx.ModelProto]
    provider: str
    threads: int = 0  # intra_op_num_threads; 0 lets ONNX Runtime choose

    def __post_init__(self) -> None:
        self._open: dict[tuple[str, str], ort.InferenceSession] = {}

    def get(self, variant: str, context: str) -> ort.InferenceSession:
        key = (variant, context)
        if key not in self._open:
            self._open[key] = open_session(self.models[variant], self.provider, context, self.threads)
        return self._open[key]


def open_session(model: onnx.ModelProto, provider: str, context: str = "plain",
                 threads: int = 0) -> ort.InferenceSession:
    """An InferenceSession at the context's optimization level; a kernel ONNX Runtime does
    not implement (bfloat16 BatchNormalization on the CPU, say) is ``Unsupported`` with ONNX
    Runtime's own message."""
    options = ort.SessionOptions()
    options.graph_optimization_level = LEVELS[context]
    options.intra_op_num_threads = threads
    options.log_severity_level = 3  # errors only
    try:
        return ort.InferenceSession(model.SerializeToString(), options, providers=[provider])
    except _NotImplementedError as exc:
        raise Unsupported(f"onnxruntime {ort.__version__} on {provider}: {exc}") from exc


def _session_context(context: str, grad_output: np.ndarray | None) -> str:
    """The session (optimization level) a forward context runs in."""
    if grad_output is not None:
        raise Unsupported(NO_GRADIENTS)
    if context == "inference":
        raise Unsupported(
            "ONNX Runtime has no inference-mode context: every InferenceSession.run is already "
            "a pass that records nothing (the no_grad context here); the inference behaviour "
            "of a node is its training_mode, i.e. the eval mode, not a context")
    if context == "graph":
        raise Unsupported(
            "ONNX Runtime has no TF1-style deferred graph with separate update ops: every run "
            "is a graph in a session, and a batch norm's updated statistics are outputs of the "
            "same run (the plain context)")
    if context not in ("plain", "no_grad", "compiled"):
        raise ValueError(f"unknown forward context {context!r}")
    return "compiled" if context == "compiled" else "plain"  # no_grad: nothing is recorded anyway


def _same(primary: np.ndarray, other: np.ndarray, what: str) -> None:
    """Two graphs ONNX defines as the same computation must agree bit for bit."""
    if not np.array_equal(primary, other, equal_nan=True):
        worst = float(np.nanmax(np.abs(primary.astype(np.float64) - other.astype(np.float64))))
        raise RuntimeError(f"onnxruntime {ort.__version__}: {what} differ (max |difference| "
                           f"{worst:g}); ONNX defines them as the same computation")


class _BatchNormHandle:
    """A BatchNormalization graph and the running statistics the handle carries between calls."""

    def __init__(self, spec: BatchNormSpec, dtype: str, provider: str) -> None:
        self.spec, self.np_type = spec, onnx_graphs.NUMPY_TYPES.get(dtype, np.float32)
        self.sessions = _Sessions({v: onnx_graphs.batch_norm_model(spec, dtype, v)
                                   for v in ("train", "eval", "eval_default")}, provider)
        self.reset_running_stats()
        if spec.running_mean is not None:
            self.mean = np.asarray(spec.running_mean, self.np_type).reshape(-1)
        if spec.running_var is not None:
            self.var = np.asarray(spec.running_var, self.np_type).reshape(-1)
        self.sessions.get("train", "plain")  # a missing kernel is found at build time
        self.sessions.get("eval", "plain")

    def forward(self, x: np.ndarray, mode: Mode, grad_output: np.ndarray | None,
                context: str = "plain") -> dict[str, np.ndarray]:
        """Training mode: one training_mode=1 run, whose running_mean/running_var outputs
        become the handle's statistics. Eval mode, and training mode of a frozen spec (ONNX
        has no freeze flag: a frozen batch norm is an inference-mode node): training_mode=0,
        cross-checked against the same graph without the attribute (ONNX's default)."""
        level = _session_context(context, grad_output)
        feeds = {"X": np.asarray(x, self.np_type), "input_mean": self.mean, "input_var": self.var}
        if mode == "train" and not self.spec.frozen:
            y, self.mean, self.var = self.sessions.get("train", level).run(None, feeds)
            return {"output": y}
        (y,) = self.sessions.get("eval", level).run(None, feeds)
        (y_default,) = self.sessions.get("eval_default", level).run(None, feeds)
        _same(y, y_default, "training_mode=0 and training_mode absent")
        return {"output": y}

    def reset_running_stats(self) -> None:
        """Running mean 0, running variance 1 (ONNX counts no batches)."""
        self.mean = np.zeros(self.spec.num_features, self.np_type)
        self.var = np.ones(self.spec.num_features, self.np_type)

    def state(self) -> dict[str, np.ndarray]:
        """The statistics the next call feeds in; no ``batch_count``."""
        return {"running_mean": self.mean.copy(), "running_var": self.var.copy()}


class _DropoutHandle:
    """A Dropout graph whose training_mode is a boolean input: one session serves both modes,
    and its kernel's generator (seeded once from the seed attribute) moves on at every
    training call."""

    def __init__(self, spec: DropoutSpec, dtype: str, provider: str) -> None:
        self.np_type = onnx_graphs.NUMPY_TYPES.get(dtype, np.float32)
        self.sessions = _Sessions({v: onnx_graphs.dropout_model(spec, dtype, v)
                                   for v in ("training_mode_input", "no_training_mode")}, provider)
        self.sessions.get("training_mode_input", "plain")  # a missing kernel is found at build time

    def forward(self, x: np.ndarray, mode: Mode, grad_output: np.ndarray | None,
                context: str = "plain") -> dict[str, np.ndarray]:
        """``training_mode`` True in train, False in eval; an eval pass is cross-checked
        against the graph without the training_mode input (ONNX's default, False)."""
        level = _session_context(context, grad_output)
        data = np.asarray(x, self.np_type)
        feeds = {"data": data, "training_mode": np.array(mode == "train")}
        output, mask = self.sessions.get("training_mode_input", level).run(None, feeds)
        if mode == "eval":
            default, _ = self.sessions.get("no_training_mode", level).run(None, {"data": data})
            _same(output, default, "training_mode=False and training_mode absent")
        if np.any(output[~mask] != 0):  # the mask output says which units the output dropped
            raise RuntimeError(f"onnxruntime {ort.__version__}: Dropout's mask output is False "
                               "where its output is not 0")
        return {"output": output}

    def state(self) -> dict[str, np.ndarray]:
        return {}


class OnnxRuntimeAdapter(Adapter):
    """ONNX graphs run by ONNX Runtime."""

    name = "onnxruntime"
    install_hint = 'pip install "conformance[onnxruntime]"  (or: pip install onnx onnxruntime)'
    documented: ClassVar[dict[str, Documented]] = DOCUMENTED["onnxruntime"]  # every convention, with its page

    def version(self) -> str:
        return str(ort.__version__)

    def devices(self) -> list[str]:
        available = ort.get_available_providers()
        return [device for device, provider in PROVIDERS.items() if provider in available]

    def environment(self, device: str) -> dict[str, Any]:
        env = super().environment(device)
        info = ort.capi.build_and_package_info
        env.update({
            "onnxruntime": str(ort.__version__),
            "onnx": str(onnx.__version__),
            "opset": onnx_graphs.OPSET,
            "providers": list(ort.get_available_providers()),
            "provider": PROVIDERS.get(device, ""),
            "device": device,
            "device_name": ort.get_device() if device == "gpu" else "cpu",
            "package": str(getattr(info, "package_name", "")),
            "cuda": getattr(info, "cuda_version", None),
            "cudnn": getattr(info, "cudnn_version", None),
            "graph_optimization_level": {"plain": "ORT_DISABLE_ALL", "no_grad": "ORT_DISABLE_ALL",
                                         "compiled": "ORT_ENABLE_ALL"},
            "intra_op_num_threads": 0,  # 0: ONNX Runtime's choice (one per physical core)
        })
        return env

    def build(self, layer: LayerSpec, dtype: str, device: str) -> Any:
        if device not in self.devices():
            raise DeviceUnavailable(
                f"onnxruntime {ort.__version__} has no {PROVIDERS.get(device, device)} (available: "
                f"{', '.join(ort.get_available_providers())}); for a GPU install onnxruntime-gpu "
                "on a machine with CUDA" if device in PROVIDERS else f"unknown device {device!r}")
        if getattr(layer, "kind", "") == "model":
            raise Unsupported(
                "ONNX Runtime runs graphs, not models with modes: there is no train()/eval(), no "
                "training call argument and no optimizer step in an InferenceSession; each "
                "node's mode is fixed in the graph (BatchNormalization's training_mode "
                "attribute, Dropout's training_mode input)")
        if dtype not in onnx_graphs.TENSOR_TYPES:
            raise Unsupported(f"the onnxruntime adapter builds float16, bfloat16, float32 and "
                              f"float64 graphs, not {dtype}")
        if isinstance(layer, BatchNormSpec):
            _check_batch_norm(layer)
            return _BatchNormHandle(layer, dtype, PROVIDERS[device])
        _check_dropout(layer)
        return _DropoutHandle(layer, dtype, PROVIDERS[device])


def _check_batch_norm(spec: BatchNormSpec) -> None:
    """What ONNX's BatchNormalization cannot express."""
    if spec.update == "cumulative":
        raise Unsupported("ONNX BatchNormalization updates the running statistics with an "
                          "exponential average (momentum) only; there is no cumulative (1/k) "
                          "average and no batch counter")
    if not spec.running_stats:
        raise Unsupported("ONNX BatchNormalization always takes input_mean and input_var, and "
                          "with training_mode=0 normalises with them; there is no "
                          "track_running_stats=False (batch statistics in inference)")
    # trainable only concerns gradients, which a session does not compute (NO_GRADIENTS)


def _check_dropout(spec: DropoutSpec) -> None:
    """What ONNX's Dropout cannot express."""
    if spec.scaling == "eval":
        raise Unsupported("ONNX Dropout scales kept values by 1/(1 - ratio) in training and is "
                          "the identity otherwise; there is no downscale-in-inference mode")
    if spec.granularity == "channel" and spec.rank > 2:
        raise Unsupported("ONNX Dropout draws one mask value per element; it has no "
                          "noise_shape and ONNX has no channel-wise (spatial) dropout operator")
