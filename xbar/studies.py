"""The workloads behind `xbar sweep`: what one grid point of a study simulates and measures.

- `mvm_error`: relative error ||Y - X W||_F / ||X W||_F of one tile's matrix-vector products over a batch,
  with W and X drawn uniformly per seed and the ideal X W computed in float64.
- `digits`: a two-layer perceptron trained in software on the scikit-learn digits (8 x 8 handwritten
  digits), mapped onto one tile per layer; test accuracy of the mapped network.
- `stdp_digits`: the unsupervised spiking network of Diehl and Cook (Frontiers in Computational
  Neuroscience 9, 99, 2015) learns the training digits without labels, with STDP delivered to the devices
  of one tile as pulses (`xbar.learning.diehl_cook` lists its constants and deviations). Each neuron is then
  labeled with the class to which it responds most on the whole training split, and a test digit takes
  the class whose neurons respond to it most on average. Metrics: test accuracy, and the output rate, pulse rates,
  refresh rate and share of repeated images of training. `array.weight_range` is the largest weight in
  units of the leak conductance (1 in the published network), and the initial weights are uniform in
  [0, initial_weight x weight_range] (published: 0.003 to 0.303). The [workload] defaults are the published
  values, which suit 784 inputs and long training; `examples/stdp_digits.toml` gives the ones for 64
  inputs and short runs.
- `hwa_digits`: a multilayer perceptron or a small convolutional network trained on the digits once in
  software and once with hardware-aware training through the PCM tile model (Joshi et al., Nature
  Communications 11, 2473, 2020), both mapped onto one tile per layer; test accuracy of each
  (`xbar.hwa_digits`).
- `faults_digits`: a multilayer perceptron trained on the digits once in software and once
  variability-aware, minimizing the mean loss over Monte Carlo chips with stuck-at faults and g_max spread,
  both mapped onto tiles with stuck-at faults at `wear.fault_rate`; test accuracy of each
  (`xbar.faults_digits`).

- `pulsed_digits`: a multilayer perceptron trained in situ on the digits, every product on its tiles and
  every weight update as device pulses, by the stochastic pulse-train update of Gokmen and Vlasov
  (Frontiers in Neuroscience 10, 333, 2016) or the mixed-precision update; test accuracy after training.
  Unlike the other digits workloads it trains inside the sweep, at every grid point (`xbar.pulsed_digits`).
Everything traced (programming, reading, products, metrics) runs inside the sweep; data generation,
training and calibration run once, eagerly, before it.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np
import xarray as xr

from . import __version__
from .config import (
    ConfigError, StudyConfig, build_core, build_cost_model, build_device, build_tile, parse_config, uses_core,
)
from .crossbar import COST_VARIABLES, Cost, core_cost, nominal_range, tile_cost, tops_per_watt
from .devices import IdealDevice
from .learning import STDP, Network, Synapses
from .learning.diehl_cook import (
    Presentation, assign_labels, classify, diehl_cook_neurons, spike_counts, train_unsupervised, training_rates,
)
from .variability.store import ChunkStore, StoreError, StoreMismatchError, fingerprint_text
from .variability.sweep import Axis, sweep

logger = logging.getLogger(__name__)

# Default working memory (bytes) of the vectorized points evaluated together in one chunk, per process
# that evaluates chunks. `xbar sweep --memory` sets another.
MEMORY_BUDGET = 1 << 30

# Tags that derive independent streams from one seed's key.
_DATA_STREAM = 1
_DEVICE_STREAM = 2


@dataclass(frozen=True)
class Workload:
    """A study's traced function and what the sweep needs besides it."""

    simulate: Callable  # (sections, key, data) -> dict of metrics
    seed_data: Callable | None
    metric_units: dict[str, str]
    extra: dict[str, Any]  # results computed once (for example the software accuracy)
    extra_attrs: dict[str, dict[str, str]]
    point_bytes: int = 0  # estimated working memory of one grid point, 0 when negligible


