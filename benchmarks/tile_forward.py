"""Benchmark the non-ideal forward product of a 512 x 512 PCM tile against an ideal float32 product.

Run from the repository root:

    python benchmarks/tile_forward.py            # full run, a few minutes at most
    python benchmarks/tile_forward.py --quick    # fewer repeats, under a minute

The timed call is `Tile.matmul(read, x, key=...)` under `jax.jit`: a batch of inputs through the DAC, the
array and the ADC, for a read of the array at one time t. The read itself (drift and accumulated 1/f noise
of every device, done once per read time) is timed on its own. Two tile configurations are compared with
a jitted `jnp.dot` of the same shape:

    (a) 8-bit DAC and ADC, global drift compensation, no short-term noise and no output noise.
    (b) as (a) plus short-term read noise (2 % per device) and output noise of half an ADC step.

The calls of each timing round are interleaved (ideal, tile a, tile b), and each ratio is the median over
rounds of the per-round ratio. A slow phase of a shared machine then tends to slow both sides of a ratio,
and the quartiles of the per-round ratios, printed with each ratio, show how noisy the timing was.

A second table times the pieces of the noisy product: the normal draw with each PRNG implementation, one
combined draw against two separate draws for short-term plus output noise, and the quantizers inside
and outside one jitted program. The last line of output is one JSON object with every figure.
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import os
import resource
import statistics
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np

from xbar.crossbar import ADC, DAC, Tile
from xbar.devices.pcm import PCM

import _machine  # benchmarks/ is the script's folder, so it is on sys.path

ROWS = 512
COLUMNS = 512
BATCHES = (1, 64, 1024)
READ_TIME_S = 3600.0
SHORT_TERM_NOISE = 0.02
# Goals at the largest batch: tile time over ideal time.
GOALS = {"a": 1.5, "b": 4.0}
PRNG_IMPLS = ("threefry2x32", "threefry4x32", "philox2x32", "philox4x32", "rbg", "unsafe_rbg")


# Machine description.


def machine_info() -> dict:
    """Return the machine description of `_machine` plus the JAX device."""
    info = _machine.machine_info()
    info["device"] = str(jax.devices()[0])
    return info


# Timing.


def time_interleaved(calls: dict, rounds: int, round_s: float, warmup_s: float = 0.0) -> dict[str, list[float]]:
    """Time each jitted call, interleaved round by round; return seconds per call for every round.

    `calls` maps a name to (function, args). Every function is called once first so that compilation and
    the first transfer are not timed, and then for `warmup_s` seconds more untimed. Within a round each
    function runs enough calls to fill about `round_s` seconds, and the round ends with
    `block_until_ready` on the last result.
    """
    calls_per_round = {}
    for name, (function, args) in calls.items():
        jax.block_until_ready(function(*args))
        warmup_end = time.perf_counter() + warmup_s
        while time.perf_counter() < warmup_end:
            jax.block_until_ready(function(*args))
        start = time.perf_counter()
        jax.block_until_ready(function(*args))
        once = max(time.perf_counter() - start, 1e-6)
        calls_per_round[name] = max(1, math.ceil(round_s / once))

    per_call = {name: [] for name in calls}
    for _ in range(rounds):
        for name, (function, args) in calls.items():
            count = calls_per_round[name]
            start = time.perf_counter()
            for _ in range(count):
                result = function(*args)
            jax.block_until_ready(result)
            per_call[name].append((time.perf_counter() - start) / count)
    return per_call


def timing_arguments(
    description: str, argv, *, rounds: int, quick_rounds: int, round_s: float, quick_round_s: float,
    quick_help: str = "fewer and shorter timing rounds (under a minute)",
):
    """Parse the --quick and --rounds options of a benchmark; return (args, rounds, round_s).

    `round_s` is the time in seconds that each timed function runs in each round. `rounds` and `round_s`
    apply without --quick, `quick_rounds` and `quick_round_s` with it.
    """
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--quick", action="store_true", help=quick_help)
    parser.add_argument(
        "--rounds", type=int, default=None, help=f"timing rounds per call (default {rounds}, quick {quick_rounds})"
    )
    args = parser.parse_args(argv)
    if args.rounds is not None:
        chosen = args.rounds
    else:
        chosen = quick_rounds if args.quick else rounds
    if chosen < 1:
        parser.error(f"--rounds must be at least 1, got {chosen}")
    return args, chosen, (quick_round_s if args.quick else round_s)


def compile_timed(function, args) -> tuple:
    """Return (the compiled `jax.jit(function)` for `args`, seconds spent tracing and compiling it)."""
    start = time.perf_counter()
    compiled = jax.jit(function).lower(*args).compile()
    return compiled, time.perf_counter() - start


def median_ratio(numerator: list[float], denominator: list[float]) -> float:
    """Return the median of the per-round ratios."""
    return statistics.median(n / d for n, d in zip(numerator, denominator))


def ratio_quartiles(numerator: list[float], denominator: list[float]) -> list[float]:
    """Return the first and third quartile of the per-round ratios, a measure of timing noise."""
    ratios = [n / d for n, d in zip(numerator, denominator)]
    if len(ratios) < 2:
        return [ratios[0], ratios[0]]
    quartiles = statistics.quantiles(ratios, n=4)
    return [quartiles[0], quartiles[2]]


# The tiles.


def make_tiles(weights) -> dict[str, Tile]:
    """Build configurations (a) and (b) with an ADC range suited to `weights` and inputs uniform in [-1, 1]."""
    device = PCM()
    read_voltage = 0.2
    # Column j carries a current of standard deviation V (g_max - g_min) / max|W| sqrt(sum_i W_ij^2 / 3) for
    # inputs uniform in [-1, 1] (variance 1/3). Full scale at 4 such deviations of the widest column clips
    # about 3e-5 of the outputs of this benchmark, and 8-bit rounding alone then adds about 1 % error.
    column_norm = float(jnp.max(jnp.sqrt(jnp.sum(weights * weights, axis=0) / 3.0)))
    span = device.g_max - device.g_min
    current_range = 4.0 * read_voltage * span * column_norm / float(jnp.max(jnp.abs(weights)))
    adc = ADC(8, current_range=current_range)
    common = dict(device=device, read_voltage=read_voltage, dac=DAC(8), adc=adc, drift_compensation=True)
    # Output noise of half an ADC step: 8 bits give 127 steps per polarity.
    output_noise = 0.5 * current_range / 127
    return {
        "a": Tile(**common),
        "b": Tile(**common, short_term_noise=SHORT_TERM_NOISE, output_noise=output_noise),
    }


def jit_matmul(tile: Tile):
    """Return the jitted product of `tile`; its noise settings stay concrete so that zero noise costs nothing."""
    return jax.jit(lambda read, x, key: tile.matmul(read, x, key=key))


# Benchmarks.


def benchmark_read(tile: Tile, state, rounds: int, round_s: float) -> float:
    """Return the median time (s) of one jitted array read at READ_TIME_S."""
    read = jax.jit(lambda state, key: tile.read(state, READ_TIME_S, key=key))
    per_call = time_interleaved({"read": (read, (state, jax.random.key(11)))}, rounds, round_s)
    return statistics.median(per_call["read"])


def benchmark_products(tiles, reads, weights, rounds: int, round_s: float) -> dict:
    """Time ideal and tile products at every batch; return times, ratios and relative errors."""
    results = {}
    for batch in BATCHES:
        x = jax.random.uniform(jax.random.key(batch), (batch, ROWS), jnp.float32, -1.0, 1.0)
        product_key = jax.random.key(batch + 1)
        calls = {"ideal": (jax.jit(jnp.dot), (x, weights))}
        for name, tile in tiles.items():
            calls[name] = (jit_matmul(tile), (reads[name], x, product_key))
        per_call = time_interleaved(calls, rounds, round_s)

        exact = x @ weights
        entry = {"ideal_s": statistics.median(per_call["ideal"])}
        for name in tiles:
            output = calls[name][0](*calls[name][1])
            entry[name] = {
                "time_s": statistics.median(per_call[name]),
                "ratio": median_ratio(per_call[name], per_call["ideal"]),
                "ratio_quartiles": ratio_quartiles(per_call[name], per_call["ideal"]),
                "relative_error": float(jnp.linalg.norm(output - exact) / jnp.linalg.norm(exact)),
            }
        results[batch] = entry
    return results


def benchmark_parts(tiles, reads, weights, rounds: int, round_s: float) -> dict:
    """Time the pieces of the noisy product at the largest batch.

    Returns, for each piece by name, the median seconds per call and the median per-round ratio to the
    ideal product of the same batch, which is timed in the same rounds.
    """
    batch = BATCHES[-1]
    shape = (batch, COLUMNS)
    x = jax.random.uniform(jax.random.key(5), (batch, ROWS), jnp.float32, -1.0, 1.0)
    tile_a, tile_b = tiles["a"], tiles["b"]
    read_a = reads["a"]

    # PRNG implementations. The tile draws with whatever key it is given, so the key type is the caller's
    # choice. "rbg" and "unsafe_rbg" lower to XLA's RngBitGenerator; the others are counter-based hashes.
    keys = {}
    for impl in PRNG_IMPLS:
        try:
            keys[impl] = jax.random.key(7, impl=impl)
        except ValueError:  # implementation missing from this jax version
            continue
    draw_normal = jax.jit(lambda key: jax.random.normal(key, shape, jnp.float32))
    draw_bits = jax.jit(lambda key: jax.random.bits(key, shape, jnp.uint32))
    calls = {"ideal product": (jax.jit(jnp.dot), (x, weights))}
    calls.update({f"normal, {impl} key": (draw_normal, (key,)) for impl, key in keys.items()})

    def draw_normal_not_partitionable(key):
        # jax_threefry_partitionable is a process-wide option, so it is switched off for this call only.
        # When it is off, threefry2x32 uses both 32-bit words of each hash, and a key gives other numbers.
        with jax.threefry_partitionable(False):
            return draw_normal(key)

    calls["normal, threefry2x32, not partitionable"] = (draw_normal_not_partitionable, (keys["threefry2x32"],))
    calls["32-bit words only, threefry2x32 key"] = (draw_bits, (keys["threefry2x32"],))

    # Short-term plus output noise, given the short-term variance of each output.
    variance = jax.random.uniform(jax.random.key(8), shape, jnp.float32) * 1e-12
    output_noise = tile_b.output_noise

    def two_draws(variance, key):
        key_short, key_output = jax.random.split(key)
        short = jnp.sqrt(variance) * jax.random.normal(key_short, shape, jnp.float32)
        return short + output_noise * jax.random.normal(key_output, shape, jnp.float32)

    def one_draw(variance, key):
        return jnp.sqrt(variance + output_noise**2) * jax.random.normal(key, shape, jnp.float32)

    calls["noise, two draws"] = (jax.jit(two_draws), (variance, keys["threefry2x32"]))
    calls["noise, one combined draw"] = (jax.jit(one_draw), (variance, keys["threefry2x32"]))

    # The full noisy product with each key type.
    matmul_b = jit_matmul(tile_b)
    for impl, key in keys.items():
        calls[f"tile (b), {impl} key"] = (matmul_b, (reads["b"], x, key))

    # Quantizers: one jitted program, where XLA fuses each quantizer with its scaling into one loop,
    # against DAC, array and ADC as three jitted programs.
    gain = read_a.weight_scale * tile_a.dac.input_range * read_a.drift_gain / (
        tile_a.read_voltage * (tile_a.device.g_max - tile_a.device.g_min)
    )
    dac_stage = jax.jit(lambda x: tile_a.dac(x) * tile_a.read_voltage)
    array_stage = jax.jit(jnp.dot)
    adc_stage = jax.jit(lambda current: tile_a.adc(current) * gain)

    def three_programs(x):
        return adc_stage(array_stage(dac_stage(x), read_a.g_diff))

    calls["tile (a), one jitted program"] = (jit_matmul(tile_a), (read_a, x, None))
    calls["tile (a), DAC, array, ADC jitted apart"] = (three_programs, (x,))
    calls["DAC alone"] = (dac_stage, (x,))
    calls["ADC alone"] = (adc_stage, (x @ read_a.g_diff,))

    per_call = time_interleaved(calls, rounds, round_s)
    reference = per_call["ideal product"]
    return {
        name: {"time_s": statistics.median(times), "ratio_to_ideal": median_ratio(times, reference)}
        for name, times in per_call.items()
    }


# Memory.


def peak_memory() -> dict:
    """Return the peak resident set size in bytes and, where the backend reports them, jax memory stats."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    # Linux reports kilobytes, macOS bytes.
    peak_bytes = peak if sys.platform == "darwin" else peak * 1024
    try:
        stats = jax.devices()[0].memory_stats()
    except Exception:  # backends without memory statistics raise rather than return None
        stats = None
    return {"peak_rss_bytes": int(peak_bytes), "jax_memory_stats": stats}


