"""Simulate the Song, Miller and Abbott STDP network in Brian2 and report its final weights, rates and timings.

Run with a Python environment that has Brian2 and Cython installed, separate from xbar's own (Brian2 2.9.0
does not import with numpy 2.4 but works with numpy 2.3.5):

    python3 -m venv /work/brian2-venv
    /work/brian2-venv/bin/pip install "numpy<2.4" brian2 cython
    /work/brian2-venv/bin/python benchmarks/brian2_sma.py --target cython --seeds 0 1 2 --duration 100

The network follows Song, Miller and Abbott, Nature Neuroscience 3, 919 (2000), in the form of Brian2's
example `examples/synapses/STDP.py`:

- 1000 Poisson inputs at 15 Hz, each connected through one plastic synapse to a single neuron.
- Conductance-based leaky integrate-and-fire neuron, integrated with the forward Euler method:
  dv/dt = (ge (Ee - v) + El - v) / taum and dge/dt = -ge / taue, with taum = 10 ms, taue = 5 ms,
  Ee = 0 mV and El = -74 mV. The neuron spikes when v > Vt = -54 mV and is reset to Vr = -60 mV.
  NOTE: v starts at El here. Brian2's example leaves v at 0 V, which fires one spike in the first step.
- Additive STDP with traces: on a presynaptic spike, ge += w, Apre += dApre and w = clip(w + Apost, 0, gmax).
  On a postsynaptic spike, Apost += dApost and w = clip(w + Apre, 0, gmax). Both traces decay with
  taupre = taupost = 20 ms. gmax = 0.01, dApre = 0.01 gmax and dApost = -1.05 dApre taupre / taupost.
- Weights start uniform in [0, gmax]. The time step is Brian2's default, 0.1 ms.

Within one time step Brian2's default schedule runs the state update, then the thresholds (neuron and Poisson
inputs), then the presynaptic pathway, then the postsynaptic pathway, then the reset. A presynaptic and a
postsynaptic spike in the same step therefore count as pre before post.

Each seed reports the fractions of final weights below 0.1 gmax and above 0.9 gmax and the mean of w / gmax.
It also reports a 20-bin histogram of w / gmax on [0, 1] (fractions of synapses), the output rate over the
whole run and over the last 10 s, and wall times. The build time covers network construction, code
generation and compilation. The run time is the simulation loop as Brian2 measures it (for cpp_standalone,
the loop inside the compiled binary). For cpp_standalone the compile time (`make`) and the whole binary run
are also reported. Cython extensions are compiled into a fresh cache folder per invocation, so the first seed
of a cython invocation pays the full compile time and later seeds reuse the cache. cpp_standalone builds each
seed in a fresh folder under the system temporary folder. With Brian2 2.9.0 the three targets gave the same
spike counts and weight histograms for seeds 0, 1 and 2 over 100 s. Their mean weights differed only in the
last floating-point digit.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import os
import platform
import shlex
import shutil
import subprocess
import sys
import tempfile
import time

import numpy as np

TARGETS = ("numpy", "cython", "cpp_standalone")
HISTOGRAM_BINS = 20
LOW_FRACTION = 0.1
HIGH_FRACTION = 0.9
LAST_WINDOW_S = 10.0
STATISTICS = ("frac_low", "frac_high", "mean_w", "rate_hz_total", "rate_hz_last10s")

# Parameters in SI units (Song, Miller and Abbott 2000, as in Brian2's STDP example).
N_INPUTS = 1000
INPUT_RATE_HZ = 15.0
TAU_M_S = 10e-3
V_THRESHOLD_V = -54e-3
V_RESET_V = -60e-3
E_LEAK_V = -74e-3
TAU_E_S = 5e-3
E_EXC_V = 0.0
TAU_PRE_S = 20e-3
TAU_POST_S = 20e-3
G_MAX = 0.01
DA_PRE = 0.01 * G_MAX
DA_POST = -0.01 * TAU_PRE_S / TAU_POST_S * 1.05 * G_MAX
DT_S = 1e-4

NEURON_EQUATIONS = """
dv/dt = (ge * (e_exc - v) + e_leak - v) / tau_m : volt
dge/dt = -ge / tau_e : 1
"""
SYNAPSE_MODEL = """
w : 1
dapre/dt = -apre / tau_pre : 1 (event-driven)
dapost/dt = -apost / tau_post : 1 (event-driven)
"""
ON_PRE = """
ge += w
apre += da_pre
w = clip(w + apost, 0, g_max)
"""
ON_POST = """
apost += da_post
w = clip(w + apre, 0, g_max)
"""


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--target", choices=TARGETS, nargs="+", default=["cython"], help="Brian2 code-generation targets, one or more"
    )
    parser.add_argument("--duration", type=float, default=100.0, help="simulated time in s (default 100)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0], help="random seeds, one run each")
    parser.add_argument("--json", metavar="OUT", help="write all statistics and timings to this JSON file")
    parser.add_argument("--csv", metavar="OUT", help="write the per-seed statistics as a validation table")
    args = parser.parse_args(argv)
    if not args.duration >= LAST_WINDOW_S:
        parser.error(f"--duration must be at least {LAST_WINDOW_S:g} s (the last-window rate), got {args.duration}")
    if len(set(args.seeds)) != len(args.seeds):
        parser.error(f"--seeds contains repeated values: {args.seeds}")
    if len(set(args.target)) != len(args.target):
        parser.error(f"--target contains repeated values: {args.target}")
    if args.csv and len(args.target) != 1:
        parser.error(f"--csv needs exactly one --target, got {args.target}")
    return args


def write_atomic(path, text):
    """Write text to path through a temporary file in the same folder."""
    folder = os.path.dirname(os.path.abspath(path))
    descriptor, temporary = tempfile.mkstemp(dir=folder, prefix=".tmp_", suffix=os.path.basename(path))
    try:
        with os.fdopen(descriptor, "w", newline="") as handle:
            handle.write(text)
        os.replace(temporary, path)
    except BaseException:
        os.unlink(temporary)
        raise


def build_network(b2, seed):
    """Create the Poisson inputs, the neuron, the plastic synapses and a spike monitor in a Brian2 Network."""
    b2.seed(seed)
    b2.defaultclock.dt = DT_S * b2.second
    namespace = {
        "tau_m": TAU_M_S * b2.second,
        "e_leak": E_LEAK_V * b2.volt,
        "e_exc": E_EXC_V * b2.volt,
        "tau_e": TAU_E_S * b2.second,
        "v_threshold": V_THRESHOLD_V * b2.volt,
        "v_reset": V_RESET_V * b2.volt,
        "tau_pre": TAU_PRE_S * b2.second,
        "tau_post": TAU_POST_S * b2.second,
        "g_max": G_MAX,
        "da_pre": DA_PRE,
        "da_post": DA_POST,
    }

    inputs = b2.PoissonGroup(N_INPUTS, rates=INPUT_RATE_HZ * b2.hertz, name="inputs")
    neuron = b2.NeuronGroup(
        1,
        NEURON_EQUATIONS,
        threshold="v > v_threshold",
        reset="v = v_reset",
        method="euler",
        namespace=namespace,
        name="neuron",
    )
    neuron.v = E_LEAK_V * b2.volt

    synapses = b2.Synapses(
        inputs, neuron, SYNAPSE_MODEL, on_pre=ON_PRE, on_post=ON_POST, namespace=namespace, name="stdp"
    )
    synapses.connect()
    synapses.w = "rand() * g_max"

    spikes = b2.SpikeMonitor(neuron, name="output_spikes")
    network = b2.Network(inputs, neuron, synapses, spikes)
    return {"network": network, "synapses": synapses, "spikes": spikes}


def summarize(weights, spike_times_s, duration_s):
    """Compute the weight and rate statistics of one finished run."""
    x = np.asarray(weights, dtype=np.float64) / G_MAX
    counts, _ = np.histogram(x, bins=HISTOGRAM_BINS, range=(0.0, 1.0))
    spike_times_s = np.asarray(spike_times_s, dtype=np.float64)
    # Compare against the last-window start with half a step of slack, so that rounding of t does not move
    # a spike at exactly duration - 10 s out of the window.
    last_start = duration_s - LAST_WINDOW_S - 0.5 * DT_S
    return {
        "frac_low": float(np.mean(x < LOW_FRACTION)),
        "frac_high": float(np.mean(x > HIGH_FRACTION)),
        "mean_w": float(np.mean(x)),
        "rate_hz_total": float(spike_times_s.size / duration_s),
        "rate_hz_last10s": float(np.count_nonzero(spike_times_s >= last_start) / LAST_WINDOW_S),
        "histogram": (counts / x.size).tolist(),
        "n_output_spikes": int(spike_times_s.size),
    }


def run_runtime(b2, target, seed, duration_s):
    """Run one seed with the numpy or cython runtime target and return its statistics and timings."""
    b2.prefs.codegen.target = target
    start = time.perf_counter()
    objects = build_network(b2, seed)
    construct_s = time.perf_counter() - start

    start = time.perf_counter()
    objects["network"].run(duration_s * b2.second, namespace={})
    run_call_s = time.perf_counter() - start
    # Brian2 times only its simulation loop, so the rest of run() is code generation and compilation.
    loop_s = float(b2.get_device()._last_run_time)

    result = summarize(np.array(objects["synapses"].w), np.array(objects["spikes"].t / b2.second), duration_s)
    result["timing_s"] = {
        "construct": construct_s,
        "codegen_and_compile": run_call_s - loop_s,
        "build": construct_s + run_call_s - loop_s,
        "run": loop_s,
        "total": construct_s + run_call_s,
    }
    return result


def run_standalone(b2, seed, duration_s):
    """Build, compile and run one seed as a C++ standalone project in a fresh folder."""
    directory = tempfile.mkdtemp(prefix=f"brian2_sma_seed{seed}_")
    device = b2.get_device()
    device.reinit()
    device.activate(directory=directory, build_on_run=False)
    try:
        start = time.perf_counter()
        objects = build_network(b2, seed)
        objects["network"].run(duration_s * b2.second, namespace={})
        construct_s = time.perf_counter() - start

        start = time.perf_counter()
        device.build(directory=directory, compile=True, run=True, with_output=False)
        build_call_s = time.perf_counter() - start

        make_s = float(device.timers["compile"]["make"])
        binary_s = float(device.timers["run_binary"])
        loop_s = float(device._last_run_time)
        result = summarize(
            np.array(objects["synapses"].w), np.array(objects["spikes"].t / b2.second), duration_s
        )
    finally:
        shutil.rmtree(directory, ignore_errors=True)

    codegen_s = build_call_s - make_s - binary_s
    result["timing_s"] = {
        "construct": construct_s,
        "codegen": codegen_s,
        "compile": make_s,
        "build": construct_s + codegen_s + make_s,
        "run": loop_s,
        "binary": binary_s,
        "total": construct_s + build_call_s,
    }
    return result


def compiler_version():
    try:
        output = subprocess.run(["c++", "--version"], capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return output.splitlines()[0]


def describe_environment(b2):
    import Cython

    return {
        "brian2": b2.__version__,
        "numpy": np.__version__,
        "cython": Cython.__version__,
        "python": platform.python_version(),
        "compiler": compiler_version(),
        "machine": f"{platform.machine()}, {os.cpu_count()} logical CPUs",
        "platform": platform.platform(),
    }


def mean_and_std(values):
    values = np.asarray(values, dtype=np.float64)
    std = float(np.std(values, ddof=1)) if values.size > 1 else float("nan")
    return float(np.mean(values)), std


def format_csv(runs, args, environment, command):
    """Format the per-seed statistics as a table with `#` header lines, as in validation/data."""
    columns = list(STATISTICS)
    histogram_columns = [f"hist_{i:02d}" for i in range(HISTOGRAM_BINS)]
    lines = [
        f"# Song-Miller-Abbott STDP network simulated in Brian2 for {args.duration:g} s: final weights and "
        "output rate, one row per seed.",
        "# source: Song, Miller and Abbott, Nature Neuroscience 3, 919 (2000), in the form of Brian2's example "
        "examples/synapses/STDP.py (1000 Poisson inputs at 15 Hz, additive STDP with traces, euler, dt = 0.1 ms)",
        f"# constants: n_inputs={N_INPUTS} input_rate_hz={INPUT_RATE_HZ:g} tau_m_s={TAU_M_S:g} "
        f"v_threshold_v={V_THRESHOLD_V:g} v_reset_v={V_RESET_V:g} e_leak_v={E_LEAK_V:g} tau_e_s={TAU_E_S:g} "
        f"e_exc_v={E_EXC_V:g} tau_pre_s={TAU_PRE_S:g} tau_post_s={TAU_POST_S:g} g_max={G_MAX:g} "
        f"da_pre={DA_PRE:g} da_post={DA_POST:.6g} dt_s={DT_S:g} v_initial_v={E_LEAK_V:g}",
        f"# command: {command}",
        f"# versions: brian2={environment['brian2']} numpy={environment['numpy']} "
        f"cython={environment['cython']} python={environment['python']} target={args.target[0]}",
        "# derivation: one Brian2 run per seed; the same seed gives a different random stream in xbar, so only "
        "the distribution over seeds is comparable",
        "# last_digit: frac_low=1e-4 frac_high=1e-4 mean_w=1e-4 rate_hz_total=1e-4 rate_hz_last10s=1e-4 hist=1e-3 "
        "(fractions of 1000 synapses and spike counts over 10 s are exact at these digits)",
        "# tolerance: set in stdp_sma_brian2_settings.csv, the settings table of the check that reads this file",
        "# columns: frac_low and frac_high are the fractions of the 1000 final weights below 0.1 g_max and above "
        "0.9 g_max; mean_w is the mean of w / g_max; rate_hz_total and rate_hz_last10s are output spikes per "
        "second over the whole run and over its last 10 s; hist_00 to hist_19 are the fractions of weights in "
        "20 equal bins of w / g_max on [0, 1] (the last bin includes w = g_max)",
    ]
    for column in columns:
        mean, std = mean_and_std([run[column] for run in runs])
        lines.append(f"# Across seeds: {column} mean={mean:.4f} std={std:.4f} (n={len(runs)}, std with ddof=1)")

    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["seed", *columns, *histogram_columns])
    for run in runs:
        row = [run["seed"], *(f"{run[c]:.4f}" for c in columns), *(f"{h:.3f}" for h in run["histogram"])]
        writer.writerow(row)
    return "\n".join(lines) + "\n" + buffer.getvalue()


def print_run(target, run):
    timing = run["timing_s"]
    print(
        f"{target} seed {run['seed']:>3}: frac_low {run['frac_low']:.3f}  frac_high {run['frac_high']:.3f}  "
        f"mean_w {run['mean_w']:.3f}  rate {run['rate_hz_total']:.2f} Hz (last 10 s {run['rate_hz_last10s']:.2f} Hz)"
        f"  build {timing['build']:.1f} s  run {timing['run']:.1f} s",
        flush=True,
    )


def run_target(b2, target, seeds, duration_s):
    """Run every seed on one target and return the per-seed results."""
    cython_cache = None
    if target == "cython":
        # A fresh cache makes the first seed's build time include the full Cython compile.
        cython_cache = tempfile.mkdtemp(prefix="brian2_sma_cython_")
        b2.prefs.codegen.runtime.cython.cache_dir = cython_cache
    if target == "cpp_standalone":
        b2.set_device("cpp_standalone", build_on_run=False)
    else:
        b2.set_device("runtime")

    runs = []
    try:
        for seed in seeds:
            if target == "cpp_standalone":
                result = run_standalone(b2, seed, duration_s)
            else:
                result = run_runtime(b2, target, seed, duration_s)
            result = {"seed": seed, **result}
            runs.append(result)
            print_run(target, result)
    finally:
        if cython_cache is not None:
            shutil.rmtree(cython_cache, ignore_errors=True)
            b2.prefs.codegen.runtime.cython.cache_dir = None
    return runs


def main(argv=None):
    args = parse_args(argv)
    command = shlex.join([sys.executable, *sys.argv])

    import brian2 as b2

    b2.prefs.logging.console_log_level = "WARNING"
    environment = describe_environment(b2)
    report = {
        "command": command,
        "duration_s": args.duration,
        "dt_s": DT_S,
        "environment": environment,
        "targets": {},
    }
    # Run the runtime targets before cpp_standalone, which switches Brian2's global device.
    for target in sorted(args.target, key=TARGETS.index):
        load_start = os.getloadavg()
        start = time.perf_counter()
        runs = run_target(b2, target, args.seeds, args.duration)
        report["targets"][target] = {
            "wall_s": time.perf_counter() - start,
            "load_average_start": list(load_start),
            "load_average_end": list(os.getloadavg()),
            "median_run_s": float(np.median([run["timing_s"]["run"] for run in runs])),
            "runs": runs,
        }
        for column in STATISTICS:
            mean, std = mean_and_std([run[column] for run in runs])
            print(f"{target:>14} {column:>16}: mean {mean:.4f}  std {std:.4f}  (n = {len(runs)})")

    if args.json:
        write_atomic(args.json, json.dumps(report, indent=2) + "\n")
    if args.csv:
        (target,) = args.target
        write_atomic(args.csv, format_csv(report["targets"][target]["runs"], args, environment, command))


if __name__ == "__main__":
    main()
