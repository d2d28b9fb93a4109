"""Exact population statistics of every BatchNormalization layer's input, model state untouched.

Definition (the convention of bn-inspect, used by the callback and by ``recalibrate``)
    The population statistics of a BN layer over some data are the per-channel mean and
    biased (ddof=0) variance of the input that layer receives **at inference**
    (``training=False``: Dropout and noise layers are identities), every value weighing the
    same (each sample, and each position of a sequence or image; masked positions are left
    out, as Keras' own batch statistics do), when every BN layer called before it
    normalises with *its* population statistics, except frozen (``trainable=False``) BN
    layers, which keep their moving statistics as inference and ``recalibrate`` leave them.

    These are exactly the statistics that make inference normalise the data: once they are
    installed, every BN layer's inference-time input over the data has precisely the mean
    and variance the layer divides by. The distance from the moving statistics to them is
    what the callback logs as "EMA staleness", and what :func:`bn_inspect.recalibrate`
    removes.

Why not PreciseBN's one pass in training mode (fvcore ``update_bn_stats``,
``torch.optim.swa_utils.update_bn``)
    There, upstream BN layers normalise with each batch's own statistics, so a layer's
    "population" depends on the batch size and on how samples are grouped, and it is not
    the input the layer meets at inference. In Keras ``training=True`` also switches Dropout
    on, which inflates the variance inference never sees (Li et al. 2019, "Understanding the
    disharmony between dropout and batch normalization"). In inference mode each sample's
    activations do not depend on its batch: the result is exact for any batch size, ragged
    last batch included, and shuffling the data does not change it. The price is one pass
    over the data per trainable BN layer instead of one in all: pass ``k`` fixes the
    ``k``-th trainable layer in call order (a layer's inputs depend only on layers called
    before it), with the layers already fixed substituted into the pass. On functional and
    Sequential models pass ``k`` runs only the part of the model that feeds the layers it
    fixes (:mod:`bn_inspect.recording_pass`), about half the work of whole passes over a
    chain of blocks; subclassed models and layers inside nested models run the whole model.

How, without changing the model
    Every pass is ``stateless_call(..., training=False)`` (of the model or of its feed),
    compiled once
    (:func:`bn_inspect.stateless.compile_for_backend`); substituted statistics go in as variable
    *values*, so no variable is ever assigned and RNG seeds stay untouched. While a pass is
    traced (or run, on eager backends) each BN layer's ``call`` is shadowed by an instance
    attribute that reduces the layer's input to per-channel ``(count, mean, m2)`` on the
    device (float32, two-pass within the batch) and then calls the original; the attribute
    is removed right after. Batches are merged on the host in float64 (Chan et al.,
    :func:`bn_inspect.stats.merge_moments`), so memory is O(channels) however large the
    data: neither the data nor any activation is ever held whole.

Example:
    >>> import keras, numpy as np
    >>> model = keras.Sequential([keras.Input((2,)), keras.layers.BatchNormalization(name="bn")])
    >>> x = np.array([[0.0, 1.0], [2.0, 1.0], [4.0, 7.0]], dtype="float32")
    >>> stats = PopulationStatistics(model, x, batch_size=2).compute()
    >>> stats["bn"].mean.tolist(), stats["bn"].variance.tolist(), stats["bn"].count
    ([2.0, 3.0], [2.6666666666666665, 8.0], 3)
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import keras
import numpy as np

from bn_inspect.layers import FoundLayer, find_batchnorm_layers
from bn_inspect.probe_data import UnusableDataError
from bn_inspect.recording_pass import RecordingPass
from bn_inspect.reference_data import ReferenceData
from bn_inspect.stateless import moving_stat_indices, state_values
from bn_inspect.stats import merge_moments


@dataclass(frozen=True)
class LayerPopulation:
    """Population statistics of one BN layer's input."""

    path: str
    count: int  # values per channel that entered: samples x positions (unmasked)
    mean: np.ndarray  # float64 [channels]
    variance: np.ndarray  # float64 [channels], biased (ddof=0) like Keras' batch variance


