"""Reference tables in `data/`: CSV files whose `# key: value` header lines name the source and tolerances.

Header keys used by the checks:

- `source`: where the numbers come from (paper, figure or equation, and the code that fitted them);
- `tolerance <check name>`: the tolerance of that check, a number followed by its unit and reason;
- `last_digit`: `column=step` pairs, the rounding step of each rounded column;
- other `name=value` lists such as `constants` or `range_S`, read with `ReferenceTable.numbers`.

Header lines that do not start with a lower-case key and a colon are free comments.
"""

from __future__ import annotations

import csv
import functools
import re
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources
from types import MappingProxyType

import numpy as np

_KEY_LINE = re.compile(r"#\s*([a-z][a-z0-9_]*(?: [a-z][a-z0-9_.]*)?):\s*(.*)")


@dataclass(frozen=True)
class ReferenceTable:
    """A reference table: float64 columns and the header entries of one CSV file.

    Attributes:
        name: file name inside the `data` folder of `xbar.validation`.
        header: header entries by key, e.g. "source" or "tolerance pcm_drift_factor_table".
        columns: read-only float64 arrays by column name.
    """

    name: str
    header: Mapping[str, str]
    columns: Mapping[str, np.ndarray]

    def __getitem__(self, column: str) -> np.ndarray:
        try:
            return self.columns[column]
        except KeyError:
            raise KeyError(f"{self.name} has no column {column!r}; its columns are {list(self.columns)}") from None

    def entry(self, key: str) -> str:
        """Return the header entry `key`, or raise ValueError naming the file when it is missing."""
        try:
            return self.header[key]
        except KeyError:
            raise ValueError(f"{self.name} has no '# {key}:' header line; add it to the file") from None

    @property
    def source(self) -> str:
        """Source of the reference numbers, as written in the header."""
        return self.entry("source")

    def tolerance(self, check: str) -> float:
        """Return the tolerance of `check`: the first word of its `tolerance <check>` header entry."""
        text = self.entry(f"tolerance {check}")
        try:
            return float(text.split()[0])
        except (IndexError, ValueError):
            raise ValueError(f"{self.name}: the tolerance of {check} must start with a number, got {text!r}") from None

    def numbers(self, key: str) -> dict[str, float]:
        """Return the `name=value` pairs of header entry `key` as floats."""
        pairs = {}
        for item in self.entry(key).split():
            name, sep, value = item.partition("=")
            if not sep:
                raise ValueError(f"{self.name}: header entry {key!r} must contain name=value pairs, got {item!r}")
            pairs[name] = float(value)
        return pairs

    def last_digit(self, column: str) -> float:
        """Return the rounding step of `column` (one unit of its last printed digit)."""
        steps = self.numbers("last_digit")
        if column not in steps:
            raise ValueError(f"{self.name}: the last_digit header entry has no step for column {column!r}")
        return steps[column]


@functools.cache
def load_table(name: str) -> ReferenceTable:
    """Read `name` from the `data` folder of the installed `xbar.validation` package."""
    text = (resources.files("xbar.validation") / "data" / name).read_text(encoding="utf-8")

    header: dict[str, str] = {}
    rows = []
    for line in text.splitlines():
        if not line.startswith("#"):
            if line.strip():
                rows.append(line)
            continue
        match = _KEY_LINE.fullmatch(line.rstrip())
        if match is None:
            continue
        key, value = match.groups()
        if key in header:
            raise ValueError(f"{name} repeats the header key {key!r}; keep one line per key")
        header[key] = value

    reader = csv.reader(rows)
    names = next(reader, None)
    if names is None:
        raise ValueError(f"{name} has no column-name row")
    values = [[float(cell) for cell in row] for row in reader]
    data = np.array(values, dtype=np.float64).reshape(len(values), len(names))
    data.flags.writeable = False
    columns = {column: data[:, index] for index, column in enumerate(names)}
    return ReferenceTable(name=name, header=MappingProxyType(header), columns=MappingProxyType(columns))
