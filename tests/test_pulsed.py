"""Tests of the pulse-update devices and their presets."""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from xbar.devices import DeviceState, ProgramVerify
from xbar.devices.presets import list_presets, nonlinearity_a_norm, preset, preset_info
from xbar.devices.pulsed import (
    ConstantStep,
    ExponentialStep,
    ExpStep,
    PiecewiseStep,
    PowerStep,
    PulsedDevice,
    SoftBoundsStep,
    StepNoise,
    exponential_curve,
    pulse_trajectory,
)

G_MAX = 10e-6

STEP_MODELS = {
    "constant": ConstantStep(0.02),
    "soft_bounds": SoftBoundsStep(0.03),
    "linear": SoftBoundsStep(0.03, 0.5),
    "exponential": ExponentialStep(0.5, 50.0),
    "exponential_convex": ExponentialStep(-0.2, 50.0),
    "exp_step": ExpStep(0.01, 1.2, -5.0),
    "power": PowerStep(0.03, 2.0),
    "piecewise": PiecewiseStep(jnp.array([0.03, 0.02, 0.01])),
}


def _state(g):
    g = jnp.asarray(g, jnp.float32)
    return DeviceState(g=g, iterations=jnp.ones(g.shape, jnp.int32))


def _device(model, **kwargs):
    return PulsedDevice(up=model, down=model, g_min=0.0, g_max=G_MAX, **kwargs)


@pytest.mark.parametrize("name", list(STEP_MODELS))
def test_pulse_polarity_moves_opposite_ways(name, key):
    device = _device(STEP_MODELS[name])
    start = _state(jnp.full((3,), 0.5 * G_MAX))
    after = device.apply_pulses(start, jnp.array([5, -5, 0]), key=key).g
    assert after[0] > start.g[0]
    assert after[1] < start.g[1]
    assert after[2] == start.g[2]


@pytest.mark.parametrize("name", list_presets())
def test_preset_polarity_moves_opposite_ways(name, key):
    device = preset(name)
    noise_free = eqx.tree_at(lambda d: (d.up.noise, d.down.noise), device, (StepNoise(), StepNoise()))
    middle = 0.5 * (device.g_min + device.g_max)
    after = noise_free.apply_pulses(_state(jnp.full((2,), middle)), jnp.array([3, -3]), key=key).g
    assert after[0] > middle
    assert after[1] < middle


@settings(max_examples=30, deadline=None)
@given(
    counts=st.lists(st.integers(-40, 40), min_size=6, max_size=6),
    start=st.floats(0.0, 1.0),
    noise=st.floats(0.0, 0.5),
    name=st.sampled_from(list(STEP_MODELS)),
)
def test_bounds_hold_for_any_counts(counts, start, noise, name):
    # Large step noise drives the device against both bounds, where clipping must hold it.
    model = eqx.tree_at(lambda m: m.std_nodes, STEP_MODELS[name], jnp.full(3, noise), is_leaf=lambda x: x is None) \
        if name == "piecewise" else eqx.tree_at(lambda m: m.noise, STEP_MODELS[name], StepNoise(absolute=noise))
    device = PulsedDevice(up=model, down=model, g_min=1e-6, g_max=G_MAX)
    g0 = jnp.full((len(counts),), 1e-6 + start * (G_MAX - 1e-6))
    g = device.apply_pulses(_state(g0), jnp.array(counts), key=jax.random.key(sum(map(abs, counts)))).g
    assert bool(jnp.all(g >= 1e-6))
    assert bool(jnp.all(g <= G_MAX))
    assert bool(jnp.all(jnp.isfinite(g)))


def test_exponential_train_follows_closed_form(key):
    # NL 2.4 -> A_norm 0.499181; the NeuroSim curve passes Gn(0.5) = 0.7314 (4 decimals).
    a_norm, interpolated = nonlinearity_a_norm(2.4)
    assert not interpolated
    assert a_norm == 0.499181
    device = _device(ExponentialStep(a_norm, 100.0))
    path = np.asarray(pulse_trajectory(device, 0.0, 100, key=key)) / G_MAX
    x = np.arange(101) / 100
    np.testing.assert_allclose(path, np.asarray(exponential_curve(x, a_norm)), atol=2e-6)
    assert path[50] == pytest.approx(0.7314, abs=5e-5)
    assert path[100] == pytest.approx(1.0, abs=2e-6)


def test_exponential_depression_mirrors_potentiation(key):
    device = _device(ExponentialStep(-0.2, 60.0))
    down = np.asarray(pulse_trajectory(device, G_MAX, 60, key=key, potentiate=False)) / G_MAX
    up = np.asarray(pulse_trajectory(device, 0.0, 60, key=key)) / G_MAX
    # Depression works on u near 1, where a float32 step rounds to 6e-8; 60 steps stay below 1e-5.
    np.testing.assert_allclose(1.0 - down, up, rtol=0, atol=1e-5)


