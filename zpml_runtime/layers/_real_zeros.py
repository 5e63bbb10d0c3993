"""Exact real zeros of a univariate polynomial over QQ: isolating intervals, refined by exact bisection.

Every sign is evaluated exactly on rationals (no floating point), so an
interval returned surely contains one zero of the stated multiplicity.
"""

from __future__ import annotations

from fractions import Fraction

import sympy as sp

from ..errors import InvalidConfigError

__all__ = ["real_zeros", "zero_multiplicity"]


def _sign_at(coeffs: list[int], r: Fraction) -> int:
    """Sign of the integer polynomial ``coeffs`` (highest degree first) at the rational ``r``."""
    p, q = r.numerator, r.denominator
    v, w = coeffs[0], q
    for c in coeffs[1:]:
        v = v * p + c * w
        w *= q
    return (v > 0) - (v < 0)


def _bracket(coeffs: list[int], lo: Fraction, hi: Fraction) -> tuple[Fraction, Fraction]:
    """A sub-interval of ``(lo, hi)`` with endpoint signs of opposite sign around its only root.

    The isolating interval's endpoints may be zeros of the polynomial (other
    roots); the root inside is simple (square-free factor), so the sign changes
    across it. Returns ``(r, r)`` when the root ``r`` is hit exactly.
    """
    m = (lo + hi) / 2
    sm = _sign_at(coeffs, m)
    if sm == 0:
        return m, m
    for end in (hi, lo):
        s_end = _sign_at(coeffs, end)
        if s_end != 0:
            if s_end != sm:
                return (m, end) if end > m else (end, m)
            continue
        for j in range(1, 200):  # endpoint is another root: approach it from inside
            c = end + (m - end) / (1 << j)
            sc = _sign_at(coeffs, c)
            if sc == -sm:
                return (m, c) if c > m else (c, m)
    raise InvalidConfigError(
        "pole_report: could not bracket a real root (degenerate isolating interval)"
    )


def _refine(poly: sp.Poly, a: sp.Rational, b: sp.Rational) -> tuple[Fraction, Fraction]:
    """Shrink the isolating interval ``[a, b]`` of a simple root to width ``<= 1e-18 * max(1, |x|)``.

    Exact sign evaluations (bisection); a float or small-denominator rational root is returned exactly.
    """
    lo, hi = Fraction(int(a.p), int(a.q)), Fraction(int(b.p), int(b.q))
    if lo == hi:
        return lo, hi
    coeffs = [int(c) for c in poly.clear_denoms()[1].all_coeffs()]
    if len(coeffs) == 2:  # linear: the root itself
        root = Fraction(-coeffs[1], coeffs[0])
        return root, root
    bracket = _bracket(coeffs, lo, hi)
    if bracket[0] == bracket[1]:
        return bracket
    lo, hi = bracket
    s_lo = _sign_at(coeffs, lo)
    eps = Fraction(max(1.0, abs(float(lo)), abs(float(hi))) * 1e-18)
    while hi - lo > eps:
        mid = (lo + hi) / 2
        s_mid = _sign_at(coeffs, mid)
        if s_mid == 0:
            return mid, mid
        if s_mid == s_lo:
            lo = mid
        else:
            hi = mid
    mid = (lo + hi) / 2
    for cand in (
        Fraction(float(mid)),
        mid.limit_denominator(10**9),
    ):  # float or small rational roots
        if lo <= cand <= hi and _sign_at(coeffs, cand) == 0:
            return cand, cand
    return lo, hi


def real_zeros(
    poly: sp.Poly, lo: Fraction, hi: Fraction
) -> list[tuple[tuple[Fraction, Fraction], int]]:
    """Exact isolating intervals and multiplicities of the real zeros of ``poly`` in ``[lo, hi]``.

    ``poly`` is a univariate polynomial over QQ. The zero polynomial raises
    ``InvalidConfigError`` (it vanishes everywhere).
    """
    if poly.is_zero:
        raise InvalidConfigError("the polynomial is identically zero: every point is bottom")
    if poly.degree() <= 0:
        return []
    out = []
    for factor, mult in poly.sqf_list()[1]:
        sq = sp.Poly(factor, poly.gen, domain=sp.QQ)
        # closed window: a zero at lo or hi is found (as a degenerate interval)
        for (a, b), _ in sq.intervals(inf=sp.Rational(lo), sup=sp.Rational(hi)):
            out.append((_refine(sq, a, b), int(mult)))
    out.sort(key=lambda r: r[0][0])
    return out


def zero_multiplicity(poly: sp.Poly, a: Fraction, b: Fraction) -> int:
    """Multiplicity in ``poly`` of the unique zero of a square-free factor inside ``[a, b]``."""
    if poly.degree() <= 0:
        return 0
    count = 0
    for factor, mult in poly.sqf_list()[1]:
        sq = sp.Poly(factor, poly.gen, domain=sp.QQ)
        if sq.degree() > 0 and sq.count_roots(sp.Rational(a), sp.Rational(b)) > 0:
            count += int(mult)
    return count
