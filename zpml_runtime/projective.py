"""Compatibility path: the gauge policy now lives in :mod:`zpml_runtime.layers.projective`."""

from zpml_runtime.layers.projective import GaugePolicy, ProjectiveNormalize

__all__ = ["GaugePolicy", "ProjectiveNormalize"]
