"""Irreducible factorisation of integer-primitive polynomials.

Uses FLINT (python-flint, C) when available: multivariate factorisation over
the integers is one to two orders of magnitude faster than sympy's pure
Python Zassenhaus/Wang code, which dominated flattening time for deep
continued fractions. sympy's factoriser is the fallback, so results do not
depend on which one ran (both return irreducible factors; normalisation
happens in the caller).
"""

from __future__ import annotations

from functools import lru_cache

from sympy.polys.domains import QQ
from sympy.polys.rings import PolyElement

try:  # pragma: no branch
    import flint

    HAVE_FLINT = True
except ImportError:  # pragma: no cover - flint is a declared dependency
    flint = None  # type: ignore[assignment]
    HAVE_FLINT = False


@lru_cache(maxsize=64)
def _ctx(ngens: int) -> object:
    assert flint is not None
    return flint.fmpz_mpoly_ctx.get(tuple(f"g{i}" for i in range(ngens)), "lex")


def factor_integer_poly(g: PolyElement, *, use_flint: bool = True) -> list[tuple[PolyElement, int]]:
    """Irreducible factors ``(h, m)`` of ``g`` (integer coefficients), up to a constant."""
    if use_flint and HAVE_FLINT:
        ring = g.ring
        ctx = _ctx(ring.ngens)
        fp = ctx.from_dict({m: int(c) for m, c in g.terms()})  # type: ignore[attr-defined]
        try:
            _, pairs = fp.factor()
        except OverflowError:
            # python-flint sorts the factors by a key it converts to a machine int; huge
            # coefficients (e.g. x**2 - 10**-20 scaled to integers) overflow it: sympy factors
            # the same polynomial exactly, only slower
            return factor_integer_poly(g, use_flint=False)
        return [
            (
                ring.from_dict(
                    {tuple(int(e) for e in m): QQ(int(c)) for m, c in h.to_dict().items()}
                ),
                int(k),
            )
            for h, k in pairs
        ]
    _, pairs = g.factor_list()
    return [(h, int(k)) for h, k in pairs]


def integer_gcd(a: PolyElement, b: PolyElement) -> PolyElement | None:
    """``gcd(a, b)`` up to a unit for integer-coefficient ``a`` and ``b`` (FLINT), else None.

    ``None`` means "not available here" (no FLINT, or a coefficient that is
    not an integer); the caller then uses sympy's gcd.
    """
    if not HAVE_FLINT:  # pragma: no cover - flint is a declared dependency
        return None
    ring = a.ring
    if any(c.denominator != 1 for c in a.itercoeffs()) or any(
        c.denominator != 1 for c in b.itercoeffs()
    ):
        return None
    ctx = _ctx(ring.ngens)
    fa = ctx.from_dict({m: int(c) for m, c in a.terms()})  # type: ignore[attr-defined]
    fb = ctx.from_dict({m: int(c) for m, c in b.terms()})  # type: ignore[attr-defined]
    g = fa.gcd(fb)
    return ring.from_dict({tuple(int(e) for e in m): QQ(int(c)) for m, c in g.to_dict().items()})


__all__ = ["HAVE_FLINT", "factor_integer_poly", "integer_gcd"]
