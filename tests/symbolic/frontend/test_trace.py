"""Tests for tracing Python functions (zpml_symbolic.frontend.trace) and Coefficient.

Several tests pin down how sympy behaves with and without ``evaluate(False)``
on this sympy version: docs/frontend.md quotes these behaviours.
"""

from __future__ import annotations

import copy
import math

import pytest
import sympy

from zpml_symbolic.errors import (
    InputTypeError,
    InvalidArgumentError,
    NotRationalError,
    ZeroProofError,
)
from zpml_symbolic.frontend.coefficient import Coefficient, as_coefficient, is_coefficient
from zpml_symbolic.frontend.parser import parse
from zpml_symbolic.frontend.trace import TracedFunction, trace, traced

x, y = sympy.symbols("x y")
Add, Mul, Pow = sympy.Add, sympy.Mul, sympy.Pow


def inv(e: sympy.Expr) -> sympy.Expr:
    return Pow(e, -1, evaluate=False)


# --------------------------------------------------------------------------- Coefficient


def test_coefficient_is_distinct_from_symbol() -> None:
    a = Coefficient("a")
    s = sympy.Symbol("a")
    assert a != s and s != a
    assert hash(a) != hash(s)
    assert len({a, s}) == 2
    assert Coefficient("a") == a and Coefficient("a") is a  # sympy caches symbols per class
    assert isinstance(a, sympy.Symbol) and a.name == "a"
    assert Coefficient("a", positive=True) != a


def test_coefficient_survives_sympy_operations() -> None:
    a = Coefficient("a")
    e = a * x + 1
    assert a in e.free_symbols
    assert is_coefficient(e.subs(x, 2).free_symbols.pop())
    assert is_coefficient(copy.deepcopy(a))
    assert is_coefficient(sympy.sympify(a))
    assert sympy.Poly(a * x, x).coeffs() == [a]
    assert sympy.srepr(a) == "Coefficient('a')"


def test_is_coefficient() -> None:
    assert is_coefficient(Coefficient("w"))
    assert not is_coefficient(sympy.Symbol("w"))
    assert not is_coefficient("w")
    assert not is_coefficient(None)


def test_as_coefficient() -> None:
    c = Coefficient("c")
    assert as_coefficient(c) is c
    assert as_coefficient("c") == c
    converted = as_coefficient(sympy.Symbol("c", positive=True))
    assert is_coefficient(converted) and converted.is_positive
    with pytest.raises(InvalidArgumentError, match="not a valid identifier"):
        as_coefficient("2c")
    with pytest.raises(InvalidArgumentError, match="must be a name"):
        as_coefficient(3)  # type: ignore[arg-type]


# --------------------------------------------------------------------------- trace basics


def test_trace_keeps_structure() -> None:
    e = trace(lambda x: x / x, ["x"])
    assert e != 1
    assert e.args == (x, inv(x))
    assert trace(lambda x: 1 / (1 / x), ["x"]) == inv(inv(x))
    assert trace(lambda x: 0 * (1 / x), ["x"]).args == (0, inv(x))
    e = trace(lambda x: (x**2 - 1) / (x - 1), ["x"])
    assert inv(Add(x, -1, evaluate=False)) in e.args


def test_trace_matches_parse_for_simple_forms() -> None:
    for text, fn in [
        ("x/x", lambda x: x / x),
        ("1/(1/x)", lambda x: 1 / (1 / x)),
        ("0*(1/x)", lambda x: 0 * (1 / x)),
        ("x**2", lambda x: x**2),
        ("x**(-2)", lambda x: x**-2),
    ]:
        assert trace(fn, ["x"]) == parse(text), text


def test_trace_with_parameters() -> None:
    e = trace(lambda x, y, a, b: a * x / (b + y), ["x", "y"], parameters=["a", "b"])
    by_name = {s.name: s for s in e.free_symbols}
    assert is_coefficient(by_name["a"]) and is_coefficient(by_name["b"])
    assert type(by_name["x"]) is sympy.Symbol and type(by_name["y"]) is sympy.Symbol