def test_asymmetric_steps(key):
    device = PulsedDevice(up=ConstantStep(0.01), down=ConstantStep(0.03), g_min=0.0, g_max=G_MAX)
    g = device.apply_pulses(_state(jnp.full((2,), 0.5 * G_MAX)), jnp.array([10, -10]), key=key).g / G_MAX
    np.testing.assert_allclose(np.asarray(g), [0.6, 0.2], atol=1e-6)


def test_per_device_parameters_match_scalar_devices(key):
    steps = jnp.array([0.01, 0.02, 0.05])
    g_max = jnp.array([5e-6, 10e-6, 20e-6])
    spread = PulsedDevice(up=SoftBoundsStep(steps), down=SoftBoundsStep(steps), g_min=0.0, g_max=g_max)
    together = spread.apply_pulses(_state(jnp.zeros(3)), 7, key=key).g
    for index in range(3):
        single = PulsedDevice(up=SoftBoundsStep(float(steps[index])), down=SoftBoundsStep(float(steps[index])),
                              g_min=0.0, g_max=float(g_max[index]))
        alone = single.apply_pulses(_state(jnp.zeros(1)), 7, key=key).g
        assert float(together[index]) == pytest.approx(float(alone[0]), rel=1e-6)


def test_piecewise_tables_per_device(key):
    tables = jnp.array([[0.01, 0.01], [0.05, 0.05]])
    device = _device(PiecewiseStep(tables))
    g = device.apply_pulses(_state(jnp.zeros(2)), 4, key=key).g / G_MAX
    np.testing.assert_allclose(np.asarray(g), [0.04, 0.2], atol=1e-6)


def test_step_noise_statistics(key):
    # 20000 single pulses: the standard error of the mean step is 0.002 / sqrt(2e4) = 1.4e-5 and that of
    # its std 0.002 / sqrt(4e4) = 1e-5, so 6e-5 is over 4 standard errors.
    n = 20_000
    device = _device(ConstantStep(0.01, StepNoise(relative=0.1, absolute=0.001)))
    g = device.apply_pulses(_state(jnp.full((n,), 0.5 * G_MAX)), 1, key=key).g
    change = np.asarray(g, np.float64) / G_MAX - 0.5
    assert change.mean() == pytest.approx(0.01, abs=6e-5)
    assert change.std() == pytest.approx(0.002, abs=6e-5)


def test_power_step_noise_slope(key):
    # The slope term adds 0.01 u: at u = 0.5 the std is 0.005 (5000 pulses; 4 standard errors = 2.8e-4).
    device = _device(ConstantStep(0.0, StepNoise(slope=0.01)))
    g = device.apply_pulses(_state(jnp.full((5000,), 0.5 * G_MAX)), 1, key=key).g
    assert float(jnp.std(g / G_MAX)) == pytest.approx(0.005, abs=2.8e-4)


def test_write_noise_and_verify(key):
    # 20000 devices: the standard error of the std is sigma / sqrt(4e4) = 0.5 %; 3 % is 6 standard errors.
    device = _device(ConstantStep(0.01), write_noise=0.2e-6)
    target = jnp.full((20_000,), 5e-6)
    state = device.program(target, key=key)
    assert float(jnp.std(state.g)) == pytest.approx(0.2e-6, rel=0.03)
    # One attempt misses +-0.5 sigma with probability 0.62, so all 40 attempts miss with 4e-9 per device.
    verified = device.program(target[:2000], key=key, verify=ProgramVerify(max_iterations=40, tolerance=0.1e-6))
    assert float(jnp.max(jnp.abs(verified.g - target[:2000]))) <= 0.1e-6
    assert int(jnp.max(verified.iterations)) > 1


def test_read_noise(key):
    device = _device(ConstantStep(0.01), read_noise=0.1e-6)
    state = _state(jnp.full((20_000,), 5e-6))
    reads = device.read(state, 0.0, key=key)
    assert float(jnp.std(reads)) == pytest.approx(0.1e-6, rel=0.03)
    assert bool(jnp.all(device.drift(state, 10.0) == state.g))


def test_zero_counts_keep_exact_state(key):
    device = _device(ConstantStep(0.01, StepNoise(absolute=0.1)))
    g0 = jnp.array([1.234567e-6, 7.654321e-6])
    after = device.apply_pulses(_state(g0), jnp.zeros(2), key=key)
    assert bool(jnp.all(after.g == g0))


def test_jit_with_traced_counts(key):
    device = _device(SoftBoundsStep(0.05))
    counts = jnp.array([3, -2, 0])
    start = _state(jnp.full((3,), 0.5 * G_MAX))
    eager = device.apply_pulses(start, counts, key=key).g
    traced = jax.jit(lambda n: device.apply_pulses(start, n, key=key).g)(counts)
    fixed = jax.jit(lambda n: device.apply_pulses(start, n, key=key, max_pulses=5).g)(counts)
    np.testing.assert_allclose(np.asarray(traced), np.asarray(eager), rtol=1e-6)
    np.testing.assert_allclose(np.asarray(fixed), np.asarray(eager), rtol=1e-6)


