"""The one version number of the zpml distribution (pyproject.toml reads it from here)."""

__version__ = "0.1.0"
