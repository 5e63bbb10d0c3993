"""The records a reference run writes: ``inference_summary.json`` and the strict-inference audit."""

from __future__ import annotations

from typing import Any

import numpy as np

from zpml_runtime.robotics.config import BUNDLE_ID, ReferenceRoboticsDeploymentConfig
from zpml_runtime.robotics.fit_step import FittedModels

__all__ = ["inference_summary", "strict_inference_audit"]


def inference_summary(
    cfg: ReferenceRoboticsDeploymentConfig,
    arm: Any,
    *,
    splits: tuple[Any, Any, Any],
    models: FittedModels,
    mlp: Any,
    choice: Any,
    inference_config: Any,
    strict: Any,
    smoke_report: Any,
    bundle_warnings: list[str],
    report: Any,
    table: Any,
    timings: dict[str, float],
) -> dict[str, Any]:
    """The run's headline record (schema ``zpml.reference_robotics.inference_summary/2``)."""
    train, calib, test = splits
    template, history = models.template, models.history
    return {
        "schema": "zpml.reference_robotics.inference_summary/2",
        "config": cfg.to_dict(),
        "arm": {
            "type": type(arm).__name__,
            **{k: getattr(arm, k) for k in ("l1", "l2", "l3") if hasattr(arm, k)},
        },
        "n_rows": {"train": len(train), "calibration": len(calib), "test": len(test)},
        "deployed": cfg.variant,
        "generic_fit": models.generic.to_dict(),
        "template": None
        if template is None
        else {
            "epochs": len(history),
            "final_train_loss": history[-1]["train_loss"],
            "final_val_loss": history[-1].get("val_loss"),
            "coefficients": template.link_lengths(),
        },
        "mlp": None
        if mlp is None
        else {"hidden": cfg.hidden, "lbfgs_iterations": cfg.baseline_iterations},
        "calibration": {k: v for k, v in choice.to_dict().items() if not k.endswith("_sweep")},
        "inference_config": inference_config.to_metadata(),
        "rates": strict.monitor.rates(),
        "smoke_test_passed": bool(getattr(smoke_report, "passed", True)),
        "bundle_warnings": bundle_warnings,
        "report_smoke_test": report.summary.get("reference_smoke_test")
        if isinstance(getattr(report, "summary", None), dict)
        else None,
        "buckets": table,
        "timings_s": timings,
    }


def strict_inference_audit(test: Any, strict: Any) -> dict[str, Any]:
    """Which test rows were bottom, gap, truly singular and routed to the fallback, and why."""
    result = strict.result
    return {
        "schema": "zpml.reference_robotics.strict_inference_audit/1",
        "bundle_id": BUNDLE_ID,
        "n_test_rows": len(test),
        "bottom_rows": np.flatnonzero(strict.bottom_row),
        "gap_rows": np.flatnonzero(strict.gap_row),
        "true_singular_rows": np.flatnonzero(test.singular),
        "route_rows": {
            "bottom": np.flatnonzero(strict.route_bottom),
            "bottom_or_gap": np.flatnonzero(strict.route_gap),
        },
        "bottom_provenance_counts": {
            str(k): int(v)
            for k, v in zip(
                *np.unique(np.asarray(result.bottom_provenance), return_counts=True), strict=True
            )
        },
        "monitor_state": strict.monitor.export_state(
            include_histograms=True, include_batch_summaries=True
        ),
    }
