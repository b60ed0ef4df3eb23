"""Named pulse-update device presets from published benchmarks, each with its source.

Two families:

- the measured devices of the NeuroSim benchmark table (MLP+NeuroSim V3.0 user manual; P.-Y. Chen,
  X. Peng and S. Yu, IEEE TCAD (2018)): number of states, nonlinearity labels of potentiation
  (LTP) and depression (LTD), on/off ratio and cycle-to-cycle sigma, built on `ExponentialStep`;
- the pulsed device presets of IBM aihwkit (MIT license, `src/aihwkit/simulator/presets/devices.py`),
  whose parameters are published in normalized weight units.

Rule for weight units: a preset's weight range [w_min, w_max] maps linearly onto [g_min, g_max], so a
step of dw in weight units is a step of dw / (w_max - w_min) in fractions of the conductance range,
and a standard deviation maps the same way.

NeuroSim publishes nonlinearity as a label NL that indexes a table of A (in units of the full-range
pulse count). That table is licensed for non-commercial use only, so only the A values of the labels
below, published by the NeuroSim authors, are used. A label that is not among them gets A by log-log
interpolation between its neighbours, and the preset marks that value as assumed.

Programming pulses (used for energy accounting only): the NeuroSim presets take the LTP and LTD pulse
amplitudes and widths of the benchmark table. The aihwkit presets publish no pulses, so theirs come from
the device papers where a source gives them and are marked as assumed otherwise.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

from .pcm import RESET_PULSE, SET_PULSE
from .programming_pulse import ProgrammingPulse
from .pulsed import ExponentialStep, ExpStep, PulsedDevice, SoftBoundsStep, StepNoise

# Published A_norm of NeuroSim nonlinearity labels (MLP+NeuroSim V3.0 `getParamA`; the manual gives
# A_norm = 0.5 / -0.2 for the Ag:a-Si fit, labels 2.40 / -4.88). Negative labels take A with the sign.
_PUBLISHED_A = {
    0.01: 126.268958, 0.04: 31.566827, 0.5: 2.519877, 1.0: 1.251653, 1.5: 0.825164, 1.75: 0.702081,
    1.94: 0.629249, 2.0: 0.609035, 2.4: 0.499181, 3.0: 0.386830, 3.68: 0.300644, 4.0: 0.269089,
    4.88: 0.200303, 5.0: 0.192406, 6.0: 0.135619, 6.76: 0.100251, 7.0: 0.090139, 8.0: 0.052781,
    9.0: 0.022810,
}

# Conductance range assumed for the aihwkit presets, which publish weights only: 0 to 25 uS, the range
# xbar uses for its PCM and ideal devices (assumed, no source gives it for these devices).
_AIHWKIT_G_MIN = 0.0
_AIHWKIT_G_MAX = 25e-6

# Pulses assumed for the HfO2 ReRAM of Gong et al. (2018): +-1 V for 100 ns, typical of analog RRAM but
# not the pulses of that paper.
_ASSUMED_RERAM_PULSES = (ProgrammingPulse(1.0, 100e-9), ProgrammingPulse(-1.0, 100e-9))
_ASSUMED_RERAM_NOTE = "pulses +1 V / -1 V for 100 ns (typical of analog RRAM, not the pulses of Gong et al.)"

# R_ON assumed where the NeuroSim table's R_ON is not legible: 240 kohm, the default of DNN+NeuroSim 2.1
# `Param.cpp` (an assumption, not a measurement of these devices).
_ASSUMED_R_ON = 240e3


def nonlinearity_a_norm(label: float) -> tuple[float, bool]:
    """Return (A_norm, interpolated) for a NeuroSim nonlinearity label.

    A published label returns its A_norm and False. Another label in [0.01, 9] returns a log-log
    interpolation between the nearest published labels and True (an assumed value).

    Raises:
        ValueError: for 0, a non-finite label, or |label| outside [0.01, 9].
    """
    magnitude = abs(float(label))
    if not math.isfinite(magnitude) or not 0.01 <= magnitude <= 9.0:
        raise ValueError(f"nonlinearity label must have |NL| in [0.01, 9], got {label}; for a linear device use ConstantStep")
    sign = 1.0 if label > 0 else -1.0
    for published, a_norm in _PUBLISHED_A.items():
        if math.isclose(magnitude, published, rel_tol=0, abs_tol=1e-9):
            return sign * a_norm, False
    labels = sorted(_PUBLISHED_A)
    upper = next(index for index, value in enumerate(labels) if value > magnitude)
    low, high = labels[upper - 1], labels[upper]
    weight = math.log(magnitude / low) / math.log(high / low)
    log_a = (1 - weight) * math.log(_PUBLISHED_A[low]) + weight * math.log(_PUBLISHED_A[high])
    return sign * math.exp(log_a), True


@dataclass(frozen=True)
class Preset:
    """A named device preset.

    Attributes:
        name: identifier passed to `preset`.
        source: the publication (and code) the numbers come from.
        assumed: parameters that no source gives, with the value chosen.
        notes: behaviour of the source that the preset does not reproduce.
        build: function that returns the device.
    """

    name: str
    source: str
    assumed: tuple[str, ...]
    notes: str
    build: Callable[[], PulsedDevice]


def _neurosim(name, source, states, nl_ltp, nl_ltd, on_off, c2c, pulses, *, g_max=None, assumed=(), notes=""):
    """Build a NeuroSim benchmark preset. `pulses` is the pair (LTP pulse, LTD pulse) of ProgrammingPulse."""
    a_ltp, ltp_assumed = nonlinearity_a_norm(nl_ltp)
    a_ltd, ltd_assumed = nonlinearity_a_norm(nl_ltd)
    assumed = list(assumed)
    if g_max is None:
        g_max = 1.0 / _ASSUMED_R_ON
        assumed.append(f"g_max = 1 / {_ASSUMED_R_ON:.0f} ohm (R_ON not legible in the NeuroSim table)")
    for label, a_norm, flag in ((nl_ltp, a_ltp, ltp_assumed), (nl_ltd, a_ltd, ltd_assumed)):
        if flag:
            assumed.append(f"A_norm = {a_norm:.6f} for NL {label} (log-log interpolation of published labels)")
    g_min = g_max / on_off
    noise = StepNoise(absolute=c2c)
    ltp_pulse, ltd_pulse = pulses

    def build():
        return PulsedDevice(
            up=ExponentialStep(a_ltp, float(states), noise),
            down=ExponentialStep(a_ltd, float(states), noise),
            g_min=g_min, g_max=g_max, potentiation_pulse=ltp_pulse, depression_pulse=ltd_pulse,
        )

    return Preset(name, source, tuple(assumed), notes, build)


def _linear_steps(dw_up, dw_down, gamma_up, gamma_down, w_min, w_max):
    """Convert aihwkit's LinearStep (dw (1 - gamma w / w_bound)) into `SoftBoundsStep` pairs on progress p."""
    span = w_max - w_min
    up_scale = 1.0 - gamma_up * w_min / w_max
    down_scale = 1.0 - gamma_down * w_max / w_min
    up = (dw_up / span * up_scale, gamma_up * span / w_max / up_scale)
    down = (dw_down / span * down_scale, -gamma_down * span / w_min / down_scale)
    return up, down


