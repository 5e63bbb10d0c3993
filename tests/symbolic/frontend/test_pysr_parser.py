"""PySR spellings in the parser, float-literal lifting (parse_equation) and DecimalNumber."""

from __future__ import annotations

import copy
import subprocess
import sys
from decimal import Decimal
from fractions import Fraction

import pytest
import sympy
from hypothesis import given, settings
from hypothesis import strategies as st

import zpml_symbolic as zs
from zpml_symbolic.errors import InvalidArgumentError, NotRationalError, ParseError
from zpml_symbolic.frontend import DecimalNumber, parse_equation
from zpml_symbolic.frontend.decimal_number import decimal_text, with_decimals
from zpml_symbolic.frontend.equation import default_variables, equation_identifiers

x, y = sympy.symbols("x y")
BOTTOM = "BOTTOM"


def value_at(text: str, point: dict[str, Fraction], **kw: object) -> object:
    """Exact strict value of ``text`` through parse + flatten (BOTTOM or a Fraction)."""
    v = zs.flatten(zs.parse(text, **kw)).evaluate(point)
    return BOTTOM if v is zs.BOTTOM else Fraction(int(v.p), int(v.q))


# --------------------------------------------------------------------------- spellings


@pytest.mark.parametrize(
    ("pysr", "plain"),
    [
        ("square(x)", "x**2"),
        ("cube(x)", "x**3"),
        ("inv(x)", "x**-1"),
        ("neg(x)", "-x"),
        ("square(x - 1)", "(x - 1)**2"),
        ("cube(inv(x))^2", "((1/x)**3)**2"),
        ("inv(inv(x))", "1/(1/x)"),
        ("x ** 2.0", "x**2"),
        ("x ^ 2.0", "x**2"),
        ("x ^ 2", "x**2"),
        ("x ** -1.0", "x**-1"),
        ("x ** (-2.0)", "x**(-2)"),
        ("x ** 1e1", "x**10"),
        ("x ** 3.", "x**3"),
        ("x + -1.5", "x - 1.5"),
        ("x - -1.5", "x + 1.5"),
        ("(x * 2.0) + -0.5", "(x * 2) - 0.5"),
    ],
)
def test_pysr_spellings_parse_to_the_plain_tree(pysr: str, plain: str) -> None:
    assert zs.parse(pysr) == zs.parse(plain)


def test_functions_keep_bottoms() -> None:
    # inv(inv(x)) is not x: bottom at 0; square(inv(x - 1)) bottom at 1
    assert value_at("inv(inv(x))", {"x": Fraction(0)}) == BOTTOM
    assert value_at("inv(inv(x))", {"x": Fraction(3)}) == 3
    assert value_at("square(inv(x - 1))", {"x": Fraction(1)}) == BOTTOM
    assert value_at("square(inv(x - 1))", {"x": Fraction(3)}) == Fraction(1, 4)
    assert value_at("neg(inv(x))*0", {"x": Fraction(0)}) == BOTTOM  # 0 * bottom stays bottom


@pytest.mark.parametrize(
    "name", ["sin", "cos", "exp", "log", "sqrt", "abs", "tanh", "log1p", "cbrt", "relu", "erf"]
)
def test_non_rational_function_is_named(name: str) -> None:
    text = f"x0 * 2.5 + {name}(x0 - 1)"
    with pytest.raises(
        zs.NotRationalTextError,
        match=rf"{name}\(\) is not a rational function, so the equation is not rational",
    ) as info:
        zs.parse(text)
    err = info.value
    assert err.function == name and err.subexpression == name
    assert err.column == text.index(name) + 1
    assert isinstance(err, ParseError) and isinstance(err, NotRationalError)
    assert "function calls are not supported, except square(), cube(), neg() and inv()" in str(err)


def test_binary_function_with_comma_is_named_before_the_comma() -> None:
    with pytest.raises(zs.NotRationalTextError, match=r"max\(\) is not a rational function"):
        zs.parse("max(x0, x1)")


def test_unknown_function_is_a_parse_error_not_a_rationality_claim() -> None:
    with pytest.raises(
        ParseError, match=r"unknown function f\(\): function calls are not supported"
    ) as info:
        zs.parse("f(x)")
    assert not isinstance(info.value, NotRationalError)


