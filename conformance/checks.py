"""Compare what a framework observed with what the spec expects.

Arrays are compared elementwise: ``|observed - expected| <= atol + rtol * |expected|``
(NaN matches NaN, and an infinity only the same infinity). Dropout in a random pass
(training, or inference left active) draws its mask from the framework's own generator,
so its output is checked by properties instead of values: every kept value equals
``scale * x`` (scale = 1/q for inverted dropout, q the keep probability), every dropped
value is exactly 0, channel-wise masks are shared along the spatial axes, and the kept
fraction k/n lies within a Hoeffding bound
``|k/n - q| <= sqrt(ln(2/alpha) / (2n))`` whose false-alarm rate is alpha = 1e-9.

A literal expectation of a random pass is partial: an output is compared with the literal
value where both kept the unit (``match: kept``, the default) and by the rule elsewhere; a
``mask`` (1 kept, 0 dropped, NaN where the input is 0 and the mask cannot be seen) by its
kept share (``match: share``: the two shares differ by at most the sum of their bounds);
either exactly with ``match: elementwise``, for a framework given the same mask (the same
generator and seed).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass, fields
from typing import Any

import numpy as np

from conformance.adapters.base import LayerHandle
from conformance.adapters.numpy import reference_handle
from conformance.model import Case, DropoutSpec, Step, Tolerance
from conformance.numbers import pair
from conformance.program import CaseRun, execute, run_steps
from conformance.reference import (
    DropoutConventions,
    channel_axis_index,
    conventions_for,
    dropout_is_random,
    dropout_mask_shape,
    dropout_train_scale,
    keep_probability,
)
from conformance.tree import ModelSpec

FALSE_ALARM_RATE = 1e-9


@dataclass
class QuantityCheck:
    """One quantity at one step: did it match, and by how much did it miss."""

    step: int
    quantity: str
    ok: bool
    max_abs_error: float = 0.0
    max_rel_error: float = 0.0
    worst_index: list[int] | None = None
    observed: float | None = None
    expected: float | None = None
    note: str = ""
    observable: bool = True

    def as_dict(self) -> dict[str, Any]:
        values = ((f.name, getattr(self, f.name)) for f in fields(self))
        return {k: v for k, v in values if v is not None and v != "" and not (k == "observable" and v)}

    def describe(self) -> str:
        where = f"{self.quantity} at step {self.step}"
        if self.note:
            return f"{where}: {self.note}"
        at = f" at {tuple(self.worst_index)}" if self.worst_index is not None else ""
        observed, expected = pair(self.observed, self.expected)
        return (f"{where}: max abs error {self.max_abs_error:.3g}, max rel error "
                f"{self.max_rel_error:.3g}{at} (observed {observed}, expected {expected})")


def compare_arrays(step: int, quantity: str, observed: np.ndarray, expected: np.ndarray,
                   tol: Tolerance) -> QuantityCheck:
    observed = np.asarray(observed, np.float64)
    expected = np.asarray(expected, np.float64)
    if observed.shape != expected.shape:
        return QuantityCheck(step, quantity, False,
                             note=f"shape {observed.shape}, expected {expected.shape}")
    if observed.size == 0:
        return QuantityCheck(step, quantity, True)
    with np.errstate(invalid="ignore", over="ignore", divide="ignore"):
        # equal values match exactly, NaN matching NaN and an infinity the same infinity;
        # anything else against a NaN or an infinity is an infinite error
        same = (observed == expected) | (np.isnan(observed) & np.isnan(expected))
        err = np.where(same, 0.0, np.abs(observed - expected))
        err[np.isnan(err)] = np.inf
        magnitude = np.where(np.isfinite(expected), np.abs(expected), 0.0)
        ok = bool((err <= tol.atol + tol.rtol * magnitude).all())
        # relative error where it is defined: elements whose expected value is finite, not zero
        rel = np.divide(err, magnitude, out=np.zeros_like(err), where=magnitude != 0)
    flat = int(err.argmax())
    worst = np.unravel_index(flat, err.shape)
    return QuantityCheck(
        step, quantity, ok,
        max_abs_error=float(err.flat[flat]), max_rel_error=float(rel.max()),
        worst_index=[int(i) for i in worst] if err.ndim else None,
        observed=float(observed[worst]), expected=float(expected[worst]),
    )


def within(observed: np.ndarray, expected: np.ndarray, tol: Tolerance) -> bool:
    """``compare_arrays(...).ok`` without the error statistics. Where a difference is not
    finite (a NaN or an infinity in the arrays) it defers to ``compare_arrays``'s rules."""
    observed = np.asarray(observed, np.float64)
    expected = np.asarray(expected, np.float64)
    if observed.shape != expected.shape:
        return False
    with np.errstate(invalid="ignore", over="ignore"):
        err = np.abs(observed - expected)
        if not np.isfinite(err).all():
            return compare_arrays(0, "", observed, expected, tol).ok
        return bool((err <= tol.atol + tol.rtol * np.abs(expected)).all())


