"""Run the chunks of a sweep as tasks on a dask.distributed cluster.

`sweep(..., store=..., scheduler=...)` calls `run_chunks`, which submits one task per unfinished chunk.
A task evaluates its chunk on a worker and writes the chunk file into the sweep's store, so the store
must be on a file system that the client and every worker share (on one machine, any folder). The client
waits for the tasks, reads each finished chunk from the store and assembles the Dataset.

When a worker dies (killed, out of memory, its node lost), the dask scheduler runs the task it was
running again on another worker, up to `distributed.scheduler.allowed-failures` times per task (3 by
default in distributed 2026.8). A chunk file appears only complete, through an atomic rename, and a
chunk that runs twice writes the same file name, so no result is duplicated or missing.

The sweep's plan (fn, the grid, the seeds and their data) travels to the cluster once, as the result of
one task on which every chunk task depends. If every copy of that result is lost, the scheduler runs the
task again. Each worker process keeps its copy of the plan, with the functions it has compiled, in a
small module-level cache, so it compiles each looped combination once per sweep. Chunk tasks prefer the
worker that runs the other chunks of their looped combination, so that few workers compile each
combination. An idle worker still takes tasks from a busy one.

Workers should run one thread each (`dask worker --nthreads 1`, or `cores=1` with dask-jobqueue and the
cores booked through `job_cpu`): XLA already spreads one chunk over the cores, and each running chunk
needs its own working memory.

This module needs the `distributed` extra: `pip install "xbar-sim[distributed]"`.
"""

from __future__ import annotations

import collections
import contextlib
import logging
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

__all__ = ["LOCAL_PREFIX", "ClusterError", "check_scheduler", "connect", "run_chunks"]

logger = logging.getLogger(__name__)
logger.addHandler(logging.NullHandler())

LOCAL_PREFIX = "local:"
"""Prefix of a scheduler argument "local:N" that starts a LocalCluster of N worker processes."""

# Seconds to wait for a connection to a scheduler before giving up.
CONNECT_TIMEOUT_S = 30

# Plans kept per worker process; older ones (of finished sweeps) are dropped first.
_PLAN_CACHE_SIZE = 4
_plan_cache: collections.OrderedDict[str, Any] = collections.OrderedDict()
_plan_cache_lock = threading.Lock()


class ClusterError(RuntimeError):
    """The cluster could not finish a distributed sweep; the chunks finished so far stay in the store."""


def _import_distributed():
    try:
        import distributed
    except ImportError as error:
        raise ImportError(
            'a distributed sweep needs dask.distributed: pip install "xbar-sim[distributed]"'
        ) from error
    return distributed


def local_workers(scheduler: Any) -> int | None:
    """Return N for a scheduler argument "local:N", or None for any other argument.

    Raises:
        ValueError: when the argument starts with "local:" but N is not a positive integer.
    """
    if not isinstance(scheduler, str) or not scheduler.startswith(LOCAL_PREFIX):
        return None
    count = scheduler[len(LOCAL_PREFIX):]
    if not count.isdigit() or int(count) < 1:
        raise ValueError(f"scheduler {scheduler!r}: write local:N with N >= 1 worker processes, e.g. local:4")
    return int(count)


def check_scheduler(scheduler: Any) -> None:
    """Check the form of a scheduler argument before any work starts.

    Accepted: a scheduler address ("tcp://host:8786"), the path of a scheduler file ending in .json,
    "local:N", or a `distributed.Client`.

    Raises:
        ValueError: on an argument of another form.
        ImportError: when dask.distributed is not installed.
    """
    distributed = _import_distributed()
    if isinstance(scheduler, distributed.Client):
        return
    if not isinstance(scheduler, str) or not scheduler.strip():
        raise ValueError(
            "scheduler must be an address such as 'tcp://10.0.0.5:8786', a scheduler file (.json), 'local:N' or a "
            f"distributed.Client; got {scheduler!r}"
        )
    local_workers(scheduler)
    if scheduler.endswith(".json") and not Path(scheduler).is_file():
        raise ValueError(f"scheduler file {scheduler!r} not found; pass the file that the dask scheduler wrote")


