"""Tests of the statistical PCM model against its published equations and constants.

Inference model: S. R. Nandakumar et al., IEEE ICECS 2019, and V. Joshi et al., Nature Communications 11, 2473
(2020), with the constants of IBM aihwkit's `PCMLikeNoiseModel` (g_max = 25 uS, t0 = 20 s, t_read = 250 ns).
Gradual SET: aihwkit's `PCMPresetDevice`, fitted to S. R. Nandakumar et al., Frontiers in Neuroscience 14, 406
(2020); its weight range [0, 2] maps onto [0, g_max], so its weight steps are halved here.

The reference functions below restate the published equations in NumPy float64, independently of the library.
Sample statistics are checked at five standard errors. The sample mean of n draws of standard deviation sigma
has standard error sigma / sqrt(n). The sample standard deviation of n normal draws has relative standard error
1 / sqrt(2 (n - 1)).
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

from xbar.devices import PCM, draws_normals
from xbar.variability import StuckAtFaults

G_MAX = 25e-6  # S
T0 = 20.0  # s
T_READ = 250e-9  # s
DAY = 86400.0  # s
N_SAMPLES = 200_000
Z = 5.0  # standard errors allowed in every statistical check


def sigma_prog_reference(x):
    """Write-noise standard deviation in S at x = G_T / g_max (Joshi et al. 2020 fit, g_max = 25 uS)."""
    return (0.26348 + 1.9650 * x - 1.1731 * x**2) * 1e-6


def mu_nu_reference(x):
    return np.clip(-0.0155 * np.log(x) + 0.0244, 0.049, 0.1)


def sigma_nu_reference(x):
    return np.clip(-0.0125 * np.log(x) - 0.0059, 0.008, 0.045)


def q_s_reference(x):
    return np.minimum(0.0088 / np.maximum(x**0.65, 1e-3), 0.2)


def time_factor_reference(t):
    """sqrt(ln((t + t0 + t_read) / (2 t_read))): growth of the accumulated 1/f read noise."""
    return np.sqrt(np.log((t + T0 + T_READ) / (2 * T_READ)))


def relative_std_error(n):
    return 1.0 / np.sqrt(2.0 * (n - 1))


def exact_state(device, g):
    """Program `g` and then overwrite the conductance with `g` itself, removing the write noise."""
    state = device.program(g, key=jax.random.key(1))
    return eqx.tree_at(lambda s: s.g, state, jnp.asarray(g, jnp.float32))


# Published values, rounded to 4 decimals: x, sigma_prog (uS), mu_nu, sigma_nu, Q_s.
PUBLISHED_TABLE = [
    (0.01, 0.2830, 0.0958, 0.0450, 0.1756),
    (0.05, 0.3588, 0.0708, 0.0315, 0.0617),
    (0.10, 0.4482, 0.0601, 0.0229, 0.0393),
    (0.20, 0.6096, 0.0493, 0.0142, 0.0251),
    (0.25, 0.6814, 0.0490, 0.0114, 0.0217),
    (0.50, 0.9527, 0.0490, 0.0080, 0.0138),
    (0.75, 1.0774, 0.0490, 0.0080, 0.0106),
    (1.00, 1.0554, 0.0490, 0.0080, 0.0088),
]
# Half a unit in the fourth decimal, plus float32 rounding of the library.
TABLE_TOLERANCE = 0.5e-4 + 1e-6


@pytest.mark.parametrize("x, sigma_prog_us, mu_nu, sigma_nu, q_s", PUBLISHED_TABLE)
def test_statistics_match_published_table(x, sigma_prog_us, mu_nu, sigma_nu, q_s):
    device = PCM()
    g = x * G_MAX

    assert abs(float(device.programming_noise_std(g)) * 1e6 - sigma_prog_us) <= TABLE_TOLERANCE
    assert abs(float(device.drift_exponent_mean(g)) - mu_nu) <= TABLE_TOLERANCE
    assert abs(float(device.drift_exponent_std(g)) - sigma_nu) <= TABLE_TOLERANCE
    q_s_model = float(device.read_noise_std(g, DAY)) / time_factor_reference(DAY)
    assert abs(q_s_model - q_s) <= TABLE_TOLERANCE

    # The independent restatement agrees with the rounded table too.
    assert abs(sigma_prog_reference(x) * 1e6 - sigma_prog_us) <= TABLE_TOLERANCE
    assert abs(q_s_reference(x) - q_s) <= TABLE_TOLERANCE


def test_statistics_match_equations_on_dense_grid():
    device = PCM()
    x = np.linspace(1e-4, 1.0, 997)
    g = x * G_MAX

    np.testing.assert_allclose(device.programming_noise_std(g), sigma_prog_reference(x), rtol=1e-5)
    np.testing.assert_allclose(device.drift_exponent_mean(g), mu_nu_reference(x), rtol=1e-5)
    np.testing.assert_allclose(device.drift_exponent_std(g), sigma_nu_reference(x), rtol=1e-5)
    np.testing.assert_allclose(
        device.read_noise_std(g, DAY), q_s_reference(x) * time_factor_reference(DAY), rtol=1e-5
    )


def test_mean_drift_exponent_bounded_monotone():
    device = PCM()
    mu = np.asarray(device.drift_exponent_mean(np.linspace(0.0, G_MAX, 2001)))

    assert mu.min() >= np.float32(0.049)
    assert mu.max() <= np.float32(0.1)
    assert np.all(np.diff(mu) <= 0)


@pytest.mark.parametrize(
    "t, factor",
    [(1.0, 4.1897), (3600.0, 4.7648), (DAY, 5.0868), (365 * DAY, 5.6370)],
)
def test_read_noise_time_factor(t, factor):
    device = PCM()
    g = 0.5 * G_MAX
    model_factor = float(device.read_noise_std(g, t)) / q_s_reference(0.5)

    assert abs(model_factor - factor) <= TABLE_TOLERANCE * 5  # the factor is printed with 4 decimals near 5


def test_read_noise_grows_as_sqrt_log_time():
    device = PCM()
    ratio = float(device.read_noise_std(G_MAX, DAY) / device.read_noise_std(G_MAX, 1.0))

    assert ratio == pytest.approx(5.0868 / 4.1897, abs=1e-4)


@pytest.mark.parametrize("x", [0.1, 0.5, 1.0])
def test_programming_noise_matches_sigma(x, key):
    # At x >= 0.1 the target lies >= 5.6 sigma above 0 S, so the clamp at 0 S changes no sample in practice.
    device = PCM()
    target = x * G_MAX
    state = device.program(jnp.full(N_SAMPLES, target), key=key)
    error = np.asarray(state.g, np.float64) - target
    sigma = sigma_prog_reference(x)

    assert abs(error.mean()) <= Z * sigma / np.sqrt(N_SAMPLES)
    assert error.std(ddof=1) / sigma == pytest.approx(1.0, abs=Z * relative_std_error(N_SAMPLES))


def test_programming_noise_published_at_half_range(key):
    # The Joshi et al. 2020 fit gives 0.9527 uS at x = 0.5. The bound is five relative standard errors.
    state = PCM().program(jnp.full(N_SAMPLES, 0.5 * G_MAX), key=key)
    sample_std = np.std(np.asarray(state.g, np.float64) - 0.5 * G_MAX, ddof=1)

    assert sample_std / 0.9527e-6 == pytest.approx(1.0, abs=Z * relative_std_error(N_SAMPLES) + 1e-4)


def test_programming_noise_clamps_at_zero(key):
    state = PCM().program(jnp.zeros(N_SAMPLES), key=key)
    g = np.asarray(state.g)

    assert g.min() == 0.0
    # Half of the draws fall below 0 S and are clamped. The binomial standard error of that fraction is 0.5/sqrt(n).
    assert np.mean(g == 0.0) == pytest.approx(0.5, abs=Z * 0.5 / np.sqrt(N_SAMPLES))


@pytest.mark.parametrize("x", [0.25, 0.5])
def test_drift_exponent_matches_mean_and_spread(x, key):
    # At x = 0.25 and 0.5 the mean lies >= 4.3 sigma above 0, so the fold |mu + sigma xi| moves the sample mean
    # by less than 1e-6, well below its standard error of 2.5e-5.
    device = PCM()
    state = device.program(jnp.full(N_SAMPLES, x * G_MAX), key=key)
    nu = np.asarray(state.nu, np.float64)
    mu, sigma = mu_nu_reference(x), sigma_nu_reference(x)

    assert abs(nu.mean() - mu) <= Z * sigma / np.sqrt(N_SAMPLES)
    assert nu.std(ddof=1) / sigma == pytest.approx(1.0, abs=Z * relative_std_error(N_SAMPLES))


@pytest.mark.parametrize("x", [0.5, 1.0])
def test_read_noise_matches_sigma_at_one_day(x, key):
    # Without write noise Q_s is evaluated at x exactly. The relative residual read / drift - 1 then has standard
    # deviation Q_s(x) f(1 day) (0.0702 at x = 0.5, 0.0448 at x = 1), far from the clamp at 0 S.
    device = PCM(prog_noise_scale=0.0)
    state = device.program(jnp.full(N_SAMPLES, x * G_MAX), key=key)
    read = np.asarray(device.read(state, DAY, key=jax.random.key(7)), np.float64)
    drifted = np.asarray(device.drift(state, DAY), np.float64)
    residual = read / drifted - 1.0
    sigma = q_s_reference(x) * time_factor_reference(DAY)

    assert abs(residual.mean()) <= Z * sigma / np.sqrt(N_SAMPLES)
    assert residual.std(ddof=1) / sigma == pytest.approx(1.0, abs=Z * relative_std_error(N_SAMPLES))


def test_read_noise_relative_sigma_published_at_one_day():
    device = PCM()

    assert float(device.read_noise_std(G_MAX, DAY)) == pytest.approx(0.0448, abs=1e-4)
    assert float(device.read_noise_std(0.1 * G_MAX, DAY)) == pytest.approx(0.2000, abs=1e-4)


def test_drift_factor_is_one_at_time_zero(key):
    device = PCM()
    state = device.program(jnp.linspace(0.0, G_MAX, 64), key=key)

    np.testing.assert_array_equal(device.drift(state, 0.0), state.g)
    np.testing.assert_array_equal(device.drift_factor(jnp.array([0.0, 0.049, 0.1, 3.0]), 0.0), 1.0)


@pytest.mark.parametrize("t, nu, factor", [(1.0, 0.049, 0.9976), (3600.0, 0.049, 0.7751), (DAY, 0.049, 0.6635),
                                           (DAY, 0.1, 0.4330), (365 * DAY, 0.049, 0.4969)])
def test_drift_factor_published_values(t, nu, factor):
    assert float(PCM().drift_factor(nu, t)) == pytest.approx(factor, abs=TABLE_TOLERANCE)


def test_drift_follows_power_law(key):
    device = PCM(drift_scale=1.5)
    state = device.program(jnp.linspace(0.1 * G_MAX, G_MAX, 32), key=key)
    times = np.array([1.0, 60.0, 3600.0, DAY, 365 * DAY])
    expected = np.asarray(state.g)[None] * ((times[:, None] + T0) / T0) ** (-1.5 * np.asarray(state.nu)[None])

    drifted = jax.vmap(lambda t: device.drift(state, t))(jnp.asarray(times))

    np.testing.assert_allclose(drifted, expected, rtol=1e-5)


def test_drift_log_log_slope_is_minus_nu(key):
    # Noise-free drift has d ln G / d ln(t + t0) = -nu exactly, and float32 gradients agree to about 1e-6.
    device = PCM()
    state = device.program(jnp.array([5e-6]), key=key)

    def log_conductance(log_time):
        return jnp.log(device.drift(state, jnp.exp(log_time) - T0)[0])

    slope = jax.grad(log_conductance)(jnp.log(DAY + T0))

    assert float(slope) == pytest.approx(-float(state.nu[0]), rel=1e-5)


def test_drift_never_increases_conductance(key):
    device = PCM(drift_scale=3.0)
    state = device.program(jnp.linspace(0.0, G_MAX, 256), key=key)
    times = jnp.array([0.0, 1e-3, 1.0, 20.0, 3600.0, DAY, 1e9])
    drifted = np.asarray(jax.vmap(lambda t: device.drift(state, t))(times))

    assert np.all(np.diff(drifted, axis=0) <= 0)
    assert np.all(drifted <= np.asarray(state.g))


def test_key_and_normals_routes_agree(key):
    """Programming and reading with a key equal the explicit-normals methods fed the normals JAX draws."""
    device = PCM()
    target = jnp.linspace(0.0, G_MAX, 96).reshape(8, 12)
    state = device.program(target, key=key)
    # `program` draws its first attempt from fold_in(key, 0): write noise and drift exponent.
    normals = jax.random.normal(jax.random.fold_in(key, 0), (device.program_normals,) + target.shape)
    explicit = device.program_from_normals(target, normals)
    np.testing.assert_array_equal(state.g, explicit.g)
    np.testing.assert_array_equal(state.nu, explicit.nu)

    read_key = jax.random.fold_in(key, 1)
    normals = jax.random.normal(read_key, (device.read_normals,) + target.shape)
    np.testing.assert_array_equal(device.read(state, DAY, key=read_key), device.read_from_normals(state, DAY, normals))


def test_draws_normals_detects_overrides():
    class OwnRead(PCM):
        def read(self, state, t, *, key):
            return self.drift(state, t)

    class OwnProgram(PCM):
        def program(self, target, *, key, verify=None):
            return super().program(target, key=key, verify=verify)

    assert draws_normals(PCM())
    assert not draws_normals(OwnRead())
    assert not draws_normals(OwnProgram())
    assert not draws_normals(StuckAtFaults(PCM(), sa0_rate=0.1))


# Gradual SET and abrupt RESET.


def set_trajectory_reference(n_pulses, u0=0.0):
    """Noise-free SET trajectory in units of g_max: u += 0.005 (1 + 27.235 exp(-5 u)), clipped at 1."""
    u = u0
    out = [u]
    for _ in range(n_pulses):
        u = min(u + 0.005 * (1.0 + 27.235 * np.exp(-5.0 * u)), 1.0)
        out.append(u)
    return np.array(out)


def test_set_pulses_without_noise_match_preset(key):
    # aihwkit PCMPresetDevice mean response from w = 0: 0.2823, 0.924, 1.217 after 1, 10, 20 pulses on [0, 2].
    device = PCM(set_noise=0.0, prog_noise_scale=0.0)
    state = device.program(jnp.zeros(3), key=key)
    after = device.apply_pulses(state, jnp.array([1, 10, 20]), key=key)
    weight = 2.0 * np.asarray(after.g) / G_MAX

    assert weight[0] == pytest.approx(0.2823, abs=1e-4)
    assert weight[1] == pytest.approx(0.924, abs=1e-3)
    assert weight[2] == pytest.approx(1.217, abs=1e-3)
    np.testing.assert_allclose(np.asarray(after.g) / G_MAX, set_trajectory_reference(20)[[1, 10, 20]], rtol=1e-5)


def test_set_pulses_to_reach_levels(key):
    # Published pulse counts to reach w >= 0.5, 1.0, 1.5 on [0, 2]: 3, 13, 35.
    device = PCM(set_noise=0.0, prog_noise_scale=0.0)
    counts = jnp.arange(41)
    state = device.program(jnp.zeros(41), key=key)
    weight = 2.0 * np.asarray(device.apply_pulses(state, counts, key=key).g) / G_MAX

    for level, pulses in [(0.5, 3), (1.0, 13), (1.5, 35)]:
        assert int(np.argmax(weight >= level)) == pulses


def clipped_normal_moments(mean, std, low=0.0, high=1.0):
    """Return the mean and standard deviation of clip(mean + std Z, low, high) for a standard normal Z."""
    a, b = (low - mean) / std, (high - mean) / std
    mass = stats.norm.cdf(b) - stats.norm.cdf(a)
    first = mean * mass + std * (stats.norm.pdf(a) - stats.norm.pdf(b))
    second = (
        (mean**2 + std**2) * mass
        + 2 * mean * std * (stats.norm.pdf(a) - stats.norm.pdf(b))
        + std**2 * (a * stats.norm.pdf(a) - b * stats.norm.pdf(b))
    )
    first += low * stats.norm.cdf(a) + high * stats.norm.sf(b)
    second += low**2 * stats.norm.cdf(a) + high**2 * stats.norm.sf(b)
    return first, np.sqrt(second - first**2)


@pytest.mark.parametrize("u0", [0.1, 0.6])
def test_set_pulse_step_matches_model(u0, key):
    # One pulse: u + du + std xi clipped to [0, 1], with du and std from the preset (halved onto [0, 1]).
    n = 20_000
    device = PCM()
    state = exact_state(device, jnp.full(n, u0 * G_MAX))
    u = np.asarray(device.apply_pulses(state, 1, key=key).g, np.float64) / G_MAX
    step = 0.005 * (1.0 + 27.235 * np.exp(-5.0 * u0))
    std = 0.6 * (step + 0.021 + 0.108 * u0)
    expected_mean, expected_std = clipped_normal_moments(u0 + step, std)

    assert abs(u.mean() - expected_mean) <= Z * expected_std / np.sqrt(n)
    assert u.std(ddof=1) / expected_std == pytest.approx(1.0, abs=Z * relative_std_error(n))


def test_mean_conductance_rises_and_saturates(key):
    per_count = 5000
    counts = np.array([0, 1, 2, 5, 10, 20, 40])
    device = PCM()
    state = exact_state(device, jnp.zeros(per_count * counts.size))
    u = np.asarray(device.apply_pulses(state, jnp.asarray(np.repeat(counts, per_count)), key=key).g) / G_MAX
    u = u.reshape(counts.size, per_count)
    means = u.mean(axis=1)
    # Standard error of a difference of two means, each from per_count devices (std <= 0.2 in units of g_max).
    difference_error = Z * np.sqrt(2) * 0.2 / np.sqrt(per_count)

    assert np.all(np.diff(means) > difference_error)
    rate = np.diff(means) / np.diff(counts)
    rate_error = difference_error / np.diff(counts)
    assert np.all(rate[:-1] - rate[1:] > rate_error[:-1] + rate_error[1:])


def test_reset_returns_to_reset_level(key):
    device = PCM(reset_noise=0.0)
    state = device.program(jnp.linspace(0.0, G_MAX, 16), key=key)
    after = device.apply_pulses(state, jnp.full(16, -3), key=key)

    np.testing.assert_allclose(after.g, 0.005 * G_MAX, rtol=1e-6)


def test_zero_pulses_leave_device_unchanged(key):
    device = PCM()
    state = device.program(jnp.linspace(0.0, G_MAX, 8), key=key)
    counts = jnp.array([0, 2, 0, -1, 0, 5, 0, 0])
    after = device.apply_pulses(state, counts, key=jax.random.key(3))
    untouched = np.asarray(counts) == 0

    np.testing.assert_array_equal(np.asarray(after.g)[untouched], np.asarray(state.g)[untouched])
    np.testing.assert_array_equal(np.asarray(after.nu)[untouched], np.asarray(state.nu)[untouched])
    assert np.all(np.asarray(after.nu)[~untouched] != np.asarray(state.nu)[~untouched])


def test_max_pulses_matches_concrete_counts(key):
    device = PCM()
    state = device.program(jnp.linspace(0.0, G_MAX, 12), key=key)
    counts = jnp.array([0, 1, 2, 3, 5, 8, 13, -1, 0, 4, 7, 20])
    concrete = device.apply_pulses(state, counts, key=key)

    bounded = device.apply_pulses(state, counts, key=key, max_pulses=32)
    traced_bounded = jax.jit(lambda n: device.apply_pulses(state, n, key=key, max_pulses=20))(counts)
    traced_unbounded = jax.jit(lambda n: device.apply_pulses(state, n, key=key))(counts)

    for other in (bounded, traced_bounded, traced_unbounded):
        np.testing.assert_allclose(other.g, concrete.g, rtol=1e-6)
        np.testing.assert_allclose(other.nu, concrete.nu, rtol=1e-6)


def test_constant_pulse_count_grad_under_jit(key):
    # A constant count inside `jit` must still give a fixed-length loop, which reverse-mode `grad` needs.
    base = PCM()
    state = base.program(jnp.linspace(0.1 * G_MAX, 0.9 * G_MAX, 6), key=key)

    def total(g_max):
        device = eqx.tree_at(lambda d: d.g_max, base, g_max)
        return jnp.sum(device.apply_pulses(state, 3, key=key).g)

    eager = jax.grad(total)(G_MAX)
    jitted = jax.grad(jax.jit(total))(G_MAX)

    assert np.isfinite(eager)
    assert float(jitted) == pytest.approx(float(eager), rel=1e-5)


def test_reversed_drift_bounds_rejected():
    with pytest.raises(ValueError, match="mu_nu_bounds"):
        PCM(mu_nu_bounds=(0.1, 0.049))
    with pytest.raises(ValueError, match="sigma_nu_bounds"):
        PCM(sigma_nu_bounds=(-0.01, 0.045))
