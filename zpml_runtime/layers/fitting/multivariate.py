"""Multivariate fit: monomials of power-of-two-scaled features, in the layer's monomial order."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..multivariate import monomial_exponents
from ._core import Problem
from ._data import power_of_two_scale
from ._select import select_degrees, snap

__all__ = ["MultivariateResult", "fit_multivariate", "layer_monomials"]


@dataclass
class MultivariateResult:
    """Coefficients ``[num_monomials, k + kq]`` on the raw features (P columns, then Q) and diagnostics."""

    coefficients: np.ndarray
    effective_degrees: tuple[int, int]
    error: float
    candidates: tuple[tuple[int, int, float], ...]
    constrained: bool
    snapped: int
    iterations: int
    feature_scale: np.ndarray


def layer_monomials(d: int, degree: int) -> list[tuple[int, ...]]:
    """The monomials of :meth:`MultivariateRationalLayer.monomial_coefficients`, in its order."""
    exps = monomial_exponents(d, max(degree, 2))
    return [e for e in exps if sum(1 for i in e if i) <= degree]


def monomial_matrix(g: np.ndarray, exps: list[tuple[int, ...]]) -> np.ndarray:
    """``[N, len(exps)]``: each monomial of ``[1, g]`` on the rows of ``g``."""
    aug = np.concatenate([np.ones((g.shape[0], 1)), g], axis=1)
    idx = np.asarray(exps, dtype=np.int64)
    out = np.ones((g.shape[0], len(exps)))
    for col in idx.T:
        out *= aug[:, col]
    return out


def fit_multivariate(
    h: np.ndarray,
    yn: np.ndarray,
    yd: np.ndarray,
    weight: np.ndarray,
    n: int,
    m: int,
    *,
    shared: bool,
    tol: float,
    exact_bottom: bool,
    reduce: bool,
) -> MultivariateResult:
    """Fit ``P_j(h)/Q(h)`` (``Q`` shared or per output) of total degrees ``<= (n, m)``."""
    d = h.shape[1]
    k = yn.shape[1]
    scale = power_of_two_scale(h)
    g = h / scale
    D = max(n, m)
    exps = layer_monomials(d, D)
    degree = np.array([sum(1 for i in e if i) for e in exps])
    M = monomial_matrix(g, exps)
    w = np.broadcast_to(weight[:, None], yn.shape).copy()
    w[(yn == 0) & (yd == 0)] = 0.0  # null tuples (0, 0): no equation

    def build(nk: int, mk: int) -> Problem:
        return Problem(
            M[:, degree <= nk],
            M[:, degree <= mk],
            yn,
            yd,
            w,
            shared=shared,
            exact_bottom=exact_bottom,
        )

    chosen, tried = select_degrees(build, n, m, tol=tol, reduce=reduce)
    fit, snapped = snap(chosen, tol=tol)
    kq = 1 if shared else k
    coef = np.zeros((len(exps), k + kq))
    coef[degree <= chosen.n, :k] = fit.a
    coef[degree <= chosen.m, k:] = fit.b
    # back to raw features: a monomial of g is the monomial of h over the product of the scales
    aug_scale = np.concatenate([[1.0], scale])
    factor = np.prod(aug_scale[np.asarray(exps, dtype=np.int64)], axis=1)
    coef = coef / factor[:, None]
    na = int(degree[np.any(coef[:, :k] != 0, axis=1)].max(initial=0))
    nb = int(degree[np.any(coef[:, k:] != 0, axis=1)].max(initial=0))
    return MultivariateResult(
        coef,
        (na, nb),
        fit.error,
        tuple((c.n, c.m, c.fit.error) for c in tried),
        fit.constrained,
        snapped,
        fit.iterations,
        scale,
    )
