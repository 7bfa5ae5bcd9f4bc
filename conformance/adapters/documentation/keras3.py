"""What Keras 3's documentation says about each convention, on its torch and JAX backends
(``keras-torch``, ``keras-jax``). The keras.io pages are one set for every backend, so the
entries start from the TensorFlow table (``tf.py``, Keras 3 as ``tf.keras``); the functional
entries point at keras.io rather than tensorflow.org, and a difference measured on one backend
is entered below.

Measured with keras 3.15.1 on torch 2.13 and on jax 0.10.2 (CPU): every convention of the
table has the same value on both backends as on TensorFlow, the undocumented call-flag leak
(``model.call_flag_scope=pass``) included, since the call context is backend-neutral Keras
code. What differs between the backends is numerics, which no convention names and the
expectation registry records with its numbers (``expectations/keras-torch.yaml``,
``keras-jax.yaml``): torch's one-pass ``ops.moments`` variance, and a float64
BatchNormalization computed in float32 off TensorFlow (Keras' ``result_type`` maps float64
to float32 there). Torch also runs Keras inside ``torch.inference_mode()``, which JAX and
TensorFlow have no counterpart of (a context, not a convention)."""

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
    "model.call_flag_scope": Documented.silent(
        "how far a training value given at one call site reaches within a forward pass (Keras "
        "3 keeps it in the call context that later calls without a flag read: measured the same "
        "on the torch and JAX backends as on TensorFlow)",
        "the FAQ entry on the training argument and the Layer API page; the behaviour is "
        "discussed upstream (keras-team/keras pull request 23166)",
        fix="in a custom call(), pass training= explicitly to every later layer call after a "
            "call with a hard-coded training=, or put the hard-coded part in its own sub-model "
            "called last",
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
