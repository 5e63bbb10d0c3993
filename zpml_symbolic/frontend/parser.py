"""A safe parser from expression text to an *unevaluated* sympy tree.

The text is never handed to Python or to sympy's own parser (no ``eval``,
``sympify`` or ``parse_expr``): a hand-written tokenizer feeds an iterative
operator-precedence (shunting-yard) parser, so nesting depth is limited only by
memory, not by Python's recursion limit.

Grammar (``^`` and ``**`` are the same operator)::

    expr     := term (("+" | "-") term)*
    term     := unary (("*" | "/") unary)*
    unary    := ("-" | "+") unary | power
    power    := atom [("**" | "^") exponent]
    exponent := ("-" | "+")* (NUMBER | "(" exponent ")")     (its value an integer)
    atom     := NUMBER | IDENTIFIER | "(" expr ")" | FUNCTION "(" expr ")"
    FUNCTION := "square" | "cube" | "neg" | "inv"

An exponent is a number literal whose value is an integer (``2``, ``-3``,
``2.0``, ``1e2``). The functions are the rational spellings symbolic-regression
tools print: ``square(x)`` is ``x**2``, ``cube(x)`` is ``x**3``, ``neg(x)`` is
``-x`` and ``inv(x)`` is ``1/x``. A call of any other function, a non-integer
exponent (``x**2.5``) or a symbolic one (``x**y``) raises
:class:`~zpml_symbolic.errors.NotRationalTextError` (a ``ParseError`` and a
``NotRationalError``) naming it. ``dialect="pysr"`` also reads Julia's
``Float32`` literals (``1.5f0`` is 1.5) and refuses ``Inf``/``NaN``.

``**`` binds tighter than unary minus (``-x**2`` is ``-(x**2)``) and is
right-associative, so ``x**2**3`` means ``x**(2**3)``; since an exponent must
be an integer *literal*, that form is rejected (write ``(x**2)**3``).

Output tree (structure exactly as written, nothing simplified):

- a chain of ``+``/``-`` at one parenthesis level is **one n-ary**
  ``Add(t1, t2, ..., evaluate=False)`` with its terms in written order; a
  subtracted term ``b`` appears as ``Mul(-1, b)`` (``b`` kept intact) or, when
  ``b`` is a number literal, as the negated number;
- a chain of ``*``/``/`` is one n-ary ``Mul`` whose divisors appear as
  ``Pow(d, -1)``; a chain that starts with the literal ``1`` followed by ``/``
  drops that ``1`` (``1/b`` is just ``Pow(b, -1)``);
- parentheses always make a separate node: ``(a+b)+c`` is
  ``Add(Add(a, b), c)`` while ``a+b+c`` is ``Add(a, b, c)``. Flattening
  same-operator chains never changes the strict (⊥-absorbing) value and keeps
  long written-out sums shallow;
- unary minus is ``Mul(-1, x)``, or the negated number for a number literal;
- ``x**n`` is ``Pow(x, n)``; numbers are exact ``Rational`` values read from
  the decimal text (``0.1`` is ``1/10``, never a float).
"""

from __future__ import annotations

import gc
import re
import unicodedata
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

import sympy

from zpml_symbolic.errors import (
    InputTypeError,
    InvalidArgumentError,
    NotRationalTextError,
    ParseError,
)
from zpml_symbolic.frontend.coefficient import Coefficient, as_coefficient
from zpml_symbolic.frontend.constants import constant_values

__all__ = [
    "DIALECTS",
    "MAX_INPUT_LENGTH",
    "MAX_LITERAL_DIGITS",
    "NON_RATIONAL_FUNCTIONS",
    "RATIONAL_FUNCTIONS",
    "InputTypeError",
    "ascii_spelling",
    "parse",
]

#: Longest accepted expression text, in characters.
MAX_INPUT_LENGTH = 1_000_000
#: Most digits a number literal (and its exact value's numerator/denominator) may have.
MAX_LITERAL_DIGITS = 4000

_SNIPPET_RADIUS = 40


# --------------------------------------------------------------------------- tokens

_NUM, _IDENT, _OP, _LPAREN, _RPAREN = "number", "identifier", "operator", "(", ")"

