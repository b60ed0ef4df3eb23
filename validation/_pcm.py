"""Checks of `xbar.devices.PCM` against the published PCM statistics.

The references are the equations of Nandakumar et al. (IEEE ICECS 2019) and Joshi et al. (Nature
Communications 11, 2473 (2020)) as fitted in IBM aihwkit's PCMLikeNoiseModel, tabulated in
`pcm_conductance_table.csv` and `pcm_time_table.csv`, and CrossSim's independent fit of the same
programming-noise data in `crosssim_pcm_programming_noise.csv`.

Three kinds of error are reported:

- table checks: max |model - table| in units of the table's last printed digit, so a correct model is
  off by at most 0.5 (the rounding of the table);
- sampled checks: max z-score of a sample mean or standard deviation over 1e5 devices, measured as the
  distance outside the range of reference values that the table's rounding allows, in standard errors
  of the sample statistic;
- the CrossSim and slope checks: max relative difference.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from xbar.devices import PCM, PCMState

from ._check import Check
from ._stats import clamped_normal_mean_std, folded_normal_mean_std, reference_range, sample_statistics, z_outside
from ._tables import load_table

CONDUCTANCE_TABLE = "pcm_conductance_table.csv"
TIME_TABLE = "pcm_time_table.csv"
CROSSSIM_TABLE = "crosssim_pcm_programming_noise.csv"

# Devices per reference point. The standard error of a sample std is then sigma / sqrt(2e5), 0.22 % of
# sigma, so a 5-standard-error tolerance catches a noise amplitude that is off by more than about 1.2 %.
SAMPLES = 100_000

# Columns of the time table and the drift exponent nu or relative conductance x each one is for.
_DRIFT_COLUMNS = {"drift_factor_nu_0.049": 0.049, "drift_factor_nu_0.1": 0.1}
_READ_COLUMNS = {"read_sigma_x_1": 1.0, "read_sigma_x_0.1": 0.1}

# The slope check starts at 500 t0, far from the drift reference time t0 = 20 s.
_SLOPE_START_S = 1e4

_MICRO = 1e6  # plots show conductances in uS


def _to_jax(values):
    return jnp.asarray(values, dtype=jnp.result_type(float))


def _to_numpy(values):
    return np.asarray(values, dtype=np.float64)


def _digits_off(model, reference, last_digit) -> float:
    """Return max |model - reference| in units of the reference's last printed digit."""
    return float(np.max(np.abs(model - reference) / last_digit))


def _fixed_state(g, nu) -> PCMState:
    """Return a PCM state with the given conductances (S) and drift exponents, as after noise-free programming."""
    g = jnp.broadcast_to(_to_jax(g), jnp.broadcast_shapes(np.shape(g), np.shape(nu)))
    nu = jnp.broadcast_to(_to_jax(nu), g.shape)
    return PCMState(g=g, iterations=jnp.ones(g.shape, jnp.int32), nu=nu)


def _program_rows(pcm: PCM, targets, seed: int) -> tuple[PCMState, np.ndarray]:
    """Program SAMPLES devices to each target conductance (S) and return the state and the float32 targets."""
    target = jnp.broadcast_to(_to_jax(targets)[:, None], (np.size(targets), SAMPLES))
    return pcm.program(target, key=jax.random.key(seed)), _to_numpy(target)


def _max_z(stats, low, high) -> float:
    """Return the larger z-score of the sample mean and std against reference ranges stacked as (mean, std)."""
    z_mean = z_outside(stats.mean, low[0], high[0], stats.se_mean)
    z_std = z_outside(stats.std, low[1], high[1], stats.se_std)
    return float(np.max(np.maximum(z_mean, z_std)))


def _published_f(t, constants):
    """Return f(t) = sqrt(ln((t + t0 + t_read) / (2 t_read))) with the published t0 and t_read, in float64."""
    t_read = constants["t_read_s"]
    return np.sqrt(np.log((t + constants["t0_s"] + t_read) / (2.0 * t_read)))


# 1. Programming noise.


