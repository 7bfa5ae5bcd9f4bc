"""Errors every part of the kit reports, in a module that imports nothing heavy (the CLI
catches them before it has loaded numpy or jsonschema)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class SpecError:
    """``file:line: what is wrong; expected ...``"""

    file: str
    line: int
    message: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.message}"


class SpecErrors(Exception):
    def __init__(self, errors: Sequence[SpecError]) -> None:
        super().__init__("\n".join(str(e) for e in errors))
        self.errors = list(errors)


# what reading the content of a hand-edited results entry raises, once its keys have their
# types (``report.merge`` checks those): the reports then name the file and the case
UNREADABLE = (KeyError, TypeError, ValueError, AttributeError, IndexError)


def did_you_mean(word: object, choices: Sequence[object]) -> str:
    """`` (did you mean 'x'?)`` for the closest of ``choices`` to ``word``, or ``""``."""
    import difflib  # only when a message is written

    close = difflib.get_close_matches(str(word), [str(c) for c in choices], n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""
