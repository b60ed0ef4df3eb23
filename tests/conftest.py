"""Fixtures shared by the test suite.

Tests run in JAX's default float32. A test that needs float64 switches it on for itself only (see
`tests/test_float64.py`); nothing here changes the global precision.
"""

from __future__ import annotations

import gc
import os

import jax
import numpy as np
import pytest
from hypothesis import settings

# On CI (CI=true) hypothesis draws the same examples on every run, so a red run can be reproduced
# exactly; locally it explores new examples each time.
settings.register_profile("ci", derandomize=True, database=None)
if os.environ.get("CI", "").lower() == "true":
    settings.load_profile("ci")


@pytest.fixture(autouse=True, scope="module")
def _release_compiled_programs():
    """Drop JAX's compiled programs after each test module.

    Programs compiled by one module are rarely reused by the next. Kept for the whole session, the
    machine code of more than a thousand tests accumulates in the pytest process: its memory and its
    count of mapped regions only grow.
    """
    yield
    jax.clear_caches()
    gc.collect()


@pytest.fixture
def key():
    """A fixed PRNG key, so every random draw in a test is the same on each run."""
    return jax.random.key(0)


@pytest.fixture
def rng():
    """A seeded NumPy generator for test data (never used inside library code)."""
    return np.random.default_rng(20240601)
