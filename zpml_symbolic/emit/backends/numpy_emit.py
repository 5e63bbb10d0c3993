"""Program -> numpy: the floating-point reference back-end.

Runs the same :class:`~zpml_symbolic.emit.lowering.program.Program` as the torch and
ONNX back-ends, instruction by instruction, in the input's dtype, and decodes
with the runtime's numpy strict kernel. Differential tests compare it with
exact evaluation, torch and onnxruntime.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from fractions import Fraction
from typing import Any

import numpy as np
import sympy as sp

from zpml_symbolic.emit.analyses.underflow import (
    narrow_decoded,
    numpy_underflow,
    resolve_numpy_dtype,
    wider_numpy,
)
from zpml_symbolic.emit.backends.inputs import check_numpy_input
from zpml_symbolic.emit.lowering.interpreter import OperatorInterpreter, column
from zpml_symbolic.emit.lowering.ops import OPERATIONS
from zpml_symbolic.emit.lowering.plan import (
    Plan,
    check_constants,
    coefficient_values,
    make_plan,
    scaled_config,
    scaled_taus,
)
from zpml_symbolic.errors import InvalidArgumentError
from zpml_symbolic.flatten.coerce import as_frus
from zpml_symbolic.flatten.fru import FlattenedFRU


@column("numpy")
class NumpyInterpreter(OperatorInterpreter[Any]):
    """The program on a numpy input ``x`` in dtype ``dt``: one array (or 0-d scalar of ``dt``)
    per instruction, constants rounded once to ``dt``."""

    def __init__(
        self, program: Any, x: np.ndarray, coefficients: Mapping[str, float], dt: np.dtype
    ) -> None:
        super().__init__(program)
        self.x, self.coefficients, self.dt = x, coefficients, dt

    def _c(self, c: Fraction) -> Any:
        return self.dt.type(float(c))

    def input(self, column: int) -> Any:
        return self.x[..., column]

    def param(self, index: int) -> Any:
        return self.dt.type(self.coefficients[self.program.parameters[index]])

    def const(self, value: Fraction) -> Any:
        return self._c(value)

    def scale(self, a: Any, c: Fraction) -> Any:
        return self._c(c) * a

    def shift(self, a: Any, c: Fraction) -> Any:
        return a + self._c(c)

    def axpy(self, a: Any, b: Any, c: Fraction) -> Any:
        return a + self._c(c) * b


#: op -> numpy implementation (the operations of the ``numpy`` column)
NUMPY_OPS: dict[str, Callable[..., Any]] = {
    op: getattr(NumpyInterpreter, op.value) for op in OPERATIONS
}


def run_values(
    plan: Plan, x: np.ndarray, coefficients: Mapping[str, float], dtype: np.dtype | None = None
) -> list[Any]:
    """The value of every instruction of ``plan.program`` on ``x`` (in ``dtype``, default ``x.dtype``)."""
    check_numpy_input(x, plan.variables, "numpy evaluator")
    dt = x.dtype if dtype is None else np.dtype(dtype)
    if dt != x.dtype:
        x = x.astype(dt)
    with np.errstate(all="ignore"):
        return NumpyInterpreter(plan.program, x, coefficients, dt).run()


def run_program(
    plan: Plan,
    x: np.ndarray,
    coefficients: Mapping[str, float],
    *,
    dtype: np.dtype | str | None = None,
) -> dict[str, np.ndarray]:
    """Evaluate every program output on ``x`` (shape ``[*batch, n_vars]``) in ``dtype``
    (default ``x.dtype``)."""
    dt = x.dtype if dtype is None else np.dtype(dtype)
    values = run_values(plan, x, coefficients, dt)
    batch = x.shape[:-1]
    return {
        name: np.broadcast_to(np.asarray(values[i], dtype=dt), batch).copy()
        for name, i in plan.program.outputs.items()
    }


class NumpyEvaluator:
    """Strict float evaluation of one FRU in numpy (the reference back-end).

    ``evaluate(x) -> (P, Q, V)`` with ``V`` of shape ``[..., k]``;
    ``__call__(x)`` returns the runtime's ``StrictInferenceResult`` (same
    outputs as the torch strict evaluator and the ONNX graph). With
    ``compute_dtype`` wider than ``x.dtype``, ``P, Q, V`` (and the factor values
    of the result) are in ``compute_dtype`` and ``decoded`` is cast back to
    ``x.dtype`` (a cast that overflows is a fault).
    """

    def __init__(
        self,
        plan: Plan,
        coefficients: Mapping[str, float],
        config: Any,
        validity_taus: float | Sequence[float],
        compute_dtype: np.dtype | None = None,
    ) -> None:
        self.plan = plan
        self.coefficients = dict(coefficients)
        self.config = config
        self.validity_taus = validity_taus
        self.compute_dtype = compute_dtype
        self._dtypes_checked: set[np.dtype] = set()

    @property
    def fru(self) -> FlattenedFRU:
        """The compiled FRU."""
        return self.plan.frus[0]

    def _values(self, x: np.ndarray) -> tuple[list[Any], np.dtype]:
        check_numpy_input(x, self.plan.variables, "numpy evaluator")
        dt = wider_numpy(x.dtype, self.compute_dtype)
        if dt not in self._dtypes_checked:
            check_constants(self.plan, str(dt))
            self._dtypes_checked.add(dt)
        return run_values(self.plan, x, self.coefficients, dt), dt

    def evaluate(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``P, Q, V`` in the emitted gauge (``V`` is ``[..., k]``, k may be 0): the canonical
        one unless ``plan.gauge(0)`` says otherwise (see :mod:`zpml_symbolic.emit.lowering.gauge`)."""
        values, dt = self._values(x)
        return self._pqv(values, x.shape[:-1], dt)

    def _pqv(
        self, values: list[Any], batch: tuple[int, ...], dt: np.dtype
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        out = self.plan.program.outputs

        def full(name: str) -> np.ndarray:
            return np.broadcast_to(np.asarray(values[out[name]], dtype=dt), batch).copy()

        names = self.plan.names[0]
        V = np.stack([full(n) for n in names.V], axis=-1) if names.V else np.zeros(batch + (0,), dt)
        return full(names.P), full(names.Q), V

    def __call__(self, x: np.ndarray) -> Any:
        from zpml_core.config import InferenceConfig
        from zpml_core.strict import strict_inference

        values, dt = self._values(x)
        P, Q, V = self._pqv(values, x.shape[:-1], dt)
        factors = [V[..., i] for i in range(V.shape[-1])] or None
        gauge = self.plan.gauge(0)  # thresholds in the emitted gauge (identity unless regauged)
        config = self.config if self.config is not None else InferenceConfig(tau_infer=0.0)
        result = strict_inference(
            P,
            Q,
            config=scaled_config(config, gauge.pq),
            validity_factors=factors,
            validity_taus=scaled_taus(self.validity_taus, gauge.v),
        )
        taps = self.plan.q_taps[0] if self.plan.q_taps else ()
        if taps:  # Q == 0 with no zero factor: underflow, a fault (see :mod:`..analyses.underflow`)
            where = self.plan.program.taps
            batch = x.shape[:-1]

            def leaf_values(rows: tuple[np.ndarray, ...]) -> list[np.ndarray]:
                return [np.broadcast_to(values[where[t]], batch)[rows] for t in taps]

            result = numpy_underflow(result, Q, leaf_values)
        return narrow_decoded(result, x.dtype)


def numpy_evaluator(
    fru_or_expr: FlattenedFRU | sp.Expr | str,
    *,
    config: Any = None,
    validity_taus: float | Sequence[float] = 0.0,
    parameters: Sequence[sp.Symbol | str] = (),
    init: Mapping[Any, float] | None = None,
    variables: Sequence[str | sp.Symbol] | None = None,
    compute_dtype: Any = None,
) -> NumpyEvaluator:
    """Build the numpy reference evaluator of one FRU (coefficients from ``init``).

    ``variables`` fixes the input column order (default: the FRU's variables).
    ``compute_dtype`` (``None``, ``"float32"`` or ``"float64"``): evaluate ``P, Q, V``
    and decide the masks in at least this dtype (see :class:`NumpyEvaluator`).
    """
    wide = resolve_numpy_dtype(compute_dtype)
    frus, _ = as_frus(fru_or_expr, parameters=parameters)
    if len(frus) != 1:
        raise InvalidArgumentError("numpy_evaluator takes one expression")
    plan = make_plan(frus, variables=variables)
    if wide is not None:
        check_constants(plan, str(wide))
    return NumpyEvaluator(plan, coefficient_values(plan, init), config, validity_taus, wide)


__all__ = [
    "NUMPY_OPS",
    "NumpyEvaluator",
    "NumpyInterpreter",
    "numpy_evaluator",
    "run_program",
    "run_values",
]
