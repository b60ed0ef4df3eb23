"""Neural-network layers mapped onto crossbar cores, with CMOS activations, bias and reshapes in digital.

A `Dense` layer stores its weight matrix (inputs x outputs) on a `Core`. A `Conv2D` layer stores its kernel as
a matrix of (kernel height x kernel width x input channels) rows and one column per output channel. It runs
as im2col: every output pixel's receptive field (a patch) is one input vector of that matrix. The bias and
the activation are applied in digital after the core's digitized outputs. `Flatten` reshapes in digital.
`Sequential` chains layers, programs them from a list of weights and runs a batch through them.

Each layer follows the three steps of a core: `program` (once), `read` at a time t after programming (drift
and accumulated read noise, shared by every product of that read), then `__call__` on any batch of inputs.

Images are channels-last (N, H, W, C), and kernels are (kernel height, kernel width, input channels, output
channels), the layouts of `jax.lax.conv_general_dilated` with dimension numbers ("NHWC", "HWIO", "NHWC").

Wrap repeated calls in `jax.jit`. Run eagerly, the first call for each shape compiles many small operations
one by one: a small Conv2D forward took about 5 s that way against 0.4 s under `jax.jit` (2-core CPU).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from types import MappingProxyType

import equinox as eqx
import jax
import jax.numpy as jnp

from .._validation import check_finite
from .core import Calibration, Core, CoreState
from .tile import TileRead

__all__ = ["ACTIVATIONS", "Conv2D", "Dense", "Flatten", "Layer", "LayerRead", "LayerState", "Sequential"]


def _identity(x):
    return x


# The CMOS activations that a layer accepts by name. Any other callable of one array works too.
ACTIVATIONS: Mapping[str, Callable] = MappingProxyType({
    "identity": _identity,
    "relu": jax.nn.relu,
    "sigmoid": jax.nn.sigmoid,
    "tanh": jnp.tanh,
})


def _check_activation(activation) -> None:
    if isinstance(activation, str):
        if activation not in ACTIVATIONS:
            raise ValueError(
                f"unknown activation {activation!r}; use one of {sorted(ACTIVATIONS)} or pass a callable"
            )
    elif not callable(activation):
        raise ValueError(f"activation must be a name from {sorted(ACTIVATIONS)} or a callable, got {activation!r}")


def _activation_function(activation) -> Callable:
    return ACTIVATIONS[activation] if isinstance(activation, str) else activation


class LayerState(eqx.Module):
    """A programmed layer.

    Attributes:
        core: the programmed core that stores the layer's weight matrix.
        bias: the digital bias added to every output, shape (outputs,), or None.
    """

    core: CoreState
    bias: jax.Array | None


class LayerRead(eqx.Module):
    """A programmed layer read at one time t, shared by every product of that read.

    Attributes:
        state: the programmed layer.
        core: the stacked reads of the core's tiles at time t.
    """

    state: LayerState
    core: TileRead


class Layer(eqx.Module):
    """Base class of the layers that `Sequential` chains.

    A layer with weights programs them onto a core. A layer without weights (`Flatten`) returns None from
    `program` and `read`, and `Sequential` passes it None for its weights.
    """

    @property
    def has_weights(self) -> bool:
        """True when the layer stores weights on a core."""
        return False

    def forward(self, weights, bias, x, t=0.0, *, key: jax.Array):
        """Program, read at time t and apply the layer to x: the three steps in one call."""
        key_program, key_read, key_product = jax.random.split(key, 3)
        state = self.program(weights, bias, key=key_program)
        return self(self.read(state, t, key=key_read), x, key=key_product)

    def program(self, weights=None, bias=None, *, key: jax.Array):
        """Return None: a layer without weights has nothing to program."""
        del key
        if weights is not None or bias is not None:
            raise ValueError(f"{type(self).__name__} has no weights; pass None for it")
        return None

    def read(self, state, t, *, key: jax.Array):
        """Return None: a layer without weights has nothing to read."""
        del state, t, key
        return None

    def __call__(self, read, x, *, key: jax.Array | None = None):
        raise NotImplementedError


def _program_with_bias(core: Core, matrix, bias, outputs: int, layer_name: str, key) -> LayerState:
    if bias is not None:
        bias = jnp.asarray(bias, jnp.result_type(float))
        if bias.shape != (outputs,):
            raise ValueError(f"{layer_name} bias must have shape ({outputs},), one value per output, got {bias.shape}")
        check_finite(f"{layer_name} bias", bias, "remove NaN or infinite values from the bias")
    return LayerState(core=core.program(matrix, key=key), bias=bias)


def _read(core: Core, state: LayerState, t, key) -> LayerRead:
    return LayerRead(state=state, core=core.read(state.core, t, key=key))


class Dense(Layer):
    """A fully connected layer y = activation(x @ W + b): the product on a core, bias and activation in digital.

    Attributes:
        core: the core that stores W (inputs x outputs), split over its tiles.
        activation: CMOS activation applied in digital: "identity", "relu", "sigmoid", "tanh" or any
            callable of one array (static).
    """

    core: Core = Core()
    activation: str | Callable = eqx.field(static=True, default="identity")

    def __check_init__(self):
        if not isinstance(self.core, Core):
            raise ValueError(f"Dense core must be a Core instance, got {self.core!r}")
        _check_activation(self.activation)

    @property
    def has_weights(self) -> bool:
        return True

    def program(self, weights, bias=None, *, key: jax.Array) -> LayerState:
        """Program W (inputs x outputs) onto the core and keep the bias (outputs,) for the digital periphery."""
        weights = jnp.asarray(weights, jnp.result_type(float))
        if weights.ndim != 2:
            raise ValueError(f"Dense weights must be a 2-D (inputs x outputs) matrix, got shape {weights.shape}")
        return _program_with_bias(self.core, weights, bias, weights.shape[1], "Dense", key)

    def read(self, state: LayerState, t, *, key: jax.Array) -> LayerRead:
        """Read the core at time t (s) after programming."""
        return _read(self.core, state, t, key)

    def __call__(self, read: LayerRead, x, *, key: jax.Array | None = None,
                 calibration: Calibration | None = None):
        """Return activation(x @ W + b) for inputs x of shape (..., inputs); the result is (..., outputs)."""
        y = self.core.matmul(read.state.core, read.core, x, key=key, calibration=calibration)
        if read.state.bias is not None:
            y = y + read.state.bias
        return _activation_function(self.activation)(y)


def _pair(value, name: str) -> tuple[int, int]:
    """Return an int or a pair of ints >= 1 as a pair, or raise ValueError naming `name`."""
    pair = (value, value) if isinstance(value, int) and not isinstance(value, bool) else tuple(value)
    if len(pair) != 2 or any(isinstance(n, bool) or not isinstance(n, int) or n < 1 for n in pair):
        raise ValueError(f"Conv2D {name} must be an integer >= 1 or a pair of them (height, width), got {value!r}")
    return pair


def _padding(value):
    """Return "SAME", "VALID" or ((top, bottom), (left, right)) from the accepted forms of `padding`."""
    if isinstance(value, str):
        upper = value.upper()
        if upper not in ("SAME", "VALID"):
            raise ValueError(f'Conv2D padding must be "SAME", "VALID", an integer or pairs of integers, got {value!r}')
        return upper
    if isinstance(value, int) and not isinstance(value, bool):
        pads = ((value, value), (value, value))
    else:
        items = tuple(value)
        if len(items) == 2 and all(isinstance(n, int) and not isinstance(n, bool) for n in items):
            pads = ((items[0], items[0]), (items[1], items[1]))
        else:
            pads = tuple(tuple(pair) for pair in items)
    valid = len(pads) == 2 and all(
        len(pair) == 2 and all(isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in pair) for pair in pads
    )
    if not valid:
        raise ValueError(
            "Conv2D padding must be \"SAME\", \"VALID\", an integer >= 0, a pair (height, width) or pairs "
            f"((top, bottom), (left, right)), got {value!r}"
        )
    return pads


class Conv2D(Layer):
    """A 2-D convolution run as im2col through a core: every output pixel is one product of its patch.

    The core stores the kernel (kernel height, kernel width, input channels, output channels) as a matrix
    with one row per kernel tap and input channel and one column per output channel. One product of the
    core therefore gives all output channels of one pixel. The bias and the activation are applied in
    digital. With an ideal core the layer equals `jax.lax.conv_general_dilated` with dimension
    numbers ("NHWC", "HWIO", "NHWC") followed by the bias and the activation.

    Attributes:
        core: the core that stores the kernel matrix.
        kernel_size: kernel (height, width) (static; an int sets both).
        stride: step between patches, (height, width) (static; default 1).
        padding: "VALID" (default), "SAME", an int, a pair (height, width) or pairs ((top, bottom),
            (left, right)) of zero rows and columns added around the image (static).
        dilation: spacing of the kernel taps, (height, width) (static; default 1).
        activation: CMOS activation applied in digital, as in `Dense` (static).
    """

    core: Core
    kernel_size: tuple[int, int] = eqx.field(static=True)
    stride: tuple[int, int] = eqx.field(static=True)
    padding: str | tuple[tuple[int, int], tuple[int, int]] = eqx.field(static=True)
    dilation: tuple[int, int] = eqx.field(static=True)
    activation: str | Callable = eqx.field(static=True)

    def __init__(self, core: Core = Core(), kernel_size=3, stride=1, padding="VALID", dilation=1,
                 activation: str | Callable = "identity"):
        if not isinstance(core, Core):
            raise ValueError(f"Conv2D core must be a Core instance, got {core!r}")
        _check_activation(activation)
        self.core = core
        self.kernel_size = _pair(kernel_size, "kernel_size")
        self.stride = _pair(stride, "stride")
        self.padding = _padding(padding)
        self.dilation = _pair(dilation, "dilation")
        self.activation = activation

    @property
    def has_weights(self) -> bool:
        return True

    def kernel_matrix(self, kernel):
        """Return the kernel (kh, kw, C_in, C_out) as the matrix (C_in kh kw, C_out) that the core stores.

        The rows are in the order of the patch features of `jax.lax.conv_general_dilated_patches`: input
        channel first, then kernel row, then kernel column.
        """
        kernel = jnp.asarray(kernel, jnp.result_type(float))
        if kernel.ndim != 4 or tuple(kernel.shape[:2]) != self.kernel_size:
            raise ValueError(
                f"Conv2D kernel must have shape (kernel height, kernel width, input channels, output channels) "
                f"with kernel size {self.kernel_size}, got shape {kernel.shape}"
            )
        return jnp.transpose(kernel, (2, 0, 1, 3)).reshape(-1, kernel.shape[3])

    def program(self, weights, bias=None, *, key: jax.Array) -> LayerState:
        """Program the kernel (kh, kw, C_in, C_out) onto the core and keep the bias (C_out,) in digital."""
        matrix = self.kernel_matrix(weights)
        return _program_with_bias(self.core, matrix, bias, matrix.shape[1], "Conv2D", key)

    def read(self, state: LayerState, t, *, key: jax.Array) -> LayerRead:
        """Read the core at time t (s) after programming."""
        return _read(self.core, state, t, key)

    def patches(self, x):
        """Return the patches of images x (..., H, W, C) as vectors, shape (..., H_out, W_out, C kh kw)."""
        x = jnp.asarray(x, jnp.result_type(float))
        if x.ndim < 3:
            raise ValueError(f"Conv2D input must have shape (..., height, width, channels), got shape {x.shape}")
        batch = x.shape[:-3]
        images = x.reshape(-1, *x.shape[-3:])
        # The patches are computed as a convolution; the highest precision keeps the copied pixels exact
        # where the default would round them (TF32 or bfloat16 on GPUs and TPUs).
        patches = jax.lax.conv_general_dilated_patches(
            images, self.kernel_size, self.stride, self.padding, rhs_dilation=self.dilation,
            dimension_numbers=("NHWC", "HWIO", "NHWC"), precision=jax.lax.Precision.HIGHEST,
        )
        return patches.reshape(*batch, *patches.shape[1:])

    def __call__(self, read: LayerRead, x, *, key: jax.Array | None = None,
                 calibration: Calibration | None = None):
        """Return activation(conv(x, kernel) + b) for images x of shape (..., H, W, C_in).

        The result has shape (..., H_out, W_out, C_out).
        """
        rows = read.state.core.shape[0]
        channels = rows // (self.kernel_size[0] * self.kernel_size[1])
        if jnp.ndim(x) >= 1 and jnp.shape(x)[-1] != channels:
            raise ValueError(
                f"Conv2D input has {jnp.shape(x)[-1]} channels (last axis) but the kernel has {channels} input channels"
            )
        patches = self.patches(x)
        y = self.core.matmul(read.state.core, read.core, patches, key=key, calibration=calibration)
        if read.state.bias is not None:
            y = y + read.state.bias
        return _activation_function(self.activation)(y)


class Flatten(Layer):
    """A digital reshape that joins every axis from `start_axis` on into one, as between Conv2D and Dense.

    Attributes:
        start_axis: first axis joined (static; default 1, which keeps the batch axis 0). Use 0 for a single
            sample, for example under `jax.vmap` over samples.
    """

    start_axis: int = eqx.field(static=True, default=1)

    def __check_init__(self):
        if isinstance(self.start_axis, bool) or not isinstance(self.start_axis, int) or self.start_axis < 0:
            raise ValueError(f"Flatten start_axis must be an integer >= 0, got {self.start_axis!r}")

    def __call__(self, read, x, *, key: jax.Array | None = None):
        """Return x with the axes from `start_axis` on joined into one."""
        del read, key
        x = jnp.asarray(x)
        if x.ndim < self.start_axis:
            raise ValueError(
                f"Flatten with start_axis={self.start_axis} needs an input of at least {self.start_axis} axes, "
                f"got shape {x.shape}"
            )
        return x.reshape(*x.shape[: self.start_axis], math.prod(x.shape[self.start_axis:]))


class Sequential(eqx.Module):
    """Layers applied one after the other, each layer with weights on its own core.

    A network takes three steps, like a core: `program` stores every layer's weights (one PRNG key per
    layer), `read` reads all layers at one time t after programming, and `__call__` runs a batch of inputs
    through the reads. `forward` does all three. Under `jax.vmap` over keys, independent chips (programming,
    drift and read noise) run together.

    Layers may share one core or have their own. A DAC with `bits` set, or bit-serial inputs, clips inputs
    beyond the DAC's `input_range`, so a layer whose inputs are larger (the activations of a hidden layer)
    needs a core whose `Tile.dac.input_range` covers them.

    Attributes:
        layers: the layers in order (`Dense`, `Conv2D`, `Flatten` or any other `Layer`).
    """

    layers: tuple[Layer, ...]

    def __init__(self, layers: Sequence[Layer]):
        layers = tuple(layers)
        if not layers:
            raise ValueError("Sequential needs at least one layer")
        for index, layer in enumerate(layers):
            if not isinstance(layer, Layer):
                raise ValueError(
                    f"layer {index} must be a Layer (Dense, Conv2D, Flatten), got {type(layer).__name__}"
                )
        self.layers = layers

    def program(self, parameters: Sequence, *, key: jax.Array) -> tuple:
        """Program every layer and return their states (None for layers without weights).

        Args:
            parameters: one entry per layer: a weight array or a (weights, bias) tuple for a layer with
                weights, None for a layer without.
            key: PRNG key, split into one key per layer.
        """
        parameters = list(parameters)
        if len(parameters) != len(self.layers):
            raise ValueError(
                f"got parameters for {len(parameters)} layers but the network has {len(self.layers)}; pass one "
                "entry per layer (None for layers without weights such as Flatten)"
            )
        # Check every entry before programming any layer, so that a bad entry fails before any device work.
        pairs = []
        for index, (layer, entry) in enumerate(zip(self.layers, parameters)):
            name = f"layer {index} ({type(layer).__name__})"
            if layer.has_weights and entry is None:
                raise ValueError(f"{name} has weights but its parameters are None; pass its weights or (weights, bias)")
            if not layer.has_weights and entry is not None:
                raise ValueError(f"{name} has no weights; pass None for it")
            if isinstance(entry, tuple):
                if len(entry) != 2:
                    raise ValueError(
                        f"{name} parameters must be an array or a (weights, bias) tuple, got {len(entry)} items"
                    )
                pairs.append(entry)
            else:
                pairs.append((entry, None))

        keys = jax.random.split(key, len(self.layers))
        return tuple(
            layer.program(weights, bias, key=layer_key)
            for layer, (weights, bias), layer_key in zip(self.layers, pairs, keys)
        )

    def read(self, states: tuple, t, *, key: jax.Array) -> tuple:
        """Read every layer at time t (s) after programming, one PRNG key per layer."""
        if len(states) != len(self.layers):
            raise ValueError(f"got {len(states)} layer states but the network has {len(self.layers)} layers")
        keys = jax.random.split(key, len(self.layers))
        return tuple(layer.read(state, t, key=k) for layer, state, k in zip(self.layers, states, keys))

    def __call__(self, reads: tuple, x, *, key: jax.Array | None = None):
        """Run x through the layers with the reads of `read`, drawing each layer's product noise from `key`."""
        if len(reads) != len(self.layers):
            raise ValueError(f"got {len(reads)} layer reads but the network has {len(self.layers)} layers")
        keys = [None] * len(self.layers) if key is None else jax.random.split(key, len(self.layers))
        for layer, layer_read, layer_key in zip(self.layers, reads, keys):
            x = layer(layer_read, x, key=layer_key)
        return x

    def forward(self, parameters: Sequence, x, t=0.0, *, key: jax.Array):
        """Program the parameters, read at time t (s) and run x through the network: the three steps in one call."""
        key_program, key_read, key_product = jax.random.split(key, 3)
        states = self.program(parameters, key=key_program)
        return self(self.read(states, t, key=key_read), x, key=key_product)
