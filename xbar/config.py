"""Study configuration files (TOML): schema, validation and construction of the simulated hardware.

A study file has the sections `[study]`, `[device]`, `[wear]`, `[array]`, `[parasitics]`, `[dac]`, `[adc]`,
`[noise]`, `[read]`, `[workload]` and `[sweep]`. Every key is checked against the schema below before any work starts;
unknown keys are rejected with the closest known spelling.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ._validation import is_concrete
from .crossbar import ADC, DAC, Core, CostModel, Parasitics, Slicing, Tile
from .devices import PCM, Endurance, IdealDevice, ProgramVerify
from .devices.presets import list_presets, preset
from .variability import StuckAtFaults


class ConfigError(ValueError):
    """An invalid study configuration; the message names the key, the value and the fix."""


DEVICE_MODELS = {"pcm": PCM, "ideal": IdealDevice, "preset": None}
# device.model also accepts the name of a preset, which selects that preset with its own parameters, so that
# one sweep axis can visit the ideal device, the PCM model and presets.
PRESET_MODELS = tuple(list_presets())
WORKLOADS = ("mvm_error", "digits", "stdp_digits", "hwa_digits", "faults_digits", "pulsed_digits")


@dataclass(frozen=True)
class Key:
    """Schema entry of one configuration key."""

    types: tuple[type, ...]
    default: Any
    description: str
    sweepable: bool = True  # True: numeric and vectorized in sweeps; False: looped (changes structure)
    units: str = ""
    choices: tuple[Any, ...] = ()
    positive: bool = False  # numbers must be > 0 (>= 0 otherwise, where numeric)


_NUMBER = (int, float)
_BITS = (int, str)  # an integer, or "ideal"

_COST = CostModel()

SCHEMA: dict[str, dict[str, Key]] = {
    "study": {
        "name": Key((str,), "", "short name of the study", sweepable=False),
        "description": Key((str,), "", "what the study measures", sweepable=False),
        "workload": Key((str,), "mvm_error", "what is simulated", sweepable=False, choices=WORKLOADS),
    },
    "device": {
        "model": Key(
            (str,), "pcm", "device model, or the name of a preset", sweepable=False,
            choices=tuple(DEVICE_MODELS) + PRESET_MODELS,
        ),
    },
    "array": {
        "rows": Key((int,), 256, "rows (word lines) of the tile", sweepable=False, positive=True),
        "cols": Key((int,), 256, "columns (bit lines) of the tile", sweepable=False, positive=True),
        "read_voltage": Key(_NUMBER, 0.2, "row voltage of a full-scale input", units="V", positive=True),
        "read_time": Key(_NUMBER, 250e-9, "duration of one read", units="s", positive=True),
        "weight_range": Key(_NUMBER, 0.0, "weight mapped to g_max; 0 uses max|W|", sweepable=False, units="1"),
        "programming": Key(
            (str,), "write", "program each device by one noisy write, or by verified pulse trains",
            sweepable=False, choices=("write", "pulses"),
        ),
        "pulse_tolerance": Key(
            _NUMBER, 0.02, "accepted error of pulse programming, as a share of the range",
            sweepable=False, units="1", positive=True,
        ),
        "max_pulses": Key((int,), 1000, "most pulses per device in pulse programming", sweepable=False, positive=True),
    },
    "parasitics": {
        "word_line": Key(_NUMBER, 0.0, "resistance of the word-line wire across one cell; 0 for ideal wires", units="ohm"),
        "bit_line": Key(_NUMBER, 0.0, "resistance of the bit-line wire across one cell; 0 for ideal wires", units="ohm"),
        "driver": Key(_NUMBER, 0.0, "output resistance of each line driver", units="ohm"),
        "sense": Key(_NUMBER, 0.0, "input resistance of each sense amplifier; 0 is a virtual ground", units="ohm"),
        "compensation": Key((bool,), False, "pre-distort the programmed conductances against IR drop", sweepable=False),
        "compensation_input": Key(
            _NUMBER, 0.5, "row input level of the compensation, as a share of the read voltage", units="1", positive=True
        ),
    },
    "core": {
        "tile_rows": Key(
            (int,), 0, "rows of each tile of a multi-tile core; 0 puts each weight matrix on one tile of its own size",
            sweepable=False,
        ),
        "tile_cols": Key(
            (int,), 0, "columns of each tile of a multi-tile core; 0 puts each weight matrix on one tile of its own size",
            sweepable=False,
        ),
    },
    "slicing": {
        "input_bits": Key(
            (int,), 0, "magnitude bits of bit-serial inputs, one read per bit; 0 for one analog read through the DAC",
            sweepable=False,
        ),
        "weight_slices": Key((int,), 1, "devices of binary significance per weight", sweepable=False, positive=True),
        "bits_per_slice": Key((int,), 0, "bits stored by each slice device; 0 for analog weights", sweepable=False),
        "negative": Key(
            (str,), "differential", "signed weights by differential pairs, or by an offset and a reference column",
            sweepable=False, choices=("differential", "offset"),
        ),
    },
    "cost": {
        # Defaults and their sources: xbar.crossbar.cost.CostModel.
        "adc_fom": Key(_NUMBER, _COST.adc_fom, "ADC energy per conversion step (Walden figure of merit)", units="J"),
        "adc_time": Key(_NUMBER, _COST.adc_time, "ADC conversion time", units="s"),
        "adc_area": Key(_NUMBER, _COST.adc_area, "area of one ADC", units="m^2"),
        "dac_energy_per_bit": Key(_NUMBER, _COST.dac_energy_per_bit, "DAC energy per conversion and bit", units="J"),
        "add_energy": Key(_NUMBER, _COST.add_energy, "energy of one digital addition", units="J"),
        "cell_area_f2": Key(_NUMBER, _COST.cell_area_f2, "area of one cell in squared feature sizes", units="1"),
        "feature_size": Key(_NUMBER, _COST.feature_size, "feature size of the technology", units="m"),
        "input_encoding": Key(
            (str,), _COST.input_encoding, "inputs as read-voltage amplitudes or as pulse widths", sweepable=False,
            choices=("amplitude", "pulse_width"),
        ),
    },
    "dac": {
        "bits": Key(_BITS, "ideal", 'input DAC resolution in bits, or "ideal"', sweepable=False),
        "input_range": Key(_NUMBER, 1.0, "input magnitude mapped to the full read voltage", units="1", positive=True),
    },
    "adc": {
        "bits": Key(_BITS, "ideal", 'output ADC resolution in bits, or "ideal"', sweepable=False),
        "current_range": Key(
            _NUMBER, 0.0, "ADC full-scale current; 0 calibrates it on the workload", sweepable=False, units="A"
        ),
        "headroom": Key(_NUMBER, 1.0, "multiplier of a calibrated ADC range", units="1", positive=True),
    },
    "noise": {
        "short_term": Key(_NUMBER, 0.0, "relative std of each device current per product", units="1"),
        "output": Key(_NUMBER, 0.0, "std of the current noise at each ADC input", units="A"),
    },
    "wear": {
        "cycles": Key(_NUMBER, 0.0, "write cycles every device endured before programming", units="1"),
        "onset_cycles": Key(_NUMBER, 1e6, "cycles after which the conductance window starts to close", units="1", positive=True),
        "closure_per_decade": Key(_NUMBER, 0.1, "share of the window lost per decade of cycles after the onset", units="1"),
        "failure_scale": Key(_NUMBER, 1e8, "Weibull scale of the cycles to failure", units="1", positive=True),
        "fault_rate": Key(_NUMBER, 0.0, "share of devices stuck at g_min or g_max", units="1"),
        "sa1_share": Key(_NUMBER, 0.5, "share of the stuck devices that are stuck at g_max", units="1"),
    },
    "read": {
        "time": Key(_NUMBER, 0.0, "time after programming at which the array is read", units="s"),
        "drift_compensation": Key((bool,), False, "apply global drift compensation", sweepable=False),
    },
    "workload": {
        "batch": Key((int,), 512, "input vectors per evaluation (mvm_error)", sweepable=False, positive=True),
        "weights_low": Key(_NUMBER, -1.0, "lower bound of the uniform weights (mvm_error)", sweepable=False),
        "weights_high": Key(_NUMBER, 1.0, "upper bound of the uniform weights (mvm_error)", sweepable=False),
        "inputs_low": Key(_NUMBER, -1.0, "lower bound of the uniform inputs (mvm_error)", sweepable=False),
        "inputs_high": Key(_NUMBER, 1.0, "upper bound of the uniform inputs (mvm_error)", sweepable=False),
        "hidden": Key((int,), 32, "hidden units of the perceptron (digits, hwa_digits, faults_digits, pulsed_digits)", sweepable=False, positive=True),
        "train_steps": Key(
            (int,), 400, "full-batch Adam steps of software training (digits; before the two trainings of hwa_digits and "
            "faults_digits)",
            sweepable=False, positive=True,
        ),
        "learning_rate": Key(_NUMBER, 0.01, "Adam learning rate (digits, hwa_digits, faults_digits); SGD learning rate of in-situ training (pulsed_digits)", sweepable=False, positive=True),
        "test_fraction": Key(_NUMBER, 0.25, "share of the digits held out for testing", sweepable=False, positive=True),
        "training_seed": Key((int,), 0, "seed of the data split and of training (digits, hwa_digits, faults_digits, pulsed_digits)", sweepable=False),
        # hwa_digits: hardware-aware against software training (xbar.hwa_digits describes both).
        "network": Key(
            (str,), "mlp", "network trained: a multilayer perceptron or a small convolutional network (hwa_digits)",
            sweepable=False, choices=("mlp", "cnn"),
        ),
        "channels": Key(
            (int,), 8, "output channels of the 3 x 3 convolution of the cnn (hwa_digits)", sweepable=False, positive=True
        ),
        "hwa_steps": Key(
            (int,), 400, "full-batch Adam steps after train_steps, hardware-aware for one network and in software for "
            "the other (hwa_digits)", sweepable=False, positive=True,
        ),
        "weight_clip": Key(
            _NUMBER, 2.5, "weight clipping in hardware-aware training, in standard deviations of each layer's "
            "weights after train_steps (hwa_digits, faults_digits)", sweepable=False, units="1", positive=True,
        ),
        "horizon_min": Key(
            _NUMBER, 1.0, "shortest read time after programming drawn in hardware-aware training (hwa_digits)",
            sweepable=False, units="s", positive=True,
        ),
        "horizon_max": Key(
            _NUMBER, 3.1536e7, "longest read time after programming drawn in hardware-aware training (hwa_digits)",
            sweepable=False, units="s", positive=True,
        ),
        # faults_digits: variability-aware against standard training (xbar.faults_digits describes both).
        "variability_steps": Key(
            (int,), 400, "full-batch Adam steps after train_steps, variability-aware for one network and in software "
            "for the other (faults_digits)", sweepable=False, positive=True,
        ),
        "train_fault_rate": Key(
            _NUMBER, 0.1, "share of devices stuck at g_min or g_max in each chip drawn in variability-aware training "
            "(faults_digits)", sweepable=False, units="1",
        ),
        "device_samples": Key(
            (int,), 8, "Monte Carlo chips averaged in each step of variability-aware training (faults_digits)",
            sweepable=False, positive=True,
        ),
        "g_max_spread": Key(
            _NUMBER, 0.0, "lognormal sigma of each device's g_max, in training and evaluation (faults_digits)",
            sweepable=False, units="1",
        ),
        # pulsed_digits: in-situ training with pulsed updates (xbar.pulsed_digits describes it).
        "update": Key(
            (str,), "stochastic", "weight update: stochastic pulse trains (Gokmen and Vlasov 2016) or mixed precision "
            "(pulsed_digits)", sweepable=False, choices=("stochastic", "mixed_precision"),
        ),
        "pulse_length": Key(
            (int,), 10, "pulse-train length BL of the stochastic update, and the most pulses per device and update "
            "(pulsed_digits)", sweepable=False, positive=True,
        ),
        "pair": Key(
            (str,), "reference", "use of the differential pair: all pulses to G+ against a fixed mid-range G-, or "
            "potentiation of G+ or G- (pulsed_digits)", sweepable=False, choices=("reference", "differential"),
        ),
        "nonlinearity": Key(
            _NUMBER, 0.0, "fall of the pulse step towards each bound, from 0 (constant) to 1 (soft bounds), of the "
            'device built for device.model = "ideal" (pulsed_digits)', units="1",
        ),
        "asymmetry": Key(
            _NUMBER, 0.0, "(up - down) / mean of the pulse steps at mid-range, below 2, of the device built for "
            'device.model = "ideal" (pulsed_digits)', units="1",
        ),
        "step_noise": Key(
            _NUMBER, 0.0, "cycle-to-cycle standard deviation of each pulse step relative to its mean, of the device "
            'built for device.model = "ideal" (pulsed_digits)', units="1",
        ),
        # stdp_digits: the unsupervised network of Diehl and Cook (2015); xbar.learning.diehl_cook gives the
        # sources of the defaults.
        "neurons": Key((int,), 100, "excitatory neurons (stdp_digits)", sweepable=False, positive=True),
        "train_images": Key(
            (int,), 0, "training images shown per epoch; 0 shows the whole training split (stdp_digits)",
            sweepable=False,
        ),
        "epochs": Key((int,), 1, "passes over the training images (stdp_digits, pulsed_digits)", sweepable=False, positive=True),
        "time_step": Key(
            _NUMBER, 0.5e-3, "simulation time step (stdp_digits)", sweepable=False, units="s", positive=True
        ),
        "presentation_time": Key(
            _NUMBER, 0.35, "time each image is shown (stdp_digits)", sweepable=False, units="s", positive=True
        ),
        "rest_time": Key(
            _NUMBER, 0.15, "time without input after each training image (stdp_digits)", sweepable=False, units="s"
        ),
        "max_rate": Key(
            _NUMBER, 63.75, "input rate of a pixel at full intensity (stdp_digits)", units="Hz", positive=True
        ),
        "rate_step": Key(
            _NUMBER, 32.0, "raise of max_rate for each repeat of an image that drew too few spikes (stdp_digits)",
            units="Hz",
        ),
        "min_spikes": Key(
            (int,), 5, "minimum number of spikes of the layer per image; fewer show it again (stdp_digits)",
            sweepable=False,
        ),
        "max_repeats": Key((int,), 4, "most repeats of one image at raised rates (stdp_digits)", sweepable=False),
        "theta_plus": Key(_NUMBER, 0.05e-3, "threshold increase per spike (stdp_digits)", units="V"),
        "tau_theta": Key(
            _NUMBER, 1e4, "decay time constant of the adaptive threshold (stdp_digits)", units="s", positive=True
        ),
        "inhibition": Key(
            _NUMBER, 12e-3, "membrane potential drop of the other neurons per spike (stdp_digits)", units="V"
        ),
        "winner_take_all": Key(
            (bool,), False, "at most one neuron spikes per time step (stdp_digits)", sweepable=False
        ),
        "potentiation_rate": Key(
            _NUMBER, 0.01, "weight gain of a pair at delay 0+, as a share of array.weight_range (stdp_digits)",
            units="1",
        ),
        "depression_rate": Key(
            _NUMBER, 1e-4, "weight loss of a pair at delay 0-, as a share of array.weight_range (stdp_digits)",
            units="1",
        ),
        "weight_mean": Key(
            _NUMBER, 0.1,
            "target mean input weight of each neuron, as a share of array.weight_range; 0 turns the "
            "normalisation off (stdp_digits)",
            sweepable=False, units="1",
        ),
        "rounding": Key(
            (str,), "auto",
            "rounding of pulse counts: stochastic, nearest, none, or auto (none on the ideal device, stochastic "
            "elsewhere) (stdp_digits)",
            sweepable=False, choices=("auto", "stochastic", "nearest", "none"),
        ),
        "initial_weight": Key(
            _NUMBER, 0.3, "largest initial weight, as a share of array.weight_range (stdp_digits)", units="1",
            positive=True,
        ),
    },
    "sweep": {
        "seeds": Key((int, list), 1, "number of Monte Carlo seeds, or a list of seeds", sweepable=False),
        "axes": Key((list,), [], "swept parameters ([[sweep.axes]] tables)", sweepable=False),
    },
}

AXIS_KEYS = {"key", "values", "name"}

# Device parameters that must be > 0 (the others must be >= 0).
_POSITIVE_DEVICE_KEYS = {"g_max", "prog_g_ref", "t0", "t_read", "q_s_exponent", "q_s_floor", "q_s_max", "set_rate", "pulse_step"}

# Conductances above this are unphysical for a memory device (a 100-ohm cell); the usual cause is a
# value given in uS without "e-6".
_G_PLAUSIBLE = 1e-2

_MAX_BITS = 24  # beyond float32 resolution


def device_keys(model: str) -> dict[str, Key]:
    """Return the schema of `[device]` for one model: its numeric parameters, with their defaults."""
    keys = dict(SCHEMA["device"])
    if model in PRESET_MODELS:
        return keys
    if model == "preset":
        keys["preset"] = Key((str,), "taox_hfox", "name of a pulse-update device preset", sweepable=False, choices=tuple(list_presets()))
        return keys
    cls = DEVICE_MODELS[model]
    for f in dataclasses.fields(cls):
        default = f.default
        if isinstance(default, (int, float)) and not isinstance(default, bool):
            units = ""
            if f.name.startswith("g_"):
                units = "S"
            elif f.name in ("t0", "t_read"):
                units = "s"
            keys[f.name] = Key(
                _NUMBER, float(default), f"{cls.__name__}.{f.name}", units=units, positive=f.name in _POSITIVE_DEVICE_KEYS
            )
    return keys


@dataclass(frozen=True)
class SweepAxis:
    """One swept dimension: one configuration key, or several keys that take each value together."""

    keys: tuple[str, ...]  # "section.name" entries
    name: str  # dimension name in the result
    values: tuple[Any, ...]
    vectorized: bool
    units: str
    description: str

    @property
    def key(self) -> str:
        """The swept keys as one label, e.g. "array.rows" or "array.rows + array.cols"."""
        return " + ".join(self.keys)


@dataclass(frozen=True)
class StudyConfig:
    """A validated study: the full configuration with defaults filled in, and its sweep."""

    sections: dict[str, dict[str, Any]]
    axes: tuple[SweepAxis, ...]
    seeds: tuple[int, ...]
    text: str = ""
    source: str = ""
    name: str = field(default="")

    def get(self, dotted: str) -> Any:
        section, name = dotted.split(".", 1)
        return self.sections[section][name]

    def with_values(self, values: dict[str, Any]) -> dict[str, dict[str, Any]]:
        """Return the sections with some keys ("section.name" -> value) replaced."""
        sections = {name: dict(entries) for name, entries in self.sections.items()}
        for dotted, value in values.items():
            section, name = dotted.split(".", 1)
            sections[section][name] = value
        return sections


def _suggest(word: str, options) -> str:
    close = difflib.get_close_matches(word, list(options), n=1)
    return f'; did you mean "{close[0]}"?' if close else f"; known keys: {', '.join(sorted(options))}"


def _check_value(where: str, value: Any, spec: Key) -> Any:
    if isinstance(value, bool) and bool not in spec.types:
        raise ConfigError(f"{where} = {str(value).lower()} has the wrong type: expected {_type_names(spec)}")
    if not isinstance(value, spec.types):
        raise ConfigError(f"{where} = {value!r} has the wrong type ({type(value).__name__}): expected {_type_names(spec)}")
    if spec.choices and value not in spec.choices:
        raise ConfigError(f"{where} = {value!r} is not one of {', '.join(map(repr, spec.choices))}")
    if spec.types == _BITS:
        if isinstance(value, str):
            if value != "ideal":
                raise ConfigError(f'{where} = {value!r}: use a whole number of bits (>= 1) or "ideal"')
        elif value < 1:
            raise ConfigError(f'{where} = {value}: a converter needs at least 1 bit; use "ideal" for no quantization')
        elif value > _MAX_BITS:
            raise ConfigError(f'{where} = {value}: at most {_MAX_BITS} bits fit float32; use "ideal" for no quantization')
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        if not math.isfinite(value):
            raise ConfigError(f"{where} = {value}: must be a finite number")
        units = f" {spec.units}" if spec.units and spec.units != "1" else ""
        if spec.positive and value <= 0:
            raise ConfigError(f"{where} = {value}: must be > 0{units}")
        if not spec.positive and value < 0 and not where.split(".")[-1].endswith(("_low", "_high")):
            raise ConfigError(f"{where} = {value}: must be >= 0{units}")
        if where.split(" ")[0] in ("device.g_max", "device.g_min") and value > _G_PLAUSIBLE:
            raise ConfigError(f"{where} = {value} S is not a plausible device conductance; write 25 uS as 25e-6")
    return float(value) if spec.types == _NUMBER else value


def _type_names(spec: Key) -> str:
    if spec.types == _BITS:
        return 'an integer number of bits or "ideal"'
    names = {int: "integer", float: "number", str: "string", bool: "true or false", list: "list"}
    if spec.types == _NUMBER:
        return "a number"
    return " or ".join(names.get(t, t.__name__) for t in spec.types)


def parse_config(text: str, source: str = "<string>") -> StudyConfig:
    """Parse and validate a study configuration given as TOML text."""
    try:
        return _parse(text, source)
    except ConfigError as error:
        if str(error).startswith(source):
            raise
        raise ConfigError(f"{source}: {error}") from None


def _parse(text: str, source: str) -> StudyConfig:
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"{source}: invalid TOML: {error}") from None

    for section in raw:
        if section not in SCHEMA:
            raise ConfigError(f"{source}: unknown section [{section}]{_suggest(section, SCHEMA)}")
        if not isinstance(raw[section], dict):
            raise ConfigError(f"{source}: {section} must be a [{section}] table")

    model = raw.get("device", {}).get("model", "pcm")
    if model not in SCHEMA["device"]["model"].choices:
        raise ConfigError(
            f"{source}: device.model = {model!r} is not one of {', '.join(map(repr, DEVICE_MODELS))} "
            f"or a preset name ({', '.join(PRESET_MODELS)})"
        )
    schema = dict(SCHEMA, device=device_keys(model))
    if _sweeps_device_model(raw):
        # Each swept model takes its own default parameters, so the file may not set any of them.
        for name in raw.get("device", {}):
            if name != "model":
                raise ConfigError(
                    f"{source}: device.{name} cannot be set while device.model is swept, because each swept "
                    f"model uses its own default parameters; remove device.{name} or sweep one model only"
                )
        schema["device"] = dict(SCHEMA["device"])

    sections: dict[str, dict[str, Any]] = {}
    for section, keys in schema.items():
        given = raw.get(section, {})
        for name in given:
            if name not in keys:
                raise ConfigError(f"{source}: unknown key {section}.{name}{_suggest(name, keys)}")
        sections[section] = {
            name: _check_value(f"{section}.{name}", given[name], spec) if name in given else spec.default
            for name, spec in keys.items()
        }

    _check_ranges(sections, source)
    _check_shares(sections, raw.get("sweep", {}).get("axes", []), source)
    seeds = _parse_seeds(sections["sweep"]["seeds"], source)
    axes = tuple(_parse_axis(entry, i, schema, source) for i, entry in enumerate(sections["sweep"]["axes"]))
    _check_swept_ranges(sections, axes, source)
    _check_parasitics(sections, axes, source)
    _check_slicing(sections, axes, source)
    if sections["study"]["workload"] == "stdp_digits":
        _check_stdp_digits(sections, axes, source)
    names = [axis.name for axis in axes]
    if len(set(names)) != len(names):
        raise ConfigError(f"{source}: two sweep axes share the name {sorted(n for n in names if names.count(n) > 1)[0]!r}; give one a distinct name")
    keys = [key for axis in axes for key in axis.keys]
    if len(set(keys)) != len(keys):
        raise ConfigError(f"{source}: a key is swept twice; merge its values into one [[sweep.axes]] table")
    study_name = sections["study"]["name"] or Path(source).stem
    return StudyConfig(sections=sections, axes=axes, seeds=seeds, text=text, source=source, name=study_name)


def _sweeps_device_model(raw) -> bool:
    """Return True when a [[sweep.axes]] table of the raw TOML sweeps device.model."""
    axes = raw.get("sweep", {}).get("axes", [])
    if not isinstance(axes, list):
        return False
    for entry in axes:
        keys = entry.get("key") if isinstance(entry, dict) else None
        if keys == "device.model" or (isinstance(keys, list) and "device.model" in keys):
            return True
    return False


def load_config(path) -> StudyConfig:
    """Read and validate a study configuration file."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"configuration file {str(path)!r} not found") from None
    except (IsADirectoryError, PermissionError, UnicodeDecodeError) as error:
        raise ConfigError(f"cannot read configuration file {str(path)!r}: {error}") from None
    return parse_config(text, source=str(path))


