"""Pulse-update device models for on-chip learning: a mean conductance step per pulse plus step noise.

The conductance G of each device moves by one step per programming pulse. The step is computed on the
normalized conductance u = (G - g_min) / (g_max - g_min) in [0, 1]. Each polarity has its own step
model, which sets the asymmetry of potentiation and depression. A step model is a function of the
progress p towards the bound that the pulse drives to: p = u for a potentiation pulse (towards g_max)
and p = 1 - u for a depression pulse (towards g_min). The mean step is a fraction of the range per pulse,
positive when it moves the device towards that bound.

Sources of the step forms:
    - constant, linear (soft bounds), exponential-saturation (`ExpStep`) and power (`PowerStep`) steps,
      and the piecewise step, are the pulsed device update rules of IBM aihwkit (MIT license,
      `src/aihwkit/simulator/configs/devices.py`); the power step is aihwkit's shifted form of the bounded
      synapse of S. Fusi and L. F. Abbott, Nature Neuroscience (2007);
    - the exponential (`ExponentialStep`) form G(P) = B (1 - exp(-P/A)) + g_min is the nonlinear weight
      update of NeuroSim: P.-Y. Chen, X. Peng and S. Yu, "NeuroSim: a circuit-level macro model for
      benchmarking neuro-inspired architectures in online learning", IEEE TCAD (2018).

Cycle-to-cycle noise adds a Gaussian term of standard deviation `relative * |mean| + absolute + slope * u`
(fractions of the range) to every step, as aihwkit does with `dw_min_std` and NeuroSim with its
cycle-to-cycle sigma. Write noise is Gaussian, in S, added when a target is programmed. Read noise is
Gaussian, in S, drawn anew at every read and not stored in the state.

Every parameter, including those of the step models, is a dynamic leaf. Arrays of per-device values that
broadcast against the device array give device-to-device spread (the piecewise tables take per-device
node values along their last axis).
"""

from __future__ import annotations

import functools

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from .. import _random
from .._validation import check_finite, is_concrete
from ._base import Device, DeviceState
from .programming_pulse import ProgrammingPulse, check_pulse


def _check_leaf(name: str, value, *, minimum: float | None = None, allow_equal: bool = True, nonzero=False):
    """Raise ValueError for a concrete parameter that is not finite or below `minimum`."""
    if not is_concrete(value):
        return
    array = np.asarray(value, dtype=float)
    check_finite(name, array)
    if minimum is not None:
        bad = array < minimum if allow_equal else array <= minimum
        if bad.any():
            relation = ">=" if allow_equal else ">"
            raise ValueError(f"{name} must be {relation} {minimum}, got {array[bad].ravel()[0]}; pass a value {relation} {minimum}")
    if nonzero and (array == 0).any():
        raise ValueError(f"{name} must be nonzero; pass a large value such as 1e3 for a nearly linear curve")


class StepNoise(eqx.Module):
    """Cycle-to-cycle noise of one pulse step, in fractions of the conductance range.

    The step gets Gaussian noise of standard deviation `relative * |mean step| + absolute + slope * u`.

    Attributes:
        relative: standard deviation relative to the mean step (aihwkit `dw_min_std`), default 0.
        absolute: standard deviation independent of the step (NeuroSim cycle-to-cycle sigma), default 0.
        slope: standard deviation per unit of normalized conductance u (aihwkit `dw_min_std_slope`
            times `dw_min_std`), default 0.
    """

    relative: float = 0.0
    absolute: float = 0.0
    slope: float = 0.0

    def __check_init__(self):
        for name in ("relative", "absolute", "slope"):
            _check_leaf(f"StepNoise.{name}", getattr(self, name), minimum=0.0)

    def std(self, u, mean):
        return self.relative * jnp.abs(mean) + self.absolute + self.slope * u


class StepModel(eqx.Module):
    """Base of the mean-step models: `mean_step(u, potentiation)` in fractions of the range per pulse."""

    def mean_step(self, u, potentiation: bool):
        """Return the mean step magnitude at normalized conductance u for one pulse of that polarity."""
        raise NotImplementedError

    def step_std(self, u, potentiation: bool, mean):
        """Return the standard deviation of the step (fraction of the range) at u."""
        return self.noise.std(u, mean)


def _progress(u, potentiation: bool):
    return u if potentiation else 1.0 - u


