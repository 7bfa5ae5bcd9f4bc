"""Frameworks compared with each other on a finding's case: where the diverging framework
and another both give values at the step where it diverges, do they agree, and which of
them does the reference side with."""

from __future__ import annotations

from conformance.checks import compare_arrays
from conformance.fuzz.cause import step_of
from conformance.fuzz.lanes import Outcome
from conformance.model import Case, DropoutSpec


def sides(case: Case, outcomes: dict[str, Outcome], framework: str) -> dict[str, str]:
    """For every other framework, one phrase: how its observations at ``framework``'s
    divergent step relate to ``framework``'s and to the reference's."""
    own = outcomes.get(framework)
    phrases = {}
    for name, other in outcomes.items():
        if name == framework:
            continue
        verdict = other.entry["verdict"]
        if verdict in ("unsupported", "skipped"):
            phrases[name] = f"{verdict}: {other.entry.get('message', '')}"[:200]
        elif verdict == "error":
            phrases[name] = f"raises too: {other.entry.get('message', '')}"[:200]
        elif own is None or own.entry["verdict"] != "divergence":
            phrases[name] = f"runs it: {_verdict(other)}"
        else:
            phrases[name] = _compare(case, own, other, framework)
    return phrases


def reference_sides_with(phrases: dict[str, str]) -> list[str]:
    return [name for name, phrase in phrases.items()
            if "agrees with the reference" in phrase or phrase.startswith("runs it: conforms")]


def _compare(case: Case, own: Outcome, other: Outcome, framework: str) -> str:
    step = step_of(own.entry)
    assert step is not None
    quantities = sorted({c["quantity"] for c in own.entry.get("checks", [])
                         if not c.get("ok", True) and c.get("step") == step})
    if step >= len(other.run.steps):
        return f"stops before step {step} ({_verdict(other)})"
    checks = {c.get("quantity"): bool(c.get("ok")) for c in other.entry.get("checks", [])
              if c.get("step") == step}
    random = isinstance(case.layer, DropoutSpec) and case.steps[step].mode == "train"
    with_reference, with_own, largest = True, True, 0.0
    for quantity in quantities:
        if quantity not in other.run.steps[step]:
            return f"does not give {quantity} at step {step} ({_verdict(other)})"
        with_reference = with_reference and checks.get(quantity, False)
        if random or quantity not in own.run.steps[step]:
            with_own = False  # random masks: only the rules compare, not the values
            continue
        same = compare_arrays(step, quantity, other.run.steps[step][quantity],
                              own.run.steps[step][quantity], case.tolerance)
        with_own = with_own and same.ok
        largest = max(largest, same.max_abs_error)
    at = f"{', '.join(quantities)} at step {step}"
    if with_own and with_reference:
        return f"agrees with both {framework} and the reference on {at} ({_verdict(other)})"
    if with_own:
        return f"agrees with {framework}, not with the reference, on {at} ({_verdict(other)})"
    if with_reference:
        return (f"agrees with the reference, not with {framework}, on {at} (largest difference "
                f"from {framework} {largest:.3g}; {_verdict(other)})")
    return (f"differs from both {framework} (by up to {largest:.3g}) and the reference on {at} "
            f"({_verdict(other)})")


def _verdict(outcome: Outcome) -> str:
    entry = outcome.entry
    verdict = str(entry["verdict"])
    if entry.get("explained_by"):
        verdict += " " + ", ".join(f"{k}={v}" for k, v in entry["explained_by"].items())
    return verdict