def _check_ranges(sections, source):
    device = sections["device"]
    if "g_min" in device and device["g_min"] >= device["g_max"]:
        raise ConfigError(
            f"{source}: device.g_min ({device['g_min']} S) must be below device.g_max ({device['g_max']} S); swap them"
        )
    workload = sections["workload"]
    for what in ("weights", "inputs"):
        if workload[f"{what}_low"] >= workload[f"{what}_high"]:
            raise ConfigError(f"{source}: workload.{what}_low must be below workload.{what}_high")
    if not 0 < workload["test_fraction"] < 1:
        raise ConfigError(f"{source}: workload.test_fraction = {workload['test_fraction']} must be between 0 and 1")


def _check_shares(sections, raw_axes, source):
    """Reject fault rates and shares outside [0, 1], swept or not."""
    for name in ("fault_rate", "sa1_share"):
        values = [sections["wear"][name]]
        values += [v for axis in raw_axes if isinstance(axis, dict) and axis.get("key") == f"wear.{name}"
                   for v in axis.get("values", []) if isinstance(v, (int, float))]
        if any(not 0 <= v <= 1 for v in values):
            raise ConfigError(f"{source}: wear.{name} must be between 0 and 1, got {values}")


def _check_swept_ranges(sections, axes, source):
    """Reject sweeps in which any combination would put g_min at or above g_max."""
    device = sections["device"]
    if "g_min" not in device:
        return
    swept = {key: axis.values for axis in axes for key in axis.keys}
    g_min = swept.get("device.g_min", (device["g_min"],))
    g_max = swept.get("device.g_max", (device["g_max"],))
    if max(g_min) >= min(g_max):
        raise ConfigError(
            f"{source}: the sweep pairs device.g_min = {max(g_min)} S with device.g_max = {min(g_max)} S; "
            "every g_min must be below every g_max"
        )


