"""Chunk stores: atomic chunk files, resumed sweeps, rejected stores and memory-bounded chunk sizes."""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import xarray as xr

from xbar import studies
from xbar.cli import main, parse_size
from xbar.config import parse_config
from xbar.variability import Axis, sweep
from xbar.variability.store import (
    MANIFEST_NAME, ChunkLayout, ChunkStore, StoreError, StoreExistsError, StoreMismatchError, fingerprint_text,
    remove_store,
)


def noisy_affine(params, key, data):
    """y = a * z + b + w with one standard normal draw z per seed and w from the seed's data."""
    return {"y": params["a"] * jax.random.normal(key) + params["b"] + data["w"], "v": jnp.full((2,), params["a"])}


def seed_offset(seed):
    return {"w": jnp.float32(seed) / 10}


AXES = [Axis("a", [0.5, 1.0, 2.0, 4.0], units="S"), Axis("b", [-1.0, 3.0], vectorized=False)]
SEEDS = [3, 7, 11]
# 4 values of a times 3 seeds = 12 points per looped value of b, in chunks of 5, 5 and 2: 6 chunks and
# 24 points in all.
CHUNK = 5
N_CHUNKS = 6


def run(store, **options):
    options = {"seeds": SEEDS, "seed_data": seed_offset, "chunk_size": CHUNK, "fingerprint": "test", **options}
    return sweep(noisy_affine, AXES, store=store, **options)


def chunk_files(store):
    return sorted(path.name for path in store.iterdir() if path.name.startswith("chunk-"))


def assert_same_results(ds, reference):
    for name in reference.data_vars:
        np.testing.assert_array_equal(ds[name].values, reference[name].values)
    xr.testing.assert_identical(ds, reference)


@pytest.fixture(scope="module")
def reference():
    """The uninterrupted sweep without a store."""
    return sweep(noisy_affine, AXES, seeds=SEEDS, seed_data=seed_offset, chunk_size=CHUNK)


# --- layout ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("combinations", "points", "chunk_size"), [(1, 1, 1), (2, 12, 5), (3, 10, 10), (4, 7, 3)])
def test_layout_covers_every_point_once(combinations, points, chunk_size):
    layout = ChunkLayout(combinations, points, chunk_size)

    covered = np.zeros((combinations, points), dtype=int)
    for index in range(layout.n_chunks):
        combination, start, stop = layout.bounds(index)
        assert 0 < stop - start <= chunk_size
        covered[combination, start:stop] += 1

    assert np.all(covered == 1)
    assert layout.total_points == combinations * points


def test_layout_rejects_invalid_sizes():
    with pytest.raises(ValueError, match="chunk_size"):
        ChunkLayout(1, 4, 0)
    with pytest.raises(ValueError, match="exceeds"):
        ChunkLayout(1, 4, 5)
    with pytest.raises(IndexError, match="out of range"):
        ChunkLayout(1, 4, 2).bounds(2)


# --- chunk files -----------------------------------------------------------------------------------------


def make_store(path, resume=False):
    layout = ChunkLayout(combinations=2, points=5, chunk_size=2)
    metrics = {"y": ((), np.dtype(np.float32)), "v": ((3,), np.dtype(np.int32))}
    return ChunkStore.open(path, {"fingerprint": "f"}, layout, metrics, resume=resume)


def chunk_arrays(points, fill):
    return {"y": np.full(points, fill, np.float32), "v": np.full((points, 3), fill, np.int32)}


def test_chunk_round_trip(tmp_path):
    store = make_store(tmp_path / "store")

    store.write(5, chunk_arrays(1, 2.5))  # combination 1, point 4: the short last chunk

    assert store.finished() == [5]
    arrays = store.read(5)
    np.testing.assert_array_equal(arrays["y"], [2.5])
    np.testing.assert_array_equal(arrays["v"], [[2, 2, 2]])
    assert store.read(0) is None


def test_chunk_of_wrong_shape_rejected(tmp_path):
    store = make_store(tmp_path / "store")

    with pytest.raises(ValueError, match="expects"):
        store.write(0, chunk_arrays(1, 0.0))  # chunk 0 has 2 points

    assert store.finished() == []


