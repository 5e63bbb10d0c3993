"""Front-end rejections: every non-rational construct names its subexpression and path."""

from __future__ import annotations

import re
from fractions import Fraction

import pytest
import sympy as sp

import zpml_symbolic as zs

x, y = sp.symbols("x y")
f = sp.Function("f")

NOT_RATIONAL_TAIL = "Only symbols, exact numbers, +, *, and integer powers"


def div(a: sp.Expr, b: sp.Expr) -> sp.Expr:
    return sp.Mul(a, sp.Pow(b, -1, evaluate=False), evaluate=False)


def at_path(expr: sp.Basic, path: str) -> sp.Basic:
    """Follow ``root.args[i].args[j]...`` in a sympy tree."""
    assert re.fullmatch(r"root(\.args\[\d+\])*", path), path
    for index in re.findall(r"\[(\d+)\]", path):
        expr = expr.args[int(index)]
    return expr


# (id, expression, message regex, subexpression text)
TOP_LEVEL = [
    ("sin", sp.sin(x), r"function sin is not rational: 'sin\(x\)' at root", "sin(x)"),
    ("cos", sp.cos(x), r"function cos is not rational", "cos(x)"),
    ("exp", sp.exp(x), r"function exp is not rational", "exp(x)"),
    ("log", sp.log(x), r"function log is not rational", "log(x)"),
    ("sqrt", sp.sqrt(x), r"non-integer exponent 1/2: 'sqrt\(x\)' at root", "sqrt(x)"),
    ("Abs", sp.Abs(x), r"function Abs is not rational", "Abs(x)"),
    ("x**0.5", x**0.5, r"non-integer exponent 0\.5", "x**0.5"),
    ("x**Rational(1,2)", x ** sp.Rational(1, 2), r"non-integer exponent 1/2", "sqrt(x)"),
    ("x**Rational(-1,3)", x ** sp.Rational(-1, 3), r"non-integer exponent -1/3", "x**(-1/3)"),
    ("x**y", x**y, r"symbolic exponent y: 'x\*\*y' at root", "x**y"),
    ("I", sp.I, r"irrational or complex constant: 'I' at root", "I"),
    ("oo", sp.oo, r"infinite or undefined constant: 'oo' at root", "oo"),
    ("-oo", -sp.oo, r"infinite or undefined constant: '-oo'", "-oo"),
    ("zoo", sp.zoo, r"infinite or undefined constant: 'zoo'", "zoo"),
    ("nan", sp.nan, r"infinite or undefined constant: 'nan'", "nan"),
    ("pi", sp.pi, r"irrational or complex constant: 'pi'", "pi"),
    ("E", sp.E, r"irrational or complex constant: 'E'", "E"),
    ("GoldenRatio", sp.GoldenRatio, r"irrational or complex constant", "GoldenRatio"),
    ("Eq", sp.Eq(x, 1), r"relations and booleans are not expressions: 'Eq\(x, 1\)'", "Eq(x, 1)"),
    ("x<1", x < 1, r"relations and booleans are not expressions: 'x < 1'", "x < 1"),
    ("sympy-true", sp.true, r"relations and booleans are not expressions", "True"),
    (
        "Piecewise",
        sp.Piecewise((x, x > 0), (0, True)),
        r"Piecewise is not rational",
        "Piecewise((x, x > 0), (0, True))",
    ),
    ("Matrix", sp.Matrix([[x, 1]]), r"matrices are not scalar expressions", "Matrix([[x, 1]])"),
    (
        "ImmutableMatrix",
        sp.ImmutableMatrix([[x], [y]]),
        r"matrices are not scalar expressions",
        "Matrix([[x], [y]])",
    ),
    ("MatrixSymbol", sp.MatrixSymbol("M", 2, 2), r"matrices are not scalar expressions", "M"),
    ("Function", f(x), r"function f is not rational: 'f\(x\)'", "f(x)"),
    (
        "Derivative",
        sp.Derivative(f(x), x),
        r"unsupported node Derivative",
        "Derivative(f(x), x)",
    ),
    ("Integral", sp.Integral(x, x), r"unsupported node Integral", "Integral(x, x)"),
    ("Min", sp.Min(x, y), r"function Min is not rational", "Min(x, y)"),
    ("Float-inf", sp.Float("inf"), r"infinite or undefined constant: 'oo'", "oo"),
    ("Float-nan", sp.Float("nan"), r"infinite or undefined constant: 'nan'", "nan"),
    ("python-inf", float("inf"), r"infinite or undefined constant", "oo"),
    ("python-nan", float("nan"), r"infinite or undefined constant", "nan"),
]


