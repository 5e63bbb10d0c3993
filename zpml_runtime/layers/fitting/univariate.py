"""Univariate fit: Chebyshev bases on the domain, degree selection, spurious-pole removal, snapping."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.polynomial import chebyshev as C

from ._core import Problem, evaluate, refit_fixed_q, rms_error
from ._select import Candidate, select_degrees, snap
from ._spurious import deflate, spurious_clusters

__all__ = ["UnivariateResult", "cheb_t", "fit_univariate"]


@dataclass
class UnivariateResult:
    """Chebyshev coefficients on ``domain`` (padded to the requested degrees) and diagnostics."""

    numerator: np.ndarray
    denominator: np.ndarray
    effective_degrees: tuple[int, int]
    error: float
    candidates: tuple[tuple[int, int, float], ...]
    constrained: bool
    snapped: int
    removed_poles: tuple[float, ...]
    iterations: int


def cheb_t(x: np.ndarray, domain: tuple[float, float]) -> np.ndarray:
    """The layer's map of ``domain`` onto ``[-1, 1]`` (same float operations as ``SCMRationalLayer``)."""
    lo, hi = domain
    return (x - (lo + hi) / 2) * (2 / (hi - lo))


def fit_univariate(
    x: np.ndarray,
    yn: np.ndarray,
    yd: np.ndarray,
    weight: np.ndarray,
    n: int,
    m: int,
    domain: tuple[float, float],
    *,
    tol: float,
    exact_bottom: bool,
    reduce: bool,
    remove_spurious: bool,
) -> UnivariateResult:
    """Fit ``P/Q`` of degrees ``<= (n, m)`` in the Chebyshev basis of ``domain``."""
    t = cheb_t(x, domain)
    w2 = weight[:, None] * np.ones((1, 1))

    def build(nk: int, mk: int) -> Problem:
        return Problem(
            C.chebvander(t, nk),
            C.chebvander(t, mk),
            yn[:, None],
            yd[:, None],
            w2,
            shared=True,
            exact_bottom=exact_bottom,
        )

    chosen, tried = select_degrees(build, n, m, tol=tol, reduce=reduce)
    removed: list[float] = []
    if remove_spurious and chosen.m > 0:
        chosen, removed = _remove_spurious(chosen, domain, tol=tol)
    fit, snapped = snap(chosen, tol=tol)
    lo, hi = domain
    a = np.zeros(n + 1)
    b = np.zeros(m + 1)
    a[: fit.a.shape[0]] = fit.a[:, 0]
    b[: fit.b.shape[0]] = fit.b[:, 0]
    na = int(np.flatnonzero(a).max()) if np.any(a) else 0
    nb = int(np.flatnonzero(b).max()) if np.any(b) else 0
    return UnivariateResult(
        a,
        b,
        (na, nb),
        fit.error,
        tuple((c.n, c.m, c.fit.error) for c in tried),
        fit.constrained,
        snapped,
        tuple(removed),
        fit.iterations,
    )


def _remove_spurious(
    cand: Candidate, domain: tuple[float, float], *, tol: float
) -> tuple[Candidate, list[float]]:
    """Divide spurious real poles out of ``Q`` and refit ``P`` (kept only if the data agree)."""
    prob, fit = cand.problem, cand.fit
    _, spurious = spurious_clusters(prob, fit.a, fit.b, tol=tol, ref_error=fit.error)
    if not spurious:
        return cand, []
    b2 = deflate(fit.b[:, 0], spurious)[:, None]
    a2 = refit_fixed_q(prob, b2)
    err = rms_error(prob, *evaluate(prob, a2, b2))
    lo, hi = domain
    removed = [(lo + hi) / 2 + c.centre.real * (hi - lo) / 2 for c in spurious]
    new_fit = type(fit)(
        a2,
        b2,
        err,
        fit.singular_values,
        fit.constrained,
        fit.iterations,
        fit.weights,
        fit.dof - sum(c.size for c in spurious),
    )
    return Candidate(cand.n, cand.m, prob, new_fit), removed
