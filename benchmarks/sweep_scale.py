"""Benchmark chunked, resumable sweeps of the PCM drift study in one process and on a dask LocalCluster.

Run from the repository root:

    python benchmarks/sweep_scale.py            # 2,000-point sweeps and the memory scan; under 3 minutes on 2 cores
    python benchmarks/sweep_scale.py --quick    # 200-point sweeps in chunks of 16; under a minute on 2 cores

The study is `examples/pcm_drift.toml` (a 256 x 256 PCM tile, 512 input vectors per point, 4 ADC
resolutions x 2 drift-compensation settings looped), with the read-time axis widened to T log-spaced
times from 1 s to 1 year and S seeds, so that the sweep has 8 T S points. Every sweep runs as
`xbar sweep` does: `run_study` with a chunk store beside a temporary output, chunk sizes from the memory
budget and the workload's estimate of 16 MiB per point.

Each sweep runs in a child process (this script with the hidden option --child), so that its peak
resident set size covers that sweep alone. The figures:

- points per second over the whole sweep, compilation included;
- per-chunk overhead in one process: the wall time between the ends of two consecutive chunks of one
  looped combination (input preparation, the jitted call, the copy of its outputs, the atomic write of
  the chunk file, the progress report) minus the jitted call on its own, measured inside the sweep, and
  as a share of that call. Chunks that compiled are left out;
- a bare jitted evaluation of the same batch size outside the sweep (the study's point function, under
  `jax.jit(jax.vmap(...))`), as a check on the call timed inside the sweep;
- on the cluster: worker time per chunk that is not the jitted call, (workers x wall - sum of calls) /
  chunks, which includes each worker's compilations, and the same without the chunks that compiled;
- peak resident set size of the sweep process (and of each worker) at several grid sizes. At the
  default budget a 200-point sweep has 25 points per looped combination, so its chunks are smaller than
  the 64 of a 2,000-point sweep; a 640-point sweep already has chunks of 64. The scan therefore also
  runs at a budget of 256 MiB (16 points per chunk), where 200 and 2,000 points use the same chunks.

The last line of output is one JSON object with every figure.
"""

from __future__ import annotations

import argparse
import datetime
import json
import logging
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

GOAL_OVERHEAD = 0.10  # per-chunk overhead at most 10 % of the chunk's jitted call
SCAN_BUDGET = 256 * 2**20
COMBINATIONS = 8  # 4 ADC resolutions x 2 drift-compensation settings


# The child: one sweep, measured.


def study_text(times: int, seeds: int) -> str:
    """Return examples/pcm_drift.toml with `times` read times from 1 s to 1 year and `seeds` seeds."""
    import numpy as np

    from xbar.cli import bundled_configs

    text = bundled_configs()["pcm_drift"].read_text(encoding="utf-8")
    values = ", ".join(f"{value:.6g}" for value in np.geomspace(1.0, 31536000.0, times))
    text = text.replace("values = [1.0, 60.0, 3600.0, 86400.0, 604800.0, 2592000.0, 31536000.0]", f"values = [{values}]")
    text = text.replace("[sweep]\nseeds = 4", f"[sweep]\nseeds = {seeds}")
    if f"seeds = {seeds}" not in text or values not in text:
        raise RuntimeError("examples/pcm_drift.toml changed; update study_text() in benchmarks/sweep_scale.py")
    return text


def peak_rss_bytes() -> int:
    """Return the peak resident set size of this process in bytes (Linux reports kilobytes)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(peak if sys.platform == "darwin" else peak * 1024)


class ChunkRecords(logging.Handler):
    """Collect the timings that the sweep attaches to its per-chunk log records."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.chunks: list[dict] = []

    def emit(self, record: logging.LogRecord) -> None:
        if hasattr(record, "sweep_chunk"):
            self.chunks.append(dict(record.sweep_chunk))


