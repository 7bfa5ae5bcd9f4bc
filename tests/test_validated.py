"""The cache of specs that passed the schema: a pass skips the validator, nothing else does."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from helpers import BN_PROGRAM

from conformance import spec, validated
from conformance.errors import SpecErrors

TEXT = "conformance_spec: 1\n" + BN_PROGRAM
BROKEN = "conformance_spec: 1\ncases:\n  - name: c\n    layer: {kind: batch_norm, eps: small}\n"


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("CONFORMANCE_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("CONFORMANCE_NO_CACHE", raising=False)
    return tmp_path / "cache"


def _validator_must_not_run(monkeypatch: pytest.MonkeyPatch) -> None:
    def fail(doc: object) -> list[tuple[int, str]]:
        raise AssertionError("the schema validator ran for a spec that passed before")
    monkeypatch.setattr(spec, "_schema_errors", fail)


def test_a_spec_that_passed_skips_the_validator_next_time(cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    first = spec.load_text(TEXT)
    assert validated.passed_before(TEXT) and len(list((cache / "valid-specs").iterdir())) == 1
    _validator_must_not_run(monkeypatch)
    again = spec.load_text(TEXT)
    assert [c.id for c in again] == [c.id for c in first]
    assert all(a.program() == b.program() for a, b in zip(first, again))


def test_a_spec_with_problems_is_never_remembered(cache: Path) -> None:
    messages = []
    for _ in range(2):
        with pytest.raises(SpecErrors) as caught:
            spec.load_text(BROKEN, file="broken.yaml")
        messages.append([str(e) for e in caught.value.errors])
    assert messages[0] == messages[1] and "broken.yaml:4" in messages[0][0]
    assert not validated.passed_before(BROKEN)


def test_another_checker_is_a_miss(cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    spec.load_text(TEXT)
    monkeypatch.setattr(validated, "_checker_digest", lambda: b"a changed schema or checking code")
    assert not validated.passed_before(TEXT)
    assert not validated.passed_before(TEXT + "\n# one more line")


def test_no_cache_when_turned_off_or_unwritable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CONFORMANCE_NO_CACHE", "1")
    spec.load_text(TEXT)
    assert not validated.passed_before(TEXT)
    monkeypatch.delenv("CONFORMANCE_NO_CACHE")
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    monkeypatch.setenv("CONFORMANCE_CACHE_DIR", str(blocker))
    assert len(spec.load_text(TEXT)) > 0  # cannot remember: still loads
    assert not validated.passed_before(TEXT)


def test_a_run_over_validated_specs_never_imports_the_validator(cache: Path, tmp_path: Path) -> None:
    """What the cache is for: the command line's start without jsonschema."""
    specs = Path(__file__).resolve().parents[1] / "specs" / "dropout"
    code = ("import sys\nfrom conformance.cli import main\n"
            f"main(['run', '-q', '-f', 'numpy', '--out', {str(tmp_path / 'out')!r}, {str(specs)!r}])\n"
            "print('jsonschema' in sys.modules)\n")
    runs = [subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
            for _ in range(2)]
    assert [r.stdout.strip().splitlines()[-1] for r in runs] == ["True", "False"]
