"""The data test for spurious real poles: remove the pole, refit the numerator, compare.

A real pole (a cluster of zeros of ``Q``, see :mod:`.._roots`) is spurious for
the data when dividing its factor out of ``Q`` and refitting ``P`` by least
squares explains the data as well as the model did (the F-test of
:func:`._select.acceptable`, or an error below ``tol``). The test is also passed
when the increase of the residual sum of squares, without the ``2k`` samples it
grows most on (a ``k``-fold pole/zero doublet has ``2k`` parameters and can
follow that many samples), is within the F margin of the *local* noise level
(mean squared error of the samples next to the pole): with additive noise the
relative error is heteroscedastic, and a doublet that fits one noisy sample
where the relative noise is largest is still a doublet. A
true pole fails both tests by orders of magnitude: without it the fit cannot
follow the blow-up.
"""

from __future__ import annotations

import numpy as np
from numpy.polynomial import chebyshev as C

from .._roots import RootCluster, cheb_roots, real_clusters
from ._core import Problem, entry_errors, evaluate, refit_fixed_q, rms_error
from ._select import F_MARGIN, acceptable

__all__ = ["CLUSTER_RADIUS", "deflate", "spurious_clusters"]

#: samples next to a pole whose errors set the local noise level of the data test
LOCAL_SAMPLES = 16

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
    P, Q = evaluate(prob, a, b)
    if ref_error is None:
        ref_error = rms_error(prob, P, Q)
    e_ref = entry_errors(prob, P, Q)[:, 0]
    w = prob.weight[:, 0]
    t = prob.B[:, 1]  # B is the Chebyshev basis in t: T_1(t) = t
    nA = int(np.count_nonzero(np.any(a != 0, axis=1))) or 1
    dof = nA + int(np.count_nonzero(bc)) - 1
    sigma2 = float(np.sum(w * e_ref**2) / max(prob.n_eff - dof, 1))
    true, spurious = [], []
    for cl in found:
        b2 = deflate(bc, [cl])[:, None]
        a2 = refit_fixed_q(prob, b2)
        P2, Q2 = evaluate(prob, a2, b2)
        err = rms_error(prob, P2, Q2)
        # local noise level: the reference errors of the samples nearest to the pole
        near = np.argsort(np.abs(t - cl.centre.real))[: max(LOCAL_SAMPLES, prob.n_eff // 20)]
        local2 = float(np.sum(w[near] * e_ref[near] ** 2) / max(np.sum(w[near] > 0), 1))
        contrib = w * (entry_errors(prob, P2, Q2)[:, 0] ** 2 - e_ref**2)
        # a k-fold doublet has 2k parameters: it can follow about 2k samples, no more
        top = np.sort(contrib)[::-1][: 2 * cl.size]
        gain = float(np.sum(contrib) - np.sum(top[top > 0]))
        local = np.isfinite(gain) and gain <= F_MARGIN * cl.size * max(local2, sigma2)
        if local or acceptable(err, dof - cl.size, ref_error, dof, prob.n_eff, tol):
            spurious.append(cl)
        else:
            true.append(cl)
    return true, spurious
