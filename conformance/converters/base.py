"""A converter under test as an adapter that wraps a pipeline. Runs in its own worker process
(``conformance.worker``) like any adapter; it imports no framework itself: the converter runs
in a subprocess of the worker, and only ``load`` (in a subclass) imports the target runtime.

For each case (``build``):

1. ``write_source`` writes the source artifact into ``<artifacts>/<case>/<device>/``:
   ``case.json`` (the layer as neutral JSON, the dtype, the case's program) and, where the
   report writes code for the source framework, ``source.py`` (``report.snippets.snippet``);
2. ``command`` is run in a subprocess (its own session, killed with all it started past
   ``timeout_s``), its output kept in ``converter.log``, its result in ``converted/``;
3. ``load`` loads the converted result in the target runtime and returns a ``LayerHandle``,
   on which the case's steps run and are judged as any framework's.

A converter that fails on a case loses that case only: exit status ``UNSUPPORTED_EXIT`` (the
kit's own converter scripts) or output matching ``unsupported_words`` (the converter's own
words for "I cannot express this") is ``unsupported`` with those words; any other failure or a
timeout is an ``error`` that quotes the converter's last lines and names the log.

A converter column promises the *source* framework's semantics: ``documented`` is the source
framework's table, so a converted run that behaves as the source documents conforms (or is a
documented ``convention``), and one that does not is a ``divergence`` naming what explains it
(``bn.momentum_weights=old``: the momentum was passed unconverted).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
from abc import abstractmethod
from dataclasses import fields
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from conformance.adapters.base import (
    Adapter,
    DeviceUnavailable,
    LayerHandle,
    Unsupported,
)
from conformance.converters import ARTIFACTS_ENV
from conformance.model import BatchNormSpec, DropoutSpec, LayerSpec
from conformance.results import file_stem

UNSUPPORTED_EXIT = 3  # the kit's converter scripts: "this case cannot be expressed", words on stdout
TAIL_LINES = 15  # of the converter's output, quoted in an error
MODELS_NOT_CONVERTED = ("the kit's converter pipeline converts layer cases only; model cases are not "
                        "converted yet (a limit of the kit, not a statement about the converter)")


class ConverterFailed(RuntimeError):
    """The converter crashed, hung or wrote nothing usable (recorded as ``error``)."""


def layer_to_json(layer: LayerSpec) -> dict[str, Any]:
    """A layer spec as plain JSON data (arrays as nested lists, every field kept)."""
    values = {f.name: getattr(layer, f.name) for f in fields(layer)}
    return {k: (v.tolist() if isinstance(v, np.ndarray) else v) for k, v in values.items()}


ARRAY_FIELDS = ("scale", "shift", "running_mean", "running_var")


def layer_from_json(data: dict[str, Any]) -> LayerSpec:
    """The inverse of ``layer_to_json``."""
    if data.get("kind") == "batch_norm":
        known = {f.name for f in fields(BatchNormSpec)}
        values: dict[str, Any] = {k: (np.asarray(v, dtype=np.float64) if k in ARRAY_FIELDS and v is not None else v)
                  for k, v in data.items() if k in known}
        return BatchNormSpec(**values)
    if data.get("kind") == "dropout":
        known = {f.name for f in fields(DropoutSpec)}
        return DropoutSpec(**{k: v for k, v in data.items() if k in known})
    raise ValueError(f"layer kind {data.get('kind')!r}: expected batch_norm or dropout")


def read_case(path: Path) -> dict[str, Any]:
    """``case.json`` as a converter script reads it: ``layer`` (a LayerSpec), ``dtype``,
    ``device``, ``case`` (its id) and ``program``."""
    data = json.loads(path.read_text(encoding="utf-8"))
    return {**data, "layer": layer_from_json(data["layer"])}


def case_folder_name(case_id: str) -> str:
    """``batchnorm/momentum::weight_0_9`` -> ``batchnorm_momentum__weight_0_9``."""
    return re.sub(r"[^A-Za-z0-9._+-]", "_", case_id.replace("::", "__"))


def tail(text: str, lines: int = TAIL_LINES) -> str:
    kept = [line for line in text.splitlines() if line.strip()][-lines:]
    return "\n".join(f"    {line[:300]}" for line in kept)


class ConverterAdapter(Adapter):
    """A converter from ``source`` to ``target_runtime``. Subclasses set ``converter``,
    ``source``, ``target_runtime`` (``name`` follows: ``converter:source->target``),
    ``documented`` (the source framework's table) and implement ``version``, ``devices``,
    ``command`` and ``load``."""

    converter: ClassVar[str] = ""
    source: ClassVar[str] = ""
    target_runtime: ClassVar[str] = ""
    timeout_s: ClassVar[float] = 60.0  # per conversion; below the worker's per-case limit
    # regular expressions for the converter's own words saying it cannot express a case
    unsupported_words: ClassVar[tuple[str, ...]] = ()

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if cls.converter and "name" not in cls.__dict__:
            cls.name = f"{cls.converter}:{cls.source}->{cls.target_runtime}"

    def __init__(self) -> None:
        root = os.environ.get(ARTIFACTS_ENV)
        base = Path(root) if root else Path(tempfile.mkdtemp(prefix="conformance-convert-"))
        self.artifacts = base / file_stem(self.name)
        self.case_id, self.device = "case", "cpu"
        self.program: dict[str, Any] = {}
        self._converted: dict[str, Path] = {}

    def begin_case(self, case: Any, device: str) -> None:
        """Called by the worker before each case: names the artifacts folder after it."""
        self.case_id, self.device, self._converted = case.id, device, {}
        self.program = case.program()

    @abstractmethod
    def command(self, source: Path, out: Path) -> list[str]:
        """The converter's command line: read ``source`` (``case.json``), write into ``out``."""

    @abstractmethod
    def load(self, converted: Path, layer: LayerSpec, dtype: str, device: str) -> LayerHandle:
        """The converted result (folder ``converted``) as a handle in the target runtime."""

    def environment(self, device: str) -> dict[str, Any]:
        env = super().environment(device)
        env.update({"converter": self.converter, "source": self.source, "target": self.target_runtime,
                    "converter_timeout_s": self.timeout_s, "artifacts": str(self.artifacts)})
        return env

    def build(self, layer: Any, dtype: str, device: str) -> LayerHandle:
        """Convert once per case and layer (a ``rebuild`` step loads the same artifact
        afresh), then load."""
        if getattr(layer, "kind", "") == "model":  # skipped, so no model fact reads "unsupported"
            raise DeviceUnavailable(MODELS_NOT_CONVERTED)
        key = json.dumps([layer_to_json(layer), dtype, device], sort_keys=True)
        if key not in self._converted:
            self._converted[key] = self.convert(layer, dtype, device, len(self._converted))
        return self.load(self._converted[key], layer, dtype, device)

    def folder(self, device: str, index: int = 0) -> Path:
        name = device if index == 0 else f"{device}-{index + 1}"
        return self.artifacts / case_folder_name(self.case_id) / name

    def write_source(self, layer: LayerSpec, dtype: str, device: str, folder: Path) -> Path:
        """``case.json`` and, where the report writes the source framework's code, ``source.py``."""
        source = folder / "case.json"
        source.write_text(json.dumps({"case": self.case_id, "device": device, "dtype": dtype,
                                      "layer": layer_to_json(layer), "program": self.program},
                                     indent=1, default=str), encoding="utf-8")
        from conformance.report.snippets import FRAMEWORKS, snippet

        if self.source in FRAMEWORKS and self.program:
            (folder / "source.py").write_text(snippet(self.program, self.source), encoding="utf-8")
        return source

    def convert(self, layer: LayerSpec, dtype: str, device: str, index: int = 0) -> Path:
        """Run the converter on the case's source; the folder it wrote into."""
        folder = self.folder(device, index)
        shutil.rmtree(folder, ignore_errors=True)
        (folder / "converted").mkdir(parents=True)
        source = self.write_source(layer, dtype, device, folder)
        log = folder / "converter.log"
        code = run_command(self.command(source, folder / "converted"), log, self.timeout_s, folder)
        output = log.read_text(encoding="utf-8", errors="replace")
        where = f"{self.converter} on {self.case_id}"
        if code is None:
            raise ConverterFailed(f"{where}: did not finish within {self.timeout_s:g} s and was killed; "
                                  f"its last output:\n{tail(output)}\n(full output: {log})")
        if code != 0:
            words = self.cannot_express(code, output)
            if words is not None:
                raise Unsupported(f"{self.converter}: {words}")
            raise ConverterFailed(f"{where}: exited with status {code}; its last output:\n{tail(output)}\n"
                                  f"(full output: {log})")
        return folder / "converted"

    def cannot_express(self, code: int, output: str) -> str | None:
        """The converter's own words when its failure says it cannot express the case, else
        None (an error): the kit's scripts exit ``UNSUPPORTED_EXIT``; third-party converters'
        words are matched by ``unsupported_words``."""
        lines = [line.strip() for line in output.splitlines() if line.strip()]
        if code == UNSUPPORTED_EXIT and lines:
            return lines[-1]
        for pattern in self.unsupported_words:
            for line in reversed(lines):
                if re.search(pattern, line):
                    return line
        return None


def run_command(command: list[str], log: Path, timeout_s: float, cwd: Path) -> int | None:
    """Run ``command`` with its output into ``log``; its exit status, or None when it ran past
    ``timeout_s`` (then it and everything it started are killed). Its ``PYTHONPATH`` is this
    process's import path, so a converter script finds the kit and the adapters."""
    # unbuffered: a Python converter killed past its time limit (SIGKILL flushes nothing) still
    # leaves what it printed before it hung in the log, which the error quotes
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p), "PYTHONUNBUFFERED": "1"}
    with log.open("wb") as output:
        process = subprocess.Popen(command, stdout=output, stderr=subprocess.STDOUT,
                                   stdin=subprocess.DEVNULL, cwd=cwd, env=env, start_new_session=True)
        try:
            return process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            try:
                os.killpg(process.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                process.kill()
            process.wait()
            return None
