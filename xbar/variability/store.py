"""On-disk store of the finished chunks of a sweep, so that an interrupted sweep can resume.

A store is a folder, usually beside the sweep's output file, that contains:

- `manifest.json`: what the sweep computes (a fingerprint of its configuration, the axes, seeds and
  metrics, the xbar and jax versions) and its chunk layout.
- `chunk-000000.npz`, `chunk-000001.npz`, ...: the metrics of each finished chunk, as NumPy arrays.

Every file is written to a temporary name in the folder, flushed to disk, then moved onto its final name
with `os.replace`, which is atomic on POSIX file systems. A process killed at any moment (SIGKILL
included) therefore leaves either a complete chunk file or none, and loses at most the chunks it was
computing. The temporary file of a killed writer is removed when the store is next opened. A store
serves one sweep identity only: a manifest that describes another sweep is rejected, so the chunks of
two configurations are never mixed.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import hashlib
import json
import logging
import math
import os
import re
import secrets
import zipfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "MANIFEST_NAME", "ChunkLayout", "ChunkStore", "StoreError", "StoreExistsError", "StoreMismatchError",
    "fingerprint_text", "remove_store",
]

logger = logging.getLogger(__name__)
logger.addHandler(logging.NullHandler())

MANIFEST_NAME = "manifest.json"
STORE_FORMAT = "xbar-sweep-store"
STORE_FORMAT_VERSION = 1

_CHUNK_PATTERN = re.compile(r"^chunk-(\d{6,})\.npz$")
_TEMPORARY_PATTERN = re.compile(r"^\..+\.tmp$")
# Key of the chunk's position inside its .npz file: (chunk index, combination, start, stop).
_BOUNDS_KEY = "bounds"


class StoreError(ValueError):
    """A sweep store that cannot be used for the requested sweep; the message names the fix."""


class StoreExistsError(StoreError):
    """A store already exists where a new sweep would start, and resuming was not requested."""


class StoreMismatchError(StoreError):
    """A store was written for another sweep (configuration, axes, seeds, metrics or versions).

    Attributes:
        stored_attrs: the Dataset attributes that the store's sweep kept in its manifest (empty when it
            kept none), so that a caller can describe the change in its own terms.
    """

    def __init__(self, message: str, stored_attrs: Mapping[str, Any] | None = None):
        super().__init__(message)
        self.stored_attrs = dict(stored_attrs or {})


def fingerprint_text(text: str) -> str:
    """Return "sha256:<hex digest>" of a configuration text, the fingerprint that identifies a study."""
    return "sha256:" + hashlib.sha256(text.encode("utf-8")).hexdigest()


@dataclasses.dataclass(frozen=True)
class ChunkLayout:
    """The split of a sweep into chunks.

    The points of a sweep are grouped by looped combination (one combination of the values of the looped
    axes), and each combination's `points` (vectorized grid points times seeds, in C order) are cut into
    chunks of `chunk_size` consecutive points. The last chunk of a combination may be shorter. Chunks are
    numbered combination by combination.

    Attributes:
        combinations: number of looped combinations (1 when no axis is looped).
        points: points per combination.
        chunk_size: points per chunk, at most `points`.
    """

    combinations: int
    points: int
    chunk_size: int

    def __post_init__(self) -> None:
        for name in ("combinations", "points", "chunk_size"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"ChunkLayout.{name} must be a positive int, got {value!r}")
        if self.chunk_size > self.points:
            raise ValueError(f"ChunkLayout.chunk_size = {self.chunk_size} exceeds the {self.points} points per combination")

    @property
    def chunks_per_combination(self) -> int:
        return math.ceil(self.points / self.chunk_size)

    @property
    def n_chunks(self) -> int:
        return self.combinations * self.chunks_per_combination

    @property
    def total_points(self) -> int:
        return self.combinations * self.points

    def bounds(self, index: int) -> tuple[int, int, int]:
        """Return (combination, start, stop) of chunk `index`: its points are start..stop-1 of that combination."""
        if not 0 <= index < self.n_chunks:
            raise IndexError(f"chunk index {index} is out of range for {self.n_chunks} chunks")
        combination, position = divmod(index, self.chunks_per_combination)
        start = position * self.chunk_size
        return combination, start, min(start + self.chunk_size, self.points)

    def to_json(self) -> dict[str, int]:
        return {"combinations": self.combinations, "points": self.points, "chunk_size": self.chunk_size}


@contextlib.contextmanager
def _atomic_file(target: Path) -> Iterator[Any]:
    """Open a temporary file beside `target` for writing, then flush, sync and move it onto `target`.

    The temporary file is removed when the block raises, so a failed write leaves no partial file.
    """
    temporary = target.with_name(f".{target.name}.{secrets.token_hex(6)}.tmp")
    try:
        with open(temporary, "wb") as stream:
            yield stream
            stream.flush()
            # The data reaches the disk before the rename, so that after a power failure the final name
            # never points at an empty file. A killed process needs only the rename.
            os.fsync(stream.fileno())
        os.replace(temporary, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        raise


def _describe_difference(key: str, stored: Any, current: Any) -> str:
    labels = {
        "fingerprint": "configuration fingerprint",
        "axes": "sweep axes",
        "seeds": "seeds",
        "metrics": "metrics",
        "xbar_version": "xbar version",
        "jax_version": "jax version",
    }
    label = labels.get(key, key)
    stored_text, current_text = json.dumps(stored), json.dumps(current)
    if len(stored_text) + len(current_text) > 200:
        return f"{label} differ"
    return f"{label}: {stored_text} in the store, {current_text} now"


class ChunkStore:
    """A folder of finished chunks of one sweep, described by its manifest.

    Open or create one with `ChunkStore.open`. The object is small and picklable, so that the tasks of a
    distributed sweep can carry it to the workers, which write their chunks into the same folder.

    Attributes:
        path: the store folder.
        identity: JSON-compatible description of the sweep; a store is used only by a sweep whose
            identity is equal.
        layout: the chunk layout stored in the manifest.
        metrics: metric name -> (shape, dtype) of one point, in the order in which chunk files list them.
        attrs: string attributes of the sweep's Dataset, kept in the manifest for reference only (not
            compared when resuming).
    """

    def __init__(
        self, path: Path, identity: Mapping[str, Any], layout: ChunkLayout, metrics: Mapping[str, tuple[tuple[int, ...], np.dtype]],
        attrs: Mapping[str, str] | None = None,
    ) -> None:
        self.path = Path(path)
        self.identity = dict(identity)
        self.layout = layout
        self.metrics = {name: (tuple(shape), np.dtype(dtype)) for name, (shape, dtype) in metrics.items()}
        self.attrs = {name: value for name, value in (attrs or {}).items() if isinstance(value, str)}

    # Opening.

    @classmethod
    def open(
        cls,
        path: str | os.PathLike,
        identity: Mapping[str, Any],
        layout: ChunkLayout,
        metrics: Mapping[str, tuple[tuple[int, ...], np.dtype]],
        *,
        resume: bool,
        attrs: Mapping[str, Any] | None = None,
    ) -> ChunkStore:
        """Create a store at `path`, or open the existing one there when `resume` is True.

        A new store keeps the string values of `attrs` (the sweep's Dataset attributes) in its manifest.

        When resuming, the layout stored in the manifest replaces `layout`, so that the chunks keep the
        boundaries with which they were computed. Temporary files that a killed writer left behind are
        removed.

        Raises:
            StoreExistsError: `path` contains a store and `resume` is False.
            StoreMismatchError: the manifest describes another sweep.
            StoreError: `path` is a file, or a folder without a valid manifest that contains other files.
        """
        path = Path(path)
        identity = json.loads(json.dumps(dict(identity)))  # the form in which the manifest stores it
        if path.exists() and not path.is_dir():
            raise StoreError(f"sweep store {str(path)!r} is a file, not a folder; remove it or choose another output path")

        manifest_path = path / MANIFEST_NAME
        if path.is_dir() and not manifest_path.exists():
            leftovers = [entry.name for entry in path.iterdir() if not _TEMPORARY_PATTERN.match(entry.name)]
            if leftovers:
                raise StoreError(
                    f"folder {str(path)!r} exists but is not a sweep store (no {MANIFEST_NAME}; it contains "
                    f"{sorted(leftovers)[:3]}); move it away or choose another output path"
                )
            # A folder without manifest and chunks is what a kill during creation leaves: nothing to keep.
            _remove_temporary_files(path)
        elif path.is_dir():
            store = cls._from_manifest(path)
            if not resume:
                done = len(store.finished())
                raise StoreExistsError(
                    f"sweep store {str(path)!r} already exists with {done} of {store.layout.n_chunks} chunks "
                    "finished; resume it (--resume on the command line, resume=True in Python) or delete the "
                    "folder to start over"
                )
            store._check_identity(identity, metrics)
            _remove_temporary_files(path)
            if store.layout.to_json() != layout.to_json():
                logger.info(
                    "resuming with the stored chunk layout %s instead of %s, so that every chunk keeps its "
                    "boundaries", store.layout.to_json(), layout.to_json(),
                )
            return store

        store = cls(path, identity, layout, metrics, attrs)
        path.mkdir(parents=True, exist_ok=True)
        store._write_manifest()
        logger.info("created sweep store %s with %d chunks of up to %d points", path, layout.n_chunks, layout.chunk_size)
        return store

    @classmethod
    def existing(cls, path: str | os.PathLike) -> ChunkStore | None:
        """Return the store at `path` as its manifest describes it, or None when `path` has no manifest.

        Raises:
            StoreError: the manifest cannot be read.
        """
        path = Path(path)
        if not (path / MANIFEST_NAME).is_file():
            return None
        return cls._from_manifest(path)

    @classmethod
    def _from_manifest(cls, path: Path) -> ChunkStore:
        manifest_path = path / MANIFEST_NAME
        try:
            manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
            if manifest.get("format") != STORE_FORMAT:
                raise ValueError(f"format is {manifest.get('format')!r}, not {STORE_FORMAT!r}")
            if manifest.get("format_version") != STORE_FORMAT_VERSION:
                raise ValueError(
                    f"format version {manifest.get('format_version')!r} is not {STORE_FORMAT_VERSION}, the version "
                    "this xbar reads"
                )
            layout = ChunkLayout(**manifest["layout"])
            metrics = {name: (tuple(entry["shape"]), np.dtype(entry["dtype"])) for name, entry in manifest["metrics"].items()}
            identity = manifest["identity"]
            attrs = manifest.get("attrs", {})
            if not isinstance(attrs, dict):
                raise ValueError(f"attrs is {type(attrs).__name__}, not an object")
        except (OSError, ValueError, KeyError, TypeError) as error:
            raise StoreError(
                f"cannot read the manifest {str(manifest_path)!r}: {error}; delete the folder {str(path)!r} to start over"
            ) from None
        return cls(path, identity, layout, metrics, attrs)

    def _check_identity(self, identity: Mapping[str, Any], metrics: Mapping[str, tuple]) -> None:
        current = dict(identity)
        current["metrics"] = _metrics_json(metrics)
        stored = dict(self.identity)
        stored["metrics"] = _metrics_json(self.metrics)
        differences = [
            _describe_difference(key, stored.get(key), current.get(key))
            for key in sorted(set(stored) | set(current))
            if stored.get(key) != current.get(key)
        ]
        if differences:
            raise StoreMismatchError(
                f"sweep store {str(self.path)!r} was written for a different sweep ({'; '.join(differences)}). "
                "Its chunks cannot be mixed with this sweep's: restore the original configuration and software "
                "to resume, or delete the folder (or choose another output path) to start over",
                self.attrs,
            )

    def _write_manifest(self) -> None:
        manifest = {
            "format": STORE_FORMAT,
            "format_version": STORE_FORMAT_VERSION,
            "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "identity": self.identity,
            "metrics": _metrics_json(self.metrics),
            "layout": self.layout.to_json(),
            "attrs": self.attrs,
        }
        with _atomic_file(self.path / MANIFEST_NAME) as stream:
            stream.write(json.dumps(manifest, indent=1).encode("utf-8"))

    # Chunks.

    def chunk_path(self, index: int) -> Path:
        return self.path / f"chunk-{index:06d}.npz"

    def finished(self) -> list[int]:
        """Return the sorted indices of the chunk files in the store (not yet checked for damage)."""
        indices = []
        for entry in self.path.iterdir():
            match = _CHUNK_PATTERN.match(entry.name)
            if match and int(match.group(1)) < self.layout.n_chunks:
                indices.append(int(match.group(1)))
        return sorted(indices)

    def write(self, index: int, arrays: Mapping[str, np.ndarray]) -> Path:
        """Write the metrics of chunk `index` atomically and return the file's path.

        `arrays` maps every metric to an array of shape (stop - start, *metric_shape). A chunk file that
        already exists is replaced; both hold the same values when the sweep is deterministic, as it is
        on one machine.

        Raises:
            FileNotFoundError: the store folder does not exist, for example on a worker that does not
                share the file system of the store.
            ValueError: `arrays` does not match the metrics or the chunk's size.
        """
        combination, start, stop = self.layout.bounds(index)
        if not self.path.is_dir():
            raise FileNotFoundError(
                f"sweep store folder {str(self.path)!r} not found; in a distributed sweep it must be on a file "
                "system that the client and every worker share"
            )
        contents = {_BOUNDS_KEY: np.array([index, combination, start, stop], dtype=np.int64)}
        for position, (name, (shape, dtype)) in enumerate(self.metrics.items()):
            if name not in arrays:
                raise ValueError(f"chunk {index}: metric {name!r} is missing; the store expects {list(self.metrics)}")
            array = np.asarray(arrays[name])
            expected = (stop - start,) + shape
            if array.shape != expected or array.dtype != dtype:
                raise ValueError(
                    f"chunk {index}: metric {name!r} has shape {array.shape} and dtype {array.dtype}, but the store "
                    f"expects {expected} and {dtype}"
                )
            # Metric names are free-form strings, so the file keys are positions in the manifest's order.
            contents[f"metric_{position}"] = array
        target = self.chunk_path(index)
        with _atomic_file(target) as stream:
            np.savez(stream, **contents)
        return target

    def read(self, index: int) -> dict[str, np.ndarray] | None:
        """Return the metrics of chunk `index`, or None when its file is missing or damaged.

        A damaged file (truncated, or written for other chunk boundaries) is logged and deleted, so that
        the chunk is computed again.
        """
        path = self.chunk_path(index)
        combination, start, stop = self.layout.bounds(index)
        try:
            # np.load leaves a file that it opened itself unclosed when the file is not a valid archive
            # (seen with numpy 2.4), so the file is opened here.
            with open(path, "rb") as stream, np.load(stream, allow_pickle=False) as contents:
                bounds = contents[_BOUNDS_KEY].tolist()
                if bounds != [index, combination, start, stop]:
                    raise ValueError(f"it contains chunk bounds {bounds}, expected {[index, combination, start, stop]}")
                arrays = {}
                for position, (name, (shape, dtype)) in enumerate(self.metrics.items()):
                    array = contents[f"metric_{position}"]
                    if array.shape != (stop - start,) + shape or array.dtype != dtype:
                        raise ValueError(f"metric {name!r} has shape {array.shape} and dtype {array.dtype}")
                    arrays[name] = array
        except FileNotFoundError:
            return None
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as error:
            logger.warning("chunk file %s is damaged (%s); deleting it so that the chunk is computed again", path, error)
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)
            return None
        return arrays

    def remove(self) -> None:
        """Delete the store; see `remove_store`."""
        remove_store(self.path)

    def __repr__(self) -> str:
        return f"ChunkStore({str(self.path)!r}, {self.layout.n_chunks} chunks of up to {self.layout.chunk_size} points)"


def remove_store(path: str | os.PathLike) -> None:
    """Delete a store's chunk files, temporary files and manifest, then its folder if nothing else is in it.

    Files of other names are left in place, and the folder with them, which is logged as a warning.
    """
    path = Path(path)
    for entry in path.iterdir():
        if _CHUNK_PATTERN.match(entry.name) or _TEMPORARY_PATTERN.match(entry.name) or entry.name == MANIFEST_NAME:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(entry)
    try:
        path.rmdir()
    except OSError as error:
        logger.warning("kept the sweep store folder %s because it contains other files: %s", path, error)


def _metrics_json(metrics: Mapping[str, tuple]) -> dict[str, dict[str, Any]]:
    return {name: {"shape": list(shape), "dtype": np.dtype(dtype).str} for name, (shape, dtype) in metrics.items()}


def _remove_temporary_files(path: Path) -> None:
    for entry in path.iterdir():
        if _TEMPORARY_PATTERN.match(entry.name):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(entry)
