"""The Yakopcic memristor model."""

from __future__ import annotations

from typing import ClassVar

import jax.numpy as jnp

from ..._validation import check_positive, is_concrete
from ._integrate import CompactModel

# Exponents are clamped to this magnitude so that exp and sinh stay finite in float32 (exp(80) is 5.5e34).
# Only voltages far outside any device's range reach the clamp.
_MAX_EXPONENT = 80.0


def _exp(value):
    return jnp.exp(jnp.clip(value, -_MAX_EXPONENT, _MAX_EXPONENT))


class Yakopcic(CompactModel):
    """Yakopcic memristor model: a sinh I-V scaled by the state and a threshold exponential drive.

    Sources: C. Yakopcic et al., IEEE Electron Device Letters 32, 1436 (2011); C. Yakopcic et al., IEEE
    Transactions on Computer-Aided Design 32, 1201 (2013). With state x in [0, 1]:

    - current I = a1 x sinh(b V) for V >= 0 and a2 x sinh(b V) for V < 0;
    - drive g(V) = Ap (e^V - e^Vp) for V > Vp, -An (e^-V - e^Vn) for V < -Vn, else 0, so the state does
      not move for -Vn <= V <= Vp;
    - motion f(x) = exp(-alpha_p (x - xp)) ((xp - x)/(1 - xp) + 1) for eta V > 0 and x >= xp,
      exp(alpha_n (x + xn - 1)) x/(1 - xn) for eta V < 0 and x <= 1 - xn, else 1;
    - dx/dt = eta g(V) f(x).

    Voltages enter exponentials as V (in volts, as in the published equations). Exponents are clamped at
    +-80 so that no exp or sinh overflows.

    Defaults are parameter set A (`yakopcic_set_a`); see the presets for their sources.

    Attributes:
        a1, a2: current scale for positive and negative voltage, A.
        b: I-V nonlinearity, 1/V.
        vp, vn: positive and negative switching thresholds (both given as magnitudes), V.
        ap, an: drive amplitudes, 1/s.
        xp, xn: state beyond which motion slows, for each polarity.
        alpha_p, alpha_n: decay of the motion near the bounds.
        eta: direction of motion relative to the voltage (+1 or -1).
        x_init: initial state.
    """

    a1: float = 0.17
    a2: float = 0.17
    b: float = 0.05
    vp: float = 0.16
    vn: float = 0.15
    ap: float = 4000.0
    an: float = 4000.0
    xp: float = 0.3
    xn: float = 0.5
    alpha_p: float = 1.0
    alpha_n: float = 5.0
    eta: float = 1.0
    x_init: float = 0.11

    x_min: ClassVar[float] = 0.0
    x_max: ClassVar[float] = 1.0

    def __check_init__(self):
        for name in ("a1", "a2", "b", "vp", "vn", "ap", "an", "alpha_p", "alpha_n"):
            check_positive(name, getattr(self, name))
        for name in ("xp", "xn", "x_init"):
            value = getattr(self, name)
            if is_concrete(value) and not 0.0 <= float(value) <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {value}")
        for name in ("xp", "xn"):
            value = getattr(self, name)
            if is_concrete(value) and float(value) >= 1.0:
                raise ValueError(f"{name} must be < 1, got {value}; it divides by 1 - {name}")
        if is_concrete(self.eta) and float(self.eta) not in (1.0, -1.0):
            raise ValueError(f"eta must be +1 or -1, got {self.eta}")

    def current(self, x, v):
        scale = jnp.where(v >= 0, self.a1, self.a2)
        return scale * x * jnp.sinh(jnp.clip(self.b * v, -_MAX_EXPONENT, _MAX_EXPONENT))

    def drive(self, v):
        """Return g(V), 1/s; zero for -Vn <= V <= Vp."""
        positive = self.ap * (_exp(v) - jnp.exp(self.vp))
        negative = -self.an * (_exp(-v) - jnp.exp(self.vn))
        return jnp.where(v > self.vp, positive, jnp.where(v < -self.vn, negative, 0.0))

    def motion(self, x, v):
        """Return f(x) for the direction that voltage v drives."""
        rising_window = (self.xp - x) / (1.0 - self.xp) + 1.0
        rising = jnp.where(x >= self.xp, jnp.exp(-self.alpha_p * (x - self.xp)) * rising_window, 1.0)
        falling_window = x / (1.0 - self.xn)
        falling = jnp.where(x <= 1.0 - self.xn, jnp.exp(self.alpha_n * (x + self.xn - 1.0)) * falling_window, 1.0)
        return jnp.where(self.eta * v > 0, rising, falling)

    def rate(self, x, v):
        return self.eta * self.drive(v) * self.motion(x, v)


def yakopcic_set_a(**overrides) -> Yakopcic:
    """Return parameter set A: a1 = a2 = 0.17, b = 0.05, Vp = 0.16, Vn = 0.15, Ap = An = 4000, xp = 0.3,
    xn = 0.5, alpha_p = 1, alpha_n = 5, x0 = 0.11, eta = 1.

    NOTE: this set appears in two independent student implementations of the model, an LTspice
    symbol and a MATLAB script. Which device fit of Yakopcic et al. (2013) it comes from is not verified.
    """
    return Yakopcic(**overrides)


def yakopcic_set_b(**overrides) -> Yakopcic:
    """Return parameter set B of Yakopcic's own SPICE subcircuit (revision of 21 December 2011).

    a1 = a2 = 7e-5, b = 1.9, Vp = 0.4, Vn = 0.3, Ap = An = 1, xp = 0.9, xn = 0.7, alpha_p = 3,
    alpha_n = 8, eta = 1. That listing gives no initial state, so x_init = 0.5 is illustrative.
    """
    parameters = dict(a1=7e-5, a2=7e-5, b=1.9, vp=0.4, vn=0.3, ap=1.0, an=1.0, xp=0.9, xn=0.7,
                      alpha_p=3.0, alpha_n=8.0, eta=1.0, x_init=0.5)
    parameters.update(overrides)
    return Yakopcic(**parameters)
