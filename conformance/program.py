"""Run a case's steps on one layer handle and collect what each step observes.

The same interpreter drives a framework adapter in its worker and the numpy reference in the
parent, so the reference and the framework see exactly the same program.
"""

from __future__ import annotations

import time
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from conformance.adapters.base import DeviceUnavailable, LayerHandle, Unsupported
from conformance.model import Case, Step
from conformance.tree import ModelSpec


@dataclass
class CaseRun:
    """What happened when a case ran: ``status`` is ``ok``, ``error``, ``unsupported`` or
    ``skipped``; ``steps`` holds the observations of every step that completed (so an error
    at step 3 keeps steps 0-2); ``error_step`` is -1 for the layer's construction."""

    status: str
    steps: list[dict[str, np.ndarray]] = field(default_factory=list)
    dtypes: list[dict[str, str]] = field(default_factory=list)
    message: str = ""
    error_kind: str = ""
    error_step: int | None = None
    duration_s: float = 0.0


def execute(build: Callable[[], LayerHandle], case: Case) -> CaseRun:
    """Build the layer with ``build`` and run every step of ``case`` on it."""
    start = time.perf_counter()
    run = CaseRun(status="ok")
    for _ in run_steps(build, case, run):
        pass
    run.duration_s = time.perf_counter() - start
    return run


def run_steps(build: Callable[[], LayerHandle], case: Case, run: CaseRun) -> Iterator[int]:
    """Run ``case`` into ``run`` step by step, yielding each step's index once its
    observations are in ``run.steps``, so that a caller can stop at the first step that
    tells it enough. A failure ends the iteration with ``run.status`` saying what happened."""
    try:
        layer = build()
    except Unsupported as exc:
        run.status, run.message = "unsupported", str(exc)
        return
    except DeviceUnavailable as exc:
        run.status, run.message = "skipped", str(exc)
        return
    except Exception as exc:  # noqa: BLE001 - a framework raising is a result, not a crash of the kit
        _error(run, exc, step=-1)
        return
    hidden = hidden_quantities(case)
    for index, step in enumerate(case.steps):
        try:
            layer, produced = _perform(step, layer, build, case, index)
            produced.update(layer.state())
        except Unsupported as exc:
            run.status, run.message = "unsupported", f"step {index}: {exc}"
            return
        except Exception as exc:  # noqa: BLE001 - as above, at a step
            _error(run, exc, step=index)
            return
        observed = {q: produced[q] for q in (*step.observe, *hidden) if q in produced}
        run.dtypes.append({q: _dtype_name(v) for q, v in observed.items()})
        # always a copy: an adapter may hand back views of buffers the next step updates
        run.steps.append({q: np.array(v, dtype=np.float64) for q, v in observed.items()})
        yield index


def hidden_quantities(case: Case) -> tuple[str, ...]:
    """What a run records at every step beyond what the case observes: in a model, the mode
    each dropout leaf ran in, which tells the checks which passes were random (a model's
    dropout masks are always observed: the reference computes what follows a random leaf
    from the units the framework kept)."""
    if not isinstance(case.layer, ModelSpec):
        return ()
    return tuple(f"{leaf.name}.training" for leaf in case.layer.leaves() if leaf.layer.kind == "dropout")


def _perform(step: Step, layer: Any, build: Callable[[], LayerHandle],
             case: Case, index: int) -> tuple[LayerHandle, dict[str, np.ndarray]]:
    """Carry out one step; returns the (possibly rebuilt) layer and what the step produced."""
    if getattr(case.layer, "kind", "") == "model" and step.action not in ("rebuild", "reset"):
        x = case.inputs[step.input] if step.input else None
        grad_output = case.inputs[step.grad_output] if step.grad_output else None
        before = layer.state() if step.entry == "train_step" else {}
        produced = dict(layer.run(step, x, grad_output, index))
        if before:
            produced.update(applied_gradients(before, layer.state(), step.lr))
        return layer, produced
    if step.action == "rebuild":
        return build(), {}
    if step.action == "reset":
        reset = getattr(layer, "reset_running_stats", None)
        if reset is None:
            raise Unsupported("this adapter cannot reset running statistics")
        reset()
        return layer, {}
    grad_output = case.inputs[step.grad_output] if step.grad_output else None
    x = case.inputs[step.input]
    if step.context == "plain":
        produced = dict(layer.forward(x, step.mode, grad_output))
    else:
        produced = dict(layer.forward(x, step.mode, grad_output, context=step.context))
    if "mask" in step.observe and "output" in produced:
        produced["mask"] = kept_mask(x, produced["output"])
    return layer, produced


PARAMETERS = {"weight": "grad_weight", "bias": "grad_bias", "scale": "grad_scale", "shift": "grad_shift"}


def applied_gradients(before: dict[str, np.ndarray], after: dict[str, np.ndarray],
                      lr: float) -> dict[str, np.ndarray]:
    """The gradient a training step's SGD update applied to each parameter, read from the
    parameter before and after it: ``grad = (p_before - p_after) / lr`` (``fc1.grad_weight``,
    ``bn1.grad_scale``, ...). The same for every framework and the reference, so it shows
    the gradient of ``sum(grad_output * output)`` the framework computed, whatever its
    optimizer API exposes (Keras' train_on_batch exposes none)."""
    found = {}
    for name, value in before.items():
        leaf, _, what = name.rpartition(".")
        if what in PARAMETERS and name in after:
            found[f"{leaf}.{PARAMETERS[what]}"] = (np.asarray(value, np.float64)
                                                   - np.asarray(after[name], np.float64)) / lr
    return found


def kept_mask(x: np.ndarray, output: np.ndarray) -> np.ndarray:
    """Which units a dropout pass kept, read from its output: 1 where the output is not 0,
    0 where it is, NaN where the input is 0 (a kept 0 and a dropped 0 look alike)."""
    output = np.asarray(output)
    if output.shape != np.shape(x):
        return np.full(np.shape(output), np.nan)  # the output's shape is checked on its own
    mask = (output != 0).astype(np.float64)
    mask[np.asarray(x) == 0] = np.nan
    return mask


_DTYPE_NAMES: dict[np.dtype[Any], str] = {}


def _dtype_name(value: Any) -> str:
    """``str(dtype)``, remembered: numpy builds the name anew on every call, and the
    reference asks for it on every observation of every convention the kit tries."""
    dtype = np.asarray(value).dtype
    name = _DTYPE_NAMES.get(dtype)
    if name is None:
        name = _DTYPE_NAMES[dtype] = str(dtype)
    return name


def _error(run: CaseRun, exc: BaseException, step: int) -> CaseRun:
    run.status = "error"
    run.error_kind = "exception"
    run.error_step = step
    where = "building the layer" if step < 0 else f"step {step}"
    last = traceback.extract_tb(exc.__traceback__)[-1:] if exc.__traceback__ else []
    origin = f" (at {last[0].filename}:{last[0].lineno})" if last else ""
    run.message = f"{where}: {type(exc).__name__}: {exc}{origin}"[:2000]
    return run
