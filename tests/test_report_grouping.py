"""``conformance report`` in text and Markdown: the divergences of one column that one
convention the framework does not document reproduces form one finding (scope, a line per
case, one snippet), while HTML, JSON and JUnit keep every cell; and ``partly_explained_by``
(a divergence that a convention reproduces only in part) is shown in a cell's details."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from conformance import RESULTS_SCHEMA
from conformance.report import load, render
from conformance.report import text as text_format
from conformance.report.findings import Group, findings, grouped

BIASED = {"bn.running_var_estimator": "biased"}
MIXED = {"bn.running_var_estimator": "biased", "bn.momentum_weights": "old"}
REGISTRY = {"reason": "torch feeds the running variance biased here", "link": "https://example.invalid/r",
            "registry": "expectations/torch.yaml:7"}


def program(rank: int = 2, dtype: str = "float32") -> dict[str, Any]:
    """A batch-norm program: train, train, eval."""
    shape = [8, 3] if rank == 2 else [2, 3, 4, 4]
    steps = [{"mode": m, "input": i, "grad_output": None, "observe": ["output", "running_mean", "running_var"]}
             for m, i in (("train", "a"), ("train", "b"), ("eval", "a"))]
    return {"layer": {"kind": "batch_norm", "rank": rank, "num_features": 3, "channel_axis": "first",
                      "update": "ema", "update_weight": 0.1, "eps": 1e-5, "affine": True, "running_stats": True},
            "dtype": dtype, "inputs": {"a": shape, "b": shape}, "steps": steps}


def divergence(name: str, error: float, step: int = 0, rank: int = 2, dtype: str = "float32",
               explained_by: dict[str, str] | None = None, expected: bool = False,
               **extra: Any) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "id": f"bn/many::{name}", "file": "specs/bn/many.yaml", "line": 3, "areas": [],
        "verdict": "divergence", "program": program(rank, dtype), "first_divergent_step": step,
        "divergent_quantities": ["running_var"],
        "worst": {"quantity": "running_var", "step": step, "ok": False, "max_abs_error": error,
                  "max_rel_error": error / 2, "worst_index": [1], "observed": 1.0 + error, "expected": 1.0},
        "unexpected": not expected, **extra}
    if explained_by:
        names = ", ".join(f"{k}={v}" for k, v in explained_by.items())
        entry["explained_by"] = explained_by
        entry["message"] = (f"running_var at step {step}: ...; the observation matches {names}, which the "
                            "framework does not document")
    else:
        entry["message"] = f"output at step {step}: ...; no known convention explains it"
        entry["divergent_quantities"] = ["output"]
        entry["worst"]["quantity"] = "output"
    if expected:
        entry["expected"] = REGISTRY
    return entry


def twenty(prefix: str = "c", explained_by: dict[str, str] = BIASED, **extra: Any) -> list[dict[str, Any]]:
    """Twenty cases that one explanation reproduces, across ranks 2 and 4 and two dtypes; the
    largest error is c07's (0.5)."""
    cases = []
    for i in range(20):
        rank, dtype = (2, 4)[i % 2], ("float32", "float64")[(i // 2) % 2]
        error = 0.5 if i == 7 else 0.01 + i / 1000
        cases.append(divergence(f"{prefix}{i:02d}", error, rank=rank, dtype=dtype, explained_by=explained_by,
                                **extra))
    return cases


def text_of(folder: Path) -> str:
    """The text report, wide enough that no line wraps (a terminal wraps long lines; which is
    rich's business)."""
    return text_format.render(load([folder]), width=400)


def write(folder: Path, framework: str, cases: list[dict[str, Any]]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{framework}-cpu.json"
    path.write_text(json.dumps({
        "schema": RESULTS_SCHEMA, "framework": framework, "framework_version": "1.0", "device": "cpu",
        "documented": {}, "environment": {"python": "3.11.7", "platform": "Linux", "machine": "x86_64",
                                          "device_name": "cpu"},
        "cases": cases}))
    return path


UNEXPLAINED = [divergence("lone_a", 0.3, step=1), divergence("lone_b", 0.9, step=2)]


@pytest.fixture
def many(tmp_path: Path) -> Path:
    """torch-cpu: twenty cases one undocumented convention reproduces, and two nothing explains."""
    write(tmp_path, "torch", twenty() + UNEXPLAINED)
    return tmp_path


def test_text_shows_one_finding_for_twenty_cases_of_one_undocumented_convention(many: Path) -> None:
    text = text_of(many)
    details = text[text.index("Divergences and errors, worst first"):]
    heads = [line for line in details.splitlines() if "bn.running_var_estimator=biased" in line
             and "case(s)" in line]
    assert heads == [("torch-cpu: bn.running_var_estimator=biased (not documented by the framework; "
                     "unexpected, fails CI), 20 case(s)")]
    assert "  scope: ranks 2, 4; float32, float64; from step 0" in details
    for i in range(20):
        assert details.count(f"bn/many::c{i:02d}") == (2 if i == 7 else 1)  # its line (c07: and the snippet's)
        assert re.search(rf"^  bn/many::c{i:02d}: running_var; max abs [^;]+; from step 0; divergence!$",
                         details, re.MULTILINE), i
    # the worst case first, and its snippet: the only one of the group
    rows = re.findall(r"^  (bn/many::c\d\d): ", details, re.MULTILINE)
    assert rows[0] == "bn/many::c07" and len(rows) == 20
    assert "reproduce with torch (bn/many::c07):" in details
    # the two that nothing explains stay findings of their own, each with its snippet
    assert "bn/many::lone_a [torch-cpu]: divergence!" in details
    assert "bn/many::lone_b [torch-cpu]: divergence!" in details
    assert details.count("reproduce with torch") == 3
    # worst first: lone_b (0.9) before the group (its worst 0.5) before lone_a (0.3)
    assert (details.index("bn/many::lone_b [")
            < details.index("torch-cpu: bn.running_var_estimator=biased")
            < details.index("bn/many::lone_a ["))
    assert "Documented conventions and unsupported features" not in text


def test_markdown_shows_one_block_for_the_twenty(many: Path) -> None:
    md = render(load([many]), "md")
    assert md.count("bn.running_var_estimator=biased (not documented by the framework; unexpected, "
                    "fails CI): 20 case(s)</summary>") == 1
    assert "- **scope**: ranks 2, 4; float32, float64; from step 0" in md
    details = md[md.index("### Divergences and errors, worst first"):]
    for i in range(20):
        assert re.search(rf"^\| `bn/many::c{i:02d}` \| running_var; .*; from step 0; divergence! \|$",
                         details, re.MULTILINE)
        # every matrix cell links to where the case is listed
        assert f'<a id="f-bn-many--c{i:02d}-torch-cpu"></a>' in details
        assert f"(#f-bn-many--c{i:02d}-torch-cpu)" in md
    assert md.count("```python") == 3  # the group's one snippet and the two lone findings'
    assert "Reproduce with torch (`bn/many::c07`):" in md
    assert md.count("<summary>") == 3
    assert "<code>bn/many::lone_a</code> [torch-cpu]" in md and "<code>bn/many::lone_b</code> [torch-cpu]" in md


def test_html_json_and_junit_keep_every_cell(many: Path) -> None:
    matrix = load([many])
    assert len(findings(matrix)) == 22
    data = json.loads(render(matrix, "json"))
    assert sum(v == {"torch-cpu": "divergence"} for v in data["matrix"].values()) == 22
    junit = render(matrix, "junit")
    assert junit.count("<failure") == 22
    page = render(matrix, "html")
    assert page.count('<div class="cell"') == 22 and page.count("Reproduce with torch") == 22


def test_a_group_the_registry_partly_expects_keeps_each_case_mark(tmp_path: Path) -> None:
    cases = twenty()
    for case in cases[10:]:
        case.update(unexpected=False, expected=REGISTRY)
    write(tmp_path, "torch", cases)
    text = text_of(tmp_path)
    assert ("torch-cpu: bn.running_var_estimator=biased (not documented by the framework; unexpected, "
            "fails CI), 20 case(s)") in text
    assert re.search(r"^  bn/many::c03: .*; from step 0; divergence!$", text, re.MULTILINE)
    assert re.search(r"^  bn/many::c13: .*; from step 0; divergence\* \(expectations/torch\.yaml:7\)$",
                     text, re.MULTILINE)
    md = render(load([tmp_path]), "md")
    assert re.search(r"^\| `bn/many::c13` \| .*; divergence\* \(expectations/torch\.yaml:7\) \|$", md, re.MULTILINE)
    assert "\u274c [torch-cpu] bn.running_var_estimator=biased" in md  # unexpected: the worst icon


def test_a_group_the_registry_fully_expects_is_not_unexpected(tmp_path: Path) -> None:
    write(tmp_path, "torch", twenty(expected=True) + UNEXPLAINED[:1])
    matrix = load([tmp_path])
    shown, _ = grouped(findings(matrix))
    # the unexpected finding first, then the expected group, however large its errors
    assert [type(item).__name__ for item in shown] == ["Finding", "Group"]
    group = shown[1]
    assert isinstance(group, Group) and group.severity == 1
    text = text_format.render(matrix, width=400)
    assert ("torch-cpu: bn.running_var_estimator=biased (not documented by the framework; expected by "
            "the registry), 20 case(s)") in text
    assert text.count("divergence* (expectations/torch.yaml:7)") == 20


def test_groups_are_per_column_and_explanation_and_one_case_stays_single(tmp_path: Path) -> None:
    write(tmp_path, "torch", twenty() + [divergence("once", 0.2, explained_by={"bn.eps_placement": "outside"})])
    write(tmp_path, "paddle", twenty("p")[:2])
    text = text_of(tmp_path)
    assert "torch-cpu: bn.running_var_estimator=biased (not documented by the framework; unexpected, " \
           "fails CI), 20 case(s)" in text
    assert "paddle-cpu: bn.running_var_estimator=biased (not documented by the framework; unexpected, " \
           "fails CI), 2 case(s)" in text
    assert "  scope: ranks 2, 4; float32; from step 0" in text  # paddle's two: p00 (rank 2), p01 (rank 4)
    # a single cell an undocumented convention explains: a finding of its own, as before
    assert "bn/many::once [torch-cpu]: divergence!" in text
    assert "convention: bn.eps_placement=outside (not documented by the framework)" in text


def test_mixed_explanations_group_by_the_whole_explanation_and_say_which_parts_are_documented(
        tmp_path: Path) -> None:
    documented = [{"fact": "bn.momentum_weights", "value": "old", "link": "https://example.invalid/m",
                   "fix": "pass 1 - momentum"}]
    write(tmp_path, "paddle", twenty(explained_by=MIXED, conventions=documented)[:4] + twenty("b")[:2])
    text = text_of(tmp_path)
    assert ("paddle-cpu: bn.running_var_estimator=biased, bn.momentum_weights=old "
            "(bn.running_var_estimator=biased not documented by the framework; bn.momentum_weights=old "
            "documented; unexpected, fails CI), 4 case(s)") in text
    assert "  fix: pass 1 - momentum" in text and "  documented at: https://example.invalid/m" in text
    assert ("paddle-cpu: bn.running_var_estimator=biased (not documented by the framework; unexpected, "
            "fails CI), 2 case(s)") in text
    assert text.count("reproduce with paddle") == 2


PARTLY = [{"conventions": {"bn.running_var_estimator": "biased", "bn.momentum_weights": "old"},
           "reproduces": ["running_mean", "output"], "differs": {"running_var": 2}},
          {"conventions": {}, "reproduces": ["output"], "differs": {"running_mean": 1, "running_var": 1}}]
PARTLY_LINES = [("under bn.running_var_estimator=biased, bn.momentum_weights=old the reference reproduces "
                "running_mean, output; running_var differs from step 2"),
                ("under the spec's own conventions the reference reproduces output; running_mean differs "
                "from step 1, running_var differs from step 1")]


def test_partly_explained_by_is_shown_in_the_cell_details(tmp_path: Path) -> None:
    write(tmp_path, "torch", [divergence("partly", 0.4, step=1, partly_explained_by=PARTLY), divergence("plain", 0.1)])
    matrix = load([tmp_path])
    facts = {f.case_id: f.facts() for f in findings(matrix)}
    assert [text for label, text in facts["bn/many::partly"] if label == "fits partly"] == PARTLY_LINES
    assert all(label != "fits partly" for label, _ in facts["bn/many::plain"])  # absent: nothing shown
    text = text_format.render(matrix, width=400)
    assert all(f"  fits partly: {line}" in text for line in PARTLY_LINES)
    md = render(matrix, "md")
    assert all(f"- **fits partly**: {line}" in md for line in PARTLY_LINES)
    page = render(matrix, "html")
    assert all(f"<dt>fits partly</dt><dd>{line.replace(chr(39), '&#x27;')}</dd>" in page for line in PARTLY_LINES)


def test_the_scope_names_every_first_step_and_leaves_out_what_is_not_known(tmp_path: Path) -> None:
    cases = twenty()[:3]
    cases[1]["first_divergent_step"] = 2
    del cases[2]["program"]["layer"]["rank"]
    write(tmp_path, "torch", cases)
    (group,) = [g for g in grouped(findings(load([tmp_path])))[0] if isinstance(g, Group)]
    assert group.scope() == "ranks 2, 4; float32, float64; from steps 0, 2"