_NUMBER = re.compile(r"(?P<int>[0-9]+)(?:\.(?P<frac1>[0-9]*))?|\.(?P<frac2>[0-9]+)")
_EXPONENT = re.compile(r"[eE](?P<exp>[+-]?[0-9]+)")
_JULIA_EXPONENT = re.compile(r"[eEfF](?P<exp>[+-]?[0-9]+)")  # 1.5f0: a Julia Float32 literal

#: Text dialects: ``"zpml"`` (default) and ``"pysr"`` (Julia ``Float32`` literals such as
#: ``1.5f0``; ``Inf``/``NaN`` refused as non-finite constants).
DIALECTS = ("zpml", "pysr")

#: Functions the parser accepts, and the power each one is (``neg`` is negation).
RATIONAL_FUNCTIONS: dict[str, int | None] = {"square": 2, "cube": 3, "inv": -1, "neg": None}

#: Functions known not to be rational (a call names them in a :class:`NotRationalTextError`).
NON_RATIONAL_FUNCTIONS = frozenset(
    """sin cos tan cot sec csc asin acos atan atan2 sinh cosh tanh coth asinh acosh atanh
    atanh_clip exp expm1 exp2 exp10 log log2 log10 log1p log_abs log2_abs log10_abs log1p_abs
    safe_log safe_log2 safe_log10 safe_log1p safe_sqrt safe_acosh safe_pow sqrt sqrt_abs cbrt
    abs Abs sign relu sigmoid softplus gamma erf erfc floor ceil round max min mod greater
    logical_or logical_and cond Heaviside""".split()
)
_NON_FINITE_NAMES = frozenset({"Inf", "NaN", "inf", "nan", "Inf32", "NaN32", "Inf16", "NaN16"})
_IDENT_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_WORD_TAIL = re.compile(r"[A-Za-z0-9_.]*")
_WHITESPACE = frozenset(" \t\r\n\f\v")
_SIGN_RUN = re.compile(r"[-+ \t\r\n\f\v]*")


@dataclass(slots=True)
class _Token:
    kind: str
    text: str
    column: int  # 1-based
    value: sympy.Rational | None = None
    is_integer_literal: bool = False


def _format(message: str, text: str, column: int) -> str:
    """``message`` plus the column and a caret line under (a window of) ``text``."""
    index = min(max(column - 1, 0), len(text))
    lo = max(0, index - _SNIPPET_RADIUS)
    hi = min(len(text), index + _SNIPPET_RADIUS)
    prefix = "..." if lo > 0 else ""
    suffix = "..." if hi < len(text) else ""
    shown = "".join(
        " " if ch in _WHITESPACE else (ch if ch.isprintable() else "?") for ch in text[lo:hi]
    )
    caret = " " * (len(prefix) + index - lo) + "^"
    return f"{message} (column {column})\n    {prefix}{shown}{suffix}\n    {caret}"


def _error(message: str, text: str, column: int) -> ParseError:
    return ParseError(_format(message, text, column), text=text, column=column)


def _number_value(
    text: str, match: re.Match[str], exp_text: str | None, column: int
) -> sympy.Rational:
    """The exact rational denoted by a decimal literal (never via float)."""
    int_part = match.group("int") or ""
    frac = match.group("frac1") or match.group("frac2") or ""
    digits = (int_part + frac).lstrip("0") or "0"
    if len(digits) > MAX_LITERAL_DIGITS:
        raise _error(f"number literal has more than {MAX_LITERAL_DIGITS} digits", text, column)
    exponent = 0
    if exp_text is not None:
        if len(exp_text.lstrip("+-").lstrip("0")) > 6:
            raise _error("number literal exponent is out of range", text, column)
        exponent = int(exp_text)
    shift = exponent - len(frac)
    num_digits = len(digits) + max(shift, 0)
    den_digits = 1 + max(-shift, 0)
    if max(num_digits, den_digits) > MAX_LITERAL_DIGITS:
        raise _error(
            f"number literal is out of range (its exact value would need more than "
            f"{MAX_LITERAL_DIGITS} digits)",
            text,
            column,
        )
    mantissa = int(digits)
    if shift >= 0:
        return sympy.Rational(mantissa * 10**shift)
    return sympy.Rational(mantissa, 10 ** (-shift))


