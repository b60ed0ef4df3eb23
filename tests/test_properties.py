"""Property tests (hypothesis) of the ideal tile, the PCM model and the quantizer."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from xbar.crossbar import Tile, quantize_symmetric
from xbar.devices import PCM, IdealDevice

G_MAX = 25e-6  # S
EPS32 = float(np.finfo(np.float32).eps)
SETTINGS = settings(max_examples=40, deadline=None)

# Values up to 1e3 in magnitude, with magnitudes below 1e-6 replaced by 0. The tile works in physical units
# (0.2 V times conductances down to 1e-11 S), so smaller values would push currents into float32's subnormal
# range, where the relative error bound below does not hold.
value = st.floats(-1e3, 1e3, width=32, allow_subnormal=False).map(lambda v: 0.0 if abs(v) < 1e-6 else v)


@st.composite
def product_problem(draw):
    rows = draw(st.integers(1, 40))
    columns = draw(st.integers(1, 40))
    batch = tuple(draw(st.lists(st.integers(1, 3), min_size=0, max_size=2)))
    weights = draw(hnp.arrays(np.float32, (rows, columns), elements=value))
    inputs = draw(hnp.arrays(np.float32, (*batch, rows), elements=value))
    deltas = draw(hnp.arrays(np.float32, (*batch, columns), elements=value))
    return weights, inputs, deltas


def error_bound(x, w):
    """(M + 8) eps32 (|x| @ |W|) elementwise, with M the summed length.

    First-order rounding analysis: M - 1 roundings in the sum, and about seven in the DAC scaling, the weight
    mapping, the device product and the output gain, each relative to |x_i| |W_ij|.
    """
    x64, w64 = np.asarray(x, np.float64), np.asarray(w, np.float64)
    return (w64.shape[0] + 8) * EPS32 * (np.abs(x64) @ np.abs(w64))


@jax.jit
def ideal_products(weights, inputs, deltas):
    """Return x @ W and d @ W.T through an ideal tile.

    Compiled as one program per shape, because eager dispatch compiles every primitive for every new shape,
    which takes several times longer. The eager path is checked at a fixed shape in test_tile.py.
    """
    tile = Tile()
    key = jax.random.key(0)
    read = tile.read(tile.program(weights, key=key), 0.0, key=key)
    return tile.matmul(read, inputs), tile.matmul_transposed(read, deltas)


@SETTINGS
@given(problem=product_problem())
def test_ideal_tile_reproduces_matmul(problem):
    weights, inputs, deltas = problem
    y, y_t = ideal_products(weights, inputs, deltas)
    y = np.asarray(y, np.float64)
    y_t = np.asarray(y_t, np.float64)

    assert y.shape == (*inputs.shape[:-1], weights.shape[1])
    assert y_t.shape == (*deltas.shape[:-1], weights.shape[0])
    assert np.all(np.abs(y - inputs.astype(np.float64) @ weights) <= error_bound(inputs, weights))
    assert np.all(np.abs(y_t - deltas.astype(np.float64) @ weights.T) <= error_bound(deltas, weights.T))


# Fixed array lengths keep one compilation per function across examples.
N_DEVICES = 16
target = st.one_of(
    st.sampled_from([0.0, G_MAX, -1e-6, 2 * G_MAX]),
    st.floats(-1e-5, 4e-5),
)
targets = st.lists(target, min_size=N_DEVICES, max_size=N_DEVICES)
seed = st.integers(0, 2**31 - 1)


@SETTINGS
@given(targets=targets, seed=seed, prog_noise_scale=st.floats(0.0, 20.0))
def test_pcm_programmed_conductance_never_negative(targets, seed, prog_noise_scale):
    device = PCM(prog_noise_scale=prog_noise_scale)
    state = device.program(jnp.asarray(targets), key=jax.random.key(seed))

    assert np.all(np.asarray(state.g) >= 0.0)
    assert np.all(np.asarray(state.nu) >= 0.0)


@SETTINGS
@given(
    targets=targets,
    seed=seed,
    drift_scale=st.floats(0.0, 10.0),
    times=st.lists(st.floats(0.0, 1e10), min_size=7, max_size=7),
)
def test_pcm_drift_never_increases_conductance(targets, seed, drift_scale, times):
    device = PCM(drift_scale=drift_scale)
    state = device.program(jnp.asarray(targets), key=jax.random.key(seed))
    grid = jnp.asarray(np.sort(np.concatenate([[0.0], times])))
    drifted = np.asarray(jax.vmap(lambda t: device.drift(state, t))(grid))

    np.testing.assert_array_equal(drifted[0], state.g)
    assert np.all(np.diff(drifted, axis=0) <= 0)


@SETTINGS
@given(nu=st.floats(0.0, 10.0), t0=st.floats(1e-3, 1e4))
def test_drift_factor_exactly_one_at_time_zero(nu, t0):
    assert float(PCM(t0=t0).drift_factor(nu, 0.0)) == 1.0


@SETTINGS
@given(targets=targets, seed=seed, t=st.floats(0.0, 1e10), read_noise_scale=st.floats(0.0, 20.0))
def test_pcm_read_never_negative(targets, seed, t, read_noise_scale):
    device = PCM(read_noise_scale=read_noise_scale)
    key_program, key_read = jax.random.split(jax.random.key(seed))
    state = device.program(jnp.asarray(targets), key=key_program)

    assert np.all(np.asarray(device.read(state, t, key=key_read)) >= 0.0)


@jax.jit
def pulsed_conductance(targets, counts, key):
    """Program PCM devices and apply pulse counts, compiled once for all examples (the pulse loop is slow to trace)."""
    device = PCM()
    key_program, key_pulses = jax.random.split(key)
    state = device.program(targets, key=key_program)
    return state.g, device.apply_pulses(state, counts, key=key_pulses, max_pulses=30).g


@SETTINGS
@given(
    targets=st.lists(st.floats(0.0, G_MAX), min_size=N_DEVICES, max_size=N_DEVICES),
    counts=st.lists(st.integers(-5, 30), min_size=N_DEVICES, max_size=N_DEVICES),
    seed=seed,
)
def test_pcm_pulses_stay_in_range(targets, counts, seed):
    programmed, pulsed = pulsed_conductance(jnp.asarray(targets), jnp.asarray(counts), jax.random.key(seed))
    pulsed = np.asarray(pulsed)
    touched = np.asarray(counts) != 0

    # Write noise may leave a device above g_max (the model clamps only at 0 S), but SET and RESET clip to
    # [0, g_max], and devices without pulses keep their conductance.
    assert np.all(pulsed[touched] >= 0.0)
    assert np.all(pulsed[touched] <= np.float32(G_MAX))
    np.testing.assert_array_equal(pulsed[~touched], np.asarray(programmed)[~touched])


@SETTINGS
@given(
    targets=st.lists(st.floats(0.0, G_MAX), min_size=N_DEVICES, max_size=N_DEVICES),
    counts=st.lists(st.floats(-1e3, 1e3), min_size=N_DEVICES, max_size=N_DEVICES),
)
def test_ideal_pulses_stay_in_range(targets, counts):
    device = IdealDevice()
    key = jax.random.key(0)
    state = device.program(jnp.asarray(targets), key=key)
    g = np.asarray(device.apply_pulses(state, jnp.asarray(counts), key=key).g)
    expected = np.clip(np.asarray(state.g, np.float64) + np.asarray(counts) * device.pulse_step, 0.0, G_MAX)

    np.testing.assert_allclose(g, expected, rtol=1e-5, atol=1e-6 * device.pulse_step)


@SETTINGS
@given(
    x=hnp.arrays(np.float32, 32, elements=st.floats(-1e3, 1e3, width=32)),
    full_scale=st.floats(1e-3, 1e3),
    bits=st.integers(1, 12),
)
def test_quantizer_output_on_grid_and_in_range(x, full_scale, bits):
    q = np.asarray(quantize_symmetric(jnp.asarray(x), full_scale, bits), np.float64)

    assert np.all(np.abs(q) <= full_scale * (1 + 1e-6))
    if bits == 1:
        assert np.all(np.isclose(np.abs(q), full_scale, rtol=1e-6))
        return
    step = full_scale / (2 ** (bits - 1) - 1)
    np.testing.assert_allclose(q / step, np.round(q / step), atol=1e-3)
    inside = np.abs(x) <= full_scale
    assert np.all(np.abs(q - x)[inside] <= 0.5 * step * (1 + 1e-4) + 1e-6 * full_scale)
