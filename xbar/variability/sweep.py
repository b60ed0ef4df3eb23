"""Parameter sweeps with Monte Carlo seeds, evaluated under jit and vmap and returned as an xarray.Dataset.

A sweep evaluates a pure simulation function at every point of the Cartesian product of named parameter
values and Monte Carlo seeds. Axes whose values keep every array shape (a conductance, a time, a noise
amplitude) are vectorized: their values reach the function as traced float32 scalars, and one compiled
`jit(vmap(...))` evaluates many grid points at once. Axes that change shapes or Python control flow (array
size, device model, number of ADC bits, a boolean switch) are looped in Python, and each combination of
their values is compiled once.

The points of each looped combination are evaluated in chunks of a fixed size. With a store, every
finished chunk is written to disk at once (`xbar.variability.store`), so that a killed sweep resumes
where it stopped, and the chunks can run as tasks on a dask.distributed cluster
(`xbar.variability.distributed`).
"""

from __future__ import annotations

import dataclasses
import itertools
import logging
import math
import numbers
import os
import secrets
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import xarray as xr

from .store import ChunkLayout, ChunkStore

__all__ = ["Axis", "MAX_CHUNK_BYTES", "SEED_DIM", "sweep"]

logger = logging.getLogger(__name__)
logger.addHandler(logging.NullHandler())

SEED_DIM = "seed"
"""Name of the Monte Carlo seed dimension in every sweep Dataset."""

MAX_CHUNK_BYTES = 256 * 2**20
"""Default upper bound on the bytes that the metrics of one chunk occupy (256 MiB)."""

# jax.random.key folds a Python int seed into 32 bits when 64-bit mode is off, so that key(2**32) equals
# key(0) (checked with jax 0.10.2). Seeds stay below 2**32 to keep every seed distinct.
_SEED_LIMIT = 2**32

_NOTE_ON_TRACERS = (
    "Vectorized axes reach fn as traced float32 scalars, so fn cannot use their values in Python control "
    "flow or as shapes. Pass vectorized=False for an axis that changes shapes or structure."
)


@dataclasses.dataclass(frozen=True)
class Axis:
    """One named dimension of a sweep.

    Attributes:
        name: dimension name in the Dataset, a valid Python identifier other than "seed".
        values: coordinate values (numbers, bools or strings, or None on a looped axis), non-empty and
            without duplicates. They are stored as a tuple of plain Python objects, so numpy scalars
            become Python scalars.
        vectorized: True passes each numeric value to fn as a traced float32 scalar under jit and vmap.
            False loops over the values in Python and passes each one as the plain Python object, which
            is what an axis that changes shapes or structure needs.
        units: stored in the coordinate's attrs["units"] (SI units, e.g. "S", "s", "V").
        description: stored in the coordinate's attrs["long_name"].

    Raises:
        ValueError: on an invalid name, empty or duplicate values, unsupported value types, or values
            that a vectorized axis cannot pass as distinct float32 numbers.
    """

    name: str
    values: Sequence
    vectorized: bool = True
    units: str = ""
    description: str = ""

    def __post_init__(self) -> None:
        _check_axis_name(self.name)
        if not isinstance(self.vectorized, bool):
            raise ValueError(f"Axis {self.name!r}: vectorized must be True or False, got {self.vectorized!r}")
        for field in ("units", "description"):
            if not isinstance(getattr(self, field), str):
                raise ValueError(f"Axis {self.name!r}: {field} must be a string, got {getattr(self, field)!r}")

        values = _plain_values(self.name, self.values)
        object.__setattr__(self, "values", values)
        coordinate = _coordinate_array(values)
        _check_unique(self.name, values, coordinate)
        if self.vectorized:
            _check_vectorizable(self.name, values)

    @property
    def coordinate(self) -> np.ndarray:
        """Coordinate array of the axis in the Dataset; values of mixed types become strings."""
        return _coordinate_array(self.values)


def _check_axis_name(name: Any) -> None:
    if not isinstance(name, str) or not name.isidentifier():
        raise ValueError(f"Axis name must be a valid Python identifier such as 'g_max', got {name!r}")
    if name == SEED_DIM:
        raise ValueError(
            f"Axis name {SEED_DIM!r} is reserved for the Monte Carlo dimension; pass seeds=... to sweep() "
            "instead, or rename the axis"
        )


