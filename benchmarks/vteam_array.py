"""Benchmark the integration of a 1024 x 1024 array of VTEAM devices against a plain NumPy update.

Run from the repository root:

    python benchmarks/vteam_array.py            # 1024 x 1024 devices, 1000 steps
    python benchmarks/vteam_array.py --quick    # 256 x 256 devices, 200 steps

Every device follows the VTEAM model (Kvatinsky et al., IEEE TCAS-II 2015) with its default parameters,
the linear resistance form and the Joglekar window with p = 1, so that each device's rate depends on its
own state. All devices share one waveform, a 0.5 V sine over the whole run sampled at
dt = 10 ps, and start from states drawn uniformly over [w_on, w_off]. The timed JAX call is
`integrate(model, voltage, dt, x0, output="final")` under `jax.jit`: Heun's method with clipping, keeping
only the final state. The NumPy reference runs the same Heun update with the same clipping in float32 on
the same array over the same waveform, once (the JAX time is the median of 3 runs after compilation).
The largest difference between the two final states is printed as a consistency check. The last line of
output is one JSON object with every figure.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time

import jax
import jax.numpy as jnp
import numpy as np

from xbar.devices.compact import VTEAM, integrate

DT_S = 1e-11
AMPLITUDE_V = 0.5


def numpy_rate(model: VTEAM, w, v):
    """Return dw/dt of VTEAM with the Joglekar window (p = 1) for the scalar voltage v (NumPy, float32)."""
    if v > model.v_off:
        drive = np.float32(model.k_off * (v / model.v_off - 1.0) ** model.alpha_off)
    elif v < model.v_on:
        drive = np.float32(model.k_on * (v / model.v_on - 1.0) ** model.alpha_on)
    else:
        return np.zeros_like(w)
    x = (w - np.float32(model.w_on)) / np.float32(model.w_off - model.w_on)
    return drive * (np.float32(1.0) - (np.float32(2.0) * x - np.float32(1.0)) ** 2)


def numpy_integrate(model: VTEAM, voltage, dt, w):
    """Run Heun's method with clipping to [w_on, w_off] over the waveform; return the final state."""
    lower, upper = np.float32(model.w_on), np.float32(model.w_off)
    limit = np.float32(4.0 * (model.w_off - model.w_on) / dt)
    dt = np.float32(dt)
    for v_start, v_end in zip(voltage[:-1], voltage[1:]):
        k1 = np.clip(numpy_rate(model, w, float(v_start)), -limit, limit)
        predicted = np.clip(w + dt * k1, lower, upper)
        k2 = np.clip(numpy_rate(model, predicted, float(v_end)), -limit, limit)
        w = np.clip(w + np.float32(0.5) * dt * (k1 + k2), lower, upper)
    return w


def time_call(function, repeats):
    """Return the median wall time in s of `repeats` calls of `function`."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="use 256 x 256 devices and 200 steps")
    args = parser.parse_args()

    size, steps = (256, 200) if args.quick else (1024, 1000)
    model = VTEAM(window="joglekar")
    t = np.arange(steps + 1) * DT_S
    voltage = (AMPLITUDE_V * np.sin(2 * np.pi * t / (steps * DT_S))).astype(np.float32)
    x0 = jax.random.uniform(jax.random.key(0), (size, size), jnp.float32, model.w_on, model.w_off)

    run = jax.jit(lambda v, x: integrate(model, v, DT_S, x, output="final")[1])
    voltage_jax = jnp.asarray(voltage)
    run(voltage_jax, x0).block_until_ready()
    jax_seconds = time_call(lambda: run(voltage_jax, x0).block_until_ready(), 3)
    final_jax = np.asarray(run(voltage_jax, x0))

    start = time.perf_counter()
    final_numpy = numpy_integrate(model, voltage, DT_S, np.asarray(x0))
    numpy_seconds = time.perf_counter() - start
    difference = float(np.max(np.abs(final_jax - final_numpy)))

    devices = size * size
    jax_rate = devices * steps / jax_seconds
    numpy_rate_value = devices * steps / numpy_seconds
    figures = {
        "benchmark": "vteam_array",
        "devices": devices,
        "steps": steps,
        "jax_seconds": jax_seconds,
        "numpy_seconds": numpy_seconds,
        "jax_device_steps_per_s": jax_rate,
        "numpy_device_steps_per_s": numpy_rate_value,
        "speedup": jax_rate / numpy_rate_value,
        "max_state_difference_m": difference,
        "jax": jax.__version__,
        "numpy": np.__version__,
        "backend": jax.default_backend(),
        "machine": platform.machine(),
    }

    print(f"VTEAM array {size} x {size}, Heun's method, dt = {DT_S:g} s, final state only")
    print(f"{'implementation':<16}{'steps':>8}{'time (s)':>12}{'device-steps/s':>18}")
    print(f"{'jax (jit)':<16}{steps:>8}{jax_seconds:>12.4f}{jax_rate:>18.3e}")
    print(f"{'numpy':<16}{steps:>8}{numpy_seconds:>12.4f}{numpy_rate_value:>18.3e}")
    print(f"speedup of jax over numpy: {figures['speedup']:.1f}x")
    print(f"max final-state difference: {difference:.3g} m (w_off = {model.w_off:g} m)")
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
