"""Checks of in-situ spike-timing-dependent plasticity (`xbar.learning`).

- `stdp_pairing_window`: the pairing protocol of STDP experiments (one presynaptic and one postsynaptic
  spike at a fixed delay, repeated) run through `run_clamped` on a linear synapse recovers the exponential
  window of Song, Miller and Abbott (2000), in percent;
- `stdp_sma_brian2`: the network of Song, Miller and Abbott (2000) is 1000 Poisson inputs onto one
  conductance-based LIF neuron through plastic synapses. It is simulated for 100 s on several seeds and
  compared with Brian2 runs of the same network: the statistics of the final weights and the output rate,
  in standard errors of the difference of the means.

These checks do not use the PCM model that `run_checks` passes to every check.
"""

from __future__ import annotations

import csv
import functools
import io
import logging
import re
from importlib import resources

import jax
import jax.numpy as jnp
import numpy as np

from xbar.crossbar import Tile
from xbar.devices import IdealDevice
from xbar.learning import LIF, STDP, Network, SpikeEvents, Synapses, run, run_clamped, stdp_window

from ._check import Check
from ._tables import load_table

logger = logging.getLogger(__name__)

WINDOW_TABLE = "stdp_song2000_window.csv"
SMA_TABLE = "stdp_sma_brian2_settings.csv"
SMA_DATA = "sma_brian2.csv"

# Pairing protocol: 10 pairs, one every second, so that a neighbouring pair adds less than
# exp(-0.96 s / 20 ms) ~ 1e-21 of a window value. Each pair starts half a period into its second.
_PAIRS = 10
_PAIR_PERIOD_S = 1.0
_DT = 1e-4

# A linear synapse: with `rounding="none"` an IdealDevice applies the exact fractional pulse count. It
# clips at g_min and g_max only, and the pairing check starts at half of g_max, which leaves room for 10
# pairs of up to 1 % of g_max each.
_LINEAR_DEVICE = IdealDevice(g_min=0.0, g_max=25e-6, pulse_step=25e-9)
_START_WEIGHT = 0.5

# The statistics compared with Brian2, and the weight thresholds (fractions of g_max) of the first two.
_SMA_STATISTICS = ("frac_low", "frac_high", "mean_w", "rate_hz_total")
_LOW, _HIGH = 0.1, 0.9
_HISTOGRAM_BINS = 20


def _linear_network(rule: STDP, dt: float) -> Network:
    # max_pulses caps every count, rounded or not. 1000 pulses of 0.1 % of the range span the whole range,
    # so no request of these checks is capped.
    synapses = Synapses(tile=Tile(device=_LINEAR_DEVICE, weight_range=1.0), rounding="none", max_pulses=1000)
    return Network(synapses=synapses, plasticity=rule, dt=dt)


def _pairing_changes(rule: STDP, delays) -> np.ndarray:
    """Return the weight change per pair at each delay (s), from repeated pairs through `run_clamped`.

    One input feeds one neuron per delay. Every neuron spikes at its delay from the common presynaptic
    spike, so synapse j receives only the pairs at delay j.
    """
    delay_steps = np.rint(np.asarray(delays) / _DT).astype(int)
    period = round(_PAIR_PERIOD_S / _DT)
    onset = period // 2
    pre = np.zeros((_PAIRS * period, 1), bool)
    post = np.zeros((_PAIRS * period, len(delay_steps)), bool)
    for pair in range(_PAIRS):
        start = pair * period + onset
        pre[start, 0] = True
        post[start + delay_steps, np.arange(len(delay_steps))] = True

    network = _linear_network(rule, _DT)
    state = network.init(jnp.full((1, len(delay_steps)), _START_WEIGHT), key=jax.random.key(0))
    state, _ = run_clamped(network, state, pre, post, key=jax.random.key(1))
    weights = np.asarray(network.weights(state, key=jax.random.key(2))[0], np.float64)
    return (weights - _START_WEIGHT) / _PAIRS


