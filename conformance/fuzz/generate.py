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
    DROPOUT_ACTIONS,
    DTYPES,
    EPS,
    KINDS,
    LAYOUTS,
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
)


@st.composite
def _batch_norm_layer(draw: st.DrawFn, channels: int, layout: str) -> dict[str, Any]:
    layer: dict[str, Any] = {
        "kind": "batch_norm",
        "channel_axis": layout,
        "update_weight": draw(st.sampled_from(UPDATE_WEIGHTS)),
        "eps": draw(st.sampled_from(EPS)),
    }
    if draw(st.sampled_from(("ema", "ema", "ema", "cumulative"))) == "cumulative":
        layer["update"] = "cumulative"
    affine = draw(st.sampled_from((True, False)))
    if not affine:
        layer["affine"] = False
    elif draw(st.sampled_from((False, True))):  # initial scale and shift other than 1 and 0
        layer["scale"] = [draw(st.sampled_from(SCALES)) for _ in range(channels)]
        layer["shift"] = [draw(st.sampled_from(SHIFTS)) for _ in range(channels)]
    if draw(st.sampled_from((False, True))):  # initial running statistics other than 0 and 1
        layer["running_mean"] = [draw(st.sampled_from(RUNNING_MEANS)) for _ in range(channels)]
        layer["running_var"] = [draw(st.sampled_from(RUNNING_VARS)) for _ in range(channels)]
    if draw(st.sampled_from((False, False, False, True))):
        layer["frozen"] = True
    return layer


@st.composite
def _dropout_layer(draw: st.DrawFn, layout: str) -> dict[str, Any]:
    layer: dict[str, Any] = {"kind": "dropout", "rate": draw(st.sampled_from(RATES)), "seed": 0}
    if draw(st.sampled_from(("element", "channel"))) == "channel":
        layer["granularity"] = "channel"
        layer["channel_axis"] = layout
    if draw(st.sampled_from(("train", "eval"))) == "eval":
        layer["scaling"] = "eval"
    return layer


@st.composite
def case_documents(draw: st.DrawFn) -> dict[str, Any]:
    """One case as a spec document entry: ``{name, layer, dtype, inputs, steps}``."""
    kind = draw(st.sampled_from(KINDS))
    dtype = draw(st.sampled_from(DTYPES))
    rank = draw(st.sampled_from(RANKS))
    layout = draw(st.sampled_from(LAYOUTS))
    channels = draw(st.sampled_from(CHANNELS))
    spatial = [draw(st.sampled_from(SPATIAL)) for _ in range(rank - 2)]
    if kind == "batch_norm":
        layer = draw(_batch_norm_layer(channels, layout))
    else:
        layer = draw(_dropout_layer(layout))
    affine = kind == "batch_norm" and layer.get("affine", True)
    inputs: dict[str, Any] = {}
    steps: list[dict[str, Any]] = []
    count = draw(st.integers(1, MAX_STEPS))
    for i in range(count):
        actions = BN_ACTIONS if kind == "batch_norm" and i > 0 else DROPOUT_ACTIONS
        action = draw(st.sampled_from(actions))  # no reset before the first forward pass
        if action == "reset":
            steps.append({"reset": "running_stats"})
            continue
        previous = [s for s in steps if "reset" not in s]
        if previous and draw(st.sampled_from((False, True))):  # the same batch again
            name = previous[-1].get("train") or previous[-1]["eval"]
            shape = inputs[name]["shape"]
        else:
            name = f"x{i}"
            shape = shape_of(draw(st.sampled_from(BATCHES)), channels, spatial, layout)
            distribution = draw(st.sampled_from(DISTRIBUTIONS))
            inputs[name] = input_description(distribution, shape, draw(st.integers(0, 999)), dtype)
        step: dict[str, Any] = {action: name}
        if draw(st.sampled_from((False, False, True))):  # and a backward pass
            inputs[f"g{i}"] = {"shape": list(shape), "seed": 100 + i}
            step["grad_output"] = f"g{i}"
            step["observe"] = observed(kind, affine, gradients=True)
        else:
            context = draw(st.sampled_from(CONTEXTS))
            if context != "plain":
                step["context"] = context
        steps.append(step)
    return {"name": "case", "layer": layer, "dtype": dtype, "inputs": inputs, "steps": steps,
            "observe": observed(kind, affine, gradients=False)}
