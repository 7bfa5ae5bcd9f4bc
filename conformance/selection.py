"""Which cases a run takes: ``file.yaml::case`` names one case of a file (as pytest's node ids
and the plugin's "reproduce:" lines do), and ``-k EXPR`` keeps the cases whose id matches a
keyword expression.

A keyword expression is pytest's ``-k`` grammar: words joined by ``and``, ``or``, ``not`` and
parentheses; a word matches a case when it is a substring of the case's id or equals one of
its areas, case-insensitively (``-k "momentum and not weight_0"``).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Sequence

from conformance.errors import did_you_mean
from conformance.model import Case

Matcher = Callable[[Case], bool]
_TOKEN = re.compile(r"\s*(\(|\)|[^\s()]+)")


class SelectionError(ValueError):
    """A ``::case`` or ``-k`` that cannot select: says what and what was expected."""


def split_path(raw: str) -> tuple[str, str | None]:
    """``specs/bn.yaml::rank2`` -> (``specs/bn.yaml``, ``rank2``); a plain path -> (path, None)."""
    path, sep, name = raw.partition("::")
    return (path, name) if sep else (raw, None)


def by_name(cases: Sequence[Case], path: str, name: str) -> list[Case]:
    """The case of the file ``path`` named ``name`` (its name, or its whole id)."""
    found = [c for c in cases if name in (c.name, c.id)]
    if not found:
        names = [c.name for c in cases]
        hint = did_you_mean(name, names)
        raise SelectionError(f"{path}::{name}: no case named {name!r} in {path}{hint}; expected one "
                             f"of: {', '.join(names) or 'none (the file has no cases)'}")
    return found


def keyword_matcher(expression: str) -> Matcher:
    """The predicate of a ``-k`` expression (grammar in the module docstring)."""
    tokens = _TOKEN.findall(expression)
    if not tokens:
        raise SelectionError(f"-k {expression!r}: empty; expected words joined by and, or, not")
    parser = _Parser(tokens, expression)
    matcher = parser.expression()
    if parser.position != len(tokens):
        raise SelectionError(f"-k {expression!r}: unexpected {tokens[parser.position]!r}; expected "
                             "and, or, or the end of the expression")
    return matcher


class _Parser:
    """Recursive descent: expression := term ('or' term)*; term := factor ('and' factor)*;
    factor := 'not' factor | '(' expression ')' | word."""

    def __init__(self, tokens: list[str], text: str) -> None:
        self.tokens, self.text, self.position = tokens, text, 0

    def _peek(self) -> str | None:
        return self.tokens[self.position] if self.position < len(self.tokens) else None

    def _take(self) -> str:
        token = self._peek()
        if token is None:
            raise SelectionError(f"-k {self.text!r}: ends too early; expected a word or '('")
        self.position += 1
        return token

    def expression(self) -> Matcher:
        return self._joined("or", self.term, any)

    def term(self) -> Matcher:
        return self._joined("and", self.factor, all)

    def _joined(self, word: str, operand: Callable[[], Matcher],
                combine: Callable[[Iterator[bool]], bool]) -> Matcher:
        """``operand (word operand)*``, the operands' results combined by ``any`` or ``all``."""
        parts = [operand()]
        while self._peek() == word:
            self._take()
            parts.append(operand())
        return parts[0] if len(parts) == 1 else (lambda c: combine(p(c) for p in parts))

    def factor(self) -> Matcher:
        token = self._take()
        if token == "not":
            inner = self.factor()
            return lambda c: not inner(c)
        if token == "(":
            inner = self.expression()
            if self._take() != ")":
                raise SelectionError(f"-k {self.text!r}: '(' without ')'; expected a closing ')'")
            return inner
        if token in ("and", "or", ")"):
            raise SelectionError(f"-k {self.text!r}: unexpected {token!r}; expected a word, 'not' or '('")
        word = token.lower()
        return lambda c: word in c.id.lower() or word in (a.lower() for a in c.areas)


def keep_matching(cases: list[Case], expression: str | None) -> list[Case]:
    """``cases`` that ``-k expression`` selects (all of them when there is none)."""
    if not expression:
        return cases
    matcher = keyword_matcher(expression)
    return [c for c in cases if matcher(c)]
