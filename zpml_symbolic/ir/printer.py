"""Readable text for IR nodes.

:func:`to_text` prints one expression in infix form (``(x**2 + 1)/(x - y)``).
It renders top-down with an explicit stack and stops as soon as
``max_chars`` is reached, so a capped print costs time proportional to its
output, not to the size of the (possibly huge, shared) DAG.
:func:`format_dag` prints a DAG with every shared subexpression shown once as
a numbered binding (``%3 = x - y``), then the root in terms of the bindings.
"""

from __future__ import annotations

from fractions import Fraction

from zpml_symbolic.ir.node import Node, Op
from zpml_symbolic.ir.traverse import parent_counts, postorder

ADD, MUL, NEG, POW, ATOM = 1, 2, 3, 4, 5
ELLIPSIS = "…"

Piece = str | tuple[Node, int]  # literal text, or (node, minimum precedence without parens)


def _is_neg_one(node: Node) -> bool:
    return node.op is Op.CONST and node.value == -1


def precedence(node: Node, names: dict[Node, str] | None = None) -> int:
    """Binding strength of the text of ``node`` (higher binds tighter)."""
    if names and node in names:
        return ATOM
    op = node.op
    if op is Op.ADD:
        return ADD
    if op is Op.MUL:
        return NEG if _is_neg_one(node.args[0]) else MUL
    if op is Op.POW:
        return POW if isinstance(node.value, int) and node.value >= 0 else MUL
    if op is Op.CONST:
        value = node.value
        assert isinstance(value, Fraction)
        if value < 0:
            return NEG
        return ATOM if value.denominator == 1 else MUL
    return ATOM


#: Integers with more digits are printed as an exact sum of chunks times powers
#: of ten (``d0*10**3000 + d1``) that the parser reads back (its literals are
#: limited to 4000 digits); powers of two print as ``2**k``.
MAX_PLAIN_DIGITS = 4000
_CHUNK_DIGITS = 3000
#: Python refuses ``str(int)`` beyond 4300 digits (``sys.set_int_max_str_digits``);
#: below this bit length ``str`` is always allowed.
_STR_SAFE_BITS = 13_000


def int_digits(n: int) -> str:
    """Exact decimal digits of any int, without Python's int-to-str digit limit."""
    if n.bit_length() < _STR_SAFE_BITS:
        return str(n)
    sign = "-" if n < 0 else ""
    n = abs(n)
    try:
        import flint

        return sign + str(flint.fmpz(n))
    except ImportError:  # pragma: no cover - flint is a declared dependency
        pass
    chunks: list[str] = []  # pragma: no cover
    base = 10**1000  # pragma: no cover
    while n:  # pragma: no cover
        n, r = divmod(n, base)
        chunks.append(str(r).zfill(1000))
    return sign + "".join(reversed(chunks)).lstrip("0")  # pragma: no cover


def int_text(n: int) -> str:
    """Exact text of an int that :func:`zpml_symbolic.parse` reads back, however large."""
    if n.bit_length() < _STR_SAFE_BITS:
        return str(n)
    if n < 0:
        return f"-({int_text(-n)})"
    if n & (n - 1) == 0:
        return f"2**{n.bit_length() - 1}"
    digits = int_digits(n)
    if len(digits) <= MAX_PLAIN_DIGITS:
        return digits
    first = len(digits) % _CHUNK_DIGITS or _CHUNK_DIGITS
    parts = [digits[:first]] + [
        digits[i : i + _CHUNK_DIGITS] for i in range(first, len(digits), _CHUNK_DIGITS)
    ]
    terms = []
    for k, chunk in enumerate(parts):
        power = _CHUNK_DIGITS * (len(parts) - 1 - k)
        value = chunk.lstrip("0") or "0"
        if value != "0":
            terms.append(f"{value}*10**{power}" if power else value)
    return " + ".join(terms)