def kept_fraction_bound(units: int) -> float:
    """Half-width t with P(|k/n - q| >= t) <= FALSE_ALARM_RATE (Hoeffding's inequality)."""
    return math.sqrt(math.log(2.0 / FALSE_ALARM_RATE) / (2.0 * units))


def check_dropout_random(step: int, quantity: str, x: np.ndarray, observed: np.ndarray,
                         spec: DropoutSpec, conv: DropoutConventions, tol: Tolerance,
                         grad: np.ndarray | None = None, literal: np.ndarray | None = None,
                         match: str = "") -> QuantityCheck:
    """Property check of one random-pass dropout output (or its input gradient, when
    ``grad`` is the upstream gradient and ``observed`` the gradient; the mask then comes
    from the gradient itself), or of its ``mask``; with a ``literal`` expectation compared
    as ``match`` says (module docstring)."""
    if literal is not None and match == "elementwise":
        return compare_arrays(step, quantity, observed, literal, tol)
    observed = np.asarray(observed, np.float64)
    is_mask = quantity.rpartition(".")[2] == "mask"  # a layer's mask, or a model leaf's
    if is_mask:
        values, kept, informative = _mask_values(step, quantity, observed, x)
    else:
        values, kept, informative = _kept_values(step, quantity, x, observed, spec, conv, tol,
                                                 grad, literal)
    if not values.ok:
        return values
    unit_kept, shared = _units(kept, informative, spec)
    if not shared:
        values.ok = False
        values.note = "the mask differs within a channel; expected one draw per sample and channel"
        return values
    if literal is not None and is_mask:
        literal_kept, _ = _units(literal == 1, ~np.isnan(literal), spec)
        return _same_share(values, unit_kept, literal_kept)
    return _kept_share(values, unit_kept, keep_probability(spec.rate, conv), spec.rate)


def check_dropout_train(step: int, quantity: str, x: np.ndarray, observed: np.ndarray,
                        spec: DropoutSpec, conv: DropoutConventions, tol: Tolerance,
                        grad: np.ndarray | None = None) -> QuantityCheck:
    """``check_dropout_random`` without a literal expectation."""
    return check_dropout_random(step, quantity, x, observed, spec, conv, tol, grad=grad)


def _kept_values(step: int, quantity: str, x: np.ndarray, observed: np.ndarray, spec: DropoutSpec,
                 conv: DropoutConventions, tol: Tolerance, grad: np.ndarray | None,
                 literal: np.ndarray | None) -> tuple[QuantityCheck, np.ndarray, np.ndarray]:
    """Kept values are ``scale * base`` (the literal value where the literal kept the unit
    too), dropped ones 0; returns the check, the kept and the informative elements."""
    base = np.asarray(x if grad is None else grad, np.float64)
    if observed.shape != base.shape:
        failed = QuantityCheck(step, quantity, False, note=f"shape {observed.shape}, expected {base.shape}")
        return failed, observed != 0, np.ones(observed.shape, dtype=bool)
    scale = dropout_train_scale(spec.rate, conv)
    informative = base != 0
    kept = (observed != 0) & informative
    expected = np.where(kept, base * scale, 0.0)
    if literal is not None and literal.shape == base.shape:
        expected = np.where(kept & (literal != 0), literal, expected)
    values = compare_arrays(step, quantity, observed, expected, tol)
    if not values.ok:
        rule = f"{scale:.6g} * input" + (" (or the literal value)" if literal is not None else "")
        values.note = (f"kept values are not {rule}: max abs error "
                       f"{values.max_abs_error:.3g} at {tuple(values.worst_index or ())} "
                       f"(observed {values.observed!r}, expected {values.expected!r})")
    return values, kept, informative


