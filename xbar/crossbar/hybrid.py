"""Hybrid synapses: several devices of different significance or precision behind one weight.

Three schemes, each a parameter Module with pure functions over an explicit state and explicit keys,
elementwise over arrays of synapses of any shape (under `jit` and `vmap`):

- `CapacitorPCMSynapse`: a PCM pair of high significance plus a volatile capacitor cell (3T1C) that
  takes the frequent, near-linear updates and is periodically transferred into the PCM pair with
  polarity inversion. S. Ambrogio et al., "Equivalent-accuracy accelerated neural-network training
  using analogue memory", Nature (2018), doi:10.1038/s41586-018-0180-5.
- `MultiMemristiveSynapse`: N devices whose conductances add up, with a global selection counter that
  picks the one device of every synapse that receives the next update. I. Boybat et al.,
  "Neuromorphic computing with multi-memristive synapses", Nature Communications 9, 2514 (2018).
- `MixedPrecisionUpdate`: a digital accumulator chi per synapse collects the requested weight changes,
  and the devices receive whole pulses only when |chi| reaches the device granularity epsilon.
  M. Le Gallo et al., "Mixed-precision in-memory computing", Nature Electronics 1, 246 (2018) (the
  mixed-precision concept); S. R. Nandakumar et al., "Mixed-precision deep learning based on
  computational memory", Frontiers in Neuroscience 14, 406 (2020) (the accumulate-and-transfer update).

Weights here are conductances in S, as Ambrogio et al. write them. Scale them to the units of a network
outside these functions.
"""

from __future__ import annotations

import math

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from .._validation import check_finite, check_positive, check_range, check_time, is_concrete
from ..devices import PCM, Device, DeviceState, ProgramVerify
from .tile import nominal_range

__all__ = [
    "CapacitorPCMState",
    "CapacitorPCMSynapse",
    "MixedPrecisionState",
    "MixedPrecisionUpdate",
    "MultiMemristiveState",
    "MultiMemristiveSynapse",
]

_ROUNDING = ("nearest", "stochastic", "none")


def _check_count(name: str, value, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name} must be a Python integer >= {minimum}, got {value!r}")


def _round_pulses(exact, rounding: str, key):
    """Round fractional pulse counts: to the nearest integer, stochastically (unbiased), or not at all."""
    if rounding == "nearest":
        return jnp.round(exact)
    if rounding == "stochastic":
        return jnp.floor(exact + jax.random.uniform(key, exact.shape, exact.dtype))
    return exact


def _select(condition, new, old):
    """Take the leaves of `new` where `condition` is true and those of `old` elsewhere."""
    return jax.tree_util.tree_map(lambda a, b: jnp.where(condition, a, b), new, old)


def _program_pair(device: Device, difference, *, key, verify):
    """Program a differential pair to G+ - G- = difference (S): one device at g_min, the other above it."""
    g_min, _ = nominal_range(device)
    key_pos, key_neg = jax.random.split(key)
    g_pos = device.program(g_min + jnp.maximum(difference, 0.0), key=key_pos, verify=verify)
    g_neg = device.program(g_min + jnp.maximum(-difference, 0.0), key=key_neg, verify=verify)
    return g_pos, g_neg


# 2-PCM + 3T1C synapse (Ambrogio et al. 2018).


class CapacitorPCMState(eqx.Module):
    """State of an array of 2-PCM + 3T1C synapses.

    Attributes:
        g_pos, g_neg: states of the PCM pair of each synapse (G+ and G-).
        g: conductance of the read transistor of each capacitor cell, S.
        polarity: +1 or -1 (int32 scalar, one for the whole array): the sign with which (g - g_shared)
            enters the weight in the present transfer interval.
        updates: updates applied since the last transfer (int32 scalar).
    """

    g_pos: DeviceState
    g_neg: DeviceState
    g: jax.Array
    polarity: jax.Array
    updates: jax.Array


