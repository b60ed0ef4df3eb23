"""Tests of Poisson spike generation and spike-time binning in xbar.learning.spikes."""

from __future__ import annotations

import logging

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

from xbar.learning import PoissonStream, advance, poisson_spike_times, poisson_spikes, spikes_from_times


def stream_raster(times, dt, steps):
    """Read `times` with `advance` inside a scan, one step at a time; return bool (steps, n)."""

    def body(index, step):
        spikes, index = advance(times, index, step * dt, dt)
        return index, spikes

    index = jnp.zeros(times.shape[0], jnp.int32)
    _, raster = jax.jit(lambda i: jax.lax.scan(body, i, jnp.arange(steps)))(index)
    return np.asarray(raster)


def test_spike_times_mean_count(key):
    rates = jnp.concatenate([jnp.full(2_000, 20.0), jnp.full(2_000, 60.0)])
    duration = 0.5
    times = poisson_spike_times(key, rates, duration, max_spikes=200)
    counts = np.isfinite(np.asarray(times)).sum(axis=1)
    for group, rate in ((slice(0, 2_000), 20.0), (slice(2_000, None), 60.0)):
        expected = rate * duration
        # The counts are Poisson with variance `expected`, so their mean over 2000 inputs has standard
        # deviation sqrt(expected / 2000); 5 of those fail by chance with probability about 6e-7.
        tolerance = 5.0 * np.sqrt(expected / 2_000)
        assert abs(counts[group].mean() - expected) < tolerance
        # Poisson counts have a Fano factor of 1; its estimate from 2000 counts has a spread of about
        # sqrt(2 / 2000) = 0.03.
        assert abs(counts[group].var() / counts[group].mean() - 1.0) < 0.15


def test_spike_times_intervals_exponential(key):
    rate = 50.0
    # A duration far beyond max_spikes / rate keeps every slot, so the intervals are not cut at the end.
    times = np.asarray(poisson_spike_times(key, jnp.full(100, rate), 1e6, max_spikes=200))
    assert np.isfinite(times).all()
    intervals = np.diff(times, axis=1, prepend=0.0).ravel() * rate
    assert (intervals > 0).all()
    # 20000 unit-mean intervals: the mean has standard deviation 1/sqrt(20000) = 0.007 and the coefficient
    # of variation about the same; 5 standard deviations give the tolerances.
    assert abs(intervals.mean() - 1.0) < 0.035
    assert abs(intervals.std() / intervals.mean() - 1.0) < 0.05
    # With the fixed key the Kolmogorov-Smirnov p-value is fixed; an exponential law gives a uniform p.
    assert stats.kstest(intervals, "expon").pvalue > 0.01
    assert stats.kstest(intervals, "uniform", args=(0, 2)).pvalue < 1e-6  # the test can reject


def test_spike_times_sorted_and_bounded(key):
    duration = 0.3
    times = np.asarray(poisson_spike_times(key, jnp.array([0.0, 5.0, 100.0, 1_000.0]), duration, 1_000))
    assert np.isinf(times[0]).all()
    finite = np.isfinite(times)
    assert (times[finite] >= 0).all()
    assert (times[finite] < duration).all()
    for row, mask in zip(times, finite):
        assert (np.diff(row[mask]) > 0).all()
        assert mask[: mask.sum()].all()  # the used slots come first


def test_spike_times_warns_when_full(key, caplog):
    with caplog.at_level(logging.WARNING, logger="xbar.learning.spikes"):
        poisson_spike_times(key, jnp.full(10, 100.0), 1.0, max_spikes=20)
    assert "may be truncated" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="xbar.learning.spikes"):
        poisson_spike_times(key, jnp.full(10, 100.0), 1.0, max_spikes=300)
    assert caplog.text == ""


def test_bernoulli_spikes_mean_count(key):
    rate, dt, steps, n = 20.0, 1e-3, 500, 2_000
    spikes = poisson_spikes(key, jnp.full(n, rate), dt, steps)
    assert spikes.shape == (steps, n)
    assert spikes.dtype == jnp.bool_
    counts = np.asarray(spikes).sum(axis=0)
    p = rate * dt
    expected = steps * p
    # Each count is Binomial(steps, p) with variance steps p (1 - p). The mean of n counts then has standard
    # deviation sqrt(steps p (1 - p) / n), and 5 of those fail by chance with probability about 6e-7.
    tolerance = 5.0 * np.sqrt(steps * p * (1 - p) / n)
    assert abs(counts.mean() - expected) < tolerance


def test_bernoulli_spikes_zero_rate_and_shape(key):
    spikes = poisson_spikes(key, jnp.zeros((3, 4)), 1e-3, 100)
    assert spikes.shape == (100, 3, 4)
    assert not spikes.any()


def test_spikes_from_times_round_trip(rng):
    dt, steps, n = 1e-4, 400, 6
    raster = rng.random((steps, n)) < 0.1
    slots = raster.sum(axis=0).max()
    times = np.full((n, slots), np.inf, np.float32)
    for neuron in range(n):
        spike_steps = np.flatnonzero(raster[:, neuron])
        times[neuron, : len(spike_steps)] = spike_steps * np.float32(dt)
    np.testing.assert_array_equal(spikes_from_times(times, dt, steps), raster)
    # Times anywhere within 0.4 dt of a grid point land on that grid point.
    jitter = rng.uniform(-0.4, 0.4, times.shape).astype(np.float32) * np.float32(dt)
    jittered = np.where(np.isfinite(times), np.maximum(times + jitter, 0.0), np.inf)
    np.testing.assert_array_equal(spikes_from_times(jittered, dt, steps), raster)


