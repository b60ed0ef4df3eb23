"""Cost model of tiles and cores: additive over tiles, linear in products, exact counts, differentiable."""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from xbar.crossbar import ADC, DAC, Core, CoreState, Tile, TileRead, TileState
from xbar.crossbar.slicing import Slicing
from xbar.crossbar.cost import (
    ADC_FOM, COST_VARIABLES, Cost, CostModel, core_cost, programming_cost, tile_cost, tops_per_mm2, tops_per_watt,
)
from xbar.devices import PCM, DeviceState, IdealDevice, pulse_energy
from xbar.validation import run_checks
from xbar.validation._hermes import hermes_cost

ENERGY_PARTS = ("array_read", "dac", "adc", "digital", "buffer", "programming")
AREA_PARTS = ("array", "dac", "adc", "digital")

# Energies are float32 sums of up to a few hundred terms: a relative tolerance of 1e-5 is far above
# their rounding and far below any miscount (one conversion in a few hundred is 1e-3 or more).
RTOL = 1e-5


def ideal_tile(**changes):
    settings_ = {"device": IdealDevice(g_min=1e-6, g_max=25e-6), "read_voltage": 0.3, "read_time": 100e-9,
                 "dac": DAC(bits=6), "adc": ADC(bits=7, current_range=50e-6), "weight_range": 1.0}
    settings_.update(changes)
    return Tile(**settings_)


def random_state(core, shape, key, g_min=1e-6, g_max=25e-6):
    """Return a CoreState of random conductances in [g_min, g_max] for a weight matrix of `shape`.

    The arrays are laid out as `core.program` lays them out: a leading slice axis with several weight
    slices, and one more column per tile with offset weights. The cost reads only the conductances, so
    this skips programming, which compiles for seconds.
    """
    grid = core.grid(shape)
    slicing = core.slicing
    rows, columns = core.tile_shape
    stacked = (*grid, rows, columns + slicing.reference_columns)
    if slicing.weight_slices > 1:
        stacked = (slicing.weight_slices, *stacked)
    key_pos, key_neg = jax.random.split(key)
    g_pos, g_neg = (jax.random.uniform(k, stacked, minval=g_min, maxval=g_max) for k in (key_pos, key_neg))

    def devices(g):
        return DeviceState(g=g, iterations=jnp.ones(g.shape, jnp.int32))

    tiles = TileState(g_pos=devices(g_pos), g_neg=devices(g_neg), weight_scale=jnp.ones(stacked[:-2]),
                      reference_current=jnp.ones(stacked[:-2]))
    weight_scale = jnp.ones(grid) if slicing.stores_levels else None
    return CoreState(tiles=tiles, shape=shape, weight_scale=weight_scale)


def assert_costs_close(actual: Cost, expected: Cost):
    for name in ENERGY_PARTS:
        np.testing.assert_allclose(getattr(actual.energy, name), getattr(expected.energy, name), rtol=RTOL,
                                   err_msg=f"energy.{name}")
    for name in AREA_PARTS:
        np.testing.assert_allclose(getattr(actual.area, name), getattr(expected.area, name), rtol=RTOL,
                                   err_msg=f"area.{name}")
    np.testing.assert_allclose(actual.latency, expected.latency, rtol=RTOL)
    np.testing.assert_allclose(actual.operations, expected.operations, rtol=RTOL)


# Hand-computed costs of one small tile.


def small_read(g_pos, g_neg):
    g_pos, g_neg = jnp.asarray(g_pos), jnp.asarray(g_neg)
    return TileRead(g_diff=g_pos - g_neg, g_square=None, drift_gain=jnp.ones(()), weight_scale=jnp.ones(()),
                    g_pos=g_pos, g_neg=g_neg)


G_POS = np.array([[10e-6, 0.0, 5e-6], [2e-6, 8e-6, 0.0]])
G_NEG = np.array([[0.0, 4e-6, 1e-6], [3e-6, 0.0, 6e-6]])
X = np.array([[0.5, -1.0], [0.25, 0.0]])


