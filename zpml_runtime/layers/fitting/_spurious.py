"""The data test for spurious real poles: remove the pole, refit the numerator, compare.

A real pole (a cluster of zeros of ``Q``, see :mod:`.._roots`) is spurious for
the data when dividing its factor out of ``Q`` and refitting ``P`` by least
squares explains the data as well as the model did (the F-test of
:func:`._select.acceptable`, or an error below ``tol``). A true pole fails the
test by orders of magnitude: without it the fit cannot follow the blow-up.
"""

from __future__ import annotations

import numpy as np
from numpy.polynomial import chebyshev as C

from .._roots import RootCluster, cheb_roots, real_clusters
from ._core import Problem, evaluate, refit_fixed_q, rms_error
from ._select import acceptable

__all__ = ["CLUSTER_RADIUS", "deflate", "spurious_clusters"]

#: roots closer than this (in the ``[-1, 1]`` coordinate) count as one pole
CLUSTER_RADIUS = 2e-5


def deflate(b: np.ndarray, cluster_list: list[RootCluster]) -> np.ndarray:
    """Chebyshev coefficients of ``Q`` divided by the clusters' factors (same length, padded)."""
    out = np.asarray(b, dtype=np.float64)
    roots: list[complex] = [r for c in cluster_list for r in c.members]
    if not roots:
        return out.copy()
    factor = C.chebfromroots(roots)
    quotient, _ = C.chebdiv(np.trim_zeros(out, "b"), np.real(factor))
    res = np.zeros_like(out)
    res[: quotient.size] = np.real(quotient)
    return res


def spurious_clusters(
    prob: Problem,
    a: np.ndarray,
    b: np.ndarray,
    *,
    tol: float,
    radius: float = CLUSTER_RADIUS,
    ref_error: float | None = None,
    candidates: list[RootCluster] | None = None,
) -> tuple[list[RootCluster], list[RootCluster]]:
    """``(true, spurious)`` real pole clusters in ``t in [-1, 1]`` of a univariate fit.

    ``prob`` holds Chebyshev bases in ``t`` (single output); ``a``, ``b`` are
    ``[nA, 1]`` and ``[nB, 1]`` coefficient arrays. ``ref_error`` is the model's
    error on the data (computed from ``a``, ``b`` when omitted). ``candidates``:
    the clusters to test (default: every real cluster of ``Q`` in ``[-1, 1]``).
    """
    bc = b[:, 0]
    found = real_clusters(cheb_roots(bc), -1.0, 1.0, radius) if candidates is None else candidates
    if not found:
        return [], []
    if ref_error is None:
        ref_error = rms_error(prob, *evaluate(prob, a, b))
    nA = int(np.count_nonzero(np.any(a != 0, axis=1))) or 1
    dof = nA + int(np.count_nonzero(bc)) - 1
    true, spurious = [], []
    for cl in found:
        b2 = deflate(bc, [cl])[:, None]
        a2 = refit_fixed_q(prob, b2)
        err = rms_error(prob, *evaluate(prob, a2, b2))
        if acceptable(err, dof - cl.size, ref_error, dof, prob.n_eff, tol):
            spurious.append(cl)
        else:
            true.append(cl)
    return true, spurious
