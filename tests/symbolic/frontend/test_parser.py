"""Tests for the safe expression parser (zpml_symbolic.frontend.parser)."""

from __future__ import annotations

import re
from fractions import Fraction

import pytest
import sympy
from hypothesis import given, settings
from hypothesis import strategies as st

import zpml_symbolic as zs
from zpml_symbolic.errors import InvalidArgumentError, ParseError, ZeroProofError
from zpml_symbolic.frontend.coefficient import Coefficient, is_coefficient
from zpml_symbolic.frontend.parser import MAX_INPUT_LENGTH, InputTypeError, parse

x, y, z = sympy.symbols("x y z")
Add, Mul, Pow = sympy.Add, sympy.Mul, sympy.Pow


# --------------------------------------------------------------------------- helpers

BOTTOM = "BOTTOM"


def strict_eval(expr: sympy.Basic, env: dict[str, Fraction]) -> Fraction | str:
    """Strict-meadow value of a sympy tree, iteratively (bottom absorbs, even 0*bottom)."""
    values: dict[int, Fraction | str] = {}
    stack: list[tuple[sympy.Basic, bool]] = [(expr, False)]
    while stack:
        node, ready = stack.pop()
        if id(node) in values:
            continue
        if not ready and node.args and not node.is_Number:
            stack.append((node, True))
            stack.extend((arg, False) for arg in node.args)
            continue
        if isinstance(node, sympy.Symbol):
            value: Fraction | str = env[node.name]
        elif isinstance(node, sympy.Rational):
            value = Fraction(int(node.p), int(node.q))
        elif isinstance(node, sympy.Add | sympy.Mul):
            parts = [values[id(a)] for a in node.args]
            if BOTTOM in parts:
                value = BOTTOM
            else:
                acc = Fraction(0 if isinstance(node, sympy.Add) else 1)
                for part in parts:
                    acc = acc + part if isinstance(node, sympy.Add) else acc * part
                value = acc
        elif isinstance(node, sympy.Pow):
            base, exp = node.args
            assert isinstance(exp, sympy.Integer)
            b = values[id(base)]
            n = int(exp)
            value = BOTTOM if b == BOTTOM or (n < 0 and b == 0) else b**n
        else:  # pragma: no cover - the parser never builds anything else
            raise AssertionError(f"unexpected node {node!r}")
        values[id(node)] = value
    return values[id(expr)]


class _RefParser:
    """Independent reference: a small recursive-descent evaluator over Fractions.

    Same grammar and precedence as documented for ``parse`` (``**``/``^`` above
    unary minus, right-associative, integer-literal exponents), strict bottom.
    """

    _TOKEN = re.compile(
        r"\s*(?:(?P<num>(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?)"
        r"|(?P<id>[A-Za-z_][A-Za-z0-9_]*)|(?P<op>\*\*|[-+*/^()]))"
    )

    def __init__(self, text: str, env: dict[str, Fraction]) -> None:
        self.tokens: list[tuple[str, str]] = []
        pos = 0
        while text[pos:].strip():
            m = self._TOKEN.match(text, pos)
            assert m is not None, text[pos:]
            kind = m.lastgroup
            assert kind is not None
            tok = m.group(kind)
            self.tokens.append((kind, "**" if tok == "^" else tok))
            pos = m.end()
        self.pos = 0
        self.env = env

    def peek(self) -> str | None:
        return self.tokens[self.pos][1] if self.pos < len(self.tokens) else None

    def take(self) -> tuple[str, str]:
        tok = self.tokens[self.pos]
        self.pos += 1
        return tok

    def value(self) -> Fraction | str:
        v = self.expr()
        assert self.pos == len(self.tokens)
        return v

    def expr(self) -> Fraction | str:
        acc = self.term()
        while self.peek() in ("+", "-"):
            op = self.take()[1]
            rhs = self.term()
            acc = BOTTOM if BOTTOM in (acc, rhs) else (acc + rhs if op == "+" else acc - rhs)
        return acc

    def term(self) -> Fraction | str:
        acc = self.unary()
        while self.peek() in ("*", "/"):
            op = self.take()[1]
            rhs = self.unary()
            if BOTTOM in (acc, rhs) or (op == "/" and rhs == 0):
                acc = BOTTOM
            else:
                acc = acc * rhs if op == "*" else acc / rhs
        return acc

    def unary(self) -> Fraction | str:
        if self.peek() in ("-", "+"):
            op = self.take()[1]
            v = self.unary()
            return v if v == BOTTOM or op == "+" else -v
        return self.power()

    def int_exponent(self) -> int:
        tok = self.take()[1]
        if tok in ("-", "+"):
            n = self.int_exponent()
            return -n if tok == "-" else n
        if tok == "(":
            n = self.int_exponent()
            assert self.take()[1] == ")"
            return n
        return int(tok)

    def power(self) -> Fraction | str:
        kind, tok = self.take()
        if tok == "(":
            base = self.expr()
            assert self.take()[1] == ")"
        elif kind == "num":
            base = Fraction(tok)
        else:
            base = self.env[tok]
        if self.peek() == "**":
            self.take()
            n = self.int_exponent()
            if base == BOTTOM or (n < 0 and base == 0):
                return BOTTOM
            return base**n
        return base