def _check_stdp_digits(sections, axes, source):
    """Reject settings that the stdp_digits workload cannot simulate, for every swept value."""
    swept = {key: axis.values for axis in axes for key in axis.keys}

    def values(dotted):
        section, name = dotted.split(".")
        return swept.get(dotted, (sections[section][name],))

    if sections["array"]["weight_range"] <= 0:
        raise ConfigError(
            f"{source}: stdp_digits needs array.weight_range > 0, the largest synaptic weight relative to the "
            "leak conductance (1.0 in Diehl and Cook 2015)"
        )
    for name in ("cycles", "fault_rate"):
        if any(v != 0 for v in values(f"wear.{name}")):
            raise ConfigError(f"{source}: stdp_digits does not model wear; set wear.{name} = 0")
    if any(bits != "ideal" for bits in values("adc.bits")) and any(v == 0 for v in values("adc.current_range")):
        raise ConfigError(
            f"{source}: stdp_digits does not calibrate the ADC; with adc.bits set, give adc.current_range in A"
        )
    workload = sections["workload"]
    dt = workload["time_step"]
    for name in ("presentation_time", "rest_time"):
        steps = workload[name] / dt
        if abs(steps - round(steps)) > 1e-6 * max(1.0, steps):
            raise ConfigError(
                f"{source}: workload.{name} = {workload[name]} s is not a whole number of time steps of "
                f"workload.time_step = {dt} s; pick a multiple"
            )
    for name in ("initial_weight", "weight_mean"):
        if any(v > 1 for v in values(f"workload.{name}")):
            raise ConfigError(
                f"{source}: workload.{name} is a share of array.weight_range and must be <= 1, "
                f"got {list(values(f'workload.{name}'))}"
            )
    highest_rate = max(values("workload.max_rate")) + workload["max_repeats"] * max(values("workload.rate_step"))
    if highest_rate * dt > 1:
        raise ConfigError(
            f"{source}: the highest input rate, workload.max_rate + max_repeats x rate_step = {highest_rate} Hz, "
            f"exceeds one spike per time step of {dt} s; lower the rates or max_repeats, or shorten workload.time_step"
        )


