"""Load spec files into validated ``Case`` objects.

Every problem becomes a ``SpecError`` that says ``file:line: what is wrong; expected ...``.
Loading never raises anything else for anything a YAML file can contain.
"""

from __future__ import annotations

import difflib
import json
import math
from collections.abc import Iterable
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from conformance import (
    SPEC_VERSION,
    arrayfiles,
    consistency,
    inputs,
    spec_model,
    validated,
    yamlines,
)
from conformance.errors import SpecError, SpecErrors, did_you_mean
from conformance.model import (
    BN_QUANTITIES,
    DEFAULT_TOLERANCES,
    DROPOUT_QUANTITIES,
    BatchNormSpec,
    Case,
    DropoutSpec,
    LayerSpec,
    Step,
    Tolerance,
)

if TYPE_CHECKING:
    import jsonschema

MAX_SPEC_BYTES = 4 << 20
MAX_CASE_ELEMENTS = 1 << 25
FORWARD_ONLY = ("output", "grad_input", "grad_scale", "grad_shift")
DEFAULT_OBSERVE = {"batch_norm": ("output", "running_mean", "running_var"), "dropout": ("output",)}


@lru_cache(maxsize=1)
def schema() -> dict[str, Any]:
    """The published JSON Schema of spec format v1."""
    text = resources.files("conformance").joinpath("schema/spec-v1.json").read_text()
    return dict(json.loads(text))


def is_spec_text(text: str) -> bool:
    """Cheap test used by the pytest plugin: does this YAML claim to be a spec?"""
    return "conformance_spec:" in text


def discover(paths: Iterable[str | Path]) -> tuple[list[Path], list[SpecError]]:
    """Every ``*.yaml``/``*.yml`` file under ``paths``, sorted; a missing path is an error."""
    files: list[Path] = []
    errors: list[SpecError] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            files.extend(sorted(p for p in path.rglob("*") if p.suffix in (".yaml", ".yml")))
        elif path.is_file():
            files.append(path)
        else:
            errors.append(SpecError(str(path), 0, "no such file or folder; expected a spec "
                                    "file (.yaml) or a folder of them"))
    return files, errors


def load_paths(paths: Iterable[str | Path]) -> tuple[list[Case], list[SpecError]]:
    """Load every spec under ``paths``. Returns the good cases and all errors found."""
    files, errors = discover(paths)
    cases: list[Case] = []
    seen: dict[str, Case] = {}
    for file in files:
        try:
            loaded = load_file(file)
        except SpecErrors as exc:
            errors.extend(exc.errors)
            continue
        for case in loaded:
            if case.id in seen:
                first = seen[case.id]
                errors.append(SpecError(case.file, case.line, f"duplicate case id {case.id!r} "
                                        f"(first at {first.file}:{first.line}); expected unique ids"))
                continue
            seen[case.id] = case
            cases.append(case)
    return cases, errors


def case_id(path: Path, name: str) -> str:
    """Stable id: ``<folder>/<file stem>::<case name>``, e.g. ``batchnorm/running::rank4``
    (``<file stem>::<case name>`` for a spec given without a folder)."""
    folder = path.parent.name
    return f"{folder}/{path.stem}::{name}" if folder else f"{path.stem}::{name}"


def load_file(path: str | Path) -> list[Case]:
    path = Path(path)
    file = str(path)
    try:
        if path.stat().st_size > MAX_SPEC_BYTES:
            raise SpecErrors([SpecError(file, 0, f"file is {path.stat().st_size} bytes; "
                                        f"expected a spec under {MAX_SPEC_BYTES} bytes")])
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise SpecErrors([SpecError(file, 0, f"cannot read the file ({exc}); expected a "
                                    "readable UTF-8 YAML file")]) from None
    return load_text(text, file=file, path=path)


def load_text(text: str, file: str = "<string>", path: Path | None = None) -> list[Case]:
    """The cases of a spec's ``text``; ``file`` names it in messages, ``path`` is the spec
    file, whose folder the spec's file references (``{file: vectors.npz, key: x}``) are
    relative to; without ``path`` a file reference is an error."""
    folder = None if path is None else path.parent
    known = validated.passed_before(text, folder)
    doc = yamlines.load_spec_text(text, file, bounded=not known)
    if not isinstance(doc, dict):
        raise SpecErrors([SpecError(file, 1, "the file is not a mapping; expected a spec "
                                    f"starting with 'conformance_spec: {SPEC_VERSION}'")])
    if not known:
        errors = [SpecError(file, line, msg) for line, msg in _schema_errors(doc)]
        if errors:
            raise SpecErrors(errors)
        validated.remember_pass(text, folder, file_references(doc))
    builder = _CaseBuilder(doc, file, path or Path(file), folder)
    cases = builder.build_all()
    if builder.errors:
        raise SpecErrors(builder.errors)
    return cases


