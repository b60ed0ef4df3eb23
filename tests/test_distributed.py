"""Distributed sweeps on a dask LocalCluster: equal results, killed workers and rejected clusters."""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from pathlib import Path

import pytest

distributed = pytest.importorskip("distributed")
cloudpickle = pytest.importorskip("cloudpickle")

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import xarray as xr  # noqa: E402

from xbar.cli import main  # noqa: E402
from xbar.variability import Axis, sweep  # noqa: E402
from xbar.variability import distributed as xbar_distributed  # noqa: E402
from xbar.variability.distributed import ClusterError  # noqa: E402

# The workers cannot import this test module, so its functions travel by value.
cloudpickle.register_pickle_by_value(sys.modules[__name__])


def slow_metric(params, key, data):
    """A metric that takes about 0.2 s per chunk of 4 points on 2 cores, so that a worker can be killed mid-chunk."""
    matrix = jax.random.normal(key, (256, 256)) / 16
    x = jax.lax.fori_loop(0, 12000, lambda i, x: jnp.tanh(matrix @ x), jnp.ones(256) * params["a"])
    return {"y": x.sum() + data["offset"], "first": x[0]}


def seed_offset(seed):
    return {"offset": jnp.float32(seed)}


AXES = [Axis("a", [0.25, 0.5, 1.0, 2.0], units="S"), Axis("sign", [1, -1], vectorized=False)]
SEEDS = 6
# 4 values of a times 6 seeds = 24 points per looped value of sign, in chunks of 4: 12 chunks.
CHUNK = 4
N_CHUNKS = 12


def chunk_files(store):
    return sorted(path.name for path in store.iterdir() if path.name.startswith("chunk-"))


@pytest.fixture(scope="module")
def client():
    """A LocalCluster of 2 worker processes with one thread each, on 127.0.0.1."""
    with distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1", dashboard_address="127.0.0.1:0"
    ) as cluster, distributed.Client(cluster) as client:
        yield client


@pytest.fixture(scope="module")
def reference():
    """The sweep in this process, without a store."""
    return sweep(slow_metric, AXES, seeds=SEEDS, seed_data=seed_offset, chunk_size=CHUNK)


@pytest.mark.slow
def test_cluster_sweep_equals_in_process(client, reference, tmp_path):
    store = tmp_path / "store"

    ds = sweep(
        slow_metric, AXES, seeds=SEEDS, seed_data=seed_offset, chunk_size=CHUNK, store=store, fingerprint="slow",
        scheduler=client,
    )

    np.testing.assert_array_equal(ds["y"].values, reference["y"].values)
    xr.testing.assert_identical(ds, reference)
    assert len(chunk_files(store)) == N_CHUNKS


@pytest.mark.slow
def test_killed_worker_result_complete(client, reference, tmp_path):
    """A worker killed with SIGKILL during the sweep has its chunk run again on another worker."""
    store = tmp_path / "store"
    pids = sorted(client.run(os.getpid).values())

    import threading

    outcome = {}

    def run_sweep():
        try:
            outcome["ds"] = sweep(
                slow_metric, AXES, seeds=SEEDS, seed_data=seed_offset, chunk_size=CHUNK, store=store,
                fingerprint="slow", scheduler=client,
            )
        except BaseException as error:  # reported by the assertions below
            outcome["error"] = error

    thread = threading.Thread(target=run_sweep)
    thread.start()
    deadline = time.monotonic() + 120
    while not (store.is_dir() and chunk_files(store)):
        assert thread.is_alive(), f"the sweep ended before its first chunk was written: {outcome}"
        assert time.monotonic() < deadline, "no chunk file appeared within 120 s"
        time.sleep(0.01)
    finished_at_kill = len(chunk_files(store))
    os.kill(pids[0], signal.SIGKILL)
    thread.join(timeout=300)

    assert not thread.is_alive()
    assert "error" not in outcome, outcome.get("error")
    assert finished_at_kill < N_CHUNKS
    ds = outcome["ds"]
    np.testing.assert_array_equal(ds["y"].values, reference["y"].values)
    xr.testing.assert_identical(ds, reference)
    assert len(chunk_files(store)) == N_CHUNKS
    # The nanny replaced the killed worker.
    assert pids[0] not in client.run(os.getpid).values()


