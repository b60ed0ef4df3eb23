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
