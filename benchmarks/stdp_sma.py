"""STDP on a crossbar against Brian2: the network of Song, Miller and Abbott, one network and a batch of seeds.

    python benchmarks/stdp_sma.py                                  # about 9 minutes on 2 cores
    python benchmarks/stdp_sma.py --quick                          # under a minute
    python benchmarks/stdp_sma.py --brian2-python /path/to/python  # Brian2 run live, in its own environment

The network (Song, Miller and Abbott, Nature Neuroscience 3, 919 (2000), as in Brian2's STDP example): 1000
Poisson inputs at 15 Hz onto one conductance-based LIF neuron, additive STDP, dt = 0.1 ms, 100 s of
biological time. xbar stores the weights in an ideal, linear device and is driven by `SpikeEvents` (its
event-driven path). Its constants are those of the stored Brian2 table `validation/data/sma_brian2.csv`.

Measured, each after one compiling call of the same shapes (the compile time is reported apart), as the
best of two timed calls:

1. one network, 100 s (the event list is drawn inside the timed call);
2. 64 networks with different seeds, batched with `jax.vmap` in one call, 100 s;
3. a 1024 x 1024 crossbar driving 1024 neurons from 1024 Poisson inputs at 15 Hz, with STDP: synaptic events
   (input spikes times the 1024 synapses each reaches) per second of wall time.

Brian2 runs with its cpp_standalone, cython and numpy targets when `--brian2-python` names a Python with
Brian2 (Brian2 2.9.0 needs numpy < 2.4, so it lives in its own environment; `--make-brian2-env DIR` creates
one with pip); cpp_standalone runs three seeds and its median run time counts, the slower targets one seed.
Without it the table uses the timings stored in `benchmarks/brian2_sma_timings.json` and states
that. The Brian2 time for 64 networks is 64 times its single-network run time: Brian2 runs networks one after
another.

Goals: one network at least as fast as Brian2's fastest target (run time without compilation), and 64
networks at least 10 times faster than Brian2 running them one after another.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

# Brian2's targets run on one core. xbar's timed runs are pinned to one core too (before JAX starts its
# thread pool), which is also faster for event-driven steps: XLA would split their small kernels across
# the cores at a cost above the gain. `--all-cores` leaves the affinity alone.
if "--all-cores" not in sys.argv and hasattr(os, "sched_setaffinity"):
    os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _machine  # noqa: E402  (benchmarks/ is the script's folder, so it is on sys.path)

from xbar.crossbar import Tile  # noqa: E402
from xbar.devices import IdealDevice  # noqa: E402
from xbar.learning import LIF, STDP, Network, SpikeEvents, Synapses, run  # noqa: E402
from xbar.validation._stdp import _read_brian2_runs, _sma_network  # noqa: E402

HERE = Path(__file__).resolve().parent
STORED_BRIAN2 = HERE / "brian2_sma_timings.json"
TARGETS = ("cpp_standalone", "cython", "numpy")
INPUT_RATE_HZ = 15.0


def _max_events(rate_total: float, duration: float) -> int:
    expected = rate_total * duration
    return int(expected + 10.0 * np.sqrt(expected) + 10.0)


def _timed(function, first_args, second_args, repeats: int = 2):
    """Return (seconds of the first call, best seconds of `repeats` further calls, output of the last).

    The first call includes compilation. The best of the timed calls is the figure least disturbed by
    other work on the machine, as `timeit` reports.
    """
    start = time.perf_counter()
    jax.block_until_ready(function(*first_args))
    first = time.perf_counter() - start
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        out = jax.block_until_ready(function(*second_args))
        best = min(best, time.perf_counter() - start)
    return first, best, out


def sma_function(network: Network, constants: dict, duration: float):
    """Return a function of a PRNG key that simulates one network and returns its final statistics."""
    n_inputs = int(constants["n_inputs"])
    g_max = constants["g_max"]
    steps = round(duration / network.dt)
    max_events = _max_events(n_inputs * INPUT_RATE_HZ, duration)

    def one(key):
        key_weights, key_inputs, key_run = jax.random.split(key, 3)
        state = network.init(jax.random.uniform(key_weights, (n_inputs, 1), maxval=g_max), key=key_weights)
        events = SpikeEvents.poisson(key_inputs, INPUT_RATE_HZ, duration, max_events, n_inputs=n_inputs)
        state, stats = run(network, state, events, steps, key=key_run)
        w = state.synapses.g_pos.g[:, 0] / network.synapses.tile.device.g_max
        return {
            "frac_low": jnp.mean(w < 0.1), "frac_high": jnp.mean(w > 0.9), "mean_w": jnp.mean(w),
            "rate_hz": stats.output_spikes[0] / duration,
        }

    return one


def time_xbar_sma(duration: float, networks: int) -> dict:
    constants, _ = _read_brian2_runs()
    network = _sma_network(constants)
    one = jax.jit(sma_function(network, constants, duration))
    first, second, single = _timed(one, (jax.random.key(1000),), (jax.random.key(0),))
    batch = jax.jit(jax.vmap(sma_function(network, constants, duration)))
    keys_a = jax.vmap(jax.random.key)(jnp.arange(networks) + 1000)
    keys_b = jax.vmap(jax.random.key)(jnp.arange(networks))
    batch_first, batch_second, batched = _timed(batch, (keys_a,), (keys_b,))
    return {
        "single": {"compile_and_run_s": first, "run_s": second, **{k: float(v) for k, v in single.items()}},
        "batch": {
            "networks": networks, "compile_and_run_s": batch_first, "run_s": batch_second,
            **{k: float(np.mean(np.asarray(v))) for k, v in batched.items()},
            **{f"{k}_std": float(np.std(np.asarray(v), ddof=1)) for k, v in batched.items()},
        },
    }


def time_large_crossbar(size: int, duration: float) -> dict:
    """Time a size x size crossbar driving size neurons from Poisson inputs at 15 Hz, with STDP.

    Returns the synaptic events (input spikes times the size synapses each reaches) per second of wall time.
    """
    # Weights scaled so that `size` inputs drive each neuron as 1000 inputs with g_max = 0.01 do.
    g_max = 0.01 * 1000.0 / size
    dt = 1e-4
    steps = round(duration / dt)
    device = IdealDevice(g_min=0.0, g_max=25e-6, pulse_step=25e-9)
    network = Network(
        synapses=Synapses(tile=Tile(device=device, weight_range=g_max), rounding="none", max_pulses=1000),
        neurons=LIF(),
        plasticity=STDP(a_plus=0.01 * g_max, a_minus=-0.0105 * g_max),
        dt=dt,
    )
    max_events = _max_events(size * INPUT_RATE_HZ, duration)

    @jax.jit
    def simulate(key):
        key_weights, key_inputs, key_run = jax.random.split(key, 3)
        state = network.init(jax.random.uniform(key_weights, (size, size), maxval=g_max), key=key_weights)
        events = SpikeEvents.poisson(key_inputs, INPUT_RATE_HZ, duration, max_events, n_inputs=size)
        _, stats = run(network, state, events, steps, key=key_run)
        return jnp.sum(stats.input_spikes), jnp.sum(stats.output_spikes)

    first, second, (inputs, outputs) = _timed(simulate, (jax.random.key(1),), (jax.random.key(2),))
    synaptic_events = float(inputs) * size
    return {
        "size": size, "duration_s": duration, "compile_and_run_s": first, "run_s": second,
        "input_spikes": float(inputs), "output_rate_hz": float(outputs) / size / duration,
        "synaptic_events": synaptic_events, "synaptic_events_per_s": synaptic_events / second,
        "steps_per_s": steps / second,
    }


def brian2_timings(python: str | None, duration: float, targets) -> dict:
    """Run benchmarks/brian2_sma.py with `python`, or read the stored timings; return run and build times."""
    if python is None:
        stored = json.loads(STORED_BRIAN2.read_text())
        source = (f"stored ({STORED_BRIAN2.name}: run times of {stored['duration_s']:g} s scaled to {duration:g} s, "
                  f"{stored['environment']['machine']})")
        scale = duration / stored["duration_s"]
    else:
        # The fastest target runs three seeds (its median run time is reported); the slow ones run one.
        stored = {"targets": {}}
        for group, seeds in (([t for t in targets if t == "cpp_standalone"], ["0", "1", "2"]),
                             ([t for t in targets if t != "cpp_standalone"], ["0"])):
            if not group:
                continue
            with tempfile.TemporaryDirectory() as folder:
                out = os.path.join(folder, "brian2.json")
                command = [python, str(HERE / "brian2_sma.py"), "--target", *group, "--duration", f"{duration:g}",
                           "--seeds", *seeds, "--json", out]
                subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
                stored["targets"].update(json.loads(Path(out).read_text())["targets"])
        source, scale = "measured in this run", 1.0
    result = {"source": source}
    # Statistics of a stored run at another duration are not comparable; only its run time is scaled.
    same_duration = scale == 1.0
    for target, data in stored["targets"].items():
        runs = data["runs"]
        timing = runs[0]["timing_s"]
        result[target] = {
            "run_s": float(np.median([r["timing_s"]["run"] for r in runs])) * scale,
            "build_s": timing["build"],
            **{
                name: float(np.mean([r[key] for r in runs])) if same_duration else float("nan")
                for name, key in (("rate_hz", "rate_hz_total"), ("frac_low", "frac_low"), ("frac_high", "frac_high"))
            },
        }
    return result


def make_brian2_env(folder: str) -> str:
    """Create a virtual environment with Brian2 (numpy < 2.4) and return its Python."""
    python = os.path.join(folder, "bin", "python")
    if not os.path.exists(python):
        subprocess.run([sys.executable, "-m", "venv", folder], check=True)
        subprocess.run([python, "-m", "pip", "install", "-q", "numpy<2.4", "brian2", "cython"], check=True)
    return python


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="10 s of biological time, 8 networks, 256 x 256 for 0.5 s")
    parser.add_argument("--brian2-python", help="a Python with Brian2 installed, to time Brian2 in this run")
    parser.add_argument("--make-brian2-env", metavar="DIR", help="create a Brian2 environment in DIR and use it")
    parser.add_argument("--all-cores", action="store_true", help="do not pin xbar to one core")
    args = parser.parse_args(argv)

    duration, networks, size, large_duration = (10.0, 8, 256, 0.5) if args.quick else (100.0, 64, 1024, 2.0)
    python = make_brian2_env(args.make_brian2_env) if args.make_brian2_env else args.brian2_python
    info = _machine.machine_info(load_key="load_average_1min_start")

    xbar = time_xbar_sma(duration, networks)
    large = time_large_crossbar(size, large_duration)
    brian2 = brian2_timings(python, duration, ("cpp_standalone",) if args.quick else TARGETS)
    fastest = min((brian2[t]["run_s"], t) for t in TARGETS if t in brian2)

    single, batch = xbar["single"], xbar["batch"]
    sequential = networks * fastest[0]
    print(f"Song-Miller-Abbott network, {duration:g} s of biological time, dt = 0.1 ms; Brian2: {brian2['source']}")
    print(f"{'simulator':<34}{'run s':>10}{'build s':>10}{'rate Hz':>9}{'w<0.1':>8}{'w>0.9':>8}")
    for target in TARGETS:
        if target in brian2:
            row = brian2[target]
            print(f"{'Brian2 ' + target:<34}{row['run_s']:>10.2f}{row['build_s']:>10.2f}{row['rate_hz']:>9.1f}"
                  f"{row['frac_low']:>8.3f}{row['frac_high']:>8.3f}")
    compile_single = single["compile_and_run_s"] - single["run_s"]
    print(f"{'xbar, 1 network':<34}{single['run_s']:>10.2f}{compile_single:>10.2f}{single['rate_hz']:>9.1f}"
          f"{single['frac_low']:>8.3f}{single['frac_high']:>8.3f}")
    compile_batch = batch["compile_and_run_s"] - batch["run_s"]
    print(f"{f'xbar, {networks} networks (vmap)':<34}{batch['run_s']:>10.2f}{compile_batch:>10.2f}"
          f"{batch['rate_hz']:>9.1f}{batch['frac_low']:>8.3f}{batch['frac_high']:>8.3f}")
    print(f"{f'Brian2 {fastest[1]}, {networks} in sequence':<34}{sequential:>10.2f}")
    print()
    print(f"one network:  xbar is {fastest[0] / single['run_s']:.2f}x as fast as Brian2 {fastest[1]} (goal >= 1)")
    goal = "goal >= 10 at 64 networks" if args.quick else "goal >= 10"
    print(f"{networks} networks: xbar is {sequential / batch['run_s']:.1f}x as fast as Brian2 in sequence ({goal})")
    print(f"{size} x {size} crossbar, {size} neurons, {large_duration:g} s: "
          f"{large['synaptic_events_per_s']:.3g} synaptic events per second of wall time "
          f"({large['steps_per_s']:.0f} steps/s, output {large['output_rate_hz']:.1f} Hz)")

    figures = {
        "benchmark": "stdp_sma", "quick": args.quick, "duration_s": duration, "networks": networks,
        "brian2_source": brian2["source"], "brian2_fastest_target": fastest[1], "brian2_fastest_run_s": fastest[0],
        "xbar_single_run_s": single["run_s"], "xbar_single_compile_s": compile_single,
        "xbar_batch_run_s": batch["run_s"], "xbar_batch_compile_s": compile_batch,
        "ratio_single_vs_brian2": fastest[0] / single["run_s"],
        "ratio_batch_vs_brian2_sequential": sequential / batch["run_s"],
        "large_size": size, "synaptic_events_per_s": large["synaptic_events_per_s"],
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0,
        "pinned_to_one_core": not args.all_cores,
        "machine": info,
    }
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