def test_amplitude_tile_matches_hand_count():
    tile = ideal_tile()
    model = CostModel()
    cost = tile_cost(tile, small_read(G_POS, G_NEG), X, model=model)

    row_sums = (G_POS + G_NEG).sum(axis=1)
    # The 6-bit DAC rounds each input to a multiple of 1/31 of the full drive.
    drive = np.round(X * 31) / 31
    array = 0.3**2 * 100e-9 * np.sum(drive**2 * row_sums)
    products, rows, columns = 2, 2, 3
    np.testing.assert_allclose(cost.energy.array_read, array, rtol=RTOL)
    np.testing.assert_allclose(cost.energy.dac, products * rows * 6 * model.dac_energy_per_bit, rtol=RTOL)
    np.testing.assert_allclose(cost.energy.adc, products * columns * ADC_FOM * 2**7, rtol=RTOL)
    np.testing.assert_allclose(cost.energy.digital, products * columns * model.add_energy, rtol=RTOL)
    buffer = products * (rows * 6 + columns * 7) * model.buffer_energy_per_bit
    np.testing.assert_allclose(cost.energy.buffer, buffer, rtol=RTOL)
    assert float(cost.energy.programming) == 0.0
    np.testing.assert_allclose(cost.latency, products * (100e-9 + model.adc_time), rtol=RTOL)
    np.testing.assert_allclose(cost.operations, 2 * rows * columns * products)


def test_tile_area_matches_hand_count():
    model = CostModel(cell_area_f2=6.0, feature_size=20e-9)
    cost = tile_cost(ideal_tile(), small_read(G_POS, G_NEG), X, model=model)
    np.testing.assert_allclose(cost.area.array, 2 * 3 * 2 * 6.0 * (20e-9) ** 2, rtol=RTOL)
    np.testing.assert_allclose(cost.area.dac, 2 * 6 * model.dac_area_per_bit, rtol=RTOL)
    np.testing.assert_allclose(cost.area.adc, 3 * model.adc_area, rtol=RTOL)
    np.testing.assert_allclose(cost.area.digital, 3 * model.accumulator_area, rtol=RTOL)


def test_pulse_width_charges_magnitude_share():
    cost = tile_cost(ideal_tile(), small_read(G_POS, G_NEG), X, model=CostModel(input_encoding="pulse_width"))
    row_sums = (G_POS + G_NEG).sum(axis=1)
    # With 6 DAC bits, 0.25 rounds to 8/31 of the full drive and 0.5 to 16/31.
    drive = np.abs(np.round(X * 31) / 31)
    np.testing.assert_allclose(cost.energy.array_read, 0.3**2 * 100e-9 * np.sum(drive * row_sums), rtol=RTOL)


def test_ideal_converters_charged_at_ideal_bits():
    tile = ideal_tile(dac=DAC(), adc=ADC())
    cost = tile_cost(tile, small_read(G_POS, G_NEG), X, model=CostModel(ideal_bits=5))
    np.testing.assert_allclose(cost.energy.adc, 2 * 3 * ADC_FOM * 2**5, rtol=RTOL)
    np.testing.assert_allclose(cost.energy.dac, 2 * 2 * 5 * CostModel().dac_energy_per_bit, rtol=RTOL)


def test_zero_input_has_no_array_energy():
    cost = tile_cost(ideal_tile(), small_read(G_POS, G_NEG), np.zeros((4, 2)))
    assert float(cost.energy.array_read) == 0.0
    # Converters still run for every product.
    assert float(cost.energy.dac) > 0.0
    assert float(cost.energy.adc) > 0.0