class ConstantStep(StepModel):
    """The same step for every pulse: `step` (fraction of the range).

    Source: aihwkit ConstantStepDevice; R. Gokmen and Y. Vlasov, Frontiers in Neuroscience (2016).
    """

    step: float
    noise: StepNoise = eqx.field(default_factory=StepNoise)

    def __check_init__(self):
        _check_leaf("ConstantStep.step", self.step, minimum=0.0)

    def mean_step(self, u, potentiation):
        return jnp.broadcast_to(jnp.asarray(self.step, jnp.result_type(u)), jnp.broadcast_shapes(jnp.shape(u), jnp.shape(self.step)))


class SoftBoundsStep(StepModel):
    """A step that falls linearly towards the bound: `step * (1 - gamma * p)`.

    With gamma = 1 (the default) the step vanishes at the bound (soft bounds); 0 < gamma < 1 is the
    linear step. Source: aihwkit SoftBoundsDevice and LinearStepDevice; S. Fusi and L. F. Abbott,
    Nature Neuroscience (2007).

    Attributes:
        step: step at the far bound (p = 0), fraction of the range.
        gamma: fall of the step from p = 0 to the bound p = 1, relative to `step` (default 1).
    """

    step: float
    gamma: float = 1.0
    noise: StepNoise = eqx.field(default_factory=StepNoise)

    def __check_init__(self):
        _check_leaf("SoftBoundsStep.step", self.step, minimum=0.0)
        _check_leaf("SoftBoundsStep.gamma", self.gamma)

    def mean_step(self, u, potentiation):
        return self.step * (1.0 - self.gamma * _progress(u, potentiation))


def exponential_curve(x, a_norm):
    """Return the NeuroSim normalized curve B (1 - exp(-x/A)) with B = 1 / (1 - exp(-1/A)).

    x is the pulse number divided by the pulses for the full range and A = `a_norm` the nonlinearity in
    the same unit; the curve runs from 0 at x = 0 to 1 at x = 1. Source: P.-Y. Chen, X. Peng and S. Yu,
    IEEE TCAD (2018).
    """
    scale = 1.0 / -jnp.expm1(-1.0 / a_norm)
    return scale * -jnp.expm1(-jnp.asarray(x) / a_norm)


class ExponentialStep(StepModel):
    """The NeuroSim nonlinear update: a pulse train traces G(P) = B (1 - exp(-P/A)) + g_min.

    With x = P / n_pulses, A = a_norm and B_n = 1 / (1 - exp(-1/A)), the normalized curve is
    p(x) = B_n (1 - exp(-x/A)), so p(0) = 0 and p(1) = 1. One pulse advances x by 1 / n_pulses. By the
    closed form, the step at progress p is then (B_n - p) (1 - exp(-1 / (n_pulses A))), and a pulse
    train from the bound reproduces p(x) exactly. Positive A gives a saturating (concave) curve, negative A a convex
    one, and |A| -> infinity the linear curve. For depression the same curve runs from g_max down, as
    NeuroSim's G_LTD(P) = g_max - B (1 - exp((P - P_max)/A)).

    Source: P.-Y. Chen, X. Peng and S. Yu, IEEE TCAD (2018) (the equations of NeuroSim).

    Attributes:
        a_norm: nonlinearity A in units of the full-range pulse count (nonzero; e.g. 0.499181 for the
            published label NL 2.4).
        n_pulses: pulses that take the device across the full range (the number of states).
    """

    a_norm: float
    n_pulses: float
    noise: StepNoise = eqx.field(default_factory=StepNoise)

    def __check_init__(self):
        _check_leaf("ExponentialStep.a_norm", self.a_norm, nonzero=True)
        _check_leaf("ExponentialStep.n_pulses", self.n_pulses, minimum=0.0, allow_equal=False)

    def mean_step(self, u, potentiation):
        scale = 1.0 / -jnp.expm1(-1.0 / self.a_norm)
        return (scale - _progress(u, potentiation)) * -jnp.expm1(-1.0 / (self.n_pulses * self.a_norm))


