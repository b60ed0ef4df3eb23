"""Wire resistance of a crossbar (IR drop): an exact, batched, differentiable nodal solver.

Circuit. An M x N array has a word-line node u[i, j] and a bit-line node v[i, j] at every cell, joined by
the device conductance G[i, j]: 2 M N unknown node voltages. Word line i has its periphery at the left:
its periphery node reaches u[i, 0] through the periphery resistance plus the segment `word_line[i, 0]`,
segment `word_line[i, j]` joins u[i, j-1] and u[i, j], and the right end is open. Bit line j has its
periphery at the bottom: segment `bit_line[i, j]` joins v[i, j] and v[i+1, j], v[M-1, j] reaches the
periphery through `bit_line[M-1, j]` plus the periphery resistance, and the top end is open. In the forward
direction the word lines are driven (a voltage source behind `driver` ohms) and the bit lines are sensed
(a virtual ground behind `sense` ohms). In the transposed direction the bit lines are driven from the
bottom and the word lines sensed at the left, so the wires stay where they are. With driver = sense = 0
and scalar wire resistances this is the circuit of badcrossbar (Joksas and Mehonic, SoftwareX 12, 100617
(2020)).

Solver. Kirchhoff's current law at every node gives a symmetric positive definite system A x = b. Each
line alone is a tridiagonal system, solved exactly by Gaussian elimination along the line. Eliminating
the driven lines leaves the Schur complement on the sensed lines, S = T_s - G T_d^-1 G (T_s, T_d: the
tridiagonal line operators including the devices), solved by conjugate gradients preconditioned with
T_s^-1. For an array of constant conductance the preconditioned operator has eigenvalues
1 - G^2 / ((G + a)(G + c)), a and c the eigenvalues of the two line Laplacians, so the iteration count
depends on the array only through the strength of IR drop, roughly sqrt(N^2 r G) for wire resistance r
per cell, and not on its size as such: a few iterations for arrays that lose a few percent of their
signal, tens for arrays that lose most of it. Memory is O(B M N) for B input vectors; no matrix is formed.

The line eliminations run as `lax.scan` loops (`lax.linalg.tridiagonal_solve` hangs inside a
`while_loop` with jax 0.10.2 on CPU). The elimination is written in terms of the positive "excess"
conductance seen from each node, e = G + s e' / (s + e'), a series-parallel reduction with no
subtraction, so that it stays accurate in float32 whatever the ratio of wire to device conductance.

Gradients come from implicit differentiation through `lax.custom_linear_solve`: one adjoint solve with
the same solver, never by differentiating the iterations.
"""

from __future__ import annotations

from typing import NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from .._validation import check_finite, is_concrete

__all__ = ["CrossbarSolution", "Parasitics", "default_rtol", "solve_crossbar"]