@pytest.mark.parametrize(
    ("text", "column", "match"),
    [
        (
            "x ** 2.5",
            6,
            r"found '2\.5'\): a non-integer power is not a rational function, so the equation is not rational",
        ),
        ("x ^ 0.5", 5, r"found '0\.5'"),
        ("x ^ -0.5", 5, r"found '0\.5'"),
        ("x ** y", 6, r"found 'y'\): a symbolic power is not a rational function"),
        ("x ** (-y)", 6, r"found 'y'"),
    ],
)
def test_non_integer_exponent_is_not_rational(text: str, column: int, match: str) -> None:
    with pytest.raises(zs.NotRationalTextError, match=match) as info:
        zs.parse(text)
    assert info.value.column == column and "only integer exponents" in str(info.value)


@pytest.mark.parametrize(
    ("text", "column", "match"),
    [
        ("square()", 7, r"square\(\) needs one argument"),
        ("square(x, y)", 9, r"unexpected character ','.*a function takes one argument"),
        ("square(x", 7, r"unmatched '\('"),
        ("square x", 8, "missing operator"),
        ("x ** (1/2)", 6, "only integer exponents"),
    ],
)
def test_malformed_calls(text: str, column: int, match: str) -> None:
    with pytest.raises(ParseError, match=match) as info:
        zs.parse(text)
    assert info.value.column == column
    assert not isinstance(info.value, NotRationalError)


def test_pysr_dialect_reads_julia_float32_and_refuses_inf() -> None:
    assert zs.parse("1.5f0*x", dialect="pysr") == zs.parse("1.5*x")
    assert zs.parse("2.5f-3 + x", dialect="pysr") == zs.parse("2.5e-3 + x")
    with pytest.raises(ParseError, match=r"malformed number '1\.5f0'"):
        zs.parse("1.5f0*x")  # not in the default dialect
    with pytest.raises(
        zs.NotRationalTextError, match="Inf is not a finite number, so the equation is not rational"
    ):
        zs.parse("x + Inf", dialect="pysr")
    with pytest.raises(zs.NotRationalTextError, match="NaN is not a finite number"):
        zs.parse("NaN", dialect="pysr")
    assert zs.parse("x + Inf").free_symbols == {
        x,
        sympy.Symbol("Inf"),
    }  # an ordinary name by default
    with pytest.raises(
        InvalidArgumentError, match=r"dialect must be one of \['zpml', 'pysr'\], got 'julia'"
    ):
        zs.parse("x", dialect="julia")


# --------------------------------------------------------------------------- random equations

_FLOATS = ["1.5", "0.25", "2.0", "1e-1", "3.", "0.5", "1.25e1"]


@st.composite
def equations(draw: st.DrawFn, depth: int = 0) -> tuple[str, object, int]:
    """Random PySR-style equation text, its strict value at x0 = a, x1 = b (reference) and
    its number of float literals."""
    a, b = Fraction(1, 2), Fraction(-2)
    leaf_only = depth >= 4
    kind = draw(st.sampled_from(["leaf"] if leaf_only else ["leaf", "un", "bin", "bin", "pow"]))
    if kind == "leaf":
        choice = draw(st.sampled_from(["x0", "x1", "int", "float", "negfloat"]))
        if choice == "x0":
            return "x0", a, 0
        if choice == "x1":
            return "x1", b, 0
        if choice == "int":
            n = draw(st.integers(0, 3))
            return str(n), Fraction(n), 0
        lit = draw(st.sampled_from(_FLOATS))
        if choice == "negfloat":
            return f"-{lit}", -Fraction(Decimal(lit)), 1
        return lit, Fraction(Decimal(lit)), 1
    if kind == "un":
        fn = draw(st.sampled_from(["square", "cube", "neg", "inv"]))
        text, v, k = draw(equations(depth + 1))
        if v == BOTTOM or (fn == "inv" and v == 0):
            return f"{fn}({text})", BOTTOM, k
        value = {"square": v**2, "cube": v**3, "neg": -v}[fn] if fn != "inv" else 1 / v
        return f"{fn}({text})", value, k
    if kind == "pow":
        text, v, k = draw(equations(depth + 1))
        n = draw(st.integers(-2, 3))
        exp = draw(st.sampled_from([str(n), f"{n}.0", f"({n})"]))
        op = draw(st.sampled_from(["^", "**"]))
        if v == BOTTOM or (n < 0 and v == 0):
            return f"({text}) {op} {exp}", BOTTOM, k
        return f"({text}) {op} {exp}", v**n, k
    op = draw(st.sampled_from(["+", "-", "*", "/"]))
    (lt, lv, lk), (rt, rv, rk) = draw(equations(depth + 1)), draw(equations(depth + 1))
    text = f"({lt} {op} {rt})"
    if BOTTOM in (lv, rv) or (op == "/" and rv == 0):
        return text, BOTTOM, lk + rk
    value = {"+": lv + rv, "-": lv - rv, "*": lv * rv}[op] if op != "/" else lv / rv
    return text, value, lk + rk


