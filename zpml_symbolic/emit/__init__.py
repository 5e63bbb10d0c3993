"""Back-ends: numpy reference, torch module, strict evaluator, ONNX graph.

All of them consume one :class:`~zpml_symbolic.emit.program.Program` lowered
from the FRU's division-free IR (see :mod:`zpml_symbolic.emit.plan`).
"""

from zpml_symbolic.emit.numpy_emit import NumpyEvaluator, numpy_evaluator
from zpml_symbolic.emit.onnx_emit import to_onnx
from zpml_symbolic.emit.strict import BottomExplanation, StrictEvaluator, strict_evaluator
from zpml_symbolic.emit.torch_emit import RationalModule, lift_float_literals, to_torch

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