def _pairing_window(_model):
    table = load_table(WINDOW_TABLE)
    constants = table.numbers("constants")
    rule = STDP(a_plus=constants["a_plus"], a_minus=constants["a_minus"], tau_plus=constants["tau_plus_s"],
                tau_minus=constants["tau_minus_s"])
    delays = table["delay_s"]
    reference = table["dw_per_g_max"]
    measured = _pairing_changes(rule, delays)
    error = float(np.max(np.abs(measured - reference) / np.abs(reference)) * 100.0)

    def draw(figure):
        axes = figure.add_subplot()
        dense = np.linspace(-0.05, 0.05, 401)
        axes.plot(dense * 1e3, np.asarray(stdp_window(rule, dense)), lw=1, color="0.6", label="exponential window")
        axes.plot(delays * 1e3, reference, "o", mfc="none", ms=8, label="Song et al. 2000 window (table)")
        axes.plot(delays * 1e3, measured, "x", label=f"xbar: run_clamped, {_PAIRS} pairs per delay")
        axes.axhline(0.0, color="0.8", lw=0.8)
        axes.set_xlabel("delay t_post - t_pre (ms)")
        axes.set_ylabel("weight change per pair / g_max")
        axes.legend(fontsize="small")

    return error, draw


# Header line of sma_brian2.csv read here: `# constants: name=value ...`.
_CONSTANTS_LINE = re.compile(r"#\s*constants:\s*(.*)")


def _read_brian2_runs() -> tuple[dict[str, float], dict[str, np.ndarray]]:
    """Return the network constants and the per-seed columns of the Brian2 runs (float64)."""
    text = (resources.files("xbar.validation") / "data" / SMA_DATA).read_text(encoding="utf-8")
    constants = None
    rows = []
    for line in text.splitlines():
        if line.startswith("#"):
            match = _CONSTANTS_LINE.fullmatch(line.rstrip())
            if match is not None:
                constants = {name: float(value) for name, _, value in (item.partition("=") for item in match[1].split())}
        elif line.strip():
            rows.append(line)
    if constants is None:
        raise ValueError(f"{SMA_DATA} has no '# constants:' header line; regenerate it with benchmarks/brian2_sma.py")
    reader = csv.reader(io.StringIO("\n".join(rows)))
    names = next(reader)
    values = np.array([[float(cell) for cell in row] for row in reader], np.float64)
    return constants, {name: values[:, index] for index, name in enumerate(names)}


def _sma_network(constants: dict[str, float]) -> Network:
    """Build the network of the Brian2 runs: additive STDP on a linear, clipped synapse in [0, g_max]."""
    if constants["v_initial_v"] != constants["e_leak_v"]:
        raise ValueError(
            f"{SMA_DATA} starts the membrane at {constants['v_initial_v']} V, but LIF.init starts it at the leak "
            f"reversal {constants['e_leak_v']} V; regenerate the table with v starting at the leak reversal"
        )
    neurons = LIF(
        tau_m=constants["tau_m_s"], v_rest=constants["e_leak_v"], v_reset=constants["v_reset_v"],
        v_threshold=constants["v_threshold_v"], tau_syn=constants["tau_e_s"], e_syn=constants["e_exc_v"],
        synapse="conductance", method="euler",
    )
    rule = STDP(a_plus=constants["da_pre"], a_minus=constants["da_post"], tau_plus=constants["tau_pre_s"],
                tau_minus=constants["tau_post_s"])
    # Weight g_max maps to the device's g_max, and IdealDevice clips at both ends as Brian2's clip does.
    tile = Tile(device=_LINEAR_DEVICE, weight_range=constants["g_max"])
    synapses = Synapses(tile=tile, rounding="none", max_pulses=1000)
    return Network(synapses=synapses, neurons=neurons, plasticity=rule, dt=constants["dt_s"])


