"""What Flax's documentation says about each convention: ``FLAX`` for linen (the adapter
``flax``, the default) and ``FLAX_NNX`` for NNX (the adapter ``flax-nnx``).

The layers' semantics are the same in both APIs (NNX's ``BatchNorm`` and ``Dropout`` are
linen's, ported: the same momentum, the same statistics); each table links its own API's page.
Where the API page gives no formula, the entry links the page's ``[source]`` (Flax's own
rendered source on the documentation site) and says so.
"""

from __future__ import annotations

from conformance.adapters.documentation.documented import Documented

DOCS = "https://flax.readthedocs.io/en/latest"
LINEN_LAYERS = f"{DOCS}/api_reference/flax.linen/layers.html"
LINEN_BATCH_NORM = f"{LINEN_LAYERS}#flax.linen.BatchNorm"
LINEN_DROPOUT = f"{LINEN_LAYERS}#flax.linen.Dropout"
LINEN_SOURCE = f"{DOCS}/_modules/flax/linen/normalization.html"
LINEN_MODULE = f"{DOCS}/api_reference/flax.linen/module.html"
IMAGENET_MODELS = "https://github.com/google/flax/blob/main/examples/imagenet/models.py"
IMAGENET_TRAIN = "https://github.com/google/flax/blob/main/examples/imagenet/train.py"
NNX_BATCH_NORM = f"{DOCS}/api_reference/flax.nnx/nn/normalization.html#flax.nnx.BatchNorm"
NNX_DROPOUT = f"{DOCS}/api_reference/flax.nnx/nn/stochastic.html#flax.nnx.Dropout"
NNX_SOURCE = f"{DOCS}/_modules/flax/nnx/nn/normalization.html"
NNX_MODULE = f"{DOCS}/api_reference/flax.nnx/module.html"
NNX_TRAIN = f"{NNX_MODULE}#flax.nnx.Module.train"
NNX_SET_ATTRIBUTES = f"{NNX_MODULE}#flax.nnx.Module.set_attributes"
NNX_MNIST = f"{DOCS}/mnist_tutorial.html"


def _layers(batch_norm: str, dropout: str, source: str, mode: str) -> dict[str, Documented]:
    """The batch-norm and dropout entries, the same for linen and NNX but for the pages and
    the name of the inference switch (``mode``)."""
    return {
        "bn.running_var_estimator": Documented(
            value="biased",
            link=source,
            fix="the running variance is fed the biased (divide-by-m) batch variance; a PyTorch "
                "running_var is fed the unbiased m/(m-1) one: expect Flax's lower by (m-1)/m per "
                "update (m = values per channel), or rescale the batch variance by m/(m-1) in a "
                "subclass to match",
            says="the API page gives no formula; its [source] computes the batch statistics with "
                 "_compute_stats (Var = E[|x|^2] - |E[x]|^2, means over the m values of a channel, "
                 "clipped at 0) and updates ra_var = momentum * ra_var + (1 - momentum) * var with "
                 "that same biased variance",
        ),
        "bn.momentum_weights": Documented(
            value="new",
            link=batch_norm,
            fix="Flax's momentum weighs the old running value (default 0.99): pass momentum = 1 - "
                "update weight, i.e. 1 - torch's momentum (Keras' and Paddle's carry over as is)",
            says="the page calls momentum the 'decay rate for the exponential moving average of the "
                 "batch statistics' (its source: ra = momentum * ra + (1 - momentum) * batch): it "
                 "weighs the old value; the adapter passes momentum = 1 - update weight, so the "
                 "neutral update weight weighs the new value",
        ),
        "bn.eps_placement": Documented(
            value="inside",
            link=batch_norm,
            says="the page says epsilon is 'a small float added to variance to avoid dividing by "
                 "zero' (its source: rsqrt(var + epsilon)): inside the square root",
        ),
        "bn.running_update": Documented(
            value="as_specified",
            link=batch_norm,
            fix="Flax has only the exponential average; for torch's momentum=None (cumulative) set "
                "momentum = 1 - 1/k before the k-th batch",
            says="the page describes the batch statistics as an exponential moving average with "
                 "momentum as its decay rate; there is no cumulative mode",
        ),
        "bn.train_statistics": Documented(
            value="batch",
            link=batch_norm,
            says=f"the page says the statistics stored in batch_stats are used instead of computing "
                 f"the batch statistics on the input only when use_running_average is True ({mode}): "
                 f"in training the layer normalises with the batch's own statistics",
        ),
        "bn.normalization_var_estimator": Documented(
            value="biased",
            link=source,
            says="the API page names no divisor; its [source] normalises with the same "
                 "_compute_stats variance E[|x|^2] - |E[x]|^2 (divide by m) that feeds ra_var",
        ),
        "bn.eval_statistics": Documented(
            value="running",
            link=batch_norm,
            fix="Flax has no track_running_stats=False: to normalise with batch statistics in "
                "inference pass use_running_average=False (which also updates batch_stats)",
            says=f"the page says use_running_average=True ({mode}) uses the statistics stored in "
                 f"batch_stats instead of computing them on the input",
        ),
        "bn.eval_updates": Documented(
            value="no",
            link=batch_norm,
            says="the page updates the running averages only when the batch statistics are "
                 "computed (use_running_average False); the stored ones are read, not written, in "
                 "inference",
        ),
        "dropout.rate_meaning": Documented(
            value="drop",
            link=dropout,
            says="the page says rate is 'the dropout probability (_not_ the keep rate!)'; the "
                 "adapter passes the rate as rate",
        ),
        "dropout.train_scale": Documented(
            value="inverted",
            link=dropout,
            says="the page says that when deterministic is False the inputs are scaled by "
                 "1 / (1 - rate) and masked",
        ),
        "dropout.eval": Documented(
            value="identity",
            link=dropout,
            says="the page says that when deterministic is True no mask is applied and the inputs "
                 "are returned as is",
        ),
    }


