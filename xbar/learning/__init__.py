"""Learning on crossbars: spiking neurons, Poisson input and in-situ spike-timing-dependent plasticity.

A layer of 1000 Poisson inputs onto one neuron, learning with STDP on ideal devices for 10 s (the network
of Song, Miller and Abbott, Nature Neuroscience 3, 919 (2000), with weights relative to the leak)::

    import jax, jax.numpy as jnp
    from xbar.crossbar import Tile
    from xbar.devices import IdealDevice
    from xbar.learning import STDP, Network, SpikeEvents, Synapses, run, run_metrics

    g_max = 0.01  # largest weight, relative to the leak conductance
    network = Network(
        synapses=Synapses(tile=Tile(device=IdealDevice(), weight_range=g_max)),
        plasticity=STDP(a_plus=0.01 * g_max, a_minus=-0.0105 * g_max),
    )
    key_w, key_program, key_in, key_run = jax.random.split(jax.random.key(0), 4)
    state = network.init(jax.random.uniform(key_w, (1000, 1), maxval=g_max), key=key_program)
    duration = 10.0  # s
    inputs = SpikeEvents.poisson(key_in, jnp.full(1000, 15.0), duration)  # event-driven input
    state, stats = run(network, state, inputs, round(duration / network.dt), key=key_run)
    print(run_metrics(network, stats)["output_rate_hz"])
"""

from .analog import (
    AnalogConv2D, AnalogDense, AnalogNetwork, LogUniformReadTime, analog_matmul, as_arrays, with_straight_through,
)
from .network import Network, NetworkState, RunStats, run, run_clamped, run_metrics
from .codesign import (
    CONVERTER_MODELS, PARAMETERS, CodesignProblem, CodesignResult, CodesignTerms, GridResult, from_log_space,
    grid_search, optimize, to_log_space,
)
from .neurons import LIF, LIFState
from .nir import SUPPORTED_NIR_NODES, NIRNetwork, NIRState, from_nir
from .pulsed_training import (
    MixedPrecisionPulseUpdate, PulsedLayerState, PulsedMLP, PulsedMLPState, StochasticPulseUpdate, coincidence_counts,
    init_weights, pulse_granularity, soft_bounds_device,
)
from .spikes import PoissonStream, SpikeEvents, advance, poisson_spike_times, poisson_spikes, spikes_from_times
from .stdp import STDP, STDPState, stdp_window
from .synapses import SynapseUpdate, Synapses, mean_pulse_step
from .training import TrainResult, train
from .variability_training import DeviceVariation, monte_carlo_losses, sample_network, variability_aware_loss
from .waveform import SpikeWaveform, ThresholdMemristor, WaveformSTDP, WaveformSTDPState, overlap_window, pair_update

__all__ = [
    "AnalogConv2D", "AnalogDense", "AnalogNetwork", "LogUniformReadTime", "TrainResult", "analog_matmul", "as_arrays",
    "train", "with_straight_through", "DeviceVariation", "monte_carlo_losses", "sample_network",
    "variability_aware_loss", "MixedPrecisionPulseUpdate", "PulsedLayerState", "PulsedMLP", "PulsedMLPState",
    "CONVERTER_MODELS", "PARAMETERS", "CodesignProblem", "CodesignResult", "CodesignTerms", "GridResult",
    "from_log_space", "grid_search", "optimize", "to_log_space",
    "StochasticPulseUpdate", "coincidence_counts", "init_weights", "pulse_granularity", "soft_bounds_device",
    "LIF", "LIFState", "NIRNetwork", "NIRState", "Network", "NetworkState", "PoissonStream", "RunStats", "STDP", "SUPPORTED_NIR_NODES", "STDPState", "SpikeEvents", "SpikeWaveform",
    "SynapseUpdate", "Synapses", "ThresholdMemristor", "WaveformSTDP", "WaveformSTDPState", "advance", "from_nir", "mean_pulse_step", "overlap_window", "pair_update", "poisson_spike_times", "poisson_spikes", "run", "run_clamped", "run_metrics", "spikes_from_times",
    "stdp_window",
]

from .diehl_cook import (
    Presentation, TrainingStats, assign_labels, classify, diehl_cook_neurons, normalize_weights, spike_counts,
    train_unsupervised, training_rates,
)

__all__ += [
    "Presentation", "TrainingStats", "assign_labels", "classify", "diehl_cook_neurons", "normalize_weights",
    "spike_counts", "train_unsupervised", "training_rates",
]
