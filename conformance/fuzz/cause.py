"""What a finding is, inferred from judged results and from the case that shows it.

A finding's *signature* says how a framework fails:

- an ``error``: the phase that raised (``build``, ``train``, ``eval``, ``reset``) and the
  exception type (``ValueError``) or the crash (``signal``, ``timeout``);
- a ``divergence``: the conventions that reproduce the observation (``explained_by``,
  e.g. ``bn.running_var_estimator=biased``), or ``unexplained`` with a severity:
  ``precision`` (the worst element is off by less than 1e-5 relative: only float64 cases,
  as every float32 divergence exceeds rtol 1e-4), ``gross``, or
  ``non-finite`` (NaN or infinity on one side only).

Its *triggers* say when: the features (``documents.features``) of its shrunk, minimal case, i.e. what
hypothesis could not take away (``dtype=float16``, ``batch=1``, ``rank=4``,
``channel_axis=last``, ``eps=1e-08``, ``eval``, ``dist=offset``, ...). A configuration
with the same signature belongs to a finding when it has every trigger of that finding;
one that lacks some trigger is another cause, found and shrunk on its own. One finding is
one spec file.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

from conformance.model import BatchNormSpec, Case
from conformance.verdicts import FAILING

PRECISION = 1e-5
_EXCEPTION = re.compile(r"(?:step -?\d+|building the layer): ([A-Za-z_][\w.]*): ")


@dataclass(frozen=True, order=True)
class Signature:
    framework: str
    verdict: str  # divergence | error
    explanation: str  # "bn.x=v,bn.y=w" | "unexplained" | exception type | crash kind
    severity: str = ""  # unexplained divergences: precision | gross | non-finite
    phase: str = ""  # errors: build | train | eval | reset | rebuild | run

    def describe(self) -> str:
        if self.verdict == "error":
            at = {"build": "building the layer", "run": "running"}.get(self.phase, f"a {self.phase} step")
            return f"{self.framework} raises {self.explanation} at {at}"
        if self.explanation == "unexplained":
            return (f"{self.framework} differs from the reference ({self.severity}); no known "
                    "convention explains it")
        return (f"{self.framework} differs from the reference as {self.explanation} would, a "
                "convention it does not document")

    def slug(self) -> str:
        parts = [self.framework, self.verdict, self.phase, self.explanation, self.severity]
        return _slug("-".join(p for p in parts if p))


def slug(signature: Signature, triggers: frozenset[str]) -> str:
    """A file and case name: lowercase letters, digits, '_', '.', '-' (at most 100)."""
    text = signature.slug() + "".join(f"-{t}" for t in sorted(triggers))
    return _slug(text)[:100].rstrip("-_.")


def _slug(text: str) -> str:
    text = text.lower().replace("=", "_").replace(",", "-")
    return re.sub(r"[^a-z0-9_.-]+", "_", text)


def signature_of(case: Case, entry: dict[str, Any], framework: str) -> Signature | None:
    """The signature of a ``divergence`` or ``error`` entry; None for any other verdict."""
    verdict = entry.get("verdict")
    if verdict not in FAILING:
        return None
    if verdict == "error":
        error = entry.get("error", {})
        return Signature(framework, "error", _error_type(error, entry.get("message", "")),
                         phase=_phase(case, error.get("step")))
    explained = entry.get("explained_by")
    if explained:
        return Signature(framework, "divergence", ",".join(f"{k}={v}" for k, v in sorted(explained.items())))
    step = entry.get("first_divergent_step", 0)
    failed = [c for c in entry.get("checks", []) if not c.get("ok", True) and c.get("step") == step]
    return Signature(framework, "divergence", "unexplained", _severity(failed))


def step_of(entry: dict[str, Any]) -> int | None:
    """The step where the finding shows: the first divergent step or the failing one."""
    if entry.get("verdict") == "error":
        step = entry.get("error", {}).get("step")
        return step if isinstance(step, int) else None
    return entry.get("first_divergent_step")


def where(case: Case, entry: dict[str, Any]) -> str:
    """``step 0 is a train step``: where the finding shows."""
    step = step_of(entry)
    phase = _phase(case, step)
    if phase in ("build", "run"):
        return "building the layer" if phase == "build" else "running the case"
    return f"step {step} is a {phase} step"


def one_value_per_channel(case: Case, step: int | None) -> bool:
    """Whether ``step`` trains a batch norm on one value per channel (N * spatial = 1)."""
    if step is None or not 0 <= step < len(case.steps) or not isinstance(case.layer, BatchNormSpec):
        return False
    s = case.steps[step]
    return s.action == "forward" and s.mode == "train" and case.inputs[s.input].size == case.layer.num_features


def _phase(case: Case, step: Any) -> str:
    if not isinstance(step, int) or step >= len(case.steps):
        return "run"
    if step < 0:
        return "build"
    s = case.steps[step]
    return s.mode if s.action == "forward" else s.action


def _error_type(error: dict[str, Any], message: str) -> str:
    if error.get("kind") not in (None, "", "exception"):
        return str(error["kind"])  # signal, timeout, exit, startup, measurement
    found = _EXCEPTION.search(error.get("message") or message)
    return found.group(1).rsplit(".", 1)[-1] if found else "exception"


def _severity(checks: list[dict[str, Any]]) -> str:
    """non-finite, else precision when every failed check's worst element is off by less
    than ``PRECISION`` relative, else gross."""
    severity = "precision"
    for check in checks:
        error = check.get("max_abs_error", math.inf)
        observed, expected = check.get("observed"), check.get("expected")
        if any(isinstance(v, float) and not math.isfinite(v) for v in (error, observed, expected)):
            return "non-finite"
        if check.get("note") or expected is None or error > PRECISION * abs(expected):
            severity = "gross"  # a property (dropout mask, shape), or a large error
    return "gross" if not checks else severity
