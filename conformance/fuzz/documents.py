"""Drawn cases as spec documents: the values the fuzzer chooses from, how an input and a
spec file are written, and the features that set a case apart from the plainest one.
No hypothesis here: ``generate`` holds the strategies.

Every choice lists its plain, canonical value first (rank 2, batch 2, float32, update weight
0.1, eps 1e-5, standard normal input, a training step), because hypothesis shrinks each
choice towards its first value.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import yaml

from conformance import SPEC_VERSION, inputs
from conformance.model import DEFAULT_TOLERANCES

# first value = what a shrunk case falls back to
KINDS = ("batch_norm", "batch_norm", "batch_norm", "batch_norm", "dropout")
DTYPES = ("float32", "float64", "float16", "bfloat16")
RANKS = (2, 3, 4, 5)
LAYOUTS = ("first", "last")
BATCHES = (2, 3, 4, 1, 6, 8)  # 1: a batch of one
CHANNELS = (1, 2, 3, 4)
MAX_CHANNELS = max(CHANNELS)
SPATIAL = (2, 1, 3, 5)
UPDATE_WEIGHTS = (0.1, 0.5, 0.0, 1.0, 0.01, 0.9, 0.3)
EPS = (1e-5, 1e-3, 0.1, 1e-8, 1.0, 2.0**-10)
BN_ACTIONS = ("train", "eval", "train", "eval", "reset")
CONTEXTS = ("plain", "plain", "no_grad")
RATES = (0.5, 0.1, 0.0, 0.9, 1.0, 0.25)
SCALES = (2.0, 0.5, -1.5, 0.0)
SHIFTS = (0.5, -1.0, 0.0, 3.0)
RUNNING_MEANS = (1.0, -2.0, 0.0)
RUNNING_VARS = (0.5, 4.0, 1e-3)
MAX_STEPS = 5
DISTRIBUTIONS = ("normal", "shifted", "uniform", "constant", "tiny", "huge", "offset")
HALF = ("float16", "bfloat16")


def input_description(distribution: str, shape: list[int], seed: int, dtype: str) -> dict[str, Any]:
    """One generated input. Extreme magnitudes stay finite in ``dtype`` (float16 tops out
    at 65504), so the loader never refuses a drawn case."""
    half = dtype in HALF
    choices: dict[str, dict[str, Any]] = {
        "normal": {},
        "shifted": {"mean": 3.0, "std": 2.0},
        "uniform": {"distribution": "uniform", "low": -4.0, "high": 4.0},
        "constant": {"distribution": "constant", "value": 1.5},  # zero variance per channel
        "tiny": {"std": 1.0e-4},
        "huge": {"std": 1.0e3 if half else 1.0e6},
        "offset": {"mean": 1.0e3 if half else 1.0e4, "std": 1.0},  # cancellation in the variance
    }
    return {"shape": list(shape), "seed": seed, **choices[distribution]}


def shape_of(batch: int, channels: int, spatial: list[int], layout: str) -> list[int]:
    inner = [channels, *spatial] if layout == "first" else [*spatial, channels]
    return [batch, *inner]


def tolerance(case: dict[str, Any]) -> dict[str, float] | None:
    """A tolerance for inputs whose channels' mean is far from their spread, where a
    correct implementation loses digits (``offset`` inputs, or a small batch that happens
    to be tightly spread). The mean of m values near M, accumulated in precision u (float32
    for every dtype but float64: frameworks accumulate half precision in float32), is off
    by about u * M * log2(m), so the normalised output by that over the spread s::

        atol = 8 * u * max_c(|M_c| / s_c) * max(1, |scale|) * (1 + log2 m)

    (a gradient sums m such errors: sqrt(m) instead of 1 + log2 m). Returns ``{atol,
    rtol}`` where that exceeds the dtype's default atol, else None; the corpus's
    ``numerics::mean_1e4_std_1`` sets such a tolerance by hand."""
    dtype = case.get("dtype", "float32")
    default = DEFAULT_TOLERANCES[dtype]
    if case["layer"]["kind"] != "batch_norm":
        return None  # dropout only scales: the dtype's relative tolerance holds
    unit = 2.0**-53 if dtype == "float64" else 2.0**-24
    layer = case["layer"]
    scale = max([1.0, *(abs(v) for v in layer.get("scale", []))])
    gradients = any("grad_output" in step for step in case["steps"])
    axis = 1 if layer.get("channel_axis", "first") == "first" else -1
    worst = 0.0
    for step in case["steps"]:
        name = step.get("train") or step.get("eval")
        if name is None:
            continue
        x = inputs.generate(case["inputs"][name], dtype).astype(np.float64)
        x = np.moveaxis(x, axis, -1).reshape(-1, x.shape[axis]) if x.ndim > 1 else x.reshape(-1, 1)
        spread, centre = x.std(axis=0), np.abs(x.mean(axis=0))
        live = spread > 0  # a constant channel: x - mean is exactly 0
        if not live.any():
            continue
        m = x.shape[0]
        growth = math.sqrt(m) if gradients else 1 + math.log2(m)
        ratio = float((centre[live] / spread[live]).max())
        worst = max(worst, 8 * unit * ratio * scale * growth)
    if worst <= default.atol:
        return None
    return {"atol": float(f"{worst:.2g}"), "rtol": default.rtol}


def observed(kind: str, affine: bool, gradients: bool) -> list[str]:
    if kind == "dropout":
        return ["output", "grad_input"] if gradients else ["output"]
    quantities = ["output", "running_mean", "running_var"]
    if gradients:
        quantities += ["grad_input", "grad_scale", "grad_shift"] if affine else ["grad_input"]
    return quantities


def spec_document(case: dict[str, Any], description: str = "") -> dict[str, Any]:
    """A whole spec file holding ``case``."""
    doc: dict[str, Any] = {"conformance_spec": SPEC_VERSION}
    if description:
        doc["description"] = description
    doc["cases"] = [case]
    return doc


# libyaml's emitter where PyYAML has it; both write plain data only
_Dumper: Any = getattr(yaml, "CSafeDumper", yaml.SafeDumper)


def to_text(doc: dict[str, Any]) -> str:
    """Spec YAML: block style for the structure, flow style for shapes, lists and steps."""
    return str(yaml.dump(doc, Dumper=_Dumper, sort_keys=False, default_flow_style=None, width=100))


def size(case: dict[str, Any], text: str) -> tuple[int, int, int]:
    """Smaller is simpler: fewer steps, fewer input values, shorter text."""
    values = 0
    for desc in case["inputs"].values():
        n = 1
        for d in desc["shape"]:
            n *= d
        values += n
    return (len(case["steps"]), values, len(text))


_DEFAULTS = {"update_weight": 0.1, "eps": 1e-5, "rate": 0.5}


def features(case_doc: dict[str, Any]) -> frozenset[str]:
    """What sets a drawn case apart from the plainest one (a float32 rank-2 batch norm,
    batch 2 or more, update weight 0.1, eps 1e-5, standard normal input, training steps)."""
    layer, found = case_doc["layer"], set()
    if layer["kind"] != "batch_norm":
        found.add(f"kind={layer['kind']}")
    dtype = case_doc.get("dtype", "float32")
    if dtype != "float32":
        found.add(f"dtype={dtype}")
    inputs = case_doc["inputs"]
    forward = [s for s in case_doc["steps"] if "train" in s or "eval" in s]
    shapes = [inputs[s.get("train") or s["eval"]]["shape"] for s in forward]
    if len(shapes[0]) != 2:
        found.add(f"rank={len(shapes[0])}")
    if layer.get("channel_axis", "first") == "last" and (len(shapes[0]) > 2 or layer["kind"] == "dropout"):
        found.add("channel_axis=last")
    if any(shape[0] == 1 for shape in shapes):
        found.add("batch=1")
    for key, default in _DEFAULTS.items():
        if key in layer and layer[key] != default:
            found.add(f"{key}={layer[key]:g}")
    for key in ("update", "granularity", "scaling"):
        if key in layer:
            found.add(f"{key}={layer[key]}")
    if layer.get("affine") is False:
        found.add("affine=false")
    found |= {name for name, key in (("scale_shift", "scale"), ("running_init", "running_mean"),
                                      ("frozen", "frozen")) if key in layer}
    for step in case_doc["steps"]:
        found |= {"eval"} if "eval" in step else set()
        found |= {"reset"} if "reset" in step else set()
        found |= {"grad"} if "grad_output" in step else set()
        found |= {f"context={step['context']}"} if "context" in step else set()
    for step in forward:
        desc = inputs[step.get("train") or step["eval"]]
        found |= {f"dist={d}" for d in [_distribution(desc, dtype)] if d != "normal"}
    return frozenset(found)


def _distribution(desc: dict[str, Any], dtype: str) -> str:
    for name in DISTRIBUTIONS:
        if input_description(name, desc["shape"], desc.get("seed", 0), dtype) == desc:
            return name
    return "literal"