_POINT = {"x0": Fraction(1, 2), "x1": Fraction(-2)}


@settings(deadline=None, max_examples=150)
@given(equations())
def test_random_pysr_equations_match_a_reference_evaluator(case: tuple[str, object, int]) -> None:
    text, expected, _ = case
    assert value_at(text, dict(_POINT)) == expected, text


@settings(deadline=None, max_examples=150)
@given(equations())
def test_lifted_constants_substituted_back_give_the_same_value(
    case: tuple[str, object, int],
) -> None:
    text, expected, n_floats = case
    eq = parse_equation(text)
    fru = zs.flatten(eq.expr, parameters=eq.parameters, variables=["x0", "x1"])
    got = fru.evaluate({**_POINT, **eq.constants})
    assert (BOTTOM if got is zs.BOTTOM else Fraction(int(got.p), int(got.q))) == expected, text
    # every float literal (and none of the integers or exponents) became a constant
    assert len(eq.constants) == n_floats, text
    assert all(Fraction(Decimal(t)) == eq.constants[n] for n, t in eq.literals.items())


# --------------------------------------------------------------------------- parse_equation


def test_parse_equation_lifts_float_literals_in_written_order() -> None:
    eq = parse_equation("((x0 * 2.0) + -0.5) / (x1 - 1.7) + square(x2) * 3 - x0 ^ 2.0")
    assert eq.parameters == ("c0", "c1", "c2")
    assert eq.constants == {"c0": Fraction(2), "c1": Fraction(-1, 2), "c2": Fraction(17, 10)}
    assert eq.literals == {"c0": "2.0", "c1": "-0.5", "c2": "1.7"}
    assert eq.identifiers == ("x0", "x1", "x2")
    c0, c1, c2 = (zs.Coefficient(n) for n in eq.parameters)
    assert all(zs.is_coefficient(s) for s in eq.expr.free_symbols if s.name.startswith("c"))
    expected = zs.parse(
        "((x0 * c0) + c1) / (x1 - c2) + x2**2 * 3 - x0**2", parameters=["c0", "c1", "c2"]
    )
    assert eq.expr == expected  # integers (3) and exponents (2.0) stay exact
    assert eq.initial_values() == {"c0": 2.0, "c1": -0.5, "c2": 1.7}


def test_parse_equation_sign_and_power_rules() -> None:
    eq = parse_equation("-1.5^2 + x")  # -(1.5**2): the sign is not part of the literal
    assert eq.constants == {"c0": Fraction(3, 2)}
    assert eq.expr == zs.parse("-c0**2 + x", parameters=["c0"])
    eq = parse_equation("2 - -0.5*x")
    assert eq.constants == {"c0": Fraction(-1, 2)} and eq.literals == {"c0": "-0.5"}
    assert value_at("2 - -0.5*x", {"x": Fraction(2)}) == 3
    eq = parse_equation("x + -2")  # an integer literal is not lifted, even negated
    assert eq.constants == {} and eq.expr == zs.parse("x - 2")


def test_parse_equation_skips_names_in_use_and_takes_a_prefix() -> None:
    eq = parse_equation("c0*x + 1.5 - c2*0.5")
    assert eq.constants == {"c1": Fraction(3, 2), "c3": Fraction(1, 2)}
    assert set(eq.identifiers) == {"c0", "x", "c2"}
    eq = parse_equation("x*1.5", prefix="k")
    assert eq.parameters == ("k0",)
    with pytest.raises(InvalidArgumentError, match="prefix must be an ASCII identifier, got '1a'"):
        parse_equation("x*1.5", prefix="1a")
    with pytest.raises(zs.InputTypeError, match="expects the equation as a str, got int"):
        parse_equation(3)  # type: ignore[arg-type]


