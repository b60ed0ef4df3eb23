"""Workloads of `xbar sweep`: references, calibration and memory-bounded chunks."""

import numpy as np
import pytest

from xbar import studies
from xbar.config import parse_config

LARGE = """
[array]
rows = 1024
cols = 1024
[workload]
batch = 256
[[sweep.axes]]
key = "read.time"
values = [1.0, 10.0, 100.0, 1000.0, 1e4, 1e5, 1e6, 1e7, 2e7, 3e7]
"""


def test_chunks_bounded_by_memory_budget(monkeypatch):
    captured = {}

    def fake_sweep(fn, axes, **options):
        captured.update(options)
        raise SystemExit  # stop before any work

    monkeypatch.setattr(studies, "sweep", fake_sweep)
    with pytest.raises(SystemExit):
        studies.run_study(parse_config(LARGE))

    point_bytes = 4 * (32 * 1024 * 1024 + 8 * 256 * 2048)
    assert captured["chunk_size"] == studies.MEMORY_BUDGET // point_bytes
    assert captured["chunk_size"] * point_bytes <= studies.MEMORY_BUDGET


def test_mvm_reference_is_float64_product():
    config = parse_config("[array]\nrows = 8\ncols = 5\n[workload]\nbatch = 3\n")
    workload = studies._mvm_error(config)

    data = workload.seed_data(0)

    exact = np.asarray(data["inputs"], np.float64) @ np.asarray(data["weights"], np.float64)
    np.testing.assert_array_equal(np.asarray(data["ideal"]["8x5"]), exact.astype(np.float32))


def test_swept_array_sizes_use_corners_of_one_draw():
    config = parse_config(
        '[array]\nrows = 8\ncols = 5\n[workload]\nbatch = 3\n'
        '[[sweep.axes]]\nkey = "array.rows"\nvalues = [4, 8]\n[[sweep.axes]]\nkey = "array.cols"\nvalues = [2, 6]\n'
    )
    data = studies._mvm_error(config).seed_data(0)
    assert data["weights"].shape == (8, 6)
    assert data["inputs"].shape == (3, 8)
    assert sorted(data["ideal"]) == ["4x2", "4x6", "8x2", "8x6"]
    exact = np.asarray(data["inputs"], np.float64)[:, :4] @ np.asarray(data["weights"], np.float64)[:4, :6]
    np.testing.assert_array_equal(np.asarray(data["ideal"]["4x6"]), exact.astype(np.float32))


def test_ideal_tile_has_no_error():
    config = parse_config('[device]\nmodel = "ideal"\n[array]\nrows = 16\ncols = 8\n[workload]\nbatch = 4\n[sweep]\nseeds = 2\n')

    ds = studies.run_study(config)

    assert float(ds["mvm_error"].max()) < 1e-6


# Multi-tile cores, bit slicing and cost from the TOML ([core], [slicing], [cost]).

IDEAL_CORE = """
[device]
model = "ideal"
[array]
rows = 40
cols = 12
[core]
tile_rows = 16
tile_cols = 5
[workload]
batch = 8
"""


def test_ideal_multi_tile_core_from_toml_has_no_error():
    """40 x 12 weights over 3 x 3 tiles of 16 x 5 (both sizes leave partial tiles) are exact when ideal."""
    ds = studies.run_study(parse_config(IDEAL_CORE))
    assert float(ds["mvm_error"].max()) < 1e-6


def test_bit_serial_error_shrinks_with_input_bits():
    """With ideal devices the only error is the rounding of the inputs: at most half a step of 2^-bits each."""
    config = parse_config(IDEAL_CORE + '[[sweep.axes]]\nkey = "slicing.input_bits"\nvalues = [2, 4, 8]\n')
    errors = studies.run_study(config)["mvm_error"].values.ravel()
    assert errors[0] > errors[1] > errors[2] > 0
    # The relative error of uniform inputs rounded to 2^bits levels is about 2^-bits / sqrt(3) / rms(x),
    # rms(x) = 1/sqrt(3) for x uniform on [-1, 1]; a factor 2 covers the spread of a batch of 8.
    for bits, error in zip((2, 4, 8), errors):
        assert error < 2.0 * 2.0**-bits


def test_cost_variables_are_reported_per_vector():
    config = parse_config(IDEAL_CORE + '[cost]\nadc_fom = 20e-15\n')
    ds = studies.run_study(config)
    for name, units in (("energy_total", "J"), ("latency", "s"), ("area_total", "m^2"), ("tops_per_watt", "TOPS/W")):
        assert ds[name].attrs["units"] == units
        assert float(ds[name].min()) > 0
    # Operations per vector: a multiply and an add per weight.
    assert float(ds["operations"].max()) == 2 * 40 * 12
    energy_parts = sum(float(ds[f"energy_{part}"].max()) for part in ("array_read", "dac", "adc", "digital", "buffer", "programming"))
    np.testing.assert_allclose(float(ds["energy_total"].max()), energy_parts, rtol=1e-5)
    # The ADC energy scales with its figure of merit.
    half = studies.run_study(parse_config(IDEAL_CORE + '[cost]\nadc_fom = 10e-15\n'))
    np.testing.assert_allclose(float(ds["energy_adc"].max()), 2 * float(half["energy_adc"].max()), rtol=1e-5)


def test_bad_slicing_is_a_config_error():
    from xbar.config import ConfigError

    with pytest.raises(ConfigError, match="slicing"):
        parse_config(IDEAL_CORE + "[slicing]\nweight_slices = 2\n")