def _plain_values(name: str, values: Any) -> tuple:
    """Convert axis values to a tuple of Python scalars, strings or None."""
    if isinstance(values, (str, bytes)):
        raise ValueError(f"Axis {name!r}: values must be a sequence, got the string {values!r}; wrap it: [{values!r}]")
    if isinstance(values, (set, frozenset, Mapping)):
        raise ValueError(f"Axis {name!r}: values must be an ordered sequence, got a {type(values).__name__}")
    if isinstance(values, (np.ndarray, jax.Array)):
        values = np.asarray(values)
        if values.ndim != 1:
            raise ValueError(f"Axis {name!r}: values must be one-dimensional, got an array of shape {values.shape}")
        values = values.tolist()
    try:
        items = list(values)
    except TypeError:
        raise ValueError(f"Axis {name!r}: values must be a sequence such as [1.0, 2.0], got {values!r}") from None
    if not items:
        raise ValueError(f"Axis {name!r} has no values; pass at least one value")

    plain = []
    for value in items:
        if isinstance(value, np.generic):
            value = value.item()
        if isinstance(value, float) and math.isnan(value):
            raise ValueError(f"Axis {name!r} contains NaN, which cannot label a coordinate; remove it")
        if value is not None and not isinstance(value, (bool, numbers.Real, str)):
            raise ValueError(
                f"Axis {name!r}: value {value!r} of type {type(value).__name__} is not supported; use numbers, "
                "bools or strings, and map strings to objects inside fn"
            )
        plain.append(value)
    return tuple(plain)


def _value_kind(value: Any) -> str:
    if value is None:
        return "none"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, str):
        return "str"
    return "number"


def _coordinate_array(values: Sequence) -> np.ndarray:
    kinds = {_value_kind(value) for value in values}
    if kinds == {"bool"}:
        return np.array(values, dtype=bool)
    if kinds == {"number"}:
        if all(isinstance(value, numbers.Integral) for value in values):
            try:
                return np.array(values, dtype=np.int64)
            except OverflowError:
                pass
        return np.array(values, dtype=np.float64)
    if kinds == {"str"}:
        return np.array(values, dtype=str)
    # Mixed types, e.g. [4, 6, 8, "ideal"], share one string coordinate so that NetCDF can store it.
    return np.array([str(value) for value in values], dtype=str)


def _check_unique(name: str, values: Sequence, coordinate: np.ndarray) -> None:
    unique, counts = np.unique(coordinate, return_counts=True)
    if len(unique) < len(coordinate):
        repeated = unique[counts > 1][0]
        duplicates = [value for value, label in zip(values, coordinate) if label == repeated]
        raise ValueError(
            f"Axis {name!r} has duplicate values {duplicates} (coordinate {repeated!r}); each value must appear once"
        )


def _check_vectorizable(name: str, values: Sequence) -> None:
    kinds = {_value_kind(value) for value in values}
    if kinds != {"number"}:
        bad = next(value for value in values if _value_kind(value) != "number")
        raise ValueError(
            f"Axis {name!r} is vectorized but contains the non-numeric value {bad!r}; vectorized axes pass "
            "float32 numbers, so pass vectorized=False to loop over bools, strings or None"
        )
    exact = np.array(values, dtype=np.float64)
    with np.errstate(over="ignore"):
        single = exact.astype(np.float32)
    overflow = np.isfinite(exact) & ~np.isfinite(single)
    if overflow.any():
        raise ValueError(
            f"Axis {name!r}: value {exact[overflow][0]} overflows float32, the dtype that vectorized axes pass "
            "to fn; rescale the axis (e.g. to other SI prefixes inside fn) or pass vectorized=False"
        )
    order = np.argsort(single, kind="stable")
    equal_neighbours = np.flatnonzero(single[order][1:] == single[order][:-1])
    if equal_neighbours.size:
        first = equal_neighbours[0]
        collided = exact[order[first : first + 2]].tolist()
        raise ValueError(
            f"Axis {name!r}: values {collided} are equal in float32, the dtype that vectorized axes pass to "
            "fn; space them further apart or pass vectorized=False"
        )


def _check_axes(axes: Any) -> list[Axis]:
    if isinstance(axes, Axis):
        axes = [axes]
    try:
        axes = list(axes)
    except TypeError:
        raise ValueError(f"axes must be a sequence of Axis objects, got {axes!r}") from None
    for axis in axes:
        if not isinstance(axis, Axis):
            raise ValueError(f"axes must contain Axis objects, got {axis!r}; build one with Axis(name, values)")
    names = [axis.name for axis in axes]
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise ValueError(f"Axis names must be unique, but {repeated} appear more than once; rename or merge them")
    return axes


def _check_seeds(seeds: Any) -> list[int]:
    if isinstance(seeds, bool):
        raise ValueError(f"seeds must be a positive int or a sequence of ints, got {seeds!r}")
    if isinstance(seeds, numbers.Integral):
        if seeds < 1:
            raise ValueError(f"seeds = {seeds} must be at least 1 (the number of Monte Carlo seeds 0..n-1)")
        if seeds > _SEED_LIMIT:
            raise ValueError(f"seeds = {seeds} exceeds 2**32; seeds 0..n-1 must stay below 2**32, so pass fewer")
        return list(range(int(seeds)))
    if isinstance(seeds, (str, bytes, Mapping)):
        raise ValueError(f"seeds must be a positive int or a sequence of ints, got {seeds!r}")
    if isinstance(seeds, (np.ndarray, jax.Array)):
        seeds = np.asarray(seeds).ravel().tolist()
    try:
        seed_list = list(seeds)
    except TypeError:
        raise ValueError(f"seeds must be a positive int or a sequence of ints, got {seeds!r}") from None
    if not seed_list:
        raise ValueError("seeds is an empty sequence; pass at least one seed, e.g. seeds=[0]")
    for seed in seed_list:
        if isinstance(seed, bool) or not isinstance(seed, numbers.Integral):
            raise ValueError(f"seed {seed!r} is not an integer; seeds must be ints in [0, 2**32)")
        if not 0 <= seed < _SEED_LIMIT:
            raise ValueError(f"seed {seed} is out of range; seeds must be ints in [0, 2**32)")
    seed_list = [int(seed) for seed in seed_list]
    if len(set(seed_list)) < len(seed_list):
        repeated = sorted({seed for seed in seed_list if seed_list.count(seed) > 1})
        raise ValueError(f"seeds {repeated} appear more than once; each seed must appear once")
    return seed_list


