"""``conformance frameworks``: what is installed, its version and the devices it sees.

Versions come from the installed distributions' metadata (``importlib.metadata``), which
imports nothing. Devices need the framework itself: each is imported in its own worker
process, all at once, their logs going to a temporary file (quoted only when one fails).
"""

from __future__ import annotations

import threading
from typing import Any

from conformance.adapters import AdapterRef


def distribution_version(module: str) -> str | None:
    """The version of the distribution that installs top-level ``module`` (``tensorflow``
    comes from ``tensorflow-cpu`` or ``tensorflow``, ``paddle`` from ``paddlepaddle``...)."""
    from importlib import metadata

    for name in metadata.packages_distributions().get(module, []):
        try:
            return metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return None


def probe_devices(ref: AdapterRef) -> dict[str, Any]:
    """Load the adapter in a worker: its devices, or why it fails to load."""
    from conformance.worker import WorkerFailed, WorkerProcess

    worker = WorkerProcess(ref)
    try:
        info = worker.start()
        return {"version": info["version"], "devices": info["devices"]}
    except (WorkerFailed, TimeoutError, ChildProcessError) as exc:
        return {"error": str(exc)}
    finally:
        worker.close()


def inventory(refs: list[AdapterRef], devices: bool = True) -> dict[str, dict[str, Any]]:
    """One row per adapter, by name: ``installed``, and ``version`` and ``devices`` (or
    ``error``), or ``install`` (the command) when it is missing."""
    rows: dict[str, dict[str, Any]] = {}
    for ref in refs:
        if not ref.installed():
            rows[ref.name] = {"installed": False, "install": ref.install_hint}
            continue
        rows[ref.name] = {"installed": True}
        version = distribution_version(ref.requires)
        if version is not None:
            rows[ref.name]["version"] = version
    if devices:
        _probe_all([r for r in refs if rows[r.name]["installed"]], rows)
    return {name: rows[name] for name in sorted(rows)}


def _probe_all(refs: list[AdapterRef], rows: dict[str, dict[str, Any]]) -> None:
    """Every framework's worker at once: the command takes as long as the slowest import."""
    def probe(ref: AdapterRef) -> None:
        found = probe_devices(ref)
        if "version" in rows[ref.name]:
            found.pop("version", None)  # the distribution's own (the same but for a local tag)
        rows[ref.name].update(found)

    # daemons: after a Ctrl-C the command exits without waiting for an import to finish
    threads = [threading.Thread(target=probe, args=(ref,), name=f"probe-{ref.name}", daemon=True) for ref in refs]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


def render_text(rows: dict[str, dict[str, Any]]) -> str:
    lines = []
    width = max((len(name) for name in rows), default=8)  # names line up (keras-torch, onnxruntime)
    for name, row in rows.items():
        label = name.ljust(width)
        if not row["installed"]:
            lines.append(f"{label} not installed   install: {row['install']}")
        elif "error" in row:
            lines.append(f"{label} {row.get('version', '?'):16} installed, fails to load: {row['error']}")
        elif "devices" in row:
            lines.append(f"{label} {row.get('version', '?'):16} devices: {', '.join(row['devices'])}")
        else:
            lines.append(f"{label} {row.get('version', '?')}")
    return "\n".join(lines) + "\n"
