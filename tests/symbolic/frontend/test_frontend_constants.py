"""Named constants (issue 10 bug 6) and unicode hints in parse errors (issue 10 bug 7)."""

from __future__ import annotations

import warnings
from fractions import Fraction

import pytest
import sympy as sp

import zpml_symbolic as zs
from zpml_symbolic.errors import (
    ConstantNameWarning,
    InvalidArgumentError,
    NotRationalError,
    ParseError,
)

x = sp.Symbol("x")
PI = 3.141592653589793


def test_constants_in_text_become_exact_numbers() -> None:
    fru = zs.flatten("x/(pi - x)", constants={"pi": PI})
    assert fru.variables == (x,)
    assert fru.evaluate({"x": Fraction(PI)}) is zs.BOTTOM  # the float is taken exactly
    assert fru.evaluate({"x": 0}) == 0
    assert zs.parse("2*pi", constants={"pi": "3.14159"}).args[1] == sp.Rational(314159, 100000)
    assert zs.parse("pi", constants={"pi": Fraction(22, 7)}) == sp.Rational(22, 7)


def test_sympy_constants_and_symbols_take_the_value() -> None:
    fru = zs.flatten(sp.Mul(sp.pi, x, evaluate=False) + sp.Symbol("E"), constants={"pi": 3, "E": 2})
    assert fru.numerator == 3 * x + 2 and fru.variables == (x,)


def test_irrational_sympy_constant_names_the_option() -> None:
    with pytest.raises(NotRationalError, match=r"constants=\{'pi': 3\.141592653589793\}") as info:
        zs.flatten(x + sp.pi)
    assert "--const pi=" in str(info.value)
    with pytest.raises(NotRationalError, match=r"constants=\{'E': 2\.718281828459045\}"):
        zs.flatten(x * sp.E)


def test_symbol_named_like_a_constant_warns() -> None:
    with pytest.warns(
        ConstantNameWarning, match=r"'pi' is treated as an input variable.*constants=\{'pi'"
    ):
        fru = zs.flatten("x/pi")
    assert [s.name for s in fru.variables] == ["pi", "x"]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        zs.flatten("x/pi", variables=["x", "pi"])  # explicit: no warning
        zs.flatten("x/p")


@pytest.mark.parametrize(
    ("constants", "match"),
    [
        ({"pi": sp.pi}, r"constants\['pi'\] = pi is not a rational number"),
        ({"pi": float("nan")}, r"constants\['pi'\] must be finite"),
        ({"pi": True}, r"constants\['pi'\] must be a number, got a bool"),
        ({"pi": "three"}, r"constants\['pi'\] = 'three' is not a decimal number"),
        ({"pi": [3]}, r"constants\['pi'\] must be a real number"),
        ({"2pi": 6}, r"constant name '2pi' is not a valid identifier"),
        ([("pi", 3)], r"constants must be a mapping"),
    ],
)
def test_bad_constants(constants: object, match: str) -> None:
    with pytest.raises(InvalidArgumentError, match=match) as info:
        zs.flatten("x*pi", constants=constants)  # type: ignore[arg-type]
    assert isinstance(info.value, ValueError)


def test_constant_and_parameter_clash() -> None:
    with pytest.raises(
        InvalidArgumentError, match=r"\['a'\] are given both as constants and as parameters"
    ):
        zs.parse("a*x", parameters=["a"], constants={"a": 1})


@pytest.mark.parametrize(
    ("text", "hint"),
    [
        ("λ*x", "write 'lam' for 'λ'"),
        ("x/(ω₀ - x)", "write 'omega0' for 'ω₀'"),
        ("x − 1", "write the ASCII '-' instead"),
        ("x×y", "write the ASCII '*' instead"),
        ("x÷y", "write the ASCII '/' instead"),
        ("x²", "write a power as x**2"),
        ("x/(x₁+1)", "write 'x1' for 'x₁'"),
        ("x ∈ y", "only ASCII letters, digits, operators and parentheses"),
    ],
)
def test_unicode_hints(text: str, hint: str) -> None:
    with pytest.raises(ParseError) as info:
        zs.parse(text)
    assert hint in str(info.value)
