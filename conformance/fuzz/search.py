"""The search: hypothesis draws configurations, every framework runs each one, and each new
cause of divergence is shrunk by hypothesis's own shrinker.

The search runs in rounds; each round is one ``@given`` run over ``case_documents`` with
``report_multiple_bugs``. A configuration showing a signature (``cause.Signature``) that no
finding explains yet (a finding explains it when the configuration has all the finding's
triggers) makes the test function raise an exception of a class of its own for that
signature. Hypothesis tells failures apart by exception type, so it shrinks each signature
separately, to a minimal case that still shows it and that no earlier finding explains; the
features of that minimal case become the new finding's triggers. Known conventions, registry
entries and the divergences registered corpus cases show are never raised.

The time budget: past the *soft* deadline an unseen configuration is no longer run (it
passes at once), so a shrink in progress ends with the best case found so far; past the
*hard* deadline the search stops outright (``BudgetSpent`` escapes hypothesis).
Configurations are cached by their YAML text, so hypothesis's replays cost nothing.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from hypothesis import HealthCheck, Phase, Verbosity, given, reject, settings
from hypothesis import seed as hypothesis_seed

from conformance.checks import reference_run
from conformance.fuzz.cause import (
    Signature,
    one_value_per_channel,
)
from conformance.fuzz.documents import features, size, spec_document, to_text
from conformance.fuzz.generate import case_documents
from conformance.fuzz.lanes import Lanes, Registered
from conformance.model import Case
from conformance.spec import load_text

GRACE_S = 5.0  # after the soft deadline, for hypothesis to finish the shrink in progress
FIRST_ROUND = 20
LARGEST = {"float64": 1.7e308, "float32": 3.4e38, "float16": 65504.0, "bfloat16": 3.38e38}


class BudgetSpent(BaseException):
    """The hard deadline passed: stop the search (a BaseException, so hypothesis lets it
    through instead of treating it as a failing example)."""


class _Shows(Exception):
    """Raised by the test function: this configuration shows ``signature`` unexplained. A
    subclass per signature keeps hypothesis's shrinks apart."""

    def __init__(self, signature: Signature, example: Example) -> None:
        super().__init__(signature.describe())
        self.signature = signature
        self.example = example


@dataclass
class Example:
    """One configuration that ran: the case (a spec document entry), its YAML, its features
    and the signatures it shows (beyond conventions and registered divergences)."""

    case: dict[str, Any]
    text: str
    features: frozenset[str] = frozenset()
    shown: tuple[Signature, ...] = ()
    rejected: bool = False


@dataclass
class Finding:
    """One cause: a signature and the triggers of its minimal case."""

    signature: Signature
    best: Example
    triggers: frozenset[str] = frozenset()
    seen: int = 1
    worst: dict[str, Any] = field(default_factory=dict)  # the largest error seen
    shrink: str = "not shrunk"  # "shrunk" | "shrink stopped at the budget" | "not shrunk"

    def explains(self, signature: Signature, case_features: frozenset[str]) -> bool:
        """Whether a configuration with ``case_features`` showing ``signature`` is this
        cause: its signature covers the configuration's, and every trigger is present."""
        return self.triggers <= case_features and self.signature.covers(signature)

    def note(self, entry: dict[str, Any]) -> None:
        self.seen += 1
        worst = entry.get("worst") or {}
        if worst.get("max_abs_error", 0.0) > self.worst.get("max_abs_error", -1.0):
            self.worst = dict(worst)


@dataclass
class Tally:
    tried: int = 0  # configurations run on every framework
    rejected: int = 0  # configurations whose reference values overflow their dtype
    verdicts: dict[str, int] = field(default_factory=dict)
    registered: int = 0  # framework runs showing a divergence a registered case shows
    running_s: float = 0.0

    def rate(self) -> float:
        """Configurations per second of running them (hypothesis's own time aside)."""
        return self.tried / self.running_s if self.running_s > 0 else 0.0


