"""ONNX graphs for the neutral layer specs, built with ``onnx.helper`` and checked with
``onnx.checker``. Imports onnx only (not onnxruntime); used by the ``onnxruntime`` adapter in
its worker process.

A graph is stateless: a batch norm's running statistics are graph *inputs*
(``input_mean``, ``input_var``) and, in training mode, graph *outputs* (``running_mean``,
``running_var``) that the caller feeds back at the next call.

BatchNormalization (opset 15, https://onnx.ai/onnx/operators/onnx__BatchNormalization.html),
channel axis 1 (NCHW), with the ONNX momentum weighing the OLD value:

    training_mode=1:  Y = (X - mean_B) / sqrt(var_B + epsilon) * scale + B
                      running_mean = input_mean * momentum + mean_B * (1 - momentum)
                      running_var  = input_var  * momentum + var_B  * (1 - momentum)
    training_mode=0:  Y = (X - input_mean) / sqrt(input_var + epsilon) * scale + B

Dropout (opset 13 and later, https://onnx.ai/onnx/operators/onnx__Dropout.html): inputs data,
ratio, training_mode; outputs output and mask:

    training_mode=True:          output = data * mask / (1 - ratio), mask ~ Bernoulli(1 - ratio)
    training_mode=False/absent:  output = data
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal

import numpy as np
import onnx
from onnx import TensorProto, helper

from conformance.model import BatchNormSpec, DropoutSpec

# One opset for every graph: BatchNormalization resolves to its version 15 (training_mode,
# separate type constraints for the statistics), Dropout to its version 13 (ratio and
# training_mode as inputs, seed attribute). ONNX Runtime 1.16+ implements both on the CPU.
OPSET = 17
TENSOR_TYPES = {"float16": TensorProto.FLOAT16, "bfloat16": TensorProto.BFLOAT16,
                "float32": TensorProto.FLOAT, "float64": TensorProto.DOUBLE}
NUMPY_TYPES = {"float16": np.float16, "float32": np.float32, "float64": np.float64}

# train: training_mode=1 (three outputs); eval: training_mode=0 written out; eval_default: the
# attribute absent (ONNX's default, training_mode=0: what exporters write for inference)
BnVariant = Literal["train", "eval", "eval_default"]
# train_input: training_mode a graph input (fed True or False); no_training_mode: the input
# absent (ONNX's default, training_mode=False)
DropoutVariant = Literal["training_mode_input", "no_training_mode"]


def _shape(rank: int, channel: int, channels: int) -> list[int | str]:
    """Symbolic dims except the channel one: one graph serves every batch size."""
    return [channels if axis == channel else f"d{axis}" for axis in range(rank)]


def to_channels_first(rank: int) -> list[int]:
    """Transpose perm NHWC -> NCHW: (0, r-1, 1, ..., r-2)."""
    return [0, rank - 1, *range(1, rank - 1)]


def to_channels_last(rank: int) -> list[int]:
    """Transpose perm NCHW -> NHWC: (0, 2, ..., r-1, 1)."""
    return [0, *range(2, rank), 1]


def _node(op: str, inputs: list[str], outputs: list[str],
          attributes: Mapping[str, float | int]) -> onnx.NodeProto:
    """``helper.make_node`` with its attributes from a mapping (absent ones: ONNX's defaults)."""
    node = helper.make_node(op, inputs, outputs)
    node.attribute.extend(helper.make_attribute(k, v) for k, v in attributes.items())
    return node


def _model(graph: onnx.GraphProto) -> onnx.ModelProto:
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)],
                              producer_name="conformance")
    onnx.checker.check_model(model, full_check=True)  # also runs ONNX shape inference
    return model


def momentum_attribute(spec: BatchNormSpec) -> float | None:
    """ONNX's ``momentum`` for a spec: the native probe as is, else 1 - update weight (ONNX's
    momentum weighs the old running value), else None (the attribute left out: ONNX's 0.9)."""
    if spec.native_momentum is not None:
        return spec.native_momentum  # probe: ONNX's own argument, untranslated
    if spec.update_weight is not None:
        return 1.0 - spec.update_weight
    return None