@pytest.mark.parametrize(
    ("expr", "match", "sub"), [pytest.param(*case[1:], id=case[0]) for case in TOP_LEVEL]
)
def test_top_level_rejections(expr: object, match: str, sub: str) -> None:
    with pytest.raises(zs.NotRationalError, match=match) as info:
        zs.from_sympy(expr)
    err = info.value
    assert err.path == "root"
    assert err.subexpression == sub
    assert "at root. " in str(err)
    assert NOT_RATIONAL_TAIL in str(err)
    # flatten reports the same error
    with pytest.raises(zs.NotRationalError, match=match) as info2:
        zs.flatten(expr)
    assert (info2.value.path, info2.value.subexpression) == (err.path, err.subexpression)


# (id, expression, message regex, expected path, subexpression text)
NESTED = [
    (
        "sin-in-divisor",
        sp.Add(x, sp.Pow(sp.Add(y, sp.sin(x), evaluate=False), -1, evaluate=False), evaluate=False),
        r"function sin is not rational: 'sin\(x\)' at root\.args\[1\]\.args\[0\]\.args\[1\]",
        "root.args[1].args[0].args[1]",
        "sin(x)",
    ),
    ("2+3*I", sp.Integer(2) + 3 * sp.I, r"irrational or complex constant: 'I'", None, "I"),
    ("x*I", x * sp.I, r"irrational or complex constant: 'I' at root\.args\[0\]", None, "I"),
    (
        "sqrt-in-denominator",
        div(1, sp.Add(sp.Pow(x, 0.5, evaluate=False), 1, evaluate=False)),
        r"non-integer exponent 0\.5",
        "root.args[1].args[0].args[0]",
        "x**0.5",
    ),
    (
        "symbolic-exponent-deep",
        sp.Mul(2, sp.Add(1, sp.Pow(x, y, evaluate=False), evaluate=False), evaluate=False),
        r"symbolic exponent y",
        "root.args[1].args[1]",
        "x**y",
    ),
    (
        "nan-in-sum",
        sp.Add(x, sp.nan, evaluate=False),
        r"infinite or undefined constant: 'nan' at root\.args\[1\]",
        "root.args[1]",
        "nan",
    ),
    (
        "zoo-as-divisor",
        div(x, sp.Add(sp.zoo, y, evaluate=False)),
        r"infinite or undefined constant: 'zoo' at root\.args\[1\]\.args\[0\]\.args\[0\]",
        "root.args[1].args[0].args[0]",
        "zoo",
    ),
    (
        "pi-in-power-base",
        sp.Pow(sp.Add(x, sp.pi, evaluate=False), 2, evaluate=False),
        r"irrational or complex constant: 'pi' at root\.args\[0\]\.args\[1\]",
        "root.args[0].args[1]",
        "pi",
    ),
    (
        "function-inside-unevaluated",
        sp.Add(1, sp.UnevaluatedExpr(f(x)), evaluate=False),
        r"function f is not rational",
        "root.args[1].args[0]",
        "f(x)",
    ),
    (
        "first-of-two-occurrences",
        sp.Add(sp.exp(x), sp.Mul(2, sp.exp(x), evaluate=False), evaluate=False),
        r"function exp is not rational",
        "root.args[0]",
        "exp(x)",
    ),
    (
        "evaluated-tree",
        x + 1 / (y + sp.sin(x)),
        r"function sin is not rational",
        None,
        "sin(x)",
    ),
]


@pytest.mark.parametrize(
    ("expr", "match", "path", "sub"), [pytest.param(*case[1:], id=case[0]) for case in NESTED]
)
def test_nested_rejections_name_the_path(
    expr: sp.Expr, match: str, path: str | None, sub: str
) -> None:
    with pytest.raises(zs.NotRationalError, match=match) as info:
        zs.from_sympy(expr)
    err = info.value
    if path is not None:
        assert err.path == path
    assert err.path != "root"
    assert f"at {err.path}." in str(err)
    assert err.subexpression == sub
    assert str(at_path(expr, err.path)) == sub  # the path really leads to it
    with pytest.raises(zs.NotRationalError) as info2:
        zs.flatten(expr)
    assert info2.value.path == err.path


def test_long_subexpression_is_truncated() -> None:
    big = sp.sin(sp.Add(*sp.symbols("v0:200")))
    with pytest.raises(zs.NotRationalError, match="function sin") as info:
        zs.from_sympy(sp.Add(x, big, evaluate=False))
    err = info.value
    assert err.path == "root.args[1]"
    assert len(err.subexpression) == 200 and err.subexpression.endswith("…")
    assert err.subexpression.startswith("sin(v0 + v1 + ")
    assert len(str(err)) < 500


