"""Tests of device-to-device sampling, stuck-at faults and conductance quantization.

Sample statistics are checked at five standard errors, with these standard errors for n draws:
a sample mean of standard deviation sigma, sigma / sqrt(n); a sample standard deviation of normal draws,
about 1 / sqrt(2 (n - 1)) relative; a proportion p, sqrt(p (1 - p) / n).
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from xbar.crossbar import Tile
from xbar.devices import PCM, IdealDevice, ProgramVerify
from xbar.variability.faults import SA0, SA1, StuckAtFaults, apply_faults, fault_map
from xbar.variability.quantization import Quantized, quantize
from xbar.variability.sampling import LogNormal, Normal, TruncatedNormal, correlated_normal, sample_parameters

G_MAX = 25e-6  # S
Z = 5.0  # standard errors allowed in every statistical check
N = 20000  # devices in the statistical checks


def test_normal_relative_mean_and_spread(key):
    device = sample_parameters(PCM(), (N,), key, {"drift_scale": Normal(0.2)})
    values = np.asarray(device.drift_scale, float)

    assert values.shape == (N,)
    assert abs(values.mean() - 1.0) < Z * 0.2 / np.sqrt(N)
    assert abs(values.std() / 0.2 - 1.0) < Z / np.sqrt(2 * (N - 1))


def test_normal_absolute_spread(key):
    device = sample_parameters(IdealDevice(), (N,), key, {"pulse_step": Normal(0.02e-6, relative=False)})
    values = np.asarray(device.pulse_step, float)

    assert abs(values.mean() - 0.25e-6) < Z * 0.02e-6 / np.sqrt(N)
    assert abs(values.std() / 0.02e-6 - 1.0) < Z / np.sqrt(2 * (N - 1))


def test_lognormal_median_and_log_spread(key):
    device = sample_parameters(IdealDevice(), (N,), key, {"g_max": LogNormal(0.3)})
    log_values = np.log(np.asarray(device.g_max, float))

    assert abs(log_values.mean() - np.log(G_MAX)) < Z * 0.3 / np.sqrt(N)
    assert abs(log_values.std() / 0.3 - 1.0) < Z / np.sqrt(2 * (N - 1))


def test_truncated_normal_within_bounds_and_centered(key):
    distribution = TruncatedNormal(0.5, low=0.5, high=1.5)
    values = np.asarray(sample_parameters(PCM(), (N,), key, {"drift_scale": distribution}).drift_scale, float)
    # A normal of std 0.5 truncated at +-1 std has std 0.5 * sqrt(1 - 2 phi(1) / (2 Phi(1) - 1)) = 0.2698.
    truncated_std = 0.5 * 0.53956

    assert values.min() >= 0.5
    assert values.max() <= 1.5
    assert abs(values.mean() - 1.0) < Z * truncated_std / np.sqrt(N)
    assert abs(values.std() / truncated_std - 1.0) < 0.05


def test_tuple_parameter_leaves_sampled_independently(key):
    device = sample_parameters(PCM(), (N,), key, {"prog_coeff": Normal(0.1)})
    c0, c1, c2 = (np.asarray(c, float) for c in device.prog_coeff)

    for value, nominal in zip((c0, c1, c2), PCM().prog_coeff):
        assert abs(value.mean() / nominal - 1.0) < Z * 0.1 / np.sqrt(N)
    assert abs(np.corrcoef(c0, c1)[0, 1]) < Z / np.sqrt(N)


def test_spatial_correlation_matches_gaussian_filter(key):
    length = 2.0
    field = np.asarray(correlated_normal(key, (8, 96, 96), length), float)

    assert abs(field.var() - 1.0) < 0.1
    for distance in (1, 2, 4, 8):
        along_rows = np.corrcoef(field[:, :-distance, :].ravel(), field[:, distance:, :].ravel())[0, 1]
        along_columns = np.corrcoef(field[:, :, :-distance].ravel(), field[:, :, distance:].ravel())[0, 1]
        expected = np.exp(-(distance**2) / (4 * length**2))
        # Correlated cells carry fewer independent values than their number, so 0.05 is a loose bound (an estimate).
        assert abs(along_rows - expected) < 0.05
        assert abs(along_columns - expected) < 0.05


def test_correlated_sampling_keeps_marginal(key):
    device = sample_parameters(PCM(), (8, 64, 64), key, {"drift_scale": Normal(0.1)}, correlation_length=3.0)
    values = np.asarray(device.drift_scale, float)

    assert abs(values.mean() - 1.0) < 0.02
    assert abs(values.std() / 0.1 - 1.0) < 0.1
    assert np.corrcoef(values[:, :, :-1].ravel(), values[:, :, 1:].ravel())[0, 1] > 0.9


# The rejection rule.


def test_reversed_range_resampled(key):
    # With 30 % spread on a 2:1 range, about 7 % of first draws have g_min >= g_max.
    device = sample_parameters(IdealDevice(g_min=10e-6, g_max=20e-6), (N,), key, {"g_min": Normal(0.3), "g_max": Normal(0.3)})
    g_min, g_max = np.asarray(device.g_min), np.asarray(device.g_max)

    assert np.all(np.isfinite(g_min))
    assert np.all(np.isfinite(g_max))
    assert np.all(g_min < g_max)
    assert np.all(g_min > 0)


class Resistances(eqx.Module):
    """A stand-in for a compact model's parameters: on and off resistances in ohm."""

    r_on: float = 100.0
    r_off: float = 200.0


