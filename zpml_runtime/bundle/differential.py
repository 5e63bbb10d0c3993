"""The numpy program of a compiled bundle: a bit-exact reference at any input.

The ONNX graph and :class:`zpml_symbolic.emit.backends.numpy_emit.NumpyEvaluator` run
the same program (the same operations in the same order, each rounded once,
IEEE arithmetic in both), and decode with the same strict kernel, so on every
input they agree bit for bit: masks, provenance, ``decoded`` and the factor
values. That makes the numpy program a reference where exact recomputation
cannot decide (full-precision random floats, huge and tiny magnitudes,
points inside the tau band), used by :mod:`zpml_runtime.bundle.semantic` as
part of the second line of defence.

The reference is built from the metadata (the re-flattened expression, the
recorded variables, parameters and thresholds), never from the graph.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import numpy as np

from zpml_runtime.bundle.errors import BundleError
from zpml_runtime.bundle.metadata import BundleMetadata

Reference = Callable[[np.ndarray], dict[str, np.ndarray]]


def program_references(metadata: dict[str, Any], frus: list[Any]) -> list[Reference]:
    """Per output (one for a single-output bundle), ``x -> {output name: array}`` in the
    names of that output's single-expression view."""
    from zpml_symbolic.emit.backends.numpy_emit import NumpyEvaluator
    from zpml_symbolic.emit.lowering.plan import coefficient_values, make_plan
    from zpml_symbolic.errors import ZeroProofError

    info = BundleMetadata.parse(metadata)
    opts = info.emitter.options if info.emitter is not None else {}
    prefix = str(opts.get("prefix", "structural_validity_factor"))
    params = dict(info.parameters)
    config = info.inference_config.config()
    exprs = info.expressions
    taus = [list(e["validity_taus"]) for e in exprs] if exprs else [list(info.validity_taus)]
    try:
        plan = make_plan(frus, variables=list(info.input.variables))
        coefficients = coefficient_values(plan, params)
    except (ZeroProofError, ValueError, TypeError) as e:
        raise BundleError(f"no numpy reference: {str(e).splitlines()[0][:200]}") from e
    refs = []
    for k in range(len(frus)):
        view = _expression_plan(plan, k) if len(frus) > 1 else plan
        evaluator = NumpyEvaluator(view, coefficients, config, taus[k])
        refs.append(_reference(evaluator, prefix))
    return refs


def _expression_plan(plan: Any, k: int) -> Any:
    """Expression ``k`` of a joint plan, over the same program (shared instructions keep
    their values, so the reference computes exactly what the joint graph computes)."""
    return dataclasses.replace(
        plan,
        frus=(plan.frus[k],),
        names=(plan.names[k],),
        gauges=(plan.gauges[k],) if plan.gauges else (),
        q_leaves=(plan.q_leaves[k],) if plan.q_leaves else (),
        q_taps=(plan.q_taps[k],) if plan.q_taps else (),
    )


def _reference(evaluator: Any, prefix: str) -> Reference:
    def run(x: np.ndarray) -> dict[str, np.ndarray]:
        with np.errstate(all="ignore"):
            result = evaluator(np.ascontiguousarray(x))
        return {k: np.asarray(v) for k, v in result.as_dict(prefix).items()}

    return run


def bits_equal(got: np.ndarray, want: np.ndarray) -> np.ndarray:
    """Per element: the same value bit for bit (any NaN equals any NaN), as a bool array."""
    got, want = np.asarray(got), np.asarray(want)
    if got.dtype.kind != "f" or want.dtype.kind != "f":
        return got == want.astype(got.dtype, copy=False)
    if got.dtype != want.dtype:
        return np.zeros(np.broadcast_shapes(got.shape, want.shape), dtype=bool)
    nan_g, nan_w = np.isnan(got), np.isnan(want)
    width = {4: np.uint32, 8: np.uint64}[got.dtype.itemsize]
    same = got.view(width) == want.view(width)
    return (nan_g & nan_w) | (~nan_g & ~nan_w & same)


def mismatched_rows(
    got: dict[str, np.ndarray], want: dict[str, np.ndarray], limit: int = 8
) -> list[tuple[int, str, Any, Any]]:
    """``(row, output, got, want)`` for the first ``limit`` rows where an output value
    differs (the first differing output of each row)."""
    bad: dict[int, tuple[int, str, Any, Any]] = {}
    for name, w in want.items():
        g = got.get(name)
        if g is None or np.shape(g) != np.shape(w):
            return [(-1, name, None if g is None else np.shape(g), np.shape(w))]
        eq = bits_equal(g, w)
        rows = (
            np.flatnonzero(~eq.reshape(len(eq), -1).all(axis=1))
            if eq.ndim
            else np.empty(0, dtype=np.intp)
        )
        for row in rows[:limit]:
            bad.setdefault(int(row), (int(row), name, g[row].tolist(), w[row].tolist()))
    return [bad[r] for r in sorted(bad)[:limit]]


__all__ = ["Reference", "bits_equal", "mismatched_rows", "program_references"]
