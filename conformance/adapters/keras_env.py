"""Choose Keras 3's backend before ``keras`` is imported, and keep the other frameworks out of
the process. Imports nothing heavy (no keras, no framework).

Keras 3 imports the frameworks it finds installed, whatever its backend: ``import keras``
imports jax (``keras.src.callbacks.orbax_checkpoint``), and serialising a layer's config
imports tensorflow (``keras.src.saving.serialization_lib`` asks ``module_utils.tensorflow``
whether it is available). A worker runs one framework only, so each Keras adapter marks the
frameworks of the other backends unimportable (a finder first in ``sys.meta_path`` refuses
them: an ``import`` raises ``ModuleNotFoundError``, exactly as when the package is not
installed, and Keras' optional imports fall back as they do then).
"""

from __future__ import annotations

import os
import sys
from importlib.abc import Loader
from importlib.machinery import ModuleSpec
from typing import Any

BACKEND_MODULES = {"tensorflow": "tensorflow", "torch": "torch", "jax": "jax"}


class _Refuse(Loader):
    """A ``sys.meta_path`` finder and loader that refuses the top-level modules it names: the
    spec it finds has no origin (``importlib.util.find_spec`` callers that only look, like
    torch._dynamo's trace rules, see no files), and loading it raises ``ModuleNotFoundError``."""

    def __init__(self, modules: set[str], backend: str) -> None:
        self.modules, self.backend = modules, backend

    def find_spec(self, name: str, path: Any = None, target: Any = None) -> ModuleSpec | None:
        return ModuleSpec(name, self) if name.split(".")[0] in self.modules else None

    def create_module(self, spec: ModuleSpec) -> Any:
        raise ModuleNotFoundError(
            f"No module named {spec.name!r} in this worker: Keras runs on {self.backend} here, "
            "and one worker imports one framework", name=spec.name)

    def exec_module(self, module: Any) -> None:  # never reached: create_module refuses
        raise ModuleNotFoundError(module.__name__)


def select_backend(backend: str) -> None:
    """``KERAS_BACKEND = backend`` and, in a worker (``CONFORMANCE_WORKER`` set: the process
    runs this one framework), every other backend's framework unimportable (one already
    imported is left alone: it is not this function's to undo). A process that is no worker
    (the kit's own tests, importing several adapters in turn) keeps the others importable."""
    os.environ["KERAS_BACKEND"] = backend
    if not os.environ.get("CONFORMANCE_WORKER"):  # conformance.worker.ONE_FRAMEWORK_ENV
        return
    refused = {module for name, module in BACKEND_MODULES.items()
               if name != backend and module not in sys.modules}
    if refused:
        sys.meta_path.insert(0, _Refuse(refused, backend))


def check_backend(found: str, wanted: str, adapter: str) -> None:
    """Fail with what happened when keras was imported earlier on another backend."""
    if found != wanted:
        raise ImportError(
            f"{adapter} needs Keras on its {wanted} backend, but keras runs on {found!r} in this "
            f"process (KERAS_BACKEND was set to {wanted} before the import; keras was imported "
            "earlier, with another backend: run this adapter in its own process)")
