"""Fixed-step integration of a compact model's state under a sampled voltage waveform.

The method is Heun's (explicit trapezoidal Runge-Kutta, order 2). The waveform is read as piecewise
linear between its samples, so the predictor uses the voltage at the start of a step and the corrector
the voltage at its end. After the predictor and after each full step the state is clipped to the
model's bounds, which keeps it inside them for any step size.
"""

from __future__ import annotations

import abc

import equinox as eqx
import jax
import jax.numpy as jnp

from ..._validation import check_finite, check_positive

ORDER = 2  # global order of accuracy of Heun's method for smooth rates and waveforms

# Largest magnitude a rate may take, as a multiple of (span of the state) / dt: a larger rate crosses
# the whole range within one step anyway, and bounding it keeps the sum of two stages finite.
_RATE_LIMIT = 4.0


class CompactModel(eqx.Module):
    """Base class of compact memristor models: a state x in [x_min, x_max] driven by a voltage v.

    Subclasses define `rate(x, v)` (dx/dt, in the unit of x per second) and `current(x, v)` (A), both
    elementwise, and the attributes `x_min`, `x_max` and `x_init` (fields, class variables or
    properties).
    """

    @abc.abstractmethod
    def rate(self, x, v):
        """Return dx/dt for state x at voltage v (V)."""

    @abc.abstractmethod
    def current(self, x, v):
        """Return the current (A) through the device in state x at voltage v (V)."""

    def simulate(self, voltage, dt, *, x0=None, output="trajectory", every=1):
        """Integrate the state under `voltage`; see `integrate`. `x0` defaults to `x_init`."""
        if x0 is None:
            x0 = self.x_init
        return integrate(self, voltage, dt, x0, output=output, every=every)


def _safe_rate(model, x, v, limit):
    # An infinite drive times a zero window gives NaN inside a rate, and that product means no motion.
    rate = jnp.nan_to_num(model.rate(x, v), nan=0.0, posinf=limit, neginf=-limit)
    return jnp.clip(rate, -limit, limit)


def _safe_current(model, x, v):
    return jnp.nan_to_num(model.current(x, v), nan=0.0)


def _heun_step(model, x, v_start, v_end, dt, limit):
    lower, upper = model.x_min, model.x_max
    k1 = _safe_rate(model, x, v_start, limit)
    predicted = jnp.clip(x + dt * k1, lower, upper)
    k2 = _safe_rate(model, predicted, v_end, limit)
    return jnp.clip(x + 0.5 * dt * (k1 + k2), lower, upper)


def integrate(model: CompactModel, voltage, dt, x0, *, output: str = "trajectory", every: int = 1):
    """Integrate a compact model's state under a sampled voltage waveform with Heun's method (order 2).

    The state is elementwise: `x0` may have any shape, and `voltage` has shape (n_samples,) for a
    waveform shared by all devices or (n_samples, *shape) with `shape` broadcastable against `x0`.
    Sample k is at time k dt. The state is clipped to [model.x_min, model.x_max] after every step, and a
    non-finite rate is replaced by a bounded one, so the state stays finite and inside its bounds for
    any finite input. Works under `jit`, `vmap` and `grad` (with `output` and `every` static).

    Args:
        model: the compact model.
        voltage: voltage samples in V, first axis time.
        dt: time between samples in s, a scalar or an array broadcastable to the state's shape.
        x0: initial state (unit of the model's state).
        output: "trajectory" returns every `every`-th sample; "final" returns only the last sample.
        every: decimation of "trajectory": samples 0, every, 2 every, ... are returned, and samples
            after the last full block of `every` steps are dropped.

    Returns:
        (current, state): current in A and state, with shape (n_out, *shape) for "trajectory" and
        `shape` for "final".
    """
    if output not in ("trajectory", "final"):
        raise ValueError(f"output must be 'trajectory' or 'final', got {output!r}")
    if isinstance(every, bool) or not isinstance(every, int) or every < 1:
        raise ValueError(f"every must be an integer >= 1, got {every!r}")
    check_positive("dt", dt, "s")
    check_finite("voltage", voltage, "pass finite voltages in V")
    check_finite("x0", x0)

    dtype = jnp.result_type(float)
    voltage = jnp.asarray(voltage, dtype)
    if voltage.ndim == 0 or voltage.shape[0] < 1:
        raise ValueError(f"voltage must have a time axis with at least one sample, got shape {voltage.shape}")
    x0 = jnp.asarray(x0, dtype)
    shape = jnp.broadcast_shapes(jnp.shape(x0), voltage.shape[1:])
    # Align the device axes of the waveform with the trailing axes of the state.
    padding = (1,) * (len(shape) - (voltage.ndim - 1))
    voltage = voltage.reshape(voltage.shape[:1] + padding + voltage.shape[1:])
    x = jnp.clip(jnp.broadcast_to(x0, shape), model.x_min, model.x_max)
    dt = jnp.asarray(dt, dtype)
    limit = _RATE_LIMIT * (model.x_max - model.x_min) / dt

    def step(state, pair):
        v_start, v_end = pair
        return _heun_step(model, state, v_start, v_end, dt, limit), None

    def observe(state, v):
        return _safe_current(model, state, v), state

    n_steps = voltage.shape[0] - 1
    if output == "final":
        x_end, _ = jax.lax.scan(step, x, (voltage[:-1], voltage[1:]))
        return observe(x_end, voltage[-1])

    n_blocks = n_steps // every
    used = n_blocks * every
    starts = voltage[:used].reshape(n_blocks, every, *voltage.shape[1:])
    ends = voltage[1 : used + 1].reshape(n_blocks, every, *voltage.shape[1:])

    def block(state, pairs):
        state, _ = jax.lax.scan(step, state, pairs)
        return state, state

    _, states = jax.lax.scan(block, x, (starts, ends))
    states = jnp.concatenate([x[None], states], axis=0)
    sampled_voltage = voltage[: used + 1 : every]
    return observe(states, sampled_voltage)
