"""One framework's part of the model-level demo, run in its own process:
``python -m conformance.port.demo_worker FRAMEWORK DIR``.

Reads ``DIR/inputs.npz`` (data, initial weights in PyTorch's layout, dropout masks, batch
indices) and ``DIR/config.json`` (the batch-norm arguments of each variant), trains an MLP
and a small CNN per variant with plain SGD, and writes ``DIR/FRAMEWORK.npz``: per model and
variant the running mean and variance, the eval logits on the held-out set and the losses.

Both models: linear/conv -> batch norm -> ReLU -> dropout (the injected inverted-dropout
mask ``keep / (1 - p)``, the same in every framework; none in eval) -> (flatten) -> linear. Only this module's functions import a framework, each its own.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import numpy as np

Arrays = dict[str, np.ndarray]


def _torch(inputs: Arrays, config: dict[str, Any]) -> Arrays:
    import torch

    torch.set_num_threads(1)
    nn = torch.nn
    t = torch.as_tensor

    def build(model: str, bn: dict[str, Any]) -> Any:
        if model == "mlp":
            layers = nn.ModuleDict({"first": nn.Linear(64, 32), "bn": nn.BatchNorm1d(32, **bn), "last": nn.Linear(32, 10)})
        else:
            layers = nn.ModuleDict({"first": nn.Conv2d(1, 8, 3, padding=1), "bn": nn.BatchNorm2d(8, **bn),
                                    "last": nn.Linear(512, 10)})
        with torch.no_grad():  # PyTorch's own layout: Linear weight (out, in), Conv2d (out, in, kh, kw)
            for name in ("first", "last"):
                layer: Any = layers[name]
                layer.weight.copy_(t(inputs[f"{model}_{name}_w"]))
                layer.bias.copy_(t(inputs[f"{model}_{name}_b"]))
        return layers

    def forward(layers: Any, model: str, x: Any, mask: Any) -> Any:
        h = torch.relu(layers["bn"](layers["first"](x)))
        if mask is not None:
            h = h * (mask if model == "mlp" else mask[:, :, None, None])
        return layers["last"](h.flatten(1))  # (N, C, H, W) flattened channel by channel

    out: Arrays = {}
    for variant, per_model in config["torch"].items():
        for model, bn in per_model.items():
            layers = build(model, bn)
            optimizer = torch.optim.SGD(layers.parameters(), lr=config["lr"])
            losses = []
            layers.train()
            for step in range(config["steps"]):
                idx = inputs["batches"][step]
                x = t(_images(inputs["x_train"][idx], model, "first"))
                logits = forward(layers, model, x, t(inputs[f"{model}_masks"][step]))
                loss = nn.functional.cross_entropy(logits, t(inputs["y_train"][idx]))
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                losses.append(loss.item())
            layers.eval()
            with torch.no_grad():
                logits = forward(layers, model, t(_images(inputs["x_test"], model, "first")), None)
            key = f"{model}/{variant}"
            out.update({f"{key}/running_mean": layers["bn"].running_mean.numpy(),
                        f"{key}/running_var": layers["bn"].running_var.numpy(),
                        f"{key}/logits": logits.numpy(), f"{key}/losses": np.asarray(losses)})
    return out


def _paddle(inputs: Arrays, config: dict[str, Any]) -> Arrays:
    import paddle

    paddle.set_device("cpu")
    nn = paddle.nn
    t = paddle.to_tensor

    def build(model: str, bn: dict[str, Any]) -> Any:
        if model == "mlp":
            layers = nn.LayerDict({"first": nn.Linear(64, 32), "bn": nn.BatchNorm1D(32, **bn), "last": nn.Linear(32, 10)})
        else:
            layers = nn.LayerDict({"first": nn.Conv2D(1, 8, 3, padding=1), "bn": nn.BatchNorm2D(8, **bn),
                                   "last": nn.Linear(512, 10)})
        # Paddle's Linear weight is (in, out): PyTorch's transposed; Conv2D is (out, in, kh, kw) as PyTorch's
        for name in ("first", "last"):
            w = inputs[f"{model}_{name}_w"]
            layers[name].weight.set_value(w.T if w.ndim == 2 else w)
            layers[name].bias.set_value(inputs[f"{model}_{name}_b"])
        return layers

    def forward(layers: Any, model: str, x: Any, mask: Any) -> Any:
        h = nn.functional.relu(layers["bn"](layers["first"](x)))
        if mask is not None:
            h = h * (mask if model == "mlp" else mask.reshape([*mask.shape, 1, 1]))
        return layers["last"](h.flatten(1))

    out: Arrays = {}
    for variant, per_model in config["paddle"].items():
        for model, bn in per_model.items():
            layers = build(model, bn)
            optimizer = paddle.optimizer.SGD(learning_rate=config["lr"], parameters=layers.parameters())
            losses = []
            layers.train()
            for step in range(config["steps"]):
                idx = inputs["batches"][step]
                logits = forward(layers, model, t(_images(inputs["x_train"][idx], model, "first")),
                                 t(inputs[f"{model}_masks"][step]))
                loss = nn.functional.cross_entropy(logits, t(inputs["y_train"][idx]))
                loss.backward()
                optimizer.step()
                optimizer.clear_grad()
                losses.append(float(loss))
            layers.eval()
            key = f"{model}/{variant}"
            out.update({f"{key}/running_mean": layers["bn"]._mean.numpy(),
                        f"{key}/running_var": layers["bn"]._variance.numpy(), f"{key}/losses": np.asarray(losses)})
            for suffix in ("", "_adjusted"):
                if suffix:  # the state conversion to PyTorch's estimator, set into the layer
                    adjusted = _adjusted(out[f"{key}/running_var"], "paddle", model, bn, config)
                    layers["bn"]._variance.set_value(adjusted)
                    out[f"{key}/running_var_adjusted"] = adjusted
                with paddle.no_grad():
                    logits = forward(layers, model, t(_images(inputs["x_test"], model, "first")), None)
                out[f"{key}/logits{suffix}"] = logits.numpy()
    return out


def _tf(inputs: Arrays, config: dict[str, Any]) -> Arrays:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(1)
    keras = tf.keras

    def build(model: str, bn: dict[str, Any]) -> dict[str, Any]:
        if model == "mlp":
            layers = {"first": keras.layers.Dense(32), "bn": keras.layers.BatchNormalization(**bn),
                      "last": keras.layers.Dense(10)}
        else:  # channels last: TensorFlow's CPU convolutions take NHWC only
            layers = {"first": keras.layers.Conv2D(8, 3, padding="same"),
                      "bn": keras.layers.BatchNormalization(**bn), "last": keras.layers.Dense(10)}
        x = np.zeros((2, 64) if model == "mlp" else (2, 8, 8, 1), np.float32)
        forward(layers, model, x, None, training=False)  # builds the variables; inference updates nothing
        for name in ("first", "last"):
            w = inputs[f"{model}_{name}_w"]
            if model == "cnn" and name == "last":
                # the flattened features come in (H, W, C) order here, (C, H, W) in PyTorch's layout
                w = w.reshape(10, 8, 8, 8).transpose(0, 2, 3, 1).reshape(10, 512)
            # Keras' Dense kernel is (in, out), its Conv2D kernel (kh, kw, in, out)
            layers[name].kernel.assign(w.T if w.ndim == 2 else w.transpose(2, 3, 1, 0))
            layers[name].bias.assign(inputs[f"{model}_{name}_b"])
        return layers

    def forward(layers: dict[str, Any], model: str, x: Any, mask: Any, training: bool) -> Any:
        h = tf.nn.relu(layers["bn"](layers["first"](x), training=training))
        if mask is not None:
            h = h * (mask if model == "mlp" else mask[:, None, None, :])
        return layers["last"](tf.reshape(h, (-1, 512)) if model == "cnn" else h)  # (N, H, W, C) flattened

    out: Arrays = {}
    loss_fn = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    for variant, per_model in config["tf"].items():
        for model, bn in per_model.items():
            layers = build(model, bn)
            weights = [w for layer in layers.values() for w in layer.trainable_weights]
            optimizer = keras.optimizers.SGD(learning_rate=config["lr"])
            losses = []
            for step in range(config["steps"]):
                idx = inputs["batches"][step]
                x = _images(inputs["x_train"][idx], model, "last")
                with tf.GradientTape() as tape:
                    logits = forward(layers, model, x, inputs[f"{model}_masks"][step], training=True)
                    loss = loss_fn(inputs["y_train"][idx], logits)
                optimizer.apply_gradients(zip(tape.gradient(loss, weights), weights))
                losses.append(float(loss))
            key = f"{model}/{variant}"
            out.update({f"{key}/running_mean": np.asarray(layers["bn"].moving_mean),
                        f"{key}/running_var": np.asarray(layers["bn"].moving_variance),
                        f"{key}/losses": np.asarray(losses)})
            for suffix in ("", "_adjusted"):
                if suffix:  # the state conversion to PyTorch's estimator, set into the layer
                    adjusted = _adjusted(out[f"{key}/running_var"], "tf", model, bn, config)
                    layers["bn"].moving_variance.assign(adjusted)
                    out[f"{key}/running_var_adjusted"] = adjusted
                logits = forward(layers, model, _images(inputs["x_test"], model, "last"), None, training=False)
                out[f"{key}/logits{suffix}"] = np.asarray(logits)
    return out


def _adjusted(var: np.ndarray, framework: str, model: str, bn: dict[str, Any], config: dict[str, Any]) -> np.ndarray:
    """The running variance converted to PyTorch's unbiased estimator: exact, since m, the
    update weight (1 - this framework's momentum) and the number of updates are known."""
    from conformance.port.state import ESTIMATOR, adjust_variance

    adjusted, exact, note = adjust_variance(var, config["values_per_channel"][model], ESTIMATOR[framework],
                                            ESTIMATOR["torch"], update_weight=1.0 - bn["momentum"],
                                            steps=config["steps"])
    assert exact, note
    return adjusted


def _images(x: np.ndarray, model: str, channels: str) -> np.ndarray:
    """Digits as (N, 64) vectors for the MLP, (N, 1, 8, 8) or (N, 8, 8, 1) images for the CNN."""
    if model == "mlp":
        return x
    images = x.reshape(-1, 1, 8, 8)
    return images if channels == "first" else images.transpose(0, 2, 3, 1)


RUNNERS = {"torch": _torch, "paddle": _paddle, "tf": _tf}


def main(argv: list[str]) -> int:
    framework, folder = argv[0], Path(argv[1])
    with np.load(folder / "inputs.npz") as data:
        inputs = {k: data[k] for k in data.files}
    config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    results: dict[str, Any] = RUNNERS[framework](inputs, config)
    np.savez(folder / f"{framework}.npz", **results)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
