"""Tests of in-situ learning on crossbar devices: `Synapses`, `Network`, `run`, `run_clamped`, `mean_pulse_step`."""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from xbar.crossbar import Tile
from xbar.devices import PCM, Device, DeviceState, IdealDevice, PulsedDevice, SoftBoundsStep, preset
from xbar.learning import (
    LIF,
    STDP,
    Network,
    PoissonStream,
    Synapses,
    mean_pulse_step,
    poisson_spikes,
    run,
    run_clamped,
)

DT = 1e-4  # s
STEPS = 2000  # 0.2 s of network time per run
N_PRE, N_POST = 40, 3
INPUT_RATE = 80.0  # Hz

# 40 inputs at 80 Hz drive the Song-Miller-Abbott neuron through 5 ms conductance synapses (weights are
# conductances relative to the leak). With weights of up to 0.05 the mean input conductance is about 0.4
# of the leak and the neurons fire at tens of Hz. With up to 0.3 they fire at over 1 kHz, which moves
# weights onto the bounds within a fraction of a second.
MODERATE_RANGE = 0.05
DRIVEN_RANGE = 0.3

IDEAL = IdealDevice(g_min=0.0, g_max=25e-6, pulse_step=0.25e-6)
TAOX = preset("taox_hfox")


def mild_rule(weight_range):
    """Song et al. (2000) amplitudes: 1 % of the weight range per pair at delay 0."""
    return STDP(a_plus=0.01 * weight_range, a_minus=-0.0105 * weight_range)


