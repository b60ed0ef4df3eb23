"""Benchmark the IR-drop solver of xbar against badcrossbar and a direct SciPy sparse solve.

Run from the repository root:

    python benchmarks/ir_drop.py            # 64, 128 and 256 square arrays, then 1024 for xbar alone
    python benchmarks/ir_drop.py --quick    # 64 and 128, then 512 for xbar alone; under a minute

All three solvers solve the same circuit: an M x N crossbar whose word lines are driven from the left by
ideal sources and whose bit lines end at the bottom in virtual grounds, with the same resistance on every
word-line and bit-line segment, the segment to the periphery included. Device resistances are log-uniform
in [10 kohm, 1 Mohm] and inputs uniform in [-0.2, 0.2] V, drawn with fixed `jax.random` keys. The wire
resistance is 1 ohm per segment on both lines. The xbar solver is also run at 10 ohm to show how its
iteration count grows with IR drop.

    badcrossbar  `badcrossbar.compute` 1.1.0 (Joksas and Mehonic, SoftwareX 12, 100617 (2020)) with
                 node_voltages=False and all_currents=False. It fills a SciPy LIL matrix one column of
                 cells at a time and solves it with `spsolve` for all input vectors at once.
    spsolve      the 2 M N x 2 M N nodal matrix assembled here with vectorized NumPy (COO, then CSC), and
                 one `scipy.sparse.linalg.spsolve` for all input vectors at once. Its time includes the
                 assembly, which the JSON also gives on its own.
    xbar         `xbar.crossbar.solve_crossbar` under `jax.jit` with jax_enable_x64 on, in
                 float64 with the default rtol of 1e-9 and, as an extra column, in float32 (rtol 1e-5).
                 The time is the median of several calls after compilation.

For every case the script prints the times, the speed-up of xbar (float64) over the two others, xbar's
conjugate-gradient iterations and relative Kirchhoff residual, and the largest difference of xbar's output
currents from badcrossbar's and from spsolve's, relative to the largest current of the same input vector.
At the largest size compared, the float64 solve of 16 vectors is also timed when stopped after its first
iteration, which gives the cost of each further iteration, and one vector at a time under `lax.map`.
The peak resident set size of the largest xbar solve is measured in a child process (this script run again
with a hidden option) and compared with a child that only imports the packages and builds the inputs.
The last line of output is one JSON object with every figure.
"""

from __future__ import annotations

import argparse
import datetime
import importlib.util
import json
import logging
import os
import resource
import statistics
import subprocess
import sys
import time
import types
import warnings

import jax

# The references are float64 and the accuracy goal is 1e-6, so the whole script runs with 64-bit types.
# The float32 column switches them off locally with `jax.enable_x64(False)`.
jax.config.update("jax_enable_x64", True)

import jax.numpy as jnp  # noqa: E402  (after enabling 64-bit types)
from jax import lax  # noqa: E402
import numpy as np  # noqa: E402
import scipy  # noqa: E402
import scipy.sparse  # noqa: E402
import scipy.sparse.linalg  # noqa: E402

from xbar.crossbar import Parasitics, solve_crossbar  # noqa: E402

import _machine  # noqa: E402  (benchmarks/ is the script's folder, so it is on sys.path)

RESISTANCE_RANGE_OHM = (1e4, 1e6)
INPUT_AMPLITUDE_V = 0.2
WIRE_OHM = 1.0
SECOND_WIRE_OHM = 10.0
BATCHES = (1, 16)
LARGE_BATCH = 16
SEED = 0
# Goals: xbar (float64) at least this much faster than badcrossbar at 256 x 256 with 16 vectors, and the
# whole process that solves 1024 x 1024 with 16 vectors below this peak resident set size.
SPEEDUP_GOAL = 10.0
SPEEDUP_GOAL_CASE = (256, 16)
MEMORY_GOAL_SIZE = 1024
MEMORY_GOAL_BYTES = 4 * 2**30
# Largest relative current difference from the float64 references that float64 xbar must stay below.
ACCURACY_GOAL = 1e-6
# A reference solve faster than this is timed three times and the median kept. A slower one runs once.
CHEAP_S = 2.0