@contextlib.contextmanager
def connect(scheduler: Any) -> Iterator[Any]:
    """Yield a `distributed.Client` for a scheduler argument, and close what this function opened.

    "local:N" starts a LocalCluster of N worker processes with one thread each, listening on 127.0.0.1
    only (its dashboard on a free port), and stops it at the end. A Client passed in is yielded as it is and left open.

    Raises:
        ClusterError: when no connection to the scheduler can be made.
    """
    check_scheduler(scheduler)
    distributed = _import_distributed()
    if isinstance(scheduler, distributed.Client):
        yield scheduler
        return

    n_workers = local_workers(scheduler)
    if n_workers is not None:
        logger.info("starting a LocalCluster of %d worker processes", n_workers)
        with distributed.LocalCluster(
            n_workers=n_workers, threads_per_worker=1, processes=True, host="127.0.0.1",
            # None does not turn the scheduler's HTTP server off (distributed 2026.8): it takes port 8787,
            # which a second cluster on the machine cannot.
            dashboard_address="127.0.0.1:0",
        ) as cluster, distributed.Client(cluster) as client:
            yield client
        return

    try:
        if scheduler.endswith(".json"):
            client = distributed.Client(scheduler_file=scheduler, timeout=CONNECT_TIMEOUT_S)
        else:
            client = distributed.Client(scheduler, timeout=CONNECT_TIMEOUT_S)
    except (OSError, TimeoutError) as error:
        raise ClusterError(
            f"cannot connect to the dask scheduler at {scheduler!r} within {CONNECT_TIMEOUT_S} s: {error}; check "
            "that the scheduler runs and that this machine can reach it"
        ) from error
    logger.info("connected to the dask scheduler at %s", client.scheduler.address)
    with client:
        yield client


def _software() -> dict[str, Any]:
    """Return the versions and settings that a worker must share with the client to give equal results."""
    import jax

    from .. import __version__

    return {"xbar": __version__, "jax": jax.__version__, "jax_enable_x64": bool(jax.config.jax_enable_x64)}


def _check_workers(client: Any) -> None:
    """Raise ClusterError when a connected worker runs other software; warn about workers with several threads.

    NOTE: only the workers connected now are checked; workers that join later (an adaptive cluster)
    are not.
    """
    expected = _software()
    connected = client.run(_software)
    if not connected:
        logger.info("no dask workers are connected yet; the chunks wait for the first worker")
    for address, software in connected.items():
        if software != expected:
            raise ClusterError(
                f"worker {address} runs {software}, but this client runs {expected}; install the same xbar and jax "
                "versions on every worker, so that chunks computed anywhere are equal"
            )
    threaded = {address: count for address, count in client.nthreads().items() if count > 1}
    if threaded:
        logger.warning(
            "%d workers run several threads (for example %s with %d), so several chunks run at once in one process "
            "and each needs the memory budget; start workers with --nthreads 1",
            len(threaded), *next(iter(threaded.items())),
        )


def _load_plan(plan: Any) -> Any:
    """Task that returns the plan, so that chunk tasks can depend on it and dask can recompute it."""
    return plan


def _cached_plan(plan: Any) -> Any:
    """Return this process's copy of the plan with the same token, so that its compiled functions are reused."""
    with _plan_cache_lock:
        cached = _plan_cache.get(plan.token)
        if cached is None:
            _plan_cache[plan.token] = cached = plan
            while len(_plan_cache) > _PLAN_CACHE_SIZE:
                _plan_cache.popitem(last=False)
        else:
            _plan_cache.move_to_end(plan.token)
        return cached


def _worker_address() -> str:
    from distributed import get_worker

    try:
        return get_worker().address
    except ValueError:  # not inside a worker, e.g. a task run by a synchronous scheduler
        return ""


def _run_chunk(plan: Any, store: Any, index: int) -> dict[str, Any]:
    """Task: evaluate chunk `index`, write its file into the store and return its timings."""
    plan = _cached_plan(plan)
    started = time.perf_counter()
    output = plan.evaluate_chunk(index)
    store.write(index, output.arrays)
    return {
        "index": index, "compute_s": output.compute_s, "seconds": time.perf_counter() - started,
        "compiled": output.compiled, "worker": _worker_address(),
    }


