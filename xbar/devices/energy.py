"""Programming energy of the pulses applied to devices, from each device's pulse amplitude and width.

Each pulse dissipates the Joule energy of its `ProgrammingPulse`: V^2 G tau for a voltage pulse across
an ohmic device of conductance G, and |V I| tau for a current-programmed PCM cell or a gate-programmed
three-terminal cell. The pulses of a model are its `potentiation_pulse` and `depression_pulse`
(`set_pulse` and `reset_pulse` for PCM). The `Endurance` and `Retention` wrappers contribute the pulses
of the model they wrap. A `CompactDevice` contributes voltage pulses of its `set_voltage`,
`reset_voltage` and `pulse_width`.

The functions are pure and elementwise, work under `jit` and `vmap`, and are differentiable with respect
to the conductance and to the pulse parameters.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from .._validation import check_finite, check_positive
from ._base import Device
from .compact import CompactDevice
from .ideal import IdealDevice
from .pcm import PCM
from .programming_pulse import ProgrammingPulse
from .wrapped import innermost_model

__all__ = ["pulse_energy", "reset_energy"]


def pulse_energy(device: Device, g, n_pulses) -> jax.Array:
    """Return the energy (J) of |n_pulses| pulses of the sign of n_pulses, elementwise.

    A positive count applies the device's potentiation pulse and a negative count its depression pulse.
    `g` is the conductance (S) of each device at the start of the train. Every pulse of the train is
    charged at that conductance, which neglects the change of conductance within the train. For an
    ohmic pulse that error is the change over the train divided by twice the starting conductance, small
    for the one or few pulses per device of a learning step.

    Counts are taken as the device's `apply_pulses` applies them: `IdealDevice` applies fractional
    counts as analog steps and is charged in proportion, `CompactDevice` applies ceil(|n|) pulses, PCM
    applies round(n) SET pulses for n > 0 and one RESET for any count that rounds below 0, and every other
    model applies round(n) pulses.

    Args:
        device: the device model, possibly wrapped in `Endurance` or `Retention`.
        g: conductance of each device before the pulses, S (>= 0).
        n_pulses: signed pulse counts, broadcastable against `g`.

    Returns:
        Energy in J, shape broadcast(g, n_pulses, pulse parameters); 0 where no pulse is applied.

    Raises:
        ValueError: for a model without programming pulses, a non-finite count, or a negative or
            non-finite conductance.
    """
    check_finite("n_pulses", n_pulses)
    _check_conductance(g)
    potentiation, depression = _pulses(device)
    dtype = jnp.result_type(float)
    g = jnp.asarray(g, dtype)
    applied = _applied_counts(innermost_model(device), jnp.asarray(n_pulses, dtype))

    energy_up = jnp.maximum(applied, 0.0) * potentiation.energy(g)
    energy_down = jnp.maximum(-applied, 0.0) * depression.energy(g)
    # Both products are finite, so the sum keeps the gradient of each branch exact.
    return energy_up + energy_down


def reset_energy(device: Device, g) -> jax.Array:
    """Return the energy (J) of one RESET pulse on each PCM device of conductance `g` (S), elementwise.

    A refresh of a PCM differential pair RESETs both devices before the difference is programmed again
    (Boybat et al., Nature Communications 9, 2514 (2018); Nandakumar et al., Frontiers in Neuroscience
    14, 406 (2020)). The RESET energy is that of `PCM.reset_pulse`. The energy of reprogramming after
    the RESET is not included.

    Raises:
        ValueError: when the innermost model is not `PCM`; a bidirectional device has no RESET, so use
            `pulse_energy` with negative counts for its depression pulses.
    """
    _check_conductance(g)
    inner = innermost_model(device)
    if not isinstance(inner, PCM):
        raise ValueError(
            f"reset_energy needs a PCM device, got {type(inner).__name__}; "
            "for depression pulses of other devices use pulse_energy with negative counts"
        )
    return inner.reset_pulse.energy(g)


def _check_conductance(g) -> None:
    check_positive("conductance g", g, "S", allow_zero=True)


def _pulses(device: Device) -> tuple[ProgrammingPulse, ProgrammingPulse]:
    """Return the (potentiation, depression) pulses of a device model, or raise ValueError."""
    inner = innermost_model(device)
    if isinstance(inner, CompactDevice):
        # NOTE: the ohmic energy uses the chord conductance at v_read. A model with a nonlinear I-V
        # (Yakopcic, Stanford-PKU) conducts a different current at the programming voltage.
        return (
            ProgrammingPulse(inner.set_voltage, inner.pulse_width),
            ProgrammingPulse(inner.reset_voltage, inner.pulse_width),
        )
    potentiation = getattr(inner, "potentiation_pulse", None)
    depression = getattr(inner, "depression_pulse", None)
    if not (isinstance(potentiation, ProgrammingPulse) and isinstance(depression, ProgrammingPulse)):
        raise ValueError(
            f"{type(inner).__name__} has no programming pulses; give it potentiation_pulse and depression_pulse "
            "fields (ProgrammingPulse) to account for its programming energy"
        )
    return potentiation, depression


def _applied_counts(inner: Device, n):
    """Return the signed number of pulses that `inner.apply_pulses` applies for the counts `n`."""
    if isinstance(inner, IdealDevice):
        return n
    if isinstance(inner, CompactDevice):
        return jnp.sign(n) * jnp.ceil(jnp.abs(n))
    rounded = jnp.round(n)
    if isinstance(inner, PCM):
        return jnp.where(rounded < 0, -1.0, rounded)
    return rounded