def _tokenize(text: str, julia: bool = False) -> tuple[list[_Token], ParseError | None]:
    """Tokens up to the first lexical error, and that error (``None`` if the text is clean).

    The error is returned rather than raised so that the parser can report an
    earlier *syntax* error first: errors always come out in left-to-right order.
    """
    tokens: list[_Token] = []
    try:
        _tokenize_into(text, tokens, julia)
    except ParseError as err:
        return tokens, err
    return tokens, None


def _tokenize_into(text: str, tokens: list[_Token], julia: bool = False) -> None:
    """Append the tokens of ``text`` to ``tokens``; raise at the first lexical error.

    ``julia``: an exponent may also be written with ``f`` (``1.5f0``, Julia's Float32).
    """
    i, n = 0, len(text)
    exponent_re = _JULIA_EXPONENT if julia else _EXPONENT
    exponent_letters = "eEfF" if julia else "eE"
    while i < n:
        ch = text[i]
        column = i + 1
        if ch in _WHITESPACE:
            i += 1
            continue
        if ch.isascii() and (ch.isdigit() or ch == "."):
            match = _NUMBER.match(text, i)
            if match is None:  # a lone "." not followed by a digit
                raise _error("malformed number '.' (a decimal point needs digits)", text, column)
            end = match.end()
            exp_match = exponent_re.match(text, end)
            exp_text = None
            if exp_match is not None:
                exp_text = exp_match.group("exp")
                end = exp_match.end()
            tail = _WORD_TAIL.match(text, end)
            assert tail is not None  # the pattern also matches the empty string
            if end < n and tail.end() > end:
                bad = text[i : tail.end()]
                nxt = text[end]
                if nxt in exponent_letters and exp_match is None:
                    why = f"{nxt!r} must be followed by an integer exponent, as in 1e-3"
                elif nxt == ".":
                    why = "more than one decimal point"
                else:
                    why = (
                        "a number cannot be followed directly by a letter, digit or '_' "
                        "(implicit multiplication is not supported; write 2*x)"
                    )
                raise _error(f"malformed number {bad[:40]!r}: {why}", text, column)
            literal = text[i:end]
            value = _number_value(text, match, exp_text, column)
            is_int = (
                match.group("frac1") is None and match.group("frac2") is None and exp_text is None
            )
            tokens.append(_Token(_NUM, literal, column, value, is_int))
            i = end
            continue
        if ch.isascii() and (ch.isalpha() or ch == "_"):
            ident = _IDENT_RE.match(text, i)
            assert ident is not None  # ch is a letter or '_', which starts an identifier
            end = ident.end()
            tokens.append(_Token(_IDENT, text[i:end], column))
            i = end
            continue
        if text.startswith("**", i):
            tokens.append(_Token(_OP, "**", column))
            i += 2
            continue
        if ch in "+-":
            i = _sign_run(text, i, tokens)
            continue
        if ch in "*/^":
            tokens.append(_Token(_OP, ch, column))
            i += 1
            continue
        if ch == "(":
            tokens.append(_Token(_LPAREN, ch, column))
            i += 1
            continue
        if ch == ")":
            tokens.append(_Token(_RPAREN, ch, column))
            i += 1
            continue
        hint = ""
        if ch in "[{":
            hint = " (use parentheses for grouping)"
        elif ch == ",":
            hint = " (a function takes one argument; tuples are not supported)"
        elif not ch.isascii():
            hint = _unicode_hint(text, i)
        raise _error(f"unexpected character {ch!r}{hint}", text, column)


_ASCII_OPERATORS = {
    "\u2212": "-",  # minus sign
    "\u2012": "-",
    "\u2013": "-",
    "\u2014": "-",
    "\ufe63": "-",
    "\uff0d": "-",
    "\u00d7": "*",  # multiplication sign
    "\u00b7": "*",
    "\u22c5": "*",
    "\u2219": "*",
    "\u2217": "*",
    "\u00f7": "/",
    "\u2215": "/",
    "\u2044": "/",
    "\uff0b": "+",
}
#: Suggested names where the spelled-out one is a Python keyword.
_NAME_ALIASES = {"lamda": "lam", "lambda": "lam"}  # Unicode spells it LAMDA


