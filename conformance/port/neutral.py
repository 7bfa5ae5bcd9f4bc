"""From a parsed construction to the kit's neutral layer (``conformance.model``'s
BatchNormSpec / DropoutSpec, as the plain dict that results files and snippets use).

The one translation that matters most: ``update_weight`` w is the weight of the NEW batch
statistic in ``running <- (1 - w) * running + w * batch``. PyTorch's momentum is w; Paddle's
and Keras' momentum weigh the OLD running value, so their momentum is 1 - w (the probe case
``batchnorm/probes::native_momentum_meaning`` measures it: ``bn.momentum_weights``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from conformance.model import BatchNormSpec, DropoutSpec
from conformance.port.catalog import LABEL, Entry
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


def to_neutral(call: Call, rank: int | None = None, features: int | None = None) -> Ported:
    """The neutral form of ``call``; ``rank`` and ``features`` fill in what the source does
    not say (Keras infers both from the input; BatchNorm1d takes rank 2 or 3)."""
    reader = _SOURCES[(call.framework, call.entry.kind)]
    ported = Ported(call, {})
    options = _Options(call, ported, rank, features)
    reader(options)
    ported.layer = options.layer_dict()
    if call.entry.form == "function":
        ported.function = options.function
    return ported


class _Options:
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


# --- BatchNorm sources ---------------------------------------------------------------------

def _affine(o: _Options, scale: bool, shift: bool, what: str) -> None:
    if scale and shift:
        return
    if not scale and not shift:
        o.values["affine"] = False
        o.note(what, "no scale and no shift (affine: false)")
        return
    o.ported.extras["scale" if not scale else "shift"] = False
    o.note(what, f"a {'shift' if shift else 'scale'} without a {'scale' if shift else 'shift'}: the "
           "neutral layer has both or neither; the targets' own switches for one are added below")


def _channel_format(o: _Options, fmt: Any, name: str) -> None:
    formats = {"NC": (2, "first"), "NCL": (3, "first"), "NLC": (3, "last"), "NCHW": (4, "first"),
               "NHWC": (4, "last"), "NCDHW": (5, "first"), "NDHWC": (5, "last")}
    if fmt not in formats:
        raise PortError(f"{o.call.entry.qualified}: {name}={fmt!r}; expected one of {', '.join(formats)}")
    rank, axis = formats[fmt]
    o.values["channel_axis"] = axis
    entry = o.call.entry
    if entry.rank in (4, 5) and rank != entry.rank:
        raise PortError(f"{entry.qualified}: {name}={fmt!r} is a {rank}-D layout; {entry.name} takes "
                        f"{entry.rank}-D inputs")
    o.set_rank(rank if o.given(name) or entry.rank is None else None,
               allowed=(2, 3) if rank <= 3 else (rank,))


def _torch_bn(o: _Options) -> None:
    call = o.call
    function = call.entry.form == "function"
    o.features(None if function else "num_features")
    o.eps("eps")
    o.momentum("momentum")
    o.set_rank()
    if function:
        o.tensors({"input": "input", "running_mean": "running_mean", "running_var": "running_var",
                   "weight": "weight", "bias": "bias"})
        o.training("training")
        _function_flags(o, "weight", "bias", "running_mean")
        return
    if call.value("affine") is False:
        _affine(o, False, False, "affine=False")
    elif call.value("bias") is False:
        _affine(o, True, False, "bias=False")
    if call.value("track_running_stats") is False:
        o.values["running_stats"] = False
        o.note("track_running_stats=False", "no running statistics: batch statistics in eval too")
    o.ignore("device", "the device is chosen apart from the layer in Paddle (paddle.set_device) and "
             "TensorFlow (with tf.device(...))")
    _dtype(o, "dtype")


def _function_flags(o: _Options, weight: str, bias: str, running: str | None) -> None:
    tensors = o.function["tensors"]
    if running is not None and tensors.get("running_mean") == "None":
        o.values["running_stats"] = False
    _affine(o, tensors.get("weight") != "None", tensors.get("bias") != "None", f"{weight}/{bias}")


def _paddle_bn(o: _Options) -> None:
    call, legacy = o.call, o.call.entry.name == "BatchNorm"
    function = call.entry.form == "function"
    o.features(None if function else "num_channels" if legacy else "num_features")
    o.momentum("momentum")
    o.eps("epsilon")
    fmt_name = "data_layout" if legacy else "data_format"
    if legacy or function:
        fmt = call.value(fmt_name)
        if fmt in ("NCHW", "NHWC") and fmt_name not in call.given:
            o.values["channel_axis"] = "first"
            o.set_rank()
        else:
            _channel_format(o, fmt, fmt_name)
    else:
        _channel_format(o, call.value(fmt_name), fmt_name)
    if function:
        o.tensors({"input": "x", "running_mean": "running_mean", "running_var": "running_var",
                   "weight": "weight", "bias": "bias"})
        o.training("training")
        _function_flags(o, "weight", "bias", "running_mean")
    else:
        weight_name = "param_attr" if legacy else "weight_attr"
        for name in (weight_name, "bias_attr"):
            if is_opaque(call.value(name)):
                o.note(call.written(name), "a ParamAttr (initializer, regularizer, learning rate) is not "
                       "translated: copy the initial values with conformance.port.convert_state and set "
                       "regularizers on the target's optimizer", "ignored")
        _affine(o, call.value(weight_name) is not False, call.value("bias_attr") is not False,
                f"{weight_name}/bias_attr=False")
    stats = call.value("use_global_stats")
    if stats is True or (legacy and call.value("is_test") is True):
        o.values.update(frozen=True)
        which = "use_global_stats=True" if stats is True else "is_test=True"
        o.note(which, "frozen statistics: running statistics in training too, never updated")
    elif stats is False and not legacy:
        o.values["running_stats"] = False
        o.note("use_global_stats=False", "batch statistics in eval too (Paddle still keeps, and in eval "
               "still updates, its _mean/_variance buffers: measured, fact bn.no_running_stats)")
    if legacy:
        _paddle_legacy(o)
    o.ignore("name", "a layer name; the state conversion maps the parameter names")
    if legacy and "dtype" in call.given:
        _dtype(o, "dtype")


def _paddle_legacy(o: _Options) -> None:
    call = o.call
    if call.value("act") is not None:
        o.ported.extras["activation"] = call.value("act")  # the target notes say where it goes
    if call.value("trainable_statistics") is True:
        o.ported.extras["eval_batch_stats"] = True
        o.note("trainable_statistics=True", "batch statistics in eval too, while training still updates "
               "the running ones: no target layer does both", "no_equivalent")
    o.ignore("in_place", "memory reuse only; the values are the same")
    o.ignore("moving_mean_name", "a static-graph variable name; see convert_state for state names")
    o.ignore("moving_variance_name", "a static-graph variable name; see convert_state for state names")
    o.ignore("do_model_average_for_mean_and_var", "only read by Paddle's ModelAverage optimizer")


def _keras_bn(o: _Options) -> None:
    call = o.call
    if call.entry.form == "function":
        _keras_bn_function(o)
        return
    o.features(None)
    o.momentum("momentum")
    o.eps("epsilon")
    _keras_axis(o, call.value("axis"))
    _affine(o, bool(call.value("scale")), bool(call.value("center")), "center/scale=False")
    if call.value("trainable") is False:
        o.values.update(frozen=True, trainable=False)
        o.note("trainable=False", "Keras freezes the statistics (inference mode in training too) and "
               "the scale and shift")
    initial = {"beta_initializer": "zeros", "gamma_initializer": "ones", "moving_mean_initializer": "zeros",
               "moving_variance_initializer": "ones"}
    for name, default in initial.items():
        if name in call.given and call.value(name) != default:
            o.note(call.written(name), "initial values are not translated: build the Keras layer, then "
                   "copy its weights with conformance.port.convert_state", "ignored")
    for name in ("beta_regularizer", "gamma_regularizer", "beta_constraint", "gamma_constraint"):
        o.ignore(name, "regularizers and constraints belong to the optimizer in PyTorch (weight_decay per "
                 "parameter group) and to ParamAttr(regularizer=...) in Paddle")
    if call.value("renorm"):
        o.ported.extras["renorm"] = True
        o.note("renorm=True", "batch renormalization has no counterpart in PyTorch or Paddle",
               "no_equivalent")
    if call.value("synchronized"):
        o.note("synchronized=True", "cross-replica statistics: torch.nn.SyncBatchNorm and "
               "paddle.nn.SyncBatchNorm (outside what the kit measures)", "no_equivalent")
    o.ignore("name", "a layer name; the state conversion maps the weight names")
    _dtype(o, "dtype")


def _keras_axis(o: _Options, axis: Any) -> None:
    if isinstance(axis, bool) or not isinstance(axis, int):
        raise PortError(f"axis={axis!r}: the porter translates one channel axis (an int); PyTorch and "
                        "Paddle normalise over exactly one channel axis")
    o.set_rank()
    assert o.rank is not None
    if o.rank == 2 and axis in (-1, 1):
        o.values["channel_axis"] = "first"  # (N, C): the channel axis is both
    elif axis in (-1, o.rank - 1):
        o.values["channel_axis"] = "last"
    elif axis == 1:
        o.values["channel_axis"] = "first"
    else:
        raise PortError(f"axis={axis}: channels at axis {axis} of a {o.rank}-D input are neither first "
                        "after the batch (PyTorch, Paddle NC...) nor last (Paddle N...C); transpose the "
                        "input so they are, then translate axis=1 or axis=-1")


def _keras_bn_function(o: _Options) -> None:
    call = o.call
    o.features(None)
    keras_ops = call.entry.qualified.startswith("keras")
    o.eps("epsilon" if keras_ops else "variance_epsilon")
    o.values["update_weight"] = 0.1  # unused: the call updates nothing
    if keras_ops:
        _keras_axis(o, call.value("axis"))
    else:
        o.set_rank()
        o.values["channel_axis"] = "last"
        o.note("mean, variance", "tf.nn.batch_normalization broadcasts mean and variance: taken as "
               "per-channel statistics of channels-last inputs", "assumed")
    o.tensors({"input": "x", "running_mean": "mean", "running_var": "variance", "weight": "scale",
               "bias": "offset"})
    o.training(None, fixed=False)
    _function_flags(o, "scale", "offset", None)


# --- Dropout sources -----------------------------------------------------------------------

def _rate(o: _Options, name: str) -> None:
    o.values["rate"] = o.number(name, 0.0, 1.0)


def _channel_entry(o: _Options, fmt: Any = None, fmt_name: str = "data_format") -> None:
    entry = o.call.entry
    if entry.granularity == "element":
        o.set_rank(allowed=(2, 3, 4, 5))
        return
    o.values["granularity"] = "channel"
    if fmt is not None:
        first = fmt in ("NCHW", "NCDHW", "channels_first")
        if fmt not in ("NCHW", "NHWC", "NCDHW", "NDHWC", "channels_first", "channels_last"):
            raise PortError(f"{entry.qualified}: {fmt_name}={fmt!r}; expected "
                            f"{'NCHW or NHWC' if entry.rank == 4 else 'NCDHW or NDHWC'}")
        o.values["channel_axis"] = "first" if first else "last"
    o.set_rank(allowed=(entry.rank or 4,))


def _torch_dropout(o: _Options) -> None:
    _rate(o, "p")
    _channel_entry(o)
    o.ignore("inplace", "writes the result into the input's memory; the values are the same")
    if o.call.entry.form == "function":
        o.tensors({"input": "input"})
        o.training("training")
        if not o.given("training"):
            o.note("training", "PyTorch's functional dropout defaults to training=True: it drops in "
                   "eval too unless you pass training=self.training", "assumed")


def _paddle_dropout(o: _Options) -> None:
    call = o.call
    _rate(o, "p")
    mode = call.value("mode") if "mode" in call.values else "upscale_in_train"
    if mode not in ("upscale_in_train", "downscale_in_infer"):
        raise PortError(f"mode={mode!r}; expected 'upscale_in_train' or 'downscale_in_infer'")
    if mode == "downscale_in_infer":
        o.values["scaling"] = "eval"
        o.note("mode='downscale_in_infer'", "kept values unscaled in training, every value x (1 - p) in "
               "eval (scaling: eval)")
    if "axis" in call.values and call.value("axis") is not None:
        _paddle_axis(o, call.value("axis"))
    elif call.entry.granularity == "channel":
        _channel_entry(o, call.value("data_format"))
    else:
        o.set_rank(allowed=(2, 3, 4, 5))
    o.ignore("inplace", "writes the result into the input's memory; the values are the same")
    o.ignore("name", "a layer name")
    if call.entry.form == "function":
        o.tensors({"input": "x"})
        o.training("training")


def _paddle_axis(o: _Options, axis: Any) -> None:
    """Paddle's ``axis``: the axes along which draws are independent; every other axis shares
    the draw. [0, channel axis] is channel-wise dropout."""
    axes = [axis] if isinstance(axis, int) else list(axis) if isinstance(axis, (list, tuple)) else None
    if not axes or not all(isinstance(a, int) and not isinstance(a, bool) and a >= 0 for a in axes):
        raise PortError(f"axis={axis!r}; expected a non-negative int or a list of them")
    if o.rank_option is None and max(axes) < 2:
        o.set_rank(hinted=4)
        o.note("rank", f"axis={axis!r} means different things at different ranks: assumed 4-D input "
               "(pass --rank)", "assumed")
    else:
        o.set_rank(hinted=max(axes) + 1)
    assert o.rank is not None
    rank = o.rank
    if sorted(set(axes)) == list(range(rank)):  # every axis independent: element-wise
        return
    if sorted(axes) == [0, 1] and rank > 2:
        o.values.update(granularity="channel", channel_axis="first")
    elif sorted(axes) == [0, rank - 1] and rank > 2:
        o.values.update(granularity="channel", channel_axis="last")
    else:
        shared = tuple(a for a in range(rank) if a not in axes)
        o.ported.extras["mask_shape_axes"] = tuple(sorted(set(axes)))
        o.note(f"axis={axis!r}", f"one draw per index of axes {sorted(set(axes))}, shared along axes "
               f"{list(shared)}{' (the batch)' if 0 in shared else ''}: neither element- nor channel-wise "
               "(Keras' noise_shape says the same; torch needs a hand-made mask)")


def _keras_dropout(o: _Options) -> None:
    call = o.call
    _rate(o, "rate")
    if "seed" in call.values and call.value("seed") is not None:
        o.values["seed"] = call.value("seed")
    entry = call.entry
    if entry.name == "SpatialDropout1D":
        o.values.update(granularity="channel", channel_axis="last")
        o.set_rank(allowed=(3,))
    elif entry.granularity == "channel":
        fmt = call.value("data_format")
        if fmt is None:
            o.note("data_format", "None means keras.config.image_data_format(): 'channels_last' unless "
                   "configured", "assumed")
        _channel_entry(o, fmt or "channels_last")
    elif call.value("noise_shape") is not None:
        _noise_shape(o, call.value("noise_shape"))
    else:
        o.set_rank(allowed=(2, 3, 4, 5))
    if entry.form == "function":
        o.tensors({"input": "inputs" if "inputs" in call.values else "x"})
        o.training(None, fixed=True)
    _dtype(o, "dtype")


def _noise_shape(o: _Options, shape: Any) -> None:
    if not isinstance(shape, (list, tuple)) or not 2 <= len(shape) <= 5:
        raise PortError(f"noise_shape={shape!r}; expected a tuple with one entry per input axis")
    o.set_rank(hinted=len(shape), allowed=(len(shape),))
    rank = len(shape)
    independent = [a for a, n in enumerate(shape) if n != 1]
    if independent == list(range(rank)):
        return
    if rank > 2 and independent == [0, 1]:
        o.values.update(granularity="channel", channel_axis="first")
    elif rank > 2 and independent == [0, rank - 1]:
        o.values.update(granularity="channel", channel_axis="last")
    else:
        o.ported.extras["mask_shape_axes"] = tuple(independent)
        o.note(f"noise_shape={tuple(shape)!r}", f"draws independent along axes {independent} only: neither "
               "element- nor channel-wise (Paddle's axis says the same; torch needs a hand-made mask)")


def _dtype(o: _Options, name: str) -> None:
    if not o.given(name):
        return
    value = o.call.value(name)
    if value in ("float16", "bfloat16", "float32", "float64"):
        o.ported.dtype = value
    else:
        o.note(o.call.written(name), "only float16, bfloat16, float32 and float64 are translated; a "
               "mixed-precision policy is set apart in each target", "ignored")


_SOURCES: dict[tuple[str, str], Callable[[_Options], None]] = {
    ("torch", "batch_norm"): _torch_bn, ("paddle", "batch_norm"): _paddle_bn, ("tf", "batch_norm"): _keras_bn,
    ("torch", "dropout"): _torch_dropout, ("paddle", "dropout"): _paddle_dropout, ("tf", "dropout"): _keras_dropout,
}


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


def entry_of(ported: Ported) -> Entry:
    return ported.call.entry
