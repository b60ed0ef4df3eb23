"""A crossbar tile: a weight matrix stored as differential conductance pairs, read through its periphery."""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp

from .. import _random
from .._validation import check_finite, check_positive, check_time, is_concrete
from ..devices import Device, DeviceState, IdealDevice, ProgramVerify, draws_normals, program_with_pulses
from .parasitics import Parasitics, solve_crossbar
from .periphery import ADC, DAC


def weights_to_conductances(weights, weight_scale, g_min, g_max):
    """Map weights onto a differential pair (G+, G-) in S.

    |W| = weight_scale maps to g_max on one device of the pair while the other stays at g_min, so
    G+ - G- = W (g_max - g_min) / weight_scale; weights beyond +-weight_scale are clipped.
    """
    w = jnp.clip(weights / weight_scale, -1.0, 1.0)
    span = g_max - g_min
    return g_min + jnp.maximum(w, 0.0) * span, g_min + jnp.maximum(-w, 0.0) * span


def nominal_range(device: Device):
    """Return the mean conductance range (g_min, g_max) in S of a device model.

    With device-to-device spread the model contains per-device ranges. A tile, like its periphery, maps
    and scales with their mean, and each device then clips its target to its own range.
    """
    return jnp.mean(jnp.asarray(device.g_min)), jnp.mean(jnp.asarray(device.g_max))


class TileState(eqx.Module):
    """A programmed tile.

    Attributes:
        g_pos, g_neg: states of the positive and negative device of each pair, shape (M, N).
        weight_scale: weight that maps to the full conductance range (scalar, weight units).
        reference_current: summed read current of all devices per volt (S) read right after programming,
            the reference of global drift compensation.
    """

    g_pos: DeviceState
    g_neg: DeviceState
    weight_scale: jax.Array
    reference_current: jax.Array

    @property
    def shape(self) -> tuple[int, int]:
        return tuple(jnp.shape(self.g_pos.g))


class TileRead(eqx.Module):
    """The conductances of a tile read at one time t, shared by every product of that read.

    Attributes:
        g_diff: G+ - G- at time t (drift and accumulated read noise included), S, shape (M, N).
        g_square: G+^2 + G-^2 for the short-term noise variance, S^2, or None when that noise is off.
        drift_gain: digital gain of global drift compensation (1 without compensation).
        weight_scale: as in TileState.
        g_pos, g_neg: the conductances of the two devices of each pair, S, shape (M, N), kept when the tile
            has wire resistance (its products solve the two arrays as circuits); None otherwise.
    """

    g_diff: jax.Array
    g_square: jax.Array | None
    drift_gain: jax.Array
    weight_scale: jax.Array
    g_pos: jax.Array | None = None
    g_neg: jax.Array | None = None


