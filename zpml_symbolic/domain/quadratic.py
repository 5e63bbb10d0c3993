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
#: Work units (about a microsecond each) per face and variable: exact solve and evaluation.
FACE_COST = 25


def _inverse(a: list[list[Fraction]]) -> list[list[Fraction]] | None:
    """The exact inverse of a square matrix (Gauss-Jordan), or None if it is singular."""
    n = len(a)
    m = [row[:] + [Fraction(int(i == r)) for i in range(n)] for r, row in enumerate(a)]
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
    return [row[n:] for row in m]


def quadratic_extremes(
    poly: Poly, box: tuple[Interval, ...], meter: BudgetMeter
) -> tuple[tuple[Fraction, Point], tuple[Fraction, Point]] | None:
    """``((min, argmin), (max, argmax))`` of ``poly`` (degree <= 2) on the closed box, exactly.

    None when the degree is above 2 or there are more than :data:`MAX_VARIABLES` variables.
    One matrix inverse per set of free coordinates (``2**k``), one solve per face (``3**k``).
    """
    k = len(box)
    if poly.total_degree() > 2 or k > MAX_VARIABLES:
        return None
    cost = 3**k * FACE_COST * (1 + k)
    if meter.work + cost > meter.budget.max_work:
        return None
    meter.work += cost
    b = [Fraction(0)] * k
    h = [[Fraction(0)] * k for _ in range(k)]
    for m, c in poly.terms().items():
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
    for mask in itertools.product((False, True), repeat=k):
        meter.check_time()
        free = [i for i in range(k) if mask[i]]
        fixed = [i for i in range(k) if not mask[i]]
        inverse = _inverse([[h[i][j] for j in free] for i in free]) if free else []
        if inverse is None:
            continue  # singular: the face's extremes are candidates of lower faces
        for sides in itertools.product((0, 1), repeat=len(fixed)):
            point = [Fraction(0)] * k
            for i, side in zip(fixed, sides, strict=True):
                point[i] = box[i][side]
            rhs = [-(b[i] + sum(h[i][j] * point[j] for j in fixed)) for i in free]
            inside = True
            for row, i in zip(inverse, free, strict=True):
                v = sum((a * r for a, r in zip(row, rhs, strict=True)), Fraction(0))
                if not box[i][0] <= v <= box[i][1]:
                    inside = False
                    break
                point[i] = v
            if not inside:
                continue
            candidate = tuple(point)
            value = poly(candidate)
            if low is None or value < low[0]:
                low = (value, candidate)
            if high is None or value > high[0]:
                high = (value, candidate)
    assert low is not None and high is not None  # the vertices are always candidates
    return low, high


__all__ = ["quadratic_extremes"]
