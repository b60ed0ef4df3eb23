"""Hybrid synapses: capacitor + PCM with transfer, multi-memristive arbitration, mixed-precision updates."""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from xbar.crossbar.hybrid import (
    CapacitorPCMSynapse,
    MixedPrecisionUpdate,
    MultiMemristiveSynapse,
)
from xbar.devices import PCM, IdealDevice, ProgramVerify

# An ideal device whose range (F * 25 uS = 75 uS of weight in a capacitor synapse) exceeds the weights
# of these tests, except where a test saturates the pair on purpose.
IDEAL = IdealDevice(g_min=0.0, g_max=25e-6, pulse_step=0.25e-6)


def _ideal_synapse(**changes):
    settings_ = {"device": IDEAL, "rounding": "none"}
    settings_.update(changes)
    return CapacitorPCMSynapse(**settings_)


# Capacitor leak.


def test_leak_follows_time_constant(key):
    synapse = _ideal_synapse(tau=5e-3)
    state = synapse.update(synapse.init(jnp.zeros(3), key=key), jnp.array([4e-6, -2e-6, 1e-6]))
    start = state.g - synapse.g_shared
    for dt in (0.0, 1e-3, 5e-3, 20e-3):
        leaked = synapse.leak(state, dt)
        np.testing.assert_allclose(leaked.g - synapse.g_shared, start * np.exp(-dt / 5e-3), rtol=1e-5, atol=1e-13)


def test_leak_under_vmap_matches_exponential(key):
    synapse = _ideal_synapse(tau=2e-3)
    state = synapse.update(synapse.init(jnp.zeros(4), key=key), 3e-6)
    times = jnp.array([0.0, 0.5e-3, 2e-3, 10e-3])
    leaked = jax.vmap(lambda dt: synapse.leak(state, dt).g)(times)
    expected = synapse.g_shared + 3e-6 * np.exp(-np.asarray(times) / 2e-3)[:, None]
    assert leaked.shape == (4, 4)
    np.testing.assert_allclose(leaked, np.broadcast_to(expected, (4, 4)), rtol=1e-5)


@settings(max_examples=25, deadline=None)
@given(first=st.floats(0.0, 0.05), second=st.floats(0.0, 0.05), change=st.floats(-8e-6, 8e-6))
def test_leak_composes_and_never_grows(first, second, change):
    synapse = _ideal_synapse()
    state = synapse.update(synapse.init(jnp.zeros(1), key=jax.random.key(0)), change)
    twice = synapse.leak(synapse.leak(state, first), second)
    once = synapse.leak(state, first + second)
    # exp(-a) exp(-b) and exp(-(a + b)) agree to a few float32 ulps of the 8 uS deviation.
    np.testing.assert_allclose(twice.g, once.g, rtol=0, atol=1e-11)
    assert np.all(np.abs(once.g - synapse.g_shared) <= np.abs(state.g - synapse.g_shared) + 1e-12)


def test_leak_rejects_negative_time(key):
    synapse = _ideal_synapse()
    state = synapse.init(jnp.zeros(2), key=key)
    with pytest.raises(ValueError, match="leak time dt"):
        synapse.leak(state, -1e-3)


# Capacitor update.


def test_analog_update_is_linear(key):
    synapse = _ideal_synapse()
    weights = jnp.array([-10e-6, 0.0, 10e-6])
    state = synapse.init(weights, key=key)
    first = synapse.update(state, jnp.array([1e-6, -2e-6, 0.5e-6]))
    second = synapse.update(first, jnp.array([1e-6, -2e-6, 0.5e-6]))
    np.testing.assert_allclose(synapse.weight(first) - weights, [1e-6, -2e-6, 0.5e-6], rtol=1e-5, atol=1e-12)
    np.testing.assert_allclose(synapse.weight(second) - weights, [2e-6, -4e-6, 1e-6], rtol=1e-5, atol=1e-12)
    assert int(second.updates) == 2


def test_nearest_update_moves_whole_steps(key):
    synapse = _ideal_synapse(rounding="nearest", step=0.5e-6)
    state = synapse.init(jnp.zeros(4), key=key)
    updated = synapse.update(state, jnp.array([0.2e-6, 0.3e-6, 1.1e-6, -1.4e-6]))
    np.testing.assert_allclose(updated.g - synapse.g_shared, [0.0, 0.5e-6, 1.0e-6, -1.5e-6], atol=1e-12)