def reference_value(text: str, env: dict[str, Fraction]) -> Fraction | str:
    return _RefParser(text, env).value()


def pow_bases(expr: sympy.Basic) -> list[sympy.Basic]:
    """Bases of every ``Pow(b, -k)`` node in the tree (pre-order)."""
    return [n.args[0] for n in sympy.preorder_traversal(expr) if n.is_Pow and n.args[1] < 0]


# --------------------------------------------------------------------------- structure


def test_x_over_x_is_not_one() -> None:
    e = parse("x/x")
    assert e != 1
    assert isinstance(e, sympy.Mul)
    assert e.args == (x, Pow(x, -1, evaluate=False))
    assert strict_eval(e, {"x": Fraction(0)}) == BOTTOM
    assert strict_eval(e, {"x": Fraction(3)}) == 1


def test_reciprocal_of_reciprocal_is_not_x() -> None:
    e = parse("1/(1/x)")
    assert e != x
    assert isinstance(e, sympy.Pow) and e.args[1] == -1
    inner = e.args[0]
    assert isinstance(inner, sympy.Pow) and inner.args == (x, -1)
    assert strict_eval(e, {"x": Fraction(0)}) == BOTTOM


def test_removable_singularity_stays() -> None:
    e = parse("(x**2-1)/(x-1)")
    assert isinstance(e, sympy.Mul) and len(e.args) == 2
    num, den = e.args
    assert num == Add(Pow(x, 2, evaluate=False), -1, evaluate=False)
    assert den == Pow(Add(x, -1, evaluate=False), -1, evaluate=False)
    assert strict_eval(e, {"x": Fraction(1)}) == BOTTOM
    assert strict_eval(e, {"x": Fraction(3)}) == 4


def test_zero_times_bottom_stays() -> None:
    e = parse("0*(1/x)")
    assert e.args == (sympy.Integer(0), Pow(x, -1, evaluate=False))
    assert strict_eval(e, {"x": Fraction(0)}) == BOTTOM
    assert pow_bases(e) == [x]


def test_x_minus_x_is_not_zero() -> None:
    e = parse("x - x")
    assert e.args == (x, Mul(-1, x, evaluate=False))


def test_chains_are_flat_and_in_written_order() -> None:
    assert parse("a+b+c").args == sympy.symbols("a b c")
    assert parse("c+b+a").args == sympy.symbols("c b a")
    a, b, c = sympy.symbols("a b c")
    assert parse("a-b-c").args == (a, Mul(-1, b, evaluate=False), Mul(-1, c, evaluate=False))
    assert parse("a*b/c*x").args == (a, b, Pow(c, -1, evaluate=False), x)
    long = parse("+".join(["x"] * 5000))
    assert isinstance(long, sympy.Add) and len(long.args) == 5000


def test_parentheses_make_separate_nodes() -> None:
    a, b, c = sympy.symbols("a b c")
    e = parse("(a+b)+c")
    assert e.args == (Add(a, b, evaluate=False), c)
    e = parse("a*(b*c)")
    assert e.args == (a, Mul(b, c, evaluate=False))
    assert parse("((x))") == x


