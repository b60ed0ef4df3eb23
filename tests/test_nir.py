"""NIR import: graphs simulated on cores and CMOS LIF neurons equal forward-Euler references step for step."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from xbar.crossbar import Core, Tile
from xbar.devices import PCM

nir = pytest.importorskip("nir")

from xbar.learning.nir import from_nir  # noqa: E402  (needs nir, skipped above without it)

DT = 1e-3


def _lif(n, *, tau=0.01, r=20.0, v_leak=0.0, v_threshold=1.0, v_reset=None):
    return nir.LIF(
        tau=np.full(n, tau), r=np.full(n, r), v_leak=np.full(n, v_leak), v_threshold=np.full(n, v_threshold),
        v_reset=None if v_reset is None else np.full(n, v_reset),
    )


def _affine_lif_graph(weight, bias, **lif):
    n_out, n_in = weight.shape
    return nir.NIRGraph.from_list(
        nir.Input(input_type=np.array([n_in])), nir.Affine(weight=weight, bias=bias), _lif(n_out, **lif),
        nir.Output(output_type=np.array([n_out])),
    )


def _lif_reference(currents, *, tau, r, v_leak, v_threshold, v_reset):
    """Forward Euler of tau dv/dt = (v_leak - v) + r I with reset: the spike raster and the last v."""
    v = np.full(currents.shape[1], v_leak, np.float64)
    spikes = np.zeros(currents.shape, bool)
    for step, current in enumerate(currents):
        v = v + DT / tau * (v_leak - v + r * current)
        spikes[step] = v > v_threshold
        v = np.where(spikes[step], v_reset, v)
    return spikes, v


def _random_graph_inputs(seed, n_in, n_out, steps):
    rng = np.random.default_rng(seed)
    weight = rng.normal(0.0, 0.5, (n_out, n_in)).astype(np.float32)
    bias = rng.normal(0.05, 0.02, n_out).astype(np.float32)
    raster = rng.random((steps, n_in)) < 0.3
    return weight, bias, raster


def _assert_raster_matches(spikes, expected, v, expected_v):
    # float32 against float64 can flip a spike whose potential lands within rounding of the threshold:
    # allow one flip in the raster, and compare the final potentials only where the spikes agree.
    flips = int(np.sum(spikes != expected))
    assert flips <= 1, f"{flips} spikes differ from the reference"
    if flips == 0:
        np.testing.assert_allclose(v, expected_v, rtol=1e-4, atol=1e-4)


def test_affine_lif_equals_euler_reference():
    weight, bias, raster = _random_graph_inputs(0, 12, 7, 200)
    network = from_nir(_affine_lif_graph(weight, bias, v_leak=0.1, v_reset=-0.2), dt=DT)
    reads = network.read(network.program(key=jax.random.key(0)), 0.0, key=jax.random.key(1))
    outputs, state = jax.jit(lambda reads, raster: network.run(reads, raster, key=jax.random.key(2)))(reads, raster)

    currents = raster @ weight.T.astype(np.float64) + bias
    expected, expected_v = _lif_reference(currents, tau=0.01, r=20.0, v_leak=0.1, v_threshold=1.0, v_reset=-0.2)
    assert outputs["output"].shape == (200, 7)
    assert expected.sum() > 50, "the reference should spike often enough to test the raster"
    _assert_raster_matches(np.asarray(outputs["output"]) > 0, expected, np.asarray(state.neurons["lif"].v), expected_v)


def test_affine_on_multi_tile_core_equals_reference():
    weight, bias, raster = _random_graph_inputs(1, 21, 9, 100)
    # 4 x 4 tiles: the 21 x 9 matrix W.T spans 6 x 3 tiles, the last ones partly filled.
    network = from_nir(_affine_lif_graph(weight, bias), dt=DT, core=Core(tile=Tile(), tile_shape=(4, 4)))
    assert network.nodes["affine"].layer.core.grid((21, 9)) == (6, 3)
    outputs = jax.jit(lambda raster: network.simulate(raster, key=jax.random.key(0)))(raster)

    currents = raster @ weight.T.astype(np.float64) + bias
    expected, _ = _lif_reference(currents, tau=0.01, r=20.0, v_leak=0.0, v_threshold=1.0, v_reset=0.0)
    assert expected.sum() > 20
    assert int(np.sum((np.asarray(outputs["output"]) > 0) != expected)) <= 1


def test_cuba_lif_equals_euler_reference():
    n_in, n = 5, 4
    rng = np.random.default_rng(3)
    weight = rng.normal(0.5, 0.3, (n, n_in)).astype(np.float32)
    raster = rng.random((150, n_in)) < 0.4
    tau_syn, tau_mem, r, w_in = 5e-3, 20e-3, 2.0, 1.5
    graph = nir.NIRGraph.from_list(
        nir.Input(input_type=np.array([n_in])), nir.Linear(weight=weight),
        nir.CubaLIF(tau_syn=np.full(n, tau_syn), tau_mem=np.full(n, tau_mem), r=np.full(n, r), v_leak=np.zeros(n),
                    v_threshold=np.full(n, 0.5), w_in=w_in),
        nir.Output(output_type=np.array([n])),
    )
    network = from_nir(graph, dt=DT)
    outputs, state = jax.jit(lambda raster: network.run(
        network.read(network.program(key=jax.random.key(0)), 0.0, key=jax.random.key(1)), raster,
        key=jax.random.key(2)))(raster)

    # I[n+1] = I[n] + dt/tau_syn (w_in S[n] - I[n]), then v[n+1] = v[n] + dt/tau_mem (v_leak - v[n] + r I[n+1]).
    current, v = np.zeros(n), np.zeros(n)
    expected = np.zeros((150, n), bool)
    for step, spikes in enumerate(raster):
        current = current + DT / tau_syn * (w_in * (weight @ spikes) - current)
        v = v + DT / tau_mem * (0.0 - v + r * current)
        expected[step] = v > 0.5
        v = np.where(expected[step], 0.0, v)
    assert expected.sum() > 20
    _assert_raster_matches(np.asarray(outputs["output"]) > 0, expected, np.asarray(state.neurons["cubalif"].v), v)


def test_recurrent_edge_carries_previous_step():
    # Input -> Linear -> LIF -> Output, with LIF -> Linear(recurrent) -> LIF closing a cycle.
    n = 3
    feed = np.eye(n, dtype=np.float32)
    recurrent = np.array([[0.0, 0.0, 0.0], [2.0, 0.0, 0.0], [0.0, 2.0, 0.0]], np.float32)  # 0 -> 1 -> 2
    graph = nir.NIRGraph(
        nodes={
            "input": nir.Input(input_type=np.array([n])),
            "feed": nir.Linear(weight=feed),
            "lif": _lif(n, tau=0.01, r=10.0),
            "recurrent": nir.Linear(weight=recurrent),
            "output": nir.Output(output_type=np.array([n])),
        },
        edges=[("input", "feed"), ("feed", "lif"), ("lif", "recurrent"), ("recurrent", "lif"), ("lif", "output")],
    )
    network = from_nir(graph, dt=DT)
    assert network.previous_sources[network.order.index("lif")] == ("recurrent",)

    steps = 60
    raster = np.zeros((steps, n), np.float32)
    raster[:, 0] = 2.0  # only neuron 0 is driven from outside
    outputs = network.simulate(raster, key=jax.random.key(0))

    v, last = np.zeros(n), np.zeros(n)
    expected = np.zeros((steps, n), bool)
    for step in range(steps):
        current = feed @ raster[step] + recurrent @ last
        v = v + DT / 0.01 * (-v + 10.0 * current)
        expected[step] = v > 1.0
        v = np.where(expected[step], 0.0, v)
        last = expected[step].astype(np.float64)
    assert expected[:, 2].any(), "the chain should reach the last neuron"
    np.testing.assert_array_equal(np.asarray(outputs["output"]) > 0, expected)


def test_conv_pool_flatten_graph_equals_jax():
    rng = np.random.default_rng(4)
    kernel = rng.normal(0.0, 0.5, (3, 2, 3, 3)).astype(np.float32)  # (C_out, C_in, kh, kw)
    bias = rng.normal(0.0, 0.1, 3).astype(np.float32)
    dense = rng.normal(0.0, 0.3, (5, 3 * 2 * 2)).astype(np.float32)
    scale = rng.uniform(0.5, 1.5, 5).astype(np.float32)
    graph = nir.NIRGraph.from_list(
        nir.Input(input_type=np.array([2, 8, 8])),
        nir.Conv2d(input_shape=(8, 8), weight=kernel, stride=1, padding=1, dilation=1, groups=1, bias=bias),
        nir.SumPool2d(kernel_size=np.array([3, 3]), stride=np.array([3, 3]), padding=np.array([0, 0])),
        nir.Flatten(input_type=np.array([3, 2, 2]), start_dim=0),
        nir.Affine(weight=dense, bias=np.zeros(5, np.float32)),
        nir.Scale(scale=scale),
        nir.Output(output_type=np.array([5])),
    )
    network = from_nir(graph, dt=DT, core=Core(tile=Tile(), tile_shape=(8, 8)))
    images = rng.normal(size=(4, 2, 8, 8)).astype(np.float32)  # 4 steps of a channels-first image
    outputs = jax.jit(lambda x: network.simulate(x, key=jax.random.key(0)))(images)

    conv = jax.lax.conv_general_dilated(images, kernel, (1, 1), ((1, 1), (1, 1)),
                                        dimension_numbers=("NCHW", "OIHW", "NCHW")) + bias[:, None, None]
    pooled = jax.lax.reduce_window(conv, 0.0, jax.lax.add, (1, 1, 3, 3), (1, 1, 3, 3), "VALID")
    expected = (pooled.reshape(4, -1) @ dense.T) * scale
    # Sums of about 30 float32 terms of order 1.
    np.testing.assert_allclose(outputs["output"], expected, rtol=1e-4, atol=1e-4)


def test_avg_pool_divides_by_kernel_area():
    graph = nir.NIRGraph.from_list(
        nir.Input(input_type=np.array([1, 4, 4])),
        nir.AvgPool2d(kernel_size=np.array([2, 2]), stride=np.array([2, 2]), padding=np.array([0, 0])),
        nir.Output(output_type=np.array([1, 2, 2])),
    )
    network = from_nir(graph, dt=DT)
    image = np.arange(16, dtype=np.float32).reshape(1, 1, 4, 4)
    outputs = network.simulate(image, key=jax.random.key(0))
    np.testing.assert_allclose(outputs["output"][0, 0], [[2.5, 4.5], [10.5, 12.5]])


def test_vmap_over_samples_and_keys():
    weight, bias, _ = _random_graph_inputs(5, 6, 4, 1)
    rng = np.random.default_rng(6)
    rasters = rng.random((3, 80, 6)) < 0.3
    network = from_nir(_affine_lif_graph(weight, bias), dt=DT, core=Core(tile=Tile(), tile_shape=(4, 4)))

    @jax.jit
    def simulate(raster):
        return network.simulate(raster, key=jax.random.key(7))["output"]

    batched = jax.vmap(simulate)(rasters)
    for index in range(3):
        np.testing.assert_array_equal(batched[index], simulate(rasters[index]))

    # Independent PCM chips: one network per key.
    pcm = from_nir(_affine_lif_graph(weight, bias), dt=DT, core=Core(tile=Tile(device=PCM()), tile_shape=(4, 4)))
    chips = jax.jit(jax.vmap(lambda key: pcm.simulate(rasters[0], key=key)["output"]))(
        jax.random.split(jax.random.key(8), 2)
    )
    assert chips.shape == (2, 80, 4)
    assert set(np.unique(np.asarray(chips)).tolist()) <= {0.0, 1.0}


def test_run_continues_from_state():
    weight, bias, raster = _random_graph_inputs(8, 6, 4, 60)
    network = from_nir(_affine_lif_graph(weight, bias), dt=DT)
    reads = network.read(network.program(key=jax.random.key(0)), 0.0, key=jax.random.key(1))
    whole, _ = network.run(reads, raster, key=jax.random.key(2))
    first, state = network.run(reads, raster[:25], key=jax.random.key(2))
    second, _ = network.run(reads, raster[25:], key=jax.random.key(3), state=state)
    joined = np.concatenate([first["output"], second["output"]])
    np.testing.assert_array_equal(joined, whole["output"])


def test_dt_from_metadata_and_file(tmp_path):
    pytest.importorskip("h5py")
    weight, bias, raster = _random_graph_inputs(9, 4, 3, 30)
    graph = _affine_lif_graph(weight, bias)
    graph.metadata = {"dt": DT}
    path = tmp_path / "graph.nir"
    nir.write(path, graph)
    network = from_nir(str(path))
    assert network.dt == pytest.approx(DT)
    reference = from_nir(graph, dt=DT)
    loaded = network.simulate(raster, key=jax.random.key(0))["output"]
    np.testing.assert_array_equal(loaded, reference.simulate(raster, key=jax.random.key(0))["output"])


def test_unsupported_node_raises():
    graph = nir.NIRGraph.from_list(
        nir.Input(input_type=np.array([2])),
        nir.IF(r=np.ones(2), v_threshold=np.ones(2)),
        nir.Output(output_type=np.array([2])),
    )
    with pytest.raises(ValueError, match=r"node 'if' has the unsupported NIR type IF; supported types: Affine"):
        from_nir(graph, dt=DT)


def test_import_rejects_invalid_graphs():
    weight, bias, _ = _random_graph_inputs(10, 4, 3, 1)
    graph = _affine_lif_graph(weight, bias)
    with pytest.raises(ValueError, match="pass dt="):
        from_nir(graph)
    with pytest.raises(ValueError, match="below the time step"):
        from_nir(graph, dt=0.05)
    with pytest.raises(ValueError, match="not in the graph"):
        from_nir(graph, dt=DT, cores={"missing": Core()})
    with pytest.raises(ValueError, match="nir.NIRGraph"):
        from_nir({"nodes": {}}, dt=DT)

    mismatched = nir.NIRGraph.from_list(
        nir.Input(input_type=np.array([2, 3])), nir.Affine(weight=weight, bias=bias), type_check=False,
    )
    with pytest.raises(ValueError, match="add a Flatten node"):
        from_nir(mismatched, dt=DT)

    with pytest.raises(ValueError, match=r"LIF node 'lif'.*v_reset"):
        from_nir(_affine_lif_graph(weight, bias, v_reset=2.0), dt=DT)


def test_run_rejects_bad_inputs():
    weight, bias, _ = _random_graph_inputs(11, 4, 3, 1)
    network = from_nir(_affine_lif_graph(weight, bias), dt=DT)
    with pytest.raises(ValueError, match=r"shape \(steps, 4\)"):
        network.simulate(jnp.zeros((10, 5)), key=jax.random.key(0))
    with pytest.raises(ValueError, match="Input nodes"):
        network.simulate({"other": jnp.zeros((10, 4))}, key=jax.random.key(0))
