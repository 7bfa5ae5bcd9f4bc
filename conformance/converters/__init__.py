"""Converters under test: a pipeline from a source framework to a target runtime, run as a
column of results like any framework (``conformance convert``).

A converter is an adapter that wraps a pipeline (``conformance.converters.base``): for each
case it writes the source artifact, runs the converter in a subprocess with a time limit,
loads the converted result in the target runtime and runs the case's steps on it, in its own
worker process. Its name is ``<converter>:<source>-><target>`` (``torch-onnx:torch->onnxruntime``),
its results file ``<out>/<file-safe name>-<device>.json`` (``results.file_stem``), its artifacts
``<out>/artifacts/<file-safe name>/<case>/<device>/``.

Finding a converter imports nothing (no framework, not even numpy): this module only names
them. Built-in converters are listed in ``BUILTIN``; third-party ones register an entry point
in the group ``conformance.converters`` (``name = "module:Class"``) or are named on the command
line as ``--converter module:Class`` (the kit's own tests name their stand-ins that way).
"""

from __future__ import annotations

from dataclasses import replace

from conformance.adapters import AdapterRef, UnknownFramework, entry_points, from_target
from conformance.errors import did_you_mean

ARTIFACTS_ENV = "CONFORMANCE_CONVERT_ARTIFACTS"  # the worker's artifacts folder

BUILTIN: dict[str, AdapterRef] = {
    ref.name: ref
    for ref in (
        AdapterRef("torch-onnx:torch->onnxruntime", "conformance.converters.torch_onnx:TorchOnnxConverter",
                   "onnxruntime",
                   'pip install "conformance[torch,onnxruntime]"  (or: pip install torch onnx onnxruntime)',
                   ("onnx", "torch")),
    )
}
# the converters not built yet (issue 16), said in the refusal of an unknown name
NOT_BUILT = ("paconvert:torch->paddle", "tf2onnx:tf->onnxruntime", "onnx2torch:onnx->torch",
             "onnx2tf:onnx->tf", "nobuco:torch->tf")


def registry() -> dict[str, AdapterRef]:
    """Built-in converters plus those registered through ``conformance.converters``."""
    found = dict(BUILTIN)
    for ep in entry_points(group="conformance.converters"):
        module = ep.value.split(":", 1)[0]
        found.setdefault(ep.name, AdapterRef(ep.name, ep.value, module.split(".")[0],
                                             f"reinstall the package that provides {ep.value}"))
    return found


def short_names(known: dict[str, AdapterRef]) -> dict[str, str]:
    """``torch-onnx`` for ``torch-onnx:torch->onnxruntime``: the part before the colon, where
    it names one converter only."""
    counts: dict[str, int] = {}
    for name in known:
        counts[name.split(":", 1)[0]] = counts.get(name.split(":", 1)[0], 0) + 1
    return {name.split(":", 1)[0]: name for name in known if counts[name.split(":", 1)[0]] == 1}


def resolve(names: str | list[str], artifacts: str | None = None) -> list[AdapterRef]:
    """``"torch-onnx"`` (short or full name, comma-separated) or ``module:Class`` to refs whose
    worker writes its artifacts under ``artifacts``. An unknown name gets "did you mean"."""
    if isinstance(names, str):
        names = [n.strip() for n in names.split(",") if n.strip()]
    known = registry()
    short = short_names(known)
    refs = []
    for name in names:
        if name in known or name in short:
            ref = known[name if name in known else short[name]]
        elif ":" in name and "->" not in name:
            ref = from_target(name)  # module:Class (a converter's name has an arrow)
        elif name.split(":", 1)[0] in {n.split(":", 1)[0] for n in NOT_BUILT}:
            raise UnknownFramework(
                f"--converter {name!r}: that converter is not built yet (issue 16). Built: "
                f"{', '.join(sorted(short) or sorted(known))}, or module:Class for your own "
                "ConverterAdapter")
        else:
            hint = did_you_mean(name, [*short, *known])
            raise UnknownFramework(
                f"--converter {name!r}: unknown converter{hint}. Expected one of: "
                f"{', '.join(sorted(short) or sorted(known))}, or module:Class for your own "
                f"ConverterAdapter. Not built yet: {', '.join(NOT_BUILT)}")
        refs.append(replace(ref, env=((ARTIFACTS_ENV, artifacts),)) if artifacts else ref)
    return refs