def file_references(doc: dict[str, Any]) -> list[str]:
    """The array files a schema-valid spec references (inputs' and expected values'
    ``file``), as written, sorted: what the validated-spec cache keys on besides the text."""
    found = set()
    for fields in [doc.get("defaults") or {}, *doc.get("cases", [])]:
        for desc in (fields.get("inputs") or {}).values():
            if "file" in desc:
                found.add(str(desc["file"]))
        for item in (fields.get("expect") or {}).get("values", []):
            if isinstance(item["value"], dict):
                found.add(str(item["value"]["file"]))
    return sorted(found)


def _schema_errors(doc: Any) -> list[tuple[int, str]]:
    import jsonschema  # its import alone takes 50 ms; a cached pass needs none of it

    validator = jsonschema.Draft202012Validator(schema())
    found = []
    for error in validator.iter_errors(doc):
        if error.validator in ("oneOf", "anyOf") and not isinstance(error.instance, dict) \
                and error.schema.get("type") == "object":
            continue  # the value is not a mapping at all: its type error says so
        error = _deepest(error)
        path = list(error.absolute_path)
        where = _path_text(path)
        line_path = path + _offending_key(error)
        found.append((yamlines.line_of(doc, line_path), f"{where}: {_describe(error)}"))
    # also catch values the schema's number checks let through
    found.extend(_non_finite(doc, []))
    return sorted(set(found))


def _offending_key(error: jsonschema.ValidationError) -> list[Any]:
    """For an unknown key, point at the key's own line rather than its mapping's."""
    if error.validator == "additionalProperties" and isinstance(error.instance, dict):
        allowed = error.schema.get("properties", {})
        return [k for k in error.instance if k not in allowed][:1]
    return []


def _deepest(error: jsonschema.ValidationError) -> jsonschema.ValidationError:
    """For anyOf/oneOf/allOf, the sub-error that went furthest into the document; where
    every alternative failed at the value itself, the anyOf error, described as a list of
    alternatives by ``_describe``."""
    while error.context:
        if error.validator == "anyOf" and all(e.absolute_path == error.absolute_path for e in error.context):
            return error
        error = max(error.context, key=lambda e: (len(e.absolute_path), -len(e.message)))
    return error


def _alternative(error: jsonschema.ValidationError) -> str:
    v, value = error.validator, error.validator_value
    if v == "type":
        return f"a {value}"
    if v == "const":
        return repr(value)
    if v == "enum":
        return "one of " + ", ".join(map(repr, value))
    bounds = {"minimum": "at least", "maximum": "at most", "exclusiveMinimum": "above",
              "exclusiveMaximum": "below"}
    if v in bounds:
        return f"a number {bounds[v]} {value}"
    return f"{v} {value!r}"


def _path_text(path: list[Any]) -> str:
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text or "spec"


_UPDATE_WEIGHT = ("a spec never uses a framework's momentum: its meaning differs between "
                  "frameworks. update_weight is the weight of the NEW batch statistic, "
                  "running <- (1 - w) * running + w * batch (PyTorch momentum=0.1 and Paddle/Keras "
                  "momentum=0.9 are both update_weight 0.1); native_momentum passes a value "
                  "UNTRANSLATED to the framework's own argument, only to probe what it means")
# A framework's own argument names, which a spec says neutrally: (the neutral key, why).
FRAMEWORK_WORDS: dict[str, tuple[str, str]] = {
    "momentum": ("update_weight", _UPDATE_WEIGHT),
    "decay": ("update_weight", _UPDATE_WEIGHT),
    "epsilon": ("eps", "the spec calls it eps: added to the variance"),
    "p": ("rate", "the spec calls it rate: the probability of DROPPING a unit"),
    "keep_prob": ("rate", "a spec gives rate, the probability of DROPPING a unit: rate = 1 - keep_prob"),
    "track_running_stats": ("running_stats", "the spec calls it running_stats"),
    "use_global_stats": ("frozen", "frozen: true normalises with, and does not update, the running statistics"),
}