def test_scheduler_file_accepted(client, tmp_path):
    scheduler_file = tmp_path / "scheduler.json"
    scheduler_file.write_text(json.dumps({"address": client.scheduler.address}), encoding="utf-8")

    with xbar_distributed.connect(str(scheduler_file)) as connected:
        assert connected.scheduler.address == client.scheduler.address
        assert len(connected.nthreads()) == 2


def test_worker_with_other_software_rejected(client, tmp_path, monkeypatch):
    monkeypatch.setattr("xbar.__version__", "99.0")  # in this process only, not in the workers

    with pytest.raises(ClusterError, match="same xbar and jax"):
        sweep(
            slow_metric, AXES, seeds=2, seed_data=seed_offset, chunk_size=CHUNK, store=tmp_path / "store",
            fingerprint="slow", scheduler=client,
        )


def test_unreachable_scheduler_raises(tmp_path, monkeypatch):
    monkeypatch.setattr(xbar_distributed, "CONNECT_TIMEOUT_S", 1)

    with pytest.raises(ClusterError, match="cannot connect"):
        with xbar_distributed.connect("tcp://127.0.0.1:9"):
            pass


@pytest.mark.parametrize(
    ("scheduler", "expected"),
    [("local:0", "local:N"), ("local:two", "local:N"), ("", "address"), (42, "address"), ("missing.json", "not found")],
)
def test_invalid_scheduler_raises(scheduler, expected):
    with pytest.raises(ValueError, match=expected):
        xbar_distributed.check_scheduler(scheduler)


# The small study that the command-line tests run, shared with tests/test_store.py.
STUDY = (Path(__file__).parent / "data" / "small_mvm_study.toml").read_text(encoding="utf-8")


@pytest.mark.slow
def test_cli_local_cluster_equal_result(tmp_path):
    config = tmp_path / "distributed.toml"
    config.write_text(STUDY, encoding="utf-8")
    options = ["--no-plot", "--quiet", "--memory", str(4 * 90112)]  # chunks of 4 points

    assert main(["sweep", str(config), "-o", str(tmp_path / "local.nc"), *options]) == 0
    assert main(["sweep", str(config), "-o", str(tmp_path / "cluster.nc"), "--scheduler", "local:2", *options]) == 0

    with xr.open_dataset(tmp_path / "local.nc") as local, xr.open_dataset(tmp_path / "cluster.nc") as cluster:
        np.testing.assert_array_equal(cluster["mvm_error"].values, local["mvm_error"].values)
        xr.testing.assert_identical(cluster.load(), local.load())
    assert not (tmp_path / "cluster.nc.parts").exists()


@pytest.mark.parametrize(
    ("combinations", "workers", "expected"),
    [
        # 4 combinations of 2 chunks on 2 workers: each combination stays on one worker.
        (4, ["A", "B"], ["A", "A", "B", "B", "A", "A", "B", "B"]),
        # 1 combination on 2 workers: its chunks alternate.
        (1, ["A", "B"], ["A", "B"]),
        # 2 combinations on 4 workers: two workers per combination.
        (2, ["A", "B", "C", "D"], ["A", "B", "C", "D"]),
    ],
)
def test_chunk_worker_preference(combinations, workers, expected):
    from xbar.variability.store import ChunkLayout

    chunks_per_combination = len(expected) // combinations
    layout = ChunkLayout(combinations=combinations, points=4 * chunks_per_combination, chunk_size=4)
    pending = list(range(layout.n_chunks))

    assert xbar_distributed._preferred_workers(layout, pending, workers) == expected
    assert xbar_distributed._preferred_workers(layout, pending, []) == [None] * len(pending)
