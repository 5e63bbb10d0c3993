"""Accuracy of the emitted evaluation against exact evaluation (fast version of
``benchmarks/bench_accuracy.py``).

E1-E3 of the issue at 2000 random points: the strict evaluator's decoded
value, in float32 and float64, must have a median relative error no worse
than 2x that of ``sympy.lambdify`` of the original tree (plus the unit
roundoff, so exact ties pass), and E3 in float32 at most 1e-5. Evaluating the
expanded ``P/Q`` instead fails the E3 bound by orders of magnitude (checked
below, so the bound is known to discriminate).

The reference is the tests' independent strict tree walker
(``sym_strategies.ref_eval``, exact Fractions) over the original sympy tree at
the float inputs taken as exact binary rationals; it shares no code with the
compiler.
"""

from __future__ import annotations

import functools
from fractions import Fraction
from math import factorial

import numpy as np
import pytest
import sympy as sp
import torch
from sym_strategies import BOT, ref_eval

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


@functools.cache
def _setup(
    name: str, dtype: torch.dtype
) -> tuple[sp.Expr, torch.Tensor, tuple[Fraction | None, ...]]:
    make, variables, lo, hi = CASES[name]
    expr = make()
    rng = np.random.default_rng(7)
    x = torch.from_numpy(rng.uniform(lo, hi, size=(N_POINTS, len(variables)))).to(dtype)
    exact: list[Fraction | None] = []
    for row in x.double().tolist():
        value = ref_eval(expr, {s: Fraction(c) for s, c in zip(variables, row, strict=True)})
        exact.append(None if value is BOT else value)
    return expr, x, tuple(exact)


def _median_rel_error(approx: torch.Tensor, exact: tuple[Fraction | None, ...]) -> float:
    errs = []
    for a, e in zip(approx.double().tolist(), exact, strict=True):
        if e is None or e == 0:
            continue
        if not np.isfinite(a):
            errs.append(np.inf)
            continue
        errs.append(float(abs(Fraction(a) - e) / abs(e)))
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