def bare_call_seconds(captured: dict, chunk_size: int, seeds: int, repeats: int) -> float:
    """Time the study's point function under jax.jit(jax.vmap(...)) at one batch size, outside the sweep.

    The call has the form of a sweep chunk: `chunk_size` read times with drift compensation on and an
    8-bit ADC, each point taking its key and data from the stacked data of `seeds` seeds. Returns the
    median seconds per call after compilation.
    """
    import jax
    import jax.numpy as jnp
    import numpy as np

    fn, seed_data = captured["fn"], captured["seed_data"]
    per_seed = [seed_data(seed) for seed in range(seeds)]
    data = jax.tree_util.tree_map(lambda *leaves: jnp.stack(leaves), *per_seed)
    keys = jax.vmap(jax.random.key)(jnp.arange(seeds, dtype=jnp.uint32))
    times = jnp.asarray(np.geomspace(1.0, 3e7, chunk_size), jnp.float32)
    seed_index = jnp.arange(chunk_size, dtype=jnp.int32) % seeds

    def point(time, seed, keys, data):
        point_data = jax.tree_util.tree_map(lambda leaf: leaf[seed], data)
        return fn({"time": time, "drift_compensation": True, "adc_bits": 8}, keys[seed], point_data)

    batched = jax.jit(jax.vmap(point, in_axes=(0, 0, None, None)))
    jax.block_until_ready(batched(times, seed_index, keys, data))
    seconds = []
    for _ in range(repeats):
        started = time.perf_counter()
        jax.block_until_ready(batched(times, seed_index, keys, data))
        seconds.append(time.perf_counter() - started)
    return statistics.median(seconds)


def run_child(settings: dict) -> dict:
    """Run one sweep as `xbar sweep` does and return its timings and peak memory."""
    from xbar import studies
    from xbar.config import parse_config
    from xbar.variability.store import remove_store

    handler = ChunkRecords()
    sweep_logger = logging.getLogger("xbar.variability.sweep")
    sweep_logger.addHandler(handler)
    sweep_logger.setLevel(logging.INFO)

    # run_study builds the point function; the wrapper keeps it for the bare timing.
    captured = {}
    real_sweep = studies.sweep

    def capturing_sweep(fn, axes, **options):
        captured.update(fn=fn, seed_data=options["seed_data"])
        return real_sweep(fn, axes, **options)

    studies.sweep = capturing_sweep
    config = parse_config(study_text(settings["times"], settings["seeds"]), source="pcm_drift (benchmark)")
    result = {"settings": settings}
    with tempfile.TemporaryDirectory(prefix="xbar-sweep-scale-") as folder:
        store = Path(folder) / "pcm_drift.nc.parts"
        client = cluster = None
        if settings["workers"]:
            import distributed

            started = time.perf_counter()
            cluster = distributed.LocalCluster(
                n_workers=settings["workers"], threads_per_worker=1, processes=True, host="127.0.0.1",
                dashboard_address="127.0.0.1:0",
            )
            client = distributed.Client(cluster)
            result["cluster_start_s"] = time.perf_counter() - started
        started = time.perf_counter()
        ds = studies.run_study(config, store=store, memory_budget=settings["memory"], scheduler=client)
        result["wall_s"] = time.perf_counter() - started
        remove_store(store)
        if client is not None:
            result["worker_peak_rss_bytes"] = sorted(client.run(peak_rss_bytes).values())
            client.close()
            cluster.close()

    result["points"] = int(ds["mvm_error"].size)
    # The chunk size for the budget, capped at the points of one looped combination.
    result["chunk_size"] = max(chunk["points"] for chunk in handler.chunks)
    result["chunks"] = handler.chunks
    result["mean_mvm_error"] = float(ds["mvm_error"].mean())
    if not settings["workers"] and settings.get("bare_repeats"):
        result["bare_call_s"] = bare_call_seconds(
            captured, result["chunk_size"], settings["seeds"], settings["bare_repeats"]
        )
    result["peak_rss_bytes"] = peak_rss_bytes()
    return result


def run_in_child(settings: dict) -> dict:
    """Run `run_child(settings)` in a fresh Python process and return its result."""
    command = [sys.executable, __file__, "--child", json.dumps(settings)]
    completed = subprocess.run(command, capture_output=True, text=True, check=False)
    if completed.returncode != 0:
        raise RuntimeError(f"child sweep {settings} failed:\n{completed.stderr[-4000:]}")
    return json.loads(completed.stdout.strip().splitlines()[-1])


# Analysis.


def in_process_overheads(result: dict) -> dict:
    """Per-chunk overhead of a sweep in one process, from the chunks that did not compile."""
    chunks = result["chunks"]
    overheads, calls = [], []
    for previous, chunk in zip(chunks, chunks[1:]):
        if chunk["compiled"]:
            continue
        wall = chunk["elapsed_s"] - previous["elapsed_s"]
        overheads.append(wall - chunk["compute_s"])
        calls.append(chunk["compute_s"])
    summary = {
        "steady_chunks": len(calls),
        "call_s_median": statistics.median(calls),
        "overhead_s_median": statistics.median(overheads),
        "overhead_s_mean": statistics.fmean(overheads),
        "compile_chunks": sum(chunk["compiled"] for chunk in chunks),
    }
    summary["overhead_share"] = summary["overhead_s_median"] / summary["call_s_median"]
    compiled = [chunk["seconds"] - summary["call_s_median"] for chunk in chunks if chunk["compiled"]]
    summary["compile_s_per_combination"] = statistics.median(compiled) if compiled else 0.0
    return summary