def _ascii_letter(ch: str) -> str | None:
    """ASCII spelling of one non-ASCII identifier character (``ω`` -> ``omega``, ``₀`` -> ``0``)."""
    digit = unicodedata.digit(ch, None)
    if digit is not None:
        return str(digit)
    name = unicodedata.name(ch, "")
    for prefix, upper in (
        ("GREEK SMALL LETTER ", False),
        ("GREEK CAPITAL LETTER ", True),
        ("MATHEMATICAL ITALIC SMALL ", False),
        ("MATHEMATICAL ITALIC CAPITAL ", True),
    ):
        if name.startswith(prefix):
            word = name[len(prefix) :].split()[0].lower()
            word = _NAME_ALIASES.get(word, word)
            return word.capitalize() if upper else word
    plain = unicodedata.normalize("NFKD", ch).encode("ascii", "ignore").decode()
    return plain if plain and (plain.isalnum() or plain == "_") else None


def ascii_spelling(ch: str) -> str | None:
    """The ASCII text to write for one non-ASCII character of an expression, or None.

    Operators (``−`` -> ``-``, ``×`` -> ``*``), superscript digits (``²`` -> ``**2``)
    and identifier characters (``λ`` -> ``lam``, ``ω`` -> ``omega``, ``₀`` -> ``0``);
    the same spellings the parser's error hints use.
    """
    if ch in _ASCII_OPERATORS:
        return _ASCII_OPERATORS[ch]
    digit = unicodedata.digit(ch, None)
    if digit is not None and "SUPERSCRIPT" in unicodedata.name(ch, ""):
        return f"**{digit}"
    return _ascii_letter(ch)


def _unicode_hint(text: str, i: int) -> str:
    """A hint for a non-ASCII character: the ASCII operator or identifier to write instead."""
    ch = text[i]
    if ch in _ASCII_OPERATORS:
        return f" (write the ASCII {_ASCII_OPERATORS[ch]!r} instead)"
    if unicodedata.category(ch) == "No" and unicodedata.digit(ch, None) is not None:
        name = unicodedata.name(ch, "")
        if "SUPERSCRIPT" in name:
            return f" (write a power as x**{unicodedata.digit(ch)})"
    start = i
    while start > 0 and (text[start - 1].isalnum() or text[start - 1] == "_"):
        start -= 1
    end = i
    while end < len(text) and (text[end].isalnum() or text[end] == "_" or not text[end].isascii()):
        if not text[end].isascii() and _ascii_letter(text[end]) is None:
            break
        end += 1
    word = text[start:end]
    spelled = "".join(c if c.isascii() else (_ascii_letter(c) or "") for c in word)
    if spelled and (spelled[0].isalpha() or spelled[0] == "_") and spelled.isascii():
        return f" (identifiers are ASCII; write {spelled!r} for {word!r})"
    return " (only ASCII letters, digits, operators and parentheses are allowed)"


def _sign_run(text: str, i: int, tokens: list[_Token]) -> int:
    """Tokenize a run of ``+``/``-`` signs (whitespace between allowed) starting at ``i``.

    The first sign may be a binary operator and is kept; the signs after it
    can only be unary and are folded into at most one ``-`` (an even number
    of minus signs cancels), so ``"-" * 10**6 + "x"`` gives two tokens.
    Unary signs never change where an expression is bottom. Returns the
    position after the run.
    """
    tokens.append(_Token(_OP, text[i], i + 1))
    run = _SIGN_RUN.match(text, i + 1)
    assert run is not None  # the pattern also matches the empty string
    j = run.end()
    if text.count("-", i + 1, j) % 2:
        first = min(k for k in (text.find("-", i + 1, j), text.find("+", i + 1, j)) if k >= 0)
        tokens.append(_Token(_OP, "-", first + 1))
    return j


# --------------------------------------------------------------------------- tree building

_ADD, _MUL = "add", "mul"
_BINARY_PRECEDENCE = {"+": 1, "-": 1, "*": 2, "/": 2}
_UNARY_PRECEDENCE = 3
_NEG_ONE = sympy.Integer(-1)