@pytest.mark.parametrize("error", [OSError("disk full"), KeyboardInterrupt()])
def test_failed_chunk_write_leaves_no_file(tmp_path, monkeypatch, error):
    store = make_store(tmp_path / "store")

    def failing_savez(stream, **arrays):
        stream.write(b"partial")
        raise error

    monkeypatch.setattr(np, "savez", failing_savez)
    with pytest.raises(type(error)):
        store.write(0, chunk_arrays(2, 1.0))

    assert sorted(path.name for path in store.path.iterdir()) == [MANIFEST_NAME]


def test_damaged_chunk_read_as_missing(tmp_path, caplog):
    store = make_store(tmp_path / "store")
    store.write(0, chunk_arrays(2, 1.0))
    store.chunk_path(0).write_bytes(store.chunk_path(0).read_bytes()[:50])  # truncated, as after a crash

    with caplog.at_level(logging.WARNING, logger="xbar.variability.store"):
        assert store.read(0) is None

    assert "damaged" in caplog.text
    assert not store.chunk_path(0).exists()


def test_chunk_with_other_bounds_read_as_missing(tmp_path):
    store = make_store(tmp_path / "store")
    store.write(1, chunk_arrays(2, 1.0))
    os.replace(store.chunk_path(1), store.chunk_path(0))

    assert store.read(0) is None


def test_open_removes_temporary_files(tmp_path):
    store = make_store(tmp_path / "store")
    leftover = store.path / ".chunk-000001.npz.0123456789ab.tmp"
    leftover.write_bytes(b"partial")

    make_store(store.path, resume=True)

    assert not leftover.exists()


def test_folder_without_manifest_rejected(tmp_path):
    folder = tmp_path / "store"
    folder.mkdir()
    (folder / "notes.txt").write_text("mine", encoding="utf-8")

    with pytest.raises(StoreError, match="not a sweep store"):
        make_store(folder, resume=True)
    assert (folder / "notes.txt").exists()


def test_damaged_manifest_rejected(tmp_path):
    store = make_store(tmp_path / "store")
    (store.path / MANIFEST_NAME).write_text("{", encoding="utf-8")

    with pytest.raises(StoreError, match="cannot read the manifest"):
        make_store(store.path, resume=True)


def test_remove_store_keeps_other_files(tmp_path):
    store = make_store(tmp_path / "store")
    store.write(0, chunk_arrays(2, 1.0))
    (store.path / "notes.txt").write_text("mine", encoding="utf-8")

    remove_store(store.path)

    assert sorted(path.name for path in store.path.iterdir()) == ["notes.txt"]
    (store.path / "notes.txt").unlink()
    remove_store(store.path)
    assert not store.path.exists()


# --- sweeps with a store ---------------------------------------------------------------------------------


def test_store_sweep_equals_plain_sweep(tmp_path, reference):
    store = tmp_path / "store"

    ds = run(store)

    assert_same_results(ds, reference)
    assert len(chunk_files(store)) == N_CHUNKS
    manifest = json.loads((store / MANIFEST_NAME).read_text(encoding="utf-8"))
    assert manifest["layout"] == {"combinations": 2, "points": 12, "chunk_size": CHUNK}
    assert manifest["identity"]["seeds"] == SEEDS
    assert manifest["identity"]["fingerprint"] == "test"


def test_resume_computes_only_missing_chunks(tmp_path, reference):
    store = tmp_path / "store"
    run(store)
    for name in chunk_files(store)[1::2]:  # chunks 1, 3 and 5: 5 + 5 + 2 of the 24 points
        (store / name).unlink()

    calls = []
    ds = run(store, resume=True, progress=lambda done, total: calls.append(done))

    assert_same_results(ds, reference)
    # 24 - 12 = 12 points were loaded, then chunks 1, 3 and 5 ran.
    assert calls == [12, 17, 22, 24]
    assert len(chunk_files(store)) == N_CHUNKS


