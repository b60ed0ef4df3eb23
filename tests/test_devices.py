"""Tests of the device interface: the ideal device, program-and-verify, keys, transformations and input checks."""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from xbar.devices import PCM, IdealDevice, ProgramVerify

G_MAX = 25e-6  # S
DAY = 86400.0  # s


# The ideal device.


def test_ideal_program_is_exact_and_clipped(key):
    device = IdealDevice(g_min=1e-6, g_max=20e-6)
    target = jnp.array([-5e-6, 0.0, 1e-6, 7.5e-6, 20e-6, 30e-6])
    state = device.program(target, key=key)

    np.testing.assert_array_equal(state.g, np.array([1e-6, 1e-6, 1e-6, 7.5e-6, 20e-6, 20e-6], np.float32))
    np.testing.assert_array_equal(state.iterations, 1)


def test_ideal_read_never_changes(key):
    device = IdealDevice()
    state = device.program(jnp.linspace(0.0, G_MAX, 5), key=key)

    for t in (0.0, 1.0, DAY, 1e9):
        np.testing.assert_array_equal(device.read(state, t, key=jax.random.key(int(t) % 7)), state.g)
        np.testing.assert_array_equal(device.drift(state, t), state.g)


def test_ideal_pulses_linear_and_clipped(key):
    device = IdealDevice(pulse_step=1e-6)
    state = device.program(jnp.array([0.0, 5e-6, 10e-6, 24e-6, 10e-6]), key=key)
    after = device.apply_pulses(state, jnp.array([3, -2, 0, 4, -20]), key=key)

    np.testing.assert_allclose(after.g, [3e-6, 3e-6, 10e-6, G_MAX, 0.0], rtol=1e-6, atol=1e-12)


def test_ideal_pulse_gradient_is_step_inside_range(key):
    device = IdealDevice(pulse_step=1e-6)
    state = device.program(jnp.array([5e-6, 24.5e-6]), key=key)
    grad = jax.grad(lambda n: jnp.sum(device.apply_pulses(state, n, key=key).g * jnp.array([1.0, 0.0])))(
        jnp.array([2.0, 2.0])
    )

    np.testing.assert_allclose(grad, [1e-6, 0.0], rtol=1e-6)
    clipped = jax.grad(lambda n: device.apply_pulses(state, n, key=key).g[1])(jnp.array([2.0, 2.0]))
    np.testing.assert_array_equal(clipped, 0.0)


# Program-and-verify, with PCM write noise (about 0.95 uS at half range, Joshi et al. 2020).


def verify_targets():
    return jnp.tile(jnp.linspace(0.1 * G_MAX, G_MAX, 64), 32)


def test_verify_records_iterations_per_device(key):
    verify = ProgramVerify(max_iterations=6, tolerance=0.5e-6)
    target = verify_targets()
    state = PCM().program(target, key=key, verify=verify)
    iterations = np.asarray(state.iterations)
    error = np.abs(np.asarray(state.g) - np.asarray(target))

    assert iterations.dtype == np.int32
    assert iterations.min() >= 1
    assert iterations.max() <= verify.max_iterations
    # Every device is within the tolerance, or used all its attempts.
    assert np.all((error <= verify.tolerance) | (iterations == verify.max_iterations))
    # Both outcomes occur with this noise level, so the check above is not vacuous.
    assert np.any(iterations == 1)
    assert np.any(iterations > 1)


def test_verify_first_pass_keeps_first_draw(key):
    device = PCM()
    target = verify_targets()
    single = device.program(target, key=key)
    verified = device.program(target, key=key, verify=ProgramVerify(max_iterations=6, tolerance=0.5e-6))
    first = np.asarray(verified.iterations) == 1

    np.testing.assert_array_equal(np.asarray(verified.g)[first], np.asarray(single.g)[first])
    assert np.all(np.abs(np.asarray(single.g) - np.asarray(target))[~first] > 0.5e-6)


def test_verify_loose_tolerance_needs_one_attempt(key):
    state = PCM().program(verify_targets(), key=key, verify=ProgramVerify(max_iterations=5, tolerance=1.0))

    np.testing.assert_array_equal(state.iterations, 1)


def test_verify_tighter_tolerance_needs_more_iterations(key):
    device = PCM()
    target = verify_targets()
    loose = device.program(target, key=key, verify=ProgramVerify(max_iterations=20, tolerance=1.0e-6))
    tight = device.program(target, key=key, verify=ProgramVerify(max_iterations=20, tolerance=0.2e-6))

    assert np.mean(tight.iterations) > np.mean(loose.iterations)
    assert np.max(tight.iterations) > np.max(loose.iterations)


def test_verify_reduces_spread(key):
    device = PCM()
    target = verify_targets()
    single_error = np.asarray(device.program(target, key=key).g) - np.asarray(target)
    verified = device.program(target, key=key, verify=ProgramVerify(max_iterations=20, tolerance=0.3e-6))
    verified_error = np.asarray(verified.g) - np.asarray(target)

    assert verified_error.std() < 0.5 * single_error.std()
    assert np.abs(verified_error).max() < np.abs(single_error).max()


