"""The benchmark runs end to end and reports what the issue asks for (no timing is
asserted: speed is measured, not enforced)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from conformance.bench import main

SPECS = Path(__file__).resolve().parents[1] / "specs"


def test_the_benchmark_reports_kit_floor_and_their_ratio(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "bench.json"
    assert main(["-f", "numpy", "--repeat", "1", "--json", str(out), str(SPECS / "dropout")]) == 0
    report = json.loads(out.read_text())
    row = report["frameworks"]["numpy"]
    assert row["version"] == np.__version__
    assert row["cases"] > 10 and row["kit_s"] > 0 and row["floor_s"] > 0
    # the times are rounded to the millisecond, the ratio to 1e-3: allow for both
    ratio = row["kit_s"] / row["floor_s"]
    rounding = ratio * (0.0005 / row["kit_s"] + 0.0005 / row["floor_s"]) + 0.0005
    assert abs(row["overhead_ratio"] - ratio) <= rounding
    assert row["cases_per_s"] == pytest.approx(row["cases"] / row["kit_s"], rel=0.01)
    assert report["all_frameworks_wall_s"] > 0 and report["import_s"] > 0
    assert report["machine"]["cpus"] >= 1
    assert isinstance(report["kit_bytecode_cached"], bool)
    assert "numpy" in capsys.readouterr().out
