"""Custom training loops (Keras' "training loop from scratch" guides, TensorFlow and JAX) drive
the inspector through ``keras.callbacks.CallbackList``; it logs what the model holds, counts
the steps, and records the batch size only when given one (Keras does not tell callbacks)."""

import math

import keras
import numpy as np
import pytest
from bn_models import make_data, sequential_mlp

from bn_inspect import BatchNormInspector, load_logdir, schema

EPOCHS, BATCH = 2, 16


class RecordMovingMeans(keras.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.by_step = {}

    def _record(self, step):
        self.by_step[step] = self.model.get_layer("bn1").moving_mean.numpy().copy()

    def on_train_begin(self, logs=None):
        self._record(0)

    def on_epoch_end(self, epoch, logs=None):
        self._record(epoch + 1)


def _tensorflow_step(model, optimizer):
    import tensorflow as tf

    def step(x, y):
        with tf.GradientTape() as tape:
            loss = keras.ops.mean(keras.losses.mean_squared_error(y, model(x, training=True)))
        optimizer.apply(tape.gradient(loss, model.trainable_weights), model.trainable_weights)
        return loss

    return step


def _jax_step(model, optimizer):
    import jax

    def loss_fn(trainable, non_trainable, x, y):
        outputs, non_trainable = model.stateless_call(trainable, non_trainable, x, training=True)
        return keras.ops.mean(keras.losses.mean_squared_error(y, outputs)), non_trainable

    grad_fn = jax.jit(jax.value_and_grad(loss_fn, has_aux=True))

    def step(x, y):
        trainable = [v.value for v in model.trainable_variables]
        non_trainable = [v.value for v in model.non_trainable_variables]
        (loss, non_trainable), grads = grad_fn(trainable, non_trainable, x, y)
        trainable, optimizer_values = optimizer.stateless_apply(
            [v.value for v in optimizer.variables], grads, trainable
        )
        for variable, value in zip(model.trainable_variables, trainable):
            variable.assign(value)
        for variable, value in zip(model.non_trainable_variables, non_trainable):
            variable.assign(value)
        for variable, value in zip(optimizer.variables, optimizer_values):
            variable.assign(value)
        return loss

    return step


def _train(log_dir, **inspector_kwargs):
    keras.utils.set_random_seed(0)
    model = sequential_mlp()
    optimizer = keras.optimizers.SGD(0.01)
    optimizer.build(model.trainable_variables)
    x, y = make_data()
    steps = math.ceil(len(x) / BATCH)
    step = {"tensorflow": _tensorflow_step, "jax": _jax_step}[keras.backend.backend()](model, optimizer)
    recorder = RecordMovingMeans()
    callbacks = keras.callbacks.CallbackList(
        [BatchNormInspector(log_dir, probe_data=x[:16], **inspector_kwargs), recorder],
        model=model,
        epochs=EPOCHS,
        steps=steps,
    )
    callbacks.on_train_begin()
    for epoch in range(EPOCHS):
        callbacks.on_epoch_begin(epoch)
        for batch in range(steps):
            callbacks.on_train_batch_begin(batch)
            loss = step(x[batch * BATCH : (batch + 1) * BATCH], y[batch * BATCH : (batch + 1) * BATCH])
            callbacks.on_train_batch_end(batch, {"loss": float(loss)})
        callbacks.on_epoch_end(epoch, {})
    callbacks.on_train_end()
    return load_logdir(log_dir)["."], recorder.by_step, steps


@pytest.mark.filterwarnings("ignore")
def test_callback_list_drives_the_inspector(tmp_path):
    run, recorded, steps = _train(tmp_path, batch_size=BATCH)
    mean = run.layers["bn1"][schema.MOVING_MEAN]
    assert mean.steps.tolist() == list(range(EPOCHS + 1))
    np.testing.assert_array_equal(mean.values, np.stack([recorded[s] for s in range(EPOCHS + 1)]))
    momentum = 0.9  # bn1's (tests/bn_models.py)
    residual = run.layers["bn1"][schema.RESIDUAL_INIT_WEIGHT].values
    np.testing.assert_allclose(residual, momentum ** (steps * np.arange(EPOCHS + 1)), rtol=1e-6)
    assert run.config["batch_size"] == BATCH and run.config["steps_per_epoch"] == steps
    assert run.config["backend"] == keras.backend.backend()


@pytest.mark.filterwarnings("ignore")
def test_batch_size_is_unknown_unless_given(tmp_path):
    run, _, _ = _train(tmp_path)
    assert run.config["batch_size"] is None
