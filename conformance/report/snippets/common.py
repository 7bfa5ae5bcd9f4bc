"""Translations shared by the framework snippet modules: momentum, eps, rates, argument
lists with a comment per argument, print lines."""

from __future__ import annotations

from typing import Any

Layer = dict[str, Any]


def num(value: float) -> str:
    """A float as a short literal: 1 - 0.1 prints as 0.9, not 0.9000000000000001."""
    return repr(float(f"{value:.12g}"))


def momentum(layer: Layer, weighs_old: bool) -> tuple[str, str]:
    """``(argument, comment)`` for the momentum; ``weighs_old``: the framework's momentum
    weighs the old running value (Paddle, Keras)."""
    if "native_momentum" in layer:
        return (f"momentum={num(layer['native_momentum'])}",
                "passed as is, untranslated: probes what this framework's momentum means")
    if layer.get("update") == "cumulative":
        if not weighs_old:
            return "momentum=None", "None: cumulative average (update: cumulative)"
        return "", "no cumulative average in this framework: momentum is always an EMA"
    if "update_weight" not in layer:
        return "", "momentum left at the framework's default (update_weight: default)"
    w = float(layer["update_weight"])
    if weighs_old:
        return (f"momentum={num(1.0 - w)}",
                f"momentum = 1 - update_weight ({num(w)}): it weighs the OLD running value")
    return f"momentum={num(w)}", "momentum = update_weight: the weight of the NEW batch statistic"


def eps(layer: Layer, name: str) -> tuple[str, str]:
    if "eps" not in layer:
        return "", f"{name} left at the framework's default (eps: default)"
    renamed = "" if name == "eps" else f"{name} = eps, "
    return f"{name}={num(layer['eps'])}", f"{renamed}added to the variance inside the sqrt"


def rate(layer: Layer) -> tuple[str, str]:
    if "native_rate" in layer:
        return num(layer["native_rate"]), "passed as is, untranslated: probes what the rate means"
    return num(layer.get("rate", 0.5)), "the probability of DROPPING an element"


def call(head: str, args: list[tuple[str, str]]) -> list[str]:
    """``head(`` then one argument a line, each with its translation comment."""
    lines = [f"{head}("]
    for arg, comment in args:
        if arg:
            lines.append(f"    {arg},{'  # ' + comment if comment else ''}")
        elif comment:
            lines.append(f"    # {comment}")
    return [*lines, ")"]


def channel_index(layer: Layer) -> int:
    return 1 if layer.get("channel_axis", "first") == "first" else int(layer["rank"]) - 1


def channels_last(layer: Layer) -> bool:
    return layer.get("channel_axis", "first") == "last"


def initial_values(layer: Layer, names: dict[str, str]) -> list[tuple[str, str]]:
    """(spec key, framework attribute) of the initial values the spec sets."""
    return [(key, attr) for key, attr in names.items() if key in layer]


def prints(observe: list[str], shown: dict[str, str], framework: str) -> list[str]:
    lines = []
    for quantity in observe:
        expr = shown.get(quantity, "")
        lines.append(f"print({quantity!r}, {expr})" if expr else f"# {framework} exposes no {quantity}")
    return lines