class CapacitorPCMSynapse(eqx.Module):
    """The 2-PCM + 3T1C synapse of Ambrogio et al., Nature (2018).

    The weight is W = F (G+ - G-) + p (g - g_shared). G+ and G- are non-volatile PCM conductances of high
    significance. g is the conductance of a read transistor whose gate voltage is stored on a capacitor
    (3T1C cell), and g_shared is the conductance of a reference cell that many synapses share. Training
    updates only the capacitor, by near-linear charge steps. Every `transfer_interval` updates the whole
    weight is written into the PCM pair, the capacitor is reset to g_shared, and the polarity p flips
    (Ambrogio et al., "polarity inversion"). Because p alternates, an update in one direction of the weight
    charges the capacitor in one interval and discharges it in the next, so a fixed mismatch between the
    charging and discharging steps of a cell averages out over two intervals.

    Sources of the defaults: F = 3 and 8,000 updates per transfer interval (their MNIST simulations span
    two transfer intervals with 16,000 training images) are from Ambrogio et al. The capacitor cell's
    conductance range of 4 to 20 uS and its 32 levels (0.5 uS per charge step) are from the 3T1C cell of
    MLP_NeuroSim V3.0 (P.-Y. Chen, X. Peng and S. Yu), whose hybrid cell uses F = 4 instead of 3.

    Deviations from Ambrogio et al.: the transistor's conductance is taken as linear in the capacitor
    charge, and CMOS variability enters only through `asymmetry`. The transfer writes the PCM pair
    without the 2 uS offset and without the correction of the residual g - g_shared that they apply.
    The g_shared cell is a capacitor cell too (they initialize g and g_shared to the same voltage), so
    the leak acts on the difference g - g_shared, as if both cells decayed alike.

    Attributes:
        device: model of the PCM devices (default `PCM()`); any device model works.
        gain: significance F of the PCM pair (dimensionless, > 0; default 3).
        g_shared: conductance of the shared reference cell, S (default 12 uS, the middle of the range,
            where MLP_NeuroSim resets its 3T1C cell after a transfer).
        g_min, g_max: conductance range of the capacitor cell, S (default 4 and 20 uS), with
            g_min < g_shared < g_max.
        step: nominal conductance change of one charge or discharge step, S (default 0.5 uS). Weight
            changes are converted into steps with this value.
        asymmetry: relative mismatch of the steps: a charging step moves g by step (1 + asymmetry), a
            discharging step by step (1 - asymmetry). A scalar or an array that broadcasts against the
            synapses (a mismatch per cell); each value in (-1, 1). Default 0.
        tau: time constant of the capacitor leak, s (default 10 ms). NOTE: an assumed value. Ambrogio et
            al. describe the decay of the capacitor voltage (towards 0.8 V from its initial 0.5 V), but
            the parts of their paper consulted here give no time constant.
        transfer_interval: updates between two transfers (static; default 8000).
        polarity_inversion: flip the polarity p at every transfer (static; default True).
        rounding: conversion of weight changes into charge steps (static): "nearest" (default),
            "stochastic" (unbiased, needs a key) or "none" (analog charge, an exactly linear update).
        verify: program-and-verify settings of the transfer (static; default None, one programming
            pulse with the device's write noise).
    """

    device: Device = eqx.field(default_factory=PCM)
    gain: float = 3.0
    g_shared: float = 12e-6
    g_min: float = 4e-6
    g_max: float = 20e-6
    step: float = 0.5e-6
    asymmetry: float = 0.0
    tau: float = 10e-3
    transfer_interval: int = eqx.field(static=True, default=8000)
    polarity_inversion: bool = eqx.field(static=True, default=True)
    rounding: str = eqx.field(static=True, default="nearest")
    verify: ProgramVerify | None = eqx.field(static=True, default=None)

    def __check_init__(self):
        if not isinstance(self.device, Device):
            raise ValueError(f"device must be a device model such as PCM(), got {self.device!r}")
        check_positive("gain", self.gain)
        check_positive("step", self.step, "S")
        check_positive("tau", self.tau, "s")
        check_range("g_min", self.g_min, "g_max", self.g_max)
        if is_concrete((self.g_min, self.g_shared, self.g_max)):
            low, shared, high = (float(np.asarray(v)) for v in (self.g_min, self.g_shared, self.g_max))
            if not low < shared < high:
                raise ValueError(
                    f"g_shared = {shared} S must lie strictly between g_min = {low} S and g_max = {high} S; "
                    "pass a reference conductance inside the capacitor cell's range"
                )
        if is_concrete(self.asymmetry):
            asymmetry = np.asarray(self.asymmetry, dtype=float)
            if not (np.isfinite(asymmetry).all() and (np.abs(asymmetry) < 1).all()):
                raise ValueError(f"asymmetry must lie in (-1, 1), got {self.asymmetry!r}; pass 0 for symmetric steps")
        _check_count("transfer_interval", self.transfer_interval, 1)
        if self.rounding not in _ROUNDING:
            raise ValueError(f'rounding must be "nearest", "stochastic" or "none", got {self.rounding!r}')
        if self.verify is not None and not isinstance(self.verify, ProgramVerify):
            raise ValueError(f"verify must be a ProgramVerify or None, got {self.verify!r}")

    def _split(self, weight, polarity):
        """Return the PCM difference and the capacitor conductance that together hold `weight` (S).

        The PCM pair takes weight / F up to its range. The rest goes to the capacitor, clipped to its range.
        """
        g_low, g_high = nominal_range(self.device)
        span = g_high - g_low
        difference = jnp.clip(weight / self.gain, -span, span)
        rest = weight - self.gain * difference
        g = jnp.clip(self.g_shared + polarity * rest, self.g_min, self.g_max)
        return difference, g

    def init(self, weights, *, key: jax.Array) -> CapacitorPCMState:
        """Program initial weights (S, any shape) into the PCM pair, with the capacitor at g_shared.

        A weight beyond the pair's range F (g_max - g_min) leaves the rest on the capacitor, as `transfer` does.
        """
        check_finite("weights", weights, "pass finite weights in S")
        weights = jnp.asarray(weights, jnp.result_type(float))
        polarity = jnp.ones((), jnp.int32)
        difference, g = self._split(weights, polarity)
        g_pos, g_neg = _program_pair(self.device, difference, key=key, verify=self.verify)
        return CapacitorPCMState(g_pos=g_pos, g_neg=g_neg, g=g, polarity=polarity, updates=jnp.zeros((), jnp.int32))

    def capacitor_weight(self, state: CapacitorPCMState) -> jax.Array:
        """Return the weight held by the capacitor cells, p (g - g_shared), in S."""
        return state.polarity.astype(state.g.dtype) * (state.g - self.g_shared)

    def weight(self, state: CapacitorPCMState, t=0.0, *, key: jax.Array | None = None) -> jax.Array:
        """Return W = F (G+ - G-) + p (g - g_shared) in S, with the PCM pair read t seconds after programming.

        Without `key` the PCM devices contribute their noise-free drifted conductance, with `key` a read with
        read noise. The capacitor term is its present value: pass the elapsed time to `leak` to age it.
        """
        check_time("read time t", t)
        if key is None:
            g_pos = self.device.drift(state.g_pos, t)
            g_neg = self.device.drift(state.g_neg, t)
        else:
            key_pos, key_neg = jax.random.split(key)
            g_pos = self.device.read(state.g_pos, t, key=key_pos)
            g_neg = self.device.read(state.g_neg, t, key=key_neg)
        return self.gain * (g_pos - g_neg) + self.capacitor_weight(state)

    def update(self, state: CapacitorPCMState, delta_w, *, key: jax.Array | None = None) -> CapacitorPCMState:
        """Apply requested weight changes `delta_w` (S) to the capacitors and count one update.

        The change of g is p * delta_w, converted into charge steps by `rounding` and clipped to
        [g_min, g_max]. The PCM pair is untouched. `key` is needed only for stochastic rounding.
        """
        check_finite("delta_w", delta_w, "pass finite weight changes in S")
        if self.rounding == "stochastic" and key is None:
            raise ValueError('rounding="stochastic" needs a PRNG key: pass update(state, delta_w, key=...)')
        dtype = state.g.dtype
        change = state.polarity.astype(dtype) * jnp.asarray(delta_w, dtype)
        steps = _round_pulses(jnp.broadcast_to(change, state.g.shape) / self.step, self.rounding, key)
        step_size = self.step * jnp.where(steps > 0, 1.0 + self.asymmetry, 1.0 - self.asymmetry)
        g = jnp.clip(state.g + steps * step_size, self.g_min, self.g_max)
        return eqx.tree_at(lambda s: (s.g, s.updates), state, (g, state.updates + 1))

    def leak(self, state: CapacitorPCMState, dt) -> CapacitorPCMState:
        """Let the capacitors leak for dt seconds: g - g_shared decays as exp(-dt / tau)."""
        check_time("leak time dt", dt)
        decay = jnp.exp(-jnp.asarray(dt, state.g.dtype) / self.tau)
        return eqx.tree_at(lambda s: s.g, state, self.g_shared + (state.g - self.g_shared) * decay)

    def transfer(self, state: CapacitorPCMState, *, key: jax.Array, t=0.0) -> CapacitorPCMState:
        """Write the whole weight into the PCM pair, reset the capacitor and flip the polarity.

        The weight is taken with the PCM pair's noise-free conductance t seconds after its last
        programming. The pair is programmed anew with the device's write noise (and `verify`). A part of
        the weight beyond the pair's range stays on the capacitor, with the new polarity, so that the
        weight is unchanged up to the write noise and the clipping of both ranges.
        """
        weight = self.weight(state, t)
        polarity = -state.polarity if self.polarity_inversion else state.polarity
        difference, g = self._split(weight, polarity)
        g_pos, g_neg = _program_pair(self.device, difference, key=key, verify=self.verify)
        updates = jnp.zeros_like(state.updates)
        return CapacitorPCMState(g_pos=g_pos, g_neg=g_neg, g=g, polarity=polarity, updates=updates)

    def train_step(self, state: CapacitorPCMState, delta_w, *, dt, key: jax.Array) -> CapacitorPCMState:
        """Run one training step: `update`, `leak` for dt seconds, and `transfer` once the interval is complete.

        The PCM pair is read at t = 0 for the transfer, which neglects its drift between transfers.
        """
        key_update, key_transfer = jax.random.split(key)
        state = self.leak(self.update(state, delta_w, key=key_update), dt)
        due = state.updates >= self.transfer_interval
        return jax.lax.cond(due, lambda s: self.transfer(s, key=key_transfer), lambda s: s, state)


