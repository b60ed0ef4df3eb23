"""Outputs of a sweep: atomic NetCDF files, plain-text summary tables and PNG plots.

The functions accept the Dataset that `sweep` returns, whose metric dimensions are ordered as the sweep
axes, then "seed", then the metric's own dimensions. They also accept other Datasets in that layout.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import math
import numbers
import os
import secrets
import textwrap
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

from .sweep import SEED_DIM

__all__ = ["MAX_PLOT_PANELS", "plot_sweep", "summary_table", "write_netcdf"]

logger = logging.getLogger(__name__)
logger.addHandler(logging.NullHandler())

MAX_PLOT_PANELS = 12
"""Maximum number of small multiples in one `plot_sweep` figure."""


@contextlib.contextmanager
def _atomic_target(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside `path` and move it onto `path` when the block succeeds.

    The temporary file is removed when the block raises, KeyboardInterrupt included, so that neither a
    partial output nor a stray temporary file is left behind.
    """
    target = Path(path)
    temporary = target.with_name(f".{target.name}.{secrets.token_hex(6)}.tmp")
    try:
        yield temporary
        os.replace(temporary, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        raise


def _default_engine() -> str:
    """Return "h5netcdf" (NetCDF4 format) when it can write, else "scipy" (NetCDF3 format)."""
    try:
        # h5netcdf 1.8.3 installs without h5py, and xarray's h5netcdf backend cannot write without it.
        import h5netcdf  # noqa: F401
        import h5py  # noqa: F401
    except ImportError:
        return "scipy"
    return "h5netcdf"


def _netcdf_attribute(value: Any, where: str, engine: str) -> Any:
    """Return `value` in a form that NetCDF stores, or raise ValueError naming the attribute."""
    # NetCDF has no boolean attribute type. h5netcdf rejects bools and scipy reads them back as int8,
    # so bools are stored as the strings "true" and "false".
    if isinstance(value, (bool, np.bool_)):
        return "true" if value else "false"
    if isinstance(value, (str, bytes, numbers.Number, np.ndarray, np.number)):
        return value
    if isinstance(value, (list, tuple)):
        if engine == "scipy" and any(isinstance(item, str) for item in value):
            raise ValueError(
                f"{where} is a list of strings, which NetCDF3 (engine 'scipy') cannot store; join it into one "
                "string or install h5py and h5netcdf for NetCDF4"
            )
        return value
    raise ValueError(
        f"{where} has type {type(value).__name__}, which NetCDF cannot store; convert it to a string "
        "(e.g. with json.dumps) or a number"
    )


def _prepare_for_netcdf(ds: xr.Dataset, engine: str) -> xr.Dataset:
    prepared = ds.copy(deep=False)
    prepared.attrs = {
        key: _netcdf_attribute(value, f"attribute {key!r} of the Dataset", engine) for key, value in ds.attrs.items()
    }
    for name, variable in ds.variables.items():
        prepared.variables[name].attrs = {
            key: _netcdf_attribute(value, f"attribute {key!r} of variable {name!r}", engine)
            for key, value in variable.attrs.items()
        }
    return prepared


def write_netcdf(ds: xr.Dataset, path: str | os.PathLike, *, engine: str | None = None) -> Path:
    """Write `ds` to a NetCDF file atomically and return the path.

    The Dataset goes to a temporary file in the target's folder, which `os.replace` then moves onto
    `path`. A failed or interrupted write leaves any earlier file at `path` unchanged.

    Args:
        ds: the Dataset to write.
        path: the output file, usually ending in ".nc".
        engine: xarray backend. The default is "h5netcdf" (NetCDF4) when h5netcdf and h5py import,
            else "scipy" (NetCDF3).

    Bool coordinates and data variables round-trip: xarray stores them as int8 with a dtype attribute
    and decodes them back to bool with both default engines (checked with xarray 2026.9). Bool
    attributes become the strings "true" and "false", because NetCDF has no boolean attribute type.

    Raises:
        ValueError: on an attribute that NetCDF cannot store, such as None or a dict.
    """
    if not isinstance(ds, xr.Dataset):
        raise ValueError(f"write_netcdf needs an xarray.Dataset, got {type(ds).__name__}")
    engine = engine or _default_engine()
    prepared = _prepare_for_netcdf(ds, engine)
    with _atomic_target(path) as temporary:
        prepared.to_netcdf(temporary, engine=engine)
    logger.debug("wrote %s with engine %s", path, engine)
    return Path(path)


def _sweep_dims(variable: xr.DataArray) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """Split a metric's dims into sweep axes (before "seed") and the metric's own dims (after "seed")."""
    if SEED_DIM not in variable.dims:
        return tuple(variable.dims), ()
    position = variable.dims.index(SEED_DIM)
    return tuple(variable.dims[:position]), tuple(variable.dims[position + 1 :])


def _with_units(label: str, attrs: dict) -> str:
    units = attrs.get("units")
    return f"{label} [{units}]" if units else label


def _format_value(value: Any) -> str:
    if isinstance(value, (float, np.floating)):
        return f"{value:.6g}"
    return str(value)


def _coordinate_labels(ds: xr.Dataset, dim: str, size: int) -> list[str]:
    if dim in ds.coords:
        return [_format_value(value) for value in ds[dim].values.tolist()]
    return [str(index) for index in range(size)]


def _format_table(header: list[str], rows: list[list[str]]) -> list[str]:
    widths = [max(len(row[k]) for row in [header, *rows]) for k in range(len(header))]
    return ["  ".join(cell.rjust(width) for cell, width in zip(row, widths)).rstrip() for row in [header, *rows]]


def _variable_table(ds: xr.Dataset, name: str, max_rows: int) -> str:
    variable = ds[name]
    if variable.dtype.kind not in "biuf":
        return f"{name}: dtype {variable.dtype} is not numeric, no summary"

    values = variable.astype(np.float64)
    n_seeds = variable.sizes.get(SEED_DIM, 1)
    label = _with_units(name, variable.attrs)
    if n_seeds > 1:
        mean = values.mean(SEED_DIM)
        std = values.std(SEED_DIM, ddof=1)
        title = f"{name}: mean ± standard deviation (ddof=1) over {n_seeds} seeds"
    elif SEED_DIM in values.dims:
        mean = values.mean(SEED_DIM)
        std = None
        title = f"{name}: value of the single seed"
    else:
        mean = values
        std = None
        title = f"{name}: value"

    index_dims = list(mean.dims)
    header = [_with_units(dim, ds[dim].attrs if dim in ds.coords else {}) for dim in index_dims] + [label]
    labels = [_coordinate_labels(ds, dim, mean.sizes[dim]) for dim in index_dims]
    mean_values = mean.values
    std_values = None if std is None else std.values

    rows = []
    n_rows = math.prod(mean_values.shape)
    for index in itertools.islice(np.ndindex(mean_values.shape), max_rows):
        cell = f"{mean_values[index]:.4g}"
        if std_values is not None:
            cell += f" ± {std_values[index]:.2g}"
        rows.append([labels[k][i] for k, i in enumerate(index)] + [cell])

    lines = [title, *_format_table(header, rows)]
    if n_rows > max_rows:
        lines.append(f"... {n_rows - max_rows} more rows")
    return "\n".join(lines)


def summary_table(ds: xr.Dataset, max_rows: int = 40) -> str:
    """Format the mean and spread over seeds of every data variable as plain-text tables.

    Each data variable gets one table with one row per grid point. The columns are the coordinates of
    the sweep axes and of the metric's own dims, then "mean ± std" over the "seed" dimension, where std is
    the sample standard deviation (ddof=1). Headers carry units in brackets. A table longer than
    `max_rows` is cut, and a final line counts the rows left out.
    """
    if not isinstance(ds, xr.Dataset):
        raise ValueError(f"summary_table needs an xarray.Dataset, got {type(ds).__name__}")
    if isinstance(max_rows, bool) or not isinstance(max_rows, numbers.Integral) or max_rows < 1:
        raise ValueError(f"max_rows must be a positive int, got {max_rows!r}")
    if not ds.data_vars:
        return "(no data variables)"
    return "\n\n".join(_variable_table(ds, str(name), int(max_rows)) for name in ds.data_vars)


def _choose_metric(ds: xr.Dataset, metric: str | None) -> str:
    if metric is not None:
        if metric not in ds.data_vars:
            raise ValueError(f"metric {metric!r} is not a data variable; choose one of {list(ds.data_vars)}")
        if ds[metric].dtype.kind not in "biuf":
            dtype = ds[metric].dtype
            raise ValueError(f"metric {metric!r} has dtype {dtype}, which is not numeric; choose a numeric metric")
        _, extra_dims = _sweep_dims(ds[metric])
        if extra_dims:
            raise ValueError(
                f"metric {metric!r} has its own dims {extra_dims}, but plot_sweep plots scalar metrics only; "
                f"select one element first, e.g. ds.isel({extra_dims[0]}=0)"
            )
        return metric
    for name, variable in ds.data_vars.items():
        axis_dims, extra_dims = _sweep_dims(variable)
        if axis_dims and not extra_dims and variable.dtype.kind in "biuf":
            return str(name)
    raise ValueError(
        f"no data variable of {list(ds.data_vars)} is a numeric scalar metric with a sweep axis to plot"
    )


def _is_numeric(values: np.ndarray) -> bool:
    return values.dtype.kind in "iuf"


def _axis_label(ds: xr.Dataset, dim: str) -> str:
    attrs = ds[dim].attrs if dim in ds.coords else {}
    # Long descriptions are wrapped so that they fit under a panel of the grid.
    return textwrap.fill(_with_units(attrs.get("long_name") or dim, attrs), width=45)


def _panel_title(ds: xr.Dataset, dims: Sequence[str], index: tuple[int, ...]) -> str:
    parts = []
    for dim, i in zip(dims, index):
        value = _coordinate_labels(ds, dim, ds.sizes[dim])[i]
        units = ds[dim].attrs.get("units") if dim in ds.coords else None
        # A dimensionless unit ("1") after a value reads as part of the number, so it is left out.
        parts.append(f"{dim} = {value}" + (f" {units}" if units and units != "1" else ""))
    return ", ".join(parts)


def plot_sweep(ds: xr.Dataset, path: str | os.PathLike, metric: str | None = None) -> Path:
    """Plot one scalar metric against the first sweep axis, write the figure atomically and return the path.

    The line is the mean over seeds, and the shaded band spans the minimum to the maximum over seeds.
    The second sweep axis, if any, gives one line per value. Further axes give small multiples, one
    panel per combination of their values, up to MAX_PLOT_PANELS panels. The figure title states how
    many panels were left out. Scalar variables with the metric's units are drawn as dashed
    horizontal reference lines. The x axis is logarithmic when the first axis is numeric and positive
    and its values span more than two decades. Metrics with their own dims are skipped when `metric`
    is None.

    The image format follows the suffix of `path` (PNG when it has none). Needs matplotlib, installed
    with the plot extra: pip install "xbar-sim[plot]".
    """
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError as error:
        raise ImportError('plot_sweep needs matplotlib; install it with: pip install "xbar-sim[plot]"') from error

    if not isinstance(ds, xr.Dataset):
        raise ValueError(f"plot_sweep needs an xarray.Dataset, got {type(ds).__name__}")
    name = _choose_metric(ds, metric)
    variable = ds[name]
    axis_dims, _ = _sweep_dims(variable)
    if not axis_dims:
        raise ValueError(f"metric {name!r} has no sweep axis to plot against; sweep at least one Axis")

    x_dim, line_dim, panel_dims = axis_dims[0], (axis_dims[1] if len(axis_dims) > 1 else None), axis_dims[2:]
    values = variable.astype(np.float64).transpose(*axis_dims, ...)
    n_seeds = variable.sizes.get(SEED_DIM, 1)
    if SEED_DIM in values.dims:
        mean, low, high = (values.mean(SEED_DIM).values, values.min(SEED_DIM).values, values.max(SEED_DIM).values)
    else:
        mean = low = high = values.values

    x = ds[x_dim].values if x_dim in ds.coords else np.arange(ds.sizes[x_dim])
    x_numeric = _is_numeric(x)
    positions = x.astype(np.float64) if x_numeric else np.arange(len(x), dtype=np.float64)
    log_x = bool(x_numeric and np.all(positions > 0) and positions.max() / positions.min() > 100)

    panels = list(itertools.product(*(range(ds.sizes[dim]) for dim in panel_dims)))
    shown_panels = panels[:MAX_PLOT_PANELS]
    columns = min(3, len(shown_panels))
    rows = -(-len(shown_panels) // columns)
    # Scalar variables in the metric's units (a software baseline, say) are drawn as dashed lines.
    references = [
        other for other, data in ds.data_vars.items()
        if other != name and data.ndim == 0 and data.attrs.get("units") == variable.attrs.get("units")
        and np.issubdtype(data.dtype, np.number)
    ]
    # The legend beside the panels takes about 2.5 inches.
    legend_width = 2.5 if line_dim or references else 0.0
    figure = Figure(figsize=(4.8 * columns + legend_width, 3.6 * rows), layout="constrained")
    FigureCanvasAgg(figure)
    line_count = ds.sizes[line_dim] if line_dim else 1
    y_label = textwrap.fill(_with_units(variable.attrs.get("long_name") or name, variable.attrs), width=40)
    for panel_number, panel in enumerate(shown_panels):
        ax = figure.add_subplot(rows, columns, panel_number + 1)
        for line in range(line_count):
            index = (slice(None),) + ((line,) if line_dim else ()) + panel
            label = _panel_title(ds, [line_dim], (line,)) if line_dim else None
            (drawn,) = ax.plot(positions, mean[index], marker="o", markersize=3, label=label)
            if n_seeds > 1:
                ax.fill_between(positions, low[index], high[index], color=drawn.get_color(), alpha=0.2, linewidth=0)
        for reference in references:
            # Wrapped like the axis labels: a long description would squeeze the panel out of the figure.
            reference_label = textwrap.fill(ds[reference].attrs.get("long_name") or reference, width=35)
            ax.axhline(float(ds[reference]), color="black", linestyle="--", linewidth=1, label=reference_label)
        if log_x:
            ax.set_xscale("log")
        if not x_numeric:
            ax.set_xticks(positions, [_format_value(value) for value in x.tolist()])
        ax.set_xlabel(_axis_label(ds, x_dim))
        ax.set_ylabel(y_label)
        if panel_dims:
            ax.set_title(_panel_title(ds, panel_dims, panel), fontsize="medium")
        if (line_dim or references) and panel_number == 0:
            # One legend for the figure, beside the panels, so that it hides no line or band.
            figure.legend(*ax.get_legend_handles_labels(), loc="outside right center", fontsize="small")

    if n_seeds > 1:
        title = f"{name}: line = mean over {n_seeds} seeds, band = min to max over seeds"
    else:
        title = f"{name}: one seed"
    if len(panels) > len(shown_panels):
        title += f"\nshowing the first {len(shown_panels)} of {len(panels)} panels"
    figure.suptitle(textwrap.fill(title, width=48 * columns))

    image_format = Path(path).suffix.lstrip(".").lower() or "png"
    with _atomic_target(path) as temporary:
        figure.savefig(temporary, format=image_format, dpi=120)
    logger.debug("wrote plot of %s to %s", name, path)
    return Path(path)
