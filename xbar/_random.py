"""Standard normal draws that equal `jax.random.normal` and cost less on a CPU.

On a CPU, JAX computes the threefry generator as a loop of five steps (a rolled loop, to keep compile
times short). XLA then fuses the conversion of its bits to normals into every operation that uses them,
recomputing it there. In the hardware-aware training step of the digits network on PCM tiles
(benchmarks/hwa_step.py) the normals took 40 % of the time at the full training set and 65 % at 32
images, measured on one core.

`normal` computes the same threefry-2x32 function (Salmon et al., "Parallel random numbers: as easy as
1, 2, 3", SC 2011) with its 20 rounds written out. It converts the bits to normals exactly as
`jax.random.normal` does, inside a loop of two halves that XLA neither removes nor fuses into other
operations. So the normals are computed once, into one buffer, and are the same numbers, bit for bit,
that `jax.random.normal(key, shape, dtype)` returns (tests/test_random.py).

The written-out path applies to draws of at most 65,536 float32 normals from threefry keys on the CPU
backend, with JAX's default `jax_threefry_partitionable` setting. Everything else calls
`jax.random.normal`: other key kinds, float64, other backends, and larger draws. Here XLA ran the loop on
one thread, while it split JAX's generator over both cores. On 2 cores the written-out path took 87 us for
20,000 normals against 106 us for JAX's, but 2.1 ms for 524,288 against 1.6 ms. A large draw is also
rarely used by more than one operation, so there is little recomputation to save.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

# Rotation distances of threefry-2x32, for even and odd groups of four rounds (Salmon et al. 2011).
_ROTATIONS = ((13, 15, 26, 6), (17, 29, 16, 24))
_KEY_PARITY = 0x1BD11BDA
# Largest draw that takes the written-out path (see the module docstring).
_LOOP_LIMIT = 2**16


def _rotate_left(x, distance: int):
    return (x << jnp.uint32(distance)) | (x >> jnp.uint32(32 - distance))


def _threefry2x32(k1, k2, x0, x1):
    """Return the two 32-bit output words of threefry-2x32 (20 rounds) for key (k1, k2) and counter (x0, x1)."""
    schedule = (k1, k2, k1 ^ k2 ^ jnp.uint32(_KEY_PARITY))
    x0 = x0 + k1
    x1 = x1 + k2
    for group in range(5):
        for distance in _ROTATIONS[group % 2]:
            x0 = x0 + x1
            x1 = _rotate_left(x1, distance) ^ x0
        x0 = x0 + schedule[(group + 1) % 3]
        x1 = x1 + schedule[(group + 2) % 3] + jnp.uint32(group + 1)
    return x0, x1


def _normals_from_counters(k1, k2, counters):
    """Return float32 standard normals for the given 32-bit counters, as `jax.random.normal` converts them."""
    high, low = _threefry2x32(k1, k2, jnp.zeros_like(counters), counters)
    bits = high ^ low
    # 23 random mantissa bits under the exponent of 1.0 give a float in [1, 2), then [-1, 1) past the
    # smallest float above -1, then a normal by the inverse error function.
    floats = lax.bitcast_convert_type((bits >> jnp.uint32(9)) | jnp.uint32(0x3F800000), jnp.float32) - np.float32(1.0)
    low_end = np.nextafter(np.float32(-1.0), np.float32(0.0))
    uniform = lax.max(low_end, floats * (np.float32(1.0) - low_end) + low_end)
    return np.float32(np.sqrt(2.0)) * lax.erf_inv(uniform)


def _threefry_key_data(key):
    """Return the (..., 2) uint32 data of a threefry key, or None for any other kind of key.

    A value that is not a key at all also gives None, so that `jax.random.normal` raises its own error for it.
    """
    if not hasattr(key, "dtype") or not hasattr(key, "shape"):
        return None
    if jnp.issubdtype(key.dtype, jax.dtypes.prng_key):
        if str(jax.random.key_impl(key)) != "threefry2x32":
            return None
        return jax.random.key_data(key)
    if key.dtype != jnp.uint32 or key.shape[-1:] != (2,) or jax.config.jax_default_prng_impl != "threefry2x32":
        return None
    return key


def normal(key, shape=(), dtype=None) -> jax.Array:
    """Return standard normals of `shape`, the numbers `jax.random.normal(key, shape, dtype)` returns.

    `key` is one PRNG key (typed or raw). Works under `jit`, `vmap` and `grad` like `jax.random.normal`.
    """
    shape = tuple(int(size) for size in shape)
    dtype = jnp.result_type(float) if dtype is None else jnp.dtype(dtype)
    count = int(np.prod(shape, dtype=np.int64))
    data = _threefry_key_data(key) if dtype == jnp.float32 else None
    if (
        data is None
        or data.shape != (2,)
        or not jax.config.jax_threefry_partitionable
        or jax.default_backend() != "cpu"
        or not 0 < count <= _LOOP_LIMIT
    ):
        return jax.random.normal(key, shape, dtype)

    k1, k2 = data[0], data[1]
    half = (count + 1) // 2

    def one_half(index, out):
        start = index * half
        counters = start.astype(jnp.uint32) + lax.iota(jnp.uint32, half)
        return lax.dynamic_update_slice(out, _normals_from_counters(k1, k2, counters), (start,))

    # Two passes of a loop whose count XLA keeps: its result is one buffer, computed once.
    out = lax.fori_loop(0, 2, one_half, jnp.zeros((2 * half,), jnp.float32))
    return out[:count].reshape(shape)
