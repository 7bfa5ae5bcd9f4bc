"""Results files edited by hand, truncated, or written by something else: every field of a
real results file, replaced by a value of the wrong type, is exit 2 with
``file: where is wrong; expected ...`` or is read, for every report format and for
``conventions``; never a traceback."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from conformance.cli import main

RESULTS = Path(__file__).resolve().parents[1] / "docs" / "results"
WRONG = (None, 7, "x", [], {}, True, [1], {"a": 1})
FORMATS = ("text", "md", "html", "json", "junit")


def sample() -> dict[str, Any]:
    """The torch results header with one case of each verdict and of each optional key."""
    doc = json.loads((RESULTS / "torch-cpu.json").read_text())
    kept: list[dict[str, Any]] = []
    for case in doc["cases"]:
        new_keys = set(case) - set().union(*(set(k) for k in kept)) if kept else set(case)
        if new_keys or case["verdict"] not in {k["verdict"] for k in kept}:
            kept.append(case)
    doc["cases"] = kept
    return doc


SAMPLE = sample()


def mutations(doc: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """(where, document) with one value replaced: each header key, each key of each case,
    and each key one level inside the objects of a case."""
    found: list[tuple[str, dict[str, Any]]] = []
    for key in [k for k in doc if k != "schema"]:
        for wrong in WRONG:
            changed = copy.deepcopy(doc)
            changed[key] = wrong
            found.append((f"{key}={wrong!r}", changed))
    for i, case in enumerate(doc["cases"]):
        for key, value in case.items():
            for wrong in WRONG:
                changed = copy.deepcopy(doc)
                changed["cases"][i][key] = wrong
                found.append((f"cases[{i}].{key}={wrong!r}", changed))
            inner = value if isinstance(value, dict) else value[0] if isinstance(value, list) and value \
                and isinstance(value[0], dict) else None
            for sub in list(inner or {})[:8]:
                for wrong in (None, "x", [], 7):
                    changed = copy.deepcopy(doc)
                    target = changed["cases"][i][key]
                    (target if isinstance(target, dict) else target[0])[sub] = wrong
                    found.append((f"cases[{i}].{key}.{sub}={wrong!r}", changed))
    return found


def test_the_sample_is_rich_and_reads_cleanly(tmp_path: Path) -> None:
    assert {c["verdict"] for c in SAMPLE["cases"]} >= {"conforms", "convention", "divergence", "error",
                                                       "unsupported"}
    path = tmp_path / "torch-cpu.json"
    path.write_text(json.dumps(SAMPLE))
    for fmt in FORMATS:
        assert main(["report", str(path), "--format", fmt, "--out", str(tmp_path / f"r.{fmt}")]) in (0, 1)


def test_no_wrong_value_anywhere_is_a_traceback(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "torch-cpu.json"
    refused = 0
    commands = [["report", str(path), "--format", f, "--out", str(tmp_path / "r")] for f in FORMATS] \
        + [["conventions", str(path)]]
    for n, (where, doc) in enumerate(mutations(SAMPLE)):
        path.write_text(json.dumps(doc))
        # one command per mutation, in turn: each field gets several wrong values, so each
        # field meets most commands, at a sixth of the time of all of them each time
        for command in [commands[n % len(commands)]]:
            try:
                code = main(command)
            except Exception as exc:  # noqa: BLE001 - the point: say which mutation broke what
                pytest.fail(f"{where}: {' '.join(command[:4])} raised {type(exc).__name__}: {exc}")
            err = capsys.readouterr().err
            assert code in (0, 1, 2), where
            if code == 2:
                refused += 1
                assert f"{path}: " in err and "expected" in err, (where, err)
    assert refused > 50  # the checks do refuse: wrong types are not all silently read


@pytest.mark.parametrize(("change", "message"), [
    ({"id": None}, "cases[0].id is null; expected a string"),
    ({"id": 3}, "cases[0].id is an integer (3); expected a string"),
    ({"id": " "}, "cases[0].id is empty"),
    ({"series": []}, "cases[0].series is a list; expected an object"),
    ({"series": {"running_mean": 1}}, "cases[0].series holds an integer (1); expected an object of objects"),
    ({"checks": {"a": 1}}, "cases[0].checks is an object; expected a list"),
    ({"checks": [3]}, "cases[0].checks holds an integer (3); expected a list of objects"),
    ({"line": True}, "cases[0].line is true or false (true); expected an integer"),
    ({"unexpected": "no"}, 'cases[0].unexpected is a string ("no"); expected true or false'),
])
def test_the_issue_s_examples_are_named_exactly(change: dict[str, Any], message: str, tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    doc = copy.deepcopy(SAMPLE)
    doc["cases"][0].update(change)
    path = tmp_path / "torch-cpu.json"
    path.write_text(json.dumps(doc))
    assert main(["report", str(path)]) == 2
    assert f"{path}: {message}" in capsys.readouterr().err