def _programming_noise_table(pcm: PCM):
    table = load_table(CONDUCTANCE_TABLE)
    g, reference = table["g_target_S"], table["sigma_prog_S"]
    model = _to_numpy(pcm.programming_noise_std(_to_jax(g)))
    error = _digits_off(model, reference, table.last_digit("sigma_prog_S"))

    def draw(figure):
        axes = figure.add_subplot()
        grid = np.linspace(0.0, g.max(), 201)
        axes.plot(grid * _MICRO, _to_numpy(pcm.programming_noise_std(_to_jax(grid))) * _MICRO, label="xbar PCM model")
        axes.plot(g * _MICRO, reference * _MICRO, "o", label="reference table")
        axes.set(xlabel="target conductance G_T (uS)", ylabel="programming noise sigma (uS)")
        axes.legend()

    return error, draw


def _programming_noise_sampled(pcm: PCM):
    table = load_table(CONDUCTANCE_TABLE)
    g, reference = table["g_target_S"], table["sigma_prog_S"]
    half_digit = 0.5 * table.last_digit("sigma_prog_S")

    state, target = _program_rows(pcm, g, seed=1)
    stats = sample_statistics(_to_numpy(state.g) - target)

    # G_P is clamped at 0 S, which shifts and narrows the deviation at the lowest targets (G_T is only
    # 0.88 sigma above 0 S at x = 0.01), so every row is compared with the clamped normal, computed exactly.
    low, high = reference_range(lambda sigma: np.stack(clamped_normal_mean_std(sigma, -g)), (reference, half_digit))
    error = _max_z(stats, low, high)

    def draw(figure):
        axes = figure.add_subplot()
        grid = np.linspace(0.0, g.max(), 201)
        model = _to_numpy(pcm.programming_noise_std(_to_jax(grid)))
        axes.plot(grid * _MICRO, model * _MICRO, label="xbar PCM model sigma")
        axes.plot(g * _MICRO, reference * _MICRO, "o", mfc="none", label="reference table sigma")
        axes.plot(g * _MICRO, 0.5 * (low[1] + high[1]) * _MICRO, "x", label="reference std, clamped at 0 S")
        axes.plot(g * _MICRO, stats.std * _MICRO, ".", label=f"sample std of G_P - G_T ({SAMPLES} devices)")
        axes.plot(g * _MICRO, stats.mean * _MICRO, "+", label="sample mean of G_P - G_T")
        axes.set(xlabel="target conductance G_T (uS)", ylabel="conductance (uS)")
        axes.legend(fontsize="small")

    return error, draw


def _programming_noise_crosssim(pcm: PCM):
    table = load_table(CROSSSIM_TABLE)
    bounds = table.numbers("range")
    powers, coefficients = table["power"], table["coefficient"]

    grid = np.linspace(bounds["g_low_S"], bounds["g_high_S"], 100)
    fit = np.maximum(np.sum(coefficients[:, None] * grid[None, :] ** powers[:, None], axis=0), 0.0)
    model = _to_numpy(pcm.programming_noise_std(_to_jax(grid)))
    error = float(np.max(np.abs(model - fit) / fit))

    def draw(figure):
        axes = figure.add_subplot()
        axes.plot(grid * _MICRO, model * _MICRO, label="xbar PCM model (aihwkit fit)")
        axes.plot(grid * _MICRO, fit * _MICRO, "--", label="CrossSim fit")
        axes.fill_between(grid * _MICRO, 0.9 * fit * _MICRO, 1.1 * fit * _MICRO, alpha=0.2, label="CrossSim fit +-10 %")
        axes.set(xlabel="target conductance G_T (uS)", ylabel="programming noise sigma (uS)")
        axes.legend()

    return error, draw


# 2. Drift-exponent statistics.


def _drift_exponent_table(pcm: PCM):
    table = load_table(CONDUCTANCE_TABLE)
    g = table["g_target_S"]
    mean_model = _to_numpy(pcm.drift_exponent_mean(_to_jax(g)))
    std_model = _to_numpy(pcm.drift_exponent_std(_to_jax(g)))
    error = max(
        _digits_off(mean_model, table["mu_nu"], table.last_digit("mu_nu")),
        _digits_off(std_model, table["sigma_nu"], table.last_digit("sigma_nu")),
    )

    def draw(figure):
        axes = figure.add_subplot()
        grid = np.geomspace(g.min(), g.max(), 201)
        axes.plot(grid * _MICRO, _to_numpy(pcm.drift_exponent_mean(_to_jax(grid))), label="model mu_nu")
        axes.plot(grid * _MICRO, _to_numpy(pcm.drift_exponent_std(_to_jax(grid))), label="model sigma_nu")
        axes.plot(g * _MICRO, table["mu_nu"], "o", label="reference mu_nu")
        axes.plot(g * _MICRO, table["sigma_nu"], "s", label="reference sigma_nu")
        axes.set(xscale="log", xlabel="target conductance G_T (uS)", ylabel="drift exponent")
        axes.legend()

    return error, draw