def _check_parasitics(sections, axes, source):
    """Wire resistance is either off (both lines 0) or on (both > 0, for every swept value)."""
    swept = {key: axis.values for axis in axes for key in axis.keys}
    wires = {name: swept.get(f"parasitics.{name}", (sections["parasitics"][name],)) for name in ("word_line", "bit_line")}
    values = wires["word_line"] + wires["bit_line"]
    if all(v == 0 for v in values):
        for name in ("driver", "sense"):
            if any(v != 0 for v in swept.get(f"parasitics.{name}", (sections["parasitics"][name],))):
                raise ConfigError(f"{source}: parasitics.{name} needs wire resistance: set parasitics.word_line and parasitics.bit_line > 0")
        if sections["parasitics"]["compensation"] or any(swept.get("parasitics.compensation", ())):
            raise ConfigError(f"{source}: parasitics.compensation needs wire resistance: set parasitics.word_line and parasitics.bit_line > 0")
        return
    if any(v == 0 for v in values):
        raise ConfigError(
            f"{source}: parasitics.word_line and parasitics.bit_line must both be > 0 ohm once either is set "
            f"(got word_line {list(wires['word_line'])}, bit_line {list(wires['bit_line'])}); for nearly ideal wires of "
            "one kind use a small value such as 1e-6"
        )


