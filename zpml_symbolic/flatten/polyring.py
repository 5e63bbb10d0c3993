"""The polynomial ring of one flatten call: fractions, generators and budgeted products.

:class:`Frac` and :class:`FactoredProduct` are the values the flattener
computes with; the base :class:`RingArithmetic` holds the ring, the generators' numeric IR
and the budget-checked polynomial products. Factoring and fraction arithmetic
build on it in :class:`~zpml_symbolic.flatten.algebra.PolyContext`.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from typing import Any

import sympy as sp
from sympy.polys.domains import QQ
from sympy.polys.rings import PolyElement, PolyRing

from zpml_symbolic.flatten.budget import BudgetMeter
from zpml_symbolic.flatten.numeric_ir import ONE, ZERO, horner, product
from zpml_symbolic.ir import node as ir_node
from zpml_symbolic.ir.node import Node

__all__ = [
    "FactoredProduct",
    "Factorisation",
    "Frac",
    "QQElement",
    "RingArithmetic",
    "coefficient_bits",
    "fresh_hash",
    "is_unit",
    "total_degree",
]

#: An element of sympy's ``QQ`` (``gmpy2.mpq`` or ``PythonMPQ``, depending on the ground types).
QQElement = Any
#: ``(content, ((g, multiplicity), ...))``: ``f = content * prod(g**m)``.
Factorisation = tuple[QQElement, tuple[tuple[PolyElement, int], ...]]


@dataclass(slots=True)
class Frac:
    """``num / prod(den)`` with coprime numerator and factored denominator.

    ``num_ir`` and ``den_ir`` are division-free IRs exactly equal to ``num``
    and the expanded denominator, in the structural form of
    :mod:`zpml_symbolic.flatten.numeric_ir` (what emitters evaluate).
    """

    num: PolyElement
    den: dict[PolyElement, int]
    den_expanded: PolyElement | None
    num_ir: Node
    den_ir: Node


@dataclass(slots=True)
class FactoredProduct:
    """A product of fractions kept factored, for a divisor: ``content*prod(h**m) / prod(den)``.

    What :meth:`PolyContext.mul` would give for the same product, except
    that the numerator is never expanded: ``pairs`` is its irreducible
    factorisation, in the order :meth:`PolyContext.factor` gives for the
    expanded numerator. ``zero`` is True when some multiplicand is zero.
    """

    zero: bool
    content: QQElement
    pairs: tuple[tuple[PolyElement, int], ...]
    den: dict[PolyElement, int]
    den_expanded: PolyElement | None
    den_ir: Node


class RingArithmetic:
    """The polynomial ring of one flatten call, its generators and budget-checked products."""

    def __init__(
        self, gen_names: tuple[str, ...], meter: BudgetMeter, gen_nodes: tuple[Node, ...] = ()
    ) -> None:
        symbols = [sp.Symbol(f"g{i}") for i in range(len(gen_names))]
        self.ring: PolyRing = (
            PolyRing(symbols, QQ, "lex") if symbols else PolyRing([sp.Dummy("g")], QQ, "lex")
        )
        self.gen_names = gen_names
        self.gens: dict[str, PolyElement] = dict(zip(gen_names, self.ring.gens, strict=False))
        self.meter = meter
        self.ngens = max(1, len(gen_names))
        self._factor_cache: dict[PolyElement, Factorisation] = {}
        # products whose multiplicands are known, by id (hashing big polynomials is
        # slow): id(p) -> (p, "mul", a, b) or (p, "pow", a, n); p is kept alive here
        self._hints: dict[int, tuple[PolyElement, str, PolyElement, PolyElement | int]] = {}
        self.one = self.ring.one
        self.zero = self.ring.zero
        self.gen_nodes = gen_nodes or tuple(ir_node.var(n) for n in gen_names)
        self._factor_ir: dict[PolyElement, Node] = {}
        self._factor_degree: dict[PolyElement, int] = {}

    # ----------------------------------------------------------------- basics
    def const(self, value: Fraction) -> Frac:
        """A constant as a fraction with empty denominator."""
        self.meter.check_bits(
            max(value.numerator.bit_length(), value.denominator.bit_length()), "a constant"
        )
        return Frac(
            self.ring(QQ(value.numerator, value.denominator)),
            {},
            self.one,
            ir_node.const(value),
            ONE,
        )

    def gen(self, name: str) -> Frac:
        """A generator (variable or parameter)."""
        node = self.gen_nodes[self.gen_names.index(name)]
        return Frac(self.gens[name], {}, self.one, node, ONE)

    def zero_frac(self) -> Frac:
        """The fraction ``0/1``."""
        return Frac(self.zero, {}, self.one, ZERO, ONE)

    # ------------------------------------------------------------- numeric IR
    def factor_ir(self, f: PolyElement) -> Node:
        """Horner IR of a canonical factor (cached)."""
        node = self._factor_ir.get(f)
        if node is None:
            node = self._factor_ir[f] = horner(f, self.gen_nodes, self.meter)
        return node

    def poly_ir(self, p: PolyElement) -> Node:
        """Horner IR of any polynomial."""
        return horner(p, self.gen_nodes, self.meter)

    def degree(self, f: PolyElement) -> int:
        """Total degree of a denominator factor (cached, like its Horner form)."""
        d = self._factor_degree.get(f)
        if d is None:
            d = self._factor_degree[f] = total_degree(f)
        return d

    def product_ir(self, den: dict[PolyElement, int]) -> Node:
        """IR of ``prod(f**e)``."""
        return product([(self.factor_ir(f), e) for f, e in den.items()])

    def mul_poly(self, a: PolyElement, b: PolyElement) -> PolyElement:
        """``a * b`` after a budget check (degree, terms, coefficient bits, work)."""
        if a.is_ground and b.is_ground:
            if a and b:
                self.meter.check_bits(
                    coefficient_bits(a) + coefficient_bits(b), "a constant product"
                )
            return a * b
        if a.is_ground or b.is_ground:
            c, p = (a, b) if a.is_ground else (b, a)
            if not c or is_unit(c.LC):
                return a * b
            self.meter.check_product(
                0, total_degree(p), 1, len(p), self.ngens, coefficient_bits(c), coefficient_bits(p)
            )
            return a * b
        self.meter.check_product(
            total_degree(a),
            total_degree(b),
            len(a),
            len(b),
            self.ngens,
            coefficient_bits(a),
            coefficient_bits(b),
        )
        out = a * b
        self.meter.check_terms(len(out))
        return out

    def pow_poly(self, a: PolyElement, n: int) -> PolyElement:
        """``a ** n`` by repeated squaring, every product budget-checked.

        A constant power is checked against ``max_coefficient_bits`` before it
        is computed (``2**9999999999999`` is refused, not attempted).
        """
        if n == 0:
            return self.one
        if a.is_ground:
            if not a:
                return self.zero
            c = a.LC
            if is_unit(c):
                return self.one if c > 0 or n % 2 == 0 else -self.one
            self.meter.check_constant_power(int(c.numerator), int(c.denominator), n)
            return a**n
        self.meter.check_power(total_degree(a), n)
        self.meter.check_bits(coefficient_bits(a) * n, "a power (estimate of its coefficients)")
        result = self.one
        base = a
        while True:
            if n & 1:
                result = self.mul_poly(result, base)
            n >>= 1
            if not n:
                return result
            base = self.mul_poly(base, base)

    def product(self, factors: dict[PolyElement, int]) -> PolyElement:
        """Expand ``prod(f**e)``."""
        out = self.one
        for f, e in factors.items():
            out = self.mul_poly(out, self.pow_poly(f, e))
        return out

    def expanded_den(self, a: Frac) -> PolyElement:
        """The expanded denominator of ``a`` (cached)."""
        if a.den_expanded is None:
            a.den_expanded = self.product(a.den)
        return a.den_expanded


def total_degree(p: PolyElement) -> int:
    """Total degree (0 for constants and the zero polynomial)."""
    if not p:
        return 0
    return max(sum(m) for m in p.itermonoms())


def fresh_hash(p: PolyElement) -> PolyElement:
    """Drop a cached hash: sympy's ``div``/``exquo`` return quotients whose cached hash is stale.

    (The quotient starts as a zero polynomial that gets hashed, then is
    filled in place.) A stale hash breaks dict and set lookups of factors,
    which showed up as one factor listed twice. Recomputing a correct
    hash gives the same value, so this is always safe.
    """
    p._hash = None
    return p


def coefficient_bits(p: PolyElement) -> int:
    """Bits of the largest numerator or denominator among the coefficients of ``p``."""
    best = 0
    for c in p.itercoeffs():
        b = max(c.numerator.bit_length(), c.denominator.bit_length())
        if b > best:
            best = b
    return best


def is_unit(c: object) -> bool:
    """Whether a ground coefficient is +1 or -1 (its powers cost nothing)."""
    return c == 1 or c == -1