def cluster_overheads(result: dict, in_process_call_s: float) -> dict:
    """Worker time per chunk that is not the jitted call, with and without the chunks that compiled.

    Every worker compiles each looped combination that it meets, so in a short sweep every chunk may
    have compiled. The call time of a chunk is then taken from the sweep in one process.
    """
    chunks = result["chunks"]
    workers = result["settings"]["workers"]
    steady = [chunk for chunk in chunks if not chunk["compiled"]]
    calls = [chunk["compute_s"] for chunk in steady]
    call_s = statistics.median(calls) if calls else in_process_call_s
    all_calls = sum(calls) + call_s * (len(chunks) - len(steady))
    summary = {
        "steady_chunks": len(steady),
        "call_s_median": call_s,
        "call_s_from": "cluster" if calls else "in_process",
        "worker_s_per_chunk_not_call": (workers * result["wall_s"] - all_calls) / len(chunks),
        "compile_chunks": len(chunks) - len(steady),
        "worker_busy_share": sum(chunk["seconds"] for chunk in chunks) / (workers * result["wall_s"]),
        "chunks_per_worker": {
            worker: sum(chunk["worker"] == worker for chunk in chunks) for worker in sorted({c["worker"] for c in chunks})
        },
    }
    summary["share_of_call"] = summary["worker_s_per_chunk_not_call"] / call_s
    if steady:
        summary["task_overhead_s_median"] = statistics.median(chunk["seconds"] - chunk["compute_s"] for chunk in steady)
        summary["task_overhead_share"] = summary["task_overhead_s_median"] / call_s
    return summary


# Report.


def mib(n_bytes: float) -> str:
    return f"{n_bytes / 2**20:.0f} MiB"


