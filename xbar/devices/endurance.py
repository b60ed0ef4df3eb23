"""Endurance: window closure and failure after many write cycles, composed around any device model.

Commonly quoted ranges are 1e6 to 1e10 SET/RESET cycles for HfOx RRAM, beyond 1e12 for TaOx bilayers
(Lee et al., Nature Materials 10, 625 (2011)) and 1e8 to 1e9 for PCM. NOTE: these ranges were not checked
against the primary sources, so treat them as orders of magnitude. Past an onset the
high- and low-conductance states move towards each other on a log-cycles axis, and each device finally
sticks at a low or a high conductance after a number of cycles that varies from device to device.
The power-law closure R(x) = R0 (x / x_th)^p past a threshold x_th is the empirical metal-oxide RRAM
model of Lammie, Rahimi Azghadi and Ielmini, Semiconductor Science and Technology 36, 065003 (2021).
This module uses a log-linear closure instead (see `Endurance`). No measured Weibull or lognormal
parameters of cycles to failure were available, so every default here is illustrative.
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from .. import _random
from .._validation import check_finite, check_positive, is_concrete
from ._base import Device, DeviceState, ProgramVerify
from .programming_pulse import ProgrammingPulse

_FAILURE_DISTRIBUTIONS = ("weibull", "lognormal", None)
_CYCLE_COUNTS = ("events", "pulses")


class EnduranceState(DeviceState):
    """State of devices wrapped by `Endurance`.

    Attributes:
        g: worn conductance at the end of the last programming or pulse event, S.
        iterations: programming attempts of the inner device (int32).
        inner: state of the wrapped device model, which evolves as if it never wore out.
        prior_cycles: cycles endured before the last `program` (float32, from `Endurance.initial_cycles`).
        cycles_since_program: cycles counted since the last `program`, programming attempts included (int32,
            exact up to 2**31 - 1).
        failure_cycles: cycle count at which each device fails, drawn at programming (float32).
        stuck_high: True where a failed device sticks at g_max, False where it sticks at g_min.
    """

    inner: DeviceState
    prior_cycles: jax.Array
    cycles_since_program: jax.Array
    failure_cycles: jax.Array
    stuck_high: jax.Array

    @property
    def cycles(self) -> jax.Array:
        """Total cycles endured by each device (float32)."""
        return self.prior_cycles + self.cycles_since_program.astype(self.prior_cycles.dtype)

    @property
    def failed(self) -> jax.Array:
        """True where a device has reached its failure cycle count and is stuck."""
        return self.cycles >= self.failure_cycles


class Endurance(Device):
    """Wear-out of any device model: log-linear window closure after an onset, then failure at a drawn cycle count.

    A cycle is one write event on a device: one programming attempt as the inner device counts them in
    `state.iterations` (program-and-verify attempts count one each), or one `apply_pulses` call with a
    nonzero pulse count on that device (`count="events"`).
    With `count="pulses"` every single pulse counts instead, |n| cycles per call.

    Window closure. With N the cycles endured, the closed fraction of the window is
    f(N) = clip(closure_per_decade * log10(max(N, onset_cycles) / onset_cycles), 0, 1), and the
    conductance g of the inner device is contracted towards g_c = g_min + convergence (g_max - g_min):
    G = g_c + (1 - f) (g - g_c). The window width (1 - f)(g_max - g_min) is therefore constant before the
    onset and shrinks linearly in log10(N) after it, reaching zero `1 / closure_per_decade` decades
    after the onset. Lammie et al. (2021) use a power law in cycles for each of the two states instead.
    The log-linear form is used here because it keeps the state inside the original range for any N.

    Failure. At programming each device draws its cycles to failure N_f from a Weibull distribution
    (scale `failure_scale`, shape `failure_shape`) or a lognormal one (median `failure_scale`, standard
    deviation `failure_shape` of ln N_f), and whether it fails stuck high (probability
    `stuck_high_probability`). Once N >= N_f the device reads g_max (stuck high, e.g. stuck-SET PCM or
    stuck-at-LRS RRAM) or g_min (stuck low) whatever the inner device does, and since N only grows it
    stays stuck.

    `program`, `drift`, `read` and `apply_pulses` delegate to the inner device and then apply the wear,
    so wear composes with every model, including other wrappers. Put `Retention` inside
    (`Endurance(Retention(model))`) so that stuck devices read their stuck level exactly. With `verify`, the
    inner device is programmed to the pre-image of the target under the closure map, which models
    program-and-verify that reads the worn device. Verify cannot correct a failed device. Each
    `program` call starts a new life record: prior cycles come from `initial_cycles` and N_f is drawn
    again. To follow one device's history, keep applying pulses to its state.

    Attributes:
        device: the wrapped device model.
        g_min, g_max: conductance range of the wrapped device, S (copied from it at construction).
        onset_cycles: cycles after which the window starts closing (1e6; illustrative, the low end of the
            1e6 to 1e10 HfOx RRAM range).
        closure_per_decade: fraction of the window lost per decade of cycles beyond the onset (0.1;
            illustrative).
        convergence: position in the window, from 0 (g_min) to 1 (g_max), that both states approach (0.5).
        failure_distribution: "weibull", "lognormal" or None for no failure (static).
        failure_scale: Weibull scale or lognormal median of the cycles to failure (1e8; illustrative,
            inside both the RRAM range 1e6 to 1e10 and the PCM range 1e8 to 1e9).
        failure_shape: Weibull shape, or standard deviation of ln N_f for the lognormal (2.0; illustrative).
        stuck_high_probability: probability that a failed device sticks at g_max (0.5; illustrative).
        initial_cycles: cycles already endured when a device is programmed (0); scalar or per-device array.
        count: "events" (one cycle per write event) or "pulses" (one cycle per pulse) (static).
    """

    device: Device
    g_min: float
    g_max: float
    onset_cycles: float
    closure_per_decade: float
    convergence: float
    failure_scale: float
    failure_shape: float
    stuck_high_probability: float
    initial_cycles: float
    failure_distribution: str | None = eqx.field(static=True)
    count: str = eqx.field(static=True)

    def __init__(
        self,
        device: Device,
        *,
        onset_cycles: float = 1e6,
        closure_per_decade: float = 0.1,
        convergence: float = 0.5,
        failure_distribution: str | None = "weibull",
        failure_scale: float = 1e8,
        failure_shape: float = 2.0,
        stuck_high_probability: float = 0.5,
        initial_cycles: float = 0.0,
        count: str = "events",
    ):
        if not isinstance(device, Device):
            raise ValueError(f"Endurance wraps a Device instance, got {device!r}")
        self.device = device
        self.g_min = device.g_min
        self.g_max = device.g_max
        self.onset_cycles = onset_cycles
        self.closure_per_decade = closure_per_decade
        self.convergence = convergence
        self.failure_distribution = failure_distribution
        self.failure_scale = failure_scale
        self.failure_shape = failure_shape
        self.stuck_high_probability = stuck_high_probability
        self.initial_cycles = initial_cycles
        self.count = count

    def __check_init__(self):
        check_positive("onset_cycles", self.onset_cycles, "cycles")
        check_positive("closure_per_decade", self.closure_per_decade, "per decade", allow_zero=True)
        check_positive("failure_scale", self.failure_scale, "cycles")
        check_positive("failure_shape", self.failure_shape)
        check_positive("initial_cycles", self.initial_cycles, "cycles", allow_zero=True)
        _check_unit_interval("convergence", self.convergence)
        _check_unit_interval("stuck_high_probability", self.stuck_high_probability)
        if self.failure_distribution not in _FAILURE_DISTRIBUTIONS:
            raise ValueError(
                f"failure_distribution must be one of {_FAILURE_DISTRIBUTIONS}, got {self.failure_distribution!r}"
            )
        if self.count not in _CYCLE_COUNTS:
            raise ValueError(f"count must be one of {_CYCLE_COUNTS}, got {self.count!r}")

    @property
    def potentiation_pulse(self) -> ProgrammingPulse:
        """The potentiation pulse of the wrapped device."""
        return self.device.potentiation_pulse

    @property
    def depression_pulse(self) -> ProgrammingPulse:
        """The depression pulse of the wrapped device."""
        return self.device.depression_pulse

    # Wear, elementwise.

    def closed_fraction(self, cycles) -> jax.Array:
        """Return the closed fraction f(N) of the conductance window after `cycles` cycles (0 before the onset)."""
        cycles = jnp.maximum(jnp.asarray(cycles, jnp.result_type(float)), self.onset_cycles)
        return jnp.clip(self.closure_per_decade * jnp.log10(cycles / self.onset_cycles), 0.0, 1.0)

    def convergence_conductance(self) -> jax.Array:
        """Return g_c, the conductance that both states approach as the window closes, in S."""
        return self.device.g_min + self.convergence * (self.device.g_max - self.device.g_min)

    def window(self, cycles) -> tuple[jax.Array, jax.Array]:
        """Return the worn range (low, high) in S after `cycles` cycles, before failure."""
        return self._contract(self.device.g_min, cycles), self._contract(self.device.g_max, cycles)

    def _contract(self, g, cycles):
        g_c = self.convergence_conductance()
        return g_c + (1.0 - self.closed_fraction(cycles)) * (g - g_c)

    def _wear(self, g, state_like):
        """Apply closure and failure to inner conductances `g` with the cycle record of `state_like`."""
        cycles = state_like.cycles
        worn = self._contract(g, cycles)
        stuck = jnp.where(state_like.stuck_high, self.device.g_max, self.device.g_min)
        return jnp.where(cycles >= state_like.failure_cycles, stuck, worn)

    def _draw_failure_cycles(self, key, shape, dtype):
        if self.failure_distribution is None:
            return jnp.full(shape, jnp.inf, dtype)
        if self.failure_distribution == "weibull":
            return jax.random.weibull_min(key, self.failure_scale, self.failure_shape, shape, dtype)
        return self.failure_scale * jnp.exp(self.failure_shape * _random.normal(key, shape, dtype))

    # Device interface.

    def program(self, target, *, key: jax.Array, verify: ProgramVerify | None = None) -> EnduranceState:
        """Program target conductances (S) through the inner device and start each device's cycle record.

        Targets are clipped to [g_min, g_max]. Without `verify` the inner device is programmed to the target
        and the worn conductance is what the closure map makes of it. With `verify` the inner target is the
        pre-image of the target (clipped to the inner range), so the worn conductance reaches the target
        wherever it lies inside the worn window.
        """
        check_finite("target conductance", target, "pass finite conductances in S")
        target = jnp.clip(jnp.asarray(target, dtype=jnp.result_type(float)), self.g_min, self.g_max)
        key_inner, key_life, key_stuck = jax.random.split(key, 3)
        prior = jnp.broadcast_to(jnp.asarray(self.initial_cycles, target.dtype), target.shape)

        inner_target = target
        if verify is not None:
            # Verify reads the device after at least one write, so it measures the closure after one more cycle.
            open_fraction = 1.0 - self.closed_fraction(prior + 1.0)
            g_c = self.convergence_conductance()
            pre_image = g_c + (target - g_c) / jnp.where(open_fraction > 0, open_fraction, 1.0)
            inner_target = jnp.where(open_fraction > 0, pre_image, g_c)
        inner = self.device.program(inner_target, key=key_inner, verify=verify)

        shape = jnp.shape(inner.g)
        state = EnduranceState(
            g=inner.g,
            iterations=inner.iterations,
            inner=inner,
            prior_cycles=jnp.broadcast_to(prior, shape),
            cycles_since_program=jnp.broadcast_to(inner.iterations, shape).astype(jnp.int32),
            failure_cycles=self._draw_failure_cycles(key_life, shape, inner.g.dtype),
            stuck_high=jax.random.bernoulli(key_stuck, self.stuck_high_probability, shape),
        )
        return eqx.tree_at(lambda s: s.g, state, self._wear(inner.g, state))

    def _program_once(self, target, *, key):
        return self.program(target, key=key)

    def drift(self, state: EnduranceState, t) -> jax.Array:
        """Return the noise-free worn conductance (S) at time t (s) after the last event."""
        return self._wear(self.device.drift(state.inner, t), state)

    def read(self, state: EnduranceState, t, *, key: jax.Array) -> jax.Array:
        """Return the worn conductance (S) read at time t (s): the inner read, contracted, or the stuck level."""
        return self._wear(self.device.read(state.inner, t, key=key), state)

    def apply_pulses(self, state: EnduranceState, n_pulses, *, key: jax.Array, max_pulses: int | None = None):
        """Apply signed pulse counts through the inner device and count the cycles of each device."""
        check_finite("n_pulses", n_pulses)
        inner = self.device.apply_pulses(state.inner, n_pulses, key=key, max_pulses=max_pulses)
        n = jnp.broadcast_to(jnp.round(jnp.asarray(n_pulses)).astype(jnp.int32), jnp.shape(state.g))
        increment = (n != 0).astype(jnp.int32) if self.count == "events" else jnp.abs(n)
        state = eqx.tree_at(
            lambda s: (s.inner, s.cycles_since_program),
            state,
            (inner, state.cycles_since_program + increment),
        )
        return eqx.tree_at(lambda s: s.g, state, self._wear(inner.g, state))


def _check_unit_interval(name, value):
    if not is_concrete(value):
        return
    array = np.asarray(value, dtype=float)
    if not (np.isfinite(array).all() and (array >= 0).all() and (array <= 1).all()):
        raise ValueError(f"{name} must lie in [0, 1], got {value}; pass a fraction between 0 and 1")
