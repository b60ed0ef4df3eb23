"""Plastic synapses held in the devices of a crossbar tile: weight changes delivered as device pulses.

A learning rule requests a change dw of each weight (in weight units). The synapses turn it into a signed
number of device pulses, dw / (weight per pulse), rounded stochastically (unbiased) or to the nearest
integer and capped per step, and apply them with `Device.apply_pulses`. The change that results is the
device's own: bounded by its conductance range, nonlinear, asymmetric and noisy as its pulse model is.

Bidirectional devices (ideal, pulse-update and compact devices) hold each weight on the positive device of
the tile's differential pair. The negative device is programmed to g_min once, with the device's write
noise (so a noisy model offsets each weight a little), and never pulsed. PCM only rises gradually (abrupt
RESET is its only way down), so it uses both devices: potentiation pulses SET the positive device,
depression pulses SET the negative one, and a pair whose device passes `refresh_level` of g_max is
refreshed: both devices are RESET and the difference is programmed again (the scheme of Boybat et al.,
Nature Communications 9, 2514 (2018) and of Nandakumar et al., Frontiers in Neuroscience 14, 406 (2020)).

NOTE: weight changes are converted to pulses with one nominal step (`mean_pulse_step`, taken at half of the
range). A device whose steps depend strongly on its conductance then changes more or less than requested.
The PCM SET step near g = 0 is about 9 times its mid-range step, so depression on the negative device of a
pair (which sits near 0) is about 9 times stronger than requested, and trace STDP on PCM then silences a
Song-Miller-Abbott neuron within seconds. Pass `pulse_size` to set the step that the conversion assumes.
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp

from .._validation import check_positive
from ..crossbar import Tile, TileState, nominal_range
from ..devices import (
    PCM, Device, DeviceState, IdealDevice, PulsedDevice, innermost_model, pulse_energy, reset_energy,
)

__all__ = ["SynapseUpdate", "Synapses", "mean_pulse_step"]


def mean_pulse_step(device: Device) -> jax.Array:
    """Return the conductance change (S) of one potentiation pulse at the middle of the device's range.

    IdealDevice: `pulse_step`. PulsedDevice: the mean step of its `up` model at u = 0.5. PCM: the mean SET
    step at half of g_max. Pass `Synapses(pulse_size=...)` for any other device. With parameters that vary
    from device to device the result is their mean: the controller that converts weight changes into
    pulses works with the nominal device, not with each one. `Endurance` and `Retention` wrappers take the step of
    the model they wrap, as it is before wear.
    """
    device = innermost_model(device)
    g_min, g_max = nominal_range(device)
    if isinstance(device, IdealDevice):
        return jnp.mean(jnp.asarray(device.pulse_step))
    if isinstance(device, PulsedDevice):
        return jnp.mean(device.up.mean_step(jnp.asarray(0.5), True)) * (g_max - g_min)
    if isinstance(device, PCM):
        return jnp.mean(device.set_step * (1.0 + device.set_amplitude * jnp.exp(-device.set_rate * 0.5))) * g_max
    raise ValueError(
        f"no nominal pulse step is known for {type(device).__name__}; pass Synapses(pulse_size=<S per pulse>)"
    )


class SynapseUpdate(eqx.Module):
    """Counts of one plasticity step, for the metrics of a run.

    Attributes:
        potentiation: SET/potentiation pulses applied (sum over devices).
        depression: depression pulses applied (sum over devices; for PCM the SET pulses on G-).
        updated: synapses that received at least one pulse.
        refreshed: PCM pairs refreshed in this step.
        energy: programming energy of the pulses, J (`xbar.devices.pulse_energy`; for a PCM refresh the
            RESET of both devices, `reset_energy`, without the reprogramming). 0 for a device model
            without programming pulses (see `Synapses.has_pulse_energy`).
    """

    potentiation: jax.Array
    depression: jax.Array
    updated: jax.Array
    refreshed: jax.Array
    energy: jax.Array


class Synapses(eqx.Module):
    """An n_pre x n_post weight matrix in a crossbar tile, read through its periphery and changed by pulses.

    Attributes:
        tile: the crossbar tile (device model, read voltage, noise, converters, wire resistance). Its
            `weight_range` must be set: the weight of a device at g_max, in the neuron's units (for the
            conductance-based LIF, relative to the leak conductance: 0.01 in the network of Song, Miller
            and Abbott 2000). The default tile uses 1.
        pulse_size: conductance change per pulse used to convert weight changes into pulse counts, S;
            None takes `mean_pulse_step(tile.device)`.
        rounding: "stochastic" (unbiased: floor(n + U), U uniform), "nearest", or "none" (static). "none"
            passes the exact fractional count, which `IdealDevice` applies as an analog change (a linear,
            unquantized synapse); other devices round it to whole pulses themselves.
        max_pulses: maximum pulses per device in one step (static, default 16); larger requests are capped.
        refresh_level: share of g_max at which a PCM pair is refreshed (default 0.9).
    """

    tile: Tile = Tile(weight_range=1.0)
    pulse_size: float | None = None
    rounding: str = eqx.field(static=True, default="stochastic")
    max_pulses: int = eqx.field(static=True, default=16)
    refresh_level: float = 0.9

    def __check_init__(self):
        if not isinstance(self.tile, Tile):
            raise ValueError(f"Synapses tile must be a Tile, got {self.tile!r}")
        if self.tile.weight_range is None:
            raise ValueError("Synapses need a fixed weight scale: pass Tile(weight_range=<weight at g_max>)")
        if self.rounding not in ("stochastic", "nearest", "none"):
            raise ValueError(f'rounding must be "stochastic", "nearest" or "none", got {self.rounding!r}')
        if isinstance(self.max_pulses, bool) or not isinstance(self.max_pulses, int) or self.max_pulses < 1:
            raise ValueError(f"max_pulses must be an integer >= 1, got {self.max_pulses!r}")
        if self.pulse_size is not None:
            check_positive("pulse_size", self.pulse_size, "S")
        check_positive("refresh_level", self.refresh_level)

    @property
    def differential(self) -> bool:
        """True for devices that only potentiate gradually (PCM): depression goes to the negative device."""
        return isinstance(innermost_model(self.tile.device), PCM)

    @property
    def has_pulse_energy(self) -> bool:
        """True when the device model states its programming pulses, so that runs report their energy."""
        try:
            pulse_energy(self.tile.device, 0.0, 0.0)
        except ValueError:
            return False
        return True

    def pulse_conductance(self):
        """Return the conductance change (S) of one pulse: `pulse_size`, or the device's mean step."""
        return mean_pulse_step(self.tile.device) if self.pulse_size is None else self.pulse_size

    def weight_per_pulse(self):
        """Return the weight change of one pulse (weight units)."""
        g_min, g_max = nominal_range(self.tile.device)
        return self.pulse_conductance() / (g_max - g_min) * self.tile.weight_range

    def init(self, weights, *, key: jax.Array) -> TileState:
        """Program the initial weights (n_pre x n_post, within [0, weight_range] for bidirectional devices)."""
        return self.tile.program(weights, key=key)

    def weights(self, state: TileState, t, *, key: jax.Array):
        """Return the weights read at time t (s): (G+ - G-) mapped to weight units, drift and read noise included."""
        read = self.tile.read(state, t, key=key)
        g_min, g_max = self.tile.nominal_range()
        return read.g_diff / (g_max - g_min) * read.weight_scale * read.drift_gain

    def update(self, state: TileState, dw, *, key: jax.Array) -> tuple[TileState, SynapseUpdate]:
        """Apply the requested weight changes `dw` (n_pre x n_post, weight units) as device pulses."""
        g_pos, g_neg, counts = self.update_devices(self.tile.device, state.g_pos, state.g_neg, dw, key=key)
        return eqx.tree_at(lambda s: (s.g_pos, s.g_neg), state, (g_pos, g_neg)), counts

    def update_devices(self, device: Device, g_pos: DeviceState, g_neg: DeviceState, dw, *, key: jax.Array):
        """Apply weight changes `dw` to the device pairs (g_pos, g_neg) of any shape; return both and the counts.

        `device` is the tile's model, or the part of it that belongs to these devices when its parameters
        vary from device to device (`xbar.crossbar.take_devices`). Pulse sizes and refresh levels use the
        nominal range of the whole tile, so that a part of the array is updated exactly as in the whole.
        A request of 0 applies no pulse.
        """
        key_round, key_pos, key_neg, key_refresh = jax.random.split(key, 4)
        exact = jnp.asarray(dw, g_pos.g.dtype) / self.weight_per_pulse()
        if self.rounding == "stochastic":
            count = jnp.floor(exact + jax.random.uniform(key_round, exact.shape, exact.dtype))
        elif self.rounding == "nearest":
            count = jnp.round(exact)
        else:
            count = exact
        count = jnp.clip(count, -self.max_pulses, self.max_pulses)
        # Without a fixed loop length the pulse loops of the devices run only as long as the largest count
        # of the step (usually 0 or 1 pulse), instead of max_pulses iterations on every step.
        settings = {"max_pulses": None}
        refreshed = jnp.zeros((), exact.dtype)

        energy = jnp.zeros((), exact.dtype)
        charged = self.has_pulse_energy
        if not self.differential:
            if charged:
                energy = jnp.sum(pulse_energy(device, g_pos.g, count))
            g_pos = device.apply_pulses(g_pos, count, key=key_pos, **settings)
        else:
            if charged:
                energy = jnp.sum(pulse_energy(device, g_pos.g, jnp.maximum(count, 0.0))) + jnp.sum(
                    pulse_energy(device, g_neg.g, jnp.maximum(-count, 0.0))
                )
            g_pos = device.apply_pulses(g_pos, jnp.maximum(count, 0.0), key=key_pos, **settings)
            g_neg = device.apply_pulses(g_neg, jnp.maximum(-count, 0.0), key=key_neg, **settings)
            g_pos, g_neg, refreshed, reset = self._refresh(device, g_pos, g_neg, key_refresh)
            energy = energy + reset

        counts = SynapseUpdate(
            potentiation=jnp.sum(jnp.maximum(count, 0.0)),
            depression=jnp.sum(jnp.maximum(-count, 0.0)),
            updated=jnp.sum(count != 0).astype(exact.dtype),
            refreshed=refreshed,
            energy=energy,
        )
        return g_pos, g_neg, counts

    def _refresh(self, device: Device, g_pos: DeviceState, g_neg: DeviceState, key):
        """RESET and reprogram the pairs whose positive or negative device passed refresh_level * g_max.

        Only pairs whose smaller device is more than one pulse above g_min are refreshed: a refresh
        frees that much headroom, and a pair whose weight alone passes the level would otherwise be
        reprogrammed, with fresh write noise, on every step.
        """
        g_min, g_max = nominal_range(self.tile.device)
        full = (jnp.maximum(g_pos.g, g_neg.g) > self.refresh_level * g_max) & (
            jnp.minimum(g_pos.g, g_neg.g) - g_min > self.pulse_conductance()
        )
        difference = g_pos.g - g_neg.g
        key_pos, key_neg = jax.random.split(key)
        new_pos = device.program(g_min + jnp.maximum(difference, 0.0), key=key_pos)
        new_neg = device.program(g_min + jnp.maximum(-difference, 0.0), key=key_neg)
        pos = jax.tree_util.tree_map(lambda new, old: jnp.where(full, new, old), new_pos, g_pos)
        neg = jax.tree_util.tree_map(lambda new, old: jnp.where(full, new, old), new_neg, g_neg)
        reset = jnp.zeros((), g_pos.g.dtype)
        if self.has_pulse_energy:
            reset = jnp.sum(jnp.where(full, reset_energy(device, g_pos.g) + reset_energy(device, g_neg.g), 0.0))
        return pos, neg, jnp.sum(full).astype(g_pos.g.dtype), reset