def test_read_without_pair_estimates_sum():
    # A read without wire resistance keeps only G+ - G-. With one device of each pair at g_min, as
    # weights_to_conductances maps them, |G+ - G-| + 2 g_min is the exact sum.
    tile = ideal_tile()
    g_min = 1e-6
    g_diff = jnp.asarray(G_POS - G_NEG)
    g_pos, g_neg = g_min + jnp.maximum(g_diff, 0.0), g_min + jnp.maximum(-g_diff, 0.0)
    read = TileRead(g_diff=g_diff, g_square=None, drift_gain=jnp.ones(()), weight_scale=jnp.ones(()))
    assert_costs_close(tile_cost(tile, read, X), tile_cost(tile, small_read(g_pos, g_neg), X))


# Additivity over tiles and products.


def test_core_equals_sum_of_tiles():
    tile = ideal_tile(device=PCM())
    core = Core(tile=tile, tile_shape=(4, 3))
    state = random_state(core, (8, 6), jax.random.key(4))
    x = jax.random.uniform(jax.random.key(5), (5, 8), minval=-1.0, maxval=1.0)
    total = core_cost(core, state, x)

    parts = []
    for row in range(2):
        for column in range(2):
            block = jax.tree_util.tree_map(lambda leaf: leaf[row, column], state.tiles)
            parts.append(tile_cost(tile, block, x[:, 4 * row:4 * row + 4]))
    assert_costs_close(total, sum(parts))
    # Tiles work in parallel: the core takes as long as one tile.
    np.testing.assert_allclose(total.latency, parts[0].latency, rtol=RTOL)


def test_padding_neither_driven_nor_converted():
    model = CostModel()
    tile = ideal_tile()
    core = Core(tile=tile, tile_shape=(4, 3))
    state = random_state(core, (7, 5), jax.random.key(6))
    cost = core_cost(core, state, jnp.ones((2, 7)), model=model)
    # Each of the 2 tile columns has DACs of its own on the 7 used rows.
    np.testing.assert_allclose(cost.energy.dac, 2 * 7 * 2 * 6 * model.dac_energy_per_bit, rtol=RTOL)
    # Two tile rows convert each of the 5 output columns.
    np.testing.assert_allclose(cost.energy.adc, 2 * 2 * 5 * ADC_FOM * 2**7, rtol=RTOL)
    np.testing.assert_allclose(cost.operations, 2 * 7 * 5 * 2)
    # The hardware of all four tiles counts in the area.
    np.testing.assert_allclose(cost.area.adc, 4 * 3 * model.adc_area, rtol=RTOL)


def test_energy_linear_in_products():
    tile = ideal_tile(device=PCM())
    core = Core(tile=tile, tile_shape=(4, 4))
    state = random_state(core, (6, 7), jax.random.key(7))
    x = jax.random.uniform(jax.random.key(8), (3, 6), minval=-1.0, maxval=1.0)
    once = core_cost(core, state, x)
    twice = core_cost(core, state, jnp.concatenate([x, x]))
    for name in ENERGY_PARTS:
        np.testing.assert_allclose(getattr(twice.energy, name), 2 * getattr(once.energy, name), rtol=RTOL)
    np.testing.assert_allclose(twice.latency, 2 * once.latency, rtol=RTOL)
    np.testing.assert_allclose(twice.operations, 2 * once.operations)
    np.testing.assert_allclose(twice.area.total, once.area.total, rtol=RTOL)


@settings(max_examples=10, deadline=None)
@given(split=st.integers(1, 5), extra_axis=st.booleans())
def test_batch_split_adds_up(split, extra_axis):
    core = Core(tile=ideal_tile(), tile_shape=(3, 2))
    state = random_state(core, (5, 3), jax.random.key(9))
    x = jax.random.uniform(jax.random.key(10), (6, 5), minval=-1.0, maxval=1.0)
    whole = core_cost(core, state, x.reshape(2, 3, 5) if extra_axis else x)
    first, second = core_cost(core, state, x[:split]), core_cost(core, state, x[split:])
    chained = first.then(second)
    for name in ENERGY_PARTS:
        np.testing.assert_allclose(getattr(whole.energy, name), getattr(chained.energy, name), rtol=RTOL,
                                   err_msg=f"energy.{name}")
    np.testing.assert_allclose(whole.latency, chained.latency, rtol=RTOL)
    np.testing.assert_allclose(whole.operations, chained.operations)
    # Both parts ran on the same core, so its area counts once.
    np.testing.assert_allclose(whole.area.total, first.area.total, rtol=RTOL)


