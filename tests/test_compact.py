"""Tests of the compact memristor models and their integrator."""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from xbar.devices.compact import ORDER, VTEAM, LinearIonDrift, StanfordPKU, Yakopcic, integrate, windows, yakopcic_set_b

SETTINGS = settings(max_examples=25, deadline=None)
N_SAMPLES = 33  # waveform length of the property tests: one compiled shape for all examples


def sine(frequency, amplitude=1.0, n=4000, periods=1.0):
    """Return (voltage, dt) for `periods` periods of a sine sampled at n + 1 points."""
    t = np.linspace(0.0, periods / frequency, n + 1)
    return jnp.asarray(amplitude * np.sin(2 * np.pi * frequency * t), jnp.float32), periods / frequency / n


# Every model with a drive that moves its state within the listed time: (model, pulse V, dt s).
MODELS = {
    "hp": (LinearIonDrift(), 1.0, 1e-4),
    "hp_joglekar": (LinearIonDrift(window="joglekar"), 1.0, 1e-4),
    "hp_biolek": (LinearIonDrift(window="biolek"), 1.0, 1e-4),
    "hp_prodromakis": (LinearIonDrift(window="prodromakis"), 1.0, 1e-4),
    "vteam_linear": (VTEAM(x_init_normalized=0.5), 0.5, 1e-11),
    "vteam_exponential": (VTEAM(x_init_normalized=0.5, resistance_form="exponential"), 0.5, 1e-11),
    "yakopcic_a": (Yakopcic(x_init=0.5), 1.0, 1e-6),
    "yakopcic_b": (yakopcic_set_b(), 1.0, 1e-3),
    "stanford": (StanfordPKU(x_init=1e-9), 1.6, 1e-11),
}


def as_arrays(model):
    """Turn every float field into a jax array, so changing a value does not recompile."""
    return jax.tree_util.tree_map(lambda leaf: jnp.asarray(leaf, jnp.float32), model)


@eqx.filter_jit
def final_state(model, voltage, dt, x0):
    return integrate(model, voltage, dt, x0, output="final")


# The integrator.


def test_integrate_output_shapes():
    model = LinearIonDrift()
    voltage = jnp.ones((9, 4))
    x0 = jnp.full((3, 4), 0.2)

    current, state = integrate(model, voltage, 1e-3, x0)
    assert state.shape == (9, 3, 4)
    assert current.shape == (9, 3, 4)

    current, state = integrate(model, voltage, 1e-3, x0, every=4)
    assert state.shape == (3, 3, 4)

    current, state = integrate(model, voltage, 1e-3, x0, output="final")
    assert state.shape == (3, 4)
    assert current.shape == (3, 4)


def test_integrate_final_and_decimated_match_trajectory():
    model = LinearIonDrift()
    voltage, dt = sine(1.0, n=64)
    _, trajectory = integrate(model, voltage, dt, 0.1)
    _, decimated = integrate(model, voltage, dt, 0.1, every=8)
    current, final = integrate(model, voltage, dt, 0.1, output="final")

    np.testing.assert_array_equal(decimated, trajectory[::8])

    # 64 steps in blocks of 5 give 12 full blocks, so samples 0, 5, ..., 60 and no sample after 60.
    _, remainder = integrate(model, voltage, dt, 0.1, every=5)
    np.testing.assert_array_equal(remainder, trajectory[:61:5])
    np.testing.assert_array_equal(final, trajectory[-1])
    np.testing.assert_allclose(current, voltage[-1] / model.resistance(final), rtol=1e-6)


def test_integrate_broadcasts_waveform_over_devices():
    model = LinearIonDrift()
    amplitudes = jnp.array([0.5, 1.0, -1.0])
    voltage = jnp.outer(jnp.ones(20), amplitudes)
    _, state = integrate(model, voltage, 1e-4, jnp.full((2, 3), 0.3), output="final")
    for column, amplitude in enumerate(amplitudes):
        _, single = integrate(model, jnp.full(20, amplitude), 1e-4, 0.3, output="final")
        np.testing.assert_allclose(state[:, column], single, rtol=1e-6)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (dict(output="all"), "output must be"),
        (dict(every=0), "every must be"),
        (dict(every=2.0), "every must be"),
    ],
)
def test_integrate_rejects_bad_options(kwargs, message):
    with pytest.raises(ValueError, match=message):
        integrate(LinearIonDrift(), jnp.ones(5), 1e-3, 0.1, **kwargs)


