"""What Keras 2's documentation (the ``tf_keras`` package; ``tf.keras`` up to TF 2.15) says
about each convention. The API pages are TensorFlow 2.15's, the last release whose
``tf.keras`` was Keras 2; where the pages are silent the tf-keras source is cited."""

from __future__ import annotations

from conformance.adapters.documentation.documented import Documented

_API = "https://www.tensorflow.org/versions/r2.15/api_docs/python/tf/keras"
BATCH_NORM = f"{_API}/layers/BatchNormalization"
DROPOUT = f"{_API}/layers/Dropout"
BATCH_NORM_SOURCE = ("https://github.com/keras-team/tf-keras/blob/master/tf_keras/src/layers/"
                     "normalization/batch_normalization.py")
LAYER_SOURCE = "https://github.com/keras-team/tf-keras/blob/master/tf_keras/src/engine/base_layer.py"
MODEL = "https://www.tensorflow.org/versions/r2.15/api_docs/python/tf/keras/Model"
TRAINING_SOURCE = "https://github.com/keras-team/tf-keras/blob/master/tf_keras/src/engine/training.py"


TF_KERAS: dict[str, Documented] = {
    "bn.running_var_estimator": Documented(
        value="biased",
        link=BATCH_NORM_SOURCE,
        fix="Keras 2 has two kernels: the non-fused one (rank 2 and 3 inputs, float64, "
            "fused=False) feeds moving_variance var(batch), the biased divide-by-m variance it "
            "normalises with; the fused one (fused=None, the default, on rank 4 and 5 inputs "
            "with the channel first or last; fused=True) feeds it the kernel's Bessel-corrected "
            "m/(m-1) variance, as PyTorch does. Pass fused=False to get the biased one "
            "everywhere, or scale by m/(m-1) (m = values per channel).",
        says="the source's non-fused path takes the batch variance from tf.nn.moments (divide "
             "by m); its fused path keeps the variance tf.compat.v1.nn.fused_batch_norm returns, "
             "which its own comment says is computed with Bessel's correction "
             "(_bessels_correction_test_only is True, so it is not removed): biased on the "
             "non-fused path, unbiased on the fused one",
    ),
    "bn.momentum_weights": Documented(
        value="new",
        link=BATCH_NORM,
        fix="Keras' momentum weighs the old moving value: pass momentum = 1 - update weight "
            "(1 - torch's momentum; Paddle's momentum carries over as is)",
        says="the page gives moving_mean = moving_mean * momentum + mean(batch) * (1 - momentum): "
             "Keras' momentum weighs the old value; the adapter passes momentum = 1 - update "
             "weight, so the neutral update weight weighs the new value",
    ),
    "bn.eps_placement": Documented(
        value="inside",
        link=BATCH_NORM,
        says="the page's training and inference outputs divide by sqrt(var + epsilon): epsilon "
             "is added to the variance, inside the square root",
    ),
    "bn.running_update": Documented(
        value="as_specified",
        link=BATCH_NORM,
        fix="Keras has only the exponential average; for torch's momentum=None (cumulative) set "
            "momentum = 1 - 1/k before the k-th batch",
        says="the page says moving_mean and moving_var are updated each time the layer is called "
             "in training mode, by the exponential average with momentum; there is no "
             "cumulative mode",
    ),
    "bn.train_statistics": Documented(
        value="batch",
        link=BATCH_NORM,
        says="the page says that in training (fit(), or training=True) the layer normalises with "
             "the mean and standard deviation of the current batch",
    ),
    "bn.normalization_var_estimator": Documented(
        value="biased",
        link=BATCH_NORM_SOURCE,
        says="the page normalises with var(batch) without naming the divisor; the source "
             "normalises with the tf.nn.moments variance (divide by m) on the non-fused path, "
             "and the fused kernel normalises with the biased variance too (only the variance "
             "it returns for the moving average is Bessel-corrected)",
    ),
    "bn.eval_statistics": Documented(
        value="running",
        link=BATCH_NORM,
        fix="Keras has no track_running_stats=False: to normalise with batch statistics in "
            "inference call the layer with training=True (which also updates the moving "
            "statistics)",
        says="the page says inference (evaluate(), predict(), training=False, the default) "
             "normalises with the moving mean and variance gathered in training",
    ),
    "bn.eval_updates": Documented(
        value="no",
        link=BATCH_NORM,
        says="the page says the moving statistics are updated each time the layer is called in "
             "training mode, and inference normalises with them",
    ),
    "dropout.rate_meaning": Documented(
        value="drop",
        link=DROPOUT,
        says="rate is the fraction of the input units to drop; the adapter passes the rate as "
             "rate",
    ),
    "dropout.train_scale": Documented(
        value="inverted",
        link=DROPOUT,
        says="the page says inputs not set to 0 are scaled up by 1/(1 - rate) so that the sum "
             "over all inputs is unchanged",
    ),
    "dropout.eval": Documented(
        value="identity",
        link=DROPOUT,
        says="the page says the layer only applies when training is True, so no values are "
             "dropped during inference",
    ),
    "model.eval_propagates": Documented(
        value="all",
        link=BATCH_NORM,
        fix="Keras has no train()/eval(): pass training=True or training=False to the outer "
            "model's call; it reaches every layer inside, nested models included",
        says="the page says the layer trains when the layer or the model holding it is called "
             "with training=True (or by fit()) and infers when called with training=False: a "
             "model's training argument reaches the layers it holds",
    ),
    "model.call_site_flag": Documented(
        value="honoured",
        link=LAYER_SOURCE,
        says="Layer.__call__ takes training from the argument passed to that call first (when "
             "not None), before the enclosing call's value, the learning phase or the call "
             "signature's default: a hard-coded flag wins over the model's mode",
    ),
    "model.call_mode": Documented(
        value="inference",
        link=BATCH_NORM,
        fix="a plain Keras call model(x) infers (the learning phase is 0 outside fit()); to "
            "train outside fit() pass training=True",
        says="the page says inference is evaluate(), predict() or a call with training=False, "
             "which is the default: a call without training runs in inference mode",
    ),
    "model.train_step_mode": Documented(
        value="train",
        link=TRAINING_SOURCE,
        fix="Keras' training step always trains (it calls self(x, training=True)); a torch/Paddle "
            "training step runs in the mode last set, so call model.train() there first",
        says="Model.train_step, the step fit() and train_on_batch run, calls the model with "
             "training=True for its forward pass",
    ),
    "model.freeze_survives_mode_switch": Documented(
        value="true",
        link=BATCH_NORM,
        fix="Keras freezes a batch norm with layer.trainable = False, which stays frozen at every "
            "later call, training=True ones included, until trainable is set back (and compile() "
            "called again); there is no per-layer mode to set",
        says="the page says that setting trainable = False on a BatchNormalization makes it run "
             "in inference mode from then on (since TensorFlow 2.0); Keras has no mode switch "
             "that could undo it",
    ),
    "model.override_respected": Documented.silent(
        "how a model's mode switch treats a nested model that overrides it: Keras has no mode "
        "switch (no train()/eval()) to override, the mode is each call's training argument",
        "the Model API page and the BatchNormalization page's section on trainable (the "
        "adapter reports override_mode_switch unsupported)",
    ),
    "model.freeze_scope": Documented(
        value="layer",
        link=BATCH_NORM,
        fix="trainable=False freezes a batch norm's gamma and beta as well as its statistics; "
            "to freeze the statistics only, call the layer with training=False and keep it "
            "trainable",
        says="the page says trainable = False freezes the layer: its trainable weights are not "
             "updated in fit() or train_on_batch() and its state updates are not run",
    ),
    "model.call_flag_scope": Documented(
        value="call",
        link=LAYER_SOURCE,
        says="Layer.__call__ resolves training from the call's own argument first, then from "
             "the enclosing layer's call context, and enters a new call context per call: a "
             "hard-coded flag reaches the call it is given to (and the layers inside it), not "
             "its siblings",
    ),
    "model.predict_switches": Documented(
        value="false",
        link=MODEL,
        says="the Model page's predict() runs the model batch by batch and points to "
             "model(x, training=False) as the same computation for one batch: inference; a "
             "Keras model keeps no mode for predict to switch, so the calls after it run as "
             "their own training argument says",
    ),
    "functional.dropout_default_training": Documented(
        value="true",
        link="https://www.tensorflow.org/versions/r2.15/api_docs/python/tf/nn/dropout",
        fix="tf.nn.dropout drops at every call: in a custom layer call it only under "
            "`if training:`",
        says="the page gives tf.nn.dropout(x, rate, noise_shape=None, seed=None, name=None): no "
             "training argument, so a call drops; the adapter reports a call with a training "
             "flag unsupported",
    ),
    "functional.batch_norm_default_training": Documented(
        value="false",
        link="https://www.tensorflow.org/versions/r2.15/api_docs/python/tf/nn/batch_normalization",
        fix="TensorFlow has no functional batch norm with running statistics: use the "
            "BatchNormalization layer (the adapter reports a functional batch norm unsupported)",
        says="the page says tf.nn.batch_normalization normalises x by the mean and variance it "
             "is given: it computes no batch statistics and updates nothing",
    ),
}