def _drift_exponent_sampled(pcm: PCM):
    table = load_table(CONDUCTANCE_TABLE)
    g = table["g_target_S"]
    mu_box = (table["mu_nu"], 0.5 * table.last_digit("mu_nu"))
    sigma_box = (table["sigma_nu"], 0.5 * table.last_digit("sigma_nu"))

    state, _ = _program_rows(pcm, g, seed=2)
    stats = sample_statistics(state.nu)

    # nu = |mu_nu + sigma_nu xi| follows a folded normal. The folding matters at x = 0.01, where mu_nu is
    # only 2.1 sigma_nu above 0.
    low, high = reference_range(lambda mu, sigma: np.stack(folded_normal_mean_std(mu, sigma)), mu_box, sigma_box)
    error = _max_z(stats, low, high)

    def draw(figure):
        axes = figure.add_subplot()
        grid = np.geomspace(g.min(), g.max(), 201)
        mean_model = _to_numpy(pcm.drift_exponent_mean(_to_jax(grid)))
        std_model = _to_numpy(pcm.drift_exponent_std(_to_jax(grid)))
        axes.plot(grid * _MICRO, mean_model, lw=0.8, label="model mu_nu (before folding)")
        axes.plot(grid * _MICRO, std_model, lw=0.8, label="model sigma_nu (before folding)")
        axes.plot(g * _MICRO, 0.5 * (low[0] + high[0]), "o", mfc="none", label="folded-normal mean of the table")
        axes.plot(g * _MICRO, 0.5 * (low[1] + high[1]), "s", mfc="none", label="folded-normal std of the table")
        axes.plot(g * _MICRO, stats.mean, ".", label=f"sample mean of nu ({SAMPLES} devices)")
        axes.plot(g * _MICRO, stats.std, "x", label="sample std of nu")
        axes.set(xscale="log", xlabel="target conductance G_T (uS)", ylabel="drift exponent")
        axes.legend(fontsize="small")

    return error, draw


# 3. Drift power law.


def _drift_factors(pcm: PCM, nus, t):
    """Return the noise-free drift factor G(t) / G_P from `pcm.drift`, shape (nu, t).

    The state stores `nus` as state.nu, so the model applies its drift_scale on top of them.
    """
    state = _fixed_state(g=1e-5, nu=_to_numpy(nus)[:, None])
    return _to_numpy(pcm.drift(state, _to_jax(t))) / _to_numpy(state.g)


def _drift_factor_table(pcm: PCM):
    table = load_table(TIME_TABLE)
    t = table["t_s"]
    nus = np.array(list(_DRIFT_COLUMNS.values()))
    reference = np.stack([table[column] for column in _DRIFT_COLUMNS])
    last_digit = np.array([[table.last_digit(column)] for column in _DRIFT_COLUMNS])

    # Both routes must agree with the table: the state-based drift (which applies drift_scale) and the
    # drift_factor function of a given exponent.
    via_drift = _drift_factors(pcm, nus, t)
    via_function = _to_numpy(pcm.drift_factor(_to_jax(nus)[:, None], _to_jax(t)))
    error = max(_digits_off(via_drift, reference, last_digit), _digits_off(via_function, reference, last_digit))

    def draw(figure):
        axes = figure.add_subplot()
        grid = np.geomspace(t.min(), t.max(), 201)
        curves = _drift_factors(pcm, nus, grid)
        for nu, curve, points in zip(nus, curves, reference, strict=True):
            line = axes.plot(grid, curve, label=f"model, nu = {nu}")[0]
            axes.plot(t, points, "o", color=line.get_color(), label=f"reference, nu = {nu}")
        axes.set(xscale="log", xlabel="time after programming t (s)", ylabel="drift factor G(t) / G_P")
        axes.legend()

    return error, draw


