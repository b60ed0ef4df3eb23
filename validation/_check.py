"""Definition of a validation check, its result, and the plain-text report of results."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

# Columns of the report that hold numbers and are aligned to the right: error and tolerance.
_NUMBER_COLUMNS = (1, 2)

# A measurement returns the error and a function that draws the comparison on a matplotlib Figure.
Measure = Callable[[Any], tuple[float, Callable[[Any], None]]]


@dataclass(frozen=True)
class Check:
    """Definition of one check.

    Attributes:
        name: identifier, also the stem of the plot file.
        description: what is compared, and the unit of the error.
        unit: unit of `error` and `tolerance`, e.g. "last digits" or "standard errors".
        table: reference CSV in the `data` folder whose header holds the source and this check's tolerance.
        measure: function of the device model that returns (error, draw).
    """

    name: str
    description: str
    unit: str
    table: str
    measure: Measure


@dataclass(frozen=True)
class CheckResult:
    """Outcome of one check.

    Attributes:
        name: check identifier.
        description: what was compared and how the error is measured.
        source: the published source of the reference (paper, figure or equation).
        error: measured error, in the unit of the check (`unit`).
        tolerance: largest error that passes, in the same unit.
        passed: error <= tolerance (a NaN error fails).
        plot: path of the PNG written for the check, or None when no plot was written.
        unit: unit of `error` and `tolerance`.
    """

    name: str
    description: str
    source: str
    error: float
    tolerance: float
    passed: bool
    plot: str | None
    unit: str = ""


def format_results(results: Sequence[CheckResult]) -> str:
    """Return a plain-text table with one row per check: error, tolerance, unit, PASS or FAIL, and source."""
    header = ("check", "error", "tolerance", "unit", "result", "source")
    rows = [
        (result.name, f"{result.error:.4g}", f"{result.tolerance:.4g}", result.unit,
         "PASS" if result.passed else "FAIL", result.source)
        for result in results
    ]
    # The source is the last column and is not padded, because it is long.
    widths = [max(len(row[index]) for row in [header, *rows]) for index in range(len(header) - 1)]

    def line(row):
        cells = []
        for index, (cell, width) in enumerate(zip(row, widths)):
            cells.append(cell.rjust(width) if index in _NUMBER_COLUMNS else cell.ljust(width))
        cells.append(row[-1])
        return "  ".join(cells).rstrip()

    separator = tuple("-" * width for width in widths) + ("-" * len(header[-1]),)
    failed = sum(not result.passed for result in results)
    summary = f"{len(results) - failed} of {len(results)} checks passed"
    if failed:
        summary += f", {failed} failed"
    return "\n".join([line(header), line(separator), *(line(row) for row in rows), "", summary])
