"""Pair-based spike-timing-dependent plasticity (STDP) computed step by step from synaptic traces."""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from .._validation import check_finite, check_positive

PAIRINGS = ("all-to-all", "nearest")


class STDPState(eqx.Module):
    """Synaptic traces of one STDP rule, in weight units.

    Attributes:
        pre: presynaptic traces, shape (n_pre,). Each is the potentiation that a postsynaptic spike
            now would receive from that input (a_plus e^{-s / tau_plus} per earlier spike at age s).
        post: postsynaptic traces, shape (n_post,). Each is the depression that a presynaptic spike now
            would receive from that neuron (a_minus e^{-s / tau_minus} per earlier spike at age s).
    """

    pre: jax.Array
    post: jax.Array


class STDP(eqx.Module):
    """Pair-based STDP with exponential windows, computed through synaptic traces.

    One pair of a presynaptic spike at t_pre and a postsynaptic spike at t_post = t_pre + delay changes
    the weight by (`stdp_window`)

        a_plus  exp(-delay / tau_plus)    for delay >= 0 (pre before post: potentiation),
        a_minus exp( delay / tau_minus)   for delay < 0  (post before pre: depression).

    The defaults are those of Song, Miller and Abbott, Nature Neuroscience 3, 919 (2000), as in the Brian2
    "STDP" example: tau_plus = tau_minus = 20 ms and a_minus = -1.05 a_plus, so that the integral of the
    window is negative. Weight units are the caller's: with a_plus = 0.01 and weights in units of g_max,
    a pair at delay 0+ raises the weight by 1 % of g_max.

    Pairing schemes (Morrison, Diesmann and Gerstner, Biological Cybernetics 98, 459 (2008)):

    - "all-to-all": every presynaptic spike pairs with every postsynaptic spike, so the change of a
      synapse is the sum of the window over all pairs. Each spike adds its amplitude to its trace.
    - "nearest": the symmetric nearest-spike scheme (Morrison et al. 2008, Fig. 7A, also NEST's
      `stdp_nn_symm_synapse`). Each postsynaptic spike pairs with the latest presynaptic spike at or
      before it (potentiation), and each presynaptic spike pairs with the latest postsynaptic spike
      strictly before it (depression). Each spike resets its trace to its amplitude. This is not the
      presynaptic-centred scheme, which would also reset the presynaptic trace at each postsynaptic spike.

    Order within a step of length dt, as in the Brian2 "STDP" example (presynaptic updates first):

    1. Both traces decay by exp(-dt / tau).
    2. On a presynaptic spike, the synapse receives the postsynaptic trace (depression), then the
       presynaptic trace grows by a_plus ("all-to-all") or is set to a_plus ("nearest").
    3. On a postsynaptic spike, the postsynaptic trace grows by (or is set to) a_minus, and the synapse
       receives the presynaptic trace, including a presynaptic spike of the same step (potentiation).

    A pre and a post spike in the same step therefore form one pair at delay 0 and give a_plus; NEST
    instead discards such pairs. With spikes on a grid, delays are multiples of dt and the traces reproduce
    the window exactly at those delays.

    `a_plus` and `tau_plus` may also be arrays of shape (n_pre,), and `a_minus` and `tau_minus` arrays of
    shape (n_post,). Under `jax.vmap` every field may carry a batch axis, one rule per network.

    Attributes:
        a_plus: weight change of a pair at delay 0+ (weight units; > 0 for Hebbian STDP).
        a_minus: weight change of a pair at delay 0- (weight units; < 0 for Hebbian STDP).
        tau_plus: time constant of the potentiation window, s.
        tau_minus: time constant of the depression window, s.
        pairing: "all-to-all" or "nearest" (static).
    """

    a_plus: float = 0.01
    a_minus: float = -0.0105
    tau_plus: float = 20e-3
    tau_minus: float = 20e-3
    pairing: str = eqx.field(static=True, default="all-to-all")

    def __check_init__(self):
        if self.pairing not in PAIRINGS:
            raise ValueError(f"pairing must be one of {PAIRINGS}, got {self.pairing!r}")
        check_finite("a_plus", self.a_plus, "pass a finite weight change")
        check_finite("a_minus", self.a_minus, "pass a finite weight change")
        check_positive("tau_plus", self.tau_plus, "s")
        check_positive("tau_minus", self.tau_minus, "s")

    def init(self, n_pre: int, n_post: int) -> STDPState:
        """Return zero traces for n_pre inputs and n_post neurons."""
        for name, n in (("n_pre", n_pre), ("n_post", n_post)):
            if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
                raise ValueError(f"{name} must be an integer >= 1, got {n!r}")
        dtype = jnp.result_type(float)
        return STDPState(pre=jnp.zeros((int(n_pre),), dtype), post=jnp.zeros((int(n_post),), dtype))

    def step(self, state: STDPState, pre_spikes, post_spikes, dt) -> tuple[STDPState, jax.Array]:
        """Advance the traces by one step and return the requested weight change of each synapse.

        Args:
            state: traces at the end of the previous step.
            pre_spikes: spikes of the inputs in this step, shape (n_pre,) (nonzero or True = spike).
            post_spikes: spikes of the neurons in this step, shape (n_post,).
            dt: time step, s.

        Returns:
            The new traces and dw, the weight change in weight units, shape (n_pre, n_post).
        """
        check_positive("dt", dt, "s")
        pre_spikes, post_spikes = jnp.asarray(pre_spikes), jnp.asarray(post_spikes)
        for name, spikes, trace in (("pre_spikes", pre_spikes, state.pre), ("post_spikes", post_spikes, state.post)):
            if spikes.shape != trace.shape:
                raise ValueError(
                    f"{name} has shape {spikes.shape} but the rule's traces have shape {trace.shape}; "
                    "pass one spike flag per neuron of that side"
                )
        pre_spikes, post_spikes = pre_spikes.astype(bool), post_spikes.astype(bool)
        dtype = state.pre.dtype

        pre = state.pre * jnp.exp(-dt / self.tau_plus)
        post = state.post * jnp.exp(-dt / self.tau_minus)
        depression = pre_spikes.astype(dtype)[:, None] * post[None, :]
        if self.pairing == "all-to-all":
            pre = pre + self.a_plus * pre_spikes
            post = post + self.a_minus * post_spikes
        else:
            pre = jnp.where(pre_spikes, jnp.asarray(self.a_plus, dtype), pre)
            post = jnp.where(post_spikes, jnp.asarray(self.a_minus, dtype), post)
        potentiation = pre[:, None] * post_spikes.astype(dtype)[None, :]
        return STDPState(pre=pre.astype(dtype), post=post.astype(dtype)), depression + potentiation


def stdp_window(rule: STDP, delay) -> jax.Array:
    """Return the weight change of one isolated spike pair at delay = t_post - t_pre (s).

    a_plus exp(-delay / tau_plus) for delay >= 0, a_minus exp(delay / tau_minus) for delay < 0; both
    pairing schemes agree on an isolated pair. Differentiable in the delay away from 0 and in the rule's
    parameters.
    """
    if not isinstance(rule, STDP):
        raise ValueError(f"rule must be an STDP instance, got {type(rule).__name__}")
    delay = jnp.asarray(delay, jnp.result_type(float))
    check_finite("delay", delay, "pass finite delays t_post - t_pre in s")
    # exp(-|delay| / tau) <= 1 on both sides, so the branch that `where` discards cannot overflow either.
    distance = jnp.abs(delay)
    return jnp.where(
        delay >= 0,
        rule.a_plus * jnp.exp(-distance / rule.tau_plus),
        rule.a_minus * jnp.exp(-distance / rule.tau_minus),
    )
