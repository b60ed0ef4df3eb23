"""Tests of the float64 crossbar references in `_nodal_reference`, which later check the IR-drop solver.

The SciPy nodal solve is compared with stored currents from badcrossbar 1.1.0 (Joksas and Mehonic, 2020,
SoftwareX 12, 100617) and with a live badcrossbar run when it is installed. It is also compared with the
closed-form ladder of a single row and with itself under a 180-degree rotation of the array.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from _nodal_reference import (
    import_badcrossbar_compute,
    ladder_row_currents,
    nodal_system,
    random_problem,
    solve_nodal,
)

REFERENCE_DATA = Path(__file__).parent / "data" / "badcrossbar_reference.npz"
# Both sides are float64 direct solves of the same equations. Measured max |difference| / max |current|
# is below 4e-13 up to 256 x 256, so 1e-9 leaves room for other LAPACK builds and still catches any
# circuit difference, which changes the currents by percent.
AGREEMENT_RTOL = 1e-9


def _relative_difference(actual, expected):
    return np.abs(actual - expected).max() / np.abs(expected).max()


def _load_reference():
    with np.load(REFERENCE_DATA) as data:
        return {name: data[name] for name in data.files}


REFERENCE = _load_reference()
CASES = range(len(REFERENCE["seeds"]))


def _random_wires(rng, shape, low=0.1, high=10.0):
    return 10.0 ** rng.uniform(np.log10(low), np.log10(high), size=shape)


def test_reference_data_metadata():
    assert str(REFERENCE["badcrossbar_version"]) == "1.1.0"
    assert len(CASES) == 14
    assert np.all(REFERENCE["word_line"] != REFERENCE["bit_line"])
    for index in CASES:
        expected_shape = (REFERENCE["num_vectors"][index], REFERENCE["shapes"][index][1])
        assert REFERENCE[f"currents_{index}"].shape == expected_shape


@pytest.mark.parametrize("index", CASES)
def test_nodal_matches_stored_badcrossbar(index):
    shape = tuple(REFERENCE["shapes"][index])
    resistances, inputs = random_problem(REFERENCE["seeds"][index], shape, REFERENCE["num_vectors"][index])
    expected = REFERENCE[f"currents_{index}"]

    currents = solve_nodal(1.0 / resistances, inputs, REFERENCE["word_line"][index], REFERENCE["bit_line"][index])

    assert _relative_difference(currents.currents, expected) < AGREEMENT_RTOL
    # The wires must matter, or agreement would only test x @ G.
    assert _relative_difference(inputs @ (1.0 / resistances), expected) > 1e-2


def test_nodal_matches_live_badcrossbar():
    try:
        compute = import_badcrossbar_compute()
    except ImportError as error:
        pytest.skip(f"badcrossbar is unavailable: {error}")
    resistances, inputs = random_problem(5, (12, 9), 3)
    word_line, bit_line = 2.5, 0.7

    expected = compute(
        inputs.T, resistances, r_i_word_line=word_line, r_i_bit_line=bit_line, node_voltages=True, all_currents=False
    )
    solution = solve_nodal(1.0 / resistances, inputs, word_line, bit_line)

    assert _relative_difference(solution.currents, expected.currents.output) < AGREEMENT_RTOL
    # badcrossbar stores node voltages as (M, N, B).
    expected_word = np.moveaxis(expected.voltages.word_line, -1, 0)
    expected_bit = np.moveaxis(expected.voltages.bit_line, -1, 0)
    assert _relative_difference(solution.word_line_voltages, expected_word) < AGREEMENT_RTOL
    assert _relative_difference(solution.bit_line_voltages, expected_bit) < AGREEMENT_RTOL


def test_transposed_matches_live_badcrossbar():
    try:
        compute = import_badcrossbar_compute()
    except ImportError as error:
        pytest.skip(f"badcrossbar is unavailable: {error}")
    # badcrossbar has no transposed mode, so it solves the array rotated by 180 degrees, whose forward
    # currents are the transposed currents in reverse order.
    resistances, _ = random_problem(6, (7, 11), 1)
    drive = np.random.default_rng(6).uniform(-0.3, 0.3, size=(2, 11))
    word_line, bit_line = 1.3, 4.1

    expected = compute(
        drive[:, ::-1].T,
        resistances.T[::-1, ::-1],
        r_i_word_line=bit_line,
        r_i_bit_line=word_line,
        node_voltages=False,
        all_currents=False,
    )
    solution = solve_nodal(1.0 / resistances, drive, word_line, bit_line, transposed=True)

    assert _relative_difference(solution.currents, expected.currents.output[:, ::-1]) < AGREEMENT_RTOL


def test_rotation_identity():
    rng = np.random.default_rng(11)
    rows, columns, batch = 7, 5, 3
    conductances = 1.0 / random_problem(11, (rows, columns), 1)[0]
    drive = rng.uniform(-0.3, 0.3, size=(batch, columns))
    word_line = _random_wires(rng, (rows, columns))
    bit_line = _random_wires(rng, (rows, columns))
    driver = rng.uniform(0.0, 20.0, size=columns)
    sense = rng.uniform(0.0, 20.0, size=rows)

    def rotate(array):
        return array.T[::-1, ::-1]

    transposed = solve_nodal(conductances, drive, word_line, bit_line, driver, sense, transposed=True)
    rotated = solve_nodal(
        rotate(conductances), drive[:, ::-1], rotate(bit_line), rotate(word_line), driver[::-1], sense[::-1]
    )

    # The two solves order the nodes differently, so they agree to rounding relative to the largest value,
    # not element by element where a node voltage or current is small.
    assert _relative_difference(transposed.currents, rotated.currents[:, ::-1]) < 1e-12
    # Word-line node u[i, j] becomes bit-line node v'[N-1-j, M-1-i] of the rotated array, and vice versa.
    rotated_bit = np.swapaxes(rotated.bit_line_voltages[:, ::-1, ::-1], 1, 2)
    rotated_word = np.swapaxes(rotated.word_line_voltages[:, ::-1, ::-1], 1, 2)
    assert _relative_difference(transposed.word_line_voltages, rotated_bit) < 1e-12
    assert _relative_difference(transposed.bit_line_voltages, rotated_word) < 1e-12


def test_ladder_matches_nodal_row():
    rng = np.random.default_rng(3)
    columns = 60
    conductances = 1.0 / random_problem(3, (1, columns), 1)[0][0]
    inputs = np.array([0.2, -0.05, 0.3])
    word_line = _random_wires(rng, columns)
    bit_line = _random_wires(rng, columns)
    driver = 15.0
    sense = rng.uniform(0.0, 30.0, size=columns)

    ladder = ladder_row_currents(conductances, inputs, word_line, bit_line, driver, sense)
    nodal = solve_nodal(conductances[None, :], inputs[:, None], word_line[None, :], bit_line[None, :], driver, sense)

    assert ladder.shape == (3, columns)
    np.testing.assert_allclose(ladder, nodal.currents, rtol=1e-11)


def test_ladder_single_cell_is_series_circuit():
    conductance, voltage = 1e-4, 0.25
    word_line, bit_line, driver, sense = 3.0, 5.0, 40.0, 60.0

    current = ladder_row_currents([conductance], voltage, word_line, bit_line, driver, sense)

    np.testing.assert_allclose(current, [voltage / (driver + word_line + 1 / conductance + bit_line + sense)])


def test_ladder_ideal_wires_give_ohms_law():
    conductances = np.array([1e-3, 0.0, 2e-5, 7e-4])

    currents = ladder_row_currents(conductances, 0.1, 0.0, 0.0)

    np.testing.assert_allclose(currents, 0.1 * conductances, rtol=1e-15)


@pytest.mark.parametrize("transposed", [False, True])
def test_nodal_tiny_wires_approach_ideal_product(transposed):
    resistances, inputs = random_problem(21, (9, 6), 2)
    conductances = 1.0 / resistances
    if transposed:
        inputs = np.random.default_rng(21).uniform(-0.3, 0.3, size=(2, 6))
        ideal = inputs @ conductances.T
    else:
        ideal = inputs @ conductances

    # Every line carries below 1e-2 A, so with 1e-9 ohm segments each node lies within about 1e-10 V of its
    # ideal potential and each current moves by about 1e-12 A, far below rtol times a 1e-4 A current.
    currents = solve_nodal(conductances, inputs, 1e-9, transposed=transposed).currents

    np.testing.assert_allclose(currents, ideal, rtol=1e-6, atol=1e-15)


@pytest.mark.parametrize("transposed", [False, True])
def test_nodal_conserves_current(transposed):
    rng = np.random.default_rng(8)
    rows, columns = 6, 8
    conductances = 1.0 / random_problem(8, (rows, columns), 1)[0]
    driven, sensed = (columns, rows) if transposed else (rows, columns)
    inputs = rng.uniform(-0.3, 0.3, size=(4, driven))
    word_line = _random_wires(rng, (rows, columns))
    bit_line = _random_wires(rng, (rows, columns))
    driver = rng.uniform(0.0, 50.0, size=driven)
    sense = rng.uniform(0.0, 50.0, size=sensed)

    solution = solve_nodal(conductances, inputs, word_line, bit_line, driver, sense, transposed=transposed)
    if transposed:
        drive_end = solution.bit_line_voltages[:, -1, :]
        drive_series = bit_line[-1, :] + driver
    else:
        drive_end = solution.word_line_voltages[:, :, 0]
        drive_series = word_line[:, 0] + driver
    supplied = ((inputs - drive_end) / drive_series).sum(axis=1)

    np.testing.assert_allclose(solution.currents.sum(axis=1), supplied, rtol=1e-10)


def test_nodal_system_residual_is_small():
    rng = np.random.default_rng(9)
    resistances, inputs = random_problem(9, (10, 12), 2)
    word_line = _random_wires(rng, (10, 12))
    bit_line = _random_wires(rng, (10, 12))

    matrix, rhs = nodal_system(1.0 / resistances, inputs, word_line, bit_line, 5.0, 8.0)
    solution = solve_nodal(1.0 / resistances, inputs, word_line, bit_line, 5.0, 8.0)
    potentials = np.concatenate(
        [solution.word_line_voltages.reshape(2, -1), solution.bit_line_voltages.reshape(2, -1)], axis=1
    ).T
    device_current = np.abs((solution.word_line_voltages - solution.bit_line_voltages) / resistances).sum()

    assert matrix.shape == (240, 240)
    assert rhs.shape == (240, 2)
    assert np.abs(matrix @ potentials - rhs).max() < 1e-12 * device_current
    # Perturbing one node voltage by 1 mV must show up in the residual, or the check above is empty.
    potentials[17, 0] += 1e-3
    assert np.abs(matrix @ potentials - rhs).max() > 1e-6 * device_current


def test_single_input_has_no_batch_axis():
    resistances, inputs = random_problem(4, (3, 4), 1)

    solution = solve_nodal(1.0 / resistances, inputs[0], 1.0)

    assert solution.currents.shape == (4,)
    assert solution.word_line_voltages.shape == (3, 4)
    np.testing.assert_array_equal(solution.currents, solve_nodal(1.0 / resistances, inputs, 1.0).currents[0])


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"word_line": 0.0}, "word_line"),
        ({"word_line": 1.0, "bit_line": np.ones((2, 2))}, "bit_line"),
        ({"word_line": 1.0, "driver": -1.0}, "driver"),
        ({"word_line": 1.0, "sense": np.ones(2)}, "sense"),
    ],
)
def test_nodal_rejects_invalid_wires(arguments, message):
    with pytest.raises(ValueError, match=message):
        solve_nodal(np.full((3, 4), 1e-4), np.ones(3), **arguments)