# Machine description.


def machine_info() -> dict:
    """Return the machine description of `_machine` plus the SciPy version and the xbar checkout."""
    info = _machine.machine_info(load_key="load_average_1min_start")
    info["scipy"] = scipy.__version__
    info["xbar_source"] = source_version()
    return info


def source_version() -> dict:
    """Return the git commit of the xbar checkout and the xbar files that differ from it.

    The solver is under active development, so a figure is only meaningful with the code it measured.
    Both fields are None outside a git checkout.
    """
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True,
                                check=True).stdout.strip()
        status = subprocess.run(["git", "status", "--porcelain", "--", "xbar"], cwd=root, capture_output=True,
                                text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return {"commit": None, "modified": None}
    return {"commit": commit, "modified": [line[3:] for line in status.splitlines()]}


# The problem.


def make_problem(rows: int, columns: int, batch: int) -> tuple[np.ndarray, np.ndarray]:
    """Draw device resistances (rows, columns) in ohm and inputs (batch, rows) in V, in float64.

    The keys depend only on the shape, so every solver and every process gets the same problem.
    """
    key = jax.random.fold_in(jax.random.fold_in(jax.random.key(SEED), rows * 100_003 + columns), batch)
    resistance_key, input_key = jax.random.split(key)
    low, high = np.log10(RESISTANCE_RANGE_OHM)
    exponents = jax.random.uniform(resistance_key, (rows, columns), jnp.float64, low, high)
    inputs = jax.random.uniform(input_key, (batch, rows), jnp.float64, -INPUT_AMPLITUDE_V, INPUT_AMPLITUDE_V)
    return 10.0 ** np.asarray(exponents), np.asarray(inputs)


# badcrossbar.


def import_badcrossbar():
    """Return `badcrossbar.compute` and its version, or (None, reason) when it cannot be imported.

    badcrossbar 1.1.0 imports pathvalidate in `badcrossbar.utils` only to clean file names for saving
    and plotting, which `compute` never does. When pathvalidate is missing (as after
    `pip install --no-deps badcrossbar`), a stand-in module whose function raises is registered first.
    The package's import warnings are silenced, and the stdout handler that its `__init__` adds to the
    root logger is removed again so that its INFO messages do not flood the report.
    """
    if importlib.util.find_spec("badcrossbar") is None:
        return None, "badcrossbar is not installed (pip install --no-deps badcrossbar)"
    if "pathvalidate" not in sys.modules and importlib.util.find_spec("pathvalidate") is None:
        stand_in = types.ModuleType("pathvalidate")

        def sanitize_filepath(*args, **kwargs):
            raise NotImplementedError("pathvalidate is not installed, so badcrossbar cannot save files")

        stand_in.sanitize_filepath = sanitize_filepath
        sys.modules["pathvalidate"] = stand_in

    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            from badcrossbar.compute import compute
    except ImportError as error:
        return None, f"badcrossbar could not be imported ({error})"
    finally:
        for handler in root.handlers[len(handlers):]:
            root.removeHandler(handler)
        root.setLevel(level)
    logging.getLogger("badcrossbar").setLevel(logging.WARNING)
    from importlib.metadata import version

    return compute, version("badcrossbar")


def badcrossbar_currents(compute, resistances, inputs, wire_ohm):
    """Return the output currents (batch, columns) in A computed by badcrossbar."""
    solution = compute(
        inputs.T,
        resistances,
        r_i_word_line=wire_ohm,
        r_i_bit_line=wire_ohm,
        node_voltages=False,
        all_currents=False,
    )
    return np.asarray(solution.currents.output).reshape(inputs.shape[0], resistances.shape[1])


# Direct sparse solve.


def nodal_system(conductances, inputs, wire_ohm):
    """Assemble the nodal equations A x = b of the crossbar: A (2 M N)^2 in CSC, b (2 M N, batch).

    Unknowns are the word-line nodes u[i, j] in row-major order, then the bit-line nodes v[i, j]. Every
    two-terminal branch (device, word-line segment, bit-line segment) adds its conductance to the two
    diagonal entries and subtracts it from the two off-diagonal ones, and COO sums repeated entries.
    The first word-line segment ties u[i, 0] to its source and the last bit-line segment ties
    v[M-1, j] to the virtual ground, which adds to the diagonal and, for the source, to b.
    """
    rows, columns = conductances.shape
    cells = rows * columns
    u = np.arange(cells).reshape(rows, columns)
    v = u + cells
    wire = 1.0 / wire_ohm

    first = np.concatenate([u.ravel(), u[:, :-1].ravel(), v[:-1, :].ravel()])
    second = np.concatenate([v.ravel(), u[:, 1:].ravel(), v[1:, :].ravel()])
    branch = np.concatenate([
        conductances.ravel(),
        np.full(rows * (columns - 1), wire),
        np.full((rows - 1) * columns, wire),
    ])
    ends = np.concatenate([u[:, 0], v[-1, :]])
    matrix_rows = np.concatenate([first, second, first, second, ends])
    matrix_columns = np.concatenate([first, second, second, first, ends])
    values = np.concatenate([branch, branch, -branch, -branch, np.full(ends.size, wire)])
    matrix = scipy.sparse.coo_matrix((values, (matrix_rows, matrix_columns)), shape=(2 * cells, 2 * cells))

    rhs = np.zeros((2 * cells, inputs.shape[0]))
    rhs[u[:, 0]] = wire * inputs.T
    return matrix.tocsc(), rhs


def spsolve_currents(conductances, inputs, wire_ohm):
    """Solve the nodal equations directly; return the output currents (batch, columns) in A and the
    assembly time in s."""
    start = time.perf_counter()
    matrix, rhs = nodal_system(conductances, inputs, wire_ohm)
    assembly_s = time.perf_counter() - start
    # One LU factorization serves all right-hand sides; a single one comes back as a 1-D array.
    potentials = scipy.sparse.linalg.spsolve(matrix, rhs).reshape(rhs.shape)
    rows, columns = conductances.shape
    bottom = potentials[rows * columns + (rows - 1) * columns: 2 * rows * columns]
    return (bottom / wire_ohm).T, assembly_s


# xbar.


def _solve(conductances, inputs, wire_ohm):
    """Solve with xbar; return (currents, residual, iterations, converged).

    The wire resistance is an argument, not a constant, so that both wire values share one compilation.
    throw=False lets the benchmark report a solve that misses rtol instead of stopping.
    """
    solution = solve_crossbar(conductances, inputs, Parasitics(word_line=wire_ohm), throw=False)
    return solution.currents, solution.residual, solution.iterations, solution.converged


# One jitted function for the whole script: jax compiles it once per shape and dtype.
SOLVE = jax.jit(_solve)


def run_xbar(conductances, inputs, wire_ohm, dtype, repeats: int) -> dict:
    """Compile and time the xbar solve in `dtype`; return times, diagnostics and the currents (float64)."""
    with jax.enable_x64(dtype == "float64"):
        args = (
            jnp.asarray(conductances, dtype),
            jnp.asarray(inputs, dtype),
            jnp.asarray(wire_ohm, dtype),
        )
        start = time.perf_counter()
        result = jax.block_until_ready(SOLVE(*args))
        first_call_s = time.perf_counter() - start
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            result = jax.block_until_ready(SOLVE(*args))
            times.append(time.perf_counter() - start)
    currents, residual, iterations, converged = result
    return {
        "time_s": statistics.median(times),
        "times_s": times,
        "first_call_s": first_call_s,
        "iterations": int(iterations),
        "residual": float(jnp.max(residual)),
        "converged": bool(jnp.all(converged)),
        "currents": np.asarray(currents, np.float64),
    }


# Comparison and timing helpers.


def relative_difference(currents, reference) -> float:
    """Return max |currents - reference| over each vector's outputs, divided by that vector's largest
    |reference|, maximized over the vectors.

    Dividing by each vector's largest current, not by each current, keeps outputs that happen to be
    near zero (inputs of both signs cancel) from inflating the figure.
    """
    scale = np.max(np.abs(reference), axis=-1)
    return float(np.max(np.max(np.abs(currents - reference), axis=-1) / scale))


def time_reference(function):
    """Run `function` once, and twice more when the first call was cheap; return (median s, all times, last result)."""
    start = time.perf_counter()
    result = function()
    times = [time.perf_counter() - start]
    if times[0] < CHEAP_S:
        for _ in range(2):
            start = time.perf_counter()
            result = function()
            times.append(time.perf_counter() - start)
    return statistics.median(times), times, result


# Memory of the largest solve, in child processes.


def peak_rss_bytes() -> int:
    """Return the peak resident set size of this process in bytes.

    On Linux this is VmHWM from /proc/self/status, the high-water mark of the current address space.
    `getrusage` is only the fallback because on Linux its ru_maxrss survives `exec`: a child started by a
    large parent would report at least the parent's size at the fork.
    """
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    # Linux reports kilobytes, macOS bytes.
    return int(peak if sys.platform == "darwin" else peak * 1024)


def current_rss_bytes() -> int | None:
    """Return the resident set size now, from /proc/self/statm (None where that file is missing)."""
    try:
        with open("/proc/self/statm") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except OSError:
        return None


def reset_peak_rss() -> bool:
    """Reset VmHWM to the current RSS (Linux 4.0 and later); return whether that worked."""
    try:
        with open("/proc/self/clear_refs", "w") as clear_refs:
            clear_refs.write("5")
        return True
    except OSError:
        return False


def memory_child(mode: str, size: int, batch: int, dtype: str) -> None:
    """Run in a child process: build the inputs and, for mode "solve", solve once; print one JSON line.

    Mode "baseline" stops after building the inputs, so its peak is the cost of the interpreter, the
    imports and the inputs. The solve child compiles ahead of time, which also gives XLA's own account of
    the program's buffers (`memory_analysis`). It then resets the high-water mark where Linux allows it,
    so that the peak of the solve call is measured apart from the peak of the compilation.
    """
    resistances, inputs = make_problem(size, size, batch)
    report = {"mode": mode, "size": size, "batch": batch, "dtype": dtype}
    with jax.enable_x64(dtype == "float64"):
        conductances = jnp.asarray(1.0 / resistances, dtype)
        voltages = jnp.asarray(inputs, dtype)
        wire = jnp.asarray(WIRE_OHM, dtype)
        jax.block_until_ready((conductances, voltages))
        if mode == "solve":
            compiled = SOLVE.lower(conductances, voltages, wire).compile()
            try:
                analysis = compiled.memory_analysis()
                report["xla_bytes"] = {
                    name: int(getattr(analysis, f"{name}_size_in_bytes"))
                    for name in ("argument", "output", "temp", "generated_code")
                }
            except (AttributeError, NotImplementedError, TypeError):  # backend without the analysis
                report["xla_bytes"] = None
            report["compile_peak_rss_bytes"] = peak_rss_bytes()
            report["rss_before_solve_bytes"] = current_rss_bytes()
            reset = reset_peak_rss()
            start = time.perf_counter()
            result = jax.block_until_ready(compiled(conductances, voltages, wire))
            report["solve_s"] = time.perf_counter() - start
            report["solve_peak_rss_bytes"] = peak_rss_bytes() if reset else None
            report["iterations"] = int(result[2])
    report["peak_rss_bytes"] = max(peak_rss_bytes(), report.get("compile_peak_rss_bytes", 0))
    print(json.dumps(report))


def measure_memory(size: int, batch: int, dtype: str) -> dict:
    """Run the baseline child and the solve child; return both reports and the difference of their peaks."""
    reports = {}
    for mode in ("baseline", "solve"):
        command = [sys.executable, os.path.abspath(__file__), "--memory-child", mode,
                   "--size", str(size), "--batch", str(batch), "--dtype", dtype]
        completed = subprocess.run(command, capture_output=True, text=True, check=False)
        if completed.returncode != 0:
            raise RuntimeError(f"memory child {mode} ({size} x {size}, {dtype}) failed with exit code "
                               f"{completed.returncode}:\n{completed.stderr[-2000:]}")
        reports[mode] = json.loads(completed.stdout.strip().splitlines()[-1])
    solve, baseline = reports["solve"], reports["baseline"]
    return {
        "size": size,
        "batch": batch,
        "dtype": dtype,
        "peak_rss_bytes": solve["peak_rss_bytes"],
        "baseline_peak_rss_bytes": baseline["peak_rss_bytes"],
        "solve_over_baseline_bytes": solve["peak_rss_bytes"] - baseline["peak_rss_bytes"],
        "compile_peak_rss_bytes": solve["compile_peak_rss_bytes"],
        "rss_before_solve_bytes": solve["rss_before_solve_bytes"],
        "solve_call_peak_rss_bytes": solve["solve_peak_rss_bytes"],
        "xla_bytes": solve["xla_bytes"],
        "child_solve_s": solve["solve_s"],
        "child_iterations": solve["iterations"],
    }


# Benchmarks.


def benchmark_compared(sizes, repeats, compute) -> list[dict]:
    """Solve every size and batch with all three solvers at WIRE_OHM; return one entry per case."""
    cases = []
    for size in sizes:
        for batch in BATCHES:
            resistances, inputs = make_problem(size, size, batch)
            conductances = 1.0 / resistances
            entry = {"size": size, "batch": batch, "wire_ohm": WIRE_OHM}

            if compute is not None:
                seconds, times, badcrossbar_output = time_reference(
                    lambda: badcrossbar_currents(compute, resistances, inputs, WIRE_OHM))
                entry["badcrossbar_s"], entry["badcrossbar_times_s"] = seconds, times
            seconds, times, (spsolve_output, assembly_s) = time_reference(
                lambda: spsolve_currents(conductances, inputs, WIRE_OHM))
            entry["spsolve_s"], entry["spsolve_times_s"], entry["spsolve_assembly_s"] = seconds, times, assembly_s

            for dtype in ("float64", "float32"):
                result = run_xbar(conductances, inputs, WIRE_OHM, dtype, repeats)
                currents = result.pop("currents")
                result["difference_from_spsolve"] = relative_difference(currents, spsolve_output)
                if compute is not None:
                    result["difference_from_badcrossbar"] = relative_difference(currents, badcrossbar_output)
                entry[f"xbar_{dtype}"] = result

            xbar_s = entry["xbar_float64"]["time_s"]
            entry["speedup_over_spsolve"] = entry["spsolve_s"] / xbar_s
            if compute is not None:
                entry["speedup_over_badcrossbar"] = entry["badcrossbar_s"] / xbar_s
                entry["badcrossbar_difference_from_spsolve"] = relative_difference(badcrossbar_output, spsolve_output)
            cases.append(entry)
    return cases


def benchmark_xbar_alone(sizes, repeats) -> list[dict]:
    """Time xbar alone at LARGE_BATCH vectors for every size and wire value; return one entry per case."""
    cases = []
    for size, wire_ohm, dtypes in sizes:
        resistances, inputs = make_problem(size, size, LARGE_BATCH)
        conductances = 1.0 / resistances
        entry = {"size": size, "batch": LARGE_BATCH, "wire_ohm": wire_ohm}
        for dtype in dtypes:
            result = run_xbar(conductances, inputs, wire_ohm, dtype, repeats)
            result.pop("currents")
            entry[f"xbar_{dtype}"] = result
        cases.append(entry)
    return cases


def time_jitted(function, args, repeats: int) -> float:
    """Call a jitted function once to compile it, then return the median time in s of `repeats` calls."""
    jax.block_until_ready(function(*args))
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(function(*args))
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def benchmark_batching(size: int, repeats: int) -> dict:
    """Split the float64 solve of LARGE_BATCH vectors at one size into setup, iterations and batch layout.

    Three jitted variants of the public API are timed: the batched solve, the same solve stopped after one
    iteration (throw=False), and one vector at a time under `lax.map`. The cost per iteration is the
    difference of the first two divided by the iterations saved.
    """
    resistances, inputs = make_problem(size, size, LARGE_BATCH)
    args = (jnp.asarray(1.0 / resistances), jnp.asarray(inputs), jnp.asarray(WIRE_OHM))

    def first_iteration(conductances, voltages, wire_ohm):
        solution = solve_crossbar(conductances, voltages, Parasitics(word_line=wire_ohm), max_iterations=1,
                                  throw=False)
        return solution.currents

    def one_at_a_time(conductances, voltages, wire_ohm):
        return lax.map(lambda vector: _solve(conductances, vector, wire_ohm)[0], voltages)

    batched_s = time_jitted(SOLVE, args, repeats)
    first_iteration_s = time_jitted(jax.jit(first_iteration), args, repeats)
    mapped = jax.jit(one_at_a_time)
    mapped_s = time_jitted(mapped, args, repeats)
    currents, _, iterations, _ = SOLVE(*args)
    iterations = int(iterations)
    per_iteration_s = (batched_s - first_iteration_s) / (iterations - 1) if iterations > 1 else None
    return {
        "size": size,
        "batch": LARGE_BATCH,
        "batched_s": batched_s,
        "iterations": iterations,
        "first_iteration_only_s": first_iteration_s,
        "per_iteration_s": per_iteration_s,
        "one_vector_at_a_time_s": mapped_s,
        "one_at_a_time_difference": relative_difference(np.asarray(mapped(*args)), np.asarray(currents)),
    }


# Report.


def format_time(seconds) -> str:
    """Return a time with a unit suited to its size, or a dash for a missing figure."""
    if seconds is None:
        return "-"
    if seconds < 1.0:
        return f"{seconds * 1e3:.1f} ms"
    return f"{seconds:.2f} s"


def format_optional(value, pattern) -> str:
    return "-" if value is None else format(value, pattern)


def print_report(machine, compared, alone, batching, memory, goals, badcrossbar_note, wall_s) -> None:
    print("IR-drop solvers of an M x M crossbar, wire resistance per segment on both lines")
    print(f"CPU: {machine['cpu']} ({machine['cores']} cores, {machine['usable_cores']} usable); "
          f"1-minute load average {machine['load_average_1min_start']:.2f} at start, "
          f"{machine['load_average_1min_end']:.2f} at end")
    print(f"jax {machine['jax']} on {machine['backend']}, numpy {machine['numpy']}, scipy {machine['scipy']}; "
          f"thread settings: {machine['thread_settings']}")
    source = machine["xbar_source"]
    modified = ", ".join(source["modified"]) if source["modified"] else "none"
    print(f"xbar at git commit {source['commit']}; xbar files modified since: {modified}")
    print(f"devices log-uniform in [{RESISTANCE_RANGE_OHM[0]:g}, {RESISTANCE_RANGE_OHM[1]:g}] ohm, inputs uniform "
          f"in [-{INPUT_AMPLITUDE_V}, {INPUT_AMPLITUDE_V}] V, wire {WIRE_OHM:g} ohm per segment")
    if badcrossbar_note:
        print(f"badcrossbar column skipped: {badcrossbar_note}")
    print("difference: max |I_xbar - I_ref| / max |I_ref| per input vector, worst vector")
    print()

    header = (f"{'M':>5} {'B':>3} {'badcrossbar':>12} {'spsolve':>10} {'xbar f64':>10} {'xbar f32':>10} "
              f"{'x bc':>7} {'x sp':>7} {'iter':>5} {'residual':>9} {'diff bc':>9} {'diff sp':>9} {'f32 diff sp':>11}")
    print(header)
    for entry in compared:
        x64, x32 = entry["xbar_float64"], entry["xbar_float32"]
        print(f"{entry['size']:>5} {entry['batch']:>3} {format_time(entry.get('badcrossbar_s')):>12} "
              f"{format_time(entry['spsolve_s']):>10} {format_time(x64['time_s']):>10} "
              f"{format_time(x32['time_s']):>10} "
              f"{format_optional(entry.get('speedup_over_badcrossbar'), '6.1f'):>7} "
              f"{entry['speedup_over_spsolve']:7.1f} {x64['iterations']:>5} {x64['residual']:9.1e} "
              f"{format_optional(x64.get('difference_from_badcrossbar'), '9.1e'):>9} "
              f"{x64['difference_from_spsolve']:9.1e} {x32['difference_from_spsolve']:11.1e}")
    print("x bc, x sp: speed-up of xbar float64 over badcrossbar and over spsolve (assembly included)")
    print()

    print(f"xbar alone, {LARGE_BATCH} input vectors; the first call includes compilation except where the same "
          "shape and dtype ran before (the 10-ohm rows reuse the 1-ohm programs)")
    print(f"{'M':>5} {'wire ohm':>9} {'dtype':>8} {'time':>10} {'first call':>12} {'iter':>5} {'residual':>9}")
    for entry in alone:
        for dtype in ("float64", "float32"):
            result = entry.get(f"xbar_{dtype}")
            if result is None:
                continue
            print(f"{entry['size']:>5} {entry['wire_ohm']:9g} {dtype:>8} {format_time(result['time_s']):>10} "
                  f"{format_time(result['first_call_s']):>12} {result['iterations']:>5} {result['residual']:9.1e}")
    print()

    print(f"float64 solve of {batching['size']} x {batching['size']} with {batching['batch']} vectors, "
          f"{batching['iterations']} iterations:")
    print(f"  batched {format_time(batching['batched_s'])}; stopped after the first iteration "
          f"{format_time(batching['first_iteration_only_s'])}; each further iteration "
          f"{format_time(batching['per_iteration_s'])}")
    print(f"  one vector at a time under lax.map {format_time(batching['one_vector_at_a_time_s'])} "
          f"(currents within {batching['one_at_a_time_difference']:.1e} of the batched solve)")
    print()

    for report in memory:
        mib = {key: None if value is None else value / 2**20 for key, value in report.items()
               if key.endswith("_bytes") and not isinstance(value, dict)}
        xla = report["xla_bytes"]
        xla_text = "not reported" if xla is None else ", ".join(f"{k} {v / 2**20:.0f} MiB" for k, v in xla.items())
        print(f"memory of the {report['size']} x {report['size']} solve with {report['batch']} vectors, "
              f"{report['dtype']}, in a child process:")
        print(f"  peak RSS {mib['peak_rss_bytes']:.0f} MiB; baseline child (imports and inputs only) "
              f"{mib['baseline_peak_rss_bytes']:.0f} MiB; difference {mib['solve_over_baseline_bytes']:.0f} MiB")
        print(f"  peak during compilation {mib['compile_peak_rss_bytes']:.0f} MiB, RSS before the solve call "
              f"{format_optional(mib['rss_before_solve_bytes'], '.0f')} MiB, peak during the solve call "
              f"{format_optional(mib['solve_call_peak_rss_bytes'], '.0f')} MiB")
        print(f"  XLA buffers of the compiled solve: {xla_text}")
    print()

    for goal in goals:
        verdict = "not evaluated" if goal["met"] is None else "met" if goal["met"] else "NOT met"
        print(f"goal: {goal['text']}: {goal['figure']}: {verdict}")
    print(f"wall time {wall_s:.1f} s")


def evaluate_goals(compared, memory, compute) -> list[dict]:
    """Check the speed, memory and accuracy goals; return one record per goal."""
    goals = []
    size, batch = SPEEDUP_GOAL_CASE
    case = next((entry for entry in compared if (entry["size"], entry["batch"]) == (size, batch)), None)
    speed_goal = {
        "name": "speedup",
        "text": f"xbar float64 at least {SPEEDUP_GOAL:g}x faster than badcrossbar at {size} x {size}, {batch} vectors",
        "value": None,
        "met": None,
    }
    if case is None:
        speed_goal["figure"] = f"needs the {size} x {size} case of the full run"
    elif compute is None:
        speed_goal["figure"] = "needs badcrossbar"
    else:
        speed_goal["value"] = case["speedup_over_badcrossbar"]
        speed_goal["figure"] = f"{speed_goal['value']:.1f}x"
        speed_goal["met"] = speed_goal["value"] >= SPEEDUP_GOAL
    goals.append(speed_goal)
    for report in memory:
        if report["dtype"] != "float64":
            continue
        peak = report["peak_rss_bytes"]
        stand_in = "" if report["size"] == MEMORY_GOAL_SIZE else f" (stand-in for {MEMORY_GOAL_SIZE} in --quick)"
        goals.append({
            "name": "memory",
            "text": (f"{report['size']} x {report['size']} with {report['batch']} vectors (float64) in a process "
                     f"whose peak RSS stays under {MEMORY_GOAL_BYTES / 2**30:g} GiB{stand_in}"),
            "figure": f"{peak / 2**30:.2f} GiB",
            "value": peak,
            "met": peak < MEMORY_GOAL_BYTES,
        })
    worst = max(
        max(entry["xbar_float64"]["difference_from_spsolve"],
            entry["xbar_float64"].get("difference_from_badcrossbar", 0.0))
        for entry in compared
    )
    goals.append({
        "name": "accuracy",
        "text": f"xbar float64 currents within {ACCURACY_GOAL:g} of both references in every case",
        "figure": f"worst {worst:.1e}",
        "value": worst,
        "met": worst < ACCURACY_GOAL,
    })
    return goals


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true",
                        help="sizes 64 and 128, 512 in place of 1024 and fewer repeats (under a minute)")
    # Hidden options that run one memory child (see memory_child).
    parser.add_argument("--memory-child", choices=("baseline", "solve"), help=argparse.SUPPRESS)
    parser.add_argument("--size", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--batch", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--dtype", choices=("float64", "float32"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.memory_child:
        memory_child(args.memory_child, args.size, args.batch, args.dtype)
        return

    started = time.perf_counter()
    machine = machine_info()
    compute, badcrossbar_version = import_badcrossbar()
    badcrossbar_note = badcrossbar_version if compute is None else None

    if args.quick:
        sizes, large, repeats, large_repeats = (64, 128), 512, 3, 2
        memory_dtypes = ("float64",)
    else:
        sizes, large, repeats, large_repeats = (64, 128, 256), MEMORY_GOAL_SIZE, 5, 3
        memory_dtypes = ("float64", "float32")

    compared = benchmark_compared(sizes, repeats, compute)
    # The 10-ohm runs reuse the compiled float64 programs of the 1-ohm runs.
    alone_cases = [(size, SECOND_WIRE_OHM, ("float64",)) for size in sizes]
    large_cases = [(large, WIRE_OHM, ("float64", "float32"))]
    if not args.quick:
        large_cases.append((large, SECOND_WIRE_OHM, ("float64",)))
    alone = benchmark_xbar_alone(alone_cases, repeats) + benchmark_xbar_alone(large_cases, large_repeats)
    batching = benchmark_batching(sizes[-1], repeats)
    memory = [measure_memory(large, LARGE_BATCH, dtype) for dtype in memory_dtypes]
    goals = evaluate_goals(compared, memory, compute)

    machine["load_average_1min_end"] = os.getloadavg()[0]
    wall_s = time.perf_counter() - started
    print_report(machine, compared, alone, batching, memory, goals, badcrossbar_note, wall_s)
    figures = {
        "benchmark": "ir_drop",
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "quick": args.quick,
        "problem": {
            "resistance_range_ohm": list(RESISTANCE_RANGE_OHM),
            "input_amplitude_v": INPUT_AMPLITUDE_V,
            "wire_ohm": WIRE_OHM,
            "second_wire_ohm": SECOND_WIRE_OHM,
            "seed": SEED,
        },
        "repeats": {"compared": repeats, "large": large_repeats},
        "badcrossbar_version": badcrossbar_version if compute is not None else None,
        "badcrossbar_note": badcrossbar_note,
        "compared": compared,
        "xbar_alone": alone,
        "batching": batching,
        "memory": memory,
        "goals": goals,
        "machine": machine,
        "wall_s": wall_s,
    }
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
