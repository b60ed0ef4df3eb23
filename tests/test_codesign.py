"""Co-design by gradient: parameter handling, gradients against finite differences, and the grid check.

Gradient checks run in float64, switched on inside that test only (`jax.enable_x64(True)` as a context
manager). They use ideal converters and one fixed PRNG key, so the +h and -h evaluations see identical
noise and the objective is smooth away from saturation kinks.
"""

from __future__ import annotations

import math

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from xbar.crossbar import ADC, DAC, Parasitics, Tile
from xbar.devices import PCM
from xbar.learning import AnalogNetwork
from xbar.learning.codesign import (
    PARAMETERS, CodesignProblem, from_log_space, grid_search, optimize, to_log_space,
)

READ_TIME = 3600.0  # s


def teacher_problem(*, sizes=(16, 8, 4), examples=64, converters="noise", energy_weight=1e10, tile=None, seed=3):
    """Return a problem whose labels are the float network's own predictions, so its weights are 'trained'."""
    key_x, key_w = jax.random.split(jax.random.key(seed))
    x = jax.random.uniform(key_x, (examples, sizes[0]), jnp.result_type(float))
    if tile is None:
        tile = Tile(device=PCM(), dac=DAC(6, 1.0), adc=ADC(6, current_range=2e-5), output_noise=2e-7)
    network = AnalogNetwork.mlp(sizes, tile, read_time=READ_TIME)
    weights = network.init(key_w)
    labels = jnp.argmax(network.software(weights, x), axis=1)
    return CodesignProblem(network, weights, x, labels, energy_weight=energy_weight, converters=converters)


# Parameters.


def test_log_space_round_trip():
    physical = {"g_max": 25e-6, "read_voltage": 0.2, "adc_range": np.array([1e-5, 3e-5])}
    logs = to_log_space(physical, layers=2)
    back = from_log_space(logs)
    for name, value in physical.items():
        np.testing.assert_allclose(np.asarray(back[name]), value, rtol=1e-6)


@pytest.mark.parametrize(
    "parameters, message",
    [
        ({"voltage": 0.2}, "unknown co-design parameters"),
        ({"read_voltage": 0.0}, "must be finite and > 0"),
        ({"read_voltage": -0.1}, "must be finite and > 0"),
        ({"adc_range": float("nan")}, "must be finite and > 0"),
        ({"dac_range": np.ones(3)}, "scalar or 2 values"),
        ({"dac_range": np.ones((2, 2))}, "scalar or 2 values"),
    ],
)
def test_log_space_rejects_invalid(parameters, message):
    with pytest.raises(ValueError, match=message):
        to_log_space(parameters, layers=2)


def test_tiles_set_every_parameter():
    problem = teacher_problem()
    physical = {
        "g_max": 10e-6, "read_voltage": 0.3, "dac_range": np.array([1.0, 4.0]), "adc_range": 5e-6,
        "word_line": 1.5, "bit_line": 2.5,
    }
    tiles = problem.tiles(physical)
    for index, tile in enumerate(tiles):
        assert float(tile.device.g_max) == pytest.approx(10e-6)
        assert float(tile.read_voltage) == pytest.approx(0.3)
        assert float(tile.dac.input_range) == pytest.approx(physical["dac_range"][index])
        assert float(tile.adc.current_range) == pytest.approx(5e-6)
        assert tile.adc.bits == 6
        assert float(tile.parasitics.word_line) == pytest.approx(1.5)
        assert float(tile.parasitics.bit_line) == pytest.approx(2.5)


def test_g_max_keeps_on_off_ratio():
    tile = Tile(device=PCM(g_min=1e-6, g_max=20e-6))
    problem = teacher_problem(tile=tile)
    device = problem.tiles({"g_max": 40e-6})[0].device
    assert float(device.g_max) == pytest.approx(40e-6)
    assert float(device.g_min) == pytest.approx(2e-6)


def test_bit_line_alone_needs_wires():
    problem = teacher_problem()
    with pytest.raises(ValueError, match="also pass word_line"):
        problem.tiles({"bit_line": 1.0})