# Bit-serial inputs and weight slices.


def test_bit_serial_scales_reads():
    tile = ideal_tile(dac=DAC(bits=None))
    shape = (4, 3)
    analog = Core(tile=tile, tile_shape=shape)
    serial = Core(tile=tile, tile_shape=shape, slicing=Slicing(input_bits=5))
    state = random_state(analog, shape, jax.random.key(11))
    # Full-scale inputs set every magnitude bit, so each of the 5 reads drives every row at V_read.
    x = jnp.array([[1.0, -1.0, 1.0, 1.0], [-1.0, -1.0, 1.0, -1.0]])
    one_read, five_reads = core_cost(analog, state, x), core_cost(serial, state, x)

    np.testing.assert_allclose(five_reads.energy.array_read, 5 * one_read.energy.array_read, rtol=RTOL)
    np.testing.assert_allclose(five_reads.energy.adc, 5 * one_read.energy.adc, rtol=RTOL)
    np.testing.assert_allclose(five_reads.latency, 5 * one_read.latency, rtol=RTOL)
    # Each read is a one-bit conversion per row.
    np.testing.assert_allclose(five_reads.energy.dac, 2 * 4 * 5 * CostModel().dac_energy_per_bit, rtol=RTOL)
    np.testing.assert_allclose(five_reads.operations, one_read.operations)


def test_bit_serial_counts_set_bits():
    tile = ideal_tile()
    shape = (2, 3)
    serial = Core(tile=tile, tile_shape=shape, slicing=Slicing(input_bits=3))
    state = random_state(Core(tile=tile, tile_shape=shape), shape, jax.random.key(12))
    # Magnitudes 5/7 and 2/7 are the codes 101 and 010: two reads drive row 0 and one drives row 1.
    cost = core_cost(serial, state, jnp.array([5 / 7, -2 / 7]))
    row_sums = np.asarray(state.tiles.g_pos.g + state.tiles.g_neg.g)[0, 0].sum(axis=1)
    expected = 0.3**2 * 100e-9 * (2 * row_sums[0] + row_sums[1])
    np.testing.assert_allclose(cost.energy.array_read, expected, rtol=RTOL)


def test_offset_weight_slices_on_own_tiles():
    model = CostModel()
    tile = ideal_tile()
    core = Core(tile=tile, tile_shape=(4, 3), slicing=Slicing(weight_slices=2, bits_per_slice=2, negative="offset"))
    state = random_state(core, (4, 3), jax.random.key(13))
    cost = core_cost(core, state, jnp.ones((1, 4)), model=model)

    # Each of the 2 slices is a tile of 3 weight columns and 1 reference column, each converted once.
    np.testing.assert_allclose(cost.energy.adc, 2 * (3 + 1) * ADC_FOM * 2**7, rtol=RTOL)
    np.testing.assert_allclose(cost.area.adc, 2 * (3 + 1) * model.adc_area, rtol=RTOL)
    # Each slice tile drives its own 4 rows.
    np.testing.assert_allclose(cost.energy.dac, 2 * 4 * 6 * model.dac_energy_per_bit, rtol=RTOL)
    # One device per cell, so the unused G- of each stored pair is neither read nor counted.
    np.testing.assert_allclose(cost.area.array, 2 * 4 * (3 + 1) * model.cell_area, rtol=RTOL)
    g_read = np.asarray(state.tiles.g_pos.g).sum()
    np.testing.assert_allclose(cost.energy.array_read, 0.3**2 * 100e-9 * g_read, rtol=RTOL)
    # Every output column subtracts the reference and adds into its accumulator, in both slices.
    np.testing.assert_allclose(cost.energy.digital, 2 * 3 * 2 * model.add_energy, rtol=RTOL)
    # The slices share the operations of the 4 x 3 weights.
    np.testing.assert_allclose(cost.operations, 2 * 4 * 3)


