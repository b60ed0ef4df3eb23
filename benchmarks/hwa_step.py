"""Benchmark one hardware-aware training step of the digits MLP against a plain JAX training step.

Run from the repository root:

    python benchmarks/hwa_step.py            # full run, about 30 s on 2 cores
    python benchmarks/hwa_step.py --quick    # fewer and shorter rounds, under a minute

The network is the 64-32-10 ReLU perceptron of the `hwa_digits` workload (examples/hwa_digits.toml),
pre-trained in software with Adam on the scikit-learn digits (a quarter of the images held out). Both
steps take a minibatch, compute the softmax cross-entropy and its gradient, apply one optax Adam update
and clip the weights to each tile's weight range, all in one `jax.jit` program:

    hardware-aware: every product x @ W runs through `AnalogNetwork` on PCM tiles, as `hwa_digits` trains.
        The weights are programmed (write noise, drift exponents) and read at a time drawn log-uniformly
        between 1 s and 1 year (drift and 1/f read noise, global drift compensation). The product then
        passes 8-bit DAC and ADC with straight-through gradients. Every step draws new noise.
    plain JAX: the same network in float32 (`AnalogNetwork.software`), same optimizer and clipping.

To show where the extra time goes, a third step is timed in the same rounds: the hardware-aware step with
the PCM devices replaced by `IdealDevice` of the same range (no write noise, drift or read noise; the
converters, clipping and global drift compensation stay). Its difference to the PCM step is the cost of
the device model, which does not depend on the batch size. A fourth timed call draws only the standard
normals of one PCM step (eight per weight: write noise, drift exponent, reference read and read, for both
devices of each pair), in the same calls as the step: the part of the device model that is noise.

Batches: 32, 256 and the full training set (1348 images). The goal (at most 3x) applies to the full
training set, the step that `hwa_digits` trains with (full-batch Adam). The minibatch ratios are printed
beside it: there the noise draws, whose number does not depend on the batch, take longer than the whole
plain step. Compilation is timed apart (lower and compile of each step). The calls of each timing round
are interleaved (plain, then hardware-aware), and the ratio is the median over rounds of the per-round
ratio, with its quartiles, as in `tile_forward.py`. The last line of output is one JSON object with every
figure.
"""

from __future__ import annotations

import datetime
import json
import os
import statistics
import time

import equinox as eqx
import jax
import jax.numpy as jnp
import optax

from xbar import _random
from xbar.crossbar import ADC, DAC, Tile
from xbar.devices import PCM, IdealDevice
from xbar.learning import AnalogNetwork, LogUniformReadTime
from xbar.studies import load_digits_split, train_perceptron

# benchmarks/ is the script's folder, so it is on sys.path.
from tile_forward import (
    compile_timed, format_time, machine_info, median_ratio, peak_memory, ratio_quartiles, time_interleaved,
    timing_arguments,
)

# Settings of examples/hwa_digits.toml.
HIDDEN = 32
TRAIN_STEPS = 400
LEARNING_RATE = 0.01
TEST_FRACTION = 0.25
TRAINING_SEED = 0
READ_VOLTAGE = 0.2  # V
WEIGHT_CLIP = 2.5  # standard deviations of each layer's pre-trained weights
HORIZON = LogUniformReadTime(1.0, 3.1536e7)  # s: 1 s to 1 year after programming
BITS = 8
BATCHES = (32, 256, None)  # None: the full training set
GOAL = 3.0  # hardware-aware step time over plain step time


# The network and its steps.


def build_network(params, x_train) -> AnalogNetwork:
    """Return the PCM network of `hwa_digits`: weight ranges, DAC and ADC ranges set from `params` and the data."""
    device = PCM()
    span = device.g_max - device.g_min
    tiles = []
    inputs = x_train
    for layer in params:
        weights = layer["weights"]
        weight_range = min(WEIGHT_CLIP * float(jnp.std(weights)), float(jnp.max(jnp.abs(weights))))
        input_range = float(jnp.max(jnp.abs(inputs)))
        # Full-scale ADC current: the largest ideal output on the training set, as `hwa_digits` calibrates it.
        current_range = float(jnp.max(jnp.abs(inputs @ weights))) * READ_VOLTAGE * span / (weight_range * input_range)
        tiles.append(Tile(
            device=device, read_voltage=READ_VOLTAGE, weight_range=weight_range, dac=DAC(BITS, input_range),
            adc=ADC(BITS, current_range=current_range), drift_compensation=True,
        ))
        inputs = jax.nn.relu(inputs @ weights + layer["bias"])
    return AnalogNetwork.mlp((64, HIDDEN, 10), tiles, read_time=HORIZON)


