"""Safe YAML loading that remembers the line of every mapping key and list item, so that
every complaint about a spec can say ``file:line``."""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

import yaml

from conformance.errors import SpecError, SpecErrors


class LineDict(dict):  # type: ignore[type-arg]
    """A mapping that also knows the 1-based line of itself and of each key."""

    line: int = 0
    key_lines: dict[Any, int]


class LineList(list):  # type: ignore[type-arg]
    line: int = 0
    item_lines: list[int]


# libyaml's parser when PyYAML was built with it (several times faster); both are safe
# loaders: they construct plain data only, never objects
_SafeBase: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _LineLoader(_SafeBase):  # type: ignore[misc,valid-type]
    """A safe loader (no object construction) that records lines."""


def _construct_mapping(loader: _LineLoader, node: yaml.MappingNode) -> LineDict:
    loader.flatten_mapping(node)
    result = LineDict()
    result.line = node.start_mark.line + 1
    result.key_lines = {}
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        if not isinstance(key, (str, int, float, bool)) and key is not None:
            raise yaml.constructor.ConstructorError(
                None, None, f"a {type(key).__name__} used as a key; keys must be plain names",
                key_node.start_mark)
        if key in result:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {key!r} (first on line {result.key_lines[key]})",
                key_node.start_mark)
        result[key] = loader.construct_object(value_node, deep=True)
        result.key_lines[key] = key_node.start_mark.line + 1
    return result


def _construct_sequence(loader: _LineLoader, node: yaml.SequenceNode) -> LineList:
    result = LineList(loader.construct_object(child, deep=True) for child in node.value)
    result.line = node.start_mark.line + 1
    result.item_lines = [child.start_mark.line + 1 for child in node.value]
    return result


