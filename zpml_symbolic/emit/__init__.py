"""Back-ends: numpy reference, torch module, strict evaluator, ONNX graph.

All of them consume one :class:`~zpml_symbolic.emit.lowering.program.Program` lowered
from the FRU's division-free IR (see :mod:`zpml_symbolic.emit.lowering.plan`).
"""

from typing import TYPE_CHECKING

from zpml_core._lazy import lazy_exports

if TYPE_CHECKING:  # pragma: no cover - for type checkers and IDEs only
    from zpml_symbolic.emit.backends.numpy_emit import NumpyEvaluator, numpy_evaluator
    from zpml_symbolic.emit.backends.onnx.emit import to_onnx
    from zpml_symbolic.emit.backends.strict import (
        BottomExplanation,
        StrictEvaluator,
        strict_evaluator,
    )
    from zpml_symbolic.emit.backends.torch_emit import RationalModule, lift_float_literals, to_torch

#: back-end modules are imported on first use (numpy_emit needs no torch, the onnx back end needs onnx)
_HOME = {
    "NumpyEvaluator": "zpml_symbolic.emit.backends.numpy_emit",
    "numpy_evaluator": "zpml_symbolic.emit.backends.numpy_emit",
    "to_onnx": "zpml_symbolic.emit.backends.onnx.emit",
    "BottomExplanation": "zpml_symbolic.emit.backends.strict",
    "StrictEvaluator": "zpml_symbolic.emit.backends.strict",
    "strict_evaluator": "zpml_symbolic.emit.backends.strict",
    "RationalModule": "zpml_symbolic.emit.backends.torch_emit",
    "lift_float_literals": "zpml_symbolic.emit.backends.torch_emit",
    "to_torch": "zpml_symbolic.emit.backends.torch_emit",
}

#: the names this package exports lazily (the top-level ``zpml_symbolic`` forwards them)
LAZY_NAMES = frozenset(_HOME)

__getattr__, __dir__ = lazy_exports(__name__, _HOME, globals())


__all__ = [
    "BottomExplanation",
    "NumpyEvaluator",
    "RationalModule",
    "StrictEvaluator",
    "lift_float_literals",
    "numpy_evaluator",
    "strict_evaluator",
    "to_onnx",
    "to_torch",
]
