"""The expression tokenizer: exact number literals, sign runs, errors with a caret line.

Numbers are read from their decimal text as exact rationals (never via float);
a run of ``+``/``-`` signs folds into at most two tokens, so a megabyte of
signs stays cheap. Errors carry the 1-based column and a caret under a window
of the text.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import sympy

from zpml_symbolic.errors import ParseError
from zpml_symbolic.frontend.unicode_hints import unicode_hint

__all__ = [
    "MAX_INPUT_LENGTH",
    "MAX_LITERAL_DIGITS",
    "Token",
    "format_error",
    "parse_error",
    "tokenize",
]

#: Longest accepted expression text, in characters.
MAX_INPUT_LENGTH = 1_000_000
#: Most digits a number literal (and its exact value's numerator/denominator) may have.
MAX_LITERAL_DIGITS = 4000

_SNIPPET_RADIUS = 40

NUM, IDENT, OP, LPAREN, RPAREN = "number", "identifier", "operator", "(", ")"

_NUMBER = re.compile(r"(?P<int>[0-9]+)(?:\.(?P<frac1>[0-9]*))?|\.(?P<frac2>[0-9]+)")
_EXPONENT = re.compile(r"[eE](?P<exp>[+-]?[0-9]+)")
_JULIA_EXPONENT = re.compile(r"[eEfF](?P<exp>[+-]?[0-9]+)")  # 1.5f0: a Julia Float32 literal
IDENT_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_WORD_TAIL = re.compile(r"[A-Za-z0-9_.]*")
_WHITESPACE = frozenset(" \t\r\n\f\v")
_SIGN_RUN = re.compile(r"[-+ \t\r\n\f\v]*")


@dataclass(slots=True)
class Token:
    """One token: its kind (number, identifier, operator, parenthesis), text and column."""

    kind: str
    text: str
    column: int  # 1-based
    value: sympy.Rational | None = None
    is_integer_literal: bool = False


def format_error(message: str, text: str, column: int) -> str:
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


def parse_error(message: str, text: str, column: int) -> ParseError:
    return ParseError(format_error(message, text, column), text=text, column=column)


def _number_value(
    text: str, match: re.Match[str], exp_text: str | None, column: int
) -> sympy.Rational:
    """The exact rational denoted by a decimal literal (never via float)."""
    int_part = match.group("int") or ""
    frac = match.group("frac1") or match.group("frac2") or ""
    digits = (int_part + frac).lstrip("0") or "0"
    if len(digits) > MAX_LITERAL_DIGITS:
        raise parse_error(f"number literal has more than {MAX_LITERAL_DIGITS} digits", text, column)
    exponent = 0
    if exp_text is not None:
        if len(exp_text.lstrip("+-").lstrip("0")) > 6:
            raise parse_error("number literal exponent is out of range", text, column)
        exponent = int(exp_text)
    shift = exponent - len(frac)
    num_digits = len(digits) + max(shift, 0)
    den_digits = 1 + max(-shift, 0)
    if max(num_digits, den_digits) > MAX_LITERAL_DIGITS:
        raise parse_error(
            f"number literal is out of range (its exact value would need more than "
            f"{MAX_LITERAL_DIGITS} digits)",
            text,
            column,
        )
    mantissa = int(digits)
    if shift >= 0:
        return sympy.Rational(mantissa * 10**shift)
    return sympy.Rational(mantissa, 10 ** (-shift))


def tokenize(text: str, julia: bool = False) -> tuple[list[Token], ParseError | None]:
    """Tokens up to the first lexical error, and that error (``None`` if the text is clean).

    The error is returned rather than raised so that the parser can report an
    earlier *syntax* error first: errors always come out in left-to-right order.
    """
    tokens: list[Token] = []
    try:
        _tokenize_into(text, tokens, julia)
    except ParseError as err:
        return tokens, err
    return tokens, None


def _tokenize_into(text: str, tokens: list[Token], julia: bool = False) -> None:
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
                raise parse_error(
                    "malformed number '.' (a decimal point needs digits)", text, column
                )
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
                raise parse_error(f"malformed number {bad[:40]!r}: {why}", text, column)
            literal = text[i:end]
            value = _number_value(text, match, exp_text, column)
            is_int = (
                match.group("frac1") is None and match.group("frac2") is None and exp_text is None
            )
            tokens.append(Token(NUM, literal, column, value, is_int))
            i = end
            continue
        if ch.isascii() and (ch.isalpha() or ch == "_"):
            ident = IDENT_RE.match(text, i)
            assert ident is not None  # ch is a letter or '_', which starts an identifier
            end = ident.end()
            tokens.append(Token(IDENT, text[i:end], column))
            i = end
            continue
        if text.startswith("**", i):
            tokens.append(Token(OP, "**", column))
            i += 2
            continue
        if ch in "+-":
            i = _sign_run(text, i, tokens)
            continue
        if ch in "*/^":
            tokens.append(Token(OP, ch, column))
            i += 1
            continue
        if ch == "(":
            tokens.append(Token(LPAREN, ch, column))
            i += 1
            continue
        if ch == ")":
            tokens.append(Token(RPAREN, ch, column))
            i += 1
            continue
        hint = ""
        if ch in "[{":
            hint = " (use parentheses for grouping)"
        elif ch == ",":
            hint = " (a function takes one argument; tuples are not supported)"
        elif not ch.isascii():
            hint = unicode_hint(text, i)
        raise parse_error(f"unexpected character {ch!r}{hint}", text, column)


def _sign_run(text: str, i: int, tokens: list[Token]) -> int:
    """Tokenize a run of ``+``/``-`` signs (whitespace between allowed) starting at ``i``.

    The first sign may be a binary operator and is kept; the signs after it
    can only be unary and are folded into at most one ``-`` (an even number
    of minus signs cancels), so ``"-" * 10**6 + "x"`` gives two tokens.
    Unary signs never change where an expression is bottom. Returns the
    position after the run.
    """
    tokens.append(Token(OP, text[i], i + 1))
    run = _SIGN_RUN.match(text, i + 1)
    assert run is not None  # the pattern also matches the empty string
    j = run.end()
    if text.count("-", i + 1, j) % 2:
        first = min(k for k in (text.find("-", i + 1, j), text.find("+", i + 1, j)) if k >= 0)
        tokens.append(Token(OP, "-", first + 1))
    return j
