"""The device interface: an immutable parameter pytree plus pure functions over an explicit state."""

from __future__ import annotations

import abc
from dataclasses import dataclass
from typing import ClassVar

import equinox as eqx
import jax
import jax.numpy as jnp

from .. import _random
from .._validation import check_finite, check_positive, check_time


@dataclass(frozen=True)
class ProgramVerify:
    """Settings of iterative program-and-verify.

    Each device is programmed, read back without read noise, and programmed again with a fresh draw of
    write noise while its error exceeds `tolerance`, for at most `max_iterations` attempts in all.

    Attributes:
        max_iterations: most programming attempts per device (>= 1).
        tolerance: accepted absolute error |G - G_target| in S.
    """

    max_iterations: int = 10
    tolerance: float = 0.5e-6

    def __post_init__(self):
        if isinstance(self.max_iterations, bool) or not isinstance(self.max_iterations, int) or self.max_iterations < 1:
            raise ValueError(f"max_iterations must be an integer >= 1, got {self.max_iterations!r}")
        check_positive("tolerance", self.tolerance, "S")


class DeviceState(eqx.Module):
    """Base of every device state: arrays with the shape of the programmed array.

    Attributes:
        g: conductance at the end of the last programming or pulse event, in S.
        iterations: programming attempts each device took (int32; 1 without program-and-verify).
    """

    g: jax.Array
    iterations: jax.Array


class Device(eqx.Module):
    """Base class of device models.

    A device model is an immutable pytree of physical parameters in SI units. Its methods are pure
    functions of an explicit state and an explicit PRNG key, elementwise over arrays of any shape. They
    work under `jit` and `vmap`, and `read` and `program` (without verify) also work under `grad`.
    Time `t` is always measured from the end of the last programming or pulse event.

    Subclasses implement `_program_once`, `drift`, `read` and `apply_pulses` and declare `g_min`, `g_max`.
    A model whose write and read noise are standard normals derives from `NormalNoiseDevice` instead, which
    lets a tile draw the noise of all its devices at once.
    """

    g_min: eqx.AbstractVar[float]
    g_max: eqx.AbstractVar[float]

    @abc.abstractmethod
    def _program_once(self, target: jax.Array, *, key: jax.Array) -> DeviceState:
        """Program every device once towards `target` (S, already inside the range), with write noise."""

    @abc.abstractmethod
    def drift(self, state: DeviceState, t) -> jax.Array:
        """Return the noise-free conductance (S) at time t (s) after programming."""

    @abc.abstractmethod
    def read(self, state: DeviceState, t, *, key: jax.Array) -> jax.Array:
        """Return the conductance (S) read at time t (s) after programming, with drift and read noise."""

    @abc.abstractmethod
    def apply_pulses(self, state: DeviceState, n_pulses, *, key: jax.Array, max_pulses: int | None = None) -> DeviceState:
        """Apply signed pulse counts (positive: potentiation, negative: depression) to each device."""

    def program(self, target, *, key: jax.Array, verify: ProgramVerify | None = None) -> DeviceState:
        """Program target conductances (S), clipped to [g_min, g_max], with write noise.

        With `verify`, devices whose programmed conductance misses the target by more than
        `verify.tolerance` are programmed again with fresh noise, up to `verify.max_iterations` attempts.
        `state.iterations` records the attempts of each device. The verify loop is a `while_loop` and is
        not differentiable; without `verify` programming is differentiable with respect to the target and
        the device parameters.
        """
        check_finite("target conductance", target, "pass finite conductances in S")
        target = jnp.clip(jnp.asarray(target, dtype=jnp.result_type(float)), self.g_min, self.g_max)
        first = self._program_once(target, key=jax.random.fold_in(key, 0))
        if verify is None:
            return first
        return _program_and_verify(self, target, first, key, verify)

    def check_read_time(self, t) -> None:
        """Raise ValueError for a concrete negative or non-finite read time."""
        check_time("read time t", t)