def test_resume_keeps_stored_chunk_size(tmp_path, reference):
    store = tmp_path / "store"
    run(store)
    (store / chunk_files(store)[0]).unlink()

    calls = []
    ds = run(store, resume=True, chunk_size=2, progress=lambda done, total: calls.append(done))

    assert_same_results(ds, reference)
    assert calls == [19, 24]  # one chunk of the stored 5 points, not of 2


def test_resume_recomputes_damaged_chunk(tmp_path, reference, caplog):
    store = tmp_path / "store"
    run(store)
    damaged = store / chunk_files(store)[2]
    damaged.write_bytes(b"not a zip file")

    with caplog.at_level(logging.WARNING, logger="xbar.variability.store"):
        ds = run(store, resume=True)

    assert_same_results(ds, reference)
    assert "damaged" in caplog.text


def test_resume_without_store_starts_new_sweep(tmp_path, reference):
    ds = run(tmp_path / "new", resume=True)

    assert_same_results(ds, reference)


def test_existing_store_without_resume_raises(tmp_path):
    store = tmp_path / "store"
    run(store)
    before = {name: (store / name).read_bytes() for name in chunk_files(store)}

    with pytest.raises(StoreExistsError, match="resume"):
        run(store)

    assert {name: (store / name).read_bytes() for name in chunk_files(store)} == before


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"fingerprint": "edited"}, "configuration fingerprint"),
        ({"seeds": [3, 7, 12]}, "seeds"),
        ({"seed_data": lambda seed: {"w": jnp.zeros(1)}}, "metrics"),
    ],
)
def test_changed_sweep_rejected(tmp_path, change, expected):
    store = tmp_path / "store"
    run(store)
    before = {name: (store / name).read_bytes() for name in chunk_files(store)}

    with pytest.raises(StoreMismatchError, match=expected):
        run(store, resume=True, **change)

    assert {name: (store / name).read_bytes() for name in chunk_files(store)} == before


def test_changed_axis_values_rejected(tmp_path):
    store = tmp_path / "store"
    run(store)
    axes = [Axis("a", [0.5, 1.0, 2.0, 5.0], units="S"), AXES[1]]

    with pytest.raises(StoreMismatchError, match="sweep axes"):
        sweep(noisy_affine, axes, seeds=SEEDS, seed_data=seed_offset, store=store, fingerprint="test", resume=True)


def test_changed_version_rejected(tmp_path, monkeypatch):
    store = tmp_path / "store"
    run(store)
    monkeypatch.setattr("xbar.__version__", "99.0")

    with pytest.raises(StoreMismatchError, match="xbar version"):
        run(store, resume=True)


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        ({"store": "somewhere"}, "fingerprint"),
        ({"store": "somewhere", "fingerprint": ""}, "fingerprint"),
        ({"resume": True}, "needs store"),
        ({"resume": "yes"}, "True or False"),
        ({"store": 3, "fingerprint": "f"}, "folder path"),
        ({"scheduler": "local:2"}, "needs store"),
    ],
)
def test_invalid_store_options_raise(options, expected):
    with pytest.raises(ValueError, match=expected):
        sweep(noisy_affine, AXES, seeds=2, seed_data=seed_offset, **options)


# --- memory budget ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("point_bytes", "budget", "expected"),
    [(0, 1 << 30, None), (100, 1000, 10), (100, 1099, 10), (3000, 1000, 1), (1 << 24, 1 << 30, 64)],
)
def test_chunk_size_within_budget(point_bytes, budget, expected):
    chunk = studies.chunk_size_for_budget(point_bytes, budget)

    assert chunk == expected
    if chunk is not None and point_bytes <= budget:
        assert chunk * point_bytes <= budget
        assert (chunk + 1) * point_bytes > budget


MVM = """
[array]
rows = 64
cols = 32
[workload]
batch = 16
[sweep]
seeds = 4
[[sweep.axes]]
key = "read.time"
values = [1.0, 10.0, 100.0, 1000.0, 1e4]
"""


