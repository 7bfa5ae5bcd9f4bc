"""What the two Flax adapters share: JAX set up in the worker, devices, arrays in and out, the
environment, and the translation of the neutral spec into Flax's own arguments (linen's
``nn.BatchNorm`` / ``nn.Dropout`` and NNX's ``nnx.BatchNorm`` / ``nnx.Dropout`` take the same
ones). Imported only inside a Flax worker process (``flax``: linen, ``flax-nnx``: NNX).

JAX is set up before anything runs: ``jax_enable_x64`` is switched on (JAX truncates float64
to float32 without it, silently), GPU memory preallocation is off unless the user set
``XLA_PYTHON_CLIENT_PREALLOCATE`` (the other frameworks' workers share the GPU), and the
device is chosen per case with ``jax.default_device`` and ``jax.device_put``. ``JAX_PLATFORMS``
is left to the user: it decides which backends JAX starts at all (``JAX_PLATFORMS=cpu`` hides a
GPU, and the worker then reports none).
"""

from __future__ import annotations

import os

# Before JAX starts its GPU backend: it would otherwise take 75% of the GPU's memory at once,
# which the other frameworks' workers of the same run need (a user's own setting wins)
os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")

from dataclasses import dataclass
from typing import Any

import flax
import jax
import jax.numpy as jnp
import jaxlib
import numpy as np

from conformance.adapters.base import DeviceUnavailable, Unsupported
from conformance.model import BatchNormSpec, DropoutSpec
from conformance.reference import channel_axis_index

# float64 exists in JAX only with x64 on; set before the first array is made in this worker
jax.config.update("jax_enable_x64", True)

DTYPES: dict[str, Any] = {"float64": jnp.float64, "float32": jnp.float32,
                          "float16": jnp.float16, "bfloat16": jnp.bfloat16}
CONTEXTS = ("plain", "no_grad", "compiled")
DETERMINISM_FLAGS = ("--xla_gpu_deterministic_ops", "--xla_gpu_exclude_nondeterministic_ops")


def gpus() -> list[Any]:
    """The GPUs JAX sees (``jax.devices('gpu')`` raises where there is no GPU backend)."""
    try:
        return list(jax.devices("gpu"))
    except RuntimeError:
        return []


def visible_devices() -> list[str]:
    return ["cpu", "gpu"] if gpus() else ["cpu"]


def device_of(device: str) -> Any:
    """The JAX device of a neutral device name, or ``DeviceUnavailable``."""
    if device == "gpu":
        found = gpus()
        if not found:
            raise DeviceUnavailable(
                f"JAX {jax.__version__} sees no GPU (jax.devices('gpu') finds no platform; "
                f"backends: {jax.default_backend()}); install the CUDA build (pip install "
                "'jax[cuda12]') on a machine with an NVIDIA driver, and leave JAX_PLATFORMS unset")
        return found[0]
    if device != "cpu":
        raise DeviceUnavailable(f"unknown device {device!r}")
    try:
        return jax.devices("cpu")[0]
    except RuntimeError as exc:  # JAX_PLATFORMS without cpu
        raise DeviceUnavailable(f"JAX's CPU backend is not started: {exc}") from exc


def to_jax(values: np.ndarray, dtype: Any, device: Any) -> Any:
    """float64 numpy in, cast by JAX to the case's dtype, on the device."""
    return jax.device_put(jnp.asarray(np.asarray(values, np.float64)).astype(dtype), device)


def to_numpy(value: Any) -> np.ndarray:
    """A JAX array as numpy, in the dtype JAX computed it; bfloat16 (an ``ml_dtypes`` type
    numpy cannot compute with) widened to float32, exactly."""
    array = np.asarray(jax.device_get(value))
    if array.dtype == jnp.bfloat16:
        array = array.astype(np.float32)
    return array.copy()


def wide(dtype: Any) -> Any:
    """The dtype of the loss sum(grad_output * output): float64 for float64, else float32."""
    return jnp.float64 if dtype == jnp.float64 else jnp.float32


def weighted_sum(y: Any, g: Any) -> Any:
    """sum(g * y) in the wide dtype: its gradient with respect to y is g exactly."""
    return jnp.sum(y.astype(wide(y.dtype)) * g.astype(wide(y.dtype)))


def dropout_key(seed: int | None, call: int) -> Any:
    """The PRNG key of a dropout's ``call``-th pass: the spec's seed (0 when it gives none),
    with the call counter folded in, so that every pass draws a new mask and a layer rebuilt
    from the spec draws the same masks again (JAX has no global generator to advance)."""
    return jax.random.fold_in(jax.random.key(0 if seed is None else seed), call)


