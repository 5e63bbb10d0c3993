"""sympy -> IR, keeping the user's tree exactly as given.

The walk is iterative (no recursion limit) and memoised on sympy's structural
equality, so a tree built by repeated sharing (``e = e*e`` forty times) is
converted in linear time. Every IR node remembers the first place in the
user's tree where it occurs (:class:`Occurrence`), which is what provenance
and error messages report.
"""

from __future__ import annotations

import numbers
from collections.abc import Mapping
from dataclasses import dataclass
from fractions import Fraction

import sympy as sp

from zpml_symbolic.errors import InvalidArgumentError, NotRationalError
from zpml_symbolic.frontend.decimal_number import DecimalNumber
from zpml_symbolic.ir import node as ir
from zpml_symbolic.ir.node import Node, Op

_MAX_ERROR_TEXT = 200


@dataclass(frozen=True, slots=True)
class Occurrence:
    """Where a node first occurs in the user's tree: parent occurrence + argument index."""

    parent: Occurrence | None
    index: int
    node: Node | None = None
    parent_node: Node | None = None

    @property
    def path(self) -> str:
        """``root.args[i].args[j]...`` in the user's sympy tree."""
        parts: list[str] = []
        occ: Occurrence | None = self
        while occ is not None and occ.parent is not None:
            parts.append(f".args[{occ.index}]")
            occ = occ.parent
        return "root" + "".join(reversed(parts))


@dataclass(frozen=True, slots=True)
class FrontendResult:
    """The IR of one sympy expression plus the bookkeeping provenance needs."""

    root: Node
    occurrences: dict[Node, Occurrence]
    symbols: dict[str, sp.Symbol]


def _short(expr: object) -> str:
    text = str(expr)
    return text if len(text) <= _MAX_ERROR_TEXT else text[: _MAX_ERROR_TEXT - 1] + "…"


def _reject(expr: object, occ: Occurrence, why: str, hint: str = "") -> NotRationalError:
    text = _short(expr)
    return NotRationalError(
        f"{why}: {text!r} at {occ.path}. Only symbols, exact numbers, +, *, and integer "
        f"powers (including division) are rational.{hint}",
        subexpression=text,
        path=occ.path,
    )


def float_to_fraction(value: sp.Float) -> Fraction:
    """The exact binary rational a sympy Float denotes (any precision)."""
    sign, mantissa, exponent, _ = value._mpf_
    if mantissa == 0 and exponent != 0:  # inf / nan are encoded with zero mantissa
        raise ValueError("non-finite float")
    frac = Fraction(mantissa) * (Fraction(2) ** exponent)
    return -frac if sign else frac


def _is_param(sym: sp.Symbol, parameters: frozenset[object]) -> bool:
    if sym in parameters or sym.name in parameters:
        return True
    try:
        from zpml_symbolic.frontend.coefficient import Coefficient
    except ImportError:  # pragma: no cover - the module ships with the package
        return False
    return isinstance(sym, Coefficient)


def _leaf(
    expr: sp.Basic,
    occ: Occurrence,
    parameters: frozenset[object],
    constants: Mapping[str, Fraction] | None = None,
) -> Node | None:
    """Convert a leaf, or return None if ``expr`` is not a leaf we accept."""
    if constants and isinstance(expr, sp.Symbol | sp.NumberSymbol) and str(expr) in constants:
        return ir.const(constants[str(expr)])
    if isinstance(expr, sp.Symbol):
        return ir.param(expr.name) if _is_param(expr, parameters) else ir.var(expr.name)
    if expr in (sp.oo, -sp.oo, sp.zoo) or expr is sp.nan:
        raise _reject(expr, occ, "infinite or undefined constant")
    if isinstance(expr, sp.Rational):  # Integer is a Rational
        return ir.const(Fraction(int(expr.p), int(expr.q)))
    if isinstance(expr, DecimalNumber):  # a decimal shown to the user: exactly that decimal
        return ir.const(expr.value)
    if isinstance(expr, sp.Float):
        try:
            return ir.const(float_to_fraction(expr))
        except ValueError:
            raise _reject(expr, occ, "non-finite float") from None
    if isinstance(expr, sp.NumberSymbol):
        name = str(expr)
        raise _reject(
            expr,
            occ,
            "irrational or complex constant",
            f" Give {name} a rational value with constants={{{name!r}: {float(expr)!r}}} "
            f"(parse/flatten; a float is taken exactly) or --const {name}=... on the CLI.",
        )
    if expr.is_Number or expr is sp.I:
        raise _reject(expr, occ, "irrational or complex constant")
    return None


