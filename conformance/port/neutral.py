"""From a parsed construction to the kit's neutral layer (``conformance.model``'s
BatchNormSpec / DropoutSpec, as the plain dict that results files and snippets use).

The one translation that matters most: ``update_weight`` w is the weight of the NEW batch
statistic in ``running <- (1 - w) * running + w * batch``. PyTorch's momentum is w; Paddle's
and Keras' momentum weigh the OLD running value, so their momentum is 1 - w (the probe case
``batchnorm/probes::native_momentum_meaning`` measures it: ``bn.momentum_weights``).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from conformance.model import BatchNormSpec, DropoutSpec
from conformance.port.catalog import LABEL
from conformance.port.parse import Call, PortError, is_opaque

MOMENTUM_WEIGHS = {"torch": "new", "paddle": "old", "tf": "old"}  # what the native momentum multiplies
Level = Literal["translated", "ignored", "no_equivalent", "assumed"]


@dataclass(frozen=True)
class Note:
    """Something the reader of a translation must know about one argument."""

    argument: str
    text: str
    level: Level = "translated"
    recipe: tuple[str, ...] = ()


@dataclass
class Ported:
    """A source construction in neutral terms: ``layer`` (the spec's layer dict), the
    dtype, the functional call's tensors and training flag (None for classes), what the
    neutral model cannot hold (``extras``) and the notes on the source's arguments."""

    call: Call
    layer: dict[str, Any]
    dtype: str = "float32"
    function: dict[str, Any] | None = None
    extras: dict[str, Any] = field(default_factory=dict)
    notes: list[Note] = field(default_factory=list)

    @property
    def kind(self) -> str:
        return str(self.layer["kind"])

    @property
    def source(self) -> str:
        return self.call.framework


class Reader:
    """Collects the neutral values while a source reader walks the arguments."""

    def __init__(self, call: Call, ported: Ported, rank: int | None, features: int | None) -> None:
        self.call, self.ported, self.rank_option, self.features_option = call, ported, rank, features
        self.values: dict[str, Any] = {}
        self.rank: int | None = None
        self.function: dict[str, Any] = {"tensors": {}, "training": None}

    # --- shared readers --------------------------------------------------------------------
    def note(self, argument: str, text: str, level: Level = "translated", recipe: tuple[str, ...] = ()) -> None:
        self.ported.notes.append(Note(argument, text, level, recipe))

    def given(self, name: str) -> bool:
        return name in self.call.given

    def number(self, name: str, low: float = 0.0, high: float = float("inf")) -> float:
        value = self.call.value(name)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not low <= value <= high:
            raise PortError(f"{self.call.entry.qualified}: {name}={value!r}; expected a number in "
                            f"[{low:g}, {high:g}]")
        return float(value)

    def set_rank(self, hinted: int | None = None, allowed: tuple[int, ...] = (2, 3, 4, 5)) -> None:
        """The input rank: --rank, else what an argument implies, else the class's own, else
        4 (said in a note; element-wise dropout works on any rank and takes 2 silently)."""
        entry = self.call.entry
        if entry.rank in (3, 4, 5):
            allowed = (entry.rank,)
        elif entry.rank == 2:
            allowed = tuple(r for r in allowed if r in (2, 3))
        if self.rank_option is not None:
            if self.rank_option not in allowed:
                raise PortError(f"--rank {self.rank_option} does not fit {entry.qualified}, which takes "
                                f"{' or '.join(map(str, allowed))}-D inputs")
            self.rank = self.rank_option
        elif hinted is not None:
            self.rank = hinted
        elif entry.rank is not None:
            self.rank = entry.rank
            if entry.rank == 2 and entry.kind == "batch_norm":
                self.note("rank", f"{entry.name} takes (N, C) or (N, C, L) inputs: taken as (N, C); pass "
                          "--rank 3 for (N, C, L) (it changes m, the values per channel, not the translation)",
                          "assumed")
        elif entry.kind == "dropout" and self.values.get("granularity", "element") == "element":
            self.rank = 2
        else:
            self.rank = 4
            self.note("rank", f"{entry.qualified} takes inputs of any rank: assumed 4-D (pass --rank); "
                      "it selects the target class (BatchNorm2d/2D), not the arithmetic", "assumed")

    def features(self, name: str | None) -> None:
        if name is None:  # Keras and functional forms: the input decides
            self.values["num_features"] = self.features_option
            if self.features_option is None and self.call.entry.form == "layer":
                self.note("num_features", f"{LABEL[self.call.framework]} infers the channel count from "
                          "the first input: the target code writes it as C (pass --features N)", "assumed")
            return
        value = self.call.value(name)
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise PortError(f"{self.call.entry.qualified}: {name}={value!r}; expected a positive integer")
        self.values["num_features"] = value

    def momentum(self, name: str) -> None:
        """The native momentum to the neutral update weight (see the module docstring)."""
        fw = self.call.framework
        if self.call.value(name) is None and fw == "torch":
            self.values.update(update="cumulative", update_weight=None)
            self.note("momentum=None", "PyTorch's momentum=None is a cumulative moving average "
                      "(running <- running + (batch - running) / k after k batches)")
            return
        native = self.number(name, 0.0, 1.0)
        weight = native if MOMENTUM_WEIGHS[fw] == "new" else 1.0 - native
        self.values["update_weight"] = float(f"{weight:.12g}")
        how = ("the weight of the NEW batch statistic" if MOMENTUM_WEIGHS[fw] == "new"
               else "the weight of the OLD running value: update_weight = 1 - momentum")
        self.note(self.call.written(name), f"{LABEL[fw]}'s momentum is {how} = {self.values['update_weight']:g}")

    def eps(self, name: str) -> None:
        self.values["eps"] = self.number(name)
        if not self.given(name):
            self.note(name, f"{LABEL[self.call.framework]}'s default {name}={self.values['eps']:g} is passed "
                      "explicitly: the targets' defaults differ (Keras 1e-3, PyTorch and Paddle 1e-5)")

    def ignore(self, name: str, why: str) -> None:
        if self.given(name):
            self.note(self.call.written(name), why, "ignored")

    def tensors(self, mapping: dict[str, str]) -> None:
        """Functional forms: the tensor arguments by neutral name, as source text."""
        for neutral, name in mapping.items():
            self.function["tensors"][neutral] = self.call.value(name)

    def training(self, name: str | None, fixed: bool | None = None) -> None:
        value = fixed if name is None else self.call.value(name)
        self.function["training"] = str(value) if is_opaque(value) else value  # the source text

    def layer_dict(self) -> dict[str, Any]:
        assert self.rank is not None
        if self.call.entry.kind == "batch_norm":
            spec: Any = BatchNormSpec(rank=self.rank, num_features=0, **{
                k: v for k, v in self.values.items() if k != "num_features"})
            layer = {k: v for k, v in asdict(spec).items() if v is not None}
            layer["num_features"] = self.values.get("num_features")
            if layer["num_features"] is None:
                del layer["num_features"]
            return layer
        spec = DropoutSpec(rank=self.rank, **self.values)
        return {k: v for k, v in asdict(spec).items() if v is not None}


def describe(ported: Ported) -> str:
    """One line in neutral terms, e.g. ``batch_norm: 4-D input, 64 channels first, update_weight
    0.1 (the new batch statistic's weight), eps 1e-05, affine, running statistics``."""
    layer = ported.layer
    if layer["kind"] == "batch_norm":
        update = ("cumulative average" if layer.get("update") == "cumulative"
                  else f"update_weight {layer.get('update_weight', 0.1):g} (weight of the new batch statistic)")
        flags = [update, f"eps {layer['eps']:g}", "affine" if layer.get("affine", True) else "no affine",
                 "frozen statistics" if layer.get("frozen") else
                 "running statistics" if layer.get("running_stats", True) else "no running statistics"]
        channels = f"{layer.get('num_features', 'C')} channels {layer.get('channel_axis', 'first')}"
    else:
        flags = [f"rate {layer['rate']:g} (probability to drop)", f"{layer.get('granularity', 'element')}-wise",
                 "inverted (x 1/(1-p) in training)" if layer.get("scaling", "train") == "train"
                 else "downscale in inference (x (1-p) in eval)"]
        channels = f"channels {layer.get('channel_axis', 'first')}"
    form = "" if ported.function is None else f" (functional, training={ported.function['training']})"
    return f"{layer['kind']}{form}: {layer['rank']}-D input, {channels}, " + ", ".join(flags)
