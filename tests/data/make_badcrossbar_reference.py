"""Write badcrossbar's output currents for fixed random crossbars to badcrossbar_reference.npz.

The stored data were made with badcrossbar 1.1.0 (installed with `pip install --no-deps badcrossbar==1.1.0`),
NumPy 2.4.6 and SciPy 1.17.1 by running, from the repository root:

    /work/venv/bin/python tests/data/make_badcrossbar_reference.py

Each case stores only what rebuilds it: its seed, shape (M, N), number of input vectors B, and the word-line
and bit-line resistance per segment (ohm, scalars, log-uniform in 0.1 to 10 ohm and different from each
other). `_nodal_reference.random_problem(seed, shape, B)` regenerates the device resistances and the (B, M)
inputs. badcrossbar.compute is called with driver = sense = 0 (its only option), and its `currents.output`
(B, N), in A, is stored as `currents_<case index>`.

Before writing, the script solves every case with `_nodal_reference.solve_nodal` and exits with an error if
the two disagree by more than AGREEMENT_RTOL, measured as max |difference| / max |badcrossbar current| per
case.
"""

from __future__ import annotations

import importlib.metadata
import os
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from _nodal_reference import import_badcrossbar_compute, random_problem, solve_nodal  # noqa: E402

OUTPUT = Path(__file__).with_name("badcrossbar_reference.npz")
SHAPES = [(8, 8), (16, 32), (64, 64), (100, 37), (128, 128), (256, 256), (200, 256)]
NUM_VECTORS = [1, 4]
FIRST_SEED = 100
WIRE_SEED = 7
WIRE_RANGE = (0.1, 10.0)  # ohm per segment
AGREEMENT_RTOL = 1e-9


def main():
    compute = import_badcrossbar_compute()
    version = importlib.metadata.version("badcrossbar")
    wire_rng = np.random.default_rng(WIRE_SEED)

    cases = [(shape, count) for shape in SHAPES for count in NUM_VECTORS]
    arrays = {
        "seeds": FIRST_SEED + np.arange(len(cases)),
        "shapes": np.array([shape for shape, _ in cases]),
        "num_vectors": np.array([count for _, count in cases]),
        "word_line": np.empty(len(cases)),
        "bit_line": np.empty(len(cases)),
        "badcrossbar_version": np.array(version),
    }

    worst = 0.0
    for index, (shape, count) in enumerate(cases):
        word_line, bit_line = 10.0 ** wire_rng.uniform(*np.log10(WIRE_RANGE), size=2)
        arrays["word_line"][index] = word_line
        arrays["bit_line"][index] = bit_line

        resistances, inputs = random_problem(arrays["seeds"][index], shape, count)
        solution = compute(
            inputs.T,
            resistances,
            r_i_word_line=word_line,
            r_i_bit_line=bit_line,
            node_voltages=False,
            all_currents=False,
        )
        currents = np.asarray(solution.currents.output, dtype=np.float64).reshape(count, shape[1])
        arrays[f"currents_{index}"] = currents

        reference = solve_nodal(1.0 / resistances, inputs, word_line, bit_line).currents
        relative = np.abs(reference - currents).max() / np.abs(currents).max()
        worst = max(worst, relative)
        print(
            f"case {index:2d}: {shape[0]:3d} x {shape[1]:3d}, B = {count}, word_line = {word_line:.3g} ohm, "
            f"bit_line = {bit_line:.3g} ohm, max relative difference = {relative:.2e}"
        )

    print(f"worst relative difference: {worst:.2e} (badcrossbar {version})")
    if worst > AGREEMENT_RTOL:
        sys.exit(f"error: SciPy reference and badcrossbar differ by {worst:.2e} > {AGREEMENT_RTOL:.0e}")

    # Write to a temporary file in the same folder first, so an interrupted run leaves the old data intact.
    with tempfile.NamedTemporaryFile(dir=OUTPUT.parent, suffix=".npz", delete=False) as handle:
        np.savez(handle, **arrays)
    os.replace(handle.name, OUTPUT)
    print(f"wrote {OUTPUT} ({OUTPUT.stat().st_size} bytes)")


if __name__ == "__main__":
    main()
