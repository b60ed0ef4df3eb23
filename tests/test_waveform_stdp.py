"""Tests of the STDP window that emerges from overlapping spike waveforms on a threshold memristor, and of
the step-by-step rule `WaveformSTDP` that applies it to the pairs of a spiking network.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from xbar.devices.compact import integrate
from xbar.learning import WaveformSTDP, WaveformSTDPState
from xbar.learning.waveform import SpikeWaveform, ThresholdMemristor, overlap_window, pair_update

WAVEFORM = SpikeWaveform()
DEVICE = ThresholdMemristor()
DURATION = WAVEFORM.duration  # 51 ms
MS = 1e-3

# One grid of delays for the shape tests, so the window compiles once: 0.25 ms spacing up to 60 ms.
GRID = np.arange(0.25, 60.0 + 1e-9, 0.25) * MS


def window(delays, waveform=WAVEFORM, device=DEVICE, **kwargs):
    return np.asarray(overlap_window(waveform, device, np.asarray(delays), **kwargs))


# Spike waveform.


def test_waveform_pieces():
    t_plus, a_plus, a_minus = WAVEFORM.t_plus, WAVEFORM.a_plus, WAVEFORM.a_minus
    assert DURATION == pytest.approx(51e-3)
    assert float(WAVEFORM.voltage(0.0)) == pytest.approx(0.0, abs=1e-7)
    assert float(WAVEFORM.voltage(t_plus * (1 - 1e-6))) == pytest.approx(a_plus, rel=1e-4)
    assert float(WAVEFORM.voltage(t_plus)) == pytest.approx(-a_minus, rel=1e-6)
    assert float(WAVEFORM.voltage(DURATION)) == pytest.approx(0.0, abs=1e-7)


def test_waveform_zero_outside_spike():
    outside = np.array([-1.0, -1e-6, DURATION + 1e-6, 1.0])
    np.testing.assert_array_equal(np.asarray(WAVEFORM.voltage(outside)), 0.0)


def test_waveform_pulse_rises_and_tail_decays():
    pulse = np.asarray(WAVEFORM.voltage(np.linspace(0.0, 0.999, 50) * WAVEFORM.t_plus))
    tail = np.asarray(WAVEFORM.voltage(np.linspace(WAVEFORM.t_plus, DURATION, 200)))
    assert np.all(pulse >= 0)
    assert np.all(np.diff(pulse) > 0)
    assert np.all(tail <= 0)
    assert np.all(np.diff(tail) > 0)  # the negative tail relaxes towards 0


# Threshold memristor.


def test_device_rate_zero_up_to_threshold():
    voltages = np.array([-DEVICE.v_th, -0.5, 0.0, 0.5, DEVICE.v_th])
    np.testing.assert_array_equal(np.asarray(DEVICE.rate(0.5, voltages)), 0.0)


def test_device_rate_odd_and_continuous():
    v = np.array([1.2, 1.4, 1.6])
    up, down = np.asarray(DEVICE.rate(0.5, v)), np.asarray(DEVICE.rate(0.5, -v))
    np.testing.assert_allclose(down, -up)
    expected = DEVICE.i0 * (np.exp(v / DEVICE.v0) - np.exp(DEVICE.v_th / DEVICE.v0))
    np.testing.assert_allclose(up, expected, rtol=1e-5)
    # Just above the threshold the rate is close to 0: no jump at v_th.
    assert 0 < float(DEVICE.rate(0.5, DEVICE.v_th + 1e-4)) < 1e-3 * float(DEVICE.rate(0.5, 1.2))


def test_device_conductance_is_linear_in_state():
    assert float(DEVICE.conductance(DEVICE.w_min)) == pytest.approx(DEVICE.g_min)
    assert float(DEVICE.conductance(DEVICE.w_max)) == pytest.approx(DEVICE.g_max)
    assert float(DEVICE.conductance(0.5)) == pytest.approx(0.5 * (DEVICE.g_min + DEVICE.g_max))
    assert float(DEVICE.current(0.5, 0.2)) == pytest.approx(0.2 * float(DEVICE.conductance(0.5)))


def test_device_runs_in_compact_integrator():
    # Below the threshold the state holds, above it the state moves with the sign of the voltage.
    dt = 1e-5
    _, below_threshold = integrate(DEVICE, jnp.full(101, 1.0), dt, 0.5, output="final")
    _, raised = integrate(DEVICE, jnp.full(101, 1.3), dt, 0.5, output="final")
    _, lowered = integrate(DEVICE, jnp.full(101, -1.3), dt, 0.5, output="final")
    assert float(below_threshold) == 0.5
    assert float(raised) > 0.5
    assert float(lowered) < 0.5


# Shape of the emergent window.


def test_window_is_hebbian_on_grid():
    potentiation = window(GRID)
    depression = window(-GRID)
    active = GRID <= 30 * MS  # the window of the defaults ends near 31.4 ms
    assert np.all(potentiation[active] > 0)
    assert np.all(depression[active] < 0)
    assert np.all(potentiation >= 0)
    assert np.all(depression <= 0)


def test_window_zero_at_zero_delay():
    # Identical waveforms cancel exactly: V_MR = 0 throughout.
    assert window([0.0])[0] == 0.0


def test_window_monotone_beyond_pulse_width():
    # From |delay| = t_plus on, the pulse of the later spike meets an ever weaker tail.
    beyond = GRID[GRID >= WAVEFORM.t_plus]
    potentiation = window(beyond)
    depression = window(-beyond)
    assert np.all(np.diff(potentiation) <= 0)
    assert np.all(np.diff(np.abs(depression)) <= 0)


def test_window_rises_from_zero_inside_pulse():
    # Below t_plus the two pulses overlap and cancel, so the window grows from 0 at delay 0.
    inside = np.array([0.01, 0.05, 0.1]) * MS
    values = window(inside)
    assert np.all(np.diff(values) > 0)
    assert values[0] < 0.2 * window([WAVEFORM.t_plus])[0]


def test_window_antisymmetric():
    # Same waveform on both sides and an odd rate: Δw(-Δt) = -Δw(Δt) away from the bounds. The grids of
    # the two delays differ, so they agree only to the float32 rounding of the step sums (about 3e-7 here).
    potentiation = window(GRID)
    depression = window(-GRID)
    np.testing.assert_allclose(depression, -potentiation, rtol=0, atol=1e-4 * potentiation.max())


def test_window_peak_magnitude():
    # The defaults were chosen for a peak of about 1 % of the state range.
    peak = window(GRID).max()
    assert 0.005 < peak < 0.02


_PAIR_WINDOW = jax.jit(lambda delays: overlap_window(WAVEFORM, DEVICE, delays))


@settings(deadline=None, max_examples=60)
@given(
    first=st.floats(1.0, 60.0),
    second=st.floats(1.0, 60.0),
    sign=st.sampled_from([-1.0, 1.0]),
)
def test_window_sign_and_monotone_random_pairs(first, second, sign):
    near, far = sorted((first, second))
    dw_near, dw_far = np.asarray(_PAIR_WINDOW(jnp.array([sign * near, sign * far]) * MS))
    assert np.sign(dw_near) in (0.0, sign)
    assert np.sign(dw_far) in (0.0, sign)
    assert abs(dw_near) >= abs(dw_far)
    if near <= 30.0:
        assert np.sign(dw_near) == sign


# Exact zeros.


def test_window_zero_without_overlap():
    beyond = np.concatenate([[DURATION, DURATION * (1 + 1e-6)], np.linspace(52, 200, 30) * MS])
    np.testing.assert_array_equal(window(beyond), 0.0)
    np.testing.assert_array_equal(window(-beyond), 0.0)


def test_window_zero_while_overlap_stays_below_threshold():
    # |V_MR| <= a_plus + a_minus everywhere; scaled by 0.7 that is 1.05 V < v_th = 1.1 V.
    weak = SpikeWaveform(a_plus=0.7 * WAVEFORM.a_plus, a_minus=0.7 * WAVEFORM.a_minus)
    delays = np.concatenate([-GRID, [0.0], GRID])
    np.testing.assert_array_equal(window(delays, waveform=weak), 0.0)


def test_window_zero_in_subthreshold_part_of_overlap():
    # The spikes still overlap between the end of the window (about 31.4 ms) and the duration (51 ms).
    overlapping = np.arange(32.0, 51.0, 1.0) * MS
    np.testing.assert_array_equal(window(overlapping), 0.0)
    np.testing.assert_array_equal(window(-overlapping), 0.0)


# Bounds of the state.


def test_state_stays_within_bounds():
    fast = ThresholdMemristor(i0=1e3)  # 10^4 times the default: one pair crosses the whole range
    w = jnp.array([0.0, 0.01, 0.5, 0.99, 1.0])
    delays = jnp.array([-20.0, -2.0, 0.5, 2.0, 20.0]) * MS
    after = np.asarray(pair_update(WAVEFORM, fast, w[:, None], delays[None, :]))
    assert np.all(after >= fast.w_min)
    assert np.all(after <= fast.w_max)
    # Strong pairs drive every start state to the bound on their side.
    np.testing.assert_array_equal(after[:, 2], fast.w_max)
    np.testing.assert_array_equal(after[:, 1], fast.w_min)


def test_window_saturates_near_bound():
    near_top = window([2 * MS], w0=0.999)[0]
    assert near_top == pytest.approx(0.001, abs=1e-6)


# Transformations.


def test_window_under_jit_matches_eager():
    delays = np.array([-10.0, -2.0, 3.0, 15.0]) * MS
    eager = window(delays)
    jitted = np.asarray(jax.jit(lambda d: overlap_window(WAVEFORM, DEVICE, d))(delays))
    np.testing.assert_allclose(jitted, eager, rtol=1e-6)


def test_window_vmap_over_device_parameters():
    # The rate is proportional to i0, so away from the bounds the window scales with it.
    delays = jnp.array([-5.0, 2.0, 10.0]) * MS
    scales = jnp.array([0.5, 1.0, 2.0])
    windows = jax.vmap(lambda scale: overlap_window(WAVEFORM, ThresholdMemristor(i0=scale * DEVICE.i0), delays))(scales)
    base = window(delays)
    # Δw = w_after - w0 with w near 0.5 carries float32 rounding of a few ulp(0.5) = 6e-8.
    expected = np.asarray(scales)[:, None] * base[None, :]
    np.testing.assert_allclose(np.asarray(windows), expected, rtol=1e-5, atol=3e-7)


def test_window_shape_follows_inputs():
    delays = np.array([[1.0, 2.0, 3.0], [-1.0, -2.0, -3.0]]) * MS
    assert window(delays).shape == (2, 3)
    assert window(delays, w0=np.array([0.4, 0.6])[:, None]).shape == (2, 3)


def test_window_gradient_in_pulse_amplitude():
    # A larger pulse lifts V_MR above the threshold for longer, so potentiation grows with a_plus.
    slope = jax.grad(lambda a: overlap_window(SpikeWaveform(a_plus=a), DEVICE, 5 * MS))(WAVEFORM.a_plus)
    assert np.isfinite(float(slope))
    assert float(slope) > 0


def test_pair_update_matches_window():
    t_pre = jnp.array([0.0, 4.0, 10.0]) * MS
    t_post = jnp.array([2.0, 6.0]) * MS
    w = jnp.full((3, 2), 0.5)
    delays = t_post[None, :] - t_pre[:, None]
    after = np.asarray(jax.jit(lambda w, d: pair_update(WAVEFORM, DEVICE, w, d))(w, delays))
    np.testing.assert_allclose(after - 0.5, window(delays), rtol=1e-5, atol=1e-9)


# Convergence of the integration.


def test_window_converges_at_second_order():
    # Heun's method on steps that never straddle a waveform jump: error ~ steps^-2. float64 keeps the
    # rounding far below the truncation error at the finest step used here.
    with jax.enable_x64(True):
        delays = np.array([0.5, 3.0, 10.0, -7.0]) * MS
        reference = window(delays, steps_per_overlap=8192)
        steps = [32, 64, 128, 256]
        errors = np.array([np.abs(window(delays, steps_per_overlap=n) - reference) for n in steps])
    for column, delay in enumerate(delays):
        slope = -np.polyfit(np.log(steps), np.log(errors[:, column]), 1)[0]
        assert abs(slope - 2.0) < 0.2, f"delay {delay}: fitted order {slope:.3f}, errors {errors[:, column]}"


def test_default_steps_are_converged():
    # The default 256 steps are within 0.3 % of the 8192-step value on the potentiation side.
    delays = np.array([0.5, 3.0, 10.0]) * MS
    np.testing.assert_allclose(window(delays), window(delays, steps_per_overlap=8192), rtol=3e-3)


# Input validation.


@pytest.mark.parametrize("steps", [3, 0, 8.0, True])
def test_window_rejects_bad_steps(steps):
    with pytest.raises(ValueError, match="steps_per_overlap must be an integer >= 4"):
        overlap_window(WAVEFORM, DEVICE, 1e-3, steps_per_overlap=steps)


def test_window_rejects_bad_inputs():
    with pytest.raises(ValueError, match="waveform must be a SpikeWaveform"):
        overlap_window(DEVICE, DEVICE, 1e-3)
    with pytest.raises(ValueError, match="device must be a ThresholdMemristor"):
        overlap_window(WAVEFORM, WAVEFORM, 1e-3)
    with pytest.raises(ValueError, match="delays contains non-finite"):
        overlap_window(WAVEFORM, DEVICE, np.array([1e-3, np.nan]))
    with pytest.raises(ValueError, match=r"w0 must lie in \[w_min, w_max\]"):
        overlap_window(WAVEFORM, DEVICE, 1e-3, w0=1.5)
    with pytest.raises(ValueError, match=r"w must lie in \[w_min, w_max\]"):
        pair_update(WAVEFORM, DEVICE, -0.1, 1e-3)


def test_window_rejects_single_spike_above_threshold():
    with pytest.raises(ValueError, match="a single spike reaches 1.2 V"):
        overlap_window(SpikeWaveform(a_plus=1.2), DEVICE, 1e-3)
    with pytest.raises(ValueError, match="at or above the device threshold"):
        overlap_window(WAVEFORM, ThresholdMemristor(v_th=0.5), 1e-3)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (dict(t_plus=0.0), "t_plus must be finite and > 0"),
        (dict(a_minus=-0.5), "a_minus must be finite and > 0"),
        (dict(tau_minus=np.inf), "tau_minus must be finite and > 0"),
    ],
)
def test_waveform_rejects_bad_parameters(kwargs, message):
    with pytest.raises(ValueError, match=message):
        SpikeWaveform(**kwargs)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (dict(v0=0.0), "v0 must be finite and > 0"),
        (dict(i0=-1.0), "i0 must be finite and > 0"),
        (dict(w_min=1.0, w_max=0.0, w_init=0.5), "w_min .* must be less than w_max"),
        (dict(w_init=2.0), r"w_init must be in \[w_min, w_max\]"),
        (dict(g_min=1e-4, g_max=1e-6), "g_max .* must be greater than g_min"),
    ],
)
def test_device_rejects_bad_parameters(kwargs, message):
    with pytest.raises(ValueError, match=message):
        ThresholdMemristor(**kwargs)


# Step-by-step rule.

RULE = WaveformSTDP()
DT = 1e-4  # s
# The rule and the pair_update reference may compile to different float32 sums, so allow 4 ulp(0.5).
STATE_ATOL = 4 * float(np.spacing(np.float32(0.5)))


def steps_to_s(steps):
    """Return a delay of whole steps in s, rounded as the rule rounds it (float32 product)."""
    return np.float32(steps) * np.float32(DT)


def expected_pair(steps, w=0.5, device=DEVICE, waveform=WAVEFORM):
    return float(pair_update(waveform, device, w, steps_to_s(steps), steps_per_overlap=RULE.steps_per_overlap))


def run_eager(rule, spikes, n_pre, n_post, x0, device=DEVICE):
    """Call `rule.step` at each step listed in `spikes`, {step: (inputs, neurons)}, in increasing order.

    Steps without spikes change nothing, so the calls skip them.
    """
    state = rule.init(n_pre, n_post)
    x = jnp.asarray(x0, jnp.float32)
    for step in sorted(spikes):
        inputs, neurons = spikes[step]
        pre = np.zeros(n_pre, bool)
        post = np.zeros(n_post, bool)
        pre[list(inputs)] = True
        post[list(neurons)] = True
        state, x = rule.step(state, pre, post, step * DT, DT, device, x)
    return state, np.asarray(x)


def raster(spikes, steps, n_pre, n_post):
    pre = np.zeros((steps, n_pre), bool)
    post = np.zeros((steps, n_post), bool)
    for step, (inputs, neurons) in spikes.items():
        pre[step, list(inputs)] = True
        post[step, list(neurons)] = True
    return jnp.asarray(pre), jnp.asarray(post)


@jax.jit
def run_scan(rule, device, pre, post, x0):
    """Call `rule.step` at every step of the rasters (steps, n) inside one `lax.scan`."""

    def body(carry, spikes):
        state, x, step = carry
        state, x = rule.step(state, spikes[0], spikes[1], step * DT, DT, device, x)
        return (state, x, step + 1), None

    state = WaveformSTDPState(
        last_pre=jnp.full(pre.shape[1:], -jnp.inf, jnp.float32),
        last_post=jnp.full(post.shape[1:], -jnp.inf, jnp.float32),
    )
    (state, x, _), _ = jax.lax.scan(body, (state, x0, jnp.zeros((), jnp.int32)), (pre, post))
    return state, x


# Neurons 0 and 1 spike at steps 50 and 150; inputs 0 to 2 spike once each, input 3 never.
PAIRS = {20: ([0], []), 50: ([], [0]), 80: ([1], []), 150: ([], [1]), 170: ([2], [])}
# Delay t_post - t_pre in steps of each synapse (input, neuron), from the nearest pairing.
PAIR_DELAYS = {(0, 0): 30, (0, 1): 130, (1, 0): -30, (1, 1): 70, (2, 0): -120, (2, 1): -20}


def test_rule_pairs_match_pair_update():
    _, x = run_eager(RULE, PAIRS, 4, 2, np.full((4, 2), 0.5))
    for (row, column), steps in PAIR_DELAYS.items():
        assert x[row, column] == pytest.approx(expected_pair(steps), abs=STATE_ATOL), (row, column, steps)
    np.testing.assert_array_equal(x[3], 0.5)


def test_rule_pairs_from_other_start_states():
    # Each synapse starts elsewhere in its range, and pair_update from that start is the reference.
    x0 = np.linspace(0.2, 0.9, 8, dtype=np.float32).reshape(4, 2)
    _, x = run_eager(RULE, PAIRS, 4, 2, x0)
    for (row, column), steps in PAIR_DELAYS.items():
        expected = expected_pair(steps, w=x0[row, column])
        assert x[row, column] == pytest.approx(expected, abs=STATE_ATOL), (row, column, steps)


def test_rule_records_last_spike_times():
    state, _ = run_eager(RULE, PAIRS, 4, 2, np.full((4, 2), 0.5))
    np.testing.assert_allclose(np.asarray(state.last_pre[:3]), np.array([20, 80, 170]) * DT, rtol=1e-6)
    assert np.asarray(state.last_pre[3]) == -np.inf
    np.testing.assert_allclose(np.asarray(state.last_post), np.array([50, 150]) * DT, rtol=1e-6)


def test_rule_init_has_no_spikes():
    state = RULE.init(3, 2)
    assert state.last_pre.shape == (3,)
    assert state.last_post.shape == (2,)
    assert np.all(np.asarray(state.last_pre) == -np.inf)
    assert np.all(np.asarray(state.last_post) == -np.inf)


def test_rule_sign_is_hebbian():
    # Neuron 0 spikes at step 100: inputs 0 and 1 spike before it, inputs 2 and 3 after it.
    spikes = {60: ([1], []), 99: ([0], []), 100: ([], [0]), 101: ([2], []), 140: ([3], [])}
    _, x = run_eager(RULE, spikes, 4, 2, np.full((4, 2), 0.5))
    assert np.all(x[:2, 0] > 0.5)
    assert np.all(x[2:, 0] < 0.5)
    # The nearer pair changes more.
    assert x[0, 0] > x[1, 0]
    assert x[2, 0] < x[3, 0]
    np.testing.assert_array_equal(x[:, 1], 0.5)


def test_rule_same_step_pair_after_depression():
    # Neuron 0 spikes at steps 50 and 100, input 0 at step 100. The pre spike pairs with the post spike
    # of step 50 (depression). The post spike of step 100 pairs with it at delay 0, where the waveforms
    # cancel, so the depression is the whole change.
    spikes = {50: ([], [0]), 100: ([0], [0])}
    _, x = run_eager(RULE, spikes, 4, 2, np.full((4, 2), 0.5))
    assert x[0, 0] == pytest.approx(expected_pair(-50), abs=STATE_ATOL)
    assert x[0, 0] < 0.5


def test_rule_same_step_pair_alone_keeps_state():
    _, x = run_eager(RULE, {10: ([0, 1], [0, 1])}, 4, 2, np.full((4, 2), 0.5))
    np.testing.assert_array_equal(x, 0.5)


def test_rule_nearest_pre_spike_pairs():
    # Input 0 spikes at steps 10 and 40, neuron 0 at step 50: only the pair at 10 steps counts.
    _, x = run_eager(RULE, {10: ([0], []), 40: ([0], []), 50: ([], [0])}, 4, 2, np.full((4, 2), 0.5))
    assert x[0, 0] == pytest.approx(expected_pair(10), abs=STATE_ATOL)


def test_rule_no_change_without_overlap():
    # 510 steps are the waveform duration of 51 ms, so the waveforms of these pairs do not overlap.
    x0 = np.asarray(jax.random.uniform(jax.random.key(0), (4, 2)), np.float32)
    later = {0: ([0], []), 510: ([], [0]), 1200: ([1], []), 1800: ([], [1])}
    earlier = {0: ([], [0]), 510: ([0], []), 1200: ([], [1]), 1800: ([1], [])}
    for spikes in (later, earlier):
        _, x = run_eager(RULE, spikes, 4, 2, x0)
        np.testing.assert_array_equal(x, x0)


def test_rule_no_change_with_one_side_spiking():
    key_pre, key_post, key_x = jax.random.split(jax.random.key(1), 3)
    x0 = jax.random.uniform(key_x, (4, 2))
    silent_pre = jnp.zeros((300, 4), bool)
    silent_post = jnp.zeros((300, 2), bool)
    busy_pre = jax.random.bernoulli(key_pre, 0.05, (300, 4))
    busy_post = jax.random.bernoulli(key_post, 0.05, (300, 2))
    assert bool(busy_pre.any())
    assert bool(busy_post.any())
    for pre, post in ((busy_pre, silent_post), (silent_pre, busy_post)):
        _, x = run_scan(RULE, DEVICE, pre, post, x0)
        np.testing.assert_array_equal(np.asarray(x), np.asarray(x0))


def test_rule_subthreshold_overlap_keeps_state():
    # Overlapping spikes whose summed amplitude stays under the threshold (1.05 V < 1.1 V) never switch.
    weak = WaveformSTDP(waveform=SpikeWaveform(a_plus=0.7, a_minus=0.35))
    _, x = run_eager(weak, PAIRS, 4, 2, np.full((4, 2), 0.5))
    np.testing.assert_array_equal(x, 0.5)


def test_rule_chunks_give_same_result():
    # Eight inputs spike before one neuron, so a chunk of 3 synapses needs three rounds of the loop.
    spikes = {step: ([step // 10], []) for step in range(0, 80, 10)}
    spikes[100] = ([], [0])
    x0 = np.full((8, 2), 0.5)
    _, whole = run_eager(RULE, spikes, 8, 2, x0)
    _, chunked = run_eager(WaveformSTDP(pairs_per_chunk=3), spikes, 8, 2, x0)
    np.testing.assert_array_equal(chunked, whole)
    for row in range(8):
        assert whole[row, 0] == pytest.approx(expected_pair(100 - 10 * row), abs=STATE_ATOL)


def test_rule_jit_scan_matches_eager():
    pre, post = raster(PAIRS, 200, 4, 2)
    x0 = jnp.full((4, 2), 0.5)
    state, x = run_scan(RULE, DEVICE, pre, post, x0)
    eager_state, eager_x = run_eager(RULE, PAIRS, 4, 2, x0)
    np.testing.assert_allclose(np.asarray(x), eager_x, rtol=0, atol=STATE_ATOL)
    # The scan computes t = step * DT in float32 and the eager calls pass a Python float, so the stored
    # times may differ by one float32 rounding.
    np.testing.assert_allclose(np.asarray(state.last_pre), np.asarray(eager_state.last_pre), rtol=2e-7)
    np.testing.assert_allclose(np.asarray(state.last_post), np.asarray(eager_state.last_post), rtol=2e-7)


def test_rule_vmap_over_rules_and_devices():
    # Two independent networks: different waveforms, devices and spikes, batched in one call.
    rules = [RULE, WaveformSTDP(waveform=SpikeWaveform(a_plus=0.9, a_minus=0.55))]
    devices = [DEVICE, ThresholdMemristor(i0=0.3)]
    other = {10: ([3], []), 30: ([], [1]), 45: ([0], []), 90: ([2], [0])}
    rasters = [raster(PAIRS, 200, 4, 2), raster(other, 200, 4, 2)]
    x0 = jnp.stack([jnp.full((4, 2), 0.5), jnp.full((4, 2), 0.4)])

    def stack(*trees):
        return jax.tree.map(lambda *leaves: jnp.stack([jnp.asarray(leaf) for leaf in leaves]), *trees)

    pre = jnp.stack([r[0] for r in rasters])
    post = jnp.stack([r[1] for r in rasters])
    _, batched = jax.vmap(run_scan)(stack(*rules), stack(*devices), pre, post, x0)
    for member in range(2):
        _, alone = run_scan(rules[member], devices[member], pre[member], post[member], x0[member])
        np.testing.assert_allclose(np.asarray(batched[member]), np.asarray(alone), rtol=0, atol=STATE_ATOL)
    # The two members differ, so the batch did not mix them up.
    assert not np.allclose(np.asarray(batched[0]), np.asarray(batched[1]))
    # The second member's pairs: input 3 and neuron 1 (+20 steps), neuron 1 and input 0 (-15 steps).
    second = np.asarray(batched[1])
    expected = [expected_pair(steps, 0.4, devices[1], rules[1].waveform) for steps in (20, -15)]
    assert second[3, 1] == pytest.approx(expected[0], abs=STATE_ATOL)
    assert second[0, 1] == pytest.approx(expected[1], abs=STATE_ATOL)


# Input validation of the rule.


def test_rule_rejects_bad_inputs():
    state = RULE.init(4, 2)
    pre, post, x = np.zeros(4, bool), np.zeros(2, bool), jnp.full((4, 2), 0.5)
    with pytest.raises(ValueError, match=r"pre_spikes has shape \(3,\)"):
        RULE.step(state, np.zeros(3, bool), post, 0.0, DT, DEVICE, x)
    with pytest.raises(ValueError, match=r"post_spikes has shape \(4,\)"):
        RULE.step(state, pre, np.zeros(4, bool), 0.0, DT, DEVICE, x)
    with pytest.raises(ValueError, match=r"x must have shape \(n_pre, n_post\) = \(4, 2\)"):
        RULE.step(state, pre, post, 0.0, DT, DEVICE, jnp.full((2, 4), 0.5))
    with pytest.raises(ValueError, match=r"x must lie in \[w_min, w_max\]"):
        RULE.step(state, pre, post, 0.0, DT, DEVICE, jnp.full((4, 2), 1.5))
    with pytest.raises(ValueError, match="dt must be finite and > 0"):
        RULE.step(state, pre, post, 0.0, 0.0, DEVICE, x)
    with pytest.raises(ValueError, match="t contains non-finite"):
        RULE.step(state, pre, post, np.nan, DT, DEVICE, x)
    with pytest.raises(ValueError, match="device must be a ThresholdMemristor"):
        RULE.step(state, pre, post, 0.0, DT, WAVEFORM, x)
    with pytest.raises(ValueError, match="a single spike reaches 1.2 V"):
        WaveformSTDP(waveform=SpikeWaveform(a_plus=1.2)).step(state, pre, post, 0.0, DT, DEVICE, x)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (dict(steps_per_overlap=3), "steps_per_overlap must be an integer >= 4"),
        (dict(pairs_per_chunk=0), "pairs_per_chunk must be an integer >= 1"),
        (dict(pairs_per_chunk=2.0), "pairs_per_chunk must be an integer >= 1"),
        (dict(waveform=DEVICE), "waveform must be a SpikeWaveform"),
    ],
)
def test_rule_rejects_bad_parameters(kwargs, message):
    with pytest.raises(ValueError, match=message):
        WaveformSTDP(**kwargs)


@pytest.mark.parametrize("n", [0, -1, 2.0, True])
def test_rule_init_rejects_bad_sizes(n):
    with pytest.raises(ValueError, match="n_pre must be an integer >= 1"):
        RULE.init(n, 2)
