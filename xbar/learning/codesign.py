"""Co-design by gradient: tune circuit and device parameters of a trained network against task loss and energy.

The objective of a `CodesignProblem` is

    objective = task loss + energy_weight * energy per example,

where the task loss is the mean softmax cross-entropy of an `AnalogNetwork` with fixed weights on a data
set. Every product runs through the network's tiles: programming noise, drift and read noise at the
network's read time, IR drop and converters. The energy is the `xbar.crossbar.cost.tile_cost` total of
every layer divided by the number of examples (J). `jax.grad` of the objective reaches the parameters of
`PARAMETERS`:

    g_max         device conductance range, S. Setting it scales g_min and g_max of the device by the same
                  factor, so the on/off ratio stays fixed and g_min < g_max holds for any positive value.
    read_voltage  row voltage of a full-scale input, V.
    dac_range     DAC input range, in input units (the input that maps to the full read voltage).
    adc_range     ADC full-scale current, A.
    word_line     wire resistance of one word-line segment, ohm (creates `Parasitics` on tiles without them).
    bit_line      wire resistance of one bit-line segment, ohm.

Each value is a scalar shared by every layer (one design for the whole chip, such as one ADC) or one value
per layer, shape (layers,). The optimizer works on the natural logarithm of each value, so every value
stays positive whatever the step, and relative changes get equal steps at any scale. NOTE: no upper
bound applies. A device model fitted at one g_max (the PCM model at 25 uS) is extrapolated beyond it,
so check an optimum against the range that the technology reaches.

How the converters enter (`converters`):
    "noise" (default): rounding is replaced by additive Gaussian noise of the rounding error's variance,
        step^2 / 12, the additive-noise model of uniform quantization (Widrow, Kollar and Liu, IEEE
        Transactions on Instrumentation and Measurement 45, 353 (1996)). Saturation at the ranges is kept.
        The loss then rises both when a range is too small (saturation) and when it is too large (coarse
        steps), and its gradient sees both. NOTE: the model holds when a signal spans many steps. For
        signals within a few steps, or converters of 1 or 2 bits, it only approximates the rounding.
    "straight_through": the converters round, and the rounding passes straight-through gradients
        (`with_straight_through`). The gradient with respect to a range then sees saturation only, so it
        pushes ranges up without bound. Use it to train weights, not to tune ranges.
    "ideal": no rounding, saturation kept. For gradient checks against finite differences.

The energy is always that of the converters as configured (their bits), with rounded DAC inputs passing
straight-through gradients. The energy model neglects the dissipation in the wires (see
`xbar.crossbar.cost`), so wire resistance enters the objective only through the loss, and lowering it
always helps: bound it by the wire technology rather than by optimization.

Example (an MLP trained in software, read voltage and one ADC range for all tiles)::

    problem = CodesignProblem(network, weights, x, y, energy_weight=1e9)
    result = optimize(problem, {"read_voltage": 0.2, "adc_range": 2e-5}, key=jax.random.key(0), steps=200)
    grid = grid_search(problem, {"read_voltage": np.geomspace(0.02, 1.0, 25),
                                 "adc_range": np.geomspace(2e-6, 1e-4, 25)}, key=jax.random.key(0))
    print(result.parameters, grid.best)
"""

from __future__ import annotations

import dataclasses
import functools
import itertools
import math
from collections.abc import Callable, Mapping

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import xarray as xr

from .. import _random
from .._validation import check_finite, check_positive, is_concrete
from ..crossbar.cost import CostModel, tile_cost
from ..crossbar.layers import Conv2D, _activation_function
from ..crossbar.parasitics import Parasitics
from ..crossbar.periphery import ADC, DAC
from ..crossbar.tile import Tile
from .analog import AnalogConv2D, AnalogNetwork, _draw_read_time, with_straight_through