def test_study_chunks_follow_memory_budget(tmp_path):
    config = parse_config(MVM)
    point_bytes = 4 * (32 * 64 * 32 + 8 * 16 * (64 + 32))  # the mvm_error workload's estimate
    budget = 3 * point_bytes + 1

    calls = []
    studies.run_study(config, store=tmp_path / "store", memory_budget=budget, progress=lambda d, t: calls.append(d))

    manifest = json.loads((tmp_path / "store" / MANIFEST_NAME).read_text(encoding="utf-8"))
    assert manifest["layout"]["chunk_size"] == 3
    assert manifest["identity"]["fingerprint"] == fingerprint_text(MVM)
    assert calls == [0, 3, 6, 9, 12, 15, 18, 20]  # 5 times x 4 seeds in chunks of 3


def test_invalid_memory_budget_raises():
    with pytest.raises(ValueError, match="memory_budget"):
        studies.run_study(parse_config(MVM), memory_budget=0)


@pytest.mark.parametrize(
    ("text", "expected"),
    [("1000", 1000), ("512MiB", 512 * 2**20), ("2GB", 2 * 10**9), ("4G", 4 * 2**30), ("1.5 KiB", 1536), ("1e6", 10**6)],
)
def test_parse_size(text, expected):
    assert parse_size(text) == expected


@pytest.mark.parametrize("text", ["", "lots", "5 parsecs", "0", "-1GB", "0.1"])
def test_parse_size_rejects_invalid(text):
    with pytest.raises(argparse.ArgumentTypeError, match="invalid size"):
        parse_size(text)


# --- the command line ------------------------------------------------------------------------------------

# The small study that the command-line tests run, shared with tests/test_distributed.py.
STUDY = (Path(__file__).parent / "data" / "small_mvm_study.toml").read_text(encoding="utf-8")
# The mvm_error estimate for 32 x 16 arrays and batch 16 is 90112 bytes per point, so this budget gives
# chunks of 4 points: 8 times x 3 seeds = 24 points in 6 chunks.
STUDY_MEMORY = str(4 * 90112)
STUDY_CHUNKS = 6
# Three ADC resolutions, looped, each compiled on its own: 18 chunks.
LOOPED_STUDY = STUDY + """
[[sweep.axes]]
key = "adc.bits"
values = [4, 6, 8]
"""
LOOPED_STUDY_CHUNKS = 18


@pytest.fixture
def study(tmp_path):
    path = tmp_path / "resumable.toml"
    path.write_text(STUDY, encoding="utf-8")
    return path


def sweep_command(config, output, *options):
    return ["sweep", str(config), "-o", str(output), "--no-plot", "--quiet", "--memory", STUDY_MEMORY, *options]


def test_cli_removes_store_after_output(study, tmp_path):
    output = tmp_path / "run.nc"

    assert main(sweep_command(study, output)) == 0

    assert output.is_file()
    assert not (tmp_path / "run.nc.parts").exists()


def test_cli_keep_store(study, tmp_path, capsys):
    output = tmp_path / "run.nc"

    assert main(sweep_command(study, output, "--keep-store")) == 0

    store = tmp_path / "run.nc.parts"
    assert len(chunk_files(store)) == STUDY_CHUNKS
    assert "kept the sweep store" in capsys.readouterr().out


def test_cli_logs_one_line_per_chunk(study, tmp_path, capsys):
    assert main(sweep_command(study, tmp_path / "run.nc")) == 0

    err = capsys.readouterr().err
    assert err.count("sweep: chunk") == STUDY_CHUNKS
    assert "points/s" in err
    assert "left" in err


def test_cli_existing_store_needs_resume(study, tmp_path, capsys):
    output = tmp_path / "run.nc"
    store = tmp_path / "run.nc.parts"
    store.mkdir()

    assert main(sweep_command(study, output)) == 2

    assert "--resume" in capsys.readouterr().err
    assert store.is_dir()
    assert not output.exists()


def kept_store_then_edit(study, output, text, capsys):
    """Run the study keeping its store, delete the output, write `text` as the study file and discard the captured output."""
    assert main(sweep_command(study, output, "--keep-store")) == 0
    output.unlink()
    study.write_text(text, encoding="utf-8")
    capsys.readouterr()


