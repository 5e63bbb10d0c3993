"""Numbers behind the pole report: Chebyshev forms, Laurent coefficients, the function's scale.

Exact polynomials (sympy ``Poly`` over QQ in ``x``) are moved exactly to the
Chebyshev basis of the report interval (``x = mid + half * t``) before any
rounding, so their numerical roots (colleague matrix) are as well conditioned
as the layer's own. Laurent coefficients are evaluated in exact rational
arithmetic at the (float) pole location.
"""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import sympy as sp
from numpy.polynomial import chebyshev as C

__all__ = ["ChebForm", "laurent_coefficient", "typical_scale"]


def _poly_coeffs(poly: sp.Poly) -> list[Fraction]:
    """Exact monomial coefficients, lowest degree first."""
    out = []
    for c in reversed(poly.all_coeffs()):
        r = sp.Rational(c)
        out.append(Fraction(int(r.p), int(r.q)))
    return out


def _shift(coeffs: list[Fraction], mid: Fraction, half: Fraction) -> list[Fraction]:
    """Monomial coefficients in ``t`` of ``p(mid + half * t)`` (Horner, exact)."""
    out: list[Fraction] = [Fraction(0)]
    for c in reversed(coeffs):
        # out <- out * (mid + half t) + c
        nxt = [Fraction(0)] * (len(out) + 1)
        for i, v in enumerate(out):
            nxt[i] += v * mid
            nxt[i + 1] += v * half
        nxt[0] += c
        out = nxt
    while len(out) > 1 and out[-1] == 0:
        out.pop()
    return out


def _cheb_polys(degree: int) -> list[list[int]]:
    """Integer monomial coefficients of ``T_0 .. T_degree``."""
    T = [[1], [0, 1]]
    for _ in range(2, degree + 1):
        a, b = T[-1], T[-2]
        nxt = [0] + [2 * v for v in a]
        for i, v in enumerate(b):
            nxt[i] -= v
        T.append(nxt)
    return T[: degree + 1]


def _to_chebyshev(mono: list[Fraction]) -> list[Fraction]:
    """Exact Chebyshev coefficients of a polynomial given by monomial coefficients."""
    rest = list(mono)
    d = len(rest) - 1
    T = _cheb_polys(max(d, 1))
    out = [Fraction(0)] * (d + 1)
    for k in range(d, -1, -1):
        lead = T[k][k]
        ck = rest[k] / lead
        out[k] = ck
        if ck:
            for i, v in enumerate(T[k]):
                rest[i] -= ck * v
    return out


def _to_float(values: list[Fraction]) -> tuple[np.ndarray, int]:
    """``(floats, e)`` with ``values = floats * 2**e`` and ``max|floats|`` near 1 (no overflow)."""
    top = max((abs(v) for v in values), default=Fraction(0))
    if top == 0:
        return np.zeros(len(values)), 0
    e = top.numerator.bit_length() - top.denominator.bit_length()
    s = Fraction(2) ** (-e)
    return np.array([float(v * s) for v in values]), e


class ChebForm:
    """A polynomial in the Chebyshev basis of ``[lo, hi]`` (coefficients scaled to max ~1)."""

    def __init__(self, poly: sp.Poly, lo: Fraction, hi: Fraction) -> None:
        self.mid = (lo + hi) / 2
        self.half = (hi - lo) / 2 if hi > lo else Fraction(max(1.0, abs(float(lo))))
        self.exact = _poly_coeffs(poly)
        #: Chebyshev coefficients in ``t`` divided by ``2**exponent``
        self.coef, self.exponent = _to_float(_to_chebyshev(_shift(self.exact, self.mid, self.half)))

    def to_t(self, x: np.ndarray | complex | float) -> np.ndarray:
        return (np.asarray(x) - float(self.mid)) / float(self.half)

    def to_x(self, t: np.ndarray | complex) -> np.ndarray:
        return float(self.mid) + float(self.half) * np.asarray(t)

    def roots_t(self) -> np.ndarray:
        from ._roots import cheb_roots

        return cheb_roots(self.coef)

    def taylor(self, a: Fraction, k: int) -> Fraction:
        """Exact ``p^(k)(a) / k!`` (the coefficient of ``(x - a)**k``)."""
        total = Fraction(0)
        for j in range(len(self.exact) - 1, k - 1, -1):
            total = total * a + self.exact[j] * math.comb(j, k)
        return total


def laurent_coefficient(P: ChebForm, Q: ChebForm, a: Fraction, k: int) -> float:
    """``lim (x - a)**k P/Q``: ``P(a) / (Q^(k)(a) / k!)`` exactly at ``a``, as a float (inf on overflow)."""
    q = Q.taylor(a, k)
    if q == 0:
        return math.inf
    value = P.taylor(a, 0) / q
    try:
        return float(value)
    except OverflowError:
        return math.inf if value > 0 else -math.inf


def typical_scale(P: ChebForm, Q: ChebForm, points: int = 2001) -> float:
    """Median of ``|P/Q|`` on a uniform grid of the interval (1.0 when that is 0 or undefined)."""
    t = np.linspace(-1.0, 1.0, points)
    with np.errstate(all="ignore"):
        r = np.abs(C.chebval(t, P.coef) / C.chebval(t, Q.coef))
    r = r[np.isfinite(r)]
    s = float(np.median(r)) if r.size else 0.0
    s = math.ldexp(s, P.exponent - Q.exponent) if s > 0 else 0.0
    return s if s > 0 and math.isfinite(s) else 1.0