def test_update_clips_to_capacitor_range(key):
    synapse = _ideal_synapse()
    state = synapse.init(jnp.zeros(2), key=key)
    updated = synapse.update(state, jnp.array([1e-3, -1e-3]))
    np.testing.assert_allclose(updated.g, [synapse.g_max, synapse.g_min])


def test_stochastic_update_is_unbiased(key):
    synapse = _ideal_synapse(rounding="stochastic", step=0.5e-6)
    n = 20_000
    state = synapse.init(jnp.zeros(n), key=key)
    updated = synapse.update(state, 0.2e-6, key=jax.random.key(1))
    steps = (np.asarray(updated.g) - synapse.g_shared) / 0.5e-6
    # Each step count is Bernoulli(0.4): the mean of n draws has standard error sqrt(0.24 / n) = 0.0035;
    # 5 standard errors keep a false failure below 1e-6.
    assert set(np.round(steps).tolist()) <= {0.0, 1.0}
    assert abs(steps.mean() - 0.4) < 5 * np.sqrt(0.24 / n)


def test_stochastic_update_needs_key(key):
    synapse = _ideal_synapse(rounding="stochastic")
    state = synapse.init(jnp.zeros(2), key=key)
    with pytest.raises(ValueError, match="PRNG key"):
        synapse.update(state, 1e-6)


@settings(max_examples=25, deadline=None)
@given(changes=st.lists(st.floats(-5e-6, 5e-6), min_size=1, max_size=8))
def test_capacitor_stays_in_range(changes):
    synapse = _ideal_synapse(rounding="nearest")
    state = synapse.init(jnp.zeros(1), key=jax.random.key(0))
    for change in changes:
        state = synapse.update(state, change)
        # The state is float32, so compare with the bounds rounded to float32.
        assert np.float32(synapse.g_min) <= state.g[0] <= np.float32(synapse.g_max)


# Transfer and polarity inversion.


def test_transfer_preserves_weight_with_ideal_device(key):
    synapse = _ideal_synapse()
    weights = jnp.linspace(-60e-6, 60e-6, 7)
    state = synapse.update(synapse.init(weights, key=key), jnp.linspace(-6e-6, 6e-6, 7))
    before = synapse.weight(state)
    after = synapse.transfer(state, key=jax.random.key(1))
    # Ideal programming is exact, so only float32 rounding of F (G+ - G-) remains (~1e-12 S).
    np.testing.assert_allclose(synapse.weight(after), before, rtol=0, atol=1e-11)
    np.testing.assert_allclose(after.g, synapse.g_shared, rtol=0, atol=1e-11)
    assert int(after.polarity) == -1
    assert int(after.updates) == 0


def test_transfer_keeps_excess_on_capacitor(key):
    # 78 uS is more than F * 25 uS = 75 uS, so the pair saturates and 3 uS stay on the capacitor.
    synapse = _ideal_synapse()
    state = synapse.init(jnp.array([72e-6]), key=key)
    state = synapse.update(state, 6e-6)
    before = synapse.weight(state)
    after = synapse.transfer(state, key=jax.random.key(1))
    np.testing.assert_allclose(synapse.weight(after), before, rtol=1e-6)
    np.testing.assert_allclose(synapse.capacitor_weight(after), [3e-6], rtol=1e-4)
    assert int(after.polarity) == -1


def test_polarity_inversion_keeps_weight(key):
    synapse = _ideal_synapse()
    state = synapse.update(synapse.init(jnp.array([5e-6, -20e-6]), key=key), jnp.array([2e-6, -3e-6]))
    inverted = synapse.transfer(state, key=jax.random.key(1))
    kept = _ideal_synapse(polarity_inversion=False).transfer(state, key=jax.random.key(1))
    np.testing.assert_allclose(synapse.weight(inverted), synapse.weight(state), rtol=0, atol=1e-11)
    np.testing.assert_allclose(synapse.weight(kept), synapse.weight(state), rtol=0, atol=1e-11)
    assert int(inverted.polarity) == -1
    assert int(kept.polarity) == 1


