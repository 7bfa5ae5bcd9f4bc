"""Hypothesis strategies that draw neutral layer configurations as spec *documents*.

A drawn case is a plain dict that serialises to spec YAML (``documents.to_text``) and loads
with ``conformance.spec.load_text``, so every generated case is valid by construction and
the file the fuzzer writes is exactly the program that ran. Every choice is a
``sampled_from`` whose first value is the plain one, so a shrunk case keeps only the
choices its divergence needs.
"""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st

from conformance.fuzz.documents import (
    BATCHES,
    BN_ACTIONS,
    CHANNELS,
    CONTEXTS,
    DISTRIBUTIONS,
    DTYPES,
    EPS,
    KINDS,
    LAYOUTS,
    MAX_CHANNELS,
    MAX_STEPS,
    RANKS,
    RATES,
    RUNNING_MEANS,
    RUNNING_VARS,
    SCALES,
    SHIFTS,
    SPATIAL,
    UPDATE_WEIGHTS,
    input_description,
    observed,
    shape_of,
    tolerance,
)

# the strategies, made once (a strategy built per draw costs more than the draw)
_GRANULARITY = st.sampled_from(("element", "channel"))
_UPDATE = st.sampled_from(("ema", "ema", "ema", "cumulative"))
_SCALING = st.sampled_from(("train", "eval"))
_RARELY = st.sampled_from((False, False, False, True))
_SOMETIMES = st.sampled_from((False, False, True))
_NO_OR_YES = st.sampled_from((False, True))
_YES_OR_NO = st.sampled_from((True, False))
_BATCHES = st.sampled_from(BATCHES)
_BN_ACTIONS = st.sampled_from(BN_ACTIONS)
_CHANNELS = st.sampled_from(CHANNELS)
_CONTEXTS = st.sampled_from(CONTEXTS)
_DISTRIBUTIONS = st.sampled_from(DISTRIBUTIONS)
_DTYPES = st.sampled_from(DTYPES)
_EPS = st.sampled_from(EPS)
_KINDS = st.sampled_from(KINDS)
_LAYOUTS = st.sampled_from(LAYOUTS)
_RANKS = st.sampled_from(RANKS)
_RATES = st.sampled_from(RATES)
_RUNNING_MEANS = st.sampled_from(RUNNING_MEANS)
_RUNNING_VARS = st.sampled_from(RUNNING_VARS)
_SCALES = st.sampled_from(SCALES)
_SHIFTS = st.sampled_from(SHIFTS)
_SPATIAL = st.sampled_from(SPATIAL)
_UPDATE_WEIGHTS = st.sampled_from(UPDATE_WEIGHTS)
_SEED = st.integers(0, 999)
_STEPS = st.integers(1, MAX_STEPS)

# Every draw happens whatever the earlier draws were (all per-channel values for the
# largest channel count, every field of a step, both layers' parameters): a choice that
# shrinks then never shifts the meaning of the choices after it, so hypothesis's shrinker
# can take back one choice at a time.


@st.composite
def _batch_norm_layer(draw: st.DrawFn, channels: int, layout: str) -> dict[str, Any]:
    layer: dict[str, Any] = {
        "kind": "batch_norm",
        "channel_axis": layout,
        "update_weight": draw(_UPDATE_WEIGHTS),
        "eps": draw(_EPS),
    }
    cumulative = draw(_UPDATE) == "cumulative"
    affine = draw(_YES_OR_NO)
    custom_affine = draw(_NO_OR_YES)  # initial scale and shift other than 1, 0
    scale = [draw(_SCALES) for _ in range(MAX_CHANNELS)]
    shift = [draw(_SHIFTS) for _ in range(MAX_CHANNELS)]
    custom_running = draw(_NO_OR_YES)  # initial running mean, variance
    running_mean = [draw(_RUNNING_MEANS) for _ in range(MAX_CHANNELS)]
    running_var = [draw(_RUNNING_VARS) for _ in range(MAX_CHANNELS)]
    frozen = draw(_RARELY)
    if cumulative:
        layer["update"] = "cumulative"
    if not affine:
        layer["affine"] = False
    elif custom_affine:
        layer["scale"], layer["shift"] = scale[:channels], shift[:channels]
    if custom_running:
        layer["running_mean"], layer["running_var"] = running_mean[:channels], running_var[:channels]
    if frozen:
        layer["frozen"] = True
    return layer


@st.composite
def _dropout_layer(draw: st.DrawFn, layout: str) -> dict[str, Any]:
    layer: dict[str, Any] = {"kind": "dropout", "rate": draw(_RATES), "seed": 0}
    channel = draw(_GRANULARITY) == "channel"
    downscale = draw(_SCALING) == "eval"
    if channel:
        layer["granularity"] = "channel"
        layer["channel_axis"] = layout
    if downscale:
        layer["scaling"] = "eval"
    return layer


@st.composite
def case_documents(draw: st.DrawFn) -> dict[str, Any]:
    """One case as a spec document entry: ``{name, layer, dtype, inputs, steps, observe}``
    (and a ``tolerance`` where the inputs are ill-conditioned)."""
    kind = draw(_KINDS)
    dtype = draw(_DTYPES)
    rank = draw(_RANKS)
    layout = draw(_LAYOUTS)
    channels = draw(_CHANNELS)
    spatial = [draw(_SPATIAL) for _ in range(max(RANKS) - 2)][:rank - 2]
    batch_norm = draw(_batch_norm_layer(channels, layout))
    dropout = draw(_dropout_layer(layout))
    layer = batch_norm if kind == "batch_norm" else dropout
    affine = kind == "batch_norm" and layer.get("affine", True)
    inputs: dict[str, Any] = {}
    steps: list[dict[str, Any]] = []
    count = draw(_STEPS)
    for i in range(count):
        action = draw(_BN_ACTIONS)
        again = draw(_NO_OR_YES)  # the same batch as the step before
        batch = draw(_BATCHES)
        distribution = draw(_DISTRIBUTIONS)
        seed = draw(_SEED)
        backward = draw(_SOMETIMES)
        context = draw(_CONTEXTS)
        if action == "reset" and (kind != "batch_norm" or i == 0):
            action = "train"  # dropout has no statistics; the first step is a forward pass
        if action == "reset":
            steps.append({"reset": "running_stats"})
            continue
        previous = [s for s in steps if "reset" not in s]
        if previous and again:
            name = previous[-1].get("train") or previous[-1]["eval"]
            shape = inputs[name]["shape"]
        else:
            name = f"x{i}"
            shape = shape_of(batch, channels, spatial, layout)
            inputs[name] = input_description(distribution, shape, seed, dtype)
        step: dict[str, Any] = {action: name}
        if backward:
            inputs[f"g{i}"] = {"shape": list(shape), "seed": 100 + i}
            step["grad_output"] = f"g{i}"
            step["observe"] = observed(kind, affine, gradients=True)
        elif context != "plain":
            step["context"] = context
        steps.append(step)
    case = {"name": "case", "layer": layer, "dtype": dtype, "inputs": inputs, "steps": steps,
            "observe": observed(kind, affine, gradients=False)}
    bound = tolerance(case)  # derived, not drawn: ill-conditioned inputs lose digits
    if bound is not None:
        case["tolerance"] = bound
    return case
