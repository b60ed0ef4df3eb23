"""Tests of the leaky integrate-and-fire neurons in xbar.learning.neurons."""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from scipy.integrate import solve_ivp

from xbar.learning import LIF, LIFState

DT = 1e-4  # s


def simulate(lif: LIF, increments, dt=DT, state=None):
    """Run `lif` over increments (steps, n); return the final state and the per-step v, theta and spikes."""
    increments = jnp.asarray(increments, jnp.result_type(float))
    if state is None:
        state = lif.init(increments.shape[1])

    def body(state, increment):
        state, spikes = lif.step(state, increment, dt)
        return state, (state.v, state.theta, spikes)

    final, (v, theta, spikes) = jax.jit(lambda s, x: jax.lax.scan(body, s, x))(state, increments)
    return final, np.asarray(v), np.asarray(theta), np.asarray(spikes)


def constant_drive(drive, steps):
    """Increments that set a current-based drive once; with a huge tau_syn it then stays constant."""
    increments = np.zeros((steps, len(drive)), np.float32)
    increments[0] = drive
    return increments


# Rheobase of the defaults: v_threshold - v_rest = 20 mV.
DRIVES = np.array([21e-3, 25e-3, 30e-3, 40e-3])  # V, R I


@pytest.mark.parametrize(
    ("v_reset", "refractory"),
    [(-74e-3, 0.0), (-60e-3, 0.0), (-60e-3, 2e-3), (-60e-3, 2.05e-3)],
)
def test_constant_drive_gives_analytic_rate(v_reset, refractory):
    # tau_syn of 1e6 s keeps the drive constant to 1e-6 relative over the run.
    lif = LIF(synapse="current", tau_syn=1e6, v_reset=v_reset, refractory=refractory)
    steps = 10_000
    _, _, _, spikes = simulate(lif, constant_drive(DRIVES, steps))

    v_rest, v_threshold, tau_m = lif.v_rest, lif.v_threshold, lif.tau_m
    first_expected = tau_m * np.log(DRIVES / (DRIVES - (v_threshold - v_rest)))
    period_expected = refractory + tau_m * np.log((v_rest + DRIVES - v_reset) / (v_rest + DRIVES - v_threshold))
    slack = 1e-3 * DT  # float32 rounding of v near the threshold, far below one step
    for neuron in range(len(DRIVES)):
        # The spike of step i is detected at the end of that step, t = (i + 1) dt: up to one step late.
        spike_times = (np.flatnonzero(spikes[:, neuron]) + 1) * DT
        assert len(spike_times) >= 3, f"drive {DRIVES[neuron]} V fired only {len(spike_times)} times"
        assert first_expected[neuron] - slack <= spike_times[0] <= first_expected[neuron] + DT + slack
        intervals = np.diff(spike_times)
        assert intervals.min() >= period_expected[neuron] - slack
        assert intervals.max() <= period_expected[neuron] + DT + slack
        rate = 1.0 / intervals.mean()
        assert 1.0 / (period_expected[neuron] + DT) <= rate <= 1.0 / period_expected[neuron] * (1 + 1e-5)


def test_rate_formula_with_reset_at_rest():
    # The textbook rate 1 / (t_ref + tau_m ln(R I / (R I - (v_th - E_L)))) for v_reset = E_L.
    refractory = 1e-3
    lif = LIF(synapse="current", tau_syn=1e6, v_reset=-74e-3, refractory=refractory)
    steps = 20_000
    _, _, _, spikes = simulate(lif, constant_drive(DRIVES, steps))
    expected = 1.0 / (refractory + lif.tau_m * np.log(DRIVES / (DRIVES - (lif.v_threshold - lif.v_rest))))
    for neuron in range(len(DRIVES)):
        intervals = np.diff(np.flatnonzero(spikes[:, neuron])) * DT
        rate = 1.0 / intervals.mean()
        # One step of lateness per interval bounds the rate error.
        assert 1.0 / (1.0 / expected[neuron] + DT) - 1e-3 <= rate <= expected[neuron] + 1e-3


def test_subthreshold_drive_never_fires():
    lif = LIF(synapse="current", tau_syn=1e6)
    drive = 19.9e-3  # 0.1 mV below the rheobase
    _, v, _, spikes = simulate(lif, constant_drive([drive], 20_000))
    assert not spikes.any()
    assert v.max() < lif.v_threshold
    assert v[-1, 0] == pytest.approx(lif.v_rest + drive, abs=1e-6)


