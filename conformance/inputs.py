"""Input arrays for a case: generated from a seed (numpy's PCG64, identical on every
machine) or given literally, then rounded to the case's dtype so that the reference sees
exactly the values the framework sees."""

from __future__ import annotations

from typing import Any

import numpy as np

MAX_ELEMENTS = 1 << 24  # 16M values per input: far above any useful case, far below a crash


def round_to_dtype(values: np.ndarray, dtype: str) -> np.ndarray:
    """Return ``values`` rounded to ``dtype``, held in float32/float64/float16 numpy arrays.

    bfloat16 has no numpy dtype, so it is held in float32 with the low 16 bits cleared by
    round-to-nearest-even, which is exactly the set of values a bfloat16 tensor holds.
    """
    if dtype == "float64":
        return np.asarray(values, dtype=np.float64)
    with np.errstate(over="ignore"):  # overflow gives inf, which the spec loader refuses
        if dtype == "float16":
            return np.asarray(values, dtype=np.float16)
        as32 = np.asarray(values, dtype=np.float32)
    if dtype == "float32":
        return as32
    bits = as32.view(np.uint32).astype(np.uint64)
    rounding = ((bits >> 16) & 1) + 0x7FFF
    rounded = ((bits + rounding) >> 16 << 16).astype(np.uint32)
    return rounded.view(np.float32)


def generator(description: dict[str, Any]) -> dict[str, Any]:
    """The generated input's recipe with every default filled in: ``{shape, distribution,
    seed, mean, std}`` (normal), ``{..., low, high}`` (uniform) or ``{shape, distribution,
    value}`` (constant), as plain numbers. ``generate`` makes the input from exactly this, and
    results files keep it, so a snippet can make the same array."""
    recipe: dict[str, Any] = {"shape": [int(n) for n in description["shape"]],
                              "distribution": str(description.get("distribution", "normal"))}
    seeded = {**recipe, "seed": int(description.get("seed", 0))}  # YAML may give 1.0
    if recipe["distribution"] == "normal":
        return {**seeded, "mean": float(description.get("mean", 0.0)), "std": float(description.get("std", 1.0))}
    if recipe["distribution"] == "uniform":
        return {**seeded, "low": float(description.get("low", 0.0)), "high": float(description.get("high", 1.0))}
    return {**recipe, "distribution": "constant", "value": float(description.get("value", 0.0))}


def generate(description: dict[str, Any], dtype: str) -> np.ndarray:
    """Make one input from ``{shape, distribution, mean, std, low, high, value, seed}`` or
    ``{values}``."""
    if "values" in description:
        return round_to_dtype(np.asarray(description["values"], dtype=np.float64), dtype)
    recipe = generator(description)
    shape = tuple(recipe["shape"])
    if recipe["distribution"] == "normal":
        data = np.random.default_rng(recipe["seed"]).normal(recipe["mean"], recipe["std"], shape)
    elif recipe["distribution"] == "uniform":
        data = np.random.default_rng(recipe["seed"]).uniform(recipe["low"], recipe["high"], shape)
    else:
        data = np.full(shape, recipe["value"])
    return round_to_dtype(data, dtype)


def element_count(description: dict[str, Any]) -> int:
    if "values" in description:
        return int(np.asarray(description["values"], dtype=object).size)
    return int(np.prod([int(n) for n in description["shape"]], dtype=object))
