"""Tests of fitting pulse-update devices to pulse-response traces."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from xbar.devices import ProgramVerify
from xbar.devices.fitting import compare_traces, fit_pulse_response, moving_average, simulate_reads
from xbar.devices.pulsed import PiecewiseStep, PulsedDevice, SoftBoundsStep, StepNoise

SPAN = 10e-6
NODES = 5
UP_STEP, DOWN_STEP = 0.01, 0.015
UP_NOISE, DOWN_NOISE = 0.002, 0.003
READ_NOISE = 0.002


def _known_device(read_noise=READ_NOISE):
    return PulsedDevice(
        up=SoftBoundsStep(UP_STEP, 1.0, StepNoise(absolute=UP_NOISE)),
        down=SoftBoundsStep(DOWN_STEP, 1.0, StepNoise(absolute=DOWN_NOISE)),
        g_min=0.0, g_max=SPAN, read_noise=read_noise * SPAN,
    )


def _synthetic(device, seed, traces=40, pulses=300):
    up = simulate_reads(device, jnp.zeros(traces), pulses, key=jax.random.key(2 * seed + 1))
    down = simulate_reads(device, jnp.full(traces, SPAN), pulses, key=jax.random.key(2 * seed + 2), potentiate=False)
    return np.asarray(up, np.float64), np.asarray(down, np.float64)


@pytest.fixture(scope="module")
def synthetic_fit():
    device = _known_device()
    up, down = _synthetic(device, seed=0)
    return device, up, down, fit_pulse_response(up, down, g_min=0.0, g_max=SPAN, nodes=NODES, half_width=3)


def test_fit_recovers_mean_steps(synthetic_fit):
    _, _, _, fit = synthetic_fit
    u = np.linspace(0.0, 1.0, NODES)
    # 40 traces x 300 pulses give about 2400 changes per node; the smoothed changes carry little read
    # noise, so the node means land within a few 1e-4 of the truth (5 % of the smaller step).
    np.testing.assert_allclose(np.asarray(fit.device.up.mean_nodes)[:-1], (UP_STEP * (1 - u))[:-1], atol=5e-4)
    np.testing.assert_allclose(np.asarray(fit.device.down.mean_nodes)[1:], (DOWN_STEP * u)[1:], atol=5e-4)


def test_fit_recovers_noise(synthetic_fit):
    _, _, _, fit = synthetic_fit
    # Step noise is a small part of the change variance (read noise contributes 2 x 0.002^2), so its
    # estimate carries the error of the read-noise estimate: 15 % on the mean over nodes, 25 % per node.
    assert fit.read_noise / SPAN == pytest.approx(READ_NOISE, rel=0.1)
    up_std = np.asarray(fit.device.up.std_nodes)
    down_std = np.asarray(fit.device.down.std_nodes)
    assert up_std.mean() == pytest.approx(UP_NOISE, rel=0.15)
    assert down_std.mean() == pytest.approx(DOWN_NOISE, rel=0.15)
    np.testing.assert_allclose(up_std, UP_NOISE, rtol=0.25)
    np.testing.assert_allclose(down_std, DOWN_NOISE, rtol=0.25)


def test_fit_without_read_noise_attributes_spread_to_steps(synthetic_fit):
    _, up, down, _ = synthetic_fit
    fit = fit_pulse_response(up, down, g_min=0.0, g_max=SPAN, nodes=NODES, half_width=3, read_noise=False)
    assert fit.read_noise == 0.0
    # All of the change spread, sqrt(s_step^2 + 2 s_read^2), is now step noise.
    expected = np.sqrt(UP_NOISE**2 + 2 * READ_NOISE**2)
    assert np.asarray(fit.device.up.std_nodes).mean() == pytest.approx(expected, rel=0.1)


def test_fitted_device_reproduces_its_data(synthetic_fit, key):
    _, up, _, fit = synthetic_fit
    comparison = compare_traces(fit.device, up, key=key, repeats=20, half_width=3)
    assert comparison.trajectory_error < 0.02
    assert comparison.std_error < 0.1


def test_comparison_detects_wrong_model(synthetic_fit, key):
    _, up, _, _ = synthetic_fit
    slow = PulsedDevice(up=SoftBoundsStep(0.5 * UP_STEP, 1.0, StepNoise(absolute=UP_NOISE)),
                        down=SoftBoundsStep(DOWN_STEP), g_min=0.0, g_max=SPAN, read_noise=READ_NOISE * SPAN)
    comparison = compare_traces(slow, up, key=key, repeats=20, half_width=3)
    assert comparison.trajectory_error > 0.1


def test_fitted_device_works_as_a_device(synthetic_fit, key):
    _, _, _, fit = synthetic_fit
    device = fit.device
    assert isinstance(device.up, PiecewiseStep)
    state = device.program(jnp.full((4,), 5e-6), key=key, verify=ProgramVerify(tolerance=0.5e-6))
    after = jax.jit(lambda s, n: device.apply_pulses(s, n, key=key, max_pulses=8).g)(state, jnp.array([8, -8, 0, 1]))
    assert float(after[0]) > float(state.g[0])
    assert float(after[1]) < float(state.g[1])
    reads = device.read(state, 1.0, key=key)
    assert reads.shape == (4,)


def test_ragged_traces_with_trailing_nan(key):
    device = _known_device(read_noise=0.0)
    up, down = _synthetic(device, seed=3, traces=6, pulses=80)
    ragged = up.copy()
    ragged[60:, 0] = np.nan
    fit = fit_pulse_response(ragged, down, g_min=0.0, g_max=SPAN, nodes=3, half_width=2)
    # 81 reads give 80 changes per trace; the cut trace keeps 60 reads, so 59 changes.
    assert fit.up_samples == 5 * 80 + 59
    as_list = fit_pulse_response(list(ragged.T), list(down.T), g_min=0.0, g_max=SPAN, nodes=3, half_width=2)
    np.testing.assert_allclose(np.asarray(as_list.device.up.mean_nodes), np.asarray(fit.device.up.mean_nodes))


def test_default_range_is_widened():
    trace = np.linspace(2e-6, 4e-6, 50)
    fit = fit_pulse_response(trace, trace[::-1], half_width=0, margin=0.1)
    assert fit.device.g_min == pytest.approx(2e-6 - 0.2e-6)
    assert fit.device.g_max == pytest.approx(4e-6 + 0.2e-6)


@pytest.mark.parametrize(
    ("up", "kwargs", "match"),
    [
        (np.array([1e-6, np.nan, 2e-6, 3e-6]), {}, "before its end"),
        (np.array([1e-6, 2e-6]), {}, "at least one trace"),
        (np.linspace(1e-6, 2e-6, 10), {"nodes": 1}, "nodes"),
        (np.linspace(1e-6, 2e-6, 10), {"half_width": -1}, "half_width"),
        (np.linspace(1e-6, 2e-6, 10), {"g_min": 3e-6, "g_max": 1e-6}, "g_min < g_max"),
        (np.linspace(1e-6, 2e-6, 10), {"margin": -0.1}, "margin"),
        (np.zeros((2, 2, 2)), {}, "shape"),
    ],
)
def test_invalid_inputs_raise(up, kwargs, match):
    with pytest.raises(ValueError, match=match):
        fit_pulse_response(up, np.linspace(2e-6, 1e-6, 10), **kwargs)


def test_moving_average_edges():
    values = np.arange(6.0)
    np.testing.assert_allclose(moving_average(values, 1), [0.5, 1.0, 2.0, 3.0, 4.0, 4.5])
    np.testing.assert_allclose(moving_average(values, 0), values)