__all__ = [
    "CONVERTER_MODELS", "PARAMETERS", "CodesignProblem", "CodesignResult", "CodesignTerms", "GridResult",
    "from_log_space", "grid_search", "optimize", "to_log_space",
]

PARAMETERS = {
    "g_max": "S", "read_voltage": "V", "dac_range": "1", "adc_range": "A", "word_line": "ohm", "bit_line": "ohm",
}
"""Names of the parameters that co-design tunes, with their units."""

CONVERTER_MODELS = ("noise", "straight_through", "ideal")
"""Values of `CodesignProblem.converters`: how the DAC and ADC rounding enters the loss and its gradient."""


# Parameters in log space.


def _check_names(parameters: Mapping) -> None:
    if not isinstance(parameters, Mapping):
        raise ValueError(f"co-design parameters must be a dict of name -> value, got {type(parameters).__name__}")
    unknown = sorted(set(parameters) - set(PARAMETERS))
    if unknown:
        raise ValueError(f"unknown co-design parameters {unknown}; use names from {sorted(PARAMETERS)}")


def to_log_space(parameters: Mapping, layers: int | None = None) -> dict[str, jax.Array]:
    """Return the natural logarithm of each physical value, the variables that `optimize` updates.

    Args:
        parameters: name from `PARAMETERS` -> positive value in its unit, a scalar or one value per layer.
        layers: the number of layers, to check per-layer values (None skips that check).

    Raises:
        ValueError: for an unknown name, a value that is not finite and > 0, or a wrong shape.
    """
    _check_names(parameters)
    logs = {}
    for name, value in parameters.items():
        array = jnp.asarray(value, jnp.result_type(float))
        check_positive(f"co-design parameter {name}", value, PARAMETERS[name])
        if array.ndim > 1 or (layers is not None and array.ndim == 1 and array.shape[0] != layers):
            expected = "a scalar" if layers is None else f"a scalar or {layers} values, one per layer"
            raise ValueError(f"co-design parameter {name} must be {expected}, got shape {array.shape}")
        logs[name] = jnp.log(array)
    return logs


def from_log_space(log_parameters: Mapping) -> dict[str, jax.Array]:
    """Return the physical value of each parameter from its natural logarithm (the inverse of `to_log_space`)."""
    _check_names(log_parameters)
    return {name: jnp.exp(value) for name, value in log_parameters.items()}


def _layer_value(value, index: int):
    return value if jnp.ndim(value) == 0 else value[index]


def _configure_tile(tile: Tile, parameters: Mapping, index: int) -> Tile:
    """Return `tile` with the physical parameters of layer `index` set."""
    if "g_max" in parameters:
        # Scale both ends of the range, so per-device ranges keep their spread and g_min stays below g_max.
        factor = _layer_value(parameters["g_max"], index) / jnp.mean(jnp.asarray(tile.device.g_max))
        tile = eqx.tree_at(
            lambda t: (t.device.g_min, t.device.g_max), tile,
            (tile.device.g_min * factor, tile.device.g_max * factor),
        )
    if "read_voltage" in parameters:
        tile = eqx.tree_at(lambda t: t.read_voltage, tile, _layer_value(parameters["read_voltage"], index))
    if "dac_range" in parameters:
        tile = eqx.tree_at(lambda t: t.dac.input_range, tile, _layer_value(parameters["dac_range"], index))
    if "adc_range" in parameters:
        adc = ADC(tile.adc.bits, _layer_value(parameters["adc_range"], index), tile.adc.straight_through)
        tile = eqx.tree_at(lambda t: t.adc, tile, adc)
    if "word_line" in parameters or "bit_line" in parameters:
        wires = tile.parasitics
        if wires is None and "word_line" not in parameters:
            raise ValueError("bit_line alone cannot add wires to a tile without parasitics; also pass word_line")
        word_line = _layer_value(parameters["word_line"], index) if "word_line" in parameters else wires.word_line
        if "bit_line" in parameters:
            bit_line = _layer_value(parameters["bit_line"], index)
        else:
            # Without wires before, bit lines take the word-line value (the Parasitics default).
            bit_line = None if wires is None else wires.bit_line
        driver, sense = (0.0, 0.0) if wires is None else (wires.driver, wires.sense)
        wires = Parasitics(word_line=word_line, bit_line=bit_line, driver=driver, sense=sense)
        tile = eqx.tree_at(lambda t: t.parasitics, tile, wires, is_leaf=lambda leaf: leaf is None)
    return tile


