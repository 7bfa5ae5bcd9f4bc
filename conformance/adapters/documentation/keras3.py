"""What Keras 3's documentation says about each convention, on its torch and JAX backends
(``keras-torch``, ``keras-jax``). The keras.io pages are one set for every backend, so the
entries start from the TensorFlow table (``tf.py``, Keras 3 as ``tf.keras``); the functional
entries point at keras.io rather than tensorflow.org, and a difference measured on one backend
is entered below."""

from __future__ import annotations

from conformance.adapters.documentation.documented import Documented
from conformance.adapters.documentation.tf import TF

KERAS_RANDOM = "https://keras.io/api/random/random_ops/"
KERAS_OPS_NN = "https://keras.io/api/ops/nn/"

_KERAS: dict[str, Documented] = {
    **TF,
    "functional.dropout_default_training": Documented(
        value="true",
        link=KERAS_RANDOM,
        fix="keras.random.dropout drops at every call: in a custom layer call it only under "
            "`if training:` (and give it a keras.random.SeedGenerator for a new mask per call)",
        says="the page gives keras.random.dropout(inputs, rate, noise_shape=None, seed=None): no "
             "training argument, so a call drops; the adapter reports a call with a training "
             "flag unsupported",
    ),
    "functional.batch_norm_default_training": Documented(
        value="false",
        link=KERAS_OPS_NN,
        fix="Keras has no functional batch norm with running statistics: use the "
            "BatchNormalization layer (the adapter reports a functional batch norm unsupported)",
        says="the page says keras.ops.batch_normalization normalises x by the mean and variance "
             "it is given: it computes no batch statistics and updates nothing",
    ),
}

KERAS_TORCH: dict[str, Documented] = dict(_KERAS)
KERAS_JAX: dict[str, Documented] = dict(_KERAS)
