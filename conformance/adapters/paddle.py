"""The PaddlePaddle adapter: ``paddle.nn.BatchNorm1D/2D/3D`` and ``paddle.nn.Dropout``.

Imported only inside the Paddle worker process. Neutral spec parameters are translated to
Paddle's own at construction; every translation is commented where it happens.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any, ClassVar

import numpy as np
import paddle

from conformance.adapters.base import (
    Adapter,
    DeviceUnavailable,
    Documented,
    LayerHandle,
    Unsupported,
)
from conformance.adapters.documentation import DOCUMENTED
from conformance.model import BatchNormSpec, DropoutSpec, LayerSpec, Mode
from conformance.reference import channel_axis_index
from conformance.tree import ModelSpec

# rank -> (layer class, data_format with channels first, data_format with channels last)
_BATCH_NORMS: dict[int, tuple[Any, str, str]] = {
    2: (paddle.nn.BatchNorm1D, "NC", "NC"),  # rank 2: the channel axis is 1 either way
    3: (paddle.nn.BatchNorm1D, "NCL", "NLC"),
    4: (paddle.nn.BatchNorm2D, "NCHW", "NHWC"),
    5: (paddle.nn.BatchNorm3D, "NCDHW", "NDHWC"),
}

_DETERMINISM_FLAGS = ("FLAGS_cudnn_deterministic", "FLAGS_embedding_deterministic",
                      "FLAGS_cpu_deterministic")


def _to_numpy(t: paddle.Tensor) -> np.ndarray:
    """A numpy copy of ``t``; bfloat16 (which numpy lacks) comes back as float32."""
    if t.dtype == paddle.bfloat16:
        t = t.astype("float32")
    return np.array(t.numpy())


class _Compiled(paddle.nn.Layer):
    """A wrapper whose forward calls the wrapped layer, so that ``paddle.jit.to_static`` can
    compile it without turning the wrapped layer itself into a static function (to_static on
    a layer replaces that layer's own ``forward``, which would compile the plain steps too).
    Mode switches propagate: ``train()``/``eval()`` on the wrapper reach the wrapped layer,
    and the compiled program reads and updates the wrapped layer's parameters and buffers."""

    def __init__(self, inner: paddle.nn.Layer) -> None:
        super().__init__()
        self.inner = inner

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        return self.inner(x)


class _PaddleHandle:
    """Drives one native layer: mode switching, forward, backward, state."""

    def __init__(self, layer: paddle.nn.Layer, dtype: str, running_stats: bool,
                 affine: bool = False, trainable: bool = True,
                 twin: Callable[[], paddle.nn.Layer] | None = None) -> None:
        self.layer = layer
        self.twin = twin  # builds the same layer again (for the static-mode graph context)
        self.dtype = dtype
        self.running_stats = running_stats  # a batch norm whose running statistics are reported
        self.affine = affine  # a batch norm with scale and shift parameters
        self.trainable = trainable  # False: scale and shift are stop_gradient (no gradient)
        self._compiled: paddle.nn.Layer | None = None  # the to_static wrapper, built once

    def _tensor(self, a: np.ndarray) -> paddle.Tensor:
        """Numpy -> tensor of the case dtype on the current device (cast natively)."""
        wide = np.float64 if self.dtype == "float64" else np.float32
        return paddle.to_tensor(np.asarray(a, dtype=wide)).astype(self.dtype)  # type: ignore[arg-type]

    def _runner(self, context: str) -> paddle.nn.Layer:
        if context == "compiled":
            if self._compiled is None:
                # full_graph=True: the AST transcription into one static program (it converts
                # or raises; the default SOT mode may silently fall back to eager execution
                # on a graph break, which would not test compilation). Cached per handle.
                self._compiled = paddle.jit.to_static(_Compiled(self.layer), full_graph=True)
            return self._compiled
        return self.layer

    def forward(
        self, x: np.ndarray, mode: Mode, grad_output: np.ndarray | None, context: str = "plain"
    ) -> dict[str, np.ndarray]:
        if context == "inference":
            # torch.inference_mode has no dygraph counterpart in Paddle: paddle.no_grad is the
            # only switch (that is the no_grad context), and paddle.inference is the deployment
            # predictor for exported models, which runs no training-mode pass on a live layer.
            raise Unsupported("Paddle has no inference-mode context in dynamic-graph mode "
                              "(only paddle.no_grad; paddle.inference is the predictor for "
                              "exported models, not a context for a live layer)")
        if context == "graph":
            return {"output": self._static_call(x, mode == "train")}
        if context not in ("plain", "no_grad", "compiled"):
            raise Unsupported(f"unknown forward context {context!r}")
        runner = self._runner(context)
        runner.train() if mode == "train" else runner.eval()
        xt = self._tensor(x)
        xt.stop_gradient = grad_output is None
        if context == "no_grad":
            with paddle.no_grad():
                y = runner(xt)
        else:
            y = runner(xt)
        out = {"output": _to_numpy(y)}
        if grad_output is not None:
            # d/dx sum(g * y): seed the backward pass with g directly (equivalent, and needs
            # no float16 multiply, which Paddle's CPU build lacks).
            y.backward(self._tensor(grad_output))
            assert xt.grad is not None
            out["grad_input"] = _to_numpy(xt.grad)
            weight, bias = getattr(self.layer, "weight", None), getattr(self.layer, "bias", None)
            if weight is not None and weight.grad is not None:
                out["grad_scale"] = _to_numpy(weight.grad)
            if bias is not None and bias.grad is not None:
                out["grad_shift"] = _to_numpy(bias.grad)
            if self.affine and not self.trainable:
                # stop_gradient parameters get no gradient (grad stays None); the kit reports
                # a frozen parameter's gradient as zeros. Measured, not assumed: a gradient
                # Paddle did produce is reported as is.
                for name, param in (("grad_scale", weight), ("grad_shift", bias)):
                    if name not in out and param is not None:
                        out[name] = np.zeros(param.shape, dtype=_to_numpy(param).dtype)
            self.layer.clear_gradients()
        return out

    def _static_call(self, x: np.ndarray, training: bool) -> np.ndarray:
        """Paddle's static-graph mode, its deferred graph: a twin of the layer built in a
        ``paddle.static.Program`` with this layer's values loaded into the scope, the program
        run by an Executor fetching only the output, then the twin's values copied back."""
        if self.twin is None:
            raise Unsupported("the graph context is driven for batch norm only")
        values = {name: p.numpy() for name, p in self.layer.state_dict().items()}
        place = paddle.CPUPlace() if paddle.get_device() == "cpu" else paddle.CUDAPlace(0)
        paddle.enable_static()
        try:
            main, startup = paddle.static.Program(), paddle.static.Program()
            with paddle.static.program_guard(main, startup):
                data = paddle.static.data("x", list(x.shape), self.dtype)
                twin = self.twin()
                twin.train() if training else twin.eval()
                y = twin(data)
            executor = paddle.static.Executor(place)
            executor.run(startup)
            scope = paddle.static.global_scope()
            names = {key: p.name for key, p in twin.state_dict().items()}
            for key, name in names.items():
                scope.find_var(name).get_tensor().set(values[key], place)
            (output,) = executor.run(main, feed={"x": np.asarray(x, dtype=self.dtype)}, fetch_list=[y])
            after = {key: np.array(scope.find_var(name).get_tensor()) for key, name in names.items()}
        finally:
            paddle.disable_static()
        for key, param in self.layer.state_dict().items():
            param.set_value(after[key])
        return np.asarray(output)

    def reset_running_stats(self) -> None:
        # Paddle's batch norm has no reset method (and keeps no batch count): the buffers are
        # set to their initial values, mean 0 and variance 1, in their own dtype. A layer
        # without running statistics still has the (unused) buffers: resetting them changes
        # nothing observable, as torch's reset on track_running_stats=False.
        if not hasattr(self.layer, "_mean"):
            raise Unsupported("dropout has no running statistics")
        for buf, fill in ((self.layer._mean, 0.0), (self.layer._variance, 1.0)):
            buf.set_value(np.full(buf.shape, fill, dtype=_to_numpy(buf).dtype))

    def state(self) -> dict[str, np.ndarray]:
        # Paddle keeps no count of batches seen, so there is no ``batch_count``.
        if not self.running_stats:
            return {}
        return {"running_mean": _to_numpy(self.layer._mean),
                "running_var": _to_numpy(self.layer._variance)}


class PaddleAdapter(Adapter):
    """PaddlePaddle in dynamic-graph (eager) mode."""

    name = "paddle"
    install_hint = 'pip install "conformance[paddle]"  (or: pip install paddlepaddle)'
    documented: ClassVar[dict[str, Documented]] = DOCUMENTED["paddle"]  # every convention, with its page

    def version(self) -> str:
        return str(paddle.__version__)

    def devices(self) -> list[str]:
        found = ["cpu"]
        if paddle.device.is_compiled_with_cuda() and paddle.device.cuda.device_count() > 0:
            found.append("gpu")
        return found

    def environment(self, device: str) -> dict[str, Any]:
        env = super().environment(device)
        env.update(paddle=self.version(), paddle_commit=str(paddle.version.commit),
                   with_mkl=str(paddle.version.with_mkl), device_name="cpu")
        if paddle.device.is_compiled_with_cuda():
            env.update(cuda=str(paddle.version.cuda()), cudnn=str(paddle.version.cudnn()))
            if device == "gpu" and "gpu" in self.devices():
                env["device_name"] = paddle.device.cuda.get_device_name(0)
        for flag in _DETERMINISM_FLAGS:  # only those this build defines, or set in the env
            try:
                env[flag] = str(paddle.get_flags([flag])[flag])
            except ValueError:  # "cannot get its value": the flag is not in this build
                if flag in os.environ:
                    env[flag] = os.environ[flag]
        return env

    def build(self, layer: LayerSpec, dtype: str, device: str) -> LayerHandle:
        if device not in self.devices():
            raise DeviceUnavailable(
                f"Paddle {self.version()} sees no {device!r} device; for 'gpu' install a CUDA "
                "build (pip install paddlepaddle-gpu, see paddlepaddle.org.cn/install) and make "
                "a GPU visible"
            )
        paddle.set_device("cpu" if device == "cpu" else "gpu:0")
        if isinstance(layer, ModelSpec):
            # the model module imports Paddle too: imported here, in the worker only
            from conformance.adapters.paddle_model import build_model

            return build_model(self, layer, dtype, device)  # type: ignore[return-value]  # a ModelHandle
        if isinstance(layer, BatchNormSpec):
            if device == "cpu" and dtype in ("float16", "bfloat16"):
                # Measured (Paddle 3.3.1, CPU build): the first forward raises "The kernel with
                # key (CPU, Undefined(AnyLayout), float16) of kernel `batch_norm` is not
                # registered ... Paddle support following DataTypes: float64, float32" (same
                # for bfloat16). GPU builds have half kernels and run natively.
                raise Unsupported(f"Paddle {self.version()} has no CPU kernel for batch_norm "
                                  f"in {dtype} (only float32 and float64 are registered)")
            return _PaddleHandle(self._batch_norm(layer, dtype), dtype, layer.running_stats,
                                 affine=layer.affine, trainable=layer.trainable,
                                 twin=lambda: self._batch_norm(layer, dtype))
        return _PaddleHandle(self._dropout(layer), dtype, running_stats=False)

    def _batch_norm(self, spec: BatchNormSpec, dtype: str) -> paddle.nn.Layer:
        if spec.update == "cumulative":
            raise Unsupported("Paddle's batch norm only has an exponential moving average "
                              "(momentum); it has no cumulative average of the batches seen")
        if spec.rank not in _BATCH_NORMS:
            raise Unsupported(f"Paddle has no batch norm for rank-{spec.rank} inputs (2 to 5)")
        cls, first, last = _BATCH_NORMS[spec.rank]
        saved = paddle.get_default_dtype()
        # Parameters and running statistics: float64 for float64 inputs, else float32 (what
        # Paddle itself uses for float16/bfloat16 batch norm).
        paddle.set_default_dtype("float64" if dtype == "float64" else "float32")
        options: dict[str, Any] = {}
        if spec.native_momentum is not None:
            options["momentum"] = spec.native_momentum  # probe: Paddle's own argument, as is
        elif spec.update_weight is not None:
            options["momentum"] = 1.0 - spec.update_weight  # Paddle's momentum weighs the OLD value
        if spec.eps is not None:  # None: keep Paddle's default
            options["epsilon"] = spec.eps  # added to the variance inside the square root
        try:
            bn = cls(
                spec.num_features,
                **options,
                weight_attr=None if spec.affine else False,  # False: no scale parameter
                bias_attr=None if spec.affine else False,  # False: no shift parameter
                data_format=first if spec.channel_axis == "first" else last,
                # None: batch stats in train, running in eval. False: batch statistics in
                # both modes, the closest to "no running statistics"; the buffers still exist
                # (state() does not report them). Measured: in eval, Paddle 3.3 still updates
                # them and its backward then uses them, not the batch statistics.
                # True: Paddle's native switch for frozen statistics, running statistics in
                # both modes and no update ("use_global_stats" on the API page).
                use_global_stats=(False if not spec.running_stats
                                  else True if spec.frozen else None),
            )
        finally:
            paddle.set_default_dtype(saved)
        for values, param in ((spec.scale if spec.affine else None, getattr(bn, "weight", None)),
                              (spec.shift if spec.affine else None, getattr(bn, "bias", None)),
                              (spec.running_mean, bn._mean), (spec.running_var, bn._variance)):
            if values is not None and param is not None:
                param.set_value(np.asarray(values, dtype=param.numpy().dtype)
                                .reshape(spec.num_features))
        if spec.affine and not spec.trainable:
            # scale and shift get no gradient (the same as ParamAttr(trainable=False))
            bn.weight.stop_gradient = True
            bn.bias.stop_gradient = True
        return bn

    def _dropout(self, spec: DropoutSpec) -> paddle.nn.Layer:
        if spec.seed is not None:
            paddle.seed(spec.seed)  # Paddle's global generator (all devices)
        # Channel-wise: one draw per (sample, channel), the mask broadcast along the other
        # axes; this is exactly what Dropout2D/3D do (axis=[0, 1] or [0, rank-1]), for any rank.
        axis = (None if spec.granularity == "element"
                else [0, channel_axis_index(spec.rank, spec.channel_axis)])
        return paddle.nn.Dropout(
            # p is the probability to drop, as rate (a native rate is passed as is); no range
            # check here: Paddle checks p on the first forward
            p=spec.rate if spec.native_rate is None else spec.native_rate,
            axis=axis,
            # "train": inverted dropout (scale kept values by 1/(1-p), eval identity);
            # "eval": keep values unscaled in training, multiply by (1-p) in eval.
            mode="upscale_in_train" if spec.scaling == "train" else "downscale_in_infer",
        )