def with_ideal_devices(network: AnalogNetwork) -> AnalogNetwork:
    """Return `network` with every tile's PCM replaced by an ideal device of the same conductance range."""
    devices = [IdealDevice(g_min=layer.tile.device.g_min, g_max=layer.tile.device.g_max) for layer in network.layers]
    return eqx.tree_at(lambda n: [layer.tile.device for layer in n.layers], network, devices)


def make_steps(network: AnalogNetwork, optimizer):
    """Return the hardware-aware and the plain training step, each (params, opt_state, x, y, key) -> same + loss."""

    def hardware_loss(params, x, y, key):
        return optax.softmax_cross_entropy_with_integer_labels(network(params, x, key=key), y).mean()

    def plain_loss(params, x, y, key):
        del key
        return optax.softmax_cross_entropy_with_integer_labels(network.software(params, x), y).mean()

    def make(loss_fn):
        def step(params, opt_state, x, y, key):
            loss, grads = jax.value_and_grad(loss_fn)(params, x, y, key)
            updates, opt_state = optimizer.update(grads, opt_state, params)
            params = network.clip_weights(optax.apply_updates(params, updates))
            return params, opt_state, loss

        return step

    return make(hardware_loss), make(plain_loss)


def make_draws(network: AnalogNetwork):
    """Return a function of a key that draws the standard normals of one PCM step, in the same calls.

    Per tile, programming draws the write noise and the drift exponent of both arrays (G+ and G-) and the
    reference read of drift compensation in one call; the read at t takes one more call. The time of
    these draws is the floor that the device model's noise sets, whatever the batch size.
    """
    shapes = [layer.weight_shape for layer in network.layers]
    device = network.layers[0].tile.device
    per_call = (2 * device.program_normals + 2 * device.read_normals, 2 * device.read_normals)

    def draws(key):
        total = jnp.zeros(())
        for shape, layer_key in zip(shapes, jax.random.split(key, len(shapes))):
            for count, k in zip(per_call, jax.random.split(layer_key, len(per_call))):
                total = total + _random.normal(k, (count,) + shape).sum()
        return total

    return draws


# Benchmark.


def benchmark(network, params, x_train, y_train, rounds: int, round_s: float) -> dict:
    """Time both steps at every batch size; return times, ratios and compile times per batch."""
    optimizer = optax.adam(LEARNING_RATE)
    opt_state = optimizer.init(params)
    hardware_step, plain_step = make_steps(network, optimizer)
    ideal_device_step, _ = make_steps(with_ideal_devices(network), optimizer)
    draws, _ = compile_timed(make_draws(network), (jax.random.key(0),))
    results = {}
    for batch in BATCHES:
        size = len(y_train) if batch is None else batch
        x, y = jnp.asarray(x_train[:size]), jnp.asarray(y_train[:size])
        args = (params, opt_state, x, y, jax.random.key(size))
        plain, plain_compile_s = compile_timed(plain_step, args)
        hardware, hardware_compile_s = compile_timed(hardware_step, args)
        ideal_device, _ = compile_timed(ideal_device_step, args)
        calls = {
            "plain": (plain, args), "hardware": (hardware, args), "ideal_device": (ideal_device, args),
            "draws": (draws, (args[-1],)),
        }
        # Right after compilation a step runs up to twice as slow for a few tenths of a second (measured:
        # about 0.3 s at the full training set), so each call first runs untimed for half a second.
        per_call = time_interleaved(calls, rounds, round_s, warmup_s=0.5)
        results[size] = {
            "plain_s": statistics.median(per_call["plain"]),
            "hardware_aware_s": statistics.median(per_call["hardware"]),
            "ratio": median_ratio(per_call["hardware"], per_call["plain"]),
            "ratio_quartiles": ratio_quartiles(per_call["hardware"], per_call["plain"]),
            "ideal_device_s": statistics.median(per_call["ideal_device"]),
            "ideal_device_ratio": median_ratio(per_call["ideal_device"], per_call["plain"]),
            "normal_draws_s": statistics.median(per_call["draws"]),
            "compile_plain_s": plain_compile_s,
            "compile_hardware_aware_s": hardware_compile_s,
        }
    return results


