"""Tests of programming pulses, the energy of pulse trains, and the worn and stuck masks of wear.

Statistical checks allow five standard errors of a proportion p over n devices, sqrt(p (1 - p) / n).
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from xbar.devices import (
    PCM,
    CompactDevice,
    Device,
    DeviceState,
    Endurance,
    IdealDevice,
    ProgrammingPulse,
    PulsedDevice,
    Retention,
    list_presets,
    preset,
    preset_info,
    pulse_energy,
    reset_energy,
    wear_state,
)
from xbar.devices.compact import VTEAM

Z = 5.0  # standard errors allowed in every statistical check
N_DEVICES = 4000


def ideal(voltage=1.0, width=100e-9, down_voltage=-1.0, down_width=100e-9):
    return IdealDevice(
        potentiation_pulse=ProgrammingPulse(voltage, width), depression_pulse=ProgrammingPulse(down_voltage, down_width)
    )


def devices_of_every_kind():
    return {
        "ideal": IdealDevice(),
        "pulsed": PulsedDevice(),
        "pcm": PCM(),
        "preset": preset("taox_hfox"),
        "compact": CompactDevice(VTEAM(), set_voltage=-0.3, reset_voltage=0.5, pulse_width=1e-9),
        "wrapped": Endurance(Retention(PCM())),
    }


class PulselessDevice(Device):
    """A device model without programming pulses, to check the error message."""

    g_min: float = 0.0
    g_max: float = 1e-5

    def _program_once(self, target, *, key):
        return DeviceState(g=target, iterations=jnp.ones(jnp.shape(target), jnp.int32))

    def drift(self, state, t):
        return state.g

    def read(self, state, t, *, key):
        return state.g

    def apply_pulses(self, state, n_pulses, *, key, max_pulses=None):
        return state


# Energy of voltage pulses.


@settings(max_examples=60, deadline=None)
@given(
    voltage=st.floats(0.05, 5.0),
    width=st.floats(1e-9, 1e-3),
    # Conductances below 1e-10 S would make float32 energies subnormal.
    g=st.one_of(st.just(0.0), st.floats(1e-10, 1e-4)),
    n=st.integers(-40, 40),
)
def test_ohmic_energy_is_v2_g_width_n(voltage, width, g, n):
    device = ideal(voltage, width, -voltage, width)

    energy = float(pulse_energy(device, g, n))

    np.testing.assert_allclose(energy, abs(n) * voltage**2 * g * width, rtol=1e-5, atol=0.0)


@settings(max_examples=40, deadline=None)
@given(
    voltage=st.floats(0.05, 5.0),
    width=st.floats(1e-9, 1e-3),
    g=st.floats(1e-8, 1e-4),
    n=st.integers(1, 20),
    sign=st.sampled_from([1, -1]),
)
def test_energy_scales_with_each_factor(voltage, width, g, n, sign):
    base = float(pulse_energy(ideal(voltage, width, voltage, width), g, sign * n))

    twice_voltage = float(pulse_energy(ideal(2 * voltage, width, 2 * voltage, width), g, sign * n))
    twice_width = float(pulse_energy(ideal(voltage, 2 * width, voltage, 2 * width), g, sign * n))
    twice_g = float(pulse_energy(ideal(voltage, width, voltage, width), 2 * g, sign * n))
    twice_n = float(pulse_energy(ideal(voltage, width, voltage, width), g, 2 * sign * n))

    np.testing.assert_allclose(twice_voltage, 4 * base, rtol=1e-5)
    np.testing.assert_allclose(twice_width, 2 * base, rtol=1e-5)
    np.testing.assert_allclose(twice_g, 2 * base, rtol=1e-5)
    np.testing.assert_allclose(twice_n, 2 * base, rtol=1e-5)


def test_sign_selects_pulse():
    device = ideal(voltage=1.0, width=100e-9, down_voltage=-2.0, down_width=50e-9)
    g = 10e-6

    up = float(pulse_energy(device, g, 3))
    down = float(pulse_energy(device, g, -3))

    np.testing.assert_allclose(up, 3 * 1.0 * g * 100e-9, rtol=1e-6)
    np.testing.assert_allclose(down, 3 * 4.0 * g * 50e-9, rtol=1e-6)


@pytest.mark.parametrize("name", list(devices_of_every_kind()))
def test_zero_pulses_cost_nothing(name):
    device = devices_of_every_kind()[name]
    g = jnp.linspace(0.0, 20e-6, 5)

    energy = pulse_energy(device, g, jnp.zeros(5))

    np.testing.assert_array_equal(energy, np.zeros(5))


def test_preset_energy_by_hand():
    # TaOx/HfOx of the NeuroSim table: 1.6 V, 50 ns, g_max = 1 / 240 kohm (assumed R_ON).
    # By hand: 1.6^2 V^2 * 4.1667e-6 S * 50e-9 s = 2.56 * 4.1667e-6 * 5e-8 J = 5.3333e-13 J.
    device = preset("taox_hfox")

    energy = float(pulse_energy(device, device.g_max, 1))

    np.testing.assert_allclose(energy, 5.3333e-13, rtol=1e-4)


def test_preset_depression_energy_by_hand():
    # Ag:a-Si of the NeuroSim table: LTD -2.8 V for 300 us at g_max = 3.8462e-8 S.
    # By hand: 7.84 V^2 * 3.8462e-8 S * 3e-4 s = 9.0463e-11 J per pulse, times 2 pulses.
    device = preset("ag_a_si")

    energy = float(pulse_energy(device, device.g_max, -2))

    np.testing.assert_allclose(energy, 2 * 9.0463e-11, rtol=1e-4)


# Energy of current pulses (PCM and gate-programmed cells).


def test_pcm_set_energy_ignores_conductance():
    # 100 uA at 1 V for 50 ns: 5 pJ per SET pulse at any conductance.
    device = PCM()
    g = jnp.array([0.0, 1e-6, 25e-6])

    energy = pulse_energy(device, g, 4)

    np.testing.assert_allclose(energy, np.full(3, 4 * 5e-12), rtol=1e-5)


def test_pcm_negative_count_is_one_reset():
    # 400 uA at 1.5 V for 50 ns: 30 pJ per RESET, one RESET for any negative count.
    device = PCM()
    g = jnp.full(3, 10e-6)

    energy = pulse_energy(device, g, jnp.array([-1, -5, -40]))

    np.testing.assert_allclose(energy, np.full(3, 30e-12), rtol=1e-5)
    np.testing.assert_allclose(reset_energy(device, g), np.full(3, 30e-12), rtol=1e-5)


def test_reset_energy_through_wrappers():
    device = Retention(Endurance(PCM(reset_pulse=ProgrammingPulse(2.0, 100e-9, current=300e-6))))

    energy = reset_energy(device, jnp.zeros((2, 3)))

    assert energy.shape == (2, 3)
    np.testing.assert_allclose(energy, np.full((2, 3), 2.0 * 300e-6 * 100e-9), rtol=1e-6)


def test_gate_pulse_energy_of_fefet_preset():
    # 3.65 V at the assumed 100 nA gate current for 75 ns: 2.7375e-14 J per LTP pulse.
    device = preset("hzo_fefet")

    energy = float(pulse_energy(device, device.g_max, 1))

    np.testing.assert_allclose(energy, 3.65 * 100e-9 * 75e-9, rtol=1e-5)


# Pulse counts as each device applies them.


def test_ideal_counts_fractional_pulses():
    device = ideal()

    energy = float(pulse_energy(device, 10e-6, 0.5))

    np.testing.assert_allclose(energy, 0.5 * 10e-6 * 100e-9, rtol=1e-6)


def test_pulsed_counts_rounded_pulses(key):
    device = PulsedDevice()
    counts = jnp.array([0.4, 1.4, 2.6, -1.6])
    one_pulse = 1.0 * 10e-6 * 100e-9

    energy = pulse_energy(device, jnp.full(4, 10e-6), counts)
    moved = device.apply_pulses(device.program(jnp.full(4, 10e-6), key=key), counts, key=key).g

    np.testing.assert_allclose(energy, one_pulse * np.array([0, 1, 3, 2]), rtol=1e-6)
    # The device leaves the count that rounds to 0 untouched, which matches its zero energy.
    assert float(moved[0]) == float(device.program(jnp.full(4, 10e-6), key=key).g[0])


def test_compact_counts_started_pulses():
    device = CompactDevice(VTEAM(), set_voltage=-0.3, reset_voltage=0.5, pulse_width=1e-9)
    g = 1e-4

    energy = pulse_energy(device, g, jnp.array([1.2, -0.5]))

    np.testing.assert_allclose(energy, [2 * 0.09 * g * 1e-9, 0.25 * g * 1e-9], rtol=1e-6)


# Wrappers and presets.


def test_wrappers_delegate_pulses():
    inner = PulsedDevice(potentiation_pulse=ProgrammingPulse(2.0, 1e-6), depression_pulse=ProgrammingPulse(-3.0, 1e-6))
    wrapped = Endurance(Retention(inner))
    g = jnp.array([1e-6, 5e-6])
    counts = jnp.array([2, -1])

    assert wrapped.potentiation_pulse is inner.potentiation_pulse
    assert wrapped.depression_pulse is inner.depression_pulse
    np.testing.assert_array_equal(pulse_energy(wrapped, g, counts), pulse_energy(inner, g, counts))


def test_pcm_pulses_are_set_and_reset():
    device = PCM()

    assert device.potentiation_pulse is device.set_pulse
    assert device.depression_pulse is device.reset_pulse


@pytest.mark.parametrize("name", list_presets())
def test_every_preset_has_pulses(name):
    device = preset(name)

    assert isinstance(device.potentiation_pulse, ProgrammingPulse)
    assert isinstance(device.depression_pulse, ProgrammingPulse)
    assert float(device.potentiation_pulse.width) > 0
    assert float(device.depression_pulse.width) > 0


@pytest.mark.parametrize(
    ("name", "up", "down"),
    [
        ("ag_a_si", (3.2, 300e-6), (-2.8, 300e-6)),
        ("taox_hfox", (1.6, 50e-9), (1.6, 50e-9)),
        ("pcmo", (-2.0, 1e-3), (2.0, 1e-3)),
        ("alox_hfo2", (0.9, 100e-6), (-1.0, 100e-6)),
        ("gst_pcm", (0.7, 6e-6), (3.0, 125e-9)),
        ("epiram", (5.0, 5e-6), (-3.0, 5e-6)),
        ("hzo_fefet", (3.65, 75e-9), (-2.95, 75e-9)),
    ],
)
def test_neurosim_preset_pulses_match_table(name, up, down):
    device = preset(name)

    assert (device.potentiation_pulse.voltage, device.potentiation_pulse.width) == up
    assert (device.depression_pulse.voltage, device.depression_pulse.width) == down


@pytest.mark.parametrize("name", ["aihwkit_reram_es", "aihwkit_reram_sb", "aihwkit_capacitor", "aihwkit_ecram", "aihwkit_pcm"])
def test_aihwkit_presets_mark_pulses_assumed(name):
    assumed = " ".join(preset_info(name).assumed)

    assert "pulse" in assumed.lower()


def test_pulses_leave_pulse_response_unchanged(key):
    plain = PulsedDevice()
    other = PulsedDevice(potentiation_pulse=ProgrammingPulse(5.0, 1e-3), depression_pulse=ProgrammingPulse(-5.0, 1e-3))
    state = plain.program(jnp.full(6, 12e-6), key=key)
    counts = jnp.array([3, -2, 0, 7, -7, 1])

    moved_plain = plain.apply_pulses(state, counts, key=key).g
    moved_other = other.apply_pulses(state, counts, key=key).g

    np.testing.assert_array_equal(moved_plain, moved_other)


# Transformations.


def test_energy_under_jit_matches_eager():
    device = Endurance(Retention(preset("alox_hfo2")))
    g = jnp.linspace(0.0, device.g_max, 7)
    counts = jnp.array([-3, -1, 0, 1, 2, 5, 16])

    eager = pulse_energy(device, g, counts)
    compiled = jax.jit(pulse_energy)(device, g, counts)

    np.testing.assert_allclose(compiled, eager, rtol=1e-6)


def test_energy_vmap_over_rows_and_pulse_voltage():
    g = jnp.full((3, 4), 10e-6)
    counts = jnp.tile(jnp.array([1, -1, 2, 0]), (3, 1))
    device = ideal()

    per_row = jax.vmap(lambda g_row, n_row: pulse_energy(device, g_row, n_row))(g, counts)
    voltages = jnp.array([0.5, 1.0, 2.0])
    per_voltage = jax.vmap(lambda v: pulse_energy(ideal(v, 100e-9, -v, 100e-9), 10e-6, 1))(voltages)

    np.testing.assert_allclose(per_row, pulse_energy(device, g, counts), rtol=1e-6)
    np.testing.assert_allclose(per_voltage, voltages**2 * 10e-6 * 100e-9, rtol=1e-5)


def test_energy_gradient_in_conductance():
    device = ideal(voltage=1.5, width=200e-9)

    gradient = jax.grad(lambda g: jnp.sum(pulse_energy(device, g, jnp.array([3.0, -2.0]))))(jnp.full(2, 5e-6))

    assert np.all(np.isfinite(gradient))
    np.testing.assert_allclose(gradient, [3 * 1.5**2 * 200e-9, 2 * 1.0 * 100e-9], rtol=1e-5)


def test_energy_gradient_in_pulse_parameters():
    # Array leaves, because filter_grad differentiates arrays only.
    device = ideal(jnp.asarray(1.5), jnp.asarray(200e-9), jnp.asarray(-1.0), jnp.asarray(100e-9))
    g = 5e-6

    gradient = eqx.filter_grad(lambda d: pulse_energy(d, g, 2.0))(device)

    np.testing.assert_allclose(gradient.potentiation_pulse.voltage, 2 * 2 * 1.5 * g * 200e-9, rtol=1e-5)
    np.testing.assert_allclose(gradient.potentiation_pulse.width, 2 * 1.5**2 * g, rtol=1e-5)
    assert float(gradient.depression_pulse.voltage) == 0.0


def test_current_pulse_gradient_is_zero_in_conductance():
    gradient = jax.grad(lambda g: jnp.sum(pulse_energy(PCM(), g, 2.0)))(jnp.full(3, 5e-6))

    np.testing.assert_array_equal(gradient, np.zeros(3))


# Input checks.


@pytest.mark.parametrize(
    ("build", "match"),
    [
        (lambda: ProgrammingPulse(1.0, 0.0), "width"),
        (lambda: ProgrammingPulse(1.0, -1e-9), "width"),
        (lambda: ProgrammingPulse(float("nan"), 1e-9), "voltage"),
        (lambda: ProgrammingPulse(1.0, 1e-9, current=-1e-6), "current"),
        (lambda: IdealDevice(potentiation_pulse=(1.0, 1e-7)), "potentiation_pulse"),
        (lambda: PulsedDevice(depression_pulse=None), "depression_pulse"),
        (lambda: PCM(set_pulse=1.0), "set_pulse"),
    ],
)
def test_invalid_pulses_raise(build, match):
    with pytest.raises(ValueError, match=match):
        build()


def test_energy_rejects_bad_input():
    with pytest.raises(ValueError, match="conductance g"):
        pulse_energy(IdealDevice(), -1e-6, 1)
    with pytest.raises(ValueError, match="n_pulses"):
        pulse_energy(IdealDevice(), 1e-6, float("nan"))
    with pytest.raises(ValueError, match="no programming pulses"):
        pulse_energy(Retention(PulselessDevice()), 1e-6, 1)


def test_reset_energy_needs_pcm():
    with pytest.raises(ValueError, match="needs a PCM device"):
        reset_energy(Endurance(IdealDevice()), 1e-6)


# Wear: worn and stuck devices.


# Weibull cycles to failure with scale 1e3 and shape 4: P(N_f <= 1) = 1e-12, so no device has failed after
# programming, and P(N_f > 1e5) = exp(-1e8), so all have failed after 1e5 pulses. The window starts
# closing after 10 cycles, by 0.1 per decade.
FAILING = dict(onset_cycles=10.0, closure_per_decade=0.1, failure_scale=1e3, failure_shape=4.0, count="pulses")


def failing_device(**settings):
    return Endurance(IdealDevice(), **{**FAILING, **settings})


def test_wear_none_at_start_all_stuck_eventually(key):
    device = failing_device()
    state = device.program(jnp.full(N_DEVICES, 12.5e-6), key=key)

    worn_start, stuck_start = wear_state(device, state)
    state = device.apply_pulses(state, jnp.full(N_DEVICES, 100_000), key=key)
    worn_end, stuck_end = wear_state(device, state)

    assert not bool(jnp.any(worn_start))
    assert not bool(jnp.any(stuck_start))
    assert bool(jnp.all(worn_end))
    assert bool(jnp.all(stuck_end))


def test_stuck_share_follows_weibull(key):
    device = failing_device()
    state = device.program(jnp.full(N_DEVICES, 12.5e-6), key=key)
    # 999 pulses after one programming cycle: 1000 cycles, the Weibull scale, so P(stuck) = 1 - 1/e.
    state = device.apply_pulses(state, jnp.full(N_DEVICES, 999), key=key)

    _, stuck = wear_state(device, state)

    expected = 1.0 - np.exp(-1.0)
    tolerance = Z * np.sqrt(expected * (1 - expected) / N_DEVICES)
    assert abs(float(jnp.mean(stuck)) - expected) < tolerance
    np.testing.assert_array_equal(stuck, state.failed)


def test_worn_threshold_on_closed_share(key):
    # Onset 10 cycles, 0.1 per decade: after 1000 cycles the window has closed by 0.2.
    device = failing_device(failure_distribution=None, initial_cycles=999.0)
    state = device.program(jnp.full(5, 12.5e-6), key=key)

    worn_low, stuck = wear_state(device, state, closure_threshold=0.1)
    worn_high, _ = wear_state(device, state, closure_threshold=0.25)

    assert bool(jnp.all(worn_low))
    assert not bool(jnp.any(worn_high))
    assert not bool(jnp.any(stuck))


def test_worn_share_matches_window(key):
    device = failing_device(failure_distribution=None, initial_cycles=999.0)
    state = device.program(jnp.full(3, 12.5e-6), key=key)

    low, high = device.window(state.cycles)
    closed_share = 1.0 - (high - low) / (device.g_max - device.g_min)

    np.testing.assert_allclose(closed_share, np.full(3, 0.2), rtol=1e-5)


NESTED = {
    "endurance_retention": lambda: Endurance(Retention(IdealDevice()), **FAILING),
    "retention_endurance": lambda: Retention(Endurance(IdealDevice(), **FAILING)),
    "retention_retention_endurance": lambda: Retention(Retention(Endurance(IdealDevice(), **FAILING))),
}


@pytest.mark.parametrize("name", list(NESTED))
def test_wear_through_nested_wrappers(name, key):
    device = NESTED[name]()
    state = device.program(jnp.full(N_DEVICES, 12.5e-6), key=key)
    worn_start, stuck_start = wear_state(device, state)
    state = device.apply_pulses(state, jnp.full(N_DEVICES, 100_000), key=key)

    worn, stuck = wear_state(device, state)

    assert not bool(jnp.any(worn_start | stuck_start))
    assert bool(jnp.all(worn))
    assert bool(jnp.all(stuck))


def test_inner_endurance_level_reports_stuck(key):
    # The outer level never fails; the inner one fails every device after 1e5 pulses.
    device = Endurance(failing_device(), failure_distribution=None, count="pulses")
    state = device.program(jnp.full(100, 12.5e-6), key=key)
    state = device.apply_pulses(state, jnp.full(100, 100_000), key=key)

    _, stuck = wear_state(device, state)

    assert bool(jnp.all(stuck))
    assert not bool(jnp.any(state.failed))


@pytest.mark.parametrize("device", [IdealDevice(), PCM(), Retention(PulsedDevice())], ids=["ideal", "pcm", "retention"])
def test_wear_without_endurance_is_false(device, key):
    state = device.program(jnp.full((2, 3), 5e-6), key=key)

    worn, stuck = wear_state(device, state)

    assert worn.shape == (2, 3)
    assert stuck.shape == (2, 3)
    assert not bool(jnp.any(worn | stuck))


def test_wear_under_jit_and_vmap(key):
    device = failing_device()
    state = device.program(jnp.full((4, 50), 12.5e-6), key=key)
    state = device.apply_pulses(state, jnp.full((4, 50), 999), key=key)

    eager = wear_state(device, state)
    compiled = jax.jit(wear_state)(device, state)
    mapped = jax.vmap(lambda row: wear_state(device, row))(state)

    for expected, got in zip(eager, compiled, strict=True):
        np.testing.assert_array_equal(got, expected)
    for expected, got in zip(eager, mapped, strict=True):
        np.testing.assert_array_equal(got, expected)


def test_wear_rejects_bad_input(key):
    device = failing_device()
    plain_state = IdealDevice().program(jnp.full(3, 5e-6), key=key)
    state = device.program(jnp.full(3, 5e-6), key=key)

    with pytest.raises(ValueError, match="EnduranceState"):
        wear_state(device, plain_state)
    with pytest.raises(ValueError, match="closure_threshold"):
        wear_state(device, state, closure_threshold=1.0)
    with pytest.raises(ValueError, match="closure_threshold"):
        wear_state(device, state, closure_threshold=-0.1)
