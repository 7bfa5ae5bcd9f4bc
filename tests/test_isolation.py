"""Importing the kit imports no framework; adapters share one interface."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest

from conformance.adapters import BUILTIN
from conformance.worker import ONE_FRAMEWORK_ENV

FRAMEWORK_MODULES = ("torch", "paddle", "tensorflow", "keras", "tf_keras", "jax", "flax", "onnx", "onnxruntime")
PACKAGE = Path(__file__).resolve().parents[1] / "conformance"


def test_importing_the_kit_cli_and_plugin_imports_no_framework() -> None:
    code = (
        "import sys\n"
        "import conformance, conformance.cli, conformance.pytest_plugin, conformance.runner\n"
        "import conformance.verdicts, conformance.spec, conformance.worker, conformance.adapters\n"
        "from conformance.cli import main\n"
        "main(['validate', 'specs'])\n"
        "main(['list', '--format', 'json', 'specs'])\n"
        f"print(sorted(m for m in {FRAMEWORK_MODULES!r} if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=PACKAGE.parent)
    assert out.stdout.strip().splitlines()[-1] == "[]"


def test_a_run_imports_frameworks_only_in_workers(tmp_path: Path) -> None:
    code = (
        "import sys\n"
        "from conformance.cli import main\n"
        f"main(['run', '--framework', 'numpy', '--out', {str(tmp_path)!r}, 'specs/dropout'])\n"
        f"print(sorted(m for m in {FRAMEWORK_MODULES!r} if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=PACKAGE.parent,
                         check=False)
    assert out.stdout.strip().splitlines()[-1] == "[]"


# what each adapter's worker may import: its framework, and for Keras its backend (TensorFlow
# itself loads Keras 3 as tf.keras)
OWN_MODULES = {"torch": {"torch"}, "paddle": {"paddle"}, "tf": {"tensorflow", "keras"},
               "tf_keras": {"tensorflow", "tf_keras", "keras"}, "keras-torch": {"keras", "torch"},
               "keras-jax": {"keras", "jax"}, "flax": {"flax", "jax"}, "flax-nnx": {"flax", "jax"},
               "onnxruntime": {"onnxruntime", "onnx"}, "numpy": set()}


@pytest.mark.parametrize("name", sorted(BUILTIN))
def test_an_adapter_imports_its_own_framework_only(name: str) -> None:
    """Some pairs of frameworks crash when imported together, and Keras 3 imports jax whenever
    it is installed: an adapter's module, imported alone, loads no other framework, whatever
    else is installed (meaningful where several are, as on a developer's machine)."""
    ref = BUILTIN[name]
    if not ref.installed():
        pytest.skip(f"{name} is not installed")
    module = ref.target.partition(":")[0]
    code = (f"import sys, importlib; importlib.import_module({module!r})\n"
            f"print(sorted(m for m in {FRAMEWORK_MODULES!r} if m in sys.modules))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=PACKAGE.parent,
                         env={**os.environ, ONE_FRAMEWORK_ENV: "1"}, check=True, timeout=300)  # as a worker
    loaded = set(ast.literal_eval(out.stdout.strip().splitlines()[-1]))
    assert loaded <= OWN_MODULES[name], f"{name} loads {sorted(loaded - OWN_MODULES[name])} too"
    assert set(OWN_MODULES) == set(BUILTIN)


def _adapter_class(path: Path) -> ast.ClassDef:
    tree = ast.parse(path.read_text())
    classes = [n for n in tree.body if isinstance(n, ast.ClassDef)
               and any(getattr(b, "id", "") == "Adapter" for b in n.bases)]
    assert len(classes) == 1, f"{path}: expected exactly one Adapter subclass"
    return classes[0]


@pytest.mark.parametrize("name", sorted(BUILTIN))
def test_every_adapter_has_the_same_interface(name: str) -> None:
    """Read with ast, so the check needs none of the frameworks installed."""
    module, _, cls_name = BUILTIN[name].target.partition(":")
    path = PACKAGE.parent / (module.replace(".", "/") + ".py")
    cls = _adapter_class(path)
    assert cls.name == cls_name
    methods = {n.name for n in cls.body if isinstance(n, ast.FunctionDef)}
    assert {"version", "devices", "build"} <= methods
    names = [n for n in cls.body if isinstance(n, (ast.Assign, ast.AnnAssign))
             and "name" in [getattr(t, "id", "") for t in getattr(n, "targets", [getattr(n, "target", None)])]]
    assert names and ast.literal_eval(names[0].value) == name  # registry key == adapter name
    build = next(n for n in cls.body if isinstance(n, ast.FunctionDef) and n.name == "build")
    assert [a.arg for a in build.args.args] == ["self", "layer", "dtype", "device"]


def test_the_run_command_spawns_workers_before_its_heavy_imports() -> None:
    """``conformance run`` spawns the workers right after parsing its arguments, so the
    frameworks' imports start at once; what it needs up to there must stay light."""
    code = (
        "import sys\n"
        "import conformance.cli, conformance.worker\n"
        "from conformance.adapters import resolve\n"
        "resolve('torch,paddle,tf,numpy')\n"
        "print(sorted(m for m in ('numpy', 'jsonschema', 'yaml', 'rich', 'importlib.metadata')"
        " if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=PACKAGE.parent)
    assert out.stdout.strip().splitlines()[-1] == "[]"


def test_a_worker_is_told_it_runs_one_framework_before_its_adapter_loads() -> None:
    """What lets an adapter keep the other frameworks out (conformance.adapters.keras_env)."""
    from conformance.adapters import from_target
    from conformance.worker import WorkerProcess

    assert not os.environ.get(ONE_FRAMEWORK_ENV), "the test process itself is no worker"
    worker = WorkerProcess(from_target("fake_adapters:ReportsItsProcess"))
    try:
        worker.start()
        assert worker.environment("cpu")["one_framework"] == "1"
    finally:
        worker.close()