class _Operand:
    """A parsed operand; an open ``+``/``*`` chain keeps its parts until it is closed."""

    __slots__ = ("chain", "parts", "expr")

    def __init__(
        self,
        expr: sympy.Expr | None,
        chain: str | None = None,
        parts: list[sympy.Expr] | None = None,
    ) -> None:
        self.expr = expr
        self.chain = chain
        self.parts = parts

    def close(self) -> sympy.Expr:
        """Materialise the node (an open chain becomes one n-ary Add/Mul)."""
        if self.expr is None:
            assert self.parts is not None
            if len(self.parts) == 1:
                self.expr = self.parts[0]
            elif self.chain == _ADD:
                self.expr = sympy.Add(*self.parts, evaluate=False)
            else:
                self.expr = sympy.Mul(*self.parts, evaluate=False)
            self.parts = None
        self.chain = None
        return self.expr


def _negate(expr: sympy.Expr) -> sympy.Expr:
    """``-expr``: a negated number, ``b`` for ``-(-b)`` (``Mul(-1, b)``), else ``Mul(-1, expr)``."""
    if isinstance(expr, sympy.Rational):
        return -expr
    if isinstance(expr, sympy.Mul) and len(expr.args) == 2 and expr.args[0] is _NEG_ONE:
        return expr.args[1]
    return sympy.Mul(_NEG_ONE, expr, evaluate=False)


def _apply_function(name: str, arg: sympy.Expr) -> sympy.Expr:
    """``square(arg)`` etc. as the parser's own nodes (``neg`` as unary minus)."""
    power = RATIONAL_FUNCTIONS[name]
    if power is None:
        return _negate(arg)
    return sympy.Pow(arg, sympy.Integer(power), evaluate=False)


def _combine(op: str, left: _Operand, right: _Operand) -> _Operand:
    rhs = right.close()
    if op in "+-":
        term = rhs if op == "+" else _negate(rhs)
        if left.chain == _ADD:
            assert left.parts is not None
            left.parts.append(term)
            return left
        return _Operand(None, _ADD, [left.close(), term])
    factor = rhs if op == "*" else sympy.Pow(rhs, _NEG_ONE, evaluate=False)
    if left.chain == _MUL:
        assert left.parts is not None
        left.parts.append(factor)
        return left
    lhs = left.close()
    if op == "/" and lhs is sympy.S.One:
        return _Operand(None, _MUL, [factor])
    return _Operand(None, _MUL, [lhs, factor])


@dataclass(slots=True)
class _Pending:
    """An operator waiting on the stack: ``(``, ``neg``, ``pos`` or a binary operator."""

    kind: str
    column: int
    function: str | None = None  # for "(": the function called, if the parenthesis opens a call

    @property
    def precedence(self) -> int:
        if self.kind in ("neg", "pos"):
            return _UNARY_PRECEDENCE
        return _BINARY_PRECEDENCE.get(self.kind, 0)


