"""Benchmark inference of a digits network on multi-tile PCM cores against the same network in plain JAX.

Run from the repository root:

    python benchmarks/core_digits.py            # full run, about 45 s on 2 cores
    python benchmarks/core_digits.py --quick    # smaller batch and fewer rounds, about 35 s

The network is the 64-256-10 ReLU perceptron of `xbar.studies`, trained in software with Adam on the
scikit-learn digits (8 x 8 images, pixels scaled to [0, 1], a quarter of the images held out for testing).
Each layer's weight matrix is stored on its own `Core` of 64 x 64 PCM tiles. Layer 1 (64 x 256) takes a grid
of 1 x 4 tiles and layer 2 (256 x 10) a grid of 4 x 1 tiles, so both layers add partial sums of several
tiles in digital. Inputs are bit-serial (`Slicing(input_bits=8)`: one read of every tile per
magnitude bit), every tile has an 8-bit ADC, and the cores are read at t = 1 h after programming with
global drift compensation. The biases and the ReLU are applied in digital.

Each core's DAC range covers its inputs: 1 for the pixels, the largest hidden activation on the training
set for layer 2. Each core's ADC range is the largest ideal column current of one bit read of any tile on
the training set, as `xbar.studies` sizes its ADCs by the largest ideal output.

Timed, for the test set and for a larger batch of test images repeated: the jitted inference through the
programmed and read cores (`Sequential.__call__`) against a jitted float32 forward pass of the same
weights in plain JAX. Programming and the read at t = 1 h run once, outside the timed calls, and are
timed apart, as are the compilations. The calls of each timing round are interleaved (plain JAX, then
xbar), and the ratio is the median over rounds of the per-round ratio, as in `tile_forward.py`.

Also reported: test accuracy of both networks, and the energy and latency per image of the cores from
`core_cost` (a first-order model of the hardware, not a measurement). The last line of output is one JSON
object with every figure.
"""

from __future__ import annotations

import datetime
import json
import os
import statistics
import time

import jax
import jax.numpy as jnp
import numpy as np

from xbar.crossbar import ADC, DAC, Core, Dense, Sequential, Slicing, Tile, core_cost, nominal_range, tops_per_watt
from xbar.devices import PCM
from xbar.studies import load_digits_split, perceptron, train_perceptron

# benchmarks/ is the script's folder, so it is on sys.path.
from tile_forward import (
    compile_timed, format_time, machine_info, median_ratio, peak_memory, ratio_quartiles, time_interleaved,
    timing_arguments,
)

HIDDEN = 256
TILE_SHAPE = (64, 64)
INPUT_BITS = 8
ADC_BITS = 8
READ_TIME_S = 3600.0
READ_VOLTAGE = 0.2  # V, a typical PCM read voltage (an estimate), as in examples/pcm_digits.toml
# Training settings of examples/pcm_digits.toml, whose network has 32 hidden units.
TRAIN_STEPS = 400
LEARNING_RATE = 0.01
TEST_FRACTION = 0.25
TRAINING_SEED = 0
LARGE_BATCH = {"full": 4096, "quick": 1024}


# The network.


def train(x_train, y_train) -> dict:
    """Train the 64-HIDDEN-10 perceptron in software and return its float32 parameters."""
    return train_perceptron(
        jnp.asarray(x_train), jnp.asarray(y_train), hidden=HIDDEN, steps=TRAIN_STEPS,
        learning_rate=LEARNING_RATE, seed=TRAINING_SEED,
    )


def bit_read_current_range(weights, inputs, input_range: float, device) -> float:
    """Return the largest ideal column current (A) of one bit read of any tile, over `inputs` (K, M).

    Each tile maps its block by the block's max|W| (the tile's `weight_range=None`), and a bit read drives
    a row at +-READ_VOLTAGE where that magnitude bit of its input is 1.
    """
    slicing = Slicing(input_bits=INPUT_BITS)
    rows, columns = TILE_SHAPE
    grid_rows, grid_columns = Core(tile_shape=TILE_SHAPE).grid(weights.shape)
    padded = np.zeros((grid_rows * rows, grid_columns * columns), np.float32)
    padded[: weights.shape[0], : weights.shape[1]] = np.asarray(weights)
    blocks = padded.reshape(grid_rows, rows, grid_columns, columns).transpose(0, 2, 1, 3)
    scales = np.max(np.abs(blocks), axis=(2, 3), keepdims=True)
    blocks = blocks / np.where(scales > 0, scales, 1.0)

    planes, _ = slicing.input_planes(jnp.asarray(inputs), input_range)  # (bits, K, M)
    planes = np.asarray(planes)
    padded_planes = np.zeros((*planes.shape[:2], grid_rows * rows), np.float32)
    padded_planes[..., : planes.shape[-1]] = planes
    segments = padded_planes.reshape(*planes.shape[:2], grid_rows, rows)
    g_min, g_max = nominal_range(device)
    amperes_per_unit = READ_VOLTAGE * float(g_max - g_min)
    largest = max(
        float(np.max(np.abs(segments[:, :, i] @ blocks[i, j])))
        for i in range(grid_rows) for j in range(grid_columns)
    )
    return largest * amperes_per_unit


