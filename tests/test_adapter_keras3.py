"""The keras-torch and keras-jax adapters (Keras 3 on its torch and JAX backends), each run
in its own process through ``keras3_probe.py``; every expectation below is computed here with
numpy from the inputs and Keras' documented formulas (momentum weighs the old moving value,
the moving variance is fed the biased batch variance, inverted dropout),
never copied from an adapter's output. Skipped where keras or the backend is absent."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from functools import cache
from typing import Any

import numpy as np
import pytest

from conformance.inputs import generate
from conformance.worker import ONE_FRAMEWORK_ENV

BACKENDS = {"keras-torch": "torch", "keras-jax": "jax"}
OTHERS = {"keras-torch": {"tensorflow", "jax"}, "keras-jax": {"tensorflow", "torch"}}
HERE = os.path.dirname(__file__)
EPS = 1e-5  # a spec's default eps, passed to Keras as epsilon

X = {"shape": [8, 3], "seed": 11, "mean": 2.0, "std": 3.0}
G = {"shape": [8, 3], "seed": 12}
BN_UPDATE = f"""
cases:
  - name: update
    layer: {{kind: batch_norm, update_weight: 0.3, scale: [1.5, 0.5, 2.0], shift: [0.1, -0.2, 0.3]}}
    inputs: {{x: {json.dumps(X)}, g: {json.dumps(G)}}}
    steps: [{{train: x, grad_output: g, observe: [output, running_mean, running_var, grad_scale, grad_shift, grad_input]}},
            {{eval: x, observe: [output]}}]
"""
DROPOUT = f"""
cases:
  - name: dropout
    layer: {{kind: dropout, rate: 0.25, seed: 3}}
    inputs: {{x: {json.dumps({**X, "shape": [64, 16]})}}}
    steps: [{{train: x}}, {{eval: x}}]
"""
CONTEXTS = f"""
cases:
  - name: contexts
    layer: {{kind: batch_norm, update_weight: 0.5}}
    inputs: {{x: {json.dumps(X)}}}
    steps: [{{train: x, context: %s, observe: [running_mean]}}]
"""
W1 = {"shape": [4, 3], "seed": 21}
W2 = {"shape": [2, 4], "seed": 22}
TRAIN_STEP = f"""
cases:
  - name: train_step
    inputs: {{x: {json.dumps(X)}, g: {json.dumps({**G, "shape": [8, 2]})}}}
    model:
      kind: sequential
      children:
        - {{kind: linear, name: fc1, weight: {json.dumps(W1)}}}
        - {{kind: batch_norm, name: bn1, update_weight: 0.1, affine: false}}
        - {{kind: linear, name: fc2, weight: {json.dumps(W2)}}}
    steps: [{{train_step: x, grad_output: g, lr: 0.5}}]
    observe: [output, bn1.running_mean, bn1.running_var, bn1.training, fc2.weight]
