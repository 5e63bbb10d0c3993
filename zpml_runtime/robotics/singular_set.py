"""The singular set a generic rational head learned, in the angle features, exactly.

A generic head's shared denominator ``Q`` is a polynomial in the features
``(c1, s1, .., cn, sn, v..)``. Its zero set *on the arm* (where every
``c_i^2 + s_i^2 = 1``) is the set where the model is bottom. This module

1. **snaps** ``Q``'s float coefficients to exact rationals: divided by the
   largest one, a coefficient within ``tolerance`` of a rational with
   denominator at most ``max_denominator`` becomes that rational (negligible
   ones become 0), so a recovered factor vanishes exactly where the data's
   singular set is;
2. reduces the snapped ``Q`` modulo the circle relations (normal form under a
   graded order, so a polynomial that is 0 on the arm reduces to 0) and
   factors it;
3. compares it with a reference polynomial, e.g. ``s2`` for ``sin(theta2) = 0``:
   equal up to a nonzero rational scale *as functions on the arm* iff the
   normal forms are proportional.

Everything after the snap is exact (sympy over the rationals).
"""

from __future__ import annotations

import dataclasses
from fractions import Fraction

import numpy as np
import sympy as sp

from zpml_runtime.errors import InvalidConfigError

__all__ = ["SingularSetReport", "angle_ideal", "singular_set_report", "snap_coefficients"]


def snap_coefficients(
    coefficients: np.ndarray, *, tolerance: float = 1e-9, max_denominator: int = 1000
) -> tuple[list[Fraction] | None, float]:
    """Exact rationals for ``coefficients / max|coefficients|``, or ``None`` if some do not snap.

    Returns ``(snapped, residual)``: ``residual`` is the largest difference between a
    scaled float coefficient and its snapped value (``inf`` when one does not snap).
    """
    c = np.asarray(coefficients, dtype=np.float64).ravel()
    if not np.isfinite(c).all():
        raise InvalidConfigError("the denominator has non-finite coefficients: nothing to snap")
    scale = float(np.abs(c).max()) if c.size else 0.0
    if scale == 0.0:
        raise InvalidConfigError("the denominator is identically zero: no singular set to report")
    out: list[Fraction] = []
    residual = 0.0
    for v in c / scale:
        f = (
            Fraction(0)
            if abs(v) <= tolerance
            else Fraction(float(v)).limit_denominator(max_denominator)
        )
        err = abs(float(v) - float(f))
        if err > tolerance:
            return None, float("inf")
        residual = max(residual, err)
        out.append(f)
    return out, residual


def angle_ideal(
    n_joints: int,
) -> tuple[tuple[sp.Symbol, ...], tuple[sp.Symbol, ...], list[sp.Expr]]:
    """Symbols ``c1, s1, ..`` and the relations ``c_i^2 + s_i^2 - 1`` of ``n_joints`` angles."""
    cs = tuple(sp.Symbol(f"c{i + 1}") for i in range(n_joints))
    ss = tuple(sp.Symbol(f"s{i + 1}") for i in range(n_joints))
    return cs, ss, [c**2 + s**2 - 1 for c, s in zip(cs, ss, strict=True)]


