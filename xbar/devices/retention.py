"""Retention loss: relaxation of programmed conductances over time, composed around any device model."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from .. import _random
from .._validation import check_finite, check_positive
from ._base import Device, DeviceState, ProgramVerify
from .programming_pulse import ProgrammingPulse


class Retention(Device):
    """Relaxation of programmed states with time after programming, on top of any device model.

    With g the conductance that the inner device reads at time t (s) after its last programming or pulse
    event and u = ln(1 + t / t0):

        G(t) = G_r + (g - G_r) exp(-exponent u) + shift u + spread u xi,   clamped at 0 S,

    where xi is a standard normal drawn at each read. The first term relaxes each state towards the level
    G_r = `relaxation_level` as the power law (1 + t/t0)^(-exponent), the form of the conductance-drift
    model G(t) = G(t0) (t/t0)^(-nu) that Lammie et al., Semiconductor Science and Technology 36, 065003
    (2021) take from Boybat et al. (IEEE NVMTS 2018), here shifted so that nothing changes at t = 0. The
    second and third terms are the log-time decay of the IBM CMO/HfOx RRAM noise model in IBM aihwkit
    (`ReRamCMONoiseModel`): mean shift -0.08900206 uS and spread 0.04201137 uS per unit of ln t, with t
    in seconds. That model uses ln t where this one uses ln(1 + t/t0), which stays finite at t = 0. The
    two agree within 1 % of ln t for t above 30 t0. Its constant spread term (0.41183342 uS at t = 1 s) belongs to
    programming and is left to the inner device.

    The defaults are the CMO numbers with no power-law term. `shift` and `spread` are absolute
    conductances, so scale them for a device whose range differs much from aihwkit's default
    conductance range (g_max 25 uS). The drift function is differentiable with
    respect to every parameter, and `program` and `apply_pulses` are those of the inner device.

    Attributes:
        device: the wrapped device model.
        g_min, g_max: conductance range of the wrapped device, S (copied from it at construction).
        relaxation_level: G_r, the conductance the power-law term relaxes towards, S (default: g_min).
        exponent: power-law relaxation exponent (0; for example 0.1, the default of Lammie et al. 2021).
        shift: mean conductance change per unit of ln(1 + t/t0), S (-0.08900206 uS, aihwkit CMO model).
        spread: growth of the standard deviation per unit of ln(1 + t/t0), S (0.04201137 uS, same model).
        t0: time scale of the relaxation, s (1 s, the unit of t in the CMO model).
    """

    device: Device
    g_min: float
    g_max: float
    relaxation_level: float
    exponent: float
    shift: float
    spread: float
    t0: float

    def __init__(
        self,
        device: Device,
        *,
        relaxation_level: float | None = None,
        exponent: float = 0.0,
        shift: float = -0.08900206e-6,
        spread: float = 0.04201137e-6,
        t0: float = 1.0,
    ):
        if not isinstance(device, Device):
            raise ValueError(f"Retention wraps a Device instance, got {device!r}")
        self.device = device
        self.g_min = device.g_min
        self.g_max = device.g_max
        self.relaxation_level = device.g_min if relaxation_level is None else relaxation_level
        self.exponent = exponent
        self.shift = shift
        self.spread = spread
        self.t0 = t0

    def __check_init__(self):
        check_positive("relaxation_level", self.relaxation_level, "S", allow_zero=True)
        check_positive("exponent", self.exponent, allow_zero=True)
        check_finite("shift", self.shift, "pass a finite conductance change per unit of ln time in S")
        check_positive("spread", self.spread, "S", allow_zero=True)
        check_positive("t0", self.t0, "s")

    @property
    def potentiation_pulse(self) -> ProgrammingPulse:
        """The potentiation pulse of the wrapped device."""
        return self.device.potentiation_pulse

    @property
    def depression_pulse(self) -> ProgrammingPulse:
        """The depression pulse of the wrapped device."""
        return self.device.depression_pulse

    def _log_time(self, t):
        t = jnp.maximum(jnp.asarray(t, jnp.result_type(float)), 0.0)
        return jnp.log1p(t / self.t0)

    def _relax_unclamped(self, g, u):
        return self.relaxation_level + (g - self.relaxation_level) * jnp.exp(-self.exponent * u) + self.shift * u

    def relax(self, g, t) -> jax.Array:
        """Return the mean relaxed conductance (S) of inner conductance `g` (S) at time `t` (s)."""
        return jnp.maximum(self._relax_unclamped(g, self._log_time(t)), 0.0)

    def program(self, target, *, key: jax.Array, verify: ProgramVerify | None = None) -> DeviceState:
        """Program through the inner device (retention starts counting from the end of programming)."""
        return self.device.program(target, key=key, verify=verify)

    def _program_once(self, target, *, key):
        return self.device.program(target, key=key)

    def drift(self, state: DeviceState, t) -> jax.Array:
        """Return the mean relaxed conductance (S) at time t (s) after the last event, without read noise."""
        return self.relax(self.device.drift(state, t), t)

    def read(self, state: DeviceState, t, *, key: jax.Array) -> jax.Array:
        """Return the conductance (S) read at time t (s): the inner read, relaxed, plus the retention spread."""
        key_inner, key_spread = jax.random.split(key)
        g = self.device.read(state, t, key=key_inner)
        u = self._log_time(t)
        xi = _random.normal(key_spread, jnp.shape(g), g.dtype)
        u = jnp.broadcast_to(u, jnp.shape(g))
        return jnp.maximum(self._relax_unclamped(g, u) + self.spread * u * xi, 0.0)

    def apply_pulses(self, state: DeviceState, n_pulses, *, key: jax.Array, max_pulses: int | None = None):
        """Apply pulses through the inner device; its clock, and the relaxation, restart where pulses landed."""
        return self.device.apply_pulses(state, n_pulses, key=key, max_pulses=max_pulses)
