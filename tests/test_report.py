"""``conformance report``: merging results from several runs and machines, and each format
(text, Markdown, HTML, JSON, JUnit), from small hand-made results documents and from one
real run of the numpy reference and a fake framework with an undocumented convention."""

from __future__ import annotations

import ast
import importlib.util
import io
import json
import os
import re
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest
from helpers import BN_PROGRAM, cases_from

from conformance import RESULTS_SCHEMA
from conformance.adapters import from_target, resolve
from conformance.cli import main
from conformance.report import ResultsFileError, load, render
from conformance.report.findings import findings, rows_worst_first
from conformance.report.progress import live_progress
from conformance.report.snippets import snippet
from conformance.runner import run
from conformance.spec import load_paths

SPECS = Path(__file__).resolve().parents[1] / "specs"


def program(**layer: Any) -> dict[str, Any]:
    """A batch-norm program over (8, 3) inputs: train, train, eval."""
    steps = [{"mode": m, "input": i, "grad_output": None, "observe": ["output", "running_mean", "running_var"]}
             for m, i in (("train", "a"), ("train", "b"), ("eval", "a"))]
    return {"layer": {"kind": "batch_norm", "rank": 2, "num_features": 3, "channel_axis": "first",
                      "update": "ema", "update_weight": 0.1, "eps": 1e-5, "affine": True,
                      "running_stats": True, **layer},
            "dtype": "float32", "inputs": {"a": [8, 3], "b": [8, 3]}, "steps": steps}


def series(offset: float = 0.0) -> dict[str, Any]:
    reference = [[0.1, 0.2, 0.3], [0.15, 0.25, 0.35], [0.15, 0.25, 0.35]]
    return {q: {"steps": [0, 1, 2], "reference": reference,
                "observed": [[v + offset for v in row] for row in reference]}
            for q in ("running_mean", "running_var")}


def entry(name: str, verdict: str, **extra: Any) -> dict[str, Any]:
    return {"id": f"bn/hand::{name}", "file": "specs/bn/hand.yaml", "line": 3, "areas": [],
            "verdict": verdict, "message": extra.pop("message", ""), "program": program(), **extra}


def worst(quantity: str, error: float, step: int = 1) -> dict[str, Any]:
    return {"quantity": quantity, "step": step, "ok": False, "max_abs_error": error, "max_rel_error": error / 2,
            "worst_index": [1], "observed": 1.0 + error, "expected": 1.0}


CONFORMS = entry("conforming", "conforms", series=series())
CONVENTION = entry("biased", "convention", message="matches the documented convention bn.running_var_estimator=biased",
                   series=series(-0.01), first_divergent_step=0, divergent_quantities=["running_var"],
                   worst=worst("running_var", 0.01, 0), explained_by={"bn.running_var_estimator": "biased"},
                   conventions=[{"fact": "bn.running_var_estimator", "value": "biased",
                                 "link": "https://example.invalid/bn", "fix": "multiply by m/(m-1)"}])
BUG = entry("bug", "divergence", message="output at step 1: ...; no known convention explains it",
            first_divergent_step=1, divergent_quantities=["output"], worst=worst("output", 0.5), unexpected=True)
KNOWN = entry("known", "error", message="step 0: ValueError: refused", unexpected=False,
              error={"kind": "exception", "step": 0, "message": "step 0: ValueError: refused"},
              expected={"reason": "torch refuses it", "link": "https://example.invalid/r",
                        "registry": "expectations/torch.yaml:3"})
UNSUPPORTED = entry("cumulative", "unsupported", message="no cumulative average")
SKIPPED = entry("cumulative", "skipped", message="no GPU here")


def results(framework: str, device: str, cases: list[dict[str, Any]], version: str = "1.0",
            device_name: str = "cpu") -> dict[str, Any]:
    return {"schema": RESULTS_SCHEMA, "framework": framework, "framework_version": version,
            "device": device, "documented": {},
            "environment": {"python": "3.11.7", "platform": "Linux-6.1-x86_64", "machine": "x86_64",
                            "device_name": device_name},
            "cases": cases}


