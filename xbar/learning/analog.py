"""Networks whose products run on crossbar tiles, for hardware-aware training.

`AnalogNetwork` computes the product x @ W of every layer through a `Tile`, as a deployed chip would. The
float weights are programmed (write noise), read at a time t after programming (drift and accumulated
read noise), and multiplied (DAC, short-term noise, output noise, ADC). The bias and the activation are
digital. Every call draws new noise from its key. The noise enters as reparameterized samples (mean +
standard deviation x a fixed normal draw), so gradients reach the weights and every float parameter of
the tile and its device. Joshi et al. (Nature Communications 11, 2473 (2020)) show that a network must be
trained for device variability and noise to keep its accuracy once mapped onto PCM; `xbar.learning.training`
runs that training.

What the forward model does to gradients:
    - DAC and ADC rounding passes straight-through gradients: the rounding is invisible to `grad`, and
      inputs or currents beyond the converter's range, which saturate, pass zero gradient (the
      straight-through estimator of Bengio, Leonard and Courville, arXiv:1308.3432 (2013)).
    - Weights beyond the tile's `weight_range` are clipped when mapped to conductances and pass zero
      gradient. `AnalogNetwork.clip_weights`, given to `train` as `project`, puts them back into the range
      after every update.
    - The read time is either fixed or drawn per call from `LogUniformReadTime`, so that training covers
      the drift of the whole deployment horizon.

Device and circuit parameters: `eqx.filter_grad` differentiates only array leaves, so pass the network
through `as_arrays` first to differentiate with respect to g_max, read_voltage, ADC range and the rest.

The activations and the im2col of the convolution are those of `xbar.crossbar.layers`.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Sequence

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from .. import _random
from .._validation import check_finite, check_positive, check_time, is_concrete
from ..crossbar.layers import ACTIVATIONS, Conv2D, _activation_function
from ..crossbar.tile import Tile

__all__ = [
    "AnalogConv2D", "AnalogDense", "AnalogNetwork", "LogUniformReadTime", "analog_matmul", "as_arrays",
    "with_straight_through",
]

# Read times.


class LogUniformReadTime(eqx.Module):
    """Read times drawn log-uniformly between `t_min` and `t_max` (s after programming).

    Every decade of the deployment horizon gets the same share of the draws. Power-law drift changes
    the conductance by similar factors per decade, so a horizon of 1 s to 1 year weights the first
    minute as much as the last months.

    Attributes:
        t_min: minimum read time, s (> 0).
        t_max: maximum read time, s (>= t_min).
    """

    t_min: float
    t_max: float

    def __check_init__(self):
        check_positive("LogUniformReadTime t_min", self.t_min, "s")
        check_positive("LogUniformReadTime t_max", self.t_max, "s")
        if is_concrete((self.t_min, self.t_max)) and float(self.t_max) < float(self.t_min):
            raise ValueError(
                f"LogUniformReadTime t_max ({float(self.t_max)} s) must be >= t_min ({float(self.t_min)} s); "
                "swap them"
            )

    def sample(self, key: jax.Array):
        """Draw one read time (s, scalar) from `key`."""
        dtype = jnp.result_type(float)
        log_min = jnp.log(jnp.asarray(self.t_min, dtype))
        log_max = jnp.log(jnp.asarray(self.t_max, dtype))
        return jnp.exp(log_min + jax.random.uniform(key, (), dtype) * (log_max - log_min))


def _check_read_time(read_time) -> None:
    if isinstance(read_time, LogUniformReadTime):
        return
    if jnp.ndim(read_time) != 0:
        raise ValueError(
            f"read_time must be a scalar time in s or a LogUniformReadTime, got shape {jnp.shape(read_time)}"
        )
    check_time("read_time", read_time)


def _draw_read_time(read_time, key):
    if isinstance(read_time, LogUniformReadTime):
        return read_time.sample(key)
    return jnp.asarray(read_time, jnp.result_type(float))


# The forward model of one product.


def with_straight_through(tile: Tile) -> Tile:
    """Return `tile` with straight-through gradients in its DAC and ADC rounding.

    The forward values are unchanged. Converters without bits do not round and are kept as they are.
    """
    dac, adc = tile.dac, tile.adc
    if dac.bits is not None and not dac.straight_through:
        dac = dataclasses.replace(dac, straight_through=True)
    if adc.bits is not None and not adc.straight_through:
        adc = dataclasses.replace(adc, straight_through=True)
    return eqx.tree_at(lambda t: (t.dac, t.adc), tile, (dac, adc))


def _check_tile(tile, owner: str) -> None:
    if not isinstance(tile, Tile):
        raise ValueError(f"{owner} tile must be a Tile instance, got {tile!r}")
    if tile.verify is not None or tile.program_by_pulses:
        raise ValueError(
            f"{owner} tile programs with program-and-verify, a while loop that grad cannot differentiate; "
            "use a tile with verify=None and program_by_pulses=False for training"
        )


def _tile_product(tile: Tile, weights, x, t, key):
    """Program `weights`, read them at time t and return x @ W, with straight-through converters."""
    return with_straight_through(tile).forward(weights, x, t, key=key)


def analog_matmul(tile: Tile, weights, x, *, key: jax.Array, read_time=0.0):
    """Return x @ weights computed through `tile`: program, read at `read_time`, then the product.

    Each call programs the weights anew and draws all noise from `key`, so it is one sample of a
    freshly programmed chip. The DAC and ADC pass straight-through gradients (`with_straight_through`).

    Args:
        tile: the tile model (device, converters, noise, weight_range).
        weights: matrix W, shape (M, N).
        x: inputs, shape (..., M).
        key: PRNG key of the programming, read and product noise.
        read_time: time after programming in s, or a `LogUniformReadTime` to draw it from `key`.

    Returns:
        The product in weight units, shape (..., N).
    """
    _check_tile(tile, "analog_matmul")
    _check_read_time(read_time)
    key_time, key_product = jax.random.split(key)
    return _tile_product(tile, weights, x, _draw_read_time(read_time, key_time), key_product)


def as_arrays(tree):
    """Return `tree` with every Python float leaf turned into a JAX array of the default float dtype.

    `eqx.filter_grad` and `eqx.filter_jit` trace only array leaves. After this call they also trace the
    float parameters of a tile or device, such as g_max or read_voltage.
    """
    dtype = jnp.result_type(float)
    return jax.tree_util.tree_map(lambda leaf: jnp.asarray(leaf, dtype) if isinstance(leaf, float) else leaf, tree)


# Layers and networks.


def _check_activation(activation, owner: str) -> None:
    if isinstance(activation, str):
        if activation not in ACTIVATIONS:
            raise ValueError(f"{owner} activation {activation!r} is unknown; use one of {sorted(ACTIVATIONS)} or a function")
    elif not callable(activation):
        raise ValueError(f"{owner} activation must be a name from {sorted(ACTIVATIONS)} or a function, got {activation!r}")


def _check_size(name: str, value) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
    return int(value)


def _pair(name: str, value) -> tuple[int, int]:
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        value = (value, value)
    if not isinstance(value, (tuple, list)) or len(value) != 2:
        raise ValueError(f"{name} must be an integer or a pair (height, width) of integers, got {value!r}")
    return _check_size(name, value[0]), _check_size(name, value[1])


def _initial_weights(key, shape, fan_in: int, activation, tile: Tile):
    """Draw He-normal weights for ReLU layers, LeCun-normal otherwise, clipped to the weight range."""
    gain = 2.0 if _activation_function(activation) is jax.nn.relu else 1.0
    weights = _random.normal(key, shape, jnp.result_type(float)) * math.sqrt(gain / fan_in)
    if tile.weight_range is not None:
        weights = jnp.clip(weights, -tile.weight_range, tile.weight_range)
    return weights


def _check_layer_params(params, weight_shape: tuple[int, ...], bias_size: int, owner: str) -> None:
    if not isinstance(params, dict) or set(params) != {"weights", "bias"}:
        raise ValueError(f"{owner} parameters must be a dict with keys 'weights' and 'bias', got {params!r}")
    if tuple(jnp.shape(params["weights"])) != weight_shape:
        raise ValueError(f"{owner} weights must have shape {weight_shape}, got {jnp.shape(params['weights'])}")
    if tuple(jnp.shape(params["bias"])) != (bias_size,):
        raise ValueError(f"{owner} bias must have shape ({bias_size},), got {jnp.shape(params['bias'])}")


class AnalogDense(eqx.Module):
    """A fully connected layer activation(x @ W + b) whose product x @ W runs on a tile.

    Attributes:
        inputs: rows of W (static).
        outputs: columns of W (static).
        tile: tile model of the product. The bias and the activation are digital.
        activation: name from `ACTIVATIONS` or a function of one array (static, default "identity").
    """

    inputs: int = eqx.field(static=True)
    outputs: int = eqx.field(static=True)
    tile: Tile = Tile()
    activation: str | Callable = eqx.field(static=True, default="identity")

    def __check_init__(self):
        _check_size("AnalogDense inputs", self.inputs)
        _check_size("AnalogDense outputs", self.outputs)
        _check_tile(self.tile, "AnalogDense")
        _check_activation(self.activation, "AnalogDense")

    @property
    def weight_shape(self) -> tuple[int, int]:
        return (self.inputs, self.outputs)

    def init(self, key: jax.Array) -> dict:
        """Return initial parameters {"weights": (inputs, outputs), "bias": (outputs,)}."""
        weights = _initial_weights(key, self.weight_shape, self.inputs, self.activation, self.tile)
        return {"weights": weights, "bias": jnp.zeros(self.outputs, weights.dtype)}

    def check_input(self, x) -> None:
        """Raise ValueError unless the last axis of `x` has `inputs` elements."""
        if jnp.ndim(x) < 1 or jnp.shape(x)[-1] != self.inputs:
            raise ValueError(
                f"AnalogDense input has shape {jnp.shape(x)} but the layer has {self.inputs} inputs; "
                f"the last axis must have length {self.inputs}"
            )

    def __call__(self, params: dict, x, t, *, key: jax.Array):
        """Return activation(x @ W + b) for x of shape (..., inputs), with the tile read at time t (s)."""
        y = _tile_product(self.tile, params["weights"], x, t, key) + params["bias"]
        return _activation_function(self.activation)(y)

    def software(self, params: dict, x):
        """Return activation(x @ W + b) in floating point, without the tile."""
        return _activation_function(self.activation)(x @ params["weights"] + params["bias"])


class AnalogConv2D(eqx.Module):
    """A 2-D convolution run as im2col on a tile, then bias and activation in digital.

    The kernel (kernel height, kernel width, input channels, output channels) is stored on the tile as the
    matrix of `xbar.crossbar.layers.Conv2D.kernel_matrix`: one row per (input channel, kernel row, kernel
    column), the feature order of `jax.lax.conv_general_dilated_patches`, and one column per output
    channel. Each output pixel is one
    product of its patch. Images are channels-last (N, H, W, C). With an ideal tile the layer equals
    `jax.lax.conv_general_dilated` with dimension numbers ("NHWC", "HWIO", "NHWC").

    Attributes:
        in_channels: input channels (static).
        out_channels: output channels, the tile's columns (static).
        kernel_size: kernel (height, width) (static; an int sets both).
        tile: tile model of the product.
        stride: step between patches, (height, width) (static; default 1).
        padding: "VALID" (default) or "SAME" (static).
        activation: name from `ACTIVATIONS` or a function of one array (static, default "relu").
    """

    in_channels: int = eqx.field(static=True)
    out_channels: int = eqx.field(static=True)
    kernel_size: tuple[int, int] = eqx.field(static=True)
    tile: Tile
    stride: tuple[int, int] = eqx.field(static=True)
    padding: str = eqx.field(static=True)
    activation: str | Callable = eqx.field(static=True)

    def __init__(self, in_channels: int, out_channels: int, kernel_size, tile: Tile = Tile(), *, stride=1,
                 padding: str = "VALID", activation: str | Callable = "relu"):
        self.in_channels = _check_size("AnalogConv2D in_channels", in_channels)
        self.out_channels = _check_size("AnalogConv2D out_channels", out_channels)
        self.kernel_size = _pair("AnalogConv2D kernel_size", kernel_size)
        _check_tile(tile, "AnalogConv2D")
        self.tile = tile
        self.stride = _pair("AnalogConv2D stride", stride)
        if padding not in ("VALID", "SAME"):
            raise ValueError(f'AnalogConv2D padding must be "VALID" or "SAME", got {padding!r}')
        self.padding = padding
        _check_activation(activation, "AnalogConv2D")
        self.activation = activation

    @property
    def weight_shape(self) -> tuple[int, int, int, int]:
        return (*self.kernel_size, self.in_channels, self.out_channels)

    def init(self, key: jax.Array) -> dict:
        """Return initial parameters {"weights": (kh, kw, in_channels, out_channels), "bias": (out_channels,)}."""
        fan_in = self.kernel_size[0] * self.kernel_size[1] * self.in_channels
        weights = _initial_weights(key, self.weight_shape, fan_in, self.activation, self.tile)
        return {"weights": weights, "bias": jnp.zeros(self.out_channels, weights.dtype)}

    def check_input(self, x) -> None:
        """Raise ValueError unless `x` is a batch of images (N, H, W, in_channels)."""
        if jnp.ndim(x) != 4 or jnp.shape(x)[-1] != self.in_channels:
            raise ValueError(
                f"AnalogConv2D input must have shape (images, height, width, {self.in_channels}), "
                f"got {jnp.shape(x)}"
            )

    def __call__(self, params: dict, x, t, *, key: jax.Array):
        """Return activation(conv(x, kernel) + b) for images x (N, H, W, C_in), the tile read at time t (s)."""
        im2col = Conv2D(kernel_size=self.kernel_size, stride=self.stride, padding=self.padding)
        patches = im2col.patches(x)
        y = _tile_product(self.tile, im2col.kernel_matrix(params["weights"]), patches, t, key) + params["bias"]
        return _activation_function(self.activation)(y)

    def software(self, params: dict, x):
        """Return activation(conv(x, kernel) + b) in floating point, without the tile."""
        y = jax.lax.conv_general_dilated(
            x, params["weights"], self.stride, self.padding, dimension_numbers=("NHWC", "HWIO", "NHWC"),
            precision=jax.lax.Precision.HIGHEST,
        )
        return _activation_function(self.activation)(y + params["bias"])


class AnalogNetwork(eqx.Module):
    """A feed-forward network of `AnalogConv2D` and `AnalogDense` layers, each on its own tile.

    Convolutions come first. The first dense layer after a convolution flattens each image (H, W, C) in
    row-major order. Parameters are a tuple with one dict {"weights", "bias"} per layer, the pytree that
    `init` returns and optax updates.

    One call programs every layer, reads all of them at one time t and runs the batch through them.
    Calls with the same key and different read times see the same programmed devices (write noise and
    drift exponents), read at the two times.

    Attributes:
        layers: the layers, in order.
        read_time: read time after programming used when a call passes none: s, or a
            `LogUniformReadTime` drawn once per call (default 0 s).
    """

    layers: tuple[AnalogConv2D | AnalogDense, ...]
    read_time: float | LogUniformReadTime

    def __init__(self, layers: Sequence[AnalogConv2D | AnalogDense], read_time: float | LogUniformReadTime = 0.0):
        layers = tuple(layers)
        if not layers:
            raise ValueError("AnalogNetwork needs at least one layer")
        for index, layer in enumerate(layers):
            if not isinstance(layer, (AnalogConv2D, AnalogDense)):
                raise ValueError(f"AnalogNetwork layer {index} must be an AnalogConv2D or AnalogDense, got {layer!r}")
        for index, (before, after) in enumerate(zip(layers, layers[1:]), start=1):
            _check_consecutive(before, after, index)
        _check_read_time(read_time)
        self.layers = layers
        self.read_time = read_time

    @classmethod
    def mlp(cls, sizes: Sequence[int], tile: Tile | Sequence[Tile] = Tile(), *, activation: str | Callable = "relu",
            read_time: float | LogUniformReadTime = 0.0) -> AnalogNetwork:
        """Build a multilayer perceptron with layer sizes (inputs, hidden..., outputs).

        Hidden layers use `activation`, the output layer none (it returns logits). `tile` is the tile of
        every layer, or a sequence of one tile per layer (for example with different DAC input ranges).
        """
        sizes = tuple(sizes)
        if len(sizes) < 2:
            raise ValueError(f"mlp sizes must list at least the inputs and the outputs, got {sizes!r}")
        count = len(sizes) - 1
        tiles = (tile,) * count if isinstance(tile, Tile) else tuple(tile)
        if len(tiles) != count:
            raise ValueError(f"mlp with {count} layers needs one tile or {count} tiles, got {len(tiles)}")
        layers = [
            AnalogDense(sizes[i], sizes[i + 1], tiles[i], activation if i < count - 1 else "identity")
            for i in range(count)
        ]
        return cls(layers, read_time)

    def init(self, key: jax.Array) -> tuple[dict, ...]:
        """Return initial parameters, one dict {"weights", "bias"} per layer."""
        keys = jax.random.split(key, len(self.layers))
        return tuple(layer.init(layer_key) for layer, layer_key in zip(self.layers, keys))

    def __call__(self, params: Sequence[dict], x, *, key: jax.Array, read_time=None):
        """Return the network's output for x, every product computed by the tiles.

        Args:
            params: one dict {"weights", "bias"} per layer.
            x: inputs (N, inputs) for an MLP or images (N, H, W, C) for a network that starts with a
                convolution.
            key: PRNG key of the read time and of all device and circuit noise.
            read_time: time after programming in s, or a `LogUniformReadTime`; None uses the network's.
        """
        self._check_params(params)
        read_time = self.read_time if read_time is None else read_time
        _check_read_time(read_time)
        x = jnp.asarray(x, jnp.result_type(float))
        self.layers[0].check_input(x)
        check_finite("network input x", x, "remove NaN or infinite inputs")

        key_time, key_layers = jax.random.split(key)
        t = _draw_read_time(read_time, key_time)
        layer_keys = jax.random.split(key_layers, len(self.layers))
        previous = None
        for layer, layer_params, layer_key in zip(self.layers, params, layer_keys):
            x = self._layer_input(previous, layer, x)
            x = layer(layer_params, x, t, key=layer_key)
            previous = layer
        return x

    def software(self, params: Sequence[dict], x):
        """Return the network's output for x in floating point: no tiles, no noise, no clipping."""
        self._check_params(params)
        x = jnp.asarray(x, jnp.result_type(float))
        self.layers[0].check_input(x)
        previous = None
        for layer, layer_params in zip(self.layers, params):
            x = layer.software(layer_params, self._layer_input(previous, layer, x))
            previous = layer
        return x

    def clip_weights(self, params: Sequence[dict]) -> tuple[dict, ...]:
        """Return `params` with each layer's weights clipped to +-weight_range of its tile.

        Layers whose tile has weight_range=None map max|W| to the full range and are left unchanged.
        """
        clipped = []
        for layer, layer_params in zip(self.layers, params):
            limit = layer.tile.weight_range
            weights = layer_params["weights"]
            if limit is not None:
                weights = jnp.clip(weights, -limit, limit)
            clipped.append({**layer_params, "weights": weights})
        return tuple(clipped)

    @staticmethod
    def _layer_input(previous, layer, x):
        if isinstance(previous, AnalogConv2D) and isinstance(layer, AnalogDense):
            x = x.reshape(*x.shape[:-3], -1)
            layer.check_input(x)
        return x

    def _check_params(self, params) -> None:
        if not isinstance(params, (tuple, list)):
            raise ValueError(
                f"params must be a sequence of {len(self.layers)} dicts, one per layer (as init returns), "
                f"got {type(params).__name__}"
            )
        if len(params) != len(self.layers):
            raise ValueError(
                f"params must be a sequence of {len(self.layers)} dicts, one per layer (as init returns), "
                f"got {len(params)}"
            )
        for index, (layer, layer_params) in enumerate(zip(self.layers, params)):
            bias_size = layer.outputs if isinstance(layer, AnalogDense) else layer.out_channels
            _check_layer_params(layer_params, layer.weight_shape, bias_size, f"layer {index}")


def _check_consecutive(before, after, index: int) -> None:
    if isinstance(after, AnalogConv2D):
        if isinstance(before, AnalogDense):
            raise ValueError(f"AnalogNetwork layer {index} is a convolution after a dense layer; put convolutions first")
        if after.in_channels != before.out_channels:
            raise ValueError(
                f"AnalogNetwork layer {index} has {after.in_channels} input channels but layer {index - 1} "
                f"has {before.out_channels} output channels"
            )
    elif isinstance(before, AnalogDense) and after.inputs != before.outputs:
        raise ValueError(
            f"AnalogNetwork layer {index} has {after.inputs} inputs but layer {index - 1} has {before.outputs} outputs"
        )