# Report.


def format_time(seconds: float) -> str:
    """Return a time with a unit suited to its size."""
    if seconds < 1e-3:
        return f"{seconds * 1e6:8.1f} us"
    return f"{seconds * 1e3:8.3f} ms"


def print_report(machine, read_s, products, parts, memory, rounds, wall_s) -> None:
    print("Tile forward product, 512 x 512 PCM tile, float32")
    print(f"CPU: {machine['cpu']} ({machine['cores']} cores, {machine['usable_cores']} usable), "
          f"load average {machine['load_average_1min']:.2f} at start, {machine['load_average_1min_end']:.2f} at end")
    print(f"jax {machine['jax']} on {machine['backend']}; thread settings: {machine['thread_settings']}")
    print(f"median of {rounds} interleaved rounds; (a) no short-term or output noise, "
          f"(b) short-term noise {SHORT_TERM_NOISE} and output noise of half an ADC step")
    print()
    print("ratio: median over rounds of tile time / ideal time, with its quartiles over rounds")
    print(f"{'batch':>6} {'ideal':>11} {'tile (a)':>11} {'ratio (a)':>18} {'tile (b)':>11} {'ratio (b)':>18}"
          f" {'rel. error a':>13} {'rel. error b':>13}")
    for batch, entry in products.items():
        row = f"{batch:>6} {format_time(entry['ideal_s'])}"
        for name in ("a", "b"):
            low, high = entry[name]["ratio_quartiles"]
            ratio = f"{entry[name]['ratio']:.2f} ({low:.2f}-{high:.2f})"
            row += f" {format_time(entry[name]['time_s'])} {ratio:>18}"
        row += f" {entry['a']['relative_error']:13.4f} {entry['b']['relative_error']:13.4f}"
        print(row)
    print(f"array read at t = {READ_TIME_S:g} s (once per read time, not per product): {format_time(read_s).strip()}")
    print()

    batch = BATCHES[-1]
    numbers = batch * COLUMNS
    print(f"Parts of the product at batch {batch} ({numbers} outputs)")
    print(f"{'part':<42} {'time':>11} {'ns per output':>14} {'x ideal':>8}")
    for name, entry in parts.items():
        seconds = entry["time_s"]
        print(f"{name:<42} {format_time(seconds)} {seconds / numbers * 1e9:14.2f} {entry['ratio_to_ideal']:8.2f}")
    print()

    print(f"peak resident set size: {memory['peak_rss_bytes'] / 2**20:.1f} MiB")
    if memory["jax_memory_stats"]:
        print(f"jax memory stats: {memory['jax_memory_stats']}")
    else:
        print("jax memory stats: not reported by this backend")
    for name, limit in GOALS.items():
        ratio = products[batch][name]["ratio"]
        verdict = "met" if ratio <= limit else "NOT met"
        print(f"goal ({name}) at batch {batch}: ratio {ratio:.2f} <= {limit}: {verdict}")
    print(f"wall time {wall_s:.1f} s")