def test_integrate_rejects_bad_inputs():
    with pytest.raises(ValueError, match="voltage contains non-finite"):
        integrate(LinearIonDrift(), jnp.array([0.0, jnp.nan]), 1e-3, 0.1)
    with pytest.raises(ValueError, match="dt must be finite and > 0"):
        integrate(LinearIonDrift(), jnp.ones(3), 0.0, 0.1)
    with pytest.raises(ValueError, match="time axis"):
        integrate(LinearIonDrift(), jnp.asarray(1.0), 1e-3, 0.1)


def test_integrator_converges_at_its_order():
    # Error against the closed-form HP solution at 1 Hz for halved steps; float64 keeps rounding far
    # below the truncation error of the coarsest to finest step used here.
    with jax.enable_x64(True):
        model = LinearIonDrift()
        errors = []
        steps = [50, 100, 200, 400]
        for n in steps:
            t = np.linspace(0.0, 0.5, n + 1)
            voltage = jnp.asarray(np.sin(2 * np.pi * t), jnp.float64)
            _, x = integrate(model, voltage, 0.5 / n, 0.1, output="final")
            flux = (1 - np.cos(2 * np.pi * 0.5)) / (2 * np.pi)
            errors.append(abs(float(x) - float(model.closed_form_state(flux))))
        slope = -np.polyfit(np.log(steps), np.log(errors), 1)[0]
    assert abs(slope - ORDER) < 0.1, f"fitted order {slope:.3f}, errors {errors}"


# Physics of each model.


@pytest.mark.parametrize(
    ("frequency", "x_quarter", "x_half"),
    [(1.0, 0.21815, 0.35747), (10.0, 0.11111, 0.12237), (100.0, 0.10111, 0.10221)],
)
def test_hp_matches_closed_form(frequency, x_quarter, x_half):
    voltage, dt = sine(frequency)
    _, x = LinearIonDrift().simulate(voltage, dt)
    assert abs(float(x[1000]) / x_quarter - 1) < 1e-3
    assert abs(float(x[2000]) / x_half - 1) < 1e-3


def test_hp_loop_is_pinched():
    voltage, dt = sine(1.0)
    current, _ = LinearIonDrift().simulate(voltage, dt)
    zero = np.abs(np.asarray(voltage)) == 0
    assert zero.sum() >= 1
    np.testing.assert_array_equal(np.asarray(current)[zero], 0.0)


def test_window_test_points():
    np.testing.assert_allclose(windows.joglekar(jnp.array([0.0, 0.25, 0.5])), [0.0, 0.75, 1.0], atol=1e-7)
    np.testing.assert_allclose(windows.prodromakis(jnp.array([0.5, 0.25, 0.0])), [0.25, 0.1875, 0.0], atol=1e-7)
    assert abs(float(windows.biolek(0.9, 1.0)) - 0.19) < 1e-6
    assert abs(float(windows.biolek(0.9, -1.0)) - 0.99) < 1e-6


def test_stanford_read_resistance():
    model = StanfordPKU()
    for gap, resistance in [(0.2e-9, 541.8), (1.7e-9, 218586.1)]:
        measured = 0.1 / float(model.current(gap, 0.1))
        assert abs(measured / resistance - 1) < 1e-4


@pytest.mark.parametrize(
    ("model", "amplitude"),
    [
        (VTEAM(x_init_normalized=0.5), 0.0199),
        (VTEAM(x_init_normalized=0.5, resistance_form="exponential"), 0.0199),
        (Yakopcic(x_init=0.5), 0.149),
        (yakopcic_set_b(), 0.299),
        (StanfordPKU(x_init=1e-9), 1.0),
    ],
)
def test_no_state_change_below_threshold(model, amplitude):
    # Amplitudes just below the smaller threshold magnitude of each model (VTEAM v_off = 0.02 V,
    # Yakopcic Vn = 0.15 V and 0.3 V, Stanford gamma |V| / tox < F_min up to about 1.05 V).
    voltage, dt = sine(1e3, amplitude, n=200)
    _, x = model.simulate(voltage, dt)
    np.testing.assert_array_equal(np.asarray(x), np.float32(model.x_init))