def test_polarity_inversion_cancels_step_asymmetry(key):
    # Charging steps are 20 % larger than discharging ones. The same potentiation request charges the
    # capacitor in one interval and discharges it in the next, so two intervals average the mismatch out.
    asymmetry = 0.2
    request = 2e-6

    def two_intervals(synapse):
        state = synapse.init(jnp.zeros(1), key=key)
        state = synapse.transfer(synapse.update(state, request), key=jax.random.key(1))
        state = synapse.update(state, request)
        return float(synapse.weight(state)[0])

    inverted = two_intervals(_ideal_synapse(asymmetry=asymmetry))
    fixed = two_intervals(_ideal_synapse(asymmetry=asymmetry, polarity_inversion=False))
    np.testing.assert_allclose(inverted, 2 * request, rtol=1e-5)
    np.testing.assert_allclose(fixed, 2 * request * (1 + asymmetry), rtol=1e-5)


def test_transfer_with_pcm_within_write_noise(key):
    device = PCM()
    synapse = CapacitorPCMSynapse(device=device, rounding="none")
    n = 2000
    key_w, key_init, key_transfer = jax.random.split(key, 3)
    weights = jax.random.uniform(key_w, (n,), minval=-40e-6, maxval=40e-6)
    state = synapse.update(synapse.init(weights, key=key_init), 3e-6)
    before = synapse.weight(state)
    after = synapse.transfer(state, key=key_transfer)
    error = np.asarray(synapse.weight(after) - before)

    # Each PCM device is written with Gaussian noise of std sigma_P(target) (clamped at 0 S, which only
    # shrinks the error), so error = F (noise+ - noise-) has std <= F sqrt(sigma+^2 + sigma-^2). Over
    # 2000 synapses, a bound of 5.5 std is exceeded by chance with probability 2000 * 3.8e-8 < 1e-4.
    difference = np.asarray(before) / synapse.gain
    sigma_pos = np.asarray(device.programming_noise_std(np.maximum(difference, 0.0)))
    sigma_neg = np.asarray(device.programming_noise_std(np.maximum(-difference, 0.0)))
    bound = 5.5 * synapse.gain * np.sqrt(sigma_pos**2 + sigma_neg**2)
    assert np.all(np.abs(error) <= bound)
    # The transfer must actually reprogram the devices with noise, not copy the old conductances.
    assert np.mean(np.abs(error) > 1e-9) > 0.9


def test_transfer_with_verify_tightens_error(key):
    # The write noise of a PCM device has a standard deviation of at most 1.09 uS, so one attempt lands
    # within 0.5 uS with probability at least 0.35. A device misses all 40 attempts with probability
    # below 0.65^40 = 2.5e-8, so that any of the 800 devices does so has probability below 2e-5.
    verify = ProgramVerify(max_iterations=40, tolerance=0.5e-6)
    weights = jnp.linspace(-40e-6, 40e-6, 400)
    errors = {}
    for name, setting in (("verified", verify), ("single", None)):
        synapse = CapacitorPCMSynapse(device=PCM(), rounding="none", verify=setting)
        state = synapse.update(synapse.init(weights, key=key), 2e-6)
        after = synapse.transfer(state, key=jax.random.key(1))
        errors[name] = np.abs(np.asarray(synapse.weight(after) - synapse.weight(state)))
        if setting is not None:
            # Every device converged (fewer attempts than the limit), so each lies within the tolerance.
            assert int(after.g_pos.iterations.max()) < verify.max_iterations
            assert int(after.g_neg.iterations.max()) < verify.max_iterations
    # Both devices within 0.5 uS of their targets bound the weight error by F * 2 * 0.5 uS.
    assert np.all(errors["verified"] <= 3.0 * 2 * verify.tolerance + 1e-12)
    assert errors["verified"].mean() < errors["single"].mean()


