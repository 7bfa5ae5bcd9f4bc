"""Literal arrays that a spec loads from a file beside it, instead of writing them out as
YAML lists: ``{file: vectors.npz, key: x}`` (one named array of an ``.npz`` archive) or
``{file: x.npy}`` (the one array of an ``.npy`` file). The values keep their exact bits.

What a reference may name is bounded like the rest of a spec: a path relative to the spec's
folder that stays inside it (no absolute path, no ``..``, no symbolic link that leads out), a
regular file that exists, an array of real numbers (integers or floats up to 64 bits, never
pickled objects: ``np.load(..., allow_pickle=False)``) with finite values. The shape and the
dtype are read from the array's header before its data, so a size bound is checked before
anything large is read. Every refusal is an ``ArrayFileError`` naming the reference's key
(``file`` or ``key``) it is about, which the spec loader turns into ``file:line: ...``.
"""

from __future__ import annotations

import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import IO, Any

import numpy as np

from conformance.errors import did_you_mean

SUFFIXES = (".npy", ".npz")
_INTEGER_KINDS = "iu"  # exact in float64 up to 2**53, as YAML integers are


class ArrayFileError(ValueError):
    """A refused file reference: ``message`` is ``what is wrong; expected ...``, ``field``
    the reference's key it is about (``file``, ``key`` or ``shape``)."""

    def __init__(self, message: str, field: str = "file") -> None:
        super().__init__(message)
        self.message = message
        self.field = field


@dataclass(frozen=True)
class ArrayRef:
    """A checked reference: ``file`` as the spec writes it (relative to the spec's folder),
    ``key`` the array's name in an ``.npz`` (None for an ``.npy``), ``path`` the file."""

    file: str
    key: str | None
    path: Path

    def label(self) -> str:
        return f"{self.file}[{self.key!r}]" if self.key is not None else self.file


def resolve(file: str, key: str | None, folder: Path | None) -> ArrayRef:
    """Check ``file`` (and ``key``) as a reference from a spec in ``folder``; None for a
    spec given as text with no file behind it."""
    if folder is None:
        raise ArrayFileError(f"file {file!r} is referenced by a spec given as text; expected a spec "
                             "loaded from a file (a file reference is relative to the spec's folder)")
    _check_relative(file)
    suffix = PurePosixPath(file).suffix.lower()
    if suffix not in SUFFIXES:
        raise ArrayFileError(f"file {file!r} is not an .npy or .npz file; expected a path ending "
                             "in .npy (one array) or .npz (named arrays)")
    path = _inside(folder, file)
    if suffix == ".npz" and key is None:
        raise ArrayFileError(f"file {file!r} is an .npz archive and no key is given; expected "
                             "'key: NAME', the name of one of its arrays")
    if suffix == ".npy" and key is not None:
        raise ArrayFileError(f"key {key!r} is given for {file!r}, an .npy file holding one array; "
                             "expected no key (or an .npz archive)", field="key")
    return ArrayRef(file=file, key=key, path=path)


def _check_relative(file: str) -> None:
    """Refuse absolute paths and ``..`` components, however the path is spelled."""
    posix, windows = PurePosixPath(file), PureWindowsPath(file)
    if posix.is_absolute() or windows.is_absolute() or windows.drive:
        raise ArrayFileError(f"file {file!r} is an absolute path; expected a path relative to "
                             "the spec's folder")
    if ".." in posix.parts or ".." in windows.parts:
        raise ArrayFileError(f"file {file!r} has a '..' component; expected a path inside the "
                             "spec's folder")


def _inside(folder: Path, file: str) -> Path:
    """``folder/file``, which must exist, be a regular file and, links followed, lie inside
    ``folder``."""
    path = folder / file
    try:
        real, base = path.resolve(strict=True), folder.resolve(strict=True)
    except (OSError, RuntimeError, ValueError):  # missing, a loop of links, a NUL in the name
        raise ArrayFileError(f"file {file!r} does not exist (looked for {path}); expected a "
                             "file beside the spec") from None
    if not real.is_relative_to(base):
        raise ArrayFileError(f"file {file!r} is a link to {real}, outside the spec's folder; "
                             "expected a file inside the spec's folder") from None
    if not real.is_file():
        raise ArrayFileError(f"file {file!r} is not a regular file; expected an .npy or .npz file")
    return path


