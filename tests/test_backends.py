"""The callback and recalibrate() on JAX and PyTorch, in a process where TensorFlow cannot be imported.

That is the user this serves: Keras' own TensorBoard callback needs TensorFlow to write,
bn-inspect does not. A child process trains with the inspector and records the model's
weights at every logged step, then recalibrates the model; this process reads the logs and
checks them against those weights, a numpy forward pass and numpy population statistics.
"""

import importlib.util
import json

import numpy as np
import pytest
from bn_models import numpy_mlp_forward
from import_blocker import check, run_python
from population_helpers import numpy_population

from bn_inspect import load_logdir, schema

EPOCHS, BATCH_SIZE, SAMPLES, PROBE = 2, 16, 96, 32
LOG_EVERY = 3
LAYER_NAMES = {"backbone/bn1": "bn1", "bn2": "bn2"}  # logged path -> layer name in bn_models
RECALIBRATED = EPOCHS + 1  # the key of the weights recorded after recalibrate()
MOVING = ("moving_mean", "moving_variance")


def _backend(name: str):
    installed = importlib.util.find_spec(name) is not None
    reason = f"{name} is not installed (docs/compatibility.md says how to test this backend)"
    return pytest.param(name, marks=pytest.mark.skipif(not installed, reason=reason), id=name)


def _train_without_tensorflow(backend: str, log_dir, weights_file) -> dict:
    """Train and recalibrate the nested MLP in a child process; return what it reports."""
    out = check(
        run_python(
            f"""
        import json
        import keras
        import numpy as np
        from bn_models import make_data, mlp_weights, nested_mlp
        from bn_inspect import BatchNormInspector, recalibrate

        keras.utils.set_random_seed(0)
        model = nested_mlp()
        model.compile("adam", "mse")
        x, y = make_data({SAMPLES})
        weights = {{}}

        class Record(keras.callbacks.Callback):
            def on_train_begin(self, logs=None):
                weights[0] = mlp_weights(self.model)

            def on_epoch_end(self, epoch, logs=None):
                weights[epoch + 1] = mlp_weights(self.model)

        inspector = BatchNormInspector({str(log_dir)!r}, probe_data=x[:{PROBE}], log_every_n_batches={LOG_EVERY}, batch_size={BATCH_SIZE},
                                       reference_data=x)
        model.fit(x, y, epochs={EPOCHS}, batch_size={BATCH_SIZE}, verbose=0, callbacks=[inspector, Record()])
        recalibrate(model, x, batch_size=40, progress=False)
        weights[{RECALIBRATED}] = mlp_weights(model)
        np.savez({str(weights_file)!r}, x=x, **{{
            f"{{step}}/{{layer}}/{{name}}": value
            for step, layers in weights.items() for layer, named in layers.items() for name, value in named.items()
        }})
        print(json.dumps({{"backend": keras.backend.backend(),
                           "frameworks": loaded(["tensorflow", "jax", "torch"])}}))
    """,
            blocked=["tensorflow"],
            env={"KERAS_BACKEND": backend},
        )
    )
    return json.loads(out.splitlines()[-1])


def _weights_by_step(weights_file) -> tuple[np.ndarray, dict]:
    by_step: dict[int, dict[str, dict[str, np.ndarray]]] = {}
    with np.load(weights_file) as saved:
        x = saved["x"]
        for key in saved.files:
            if key == "x":
                continue
            step, layer, name = key.split("/")
            by_step.setdefault(int(step), {}).setdefault(layer, {})[name] = saved[key]
    return x, by_step


@pytest.mark.parametrize("backend", [_backend("jax"), _backend("torch")])
def test_callback_logs_exact_values_without_tensorflow(tmp_path, backend):
    report = _train_without_tensorflow(backend, tmp_path / "logs", tmp_path / "weights.npz")
    assert report == {"backend": backend, "frameworks": [backend]}

    x, weights = _weights_by_step(tmp_path / "weights.npz")
    run = load_logdir(tmp_path / "logs")["."]
    assert run.config["backend"] == backend and run.config["batch_size"] == BATCH_SIZE
    assert set(run.layers) == set(LAYER_NAMES)
    for step in range(EPOCHS + 1):
        train_out, bn_inputs = numpy_mlp_forward(weights[step], x[:PROBE], training=True)
        infer_out, _ = numpy_mlp_forward(weights[step], x[:PROBE], training=False)
        population = numpy_population(weights[step], x)
        for path, name in LAYER_NAMES.items():
            logged = run.layers[path]
            for quantity in schema.VARIABLE_QUANTITIES:  # bitwise: float64 copies of float32 values
                assert logged[quantity].at(step).tobytes() == weights[step][name][quantity].astype(np.float32).tobytes()
            np.testing.assert_allclose(
                logged[schema.PROBE_BATCH_MEAN].at(step), bn_inputs[name].mean(axis=0), rtol=1e-5, atol=1e-6
            )
            np.testing.assert_allclose(
                logged[schema.PROBE_BATCH_VARIANCE].at(step), bn_inputs[name].var(axis=0), rtol=1e-5, atol=1e-6
            )
            mean, variance = population[name]
            np.testing.assert_allclose(logged[schema.POPULATION_VARIANCE].at(step), variance, rtol=1e-5)
            np.testing.assert_allclose(
                logged[schema.POPULATION_MEAN].at(step), mean, rtol=1e-5, atol=1e-5 * np.sqrt(variance).max()
            )
        np.testing.assert_allclose(run.model[schema.OUTPUT_TRAINING].at(step), train_out, rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(run.model[schema.OUTPUT_INFERENCE].at(step), infer_out, rtol=1e-4, atol=1e-5)
    steps_per_epoch = SAMPLES // BATCH_SIZE
    batch_steps = list(range(LOG_EVERY, EPOCHS * steps_per_epoch + 1, LOG_EVERY))
    within_epoch = run.batch_layers["bn2"][schema.MOVING_MEAN]
    assert within_epoch.steps.tolist() == batch_steps
    for epoch in range(1, EPOCHS + 1):  # the last step of an epoch holds the epoch-end values
        expected = weights[epoch]["bn2"]["moving_mean"].astype(np.float32)
        assert within_epoch.at(epoch * steps_per_epoch).tobytes() == expected.tobytes()

    # recalibrate(): the moving statistics become the population statistics, nothing else changes
    trained, recalibrated = weights[EPOCHS], weights[RECALIBRATED]
    population = numpy_population(trained, x)
    for name, (mean, variance) in population.items():
        np.testing.assert_allclose(recalibrated[name]["moving_variance"], variance, rtol=1e-5)
        np.testing.assert_allclose(
            recalibrated[name]["moving_mean"], mean, rtol=1e-5, atol=1e-5 * np.sqrt(variance).max()
        )
    for layer, named in trained.items():
        for name, value in named.items():
            if name not in MOVING:
                assert recalibrated[layer][name].tobytes() == value.tobytes(), (layer, name)
