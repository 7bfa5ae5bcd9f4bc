"""The readers of each framework's constructions: from a parsed call to the neutral layer
(``to_neutral``). One reader per framework and layer kind; each translation is commented where
it happens, and what the neutral layer cannot hold goes to ``Ported.extras`` or a note.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from conformance.port.neutral import Ported, Reader
from conformance.port.parse import Call, PortError, is_opaque
from conformance.report.snippets import paddle as paddle_snippets


def to_neutral(call: Call, rank: int | None = None, features: int | None = None) -> Ported:
    """The neutral form of ``call``; ``rank`` and ``features`` fill in what the source does
    not say (Keras infers both from the input; BatchNorm1d takes rank 2 or 3)."""
    reader = _SOURCES[(call.framework, call.entry.kind)]
    ported = Ported(call, {})
    options = Reader(call, ported, rank, features)
    reader(options)
    ported.layer = options.layer_dict()
    if call.entry.form == "function":
        ported.function = options.function
    return ported


# --- BatchNorm sources ---------------------------------------------------------------------

def _affine(o: Reader, scale: bool, shift: bool, what: str) -> None:
    if scale and shift:
        return
    if not scale and not shift:
        o.values["affine"] = False
        o.note(what, "no scale and no shift (affine: false)")
        return
    o.ported.extras["scale" if not scale else "shift"] = False
    o.note(what, f"a {'shift' if shift else 'scale'} without a {'scale' if shift else 'shift'}: the "
           "neutral layer has both or neither; the targets' own switches for one are added below")


def _channel_format(o: Reader, fmt: Any, name: str) -> None:
    # Paddle's data_format strings, as the snippets write them: rank -> (class, first, last)
    formats = {written: (rank, axis)
               for rank, (_, first, last) in sorted(paddle_snippets.BATCH_NORMS.items(), reverse=True)
               for written, axis in ((last, "last"), (first, "first"))}  # "NC" is rank 2 either way
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


def _torch_bn(o: Reader) -> None:
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


def _function_flags(o: Reader, weight: str, bias: str, running: str | None) -> None:
    tensors = o.function["tensors"]
    if running is not None and tensors.get("running_mean") == "None":
        o.values["running_stats"] = False
    _affine(o, tensors.get("weight") != "None", tensors.get("bias") != "None", f"{weight}/{bias}")


def _paddle_bn(o: Reader) -> None:
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


def _paddle_legacy(o: Reader) -> None:
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


def _keras_bn(o: Reader) -> None:
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


def _keras_axis(o: Reader, axis: Any) -> None:
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


def _keras_bn_function(o: Reader) -> None:
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

def _rate(o: Reader, name: str) -> None:
    o.values["rate"] = o.number(name, 0.0, 1.0)


def _channel_entry(o: Reader, fmt: Any = None, fmt_name: str = "data_format") -> None:
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


def _torch_dropout(o: Reader) -> None:
    _rate(o, "p")
    _channel_entry(o)
    o.ignore("inplace", "writes the result into the input's memory; the values are the same")
    if o.call.entry.form == "function":
        o.tensors({"input": "input"})
        o.training("training")
        if not o.given("training"):
            o.note("training", "PyTorch's functional dropout defaults to training=True: it drops in "
                   "eval too unless you pass training=self.training", "assumed")


def _paddle_dropout(o: Reader) -> None:
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


def _paddle_axis(o: Reader, axis: Any) -> None:
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


def _keras_dropout(o: Reader) -> None:
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


def _noise_shape(o: Reader, shape: Any) -> None:
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


def _dtype(o: Reader, name: str) -> None:
    if not o.given(name):
        return
    value = o.call.value(name)
    if value in ("float16", "bfloat16", "float32", "float64"):
        o.ported.dtype = value
    else:
        o.note(o.call.written(name), "only float16, bfloat16, float32 and float64 are translated; a "
               "mixed-precision policy is set apart in each target", "ignored")


_SOURCES: dict[tuple[str, str], Callable[[Reader], None]] = {
    ("torch", "batch_norm"): _torch_bn, ("paddle", "batch_norm"): _paddle_bn, ("tf", "batch_norm"): _keras_bn,
    ("torch", "dropout"): _torch_dropout, ("paddle", "dropout"): _paddle_dropout, ("tf", "dropout"): _keras_dropout,
}
