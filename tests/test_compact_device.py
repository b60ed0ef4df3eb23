"""Tests of compact models used as tile devices through `CompactDevice`."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from xbar.crossbar import Tile
from xbar.devices import CompactDevice, ProgramVerify
from xbar.devices.compact import VTEAM, StanfordPKU, Yakopcic


def vteam_device():
    # VTEAM sets (lowers its resistance) with negative voltage.
    return CompactDevice(VTEAM(), set_voltage=-0.3, reset_voltage=0.5, pulse_width=1e-9)


def test_conductance_range_and_chord_read(key):
    device = CompactDevice(StanfordPKU(), set_voltage=1.6, reset_voltage=-1.6, pulse_width=1e-9)
    assert abs(float(device.g_max) * 541.8 - 1) < 1e-4
    assert abs(float(device.g_min) * 218586.1 - 1) < 1e-4
    state = device.initial_state((2,))
    np.testing.assert_allclose(device.read(state, 0.0, key=key), 1 / 541.8, rtol=1e-4)


def test_program_reaches_targets_within_tolerance(key):
    device = vteam_device()
    targets = jnp.linspace(device.g_min, device.g_max, 9)
    state = device.program(targets, key=key)
    error = np.abs(np.asarray(device.read(state, 0.0, key=key)) - np.asarray(targets))
    assert np.all(error <= float(device.program_tolerance))
    assert np.all(np.asarray(state.iterations) < device.max_program_pulses)


def test_program_uses_verify_tolerance(key):
    device = vteam_device()
    targets = jnp.linspace(device.g_min, device.g_max, 5)
    tight = 1e-3 * float(device.g_max - device.g_min)
    state = device.program(targets, key=key, verify=ProgramVerify(tolerance=tight))
    assert np.all(np.abs(np.asarray(state.g) - np.asarray(targets)) <= tight)


def test_pulses_move_conductance_in_opposite_directions(key):
    device = CompactDevice(Yakopcic(x_init=0.5), set_voltage=1.0, reset_voltage=-1.0, pulse_width=1e-6)
    state = device.initial_state((3,))
    after = device.apply_pulses(state, jnp.array([2, -2, 0]), key=key)
    change = np.asarray(after.g - state.g)
    assert change[0] > 0
    assert change[1] < 0
    assert change[2] == 0


def test_apply_pulses_under_jit_needs_max_pulses(key):
    device = vteam_device()
    state = device.initial_state((2,))
    with pytest.raises(ValueError, match="max_pulses is required"):
        jax.jit(lambda n: device.apply_pulses(state, n, key=key).g)(jnp.array([1, -1]))
    jitted = jax.jit(lambda n: device.apply_pulses(state, n, key=key, max_pulses=3).g)(jnp.array([1, -1]))
    np.testing.assert_allclose(jitted, device.apply_pulses(state, jnp.array([1, -1]), key=key).g, rtol=1e-6)


def test_apply_pulses_gradient_wrt_model(key):
    def final_g(k_off):
        device = CompactDevice(VTEAM(k_off=k_off, x_init_normalized=0.5), set_voltage=-0.3, reset_voltage=0.5,
                               pulse_width=1e-11)
        return device.apply_pulses(device.initial_state(), -1, key=key).g

    gradient = jax.grad(final_g)(jnp.float32(5e-4))
    assert np.isfinite(float(gradient))
    assert float(gradient) < 0  # a faster RESET lowers the conductance further


def test_device_rejects_bad_settings():
    with pytest.raises(ValueError, match="v_read must not be 0"):
        CompactDevice(VTEAM(), set_voltage=-0.3, reset_voltage=0.5, pulse_width=1e-9, v_read=0.0)
    with pytest.raises(ValueError, match="pulse_width"):
        CompactDevice(VTEAM(), set_voltage=-0.3, reset_voltage=0.5, pulse_width=0.0)
    with pytest.raises(ValueError, match="steps_per_pulse"):
        CompactDevice(VTEAM(), set_voltage=-0.3, reset_voltage=0.5, pulse_width=1e-9, steps_per_pulse=0)


def test_tile_with_vteam_devices(rng, key):
    weights = rng.uniform(-1, 1, size=(6, 4)).astype(np.float32)
    inputs = rng.uniform(-1, 1, size=(3, 6)).astype(np.float32)
    device = vteam_device()
    tile = Tile(device=device)
    read = tile.read(tile.program(weights, key=key), 0.0, key=key)
    outputs = np.asarray(tile.matmul(read, inputs))
    # Each device is within 1 % of the conductance range of its target, so each weight is within 2 % of
    # max|W| (two devices per weight); a product sums 6 such errors weighted by |x| <= 1.
    bound = 6 * 0.02 * np.abs(weights).max() + 1e-5
    assert np.all(np.abs(outputs - inputs @ weights) <= bound)


def test_swapped_pulse_polarity_rejected():
    from xbar.devices.compact import VTEAM

    with pytest.raises(ValueError, match="swap set_voltage and reset_voltage"):
        CompactDevice(VTEAM(), set_voltage=1.0, reset_voltage=-1.0, pulse_width=1e-9)