# Multi-memristive synapse (Boybat et al. 2018).


class MultiMemristiveState(eqx.Module):
    """State of an array of multi-memristive synapses.

    Attributes:
        devices: states of the N devices of every synapse (of the positive group when differential);
            every leaf has the shape (N, *synapse shape).
        devices_neg: states of the negative group (same shape), or None when not differential.
        counter: the global selection counter (int32 scalar in [0, N)): the index of the device that
            the next update programs in every synapse.
    """

    devices: DeviceState
    devices_neg: DeviceState | None
    counter: jax.Array


class MultiMemristiveSynapse(eqx.Module):
    """N devices per synapse whose conductances add up, updated one device at a time by a global counter.

    Boybat et al., Nature Communications 9, 2514 (2018): the weight is the summed conductance of N devices
    (sum G+_n - sum G-_n in the differential form). At each update only one device per synapse is
    programmed, the one that a selection counter shared by the whole array points to. The counter then
    advances by a fixed increment modulo N. In the differential form, potentiation pulses go to the
    selected device of the positive group and depression requests become potentiation pulses on the
    selected device of the negative group, the scheme for PCM, which only potentiates gradually.
    Without the differential form a negative count depresses the selected device through its
    `apply_pulses` (for PCM, an abrupt RESET).

    Each call of `update` is one update event of the array and advances the counter once, whether or
    not a synapse received pulses. Boybat et al. also describe separate potentiation and depression
    counters that thin out those events. They are not modeled here.

    Attributes:
        device: the device model of all N devices.
        n_devices: N, devices per synapse (per group when differential; static, >= 1).
        differential: two groups of N devices, positive and negative (static; default False).
        increment: step of the selection counter (static; default 1). It must be coprime with N so
            that the counter visits every device.
        refresh_level: share of g_max in (0, 1] that triggers a refresh, or None for no refresh
            (default None; differential form only). When a device of a synapse exceeds it, all devices
            of the synapse are programmed anew to the same weight, with the smaller group at g_min.
        verify: program-and-verify settings of `init` and the refresh (static; default None).
    """

    device: Device
    n_devices: int = eqx.field(static=True)
    differential: bool = eqx.field(static=True, default=False)
    increment: int = eqx.field(static=True, default=1)
    refresh_level: float | None = None
    verify: ProgramVerify | None = eqx.field(static=True, default=None)

    def __check_init__(self):
        if not isinstance(self.device, Device):
            raise ValueError(f"device must be a device model such as PCM(), got {self.device!r}")
        _check_count("n_devices", self.n_devices, 1)
        _check_count("increment", self.increment, 1)
        if math.gcd(self.increment, self.n_devices) != 1:
            raise ValueError(
                f"increment = {self.increment} shares a factor with n_devices = {self.n_devices}, so the counter "
                "would skip devices; pass an increment coprime with n_devices, such as 1"
            )
        if self.refresh_level is not None:
            if not self.differential:
                raise ValueError(
                    "refresh_level applies to differential synapses only; pass differential=True or refresh_level=None"
                )
            check_positive("refresh_level", self.refresh_level)
            if is_concrete(self.refresh_level) and float(np.asarray(self.refresh_level)) > 1:
                raise ValueError(f"refresh_level is a share of g_max and must be <= 1, got {self.refresh_level}")
        if self.verify is not None and not isinstance(self.verify, ProgramVerify):
            raise ValueError(f"verify must be a ProgramVerify or None, got {self.verify!r}")

    def _program_groups(self, weights, key):
        """Program every device of each synapse to an equal share of `weights` (S) above g_min."""
        g_min, _ = nominal_range(self.device)
        stacked = jnp.broadcast_to(weights, (self.n_devices,) + weights.shape)
        if not self.differential:
            return self.device.program(stacked / self.n_devices, key=key, verify=self.verify), None
        return _program_pair(self.device, stacked / self.n_devices, key=key, verify=self.verify)

    def init(self, weights, *, key: jax.Array) -> MultiMemristiveState:
        """Program initial weights (S, any shape), split evenly over the devices, and start the counter at 0.

        Without the differential form the weight is the summed conductance, so each device gets weights / N.
        In the differential form each device of the larger group gets |weights| / N above g_min.
        """
        check_finite("weights", weights, "pass finite weights in S")
        weights = jnp.asarray(weights, jnp.result_type(float))
        devices, devices_neg = self._program_groups(weights, key)
        return MultiMemristiveState(devices=devices, devices_neg=devices_neg, counter=jnp.zeros((), jnp.int32))

    def conductances(self, state: MultiMemristiveState, t=0.0, *, key: jax.Array | None = None):
        """Return the conductance (S) of every device t seconds after its programming, shape (N, ...).

        The differential form returns the pair (positive group, negative group). Without `key` the values
        are noise-free (drift only), with `key` they carry the device's read noise.
        """
        check_time("read time t", t)

        def read(devices, read_key):
            if read_key is None:
                return self.device.drift(devices, t)
            return self.device.read(devices, t, key=read_key)

        keys = (None, None) if key is None else tuple(jax.random.split(key))
        if not self.differential:
            return read(state.devices, keys[0])
        return read(state.devices, keys[0]), read(state.devices_neg, keys[1])

    def weight(self, state: MultiMemristiveState, t=0.0, *, key: jax.Array | None = None) -> jax.Array:
        """Return the weight in S: sum_n G_n, or sum_n G+_n - sum_n G-_n in the differential form."""
        if not self.differential:
            return jnp.sum(self.conductances(state, t, key=key), axis=0)
        g_pos, g_neg = self.conductances(state, t, key=key)
        return jnp.sum(g_pos, axis=0) - jnp.sum(g_neg, axis=0)

    def update(self, state: MultiMemristiveState, n_pulses, *, key: jax.Array, max_pulses: int | None = None):
        """Apply signed pulse counts (one per synapse) to the selected device of each synapse.

        All pulses of a synapse in this event go to the device that `state.counter` selects, through the
        device's `apply_pulses`. Afterwards the differential form refreshes the synapses that passed
        `refresh_level`, and the counter advances by `increment` modulo N. `max_pulses` (a Python int, at
        least the largest |count|) fixes the length of the device's pulse loop, as in `Device.apply_pulses`.
        """
        check_finite("n_pulses", n_pulses)
        dtype = jnp.result_type(float)
        shape = jnp.shape(state.devices.g)[1:]
        counts = jnp.broadcast_to(jnp.round(jnp.asarray(n_pulses, dtype)), shape)
        selected = (jnp.arange(self.n_devices) == state.counter).reshape((self.n_devices,) + (1,) * len(shape))
        key_pos, key_neg, key_refresh = jax.random.split(key, 3)

        if not self.differential:
            pulses = jnp.where(selected, counts, 0.0)
            devices = self.device.apply_pulses(state.devices, pulses, key=key_pos, max_pulses=max_pulses)
            devices_neg = None
        else:
            pulses_pos = jnp.where(selected, jnp.maximum(counts, 0.0), 0.0)
            pulses_neg = jnp.where(selected, jnp.maximum(-counts, 0.0), 0.0)
            devices = self.device.apply_pulses(state.devices, pulses_pos, key=key_pos, max_pulses=max_pulses)
            devices_neg = self.device.apply_pulses(state.devices_neg, pulses_neg, key=key_neg, max_pulses=max_pulses)
            if self.refresh_level is not None:
                devices, devices_neg = self._refresh(devices, devices_neg, key_refresh)

        counter = (state.counter + self.increment) % self.n_devices
        return MultiMemristiveState(devices=devices, devices_neg=devices_neg, counter=counter.astype(jnp.int32))

    def _refresh(self, devices, devices_neg, key):
        """Reprogram the synapses in which a device exceeds refresh_level * g_max, keeping their weight."""
        _, g_max = nominal_range(self.device)
        full = jnp.maximum(jnp.max(devices.g, axis=0), jnp.max(devices_neg.g, axis=0)) > self.refresh_level * g_max
        weights = jnp.sum(devices.g, axis=0) - jnp.sum(devices_neg.g, axis=0)
        new_pos, new_neg = self._program_groups(weights, key)
        return _select(full, new_pos, devices), _select(full, new_neg, devices_neg)


