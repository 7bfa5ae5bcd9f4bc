"""The HTML report without a browser: the colours of the matrix (verdict first, error size
second, the text report's measure), the SVG plots (valid XML, labelled, the reference under
a framework's documented conventions), and the page (self-contained, links that land, small
and fast for the committed results)."""

from __future__ import annotations

import itertools
import math
import re
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest

from conformance.adapters import from_target, resolve
from conformance.report import load, plots, render, svg
from conformance.report.colors import CATEGORIES, category, cell_color, luminance, rgb
from conformance.report.findings import severity
from conformance.report.merge import Matrix
from conformance.runner import run
from conformance.spec import load_paths

ROOT = Path(__file__).resolve().parents[1]
ERRORS = (0.0, 1e-9, 1e-5, 1e-3, 0.1, 10.0, 1e4)  # worst absolute errors, smallest first


def cell(verdict: str, error: float | None = None, **extra: Any) -> dict[str, Any]:
    """A results entry; ``error`` its worst absolute error (the relative one set apart)."""
    entry: dict[str, Any] = {"id": "bn/x::c", "verdict": verdict, **extra}
    if error is not None:
        entry["worst"] = {"quantity": "running_var", "step": 0, "max_abs_error": error,
                          "max_rel_error": 1.0 / (1.0 + error)}
    return entry


KINDS = {  # one entry maker per category, as findings.severity sees them
    "unexpected": lambda e: cell("divergence", e, unexpected=True),
    "expected": lambda e: cell("divergence", e, unexpected=False, expected={"reason": "known"}),
    "error": lambda e: cell("error", e, unexpected=False, expected={"reason": "known"}),
    "convention": lambda e: cell("convention", e, explained_by={"bn.running_var_estimator": "biased"}),
    "unsupported": lambda e: cell("unsupported"),
    "none": lambda e: cell("skipped"),
    "conforms": lambda e: cell("conforms"),
}


def redness(color: str) -> float:
    r, g, b = rgb(color)
    return r - max(g, b)


def saturation(color: str) -> float:
    values = rgb(color)
    return (max(values) - min(values)) / 255


def test_categories_follow_the_severity_order_whatever_the_error() -> None:
    order = [c.key for c in CATEGORIES]
    for small, large in zip(ERRORS, ERRORS[::-1]):
        keys = [category(make(large if i % 2 else small)).key for i, make in enumerate(KINDS.values())]
        assert keys == list(KINDS) and keys == order  # the error never moves a cell to another verdict
    levels = [severity(make(1.0)) for make in KINDS.values()]
    assert levels == sorted(levels), "the categories are not in findings.severity's order"
    assert category(None).key == "none" and category(cell("expected-error")).key == "conforms"
    assert category(cell("conforms", stale=True)).key == "unexpected"  # a stale registry entry fails CI


def test_no_error_size_makes_one_verdict_look_like_another() -> None:
    colors = {key: {cell_color(make(e))[0] for e in ERRORS} for key, make in KINDS.items()}
    keys = list(colors)
    for i, a in enumerate(keys):
        for b in keys[i + 1:]:
            assert not colors[a] & colors[b], f"{a} and {b} share a colour"
    # a documented convention, however large, is less red than the slightest unexpected divergence
    assert max(map(redness, colors["convention"])) < min(map(redness, colors["unexpected"])) - 60
    # an error is a colour, not the grey of "no values"
    assert min(map(saturation, colors["error"])) > 0.1 and max(map(saturation, colors["none"])) < 0.02


@pytest.mark.parametrize("key", ["unexpected", "expected", "convention"])
def test_the_shade_darkens_with_the_worst_absolute_error(key: str) -> None:
    shades = [luminance(cell_color(KINDS[key](e))[0]) for e in ERRORS]
    # 0 and 1e-9 are both at or below the scale's low end; from there, strictly darker, led by
    # the absolute error (as in the text report) while the relative one set against it shrinks
    assert shades[1] == shades[0] and all(a > b for a, b in itertools.pairwise(shades[1:]))


def test_an_error_raised_is_the_darkest_shade_of_its_verdict() -> None:
    expected = {cell_color(KINDS["error"](e))[0] for e in ERRORS}
    assert len(expected) == 1  # no size to shade by
    unexpected = cell("error", unexpected=True)
    assert category(unexpected).key == "unexpected"
    darkest = min(luminance(cell_color(KINDS["unexpected"](e))[0]) for e in ERRORS)
    assert luminance(cell_color(unexpected)[0]) <= darkest