def test_refractory_period_holds_reset():
    refractory = 2e-3  # 20 steps
    lif = LIF(synapse="current", tau_syn=1e6, refractory=refractory)
    _, v, _, spikes = simulate(lif, constant_drive([40e-3], 5_000))
    spike_steps = np.flatnonzero(spikes[:, 0])
    assert len(spike_steps) >= 5
    held = round(refractory / DT) - 1  # steps that lie entirely inside the refractory period
    for step in spike_steps[:-1]:
        np.testing.assert_array_equal(v[step + 1 : step + 1 + held, 0], np.float32(lif.v_reset))
    assert np.diff(spike_steps).min() * DT > refractory


def test_adaptive_threshold_rises_and_decays():
    theta_plus, tau_theta = 2e-3, 50e-3
    lif = LIF(synapse="current", tau_syn=1e6, theta_plus=theta_plus, tau_theta=tau_theta)
    _, _, theta, spikes = simulate(lif, constant_drive([40e-3], 5_000))
    spike_steps = np.flatnonzero(spikes[:, 0])
    first, second = spike_steps[0], spike_steps[1]

    assert (theta[:first, 0] == 0).all()
    assert theta[first, 0] == pytest.approx(theta_plus, rel=1e-6)
    ages = np.arange(1, second - first) * DT
    np.testing.assert_allclose(theta[first + 1 : second, 0], theta_plus * np.exp(-ages / tau_theta), rtol=1e-5)

    # Each spike raises the threshold, so the intervals lengthen beyond those of a non-adapting neuron.
    _, _, _, plain = simulate(LIF(synapse="current", tau_syn=1e6), constant_drive([40e-3], 5_000))
    assert spikes.sum() < plain.sum()
    intervals = np.diff(spike_steps)
    assert intervals[-1] > intervals[0]


def test_lateral_inhibition_lowers_other_neurons():
    drive = np.array([30e-3, 10e-3])  # neuron 0 fires, neuron 1 never reaches the threshold
    inhibition = 1e-3
    base = LIF(synapse="current", tau_syn=1e6)
    _, v_free, _, spikes_free = simulate(base, constant_drive(drive, 3_000))
    _, v_inhibited, _, spikes = simulate(eqx.tree_at(lambda m: m.inhibition, base, inhibition), constant_drive(drive, 3_000))

    first = np.flatnonzero(spikes[:, 0])[0]
    assert first == np.flatnonzero(spikes_free[:, 0])[0]
    assert not spikes[:, 1].any()
    np.testing.assert_array_equal(v_inhibited[:first], v_free[:first])
    assert v_inhibited[first, 1] == pytest.approx(v_free[first, 1] - inhibition, abs=1e-7)
    assert v_inhibited[first, 0] == v_free[first, 0] == np.float32(base.v_reset)
    assert (v_inhibited[first:, 1] < v_free[first:, 1]).all()


def test_winner_take_all_one_spike_per_step():
    # Equal drive makes all ten neurons cross the threshold in the same step.
    drive = np.full(10, 30e-3)
    base = LIF(synapse="current", tau_syn=1e6)
    _, _, _, spikes_free = simulate(base, constant_drive(drive, 2_000))
    wta = LIF(synapse="current", tau_syn=1e6, winner_take_all=True)
    _, _, _, spikes = simulate(wta, constant_drive(drive, 2_000))
    assert spikes_free.sum(axis=1).max() == 10
    assert spikes.sum(axis=1).max() == 1
    assert spikes.sum() > 10


def test_winner_take_all_picks_largest_margin():
    lif = LIF(synapse="current", winner_take_all=True, inhibition=0.5e-3)
    above = lif.v_threshold + np.array([1e-3, 3e-3, 2e-3, -1e-3])
    zeros = jnp.zeros(4)
    state = LIFState(v=jnp.asarray(above, jnp.float32), syn=zeros, refractory_left=zeros, theta=zeros)
    new, spikes = lif.step(state, zeros, 1e-7)
    np.testing.assert_array_equal(spikes, [False, True, False, False])
    assert new.v[1] == np.float32(lif.v_reset)
    # The losers keep their potential, lowered only by the winner's inhibition.
    losers = np.array([0, 2, 3])
    np.testing.assert_allclose(np.asarray(new.v)[losers], above[losers] - 0.5e-3, atol=1e-6)


