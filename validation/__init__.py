"""Validation of xbar's device models against published curves and models (`xbar validate`).

Each check compares a model with a reference table in `data/` whose header names the source and the
tolerance, and can save a plot of the comparison.
"""

from ._check import CheckResult, format_results
from ._runner import list_checks, run_checks

__all__ = ["CheckResult", "format_results", "list_checks", "run_checks"]