"""

ALL = (BN_UPDATE, DROPOUT, CONTEXTS % "no_grad", CONTEXTS % "compiled", CONTEXTS % "inference",
       TRAIN_STEP)


@cache
def probe(name: str, texts: tuple[str, ...] = ALL) -> dict[str, Any]:
    """Run ``texts`` (one case each) on adapter ``name`` in a fresh process (one process per
    adapter for the whole module: a Keras import costs seconds)."""
    for module in ("keras", BACKENDS[name]):
        if importlib.util.find_spec(module) is None:
            pytest.skip(f"{name} needs {module} (pip install \"conformance[{name}]\")")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([os.path.dirname(HERE), os.environ.get("PYTHONPATH", "")]),
           ONE_FRAMEWORK_ENV: "1"}  # the probe stands in for the adapter's worker
    done = subprocess.run([sys.executable, os.path.join(HERE, "keras3_probe.py"), name],
                          input=json.dumps(list(texts)), capture_output=True, text=True, env=env,
                          timeout=600, check=False)
    assert done.returncode == 0, f"the {name} probe failed: {done.stderr[-3000:]}"
    return json.loads(done.stdout.splitlines()[-1])  # type: ignore[no-any-return]


def steps(name: str, text: str) -> list[dict[str, np.ndarray]]:
    result = probe(name)["results"][ALL.index(text)]
    assert result["status"] == "ok", result["message"]
    return [{k: np.asarray(v, dtype=float) for k, (_, v) in step.items()} for step in result["steps"]]


def x_of(description: dict[str, Any]) -> np.ndarray:
    return generate(description, "float32").astype(np.float64)


@pytest.mark.parametrize("name", BACKENDS)
def test_batch_norm_update_output_and_gradients(name: str) -> None:
    x, g = x_of(X), x_of(G)
    scale, shift = np.array([1.5, 0.5, 2.0]), np.array([0.1, -0.2, 0.3])
    mean, var = x.mean(0), x.var(0)  # biased: what Keras feeds moving_variance
    xhat = (x - mean) / np.sqrt(var + EPS)  # epsilon inside the sqrt
    train, infer = steps(name, BN_UPDATE)
    # momentum = 1 - 0.3 weighs the old value (0 and 1): moving = 0.7 * old + 0.3 * batch
    np.testing.assert_allclose(train["running_mean"], 0.3 * mean, rtol=1e-5)
    np.testing.assert_allclose(train["running_var"], 0.7 + 0.3 * var, rtol=1e-5)
    np.testing.assert_allclose(train["output"], scale * xhat + shift, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(train["grad_shift"], g.sum(0), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(train["grad_scale"], (g * xhat).sum(0), rtol=1e-4, atol=1e-4)
    m = len(x)  # d/dx of a batch norm: scale/sigma * (g - mean(g) - xhat * mean(g * xhat))
    grad_x = scale / np.sqrt(var + EPS) * (g - g.sum(0) / m - xhat * (g * xhat).sum(0) / m)
    np.testing.assert_allclose(train["grad_input"], grad_x, rtol=1e-4, atol=1e-5)
    moving = (x - 0.3 * mean) / np.sqrt(0.7 + 0.3 * var + EPS)  # inference: moving statistics
    np.testing.assert_allclose(infer["output"], scale * moving + shift, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("name", BACKENDS)
def test_dropout_is_inverted_and_identity_in_inference(name: str) -> None:
    x = x_of({**X, "shape": [64, 16]})
    train, infer = steps(name, DROPOUT)
    out = train["output"]
    kept = out != 0
    np.testing.assert_allclose(out[kept], x[kept] / 0.75, rtol=1e-6)  # 1 / (1 - rate)
    assert 0.6 < kept.mean() < 0.9, f"kept share {kept.mean():.3f}, but should be near 0.75"
    np.testing.assert_allclose(infer["output"], x, rtol=1e-7)


@pytest.mark.parametrize("name", BACKENDS)
@pytest.mark.parametrize("context", ["no_grad", "compiled"])
def test_no_grad_and_compiled_training_update_the_statistics(name: str, context: str) -> None:
    (step,) = steps(name, CONTEXTS % context)
    np.testing.assert_allclose(step["running_mean"], 0.5 * x_of(X).mean(0), rtol=1e-5)


def test_inference_mode_on_torch_updates_and_is_unsupported_on_jax() -> None:
    (step,) = steps("keras-torch", CONTEXTS % "inference")  # torch.inference_mode: Keras works
    np.testing.assert_allclose(step["running_mean"], 0.5 * x_of(X).mean(0), rtol=1e-5)
    result = probe("keras-jax")["results"][ALL.index(CONTEXTS % "inference")]
    assert result["status"] == "unsupported" and "no inference-mode context" in result["message"]


@pytest.mark.parametrize("name", BACKENDS)
def test_training_step_output_statistics_and_sgd_update(name: str) -> None:
    """compile + train_on_batch: the step's own forward (y_pred, taken from inside the step:
    on JAX a traced stateless call) in training mode, its batch-norm update, and SGD on fc2."""
    x, g = x_of(X), x_of({**G, "shape": [8, 2]})
    w1, w2 = x_of(W1), x_of(W2)
    h = x @ w1.T
    mean, var = h.mean(0), h.var(0)
    hhat = (h - mean) / np.sqrt(var + EPS)
    (step,) = steps(name, TRAIN_STEP)
    np.testing.assert_allclose(step["output"], hhat @ w2.T, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(step["bn1.running_mean"], 0.1 * mean, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(step["bn1.running_var"], 0.9 + 0.1 * var, rtol=1e-5)
    assert float(step["bn1.training"]) == 1.0
    # loss = sum(g * y): dL/dW2 = g^T hhat; one SGD step with lr 0.5
    np.testing.assert_allclose(step["fc2.weight"], w2 - 0.5 * g.T @ hhat, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("name", BACKENDS)
def test_the_worker_imports_only_its_backend_and_says_so(name: str) -> None:
    found = probe(name)
    assert OTHERS[name].isdisjoint(found["modules"]), f"{name} imported {found['modules']}"
    assert found["environment"]["keras_backend"] == BACKENDS[name]
    assert found["version"] == found["environment"]["keras"]