def _mask_values(step: int, quantity: str, observed: np.ndarray, x: np.ndarray
                 ) -> tuple[QuantityCheck, np.ndarray, np.ndarray]:
    """A mask holds 1 (kept), 0 (dropped) or NaN (the input is 0: not visible), with the
    input's shape."""
    x = np.asarray(x)
    if observed.shape != x.shape:
        failed = QuantityCheck(step, quantity, False, note=f"shape {observed.shape}, expected {x.shape}")
        return failed, observed == 1, ~np.isnan(observed)
    informative = ~np.isnan(observed)
    bad = informative & (observed != 0) & (observed != 1)
    check = QuantityCheck(step, quantity, not bad.any())
    if bad.any():
        check.note = "a mask holds 1 (kept) and 0 (dropped) only"
    return check, observed == 1, informative


def _kept_share(values: QuantityCheck, unit_kept: np.ndarray, keep: float, rate: float) -> QuantityCheck:
    """k/n within the Hoeffding bound of q (exactly q for q = 0 or 1)."""
    n, k = unit_kept.size, int(unit_kept.sum())
    if n == 0:
        return values
    if keep in (0.0, 1.0) or rate in (0.0, 1.0):
        ok = k == round(n * keep)
        bound = 0.0
    else:
        bound = kept_fraction_bound(n)
        ok = abs(k / n - keep) <= bound
    if not ok:
        values.ok = False
        values.note = (f"kept {k} of {n} units ({k / n:.4f}); expected {keep:.4f} "
                       f"+- {bound:.4f} (false-alarm rate {FALSE_ALARM_RATE:g})")
    return values


def _same_share(values: QuantityCheck, unit_kept: np.ndarray, literal_kept: np.ndarray) -> QuantityCheck:
    """Two masks drawn with the same keep probability: their kept shares differ by at most
    the sum of their Hoeffding bounds."""
    n, m = unit_kept.size, literal_kept.size
    if n == 0 or m == 0:
        return values
    share, wanted = unit_kept.mean(), literal_kept.mean()
    bound = kept_fraction_bound(n) + kept_fraction_bound(m)
    if abs(share - wanted) > bound:
        values.ok = False
        values.note = (f"kept {share:.4f} of {n} units; the literal mask keeps {wanted:.4f} of "
                       f"{m}; expected shares within {bound:.4f} of each other")
    return values


def _units(kept: np.ndarray, informative: np.ndarray, spec: DropoutSpec) -> tuple[np.ndarray, bool]:
    """Per mask unit: was it kept; and is every element of each unit kept or dropped alike."""
    if spec.granularity == "element":
        return kept[informative], True
    axis = channel_axis_index(kept.ndim, spec.channel_axis)
    spatial = tuple(a for a in range(kept.ndim) if a not in (0, axis))
    any_kept: np.ndarray = np.asarray(kept.any(axis=spatial, keepdims=True))
    shared = bool(np.all(kept == (any_kept & informative)))
    has_info = informative.any(axis=spatial, keepdims=True)
    assert any_kept.shape == dropout_mask_shape(spec, kept.shape)
    return any_kept[has_info], shared


def reference_run(case: Case, settings: dict[str, str], observed: CaseRun | None = None) -> CaseRun:
    """The case run on the float64 reference under ``settings`` conventions; a model case
    follows the dropout masks ``observed`` (a framework's run) kept in its random passes."""
    return execute(_reference_layer(case, settings, observed), case)


