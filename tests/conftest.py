"""Fixtures shared by the test suite.

Tests run in JAX's default float32. A test that needs float64 switches it on for itself only (see
`tests/test_float64.py`); nothing here changes the global precision.
"""

from __future__ import annotations

import jax
import numpy as np
import pytest


@pytest.fixture
def key():
    """A fixed PRNG key, so every random draw in a test is the same on each run."""
    return jax.random.key(0)


@pytest.fixture
def rng():
    """A seeded NumPy generator for test data (never used inside library code)."""
    return np.random.default_rng(20240601)
