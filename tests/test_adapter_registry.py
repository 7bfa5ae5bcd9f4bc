"""Finding adapters: built-in names, third-party entry points, ``module:Class``."""

from __future__ import annotations

from importlib.metadata import EntryPoint
from pathlib import Path

import pytest
from helpers import BN_PROGRAM, cases_from

from conformance import adapters
from conformance.adapters import UnknownFramework, from_target, registry, resolve
from conformance.runner import run


def test_unknown_names_get_did_you_mean() -> None:
    with pytest.raises(UnknownFramework, match=r"unknown framework 'padle' \(did you mean 'paddle'\?\)"):
        resolve("torch,padle")
    with pytest.raises(UnknownFramework, match="expected module:Class"):
        from_target("no_colon_here")


def test_third_party_adapter_from_an_entry_point_gets_inferred_conventions(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    plugin = EntryPoint(name="mylib", value="fake_adapters:BiasedUndocumented", group="conformance.adapters")
    monkeypatch.setattr(adapters, "entry_points", lambda group: [plugin] if group == plugin.group else [])
    assert registry()["mylib"].target == "fake_adapters:BiasedUndocumented"
    (ref,) = resolve("mylib")
    outcome = run(cases_from(BN_PROGRAM), [ref], ["cpu"], tmp_path)
    entry = outcome.documents[0]["cases"][0]
    assert entry["verdict"] == "divergence"
    assert entry["explained_by"] == {"bn.running_var_estimator": "biased"}


def test_builtin_names_win_over_entry_points(monkeypatch: pytest.MonkeyPatch) -> None:
    impostor = EntryPoint(name="torch", value="fake_adapters:Crashing", group="conformance.adapters")
    monkeypatch.setattr(adapters, "entry_points", lambda group: [impostor])
    assert registry()["torch"].target == "conformance.adapters.torch:TorchAdapter"
