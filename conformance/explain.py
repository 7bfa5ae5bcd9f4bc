"""The search for what explains a run: the smallest sets of conventions, changed from the
case's own (its ``reference:``, else the canonical ones), under which the numpy reference
reproduces every observation; and where none does, what fits partly.

A set is tried by re-running the reference under it (``checks.reproduces``, which stops at
the first step that differs). Sets are tried fewest changes first and the search stops at
the first size that reproduces the run, so an explanation is always a smallest one, found
jointly: a framework that differs in two conventions at once is explained by the pair, not
by either alone. Sets of more than ``MAX_CHANGES`` changes are not tried: four independent
departures from the documented semantics at once is no explanation a user could act on.

Pruning of the sets of two or more (batch norm only; dropout has 12 sets in all). Each single
change is run once, whole, to see which observations (step, quantity) it alters. A set is
tried only when
- none of its changes alters an observation the run matched under the case's own
  conventions: that observation would then differ, unless another change of the set undid it
  exactly, a coincidence no explanation rests on;
- its changes together alter every observation that differs at the first divergent step:
  a set that leaves one of them where the case's conventions put it cannot reproduce it;
- each of its changes alters something, or the set also holds a change that opens a path
  from the running statistics to an output (``bn.train_statistics=running``) or from
  inference passes to the statistics (``bn.eval_updates=yes``), through which it can show.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from typing import Any

from conformance.checks import (
    compare,
    first_differences,
    reference_run,
    reproduces,
    within,
)
from conformance.model import BatchNormSpec, Case, Step
from conformance.program import CaseRun
from conformance.reference import (
    CONVENTION_VALUES,
    settings_of,
)
from conformance.tree import ModelSpec

MAX_CHANGES = 3
# changes through which other changes can show: state -> training outputs, eval -> state
OPENERS = {("bn.train_statistics", "running"), ("bn.eval_updates", "yes")}
Change = tuple[str, str]


def convention_keys(case: Case) -> list[str]:
    """The conventions that can matter to the case: those of its layer's kind, or for a
    model those of its kinds of leaf and of the model features its program uses."""
    if isinstance(case.layer, ModelSpec):
        relevant = _model_relevance(case.layer, case.steps)
        return [k for k in CONVENTION_VALUES
                if next((on for prefix, on in relevant.items() if k.startswith(prefix)), False)]
    prefix = "bn." if isinstance(case.layer, BatchNormSpec) else "dropout."
    return [k for k in CONVENTION_VALUES if k.startswith(prefix)]


def _model_relevance(model: ModelSpec, steps: tuple[Step, ...]) -> dict[str, bool]:
    """Convention key (or prefix) -> whether the model or its program can show it."""
    entries = {s.entry for s in steps if s.action == "forward"}
    leaves = list(model.leaves())
    functional = [leaf for leaf in leaves if leaf.call == "functional"]
    flagged = [leaf for leaf in leaves if leaf.training in ("true", "false")] + \
        [block for block in model.blocks() if block.training in ("true", "false")]
    relevant = {
        "bn.": model.has("batch_norm"),
        "dropout.": model.has("dropout"),
        "model.eval_propagates": bool(entries & {"train", "eval", "mc_dropout"})
        or any(s.action == "switch" for s in steps),
        "model.call_site_flag": bool(flagged),
        "model.call_mode": "call" in entries,
        "model.train_step_mode": "train_step" in entries,
        "model.freeze_survives_mode_switch": any(s.action == "freeze" and s.via != "flag" for s in steps),
        "model.override_respected": any(b.override_mode_switch for b in model.blocks() if b is not model.root),
        "model.predict_switches": "predict" in entries,
        "model.freeze_scope": any(s.action == "freeze" for s in steps) and "train_step" in entries,
        "model.call_flag_scope": bool(flagged),
        "functional.dropout_default_training": any(leaf.layer.kind == "dropout" for leaf in functional),
        "functional.batch_norm_default_training": any(leaf.layer.kind == "batch_norm" and leaf.training == "omitted"
                                                      for leaf in functional),
    }
    return relevant


def base_settings(case: Case) -> dict[str, str]:
    """Every convention of the case's layer kind as the case states it."""
    return settings_of(case.layer, case.reference)


