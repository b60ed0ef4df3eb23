"""Multi-tile cores: a weight matrix of any size split over a grid of equal crossbar tiles.

A layer larger than one array is cut into blocks of `tile_shape` (rows x columns). Each block is programmed
onto its own tile, with its own devices, noise and ADC. For a product x @ W, the input segment of each
block row drives that row of tiles, and every tile digitizes its own partial sums. The partial sums of the
tiles in one block column are then added in digital (CMOS) to give the outputs of that column. The last block
row and column are padded with zero weights, which ideal devices store exactly, so the mapping is exact in
the ideal limit for any matrix shape.

All tiles share one `Tile` configuration, and every per-tile operation runs under `jax.vmap` over the grid.
"""

from __future__ import annotations

import math

import equinox as eqx
import jax
import jax.numpy as jnp

from .tile import Tile, TileRead, TileState

__all__ = ["Calibration", "Core", "CoreState"]


class CoreState(eqx.Module):
    """A programmed core.

    Attributes:
        tiles: the states of all tiles, stacked: every leaf has leading axes (block rows, block columns).
        shape: the shape (M, N) of the weight matrix (static).
    """

    tiles: TileState
    shape: tuple[int, int] = eqx.field(static=True)


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
            `weight_range=None` each tile scales its own block by that block's max|W|, and its digital
            output gain undoes the scale, so the partial sums add up in weight units.
        tile_shape: rows and columns of one tile (static; default 256 x 256).
    """

    tile: Tile = Tile()
    tile_shape: tuple[int, int] = eqx.field(static=True, default=(256, 256))

    def __check_init__(self):
        if not isinstance(self.tile, Tile):
            raise ValueError(f"Core tile must be a Tile instance, got {self.tile!r}")
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
        """Program the weight matrix (M x N) onto the tiles, one independent key per tile."""
        weights = jnp.asarray(weights, jnp.result_type(float))
        if weights.ndim != 2:
            raise ValueError(f"weights must be a 2-D (rows x columns) matrix, got shape {weights.shape}")
        grid_rows, grid_columns = self.grid(weights.shape)
        rows, columns = self.tile_shape
        padded = jnp.zeros((grid_rows * rows, grid_columns * columns), weights.dtype)
        padded = padded.at[: weights.shape[0], : weights.shape[1]].set(weights)
        blocks = padded.reshape(grid_rows, rows, grid_columns, columns).transpose(0, 2, 1, 3)
        keys = jax.random.split(key, grid_rows * grid_columns).reshape(grid_rows, grid_columns)
        program = jax.vmap(jax.vmap(lambda block, k: self.tile.program(block, key=k)))
        return CoreState(tiles=program(blocks, keys), shape=tuple(int(n) for n in weights.shape))

    def read(self, state: CoreState, t, *, key: jax.Array) -> TileRead:
        """Read every tile at time t (s) after programming; the reads are stacked like the tile states."""
        grid_rows, grid_columns = self.grid(state.shape)
        keys = jax.random.split(key, grid_rows * grid_columns).reshape(grid_rows, grid_columns)
        return jax.vmap(jax.vmap(lambda s, k: self.tile.read(s, t, key=k)))(state.tiles, keys)

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

        With `calibration`, each output column is corrected by its gain and offset after the sum.
        """
        m, n = state.shape
        x = jnp.asarray(x, jnp.result_type(float))
        if x.ndim < 1 or x.shape[-1] != m:
            raise ValueError(f"input has shape {x.shape} but the core has {m} rows; the last input axis must have length {m}")
        grid_rows, grid_columns = self.grid(state.shape)
        rows, columns = self.tile_shape
        batch = x.shape[:-1]
        padded = jnp.zeros((*batch, grid_rows * rows), x.dtype).at[..., :m].set(x)
        segments = jnp.moveaxis(padded.reshape(*batch, grid_rows, rows), -2, 0)  # (grid_rows, ..., rows)
        if key is None:
            keys = None
        else:
            keys = jax.random.split(key, grid_rows * grid_columns).reshape(grid_rows, grid_columns)

        def one_tile(tile_read, segment, tile_key):
            return self.tile.matmul(tile_read, segment, key=tile_key)

        over_columns = jax.vmap(one_tile, in_axes=(0, None, 0 if keys is not None else None))
        over_grid = jax.vmap(over_columns, in_axes=(0, 0, 0 if keys is not None else None))
        partial = over_grid(read, segments, keys)  # (grid_rows, grid_columns, ..., columns)
        summed = jnp.sum(partial, axis=0)  # digital accumulation over the block rows
        outputs = jnp.moveaxis(summed, 0, -2).reshape(*batch, grid_columns * columns)[..., :n]
        if calibration is not None:
            outputs = outputs * calibration.gain + calibration.offset
        return outputs

    def forward(self, weights, x, t=0.0, *, key: jax.Array):
        """Program `weights`, read at time `t` and return `x @ W`: the three steps in one call."""
        key_program, key_read, key_product = jax.random.split(key, 3)
        state = self.program(weights, key=key_program)
        return self.matmul(state, self.read(state, t, key=key_read), x, key=key_product)
