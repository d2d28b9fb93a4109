"""Pure numerics of bn_inspect.stats against direct computations."""

import math
import warnings

import numpy as np
import pytest

from bn_inspect import stats


def test_residual_weight_matches_repeated_ema_updates():
    momentum, initial = 0.97, 5.0
    moving = initial
    for t in range(1, 60):
        moving = momentum * moving + (1 - momentum) * 0.0  # all batches 0: what remains is the initializer
        np.testing.assert_allclose(stats.residual_init_weight(momentum, t) * initial, moving, rtol=1e-12)


def test_steps_until_residual():
    for momentum, target in ((0.99, 0.01), (0.9, 0.05), (0.5, 0.3)):
        steps = stats.steps_until_residual(momentum, target)
        assert momentum**steps <= target < momentum ** (steps - 1)
    assert stats.steps_until_residual(0.0, 0.5) == 0


def test_batch_stat_from_update_inverts_one_update():
    batch = np.array([0.3, -2.0, 7.5])
    for momentum in (0.0, 0.9, 0.999):
        updated = np.float32(1 - momentum) * batch.astype(np.float32)
        np.testing.assert_allclose(stats.batch_stat_from_update(updated, momentum), batch, rtol=1e-5)
    assert np.isnan(stats.batch_stat_from_update(batch, 1.0)).all()


def test_layer_gaps_against_loop():
    rng = np.random.default_rng(0)
    bm, mm = rng.normal(size=7), rng.normal(size=7)
    bv, mv = rng.uniform(0.1, 3, size=7), rng.uniform(0.1, 3, size=7)
    eps = 1e-3
    mean_gap = sum(abs(bm[c] - mm[c]) / np.sqrt(mv[c] + eps) for c in range(7)) / 7
    var_gap = sum(abs(np.log((bv[c] + eps) / (mv[c] + eps))) for c in range(7)) / 7
    np.testing.assert_allclose(stats.layer_gaps(bm, bv, mm, mv, eps), (mean_gap, var_gap), rtol=1e-12)


def test_output_gap_and_nonfinite_and_drift():
    train, infer = np.array([[1.0, 2.0], [3.0, 5.0]]), np.array([[1.0, 1.0], [2.0, 1.0]])
    np.testing.assert_allclose(stats.output_gap(train, infer), [1.5, 4.0, 1.5 / 1.25])
    assert stats.nonfinite_channels(np.array([0.0, np.nan, 1.0, 0.0]), np.array([1.0, 1.0, -0.5, np.inf])) == 3
    series = np.array([[0.0, 0.0], [1.0, 1.0], [1.0, 3.0]])
    np.testing.assert_allclose(stats.drift(series), [0.0, 1.0, np.sqrt(2.0)])


def test_sampling_gap_floor_matches_simulated_batches():
    rng = np.random.default_rng(0)
    for samples in (16, 64):
        batches = rng.normal(size=(20000, samples))  # population mean 0, variance 1
        mean_gap, variance_ratio = stats.sampling_gap_floor(samples)
        np.testing.assert_allclose(np.mean(np.abs(batches.mean(1))), mean_gap, rtol=0.02)
        np.testing.assert_allclose(np.mean(np.abs(np.log(batches.var(1)))), variance_ratio, rtol=0.1)
    assert stats.sampling_gap_floor(1) == (np.inf, np.inf)


def test_expected_normal_range_matches_simulation():
    rng = np.random.default_rng(0)
    for count in (2, 3, 8):
        draws = rng.normal(size=(200000, count))
        np.testing.assert_allclose(stats.expected_normal_range(count), np.ptp(draws, axis=1).mean(), rtol=0.01)
    np.testing.assert_allclose(stats.expected_normal_range(2), 2 / np.sqrt(np.pi), rtol=1e-6)
    assert stats.expected_normal_range(1) == 0.0


@pytest.mark.parametrize("seed", range(3))
def test_channel_summary_is_numpys_nanmean_and_nanpercentile(seed):
    """Random [steps, channels] series, float32 and float64, with NaN channels, all-NaN steps
    and random percentiles, against numpy's own nanmean / nanpercentile (linear)."""
    rng = np.random.default_rng(seed)
    for _ in range(100):
        steps, channels = int(rng.integers(1, 30)), int(rng.integers(1, 40))
        values = rng.normal(size=(steps, channels)).astype(rng.choice([np.float32, np.float64]))
        values[rng.random((steps, channels)) < rng.choice([0.0, 0.3, 0.9])] = np.nan
        if rng.random() < 0.3:
            values[rng.integers(steps)] = np.nan
        low, high = sorted(rng.uniform(0, 100, 2))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            expected = {
                "mean": np.nanmean(values.astype(np.float64), axis=1),
                "low": np.nanpercentile(values.astype(np.float64), low, axis=1),
                "high": np.nanpercentile(values.astype(np.float64), high, axis=1),
            }
        summary = stats.channel_summary(values, low, high)
        for field, reference in expected.items():
            np.testing.assert_allclose(summary[field], reference, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("seed", range(3))
def test_run_distance_is_the_rms_difference_at_common_steps(seed):
    rng = np.random.default_rng(seed)
    for _ in range(100):
        channels = int(rng.integers(0, 6))
        steps_a = np.sort(rng.choice(12, int(rng.integers(0, 8)), replace=False))
        steps_b = (
            steps_a.copy() if rng.random() < 0.4 else np.sort(rng.choice(12, int(rng.integers(0, 8)), replace=False))
        )
        a = rng.normal(size=(len(steps_a), channels)).astype(np.float32)
        b = rng.normal(size=(len(steps_b), channels)).astype(np.float32)
        common, distance = stats.run_distance(steps_a, a, steps_b, b)
        assert common.tolist() == sorted(set(steps_a.tolist()) & set(steps_b.tolist()))
        for step, value in zip(common, distance):
            row_a, row_b = a[steps_a == step][0].astype(np.float64), b[steps_b == step][0].astype(np.float64)
            expected = math.sqrt(sum((y - x) ** 2 for x, y in zip(row_a, row_b)) / channels) if channels else 0.0
            assert value == pytest.approx(expected, rel=1e-12, abs=1e-15)