def mixed_rule(weight_range):
    """5 % of the range per pair; the second half of the inputs is depressed by causal pairs (a_plus < 0),
    so that learning pushes some weights onto the upper bound and others onto the lower one."""
    sign = jnp.where(jnp.arange(N_PRE) < N_PRE // 2, 1.0, -1.0)
    return STDP(a_plus=0.05 * weight_range * sign, a_minus=-0.0525 * weight_range)


def network_on(device, rule, weight_range, rounding="stochastic", **synapse_options):
    synapses = Synapses(tile=Tile(device=device, weight_range=weight_range), rounding=rounding, **synapse_options)
    return Network(synapses=synapses, neurons=LIF(), plasticity=rule, dt=DT)


def input_raster(key, steps=STEPS):
    return poisson_spikes(key, jnp.full(N_PRE, INPUT_RATE), DT, steps)


def start_state(network, key, low=0.2, high=0.8):
    """Program weights uniform in [low, high] of the weight range."""
    weight_range = network.synapses.tile.weight_range
    weights = jax.random.uniform(key, (N_PRE, N_POST), minval=low, maxval=high) * weight_range
    return network.init(weights, key=key)


def assert_trees_equal(first, second):
    for a, b in zip(jax.tree_util.tree_leaves(first), jax.tree_util.tree_leaves(second), strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def trees_equal(first, second) -> bool:
    return all(
        np.array_equal(np.asarray(a), np.asarray(b))
        for a, b in zip(jax.tree_util.tree_leaves(first), jax.tree_util.tree_leaves(second), strict=True)
    )


def device_bounds(device):
    return float(np.min(device.g_min)), float(np.max(device.g_max))


# Weights stay within the device range while learning.


@pytest.mark.parametrize("device", [IDEAL, TAOX], ids=["ideal", "taox_hfox"])
def test_weights_stay_within_device_bounds(device):
    network = network_on(device, mixed_rule(DRIVEN_RANGE), DRIVEN_RANGE)
    key = jax.random.key(1)
    state = start_state(network, key)
    g_min, g_max = device_bounds(device)
    # Four runs of 0.2 s, checked after each, so that the bounds hold during learning and not only at its end.
    for segment in range(4):
        segment_key = jax.random.fold_in(key, segment)
        state, stats = run(network, state, input_raster(segment_key), STEPS, key=segment_key)
        g_pos = np.asarray(state.synapses.g_pos.g)
        assert g_pos.min() >= g_min
        assert g_pos.max() <= g_max
        # Bidirectional devices keep the weight on G+ and leave G- at g_min.
        np.testing.assert_array_equal(np.asarray(state.synapses.g_neg.g), np.float32(g_min))
        weights = np.asarray(network.weights(state, key=segment_key))
        assert weights.min() >= 0.0
        assert weights.max() <= DRIVEN_RANGE * (1 + 1e-6)
    assert float(stats.output_spikes.sum()) > 0
    # Some weights reached each bound, so the clipping was exercised.
    span = g_max - g_min
    assert np.any(g_pos <= g_min + 1e-3 * span)
    assert np.any(g_pos >= g_max - 1e-3 * span)


# Determinism and reproducibility.


def noisy_taox():
    # Read noise of 5 % of the range makes each run depend on its key even without learning.
    return eqx.tree_at(lambda device: device.read_noise, TAOX, 0.05 * (TAOX.g_max - TAOX.g_min))


def test_without_learning_run_is_deterministic_and_weights_stay():
    network = network_on(noisy_taox(), mild_rule(MODERATE_RANGE), MODERATE_RANGE)
    state = start_state(network, jax.random.key(2))
    raster = input_raster(jax.random.key(3))

    first, first_stats = run(network, state, raster, STEPS, key=jax.random.key(4), learn=False)
    second, second_stats = run(network, state, raster, STEPS, key=jax.random.key(4), learn=False)
    assert_trees_equal(first, second)
    assert_trees_equal(first_stats, second_stats)

    assert float(first_stats.output_spikes.sum()) > 0
    assert_trees_equal(first.synapses, state.synapses)
    assert_trees_equal(first.traces, state.traces)
    assert float(first_stats.potentiation_pulses) == 0.0
    assert float(first_stats.depression_pulses) == 0.0

    # The key reaches the read noise: another key gives other membrane potentials.
    other, _ = run(network, state, raster, STEPS, key=jax.random.key(5), learn=False)
    assert not np.array_equal(np.asarray(other.neurons.v), np.asarray(first.neurons.v))


def test_network_without_rule_keeps_weights():
    synapses = Synapses(tile=Tile(device=IDEAL, weight_range=MODERATE_RANGE))
    network = Network(synapses=synapses, neurons=LIF(), plasticity=None, dt=DT)
    state = start_state(network, jax.random.key(2))
    final, stats = run(network, state, input_raster(jax.random.key(3)), STEPS, key=jax.random.key(4))
    assert float(stats.output_spikes.sum()) > 0
    assert_trees_equal(final.synapses, state.synapses)


def test_learning_reproducible_for_same_key():
    network = network_on(noisy_taox(), mild_rule(MODERATE_RANGE), MODERATE_RANGE)
    state = start_state(network, jax.random.key(6))
    raster = input_raster(jax.random.key(7))

    first, first_stats = run(network, state, raster, STEPS, key=jax.random.key(8))
    second, second_stats = run(network, state, raster, STEPS, key=jax.random.key(8))
    assert_trees_equal(first, second)
    assert_trees_equal(first_stats, second_stats)
    assert float(first_stats.potentiation_pulses) > 0
    assert float(first_stats.depression_pulses) > 0

    # Pulse noise and stochastic rounding follow the key.
    other, _ = run(network, state, raster, STEPS, key=jax.random.key(9))
    assert not trees_equal(other.synapses, first.synapses)


# jit and vmap over independent networks.


def simulate_seed(network, key):
    """One independent network: its own initial weights, Poisson stream and run key."""
    key_weights, key_inputs, key_run = jax.random.split(key, 3)
    state = start_state(network, key_weights)
    # 16 spikes expected per input; 64 slots truncate a train with probability below 1e-15.
    stream = PoissonStream.sample(key_inputs, jnp.full(N_PRE, INPUT_RATE), STEPS * DT, 64)
    state, stats = run(network, state, stream, STEPS, key=key_run)
    return state.synapses.g_pos.g, stats.output_spikes, stats.input_spikes


def test_vmap_over_seeds_matches_single_runs():
    network = network_on(IDEAL, mild_rule(MODERATE_RANGE), MODERATE_RANGE)
    keys = jax.vmap(jax.random.key)(jnp.arange(3))
    batched = jax.jit(jax.vmap(lambda key: simulate_seed(network, key)))(keys)
    single_run = jax.jit(lambda key: simulate_seed(network, key))
    for index in range(3):
        single = single_run(keys[index])
        g, output_spikes, input_spikes = (np.asarray(value) for value in single)
        np.testing.assert_array_equal(np.asarray(batched[2][index]), input_spikes)
        np.testing.assert_array_equal(np.asarray(batched[1][index]), output_spikes)
        # The batched product may sum in another order, so conductances agree to float32 rounding only.
        np.testing.assert_allclose(np.asarray(batched[0][index]), g, rtol=1e-5, atol=1e-12)
    # The seeds are independent networks, not copies.
    assert not np.array_equal(np.asarray(batched[0][0]), np.asarray(batched[0][1]))
    assert float(batched[1].sum()) > 0


# Pairing protocol through run_clamped: sign of the change on real device models.

PAIRS = 10
PAIR_PERIOD = 2000  # steps, 0.2 s: a neighbouring pair adds exp(-195 ms / 20 ms) ~ 6e-5 of a window value
DELAY = 50  # steps, 5 ms
SYNAPSES_PER_SIGN = 100


def pairing_rasters():
    """One input and 2 x SYNAPSES_PER_SIGN neurons: the first half spikes DELAY steps after the input, the
    second half DELAY steps before it."""
    steps = PAIRS * PAIR_PERIOD
    pre = np.zeros((steps, 1), bool)
    post = np.zeros((steps, 2 * SYNAPSES_PER_SIGN), bool)
    for pair in range(PAIRS):
        start = pair * PAIR_PERIOD + PAIR_PERIOD // 2
        pre[start, 0] = True
        post[start + DELAY, :SYNAPSES_PER_SIGN] = True
        post[start - DELAY, SYNAPSES_PER_SIGN:] = True
    return pre, post


def clamped_network(device, rule, **options):
    synapses = Synapses(tile=Tile(device=device, weight_range=1.0), **options)
    return Network(synapses=synapses, neurons=LIF(), plasticity=rule, dt=DT)


def test_pairing_signs_on_pulsed_device():
    # A pair 5 ms apart requests 0.02 exp(-0.25) = 1.6 % of the range, 2 pulses of this device. Its pulse
    # noise, 3.7 % of the range per pulse, is five times its mean step, so the test compares means over
    # 100 synapses.
    network = clamped_network(TAOX, STDP(a_plus=0.02, a_minus=-0.021))
    state = network.init(jnp.full((1, 2 * SYNAPSES_PER_SIGN), 0.5), key=jax.random.key(10))
    pre, post = pairing_rasters()
    final, stats = run_clamped(network, state, pre, post, key=jax.random.key(11))

    change = np.asarray(final.synapses.g_pos.g - state.synapses.g_pos.g)[0] / (TAOX.g_max - TAOX.g_min)
    potentiated, depressed = change[:SYNAPSES_PER_SIGN], change[SYNAPSES_PER_SIGN:]
    # About 20 pulses per synapse give a mean change near +-0.16 of the range with a spread of about
    # 0.037 sqrt(20) = 0.17 per synapse. The standard error of each mean is then 0.017, and 5 of them 0.08.
    for values, sign in ((potentiated, 1.0), (depressed, -1.0)):
        standard_error = values.std(ddof=1) / np.sqrt(values.size)
        assert sign * values.mean() > 5 * standard_error
    assert float(stats.potentiation_pulses) > 0
    assert float(stats.depression_pulses) > 0


def pcm_network():
    return clamped_network(PCM(), STDP(a_plus=0.02, a_minus=-0.021), refresh_level=0.9)


def test_pcm_pairing_sets_device_of_each_sign():
    network = pcm_network()
    state = network.init(jnp.full((1, 2 * SYNAPSES_PER_SIGN), 0.2), key=jax.random.key(12))
    final, stats = run_clamped(network, state, *pairing_rasters(), key=jax.random.key(13))
    assert float(stats.refreshed_pairs) == 0.0
    g_max = PCM().g_max
    pos_change = np.asarray(final.synapses.g_pos.g - state.synapses.g_pos.g)[0] / g_max
    neg_change = np.asarray(final.synapses.g_neg.g - state.synapses.g_neg.g)[0] / g_max
    half = SYNAPSES_PER_SIGN

    # Potentiation SETs G+ and leaves G- alone. Depression SETs G- and leaves G+ alone, because PCM has no
    # gradual RESET. Untouched devices keep their conductance exactly.
    np.testing.assert_array_equal(neg_change[:half], 0.0)
    np.testing.assert_array_equal(pos_change[half:], 0.0)
    for values in (pos_change[:half], neg_change[half:]):
        standard_error = values.std(ddof=1) / np.sqrt(values.size)
        assert values.mean() > 5 * standard_error
    weight_change = pos_change - neg_change
    assert weight_change[:half].mean() > 0
    assert weight_change[half:].mean() < 0
    assert float(stats.potentiation_pulses) > 0
    assert float(stats.depression_pulses) > 0


def test_pcm_pairing_refreshes_full_pairs():
    network = pcm_network()
    g_max = PCM().g_max
    half = SYNAPSES_PER_SIGN
    # Every pair starts at G+ = 0.85 and G- = 0.3 of g_max. Potentiation pushes G+ past 0.9 of g_max
    # within a few pairs, and the refresh moves the weight onto G+ alone, so G- falls to about 0.
    start_pos = jnp.full((1, 2 * half), 0.85 * g_max)
    state = network.init(jnp.zeros((1, 2 * half)), key=jax.random.key(12))
    state = eqx.tree_at(
        lambda s: (s.synapses.g_pos.g, s.synapses.g_neg.g), state, (start_pos, jnp.full((1, 2 * half), 0.3 * g_max))
    )
    final, stats = run_clamped(network, state, *pairing_rasters(), key=jax.random.key(13))

    g_pos = np.asarray(final.synapses.g_pos.g)[0]
    g_neg = np.asarray(final.synapses.g_neg.g)[0]
    refreshed_potentiated = g_neg[:half] < 0.1 * g_max
    assert refreshed_potentiated.any()
    # Depression SETs G- of the other half. A pair whose G- also passed the level was refreshed onto G-
    # alone (G+ near 0); every other depressed pair kept its G+ exactly.
    untouched = g_pos[half:] == np.asarray(start_pos)[0, half:]
    refreshed_depressed = g_pos[half:] < 0.1 * g_max
    assert np.all(untouched | refreshed_depressed)
    assert untouched.sum() > half // 2
    # Each refresh of a pair counts once, so the total is at least the number of pairs seen refreshed.
    assert float(stats.refreshed_pairs) >= refreshed_potentiated.sum() + refreshed_depressed.sum()


def test_pcm_refresh_keeps_weight_within_programming_noise():
    device = PCM()
    g_max = device.g_max
    synapses = Synapses(tile=Tile(device=device, weight_range=1.0), rounding="nearest", refresh_level=0.9)
    # Three kinds of pair, 1000 of each: G+ past the level (weight +0.6), G- past it (weight -0.5), and a
    # pair below the level that must stay exactly as it is.
    pos = np.repeat([0.95, 0.42, 0.5], 1000) * g_max
    neg = np.repeat([0.35, 0.92, 0.1], 1000) * g_max
    state = synapses.init(jnp.zeros((1, pos.size)), key=jax.random.key(14))
    state = eqx.tree_at(
        lambda s: (s.g_pos.g, s.g_neg.g), state,
        (jnp.asarray(pos[None, :], jnp.float32), jnp.asarray(neg[None, :], jnp.float32)),
    )
    new, counts = synapses.update(state, jnp.zeros((1, pos.size)), key=jax.random.key(15))
    assert float(counts.refreshed) == 2000.0
    assert float(counts.potentiation) == 0.0

    new_pos, new_neg = np.asarray(new.g_pos.g)[0], np.asarray(new.g_neg.g)[0]
    np.testing.assert_array_equal(new_pos[2000:], np.float32(pos[2000:]))
    np.testing.assert_array_equal(new_neg[2000:], np.float32(neg[2000:]))

    for kind, target in ((slice(0, 1000), 0.6), (slice(1000, 2000), -0.5)):
        old_difference = (pos[kind] - neg[kind]) / g_max
        new_difference = (new_pos[kind] - new_neg[kind]) / g_max
        # The weight is programmed onto one device and the other is programmed to 0 S. Both writes add
        # programming noise, and the one at 0 S is clamped there (a half-normal, mean sigma_0 / sqrt(2 pi)).
        sigma_weight = float(device.programming_noise_std(abs(target) * g_max)) / g_max
        sigma_zero = float(device.programming_noise_std(0.0)) / g_max
        # Each pair lies within 6 sigma of each write (probability 2e-9 per draw to fail).
        assert np.max(np.abs(new_difference - old_difference)) < 6 * (sigma_weight + sigma_zero)
        # The mean shift is the clamped write at 0 S pulling the weight towards 0. The spread of each pair
        # is at most sigma_weight + sigma_zero, so 5 standard errors over 1000 pairs bound the mean.
        expected_shift = -np.sign(target) * sigma_zero / np.sqrt(2 * np.pi)
        tolerance = 5 * (sigma_weight + sigma_zero) / np.sqrt(1000)
        assert abs(np.mean(new_difference - old_difference) - expected_shift) < tolerance
        # Both devices end up below the refresh level.
        assert np.max(np.maximum(new_pos[kind], new_neg[kind])) < 0.9 * g_max


def test_pcm_refresh_once_without_pulses():
    device = PCM()
    synapses = Synapses(tile=Tile(device=device, weight_range=1.0), refresh_level=0.9)
    # 1000 pairs holding weight 0.95 on G+ alone: a refresh cannot bring G+ below 0.9 of g_max, so it
    # must not be repeated while no pulses arrive.
    state = synapses.init(jnp.zeros((1, 1000)), key=jax.random.key(24))
    state = eqx.tree_at(
        lambda s: (s.g_pos.g, s.g_neg.g), state, (jnp.full((1, 1000), 0.95 * device.g_max), jnp.zeros((1, 1000)))
    )
    update = jax.jit(synapses.update)
    refreshed = 0.0
    for step in range(20):
        state, counts = update(state, jnp.zeros((1, 1000)), key=jax.random.key(200 + step))
        refreshed += float(counts.refreshed)
    assert refreshed <= 1000


# RunStats counts.


def test_run_stats_count_spikes():
    network = network_on(IDEAL, mild_rule(MODERATE_RANGE), MODERATE_RANGE, rounding="nearest")
    state = start_state(network, jax.random.key(16))
    raster = input_raster(jax.random.key(17))
    final, stats, output = run(network, state, raster, STEPS, key=jax.random.key(18), record=True)
    assert int(stats.steps) == STEPS
    assert int(final.step) == STEPS
    np.testing.assert_array_equal(np.asarray(stats.input_spikes), np.asarray(raster).sum(axis=0))
    np.testing.assert_array_equal(np.asarray(stats.output_spikes), np.asarray(output).sum(axis=0))
    assert output.shape == (STEPS, N_POST)


def test_run_stats_pulses_match_conductance_change():
    # Pulses of 1 % of the range from 0.4 to 0.6 of the range: no device reaches a bound in 0.2 s (a
    # bound would show as a fractional pulse count), so every counted pulse moves its device by pulse_step.
    network = network_on(IDEAL, mild_rule(MODERATE_RANGE), MODERATE_RANGE, rounding="nearest")
    state = start_state(network, jax.random.key(16), low=0.4, high=0.6)
    final, stats = run(network, state, input_raster(jax.random.key(17)), STEPS, key=jax.random.key(18))
    g_start = np.asarray(state.synapses.g_pos.g, np.float64)
    g_end = np.asarray(final.synapses.g_pos.g, np.float64)
    assert g_end.min() > IDEAL.g_min
    assert g_end.max() < IDEAL.g_max
    net_pulses = (g_end - g_start) / IDEAL.pulse_step
    # float32 conductances of ~1e-5 S round each update by at most 5e-13 S, 2e-6 of a pulse.
    np.testing.assert_allclose(net_pulses, np.round(net_pulses), atol=1e-3)
    assert float(stats.potentiation_pulses) - float(stats.depression_pulses) == np.round(net_pulses).sum()
    assert float(stats.potentiation_pulses) > 0
    assert float(stats.depression_pulses) > 0


def test_clamped_stats_count_each_polarity():
    # A pair 5 ms apart requests 0.06 exp(-0.25) = 4.67 pulses of 1 % of the range, rounded to 5, and a
    # pair -5 ms apart for -0.0525 exp(-0.25) = -4.09, rounded to -4. Terms of pairs 0.2 s apart round to 0.
    network = clamped_network(IDEAL, STDP(a_plus=0.06, a_minus=-0.0525), rounding="nearest")
    pre, post = pairing_rasters()
    state = network.init(jnp.full((1, 2 * SYNAPSES_PER_SIGN), 0.5), key=jax.random.key(19))
    final, stats = run_clamped(network, state, pre, post, key=jax.random.key(20))

    change = np.asarray(final.synapses.g_pos.g - state.synapses.g_pos.g, np.float64)[0] / IDEAL.pulse_step
    np.testing.assert_allclose(change[:SYNAPSES_PER_SIGN], 5 * PAIRS, atol=1e-3)
    np.testing.assert_allclose(change[SYNAPSES_PER_SIGN:], -4 * PAIRS, atol=1e-3)
    assert float(stats.potentiation_pulses) == 5 * PAIRS * SYNAPSES_PER_SIGN
    assert float(stats.depression_pulses) == 4 * PAIRS * SYNAPSES_PER_SIGN
    # Each pair updates each synapse once.
    assert float(stats.updated_synapses) == 2 * PAIRS * SYNAPSES_PER_SIGN
    np.testing.assert_array_equal(np.asarray(stats.input_spikes), pre.sum(axis=0))
    np.testing.assert_array_equal(np.asarray(stats.output_spikes), post.sum(axis=0))
    assert int(stats.steps) == pre.shape[0]


# Stochastic rounding of pulse counts.


@pytest.mark.parametrize("requested", [2.37, -1.6, 0.05])
def test_stochastic_rounding_is_unbiased(requested):
    synapses = Synapses(tile=Tile(device=IDEAL, weight_range=1.0), rounding="stochastic")
    shape = (200, 100)
    state = synapses.init(jnp.full(shape, 0.5), key=jax.random.key(21))
    dw = jnp.full(shape, requested * float(synapses.weight_per_pulse()))
    counts = []
    for index in range(10):
        new, update = synapses.update(state, dw, key=jax.random.key(100 + index))
        pulses = np.asarray(new.g_pos.g - state.g_pos.g, np.float64) / IDEAL.pulse_step
        # The count is the floor or the ceiling of the request, and the update reports it.
        whole = np.round(pulses)
        np.testing.assert_allclose(pulses, whole, atol=1e-3)
        assert set(np.unique(whole)) <= {np.floor(requested), np.ceil(requested)}
        assert float(update.potentiation) - float(update.depression) == whole.sum()
        counts.append(whole.ravel())
    counts = np.concatenate(counts)
    fraction = requested - np.floor(requested)
    # A count is floor(r) + Bernoulli(frac(r)): the standard error of the mean of n counts is
    # sqrt(frac (1 - frac) / n), about 0.0011 for frac 0.37 and n = 2e5; 5 standard errors leave a
    # false-failure rate below 1e-6 and catch a bias of 0.01 pulse.
    standard_error = np.sqrt(fraction * (1 - fraction) / counts.size)
    assert abs(counts.mean() - requested) < 5 * standard_error


# mean_pulse_step.


def test_mean_pulse_step_ideal():
    assert float(mean_pulse_step(IdealDevice(pulse_step=0.3e-6))) == pytest.approx(0.3e-6, rel=1e-6)


def test_mean_pulse_step_pulsed_closed_form():
    device = PulsedDevice(up=SoftBoundsStep(0.02), down=SoftBoundsStep(0.03), g_min=1e-6, g_max=11e-6)
    # Soft bounds at u = 0.5: 0.02 (1 - 0.5) of the 10 uS range.
    assert float(mean_pulse_step(device)) == pytest.approx(0.1e-6, rel=1e-5)


def test_mean_pulse_step_pcm_closed_form():
    device = PCM()
    # set_step (1 + set_amplitude exp(-set_rate / 2)) g_max = 0.005 (1 + 27.235 e^-2.5) 25 uS.
    expected = 0.005 * (1 + 27.235 * np.exp(-2.5)) * 25e-6
    assert float(mean_pulse_step(device)) == pytest.approx(expected, rel=1e-5)


@pytest.mark.parametrize("device", [TAOX, PCM()], ids=["taox_hfox", "pcm"])
def test_mean_pulse_step_matches_sampled_pulses(device):
    # One potentiation pulse on 1e5 devices at the middle of the range.
    n = 100_000
    g_min, g_max = device_bounds(device)
    middle = jnp.full((n,), 0.5 * (g_min + g_max), jnp.float32)
    state = device.program(middle, key=jax.random.key(22))
    state = eqx.tree_at(lambda s: s.g, state, middle)
    after = device.apply_pulses(state, jnp.ones((n,)), key=jax.random.key(23))
    steps = np.asarray(after.g - middle, np.float64)
    # Both noise models stay several standard deviations away from the bounds at mid-range, so the
    # clipping does not shift the mean. Five standard errors of the sample mean bound the difference.
    standard_error = steps.std(ddof=1) / np.sqrt(n)
    assert abs(steps.mean() - float(mean_pulse_step(device))) < 5 * standard_error


class FrozenDevice(Device):
    """A device model unknown to `mean_pulse_step`; it ignores pulses."""

    g_min: float = 0.0
    g_max: float = 10e-6

    def _program_once(self, target, *, key):
        return DeviceState(g=target, iterations=jnp.ones(jnp.shape(target), jnp.int32))

    def drift(self, state, t):
        return state.g

    def read(self, state, t, *, key):
        return state.g

    def apply_pulses(self, state, n_pulses, *, key, max_pulses=None):
        return state


def test_mean_pulse_step_unknown_device_raises():
    with pytest.raises(ValueError, match="pulse_size"):
        mean_pulse_step(FrozenDevice())
    # An explicit pulse size replaces the nominal step: 0.1 uS of a 10 uS range is 1 % of weight_range.
    synapses = Synapses(tile=Tile(device=FrozenDevice(), weight_range=2.0), pulse_size=0.1e-6)
    assert float(synapses.weight_per_pulse()) == pytest.approx(0.02, rel=1e-6)


def test_run_metrics_rates():
    from xbar.learning import run_metrics

    network = Network(synapses=Synapses(tile=Tile(device=IdealDevice(), weight_range=0.01)), dt=1e-4)
    state = network.init(jnp.full((20, 2), 0.008), key=jax.random.key(0))
    raster = np.zeros((1000, 20), bool)
    raster[::10, :10] = True  # 10 of 20 inputs at 1 kHz for 0.1 s: the neurons fire and the weights move
    _, stats = run(network, state, raster, 1000, key=jax.random.key(1))
    metrics = run_metrics(network, stats)
    assert metrics["input_rate_hz"] == pytest.approx(500.0)
    assert metrics["input_sparsity"] == pytest.approx(0.95)
    assert metrics["output_rate_hz"] > 0
    assert metrics["pulses_per_s"] > 0
    assert 0.0 <= metrics["potentiation_share"] <= 1.0


def test_package_docstring_example_runs(capsys):
    import xbar.learning

    code = xbar.learning.__doc__.split("::", 1)[1]
    exec("\n".join(line[4:] for line in code.strip("\n").splitlines()), {})
    rate = float(capsys.readouterr().out.strip())
    # Song, Miller and Abbott's network fires at about 25 Hz over its first seconds (Brian2: 26 Hz over 100 s).
    assert 10.0 < rate < 60.0