def _check_slicing(sections, axes, source):
    """Every combination of swept [slicing] values must be a valid number representation."""
    combos = [dict(sections["slicing"])]
    for axis in axes:
        touched = [key.split(".", 1)[1] for key in axis.keys if key.startswith("slicing.")]
        if touched:
            combos = [{**combo, **{name: value for name in touched}} for combo in combos for value in axis.values]
    for combo in combos:
        try:
            Slicing(
                input_bits=combo["input_bits"] or None, weight_slices=combo["weight_slices"],
                bits_per_slice=combo["bits_per_slice"] or None, negative=combo["negative"],
            )
        except ValueError as error:
            raise ConfigError(f"{source}: [slicing] {error}") from None


def _parse_seeds(seeds, source) -> tuple[int, ...]:
    if isinstance(seeds, int):
        if seeds < 1:
            raise ConfigError(f"{source}: sweep.seeds = {seeds}: use at least 1 seed")
        return tuple(range(seeds))
    if not seeds or not all(isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in seeds):
        raise ConfigError(f"{source}: sweep.seeds must be a count >= 1 or a non-empty list of integers >= 0, got {seeds!r}")
    if len(set(seeds)) != len(seeds):
        raise ConfigError(f"{source}: sweep.seeds lists a seed twice: {seeds!r}")
    return tuple(seeds)


