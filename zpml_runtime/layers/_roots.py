"""Numerical roots of Chebyshev series and their clusters near a real interval.

A ``k``-fold root perturbed by rounding of the coefficients splits into ``k``
roots about ``eps**(1/k)`` apart (a double pole becomes two close real roots
or a complex pair); the *mean* of the cluster stays accurate to ``O(eps)``.
Clusters are therefore the unit in which poles are counted.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.polynomial import chebyshev as C

__all__ = ["RootCluster", "cheb_roots", "clusters", "real_clusters"]


@dataclass(frozen=True)
class RootCluster:
    """Roots within ``radius`` of each other (single linkage); ``centre`` is their mean."""

    members: tuple[complex, ...]
    centre: complex

    @property
    def size(self) -> int:
        return len(self.members)


def cheb_roots(coef: np.ndarray) -> np.ndarray:
    """Complex roots of the Chebyshev series ``coef`` (trailing zeros dropped)."""
    c = np.trim_zeros(np.asarray(coef, dtype=np.float64), "b")
    if c.size <= 1:
        return np.zeros(0, dtype=complex)
    return np.asarray(C.chebroots(c), dtype=complex)


def clusters(roots: np.ndarray, radius: float) -> list[RootCluster]:
    """Group roots whose distance chains are below ``radius`` (single linkage)."""
    roots = np.asarray(roots, dtype=complex)
    n = roots.size
    parent = list(range(n))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for i in range(n):
        for j in range(i + 1, n):
            if abs(roots[i] - roots[j]) <= radius:
                parent[find(i)] = find(j)
    groups: dict[int, list[complex]] = {}
    for i in range(n):
        groups.setdefault(find(i), []).append(complex(roots[i]))
    out = [RootCluster(tuple(g), complex(np.mean(g))) for g in groups.values()]
    out.sort(key=lambda c: (c.centre.real, c.centre.imag))
    return out


def real_clusters(roots: np.ndarray, lo: float, hi: float, radius: float) -> list[RootCluster]:
    """Clusters whose centre is within ``radius`` of the real segment ``[lo, hi]``."""
    return [
        c
        for c in clusters(roots, radius)
        if abs(c.centre.imag) <= radius and lo - radius <= c.centre.real <= hi + radius
    ]