def _preferred_workers(layout: Any, pending: list[int], workers: list[str]) -> list[str | None]:
    """Return the worker that each pending chunk should run on, so that each looped combination compiles on few workers.

    With at least as many combinations as workers, each combination goes to one worker, in turn. With
    fewer, the chunks of a combination alternate between `len(workers) // combinations` workers. Without
    workers, chunks have no preference.
    """
    if not workers:
        return [None] * len(pending)
    per_combination = max(1, len(workers) // layout.combinations)
    preferred = []
    for index in pending:
        combination, start, _ = layout.bounds(index)
        position = start // layout.chunk_size
        preferred.append(workers[(combination * per_combination + position % per_combination) % len(workers)])
    return preferred


def _submit_chunks(client: Any, plan: Any, store: Any, pending: list[int], plan_future: Any) -> list[Any]:
    """Submit one task per pending chunk, each preferring the worker that `_preferred_workers` gives it.

    The preference is loose (allow_other_workers=True): a task whose worker is busy can be stolen by an
    idle worker, and the task of a lost worker runs on another one.
    """
    workers = sorted(client.scheduler_info(n_workers=-1)["workers"])
    groups: dict[str | None, list[int]] = {}
    for index, worker in zip(pending, _preferred_workers(plan.layout, pending, workers)):
        groups.setdefault(worker, []).append(index)

    futures = {}
    for worker, indices in groups.items():
        restriction = {} if worker is None else {"workers": [worker], "allow_other_workers": True}
        group = client.map(
            _run_chunk, [plan_future] * len(indices), [store] * len(indices), indices,
            key=[f"xbar-chunk-{plan.token}-{index}" for index in indices], **restriction,
        )
        futures.update(zip(indices, group))
    return [futures[index] for index in pending]


def run_chunks(
    plan: Any, store: Any, pending: list[int], scheduler: Any, on_chunk: Callable[..., None]
) -> None:
    """Run the pending chunks of a sweep on a dask cluster and call `on_chunk` as each one finishes.

    Args:
        plan: the sweep's plan (`xbar.variability.sweep._SweepPlan`).
        store: the sweep's `ChunkStore`, which the workers write into.
        pending: indices of the chunks to compute.
        scheduler: see `check_scheduler`.
        on_chunk: called in this process as `on_chunk(index=, compute_s=, seconds=, compiled=, worker=)`
            once per chunk, in the order in which chunks finish.

    Raises:
        ClusterError: when the scheduler cannot be reached, a chunk's task was lost with the workers that
            ran it more often than the scheduler allows, or the connection to the scheduler was lost.
        Exception: whatever fn raised on a worker, unchanged.

    Unfinished tasks are cancelled when this function returns or raises (KeyboardInterrupt included);
    the chunks finished by then stay in the store.
    """
    distributed = _import_distributed()
    with connect(scheduler) as client:
        _check_workers(client)
        futures = []
        try:
            with warnings.catch_warnings():
                # dask warns about any task argument over 10 MB, which the plan (with the seeds' data) may
                # be. The warning is for data repeated in many tasks; the plan is sent once.
                warnings.filterwarnings("ignore", message="Sending large graph", category=UserWarning)
                plan_future = client.submit(_load_plan, plan, key=f"xbar-plan-{plan.token}")
            futures.append(plan_future)
            chunk_futures = _submit_chunks(client, plan, store, pending, plan_future)
            futures.extend(chunk_futures)
            logger.info("submitted %d chunks to the dask scheduler at %s", len(pending), client.scheduler.address)
            for future in distributed.as_completed(chunk_futures):
                on_chunk(**future.result())
        except distributed.KilledWorker as error:
            raise ClusterError(
                f"a chunk was lost with every worker that ran it ({error}); the chunks finished so far are kept in "
                f"{store.path}, so resume the sweep once the workers are stable"
            ) from error
        except (distributed.comm.CommClosedError, distributed.client.FutureCancelledError) as error:
            raise ClusterError(
                f"lost the connection to the dask scheduler ({error}); the chunks finished so far are kept in "
                f"{store.path}, so resume the sweep once the scheduler runs again"
            ) from error
        finally:
            unfinished = [future for future in futures if not future.done()]
            if unfinished:
                try:
                    client.cancel(unfinished)
                except (OSError, distributed.comm.CommClosedError) as error:
                    # The scheduler is gone, and with it the tasks; the error that ended the sweep matters more.
                    logger.warning("could not cancel %d unfinished chunk tasks: %s", len(unfinished), error)
