"""Underflow of a product is not an exact zero: classification shared by every back end.

Every back end evaluates ``Q`` as a *product of its factors* (the structural
IR of :attr:`FlattenedFRU.denominator_ir`, regauged by :mod:`..lowering.gauge`): a tree
of multiplications and integer powers over constants and *leaves* (the
irreducible factors, each a sum in Horner form or an input column). A
mathematical product is zero only if one of its factors is, so where the
evaluated ``Q`` is ``0`` but no leaf evaluates to ``0``, the zero came from
floating-point underflow (``m*q**2`` with ``m = 9.1e-31``, ``q = 1.6e-19`` in
float32), not from a division by zero of the user's tree. Such a sample is a
*fault* (a floating-point failure, like overflow; docs/semantics.md section 3),
not a semantic bottom: ``fault_mask`` is set and ``Q`` contributes nothing to
``semantic_bottom_mask`` there (its true magnitude is unknown, so neither
``Q == 0`` nor ``|Q| < tau_infer`` can be decided); the validity factors still
decide their own semantic masks.

Where it applies: ``Q`` (one zero test per leaf, evaluated only at the samples
where ``Q == 0``, so batches without such samples pay one test of the semantic
mask). A validity factor ``V_i`` is a single irreducible factor, not a
product, so a ``V_i`` that rounds or underflows to 0 inside its own sums and
products (``x**2 + y**2`` at ``x = y = 1e-30`` in float32) is still taken as an
exact zero; evaluate in a wider ``compute_dtype`` where that matters.

This module also holds the narrowing step of ``compute_dtype`` (P, Q, V
evaluated in a wider dtype, ``decoded`` cast to the input dtype at the end,
a cast that overflows is a fault) and the dtype resolution shared by the torch
and numpy back ends.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from fractions import Fraction
from typing import Any

import numpy as np

from zpml_symbolic.emit.lowering.interpreter import OperatorInterpreter, column
from zpml_symbolic.emit.lowering.program import Program
from zpml_symbolic.errors import InvalidArgumentError

__all__ = [
    "apply_underflow",
    "narrow_decoded",
    "numpy_underflow",
    "resolve_numpy_dtype",
    "resolve_torch_dtype",
    "torch_leaf_values",
    "TorchEagerInterpreter",
    "wider_numpy",
    "wider_torch",
]


# --------------------------------------------------------------------------- dtypes

_TORCH_RANK: dict[str, int] = {"float16": 0, "bfloat16": 0, "float32": 1, "float64": 2}


def resolve_torch_dtype(compute_dtype: Any) -> Any:
    """``compute_dtype`` checked for the torch back ends: None, torch.float32 or torch.float64."""
    import torch

    if compute_dtype is None or compute_dtype in (torch.float32, torch.float64):
        return compute_dtype
    raise InvalidArgumentError(
        f"compute_dtype must be None (compute in the input's dtype), torch.float32 or "
        f"torch.float64, got {compute_dtype!r}; e.g. compute_dtype=torch.float64 for "
        "SI-sized inputs in float32"
    )


def resolve_numpy_dtype(compute_dtype: Any) -> np.dtype | None:
    """``compute_dtype`` checked for numpy/ONNX: None, ``"float32"``/``"float64"`` or a numpy dtype."""
    if compute_dtype is None:
        return None
    try:
        dt = np.dtype(compute_dtype)
    except TypeError:
        dt = None
    if dt is None or dt.name not in ("float32", "float64") or isinstance(compute_dtype, bool):
        raise InvalidArgumentError(
            f"compute_dtype must be None (compute in the input's dtype), 'float32' or "
            f"'float64', got {compute_dtype!r}; e.g. compute_dtype='float64' for SI-sized "
            "inputs in float32"
        )
    return dt


def wider_torch(dtype: Any, compute_dtype: Any) -> Any:
    """The dtype ``P, Q, V`` are evaluated in: the wider of the input's and ``compute_dtype``."""
    if compute_dtype is None:
        return dtype
    a = _TORCH_RANK.get(str(dtype).removeprefix("torch."), 0)
    b = _TORCH_RANK[str(compute_dtype).removeprefix("torch.")]
    return compute_dtype if b > a else dtype


def wider_numpy(dtype: np.dtype, compute_dtype: np.dtype | None) -> np.dtype:
    """numpy version of :func:`wider_torch`."""
    if compute_dtype is None or dtype.itemsize >= compute_dtype.itemsize:
        return dtype
    return compute_dtype


# --------------------------------------------------------------------------- torch leaves