class Search:
    """Explore, find and shrink until the budget is spent."""

    def __init__(self, lanes: Lanes, registered: dict[str, list[Registered]], budget_s: float,
                 seed: int = 0, progress: Callable[[str], None] | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.lanes = lanes
        self.registered = registered
        self.seed = seed
        self.progress = progress
        self.clock = clock
        self.started = clock()
        self.soft = self.started + budget_s - min(GRACE_S, budget_s / 10)
        self.hard = self.started + budget_s
        self.tally = Tally()
        self.findings: list[Finding] = []  # shrunk (or budget-bound) causes
        self.pending: dict[Signature, Finding] = {}  # seen, not explained, not shrunk yet
        self.rounds = 0
        self._cache: dict[str, Example] = {}
        self._classes: dict[Signature, type[_Shows]] = {}
        self._order: dict[Signature, int] = {}
        self._last_progress = self.started
        self._skipped = False  # a configuration went unrun this round (soft deadline)

    # -- one configuration --------------------------------------------------------------

    def evaluate(self, case_doc: dict[str, Any]) -> Example | None:
        """Run one configuration on every framework (once: later calls hit the cache);
        None when it is new and the soft deadline has passed."""
        text = to_text(spec_document(case_doc))
        if text in self._cache:
            return self._cache[text]
        if self.clock() > self.soft:
            self._skipped = True
            return None
        start = self.clock()
        case = load_text(text, file="fuzz.yaml")[0]  # valid by construction
        example = Example(case_doc, text, features(case_doc))
        if _overflows(case):
            example.rejected = True
            self.tally.rejected += 1
        else:
            example.shown = self._judge(case, example)
            self.tally.tried += 1
        self._cache[text] = example
        self.tally.running_s += self.clock() - start
        self._report()
        return example

    def _judge(self, case: Case, example: Example) -> tuple[Signature, ...]:
        outcomes = self.lanes.run(case)
        shown = []
        for name, outcome in outcomes.items():
            verdict = outcome.entry["verdict"]
            self.tally.verdicts[verdict] = self.tally.verdicts.get(verdict, 0) + 1
            signature = outcome.signature(case, name)
            if signature is None:
                continue
            if self._is_registered(signature, case, outcome.entry):
                self.tally.registered += 1
                continue
            shown.append(signature)
            self._order.setdefault(signature, len(self._order))
            self._group(signature, example).note(outcome.entry)
        return tuple(sorted(shown, key=self._order.__getitem__))

    def unexplained(self, example: Example) -> list[Signature]:
        """The signatures of ``example`` that no finding explains (yet)."""
        return [s for s in example.shown if self._explaining(s, example) is None]

    def _explaining(self, signature: Signature, example: Example) -> Finding | None:
        return next((f for f in self.findings if f.explains(signature, example.features)), None)

    def _group(self, signature: Signature, example: Example) -> Finding:
        """The finding that explains ``signature`` in ``example``, or the pending group of
        the signature, created on first use."""
        found = self._explaining(signature, example)
        if found is not None:
            return found
        group = self.pending.get(signature)
        if group is None:
            group = self.pending[signature] = Finding(signature, example, seen=0)
        elif size(example.case, example.text) < size(group.best.case, group.best.text):
            group.best = example
        return group

    def _is_registered(self, signature: Signature, case: Case, entry: dict[str, Any]) -> bool:
        """Whether a registered corpus case of the same layer kind shows this signature.

        An error or an unexplained divergence must also show in the same regime (one value
        per channel or not), and a precision divergence in the same dtype; a convention that
        explains the observation says enough by itself. With one value per channel, where
        frameworks raise or return the input unchanged, a registered case in that regime
        with the same verdict covers whatever the framework does there."""
        regime = one_value_per_channel(case)
        unexplained = signature.explanation == "unexplained" or signature.verdict == "error"
        for r in self.registered.get(signature.framework, []):
            if r.kind != case.layer.kind:
                continue
            if regime and r.one_value_per_channel and r.signature.verdict == signature.verdict:
                return True
            if r.signature == signature and (not unexplained or r.one_value_per_channel == regime) \
                    and (signature.severity != "precision" or r.dtype == case.dtype):
                return True
        return False

    # -- rounds -------------------------------------------------------------------------

    def run(self) -> list[Finding]:
        """Search until the budget is spent; the findings in the order they were found."""
        try:
            while self.clock() < self.soft:
                self._round()
        except BudgetSpent:
            self._settle("shrink stopped at the budget")
        self._settle("not shrunk")  # seen, but always beside an earlier signature
        self._merge()
        self._report(force=True)
        return self.findings

    def _round(self) -> None:
        test = self._test(self._round_size())
        self.rounds += 1
        self._skipped = False
        try:
            test()
        except BudgetSpent:
            raise
        except BaseException as exc:  # noqa: BLE001 - hypothesis reports every signature it shrank
            shown, others = _split(exc)
            if others:
                raise others[0]
            for shows in shown:  # hypothesis's minimal case for each signature
                group = self.pending.pop(shows.signature)
                group.best = shows.example
                group.triggers = shows.example.features
                group.shrink = "shrink stopped at the budget" if self._skipped else "shrunk"
                self.findings.append(group)
            self._merge()

    def _merge(self) -> None:
        """A finding that another one explains (same signature, a subset of its triggers;
        found later, from another configuration) is that one: fold it in."""
        kept: list[Finding] = []
        for finding in sorted(self.findings, key=lambda f: len(f.triggers)):
            general = next((k for k in kept if k.explains(finding.signature, finding.triggers)), None)
            if general is None:
                kept.append(finding)
                continue
            general.seen += finding.seen
            if finding.worst.get("max_abs_error", 0.0) > general.worst.get("max_abs_error", -1.0):
                general.worst = finding.worst
        self.findings = [f for f in self.findings if f in kept]  # in the order found

    def _settle(self, shrink: str) -> None:
        """Pending signatures become findings as they stand (their smallest case so far)."""
        for group in self.pending.values():
            group.triggers = group.best.features
            group.shrink = shrink
            self.findings.append(group)
        self.pending.clear()

    def rate(self) -> float:
        """Configurations tried per second since the search began."""
        elapsed = self.clock() - self.started
        return self.tally.tried / elapsed if elapsed > 0 else 0.0

    def _round_size(self) -> int:
        """About a third of the time left (at most 30 s) worth of new configurations; the
        rest of the round is shrinking what they show."""
        if self.tally.tried == 0:
            return FIRST_ROUND
        remaining = max(self.soft - self.clock(), 0.0)
        seconds = max(5.0, min(remaining / 3, 30.0))
        return int(min(max(self.rate() * seconds, 10), 1000))

    def _test(self, examples: int) -> Callable[[], None]:
        @hypothesis_seed(self.seed * 100_003 + self.rounds)
        @settings(max_examples=examples, deadline=None, database=None, derandomize=False,
                  phases=(Phase.generate, Phase.shrink), report_multiple_bugs=True,
                  suppress_health_check=list(HealthCheck), verbosity=Verbosity.quiet,
                  print_blob=False)
        @given(case_documents())
        def probe(case_doc: dict[str, Any]) -> None:
            if self.clock() > self.hard:
                raise BudgetSpent()
            example = self.evaluate(case_doc)
            if example is None:
                return
            if example.rejected:
                reject()
            unexplained = self.unexplained(example)
            if unexplained:
                signature = unexplained[0]
                self._group(signature, example)  # a replay from an earlier round: a new group
                raise self._class(signature)(signature, example)

        return probe  # type: ignore[no-any-return]

    def _class(self, signature: Signature) -> type[_Shows]:
        if signature not in self._classes:
            self._classes[signature] = type(f"Shows{len(self._classes)}", (_Shows,), {})
        return self._classes[signature]

    # -- progress -----------------------------------------------------------------------

    def status(self) -> str:
        elapsed = self.clock() - self.started
        shrunk = sum(f.shrink == "shrunk" for f in self.findings)
        return (f"fuzz: {elapsed:5.1f} s, {self.tally.tried} configurations "
                f"({self.rate():.1f}/s), {len(self.findings) + len(self.pending)} new "
                f"causes ({shrunk} shrunk), {self.tally.registered} registered divergences seen again")

    def _report(self, force: bool = False) -> None:
        now = self.clock()
        if self.progress is not None and (force or now - self._last_progress >= 2.0):
            self._last_progress = now
            self.progress(self.status())


def _overflows(case: Case) -> bool:
    """Whether some value the reference expects lies beyond the case's dtype (an output of
    1e6 in float16, say): such a case says nothing about a framework."""
    expected = reference_run(case, {})
    limit = LARGEST[case.dtype]
    for step in expected.steps:
        for value in step.values():
            finite = np.asarray(value, np.float64)
            finite = finite[np.isfinite(finite)]
            if finite.size and float(np.abs(finite).max()) > limit:
                return True
    return False


def _split(exc: BaseException) -> tuple[list[_Shows], list[BaseException]]:
    """The ``_Shows`` hypothesis raised (alone or in a group), and anything else."""
    if isinstance(exc, _Shows):
        return [exc], []
    inner_exceptions = getattr(exc, "exceptions", None)  # an exception group (3.10: backport)
    if isinstance(inner_exceptions, (list, tuple)):
        shown: list[_Shows] = []
        others: list[BaseException] = []
        for inner in inner_exceptions:
            a, b = _split(inner)
            shown += a
            others += b
        return shown, others
    return [], [exc]
