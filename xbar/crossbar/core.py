"""Multi-tile cores: a weight matrix of any size split over a grid of equal crossbar tiles.

A layer larger than one array is cut into blocks of `tile_shape` (rows x columns). Each block is programmed
onto its own tile, with its own devices, noise and ADC. For a product x @ W, the input segment of each
block row drives that row of tiles, and every tile digitizes its own partial sums. The partial sums of the
tiles in one block column are then added in digital (CMOS) to give the outputs of that column. The last block
row and column are padded with zero weights, which ideal devices store exactly, so the mapping is exact in
the ideal limit for any matrix shape.

The core's `Slicing` sets the number representation: bit-serial inputs (one read of every tile per input
bit), weights sliced over several tiles of lower precision, and differential or offset signed weights (see
`xbar.crossbar.slicing`). All of it is shift and add of digitized tile outputs, done here in digital.

All tiles share one `Tile` configuration, and every per-tile operation runs under `jax.vmap` over the grid.
"""

from __future__ import annotations

import dataclasses
import math

import equinox as eqx
import jax
import jax.numpy as jnp

from .._validation import check_finite, check_time, is_concrete
from .periphery import ADC, DAC
from .slicing import Slicing
from .tile import Tile, TileRead, TileState

__all__ = ["Calibration", "Core", "CoreState"]


class CoreState(eqx.Module):
    """A programmed core.

    Attributes:
        tiles: the states of all tiles, stacked: every leaf has leading axes (block rows, block columns),
            preceded by a slice axis (least significant slice first) when the core has several weight
            slices. With offset weights each tile has one more column, the reference column, last.
        shape: the shape (M, N) of the weight matrix (static).
        weight_scale: full-scale weight of each block, shape (block rows, block columns), when the core maps
            weights itself (quantized or offset weights, `Slicing.stores_levels`); None when each tile maps
            its own block and keeps its scale in its `TileState`.
    """

    tiles: TileState
    shape: tuple[int, int] = eqx.field(static=True)
    weight_scale: jax.Array | None = None


class Calibration(eqx.Module):
    """Per-column digital correction of a core's outputs: y = gain * y_measured + offset.

    Attributes:
        gain: dimensionless gain of each output column, shape (N,).
        offset: offset of each output column, weight units times input units, shape (N,).
    """

    gain: jax.Array
    offset: jax.Array


