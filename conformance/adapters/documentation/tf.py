"""What TensorFlow's and Keras 3's documentation says about each convention (``tf.keras``)."""

from __future__ import annotations

from conformance.adapters.documentation.documented import Documented

KERAS_BATCH_NORM = "https://keras.io/api/layers/normalization_layers/batch_normalization/"
KERAS_DROPOUT = "https://keras.io/api/layers/regularization_layers/dropout/"


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