def alternatives(case: Case, max_changes: int = MAX_CHANGES) -> Iterator[dict[str, str]]:
    """Sets of changed conventions (``{key: value}``, each value other than the case's own),
    fewest changes first, up to ``max_changes``."""
    current = base_settings(case)
    options = [[(k, v) for v in CONVENTION_VALUES[k] if v != current[k]] for k in convention_keys(case)]
    options = [o for o in options if o]
    for size in range(1, min(max_changes, len(options)) + 1):
        for keys in itertools.combinations(options, size):
            for changes in itertools.product(*keys):
                yield dict(changes)


def explain(case: Case, run: CaseRun, documented: dict[str, dict[str, str]] | None = None,
            runs: ReferenceRuns | None = None, exhaustive: bool = True,
            max_changes: int = MAX_CHANGES) -> list[dict[str, str]]:
    """Every smallest set of changed conventions under which the reference reproduces all
    observations of ``run`` (empty when none of at most ``MAX_CHANGES`` does). Among equally
    small sets, those the framework documents come first, then those with more documented
    changes. ``runs``: the case's reference runs so far, shared with ``partial_fits``.

    Not ``exhaustive``: the framework's documented changes are tried first, smallest subsets
    first, and the first that reproduces the run is the explanation, the other sets untried: a
    framework that behaves as its documentation says is a ``convention``, whatever else would
    fit too. A case that measures facts searches everything: a fact read from an observation
    that another explanation fits as well is ambiguous, even when that explanation leaves the
    fact's own convention alone (an estimator is unseen when the statistics never move)."""
    documented = documented or {}
    if not exhaustive:
        found = _documented_explanation(case, run, documented)
        if found:
            return [found]
    singles = sorted(alternatives(case, max_changes=1), key=lambda c: not is_documented(c, documented))
    matches = [c for c in singles if reproduces(case, run, {**case.reference, **c})]
    if not matches and len(singles) > 1 and max_changes > 1:
        matches = _search_pairs_and_more(case, run, runs or ReferenceRuns(case, observed=run))
    return sorted(matches, key=lambda m: (not is_documented(m, documented),
                                          -sum(is_documented({k: v}, documented) for k, v in m.items())))


def _documented_explanation(case: Case, run: CaseRun,
                            documented: dict[str, dict[str, str]]) -> dict[str, str] | None:
    """The smallest subset of the framework's documented changes (``documented_changes``)
    under which the reference reproduces the run."""
    changes = list(documented_changes(case, documented).items())
    for size in range(1, min(len(changes), MAX_CHANGES) + 1):
        for subset in itertools.combinations(changes, size):
            if reproduces(case, run, {**case.reference, **dict(subset)}):
                return dict(subset)
    return None


def documented_changes(case: Case, documented: dict[str, dict[str, str]]) -> dict[str, str]:
    """The conventions the framework documents (at a link) that can matter to the case and
    differ from the case's own: the reference under them is what the framework's documentation
    predicts for the case."""
    current = base_settings(case)
    return {k: documented[k]["value"] for k in convention_keys(case)
            if is_documented({k: documented.get(k, {}).get("value", "")}, documented)
            and documented[k]["value"] != current[k] and documented[k]["value"] in CONVENTION_VALUES[k]}


class ReferenceRuns:
    """The reference run of one case under sets of changed conventions, each run once."""

    def __init__(self, case: Case, own: CaseRun | None = None, observed: CaseRun | None = None) -> None:
        self.case = case
        self.observed = observed  # a model follows the dropout masks of the framework's run
        self._runs: dict[frozenset[Change], CaseRun] = {}
        if own is not None:  # the run under the case's own conventions, made already
            self._runs[frozenset()] = own

    def under(self, changed: dict[str, str]) -> CaseRun:
        key = frozenset(changed.items())
        if key not in self._runs:
            self._runs[key] = reference_run(self.case, {**self.case.reference, **changed}, self.observed)
        return self._runs[key]

    def effects(self) -> dict[Change, set[Observation]]:
        """For each single change the reference can run the case under: the observations
        it alters. A change under which the reference cannot run the case (gradients it
        does not derive, say) is absent: no set holding it reproduces anything."""
        base = self.under({})
        effects: dict[Change, set[Observation]] = {}
        for changed in alternatives(self.case, max_changes=1):
            other = self.under(changed)
            if other.status != "ok" or base.status != "ok":
                continue
            (change,) = changed.items()
            effects[change] = {(i, q) for i, step in enumerate(self.case.steps) for q in step.observe
                               if q in base.steps[i] and q in other.steps[i]
                               and not within(other.steps[i][q], base.steps[i][q], self.case.tolerance)}
        return effects