def test_offset_read_is_single_device():
    # A read of offset weights stores each cell's one device in g_diff, with no G- to add.
    core = Core(tile=ideal_tile(), tile_shape=(2, 3), slicing=Slicing(negative="offset"))
    state = random_state(core, (2, 3), jax.random.key(20))
    g = state.tiles.g_pos.g
    read = TileRead(g_diff=g, g_square=None, drift_gain=jnp.ones((1, 1)), weight_scale=jnp.ones((1, 1)))
    x = jnp.array([[0.5, -1.0]])
    assert_costs_close(core_cost(core, read, x), core_cost(core, state, x))


def test_programmed_sliced_core_counts():
    # The layout that core.program and core.read produce: slice axis, reference columns, padding.
    model = CostModel()
    slicing = Slicing(input_bits=4, weight_slices=2, bits_per_slice=2, negative="offset")
    core = Core(tile=ideal_tile(), tile_shape=(4, 3), slicing=slicing)
    weights = jax.random.uniform(jax.random.key(21), (6, 5), minval=-1.0, maxval=1.0)
    state = core.program(weights, key=jax.random.key(22))
    read = core.read(state, 0.0, key=jax.random.key(23))
    x = jax.random.uniform(jax.random.key(24), (3, 6), minval=-1.0, maxval=1.0)
    from_state, from_read = core_cost(core, state, x, model=model), core_cost(core, read, x, model=model)

    # 3 products x 4 reads x 2 slices x 2 tile rows, each converting the used columns (3 and 2) plus a
    # reference column per tile.
    conversions = 3 * 4 * 2 * 2 * ((3 + 1) + (2 + 1))
    np.testing.assert_allclose(from_state.energy.adc, conversions * ADC_FOM * 2**7, rtol=RTOL)
    np.testing.assert_allclose(from_state.operations, 2 * 6 * 5 * 3)
    # Ideal devices read back what was programmed, so the read gives the same array energy.
    np.testing.assert_allclose(from_read.energy.array_read, from_state.energy.array_read, rtol=RTOL)
    # A read does not record the 5 weight columns, so the padded sixth column counts as converted.
    np.testing.assert_allclose(from_read.energy.adc, (conversions + 3 * 4 * 2 * 2) * ADC_FOM * 2**7, rtol=RTOL)


def test_core_state_of_sliced_core_needs_slice_axis():
    sliced = Core(tile=ideal_tile(), tile_shape=(2, 3), slicing=Slicing(weight_slices=2, bits_per_slice=2))
    with pytest.raises(ValueError, match="3 leading axes"):
        core_cost(sliced, small_core_state(), jnp.ones(2))


# Differentiability and transformations.