def run_study(
    config: StudyConfig,
    *,
    progress=None,
    store=None,
    resume: bool = False,
    memory_budget: int = MEMORY_BUDGET,
    scheduler=None,
) -> xr.Dataset:
    """Run the sweep of a study and return its labeled results.

    Args:
        config: the study.
        progress: `progress(done_points, total_points)`, called before the first chunk and after each one.
        store: folder in which each finished chunk is written (see `xbar.variability.store`). The store
            identifies the study by a hash of `config.text`, so it rejects a changed configuration. The
            folder is kept; delete it once the result is saved.
        resume: continue the sweep in an existing `store` instead of rejecting it.
        memory_budget: working memory, in bytes, of the points that one chunk evaluates together. The
            chunk size is this budget over the workload's estimate of one point's memory. Workloads
            that estimate 0 (negligible) evaluate all points of a looped combination in one chunk.
            With a scheduler, the budget applies to each worker.
        scheduler: dask.distributed scheduler to run the chunks on (needs `store`); see
            `xbar.variability.sweep`.

    Raises:
        ValueError: on an invalid memory_budget, or a store that this study cannot use.
    """
    if isinstance(memory_budget, bool) or not isinstance(memory_budget, int) or memory_budget < 1:
        raise ValueError(f"memory_budget must be a positive number of bytes, got {memory_budget!r}")
    if store is not None and resume:
        # Before the workload is built (some workloads train networks first), so that a changed study
        # file fails at once.
        _check_stored_study(store, config)
    workload = _WORKLOADS[config.sections["study"]["workload"]](config)
    by_name = {axis.name: axis.keys for axis in config.axes}

    def simulate(params, key, data):
        sections = config.with_values({dotted: value for name, value in params.items() for dotted in by_name[name]})
        return workload.simulate(sections, jax.random.fold_in(key, _DEVICE_STREAM), data)

    axes = [
        Axis(name=a.name, values=list(a.values), vectorized=a.vectorized, units=a.units, description=f"{a.key}: {a.description}")
        for a in config.axes
    ]
    attrs = {
        "title": config.name,
        "description": config.sections["study"]["description"],
        "workload": config.sections["study"]["workload"],
        "config": config.text,
        "config_source": config.source,
        "xbar_version": __version__,
    }
    ds = sweep(
        simulate, axes, seeds=list(config.seeds), seed_data=workload.seed_data,
        chunk_size=chunk_size_for_budget(workload.point_bytes, memory_budget),
        metric_units=workload.metric_units, attrs=attrs, progress=progress,
        store=store, resume=resume, fingerprint=fingerprint_text(config.text), scheduler=scheduler,
    )
    for name, value in workload.extra.items():
        ds[name] = xr.DataArray(value, attrs=workload.extra_attrs.get(name, {}))
    return ds


def _check_stored_study(store, config: StudyConfig) -> None:
    """Reject resuming a store written for another study file, naming the keys that changed."""
    try:
        existing = ChunkStore.existing(store)
    except StoreError:
        return  # The sweep itself reports the damaged manifest.
    change = _study_change(existing, config)
    if change is not None:
        raise StoreMismatchError(
            f"sweep store {str(store)!r} was written for a different sweep: {change}. Its chunks cannot be mixed "
            "with this sweep's: restore the original study file to resume, or delete the folder (or choose "
            "another output path) to start over",
            existing.attrs,
        )


def study_file_change(store, config: StudyConfig) -> str | None:
    """Describe how `config` differs from the study file that the sweep store `store` was written for.

    Returns None when the store has the same study file, or when there is no readable store at `store`.
    Otherwise the description names every changed key with its old and new value.
    """
    try:
        return _study_change(ChunkStore.existing(store), config)
    except StoreError:
        return None


def _study_change(existing: ChunkStore | None, config: StudyConfig) -> str | None:
    if existing is None or existing.identity.get("fingerprint") == fingerprint_text(config.text):
        return None
    stored_text = existing.attrs.get("config")
    changes = None if stored_text is None else _changed_keys(stored_text, config)
    if changes is None:
        return "the study file differs from the one that the store was written for"
    if changes:
        return f"the study file changed ({'; '.join(changes)})"
    return "the study file changed in comments or layout only, and its text identifies the study"


