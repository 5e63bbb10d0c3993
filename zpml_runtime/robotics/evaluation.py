"""Per-bucket accuracy, bottom precision/recall and route rates for IK predictions."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from zpml_runtime.errors import ShapeMismatchError
from zpml_runtime.robotics.dataset import BUCKET_LABELS, IKDataset

__all__ = ["bucket_table", "prediction_errors"]


def prediction_errors(pred: np.ndarray, target: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-row absolute error (mean over the joints) and relative error ``||e|| / ||y||``.

    Rows whose target is not finite (bottom labels) or whose prediction is not
    finite get NaN in both: they are counted by the bottom/route metrics, not here.
    """
    pred = np.asarray(pred, dtype=np.float64)
    target = np.asarray(target, dtype=np.float64)
    if pred.shape != target.shape or pred.ndim != 2:
        raise ShapeMismatchError(
            f"predictions {tuple(pred.shape)} and targets {tuple(target.shape)} must both be [n, joints]"
        )
    ok = np.isfinite(pred).all(axis=1) & np.isfinite(target).all(axis=1)
    err = np.where(ok[:, None], pred - target, np.nan)
    abs_err = np.abs(err).mean(axis=1)
    norm = np.linalg.norm(np.where(ok[:, None], target, np.nan), axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        rel = np.linalg.norm(err, axis=1) / norm
    rel = np.where(norm == 0, np.where(np.linalg.norm(err, axis=1) == 0, 0.0, np.inf), rel)
    return abs_err, rel


def _stat(values: np.ndarray, fn: Any) -> float | None:
    v = values[np.isfinite(values)]
    return float(fn(v)) if v.size else None


def bucket_table(
    data: IKDataset,
    predictions: Mapping[str, np.ndarray],
    *,
    accepted: Mapping[str, np.ndarray] | None = None,
    bottom_mask: np.ndarray | None = None,
    route_masks: Mapping[str, np.ndarray] | None = None,
    bottom_masks: Mapping[str, np.ndarray] | None = None,
) -> list[dict[str, Any]]:
    """One row per ``|det J|`` bucket with the metrics of every named predictor.

    ``predictions[name]`` is ``[n, joints]``; ``accepted[name]`` (default: all rows)
    selects the rows a predictor's accuracy is measured on (for the strict model:
    rows it did not flag bottom). ``bottom_mask`` gives bottom precision/recall
    against the exactly singular rows; ``route_masks`` the route rate per policy;
    ``bottom_masks[name]`` the bottom precision/recall of other named predictors
    (keys ``name.bottom_precision`` and ``name.bottom_recall`` of the ``"all"`` row).
    """
    rows: list[dict[str, Any]] = []
    n = len(data)
    shape = tuple(data.targets.shape)
    for name, pred in predictions.items():
        if np.asarray(pred).shape != shape:
            raise ShapeMismatchError(
                f"predictions[{name!r}] must be {list(shape)}, got {list(np.asarray(pred).shape)}"
            )
    errors = {k: prediction_errors(v, data.targets) for k, v in predictions.items()}
    for b, label in enumerate(BUCKET_LABELS):
        sel = data.bucket == b
        row: dict[str, Any] = {"bucket": label, "n": int(sel.sum())}
        for name, (mae, rel) in errors.items():
            acc = (
                sel
                if accepted is None or name not in accepted
                else sel & np.asarray(accepted[name])
            )
            row[f"{name}.n_scored"] = int((acc & np.isfinite(mae)).sum())
            row[f"{name}.mae"] = _stat(mae[acc], np.mean)
            row[f"{name}.median_rel_err"] = _stat(rel[acc], np.median)
        if bottom_mask is not None:
            bm = np.asarray(bottom_mask, dtype=bool)
            row["bottom_rate"] = float(bm[sel].mean()) if sel.any() else None
        if route_masks is not None:
            for policy, rm in route_masks.items():
                rm = np.asarray(rm, dtype=bool)
                row[f"route_rate.{policy}"] = float(rm[sel].mean()) if sel.any() else None
        rows.append(row)
    masks = {"": bottom_mask} if bottom_mask is not None else {}
    masks.update({f"{k}.": v for k, v in (bottom_masks or {}).items()})
    if masks:
        total: dict[str, Any] = {"bucket": "all", "n": n, "n_singular": int(data.singular.sum())}
        for prefix, mask in masks.items():
            total.update({prefix + k: v for k, v in _precision_recall(mask, data.singular).items()})
        rows.append(total)
    return rows


def _precision_recall(mask: np.ndarray, truth: np.ndarray) -> dict[str, Any]:
    bm = np.asarray(mask, dtype=bool)
    tp = int((bm & truth).sum())
    pred_pos, real_pos = int(bm.sum()), int(truth.sum())
    return {
        "bottom_precision": tp / pred_pos if pred_pos else None,
        "bottom_recall": tp / real_pos if real_pos else None,
        "n_bottom": pred_pos,
    }