def print_report(machine: dict, runs: dict, analysis: dict, wall_s: float) -> None:
    print("Chunked sweeps of the PCM drift study (256 x 256 PCM tile, 512 inputs per point, 8 looped combinations)")
    print(f"CPU: {machine['cpu']} ({machine['cores']} cores, {machine['usable_cores']} usable), "
          f"load average {machine['load_average_1min']:.2f} at start, {machine['load_average_1min_end']:.2f} at end")
    print(f"jax {machine['jax']} on {machine['backend']}; thread settings: {machine['thread_settings']}")
    print()
    print(f"{'run':<28} {'points':>6} {'chunk':>5} {'chunks':>6} {'wall':>8} {'points/s':>9} {'peak RSS':>9} {'workers RSS':>14}")
    for name, result in runs.items():
        chunks = len(result["chunks"])
        workers = ", ".join(mib(value) for value in result.get("worker_peak_rss_bytes", [])) or "-"
        print(f"{name:<28} {result['points']:>6} {result['chunk_size']:>5} {chunks:>6} {result['wall_s']:>7.1f}s "
              f"{result['points'] / result['wall_s']:>9.1f} {mib(result['peak_rss_bytes']):>9} {workers:>14}")
    print()

    local = analysis["in_process"]
    print("In one process, chunks that did not compile:")
    print(f"  jitted call inside the sweep (median): {local['call_s_median'] * 1e3:.1f} ms for "
          f"{runs['in_process']['chunk_size']} points")
    if "bare_call_s" in runs["in_process"]:
        print(f"  bare jitted evaluation of the same batch, outside the sweep: {runs['in_process']['bare_call_s'] * 1e3:.1f} ms")
    print(f"  overhead per chunk: median {local['overhead_s_median'] * 1e3:.1f} ms, mean {local['overhead_s_mean'] * 1e3:.1f} ms "
          f"= {local['overhead_share']:.1%} of the call (goal < {GOAL_OVERHEAD:.0%}: "
          f"{'met' if local['overhead_share'] < GOAL_OVERHEAD else 'NOT met'})")
    print(f"  compilation: {local['compile_chunks']} chunks compiled, about {local['compile_s_per_combination']:.1f} s each")
    if "cluster" in analysis:
        cluster = analysis["cluster"]
        print(f"On the LocalCluster ({runs['cluster']['settings']['workers']} workers, started in "
              f"{runs['cluster']['cluster_start_s']:.1f} s, not counted in the wall time):")
        where = "on a worker" if cluster["call_s_from"] == "cluster" else "in one process (every cluster chunk compiled)"
        print(f"  jitted call {where} (median): {cluster['call_s_median'] * 1e3:.1f} ms")
        print(f"  worker time per chunk outside the jitted call: {cluster['worker_s_per_chunk_not_call'] * 1e3:.1f} ms "
              f"= {cluster['share_of_call']:.1%} of the call, {cluster['compile_chunks']} compilations included; "
              f"workers busy {cluster['worker_busy_share']:.0%} of the wall time")
        if "task_overhead_s_median" in cluster:
            print(f"  task overhead without compilation (median): {cluster['task_overhead_s_median'] * 1e3:.1f} ms "
                  f"= {cluster['task_overhead_share']:.1%} of the call")
        print(f"  chunks per worker: {cluster['chunks_per_worker']}")
    scan = analysis["memory_scan"]
    print("Peak resident set size in one process against grid size:")
    for entry in scan:
        print(f"  {entry['points']:>5} points, budget {mib(entry['memory'])}, chunks of up to {entry['chunk_size']}: "
              f"{mib(entry['peak_rss_bytes'])}")
    print(f"wall time {wall_s:.0f} s")


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--quick", action="store_true", help="200-point sweeps in chunks of 16 points only (under a minute on 2 cores)"
    )
    parser.add_argument("--workers", type=int, default=2, help="workers of the LocalCluster (default 2)")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(run_child(json.loads(args.child))))
        return

    import jax  # noqa: F401  (for the machine description)

    sys.path.insert(0, str(Path(__file__).parent))
    import _machine

    from xbar.studies import MEMORY_BUDGET

    started = time.perf_counter()
    machine = _machine.machine_info()
    # 2,000 points: 25 read times x 8 combinations x 10 seeds; 200 points: 5 x 8 x 5. A 200-point sweep
    # at the default budget has one chunk per combination, which always compiles, so the quick run uses
    # the scan budget: chunks of 16 and 9 points.
    large = {"times": 25, "seeds": 10, "memory": MEMORY_BUDGET}
    small = {"times": 5, "seeds": 5, "memory": SCAN_BUDGET}
    main_size = small if args.quick else large
    runs = {
        "in_process": run_in_child({**main_size, "workers": 0, "bare_repeats": 5}),
        "cluster": run_in_child({**main_size, "workers": args.workers}),
    }
    scan_settings = []
    if not args.quick:
        scan_settings = [
            ("scan, 200 points", {**small, "workers": 0}),
            ("scan, 2000 points", {**large, "memory": SCAN_BUDGET, "workers": 0}),
            ("scan, 200 points, default", {**small, "memory": MEMORY_BUDGET, "workers": 0}),
            # 8 read times x 10 seeds = 80 points per combination: chunks of 64 and 16.
            ("scan, 640 points, default", {"times": 8, "seeds": 10, "memory": MEMORY_BUDGET, "workers": 0}),
        ]
    for name, settings in scan_settings:
        runs[name] = run_in_child(settings)

    analysis = {"in_process": in_process_overheads(runs["in_process"])}
    analysis["cluster"] = cluster_overheads(runs["cluster"], analysis["in_process"]["call_s_median"])
    scan = [runs[name] for name, _ in scan_settings] + [runs["in_process"]]
    analysis["memory_scan"] = sorted(
        (
            {"points": r["points"], "memory": r["settings"]["memory"], "chunk_size": r["chunk_size"],
             "peak_rss_bytes": r["peak_rss_bytes"]}
            for r in scan
        ),
        key=lambda entry: (entry["memory"], entry["points"]),
    )
    machine["load_average_1min_end"] = os.getloadavg()[0]
    wall_s = time.perf_counter() - started

    print_report(machine, runs, analysis, wall_s)
    figures = {
        "benchmark": "sweep_scale",
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "quick": args.quick,
        "runs": {
            name: {key: value for key, value in result.items() if key != "chunks"} | {"n_chunks": len(result["chunks"])}
            for name, result in runs.items()
        },
        "points_per_s": {name: result["points"] / result["wall_s"] for name, result in runs.items()},
        "analysis": analysis,
        "goals": {
            "overhead_share_below": GOAL_OVERHEAD,
            "overhead_met": analysis["in_process"]["overhead_share"] < GOAL_OVERHEAD,
        },
        "machine": machine,
        "wall_s": wall_s,
    }
    print(json.dumps(figures, default=str))


if __name__ == "__main__":
    main()
