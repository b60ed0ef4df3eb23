"""Tests of the endurance and retention wrappers: window closure, failure, cycle counting, relaxation, composition.

Sample statistics are checked at five standard errors, with these standard errors for n draws:
a sample mean of standard deviation sigma, sigma / sqrt(n); a sample standard deviation of normal draws,
about 1 / sqrt(2 (n - 1)) relative; a proportion p, sqrt(p (1 - p) / n).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from xbar.crossbar import Tile
from xbar.devices import PCM, IdealDevice, ProgramVerify
from xbar.devices.endurance import Endurance, EnduranceState
from xbar.devices.retention import Retention

G_MAX = 25e-6  # S
Z = 5.0  # standard errors allowed in every statistical check
NO_FAILURE = dict(failure_distribution=None)


def program_extremes(device, key, n=1):
    """Program n devices at g_min and n at g_max."""
    target = jnp.concatenate([jnp.full(n, device.g_min), jnp.full(n, device.g_max)])
    return device.program(target, key=key)


# Window closure.


def test_window_constant_before_onset(key):
    for cycles in (0.0, 10.0, 1e5, 1e6 - 2):
        device = Endurance(IdealDevice(), onset_cycles=1e6, initial_cycles=cycles, **NO_FAILURE)
        state = program_extremes(device, key)
        g = device.read(state, 0.0, key=key)

        np.testing.assert_allclose(g, [0.0, G_MAX], atol=1e-12)


def test_window_closes_monotonically_after_onset(key):
    widths = []
    for cycles in np.logspace(6, 17, 23):
        device = Endurance(IdealDevice(), onset_cycles=1e6, closure_per_decade=0.1, initial_cycles=cycles, **NO_FAILURE)
        g = device.read(program_extremes(device, key), 0.0, key=key)
        widths.append(float(g[1] - g[0]))
    widths = np.array(widths)

    assert np.all(np.diff(widths) <= 0)
    # Strictly closing while the window is open: 10 decades at 0.1 per decade close it fully.
    open_widths = widths[widths > 0]
    assert np.all(np.diff(open_widths) < 0)
    assert widths[-1] == 0.0


def test_window_closure_is_log_linear(key):
    device = Endurance(IdealDevice(), onset_cycles=1e4, closure_per_decade=0.2, convergence=0.25, **NO_FAILURE)
    low, high = device.window(jnp.array([1e4, 1e5, 1e6]))

    np.testing.assert_allclose(high - low, G_MAX * np.array([1.0, 0.8, 0.6]), rtol=1e-5)
    # Both ends move towards the convergence conductance 0.25 g_max.
    np.testing.assert_allclose(low, 0.25 * G_MAX * np.array([0.0, 0.2, 0.4]), rtol=1e-5, atol=1e-12)


@settings(max_examples=40, deadline=None)
@given(
    first=st.floats(0.0, 1e15),
    factor=st.floats(1.0, 1e3),
    onset=st.floats(1.0, 1e9),
    rate=st.floats(0.0, 2.0),
)
def test_closed_fraction_monotone_and_bounded(first, factor, onset, rate):
    device = Endurance(IdealDevice(), onset_cycles=onset, closure_per_decade=rate, **NO_FAILURE)
    f_first = float(device.closed_fraction(first))
    f_second = float(device.closed_fraction(first * factor))

    assert 0.0 <= f_first <= f_second <= 1.0


# Failure.


def test_devices_fail_at_drawn_count_and_stay_stuck(key):
    n = 400
    device = Endurance(
        IdealDevice(pulse_step=1e-6),
        failure_distribution="weibull",
        failure_scale=15.0,
        failure_shape=2.0,
        stuck_high_probability=0.3,
    )
    state = device.program(jnp.full(n, 10e-6), key=key)
    step = jax.jit(lambda state, n_pulses, key: device.apply_pulses(state, n_pulses, key=key))
    was_failed = np.zeros(n, bool)
    pulses = np.where(np.arange(n) % 2 == 0, 1, -1)

    for i in range(40):
        state = step(state, pulses, jax.random.fold_in(key, i))
        failed = np.asarray(state.cycles) >= np.asarray(state.failure_cycles)
        g = np.asarray(device.read(state, 1.0, key=key))
        stuck = np.where(np.asarray(state.stuck_high), np.float32(G_MAX), np.float32(0.0))

        np.testing.assert_array_equal(np.asarray(state.failed), failed)
        np.testing.assert_array_equal(g[failed], stuck[failed])
        assert not np.any(was_failed & ~failed), "a failed device recovered"
        was_failed = failed

    # Program counts 1 cycle and each of the 40 calls 1 more, so devices with N_f <= 41 have failed.
    np.testing.assert_array_equal(state.cycles, 41)
    np.testing.assert_array_equal(was_failed, np.asarray(state.failure_cycles) <= 41)
    assert 0 < was_failed.sum() < n


def test_failed_devices_ignore_pulses(key):
    device = Endurance(IdealDevice(), failure_scale=1.0, failure_shape=50.0, stuck_high_probability=0.0, initial_cycles=10.0)
    state = device.program(jnp.full(8, 12e-6), key=key)
    pulsed = device.apply_pulses(state, jnp.full(8, 5), key=key)

    np.testing.assert_array_equal(device.read(state, 0.0, key=key), 0.0)
    np.testing.assert_array_equal(device.read(pulsed, 0.0, key=key), 0.0)


def test_weibull_failure_cycles_match_distribution(key):
    n = 4000
    device = Endurance(IdealDevice(), failure_distribution="weibull", failure_scale=1e8, failure_shape=1.5)
    state = device.program(jnp.zeros(n), key=key)
    # Kolmogorov-Smirnov: at n = 4000, a p-value below 1e-3 rejects the configured distribution.
    result = stats.kstest(np.asarray(state.failure_cycles, float), stats.weibull_min(c=1.5, scale=1e8).cdf)

    assert result.pvalue > 1e-3


def test_lognormal_failure_cycles_median_and_sigma(key):
    n = 4000
    sigma = 0.8
    device = Endurance(IdealDevice(), failure_distribution="lognormal", failure_scale=1e7, failure_shape=sigma)
    log_n = np.log(np.asarray(device.program(jnp.zeros(n), key=key).failure_cycles, float))

    assert abs(log_n.mean() - np.log(1e7)) < Z * sigma / np.sqrt(n)
    assert abs(log_n.std() / sigma - 1.0) < Z / np.sqrt(2 * (n - 1))


def test_stuck_high_fraction_matches_probability(key):
    n, p = 5000, 0.3
    device = Endurance(IdealDevice(), stuck_high_probability=p, failure_scale=1.0, failure_shape=50.0, initial_cycles=100.0)
    state = device.program(jnp.full(n, 10e-6), key=key)
    g = np.asarray(device.read(state, 0.0, key=key))

    assert np.all(np.asarray(state.failed))
    assert np.all((g == 0.0) | (g == np.float32(G_MAX)))
    assert abs((g > 0).mean() - p) < Z * np.sqrt(p * (1 - p) / n)


# Cycle counting.


def test_cycles_count_events_or_pulses(key):
    pulses = jnp.array([0, 1, 3, -2])
    for count, expected in (("events", [1, 2, 2, 2]), ("pulses", [1, 2, 4, 3])):
        device = Endurance(IdealDevice(), count=count, **NO_FAILURE)
        state = device.apply_pulses(device.program(jnp.full(4, 5e-6), key=key), pulses, key=key)

        np.testing.assert_array_equal(state.cycles_since_program, expected)


def test_program_counts_verify_attempts(key):
    device = Endurance(PCM(), initial_cycles=1000.0, **NO_FAILURE)
    state = device.program(jnp.linspace(1e-6, 24e-6, 64), key=key, verify=ProgramVerify(max_iterations=6, tolerance=0.3e-6))

    np.testing.assert_array_equal(state.cycles_since_program, state.iterations)
    np.testing.assert_array_equal(state.cycles, 1000.0 + np.asarray(state.iterations))
    assert int(np.max(state.iterations)) > 1


def test_verify_reaches_targets_inside_worn_window(key):
    device = Endurance(IdealDevice(), onset_cycles=1e3, closure_per_decade=0.1, initial_cycles=1e5, **NO_FAILURE)
    low, high = (float(v) for v in device.window(1e5 + 1))
    target = jnp.linspace(low, high, 11)

    verified = device.program(target, key=key, verify=ProgramVerify(tolerance=1e-9))
    single = device.program(target, key=key)

    np.testing.assert_allclose(device.read(verified, 0.0, key=key), target, rtol=1e-5, atol=1e-12)
    # Without verify the device does not know its wear, so targets come back contracted.
    assert float(jnp.max(jnp.abs(device.read(single, 0.0, key=key) - target))) > 1e-6


def test_large_initial_cycles_count_exactly(key):
    device = Endurance(IdealDevice(), initial_cycles=1e9, **NO_FAILURE)
    state = device.program(jnp.full(3, 5e-6), key=key)
    for i in range(5):
        state = device.apply_pulses(state, jnp.array([1, 0, 1]), key=key)

    # The float32 prior count cannot hold 1e9 + 6, but the exact int32 counter since programming does.
    np.testing.assert_array_equal(state.cycles_since_program, [6, 1, 6])


# Retention.


def test_retention_read_at_zero_is_inner_read(key):
    inner = PCM()
    device = Retention(inner, exponent=0.05, relaxation_level=5e-6)
    state = device.program(jnp.linspace(0.0, G_MAX, 9), key=key)

    np.testing.assert_allclose(device.drift(state, 0.0), inner.drift(state, 0.0), rtol=1e-6)
    np.testing.assert_allclose(device.read(state, 0.0, key=key), inner.read(state, 0.0, key=jax.random.split(key)[0]), rtol=1e-6)


def test_retention_default_matches_cmo_decay(key):
    n = 20000
    t = 1e4  # s
    device = Retention(IdealDevice())
    state = device.program(jnp.full(n, 12e-6), key=key)
    g = np.asarray(device.read(state, t, key=key), float)
    u = np.log1p(t)
    expected_std = 0.04201137e-6 * u

    assert abs(g.mean() - (12e-6 - 0.08900206e-6 * u)) < Z * expected_std / np.sqrt(n)
    assert abs(g.std() / expected_std - 1.0) < Z / np.sqrt(2 * (n - 1))


def test_retention_relaxes_towards_level(key):
    level = 8e-6
    device = Retention(IdealDevice(), relaxation_level=level, exponent=0.2, shift=0.0, spread=0.0)
    state = device.program(jnp.array([0.0, 4e-6, 8e-6, 16e-6, 25e-6]), key=key)
    times = np.logspace(-3, 9, 25)
    distance = np.stack([np.abs(np.asarray(device.drift(state, t)) - level) for t in times])

    assert np.all(np.diff(distance, axis=0) <= 1e-12)
    np.testing.assert_allclose(distance[:, 2], 0.0, atol=1e-12)
    initial = np.abs(np.array([0.0, 4e-6, 8e-6, 16e-6, 25e-6]) - level)
    np.testing.assert_allclose(distance[-1], initial * (1 + 1e9) ** -0.2, rtol=1e-4)


def test_retention_never_negative(key):
    device = Retention(IdealDevice(), shift=-1e-6)
    state = device.program(jnp.array([0.0, 1e-6, 5e-6]), key=key)

    assert float(jnp.min(device.read(state, 1e12, key=key))) >= 0.0


# Composition, transformations, checks.


@pytest.mark.parametrize("inner", [IdealDevice(), PCM(), Retention(PCM())], ids=["ideal", "pcm", "retention-pcm"])
def test_endurance_in_tile_jit_and_vmap(inner, key, rng):
    tile = Tile(device=Endurance(inner, onset_cycles=1e4, initial_cycles=1e6, failure_scale=1e9))
    weights = jnp.asarray(rng.normal(size=(6, 4)), jnp.float32)
    x = jnp.asarray(rng.normal(size=(3, 6)), jnp.float32)

    keys = jax.random.split(key, 3)
    jitted = jax.jit(lambda w, k: tile.forward(w, x, 10.0, key=k))(weights, keys[1])
    batched = jax.vmap(lambda k: tile.forward(weights, x, 10.0, key=k))(keys)

    np.testing.assert_allclose(batched[1], jitted, rtol=1e-4, atol=1e-5)
    assert batched.shape == (3, 3, 4)
    assert np.all(np.isfinite(batched))
    assert isinstance(jax.jit(tile.program)(weights, key=key).g_pos, EnduranceState)


def test_endurance_shrinks_tile_outputs(key, rng):
    weights = jnp.asarray(rng.normal(size=(8, 5)), jnp.float32)
    x = jnp.asarray(rng.normal(size=(2, 8)), jnp.float32)
    fresh = Tile(device=Endurance(IdealDevice(), **NO_FAILURE)).forward(weights, x, key=key)
    worn = Tile(device=Endurance(IdealDevice(), onset_cycles=1e3, initial_cycles=1e6, **NO_FAILURE)).forward(weights, x, key=key)

    # Three decades past the onset at 0.1 per decade leave 70 % of the window, so differential outputs scale by 0.7.
    np.testing.assert_allclose(fresh, x @ weights, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(worn, 0.7 * fresh, rtol=1e-4, atol=1e-5)


def test_wrappers_differentiable(key):
    def mean_read(closure, exponent):
        device = Endurance(Retention(PCM(), exponent=exponent), onset_cycles=1e3, closure_per_decade=closure, initial_cycles=1e5, **NO_FAILURE)
        state = device.program(jnp.linspace(0.0, G_MAX, 16), key=key)
        return jnp.mean(device.read(state, 100.0, key=key))

    grads = jax.grad(mean_read, argnums=(0, 1))(0.1, 0.05)

    assert all(np.isfinite(g) and g != 0 for g in grads)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(onset_cycles=0.0), "onset_cycles"),
        (dict(closure_per_decade=-0.1), "closure_per_decade"),
        (dict(convergence=1.5), "convergence"),
        (dict(failure_distribution="gamma"), "failure_distribution"),
        (dict(failure_scale=float("inf")), "failure_scale"),
        (dict(stuck_high_probability=-0.1), "stuck_high_probability"),
        (dict(initial_cycles=-1.0), "initial_cycles"),
        (dict(count="seconds"), "count"),
    ],
)
def test_endurance_rejects_bad_parameters(kwargs, match):
    with pytest.raises(ValueError, match=match):
        Endurance(IdealDevice(), **kwargs)


def test_wrappers_reject_non_devices():
    with pytest.raises(ValueError, match="Device instance"):
        Endurance("pcm")
    with pytest.raises(ValueError, match="Device instance"):
        Retention(None)
    with pytest.raises(ValueError, match="t0"):
        Retention(IdealDevice(), t0=0.0)


def test_per_device_initial_cycles(key):
    cycles = jnp.array([0.0, 1e4, 1e5, 1e6])
    device = Endurance(IdealDevice(), onset_cycles=1e4, closure_per_decade=0.25, initial_cycles=cycles, **NO_FAILURE)
    state = device.program(jnp.full(4, G_MAX), key=key)

    # The worn g_max is 0.5 g_max + (1 - f) 0.5 g_max with f = 0, 0, 0.25, 0.5 (one programming cycle added).
    np.testing.assert_allclose(device.read(state, 0.0, key=key), G_MAX * np.array([1.0, 1.0, 0.875, 0.75]), rtol=1e-4)


def test_endurance_of_sampled_device_in_tile(key, rng):
    from xbar.variability import Normal, sample_parameters

    weights = jnp.asarray(rng.normal(size=(6, 4)), jnp.float32)
    x = jnp.asarray(rng.normal(size=(3, 6)), jnp.float32)

    def forward(key):
        inner = sample_parameters(PCM(), (6, 4), key, {"drift_scale": Normal(0.2)})
        tile = Tile(device=Endurance(inner, onset_cycles=1e3, initial_cycles=1e5))
        return tile.forward(weights, x, 10.0, key=key)

    batched = jax.jit(jax.vmap(forward))(jax.random.split(key, 2))

    assert batched.shape == (2, 3, 4)
    assert np.all(np.isfinite(batched))
