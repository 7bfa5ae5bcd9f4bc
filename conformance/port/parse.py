"""Read a construction such as ``torch.nn.BatchNorm2d(64, momentum=0.1)`` with ``ast``:
never evaluated, only literals are accepted as argument values.

The result binds every argument to its parameter (positional ones in signature order), so
the translation sees exactly what the framework would.
"""

from __future__ import annotations

import ast
import difflib
from dataclasses import dataclass, field
from typing import Any

from conformance.port.catalog import (
    FRAMEWORKS,
    LABEL,
    REQUIRED,
    TF_NN,
    Entry,
    Param,
    entries,
)

ROOTS = {"torch": "torch", "paddle": "paddle", "tf": "tf", "keras": "tf", "tensorflow": "tf"}
DTYPE_NAMES = ("float16", "bfloat16", "float32", "float64")


class PortError(ValueError):
    """Bad input for the porter: the message says what was expected (exit code 2)."""


@dataclass
class Call:
    """A parsed construction or function call, every argument bound to its parameter."""

    entry: Entry
    values: dict[str, Any]  # parameter -> value (given, or the signature's default)
    given: set[str] = field(default_factory=set)  # the parameters the source sets
    texts: dict[str, str] = field(default_factory=dict)  # parameter -> source text as written
    source: str = ""

    @property
    def framework(self) -> str:
        return self.entry.framework

    def value(self, name: str) -> Any:
        return self.values.get(name)

    def written(self, name: str) -> str:
        """``name=text`` as the source wrote it, or ``name`` (default) when it was omitted."""
        return f"{name}={self.texts[name]}" if name in self.texts else f"{name} (default {self.values[name]!r})"


def parse(source: str, framework: str | None = None) -> Call:
    """The call in ``source`` (an expression, or an assignment ``bn = nn.BatchNorm2d(64)``)
    bound to the catalog entry of ``framework`` (inferred from the module path when None)."""
    node = _call_node(source)
    dotted = _dotted(node.func)
    if dotted is None:
        raise PortError(f"{ast.unparse(node.func)!r} is not a class or function name; expected e.g. "
                        "torch.nn.BatchNorm2d(64)")
    *prefix, name = dotted
    framework = _framework_of(prefix, name, framework)
    entry = _entry(framework, prefix, name)
    return _bind(entry, node, source.strip())


def _call_node(source: str) -> ast.Call:
    try:
        tree = ast.parse(source.strip(), mode="exec")
    except SyntaxError as exc:
        raise PortError(f"cannot parse {source!r}: {exc.msg} (column {exc.offset}); expected one call "
                        "such as BatchNorm2d(64, momentum=0.1)") from None
    if len(tree.body) != 1:
        raise PortError(f"expected one call, got {len(tree.body)} statements in {source!r}")
    stmt = tree.body[0]
    value = stmt.value if isinstance(stmt, (ast.Expr, ast.Assign, ast.AnnAssign)) else None
    if not isinstance(value, ast.Call):
        raise PortError(f"expected a call such as BatchNorm2d(64, momentum=0.1), got {source!r}")
    return value


def _dotted(node: ast.expr) -> list[str] | None:
    if isinstance(node, ast.Name):
        return [node.id]
    if isinstance(node, ast.Attribute):
        inner = _dotted(node.value)
        return None if inner is None else [*inner, node.attr]
    return None


def _framework_of(prefix: list[str], name: str, given: str | None) -> str:
    root = ROOTS.get(prefix[0]) if prefix else None
    if given is not None and root is not None and root != given:
        raise PortError(f"{'.'.join([*prefix, name])} is {LABEL[root]} code, but --from says "
                        f"{given}; use --from {root}")
    if given is not None:
        return given
    if root is not None:
        return root
    owners = [fw for fw in FRAMEWORKS if name in entries(fw)]
    if len(owners) == 1:
        return owners[0]
    if owners:
        raise PortError(f"{name} exists in {', '.join(owners)}: say which with --from "
                        f"({' or '.join(owners)}), or write the module path (torch.nn.{name})")
    raise PortError(_unknown(name, None))