def make_network(params, x_train) -> tuple[Sequential, dict]:
    """Map the trained perceptron onto two PCM cores and return the network with each core's converter ranges."""
    device = PCM()
    hidden_train = jax.nn.relu(jnp.asarray(x_train) @ params["w1"] + params["b1"])
    input_ranges = (1.0, float(jnp.max(hidden_train)))
    layer_inputs = (x_train, hidden_train)
    layer_weights = (params["w1"], params["w2"])
    cores = []
    for weights, inputs, input_range in zip(layer_weights, layer_inputs, input_ranges):
        current_range = bit_read_current_range(weights, inputs, input_range, device)
        tile = Tile(
            device=device, read_voltage=READ_VOLTAGE, dac=DAC(input_range=input_range),
            adc=ADC(ADC_BITS, current_range=current_range), drift_compensation=True,
        )
        cores.append(Core(tile=tile, tile_shape=TILE_SHAPE, slicing=Slicing(input_bits=INPUT_BITS)))
    network = Sequential([Dense(cores[0], "relu"), Dense(cores[1])])
    ranges = {
        "dac_input_range": list(input_ranges),
        "adc_current_range_a": [core.tile.adc.current_range for core in cores],
    }
    return network, ranges


def program_and_read(network: Sequential, params, key) -> tuple[tuple, tuple, dict]:
    """Program the network, read it at READ_TIME_S and return the states, the reads and the times of both steps.

    Each step is jitted. Its first call compiles, so a second call with another key is timed as well.
    """
    parameters = [(params["w1"], params["b1"]), (params["w2"], params["b2"])]
    program = jax.jit(lambda key: network.program(parameters, key=key))
    read = jax.jit(lambda states, key: network.read(states, READ_TIME_S, key=key))
    key_program, key_read, key_spare = jax.random.split(key, 3)
    times = {}

    start = time.perf_counter()
    states = jax.block_until_ready(program(key_program))
    times["program_first_call_s"] = time.perf_counter() - start
    start = time.perf_counter()
    reads = jax.block_until_ready(read(states, key_read))
    times["read_first_call_s"] = time.perf_counter() - start

    start = time.perf_counter()
    jax.block_until_ready(program(key_spare))
    times["program_s"] = time.perf_counter() - start
    start = time.perf_counter()
    jax.block_until_ready(read(states, key_spare))
    times["read_s"] = time.perf_counter() - start
    return states, reads, times


# Timing.


def benchmark_batches(network, reads, params, images, batches, rounds: int, round_s: float) -> dict:
    """Time xbar and plain-JAX inference, interleaved, for each batch size and return the figures per batch."""
    results = {}
    for batch in batches:
        x = jnp.asarray(np.resize(images, (batch, images.shape[1])))
        key = jax.random.key(batch)
        plain, plain_compile_s = compile_timed(perceptron, (params, x))
        xbar, xbar_compile_s = compile_timed(lambda reads, x, key: network(reads, x, key=key), (reads, x, key))
        per_call = time_interleaved({"plain": (plain, (params, x)), "xbar": (xbar, (reads, x, key))}, rounds, round_s)
        plain_s = statistics.median(per_call["plain"])
        xbar_s = statistics.median(per_call["xbar"])
        results[batch] = {
            "plain_s": plain_s,
            "xbar_s": xbar_s,
            "plain_images_per_s": batch / plain_s,
            "xbar_images_per_s": batch / xbar_s,
            "ratio": median_ratio(per_call["xbar"], per_call["plain"]),
            "ratio_quartiles": ratio_quartiles(per_call["xbar"], per_call["plain"]),
            "plain_compile_s": plain_compile_s,
            "xbar_compile_s": xbar_compile_s,
        }
    return results


# Accuracy and modelled cost.