def _parse_axis(entry, index, schema, source) -> SweepAxis:
    where = f"{source}: sweep.axes[{index}]"
    if not isinstance(entry, dict):
        raise ConfigError(f"{where} must be a table with key and values ([[sweep.axes]])")
    for name in entry:
        if name not in AXIS_KEYS:
            raise ConfigError(f"{where}: unknown entry {name!r}{_suggest(name, AXIS_KEYS)}")
    if "key" not in entry or "values" not in entry:
        raise ConfigError(f"{where} needs both key (e.g. \"read.time\") and values (a list)")
    given = entry["key"]
    dotted_keys = [given] if isinstance(given, str) else given
    if not isinstance(dotted_keys, list) or not dotted_keys or not all(isinstance(k, str) for k in dotted_keys):
        raise ConfigError(f'{where}: key = {given!r} must name a setting as "section.name", or list settings that take each value together')
    if len(set(dotted_keys)) != len(dotted_keys):
        raise ConfigError(f"{where}: key lists {given!r} with a repeated entry")
    specs = [_axis_key_spec(where, dotted, schema) for dotted in dotted_keys]
    if len({spec.sweepable for spec in specs}) > 1:
        raise ConfigError(f"{where}: keys {dotted_keys} mix vectorized and structural settings; sweep them on separate axes")
    values = entry["values"]
    if not isinstance(values, list) or not values:
        raise ConfigError(f"{where}: values must be a non-empty list")
    # Every key must accept every value; the values are stored as the first key reads them.
    for dotted, spec in zip(dotted_keys[1:], specs[1:]):
        for value in values:
            _check_value(f"{dotted} (sweep value)", value, spec)
    checked = tuple(_check_value(f"{dotted_keys[0]} (sweep value)", value, specs[0]) for value in values)
    if len(set(map(repr, checked))) != len(checked):
        raise ConfigError(f"{where}: values of {' + '.join(dotted_keys)} contain duplicates")
    if "name" not in entry and len(dotted_keys) > 1:
        raise ConfigError(f"{where}: an axis over several keys needs a name, e.g. name = \"size\"")
    axis_name = entry.get("name", dotted_keys[0].split(".", 1)[1])
    if not isinstance(axis_name, str) or not axis_name.isidentifier() or axis_name == "seed":
        raise ConfigError(f"{where}: name = {axis_name!r} must be an identifier other than 'seed'")
    units = {spec.units for spec in specs}
    return SweepAxis(
        keys=tuple(dotted_keys), name=axis_name, values=checked, vectorized=specs[0].sweepable,
        units=units.pop() if len(units) == 1 else "", description="; ".join(spec.description for spec in specs),
    )