# Converter models.


def _rounding_rms(bits: int) -> float:
    """Return the RMS rounding error of a `bits`-bit symmetric quantizer, in units of its full scale.

    Uniform rounding error over one step has standard deviation step / sqrt(12). The step is
    1 / (2^(bits-1) - 1) of full scale from 2 bits on; a 1-bit converter jumps 2 full scales.
    """
    step = 2.0 if bits == 1 else 1.0 / (2 ** (bits - 1) - 1)
    return step / math.sqrt(12.0)


def _smooth_converters(tile: Tile, x, key, *, noise: bool):
    """Return a tile with ideal-rounding converters and the inputs it takes, for "noise" and "ideal".

    The DAC saturation becomes a clip of the inputs, its rounding (with `noise`) Gaussian input noise.
    The ADC keeps its saturation and its rounding becomes output noise added in quadrature.
    """
    dac, adc = tile.dac, tile.adc
    if dac.bits is not None:
        x = jnp.clip(x, -dac.input_range, dac.input_range)
        if noise:
            x = x + dac.input_range * _rounding_rms(dac.bits) * _random.normal(key, x.shape, x.dtype)
    output_noise = tile.output_noise
    if adc.bits is not None and noise:
        output_noise = jnp.sqrt(jnp.square(output_noise) + jnp.square(adc.current_range * _rounding_rms(adc.bits)))
    smooth = eqx.tree_at(
        lambda t: (t.dac, t.adc, t.output_noise), tile,
        (DAC(None, dac.input_range), ADC(None, adc.current_range), output_noise),
    )
    return smooth, x


def _product_and_energy(tile: Tile, matrix, x, t, key, converters: str, cost_model: CostModel):
    """Return x @ matrix through `tile` and the energy of that product (J, all vectors together)."""
    key_program, key_read, key_product, key_dac = jax.random.split(key, 4)
    hardware = with_straight_through(tile)
    if converters == "straight_through":
        model, inputs = hardware, x
    else:
        model, inputs = _smooth_converters(tile, x, key_dac, noise=converters == "noise")
    state = model.program(matrix, key=key_program)
    product = model.matmul(model.read(state, t, key=key_read), inputs, key=key_product)
    energy_tile, energy_inputs, energy_costs = _energy_model(tile, hardware, x, converters, cost_model)
    energy = tile_cost(energy_tile, state, energy_inputs, model=energy_costs).energy.total
    return product, energy


def _energy_model(tile: Tile, hardware: Tile, x, converters: str, cost_model: CostModel):
    """Return the tile, inputs and cost model that `tile_cost` charges for this converter model.

    With "noise" and "ideal" the row drive comes from the clipped, unrounded inputs, so the energy is as
    smooth in the DAC range as the loss. The DAC is still charged for its bits.
    """
    if converters == "straight_through" or tile.dac.bits is None:
        return hardware, x, cost_model
    # The cost model charges `ideal_bits` for a DAC without bits, so that is set to the DAC's bits. An
    # ideal ADC gets the model's ideal bits explicitly; its range does not enter the energy.
    adc = tile.adc
    if adc.bits is None:
        adc = ADC(cost_model.ideal_bits, 1.0 if adc.current_range is None else adc.current_range)
    smooth = eqx.tree_at(lambda t: (t.dac, t.adc), tile, (DAC(None, tile.dac.input_range), adc))
    inputs = jnp.clip(x, -tile.dac.input_range, tile.dac.input_range)
    return smooth, inputs, dataclasses.replace(cost_model, ideal_bits=tile.dac.bits)


