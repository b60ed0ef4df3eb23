"""Event-driven simulation: `SpikeEvents` input, row-wise tile reads, and agreement with the dense path."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from xbar.crossbar import ADC, Tile, put_devices, take_devices
from xbar.devices import PCM, IdealDevice
from xbar.learning import LIF, STDP, Network, SpikeEvents, Synapses, poisson_spike_times, run
from xbar.variability import Normal, sample_parameters

DT = 1e-3


def _network(pairing="all-to-all", n_post=6, device=None, rounding="none", **tile_options):
    device = device or IdealDevice(g_min=0.0, g_max=25e-6, pulse_step=25e-9)
    tile = Tile(device=device, weight_range=1.0, **tile_options)
    # Current-based neurons with a strong drive spike often, so pre and post spikes meet in many steps.
    neurons = LIF(synapse="current", tau_m=5e-3, v_rest=0.0, v_reset=0.0, v_threshold=0.02, tau_syn=2e-3,
                  refractory=0.0)
    rule = STDP(a_plus=0.01, a_minus=-0.011, tau_plus=10e-3, tau_minus=12e-3, pairing=pairing)
    return Network(synapses=Synapses(tile=tile, rounding=rounding, max_pulses=1000), neurons=neurons,
                   plasticity=rule, dt=DT)


def _events(key, n_pre=12, steps=400, rate=150.0):
    return SpikeEvents.poisson(key, jnp.full(n_pre, rate), steps * DT)


def _start(network, key, n_pre=12, n_post=6):
    weights = jax.random.uniform(key, (n_pre, n_post), minval=0.2, maxval=0.8)
    return network.init(weights, key=key)


def test_poisson_events_have_the_rates_in_time_order():
    rates = jnp.array([5.0, 20.0, 50.0, 100.0])
    duration = 200.0
    events = SpikeEvents.poisson(jax.random.key(0), rates, duration)
    times, inputs = np.asarray(events.times), np.asarray(events.inputs)
    finite = np.isfinite(times)
    assert np.all(np.diff(times[finite]) >= 0)
    assert np.all(times[finite] < duration)
    counts = np.bincount(inputs[finite], minlength=4)
    expected = np.asarray(rates) * duration
    # Poisson counts: standard deviation sqrt(expected); 5 of them bound a false failure below 1e-6.
    assert np.all(np.abs(counts - expected) < 5.0 * np.sqrt(expected))


def test_events_from_times_give_the_same_raster():
    times = poisson_spike_times(jax.random.key(1), jnp.full(7, 80.0), 0.5, 100)
    events = SpikeEvents.from_times(times)
    from xbar.learning import spikes_from_times

    np.testing.assert_array_equal(events.raster(DT, 500), spikes_from_times(times, DT, 500))


def test_events_from_raster_round_trip():
    raster = np.asarray(jax.random.bernoulli(jax.random.key(2), 0.1, (50, 9)))
    events = SpikeEvents.from_raster(raster, DT)
    np.testing.assert_array_equal(events.raster(DT, 50), raster)


@pytest.mark.parametrize(
    ("times", "inputs", "message"),
    [
        ([0.2, 0.1], [0, 1], "sorted"),
        ([0.1, -1.0], [0, 1], ">= 0"),
        ([0.1, 0.2], [0, 5], r"\[0, 3\)"),
        ([0.1, 0.2], [0.0, 1.0], "integer"),
    ],
)
def test_invalid_events_raise(times, inputs, message):
    with pytest.raises(ValueError, match=message):
        SpikeEvents(times=jnp.asarray(times), inputs=jnp.asarray(inputs), n_inputs=3)


@pytest.mark.parametrize("pairing", ["all-to-all", "nearest"])
@pytest.mark.parametrize(("slots", "n_post"), [(1, 6), (3, 6), (None, 6), (3, 3)])
def test_event_path_matches_dense_path(pairing, slots, n_post):
    """Same weights, traces, spikes and counts as the dense path, for any number of event slots.

    With 6 neurons the columns of a step are updated a few at a time in a loop; with 3, all in one round.
    """
    network = _network(pairing, n_post=n_post)
    key = jax.random.key(3)
    state = _start(network, key, n_post=n_post)
    events = _events(jax.random.key(4))
    raster = events.raster(DT, 400)
    dense_state, dense_stats, dense_out = run(network, state, raster, 400, key=key, record=True)
    event_state, event_stats, event_out = run(network, state, events, 400, key=key, record=True, event_slots=slots)

    assert int(np.sum(dense_out)) > 50  # the test needs many post spikes, several in one step
    assert int(np.max(np.sum(dense_out, axis=1))) > 1
    np.testing.assert_array_equal(event_out, dense_out)
    np.testing.assert_allclose(event_state.synapses.g_pos.g, dense_state.synapses.g_pos.g, rtol=1e-5, atol=1e-12)
    np.testing.assert_allclose(event_state.traces.pre, dense_state.traces.pre, rtol=1e-4, atol=1e-9)
    np.testing.assert_allclose(event_state.traces.post, dense_state.traces.post, rtol=1e-4, atol=1e-9)
    np.testing.assert_allclose(event_state.neurons.v, dense_state.neurons.v, rtol=1e-5, atol=1e-8)
    np.testing.assert_array_equal(event_stats.input_spikes, dense_stats.input_spikes)
    np.testing.assert_array_equal(event_stats.output_spikes, dense_stats.output_spikes)
    assert float(event_stats.updated_synapses) == float(dense_stats.updated_synapses)
    np.testing.assert_allclose(float(event_stats.potentiation_pulses), float(dense_stats.potentiation_pulses), rtol=1e-4)
    np.testing.assert_allclose(float(event_stats.depression_pulses), float(dense_stats.depression_pulses), rtol=1e-4)


def test_repeated_events_in_one_step_count_once():
    network = _network()
    state = _start(network, jax.random.key(5))
    # Input 2 spikes twice in step 3 (two events 0.1 ms apart), and input 4 once.
    events = SpikeEvents(times=jnp.array([3e-3, 3.1e-3, 3.2e-3, jnp.inf]), inputs=jnp.array([2, 2, 4, 0]), n_inputs=12)
    raster = events.raster(DT, 10)
    assert int(raster.sum()) == 2
    for slots in (1, 2, 4):
        _, stats = run(network, state, events, 10, key=jax.random.key(6), event_slots=slots)
        assert float(stats.input_spikes[2]) == 1.0
        assert float(jnp.sum(stats.input_spikes)) == 2.0


@pytest.mark.parametrize("n_post", [1, 6])
def test_event_path_under_vmap_matches_single_runs(n_post):
    """The batched column update (only networks with a post spike are touched) equals one run per network."""
    network = _network(n_post=n_post)
    keys = jax.random.split(jax.random.key(7), 3)
    streams = [_events(jax.random.fold_in(k, 1)) for k in keys]
    states = [_start(network, k, n_post=n_post) for k in keys]
    singles = [run(network, s, e, 400, key=k)[0].synapses.g_pos.g for s, e, k in zip(states, streams, keys)]

    stack = lambda *trees: jax.tree_util.tree_map(lambda *leaves: jnp.stack(leaves), *trees)  # noqa: E731
    batched = jax.vmap(lambda s, e, k: run(network, s, e, 400, key=k, event_slots=4)[0].synapses.g_pos.g)(
        stack(*states), stack(*streams), keys
    )
    for index, single in enumerate(singles):
        np.testing.assert_allclose(batched[index], single, rtol=1e-6, atol=1e-12)


def test_event_path_with_per_device_parameters_and_pcm():
    """Per-device parameters are taken row by row; PCM pairs stay inside the device range."""
    device = sample_parameters(PCM(), (12, 6), jax.random.key(8), {"g_max": Normal(0.1)})
    network = _network(device=device, rounding="stochastic")
    state = _start(network, jax.random.key(9))
    state, stats = run(network, state, _events(jax.random.key(10)), 400, key=jax.random.key(11))
    for g in (state.synapses.g_pos.g, state.synapses.g_neg.g):
        assert bool(jnp.all(g >= 0.0))
        assert bool(jnp.all(g <= device.g_max * (1 + 1e-5)))
    assert float(stats.potentiation_pulses) > 0
    assert float(stats.depression_pulses) > 0


def test_drift_compensated_tile_uses_dense_path():
    network = _network(drift_compensation=True)
    state = _start(network, jax.random.key(12))
    events = _events(jax.random.key(13))
    by_events = run(network, state, events, 400, key=jax.random.key(14))[0]
    by_raster = run(network, state, events.raster(DT, 400), 400, key=jax.random.key(14))[0]
    np.testing.assert_array_equal(by_events.synapses.g_pos.g, by_raster.synapses.g_pos.g)


def test_row_currents_equal_matmul():
    device = sample_parameters(IdealDevice(), (10, 4), jax.random.key(15), {"g_max": Normal(0.1)})
    tile = Tile(device=device, weight_range=1.0, adc=ADC(bits=8, current_range=20e-6))
    state = tile.program(jax.random.uniform(jax.random.key(16), (10, 4), minval=-1.0, maxval=1.0), key=jax.random.key(17))
    rows = jnp.array([1, 4, 7, 0])
    valid = jnp.array([True, True, True, False])
    x = jnp.zeros(10).at[jnp.array([1, 4, 7])].set(1.0)
    expected = tile.matmul(tile.read(state, 0.0, key=jax.random.key(0)), x)
    current, square = tile.row_currents(state, 0.0, rows, valid, key=jax.random.key(0))
    assert square is None
    np.testing.assert_allclose(tile.finish_rows(state, current, square), expected, rtol=1e-6)


def test_take_and_put_devices_round_trip():
    device = sample_parameters(IdealDevice(), (5, 3), jax.random.key(18), {"g_max": Normal(0.1)})
    part = take_devices(device, jnp.array([2, 0]), (5, 3), axis=1)
    assert part.g_max.shape == (5, 2)
    np.testing.assert_array_equal(part.g_max[:, 0], device.g_max[:, 2])
    changed = jax.tree_util.tree_map(lambda leaf: leaf * 2 if hasattr(leaf, "ndim") and leaf.ndim == 2 else leaf, part)
    back = put_devices(device, changed, jnp.array([2, 0]), jnp.array([True, False]), (5, 3), axis=1)
    np.testing.assert_array_equal(back.g_max[:, 2], 2 * device.g_max[:, 2])
    np.testing.assert_array_equal(back.g_max[:, 0], device.g_max[:, 0])


def test_event_inputs_must_match_the_network():
    network = _network()
    state = _start(network, jax.random.key(19))
    with pytest.raises(ValueError, match="12"):
        run(network, state, SpikeEvents.poisson(jax.random.key(0), jnp.full(5, 10.0), 0.1), 10, key=jax.random.key(0))
    with pytest.raises(ValueError, match="event_slots"):
        run(network, state, _events(jax.random.key(0)), 10, key=jax.random.key(0), event_slots=0)


def test_programming_energy_of_a_pair_by_hand():
    """One pre-then-post pair on an ideal device: E = n V^2 G tau for the potentiating pulses."""
    from xbar.learning import run_clamped, run_metrics

    network = _network(n_post=1)
    state = network.init(jnp.full((1, 1), 0.5), key=jax.random.key(0))
    pre = np.zeros((20, 1), bool)
    post = np.zeros((20, 1), bool)
    pre[5, 0], post[8, 0] = True, True
    end, stats = run_clamped(network, state, pre, post, key=jax.random.key(1))
    device = network.synapses.tile.device
    pulses = float(stats.potentiation_pulses)
    assert pulses > 0
    assert float(stats.depression_pulses) == 0.0
    g_before = 0.5 * device.g_max
    pulse = device.potentiation_pulse
    expected = pulses * pulse.voltage**2 * g_before * pulse.width
    np.testing.assert_allclose(float(stats.programming_energy), expected, rtol=1e-5)
    metrics = run_metrics(network, stats)
    np.testing.assert_allclose(metrics["energy_per_pulse_j"], expected / pulses, rtol=1e-5)
    assert metrics["worn_fraction"] == 0.0
    assert metrics["stuck_fraction"] == 0.0


def test_event_and_dense_paths_charge_the_same_energy():
    network = _network()
    state = _start(network, jax.random.key(20))
    events = _events(jax.random.key(21))
    _, dense = run(network, state, events.raster(DT, 400), 400, key=jax.random.key(22))
    _, by_events = run(network, state, events, 400, key=jax.random.key(22))
    assert float(dense.programming_energy) > 0
    np.testing.assert_allclose(float(by_events.programming_energy), float(dense.programming_energy), rtol=1e-4)


def test_worn_and_stuck_devices_are_reported():
    """Devices past their failure cycle count are stuck; the metrics report their share of the tile."""
    from xbar.devices import Endurance
    from xbar.learning import run_metrics

    # Every device starts beyond its median life (failure scale 10 cycles), so all are stuck after the run.
    device = Endurance(IdealDevice(g_min=0.0, g_max=25e-6, pulse_step=25e-9), onset_cycles=1.0,
                       failure_scale=10.0, initial_cycles=1e3)
    network = _network(device=device)
    state = _start(network, jax.random.key(23))
    _, stats = run(network, state, _events(jax.random.key(24)), 50, key=jax.random.key(25))
    metrics = run_metrics(network, stats)
    assert metrics["stuck_fraction"] == 1.0
    assert metrics["worn_fraction"] == 1.0
    fresh = _network()
    _, stats = run(fresh, _start(fresh, jax.random.key(23)), _events(jax.random.key(24)), 50, key=jax.random.key(25))
    assert run_metrics(fresh, stats)["stuck_fraction"] == 0.0


def _waveform_network():
    from xbar.devices import CompactDevice
    from xbar.learning import ThresholdMemristor, WaveformSTDP

    # A 10 us pulse of 1.6 V moves the state by about 0.1 % of its range (rate i0 (exp(8) - exp(5.5))).
    device = CompactDevice(ThresholdMemristor(), set_voltage=1.6, reset_voltage=-1.6, pulse_width=10e-6)
    tile = Tile(device=device, weight_range=1.0)
    return Network(synapses=Synapses(tile=tile), plasticity=WaveformSTDP(), dt=1e-4)


def test_waveform_rule_in_a_network_equals_pair_update():
    from xbar.learning import pair_update, run_clamped, run_metrics

    network = _waveform_network()
    state = network.init(jnp.full((1, 2), 0.5), key=jax.random.key(0))
    x0 = state.synapses.g_pos.x
    pre = np.zeros((400, 1), bool)
    post = np.zeros((400, 2), bool)
    pre[100, 0] = True
    post[150, 0] = True  # 5 ms after the input: potentiation
    post[50, 1] = True  # 5 ms before the input: depression
    end, stats = run_clamped(network, state, pre, post, key=jax.random.key(1))
    rule, model = network.plasticity, network.synapses.tile.device.model
    expected = [pair_update(rule.waveform, model, x0[0, 0], 5e-3, steps_per_overlap=rule.steps_per_overlap),
                pair_update(rule.waveform, model, x0[0, 1], -5e-3, steps_per_overlap=rule.steps_per_overlap)]
    np.testing.assert_allclose(end.synapses.g_pos.x[0], np.asarray(expected), rtol=1e-5)
    assert float(end.synapses.g_pos.x[0, 0]) > float(x0[0, 0])
    assert float(end.synapses.g_pos.x[0, 1]) < float(x0[0, 1])
    assert float(stats.potentiation_pulses) == 1.0
    assert float(stats.depression_pulses) == 1.0
    assert "programming_energy_j" not in run_metrics(network, stats)


def test_waveform_rule_runs_with_neurons_and_event_input():
    network = _waveform_network()
    state = network.init(jnp.full((20, 2), 0.5), key=jax.random.key(2))
    events = SpikeEvents.poisson(jax.random.key(3), jnp.full(20, 20.0), 0.05)
    by_events = run(network, state, events, 500, key=jax.random.key(4))[0]
    by_raster = run(network, state, events.raster(1e-4, 500), 500, key=jax.random.key(4))[0]
    np.testing.assert_array_equal(by_events.synapses.g_pos.x, by_raster.synapses.g_pos.x)


def test_waveform_rule_needs_a_threshold_memristor():
    from xbar.learning import WaveformSTDP

    with pytest.raises(ValueError, match="ThresholdMemristor"):
        Network(synapses=Synapses(tile=Tile(weight_range=1.0)), plasticity=WaveformSTDP())


def test_poisson_events_of_one_shared_rate():
    events = SpikeEvents.poisson(jax.random.key(26), 40.0, 100.0, n_inputs=5)
    inputs = np.asarray(events.inputs)[np.isfinite(np.asarray(events.times))]
    counts = np.bincount(inputs, minlength=5)
    # Poisson counts of mean 4000: 5 standard deviations bound a false failure below 1e-6.
    assert np.all(np.abs(counts - 4000.0) < 5.0 * np.sqrt(4000.0))
    with pytest.raises(ValueError, match="one rate"):
        SpikeEvents.poisson(jax.random.key(0), jnp.ones(3), 1.0, n_inputs=3)


def test_run_metrics_of_a_batch():
    from xbar.learning import run_metrics

    network = _network()
    keys = jax.random.split(jax.random.key(27), 2)
    states = jax.vmap(lambda k: _start(network, k))(keys)
    events = jax.vmap(lambda k: SpikeEvents.poisson(k, 150.0, 0.1, 200, n_inputs=12))(keys)
    _, stats = jax.vmap(lambda s, e, k: run(network, s, e, 100, key=k, event_slots=4))(states, events, keys)
    metrics = run_metrics(network, stats)
    assert metrics["output_rate_hz"].shape == (2,)
    first = run_metrics(network, jax.tree_util.tree_map(lambda leaf: leaf[0], stats))
    np.testing.assert_allclose(metrics["pulses_per_s"][0], first["pulses_per_s"], rtol=1e-6)