# YAML 1.1 (PyYAML) reads 1e-5 and 1.0e3 as strings, as its float pattern demands a dot and a
# signed exponent; specs are full of such numbers, so accept the YAML 1.2 / JSON forms too.
# A fraction needs a digit: PyYAML's own pattern takes "._" for a float and then fails to
# convert it (found by tests/test_spec_fuzz.py).
_FLOAT = re.compile(r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
    |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
    |\.[0-9][0-9_]*(?:[eE][-+]?[0-9]+)?
    |[-+]?\.(?:inf|Inf|INF)
    |\.(?:nan|NaN|NAN))$""", re.VERBOSE)
_LineLoader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag != "tag:yaml.org,2002:float"]
    for first, resolvers in _SafeBase.yaml_implicit_resolvers.items()
}
_LineLoader.add_implicit_resolver("tag:yaml.org,2002:float", _FLOAT, list("-+0123456789."))
_LineLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)
_LineLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_SEQUENCE_TAG, _construct_sequence)


# Bounds checked before anything is built: a spec is a few levels of mappings and lists
# (a rank-5 literal tensor inside a case is about 10 deep), and a 4 MiB file holds at most
# about two million values without aliases. An alias repeats its anchor's whole subtree, so
# nine nested levels of ten aliases ("billion laughs") stand for 10**9 values in a few hundred
# bytes; the schema check and the case builder would walk every one of them.
MAX_DEPTH = 64
MAX_NODES = 1 << 22


class LimitExceeded(yaml.YAMLError):
    """The document is nested deeper, or expands to more values, than a spec can need."""

    def __init__(self, problem: str, expected: str, mark: Any) -> None:
        super().__init__(problem)
        self.problem = problem
        self.expected = expected
        self.problem_mark = mark


def load(text: str, bounded: bool = True) -> Any:
    """Parse YAML safely; raises ``yaml.YAMLError`` (with a ``problem_mark``) on bad input,
    ``LimitExceeded`` for a document nested deeper than ``MAX_DEPTH`` or expanding (aliases
    counted as the values they repeat) to more than ``MAX_NODES`` values. ``bounded=False``
    skips that scan, for a text that passed it before."""
    if bounded:
        check_bounds(text)
    return yaml.load(text, Loader=_LineLoader)


def check_bounds(text: str) -> None:
    """One pass over the parser's events, before any node or object is built.

    The size of a collection is 1 + the sizes of its items; an alias counts the size of the
    subtree its anchor names, so the expanded size is known without expanding anything. An
    alias inside its own anchor's subtree (a recursive document) is refused too: no spec
    value is infinite."""
    anchored: dict[str, int] = {}
    open_nodes: list[list[Any]] = []  # [anchor, size so far] of each collection being read
    for event in yaml.parse(text, Loader=_SafeBase):
        if isinstance(event, yaml.CollectionStartEvent):
            if len(open_nodes) >= MAX_DEPTH:
                raise LimitExceeded(f"YAML nested deeper than {MAX_DEPTH} levels",
                                    f"a spec nested at most {MAX_DEPTH} levels deep",
                                    event.start_mark)
            open_nodes.append([event.anchor, 0])
            continue
        if isinstance(event, yaml.CollectionEndEvent):
            anchor, size = open_nodes.pop()
            size += 1
        elif isinstance(event, yaml.ScalarEvent):
            anchor, size = event.anchor, 1
        elif isinstance(event, yaml.AliasEvent):
            if any(node[0] == event.anchor for node in open_nodes):
                raise LimitExceeded(f"alias *{event.anchor} inside its own anchor: the value "
                                    "contains itself", "a finite value", event.start_mark)
            anchor, size = None, anchored.get(event.anchor or "", 1)
        else:
            continue
        if anchor is not None:
            anchored[anchor] = size
        if open_nodes:
            open_nodes[-1][1] += size
            size = open_nodes[-1][1]
        if size > MAX_NODES:
            raise LimitExceeded(f"YAML document expands to more than {MAX_NODES} values "
                                "(an alias repeats everything its anchor holds)",
                                f"a spec of at most {MAX_NODES} values", event.start_mark)


def line_of(root: Any, path: Iterable[Any]) -> int:
    """The line of the deepest node along ``path`` (keys and indices) that has one."""
    line = getattr(root, "line", 1)
    node = root
    for part in path:
        if isinstance(node, LineDict) and part in node:
            line = node.key_lines.get(part, line)
            node = node[part]
        elif isinstance(node, LineList) and isinstance(part, int) and part < len(node):
            line = node.item_lines[part]
            node = node[part]
        else:
            break
    return line


def load_spec_text(text: str, file: str, bounded: bool = True) -> Any:
    """``load``, with every problem raised as ``SpecErrors``: ``file:line: what is wrong;
    expected ...``, never a traceback."""
    try:
        return load(text, bounded=bounded)
    except yaml.YAMLError as exc:
        raise SpecErrors([_error(file, text, exc)]) from None
    except RecursionError:  # a YAML library without a nesting limit of its own, deeper than ours
        raise SpecErrors([SpecError(file, 0, "YAML nested too deeply; expected a spec")]) from None


def _error(file: str, text: str, exc: yaml.YAMLError) -> SpecError:
    """The kit's own words for what is wrong, and the YAML library's words where it is the
    one that found the problem (they change between PyYAML releases; the line does not)."""
    mark = getattr(exc, "problem_mark", None)
    line = mark.line + 1 if mark is not None else 0
    where = _column_text(text, mark)
    problem = getattr(exc, "problem", None) or str(exc)
    if isinstance(exc, LimitExceeded):
        return SpecError(file, line, f"{problem}{where}; expected {exc.expected}")
    if isinstance(exc, yaml.constructor.ConstructorError):
        return SpecError(file, line, f"YAML content the kit does not read: {problem}{where}; "
                         "expected valid YAML of plain data (mappings, lists, strings, numbers; "
                         "no tags)")
    return SpecError(file, line, f"YAML syntax error: {problem}{where}; expected valid YAML")


def _column_text(text: str, mark: Any) -> str:
    """`` at column N ('c')``: the character the YAML parser stopped at."""
    if mark is None:
        return ""
    lines = text.splitlines()
    if mark.line >= len(lines) or mark.column >= len(lines[mark.line]):
        return f" at column {mark.column + 1}"
    return f" at column {mark.column + 1} ({lines[mark.line][mark.column]!r})"
