"""The registry of known divergences: ``expectations/<framework>.yaml``.

Each entry names cases (an id or a glob), an optional framework version range (PEP 440,
e.g. ``">=2.15,<3"``) and devices, the verdict it expects (``divergence`` or ``error``), a
reason and a link. A result the registry expects does not fail a run; an entry whose case
now conforms is *stale* and does fail it, so the registry follows upstream fixes.
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.version import InvalidVersion, Version

from conformance import yamlines
from conformance.errors import did_you_mean
from conformance.spec import SpecError, SpecErrors

ENTRY_KEYS = {"case", "versions", "devices", "verdict", "reason", "link"}
TOP_KEYS = {"framework", "expected"}


@dataclass(frozen=True)
class Expected:
    case: str
    verdict: str
    reason: str
    link: str
    versions: str = ""
    devices: tuple[str, ...] = ("cpu", "gpu")
    file: str = ""
    line: int = 0

    def matches(self, case_id: str, version: str, device: str) -> bool:
        if device not in self.devices or not fnmatch.fnmatchcase(case_id, self.case):
            return False
        if not self.versions:
            return True
        try:
            return Version(version.split("+")[0]) in SpecifierSet(self.versions)
        except InvalidVersion:
            return False

    def as_dict(self) -> dict[str, Any]:
        return {"reason": self.reason, "link": self.link, "versions": self.versions,
                "registry": f"{self.file}:{self.line}"}


def load(directory: str | Path | None, framework: str) -> list[Expected]:
    """Entries of ``<directory>/<framework>.yaml`` (a converter's name made file-safe:
    ``results.file_stem``); none when the file does not exist."""
    from conformance.results import file_stem

    if directory is None:
        return []
    path = Path(directory) / f"{file_stem(framework)}.yaml"
    if not path.is_file():
        return []
    return load_file(path)


def check_folder(directory: str | Path | None) -> int:
    """Load every ``*.yaml`` registry file of ``directory``, before a run starts: a mistake
    in one is a bad input (``SpecErrors`` with ``file:line``), not a problem found halfway
    through the run. Returns how many entries there are."""
    if directory is None or not Path(directory).is_dir():
        return 0
    errors: list[SpecError] = []
    count = 0
    for path in sorted(Path(directory).glob("*.yaml")):
        try:
            count += len(load_file(path))
        except SpecErrors as exc:
            errors += exc.errors
    if errors:
        raise SpecErrors(errors)
    return count


def load_file(path: Path) -> list[Expected]:
    """The entries of one registry file, every problem found at once (``SpecErrors``)."""
    file = str(path)
    try:
        doc = yamlines.load_spec_text(path.read_text(encoding="utf-8"), file)
    except (OSError, UnicodeDecodeError) as exc:
        raise SpecErrors([SpecError(file, 1, f"cannot read the registry file ({exc}); expected "
                                    "a UTF-8 YAML file")]) from None
    if doc is None:  # an empty registry expects nothing
        return []
    if not isinstance(doc, dict):
        raise SpecErrors([SpecError(file, 1, "expected a mapping with a list of entries under "
                                    "'expected:' (and optionally 'framework:')")])
    unknown = sorted(set(map(str, doc)) - TOP_KEYS)
    if unknown:
        hint = did_you_mean(unknown[0], sorted(TOP_KEYS))
        raise SpecErrors([SpecError(file, yamlines.line_of(doc, [unknown[0]]),
                                    f"unknown top-level key {unknown[0]!r}{hint}; expected "
                                    f"{' and '.join(sorted(TOP_KEYS))}")])
    if not isinstance(doc.get("expected"), list):
        raise SpecErrors([SpecError(file, 1, "expected a mapping with a list of entries under "
                                    "'expected:' (and optionally 'framework:')")])
    entries = doc["expected"]
    found, errors = [], []
    for i, item in enumerate(entries):
        line = yamlines.line_of(entries, [i])
        problem = _problem(item)
        if problem:
            errors.append(SpecError(file, line, f"expected[{i}]: {problem}"))
            continue
        found.append(Expected(case=item["case"], verdict=item["verdict"], reason=item["reason"],
                              link=item["link"], versions=str(item.get("versions", "")),
                              devices=tuple(item.get("devices", ("cpu", "gpu"))), file=file, line=line))
    if errors:
        raise SpecErrors(errors)
    return found


def _problem(item: Any) -> str:
    if not isinstance(item, dict):
        return "expected a mapping with case, verdict, reason and link"
    unknown = sorted(set(map(str, item)) - ENTRY_KEYS)
    if unknown:
        hint = did_you_mean(unknown[0], sorted(ENTRY_KEYS))
        return f"unknown key {unknown[0]!r}{hint}; expected some of {', '.join(sorted(ENTRY_KEYS))}"
    missing = {"case", "verdict", "reason", "link"} - set(item)
    if missing:
        return f"missing {sorted(missing)}; every entry needs a case, verdict, reason and link"
    wrong = next((k for k in ("case", "verdict", "reason", "link") if not isinstance(item[k], str)
                  or not item[k].strip()), None)
    if wrong:
        return f"{wrong}: got {item[wrong]!r}; expected a non-empty string"
    devices = item.get("devices", ["cpu", "gpu"])
    if not isinstance(devices, list) or not devices or any(d not in ("cpu", "gpu") for d in devices):
        return f"devices: got {devices!r}; expected a list of cpu and/or gpu"
    if item["verdict"] not in ("divergence", "error"):
        return f"verdict {item['verdict']!r}; expected 'divergence' or 'error'"
    try:
        SpecifierSet(str(item.get("versions", "")))
    except InvalidSpecifier:
        return f"versions {item.get('versions')!r}; expected a PEP 440 range such as '>=2.1,<3'"
    return ""


def apply(result: dict[str, Any], entries: list[Expected], version: str, device: str) -> None:
    """Mark ``result`` as expected, stale or unexpected, in place."""
    match = next((e for e in entries if e.matches(result["id"], version, device)), None)
    verdict = result["verdict"]
    if match is not None and verdict in ("conforms", "convention", "expected-error"):
        result["stale"] = True
        result["expected"] = match.as_dict()
        result["message"] = (f"registry entry {match.file}:{match.line} expects {match.verdict}, "
                             f"but the case now gives {verdict}: remove or update the entry")
    elif match is not None and verdict in ("divergence", "error"):
        result["expected"] = match.as_dict()
    result["unexpected"] = bool(result.get("stale")) or (verdict in ("divergence", "error") and match is None)
