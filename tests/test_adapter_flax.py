"""The Flax adapters' layers, run in-process against the reference: ``flax`` (linen's
nn.BatchNorm / nn.Dropout through model.apply) and ``flax-nnx`` (nnx.BatchNorm / nnx.Dropout
switched by train()/eval()). Every expectation was measured on flax 0.12.8 / jax 0.10.2 CPU
first; each comment says what Flax does.

Flax feeds the running variance the biased batch variance (documented through the page's
source), so the cases here mostly say so under ``reference:``.

Importing the adapters switches JAX's x64 mode on for this process (float64 needs it)."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("flax")
pytest.importorskip("jax")

from helpers import cases_from, run_of, verdict_of

from conformance.adapters import BUILTIN, resolve
from conformance.adapters.base import DeviceUnavailable
from conformance.adapters.flax import FlaxAdapter
from conformance.adapters.flax_nnx import FlaxNnxAdapter
from conformance.model import Case

LINEN, NNX = FlaxAdapter(), FlaxNnxAdapter()
BOTH = pytest.mark.parametrize("adapter", [LINEN, NNX], ids=["linen", "nnx"])
BIASED = "reference: {bn.running_var_estimator: biased}"

HEAD = """
defaults:
  dtype: float32
  inputs:
    a: {shape: [8, 3], seed: 1, mean: 2.0, std: 1.5}
    b: {shape: [8, 3], seed: 2, mean: -1.0}
    g: {shape: [8, 3], seed: 3}
    image: {shape: [4, 3, 2, 2], seed: 4}
    image_g: {shape: [4, 3, 2, 2], seed: 5}
    u: {shape: [50, 40], seed: 6, distribution: uniform, low: 1.0, high: 2.0}
  observe: [output, running_mean, running_var]
cases:
"""


def case_of(text: str) -> Case:
    (case,) = cases_from(HEAD + text)
    return case


# --- the registry ------------------------------------------------------------------------------


def test_linen_is_flax_and_nnx_has_its_own_name() -> None:
    assert BUILTIN["flax"].target == "conformance.adapters.flax:FlaxAdapter"
    assert BUILTIN["flax-nnx"].target == "conformance.adapters.flax_nnx:FlaxNnxAdapter"
    for ref in resolve("flax,flax-nnx"):
        assert ref.requires == "flax" and ref.also_requires == ("jax",) and ref.installed()
    assert (LINEN.name, NNX.name) == ("flax", "flax-nnx")


@BOTH
def test_devices_environment_and_a_missing_gpu(adapter: FlaxAdapter) -> None:
    import jax

    assert adapter.devices()[0] == "cpu"
    env = adapter.environment("cpu")
    for key in ("jax", "jaxlib", "flax", "backend", "device_name", "x64", "xla_flags_env", "deterministic_ops"):
        assert key in env, key
    assert env["x64"] is True and env["flax"] == adapter.version()
    try:
        jax.devices("gpu")
    except RuntimeError:
        with pytest.raises(DeviceUnavailable, match="JAX .* sees no GPU"):
            adapter.build(case_of("  - {name: c, layer: {kind: batch_norm}, steps: [{train: a}]}").layer,
                          "float32", "gpu")


# --- batch norm ----------------------------------------------------------------------------------


@BOTH
def test_train_and_eval_follow_the_biased_reference(adapter: FlaxAdapter) -> None:
    case = case_of(f"""
  - name: train_eval
    layer: {{kind: batch_norm, update_weight: 0.3, scale: [1.5, 0.5, 2.0], shift: [0.1, 0.0, -0.2]}}
    {BIASED}
    steps: [{{train: a}}, {{train: b}}, {{eval: a}}, {{eval: b}}]
""")
    assert verdict_of(adapter, case)["verdict"] == "conforms"


@BOTH
def test_the_running_variance_is_the_documented_biased_one(adapter: FlaxAdapter) -> None:
    result = verdict_of(adapter, case_of("""
  - name: estimator
    layer: {kind: batch_norm}
    steps: [{train: a}, {eval: b}]
"""))
    assert result["verdict"] == "convention"
    assert result["explained_by"] == {"bn.running_var_estimator": "biased"}
    assert result["conventions"][0]["link"].startswith("https://flax.readthedocs.io/")


@BOTH
def test_a_native_momentum_weighs_the_old_value(adapter: FlaxAdapter) -> None:
    # Flax's momentum 0.8 passed as is: ra = 0.8 * ra + 0.2 * batch, update weight 0.2
    run = run_of(adapter, case_of("""
  - name: native
    layer: {kind: batch_norm, native_momentum: 0.8}
    steps: [{train: a}]
