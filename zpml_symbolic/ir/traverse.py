"""Iterative traversals of the IR DAG (no recursion, so depth is unbounded)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from zpml_symbolic.ir.node import Node


def postorder(roots: Node | Iterable[Node]) -> list[Node]:
    """Every node reachable from ``roots`` once, children before parents.

    The order is deterministic: depth-first, arguments left to right.
    """
    root_list = [roots] if isinstance(roots, Node) else list(roots)
    seen: set[int] = set()
    order: list[Node] = []
    for root in root_list:
        if id(root) in seen:
            continue
        stack: list[tuple[Node, int]] = [(root, 0)]
        seen.add(id(root))
        while stack:
            node, i = stack[-1]
            if i < len(node.args):
                stack[-1] = (node, i + 1)
                child = node.args[i]
                if id(child) not in seen:
                    seen.add(id(child))
                    stack.append((child, 0))
            else:
                stack.pop()
                order.append(node)
    return order


def parent_counts(roots: Node | Iterable[Node]) -> dict[Node, int]:
    """How many argument slots refer to each node (roots count one extra use)."""
    order = postorder(roots)
    counts: dict[Node, int] = {n: 0 for n in order}
    for node in order:
        for child in node.args:
            counts[child] += 1
    for root in [roots] if isinstance(roots, Node) else roots:
        counts[root] += 1
    return counts


def node_ids(roots: Node | Iterable[Node]) -> dict[Node, int]:
    """Stable integer ids: the position of each node in :func:`postorder`."""
    return {n: i for i, n in enumerate(postorder(roots))}


def iter_divisions(roots: Node | Iterable[Node]) -> Iterator[Node]:
    """The division nodes (``POW`` with negative exponent), in postorder."""
    return (n for n in postorder(roots) if n.is_division)


__all__ = ["iter_divisions", "node_ids", "parent_counts", "postorder"]
