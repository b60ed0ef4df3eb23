"""Tests of the sweep engine and its outputs, on toy functions instead of device models."""

from __future__ import annotations

import functools
import importlib.util
import logging
import os
import sys

import hypothesis
import hypothesis.strategies as st
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import xarray as xr

from xbar.variability import Axis, plot_sweep, summary_table, sweep, write_netcdf


def affine_noise(params, key, data):
    """y = a * z + b with one standard normal draw z per seed."""
    return {"y": params["a"] * jax.random.normal(key) + params["b"]}


def two_axes(a_vectorized=True, b_vectorized=True):
    return [
        Axis("a", [0.5, 1.0, 2.0], vectorized=a_vectorized, units="S", description="noise amplitude"),
        Axis("b", [-1.0, 3.0], vectorized=b_vectorized, units="A"),
    ]


# --- evaluation ------------------------------------------------------------------------------------------


def echo_params(params, key, data):
    """Return the parameters and the draw without arithmetic that could round differently, and y."""
    ones = jnp.ones((), jnp.float32)
    z = jax.random.normal(key)
    return {"a_out": params["a"] * ones, "b_out": params["b"] * ones, "z": z, "y": params["a"] * z + params["b"]}


@pytest.mark.parametrize("looped", [("b",), ("a", "b")])
def test_looped_equals_vectorized(looped):
    reference = sweep(echo_params, two_axes(), seeds=4)
    ds = sweep(echo_params, two_axes("a" not in looped, "b" not in looped), seeds=4)
    for name in ["a_out", "b_out", "z"]:
        np.testing.assert_array_equal(ds[name].values, reference[name].values)
        assert ds[name].dims == ("a", "b", "seed")
    # A looped value is a compile-time constant, which XLA may fold into the arithmetic, so y can differ
    # from the vectorized run in the last bits of float32 (a few ulp, rtol 1e-6).
    np.testing.assert_allclose(ds["y"].values, reference["y"].values, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("chunk_size", [1, 5, 12, 1000])
def test_chunk_size_does_not_change_results(chunk_size):
    axes = two_axes(b_vectorized=False)
    reference = sweep(affine_noise, axes, seeds=4)
    ds = sweep(affine_noise, axes, seeds=4, chunk_size=chunk_size)
    np.testing.assert_array_equal(ds["y"].values, reference["y"].values)


@hypothesis.settings(max_examples=6, deadline=None)
@hypothesis.given(
    chunk_size=st.integers(min_value=1, max_value=30),
    n_seeds=st.integers(min_value=1, max_value=4),
    n_a=st.integers(min_value=1, max_value=4),
)
def test_chunking_invariant(chunk_size, n_seeds, n_a):
    axes = [Axis("a", [float(k + 1) for k in range(n_a)]), Axis("b", [0.0, 1.0])]
    reference = sweep(affine_noise, axes, seeds=n_seeds)
    chunked = sweep(affine_noise, axes, seeds=n_seeds, chunk_size=chunk_size)
    np.testing.assert_array_equal(chunked["y"].values, reference["y"].values)


def test_max_chunk_bytes_splits_into_chunks():
    def vector_metric(params, key, data):
        return {"v": params["a"] * jax.random.normal(key, (4,))}  # 16 bytes per point

    calls = []
    axes = [Axis("a", [1.0, 2.0, 3.0])]
    reference = sweep(vector_metric, axes, seeds=3)
    ds = sweep(vector_metric, axes, seeds=3, max_chunk_bytes=64, progress=lambda done, total: calls.append(done))
    np.testing.assert_array_equal(ds["v"].values, reference["v"].values)
    # 9 points at 4 points (64 bytes) per chunk: a first report before any chunk, then chunks end after
    # 4, 8 and 9 points.
    assert calls == [0, 4, 8, 9]


def test_seeds_reproducible_and_distinct():
    first = sweep(affine_noise, two_axes(), seeds=[3, 7])
    again = sweep(affine_noise, two_axes(), seeds=[3, 7])
    other = sweep(affine_noise, two_axes(), seeds=[4, 8])
    np.testing.assert_array_equal(first["y"].values, again["y"].values)
    assert not np.any(first["y"].values == other["y"].values)
    assert first["seed"].values.tolist() == [3, 7]


def test_seed_key_is_random_key_of_seed():
    seeds = [0, 1, 12345, 2**31 - 1, 2**32 - 1]

    def key_bits(params, key, data):
        return {"bits": jax.random.key_data(key)}

    ds = sweep(key_bits, [Axis("a", [1.0, 2.0])], seeds=seeds)
    for k, seed in enumerate(seeds):
        expected = np.asarray(jax.random.key_data(jax.random.key(seed)))
        for a in range(2):
            np.testing.assert_array_equal(ds["bits"].values[a, k], expected)


def test_common_random_numbers_across_grid():
    ds = sweep(affine_noise, two_axes(), seeds=5)
    # The same key at every grid point means (y - b) / a is one draw per seed, whatever a and b are.
    draws = (ds["y"] - ds["b"]) / ds["a"]
    spread = draws.max(["a", "b"]) - draws.min(["a", "b"])
    assert float(spread.max()) < 1e-5


def test_seed_mean_within_statistical_tolerance():
    n = 4000
    ds = sweep(affine_noise, [Axis("a", [2.0]), Axis("b", [1.0])], seeds=n)
    y = ds["y"].values.ravel()
    # Mean of n independent N(b, a^2) draws has standard error a / sqrt(n); 5 standard errors make a false
    # failure less likely than 1e-6.
    assert abs(y.mean() - 1.0) < 5 * 2.0 / np.sqrt(n)
    # The sample variance of n normal draws has standard error about sigma^2 * sqrt(2 / n).
    assert abs(y.var(ddof=1) - 4.0) < 5 * 4.0 * np.sqrt(2 / n)


def test_seed_data_passed_per_seed():
    calls = []

    def make_data(seed):
        calls.append(seed)
        return {"w": np.full((2,), float(seed), dtype=np.float32), "offset": jnp.float32(10 * seed)}

    def fn(params, key, data):
        return {"y": params["a"] * data["w"].sum() + data["offset"]}

    axes = [Axis("a", [1.0, 2.0]), Axis("mode", ["x", "z"], vectorized=False)]
    ds = sweep(fn, axes, seeds=[2, 5, 9], seed_data=make_data)
    assert calls == [2, 5, 9]  # once per seed, not per grid point or looped combination
    for k, seed in enumerate([2, 5, 9]):
        for i, a in enumerate([1.0, 2.0]):
            np.testing.assert_allclose(ds["y"].values[i, :, k], a * 2 * seed + 10 * seed)


def test_data_is_none_without_seed_data():
    seen = []

    def fn(params, key, data):
        seen.append(data)
        return {"y": params["a"]}

    sweep(fn, [Axis("a", [1.0])])
    assert seen and all(data is None for data in seen)


def test_params_types_per_axis_kind():
    seen = {}

    def fn(params, key, data):
        seen.update({name: value for name, value in params.items() if name != "a"})
        seen["a_dtype"] = params["a"].dtype
        seen["a_is_tracer"] = isinstance(params["a"], jax.core.Tracer)
        size = params["n"] if isinstance(params["n"], int) else 1
        return {"total": params["a"] * jnp.ones(size).sum()}

    axes = [Axis("a", [1, 2]), Axis("n", [4, "ideal"], vectorized=False)]
    ds = sweep(fn, axes)
    assert seen["a_is_tracer"]
    assert seen["a_dtype"] == jnp.float32
    assert seen["n"] in (4, "ideal")
    np.testing.assert_array_equal(ds["total"].values[:, :, 0], [[4.0, 1.0], [8.0, 2.0]])


def test_looped_axis_may_change_array_shapes():
    def fn(params, key, data):
        x = jax.random.normal(key, (params["size"],))
        return {"norm": jnp.linalg.norm(x) / jnp.sqrt(params["size"])}

    ds = sweep(fn, [Axis("size", [2, 8, 32], vectorized=False)], seeds=3)
    assert ds["norm"].shape == (3, 3)
    assert np.all(np.isfinite(ds["norm"].values))


def test_progress_reports_all_points():
    calls = []
    sweep(affine_noise, two_axes(b_vectorized=False), seeds=2, chunk_size=4, progress=lambda d, t: calls.append((d, t)))
    # 3 values of a times 2 seeds = 6 points per looped value of b, in chunks of 4 and 2, after a first
    # report of 0 points before any chunk runs.
    assert calls == [(0, 12), (4, 12), (6, 12), (10, 12), (12, 12)]


def test_logs_one_line_per_chunk(caplog, capsys):
    with caplog.at_level(logging.INFO, logger="xbar.variability.sweep"):
        sweep(affine_noise, two_axes(), seeds=2, chunk_size=5)
    chunk_lines = [record for record in caplog.records if record.name == "xbar.variability.sweep"]
    assert len(chunk_lines) == 3  # 12 points in chunks of 5
    assert capsys.readouterr().out == ""


# --- Dataset layout --------------------------------------------------------------------------------------


def test_dims_coords_and_units():
    def fn(params, key, data):
        noise = jax.random.normal(key, (3, 2))
        return {"y": params["a"] + params["b"], "curve": noise, "image": noise * params["a"]}

    axes = [Axis("b", [1.0, 2.0], units="A"), Axis("flag", [False, True], vectorized=False), two_axes()[0]]
    ds = sweep(
        fn,
        axes,
        seeds=2,
        metric_units={"y": "A", "curve": "V"},
        metric_dims={"curve": ("row", "col")},
        metric_descriptions={"y": "sum of a and b"},
        attrs={"experiment": "toy"},
    )
    assert list(ds.data_vars) == ["y", "curve", "image"]
    assert ds["y"].dims == ("b", "flag", "a", "seed")
    assert ds["curve"].dims == ("b", "flag", "a", "seed", "row", "col")
    assert ds["image"].dims == ("b", "flag", "a", "seed", "image_dim0", "image_dim1")
    assert ds["y"].attrs == {"units": "A", "long_name": "sum of a and b"}
    assert ds["curve"].attrs["units"] == "V"
    assert "units" not in ds["image"].attrs
    assert ds["a"].attrs == {"units": "S", "long_name": "noise amplitude"}
    assert ds["b"].attrs == {"units": "A"}
    assert ds["flag"].dtype == bool
    assert ds["a"].values.tolist() == [0.5, 1.0, 2.0]
    assert ds["seed"].values.tolist() == [0, 1]
    assert ds.attrs == {"experiment": "toy"}
    np.testing.assert_allclose(ds["y"].sel(a=2.0, b=1.0).values, 3.0)


def test_mixed_type_coords_become_strings():
    def fn(params, key, data):
        return {"y": jnp.float32(0.0 if params["bits"] == "ideal" else params["bits"])}

    ds = sweep(fn, [Axis("bits", [4, 6, 8, "ideal"], vectorized=False)])
    assert ds["bits"].dtype.kind == "U"
    assert ds["bits"].values.tolist() == ["4", "6", "8", "ideal"]
    np.testing.assert_array_equal(ds["y"].values[:, 0], [4.0, 6.0, 8.0, 0.0])


def test_integer_and_numpy_values_kept_as_numbers():
    axis = Axis("n", np.array([8, 16, 32]), vectorized=False)
    assert axis.values == (8, 16, 32)
    assert all(type(value) is int for value in axis.values)
    assert axis.coordinate.dtype == np.int64


def test_no_axes_gives_seed_only_dataset():
    ds = sweep(lambda params, key, data: {"z": jax.random.normal(key)}, [], seeds=3)
    assert ds["z"].dims == ("seed",)


# --- input validation ------------------------------------------------------------------------------------


def _returns_array(params, key, data):
    return params["a"]


def _returns_nested(params, key, data):
    return {"y": (params["a"], params["a"])}


def _shape_depends_on_looped(params, key, data):
    return {"y": jnp.zeros(params["n"])}


def _name_clash(params, key, data):
    return {"a": params["a"]}


BAD_SWEEPS = [
    (lambda: Axis("a", []), "no values"),
    (lambda: Axis("a", [1.0, 2.0, 1.0]), "duplicate values"),
    (lambda: Axis("a", [1, 1.0]), "duplicate values"),
    (lambda: Axis("seed", [1.0]), "reserved"),
    (lambda: Axis("2a", [1.0]), "identifier"),
    (lambda: Axis("model", ["pcm", "rram"]), "pass vectorized=False"),
    (lambda: Axis("switch", [False, True]), "pass vectorized=False"),
    (lambda: Axis("a", "abc", vectorized=False), "not the string|got the string"),
    (lambda: Axis("a", [1.0, float("nan")]), "NaN"),
    (lambda: Axis("a", [1.0, 1.0 + 1e-12]), "equal in float32"),
    (lambda: Axis("a", [1e39]), "overflows float32"),
    (lambda: Axis("a", [{"x": 1}], vectorized=False), "not supported"),
    (lambda: sweep(affine_noise, [Axis("a", [1.0]), Axis("a", [2.0])]), "unique"),
    (lambda: sweep(affine_noise, two_axes(), seeds=0), "at least 1"),
    (lambda: sweep(affine_noise, two_axes(), seeds=[]), "empty"),
    (lambda: sweep(affine_noise, two_axes(), seeds=[1, -2]), "out of range"),
    (lambda: sweep(affine_noise, two_axes(), seeds=[1, 2**32]), "out of range"),
    (lambda: sweep(affine_noise, two_axes(), seeds=[1, 1]), "more than once"),
    (lambda: sweep(affine_noise, two_axes(), seeds=[1.5]), "not an integer"),
    (lambda: sweep(affine_noise, two_axes(), seeds=True), "positive int"),
    (lambda: sweep(affine_noise, two_axes(), chunk_size=0), "chunk_size"),
    (lambda: sweep(affine_noise, [("a", [1.0])]), "Axis objects"),
    (lambda: sweep(_returns_array, [Axis("a", [1.0])]), "must return a dict"),
    (lambda: sweep(_returns_nested, [Axis("a", [1.0])]), "not one array"),
    (lambda: sweep(_name_clash, [Axis("a", [1.0])]), "name of a dimension"),
    (lambda: sweep(_shape_depends_on_looped, [Axis("n", [2, 3], vectorized=False)]), "one shape across looped"),
    (lambda: sweep(affine_noise, two_axes(), metric_units={"current": "A"}), "unknown metric 'current'"),
    (lambda: sweep(affine_noise, two_axes(), metric_dims={"y": ("extra",)}), "must list 0 dimension names"),
    (lambda: sweep(affine_noise, two_axes(), seed_data=lambda s: {"w": np.zeros(s + 1)}, seeds=2), "shapes"),
]


@pytest.mark.parametrize(("make", "match"), BAD_SWEEPS)
def test_invalid_input_raises(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def test_bad_metric_shape_found_before_running():
    calls = []
    with pytest.raises(ValueError, match="one shape across looped"):
        sweep(
            _shape_depends_on_looped,
            [Axis("n", [2, 3], vectorized=False)],
            progress=lambda done, total: calls.append(done),
        )
    assert calls == []  # every looped combination is traced before the first chunk runs


def test_traced_value_in_control_flow_gets_hint():
    def branchy(params, key, data):
        return {"y": 1.0 if params["a"] > 0 else 0.0}

    with pytest.raises(jax.errors.ConcretizationTypeError) as info:
        sweep(branchy, [Axis("a", [1.0])])
    assert any("vectorized=False" in note for note in getattr(info.value, "__notes__", []))


# --- NetCDF ----------------------------------------------------------------------------------------------


def _engines():
    engines = [pytest.param(None, id="default"), pytest.param("scipy", id="scipy")]
    has_h5 = importlib.util.find_spec("h5netcdf") and importlib.util.find_spec("h5py")
    engines.append(pytest.param("h5netcdf", id="h5netcdf", marks=pytest.mark.skipif(not has_h5, reason="needs h5py")))
    return engines


@functools.cache
def _toy_dataset():
    """Build one small sweep Dataset shared by the output tests, which must not modify it."""
    def fn(params, key, data):
        y = params["a"] * jax.random.normal(key) + jnp.where(params["flag"], 1.0, 0.0)
        return {"y": y, "curve": jnp.arange(3.0) * y}

    axes = [
        Axis("a", [0.5, 1.0], units="S", description="amplitude"),
        Axis("flag", [False, True], vectorized=False),
        Axis("bits", [4, "ideal"], vectorized=False),
    ]
    long_text = "line of a configuration file\n" * 4000  # about 120 kB, beyond HDF5's 64 kB compact limit
    return sweep(
        fn, axes, seeds=3, metric_units={"y": "A"}, attrs={"config": long_text, "ideal_adc": True, "version": 2}
    )


@pytest.mark.parametrize("engine", _engines())
def test_netcdf_round_trip(tmp_path, engine):
    ds = _toy_dataset()
    path = write_netcdf(ds, tmp_path / "sweep.nc", engine=engine)
    assert path == tmp_path / "sweep.nc"
    with xr.open_dataset(path) as loaded:
        loaded.load()
    xr.testing.assert_equal(loaded["y"], ds["y"])
    np.testing.assert_array_equal(loaded["curve"].values, ds["curve"].values)
    assert loaded["flag"].dtype == bool
    assert loaded["flag"].values.tolist() == [False, True]
    assert loaded["bits"].values.tolist() == ["4", "ideal"]
    assert loaded["a"].attrs == {"units": "S", "long_name": "amplitude"}
    assert loaded["y"].attrs["units"] == "A"
    assert loaded.attrs["config"] == ds.attrs["config"]
    assert loaded.attrs["ideal_adc"] == "true"
    assert loaded.attrs["version"] == 2
    assert ds.attrs["ideal_adc"] is True  # the caller's Dataset is not modified
    assert sorted(os.listdir(tmp_path)) == ["sweep.nc"]


@pytest.mark.parametrize("error", [RuntimeError("disk full"), KeyboardInterrupt()])
def test_netcdf_failed_write_leaves_nothing(tmp_path, monkeypatch, error):
    def failing_to_netcdf(self, path, *args, **kwargs):
        with open(path, "wb") as partial:
            partial.write(b"CDF\x01 partial")
        raise error

    monkeypatch.setattr(xr.Dataset, "to_netcdf", failing_to_netcdf)
    with pytest.raises(type(error)):
        write_netcdf(_toy_dataset(), tmp_path / "sweep.nc")
    assert os.listdir(tmp_path) == []


def test_netcdf_failed_write_keeps_old_file(tmp_path, monkeypatch):
    target = tmp_path / "sweep.nc"
    target.write_bytes(b"previous result")

    def failing_to_netcdf(self, path, *args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(xr.Dataset, "to_netcdf", failing_to_netcdf)
    with pytest.raises(OSError, match="disk full"):
        write_netcdf(_toy_dataset(), target)
    assert target.read_bytes() == b"previous result"
    assert os.listdir(tmp_path) == ["sweep.nc"]


def test_netcdf_unstorable_attribute_raises(tmp_path):
    ds = _toy_dataset().assign_attrs(options={"a": 1})
    with pytest.raises(ValueError, match="'options'.*json.dumps"):
        write_netcdf(ds, tmp_path / "sweep.nc")
    assert os.listdir(tmp_path) == []


# --- summary table and plot ------------------------------------------------------------------------------


def test_summary_table_names_metrics_and_units():
    table = summary_table(_toy_dataset())
    assert "y [A]" in table
    assert "curve" in table
    assert "a [S]" in table
    assert "over 3 seeds" in table
    assert "±" in table


def test_summary_table_cuts_long_tables():
    ds = _toy_dataset()
    table = summary_table(ds[["y"]], max_rows=3)
    # 2 * 2 * 2 = 8 grid points, 3 shown.
    assert "... 5 more rows" in table
    assert len(table.splitlines()) == 1 + 1 + 3 + 1  # title, header, rows, cut line


def test_summary_table_values():
    ds = sweep(affine_noise, [Axis("a", [1.0]), Axis("b", [2.0])], seeds=3)
    y = ds["y"].values.ravel()
    table = summary_table(ds)
    assert f"{y.mean():.4g} ± {y.std(ddof=1):.2g}" in table


def test_plot_sweep_writes_png(tmp_path):
    path = plot_sweep(_toy_dataset(), tmp_path / "sweep.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert os.listdir(tmp_path) == ["sweep.png"]


def test_outputs_accept_extra_scalar_variable(tmp_path):
    # A study may add results computed once, without sweep dims, next to the swept metrics.
    ds = _toy_dataset().assign(software_accuracy=xr.DataArray(0.97, attrs={"units": "1"}))
    table = summary_table(ds)
    assert "software_accuracy: value" in table
    assert "0.97" in table
    first = ds[["software_accuracy", "y"]]
    path = plot_sweep(first, tmp_path / "sweep.png")  # skips the variable without sweep axes
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(ValueError, match="no data variable"):
        plot_sweep(ds[["software_accuracy"]], tmp_path / "none.png")


def test_plot_sweep_many_panels_and_log_axis(tmp_path):
    def fn(params, key, data):
        return {"y": params["g"] * (1 + 0.1 * jax.random.normal(key)) + params["c"] + params["d"]}

    # 4 * 4 = 16 combinations of c and d, more than the 12 panels that one figure shows.
    axes = [
        Axis("g", [1e-6, 1e-5, 1e-4, 1e-3], units="S"),
        Axis("line", [0.0, 1.0]),
        Axis("c", [0.0, 1.0, 2.0, 3.0]),
        Axis("d", [10.0, 20.0, 30.0, 40.0], units="V"),
    ]
    path = plot_sweep(sweep(fn, axes, seeds=2), tmp_path / "panels.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_plot_sweep_rejects_array_metric(tmp_path):
    with pytest.raises(ValueError, match="scalar metrics only"):
        plot_sweep(_toy_dataset(), tmp_path / "sweep.png", metric="curve")
    with pytest.raises(ValueError, match="not a data variable"):
        plot_sweep(_toy_dataset(), tmp_path / "sweep.png", metric="missing")
    assert os.listdir(tmp_path) == []


def test_plot_sweep_without_matplotlib(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib.backends.backend_agg", None)
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)
    with pytest.raises(ImportError, match=r'pip install "xbar-sim\[plot\]"'):
        plot_sweep(_toy_dataset(), tmp_path / "sweep.png")


def test_plot_draws_scalar_reference_line(tmp_path):
    ds = _toy_dataset()
    units = ds["y"].attrs.get("units", "")
    ds = ds.assign(baseline=xr.DataArray(0.5, attrs={"units": units, "long_name": "baseline"}))

    path = plot_sweep(ds, tmp_path / "sweep.png", metric="y")

    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
