"""The reference robotics deployment: fit/train -> calibrate -> bundle -> strict inference -> fallback -> report.

Each step lives in its own module of :mod:`zpml_runtime.robotics`; this one
runs them in order and writes the run directory (``docs/robotics.md``).
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np

from zpml_runtime.errors import InvalidConfigError
from zpml_runtime.robotics.config import (
    BUNDLE_ID,
    ReferenceRoboticsArtifacts,
    ReferenceRoboticsDeploymentConfig,
)

__all__ = ["run_reference_robotics_deployment"]


def _log_generic_fit(fit: Any, log_path: Path) -> None:
    from zpml_runtime.logging import JsonlLogger

    logger = JsonlLogger(log_path)
    for trial in fit.trials:
        logger.log({"event": "degree_candidate", **trial.to_dict()})
    logger.log(
        {"event": "generic_fit", **{k: v for k, v in fit.to_dict().items() if k != "trials"}}
    )


def _plot_degree_search(fit: Any, path: Path) -> Path:
    from zpml_runtime.robotics.training import plot_curve

    xs = list(range(1, len(fit.trials) + 1))
    title = "degrees " + ", ".join(
        f"[{t.numerator_degree}/{t.denominator_degree}]" for t in fit.trials
    )
    return plot_curve(
        xs,
        {"calibration median rel. error": [t.calibration_median_rel_err for t in fit.trials]},
        path,
        title=title,
        xlabel="candidate (numerator/denominator degree)",
        ylabel="median relative error",
    )


def _plot_history(history: list[dict[str, Any]], path: Path, title: str) -> Path:
    from zpml_runtime.robotics.training import plot_curve

    return plot_curve(
        [h["epoch"] for h in history],
        {
            "train": [h["train_loss"] for h in history],
            "calibration split": [h.get("val_loss") for h in history],
        },
        path,
        title=title,
        xlabel="epoch",
        ylabel="loss",
    )


def run_reference_robotics_deployment(
    config: ReferenceRoboticsDeploymentConfig | None = None,
) -> ReferenceRoboticsArtifacts:
    """Run the whole pipeline and write its artifacts; see ``docs/robotics.md``."""
    import torch

    from zpml_runtime.bundle.report import write_bundle_report
    from zpml_runtime.inference import InferenceConfig
    from zpml_runtime.metrics import write_tau_infer_sweep
    from zpml_runtime.robotics.arm import DLSSolver
    from zpml_runtime.robotics.artifacts import prepare_output_dir, write_strict_json
    from zpml_runtime.robotics.baselines import train_mlp_baseline
    from zpml_runtime.robotics.calibration import calibrate_model
    from zpml_runtime.robotics.compare import compare_predictors
    from zpml_runtime.robotics.contract import write_output_contract
    from zpml_runtime.robotics.dataset import IKDatasetConfig, generate_ik_dataset
    from zpml_runtime.robotics.deploy import export_validated_bundle, recorded_warnings, run_strict
    from zpml_runtime.robotics.generic import fit_generic_head
    from zpml_runtime.robotics.training import train_template

    cfg = ReferenceRoboticsDeploymentConfig() if config is None else config
    if not isinstance(cfg, ReferenceRoboticsDeploymentConfig):
        raise InvalidConfigError(
            f"config must be a ReferenceRoboticsDeploymentConfig or None, got {type(cfg).__name__}"
        )
    t_start = time.perf_counter()
    out = Path(cfg.output_dir)
    prepare_output_dir(out, cfg.overwrite)
    torch.manual_seed(cfg.seed)
    timings: dict[str, float] = {}

    # 1. data --------------------------------------------------------------------------------
    arm = cfg.make_arm()
    data = generate_ik_dataset(
        IKDatasetConfig(
            n_samples=cfg.n_samples,
            seed=cfg.seed,
            label_mode=cfg.label_mode,
            exact_singular_share=cfg.exact_singular_share,
            near_singular_share=cfg.near_singular_share,
            damping=cfg.damping,
            arm=arm,
        )
    )
    train, calib, test = data.split((0.6, 0.2, 0.2), seed=cfg.seed)

    # 2. the generic head (always) and the template (2-link), in the same run -----------------
    training_log = out / "training_log.jsonl"
    t0 = time.perf_counter()
    generic = fit_generic_head(train, calib, arm)
    timings["generic_fit_s"] = time.perf_counter() - t0
    _log_generic_fit(generic, training_log)
    degree_plot = _plot_degree_search(generic, out / "degree_search.svg")
    template, history = None, list[dict[str, Any]]()
    if cfg.has_template:
        t0 = time.perf_counter()
        template, history = train_template(
            train,
            calib,
            label_mode=cfg.label_mode,
            epochs=cfg.epochs,
            batch_size=cfg.batch_size,
            learning_rate=cfg.effective_learning_rate,
            seed=cfg.seed,
            device=cfg.device,
            log_path=training_log,
            progress=cfg.progress,
        )
        timings["template_train_s"] = time.perf_counter() - t0
        template_plot = _plot_history(
            history, out / "loss_curve.svg", f"template, {cfg.label_mode} labels"
        )
    deployed = generic.model if cfg.variant == "generic" else template
    loss_curve = degree_plot if cfg.variant == "generic" else template_plot

    # 3. calibrate -------------------------------------------------------------------------
    choice = calibrate_model(
        deployed,
        calib,
        max_unsafe_accept_rate=cfg.max_unsafe_accept_rate,
        accuracy_tolerance=cfg.accuracy_tolerance,
        gap_tolerance=cfg.gap_tolerance,
    )
    calibration_dir = out / "tau_calibration"
    write_tau_infer_sweep(
        calibration_dir,
        choice.infer_sweep,
        provenance={"split": "calibration", "rule": choice.rule},
    )
    inference_config = InferenceConfig(tau_infer=choice.tau_infer, tau_train=choice.tau_train)

    # 4. bundle, 5. strict inference through the bundle runtime + fallback + monitor ----------
    t0 = time.perf_counter()
    bundle_dir = out / "bundle"
    bundle_warnings: list[
        str
    ] = []  # e.g. a traced bundle loads as "unverified": recorded, not printed
    with recorded_warnings(bundle_warnings):
        _, smoke_report = export_validated_bundle(
            deployed, inference_config, test, bundle_dir, BUNDLE_ID
        )
    timings["bundle_s"] = time.perf_counter() - t0
    solver = DLSSolver(arm=arm, damping=cfg.damping)
    events_path = out / "strict_inference_events.jsonl"
    with recorded_warnings(bundle_warnings):
        strict = run_strict(bundle_dir, test, solver, events_path, BUNDLE_ID)

    # 6. baselines and the per-bucket table, all on the same test rows ------------------------
    t0 = time.perf_counter()
    mlp = (
        train_mlp_baseline(
            train, arm, hidden=cfg.hidden, iterations=cfg.baseline_iterations, seed=cfg.seed + 1
        )
        if cfg.baseline_iterations > 0
        else None
    )
    timings["mlp_train_s"] = time.perf_counter() - t0
    table = compare_predictors(
        test, strict, deployed, generic=generic.model, template=template, mlp=mlp, solver=solver
    )

    # 7. reports and contract --------------------------------------------------------------
    with recorded_warnings(bundle_warnings):
        report = write_bundle_report(bundle_dir, inputs=np.ascontiguousarray(test.inputs))
    report_paths = tuple(
        sorted(p for p in bundle_dir.iterdir() if p.name.startswith("VALIDATION_REPORT"))
    )
    for p in report_paths:  # listed beside the bundle too
        shutil.copyfile(p, out / p.name)
    summary = {
        "schema": "zpml.reference_robotics.inference_summary/2",
        "config": cfg.to_dict(),
        "arm": {
            "type": type(arm).__name__,
            **{k: getattr(arm, k) for k in ("l1", "l2", "l3") if hasattr(arm, k)},
        },
        "n_rows": {"train": len(train), "calibration": len(calib), "test": len(test)},
        "deployed": cfg.variant,
        "generic_fit": generic.to_dict(),
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
        "timings_s": {**timings, "total_s": time.perf_counter() - t_start},
    }
    summary_path = write_strict_json(out / "inference_summary.json", summary)
    result = strict.result
    audit = {
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
    audit_path = write_strict_json(out / "strict_inference_audit.json", audit)
    contract = write_output_contract(out, [p for p in out.rglob("*") if p.is_file()])
    return ReferenceRoboticsArtifacts(
        output_dir=out,
        bundle_dir=bundle_dir,
        bundle_model_path=bundle_dir / "model.onnx",
        inference_summary_path=summary_path,
        strict_inference_audit_path=audit_path,
        output_contract_path=contract,
        validation_report_paths=tuple(out / p.name for p in report_paths),
        training_log_path=training_log,
        loss_curve_path=loss_curve,
        events_path=events_path,
        calibration_dir=calibration_dir,
        summary=summary,
    )