# The problem.


class CodesignTerms(eqx.Module):
    """The parts of the co-design objective at one point.

    Attributes:
        objective: loss + energy_weight * energy.
        loss: mean softmax cross-entropy over the examples.
        energy: energy per example of all layers, J.
        accuracy: share of examples whose largest logit is the label.
    """

    objective: jax.Array
    loss: jax.Array
    energy: jax.Array
    accuracy: jax.Array


def _cross_entropy(logits, labels):
    log_probabilities = jax.nn.log_softmax(logits, axis=-1)
    return -jnp.mean(jnp.take_along_axis(log_probabilities, labels[:, None], axis=-1))


class CodesignProblem(eqx.Module):
    """A network with fixed weights, a data set and the weight of energy in the co-design objective.

    Attributes:
        network: the network; its tiles give every parameter that co-design does not set, and its
            `read_time` (fixed or `LogUniformReadTime`) the read time after programming.
        weights: the trained parameters, one dict {"weights", "bias"} per layer (as `network.init` returns).
        x: inputs, shape (examples, ...) as the network takes them.
        y: integer class labels, shape (examples,).
        energy_weight: weight of the energy per example in the objective, 1/J (>= 0). At 1e9 /J an energy
            of 1 nJ per example counts as much as a cross-entropy of 1.
        converters: "noise" (default), "straight_through" or "ideal" (static; see the module docstring).
        samples: Monte Carlo draws of the device and circuit noise averaged in each evaluation (static,
            default 1).
        cost_model: energy constants of `tile_cost`.
    """

    network: AnalogNetwork
    weights: tuple[dict, ...]
    x: jax.Array
    y: jax.Array
    energy_weight: float
    converters: str = eqx.field(static=True, default="noise")
    samples: int = eqx.field(static=True, default=1)
    cost_model: CostModel = CostModel()

    def __check_init__(self):
        if not isinstance(self.network, AnalogNetwork):
            raise ValueError(f"CodesignProblem network must be an AnalogNetwork, got {type(self.network).__name__}")
        if is_concrete(self.weights):
            self.network._check_params(self.weights)
        if is_concrete(self.x):
            self.network.layers[0].check_input(jnp.asarray(self.x))
            check_finite("CodesignProblem x", self.x, "remove NaN or infinite inputs")
        if jnp.ndim(self.y) != 1 or jnp.shape(self.y)[0] != jnp.shape(self.x)[0]:
            raise ValueError(
                f"CodesignProblem y must hold one integer label per example, shape ({jnp.shape(self.x)[0]},), "
                f"got shape {jnp.shape(self.y)}"
            )
        if not jnp.issubdtype(jnp.asarray(self.y).dtype, jnp.integer):
            raise ValueError(f"CodesignProblem y must hold integer class labels, got dtype {jnp.asarray(self.y).dtype}")
        check_positive("CodesignProblem energy_weight", self.energy_weight, "1/J", allow_zero=True)
        if self.converters not in CONVERTER_MODELS:
            raise ValueError(f"CodesignProblem converters must be one of {CONVERTER_MODELS}, got {self.converters!r}")
        if isinstance(self.samples, bool) or not isinstance(self.samples, int) or self.samples < 1:
            raise ValueError(f"CodesignProblem samples must be an integer >= 1, got {self.samples!r}")
        if not isinstance(self.cost_model, CostModel):
            raise ValueError(f"CodesignProblem cost_model must be a CostModel, got {type(self.cost_model).__name__}")

    @property
    def layers(self) -> int:
        return len(self.network.layers)

    def tiles(self, parameters: Mapping) -> tuple[Tile, ...]:
        """Return the tile of every layer with the physical `parameters` (name -> value) set."""
        _check_names(parameters)
        return tuple(_configure_tile(layer.tile, parameters, index) for index, layer in enumerate(self.network.layers))

    def evaluate(self, log_parameters: Mapping, key: jax.Array, weights=None) -> CodesignTerms:
        """Return the objective and its parts at `log_parameters` (name -> log of the value, see `to_log_space`).

        `key` draws the read time and all noise. One key gives the same draws at any parameters, so for
        one key the objective is a deterministic, differentiable function of the parameters.
        `weights` replaces the problem's weights (for joint training).
        """
        weights = self.weights if weights is None else weights
        tiles = self.tiles(from_log_space(log_parameters))
        keys = jax.random.split(key, self.samples)
        losses, energies, accuracies = jax.vmap(lambda k: self._sample(tiles, weights, k))(keys)
        loss, energy, accuracy = jnp.mean(losses), jnp.mean(energies), jnp.mean(accuracies)
        return CodesignTerms(objective=loss + self.energy_weight * energy, loss=loss, energy=energy, accuracy=accuracy)

    def objective(self, log_parameters: Mapping, key: jax.Array, weights=None):
        """Return loss + energy_weight * energy per example at `log_parameters` (see `evaluate`)."""
        return self.evaluate(log_parameters, key, weights).objective

    def _sample(self, tiles, weights, key):
        """Run the data through the tiles once; return the loss, the energy per example (J) and the accuracy."""
        x = jnp.asarray(self.x, jnp.result_type(float))
        key_time, key_layers = jax.random.split(key)
        t = _draw_read_time(self.network.read_time, key_time)
        layer_keys = jax.random.split(key_layers, self.layers)
        energy = jnp.zeros((), x.dtype)
        previous = None
        for layer, tile, layer_weights, layer_key in zip(self.network.layers, tiles, weights, layer_keys):
            x = AnalogNetwork._layer_input(previous, layer, x)
            if isinstance(layer, AnalogConv2D):
                im2col = Conv2D(kernel_size=layer.kernel_size, stride=layer.stride, padding=layer.padding)
                inputs, matrix = im2col.patches(x), im2col.kernel_matrix(layer_weights["weights"])
            else:
                inputs, matrix = x, layer_weights["weights"]
            product, layer_energy = _product_and_energy(
                tile, matrix, inputs, t, layer_key, self.converters, self.cost_model
            )
            x = _activation_function(layer.activation)(product + layer_weights["bias"])
            energy = energy + layer_energy
            previous = layer
        labels = jnp.asarray(self.y)
        accuracy = jnp.mean(jnp.argmax(x, axis=-1) == labels)
        return _cross_entropy(x, labels), energy / x.shape[0], accuracy


