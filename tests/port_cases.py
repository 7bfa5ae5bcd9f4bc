"""Constructions of every class and functional form the porter covers, for tests/test_port.py:
(framework, source code, rank, features). ``rank``/``features`` are what the round trip
passes back where the source does not say them (Keras infers both from its input)."""

from __future__ import annotations

LAYERS: list[tuple[str, str, int | None, int | None]] = [
    ("torch", "torch.nn.BatchNorm1d(32, momentum=0.2, eps=1e-3)", None, None),
    ("torch", "nn.BatchNorm1d(32)", 3, None),
    ("torch", "torch.nn.BatchNorm2d(64, momentum=0.1, eps=1e-5)", None, None),
    ("torch", "BatchNorm2d(16, affine=False, momentum=0.3)", None, None),
    ("torch", "torch.nn.BatchNorm2d(16, track_running_stats=False)", None, None),
    ("torch", "torch.nn.BatchNorm3d(8, eps=0.01, dtype=torch.float64)", None, None),
    ("torch", "torch.nn.Dropout(p=0.3)", None, None),
    ("torch", "torch.nn.Dropout1d(0.2)", None, None),
    ("torch", "torch.nn.Dropout2d(0.5)", None, None),
    ("torch", "torch.nn.Dropout3d(p=0.1)", None, None),
    ("paddle", "paddle.nn.BatchNorm1D(32, momentum=0.8)", None, None),
    ("paddle", "paddle.nn.BatchNorm1D(32, data_format='NLC')", None, None),
    ("paddle", "paddle.nn.BatchNorm2D(64, epsilon=1e-3, data_format='NHWC')", None, None),
    ("paddle", "paddle.nn.BatchNorm2D(8, weight_attr=False, bias_attr=False)", None, None),
    ("paddle", "paddle.nn.BatchNorm2D(8, use_global_stats=True)", None, None),
    ("paddle", "paddle.nn.BatchNorm3D(8, momentum=0.99)", None, None),
    ("paddle", "paddle.nn.BatchNorm(16, momentum=0.95)", 4, None),
    ("paddle", "paddle.nn.Dropout(0.3)", None, None),
    ("paddle", "paddle.nn.Dropout(0.5, axis=[0, 1])", 4, None),
    ("paddle", "paddle.nn.Dropout(0.5, axis=[0, 3])", 4, None),
    ("paddle", "paddle.nn.Dropout2D(0.2)", None, None),
    ("paddle", "paddle.nn.Dropout3D(0.2, data_format='NDHWC')", None, None),
    ("tf", "keras.layers.BatchNormalization(momentum=0.95, epsilon=1e-4)", 4, 16),
    ("tf", "keras.layers.BatchNormalization(axis=1)", 4, 16),
    ("tf", "tf.keras.layers.BatchNormalization(axis=-1, center=False, scale=False)", 2, 32),
    ("tf", "keras.layers.BatchNormalization(axis=1, momentum=0.9)", 5, 3),
    ("tf", "keras.layers.Dropout(0.25)", None, None),
    ("tf", "keras.layers.Dropout(0.25, noise_shape=(None, 1, 1, 16))", None, None),
    ("tf", "keras.layers.SpatialDropout1D(0.1)", None, None),
    ("tf", "keras.layers.SpatialDropout2D(0.3, data_format='channels_first')", None, None),
    ("tf", "keras.layers.SpatialDropout3D(0.2)", None, None),
]

FUNCTIONS: list[tuple[str, str]] = [
    ("torch", "torch.nn.functional.batch_norm(x, rm, rv, w, b, training=True, momentum=0.1, eps=1e-5)"),
    ("torch", "F.batch_norm(x, rm, rv, training=self.training, momentum=0.05)"),
    ("torch", "F.dropout(x, p=0.2, training=self.training)"),
    ("torch", "F.dropout2d(x, 0.3, training=False)"),
    ("paddle", "paddle.nn.functional.batch_norm(x, rm, rv, w, b, training=True, momentum=0.9)"),
    ("paddle", "paddle.nn.functional.dropout(x, p=0.4, training=True, mode='downscale_in_infer')"),
    ("paddle", "paddle.nn.functional.dropout(x, 0.5, axis=[0, 1], training=True)"),
    ("tf", "keras.ops.batch_normalization(x, mean, var, axis=1, offset=b, scale=g, epsilon=1e-5)"),
    ("tf", "keras.random.dropout(x, rate=0.3)"),
    ("tf", "tf.nn.dropout(x, rate=0.3, seed=1)"),
]
