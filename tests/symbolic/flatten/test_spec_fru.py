"""The compiler's copies of the mask rule, tested against ``zpml_core.spec``.

``FlattenedFRU.evaluate``, ``explain`` and ``structural_validity_failures``
decide bottom exactly; here the values of ``P``, ``Q`` and every factor are
computed independently (sympy substitution of the printed polynomials; a
polynomial that uses a non-finite input is NaN) and handed to
``spec.classify(..., dtype=None)``. Points are drawn on the zero sets of the
factors on purpose, with NaN/inf inputs, and each factor threshold is drawn
equal to ``|V_i|`` at the point (the ``<`` vs ``<=`` boundary). The generated
reverse mode is checked against exact derivatives (its ``scale`` rule carries
the signed coefficient).
"""

from __future__ import annotations

import functools
import math
from fractions import Fraction

import pytest
import sympy as sp
import torch
from hypothesis import example, given, settings
from hypothesis import strategies as st

import zpml_symbolic as zs
from zpml_core import spec

EXPRS = {
    "sum": ("1/(1 + 1/x) + y/(x - y)", ("x", "y")),
    "removable": ("(x**2 - 1)/(x - 1)", ("x",)),
    "nested": ("1/(x*y - 1/(y + 2))", ("x", "y")),
    "unused_input": ("1/y", ("x", "y")),  # x is an input no polynomial uses
}
FRUS = {k: zs.flatten(zs.parse(e), variables=list(v)) for k, (e, v) in EXPRS.items()}
#: coordinates on the zero sets of the factors above, small dyadics, and non-finite values
SPECIAL = [0, 1, -1, -2, 2, Fraction(1, 2), Fraction(-1, 4), math.nan, math.inf, -math.inf]
DYADIC = st.builds(Fraction, st.integers(-64, 64), st.sampled_from([1, 2, 4, 8]))


def _value(expr: sp.Expr, point: dict[str, Fraction | float]) -> Fraction | float:
    """Exact value of a polynomial; NaN when it uses a non-finite input."""
    used = {s.name for s in expr.free_symbols}
    if any(isinstance(v, float) and not math.isfinite(v) for k, v in point.items() if k in used):
        return math.nan
    sub = {
        sp.Symbol(k): sp.Rational(v.numerator, v.denominator) for k, v in point.items() if k in used
    }
    r = sp.Rational(sp.sympify(expr).subs(sub))
    return Fraction(int(r.p), int(r.q))


@st.composite
def points(draw):
    name = draw(st.sampled_from(sorted(FRUS)))
    fru = FRUS[name]
    coords = {}
    for s in fru.variables:
        v = draw(st.one_of(st.sampled_from(SPECIAL), DYADIC))
        coords[s.name] = v if isinstance(v, float) else Fraction(v)
    if name == "sum" and draw(st.booleans()) and isinstance(coords["y"], Fraction):
        coords["x"] = coords["y"]  # on x - y = 0
    return name, coords


def _tau_at(v: Fraction | float, choice: int) -> float:
    """0, |v| itself (exactly, when a float holds it), twice or half of it."""
    if isinstance(v, float) or v == 0 or choice == 0:
        return 0.0
    a = abs(v) * [1, 1, 2, Fraction(1, 2)][choice]
    return float(a) if Fraction(float(a)) == a else 0.0


@example(case=("removable", {"x": Fraction(1)}))  # V = x - 1 is zero, Q = 1 is not
@example(case=("sum", {"x": Fraction(0), "y": Fraction(1)}))  # V = x is zero
@example(case=("sum", {"x": math.nan, "y": Fraction(1)}))  # a fault
@given(points())
def test_evaluate_and_explain_match_spec(case) -> None:
    name, point = case
    fru = FRUS[name]
    p, q = _value(fru.numerator, point), _value(fru.denominator, point)
    vs = [_value(v, point) for v in fru.validity_factors]
    verdict = spec.classify(p, q, vs, dtype=None)
    got = fru.evaluate(point)
    assert (got is zs.BOTTOM) == verdict.bottom
    if not verdict.bottom:
        assert Fraction(int(got.p), int(got.q)) == verdict.decoded

    # explain names exactly the provenance factors that are zero or non-finite
    factors = [_value(s.factor, point) for s in fru.denominator_provenance]
    each = spec.classify(1, 1, factors, dtype=None)
    failing = [f or s for f, s in zip(each.factor_faults, each.factor_semantics, strict=True)]
    explanation = fru.explain(point)
    assert explanation.bottom == verdict.bottom
    assert [s in explanation.causes for s in fru.denominator_provenance] == failing
    assert explanation.denominator_zero == (spec.classify(1, q, dtype=None).bottom)