def test_division_chain_and_one_over() -> None:
    assert parse("1/x") == Pow(x, -1, evaluate=False)
    assert parse("1/x/y").args == (Pow(x, -1, evaluate=False), Pow(y, -1, evaluate=False))
    assert parse("2/x").args == (2, Pow(x, -1, evaluate=False))
    e = parse("x/y/z")  # (x/y)/z: both divisors are kept
    assert pow_bases(e) == [y, z]


def test_subtraction_keeps_subtrahend_intact() -> None:
    e = parse("x - (y - z)")
    inner = Add(y, Mul(-1, z, evaluate=False), evaluate=False)
    assert e.args == (x, Mul(-1, inner, evaluate=False))
    assert parse("x - 2").args == (x, -2)
    assert parse("x - 1/y").args == (x, Mul(-1, Pow(y, -1, evaluate=False), evaluate=False))


def test_unary_minus_and_plus() -> None:
    assert parse("-3") == sympy.Integer(-3)
    assert parse("- -3") == 3
    assert parse("-(0.5)") == sympy.Rational(-1, 2)
    assert parse("-x") == Mul(-1, x, evaluate=False)
    assert parse("+x") == x
    # unary signs fold (an even number of minus signs cancels; negation never adds a bottom)
    assert parse("--x") == x
    assert parse("---x") == parse("-(-(-x))") == Mul(-1, x, evaluate=False)
    assert parse("x*-y").args == (x, Mul(-1, y, evaluate=False))
    assert parse("x - - y") == Add(x, y, evaluate=False)
    assert parse("x - -+- y") == Add(x, Mul(-1, y, evaluate=False), evaluate=False)
    assert parse("x**--2") == Pow(x, 2, evaluate=False)
    assert parse("x**---2") == Pow(x, -2, evaluate=False)


