"""The porter against the installed frameworks: translated constructions build in the target,
and the residual differences are measured (each test skipped where a framework it needs is
missing, so the ``core`` env runs none of them)."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest
from port_cases import LAYERS

from conformance.port.catalog import FRAMEWORKS
from conformance.port.translation import translate

MODULES = {"torch": "torch", "paddle": "paddle", "tf": "tensorflow"}
ROOT = Path(__file__).resolve().parents[1]


def _installed(*frameworks: str) -> bool:
    return all(importlib.util.find_spec(MODULES[f]) is not None for f in frameworks)


def _needs(*frameworks: str) -> pytest.MarkDecorator:
    return pytest.mark.skipif(not _installed(*frameworks), reason=f"needs {', '.join(frameworks)}")


@pytest.mark.parametrize("target", FRAMEWORKS)
def test_every_translated_construction_builds_in_its_framework(target: str) -> None:
    if not _installed(target):
        pytest.skip(f"{target} is not installed")
    programs = []
    for source, expression, rank, features in LAYERS:
        t = translate(expression, source, target, rank, features or 4)
        programs.append("\n".join(t.code))
    script = ("import os\nos.environ['TF_CPP_MIN_LOG_LEVEL'] = '2'\nimport sys\nfailed = []\n"
              f"for code in {programs!r}:\n"
              "    try:\n        exec(code, {})\n"
              "    except Exception as exc:\n        failed.append(f'{code}\\n-> {type(exc).__name__}: {exc}')\n"
              "print('\\n\\n'.join(failed) or 'ok')\n")
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300, check=False)
    assert out.stdout.strip().splitlines()[-1:] == ["ok"], out.stdout[-3000:] + out.stderr[-2000:]


@_needs("torch", "paddle")
def test_the_estimator_residual_is_measured_on_both_frameworks() -> None:
    from conformance.port.measure import measure
    from conformance.port.residuals import residuals
    from conformance.port.translation import port

    ported = port("BatchNorm2d(64, momentum=0.1, eps=1e-5)", "torch")
    m = measure(ported, ["paddle"], specs=ROOT / "specs")
    assert not m.problems, m.problems
    found = {r.title: r for r in residuals(ported, "paddle", m)}
    estimator = found["which batch variance feeds the running variance"]
    assert "PyTorch unbiased, Paddle biased" in estimator.facts
    n = estimator.numbers
    assert n["m"] == 32 and n["ratio_max"] < 1.0  # Paddle's running variance is the smaller
    # the run agrees with the numpy reference under the two measured estimators
    assert abs(n["ratio_min"] - n["predicted_min"]) < 1e-5 and abs(n["ratio_max"] - n["predicted_max"]) < 1e-5
    assert n["eval_output_max_abs"] > 1e-3  # and the eval outputs show it
    assert "a training batch with one value per channel (a batch of one, no spatial extent)" in found