def _changed_keys(stored_text: str, config: StudyConfig) -> list[str] | None:
    """List "key: old -> new" for every setting that differs, or None when the old text no longer parses."""
    try:
        stored = parse_config(stored_text)
    except ConfigError:
        return None

    def flat(study):
        entries = {
            f"{section}.{name}": value for section, items in study.sections.items() for name, value in items.items()
            if (section, name) != ("sweep", "axes")
        }
        # Each sweep axis under its own name, so that a change names the axis rather than the whole list.
        entries.update({f"sweep axis {axis.key}": list(axis.values) for axis in study.axes})
        return entries

    old, new = flat(stored), flat(config)
    changes = []
    for key in sorted(set(old) | set(new)):
        if old.get(key) != new.get(key):
            before = json.dumps(old.get(key), default=str)
            after = json.dumps(new.get(key), default=str)
            changes.append(f"{key}: {before} -> {after}" if len(before) + len(after) <= 120 else f"{key} differs")
    return changes


def chunk_size_for_budget(point_bytes: int, memory_budget: int) -> int | None:
    """Return the points per chunk whose estimated working memory fits `memory_budget` (bytes).

    Vectorized points of one chunk run together, so their working memory adds up. Returns None (the
    sweep's default) when `point_bytes` is 0, and 1 when a single point exceeds the budget, which is
    logged as a warning.
    """
    if not point_bytes:
        return None
    if point_bytes > memory_budget:
        logger.warning(
            "one grid point needs about %d bytes, more than the memory budget of %d bytes; evaluating one point "
            "per chunk", point_bytes, memory_budget,
        )
        return 1
    return memory_budget // point_bytes


# mvm_error


def _mvm_error(config: StudyConfig) -> Workload:
    workload = config.sections["workload"]
    shapes = _array_shapes(config)
    rows, cols = max(r for r, _ in shapes), max(c for _, c in shapes)
    batch = workload["batch"]

    def seed_data(seed):
        # One draw at the largest swept shape; a smaller array uses its top-left corner.
        key = jax.random.fold_in(jax.random.key(seed), _DATA_STREAM)
        key_w, key_x = jax.random.split(key)
        weights = jax.random.uniform(key_w, (rows, cols), minval=workload["weights_low"], maxval=workload["weights_high"])
        inputs = jax.random.uniform(key_x, (batch, rows), minval=workload["inputs_low"], maxval=workload["inputs_high"])
        # The ideal product in float64, rounded once to float32: the best float32 reference.
        w64, x64 = np.asarray(weights, np.float64), np.asarray(inputs, np.float64)
        ideal = {f"{r}x{c}": jnp.asarray((x64[:, :r] @ w64[:r, :c]).astype(np.float32)) for r, c in shapes}
        return {"weights": weights, "inputs": inputs, "ideal": ideal}

    def simulate(sections, key, data):
        r, c = sections["array"]["rows"], sections["array"]["cols"]
        weights, inputs, ideal = data["weights"][:r, :c], data["inputs"][:, :r], data["ideal"][f"{r}x{c}"]
        adc_range = _calibrated_adc_range(sections, ideal, weights)
        y, cost = _run_layer(sections, weights, inputs, sections["read"]["time"], adc_range, key)
        error = jnp.linalg.norm(y - ideal) / jnp.linalg.norm(ideal)
        return {"mvm_error": error, **_cost_metrics(cost, batch)}

    # Per point: about 32 float32 arrays of the tile's size (targets, states, noise, reads) and eight of
    # the batch's size, an estimate fitted to the peak memory of a 1024 x 1024 sweep on CPU. With wire
    # resistance the solver of each of the two arrays adds about 16 node-voltage arrays per input vector.
    point_bytes = 4 * (32 * rows * cols + 8 * batch * (rows + cols))
    if _has_wires(config):
        point_bytes += 4 * 2 * 16 * batch * rows * cols
    if config.sections["slicing"]["input_bits"]:
        point_bytes += 4 * 8 * config.sections["slicing"]["input_bits"] * batch * cols
    point_bytes *= config.sections["slicing"]["weight_slices"]
    return Workload(simulate, seed_data, {"mvm_error": "1", **_COST_UNITS}, {}, {}, point_bytes)


# Energy, latency and area of every run, per input vector (xbar.crossbar.cost).

_COST_UNITS = {**COST_VARIABLES, "tops_per_watt": "TOPS/W"}