# Gradient optimization.


@eqx.filter_jit
def _evaluate_jit(problem: CodesignProblem, log_parameters, key, weights) -> CodesignTerms:
    return problem.evaluate(log_parameters, key, weights)


@functools.cache
def _default_optimizer():
    # One instance, so that the jitted step of every run with the default optimizer is compiled once.
    import optax

    return optax.adam(0.05)


@eqx.filter_jit
def _optimizer_step(problem: CodesignProblem, optimizer, train_weights: bool, variables, opt_state, key):
    """Apply one optimizer step to the log parameters (and the weights with `train_weights`)."""
    import optax

    def objective(trainable):
        log_parameters, weights = trainable if train_weights else (trainable, variables[1])
        terms = problem.evaluate(log_parameters, key, weights)
        return terms.objective, terms

    trainable = variables if train_weights else variables[0]
    (_, terms), grads = jax.value_and_grad(objective, has_aux=True)(trainable)
    updates, opt_state = optimizer.update(grads, opt_state, trainable)
    trainable = optax.apply_updates(trainable, updates)
    if train_weights:
        log_parameters, weights = trainable
        return (log_parameters, problem.network.clip_weights(weights)), opt_state, terms
    return (trainable, variables[1]), opt_state, terms


@dataclasses.dataclass(frozen=True)
class CodesignResult:
    """The outcome of `optimize`.

    Attributes:
        parameters: physical value of every optimized parameter after the last step (NumPy arrays).
        log_parameters: their natural logarithms, the optimizer's variables.
        weights: the network's weights after the last step (unchanged unless `train_weights`).
        history: "objective", "loss", "energy" (J per example) and "accuracy" at every step before its
            update, shape (steps,), plus the physical value of every parameter at every step, shape
            (steps, ...).
        final: the terms of the objective after the last step.
    """

    parameters: dict[str, np.ndarray]
    log_parameters: dict[str, jax.Array]
    weights: tuple[dict, ...]
    history: dict[str, np.ndarray]
    final: CodesignTerms


