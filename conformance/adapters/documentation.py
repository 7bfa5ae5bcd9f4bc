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
    "model.eval_propagates": Documented(
        value="all",
        link="https://pytorch.org/docs/stable/notes/autograd.html#evaluation-mode-nn-module-eval",
        fix="a custom module that overrides train() must pass the mode on (super().train(mode)) "
            "or its submodules keep theirs",
        says="the note says how model.eval() affects a model depends on the modules used in it "
             "(Dropout, BatchNorm2d) and that calling model.eval() and model.train() is the "
             "user's job: the model's switch reaches its modules; the nn.Module page does not "
             "spell out the recursion (Module.train sets the mode of every child in turn)",
    ),
    "model.call_site_flag": Documented(
        value="honoured",
        link="https://pytorch.org/docs/stable/generated/torch.nn.functional.dropout.html",
        fix="torch modules take no training argument: where another framework passes "
            "training=... to a layer or sub-model, call the functional form with training=... or "
            "switch that submodule with .train()/.eval()",
        says="only the functional forms take a flag: F.dropout applies dropout if training is "
             "True (F.batch_norm's training likewise picks batch statistics), so the flag "
             "written at the call is what the call computes; a module's mode comes from "
             "train()/eval() only",
    ),
    "model.call_mode": Documented(
        value="current",
        link="https://pytorch.org/docs/stable/notes/modules.html#neural-network-training-with-modules",
        fix="a torch call runs in the mode last set: call model.eval() before inference (a Keras "
            "call without training= always infers)",
        says="the Modules note says modules default to training mode, are switched with train() "
             "and eval() and behave by the mode they are in (its example forward reads "
             "self.training): a plain call runs in the current mode",
    ),
    "model.train_step_mode": Documented(
        value="current",
        link="https://pytorch.org/docs/stable/notes/autograd.html#evaluation-mode-nn-module-eval",
        fix="call model.train() before training (Keras' train_on_batch always trains): a "
            "hand-written step after an eval() pass trains with dropout off and batch norm on "
            "its running statistics",
        says="torch has no training-step entry: a step written by hand (forward, backward, "
             "optimizer.step()) runs in whatever mode the model is in; the note makes calling "
             "model.train() when training the user's responsibility",
    ),
    "model.freeze_survives_mode_switch": Documented.silent(
        "whether a batch-norm module kept in eval() stays in evaluation mode when its model's "
        "train() runs",
        "the nn.Module page (train(), eval()), the Modules note and the autograd note's "
        "evaluation-mode section (the source of Module.train sets every child's mode, so the "
        "model's next train() undoes the freeze)",
        fix="re-apply eval() to the frozen batch-norm modules after every model.train(), or "
            "override the model's train() to do so",
    ),
    "model.override_respected": Documented(
        value="true",
        link="https://pytorch.org/docs/stable/generated/torch.nn.Module.html#torch.nn.Module.train",
        says="train(mode) sets the module and its descendants in training or evaluation mode; "
             "it does so by calling train(mode) on each child (the source of Module.train), so "
             "a child's own override of train() is what runs for that child",
    ),
    "model.predict_switches": Documented.silent(
        "what a predict entry does to the mode: torch has no predict entry",
        "the nn.Module page and the Modules note (inference is model.eval() then a call)",
    ),
    "model.freeze_scope": Documented(
        value="statistics",
        link="https://pytorch.org/docs/stable/notes/autograd.html#evaluation-mode-nn-module-eval",
        fix="eval() on a batch norm freezes its statistics only: to freeze its weight and bias "
            "too (as Keras' trainable=False does), also call requires_grad_(False) on them",
        says="the note says evaluation mode is not a mechanism to stop gradients (that is "
             "requires_grad / no_grad): a batch norm kept in eval() still learns its weight and "
             "bias",
    ),
    "model.call_flag_scope": Documented(
        value="call",
        link="https://pytorch.org/docs/stable/generated/torch.nn.functional.dropout.html",
        says="a training flag exists only as an argument of a functional call, which computes "
             "with it and nothing else: it cannot reach another call; modules run in their own mode",
    ),
    "functional.dropout_default_training": Documented(
        value="true",
        link="https://pytorch.org/docs/stable/generated/torch.nn.functional.dropout.html",
        fix="pass training=self.training to F.dropout in a forward: model.eval() does not reach "
            "a functional call",
        says="the page gives training (apply dropout if True) with default True: F.dropout "
             "called without it drops, in a model in eval mode too",
    ),
    "functional.batch_norm_default_training": Documented(
        value="false",
        link="https://pytorch.org/docs/stable/generated/torch.nn.functional.batch_norm.html",
        fix="pass training=self.training to F.batch_norm in a forward, or the running "
            "statistics are never updated",
        says="the page's signature gives training=False: F.batch_norm called without it "
             "normalises with the running statistics it is given and leaves them as they are, "
             "in a training model too",
    ),
}


# --- PaddlePaddle --------------------------------------------------------------------------