def test_grad_matches_finite_differences():
    tile = ideal_tile(device=PCM())
    core = Core(tile=tile, tile_shape=(4, 4))
    state = random_state(core, (6, 5), jax.random.key(14))
    x = jax.random.uniform(jax.random.key(15), (3, 6), minval=-1.0, maxval=1.0)

    def energy(voltage, g_pos):
        changed = eqx.tree_at(lambda c: c.tile.read_voltage, core, voltage)
        new_state = eqx.tree_at(lambda s: s.tiles.g_pos.g, state, g_pos)
        return core_cost(changed, new_state, x).energy.total

    voltage, g_pos = jnp.asarray(0.3), state.tiles.g_pos.g
    grad_voltage, grad_g = jax.grad(energy, argnums=(0, 1))(voltage, g_pos)
    assert np.isfinite(grad_voltage)
    assert np.all(np.isfinite(grad_g))

    # The array energy is quadratic in V, so a central difference is exact up to the float32 rounding of
    # the energies, about 1e-7 of the total. With a step of 1e-2 V that rounding stays below 1e-4 of the
    # slope.
    step = 1e-2
    slope = (energy(voltage + step, g_pos) - energy(voltage - step, g_pos)) / (2 * step)
    np.testing.assert_allclose(grad_voltage, slope, rtol=1e-3)

    # The energy is linear in the conductances, so a forward difference along a random direction is
    # exact up to rounding. The step raises the array energy by about 18 %, 0.65 % of the total, so the
    # float32 rounding of the total (about 1e-7 of it) stays near 3e-5 of the change.
    direction = jax.random.uniform(jax.random.key(16), g_pos.shape) * 1e-5
    change = energy(voltage, g_pos + direction) - energy(voltage, g_pos)
    np.testing.assert_allclose(jnp.sum(grad_g * direction), change, rtol=1e-3)


def test_grad_reaches_model_constants():
    cost_of = lambda model: core_cost(Core(tile=ideal_tile(), tile_shape=(2, 3)),  # noqa: E731
                                      small_core_state(), jnp.ones((2, 2)), model=model).energy.total
    grads = jax.grad(cost_of)(CostModel())
    # d energy / d adc_fom is the number of conversion steps: 2 products x 3 columns x 2^7.
    np.testing.assert_allclose(grads.adc_fom, 2 * 3 * 2**7, rtol=RTOL)


def small_core_state():
    core = Core(tile=ideal_tile(), tile_shape=(2, 3))
    return random_state(core, (2, 3), jax.random.key(17))


def test_jit_and_vmap_agree_with_eager():
    tile = ideal_tile(device=PCM())
    core = Core(tile=tile, tile_shape=(4, 4))
    state = random_state(core, (6, 5), jax.random.key(18))
    x = jax.random.uniform(jax.random.key(19), (3, 6), minval=-1.0, maxval=1.0)
    eager = core_cost(core, state, x)
    jitted = eqx.filter_jit(core_cost)(core, state, x)
    assert_costs_close(jitted, eager)

    voltages = jnp.array([0.1, 0.2, 0.3])
    per_voltage = jax.vmap(
        lambda v: core_cost(eqx.tree_at(lambda c: c.tile.read_voltage, core, v), state, x).energy.array_read
    )(voltages)
    # Array energy is proportional to V^2.
    np.testing.assert_allclose(per_voltage, eager.energy.array_read * (voltages / 0.3) ** 2, rtol=RTOL)


# Combining costs and figures of merit.


def test_cost_arithmetic():
    cost = tile_cost(ideal_tile(), small_read(G_POS, G_NEG), X)
    doubled = cost + cost
    np.testing.assert_allclose(doubled.energy.total, 2 * cost.energy.total, rtol=RTOL)
    np.testing.assert_allclose(doubled.latency, cost.latency)
    assert_costs_close(3 * cost, cost + cost + cost)
    assert_costs_close(cost * 3, sum([cost, cost, cost]))
    chained = cost.then(cost)
    np.testing.assert_allclose(chained.latency, 2 * cost.latency, rtol=RTOL)
    np.testing.assert_allclose(chained.area.total, 2 * cost.area.total, rtol=RTOL)


def test_as_dict_names_every_variable():
    values = tile_cost(ideal_tile(), small_read(G_POS, G_NEG), X).as_dict()
    assert set(values) == set(COST_VARIABLES)
    np.testing.assert_allclose(values["energy_total"], sum(values[f"energy_{name}"] for name in ENERGY_PARTS),
                               rtol=RTOL)


def test_figures_of_merit():
    cost = tile_cost(ideal_tile(), small_read(G_POS, G_NEG), X)
    np.testing.assert_allclose(tops_per_watt(cost), 24 / float(cost.energy.total) / 1e12, rtol=RTOL)
    # Two products of a 2 x 3 weight matrix are 24 operations.
    expected = 24 / float(cost.latency) / (float(cost.area.total) * 1e6) / 1e12
    np.testing.assert_allclose(tops_per_mm2(cost), expected, rtol=RTOL)


