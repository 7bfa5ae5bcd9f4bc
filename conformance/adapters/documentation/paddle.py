"""What PaddlePaddle's documentation says about each convention (``paddle.nn``)."""

from __future__ import annotations

from conformance.adapters.documentation.documented import Documented

_PADDLE = "https://www.paddlepaddle.org.cn/documentation/docs/en/api/paddle/nn/"
PADDLE_BATCH_NORM = _PADDLE + "BatchNorm2D_en.html"
PADDLE_FUNCTIONAL_BATCH_NORM = _PADDLE + "functional/batch_norm_en.html"
PADDLE_DROPOUT = _PADDLE + "Dropout_en.html"
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
