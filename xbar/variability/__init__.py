"""Parameter sweeps with Monte Carlo seeds, and device-to-device variability.

`sweep` evaluates a pure function over named axes and seeds under jit and vmap and returns an
xarray.Dataset. `write_netcdf`, `summary_table` and `plot_sweep` write, tabulate and plot that Dataset.
`sample_parameters` draws per-device parameters, `StuckAtFaults` and `fault_map` add stuck-at faults, and
`quantize` and `Quantized` restrict conductances to a number of levels. With a `store`, a sweep writes
each finished chunk to disk (`ChunkStore`), resumes after an interruption and can run its chunks on a
dask.distributed cluster (`xbar.variability.distributed`).
"""

from .faults import SA0, SA1, FaultState, StuckAtFaults, apply_faults, fault_map
from .output import plot_sweep, summary_table, write_netcdf
from .quantization import Quantized, quantize
from .sampling import LogNormal, Normal, TruncatedNormal, correlated_normal, sample_parameters
from .store import (
    ChunkLayout, ChunkStore, StoreError, StoreExistsError, StoreMismatchError, fingerprint_text, remove_store,
)
from .sweep import Axis, sweep

__all__ = [
    "SA0", "SA1", "Axis", "ChunkLayout", "ChunkStore", "FaultState", "LogNormal", "Normal", "Quantized", "StuckAtFaults", "TruncatedNormal",
    "apply_faults", "correlated_normal", "fault_map", "plot_sweep", "quantize", "remove_store",
    "sample_parameters", "StoreError", "StoreExistsError", "StoreMismatchError", "fingerprint_text", "summary_table",
    "sweep", "write_netcdf",
]
