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


# The kit's rounding of a float64 input to bfloat16 (conformance.inputs.round_to_dtype):
# through float32, then the low 16 bits rounded off to nearest even, held in float32 as numpy
# has no bfloat16. Every input is rounded in numpy, as the kit does, before the framework sees
# it: a framework's own cast from float64 (float16: numpy rounds once, a cast through float32
# twice) need not give the same values on every version and device.
BFLOAT16_ROUNDING = [
    "def to_bfloat16(a):  # the kit's rounding to bfloat16 (nearest even), held in float32",
    "    bits = np.asarray(a, dtype=np.float32).view(np.uint32).astype(np.uint64)",
    "    return ((bits + ((bits >> 16) & 1) + 0x7FFF) >> 16 << 16).astype(np.uint32).view(np.float32)",
    "",
]
RANDOM_INPUTS = ("rng = np.random.default_rng(0)  # random inputs: this results file keeps only the "
                 "inputs' shapes, not the kit's values")


def input_source(described: Any) -> dict[str, Any]:
    """A program's ``inputs`` entry as a dict: an old results file gives only the shape."""
    return dict(described) if isinstance(described, dict) else {"shape": list(described)}


def input_preamble(sources: list[dict[str, Any]], dtype: str) -> list[str]:
    """What the input lines need first: the bfloat16 rounding, a generator for random inputs,
    the kit's spec loader."""
    lines = list(BFLOAT16_ROUNDING) if dtype == "bfloat16" else []
    if any(_made_how(s) == "spec" for s in sources):
        lines.append("from conformance.spec import load_file  # the kit reads the spec's long literal values")
    if any(_made_how(s) == "random" for s in sources):
        lines.append(RANDOM_INPUTS)
    return lines


def input_array(name: str, source: dict[str, Any], dtype: str) -> str:
    """``name = <numpy float64 array, made as the kit makes it, rounded to dtype as the kit
    rounds it>``, with a comment saying where the values come from."""
    made, comment = _float64_array(name, source)
    rounded = {"float64": made, "float32": f"{made}.astype(np.float32)", "float16": f"{made}.astype(np.float16)",
               "bfloat16": f"to_bfloat16({made})"}[dtype]
    rounding = "" if dtype == "float64" else f", rounded to {dtype} as the kit does"
    return f"{name} = {rounded}  # {comment}{rounding}"


_GENERATORS = {"normal": ("mean", "std"), "uniform": ("low", "high")}  # numpy Generator methods


def _made_how(source: dict[str, Any]) -> str:
    if "values" in source:
        return "values"
    if "distribution" in source:
        return "generated"
    return "file" if "file" in source else "spec" if "spec" in source else "random"


def _float64_array(name: str, source: dict[str, Any]) -> tuple[str, str]:
    """The numpy float64 expression for an input and where its values come from: the calls
    of ``conformance.inputs.generate``, the values, the file or a random stand-in."""
    shape = tuple(int(n) for n in source["shape"])
    how = _made_how(source)
    if how == "generated":
        kind, args = source["distribution"], _GENERATORS.get(source["distribution"])
        if args is None:
            return f"np.full({shape}, {float(source['value'])!r})", f"the kit's input {name}: constant"
        values = ", ".join(repr(float(source[a])) for a in args)  # exact: repr round-trips
        return (f"np.random.default_rng({int(source['seed'])}).{kind}({values}, {shape})",
                f"the kit's input {name}: seed {int(source['seed'])}, {kind}({', '.join(args)}, shape)")
    origin = f" ({_file_label(source)})" if "file" in source else ""
    if how == "values":
        return (f"np.array({source['values']!r}, dtype=np.float64)",
                f"the case's literal values{origin}, exactly")
    if how == "file":
        where = f" of {source['spec']}" if "spec" in source else ""
        loaded = f"np.load({source['file']!r})" + (f"[{source['key']!r}]" if "key" in source else "")
        return (f"np.asarray({loaded}, dtype=np.float64)",
                f"{_file_label(source)}, the file beside the spec{where}: run from the spec's folder")
    if how == "spec":
        case = f"next(c for c in load_file({source['spec']!r}) if c.name == {source.get('case', '')!r})"
        return f"np.asarray({case}.inputs[{name!r}], dtype=np.float64)", f"the case's literal values in {source['spec']}"
    return f"rng.normal(size={shape})", "random, of the case's shape"


def _file_label(source: dict[str, Any]) -> str:
    return f"{source['file']}[{source['key']!r}]" if "key" in source else str(source["file"])


def mask_comment(generator: str) -> str:
    """Dropout: what the snippet reproduces of the masks."""
    return (f"# the masks come from {generator}, not from the kit: the snippet reproduces the rule "
            "for kept values, not the exact masks the kit observed")
