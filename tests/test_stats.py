"""Pure numerics of bn_inspect.stats against direct computations."""

import numpy as np

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