def test_text_on_a_cell_stays_readable() -> None:
    for make in KINDS.values():
        for error in ERRORS:
            background, text = cell_color(make(error))
            lighter, darker = sorted((luminance(background), luminance(text)), reverse=True)
            # 4:1 at least: a ramp passes mid-tones where neither black nor white reaches 4.5
            assert (lighter + 0.05) / (darker + 0.05) >= 4.0, (background, text)


def series(values: list[list[float]]) -> dict[str, Any]:
    return {q: {"steps": list(range(len(values))), "observed": values, "reference": values}
            for q in plots.STAT_QUANTITIES}


def matrix_of(columns: dict[str, list[list[float]]]) -> Matrix:
    """A matrix of one case whose columns observed ``values`` (steps x channels)."""
    from conformance.report.merge import Column

    matrix = Matrix(case_ids=["bn/x::c"])
    for label, values in columns.items():
        framework, device = label.split("-")
        col = Column(framework, "1", device, {}, {}, label=label)
        col.cases["bn/x::c"] = {"id": "bn/x::c", "verdict": "conforms", "series": series(values)}
        matrix.columns.append(col)
    return matrix


def test_a_plot_is_valid_svg_with_a_labelled_panel_per_quantity_and_channel() -> None:
    values = [[0.5, 2.0, 40.0], [0.6, 2.5, 41.0], [0.65, 2.75, 41.5]]
    picture = plots.statistics(matrix_of({"torch-cpu": values, "paddle-cpu": values}), "bn/x::c")
    root = ET.fromstring(picture)
    texts = [t.text for t in root.iter("{http://www.w3.org/2000/svg}text")] or \
            [t.text for t in root.iter("text")]
    for quantity in plots.STAT_QUANTITIES:
        assert all(f"{quantity}, channel {c}" in texts for c in range(3))
    assert {"torch-cpu", "paddle-cpu", "reference (the spec's conventions)"} <= set(texts)
    assert texts.count("step") == 6 and "0" in texts and "2" in texts  # x axes with their ticks
    assert any(t and t.startswith("41") for t in texts)  # y ticks of channel 2 around its values
    groups = [g.get("class") for g in root.iter() if g.tag.endswith("g") and g.get("class", "").startswith("k")]
    assert len(set(groups)) == 2  # one style per column


def test_columns_get_distinct_colours_dashes_and_markers() -> None:
    styles = [plots.column_style(i, f"c{i}") for i in range(4)]
    rules = plots.css()
    strokes = [re.search(rf"\.{s.css}{{stroke:([^}}]+)}}", rules).group(1) for s in styles]  # type: ignore[union-attr]
    dashes = [re.search(rf"\.{s.css} \.l{{stroke-dasharray:([^}}]+)}}", rules).group(1) for s in styles]  # type: ignore[union-attr]
    assert len(set(strokes)) == len(set(dashes)) == len({s.marker for s in styles}) == 4


def test_ticks_are_round_and_read_differently() -> None:
    ticks = svg.nice_ticks(0.9995, 1.0005)
    labels = svg.tick_labels(ticks)
    assert len(set(labels)) == len(labels) >= 3 and all(0.9995 <= t <= 1.0005 for t in ticks)
    assert svg.tick_labels([100.0, 200.0, 300.0]) == ["100", "200", "300"]


def test_extreme_values_break_the_line_instead_of_the_picture() -> None:
    values = [[1.0, math.nan], [math.inf, 1e308], [2.0, -1e308]]
    picture = plots.statistics(matrix_of({"torch-cpu": values}), "bn/x::c")
    ET.fromstring(picture)
    assert not re.search(r"\b(nan|inf)\b", re.sub(r"<text[^>]*>[^<]*</text>", "", picture))


def test_a_plot_has_bounded_points() -> None:
    values = [[float(i)] for i in range(500)]
    picture = plots.statistics(matrix_of({"torch-cpu": values}), "bn/x::c")
    (line,) = re.findall(r'<g class="k0"><path d="([^"]*)" class="l"/>', picture)[1:2] or [""]
    assert 2 <= line.count("L") + 1 <= plots.MAX_POINTS


SPEC = """conformance_spec: 1
cases:
  - name: biased
    layer: {kind: batch_norm, update_weight: 0.2}
    inputs:
      a: {shape: [4, 3], seed: 1, mean: 2.0, std: 3.0}
      b: {shape: [4, 3], seed: 2, mean: -1.0, std: 0.5}
    steps: [{train: a}, {train: b}, {eval: a}]
"""


