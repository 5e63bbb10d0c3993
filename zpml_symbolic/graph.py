"""Export the IR DAG and the provenance as a ``networkx.MultiDiGraph``."""

from __future__ import annotations

import networkx as nx

from zpml_symbolic.flatten.fru import FlattenedFRU
from zpml_symbolic.ir.node import Node
from zpml_symbolic.ir.printer import to_text
from zpml_symbolic.ir.traverse import postorder


def to_networkx(obj: FlattenedFRU | Node, *, max_label_chars: int = 60) -> nx.MultiDiGraph:
    """A MultiDiGraph of the expression DAG (edges parent -> argument, keyed and
    attributed by argument ``index``, so ``x*x`` has two edges).

    IR nodes are keyed ``"n{id}"`` (ids as in provenance ``node_id``) with
    attributes ``op``, ``value``, ``label``. For a :class:`FlattenedFRU`,
    every provenance entry adds a node ``"factor{k}"`` (attributes ``factor``,
    ``kind``, ``retained``) with an edge (key and ``kind``: ``provenance``) from each
    division node that contributes it.
    """
    root = obj.root if isinstance(obj, FlattenedFRU) else obj
    order = postorder(root)
    ids = {n: i for i, n in enumerate(order)}
    g = nx.MultiDiGraph()
    for node in order:
        g.add_node(
            f"n{ids[node]}",
            op=node.op.value,
            value=None if node.value is None else str(node.value),
            label=to_text(node, max_chars=max_label_chars),
            kind="ir",
        )
        for i, arg in enumerate(node.args):
            g.add_edge(f"n{ids[node]}", f"n{ids[arg]}", key=i, index=i, kind="arg")
    if isinstance(obj, FlattenedFRU):
        for k, src in enumerate(obj.denominator_provenance):
            key = f"factor{k}"
            g.add_node(
                key,
                factor=str(src.factor),
                kind="factor",
                source_kind=src.kind,
                retained=src.retained,
                label=str(src.factor),
            )
            for occ in src.occurrences:
                g.add_edge(
                    f"n{occ.node_id}",
                    key,
                    key="provenance",
                    kind="provenance",
                    source_kind=occ.kind,
                    path=occ.path,
                )
    return g


__all__ = ["to_networkx"]