class _Parser:
    """Iterative shunting-yard parser over a token list."""

    def __init__(
        self,
        text: str,
        tokens: list[_Token],
        lexical_error: ParseError | None,
        symbols: dict[str, sympy.Symbol],
        constants: dict[str, sympy.Rational] | None = None,
        *,
        pysr: bool = False,
        literal: Callable[[_Token, bool], sympy.Expr | None] | None = None,
    ) -> None:
        self.constants = constants or {}
        self.pysr = pysr
        #: hook for number literals: ``literal(token, negated)`` returns the atom to use
        #: (``None``: the exact number); see :mod:`zpml_symbolic.frontend.equation`
        self.literal = literal
        self.text = text
        self.tokens = tokens
        self.lexical_error = lexical_error
        self.symbols = symbols
        self.operands: list[_Operand] = []
        self.ops: list[_Pending] = []

    def error(self, message: str, column: int) -> ParseError:
        return _error(message, self.text, column)

    def not_rational(
        self, message: str, column: int, subexpression: str, function: str | None = None
    ) -> NotRationalTextError:
        return NotRationalTextError(
            _format(message, self.text, column),
            text=self.text,
            column=column,
            subexpression=subexpression,
            function=function,
        )

    def call_error(self, tok: _Token) -> ParseError:
        """The error for a call of a function other than :data:`RATIONAL_FUNCTIONS`."""
        allowed = "function calls are not supported, except square(), cube(), neg() and inv()"
        if tok.text in NON_RATIONAL_FUNCTIONS:
            return self.not_rational(
                f"{tok.text}() is not a rational function, so the equation is not rational "
                f"({allowed})",
                tok.column,
                tok.text,
                tok.text,
            )
        return self.error(f"unknown function {tok.text}(): {allowed}", tok.column)

    def end_error(self, message: str, column: int) -> ParseError:
        """An error caused by running out of tokens: a lexical error, if any, explains it."""
        return self.lexical_error or self.error(message, column)

    def symbol(self, name: str) -> sympy.Symbol:
        sym = self.symbols.get(name)
        if sym is None:
            sym = self.symbols[name] = sympy.Symbol(name)
        return sym

    def reduce_top(self) -> None:
        op = self.ops.pop()
        if op.kind == "neg":
            operand = self.operands.pop()
            self.operands.append(_Operand(_negate(operand.close())))
        elif op.kind == "pos":
            operand = self.operands.pop()
            self.operands.append(_Operand(operand.close()))
        else:
            right = self.operands.pop()
            left = self.operands.pop()
            self.operands.append(_combine(op.kind, left, right))

    def exponent(self, pos: int, power_token: _Token) -> tuple[int, int]:
        """Read an integer-literal exponent starting at ``pos``; return (value, next pos)."""
        tokens = self.tokens
        if pos >= len(tokens):
            raise self.end_error(f"missing exponent after {power_token.text!r}", power_token.column)
        start = tokens[pos].column
        not_integer = (
            "only integer exponents are allowed: the exponent must be a number literal "
            "with an integer value, such as 2, -3, (-3) or 2.0"
        )
        sign = 1
        opened: list[int] = []  # columns of the '(' still open
        while True:
            if pos >= len(tokens):
                if opened:
                    raise self.end_error("unbalanced '(' in exponent", opened[-1])
                raise self.end_error(
                    f"missing exponent after {power_token.text!r}", power_token.column
                )
            tok = tokens[pos]
            pos += 1
            if tok.kind == _OP and tok.text in "+-":
                sign = -sign if tok.text == "-" else sign
            elif tok.kind == _LPAREN:
                opened.append(tok.column)
            elif tok.kind == _NUM:
                assert tok.value is not None
                if tok.value.q != 1:
                    raise self.not_rational(
                        f"{not_integer} (found {tok.text!r}): a non-integer power is not a "
                        "rational function, so the equation is not rational",
                        start,
                        tok.text,
                    )
                value = sign * int(tok.value)
                break
            elif tok.kind == _IDENT:
                raise self.not_rational(
                    f"{not_integer} (found {tok.text!r}): a symbolic power is not a rational "
                    "function, so the equation is not rational",
                    start,
                    tok.text,
                )
            else:
                raise self.error(f"{not_integer} (found {tok.text!r})", start)
        while opened:
            if pos >= len(tokens):
                raise self.end_error("unbalanced '(' in exponent", opened[-1])
            tok = tokens[pos]
            if tok.kind != _RPAREN:
                raise self.error(f"{not_integer} (found {tok.text!r} inside it)", start)
            opened.pop()
            pos += 1
        if pos < len(tokens) and tokens[pos].kind == _OP and tokens[pos].text in ("**", "^"):
            raise self.error(
                f"{not_integer}; '**' is right-associative, so 'x**2**3' means x**(2**3), "
                "whose exponent is not a literal (write (x**2)**3)",
                start,
            )
        return value, pos

    def atom(self, tok: _Token) -> sympy.Expr:
        """The operand of a number or identifier token."""
        if tok.kind == _NUM:
            assert tok.value is not None
            if self.literal is not None:
                lifted = self.literal(tok, False)
                if lifted is not None:
                    return lifted
            return tok.value
        if tok.text in self.constants:
            return self.constants[tok.text]
        if self.pysr and tok.text in _NON_FINITE_NAMES:
            raise self.not_rational(
                f"{tok.text} is not a finite number, so the equation is not rational",
                tok.column,
                tok.text,
            )
        return self.symbol(tok.text)

    def negated_literal(self, pos: int) -> bool:
        """Whether tokens ``pos, pos+1`` are a unary minus and a number not raised to a power."""
        tokens = self.tokens
        if not (tokens[pos].kind == _OP and tokens[pos].text == "-"):
            return False
        if pos + 1 >= len(tokens) or tokens[pos + 1].kind != _NUM:
            return False
        after = tokens[pos + 2] if pos + 2 < len(tokens) else None
        return not (after is not None and after.kind == _OP and after.text in ("**", "^"))

    def postfix_power(self, base: sympy.Expr, pos: int) -> tuple[sympy.Expr, int]:
        tokens = self.tokens
        if pos < len(tokens) and tokens[pos].kind == _OP and tokens[pos].text in ("**", "^"):
            value, pos = self.exponent(pos + 1, tokens[pos])
            return sympy.Pow(base, sympy.Integer(value), evaluate=False), pos
        return base, pos

    def run(self) -> sympy.Expr:
        tokens, ops, operands = self.tokens, self.ops, self.operands
        expect_operand = True
        pos = 0
        while pos < len(tokens):
            tok = tokens[pos]
            prev = tokens[pos - 1] if pos > 0 else None
            if expect_operand:
                if tok.kind in (_NUM, _IDENT):
                    if (
                        tok.kind == _IDENT
                        and pos + 1 < len(tokens)
                        and tokens[pos + 1].kind == _LPAREN
                    ):
                        if tok.text not in RATIONAL_FUNCTIONS:
                            raise self.call_error(tok)
                        ops.append(_Pending("(", tokens[pos + 1].column, tok.text))
                        pos += 2
                        continue
                    atom = self.atom(tok)
                    atom, pos = self.postfix_power(atom, pos + 1)
                    operands.append(_Operand(atom))
                    expect_operand = False
                    continue
                if self.literal is not None and self.negated_literal(pos):
                    # "-1.5" as one literal, so a lifted constant carries its sign
                    atom = self.literal(tokens[pos + 1], True)
                    if atom is not None:
                        operands.append(_Operand(atom))
                        expect_operand = False
                        pos += 2
                        continue
                if tok.kind == _LPAREN:
                    ops.append(_Pending("(", tok.column))
                elif tok.kind == _OP and tok.text in "+-":
                    ops.append(_Pending("neg" if tok.text == "-" else "pos", tok.column))
                elif tok.kind == _RPAREN:
                    if prev is None:
                        raise self.error("unmatched ')'", tok.column)
                    if prev.kind == _LPAREN:
                        if ops and ops[-1].function is not None:
                            raise self.error(
                                f"{ops[-1].function}() needs one argument", prev.column
                            )
                        raise self.error("empty parentheses '()'", prev.column)
                    raise self.error(f"missing operand between {prev.text!r} and ')'", tok.column)
                elif prev is None:
                    raise self.error(
                        f"expression cannot start with operator {tok.text!r}", tok.column
                    )
                else:
                    raise self.error(
                        f"missing operand between {prev.text!r} and {tok.text!r}", tok.column
                    )
                pos += 1
                continue
            # expecting an operator
            if tok.kind == _OP and tok.text in _BINARY_PRECEDENCE:
                precedence = _BINARY_PRECEDENCE[tok.text]
                while ops and ops[-1].kind != "(" and ops[-1].precedence >= precedence:
                    self.reduce_top()
                ops.append(_Pending(tok.text, tok.column))
                expect_operand = True
                pos += 1
            elif tok.kind == _RPAREN:
                while ops and ops[-1].kind != "(":
                    self.reduce_top()
                if not ops:
                    raise self.error("unmatched ')'", tok.column)
                opened = ops.pop()
                group = operands.pop().close()
                if opened.function is not None:
                    group = _apply_function(opened.function, group)
                group, pos = self.postfix_power(group, pos + 1)
                operands.append(_Operand(group))
            elif tok.kind == _OP:  # '**' not directly after an operand
                raise self.error(f"misplaced operator {tok.text!r}", tok.column)
            else:
                assert prev is not None
                hint = " (implicit multiplication is not supported; write '*')"
                raise self.error(
                    f"missing operator between {prev.text!r} and {tok.text!r}{hint}", tok.column
                )
        if self.lexical_error is not None:
            raise self.lexical_error
        if not tokens:
            raise self.error("empty expression", 1)
        if expect_operand:
            last = tokens[-1]
            if last.kind == _LPAREN:
                raise self.error("unmatched '('", last.column)
            raise self.error(f"expression ends with operator {last.text!r}", last.column)
        while ops:
            if ops[-1].kind == "(":
                raise self.error("unmatched '('", ops[-1].column)
            self.reduce_top()
        assert len(operands) == 1
        return operands[0].close()


