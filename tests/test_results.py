"""The results file's encoding: valid JSON, one case per line, no NaN or infinity."""

from __future__ import annotations

import json
import math
from pathlib import Path

from conformance import results

DOCUMENT = {
    "schema": "conformance.results/1", "framework": "numpy", "device": "cpu",
    "cases": [
        {"id": "a::one", "verdict": "conforms", "checks": [{"max_abs_error": 0.0, "observed": [1.5, -2.0]}]},
        {"id": "a::two", "verdict": "divergence", "checks": [{"max_abs_error": math.inf,
                                                               "observed": [math.nan, 1.0]}]},
    ],
}


def test_results_files_are_json_with_one_case_per_line(tmp_path: Path) -> None:
    path = results.write(tmp_path, json.loads(json.dumps(DOCUMENT)))
    text = path.read_text()
    data = json.loads(text)
    assert [c["id"] for c in data["cases"]] == ["a::one", "a::two"]
    assert data["finished"] and data["framework"] == "numpy"
    case_lines = [line for line in text.splitlines() if '"id": "a::' in line]
    assert [json.loads(line.rstrip(","))["id"] for line in case_lines] == ["a::one", "a::two"]


def test_non_finite_numbers_are_written_as_strings(tmp_path: Path) -> None:
    document = {**DOCUMENT, "cases": [dict(c) for c in DOCUMENT["cases"]]}
    path = results.write(tmp_path, document)
    check = json.loads(path.read_text())["cases"][1]["checks"][0]
    # strings that read back as the same numbers (their spelling is Python's str(float))
    error, (observed, finite) = check["max_abs_error"], check["observed"]
    assert isinstance(error, str) and float(error) == math.inf
    assert isinstance(observed, str) and math.isnan(float(observed))
    assert finite == 1.0 and not isinstance(finite, str)
    assert "NaN" not in path.read_text() and "Infinity" not in path.read_text()


def test_the_fast_encoding_equals_the_cleaned_one() -> None:
    finite = DOCUMENT["cases"][0]
    assert results.to_json(finite) == json.dumps(results.clean(finite), sort_keys=True)
    assert json.loads(results.to_json(DOCUMENT)) == results.clean(DOCUMENT)


def test_an_empty_document_is_valid_json(tmp_path: Path) -> None:
    path = results.write(tmp_path, {**DOCUMENT, "cases": []})
    assert json.loads(path.read_text())["cases"] == []