PADDLE_LAYER = _PADDLE + "Layer_en.html"
PADDLE_FUNCTIONAL_DROPOUT = _PADDLE + "functional/dropout_en.html"

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
    # models (conformance.adapters.paddle_model), measured on CPU with specs/model
    "model.eval_propagates": Documented(
        value="all",
        link=PADDLE_LAYER,
        fix="a container below the root whose own train()/eval() do not delegate is switched "
            "anyway: Layer.train()/eval() set .training on every sublayer directly (measured), "
            "so an override only holds on the layer it is called on",
        says="train() sets this layer and all its sublayers to training mode, eval() all of "
             "them to evaluation mode; only layers such as Dropout and BatchNorm are affected",
    ),
    "model.call_site_flag": Documented(
        value="honoured",
        link=PADDLE_FUNCTIONAL_DROPOUT,
        fix="Paddle layers take no training argument: to fix the mode at a call site call "
            "paddle.nn.functional.dropout/batch_norm with training=, or switch that layer with "
            "train()/eval()",
        says="the functional forms take a training flag (dropout: whether it is in the training "
             "phase; batch_norm: batch statistics and tracking when True, the global statistics "
             "when False) and act on it; layer objects have no such argument",
    ),
    "model.call_mode": Documented(
        value="current",
        link=PADDLE_LAYER,
        fix="call model.eval() before inference and model.train() before training: a plain "
            "call keeps whatever mode was set last",
        says="the mode is set by train()/eval() on the layer and its sublayers, and the page's "
             "example calls the layer after each switch, in that mode; a call takes no mode",
    ),
    "model.train_step_mode": Documented(
        value="current",
        link=PADDLE_LAYER,
        fix="call model.train() before a training loop written by hand (forward, "
            "loss.backward(), optimizer.step()), or use paddle.Model.train_batch, which calls "
            "network.train() itself",
        says="only train()/eval() change a layer's mode, so a training step written by hand, "
             "as the adapter runs it, computes in the mode the model is in",
    ),
    "model.freeze_survives_mode_switch": Documented(
        value="false",
        link=PADDLE_LAYER,
        fix="to keep a batch norm frozen across model.train(), set use_global_stats=True on it "
            "(BatchNorm1D/2D/3D read it at every call) instead of calling eval() on it",
        says="train() sets the layer and all its sublayers to training mode, so a sublayer "
             "switched to eval() on its own is back in training after the next model.train()",
    ),
    "model.override_respected": Documented(
        value="false",
        link=PADDLE_LAYER,
        fix="an override of train()/eval() only holds on the layer it is called on: the root's "
            "train()/eval() set .training on every sublayer itself, so freeze a nested batch "
            "norm with use_global_stats=True, or re-freeze at the top after each switch",
        says="train() and eval() set this layer and all its sublayers to training or "
             "evaluation mode (Layer.train()/eval() set each sublayer's training attribute "
             "directly, without calling the sublayer's own train()/eval(): measured)",
    ),
    "model.predict_switches": Documented.silent(
        "that paddle.Model.predict_batch switches the network to evaluation mode and leaves it "
        "there (its source calls network.eval())",
        "the paddle.Model page (predict_batch: run one prediction step on a batch)",
        fix="call model.train() after predict_batch before training by hand",
    ),
    "model.freeze_scope": Documented(
        value="statistics",
        link=PADDLE_BATCH_NORM,
        fix="use_global_stats=True (or eval()) freezes the statistics only: to freeze the scale "
            "and shift too, also set stop_gradient=True on weight and bias (or "
            "ParamAttr(trainable=False))",
        says="use_global_stats only chooses the global mean and variance over the batch's; "
             "whether the scale and shift learn is their own trainable attribute (weight_attr / "
             "bias_attr)",
    ),
    "model.call_flag_scope": Documented(
        value="call",
        link=PADDLE_FUNCTIONAL_DROPOUT,
        says="a training flag exists only as an argument of a functional call, which computes "
             "with it: it cannot reach another call; layers run in their own mode",
    ),
    "functional.dropout_default_training": Documented(
        value="true",
        link=PADDLE_FUNCTIONAL_DROPOUT,
        fix="pass training=self.training to paddle.nn.functional.dropout inside a layer's forward",
        says="the signature has training=True by default: the flag says whether it is in the "
             "training phase, so a call without it drops",
    ),
    "functional.batch_norm_default_training": Documented(
        value="false",
        link=PADDLE_FUNCTIONAL_BATCH_NORM,
        fix="pass training=self.training to paddle.nn.functional.batch_norm for batch statistics "
            "in training (the default, False, is inference: global statistics, no update)",
        says="training defaults to False, inference mode, which computes with the global mean "
             "and variance from training; True computes with the batch and tracks the statistics",
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
    "model.eval_propagates": Documented(
        value="all",
        link=KERAS_BATCH_NORM,
        fix="Keras has no train()/eval(): pass training=True or training=False to the outer "
            "model's call; it reaches every layer inside, nested models included",
        says="the page says the layer trains when the layer or the model holding it is called "
             "with training=True (or by fit()) and infers when it is called with training=False: "
             "a model's training argument reaches the layers it holds; the adapter's train and "
             "eval entries are that argument",
    ),
    "model.call_site_flag": Documented(
        value="honoured",
        link="https://keras.io/guides/transfer_learning/",
        says="the guide calls the base model with training=False inside a model that is then "
             "trained with fit(), and says the base model keeps running in inference mode (its "
             "batch norms do not update) because of that call-site argument",
    ),
    "model.call_mode": Documented(
        value="inference",
        link=KERAS_BATCH_NORM,
        fix="a plain Keras call model(x) infers whatever was called before; to train outside "
            "fit() pass training=True (a torch/Paddle model instead runs in the mode last set by "
            "train()/eval())",
        says="the page says inference is evaluate(), predict() or a call with training=False, "
             "which is the default: a call without training runs in inference mode",
    ),
    "model.train_step_mode": Documented(
        value="train",
        link="https://keras.io/guides/custom_train_step_in_tensorflow/",
        fix="Keras' training step always trains (it calls self(x, training=True)); a torch/Paddle "
            "training step runs in the mode last set, so call model.train() there first",
        says="the guide's train_step, the step fit() (and train_on_batch) runs, calls the model "
             "with training=True for the forward pass",
    ),
    "model.freeze_survives_mode_switch": Documented(
        value="true",
        link="https://keras.io/getting_started/faq/#whats-the-difference-between-the-training-argument-in-call-and-the-trainable-attribute",
        fix="Keras freezes a batch norm with layer.trainable = False, which stays frozen at every "
            "later call, training=True ones included, until trainable is set back (and compile() "
            "called again); there is no per-layer mode to set",
        says="the FAQ says that for a BatchNormalization setting trainable = False makes its "
             "training call argument default to False, so it does not update its state during "
             "training; Keras has no mode switch that could undo it (the adapter freezes through "
             "trainable, and reports a freeze through the layer's mode unsupported)",
    ),
    "model.override_respected": Documented.silent(
        "how a model's mode switch treats a nested model that overrides it: Keras has no mode "
        "switch (no train()/eval()) to override, the mode is each call's training argument",
        "the Model API page and the FAQ entry on the training argument and the trainable "
        "attribute (the adapter reports override_mode_switch unsupported)",
    ),
    "model.freeze_scope": Documented(
        value="layer",
        link="https://keras.io/getting_started/faq/#whats-the-difference-between-the-training-argument-in-call-and-the-trainable-attribute",
        fix="trainable=False freezes a batch norm's gamma and beta as well as its statistics; "
            "to freeze the statistics only, call the layer with training=False and keep it "
            "trainable",
        says="the FAQ says trainable decides whether the layer's weights are updated in "
             "training, and for BatchNormalization that trainable=False also makes it run in "
             "inference mode: nothing of the layer learns",
    ),
    "model.call_flag_scope": Documented.silent(
        "how far a training value given at one call site reaches within a forward pass (Keras "
        "3 keeps it in the call context that later calls without a flag read: measured)",
        "the FAQ entry on the training argument and the Layer API page; the behaviour is "
        "discussed upstream (keras-team/keras pull request 23166)",
        fix="in a custom call(), pass training= explicitly to every later layer call after a "
            "call with a hard-coded training=, or put the hard-coded part in its own sub-model "
            "called last",
    ),
    "model.predict_switches": Documented(
        value="false",
        link="https://keras.io/getting_started/faq/#whats-the-difference-between-model-methods-predict-and-call",
        says="the FAQ gives predict() as calling the model batch by batch and collecting the "
             "outputs' numpy values, and the BatchNormalization page says predict() runs in "
             "inference mode; a Keras model keeps no mode for predict to switch, so the calls "
             "after it run as their own training argument says",
    ),
    "functional.dropout_default_training": Documented(
        value="true",
        link="https://www.tensorflow.org/api_docs/python/tf/keras/random/dropout",
        fix="keras.random.dropout drops at every call: in a custom layer call it only under "
            "`if training:` (and give it a keras.random.SeedGenerator for a new mask per call)",
        says="the page gives keras.random.dropout(inputs, rate, noise_shape=None, seed=None): no "
             "training argument, so a call drops; the adapter reports a call with a training "
             "flag unsupported",
    ),
    "functional.batch_norm_default_training": Documented(
        value="false",
        link="https://www.tensorflow.org/api_docs/python/tf/keras/ops/batch_normalization",
        fix="Keras has no functional batch norm with running statistics: use the "
            "BatchNormalization layer (the adapter reports a functional batch norm unsupported)",
        says="the page says keras.ops.batch_normalization normalises x by the mean and variance "
             "it is given and returns the normalised tensor: it computes no batch statistics and "
             "updates nothing",
    ),
}


# framework name (the adapter's ``name``) -> convention key -> what its documentation says
DOCUMENTED: dict[str, dict[str, Documented]] = {"torch": TORCH, "paddle": PADDLE, "tf": TF}