def _is_positive_int(value: Any) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool) and value >= 1


def _check_optional_mapping(name: str, value: Any) -> dict:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise ValueError(f"{name} must be a dict, got {type(value).__name__}: {value!r}")
    return dict(value)


def _stack_seed_data(seed_data: Callable | None, seeds: list[int]) -> Any:
    """Call seed_data once per seed, outside jit, and stack every leaf along a new leading seed axis."""
    if seed_data is None:
        return None
    if not callable(seed_data):
        raise ValueError(f"seed_data must be a function seed -> pytree of arrays, or None; got {seed_data!r}")

    per_seed = [seed_data(seed) for seed in seeds]
    first_leaves, first_tree = jax.tree_util.tree_flatten(per_seed[0])
    first_shapes = [np.shape(leaf) for leaf in first_leaves]
    columns: list[list] = [[] for _ in first_leaves]
    for seed, data in zip(seeds, per_seed):
        leaves, tree = jax.tree_util.tree_flatten(data)
        if tree != first_tree:
            raise ValueError(
                f"seed_data returned a different structure for seed {seed} ({tree}) than for seed {seeds[0]} "
                f"({first_tree}); it must return the same pytree for every seed so that the data can be stacked"
            )
        shapes = [np.shape(leaf) for leaf in leaves]
        if shapes != first_shapes:
            raise ValueError(
                f"seed_data returned leaves of shapes {shapes} for seed {seed} but {first_shapes} for seed "
                f"{seeds[0]}; the shapes must match across seeds so that the data can be stacked"
            )
        for column, leaf in zip(columns, leaves):
            column.append(leaf)

    stacked = []
    for column in columns:
        try:
            stacked.append(jnp.stack([jnp.asarray(leaf) for leaf in column]))
        except TypeError as error:
            message = f"seed_data must return a pytree of arrays; a leaf could not be stacked: {error}"
            raise ValueError(message) from error
    return jax.tree_util.tree_unflatten(first_tree, stacked)


def _point_function(fn: Callable, axes: list[Axis], looped: Mapping[str, Any]) -> Callable:
    """Wrap fn as a function of one grid point: the vectorized values and the index of the seed."""

    def evaluate(vectorized: Mapping[str, jax.Array], seed_index: jax.Array, keys: jax.Array, data: Any) -> Any:
        params = {axis.name: vectorized[axis.name] if axis.vectorized else looped[axis.name] for axis in axes}
        seed_data = None if data is None else jax.tree_util.tree_map(lambda leaf: leaf[seed_index], data)
        return fn(params, keys[seed_index], seed_data)

    return evaluate


@dataclasses.dataclass(frozen=True)
class _MetricSpec:
    shape: tuple[int, ...]
    dtype: np.dtype


def _describe(looped: Mapping[str, Any]) -> str:
    return ", ".join(f"{name}={value!r}" for name, value in looped.items()) or "no looped axes"


def _metric_specs(evaluate: Callable, vectorized_names: list[str], keys: jax.Array, data: Any, looped: Mapping) -> dict:
    """Trace one grid point abstractly and return the shape and dtype of every metric."""
    scalar = jax.ShapeDtypeStruct((), jnp.float32)
    vectorized = {name: scalar for name in vectorized_names}
    seed_index = jax.ShapeDtypeStruct((), jnp.int32)
    # jax sorts dict keys when it flattens the output, so the order of fn's dict is recorded while tracing.
    names_in_order: list = []

    def evaluate_and_record(*args: Any) -> Any:
        out = evaluate(*args)
        if isinstance(out, Mapping):
            names_in_order.extend(out)
        return out

    try:
        out = jax.eval_shape(evaluate_and_record, vectorized, seed_index, keys, data)
    except (jax.errors.ConcretizationTypeError, jax.errors.TracerArrayConversionError) as error:
        error.add_note(_NOTE_ON_TRACERS)
        raise

    where = f"at {_describe(looped)}"
    if not isinstance(out, Mapping):
        raise ValueError(
            f"fn must return a dict that maps metric names to arrays, got {type(out).__name__} {where}; "
            "wrap the result, e.g. return {'current': i}"
        )
    if not out:
        raise ValueError(f"fn returned an empty dict {where}; return at least one metric")
    specs = {}
    for name in names_in_order:
        value = out[name]
        if not isinstance(name, str) or not name:
            raise ValueError(f"fn returned the metric name {name!r} {where}; metric names must be non-empty strings")
        if not isinstance(value, jax.ShapeDtypeStruct):
            raise ValueError(
                f"metric {name!r} {where} is a {type(value).__name__}, not one array; return each array as its "
                "own metric"
            )
        if jax.dtypes.issubdtype(value.dtype, jax.dtypes.prng_key):
            raise ValueError(f"metric {name!r} {where} is a PRNG key; return jax.random.key_data(key) instead")
        specs[name] = _MetricSpec(tuple(value.shape), np.dtype(value.dtype))
    return specs