class NormalNoiseDevice(Device):
    """Base of device models whose write and read noise are standard normals, a fixed number per device.

    One programming attempt draws `program_normals` standard normals per device and one read draws
    `read_normals`. Nothing else in them is random. Subclasses implement `_program_from_normals` and
    `read_from_normals`, which take the normals as an array of shape (count, *shape) instead of a key.
    Programming and reading with a key draw those normals and call them, so both routes give the same
    numbers for the same normals.

    The explicit route lets an array model draw the noise of many arrays at once. A `Tile` draws the
    normals of both arrays of its differential pair and of the reference read of drift compensation in
    one call of the generator. On a CPU each call of the generator is a loop that XLA runs apart from the
    operations around it, so one call for all the normals costs less than one call per array
    (benchmarks/hwa_step.py).
    """

    program_normals: ClassVar[int]
    read_normals: ClassVar[int]

    @abc.abstractmethod
    def _program_from_normals(self, target: jax.Array, normals: jax.Array) -> DeviceState:
        """Program every device once towards `target` (S, inside the range) with the given normals."""

    @abc.abstractmethod
    def read_from_normals(self, state: DeviceState, t, normals: jax.Array) -> jax.Array:
        """Return the conductance (S) read at time t (s): `read`, with its normals given (read_normals, *shape)."""

    def program_from_normals(self, target, normals) -> DeviceState:
        """Program target conductances (S), clipped to [g_min, g_max], once, with the given standard normals.

        `normals` has shape (program_normals, *target.shape). Differentiable, and without program-and-verify.
        """
        target = jnp.clip(jnp.asarray(target, dtype=jnp.result_type(float)), self.g_min, self.g_max)
        return self._program_from_normals(target, normals)

    def _program_once(self, target, *, key):
        normals = _random.normal(key, (self.program_normals,) + jnp.shape(target), target.dtype)
        return self._program_from_normals(target, normals)

    def read(self, state, t, *, key):
        """Return the conductance (S) read at time t (s) after programming, with drift and read noise."""
        shape = jnp.broadcast_shapes(jnp.shape(state.g), jnp.shape(t))
        normals = _random.normal(key, (self.read_normals,) + shape, state.g.dtype)
        return self.read_from_normals(state, t, normals)


def draws_normals(device: Device) -> bool:
    """Return whether `device` programs and reads through its explicit-normals methods (`NormalNoiseDevice`).

    A subclass that overrides `program`, `_program_once` or `read` draws its noise its own way, so callers
    must use those methods with a key. A tile on such a device draws each array's noise from its own key,
    so for one key its conductances differ from those of a tile on the parent model.
    """
    cls = type(device)
    return (
        isinstance(device, NormalNoiseDevice)
        and cls.program is Device.program
        and cls._program_once is NormalNoiseDevice._program_once
        and cls.read is NormalNoiseDevice.read
    )


def _program_and_verify(device: Device, target, first: DeviceState, key, verify: ProgramVerify) -> DeviceState:
    """Reprogram the devices outside the tolerance until all pass or the attempts run out."""

    def within(state):
        return jnp.abs(state.g - target) <= verify.tolerance

    def cond(carry):
        attempt, _, done = carry
        return (attempt < verify.max_iterations) & ~jnp.all(done)

    def body(carry):
        attempt, state, done = carry
        retry = device._program_once(target, key=jax.random.fold_in(key, attempt))
        retry = eqx.tree_at(lambda s: s.iterations, retry, jnp.full_like(state.iterations, attempt + 1))
        state = jax.tree_util.tree_map(lambda old, new: jnp.where(done, old, new), state, retry)
        return attempt + 1, state, done | within(state)

    carry = (jnp.asarray(1, jnp.int32), first, within(first))
    _, state, _ = jax.lax.while_loop(cond, body, carry)
    return state


def program_with_pulses(device: Device, target, *, key: jax.Array, tolerance: float, max_pulses: int = 1000) -> DeviceState:
    """Program target conductances (S) by trains of single pulses, verifying after each pulse.

    Every device starts from `g_min`, programmed there with the device's own write noise. It then
    receives one potentiating pulse while it is more than `tolerance` (S) below its target, and one
    depressing pulse while it is more than `tolerance` above. The loop stops when all devices are within
    tolerance or after `max_pulses` pulses. So the result carries the device's nonlinear, asymmetric and noisy steps, as in
    hardware that programs with pulses. The verify reads are free of read noise. This is a `while_loop`
    and is not differentiable.
    """
    check_finite("target conductance", target, "pass finite conductances in S")
    check_positive("tolerance", tolerance, "S")
    if isinstance(max_pulses, bool) or not isinstance(max_pulses, int) or max_pulses < 0:
        raise ValueError(f"max_pulses must be an integer >= 0, got {max_pulses!r}")
    target = jnp.clip(jnp.asarray(target, dtype=jnp.result_type(float)), device.g_min, device.g_max)
    start = device.program(jnp.zeros_like(target) + device.g_min, key=jax.random.fold_in(key, 0))

    def direction(state):
        error = state.g - target
        return jnp.where(error < -tolerance, 1, jnp.where(error > tolerance, -1, 0)).astype(jnp.int32)

    def cond(carry):
        count, state = carry
        return (count < max_pulses) & jnp.any(direction(state) != 0)

    def body(carry):
        count, state = carry
        step_key = jax.random.fold_in(key, count + 1)
        return count + 1, device.apply_pulses(state, direction(state), key=step_key, max_pulses=1)

    _, state = jax.lax.while_loop(cond, body, (jnp.asarray(0, jnp.int32), start))
    return state
