"""Hypothesis strategies for random rational expression trees, plus an
independent reference evaluator (a direct tree walk over sympy nodes with
Python Fractions, sharing no code with the compiler)."""

from __future__ import annotations

import random
from fractions import Fraction

import sympy as sp
from hypothesis import strategies as st

X, Y, Z = sp.symbols("x y z")
SYMBOLS = (X, Y, Z)


class _Bot:
    def __repr__(self) -> str:
        return "BOT"


BOT = _Bot()


def ref_eval(expr: sp.Basic, env: dict[sp.Symbol, Fraction]) -> Fraction | _Bot:
    """Strict common-meadow value of the tree as written (docs/semantics.md §1)."""
    if isinstance(expr, sp.Symbol):
        return env[expr]
    if isinstance(expr, sp.Rational):
        return Fraction(int(expr.p), int(expr.q))
    if isinstance(expr, sp.UnevaluatedExpr):
        return ref_eval(expr.args[0], env)
    if isinstance(expr, sp.Add | sp.Mul):
        vals = [ref_eval(a, env) for a in expr.args]
        if any(v is BOT for v in vals):
            return BOT
        acc = Fraction(0) if isinstance(expr, sp.Add) else Fraction(1)
        for v in vals:
            acc = acc + v if isinstance(expr, sp.Add) else acc * v  # type: ignore[operator]
        return acc
    if isinstance(expr, sp.Pow):
        base = ref_eval(expr.base, env)
        n = int(expr.exp)
        if base is BOT:
            return BOT
        if n < 0 and base == 0:
            return BOT
        return base**n  # type: ignore[operator]
    raise TypeError(f"reference evaluator does not know {type(expr).__name__}")


def _div(a: sp.Expr, b: sp.Expr) -> sp.Expr:
    return sp.Mul(a, sp.Pow(b, -1, evaluate=False), evaluate=False)


leaves = st.one_of(
    st.sampled_from(SYMBOLS),
    st.integers(-3, 3).map(sp.Integer),
    st.sampled_from([sp.Rational(1, 2), sp.Rational(-3, 2), sp.Rational(5, 3)]),
)


def _extend(children: st.SearchStrategy[sp.Expr]) -> st.SearchStrategy[sp.Expr]:
    pair = st.tuples(children, children)
    return st.one_of(
        pair.map(lambda ab: sp.Add(ab[0], ab[1], evaluate=False)),
        pair.map(lambda ab: sp.Add(ab[0], sp.Mul(-1, ab[1], evaluate=False), evaluate=False)),
        pair.map(lambda ab: sp.Mul(ab[0], ab[1], evaluate=False)),
        pair.map(lambda ab: _div(ab[0], ab[1])),
        st.tuples(children, st.sampled_from([-2, -1, 2, 3])).map(
            lambda bn: sp.Pow(bn[0], bn[1], evaluate=False)
        ),
        # shared subtree: the same child used twice
        pair.map(lambda ab: sp.Add(ab[0], _div(ab[1], ab[0]), evaluate=False)),
        children.map(lambda a: _div(a, a)),
    )


expressions = st.recursive(leaves, _extend, max_leaves=10)


def divisors(expr: sp.Basic) -> list[sp.Expr]:
    """Bases of every negative power in the tree."""
    out = []
    for node in sp.preorder_traversal(expr):
        if isinstance(node, sp.Pow) and node.exp.is_negative:
            out.append(node.base)
    return out


def singular_points(
    expr: sp.Expr, rng: random.Random, limit: int = 6
) -> list[dict[sp.Symbol, Fraction]]:
    """Points on the zero sets of the tree's divisors (rational roots only).

    For each divisor, fix all but one symbol to small random rationals and
    solve the divisor's numerator for the last one.
    """
    points = []
    for d in divisors(expr)[:limit]:
        free = sorted(d.free_symbols, key=str)
        if not free:
            continue
        target = rng.choice(free)
        env = {s: Fraction(rng.randint(-3, 3), rng.choice([1, 2])) for s in SYMBOLS}
        sub = {s: sp.Rational(v.numerator, v.denominator) for s, v in env.items() if s != target}
        numer = sp.numer(sp.together(d.doit().subs(sub)))
        if numer.free_symbols != {target}:
            continue
        for root in sp.Poly(numer, target).ground_roots():
            if root.is_Rational:
                env2 = dict(env)
                env2[target] = Fraction(int(root.p), int(root.q))
                points.append(env2)
    return points


def random_points(rng: random.Random, n: int = 4) -> list[dict[sp.Symbol, Fraction]]:
    """Random rational points (almost never on a pole)."""
    return [
        {s: Fraction(rng.randint(-50, 50), rng.randint(1, 13)) for s in SYMBOLS} for _ in range(n)
    ]
