"""Translate a BatchNorm or Dropout construction between PyTorch, Paddle and Keras.

    >>> t = translate("torch.nn.BatchNorm2d(64, momentum=0.1, eps=1e-5)", target="paddle")
    >>> t.arguments
    ('paddle.nn.BatchNorm2D', [64], {'momentum': 0.9, 'epsilon': 1e-05, 'data_format': 'NCHW'})

Source code -> ``parse`` (ast, no eval) -> ``to_neutral`` (the kit's neutral layer) ->
``emit`` (the report's snippet modules write the target's code).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from conformance.port.catalog import FRAMEWORKS, LABEL, canonical_framework
from conformance.port.emit import arguments, construction, emit
from conformance.port.neutral import Note, Ported, describe
from conformance.port.parse import PortError, parse
from conformance.port.sources import to_neutral

LEVELS = {"translated": "Arguments", "assumed": "Assumed", "ignored": "Not translated",
          "no_equivalent": "No equivalent"}


@dataclass
class Translation:
    """``ported`` (the source in neutral terms) written for ``target``: its code and the
    notes on every argument that needs one."""

    ported: Ported
    target: str
    code: list[str]
    notes: list[Note]
    single_call: bool = True

    @property
    def construction(self) -> str:
        """The target's construction (or functional call) as source text; empty when the
        target needs a recipe of several statements (Keras' functional batch norm)."""
        if not self.single_call:
            return ""
        try:
            return construction(self.code)
        except ValueError:
            return ""

    @property
    def arguments(self) -> tuple[str, list[Any], dict[str, Any]]:
        """``(callee, positional, keywords)``: the translated parameters as data."""
        if not self.construction:
            raise PortError(f"the {LABEL[self.target]} translation is a recipe of several statements, "
                            "not one call:\n" + "\n".join(self.code))
        return arguments(self.construction)

    @property
    def exact(self) -> bool:
        """False when some argument has no equivalent in the target."""
        return not any(n.level == "no_equivalent" for n in self.notes)

    def text(self) -> str:
        source = self.ported.call
        lines = [f"# {LABEL[source.framework]}: {source.source}",
                 f"# neutral: {describe(self.ported)}",
                 f"# {LABEL[self.target]}:", *self.code]
        for level, title in LEVELS.items():
            chosen = [n for n in self.notes if n.level == level]
            if not chosen:
                continue
            where = f" in {LABEL[self.target]}" if level == "no_equivalent" else ""
            lines += ["", f"{title}{where}:"]
            for note in chosen:
                lines.append(f"  - {note.argument}: {note.text}")
                lines += [f"        {r}" for r in note.recipe]
        return "\n".join(lines)


def check_framework(name: str, option: str) -> str:
    import difflib

    found = canonical_framework(name)
    if found is None:
        close = difflib.get_close_matches(name, [*FRAMEWORKS, "keras"], n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise PortError(f"{option} {name!r}: unknown framework{hint} Expected one of: {', '.join(FRAMEWORKS)}")
    return found


def translate(expression: str, source: str | None = None, target: str = "paddle", rank: int | None = None,
              features: int | None = None) -> Translation:
    """``expression`` (source code of one construction or call, in ``source``; inferred
    from the module path when None) translated for ``target``."""
    return translate_ported(port(expression, source, rank, features), target)


def port(expression: str, source: str | None = None, rank: int | None = None,
         features: int | None = None) -> Ported:
    """The neutral form of ``expression``."""
    framework = None if source is None else check_framework(source, "--from")
    return to_neutral(parse(expression, framework), rank, features)


def translate_ported(ported: Ported, target: str) -> Translation:
    target = check_framework(target, "--to")
    emitted = emit(ported, target)
    return Translation(ported, target, emitted.code, [*ported.notes, *emitted.notes], emitted.single_call)


def translate_params(source: str, target: str, name: str, *args: Any, rank: int | None = None,
                     features: int | None = None, **kwargs: Any) -> Translation:
    """The same from Python values: ``translate_params("torch", "tf", "BatchNorm1d", 32,
    momentum=0.01)``."""
    written = [repr(a) for a in args] + [f"{k}={v!r}" for k, v in kwargs.items()]
    return translate(f"{name}({', '.join(written)})", source, target, rank, features)