def _aihwkit_linear(name, source, dw_min, w_min, w_max, gamma_up, gamma_down, noise_std, pulses, *, multiplicative,
                    write_noise_std=0.0, pulse_assumed=(), notes=""):
    span = w_max - w_min
    (up_step, up_gamma), (down_step, down_gamma) = _linear_steps(dw_min, dw_min, gamma_up, gamma_down, w_min, w_max)
    # aihwkit scales the noise by the soft-bound factor only with multiplicative noise.
    up_noise = StepNoise(relative=noise_std) if multiplicative else StepNoise(absolute=noise_std * dw_min / span)
    down_noise = up_noise
    write_noise = write_noise_std * dw_min / span * (_AIHWKIT_G_MAX - _AIHWKIT_G_MIN)

    up_pulse, down_pulse = pulses

    def build():
        return PulsedDevice(
            up=SoftBoundsStep(up_step, up_gamma, up_noise), down=SoftBoundsStep(down_step, down_gamma, down_noise),
            g_min=_AIHWKIT_G_MIN, g_max=_AIHWKIT_G_MAX, write_noise=write_noise,
            potentiation_pulse=up_pulse, depression_pulse=down_pulse,
        )

    assumed = (f"conductance range [{_AIHWKIT_G_MIN}, {_AIHWKIT_G_MAX}] S for weights [{w_min}, {w_max}]", *pulse_assumed)
    return Preset(name, source, assumed, notes, build)