def test_train_step_transfers_after_interval(key):
    synapse = _ideal_synapse(transfer_interval=3, tau=1.0)
    state = synapse.init(jnp.array([10e-6, -10e-6]), key=key)
    step = jax.jit(lambda s, k: synapse.train_step(s, 1e-6, dt=0.0, key=k))
    for index in range(2):
        state = step(state, jax.random.key(index))
        assert int(state.polarity) == 1
        assert int(state.updates) == index + 1
    state = step(state, jax.random.key(5))
    assert int(state.polarity) == -1
    assert int(state.updates) == 0
    np.testing.assert_allclose(synapse.weight(state), [13e-6, -7e-6], rtol=1e-5)
    np.testing.assert_allclose(state.g, synapse.g_shared, atol=1e-11)


# jit and vmap of the capacitor synapse.


def test_capacitor_synapse_jit_matches_eager(key):
    synapse = CapacitorPCMSynapse(device=PCM(), rounding="nearest")
    state = synapse.init(jnp.linspace(-30e-6, 30e-6, 6), key=key)
    eager = synapse.transfer(synapse.update(state, 1e-6), key=jax.random.key(2))
    jitted = jax.jit(lambda s: synapse.transfer(synapse.update(s, 1e-6), key=jax.random.key(2)))(state)
    np.testing.assert_allclose(synapse.weight(jitted), synapse.weight(eager), rtol=1e-6)


def test_capacitor_synapse_vmaps_over_arrays(key):
    synapse = _ideal_synapse()
    weights = jnp.array([[1e-6, 2e-6], [3e-6, 4e-6], [5e-6, 6e-6]])
    keys = jax.random.split(key, 3)
    states = jax.vmap(lambda w, k: synapse.init(w, key=k))(weights, keys)
    assert states.polarity.shape == (3,)
    updated = jax.vmap(lambda s: synapse.update(s, 1e-6))(states)
    np.testing.assert_allclose(jax.vmap(synapse.weight)(updated), weights + 1e-6, rtol=1e-5)


# Validation of the capacitor synapse.


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"gain": 0.0}, "gain"),
        ({"g_shared": 30e-6}, "g_shared"),
        ({"g_min": 20e-6, "g_max": 4e-6}, "g_max"),
        ({"asymmetry": 1.0}, "asymmetry"),
        ({"tau": -1.0}, "tau"),
        ({"step": 0.0}, "step"),
        ({"transfer_interval": 0}, "transfer_interval"),
        ({"rounding": "up"}, "rounding"),
        ({"device": "pcm"}, "device"),
    ],
)
def test_capacitor_synapse_rejects_bad_parameters(changes, message):
    with pytest.raises(ValueError, match=message):
        CapacitorPCMSynapse(**changes)


# Multi-memristive synapse.


def test_counter_cycles_through_all_devices(key):
    synapse = MultiMemristiveSynapse(IDEAL, n_devices=4, increment=3)
    state = synapse.init(jnp.full((5,), 40e-6), key=key)
    visited = []
    for index in range(8):
        visited.append(int(state.counter))
        state = synapse.update(state, jnp.ones(5), key=jax.random.key(index))
    # An increment of 3 modulo 4 visits 0, 3, 2, 1 and repeats, so 8 events give every device 2 pulses.
    assert visited == [0, 3, 2, 1, 0, 3, 2, 1]
    conductances = np.asarray(synapse.conductances(state))
    np.testing.assert_allclose(conductances, 10e-6 + 2 * IDEAL.pulse_step, rtol=1e-6)


def test_only_selected_device_changes(key):
    synapse = MultiMemristiveSynapse(IDEAL, n_devices=3)
    state = synapse.init(jnp.full((2,), 30e-6), key=key)
    updated = synapse.update(state, jnp.array([2.0, -1.0]), key=key)
    change = np.asarray(synapse.conductances(updated) - synapse.conductances(state))
    np.testing.assert_allclose(change[0], [2 * IDEAL.pulse_step, -IDEAL.pulse_step], rtol=1e-5)
    np.testing.assert_array_equal(change[1:], 0.0)
    np.testing.assert_allclose(synapse.weight(updated) - synapse.weight(state), change[0], rtol=1e-5)


def test_differential_depression_potentiates_negative_group(key):
    synapse = MultiMemristiveSynapse(IDEAL, n_devices=2, differential=True)
    state = synapse.init(jnp.array([4e-6, -4e-6]), key=key)
    updated = synapse.update(state, jnp.array([1.0, -1.0]), key=key)
    g_pos, g_neg = synapse.conductances(updated)
    np.testing.assert_allclose(synapse.weight(updated), [4.25e-6, -4.25e-6], rtol=1e-5)
    np.testing.assert_allclose(g_neg[0, 1], 2e-6 + IDEAL.pulse_step, rtol=1e-5)
    np.testing.assert_allclose(g_pos[0, 1], 0.0, atol=1e-12)