"""))
    a = cases_from(HEAD + "  - {name: c, layer: {kind: batch_norm}, steps: [{train: a}]}")[0].inputs["a"]
    np.testing.assert_allclose(run.steps[0]["running_mean"], 0.2 * a.mean(axis=0), rtol=1e-5)


@BOTH
@pytest.mark.parametrize("layout", ["first", "last"])
def test_channels_first_and_last_with_gradients(adapter: FlaxAdapter, layout: str) -> None:
    shape = "[4, 3, 2, 2]" if layout == "first" else "[4, 2, 2, 3]"
    case = case_of(f"""
  - name: layout
    layer: {{kind: batch_norm, channel_axis: {layout}, scale: [1.5, 0.5, 2.0]}}
    {BIASED}
    inputs:
      image: {{shape: {shape}, seed: 4}}
      image_g: {{shape: {shape}, seed: 5}}
    observe: [output, running_mean, running_var, grad_input, grad_scale, grad_shift]
    steps: [{{train: image, grad_output: image_g}}, {{eval: image, grad_output: image_g}}]
""")
    assert verdict_of(adapter, case)["verdict"] == "conforms"


@BOTH
def test_frozen_and_untrainable_batch_norms(adapter: FlaxAdapter) -> None:
    # frozen: linen's use_running_average=True in training, NNX's eval() on the layer;
    # trainable false: scale and bias are not differentiated (zeros)
    case = case_of("""
  - name: frozen
    layer: {kind: batch_norm, frozen: true, trainable: false, running_mean: [1.0, 2.0, 3.0], running_var: [4.0, 9.0, 1.0]}
    observe: [output, running_mean, running_var, grad_input, grad_scale, grad_shift]
    steps: [{train: a, grad_output: g}, {train: b, grad_output: g}]
""")
    assert verdict_of(adapter, case)["verdict"] == "conforms"
    run = run_of(adapter, case)
    np.testing.assert_array_equal(run.steps[1]["running_mean"], [1.0, 2.0, 3.0])
    assert not run.steps[1]["grad_scale"].any()


@BOTH
def test_contexts(adapter: FlaxAdapter) -> None:
    # no_grad is the plain call, compiled is jax.jit / nnx.jit: both update the statistics
    case = case_of(f"""
  - name: contexts
    layer: {{kind: batch_norm, update_weight: 0.2}}
    {BIASED}
    observe: [output, running_mean, running_var, grad_input, grad_scale, grad_shift]
    steps: [{{train: a, context: no_grad, observe: [output, running_mean]}},
            {{train: b, context: compiled, grad_output: g}}, {{eval: a, context: compiled}},
            {{train: a, context: compiled}}]
""")
    assert verdict_of(adapter, case)["verdict"] == "conforms"
    for context, words in (("inference", "no inference-mode context"), ("graph", "no deferred graph")):
        result = verdict_of(adapter, case_of(f"""
  - name: ctx
    layer: {{kind: batch_norm}}
    steps: [{{train: a, context: {context}}}]
"""))
        assert result["verdict"] == "unsupported" and words in result["message"]


@BOTH
def test_reset_and_rebuild(adapter: FlaxAdapter) -> None:
    case = case_of(f"""
  - name: reset
    layer: {{kind: batch_norm, running_mean: [1.0, 2.0, 3.0]}}
    {BIASED}
    steps: [{{train: a}}, {{reset: running_stats}}, {{train: b}}, {{rebuild: layer}}, {{eval: a}}]
""")
    assert verdict_of(adapter, case)["verdict"] == "conforms"


@BOTH
@pytest.mark.parametrize(("dtype", "kept"), [("float64", "float64"), ("float16", "float16"), ("bfloat16", "float32")])
def test_dtypes(adapter: FlaxAdapter, dtype: str, kept: str) -> None:
    case = case_of(f"""
  - name: typed
    dtype: {dtype}
    layer: {{kind: batch_norm}}
    {BIASED}
    steps: [{{train: a}}, {{eval: b}}]
""")
    assert verdict_of(adapter, case)["verdict"] == "conforms"
    assert run_of(adapter, case).dtypes[0]["output"] == kept


def test_nnx_keeps_float32_statistics_for_float64_and_linen_widens_them() -> None:
    # both create batch_stats in float32; linen's first update promotes them to float64 (JAX's
    # type promotion), NNX writes into the float32 variable: float64 statistics float32-exact
    case = case_of("""
  - name: wide
    dtype: float64
    layer: {kind: batch_norm}
    steps: [{train: a}, {train: b}]
""")
    assert run_of(LINEN, case).dtypes[1]["running_mean"] == "float64"
    assert run_of(NNX, case).dtypes[1]["running_mean"] == "float32"


@BOTH
def test_the_one_pass_variance_loses_a_large_mean(adapter: FlaxAdapter) -> None:
    # use_fast_variance=True (the default): Var = E[x^2] - E[x]^2 in float32, every digit lost
    # for mean 1e4, std 1 (observed -833.5 where the reference gives -3.06; one channel's
    # variance clipped to 0)
    result = verdict_of(adapter, case_of("""
  - name: fast_variance
    layer: {kind: batch_norm}
    inputs:
      big: {shape: [64, 4], seed: 1001, mean: 10000.0, std: 1.0}
    steps: [{train: big}]
    tolerance: {atol: 1.0e-2, rtol: 1.0e-4}