class _Moments:
    """Running per-channel ``(count, mean, m2)`` of a stream of batches, in float64."""

    def __init__(self) -> None:
        self.summary: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None

    def add(self, count: Any, mean: Any, m2: Any) -> None:
        part = tuple(np.asarray(keras.ops.convert_to_numpy(v), np.float64).reshape(-1) for v in (count, mean, m2))
        self.summary = part if self.summary is None else merge_moments(self.summary, part)

    def result(self, path: str) -> LayerPopulation:
        assert self.summary is not None
        count, mean, m2 = self.summary
        with np.errstate(invalid="ignore", divide="ignore"):
            variance = np.where(count > 0, m2 / count, np.nan)
        return LayerPopulation(path, int(np.max(count)), mean, variance)


def sweep_plan(order: Sequence[int], replaced: Callable[[int], bool]) -> list[list[int]]:
    """Which layers each pass over the data fixes, given the layers' call order.

    A pass fixes the layers in call order up to and including the next one whose statistics
    are replaced (a trainable layer): the layers after it see its new statistics only in
    the next pass.

    Example:
        >>> sweep_plan([0, 1, 2, 3], replaced=lambda i: i in (0, 2))
        [[0], [1, 2], [3]]
    """
    plan: list[list[int]] = []
    current: list[int] = []
    for index in order:
        current.append(index)
        if replaced(index):
            plan.append(current)
            current = []
    if current:
        plan.append(current)
    return plan