def _axis_key_spec(where, dotted, schema) -> Key:
    if "." not in dotted:
        raise ConfigError(f'{where}: key = {dotted!r} must name a setting as "section.name", e.g. "read.time"')
    section, name = dotted.split(".", 1)
    if section not in schema or section in ("sweep", "study"):
        options = [s for s in schema if s not in ("sweep", "study")]
        raise ConfigError(f"{where}: cannot sweep section {section!r}{_suggest(section, options)}")
    if name not in schema[section]:
        raise ConfigError(f"{where}: unknown key {dotted}{_suggest(name, schema[section])}")
    return schema[section][name]


def build_device(sections):
    """Construct the device model of a configuration, with its wear (values may be traced scalars)."""
    device = dict(sections["device"])
    model = device.pop("model")
    if model in PRESET_MODELS:
        base = preset(model)
    elif model == "preset":
        base = preset(device["preset"])
    else:
        base = DEVICE_MODELS[model](**device)

    wear = sections["wear"]
    if not _is_zero(wear["cycles"]):
        base = Endurance(
            base, initial_cycles=wear["cycles"], onset_cycles=wear["onset_cycles"],
            closure_per_decade=wear["closure_per_decade"], failure_scale=wear["failure_scale"],
        )
    if not _is_zero(wear["fault_rate"]):
        sa1 = wear["fault_rate"] * wear["sa1_share"]
        base = StuckAtFaults(base, sa0_rate=wear["fault_rate"] - sa1, sa1_rate=sa1)
    return base