class Parasitics(eqx.Module):
    """Resistances of the wires and periphery of a crossbar array, in ohm.

    Attributes:
        word_line: resistance of one word-line segment (the wire across one cell), ohm: a scalar or an
            (M, N) array. `word_line[i, j]` lies to the left of cell (i, j), so `word_line[i, 0]` joins the
            first cell to the periphery. NeuroSim's wire model gives 0.24 ohm per cell at
            65 nm and 5.05 ohm at 7 nm for a 2F-pitch crossbar (Chen, Peng and Yu, IEEE TCAD 37, 3067
            (2018)); IBM aihwkit uses 0.35 ohm.
        bit_line: resistance of one bit-line segment, ohm; None (default) takes `word_line`. `bit_line[i, j]`
            lies below cell (i, j) and `bit_line[M-1, j]` joins the last cell to the periphery.
        driver: output resistance of each line driver, ohm (default 0: ideal source); a scalar or one
            value per driven line.
        sense: input resistance of each sense amplifier, ohm (default 0: virtual ground); a scalar or one
            value per sensed line.
    """

    word_line: jax.Array | float
    bit_line: jax.Array | float | None = None
    driver: jax.Array | float = 0.0
    sense: jax.Array | float = 0.0

    def __check_init__(self):
        for name in ("word_line", "bit_line", "driver", "sense"):
            value = getattr(self, name)
            if value is None or not is_concrete(value):
                continue
            array = np.asarray(value, dtype=float)
            if array.ndim > 2:
                raise ValueError(f"Parasitics {name} must be a scalar or a 1-D or 2-D array, got shape {array.shape}")
            check_finite(f"Parasitics {name}", array, "pass finite resistances in ohm")
            if (array < 0).any():
                raise ValueError(f"Parasitics {name} must be >= 0 ohm, got {array.min()} ohm")
        for name in ("word_line", "bit_line"):
            value = getattr(self, name)
            if value is not None and is_concrete(value) and (np.asarray(value, dtype=float) <= 0).any():
                raise ValueError(
                    f"Parasitics {name} must be > 0 ohm per segment, got {np.asarray(value, dtype=float).min()}; "
                    "for an array without wire resistance leave `parasitics` unset (ideal product)"
                )

    @property
    def bit_line_resistance(self):
        """The bit-line segment resistance, ohm (the word-line value when `bit_line` is None)."""
        return self.word_line if self.bit_line is None else self.bit_line


class CrossbarSolution(eqx.Module):
    """Result of `solve_crossbar` for a batch of input vectors.

    Attributes:
        currents: current into each sense amplifier, A: shape (..., N) in the forward direction (bit
            lines sensed), (..., M) transposed (word lines sensed).
        word_line_voltages, bit_line_voltages: node voltages u and v, V, shape (..., M, N); None unless
            `node_voltages=True`.
        residual: largest Kirchhoff current-law imbalance over all 2 M N nodes divided by the total device
            current sum_ij G_ij |V|, shape (...,).
        tolerance: the residual accepted as converged, shape (...,): `rtol`, plus the rounding floor of the
            working precision, 4 eps max|V| s_max / sum_ij G_ij |V| (s_max the largest wire conductance
            at a node). The floor is negligible in float64; in float32 it exceeds 1e-5 for small arrays
            with low wire resistance, where the node voltages cannot be stored more precisely.
        iterations: conjugate-gradient iterations taken (the most over the batch).
        converged: whether `residual <= tolerance`, shape (...,).
    """

    currents: jax.Array
    word_line_voltages: jax.Array | None
    bit_line_voltages: jax.Array | None
    residual: jax.Array
    tolerance: jax.Array
    iterations: jax.Array
    converged: jax.Array

    @property
    def device_voltages(self):
        """Voltage across every device, u - v, V, shape (..., M, N) (needs `node_voltages=True`)."""
        if self.word_line_voltages is None:
            raise ValueError("device voltages need the node voltages: call solve_crossbar(..., node_voltages=True)")
        return self.word_line_voltages - self.bit_line_voltages


def default_rtol(dtype) -> float:
    """Default bound on the relative Kirchhoff residual: 1e-9 in float64, 1e-5 in float32.

    The float32 value is what the solver reaches reliably on arrays with strong IR drop, where the
    residual of a converged float32 solve stalls near 1e-6. `CrossbarSolution.tolerance` adds the
    rounding floor of the node voltages, which dominates on small arrays with low wire resistance.
    """
    return 1e-9 if jnp.dtype(dtype) == jnp.float64 else 1e-5


# Lines. A family of parallel lines is stored with the position along the line first: shape (n, L) for
# per-cell quantities and (n, B, L) for node voltages of B input vectors. Each `lax.scan` step then
# handles one position of all lines and vectors. `seg` has n + 1 entries
# per line: seg[k] joins node k - 1 and node k, seg[0] and seg[n] join the two ends to their periphery
# (0 for an open end).


class _Lines(NamedTuple):
    seg: jax.Array  # (n + 1, 1, L) segment conductances, S
    shunt: jax.Array  # (n, 1, L) device conductances, S
    den: jax.Array  # (n, 1, L) pivots of the elimination
    ratio: jax.Array  # (n, 1, L) seg[k + 1] / den[k]