def check_context(context: str, framework: str) -> None:
    """``plain``, ``no_grad`` and ``compiled`` exist; the others are unsupported, with why."""
    if context == "inference":
        raise Unsupported(
            f"JAX/{framework} have no inference-mode context (torch.inference_mode): nothing is "
            "recorded unless a function is differentiated (jax.grad/jax.vjp), so a plain call is "
            "already the no-recording pass (the no_grad context); inference is "
            "use_running_average=True / deterministic=True, a mode, not a context")
    if context == "graph":
        raise Unsupported(f"JAX has no deferred graph-and-session mode (TF1's Session): its graph "
                          f"compiler is jax.jit (the compiled context), for {framework} too")
    if context not in CONTEXTS:
        raise Unsupported(f"the {framework} adapter knows the contexts {', '.join(CONTEXTS)}, "
                          f"not {context!r}")


@dataclass(frozen=True)
class BatchNormArgs:
    """A neutral batch norm as Flax's arguments (the same for linen and NNX)."""

    axis: int  # the channel axis
    options: dict[str, Any]  # momentum and epsilon where the spec gives them
    affine: bool  # use_scale and use_bias


def batch_norm_args(spec: BatchNormSpec, framework: str) -> BatchNormArgs:
    if spec.update == "cumulative":
        raise Unsupported(f"{framework} BatchNorm only has an exponential moving average "
                          "(momentum); there is no cumulative (1/k) running average")
    if not spec.running_stats:
        raise Unsupported(f"{framework} BatchNorm always keeps running statistics (its batch_stats) "
                          "and normalises with them when use_running_average=True; there is no "
                          "track_running_stats=False")
    options: dict[str, Any] = {}
    if spec.native_momentum is not None:
        options["momentum"] = spec.native_momentum  # probe: Flax's own argument, as is
    elif spec.update_weight is not None:
        # Flax's momentum weighs the OLD value: ra = momentum * ra + (1 - momentum) * batch
        options["momentum"] = 1.0 - spec.update_weight
    if spec.eps is not None:  # None: keep Flax's default
        options["epsilon"] = spec.eps  # added to the variance inside the rsqrt, as the reference
    return BatchNormArgs(channel_axis_index(spec.rank, spec.channel_axis), options, spec.affine)


def dropout_args(spec: DropoutSpec, framework: str) -> tuple[float, tuple[int, ...]]:
    """Flax's ``rate`` and ``broadcast_dims``: the axes that share one draw, the spatial ones
    for channel-wise dropout (one draw per sample and channel)."""
    if spec.scaling == "eval":
        raise Unsupported(f"{framework} Dropout is inverted dropout only (kept values scaled by "
                          "1/(1 - rate) in training, identity when deterministic); there is no "
                          "downscale-in-inference mode")
    rate = spec.rate if spec.native_rate is None else spec.native_rate  # rate: probability to drop
    if spec.granularity == "element" or spec.rank == 2:  # rank 2: one draw per (n, c) anyway
        return rate, ()
    axis = channel_axis_index(spec.rank, spec.channel_axis)
    return rate, tuple(a for a in range(spec.rank) if a not in (0, axis))


def environment(device: str) -> dict[str, Any]:
    """JAX, jaxlib and Flax versions, the backend and device, CUDA/cuDNN where JAX's CUDA
    plugin reports them, x64, and the XLA flags that bear on determinism."""
    xla_flags = os.environ.get("XLA_FLAGS", "")
    env: dict[str, Any] = {
        "jax": str(jax.__version__),
        "jaxlib": str(jaxlib.__version__),
        "flax": str(flax.__version__),
        "backend": jax.default_backend(),
        "device": device,
        "x64": bool(jax.config.read("jax_enable_x64")),
        "xla_flags_env": xla_flags or None,
        "jax_platforms_env": os.environ.get("JAX_PLATFORMS"),
        "xla_preallocate_env": os.environ.get("XLA_PYTHON_CLIENT_PREALLOCATE"),
        "deterministic_ops": any(flag in xla_flags and f"{flag}=false" not in xla_flags
                                 for flag in DETERMINISM_FLAGS),
    }
    try:
        native = device_of(device)
    except DeviceUnavailable:
        native = None
    env["device_name"] = "cpu" if native is None or device == "cpu" else str(native.device_kind)
    if native is not None and device == "gpu":
        env["platform_version"] = str(native.client.platform_version)
        env.update(_cuda_versions())
    return env


def _cuda_versions() -> dict[str, Any]:
    """The CUDA runtime and cuDNN versions JAX's CUDA plugin was loaded with (private API:
    ``jax._src.lib.cuda_versions``; absent in a build without the plugin)."""
    try:
        from jax._src.lib import cuda_versions
    except ImportError:
        return {}
    if cuda_versions is None:
        return {}
    found: dict[str, Any] = {}
    for key, getter in (("cuda", "cuda_runtime_get_version"), ("cudnn", "cudnn_get_version")):
        get = getattr(cuda_versions, getter, None)
        if get is not None:
            try:
                found[key] = get()
            except Exception as exc:  # noqa: BLE001 - a version that cannot be read says why
                found[key] = f"unreadable: {type(exc).__name__}"
    return found
