"""The ``torch-onnx`` converter's program, run in a subprocess of the converter's worker:
``python -m conformance.converters.torch_onnx_export CASE_JSON OUT_DIR``.

It builds the case's layer in PyTorch exactly as the kit's torch adapter does
(``TorchAdapter._batch_norm`` / ``_dropout``: the same translation the torch column is judged
on; a channels-last spec wraps it in a module that permutes the channels to axis 1 and back), then exports it twice with the TorchScript exporter
(``torch.onnx.export(..., dynamo=False)``, opset 17, every non-channel axis dynamic):

- ``eval.onnx``: ``module.eval()``, ``training=TrainingMode.EVAL``;
- ``train.onnx``: ``module.train()``, ``training=TrainingMode.TRAINING``.

Each export starts from a fresh copy of the module: the exporter runs the module once to trace
it, and a training-mode trace updates its running statistics. ``export.json`` records the
versions and settings. What PyTorch itself refuses to build (a downscale-in-inference dropout)
exits ``UNSUPPORTED_EXIT`` with torch's adapter's words; an exporter error is printed and exits 1
(the worker then matches the exporter's words, ``TorchOnnxConverter.unsupported_words``).
"""

from __future__ import annotations

import copy
import json
import sys
import warnings
from pathlib import Path
from typing import Any

OPSET = 17
DUMMY_BATCH = 4
DUMMY_SPATIAL = 3


def _dummy_shape(rank: int, channels: int, channels_last: bool) -> list[int]:
    """A tracing input: batch 4, the channels where the spec puts them, 3 elsewhere."""
    shape = [DUMMY_BATCH] + [DUMMY_SPATIAL] * (rank - 1)
    if rank > 1:
        shape[rank - 1 if channels_last else 1] = channels
    return shape


def main(source: str, out: str) -> int:
    import torch

    from conformance.adapters.base import Unsupported
    from conformance.adapters.torch import DTYPES, TorchAdapter
    from conformance.converters.base import UNSUPPORTED_EXIT, read_case
    from conformance.model import BatchNormSpec

    case = read_case(Path(source))
    layer, dtype = case["layer"], DTYPES[case["dtype"]]
    adapter = TorchAdapter()
    try:
        module = adapter._batch_norm(layer, dtype) if isinstance(layer, BatchNormSpec) else adapter._dropout(layer)
    except Unsupported as exc:
        print(f"torch cannot build this layer: {exc}")
        return UNSUPPORTED_EXIT
    module = module.to(dtype)
    channels_last = layer.channel_axis == "last" and layer.rank > 2
    if channels_last:
        module = _channels_last(module, layer.rank)
    channels = layer.num_features if isinstance(layer, BatchNormSpec) else 2
    channel_axis = layer.rank - 1 if channels_last else 1
    dynamic = {axis: f"d{axis}" for axis in range(layer.rank)
               if not (isinstance(layer, BatchNormSpec) and axis == channel_axis)}
    dummy = torch.ones(_dummy_shape(layer.rank, channels, channels_last), dtype=dtype)
    exported = {}
    for name, mode in (("eval", torch.onnx.TrainingMode.EVAL), ("train", torch.onnx.TrainingMode.TRAINING)):
        fresh = copy.deepcopy(module)  # a training-mode trace would update the statistics
        fresh.train(name == "train")
        path = Path(out) / f"{name}.onnx"
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(fresh, (dummy,), str(path), dynamo=False, training=mode, opset_version=OPSET,
                              do_constant_folding=False, input_names=["X"], output_names=["Y"],
                              dynamic_axes={"X": dynamic, "Y": dynamic})
        exported[name] = {"file": path.name, "training": str(mode)}
        print(f"exported {path.name} ({mode})")
    Path(out, "export.json").write_text(json.dumps({
        "torch": str(torch.__version__), "exporter": "torch.onnx.export(dynamo=False)", "opset": OPSET,
        "module": repr(module), "dtype": case["dtype"], "exported": exported}, indent=1), encoding="utf-8")
    return 0


def _channels_last(layer: Any, rank: int) -> Any:
    """``layer`` in a module that takes channels-last input: torch takes channels at axis 1, so
    they are moved there and back with explicit permutations. (``x.movedim(-1, 1)``, as the
    torch adapter and snippets write it, exports a Transpose whose ``perm`` holds -1, which
    ONNX Runtime refuses: "Invalid attribute perm {0, -1, 1, 2}", measured with torch 2.13
    and onnxruntime 1.32; the permutations keep that exporter bug out of the batch-norm
    measurements.)"""
    import torch

    to_front = [0, rank - 1, *range(1, rank - 1)]
    to_back = [0, *range(2, rank), 1]

    class ChannelsLast(torch.nn.Module):
        def __init__(self, inner: torch.nn.Module) -> None:
            super().__init__()
            self.layer = inner

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.layer(x.permute(*to_front)).permute(*to_back)  # type: ignore[no-any-return]

    return ChannelsLast(layer)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2]))