def _parameter_symbols(parameters: Iterable[str | sympy.Symbol]) -> dict[str, sympy.Symbol]:
    if isinstance(parameters, str | bytes):
        raise InvalidArgumentError(
            f"parameters must be an iterable of names, not a single string; use [{parameters!r:.60}]"
        )
    try:
        specs = list(parameters)
    except TypeError:
        raise InvalidArgumentError(
            f"parameters must be an iterable of names or Symbols, got {type(parameters).__name__}"
        ) from None
    symbols: dict[str, sympy.Symbol] = {}
    for spec in specs:
        coefficient: Coefficient = as_coefficient(spec)
        other = symbols.get(coefficient.name)
        if other is not None and other != coefficient:
            raise InvalidArgumentError(
                f"parameter {coefficient.name!r} is given twice with different assumptions"
            )
        symbols[coefficient.name] = coefficient
    return symbols


def parse(
    text: str,
    *,
    parameters: Iterable[str | sympy.Symbol] = (),
    constants: Mapping[str, object] | None = None,
    dialect: str = "zpml",
) -> sympy.Expr:
    """Parse ``text`` into an unevaluated sympy tree that keeps the written structure.

    Identifiers become ``sympy.Symbol(name)``, except those named in
    ``constants`` (``{"pi": 3.141592653589793}``: an exact rational, a float
    taken exactly, or a decimal string), which become that number; those named in ``parameters``
    become :class:`~zpml_symbolic.frontend.coefficient.Coefficient` symbols (a
    ``Coefficient`` given there is used as-is, another ``Symbol`` lends its name
    and assumptions). Numbers are exact rationals (``0.1`` -> ``1/10``).

    >>> parse("x/x")             # not 1: the bottom at x = 0 is kept
    x/x
    >>> parse("1/(1/x)").args    # not x
    (1/x, -1)

    Raises :class:`~zpml_symbolic.errors.ParseError` (with ``.column``, 1-based,
    and a caret line in the message) for malformed text (its subclass
    :class:`~zpml_symbolic.errors.NotRationalTextError` when the text is well formed
    but not rational: ``sin(x)``, ``x**2.5``),
    :class:`InputTypeError` (a ``TypeError``) when ``text`` is not a ``str``,
    and :class:`~zpml_symbolic.errors.InvalidArgumentError` for bad parameters.
    """
    if not isinstance(text, str):
        raise InputTypeError(
            f"parse() expects the expression as a str, got {type(text).__name__}"
            + (
                "; pass a sympy expression to the compiler directly"
                if isinstance(text, sympy.Basic)
                else ""
            )
        )
    pysr = _check_dialect(dialect)
    symbols = _parameter_symbols(parameters)
    values = constant_values(constants)
    clash = sorted(set(values) & set(symbols))
    if clash:
        raise InvalidArgumentError(f"{clash} are given both as constants and as parameters")
    consts = {k: sympy.Rational(v.numerator, v.denominator) for k, v in values.items()}
    return run_parser(text, symbols, consts, pysr=pysr)