def test_reversed_resistances_resampled(key):
    # With 40 % spread on a 2:1 ratio, about 13 % of first draws have r_on >= r_off.
    model = sample_parameters(Resistances(), (N,), key, {"r_on": Normal(0.4), "r_off": Normal(0.4)})
    r_on, r_off = np.asarray(model.r_on), np.asarray(model.r_off)

    assert np.all(np.isfinite(r_on))
    assert np.all(r_on > 0)
    assert np.all(r_on < r_off)


def test_unfixable_draws_raise(key):
    with pytest.raises(ValueError, match="devices drew invalid parameters"):
        sample_parameters(IdealDevice(g_min=1e-6), (N,), key, {"g_min": Normal(2.0)}, max_resamples=2)


def test_traced_invalid_draws_fall_back_to_nominal(key):
    nominal = IdealDevice(g_min=1e-6)
    sample = jax.jit(lambda k: sample_parameters(nominal, (N,), k, {"g_min": Normal(2.0)}, max_resamples=2).g_min)
    g_min = np.asarray(sample(key))
    fallback = g_min == np.float32(1e-6)

    assert np.all(np.isfinite(g_min))
    assert np.all(g_min > 0)
    assert np.all(g_min < G_MAX)
    assert 0 < fallback.sum() < N


@settings(max_examples=25, deadline=None)
@given(
    low=st.floats(0.0, 20e-6),
    ratio=st.floats(1.01, 100.0),
    spread=st.floats(0.0, 5.0),
    seed=st.integers(0, 2**31 - 1),
)
def test_rejection_never_yields_nan(low, ratio, spread, seed):
    device = IdealDevice(g_min=low, g_max=max(low, 1e-7) * ratio)
    request = {"g_min": Normal(spread), "g_max": Normal(spread), "pulse_step": Normal(spread)}
    try:
        sampled = sample_parameters(device, (64,), jax.random.key(seed), request, max_resamples=3)
    except ValueError as error:
        assert "invalid parameters" in str(error)
        return
    leaves = [np.asarray(sampled.g_min), np.asarray(sampled.g_max), np.asarray(sampled.pulse_step)]

    assert all(np.all(np.isfinite(leaf)) for leaf in leaves)
    assert np.all(leaves[0] < leaves[1])
    assert np.all(leaves[0] >= 0)
    assert np.all(leaves[2] > 0)


@pytest.mark.parametrize(
    "device, request_, match",
    [
        (PCM(), {"g_mx": Normal(0.1)}, "no parameter 'g_mx'"),
        (PCM(), {}, "empty"),
        (PCM(), {"g_max": 0.1}, "Normal, LogNormal or TruncatedNormal"),
        (Tile(), {"drift_compensation": Normal(0.1)}, "static setting"),
        ("pcm", {"g_max": Normal(0.1)}, "equinox module"),
    ],
)
def test_sampling_rejects_bad_requests(device, request_, match, key):
    with pytest.raises(ValueError, match=match):
        sample_parameters(device, (4,), key, request_)


def test_sampling_rejects_bad_settings(key):
    with pytest.raises(ValueError, match="shape"):
        sample_parameters(PCM(), (0, 4), key, {"g_max": Normal(0.1)})
    with pytest.raises(ValueError, match="max_resamples"):
        sample_parameters(PCM(), (4,), key, {"g_max": Normal(0.1)}, max_resamples=-1)
    with pytest.raises(ValueError, match="correlation_length"):
        sample_parameters(PCM(), (4, 4), key, {"g_max": Normal(0.1)}, correlation_length=0.0)
    with pytest.raises(ValueError, match="at least 2 axes"):
        correlated_normal(key, (16,), 2.0)
    with pytest.raises(ValueError, match="low < high"):
        TruncatedNormal(0.1, low=2.0, high=1.0)
    with pytest.raises(ValueError, match="spread"):
        Normal(-0.1)