def optimize(
    problem: CodesignProblem,
    initial: Mapping,
    *,
    key: jax.Array,
    steps: int,
    optimizer=None,
    train_weights: bool = False,
    resample: bool = False,
    progress: Callable[[int, int, float], None] | None = None,
) -> CodesignResult:
    """Minimize the co-design objective over the parameters of `initial` by gradient descent in log space.

    Args:
        problem: the network, data and energy weight.
        initial: name from `PARAMETERS` -> starting physical value, a scalar or one value per layer. Only
            these parameters are optimized; the rest stay as the tiles set them.
        key: PRNG key of the noise. Every step uses this same key unless `resample`, so the run minimizes
            one deterministic function, the one that `grid_search` with the same key evaluates.
        steps: number of optimizer steps (>= 1).
        optimizer: an optax GradientTransformation; None uses `optax.adam(0.05)`, so each step changes a
            parameter by up to about 5 %.
        train_weights: also update the network weights, clipped to each tile's weight range after every
            step (`AnalogNetwork.clip_weights`).
        resample: draw new noise at every step from `fold_in(key, step)`, which minimizes the expected
            objective rather than one draw of it.
        progress: called as progress(step, steps, objective) after every step.

    Raises:
        ValueError: for unknown parameters, values that are not positive, or steps < 1.
        ImportError: when optax is missing.
    """
    try:
        import optax  # noqa: F401  (the step and the default optimizer import it again)
    except ImportError as error:
        raise ImportError('co-design needs optax: pip install "xbar-sim[examples]"') from error
    if not isinstance(problem, CodesignProblem):
        raise ValueError(f"problem must be a CodesignProblem, got {type(problem).__name__}")
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps must be an integer >= 1, got {steps!r}")
    if not initial:
        raise ValueError(f"initial must name at least one parameter to optimize, from {sorted(PARAMETERS)}")
    optimizer = _default_optimizer() if optimizer is None else optimizer

    variables = (to_log_space(initial, problem.layers), problem.weights)
    opt_state = optimizer.init(variables if train_weights else variables[0])

    history = {name: [] for name in ("objective", "loss", "energy", "accuracy", *initial)}
    for index in range(steps):
        for name, value in from_log_space(variables[0]).items():
            history[name].append(np.asarray(value))
        step_key = jax.random.fold_in(key, index) if resample else key
        variables, opt_state, terms = _optimizer_step(problem, optimizer, train_weights, variables, opt_state, step_key)
        for name in ("objective", "loss", "energy", "accuracy"):
            history[name].append(float(getattr(terms, name)))
        if progress is not None:
            progress(index + 1, steps, history["objective"][-1])

    final_key = jax.random.fold_in(key, steps) if resample else key
    final = _evaluate_jit(problem, variables[0], final_key, variables[1])
    return CodesignResult(
        parameters={name: np.asarray(value) for name, value in from_log_space(variables[0]).items()},
        log_parameters=variables[0],
        weights=variables[1],
        history={name: np.asarray(values) for name, values in history.items()},
        final=final,
    )


# Grid search.


