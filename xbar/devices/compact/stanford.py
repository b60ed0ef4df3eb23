"""The Stanford-PKU RRAM compact model (deterministic part)."""

from __future__ import annotations

import jax.numpy as jnp

from ..._validation import check_positive, check_range, is_concrete
from ._integrate import CompactModel

ELEMENTARY_CHARGE = 1.602176634e-19  # C
BOLTZMANN = 1.380649e-23  # J/K
# q / kB in K/V, formed in float64 here: the product kB T squared in float32 underflows in gradients.
_CHARGE_OVER_BOLTZMANN = ELEMENTARY_CHARGE / BOLTZMANN

# Arguments of exp and sinh are clamped to this magnitude so they stay finite in float32.
_MAX_EXPONENT = 80.0


def _sinh(value):
    return jnp.sinh(jnp.clip(value, -_MAX_EXPONENT, _MAX_EXPONENT))


class StanfordPKU(CompactModel):
    """Stanford-PKU RRAM model: a tunneling gap between filament tip and electrode.

    Source: Z. Jiang et al., IEEE Transactions on Electron Devices (2016); equations and defaults of its
    Verilog-A release, "Stanford RRAM Model" v1.0.0 on nanoHUB (doi:10.4231/D37H1DN48). The state is the
    gap g in [gap_min, gap_max]:

    - current I = I0 exp(-g/g0) sinh(V/V0);
    - gap rate dg/dt = -v0 exp(-q Ea / (kB T)) sinh(gamma a0 q V / (tox kB T)), with the field
      enhancement gamma = gamma0 - beta (g / 1 nm)^alpha, set to 0 where gamma |V| / tox < F_min, so no
      gap change below that field;
    - local temperature T = T0 + |V I| Rth.

    Positive voltage shrinks the gap (SET). The random gap fluctuation of the release
    (model_switch = 1) is left out, so the model is deterministic. Arguments of exp and sinh are
    clamped at +-80.

    Defaults are those of the release: g0 = 0.25 nm, V0 = 0.25 V, v0 = 10 m/s, I0 = 1 mA, alpha = 3,
    beta = 0.8, gamma0 = 16, Ea = 0.6 eV, a0 = 0.25 nm, T0 = 298 K, F_min = 1.4e9 V/m, gap_min =
    gap_init = 0.2 nm, gap_max = 1.7 nm, Rth = 2.1e3 K/W, tox = 12 nm. They give read resistances at
    0.1 V of 541.8 ohm (gap 0.2 nm) and 218586.1 ohm (gap 1.7 nm).

    Attributes:
        i0: current scale, A.
        g0: gap decay length of the current, m.
        v0_iv: voltage scale of the current, V.
        velocity: gap velocity prefactor v0, m/s.
        activation_energy: Ea, eV.
        a0: atomic hopping distance, m.
        tox: oxide thickness, m.
        gamma0, beta, alpha: field enhancement gamma = gamma0 - beta (g / 1 nm)^alpha.
        f_min: field below which the gap does not move, V/m.
        t0: ambient temperature, K.
        r_th: thermal resistance, K/W.
        gap_min, gap_max: bounds of the gap, m.
        x_init: initial gap, m.
    """

    i0: float = 1e-3
    g0: float = 0.25e-9
    v0_iv: float = 0.25
    velocity: float = 10.0
    activation_energy: float = 0.6
    a0: float = 0.25e-9
    tox: float = 12e-9
    gamma0: float = 16.0
    beta: float = 0.8
    alpha: float = 3.0
    f_min: float = 1.4e9
    t0: float = 298.0
    r_th: float = 2.1e3
    gap_min: float = 0.2e-9
    gap_max: float = 1.7e-9
    x_init: float = 0.2e-9

    def __check_init__(self):
        for name in ("i0", "g0", "v0_iv", "velocity", "activation_energy", "a0", "tox", "gamma0", "alpha", "t0"):
            check_positive(name, getattr(self, name))
        for name in ("beta", "f_min", "r_th"):
            check_positive(name, getattr(self, name), allow_zero=True)
        check_positive("gap_min", self.gap_min, "m")
        check_range("gap_min", self.gap_min, "gap_max", self.gap_max, "m")
        if is_concrete((self.x_init, self.gap_min, self.gap_max)) and not (
            float(self.gap_min) <= float(self.x_init) <= float(self.gap_max)
        ):
            raise ValueError(
                f"x_init must be a gap in [gap_min, gap_max] = [{self.gap_min}, {self.gap_max}] m, got {self.x_init} m"
            )

    @property
    def x_min(self):
        return self.gap_min

    @property
    def x_max(self):
        return self.gap_max

    def current(self, gap, v):
        return self.i0 * jnp.exp(-gap / self.g0) * _sinh(v / self.v0_iv)

    def temperature(self, gap, v):
        """Return the local temperature T0 + |V I| Rth, K."""
        return self.t0 + jnp.abs(v * self.current(gap, v)) * self.r_th

    def rate(self, gap, v):
        thermal = _CHARGE_OVER_BOLTZMANN / self.temperature(gap, v)
        gamma = self.gamma0 - self.beta * (gap / 1e-9) ** self.alpha
        gamma = jnp.where(jnp.abs(gamma * v) / self.tox < self.f_min, 0.0, gamma)
        hopping = jnp.exp(-jnp.clip(self.activation_energy * thermal, 0.0, _MAX_EXPONENT))
        return -self.velocity * hopping * _sinh(gamma * self.a0 * v * thermal / self.tox)


def stanford_pku_v1(**overrides) -> StanfordPKU:
    """Return the Stanford-PKU model with the defaults of its nanoHUB release v1.0.0 (doi:10.4231/D37H1DN48).

    Keyword arguments override single parameters.
    """
    return StanfordPKU(**overrides)
