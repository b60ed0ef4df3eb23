"""Atomic PNG output of the check plots. matplotlib is optional and imported only when a plot is written."""

from __future__ import annotations

import logging
import os
import uuid
from collections.abc import Callable
from pathlib import Path

logger = logging.getLogger(__name__)


def save_figure(path: Path, draw: Callable, title: str) -> str | None:
    """Draw a figure with `draw(figure)` and write it to `path` as PNG. Return the path, or None without matplotlib.

    The PNG is written to a temporary file in the same folder and moved over `path` with `os.replace`, so
    a reader never sees a partial file.
    """
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:
        logger.warning("matplotlib is not installed, so no plot was written for %s", path.name)
        return None

    # A bare Figure with its own Agg canvas leaves pyplot's global state and backend alone.
    figure = Figure(figsize=(6.4, 4.4), layout="constrained")
    FigureCanvasAgg(figure)
    draw(figure)
    figure.suptitle(title, fontsize="medium")

    # A unique name opened with "xb" (unlike tempfile.mkstemp, which creates mode 0600) gives the file the
    # permissions of the umask.
    temporary = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    try:
        with open(temporary, "xb") as stream:
            figure.savefig(stream, format="png", dpi=100)
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    return str(path)