def test_verify_rejects_bad_settings():
    with pytest.raises(ValueError, match="max_iterations"):
        ProgramVerify(max_iterations=0)
    with pytest.raises(ValueError, match="max_iterations"):
        ProgramVerify(max_iterations=2.5)
    with pytest.raises(ValueError, match="tolerance"):
        ProgramVerify(tolerance=-1e-6)


# Keys: the same key reproduces a draw, another key changes it.


def pcm_draws(key):
    device = PCM()
    state = device.program(jnp.linspace(0.0, G_MAX, 16), key=key)
    read = device.read(state, DAY, key=key)
    pulsed = device.apply_pulses(state, jnp.full(16, 2), key=key)
    return {"program": state.g, "nu": state.nu, "read": read, "pulses": pulsed.g}


def test_same_key_same_draws():
    first = pcm_draws(jax.random.key(3))
    second = pcm_draws(jax.random.key(3))

    for name in first:
        np.testing.assert_array_equal(first[name], second[name], err_msg=name)


def test_different_keys_different_draws():
    first = pcm_draws(jax.random.key(3))
    second = pcm_draws(jax.random.key(4))

    for name in first:
        # Targets at 0 S clamp to 0 S for half of the draws, so compare the devices with a positive target.
        assert np.all(np.asarray(first[name])[1:] != np.asarray(second[name])[1:]), name


def test_read_keys_differ_from_program_state(key):
    device = PCM()
    state = device.program(jnp.full(16, 0.5 * G_MAX), key=key)
    first = device.read(state, 1.0, key=jax.random.key(1))
    second = device.read(state, 1.0, key=jax.random.key(2))

    assert np.all(np.asarray(first) != np.asarray(second))


# Transformations.


@pytest.mark.parametrize("device", [IdealDevice(), PCM()], ids=["ideal", "pcm"])
def test_device_functions_under_jit(device, key):
    target = jnp.linspace(0.0, G_MAX, 8)
    state = device.program(target, key=key)
    verify = ProgramVerify(max_iterations=4, tolerance=0.5e-6)

    programmed = jax.jit(lambda t, k: device.program(t, key=k))(target, key)
    verified = jax.jit(lambda t, k: device.program(t, key=k, verify=verify))(target, key)
    drifted = jax.jit(device.drift)(state, 3600.0)
    read = jax.jit(lambda s, t, k: device.read(s, t, key=k))(state, 3600.0, key)
    pulsed = jax.jit(lambda s, n, k: device.apply_pulses(s, n, key=k, max_pulses=4))(state, jnp.full(8, 3), key)

    np.testing.assert_allclose(programmed.g, state.g, rtol=1e-6)
    np.testing.assert_allclose(verified.g, device.program(target, key=key, verify=verify).g, rtol=1e-6)
    np.testing.assert_allclose(drifted, device.drift(state, 3600.0), rtol=1e-6)
    np.testing.assert_allclose(read, device.read(state, 3600.0, key=key), rtol=1e-6)
    np.testing.assert_allclose(pulsed.g, device.apply_pulses(state, 3, key=key).g, rtol=1e-6)


def test_pcm_vmap_over_read_time(key):
    device = PCM()
    state = device.program(jnp.linspace(0.0, G_MAX, 8), key=key)
    times = jnp.array([0.0, 1.0, 3600.0, DAY])
    read = jax.vmap(lambda t: device.read(state, t, key=key))(times)

    assert read.shape == (4, 8)
    for i, t in enumerate(np.asarray(times)):
        np.testing.assert_allclose(read[i], device.read(state, float(t), key=key), rtol=1e-6)


def test_pcm_vmap_over_parameters(key):
    base = PCM()
    target = jnp.linspace(0.0, G_MAX, 8)
    state = base.program(target, key=key)

    scales = jnp.array([0.0, 1.0, 2.0])
    drifted = jax.vmap(lambda s: eqx.tree_at(lambda d: d.drift_scale, base, s).drift(state, DAY))(scales)
    for i, s in enumerate(np.asarray(scales)):
        np.testing.assert_allclose(drifted[i], PCM(drift_scale=float(s)).drift(state, DAY), rtol=1e-6)
    np.testing.assert_array_equal(drifted[0], state.g)

    g_maxes = jnp.array([10e-6, 25e-6, 40e-6])
    programmed = jax.vmap(lambda g: eqx.tree_at(lambda d: d.g_max, base, g).program(target, key=key).g)(g_maxes)
    for i, g in enumerate(np.asarray(g_maxes)):
        np.testing.assert_allclose(programmed[i], PCM(g_max=float(g)).program(target, key=key).g, rtol=1e-5)


def test_pcm_vmap_over_keys(key):
    device = PCM()
    keys = jax.random.split(key, 4)
    programmed = jax.vmap(lambda k: device.program(jnp.full(8, 0.5 * G_MAX), key=k).g)(keys)

    for i in range(4):
        np.testing.assert_allclose(programmed[i], device.program(jnp.full(8, 0.5 * G_MAX), key=keys[i]).g, rtol=1e-6)
    assert len(np.unique(np.asarray(programmed))) == programmed.size