def _factor(seg, shunt) -> _Lines:
    """Eliminate along every line once; the pivots are reused for every right-hand side."""

    def step(excess, inputs):
        g, s = inputs
        excess = g + s * excess / (s + excess)
        return excess, excess

    first = shunt[0] + seg[0]
    _, rest = lax.scan(step, first, (shunt[1:], seg[1:-1]))
    excess = jnp.concatenate([first[None], rest])
    den = excess + seg[1:]
    return _Lines(seg=seg[:, None], shunt=shunt[:, None], den=den[:, None], ratio=(seg[1:] / den)[:, None])


def _line_solve(lines: _Lines, rhs):
    """Solve T x = rhs for every line and vector: rhs and x have shape (n, B, L)."""

    def forward(previous, inputs):
        r, s, den = inputs
        y = (r + s * previous) / den
        return y, y

    _, y = lax.scan(forward, jnp.zeros_like(rhs[0]), (rhs, lines.seg[:-1], lines.den))

    def backward(following, inputs):
        y_k, ratio = inputs
        x = y_k + ratio * following
        return x, x

    _, x = lax.scan(backward, jnp.zeros_like(rhs[0]), (y, lines.ratio), reverse=True)
    return x


def _line_apply(lines: _Lines, x):
    """Return T x with both line ends held at 0 V, shape (n, B, L).

    Every branch current is formed from a voltage difference before it is scaled by its conductance,
    s_k (x_k - x_{k-1}), and never as s_k x_k - s_k x_{k-1}: wire conductances exceed device conductances
    by up to 10^6, and the second form would bury the device currents in the rounding of the wire terms.
    """
    return _line_currents(lines, x, jnp.zeros_like(x[0]), jnp.zeros_like(x[0]))


def _line_currents(lines: _Lines, x, start, end):
    """Current leaving each node through its wires and devices (devices to 0 V), with the node beyond the
    start at `start` and the one beyond the end at `end` volts (shapes (B, L))."""
    seg = lines.seg
    before = jnp.concatenate([start[None], x[:-1]])
    after = jnp.concatenate([x[1:], end[None]])
    return seg[:-1] * (x - before) + seg[1:] * (x - after) + lines.shunt * x


def _line_residual(lines: _Lines, x, b, other):
    """Return b - (T x - G other): the current imbalance at each node, in the branch form of `_line_apply`.

    A right-hand side entry at an end of a line, b = s V, is a source V behind the end conductance s; it is
    folded into that branch as s (x - V) so that the source current is never formed on its own.
    """
    seg = lines.seg
    start_volts = b[0] / jnp.where(seg[0] > 0, seg[0], 1.0)
    end_volts = b[-1] / jnp.where(seg[-1] > 0, seg[-1], 1.0)
    start = jnp.where(seg[0] > 0, start_volts, 0.0)
    end = jnp.where(seg[-1] > 0, end_volts, 0.0)
    folded = jnp.zeros_like(b)
    folded = folded.at[0].add(jnp.where(seg[0] > 0, 0.0, b[0]))
    folded = folded.at[-1].add(jnp.where(seg[-1] > 0, 0.0, b[-1]))
    interior = b.at[0].set(0.0).at[-1].set(0.0) + folded
    if b.shape[0] == 1:  # a one-node line: both ends fold into the same node
        interior = jnp.where((seg[0] > 0) | (seg[-1] > 0), 0.0, b)
    devices = lines.shunt * (x - other)
    wires = seg[:-1] * (x - jnp.concatenate([start[None], x[:-1]])) + seg[1:] * (x - jnp.concatenate([x[1:], end[None]]))
    return interior - wires - devices


def _swap(x):
    """Move node voltages between the two line layouts, (N, B, M) <-> (M, B, N)."""
    return jnp.transpose(x, (2, 1, 0))