def test_spikes_from_times_long_run_float32():
    # 100 s at dt = 0.1 ms: float32 times i * dt still round to step i near the end of the run.
    dt, steps = 1e-4, 1_000_000
    spike_steps = np.array([[0, 1, 999_997, 999_999], [3, 500_001, 999_998, 1_000_000]])
    times = spike_steps.astype(np.float32) * np.float32(dt)
    raster = np.asarray(spikes_from_times(times, dt, steps))
    for neuron in range(2):
        expected = spike_steps[neuron][spike_steps[neuron] < steps]
        np.testing.assert_array_equal(np.flatnonzero(raster[:, neuron]), expected)


def test_spikes_from_times_merges_and_drops():
    dt = 1e-3
    times = np.array([[0.0, 0.0004, 0.0021, 0.0049, 0.0051, np.inf]])
    raster = np.asarray(spikes_from_times(times, dt, 5))
    # 0.0 and 0.4 ms share step 0; 4.9 ms rounds to step 5 and 5.1 ms also lies beyond the last step.
    np.testing.assert_array_equal(raster[:, 0], [True, False, True, False, False])


@pytest.mark.parametrize(("rate", "dt", "steps"), [(100.0, 1e-3, 600), (15.0, 1e-4, 5_000)])
def test_stream_matches_spikes_from_times(key, rate, dt, steps):
    # At 100 Hz and dt = 1 ms about 0.5 % of the steps hold two spikes of one input, which both paths
    # must merge in the same way.
    times = poisson_spike_times(key, jnp.full(40, rate), steps * dt, max_spikes=200)
    expected = np.asarray(spikes_from_times(times, dt, steps))
    assert expected.sum() > 100
    np.testing.assert_array_equal(stream_raster(times, dt, steps), expected)


def test_stream_class_round_trip(key):
    dt, steps = 1e-3, 400
    stream = PoissonStream.sample(key, jnp.array([10.0, 50.0, 200.0]), steps * dt, max_spikes=150)
    index = stream.init()
    rows = []
    for step in range(steps):
        spikes, index = stream.advance(index, step * dt, dt)
        rows.append(np.asarray(spikes))
    np.testing.assert_array_equal(np.stack(rows), stream.raster(dt, steps))
    # Every time before the end of the run has been read.
    np.testing.assert_array_equal(index, np.isfinite(np.asarray(stream.times)).sum(axis=1))


def test_stream_vmap_over_networks(key):
    dt, steps = 1e-3, 300
    keys = jax.random.split(key, 3)
    times = jax.vmap(lambda k: poisson_spike_times(k, jnp.full(8, 40.0), steps * dt, 80))(keys)
    batched = jax.vmap(lambda t: jnp.asarray(stream_raster_traced(t, dt, steps)))(times)
    for b in range(3):
        np.testing.assert_array_equal(batched[b], spikes_from_times(times[b], dt, steps))


def stream_raster_traced(times, dt, steps):
    def body(index, step):
        spikes, index = advance(times, index, step * dt, dt)
        return index, spikes

    return jax.lax.scan(body, jnp.zeros(times.shape[0], jnp.int32), jnp.arange(steps))[1]


def test_spike_functions_reject_invalid_inputs(key):
    with pytest.raises(ValueError, match="rate \\* dt must be <= 1"):
        poisson_spikes(key, jnp.array([10.0, 2_000.0]), 1e-3, 10)
    with pytest.raises(ValueError, match="rates must be finite and >= 0"):
        poisson_spikes(key, jnp.array([-1.0]), 1e-3, 10)
    with pytest.raises(ValueError, match="steps must be an integer >= 0"):
        poisson_spikes(key, jnp.array([1.0]), 1e-3, -1)
    with pytest.raises(ValueError, match="max_spikes must be an integer >= 1"):
        poisson_spike_times(key, jnp.array([1.0]), 1.0, 0)
    with pytest.raises(ValueError, match="duration must be finite and > 0"):
        poisson_spike_times(key, jnp.array([1.0]), 0.0, 5)
    with pytest.raises(ValueError, match="shape \\(n,\\)"):
        poisson_spike_times(key, jnp.ones((2, 2)), 1.0, 5)
    with pytest.raises(ValueError, match="spike times must be >= 0 s"):
        spikes_from_times(np.array([[0.1, -0.2]]), 1e-3, 10)
    with pytest.raises(ValueError, match="spike times must be >= 0 s"):
        spikes_from_times(np.array([[np.nan]]), 1e-3, 10)
    with pytest.raises(ValueError, match="dt must be finite and > 0"):
        spikes_from_times(np.array([[0.1]]), 0.0, 10)
    with pytest.raises(ValueError, match="index shape"):
        advance(jnp.zeros((3, 2)), jnp.zeros(2, jnp.int32), 0.0, 1e-3)
    with pytest.raises(ValueError, match="integer array"):
        advance(jnp.zeros((3, 2)), jnp.zeros(3), 0.0, 1e-3)
    with pytest.raises(ValueError, match="times must have shape \\(n, k\\)"):
        PoissonStream(times=jnp.zeros(3))