def _run_layer(sections, weights, x, t, adc_range, key):
    """Program `weights`, read them at time t and return (x @ W, the cost of the products).

    The weights go on one tile of the matrix's size unless `[core]` or `[slicing]` requests a multi-tile
    core or another number representation.
    """
    key_program, key_read, key_product = jax.random.split(key, 3)
    model = build_cost_model(sections)
    if uses_core(sections):
        core = build_core(sections, weights.shape, adc_range=adc_range)
        state = core.program(weights, key=key_program)
        y = core.matmul(state, core.read(state, t, key=key_read), x, key=key_product)
        return y, core_cost(core, state, x, model=model)
    tile = build_tile(sections, adc_range=adc_range)
    state = tile.program(weights, key=key_program)
    y = tile.matmul(tile.read(state, t, key=key_read), x, key=key_product)
    return y, tile_cost(tile, state, x, model=model)


def _cost_metrics(cost: Cost, vectors: int) -> dict:
    """Return the cost variables per input vector (energy, latency, operations) and the core's area."""
    values = cost.as_dict()
    per_vector = {name: value if name.startswith("area") else value / vectors for name, value in values.items()}
    return {**per_vector, "tops_per_watt": tops_per_watt(cost)}


def _array_shapes(config: StudyConfig) -> list[tuple[int, int]]:
    """List every (rows, cols) that the sweep of a study visits."""
    combos = [{}]
    for axis in config.axes:
        touched = [key for key in axis.keys if key in ("array.rows", "array.cols")]
        if touched:
            combos = [{**combo, **{key: value for key in touched}} for combo in combos for value in axis.values]
    default_rows, default_cols = config.get("array.rows"), config.get("array.cols")
    return sorted({(combo.get("array.rows", default_rows), combo.get("array.cols", default_cols)) for combo in combos})


def _has_wires(config: StudyConfig) -> bool:
    swept = {key for axis in config.axes for key in axis.keys}
    return bool({"parasitics.word_line", "parasitics.bit_line"} & swept) or config.get("parasitics.word_line") > 0


def _calibrated_adc_range(sections, ideal_outputs, weights):
    """Return the largest ideal column current (A) of the workload's outputs, for a calibrated ADC range."""
    array, dac = sections["array"], sections["dac"]
    weight_scale = array["weight_range"]
    if isinstance(weight_scale, (int, float)) and weight_scale == 0:
        weight_scale = jnp.max(jnp.abs(weights))
    g_min, g_max = nominal_range(build_device(sections))
    span = g_max - g_min
    amperes_per_unit = array["read_voltage"] * span / (weight_scale * dac["input_range"])
    return jnp.max(jnp.abs(ideal_outputs)) * amperes_per_unit


# digits


def load_digits_split(test_fraction: float, seed: int):
    """Return (x_train, y_train, x_test, y_test) of the scikit-learn digits, pixels scaled to [0, 1]."""
    try:
        from sklearn.datasets import load_digits
    except ImportError as error:
        raise ImportError(
            'the digits workload needs scikit-learn: pip install "xbar-sim[examples]"'
        ) from error
    digits = load_digits()
    x = np.asarray(digits.data, np.float32) / 16.0
    y = np.asarray(digits.target, np.int32)
    order = np.asarray(jax.random.permutation(jax.random.key(seed), len(y)))
    n_test = int(round(test_fraction * len(y)))
    test, train = order[:n_test], order[n_test:]
    return x[train], y[train], x[test], y[test]


def train_perceptron(x, y, *, hidden: int, steps: int, learning_rate: float, seed: int):
    """Train a two-layer ReLU perceptron with Adam (optax) on full batches; return its parameters."""
    try:
        import optax
    except ImportError as error:
        raise ImportError('the digits workload needs optax: pip install "xbar-sim[examples]"') from error
    key_1, key_2 = jax.random.split(jax.random.key(seed))
    n_in, n_out = x.shape[1], int(y.max()) + 1
    params = {
        "w1": jax.random.normal(key_1, (n_in, hidden)) * jnp.sqrt(2.0 / n_in),
        "b1": jnp.zeros(hidden),
        "w2": jax.random.normal(key_2, (hidden, n_out)) * jnp.sqrt(1.0 / hidden),
        "b2": jnp.zeros(n_out),
    }
    optimizer = optax.adam(learning_rate)

    def loss(params):
        logits = perceptron(params, x)
        return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()

    @jax.jit
    def step(carry, _):
        params, state = carry
        grads = jax.grad(loss)(params)
        updates, state = optimizer.update(grads, state, params)
        return (optax.apply_updates(params, updates), state), None

    (params, _), _ = jax.lax.scan(step, (params, optimizer.init(params)), None, length=steps)
    return params


