"""The HP linear ion drift memristor model, with optional window functions."""

from __future__ import annotations

from typing import ClassVar

import equinox as eqx
import jax.numpy as jnp

from ..._validation import check_positive, check_range, is_concrete
from . import windows
from ._integrate import CompactModel

WINDOWS = ("none", "joglekar", "biolek", "prodromakis")


class LinearIonDrift(CompactModel):
    """HP linear ion drift model of a TiO2 memristor.

    Source: D. B. Strukov, G. S. Snider, D. R. Stewart and R. S. Williams, "The missing memristor found",
    Nature 453, 80 (2008), eqs. 5 and 6, with the corrigendum in Nature 459, 1154 (2009). With the
    normalized doped width x = w/D in [0, 1]:

    - memristance R(x) = R_on x + R_off (1 - x), current i = v / R(x);
    - state rate dx/dt = k i f(x) with k = mu_V R_on / D^2 and window f (1 without a window).

    Without a window the state is a function of the charge, which gives the closed form
    x(t) = (R_off - sqrt(R_off^2 - 2 dR (k phi(t) + R_off x0 - dR x0^2 / 2))) / dR, with dR = R_off - R_on
    and the flux phi(t), until x reaches a bound. The integrator clips x to [0, 1].

    Defaults are the parameters of Strukov et al. (2008), Fig. 2b: R_on = 100 ohm, R_off = 16 kohm,
    D = 10 nm, mu_V = 1e-14 m^2/(V s). The initial state x_init = 0.1 is illustrative.

    Attributes:
        r_on: resistance of the fully doped device (x = 1), ohm.
        r_off: resistance of the undoped device (x = 0), ohm.
        thickness: film thickness D, m.
        mobility: dopant mobility mu_V, m^2/(V s).
        x_init: initial normalized state (illustrative 0.1).
        window: "none", "joglekar", "biolek" or "prodromakis" (static).
        p: window exponent (1).
        j: scale of the Prodromakis window (1).
    """

    r_on: float = 100.0
    r_off: float = 16e3
    thickness: float = 10e-9
    mobility: float = 1e-14
    x_init: float = 0.1
    window: str = eqx.field(static=True, default="none")
    p: float = 1.0
    j: float = 1.0

    x_min: ClassVar[float] = 0.0
    x_max: ClassVar[float] = 1.0

    def __check_init__(self):
        if self.window not in WINDOWS:
            raise ValueError(f"window must be one of {', '.join(WINDOWS)}, got {self.window!r}")
        check_positive("r_on", self.r_on, "ohm")
        check_range("r_on", self.r_on, "r_off", self.r_off, "ohm")
        check_positive("thickness", self.thickness, "m")
        check_positive("mobility", self.mobility, "m^2/(V s)")
        check_positive("p", self.p)
        check_positive("j", self.j)
        if is_concrete(self.x_init) and not 0.0 <= float(self.x_init) <= 1.0:
            raise ValueError(f"x_init must be in [0, 1], got {self.x_init}")

    @property
    def k(self):
        """Rate constant mu_V R_on / D^2, in 1/C."""
        return self.mobility * self.r_on / self.thickness**2

    def resistance(self, x):
        """Return the memristance R(x) in ohm."""
        return self.r_on * x + self.r_off * (1.0 - x)

    def current(self, x, v):
        return v / self.resistance(x)

    def window_value(self, x, current):
        """Return the window f(x) (1 without a window)."""
        if self.window == "joglekar":
            return windows.joglekar(x, self.p)
        if self.window == "biolek":
            return windows.biolek(x, current, self.p)
        if self.window == "prodromakis":
            return windows.prodromakis(x, self.p, self.j)
        return jnp.ones_like(x)

    def rate(self, x, v):
        current = self.current(x, v)
        return self.k * current * self.window_value(x, current)

    def closed_form_state(self, flux, x0=None):
        """Return the no-window state x as a function of the flux phi = integral of v dt (V s), clipped to [0, 1]."""
        x0 = self.x_init if x0 is None else x0
        delta = self.r_off - self.r_on
        constant = self.k * flux + self.r_off * x0 - 0.5 * delta * x0**2
        discriminant = jnp.maximum(self.r_off**2 - 2.0 * delta * constant, 0.0)
        return jnp.clip((self.r_off - jnp.sqrt(discriminant)) / delta, 0.0, 1.0)


def strukov2008(window: str = "none", **overrides) -> LinearIonDrift:
    """Return the HP model with the Fig. 2b parameters of Strukov et al., Nature 453, 80 (2008)."""
    return LinearIonDrift(window=window, **overrides)