def _describe(error: jsonschema.ValidationError) -> str:
    v, inst, sch = error.validator, error.instance, error.schema
    if v == "additionalProperties" and isinstance(inst, dict):
        allowed = sorted(sch.get("properties", {}))
        bad = [k for k in inst if k not in allowed]
        hints = []
        for key in bad:
            if str(key) in FRAMEWORK_WORDS and FRAMEWORK_WORDS[str(key)][0] in allowed:
                hints.append(f"{key!r} ({FRAMEWORK_WORDS[str(key)][1]})")
                continue
            close = difflib.get_close_matches(str(key), allowed, n=1)
            hints.append(f"{key!r}" + (f" (did you mean {close[0]!r}?)" if close else ""))
        return f"unknown key {', '.join(hints)}; expected one of {', '.join(allowed)}"
    if v == "anyOf":
        return f"got {inst!r}; expected " + " or ".join(_alternative(e) for e in error.context)
    if v == "enum":
        hint = did_you_mean(str(inst), [str(x) for x in error.validator_value])
        return f"got {inst!r}{hint}; expected one of {', '.join(map(repr, error.validator_value))}"
    if v == "const":
        return f"got {inst!r}; expected {error.validator_value!r}"
    if v == "type":
        return f"got {inst!r} ({type(inst).__name__}); expected {error.validator_value}"
    if v == "required":
        missing = [k for k in error.validator_value if not isinstance(inst, dict) or k not in inst]
        return f"missing key {', '.join(map(repr, missing))}; expected it to be given"
    if v == "pattern":
        return (f"got {inst!r}; expected lowercase letters, digits, '_', '.', '-' "
                f"(pattern {error.validator_value})")
    if v in ("oneOf", "minProperties", "maxProperties") and "train" in sch.get("properties", {}):
        return (f"got {dict(inst)!r}; expected exactly one of 'train: INPUT', 'eval: INPUT', "
                "'reset: running_stats' or 'rebuild: layer'")
    return f"{error.message}; expected {v} {error.validator_value!r}"


def _non_finite(node: Any, path: list[Any], line: int = 1) -> list[tuple[int, str]]:
    """NaN and infinity pass JSON Schema's number checks (every comparison with NaN is
    false), so they are refused here, at the line of the innermost key or item."""
    if isinstance(node, float) and not math.isfinite(node):
        return [(line, f"{_path_text(path)}: got {node}; expected a finite number")]
    children: Iterable[tuple[Any, Any]] = ()
    if isinstance(node, dict):
        children = node.items()
    elif isinstance(node, list):
        children = enumerate(node)
    found = []
    for key, child in children:
        found.extend(_non_finite(child, path + [key], yamlines.line_of(node, [key])))
    return found