class ExpStep(StepModel):
    """A step that saturates exponentially with progress: `step * max(1 + amplitude * exp(rate * p), 0)`.

    This is aihwkit's ExpStepDevice rewritten on the progress p; the presets convert its a, b, A and
    gamma parameters. Source: aihwkit ExpStepDevice (IBM, MIT license), used for the ReRAM of Gong et al.,
    Nature Communications 9, 2102 (2018).

    Attributes:
        step: step scale, fraction of the range.
        amplitude: factor of the exponential term (negative with a positive rate for a saturating step).
        rate: growth rate of the exponential term per unit progress.
    """

    step: float
    amplitude: float
    rate: float
    noise: StepNoise = eqx.field(default_factory=StepNoise)

    def __check_init__(self):
        _check_leaf("ExpStep.step", self.step, minimum=0.0)
        _check_leaf("ExpStep.amplitude", self.amplitude)
        _check_leaf("ExpStep.rate", self.rate)

    def mean_step(self, u, potentiation):
        p = _progress(u, potentiation)
        return self.step * jnp.maximum(1.0 + self.amplitude * jnp.exp(self.rate * p), 0.0)


class PowerStep(StepModel):
    """A step that falls as a power of the headroom: `step * (1 - p)^gamma`.

    Source: aihwkit PowStepDevice; S. Fusi and L. F. Abbott, Nature Neuroscience (2007).

    Attributes:
        step: step at the far bound, fraction of the range.
        gamma: exponent (> 0; 1 is soft bounds).
    """

    step: float
    gamma: float = 1.0
    noise: StepNoise = eqx.field(default_factory=StepNoise)

    def __check_init__(self):
        _check_leaf("PowerStep.step", self.step, minimum=0.0)
        _check_leaf("PowerStep.gamma", self.gamma, minimum=0.0, allow_equal=False)

    def mean_step(self, u, potentiation):
        headroom = jnp.clip(1.0 - _progress(u, potentiation), 0.0, 1.0)
        # Keep the base away from 0 so that the gradient with respect to gamma stays finite at the bound.
        return self.step * jnp.where(headroom > 0, jnp.maximum(headroom, 1e-30) ** self.gamma, 0.0)


def _interpolate_nodes(nodes, u):
    """Interpolate node values spaced evenly on u in [0, 1] (last axis of `nodes`) linearly at u."""
    nodes = jnp.asarray(nodes)
    count = nodes.shape[-1]
    shape = jnp.broadcast_shapes(jnp.shape(u), nodes.shape[:-1])
    position = jnp.clip(jnp.broadcast_to(u, shape), 0.0, 1.0) * (count - 1)
    index = jnp.clip(jnp.floor(position), 0, count - 2).astype(jnp.int32)
    fraction = position - index
    table = jnp.broadcast_to(nodes, shape + (count,))
    low = jnp.take_along_axis(table, index[..., None], axis=-1)[..., 0]
    high = jnp.take_along_axis(table, index[..., None] + 1, axis=-1)[..., 0]
    return low + fraction * (high - low)


class PiecewiseStep(StepModel):
    """Mean step and step noise tabulated versus conductance, interpolated linearly.

    The node values are spaced evenly on the normalized conductance u from 0 (g_min) to 1 (g_max),
    whatever the polarity, because a measured table is a function of the present conductance. A mean
    may be negative where measurements show a net move against the pulse. Source: aihwkit
    PiecewiseStepDevice; fitted tables come from `xbar.devices.fitting`.

    Attributes:
        mean_nodes: mean step towards the pulse's bound at the nodes, fraction of the range, shape
            (..., K) with K >= 2.
        std_nodes: standard deviation of the step at the nodes (>= 0), same shape rules, or None for
            no noise.
    """

    mean_nodes: jax.Array
    std_nodes: jax.Array | None = None

    def __check_init__(self):
        for name in ("mean_nodes", "std_nodes"):
            value = getattr(self, name)
            if value is None or not is_concrete(value):
                continue
            if np.ndim(value) < 1 or np.shape(value)[-1] < 2:
                raise ValueError(f"PiecewiseStep.{name} needs at least 2 nodes along its last axis, got shape {np.shape(value)}")
            _check_leaf(f"PiecewiseStep.{name}", value, minimum=0.0 if name == "std_nodes" else None)

    def mean_step(self, u, potentiation):
        return _interpolate_nodes(self.mean_nodes, u)

    def step_std(self, u, potentiation, mean):
        if self.std_nodes is None:
            return jnp.zeros_like(mean)
        return jnp.maximum(_interpolate_nodes(self.std_nodes, u), 0.0)