class _Network(NamedTuple):
    word: _Lines  # word lines: n = N positions, L = M lines
    bit: _Lines  # bit lines: n = M, L = N
    g_word: jax.Array  # (N, 1, M) device conductances in the word layout
    g_bit: jax.Array  # (M, 1, N) in the bit layout


def _network(conductances, word_seg, bit_seg) -> _Network:
    """Build both line families from G (M, N), word_seg (M, N + 1) and bit_seg (M + 1, N) conductances."""
    word = _factor(word_seg.T, conductances.T)
    bit = _factor(bit_seg, conductances)
    return _Network(word=word, bit=bit, g_word=conductances.T[:, None], g_bit=conductances[:, None])


def _matvec(net: _Network, x):
    """Apply the nodal operator A to x = (u, v), given in the word and bit layouts; return the same layouts."""
    u, v = x
    return (
        _line_apply(net.word, u) - net.g_word * _swap(v),
        _line_apply(net.bit, v) - net.g_bit * _swap(u),
    )


def _schur_cg(net: _Network, b, rtol, max_iterations, sensed_bits: bool):
    """Solve A x = b by CG on the Schur complement of one line family; return x and diagnostics.

    `sensed_bits` keeps the bit-line voltages as CG unknowns and eliminates the word lines (the forward
    direction), else the reverse. The family eliminated is the driven one, so that the starting residual
    is the device currents and the tolerance is relative to them.
    """
    b_word, b_bit = b
    if sensed_bits:
        kept, elim, g_kept, g_elim, b_kept, b_elim = net.bit, net.word, net.g_bit, net.g_word, b_bit, b_word
    else:
        kept, elim, g_kept, g_elim, b_kept, b_elim = net.word, net.bit, net.g_word, net.g_bit, b_word, b_bit

    def schur(p):
        return _line_apply(kept, p) - g_kept * _swap(_line_solve(elim, g_elim * _swap(p)))

    def dot(a, c):
        return jnp.sum(a * c, axis=(0, 2))

    def largest(a):
        return jnp.max(jnp.abs(a), axis=(0, 2))

    driven = _line_solve(elim, b_elim)
    rhs = b_kept + g_kept * _swap(driven)
    # The circuit is linear: solving for the CG right-hand side divided by its largest entry keeps the inner
    # products of CG clear of underflow (inputs of 1e-150 V in float64, or 1e-6 ohm wires in float32) and
    # scales back exactly. The norm is taken from a computed array: a reduction over the all-zero half of b
    # would be constant-folded by XLA at compile time, which takes tens of seconds on large arrays.
    norm = largest(rhs)
    norm = jnp.where(norm > 0, norm, 1.0)[None, :, None]
    b_word, b_bit, b_elim, driven, rhs = b_word / norm, b_bit / norm, b_elim / norm, driven / norm, rhs / norm
    # Scale of the tolerance: the summed magnitude of the starting residual, which in the forward
    # direction is the total device current with the sensed lines held at their periphery voltage.
    scale = jnp.sum(jnp.abs(rhs), axis=(0, 2))
    safe_scale = jnp.where(scale > 0, scale, 1.0)
    z = _line_solve(kept, rhs)
    rz = dot(rhs, z)

    # Rounding floor: a node voltage is known to eps |V| at best, which moves the current of its wires by
    # eps |V| sum(s). Relative to the device currents this can exceed rtol in float32 (small arrays with
    # low wire resistance), and a solve then counts as converged at 4 times that floor (measured: 1.1).
    eps = jnp.finfo(scale.dtype).eps
    wires = jnp.maximum(jnp.max(net.word.seg[:-1] + net.word.seg[1:]), jnp.max(net.bit.seg[:-1] + net.bit.seg[1:]))
    # A residual of rtol relative to the total current still leaves an error of order rtol * N relative to
    # one output current (N cells per sensed line), and more for outputs whose inputs cancel. So the loop
    # iterates 100 (float32) or 1000 (float64) times further than the bound it reports: in float32 at
    # 1024 x 1024 that brings the output error from 8e-2 to 2e-4 for inputs of both signs. It tests the
    # recursive CG residual, which keeps falling below the rounding floor of the true one.
    margin = 0.01 if eps > 1e-10 else 1e-3
    target = margin * rtol * scale
    state = (jnp.zeros_like(rhs), rhs, z, rz, jnp.zeros((), jnp.int32))

    def active(r):
        return largest(r) > target

    def cond(state):
        _, r, _, _, k = state
        return jnp.any(active(r)) & (k < max_iterations)

    def body(state):
        x, r, p, rz, k = state
        q = schur(p)
        pq = dot(p, q)
        go = active(r) & (pq > 0)
        alpha = jnp.where(go, rz / jnp.where(go, pq, 1.0), 0.0)[None, :, None]
        x = x + alpha * p
        r = r - alpha * q
        z = _line_solve(kept, r)
        rz_new = dot(r, z)
        beta = jnp.where(go & (rz > 0), rz_new / jnp.where(rz > 0, rz, 1.0), 0.0)[None, :, None]
        return x, r, z + beta * p, rz_new, k + 1

    x_kept, _, _, _, iterations = lax.while_loop(cond, body, state)
    x_elim = _line_solve(elim, b_elim + g_elim * _swap(x_kept))
    x = (x_elim, x_kept) if sensed_bits else (x_kept, x_elim)

    # The reported residual is the true one of the full system, recomputed from the solution.
    word_residual = _line_residual(net.word, x[0], b_word, _swap(x[1]))
    bit_residual = _line_residual(net.bit, x[1], b_bit, _swap(x[0]))
    imbalance = jnp.maximum(largest(word_residual), largest(bit_residual))
    relative = imbalance / safe_scale
    floor = 4.0 * eps * wires * jnp.maximum(largest(x[0]), largest(x[1])) / safe_scale
    return (x[0] * norm, x[1] * norm), (relative, iterations, rtol + floor)