class Core(eqx.Module):
    """A grid of identical crossbar tiles that together hold one M x N weight matrix.

    Attributes:
        tile: configuration of every tile (device, read voltage, DAC, ADC, noise, wires). With
            `weight_range=None` each block is scaled by that block's max|W|, and the digital output gain
            undoes the scale, so the partial sums add up in weight units.
        tile_shape: rows and weight columns of one tile (static; default 256 x 256). With offset weights
            each array has one more physical column, the reference column.
        slicing: number representation of inputs and weights (default: one analog read per input vector,
            one differential pair per weight).
    """

    tile: Tile = Tile()
    tile_shape: tuple[int, int] = eqx.field(static=True, default=(256, 256))
    slicing: Slicing = Slicing()

    def __check_init__(self):
        if not isinstance(self.tile, Tile):
            raise ValueError(f"Core tile must be a Tile instance, got {self.tile!r}")
        if not isinstance(self.slicing, Slicing):
            raise ValueError(f"Core slicing must be a Slicing instance, got {self.slicing!r}")
        shape = self.tile_shape
        if (
            not isinstance(shape, tuple)
            or len(shape) != 2
            or any(isinstance(n, bool) or not isinstance(n, int) or n < 1 for n in shape)
        ):
            raise ValueError(f"tile_shape must be a tuple of two integers >= 1 (rows, columns), got {shape!r}")

    def grid(self, shape: tuple[int, int]) -> tuple[int, int]:
        """Return the number of tile rows and tile columns that hold a matrix of `shape` (M, N)."""
        rows, columns = self.tile_shape
        return math.ceil(shape[0] / rows), math.ceil(shape[1] / columns)

    def program(self, weights, *, key: jax.Array) -> CoreState:
        """Program the weight matrix (M x N) onto the tiles, one independent key per tile and slice."""
        weights = _as_matrix(weights)
        blocks = self._blocks(weights)
        shape = tuple(int(n) for n in weights.shape)
        if not self.slicing.stores_levels:
            keys = _grid_keys(key, blocks.shape[:2])
            program = jax.vmap(jax.vmap(lambda block, k: self.tile.program(block, key=k)))
            return CoreState(tiles=program(blocks, keys), shape=shape)

        # The core maps each block onto device levels itself: every slice tile stores values in device
        # units (1 = full conductance range), so its tiles program with a fixed weight range of 1.
        check_finite("weights", weights, "remove NaN or infinite weights before programming")
        scales = self._block_scales(blocks)
        values = jnp.moveaxis(jax.vmap(jax.vmap(self.slicing.split_weights))(blocks, scales), 2, 0)
        offset = self.slicing.negative == "offset"
        if offset:
            reference = jnp.asarray(self.slicing.reference_levels(), values.dtype).reshape(-1, 1, 1, 1, 1)
            values = jnp.concatenate([values, jnp.broadcast_to(reference, (*values.shape[:-1], 1))], axis=-1)
        tile = self._level_tile()

        def program_one(block, k):
            if not offset:
                return tile.program(block, key=k)
            key_program, key_reference = jax.random.split(k)
            state = tile.program(block, key=key_program)
            # Only G+ is read in offset mode, so the drift-compensation reference sums G+ alone.
            reference_current = jnp.sum(tile.device.read(state.g_pos, 0.0, key=key_reference))
            return TileState(
                g_pos=state.g_pos, g_neg=state.g_neg, weight_scale=state.weight_scale,
                reference_current=reference_current,
            )

        keys = _grid_keys(key, values.shape[:3])
        tiles = jax.vmap(jax.vmap(jax.vmap(program_one)))(values, keys)
        return CoreState(tiles=self._drop_slice_axis(tiles), shape=shape, weight_scale=scales)

    def read(self, state: CoreState, t, *, key: jax.Array) -> TileRead:
        """Read every tile at time t (s) after programming; the reads are stacked like the tile states.

        With offset weights `g_diff` of each read holds the conductance of the one device of each cell
        (the second device of the pair is not used), and its last column is the reference column.
        """
        self._check_state(state)
        if not self.slicing.stores_levels:
            keys = _grid_keys(key, self.grid(state.shape))
            return jax.vmap(jax.vmap(lambda s, k: self.tile.read(s, t, key=k)))(state.tiles, keys)

        tile = self._level_tile()
        if self.slicing.negative == "offset":
            def read_one(s, k):
                return _read_single_devices(tile, s, t, key=k)
        else:
            def read_one(s, k):
                return tile.read(s, t, key=k)
        keys = _grid_keys(key, (self.slicing.weight_slices, *self.grid(state.shape)))
        reads = jax.vmap(jax.vmap(jax.vmap(read_one)))(self._add_slice_axis(state.tiles), keys)
        return self._drop_slice_axis(reads)

    def quantize_weights(self, weights):
        """Return the weights (M x N) as the core stores them: rounded by the slicing, clipped to each block's range.

        In the ideal limit, with ideal devices and an ideal ADC, the core computes exactly
        `quantize_inputs(x) @ quantize_weights(W)`. Differentiable for analog weights only.
        """
        weights = _as_matrix(weights)
        blocks = self._blocks(weights)
        quantized = jax.vmap(jax.vmap(self.slicing.quantize_weights))(blocks, self._block_scales(blocks))
        grid_rows, grid_columns, rows, columns = quantized.shape
        matrix = quantized.transpose(0, 2, 1, 3).reshape(grid_rows * rows, grid_columns * columns)
        return matrix[: weights.shape[0], : weights.shape[1]]

    def quantize_inputs(self, x):
        """Return the inputs as the core's drivers apply them, in input units: bit-serial codes or the DAC's levels."""
        x = jnp.asarray(x, jnp.result_type(float))
        input_range = self.tile.dac.input_range
        if self.slicing.input_bits is None:
            return self.tile.dac(x) * input_range
        return self.slicing.quantize_inputs(x, input_range)

    def calibrate(self, state: CoreState, read: TileRead, weights, inputs, *, key: jax.Array | None = None) -> Calibration:
        """Fit a per-column gain and offset that map this read's outputs onto the intended product.

        The calibration inputs (shape (K, M), K >= 2) go through the core, and each column's outputs are
        fitted to `inputs @ weights` by least squares, as the digital periphery of a chip does with
        calibration reads after programming or after drift. Differentiable.
        """
        inputs = jnp.asarray(inputs, jnp.result_type(float))
        if inputs.ndim != 2 or inputs.shape[0] < 2:
            raise ValueError(f"calibration inputs must have shape (K, M) with K >= 2 vectors, got shape {inputs.shape}")
        measured = self.matmul(state, read, inputs, key=key)
        target = inputs @ jnp.asarray(weights, inputs.dtype)
        measured_mean, target_mean = jnp.mean(measured, axis=0), jnp.mean(target, axis=0)
        spread = jnp.mean((measured - measured_mean) ** 2, axis=0)
        covariance = jnp.mean((measured - measured_mean) * (target - target_mean), axis=0)
        # A column whose outputs do not vary (all weights 0, or a stuck column) keeps gain 1.
        varies = spread > 0
        gain = jnp.where(varies, covariance / jnp.where(varies, spread, 1.0), 1.0)
        return Calibration(gain=gain, offset=target_mean - gain * measured_mean)

    def matmul(self, state: CoreState, read: TileRead, x, *, key: jax.Array | None = None,
               calibration: Calibration | None = None):
        """Return `x @ W` (x of shape (..., M), result (..., N)): per-tile products summed in digital.

        With bit-serial inputs every tile is read once per input bit, each read with its own noise and
        ADC conversion, and the digitized reads are added with weights 2^k. The rounding of inputs to
        bits has no gradient unless the tile's DAC has `straight_through=True`: then the gradient with
        respect to x is that of the noise-free analog product, at the cost of one more product.
        With `calibration`, each output column is corrected by its gain and offset after the sum.
        """
        self._check_state(state)
        m = state.shape[0]
        x = jnp.asarray(x, jnp.result_type(float))
        if x.ndim < 1 or x.shape[-1] != m:
            raise ValueError(f"input has shape {x.shape} but the core has {m} rows; the last input axis must have length {m}")

        if self.slicing.input_bits is None:
            outputs = self._product(state, read, x, key, self.tile)
        else:
            check_finite("input x", x, "remove NaN or infinite inputs")
            input_range = self.tile.dac.input_range
            planes, significance = self.slicing.input_planes(x, input_range)
            # A bit read drives each row at 0 V or at the full read voltage, so the DAC's own levels do not
            # apply. An ideal DAC with the same range maps a plane value of +-1 to +-read_voltage.
            serial_tile = eqx.tree_at(lambda tile: tile.dac, self.tile, DAC(input_range=input_range))
            per_bit = self._product(state, read, planes * input_range, key, serial_tile)
            outputs = jnp.tensordot(significance, per_bit, axes=1)
            if self.tile.dac.straight_through:
                # This term is zero in value and carries only the gradient with respect to x: the stored
                # weights already get theirs from the bit reads.
                noiseless = dataclasses.replace(serial_tile, adc=ADC(), short_term_noise=0.0, output_noise=0.0)
                frozen_state, frozen_read = jax.lax.stop_gradient((state, read))
                analog = self._product(frozen_state, frozen_read, jnp.clip(x, -input_range, input_range), None, noiseless)
                outputs = outputs + (analog - jax.lax.stop_gradient(analog))
        if calibration is not None:
            outputs = outputs * calibration.gain + calibration.offset
        return outputs

    def forward(self, weights, x, t=0.0, *, key: jax.Array):
        """Program `weights`, read at time `t` and return `x @ W`: the three steps in one call."""
        key_program, key_read, key_product = jax.random.split(key, 3)
        state = self.program(weights, key=key_program)
        return self.matmul(state, self.read(state, t, key=key_read), x, key=key_product)

    # Helpers.

    def _blocks(self, weights):
        """Pad the matrix with zeros to whole tiles and return its blocks, shape (block rows, block columns, rows, columns)."""
        grid_rows, grid_columns = self.grid(weights.shape)
        rows, columns = self.tile_shape
        padded = jnp.zeros((grid_rows * rows, grid_columns * columns), weights.dtype)
        padded = padded.at[: weights.shape[0], : weights.shape[1]].set(weights)
        return padded.reshape(grid_rows, rows, grid_columns, columns).transpose(0, 2, 1, 3)

    def _block_scales(self, blocks):
        """Return the full-scale weight of each block: the tile's weight_range, or the block's max|W| (1 if all zero)."""
        if self.tile.weight_range is not None:
            return jnp.broadcast_to(jnp.asarray(self.tile.weight_range, blocks.dtype), blocks.shape[:2])
        max_abs = jnp.max(jnp.abs(blocks), axis=(2, 3))
        return jnp.where(max_abs > 0, max_abs, 1.0)

    def _level_tile(self) -> Tile:
        """Return the tile configuration with a weight range of 1, for blocks already in device units."""
        return dataclasses.replace(self.tile, weight_range=1.0)

    def _add_slice_axis(self, tree):
        if self.slicing.weight_slices > 1:
            return tree
        return jax.tree_util.tree_map(lambda leaf: leaf[None], tree)

    def _drop_slice_axis(self, tree):
        if self.slicing.weight_slices > 1:
            return tree
        return jax.tree_util.tree_map(lambda leaf: leaf[0], tree)

    def _check_state(self, state: CoreState) -> None:
        if self.slicing.stores_levels and state.weight_scale is None:
            raise ValueError(
                f"this core stores {self.slicing.negative} weights with bits_per_slice={self.slicing.bits_per_slice}, "
                "but the state was programmed by a core whose tiles map their own blocks; program it with this core"
            )
        if not self.slicing.stores_levels and state.weight_scale is not None:
            raise ValueError(
                "the state contains quantized or offset weights, but this core has analog differential weights; "
                "program it with this core, or use the core (and slicing) that programmed it"
            )

    def _product(self, state: CoreState, read: TileRead, x, key, tile: Tile):
        """Return `x @ W` for analog inputs x (..., M) through `tile`, summed over tiles and slices in digital."""
        n = state.shape[1]
        grid_rows, grid_columns = self.grid(state.shape)
        rows, columns = self.tile_shape
        batch = x.shape[:-1]
        padded = jnp.zeros((*batch, grid_rows * rows), x.dtype).at[..., : state.shape[0]].set(x)
        segments = jnp.moveaxis(padded.reshape(*batch, grid_rows, rows), -2, 0)  # (grid_rows, ..., rows)

        if not self.slicing.stores_levels:
            partial = _tile_products(tile, read, segments, key)  # (grid_rows, grid_columns, ..., columns)
            summed = jnp.sum(partial, axis=0)  # digital accumulation over the block rows
        else:
            slices = self.slicing.weight_slices
            slice_keys = None if key is None else jax.random.split(key, slices)
            over_slices = jax.vmap(
                lambda slice_read, slice_key: _tile_products(tile, slice_read, segments, slice_key),
                in_axes=(0, 0 if slice_keys is not None else None),
            )
            partial = over_slices(self._add_slice_axis(read), slice_keys)  # (slices, grid_rows, grid_columns, ..., columns)
            if self.slicing.negative == "offset":
                partial = partial[..., :-1] - partial[..., -1:]  # subtract the reference column in digital
            significance = jnp.asarray(self.slicing.slice_significance(), partial.dtype)
            gains = significance[:, None, None] * state.weight_scale[None]
            gains = gains.reshape(gains.shape + (1,) * (partial.ndim - 3))
            # Shift and add of the slices, then accumulation over the block rows.
            summed = jnp.sum(partial * gains, axis=(0, 1))
        return jnp.moveaxis(summed, 0, -2).reshape(*batch, grid_columns * columns)[..., :n]


