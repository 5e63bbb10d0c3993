"""The reference robotics deployment: fit/train -> calibrate -> bundle -> strict inference -> fallback -> report.

Each step lives in its own module of :mod:`zpml_runtime.robotics`; this one
runs them in order and writes the run directory (``docs/robotics.md``).
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import numpy as np

from zpml_runtime.errors import InvalidConfigError
from zpml_runtime.robotics.config import (
    BUNDLE_ID,
    ReferenceRoboticsArtifacts,
    ReferenceRoboticsDeploymentConfig,
)

__all__ = ["run_reference_robotics_deployment"]


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
    from zpml_runtime.robotics.fit_step import fit_models
    from zpml_runtime.robotics.run_records import inference_summary, strict_inference_audit

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
    models = fit_models(cfg, train, calib, arm, out, timings)
    deployed = models.deployed

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
    # e.g. a traced bundle loads as "unverified": recorded, not printed
    bundle_warnings: list[str] = []
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
        test,
        strict,
        deployed,
        generic=models.generic.model,
        template=models.template,
        mlp=mlp,
        solver=solver,
    )

    # 7. reports and contract --------------------------------------------------------------
    with recorded_warnings(bundle_warnings):
        report = write_bundle_report(bundle_dir, inputs=np.ascontiguousarray(test.inputs))
    report_paths = tuple(
        sorted(p for p in bundle_dir.iterdir() if p.name.startswith("VALIDATION_REPORT"))
    )
    for p in report_paths:  # listed beside the bundle too
        shutil.copyfile(p, out / p.name)
    summary = inference_summary(
        cfg,
        arm,
        splits=(train, calib, test),
        models=models,
        mlp=mlp,
        choice=choice,
        inference_config=inference_config,
        strict=strict,
        smoke_report=smoke_report,
        bundle_warnings=bundle_warnings,
        report=report,
        table=table,
        timings={**timings, "total_s": time.perf_counter() - t_start},
    )
    summary_path = write_strict_json(out / "inference_summary.json", summary)
    audit = strict_inference_audit(test, strict)
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
        training_log_path=models.training_log,
        loss_curve_path=models.loss_curve,
        events_path=events_path,
        calibration_dir=calibration_dir,
        summary=summary,
    )
