"""Checks of the pulse-update devices (`xbar.devices.pulsed`, `presets`, `fitting`).

- `pulsed_neurosim_curves`: pulse trains of `ExponentialStep` against the NeuroSim curves Gn(x) of the
  published nonlinearity labels (P.-Y. Chen, X. Peng and S. Yu, IEEE TCAD 2018), in last digits;
- `pulsed_aihwkit_pcm_response` and `pulsed_aihwkit_reram_es_steps`: the PCM and ReRAM ES presets
  against the mean pulse response and step sizes of the IBM aihwkit presets, in last digits;
- `pulsed_fit_*`: a piecewise model fitted to measured pulse responses (Gong et al., Nature
  Communications 2018; Sandia CrossSim ramps) is simulated and compared with the data: the mean
  trajectory as a fraction of the conductance range, and the spread of the per-pulse change, binned
  by conductance, as a relative error.

These checks do not use the PCM model that `run_checks` passes to every check.
"""

from __future__ import annotations

import functools
import io
from importlib import resources

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from xbar.devices.fitting import compare_traces, fit_pulse_response
from xbar.devices.presets import nonlinearity_a_norm, preset
from xbar.devices.pulsed import ExponentialStep, PulsedDevice, StepNoise, pulse_trajectory

from ._check import Check
from ._tables import load_table

NEUROSIM_TABLE = "pulsed_neurosim_curves.csv"
PCM_TABLE = "pulsed_aihwkit_pcm_response.csv"
RERAM_TABLE = "pulsed_aihwkit_reram_es_steps.csv"
GONG_TABLE = "pulsed_fit_gong2018.csv"
CROSSSIM_TABLE = "pulsed_fit_crosssim.csv"

# Pulses per full range in the NeuroSim check: x = 0.1, 0.25, 0.5, 0.75 are whole pulse counts.
_NEUROSIM_PULSES = 100
_NEUROSIM_POINTS = (0.1, 0.25, 0.5, 0.75)

# The Gong et al. data are in weight units; G = _GONG_SCALE (w + _GONG_OFFSET), an assumed scale.
_GONG_SCALE = 10e-6
_GONG_OFFSET = 1.5
# CrossSim ramps are read currents at this read voltage.
_CROSSSIM_READ_V = 0.1

_MICRO = 1e6  # plots show conductances in uS


def _noise_free(device: PulsedDevice) -> PulsedDevice:
    return eqx.tree_at(lambda d: (d.up.noise, d.down.noise), device, (StepNoise(), StepNoise()))


def _neurosim_curves(_model):
    table = load_table(NEUROSIM_TABLE)
    errors = []
    curves = []
    counts = [round(x * _NEUROSIM_PULSES) for x in _NEUROSIM_POINTS]
    for row, label in enumerate(table["nl_label"]):
        a_norm, interpolated = nonlinearity_a_norm(float(label))
        if interpolated or abs(a_norm - table["a_norm"][row]) > 0.5 * table.last_digit("a_norm"):
            errors.append(np.inf)
        step = ExponentialStep(a_norm, float(_NEUROSIM_PULSES))
        device = PulsedDevice(up=step, down=step, g_min=0.0, g_max=1.0)
        path = np.asarray(pulse_trajectory(device, 0.0, _NEUROSIM_PULSES, key=jax.random.key(0)), np.float64)
        curves.append(path)
        for x, count in zip(_NEUROSIM_POINTS, counts):
            column = f"gn_{x}"
            errors.append(abs(path[count] - table[column][row]) / table.last_digit(column))

    def draw(figure):
        axes = figure.add_subplot()
        x = np.arange(_NEUROSIM_PULSES + 1) / _NEUROSIM_PULSES
        for row, path in enumerate(curves):
            line, = axes.plot(x, path, lw=1)
            reference = [table[f"gn_{p}"][row] for p in _NEUROSIM_POINTS]
            axes.plot(_NEUROSIM_POINTS, reference, "o", color=line.get_color(), ms=4,
                      label=f"NL {table['nl_label'][row]:g}")
        axes.set_xlabel("pulse number / pulses for the full range")
        axes.set_ylabel("normalized conductance Gn")
        axes.legend(fontsize="x-small", ncol=2)

    return float(np.max(errors)), draw


