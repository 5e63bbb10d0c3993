"""Exact rational functions with *factored* denominators.

A :class:`Frac` is ``num / prod(f**e for f, e in den.items())`` where ``num``
is a polynomial over QQ and every ``f`` is an irreducible polynomial in the
canonical form of :meth:`PolyContext.normalize` (integer coefficients, content
one, positive leading coefficient in lex order). Because the irreducible
factorisation of every denominator is known, the GCD of a numerator with a
denominator is found by exact trial division by those factors only, and
sums of fractions with distinct factors need no GCD at all. This is a full
polynomial GCD (not only monomials): ``((x+1)(x+2))/((x+1)(x+3))`` reduces to
``(x+2)/(x+3)``.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

import sympy as sp
from sympy.polys.domains import QQ
from sympy.polys.rings import PolyElement, PolyRing

from zpml_symbolic.flatten.budget import BudgetMeter
from zpml_symbolic.flatten.factoring import factor_integer_poly
from zpml_symbolic.flatten.numeric_ir import ONE, ZERO, horner, n_add, n_mul, n_pow, product
from zpml_symbolic.ir import node as ir_node
from zpml_symbolic.ir.node import Node

Factorisation = tuple[object, tuple[tuple[PolyElement, int], ...]]


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


class PolyContext:
    """The polynomial ring of one flatten call plus exact, budgeted arithmetic."""

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
        self.one = self.ring.one
        self.zero = self.ring.zero
        self.gen_nodes = gen_nodes or tuple(ir_node.var(n) for n in gen_names)
        self._factor_ir: dict[PolyElement, Node] = {}

    # ----------------------------------------------------------------- basics
    def const(self, value: Fraction) -> Frac:
        """A constant as a fraction with empty denominator."""
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
            node = self._factor_ir[f] = horner(f, self.gen_nodes)
        return node

    def poly_ir(self, p: PolyElement) -> Node:
        """Horner IR of any polynomial."""
        return horner(p, self.gen_nodes)

    def product_ir(self, den: dict[PolyElement, int]) -> Node:
        """IR of ``prod(f**e)``."""
        return product([(self.factor_ir(f), e) for f, e in den.items()])

    def mul_poly(self, a: PolyElement, b: PolyElement) -> PolyElement:
        """``a * b`` after a budget check."""
        if a.is_ground or b.is_ground:
            return a * b
        self.meter.check_product(_deg(a), _deg(b), len(a), len(b), self.ngens)
        out = a * b
        self.meter.check_terms(len(out))
        return out

    def pow_poly(self, a: PolyElement, n: int) -> PolyElement:
        """``a ** n`` by repeated squaring, every product budget-checked."""
        if n == 0:
            return self.one
        if a.is_ground:
            return a**n
        self.meter.check_power(_deg(a), n)
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

    # ------------------------------------------------------- normal form, factoring
    def normalize(self, f: PolyElement) -> tuple[object, PolyElement]:
        """``f = c * g`` with ``g`` integer-primitive and positive leading coefficient."""
        content, g = f.primitive()
        if g.LC < 0:
            content, g = -content, -g
        return content, g

    def factor(self, f: PolyElement) -> Factorisation:
        """Irreducible factorisation ``f = c * prod(g**m)`` with normalised ``g``.

        Fast paths: linear polynomials, and polynomials of degree one in some
        generator (``A*v + B`` is irreducible iff ``gcd(A, B)`` is constant),
        which covers denominators with parameter coefficients. Everything
        else goes to sympy's multivariate factoriser.
        """
        cached = self._factor_cache.get(f)
        if cached is not None:
            return cached
        self.meter.check_time()
        result = self._factor_uncached(f)
        self._factor_cache[f] = result
        return result

    def _factor_uncached(self, f: PolyElement) -> Factorisation:
        if f.is_ground:
            return f.LC if f else QQ(0), ()
        content, g = self.normalize(f)
        if _deg(g) == 1:
            return content, ((g, 1),)
        for i, d in enumerate(g.degrees()):
            if d == 1:
                return self._factor_linear_in(content, g, i)
        coeff = QQ(1)
        out: list[tuple[PolyElement, int]] = []
        for h, m in factor_integer_poly(g):
            c, hn = self.normalize(h)
            coeff *= c**m
            out.append((hn, m))
        return content * coeff, tuple(out)

    def _factor_linear_in(self, content: object, g: PolyElement, i: int) -> Factorisation:
        gen = self.ring.gens[i]
        a_part = self.zero
        b_part = self.zero
        for monom, coeff in g.terms():
            if monom[i] == 1:
                m = monom[:i] + (0,) + monom[i + 1 :]
                a_part += self.ring({m: coeff})
            else:
                b_part += self.ring({monom: coeff})
        common = a_part.gcd(b_part) if b_part else a_part
        if common.is_ground:
            return content, ((g, 1),)
        rest = g.exquo(common)
        c_common, pairs = self.factor(common)
        c_rest, rest_n = self.normalize(rest)
        del gen
        return content * c_common * c_rest, tuple(pairs) + ((rest_n, 1),)

    # -------------------------------------------------------------- arithmetic
    def _cancel(
        self, num: PolyElement, den: dict[PolyElement, int], candidates: list[PolyElement]
    ) -> PolyElement:
        """Divide ``num`` by candidate factors of ``den`` while they divide it."""
        for f in candidates:
            while den.get(f, 0) > 0 and num and not num.is_ground and _may_divide(num, f):
                self.meter.check_product(_deg(num), 0, len(num), len(f), self.ngens)
                q, r = num.div(f)
                if r:
                    break
                num = q
                den[f] -= 1
                if den[f] == 0:
                    del den[f]
        return num

    def add(self, a: Frac, b: Frac) -> Frac:
        """``a + b``, reduced."""
        if not a.num:
            return b
        if not b.num:
            return a
        if not a.den and not b.den:
            total = a.num + b.num
            if not total:
                return self.zero_frac()
            return Frac(total, {}, self.one, n_add(a.num_ir, b.num_ir), ONE)
        lcm = dict(a.den)
        for f, e in b.den.items():
            if e > lcm.get(f, 0):
                lcm[f] = e
        extra_a = {f: e - a.den.get(f, 0) for f, e in lcm.items() if e > a.den.get(f, 0)}
        extra_b = {f: e - b.den.get(f, 0) for f, e in lcm.items() if e > b.den.get(f, 0)}
        if extra_a == b.den:
            mult_a, mult_a_ir = self.expanded_den(b), b.den_ir
        else:
            mult_a, mult_a_ir = self.product(extra_a), self.product_ir(extra_a)
        if extra_b == a.den:
            mult_b, mult_b_ir = self.expanded_den(a), a.den_ir
        else:
            mult_b, mult_b_ir = self.product(extra_b), self.product_ir(extra_b)
        num = self.mul_poly(a.num, mult_a) + self.mul_poly(b.num, mult_b)
        self.meter.check_terms(len(num))
        if not num:
            return self.zero_frac()
        num_ir = n_add(n_mul(a.num_ir, mult_a_ir), n_mul(b.num_ir, mult_b_ir))
        den_ir = n_mul(a.den_ir, mult_a_ir)
        # Only a factor with the same exponent on both sides can divide the sum.
        candidates = [f for f, e in a.den.items() if b.den.get(f) == e]
        den_exp = self.mul_poly(self.expanded_den(a), mult_a)
        if candidates:
            before = dict(lcm)
            num = self._cancel(num, lcm, candidates)
            if lcm != before:
                den_exp = None
                num_ir, den_ir = self.poly_ir(num), self.product_ir(lcm)
        return Frac(num, lcm, den_exp, num_ir, den_ir)

    def mul(self, a: Frac, b: Frac) -> Frac:
        """``a * b``, reduced."""
        if not a.num or not b.num:
            return self.zero_frac()
        a_num, b_num = a.num, b.num
        a_den, b_den = dict(a.den), dict(b.den)
        if b_den and not a_num.is_ground:
            a_num = self._cancel(a_num, b_den, list(b_den))
        if a_den and not b_num.is_ground:
            b_num = self._cancel(b_num, a_den, list(a_den))
        a_ir = a.num_ir if a_num is a.num else self.poly_ir(a_num)
        b_ir = b.num_ir if b_num is b.num else self.poly_ir(b_num)
        unchanged = a_den == a.den and b_den == b.den
        den = a_den
        for f, e in b_den.items():
            den[f] = den.get(f, 0) + e
        den_exp = None
        if unchanged and a.den_expanded is not None and b.den_expanded is not None:
            den_exp = self.mul_poly(a.den_expanded, b.den_expanded)
        den_ir = n_mul(a.den_ir, b.den_ir) if unchanged else self.product_ir(den)
        return Frac(self.mul_poly(a_num, b_num), den, den_exp, n_mul(a_ir, b_ir), den_ir)

    def pow(self, a: Frac, n: int) -> Frac:
        """``a ** n`` for ``n >= 0`` (the caller handles bottoms of the base)."""
        if n == 0:
            return Frac(self.one, {}, self.one, ONE, ONE)
        den = {f: e * n for f, e in a.den.items()}
        den_exp = None if a.den_expanded is None else self.pow_poly(a.den_expanded, n)
        return Frac(self.pow_poly(a.num, n), den, den_exp, n_pow(a.num_ir, n), n_pow(a.den_ir, n))

    def inverse_pow(self, a: Frac, n: int) -> Frac:
        """``1 / a**n`` for ``n > 0`` and ``a.num != 0``."""
        content, pairs = self.factor(a.num)
        den = {g: m * n for g, m in pairs}
        scale = (1 / content) ** n  # type: ignore[operator]
        num = self.pow_poly(self.expanded_den(a), n) * scale
        scale_ir = ir_node.const(Fraction(int(scale.numerator), int(scale.denominator)))
        return Frac(num, den, None, n_mul(scale_ir, n_pow(a.den_ir, n)), self.product_ir(den))


def _deg(p: PolyElement) -> int:
    """Total degree (0 for constants and the zero polynomial)."""
    if not p:
        return 0
    return max(sum(m) for m in p.itermonoms())


def _may_divide(num: PolyElement, f: PolyElement) -> bool:
    """Cheap necessary condition for ``f | num``: degree in every generator."""
    return all(df <= dn for df, dn in zip(f.degrees(), num.degrees(), strict=True))


__all__ = ["Frac", "PolyContext"]
