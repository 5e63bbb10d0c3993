"""Back-ends: numpy reference, torch module, strict evaluator, ONNX graph.

All of them consume one :class:`~zpml_symbolic.emit.lowering.program.Program` lowered
from the FRU's division-free IR (see :mod:`zpml_symbolic.emit.lowering.plan`).
"""

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover - for type checkers and IDEs only
    from zpml_symbolic.emit.backends.numpy_emit import NumpyEvaluator, numpy_evaluator
    from zpml_symbolic.emit.backends.torch_emit import RationalModule, lift_float_literals, to_torch
    from zpml_symbolic.emit.onnx_emit import to_onnx
    from zpml_symbolic.emit.strict import BottomExplanation, StrictEvaluator, strict_evaluator

#: back-end modules are imported on first use (numpy_emit needs no torch, onnx_emit needs onnx)
_HOME = {
    "NumpyEvaluator": "backends.numpy_emit",
    "numpy_evaluator": "backends.numpy_emit",
    "to_onnx": "onnx_emit",
    "BottomExplanation": "strict",
    "StrictEvaluator": "strict",
    "strict_evaluator": "strict",
    "RationalModule": "backends.torch_emit",
    "lift_float_literals": "backends.torch_emit",
    "to_torch": "backends.torch_emit",
}


#: the names this package exports lazily (the top-level ``zpml_symbolic`` forwards them)
LAZY_NAMES = frozenset(_HOME)


def __getattr__(name: str) -> Any:
    home = _HOME.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"zpml_symbolic.emit.{home}"), name)
    globals()[name] = value
    return value


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