@pytest.mark.parametrize("name", list(MODELS))
def test_zero_voltage_keeps_state(name):
    model, _, dt = MODELS[name]
    x0 = jnp.linspace(model.x_min, model.x_max, 7)
    _, x = integrate(model, jnp.zeros(50), dt, x0, output="final")
    np.testing.assert_array_equal(x, x0)


@pytest.mark.parametrize("name", list(MODELS))
def test_pulses_move_state_in_opposite_directions(name):
    model, amplitude, dt = MODELS[name]
    up = integrate(model, jnp.full(20, amplitude), dt, model.x_init, output="final")[1] - model.x_init
    down = integrate(model, jnp.full(20, -amplitude), dt, model.x_init, output="final")[1] - model.x_init
    assert float(up) != 0.0
    assert float(down) != 0.0
    assert np.sign(float(up)) == -np.sign(float(down))


@SETTINGS
@given(
    name=st.sampled_from(list(MODELS)),
    samples=st.lists(st.floats(-10.0, 10.0, width=32), min_size=N_SAMPLES, max_size=N_SAMPLES),
    log_dt=st.floats(-12.0, 0.0),
    scale=st.floats(0.1, 10.0),
    start=st.floats(0.0, 1.0),
)
def test_state_stays_bounded(name, samples, log_dt, scale, start):
    model, _, _ = MODELS[name]
    # Scale one rate parameter of each model across two decades to cover parameters in range.
    field = {"hp": "mobility", "vteam": "k_off", "yakopcic": "ap", "stanford": "velocity"}[name.split("_")[0]]
    model = eqx.tree_at(lambda m: getattr(m, field), model, getattr(model, field) * scale)
    model = as_arrays(model)
    x0 = model.x_min + start * (model.x_max - model.x_min)
    current, x = final_state(model, jnp.asarray(samples, jnp.float32), jnp.float32(10.0**log_dt), x0)
    assert np.isfinite(float(x))
    assert not np.isnan(float(current))
    assert float(model.x_min) <= float(x) <= float(model.x_max)


def test_huge_voltage_gives_no_nan():
    voltage = jnp.array([0.0, 1e30, -1e30, 3e38, -3e38])
    for model, _, dt in MODELS.values():
        current, x = integrate(model, voltage, dt, model.x_init)
        assert np.all(np.isfinite(np.asarray(x)))
        assert not np.any(np.isnan(np.asarray(current)))


# Transformations.


@pytest.mark.parametrize("name", list(MODELS))
def test_jit_vmap_grad(name):
    model, amplitude, dt = MODELS[name]
    voltage = jnp.full(10, amplitude)
    eager = integrate(model, voltage, dt, model.x_init, output="final")[1]
    jitted = final_state(model, voltage, dt, model.x_init)[1]
    np.testing.assert_allclose(jitted, eager, rtol=1e-6)

    amplitudes = jnp.array([amplitude, -amplitude])
    mapped = jax.vmap(lambda a: integrate(model, jnp.full(10, a), dt, model.x_init, output="final")[1])(amplitudes)
    np.testing.assert_allclose(mapped[0], eager, rtol=1e-6)

    def final_current(a):
        # Three steps keep every model away from its bounds, where clipping makes the gradient zero.
        return integrate(model, jnp.full(3, a), dt, model.x_init, output="final")[0]

    gradient = jax.grad(final_current)(jnp.float32(amplitude))
    assert np.isfinite(float(gradient))
    assert float(gradient) != 0.0


def test_model_rejects_bad_parameters():
    with pytest.raises(ValueError, match="window must be one of"):
        LinearIonDrift(window="hann")
    with pytest.raises(ValueError, match="resistance_form"):
        VTEAM(resistance_form="cubic")
    with pytest.raises(ValueError, match="k_on must be negative"):
        VTEAM(k_on=1.0)
    with pytest.raises(ValueError, match="eta must be"):
        Yakopcic(eta=0.5)
    with pytest.raises(ValueError, match="x_init must be a gap"):
        StanfordPKU(x_init=5e-9)
