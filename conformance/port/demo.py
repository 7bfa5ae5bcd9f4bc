"""The model-level check (``conformance port --demo``): an MLP and a small CNN with batch norm
and dropout, built in each framework from identical initial weights, trained a few SGD steps
on scikit-learn's digits (8x8 images shipped inside the package), then compared with PyTorch:
running statistics and eval outputs, with the correct translation of PyTorch's
``BatchNorm1d/2d(momentum=0.1)`` and with the classic mistake (momentum=0.1 passed unchanged
to Paddle or Keras, whose momentum weighs the old value: an update weight of 0.9).

Dropout is made comparable by injecting the same masks (inverted dropout, ``keep / (1 - p)``)
in every framework. Each framework runs in its own process (``demo_worker``); weights, data,
masks and results travel as .npz files in a temporary folder.

Running variances are compared as stored and after converting Keras' and Paddle's biased
estimate to PyTorch's unbiased one (``adjust_variance``, exact here: m, w and k are known).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import numpy as np

from conformance.port.catalog import LABEL
from conformance.port.translation import translate

SOURCES = {"mlp": "torch.nn.BatchNorm1d(32, momentum=0.1, eps=1e-5)",
           "cnn": "torch.nn.BatchNorm2d(8, momentum=0.1, eps=1e-5)"}
BATCH, RATE, LR = 64, 0.2, 0.3
VALUES_PER_CHANNEL = {"mlp": BATCH, "cnn": BATCH * 8 * 8}  # m: (N) and (N, H, W) values per channel
TIMEOUT_S = 300


class DemoUnavailable(RuntimeError):
    """A package the demo needs is missing; the message says what to install."""


def bn_arguments(steps: int) -> dict[str, Any]:
    """Per framework, variant and model the batch-norm keyword arguments: the port's
    translation of PyTorch's source, and the mistake (PyTorch's momentum unchanged)."""
    config: dict[str, Any] = {"torch": {"correct": {}}, "paddle": {"correct": {}, "mistake": {}},
                              "tf": {"correct": {}, "mistake": {}}, "lr": LR, "steps": steps,
                              "values_per_channel": VALUES_PER_CHANNEL}
    for model, source in SOURCES.items():
        for framework in ("torch", "paddle", "tf"):
            kwargs = dict(translate(source, "torch", framework).arguments[2])
            kwargs.pop("dtype", None)  # float32 everywhere: the frameworks' default
            if framework == "tf" and model == "cnn":
                kwargs["axis"] = -1  # the Keras CNN is channels last (TF's CPU convolutions are NHWC)
            config[framework]["correct"][model] = kwargs
            if framework != "torch":
                config[framework]["mistake"][model] = {**kwargs, "momentum": 0.1}  # PyTorch's value, untranslated
    return config


def inputs(steps: int, seed: int = 0) -> dict[str, np.ndarray]:
    """Digits, initial weights (PyTorch layout), dropout masks and batches."""
    try:
        from sklearn.datasets import load_digits
    except ImportError:
        raise DemoUnavailable('the demo trains on scikit-learn\'s digits: pip install "conformance[port]" '
                              "(or: pip install scikit-learn)") from None
    digits = load_digits()
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(digits.target))
    x = (digits.data[order] / 16.0).astype(np.float32)
    y = digits.target[order].astype(np.int64)
    split = 1280
    out = {"x_train": x[:split], "y_train": y[:split], "x_test": x[split:], "y_test": y[split:],
           "batches": np.stack([rng.choice(split, BATCH, replace=False) for _ in range(steps)])}
    shapes = {"mlp_first": ((32, 64), 64), "mlp_last": ((10, 32), 32), "cnn_first": ((8, 1, 3, 3), 9),
              "cnn_last": ((10, 512), 512)}
    for name, (shape, fan_in) in shapes.items():
        out[f"{name}_w"] = rng.normal(0.0, np.sqrt(2.0 / fan_in), shape).astype(np.float32)
        out[f"{name}_b"] = rng.normal(0.0, 0.1, shape[0]).astype(np.float32)
    for model, units in (("mlp", 32), ("cnn", 8)):  # one draw per unit (MLP) or per channel (CNN)
        keep = rng.random((steps, BATCH, units)) >= RATE
        out[f"{model}_masks"] = (keep / (1.0 - RATE)).astype(np.float32)
    return out


def _spawn(framework: str, folder: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "OMP_NUM_THREADS": "1"}
    return subprocess.Popen([sys.executable, "-m", "conformance.port.demo_worker", framework, str(folder)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)


@dataclass
class Comparison:
    """One model, one framework against PyTorch, one variant."""

    model: str
    framework: str
    variant: str
    mean: float  # max |difference| / max |PyTorch's value|, over channels
    var_stored: float  # the same for the running variance as stored
    var_adjusted: float  # after converting the framework's estimator to PyTorch's (adjust_variance)
    logits: float  # max |difference| of the eval logits on the held-out digits
    logits_adjusted: float  # the same with the converted running variance set into the layer
    accuracy: float  # the framework's held-out accuracy


@dataclass
class DemoResult:
    steps: int
    seconds: float
    accuracy_torch: dict[str, float] = field(default_factory=dict)
    comparisons: list[Comparison] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    def get(self, model: str, framework: str, variant: str) -> Comparison:
        return next(c for c in self.comparisons if (c.model, c.framework, c.variant) == (model, framework, variant))


def _relative(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.max(np.abs(a - b)) / max(float(np.max(np.abs(b))), 1e-12))


def run_demo(frameworks: list[str], steps: int = 20) -> DemoResult:
    """Train in every framework (PyTorch plus at least one other) and compare with PyTorch."""
    if "torch" not in frameworks or len(frameworks) < 2:
        raise DemoUnavailable("the demo compares PyTorch with Paddle and/or Keras: --frameworks torch,paddle,tf")
    start = time.perf_counter()
    result = DemoResult(steps, 0.0)
    data = inputs(steps)
    with tempfile.TemporaryDirectory(prefix="conformance-port-demo-") as tmp:
        folder = Path(tmp)
        np.savez(folder / "inputs.npz", **cast(dict[str, Any], data))
        config = bn_arguments(steps)
        (folder / "config.json").write_text(json.dumps(config), encoding="utf-8")
        procs = {fw: _spawn(fw, folder) for fw in frameworks}
        outputs = {}
        for fw, proc in procs.items():
            try:
                _, err = proc.communicate(timeout=TIMEOUT_S)
            except subprocess.TimeoutExpired:
                proc.kill()
                result.problems.append(f"{fw}: no answer within {TIMEOUT_S} s")
                continue
            if proc.returncode != 0:
                tail = err.decode(errors="replace").strip().splitlines()[-3:]
                result.problems.append(f"{fw} failed (exit {proc.returncode}): {' | '.join(tail)}")
                continue
            with np.load(folder / f"{fw}.npz") as npz:
                outputs[fw] = {k: npz[k] for k in npz.files}
    result.seconds = time.perf_counter() - start
    if "torch" not in outputs:
        return result
    y_test = data["y_test"]
    ref = outputs["torch"]
    for model in SOURCES:
        result.accuracy_torch[model] = float(np.mean(ref[f"{model}/correct/logits"].argmax(1) == y_test))
        for fw, out in outputs.items():
            if fw == "torch":
                continue
            for variant in ("correct", "mistake"):
                result.comparisons.append(_compare(model, fw, variant, out, ref, y_test))
    return result


def _compare(model: str, fw: str, variant: str, out: dict[str, np.ndarray], ref: dict[str, np.ndarray],
             y_test: np.ndarray) -> Comparison:
    key, base = f"{model}/{variant}", f"{model}/correct"
    return Comparison(
        model, fw, variant,
        mean=_relative(out[f"{key}/running_mean"], ref[f"{base}/running_mean"]),
        var_stored=_relative(out[f"{key}/running_var"], ref[f"{base}/running_var"]),
        var_adjusted=_relative(out[f"{key}/running_var_adjusted"], ref[f"{base}/running_var"]),
        logits=float(np.max(np.abs(out[f"{key}/logits"] - ref[f"{base}/logits"]))),
        logits_adjusted=float(np.max(np.abs(out[f"{key}/logits_adjusted"] - ref[f"{base}/logits"]))),
        accuracy=float(np.mean(out[f"{key}/logits"].argmax(1) == y_test)))


def render(result: DemoResult) -> str:
    lines = [(f"Model-level check: scikit-learn digits (1280 training, 517 held-out), {result.steps} SGD steps "
              f"of {BATCH} (lr {LR}), dropout {RATE} with the same injected masks, float32, CPU; "
              f"{result.seconds:.1f} s in all."),
             "Batch norm written in PyTorch as " + " and ".join(SOURCES.values()) + ";",
             "'correct': the port's translation (Paddle/Keras momentum=0.9); 'mistake': momentum=0.1 passed unchanged.",
             ("Differences from PyTorch: running statistics as max|diff|/max|PyTorch| over channels; running_var "
              "as stored and after converting the biased estimate to PyTorch's unbiased one (adjust_variance, "
              "exact); eval logits as max|diff| on the held-out digits, as trained and with the converted "
              "variance set into the layer (adj.)."), ""]
    header = (f"{'model':<5} {'framework':<9} {'variant':<8} {'mean':>9} {'var':>9} {'var adj.':>9} {'logits':>9} "
              f"{'adj.':>9} {'accuracy':>9}")
    lines += [header, "-" * len(header)]
    for c in result.comparisons:
        lines.append(f"{c.model:<5} {LABEL[c.framework]:<9} {c.variant:<8} {c.mean:>9.2e} {c.var_stored:>9.2e} "
                     f"{c.var_adjusted:>9.2e} {c.logits:>9.2e} {c.logits_adjusted:>9.2e} {c.accuracy:>9.3f}")
    for model, accuracy in result.accuracy_torch.items():
        lines.append(f"{model:<5} {'PyTorch':<9} {'source':<8}{'':>50} {accuracy:>9.3f}")
    for problem in result.problems:
        lines.append(f"! {problem}")
    return "\n".join(lines)


def main(frameworks: list[str], steps: int = 20) -> int:
    try:
        result = run_demo(frameworks, steps)
    except DemoUnavailable as exc:
        from conformance.port.parse import PortError

        raise PortError(str(exc)) from None
    print(render(result))
    return 1 if result.problems else 0