def _as_segments(value, shape, name):
    array = jnp.asarray(value)
    if array.ndim not in (0, 2) or (array.ndim == 2 and array.shape != shape):
        raise ValueError(f"Parasitics {name} must be a scalar or have the array shape {shape}, got shape {array.shape}")
    return jnp.broadcast_to(array, shape)


def _as_periphery(value, count, name, lines):
    array = jnp.asarray(value)
    if array.ndim not in (0, 1) or (array.ndim == 1 and array.shape[0] != count):
        raise ValueError(f"Parasitics {name} must be a scalar or one value per {lines} ({count}), got shape {array.shape}")
    return jnp.broadcast_to(array, (count,))


def solve_crossbar(
    conductances,
    voltages,
    parasitics: Parasitics,
    *,
    transposed: bool = False,
    rtol: float | None = None,
    max_iterations: int | None = None,
    node_voltages: bool = False,
    throw: bool = True,
) -> CrossbarSolution:
    """Solve the crossbar with wire resistance for a batch of input voltage vectors.

    Args:
        conductances: device conductances G, S, shape (M, N), non-negative.
        voltages: driver voltages, V: shape (..., M) driving the word lines, or (..., N) driving the bit
            lines when `transposed`.
        parasitics: wire and periphery resistances.
        transposed: drive the bit lines from their bottom end and sense the word lines at their left end.
            This is the backward product, and the periphery stays at the same ends as in the forward direction.
        rtol: bound on the relative Kirchhoff residual (see `CrossbarSolution.residual`); default
            `default_rtol` of the working precision (1e-9 in float64, 1e-5 in float32).
        max_iterations: most conjugate-gradient iterations (default max(100, M + N)).
        node_voltages: also return the voltage of every node, as `word_line_voltages` and
            `bit_line_voltages` of shape (..., M, N), and so `device_voltages`.
        throw: raise an error when the solver stops before reaching `rtol`, also under `jit` (through
            `equinox.error_if`); with False, check `converged` and `residual` yourself.

    Returns:
        A `CrossbarSolution`. The currents are differentiable with respect to the conductances, the
        voltages and the resistances of `parasitics` by implicit differentiation (one adjoint solve).
    """
    if not isinstance(parasitics, Parasitics):
        raise ValueError(f"parasitics must be a Parasitics instance, got {parasitics!r}")
    dtype = jnp.result_type(float)
    conductances = jnp.asarray(conductances, dtype)
    voltages = jnp.asarray(voltages, dtype)
    if conductances.ndim != 2:
        raise ValueError(f"conductances must be an (M, N) matrix in S, got shape {conductances.shape}")
    rows, cols = conductances.shape
    driven = cols if transposed else rows
    if voltages.ndim < 1 or voltages.shape[-1] != driven:
        lines = "bit lines (columns)" if transposed else "word lines (rows)"
        raise ValueError(f"voltages have shape {voltages.shape} but the array has {driven} {lines}; the last axis must have length {driven}")
    check_finite("conductances", conductances, "pass finite conductances in S")
    if is_concrete(conductances) and bool(jnp.any(conductances < 0)):
        raise ValueError(f"conductances must be >= 0 S, got {float(jnp.min(conductances))} S")
    check_finite("voltages", voltages, "pass finite voltages in V")
    rtol = default_rtol(dtype) if rtol is None else float(rtol)
    if not 0 < rtol < 1:
        raise ValueError(f"rtol must be in (0, 1), got {rtol}")
    max_iterations = max(100, rows + cols) if max_iterations is None else int(max_iterations)
    if max_iterations < 1:
        raise ValueError(f"max_iterations must be at least 1, got {max_iterations}")

    word_r = _as_segments(parasitics.word_line, (rows, cols), "word_line").astype(dtype)
    bit_r = _as_segments(parasitics.bit_line_resistance, (rows, cols), "bit_line").astype(dtype)
    left = _as_periphery(parasitics.sense if transposed else parasitics.driver, rows, "sense" if transposed else "driver", "word line").astype(dtype)
    bottom = _as_periphery(parasitics.driver if transposed else parasitics.sense, cols, "driver" if transposed else "sense", "bit line").astype(dtype)
    # One compiled function per shape and setting: called eagerly, the loops would otherwise be traced
    # and compiled again on every call.
    return _solve(
        conductances, voltages, word_r, bit_r, left, bottom, transposed=transposed, rtol=rtol,
        max_iterations=max_iterations, node_voltages=node_voltages, throw=throw,
    )


