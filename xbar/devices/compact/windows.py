"""Window functions that slow the state of a drift memristor model near its bounds.

x is the normalized state w/D in [0, 1] and p a positive exponent (an integer in the sources). Each
function squares before taking the power p, so a non-integer p never raises a negative base to a
fractional power.
"""

from __future__ import annotations

import jax.numpy as jnp


def joglekar(x, p=1):
    """Return the Joglekar window f(x) = 1 - (2x - 1)^(2p).

    Source: Y. N. Joglekar and S. J. Wolf, European Journal of Physics (2009); form as in Kvatinsky et al.,
    "Verilog-A for memristor models", Technion CCIT report (2011), Table 3.
    """
    return 1.0 - ((2.0 * x - 1.0) ** 2) ** p


def biolek(x, current, p=1):
    """Return the Biolek window f(x, i) = 1 - (x - stp(-i))^(2p), with stp(a) = 1 for a >= 0, else 0.

    So f = 1 - x^(2p) while the current is positive (state rising towards 1) and 1 - (x - 1)^(2p)
    otherwise. Zero current takes the second form, as in the Verilog-A of Kvatinsky et al. (2011); the
    rate is zero there anyway. Source: Z. Biolek, D. Biolek and V. Biolkova, Radioengineering (2009).
    """
    step = jnp.where(current > 0, 0.0, 1.0)
    return 1.0 - ((x - step) ** 2) ** p


def prodromakis(x, p=1, j=1.0):
    """Return the Prodromakis window f(x) = j (1 - ((x - 0.5)^2 + 0.75)^p).

    It is zero at x = 0 and 1 and has its maximum j (1 - 0.75^p) at x = 0.5. Source: T. Prodromakis,
    B. P. Peh, C. Papavassiliou and C. Toumazou, IEEE Transactions on Electron Devices (2011).
    """
    return j * (1.0 - ((x - 0.5) ** 2 + 0.75) ** p)
