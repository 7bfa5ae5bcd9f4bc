"""Results files: ``<out>/<framework>-<device>.json``, one per run, plus a JSON-lines log
written as each case finishes, so that a run killed midway keeps every finished case.

Schema ``conformance.results/1``::

    {schema, framework, framework_version, device, environment, started, finished,
     documented: {fact: {value, link, fix}}, cases: [{id, verdict, message, checks, ...}]}
"""

from __future__ import annotations

import json
import math
import os
import re
import time
from pathlib import Path
from typing import Any

from conformance import RESULTS_SCHEMA, __version__


def clean(value: Any) -> Any:
    """JSON has no NaN or infinity: write them as strings."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {str(k): clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [clean(v) for v in value]
    return value


def new_results(info: dict[str, Any], device: str, environment: dict[str, Any]) -> dict[str, Any]:
    return {
        "schema": RESULTS_SCHEMA,
        "kit_version": __version__,
        "framework": info["name"],
        "framework_version": info["version"],
        "device": device,
        "environment": environment,
        "documented": info.get("documented", {}),
        "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "cases": [],
    }


def file_stem(name: str) -> str:
    """A framework's name as a file name: unchanged for the built-in names (``torch``,
    ``flax-nnx``, ``tf_keras``); a converter's ``torch-onnx:torch->onnxruntime`` becomes
    ``torch-onnx__torch_to_onnxruntime`` (``:`` and ``>`` are not allowed in Windows file
    names). The display name stays in the results file's ``framework``."""
    stem = name.replace("->", "_to_").replace(":", "__")
    return re.sub(r"[^A-Za-z0-9._+-]", "_", stem)


def results_path(out_dir: str | Path, framework: str, device: str, suffix: str = ".json") -> Path:
    return Path(out_dir) / f"{file_stem(framework)}-{device}{suffix}"


def start_log(out_dir: str | Path, framework: str, device: str, version: str) -> None:
    """A fresh log whose first line says which framework version it belongs to."""
    path = results_path(out_dir, framework, device, ".jsonl")
    path.write_text(json.dumps({"log_of": framework, "framework_version": version}) + "\n",
                    encoding="utf-8")


def read_log(out_dir: str | Path, framework: str, device: str, version: str) -> dict[str, dict[str, Any]]:
    """The entries of an earlier, interrupted run of the same framework version, by case id
    (empty when there is none). A line cut short by the interruption is ignored."""
    path = results_path(out_dir, framework, device, ".jsonl")
    if not path.is_file():
        return {}
    lines = path.read_text(encoding="utf-8").splitlines()
    try:
        header = json.loads(lines[0]) if lines else {}
    except json.JSONDecodeError:
        return {}
    if header.get("framework_version") != version:
        return {}
    done = {}
    for line in lines[1:]:
        try:
            entry = json.loads(line)
        except json.JSONDecodeError:
            continue
        done[entry["id"]] = entry
    return done


def append_log(out_dir: str | Path, framework: str, device: str, entry: dict[str, Any]) -> None:
    path = results_path(out_dir, framework, device, ".jsonl")
    with path.open("a", encoding="utf-8") as log:
        log.write(to_json(entry) + "\n")


def to_json(value: Any, indent: int | None = None) -> str:
    """``value`` as JSON, keys sorted, NaN and infinities as strings (``clean``). Walking the
    value to clean it costs more than encoding it, so that walk is only taken when the
    encoder finds a non-finite float."""
    try:
        return json.dumps(value, sort_keys=True, indent=indent, allow_nan=False)
    except ValueError:
        return json.dumps(clean(value), sort_keys=True, indent=indent)


def encode(results: dict[str, Any]) -> str:
    """The results document with one case per line: readable and diffable line by line when
    committed, and fast to write (``json`` encodes with C only without ``indent``)."""
    header = to_json({k: v for k, v in results.items() if k != "cases"}, indent=1)
    cases = "".join(f"{',' if i else ''}\n  {to_json(case)}" for i, case in enumerate(results.get("cases", [])))
    return f'{header[:-2]},\n "cases": [{cases}\n ]\n}}\n'


def write(out_dir: str | Path, results: dict[str, Any]) -> Path:
    """Write atomically (temp file then rename), so a reader never sees half a file."""
    results["finished"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    path = results_path(out_dir, results["framework"], results["device"])
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(encode(results), encoding="utf-8")
    os.replace(tmp, path)
    return path