# Mixed-precision update (Le Gallo et al. 2018; Nandakumar et al. 2020).


class MixedPrecisionState(eqx.Module):
    """State of a mixed-precision synapse array.

    Attributes:
        chi: accumulated weight change not yet applied to the devices, S (float32, shape of the synapses).
        synapse: state of the devices that hold the weights.
    """

    chi: jax.Array
    synapse: MultiMemristiveState


class MixedPrecisionUpdate(eqx.Module):
    """Weight updates accumulated in digital and applied to the devices as whole pulses.

    After Nandakumar et al., Frontiers in Neuroscience 14, 406 (2020), on the mixed-precision concept of
    Le Gallo et al., Nature Electronics 1, 246 (2018). Every requested change is added to a
    high-precision accumulator chi. Where |chi| >= epsilon, the device granularity (the mean conductance
    change of one pulse), the synapse receives n = trunc(chi / epsilon) pulses of the sign of chi
    (rounded toward zero), and chi decreases by n epsilon. So |chi| < epsilon after every update, and
    the pulses applied plus chi equal the sum of the requests. With `max_pulses_per_update` the count is
    capped, for example at one pulse per update, and the rest stays in chi (then |chi| may exceed
    epsilon).

    The devices are those of a `MultiMemristiveSynapse`: n_devices=1 is a single device per synapse,
    and n_devices=1 with differential=True and a refresh_level is the PCM pair of Nandakumar et al.

    Attributes:
        synapse: the devices that hold the weights.
        epsilon: weight change of one pulse, S (> 0); for a linear device its pulse step.
        max_pulses_per_update: maximum number of pulses per synapse and update (static; None: no cap,
            1: one pulse per update).
    """

    synapse: MultiMemristiveSynapse
    epsilon: float
    max_pulses_per_update: int | None = eqx.field(static=True, default=None)

    def __check_init__(self):
        if not isinstance(self.synapse, MultiMemristiveSynapse):
            raise ValueError(
                "synapse must be a MultiMemristiveSynapse (n_devices=1 for one device per synapse), "
                f"got {self.synapse!r}"
            )
        check_positive("epsilon", self.epsilon, "S")
        if self.max_pulses_per_update is not None:
            _check_count("max_pulses_per_update", self.max_pulses_per_update, 1)

    def init(self, weights, *, key: jax.Array) -> MixedPrecisionState:
        """Program initial weights (S) onto the devices, with an empty accumulator."""
        synapse = self.synapse.init(weights, key=key)
        return MixedPrecisionState(chi=jnp.zeros(jnp.shape(weights), jnp.result_type(float)), synapse=synapse)

    def accumulate(self, chi, delta_w):
        """Add `delta_w` (S) to the accumulator and return the new chi and the signed pulse counts to apply.

        This is the digital part alone, without devices.
        """
        check_finite("delta_w", delta_w, "pass finite weight changes in S")
        chi = jnp.asarray(chi, jnp.result_type(float)) + jnp.asarray(delta_w, jnp.result_type(float))
        pulses = jnp.trunc(chi / self.epsilon)
        # In float32, chi / epsilon can round just below an integer although chi - n epsilon is a whole
        # epsilon or more. One correction step restores |chi - n epsilon| < epsilon.
        residual = chi - pulses * self.epsilon
        pulses = pulses + jnp.where(jnp.abs(residual) >= self.epsilon, jnp.sign(residual), 0.0)
        if self.max_pulses_per_update is not None:
            pulses = jnp.clip(pulses, -self.max_pulses_per_update, self.max_pulses_per_update)
        return chi - pulses * self.epsilon, pulses

    def update(self, state: MixedPrecisionState, delta_w, *, key: jax.Array) -> MixedPrecisionState:
        """Accumulate `delta_w` (S) and apply the resulting whole pulses to the devices."""
        chi, pulses = self.accumulate(state.chi, delta_w)
        synapse = self.synapse.update(state.synapse, pulses, key=key, max_pulses=self.max_pulses_per_update)
        return MixedPrecisionState(chi=chi, synapse=synapse)

    def weight(self, state: MixedPrecisionState, t=0.0, *, key: jax.Array | None = None) -> jax.Array:
        """Return the weight stored in the devices (S). The accumulator chi is not part of it."""
        return self.synapse.weight(state.synapse, t, key=key)
