"""Learning on crossbars: spiking neurons, Poisson input and in-situ spike-timing-dependent plasticity."""

from .network import Network, NetworkState, RunStats, run, run_clamped, run_metrics
from .neurons import LIF, LIFState
from .spikes import PoissonStream, advance, poisson_spike_times, poisson_spikes, spikes_from_times
from .stdp import STDP, STDPState, stdp_window
from .synapses import SynapseUpdate, Synapses, mean_pulse_step
from .waveform import SpikeWaveform, ThresholdMemristor, overlap_window, pair_update

__all__ = [
    "LIF", "LIFState", "Network", "NetworkState", "PoissonStream", "RunStats", "STDP", "STDPState", "SpikeWaveform",
    "SynapseUpdate", "Synapses", "ThresholdMemristor", "advance", "mean_pulse_step", "overlap_window", "pair_update", "poisson_spike_times", "poisson_spikes", "run", "run_clamped", "run_metrics", "spikes_from_times",
    "stdp_window",
]
