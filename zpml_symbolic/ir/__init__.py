"""The IR: interned expression DAG, traversal, verifier, printer, networkx export."""

from zpml_symbolic.ir.node import LEAF_OPS, Node, Op, add, const, intern, inv, mul, param, pow_, var
from zpml_symbolic.ir.printer import format_dag, to_text
from zpml_symbolic.ir.traverse import node_ids, parent_counts, postorder
from zpml_symbolic.ir.verify import verify

__all__ = [
    "LEAF_OPS",
    "Node",
    "Op",
    "add",
    "const",
    "format_dag",
    "intern",
    "inv",
    "mul",
    "node_ids",
    "param",
    "parent_counts",
    "postorder",
    "pow_",
    "to_text",
    "var",
    "verify",
]