def test_vmap_over_parameters(key):
    start = _state(jnp.zeros(2))

    def final(step):
        device = _device(SoftBoundsStep(step))
        return device.apply_pulses(start, jnp.array([4, 8]), key=key, max_pulses=8).g

    batched = jax.vmap(final)(jnp.array([0.01, 0.1]))
    assert batched.shape == (2, 2)
    np.testing.assert_allclose(np.asarray(batched[1]), np.asarray(final(0.1)), rtol=1e-6)


def test_grad_through_pulses(key):
    start = _state(jnp.full((2,), 0.2 * G_MAX))

    def total(a_norm, g0):
        device = _device(ExponentialStep(a_norm, 50.0, StepNoise(absolute=0.001)))
        state = DeviceState(g=g0, iterations=start.iterations)
        return jnp.sum(device.apply_pulses(state, jnp.array([10, -10]), key=key, max_pulses=10).g) / G_MAX

    grad_a, grad_g = jax.grad(total, argnums=(0, 1))(0.5, start.g)
    assert np.isfinite(float(grad_a))
    assert float(grad_a) != 0.0
    assert bool(jnp.all(jnp.isfinite(grad_g)))
    # Finite difference of the same (fixed-key) function.
    h = 1e-3
    numeric = (total(0.5 + h, start.g) - total(0.5 - h, start.g)) / (2 * h)
    assert float(grad_a) == pytest.approx(float(numeric), rel=0.02)


def test_grad_through_power_step_at_bound(key):
    def top(gamma):
        device = _device(PowerStep(0.5, gamma))
        return jnp.sum(device.apply_pulses(_state(jnp.array([0.9 * G_MAX])), 5, key=key, max_pulses=5).g)

    assert np.isfinite(float(jax.grad(top)(2.0)))


@pytest.mark.parametrize(
    ("build", "match"),
    [
        (lambda: PulsedDevice(g_min=2e-6, g_max=1e-6), "greater than g_min"),
        (lambda: PulsedDevice(g_min=jnp.array([0.0, 3e-6]), g_max=jnp.array([1e-6, 2e-6])), "greater than g_min"),
        (lambda: ConstantStep(-0.1), "ConstantStep.step"),
        (lambda: ExponentialStep(0.0, 10.0), "nonzero"),
        (lambda: ExponentialStep(0.5, 0.0), "n_pulses"),
        (lambda: PowerStep(0.1, 0.0), "gamma"),
        (lambda: PiecewiseStep(jnp.array([0.1])), "at least 2 nodes"),
        (lambda: PiecewiseStep(jnp.array([0.1, 0.1]), jnp.array([-0.1, 0.0])), "std_nodes"),
        (lambda: StepNoise(relative=-1.0), "relative"),
        (lambda: PulsedDevice(write_noise=float("nan")), "write_noise"),
        (lambda: PulsedDevice(up="constant"), "step models"),
    ],
)
def test_invalid_parameters_raise(build, match):
    with pytest.raises(ValueError, match=match):
        build()


def test_invalid_pulse_inputs_raise(key):
    device = _device(ConstantStep(0.01))
    with pytest.raises(ValueError, match="n_pulses"):
        device.apply_pulses(_state(jnp.zeros(1)), jnp.array([jnp.nan]), key=key)
    with pytest.raises(ValueError, match="max_pulses"):
        device.apply_pulses(_state(jnp.zeros(1)), 1, key=key, max_pulses=1.5)
    with pytest.raises(ValueError, match="n_pulses"):
        pulse_trajectory(device, 0.0, -1, key=key)


def test_presets_listed_with_sources():
    names = list_presets()
    assert len(names) == 12
    for name in names:
        info = preset_info(name)
        assert info.source
        assert isinstance(preset(name), PulsedDevice)
    with pytest.raises(ValueError, match="unknown device preset"):
        preset("nope")


def test_ag_a_si_preset_reaches_g_max(key):
    device = preset("ag_a_si")
    noise_free = eqx.tree_at(lambda d: (d.up.noise, d.down.noise), device, (StepNoise(), StepNoise()))
    path = pulse_trajectory(noise_free, device.g_min, 97, key=key)
    assert float(path[-1]) == pytest.approx(device.g_max, rel=1e-5)
    assert device.g_max / device.g_min == pytest.approx(12.5)


def test_unlisted_labels_are_marked_assumed():
    a_norm, interpolated = nonlinearity_a_norm(-0.63)
    assert interpolated
    # Between the published labels 0.5 and 1.0, negative with the label.
    assert -2.519877 < a_norm < -1.251653
    assert any("NL -0.63" in entry for entry in preset_info("taox_hfox").assumed)
    with pytest.raises(ValueError, match="NL"):
        nonlinearity_a_norm(0.0)