@eqx.filter_jit
def _solve(conductances, voltages, word_r, bit_r, left, bottom, *, transposed, rtol, max_iterations, node_voltages, throw):
    dtype = conductances.dtype
    rows, cols = conductances.shape
    driven = cols if transposed else rows

    # Segment conductances along each line, periphery included (see _Lines).
    g_left = 1.0 / (word_r[:, 0] + left)
    g_bottom = 1.0 / (bit_r[-1] + bottom)
    word_seg = jnp.concatenate([g_left[:, None], 1.0 / word_r[:, 1:], jnp.zeros((rows, 1), dtype)], axis=1)
    bit_seg = jnp.concatenate([jnp.zeros((1, cols), dtype), 1.0 / bit_r[:-1], g_bottom[None]], axis=0)

    batch_shape = voltages.shape[:-1]
    flat = voltages.reshape(-1, driven)
    count = flat.shape[0]
    net = _network(conductances, word_seg, bit_seg)

    def solver(sensed_bits):
        def solve(matvec, b):
            del matvec  # the solver applies the same operator through the factored lines
            return _schur_cg(net, b, rtol, max_iterations, sensed_bits)

        return solve

    def solve_chunk(block):
        size = block.shape[0]
        # Right-hand side: the driven periphery injects g * V into the first node of each driven line.
        if transposed:
            b_word = jnp.zeros((cols, size, rows), dtype)
            b_bit = jnp.zeros((rows, size, cols), dtype).at[-1].set(g_bottom * block)
        else:
            b_word = jnp.zeros((cols, size, rows), dtype).at[0].set(g_left * block)
            b_bit = jnp.zeros((rows, size, cols), dtype)
        # The adjoint of a forward solve is driven from the sensed side, so it eliminates the other family.
        (u, v), (residual, iterations, tolerance) = lax.custom_linear_solve(
            lambda x: _matvec(net, x),
            (b_word, b_bit),
            solve=solver(not transposed),
            transpose_solve=solver(transposed),
            has_aux=True,
        )
        # Current into the sensing periphery: the first word-line node of each row (transposed) or the last
        # bit-line node of each column, through to 0 V.
        currents = u[0] * g_left if transposed else v[-1] * g_bottom
        volts = (jnp.transpose(u, (1, 2, 0)), jnp.transpose(v, (1, 0, 2))) if node_voltages else None
        return currents, volts, residual, iterations, tolerance

    # Vectors are solved a chunk at a time under `lax.map`, each chunk with about _CHUNK_NODES node voltages
    # per family, which also bounds the memory. On a large array one batched solve of many vectors is slower
    # than solving them one by one, because its working set leaves the cache: at 256 x 256 in float64,
    # 16 vectors took 110 ms together and 29 ms one at a time.
    chunk = max(1, min(count, _CHUNK_NODES // (rows * cols)))
    chunks = -(-count // chunk)
    blocks = jnp.pad(flat, ((0, chunks * chunk - count), (0, 0))).reshape(chunks, chunk, driven)
    currents, volts, residual, iterations, tolerance = lax.map(solve_chunk, blocks)
    currents = currents.reshape(chunks * chunk, -1)[:count]
    residual = residual.reshape(-1)[:count]
    tolerance = tolerance.reshape(-1)[:count]
    iterations = jnp.max(iterations)
    converged = residual <= tolerance
    word_volts = bit_volts = None
    if node_voltages:
        word_volts = volts[0].reshape(chunks * chunk, rows, cols)[:count].reshape(*batch_shape, rows, cols)
        bit_volts = volts[1].reshape(chunks * chunk, rows, cols)[:count].reshape(*batch_shape, rows, cols)
    if throw:
        # Guard the outputs only: passing all 2 M N node voltages of every vector through the check would
        # copy them.
        currents, word_volts, bit_volts = _error_if_unconverged(
            (currents, word_volts, bit_volts), converged, residual, rtol, max_iterations
        )
    return CrossbarSolution(
        currents=currents.reshape(*batch_shape, -1),
        word_line_voltages=word_volts,
        bit_line_voltages=bit_volts,
        residual=residual.reshape(batch_shape),
        tolerance=tolerance.reshape(batch_shape),
        iterations=iterations,
        converged=converged.reshape(batch_shape),
    )


# Node voltages per line family in one chunk of input vectors (see `_solve`).
_CHUNK_NODES = 1 << 16

_DECADES = tuple(range(-16, 3))


def _error_if_unconverged(x, converged, residual, rtol, max_iterations):
    """Raise (also under jit) when any vector missed the tolerance, naming the residual reached."""
    worst = jnp.max(jnp.where(jnp.isnan(residual), jnp.inf, residual))
    decade = jnp.clip(jnp.ceil(jnp.log10(jnp.maximum(worst, 1e-300))), _DECADES[0], _DECADES[-1]).astype(jnp.int32)
    messages = [
        f"IR-drop solver stopped after {max_iterations} iterations with a relative Kirchhoff residual of up "
        f"to 1e{d} (requested: {rtol:g}); pass a larger max_iterations or a looser rtol, or throw=False to inspect "
        "CrossbarSolution.residual"
        for d in _DECADES
    ]
    messages[-1] = messages[-1].replace("up to 1e2", "over 10 or NaN")
    return eqx.branched_error_if(x, ~jnp.all(converged), decade - _DECADES[0], messages)