def _check_supported(expr: sp.Basic, occ: Occurrence) -> None:
    if isinstance(expr, sp.Pow):
        exponent = expr.exp
        if isinstance(exponent, sp.Float) and exponent.is_finite:
            if float_to_fraction(exponent).denominator == 1:
                return  # a float that denotes an integer exactly (e.g. 2.0)
        if not isinstance(exponent, sp.Integer):
            kind = "symbolic" if exponent.free_symbols else "non-integer"
            raise _reject(expr, occ, f"{kind} exponent {_short(exponent)}")
        return
    if isinstance(expr, sp.Add | sp.Mul | sp.UnevaluatedExpr):
        return
    if isinstance(expr, sp.Piecewise):
        raise _reject(expr, occ, "Piecewise is not rational")
    if isinstance(expr, sp.Rel | sp.logic.boolalg.Boolean):
        raise _reject(expr, occ, "relations and booleans are not expressions")
    if isinstance(expr, sp.MatrixBase | sp.MatrixExpr):
        raise _reject(expr, occ, "matrices are not scalar expressions")
    if isinstance(expr, sp.Function | sp.core.function.Application):
        raise _reject(expr, occ, f"function {type(expr).__name__} is not rational")
    raise _reject(expr, occ, f"unsupported node {type(expr).__name__}")


def from_sympy(
    expr: object,
    *,
    parameters: frozenset[object] = frozenset(),
    constants: Mapping[str, Fraction] | None = None,
) -> FrontendResult:
    """Convert a sympy scalar expression to IR, rejecting everything not rational.

    ``parameters`` holds symbols (or their names) that are learnable
    coefficients; :class:`~zpml_symbolic.frontend.coefficient.Coefficient`
    symbols are parameters automatically. ``constants`` maps names to exact
    values: a symbol of that name, and sympy's constant of that name
    (``sympy.pi`` for ``"pi"``), become that number. Raises :class:`NotRationalError`
    naming the offending subexpression and its path.
    """
    if isinstance(expr, bool):
        raise NotRationalError("a bool is not an expression", subexpression=str(expr), path="root")
    if isinstance(expr, numbers.Integral):
        expr = sp.Integer(int(expr))
    elif isinstance(expr, Fraction):
        expr = sp.Rational(expr.numerator, expr.denominator)
    elif isinstance(expr, numbers.Real) and not isinstance(expr, sp.Basic):
        expr = sp.Float(float(expr))
    root_occ = Occurrence(None, 0)
    if isinstance(expr, sp.MatrixBase):
        raise _reject(expr, root_occ, "matrices are not scalar expressions")
    if not isinstance(expr, sp.Basic):
        raise NotRationalError(
            f"expected a sympy expression, got {type(expr).__name__}; "
            "use zs.parse(text) for strings",
            subexpression=_short(expr),
            path="root",
        )
    memo: dict[sp.Basic, Node] = {}
    occurrences: dict[Node, Occurrence] = {}
    symbols: dict[str, sp.Symbol] = {}
    stack: list[tuple[sp.Basic, Occurrence, bool]] = [(expr, root_occ, False)]
    while stack:
        cur, occ, expanded = stack.pop()
        if cur in memo:
            continue
        if not expanded:
            leaf = _leaf(cur, occ, parameters, constants)
            if leaf is not None:
                if isinstance(cur, sp.Symbol) and leaf.op is not Op.CONST:
                    known = symbols.setdefault(cur.name, cur)
                    if known != cur:
                        raise InvalidArgumentError(
                            f"two different symbols are both named {cur.name!r} "
                            f"({sp.srepr(known)} and {sp.srepr(cur)}); rename one"
                        )
                memo[cur] = leaf
                occurrences.setdefault(leaf, occ)
                continue
            _check_supported(cur, occ)
            stack.append((cur, occ, True))
            children = cur.args[:1] if isinstance(cur, sp.Pow) else cur.args
            for i in range(len(children) - 1, -1, -1):
                child = children[i]
                if child not in memo:
                    stack.append((child, Occurrence(occ, i), False))
            continue
        node = _build(cur, memo)
        memo[cur] = node
        occurrences.setdefault(node, occ)
    root = memo[expr]
    _attach_parents(root, occurrences)
    _check_kinds(symbols, parameters)
    return FrontendResult(root=root, occurrences=occurrences, symbols=symbols)


