"""What bn-inspect needs from distributed training: which process writes, a ``tf.distribute``
strategy's replicas and their copies.

One run has one writer: in multi-process training only process 0 of ``keras.distribution``
(JAX: ``jax.process_index() == 0``) or the chief of a ``tf.distribute`` strategy
(``strategy.extended.should_save_summary``) writes; the other processes log nothing.

Under ``MirroredStrategy`` Keras 3 creates the moving statistics with ``aggregation="none"``,
so each replica updates its own copy from its own shard of every batch: with
``synchronized=False`` the copies drift apart (reading the variable, and saving the model,
gives the first replica's copy). With ``synchronized=True`` every replica computes the same
all-reduced moments and the copies stay equal.
"""

from __future__ import annotations

import sys
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


def is_writing_process(model: Any) -> bool:
    """Whether this process writes the logs of ``model``'s training (see the module docstring)."""
    backend = keras.backend.backend()
    if backend == "jax":
        jax = sys.modules.get("jax")
        return jax is None or jax.process_index() == 0
    tf = sys.modules.get("tensorflow")
    if tf is None or backend != "tensorflow":
        return True
    strategy = getattr(model, "distribute_strategy", None) or tf.distribute.get_strategy()
    return bool(getattr(strategy.extended, "should_save_summary", True))