def _reference_layer(case: Case, settings: dict[str, str],
                     observed: CaseRun | None = None) -> Callable[[], LayerHandle]:
    return lambda: reference_handle(case.layer, settings, "float64", observed)


def compare(case: Case, observed: CaseRun, settings: dict[str, str],
            expected: CaseRun | None = None, use_literal: bool = True) -> list[QuantityCheck]:
    """Check every observed quantity of every completed step against the reference run
    under ``settings``, or against the spec's literal values where it gives them and
    ``use_literal`` (literal values state the spec's own conventions, so a search over other
    conventions compares with the reference instead)."""
    return list(_checks(case, observed, settings, expected, use_literal))


def reproduces(case: Case, observed: CaseRun, settings: dict[str, str]) -> bool:
    """Whether the reference under ``settings`` runs the whole case and reproduces every
    observation. The reference runs step by step and stops at the first step that
    differs: the convention search asks this dozens of times a case, and most of the
    conventions it tries are told apart by the first step or two."""
    expected = CaseRun(status="ok")
    for index in run_steps(_reference_layer(case, settings, observed), case, expected):
        if index >= len(observed.steps):
            continue
        step, got = case.steps[index], observed.steps[index]
        for quantity in step.observe:
            if quantity in got and not _check_one(case, index, step, quantity, got[quantity], expected,
                                                  settings, use_literal=False, verdict_only=True).ok:
                return False
    return expected.status == "ok" and all(c.ok for c in check_masks(case, observed))


def first_differences(case: Case, observed: CaseRun, settings: dict[str, str],
                      expected: CaseRun) -> tuple[set[str], dict[str, int]]:
    """The quantities ``observed`` holds, and for those that differ from the reference run
    ``expected`` under ``settings`` the first step where they do (values only, no error
    statistics)."""
    seen: set[str] = set()
    first: dict[str, int] = {}
    for index, (step, got) in enumerate(zip(case.steps, observed.steps)):
        for quantity in step.observe:
            if quantity not in got:
                continue
            seen.add(quantity)
            if quantity not in first and not _check_one(case, index, step, quantity, got[quantity], expected,
                                                        settings, use_literal=False, verdict_only=True).ok:
                first[quantity] = index
    return seen, first


def _checks(case: Case, observed: CaseRun, settings: dict[str, str], expected: CaseRun | None,
            use_literal: bool) -> Iterator[QuantityCheck]:
    expected = expected or reference_run(case, settings, observed)
    for index, (step, got) in enumerate(zip(case.steps, observed.steps)):
        for quantity in step.observe:
            if quantity not in got:
                yield QuantityCheck(index, quantity, True, observable=False,
                                    note="not observable in this framework")
                continue
            yield _check_one(case, index, step, quantity, got[quantity], expected, settings, use_literal)
    yield from check_masks(case, observed)


def check_masks(case: Case, observed: CaseRun) -> list[QuantityCheck]:
    """Dropout masks (the zero pattern of the output) that must match or differ between two
    steps. Two independent masks of n units at rate p agree by chance with probability
    (p^2 + (1-p)^2)^n: below 1e-9 for the sizes the corpus uses."""
    checks = []
    for first, second, relation in case.mask_relations:
        if max(first, second) >= len(observed.steps):
            continue  # the run stopped before; its error is reported already
        a, b = (_zero_pattern(case, observed.steps[i]) for i in (first, second))
        if a is None or b is None or a.shape != b.shape:
            checks.append(QuantityCheck(second, "mask", False, note=f"cannot compare the masks of "
                                        f"steps {first} and {second}: outputs missing or shaped differently"))
            continue
        same = bool(np.array_equal(a, b))
        ok = same if relation == "same" else not same
        note = "" if ok else (f"the dropout masks of steps {first} and {second} "
                              f"{'differ' if relation == 'same' else 'are identical'}; expected them "
                              f"{'identical' if relation == 'same' else 'to differ'}")
        checks.append(QuantityCheck(second, "mask", ok, note=note))
    return checks