def test_cli_changed_config_rejected(study, tmp_path, capsys):
    output = tmp_path / "run.nc"
    kept_store_then_edit(study, output, STUDY.replace("batch = 16", "batch = 8"), capsys)

    assert main(sweep_command(study, output, "--resume")) == 2

    err = capsys.readouterr().err
    assert "different sweep" in err
    assert "workload.batch: 16 -> 8" in err
    assert not output.exists()
    assert len(chunk_files(tmp_path / "run.nc.parts")) == STUDY_CHUNKS


def test_cli_changed_config_without_resume(study, tmp_path, capsys):
    output = tmp_path / "run.nc"
    kept_store_then_edit(study, output, STUDY.replace("batch = 16", "batch = 8"), capsys)

    assert main(sweep_command(study, output)) == 2

    err = capsys.readouterr().err
    assert "workload.batch: 16 -> 8" in err
    assert "delete the folder to start over" in err


def test_cli_comment_change_rejected(study, tmp_path, capsys):
    output = tmp_path / "run.nc"
    kept_store_then_edit(study, output, "# a new comment\n" + STUDY, capsys)

    assert main(sweep_command(study, output, "--resume")) == 2

    assert "in comments or layout only" in capsys.readouterr().err


def test_manifest_keeps_study_file(tmp_path):
    config = parse_config(MVM)
    studies.run_study(config, store=tmp_path / "store")

    manifest = json.loads((tmp_path / "store" / MANIFEST_NAME).read_text(encoding="utf-8"))
    assert manifest["attrs"]["config"] == MVM
    assert ChunkStore.existing(tmp_path / "store").attrs["config"] == MVM
    assert ChunkStore.existing(tmp_path / "missing") is None


def test_cli_invalid_memory_exit_status_2(study, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["sweep", str(study), "-o", str(tmp_path / "run.nc"), "--memory", "lots"])

    assert exit_info.value.code == 2
    assert "invalid size" in capsys.readouterr().err


def test_cli_invalid_scheduler_exit_status_2(study, tmp_path, capsys):
    assert main(sweep_command(study, tmp_path / "run.nc", "--scheduler", "local:zero")) == 2

    assert "local:N" in capsys.readouterr().err


@pytest.mark.slow
def test_resume_after_sigkill(study, tmp_path):
    """A sweep killed with SIGKILL at a random chunk and resumed gives the uninterrupted result."""
    study.write_text(LOOPED_STUDY, encoding="utf-8")
    reference = tmp_path / "reference.nc"
    assert main(sweep_command(study, reference)) == 0

    output = tmp_path / "killed.nc"
    store = tmp_path / "killed.nc.parts"
    process = subprocess.Popen(
        [sys.executable, "-m", "xbar.cli", *sweep_command(study, output)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        # The kill comes once a random number of chunks of the first two ADC resolutions are written, so
        # at the latest while the third resolution compiles.
        target = int(np.random.default_rng(8).integers(1, 2 * LOOPED_STUDY_CHUNKS // 3 + 1))
        deadline = time.monotonic() + 120
        while not (store.is_dir() and len(chunk_files(store)) >= target):
            assert process.poll() is None, f"the sweep ended before {target} chunks were written"
            assert time.monotonic() < deadline, f"{target} chunk files did not appear within 120 s"
            time.sleep(0.002)
        process.send_signal(signal.SIGKILL)
    finally:
        process.kill()
        process.wait()

    assert process.returncode == -signal.SIGKILL, "the sweep finished before it was killed"
    finished = len(chunk_files(store))
    assert target <= finished < LOOPED_STUDY_CHUNKS
    assert not output.exists()

    assert main(sweep_command(study, output, "--resume")) == 0

    with xr.open_dataset(output) as resumed, xr.open_dataset(reference) as uninterrupted:
        np.testing.assert_array_equal(resumed["mvm_error"].values, uninterrupted["mvm_error"].values)
        xr.testing.assert_identical(resumed.load(), uninterrupted.load())
    assert not store.exists()
