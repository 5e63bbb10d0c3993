"""The compiled expression tree as JSON: what a bundle's graph is reproduced from.

The expression text of a bundle is for people; printing and parsing it back
need not give the same tree (``1/10**40*x`` re-parses as ``x/10**40``, a
division by a constant that overflows float32), and the emitted program
follows the tree. So compiled bundles also record the tree itself:
``fru.ir = {"nodes": [[op, value, [argument indices]], ...], "root": k}``,
children before parents, each distinct node once. Values: variable and
parameter names, exact ``"p/q"`` constants, integer exponents.

:func:`load_ir` rebuilds the (interned) IR node from that JSON with checks
only (no evaluation of text as code) and raises :class:`BundleError` naming
the first malformed entry.
"""

from __future__ import annotations

from fractions import Fraction
from typing import Any

from zpml_runtime.bundle.errors import BundleError

#: the most nodes a recorded tree may have (a bundle's metadata is at most 64 MiB anyway)
MAX_IR_NODES = 1_000_000
_OPS = ("var", "param", "const", "add", "mul", "pow")


def dump_ir(root: Any) -> dict[str, Any]:
    """``root`` (an IR node) as ``{"nodes": [...], "root": index}``."""
    from zpml_symbolic.ir.node import Op
    from zpml_symbolic.ir.traverse import postorder

    index: dict[int, int] = {}
    nodes: list[list[Any]] = []
    for node in postorder(root):
        if id(node) in index:
            continue
        args = [index[id(a)] for a in node.args]
        if node.op is Op.CONST:
            assert isinstance(node.value, Fraction | int)  # Op.CONST carries a rational
            value: Any = f"{node.value.numerator}/{node.value.denominator}"
        elif node.op is Op.POW:
            assert isinstance(node.value, int)  # Op.POW carries its integer exponent
            value = int(node.value)
        elif node.op in (Op.VAR, Op.PARAM):
            value = str(node.value)
        else:
            value = None
        index[id(node)] = len(nodes)
        nodes.append([node.op.value, value, args])
    return {"nodes": nodes, "root": index[id(root)]}


def _bad(k: int, entry: Any, why: str) -> BundleError:
    return BundleError(f"metadata fru.ir.nodes[{k}] = {entry!r:.80} is malformed: {why}")


def load_ir(data: Any) -> Any:
    """The IR node recorded by :func:`dump_ir` (checked entry by entry)."""
    from zpml_symbolic.ir import node as ir

    if not isinstance(data, dict) or not isinstance(data.get("nodes"), list):
        raise BundleError(
            "metadata fru.ir must be an object with a 'nodes' list and a 'root' index"
        )
    raw = data["nodes"]
    if not raw or len(raw) > MAX_IR_NODES:
        raise BundleError(f"metadata fru.ir has {len(raw)} nodes (1 to {MAX_IR_NODES} allowed)")
    built: list[Any] = []
    for k, entry in enumerate(raw):
        if not (isinstance(entry, list) and len(entry) == 3 and entry[0] in _OPS):
            raise _bad(k, entry, f"expected [op, value, [arguments]] with op in {_OPS}")
        op, value, args = entry
        if not isinstance(args, list) or not all(
            isinstance(a, int) and not isinstance(a, bool) and 0 <= a < k for a in args
        ):
            raise _bad(k, entry, "arguments must be indices of earlier nodes")
        children = [built[a] for a in args]
        if op in ("var", "param"):
            if args or not isinstance(value, str) or not value:
                raise _bad(k, entry, "a variable or parameter has a name and no arguments")
            built.append(ir.var(value) if op == "var" else ir.param(value))
        elif op == "const":
            if args or not isinstance(value, str):
                raise _bad(k, entry, "a constant is an exact 'p/q' string with no arguments")
            try:
                built.append(ir.const(Fraction(value)))
            except (ValueError, ZeroDivisionError) as e:
                raise _bad(k, entry, "not an exact rational 'p/q'") from e
        elif op == "pow":
            if len(children) != 1 or isinstance(value, bool) or not isinstance(value, int):
                raise _bad(k, entry, "a power has one argument and an integer exponent")
            built.append(ir.pow_(children[0], value))
        else:
            if len(children) < 2 or value is not None:
                raise _bad(k, entry, "a sum or product has at least two arguments and no value")
            built.append(ir.add(*children) if op == "add" else ir.mul(*children))
    root = data.get("root")
    if isinstance(root, bool) or not isinstance(root, int) or not 0 <= root < len(built):
        raise BundleError(f"metadata fru.ir.root {root!r:.40} is not the index of a node")
    return built[root]


__all__ = ["MAX_IR_NODES", "dump_ir", "load_ir"]