@eqx.filter_jit
def _evaluate_points(problem: CodesignProblem, fixed_logs, names: tuple[str, ...], log_points, key) -> CodesignTerms:
    """Evaluate the objective at every row of `log_points` (points, names), the rest set by `fixed_logs`."""

    def one(log_values):
        log_parameters = {**fixed_logs, **{name: log_values[i] for i, name in enumerate(names)}}
        return problem.evaluate(log_parameters, key)

    return jax.vmap(one)(log_points)


@dataclasses.dataclass(frozen=True)
class GridResult:
    """The outcome of `grid_search`.

    Attributes:
        dataset: "objective", "loss", "energy" (J per example) and "accuracy" on the grid, one dimension
            per swept parameter, its coordinate the parameter's values.
        best: the physical values at the grid point of lowest objective.
        best_objective: that objective.
    """

    dataset: xr.Dataset
    best: dict[str, float]
    best_objective: float


def grid_search(
    problem: CodesignProblem, grid: Mapping, *, key: jax.Array, fixed: Mapping | None = None,
    batch_size: int | None = None,
) -> GridResult:
    """Evaluate the co-design objective on the Cartesian product of `grid`; return it and its best point.

    Args:
        problem: the network, data and energy weight.
        grid: name from `PARAMETERS` -> 1-D sequence of positive values, one axis per name. Each value is
            shared by every layer.
        key: PRNG key of the noise, the same at every point (as in `optimize` without `resample`).
        fixed: further parameters set at every point (name -> scalar or per-layer value), or None.
        batch_size: grid points evaluated together under `vmap` (default: all). Smaller batches use less
            memory.

    Raises:
        ValueError: for unknown names, empty or non-positive axes, or a name both swept and fixed.
    """
    if not isinstance(problem, CodesignProblem):
        raise ValueError(f"problem must be a CodesignProblem, got {type(problem).__name__}")
    _check_names(grid)
    if not grid:
        raise ValueError(f"grid must sweep at least one parameter, from {sorted(PARAMETERS)}")
    fixed = {} if fixed is None else dict(fixed)
    both = sorted(set(grid) & set(fixed))
    if both:
        raise ValueError(f"parameters {both} are both swept and fixed; remove them from one of the two")
    axes = {}
    for name, values in grid.items():
        array = np.asarray(values, dtype=float)
        if array.ndim != 1 or array.size == 0:
            raise ValueError(f"grid axis {name} must be a non-empty 1-D sequence of values, got shape {array.shape}")
        check_positive(f"grid axis {name}", array, PARAMETERS[name])
        axes[name] = array
    fixed_logs = to_log_space(fixed, problem.layers)

    points = np.array(list(itertools.product(*axes.values())), dtype=float)  # (points, names)
    dtype = jnp.result_type(float)
    log_points = jnp.log(jnp.asarray(points, dtype))
    names = list(axes)

    size = len(points) if batch_size is None else batch_size
    if isinstance(size, bool) or not isinstance(size, int) or size < 1:
        raise ValueError(f"batch_size must be an integer >= 1 or None, got {batch_size!r}")
    parts = [
        _evaluate_points(problem, fixed_logs, tuple(names), log_points[start:start + size], key)
        for start in range(0, len(points), size)
    ]
    terms = jax.tree_util.tree_map(lambda *leaves: np.concatenate([np.asarray(leaf) for leaf in leaves]), *parts)

    shape = tuple(len(values) for values in axes.values())
    units = {"objective": "1", "loss": "1", "energy": "J", "accuracy": "1"}
    dataset = xr.Dataset(
        {name: (names, np.reshape(getattr(terms, name), shape), {"units": unit}) for name, unit in units.items()},
        coords={name: (name, values, {"units": PARAMETERS[name]}) for name, values in axes.items()},
        attrs={"energy_weight_per_joule": float(problem.energy_weight), "converters": problem.converters},
    )
    best_index = int(np.argmin(terms.objective))
    best = {name: float(points[best_index, i]) for i, name in enumerate(names)}
    return GridResult(dataset=dataset, best=best, best_objective=float(terms.objective[best_index]))
