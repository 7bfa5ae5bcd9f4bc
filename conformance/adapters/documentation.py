"""What each built-in framework's own documentation says about every convention of the
reference (``conformance.reference.CONVENTION_VALUES``).

Every framework documents every key, whether or not its value is the reference's canonical
one: a spec whose ``reference:`` picks other conventions must still find each framework's own
value here, or that framework's documented behaviour would read as an undocumented divergence.

A value is in the reference's vocabulary, for a neutral spec run through that framework's
adapter: the adapters translate (Paddle's and Keras' momentum = 1 - update weight, Paddle's
dropout ``mode``), so a value can follow from the documentation *and* the translation; ``says``
then tells both. ``link`` is the framework's official API page that states it, ``fix`` what a
user porting between frameworks does to get the same behaviour (empty where nothing needs
doing). Where the documentation is silent, the entry is ``Documented.silent(...)``: no value,
no link, and ``says`` names what was read.

This module imports nothing heavy (no numpy, no framework): the rest of the kit and the tests
read it without any framework installed. ``conformance.adapters.base`` re-exports
``Documented``.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Documented:
    """A convention as the framework documents it: the value (reference vocabulary), where it
    is written, how a user compensates for it when porting, and a short paraphrase of what
    the page states (or why the adapter's translation gives that value). ``value`` and
    ``link`` are empty for a convention the documentation does not settle."""

    value: str
    link: str
    fix: str = ""
    says: str = ""

    @classmethod
    def silent(cls, what: str, looked_at: str, fix: str = "") -> Documented:
        """An entry for a convention the documentation does not settle: ``what`` it does not
        say (``"whether ..."``) and ``looked_at``, the pages that were read."""
        return cls(value="", link="", fix=fix,
                   says=f"the documentation does not say {what}: {looked_at}")

    @property
    def is_silent(self) -> bool:
        return not self.value

    def as_dict(self) -> dict[str, str]:
        return {"value": self.value, "link": self.link, "fix": self.fix, "says": self.says}


# --- the pages -----------------------------------------------------------------------------

TORCH_BATCH_NORM = "https://pytorch.org/docs/stable/generated/torch.nn.BatchNorm2d.html"
TORCH_DROPOUT = "https://pytorch.org/docs/stable/generated/torch.nn.Dropout.html"

_PADDLE = "https://www.paddlepaddle.org.cn/documentation/docs/en/api/paddle/nn/"
PADDLE_BATCH_NORM = _PADDLE + "BatchNorm2D_en.html"
PADDLE_FUNCTIONAL_BATCH_NORM = _PADDLE + "functional/batch_norm_en.html"
PADDLE_DROPOUT = _PADDLE + "Dropout_en.html"

KERAS_BATCH_NORM = "https://keras.io/api/layers/normalization_layers/batch_normalization/"
KERAS_DROPOUT = "https://keras.io/api/layers/regularization_layers/dropout/"


# --- PyTorch -------------------------------------------------------------------------------

TORCH: dict[str, Documented] = {
    "bn.running_var_estimator": Documented(
        value="unbiased",
        link=TORCH_BATCH_NORM,
        fix="No argument changes it. To match a framework that feeds the biased variance "
            "(Paddle, Keras), expect running_var higher by m/(m-1) per update (m = values per "
            "channel), or rescale each batch's contribution by (m-1)/m after the update (e.g. "
            "recompute running_var from the batch with unbiased=False); with large m the two agree",
        says="the page says the training forward normalises with the biased variance "
             "(torch.var(unbiased=False)) but the value kept in the running average is the "
             "unbiased one (torch.var(unbiased=True))",
    ),
    "bn.momentum_weights": Documented(
        value="new",
        link=TORCH_BATCH_NORM,
        fix="torch's momentum is the update weight itself; from Paddle or Keras, whose momentum "
            "weighs the old running value, pass momentum = 1 - their momentum (never copy the "
            "number)",
        says="the page's note gives the update as x_new = (1 - momentum) * x_hat + momentum * x_t, "
             "x_t the new observation: momentum weighs the new batch statistic; the adapter "
             "passes momentum = update weight, so the neutral weight weighs the new value",
    ),
    "bn.eps_placement": Documented(
        value="inside",
        link=TORCH_BATCH_NORM,
        says="the page's formula divides by sqrt(Var[x] + eps): eps is added to the variance, "
             "inside the square root",
    ),
    "bn.running_update": Documented(
        value="as_specified",
        link=TORCH_BATCH_NORM,
        says="the running statistics are an exponential moving average with the momentum "
             "argument as weight; momentum=None switches to a cumulative (simple) average, which "
             "the adapter passes only for a spec that asks for the cumulative update",
    ),
    "bn.train_statistics": Documented(
        value="batch",
        link=TORCH_BATCH_NORM,
        says="the page says mean and standard deviation are computed per channel over the "
             "mini-batch at train time; the running estimates are for evaluation",
    ),
    "bn.normalization_var_estimator": Documented(
        value="biased",
        link=TORCH_BATCH_NORM,
        says="the page says the train-time forward uses the biased estimator of the variance, "
             "the same as torch.var(input, unbiased=False)",
    ),
    "bn.eval_statistics": Documented(
        value="running",
        link=TORCH_BATCH_NORM,
        says="the page says the running estimates kept in training are what evaluation "
             "normalises with (batch statistics in evaluation only with "
             "track_running_stats=False)",
    ),
    "bn.eval_updates": Documented(
        value="no",
        link=TORCH_BATCH_NORM,
        says="the page puts the updates of the running estimates in training and has evaluation "
             "only use them; it has no sentence saying outright that eval() leaves them alone "
             "(the comment in the forward of torch/nn/modules/batchnorm.py does: buffers are "
             "updated only when tracked and in training mode)",
    ),
    "dropout.rate_meaning": Documented(
        value="drop",
        link=TORCH_DROPOUT,
        says="p is the probability of an element to be zeroed; the adapter passes the rate as p",
    ),
    "dropout.train_scale": Documented(
        value="inverted",
        link=TORCH_DROPOUT,
        says="the page says outputs are scaled by 1/(1-p) during training",
    ),
    "dropout.eval": Documented(
        value="identity",
        link=TORCH_DROPOUT,
        says="the page says that, the scaling being done in training, the module computes the "
             "identity during evaluation",
    ),
}


# --- PaddlePaddle --------------------------------------------------------------------------

PADDLE: dict[str, Documented] = {
    # Measured on CPU (ranks 2 to 5, probe): running_var is fed the biased batch variance
    # (divided by m), as the API page's formula says. GPU/cuDNN not measured.
    "bn.running_var_estimator": Documented(
        value="biased",
        link=PADDLE_BATCH_NORM,
        fix="Paddle has no switch for it: each batch's contribution to running_var is "
            "(m-1)/m of the unbiased one (m = values per channel). When matching a "
            "framework that uses the unbiased estimator, recompute running_var with "
            "ddof=1 and set it into the layer's _variance, or use large batches",
        says="the page defines the mini-batch variance with a 1/m sum and feeds that same "
             "variance into moving_variance",
    ),
    "bn.momentum_weights": Documented(
        value="new",
        link=PADDLE_BATCH_NORM,
        fix="Paddle's momentum weighs the old running value: pass momentum = 1 - update weight "
            "(1 - torch's momentum; Keras' momentum carries over as is)",
        says="the page gives moving = moving * momentum + batch * (1 - momentum): Paddle's "
             "momentum weighs the old running value; the adapter passes momentum = 1 - update "
             "weight, so the neutral update weight weighs the new value",
    ),
    "bn.eps_placement": Documented(
        value="inside",
        link=PADDLE_BATCH_NORM,
        says="the page normalises with (x - mean) / sqrt(variance + epsilon): epsilon is added "
             "to the variance, inside the square root",
    ),
    "bn.running_update": Documented(
        value="as_specified",
        link=PADDLE_BATCH_NORM,
        fix="Paddle has only the exponential average; for torch's momentum=None (cumulative) set "
            "momentum = 1 - 1/k before the k-th batch",
        says="the page gives the moving statistics as an exponential average with momentum as "
             "the weight of the old value; there is no cumulative mode",
    ),
    "bn.train_statistics": Documented(
        value="batch",
        link=PADDLE_FUNCTIONAL_BATCH_NORM,
        says="the functional page (which BatchNorm1D/2D/3D call) says use_global_stats=None, the "
             "layer default the adapter keeps, uses mini-batch statistics in training and the "
             "global ones in testing; training=True computes with the batch data",
    ),
    "bn.normalization_var_estimator": Documented(
        value="biased",
        link=PADDLE_BATCH_NORM,
        says="the variance in the page's normalisation formula is the mini-batch variance it "
             "defines with a 1/m sum",
    ),
    "bn.eval_statistics": Documented(
        value="running",
        link=PADDLE_FUNCTIONAL_BATCH_NORM,
        fix="for torch's track_running_stats=False (batch statistics in evaluation too) pass "
            "use_global_stats=False",
        says="the functional page says inference mode (training=False) computes with the global "
             "mean and variance gathered in training, and use_global_stats=None uses the global "
             "statistics in testing",
    ),
    "bn.eval_updates": Documented(
        value="no",
        link=PADDLE_FUNCTIONAL_BATCH_NORM,
        fix="with use_global_stats=False (torch's track_running_stats=False) the kit measured "
            "Paddle 3.3 updating _mean/_variance in eval passes too: save and restore them "
            "around inference if you read them",
        says="the functional page says train mode tracks the global mean and variance during "
             "training and inference mode computes with those from training; it says nothing "
             "about updates under use_global_stats=False",
    ),
    "dropout.rate_meaning": Documented(
        value="drop",
        link=PADDLE_DROPOUT,
        says="p is the probability of setting units to zero; the adapter passes the rate as p",
    ),
    "dropout.train_scale": Documented(
        value="inverted",
        link=PADDLE_DROPOUT,
        fix="keep mode='upscale_in_train' (the default) to match torch and Keras; "
            "'downscale_in_infer' is the unscaled scheme they lack",
        says="for mode='upscale_in_train', which the adapter passes for a spec that scales in "
             "training, the page gives train out = input * mask / (1 - p); mode="
             "'downscale_in_infer' (passed for scaling: eval) leaves training unscaled",
    ),
    "dropout.eval": Documented(
        value="identity",
        link=PADDLE_DROPOUT,
        says="for mode='upscale_in_train' the page gives inference out = input, and says eval() "
             "disables dropout; 'downscale_in_infer' multiplies by (1 - p) in inference instead",
    ),
}


# --- TensorFlow / Keras 3 ------------------------------------------------------------------

TF: dict[str, Documented] = {
    "bn.running_var_estimator": Documented(
        value="biased",
        link=KERAS_BATCH_NORM,
        fix="moving_variance is fed var(batch), the biased (divide-by-m) variance used to "
            "normalise; a PyTorch/Paddle running_var is fed the unbiased m/(m-1) one. "
            "Multiply the batch variance by m/(m-1) before the update (subclass and "
            "override the moving update) to match, or expect running_var lower by "
            "(m-1)/m per update (m = values per channel).",
        says="the page feeds moving_var with the same var(batch) it normalises with; it does not "
             "name the divisor (the layer computes it with keras.ops.moments, whose "
             "tensorflow.org example is the divide-by-m variance)",
    ),
    "bn.momentum_weights": Documented(
        value="new",
        link=KERAS_BATCH_NORM,
        fix="Keras' momentum weighs the old moving value: pass momentum = 1 - update weight "
            "(1 - torch's momentum; Paddle's momentum carries over as is)",
        says="the page gives moving_mean = moving_mean * momentum + mean(batch) * (1 - momentum): "
             "Keras' momentum weighs the old value; the adapter passes momentum = 1 - update "
             "weight, so the neutral update weight weighs the new value",
    ),
    "bn.eps_placement": Documented(
        value="inside",
        link=KERAS_BATCH_NORM,
        says="the page's training and inference outputs divide by sqrt(var + epsilon): epsilon "
             "is added to the variance, inside the square root",
    ),
    "bn.running_update": Documented(
        value="as_specified",
        link=KERAS_BATCH_NORM,
        fix="Keras has only the exponential average; for torch's momentum=None (cumulative) set "
            "momentum = 1 - 1/k before the k-th batch",
        says="the page says moving_mean and moving_var are updated by an exponential average "
             "with momentum each time the layer is called in training mode; there is no "
             "cumulative mode",
    ),
    "bn.train_statistics": Documented(
        value="batch",
        link=KERAS_BATCH_NORM,
        says="the page says that in training (fit(), or training=True) the layer normalises with "
             "the mean and standard deviation of the current batch",
    ),
    "bn.normalization_var_estimator": Documented(
        value="biased",
        link=KERAS_BATCH_NORM,
        says="the page normalises with var(batch) and does not name the divisor; the layer "
             "takes it from keras.ops.moments, whose tensorflow.org example is the divide-by-m "
             "variance",
    ),
    "bn.eval_statistics": Documented(
        value="running",
        link=KERAS_BATCH_NORM,
        fix="Keras has no track_running_stats=False: to normalise with batch statistics in "
            "inference call the layer with training=True (which also updates the moving "
            "statistics)",
        says="the page says inference (evaluate(), predict(), training=False, the default) "
             "normalises with the moving mean and variance gathered in training",
    ),
    "bn.eval_updates": Documented(
        value="no",
        link=KERAS_BATCH_NORM,
        says="the page says the moving statistics are updated each time the layer is called in "
             "training mode, and inference normalises with them",
    ),
    "dropout.rate_meaning": Documented(
        value="drop",
        link=KERAS_DROPOUT,
        says="rate is the fraction of the input units to drop; the adapter passes the rate as "
             "rate",
    ),
    "dropout.train_scale": Documented(
        value="inverted",
        link=KERAS_DROPOUT,
        says="the page says inputs not set to 0 are scaled up by 1/(1 - rate) in training",
    ),
    "dropout.eval": Documented(
        value="identity",
        link=KERAS_DROPOUT,
        says="the page says dropout only applies with training=True, so no values are dropped "
             "during inference; its 1/(1 - rate) scaling is the training one",
    ),
}


# framework name (the adapter's ``name``) -> convention key -> what its documentation says
DOCUMENTED: dict[str, dict[str, Documented]] = {"torch": TORCH, "paddle": PADDLE, "tf": TF}