def _const_text(value: Fraction) -> str:
    num, den = value.numerator, value.denominator
    if num.bit_length() < _STR_SAFE_BITS and den.bit_length() < _STR_SAFE_BITS:
        return str(num) if den == 1 else f"{num}/{den}"
    num_text = int_text(num)
    if " " in num_text or "*" in num_text or num_text.startswith("-("):
        num_text = f"({num_text})"
    if den == 1:
        return num_text
    den_text = int_text(den)
    return f"{num_text}/({den_text})"


def _wrap(node: Node, need: int, names: dict[Node, str] | None) -> list[Piece]:
    if precedence(node, names) < need:
        return ["(", (node, ADD), ")"]
    return [(node, need)]


def _product(args: tuple[Node, ...], names: dict[Node, str] | None) -> list[Piece]:
    out: list[Piece] = []
    numer = [
        a
        for a in args
        if (names and a in names)
        or not (a.op is Op.POW and isinstance(a.value, int) and a.value < 0)
    ]
    denom = [a for a in args if a not in numer]
    if numer and _is_neg_one(numer[0]) and len(args) > 1:
        out.append("-")
        numer = numer[1:]
        if not numer:
            out.append("1")
    for i, a in enumerate(numer):
        if i:
            out.append("*")
        out += _wrap(a, MUL if i == 0 else NEG, names)
    if not numer and not out:
        out.append("1")
    for d in denom:
        assert isinstance(d.value, int)  # a POW node's value is its int exponent
        k = -d.value
        out.append("/")
        if k == 1:
            out += _wrap(d.args[0], POW, names)
        else:
            out += _wrap(d.args[0], ATOM, names) + [f"**{k}"]
    return out


def _pieces(node: Node, names: dict[Node, str] | None) -> list[Piece]:
    op = node.op
    if op in (Op.VAR, Op.PARAM):
        return [str(node.value)]
    if op is Op.CONST:
        assert isinstance(node.value, Fraction)
        return [_const_text(node.value)]
    if op is Op.POW:
        n = node.value
        assert isinstance(n, int)
        base = node.args[0]
        if n >= 0:
            return _wrap(base, ATOM, names) + [f"**{n}"]
        if n == -1:
            return ["1/"] + _wrap(base, POW, names)
        return ["1/"] + _wrap(base, ATOM, names) + [f"**{-n}"]
    if op is Op.MUL:
        return _product(node.args, names)
    out: list[Piece] = []
    for i, arg in enumerate(node.args):
        if i == 0:
            out += _wrap(arg, ADD, names)
        elif arg.op is Op.MUL and _is_neg_one(arg.args[0]) and not (names and arg in names):
            rest = arg.args[1:]
            out.append(" - ")
            if len(rest) == 1:
                out += _wrap(rest[0], MUL, names)
            else:
                out += _product(rest, names)
        elif arg.op is Op.CONST and isinstance(arg.value, Fraction) and arg.value < 0:
            out.append(" - " + _const_text(-arg.value))
        else:
            out.append(" + ")
            out += _wrap(arg, ADD + 1, names)
    return out


def to_text(
    root: Node, *, max_chars: int | None = None, names: dict[Node, str] | None = None
) -> str:
    """Infix text of ``root``; longer results are cut at ``max_chars`` with ``…``.

    ``names`` maps nodes to names printed in their place (used by :func:`format_dag`).
    """
    parts: list[str] = []
    length = 0
    stack: list[Piece] = [(root, ADD)]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            parts.append(item)
            length += len(item)
            if max_chars is not None and length > max_chars:
                return "".join(parts)[: max_chars - 1] + ELLIPSIS
            continue
        node, _need = item
        if names and node in names and node is not root:
            stack.append(names[node])
            continue
        stack.extend(reversed(_pieces(node, names)))
    return "".join(parts)


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


__all__ = ["format_dag", "int_digits", "int_text", "precedence", "to_text"]
