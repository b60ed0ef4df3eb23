"""xbar: device-level simulation of memristor and phase-change memory crossbar arrays on JAX."""

import logging
from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("xbar-sim")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+unknown"

# The library logs and never prints; applications choose where the records go.
logging.getLogger(__name__).addHandler(logging.NullHandler())

__all__ = ["__version__"]
