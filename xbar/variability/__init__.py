"""Parameter sweeps over device and circuit parameters with Monte Carlo seeds, and their outputs.

`sweep` evaluates a pure function over named axes and seeds under jit and vmap and returns an
xarray.Dataset. `write_netcdf`, `summary_table` and `plot_sweep` write, tabulate and plot that Dataset.
"""

from .output import plot_sweep, summary_table, write_netcdf
from .sweep import Axis, sweep

__all__ = ["Axis", "plot_sweep", "summary_table", "sweep", "write_netcdf"]
from .faults import SA0, SA1, FaultState, StuckAtFaults, apply_faults, fault_map  # noqa: E402
from .quantization import Quantized, quantize  # noqa: E402
from .sampling import LogNormal, Normal, TruncatedNormal, correlated_normal, sample_parameters  # noqa: E402
__all__ += ["SA0", "SA1", "FaultState", "StuckAtFaults", "apply_faults", "fault_map", "Quantized", "quantize"]
__all__ += ["LogNormal", "Normal", "TruncatedNormal", "correlated_normal", "sample_parameters"]
