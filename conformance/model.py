"""The loaded, validated form of a spec: what a case asks a layer to do.

Every name here is framework-neutral. In particular the running-average update is given as
``update_weight`` w, the weight the *new* batch statistic gets:

    running <- (1 - w) * running + w * batch_statistic

so PyTorch's ``momentum=0.1`` and Paddle's / Keras' ``momentum=0.9`` are both ``w = 0.1``.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

if TYPE_CHECKING:
    from conformance.tree import ModelSpec

ChannelAxis = Literal["first", "last"]
Mode = Literal["train", "eval"]

BN_QUANTITIES = (
    "output",
    "running_mean",
    "running_var",
    "batch_count",
    "grad_input",
    "grad_scale",
    "grad_shift",
)
# mask: 1 where a unit was kept, 0 where dropped, NaN where the input is 0 (not visible)
DROPOUT_QUANTITIES = ("output", "grad_input", "mask")
INLINE_VALUES_MAX = 4096  # literal inputs up to this size are written into results files


@dataclass(frozen=True)
class BatchNormSpec:
    """A batch-norm layer over ``num_features`` channels of a rank-``rank`` input.

    ``update`` is ``"ema"`` (exponential moving average with ``update_weight``) or
    ``"cumulative"`` (running <- running + (s - running) / k after the k-th batch).
    ``update_weight``/``eps`` of None build the layer with the framework's defaults; the kit
    then measures them from the observations. ``native_momentum`` is a probe: the value goes
    to the framework's own momentum argument untranslated, to measure what it means.
    ``running_stats=False`` means the layer keeps no running statistics and uses batch
    statistics in eval too. ``frozen=True`` freezes the statistics: in training mode too the
    layer normalises with its running statistics and leaves them as they are (PyTorch: the
    layer kept in eval mode; Paddle: ``use_global_stats=True``; Keras: ``trainable=False``,
    which also freezes scale and shift, i.e. ``trainable=False`` here).
    """

    rank: int
    num_features: int
    channel_axis: ChannelAxis = "first"
    update: Literal["ema", "cumulative"] = "ema"
    update_weight: float | None = 0.1  # None: the framework's default, measured by the kit
    eps: float | None = 1e-5  # None: the framework's default, measured by the kit
    native_momentum: float | None = None  # probe: passed to the framework's own momentum as is
    affine: bool = True
    running_stats: bool = True
    scale: np.ndarray | None = None
    shift: np.ndarray | None = None
    running_mean: np.ndarray | None = None
    running_var: np.ndarray | None = None
    frozen: bool = False  # training mode normalises with, and does not update, running stats
    trainable: bool = True  # False: scale and shift receive no gradient
    kind: Literal["batch_norm"] = "batch_norm"


@dataclass(frozen=True)
class DropoutSpec:
    """Dropout that zeroes each element (``granularity="element"``) or each whole channel
    (``"channel"``: one draw per sample and channel, shared along the spatial axes) with
    probability ``rate``.

    ``scaling="train"`` is inverted dropout: kept values are multiplied by 1/(1-rate) in
    training and eval is the identity. ``scaling="eval"`` keeps values unscaled in training and
    multiplies by (1-rate) in eval (Paddle's ``downscale_in_infer``).
    """

    rate: float
    rank: int
    granularity: Literal["element", "channel"] = "element"
    channel_axis: ChannelAxis = "first"
    scaling: Literal["train", "eval"] = "train"
    seed: int | None = None
    native_rate: float | None = None  # probe: passed to the framework's own rate argument as is
    kind: Literal["dropout"] = "dropout"


LayerSpec = BatchNormSpec | DropoutSpec  # or a model (conformance.tree.ModelSpec)


@dataclass(frozen=True)
class Step:
    """One step of a case's program, then the quantities in ``observe`` are recorded.

    ``action="forward"``: a forward pass in ``mode`` on input ``input``, run in ``context``
    (``plain``; ``no_grad``: gradient recording off; ``inference``: the framework's inference
    context; ``compiled``: through the framework's graph compiler; ``graph``: a deferred graph
    whose output is fetched in a session, as a TF1 program does). ``grad_output`` (an input
    name) asks for a backward pass of ``sum(grad_output * output)``.
    ``action="reset"``: re-initialise the running statistics (mean 0, variance 1, count 0).
    ``action="rebuild"``: construct the layer afresh from the spec (same seed).

    Model cases (``conformance.tree``) call a model through an ``entry``: ``train`` (switch
    the model to training, call it: torch/Paddle ``train()`` then a call, Keras
    ``training=True``), ``eval`` (the inference idiom: ``eval()`` then a call, Keras
    ``training=False``), ``call`` (a plain call in the model's current mode; Keras: no
    ``training`` argument), ``predict`` (Keras ``predict``), ``train_step`` (one SGD step of
    learning rate ``lr`` on ``sum(grad_output * output)``: forward, backward, update; Keras
    ``train_on_batch``), ``mc_dropout`` (the framework's Monte Carlo dropout recipe: dropout
    on, batch norm on its running statistics). ``action="switch"``: the model's mode switch
    (``mode``) without a call. ``action="freeze"``: freeze batch-norm leaf ``target`` ``via``
    its own mode (``mode``: ``eval()`` on the leaf), a flag (``flag``: Paddle
    ``use_global_stats``, Keras ``trainable=False``) or the framework's own way (``default``).
    """

    mode: Mode = "train"
    input: str = ""
    observe: tuple[str, ...] = ()
    grad_output: str | None = None
    line: int = 0
    action: Literal["forward", "reset", "rebuild", "switch", "freeze"] = "forward"
    context: Literal["plain", "no_grad", "inference", "compiled", "graph"] = "plain"
    entry: str = ""  # model cases: train | eval | call | predict | train_step | mc_dropout
    target: str = ""  # freeze: the leaf
    via: str = ""  # freeze: mode | flag | default
    lr: float = 0.0  # train_step: the learning rate


def _step_program(step: Step) -> dict[str, Any]:
    described: dict[str, Any] = {"action": step.action, "mode": step.mode, "input": step.input,
                                 "grad_output": step.grad_output, "context": step.context,
                                 "observe": list(step.observe)}
    for key in ("entry", "target", "via"):  # model steps only
        if getattr(step, key):
            described[key] = getattr(step, key)
    if step.lr:
        described["lr"] = step.lr
    return described


@dataclass(frozen=True)
class Tolerance:
    """Elementwise ``|observed - expected| <= atol + rtol * |expected|``."""

    atol: float
    rtol: float


DEFAULT_TOLERANCES: dict[str, Tolerance] = {
    "float64": Tolerance(atol=1e-9, rtol=1e-7),
    "float32": Tolerance(atol=1e-4, rtol=1e-4),
    "float16": Tolerance(atol=2e-2, rtol=1e-2),
    "bfloat16": Tolerance(atol=1e-1, rtol=2e-2),
}


@dataclass(frozen=True)
class Case:
    """One program: build ``layer``, run ``steps`` on ``inputs``, compare what is observed."""

    id: str
    name: str
    file: str
    line: int
    description: str
    areas: tuple[str, ...]
    layer: LayerSpec | ModelSpec
    inputs: dict[str, np.ndarray]
    dtype: str
    steps: tuple[Step, ...]
    # how each input was made: a generator's recipe ({shape, distribution, seed, ...}, as
    # inputs.generator gives it), {"spec": FILE} for values written in a spec file ({} for a
    # spec given as text), or {"file", "key", "spec"} for values read from an array file
    input_sources: dict[str, dict[str, Any]] = field(default_factory=dict)
    reference: dict[str, str] = field(default_factory=dict)
    literal: dict[tuple[int, str], np.ndarray] = field(default_factory=dict)
    # how a literal value of a random dropout pass compares: kept, share or elementwise
    literal_match: dict[tuple[int, str], str] = field(default_factory=dict)
    expect_error: bool = False
    measures: tuple[str, ...] = ()
    mask_relations: tuple[tuple[int, int, str], ...] = ()  # (step, step, "same"|"different")
    tolerance: Tolerance = DEFAULT_TOLERANCES["float32"]
    devices: tuple[str, ...] = ("cpu", "gpu")

    def program(self) -> dict[str, Any]:
        """The case as plain data for results files: layer parameters, dtype, steps and how
        each input is made (``input_program``), enough to reproduce it in a framework's own
        code with the same numbers."""
        if self.layer.kind == "model":
            layer = self.layer.as_program()
        else:
            values = ((f.name, getattr(self.layer, f.name)) for f in fields(self.layer))
            layer = {k: (v.tolist() if isinstance(v, np.ndarray) else v) for k, v in values if v is not None}
        return {
            "layer": layer,
            "dtype": self.dtype,
            "inputs": {name: self.input_program(name) for name in self.inputs},
            "steps": [_step_program(s) for s in self.steps],
        }

    def input_program(self, name: str) -> dict[str, Any]:
        """How input ``name`` is made, as results files keep it: a generated input's recipe
        (``{shape, distribution, seed, mean, std}`` and so on); a literal one's ``shape`` and
        its ``values`` (float64, already rounded to the case's dtype, so rounding them again
        changes nothing) when it has at most ``INLINE_VALUES_MAX`` of them, else where they
        are: ``file`` (relative to the spec's folder) and ``key``, or ``spec`` and ``case``
        for values written in the spec. Only ``shape`` for an input of unknown origin."""
        array, source = self.inputs[name], self.input_sources.get(name, {})
        if "distribution" in source:
            return dict(source)
        described: dict[str, Any] = {"shape": list(array.shape)}
        if "file" in source:
            described.update((k, source[k]) for k in ("file", "key", "spec") if source.get(k) is not None)
        if array.size <= INLINE_VALUES_MAX:
            described["values"] = np.asarray(array, dtype=np.float64).tolist()
        elif "spec" in source and "file" not in source:
            described.update(spec=source["spec"], case=self.name)
        return described

    def summary(self) -> dict[str, Any]:
        """The JSON-ready description used by ``conformance list``."""
        return {
            "id": self.id,
            "file": self.file,
            "line": self.line,
            "layer": self.layer.kind,
            "areas": list(self.areas),
            "description": self.description,
            "steps": len(self.steps),
            "dtype": self.dtype,
        }