def _bits(value):
    return None if value == "ideal" else int(value)


def build_tile(sections, *, adc_range=None) -> Tile:
    """Construct the tile of a configuration; `adc_range` (A) replaces a calibrated (zero) ADC range."""
    array, dac, adc, noise, read = (sections[s] for s in ("array", "dac", "adc", "noise", "read"))
    adc_bits = _bits(adc["bits"])
    current_range = adc["current_range"]
    if adc_bits is None and _is_zero(current_range):
        converter = ADC()
    else:
        if _is_zero(current_range):
            if adc_range is None:
                raise ConfigError("adc.current_range = 0 asks for calibration, which this workload does not do; set it in A")
            current_range = adc_range * adc["headroom"]
        converter = ADC(bits=adc_bits, current_range=current_range)
    weight_range = array["weight_range"]
    device = build_device(sections)
    wires = sections["parasitics"]
    parasitics = None
    if not (_is_zero(wires["word_line"]) and _is_zero(wires["bit_line"])):
        parasitics = Parasitics(word_line=wires["word_line"], bit_line=wires["bit_line"], driver=wires["driver"], sense=wires["sense"])
    pulses = array["programming"] == "pulses"
    if pulses:
        if not is_concrete((device.g_min, device.g_max)):
            raise ConfigError("programming = \"pulses\" cannot be combined with a swept device.g_min or device.g_max")
        span = float(np.mean(np.asarray(device.g_max)) - np.mean(np.asarray(device.g_min)))
        tolerance = array["pulse_tolerance"] * span
        verify = ProgramVerify(max_iterations=array["max_pulses"], tolerance=tolerance)
    return Tile(
        device=device,
        read_voltage=array["read_voltage"],
        read_time=array["read_time"],
        weight_range=None if _is_zero(weight_range) else weight_range,
        dac=DAC(bits=_bits(dac["bits"]), input_range=dac["input_range"]),
        adc=converter,
        short_term_noise=noise["short_term"],
        output_noise=noise["output"],
        drift_compensation=read["drift_compensation"],
        verify=verify if pulses else None,
        program_by_pulses=pulses,
        parasitics=parasitics,
        ir_compensation=wires["compensation"],
        compensation_input=wires["compensation_input"],
    )


def uses_core(sections) -> bool:
    """Return True when the configuration requests multi-tile cores or a non-default number representation."""
    core, slicing = sections["core"], sections["slicing"]
    return bool(
        core["tile_rows"] or core["tile_cols"] or slicing["input_bits"] or slicing["bits_per_slice"]
        or slicing["weight_slices"] != 1 or slicing["negative"] != "differential"
    )


def build_core(sections, shape: tuple[int, int], *, adc_range=None) -> Core:
    """Construct the core that stores a weight matrix of `shape` (rows, columns) for a configuration.

    A tile size of 0 takes the matrix's own size, so that one tile stores it. Every tile gets the ADC range
    calibrated on the whole matrix's outputs, an upper bound of each tile's partial sums.
    """
    core, slicing = sections["core"], sections["slicing"]
    tile_shape = (core["tile_rows"] or int(shape[0]), core["tile_cols"] or int(shape[1]))
    try:
        representation = Slicing(
            input_bits=slicing["input_bits"] or None,
            weight_slices=slicing["weight_slices"],
            bits_per_slice=slicing["bits_per_slice"] or None,
            negative=slicing["negative"],
        )
    except ValueError as error:
        raise ConfigError(f"[slicing]: {error}") from None
    return Core(tile=build_tile(sections, adc_range=adc_range), tile_shape=tile_shape, slicing=representation)


def build_cost_model(sections) -> CostModel:
    """Construct the energy, latency and area constants of a configuration (`[cost]`)."""
    return CostModel(**sections["cost"])


def _is_zero(value) -> bool:
    return isinstance(value, (int, float)) and value == 0
