"""Tests of the trace-based pair STDP rule in xbar.learning.stdp."""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from xbar.learning import STDP, STDPState, stdp_window

DT = 1e-4  # s; every delay below is a whole number of steps

# Song, Miller and Abbott (2000) window with a_plus = 0.01, a_minus = -1.05 a_plus, tau = 20 ms, printed
# to 5 decimals: delay (ms) -> delta w / g_max.
REFERENCE_POINTS = {
    1: 0.00951, 5: 0.00779, 10: 0.00607, 20: 0.00368, 40: 0.00135,
    -1: -0.00999, -5: -0.00818, -10: -0.00637, -20: -0.00386, -40: -0.00142,
}


def run_rule(rule: STDP, pre, post, dt=DT):
    """Apply `rule` to spike rasters pre (steps, n_pre) and post (steps, n_post); return dw per step."""
    pre, post = jnp.asarray(pre), jnp.asarray(post)

    def body(state, spikes):
        state, dw = rule.step(state, spikes[0], spikes[1], dt)
        return state, dw

    _, dw = jax.lax.scan(body, rule.init(pre.shape[1], post.shape[1]), (pre, post))
    return dw


def pairing_protocol(delay_steps, repeats=5, period=10_000, onset=5_000):
    """One input and one neuron per delay: each pair repeats every `period` steps, far beyond the window."""
    steps = repeats * period
    pre = np.zeros((steps, 1), bool)
    post = np.zeros((steps, len(delay_steps)), bool)
    for repeat in range(repeats):
        pre_step = onset + repeat * period
        pre[pre_step, 0] = True
        for neuron, delay in enumerate(delay_steps):
            post[pre_step + delay, neuron] = True
    return pre, post


@pytest.mark.parametrize("pairing", ["all-to-all", "nearest"])
def test_pairing_protocol_reproduces_window(pairing):
    rule = STDP(pairing=pairing)
    delays_ms = np.array(sorted(REFERENCE_POINTS))
    delay_steps = np.round(delays_ms * 1e-3 / DT).astype(int)
    repeats = 5
    pre, post = pairing_protocol(delay_steps, repeats=repeats)
    # A linear, unbounded weight accumulates every requested change.
    weight = np.asarray(jax.jit(lambda a, b: run_rule(rule, a, b).sum(axis=0))(pre, post))[0] / repeats

    window = np.asarray(stdp_window(rule, delay_steps * DT))
    np.testing.assert_allclose(weight, window, rtol=1e-4)
    # The printed reference values are rounded to 5 decimals, so they agree to half a unit of the last one.
    expected = np.array([REFERENCE_POINTS[d] for d in delays_ms])
    np.testing.assert_allclose(weight, expected, rtol=0, atol=5e-6 + 1e-9)


def test_window_reference_points():
    rule = STDP()
    for delay_ms, expected in REFERENCE_POINTS.items():
        assert float(stdp_window(rule, delay_ms * 1e-3)) == pytest.approx(expected, abs=5e-6)
    assert float(stdp_window(rule, 0.0)) == pytest.approx(rule.a_plus)
    # The integral a_plus tau_plus + a_minus tau_minus is negative: depression dominates.
    assert rule.a_plus * rule.tau_plus + rule.a_minus * rule.tau_minus < 0


def test_coincident_pair_counts_as_potentiation():
    for pairing in ("all-to-all", "nearest"):
        rule = STDP(pairing=pairing)
        pre = np.zeros((10, 1), bool)
        post = np.zeros((10, 1), bool)
        pre[3], post[3] = True, True
        dw = np.asarray(run_rule(rule, pre, post))
        assert dw.sum() == pytest.approx(rule.a_plus, rel=1e-6)


_MAX_DELAY = 600  # steps, 60 ms = 3 tau
_pair_run = jax.jit(
    lambda rule, delay: run_rule(
        rule,
        (jnp.arange(2 * _MAX_DELAY + 2) == _MAX_DELAY)[:, None],
        (jnp.arange(2 * _MAX_DELAY + 2) == _MAX_DELAY + delay)[:, None],
    ).sum()
)


@settings(deadline=None, max_examples=60)
@given(
    first=st.integers(1, _MAX_DELAY),
    second=st.integers(1, _MAX_DELAY),
    sign=st.sampled_from([-1, 1]),
    pairing=st.sampled_from(["all-to-all", "nearest"]),
)
def test_pair_sign_and_monotone_decay(first, second, sign, pairing):
    rule = STDP(pairing=pairing)
    near, far = sorted((first, second))
    dw_near = float(_pair_run(rule, sign * near))
    dw_far = float(_pair_run(rule, sign * far))
    assert np.sign(dw_near) == sign
    assert np.sign(dw_far) == sign
    assert abs(dw_near) >= abs(dw_far)