def _merge_specs(all_specs: list[dict], combinations: list[dict]) -> dict[str, _MetricSpec]:
    """Check that every looped combination returns the same metrics and shapes, and promote their dtypes."""
    merged = dict(all_specs[0])
    for specs, looped in zip(all_specs[1:], combinations[1:]):
        if specs.keys() != merged.keys():
            raise ValueError(
                f"fn returned metrics {sorted(specs)} at {_describe(looped)} but {sorted(merged)} at "
                f"{_describe(combinations[0])}; every looped combination must return the same metric names"
            )
        for name, spec in specs.items():
            if spec.shape != merged[name].shape:
                raise ValueError(
                    f"metric {name!r} has shape {spec.shape} at {_describe(looped)} but {merged[name].shape} at "
                    f"{_describe(combinations[0])}; metrics must keep one shape across looped axes, so pad them "
                    "or return each shape as its own metric"
                )
            merged[name] = _MetricSpec(spec.shape, np.result_type(merged[name].dtype, spec.dtype))
    return merged


def _metric_dim_names(
    specs: Mapping[str, _MetricSpec], metric_dims: Mapping, axis_names: list[str]
) -> dict[str, tuple[str, ...]]:
    reserved = set(axis_names) | {SEED_DIM}
    unknown = sorted(set(metric_dims) - set(specs), key=str)
    if unknown:
        raise ValueError(f"metric_dims names unknown metrics {unknown}; fn returns {sorted(specs)}")

    dims: dict[str, tuple[str, ...]] = {}
    sizes: dict[str, tuple[int, str]] = {}
    for name, spec in specs.items():
        if name in reserved:
            raise ValueError(f"metric {name!r} has the name of a dimension; rename the metric or the axis")
        requested = metric_dims.get(name)
        if requested is None:
            names = tuple(f"{name}_dim{k}" for k in range(len(spec.shape)))
        else:
            names = (requested,) if isinstance(requested, str) else tuple(requested)
            if len(names) != len(spec.shape) or not all(isinstance(dim, str) and dim for dim in names):
                raise ValueError(
                    f"metric_dims[{name!r}] = {requested!r} must list {len(spec.shape)} dimension names for the "
                    f"metric's shape {spec.shape}"
                )
            if len(set(names)) < len(names):
                raise ValueError(f"metric_dims[{name!r}] = {requested!r} repeats a dimension name; use distinct names")
        for dim, size in zip(names, spec.shape):
            if dim in reserved:
                raise ValueError(
                    f"dimension {dim!r} of metric {name!r} has the name of a sweep dimension; rename it in metric_dims"
                )
            if dim in sizes and sizes[dim][0] != size:
                raise ValueError(
                    f"dimension {dim!r} has size {size} in metric {name!r} but {sizes[dim][0]} in metric "
                    f"{sizes[dim][1]!r}; give the dimensions different names in metric_dims"
                )
            sizes[dim] = (size, name)
        dims[name] = names
    return dims


def _check_metric_strings(option: str, mapping: Mapping, specs: Mapping) -> None:
    for name, text in mapping.items():
        if name not in specs:
            raise ValueError(f"{option} names the unknown metric {name!r}; fn returns {sorted(specs)}")
        if not isinstance(text, str):
            raise ValueError(f"{option}[{name!r}] must be a string, got {text!r}")