@pytest.mark.parametrize("tau_syn", [5e-3, 10e-3, 1e-5])
def test_current_psp_matches_closed_form(tau_syn):
    weight, steps = 5e-3, 500
    increments = np.zeros((steps, 1))
    increments[0] = weight
    t = np.arange(1, steps + 1) * DT
    lif = LIF(synapse="current", tau_syn=tau_syn, v_threshold=0.0)
    if tau_syn == lif.tau_m:
        expected = weight * (t / lif.tau_m) * np.exp(-t / lif.tau_m)
    else:
        expected = weight * tau_syn / (tau_syn - lif.tau_m) * (np.exp(-t / tau_syn) - np.exp(-t / lif.tau_m))

    # The update is the exact solution, so in float64 only rounding remains.
    with jax.enable_x64(True):
        _, v, _, _ = simulate(lif, increments)
    np.testing.assert_allclose(v[:, 0] - lif.v_rest, expected, atol=1e-12)

    # float32 v near -74 mV has a 7.5 nV spacing; 500 steps of rounding stay below 1 uV.
    _, v, _, _ = simulate(lif, increments)
    np.testing.assert_allclose(v[:, 0] - lif.v_rest, expected, atol=1e-6)


def test_conductance_psp_converges():
    weight, duration = 0.3, 30e-3
    lif = LIF(v_threshold=0.05)  # never fires

    def rhs(t, v):
        g = weight * np.exp(-t / lif.tau_syn)
        return ((lif.v_rest - v) + g * (lif.e_syn - v)) / lif.tau_m

    errors = []
    for dt in (2e-4, 1e-4, 5e-5):
        steps = round(duration / dt)
        increments = np.zeros((steps, 1), np.float64)
        increments[0] = weight
        # float64, so that the float32 spacing of v (7.5 nV) does not hide the error at the finest step.
        with jax.enable_x64(True):
            _, v, _, _ = simulate(lif, increments, dt=dt)
        t = np.arange(1, steps + 1) * dt
        reference = solve_ivp(rhs, (0, t[-1]), [lif.v_rest], t_eval=t, rtol=1e-10, atol=1e-13).y[0]
        errors.append(np.abs(v[:, 0] - reference).max())
    assert errors[1] < 1e-5  # V at dt = 0.1 ms, under 0.2 % of the 5.3 mV peak
    # Exponential Euler with the conductance frozen at its mean over the step is at least first order:
    # halving dt divides the error by 2 or more (measured: about 3.5).
    for coarse, fine in zip(errors, errors[1:]):
        assert coarse / fine > 1.6


@settings(deadline=None, max_examples=30)
@given(
    increments=arrays(np.float32, (40, 3), elements=st.floats(0, 200, width=32)),
    dt=st.floats(1e-5, 5e-3),
)
def test_conductance_v_stays_below_reversal(increments, dt):
    lif = LIF(v_threshold=0.02, e_syn=0.0)  # threshold above e_syn, so v can only approach e_syn
    _, v, _, _ = simulate(lif, increments, dt=dt)
    assert (v <= lif.e_syn).all()


def test_conductance_strong_input_approaches_reversal():
    lif = LIF(v_threshold=0.02, e_syn=0.0)
    _, v, _, spikes = simulate(lif, np.full((200, 1), 50.0, np.float32))
    assert not spikes.any()
    assert -2e-3 < v.max() <= lif.e_syn


def test_default_conductance_neuron_fires_with_input():
    _, _, _, spikes = simulate(LIF(), np.full((2_000, 1), 0.05, np.float32))
    assert spikes.sum() > 3


def test_step_deterministic(key):
    lif = LIF(theta_plus=1e-3, refractory=1e-3, inhibition=1e-3)
    increments = jax.random.uniform(key, (1_000, 8), maxval=0.3)
    first = simulate(lif, increments)
    second = simulate(lif, increments)
    for a, b in zip(first[1:], second[1:]):
        np.testing.assert_array_equal(a, b)
    assert first[3].any()


def test_step_jit_matches_eager(key):
    lif = LIF(refractory=1e-3, theta_plus=1e-3)
    state = lif.init(6)
    increments = jax.random.uniform(key, (50, 6), maxval=0.5)
    jitted = jax.jit(lif.step)
    eager_state, jit_state = state, state
    for increment in increments:
        eager_state, eager_spikes = lif.step(eager_state, increment, DT)
        jit_state, jit_spikes = jitted(jit_state, increment, DT)
        np.testing.assert_array_equal(eager_spikes, jit_spikes)
    np.testing.assert_allclose(eager_state.v, jit_state.v, atol=1e-7)