def _pcm_response(_model):
    table = load_table(PCM_TABLE)
    device = _noise_free(preset("aihwkit_pcm"))
    pulses = table["pulses"].astype(int)
    path = np.asarray(pulse_trajectory(device, device.g_min, int(pulses.max()), key=jax.random.key(0)), np.float64)
    # The preset maps weights [0, 2] onto [g_min, g_max].
    weight = 2.0 * (path - device.g_min) / (device.g_max - device.g_min)
    error = float(np.max(np.abs(weight[pulses] - table["weight"]) / table["rounding"]))

    def draw(figure):
        axes = figure.add_subplot()
        axes.plot(np.arange(len(weight)), weight, label="xbar aihwkit_pcm preset")
        axes.plot(pulses, table["weight"], "o", label="aihwkit PCMPresetDevice (derived)")
        axes.set_xlabel("potentiation pulses")
        axes.set_ylabel("weight (range [0, 2])")
        axes.legend()

    return error, draw


def _reram_steps(_model):
    table = load_table(RERAM_TABLE)
    device = preset("aihwkit_reram_es")
    u = jnp.asarray((table["weight"] + 1.0) / 2.0, jnp.float32)
    # Steps in fractions of the range times the weight range 2 are steps in weight units.
    up = 2.0 * np.asarray(device.up.mean_step(u, True), np.float64)
    down = 2.0 * np.asarray(device.down.mean_step(u, False), np.float64)
    error = float(max(np.max(np.abs(up - table["dw_up"])) / table.last_digit("dw_up"),
                      np.max(np.abs(down - table["dw_down"])) / table.last_digit("dw_down")))

    def draw(figure):
        axes = figure.add_subplot()
        w = np.linspace(-1.0, 1.0, 201)
        dense = jnp.asarray((w + 1.0) / 2.0, jnp.float32)
        axes.plot(w, 2.0 * np.asarray(device.up.mean_step(dense, True)), label="xbar potentiation")
        axes.plot(w, 2.0 * np.asarray(device.down.mean_step(dense, False)), label="xbar depression")
        axes.plot(table["weight"], table["dw_up"], "o", label="aihwkit potentiation (derived)")
        axes.plot(table["weight"], table["dw_down"], "s", label="aihwkit depression (derived)")
        axes.set_xlabel("weight")
        axes.set_ylabel("mean step (weight units)")
        axes.set_yscale("log")
        axes.legend(fontsize="small")

    return error, draw


def _read_data(name: str, **options) -> np.ndarray:
    text = (resources.files("xbar.validation") / "data" / name).read_text(encoding="utf-8")
    return np.genfromtxt(io.StringIO(text), delimiter=",", **options)


def _settings(table_name: str) -> dict[str, int]:
    table = load_table(table_name)
    return {column: int(table[column][0]) for column in table.columns}


@functools.cache
def _fit_and_compare(dataset: str):
    """Fit the measured data set and compare simulated traces with it, for both polarities."""
    if dataset == "gong2018":
        settings = _settings(GONG_TABLE)
        weights = _read_data("gong2018_hfo2_pulse_response.csv")
        up, down = _GONG_SCALE * (weights[:, 0] + _GONG_OFFSET), _GONG_SCALE * (weights[:, 1] + _GONG_OFFSET)
    else:
        settings = _settings(CROSSSIM_TABLE)
        up = _read_data("crosssim_set_ramps.csv", skip_header=1) / _CROSSSIM_READ_V
        down = _read_data("crosssim_reset_ramps.csv", skip_header=1) / _CROSSSIM_READ_V

    fit = fit_pulse_response(up, down, nodes=settings["nodes"], half_width=settings["half_width"])
    comparisons = []
    for number, (traces, potentiate) in enumerate(((up, True), (down, False))):
        comparisons.append(compare_traces(
            fit.device, traces, key=jax.random.key(number), potentiate=potentiate, repeats=settings["repeats"],
            bins=settings["bins"], min_count=settings["min_count"], half_width=settings["half_width"],
            trajectory_half_width=settings["trajectory_half_width"],
        ))
    return fit, comparisons