Observation = tuple[int, str]


def _search_pairs_and_more(case: Case, run: CaseRun, runs: ReferenceRuns) -> list[dict[str, str]]:
    if isinstance(case.layer, (BatchNormSpec, ModelSpec)):
        checks = list(compare(case, run, case.reference, runs.under({}), use_literal=False))
        effects: dict[Change, set[Observation]] | None = runs.effects()
        matched = {(c.step, c.quantity) for c in checks if c.ok and c.observable}
        differing = [c for c in checks if not c.ok]
        first_step = min((c.step for c in differing), default=0)
        first = {(c.step, c.quantity) for c in differing if c.step == first_step}
        if isinstance(case.layer, ModelSpec):
            # a model's masks follow the framework's own in random passes: whether one matches
            # depends on which passes a set makes random, not on values a single change moves
            matched = {o for o in matched if not o[1].endswith(".mask")}
            first = {o for o in first if not o[1].endswith(".mask")}
    else:
        effects, matched, first = None, set(), set()
    found: list[dict[str, str]] = []
    for changed in alternatives(case):
        if len(changed) == 1:
            continue
        if found and len(changed) > len(found[0]):
            break
        if effects is not None and not _may_explain(changed, effects, matched, first):
            continue
        if reproduces(case, run, {**case.reference, **changed}):
            found.append(changed)
    return found


def _may_explain(changed: dict[str, str], effects: dict[Change, set[Observation]],
                 matched: set[Observation], first: set[Observation]) -> bool:
    changes = set(changed.items())
    if any(c not in effects or effects[c] & matched for c in changes):
        return False
    if not changes & OPENERS and any(not effects[c] for c in changes):
        return False
    return first <= set().union(*(effects[c] for c in changes))


def is_documented(changed: dict[str, str], documented: dict[str, dict[str, str]]) -> bool:
    """Every change is what the framework documents, at a link (a convention its
    documentation is silent on is no documented convention)."""
    return all(documented.get(k, {}).get("value") == v and documented.get(k, {}).get("link")
               for k, v in changed.items())


def partial_fits(case: Case, run: CaseRun, limit: int = 3,
                 runs: ReferenceRuns | None = None) -> list[dict[str, Any]]:
    """For a run nothing explains: under the case's own conventions and under each single
    change, which observed quantities the reference reproduces at every step, and from which
    step each other one differs; the sets that reproduce the most quantities first (ties:
    fewer changes, later first differences), at most ``limit`` of them."""
    runs = runs or ReferenceRuns(case, observed=run)
    candidates: list[dict[str, str]] = [{}, *alternatives(case, max_changes=1)]
    fits: list[dict[str, Any]] = []
    for changed in candidates:
        expected = runs.under(changed)
        if expected.status != "ok":
            continue
        seen, differs = first_differences(case, run, {**case.reference, **changed}, expected)
        reproduced = sorted(seen - set(differs))
        fits.append({"conventions": changed, "reproduces": reproduced, "differs": dict(sorted(differs.items()))})
    fits.sort(key=lambda f: (-len(f["reproduces"]), len(f["conventions"]),
                             -sum(f["differs"].values())))
    kept: list[dict[str, Any]] = []
    for fit in fits:  # a set that reproduces no more than a smaller one kept already adds nothing
        if not any(set(fit["reproduces"]) <= set(k["reproduces"])
                   and len(k["conventions"]) <= len(fit["conventions"]) for k in kept):
            kept.append(fit)
    best = [f for f in kept if f["reproduces"]][:limit]
    return best or fits[:1]
