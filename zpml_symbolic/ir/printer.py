"""Readable text for IR nodes.

:func:`to_text` prints one expression in infix form (``(x**2 + 1)/(x - y)``),
capping the length so that huge shared DAGs print in linear time.
:func:`format_dag` prints a DAG with every shared subexpression shown once as
a numbered binding (``%3 = x - y``), then the root in terms of the bindings.
"""

from __future__ import annotations

from fractions import Fraction

from zpml_symbolic.ir.node import Node, Op
from zpml_symbolic.ir.traverse import parent_counts, postorder

_PREC_ADD, _PREC_MUL, _PREC_NEG, _PREC_POW, _PREC_ATOM = 1, 2, 3, 4, 5
ELLIPSIS = "…"


def _const_text(value: Fraction) -> tuple[str, int]:
    if value.denominator == 1:
        return str(value.numerator), (_PREC_ATOM if value >= 0 else _PREC_NEG)
    return f"{value.numerator}/{value.denominator}", _PREC_MUL


def _wrap(text: str, prec: int, need: int) -> str:
    return f"({text})" if prec < need else text


def _cap(text: str, max_chars: int | None) -> str:
    if max_chars is not None and len(text) > max_chars:
        return text[: max_chars - 1] + ELLIPSIS
    return text


class _MulView:
    """A product of some arguments, used only for printing ``a - b*c``."""

    def __init__(self, args: tuple[Node, ...]) -> None:
        self.args = args


def _negated_term(node: Node) -> Node | _MulView | None:
    """If ``node`` is ``-1 * t`` return ``t`` (for printing ``a - t``)."""
    if node.op is Op.MUL and node.args[0].op is Op.CONST and node.args[0].value == -1:
        rest = node.args[1:]
        return rest[0] if len(rest) == 1 else _MulView(rest)
    return None


def _render(
    node: Node,
    texts: dict[Node, tuple[str, int]],
    max_chars: int | None,
) -> tuple[str, int]:
    op = node.op
    if op in (Op.VAR, Op.PARAM):
        return str(node.value), _PREC_ATOM
    if op is Op.CONST:
        assert isinstance(node.value, Fraction)
        return _const_text(node.value)
    if op is Op.POW:
        base_text, base_prec = texts[node.args[0]]
        exponent = node.value
        assert isinstance(exponent, int)
        if exponent < 0:
            power = "" if exponent == -1 else f"**{-exponent}"
            need = _PREC_ATOM if power else _PREC_POW
            return f"1/{_wrap(base_text, base_prec, need + (0 if power else 1))}{power}", _PREC_MUL
        return f"{_wrap(base_text, base_prec, _PREC_ATOM)}**{exponent}", _PREC_POW
    if op is Op.MUL:
        return _render_product(node.args, texts)
    # ADD
    parts: list[str] = []
    for i, arg in enumerate(node.args):
        neg = _negated_term(arg) if i > 0 else None
        if neg is not None:
            text, prec = (
                _render_product(neg.args, texts) if isinstance(neg, _MulView) else texts[neg]
            )
            parts.append(" - " + _wrap(text, prec, _PREC_MUL + 1 if prec <= _PREC_MUL else prec))
            continue
        text, prec = texts[arg]
        if i > 0 and arg.op is Op.CONST and isinstance(arg.value, Fraction) and arg.value < 0:
            parts.append(" - " + _const_text(-arg.value)[0])
        elif i > 0 and text.startswith("-") and prec >= _PREC_MUL:
            parts.append(" - " + text[1:])
        else:
            parts.append((" + " if i > 0 else "") + _wrap(text, prec, _PREC_ADD + 1 if i > 0 else _PREC_ADD))
        if max_chars is not None and sum(map(len, parts)) > max_chars:
            break
    return _cap("".join(parts), max_chars), _PREC_ADD


def _render_product(args: tuple[Node, ...], texts: dict[Node, tuple[str, int]]) -> tuple[str, int]:
    numer: list[str] = []
    denom: list[str] = []
    for arg in args:
        if arg.op is Op.POW and isinstance(arg.value, int) and arg.value < 0:
            base_text, base_prec = texts[arg.args[0]]
            power = "" if arg.value == -1 else f"**{-arg.value}"
            denom.append(_wrap(base_text, base_prec, _PREC_ATOM if power else _PREC_POW) + power)
        else:
            text, prec = texts[arg]
            numer.append(_wrap(text, prec, _PREC_MUL if not numer else _PREC_MUL + 1))
    if numer == ["-1"] and not denom:
        return "-1", _PREC_NEG
    if len(numer) > 1 and numer[0] == "-1":
        numer = ["-" + numer[1]] + numer[2:]
    head = "*".join(numer) if numer else "1"
    if not denom:
        return head, (_PREC_MUL if len(numer) > 1 else _PREC_NEG if head.startswith("-") else _PREC_MUL)
    tail = "/".join(denom)
    return f"{head}/{tail}", _PREC_MUL


def to_text(root: Node, *, max_chars: int | None = None, names: dict[Node, str] | None = None) -> str:
    """Infix text of ``root``; longer results are cut at ``max_chars`` with ``…``.

    ``names`` maps nodes to names printed in their place (used by :func:`format_dag`).
    """
    texts: dict[Node, tuple[str, int]] = {}
    for node in postorder(root):
        if names and node in names and node is not root:
            texts[node] = (names[node], _PREC_ATOM)
            continue
        text, prec = _render(node, texts, max_chars)
        texts[node] = (_cap(text, max_chars), prec)
    return texts[root][0]


def format_dag(root: Node, *, max_chars: int | None = 400) -> str:
    """Print a DAG with each shared non-leaf subexpression bound once as ``%k``."""
    counts = parent_counts(root)
    names: dict[Node, str] = {}
    lines: list[str] = []
    for node in postorder(root):
        if node is root or node.op in (Op.VAR, Op.PARAM, Op.CONST) or counts[node] < 2:
            continue
        name = f"%{len(names)}"
        lines.append(f"{name} = {to_text(node, max_chars=max_chars, names=names)}")
        names[node] = name
    lines.append(to_text(root, max_chars=max_chars, names=names))
    return "\n".join(lines)


__all__ = ["format_dag", "to_text"]
