"""The HTML report in a real browser (headless Chromium): it renders (a screenshot that shows
the matrix's colours), its filters work (the page reads them from its query string, and the
DOM Chromium dumps after the scripts ran says which rows and cells they left), and it fetches
nothing (a probe in the page records every resource and every request the content security
policy refused; a page that does fetch proves the probe sees it), with the network cut off.

Skipped where no Chromium is installed (Debian: ``apt-get install -y chromium``).
"""

from __future__ import annotations

import json
import re
import shutil
import struct
import subprocess
import zlib
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from conformance import RESULTS_SCHEMA
from conformance.report import load, render
from conformance.report.colors import cell_color, rgb

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="no chromium on PATH (Debian: apt-get install -y "
                                                        "chromium); the browser tests of the HTML report need it")

PROBE = """<script>
window.probeRefused = [];
document.addEventListener('securitypolicyviolation', function (e) { window.probeRefused.push(e.blockedURI); });
window.addEventListener('load', function () {
  var loaded = performance.getEntriesByType('resource').map(function (e) { return e.name; });
  document.documentElement.setAttribute('data-probe', JSON.stringify({refused: window.probeRefused, loaded: loaded}));
});
</script>"""
FETCHING = ('<img src="http://192.0.2.1/x.png" alt=""><link rel="stylesheet" href="https://cdn.invalid/x.css">'
            '<script src="https://cdn.invalid/x.js"></script>')