def _exp_step(dw, a, b, gamma, amplitude, w_min, w_max, potentiation):
    """Convert aihwkit's ExpStep (z = 2 a w / (w_max - w_min) + b) into an `ExpStep` on progress p."""
    span = w_max - w_min
    z0 = 2.0 * a * w_min / span + b
    z1 = 2.0 * a
    if potentiation:
        return dw / span, -amplitude * math.exp(gamma * z0), gamma * z1
    return dw / span, -amplitude * math.exp(-gamma * (z0 + z1)), gamma * z1


def _reram_es():
    w_min, w_max, dw_min, up_down = -1.0, 1.0, 0.00135, 0.259359
    span = w_max - w_min
    dw_up, dw_down = dw_min * (1.0 + min(up_down, 0.0)), dw_min * (1.0 - max(up_down, 0.0))
    up = _exp_step(dw_up, -0.5, -0.5, 5.0, -1.18445, w_min, w_max, True)
    down = _exp_step(dw_down, -0.5, -0.5, 5.0, -0.081404, w_min, w_max, False)
    noise = StepNoise(relative=5.0)
    write_noise = 75.0 * dw_min / span * (_AIHWKIT_G_MAX - _AIHWKIT_G_MIN)

    up_pulse, down_pulse = _ASSUMED_RERAM_PULSES

    def build():
        return PulsedDevice(
            up=ExpStep(*up, noise), down=ExpStep(*down, noise),
            g_min=_AIHWKIT_G_MIN, g_max=_AIHWKIT_G_MAX, write_noise=write_noise,
            potentiation_pulse=up_pulse, depression_pulse=down_pulse,
        )

    return build


def _aihwkit_pcm():
    w_min, w_max, dw_min = 0.0, 2.0, 0.01
    span = w_max - w_min
    up = _exp_step(dw_min, -1.0, 0.0, 2.5, -27.235, w_min, w_max, True)
    down = _exp_step(dw_min, -1.0, 0.0, 2.5, -2.235, w_min, w_max, False)
    # aihwkit's PCM noise: 0.6 (|dw| + 0.042 + 0.108 |w|) in weight units; with w = 2 u this is
    # 0.6 |dp| + 0.0126 + 0.0648 u in fractions of the range.
    noise = StepNoise(relative=0.6, absolute=0.6 * 0.042 / span, slope=0.6 * 0.108 * w_max / span)

    def build():
        return PulsedDevice(
            up=ExpStep(*up, noise), down=ExpStep(*down, noise), g_min=_AIHWKIT_G_MIN, g_max=_AIHWKIT_G_MAX,
            potentiation_pulse=SET_PULSE, depression_pulse=RESET_PULSE,
        )

    return build


_AIHWKIT_RANGE = f"conductance range [{_AIHWKIT_G_MIN}, {_AIHWKIT_G_MAX}] S for the weight range"
_WRITE_NOISE_NOTE = (
    "aihwkit redraws its write noise at every update as an apparent weight deviation; here it is the "
    "noise of `program` only. Device-to-device spreads of the source are not applied."
)

