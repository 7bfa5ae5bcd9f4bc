"""Each finding becomes one spec file: the minimal case, run once more on every framework to
confirm that the file reproduces it, under a comment header that says what was found, by
how much, on which versions, what the other frameworks do, and how to keep it."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from conformance.fuzz.cause import slug, where
from conformance.fuzz.crosscheck import reference_sides_with, sides
from conformance.fuzz.documents import spec_document, to_text
from conformance.fuzz.lanes import Lanes
from conformance.fuzz.search import Finding, Search
from conformance.spec import load_text

SUMMARY_FILE = "fuzz-summary.json"


@dataclass
class Written:
    """A finding as written: its file, whether running the file shows the cause again, what
    the minimal case measured, and what the other frameworks do on it."""

    finding: Finding
    path: Path
    reproduced: bool
    message: str
    where: str = ""
    others: dict[str, str] = field(default_factory=dict)

    def describe(self) -> str:
        triggers = ", ".join(sorted(self.finding.triggers))
        when = f"when {triggers}" if triggers else "even in the plainest configuration"
        return f"{self.finding.signature.describe()}, {when}"

    def as_dict(self) -> dict[str, Any]:
        return {"signature": asdict(self.finding.signature), "triggers": sorted(self.finding.triggers),
                "description": self.describe(), "where": self.where,
                "file": str(self.path), "reproduced": self.reproduced, "message": self.message,
                "seen": self.finding.seen, "worst": self.finding.worst,
                "shrink": self.finding.shrink, "others": self.others,
                "reference_sides_with": reference_sides_with(self.others)}


def write_findings(search: Search, lanes: Lanes, out_dir: Path, device: str) -> list[Written]:
    out_dir.mkdir(parents=True, exist_ok=True)
    written: list[Written] = []
    for finding in search.findings:
        name = slug(finding.signature, finding.triggers)
        taken = {w.path.stem for w in written}
        name = next(f"{name[:96]}-{i}" for i in range(2, 10**6) if f"{name[:96]}-{i}" not in taken) \
            if name in taken else name
        written.append(_write_one(finding, name, search, lanes, out_dir, device))
    return written


def _write_one(finding: Finding, name: str, search: Search, lanes: Lanes, out_dir: Path,
               device: str) -> Written:
    signature = finding.signature
    path = out_dir / f"{name}.yaml"
    result = Written(finding, path, False, "the framework did not run")
    case_doc = {**finding.best.case, "name": name}
    body = to_text(spec_document(case_doc, result.describe()))
    case = load_text(body, file=str(path), path=path)[0]
    outcomes = lanes.run(case)
    own = outcomes.get(signature.framework)
    if own is not None:
        result.reproduced = own.signature(case, signature.framework) == signature
        result.message = own.entry.get("message", "")
        result.where = where(case, own.entry)
    result.others = sides(case, outcomes, signature.framework)
    path.write_text(_header(result, search, lanes, device) + body, encoding="utf-8")
    return result


def _header(written: Written, search: Search, lanes: Lanes, device: str) -> str:
    finding, signature = written.finding, written.finding.signature
    versions = ", ".join(f"{n} {v}" for n, v in lanes.versions().items())
    worst = finding.worst
    lines = [
        f"Found by `conformance fuzz` (seed {search.seed}): {written.describe()}.",
        f"Frameworks: {versions} (device {device}).",
        f"On this minimal case ({written.where}): {written.message}",
        f"Seen in {finding.seen} of {search.tally.tried} configurations tried"
        + (f"; largest error seen: max abs {worst['max_abs_error']:.3g}, max rel "
           f"{worst.get('max_rel_error', 0.0):.3g}" if worst.get("max_abs_error") is not None else "")
        + f". {finding.shrink.capitalize()} (hypothesis).",
    ]
    for name, phrase in written.others.items():
        lines.append(f"{name} on this case: {phrase}")
    sided = reference_sides_with(written.others)
    if sided:
        lines.append(f"The reference sides with: {', '.join(sided)}.")
    lines += [
        "Running this file reproduces it." if written.reproduced else
        "WARNING: running this file did not show the same cause again (flaky or budget-bound).",
        f"Reproduce: conformance run {written.path} --framework {signature.framework}",
        ("Keep it: move the case into specs/ (a corpus case), or register it in "
         f"expectations/{signature.framework}.yaml; see the README, section Fuzzing."),
    ]
    return "".join(f"# {line}\n" for text in lines for line in _wrap(text))


def _wrap(text: str, width: int = 98) -> list[str]:
    words, lines, line = text.split(), [], ""
    for word in words:
        if line and len(line) + 1 + len(word) > width:
            lines.append(line)
            line = "  " + word
        else:
            line = f"{line} {word}" if line else word
    return lines + [line] if line else lines


def write_summary(search: Search, lanes: Lanes, written: list[Written], out_dir: Path) -> Path:
    path = out_dir / SUMMARY_FILE
    data = {
        "schema": "conformance.fuzz/1",
        "seed": search.seed,
        "frameworks": lanes.versions(),
        "problems": lanes.problems,
        "configurations": search.tally.tried,
        "rejected": search.tally.rejected,
        "seconds": round(search.clock() - search.started, 3),
        "configurations_per_second": round(search.rate(), 3),
        "configurations_per_second_of_running": round(search.tally.rate(), 3),
        "rounds": search.rounds,
        "verdicts": search.tally.verdicts,
        "registered_seen_again": search.tally.registered,
        "findings": [w.as_dict() for w in written],
    }
    path.write_text(json.dumps(data, indent=1, default=str) + "\n", encoding="utf-8")
    return path


def summary_text(search: Search, lanes: Lanes, written: list[Written], out_dir: Path) -> str:
    tally = search.tally
    elapsed = search.clock() - search.started
    versions = ", ".join(f"{n} {v}" for n, v in lanes.versions().items())
    counts = ", ".join(f"{n} {v}" for v, n in sorted(tally.verdicts.items()))
    lines = [(f"fuzz: {tally.tried} configurations in {elapsed:.1f} s ({search.rate():.1f}/s; "
              f"{search.rounds} rounds of hypothesis) on {versions}"),
             f"  framework runs: {counts or 'none'}",
             (f"  registered divergences seen again (not reported): {tally.registered}; "
              f"configurations whose reference overflows their dtype (not run): {tally.rejected}")]
    for problem in lanes.problems:
        lines.append(f"  skipped {problem}")
    if not written:
        lines.append("  no new divergence")
        return "\n".join(lines) + "\n"
    lines.append(f"  {len(written)} new divergence cause(s):")
    for w in written:
        mark = "" if w.reproduced else "  (did NOT reproduce when run again)"
        lines.append(f"    {w.describe()}: seen {w.finding.seen}x, "
                     f"{w.finding.shrink}{mark}\n      -> {w.path}")
    lines.append(f"spec files in {out_dir}/ (conformance validate {out_dir}; "
                 f"conformance run {out_dir} -f {','.join(lanes.versions())})")
    return "\n".join(lines) + "\n"