# Sampled devices in a tile, transformations.


@pytest.mark.parametrize(
    "device, request_",
    [
        (IdealDevice(), {"pulse_step": Normal(0.2)}),
        (PCM(), {"drift_scale": LogNormal(0.3), "prog_noise_scale": TruncatedNormal(0.5, low=0.0)}),
    ],
    ids=["ideal", "pcm"],
)
def test_sampled_device_in_tile_jit_and_vmap(device, request_, key, rng):
    weights = jnp.asarray(rng.normal(size=(6, 4)), jnp.float32)
    x = jnp.asarray(rng.normal(size=(3, 6)), jnp.float32)

    def forward(device_key, key):
        tile = Tile(device=sample_parameters(device, (6, 4), device_key, request_))
        return tile.forward(weights, x, 100.0, key=key)

    keys = jax.random.split(key, 4)
    jitted = jax.jit(forward)(keys[1], keys[1])
    batched = jax.vmap(forward)(keys, keys)

    np.testing.assert_allclose(batched[1], jitted, rtol=1e-4, atol=1e-5)
    assert batched.shape == (4, 3, 4)
    assert np.all(np.isfinite(batched))


def test_pulses_follow_sampled_steps(key):
    device = sample_parameters(IdealDevice(), (5,), key, {"pulse_step": Normal(0.3)})
    state = device.apply_pulses(device.program(jnp.full(5, 10e-6), key=key), 3, key=key)

    np.testing.assert_allclose(state.g, 10e-6 + 3 * np.asarray(device.pulse_step), rtol=1e-5)


def test_grad_through_sampled_parameters(key):
    def mean_read(drift_scale):
        nominal = PCM(drift_scale=drift_scale)
        device = sample_parameters(nominal, (32,), key, {"drift_scale": Normal(0.2), "prog_noise_scale": LogNormal(0.2)})
        state = device.program(jnp.full(32, 20e-6), key=key)
        return jnp.mean(device.drift(state, 1e4))

    gradient = jax.grad(mean_read)(1.0)
    step = 1e-2
    finite_difference = (mean_read(1.0 + step) - mean_read(1.0 - step)) / (2 * step)

    assert np.isfinite(gradient)
    assert gradient < 0
    np.testing.assert_allclose(gradient, finite_difference, rtol=1e-2)


def test_grad_with_respect_to_device_arrays(key):
    device = sample_parameters(PCM(), (16,), key, {"drift_scale": Normal(0.2)})
    state = device.program(jnp.full(16, 20e-6), key=key)

    gradient = jax.grad(lambda d: jnp.sum(d.drift(state, 1e4)), allow_int=True)(device)

    assert gradient.drift_scale.shape == (16,)
    assert np.all(np.asarray(gradient.drift_scale) < 0)


# Stuck-at faults.


def test_fault_rates_match_configuration(key):
    sa0_rate, sa1_rate = 0.02, 0.09
    faults = np.asarray(fault_map(key, (200, 200), sa0_rate, sa1_rate))
    n = faults.size

    for code, rate in ((SA0, sa0_rate), (SA1, sa1_rate)):
        assert abs((faults == code).mean() - rate) < Z * np.sqrt(rate * (1 - rate) / n)


def test_faulty_devices_read_stuck_levels(key):
    device = StuckAtFaults(PCM(), sa0_rate=0.1, sa1_rate=0.1)
    state = device.program(jnp.full(2000, 12e-6), key=key)
    pulsed = device.apply_pulses(state, 5, key=key)

    for s in (state, pulsed):
        g = np.asarray(device.read(s, 100.0, key=key))
        faults = np.asarray(s.faults)
        np.testing.assert_array_equal(g[faults == SA0], 0.0)
        np.testing.assert_array_equal(g[faults == SA1], np.float32(G_MAX))
        assert np.all((g[faults == 0] > 0) & (g[faults == 0] < G_MAX))


def test_fixed_fault_map_reused(key):
    faults = jnp.array([[0, 1], [2, 0]], jnp.int8)
    device = StuckAtFaults(IdealDevice(), fault_map=faults)
    for seed in range(3):
        state = device.program(jnp.full((2, 2), 10e-6), key=jax.random.key(seed))
        np.testing.assert_array_equal(state.faults, faults)
        np.testing.assert_array_equal(state.g, np.float32([[10e-6, 0.0], [G_MAX, 10e-6]]))


