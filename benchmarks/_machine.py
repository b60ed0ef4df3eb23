"""Description of the machine a benchmark ran on, shared by the scripts in `benchmarks/`."""

from __future__ import annotations

import os
import platform

import jax
import numpy as np

THREAD_VARIABLES = ("XLA_FLAGS", "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


def cpu_model() -> str:
    """Return the CPU model name from /proc/cpuinfo, or platform.processor() where that file is missing."""
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def machine_info(load_key: str = "load_average_1min") -> dict:
    """Return the CPU, core counts, load, thread settings and library versions that the figures depend on.

    `load_key` names the entry of the 1-minute load average, so that a script measuring it again at the
    end can label both readings.
    """
    try:
        usable_cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not available on macOS
        usable_cores = os.cpu_count()
    return {
        "cpu": cpu_model(),
        "machine": platform.machine(),
        "cores": os.cpu_count(),
        "usable_cores": usable_cores,
        load_key: os.getloadavg()[0],
        "thread_settings": {name: os.environ.get(name) for name in THREAD_VARIABLES},
        "python": platform.python_version(),
        "jax": jax.__version__,
        "numpy": np.__version__,
        "backend": jax.default_backend(),
    }
