"""What the ONNX operator pages and ONNX Runtime's documentation say about each convention
(ONNX graphs run by ``onnxruntime.InferenceSession``)."""

from __future__ import annotations

from conformance.adapters.documentation.documented import Documented

ONNX_BATCH_NORM = "https://onnx.ai/onnx/operators/onnx__BatchNormalization.html"
ONNX_DROPOUT = "https://onnx.ai/onnx/operators/onnx__Dropout.html"

NO_MODELS = ("ONNX Runtime runs graphs: it has no model object with a mode, no train()/eval(), "
             "no training call argument and no optimizer step in an InferenceSession")
READ = ("the ONNX BatchNormalization and Dropout operator pages, the onnxruntime Python API "
        "summary (InferenceSession, SessionOptions) and the on-device training API page")


def _no_models(what: str) -> Documented:
    return Documented.silent(f"{what}: {NO_MODELS} (the adapter reports every model case "
                             "unsupported)", READ)


ONNXRUNTIME: dict[str, Documented] = {
    "bn.running_var_estimator": Documented(
        value="biased",
        link=ONNX_BATCH_NORM,
        fix="running_var is fed the population (divide-by-m) variance; a PyTorch/Paddle-style "
            "unbiased running_var is m/(m-1) times the batch's contribution: rescale the "
            "running_var output's batch term by m/(m-1) outside the graph, or expect it lower "
            "by (m-1)/m per update (m = values per channel)",
        says="the page gives running_var = input_var * momentum + current_var * (1 - momentum) "
             "with current_var = ReduceVar(X), and says ReduceVar is the population variance, "
             "sum((x_i - mean)^2) / N; ONNX Runtime's CPU kernel (batch_norm.h) divides by "
             "N * spatial size, as measured",
    ),
    "bn.momentum_weights": Documented(
        value="new",
        link=ONNX_BATCH_NORM,
        fix="ONNX's momentum weighs the old running value (default 0.9): pass momentum = 1 - "
            "update weight (1 - torch's momentum; Keras' and Paddle's momentum as is); "
            "torch.onnx.export does this translation",
        says="the page gives running_mean = input_mean * momentum + current_mean * (1 - "
             "momentum): ONNX's momentum weighs the old value; the adapter passes momentum = "
             "1 - update weight, so the neutral update weight weighs the new value",
    ),
    "bn.eps_placement": Documented(
        value="inside",
        link=ONNX_BATCH_NORM,
        says="the page gives Y = (X - current_mean) / sqrt(current_var + epsilon) * scale + B: "
             "epsilon is added to the variance inside the square root (default 1e-5)",
    ),
    "bn.running_update": Documented(
        value="as_specified",
        link=ONNX_BATCH_NORM,
        fix="ONNX has only the exponential average: for torch's momentum=None (cumulative) "
            "build the graph with momentum = 1 - 1/k for the k-th batch; the node has no batch "
            "counter",
        says="the page gives the running statistics of training_mode=True as the momentum "
             "average of the input statistics and the batch's, returned as the running_mean and "
             "running_var outputs (the adapter feeds them back at the next call); there is no "
             "cumulative mode",
    ),
    "bn.train_statistics": Documented(
        value="batch",
        link=ONNX_BATCH_NORM,
        says="the page says that with training_mode=True Y is normalised with current_mean and "
             "current_var, the statistics of X over every axis but the channel one",
    ),
    "bn.normalization_var_estimator": Documented(
        value="biased",
        link=ONNX_BATCH_NORM,
        says="the page normalises with current_var = ReduceVar(X) and says ReduceVar is the "
             "population variance (divide by N, no Bessel correction)",
    ),
    "bn.eval_statistics": Documented(
        value="running",
        link=ONNX_BATCH_NORM,
        fix="ONNX has no track_running_stats=False: batch statistics come only with "
            "training_mode=1, which also returns updated running statistics (discard them)",
        says="the page says input_mean and input_var are the estimated statistics in inference "
             "mode (training_mode=False, the default), and Y is computed from them",
    ),
    "bn.eval_updates": Documented(
        value="no",
        link=ONNX_BATCH_NORM,
        says="the page says that with training_mode=False the extra outputs (running_mean, "
             "running_var) are invalid: an inference node produces no new statistics, so the "
             "statistics fed in stay as they are",
    ),
    "dropout.rate_meaning": Documented(
        value="drop",
        link=ONNX_DROPOUT,
        says="the page calls ratio the ratio of random dropout, with value in [0, 1) (ONNX "
             "Runtime refuses 1: 'ratio must be in the range [0, 1)'); the adapter passes the "
             "rate as ratio",
    ),
    "dropout.train_scale": Documented(
        value="inverted",
        link=ONNX_DROPOUT,
        says="the page says that with training_mode true the output is scale * data * mask with "
             "scale = 1 / (1 - ratio)",
    ),
    "dropout.eval": Documented(
        value="identity",
        link=ONNX_DROPOUT,
        says="the page says that to run a trained model in inference mode the user does not pass "
             "training_mode or sets it to false, and then the output is the input (the mask all "
             "true)",
    ),
    "model.eval_propagates": _no_models("how a model's mode switch reaches nested layers"),
    "model.call_site_flag": _no_models("whether a call site's hard-coded training flag wins"),
    "model.call_mode": _no_models("which mode a plain call runs in"),
    "model.train_step_mode": _no_models(
        "which mode a training step runs the layers in (training needs onnxruntime-training's "
        "TrainingSession artifacts, outside an InferenceSession)"),
    "model.freeze_survives_mode_switch": _no_models(
        "whether a frozen batch norm stays frozen after a mode switch"),
    "model.override_respected": _no_models("whether a nested container's mode override runs"),
    "model.predict_switches": _no_models("whether a predict entry point switches the mode"),
    "model.freeze_scope": _no_models("what a frozen batch norm keeps"),
    "model.call_flag_scope": _no_models("how far a call-site training flag reaches"),
    "functional.dropout_default_training": Documented.silent(
        "what a functional dropout does without a training flag: ONNX has no functional forms "
        "outside a graph (the Dropout operator without its training_mode input is the "
        "identity, measured by the layer cases)", READ),
    "functional.batch_norm_default_training": Documented.silent(
        "what a functional batch norm does without a training flag: ONNX has no functional "
        "forms outside a graph (the BatchNormalization operator without training_mode is the "
        "inference form, measured by the layer cases)", READ),
}