# Delays are float32 values away from subnormals, which XLA on CPU flushes to a zero of either sign.
@settings(deadline=None, max_examples=200)
@given(
    first=st.floats(-1.0, 1.0, width=32).filter(lambda d: abs(d) > 1e-30),
    second=st.floats(-1.0, 1.0, width=32).filter(lambda d: abs(d) > 1e-30),
)
def test_window_sign_and_monotone_decay(first, second):
    rule = STDP()
    dw_first, dw_second = (float(stdp_window(rule, d)) for d in (first, second))
    assert np.sign(dw_first) == np.sign(first)
    if np.sign(first) == np.sign(second):
        near, far = (dw_first, dw_second) if abs(first) <= abs(second) else (dw_second, dw_first)
        assert abs(near) >= abs(far)


def explicit_all_to_all(rule, pre, post, dt):
    """Change per step from the sum over every pre/post pair, booked at the step of the later spike."""
    steps, n_pre = pre.shape
    n_post = post.shape[1]
    dw = np.zeros((steps, n_pre, n_post))
    for i in range(n_pre):
        for j in range(n_post):
            for pre_step in np.flatnonzero(pre[:, i]):
                for post_step in np.flatnonzero(post[:, j]):
                    delay = (post_step - pre_step) * dt
                    dw[max(pre_step, post_step), i, j] += _window64(rule, delay)
    return dw


def explicit_nearest(rule, pre, post, dt):
    """Symmetric nearest-spike pairing (Morrison, Diesmann and Gerstner 2008, Fig. 7A), spelled out.

    Each post spike pairs with the latest pre spike at or before it (potentiation). Each pre spike pairs
    with the latest post spike strictly before it (depression).
    """
    steps, n_pre = pre.shape
    n_post = post.shape[1]
    dw = np.zeros((steps, n_pre, n_post))
    for i in range(n_pre):
        pre_steps = np.flatnonzero(pre[:, i])
        for j in range(n_post):
            post_steps = np.flatnonzero(post[:, j])
            for post_step in post_steps:
                earlier = pre_steps[pre_steps <= post_step]
                if len(earlier):
                    dw[post_step, i, j] += _window64(rule, (post_step - earlier[-1]) * dt)
            for pre_step in pre_steps:
                earlier = post_steps[post_steps < pre_step]
                if len(earlier):
                    dw[pre_step, i, j] += _window64(rule, (earlier[-1] - pre_step) * dt)
    return dw


def _window64(rule, delay):
    if delay >= 0:
        return rule.a_plus * np.exp(-delay / rule.tau_plus)
    return rule.a_minus * np.exp(delay / rule.tau_minus)


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize(
    ("pairing", "explicit"), [("all-to-all", explicit_all_to_all), ("nearest", explicit_nearest)]
)
def test_traces_equal_explicit_pair_sum(seed, pairing, explicit):
    rng = np.random.default_rng(seed)
    dt, steps = 1e-3, 250
    # About one spike per 10 ms: several pairs per window, and some spikes of both sides share a step.
    pre = rng.random((steps, 4)) < 0.1
    post = rng.random((steps, 3)) < 0.1
    rule = STDP(pairing=pairing, tau_plus=15e-3, tau_minus=25e-3)
    dw = np.asarray(run_rule(rule, pre, post, dt))
    expected = explicit(rule, pre, post, dt)
    assert (pre & post[:, :1]).any()  # the case of coincident spikes is exercised
    # Step by step: each change is booked at the step of the later spike of its pair. The float32 traces
    # are sums of terms of size ~a_plus = 0.01, whose rounding is ~1e-9 absolute, hence atol = 1e-8.
    np.testing.assert_allclose(dw, expected, rtol=1e-5, atol=1e-8)
    np.testing.assert_allclose(dw.sum(axis=0), expected.sum(axis=0), rtol=1e-5, atol=1e-7)


def test_nearest_differs_from_all_to_all():
    # Two pre spikes before one post spike: all-to-all counts both pairs, nearest only the later one.
    pre = np.zeros((100, 1), bool)
    post = np.zeros((100, 1), bool)
    pre[[10, 20], 0] = True
    post[30, 0] = True
    dt = 1e-3
    all_pairs = float(run_rule(STDP(), pre, post, dt).sum())
    nearest = float(run_rule(STDP(pairing="nearest"), pre, post, dt).sum())
    rule = STDP()
    assert all_pairs == pytest.approx(_window64(rule, 20e-3) + _window64(rule, 10e-3), rel=1e-5)
    assert nearest == pytest.approx(_window64(rule, 10e-3), rel=1e-5)


