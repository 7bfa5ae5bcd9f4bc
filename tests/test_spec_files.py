"""Literal arrays loaded from files beside a spec (conformance.arrayfiles through the spec
loader): ``{file: vectors.npz, key: x}`` / ``{file: x.npy}`` as inputs and as expected values.

Values keep their exact bits (then are rounded to the case's dtype like inline values), and
every refusal is a ``SpecError`` at the line of the offending key whose message says what was
expected."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import numpy as np
import pytest

from conformance import inputs, spec, validated
from conformance.adapters.numpy import NumpyAdapter
from conformance.cli import main
from conformance.errors import SpecError, SpecErrors
from conformance.inputs import round_to_dtype
from conformance.program import execute
from conformance.spec import load_file, load_text

# The trailing comments give each line's number. `x` is given in block style so that its
# `file` and `key` have lines of their own.
SPEC = """\
conformance_spec: 1                  # 1
cases:                               # 2
  - name: c                          # 3
    dtype: float64                   # 4
    layer: {kind: batch_norm}        # 5
    inputs:                          # 6
      x:                             # 7
        file: vectors.npz            # 8
        key: x                       # 9
      z: {file: z.npy}               # 10
    steps: [{train: x}, {train: z}]  # 11
"""
X = np.random.default_rng(7).normal(0.3, 1.7, (5, 3))  # 17 significant digits, all kept
Z = np.random.default_rng(8).normal(size=(4, 3))


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    """A spec folder holding vectors.npz (x, y) and z.npy."""
    np.savez(tmp_path / "vectors.npz", x=X, y=np.arange(3.0))
    np.save(tmp_path / "z.npy", Z)
    return tmp_path


def write(folder: Path, text: str, name: str = "s.yaml") -> Path:
    path = folder / name
    path.write_text(text)
    return path


def replaced(old: str, new: str, text: str = SPEC) -> str:
    """``text`` with the one line whose content starts with ``old`` replaced by ``new``."""
    lines = text.splitlines(keepends=True)
    hits = [i for i, line in enumerate(lines) if line.strip().startswith(old)]
    assert len(hits) == 1, (old, hits)
    lines[hits[0]] = new + "\n"
    return "".join(lines)


def the_error(path: Path, line: int, *parts: str) -> SpecError:
    """Loading ``path`` fails with one error, at ``line``, containing every part."""
    with pytest.raises(SpecErrors) as caught:
        load_file(path)
    errors = caught.value.errors
    assert len(errors) == 1, "\n".join(map(str, errors))
    error = errors[0]
    assert (error.file, error.line) == (str(path), line), str(error)
    for part in parts:
        assert part in error.message, f"{part!r} not in {error.message!r}"
    assert "; expected" in error.message, error.message
    return error


# --- inputs ------------------------------------------------------------------------------

def test_inputs_from_npz_and_npy_keep_every_float64_bit(folder: Path) -> None:
    (case,) = load_file(write(folder, SPEC))
    assert case.inputs["x"].dtype == np.float64 and case.inputs["z"].dtype == np.float64
    assert case.inputs["x"].tobytes() == X.tobytes() and case.inputs["z"].tobytes() == Z.tobytes()
    assert case.input_sources["x"] == {"file": "vectors.npz", "key": "x", "spec": str(folder / "s.yaml")}
    assert case.input_sources["z"]["file"] == "z.npy" and case.input_sources["z"]["key"] is None


def test_a_float32_case_rounds_file_values_exactly_as_inline_values(folder: Path) -> None:
    text = replaced("dtype:", "    dtype: float32")
    (from_file,) = load_file(write(folder, text))
    lines = text.splitlines()
    lines[6:9] = [f"      x: {{values: {json.dumps(X.tolist())}}}"]  # x's three lines, inline
    (from_yaml,) = load_text("\n".join(lines) + "\n", file="inline.yaml", path=folder / "inline.yaml")
    assert from_file.inputs["x"].dtype == np.float32
    assert from_file.inputs["x"].tobytes() == round_to_dtype(X, "float32").tobytes()
    assert from_file.inputs["x"].tobytes() == from_yaml.inputs["x"].tobytes()


@pytest.mark.parametrize("stored", [np.float32, np.float16, np.int32])
def test_other_real_dtypes_are_read_exactly_as_float64(folder: Path, stored: type) -> None:
    values = (X * 10).astype(stored)
    np.save(folder / "z.npy", values.reshape(5, 3)[:4])
    (case,) = load_file(write(folder, SPEC))
    assert case.inputs["z"].tobytes() == values.reshape(5, 3)[:4].astype(np.float64).tobytes()


def test_an_input_with_file_and_agreeing_shape_loads(folder: Path) -> None:
    (case,) = load_file(write(folder, replaced("z:", "      z: {file: z.npy, shape: [4, 3]}")))
    assert case.inputs["z"].shape == (4, 3)


def test_a_spec_given_as_text_resolves_files_relative_to_its_path(folder: Path) -> None:
    (case,) = load_text(SPEC, file="in-memory", path=folder / "any-name.yaml")
    assert case.inputs["x"].tobytes() == X.tobytes()


def test_a_spec_given_as_text_without_a_path_cannot_reference_files() -> None:
    with pytest.raises(SpecErrors) as caught:
        load_text(SPEC, file="in-memory")
    (error,) = caught.value.errors
    assert error.line == 8 and "spec given as text" in error.message
    assert "expected a spec loaded from a file" in error.message


# --- expected values -----------------------------------------------------------------------

def test_expected_values_from_npz_are_the_case_literal_values_in_a_run(folder: Path, tmp_path: Path) -> None:
    (plain,) = load_file(write(folder, SPEC))
    observed = execute(lambda: NumpyAdapter().build(plain.layer, plain.dtype, "cpu"), plain)
    mean = observed.steps[1]["running_mean"]
    np.savez(folder / "expected.npz", mean_step1=mean)
    text = SPEC + ("    expect:\n      values:\n"
                   "        - {step: 1, quantity: running_mean, value: {file: expected.npz, key: mean_step1}}\n")
    path = write(folder, text)
    (case,) = load_file(path)
    assert case.literal[(1, "running_mean")].tobytes() == mean.tobytes()
    out = tmp_path / "out"
    assert main(["run", "-q", "-f", "numpy", "--out", str(out), str(path)]) == 0
    (entry,) = json.loads((out / "numpy-cpu.json").read_text())["cases"]
    assert entry["verdict"] == "conforms", entry


def test_an_expected_value_of_the_wrong_shape_is_refused_before_it_is_read(folder: Path) -> None:
    text = SPEC + ("    expect:                           # 12\n      values:                         # 13\n"
                   "        - step: 0                     # 14\n          quantity: running_mean      # 15\n"
                   "          value: {file: vectors.npz, key: x}  # 16\n")
    the_error(write(folder, text), 16, "cases[0] (c): expect.values[0] running_mean",
              "vectors.npz['x'] has shape (5, 3); expected (3,)")


def test_an_expected_value_naming_a_missing_key_is_refused(folder: Path) -> None:
    text = SPEC + "    expect:\n      values: [{step: 0, quantity: running_mean, value: {file: vectors.npz, key: yy}}]\n"
    the_error(write(folder, text), 13, "expect.values[0]", "has no array 'yy' (did you mean 'y'?)",
              "expected one of 'x', 'y'")


# --- refusals, each at its key's line --------------------------------------------------------

@pytest.mark.parametrize(("line", "new", "at", "parts"), [
    (8, "        file: /etc/vectors.npz", 8, ["is an absolute path", "expected a path relative to the spec's folder"]),
    (8, "        file: ../vectors.npz", 8, ["has a '..' component", "expected a path inside the spec's folder"]),
    (8, "        file: sub/../../vectors.npz", 8, ["has a '..' component"]),
    (8, "        file: missing.npz", 8, ["file 'missing.npz' does not exist", "expected a file beside the spec"]),
    (8, "        file: vectors.csv", 8, ["is not an .npy or .npz file", "expected a path ending in .npy"]),
    (9, "        key: xx", 9, ["has no array 'xx' (did you mean 'x'?)", "expected one of 'x', 'y'"]),
    (9, "        shape: [5, 3]", 8, ["is an .npz archive and no key is given", "expected 'key: NAME'"]),
    (10, "      z: {file: z.npy, key: z}", 10, ["an .npy file holding one array", "expected no key"]),
    (10, "      z: {file: z.npy, shape: [3, 4]}", 10,
     ["shape [3, 4] is given but z.npy has shape [4, 3]", "expected them to agree"]),
])
def test_bad_references_are_refused_at_their_line(folder: Path, line: int, new: str, at: int,
                                                   parts: list[str]) -> None:
    lines = SPEC.splitlines()
    lines[line - 1] = new
    the_error(write(folder, "\n".join(lines) + "\n"), at, "cases[0] (c): input ", *parts)


def test_a_link_that_leaves_the_folder_is_refused(folder: Path, tmp_path_factory: pytest.TempPathFactory) -> None:
    outside = tmp_path_factory.mktemp("outside") / "z.npy"
    np.save(outside, Z)
    (folder / "z.npy").unlink()
    os.symlink(outside, folder / "z.npy")
    the_error(write(folder, SPEC), 10, "input 'z': file 'z.npy' is a link to", "outside the spec's folder",
              "expected a file inside the spec's folder")


def test_a_link_inside_the_folder_is_followed(folder: Path) -> None:
    (folder / "data").mkdir()
    os.replace(folder / "z.npy", folder / "data" / "z.npy")
    os.symlink(folder / "data" / "z.npy", folder / "z.npy")
    (case,) = load_file(write(folder, SPEC))
    assert case.inputs["z"].tobytes() == Z.tobytes()


@pytest.mark.parametrize(("array", "parts"), [
    (np.array([[1.0, 2.0, 3.0]] * 4, dtype=object), ["z.npy has dtype object", "expected real numbers"]),
    (Z.astype(np.complex128), ["has dtype complex128", "expected real numbers"]),
    (np.full((4, 3), "a"), ["has dtype <U1", "expected real numbers"]),
    (Z > 0, ["has dtype bool", "expected real numbers"]),
    (np.where(Z > 1, np.nan, Z), ["non-finite value(s)", "expected finite numbers"]),
    (np.where(np.arange(12).reshape(4, 3) % 5 == 4, -np.inf, Z),
     ["has 2 non-finite value(s) (the first, -inf, at index [1, 1])", "expected finite numbers"]),
    (np.float64(3.0), ["has shape ()", "expected 1 to 6 axes of at least 1 value each"]),
    (np.zeros((4, 0)), ["has shape (4, 0)", "expected 1 to 6 axes"]),
])
def test_arrays_that_are_not_finite_real_tensors_are_refused(folder: Path, array: np.ndarray,
                                                              parts: list[str]) -> None:
    np.save(folder / "z.npy", array, allow_pickle=True)  # an object array is pickled
    the_error(write(folder, SPEC), 10, "input 'z': ", *parts)


def test_a_non_finite_value_in_an_npz_is_refused_at_its_key(folder: Path) -> None:
    np.savez(folder / "vectors.npz", x=np.where(X > 0.5, np.nan, X), y=np.arange(3.0))
    the_error(write(folder, SPEC), 9, "input 'x': vectors.npz['x'] has", "non-finite", "expected finite numbers")


@pytest.mark.parametrize(("content", "part"), [
    (b"not an array at all", "cannot be read as an .npy array"),
    (b"", "cannot be read as an .npy array"),
])
def test_a_file_that_is_not_an_array_is_refused(folder: Path, content: bytes, part: str) -> None:
    (folder / "z.npy").write_bytes(content)
    the_error(write(folder, SPEC), 10, part, "expected a file written by numpy.save")


def test_a_truncated_array_is_refused(folder: Path) -> None:
    data = (folder / "z.npy").read_bytes()
    (folder / "z.npy").write_bytes(data[:-8])
    the_error(write(folder, SPEC), 10, "z.npy cannot be read", "expected a file written by numpy.save")


def test_a_file_that_is_not_an_archive_is_refused(folder: Path) -> None:
    (folder / "vectors.npz").write_bytes(b"PK but not a zip")
    the_error(write(folder, SPEC), 8, "cannot be read as an .npz archive", "expected a file written by numpy.savez")


def test_a_folder_is_not_an_array_file(folder: Path) -> None:
    (folder / "z.npy").unlink()
    (folder / "z.npy").mkdir()
    the_error(write(folder, SPEC), 10, "is not a regular file", "expected an .npy or .npz file")


def test_arrays_over_the_size_bounds_are_refused_from_the_header(folder: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(inputs, "MAX_ELEMENTS", 14)  # x has 15 values
    monkeypatch.setattr(spec.arrayfiles, "load", _never_read)  # the header is enough
    the_error(write(folder, SPEC), 8, "input 'x' has 15 values", "expected at most 14 per input")
    monkeypatch.setattr(inputs, "MAX_ELEMENTS", 100)
    monkeypatch.setattr(spec, "MAX_CASE_ELEMENTS", 20)  # x and z: 27
    the_error(write(folder, SPEC), 10, "input 'z' has 12 values", "and 20 per case")


def _never_read(ref: object) -> np.ndarray:
    raise AssertionError("an array over the bound was read")


def test_validate_says_file_line_and_exits_2(folder: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(folder, replaced("key: x", "        key: nope"))
    assert main(["validate", str(path)]) == 2
    out, err = capsys.readouterr()
    assert out == "" and "Traceback" not in err
    assert re.search(rf"^{re.escape(str(path))}:9: cases\[0\] \(c\): input 'x': file 'vectors.npz' has no "
                     r"array 'nope'; expected one of 'x', 'y'$", err, re.MULTILINE), err


@pytest.mark.parametrize(("new", "line", "part"), [
    ("      z: {file: z.npy, values: [1.0]}", 10, "cases[0].inputs.z"),
    ("      z: {file: 3}", 10, "cases[0].inputs.z"),
])
def test_malformed_references_are_schema_errors(folder: Path, new: str, line: int, part: str) -> None:
    the_error(write(folder, replaced("z:", new)), line, part)


# --- the validated-spec cache ---------------------------------------------------------------

def test_the_cache_keys_on_the_referenced_files_contents(folder: Path, tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CONFORMANCE_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("CONFORMANCE_NO_CACHE", raising=False)
    path = write(folder, SPEC)
    assert spec.file_references(_doc(SPEC)) == ["vectors.npz", "z.npy"]
    load_file(path)
    assert validated.passed_before(SPEC, folder)
    assert not validated.passed_before(SPEC)  # no folder: the files cannot be checked
    np.save(folder / "z.npy", Z + 1.0)  # same shape and dtype, other values
    assert not validated.passed_before(SPEC, folder)
    (case,) = load_file(path)  # checked again, and remembered with the new contents
    assert case.inputs["z"].tobytes() == (Z + 1.0).tobytes()
    assert validated.passed_before(SPEC, folder)
    (folder / "vectors.npz").unlink()
    assert not validated.passed_before(SPEC, folder)
    the_error(path, 8, "file 'vectors.npz' does not exist")


def _doc(text: str) -> dict:
    from conformance import yamlines

    loaded = yamlines.load(text)
    assert isinstance(loaded, dict)
    return loaded
