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

from fractions import Fraction

from sympy.polys.rings import PolyElement

from zpml_symbolic.ir import node as ir
from zpml_symbolic.ir.node import Node, Op

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


def horner(poly: PolyElement, gens: tuple[Node, ...]) -> Node:
    """Recursive Horner form of ``poly`` in the ring's generator order.

    The outer recursion is over the first generator (input variables come
    before parameters in every ring here), so coefficient subexpressions in
    parameters only are scalars at run time. Sparse gaps use powers.
    """
    terms = [(tuple(m), Fraction(int(c.numerator), int(c.denominator))) for m, c in poly.terms()]
    return _horner(terms, gens, 0)


def _horner(terms: list[tuple[tuple[int, ...], Fraction]], gens: tuple[Node, ...], k: int) -> Node:
    if not terms:
        return ZERO
    if k == len(gens) or all(m[k:] == (0,) * (len(m) - k) for m, _ in terms):
        return ir.const(sum((c for _, c in terms), Fraction(0)))
    groups: dict[int, list[tuple[tuple[int, ...], Fraction]]] = {}
    for m, c in terms:
        groups.setdefault(m[k], []).append((m, c))
    degrees = sorted(groups, reverse=True)
    if len(degrees) == 1 and degrees[0] == 0:
        return _horner(terms, gens, k + 1)
    g = gens[k]
    acc: Node | None = None
    for i, d in enumerate(degrees):
        coeff = _horner(groups[d], gens, k + 1)
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