def test_word_line_keeps_other_resistances():
    tile = Tile(device=PCM(), parasitics=Parasitics(word_line=1.0, bit_line=3.0, driver=50.0, sense=20.0))
    wires = teacher_problem(tile=tile).tiles({"word_line": 2.0})[0].parasitics
    assert float(wires.word_line) == pytest.approx(2.0)
    assert float(wires.bit_line) == pytest.approx(3.0)
    assert float(wires.driver) == pytest.approx(50.0)
    assert float(wires.sense) == pytest.approx(20.0)


# Problem checks.


@pytest.mark.parametrize(
    "change, message",
    [
        ({"converters": "rounded"}, "converters must be one of"),
        ({"samples": 0}, "samples must be an integer >= 1"),
        ({"energy_weight": -1.0}, "energy_weight must be finite and >= 0"),
        ({"y": jnp.zeros(5, jnp.int32)}, "one integer label per example"),
        ({"y": jnp.zeros(64)}, "integer class labels"),
        ({"x": jnp.zeros((64, 15))}, "last axis must have length 16"),
    ],
)
def test_problem_rejects_invalid(change, message):
    problem = teacher_problem()
    fields = dict(
        network=problem.network, weights=problem.weights, x=problem.x, y=problem.y,
        energy_weight=problem.energy_weight, converters=problem.converters,
    )
    fields.update(change)
    with pytest.raises(ValueError, match=message):
        CodesignProblem(**fields)


# Gradients.


def test_gradients_match_finite_differences():
    # One layer keeps the float64 compilation short; per-layer values are checked in test_tiles_set_every_parameter.
    with jax.enable_x64(True):
        tile = Tile(
            device=PCM(), dac=DAC(8, 1.0), adc=ADC(8, current_range=4e-6), output_noise=1e-8,
            parasitics=Parasitics(word_line=2.0),
        )
        problem = teacher_problem(sizes=(6, 3), examples=8, converters="ideal", energy_weight=1e9, tile=tile)
        # The DAC and ADC ranges are small enough that some inputs and outputs saturate, so the loss
        # depends on them.
        physical = {
            "g_max": 20e-6, "read_voltage": 0.2, "dac_range": 0.8, "adc_range": 1e-6, "word_line": 20.0,
            "bit_line": 30.0,
        }
        logs = to_log_space(physical, layers=1)
        key = jax.random.key(1)
        objective = eqx.filter_jit(lambda logs, key: problem.objective(logs, key))
        gradient = eqx.filter_jit(jax.grad(lambda logs, key: problem.objective(logs, key)))(logs, key)

        step = 1e-5  # in log space: a relative change of 1e-5
        for name in PARAMETERS:
            plus = objective({**logs, name: logs[name] + step}, key)
            minus = objective({**logs, name: logs[name] - step}, key)
            numeric = float((plus - minus) / (2 * step))
            analytic = float(gradient[name])
            assert math.isfinite(analytic), name
            assert analytic != 0.0, name
            assert analytic == pytest.approx(numeric, rel=1e-4, abs=1e-8), (name, analytic, numeric)


def test_adc_range_gradient_by_converter_model():
    # A range far above every output: nothing saturates. The straight-through model then gives the loss
    # no dependence on the range, while the noise model sees the coarser rounding steps.
    logs = to_log_space({"adc_range": 1e-3})
    key = jax.random.key(0)
    gradients = {}
    for converters in ("straight_through", "noise"):
        problem = teacher_problem(converters=converters, energy_weight=0.0)
        gradients[converters] = float(eqx.filter_jit(jax.grad(lambda logs, key: problem.objective(logs, key)))(logs, key)["adc_range"])
    assert gradients["straight_through"] == 0.0
    assert gradients["noise"] > 0.0


def test_samples_average_draws():
    problem = teacher_problem()
    logs = to_log_space({"read_voltage": 0.05})
    key = jax.random.key(4)
    evaluate = eqx.filter_jit(lambda problem, logs, key: problem.evaluate(logs, key))
    single = evaluate(problem, logs, key)
    averaged = evaluate(
        CodesignProblem(problem.network, problem.weights, problem.x, problem.y, problem.energy_weight, samples=4),
        logs, key,
    )
    assert float(averaged.loss) != float(single.loss)
    assert np.isfinite(float(averaged.objective))