"""))
    assert result["verdict"] == "divergence"
    worst = max(check["max_abs_error"] for check in result["checks"] if check["quantity"] == "output")
    assert worst > 100


def test_nnx_normalises_float16_with_float16_statistics() -> None:
    # the corpus case batchnorm/mixed_precision::float16_large_mean_running_statistics: NNX's
    # promote_dtype casts the stored float32 running mean (1000.75) to the layer's float16
    # (1001) before normalising, and the inference pass gives -4 where the reference gives
    # -3 (biased variance); linen normalises in float32 and conforms
    case = case_of("""
  - name: half
    dtype: float16
    layer: {kind: batch_norm, update_weight: 1.0}
    reference: {bn.running_var_estimator: biased}
    inputs:
      x0: {shape: [2, 1], seed: 1, mean: 1000.0, std: 1.0}
      x2: {shape: [2, 1], seed: 0, mean: 1000.0, std: 1.0}
    steps: [{train: x0}, {train: x0}, {eval: x2}]
""")
    assert verdict_of(LINEN, case)["verdict"] == "conforms"
    run = run_of(NNX, case)
    assert float(run.steps[2]["running_mean"][0]) == 1000.75
    assert float(run.steps[2]["output"][0, 0]) == -4.0
    assert verdict_of(NNX, case)["verdict"] == "divergence"


@BOTH
@pytest.mark.parametrize(("layer", "words"), [
    ("{kind: batch_norm, update: cumulative}", "no cumulative"),
    ("{kind: batch_norm, running_stats: false}", "always keeps running statistics"),
    ("{kind: dropout, rate: 0.5, scaling: eval}", "inverted dropout only"),
])
def test_what_flax_lacks_is_unsupported(adapter: FlaxAdapter, layer: str, words: str) -> None:
    result = verdict_of(adapter, case_of(f"""
  - name: missing
    layer: {layer}
    observe: [output]
    steps: [{{train: a}}]
"""))
    assert result["verdict"] == "unsupported" and words in result["message"]


# --- dropout -------------------------------------------------------------------------------------


@BOTH
def test_dropout_masks_differ_per_call_and_repeat_after_a_rebuild(adapter: FlaxAdapter) -> None:
    case = case_of("""
  - name: masks
    layer: {kind: dropout, rate: 0.5, seed: 11}
    observe: [output, mask]
    steps: [{train: u}, {train: u}, {rebuild: layer}, {train: u}, {eval: u}]
    expect:
      masks: {same: [[0, 3]], different: [[0, 1]]}
""")
    assert verdict_of(adapter, case)["verdict"] == "conforms"
    run = run_of(adapter, case)
    kept = run.steps[0]["mask"].mean()
    assert 0.4 < kept < 0.6
    np.testing.assert_array_equal(run.steps[4]["output"], case.inputs["u"].astype(np.float32))


@BOTH
@pytest.mark.parametrize("layout", ["first", "last"])
def test_channel_dropout_shares_one_draw_along_the_spatial_axes(adapter: FlaxAdapter, layout: str) -> None:
    case = case_of(f"""
  - name: channels
    layer: {{kind: dropout, rate: 0.5, granularity: channel, channel_axis: {layout}, seed: 3}}
    observe: [output, mask, grad_input]
    inputs:
      volume: {{shape: [20, 6, 5, 4], seed: 7, distribution: uniform, low: 1.0, high: 2.0}}
      g4: {{shape: [20, 6, 5, 4], seed: 8}}
    steps: [{{train: volume, grad_output: g4}}]
""")
    assert verdict_of(adapter, case)["verdict"] == "conforms"
    mask = run_of(adapter, case).steps[0]["mask"]
    spatial = (2, 3) if layout == "first" else (1, 2)
    assert (mask.min(axis=spatial) == mask.max(axis=spatial)).all()


@BOTH
@pytest.mark.parametrize(("rate", "ratio"), [(1.5, 0.0), (-0.1, 1 / 1.1)])
def test_a_rate_outside_zero_one_is_not_refused(adapter: FlaxAdapter, rate: float, ratio: float) -> None:
    # Flax checks nothing: keep probability 1 - rate; 1.5 drops every unit, -0.1 keeps every
    # unit scaled by 1/1.1
    case = case_of(f"""
  - name: rate
    layer: {{kind: dropout, rate: {rate}}}
    observe: [output]
    steps: [{{train: u}}]
""")
    run = run_of(adapter, case)
    np.testing.assert_allclose(run.steps[0]["output"], case.inputs["u"] * ratio, rtol=1e-6)