def test_refresh_keeps_weight_and_frees_range(key):
    synapse = MultiMemristiveSynapse(IDEAL, n_devices=2, differential=True, refresh_level=0.9)
    state = synapse.init(jnp.zeros(2), key=key)
    # Both groups of the first synapse sit just below 0.9 g_max = 22.5 uS; one more pulse on G+ passes it.
    first_only = jnp.array([1.0, 0.0])
    state = eqx.tree_at(
        lambda s: (s.devices.g, s.devices_neg.g), state,
        (jnp.full((2, 2), 22.4e-6) * first_only, jnp.full((2, 2), 20e-6) * first_only),
    )
    before = synapse.weight(state)
    updated = synapse.update(state, first_only, key=jax.random.key(1))
    g_pos, g_neg = synapse.conductances(updated)
    np.testing.assert_allclose(synapse.weight(updated), before + IDEAL.pulse_step * first_only, rtol=1e-5, atol=1e-12)
    np.testing.assert_allclose(g_pos[:, 0], (4.8e-6 + IDEAL.pulse_step) / 2, rtol=1e-5)
    np.testing.assert_allclose(g_neg[:, 0], 0.0, atol=1e-12)
    np.testing.assert_array_equal(g_pos[:, 1], 0.0)


def test_multi_memristive_jit_and_vmap(key):
    synapse = MultiMemristiveSynapse(PCM(), n_devices=3, differential=True)
    state = synapse.init(jnp.linspace(-10e-6, 10e-6, 4), key=key)
    counts = jnp.array([1.0, -1.0, 2.0, 0.0])
    eager = synapse.update(state, counts, key=jax.random.key(3))
    jitted = jax.jit(lambda s, n: synapse.update(s, n, key=jax.random.key(3)))(state, counts)
    np.testing.assert_allclose(synapse.weight(jitted), synapse.weight(eager), rtol=1e-6)
    assert int(jitted.counter) == 1

    weights = jnp.stack([jnp.zeros(4), jnp.full(4, 5e-6)])
    states = jax.vmap(lambda w, k: synapse.init(w, key=k))(weights, jax.random.split(key, 2))
    updated = jax.vmap(lambda s, k: synapse.update(s, counts, key=k))(states, jax.random.split(key, 2))
    assert jax.vmap(synapse.weight)(updated).shape == (2, 4)
    np.testing.assert_array_equal(updated.counter, [1, 1])


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"n_devices": 0}, "n_devices"),
        ({"n_devices": 4, "increment": 2}, "coprime"),
        ({"n_devices": 3, "increment": 0}, "increment"),
        ({"n_devices": 2, "refresh_level": 0.9}, "differential"),
        ({"n_devices": 2, "differential": True, "refresh_level": 1.5}, "refresh_level"),
        ({"n_devices": 2, "device": None}, "device"),
    ],
)
def test_multi_memristive_rejects_bad_parameters(changes, message):
    arguments = {"device": IDEAL}
    arguments.update(changes)
    with pytest.raises(ValueError, match=message):
        MultiMemristiveSynapse(**arguments)


# Mixed-precision update.


def _mixed(max_pulses_per_update=None):
    return MixedPrecisionUpdate(
        MultiMemristiveSynapse(IDEAL, n_devices=1), epsilon=IDEAL.pulse_step,
        max_pulses_per_update=max_pulses_per_update,
    )


@settings(max_examples=25, deadline=None)
@given(requests=st.lists(st.floats(-1.2e-6, 1.2e-6), min_size=1, max_size=12))
def test_mixed_precision_residual_and_total(requests):
    update = _mixed()
    state = update.init(jnp.full((1,), 12.5e-6), key=jax.random.key(0))
    start = float(update.weight(state)[0])
    for request in requests:
        state = update.update(state, jnp.array([request]), key=jax.random.key(1))
        assert abs(float(state.chi[0])) < update.epsilon
    applied = float(update.weight(state)[0]) - start
    # Applied pulses plus the residual equal the requests; float32 sums of 12 terms of ~1 uS agree to 1e-12 S.
    assert abs(sum(requests) - applied) < update.epsilon
    np.testing.assert_allclose(applied + float(state.chi[0]), sum(requests), rtol=0, atol=1e-11)


