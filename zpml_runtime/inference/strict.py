"""Re-export of :mod:`zpml_core.strict` (the strict contract lives in the core package)."""

from zpml_core.strict import *  # noqa: F403
from zpml_core.strict import __all__  # noqa: F401