class PulsedDevice(Device):
    """A pulse-update device: conductance moved by noisy steps, bounded in [g_min, g_max].

    See the module docstring for the step models and noise terms. `drift` returns the stored
    conductance (no drift); `read` adds read noise. `apply_pulses` applies signed counts (positive:
    potentiation with `up`, negative: depression with `down`) one pulse after another.

    Attributes:
        up: step model of potentiation pulses (default: constant step of 1 % of the range; illustrative).
        down: step model of depression pulses (same default).
        g_min: lowest conductance, S (scalar or per-device array).
        g_max: highest conductance, S (scalar or per-device array, > g_min; default 25 uS, illustrative).
        write_noise: standard deviation of the conductance programmed by `program`, S (default 0).
        read_noise: standard deviation of each read, S (default 0); reads are clamped at 0 S.
        potentiation_pulse: pulse that applies one `up` step, used for energy accounting only, so the
            step models do not depend on it (default +1 V for 100 ns, an assumed, typical RRAM value
            with no source). The presets set the published pulse where their source gives one.
        depression_pulse: pulse that applies one `down` step (default -1 V for 100 ns; assumed likewise).
    """

    up: StepModel = eqx.field(default_factory=lambda: ConstantStep(0.01))
    down: StepModel = eqx.field(default_factory=lambda: ConstantStep(0.01))
    g_min: float = 0.0
    g_max: float = 25e-6
    write_noise: float = 0.0
    read_noise: float = 0.0
    potentiation_pulse: ProgrammingPulse = eqx.field(default_factory=lambda: ProgrammingPulse(1.0, 100e-9))
    depression_pulse: ProgrammingPulse = eqx.field(default_factory=lambda: ProgrammingPulse(-1.0, 100e-9))

    def __check_init__(self):
        if not isinstance(self.up, StepModel) or not isinstance(self.down, StepModel):
            raise ValueError(
                f"up and down must be step models such as ConstantStep(0.01), got {type(self.up).__name__} "
                f"and {type(self.down).__name__}"
            )
        _check_leaf("g_min", self.g_min, minimum=0.0)
        _check_leaf("g_max", self.g_max, minimum=0.0, allow_equal=False)
        if is_concrete((self.g_min, self.g_max)):
            low, high = np.broadcast_arrays(np.asarray(self.g_min, float), np.asarray(self.g_max, float))
            if (high <= low).any():
                raise ValueError(
                    f"g_max must be greater than g_min for every device, got g_min {low[high <= low].ravel()[0]} S "
                    f"and g_max {high[high <= low].ravel()[0]} S; swap them or widen the range"
                )
        _check_leaf("write_noise", self.write_noise, minimum=0.0)
        _check_leaf("read_noise", self.read_noise, minimum=0.0)
        check_pulse("potentiation_pulse", self.potentiation_pulse)
        check_pulse("depression_pulse", self.depression_pulse)

    def _span(self):
        return self.g_max - self.g_min

    def _program_once(self, target, *, key):
        xi = _random.normal(key, jnp.shape(target), target.dtype)
        g = jnp.clip(target + self.write_noise * xi, self.g_min, self.g_max)
        return DeviceState(g=g, iterations=jnp.ones(jnp.shape(g), jnp.int32))

    def drift(self, state, t):
        self.check_read_time(t)
        return jnp.broadcast_to(state.g, jnp.broadcast_shapes(jnp.shape(state.g), jnp.shape(t)))

    def read(self, state, t, *, key):
        g = self.drift(state, t)
        xi = _random.normal(key, jnp.shape(g), g.dtype)
        return jnp.maximum(g + self.read_noise * xi, 0.0)

    def step(self, u, potentiate, xi):
        """Return u after one pulse: potentiation where `potentiate` is True, depression elsewhere.

        `u` is the normalized conductance and `xi` a standard normal draw per device; the result is
        clipped to [0, 1].
        """
        mean_up = self.up.mean_step(u, True)
        mean_down = self.down.mean_step(u, False)
        delta_up = mean_up + self.up.step_std(u, True, mean_up) * xi
        delta_down = mean_down + self.down.step_std(u, False, mean_down) * xi
        return jnp.clip(u + jnp.where(potentiate, delta_up, -delta_down), 0.0, 1.0)

    def apply_pulses(self, state, n_pulses, *, key, max_pulses=None):
        """Apply signed pulse counts to each device, one pulse after another.

        With `max_pulses` (a Python int, at least the largest |count|) or with concrete counts the
        loop has a fixed length and is differentiable with respect to the device parameters and the
        initial conductance. Traced counts without `max_pulses` need a `while_loop`, which is not
        reverse-differentiable. Counts are rounded to integers; devices with a zero count keep their
        conductance exactly.
        """
        check_finite("n_pulses", n_pulses)
        # Read concrete counts before any jnp operation: inside `jit` those return tracers even for constants.
        if max_pulses is None and is_concrete(n_pulses):
            max_pulses = _loop_length(int(np.max(np.abs(np.round(np.asarray(n_pulses))), initial=0)))
        if max_pulses is not None and (isinstance(max_pulses, bool) or not isinstance(max_pulses, (int, np.integer)) or max_pulses < 0):
            raise ValueError(f"max_pulses must be a Python integer >= 0 or None, got {max_pulses!r}")

        g = _apply_pulses(self, state.g, jnp.asarray(n_pulses), key, max_pulses)
        iterations = jnp.broadcast_to(state.iterations, g.shape)
        return DeviceState(g=g, iterations=iterations)


