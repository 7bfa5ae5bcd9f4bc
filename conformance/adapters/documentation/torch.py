"""What PyTorch's documentation says about each convention (``torch.nn``)."""

from __future__ import annotations

from conformance.adapters.documentation.documented import Documented

TORCH_BATCH_NORM = "https://pytorch.org/docs/stable/generated/torch.nn.BatchNorm2d.html"
TORCH_DROPOUT = "https://pytorch.org/docs/stable/generated/torch.nn.Dropout.html"


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