@pytest.mark.parametrize(
    ("value", "match"),
    [
        ("x + 1", r"expected a sympy expression, got str; use zs\.parse\(text\) for strings"),
        (None, r"expected a sympy expression, got NoneType"),
        ([x], r"expected a sympy expression, got list"),
        (1 + 2j, r"expected a sympy expression, got complex"),
        (True, r"a bool is not an expression"),
        (False, r"a bool is not an expression"),
    ],
)
def test_non_sympy_values(value: object, match: str) -> None:
    with pytest.raises(zs.NotRationalError, match=match) as info:
        zs.from_sympy(value)
    assert info.value.path == "root"
    assert info.value.subexpression == str(value)


def test_strings_go_through_flatten_not_from_sympy() -> None:
    with pytest.raises(zs.NotRationalError, match="use zs.parse"):
        zs.from_sympy("1/(1/x)")
    fru = zs.flatten("1/(1/x)")  # the safe parser keeps the structure
    assert fru.evaluate({"x": 0}) is zs.BOTTOM
    assert fru.evaluate({"x": 3}) == 3
    with pytest.raises(zs.ParseError, match="function calls are not supported"):
        zs.flatten("sin(x)")


def test_python_numbers_are_accepted() -> None:
    assert zs.from_sympy(3).root.value == Fraction(3)
    assert zs.from_sympy(Fraction(-2, 7)).root.value == Fraction(-2, 7)
    assert zs.from_sympy(0.1).root.value == Fraction(0.1)


def test_not_rational_error_is_a_type_error() -> None:
    assert issubclass(zs.NotRationalError, TypeError)
    assert issubclass(zs.NotRationalError, zs.ZeroProofError)
    try:
        zs.flatten(sp.sin(x))
    except TypeError as err:  # callers catching the builtin see it
        assert isinstance(err, zs.NotRationalError)
        assert err.subexpression == "sin(x)" and err.path == "root"
    else:  # pragma: no cover
        pytest.fail("sin(x) was accepted")


# ------------------------------------------------------------------ symbols


@pytest.mark.parametrize(
    "other",
    [
        sp.Symbol("x", positive=True),
        sp.Symbol("x", integer=True),
        sp.Dummy("x"),
        zs.Coefficient("x"),
    ],
    ids=["positive", "integer", "dummy", "coefficient"],
)
def test_two_symbols_with_one_name(other: sp.Symbol) -> None:
    expr = sp.Add(x, other, evaluate=False)
    with pytest.raises(
        zs.InvalidArgumentError, match="two different symbols are both named 'x'.*rename one"
    ) as info:
        zs.from_sympy(expr)
    assert isinstance(info.value, ValueError)
    with pytest.raises(zs.InvalidArgumentError, match="both named 'x'"):
        zs.flatten(div(1, sp.Add(x, other, evaluate=False)))


def test_same_symbol_with_same_assumptions_is_one_variable() -> None:
    xp = sp.Symbol("x", positive=True)
    front = zs.from_sympy(sp.Add(xp, sp.Symbol("x", positive=True), evaluate=False))
    assert front.root.args[0] is front.root.args[1]
    assert front.symbols == {"x": xp}


# ------------------------------------------------------------------- floats


def test_high_precision_float_is_its_exact_binary_rational() -> None:
    value = sp.Float("0.1", 50)
    got = zs.from_sympy(value).root.value
    assert isinstance(got, Fraction)
    assert got != Fraction(1, 10)  # never rounded back to the decimal
    assert got.denominator & (got.denominator - 1) == 0  # a power of two
    assert abs(got - Fraction(1, 10)) < Fraction(1, 10**49)
    # the 50-digit float is not the double 0.1
    assert got != Fraction(0.1)
    sign, mantissa, exponent, _ = value._mpf_
    assert got == Fraction(mantissa) * Fraction(2) ** exponent and not sign


@pytest.mark.parametrize(
    ("value", "exact"),
    [
        (sp.Float(0.1), Fraction(0.1)),
        (sp.Float("0.5", 50), Fraction(1, 2)),
        (sp.Float("-2.75"), Fraction(-11, 4)),
        (sp.Float(0), Fraction(0)),
        (sp.Float(1e300), Fraction(1e300)),
        (sp.Float("1e300"), Fraction(10**300)),  # sympy keeps integer-valued text exact
        (sp.Float("-1e-300"), Fraction(-1e-300)),
        (sp.Float(2) ** 200, Fraction(2**200)),
    ],
)
def test_floats_are_exact(value: sp.Float, exact: Fraction) -> None:
    assert zs.from_sympy(value).root.value == exact


def test_float_inside_an_expression_is_exact() -> None:
    expr = div(x, sp.Add(x, sp.Float("0.1", 30), evaluate=False))
    fru = zs.flatten(expr)
    (src,) = fru.denominator_provenance
    c = zs.from_sympy(sp.Float("0.1", 30)).root.value
    assert c.denominator > 10**9
    assert fru.evaluate({"x": -c}) is zs.BOTTOM
    assert fru.evaluate({"x": Fraction(-1, 10)}) is not zs.BOTTOM
