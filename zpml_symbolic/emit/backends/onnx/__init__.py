"""The ONNX back end: the program and its strict decoding as an ONNX graph.

Modules: :mod:`.emit` (``to_onnx``, ``emit_onnx_artifact``), :mod:`.decoder`
(``strict_decoder_model``), :mod:`.artifact` (``OnnxArtifact``), :mod:`.metadata`
(the ``zpml.*`` metadata and its readers), and the building blocks :mod:`.graph`,
:mod:`.lowering`, :mod:`.decode`, :mod:`.tiling`, :mod:`.arguments`. Importing it
loads neither torch nor (until a name is used) onnx.
"""

from typing import TYPE_CHECKING

from zpml_core._lazy import lazy_exports

if TYPE_CHECKING:  # pragma: no cover - for type checkers and IDEs only
    from zpml_symbolic.emit.backends.onnx.arguments import DEFAULT_TILE_ROWS, expression_prefixes
    from zpml_symbolic.emit.backends.onnx.artifact import OnnxArtifact
    from zpml_symbolic.emit.backends.onnx.decoder import strict_decoder_model
    from zpml_symbolic.emit.backends.onnx.emit import emit_onnx_artifact, to_onnx
    from zpml_symbolic.emit.backends.onnx.graph import DEFAULT_OPSET, MIN_OPSET, OUTPUT_NAMES
    from zpml_symbolic.emit.backends.onnx.lowering import ONNX_OPS
    from zpml_symbolic.emit.backends.onnx.metadata import (
        check_baked_thresholds,
        read_baked_thresholds,
        read_metadata,
    )

_P = "zpml_symbolic.emit.backends.onnx."
_HOME = {
    "DEFAULT_OPSET": _P + "graph",
    "DEFAULT_TILE_ROWS": _P + "arguments",
    "MIN_OPSET": _P + "graph",
    "ONNX_OPS": _P + "lowering",
    "OUTPUT_NAMES": _P + "graph",
    "OnnxArtifact": _P + "artifact",
    "check_baked_thresholds": _P + "metadata",
    "emit_onnx_artifact": _P + "emit",
    "expression_prefixes": _P + "arguments",
    "read_baked_thresholds": _P + "metadata",
    "read_metadata": _P + "metadata",
    "strict_decoder_model": _P + "decoder",
    "to_onnx": _P + "emit",
}

__getattr__, __dir__ = lazy_exports(__name__, _HOME, globals())

__all__ = [
    "DEFAULT_OPSET",
    "DEFAULT_TILE_ROWS",
    "MIN_OPSET",
    "ONNX_OPS",
    "OUTPUT_NAMES",
    "OnnxArtifact",
    "check_baked_thresholds",
    "emit_onnx_artifact",
    "expression_prefixes",
    "read_baked_thresholds",
    "read_metadata",
    "strict_decoder_model",
    "to_onnx",
]
