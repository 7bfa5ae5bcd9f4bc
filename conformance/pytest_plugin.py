"""pytest plugin (entry point ``pytest11``): spec files become test items, one per case,
framework and device, with ids like ``specs/batchnorm/train_eval.yaml::rank2[torch-cpu]``.

Options: ``--framework torch,paddle`` (default: the installed ones among torch, paddle, tf;
a framework named here that is not installed is a usage error, never a skip),
``--device cpu,gpu``, ``--conformance-out DIR`` (write results files),
``--conformance-expectations DIR`` (default: ./expectations when it exists).

A divergence the registry expects is reported as xfailed; a registry entry whose case now
conforms fails as stale (strict, as ``conformance run`` does). A mistake in the registry is a
collection error with its ``file:line``.

pytest loads this module in every run in the environment, so it imports nothing heavy at
the top: the kit's modules are imported when a spec file is collected.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

_SESSIONS = pytest.StashKey[dict[str, Any]]()


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("conformance", "conformance kit: run spec files as tests")
    group.addoption("--framework", default="", help="frameworks to run specs on, comma-separated "
                    "(torch, paddle, tf, numpy); default: every installed one of torch, paddle, tf")
    group.addoption("--device", default="cpu", help="devices, comma-separated: cpu, gpu (default: cpu)")
    group.addoption("--conformance-out", default=None, help="write results files into this folder")
    group.addoption("--conformance-expectations", default=None,
                    help="expected-divergence registry folder (default: ./expectations if present)")


def pytest_configure(config: pytest.Config) -> None:
    """Check option values now: a typo is a usage error, never a silent skip."""
    names = config.getoption("--framework")
    device_text = config.getoption("--device")
    if not names and device_text == "cpu":
        return
    from conformance.adapters import UnknownFramework, resolve
    from conformance.cli import UsageError, parse_devices, require_installed

    try:
        if names:
            # named explicitly: a framework that is not installed fails, never skips
            require_installed(resolve(names))
        parse_devices(device_text)
    except (UnknownFramework, UsageError) as exc:
        raise pytest.UsageError(f"conformance: {exc}") from None


def _registry(config: pytest.Config) -> str | None:
    registry = config.getoption("--conformance-expectations")
    if registry is None and Path("expectations").is_dir():
        registry = "expectations"
    return str(registry) if registry is not None else None


_REGISTRY_PROBLEMS = pytest.StashKey[str]()


def _registry_problems(config: pytest.Config) -> str:
    """The registry's problems (``file:line: ...`` lines), checked once, when the first spec
    file is collected (not at configure time: the plugin loads in every pytest run of the
    environment, and an unrelated project's ./expectations folder is none of its business)."""
    if _REGISTRY_PROBLEMS not in config.stash:
        registry = _registry(config)
        problems = ""
        if registry is not None:
            from conformance.expectations import check_folder
            from conformance.spec import SpecErrors

            try:
                check_folder(registry)
            except SpecErrors as exc:
                problems = "the expectations registry has problems:\n" + "\n".join(map(str, exc.errors))
        config.stash[_REGISTRY_PROBLEMS] = problems
    return config.stash[_REGISTRY_PROBLEMS]


def pytest_collect_file(file_path: Path, parent: pytest.Collector) -> pytest.Collector | None:
    if file_path.suffix not in (".yaml", ".yml"):
        return None
    try:
        head = file_path.read_text(encoding="utf-8", errors="replace")[:65536]
    except OSError:
        return None
    if "conformance_spec:" not in head:
        return None
    return SpecFile.from_parent(parent, path=file_path)


def _sessions(config: pytest.Config) -> dict[str, Any]:
    if _SESSIONS not in config.stash:
        config.stash[_SESSIONS] = {}
    return config.stash[_SESSIONS]


def _frameworks(config: pytest.Config) -> list[Any]:
    from conformance.adapters import REAL_FRAMEWORKS, resolve

    names = config.getoption("--framework")
    return resolve(names) if names else resolve(list(REAL_FRAMEWORKS))


class SpecFile(pytest.File):
    def collect(self) -> Iterator[pytest.Item]:
        from conformance.cli import parse_devices
        from conformance.spec import SpecErrors, load_file

        problems = _registry_problems(self.config)
        if problems:
            raise SpecCollectError(problems)
        try:
            cases = load_file(self.path)
        except SpecErrors as exc:
            raise SpecCollectError(str(exc)) from None
        devices = parse_devices(self.config.getoption("--device"))
        for case in cases:
            for ref in _frameworks(self.config):
                for device in devices:
                    yield SpecItem.from_parent(self, name=f"{case.name}[{ref.name}-{device}]",
                                               case=case, ref=ref, device=device)

    def repr_failure(self, excinfo: Any, style: Any = None) -> str:
        if isinstance(excinfo.value, SpecCollectError):
            return str(excinfo.value)
        return str(super().repr_failure(excinfo))


class SpecCollectError(Exception):
    """A spec that does not load: the message lists ``file:line: problem`` lines."""


class SpecFailure(Exception):
    def __init__(self, entry: dict[str, Any]) -> None:
        super().__init__(entry.get("message", ""))
        self.entry = entry


class SpecItem(pytest.Item):
    def __init__(self, *, case: Any, ref: Any, device: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.case, self.ref, self.device = case, ref, device

    def _session(self) -> Any:
        from conformance.runner import FrameworkSession

        sessions = _sessions(self.config)
        if self.ref.name not in sessions:
            out = self.config.getoption("--conformance-out")
            registry = _registry(self.config)
            if out:
                Path(out).mkdir(parents=True, exist_ok=True)
            sessions[self.ref.name] = FrameworkSession(
                self.ref, Path(registry) if registry else None, Path(out) if out else None)
        return sessions[self.ref.name]

    def runtest(self) -> None:
        entry = self._session().run_case(self.case, self.device)
        if entry.get("unexpected"):  # a stale registry entry too: strict, a fixed one fails
            raise SpecFailure(entry)
        if entry.get("expected") and entry["verdict"] in ("divergence", "error"):
            expected = entry["expected"]
            pytest.xfail(f"{entry['verdict']} expected by {expected.get('registry', 'the registry')}: "
                         f"{str(expected.get('reason', '')).strip()}")
        if entry["verdict"] in ("skipped", "unsupported"):
            pytest.skip(f"{entry['verdict']}: {entry['message']}")

    def repr_failure(self, excinfo: Any, style: Any = None) -> str:
        if not isinstance(excinfo.value, SpecFailure):
            return str(super().repr_failure(excinfo))
        entry = excinfo.value.entry
        lines = [(f"{entry['verdict']}{' (stale expectation)' if entry.get('stale') else ''}: "
                  f"{self.case.id} on {self.ref.name}-{self.device}"),
                 f"  {entry.get('message', '')}"]
        for check in entry.get("checks", []):
            if not check.get("ok", True):
                lines.append(f"  step {check['step']} {check['quantity']}: max abs error "
                             f"{check.get('max_abs_error')}, max rel error {check.get('max_rel_error')}"
                             f"{' - ' + check['note'] if check.get('note') else ''}")
        lines.append(f"  reproduce: conformance run {self.case.file}::{self.case.name} --framework "
                     f"{self.ref.name} --device {self.device}")
        return "\n".join(lines)

    def reportinfo(self) -> tuple[Path, int, str]:
        return self.path, self.case.line - 1, f"{self.case.id} [{self.ref.name}-{self.device}]"


def pytest_sessionfinish(session: pytest.Session) -> None:
    for framework_session in _sessions(session.config).values():
        framework_session.finish()
