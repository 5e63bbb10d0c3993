"""Accuracy of the emitted evaluation against exact evaluation (fast version of
``benchmarks/bench_accuracy.py``).

E1-E3 of the issue at 2000 random points: the strict evaluator's decoded
value, in float32 and float64, must have a median relative error no worse
than 2x that of ``sympy.lambdify`` of the original tree (plus the unit
roundoff, so exact ties pass), and E3 in float32 at most 1e-5. Evaluating the
expanded ``P/Q`` instead fails the E3 bound by orders of magnitude (checked
below, so the bound is known to discriminate).

The reference is exact rational arithmetic (python-flint ``fmpq``) over the
original sympy tree at the float inputs taken as exact binary rationals; it
shares no code with the compiler.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from math import factorial

import flint
import numpy as np
import pytest
import sympy as sp
import torch

import zpml_symbolic as zs

X, Y, Z = sp.symbols("x y z")
N_POINTS = 2000
UNIT = {torch.float32: 2.0**-24, torch.float64: 2.0**-53}


def _div(a: sp.Expr, b: sp.Expr) -> sp.Expr:
    return sp.Mul(a, sp.Pow(b, -1, evaluate=False), evaluate=False)


def _e1() -> sp.Expr:
    a = [
        sp.Rational(
            factorial(10 - k) * factorial(5), factorial(10) * factorial(k) * factorial(5 - k)
        )
        for k in range(6)
    ]
    return _div(
        sp.Add(*[c * X**k for k, c in enumerate(a)]),
        sp.Add(*[c * (-X) ** k for k, c in enumerate(a)]),
    )


def _e2() -> sp.Expr:
    return sp.parse_expr(
        "(x*y + z)/(x - y) + 1/(1 + 1/(x*z)) - (x**2 + y**2)/(z**2 + 1)", evaluate=False
    )


def _e3() -> sp.Expr:
    terms = [
        _div(sp.Rational((-1) ** k * (20 + k), 20), X - sp.Rational(k, 10)) for k in range(1, 21)
    ]
    return sp.Add(*terms, evaluate=False)


CASES = {
    "E1": (_e1, (X,), -3.0, 3.0),
    "E2": (_e2, (X, Y, Z), -2.0, 2.0),
    "E3": (_e3, (X,), -1.0, 3.0),
}

Exact = Callable[[list[flint.fmpq]], flint.fmpq]


class _Bottom(Exception):
    pass


def _exact_fn(expr: sp.Basic, variables: tuple[sp.Symbol, ...]) -> Exact:
    """The tree as a closure over exact rationals (raises ``_Bottom`` on a division by 0)."""
    index = {s: i for i, s in enumerate(variables)}

    def build(e: sp.Basic) -> Exact:
        if isinstance(e, sp.Symbol):
            i = index[e]
            return lambda v: v[i]
        if isinstance(e, sp.Rational):
            c = flint.fmpq(int(e.p), int(e.q))
            return lambda v: c
        if isinstance(e, sp.Add | sp.Mul):
            fs = [build(a) for a in e.args]
            add = isinstance(e, sp.Add)

            def fold(v: list[flint.fmpq]) -> flint.fmpq:
                acc = fs[0](v)
                for f in fs[1:]:
                    acc = acc + f(v) if add else acc * f(v)
                return acc

            return fold
        if isinstance(e, sp.Pow):
            fb, n = build(e.base), int(e.exp)

            def power(v: list[flint.fmpq]) -> flint.fmpq:
                b = fb(v)
                if n < 0 and b == 0:
                    raise _Bottom
                return b**n

            return power
        raise TypeError(f"unexpected node {type(e).__name__}")

    return build(expr)


def _fq(v: float) -> flint.fmpq:
    return flint.fmpq(*float(v).as_integer_ratio())


@functools.cache
def _setup(
    name: str, dtype: torch.dtype
) -> tuple[sp.Expr, torch.Tensor, tuple[flint.fmpq | None, ...]]:
    make, variables, lo, hi = CASES[name]
    expr = make()
    rng = np.random.default_rng(7)
    x = torch.from_numpy(rng.uniform(lo, hi, size=(N_POINTS, len(variables)))).to(dtype)
    f = _exact_fn(expr, variables)
    exact: list[flint.fmpq | None] = []
    for row in x.double().tolist():
        try:
            exact.append(f([_fq(c) for c in row]))
        except _Bottom:
            exact.append(None)
    return expr, x, tuple(exact)


def _median_rel_error(approx: torch.Tensor, exact: tuple[flint.fmpq | None, ...]) -> float:
    errs = []
    for a, e in zip(approx.double().tolist(), exact, strict=True):
        if e is None or e == 0:
            continue
        if not np.isfinite(a):
            errs.append(np.inf)
            continue
        d = abs(_fq(a) - e) / abs(e)
        errs.append(int(d.p) / int(d.q))
    assert len(errs) > len(exact) // 2
    return float(np.median(errs))


def _columns(x: torch.Tensor) -> list[torch.Tensor]:
    return [x[:, i] for i in range(x.shape[1])]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["float32", "float64"])
@pytest.mark.parametrize("name", list(CASES))
def test_decoded_error_is_within_2x_of_lambdify(name: str, dtype: torch.dtype) -> None:
    expr, x, exact = _setup(name, dtype)
    variables = CASES[name][1]
    ev = zs.strict_evaluator(expr)
    assert ev.model.variables == tuple(s.name for s in variables)
    lam = sp.lambdify(variables, expr, modules="torch")
    with torch.no_grad():
        ours = _median_rel_error(ev(x).decoded, exact)
        base = _median_rel_error(lam(*_columns(x)), exact)
    assert ours <= 2.0 * base + UNIT[dtype], (
        f"{name} {dtype}: ours {ours:.3g} vs lambdify {base:.3g}"
    )
    if name == "E3" and dtype == torch.float32:
        assert ours <= 1e-5, f"E3 float32 median relative error {ours:.3g} > 1e-5"


def test_e3_bound_rejects_expanded_evaluation() -> None:
    """The naive expanded (monomial) P/Q misses the E3 float32 bound, so the test above can fail."""
    expr, x, exact = _setup("E3", torch.float32)
    fru = zs.flatten(expr)
    p = sp.lambdify((X,), sp.N(fru.numerator, 17), modules="torch")
    q = sp.lambdify((X,), sp.N(fru.denominator, 17), modules="torch")
    with torch.no_grad():
        naive = p(x[:, 0]) / q(x[:, 0])
    assert _median_rel_error(naive, exact) > 1e-3