def _loop_length(max_pulses: int) -> int:
    """Round a loop length up to a power of two, so that nearby counts share one compiled loop.

    Extra iterations are masked off per device, so the result does not depend on the rounding.
    """
    return 0 if max_pulses == 0 else 1 << (max_pulses - 1).bit_length()


@functools.partial(jax.jit, static_argnames=("max_pulses",))
def _apply_pulses(device: PulsedDevice, g, n_pulses, key, max_pulses):
    g_min = jnp.asarray(device.g_min, g.dtype)
    g_max = jnp.asarray(device.g_max, g.dtype)
    span = g_max - g_min
    shape = jnp.broadcast_shapes(jnp.shape(g), jnp.shape(g_min), jnp.shape(span))
    n = jnp.broadcast_to(jnp.round(n_pulses).astype(jnp.int32), shape)
    count = jnp.abs(n)
    potentiate = n > 0
    u = jnp.broadcast_to((g - g_min) / span, shape)

    def one_pulse(index, u):
        xi = _random.normal(jax.random.fold_in(key, index), shape, u.dtype)
        return jnp.where(index < count, device.step(u, potentiate, xi), u)

    if max_pulses is None:
        u = jax.lax.fori_loop(0, jnp.max(count), one_pulse, u)
    elif max_pulses > 0:
        u = jax.lax.fori_loop(0, max_pulses, one_pulse, u)

    # The clip removes the rounding of g_min + u * span, which can exceed g_max by one ulp at u = 1.
    return jnp.where(n != 0, jnp.clip(g_min + u * span, g_min, g_max), g)


def pulse_trajectory(device: PulsedDevice, g_start, n_pulses: int, *, key, potentiate: bool = True) -> jax.Array:
    """Return the conductance (S) before and after each of `n_pulses` pulses of one polarity.

    The result has shape (n_pulses + 1, *shape of g_start); row 0 is `g_start` clipped to the range.
    It is the noise-free stored conductance: add read noise with `device.read`. Works under `jit`
    (with `n_pulses` static) and `grad`.
    """
    if isinstance(n_pulses, bool) or not isinstance(n_pulses, (int, np.integer)) or n_pulses < 0:
        raise ValueError(f"n_pulses must be a Python integer >= 0, got {n_pulses!r}")
    check_finite("g_start", g_start, "pass finite conductances in S")
    g0 = jnp.clip(jnp.asarray(g_start, jnp.result_type(float)), device.g_min, device.g_max)
    g_min = jnp.asarray(device.g_min, g0.dtype)
    span = jnp.asarray(device.g_max - device.g_min, g0.dtype)
    shape = jnp.broadcast_shapes(g0.shape, g_min.shape, span.shape)
    u0 = jnp.broadcast_to((g0 - g_min) / span, shape)

    def one_pulse(u, index):
        xi = _random.normal(jax.random.fold_in(key, index), shape, u.dtype)
        u = device.step(u, potentiate, xi)
        return u, u

    _, path = jax.lax.scan(one_pulse, u0, jnp.arange(n_pulses))
    g = g_min + jnp.concatenate([u0[None], path], axis=0) * span
    return jnp.clip(g, g_min, g_min + span)