def header(ref: ArrayRef) -> tuple[tuple[int, ...], np.dtype[Any]]:
    """The array's shape and dtype, read from its header only; the dtype is checked."""
    try:
        if ref.key is None:
            with open(ref.path, "rb") as stream:
                shape, dtype = _read_header(stream)
        else:
            with zipfile.ZipFile(ref.path) as archive, archive.open(_member(archive, ref)) as stream:
                shape, dtype = _read_header(stream)
    except ArrayFileError:
        raise
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, NotImplementedError) as exc:
        kind, writer = ("an .npy array", "numpy.save") if ref.key is None else ("an .npz archive", "numpy.savez")
        raise ArrayFileError(f"file {ref.file!r} cannot be read as {kind} ({type(exc).__name__}: "
                             f"{exc}); expected a file written by {writer}") from None
    _check_dtype(ref, dtype)
    return shape, dtype


def _member(archive: zipfile.ZipFile, ref: ArrayRef) -> str:
    """The archive member holding ``ref.key`` (``numpy.savez`` adds ``.npy``)."""
    names = archive.namelist()
    for member in (f"{ref.key}.npy", str(ref.key)):
        if member in names:
            return member
    keys = sorted(n.removesuffix(".npy") for n in names)
    hint = did_you_mean(str(ref.key), keys)
    raise ArrayFileError(f"file {ref.file!r} has no array {ref.key!r}{hint}; expected one of "
                         f"{', '.join(map(repr, keys)) or 'its arrays (it holds none)'}", field="key")


def _read_header(stream: IO[bytes]) -> tuple[tuple[int, ...], np.dtype[Any]]:
    version = np.lib.format.read_magic(stream)
    if version == (1, 0):
        shape, _, dtype = np.lib.format.read_array_header_1_0(stream)
    elif version == (2, 0):
        shape, _, dtype = np.lib.format.read_array_header_2_0(stream)
    else:  # 3.0 only adds UTF-8 field names, i.e. structured arrays
        raise ValueError(f".npy format version {version[0]}.{version[1]}")
    return tuple(int(n) for n in shape), np.dtype(dtype)


def _check_dtype(ref: ArrayRef, dtype: np.dtype[Any]) -> None:
    """Real numbers only: floats of at most 64 bits, integers; no bool, complex, strings,
    dates, structured records or (pickled) objects."""
    if (dtype.kind == "f" and dtype.itemsize <= 8) or dtype.kind in _INTEGER_KINDS:
        return
    raise ArrayFileError(f"{ref.label()} has dtype {dtype}; expected real numbers (float16, "
                         "float32, float64 or an integer dtype)", field="key" if ref.key else "file")


def load(ref: ArrayRef) -> np.ndarray:
    """The array's values as float64 (exact for every dtype ``header`` accepts, integers up
    to 2**53), refused if any is NaN or infinite."""
    try:
        with open(ref.path, "rb") as stream:
            loaded = np.load(stream, allow_pickle=False)
            if ref.key is not None:
                with loaded:
                    loaded = loaded[ref.key]
            values = np.asarray(loaded, dtype=np.float64)
    except (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile) as exc:
        writer = "numpy.save" if ref.key is None else "numpy.savez"
        raise ArrayFileError(f"{ref.label()} cannot be read ({type(exc).__name__}: {exc}); "
                             f"expected a file written by {writer}") from None
    bad = ~np.isfinite(values)
    if bad.any():
        first = tuple(int(i) for i in np.argwhere(bad)[0])
        raise ArrayFileError(f"{ref.label()} has {int(bad.sum())} non-finite value(s) (the first, "
                             f"{values[first]}, at index {list(first)}); expected finite numbers",
                             field="key" if ref.key else "file")
    return values
