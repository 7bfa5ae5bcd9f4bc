"""Batch-norm state between a PyTorch state dict, a Paddle state dict and Keras weights:
pure numpy, no framework imported (pass ``tensor.numpy()`` values, or anything
``np.asarray`` reads).

=============  ======================  ===============  ==========================
neutral        PyTorch                 Paddle           Keras (``get_weights()`` order)
=============  ======================  ===============  ==========================
scale          ``weight``              ``weight``       ``gamma``  (1st; if ``scale``)
shift          ``bias``                ``bias``         ``beta``   (2nd; if ``center``)
running_mean   ``running_mean``        ``_mean``        ``moving_mean``
running_var    ``running_var``         ``_variance``    ``moving_variance``
batch_count    ``num_batches_tracked`` (none)           (none)
=============  ======================  ===============  ==========================

Every value is per channel, in the same order in all three, so the layout needs no
transposition. The running variance is the one quantity whose *meaning* differs: PyTorch
feeds it the unbiased batch variance (x m/(m-1), m values per channel), Paddle and Keras the
biased one (measured: ``bn.running_var_estimator.rank*``). Copying it as stored keeps inference
identical; ``variance="adjust"`` converts it to what the target would have accumulated from the
same batches. With w the update weight, k the number of updates, v0 the initial value and
c = m/(m-1), an EMA holds a * v0 + S (biased) or a * v0 + c * S (unbiased), a = (1-w)^k, so

    unbiased = c * (biased - a * v0) + a * v0          biased = (unbiased - a * v0) / c + a * v0

which is exact when w, k and m are known and m was the same for every batch; without k (Paddle
and Keras count no batches) the share a * v0 of the initial value is scaled too, an error of at
most (c - 1) * a * v0.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

# The running-variance estimator of each framework, as the probe cases measure it (torch
# 2.13, paddle 3.3, Keras 3.15, every rank, CPU); `conformance port` re-measures and warns
# when a framework disagrees.
ESTIMATOR = {"torch": "unbiased", "paddle": "biased", "tf": "biased"}
NAMES: dict[str, dict[str, str]] = {
    "torch": {"scale": "weight", "shift": "bias", "running_mean": "running_mean",
              "running_var": "running_var", "batch_count": "num_batches_tracked"},
    "paddle": {"scale": "weight", "shift": "bias", "running_mean": "_mean", "running_var": "_variance"},
    "tf": {"scale": "gamma", "shift": "beta", "running_mean": "moving_mean", "running_var": "moving_variance"},
}
KERAS_ORDER = ("scale", "shift", "running_mean", "running_var")  # gamma, beta, moving_mean, moving_variance


class StateError(ValueError):
    """A state that cannot be read or converted; the message says what was expected."""


@dataclass
class StateConversion:
    """The converted state (a dict for PyTorch and Paddle, the ``set_weights`` list for Keras),
    whether every value is exact, and what the reader must know."""

    state: dict[str, np.ndarray] | list[np.ndarray]
    exact: bool = True
    notes: list[str] = field(default_factory=list)


def read_state(state: Mapping[str, Any] | Sequence[Any], framework: str, prefix: str = "") -> dict[str, np.ndarray]:
    """The neutral state (scale, shift, running_mean, running_var, batch_count) of one layer."""
    names = _names(framework)
    if framework == "tf" and not isinstance(state, Mapping):
        weights = [np.asarray(w) for w in state]
        if len(weights) not in (2, 4):
            raise StateError(f"Keras weights: {len(weights)} arrays; expected 4 (gamma, beta, moving_mean, "
                             "moving_variance) or 2 (moving statistics only). With only one of gamma and "
                             "beta, pass a dict keyed by weight name")
        return dict(zip(KERAS_ORDER[4 - len(weights):], weights))
    if not isinstance(state, Mapping):
        raise StateError(f"a {framework} state must be a dict of name -> array, got {type(state).__name__}")
    found: dict[str, np.ndarray] = {}
    for neutral, native in names.items():
        key = _key(state, prefix, native)
        if key is not None:
            found[neutral] = np.asarray(state[key])
    if "running_mean" not in found or "running_var" not in found:
        wanted = f"{prefix}{names['running_mean']} and {prefix}{names['running_var']}"
        raise StateError(f"no running statistics in the {framework} state: expected {wanted}; "
                         f"got {', '.join(map(str, state)) or 'nothing'}")
    return found


def _key(state: Mapping[str, Any], prefix: str, native: str) -> str | None:
    """``prefix + native``, or for Keras a variable path ending in ``/native`` or ``/native:0``."""
    if prefix + native in state:
        return prefix + native
    ends = [k for k in state if str(k).startswith(prefix) and str(k).split("/")[-1].split(":")[0] == native]
    return ends[0] if len(ends) == 1 else None


def write_state(neutral: Mapping[str, np.ndarray], framework: str, prefix: str = ""
                ) -> dict[str, np.ndarray] | list[np.ndarray]:
    names = _names(framework)
    if framework == "tf":
        return [np.asarray(neutral[k]) for k in KERAS_ORDER if k in neutral]
    return {prefix + names[k]: np.asarray(v) for k, v in neutral.items() if k in names}


def convert_state(state: Mapping[str, Any] | Sequence[Any], source: str, target: str, *, prefix: str = "",
                  target_prefix: str | None = None, variance: Literal["keep", "adjust"] = "keep",
                  count: int | None = None, update_weight: float | None = None, steps: int | None = None,
                  initial_var: float = 1.0, cumulative: bool = False,
                  estimators: Mapping[str, str] | None = None) -> StateConversion:
    """Convert one batch-norm layer's state from ``source`` to ``target`` (torch, paddle, tf).

    ``variance="keep"`` copies the running variance as stored (identical inference);
    ``"adjust"`` converts it to the target's estimator (see the module docstring) and needs
    ``count`` (m, values per channel of each training batch); ``update_weight`` (w) and
    ``steps`` (k; read from PyTorch's ``num_batches_tracked`` when not given) make it exact.
    ``estimators`` overrides the estimator per framework (e.g. from measured facts).
    """
    neutral = read_state(state, source, prefix)
    estimator = {**ESTIMATOR, **(estimators or {})}
    out = StateConversion(state={})
    if "batch_count" in neutral and steps is None:
        steps = int(np.asarray(neutral["batch_count"]))
    neutral.pop("batch_count", None)
    if variance == "adjust" and estimator[source] != estimator[target]:
        neutral["running_var"], exact, note = adjust_variance(
            neutral["running_var"], count, estimator[source], estimator[target], update_weight, steps,
            initial_var, cumulative)
        out.exact, out.notes = exact, [note]
    elif variance == "adjust":
        out.notes.append(f"running_var unchanged: {source} and {target} both feed it the {estimator[source]} "
                         "batch variance")
    elif estimator[source] != estimator[target]:
        out.notes.append(
            f"running_var copied as stored ({estimator[source]} estimator): {target} gives the same inference "
            f"outputs, but its further training updates feed the {estimator[target]} batch variance, which "
            f"is {'(m-1)/m' if estimator[target] == 'biased' else 'm/(m-1)'} times {source}'s (m values per "
            "channel). variance='adjust' with count=m converts the value instead")
    if target == "torch":
        neutral["batch_count"] = np.asarray(steps or 0, dtype=np.int64)
        if steps is None:
            out.notes.append(f"num_batches_tracked set to 0: {source} counts no batches (torch reads it only "
                             "with momentum=None, the cumulative average); pass steps=k when known")
    elif steps is not None and source == "torch":
        out.notes.append(f"num_batches_tracked={steps} dropped: {target} counts no batches")
    if target == "tf" and ("scale" in neutral) != ("shift" in neutral):
        out.notes.append("only one of scale and shift: Keras' get_weights order then holds 3 arrays "
                         "(gamma or beta, moving_mean, moving_variance)")
    out.state = write_state(neutral, target, prefix if target_prefix is None else target_prefix)
    return out


def adjust_variance(running_var: np.ndarray, count: int | None, source: str, target: str,
                    update_weight: float | None = None, steps: int | None = None, initial_var: float = 1.0,
                    cumulative: bool = False) -> tuple[np.ndarray, bool, str]:
    """``running_var`` accumulated with the ``source`` estimator (``biased``/``unbiased``)
    as the ``target`` estimator would have accumulated it; returns (values, exact, note)."""
    if count is None:
        raise StateError("variance='adjust' needs count=m, the values per channel of each training batch "
                         "(N x spatial size): no state stores it, so without it no conversion between the "
                         "biased and the unbiased running variance is possible. variance='keep' copies the "
                         "stored values (same inference outputs)")
    if count < 2:
        raise StateError(f"count={count}: the unbiased variance of fewer than 2 values is undefined")
    c = count / (count - 1)
    if source == target:
        return np.asarray(running_var), True, "running_var unchanged: same estimator"
    known = cumulative and steps is not None and steps >= 1 or update_weight is not None and steps is not None
    decay = 0.0 if cumulative else (1.0 - (update_weight or 0.0)) ** (steps or 0)
    start = decay * initial_var if known else 0.0
    v = np.asarray(running_var, dtype=np.float64)
    adjusted = c * (v - start) + start if target == "unbiased" else (v - start) / c + start
    adjusted = adjusted.astype(np.asarray(running_var).dtype)
    factor = f"{'m/(m-1)' if target == 'unbiased' else '(m-1)/m'} = {c if target == 'unbiased' else 1 / c:.6g}"
    if known:
        return adjusted, True, (f"running_var converted from the {source} to the {target} estimator: the batch "
                                f"contributions scaled by {factor} (m={count}), the initial value's share "
                                f"{decay:.3g} x {initial_var:g} kept; exact if every batch had m={count} "
                                "values per channel")
    missing = "the number of updates k (Paddle and Keras count none; pass steps=k)" if steps is None \
        else "the update weight w (pass update_weight)"
    bound = (c - 1) * initial_var
    return adjusted, False, (f"running_var scaled by {factor} (m={count}); not exact: without {missing} the "
                             f"share of the initial value {initial_var:g} is scaled too, an error of at most "
                             f"{bound:.3g} that fades as (1-w)^k")


def _names(framework: str) -> dict[str, str]:
    if framework not in NAMES:
        raise StateError(f"unknown framework {framework!r}; expected one of {', '.join(NAMES)}")
    return NAMES[framework]
