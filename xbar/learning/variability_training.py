"""Variability-aware training: the expected loss over Monte Carlo chips with device variation and stuck-at faults.

A network trained in software loses accuracy once its weights sit on devices that differ from one another
and on devices stuck at g_min or g_max. Training with those defects in its loss can route the computation
around them: Chen et al. (DATE 2017, "Accelerator-friendly neural-network training: learning variations and
defects in RRAM crossbar") train against the measured fault and variation map of one chip. Here the chip
is unknown at training time, so the loss is the expected loss over chips, estimated by the mean over K
Monte Carlo chips per step, each drawn inside the loss under `jax.vmap`:

    L(params) = 1/K sum_k loss(chip_k, params, batch, key_k)

Each chip draws, for every layer's tile, per-device parameters (`DeviceVariation.distributions`, through
`xbar.variability.sample_parameters`) and stuck-at faults (`xbar.variability.StuckAtFaults` at
`fault_rate`). The gradient of the mean is the mean of the per-chip gradients. A stuck device reads its
fixed level whatever it was programmed to, so it passes no gradient to its weight. The weight still
learns through the other device of its differential pair when that device works.

Example (the digits MLP with 10 % stuck devices and a 10 % lognormal spread of g_max in training)::

    import jax, optax
    from xbar.crossbar import Tile
    from xbar.learning import AnalogNetwork, train
    from xbar.learning.variability_training import DeviceVariation, variability_aware_loss
    from xbar.variability import LogNormal

    network = AnalogNetwork.mlp((64, 32, 10), Tile(weight_range=1.0))
    variation = DeviceVariation({"g_max": LogNormal(0.1)}, fault_rate=0.1)

    def cross_entropy(chip, params, batch, key):
        x, y = batch
        return optax.softmax_cross_entropy_with_integer_labels(chip(params, x, key=key), y).mean()

    loss_fn = variability_aware_loss(cross_entropy, network, variation, samples=8)
    result = train(loss_fn, network.init(jax.random.key(0)), (x_train, y_train), optimizer=optax.adam(1e-2),
                   steps=400, key=jax.random.key(1), project=network.clip_weights)
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping

import equinox as eqx
import jax
import jax.numpy as jnp

from .._validation import check_positive, is_concrete
from ..variability.faults import StuckAtFaults
from ..variability.sampling import LogNormal, Normal, TruncatedNormal, sample_parameters
from .analog import AnalogConv2D, AnalogNetwork, _check_size

__all__ = ["DeviceVariation", "monte_carlo_losses", "sample_network", "variability_aware_loss"]


@dataclasses.dataclass(frozen=True)
class DeviceVariation:
    """Differences between chips: per-device parameter spreads and the share of stuck devices.

    Attributes:
        distributions: device parameter name (a field of each tile's device, such as "g_max") to a `Normal`,
            `LogNormal` or `TruncatedNormal` around its nominal value. Empty for no parameter variation.
        fault_rate: probability that a device is stuck, at g_min (SA0) or g_max (SA1), in [0, 1].
        sa1_share: share of the stuck devices that are stuck at g_max, in [0, 1] (default 0.5).
        correlation_length: spatial correlation length of the parameter draws in cells, or None for
            independent devices (see `xbar.variability.correlated_normal`).
        max_resamples: redraws of a device whose parameters came out invalid (`sample_parameters`). Under
            `jit` every redraw is traced and computed, so 0 compiles and runs faster where no draw can be
            invalid, such as a `LogNormal` g_max above a g_min of 0 (default 10).
    """

    distributions: Mapping[str, LogNormal | Normal | TruncatedNormal] = dataclasses.field(default_factory=dict)
    fault_rate: float = 0.0
    sa1_share: float = 0.5
    correlation_length: float | None = None
    max_resamples: int = 10

    def __post_init__(self):
        if not isinstance(self.distributions, Mapping):
            raise ValueError(
                f"distributions must be a mapping such as {{'g_max': LogNormal(0.1)}}, got {self.distributions!r}"
            )
        for name, distribution in self.distributions.items():
            if not isinstance(distribution, (LogNormal, Normal, TruncatedNormal)):
                raise ValueError(
                    f"distribution of {name!r} must be Normal, LogNormal or TruncatedNormal, got {distribution!r}"
                )
        for name in ("fault_rate", "sa1_share"):
            value = getattr(self, name)
            if is_concrete(value) and not 0.0 <= float(value) <= 1.0:
                raise ValueError(f"DeviceVariation {name} must be a probability in [0, 1], got {value}")
        if self.correlation_length is not None:
            check_positive("correlation_length", self.correlation_length, "cells")
        if isinstance(self.max_resamples, bool) or not isinstance(self.max_resamples, int) or self.max_resamples < 0:
            raise ValueError(f"DeviceVariation max_resamples must be an integer >= 0, got {self.max_resamples!r}")

    @property
    def has_faults(self) -> bool:
        """False only when `fault_rate` is a concrete 0, so that no fault wrapper is needed."""
        return not (is_concrete(self.fault_rate) and float(self.fault_rate) == 0.0)


def _device_shape(layer) -> tuple[int, int]:
    """Return the (rows, columns) of the tile that contains `layer`'s weight matrix."""
    if isinstance(layer, AnalogConv2D):
        rows = layer.kernel_size[0] * layer.kernel_size[1] * layer.in_channels
        return rows, layer.out_channels
    return layer.inputs, layer.outputs


def sample_network(network: AnalogNetwork, variation: DeviceVariation, key: jax.Array) -> AnalogNetwork:
    """Return `network` on one Monte Carlo chip: every tile's device with sampled parameters and stuck-at faults.

    Each layer's device gets per-device parameters of its tile's shape, drawn from `variation.distributions`
    with its own key. It is then wrapped in `StuckAtFaults` with SA0 and SA1 rates
    fault_rate x (1 - sa1_share) and fault_rate x sa1_share. The fault map is not drawn here: the tile draws
    one per device at every programming, from the key of that call, so the two devices of a pair fail
    independently. The sampled parameters are shared by both devices of a pair (see `sample_parameters`).

    The devices must be the bare models: wrappers such as `StuckAtFaults` or `Endurance` copy g_min and
    g_max at construction, so a parameter sampled on the wrapper would not reach the model inside it.
    Works under `jit` and `vmap`. There, a device whose draw stays invalid after the redraws keeps its
    nominal parameters instead of raising.
    """
    if not isinstance(network, AnalogNetwork):
        raise ValueError(f"sample_network needs an AnalogNetwork, got {network!r}")
    if not isinstance(variation, DeviceVariation):
        raise ValueError(f"variation must be a DeviceVariation, got {variation!r}")
    rate, share = variation.fault_rate, variation.sa1_share
    layer_keys = jax.random.split(key, len(network.layers))
    devices = []
    for layer, layer_key in zip(network.layers, layer_keys):
        device = layer.tile.device
        if isinstance(device, StuckAtFaults):
            raise ValueError(
                "sample_network draws the stuck-at faults itself; give the network tiles whose device is the bare "
                "model and set DeviceVariation.fault_rate instead of wrapping it in StuckAtFaults"
            )
        if variation.distributions:
            device = sample_parameters(
                device, _device_shape(layer), layer_key, variation.distributions,
                correlation_length=variation.correlation_length, max_resamples=variation.max_resamples,
            )
        if variation.has_faults:
            device = StuckAtFaults(device, sa0_rate=rate * (1.0 - share), sa1_rate=rate * share)
        devices.append(device)
    return eqx.tree_at(
        lambda net: tuple(layer.tile.device for layer in net.layers), network, tuple(devices),
    )


def _chip_keys(key: jax.Array, samples: int):
    """Return (device keys, noise keys), shape (samples,) each: chip k uses split(split(key, samples)[k])."""
    keys = jax.vmap(jax.random.split)(jax.random.split(key, samples))
    return keys[:, 0], keys[:, 1]


def monte_carlo_losses(
    sample_loss: Callable,
    network: AnalogNetwork,
    variation: DeviceVariation,
    params,
    batch,
    key: jax.Array,
    *,
    samples: int,
) -> jax.Array:
    """Return the loss of `params` on each of `samples` Monte Carlo chips, shape (samples,).

    Chip k takes keys (key_device, key_noise) = split(split(key, samples)[k]). Its network is
    `sample_network(network, variation, key_device)`, and its loss is
    `sample_loss(chip, params, batch, key_noise)`. The noise key also draws the stuck-at fault maps, at
    programming. The chips run under `jax.vmap`.

    Args:
        sample_loss: sample_loss(chip, params, batch, key) -> scalar, where chip is an `AnalogNetwork`.
        network: the network with the nominal devices.
        variation: what differs between chips.
        params: the network's parameters.
        batch: data passed on to `sample_loss`.
        key: PRNG key of all chips.
        samples: number of chips K (>= 1).
    """
    if not callable(sample_loss):
        raise ValueError(f"sample_loss must be a function sample_loss(chip, params, batch, key), got {sample_loss!r}")
    samples = _check_size("samples", samples)
    device_keys, noise_keys = _chip_keys(key, samples)

    def one_chip(device_key, noise_key):
        chip = sample_network(network, variation, device_key)
        return sample_loss(chip, params, batch, noise_key)

    return jax.vmap(one_chip)(device_keys, noise_keys)


def variability_aware_loss(
    sample_loss: Callable, network: AnalogNetwork, variation: DeviceVariation, *, samples: int
) -> Callable:
    """Return loss_fn(params, batch, key): the mean of `monte_carlo_losses` over `samples` chips.

    The returned function has the signature that `xbar.learning.train` expects, so each training step
    draws `samples` new chips from its step key. A larger K lowers the variance of the gradient estimate
    by 1/K at K times the cost of one forward and backward pass.
    """
    if not callable(sample_loss):
        raise ValueError(f"sample_loss must be a function sample_loss(chip, params, batch, key), got {sample_loss!r}")
    if not isinstance(network, AnalogNetwork):
        raise ValueError(f"variability_aware_loss needs an AnalogNetwork, got {network!r}")
    if not isinstance(variation, DeviceVariation):
        raise ValueError(f"variation must be a DeviceVariation, got {variation!r}")
    samples = _check_size("samples", samples)

    def loss_fn(params, batch, key):
        losses = monte_carlo_losses(sample_loss, network, variation, params, batch, key, samples=samples)
        return jnp.mean(losses)

    return loss_fn
