"""Re-export of :mod:`zpml_core.config` (the strict contract lives in the core package)."""

from zpml_core.config import *  # noqa: F403
from zpml_core.config import __all__  # noqa: F401
