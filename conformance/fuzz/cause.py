"""What a finding is, inferred from judged results and from the case that shows it.

A finding's *signature* says how a framework fails:

- an ``error``: the phase that raised (``build``, ``train``, ``eval``, ``reset``) and the
  exception type (``ValueError``) or the crash (``signal``, ``timeout``);
- a ``divergence``: the conventions that reproduce the observation (``explained_by``,
  e.g. ``bn.running_var_estimator=biased``), or ``unexplained`` with the severity of the
  first quantity that differs at the first divergent step (output, running mean, running
  variance, counter, gradients, in this order):
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
from dataclasses import dataclass, replace
from typing import Any

from conformance.checks import reproduces
from conformance.model import BN_QUANTITIES, DEFAULT_TOLERANCES, BatchNormSpec, Case
from conformance.program import CaseRun
from conformance.verdicts import FAILING, explain

PRECISION = 1e-5
_EXCEPTION = re.compile(r"(?:step -?\d+|building the layer): ([A-Za-z_][\w.]*): ")


@dataclass(frozen=True, order=True)
class Signature:
    framework: str
    verdict: str  # divergence | error
    explanation: str  # "bn.x=v,bn.y=w" | "unexplained" | exception type | crash kind
    severity: str = ""  # unexplained divergences: precision | gross | non-finite
    phase: str = ""  # errors: build | train | eval | reset | rebuild | run

    def covers(self, other: Signature) -> bool:
        """The same signature; or, for an unexplained gross divergence, a small-looking one
        of the same framework (a ``precision`` or ``float32-precision`` divergence: the same
        error looks small next to large values). Never the other way round."""
        if other == self:
            return True
        small = other.severity == "precision" or other.explanation == "float32-precision"
        return (self.severity == "gross" and small and self.framework == other.framework
                and other.verdict == "divergence")

    def describe(self) -> str:
        if self.verdict == "error":
            at = {"build": "building the layer", "run": "running"}.get(self.phase, f"a {self.phase} step")
            return f"{self.framework} raises {self.explanation} at {at}"
        if self.explanation == "float32-precision":
            return (f"{self.framework} differs from the float64 reference, but matches it to "
                    "float32's tolerance (float32 arithmetic on float64 data)")
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


def signature_of(case: Case, entry: dict[str, Any], framework: str,
                 run: CaseRun | None = None) -> Signature | None:
    """The signature of a ``divergence`` or ``error`` entry; None for any other verdict.

    An unexplained float64 divergence whose observations (``run``) the reference matches
    to float32's tolerance, under the canonical or some other conventions, is explained as
    ``float32-precision``: the framework computed in float32."""
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
    if run is not None and case.dtype == "float64":
        relaxed = float32_explanation(case, run)
        if relaxed is not None:
            return Signature(framework, "divergence", relaxed)
    step = entry.get("first_divergent_step", 0)
    failed = [c for c in entry.get("checks", []) if not c.get("ok", True) and c.get("step") == step]
    first = min((c["quantity"] for c in failed), key=_rank, default="")
    return Signature(framework, "divergence", "unexplained",
                     _severity([c for c in failed if c["quantity"] == first]))


def float32_explanation(case: Case, run: CaseRun) -> str | None:
    """``float32-precision`` when the observations match the reference to float32's default
    tolerance, under the canonical conventions or under some others (which are left out:
    the framework's documented ones would split one cause in two); None when they do not."""
    relaxed = replace(case, tolerance=DEFAULT_TOLERANCES["float32"], literal={})
    if reproduces(relaxed, run, relaxed.reference) or explain(relaxed, run):
        return "float32-precision"
    return None


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


def one_value_per_channel(case: Case) -> bool:
    """Whether the case trains a batch norm on one value per channel (N * spatial = 1) at
    some step: where frameworks raise or return the input unchanged, and where the reference
    has no unbiased variance, so that the whole program's conventions may not add up."""
    if not isinstance(case.layer, BatchNormSpec):
        return False
    return any(s.action == "forward" and s.mode == "train"
               and case.inputs[s.input].size == case.layer.num_features for s in case.steps)


def _rank(quantity: str) -> int:
    """Output first, then the running statistics, then gradients: the severity of the
    first of these that differs does not depend on which others a case observes."""
    order = (*BN_QUANTITIES, "mask")
    return order.index(quantity) if quantity in order else len(order)


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
