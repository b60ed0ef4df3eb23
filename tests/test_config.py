"""Study files: bundled configs parse, and bad settings raise ConfigError naming the key and the fix."""

import pytest

from xbar.cli import bundled_configs
from xbar.config import ConfigError, build_tile, load_config, parse_config

MINIMAL = """
[array]
rows = 4
cols = 3
"""


def test_bundled_configs_parse():
    configs = bundled_configs()
    assert {"pcm_drift", "pcm_digits"} <= set(configs)
    for path in configs.values():
        config = load_config(path)
        assert config.axes
        assert config.seeds


def test_pcm_drift_axes():
    config = load_config(bundled_configs()["pcm_drift"])
    names = [axis.name for axis in config.axes]
    assert names == ["time", "drift_compensation", "adc_bits"]
    assert config.axes[0].vectorized
    assert not config.axes[1].vectorized
    assert config.axes[0].units == "s"
    assert min(config.axes[0].values) == 1.0
    assert max(config.axes[0].values) == 31536000.0


def test_defaults_filled_in():
    config = parse_config(MINIMAL)
    assert config.get("array.rows") == 4
    assert config.get("device.model") == "pcm"
    assert config.get("device.g_max") == 25e-6
    assert config.seeds == (0,)


def test_build_tile_from_defaults():
    tile = build_tile(parse_config(MINIMAL).sections)
    assert tile.adc.is_ideal
    assert tile.dac.bits is None
    assert tile.device.g_max == 25e-6


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("[aray]\nrows = 4", 'did you mean "array"'),
        ("[array]\nrwos = 4", 'did you mean "rows"'),
        ("[device]\ng_mx = 1e-5", 'did you mean "g_max"'),
        ('[array]\nrows = "many"', "array.rows"),
        ("[array]\nrows = 2.5", "array.rows"),
        ("[array]\nrows = 0", "must be > 0"),
        ("[array]\nread_voltage = -0.2", "must be > 0"),
        ("[adc]\nbits = 0", "at least 1 bit"),
        ('[adc]\nbits = "exact"', '"ideal"'),
        ("[adc]\nbits = true", "wrong type"),
        ("[device]\ng_min = 3e-5\ng_max = 2e-5", "swap them"),
        ("[device]\ng_max = -1e-5", "must be > 0 S"),
        ("[device]\ng_max = 25", "25e-6"),
        ("[adc]\nbits = 40", "at most 24 bits"),
        ("[noise]\nshort_term = -0.1", "must be >= 0\n"),
        ('[device]\ng_min = 1e-6\n[[sweep.axes]]\nkey = "device.g_max"\nvalues = [1e-6, 2e-5]', "every g_min"),
        ('[[sweep.axes]]\nkey = "device.g_min"\nvalues = [0.0, 3e-5]', "every g_min"),
        ("[device]\nmodel = \"rram9\"", "'pcm'"),
        ("[read]\ntime = -1.0", "must be >= 0"),
        ("[read]\ntime = nan", "finite"),
        ("[sweep]\nseeds = 0", "at least 1 seed"),
        ("[sweep]\nseeds = [1, 1]", "twice"),
        ('[[sweep.axes]]\nkey = "read.tme"\nvalues = [1.0]', 'did you mean "time"'),
        ('[[sweep.axes]]\nkey = "time"\nvalues = [1.0]', '"section.name"'),
        ('[[sweep.axes]]\nkey = "read.time"\nvalues = []', "non-empty"),
        ('[[sweep.axes]]\nkey = "read.time"\nvalues = [-5.0]', "must be >= 0"),
        ('[[sweep.axes]]\nkey = "read.time"\nvalues = [1.0, 1.0]', "duplicates"),
        ('[[sweep.axes]]\nkey = "read.time"\nvalue = [1.0]', 'did you mean "values"'),
        ('[[sweep.axes]]\nkey = "read.time"\nvalues = [1.0]\nname = "seed"', "other than 'seed'"),
        ("this is not toml", "invalid TOML"),
    ],
)
def test_bad_config_rejected(text, expected):
    with pytest.raises(ConfigError) as error:
        parse_config(text, source="study.toml")
    message = str(error.value) + "\n"
    assert expected in message
    assert message.startswith("study.toml: ")


def test_automatic_ranges_are_looped():
    config = parse_config('[[sweep.axes]]\nkey = "adc.current_range"\nvalues = [0.0, 1e-4]')
    assert not config.axes[0].vectorized


def test_missing_file_rejected(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "absent.toml")


def test_preset_device_with_wear():
    from xbar.devices import Endurance
    from xbar.variability import StuckAtFaults

    config = parse_config('[device]\nmodel = "preset"\npreset = "pcmo"\n[wear]\ncycles = 1e7\nfault_rate = 0.01\n')
    tile = build_tile(config.sections)

    assert isinstance(tile.device, StuckAtFaults)
    assert isinstance(tile.device.device, Endurance)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('[device]\nmodel = "preset"\npreset = "unobtainium"', "'taox_hfox'"),
        ("[wear]\nfault_rate = 1.5", "between 0 and 1"),
        ('[[sweep.axes]]\nkey = "wear.sa1_share"\nvalues = [0.5, 2.0]', "between 0 and 1"),
    ],
)
def test_bad_wear_rejected(text, expected):
    with pytest.raises(ConfigError, match=expected):
        parse_config(text)


def test_pulse_programming_setting():
    config = parse_config('[device]\nmodel = "preset"\npreset = "pcmo"\n[array]\nprogramming = "pulses"\nmax_pulses = 300\n')
    tile = build_tile(config.sections)

    assert tile.program_by_pulses
    assert tile.verify.max_iterations == 300
