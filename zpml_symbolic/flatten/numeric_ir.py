"""Division-free IR for *evaluating* flattened polynomials.

Emitters never evaluate the expanded ``P`` blindly: expanded high-degree
polynomials lose every digit in float32 (a sum of 20 poles has a
Wilkinson-like ``Q``). Instead the flattening pass builds, next to each exact
fraction, a *structural* IR of its numerator and denominator that mirrors the
exact arithmetic it performed (``a/A + b/B -> (a*B' + b*A') / L`` with the
factors kept as products). Where exact cancellation changed a numerator, the
reduced polynomial is emitted in Horner form instead. Both forms are exactly
equal to the canonical polynomials (tests expand them to check), so the
canonical gauge is kept while floating-point evaluation stays accurate.

Everything here is polynomial (no negative powers), so constant folding
(``1*a -> a``, ``0 + a -> a``) cannot erase a bottom.
"""

from __future__ import annotations

from collections.abc import Generator
from fractions import Fraction
from itertools import compress, count, islice
from typing import TYPE_CHECKING

from sympy.polys.rings import PolyElement

from zpml_symbolic.ir import node as ir
from zpml_symbolic.ir.node import Node, Op

if TYPE_CHECKING:
    from zpml_symbolic.flatten.budget import BudgetMeter

#: Work units charged per term of a Horner form (one unit is about one small
#: coefficient product, ~1 microsecond; interning the nodes of a term costs ~40-60).
HORNER_WORK = 50

ZERO = ir.const(0)
ONE = ir.const(1)


def _const_value(n: Node) -> Fraction | None:
    return n.value if n.op is Op.CONST else None  # type: ignore[return-value]


def n_add(*args: Node) -> Node:
    """Sum with constant folding (division-free operands only)."""
    consts = Fraction(0)
    rest: list[Node] = []
    for a in args:
        v = _const_value(a)
        if v is None:
            rest.append(a)
        else:
            consts += v
    if consts != 0 or not rest:
        rest.append(ir.const(consts))
    return ir.add(*rest)


def n_mul(*args: Node) -> Node:
    """Product with constant folding (division-free operands only)."""
    coeff = Fraction(1)
    rest: list[Node] = []
    for a in args:
        v = _const_value(a)
        if v is None:
            rest.append(a)
        else:
            coeff *= v
    if coeff == 0:
        return ZERO
    if coeff != 1 or not rest:
        rest.insert(0, ir.const(coeff))
    return ir.mul(*rest)


def n_pow(base: Node, n: int) -> Node:
    """``base ** n`` for ``n >= 0``."""
    if n < 0:
        raise ValueError("numeric IR is division-free")
    if n == 0:
        return ONE
    if n == 1:
        return base
    v = _const_value(base)
    if v is not None:
        return ir.const(v**n)
    return ir.pow_(base, n)


def horner(poly: PolyElement, gens: tuple[Node, ...], meter: BudgetMeter | None = None) -> Node:
    """Recursive Horner form of ``poly`` in the ring's generator order.

    The outer recursion is over the first generator (input variables come
    before parameters in every ring here), so coefficient subexpressions in
    parameters only are scalars at run time. Sparse gaps use powers. The
    recursion runs on an explicit stack (a polynomial in 1000 variables is
    fine); ``meter`` is charged :data:`HORNER_WORK` units of work per term, plus
    one unit per term at every level of the recursion that groups it (a chain
    such as ``x0*x1 + x1*x2 + ...`` regroups its terms at every level). Levels
    no term uses are skipped at C speed, so a polynomial in 1000 generators
    costs no Python-level pass per unused generator.
    """
    terms: list[_Term] = []
    for m, c in poly.terms():
        mono = tuple(m)
        terms.append((mono, Fraction(int(c.numerator), int(c.denominator)), _end(mono)))
    if meter is not None:
        meter.charge(HORNER_WORK * len(terms), "the total work so far (Horner form)")
    result: Node = ZERO
    stack: list[Generator[tuple[list[_Term], int], Node, Node]] = [_horner(terms, gens, 0)]
    value: Node | None = None
    while stack:
        try:
            request = stack[-1].send(value)  # type: ignore[arg-type]
        except StopIteration as done:
            stack.pop()
            value = result = done.value
            continue
        if meter is not None:  # each level groups its terms once: one unit per term
            meter.charge(len(request[0]), "the total work so far (Horner form)")
        stack.append(_horner(request[0], gens, request[1]))
        value = None
    return result


_Term = tuple[tuple[int, ...], Fraction, int]  # (monomial, coefficient, 1 + last nonzero index)


def _end(mono: tuple[int, ...]) -> int:
    """1 + the index of the last nonzero exponent (0 for a constant), scanned at C speed."""
    n = len(mono)
    return n - next(compress(count(), reversed(mono)), n)


def _next_used(terms: list[_Term], k: int) -> int:
    """The first generator index ``>= k`` with a nonzero exponent in some term
    (``len`` of the monomials when there is none), scanned at C speed."""
    n = len(terms[0][0])
    return min(next(compress(count(k), islice(mono, k, None)), n) for mono, _, _ in terms)


def _horner(
    terms: list[_Term], gens: tuple[Node, ...], k: int
) -> Generator[tuple[list[_Term], int], Node, Node]:
    """One level of the Horner recursion; yields ``(terms, level)`` to get a sub-result."""
    if not terms:
        return ZERO
    while True:
        if k == len(gens) or all(last <= k for _, _, last in terms):
            if len(terms) == 1:
                return ir.const(terms[0][1])
            return ir.const(sum((c for _, c, _ in terms), Fraction(0)))
        groups: dict[int, list[_Term]] = {}
        for t in terms:
            groups.setdefault(t[0][k], []).append(t)
        if len(groups) == 1 and 0 in groups:
            # no term uses generator k: skip to the next one some term uses (the same
            # result as stepping k by one, without a pass per unused generator)
            k = min(_next_used(terms, k + 1), len(gens))
            continue
        break
    degrees = sorted(groups, reverse=True)
    g = gens[k]
    acc: Node | None = None
    for i, d in enumerate(degrees):
        coeff = yield (groups[d], k + 1)
        acc = coeff if acc is None else n_add(acc, coeff)
        nxt = degrees[i + 1] if i + 1 < len(degrees) else 0
        acc = n_mul(acc, n_pow(g, d - nxt))
    assert acc is not None
    return acc


def product(factors: dict[Node, int] | list[tuple[Node, int]]) -> Node:
    """``prod(f**e)`` of factor IRs."""
    items = factors.items() if isinstance(factors, dict) else factors
    return n_mul(*(n_pow(f, e) for f, e in items)) if items else ONE


__all__ = ["ONE", "ZERO", "horner", "n_add", "n_mul", "n_pow", "product"]