class _CaseBuilder:
    """Turns a schema-valid document into cases, checking what a schema cannot: names that
    refer to inputs, shapes that agree, sizes within bounds."""

    def __init__(self, doc: dict[str, Any], file: str, path: Path, folder: Path | None = None) -> None:
        self.doc = doc
        self.file = file
        self.path = path
        self.folder = folder  # where file references point; None: a spec given as text
        self.errors: list[SpecError] = []
        self.loaded: dict[tuple[Path, str | None], np.ndarray] = {}  # each array file read once

    def fail(self, node: Any, key: Any, message: str) -> None:
        self.errors.append(SpecError(self.file, yamlines.line_of(node, [key]), message))

    def build_all(self) -> list[Case]:
        defaults = self.doc.get("defaults", {})
        cases: list[Case] = []
        names: dict[str, int] = {}
        for index, raw in enumerate(self.doc["cases"]):
            merged = yamlines.LineDict({**defaults, **raw})
            merged.line = getattr(raw, "line", 0)
            merged.key_lines = {**getattr(defaults, "key_lines", {}), **getattr(raw, "key_lines", {})}
            name = raw["name"]
            if name in names:
                self.fail(self.doc["cases"], index, f"duplicate case name {name!r} (first on "
                          f"line {names[name]}); expected unique names within a file")
                continue
            names[name] = merged.line
            case = self.build(merged, index)
            if case is not None:
                cases.append(case)
        return cases

    def build(self, raw: yamlines.LineDict, index: int) -> Case | None:
        where = f"cases[{index}] ({raw['name']})"
        known_errors = len(self.errors)
        what = "model" if "model" in raw else "layer"
        missing = [k for k in (what, "inputs", "steps") if k not in raw]
        if "model" in raw and "layer" in raw:
            self.fail(raw, "model", f"{where}: both layer and model; expected one of them")
            return None
        if missing:
            self.errors.append(SpecError(self.file, raw.line, f"{where}: missing "
                               f"{', '.join(missing)}; expected them in the case or in defaults"))
            return None
        dtype = raw.get("dtype", "float32")
        made = self.inputs(raw, where, dtype)
        if made is None:
            return None
        arrays, sources = made
        built = (self.model_program(raw, where, arrays, dtype) if what == "model"
                 else self.layer_program(raw, where, arrays))
        if built is None:
            return None
        layer, steps, shape_of = built
        literal = self.literal(raw, where, steps, shape_of)
        tol = DEFAULT_TOLERANCES[dtype]
        if "tolerance" in raw:
            tol = Tolerance(atol=raw["tolerance"].get("atol", tol.atol),
                            rtol=raw["tolerance"].get("rtol", tol.rtol))
        expect = raw.get("expect", {})
        case = Case(
            id=case_id(self.path, raw["name"]),
            name=raw["name"],
            file=self.file,
            line=raw.line,
            description=" ".join(str(raw.get("description", "")).split()),
            areas=tuple(raw.get("areas", ())),
            layer=layer,
            inputs=arrays,
            input_sources=sources,
            dtype=dtype,
            steps=tuple(steps),
            reference=dict(raw.get("reference", {})),
            literal=literal,
            expect_error=bool(expect.get("error", False)),
            measures=tuple(raw.get("measures", ())),
            mask_relations=self.masks(raw, where, steps),
            tolerance=tol,
            devices=tuple(raw.get("devices", ("cpu", "gpu"))),
            literal_match=self.literal_matches(raw, steps),
        )
        if len(self.errors) == known_errors:  # a case with problems already is not run
            self.check_literal(raw, where, case)
        return case

    def layer_program(self, raw: yamlines.LineDict, where: str, arrays: dict[str, np.ndarray]) -> Any:
        """A layer case's layer and steps, and the shape of each observation."""
        steps = self.steps(raw, where, arrays, raw["layer"]["kind"])
        if steps is None:
            return None
        first = next(s for s in steps if s.action == "forward")
        layer = self.layer(raw, where, arrays[first.input].shape, arrays, steps)
        if layer is None:
            return None

        def shape_of(quantity: str, step: Step) -> tuple[int, ...]:
            return _quantity_shape(quantity, arrays[step.input].shape if step.input else (), layer)
        return layer, steps, shape_of

    def model_program(self, raw: yamlines.LineDict, where: str, arrays: dict[str, np.ndarray],
                      dtype: str) -> Any:
        """A model case's model and steps (``conformance.spec_model``), and the shape of
        each observation."""
        default_observe = tuple(raw.get("observe", ("output",)))
        steps = [spec_model.step_of(self, raw["steps"], i, item, where, arrays, default_observe)
                 for i, item in enumerate(raw["steps"])]
        if any(s is None for s in steps):
            return None
        forward = [s for s in steps if s is not None and s.action == "forward"]
        if not forward:
            self.fail(raw, "steps", f"{where}: no step calls the model; expected at least one of "
                      f"{', '.join(spec_model.ENTRIES)}")
            return None
        builder = spec_model.ModelBuilder(self, where, dtype)
        made = builder.model(raw, arrays[forward[0].input].shape)
        if made is None:
            return None
        model, output_shape = made
        checked = spec_model.check_steps(self, raw, where, [s for s in steps if s is not None], model,
                                         builder.shapes, arrays)
        if checked is None:
            return None
        for i, step in enumerate(checked):
            if step.grad_output is not None and arrays[step.grad_output].shape != \
                    (arrays[step.input].shape[0], *output_shape[1:]):
                self.fail(raw["steps"], i, f"{where}: steps[{i}] grad_output {step.grad_output!r} has shape "
                          f"{arrays[step.grad_output].shape}; expected the model output's shape "
                          f"{(arrays[step.input].shape[0], *output_shape[1:])}")
                return None

        def shape_of(quantity: str, step: Step) -> tuple[int, ...]:
            batch = arrays[step.input].shape[0] if step.input else 0
            return spec_model.quantity_shape(quantity, model, builder.shapes, output_shape, batch)
        return model, checked, shape_of

    def file_of(self, desc: Any, label: str) -> arrayfiles.ArrayRef | None:
        """The checked file reference of a ``{file: ...}`` description (None otherwise, or
        when it is refused: the refusal is reported)."""
        if not isinstance(desc, dict) or "file" not in desc:
            return None
        opened = self.input_file(desc, label)
        return None if opened is None else opened[0]

    def check_literal(self, raw: yamlines.LineDict, where: str, case: Case) -> None:
        """Literal values must follow from the case's own parameters and conventions; the
        first one that does not is reported at its line, with what the values imply."""
        if not case.literal or case.expect_error or not consistency.checkable(case):
            return
        wrong = consistency.contradictions(case)
        if not wrong:
            return
        first = wrong[0]
        values = raw["expect"]["values"]
        index = next(i for i, item in enumerate(values)
                     if int(item["step"]) == first.step and item["quantity"] == first.quantity)
        implied = consistency.implied(case)
        lead = ("; " + "; ".join(implied)) if implied else ""
        self.fail(values, index, f"{where}: expect.values[{index}]: the literal {first.quantity} at step "
                  f"{first.step} is not what the reference gives under the case's own parameters and "
                  f"conventions ({consistency.describe(first)}){lead}; expected literal values that follow from "
                  "the layer's parameters and the case's reference: conventions (fix the parameters, "
                  "or state the conventions the values follow under reference:)")

    def literal_matches(self, raw: yamlines.LineDict, steps: list[Step]) -> dict[tuple[int, str], str]:
        """How each literal value of a random dropout pass is compared (``match:``): kept
        and elementwise for outputs and gradients, share and elementwise for masks."""
        values = raw.get("expect", {}).get("values", [])
        random = raw.get("layer", {}).get("kind") == "dropout" and (
            lambda step: step.action == "forward" and (step.mode == "train" or raw.get(
                "reference", {}).get("dropout.eval") == "active"))
        found = {}
        for i, item in enumerate(values):
            if "match" not in item or int(item["step"]) >= len(steps):
                continue
            step, quantity, match = steps[int(item["step"])], item["quantity"], str(item["match"])
            fits = ("share", "elementwise") if quantity == "mask" else ("kept", "elementwise")
            if not random or not random(step):
                self.fail(values, i, f"expect.values[{i}]: match: {match} applies to a random dropout "
                          "pass only; expected no match: for this step (its values compare elementwise)")
            elif match not in fits:
                self.fail(values, i, f"expect.values[{i}]: match: {match} does not apply to {quantity}; "
                          f"expected one of {', '.join(fits)}")
            else:
                found[(int(item["step"]), quantity)] = match
        return found

    def inputs(self, raw: yamlines.LineDict, where: str,
               dtype: str) -> tuple[dict[str, np.ndarray], dict[str, dict[str, Any]]] | None:
        """The case's input arrays, rounded to ``dtype``, and how each was made (for results
        files: a generator's recipe, or where literal values came from)."""
        described = raw["inputs"]
        files: dict[str, arrayfiles.ArrayRef] = {}
        total = 0
        for name, desc in described.items():
            if "file" in desc:
                opened = self.input_file(desc, f"{where}: input {name!r}")
                if opened is None:
                    return None
                files[name], shape = opened
                count = math.prod(shape)
            else:
                count = inputs.element_count(desc)
            total += count
            if count > inputs.MAX_ELEMENTS or total > MAX_CASE_ELEMENTS:
                node, key = (desc, "file") if name in files else (described, name)
                self.fail(node, key, f"{where}: input {name!r} has {count} values; expected "
                          f"at most {inputs.MAX_ELEMENTS} per input and {MAX_CASE_ELEMENTS} per case")
                return None
        arrays: dict[str, np.ndarray] = {}
        sources: dict[str, dict[str, Any]] = {}
        for name, desc in described.items():
            made = self.input_array(described, name, where, dtype, files.get(name))
            if made is None:
                return None
            arrays[name], sources[name] = made
            if not np.isfinite(arrays[name].astype(np.float64)).all():
                self.fail(described, name, f"{where}: input {name!r} has values that overflow "
                          f"{dtype} (largest finite {_largest(dtype):.4g}); expected finite values")
                return None
        return arrays, sources

    def input_array(self, described: Any, name: str, where: str, dtype: str,
                    ref: arrayfiles.ArrayRef | None) -> tuple[np.ndarray, dict[str, Any]] | None:
        """One input, rounded to ``dtype``, with its source: the generator's recipe, the
        spec (inline values) or the file and key."""
        desc = described[name]
        if ref is not None:
            values = self.array_values(desc, ref, f"{where}: input {name!r}")
            if values is None:
                return None
            return inputs.round_to_dtype(values, dtype), {"file": ref.file, "key": ref.key, "spec": self.file}
        try:
            array = inputs.generate(desc, dtype)
        except ValueError as exc:  # ragged literal lists
            self.fail(described, name, f"{where}: input {name!r} cannot be made ({exc}); "
                      "expected a rectangular nested list of numbers")
            return None
        except OverflowError as exc:  # an integer too large for a float (mean: 1e400 as digits)
            self.fail(described, name, f"{where}: input {name!r} cannot be made ({exc}); "
                      "expected numbers within float64's range")
            return None
        if "values" not in desc:
            return array, inputs.generator(desc)
        return array, ({"spec": self.file} if self.folder is not None else {})  # where long values stay

    def input_file(self, desc: Any, label: str) -> tuple[arrayfiles.ArrayRef, tuple[int, ...]] | None:
        """An input's ``{file, key, shape}``: the checked reference and the array's shape,
        read from its header; a ``shape`` given beside the file must be the file's."""
        opened = self.array_file(desc, label)
        if opened is None:
            return None
        ref, shape = opened
        if not 1 <= len(shape) <= 6 or min(shape) < 1:
            self.fail(desc, "key" if ref.key is not None else "file", f"{label}: {ref.label()} has "
                      f"shape {shape}; expected 1 to 6 axes of at least 1 value each")
            return None
        if "shape" in desc and tuple(int(n) for n in desc["shape"]) != shape:
            self.fail(desc, "shape", f"{label}: shape {list(desc['shape'])} is given but "
                      f"{ref.label()} has shape {list(shape)}; expected them to agree (or no shape)")
            return None
        return ref, shape

    def array_file(self, node: Any, label: str) -> tuple[arrayfiles.ArrayRef, tuple[int, ...]] | None:
        """A ``{file, key}`` reference checked (path, key, dtype) and the array's shape."""
        key = node.get("key")
        try:
            ref = arrayfiles.resolve(str(node["file"]), None if key is None else str(key), self.folder)
            shape, _ = arrayfiles.header(ref)
        except arrayfiles.ArrayFileError as exc:
            self.fail(node, exc.field if exc.field in node else "file", f"{label}: {exc.message}")
            return None
        return ref, shape

    def array_values(self, node: Any, ref: arrayfiles.ArrayRef, label: str) -> np.ndarray | None:
        """The referenced array as float64 (a copy; each file is read once per spec)."""
        cached = self.loaded.get((ref.path, ref.key))
        if cached is None:
            try:
                cached = self.loaded[ref.path, ref.key] = arrayfiles.load(ref)
            except arrayfiles.ArrayFileError as exc:
                self.fail(node, exc.field if exc.field in node else "file", f"{label}: {exc.message}")
                return None
        return np.array(cached)

    def steps(self, raw: yamlines.LineDict, where: str, arrays: dict[str, np.ndarray],
              kind: str) -> list[Step] | None:
        default_observe = tuple(raw.get("observe", DEFAULT_OBSERVE[kind]))
        steps, ok = [], True
        for i, item in enumerate(raw["steps"]):
            step = self.step(raw["steps"], i, item, where, arrays, kind, default_observe)
            ok = ok and step is not None
            if step is not None:
                steps.append(step)
        if ok and not any(s.action == "forward" for s in steps):
            self.fail(raw, "steps", f"{where}: no forward step; expected at least one "
                      "'train: INPUT' or 'eval: INPUT'")
            return None
        return steps if ok else None

    def step(self, steps: Any, i: int, item: dict[str, Any], where: str,
             arrays: dict[str, np.ndarray], kind: str,
             default_observe: tuple[str, ...]) -> Step | None:
        allowed = BN_QUANTITIES if kind == "batch_norm" else DROPOUT_QUANTITIES
        line = yamlines.line_of(steps, [i])
        here = f"{where}: steps[{i}]"
        model_only = [k for k in spec_model.MODEL_ONLY if k in item]
        if model_only:
            self.fail(steps, i, f"{here}: {model_only[0]} is a step of a model case; expected 'train', "
                      "'eval', 'reset' or 'rebuild' in a layer case (a model case has model: instead of layer:)")
            return None
        if "reset" in item or "rebuild" in item:
            action = "reset" if "reset" in item else "rebuild"
            extra = sorted(set(item) - {action, "observe"})
            if extra:
                self.fail(steps, i, f"{here}: {action} takes only 'observe', not {', '.join(extra)}")
                return None
            state = tuple(q for q in item.get("observe", default_observe) if q not in FORWARD_ONLY)
            if any(q in FORWARD_ONLY for q in item.get("observe", ())):
                self.fail(steps, i, f"{here}: a {action} step has no output or gradients to observe; "
                          f"expected some of {', '.join(q for q in allowed if q not in FORWARD_ONLY)}")
                return None
            return Step(action="reset" if action == "reset" else "rebuild", observe=state, line=line)
        mode = "train" if "train" in item else "eval"
        observe = tuple(item.get("observe", default_observe))
        grad = item.get("grad_output")
        for ref in (item[mode], grad):
            if ref is not None and ref not in arrays:
                self.fail(steps, i, f"{here} names input {ref!r}, which is not defined; expected "
                          f"one of {', '.join(sorted(arrays))}")
                return None
        bad = [q for q in observe if q not in allowed]
        if bad:
            self.fail(steps, i, f"{here} observes {', '.join(bad)}, which a {kind} layer does not "
                      f"have; expected some of {', '.join(allowed)}")
            return None
        if grad is not None and arrays[grad].shape != arrays[item[mode]].shape:
            self.fail(steps, i, f"{here} grad_output {grad!r} has shape {arrays[grad].shape}; "
                      f"expected the input's shape {arrays[item[mode]].shape}")
            return None
        context = item.get("context", "plain")
        if grad is not None and context in ("no_grad", "inference", "graph"):
            self.fail(steps, i, f"{here} asks for gradients in a {context} context; expected "
                      "grad_output only in a plain or compiled context")
            return None
        return Step(mode="train" if mode == "train" else "eval", input=item[mode], observe=observe,
                    grad_output=grad, line=line, context=context)

    def layer(self, raw: yamlines.LineDict, where: str, shape: tuple[int, ...],
              arrays: dict[str, np.ndarray], steps: list[Step]) -> LayerSpec | None:
        spec = raw["layer"]
        rank = len(shape)
        axis = 1 if spec.get("channel_axis", "first") == "first" else rank - 1
        for step in (s for s in steps if s.action == "forward"):
            other = arrays[step.input].shape
            if len(other) != rank or (rank > 1 and other[axis] != shape[axis]):
                self.fail(raw, "steps", f"{where}: input {step.input!r} has shape {other}; "
                          f"expected rank {rank} with {shape[axis] if rank > 1 else '?'} channels "
                          "like the first step's input")
                return None
        if spec["kind"] == "dropout":
            native = spec.get("native_rate")
            return DropoutSpec(rate=float(spec.get("rate", native)), rank=rank,
                               native_rate=None if native is None else float(native),
                               granularity=spec.get("granularity", "element"),
                               channel_axis=spec.get("channel_axis", "first"),
                               scaling=spec.get("scaling", "train"),
                               seed=None if spec.get("seed") is None else int(spec["seed"]))
        if not 2 <= rank <= 5:
            self.fail(raw, "layer", f"{where}: batch norm input has rank {rank}; expected 2 to 5")
            return None
        channels = shape[axis]
        per_channel = self.per_channel(spec, f"{where}: layer.", channels)
        if per_channel is None:
            return None
        return BatchNormSpec(
            rank=rank, num_features=channels,
            channel_axis=spec.get("channel_axis", "first"),
            update=spec.get("update", "ema"),
            update_weight=_default_or_float(spec.get("update_weight", 0.1)),
            eps=_default_or_float(spec.get("eps", 1e-5)),
            native_momentum=None if "native_momentum" not in spec else float(spec["native_momentum"]),
            affine=bool(spec.get("affine", True)),
            running_stats=bool(spec.get("running_stats", True)),
            frozen=bool(spec.get("frozen", False)),
            trainable=bool(spec.get("trainable", True)),
            **per_channel,
        )

    def per_channel(self, spec: Any, label: str, channels: int) -> dict[str, Any] | None:
        """A batch norm's initial values given per channel (``scale``, ``shift``,
        ``running_mean``, ``running_var``), each checked to have one value per channel."""
        found: dict[str, Any] = {}
        for key in ("scale", "shift", "running_mean", "running_var"):
            if key in spec:
                if len(spec[key]) != channels:
                    self.fail(spec, key, f"{label}{key} has {len(spec[key])} values; "
                              f"expected one per channel ({channels})")
                    return None
                found[key] = np.asarray(spec[key], dtype=np.float64)
        return found

    def literal(self, raw: yamlines.LineDict, where: str, steps: list[Step],
                shape_of: Any) -> dict[tuple[int, str], np.ndarray]:
        values = raw.get("expect", {}).get("values", [])
        literal = {}
        for i, item in enumerate(values):
            step = int(item["step"])  # JSON Schema's integer admits 1.0
            if step >= len(steps):
                self.fail(values, i, f"{where}: expect.values[{i}] refers to step {step}; "
                          f"expected a step index below {len(steps)}")
                continue
            if item["quantity"] not in steps[step].observe:
                self.fail(values, i, f"{where}: expect.values[{i}] gives {item['quantity']} at step "
                          f"{step}, which that step does not observe; expected one of "
                          f"{', '.join(steps[step].observe)}")
                continue
            shape = shape_of(item["quantity"], steps[step])
            value = self.literal_value(values, i, where, shape)
            if value is not None:
                literal[(step, item["quantity"])] = value
        return literal

    def literal_value(self, values: Any, i: int, where: str, shape: tuple[int, ...]) -> np.ndarray | None:
        """``expect.values[i].value`` as float64 of ``shape``: a nested list, or a
        ``{file, key}`` reference whose shape is checked before its values are read."""
        item, label = values[i], f"{where}: expect.values[{i}]"
        given = item["value"]
        if isinstance(given, dict):
            opened = self.array_file(given, label)
            if opened is None:
                return None
            ref, found = opened
            if found != shape:
                self.fail(given, "key" if ref.key is not None else "file", f"{label} {item['quantity']}: "
                          f"{ref.label()} has shape {found}; expected {shape}")
                return None
            return self.array_values(given, ref, label)
        try:
            value = np.asarray(given, dtype=np.float64)
        except ValueError:
            self.fail(values, i, f"{label} is ragged; expected a rectangular nested list of numbers")
            return None
        if value.shape != shape:
            self.fail(values, i, f"{label} {item['quantity']} has shape {value.shape}; expected {shape}")
            return None
        return value


    def masks(self, raw: yamlines.LineDict, where: str,
              steps: list[Step]) -> tuple[tuple[int, int, str], ...]:
        masks = raw.get("expect", {}).get("masks", {})
        relations = []
        for relation in ("same", "different"):
            for i, pair in enumerate(masks.get(relation, [])):
                a, b = int(pair[0]), int(pair[1])
                bad = [n for n in (a, b) if n >= len(steps) or steps[n].action != "forward"
                       or "output" not in steps[n].observe and "model" not in raw]
                if bad:
                    self.fail(masks, relation, f"{where}: expect.masks.{relation}[{i}] names step "
                              f"{bad[0]}; expected forward steps that observe output")
                    continue
                relations.append((a, b, relation))
        return tuple(relations)


def _quantity_shape(quantity: str, input_shape: tuple[int, ...], layer: LayerSpec) -> tuple[int, ...]:
    """Output, input gradient and mask have the input's shape, the counter is a scalar, and
    every other quantity has one value per channel."""
    if quantity in ("output", "grad_input", "mask"):
        return input_shape
    if quantity == "batch_count":
        return ()
    assert isinstance(layer, BatchNormSpec)
    return (layer.num_features,)


def _default_or_float(value: Any) -> float | None:
    """``"default"`` (the framework's own default) becomes None."""
    return None if value == "default" else float(value)


def _largest(dtype: str) -> float:
    return {"float64": 1.8e308, "float32": 3.4e38, "float16": 65504.0, "bfloat16": 3.39e38}[dtype]
