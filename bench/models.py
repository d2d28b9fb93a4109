"""The benchmarks' model and sizes: a CNN of Conv-BN-ReLU blocks, full and quick.

Shared by :mod:`bench.overhead`, :mod:`bench.callback_costs` and :mod:`bench.disk_bytes`.
"""

from __future__ import annotations

import keras

PROBE_SAMPLES = 64
# 64 steps per epoch: still a short epoch (CIFAR-10 at batch 64 has 782), so per-epoch costs weigh
# more here than in most real fits; bench.overhead --samples 1024 shows a 16-step epoch.
FULL = {"reps": 3, "epochs": 5, "samples": 4096, "batch_size": 64, "blocks": 20, "input_size": 32}
QUICK = {"reps": 1, "epochs": 1, "samples": 64, "batch_size": 32, "blocks": 2, "input_size": 8}


def conv_bn_model(blocks: int = 20, input_size: int = 32, seed: int = 0) -> keras.Model:
    """A CNN of ``blocks`` Conv-BN-ReLU blocks (widths 16→64), global pooling and a classifier."""
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((input_size, input_size, 3))
    x = inputs
    for i in range(blocks):
        width = 16 * 2 ** min(i // 7, 2)
        stride = 2 if i in (7, 14) else 1
        x = keras.layers.Conv2D(width, 3, strides=stride, padding="same", use_bias=False)(x)
        x = keras.layers.BatchNormalization()(x)
        x = keras.layers.ReLU()(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    model = keras.Model(inputs, keras.layers.Dense(10)(x))
    model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    return model
