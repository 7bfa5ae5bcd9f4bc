"""Selecting cases for ``conformance run`` and ``list``: ``file.yaml::case`` and ``-k EXPR``."""

from __future__ import annotations

from pathlib import Path

import pytest

from conformance.cli import UsageError, load_cases, main
from conformance.selection import SelectionError, keyword_matcher

SPECS = Path(__file__).resolve().parents[1] / "specs"
MOMENTUM = SPECS / "batchnorm" / "momentum.yaml"


def ids(cases: list) -> list[str]:
    return [c.id.split("::")[1] for c in cases]


def test_a_file_and_a_case_name_select_that_case() -> None:
    assert ids(load_cases([f"{MOMENTUM}::weight_0_9"])) == ["weight_0_9"]
    both = load_cases([f"{MOMENTUM}::weight_0_9", f"{MOMENTUM}::weight_0_01", f"{MOMENTUM}::weight_0_9"])
    assert ids(both) == ["weight_0_9", "weight_0_01"]


def test_an_unknown_case_name_is_refused_with_the_names_there_are() -> None:
    with pytest.raises(UsageError, match=r"no case named 'weight_09' .*did you mean 'weight_0_9'.*"
                                         r"expected one of: .*weight_0_01"):
        load_cases([f"{MOMENTUM}::weight_09"])


@pytest.mark.parametrize(("expression", "selected"), [
    ("weight_0_9", ["weight_0_9"]),
    ("WEIGHT_0 and not 0_01", ["weight_0_keeps_the_initial_statistics", "weight_0_9"]),
    ("keeps and (initial or last)", ["weight_0_keeps_the_initial_statistics",
                                     "weight_1_keeps_only_the_last_batch"]),
    ("not momentum", []),
])
def test_keyword_expressions_follow_pytest_grammar(expression: str, selected: list[str]) -> None:
    cases = load_cases([str(MOMENTUM)])
    matcher = keyword_matcher(expression)
    assert [c.id.split("::")[1] for c in cases if matcher(c)] == selected


def test_a_keyword_matches_an_area_too() -> None:
    cases = load_cases([str(SPECS / "batchnorm")])
    area = cases[0].areas[0]
    assert all(area in c.areas or area in c.id for c in load_cases([str(SPECS / "batchnorm")], area))


@pytest.mark.parametrize("expression", ["", "a and", "(a", "a b", "and a", "not"])
def test_malformed_expressions_are_refused(expression: str) -> None:
    with pytest.raises(SelectionError, match="-k"):
        keyword_matcher(expression)


def test_run_takes_the_selection(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "r"
    assert main(["run", str(SPECS / "batchnorm"), "-k", "momentum and weight_0_9", "-f", "numpy",
                 "-q", "--out", str(out)]) == 0
    table = capsys.readouterr().out.splitlines()
    assert table[1].split() == ["batchnorm/momentum::weight_0_9", "conforms"]
    assert table[2] == ""
    assert main(["run", str(MOMENTUM), "-k", "nothing_like_this", "-f", "numpy", "--out", str(out)]) == 2
    assert "selects none of the 4 cases" in capsys.readouterr().err