def test_traces_decay_and_reset():
    rule = STDP(pairing="nearest")
    state = rule.init(1, 1)
    state, _ = rule.step(state, jnp.array([True]), jnp.array([False]), DT)
    assert float(state.pre[0]) == pytest.approx(rule.a_plus)
    for _ in range(10):
        state, _ = rule.step(state, jnp.array([False]), jnp.array([False]), DT)
    assert float(state.pre[0]) == pytest.approx(rule.a_plus * np.exp(-10 * DT / rule.tau_plus), rel=1e-6)
    state, _ = rule.step(state, jnp.array([True]), jnp.array([True]), DT)
    assert float(state.pre[0]) == pytest.approx(rule.a_plus)  # reset, not accumulated
    assert float(state.post[0]) == pytest.approx(rule.a_minus)


def test_step_jit_matches_eager(rng):
    rule = STDP()
    pre = rng.random((40, 5)) < 0.2
    post = rng.random((40, 3)) < 0.2
    jitted = jax.jit(rule.step)
    eager_state = jit_state = rule.init(5, 3)
    for p, q in zip(pre, post):
        eager_state, eager_dw = rule.step(eager_state, p, q, DT)
        jit_state, jit_dw = jitted(jit_state, p, q, DT)
        # Compiled and eager exp may differ in the last float32 bit of traces of size ~a_plus.
        np.testing.assert_allclose(eager_dw, jit_dw, rtol=1e-6, atol=1e-8)


def test_vmap_over_rules_and_networks(rng):
    steps, n_pre, n_post, batch = 200, 6, 2, 3
    pre = jnp.asarray(rng.random((batch, steps, n_pre)) < 0.05)
    post = jnp.asarray(rng.random((batch, steps, n_post)) < 0.05)
    a_plus = jnp.array([0.01, 0.02, 0.005])
    tau_plus = jnp.array([20e-3, 10e-3, 40e-3])
    rules = STDP(a_plus=a_plus, tau_plus=tau_plus)

    def total(rule, pre, post):
        return run_rule(rule, pre, post).sum(axis=0)

    batched = eqx.filter_jit(eqx.filter_vmap(total, in_axes=(eqx.if_array(0), 0, 0)))(rules, pre, post)
    assert batched.shape == (batch, n_pre, n_post)
    for b in range(batch):
        single = STDP(a_plus=float(a_plus[b]), tau_plus=float(tau_plus[b]))
        np.testing.assert_allclose(batched[b], total(single, pre[b], post[b]), rtol=1e-5, atol=1e-9)


def test_window_gradient():
    rule = STDP()
    delay = 5e-3
    grad = jax.grad(lambda r: stdp_window(r, delay))(rule)
    assert float(grad.a_plus) == pytest.approx(np.exp(-delay / rule.tau_plus), rel=1e-6)
    assert float(grad.a_minus) == 0.0
    slope = jax.grad(lambda d: stdp_window(rule, d))(delay)
    assert float(slope) == pytest.approx(-rule.a_plus / rule.tau_plus * np.exp(-delay / rule.tau_plus), rel=1e-5)


def test_init_state():
    state = STDP().init(4, 3)
    assert isinstance(state, STDPState)
    assert state.pre.shape == (4,)
    assert state.post.shape == (3,)
    assert state.pre.dtype == jnp.float32


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"pairing": "nearest-neighbour"}, "pairing must be one of"),
        ({"tau_plus": 0.0}, "tau_plus must be finite and > 0"),
        ({"tau_minus": -1.0}, "tau_minus must be finite and > 0"),
        ({"a_plus": float("inf")}, "a_plus contains non-finite"),
    ],
)
def test_stdp_rejects_invalid_parameters(kwargs, match):
    with pytest.raises(ValueError, match=match):
        STDP(**kwargs)


def test_step_rejects_invalid_inputs():
    rule = STDP()
    state = rule.init(3, 2)
    with pytest.raises(ValueError, match="pre_spikes has shape"):
        rule.step(state, jnp.zeros(4, bool), jnp.zeros(2, bool), DT)
    with pytest.raises(ValueError, match="post_spikes has shape"):
        rule.step(state, jnp.zeros(3, bool), jnp.zeros(3, bool), DT)
    with pytest.raises(ValueError, match="dt must be finite and > 0"):
        rule.step(state, jnp.zeros(3, bool), jnp.zeros(2, bool), -DT)
    with pytest.raises(ValueError, match="n_pre must be an integer >= 1"):
        rule.init(0, 2)
    with pytest.raises(ValueError, match="rule must be an STDP instance"):
        stdp_window(0.01, 1e-3)
    with pytest.raises(ValueError, match="delay contains non-finite"):
        stdp_window(rule, jnp.nan)