def torch_leaf_values(program: Program, x: Any, params: Sequence[Any]) -> list[Any]:
    """The outputs of ``program`` (a :func:`~zpml_symbolic.emit.lowering.taps.leaf_program`) on the torch input ``x``.

    Same operations and roundings as the emitted graphs on mask inputs (``a + c*b``
    rounded twice, constants rounded to the dtype by torch), so zero tests agree
    with numpy and ONNX bit for bit.
    """
    values = TorchEagerInterpreter(program, x, params).run()
    return [values[i] for i in program.outputs.values()]


@column("torch_eager")
class TorchEagerInterpreter(OperatorInterpreter[Any]):
    """The program evaluated eagerly on a torch input ``x`` (``params``: one 0-d tensor per
    parameter), with the emitted graphs' operations on mask inputs."""

    def __init__(self, program: Program, x: Any, params: Sequence[Any]) -> None:
        super().__init__(program)
        self.x, self.params = x, params

    def input(self, column: int) -> Any:
        return self.x[..., column]

    def param(self, index: int) -> Any:
        return self.params[index].to(self.x.dtype)

    def const(self, value: Fraction) -> Any:
        return float(value)

    def scale(self, a: Any, c: Fraction) -> Any:
        return a * float(c)

    def shift(self, a: Any, c: Fraction) -> Any:
        f = float(c)
        return a - (-f) if f < 0 else a + f

    def axpy(self, a: Any, b: Any, c: Fraction) -> Any:
        return a + b * float(c)


# --------------------------------------------------------------------------- result patches


def _any(mask: Any) -> bool:
    import torch

    if isinstance(mask, torch.Tensor):
        return bool(mask.numel()) and bool(mask.view(torch.uint8).max())
    return bool(np.any(mask))


def apply_underflow(result: Any, under: Any) -> Any:
    """``result`` with the samples of ``under`` (Q underflowed to 0) turned into faults.

    ``fault |= under``; at ``under`` samples the semantic mask keeps only the
    validity factors' verdicts; ``bottom = fault | semantic``. ``decoded`` is
    already NaN there (the sample was bottom), ``gap`` already False.
    """
    import torch

    fs = result.factor_semantic_masks
    if isinstance(under, torch.Tensor):
        factor_sem = torch.zeros_like(under)
        for s in fs:
            factor_sem = factor_sem | s
        fault = result.fault_mask | under
        semantic = (result.semantic_bottom_mask & ~under) | (under & factor_sem)
    else:
        factor_sem = np.zeros_like(under)
        for s in fs:
            factor_sem = factor_sem | s
        fault = np.asarray(result.fault_mask | under)
        semantic = np.asarray((result.semantic_bottom_mask & ~under) | (under & factor_sem))
    return dataclasses.replace(
        result, fault_mask=fault, semantic_bottom_mask=semantic, bottom_mask=fault | semantic
    )


def narrow_decoded(result: Any, dtype: Any, *, check: bool = True) -> Any:
    """``result`` with ``decoded`` cast to ``dtype``; samples where the cast overflows are faults.

    ``check=False`` (compiled/traced graphs) always applies the masks (no data-dependent branch).
    """
    import torch

    d = result.decoded
    narrow: Any
    over: Any
    if isinstance(d, torch.Tensor):
        if d.dtype == dtype:
            return result
        narrow = d.to(dtype)
        over = torch.isinf(narrow)
        if check and not _any(over):
            return dataclasses.replace(result, decoded=narrow)
        narrow = narrow.masked_fill(over, float("nan"))
    else:
        if d.dtype == dtype:
            return result
        with np.errstate(over="ignore"):
            narrow = np.asarray(d.astype(dtype))
        over = np.isinf(narrow)
        if not over.any():
            return dataclasses.replace(result, decoded=narrow)
        narrow[over] = np.nan
    fault = result.fault_mask | over
    return dataclasses.replace(
        result,
        decoded=narrow,
        fault_mask=fault,
        bottom_mask=result.bottom_mask | over,
        gap_mask=result.gap_mask & ~over,
    )


def numpy_underflow(
    result: Any, Q: np.ndarray, leaf_values: Callable[[tuple[np.ndarray, ...]], Sequence[Any]]
) -> Any:
    """Numpy: ``result`` with the underflow samples turned into faults; ``leaf_values(rows)``
    gives the values of ``Q``'s factors at ``rows`` (only called where ``Q == 0``)."""
    if not np.any(result.semantic_bottom_mask):
        return result
    cand = np.asarray(result.semantic_bottom_mask & (Q == 0))
    if not cand.any():
        return result
    rows = np.nonzero(cand)
    leaves = leaf_values(rows)
    nonzero = np.ones(len(rows[0]), dtype=bool)
    for v in leaves:
        nonzero &= np.asarray(v) != 0
    under = np.zeros_like(cand)
    under[tuple(r[nonzero] for r in rows)] = True
    if not under.any():
        return result
    return apply_underflow(result, under)
