"""The grammar: an iterative shunting-yard parser from tokens to an unevaluated sympy tree.

See :mod:`zpml_symbolic.frontend.parser` for the grammar and the shape of the
output tree (n-ary ``Add``/``Mul`` chains in written order, parentheses kept as
separate nodes, exact rational numbers).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import sympy

from zpml_symbolic.errors import NotRationalTextError, ParseError
from zpml_symbolic.frontend.lexer import (
    IDENT,
    LPAREN,
    NUM,
    OP,
    RPAREN,
    Token,
    format_error,
    parse_error,
)

__all__ = ["NON_RATIONAL_FUNCTIONS", "RATIONAL_FUNCTIONS", "Parser"]

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


class Parser:
    """Iterative shunting-yard parser over a token list."""

    def __init__(
        self,
        text: str,
        tokens: list[Token],
        lexical_error: ParseError | None,
        symbols: dict[str, sympy.Symbol],
        constants: dict[str, sympy.Rational] | None = None,
        *,
        pysr: bool = False,
        literal: Callable[[Token, bool], sympy.Expr | None] | None = None,
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
        return parse_error(message, self.text, column)

    def not_rational(
        self, message: str, column: int, subexpression: str, function: str | None = None
    ) -> NotRationalTextError:
        return NotRationalTextError(
            format_error(message, self.text, column),
            text=self.text,
            column=column,
            subexpression=subexpression,
            function=function,
        )

    def call_error(self, tok: Token) -> ParseError:
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

    def exponent(self, pos: int, power_token: Token) -> tuple[int, int]:
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
            if tok.kind == OP and tok.text in "+-":
                sign = -sign if tok.text == "-" else sign
            elif tok.kind == LPAREN:
                opened.append(tok.column)
            elif tok.kind == NUM:
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
            elif tok.kind == IDENT:
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
            if tok.kind != RPAREN:
                raise self.error(f"{not_integer} (found {tok.text!r} inside it)", start)
            opened.pop()
            pos += 1
        if pos < len(tokens) and tokens[pos].kind == OP and tokens[pos].text in ("**", "^"):
            raise self.error(
                f"{not_integer}; '**' is right-associative, so 'x**2**3' means x**(2**3), "
                "whose exponent is not a literal (write (x**2)**3)",
                start,
            )
        return value, pos

    def atom(self, tok: Token) -> sympy.Expr:
        """The operand of a number or identifier token."""
        if tok.kind == NUM:
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
        if not (tokens[pos].kind == OP and tokens[pos].text == "-"):
            return False
        if pos + 1 >= len(tokens) or tokens[pos + 1].kind != NUM:
            return False
        after = tokens[pos + 2] if pos + 2 < len(tokens) else None
        return not (after is not None and after.kind == OP and after.text in ("**", "^"))

    def postfix_power(self, base: sympy.Expr, pos: int) -> tuple[sympy.Expr, int]:
        tokens = self.tokens
        if pos < len(tokens) and tokens[pos].kind == OP and tokens[pos].text in ("**", "^"):
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
                if tok.kind in (NUM, IDENT):
                    if (
                        tok.kind == IDENT
                        and pos + 1 < len(tokens)
                        and tokens[pos + 1].kind == LPAREN
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
                if tok.kind == LPAREN:
                    ops.append(_Pending("(", tok.column))
                elif tok.kind == OP and tok.text in "+-":
                    ops.append(_Pending("neg" if tok.text == "-" else "pos", tok.column))
                elif tok.kind == RPAREN:
                    if prev is None:
                        raise self.error("unmatched ')'", tok.column)
                    if prev.kind == LPAREN:
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
            if tok.kind == OP and tok.text in _BINARY_PRECEDENCE:
                precedence = _BINARY_PRECEDENCE[tok.text]
                while ops and ops[-1].kind != "(" and ops[-1].precedence >= precedence:
                    self.reduce_top()
                ops.append(_Pending(tok.text, tok.column))
                expect_operand = True
                pos += 1
            elif tok.kind == RPAREN:
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
            elif tok.kind == OP:  # '**' not directly after an operand
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
            if last.kind == LPAREN:
                raise self.error("unmatched '('", last.column)
            raise self.error(f"expression ends with operator {last.text!r}", last.column)
        while ops:
            if ops[-1].kind == "(":
                raise self.error("unmatched '('", ops[-1].column)
            self.reduce_top()
        assert len(operands) == 1
        return operands[0].close()
