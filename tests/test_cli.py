"""The `xbar` command: sweeps end to end, output handling and exit statuses."""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

import xbar
from xbar import cli
from xbar.cli import bundled_configs, main

SMALL = """
[study]
name = "small"
workload = "mvm_error"

[array]
rows = 16
cols = 8

[dac]
bits = 8

[adc]
bits = 8

[workload]
batch = 8

[sweep]
seeds = 2

[[sweep.axes]]
key = "read.time"
name = "time"
values = [0.0, 3600.0, 31536000.0]

[[sweep.axes]]
key = "read.drift_compensation"
values = [false, true]
"""


@pytest.fixture
def small_config(tmp_path):
    path = tmp_path / "small.toml"
    path.write_text(SMALL, encoding="utf-8")
    return path


def test_sweep_writes_dataset_and_plot(small_config, capsys):
    assert main(["sweep", str(small_config), "--quiet"]) == 0

    output = small_config.with_suffix(".nc")
    assert output.is_file()
    assert small_config.with_suffix(".png").is_file()
    printed = capsys.readouterr().out
    assert "mvm_error" in printed

    with xr.open_dataset(output) as ds:
        assert ds["mvm_error"].dims == ("time", "drift_compensation", "seed")
        assert ds["mvm_error"].attrs["units"] == "1"
        assert ds["time"].attrs["units"] == "s"
        assert ds.attrs["xbar_version"] == xbar.__version__
        assert ds.attrs["config"] == SMALL
        assert np.all(np.isfinite(ds["mvm_error"].values))


def test_existing_output_kept(small_config, capsys):
    output = small_config.with_suffix(".nc")
    output.write_text("keep me", encoding="utf-8")

    assert main(["sweep", str(small_config), "--quiet"]) == 2

    assert "--overwrite" in capsys.readouterr().err
    assert output.read_text(encoding="utf-8") == "keep me"


def test_overwrite_replaces_output(small_config):
    output = small_config.with_suffix(".nc")
    output.write_text("old", encoding="utf-8")

    assert main(["sweep", str(small_config), "--quiet", "--overwrite", "--no-plot"]) == 0

    with xr.open_dataset(output) as ds:
        assert "mvm_error" in ds


def test_explicit_output_path(small_config, tmp_path):
    output = tmp_path / "elsewhere" / "run.nc"
    output.parent.mkdir()

    assert main(["sweep", str(small_config), "-o", str(output), "--quiet", "--no-plot"]) == 0

    assert output.is_file()
    assert not small_config.with_suffix(".nc").exists()


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        (("rows = 16", "rwos = 16"), 'did you mean "rows"'),
        (("bits = 8\n\n[workload]", "bits = 0\n\n[workload]"), "at least 1 bit"),
        (("batch = 8", 'batch = "eight"'), "workload.batch"),
        (('values = [0.0, 3600.0, 31536000.0]', 'values = [-1.0, 3600.0]'), "must be >= 0"),
    ],
)
def test_bad_config_exit_status_2(small_config, capsys, edit, expected):
    small_config.write_text(SMALL.replace(*edit), encoding="utf-8")

    assert main(["sweep", str(small_config), "--quiet"]) == 2

    error = capsys.readouterr().err
    assert expected in error
    assert not small_config.with_suffix(".nc").exists()


def test_missing_config_exit_status_2(tmp_path, capsys):
    assert main(["sweep", str(tmp_path / "absent.toml")]) == 2
    assert "pcm_drift" in capsys.readouterr().err


def test_missing_output_folder_created(small_config, tmp_path):
    output = tmp_path / "results" / "run1" / "run.nc"

    assert main(["sweep", str(small_config), "-o", str(output), "--quiet", "--no-plot"]) == 0

    assert output.is_file()


def test_output_folder_path_exit_status_2(small_config, tmp_path, capsys):
    folder = tmp_path / "taken.nc"
    folder.mkdir()

    assert main(["sweep", str(small_config), "-o", str(folder), "--quiet"]) == 2
    assert "is a folder" in capsys.readouterr().err


def test_existing_plot_kept(small_config, capsys):
    plot = small_config.with_suffix(".png")
    plot.write_bytes(b"old plot")

    assert main(["sweep", str(small_config), "--quiet"]) == 2

    assert "--overwrite" in capsys.readouterr().err
    assert plot.read_bytes() == b"old plot"
    assert not small_config.with_suffix(".nc").exists()


def test_study_without_axes_runs(tmp_path, capsys):
    config = tmp_path / "flat.toml"
    config.write_text("[array]\nrows = 8\ncols = 4\n[workload]\nbatch = 4\n[sweep]\nseeds = 3\n", encoding="utf-8")

    assert main(["sweep", str(config), "--quiet"]) == 0

    with xr.open_dataset(config.with_suffix(".nc")) as ds:
        assert ds["mvm_error"].dims == ("seed",)
    assert "no plot written" in capsys.readouterr().err


def test_interrupted_sweep_leaves_no_output(small_config, monkeypatch, capsys):
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr("xbar.studies.run_study", interrupted)

    assert main(["sweep", str(small_config), "--quiet"]) == 130

    assert list(small_config.parent.glob("*.nc")) == []
    assert "interrupted" in capsys.readouterr().err