def write(folder: Path, doc: dict[str, Any]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{doc['framework']}-{doc['device']}.json"
    path.write_text(json.dumps(doc))
    return path


@pytest.fixture
def two_machines(tmp_path: Path) -> list[Path]:
    """A CPU box and a GPU box, each with torch and paddle results."""
    cpu, gpu = tmp_path / "cpu-box", tmp_path / "gpu-box"
    write(cpu, results("torch", "cpu", [CONFORMS, KNOWN, UNSUPPORTED]))
    write(cpu, results("paddle", "cpu", [CONFORMS, CONVENTION, UNSUPPORTED]))
    write(gpu, results("torch", "gpu", [CONFORMS, CONVENTION, SKIPPED], device_name="NVIDIA H100"))
    write(gpu, results("paddle", "gpu", [CONFORMS, BUG, SKIPPED], device_name="NVIDIA H100"))
    return [cpu, gpu]


def test_two_folders_merge_into_one_matrix(two_machines: list[Path]) -> None:
    matrix = load(two_machines)
    assert [c.label for c in matrix.columns] == ["paddle-cpu", "paddle-gpu", "torch-cpu", "torch-gpu"]
    assert set(matrix.case_ids) == {f"bn/hand::{n}" for n in ("conforming", "known", "cumulative", "biased", "bug")}
    torch_cpu = matrix.columns[2]
    assert matrix.cell("bn/hand::known", torch_cpu)["verdict"] == "error"
    assert matrix.cell("bn/hand::bug", torch_cpu) is None  # not run there: a hole, not an error
    assert [(c, col.label) for c, col, _ in matrix.unexpected()] == [("bn/hand::bug", "paddle-gpu")]
    assert matrix.notes == []


def test_a_later_run_of_the_same_column_replaces_cases_with_a_note(tmp_path: Path) -> None:
    first = write(tmp_path / "old", results("torch", "cpu", [CONFORMS, {**CONVENTION, "verdict": "divergence"}]))
    second = write(tmp_path / "new", results("torch", "cpu", [CONVENTION]))
    matrix = load([first, second])
    assert len(matrix.columns) == 1 and matrix.columns[0].sources == [str(first), str(second)]
    assert matrix.cell("bn/hand::biased", matrix.columns[0])["verdict"] == "convention"
    assert matrix.cell("bn/hand::conforming", matrix.columns[0])["verdict"] == "conforms"  # kept
    assert "torch-cpu: 1 case(s) from" in matrix.notes[0] and str(first) in matrix.notes[0]


def test_other_versions_of_a_framework_stay_side_by_side(tmp_path: Path) -> None:
    old = write(tmp_path / "a", results("torch", "cpu", [CONFORMS], version="2.12.0"))
    new = write(tmp_path / "b", results("torch", "cpu", [CONFORMS], version="2.13.0"))
    matrix = load([old, new])
    assert [c.label for c in matrix.columns] == ["torch-cpu@2.12.0", "torch-cpu@2.13.0"]
    assert matrix.notes == []


def test_text_puts_the_worst_first(two_machines: list[Path]) -> None:
    matrix = load(two_machines)
    assert rows_worst_first(matrix)[:3] == ["bn/hand::bug", "bn/hand::known", "bn/hand::biased"]
    text = render(matrix, "text")
    # the matrix is a rich table, one line per row (the kit sizes the console for that); its
    # borders and padding are rich's: find the rows by the case ids they start with
    before_details = text[:text.index("Divergences and errors, worst first")]
    table_rows = [line for line in before_details.splitlines() if "bn/hand::" in line]
    assert [re.search(r"bn/hand::\w+", r)[0] for r in table_rows] == [
        "bn/hand::bug", "bn/hand::known", "bn/hand::biased", "bn/hand::cumulative", "bn/hand::conforming"]
    assert "divergence!" in table_rows[0] and "error*" in table_rows[1]
    details = text[text.index("Divergences and errors, worst first"):]
    assert details.index("bn/hand::bug [paddle-gpu]") < details.index("bn/hand::known [torch-cpu]")
    assert "starts at step: 1" in details
    # Paddle's snippet, with the momentum translated (1 - update_weight); the number read back
    momentum = re.search(r"\bpaddle\.nn\.BatchNorm1D\([^)]*?\bmomentum=([^,\s)]+)", details)
    assert momentum and float(momentum[1]) == 0.9, details
    # cells that one documented convention explains: grouped per column, one line per case
    groups = text[text.index("Documented conventions and unsupported features"):]
    assert "paddle-cpu: bn.running_var_estimator=biased (documented convention), 1 case(s)" in groups
    assert "fix: multiply by m/(m-1)" in groups
    assert "bn/hand::biased: running_var; max abs 0.01, max rel 0.005; from step 0" in groups
    assert "torch-cpu: unsupported, 1 case(s)" in groups and "bn/hand::cumulative: no cumulative average" in groups


def test_every_non_conforming_cell_has_its_facts_and_snippet(two_machines: list[Path]) -> None:
    found = {(f.case_id, f.column.label): f for f in findings(load(two_machines))}
    bug = found["bn/hand::bug", "paddle-gpu"]
    facts = dict(bug.facts())
    assert facts["quantity"] == "output" and facts["starts at step"] == "1"
    assert "max abs 0.5" in facts["error"] and facts["convention"] == "no known convention explains it"
    code = bug.snippet()
    assert "paddle.nn.BatchNorm1D" in code and "# step 1: train on b" in code
    assert "# step 2" not in code  # up to the step where it starts
    assert found["bn/hand::cumulative", "paddle-cpu"].snippet() == ""  # unsupported: nothing to run


def test_markdown_has_a_row_per_case(two_machines: list[Path]) -> None:
    matrix = load(two_machines)
    md = render(matrix, "md")
    lines = md.splitlines()
    start = lines.index("| case | " + " | ".join(c.label for c in matrix.columns) + " |") + 2
    rows = lines[start:lines.index("", start)]
    assert len(rows) == len(matrix.case_ids) == 5
    assert all(row.count(" | ") == len(matrix.columns) for row in rows)
    assert "```python" in md and "<details>" in md
    # convention cells are grouped per column and explanation, and their matrix links land there
    assert "[paddle-cpu] bn.running_var_estimator=biased (documented convention): 1 case(s)" in md
    assert '<a id="f-bn-hand--biased-paddle-cpu"></a>' in md and "(#f-bn-hand--biased-paddle-cpu)" in md


def test_html_is_self_contained_with_statistics_plots(two_machines: list[Path]) -> None:
    page = render(load(two_machines), "html")
    assert not re.search(r"""<(script|link|img|iframe|source)\b[^>]*\b(src|href)=["']?(https?:)?//""", page)
    assert "@import" not in page and "url(" not in page
    assert """content="default-src 'none';""" in page
    plotted = set(re.findall(r'<svg class="plot"[^>]*aria-label="running statistics of ([^"]*) per step', page))
    assert plotted == {"bn/hand::conforming", "bn/hand::biased"}  # the cases with series


def test_html_needs_no_matplotlib(two_machines: list[Path], tmp_path: Path) -> None:
    script = ("import sys; sys.modules['matplotlib'] = None\n"  # importing it would raise
              "from conformance.cli import main\n"
              f"code = main(['report', *{[str(p) for p in two_machines]!r}, '--format', 'html', "
              f"'--out', {str(tmp_path / 'r.html')!r}])\n"
              "assert not [m for m in sys.modules if m.startswith('matplotlib')], 'matplotlib imported'\n"
              "sys.exit(code)")
    done = subprocess.run([sys.executable, "-c", script], check=False, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 1, done.stderr  # 1: the hand-made BUG cell is unexpected
    assert (tmp_path / "r.html").read_text().startswith("<!DOCTYPE html>")


def test_junit_has_one_testcase_per_cell(two_machines: list[Path]) -> None:
    matrix = load(two_machines)
    root = ET.fromstring(render(matrix, "junit"))
    cases = root.findall("testsuite/testcase")
    assert len(cases) == len(matrix.case_ids) * len(matrix.columns) == int(root.get("tests", "0"))
    failed = {(c.get("classname"), c.get("name")) for c in cases if c.find("failure") is not None}
    assert failed == {("paddle-gpu", "bn/hand::bug")}
    skipped = {(c.get("classname"), c.get("name")) for c in cases if c.find("skipped") is not None}
    holes = {(col.label, case_id) for case_id, col, e in matrix.cells() if e is None}
    assert skipped == holes | {("paddle-cpu", "bn/hand::cumulative"), ("torch-cpu", "bn/hand::cumulative"),
                               ("paddle-gpu", "bn/hand::cumulative"), ("torch-gpu", "bn/hand::cumulative")}
    failure = next(c for c in cases if c.find("failure") is not None).find("failure")
    assert failure is not None and "reproduce with paddle" in (failure.text or "")


def test_json_round_trips(two_machines: list[Path], tmp_path: Path) -> None:
    first = render(load(two_machines), "json")
    data = json.loads(first)
    assert data["schema"] == "conformance.report/1"
    assert data["matrix"]["bn/hand::bug"] == {"paddle-cpu": None, "paddle-gpu": "divergence",
                                              "torch-cpu": None, "torch-gpu": None}
    assert data["summary"]["unexpected"] == 1
    (tmp_path / "merged.json").write_text(first)
    again = render(load([tmp_path / "merged.json"]), "json")
    assert json.loads(again) == data


@pytest.mark.parametrize(("content", "problem"), [
    # where the JSON parser stopped is the kit's to say; why is json's, passed on: some of its
    # words must stand there, which ones is not the kit's to promise
    ("not json {", re.compile(r"not JSON \(line 1 column 1: [^\s)][^)]*\); expected")),
    ('{"cases": []}', "no 'schema' key"),
    ('{"schema": "conformance.results/2", "cases": []}', ("schema 'conformance.results/2' is not supported "
     "(written by another version of the kit")),
    (json.dumps(results("torch", "cpu", [{"id": "x"}])), "cases[0] has no 'id' and 'verdict'"),
    (json.dumps(results("torch", "cpu", [{"id": "x", "verdict": "fine"}])), "verdict 'fine'; expected one of"),
    (json.dumps({k: v for k, v in results("torch", "cpu", []).items() if k != "device"}), "device is missing"),
])
def test_a_bad_results_file_is_exit_2_naming_it(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                content: str, problem: str) -> None:
    good = write(tmp_path / "good", results("torch", "cpu", [CONFORMS]))
    bad = tmp_path / "bad" / "torch-gpu.json"
    bad.parent.mkdir()
    bad.write_text(content)
    assert main(["report", str(good), str(tmp_path / "bad")]) == 2
    out, err = capsys.readouterr()
    assert out == "" and err.startswith(f"{bad}: ") and "expected" in err
    assert (problem.search(err) if isinstance(problem, re.Pattern) else problem in err), err


def test_missing_paths_and_empty_folders_are_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["report", str(tmp_path / "nowhere")]) == 2
    assert f"{tmp_path / 'nowhere'}: no such file or folder" in capsys.readouterr().err
    with pytest.raises(ResultsFileError, match="no results files"):
        load([tmp_path])


def test_exit_1_only_when_something_is_unexpected(two_machines: list[Path], tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out" / "report.xml"
    assert main(["report", *map(str, two_machines), "--format", "junit", "--out", str(out)]) == 1
    assert "1 unexpected" in capsys.readouterr().out and out.read_text().startswith("<?xml")
    assert main(["report", str(two_machines[0]), "--format", "md"]) == 0


@pytest.fixture(scope="module")
def real_results(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The numpy reference and a fake framework that feeds the running variance with the
    biased estimator without documenting it, run by the real runner."""
    out = tmp_path_factory.mktemp("results")
    refs = resolve("numpy") + [from_target("fake_adapters:BiasedUndocumented")]
    run(cases_from(BN_PROGRAM), refs, ["cpu", "gpu"], out)
    return out


def test_a_real_run_reports_the_undocumented_convention(real_results: Path) -> None:
    matrix = load([real_results])
    assert [c.label for c in matrix.columns] == ["biased_undocumented-cpu", "biased_undocumented-gpu",
                                                 "numpy-cpu", "numpy-gpu"]
    (case_id,) = matrix.case_ids
    finding = findings(matrix)[0]
    assert (finding.case_id, finding.column.label, finding.entry["verdict"]) == (
        case_id, "biased_undocumented-cpu", "divergence")
    facts = dict(finding.facts())
    assert facts["convention"] == "bn.running_var_estimator=biased (not documented by the framework)"
    assert facts["quantity"].startswith("output") and "running_var" in facts["quantity"]
    root = ET.fromstring(render(matrix, "junit"))
    verdicts = {(c.get("classname"), c.find("failure") is not None, c.find("skipped") is not None)
                for c in root.iter("testcase")}
    assert verdicts == {("biased_undocumented-cpu", True, False), ("biased_undocumented-gpu", False, True),
                        ("numpy-cpu", False, False), ("numpy-gpu", False, True)}


def test_a_real_run_plots_its_running_statistics(real_results: Path) -> None:
    page = render(load([real_results]), "html")
    assert page.count('<svg class="plot"') == 1  # the case's statistics


def layer_call(code: str) -> tuple[str, list[Any], dict[str, tuple[Any, int]]]:
    """The snippet's ``layer = <class>(...)``: the class, its positional arguments and its
    keyword arguments as (value, line), read as Python: the numbers are compared as numbers,
    however Python spells them (1e-05 or 1e-5)."""
    for node in ast.walk(ast.parse(code)):
        if isinstance(node, ast.Assign) and [getattr(t, "id", None) for t in node.targets] == ["layer"] \
                and isinstance(node.value, ast.Call):
            call = node.value
            return (ast.unparse(call.func), [_value(a) for a in call.args],
                    {k.arg: (_value(k.value), k.lineno) for k in call.keywords if k.arg})
    raise AssertionError(f"no `layer = ...(...)` in\n{code}")


def _value(node: ast.expr) -> Any:
    """A literal's value; anything else (``torch.float32``) as its source text."""
    try:
        return ast.literal_eval(node)
    except ValueError:
        return ast.unparse(node)


@pytest.mark.parametrize(("framework", "momentum", "eps_name"), [
    ("torch", 0.1, "eps"), ("paddle", 0.9, "epsilon"), ("tf", 0.9, "epsilon")])
def test_snippets_translate_the_momentum(framework: str, momentum: float, eps_name: str) -> None:
    code = snippet(program(), framework)
    compile(code, "<s>", "exec")
    _, _, kwargs = layer_call(code)
    value, line = kwargs["momentum"]
    assert value == momentum
    # the translation is commented on its line
    assert "update_weight" in code.splitlines()[line - 1].split("#", 1)[1]
    assert kwargs[eps_name][0] == 1e-5
    mode_calls = {"torch": "layer.eval()", "paddle": "layer.eval()", "tf": "training=False"}
    assert mode_calls[framework] in code


@pytest.mark.parametrize("framework", ["torch", "paddle", "tf"])
@pytest.mark.parametrize(("layer", "wanted"), [
    ({"update": "cumulative"}, {"torch": "momentum=None", "paddle": "no cumulative", "tf": "no cumulative"}),
    ({"update_weight": 0.3, "affine": False},
     {"torch": "affine=False", "paddle": "weight_attr=False", "tf": "center=False"}),
    ({"rank": 4, "channel_axis": "last", "scale": [1.0, 2.0, 3.0]},
     {"torch": "movedim(-1, 1)", "paddle": "data_format='NHWC'", "tf": "axis=-1"}),
    ({"kind": "dropout", "rank": 4, "rate": 0.3, "granularity": "channel", "seed": 3, "scaling": "eval"},
     {"torch": "torch.nn.Dropout2d(p=", "paddle": 'mode="downscale_in_infer"', "tf": "SpatialDropout2D("}),
])
def test_snippets_of_other_layers_compile(framework: str, layer: dict[str, Any], wanted: dict[str, str]) -> None:
    prog = program(**layer)
    if layer.get("rank") == 4:
        prog["inputs"] = {"a": [2, 4, 4, 3], "b": [2, 4, 4, 3]}
    code = snippet(prog, framework)
    compile(code, "<s>", "exec")
    assert wanted[framework] in code
    if layer.get("kind") == "dropout":  # the rate, read back as a number (p= or Keras' first argument)
        _, args, kwargs = layer_call(code)
        assert (kwargs["p"][0] if "p" in kwargs else args[0]) == layer["rate"]


def test_snippets_for_other_frameworks_are_empty() -> None:
    assert snippet(program(), "numpy") == ""


SNIPPET_RUNNER = """
import contextlib, io, json, sys
failures = []
for case_id, code in json.load(sys.stdin):
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            exec(compile(code, case_id, "exec"), {})
    except (SyntaxError, NameError, AttributeError, TypeError, ImportError, KeyError) as exc:
        failures.append(f"{case_id}: {type(exc).__name__}: {exc}")
    except Exception:
        pass  # the framework refusing the program is what some cases show
    if "paddle" in sys.modules:
        sys.modules["paddle"].set_default_dtype("float32")  # a float64 case changed it
print(json.dumps(failures))
"""


@pytest.mark.parametrize(("framework", "module"), [("torch", "torch"), ("paddle", "paddle"), ("tf", "tensorflow")])
def test_snippets_of_every_spec_run_in_the_framework(framework: str, module: str) -> None:
    if importlib.util.find_spec(module) is None:
        pytest.skip(f"{module} is not installed")
    cases, errors = load_paths([SPECS])
    assert not errors
    programs = [(c.id, snippet(c.program(), framework)) for c in cases]
    for case_id, code in programs:
        compile(code, case_id, "exec")
    # compiling a graph takes seconds per case: those are only compiled above
    programs = [(i, code) for i, code in programs if "compiled = " not in code]
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    done = subprocess.run([sys.executable, "-c", SNIPPET_RUNNER, framework], input=json.dumps(programs),
                          capture_output=True, text=True, timeout=300, check=False, env=env)
    assert done.returncode == 0, done.stderr[-2000:]
    assert json.loads(done.stdout.strip().splitlines()[-1]) == []


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_bars_on_a_terminal_and_nothing_in_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CI", raising=False)
    screen = _Terminal()
    with live_progress(["torch", "paddle"], ["cpu"], 3, stream=screen) as progress:
        assert progress is not None
        progress("torch", "cpu", {"verdict": "conforms"})
        progress("torch", "cpu", {"verdict": "divergence"})
    # the bars, the count's spelling (2/3) and the terminal codes are rich's: in the last frame,
    # each framework's line gives the cases done and then the total, and the kit's own tally
    lines = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", screen.getvalue()).replace("\r", "\n").splitlines()
    torch_line = [line for line in lines if line.startswith("torch-cpu")][-1]
    paddle_line = [line for line in lines if line.startswith("paddle-cpu")][-1]
    assert re.search(r"(?<!\d)2\D+3(?!\d)", torch_line) and "1 div" in torch_line, torch_line
    assert re.search(r"(?<!\d)0\D+3(?!\d)", paddle_line) and "div" not in paddle_line, paddle_line
    with live_progress(["torch"], ["cpu"], 2, stream=io.StringIO()) as progress:
        assert progress is None  # not a terminal
    monkeypatch.setenv("CI", "true")
    with live_progress(["torch"], ["cpu"], 2, stream=_Terminal()) as progress:
        assert progress is None
    with live_progress(["torch"], ["cpu"], 2, enabled=False, stream=_Terminal()) as progress:
        assert progress is None


def test_every_framework_snippet_module_has_the_same_functions() -> None:
    import importlib
    import inspect

    names = {fw: {n for n, f in vars(importlib.import_module(f"conformance.report.snippets.{fw}")).items()
                  if inspect.isfunction(f) and f.__module__.endswith(fw)}
             for fw in ("torch", "paddle", "tf")}
    assert names["torch"] == names["paddle"] == names["tf"] == {
        "imports", "tensor", "batch_norm", "dropout", "reset", "compiler", "prints", "forward"}


@pytest.mark.parametrize(("framework", "compiler"), [
    ("torch", "torch.compile(layer"), ("paddle", "paddle.jit.to_static("), ("tf", "tf.function(layer)")])
def test_snippets_compile_once_reset_and_rebuild(framework: str, compiler: str) -> None:
    prog = program(frozen=True)
    prog["steps"] = [{**prog["steps"][0], "context": "compiled"}, {**prog["steps"][1], "context": "compiled"},
                     {"action": "reset", "mode": "train", "input": "", "grad_output": None,
                      "observe": ["running_mean"]},
                     {"action": "rebuild", "mode": "train", "input": "", "grad_output": None, "observe": []},
                     {**prog["steps"][2], "context": "no_grad"}]
    code = snippet(prog, framework)
    compile(code, "<s>", "exec")
    assert code.count(compiler) == 1 and code.count("y = compiled(") == 2
    assert "# step 2: reset the running statistics" in code and "# step 3: rebuild the layer" in code
    frozen = {"torch": "layer.eval()  # frozen", "paddle": "use_global_stats=True", "tf": "layer.trainable = False"}
    assert frozen[framework] in code