# Optimization against the grid.


def test_gradient_optimum_within_grid_spacing():
    # Loss falls with read voltage (output and rounding noise shrink against the signal) until the outputs
    # saturate the fixed ADC range, and the array-read energy grows as V^2, so the objective has an
    # interior minimum. That minimum is flat: the objective changes by about 1e-3 over two grid steps. The
    # objective of a single noise draw also has shallow local minima where outputs cross the ADC's full
    # scale. In one of them Adam stopped 1.9 grid steps from the grid's best point for this key (more than
    # one step for three of keys 0 to 4). The mean over 4 draws is smooth enough: after 400 steps the
    # optimum was within 0.42 grid steps of the grid's best for each of keys 0 to 4.
    base = teacher_problem()
    problem = CodesignProblem(base.network, base.weights, base.x, base.y, base.energy_weight, samples=4)
    key = jax.random.key(0)
    voltages = np.geomspace(0.02, 2.0, 21)
    grid = grid_search(problem, {"read_voltage": voltages}, key=key, batch_size=7)
    best = grid.best["read_voltage"]
    assert voltages[0] < best < voltages[-1]

    result = optimize(problem, {"read_voltage": 0.5}, key=key, steps=400)
    spacing = math.log(voltages[1] / voltages[0])
    found = float(result.parameters["read_voltage"])
    assert abs(math.log(found / best)) <= spacing, (found, best)
    assert float(result.final.objective) <= grid.best_objective + 1e-3

    objective = grid.dataset["objective"]
    assert objective.dims == ("read_voltage",)
    assert objective.sel(read_voltage=best).item() == pytest.approx(grid.best_objective)
    assert result.history["objective"].shape == (400,)
    assert result.history["read_voltage"][0] == pytest.approx(0.5)


def test_optimize_reproducible_for_key():
    problem = teacher_problem()
    runs = [
        optimize(problem, {"read_voltage": 0.3, "adc_range": 1e-5}, key=jax.random.key(2), steps=5, resample=True)
        for _ in range(2)
    ]
    for name in ("read_voltage", "adc_range"):
        assert np.array_equal(runs[0].parameters[name], runs[1].parameters[name])
    assert np.array_equal(runs[0].history["objective"], runs[1].history["objective"])


def test_optimize_trains_weights_within_range():
    tile = Tile(device=PCM(), weight_range=0.5, dac=DAC(6, 1.0), adc=ADC(6, current_range=2e-5), output_noise=2e-7)
    problem = teacher_problem(tile=tile)
    result = optimize(
        problem, {"read_voltage": 0.2}, key=jax.random.key(0), steps=5, train_weights=True,
        optimizer=optax.adam(0.05),
    )
    changed = any(
        not np.array_equal(np.asarray(new["weights"]), np.asarray(old["weights"]))
        for new, old in zip(result.weights, problem.weights)
    )
    assert changed
    for layer in result.weights:
        assert float(jnp.max(jnp.abs(layer["weights"]))) <= 0.5


def test_optimize_rejects_invalid():
    problem = teacher_problem()
    with pytest.raises(ValueError, match="steps must be an integer >= 1"):
        optimize(problem, {"read_voltage": 0.2}, key=jax.random.key(0), steps=0)
    with pytest.raises(ValueError, match="at least one parameter"):
        optimize(problem, {}, key=jax.random.key(0), steps=1)


def test_grid_search_rejects_invalid():
    problem = teacher_problem()
    key = jax.random.key(0)
    with pytest.raises(ValueError, match="both swept and fixed"):
        grid_search(problem, {"read_voltage": [0.1, 0.2]}, key=key, fixed={"read_voltage": 0.2})
    with pytest.raises(ValueError, match="non-empty 1-D"):
        grid_search(problem, {"read_voltage": []}, key=key)
    with pytest.raises(ValueError, match="must be finite and > 0"):
        grid_search(problem, {"adc_range": [1e-5, 0.0]}, key=key)
