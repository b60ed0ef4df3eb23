"""A compact memristor model used as a tile device, programmed by voltage pulses."""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp

from ..._validation import check_finite, check_positive, is_concrete
from .._base import Device, DeviceState, ProgramVerify
from ._integrate import CompactModel, integrate


class CompactState(DeviceState):
    """State of an array of compact-model devices.

    Attributes:
        g: chord conductance I(v_read) / v_read, in S.
        iterations: programming pulses each device received (int32).
        x: state variable of the compact model, in its own unit.
    """

    x: jax.Array


class CompactDevice(Device):
    """A compact model as a tile device: the tile reads the chord conductance at the read voltage.

    The conductance of a device in state x is I(x, v_read) / v_read, so a model with a nonlinear I-V
    (Yakopcic, Stanford-PKU) reads its chord conductance at v_read. There is no drift and no read noise.

    Pulses are rectangular voltage pulses of `pulse_width` integrated through the model in
    `steps_per_pulse` steps: `set_voltage` raises the conductance and `reset_voltage` lowers it (their
    signs depend on the model: VTEAM sets with negative voltage, the others with positive voltage).

    Programming is program-and-verify with pulses and starts from the model's initial state. While a
    device's conductance misses its target by more than the tolerance, it gets one SET or RESET pulse.
    Its pulse width halves each time the error changes sign, so a device that overshoots approaches
    the target with finer pulses. The loop stops when all devices are within tolerance or after
    `max_program_pulses` pulses. Programming is a `while_loop` and is not differentiable. Its tolerance
    is `program_tolerance` (S) or, when `program` gets a `ProgramVerify`, that object's `tolerance`.
    `ProgramVerify.max_iterations` is not used, because a pulse loop needs far more steps than
    reprogramming does.

    Attributes:
        model: the compact model.
        v_read: read voltage, V (0.1 V, illustrative; must not be 0).
        set_voltage: amplitude of a SET pulse, V (signed).
        reset_voltage: amplitude of a RESET pulse, V (signed).
        pulse_width: pulse duration, s.
        steps_per_pulse: integration steps per pulse (static).
        program_tolerance: accepted |G - G_target| when programming, S (None: 1 % of g_max - g_min).
        max_program_pulses: maximum pulses per programming call (static).
        g_min, g_max: chord conductances at the bounds of the state, S (computed from the model).
    """

    model: CompactModel
    set_voltage: float
    reset_voltage: float
    pulse_width: float
    v_read: float
    program_tolerance: float
    g_min: float
    g_max: float
    steps_per_pulse: int = eqx.field(static=True)
    max_program_pulses: int = eqx.field(static=True)

    def __init__(self, model: CompactModel, *, set_voltage, reset_voltage, pulse_width, v_read=0.1,
                 program_tolerance=None, steps_per_pulse: int = 10, max_program_pulses: int = 500):
        check_positive("pulse_width", pulse_width, "s")
        check_finite("set_voltage", set_voltage)
        check_finite("reset_voltage", reset_voltage)
        if is_concrete(v_read) and float(v_read) == 0.0:
            raise ValueError(
                "v_read must not be 0 V, because the chord conductance I(v_read)/v_read needs a nonzero voltage"
            )
        for name, value in (("steps_per_pulse", steps_per_pulse), ("max_program_pulses", max_program_pulses)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
        self.model = model
        self.set_voltage = set_voltage
        self.reset_voltage = reset_voltage
        self.pulse_width = pulse_width
        self.v_read = v_read
        self.steps_per_pulse = steps_per_pulse
        self.max_program_pulses = max_program_pulses
        g_low = self.conductance(jnp.asarray(model.x_min, jnp.result_type(float)))
        g_high = self.conductance(jnp.asarray(model.x_max, jnp.result_type(float)))
        self.g_min = jnp.minimum(g_low, g_high)
        self.g_max = jnp.maximum(g_low, g_high)
        # Default tolerance: 1 % of the conductance range (illustrative).
        self.program_tolerance = 0.01 * (self.g_max - self.g_min) if program_tolerance is None else program_tolerance
        check_positive("program_tolerance", self.program_tolerance, "S")
        self._check_polarity()

    def _check_polarity(self):
        """Raise ValueError when a SET pulse lowers the conductance of a device in the middle of its range."""
        if not is_concrete(self):
            return
        x_mid = jnp.asarray(0.5 * (self.model.x_min + self.model.x_max), jnp.result_type(float))
        g_mid = float(self.conductance(x_mid))
        g_set = float(self.conductance(self._pulse(x_mid, self.set_voltage, self.pulse_width)))
        if g_set < g_mid:
            raise ValueError(
                f"set_voltage = {self.set_voltage} V lowers the conductance of {type(self.model).__name__} "
                f"({g_mid:.4g} S to {g_set:.4g} S in one pulse); swap set_voltage and reset_voltage"
            )

    def conductance(self, x):
        """Return the chord conductance I(x, v_read) / v_read, S."""
        return self.model.current(x, self.v_read) / self.v_read

    def _state(self, x, iterations):
        return CompactState(g=self.conductance(x), iterations=iterations, x=x)

    def _pulse(self, x, voltage, width):
        """Apply one rectangular pulse of `voltage` (V) and `width` (s) to every device; return the new state."""
        waveform = jnp.broadcast_to(voltage, (self.steps_per_pulse + 1, *jnp.shape(x)))
        _, x_end = integrate(self.model, waveform, width / self.steps_per_pulse, x, output="final")
        return x_end

    def initial_state(self, shape=()) -> CompactState:
        """Return the state of unprogrammed devices (the model's x_init)."""
        x = jnp.full(shape, self.model.x_init, jnp.result_type(float))
        return self._state(x, jnp.zeros(shape, jnp.int32))

    def _program_once(self, target, *, key):
        return self._program_pulses(target, self.program_tolerance)

    def program(self, target, *, key, verify: ProgramVerify | None = None) -> CompactState:
        """Program target conductances (S), clipped to [g_min, g_max], by program-and-verify with pulses.

        Not differentiable. `key` is unused (the model is deterministic). See the class docstring.
        """
        del key
        check_finite("target conductance", target, "pass finite conductances in S")
        target = jnp.clip(jnp.asarray(target, jnp.result_type(float)), self.g_min, self.g_max)
        tolerance = self.program_tolerance if verify is None else verify.tolerance
        return self._program_pulses(target, tolerance)

    def _program_pulses(self, target, tolerance):
        start = self.initial_state(jnp.shape(target))

        def direction(x):
            error = self.conductance(x) - target
            return jnp.where(error < -tolerance, 1, jnp.where(error > tolerance, -1, 0))

        def cond(carry):
            count, x, _, _, _ = carry
            return (count < self.max_program_pulses) & jnp.any(direction(x) != 0)

        def body(carry):
            count, x, width, previous, pulses = carry
            sign = direction(x)
            reversed_ = (sign * previous) < 0
            width = jnp.where(reversed_, 0.5 * width, width)
            voltage = jnp.where(sign > 0, self.set_voltage, jnp.where(sign < 0, self.reset_voltage, 0.0))
            x = self._pulse(x, voltage, width)
            previous = jnp.where(sign != 0, sign, previous)
            return count + 1, x, width, previous, pulses + (sign != 0).astype(jnp.int32)

        width = jnp.full(jnp.shape(target), self.pulse_width, jnp.result_type(float))
        zeros = jnp.zeros(jnp.shape(target), jnp.int32)
        carry = (jnp.asarray(0, jnp.int32), start.x, width, zeros, zeros)
        _, x, _, _, pulses = jax.lax.while_loop(cond, body, carry)
        return self._state(x, pulses)

    def drift(self, state, t):
        self.check_read_time(t)
        return jnp.broadcast_to(state.g, jnp.broadcast_shapes(jnp.shape(state.g), jnp.shape(t)))

    def read(self, state, t, *, key):
        """Return the chord conductance (S) at v_read; there is no drift and no read noise."""
        del key
        return self.drift(state, t)

    def apply_pulses(self, state, n_pulses, *, key, max_pulses=None) -> CompactState:
        """Apply signed pulse counts: n > 0 applies n SET pulses, n < 0 applies |n| RESET pulses.

        `max_pulses` bounds the loop and is required under `jit`; with concrete counts it defaults to
        max |n_pulses|. Differentiable with respect to the state and the model parameters.
        """
        del key
        check_finite("n_pulses", n_pulses)
        n_pulses = jnp.asarray(n_pulses)
        if max_pulses is None:
            if not is_concrete(n_pulses):
                raise ValueError("max_pulses is required when n_pulses is traced; pass the largest |n_pulses|")
            max_pulses = int(jnp.max(jnp.abs(n_pulses))) if n_pulses.size else 0
        shape = jnp.broadcast_shapes(jnp.shape(state.x), n_pulses.shape)
        x = jnp.broadcast_to(state.x, shape)
        count = jnp.broadcast_to(jnp.abs(n_pulses), shape)
        amplitude = jnp.where(n_pulses > 0, self.set_voltage, self.reset_voltage)

        def body(index, x):
            voltage = jnp.where(index < count, amplitude, 0.0)
            return self._pulse(x, voltage, self.pulse_width)

        x = jax.lax.fori_loop(0, max_pulses, body, x)
        return self._state(x, jnp.broadcast_to(state.iterations, shape))