def _entry(framework: str, prefix: list[str], name: str) -> Entry:
    if prefix[-2:] == ["tf", "nn"]:
        for entry in TF_NN:
            if entry.name == name:
                return entry
    known = entries(framework)
    if name not in known:
        raise PortError(_unknown(name, framework))
    return known[name]


def _unknown(name: str, framework: str | None) -> str:
    """What to say for a name the catalog lacks: the close names in that framework, and
    the frameworks that have this exact name."""
    where = f"{LABEL[framework]} ({framework})" if framework else "torch, paddle or tf"
    message = f"unknown {where} class or function {name!r}"
    pool = list(entries(framework)) if framework else [n for fw in FRAMEWORKS for n in entries(fw)]
    close = difflib.get_close_matches(name, pool, n=2, cutoff=0.6)
    close += [n for n in pool if n.lower() == name.lower() and n not in close]
    if close:
        message += f"; did you mean {' or '.join(repr(c) for c in close)}?"
    elsewhere = [fw for fw in FRAMEWORKS if fw != framework and name in entries(fw)]
    if elsewhere:
        message += f" ({name} is {' and '.join(LABEL[f] for f in elsewhere)}: --from {elsewhere[0]})"
    covered = ", ".join(sorted({n for fw in FRAMEWORKS for n in entries(fw)} if framework is None
                               else set(entries(framework))))
    return message + f". The porter covers: {covered}"


def _bind(entry: Entry, node: ast.Call, source: str) -> Call:
    params = {p.name: p for p in entry.params}
    call = Call(entry, {p.name: p.default for p in entry.params}, source=source)
    if len(node.args) > len(entry.params):
        raise PortError(f"{entry.qualified} takes at most {len(entry.params)} positional arguments "
                        f"({', '.join(p.name for p in entry.params)}), got {len(node.args)}")
    bound: list[tuple[Param, ast.expr]] = list(zip(entry.params, node.args))
    for kw in node.keywords:
        if kw.arg is None:
            raise PortError(f"**{ast.unparse(kw.value)} cannot be read without running it; write the "
                            "arguments out")
        if kw.arg in params:
            bound.append((params[kw.arg], kw.value))
        elif kw.arg in entry.extra_keywords:
            bound.append((Param(kw.arg, None, "opaque" if kw.arg == "name" else "value"), kw.value))
        else:
            close = difflib.get_close_matches(kw.arg, [*params, *entry.extra_keywords], n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise PortError(f"{entry.qualified} has no argument {kw.arg!r}{hint} Expected one of: "
                            f"{', '.join([*params, *entry.extra_keywords])}")
    for param, value in bound:
        if param.name in call.given:
            raise PortError(f"{entry.qualified}: argument {param.name!r} given twice")
        call.given.add(param.name)
        call.texts[param.name] = ast.unparse(value)
        call.values[param.name] = _read(entry, param, value)
    missing = [name for name, v in call.values.items() if v is REQUIRED]
    if missing:
        raise PortError(f"{entry.qualified} needs {', '.join(missing)}; got {source!r}")
    return call


def _read(entry: Entry, param: Param, node: ast.expr) -> Any:
    """A literal value; a dtype written as ``torch.float32``; the source text of tensors
    and opaque arguments that are not literals."""
    if param.kind == "tensor":
        return ast.unparse(node)
    if param.name == "noise_shape" and isinstance(node, (ast.Tuple, ast.List)):
        # sizes may be written x.shape[0]: only "1" (shared) matters, anything else is None
        return tuple(n.value if isinstance(n, ast.Constant) else None for n in node.elts)
    if param.name == "dtype" and isinstance(node, ast.Attribute) and node.attr in DTYPE_NAMES:
        return node.attr
    try:
        return ast.literal_eval(node)
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        if param.kind == "opaque":
            return _Opaque(ast.unparse(node))
        raise PortError(f"{entry.qualified}: {param.name}={ast.unparse(node)} is not a literal; the porter "
                        f"reads code without running it, so write the value (e.g. {param.name}="
                        f"{param.default!r})") from None


@dataclass(frozen=True)
class _Opaque:
    """An expression the porter does not evaluate (an initializer, ``self.training``)."""

    text: str

    def __repr__(self) -> str:
        return self.text


def is_opaque(value: Any) -> bool:
    return isinstance(value, _Opaque)
