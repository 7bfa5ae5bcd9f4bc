"""The adapter registry. Finding an adapter never imports it or its framework.

Built-in adapters are listed here; third-party ones register an entry point in the group
``conformance.adapters`` (``name = "module:Class"``) or are named on the command line with
``--adapter module:Class``.
"""

from __future__ import annotations

import importlib
import importlib.util
from dataclasses import dataclass
from typing import Any

from conformance.errors import did_you_mean


@dataclass(frozen=True)
class AdapterRef:
    """Where an adapter lives and what it needs, without importing anything."""

    name: str
    target: str  # "module:Class"
    requires: str  # the top-level module of its framework (whose version the inventory shows)
    install_hint: str
    also_requires: tuple[str, ...] = ()  # further top-level modules (Keras 3's backend, say)
    # environment variables set in the adapter's worker (a converter's artifacts folder)
    env: tuple[tuple[str, str], ...] = ()

    def installed(self) -> bool:
        """Every module the adapter imports can be found (none is imported here)."""
        try:
            return all(importlib.util.find_spec(module) is not None
                       for module in (self.requires, *self.also_requires))
        except (ImportError, ValueError):
            return False


BUILTIN: dict[str, AdapterRef] = {
    ref.name: ref
    for ref in (
        AdapterRef("torch", "conformance.adapters.torch:TorchAdapter", "torch",
                   'pip install "conformance[torch]"  (CPU build: pip install torch --index-url '
                   "https://download.pytorch.org/whl/cpu)"),
        AdapterRef("paddle", "conformance.adapters.paddle:PaddleAdapter", "paddle",
                   'pip install "conformance[paddle]"  (or: pip install paddlepaddle)'),
        AdapterRef("tf", "conformance.adapters.tf:TfAdapter", "tensorflow",
                   'pip install "conformance[tf]"  (or: pip install tensorflow-cpu)'),
        AdapterRef("flax", "conformance.adapters.flax:FlaxAdapter", "flax",
                   'pip install "conformance[flax]"  (or: pip install flax jax)', ("jax",)),
        # Flax's other API: NNX modules with train()/eval() (``flax`` is linen, the default)
        AdapterRef("flax-nnx", "conformance.adapters.flax_nnx:FlaxNnxAdapter", "flax",
                   'pip install "conformance[flax]"  (or: pip install flax jax)', ("jax",)),
        AdapterRef("tf_keras", "conformance.adapters.tf_keras:TfKerasAdapter", "tf_keras",
                   'pip install "conformance[tf_keras]"  (or: pip install tf-keras)',
                   ("tensorflow",)),
        AdapterRef("keras-torch", "conformance.adapters.keras_torch:KerasTorchAdapter", "keras",
                   'pip install "conformance[keras-torch]"  (or: pip install keras torch)', ("torch",)),
        AdapterRef("keras-jax", "conformance.adapters.keras_jax:KerasJaxAdapter", "keras",
                   'pip install "conformance[keras-jax]"  (or: pip install keras jax)', ("jax",)),
        AdapterRef("onnxruntime", "conformance.adapters.onnxruntime:OnnxRuntimeAdapter", "onnxruntime",
                   'pip install "conformance[onnxruntime]"  (or: pip install onnx onnxruntime)', ("onnx",)),
        AdapterRef("numpy", "conformance.adapters.numpy:NumpyAdapter", "numpy",
                   "numpy is a dependency of the kit; reinstall the kit"),
    )
}
# the frameworks a run without --framework takes (those installed), and that docs/results measures
REAL_FRAMEWORKS = ("torch", "paddle", "tf", "tf_keras", "keras-torch", "keras-jax", "flax", "flax-nnx",
                   "onnxruntime")


class UnknownFramework(ValueError):
    pass


def registry() -> dict[str, AdapterRef]:
    """Built-in adapters plus those registered through the ``conformance.adapters`` group."""
    found = dict(BUILTIN)
    for ep in entry_points(group="conformance.adapters"):
        module = ep.value.split(":", 1)[0]
        found.setdefault(ep.name, AdapterRef(ep.name, ep.value, module.split(".")[0],
                                             f"reinstall the package that provides {ep.value}"))
    return found


def entry_points(group: str) -> list[Any]:
    """The entry points of ``group`` in every installed package. ``importlib.metadata`` is
    imported here, not at the top: it costs more than the rest of the command line's start."""
    from importlib import metadata

    return list(metadata.entry_points(group=group))


def from_target(target: str) -> AdapterRef:
    """An adapter given as ``module:Class`` on the command line; its name is the class's
    ``name`` attribute, read in the worker, so here the module name stands in."""
    if ":" not in target:
        raise UnknownFramework(f"--adapter {target!r}: expected module:Class, e.g. mypkg.adapter:MyAdapter")
    module = target.split(":", 1)[0]
    return AdapterRef(module.rsplit(".", 1)[-1], target, module.split(".")[0],
                      f"make {module} importable (pip install it or add it to PYTHONPATH)")


def resolve(names: str | list[str]) -> list[AdapterRef]:
    """Turn ``"torch,paddle"`` into refs; an unknown name gets "did you mean"."""
    if isinstance(names, str):
        names = [n.strip() for n in names.split(",") if n.strip()]
    # a built-in name never needs the entry-point scan (built-ins win over entry points anyway)
    known = BUILTIN if all(name in BUILTIN for name in names) else registry()
    refs = []
    for name in names:
        if name not in known:
            hint = did_you_mean(name, list(known))
            raise UnknownFramework(f"unknown framework {name!r}{hint}. Expected one of: "
                                   f"{', '.join(sorted(known))}")
        refs.append(known[name])
    return refs


def load_class(target: str) -> type:
    module_name, _, class_name = target.partition(":")
    return getattr(importlib.import_module(module_name), class_name)  # type: ignore[no-any-return]