def test_a_megabyte_of_unary_minus_is_folded_in_linear_time() -> None:
    # issue 13 item 5: used to take 82 s and 2.8 GB
    assert parse("-" * (MAX_INPUT_LENGTH - 1) + "x") == Mul(-1, x, evaluate=False)
    assert parse("-" * (MAX_INPUT_LENGTH - 2) + "x") == x
    assert parse("- " * (MAX_INPUT_LENGTH // 2 - 1) + "x") == Mul(-1, x, evaluate=False)
    fru = zs.flatten("x" + " - -" * (MAX_INPUT_LENGTH // 4 - 1) + " x")
    assert fru.numerator == 2 * x
    n = 30_000  # nested parentheses keep their nodes, but -(-b) folds to b
    assert parse("-(" * n + "x" + ")" * n) == x
    assert parse("-(" * (n + 1) + "x" + ")" * (n + 1)) == Mul(-1, x, evaluate=False)


def test_sign_runs_keep_error_positions() -> None:
    with pytest.raises(ParseError, match=r"expression ends with operator '-' \(column 4\)"):
        parse("x --")
    with pytest.raises(ParseError, match=r"missing operand between '-' and '\)'"):
        parse("(- -)")
    with pytest.raises(ParseError, match=r"missing operand between '-' and '/' \(column 6\)"):
        parse("x*-- /y")


def test_power_precedence_and_forms() -> None:
    assert parse("-x**2") == Mul(-1, Pow(x, 2, evaluate=False), evaluate=False)
    assert parse("-2**2") == Mul(-1, Pow(2, 2, evaluate=False), evaluate=False)
    assert parse("(-x)**2") == Pow(Mul(-1, x, evaluate=False), 2, evaluate=False)
    assert parse("x^3") == parse("x**3") == Pow(x, 3, evaluate=False)
    assert parse("2**-1") == Pow(2, -1, evaluate=False)
    assert parse("x**(-2)") == Pow(x, -2, evaluate=False)
    assert parse("x ** ( ( -2 ) )") == Pow(x, -2, evaluate=False)
    assert parse("x**-(2)") == Pow(x, -2, evaluate=False)
    assert parse("x**+2") == Pow(x, 2, evaluate=False)
    assert parse("x**0") == Pow(x, 0, evaluate=False)
    assert parse("(x**2)**3") == Pow(Pow(x, 2, evaluate=False), 3, evaluate=False)
    assert parse("x*y**2").args == (x, Pow(y, 2, evaluate=False))
    assert parse("0**-1") == Pow(0, -1, evaluate=False)


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("0", 0),
        ("42", 42),
        ("007", 7),
        ("0.1", sympy.Rational(1, 10)),
        (".5", sympy.Rational(1, 2)),
        ("3.", 3),
        ("1e-3", sympy.Rational(1, 1000)),
        ("2.5E+4", 25000),
        ("1.25e1", sympy.Rational(25, 2)),
        ("1.e2", 100),
        ("0.3333", sympy.Rational(3333, 10000)),
        ("123456789012345678901234567890", 123456789012345678901234567890),
        ("1e-30", sympy.Rational(1, 10**30)),
    ],
)
def test_numbers_are_exact_rationals(text: str, value: object) -> None:
    parsed = parse(text)
    assert isinstance(parsed, sympy.Rational)
    assert parsed == value
    assert not parsed.has(sympy.Float)


def test_decimal_is_not_binary_float() -> None:
    assert parse("0.1") != sympy.Rational(0.1)
    assert parse("0.1+0.2") == Add(sympy.Rational(1, 10), sympy.Rational(1, 5), evaluate=False)


def test_identifiers_are_plain_symbols() -> None:
    e = parse("alpha_1 + _b + I + pi + E")
    assert all(type(s) is sympy.Symbol for s in e.args)
    assert [s.name for s in e.args] == ["alpha_1", "_b", "I", "pi", "E"]
    assert not e.has(sympy.I, sympy.pi, sympy.E)


def test_whitespace_and_tabs() -> None:
    assert parse(" \t x\t+\n1  \r\n") == Add(x, 1, evaluate=False)


def test_deep_nesting_continued_fraction() -> None:
    for depth in (300, 1000):
        text = "1/(1+" * depth + "x" + ")" * depth
        e = parse(text)
        expected = Fraction(1)
        for _ in range(depth):
            expected = 1 / (1 + expected)
        assert strict_eval(e, {"x": Fraction(1)}) == expected
        assert strict_eval(e, {"x": Fraction(-1)}) == BOTTOM


def test_deep_parentheses_and_unary() -> None:
    assert parse("(" * 1000 + "x" + ")" * 1000) == x
    e = parse("-" * 1001 + "x")
    assert strict_eval(e, {"x": Fraction(2)}) == -2


def test_meaning_battery() -> None:
    a, b = sympy.symbols("a b")
    cases = {
        "x + y*z": x + y * z,
        "(x + y)*z": (x + y) * z,
        "x - y - z": x - y - z,
        "x / y / z": x / y / z,
        "x / (y / z)": x * z / y,
        "2*x**3 - 4*x + 0.5": 2 * x**3 - 4 * x + sympy.Rational(1, 2),
        "-x**2 + (-x)**2": sympy.Integer(0),
        "a*x**2 + b*x + 1": a * x**2 + b * x + 1,
        "1/(1 + 1/(1 + 1/x))": 1 / (1 + 1 / (1 + 1 / x)),
        "x^2 - x**2": sympy.Integer(0),
        "(x**2 - 1)/(x - 1)": x + 1,
        "2**-2 * x": x / 4,
        "1e2*x - 100*x": sympy.Integer(0),
        "-(x - y)": y - x,
        "x*y/x": y,
    }
    for text, expected in cases.items():
        assert sympy.simplify(parse(text) - expected) == 0, text


# --------------------------------------------------------------------------- parameters


def test_parameters_become_coefficients() -> None:
    e = parse("a*x + b", parameters=["a", "b"])
    syms = {s.name: s for s in e.free_symbols}
    assert is_coefficient(syms["a"]) and is_coefficient(syms["b"])
    assert not is_coefficient(syms["x"]) and type(syms["x"]) is sympy.Symbol
    assert syms["a"] == Coefficient("a") and syms["a"] != sympy.Symbol("a")


def test_parameter_objects() -> None:
    c = Coefficient("a", positive=True)
    e = parse("a*x", parameters=[c])
    assert any(s is c for s in e.free_symbols)
    e = parse("a*x", parameters=(sympy.Symbol("a", positive=True),))
    (a,) = [s for s in e.free_symbols if s.name == "a"]
    assert is_coefficient(a) and a.is_positive
    assert parse("x", parameters=iter(["unused"])) == x


@pytest.mark.parametrize(
    ("parameters", "match"),
    [
        (["1a"], "not a valid identifier"),
        (["a b"], "not a valid identifier"),
        ([""], "not a valid identifier"),
        ([sympy.Symbol("a+b")], "not a valid identifier"),
        ([3], "must be a name"),
        ("ab", "not a single string"),
        (5, "iterable"),
        (["a", Coefficient("a", positive=True)], "given twice"),
    ],
)
def test_bad_parameters(parameters: object, match: str) -> None:
    with pytest.raises(InvalidArgumentError, match=match):
        parse("a*x", parameters=parameters)  # type: ignore[arg-type]


def test_same_parameter_twice_is_fine() -> None:
    e = parse("a", parameters=["a", "a", Coefficient("a")])
    assert e == Coefficient("a")


# --------------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    ("text", "column", "match"),
    [
        ("", 1, "empty expression"),
        ("  \t ", 1, "empty expression"),
        ("x $ y", 3, r"unexpected character '\$'"),
        ("x + [y]", 5, "unexpected character '\\['"),
        ("f(x, y)", 1, "function calls are not supported"),
        ("x²", 2, "unexpected character"),
        ("2 x", 3, "missing operator"),
        ("x y", 3, "missing operator"),
        ("2(x)", 2, "implicit multiplication"),
        ("(x)(y)", 4, "missing operator"),
        ("2x", 1, r"malformed number '2x'"),
        ("1e", 1, r"malformed number '1e'"),
        ("x + 1e+", 5, r"malformed number '1e'"),
        ("1.2.3", 1, r"malformed number '1\.2\.3'.*decimal point"),
        ("x + .", 5, "malformed number"),
        ("x +", 3, "ends with operator '\\+'"),
        ("x * y -", 7, "ends with operator"),
        ("*x", 1, "cannot start with operator"),
        ("x * * y", 5, "missing operand"),
        ("x + / y", 5, "missing operand"),
        ("(x +)", 5, "missing operand"),
        ("()", 1, "empty parentheses"),
        ("(x", 1, "unmatched '\\('"),
        ("((x)", 1, "unmatched '\\('"),
        ("x + (y * (z)", 5, "unmatched '\\('"),
        ("x)", 2, "unmatched '\\)'"),
        (")", 1, "unmatched '\\)'"),
        ("(x))+1", 4, "unmatched '\\)'"),
        ("x+(", 3, "unmatched '\\('"),
        ("x**y", 4, "only integer exponents"),
        ("x ** 0.5", 6, "only integer exponents"),
        ("x**(1/2)", 4, "only integer exponents"),
        ("x**2.5", 4, "only integer exponents.*found '2.5'.*not rational"),
        ("x**1e-2", 4, "only integer exponents.*found '1e-2'"),
        ("x**(-y)", 4, "only integer exponents"),
        ("x**2**3", 4, "right-associative"),
        ("x**", 2, "missing exponent"),
        ("x**(2", 4, "unbalanced '\\('"),
        ("x**(", 4, "unbalanced '\\('"),
        ("** 2", 1, "cannot start with operator"),
        ("1" * 5000, 1, "more than 4000 digits"),
        ("1e1000000", 1, "out of range"),
        ("1e5000", 1, "out of range"),
        ("1e-5000", 1, "out of range"),
    ],
)
def test_parse_errors(text: str, column: int, match: str) -> None:
    with pytest.raises(ParseError, match=match) as info:
        parse(text)
    err = info.value
    assert err.column == column
    assert f"(column {column})" in str(err)
    assert err.text == text
    assert isinstance(err, ValueError) and isinstance(err, ZeroProofError)


def test_error_message_has_caret_under_column() -> None:
    with pytest.raises(ParseError) as info:
        parse("x +\t$")
    lines = str(info.value).splitlines()
    assert lines[0].startswith("unexpected character '$'")
    assert lines[1] == "    x + $"
    assert lines[2] == "    " + " " * 4 + "^"


def test_error_snippet_is_windowed_for_long_text() -> None:
    text = "x+" * 5000 + "$" + "+x" * 5000
    with pytest.raises(ParseError) as info:
        parse(text)
    err = info.value
    assert err.column == 10001
    snippet, caret = str(err).splitlines()[1:3]
    assert len(snippet) < 100
    assert snippet[caret.index("^")] == "$"


def test_input_too_long() -> None:
    text = "1+" * (MAX_INPUT_LENGTH // 2 + 1)
    with pytest.raises(ParseError, match="too long"):
        parse(text)


@pytest.mark.parametrize("bad", [42, b"x+1", None, 1.5, sympy.Symbol("x"), ["x"]])
def test_non_str_input(bad: object) -> None:
    with pytest.raises(InputTypeError, match="expects the expression as a str") as info:
        parse(bad)  # type: ignore[arg-type]
    assert isinstance(info.value, TypeError) and isinstance(info.value, ZeroProofError)


# --------------------------------------------------------------------------- property tests

_IDENTS = ["x", "y", "z", "a_1", "Bx"]
_ws = st.sampled_from(["", "", " ", "\t"])
_numbers = st.one_of(
    st.integers(0, 20).map(str),
    st.sampled_from(["0.5", ".25", "3.", "1e-2", "2.5E+1", "0.1", "10e0", "007", "0", "1.0"]),
)


def _exponent_text(n: int, style: int) -> str:
    if style == 0 or n < 0 and style == 1:
        return str(n)
    if style == 1:
        return f"+{n}"
    return f"( {n} )"


_exponents = st.builds(_exponent_text, st.integers(-3, 3), st.integers(0, 2))


def _join(first: str, rest: list[tuple[str, str, str]]) -> str:
    return first + "".join(f"{sp}{op}{sp}{operand}" for sp, op, operand in rest)


def _grammar(inner: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    """One level of the expression grammar; ``inner`` supplies parenthesised sub-expressions."""
    atom = st.one_of(
        _numbers,
        st.sampled_from(_IDENTS),
        st.builds(lambda w, e: f"({w}{e}{w})", _ws, inner),
    )
    power = st.one_of(
        atom,
        st.builds(
            lambda b, op, e: f"{b}{op}{e}", atom, st.sampled_from(["**", "^", " ** "]), _exponents
        ),
    )
    unary = st.builds(lambda p, b: p + b, st.sampled_from(["", "", "-", "+", "- ", "--"]), power)
    term = st.builds(
        _join, unary, st.lists(st.tuples(_ws, st.sampled_from(["*", "/"]), unary), max_size=2)
    )
    return st.builds(
        _join, term, st.lists(st.tuples(_ws, st.sampled_from(["+", "-"]), term), max_size=2)
    )


_expr = st.recursive(st.one_of(_numbers, st.sampled_from(_IDENTS)), _grammar, max_leaves=12)

_points = st.fixed_dictionaries(
    {
        name: st.one_of(
            st.sampled_from([Fraction(0), Fraction(1), Fraction(-1)]),
            st.fractions(min_value=-4, max_value=4, max_denominator=5),
        )
        for name in _IDENTS
    }
)


@settings(deadline=None)
@given(text=_expr, env=_points)
def test_parse_agrees_with_reference_evaluator(text: str, env: dict[str, Fraction]) -> None:
    tree = parse(text)
    expected = reference_value(text, env)
    assert strict_eval(tree, env) == expected, text
    if expected != BOTTOM:
        substituted = tree.xreplace({sympy.Symbol(k): sympy.Rational(v) for k, v in env.items()})
        value = substituted.doit()
        assert isinstance(value, sympy.Rational), (text, value)
        assert Fraction(int(value.p), int(value.q)) == expected


@settings(deadline=None)
@given(st.text(alphabet="xy019.eE+-*/^() \t$", max_size=25))
def test_random_text_parses_or_raises_parse_error(text: str) -> None:
    try:
        result = parse(text)
    except ParseError as err:
        assert 1 <= err.column <= max(len(text), 1)
        assert f"(column {err.column})" in str(err)
    else:
        assert isinstance(result, sympy.Expr)