class PopulationStatistics:
    """Population statistics of every BN layer's input over ``data``; see the module docs.

    Construction compiles the pass once and runs it on the first batch, which also checks
    that the model accepts the data; :meth:`compute` then streams the data as often as the
    convention needs and can be called again whenever the weights have changed.

    Args:
        model: A built Keras model (functional, sequential, nested or subclassed).
        data: Arrays, an ``(x, y)`` tuple, or a re-iterable dataset of batches
            (see :class:`bn_inspect.reference_data.ReferenceData`).
        layers: The BN layers to measure. Defaults to `None` (all, found by
            :func:`bn_inspect.layers.find_batchnorm_layers`).
        batch_size: Batch size for array data. Defaults to `128`.
        num_samples: Use at most this many samples of ``data`` per pass. Defaults to `None`
            (all).
        what: The name of ``data`` in error messages. Defaults to `"reference_data"`.
        partial_passes: Run each pass only through the part of the model that feeds the
            layers it fixes (functional and Sequential models; others always run whole).
            The statistics are the same either way. Defaults to `True`.

    Example:
        >>> stats = PopulationStatistics(model, x_train[:2048])  # doctest: +SKIP
        >>> stats.compute()["block1/bn"].mean  # doctest: +SKIP
    """

    def __init__(
        self,
        model: Any,
        data: Any,
        layers: Sequence[FoundLayer] | None = None,
        batch_size: int = 128,
        num_samples: int | None = None,
        what: str = "reference_data",
        partial_passes: bool = True,
    ) -> None:
        if not getattr(model, "built", False):
            raise ValueError("The model is not built; call it on a batch (model(x[:1])) or fit it first.")
        self._model = model
        self._layers = list(find_batchnorm_layers(model) if layers is None else layers)
        self._data = ReferenceData(data, batch_size=batch_size, num_samples=num_samples, what=what)
        self._stat_indices = moving_stat_indices(model, self._layers)
        self._partial_passes = partial_passes
        bn_layers = [found.layer for found in self._layers]
        self._whole = RecordingPass(model, bn_layers, record=range(len(bn_layers)), feed=False)
        self._feeds: dict[tuple[int, ...], RecordingPass] = {}  # per set of layers a pass fixes
        first = next(iter(self._data))
        try:
            self._whole.run(*self._variables(), first)
        except Exception as exc:
            expected = getattr(model, "input_shape", None)
            got = keras.tree.map_structure(lambda a: tuple(a.shape), first)
            raise UnusableDataError(
                f"the model cannot run on {self._data.what} (a batch has inputs of shape {got}; the model "
                f"expects {expected}). Pass batches of the model's inputs. ({type(exc).__name__}: {exc})"
            ) from exc

    @property
    def order(self) -> list[FoundLayer]:
        """The layers the model calls, in the order of their (last) call; the order of results."""
        return [self._layers[i] for i in self._order_indices()]

    @property
    def unreached(self) -> list[FoundLayer]:
        """Layers the model's inference pass never calls: they get no statistics."""
        called = set(self._whole.calls)
        return [f for i, f in enumerate(self._layers) if i not in called]

    @property
    def passes(self) -> int:
        """Passes over the data that :meth:`compute` makes."""
        return len(self._plan())

    def compute(self, progress: bool = False) -> dict[str, LayerPopulation]:
        """Stream the data and return each reached layer's statistics, in call order.

        Args:
            progress: Show a Keras progress bar over all batches of all passes. Defaults
                to `False`.

        Returns:
            ``{layer path: LayerPopulation}``.
        """
        plan = self._plan()
        per_pass = self._data.num_batches
        bar = keras.utils.Progbar(len(plan) * per_pass if per_pass else None, unit_name="batch") if progress else None
        done = 0
        fixed: dict[int, LayerPopulation] = {}
        for layer_indices in plan:
            variables = self._variables({i: p for i, p in fixed.items() if self._layers[i].layer.trainable})
            recording = self._pass_fixing(layer_indices)
            moments: dict[int, _Moments] = {}
            for x in self._data:
                for index, batch_moments in recording.run(*variables, x):
                    moments.setdefault(index, _Moments()).add(*batch_moments)
                done += 1
                if bar is not None:
                    bar.update(done)
            if bar is not None and bar.target is None:  # batches per pass: known after the first
                bar.target = len(plan) * done
                bar.update(done)  # completes the bar when that was the only pass
            for index in layer_indices:
                fixed[index] = moments[index].result(self._layers[index].path)
        return {self._layers[i].path: fixed[i] for i in self._order_indices()}

    # --- internals ------------------------------------------------------------------------
    def _order_indices(self) -> list[int]:
        last_call = {index: position for position, index in enumerate(self._whole.calls)}
        return sorted(last_call, key=last_call.__getitem__)

    def _plan(self) -> list[list[int]]:
        return sweep_plan(self._order_indices(), lambda i: bool(self._layers[i].layer.trainable))

    def _variables(self, substituted: dict[int, LayerPopulation] | None = None) -> tuple[list, list]:
        trainable, non_trainable = state_values(self._model)
        variables = self._model.non_trainable_variables
        for i, population in (substituted or {}).items():
            mean_index, variance_index = self._stat_indices[i]
            for j, values in ((mean_index, population.mean), (variance_index, population.variance)):
                dtype = keras.backend.standardize_dtype(variables[j].dtype)
                array = np.asarray(values, dtype=dtype).reshape(variables[j].shape)
                non_trainable[j] = keras.ops.convert_to_tensor(array)
        return trainable, non_trainable

    def _pass_fixing(self, layer_indices: list[int]) -> RecordingPass:
        """The pass that measures ``layer_indices``: through their feed when the model has one."""
        if not self._partial_passes:
            return self._whole
        key = tuple(layer_indices)
        if key not in self._feeds:
            bn_layers = [found.layer for found in self._layers]
            feed = RecordingPass(self._model, bn_layers, record=key, feed=True)
            self._feeds[key] = feed if feed.uses_feed else self._whole
        return self._feeds[key]


def population_statistics(
    model: Any,
    data: Any,
    num_samples: int | None = None,
    batch_size: int = 128,
    progress: bool = False,
) -> dict[str, LayerPopulation]:
    """Population statistics of every BN layer's input over ``data``, changing nothing.

    Exactly the statistics :func:`bn_inspect.recalibrate` would install (see the module
    docs for the convention): compare them with the moving statistics to see how stale
    those are.

    Args:
        model: A built Keras model.
        data: Arrays, an ``(x, y)`` tuple, or a re-iterable dataset of batches.
        num_samples: Use at most this many samples. Defaults to `None` (all).
        batch_size: Batch size for array ``data``. Defaults to `128`.
        progress: Show a Keras progress bar. Defaults to `False`.

    Returns:
        ``{layer path: LayerPopulation}`` in call order.

    Example:
    ```python
    populations = bn_inspect.population_statistics(model, x_train[:4096])
    populations["bn"].mean - model.get_layer("bn").moving_mean.numpy()
    ```
    """
    statistics = PopulationStatistics(model, data, batch_size=batch_size, num_samples=num_samples, what="data")
    return statistics.compute(progress)
