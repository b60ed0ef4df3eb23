"""Checks of the compact memristor models in `xbar.devices.compact`.

The HP linear ion drift model (Strukov et al., Nature 453, 80 (2008)) is compared with its closed-form
charge solution, and the window functions with exact test points. VTEAM, Yakopcic and Stanford-PKU
states must not move under drives below their thresholds, and the Stanford-PKU read resistances at
0.1 V must match the values of its default parameters. The checks use these models with their
published defaults and ignore the PCM model passed to `measure`.
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np

from xbar.devices.compact import VTEAM, LinearIonDrift, StanfordPKU, windows, yakopcic_set_a, yakopcic_set_b

from ._check import Check
from ._tables import load_table

HP_TABLE = "compact_hp_closed_form.csv"
WINDOW_TABLE = "compact_windows.csv"
THRESHOLD_TABLE = "compact_thresholds.csv"
STANFORD_TABLE = "compact_stanford_read.csv"

# Integration steps per drive period: Heun's error at 1 Hz is then about 1e-6 in x, far below 1 %.
_STEPS = 4000

_HP_COLUMNS = ("x_quarter", "x_half", "x_three_quarter", "x_period", "r_min_ohm", "lobe_area_w")


def _hp_cycle(frequency):
    """Drive the HP model without a window through one period of a 1 V sine; return (v, i, x) as float64."""
    t = np.linspace(0.0, 1.0 / frequency, _STEPS + 1)
    voltage = np.sin(2 * np.pi * frequency * t)
    current, x = LinearIonDrift().simulate(jnp.asarray(voltage, jnp.float32), 1.0 / (frequency * _STEPS))
    return voltage, np.asarray(current, np.float64), np.asarray(x, np.float64)


def _hp_measurements(frequency):
    voltage, current, x = _hp_cycle(frequency)
    model = LinearIonDrift()
    quarter = _STEPS // 4
    half = _STEPS // 2
    r_min = float(np.min(np.asarray(model.resistance(jnp.asarray(x)), np.float64)))
    area = abs(np.trapezoid(current[: half + 1], voltage[: half + 1]))
    values = (x[quarter], x[half], x[3 * quarter], x[_STEPS], r_min, area)
    return dict(zip(_HP_COLUMNS, values)), (voltage, current)


def _measure_hp_closed_form(_model):
    table = load_table(HP_TABLE)
    frequencies = table["f_hz"]
    measured = [_hp_measurements(f)[0] for f in frequencies]
    errors = [abs(m[column] / table[column][row] - 1) for row, m in enumerate(measured) for column in _HP_COLUMNS]

    def draw(figure):
        axes = figure.add_subplot()
        for row, frequency in enumerate(frequencies):
            ratios = [measured[row][column] / table[column][row] for column in _HP_COLUMNS]
            axes.plot(_HP_COLUMNS, ratios, "o-", label=f"{frequency:g} Hz")
        axes.axhline(1.0, color="black", linewidth=0.8)
        axes.set_ylabel("model / closed form")
        axes.tick_params(axis="x", labelrotation=30)
        axes.legend()

    return float(max(errors)), draw


def _measure_hp_lobe_trend(_model):
    table = load_table(HP_TABLE)
    frequencies = table["f_hz"]
    areas = np.array([_hp_measurements(f)[0]["lobe_area_w"] for f in frequencies])
    ratios = areas[1:] / areas[:-1]

    def draw(figure):
        axes = figure.add_subplot()
        axes.loglog(frequencies, areas, "o-", label="model")
        axes.loglog(frequencies, table["lobe_area_w"], "x", label="closed form")
        axes.set_xlabel("drive frequency (Hz)")
        axes.set_ylabel("one-lobe area (W)")
        axes.legend()

    return float(np.max(ratios)), draw


def _measure_hp_pinched(_model):
    loops = [_hp_cycle(f) for f in (1.0, 10.0)]
    errors = []
    for voltage, current, _ in loops:
        # Samples at t = 0, T/2 and T, where the float32 waveform is within 1e-7 V of zero.
        zero = np.abs(np.float32(voltage)) <= 1e-6
        errors.append(np.max(np.abs(current[zero])) / np.max(np.abs(current)))

    def draw(figure):
        axes = figure.add_subplot()
        for (voltage, current, _), frequency in zip(loops, (1, 10)):
            axes.plot(voltage, current * 1e3, label=f"{frequency} Hz")
        axes.set_xlabel("voltage (V)")
        axes.set_ylabel("current (mA)")
        axes.legend()

    return float(max(errors)), draw


def _measure_windows(_model):
    table = load_table(WINDOW_TABLE)
    values = []
    for kind, p, x, sign in zip(table["window"], table["p"], table["x"], table["current_sign"]):
        if kind == 1:
            values.append(float(windows.joglekar(jnp.float32(x), p)))
        elif kind == 2:
            values.append(float(windows.prodromakis(jnp.float32(x), p)))
        else:
            values.append(float(windows.biolek(jnp.float32(x), jnp.float32(sign), p)))
    errors = np.abs(np.array(values) - table["f"])

    def draw(figure):
        axes = figure.add_subplot()
        axes.plot(table["f"], values, "o")
        axes.plot([0, 1], [0, 1], color="black", linewidth=0.8)
        axes.set_xlabel("f (test point)")
        axes.set_ylabel("f (model)")

    return float(np.max(errors)), draw


def _threshold_models():
    return {
        1: VTEAM(x_init_normalized=0.5),
        2: VTEAM(x_init_normalized=0.5, resistance_form="exponential"),
        3: yakopcic_set_a(x_init=0.5),
        4: yakopcic_set_b(),
        5: StanfordPKU(x_init=1e-9),
    }


def _measure_subthreshold(_model):
    table = load_table(THRESHOLD_TABLE)
    thresholds = table.numbers("constants")
    models = _threshold_models()
    changes = []
    for kind, fraction in zip(table["model"], table["fraction"]):
        model = models[int(kind)]
        amplitude = fraction * thresholds[f"threshold_v_{int(kind)}"]
        # One period of a 1 kHz sine, positive and negative half waves.
        t = np.linspace(0.0, 1e-3, 401)
        voltage = jnp.asarray(amplitude * np.sin(2 * np.pi * 1e3 * t), jnp.float32)
        _, x = model.simulate(voltage, 1e-3 / 400)
        span = float(model.x_max) - float(model.x_min)
        changes.append(float(np.max(np.abs(np.asarray(x, np.float64) - float(jnp.float32(model.x_init))))) / span)

    def draw(figure):
        axes = figure.add_subplot()
        axes.bar(range(len(changes)), changes)
        axes.set_xlabel("test case (model, amplitude)")
        axes.set_ylabel("max |x - x_init| / range")

    return float(max(changes)), draw


def _measure_stanford(_model):
    table = load_table(STANFORD_TABLE)
    model = StanfordPKU()
    gaps = table["gap_m"]
    resistance = 0.1 / np.asarray(model.current(jnp.asarray(gaps, jnp.float32), 0.1), np.float64)
    errors = np.abs(resistance / table["resistance_ohm"] - 1)

    def draw(figure):
        axes = figure.add_subplot()
        axes.semilogy(gaps * 1e9, table["resistance_ohm"], "x", label="reference")
        axes.semilogy(gaps * 1e9, resistance, "o", fillstyle="none", label="model")
        axes.set_xlabel("gap (nm)")
        axes.set_ylabel("read resistance at 0.1 V (ohm)")
        axes.legend()

    return float(np.max(errors)), draw


CHECKS = (
    Check("hp_closed_form", "HP model without window vs the closed-form charge solution: x at T/4, T/2, 3T/4, T, "
          "min memristance, one-lobe area at 1, 10, 100 Hz", "relative", HP_TABLE, _measure_hp_closed_form),
    Check("hp_lobe_area_trend", "HP hysteresis lobe area at 10 f over that at f", "ratio", HP_TABLE,
          _measure_hp_lobe_trend),
    Check("hp_pinched_hysteresis", "HP current at zero voltage over the peak current (pinched loop)", "relative",
          HP_TABLE, _measure_hp_pinched),
    Check("window_test_points", "Joglekar, Prodromakis and Biolek windows at test points", "absolute", WINDOW_TABLE,
          _measure_windows),
    Check("subthreshold_state", "state change of VTEAM, Yakopcic and Stanford-PKU under sine drives below threshold",
          "relative", THRESHOLD_TABLE, _measure_subthreshold),
    Check("stanford_read_resistance", "Stanford-PKU read resistance at 0.1 V vs gap", "relative", STANFORD_TABLE,
          _measure_stanford),
)
