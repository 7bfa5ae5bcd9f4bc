"""A stand-in converter program for the kit's tests (run as a subprocess, as a real converter
is): reads ``case.json``, writes ``layer.json`` (the converted layer, as neutral JSON) into the
output folder, planting the bug its first argument names:

- ``momentum``: the update weight passed unconverted to a runtime whose momentum weighs the
  OLD value (``w`` becomes ``1 - w``), the classic torch -> Keras/Paddle slip;
- ``training``: the training flag dropped: the converted batch norm always runs as in
  inference (normalises with its running statistics and never updates them);
- ``none``: a faithful conversion.

Whatever the plant, a layer's eps says how to misbehave: 0.0625 crash (a traceback, exit 1),
0.125 hang, 0.03125 "cannot express" (exit 3, the kit's convention); a downscale-in-inference
dropout gets this converter's own words ("... is not supported", exit 1).
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path


def main(plant: str, source: str, out: str) -> int:
    case = json.loads(Path(source).read_text(encoding="utf-8"))
    layer = dict(case["layer"])
    print(f"fake-convert: converting {case['case']} ({plant})")
    print("fake-convert: " + "chatter " * 40)  # converters print a lot
    eps = layer.get("eps")
    if eps == 0.0625:
        raise RuntimeError("planted converter crash")
    if eps == 0.125:
        time.sleep(3600)
    if eps == 0.03125:
        print(f"cannot express eps={eps} in the target runtime")
        return 3
    if layer["kind"] == "dropout" and layer.get("scaling") == "eval":
        print("ConversionError: downscale_in_infer dropout is not supported")
        return 1
    if layer["kind"] == "batch_norm" and plant == "momentum":
        if layer.get("update_weight") is not None:
            layer["update_weight"] = 1.0 - layer["update_weight"]
        if layer.get("native_momentum") is not None:
            layer["native_momentum"] = 1.0 - layer["native_momentum"]
    if layer["kind"] == "batch_norm" and plant == "training":
        layer["frozen"] = True
    Path(out, "layer.json").write_text(json.dumps(layer), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:4]))
