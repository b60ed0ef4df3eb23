"""The VTEAM voltage-threshold memristor model."""

from __future__ import annotations

import equinox as eqx
import jax.numpy as jnp

from ..._validation import check_positive, check_range, is_concrete
from . import windows
from ._integrate import CompactModel

RESISTANCE_FORMS = ("linear", "exponential")
WINDOWS = ("none", "joglekar", "biolek")


def _check_negative(name, value, unit):
    if is_concrete(value) and not float(value) < 0.0:
        raise ValueError(f"{name} must be negative, got {value} {unit}; pass a value < 0 {unit}")


def _power_above(ratio, exponent, active):
    """Return (ratio - 1)^exponent where `active`, else 0, with a gradient that stays finite."""
    base = jnp.where(active, ratio - 1.0, 1.0)
    return jnp.where(active, base**exponent, 0.0)


class VTEAM(CompactModel):
    """VTEAM: a threshold-type memristor model driven by voltage.

    Source: S. Kvatinsky, M. Ramadan, E. G. Friedman and A. Kolodny, IEEE Transactions on Circuits and
    Systems II 62(8), 786 (2015). The
    state w lies in [w_on, w_off] (m), with x = (w - w_on) / (w_off - w_on):

    - dw/dt = k_off (v/v_off - 1)^alpha_off f(x) for v > v_off > 0, k_on (v/v_on - 1)^alpha_on f(x) for
      v < v_on < 0, and 0 in between, so the state does not move between the thresholds;
    - resistance R = R_on + (R_off - R_on) x (linear form) or R_on (R_off/R_on)^x (exponential form);
      current i = v / R.

    Positive voltage above v_off moves the state towards w_off (higher resistance, RESET); negative
    voltage below v_on moves it towards w_on (SET). The window f is 1 by default, so the state is held
    in its range only by the integrator's clipping; Joglekar and Biolek windows are available.

    Defaults (NOTE: illustrative): r_on = 50 ohm, r_off = 1 kohm, k_on = -10 m/s, k_off = 5e-4 m/s,
    alpha_on = 3, alpha_off = 1, v_on = -0.2 V, v_off = 0.02 V, w_on = 0, w_off = 3 nm, the defaults of
    MemTorch's VTEAM model (Lammie et al., 2021), which refers to the Technion memristor-model page.
    Whether they equal Table I of Kvatinsky et al. (2015) is not verified. x_init = 0 is illustrative.

    Attributes:
        r_on, r_off: resistance at w_on and at w_off, ohm.
        k_on: rate constant of the SET direction, m/s (negative).
        k_off: rate constant of the RESET direction, m/s (positive).
        alpha_on, alpha_off: exponents of the voltage dependence.
        v_on: negative SET threshold, V.
        v_off: positive RESET threshold, V.
        w_on, w_off: bounds of the state, m.
        x_init: initial normalized state (w - w_on) / (w_off - w_on).
        resistance_form: "linear" or "exponential" (static).
        window: "none", "joglekar" or "biolek" (static).
        p: window exponent.
    """

    r_on: float = 50.0
    r_off: float = 1e3
    k_on: float = -10.0
    k_off: float = 5e-4
    alpha_on: float = 3.0
    alpha_off: float = 1.0
    v_on: float = -0.2
    v_off: float = 0.02
    w_on: float = 0.0
    w_off: float = 3e-9
    x_init_normalized: float = 0.0
    resistance_form: str = eqx.field(static=True, default="linear")
    window: str = eqx.field(static=True, default="none")
    p: float = 1.0

    def __check_init__(self):
        if self.resistance_form not in RESISTANCE_FORMS:
            choices = ", ".join(RESISTANCE_FORMS)
            raise ValueError(f"resistance_form must be one of {choices}, got {self.resistance_form!r}")
        if self.window not in WINDOWS:
            raise ValueError(f"window must be one of {', '.join(WINDOWS)}, got {self.window!r}")
        check_positive("r_on", self.r_on, "ohm")
        check_range("r_on", self.r_on, "r_off", self.r_off, "ohm")
        check_positive("k_off", self.k_off, "m/s")
        _check_negative("k_on", self.k_on, "m/s")
        check_positive("alpha_on", self.alpha_on)
        check_positive("alpha_off", self.alpha_off)
        check_positive("v_off", self.v_off, "V")
        _check_negative("v_on", self.v_on, "V")
        check_range("w_on", self.w_on, "w_off", self.w_off, "m")
        check_positive("p", self.p)
        if is_concrete(self.x_init_normalized) and not 0.0 <= float(self.x_init_normalized) <= 1.0:
            raise ValueError(f"x_init_normalized must be in [0, 1], got {self.x_init_normalized}")

    @property
    def x_min(self):
        return self.w_on

    @property
    def x_max(self):
        return self.w_off

    @property
    def x_init(self):
        return self.w_on + self.x_init_normalized * (self.w_off - self.w_on)

    def normalized(self, w):
        """Return x = (w - w_on) / (w_off - w_on)."""
        return (w - self.w_on) / (self.w_off - self.w_on)

    def resistance(self, w):
        """Return the resistance (ohm) in state w (m)."""
        x = self.normalized(w)
        if self.resistance_form == "exponential":
            return self.r_on * (self.r_off / self.r_on) ** x
        return self.r_on + (self.r_off - self.r_on) * x

    def current(self, w, v):
        return v / self.resistance(w)

    def rate(self, w, v):
        x = self.normalized(w)
        reset = self.k_off * _power_above(v / self.v_off, self.alpha_off, v > self.v_off)
        set_ = self.k_on * _power_above(v / self.v_on, self.alpha_on, v < self.v_on)
        if self.window == "joglekar":
            window = windows.joglekar(x, self.p)
        elif self.window == "biolek":
            window = windows.biolek(x, v, self.p)
        else:
            window = 1.0
        return (reset + set_) * window
