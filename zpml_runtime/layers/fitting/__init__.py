"""Internals of :func:`zpml_runtime.layers.fit_rational` (linearised least squares, SK, degree selection)."""