def test_faults_with_program_and_verify(key):
    faults = jnp.array([SA0, 0, SA1], jnp.int8)
    device = StuckAtFaults(PCM(), fault_map=faults)
    state = device.program(jnp.full(3, 12e-6), key=key, verify=ProgramVerify(tolerance=1e-6))

    np.testing.assert_array_equal(state.g[jnp.array([0, 2])], np.float32([0.0, G_MAX]))
    assert abs(float(state.g[1]) - 12e-6) <= 1e-6


def test_apply_faults_on_conductances():
    g = jnp.array([1e-6, 2e-6, 3e-6])
    faults = jnp.array([SA1, 0, SA0], jnp.int8)

    np.testing.assert_array_equal(apply_faults(g, faults, 0.0, 5e-6), np.float32([5e-6, 2e-6, 0.0]))


def test_faulty_tile_jit_and_vmap(key, rng):
    tile = Tile(device=StuckAtFaults(PCM(), sa0_rate=0.05, sa1_rate=0.05))
    weights = jnp.asarray(rng.normal(size=(6, 4)), jnp.float32)
    x = jnp.asarray(rng.normal(size=(3, 6)), jnp.float32)

    keys = jax.random.split(key, 3)
    jitted = jax.jit(lambda k: tile.forward(weights, x, 10.0, key=k))(keys[1])
    batched = jax.vmap(lambda k: tile.forward(weights, x, 10.0, key=k))(keys)

    np.testing.assert_allclose(batched[1], jitted, rtol=1e-4, atol=1e-5)
    assert batched.shape == (3, 3, 4)
    assert np.all(np.isfinite(batched))


def test_fault_rates_rejected_when_invalid(key):
    with pytest.raises(ValueError, match="sa0_rate"):
        StuckAtFaults(PCM(), sa0_rate=-0.1)
    with pytest.raises(ValueError, match="<= 1"):
        fault_map(key, (4,), 0.6, 0.5)
    with pytest.raises(ValueError, match="codes"):
        StuckAtFaults(PCM(), fault_map=jnp.array([0, 3]))
    with pytest.raises(ValueError, match="shape"):
        StuckAtFaults(PCM(), fault_map=jnp.zeros(3)).program(jnp.zeros(4), key=key)


# Quantization.


@settings(max_examples=30, deadline=None)
@given(levels=st.integers(2, 64), seed=st.integers(0, 2**31 - 1), scale=st.floats(0.0, 3.0))
def test_quantize_at_most_n_values(levels, seed, scale):
    g = jax.random.normal(jax.random.key(seed), (500,)) * scale * G_MAX + 0.5 * G_MAX
    quantized = np.asarray(quantize(g, levels, 0.0, G_MAX))
    grid = np.linspace(0.0, G_MAX, levels)

    assert np.unique(quantized).size <= levels
    assert np.all(np.min(np.abs(quantized[:, None] - grid[None, :]), axis=1) <= 1e-6 * G_MAX)


def test_quantized_device_reads_levels_over_time(key):
    levels = 5
    device = Quantized(PCM(), levels)
    state = device.program(jax.random.uniform(key, (4000,), maxval=G_MAX), key=key)
    reads = np.stack([np.asarray(device.read(state, t, key=jax.random.fold_in(key, i))) for i, t in enumerate((0.0, 1e3, 1e6))])

    assert np.unique(reads).size <= levels
    for device_reads in reads.T[:50]:
        assert np.unique(device_reads).size <= levels


def test_quantized_tile_and_straight_through(key, rng):
    weights = jnp.asarray(rng.normal(size=(6, 4)), jnp.float32)
    x = jnp.asarray(rng.normal(size=(3, 6)), jnp.float32)
    tile = Tile(device=Quantized(IdealDevice(), 3))
    batched = jax.jit(jax.vmap(lambda k: tile.forward(weights, x, key=k)))(jax.random.split(key, 2))

    assert batched.shape == (2, 3, 4)
    assert np.all(np.isfinite(batched))
    gradient = jax.grad(lambda g: jnp.sum(quantize(g, 4, 0.0, G_MAX, straight_through=True)))(jnp.full(3, 7e-6))
    np.testing.assert_array_equal(gradient, 1.0)


@pytest.mark.parametrize("levels", [1, 0, 2.5, True, "8", None])
def test_quantize_rejects_bad_levels(levels):
    with pytest.raises(ValueError, match="levels"):
        quantize(jnp.zeros(3), levels, 0.0, G_MAX)
    with pytest.raises(ValueError, match="levels"):
        Quantized(IdealDevice(), levels)