def _silent_functional(pages: str) -> dict[str, Documented]:
    return {
        "functional.dropout_default_training": Documented.silent(
            "what a functional dropout does without a flag: Flax has no functional dropout (the "
            "Dropout module, or jax.random.bernoulli written by hand)", pages,
            fix="write the mask by hand only under the model's own train flag "
                "(jax.random.bernoulli(key, 1 - rate, x.shape), kept values / (1 - rate))"),
        "functional.batch_norm_default_training": Documented.silent(
            "what a functional batch norm does without a flag: Flax has no functional batch norm "
            "that keeps statistics (the BatchNorm module only)", pages),
    }


FLAX: dict[str, Documented] = {
    **_layers(LINEN_BATCH_NORM, LINEN_DROPOUT, LINEN_SOURCE, "the inference switch"),
    "model.eval_propagates": Documented(
        value="all",
        link=LINEN_DROPOUT,
        fix="a linen model has no train()/eval(): pass train to the outer apply and down every "
            "__call__ (use_running_average=not train, deterministic=not train); a sub-module "
            "called without it runs in its own default",
        says="the page's example module takes train in __call__ and builds its Dropout with "
             "deterministic=not train, applied with train=False or train=True: the mode is a call "
             "argument that each module passes to the layers it holds, as far as its code passes it; "
             "the adapter's modules pass it to every child",
    ),
    "model.call_site_flag": Documented(
        value="honoured",
        link=LINEN_DROPOUT,
        says="the page's deterministic (and BatchNorm's use_running_average) is given where the "
             "layer is called or built: a value written at a call site is what that layer runs "
             "with, whatever the outer train argument",
    ),
    "model.call_mode": Documented(
        value="train",
        link=IMAGENET_MODELS,
        fix="always pass train= to apply (train=False, mutable=False for inference, as the "
            "imagenet example's eval_step does): a linen model keeps no mode between calls",
        says="a linen model keeps no mode: an apply without train runs in the module's own "
             "default, and Flax's imagenet example declares __call__(self, x, train: bool = True), "
             "so such a call trains whatever call came before (the adapter's modules declare it "
             "so); the linen layers and Module pages say nothing more",
    ),
    "model.train_step_mode": Documented(
        value="train",
        link=IMAGENET_TRAIN,
        fix="a linen training step names its mode: apply(..., train=True, mutable=['batch_stats']); "
            "a torch/Paddle step runs in the mode last set, so call model.train() there first",
        says="the example's train_step calls state.apply_fn(..., train=True, "
             "mutable=['batch_stats']): a training step trains, whatever was called before (a "
             "linen model has no mode of its own to leave in inference)",
    ),
    "model.freeze_survives_mode_switch": Documented(
        value="true",
        link=LINEN_BATCH_NORM,
        fix="linen freezes a batch norm by its use_running_average=True (at construction or its "
            "call site): it stays frozen at every later apply, train=True ones included",
        says="the page's use_running_average attribute, set True, makes the layer use the stored "
             "statistics at every call (merge_param refuses a call that passes it again); no "
             "mode switch exists that could undo it (the adapter freezes through it, and "
             "reports a freeze through the layer's mode unsupported)",
    ),
    "model.override_respected": Documented.silent(
        "how a mode switch treats a nested module that overrides it: a linen module has no mode "
        "switch (no train()/eval()) to override, the mode is each apply's train argument",
        "the linen Module page (the adapter reports override_mode_switch unsupported)",
    ),
    "model.predict_switches": Documented.silent(
        "what a predict entry does: linen has none (inference is apply(..., train=False))",
        "the linen Module page",
    ),
    "model.freeze_scope": Documented(
        value="statistics",
        link=LINEN_BATCH_NORM,
        fix="use_running_average=True freezes the statistics only: freeze scale and bias in the "
            "optimizer too (optax.multi_transform / optax.set_to_zero on their paths)",
        says="the page's use_running_average only chooses the stored statistics over the batch's; "
             "scale and bias stay in params, which jax.grad differentiates and the update applies",
    ),
    "model.call_flag_scope": Documented(
        value="call",
        link=LINEN_MODULE,
        says="a flag is an argument of one __call__ (the Module page's apply passes its "
             "arguments to the method it calls); nothing of it reaches the calls after it",
    ),
    **_silent_functional("the linen layers page (Dropout, BatchNorm) and the jax.random pages"),
}