def main(argv=None) -> None:
    args, rounds, round_s = timing_arguments(
        __doc__.split("\n\n")[0], argv, rounds=51, quick_rounds=11, round_s=0.04, quick_round_s=0.015
    )

    started = time.perf_counter()
    machine = machine_info()
    weights = jax.random.uniform(jax.random.key(0), (ROWS, COLUMNS), jnp.float32, -1.0, 1.0)
    tiles = make_tiles(weights)
    state = tiles["a"].program(weights, key=jax.random.key(1))
    # Configuration (b) also needs G+^2 + G-^2, so each configuration keeps its own read of the same state.
    reads = {name: tile.read(state, READ_TIME_S, key=jax.random.key(2)) for name, tile in tiles.items()}

    read_s = benchmark_read(tiles["b"], state, rounds, round_s)
    products = benchmark_products(tiles, reads, weights, rounds, round_s)
    parts = benchmark_parts(tiles, reads, weights, rounds, round_s)
    memory = peak_memory()
    machine["load_average_1min_end"] = os.getloadavg()[0]
    wall_s = time.perf_counter() - started

    print_report(machine, read_s, products, parts, memory, rounds, wall_s)
    batch = BATCHES[-1]
    figures = {
        "benchmark": "tile_forward",
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "quick": args.quick,
        "rounds": rounds,
        "shape": [ROWS, COLUMNS],
        "read_time_s": READ_TIME_S,
        "ideal_s": {str(b): entry["ideal_s"] for b, entry in products.items()},
        "tile_s": {name: {str(b): entry[name]["time_s"] for b, entry in products.items()} for name in tiles},
        "ratio": {name: {str(b): entry[name]["ratio"] for b, entry in products.items()} for name in tiles},
        "ratio_quartiles": {
            name: {str(b): entry[name]["ratio_quartiles"] for b, entry in products.items()} for name in tiles
        },
        "relative_error": {
            name: {str(b): entry[name]["relative_error"] for b, entry in products.items()} for name in tiles
        },
        "read_s": read_s,
        "parts": parts,
        "goals": {name: {"max_ratio": limit, "met": products[batch][name]["ratio"] <= limit}
                  for name, limit in GOALS.items()},
        "peak_rss_bytes": memory["peak_rss_bytes"],
        "jax_memory_stats": memory["jax_memory_stats"],
        "machine": machine,
        "wall_s": wall_s,
    }
    print(json.dumps(figures, default=str))


if __name__ == "__main__":
    main()
