"""Tests of `xbar._random.normal`: the same numbers as `jax.random.normal`, under every transformation."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from xbar import _random

# The last two sit at either side of the largest draw that takes the written-out path (2**16 numbers).
SHAPES = [(), (1,), (7,), (64, 32), (3, 5, 7), (2, 1, 9), (256, 256), (257, 256)]


def assert_same(a, b):
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    assert a.dtype == b.dtype
    assert a.shape == b.shape


@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_normal_equals_jax_normal(shape):
    for seed in (0, 1, 2**31 + 5):
        key = jax.random.key(seed)
        assert_same(_random.normal(key, shape), jax.random.normal(key, shape))
        assert_same(jax.jit(lambda k: _random.normal(k, shape))(key), jax.random.normal(key, shape))


def test_normal_raw_and_derived_keys():
    raw = jax.random.PRNGKey(11)
    assert_same(_random.normal(raw, (5, 4)), jax.random.normal(raw, (5, 4)))
    for key in jax.random.split(jax.random.key(3), 4):
        assert_same(_random.normal(key, (33,), jnp.float32), jax.random.normal(key, (33,), jnp.float32))
    folded = jax.random.fold_in(jax.random.key(3), 17)
    assert_same(_random.normal(folded, (6, 6)), jax.random.normal(folded, (6, 6)))


def test_normal_under_vmap_and_grad():
    keys = jax.random.split(jax.random.key(4), 5)
    assert_same(
        jax.vmap(lambda k: _random.normal(k, (8, 3)))(keys), jax.vmap(lambda k: jax.random.normal(k, (8, 3)))(keys)
    )
    # The normals do not depend on differentiable inputs: the gradient of sum(x * xi) is xi.
    key = jax.random.key(5)
    gradient = jax.grad(lambda x: jnp.sum(x * _random.normal(key, (4,))))(jnp.ones(4))
    assert_same(gradient, jax.random.normal(key, (4,)))


def test_normal_fallback_matches_jax():
    rbg = jax.random.key(6, impl="rbg")
    assert_same(_random.normal(rbg, (4, 2)), jax.random.normal(rbg, (4, 2)))
    key = jax.random.key(6)
    assert_same(_random.normal(key, (5,), jnp.float16), jax.random.normal(key, (5,), jnp.float16))
    assert _random.normal(key, (0, 3)).shape == (0, 3)


def test_normal_rejects_number_key():
    with pytest.raises(TypeError, match="invalid PRNG key"):
        _random.normal(1, (3,))


def test_normal_statistics():
    """Mean 0 and variance 1 within five standard errors (1/sqrt(n) and sqrt(2/(n-1)))."""
    n = 200_000
    xi = np.asarray(_random.normal(jax.random.key(7), (n,)), np.float64)
    assert abs(xi.mean()) < 5 / np.sqrt(n)
    assert abs(xi.var() - 1) < 5 * np.sqrt(2 / (n - 1))