def accuracies(network, reads, params, x_test, y_test) -> dict:
    """Return the test accuracy of the PCM network and of the software network."""
    x = jnp.asarray(x_test)
    pcm_logits = jax.jit(lambda reads, x: network(reads, x))(reads, x)
    pcm = float(np.mean(np.argmax(np.asarray(pcm_logits), axis=1) == y_test))
    software = float(np.mean(np.argmax(np.asarray(perceptron(params, x)), axis=1) == y_test))
    return {"pcm": pcm, "software": software}


def modelled_cost(network, states, reads, x_test) -> dict:
    """Return energy and latency per image of each core and of the network from `core_cost` (a model)."""
    x = jnp.asarray(x_test)
    hidden = network.layers[0](reads[0], x)
    images = x.shape[0]
    layers = []
    total = None
    for layer, state, inputs in zip(network.layers, states, (x, hidden)):
        cost = core_cost(layer.core, state.core, inputs)
        energy = cost.energy
        layers.append({
            "grid": list(layer.core.grid(state.core.shape)),
            "energy_per_image_j": float(energy.total) / images,
            "energy_parts_per_image_j": {
                name: float(getattr(energy, name)) / images
                for name in ("array_read", "dac", "adc", "digital", "buffer")
            },
            "latency_per_image_s": float(cost.latency) / images,
        })
        # Layer 2 waits for the outputs of layer 1, so the latencies add.
        total = cost if total is None else total.then(cost)
    return {
        "layers": layers,
        "energy_per_image_j": float(total.energy.total) / images,
        "latency_per_image_s": float(total.latency) / images,
        "tops_per_watt": float(tops_per_watt(total)),
    }


def multiply_adds(network: Sequential, states) -> dict:
    """Return the multiply-adds per image of the plain network and of the simulated bit-serial cores.

    The simulation multiplies every input bit plane by every tile, padding included, so its arithmetic
    sets a floor under the ratio of the timings.
    """
    plain = 0
    simulated = 0
    for layer, state in zip(network.layers, states):
        rows, columns = state.core.shape
        grid_rows, grid_columns = layer.core.grid((rows, columns))
        plain += rows * columns
        simulated += INPUT_BITS * grid_rows * TILE_SHAPE[0] * grid_columns * TILE_SHAPE[1]
    return {"plain": plain, "simulated": simulated}


# Report.


def print_report(machine, settings, ranges, program_read, batches, accuracy, cost, memory, rounds, wall_s) -> None:
    print(f"Digits network 64-{HIDDEN}-10 on multi-tile PCM cores against plain JAX, float32")
    print(f"CPU: {machine['cpu']} ({machine['cores']} cores, {machine['usable_cores']} usable), "
          f"load average {machine['load_average_1min']:.2f} at start, {machine['load_average_1min_end']:.2f} at end")
    print(f"jax {machine['jax']} on {machine['backend']}; thread settings: {machine['thread_settings']}")
    grids = " and ".join(f"{g[0]} x {g[1]}" for g in settings["grids"])
    print(f"tiles {TILE_SHAPE[0]} x {TILE_SHAPE[1]}, grids of {grids} tiles; {INPUT_BITS}-bit bit-serial inputs, "
          f"{ADC_BITS}-bit ADCs, read at t = {READ_TIME_S:g} s with global drift compensation")
    print(f"DAC input ranges {ranges['dac_input_range'][0]:.3g} and {ranges['dac_input_range'][1]:.3g}; "
          f"ADC current ranges {ranges['adc_current_range_a'][0] * 1e6:.3g} uA and "
          f"{ranges['adc_current_range_a'][1] * 1e6:.3g} uA")
    print(f"median of {rounds} interleaved rounds")
    macs = settings["multiply_adds_per_image"]
    print(f"multiply-adds per image: {macs['plain']:,} in plain JAX, {macs['simulated']:,} in the simulation "
          f"({INPUT_BITS} bit reads of whole tiles, padding included): {macs['simulated'] / macs['plain']:.1f}x")
    print()

    print("ratio: median over rounds of xbar time / plain JAX time, with its quartiles over rounds")
    print(f"{'batch':>6} {'plain JAX':>11} {'xbar':>11} {'plain img/s':>12} {'xbar img/s':>11} {'ratio':>20}"
          f" {'compile plain':>14} {'compile xbar':>13}")
    for batch, entry in batches.items():
        low, high = entry["ratio_quartiles"]
        ratio = f"{entry['ratio']:.1f} ({low:.1f}-{high:.1f})"
        print(f"{batch:>6} {format_time(entry['plain_s'])} {format_time(entry['xbar_s'])}"
              f" {entry['plain_images_per_s']:12.3g} {entry['xbar_images_per_s']:11.3g} {ratio:>20}"
              f" {entry['plain_compile_s']:13.2f}s {entry['xbar_compile_s']:12.2f}s")
    print(f"programming, jitted: {program_read['program_s']:.3f} s ({program_read['program_first_call_s']:.2f} s "
          f"first call with compilation); read at t = {READ_TIME_S:g} s: {format_time(program_read['read_s']).strip()} "
          f"({program_read['read_first_call_s']:.2f} s first call)")
    print()

    print(f"test accuracy ({settings['test_images']} images, one programmed chip): PCM cores {accuracy['pcm']:.4f}, "
          f"software {accuracy['software']:.4f}")
    print()

    print("Modelled hardware cost (core_cost, a first-order model, not measured), per image of the test set:")
    print(f"{'layer':>6} {'grid':>7} {'energy':>10} {'array':>9} {'DAC':>9} {'ADC':>9} {'digital':>9} {'buffer':>9}"
          f" {'latency':>9}")
    for index, layer in enumerate(cost["layers"], start=1):
        parts = layer["energy_parts_per_image_j"]
        grid = f"{layer['grid'][0]} x {layer['grid'][1]}"
        print(f"{index:>6} {grid:>7} {layer['energy_per_image_j'] * 1e9:7.2f} nJ"
              + "".join(f" {parts[name] * 1e9:6.2f} nJ" for name in ("array_read", "dac", "adc", "digital", "buffer"))
              + f" {layer['latency_per_image_s'] * 1e6:6.2f} us")
    print(f"network: {cost['energy_per_image_j'] * 1e9:.2f} nJ and {cost['latency_per_image_s'] * 1e6:.2f} us "
          f"per image (layers one after the other), {cost['tops_per_watt']:.2f} TOPS/W")
    print()

    print(f"peak resident set size: {memory['peak_rss_bytes'] / 2**20:.1f} MiB")
    print(f"wall time {wall_s:.1f} s")