# Pulses of the NeuroSim benchmark table (LTP pulse, LTD pulse), amplitude in V and width in s, as the
# table prints them. Kuzum's GST and Jerry's FeFET pulses are average amplitudes of pulse trains.
_NEUROSIM_PULSES = {
    "ag_a_si": (ProgrammingPulse(3.2, 300e-6), ProgrammingPulse(-2.8, 300e-6)),
    "taox_hfox": (ProgrammingPulse(1.6, 50e-9), ProgrammingPulse(1.6, 50e-9)),
    "pcmo": (ProgrammingPulse(-2.0, 1e-3), ProgrammingPulse(2.0, 1e-3)),
    "alox_hfo2": (ProgrammingPulse(0.9, 100e-6), ProgrammingPulse(-1.0, 100e-6)),
    "gst_pcm": (ProgrammingPulse(0.7, 6e-6), ProgrammingPulse(3.0, 125e-9)),
    "epiram": (ProgrammingPulse(5.0, 5e-6), ProgrammingPulse(-3.0, 5e-6)),
    # A FeFET is programmed through its gate, so a pulse costs |V I| tau at the gate. The gate current,
    # 100 nA, is an assumption (no source gives it).
    "hzo_fefet": (ProgrammingPulse(3.65, 75e-9, current=100e-9), ProgrammingPulse(-2.95, 75e-9, current=100e-9)),
}
_FEFET_CURRENT_NOTE = "gate current 100 nA during the programming pulses (assumed; the table gives voltages only)"

# Capacitor cell of Li et al. (2018): the pulse width of 50 ns (period 500 ns) is given in figure 2 of
# the IBM Research blog post "Capacitor-Based Architecture for AI Hardware Accelerators" (July 2018).
# The current of the cell's current sources and their supply voltage are assumptions.
_CAPACITOR_PULSES = (ProgrammingPulse(0.8, 50e-9, current=10e-9), ProgrammingPulse(0.8, 50e-9, current=10e-9))
_CAPACITOR_NOTE = "update pulses of 10 nA from a 0.8 V supply (assumed; the 50 ns pulse width is published)"

# Li-WO3 ECRAM of Tang et al. (2018), programmed by gate current pulses. 5 ns is the shortest pulse width
# that Tang et al. report. The gate voltage of 1 V is assumed, and the current of 0.2 uA is chosen so that
# one pulse costs 1 fJ, the switching energy that they project for a 100 nm x 100 nm cell.
_ECRAM_PULSES = (ProgrammingPulse(1.0, 5e-9, current=0.2e-6), ProgrammingPulse(-1.0, 5e-9, current=0.2e-6))
_ECRAM_NOTE = (
    "gate pulses 1 V, 0.2 uA, 5 ns (1 fJ, the energy Tang et al. project for a 100 nm x 100 nm cell; "
    "voltage and current assumed)"
)

