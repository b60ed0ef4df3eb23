"""Tests of the STDP window that emerges from overlapping spike waveforms on a threshold memristor."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from xbar.devices.compact import integrate
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
