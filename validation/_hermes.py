"""Check of the cost model (`xbar.crossbar.cost`) against the measured energy efficiency of IBM HERMES.

- `hermes_tops_per_watt`: a core is configured like one core of the IBM HERMES Project Chip (Le Gallo et
  al., Nature Electronics 6, 680 (2023)). It has a 256 x 256 tile of PCM differential pairs, 8-bit
  pulse-width-modulated inputs and 8-bit ADCs, and computes 8-bit matrix-vector products in one phase.
  Its TOPS/W from `core_cost` must lie within a factor of 3 of the published 9.76 TOPS/W. Weights and inputs are drawn
  uniformly over their full ranges, since the measurement workload is not published in the abstract.

The factor 3 is wide on purpose. The periphery constants of `CostModel` come from other chips and nodes,
and the measured efficiency drops about 4x (9.76 to 2.48 TOPS/W) from one-phase to four-phase reads at
the same array energy. So most of the chip's energy grows with read time (periphery power), a part this
model does not have. The model instead spends most of its energy in the array at the assumed 0.4 V read.

This check does not use the PCM model that `run_checks` passes to every check.
"""

from __future__ import annotations

import jax

from xbar.crossbar import ADC, DAC, Core, Tile
from xbar.crossbar.cost import CostModel, core_cost, tops_per_mm2, tops_per_watt
from xbar.devices import PCM

from ._check import Check
from ._tables import load_table

TABLE = "hermes_energy_efficiency.csv"

# The ADC range (A) does not change the cost, but an 8-bit ADC needs one.
_ADC_RANGE = 10e-6


def _hermes_core(settings: dict[str, float]) -> Core:
    tile = Tile(
        device=PCM(),
        read_voltage=settings["read_voltage_v"],
        read_time=settings["read_time_s"],
        dac=DAC(bits=int(settings["input_bits"])),
        adc=ADC(bits=int(settings["output_bits"]), current_range=_ADC_RANGE),
    )
    return Core(tile=tile, tile_shape=(int(settings["tile_rows"]), int(settings["tile_columns"])))


def hermes_cost(settings: dict[str, float] | None = None):
    """Return the `Cost` of the HERMES-like core for the table's workload, and the core.

    `settings` overrides entries of the table's `settings` header (used by the tests).
    """
    values = load_table(TABLE).numbers("settings")
    values.update(settings or {})
    core = _hermes_core(values)
    shape = core.tile_shape
    key_weights, key_program, key_inputs = jax.random.split(jax.random.key(0), 3)
    weights = jax.random.uniform(key_weights, shape, minval=-1.0, maxval=1.0)
    inputs = jax.random.uniform(key_inputs, (int(values["vectors"]), shape[0]), minval=-1.0, maxval=1.0)
    state = core.program(weights, key=key_program)
    return core_cost(core, state, inputs, model=CostModel(input_encoding="pulse_width")), core


def _factor(model: float, measured: float) -> float:
    ratio = model / measured
    return float(max(ratio, 1.0 / ratio))


def _tops_per_watt(_model):
    table = load_table(TABLE)
    one_phase = table["read_phases"] == 1
    measured = float(table["tops_per_watt"][one_phase][0])
    cost, _ = hermes_cost()
    efficiency = float(tops_per_watt(cost))
    density = float(tops_per_mm2(cost))
    vectors = float(cost.operations) / (2 * 256 * 256)
    parts = {name: float(value) / vectors for name, value in vars(cost.energy).items()}
    measured_energy = 2 * 256 * 256 / (measured * 1e12)

    def draw(figure):
        axes = figure.add_subplot()
        names = [name for name in parts if name != "programming"]
        axes.bar(names, [parts[name] * 1e9 for name in names], color="0.6")
        axes.axhline(sum(parts.values()) * 1e9, color="C0", lw=1.2,
                     label=f"model total: {efficiency:.3g} TOPS/W, {density:.3g} TOPS/mm^2")
        axes.axhline(measured_energy * 1e9, color="C3", ls="--", lw=1.2,
                     label=f"HERMES one-phase: {measured:.3g} TOPS/W")
        axes.set_ylabel("energy per 256 x 256 MVM (nJ)")
        axes.legend(fontsize="small")

    return _factor(efficiency, measured), draw


CHECKS = (
    Check(
        name="hermes_tops_per_watt",
        description="TOPS/W of a HERMES-like core (256 x 256 PCM tile, 8-bit PWM inputs, 8-bit ADC, one-phase "
                    "read) from core_cost against the measured 9.76 TOPS/W; error: max(model / measured, "
                    "measured / model)",
        unit="factor",
        table=TABLE,
        measure=_tops_per_watt,
    ),
)