def test_parse_equation_reads_julia_literals_and_refuses_non_rational() -> None:
    eq = parse_equation("x0 * 1.5f0 + 2.0f-3")
    assert eq.constants == {"c0": Fraction(3, 2), "c1": Fraction(1, 500)}
    with pytest.raises(zs.NotRationalTextError, match=r"exp\(\) is not a rational function"):
        parse_equation("exp(x0 * 0.5)")


def test_equation_identifiers_and_default_variables() -> None:
    assert equation_identifiers("sin(x3) + x0*1e5 + 1.5f0*x1") == ("x3", "x0", "x1")
    assert default_variables(["x3", "x0"]) == ("x0", "x1", "x2", "x3")
    assert default_variables(["a10", "a2", "b"]) == ("a2", "a10", "b")
    assert default_variables([]) == ()


# --------------------------------------------------------------------------- DecimalNumber


@settings(deadline=None, max_examples=300)
@given(
    st.floats(allow_nan=False, allow_infinity=False, width=64),
    st.integers(1, 17),
)
def test_decimal_text_is_the_correctly_rounded_decimal(v: float, digits: int) -> None:
    text = decimal_text(v, digits)
    reference = Fraction(Decimal(f"{v:.{digits - 1}e}"))  # Python rounds the exact binary value
    assert Fraction(text) == reference
    significant = text.split("e")[0].replace("-", "").replace(".", "").strip("0")
    assert len(significant) <= digits
    assert "." in text  # reads as a float literal (from_equation lifts it again)
    number = DecimalNumber(text)
    assert str(number) == text
    assert zs.from_sympy(number).root.value == reference
    assert zs.parse(text) == sympy.Rational(reference.numerator, reference.denominator)


def test_decimal_number_compiles_to_the_decimal_not_its_binary_value() -> None:
    d = DecimalNumber("1.7")
    assert zs.from_sympy(d).root.value == Fraction(17, 10)
    assert zs.from_sympy(sympy.Float("1.7")).root.value != Fraction(
        17, 10
    )  # a plain Float is binary
    minus = -d
    assert minus.text == "-1.7" and (-minus).text == "1.7"
    assert copy.deepcopy(d).text == "1.7"
    assert sympy.srepr(d) == "DecimalNumber('1.7')"
    assert float(d) == 1.7
    with pytest.raises(InvalidArgumentError, match="DecimalNumber needs a decimal literal"):
        DecimalNumber("1/3")


def test_with_decimals_folds_signs() -> None:
    e = zs.parse("x0/(x1 - c) + d", parameters=["c", "d"])
    shown = with_decimals(e, {"c": 1.7000000476837158, "d": -0.25}, 6)
    assert str(shown) == "x0/(x1 - 1.7) - 0.25"
    fru = zs.flatten(shown)
    assert fru.evaluate({"x0": 1, "x1": Fraction(17, 10)}) is zs.BOTTOM
    assert zs.flatten(zs.parse(str(shown))).denominator == fru.denominator


# --------------------------------------------------------------------------- FRU.evaluate, dir()


def test_evaluate_accepts_keys_of_unused_symbols_unless_asked_to_refuse() -> None:
    fru = zs.flatten("x/(y - 1)")
    assert fru.evaluate({"x": 2, "y": 3, "z": 7, "w": 0}) == 1
    assert str(fru.explain({"x": 2, "y": 1, "z": 7})).startswith("bottom at x=2, y=1")
    with pytest.raises(
        zs.InvalidArgumentError, match=r"values given for unknown symbols \['w', 'z'\]"
    ):
        fru.evaluate({"x": 2, "y": 3, "z": 7, "w": 0}, unknown="error")
    with pytest.raises(zs.InvalidArgumentError, match=r"no value given for \['y'\]"):
        fru.evaluate({"x": 2, "z": 7})  # a missing input is still an error
    with pytest.raises(
        zs.InvalidArgumentError, match="unknown must be 'ignore' or 'error', got 'warn'"
    ):
        fru.evaluate({"x": 2, "y": 3}, unknown="warn")


def test_dir_lists_the_lazy_emitters_without_importing_torch() -> None:
    code = (
        "import sys, zpml_symbolic as zs; d = dir(zs); "
        "assert {'to_torch', 'strict_evaluator', 'to_onnx', 'numpy_evaluator', 'parse'} <= set(d), d; "
        "assert d == sorted(d); assert 'torch' not in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
