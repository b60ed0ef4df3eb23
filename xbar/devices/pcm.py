"""Statistical phase-change memory (PCM) model calibrated on IBM's one-million-device array.

Sources:
    S. R. Nandakumar et al., "Phase-change memory models for deep learning training and inference",
    IEEE ICECS 2019; V. Joshi et al., "Accurate deep neural network inference using computational
    phase-change memory", Nature Communications 11, 2473 (2020). The equations and constants are those of
    the `PCMLikeNoiseModel` of IBM aihwkit (MIT license), which implements that calibration.
    Gradual SET: the `PCMPresetDevice` of aihwkit, fitted to S. R. Nandakumar et al., "Mixed-precision
    deep learning based on computational memory", Frontiers in Neuroscience 14, 406 (2020).
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from .. import _random
from .._validation import check_finite, check_positive, check_range, is_concrete
from ._base import DeviceState, NormalNoiseDevice
from .programming_pulse import ProgrammingPulse, check_pulse

# Smallest relative conductance used inside logarithms (the clamp of the published model).
_X_FLOOR = 1e-7

# Programming pulses of a mushroom-type PCM cell, used for energy accounting only.
# NOTE: assumed orders of magnitude, not values from the sources of this model (Nandakumar et al. 2019
# and 2020, Joshi et al. 2020).
SET_PULSE = ProgrammingPulse(voltage=1.0, width=50e-9, current=100e-6)
RESET_PULSE = ProgrammingPulse(voltage=1.5, width=50e-9, current=400e-6)


class PCMState(DeviceState):
    """State of an array of PCM devices.

    Attributes:
        g: conductance at the end of programming (after write noise), in S.
        iterations: programming attempts per device (int32).
        nu: drift exponent of each device before `drift_scale` (dimensionless), drawn when the device is
            programmed.
    """

    nu: jax.Array


class PCM(NormalNoiseDevice):
    """Statistical PCM model: polynomial write noise, power-law drift and accumulated 1/f read noise.

    With x = G_T / g_max for a target conductance G_T:

    - programming: G_P = G_T + sigma_P(x) xi, clamped at 0 S (not at g_max), with
      sigma_P = (c0 + c1 x + c2 x^2) g_max / g_ref;
    - drift exponent per device: nu = |mu_nu(x) + sigma_nu(x) xi| * drift_scale, with
      mu_nu = clip(-0.0155 ln x + 0.0244, 0.049, 0.1), sigma_nu = clip(-0.0125 ln x - 0.0059, 0.008, 0.045);
    - drift: G_D(t) = G_P ((t + t0) / t0)^(-nu), t measured from the end of programming, so the factor is
      1 at t = 0;
    - read noise accumulated since programming: G(t) = G_D + G_D Q_s sqrt(ln((t + t0 + t_read) / (2 t_read))) xi,
      clamped at 0, with Q_s = min(0.0088 / max(x_P^0.65, 1e-3), 0.2) and x_P = G_P / g_max.

    Pulses (for learning) follow the gradual SET and abrupt RESET of the aihwkit PCM preset, with u = G/g_max:
    a SET pulse adds du = set_step (1 + set_amplitude exp(-set_rate u)) plus Gaussian noise of standard
    deviation set_noise (|du| + set_noise_offset + set_noise_slope u); a RESET returns the device to
    reset_level g_max.

    Every coefficient is a dynamic leaf, so `grad` and `vmap` reach all of them (for example `drift_scale`
    and `g_max`).

    Attributes:
        g_max: highest target conductance, S (25 uS, Joshi et al. 2020).
        g_min: lowest target conductance, S (0 S, as aihwkit's single-pair converter).
        prog_coeff: write-noise polynomial coefficients c0, c1, c2 in S at g_ref
            (0.26348, 1.9650, -1.1731 uS; Joshi et al. 2020, Fig. 3, as fitted in aihwkit).
        prog_g_ref: g_max at which `prog_coeff` was fitted, S (25 uS).
        prog_noise_scale: multiplier of the write noise (1).
        t0: time after which drift is measured, s (20 s).
        t_read: duration of one read, s (250 ns).
        drift_scale: multiplier of the drift exponent (1).
        read_noise_scale: multiplier of the 1/f read noise (1).
        mu_nu_coeff, mu_nu_bounds: slope and offset of mu_nu in ln x, and its clip range (-0.0155, 0.0244),
            (0.049, 0.1).
        sigma_nu_coeff, sigma_nu_bounds: the same for sigma_nu: (-0.0125, -0.0059), (0.008, 0.045).
        q_s_coeff, q_s_exponent, q_s_floor, q_s_max: read-noise constants 0.0088, 0.65, 1e-3, 0.2.
        set_step, set_amplitude, set_rate: mean SET step in units of g_max: 0.005, 27.235, 5.0
            (aihwkit PCMPresetDevice: dw_min 0.01, A_up -27.235, gamma 2.5 on its weight range [0, 2]).
        set_noise, set_noise_offset, set_noise_slope: SET step noise 0.6, 0.021, 0.108 (same preset).
        reset_level, reset_noise: conductance after RESET and its spread, in units of g_max: 0.005, 0.01.
        set_pulse: current pulse of one gradual SET, for energy accounting only (assumed: 100 uA at 1 V
            for 50 ns, 5 pJ).
        reset_pulse: current pulse of one RESET, which also starts the refresh of a differential pair
            (assumed: 400 uA at 1.5 V for 50 ns, 30 pJ).
    """

    g_max: float = 25e-6
    g_min: float = 0.0
    prog_coeff: tuple[float, float, float] = (0.26348e-6, 1.9650e-6, -1.1731e-6)
    prog_g_ref: float = 25e-6
    prog_noise_scale: float = 1.0
    t0: float = 20.0
    t_read: float = 250e-9
    drift_scale: float = 1.0
    read_noise_scale: float = 1.0
    mu_nu_coeff: tuple[float, float] = (-0.0155, 0.0244)
    mu_nu_bounds: tuple[float, float] = (0.049, 0.1)
    sigma_nu_coeff: tuple[float, float] = (-0.0125, -0.0059)
    sigma_nu_bounds: tuple[float, float] = (0.008, 0.045)
    q_s_coeff: float = 0.0088
    q_s_exponent: float = 0.65
    q_s_floor: float = 1e-3
    q_s_max: float = 0.2
    set_step: float = 0.005
    set_amplitude: float = 27.235
    set_rate: float = 5.0
    set_noise: float = 0.6
    set_noise_offset: float = 0.021
    set_noise_slope: float = 0.108
    reset_level: float = 0.005
    reset_noise: float = 0.01
    set_pulse: ProgrammingPulse = eqx.field(default_factory=lambda: SET_PULSE)
    reset_pulse: ProgrammingPulse = eqx.field(default_factory=lambda: RESET_PULSE)

    def __check_init__(self):
        check_range("g_min", self.g_min, "g_max", self.g_max)
        for name in ("prog_g_ref", "t0", "t_read", "q_s_exponent", "q_s_floor", "q_s_max", "set_rate"):
            check_positive(name, getattr(self, name))
        for name in ("prog_noise_scale", "drift_scale", "read_noise_scale", "set_step", "set_noise",
                     "set_noise_offset", "set_noise_slope", "reset_level", "reset_noise", "set_amplitude"):
            check_positive(name, getattr(self, name), allow_zero=True)
        for name in ("mu_nu_bounds", "sigma_nu_bounds"):
            low, high = getattr(self, name)
            if is_concrete((low, high)) and not 0 <= float(low) <= float(high):
                raise ValueError(f"{name} = ({low}, {high}) must satisfy 0 <= low <= high; pass (low, high) in that order")
        for name in ("prog_coeff", "mu_nu_coeff", "sigma_nu_coeff"):
            check_finite(name, np.asarray(getattr(self, name)) if is_concrete(getattr(self, name)) else None)
        check_pulse("set_pulse", self.set_pulse)
        check_pulse("reset_pulse", self.reset_pulse)

    @property
    def potentiation_pulse(self) -> ProgrammingPulse:
        """The SET pulse, the pulse that a positive count in `apply_pulses` applies."""
        return self.set_pulse

    @property
    def depression_pulse(self) -> ProgrammingPulse:
        """The RESET pulse, which a negative count in `apply_pulses` applies once."""
        return self.reset_pulse

    # Published statistics, elementwise functions of conductance (S) and time (s).

    def programming_noise_std(self, g_target):
        """Return the standard deviation (S) of the write noise at target conductance `g_target` (S)."""
        x = jnp.asarray(g_target) / self.g_max
        c0, c1, c2 = self.prog_coeff
        return self.prog_noise_scale * (c0 + c1 * x + c2 * x * x) * (self.g_max / self.prog_g_ref)

    def drift_exponent_mean(self, g_target):
        """Return the mean drift exponent mu_nu at target conductance `g_target` (S), before drift_scale."""
        log_x = jnp.log(jnp.maximum(jnp.abs(jnp.asarray(g_target)) / self.g_max, _X_FLOOR))
        slope, offset = self.mu_nu_coeff
        return jnp.clip(slope * log_x + offset, *self.mu_nu_bounds)

    def drift_exponent_std(self, g_target):
        """Return the device-to-device spread sigma_nu of the drift exponent at `g_target` (S)."""
        log_x = jnp.log(jnp.maximum(jnp.abs(jnp.asarray(g_target)) / self.g_max, _X_FLOOR))
        slope, offset = self.sigma_nu_coeff
        return jnp.clip(slope * log_x + offset, *self.sigma_nu_bounds)

    def drift_factor(self, nu, t):
        """Return ((t + t0) / t0)^(-nu): exactly 1 at t = 0 and never above 1 for nu >= 0."""
        t = jnp.maximum(jnp.asarray(t, jnp.result_type(float)), 0.0)
        return jnp.exp(-nu * jnp.log1p(t / self.t0))

    def read_noise_std(self, g_prog, t):
        """Return the relative 1/f read-noise standard deviation Q_s sqrt(ln((t + t0 + t_read)/(2 t_read)))."""
        x_prog = jnp.abs(jnp.asarray(g_prog)) / self.g_max
        # max(x^a, floor) == max(x, floor^(1/a))^a; the second form keeps the gradient finite at x = 0.
        x_safe = jnp.maximum(x_prog, self.q_s_floor ** (1.0 / self.q_s_exponent))
        # x_safe > 0, so x^-a = exp(-a ln x). Its gradient takes about a third of the time of a power's on a CPU.
        q_s = jnp.minimum(self.q_s_coeff * jnp.exp(-self.q_s_exponent * jnp.log(x_safe)), self.q_s_max)
        t = jnp.maximum(jnp.asarray(t, jnp.result_type(float)), 0.0)
        return self.read_noise_scale * q_s * jnp.sqrt(jnp.log((t + self.t0 + self.t_read) / (2.0 * self.t_read)))

    # Device interface.

    def _sample_nu(self, g_target, key):
        xi = _random.normal(key, jnp.shape(g_target), jnp.result_type(float))
        return self._nu(g_target, xi)

    def _nu(self, g_target, xi):
        return jnp.abs(self.drift_exponent_mean(g_target) + self.drift_exponent_std(g_target) * xi)

    # Standard normals per device: write noise and drift exponent when programming, read noise when reading.
    program_normals = 2
    read_normals = 1

    def _program_from_normals(self, target, normals):
        xi_write, xi_nu = normals
        g = jnp.maximum(target + self.programming_noise_std(target) * xi_write, 0.0)
        return PCMState(g=g, iterations=jnp.ones(jnp.shape(target), jnp.int32), nu=self._nu(target, xi_nu))

    def drift(self, state, t):
        """Return the noise-free drifted conductance G_P ((t + t0)/t0)^(-nu drift_scale) in S."""
        self.check_read_time(t)
        return state.g * self.drift_factor(self.drift_scale * state.nu, t)

    def read_from_normals(self, state, t, normals):
        """Return the conductance (S) read at t seconds after programming: drift plus accumulated 1/f noise."""
        g_drift = self.drift(state, t)
        noisy = g_drift + jnp.abs(g_drift) * self.read_noise_std(state.g, t) * normals[0]
        return jnp.maximum(noisy, 0.0)

    def apply_pulses(self, state, n_pulses, *, key, max_pulses=None):
        """Apply signed pulse counts: n > 0 gradual SET pulses, n < 0 one abrupt RESET.

        PCM conductance only rises gradually; any negative count RESETs the device to `reset_level` in one
        step (with `reset_noise`), which is how aihwkit's PCM preset depresses. Devices that received pulses
        draw a new drift exponent for their new conductance, and their drift clock restarts.

        The SET pulses are applied one after another. With `max_pulses` (a Python int) or concrete counts
        the loop has a fixed length, so it is differentiable with respect to the device parameters. Traced
        counts without `max_pulses` need a `while_loop`, which is not reverse-differentiable.
        """
        check_finite("n_pulses", n_pulses)
        # Read concrete counts before any jnp operation: inside `jit` those return tracers even for constants.
        if max_pulses is None and is_concrete(n_pulses):
            max_pulses = int(np.max(np.round(np.asarray(n_pulses)), initial=0))
        n = jnp.asarray(n_pulses)
        n = jnp.broadcast_to(jnp.round(n).astype(jnp.int32), jnp.shape(state.g))
        key_set, key_reset, key_nu = jax.random.split(key, 3)

        u = state.g / self.g_max
        dtype = u.dtype

        def one_pulse(step, u):
            xi = _random.normal(jax.random.fold_in(key_set, step), u.shape, dtype)
            du = self.set_step * (1.0 + self.set_amplitude * jnp.exp(-self.set_rate * u))
            std = self.set_noise * (jnp.abs(du) + self.set_noise_offset + self.set_noise_slope * jnp.abs(u))
            new = jnp.clip(u + du + std * xi, 0.0, 1.0)
            return jnp.where(step < n, new, u)

        if max_pulses is None:
            u = jax.lax.fori_loop(0, jnp.max(n), one_pulse, u)
        elif max_pulses > 0:
            u = jax.lax.fori_loop(0, max_pulses, one_pulse, u)

        reset_xi = _random.normal(key_reset, u.shape, dtype)
        u_reset = jnp.clip(self.reset_level + self.reset_noise * reset_xi, 0.0, 1.0)
        u = jnp.where(n < 0, u_reset, u)

        changed = n != 0
        # Untouched devices keep their exact conductance: the round trip through u can move it by one ulp.
        g = jnp.where(changed, u * self.g_max, state.g)
        nu = jnp.where(changed, self._sample_nu(g, key_nu), state.nu)
        return eqx.tree_at(lambda s: (s.g, s.nu), state, (g, nu))