def chromium(tmp_path: Path, url: str, *flags: str) -> subprocess.CompletedProcess[str]:
    """Run headless Chromium on ``url`` with the network cut off: no name resolves and every
    request goes to a proxy that refuses connections."""
    command = [str(CHROMIUM), "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
               "--no-default-browser-check", "--disable-extensions", "--disable-background-networking",
               f"--user-data-dir={tmp_path / 'profile'}", "--host-resolver-rules=MAP * ~NOTFOUND",
               "--proxy-server=127.0.0.1:9", "--window-size=900,700", *flags, url]
    done = subprocess.run(command, check=False, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, f"chromium exited {done.returncode}: {done.stderr[-2000:]}"
    return done


def dom(tmp_path: Path, page: Path, query: str = "") -> str:
    """The page's DOM after its scripts ran."""
    return chromium(tmp_path, page.as_uri() + query, "--dump-dom").stdout


def entry(name: str, verdict: str, error: float = 0.0, **extra: Any) -> dict[str, Any]:
    worst = {"quantity": "running_var", "step": 0, "ok": False, "max_abs_error": error, "max_rel_error": error,
             "worst_index": [0], "observed": 1.0 + error, "expected": 1.0}
    return {"id": f"bn/b::{name}", "verdict": verdict, "message": f"{name}: {verdict}",
            **({"worst": worst} if error else {}), **extra}


BUG = entry("bug", "divergence", 0.5, unexpected=True)
CONVENTION = entry("biased", "convention", 2.0, explained_by={"bn.running_var_estimator": "biased"})


@pytest.fixture(scope="module")
def page(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A report of two columns: an unexpected divergence (torch), a case both explain by a
    documented convention, one that conforms; with the probe put before everything else."""
    folder = tmp_path_factory.mktemp("browser")
    columns = {"torch": [BUG, CONVENTION, entry("ok", "conforms")],
               "paddle": [entry("bug", "conforms"), CONVENTION, entry("ok", "conforms")]}
    for framework, cases in columns.items():
        doc = {"schema": RESULTS_SCHEMA, "framework": framework, "framework_version": "1.0", "device": "cpu",
               "environment": {"device_name": "cpu"}, "documented": {}, "cases": cases}
        (folder / f"{framework}-cpu.json").write_text(json.dumps(doc))
    html = render(load([folder]), "html")
    path = folder / "report.html"
    path.write_text(html.replace("<head>", "<head>" + PROBE, 1))
    return path


def rows(document: str) -> dict[str, bool]:
    """Case id -> whether its matrix row is shown."""
    found = re.findall(r'<tr class="row"( hidden="")?><th class="case"><a href="#[^"]*">([^<]*)</a>', document)
    return {case: not hidden for hidden, case in found}


def sections(document: str) -> dict[str, bool]:
    """Case id -> whether its details section is shown."""
    found = re.findall(r'<section class="case row" id="[^"]*"( hidden="")?><h3><code>([^<]*)</code>', document)
    return {case: not hidden for hidden, case in found}


def test_the_page_fetches_nothing_and_the_probe_would_see_it(tmp_path: Path, page: Path) -> None:
    document = dom(tmp_path, page)
    probe = json.loads(re.search(r'data-probe="([^"]*)"', document).group(1).replace("&quot;", '"'))  # type: ignore[union-attr]
    assert probe == {"refused": [], "loaded": []}
    assert 'data-filtered="yes"' in document  # the inline script ran under the policy
    fetching = tmp_path / "fetching.html"
    fetching.write_text(page.read_text().replace("</body>", FETCHING + "</body>"))
    control = json.loads(re.search(r'data-probe="([^"]*)"',  # type: ignore[union-attr]
                                   dom(tmp_path, fetching)).group(1).replace("&quot;", '"'))
    assert len(control["refused"]) + len(control["loaded"]) >= 3, control


def test_without_filters_every_row_and_section_shows(tmp_path: Path, page: Path) -> None:
    document = dom(tmp_path, page)
    everything = {"bn/b::bug": True, "bn/b::biased": True, "bn/b::ok": True}
    assert rows(document) == sections(document) == everything
    assert '<span id="count">3 of 3 cases shown</span>' in document


@pytest.mark.parametrize(("query", "shown", "off"), [
    ("?unexpected=1", {"bn/b::bug"}, 5),  # every cell but the bug is blanked
    ("?conventions=hide", {"bn/b::bug", "bn/b::ok"}, 2),  # the two convention cells
    ("?hide=torch-cpu&unexpected=1", set(), 6),  # the only unexpected cell is torch's
])
def test_filters_act_on_the_grid_and_the_details(tmp_path: Path, page: Path, query: str, shown: set[str],
                                                 off: int) -> None:
    document = dom(tmp_path, page, query)
    expected = {case: case in shown for case in ("bn/b::bug", "bn/b::biased", "bn/b::ok")}
    assert rows(document) == sections(document) == expected
    start = document.index('<table class="matrix">')
    grid = document[start:document.index("</table>", start)]
    assert len(re.findall(r'<td data-col="\d"[^>]*class="[^"]*\boff\b', grid)) == off


def test_a_column_can_be_hidden(tmp_path: Path, page: Path) -> None:
    document = dom(tmp_path, page, "?hide=paddle-cpu")
    paddle = re.findall(r'<(?:th|td|div)\b[^>]*data-col="0"[^>]*>', document)  # paddle sorts first
    assert paddle and all(re.search(r'class="[^"]*\bgone\b', tag) for tag in paddle)
    torch = re.findall(r'<(?:th|td|div)\b[^>]*data-col="1"[^>]*>', document)
    assert torch and not any(re.search(r'class="[^"]*\bgone\b', tag) for tag in torch)
    assert all(rows(document).values())


def pixels(png: bytes) -> np.ndarray:
    """The RGB(A) pixels of an 8-bit, non-interlaced PNG (what Chromium writes)."""
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    chunks, at = {}, 8
    while at < len(png):
        length, kind = struct.unpack(">I4s", png[at:at + 8])
        chunks.setdefault(kind, []).append(png[at + 8:at + 8 + length])
        at += 12 + length
    width, height, depth, color, _, _, interlace = struct.unpack(">IIBBBBB", chunks[b"IHDR"][0])
    assert depth == 8 and color in (2, 6) and interlace == 0, "not the PNG kind Chromium writes"
    channels = 3 if color == 2 else 4
    raw = np.frombuffer(zlib.decompress(b"".join(chunks[b"IDAT"])), dtype=np.uint8)
    raw = raw.reshape(height, 1 + width * channels)
    out = np.zeros((height, width * channels), dtype=np.int32)
    for y in range(height):
        kind, line = raw[y, 0], raw[y, 1:].astype(np.int32)
        up = out[y - 1] if y else np.zeros_like(line)
        if kind in (0, 2):
            out[y] = (line + (up if kind == 2 else 0)) % 256
            continue
        row = out[y]
        for x in range(len(line)):
            left = row[x - channels] if x >= channels else 0
            corner = up[x - channels] if x >= channels else 0
            if kind == 1:
                predicted = left
            elif kind == 3:
                predicted = (left + up[x]) // 2
            else:  # Paeth
                p = left + up[x] - corner
                pa, pb, pc = abs(p - left), abs(p - up[x]), abs(p - corner)
                predicted = left if pa <= pb and pa <= pc else up[x] if pb <= pc else corner
            row[x] = (line[x] + predicted) % 256
    return out.reshape(height, width, channels)[:, :, :3]


def test_the_page_renders_the_matrix_in_its_colours(tmp_path: Path, page: Path) -> None:
    shot = tmp_path / "shot.png"
    chromium(tmp_path, page.as_uri(), f"--screenshot={shot}", "--hide-scrollbars")
    image = pixels(shot.read_bytes())
    assert image.shape[:2] == (700, 900)
    colours = {tuple(c) for c in image.reshape(-1, 3)[::7]}
    assert len(colours) > 50, "the screenshot is (nearly) one colour: nothing rendered"
    for entry_ in (BUG, CONVENTION):  # the grid's cells, in the colours the report gave them
        target = np.array(rgb(cell_color(entry_)[0]))
        assert (np.abs(image - target).max(axis=2) <= 3).sum() > 200, f"no cell coloured {target}"


def test_ticking_a_box_filters_and_puts_the_filter_in_the_address(tmp_path: Path, page: Path) -> None:
    clicked = tmp_path / "clicked.html"
    click = ("<script>document.querySelector('#filters [name=conventions]').click();"
             "document.documentElement.setAttribute('data-search', location.search);</script>")
    clicked.write_text(page.read_text().replace("</body>", click + "</body>"))
    document = dom(tmp_path, clicked)
    assert rows(document) == {"bn/b::bug": True, "bn/b::biased": False, "bn/b::ok": True}
    assert 'data-search="?conventions=hide"' in document
