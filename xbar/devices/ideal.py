"""The ideal device: exact programming, no drift, no noise, linear pulse steps."""

from __future__ import annotations

import equinox as eqx
import jax.numpy as jnp

from .._validation import check_finite, check_positive, check_range
from ._base import Device, DeviceState
from .programming_pulse import ProgrammingPulse, check_pulse


class IdealDevice(Device):
    """A device that stores exactly the conductance it is programmed to and never changes.

    It is the ideal limit of every other model and the reference in tests: programming is exact,
    reads return the programmed value at any time, and each pulse moves the conductance by
    `pulse_step` (S), clipped to [g_min, g_max].

    Attributes:
        g_min: lowest conductance in S (default 0 S).
        g_max: highest conductance in S (default 25 uS, the PCM range of Joshi et al. 2020, for
            comparisons at equal scale).
        pulse_step: conductance change per pulse in S (default 0.25 uS, 1 % of the range; illustrative).
        potentiation_pulse: pulse that raises the conductance, for energy accounting only (default
            +1 V for 100 ns across the device, an assumed, typical RRAM value with no source).
        depression_pulse: pulse that lowers the conductance (default -1 V for 100 ns; assumed likewise).
    """

    g_min: float = 0.0
    g_max: float = 25e-6
    pulse_step: float = 0.25e-6
    potentiation_pulse: ProgrammingPulse = eqx.field(default_factory=lambda: ProgrammingPulse(1.0, 100e-9))
    depression_pulse: ProgrammingPulse = eqx.field(default_factory=lambda: ProgrammingPulse(-1.0, 100e-9))

    def __check_init__(self):
        check_range("g_min", self.g_min, "g_max", self.g_max)
        check_positive("pulse_step", self.pulse_step, "S")
        check_pulse("potentiation_pulse", self.potentiation_pulse)
        check_pulse("depression_pulse", self.depression_pulse)

    def _program_once(self, target, *, key):
        del key
        return DeviceState(g=target, iterations=jnp.ones(jnp.shape(target), jnp.int32))

    def drift(self, state, t):
        self.check_read_time(t)
        return jnp.broadcast_to(state.g, jnp.broadcast_shapes(jnp.shape(state.g), jnp.shape(t)))

    def read(self, state, t, *, key):
        del key
        return self.drift(state, t)

    def apply_pulses(self, state, n_pulses, *, key, max_pulses=None):
        """Move each conductance by `n_pulses * pulse_step`, clipped to the range. Differentiable."""
        del key, max_pulses
        check_finite("n_pulses", n_pulses)
        g = jnp.clip(state.g + jnp.asarray(n_pulses, state.g.dtype) * self.pulse_step, self.g_min, self.g_max)
        return DeviceState(g=g, iterations=state.iterations)

