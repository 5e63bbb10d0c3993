"""Canonical comparison of two ONNX protos, naming the first difference.

Two models are equal when every field of the parsed protos is equal
(recursively: nodes with their op type, domain, inputs, outputs and
attributes, subgraphs such as a ``Scan`` body, initializers bit for bit,
graph inputs and outputs with their types, opset imports, metadata
properties), independent of how the bytes were serialised. Fields the
protobuf schema does not know (which a reader silently skips) are refused
separately by :func:`has_unknown_fields`.

:func:`first_difference` returns a sentence naming where the models first
differ: the node (index, name, op type and outputs) or the initializer
(name), and what differs in it.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import onnx
from google.protobuf.message import Message
from onnx import numpy_helper

_MAX_VALUE_TEXT = 80


def has_unknown_fields(message: Message) -> bool:
    """True when ``message`` (recursively) carries fields its schema does not define."""
    copy = type(message)()
    copy.CopyFrom(message)
    copy.DiscardUnknownFields()
    return copy.ByteSize() != message.ByteSize()


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= _MAX_VALUE_TEXT else text[: _MAX_VALUE_TEXT - 3] + "..."


def _node_label(node: onnx.NodeProto, index: int, where: str) -> str:
    name = f" {node.name!r}" if node.name else ""
    return f"node #{index}{name} ({node.op_type}, outputs {list(node.output)}) of {where}"


def _tensor_text(tensor: onnx.TensorProto) -> str:
    try:
        arr = numpy_helper.to_array(tensor)
    except Exception:  # noqa: BLE001 - a malformed tensor: describe its bytes instead
        return f"{len(tensor.SerializeToString())} serialised bytes"
    if arr.size <= 4:
        bits = arr.tobytes().hex()
        return f"{arr.dtype}{list(arr.shape)} {arr.tolist()!r} (bits {bits})"
    return f"{arr.dtype}{list(arr.shape)} ({arr.size} values)"


def _tensor_difference(got: onnx.TensorProto, want: onnx.TensorProto) -> str | None:
    """Tensors are compared as values bit for bit and as protos (storage fields too)."""
    try:
        a, b = numpy_helper.to_array(got), numpy_helper.to_array(want)
        if a.dtype != b.dtype or a.shape != b.shape or a.tobytes() != b.tobytes():
            return f"holds {_tensor_text(got)}, expected {_tensor_text(want)}"
    except Exception:  # noqa: BLE001 - fall through to the field comparison
        pass
    return _message_difference(got, want, "")


def _repeated(field: Any) -> bool:
    if hasattr(field, "is_repeated"):
        return bool(field.is_repeated)
    return field.label == field.LABEL_REPEATED  # older protobuf releases


def _message_difference(got: Message, want: Message, path: str) -> str | None:
    """The first differing field of two messages of the same type, as text (or None)."""
    if got == want:
        return None
    for field in want.DESCRIPTOR.fields:
        name = field.name
        a, b = getattr(got, name), getattr(want, name)
        here = f"{path}.{name}" if path else name
        if _repeated(field):
            if field.type == field.TYPE_MESSAGE:
                for i, (x, y) in enumerate(zip(a, b, strict=False)):
                    diff = _message_difference(x, y, f"{here}[{i}]")
                    if diff:
                        return diff
            elif list(a) != list(b):
                for i, (x, y) in enumerate(zip(a, b, strict=False)):
                    if x != y:
                        return f"{here}[{i}] is {_short(x)}, expected {_short(y)}"
            if len(a) != len(b):
                return f"{here} has {len(a)} entries, expected {len(b)}"
        elif field.type == field.TYPE_MESSAGE:
            if got.HasField(name) != want.HasField(name):
                return f"{here} is {'set' if got.HasField(name) else 'missing'}, expected {'set' if want.HasField(name) else 'missing'}"
            diff = _message_difference(a, b, here)
            if diff:
                return diff
        elif a != b:
            return f"{here} is {_short(a)}, expected {_short(b)}"
    return f"{path or 'the message'} differs in its serialised fields"


def _attribute_difference(got: onnx.NodeProto, want: onnx.NodeProto, label: str) -> str | None:
    a = {x.name: x for x in got.attribute}
    b = {x.name: x for x in want.attribute}
    if list(a) != list(b):
        return f"{label}: attributes {list(a)}, expected {list(b)}"
    for name, y in b.items():
        x = a[name]
        if x == y:
            continue
        if y.type == onnx.AttributeProto.GRAPH and x.type == y.type:
            diff = graph_difference(x.g, y.g, f"the {name!r} subgraph of {label}")
            if diff:
                return diff
        if y.type == onnx.AttributeProto.TENSOR and x.type == y.type:
            diff = _tensor_difference(x.t, y.t)
            if diff:
                return f"{label}: attribute {name!r} {diff}"
        diff = _message_difference(x, y, "")
        return f"{label}: attribute {name!r}: {diff}"
    return None


def node_difference(got: onnx.NodeProto, want: onnx.NodeProto, label: str) -> str | None:
    """How node ``got`` differs from ``want`` (``label`` names it), or None."""
    if got == want:
        return None
    for what in ("op_type", "domain"):
        if getattr(got, what) != getattr(want, what):
            return f"{label}: {what} is {getattr(got, what)!r}, expected {getattr(want, what)!r}"
    for what in ("input", "output"):
        a, b = list(getattr(got, what)), list(getattr(want, what))
        if a != b:
            return f"{label}: {what}s are {_short(a)}, expected {_short(b)}"
    diff = _attribute_difference(got, want, label)
    if diff:
        return diff
    diff = _message_difference(got, want, "")
    return f"{label}: {diff}"


def graph_difference(got: onnx.GraphProto, want: onnx.GraphProto, where: str) -> str | None:
    """The first difference between two graphs (nodes first, then initializers, signature)."""
    if got == want:
        return None
    for i, (a, b) in enumerate(zip(got.node, want.node, strict=False)):
        diff = node_difference(a, b, _node_label(b, i, where))
        if diff:
            return diff
    if len(got.node) != len(want.node):
        extra = got.node[len(want.node)] if len(got.node) > len(want.node) else None
        more = (
            f" (the first extra one: {_node_label(extra, len(want.node), where)})" if extra else ""
        )
        return f"{where} has {len(got.node)} nodes, expected {len(want.node)}{more}"
    a_init = {t.name: t for t in got.initializer}
    for i, b in enumerate(want.initializer):
        a = a_init.get(b.name)
        if a is None:
            return f"initializer {b.name!r} of {where} is missing"
        diff = _tensor_difference(a, b)
        if diff:
            return f"initializer {b.name!r} of {where} {diff}"
        if i < len(got.initializer) and got.initializer[i].name != b.name:
            return (
                f"initializer #{i} of {where} is {got.initializer[i].name!r}, expected {b.name!r}"
            )
    if len(got.initializer) != len(want.initializer):
        extra = sorted(set(a_init) - {t.name for t in want.initializer})
        return f"{where} holds initializers {extra[:5]} that the compiler does not emit"
    for what in ("input", "output", "value_info", "sparse_initializer"):
        diff = _message_difference_list(
            getattr(got, what), getattr(want, what), f"graph {what} of {where}"
        )
        if diff:
            return diff
    diff = _message_difference(got, want, "")
    return f"{where}: {diff}"


def _message_difference_list(a: Any, b: Any, label: str) -> str | None:
    for i, (x, y) in enumerate(zip(a, b, strict=False)):
        if x != y:
            name = getattr(y, "name", "")
            return f"{label} #{i} {name!r}: {_message_difference(x, y, '')}"
    if len(a) != len(b):
        return f"{label}: {len(a)} entries, expected {len(b)}"
    return None


def first_difference(got: onnx.ModelProto, want: onnx.ModelProto) -> str | None:
    """Where model ``got`` first differs from ``want`` (a sentence), or None when equal."""
    if got == want:
        return None
    diff = graph_difference(got.graph, want.graph, "the main graph")
    if diff:
        return diff
    if list(got.opset_import) != list(want.opset_import):

        def ops(m: onnx.ModelProto) -> list[tuple[str, int]]:
            return [(o.domain, o.version) for o in m.opset_import]

        return f"opset imports are {ops(got)}, expected {ops(want)}"
    a = [(p.key, p.value) for p in got.metadata_props]
    b = [(p.key, p.value) for p in want.metadata_props]
    if a != b:
        for i, (x, y) in enumerate(zip(a, b, strict=False)):
            if x != y:
                return f"metadata property #{i} is {_short(x)}, expected {_short(y)}"
        return f"the model has {len(a)} metadata properties, expected {len(b)}"
    diff = _message_difference(got, want, "")
    return f"model field {diff}"


def arrays_equal_bits(a: np.ndarray, b: np.ndarray) -> bool:
    """Same dtype, shape and bytes (NaN payloads included)."""
    return a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()


__all__ = [
    "arrays_equal_bits",
    "first_difference",
    "graph_difference",
    "has_unknown_fields",
    "node_difference",
]