def _as_matrix(weights):
    weights = jnp.asarray(weights, jnp.result_type(float))
    if weights.ndim != 2:
        raise ValueError(f"weights must be a 2-D (rows x columns) matrix, got shape {weights.shape}")
    return weights


def _grid_keys(key, shape):
    """Split `key` into one key per tile, stacked with `shape`."""
    return jax.random.split(key, math.prod(shape)).reshape(shape)


def _tile_products(tile: Tile, read: TileRead, segments, key):
    """Return every tile's digitized partial sums, shape (block rows, block columns, ..., tile columns)."""
    grid_rows, grid_columns = read.g_diff.shape[:2]
    keys = None if key is None else _grid_keys(key, (grid_rows, grid_columns))

    def one_tile(tile_read, segment, tile_key):
        return tile.matmul(tile_read, segment, key=tile_key)

    over_columns = jax.vmap(one_tile, in_axes=(0, None, 0 if keys is not None else None))
    over_grid = jax.vmap(over_columns, in_axes=(0, 0, 0 if keys is not None else None))
    return over_grid(read, segments, keys)


def _read_single_devices(tile: Tile, state: TileState, t, *, key: jax.Array) -> TileRead:
    """Read a tile of offset weights at time t (s): one device (G+) per cell, the pair's G- left unread.

    The returned `g_diff` is that device's conductance, so the column currents include g_min and the
    offset, as they do on the chip before the reference column is subtracted.
    """
    check_time("read time t", t)
    if jnp.ndim(t) != 0:
        raise ValueError(f"read time t must be a scalar, got shape {jnp.shape(t)}")
    key_pos, _ = jax.random.split(key)
    g = tile.device.read(state.g_pos, t, key=key_pos)
    noise_off = is_concrete(tile.short_term_noise) and float(tile.short_term_noise) == 0.0
    if tile.drift_compensation:
        total = jnp.sum(g)
        # A fully decayed array (total 0) keeps gain 1 rather than dividing by zero.
        drift_gain = jnp.where(total > 0, state.reference_current / jnp.where(total > 0, total, 1.0), 1.0)
    else:
        drift_gain = jnp.ones((), g.dtype)
    wired = tile.parasitics is not None
    return TileRead(
        g_diff=g, g_square=None if noise_off else g * g, drift_gain=drift_gain, weight_scale=state.weight_scale,
        g_pos=g if wired else None, g_neg=jnp.zeros_like(g) if wired else None,
    )