@functools.cache
def _simulate_sma() -> dict[str, np.ndarray]:
    """Simulate the network on the seeds of the settings table; return per-seed statistics and histograms.

    Cached because the simulation takes a while (about 20 s on a busy 2-core CPU for 8 seeds, event-driven)
    and does not depend on the PCM model that each call of `run_checks` passes.
    """
    constants, _ = _read_brian2_runs()
    settings = load_table(SMA_TABLE)
    seeds = int(settings["seeds"][0])
    duration = float(settings["duration_s"][0])
    network = _sma_network(constants)
    n_inputs = int(constants["n_inputs"])
    rate = constants["input_rate_hz"]
    g_max = constants["g_max"]
    steps = round(duration / network.dt)
    # Event slots: mean + 10 sqrt(mean) + 10 truncates the list with probability below 1e-19.
    expected = n_inputs * rate * duration
    max_events = int(expected + 10.0 * np.sqrt(expected) + 10.0)

    def one(key):
        key_weights, key_inputs, key_run = jax.random.split(key, 3)
        weights = jax.random.uniform(key_weights, (n_inputs, 1), maxval=g_max)
        state = network.init(weights, key=key_weights)
        events = SpikeEvents.poisson(key_inputs, rate, duration, max_events, n_inputs=n_inputs)
        state, totals = run(network, state, events, steps, key=key_run)
        return network.weights(state, key=key_run)[:, 0] / g_max, totals.output_spikes[0]

    logger.info("simulating the Song-Miller-Abbott network: %d seeds x %g s", seeds, duration)
    keys = jax.vmap(jax.random.key)(jnp.arange(seeds))
    weights, spikes = jax.jit(jax.vmap(one))(keys)
    # float32 rounding can put a clipped weight a few ulp above 1; the histogram's last bin includes 1.
    weights = np.clip(np.asarray(weights, np.float64), 0.0, 1.0)
    histograms = np.stack([np.histogram(w, bins=_HISTOGRAM_BINS, range=(0.0, 1.0))[0] for w in weights]) / n_inputs
    return {
        "frac_low": np.mean(weights < _LOW, axis=1),
        "frac_high": np.mean(weights > _HIGH, axis=1),
        "mean_w": np.mean(weights, axis=1),
        "rate_hz_total": np.asarray(spikes, np.float64) / duration,
        "histogram": histograms,
    }


def _standard_errors_apart(first, second) -> float:
    """Return |mean(first) - mean(second)| / sqrt(s1^2 / n1 + s2^2 / n2) (sample std, ddof 1)."""
    combined = np.sqrt(np.var(first, ddof=1) / len(first) + np.var(second, ddof=1) / len(second))
    with np.errstate(divide="ignore", invalid="ignore"):
        return float(np.abs(np.mean(first) - np.mean(second)) / combined)


def _sma_brian2(_model):
    _, brian2 = _read_brian2_runs()
    xbar = _simulate_sma()
    # NOTE: with 8 seeds on each side a distance follows Welch's t with about 14 degrees of freedom rather
    # than a normal, so each statistic of a correct model exceeds 3 with probability of about 1 % (scipy.stats.t).
    distances = {name: _standard_errors_apart(xbar[name], brian2[name]) for name in _SMA_STATISTICS}
    error = max(distances.values())

    def draw(figure):
        axes = figure.add_subplot()
        edges = np.linspace(0.0, 1.0, _HISTOGRAM_BINS + 1)
        reference = np.stack([brian2[f"hist_{index:02d}"] for index in range(_HISTOGRAM_BINS)], axis=1)
        for histograms, label in ((xbar["histogram"], "xbar"), (reference, "Brian2")):
            mean, spread = histograms.mean(axis=0), histograms.std(axis=0, ddof=1)
            outline = axes.stairs(mean, edges, lw=1.5, label=f"{label}, mean of {len(histograms)} seeds")
            axes.stairs(mean + spread, edges, baseline=mean - spread, fill=True, alpha=0.2,
                        color=outline.get_edgecolor())
        summary = "\n".join(
            f"{name}: xbar {np.mean(xbar[name]):.4g}, Brian2 {np.mean(brian2[name]):.4g} ({distances[name]:.2f} SE)"
            for name in _SMA_STATISTICS
        )
        axes.text(0.5, 0.97, summary, transform=axes.transAxes, ha="center", va="top", fontsize="x-small")
        axes.set_xlabel("final weight / g_max")
        axes.set_ylabel("fraction of synapses (band: +-1 std over seeds)")
        axes.legend(fontsize="small", loc="center right")

    return error, draw


CHECKS = (
    Check(
        "stdp_pairing_window",
        f"weight change per pair of {_PAIRS} pre/post spike pairs, {_PAIR_PERIOD_S:g} s apart, at delays of +-1 to "
        "+-40 ms, run through run_clamped on a linear IdealDevice synapse, against the exponential window of Song, "
        "Miller and Abbott (2000); error: max |model - table| / |table| in percent",
        "percent", WINDOW_TABLE, _pairing_window,
    ),
    Check(
        "stdp_sma_brian2",
        "Song-Miller-Abbott network (1000 Poisson inputs at 15 Hz, conductance-based LIF, additive STDP) on an "
        "IdealDevice for 100 s on 8 seeds (event-driven), against the Brian2 runs of sma_brian2.csv: fraction of weights below 0.1 "
        "and above 0.9 g_max, mean weight and output rate; error: max over these of the difference of the means in "
        "standard errors sqrt(s1^2/n1 + s2^2/n2), tolerance 3",
        "standard errors", SMA_TABLE, _sma_brian2,
    ),
)