class Tile(eqx.Module):
    """An M x N crossbar array holding a weight matrix W as differential conductance pairs.

    Inputs drive the M rows (word lines) as read voltages and the N columns (bit lines) are sensed, so
    `matmul` computes y_j = sum_i x_i W_ij (`x @ W`); `matmul_transposed` drives the columns and senses the
    rows (`d @ W.T`). The tile works in physical units: an input of magnitude `dac.input_range` becomes
    `read_voltage` volts, device currents are in amperes, and the digitized current is scaled back to
    weight units.

    A product takes three steps, each a pure function. `program` runs once. `read` at a time t after
    programming runs once per t and draws the drift and accumulated 1/f noise of every device, shared by
    all input vectors of that read as in IBM aihwkit. `matmul` then takes any batch of inputs.

    Noise in each product:
        - short-term read noise: each device current fluctuates by a Gaussian of standard deviation
          `short_term_noise * G * V`, independent for every product. It is drawn exactly from the summed
          variance of each output, sum_i V_i^2 short_term_noise^2 (G+_ij^2 + G-_ij^2), one normal per output.
        - output noise: Gaussian current noise of standard deviation `output_noise` (A) at each ADC input.

    Global drift compensation (Joshi et al., Nature Communications 11, 2473 (2020)): the summed current
    of all devices at a constant read voltage is measured right after programming and again at each read;
    the digital output is multiplied by their ratio.

    Every product of a batch is digitized on its own: nothing in the ADC depends on other vectors.

    Wire resistance (IR drop): with `parasitics` set, the devices of each sign form their own M x N array
    with the given word-line, bit-line, driver and sense resistances, and every product solves both arrays
    as circuits (`solve_crossbar`) and subtracts their sensed currents. Short-term noise then follows the
    actual voltage across each device. `ir_compensation` pre-distorts the programmed conductances so that,
    with every row driven at `compensation_input` times the full read voltage, each device passes the
    current it would pass without wire resistance (`compensate_ir_drop`).

    Attributes:
        device: device model of every cell.
        read_voltage: row voltage for a full-scale input, V (default 0.2 V).
        read_time: duration of one product's read, s (default 250 ns; used for energy and latency).
        weight_range: weight mapped to the full conductance range; None uses max|W| at programming.
        dac: input converter. adc: output converter.
        short_term_noise: relative standard deviation of each device current per product (default 0).
        output_noise: standard deviation of the current noise at each ADC input, A (default 0).
        drift_compensation: apply global drift compensation (static, default False).
        verify: program-and-verify settings, or None for single-shot programming (static).
        program_by_pulses: program with trains of single device pulses, verified after each pulse, instead
            of one write per attempt (static, default False). Needs `verify`: its `tolerance` applies and
            `max_iterations` is the most pulses per device. Not differentiable.
        parasitics: wire and periphery resistances of each array, or None (default) for ideal wires.
        ir_compensation: pre-distort the programmed conductances against IR drop (static, default False;
            needs `parasitics`).
        compensation_input: input level of the compensation, as a share of the full read voltage on every
            row (default 0.5, the mean magnitude of inputs uniform over the input range).
    """

    device: Device = IdealDevice()
    read_voltage: float = 0.2
    read_time: float = 250e-9
    weight_range: float | None = None
    dac: DAC = DAC()
    adc: ADC = ADC()
    short_term_noise: float = 0.0
    output_noise: float = 0.0
    drift_compensation: bool = eqx.field(static=True, default=False)
    verify: ProgramVerify | None = eqx.field(static=True, default=None)
    program_by_pulses: bool = eqx.field(static=True, default=False)
    parasitics: Parasitics | None = None
    ir_compensation: bool = eqx.field(static=True, default=False)
    compensation_input: float = 0.5

    def __check_init__(self):
        for name, cls in (("device", Device), ("dac", DAC), ("adc", ADC)):
            if not isinstance(getattr(self, name), cls):
                raise ValueError(f"Tile {name} must be a {cls.__name__} instance, got {getattr(self, name)!r}")
        if self.program_by_pulses and self.verify is None:
            raise ValueError(
                "program_by_pulses needs verify=ProgramVerify(max_iterations=<most pulses>, tolerance=<S>)"
            )
        check_positive("read_voltage", self.read_voltage, "V")
        check_positive("read_time", self.read_time, "s")
        if self.weight_range is not None:
            check_positive("weight_range", self.weight_range)
        check_positive("short_term_noise", self.short_term_noise, allow_zero=True)
        check_positive("output_noise", self.output_noise, "A", allow_zero=True)
        if self.parasitics is not None and not isinstance(self.parasitics, Parasitics):
            raise ValueError(f"Tile parasitics must be a Parasitics instance or None, got {self.parasitics!r}")
        if self.ir_compensation and self.parasitics is None:
            raise ValueError("ir_compensation needs wire resistance: pass parasitics=Parasitics(word_line=..., bit_line=...)")
        check_positive("compensation_input", self.compensation_input)

    def nominal_range(self):
        """Return the conductance range (g_min, g_max) in S used to map weights and scale outputs."""
        return nominal_range(self.device)

    # Programming and reading.

    def program(self, weights, *, key: jax.Array) -> TileState:
        """Program the weight matrix `weights` (M x N) onto the devices."""
        weights = jnp.asarray(weights, jnp.result_type(float))
        if weights.ndim != 2:
            raise ValueError(f"weights must be a 2-D (rows x columns) matrix, got shape {weights.shape}")
        check_finite("weights", weights, "remove NaN or infinite weights before programming")

        if self.weight_range is None:
            max_abs = jnp.max(jnp.abs(weights))
            weight_scale = jnp.where(max_abs > 0, max_abs, 1.0)
        else:
            weight_scale = jnp.asarray(self.weight_range, weights.dtype)

        g_min, g_max = self.nominal_range()
        target_pos, target_neg = weights_to_conductances(weights, weight_scale, g_min, g_max)
        if self.ir_compensation:
            level = self.compensation_input * self.read_voltage
            target_pos = compensate_ir_drop(target_pos, self.parasitics, level, g_max=g_max)
            target_neg = compensate_ir_drop(target_neg, self.parasitics, level, g_max=g_max)
        g_pos, g_neg, read_pos, read_neg = self._program_arrays(target_pos, target_neg, key)
        # The compensation reference is one read of every device right after programming (t = 0).
        reference = jnp.sum(read_pos) + jnp.sum(read_neg)
        return TileState(g_pos=g_pos, g_neg=g_neg, weight_scale=weight_scale, reference_current=reference)

    def _program_arrays(self, target_pos, target_neg, key):
        """Program G+ and G- and return their states with their reads at t = 0, the compensation reference."""
        device = self.device
        if draws_normals(device) and self.verify is None and not self.program_by_pulses:
            # One call of the generator draws every normal of both arrays and of their reference reads.
            p, r = device.program_normals, device.read_normals
            normals = _random.normal(key, (2 * p + 2 * r,) + jnp.shape(target_pos), target_pos.dtype)
            g_pos = device.program_from_normals(target_pos, normals[:p])
            g_neg = device.program_from_normals(target_neg, normals[p : 2 * p])
            read_pos = device.read_from_normals(g_pos, 0.0, normals[2 * p : 2 * p + r])
            read_neg = device.read_from_normals(g_neg, 0.0, normals[2 * p + r :])
            return g_pos, g_neg, read_pos, read_neg

        key_pos, key_neg, key_reference = jax.random.split(key, 3)
        if self.program_by_pulses:
            settings = {"tolerance": self.verify.tolerance, "max_pulses": self.verify.max_iterations}
            g_pos = program_with_pulses(device, target_pos, key=key_pos, **settings)
            g_neg = program_with_pulses(device, target_neg, key=key_neg, **settings)
        else:
            g_pos = device.program(target_pos, key=key_pos, verify=self.verify)
            g_neg = device.program(target_neg, key=key_neg, verify=self.verify)
        key_ref_pos, key_ref_neg = jax.random.split(key_reference)
        return g_pos, g_neg, device.read(g_pos, 0.0, key=key_ref_pos), device.read(g_neg, 0.0, key=key_ref_neg)

    def read(self, state: TileState, t, *, key: jax.Array) -> TileRead:
        """Read every device at time `t` (s) after programming: drift plus accumulated read noise."""
        check_time("read time t", t)
        if jnp.ndim(t) != 0:
            raise ValueError(
                f"read time t must be a scalar, got shape {jnp.shape(t)}; read several times with "
                "jax.vmap(lambda t: tile.read(state, t, key=key))(times)"
            )
        if draws_normals(self.device):
            r = self.device.read_normals
            normals = _random.normal(key, (2 * r,) + jnp.shape(state.g_pos.g), state.g_pos.g.dtype)
            g_pos = self.device.read_from_normals(state.g_pos, t, normals[:r])
            g_neg = self.device.read_from_normals(state.g_neg, t, normals[r:])
        else:
            key_pos, key_neg = jax.random.split(key)
            g_pos = self.device.read(state.g_pos, t, key=key_pos)
            g_neg = self.device.read(state.g_neg, t, key=key_neg)

        g_square = None if _is_zero(self.short_term_noise) else g_pos * g_pos + g_neg * g_neg
        if self.drift_compensation:
            total = jnp.sum(g_pos) + jnp.sum(g_neg)
            # A fully decayed array (total 0) keeps gain 1 rather than dividing by zero.
            drift_gain = jnp.where(total > 0, state.reference_current / jnp.where(total > 0, total, 1.0), 1.0)
        else:
            drift_gain = jnp.ones((), g_pos.dtype)
        wired = self.parasitics is not None
        return TileRead(
            g_diff=g_pos - g_neg, g_square=g_square, drift_gain=drift_gain, weight_scale=state.weight_scale,
            g_pos=g_pos if wired else None, g_neg=g_neg if wired else None,
        )

    # Products.

    def matmul(self, read: TileRead, x, *, key: jax.Array | None = None):
        """Return `x @ W` computed by the array: x has shape (..., M), the result (..., N)."""
        return self._product(read.g_diff, read.g_square, read, x, key, transposed=False)

    def matmul_transposed(self, read: TileRead, d, *, key: jax.Array | None = None):
        """Return `d @ W.T` computed by driving the columns and sensing the rows: d is (..., N), result (..., M)."""
        return self._product(read.g_diff.T, None if read.g_square is None else read.g_square.T, read, d, key, transposed=True)

    def forward(self, weights, x, t=0.0, *, key: jax.Array):
        """Program `weights`, read at time `t` and return `x @ W`: the three steps in one call."""
        key_program, key_read, key_product = jax.random.split(key, 3)
        state = self.program(weights, key=key_program)
        return self.matmul(self.read(state, t, key=key_read), x, key=key_product)

    def _product(self, g, g_square, read, x, key, *, transposed):
        rows = g.shape[0]
        x = jnp.asarray(x, jnp.result_type(float))
        if x.ndim < 1 or x.shape[-1] != rows:
            side = "columns" if transposed else "rows"
            raise ValueError(
                f"input has shape {x.shape} but the tile has {rows} {side}; the last input axis must have length {rows}"
            )
        check_finite("input x", x, "remove NaN or infinite inputs")
        noisy = not (_is_zero(self.output_noise) and g_square is None)
        if noisy and key is None:
            raise ValueError("this tile has short-term or output noise, so matmul needs a PRNG key: pass key=...")

        volts = self.dac(x) * self.read_voltage
        if self.parasitics is None:
            current = volts @ g
        else:
            if read.g_pos is None:
                raise ValueError("this tile has wire resistance but the read lacks G+ and G-: read it with this tile")
            current, device_square = self._wired_currents(read, volts, transposed, need_noise=g_square is not None)

        if noisy:
            if self.parasitics is None:
                variance = None if g_square is None else (volts * volts) @ g_square
            else:
                variance = device_square
            current = self._add_noise(current, variance, key)
        return self._to_weights(current, read.weight_scale, read.drift_gain)

    def _add_noise(self, current, device_square, key):
        """Add short-term noise (from sum_i (V_i G_ij)^2 over both arrays, or None) and output noise."""
        key_short, key_output = jax.random.split(key)
        if device_square is None:
            return current + self.output_noise * _random.normal(key_output, current.shape, current.dtype)
        # Short-term and output noise are independent zero-mean Gaussians, so their sum is one Gaussian
        # with the summed variance. One normal per output instead of two gives the same distribution at
        # half the drawing cost, which on a CPU is about that of the product (benchmarks/tile_forward.py).
        variance = device_square * self.short_term_noise**2
        if not _is_zero(self.output_noise):
            variance = variance + self.output_noise**2
        return current + _safe_sqrt(variance) * _random.normal(key_short, current.shape, current.dtype)

    def _to_weights(self, current, weight_scale, drift_gain):
        """Digitize output currents (A) and scale them to weight units."""
        digital = self.adc(current)
        g_min, g_max = self.nominal_range()
        span = g_max - g_min
        gain = weight_scale * self.dac.input_range * drift_gain / (self.read_voltage * span)
        return digital * gain

    # Event-driven products, which read only the driven rows.

    @property
    def reads_rows_independently(self) -> bool:
        """True when a product depends only on the driven rows (no wire resistance, no drift compensation).

        Then `row_currents` and `finish_rows` give the product of a spike vector at the cost of its spikes.
        """
        return self.parasitics is None and not self.drift_compensation

    def row_currents(self, state: TileState, t, rows, valid, *, key: jax.Array):
        """Read only the given rows at time t and return their summed column currents for a unit input.

        A spike is an input of 1 (full scale after the DAC) on its row. This returns the analog column
        currents of the rows `rows` (int, shape (K,)) where `valid` is True, and for short-term noise
        their summed squares sum_i (V G_ij)^2 over both arrays (None when that noise is off). Several
        calls add up, and `finish_rows` then applies the noise, the ADC and the scale of `matmul`, which
        it equals for a 0/1 input vector (with fresh read noise of the rows read). Needs
        `reads_rows_independently`.
        """
        if not self.reads_rows_independently:
            raise ValueError(
                "row_currents needs a tile without wire resistance and without drift compensation; "
                "use read and matmul for this tile"
            )
        m, n = state.shape
        key_pos, key_neg = jax.random.split(key)
        device = take_devices(self.device, rows, (m, n), axis=0)
        g_pos = device.read(take_devices(state.g_pos, rows, (m, n), axis=0), t, key=key_pos)
        g_neg = device.read(take_devices(state.g_neg, rows, (m, n), axis=0), t, key=key_neg)
        volts = self.dac(jnp.ones((), g_pos.dtype)) * self.read_voltage
        weight = jnp.asarray(valid, g_pos.dtype)[:, None]
        current = volts * jnp.sum(weight * (g_pos - g_neg), axis=0)
        if _is_zero(self.short_term_noise):
            return current, None
        return current, volts * volts * jnp.sum(weight * (g_pos * g_pos + g_neg * g_neg), axis=0)

    def finish_rows(self, state: TileState, current, device_square, *, key: jax.Array | None = None):
        """Turn the summed currents of `row_currents` into the product in weight units (noise, ADC, scale)."""
        noisy = not (_is_zero(self.output_noise) and device_square is None)
        if noisy:
            if key is None:
                raise ValueError("this tile has short-term or output noise, so finish_rows needs a PRNG key: pass key=...")
            current = self._add_noise(current, device_square, key)
        return self._to_weights(current, state.weight_scale, jnp.ones((), current.dtype))

    def _wired_currents(self, read, volts, transposed, *, need_noise):
        """Solve the positive and negative arrays with wire resistance and return I+ - I-.

        The second result, for short-term noise, is sum_i (V_device G)^2 over both arrays (None when not needed).
        """

        def solve(g):
            solution = solve_crossbar(g, volts, self.parasitics, transposed=transposed, node_voltages=need_noise)
            if not need_noise:
                return solution.currents, None
            device_current = solution.device_voltages * g
            # Sum over the driven lines: rows in the forward direction, columns transposed.
            return solution.currents, jnp.sum(device_current * device_current, axis=-1 if transposed else -2)

        currents, squares = jax.vmap(solve)(jnp.stack([read.g_pos, read.g_neg]))
        return currents[0] - currents[1], None if squares is None else squares[0] + squares[1]


