"""Exact moments of the reference distributions and standard errors of sample statistics (float64 NumPy).

The sampled checks turn a sample statistic into a z-score: its distance, in standard errors, from the
range that the reference could take given the rounding of the reference table.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy import special


def _normal_pdf(z):
    return np.exp(-0.5 * z * z) / np.sqrt(2.0 * np.pi)


def clamped_normal_mean_std(sigma, floor):
    """Return the mean and standard deviation of max(sigma Z, floor) for Z ~ N(0, 1).

    This is the write-noise deviation G_P - G_T when G_P is clamped at 0 S (floor = -G_T), and the
    relative read deviation when the read conductance is clamped at 0 S (floor = -1). `sigma` > 0 and
    `floor` < 0 are broadcast against each other.
    """
    sigma = np.asarray(sigma, dtype=np.float64)
    a = np.asarray(floor, dtype=np.float64) / sigma
    cdf = special.ndtr(a)
    pdf = _normal_pdf(a)
    # Moments of Z clamped at a: E[Z; Z > a] = phi(a) and E[Z^2; Z > a] = 1 - Phi(a) + a phi(a).
    first = a * cdf + pdf
    second = a * a * cdf + (1.0 - cdf) + a * pdf
    return sigma * first, sigma * np.sqrt(second - first * first)


def folded_normal_mean_std(mu, sigma):
    """Return the mean and standard deviation of |mu + sigma Z| for Z ~ N(0, 1)."""
    mu = np.asarray(mu, dtype=np.float64)
    sigma = np.asarray(sigma, dtype=np.float64)
    ratio = mu / sigma
    mean = sigma * np.sqrt(2.0 / np.pi) * np.exp(-0.5 * ratio**2) + mu * (1.0 - 2.0 * special.ndtr(-ratio))
    return mean, np.sqrt(mu * mu + sigma * sigma - mean * mean)


@dataclass(frozen=True)
class SampleStatistics:
    """Sample mean and standard deviation along the last axis, with their standard errors.

    Attributes:
        mean, std: sample mean and standard deviation (ddof = 1).
        se_mean: std / sqrt(n).
        se_std: sqrt((m4 - s^4) / (4 s^2 n)), from Var(s^2) = (mu4 - sigma^4) / n to first order in 1/n
            and ds = ds^2 / (2 s); m4 is the sample fourth central moment. It equals s / sqrt(2 n) for a
            normal sample and stays valid for the clamped and folded distributions checked here.
    """

    mean: np.ndarray
    std: np.ndarray
    se_mean: np.ndarray
    se_std: np.ndarray


def sample_statistics(samples) -> SampleStatistics:
    """Return the statistics of `samples` along the last axis, computed in float64."""
    values = np.asarray(samples, dtype=np.float64)
    n = values.shape[-1]
    mean = values.mean(axis=-1)
    centered = values - mean[..., None]
    variance = np.sum(centered**2, axis=-1) / (n - 1)
    fourth = np.mean(centered**4, axis=-1)
    with np.errstate(divide="ignore", invalid="ignore"):
        se_std = np.sqrt(np.maximum(fourth - variance**2, 0.0) / (4.0 * variance * n))
    return SampleStatistics(mean=mean, std=np.sqrt(variance), se_mean=np.sqrt(variance / n), se_std=se_std)


def reference_range(function: Callable[..., np.ndarray], *boxes) -> tuple[np.ndarray, np.ndarray]:
    """Return the elementwise minimum and maximum of `function` over rounding boxes of its arguments.

    Each box is a pair (center, half_width) of arrays. The function is evaluated on a grid of five
    points per argument across [center - half_width, center + half_width]. The grid contains the corners,
    where a function monotone in each argument (as the moments used here are) takes its extremes.
    """
    offsets = np.linspace(-1.0, 1.0, 5)
    values = [
        function(*(center + offset * half for (center, half), offset in zip(boxes, choice, strict=True)))
        for choice in itertools.product(offsets, repeat=len(boxes))
    ]
    stacked = np.stack(values)
    return stacked.min(axis=0), stacked.max(axis=0)


def z_outside(value, low, high, standard_error):
    """Return the distance of `value` outside [low, high] in standard errors (0 inside, inf for a zero error)."""
    distance = np.maximum(np.maximum(low - value, value - high), 0.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(distance > 0.0, distance / standard_error, 0.0)
