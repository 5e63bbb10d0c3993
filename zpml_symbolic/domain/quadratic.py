"""Exact minimum and maximum of a polynomial of degree <= 2 over a box.

The extremes of a continuous function on a box are attained; an extreme point
lies in the relative interior of exactly one face, where the gradient along
the face vanishes. For a quadratic that is a linear system per face: if its
matrix is nonsingular the face has one critical point (a candidate if it lies
in the closed face); if singular, the quadratic is constant on the affine set
of critical points, which reaches the face's boundary, so the value is a
candidate of a lower-dimensional face (down to the vertices). The extremes are
therefore the extremes of the exact values at the candidates of all ``3**k``
faces: exact rationals, exact points, no subdivision and no rounding.
"""

from __future__ import annotations

import itertools
from fractions import Fraction

from zpml_symbolic.domain.box import Interval
from zpml_symbolic.domain.polys import Poly
from zpml_symbolic.flatten.budget import BudgetMeter

Point = tuple[Fraction, ...]
#: Faces are enumerated only up to this many variables (3**8 = 6561 faces).
MAX_VARIABLES = 8


def _solve(a: list[list[Fraction]], b: list[Fraction]) -> list[Fraction] | None:
    """The unique solution of ``a x = b`` (exact Gauss-Jordan), or None if ``a`` is singular."""
    n = len(b)
    m = [row[:] + [rhs] for row, rhs in zip(a, b, strict=True)]
    for col in range(n):
        pivot = next((r for r in range(col, n) if m[r][col] != 0), None)
        if pivot is None:
            return None
        m[col], m[pivot] = m[pivot], m[col]
        inv = 1 / m[col][col]
        m[col] = [v * inv for v in m[col]]
        for r in range(n):
            if r != col and m[r][col] != 0:
                factor = m[r][col]
                m[r] = [v - factor * w for v, w in zip(m[r], m[col], strict=True)]
    return [m[r][n] for r in range(n)]


def quadratic_extremes(
    poly: Poly, box: tuple[Interval, ...], meter: BudgetMeter
) -> tuple[tuple[Fraction, Point], tuple[Fraction, Point]] | None:
    """``((min, argmin), (max, argmax))`` of ``poly`` (degree <= 2) on the closed box, exactly.

    None when the degree is above 2 or there are more than :data:`MAX_VARIABLES` variables.
    """
    k = len(box)
    if poly.total_degree() > 2 or k > MAX_VARIABLES:
        return None
    terms = poly.terms()
    b = [Fraction(0)] * k
    h = [[Fraction(0)] * k for _ in range(k)]
    for m, c in terms.items():
        nz = [i for i, e in enumerate(m) if e]
        if len(nz) == 1 and m[nz[0]] == 1:
            b[nz[0]] = c
        elif len(nz) == 1:
            h[nz[0]][nz[0]] = 2 * c
        elif len(nz) == 2:
            i, j = nz
            h[i][j] = h[j][i] = c
    low: tuple[Fraction, Point] | None = None
    high: tuple[Fraction, Point] | None = None
    for assignment in itertools.product((0, 1, 2), repeat=k):
        meter.work += 1 + k**3
        free = [i for i, a in enumerate(assignment) if a == 2]
        point = [box[i][a] if a < 2 else Fraction(0) for i, a in enumerate(assignment)]
        if free:
            rhs = [
                -(b[i] + sum(h[i][j] * point[j] for j in range(k) if j not in free)) for i in free
            ]
            sol = _solve([[h[i][j] for j in free] for i in free], rhs)
            if sol is None or any(
                not box[i][0] <= v <= box[i][1] for i, v in zip(free, sol, strict=True)
            ):
                continue
            for i, v in zip(free, sol, strict=True):
                point[i] = v
        candidate = tuple(point)
        value = poly(candidate)
        if low is None or value < low[0]:
            low = (value, candidate)
        if high is None or value > high[0]:
            high = (value, candidate)
    meter.check_time()
    assert low is not None and high is not None  # the vertices are always candidates
    return low, high


__all__ = ["quadratic_extremes"]
