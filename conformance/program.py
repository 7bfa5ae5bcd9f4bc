"""Run a case's steps on one layer handle and collect what each step observes.

The same interpreter drives a framework adapter in its worker and the numpy reference in the
parent, so the reference and the framework see exactly the same program.
"""

from __future__ import annotations

import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from conformance.adapters.base import DeviceUnavailable, LayerHandle, Unsupported
from conformance.model import Case, Step


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
    run = _execute(build, case)
    run.duration_s = time.perf_counter() - start
    return run


def _execute(build: Callable[[], LayerHandle], case: Case) -> CaseRun:
    try:
        layer = build()
    except Unsupported as exc:
        return CaseRun(status="unsupported", message=str(exc))
    except DeviceUnavailable as exc:
        return CaseRun(status="skipped", message=str(exc))
    except Exception as exc:  # a framework raising is a result, not a crash of the kit
        return _error(CaseRun(status="error"), exc, step=-1)
    run = CaseRun(status="ok")
    for index, step in enumerate(case.steps):
        try:
            layer, produced = _perform(step, layer, build, case)
            produced.update(layer.state())
        except Unsupported as exc:
            return CaseRun(status="unsupported", steps=run.steps, dtypes=run.dtypes,
                           message=f"step {index}: {exc}")
        except Exception as exc:
            return _error(run, exc, step=index)
        observed = {q: produced[q] for q in step.observe if q in produced}
        run.dtypes.append({q: str(np.asarray(v).dtype) for q, v in observed.items()})
        # always a copy: an adapter may hand back views of buffers the next step updates
        run.steps.append({q: np.array(v, dtype=np.float64) for q, v in observed.items()})
    return run


def _perform(step: Step, layer: LayerHandle, build: Callable[[], LayerHandle],
             case: Case) -> tuple[LayerHandle, dict[str, np.ndarray]]:
    """Carry out one step; returns the (possibly rebuilt) layer and what the step produced."""
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
        return layer, dict(layer.forward(x, step.mode, grad_output))
    return layer, dict(layer.forward(x, step.mode, grad_output, context=step.context))


def _error(run: CaseRun, exc: BaseException, step: int) -> CaseRun:
    run.status = "error"
    run.error_kind = "exception"
    run.error_step = step
    where = "building the layer" if step < 0 else f"step {step}"
    last = traceback.extract_tb(exc.__traceback__)[-1:] if exc.__traceback__ else []
    origin = f" (at {last[0].filename}:{last[0].lineno})" if last else ""
    run.message = f"{where}: {type(exc).__name__}: {exc}{origin}"[:2000]
    return run
