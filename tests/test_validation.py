"""Tests of the validation suite: the default PCM passes every check and a mis-set parameter fails its own checks."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import numpy as np
import pytest
from scipy import integrate, stats

from xbar.devices import PCM
from xbar.validation import CheckResult, format_results, list_checks, run_checks
from xbar.validation import _runner
from xbar.validation._check import Check
from xbar.validation._stats import (
    clamped_normal_mean_std,
    folded_normal_mean_std,
    reference_range,
    sample_statistics,
    z_outside,
)
from xbar.validation._tables import load_table

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def default_run(tmp_path_factory):
    """Run every check once on the default model, with plots and a progress callback."""
    folder = tmp_path_factory.mktemp("validation") / "plots"
    calls = []
    results = run_checks(folder, progress=lambda done, total, name: calls.append((done, total, name)))
    return folder, results, calls


def test_default_model_passes_every_check(default_run):
    _, results, _ = default_run
    for result in results:
        assert result.passed, f"{result.name}: error {result.error} {result.unit} > tolerance {result.tolerance}"
        assert math.isfinite(result.error)


def test_results_follow_list_checks(default_run):
    _, results, _ = default_run
    assert [result.name for result in results] == list_checks()
    assert len([name for name in list_checks() if name.startswith("pcm_")]) == 9


def test_results_carry_source_and_unit(default_run):
    _, results, _ = default_run
    for result in results:
        assert isinstance(result, CheckResult)
        assert result.source.strip(), result.name
        assert result.unit, result.name


def test_plots_written_as_png(default_run):
    folder, results, _ = default_run
    for result in results:
        path = Path(result.plot)
        assert path == folder / f"{result.name}.png"
        assert path.read_bytes()[:8] == PNG_SIGNATURE
    # The atomic write leaves no temporary file behind.
    assert sorted(p.name for p in folder.iterdir()) == sorted(f"{name}.png" for name in list_checks())


def test_progress_called_after_each_check(default_run):
    _, _, calls = default_run
    total = len(list_checks())
    assert calls == [(done, total, name) for done, name in enumerate(list_checks(), start=1)]


def test_format_results_lists_every_check(default_run):
    _, results, _ = default_run
    text = format_results(results)
    lines = text.splitlines()
    for result in results:
        row = next(line for line in lines if line.startswith(result.name + " "))
        assert "PASS" in row
        assert result.source in row
    assert "FAIL" not in text
    assert f"{len(results)} of {len(results)} checks passed" in text


def test_format_results_marks_failure():
    failed = CheckResult("pcm_x", "described", "Someone et al. (2020)", 7.0, 5.0, False, None, "standard errors")
    passed = CheckResult("pcm_y", "described", "Someone et al. (2020)", 1.0, 5.0, True, None, "standard errors")
    text = format_results([failed, passed])
    assert "FAIL" in next(line for line in text.splitlines() if line.startswith("pcm_x"))
    assert "1 of 2 checks passed, 1 failed" in text


# Each mis-set parameter must fail exactly the checks of the quantity it changes, and only those. Sizes:
# 2 % on a noise amplitude is about 9 standard errors of a sample std over 1e5 devices (0.22 % each).
WRONG_MODELS = [
    ({"prog_noise_scale": 1.3}, {"pcm_programming_noise_table", "pcm_programming_noise_sampled",
                                 "pcm_programming_noise_crosssim"}),
    ({"prog_noise_scale": 1.02}, {"pcm_programming_noise_table", "pcm_programming_noise_sampled"}),
    ({"drift_scale": 1.2}, {"pcm_drift_factor_table", "pcm_drift_slope"}),
    ({"read_noise_scale": 1.3}, {"pcm_read_noise_table", "pcm_read_noise_sampled"}),
    ({"read_noise_scale": 1.02}, {"pcm_read_noise_table", "pcm_read_noise_sampled"}),
    ({"mu_nu_coeff": (-0.0155, 0.0254)}, {"pcm_drift_exponent_table", "pcm_drift_exponent_sampled"}),
    ({"sigma_nu_bounds": (0.0085, 0.045)}, {"pcm_drift_exponent_table", "pcm_drift_exponent_sampled"}),
    ({"t0": 25.0}, {"pcm_drift_factor_table", "pcm_read_noise_table"}),
]


@pytest.mark.parametrize(("parameters", "expected"), WRONG_MODELS, ids=lambda value: str(value))
def test_wrong_parameter_fails_its_checks(parameters, expected):
    results = run_checks(pcm=PCM(**parameters))
    failed = {result.name for result in results if not result.passed}
    assert failed == expected
    for result in results:
        assert result.plot is None


def test_selected_checks_only():
    results = run_checks(names=["pcm_drift_slope", "pcm_programming_noise_table"])
    assert [result.name for result in results] == ["pcm_drift_slope", "pcm_programming_noise_table"]
    single = run_checks(names="pcm_drift_slope")
    assert [result.name for result in single] == ["pcm_drift_slope"]


def test_unknown_check_name_raises():
    with pytest.raises(ValueError, match="unknown validation check 'pcm_nope'"):
        run_checks(names=["pcm_nope"])


def test_non_pcm_model_raises():
    with pytest.raises(TypeError, match="xbar.devices.PCM"):
        run_checks(names="pcm_drift_slope", pcm=object())


def test_nan_error_fails():
    broken = Check("pcm_drift_slope", "always NaN", "relative", "pcm_time_table.csv",
                   lambda pcm: (float("nan"), lambda figure: None))
    result = _runner._run_check(broken, PCM(), None)
    assert not result.passed


def test_plots_skipped_without_matplotlib(tmp_path, monkeypatch):
    # A None entry in sys.modules makes the import raise ImportError, as if matplotlib were not installed.
    for module in ("matplotlib", "matplotlib.figure", "matplotlib.backends.backend_agg"):
        monkeypatch.setitem(sys.modules, module, None)
    (result,) = run_checks(tmp_path, names="pcm_drift_slope")
    assert result.plot is None
    assert result.passed
    assert list(tmp_path.iterdir()) == []


def test_tables_name_source_and_tolerance():
    for check in _runner._CHECKS.values():
        table = load_table(check.table)
        assert table.source
        assert table.tolerance(check.name) > 0


def test_table_columns_are_read_only():
    table = load_table("pcm_conductance_table.csv")
    with pytest.raises(ValueError, match="read-only"):
        table["mu_nu"][0] = 1.0


@pytest.mark.parametrize("floor", [-0.3, -0.88, -3.0, -30.0])
def test_clamped_normal_matches_integration(floor):
    sigma = 1.0

    def moment(power):
        # Point mass Phi(floor / sigma) at the floor, plus the normal density above it.
        above, _ = integrate.quad(lambda y: y**power * stats.norm.pdf(y, scale=sigma), floor, np.inf)
        return floor**power * stats.norm.cdf(floor / sigma) + above

    mean, std = clamped_normal_mean_std(sigma, floor)
    assert mean == pytest.approx(moment(1), rel=1e-8, abs=1e-12)
    assert std == pytest.approx(math.sqrt(moment(2) - moment(1) ** 2), rel=1e-8)


@pytest.mark.parametrize(("mu", "sigma"), [(0.0958, 0.045), (0.049, 0.008), (0.0, 1.0), (0.5, 1.0)])
def test_folded_normal_matches_scipy(mu, sigma):
    mean, std = folded_normal_mean_std(mu, sigma)
    folded = stats.foldnorm(mu / sigma, scale=sigma)
    assert mean == pytest.approx(folded.mean(), rel=1e-10)
    assert std == pytest.approx(folded.std(), rel=1e-10)


def test_sample_statistics_standard_errors(rng):
    samples = rng.normal(2.0, 3.0, size=(4, 200_000))
    result = sample_statistics(samples)
    n = samples.shape[-1]
    # For a normal sample the delta-method error of the std reduces to sigma / sqrt(2 n). The sample
    # kurtosis of 2e5 draws has a standard error of sqrt(24 / n) = 0.011 around 3, which moves the estimate
    # by about 0.3 %, so 2 % leaves a wide margin.
    np.testing.assert_allclose(result.se_std, 3.0 / np.sqrt(2 * n), rtol=0.02)
    np.testing.assert_allclose(result.se_mean, 3.0 / np.sqrt(n), rtol=0.02)
    # The sample std itself lies within 5 standard errors, 5 / sqrt(2 n) relative, of sigma = 3.
    np.testing.assert_allclose(result.std, 3.0, rtol=5 / np.sqrt(2 * n))


def test_z_outside_is_zero_inside_and_scaled_outside():
    z = z_outside(np.array([1.0, 3.0, -2.0]), 0.0, 2.0, np.array([0.5, 0.5, 0.5]))
    np.testing.assert_allclose(z, [0.0, 2.0, 4.0])
    assert z_outside(3.0, 0.0, 2.0, 0.0) == np.inf


def test_reference_range_covers_rounding_box():
    low, high = reference_range(lambda a, b: a * b, (np.array([2.0]), 0.5), (np.array([3.0]), 1.0))
    np.testing.assert_allclose(low, [1.5 * 2.0])
    np.testing.assert_allclose(high, [2.5 * 4.0])
