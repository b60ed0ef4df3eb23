"""Co-design of the digits MLP on PCM tiles by gradient, checked against a grid sweep of the same objective.

Run from the repository root (needs the examples extra: pip install "xbar-sim[examples]"):

    python examples/codesign.py            # about 15 s on 2 cores, mostly start-up and compilation
    python examples/codesign.py --quick    # coarser grid, fewer steps and examples

The network is the 64-32-10 ReLU perceptron of `xbar.studies`, trained in software with Adam on the
scikit-learn digits; its weights stay fixed. Each layer is one PCM tile read 1 h after programming, with
8-bit DAC and ADC and output noise of 0.1 uA at each ADC input. The objective is the cross-entropy on
the training images plus `--energy-weight` times the energy per image from `tile_cost`, with the
converters' rounding modelled as additive noise (`converters="noise"`).

1. Check: the read voltage and one ADC full-scale current shared by both tiles are optimized by Adam in
   log space, and the same objective, with the same noise draws, is evaluated on a log-spaced grid. Low
   voltage loses accuracy to output and rounding noise, high voltage saturates the ADC and costs array
   energy, so the objective has an interior minimum. The script reports whether the gradient optimum lies
   within one grid spacing of the grid's best point on both axes.
2. Joint co-design: g_max, read voltage, each layer's DAC range and the ADC range from the same start,
   with the objective's parts before and after. With `--wire-resistance`, the tiles have that wire
   resistance per cell and the script also prints the objective's derivative with respect to it.

With `--output FILE` the grid is written as NetCDF (atomically). The last line is one JSON object with the
results.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import tempfile
import time

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from xbar.crossbar import ADC, DAC, Parasitics, Tile
from xbar.devices import PCM
from xbar.learning import AnalogNetwork
from xbar.learning.codesign import CodesignProblem, grid_search, optimize, to_log_space
from xbar.studies import load_digits_split, train_perceptron

HIDDEN = 32
BITS = 8
READ_TIME_S = 3600.0
OUTPUT_NOISE_A = 1e-7
START = {"read_voltage": 0.5, "adc_range": 3e-5}  # V, A: away from the optimum on purpose
UNITS = {"g_max": "S", "read_voltage": "V", "dac_range": "(input units, per layer)", "adc_range": "A"}


def format_value(value) -> str:
    """Format `value` with four significant digits, per-layer values as a list in brackets."""
    values = np.atleast_1d(np.asarray(value, dtype=float))
    text = ", ".join(f"{v:.4g}" for v in values)
    return f"[{text}]" if np.ndim(value) else text


def build_problem(args) -> CodesignProblem:
    """Train the MLP in software and return the co-design problem on its training images."""
    x_train, y_train, _, _ = load_digits_split(0.25, 0)
    x_train, y_train = jnp.asarray(x_train[:args.examples]), jnp.asarray(y_train[:args.examples])
    trained = train_perceptron(x_train, y_train, hidden=HIDDEN, steps=400, learning_rate=0.01, seed=0)
    weights = ({"weights": trained["w1"], "bias": trained["b1"]}, {"weights": trained["w2"], "bias": trained["b2"]})
    # Layer 2's DAC range covers the largest hidden activation on the training images.
    hidden_max = float(jnp.max(jax.nn.relu(x_train @ trained["w1"] + trained["b1"])))
    wires = Parasitics(word_line=args.wire_resistance) if args.wire_resistance > 0 else None
    tiles = [
        Tile(device=PCM(), dac=DAC(BITS, input_range), adc=ADC(BITS, current_range=START["adc_range"]),
             output_noise=OUTPUT_NOISE_A, parasitics=wires)
        for input_range in (1.0, hidden_max)
    ]
    network = AnalogNetwork.mlp((64, HIDDEN, 10), tiles, read_time=READ_TIME_S)
    return CodesignProblem(network, weights, x_train, y_train, energy_weight=args.energy_weight)


def check_against_grid(problem, args, key) -> dict:
    """Optimize read voltage and ADC range by gradient and on a grid; return both optima and the verdict."""
    axes = {
        "read_voltage": np.geomspace(0.02, 1.0, args.grid),
        "adc_range": np.geomspace(1e-6, 1e-4, args.grid),
    }
    started = time.perf_counter()
    grid = grid_search(problem, axes, key=key, batch_size=args.grid)
    grid_s = time.perf_counter() - started
    started = time.perf_counter()
    result = optimize(problem, START, key=key, steps=args.steps)
    gradient_s = time.perf_counter() - started

    within = {}
    for name, values in axes.items():
        spacing = math.log(values[1] / values[0])
        distance = abs(math.log(float(result.parameters[name]) / grid.best[name]))
        within[name] = {"log_distance": distance, "log_spacing": spacing, "within": distance <= spacing}
    if args.output:
        write_netcdf(grid.dataset, args.output)
    return {
        "grid_best": grid.best, "grid_best_objective": grid.best_objective, "grid_s": grid_s,
        "gradient_optimum": {name: float(value) for name, value in result.parameters.items()},
        "gradient_objective": float(result.final.objective), "gradient_s": gradient_s, "within_spacing": within,
    }


def joint_codesign(problem, args, key) -> dict:
    """Optimize g_max, read voltage, per-layer DAC ranges and the ADC range together."""
    start = {
        "g_max": 25e-6, **START,
        "dac_range": np.array([float(layer.tile.dac.input_range) for layer in problem.network.layers]),
    }
    result = optimize(problem, start, key=key, steps=args.steps)
    before = {name: float(values[0]) for name, values in result.history.items() if np.ndim(values[0]) == 0}
    summary = {
        "start": {name: np.asarray(value).tolist() for name, value in start.items()},
        "optimum": {name: np.asarray(value).tolist() for name, value in result.parameters.items()},
        "before": {name: before[name] for name in ("objective", "loss", "energy", "accuracy")},
        "after": {name: float(getattr(result.final, name)) for name in ("objective", "loss", "energy", "accuracy")},
    }
    if args.wire_resistance > 0:
        logs = {**result.log_parameters, **to_log_space({"word_line": args.wire_resistance})}
        gradient = eqx.filter_jit(jax.grad(lambda logs: problem.objective(logs, key)))(logs)
        # d objective / d ln R is the change of the objective per relative change of the wire resistance.
        summary["d_objective_d_log_wire_resistance"] = float(gradient["word_line"])
    return summary


def write_netcdf(dataset, path: str) -> None:
    """Write `dataset` to `path` through a temporary file in the same folder, then rename it."""
    folder = os.path.dirname(os.path.abspath(path))
    handle, temporary = tempfile.mkstemp(suffix=".nc", dir=folder)
    os.close(handle)
    try:
        dataset.to_netcdf(temporary)
        os.replace(temporary, path)
    except BaseException:
        os.unlink(temporary)
        raise


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="13 x 13 grid, 120 steps, 256 images")
    parser.add_argument("--energy-weight", type=float, default=1e9,
                        help="weight of the energy per image in the objective, 1/J (default 1e9)")
    parser.add_argument("--wire-resistance", type=float, default=0.0,
                        help="wire resistance per cell in ohm for every tile (default 0: ideal wires)")
    parser.add_argument("--output", default=None, help="NetCDF file for the grid of the check")
    args = parser.parse_args(argv)
    if args.energy_weight < 0 or not math.isfinite(args.energy_weight):
        parser.error(f"--energy-weight must be finite and >= 0, got {args.energy_weight}")
    if args.wire_resistance < 0 or not math.isfinite(args.wire_resistance):
        parser.error(f"--wire-resistance must be finite and >= 0 ohm, got {args.wire_resistance}")
    args.grid, args.steps, args.examples = (13, 120, 256) if args.quick else (21, 200, 1348)

    key = jax.random.key(0)
    problem = build_problem(args)
    check = check_against_grid(problem, args, key)
    print(f"Check on {args.grid} x {args.grid} grid (read voltage, ADC range), {args.steps} Adam steps:")
    for name, entry in check["within_spacing"].items():
        verdict = "within" if entry["within"] else "NOT within"
        print(f"  {name}: gradient {check['gradient_optimum'][name]:.4g}, grid best {check['grid_best'][name]:.4g}, "
              f"{verdict} one grid spacing ({entry['log_distance']:.3f} of {entry['log_spacing']:.3f} in ln)")
    print(f"  objective: gradient {check['gradient_objective']:.4f}, grid best {check['grid_best_objective']:.4f} "
          f"(grid {check['grid_s']:.1f} s, gradient {check['gradient_s']:.1f} s)")

    joint = joint_codesign(problem, args, key)
    print("Joint co-design of g_max, read voltage, DAC ranges and ADC range:")
    for name, value in joint["optimum"].items():
        print(f"  {name}: {format_value(joint['start'][name])} -> {format_value(value)} {UNITS[name]}")
    labels = {
        "objective": "objective", "loss": "loss", "energy": "energy per image (J)", "accuracy": "training accuracy",
    }
    for part, label in labels.items():
        print(f"  {label}: {joint['before'][part]:.4g} -> {joint['after'][part]:.4g}")
    # PCM's default g_max is the value its model was fitted at; more than 5 % above it is extrapolation.
    fitted_g_max = PCM().g_max
    if joint["optimum"]["g_max"] > 1.05 * fitted_g_max:
        print(f"  note: the PCM model was fitted at g_max = {fitted_g_max * 1e6:g} uS; "
              "an optimum above it extrapolates the model")
    if "d_objective_d_log_wire_resistance" in joint:
        print(f"  d objective / d ln(wire resistance): {joint['d_objective_d_log_wire_resistance']:.4g}")
    print(json.dumps({"check": check, "joint": joint}, default=float))


if __name__ == "__main__":
    main()