@dataclasses.dataclass(frozen=True)
class SingularSetReport:
    """``Q`` as an exact polynomial in the features and its zero set on the arm."""

    #: the snapped denominator (scaled so its largest coefficient is +-1), or None if it did not snap
    denominator: sp.Expr | None
    #: its normal form modulo ``c_i^2 + s_i^2 = 1`` (graded reverse lexicographic order)
    normal_form: sp.Expr | None
    #: irreducible factors of the normal form over the rationals (constants dropped)
    factors: tuple[sp.Expr, ...]
    #: largest |float coefficient - snapped coefficient| after scaling
    snap_residual: float
    #: the reference it was compared with and whether they agree up to a nonzero scale on the arm
    reference: sp.Expr | None
    matches_reference: bool

    @property
    def description(self) -> str:
        """Human-readable zero set, e.g. ``{s2 = 0}``."""
        if self.normal_form is None:
            return "not exact: the denominator's coefficients do not snap to small rationals"
        if self.normal_form == 0:
            return "the whole arm (Q vanishes identically on it)"
        if not self.factors:
            return "{} (Q is a nonzero constant: no singular configuration)"
        return "{" + " or ".join(f"{sp.sstr(f)} = 0" for f in self.factors) + "}"

    def to_dict(self) -> dict[str, object]:
        """JSON-ready view (polynomials as text)."""
        text = lambda e: None if e is None else sp.sstr(e)  # noqa: E731
        return {
            "denominator": text(self.denominator),
            "normal_form": text(self.normal_form),
            "factors": [sp.sstr(f) for f in self.factors],
            "zero_set": self.description,
            "snap_residual": self.snap_residual,
            "reference": text(self.reference),
            "matches_reference": self.matches_reference,
        }


def _proportional(a: sp.Poly, b: sp.Poly) -> bool:
    if a.is_zero or b.is_zero:
        return False
    ratio = sp.cancel(a.as_expr() / b.as_expr())
    return bool(ratio.is_Rational and ratio != 0)


def singular_set_report(
    monomials: list[tuple[int, ...]],
    coefficients: np.ndarray,
    feature_names: tuple[str, ...],
    n_joints: int,
    *,
    reference: str | sp.Expr | None = "s2",
    tolerance: float = 1e-9,
    max_denominator: int = 1000,
) -> SingularSetReport:
    """Snap ``Q = sum_k coefficients[k] * monomial_k(features)`` and describe its zero set.

    ``monomials`` are index tuples over ``[1, features...]`` (as
    :func:`zpml_runtime.layers.monomial_exponents` gives them; index 0 is the
    constant); the first ``2 * n_joints`` features must be ``c1, s1, .., cn, sn``.
    """
    if len(monomials) != np.asarray(coefficients).size:
        raise InvalidConfigError(
            f"{len(monomials)} monomials but {np.asarray(coefficients).size} coefficients"
        )
    expected = tuple(n for i in range(n_joints) for n in (f"c{i + 1}", f"s{i + 1}"))
    if tuple(feature_names[: 2 * n_joints]) != expected:
        raise InvalidConfigError(
            f"the first features must be {list(expected)}, got {list(feature_names)}"
        )
    symbols = [sp.Integer(1)] + [sp.Symbol(n) for n in feature_names]
    gens = [sp.Symbol(n) for n in feature_names]
    ref = (
        sp.sympify(reference, locals={n: sp.Symbol(n) for n in feature_names})
        if reference is not None
        else None
    )
    snapped, residual = snap_coefficients(
        coefficients, tolerance=tolerance, max_denominator=max_denominator
    )
    if snapped is None:
        return SingularSetReport(None, None, (), residual, ref, False)
    Q = sp.Add(
        *(
            sp.Rational(f.numerator, f.denominator) * sp.Mul(*(symbols[i] for i in mono))
            for f, mono in zip(snapped, monomials, strict=True)
            if f
        )
    )
    _, _, relations = angle_ideal(n_joints)
    basis = sp.groebner(relations, *gens, order="grevlex", domain=sp.QQ)
    nf = basis.reduce(sp.expand(Q))[1]
    factors: tuple[sp.Expr, ...] = ()
    if nf != 0:
        _, fl = sp.factor_list(nf, *gens)
        factors = tuple(f.as_expr() if isinstance(f, sp.Poly) else f for f, _ in fl)
    matches = False
    if ref is not None:
        ref_nf = basis.reduce(sp.expand(ref))[1]
        matches = _proportional(sp.Poly(nf, *gens), sp.Poly(ref_nf, *gens))
    return SingularSetReport(Q, nf, factors, residual, ref, matches)
