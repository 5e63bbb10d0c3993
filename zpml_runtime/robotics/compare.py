"""Every predictor of one run on the same test rows: values, bottom masks and the bucket table."""

from __future__ import annotations

from typing import Any

import numpy as np

from zpml_runtime.robotics.dataset import IKDataset
from zpml_runtime.robotics.evaluation import bucket_table

__all__ = ["compare_predictors", "rational_values"]


def rational_values(model: Any, inputs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(P/Q [n, k], bottom [n])`` of a ``(P, Q[, V])`` model: its own values, no threshold.

    A row is bottom when ``Q`` or a validity factor is exactly 0 on any output.
    """
    import torch

    with torch.no_grad():
        out = model(torch.as_tensor(inputs, dtype=torch.float64))
    P, Q = out[0].numpy(), out[1].numpy()
    zero = Q == 0
    factors = out[2] if len(out) > 2 and out[2] is not None else []
    for V in factors if isinstance(factors, list | tuple) else [factors]:
        v = V.numpy()
        zero = zero | (v.reshape(v.shape[0], -1) == 0).any(axis=1, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        value = P / Q
    return value, zero.reshape(zero.shape[0], -1).any(axis=1)


def compare_predictors(
    test: IKDataset,
    strict: Any,
    deployed: Any,
    *,
    generic: Any,
    template: Any | None,
    mlp: Any | None,
    solver: Any,
) -> list[dict[str, Any]]:
    """The per-bucket table of the deployed model (strict, through the bundle) and the same-run comparisons.

    Columns: ``model`` (strict output, accepted rows), ``model_unmasked`` (its own
    values everywhere), ``model+dls_on_bottom`` / ``model+dls_on_bottom_or_gap``
    (fallback routed), ``generic`` and ``template`` (their own values,
    bottom where ``Q == 0`` exactly), ``mlp``, ``dls`` (the solver alone) and
    ``predict_zero``.
    """
    from zpml_runtime.robotics.baselines import predict_mlp

    unmasked, _ = rational_values(deployed, test.inputs)
    predictions: dict[str, np.ndarray] = {
        "model": strict.decoded,
        "model_unmasked": unmasked,
        "model+dls_on_bottom": strict.routed_bottom,
        "model+dls_on_bottom_or_gap": strict.routed_gap,
    }
    bottom_masks: dict[str, np.ndarray] = {}
    for name, m in (("generic", generic), ("template", template)):
        if m is not None:
            predictions[name], bottom_masks[name] = rational_values(m, test.inputs)
    if mlp is not None:
        predictions["mlp"] = predict_mlp(mlp, test.inputs)
    predictions["dls"] = solver(test.inputs)
    predictions["predict_zero"] = np.zeros_like(test.targets)
    return bucket_table(
        test,
        predictions,
        accepted={"model": ~strict.bottom_row},
        bottom_mask=strict.bottom_row,
        route_masks={"bottom": strict.route_bottom, "bottom_or_gap": strict.route_gap},
        bottom_masks=bottom_masks,
    )
