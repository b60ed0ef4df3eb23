"""A tile with wire resistance: its products solve both arrays as circuits, in every configuration."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from xbar.config import ConfigError, build_tile, parse_config
from xbar.crossbar import ADC, Parasitics, Tile, compensate_ir_drop, solve_crossbar
from xbar.devices import PCM, IdealDevice
from xbar.studies import run_study

DEVICE = IdealDevice(g_min=1e-6, g_max=100e-6)


def relative_error(y, reference):
    return float(jnp.linalg.norm(y - reference) / jnp.linalg.norm(reference))


@pytest.fixture
def problem(rng):
    weights = rng.uniform(-1, 1, (24, 16)).astype(np.float32)
    x = rng.uniform(-1, 1, (5, 24)).astype(np.float32)
    return weights, x


def test_product_subtracts_solved_arrays(problem, key):
    weights, x = problem
    wires = Parasitics(word_line=2.0, bit_line=3.0, driver=50.0, sense=20.0)
    tile = Tile(device=DEVICE, parasitics=wires)
    read = tile.read(tile.program(weights, key=key), 0.0, key=key)
    y = tile.matmul(read, x)

    volts = x * tile.read_voltage
    current = solve_crossbar(read.g_pos, volts, wires).currents - solve_crossbar(read.g_neg, volts, wires).currents
    gain = float(jnp.max(jnp.abs(weights))) / (tile.read_voltage * (DEVICE.g_max - DEVICE.g_min))
    np.testing.assert_allclose(y, current * gain, rtol=1e-5, atol=1e-6)
    # The wires matter here: the product is measurably off the ideal one, and below it in size.
    assert 1e-3 < relative_error(y, x @ weights) < 0.5
    assert float(jnp.linalg.norm(y)) < float(jnp.linalg.norm(x @ weights))


def test_negligible_wires_match_ideal_tile(problem, key):
    weights, x = problem
    ideal_tile = Tile(device=DEVICE)
    wired_tile = Tile(device=DEVICE, parasitics=Parasitics(1e-6))
    y_ideal = ideal_tile.forward(weights, x, key=key)
    y_wired = wired_tile.forward(weights, x, key=key)
    np.testing.assert_allclose(y_wired, y_ideal, rtol=1e-4, atol=1e-5)


def test_transposed_product_drives_columns(problem, key):
    weights, _ = problem
    d = np.random.default_rng(3).uniform(-1, 1, (3, 16)).astype(np.float32)
    wires = Parasitics(word_line=1.0, bit_line=4.0)
    tile = Tile(device=DEVICE, parasitics=wires)
    read = tile.read(tile.program(weights, key=key), 0.0, key=key)
    y = tile.matmul_transposed(read, d)
    volts = d * tile.read_voltage
    current = (
        solve_crossbar(read.g_pos, volts, wires, transposed=True).currents
        - solve_crossbar(read.g_neg, volts, wires, transposed=True).currents
    )
    gain = float(jnp.max(jnp.abs(weights))) / (tile.read_voltage * (DEVICE.g_max - DEVICE.g_min))
    np.testing.assert_allclose(y, current * gain, rtol=1e-5, atol=1e-6)
    assert 1e-3 < relative_error(y, d @ weights.T) < 0.5


def test_compensation_reduces_error(key):
    rng = np.random.default_rng(11)
    weights = rng.uniform(-1, 1, (64, 64)).astype(np.float32)
    x = rng.uniform(-1, 1, (32, 64)).astype(np.float32)
    wires = Parasitics(0.3)
    plain = relative_error(Tile(device=DEVICE, parasitics=wires).forward(weights, x, key=key), x @ weights)
    compensated = relative_error(
        Tile(device=DEVICE, parasitics=wires, ir_compensation=True).forward(weights, x, key=key), x @ weights
    )
    assert plain > 0.01
    assert compensated < 0.4 * plain


def test_compensation_meets_calibration_input():
    # With every row at the calibration voltage, each device passes its target current after compensation.
    target = jnp.asarray(np.random.default_rng(5).uniform(1e-6, 50e-6, (16, 12)), jnp.float32)
    wires = Parasitics(0.5)
    g = compensate_ir_drop(target, wires, 0.1, iterations=12)
    seen = solve_crossbar(g, jnp.full(16, 0.1), wires, node_voltages=True).device_voltages
    np.testing.assert_allclose(g * seen, target * 0.1, rtol=1e-4)
    assert bool(jnp.all(g >= target))


def test_short_term_noise_uses_device_voltages(problem, key):
    weights, x = problem
    # The noise of each output is drawn from sum_i (V_ij G_ij)^2 with the voltage V_ij across each device,
    # so the spread over many products matches that variance.
    wires = Parasitics(5.0)
    tile = Tile(device=DEVICE, parasitics=wires, short_term_noise=0.05)
    read = tile.read(tile.program(weights, key=key), 0.0, key=key)
    one = x[:1]
    keys = jax.random.split(jax.random.key(1), 2000)
    samples = jax.vmap(lambda k: tile.matmul(read, one, key=k))(keys)[:, 0]
    volts = one * tile.read_voltage
    variance = 0.0
    for g in (read.g_pos, read.g_neg):
        seen = solve_crossbar(g, volts, wires, node_voltages=True).device_voltages[0]
        variance = variance + jnp.sum((seen * g) ** 2, axis=0)
    gain = float(jnp.max(jnp.abs(weights))) / (tile.read_voltage * (DEVICE.g_max - DEVICE.g_min))
    expected_std = np.sqrt(np.asarray(variance)) * 0.05 * gain
    measured_std = np.std(np.asarray(samples), axis=0, ddof=1)
    # The sample std of n = 2000 normals has a relative standard error of 1/sqrt(2 (n - 1)) = 1.6 %;
    # 16 outputs at 4 standard errors each stay inside 7 %.
    np.testing.assert_allclose(measured_std, expected_std, rtol=0.07)


def test_gradient_reaches_wire_resistance(problem, key):
    weights, x = problem

    def loss(resistance):
        tile = Tile(device=DEVICE, parasitics=Parasitics(resistance))
        return jnp.sum(tile.forward(weights, x, key=key) ** 2)

    grad = jax.grad(loss)(2.0)
    step = 0.01
    finite_difference = (loss(2.0 + step) - loss(2.0 - step)) / (2 * step)
    # More wire resistance shrinks the outputs, so the loss falls. Central difference in float32:
    # rounding of the loss (about 1e-7 of it) over 2 * step keeps the two within a few percent.
    assert float(grad) < 0
    np.testing.assert_allclose(grad, finite_difference, rtol=0.03)


def test_wired_pcm_tile_jit_vmap(problem, key):
    weights, x = problem
    tile = Tile(device=PCM(), parasitics=Parasitics(1.0), adc=ADC(bits=8, current_range=5e-5), drift_compensation=True)
    forward = jax.jit(lambda t, k: tile.forward(weights, x, t, key=k))
    ys = jax.vmap(forward, in_axes=(0, None))(jnp.array([1.0, 3600.0, 86400.0]), key)
    assert ys.shape == (3, 5, 16)
    assert bool(jnp.all(jnp.isfinite(ys)))


def test_tile_rejects_compensation_without_wires():
    with pytest.raises(ValueError, match="ir_compensation needs wire resistance"):
        Tile(ir_compensation=True)
    with pytest.raises(ValueError, match="parasitics must be a Parasitics"):
        Tile(parasitics=1.0)


# Study files.

WIRED = """
[device]
model = "ideal"
g_min = 1e-6
g_max = 100e-6
[array]
rows = 8
cols = 8
[parasitics]
word_line = 1.0
bit_line = 2.0
driver = 10.0
[workload]
batch = 4
[[sweep.axes]]
key = ["array.rows", "array.cols"]
name = "size"
values = [8, 16]
[[sweep.axes]]
key = ["parasitics.word_line", "parasitics.bit_line"]
name = "wire_resistance"
values = [0.5, 5.0]
[[sweep.axes]]
key = "parasitics.compensation"
name = "compensation"
values = [false, true]
"""


def test_config_builds_a_wired_tile():
    config = parse_config(WIRED)
    tile = build_tile(config.sections)
    assert tile.parasitics == Parasitics(word_line=1.0, bit_line=2.0, driver=10.0, sense=0.0)
    size, wires, compensation = config.axes
    assert size.keys == ("array.rows", "array.cols")
    assert not size.vectorized
    assert wires.vectorized and wires.units == "ohm"
    assert not compensation.vectorized
    assert build_tile(parse_config("[array]\nrows = 4").sections).parasitics is None


def test_wired_study_orders_errors():
    result = run_study(parse_config(WIRED))
    error = result["mvm_error"].isel(seed=0)
    assert error.dims == ("size", "wire_resistance", "compensation")
    plain = error.sel(compensation=False)
    # Larger arrays and more resistive wires lose more signal.
    assert float(plain.sel(size=16, wire_resistance=5.0)) > float(plain.sel(size=8, wire_resistance=5.0))
    assert float(plain.sel(size=16, wire_resistance=5.0)) > float(plain.sel(size=16, wire_resistance=0.5))
    assert float(error.sel(size=16, wire_resistance=0.5, compensation=True)) < float(plain.sel(size=16, wire_resistance=0.5))


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("[parasitics]\nword_line = 1.0", "must both be > 0"),
        ("[parasitics]\ndriver = 10.0", "parasitics.driver needs wire resistance"),
        ("[parasitics]\ncompensation = true", "parasitics.compensation needs wire resistance"),
        ("[parasitics]\nword_line = -1.0\nbit_line = 1.0", "must be >= 0"),
        (
            '[parasitics]\nword_line = 1.0\nbit_line = 1.0\n[[sweep.axes]]\nkey = "parasitics.word_line"\nvalues = [0.0, 1.0]',
            "must both be > 0",
        ),
        ('[[sweep.axes]]\nkey = ["array.rows", "array.cols"]\nvalues = [4, 8]', "needs a name"),
        ('[[sweep.axes]]\nkey = ["array.rows", "read.time"]\nname = "x"\nvalues = [4, 8]', "mix vectorized and structural"),
        ('[[sweep.axes]]\nkey = ["array.rows", "array.rows"]\nname = "x"\nvalues = [4, 8]', "repeated entry"),
        ('[[sweep.axes]]\nkey = []\nname = "x"\nvalues = [4, 8]', "must name a setting"),
        ('[[sweep.axes]]\nkey = ["array.rows", "array.colz"]\nname = "x"\nvalues = [4, 8]', 'did you mean "cols"'),
        (
            '[[sweep.axes]]\nkey = ["array.rows", "array.cols"]\nname = "size"\nvalues = [4, 8]\n'
            '[[sweep.axes]]\nkey = "array.cols"\nvalues = [2, 3]',
            "swept twice",
        ),
    ],
)
def test_bad_wire_settings_rejected(text, expected):
    with pytest.raises(ConfigError, match=expected):
        parse_config(text)