def test_mixed_precision_applies_whole_pulses_toward_zero():
    update = _mixed()
    chi, pulses = update.accumulate(jnp.zeros(5), jnp.array([0.2e-6, 0.25e-6, 0.74e-6, -0.6e-6, -0.24e-6]))
    np.testing.assert_array_equal(pulses, [0.0, 1.0, 2.0, -2.0, 0.0])
    np.testing.assert_allclose(chi, [0.2e-6, 0.0, 0.24e-6, -0.1e-6, -0.24e-6], atol=1e-12)


def test_mixed_precision_exact_multiples_leave_no_residual():
    update = _mixed()
    epsilon = update.epsilon
    chi, pulses = update.accumulate(jnp.zeros(4), jnp.array([1.0, 3.0, -7.0, 10.0]) * epsilon)
    np.testing.assert_array_equal(pulses, [1.0, 3.0, -7.0, 10.0])
    assert np.all(np.abs(np.asarray(chi)) < epsilon)


def test_mixed_precision_one_pulse_per_update(key):
    update = _mixed(max_pulses_per_update=1)
    state = update.init(jnp.full((2,), 12.5e-6), key=key)
    state = update.update(state, jnp.array([1.0e-6, -0.6e-6]), key=key)
    np.testing.assert_allclose(update.weight(state), [12.75e-6, 12.25e-6], rtol=1e-6)
    np.testing.assert_allclose(state.chi, [0.75e-6, -0.35e-6], rtol=1e-5)
    # The capped rest drains one pulse per update while no new change is requested.
    for _ in range(3):
        state = update.update(state, jnp.zeros(2), key=key)
    np.testing.assert_allclose(update.weight(state), [13.5e-6, 12.0e-6], rtol=1e-6)
    assert np.all(np.abs(np.asarray(state.chi)) < update.epsilon)


def test_mixed_precision_jit_and_vmap(key):
    update = MixedPrecisionUpdate(
        MultiMemristiveSynapse(PCM(), n_devices=1, differential=True, refresh_level=0.9), epsilon=0.5e-6,
    )
    state = update.init(jnp.zeros(3), key=key)
    requests = jnp.array([1.2e-6, -0.7e-6, 0.1e-6])
    jitted = jax.jit(lambda s, d: update.update(s, d, key=jax.random.key(1)))(state, requests)
    eager = update.update(state, requests, key=jax.random.key(1))
    np.testing.assert_allclose(jitted.chi, eager.chi, rtol=1e-6)
    np.testing.assert_allclose(update.weight(jitted), update.weight(eager), rtol=1e-6)
    np.testing.assert_allclose(jitted.chi, [0.2e-6, -0.2e-6, 0.1e-6], rtol=1e-5)

    chi, pulses = jax.vmap(update.accumulate)(jnp.zeros((4, 3)), jnp.tile(requests, (4, 1)))
    assert chi.shape == pulses.shape == (4, 3)
    np.testing.assert_array_equal(pulses[:, 0], 2.0)


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"synapse": MultiMemristiveSynapse(IDEAL, n_devices=1), "epsilon": 0.0}, "epsilon"),
        ({"synapse": IDEAL, "epsilon": 1e-6}, "MultiMemristiveSynapse"),
        ({"synapse": MultiMemristiveSynapse(IDEAL, n_devices=1), "epsilon": 1e-6, "max_pulses_per_update": 0},
         "max_pulses_per_update"),
    ],
)
def test_mixed_precision_rejects_bad_parameters(arguments, message):
    with pytest.raises(ValueError, match=message):
        MixedPrecisionUpdate(**arguments)


def test_mixed_precision_rejects_nonfinite_request(key):
    update = _mixed()
    state = update.init(jnp.zeros(2), key=key)
    with pytest.raises(ValueError, match="delta_w"):
        update.update(state, jnp.array([np.nan, 0.0]), key=key)
