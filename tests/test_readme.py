"""The README's first Python example runs as written."""

import re
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_example_runs(capsys):
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(encoding="utf-8"), flags=re.S)
    assert blocks, "README.md has no python example"

    namespace: dict = {}
    exec(compile(blocks[0], str(README), "exec"), namespace)

    printed = capsys.readouterr().out
    error = float(printed.strip().rsplit(" ", 1)[-1])
    # One day after programming with compensation the published PCM model gives about 10 % error.
    assert 0.02 < error < 0.3


def test_readme_later_examples_run(capsys):
    """Every later block runs after the first one, in the same namespace, as a reader would paste them."""
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(encoding="utf-8"), flags=re.S)
    namespace: dict = {}
    for block in blocks:
        exec(compile(block, str(README), "exec"), namespace)
    assert len(blocks) >= 2
    solution = namespace["solution"]
    assert solution.currents.shape == (32, 128)
    assert bool(solution.converged.all())