def _check_dialect(dialect: object) -> bool:
    """True for ``"pysr"``, False for ``"zpml"``; anything else is an error."""
    if dialect not in DIALECTS:
        raise InvalidArgumentError(f"dialect must be one of {list(DIALECTS)}, got {dialect!r}")
    return dialect == "pysr"


def run_parser(
    text: str,
    symbols: dict[str, sympy.Symbol],
    constants: dict[str, sympy.Rational],
    *,
    pysr: bool = False,
    literal: Callable[[_Token, bool], sympy.Expr | None] | None = None,
) -> sympy.Expr:
    """Tokenize and parse ``text`` (checked by the caller) with the cyclic GC paused."""
    if len(text) > MAX_INPUT_LENGTH:
        raise ParseError(
            f"expression text is too long: {len(text)} characters (limit {MAX_INPUT_LENGTH})",
            text=text,
            column=MAX_INPUT_LENGTH + 1,
        )
    # The parser allocates a few objects per token and keeps them all alive;
    # the cyclic collector would rescan them over and over (quadratic time for
    # 1 MB of input). Nothing here makes reference cycles, so pause it.
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        tokens, lexical_error = _tokenize(text, julia=pysr)
        parser = _Parser(
            text, tokens, lexical_error, symbols, constants, pysr=pysr, literal=literal
        )
        return parser.run()
    finally:
        if was_enabled:
            gc.enable()