def test_step_vmap_over_populations(key):
    lif = LIF(refractory=1e-3, inhibition=0.5e-3)
    batch, n, steps = 4, 5, 300
    increments = jax.random.uniform(key, (batch, steps, n), maxval=0.3)
    states = jax.vmap(lambda _: lif.init(n))(jnp.arange(batch))

    def run(state, increments):
        def body(state, increment):
            state, spikes = lif.step(state, increment, DT)
            return state, spikes

        return jax.lax.scan(body, state, increments)

    batched_final, batched_spikes = jax.jit(jax.vmap(run))(states, increments)
    for b in range(batch):
        final, spikes = run(lif.init(n), increments[b])
        np.testing.assert_array_equal(batched_spikes[b], spikes)
        np.testing.assert_allclose(batched_final.v[b], final.v, atol=1e-7)


def test_step_vmap_over_parameters():
    thresholds = jnp.array([-54e-3, -50e-3, -45e-3])
    models = LIF(synapse="current", tau_syn=1e6, v_threshold=thresholds)
    increments = constant_drive([30e-3], 2_000)

    def count(model):
        _, spikes = jax.lax.scan(lambda s, x: model.step(s, x, DT), model.init(1), jnp.asarray(increments))
        return spikes.sum()

    counts = eqx.filter_vmap(count, in_axes=eqx.if_array(0))(models)
    for i, threshold in enumerate(thresholds):
        single = LIF(synapse="current", tau_syn=1e6, v_threshold=float(threshold))
        assert counts[i] == count(single)
    assert counts[0] > counts[1] > counts[2]


def test_init_state():
    lif = LIF()
    state = lif.init(3)
    np.testing.assert_array_equal(state.v, np.full(3, np.float32(lif.v_rest)))
    for field in (state.syn, state.refractory_left, state.theta):
        np.testing.assert_array_equal(field, np.zeros(3))
    assert state.v.dtype == jnp.float32


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"synapse": "alpha"}, "synapse must be one of"),
        ({"tau_m": 0.0}, "tau_m must be finite and > 0"),
        ({"tau_syn": -1e-3}, "tau_syn must be finite and > 0"),
        ({"refractory": -1e-3}, "refractory must be finite and >= 0"),
        ({"inhibition": -1e-3}, "inhibition must be finite and >= 0"),
        ({"v_reset": -50e-3}, "v_reset .* must be below v_threshold"),
        ({"v_rest": float("nan")}, "v_rest contains non-finite"),
        ({"winner_take_all": "yes"}, "winner_take_all must be True or False"),
    ],
)
def test_lif_rejects_invalid_parameters(kwargs, match):
    with pytest.raises(ValueError, match=match):
        LIF(**kwargs)


def test_step_rejects_invalid_inputs():
    lif = LIF()
    state = lif.init(3)
    with pytest.raises(ValueError, match="synaptic_increment has shape"):
        lif.step(state, jnp.zeros(4), DT)
    with pytest.raises(ValueError, match="dt must be finite and > 0"):
        lif.step(state, jnp.zeros(3), 0.0)
    with pytest.raises(ValueError, match="increments >= 0"):
        lif.step(state, jnp.array([0.1, -0.1, 0.0]), DT)
    with pytest.raises(ValueError, match="non-finite"):
        lif.step(state, jnp.array([0.1, jnp.nan, 0.0]), DT)
    with pytest.raises(ValueError, match="integer >= 1"):
        lif.init(0)
    # Current-based synapses take signed drive.
    LIF(synapse="current").step(state, jnp.array([0.1, -0.1, 0.0]), DT)


def test_euler_method_is_one_forward_euler_step():
    """method="euler": v += dt/tau_m ((v_rest - v) + syn (e_syn - v)) with syn at the start, syn *= 1 - dt/tau_syn."""
    neuron = LIF(method="euler")
    state = neuron.init(1)
    dt = 1e-4
    state, _ = neuron.step(state, jnp.array([0.5]), dt)
    v0, syn0 = neuron.v_rest, 0.5
    expected_v = v0 + dt / neuron.tau_m * ((neuron.v_rest - v0) + syn0 * (neuron.e_syn - v0))
    np.testing.assert_allclose(float(state.v[0]), expected_v, rtol=1e-6)
    np.testing.assert_allclose(float(state.syn[0]), syn0 * (1 - dt / neuron.tau_syn), rtol=1e-6)
    with pytest.raises(ValueError, match="method"):
        LIF(method="rk4")