def compensate_ir_drop(conductances, parasitics: Parasitics, voltage, *, g_max=None, iterations: int = 8):
    """Pre-distort target conductances (S) so that each device passes its ideal current despite IR drop.

    With every row driven at `voltage` (V) and the columns sensed, the voltage across device (i, j) is
    V_ij < `voltage`. The
    fixed point G_ij = G_target_ij * voltage / V_ij(G) makes every device current G_ij V_ij equal to
    G_target_ij * voltage; it is found by `iterations` substitutions, each one solve of the array, and each
    step is clipped at `g_max` (S; None for no bound), the largest conductance a device can reach. The
    iteration contracts while the relative drop stays well below one; at stronger IR drop, or when the
    clip binds, the compensation is partial. Exact for the calibration input only: other inputs see other
    drops. Differentiable (each solve is).
    """
    target = jnp.asarray(conductances, jnp.result_type(float))
    check_positive("compensation voltage", voltage, "V")
    drive = jnp.broadcast_to(jnp.asarray(voltage, target.dtype), target.shape[:1])
    g = target
    for _ in range(iterations):
        seen = solve_crossbar(g, drive, parasitics, node_voltages=True).device_voltages
        # A device seeing under 1 % of the drive (an extreme drop) keeps a 100x boost, not a division by 0.
        ratio = drive[:, None] / jnp.maximum(seen, 0.01 * drive[:, None])
        g = target * ratio
        if g_max is not None:
            g = jnp.minimum(g, g_max)
    return g


