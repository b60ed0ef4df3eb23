"""Independent float64 references for the crossbar IR-drop solver, used only by the tests.

`nodal_system` assembles the modified nodal equations of the whole array with SciPy sparse matrices and
`solve_nodal` solves them directly. `ladder_row_currents` gives the currents of a single row in closed form.
Neither shares code with `xbar.crossbar.parasitics`.

Circuit (M word lines = rows i, N bit lines = columns j): cell (i, j) joins the word-line node u[i, j] to the
bit-line node v[i, j] through the device conductance G[i, j]. Word line i has its periphery on the left,
in series with word_line[i, 0]. The segment word_line[i, j] (j >= 1) joins u[i, j-1] and u[i, j], and the
right end is open. Bit line j has its periphery at the bottom, in series with bit_line[M-1, j]. The segment
bit_line[i, j] (i <= M-2) joins v[i, j] and v[i+1, j], and the top end is open. In forward mode the word
lines are driven by ideal sources behind `driver` and the bit lines end in virtual grounds behind `sense`.
Transposed mode swaps the roles: bit lines are driven and word lines are sensed.

Unknowns are ordered u[0, 0], u[0, 1], ..., u[M-1, N-1], then v in the same row-major order, which is the
order that badcrossbar 1.1.0 uses (Joksas and Mehonic, 2020, SoftwareX 12, 100617,
doi:10.1016/j.softx.2020.100617).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import scipy.sparse
import scipy.sparse.linalg

# Random problems for the badcrossbar comparison: device resistances log-uniform in this range (ohm) and
# inputs uniform in [-INPUT_AMPLITUDE, INPUT_AMPLITUDE] (V).
RESISTANCE_RANGE = (1e3, 1e6)
INPUT_AMPLITUDE = 0.3


class NodalSolution(NamedTuple):
    """Currents and node voltages of a solved crossbar, with a leading batch axis when the input has one."""

    currents: np.ndarray  # (..., N) forward or (..., M) transposed: current into each sense amplifier, A
    word_line_voltages: np.ndarray  # (..., M, N), V
    bit_line_voltages: np.ndarray  # (..., M, N), V


def _segment_array(values, shape, name):
    """Broadcast a scalar or (M, N) wire resistance to shape and check that every segment is positive."""
    array = np.asarray(values, dtype=np.float64)
    if array.ndim not in (0, 2) or (array.ndim == 2 and array.shape != shape):
        raise ValueError(f"{name} must be a scalar or have shape {shape}, got shape {array.shape}")
    array = np.broadcast_to(array, shape)
    # A zero segment would need an infinite conductance in the nodal matrix, so this reference rejects it.
    if not np.all(np.isfinite(array)) or np.any(array <= 0):
        raise ValueError(f"{name} must be finite and > 0 ohm in the nodal reference, got min {array.min()}")
    return array


def _line_array(values, length, name):
    """Broadcast a scalar or per-line periphery resistance to (length,)."""
    array = np.asarray(values, dtype=np.float64)
    if array.ndim not in (0, 1) or (array.ndim == 1 and array.shape != (length,)):
        raise ValueError(f"{name} must be a scalar or have shape ({length},), got shape {array.shape}")
    array = np.broadcast_to(array, (length,))
    if not np.all(np.isfinite(array)) or np.any(array < 0):
        raise ValueError(f"{name} must be finite and >= 0 ohm, got min {array.min()}")
    return array


def _prepare(conductances, inputs, word_line, bit_line, driver, sense, transposed):
    """Convert and check the arguments shared by `nodal_system` and `solve_nodal`."""
    conductances = np.asarray(conductances, dtype=np.float64)
    if conductances.ndim != 2 or not np.all(np.isfinite(conductances)) or np.any(conductances < 0):
        raise ValueError("conductances must be a finite, non-negative (M, N) array in S")
    rows, columns = conductances.shape

    inputs = np.asarray(inputs, dtype=np.float64)
    driven = columns if transposed else rows
    if inputs.ndim not in (1, 2) or inputs.shape[-1] != driven:
        raise ValueError(f"inputs must have shape ({driven},) or (B, {driven}), got {inputs.shape}")

    word_line = _segment_array(word_line, conductances.shape, "word_line")
    bit_line = word_line if bit_line is None else _segment_array(bit_line, conductances.shape, "bit_line")
    driver = _line_array(driver, driven, "driver")
    sense = _line_array(sense, rows if transposed else columns, "sense")
    return conductances, inputs, word_line, bit_line, driver, sense


def _assemble(conductances, inputs, word_line, bit_line, driver, sense, transposed):
    """Stamp the conductance matrix (CSC) and the (2 M N, B) right-hand side from checked arguments."""
    rows, columns = conductances.shape
    size = rows * columns
    u = np.arange(size).reshape(rows, columns)
    v = size + u
    batch = np.atleast_2d(inputs)

    # Two-terminal branches between unknown nodes: devices, word-line segments, bit-line segments.
    first = [u.ravel(), u[:, :-1].ravel(), v[:-1, :].ravel()]
    second = [v.ravel(), u[:, 1:].ravel(), v[1:, :].ravel()]
    branch = [conductances.ravel(), 1.0 / word_line[:, 1:].ravel(), 1.0 / bit_line[:-1, :].ravel()]

    # Each periphery is a fixed potential (source or virtual ground) behind its resistance plus the first
    # (word line) or last (bit line) segment.
    word_periphery = sense if transposed else driver
    bit_periphery = driver if transposed else sense
    word_ends = u[:, 0]
    bit_ends = v[-1, :]
    word_end_conductance = 1.0 / (word_line[:, 0] + word_periphery)
    bit_end_conductance = 1.0 / (bit_line[-1, :] + bit_periphery)

    a = np.concatenate(first)
    b = np.concatenate(second)
    g = np.concatenate(branch)
    ends = np.concatenate([word_ends, bit_ends])
    end_conductance = np.concatenate([word_end_conductance, bit_end_conductance])
    matrix_rows = np.concatenate([a, b, a, b, ends])
    matrix_columns = np.concatenate([a, b, b, a, ends])
    values = np.concatenate([g, g, -g, -g, end_conductance])
    # COO sums duplicate entries, which is what stamping needs.
    matrix = scipy.sparse.coo_matrix((values, (matrix_rows, matrix_columns)), shape=(2 * size, 2 * size)).tocsc()

    rhs = np.zeros((2 * size, batch.shape[0]))
    if transposed:
        rhs[bit_ends, :] = bit_end_conductance[:, None] * batch.T
    else:
        rhs[word_ends, :] = word_end_conductance[:, None] * batch.T
    return matrix, rhs


def nodal_system(conductances, inputs, word_line, bit_line=None, driver=0.0, sense=0.0, *, transposed=False):
    """Assemble the nodal equations A @ x = rhs of the crossbar.

    Arguments follow `xbar.crossbar.solve_crossbar` and `Parasitics`: conductances (M, N) in S, inputs
    (M,) or (B, M) forward and (N,) or (B, N) transposed, in V; word_line and bit_line in ohm per segment,
    scalar or (M, N), with bit_line=None meaning the same as word_line; driver and sense in ohm, scalar or one
    per driven or sensed line. Every wire segment must be > 0 ohm because it enters the matrix as 1 / R.

    Returns the (2 M N, 2 M N) CSC matrix A and the (2 M N, B) right-hand side. Row k of A @ x - rhs is the
    net current (A) leaving node k, so it is the Kirchhoff-current-law residual at that node.
    """
    prepared = _prepare(conductances, inputs, word_line, bit_line, driver, sense, transposed)
    return _assemble(*prepared, transposed)


def solve_nodal(conductances, inputs, word_line, bit_line=None, driver=0.0, sense=0.0, *, transposed=False):
    """Solve the crossbar with a sparse direct solve (SciPy `spsolve`) of the nodal equations.

    Takes the arguments of `nodal_system` and returns a `NodalSolution`. Forward currents are
    v[M-1, j] / (bit_line[M-1, j] + sense[j]), transposed currents u[i, 0] / (word_line[i, 0] + sense[i]).
    A 1-D input gives outputs without a batch axis.
    """
    conductances, inputs, word_line, bit_line, driver, sense = _prepare(
        conductances, inputs, word_line, bit_line, driver, sense, transposed
    )
    matrix, rhs = _assemble(conductances, inputs, word_line, bit_line, driver, sense, transposed)
    rows, columns = conductances.shape
    size = rows * columns

    # spsolve returns a 1-D array for a single right-hand side, so restore the column axis.
    potentials = scipy.sparse.linalg.spsolve(matrix, rhs).reshape(2 * size, rhs.shape[1])
    word_voltages = potentials[:size].T.reshape(-1, rows, columns)
    bit_voltages = potentials[size:].T.reshape(-1, rows, columns)

    if transposed:
        currents = word_voltages[:, :, 0] / (word_line[:, 0] + sense)
    else:
        currents = bit_voltages[:, -1, :] / (bit_line[-1, :] + sense)

    if inputs.ndim == 1:
        return NodalSolution(currents[0], word_voltages[0], bit_voltages[0])
    return NodalSolution(currents, word_voltages, bit_voltages)


def ladder_row_currents(conductances, inputs, word_line, bit_line, driver=0.0, sense=0.0):
    """Compute the output currents of a single driven row (M = 1) by a ladder recursion, without a linear solve.

    The row is a resistive ladder. The word line is driven at the left by an ideal source x behind `driver`,
    and w_j = word_line[j] is the segment before node u_j, so driver + w_0 lies between the source and u_0.
    Each column j is one series branch from u_j to the virtual ground: the device G_j, then the single bit-line
    segment b_j = bit_line[j], then sense_j. Its admittance is y_j = G_j / (1 + G_j (b_j + sense_j)).

    Y_j, the admittance from node u_j to ground of everything at and to the right of u_j, follows from the
    open right end inward:

        Y_{N-1} = y_{N-1},    Y_j = y_j + Y_{j+1} / (1 + w_{j+1} Y_{j+1}).

    Each series resistance r_0 = driver + w_0 and r_j = w_j (j >= 1) forms a voltage divider with Y_j, so
    u_j = u_{j-1} / (1 + r_j Y_j), with u_{-1} = x. The output currents are therefore

        I_j = y_j x prod_{k=0..j} 1 / (1 + r_k Y_k).

    Arguments: conductances (N,) in S; inputs scalar or (B,) in V; word_line and bit_line scalar or (N,) in
    ohm; driver scalar in ohm; sense scalar or (N,) in ohm. Zero resistances are allowed here. Returns the
    currents with shape inputs.shape + (N,), in A.
    """
    conductances = np.asarray(conductances, dtype=np.float64)
    if conductances.ndim != 1:
        raise ValueError(f"conductances must have shape (N,) for a single row, got {conductances.shape}")
    columns = conductances.shape[0]
    word_line = np.broadcast_to(np.asarray(word_line, dtype=np.float64), (columns,))
    column_series = np.broadcast_to(np.asarray(bit_line, dtype=np.float64) + sense, (columns,))
    inputs = np.asarray(inputs, dtype=np.float64)

    branch_admittance = conductances / (1.0 + conductances * column_series)

    load = np.empty(columns)
    load[-1] = branch_admittance[-1]
    for j in range(columns - 2, -1, -1):
        load[j] = branch_admittance[j] + load[j + 1] / (1.0 + word_line[j + 1] * load[j + 1])

    series = word_line.copy()
    series[0] += driver
    transfer = np.cumprod(1.0 / (1.0 + series * load))
    return inputs[..., None] * branch_admittance * transfer


def random_problem(seed, shape, num_vectors):
    """Draw the device resistances and input voltages of one random test problem.

    Resistances (M, N) are log-uniform in RESISTANCE_RANGE (ohm) and inputs (num_vectors, M) uniform in
    [-INPUT_AMPLITUDE, INPUT_AMPLITUDE] (V), drawn in that order from numpy.random.default_rng(seed), so a
    stored (seed, shape, num_vectors) rebuilds the same problem.
    """
    rng = np.random.default_rng(seed)
    low, high = np.log10(RESISTANCE_RANGE)
    resistances = 10.0 ** rng.uniform(low, high, size=tuple(shape))
    inputs = rng.uniform(-INPUT_AMPLITUDE, INPUT_AMPLITUDE, size=(num_vectors, shape[0]))
    return resistances, inputs


def import_badcrossbar_compute():
    """Import `badcrossbar.compute` without its optional plotting and file-path dependencies.

    badcrossbar 1.1.0 imports pathvalidate in `badcrossbar.utils` only to clean file paths for saving and
    plotting, and `compute` never calls it. When pathvalidate is missing, a stand-in module is registered
    whose function raises, so a path that does need it fails loudly. The package's import-time warnings are
    silenced, the root logger is left as it was, and the badcrossbar logger is raised to WARNING.

    Raises ImportError when badcrossbar is not installed.
    """
    import importlib.util
    import logging
    import sys
    import types
    import warnings

    if importlib.util.find_spec("badcrossbar") is None:
        raise ImportError("badcrossbar is not installed")
    # find_spec raises for a module already in sys.modules without a spec, such as the stand-in below.
    if "pathvalidate" not in sys.modules and importlib.util.find_spec("pathvalidate") is None:
        stand_in = types.ModuleType("pathvalidate")

        def sanitize_filepath(*args, **kwargs):
            raise NotImplementedError("pathvalidate is not installed; badcrossbar cannot save or plot files")

        stand_in.sanitize_filepath = sanitize_filepath
        sys.modules["pathvalidate"] = stand_in

    # badcrossbar's __init__ warns about the missing cairo package and calls logging.basicConfig, which
    # attaches a stdout handler to the root logger when it has none. Both are undone here.
    root = logging.getLogger()
    root_handlers, root_level = list(root.handlers), root.level
    with warnings.catch_warnings(record=True):
        from badcrossbar.compute import compute
    for handler in root.handlers[len(root_handlers) :]:
        root.removeHandler(handler)
    root.setLevel(root_level)
    logging.getLogger("badcrossbar").setLevel(logging.WARNING)
    return compute
