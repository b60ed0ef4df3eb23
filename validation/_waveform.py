"""Check of waveform-overlap memristive STDP (`xbar.learning.waveform`).

- `stdp_waveform_hebbian`: the window that emerges from the default spike waveform on the default threshold
  memristor has the Hebbian shape of Zamarreno-Ramos et al. (Frontiers in Neuroscience 2011): potentiation
  for positive delay, depression for negative delay, magnitude non-increasing with the absolute delay,
  and no change without overlap or below the threshold. The error is the number of delays that break a
  property.

This check does not use the PCM model that `run_checks` passes to every check.
"""

from __future__ import annotations

import equinox as eqx
import jax.numpy as jnp
import numpy as np

from xbar.learning.waveform import SpikeWaveform, ThresholdMemristor, overlap_window

from ._check import Check
from ._tables import load_table

TABLE = "stdp_waveform_overlap.csv"

# Scale of the spike amplitudes at which the overlap of two spikes stays under the device threshold.
_SUB_THRESHOLD = 0.5


def _hebbian(_model):
    table = load_table(TABLE)
    delays = np.asarray(table["delay_s"], np.float64)
    expected = np.asarray(table["expected_sign"], np.float64)
    waveform, device = SpikeWaveform(), ThresholdMemristor()
    change = np.asarray(overlap_window(waveform, device, jnp.asarray(delays)), np.float64)

    violations = int(np.sum(np.sign(change) != expected))
    # Beyond the positive pulse, |dw| must not grow with |delay| on either side.
    for side in (delays > waveform.t_plus, delays < -waveform.t_plus):
        order = np.argsort(np.abs(delays[side]))
        magnitudes = np.abs(change[side][order])
        violations += int(np.sum(np.diff(magnitudes) > 1e-12 * max(magnitudes.max(initial=0.0), 1e-30)))
    quiet = eqx.tree_at(lambda w: (w.a_plus, w.a_minus), waveform, (waveform.a_plus * _SUB_THRESHOLD, waveform.a_minus * _SUB_THRESHOLD))
    below = np.asarray(overlap_window(quiet, device, jnp.asarray(delays)), np.float64)
    violations += int(np.sum(below != 0.0))

    fine = np.linspace(-0.06, 0.06, 481)
    curve = np.asarray(overlap_window(waveform, device, jnp.asarray(fine)), np.float64)

    def draw(figure):
        axes = figure.add_subplot()
        axes.plot(fine * 1e3, curve, lw=1.2, label="emergent window")
        axes.plot(delays * 1e3, change, "o", ms=4, label="checked delays")
        axes.axhline(0.0, color="0.6", lw=0.8)
        axes.set_xlabel("delay t_post - t_pre (ms)")
        axes.set_ylabel("change of the device state w per pair")
        axes.legend()

    return float(violations), draw


CHECKS = (
    Check(
        name="stdp_waveform_hebbian",
        description="Hebbian shape of the window emerging from overlapping spike waveforms on a threshold memristor",
        unit="violations",
        table=TABLE,
        measure=_hebbian,
    ),
)