def test_programming_cost_sums_pulse_energy():
    device = PCM()
    g = jnp.array([[1e-6, 5e-6], [10e-6, 20e-6]])
    pulses = jnp.array([[2.0, -1.0], [0.0, 3.0]])
    cost = programming_cost(device, g, pulses)
    np.testing.assert_allclose(cost.energy.programming, jnp.sum(pulse_energy(device, g, pulses)), rtol=RTOL)
    assert float(cost.energy.total) == pytest.approx(float(cost.energy.programming))
    assert float(cost.operations) == 0.0
    combined = cost + tile_cost(ideal_tile(), small_read(G_POS, G_NEG), X)
    assert float(combined.energy.programming) == pytest.approx(float(cost.energy.programming))


# Validation of arguments.


def test_wrong_input_shape_raises():
    with pytest.raises(ValueError, match="last input axis must have length 2"):
        tile_cost(ideal_tile(), small_read(G_POS, G_NEG), np.ones((2, 3)))
    core = Core(tile=ideal_tile(), tile_shape=(2, 3))
    with pytest.raises(ValueError, match="last input axis must have length 2"):
        core_cost(core, small_core_state(), np.ones(5))
    read = core.read(small_core_state(), 0.0, key=jax.random.key(25))
    with pytest.raises(ValueError, match="length from 1 to 2"):
        core_cost(core, read, np.ones(3))


def test_non_finite_input_raises():
    with pytest.raises(ValueError, match="non-finite"):
        tile_cost(ideal_tile(), small_read(G_POS, G_NEG), np.array([np.nan, 1.0]))


def test_wrong_conductances_raise():
    with pytest.raises(ValueError, match="CoreState, TileState or TileRead"):
        tile_cost(ideal_tile(), G_POS, X)
    core = Core(tile=ideal_tile(), tile_shape=(2, 3))
    with pytest.raises(ValueError, match="2 leading axes"):
        core_cost(core, small_read(G_POS, G_NEG), X)
    with pytest.raises(ValueError, match="must be a Core"):
        core_cost(ideal_tile(), small_core_state(), X)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"adc_fom": -1e-15}, "adc_fom must be finite and >= 0"),
        ({"feature_size": 0.0}, "feature_size must be finite and > 0"),
        ({"input_encoding": "phase"}, "input_encoding must be one of"),
        ({"ideal_bits": 0}, "at least 1 bit"),
    ],
)
def test_invalid_cost_model_raises(changes, message):
    with pytest.raises(ValueError, match=message):
        CostModel(**changes)


def test_figures_of_merit_reject_empty_cost():
    empty = programming_cost(PCM(), jnp.zeros(2), jnp.zeros(2))
    with pytest.raises(ValueError, match="energy > 0 J"):
        tops_per_watt(empty)
    with pytest.raises(ValueError, match="latency > 0 s"):
        tops_per_mm2(empty)


def test_negative_count_raises():
    cost = tile_cost(ideal_tile(), small_read(G_POS, G_NEG), X)
    with pytest.raises(ValueError, match="count of copies"):
        cost * -1


# The HERMES validation check.


def test_hermes_check_passes():
    (result,) = run_checks(names="hermes_tops_per_watt")
    assert result.passed, f"{result.name}: error {result.error} {result.unit} > tolerance {result.tolerance}"
    assert result.unit == "factor"
    assert 1.0 <= result.error < 3.0


def test_hermes_check_fails_tenfold_voltage():
    # Ten times the read voltage multiplies the array energy, most of the total, by 100.
    cost, _ = hermes_cost({"read_voltage_v": 4.0})
    assert float(tops_per_watt(cost)) < 9.76 / 3