def batch_norm_model(spec: BatchNormSpec, dtype: str, variant: BnVariant) -> onnx.ModelProto:
    """One BatchNormalization node (between two Transposes for a channels-last spec).

    ``scale`` and ``B`` are initializers: ONNX's BatchNormalization always has both, so a
    spec without affine parameters gets scale 1 and B 0. The statistics are inputs
    ``input_mean``/``input_var`` of the spec's dtype."""
    elem, channels, rank = TENSOR_TYPES[dtype], spec.num_features, spec.rank
    last = spec.channel_axis == "last" and rank > 2  # rank 2: (N, C) is channels-last too
    outer = _shape(rank, rank - 1 if last else 1, channels)
    scale = np.ones(channels) if spec.scale is None or not spec.affine else np.asarray(spec.scale)
    shift = np.zeros(channels) if spec.shift is None or not spec.affine else np.asarray(spec.shift)
    np_type = NUMPY_TYPES.get(dtype, np.float32)
    inits = [helper.make_tensor("scale", elem, [channels], scale.astype(np_type).reshape(-1).tolist()),
             helper.make_tensor("B", elem, [channels], shift.astype(np_type).reshape(-1).tolist())]
    attributes: dict[str, float | int] = {}
    if (momentum := momentum_attribute(spec)) is not None:
        attributes["momentum"] = float(momentum)  # a FLOAT (32-bit) attribute in ONNX
    if spec.eps is not None:  # None: ONNX's default epsilon (1e-5)
        attributes["epsilon"] = float(spec.eps)  # FLOAT (32-bit) attribute, added to the variance inside the sqrt
    if variant != "eval_default":
        attributes["training_mode"] = int(variant == "train")
    nodes, x_name, y_name = [], "X", "Y"
    if last:  # ONNX BatchNormalization is channel-first (axis 1): transpose there and back
        nodes.append(helper.make_node("Transpose", ["X"], ["X_nchw"], perm=to_channels_first(rank)))
        x_name, y_name = "X_nchw", "Y_nchw"
    outputs = [y_name, "running_mean", "running_var"] if variant == "train" else [y_name]
    nodes.append(_node("BatchNormalization", [x_name, "scale", "B", "input_mean", "input_var"],
                       outputs, attributes))
    if last:
        nodes.append(helper.make_node("Transpose", ["Y_nchw"], ["Y"], perm=to_channels_last(rank)))
    stat = [channels]
    graph_outputs = [helper.make_tensor_value_info("Y", elem, outer)]
    if variant == "train":
        graph_outputs += [helper.make_tensor_value_info(n, elem, stat) for n in ("running_mean", "running_var")]
    graph = helper.make_graph(
        nodes, f"batch_norm_{variant}",
        [helper.make_tensor_value_info("X", elem, outer),
         helper.make_tensor_value_info("input_mean", elem, stat),
         helper.make_tensor_value_info("input_var", elem, stat)],
        graph_outputs, initializer=inits)
    return _model(graph)


def dropout_model(spec: DropoutSpec, dtype: str, variant: DropoutVariant) -> onnx.ModelProto:
    """One Dropout node: ``ratio`` a constant (the spec's rate, or the native probe as is),
    ``training_mode`` a boolean graph input (or absent), outputs ``output`` and ``mask``;
    ``seed`` from the spec's seed (absent: ONNX Runtime's default generator)."""
    elem = TENSOR_TYPES[dtype]
    shape = [f"d{axis}" for axis in range(spec.rank)]
    rate = spec.rate if spec.native_rate is None else spec.native_rate  # a native rate as is
    # ratio's type T1 may be any float type: double for a float64 graph, float otherwise
    ratio_type = TensorProto.DOUBLE if dtype == "float64" else TensorProto.FLOAT
    ratio = helper.make_node("Constant", [], ["ratio"],
                             value=helper.make_tensor("ratio_value", ratio_type, [], [rate]))
    inputs = ["data", "ratio"] + (["training_mode"] if variant == "training_mode_input" else [])
    attributes: dict[str, int] = {} if spec.seed is None else {"seed": int(spec.seed)}
    dropout = _node("Dropout", inputs, ["output", "mask"], attributes)
    graph_inputs = [helper.make_tensor_value_info("data", elem, shape)]
    if variant == "training_mode_input":
        graph_inputs.append(helper.make_tensor_value_info("training_mode", TensorProto.BOOL, []))
    graph = helper.make_graph(
        [ratio, dropout], f"dropout_{variant}", graph_inputs,
        [helper.make_tensor_value_info("output", elem, shape),
         helper.make_tensor_value_info("mask", TensorProto.BOOL, shape)])
    return _model(graph)