def _draw_trajectories(comparisons, figure):
    axes = figure.add_subplot()
    for comparison, label in zip(comparisons, ("potentiation", "depression")):
        line, = axes.plot(comparison.pulse, comparison.measured_mean * _MICRO, lw=1.5, label=f"measured {label}")
        axes.plot(comparison.pulse, comparison.simulated_mean * _MICRO, "--", color=line.get_color(),
                  label=f"fitted model {label}")
    axes.set_xlabel("pulse")
    axes.set_ylabel("mean conductance (uS)")
    axes.legend(fontsize="small")


def _draw_stds(comparisons, figure):
    axes = figure.add_subplot()
    for comparison, label in zip(comparisons, ("potentiation", "depression")):
        line, = axes.plot(comparison.bin_centers * _MICRO, comparison.measured_std * _MICRO, "o-",
                          label=f"measured {label}")
        axes.plot(comparison.bin_centers * _MICRO, comparison.simulated_std * _MICRO, "x--",
                  color=line.get_color(), label=f"fitted model {label}")
    axes.set_xlabel("conductance before the pulse (uS)")
    axes.set_ylabel("std of the per-pulse change (uS)")
    axes.legend(fontsize="small")


def _comparison_check(dataset, error_name, draw):
    """Return a measure that fits `dataset` once (cached) and reports the worst `error_name` of both polarities."""

    def measure(_model):
        _, comparisons = _fit_and_compare(dataset)
        error = max(getattr(comparison, error_name) for comparison in comparisons)
        return error, functools.partial(draw, comparisons)

    return measure


_LAST_DIGITS = "last digits"
_RANGE = "fraction of range"

CHECKS = (
    Check(
        "pulsed_neurosim_curves",
        "normalized conductance after 10, 25, 50 and 75 of 100 pulses of ExponentialStep for the published "
        "NeuroSim nonlinearity labels, against Gn(x) of the closed form; error: max |model - table| in units of "
        "the table's last digit (A_norm must match the published value)",
        _LAST_DIGITS, NEUROSIM_TABLE, _neurosim_curves,
    ),
    Check(
        "pulsed_aihwkit_pcm_response",
        "weight after 1 to 50 potentiation pulses of the noise-free aihwkit_pcm preset from w = 0, against the "
        "aihwkit PCMPresetDevice mean response; error: max |model - table| in units of each row's last digit",
        _LAST_DIGITS, PCM_TABLE, _pcm_response,
    ),
    Check(
        "pulsed_aihwkit_reram_es_steps",
        "mean potentiation and depression steps of the aihwkit_reram_es preset at five weights, against the "
        "aihwkit ReRamESPresetDevice steps; error: max |model - table| in units of the table's last digit",
        _LAST_DIGITS, RERAM_TABLE, _reram_steps,
    ),
    Check(
        "pulsed_fit_gong2018_trajectory",
        "mean trajectory of the piecewise model fitted to the Gong et al. 2018 HfO2 pulse response, simulated "
        "from the measured start, against the measured trace; error: max |simulated - measured| / range",
        _RANGE, GONG_TABLE, _comparison_check("gong2018", "trajectory_error", _draw_trajectories),
    ),
    Check(
        "pulsed_fit_gong2018_change_std",
        "std of the per-pulse change, binned by conductance, of simulated traces of the fitted model against "
        "the Gong et al. 2018 data; error: max |simulated - measured| / measured",
        "relative", GONG_TABLE, _comparison_check("gong2018", "std_error", _draw_stds),
    ),
    Check(
        "pulsed_fit_crosssim_trajectory",
        "mean trajectory over ramps of the piecewise model fitted to the CrossSim SET and RESET ramps, against "
        "the measured mean; error: max |simulated - measured| / range",
        _RANGE, CROSSSIM_TABLE, _comparison_check("crosssim", "trajectory_error", _draw_trajectories),
    ),
    Check(
        "pulsed_fit_crosssim_change_std",
        "std of the per-pulse change, binned by conductance, of simulated ramps of the fitted model against the "
        "CrossSim ramps; error: max |simulated - measured| / measured",
        "relative", CROSSSIM_TABLE, _comparison_check("crosssim", "std_error", _draw_stds),
    ),
)
