"""The rectangular programming pulse of a device model and the energy that one such pulse dissipates."""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp

from .._validation import check_finite, check_positive


class ProgrammingPulse(eqx.Module):
    """One rectangular programming pulse: its amplitude, its width and how it drives the device.

    Two drives are modelled (Joule's law in both cases):

    - voltage across an ohmic two-terminal device (`current` is None): one pulse dissipates
      E = V^2 G tau in a device of conductance G;
    - a source of fixed power (`current` given): one pulse dissipates E = |V I| tau, whatever the stored
      conductance. This is the drive of a current-programmed PCM cell, whose resistance during the pulse
      is not its read resistance once the amorphous region has threshold-switched. It is also the drive
      of a gate-programmed three-terminal cell (ECRAM, FeFET, capacitor cell), whose read channel
      carries no programming current. There V and I are the voltage and the current of the
      programming terminal.

    The fields are dynamic leaves, so `grad` and `vmap` reach them, and per-device arrays are allowed.

    Attributes:
        voltage: pulse amplitude across the programmed terminals, V (signed as published; the energy
            depends on its magnitude only).
        width: pulse duration, s (> 0).
        current: programming current, A (>= 0), or None for an ohmic voltage pulse.
    """

    voltage: float
    width: float
    current: float | None = None

    def __check_init__(self):
        check_finite("ProgrammingPulse.voltage", self.voltage, "pass a finite amplitude in V")
        check_positive("ProgrammingPulse.width", self.width, "s")
        if self.current is not None:
            check_positive("ProgrammingPulse.current", self.current, "A", allow_zero=True)

    def energy(self, g) -> jax.Array:
        """Return the energy (J) of one pulse applied to devices of conductance `g` (S), elementwise.

        Voltage pulse: V^2 g tau. Fixed-power pulse: |V I| tau, broadcast to the shape of `g`.
        Differentiable with respect to `g` and to every field.
        """
        g = jnp.asarray(g, jnp.result_type(float))
        if self.current is None:
            return jnp.square(self.voltage) * g * self.width
        return jnp.zeros_like(g) + jnp.abs(self.voltage * self.current) * self.width


def check_pulse(name: str, pulse) -> None:
    """Raise ValueError unless `pulse` is a ProgrammingPulse."""
    if not isinstance(pulse, ProgrammingPulse):
        raise ValueError(
            f"{name} must be a ProgrammingPulse such as ProgrammingPulse(voltage=1.0, width=100e-9), got {pulse!r}"
        )