def _default_chunk_size(specs: Mapping[str, _MetricSpec], n_points: int, max_chunk_bytes: int) -> int:
    bytes_per_point = sum(math.prod(spec.shape) * spec.dtype.itemsize for spec in specs.values())
    return max(1, min(n_points, max_chunk_bytes // max(1, bytes_per_point)))


@dataclasses.dataclass(frozen=True)
class _ChunkOutput:
    arrays: dict[str, np.ndarray]  # metric -> (chunk points, *metric shape)
    compute_s: float  # the jitted call until its outputs are ready, compilation included when `compiled`
    compiled: bool  # True when this call compiled the combination's function


class _SweepPlan:
    """The function and inputs that evaluate any chunk of one sweep: fn, the grid, the seeds and their data.

    A plan is picklable (with cloudpickle when fn is a closure), so that a distributed sweep sends it to
    each worker once. Each process compiles the function of a looped combination once, on the first
    chunk of that combination that it evaluates, and keeps it in the plan.
    """

    def __init__(
        self,
        fn: Callable,
        axes: list[Axis],
        combinations: list[dict[str, Any]],
        vectorized_values: dict[str, np.ndarray],
        seeds: list[int],
        data: Any,
        grid_shape: tuple[int, ...],
        specs: dict[str, _MetricSpec],
        layout: ChunkLayout,
    ) -> None:
        self.fn = fn
        self.axes = axes
        self.combinations = combinations
        self.vectorized_values = vectorized_values
        self.seeds = seeds
        self.data = data
        self.grid_shape = grid_shape
        self.specs = specs
        self.layout = layout
        # Identifies this plan in the caches of distributed workers; unique per sweep call.
        self.token = secrets.token_hex(16)
        self._init_caches()

    def _init_caches(self) -> None:
        self._seed_keys_cache: jax.Array | None = None
        self._compiled: dict[int, Callable] = {}
        self._lock = threading.Lock()

    def __getstate__(self) -> dict[str, Any]:
        state = {name: value for name, value in self.__dict__.items() if name not in ("_seed_keys_cache", "_compiled", "_lock")}
        # Host arrays travel; each process moves them to its own device once, in __setstate__.
        state["data"] = jax.tree_util.tree_map(np.asarray, self.data)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self.data = jax.tree_util.tree_map(jnp.asarray, self.data)
        self._init_caches()

    def _seed_keys(self) -> jax.Array:
        if self._seed_keys_cache is None:
            self._seed_keys_cache = jax.vmap(jax.random.key)(jnp.asarray(self.seeds, dtype=jnp.uint32))
        return self._seed_keys_cache

    def _batched(self, combination: int) -> tuple[Callable, bool]:
        with self._lock:
            batched = self._compiled.get(combination)
            if batched is not None:
                return batched, False
            evaluate = _point_function(self.fn, self.axes, self.combinations[combination])
            batched = jax.jit(jax.vmap(evaluate, in_axes=(0, 0, None, None)))
            self._compiled[combination] = batched
            return batched, True

    def evaluate_chunk(self, index: int) -> _ChunkOutput:
        """Evaluate the points of chunk `index`, padded to the compiled batch size."""
        combination, start, stop = self.layout.bounds(index)
        batched, compiled = self._batched(combination)
        keys = self._seed_keys()
        # Padding repeats the last point, so that every call has the compiled batch size.
        flat = np.minimum(np.arange(start, start + self.layout.chunk_size), self.layout.points - 1)
        grid_index = np.unravel_index(flat, self.grid_shape)
        vectorized = {name: values[grid_index[k]] for k, (name, values) in enumerate(self.vectorized_values.items())}
        seed_index = grid_index[-1].astype(np.int32)

        started = time.perf_counter()
        out = jax.block_until_ready(batched(vectorized, seed_index, keys, self.data))
        compute_s = time.perf_counter() - started
        arrays = {
            name: np.asarray(out[name])[: stop - start].astype(spec.dtype, copy=False) for name, spec in self.specs.items()
        }
        return _ChunkOutput(arrays, compute_s, compiled)

    def describe(self, index: int) -> str:
        combination, start, stop = self.layout.bounds(index)
        return f"{_describe(self.combinations[combination])}, points {start}-{stop - 1}"


def _format_duration(seconds: float) -> str:
    if not math.isfinite(seconds):
        return "unknown time"
    seconds = round(seconds)
    if seconds < 120:
        return f"{seconds} s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 120:
        return f"{minutes} min {seconds:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


class _Progress:
    """Count finished points, call the progress callback and log one line per finished chunk.

    Each chunk's log record also carries its timings as a dict in `record.sweep_chunk`, which
    `benchmarks/sweep_scale.py` reads.
    """

    def __init__(self, layout: ChunkLayout, progress: Callable[[int, int], None] | None, resumed_points: int) -> None:
        self.layout = layout
        self.progress = progress
        self.resumed = resumed_points
        self.done = resumed_points
        self.started = time.perf_counter()
        if progress is not None:
            progress(self.done, layout.total_points)

    def chunk_finished(self, index: int, where: str, compute_s: float, seconds: float, compiled: bool, worker: str = "") -> None:
        _, start, stop = self.layout.bounds(index)
        self.done += stop - start
        elapsed = time.perf_counter() - self.started
        rate = (self.done - self.resumed) / elapsed if elapsed > 0 else float("nan")
        left = (self.layout.total_points - self.done) / rate if rate > 0 else float("nan")
        record = {
            "index": index, "points": stop - start, "compute_s": compute_s, "seconds": seconds,
            "compiled": compiled, "worker": worker, "elapsed_s": elapsed,
        }
        details = f"{seconds:.2f} s"
        if compiled:
            details += " with compilation"
        if worker:
            details += f" on {worker}"
        logger.info(
            "sweep: chunk %d finished (%s; %s): %d of %d points, %.3g points/s, about %s left",
            index, where, details, self.done, self.layout.total_points, rate, _format_duration(left),
            extra={"sweep_chunk": record},
        )
        if self.progress is not None:
            self.progress(self.done, self.layout.total_points)


class _Results:
    """The metrics of every point, filled chunk by chunk; (combination, point, *metric shape) per metric."""

    def __init__(self, layout: ChunkLayout, specs: Mapping[str, _MetricSpec]) -> None:
        self.layout = layout
        self.arrays = {
            name: np.empty((layout.combinations, layout.points) + spec.shape, dtype=spec.dtype)
            for name, spec in specs.items()
        }

    def insert(self, index: int, arrays: Mapping[str, np.ndarray]) -> None:
        combination, start, stop = self.layout.bounds(index)
        for name, values in arrays.items():
            self.arrays[name][combination, start:stop] = values


def _check_store_options(store: Any, resume: Any, fingerprint: Any, scheduler: Any) -> None:
    if not isinstance(resume, bool):
        raise ValueError(f"resume must be True or False, got {resume!r}")
    if store is None:
        if resume:
            raise ValueError("resume=True needs store=..., the folder of finished chunks to resume from")
        if scheduler is not None:
            raise ValueError(
                "a distributed sweep needs store=..., a folder on a file system that every worker shares, "
                "because the workers write their chunks there"
            )
        return
    if not isinstance(store, (str, os.PathLike)):
        raise ValueError(f"store must be a folder path or None, got {type(store).__name__}: {store!r}")
    if not isinstance(fingerprint, str) or not fingerprint:
        raise ValueError(
            "a sweep with a store needs fingerprint=..., a non-empty string that changes whenever fn or its "
            "settings change (for example a hash of the configuration), so that a changed sweep never resumes "
            f"from old chunks; got {fingerprint!r}"
        )


def _store_identity(fingerprint: str, axes: list[Axis], seeds: list[int]) -> dict[str, Any]:
    from .. import __version__

    return {
        "fingerprint": fingerprint,
        "axes": [{"name": axis.name, "values": list(axis.values), "vectorized": axis.vectorized} for axis in axes],
        "seeds": list(seeds),
        "xbar_version": __version__,
        "jax_version": jax.__version__,
    }


def _load_finished(store: ChunkStore, results: _Results) -> list[int]:
    """Load the valid chunk files of a resumed store into `results`; return the indices still to compute."""
    finished = set()
    for index in store.finished():
        arrays = store.read(index)
        if arrays is not None:
            results.insert(index, arrays)
            finished.add(index)
    if finished:
        logger.info("resuming from sweep store %s: %d of %d chunks already finished", store.path, len(finished), store.layout.n_chunks)
    return [index for index in range(store.layout.n_chunks) if index not in finished]


def _run_in_process(
    plan: _SweepPlan, pending: list[int], store: ChunkStore | None, results: _Results, tracker: _Progress
) -> None:
    for index in pending:
        started = time.perf_counter()
        output = plan.evaluate_chunk(index)
        if store is not None:
            store.write(index, output.arrays)
        results.insert(index, output.arrays)
        tracker.chunk_finished(index, plan.describe(index), output.compute_s, time.perf_counter() - started, output.compiled)


def sweep(
    fn: Callable[[dict[str, Any], jax.Array, Any], Mapping[str, jax.Array]],
    axes: Sequence[Axis],
    *,
    seeds: int | Sequence[int] = 1,
    seed_data: Callable[[int], Any] | None = None,
    chunk_size: int | None = None,
    metric_units: Mapping[str, str] | None = None,
    metric_dims: Mapping[str, Sequence[str]] | None = None,
    metric_descriptions: Mapping[str, str] | None = None,
    attrs: Mapping[str, Any] | None = None,
    progress: Callable[[int, int], None] | None = None,
    max_chunk_bytes: int = MAX_CHUNK_BYTES,
    store: str | os.PathLike | None = None,
    resume: bool = False,
    fingerprint: str | None = None,
    scheduler: Any = None,
) -> xr.Dataset:
    """Evaluate `fn` over the product of the axes' values and the seeds, and collect the metrics.

    Args:
        fn: pure function `fn(params, key, data) -> {metric_name: array}`. `params` maps every axis name to
            its value at one grid point: a traced float32 scalar on a vectorized axis, the plain Python value
            on a looped axis. `key` is the PRNG key of the seed, and `data` is `seed_data(seed)` for that
            seed, or None when seed_data is None. Each metric is a scalar or an array whose shape does not
            depend on the grid point.
        axes: the sweep dimensions, in the order of the output dimensions.
        seeds: number n of Monte Carlo seeds (seeds 0..n-1), or a sequence of distinct ints in [0, 2**32).
            The key of seed s is `jax.random.key(s)` at every grid point. These common random numbers
            simulate the same chip at every parameter value, so differences between grid points are not
            blurred by chip-to-chip spread. Derive independent streams inside fn with jax.random.split or
            jax.random.fold_in.
        seed_data: optional function `seed -> pytree of arrays`, such as a per-chip weight matrix or data
            set. It runs eagerly outside jit, once per seed and not once per grid point. The results must
            share one structure and shape and are stacked along the seed axis.
        chunk_size: grid points (including seeds) per compiled call. The default evaluates all points of a
            looped combination in one call unless the metrics of one call would exceed `max_chunk_bytes`.
            The last chunk of each looped combination is padded by repeating its last point, so one
            compiled function serves every chunk of the combination.
        metric_units: units of each metric, stored in the data variable's attrs["units"].
        metric_dims: names of each metric's own dimensions; the default is f"{name}_dim{k}".
        metric_descriptions: stored in the data variable's attrs["long_name"].
        attrs: global attributes of the Dataset.
        progress: called as `progress(done_points, total_points)` once before the first chunk runs, with
            the points already finished (0, or those loaded from a resumed store), and then after each
            chunk. Points count grid points times seeds over all looped combinations.
        max_chunk_bytes: upper bound on the output bytes of one chunk when chunk_size is None.
        store: folder in which each finished chunk is written atomically (see `xbar.variability.store`),
            created when missing. It is kept after the sweep; delete it once the result is saved.
        resume: continue the sweep in an existing `store`: its finished chunks are loaded, not computed,
            and its chunk layout replaces `chunk_size`. Without resume an existing store raises
            `StoreExistsError`, so that no finished work is overwritten.
        fingerprint: required with `store`: a string that changes whenever fn or its settings change,
            such as a hash of the study's configuration text. A store written with another fingerprint,
            other axes, seeds or metrics, or another xbar or jax version raises `StoreMismatchError`.
        scheduler: run the chunks as tasks on a dask.distributed cluster instead of in this process (needs
            the `distributed` extra and `store` on a file system that every worker shares): a scheduler
            address such as "tcp://10.0.0.5:8786", the path of a scheduler file (JSON), "local:N" for a
            LocalCluster of N worker processes on this machine, or a `distributed.Client`.
            See `xbar.variability.distributed`.

    Returns:
        Dataset with one data variable per metric. Its dims are the axis names in the given order, then
        "seed", then the metric's own dims. Coordinates carry attrs["units"] and attrs["long_name"] where
        the Axis gives them. Coordinates of mixed types, e.g. [4, 6, 8, "ideal"], become strings.

    Raises:
        ValueError: on invalid axes, seeds, options or metrics, before any chunk runs.
        StoreError: on a store that this sweep cannot use (a subclass of ValueError).

    Every looped combination is traced with jax.eval_shape before the first chunk runs, so that metric
    names and shapes are checked for all combinations up front. Then each combination is compiled once
    per process.

    The key of every point comes from its seed alone, never from the chunk that evaluates it. A resumed
    or distributed sweep therefore evaluates each point with the same key and the same compiled batch
    size as an uninterrupted one, and gives equal values on the same hardware.

    NOTE: XLA compiles for the CPU of each worker, so workers of different CPU types can differ in the
    last bits of float32.

    A looped numeric value is a compile-time constant that XLA may fold into fn's arithmetic, so results
    can differ from a vectorized evaluation of the same values in the last bits of float32.

    NOTE: the chunk limit covers only the metrics that fn returns. Intermediate arrays inside fn also
    scale with the chunk, so pass a smaller chunk_size when fn builds large temporaries.
    """
    if not callable(fn):
        raise ValueError(f"fn must be a function fn(params, key, data) -> dict of arrays, got {fn!r}")
    axes = _check_axes(axes)
    seed_list = _check_seeds(seeds)
    if chunk_size is not None and not _is_positive_int(chunk_size):
        raise ValueError(f"chunk_size must be a positive int or None for automatic chunks, got {chunk_size!r}")
    if not _is_positive_int(max_chunk_bytes):
        raise ValueError(f"max_chunk_bytes must be a positive int, got {max_chunk_bytes!r}")
    metric_units = _check_optional_mapping("metric_units", metric_units)
    metric_dims = _check_optional_mapping("metric_dims", metric_dims)
    metric_descriptions = _check_optional_mapping("metric_descriptions", metric_descriptions)
    attrs = _check_optional_mapping("attrs", attrs)
    if progress is not None and not callable(progress):
        raise ValueError(f"progress must be a function progress(done, total) or None, got {progress!r}")
    _check_store_options(store, resume, fingerprint, scheduler)
    if scheduler is not None:
        from . import distributed

        distributed.check_scheduler(scheduler)

    keys = jax.vmap(jax.random.key)(jnp.asarray(seed_list, dtype=jnp.uint32))
    data = _stack_seed_data(seed_data, seed_list)

    vectorized_axes = [axis for axis in axes if axis.vectorized]
    looped_axes = [axis for axis in axes if not axis.vectorized]
    vectorized_names = [axis.name for axis in vectorized_axes]
    vectorized_values = {axis.name: np.asarray(axis.values, dtype=np.float32) for axis in vectorized_axes}
    grid_shape = tuple(len(axis.values) for axis in vectorized_axes) + (len(seed_list),)
    n_points = math.prod(grid_shape)
    combinations = [
        dict(zip([axis.name for axis in looped_axes], values))
        for values in itertools.product(*(axis.values for axis in looped_axes))
    ]

    all_specs = [
        _metric_specs(_point_function(fn, axes, looped), vectorized_names, keys, data, looped)
        for looped in combinations
    ]
    specs = _merge_specs(all_specs, combinations)
    dims = _metric_dim_names(specs, metric_dims, [axis.name for axis in axes])
    _check_metric_strings("metric_units", metric_units, specs)
    _check_metric_strings("metric_descriptions", metric_descriptions, specs)

    if chunk_size is None:
        chunk = _default_chunk_size(specs, n_points, max_chunk_bytes)
    else:
        chunk = min(chunk_size, n_points)
    layout = ChunkLayout(combinations=len(combinations), points=n_points, chunk_size=chunk)
    chunk_store = None
    if store is not None:
        metrics = {name: (spec.shape, spec.dtype) for name, spec in specs.items()}
        chunk_store = ChunkStore.open(
            store, _store_identity(fingerprint, axes, seed_list), layout, metrics, resume=resume, attrs=attrs
        )
        layout = chunk_store.layout

    plan = _SweepPlan(fn, axes, combinations, vectorized_values, seed_list, data, grid_shape, specs, layout)
    results = _Results(layout, specs)
    pending = list(range(layout.n_chunks)) if chunk_store is None else _load_finished(chunk_store, results)
    finished_points = layout.total_points - sum(
        stop - start for _, start, stop in (layout.bounds(index) for index in pending)
    )
    tracker = _Progress(layout, progress, finished_points)

    if scheduler is None:
        _run_in_process(plan, pending, chunk_store, results, tracker)
    elif pending:
        def collect(index: int, compute_s: float, seconds: float, compiled: bool, worker: str) -> None:
            arrays = chunk_store.read(index)
            if arrays is None:
                raise FileNotFoundError(
                    f"chunk {index} was reported finished by worker {worker}, but its file "
                    f"{str(chunk_store.chunk_path(index))!r} cannot be read here; the store must be on a file "
                    "system that the client and every worker share"
                )
            results.insert(index, arrays)
            tracker.chunk_finished(index, plan.describe(index), compute_s, seconds, compiled, worker)

        distributed.run_chunks(plan, chunk_store, pending, scheduler, collect)

    looped_shape = tuple(len(axis.values) for axis in looped_axes)
    flat_results = {
        name: values.reshape(looped_shape + (n_points,) + values.shape[2:]) for name, values in results.arrays.items()
    }
    return _assemble_dataset(
        axes, looped_axes, vectorized_axes, seed_list, grid_shape, flat_results, dims,
        metric_units, metric_descriptions, attrs,
    )

def _assemble_dataset(
    axes: list[Axis],
    looped_axes: list[Axis],
    vectorized_axes: list[Axis],
    seeds: list[int],
    grid_shape: tuple[int, ...],
    results: Mapping[str, np.ndarray],
    dims: Mapping[str, tuple[str, ...]],
    metric_units: Mapping[str, str],
    metric_descriptions: Mapping[str, str],
    attrs: Mapping[str, Any],
) -> xr.Dataset:
    """Reshape the flat results to named dimensions in the axes' order and attach coordinates and units."""
    computed_order = [axis.name for axis in looped_axes] + [axis.name for axis in vectorized_axes]
    axis_permutation = [computed_order.index(axis.name) for axis in axes]
    looped_shape = tuple(len(axis.values) for axis in looped_axes)
    n_axes = len(axes)

    data_vars = {}
    for name, flat in results.items():
        extra_shape = flat.shape[len(looped_shape) + 1 :]
        array = flat.reshape(looped_shape + grid_shape + extra_shape)
        permutation = axis_permutation + list(range(n_axes, array.ndim))
        var_attrs = {}
        if metric_units.get(name):
            var_attrs["units"] = metric_units[name]
        if metric_descriptions.get(name):
            var_attrs["long_name"] = metric_descriptions[name]
        var_dims = tuple(axis.name for axis in axes) + (SEED_DIM,) + dims[name]
        data_vars[name] = xr.Variable(var_dims, np.transpose(array, permutation), var_attrs)

    coords = {}
    for axis in axes:
        coord_attrs = {}
        if axis.units:
            coord_attrs["units"] = axis.units
        if axis.description:
            coord_attrs["long_name"] = axis.description
        coords[axis.name] = xr.Variable(axis.name, axis.coordinate, coord_attrs)
    coords[SEED_DIM] = xr.Variable(
        SEED_DIM, np.asarray(seeds, dtype=np.int64), {"long_name": "Monte Carlo seed s, PRNG key jax.random.key(s)"}
    )
    return xr.Dataset(data_vars, coords=coords, attrs=dict(attrs))
