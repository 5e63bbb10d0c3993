"""Re-export of :mod:`zpml_core.result` (the strict contract lives in the core package)."""

from zpml_core.result import *  # noqa: F403
from zpml_core.result import __all__  # noqa: F401
