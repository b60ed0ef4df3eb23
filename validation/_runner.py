"""Registry of the validation checks and the function that runs them."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterable
from pathlib import Path

from xbar.devices import PCM

from . import _compact, _hermes, _pcm, _pulsed, _stdp, _waveform
from ._check import Check, CheckResult
from ._plot import save_figure
from ._tables import load_table

logger = logging.getLogger(__name__)

# Each module of checks defines CHECKS, a tuple of Check; add a new module here to register its checks.
_MODULES = (_pcm, _compact, _pulsed, _stdp, _waveform, _hermes)
_CHECKS: dict[str, Check] = {check.name: check for module in _MODULES for check in module.CHECKS}


def list_checks() -> list[str]:
    """Return the names of all checks, in the order `run_checks` runs them."""
    return list(_CHECKS)


def _select(names: str | Iterable[str] | None) -> list[Check]:
    if names is None:
        return list(_CHECKS.values())
    if isinstance(names, str):
        names = [names]
    selected = []
    for name in names:
        if name not in _CHECKS:
            raise ValueError(f"unknown validation check {name!r}; choose from {', '.join(_CHECKS)}")
        selected.append(_CHECKS[name])
    return selected


def run_checks(
    output_dir: str | os.PathLike | None = None,
    names: str | Iterable[str] | None = None,
    *,
    pcm: PCM | None = None,
    progress: Callable[[int, int, str], None] | None = None,
) -> list[CheckResult]:
    """Run validation checks and return their results in the order run.

    Args:
        output_dir: folder for one PNG plot per check, named `<check name>.png` and created if missing;
            None writes no plots. Without matplotlib no plots are written and `CheckResult.plot` is None.
        names: check names from `list_checks()` (one name or several); None runs all checks.
        pcm: the PCM model under test; None uses `PCM()` with its published defaults. Pass a modified
            model to see which checks it fails.
        progress: called as `progress(done, total, name)` after each check.

    Raises:
        ValueError: for an unknown check name.
        TypeError: when `pcm` is not an `xbar.devices.PCM`.
    """
    checks = _select(names)
    model = PCM() if pcm is None else pcm
    if not isinstance(model, PCM):
        raise TypeError(f"pcm must be an xbar.devices.PCM, got {type(model).__name__}")
    folder = None if output_dir is None else Path(output_dir)
    if folder is not None:
        folder.mkdir(parents=True, exist_ok=True)

    results = []
    for done, check in enumerate(checks, start=1):
        logger.debug("running validation check %s", check.name)
        result = _run_check(check, model, folder)
        logger.info("validation check %s: error %.4g %s, tolerance %.4g, %s", result.name, result.error,
                    result.unit, result.tolerance, "passed" if result.passed else "FAILED")
        results.append(result)
        if progress is not None:
            progress(done, len(checks), check.name)
    return results


def _run_check(check: Check, model: PCM, folder: Path | None) -> CheckResult:
    table = load_table(check.table)
    tolerance = table.tolerance(check.name)
    error, draw = check.measure(model)
    # A NaN error compares False and so fails.
    passed = bool(error <= tolerance)

    plot = None
    if folder is not None:
        verdict = "PASS" if passed else "FAIL"
        title = f"{check.name}: error {error:.3g} {check.unit}, tolerance {tolerance:.3g} ({verdict})"
        plot = save_figure(folder / f"{check.name}.png", draw, title)

    return CheckResult(
        name=check.name, description=check.description, source=table.source, error=float(error),
        tolerance=tolerance, passed=passed, plot=plot, unit=check.unit,
    )
