"""Degree selection (no degrees the data do not need) and coefficient snapping.

Degree selection follows the idea of Gonnet, Pachon and Trefethen ("Robust
rational interpolation and least-squares"): a fit of type ``[n/m]`` whose data
are explained as well by type ``[n-k/m-k]`` has a ``k``-dimensional family of
common factors of ``P`` and ``Q`` to choose from, and whatever the solver picks
shows up as pole/zero pairs (Froissart doublets). Here the reduced types are
fitted and compared: the smallest type whose relative error is within an
F-test margin of the best one (or below ``tol``, i.e. exact to rounding) wins.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from ._core import Fit, Problem, evaluate, refit_fixed_q, rms_error, sk_fit, solve

__all__ = ["DEFAULT_TOL", "Candidate", "acceptable", "select_degrees", "snap"]

#: relative rms error treated as exact (the rounding floor of a linearised fit of
#: well-scaled float64 data is around 1e-13..1e-11)
DEFAULT_TOL = 1e-10

#: margin of the F-test: a reduction may raise the residual sum of squares by
#: ``F * (parameters removed) / (equations - parameters)`` relative to the best fit
F_MARGIN = 10.0


@dataclass
class Candidate:
    """A fitted type ``[n/m]``."""

    n: int
    m: int
    problem: Problem
    fit: Fit


def acceptable(err: float, dof: int, ref_err: float, ref_dof: int, n_eff: int, tol: float) -> bool:
    """True when an error ``err`` with ``dof`` parameters explains the data as well as ``ref_err``."""
    if not np.isfinite(err):
        return False
    if err <= tol:
        return True
    if ref_err <= 0:
        return False
    ratio = (err / ref_err) ** 2
    margin = F_MARGIN * max(ref_dof - dof, 1) / max(n_eff - ref_dof, 1)
    return bool(ratio <= 1 + margin)


def select_degrees(
    build: Callable[[int, int], Problem], n: int, m: int, *, tol: float, reduce: bool = True
) -> tuple[Candidate, list[Candidate]]:
    """Fit ``[n/m]`` and the lockstep reductions ``[n-k/m-k]``; keep the smallest adequate one.

    Returns the chosen candidate and every candidate fitted (for diagnostics).
    """
    prob = build(n, m)
    full = Candidate(n, m, prob, sk_fit(prob))
    tried = [full]
    if not reduce or m == 0 or full.fit.error <= 0:
        return full, tried
    for k in range(m, 0, -1):  # smallest type first: the first acceptable one wins
        nk, mk = max(n - k, 0), m - k
        if nk == n and mk == m:
            continue
        pk = build(nk, mk)
        cand = Candidate(nk, mk, pk, sk_fit(pk))
        tried.append(cand)
        ref = min(tried, key=lambda c: c.fit.error)
        if acceptable(cand.fit.error, cand.fit.dof, ref.fit.error, ref.fit.dof, prob.n_eff, tol):
            return cand, tried
    return min(tried, key=lambda c: (c.fit.error, -c.m)), tried


def snap(
    cand: Candidate, *, tol: float, levels: tuple[float, ...] = (1e-8, 1e-11, 1e-14)
) -> tuple[Fit, int]:
    """Set negligible coefficients exactly to zero and refit on the remaining support.

    A coefficient is negligible at a level when it is below ``level`` times the
    largest one of its polynomial (basis columns are O(1) on the data). When
    ``Q`` loses coefficients, ``P`` and ``Q`` are refitted on the support;
    otherwise only ``P`` is (``Q`` kept). The most aggressive level whose refit
    keeps the error within ``1e-3`` relative (or below ``tol``) is kept.
    Returns the fit and the number of coefficients zeroed.
    """
    prob, fit = cand.problem, cand.fit
    zeros_before = int(np.count_nonzero(fit.a == 0) + np.count_nonzero(fit.b == 0))
    for level in levels:
        supp_a = _support(fit.a, level)
        supp_b = _support(fit.b, level)
        if supp_a.all() and supp_b.all():
            continue
        if np.array_equal(supp_b, np.any(fit.b != 0, axis=1)):
            a, b, s, constrained, dof = (
                refit_fixed_q(prob, fit.b, supp_a),
                fit.b,
                fit.singular_values,
                fit.constrained,
                fit.dof,
            )
        else:
            a, b, s, constrained, dof = solve(prob, fit.weights, supp_a, supp_b)
        err = rms_error(prob, *evaluate(prob, a, b))
        if err <= max(fit.error * (1 + 1e-3), tol) and np.isfinite(err):
            zeroed = int(np.count_nonzero(a == 0) + np.count_nonzero(b == 0)) - zeros_before
            return Fit(a, b, err, s, constrained, fit.iterations, fit.weights, dof), max(zeroed, 0)
    return fit, 0


def _support(coef: np.ndarray, level: float) -> np.ndarray:
    """Rows (coefficients) that are above ``level`` times the column maximum in any column."""
    top = np.abs(coef).max(axis=0, keepdims=True)
    top = np.where(top > 0, top, 1.0)
    return np.any(np.abs(coef) > level * top, axis=1)