def test_trace_symbol_objects_used_as_is() -> None:
    xr = sympy.Symbol("x", real=True)
    c = Coefficient("c", positive=True)
    e = trace(lambda x, c: c * x, [xr], parameters=[c])
    assert {id(s) for s in e.free_symbols} == {id(xr), id(c)}


def test_trace_restores_evaluation() -> None:
    trace(lambda x: x / x, ["x"])
    assert x / x == 1  # evaluate(False) does not leak out of trace


def test_trace_propagates_fn_errors_with_note() -> None:
    def boom(x: sympy.Symbol) -> sympy.Expr:
        raise KeyError("inner")

    with pytest.raises(KeyError) as info:
        trace(boom, ["x"])
    assert any("boom" in note for note in info.value.__notes__)
    assert x / x == 1


# --------------------------------------------------------------------------- trace errors


def test_trace_result_must_be_expr() -> None:
    with pytest.raises(NotRationalError, match=r"returned int 3.*ignored its symbolic") as info:
        trace(lambda x: 3, ["x"])
    assert "lambda" in str(info.value)

    def pair(x: sympy.Symbol) -> tuple[sympy.Expr, sympy.Expr]:
        return x, x

    with pytest.raises(NotRationalError, match=r"pair returned tuple.*one output at a time"):
        trace(pair, ["x"])
    with pytest.raises(NotRationalError, match="returned NoneType"):
        trace(lambda x: None, ["x"])
    with pytest.raises(NotRationalError, match="returned StrictLessThan"):
        trace(lambda x: x < 1, ["x"])


@pytest.mark.parametrize(
    ("variables", "parameters", "match"),
    [
        ("x", (), "not a single string"),
        (["x", "x"], (), "more than once"),
        (["x"], ["x"], "more than once"),
        (["1x"], (), "not a valid identifier"),
        ([sympy.Symbol("x y")], (), "not a valid identifier"),
        ([3], (), "must be a name"),
        ([Coefficient("a")], (), "list it under parameters"),
        (["x"], "a", "not a single string"),
        (5, (), "sequence of names"),
    ],
)
def test_trace_bad_names(variables: object, parameters: object, match: str) -> None:
    with pytest.raises(InvalidArgumentError, match=match):
        trace(lambda *args: args[0], variables, parameters=parameters)  # type: ignore[arg-type]


def test_trace_arity_mismatch() -> None:
    with pytest.raises(InvalidArgumentError, match=r"cannot be called with 2 positional"):
        trace(lambda x: x, ["x", "y"])
    with pytest.raises(InvalidArgumentError, match=r"cannot be called with 1 positional"):
        trace(lambda x, a: a * x, ["x"])


def test_trace_requires_callable() -> None:
    with pytest.raises(InputTypeError, match="expects a callable") as info:
        trace("x/x", ["x"])  # type: ignore[arg-type]
    assert isinstance(info.value, TypeError) and isinstance(info.value, ZeroProofError)


# --------------------------------------------------------------------------- decorator


def test_traced_decorator() -> None:
    @traced(["x"], parameters=["a"])
    def f(x: float, a: float) -> float:
        """Docstring kept."""
        return a * x / x

    assert isinstance(f, TracedFunction)
    assert f.expr == Mul(Mul(Coefficient("a"), x, evaluate=False), inv(x), evaluate=False)
    assert f.variables == (x,) and f.parameters == (Coefficient("a"),)
    assert f(2, 3) == 3.0  # still callable on numbers
    assert f.__name__ == "f" and f.__doc__ == "Docstring kept."
    assert "traced" in repr(f)


def test_traced_validates_names_early() -> None:
    with pytest.raises(InvalidArgumentError):
        traced(["x", "x"])
    with pytest.raises(NotRationalError):

        @traced(["x"])
        def g(x: float) -> int:
            return 1