_PRESETS = (
    _neurosim("ag_a_si", "Jo et al., Nano Letters (2010), Ag:a-Si; NeuroSim benchmark table and RealDevice "
              "defaults (Chen, Peng and Yu, IEEE TCAD 2018)", 97, 2.4, -4.88, 12.5, 0.035,
              _NEUROSIM_PULSES["ag_a_si"], g_max=3.8462e-8),
    _neurosim("taox_hfox", "Wu et al., Symposium on VLSI Technology 2018, TaOx/HfOx; NeuroSim benchmark table",
              128, 0.04, -0.63, 10.0, 0.037, _NEUROSIM_PULSES["taox_hfox"]),
    _neurosim("pcmo", "Park et al., IEDM 2013, PCMO; NeuroSim benchmark table", 50, 3.68, -6.76, 6.84, 0.01,
              _NEUROSIM_PULSES["pcmo"], assumed=("cycle-to-cycle sigma = 1 % of the range (the table gives < 1 %)",)),
    _neurosim("alox_hfo2", "Woo et al., IEEE Electron Device Letters (2016), AlOx/HfO2; NeuroSim benchmark table",
              40, 1.94, -0.61, 4.43, 0.05, _NEUROSIM_PULSES["alox_hfo2"]),
    _neurosim("gst_pcm", "Kuzum et al., Nano Letters (2012), GST PCM; NeuroSim benchmark table", 100, 0.105,
              2.4, 19.8, 0.015, _NEUROSIM_PULSES["gst_pcm"], assumed=("100 states (the table gives 100 to 120)",),
              notes="Pulse energy is ohmic at the read conductance, V^2 G tau with the average amplitudes; a "
                    "threshold-switched PCM cell conducts more than its read conductance."),
    _neurosim("epiram", "Choi et al., Nature Materials (2018), EpiRAM Ag:SiGe; NeuroSim benchmark table "
              "(R_ON 81 kohm)", 64, 0.5, -0.5, 50.2, 0.02, _NEUROSIM_PULSES["epiram"], g_max=1.0 / 81e3),
    _neurosim("hzo_fefet", "Jerry et al., IEDM 2017, HZO FeFET; NeuroSim benchmark table", 32, 1.75, 1.46, 45.0,
              0.005, _NEUROSIM_PULSES["hzo_fefet"],
              assumed=("cycle-to-cycle sigma = 0.5 % of the range (the table gives < 0.5 %)", _FEFET_CURRENT_NOTE)),
    Preset("aihwkit_reram_es", "Gong et al., Nature Communications 9, 2102 (2018), HfO2 ReRAM; aihwkit "
           "ReRamESPresetDevice (ExpStep)", (f"{_AIHWKIT_RANGE} [-1, 1]", _ASSUMED_RERAM_NOTE), _WRITE_NOISE_NOTE,
           _reram_es()),
    _aihwkit_linear("aihwkit_reram_sb", "Gong et al., Nature Communications 9, 2102 (2018), HfO2 ReRAM; aihwkit "
                    "ReRamSBPresetDevice (SoftBoundsReference)", 0.002, -0.75, 1.25, 1.0, 1.0, 3.75,
                    _ASSUMED_RERAM_PULSES, multiplicative=False, write_noise_std=56.0,
                    pulse_assumed=(_ASSUMED_RERAM_NOTE,), notes=_WRITE_NOISE_NOTE),
    _aihwkit_linear("aihwkit_capacitor", "Li et al., Symposium on VLSI Technology 2018, capacitor cell; aihwkit "
                    "CapacitorPresetDevice (LinearStep)", 0.005, -1.0, 1.0, 0.05, 0.05, 0.3, _CAPACITOR_PULSES,
                    multiplicative=True, pulse_assumed=(_CAPACITOR_NOTE,),
                    notes="The capacitor leak (lifetime 1e6 mini-batches) and device-to-device spreads are not applied."),
    _aihwkit_linear("aihwkit_ecram", "Tang et al., IEDM 2018, Li-WO3 ECRAM; aihwkit EcRamPresetDevice (LinearStep)",
                    0.002, -0.8276, 1.1724, 0.1153, 0.5085, 0.3, _ECRAM_PULSES, multiplicative=True,
                    pulse_assumed=(_ECRAM_NOTE,), notes="Device-to-device spreads of the source are not applied."),
    Preset("aihwkit_pcm", "Nandakumar et al., Frontiers in Neuroscience 14, 406 (2020), PCM; aihwkit PCMPresetDevice "
           "(ExpStep)", (f"{_AIHWKIT_RANGE} [0, 2]", "SET and RESET pulses of xbar's PCM model (assumed values)"),
           "aihwkit depresses PCM by RESET of a device pair; here depression pulses take the ExpStep down-branch, "
           "and each costs the energy of a RESET pulse. Device-to-device spreads are not applied.", _aihwkit_pcm()),
)
_BY_NAME = {entry.name: entry for entry in _PRESETS}


def list_presets() -> list[str]:
    """Return the names of all pulse-update presets."""
    return list(_BY_NAME)


def preset_info(name: str) -> Preset:
    """Return the preset record `name` (source, assumed values, notes)."""
    try:
        return _BY_NAME[name]
    except KeyError:
        raise ValueError(f"unknown device preset {name!r}; choose from {', '.join(_BY_NAME)}") from None


def preset(name: str) -> PulsedDevice:
    """Return the device of preset `name` (see `list_presets`)."""
    return preset_info(name).build()