def _drift_slope(pcm: PCM):
    table = load_table(TIME_TABLE)
    t0 = table.numbers("constants")["t0_s"]
    nus = np.array(list(_DRIFT_COLUMNS.values()))

    t = np.geomspace(_SLOPE_START_S, table["t_s"].max(), 25)
    log_g = np.log(_drift_factors(pcm, nus, t))
    slopes = np.diff(log_g, axis=-1) / np.diff(np.log(t + t0))
    error = float(np.max(np.abs(slopes / -nus[:, None] - 1.0)))

    def draw(figure):
        axes = figure.add_subplot()
        midpoints = np.sqrt(t[1:] * t[:-1])
        for nu, slope in zip(nus, slopes, strict=True):
            line = axes.plot(midpoints, slope, "o-", label=f"model slope, nu = {nu}")[0]
            axes.axhline(-nu, ls="--", color=line.get_color(), label=f"-nu = {-nu}")
        axes.set(xscale="log", xlabel="time after programming t (s)", ylabel="d ln G / d ln(t + t0)")
        axes.legend()

    return error, draw


# 4. Read noise.


def _read_noise_table(pcm: PCM):
    times = load_table(TIME_TABLE)
    conductances = load_table(CONDUCTANCE_TABLE)
    constants = times.numbers("constants")
    t = times["t_s"]
    g_read = np.array(list(_READ_COLUMNS.values())) * constants["g_max_S"]
    reference = np.stack([times[column] for column in _READ_COLUMNS])
    last_digit = np.array([[times.last_digit(column)] for column in _READ_COLUMNS])

    model = _to_numpy(pcm.read_noise_std(_to_jax(g_read)[:, None], _to_jax(t)))
    error_time = _digits_off(model, reference, last_digit)

    # Q_s alone: the model's sigma at 1 s divided by f(1 s) computed from the published t0 and t_read.
    g = conductances["g_target_S"]
    q_s = _to_numpy(pcm.read_noise_std(_to_jax(g), 1.0)) / _published_f(1.0, constants)
    error_q_s = _digits_off(q_s, conductances["q_s"], conductances.last_digit("q_s"))
    error = max(error_time, error_q_s)

    def draw(figure):
        axes_time, axes_q = figure.subplots(1, 2)
        grid = np.geomspace(t.min(), t.max(), 201)
        curves = _to_numpy(pcm.read_noise_std(_to_jax(g_read)[:, None], _to_jax(grid)))
        for x, curve, points in zip(_READ_COLUMNS.values(), curves, reference, strict=True):
            line = axes_time.plot(grid, curve, label=f"model, x = {x}")[0]
            axes_time.plot(t, points, "o", color=line.get_color(), label=f"reference, x = {x}")
        axes_time.set(xscale="log", xlabel="time after programming t (s)", ylabel="relative read-noise sigma")
        axes_time.legend(fontsize="small")

        g_grid = np.geomspace(g.min(), g.max(), 201)
        q_s_model = _to_numpy(pcm.read_noise_std(_to_jax(g_grid), 1.0)) / _published_f(1.0, constants)
        axes_q.plot(g_grid * _MICRO, q_s_model, label="model")
        axes_q.plot(g * _MICRO, conductances["q_s"], "o", label="reference")
        axes_q.set(xscale="log", yscale="log", xlabel="programmed conductance G_P (uS)", ylabel="Q_s")
        axes_q.legend(fontsize="small")

    return error, draw