def test_bundled_study_by_name(monkeypatch, tmp_path):
    path, is_bundled = cli.resolve_config("pcm_digits")
    assert is_bundled
    assert path == bundled_configs()["pcm_digits"]
    assert cli.resolve_config(None)[0] == bundled_configs()["pcm_drift"]


def test_validate_list(capsys):
    assert main(["validate", "--list"]) == 0
    assert capsys.readouterr().out.strip()


def test_unknown_check_exit_status_2(capsys, tmp_path):
    assert main(["validate", "--check", "no_such_check", "-o", str(tmp_path)]) == 2
    assert "unknown check" in capsys.readouterr().err


def test_console_script_version():
    result = subprocess.run(
        [sys.executable, "-m", "xbar.cli", "--version"], capture_output=True, text=True, check=True,
        env={**os.environ, "PYTHONWARNINGS": "ignore"},
    )
    assert xbar.__version__ in result.stdout


@pytest.mark.slow
def test_default_study_pcm_drift(tmp_path, monkeypatch):
    """The default study runs and shows the published trends of PCM drift."""
    monkeypatch.chdir(tmp_path)

    assert main(["sweep", "--quiet"]) == 0

    with xr.open_dataset(tmp_path / "pcm_drift.nc") as ds:
        error = ds["mvm_error"].mean("seed")
        raw = error.sel(drift_compensation=False, adc_bits="ideal")
        compensated = error.sel(drift_compensation=True, adc_bits="ideal")
        assert np.all(np.diff(raw.values) > 0), "without compensation the error must grow with time"
        assert float(compensated.isel(time=-1)) < 0.5 * float(raw.isel(time=-1))
        assert float(error.sel(drift_compensation=True, adc_bits="4").isel(time=0)) > float(compensated.isel(time=0))
    assert (tmp_path / "pcm_drift.png").is_file()


@pytest.mark.slow
def test_digits_study(tmp_path, monkeypatch):
    """The digits network keeps near-software accuracy at 1 s and compensation helps at 1 year."""
    monkeypatch.chdir(tmp_path)

    assert main(["sweep", "pcm_digits", "--quiet"]) == 0

    with xr.open_dataset(tmp_path / "pcm_digits.nc") as ds:
        software = float(ds["software_accuracy"])
        accuracy = ds["accuracy"].mean("seed")
        assert software > 0.93
        assert float(accuracy.sel(drift_compensation=True).isel(time=0)) > software - 0.05
        assert float(accuracy.sel(drift_compensation=True).isel(time=-1)) > float(
            accuracy.sel(drift_compensation=False).isel(time=-1)
        )


def test_failed_check_exit_status_1(monkeypatch, tmp_path, capsys):
    from xbar.validation import CheckResult

    failing = CheckResult(
        name="pcm_drift_slope", description="d", source="s", error=2.0, tolerance=1.0, passed=False, plot=None
    )
    monkeypatch.setattr("xbar.validation.run_checks", lambda output_dir, names=None: [failing])

    assert main(["validate", "-o", str(tmp_path)]) == 1
    assert "1 failed" in capsys.readouterr().out


@pytest.mark.slow
def test_rram_studies(tmp_path, monkeypatch):
    """The RRAM studies show more error with more wear and more faults."""
    monkeypatch.chdir(tmp_path)

    assert main(["sweep", "rram_endurance", "--quiet", "--no-plot"]) == 0
    assert main(["sweep", "rram_faults", "--quiet", "--no-plot"]) == 0

    with xr.open_dataset(tmp_path / "rram_endurance.nc") as ds:
        error = ds["mvm_error"].mean("seed").sel(fault_rate=0.0)
        assert float(error.isel(cycles=-1)) > 5 * float(error.isel(cycles=0))
    with xr.open_dataset(tmp_path / "rram_faults.nc") as ds:
        error = ds["mvm_error"].mean("seed")
        assert np.all(error.diff("fault_rate") > 0)


@pytest.mark.slow
def test_digits_presets_study(tmp_path, monkeypatch):
    """Programmed by verified pulse trains, every preset keeps near-software accuracy."""
    monkeypatch.chdir(tmp_path)

    assert main(["sweep", "digits_presets", "--quiet", "--no-plot"]) == 0

    with xr.open_dataset(tmp_path / "digits_presets.nc") as ds:
        software = float(ds["software_accuracy"])
        accuracy = ds["accuracy"].mean("seed")
        assert accuracy.sizes["preset"] == 12
        assert float(accuracy.min()) > software - 0.05


def test_closed_stdout_loses_no_output(small_config):
    """`xbar sweep ... | head -1`: the reader leaves early, yet the NetCDF file and plot are written."""
    command = f'"{sys.executable}" -m xbar.cli sweep "{small_config}" --quiet 2>/dev/null | head -1'
    subprocess.run(command, shell=True, check=True, cwd=small_config.parent, stdout=subprocess.DEVNULL)
    assert small_config.with_suffix(".nc").is_file()
    assert small_config.with_suffix(".png").is_file()
    assert not small_config.with_name("small.nc.parts").exists()


def test_malformed_scheduler_is_a_usage_error(small_config, capsys):
    assert main(["sweep", str(small_config), "--scheduler", "foo"]) == 2
    assert "not a scheduler address" in capsys.readouterr().err