def perceptron(params, x):
    """Return the logits of the two-layer ReLU perceptron in software."""
    return jax.nn.relu(x @ params["w1"] + params["b1"]) @ params["w2"] + params["b2"]


def _digits(config: StudyConfig) -> Workload:
    workload = config.sections["workload"]
    x_train, y_train, x_test, y_test = load_digits_split(workload["test_fraction"], workload["training_seed"])
    params = train_perceptron(
        jnp.asarray(x_train), jnp.asarray(y_train), hidden=workload["hidden"], steps=workload["train_steps"],
        learning_rate=workload["learning_rate"], seed=workload["training_seed"],
    )
    software = float(np.mean(np.argmax(np.asarray(perceptron(params, x_test)), axis=1) == y_test))
    logger.info("software test accuracy of the digits perceptron: %.4f", software)

    # Calibration on the training set: the DAC range of layer 2 and the ideal outputs of each layer.
    hidden_train = jax.nn.relu(x_train @ params["w1"] + params["b1"])
    hidden_range = float(jnp.max(hidden_train))
    outputs_1 = x_train @ params["w1"]
    outputs_2 = hidden_train @ params["w2"]
    x_test, y_test = jnp.asarray(x_test), jnp.asarray(y_test)

    def simulate(sections, key, data):
        del data
        key_1, key_2 = jax.random.split(key)
        range_1 = _calibrated_adc_range(sections, outputs_1, params["w1"])
        sections_2 = {**sections, "dac": {**sections["dac"], "input_range": hidden_range}}
        range_2 = _calibrated_adc_range(sections_2, outputs_2, params["w2"])
        t = sections["read"]["time"]
        products_1, cost_1 = _run_layer(sections, params["w1"], x_test, t, range_1, key_1)
        hidden = jax.nn.relu(products_1 + params["b1"])
        products_2, cost_2 = _run_layer(sections_2, params["w2"], hidden, t, range_2, key_2)
        logits = products_2 + params["b2"]
        # The layers run one after the other, each on its own cores.
        cost = cost_1.then(cost_2)
        return {"accuracy": jnp.mean(jnp.argmax(logits, axis=1) == y_test), **_cost_metrics(cost, len(y_test))}

    extra = {"software_accuracy": software}
    extra_attrs = {"software_accuracy": {"units": "1", "long_name": "test accuracy of the network in software (float32)"}}
    # Per point: about 32 arrays of each layer's size (states, reads, noise) and 8 of the test batch's
    # activations per layer (the same estimate as mvm_error's).
    hidden = params["w1"].shape[1]
    sizes = params["w1"].size + params["w2"].size
    point_bytes = 4 * (32 * sizes + 8 * len(y_test) * (x_test.shape[1] + 2 * hidden + params["w2"].shape[1]))
    return Workload(simulate, None, {"accuracy": "1", **_COST_UNITS}, extra, extra_attrs, point_bytes)


# stdp_digits

# Images shown in parallel when counting spikes for labeling and testing.
STDP_BATCH = 256
DIGIT_CLASSES = 10


