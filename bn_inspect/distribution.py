"""What bn-inspect needs from a ``tf.distribute`` strategy: its replicas and their copies.

Under ``MirroredStrategy`` Keras 3 creates the moving statistics with ``aggregation="none"``,
so each replica updates its own copy from its own shard of every batch: with
``synchronized=False`` the copies drift apart (reading the variable, and saving the model,
gives the first replica's copy). With ``synchronized=True`` every replica computes the same
all-reduced moments and the copies stay equal.
"""

from __future__ import annotations

from typing import Any

import keras
import numpy as np


def replica_strategy(model: Any) -> Any | None:
    """The model's TensorFlow distribution strategy when it trains on several replicas."""
    if keras.backend.backend() != "tensorflow":
        return None
    strategy = getattr(model, "distribute_strategy", None)
    return strategy if int(getattr(strategy, "num_replicas_in_sync", 1) or 1) > 1 else None


def replica_values(variable: Any, strategy: Any) -> np.ndarray:
    """Every replica's copy of a Keras variable, as float32 ``[replicas, size]``."""
    copies = strategy.experimental_local_results(getattr(variable, "value", variable))
    return np.stack([np.asarray(keras.ops.convert_to_numpy(c), dtype=np.float32).reshape(-1) for c in copies])