def test_traced_accepts_iterators_once() -> None:
    deco = traced(iter(["x"]))  # type: ignore[arg-type]
    assert deco(lambda x: x).expr == x
    assert deco(lambda x: -x).expr == Mul(-1, x, evaluate=False)


# --------------------------------------------------------------------------- documented sympy behaviour


def test_without_evaluate_false_sympy_loses_bottoms() -> None:
    assert x / x == 1
    assert 1 / (1 / x) == x
    assert 0 * (1 / x) == 0
    assert x - x == 0


def test_under_evaluate_false_structure_stays() -> None:
    with sympy.evaluate(False):
        assert (x / x).args == (x, inv(x))
        assert (x - x).args == (x, Mul(-1, x, evaluate=False))
        assert (x + x).args == (x, x)
        assert (x * 0).args == (x, 0)  # written order kept
        assert sympy.Integer(1) / 2 == inv(sympy.Integer(2))
        neg = -x
        assert -neg == x  # one cheap rewrite that still happens (harmless: no division)


def test_python_folds_literals_before_sympy() -> None:
    e = trace(lambda x: x * (1 / 2), ["x"])
    assert e.has(sympy.Float) and sympy.Float(0.5) in e.args
    e = trace(lambda x: 2 * 3 * x, ["x"])
    assert e.args == (6, x)
    e = trace(lambda x: x * sympy.Rational(1, 2), ["x"])
    assert not e.has(sympy.Float)


def test_floats_are_exact_binary_rationals() -> None:
    e = trace(lambda x: x + 0.1, ["x"])
    (f,) = [a for a in e.args if isinstance(a, sympy.Float)]
    exact = sympy.Rational(f)
    assert exact == sympy.Rational(3602879701896397, 36028797018963968)
    assert exact == sympy.Rational(*(0.1).as_integer_ratio())
    assert exact != sympy.Rational(1, 10)
    assert sympy.Rational("0.1") == sympy.Rational(1, 10) == parse("0.1")
    assert math.isclose(float(exact), 0.1)


def test_sum_starts_from_python_zero() -> None:
    e = trace(lambda x, y: sum([x, y]), ["x", "y"])
    assert e.has(sympy.Integer(0)) or 0 in e.args[0].args


def test_rewriting_functions_under_evaluate_false() -> None:
    # expand/together leave the unevaluated tree alone.
    assert trace(lambda x: sympy.expand(x / x), ["x"]) == Mul(x, inv(x), evaluate=False)
    assert trace(lambda x: sympy.together(1 / (1 / x)), ["x"]) == inv(inv(x))


@pytest.mark.slow
@pytest.mark.parametrize("rewrite", [sympy.cancel, sympy.simplify])
def test_simplifying_inside_traced_function_is_unsafe(rewrite: object) -> None:
    try:
        result = trace(lambda x: rewrite(x / x), ["x"])  # type: ignore[operator]
    except RecursionError:  # what sympy 1.14 does under evaluate(False)
        return
    assert result == 1  # otherwise the bottom is gone


def test_combining_outside_evaluate_false_loses_bottoms() -> None:
    e = trace(lambda x: x / x, ["x"])
    assert e * 2 == 2  # the unevaluated Mul is flattened and x*(1/x) cancels
    assert e * x == x
    assert e - e == 0
    with sympy.evaluate(False):
        kept = e * 2
    assert kept.args == (e, 2)


def test_unevaluated_expr_is_only_a_partial_guard() -> None:
    u = sympy.UnevaluatedExpr
    assert x / u(x) != 1  # the divisor is shielded from the numerator
    assert (1 / u(1 / x)).args == (u(inv(x)), -1)
    assert u(x) / u(x) == 1  # but identical wrapped objects still cancel
    assert 0 * u(1 / x) == 0  # and 0*anything is still folded to 0
    assert u(x / x) == u(sympy.Integer(1))  # the argument is evaluated before wrapping