def print_report(machine, results, memory, rounds, wall_s) -> None:
    print(f"One training step of the digits MLP (64-{HIDDEN}-10, Adam), hardware-aware on PCM tiles against plain JAX")
    print(f"CPU: {machine['cpu']} ({machine['cores']} cores, {machine['usable_cores']} usable), "
          f"load average {machine['load_average_1min']:.2f} at start, {machine['load_average_1min_end']:.2f} at end")
    print(f"jax {machine['jax']} on {machine['backend']}; thread settings: {machine['thread_settings']}")
    print(f"median of {rounds} interleaved rounds; ratio: median over rounds of hardware-aware / plain, "
          "with its quartiles; ideal dev.: the hardware-aware step with ideal devices in place of PCM; "
          "draws: the step's standard normal draws alone, in the same calls")
    print()
    print(f"{'batch':>6} {'plain':>11} {'hw-aware':>11} {'ratio':>18} {'ideal dev.':>11} {'/plain':>6} {'draws':>11}"
          f" {'compile plain':>14} {'compile hw-aware':>17}")
    for size, entry in results.items():
        low, high = entry["ratio_quartiles"]
        ratio = f"{entry['ratio']:.2f} ({low:.2f}-{high:.2f})"
        print(f"{size:>6} {format_time(entry['plain_s'])} {format_time(entry['hardware_aware_s'])} {ratio:>18} "
              f"{format_time(entry['ideal_device_s'])} {entry['ideal_device_ratio']:6.2f} "
              f"{format_time(entry['normal_draws_s'])} "
              f"{entry['compile_plain_s']:13.2f}s {entry['compile_hardware_aware_s']:16.2f}s")
    print()
    print(f"peak resident set size: {memory['peak_rss_bytes'] / 2**20:.1f} MiB")
    full = list(results)[-1]
    entry = results[full]
    verdict = "met" if entry["ratio"] <= GOAL else "NOT met"
    print(f"goal: a hardware-aware step takes at most {GOAL}x the plain step, for the step that hwa_digits "
          f"trains with (full training set, {full} images): ratio {entry['ratio']:.2f}, {verdict}")
    print("minibatches: the noise draws are per weight, not per image, so their fixed time weighs more as the "
          "batch shrinks")
    for size, entry in results.items():
        if size != full:
            draws = entry["normal_draws_s"] / entry["plain_s"]
            print(f"  batch {size}: ratio {entry['ratio']:.2f}; the noise draws alone take {draws:.1f}x the plain step")
    # A load at or above the core count means that other work competed for the CPU during the run.
    load = max(machine["load_average_1min"], machine["load_average_1min_end"])
    if load >= machine["usable_cores"]:
        print(f"NOTE: load average up to {load:.2f} on {machine['usable_cores']} cores: other processes shared "
              "the CPU, so these times may be off")
    print(f"wall time {wall_s:.1f} s")


def main(argv=None) -> None:
    args, rounds, round_s = timing_arguments(
        __doc__.split("\n\n")[0], argv, rounds=31, quick_rounds=7, round_s=0.05, quick_round_s=0.02
    )

    started = time.perf_counter()
    machine = machine_info()
    x_train, y_train, _, _ = load_digits_split(TEST_FRACTION, TRAINING_SEED)
    trained = train_perceptron(
        jnp.asarray(x_train), jnp.asarray(y_train), hidden=HIDDEN, steps=TRAIN_STEPS, learning_rate=LEARNING_RATE,
        seed=TRAINING_SEED,
    )
    params = ({"weights": trained["w1"], "bias": trained["b1"]}, {"weights": trained["w2"], "bias": trained["b2"]})
    network = build_network(params, jnp.asarray(x_train))
    params = network.clip_weights(params)

    results = benchmark(network, params, x_train, y_train, rounds, round_s)
    full = list(results)[-1]
    memory = peak_memory()
    machine["load_average_1min_end"] = os.getloadavg()[0]
    wall_s = time.perf_counter() - started

    print_report(machine, results, memory, rounds, wall_s)
    figures = {
        "benchmark": "hwa_step",
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "quick": args.quick,
        "rounds": rounds,
        "network": [64, HIDDEN, 10],
        "batches": {str(size): entry for size, entry in results.items()},
        "goal": {"max_ratio": GOAL, "batch": full, "met": results[full]["ratio"] <= GOAL},
        "peak_rss_bytes": memory["peak_rss_bytes"],
        "machine": machine,
        "wall_s": wall_s,
    }
    print(json.dumps(figures, default=str))


if __name__ == "__main__":
    main()