def _build(cur: sp.Basic, memo: dict[sp.Basic, Node]) -> Node:
    if isinstance(cur, sp.UnevaluatedExpr):
        return memo[cur.args[0]]
    if isinstance(cur, sp.Pow):
        return ir.pow_(
            memo[cur.base],
            int(float_to_fraction(cur.exp)) if isinstance(cur.exp, sp.Float) else int(cur.exp),
        )
    args = tuple(memo[a] for a in cur.args)
    if len(args) == 1:
        return args[0]
    return ir.add(*args) if isinstance(cur, sp.Add) else ir.mul(*args)


def _attach_parents(root: Node, occurrences: dict[Node, Occurrence]) -> None:
    """Record, for each node's first occurrence, the IR node of its parent."""
    from zpml_symbolic.ir.traverse import postorder

    by_occ = {id(occ): n for n, occ in occurrences.items()}
    for node in postorder(root):
        occ = occurrences.get(node)
        if occ is None:
            continue
        parent_node = by_occ.get(id(occ.parent)) if occ.parent is not None else None
        occurrences[node] = Occurrence(occ.parent, occ.index, node, parent_node)


def _check_kinds(symbols: dict[str, sp.Symbol], parameters: frozenset[object]) -> None:
    for item in parameters:
        name = item.name if isinstance(item, sp.Symbol) else item
        if not isinstance(name, str):
            raise InvalidArgumentError(f"parameters must be sympy Symbols or names, got {item!r}")


def to_sympy(root: Node) -> sp.Expr:
    """The IR as an *unevaluated* sympy tree (structure preserved).

    ``from_sympy(to_sympy(n)).root is n`` for every IR node ``n``.
    """
    from zpml_symbolic.ir.traverse import postorder

    out: dict[Node, sp.Expr] = {}
    for node in postorder(root):
        op = node.op
        if op is Op.VAR:
            out[node] = sp.Symbol(str(node.value))
        elif op is Op.PARAM:
            from zpml_symbolic.frontend.coefficient import Coefficient

            out[node] = Coefficient(str(node.value))
        elif op is Op.CONST:
            value = node.value
            assert isinstance(value, Fraction)
            out[node] = sp.Rational(value.numerator, value.denominator)
        elif op is Op.POW:
            exponent = node.value
            assert isinstance(exponent, int)
            out[node] = sp.Pow(out[node.args[0]], sp.Integer(exponent), evaluate=False)
        elif op is Op.ADD:
            out[node] = sp.Add(*(out[a] for a in node.args), evaluate=False)
        else:
            out[node] = sp.Mul(*(out[a] for a in node.args), evaluate=False)
    return out[root]


__all__ = ["FrontendResult", "Occurrence", "float_to_fraction", "from_sympy", "to_sympy"]