def test_pcm_gradients_finite(key):
    base = PCM()
    target = jnp.linspace(0.0, G_MAX, 8)
    state = base.program(target, key=key)

    def loss(drift_scale, g_max, target):
        device = eqx.tree_at(lambda d: (d.drift_scale, d.g_max), base, (drift_scale, g_max))
        programmed = device.program(target, key=key)
        read = device.read(programmed, DAY, key=key)
        pulsed = device.apply_pulses(state, 2, key=key)
        return jnp.sum(read) + jnp.sum(pulsed.g) + jnp.sum(device.drift(state, DAY))

    grads = jax.grad(loss, argnums=(0, 1, 2))(1.0, G_MAX, target)

    for grad in grads:
        assert np.all(np.isfinite(np.asarray(grad)))
    # Longer drift lowers every conductance, so the loss falls with drift_scale.
    assert grads[0] < 0


# Input checks.


@pytest.mark.parametrize("device_class", [IdealDevice, PCM])
def test_reject_bad_conductance_range(device_class):
    with pytest.raises(ValueError, match=r"g_min must be >= 0 S, got -1e-06"):
        device_class(g_min=-1e-6)
    with pytest.raises(ValueError, match=r"g_max \(1e-06 S\) must be greater than g_min \(2e-05 S\)"):
        device_class(g_min=20e-6, g_max=1e-6)
    with pytest.raises(ValueError, match="g_max.*must be greater"):
        device_class(g_min=1e-6, g_max=1e-6)
    with pytest.raises(ValueError, match="must be finite, got 0.0 and inf"):
        device_class(g_max=float("inf"))


def test_reject_bad_pcm_parameters():
    with pytest.raises(ValueError, match="drift_scale must be finite and >= 0, got -1.0"):
        PCM(drift_scale=-1.0)
    with pytest.raises(ValueError, match="t0 must be finite and > 0, got 0.0"):
        PCM(t0=0.0)
    with pytest.raises(ValueError, match="read_noise_scale.*got nan"):
        PCM(read_noise_scale=float("nan"))
    with pytest.raises(ValueError, match="prog_coeff contains non-finite"):
        PCM(prog_coeff=(0.0, float("nan"), 0.0))
    with pytest.raises(ValueError, match="pulse_step must be finite and > 0"):
        IdealDevice(pulse_step=0.0)


@pytest.mark.parametrize("device", [IdealDevice(), PCM()], ids=["ideal", "pcm"])
@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_reject_non_finite_targets(device, bad, key):
    with pytest.raises(ValueError, match=rf"target conductance contains non-finite values .*{bad}"):
        device.program(jnp.array([1e-6, bad]), key=key)


@pytest.mark.parametrize("device", [IdealDevice(), PCM()], ids=["ideal", "pcm"])
def test_reject_bad_read_time(device, key):
    state = device.program(jnp.array([1e-6, 2e-6]), key=key)

    with pytest.raises(ValueError, match=r"read time t must be a finite time >= 0 s .*got -1.0 s"):
        device.read(state, -1.0, key=key)
    with pytest.raises(ValueError, match=r"read time t .*got -5.0 s"):
        device.drift(state, jnp.array([1.0, -5.0]))
    with pytest.raises(ValueError, match=r"read time t .*got nan s"):
        device.read(state, float("nan"), key=key)


@pytest.mark.parametrize("device", [IdealDevice(), PCM()], ids=["ideal", "pcm"])
def test_reject_non_finite_pulse_counts(device, key):
    state = device.program(jnp.array([1e-6, 2e-6]), key=key)

    with pytest.raises(ValueError, match="n_pulses contains non-finite values"):
        device.apply_pulses(state, jnp.array([1.0, float("nan")]), key=key)


def test_program_with_pulses_reaches_targets(key):
    from xbar.devices import preset, program_with_pulses

    device = preset("taox_hfox")
    target = jnp.linspace(device.g_min, device.g_max, 40)
    tolerance = 0.02 * (device.g_max - device.g_min)

    state = jax.jit(lambda t: program_with_pulses(device, t, key=key, tolerance=tolerance, max_pulses=500))(target)

    assert np.all(np.abs(np.asarray(state.g - target)) <= tolerance * 1.0001)


def test_program_with_pulses_stops_at_max_pulses(key):
    from xbar.devices import program_with_pulses

    device = IdealDevice(pulse_step=0.25e-6)
    state = program_with_pulses(device, jnp.array([25e-6]), key=key, tolerance=0.1e-6, max_pulses=10)

    np.testing.assert_allclose(np.asarray(state.g), [2.5e-6], rtol=1e-5)


def test_program_with_pulses_rejects_bad_settings(key):
    from xbar.devices import program_with_pulses

    with pytest.raises(ValueError, match="tolerance"):
        program_with_pulses(IdealDevice(), jnp.ones(3) * 1e-6, key=key, tolerance=0.0)
    with pytest.raises(ValueError, match="max_pulses"):
        program_with_pulses(IdealDevice(), jnp.ones(3) * 1e-6, key=key, tolerance=1e-7, max_pulses=-1)
