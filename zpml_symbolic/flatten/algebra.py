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

import math
from fractions import Fraction

from sympy.polys.domains import QQ
from sympy.polys.rings import PolyElement

from zpml_symbolic.errors import BudgetExceededError
from zpml_symbolic.flatten.budget import Budget, BudgetMeter
from zpml_symbolic.flatten.factoring import factor_integer_poly, integer_gcd
from zpml_symbolic.flatten.numeric_ir import ONE, n_add, n_mul, n_pow
from zpml_symbolic.flatten.polyring import (
    FactoredProduct,
    Factorisation,
    Frac,
    QQElement,
    RingArithmetic,
    fresh_hash,
    total_degree,
)
from zpml_symbolic.ir import node as ir_node

#: A product whose factors are all known is expanded and handed to the
#: factoriser only to reproduce its factor *order*, within this many terms and
#: this much work; a bigger one keeps the factors in the order they were written.
ORDER_PROBE_TERMS = 50_000
ORDER_PROBE_WORK = 1_000_000


class PolyContext(RingArithmetic):
    """The polynomial ring of one flatten call plus exact, budgeted arithmetic."""

    # ------------------------------------------------------- normal form, factoring
    def normalize(self, f: PolyElement) -> tuple[QQElement, PolyElement]:
        """``f = c * g`` with ``g`` integer-primitive and positive leading coefficient.

        ``c`` is ``gcd(numerators)/lcm(denominators)`` (sympy's content over
        QQ), computed with C-level integer gcds, signed like ``LC(f)``.
        """
        if not f:
            return f.primitive()
        nums = []
        dens = []
        for c in f.itercoeffs():
            nums.append(int(c.numerator))
            dens.append(int(c.denominator))
        self.meter.charge(len(nums) // 2, "the total work so far")
        content = QQ(math.gcd(*nums), math.lcm(*dens))
        if f.LC < 0:
            content = -content
        g = f if content == 1 else f.quo_ground(content)
        return content, fresh_hash(g)

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
        hint = self._hints.get(id(f))
        if hint is not None and hint[0] is f:
            result = self._factor_from_hints(f)
        else:
            result = self._factor_uncached(f)
        self._factor_cache[f] = result
        return result

    def _factor_uncached(self, f: PolyElement) -> Factorisation:
        """Factor ``f`` from scratch (iterative: no recursion limit).

        While the primitive part ``g`` has degree one in some generator ``v``
        (``g = A*v + B``), ``gcd(A, B)`` splits off everything but the one
        factor that contains ``v``; that factor goes last, the rest is
        factored the same way.
        """
        if f.is_ground:
            return f.LC if f else QQ(0), ()
        content, g = self.normalize(f)
        tail: list[tuple[PolyElement, int]] = []
        while True:
            self.meter.charge(len(g), "the total work so far (factoring)")
            if total_degree(g) == 1:
                head: tuple[tuple[PolyElement, int], ...] = ((g, 1),)
                break
            i = next((i for i, d in enumerate(g.degrees()) if d == 1), None)
            if i is None:
                coeff, head = self._factor_hard(g)
                content *= coeff
                break
            common = self._linear_common(g, i)
            if common.is_ground:
                head = ((g, 1),)
                break
            c_rest, rest_n = self.normalize(g.exquo(common))
            c_common, g = self.normalize(common)
            content *= c_common * c_rest
            tail.append((rest_n, 1))
        return content, head + tuple(reversed(tail))

    def _factor_hard(self, g: PolyElement) -> Factorisation:
        """The multivariate factoriser on a normalised ``g`` (no generator of degree one)."""
        self.meter.charge(4 * len(g) * self.ngens, "the total work so far (factoring)")
        coeff = QQ(1)
        out: list[tuple[PolyElement, int]] = []
        for h, m in factor_integer_poly(g):
            c, hn = self.normalize(h)
            coeff *= c**m
            out.append((hn, m))
        return coeff, tuple(out)

    def _linear_common(self, g: PolyElement, i: int) -> PolyElement:
        """``gcd(A, B)`` for ``g = A*v + B`` with ``v`` the ``i``-th generator (up to a unit)."""
        a_terms: dict[tuple[int, ...], object] = {}
        b_terms: dict[tuple[int, ...], object] = {}
        for monom, coeff in g.terms():
            if monom[i] == 1:
                a_terms[monom[:i] + (0,) + monom[i + 1 :]] = coeff
            else:
                b_terms[monom] = coeff
        a_part = self.ring.from_dict(a_terms)
        if not b_terms:
            return a_part
        b_part = self.ring.from_dict(b_terms)
        self.meter.charge(len(a_part) + len(b_part), "the total work so far (gcd)")
        common = integer_gcd(a_part, b_part)
        return common if common is not None else a_part.gcd(b_part)

    def _factor_from_hints(self, f: PolyElement) -> Factorisation:
        """Factor a product with known multiplicands: factor each one, merge the lists.

        The irreducible factorisation is unique, so merging is exact; the
        order is the one :meth:`_factor_uncached` gives for the expanded
        product (see :meth:`_order_like_uncached`).
        """
        content = QQ(1)
        merged: dict[PolyElement, int] = {}
        stack: list[tuple[PolyElement, int]] = [(f, 1)]
        while stack:
            p, k = stack.pop()
            hint = self._hints.get(id(p))
            if hint is None or hint[0] is not p:
                c, pairs = self.factor(p)
                content *= c**k
                for h, m in pairs:
                    merged[h] = merged.get(h, 0) + m * k
                continue
            self.meter.tick()
            _, kind, a, b = hint
            if kind == "mul":
                assert not isinstance(b, int)
                stack.append((b, k))
                stack.append((a, k))
            else:
                assert isinstance(b, int)
                stack.append((a, k * b))
        return content, self._order_like_uncached(list(merged.items()))

    def _order_like_uncached(
        self, items: list[tuple[PolyElement, int]]
    ) -> tuple[tuple[PolyElement, int], ...]:
        """Order known irreducible factors as :meth:`_factor_uncached` orders their product.

        Mirrors its steps on the factor list: while the product has degree
        one in some generator, the one factor containing it goes last; what
        remains goes to the factoriser, whose order is taken by probing it on
        the expanded remainder when that has at most :data:`ORDER_PROBE_TERMS`
        terms (written order otherwise).
        """
        ngens = self.ring.ngens
        degrees = [h.degrees() for h, _ in items]
        totals = [0] * ngens
        for (_, m), ds in zip(items, degrees, strict=True):
            for i, d in enumerate(ds):
                totals[i] += m * d
        tail: list[tuple[PolyElement, int]] = []
        while items:
            self.meter.tick()
            if sum(m * total_degree(h) for h, m in items) == 1:
                break
            linear = next((g for g, d in enumerate(totals) if d == 1), None)
            if linear is None:
                items = self._probe_order(items)
                break
            if len(items) == 1:
                break
            j = next(j for j, ds in enumerate(degrees) if ds[linear] == 1)
            tail.append(items.pop(j))
            for k, d in enumerate(degrees.pop(j)):
                totals[k] -= d
        return tuple(items) + tuple(reversed(tail))

    def _probe_order(self, items: list[tuple[PolyElement, int]]) -> list[tuple[PolyElement, int]]:
        """The factoriser's order for the product of ``items`` (probed on its expansion).

        The probe runs under its own small budget (:data:`ORDER_PROBE_TERMS`
        terms, :data:`ORDER_PROBE_WORK` work), not the caller's: when the
        expansion is too big the factors keep their written order instead.
        """
        if len(items) < 2:
            return items
        main = self.meter
        self.meter = BudgetMeter(
            Budget(max_terms=ORDER_PROBE_TERMS, max_work=ORDER_PROBE_WORK, max_seconds=60.0)
        )
        try:
            _, probed = self._factor_hard(self.product(dict(items)))
        except BudgetExceededError:
            return items
        finally:
            self.meter = main
        if sorted(probed, key=_pair_key) != sorted(items, key=_pair_key):  # pragma: no cover
            return items
        return list(probed)

    # -------------------------------------------------------------- arithmetic
    def _cancel(
        self, num: PolyElement, den: dict[PolyElement, int], candidates: list[PolyElement]
    ) -> PolyElement:
        """Divide ``num`` by candidate factors of ``den`` while they divide it."""
        for f in candidates:
            while den.get(f, 0) > 0 and num and not num.is_ground and _may_divide(num, f):
                self.meter.check_product(total_degree(num), 0, len(num), len(f), self.ngens)
                q, r = num.div(f)
                if r:
                    break
                num = fresh_hash(q)
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
        num = self.mul_poly(a_num, b_num)
        if not num.is_ground:
            self._hints[id(num)] = (num, "mul", a_num, b_num)
        return Frac(num, den, den_exp, n_mul(a_ir, b_ir), den_ir)

    def pow(self, a: Frac, n: int) -> Frac:
        """``a ** n`` for ``n >= 0`` (the caller handles bottoms of the base)."""
        if n == 0:
            return Frac(self.one, {}, self.one, ONE, ONE)
        den = {f: e * n for f, e in a.den.items()}
        den_exp = None if a.den_expanded is None else self.pow_poly(a.den_expanded, n)
        num = self.pow_poly(a.num, n)
        if n > 1 and not num.is_ground:
            self._hints[id(num)] = (num, "pow", a.num, n)
        return Frac(num, den, den_exp, n_pow(a.num_ir, n), n_pow(a.den_ir, n))

    def factored_product(self, fracs: list[Frac]) -> FactoredProduct:
        """The product of ``fracs`` as :meth:`mul` folds it left to right, numerator factored.

        Each multiplicand's numerator is factored on its own and the factor
        lists are merged; cancellation against the denominators is done on
        the lists (``min`` of the multiplicities, exactly what trial division
        in :meth:`mul` finds), so the expanded product is never formed.
        """
        if any(not f.num for f in fracs):
            return FactoredProduct(True, QQ(0), (), {}, self.one, ONE)
        first = fracs[0]
        content, pairs = self.factor(first.num)
        num: dict[PolyElement, int] = dict(pairs)
        den = dict(first.den)
        den_exp, den_ir = first.den_expanded, first.den_ir
        for b in fracs[1:]:
            self.meter.check_time()
            b_content, b_pairs = self.factor(b.num)
            content *= b_content
            b_num = dict(b_pairs)
            a_den, b_den = dict(den), dict(b.den)
            _cancel_lists(num, b_den)
            _cancel_lists(b_num, a_den)
            unchanged = a_den == den and b_den == b.den
            new_den = a_den
            for f, e in b_den.items():
                new_den[f] = new_den.get(f, 0) + e
            new_exp = None
            if unchanged and den_exp is not None and b.den_expanded is not None:
                new_exp = self.mul_poly(den_exp, b.den_expanded)
            den_ir = n_mul(den_ir, b.den_ir) if unchanged else self.product_ir(new_den)
            den, den_exp = new_den, new_exp
            for h, m in b_num.items():
                num[h] = num.get(h, 0) + m
        ordered = self._order_like_uncached([(h, m) for h, m in num.items() if m > 0])
        return FactoredProduct(False, content, ordered, den, den_exp, den_ir)

    def inverse_factored(self, a: FactoredProduct, n: int) -> Frac:
        """``1 / a**n`` for a non-zero :class:`FactoredProduct` (as :meth:`inverse_pow`)."""
        den = {g: m * n for g, m in a.pairs}
        content = a.content
        self.meter.check_constant_power(int(content.numerator), int(content.denominator), n)
        scale = (1 / content) ** n
        if a.den_expanded is None:
            a.den_expanded = self.product(a.den)
        num = self.pow_poly(a.den_expanded, n) * scale
        scale_ir = ir_node.const(Fraction(int(scale.numerator), int(scale.denominator)))
        return Frac(num, den, None, n_mul(scale_ir, n_pow(a.den_ir, n)), self.product_ir(den))

    def inverse_pow(self, a: Frac, n: int) -> Frac:
        """``1 / a**n`` for ``n > 0`` and ``a.num != 0``."""
        content, pairs = self.factor(a.num)
        den = {g: m * n for g, m in pairs}
        self.meter.check_constant_power(int(content.numerator), int(content.denominator), n)
        scale = (1 / content) ** n
        num = self.pow_poly(self.expanded_den(a), n) * scale
        scale_ir = ir_node.const(Fraction(int(scale.numerator), int(scale.denominator)))
        return Frac(num, den, None, n_mul(scale_ir, n_pow(a.den_ir, n)), self.product_ir(den))


def _cancel_lists(num: dict[PolyElement, int], den: dict[PolyElement, int]) -> None:
    """Cancel common irreducible factors of a factored numerator and a denominator, in place.

    Mirrors :meth:`PolyContext._cancel`: a factor of ``den`` that hits
    multiplicity zero is deleted from it (keeping the order of the rest).
    """
    for f in list(den):
        k = min(num.get(f, 0), den[f])
        if k:
            num[f] -= k
            den[f] -= k
            if den[f] == 0:
                del den[f]


def _pair_key(pair: tuple[PolyElement, int]) -> tuple[object, ...]:
    h, m = pair
    return (m, sorted((tuple(mon), str(c)) for mon, c in h.terms()))


def _may_divide(num: PolyElement, f: PolyElement) -> bool:
    """Cheap necessary condition for ``f | num``: degree in every generator."""
    return all(df <= dn for df, dn in zip(f.degrees(), num.degrees(), strict=True))


__all__ = ["FactoredProduct", "Frac", "PolyContext"]