def main(argv=None) -> None:
    quick_help = (
        f"a batch of {LARGE_BATCH['quick']} in place of {LARGE_BATCH['full']} images and fewer, shorter timing "
        "rounds (under a minute)"
    )
    args, rounds, round_s = timing_arguments(
        __doc__.split("\n\n")[0], argv, rounds=31, quick_rounds=7, round_s=0.2, quick_round_s=0.05,
        quick_help=quick_help,
    )

    started = time.perf_counter()
    machine = machine_info()
    x_train, y_train, x_test, y_test = load_digits_split(TEST_FRACTION, TRAINING_SEED)
    params = train(x_train, y_train)
    network, ranges = make_network(params, x_train)
    states, reads, program_read = program_and_read(network, params, jax.random.key(1))

    batch_sizes = (len(y_test), LARGE_BATCH["quick" if args.quick else "full"])
    batches = benchmark_batches(network, reads, params, x_test, batch_sizes, rounds, round_s)
    accuracy = accuracies(network, reads, params, x_test, y_test)
    cost = modelled_cost(network, states, reads, x_test)
    memory = peak_memory()
    machine["load_average_1min_end"] = os.getloadavg()[0]
    wall_s = time.perf_counter() - started

    settings = {
        "layers": [64, HIDDEN, 10],
        "tile_shape": list(TILE_SHAPE),
        "grids": [layer["grid"] for layer in cost["layers"]],
        "input_bits": INPUT_BITS,
        "adc_bits": ADC_BITS,
        "read_time_s": READ_TIME_S,
        "drift_compensation": True,
        "test_images": len(y_test),
        "multiply_adds_per_image": multiply_adds(network, states),
    }
    print_report(machine, settings, ranges, program_read, batches, accuracy, cost, memory, rounds, wall_s)
    figures = {
        "benchmark": "core_digits",
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "quick": args.quick,
        "rounds": rounds,
        **settings,
        **ranges,
        "batches": {str(batch): entry for batch, entry in batches.items()},
        "program_read": program_read,
        "accuracy": accuracy,
        "modelled_cost": cost,
        "peak_rss_bytes": memory["peak_rss_bytes"],
        "jax_memory_stats": memory["jax_memory_stats"],
        "machine": machine,
        "wall_s": wall_s,
    }
    print(json.dumps(figures, default=str))


if __name__ == "__main__":
    main()
