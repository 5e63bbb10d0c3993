"""Exact multivariate polynomials over the rationals for the domain analysis.

A thin immutable wrapper over FLINT's ``fmpq_mpoly`` (C speed for evaluation,
substitution, derivatives and factorisation) that carries its variable names
and converts to and from sympy and Python :class:`~fractions.Fraction`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from fractions import Fraction
from functools import lru_cache
from typing import Any

import flint
import sympy as sp


@lru_cache(maxsize=256)
def _ctx(names: tuple[str, ...]) -> Any:
    return flint.fmpq_mpoly_ctx.get(names, "lex")


def to_fmpq(value: Fraction | int) -> Any:
    """A Python rational as a FLINT ``fmpq``."""
    value = Fraction(value)
    return flint.fmpq(value.numerator, value.denominator)


def from_fmpq(value: Any) -> Fraction:
    """A FLINT ``fmpq``/``fmpz`` as a :class:`Fraction`."""
    if isinstance(value, flint.fmpz):
        return Fraction(int(value))
    return Fraction(int(value.p), int(value.q))


class Poly:
    """An exact polynomial with rational coefficients in named variables (immutable)."""

    __slots__ = ("names", "_f")

    names: tuple[str, ...]

    def __init__(
        self, names: Sequence[str], terms: Mapping[tuple[int, ...], Fraction | int]
    ) -> None:
        self.names = tuple(names)
        ctx = _ctx(self.names)
        self._f = ctx.from_dict({tuple(m): to_fmpq(c) for m, c in terms.items() if c != 0})

    @classmethod
    def _wrap(cls, names: tuple[str, ...], f: Any) -> Poly:
        out = cls.__new__(cls)
        out.names = names
        out._f = f
        return out

    @classmethod
    def from_sympy(cls, expr: sp.Expr, variables: Sequence[str | sp.Symbol]) -> Poly:
        """The polynomial ``expr`` in ``variables`` (Symbols, or names of plain Symbols)."""
        syms = [v if isinstance(v, sp.Symbol) else sp.Symbol(v) for v in variables]
        names = tuple(s.name for s in syms)
        if not names:
            value = sp.Rational(expr)
            return cls((), {(): Fraction(int(value.p), int(value.q))})
        p = sp.Poly(expr, *syms, domain="QQ")
        return cls(names, {m: Fraction(int(c.numerator), int(c.denominator)) for m, c in p.terms()})

    @classmethod
    def constant(cls, value: Fraction | int, names: Sequence[str] = ()) -> Poly:
        """The constant polynomial ``value``."""
        return cls(tuple(names), {(0,) * len(tuple(names)): Fraction(value)})

    # ------------------------------------------------------------------ queries
    def terms(self) -> dict[tuple[int, ...], Fraction]:
        """Exponent vector -> coefficient, exact."""
        return {tuple(int(e) for e in m): from_fmpq(c) for m, c in self._f.terms()}

    def is_zero(self) -> bool:
        """True for the zero polynomial."""
        return bool(self._f.is_zero())

    def is_constant(self) -> bool:
        """True when no variable occurs (the zero polynomial included)."""
        return bool(self._f.is_constant())

    def constant_value(self) -> Fraction:
        """The value of a constant polynomial."""
        return self(tuple(Fraction(0) for _ in self.names))

    def degrees(self) -> tuple[int, ...]:
        """Degree in each variable."""
        if self.is_zero():
            return (0,) * len(self.names)
        return tuple(max(int(d), 0) for d in self._f.degrees())

    def total_degree(self) -> int:
        """Total degree (0 for constants)."""
        return max(int(self._f.total_degree()), 0) if not self.is_zero() else 0

    def num_terms(self) -> int:
        """Number of nonzero terms."""
        return len(self._f)

    def used_names(self) -> tuple[str, ...]:
        """The variables that occur, in order."""
        return tuple(n for n, d in zip(self.names, self.degrees(), strict=True) if d > 0)

    def max_abs_coefficient(self) -> Fraction:
        """Largest absolute value of a coefficient (0 for the zero polynomial)."""
        return max((abs(c) for c in self.terms().values()), default=Fraction(0))

    # ---------------------------------------------------------------- evaluation
    def __call__(self, point: Sequence[Fraction]) -> Fraction:
        """Exact value at a rational point (coordinates in :attr:`names` order)."""
        if len(point) != len(self.names):
            raise ValueError(
                f"point has {len(point)} coordinates, polynomial has {len(self.names)}"
            )
        return from_fmpq(self._f(*[to_fmpq(v) for v in point]))

    def evaluate(self, values: Mapping[str, Fraction]) -> Fraction:
        """Exact value at ``{name: value}`` (every variable needed)."""
        return self([values[n] for n in self.names])

    def sign_at(self, point: Sequence[Fraction]) -> int:
        """Sign (-1, 0, 1) of the exact value at a point."""
        v = self(point)
        return (v > 0) - (v < 0)

    # -------------------------------------------------------------- operations
    def substitute(self, values: Mapping[str, Fraction]) -> Poly:
        """Fix some variables to exact values; the result keeps the other variables."""
        if not values:
            return self
        f = self._f.subs({n: to_fmpq(v) for n, v in values.items()})
        keep = tuple(n for n in self.names if n not in values)
        idx = [self.names.index(n) for n in keep]
        return Poly._wrap(
            keep,
            _ctx(keep).from_dict({tuple(int(m[i]) for i in idx): c for m, c in f.terms()}),
        )

    def restrict_to(self, names: Sequence[str]) -> Poly:
        """The same polynomial over ``names`` (must contain every used variable)."""
        names = tuple(names)
        used = self.used_names()
        missing = [n for n in used if n not in names]
        if missing:
            raise ValueError(f"variables {missing} occur but are not kept")
        pos = {n: i for i, n in enumerate(self.names)}
        terms = {}
        for m, c in self._f.terms():
            terms[tuple(int(m[pos[n]]) if n in pos else 0 for n in names)] = c
        return Poly._wrap(names, _ctx(names).from_dict(terms))

    def drop_unused(self) -> Poly:
        """The same polynomial over only the variables that occur."""
        return self.restrict_to(self.used_names())

    def derivative(self, name: str) -> Poly:
        """Partial derivative with respect to ``name``."""
        return Poly._wrap(self.names, self._f.derivative(self.names.index(name)))

    def scaled(self, factor: Fraction) -> Poly:
        """``factor * self``."""
        return Poly._wrap(self.names, self._f * to_fmpq(factor))

    def primitive(self) -> tuple[Fraction, Poly]:
        """``(c, g)`` with ``self == c * g``, ``g`` integer, content 1, positive leading coefficient."""
        if self.is_zero():
            return Fraction(0), self
        terms = self.terms()
        from math import gcd, lcm

        den = lcm(*[c.denominator for c in terms.values()])
        nums = [int(c * den) for c in terms.values()]
        g = 0
        for n in nums:
            g = gcd(g, n)
        lead = max(terms)  # lex order of exponent vectors, as in the FLINT context
        sign = 1 if terms[lead] > 0 else -1
        c = Fraction(sign * g, den)
        return c, Poly(self.names, {m: v / c for m, v in terms.items()})

    def factor(self) -> tuple[Fraction, list[tuple[Poly, int]]]:
        """``(c, [(g_i, m_i)])`` with ``self == c * prod(g_i**m_i)``, ``g_i`` irreducible over Q,
        each in primitive integer form with a positive leading coefficient."""
        c, pairs = self._f.factor()
        const = from_fmpq(c)
        out = []
        for g, m in pairs:
            k, prim = Poly._wrap(self.names, g).primitive()
            const *= k ** int(m)
            out.append((prim, int(m)))
        return const, out

    def to_sympy(self) -> sp.Expr:
        """A sympy expression (symbols named as :attr:`names`)."""
        syms = [sp.Symbol(n) for n in self.names]
        out = sp.Integer(0)
        for m, c in self.terms().items():
            term: sp.Expr = sp.Rational(c.numerator, c.denominator)
            for s, e in zip(syms, m, strict=True):
                term = term * s**e
            out += term
        return out

    def key(self) -> tuple[tuple[str, ...], tuple[tuple[tuple[int, ...], Fraction], ...]]:
        """A hashable exact identity (names and sorted terms)."""
        return self.names, tuple(sorted(self.terms().items()))

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Poly):
            return NotImplemented
        return self.key() == other.key()

    def __hash__(self) -> int:
        return hash(self.key())

    def __str__(self) -> str:
        return str(self.to_sympy())

    def __repr__(self) -> str:
        return f"Poly({self}, names={self.names})"


__all__ = ["Poly", "from_fmpq", "to_fmpq"]