def _read_noise_sampled(pcm: PCM):
    table = load_table(TIME_TABLE)
    constants = table.numbers("constants")
    t = table["t_s"]
    g_read = np.array(list(_READ_COLUMNS.values())) * constants["g_max_S"]
    reference = np.stack([table[column] for column in _READ_COLUMNS])
    half_digit = 0.5 * np.array([[table.last_digit(column)] for column in _READ_COLUMNS])

    # Every device has exactly g_read with one drift exponent, so the noise-free drift divides out and
    # what is left is the relative read deviation, shape (conductance, time, device).
    g = np.broadcast_to(g_read[:, None, None], (g_read.size, 1, SAMPLES))
    state = _fixed_state(g=g, nu=_to_numpy(pcm.drift_exponent_mean(_to_jax(g_read)))[:, None, None])
    times = _to_jax(t)[:, None]
    read = pcm.read(state, times, key=jax.random.key(4))
    relative = _to_numpy(read) / _to_numpy(pcm.drift(state, times)) - 1.0
    stats = sample_statistics(relative)

    # The read conductance is clamped at 0 S, a relative deviation of -1, which is at least 4.5 sigma away here.
    low, high = reference_range(lambda sigma: np.stack(clamped_normal_mean_std(sigma, -1.0)), (reference, half_digit))
    error = _max_z(stats, low, high)

    def draw(figure):
        axes = figure.add_subplot()
        grid = np.geomspace(t.min(), t.max(), 201)
        curves = _to_numpy(pcm.read_noise_std(_to_jax(g_read)[:, None], _to_jax(grid)))
        for x, curve, points, sampled in zip(_READ_COLUMNS.values(), curves, reference, stats.std, strict=True):
            line = axes.plot(grid, curve, label=f"model, x = {x}")[0]
            axes.plot(t, points, "o", mfc="none", color=line.get_color(), label=f"reference, x = {x}")
            axes.plot(t, sampled, ".", color="black", label=f"sample std ({SAMPLES} devices), x = {x}")
        axes.set(xscale="log", xlabel="time after programming t (s)", ylabel="relative read-noise sigma")
        axes.legend(fontsize="small")

    return error, draw


_LAST_DIGITS = "last digits"
_STANDARD_ERRORS = "standard errors"

CHECKS = (
    Check(
        "pcm_programming_noise_table",
        "PCM.programming_noise_std against the table of sigma_prog versus G_T; "
        "error: max |model - table| in units of the table's last digit",
        _LAST_DIGITS, CONDUCTANCE_TABLE, _programming_noise_table,
    ),
    Check(
        "pcm_programming_noise_sampled",
        f"mean and std of G_P - G_T over {SAMPLES} programmed devices per G_T against the normal of the "
        "table's sigma_prog clamped at 0 S; error: max distance in standard errors of the sample statistic",
        _STANDARD_ERRORS, CONDUCTANCE_TABLE, _programming_noise_sampled,
    ),
    Check(
        "pcm_programming_noise_crosssim",
        "PCM.programming_noise_std against CrossSim's independent fit of the same data from 0.25 to 25 uS; "
        "error: max |model - fit| / fit",
        "relative", CROSSSIM_TABLE, _programming_noise_crosssim,
    ),
    Check(
        "pcm_drift_exponent_table",
        "PCM.drift_exponent_mean and drift_exponent_std against the table of mu_nu and sigma_nu versus G_T; "
        "error: max |model - table| in units of the table's last digit",
        _LAST_DIGITS, CONDUCTANCE_TABLE, _drift_exponent_table,
    ),
    Check(
        "pcm_drift_exponent_sampled",
        f"mean and std of state.nu over {SAMPLES} programmed devices per G_T against the folded normal "
        "|mu_nu + sigma_nu xi| of the table; error: max distance in standard errors of the sample statistic",
        _STANDARD_ERRORS, CONDUCTANCE_TABLE, _drift_exponent_sampled,
    ),
    Check(
        "pcm_drift_factor_table",
        "noise-free drift factor G(t) / G_P at 1 s, 1 h, 1 day and 1 year for nu = 0.049 and 0.1, from "
        "PCM.drift and PCM.drift_factor; error: max |model - table| in units of the table's last digit",
        _LAST_DIGITS, TIME_TABLE, _drift_factor_table,
    ),
    Check(
        "pcm_drift_slope",
        "local log-log slope d ln G / d ln(t + t0) of the noise-free drift from 1e4 s to 1 year against -nu "
        "for nu = 0.049 and 0.1; error: max |slope / (-nu) - 1|",
        "relative", TIME_TABLE, _drift_slope,
    ),
    Check(
        "pcm_read_noise_table",
        "PCM.read_noise_std at x = 1 and 0.1 at 1 s, 1 h, 1 day and 1 year, and Q_s versus G_P; "
        "error: max |model - table| in units of the table's last digit",
        _LAST_DIGITS, TIME_TABLE, _read_noise_table,
    ),
    Check(
        "pcm_read_noise_sampled",
        f"mean and std of the relative read deviation G(t) / G_drift - 1 over {SAMPLES} devices at x = 1 and "
        "0.1 and four times against the table's sigma (normal clamped at G = 0); error: max distance in "
        "standard errors of the sample statistic",
        _STANDARD_ERRORS, TIME_TABLE, _read_noise_sampled,
    ),
)