def _random_leaf_pass(case: Case, index: int, quantity: str, expected: CaseRun,
                      settings: dict[str, str]) -> tuple[DropoutSpec, DropoutConventions] | None:
    """For a model's dropout leaf whose pass at step ``index`` the reference ran at random
    under ``settings``: the leaf's spec and conventions (its mask is then checked by its
    properties)."""
    name = quantity.rpartition(".")[0]
    record = expected.steps[index].get(f"{name}.training") if index < len(expected.steps) else None
    if record is None:
        return None
    assert isinstance(case.layer, ModelSpec)
    leaf = case.layer.leaf(name)
    assert isinstance(leaf.layer, DropoutSpec)
    conv = conventions_for(leaf.layer, settings)
    assert isinstance(conv, DropoutConventions)
    return (leaf.layer, conv) if dropout_is_random("train" if float(record) == 1.0 else "eval", conv) else None


def _zero_pattern(case: Case, observed: dict[str, np.ndarray]) -> np.ndarray | None:
    """Which units a step dropped: a layer's zero outputs, or a model's dropout leaves'
    masks side by side."""
    if not isinstance(case.layer, ModelSpec):
        output = observed.get("output")
        return None if output is None else output == 0
    masks = [observed.get(f"{leaf.name}.mask") for leaf in case.layer.leaves() if leaf.layer.kind == "dropout"]
    if not masks or any(m is None for m in masks):
        return None
    return np.concatenate([np.nan_to_num(np.asarray(m), nan=-1.0).ravel() for m in masks])


def check_one(case: Case, index: int, quantity: str, got: np.ndarray, expected: CaseRun,
              settings: dict[str, str], use_literal: bool) -> QuantityCheck:
    """``got``, observed at step ``index``, against the reference run ``expected`` under
    ``settings`` (or the case's literal value there, with ``use_literal``)."""
    return _check_one(case, index, case.steps[index], quantity, got, expected, settings, use_literal)


def _check_one(case: Case, index: int, step: Step, quantity: str, got: np.ndarray,
               expected: CaseRun, settings: dict[str, str], use_literal: bool,
               verdict_only: bool = False) -> QuantityCheck:
    """One quantity at one step; with ``verdict_only`` only ``ok`` is worked out where
    that is cheaper (the error statistics of a comparison cost more than the comparison)."""
    exact = Tolerance(0.0, 0.0)
    counted = quantity.rpartition(".")[2] in ("batch_count", "training")
    tol = exact if counted else case.tolerance
    if quantity.endswith(".mask") and getattr(case.layer, "kind", "") == "model":
        random = _random_leaf_pass(case, index, quantity, expected, settings)
        if random is not None:
            literal = case.literal.get((index, quantity)) if use_literal else None
            leaf_spec, conv = random
            return check_dropout_random(index, quantity, np.ones_like(np.asarray(got)), got, leaf_spec,
                                        conv, tol, literal=literal,
                                        match=case.literal_match.get((index, quantity), ""))
    if isinstance(case.layer, DropoutSpec) and step.action == "forward":
        conv = conventions_for(case.layer, settings)  # type: ignore[assignment]
        assert isinstance(conv, DropoutConventions)
        if dropout_is_random(step.mode, conv):
            grad = case.inputs[step.grad_output] if quantity == "grad_input" and step.grad_output else None
            literal = case.literal.get((index, quantity)) if use_literal else None
            return check_dropout_random(index, quantity, case.inputs[step.input], got, case.layer,
                                        conv, tol, grad=grad, literal=literal,
                                        match=case.literal_match.get((index, quantity), ""))
    if use_literal and (index, quantity) in case.literal:
        return compare_arrays(index, quantity, got, case.literal[(index, quantity)], tol)
    if index >= len(expected.steps) or quantity not in expected.steps[index]:
        return QuantityCheck(index, quantity, False, note=f"the reference has no {quantity} here "
                             f"({expected.message or 'not defined for this layer'})")
    if verdict_only:
        return QuantityCheck(index, quantity, within(got, expected.steps[index][quantity], tol))
    return compare_arrays(index, quantity, got, expected.steps[index][quantity], tol)