def take_devices(tree, index, shape: tuple[int, int], *, axis: int):
    """Select rows (axis 0) or columns (axis 1) of every per-device array in a device model or state.

    Leaves whose last two axes have the array's shape (M, N) are indexed along the chosen axis with
    `index`, clipped into range (callers mask the slots they do not use). Scalars and other leaves, such
    as the shared parameters of a model, are kept as they are.
    """
    size = shape[axis]
    index = jnp.clip(jnp.asarray(index), 0, size - 1)

    def take(leaf):
        if hasattr(leaf, "ndim") and leaf.ndim >= 2 and tuple(leaf.shape[-2:]) == tuple(shape):
            return jnp.take(leaf, index, axis=leaf.ndim - 2 + axis)
        return leaf

    return jax.tree_util.tree_map(take, tree)


def put_devices(tree, part, index, valid, shape: tuple[int, int], *, axis: int, taken=None):
    """Write rows or columns taken with `take_devices` (and changed) back where `valid`; the inverse step.

    With `taken`, the part as `take_devices` returned it, leaves of `part` that are still the very same
    arrays (an update that did not touch them) are not written back, which saves their scatter.
    """
    size = shape[axis]
    # Slots that are not valid point past the end and are dropped.
    target = jnp.where(jnp.asarray(valid), jnp.asarray(index), size)

    def put(leaf, new, old):
        if new is old:
            return leaf
        if hasattr(leaf, "ndim") and leaf.ndim >= 2 and tuple(leaf.shape[-2:]) == tuple(shape):
            if axis == 0:
                return leaf.at[..., target, :].set(new, mode="drop")
            return leaf.at[..., target].set(new, mode="drop")
        return leaf

    leaves, structure = jax.tree_util.tree_flatten(tree)
    new_leaves = structure.flatten_up_to(part)
    old_leaves = [None] * len(leaves) if taken is None else structure.flatten_up_to(taken)
    return structure.unflatten([put(*items) for items in zip(leaves, new_leaves, old_leaves)])


def _is_zero(value) -> bool:
    """True for a concrete zero, so that a switched-off noise source costs nothing."""
    return is_concrete(value) and float(value) == 0.0


def _safe_sqrt(x):
    """Square root with a finite gradient at 0 (the gradient there is taken as 0)."""
    positive = x > 0
    return jnp.where(positive, jnp.sqrt(jnp.where(positive, x, 1.0)), 0.0)