def _stdp_digits(config: StudyConfig) -> Workload:
    workload = config.sections["workload"]
    x_train, y_train, x_test, y_test = load_digits_split(workload["test_fraction"], workload["training_seed"])
    n_train = workload["train_images"] or len(y_train)
    if n_train > len(y_train):
        raise ConfigError(
            f"{config.source}: workload.train_images = {n_train} exceeds the {len(y_train)} images of the training "
            "split; lower it or workload.test_fraction"
        )
    training_images = jnp.asarray(np.tile(x_train[:n_train], (workload["epochs"], 1)))
    x_label, y_label = jnp.asarray(x_train), jnp.asarray(y_train)
    x_test, y_test = jnp.asarray(x_test), jnp.asarray(y_test)
    n_pre, n_post = x_train.shape[1], workload["neurons"]
    show_steps, _ = _presentation(workload).steps(workload["time_step"])
    # Event slots of one showing at the highest swept rates, a static size for every grid point.
    swept = {key: axis.values for axis in config.axes for key in axis.keys}
    fastest = dict(workload)
    for name in ("max_rate", "rate_step"):
        fastest[name] = max(swept.get(f"workload.{name}", (workload[name],)))
    max_events = _presentation(fastest).max_events(n_pre)

    def simulate(sections, key, data):
        del data
        settings = sections["workload"]
        weight_max = sections["array"]["weight_range"]
        tile = build_tile(sections)
        rounding = settings["rounding"]
        if rounding == "auto":
            # The ideal device applies fractional pulse counts exactly, an analog synapse without quantization.
            rounding = "none" if isinstance(tile.device, IdealDevice) else "stochastic"
        network = Network(
            synapses=Synapses(tile=tile, rounding=rounding),
            neurons=diehl_cook_neurons(
                theta_plus=settings["theta_plus"], tau_theta=settings["tau_theta"], inhibition=settings["inhibition"],
                winner_take_all=settings["winner_take_all"],
            ),
            # Nearest-spike traces with the published time constants of 20 ms.
            plasticity=STDP(
                a_plus=settings["potentiation_rate"] * weight_max, a_minus=-settings["depression_rate"] * weight_max,
                tau_plus=20e-3, tau_minus=20e-3, pairing="nearest",
            ),
            dt=settings["time_step"],
        )
        timing = _presentation(settings)
        key_program, key_weights, key_train, key_label, key_test = jax.random.split(key, 5)
        initial = jax.random.uniform(key_weights, (n_pre, n_post), maxval=settings["initial_weight"] * weight_max)
        weight_sum = None if _is_zero(settings["weight_mean"]) else settings["weight_mean"] * n_pre * weight_max
        if weight_sum is not None:
            # Programmed already normalised, as the first normalisation of Diehl and Cook would leave them,
            # so that training does not start with a correction of every device by pulses.
            initial = initial * (weight_sum / jnp.sum(initial, axis=0))
        state = network.init(initial, key=key_program)
        state, stats = train_unsupervised(
            network, state, training_images, timing, key=key_train, weight_sum=weight_sum, max_events=max_events
        )

        label_counts = spike_counts(network, state, x_label, timing, key=key_label, batch_size=STDP_BATCH)
        assignments = assign_labels(label_counts, y_label, DIGIT_CLASSES)
        test_counts = spike_counts(network, state, x_test, timing, key=key_test, batch_size=STDP_BATCH)
        accuracy = jnp.mean(classify(test_counts, assignments, DIGIT_CLASSES) == y_test)
        return {"accuracy": accuracy, **training_rates(network, stats)}

    units = {
        "accuracy": "1", "output_rate_hz": "Hz", "pulses_per_s": "1/s", "normalization_pulses_per_s": "1/s",
        "refreshes_per_s": "1/s", "programming_power_w": "W", "repeated_share": "1",
    }
    # Counting spikes dominates the memory: per image of a batch, the uniform numbers behind the Poisson
    # raster (4 bytes per input and step), the raster and the recorded output spikes (1 byte each).
    point_bytes = STDP_BATCH * show_steps * (5 * n_pre + n_post)
    return Workload(simulate, None, units, {}, {}, point_bytes)


def _presentation(settings) -> Presentation:
    """Return the input schedule of the [workload] settings (max_rate and rate_step may be traced)."""
    return Presentation(
        duration=settings["presentation_time"], rest=settings["rest_time"], max_rate=settings["max_rate"],
        rate_step=settings["rate_step"], min_spikes=settings["min_spikes"], max_repeats=settings["max_repeats"],
    )


def _is_zero(value) -> bool:
    return isinstance(value, (int, float)) and value == 0


# hwa_digits


def _hwa_digits(config: StudyConfig) -> Workload:
    # Imported on use: xbar.hwa_digits builds on this module's Workload and digits helpers.
    from .hwa_digits import build_workload

    return build_workload(config)


# faults_digits


def _faults_digits(config: StudyConfig) -> Workload:
    # Imported on use: xbar.faults_digits builds on this module's Workload and digits helpers.
    from .faults_digits import build_workload

    return build_workload(config)


# pulsed_digits


def _pulsed_digits(config: StudyConfig) -> Workload:
    # Imported on use: xbar.pulsed_digits builds on this module's Workload and digits helpers.
    from .pulsed_digits import build_workload

    return build_workload(config)


_WORKLOADS = {
    "mvm_error": _mvm_error, "digits": _digits, "stdp_digits": _stdp_digits, "hwa_digits": _hwa_digits,
    "faults_digits": _faults_digits,
    "pulsed_digits": _pulsed_digits,
}