def test_the_reference_is_drawn_under_the_frameworks_documented_conventions(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    Path("specs").mkdir()
    Path("specs/bn.yaml").write_text(SPEC)
    cases, errors = load_paths(["specs/bn.yaml"])
    assert not errors
    run(cases, resolve("numpy") + [from_target("fake_adapters:BiasedDocumented")], ["cpu"], tmp_path / "out")
    matrix = load([tmp_path / "out"])
    assert [c.label for c in matrix.columns] == ["biased_documented-cpu", "numpy-cpu"]
    picture = plots.statistics(matrix, matrix.case_ids[0])
    label = "reference under bn.running_var_estimator=biased, documented by biased_documented-cpu"
    assert label in picture
    var = picture[picture.index("running_var, channel 0"):picture.index("running_var, channel 1")]
    line = dict(re.findall(r'<g class="([^"]*)"><path d="([^"]*)" class="l"/>', var))
    assert line["k0 d"] == line["k0"] != line["r"]  # the framework follows its documentation, not the spec
    mean = picture[picture.index("running_mean, channel 0"):picture.index("running_mean, channel 1")]
    assert '"k0 d"' not in mean  # the estimator leaves the mean alone: no extra line


def test_without_the_spec_file_the_plot_says_what_is_missing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    Path("specs").mkdir()
    Path("specs/bn.yaml").write_text(SPEC)
    cases, _ = load_paths(["specs/bn.yaml"])
    run(cases, [from_target("fake_adapters:BiasedDocumented")], ["cpu"], tmp_path / "out")
    Path("specs/bn.yaml").unlink()
    page = render(load([tmp_path / "out"]), "html")
    assert "specs/bn.yaml: not found or not a valid spec here" in page and "documented by" not in page


def test_every_link_of_the_page_lands_and_every_cell_can_be_filtered() -> None:
    matrix = load([ROOT / "docs" / "results"])
    page = render(matrix, "html")
    ids = set(re.findall(r'\bid="([^"]+)"', page))
    targets = re.findall(r'href="#([^"]*)"', page)
    assert len(targets) >= len(matrix.case_ids) * (len(matrix.columns) + 1)
    assert not set(targets) - ids
    grid = page[page.index('<table class="matrix">'):]
    grid = grid[:grid.index("</table>")]
    cells = re.findall(r'<td data-col="(\d+)" data-k="([a-z]+)"', grid)
    assert len(cells) == len(matrix.case_ids) * len(matrix.columns)
    assert {k for _, k in cells} <= {c.key for c in CATEGORIES}
    assert grid.count('<tr class="row">') == len(matrix.case_ids)


def test_the_committed_results_make_a_small_self_contained_page() -> None:
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "conformance", "report", "docs/results", "--format", "html"],
                          cwd=ROOT, check=False, capture_output=True, timeout=120)
    elapsed = time.perf_counter() - start
    assert done.returncode == 0, done.stderr.decode()
    page = done.stdout.decode()
    # a column (framework x device) adds its cells, facts and plots: about 165 KB each (three
    # columns made 0.76 MB, five 1.09 MB); the budget grows with the columns, not the cases
    columns = len(list((ROOT / "docs" / "results").glob("*.json")))
    budget = 300_000 + 200_000 * columns
    assert len(page.encode()) < budget, f"{len(page.encode())} bytes; expected under {budget} for {columns} columns"
    assert elapsed < 8, f"{elapsed:.1f} s; expected about 1 s (2 s on a quiet machine)"
    csp = re.search(r'<meta http-equiv="Content-Security-Policy" content="([^"]*)">', page)
    assert csp and "default-src 'none'" in csp.group(1) and "connect-src" not in csp.group(1)
    assert page.count("<meta http-equiv") == 1 and page.index("Content-Security-Policy") < page.index("<style>")
    for tag in re.findall(r"<(?:img|link|iframe|source|object|embed|audio|video|use)\b[^>]*>", page):
        raise AssertionError(f"the page loads something: {tag}")
    assert not re.search(r"""\b(src|srcset|data|poster|action)=["']?[a-z]+:""", page)
    assert "url(" not in page and "@import" not in page and "@font-face" not in page
    assert not re.search(r"<script\b[^>]*\bsrc=", page) and page.count("<script>") == 1
