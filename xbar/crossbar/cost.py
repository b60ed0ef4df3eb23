"""First-order energy, latency and area of crossbar tiles and multi-tile cores, with a breakdown.

The cost of computing `x @ W` on a tile is the sum of six parts, each a count of events times an energy
per event:

- array read: the Joule energy of the devices while they are read, sum_i sum_j V_i^2 G_ij t_i for every
  read of every product. G_ij is G+ + G- of a differential pair, or the one device of an offset cell.
  Amplitude-encoded inputs drive row i at V_i = u_i V_read for the whole read time.
  Pulse-width-encoded inputs drive it at V_read for the share |u_i| of the read time, as in the IBM
  HERMES chip (Le Gallo et al., Nature Electronics 6, 680 (2023)). With bit-serial inputs each read
  drives the rows whose magnitude bit is 1 at V_read;
- DAC: one conversion per driven row per read, charged per bit of resolution (1 bit for bit-serial reads);
- ADC: one conversion per sensed column per read, reference column included, charged with the Walden
  figure of merit, E = FOM * 2^bits;
- digital: one add per output column and read into the column's accumulator, which also shifts and adds
  the reads of bit-serial inputs, the weight slices and the partial sums of the tile rows of a core.
  Offset weights take one more add per read to subtract the reference column;
- buffer: the input word read and the output word written per row and per column, in SRAM;
- programming: the energy of programming pulses (`programming_cost`), from `xbar.devices.pulse_energy`.

A core is a grid of tiles, and each weight slice of `Slicing` has tiles of its own. Latency per product
is (read time + ADC conversion time) per read, with all tiles working in parallel. Area counts the cells
(cell_area_f2 F^2 each, two per differential pair and one per offset cell), one DAC per row, one ADC per
physical column and one accumulator per output column of every tile.

The array-read energy is a differentiable function of the read voltage, the read time and the
conductances, and every energy is linear in the constants of `CostModel`, so `jax.grad` reaches them.
Counts of conversions and adds are exact integers. The bits of bit-serial inputs come from rounding, so
their derivative with respect to the inputs is zero.

NOTE: this is a first-order model. It neglects the energy dissipated in the wires (IR drop), the bias
and clock power that periphery draws while it waits, leakage, and data movement beyond one SRAM buffer.
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from .._validation import check_bits, check_finite, check_positive, is_concrete
from ..devices import Device, pulse_energy
from .core import Core, CoreState
from .slicing import Slicing
from .tile import Tile, TileRead, TileState

__all__ = [
    "COST_VARIABLES", "Area", "Cost", "CostModel", "Energy", "core_cost", "programming_cost", "tile_cost",
    "tops_per_mm2", "tops_per_watt",
]

# Default constants. Each names its source, and CMOS figures are for the node of that source, not scaled.

# Kull et al., "A 3.1 mW 8b 1.2 GS/s single-channel asynchronous SAR ADC with alternate comparators for
# enhanced speed in 32 nm digital SOI CMOS", ISSCC 2013: 3.1 mW / 1.2e9 conversions/s = 2.6 pJ per 8-bit
# conversion, i.e. 10.1 fJ per conversion step with the nominal 8 bits in place of the ENOB. For scale,
# the best Walden figure of merit reported up to 2011 was 4.4 fJ per step (van Elzakker et al. 2008, in
# the 2011 update of the converterpassion ADC survey).
ADC_FOM = 3.1e-3 / 1.2e9 / 2**8
ADC_CONVERSION_TIME = 1 / 1.2e9

# Shafiee et al., "ISAAC: a convolutional neural network accelerator with in-situ analog arithmetic in
# crossbars", ISCA 2016, 32 nm figures as tabulated in the Accelergy hwcomponents library:
# - 8 ADCs of 8 bits take 9600 um^2, so 1200 um^2 per ADC;
# - 8 x 128 one-bit DACs draw 4 mW and take 170 um^2. Each converts about once per 100 ns crossbar read,
#   so one conversion costs 4 mW / (1024 x 1e7 /s) = 0.39 pJ and one DAC takes 0.17 um^2;
# - one 16-bit shift-and-add unit takes 60 um^2.
ADC_AREA = 9600e-12 / 8
DAC_ENERGY_PER_BIT = 4e-3 / (8 * 128) / 1e7
DAC_AREA_PER_BIT = 170e-12 / (8 * 128)
ACCUMULATOR_AREA = 60e-12

# Horowitz, "Computing's energy problem (and what we can do about it)", ISSCC 2014, 45 nm at 0.9 V:
# a 32-bit integer add costs 0.1 pJ, and a 64-bit access of an 8 KB SRAM costs 10 pJ.
ADD_ENERGY = 0.1e-12
BUFFER_ENERGY_PER_BIT = 10e-12 / 64

# A crosspoint cell at the minimum pitch of 2F in both directions occupies 4 F^2. A one-transistor
# one-resistor (1T1R) cell is larger, so set cell_area_f2 for such arrays.
CELL_AREA_F2 = 4.0
# NOTE: assumed node, the 45 nm of the digital constants above.
FEATURE_SIZE = 45e-9

_INPUT_ENCODINGS = ("amplitude", "pulse_width")


class CostModel(eqx.Module):
    """Energy, time and area constants of the periphery and the cells, in SI units.

    Attributes:
        adc_fom: ADC Walden figure of merit, J per conversion step: one conversion of b bits costs
            adc_fom * 2^b (default 10.1 fJ, Kull et al., ISSCC 2013).
        adc_time: time of one ADC conversion, s (default 0.83 ns, 1.2 GS/s, Kull et al., ISSCC 2013).
        adc_area: area of one ADC, m^2, at any resolution (default 1200 um^2 at 8 bits, ISAAC, ISCA 2016).
        dac_energy_per_bit: energy of one DAC conversion per bit of resolution, J (default 0.39 pJ, ISAAC).
        dac_area_per_bit: area of one DAC per bit of resolution, m^2 (default 0.17 um^2, ISAAC).
        add_energy: energy of one digital add of a partial sum, J (default 0.1 pJ, a 32-bit add at
            45 nm, Horowitz, ISSCC 2014).
        accumulator_area: area of the adder and register of one output column, m^2 (default 60 um^2, the
            shift-and-add unit of ISAAC).
        buffer_energy_per_bit: energy to read or write one bit of the input and output buffers, J
            (default 0.16 pJ, 10 pJ per 64-bit access of an 8 KB SRAM, Horowitz, ISSCC 2014).
        cell_area_f2: area of one device cell in units of F^2 (default 4, a crosspoint cell).
        feature_size: feature size F, m (default 45 nm, assumed).
        ideal_bits: resolution charged for a converter that the tile models as ideal (`bits=None`)
            (static, default 8, assumed).
        input_encoding: how the DAC encodes an analog input (static): "amplitude" (default), a read
            voltage u V_read for the whole read time, or "pulse_width", V_read for |u| times the read
            time, clipped at the full read time. Bit-serial inputs ignore it.
    """

    adc_fom: float = ADC_FOM
    adc_time: float = ADC_CONVERSION_TIME
    adc_area: float = ADC_AREA
    dac_energy_per_bit: float = DAC_ENERGY_PER_BIT
    dac_area_per_bit: float = DAC_AREA_PER_BIT
    add_energy: float = ADD_ENERGY
    accumulator_area: float = ACCUMULATOR_AREA
    buffer_energy_per_bit: float = BUFFER_ENERGY_PER_BIT
    cell_area_f2: float = CELL_AREA_F2
    feature_size: float = FEATURE_SIZE
    ideal_bits: int = eqx.field(static=True, default=8)
    input_encoding: str = eqx.field(static=True, default="amplitude")

    def __check_init__(self):
        for name, unit in (
            ("adc_fom", "J"), ("adc_time", "s"), ("adc_area", "m^2"), ("dac_energy_per_bit", "J"),
            ("dac_area_per_bit", "m^2"), ("add_energy", "J"), ("accumulator_area", "m^2"),
            ("buffer_energy_per_bit", "J"), ("cell_area_f2", ""), ("feature_size", "m"),
        ):
            check_positive(f"CostModel.{name}", getattr(self, name), unit, allow_zero=name != "feature_size")
        check_bits("CostModel.ideal_bits", self.ideal_bits)
        if self.ideal_bits is None:
            raise ValueError("CostModel.ideal_bits must be an integer number of bits, got None; pass e.g. 8")
        if self.input_encoding not in _INPUT_ENCODINGS:
            raise ValueError(
                f"CostModel.input_encoding must be one of {', '.join(map(repr, _INPUT_ENCODINGS))}, "
                f"got {self.input_encoding!r}"
            )

    @property
    def cell_area(self):
        """Area of one device cell, m^2."""
        return self.cell_area_f2 * self.feature_size**2


class Energy(eqx.Module):
    """Energy by part, J (arrays of any common shape).

    Attributes:
        array_read: Joule energy of the devices during reads.
        dac: input conversions.
        adc: output conversions.
        digital: adds of partial sums, including shift-and-add over reads and weight slices.
        buffer: SRAM reads of the inputs and writes of the outputs.
        programming: programming pulses.
    """

    array_read: jax.Array
    dac: jax.Array
    adc: jax.Array
    digital: jax.Array
    buffer: jax.Array
    programming: jax.Array

    @property
    def total(self):
        """Sum of all parts, J."""
        return self.array_read + self.dac + self.adc + self.digital + self.buffer + self.programming


class Area(eqx.Module):
    """Area by part, m^2.

    Attributes:
        array: device cells, reference columns included.
        dac: one input DAC per row.
        adc: one ADC per physical column.
        digital: one accumulator per output column.
    """

    array: jax.Array
    dac: jax.Array
    adc: jax.Array
    digital: jax.Array

    @property
    def total(self):
        """Sum of all parts, m^2."""
        return self.array + self.dac + self.adc + self.digital


class Cost(eqx.Module):
    """Energy, latency and area of a computation, with the number of operations it performed.

    `a + b` combines parts that work side by side, like the tiles of a core: energies, areas and
    operations add, and the latency is the larger one. `n * a` is n such copies side by side. `a.then(b)`
    runs b after a on its own hardware, so latencies add as well. `sum(costs)` works with `+`.

    Attributes:
        energy: energy by part, J.
        latency: time to compute all the products, s (products one after another, tiles in parallel).
        area: area by part, m^2.
        operations: operations performed, two (a multiply and an add) per weight and product.
    """

    energy: Energy
    latency: jax.Array
    area: Area
    operations: jax.Array

    def __add__(self, other):
        if not isinstance(other, Cost):
            return NotImplemented
        return Cost(
            energy=jax.tree_util.tree_map(jnp.add, self.energy, other.energy),
            latency=jnp.maximum(self.latency, other.latency),
            area=jax.tree_util.tree_map(jnp.add, self.area, other.area),
            operations=self.operations + other.operations,
        )

    def __radd__(self, other):
        # sum() starts from the integer 0.
        if isinstance(other, int) and not isinstance(other, bool) and other == 0:
            return self
        return NotImplemented

    def __mul__(self, count):
        if isinstance(count, Cost):
            return NotImplemented
        check_positive("count of copies", count, allow_zero=True)
        return Cost(
            energy=jax.tree_util.tree_map(lambda part: part * count, self.energy),
            latency=self.latency,
            area=jax.tree_util.tree_map(lambda part: part * count, self.area),
            operations=self.operations * count,
        )

    __rmul__ = __mul__

    def then(self, other: Cost) -> Cost:
        """Return the cost of running `other` after this computation on its own hardware."""
        if not isinstance(other, Cost):
            raise ValueError(f"then needs a Cost, got {type(other).__name__}")
        combined = self + other
        return eqx.tree_at(lambda cost: cost.latency, combined, self.latency + other.latency)

    def as_dict(self) -> dict[str, jax.Array]:
        """Return every quantity by its name in `COST_VARIABLES`, totals included, for a Dataset."""
        energy, area = self.energy, self.area
        return {
            "energy_array_read": energy.array_read,
            "energy_dac": energy.dac,
            "energy_adc": energy.adc,
            "energy_digital": energy.digital,
            "energy_buffer": energy.buffer,
            "energy_programming": energy.programming,
            "energy_total": energy.total,
            "latency": self.latency,
            "area_array": area.array,
            "area_dac": area.dac,
            "area_adc": area.adc,
            "area_digital": area.digital,
            "area_total": area.total,
            "operations": self.operations,
        }


# Names and units of the quantities of `Cost.as_dict`.
COST_VARIABLES = {
    "energy_array_read": "J", "energy_dac": "J", "energy_adc": "J", "energy_digital": "J",
    "energy_buffer": "J", "energy_programming": "J", "energy_total": "J", "latency": "s",
    "area_array": "m^2", "area_dac": "m^2", "area_adc": "m^2", "area_digital": "m^2", "area_total": "m^2",
    "operations": "1",
}


def tops_per_watt(cost: Cost):
    """Return the energy efficiency in tera-operations per second per watt: operations / energy / 1e12."""
    total = cost.energy.total
    if is_concrete(total) and np.any(np.asarray(total) <= 0):
        raise ValueError(f"tops_per_watt needs a cost with energy > 0 J, got {np.asarray(total)} J")
    return cost.operations / total / 1e12


def tops_per_mm2(cost: Cost):
    """Return the throughput per area in tera-operations per second per mm^2."""
    for name, value, unit in (("latency", cost.latency, "s"), ("area", cost.area.total, "m^2")):
        if is_concrete(value) and np.any(np.asarray(value) <= 0):
            raise ValueError(f"tops_per_mm2 needs a cost with {name} > 0 {unit}, got {np.asarray(value)} {unit}")
    return cost.operations / cost.latency / (cost.area.total * 1e6) / 1e12


# Conductances and drive.


def _conductance_arrays(conductances):
    """Return (G+, G-) in S from a state or a read, or (G+ - G-, None) for a read that lacks them."""
    if isinstance(conductances, CoreState):
        conductances = conductances.tiles
    if isinstance(conductances, TileState):
        arrays = (conductances.g_pos.g, conductances.g_neg.g)
    elif isinstance(conductances, TileRead):
        if conductances.g_pos is None:
            return jnp.asarray(conductances.g_diff), None
        arrays = (conductances.g_pos, conductances.g_neg)
    else:
        raise ValueError(
            "conductances must be a CoreState, TileState or TileRead (from program or read), "
            f"got {type(conductances).__name__}"
        )
    for array in arrays:
        check_positive("conductance", array, "S", allow_zero=True)
    return tuple(jnp.asarray(array) for array in arrays)


def _read_conductance(tile: Tile, slicing: Slicing, first, second):
    """Return the conductance (S) that each read drives in every cell, from `_conductance_arrays`.

    With differential weights that is G+ + G-. A `TileRead` keeps G+ and G- only when the tile has wire
    resistance. Without them the sum is taken as |G+ - G-| + 2 g_min, which is exact for weights mapped
    with one device of each pair at g_min, and lower where noise or drift moved that device. With offset
    weights only G+ is read, and a read's G+ - G- is that device's conductance.
    """
    if slicing.negative == "offset":
        return first
    if second is not None:
        return first + second
    # NOTE: an estimate. Pass the TileState, or read with wire resistance, for the exact sum.
    g_min, _ = tile.nominal_range()
    return jnp.abs(first) + 2 * g_min


def _drive(tile: Tile, slicing: Slicing, model: CostModel, x):
    """Return, for each input, the sum over reads of (V_row / V_read)^2 times the driven share of the read.

    The result has the shape of x. With u the normalized drive of the tile's DAC, amplitude encoding gives
    u^2 and pulse width |u|. Bit-serial inputs give the number of magnitude bits set.
    """
    if slicing.input_bits is not None:
        planes, _ = slicing.input_planes(x, tile.dac.input_range)
        return jax.lax.stop_gradient(jnp.sum(planes * planes, axis=0))
    u = tile.dac(x)
    if model.input_encoding == "pulse_width":
        return jnp.minimum(jnp.abs(u), 1.0)
    return u * u


def _check_inputs(x, rows: int, kind: str):
    x = jnp.asarray(x, jnp.result_type(float))
    if x.ndim < 1 or x.shape[-1] != rows:
        raise ValueError(
            f"input has shape {x.shape} but the {kind} has {rows} rows; the last input axis must have length {rows}"
        )
    check_finite("input x", x, "remove NaN or infinite inputs")
    return x


# Per-tile costs.


def _tile_costs(tile: Tile, slicing: Slicing, model: CostModel, row_conductance, drive, products: int,
                rows_used, columns_used, shape: tuple[int, int]) -> Cost:
    """Return the cost of each tile, with leaves of the broadcast shape of rows_used and columns_used.

    row_conductance: sum over the columns of the read conductance per row, S, shape (..., rows).
    drive: `_drive` of the inputs, shape (..., products, rows), broadcast against row_conductance.
    rows_used, columns_used: rows and weight columns that hold weights (the rest is padding).
    shape: rows and weight columns of the tile's hardware, without the reference column.
    The operations are left at 0 because the slices of a weight share them.
    """
    rows, columns = shape
    reads = slicing.reads_per_product
    references = slicing.reference_columns
    bit_serial = slicing.input_bits is not None
    dac_bits = 1 if bit_serial else (tile.dac.bits or model.ideal_bits)
    adc_bits = tile.adc.bits or model.ideal_bits
    input_word = slicing.input_bits + 1 if bit_serial else (tile.dac.bits or model.ideal_bits)

    driven = jnp.sum(drive * row_conductance[..., None, :], axis=(-2, -1))
    array_read = tile.read_voltage**2 * tile.read_time * driven
    # Every per-tile count gets the full shape of the stacked tiles, so that a sum over it counts each tile.
    rows_used, columns_used, _ = jnp.broadcast_arrays(
        jnp.asarray(rows_used, driven.dtype), jnp.asarray(columns_used, driven.dtype), driven
    )

    read_events = products * reads
    converted = columns_used + references * (columns_used > 0)
    dac = read_events * rows_used * dac_bits * model.dac_energy_per_bit
    adc = read_events * converted * model.adc_fom * 2.0**adc_bits
    # Each output column adds every read into its accumulator (shifted for bit-serial reads and slices).
    # With offset weights it first subtracts the reference column, one more add per read.
    adds_per_read = 1 + references
    digital = read_events * columns_used * adds_per_read * model.add_energy
    buffer = products * (rows_used * input_word + columns_used * adc_bits) * model.buffer_energy_per_bit

    devices_per_cell = 1 if slicing.negative == "offset" else 2
    cells = rows * (columns + references) * devices_per_cell
    used = jnp.ones_like(rows_used)
    area = Area(
        array=used * cells * model.cell_area,
        dac=used * rows * dac_bits * model.dac_area_per_bit,
        adc=used * (columns + references) * model.adc_area,
        digital=used * columns * model.accumulator_area,
    )
    energy = Energy(array_read=array_read, dac=dac, adc=adc, digital=digital, buffer=buffer,
                    programming=jnp.zeros_like(array_read))
    latency = used * read_events * (tile.read_time + model.adc_time)
    return Cost(energy=energy, latency=latency, area=area, operations=jnp.zeros_like(array_read))


def tile_cost(tile: Tile, conductances, x, *, model: CostModel = CostModel(), slicing: Slicing | None = None) -> Cost:
    """Return the cost of computing `x @ W` on one tile for a batch x of shape (..., M).

    Args:
        tile: the tile configuration (read voltage and time, DAC and ADC resolution).
        conductances: the tile's `TileState` (programmed conductances) or a `TileRead` (at a read time).
            With offset weights the last column is the reference column.
        x: inputs in input units, shape (..., M); every vector is one product.
        model: the energy, time and area constants.
        slicing: the number representation of the core that the tile belongs to; None is `Slicing()`, one
            analog read per product and one differential pair per weight. A tile stores one weight slice.

    Raises:
        ValueError: for a wrong input shape, non-finite inputs or a conductance state of another type.
    """
    if not isinstance(tile, Tile):
        raise ValueError(f"tile must be a Tile, got {type(tile).__name__}")
    _check_model(model)
    slicing = _check_slicing(Slicing() if slicing is None else slicing)
    first, second = _conductance_arrays(conductances)
    rows, physical_columns = first.shape[-2:]
    columns = physical_columns - slicing.reference_columns
    x = _check_inputs(x, rows, "tile")
    # A single tile is a grid of one tile and one slice.
    first = first[None, None, None]
    second = None if second is None else second[None, None, None]
    segments = x.reshape(1, -1, rows)
    cost = _grid_cost(tile, slicing, model, first, second, segments, np.array([[rows]]), np.array([[columns]]),
                      (rows, columns))
    return eqx.tree_at(lambda c: c.operations, cost, jnp.asarray(2.0 * rows * columns * segments.shape[1]))


def core_cost(core: Core, conductances, x, *, model: CostModel = CostModel()) -> Cost:
    """Return the cost of computing `x @ W` on a multi-tile core for a batch x of shape (..., M).

    The cost is the sum of the costs of its tiles (see `tile_cost`), every weight slice on tiles of its
    own, with all tiles working in parallel. Rows and columns of padding in the last block row and column
    are neither driven nor converted, but their hardware counts in the area. The core's `slicing` sets
    the reads per product, the devices per cell and the reference columns.

    Args:
        core: the core configuration.
        conductances: the `CoreState` from `core.program` or the stacked `TileRead` from `core.read`. A
            read does not record the weight shape, so with a read the inputs set M and all columns of
            the last tile column count as used.
        x: inputs, shape (..., M).
        model: the energy, time and area constants.

    Raises:
        ValueError: for a wrong input shape, non-finite inputs or a conductance state of another type.
    """
    if not isinstance(core, Core):
        raise ValueError(f"core must be a Core, got {type(core).__name__}")
    _check_model(model)
    slicing = _check_slicing(core.slicing)
    first, second = _conductance_arrays(conductances)
    # Stacked tiles have axes (slices, grid rows, grid columns, rows, columns), the slice axis only
    # with several weight slices.
    grid_axes = 3 if slicing.weight_slices > 1 else 2
    if first.ndim != grid_axes + 2:
        raise ValueError(
            f"core conductances must have {grid_axes} leading axes (tile slices, rows and columns) before the "
            f"rows and columns of each tile, got shape {first.shape}; pass the CoreState from core.program "
            "or the read from core.read of this core"
        )
    if slicing.weight_slices == 1:
        first = first[None]
        second = None if second is None else second[None]
    grid_rows, grid_columns = first.shape[1:3]
    rows, columns = core.tile_shape
    if isinstance(conductances, CoreState):
        m, n = conductances.shape
    else:
        # A read does not record the weight shape: take M from the inputs and count every column as used.
        m = _read_rows(x, grid_rows, rows)
        n = grid_columns * columns
    x = _check_inputs(x, m, "core")
    flat = x.reshape(-1, m)
    padded = jnp.zeros((flat.shape[0], grid_rows * rows), x.dtype).at[:, :m].set(flat)
    segments = jnp.moveaxis(padded.reshape(-1, grid_rows, rows), 1, 0)  # (grid rows, products, rows)
    rows_used = np.minimum(rows, m - rows * np.arange(grid_rows))[:, None]
    columns_used = np.minimum(columns, n - columns * np.arange(grid_columns))[None, :]
    cost = _grid_cost(core.tile, slicing, model, first, second, segments, rows_used, columns_used, core.tile_shape)
    return eqx.tree_at(lambda c: c.operations, cost, jnp.asarray(2.0 * m * n * flat.shape[0]))


def _read_rows(x, grid_rows: int, rows: int) -> int:
    """Return the number of weight rows M of a core read from the inputs, checked against its grid."""
    m = int(np.shape(x)[-1]) if np.ndim(x) >= 1 else 0
    if not (grid_rows - 1) * rows < m <= grid_rows * rows:
        raise ValueError(
            f"input has shape {np.shape(x)} but the core's read has {grid_rows} tile rows of {rows} rows, so the "
            f"last input axis must have a length from {(grid_rows - 1) * rows + 1} to {grid_rows * rows}"
        )
    return m


def _check_model(model) -> None:
    if not isinstance(model, CostModel):
        raise ValueError(f"model must be a CostModel, got {type(model).__name__}")


def _check_slicing(slicing) -> Slicing:
    if not isinstance(slicing, Slicing):
        raise ValueError(f"slicing must be a Slicing or None, got {type(slicing).__name__}")
    return slicing


@eqx.filter_jit
def _grid_cost(tile: Tile, slicing: Slicing, model: CostModel, first, second, segments, rows_used, columns_used,
               tile_shape: tuple[int, int]) -> Cost:
    """Return the cost of a grid of tiles, summed over the grid (operations left at 0).

    first, second: conductance arrays of `_conductance_arrays`, shape (slices, grid rows, grid columns,
        rows, physical columns).
    segments: the input segment of each tile row, shape (grid rows, products, rows).
    rows_used: used rows per grid row, shape (grid rows, 1). columns_used: used weight columns per grid
        column, shape (1, grid columns).
    """
    read_conductance = _read_conductance(tile, slicing, first, second)
    row_conductance = jnp.sum(read_conductance, axis=-1)  # (slices, grid rows, grid columns, rows)
    drive = _drive(tile, slicing, model, segments)[None, :, None]  # (1, grid rows, 1, products, rows)
    per_tile = _tile_costs(tile, slicing, model, row_conductance, drive, segments.shape[1], rows_used[None],
                           columns_used[None], tile_shape)
    return _sum_tiles(per_tile)


def _sum_tiles(per_tile: Cost) -> Cost:
    """Combine the costs of stacked tiles (leaves with one axis per grid dimension) as tiles side by side."""
    return Cost(
        energy=jax.tree_util.tree_map(jnp.sum, per_tile.energy),
        latency=jnp.max(per_tile.latency),
        area=jax.tree_util.tree_map(jnp.sum, per_tile.area),
        operations=jnp.sum(per_tile.operations),
    )


def programming_cost(device: Device, g, n_pulses) -> Cost:
    """Return the cost of applying signed pulse counts `n_pulses` to devices of conductance `g` (S).

    The energy is that of `xbar.devices.pulse_energy`, summed over all devices. Programming latency is
    not modelled (0 s), and the cost adds no area or operations.
    """
    energy = jnp.sum(pulse_energy(device, g, n_pulses))
    zero = jnp.zeros_like(energy)
    return Cost(
        energy=Energy(array_read=zero, dac=zero, adc=zero, digital=zero, buffer=zero, programming=energy),
        latency=zero,
        area=Area(array=zero, dac=zero, adc=zero, digital=zero),
        operations=zero,
    )
