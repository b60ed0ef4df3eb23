"""A plain, non-editable install carries the example studies and the validation data."""

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

TINY = """
[array]
rows = 8
cols = 4
[workload]
batch = 4
[[sweep.axes]]
key = "read.time"
values = [0.0, 60.0]
"""


@pytest.fixture(scope="module")
def wheel(tmp_path_factory):
    folder = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "-w", str(folder), str(ROOT)],
        check=True, capture_output=True,
    )
    (path,) = folder.glob("xbar_sim-*.whl")
    return path


@pytest.mark.slow
def test_wheel_contents(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())

    assert "xbar/examples/pcm_drift.toml" in names
    assert "xbar/examples/pcm_digits.toml" in names
    assert "xbar/validation/__init__.py" in names
    assert "xbar/validation/data/LICENSES.txt" in names
    assert "xbar/validation/data/gong2018_hfo2_pulse_response.csv" in names
    assert any(name.endswith("licenses/LICENSE") for name in names)


@pytest.mark.slow
def test_installed_wheel_runs_commands(wheel, tmp_path):
    target = tmp_path / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "--quiet", "--target", str(target), str(wheel)],
        check=True, capture_output=True,
    )
    work = tmp_path / "work"
    work.mkdir()
    (work / "tiny.toml").write_text(TINY, encoding="utf-8")
    env = {**os.environ, "PYTHONPATH": str(target), "PYTHONWARNINGS": "ignore"}

    def xbar(*args):
        return subprocess.run(
            [sys.executable, "-c", "import sys, xbar.cli; sys.exit(xbar.cli.main())", *args],
            cwd=work, env=env, capture_output=True, text=True,
        )

    where = subprocess.run(
        [sys.executable, "-c", "import xbar; print(xbar.__file__)"], cwd=work, env=env, capture_output=True, text=True
    )
    assert where.stdout.startswith(str(target)), where.stdout + where.stderr

    swept = xbar("sweep", "tiny.toml", "--quiet", "--no-plot")
    assert swept.returncode == 0, swept.stderr
    assert (work / "tiny.nc").is_file()

    listed = xbar("validate", "--list")
    assert listed.returncode == 0, listed.stderr
    checks = listed.stdout.split()
    assert checks

    validated = xbar("validate", "--check", checks[0], "-o", "plots")
    assert validated.returncode == 0, validated.stdout + validated.stderr