FLAX_NNX: dict[str, Documented] = {
    **_layers(NNX_BATCH_NORM, NNX_DROPOUT, NNX_SOURCE, "eval()"),
    "model.eval_propagates": Documented(
        value="all",
        link=NNX_TRAIN,
        says="the page says train() and eval() use set_attributes to recursively set "
             "deterministic and use_running_average of all nested Modules that have them",
    ),
    "model.call_site_flag": Documented(
        value="honoured",
        link=NNX_BATCH_NORM,
        says="the page says the use_running_average flag passed into the call method takes "
             "precedence over the one set by the constructor (or by train()/eval()); Dropout's "
             "deterministic likewise",
    ),
    "model.call_mode": Documented(
        value="current",
        link=NNX_TRAIN,
        fix="an NNX model runs in the mode last set by train()/eval() (a Keras call always infers): "
            "call model.eval() before inference",
        says="the page says train()/eval() set the attributes the layers read at their calls: a "
             "call without flags runs in the mode last set",
    ),
    "model.train_step_mode": Documented(
        value="current",
        link=NNX_MNIST,
        fix="call model.train() before the training steps (as the tutorial does): an nnx.grad step "
            "runs the model in the mode last set",
        says="the tutorial switches with model.train() before its train_step loop and "
             "model.eval() before evaluating: a training step calls the model in its current mode",
    ),
    "model.freeze_survives_mode_switch": Documented(
        value="false",
        link=NNX_SET_ATTRIBUTES,
        fix="a batch norm frozen with eval() on it (use_running_average=True) is unfrozen by the "
            "model's next train(): freeze it again after every train(), or pass "
            "use_running_average=True at its call site",
        says="the page says set_attributes (what train() calls) sets the attributes of the nested "
             "Modules including the current one: the next model.train() sets the frozen batch "
             "norm's use_running_average back to False",
    ),
    "model.override_respected": Documented(
        value="false",
        link=NNX_SET_ATTRIBUTES,
        fix="a submodule's own train()/eval() override is never called by the model's switch: "
            "filter it out (set_attributes with a filter) or set its attributes after the switch",
        says="the page says set_attributes walks every nested Module and sets the attributes on "
             "each itself: a nested module's train()/eval() override is not what the parent's "
             "switch calls",
    ),
    "model.predict_switches": Documented.silent(
        "what a predict entry does: NNX has none (inference is eval() then a call)",
        "the NNX Module page",
    ),
    "model.freeze_scope": Documented(
        value="statistics",
        link=NNX_BATCH_NORM,
        fix="use_running_average=True freezes the statistics only; exclude scale and bias from the "
            "optimizer (nnx.Optimizer(wrt=...) with a filter) to freeze the whole layer",
        says="the page's use_running_average only chooses the stored statistics over the batch's; "
             "scale and bias remain nnx.Param, which nnx.grad differentiates and the optimizer updates",
    ),
    "model.call_flag_scope": Documented(
        value="call",
        link=NNX_BATCH_NORM,
        says="the page's call-time flag takes precedence for that call; the attribute set by the "
             "constructor or train()/eval() is unchanged for the calls after it",
    ),
    **_silent_functional("the NNX normalization and stochastic pages"),
}