@given(points(), st.lists(st.integers(0, 3), min_size=3, max_size=3))
def test_structural_validity_failures_match_spec(case, choices) -> None:
    name, point = case
    fru = FRUS[name]
    vs = [_value(v, point) for v in fru.validity_factors]
    taus = [_tau_at(v, c) for v, c in zip(vs, choices, strict=False)]
    verdict = spec.classify(1, 1, vs, taus=taus, dtype=None)
    got = {
        f.index: (f.fault, f.semantic) for f in fru.structural_validity_failures(point, taus=taus)
    }
    want = {
        i: (f, s)
        for i, (f, s) in enumerate(
            zip(verdict.factor_faults, verdict.factor_semantics, strict=True)
        )
        if f or s
    }
    assert got == want


def test_structural_validity_failures_at_the_threshold() -> None:
    """|V| == tau is not a failure, one dyadic step below it is (hand-checked boundary)."""
    fru = FRUS["sum"]  # V_0 = x
    assert fru.structural_validity_failures({"x": 0.5, "y": 3}, taus=0.5) == ()
    (fail,) = fru.structural_validity_failures({"x": 0.4375, "y": 3}, taus=0.5)
    assert (fail.index, fail.fault, fail.semantic) == (0, False, True)


def test_unused_non_finite_input_is_not_a_fault() -> None:
    fru = FRUS["unused_input"]
    assert fru.evaluate({"x": math.inf, "y": 2}) == sp.Rational(1, 2)
    assert not spec.classify(1, 2, dtype=None).bottom


# --------------------------------------------------------------------------- adjoint

ADJOINT_EXPRS = [
    ("-3*x/(y**2 + 1)", ()),  # P is itself a scale instruction: the scale rule's own adjoint
    ("(-3*x + 2*y)/(x**2 - 5*x*y + 2) - 7*y/(3 - 2*x)", ()),
    ("a*x/(1 - b*x) + (-5)*(x*y)", ("a", "b")),
]
INIT = {"a": -2.0, "b": -0.5}


@functools.cache
def _adjoint_evaluator(which: int) -> zs.StrictEvaluator:
    text, params = ADJOINT_EXPRS[which]
    init = {k: INIT[k] for k in params} or None
    return zs.strict_evaluator(text, parameters=list(params), init=init, dtype=torch.float64)


@settings(max_examples=25)
@given(
    st.sampled_from(range(len(ADJOINT_EXPRS))),
    st.lists(st.tuples(DYADIC, DYADIC), min_size=1, max_size=6),
)
def test_adjoint_gradients_match_exact_derivatives(which: int, rows) -> None:
    """``d decoded / d x`` and ``/ d params`` from the generated reverse mode equal the exact
    derivatives at defined rows and are exactly 0 at bottom rows (negative ``scale``
    coefficients included)."""
    text, params = ADJOINT_EXPRS[which]
    ev = _adjoint_evaluator(which)
    named = dict(ev.named_parameters())
    for param in named.values():
        param.grad = None
    x = torch.tensor(
        [[float(a), float(b)] for a, b in rows], dtype=torch.float64, requires_grad=True
    )
    result = ev(x)
    result.decoded.nan_to_num(0.0).sum().backward()
    expr = zs.parse(text, parameters=list(params))
    sym = {s.name: s for s in expr.free_symbols}
    wrt = [sym.get("x", sp.Symbol("x")), sym.get("y", sp.Symbol("y"))]
    param_values = {sym[k]: sp.Rational(INIT[k]) for k in params}
    grads = {k: 0.0 for k in params}
    for r, (a, b) in enumerate(rows):
        if bool(result.bottom_mask[r]):
            assert x.grad[r].tolist() == [0.0, 0.0]
            continue
        at = {wrt[0]: sp.Rational(a), wrt[1]: sp.Rational(b), **param_values}
        for j, s in enumerate(wrt):
            want = float(sp.diff(expr, s).subs(at))
            assert x.grad[r, j].item() == pytest.approx(want, rel=1e-9, abs=1e-12)
        for k in params:
            grads[k] += float(sp.diff(expr, sym[k]).subs(at))
    for k in params:
        got = named[f"model.coefficients.{k}"].grad
        assert got.item() == pytest.approx(grads[k], rel=1e-9, abs=1e-12)
