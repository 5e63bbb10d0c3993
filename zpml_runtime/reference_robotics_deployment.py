"""The reference robotics deployment: train -> calibrate -> bundle -> strict inference -> fallback -> report.

Differential IK of a planar 2-link arm (:mod:`zpml_runtime.robotics`), whose
inverse Jacobian has a real singularity (``det J = l1*l2*sin(theta2) = 0``).
Run it as::

    python -m zpml_runtime.reference_robotics_deployment --device cpu --epochs 2 --n-samples 6000
    python scripts/reference_robotics_deployment.py --device cpu --epochs 2 --n-samples 6000

or from Python (seed 000's call shape)::

    from zpml_runtime.reference_robotics_deployment import (
        ReferenceRoboticsDeploymentConfig, run_reference_robotics_deployment)
    artifacts = run_reference_robotics_deployment(
        ReferenceRoboticsDeploymentConfig(device="cpu", epochs=2, n_samples=6000))
    print(artifacts.bundle_model_path)

Every artifact is listed with its sha256 in ``output_contract.json``;
:func:`load_reference_robotics_artifacts` verifies them before reading. See
``docs/robotics.md``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import shutil
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np

from zpml_runtime.errors import InvalidConfigError, ZeroProofRuntimeError
from zpml_runtime.robotics.contract import (
    CONTRACT_FILE,
    ArtifactIntegrityError,
    verify_output_contract,
    write_output_contract,
)

__all__ = [
    "ReferenceRoboticsArtifacts",
    "ReferenceRoboticsDeploymentConfig",
    "load_reference_robotics_artifacts",
    "main",
    "run_reference_robotics_deployment",
]

DEFAULT_OUTPUT_DIR = "results/reference_deploy_robotics"
BUNDLE_ID = "robotics_rr_ik_v1"
#: relative tolerance of the bundle-vs-torch smoke test on ``decoded`` (see the comment at its use)
SMOKE_RTOL = 1e-6


@dataclasses.dataclass(frozen=True)
class ReferenceRoboticsDeploymentConfig:
    """Settings of one reference run (defaults: the seed's ``--epochs 2 --n-samples 6000``)."""

    device: str = "cpu"
    epochs: int = 2
    n_samples: int = 6000
    seed: int = 0
    output_dir: str | os.PathLike[str] = DEFAULT_OUTPUT_DIR
    overwrite: bool = False
    #: ``"inverse"``: exact inverse-Jacobian labels (bottom at det J = 0); ``"dls"``: damped least squares
    label_mode: Literal["inverse", "dls"] = "inverse"
    #: ``"template"``: compiled symbolic template; ``"mlp_rational"``: MLP backbone + rational head
    variant: Literal["template", "mlp_rational"] = "template"
    batch_size: int = 32
    #: Adam's learning rate (cosine-decayed to 0 over the run); ``None``: for the template 0.1 with
    #: inverse labels, 0.01 with DLS labels (that template is more nonlinear in its coefficients);
    #: 3e-3 for the MLP + rational head
    learning_rate: float | None = None
    hidden: int = 64
    exact_singular_share: float = 0.05
    near_singular_share: float = 0.4
    damping: float = 1e-2
    max_unsafe_accept_rate: float = 0.0
    accuracy_tolerance: float = 1e-2
    gap_tolerance: float = 1e-3
    #: epochs of the plain-MLP baseline (default: ``epochs``)
    baseline_epochs: int | None = None
    progress: bool = False

    def __post_init__(self) -> None:
        for name in ("epochs", "n_samples", "batch_size", "hidden"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise InvalidConfigError(f"ReferenceRoboticsDeploymentConfig.{name} must be an integer >= 1, got {v!r}")
        if self.baseline_epochs is not None and (
            isinstance(self.baseline_epochs, bool) or not isinstance(self.baseline_epochs, int) or self.baseline_epochs < 1
        ):
            raise InvalidConfigError(f"baseline_epochs must be an integer >= 1 or None, got {self.baseline_epochs!r}")
        if self.label_mode not in ("inverse", "dls"):
            raise InvalidConfigError(f"label_mode must be 'inverse' or 'dls', got {self.label_mode!r}")
        if self.variant not in ("template", "mlp_rational"):
            raise InvalidConfigError(f"variant must be 'template' or 'mlp_rational', got {self.variant!r}")
        if self.device != "cpu" and not self.device.startswith("cuda"):
            raise InvalidConfigError(f"device must be 'cpu' or 'cuda[:N]', got {self.device!r}")
        lr = self.learning_rate
        if lr is not None and (not isinstance(lr, int | float) or not math.isfinite(lr) or lr <= 0):
            raise InvalidConfigError(f"learning_rate must be a finite number > 0 or None, got {lr!r}")

    @property
    def effective_learning_rate(self) -> float:
        """``learning_rate``, or the label mode's default when it is ``None``."""
        if self.learning_rate is not None:
            return float(self.learning_rate)
        if self.variant == "mlp_rational":
            return 3e-3
        return 0.1 if self.label_mode == "inverse" else 0.01

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready view (paths as strings)."""
        d = dataclasses.asdict(self)
        d["output_dir"] = str(self.output_dir)
        return d


@dataclasses.dataclass(frozen=True)
class ReferenceRoboticsArtifacts:
    """Paths of everything a run wrote, plus its headline numbers."""

    output_dir: Path
    bundle_dir: Path
    bundle_model_path: Path
    inference_summary_path: Path
    strict_inference_audit_path: Path
    output_contract_path: Path
    validation_report_paths: tuple[Path, ...]
    training_log_path: Path
    loss_curve_path: Path
    events_path: Path
    calibration_dir: Path
    summary: dict[str, Any]


def _prepare_output_dir(path: Path, overwrite: bool) -> None:
    if path.exists() and not path.is_dir():
        raise InvalidConfigError(f"output_dir {path} exists and is not a directory")
    if path.is_dir() and any(path.iterdir()):
        if not overwrite:
            raise InvalidConfigError(
                f"output_dir {path} is not empty; pass overwrite=True (--overwrite) to replace its contents"
            )
        if not (path / CONTRACT_FILE).is_file():
            raise InvalidConfigError(
                f"output_dir {path} is not empty and is not a previous reference run (no {CONTRACT_FILE}); "
                "refusing to delete it even with overwrite=True"
            )
        shutil.rmtree(path)
    path.mkdir(parents=True, exist_ok=True)


def _strict_json(path: Path, obj: Any) -> Path:
    from zpml_runtime.logging import dumps_strict

    path.write_text(dumps_strict(obj, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return path


def ik_training_loss(outputs: Any, targets: Any) -> Any:
    """The inverse-Jacobian template's loss: :func:`~zpml_runtime.losses.cross_product_loss`.

    The template fixes its own gauge (``Q = l1*s2``, ``l1*l2*s2``), so the
    gauge-keeping cross product makes the fit a well-conditioned least-squares
    problem in the link lengths. The scale-invariant
    :func:`~zpml_runtime.losses.implicit_loss` stalls in the narrow valley
    ``l1 == l2`` that the rows near ``theta2 = pi`` carve out (measured: median
    relative error 3e-2..5e-2 after 2-10 epochs; even a 1e-3 share of it moves
    ``l1, l2`` off by 1e-2). Bottom targets ``(+-1, 0)`` train ``Q`` towards 0;
    rows outside the loss mask are excluded.
    """
    from zpml_runtime.inference import split_model_outputs
    from zpml_runtime.losses import cross_product_loss

    P, Q, _ = split_model_outputs(outputs)
    y_n, y_d = targets
    return cross_product_loss(P, Q, y_n, y_d, mask=getattr(targets, "loss_mask", None))


#: weight of the scale-invariant implicit term in the DLS template's loss
IMPLICIT_WEIGHT = 1e-3


def dls_training_loss(outputs: Any, targets: Any) -> Any:
    """The DLS template's loss: ``cross_product_loss + IMPLICIT_WEIGHT * implicit_loss``.

    Its gauge is fixed too (``Q = det(J J^T + lam^2 I)``), but the cross product
    weighs a row by its ``|Q|``, so the rows near the singularity, the only ones
    that determine the damping ``lam``, hardly count; a small implicit term,
    which weighs every row alike, pins ``lam`` down (measured, 2 epochs: median
    relative error about 1e-5 in every bucket with it, 2e-4 to 6e-2 without).
    """
    from zpml_runtime.inference import split_model_outputs
    from zpml_runtime.losses import implicit_loss

    P, Q, _ = split_model_outputs(outputs)
    y_n, y_d = targets
    mask = getattr(targets, "loss_mask", None)
    return ik_training_loss(outputs, targets) + IMPLICIT_WEIGHT * implicit_loss(P, Q, y_n, y_d, mask=mask)


def free_gauge_training_loss(outputs: Any, targets: Any) -> Any:
    """The MLP + rational head's loss: the scale-invariant :func:`~zpml_runtime.losses.implicit_loss`.

    A head whose ``(P, Q)`` has a free scale would minimise the gauge-keeping
    cross product by shrinking ``(P, Q)`` towards ``(0, 0)``; the implicit loss
    is invariant under ``(P, Q) -> c*(P, Q)``.
    """
    from zpml_runtime.inference import split_model_outputs
    from zpml_runtime.losses import implicit_loss

    P, Q, _ = split_model_outputs(outputs)
    y_n, y_d = targets
    return implicit_loss(P, Q, y_n, y_d, mask=getattr(targets, "loss_mask", None))


def _training_loss(cfg: ReferenceRoboticsDeploymentConfig) -> Any:
    if cfg.variant == "mlp_rational":
        return free_gauge_training_loss
    return ik_training_loss if cfg.label_mode == "inverse" else dls_training_loss


def _loaders(train: Any, calib: Any, batch_size: int, seed: int) -> tuple[Any, Any]:
    import torch
    from torch.utils.data import DataLoader, TensorDataset

    def ds(d: Any) -> TensorDataset:
        y = torch.tensor(np.where(np.isfinite(d.targets), d.targets, 0.0))
        status = torch.tensor(np.repeat(d.status[:, None], 2, axis=1))
        return TensorDataset(torch.tensor(d.inputs), y, status)

    g = torch.Generator().manual_seed(seed)
    return (
        DataLoader(ds(train), batch_size=batch_size, shuffle=True, generator=g),
        DataLoader(ds(calib), batch_size=4096, shuffle=False),
    )


def _plot_loss(history: Sequence[dict[str, Any]], path: Path, title: str) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3.2))
    epochs = [h["epoch"] for h in history]
    ax.semilogy(epochs, [h["train_loss"] for h in history], marker="o", label="train")
    if any(h.get("val_loss") is not None for h in history):
        ax.semilogy(epochs, [h.get("val_loss") for h in history], marker="s", label="calibration split")
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss")
    ax.set_title(title)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, metadata={"Date": None})
    plt.close(fig)
    return path


def _train_mlp_baseline(train: Any, cfg: ReferenceRoboticsDeploymentConfig) -> Any:
    """A plain MLP on the finite rows with MSE, same width and optimiser budget as the model."""
    import torch

    from zpml_runtime.robotics.models import MLPBaseline

    torch.manual_seed(cfg.seed + 1)
    model = MLPBaseline(hidden=cfg.hidden)
    fin = train.status == 0
    x = torch.tensor(train.inputs[fin])
    y = torch.tensor(train.targets[fin])
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    epochs = cfg.baseline_epochs or cfg.epochs
    g = torch.Generator().manual_seed(cfg.seed + 1)
    for _ in range(epochs):
        perm = torch.randperm(x.shape[0], generator=g)
        for i in range(0, x.shape[0], cfg.batch_size):
            idx = perm[i : i + cfg.batch_size]
            loss = ((model(x[idx]) - y[idx]) ** 2).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
    return model


def _build_model(cfg: ReferenceRoboticsDeploymentConfig) -> Any:
    from zpml_runtime.robotics.models import IKMLPRationalModel, IKTemplateModel

    if cfg.variant == "template":
        return IKTemplateModel(kind=cfg.label_mode)
    return IKMLPRationalModel(hidden=cfg.hidden)


def _row_any(mask: np.ndarray) -> np.ndarray:
    m = np.asarray(mask, dtype=bool)
    return m.reshape(m.shape[0], -1).any(axis=1)


def run_reference_robotics_deployment(
    config: ReferenceRoboticsDeploymentConfig | None = None,
) -> ReferenceRoboticsArtifacts:
    """Run the whole pipeline and write its artifacts; see the module docstring."""
    import torch

    from zpml_runtime.bundle import (
        export_bundle,
        load_onnx_runtime_bundle,
        run_bundle_reference_smoke_test,
        validate_bundle,
    )
    from zpml_runtime.bundle.report import write_bundle_report
    from zpml_runtime.inference import (
        InferenceConfig,
        SCMInferenceWrapper,
        StrictInferenceMonitor,
        route_to_analytic_solver,
    )
    from zpml_runtime.logging import JsonlLogger
    from zpml_runtime.metrics import write_tau_infer_sweep
    from zpml_runtime.robotics import DLSSolver, IKDatasetConfig, PlanarArm, generate_ik_dataset
    from zpml_runtime.robotics.calibration import choose_thresholds
    from zpml_runtime.robotics.evaluation import bucket_table, prediction_errors
    from zpml_runtime.training import SCMTrainer, TrainingConfig

    cfg = ReferenceRoboticsDeploymentConfig() if config is None else config
    if not isinstance(cfg, ReferenceRoboticsDeploymentConfig):
        raise InvalidConfigError(
            f"config must be a ReferenceRoboticsDeploymentConfig or None, got {type(cfg).__name__}"
        )
    t_start = time.perf_counter()
    out = Path(cfg.output_dir)
    _prepare_output_dir(out, cfg.overwrite)
    device = torch.device(cfg.device)
    torch.manual_seed(cfg.seed)
    timings: dict[str, float] = {}

    # 1. data ------------------------------------------------------------------------------
    arm = PlanarArm()
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

    # 2. train -----------------------------------------------------------------------------
    t0 = time.perf_counter()
    model = _build_model(cfg).to(device)
    train_loader, calib_loader = _loaders(train, calib, cfg.batch_size, cfg.seed)
    steps = cfg.epochs * len(train_loader)
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.effective_learning_rate)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=steps)
    training_log = out / "training_log.jsonl"
    trainer = SCMTrainer(
        model,
        optimizer,
        _training_loss(cfg),
        train_loader,
        scheduler=scheduler,
        config=TrainingConfig(
            max_epochs=cfg.epochs,
            val_loader=calib_loader,
            logger=JsonlLogger(training_log),
            progress=cfg.progress,
            seed=cfg.seed,
            scheduler_interval="step",
        ),
    )
    history = trainer.fit()
    loss_curve = _plot_loss(history, out / "loss_curve.svg", f"{cfg.variant}, {cfg.label_mode} labels")
    timings["train_s"] = time.perf_counter() - t0

    # 3. calibrate -------------------------------------------------------------------------
    model.eval()
    with torch.no_grad():
        P, Q, *_ = model(torch.tensor(calib.inputs, device=device))
        pred = (P / Q).cpu().numpy()
        q_abs = Q.abs().reshape(Q.shape[0], -1).amin(dim=1).cpu().numpy()
    _, rel = prediction_errors(pred, calib.targets)
    choice = choose_thresholds(
        q_abs,
        rel,
        calib.status == 1,
        calib.bucket < 5,
        max_unsafe_accept_rate=cfg.max_unsafe_accept_rate,
        accuracy_tolerance=cfg.accuracy_tolerance,
        gap_tolerance=cfg.gap_tolerance,
    )
    calibration_dir = out / "tau_calibration"
    write_tau_infer_sweep(calibration_dir, choice.infer_sweep, provenance={"split": "calibration", "rule": choice.rule})
    inference_config = InferenceConfig(tau_infer=choice.tau_infer, tau_train=choice.tau_train)

    # 4. bundle ----------------------------------------------------------------------------
    t0 = time.perf_counter()
    wrapped = SCMInferenceWrapper(model.cpu(), config=inference_config).eval()
    bundle_dir = out / "bundle"
    smoke = np.concatenate([test.inputs[test.bucket == b][:8] for b in range(6)])
    export_bundle(
        wrapped,
        bundle_dir,
        example_inputs=(torch.tensor(smoke),),
        bundle_id=BUNDLE_ID,
    )
    validate_bundle(bundle_dir)
    # sin/cos are computed by onnxruntime in the bundle and by torch in the reference: 1-ulp
    # differences of sin near theta2 = pi are amplified by 1/|sin theta2| (up to 1e9 on the
    # near-singular rows), so decoded values are compared to SMOKE_RTOL; masks must be identical
    smoke_report = run_bundle_reference_smoke_test(bundle_dir, wrapped, (torch.tensor(smoke),), rtol=SMOKE_RTOL)
    timings["bundle_s"] = time.perf_counter() - t0

    # 5. strict inference through the bundle runtime, fallback, monitor ---------------------
    runtime = load_onnx_runtime_bundle(bundle_dir, providers=["CPUExecutionProvider"])
    result = runtime.run(np.ascontiguousarray(test.inputs))
    decoded, bottom_mask, gap_mask = result
    bottom_row, gap_row = _row_any(bottom_mask), _row_any(gap_mask)
    events_path = out / "strict_inference_events.jsonl"
    events = JsonlLogger(events_path)
    monitor = StrictInferenceMonitor(bundle_id=BUNDLE_ID, event_logger=events, acceptance_rate_drift_threshold=0.1)
    solver = DLSSolver(arm=arm, damping=cfg.damping)
    routed_bottom, route_bottom = route_to_analytic_solver(
        decoded, bottom_mask=bottom_mask, analytic_solver=solver, inputs=test.inputs, event_logger=events
    )
    monitor.update(
        _row_any(bottom_mask),
        _row_any(gap_mask),
        fault_mask=_row_any(result.fault_mask),
        semantic_bottom_mask=_row_any(result.semantic_bottom_mask),
        route_mask=np.asarray(route_bottom),
    )
    routed_gap, route_gap = route_to_analytic_solver(
        decoded, bottom_mask=bottom_mask, gap_mask=gap_mask, analytic_solver=solver, inputs=test.inputs,
        event_logger=events,
    )
    events.log(event="route_masks", policy_bottom=np.flatnonzero(route_bottom), policy_gap=np.flatnonzero(route_gap))

    # 6. baselines measured in the same run --------------------------------------------------
    mlp = _train_mlp_baseline(train, cfg)
    with torch.no_grad():
        mlp_pred = mlp(torch.tensor(test.inputs)).numpy()
    with torch.no_grad():  # the model's own values everywhere, masks ignored (for the DLS comparison)
        P_all, Q_all, *_ = model(torch.tensor(test.inputs))
        with np.errstate(divide="ignore", invalid="ignore"):
            unmasked = (P_all / Q_all).numpy()
    predictions = {
        "model": np.asarray(decoded, dtype=np.float64),
        "model_unmasked": unmasked,
        "model+dls_on_bottom": np.asarray(routed_bottom, dtype=np.float64),
        "model+dls_on_bottom_or_gap": np.asarray(routed_gap, dtype=np.float64),
        "predict_zero": np.zeros_like(test.targets),
        "mlp": mlp_pred,
        "dls": solver(test.inputs),
    }
    table = bucket_table(
        test,
        predictions,
        accepted={"model": ~bottom_row},
        bottom_mask=bottom_row,
        route_masks={"bottom": np.asarray(route_bottom), "bottom_or_gap": np.asarray(route_gap)},
    )

    # 7. reports and contract --------------------------------------------------------------
    report = write_bundle_report(bundle_dir, inputs=np.ascontiguousarray(test.inputs))
    report_paths = tuple(sorted(p for p in bundle_dir.iterdir() if p.name.startswith("VALIDATION_REPORT")))
    for p in report_paths:  # the seed lists them beside the bundle too
        shutil.copyfile(p, out / p.name)
    summary = {
        "schema": "zpml.reference_robotics.inference_summary/1",
        "config": cfg.to_dict(),
        "n_rows": {"train": len(train), "calibration": len(calib), "test": len(test)},
        "training": {
            "epochs": len(history),
            "final_train_loss": history[-1]["train_loss"],
            "final_val_loss": history[-1].get("val_loss"),
            "coefficients": model.link_lengths() if hasattr(model, "link_lengths") else None,
        },
        "calibration": {k: v for k, v in choice.to_dict().items() if not k.endswith("_sweep")},
        "inference_config": inference_config.to_metadata(),
        "rates": monitor.rates(),
        "smoke_test_passed": bool(getattr(smoke_report, "passed", True)),
        "report_smoke_test": getattr(report, "summary", {}).get("reference_smoke_test")
        if isinstance(getattr(report, "summary", None), dict)
        else None,
        "buckets": table,
        "timings_s": {**timings, "total_s": time.perf_counter() - t_start},
    }
    summary_path = _strict_json(out / "inference_summary.json", summary)
    audit = {
        "schema": "zpml.reference_robotics.strict_inference_audit/1",
        "bundle_id": BUNDLE_ID,
        "n_test_rows": len(test),
        "bottom_rows": np.flatnonzero(bottom_row),
        "gap_rows": np.flatnonzero(gap_row),
        "true_singular_rows": np.flatnonzero(test.singular),
        "route_rows": {"bottom": np.flatnonzero(route_bottom), "bottom_or_gap": np.flatnonzero(route_gap)},
        "bottom_provenance_counts": {
            str(k): int(v) for k, v in zip(*np.unique(np.asarray(result.bottom_provenance), return_counts=True), strict=True)
        },
        "monitor_state": monitor.export_state(include_histograms=True, include_batch_summaries=True),
    }
    audit_path = _strict_json(out / "strict_inference_audit.json", audit)
    files = [p for p in out.rglob("*") if p.is_file()]
    contract = write_output_contract(out, files)
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


def load_reference_robotics_artifacts(output_dir: str | os.PathLike[str]) -> dict[str, Any]:
    """Verify every digest of ``output_contract.json``, re-validate the bundle, return the JSON artifacts.

    Raises:
        ArtifactIntegrityError: a missing or changed artifact (named), or a bundle that
            no longer validates.
    """
    from zpml_runtime.bundle import validate_bundle

    root = Path(output_dir)
    files = verify_output_contract(root)
    try:
        validate_bundle(root / "bundle")
    except ZeroProofRuntimeError as e:
        raise ArtifactIntegrityError(f"{root / 'bundle'}: the bundle does not validate: {e}") from e
    loaded = {
        name: json.loads((root / name).read_text(encoding="utf-8"))
        for name in ("inference_summary.json", "strict_inference_audit.json", "VALIDATION_REPORT.summary.json")
        if name in files
    }
    loaded["files"] = files
    return loaded


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m zpml_runtime.reference_robotics_deployment",
        description="Reference robotics deployment: train -> calibrate -> bundle -> strict inference -> fallback -> report.",
    )
    d = ReferenceRoboticsDeploymentConfig()
    p.add_argument("--device", default=d.device)
    p.add_argument("--epochs", type=int, default=d.epochs)
    p.add_argument("--n-samples", type=int, default=d.n_samples)
    p.add_argument("--seed", type=int, default=d.seed)
    p.add_argument("--output-dir", default=str(d.output_dir))
    p.add_argument("--overwrite", action="store_true", help="replace a previous run in --output-dir")
    p.add_argument("--label-mode", choices=("inverse", "dls"), default=d.label_mode)
    p.add_argument("--variant", choices=("template", "mlp_rational"), default=d.variant)
    p.add_argument("--progress", action="store_true", help="show a tqdm progress bar while training")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point; returns the exit status (0 ok, 2 bad arguments or data)."""
    args = _parser().parse_args(argv)
    try:
        cfg = ReferenceRoboticsDeploymentConfig(
            device=args.device,
            epochs=args.epochs,
            n_samples=args.n_samples,
            seed=args.seed,
            output_dir=args.output_dir,
            overwrite=args.overwrite,
            label_mode=args.label_mode,
            variant=args.variant,
            progress=args.progress,
        )
        artifacts = run_reference_robotics_deployment(cfg)
    except ZeroProofRuntimeError as e:
        print(f"reference_robotics_deployment: error: {e}", file=sys.stderr)
        return 2
    s = artifacts.summary
    print(f"bundle: {artifacts.bundle_model_path}")
    print(f"tau_infer={s['calibration']['tau_infer']:g} tau_train={s['calibration']['tau_train']:g}")
    for row in s["buckets"]:
        if row["bucket"] == "all":
            print(f"bottom precision={row['bottom_precision']} recall={row['bottom_recall']}")
    print(f"artifacts: {artifacts.output_dir} (contract: {artifacts.output_contract_path.name}); "
          f"{s['timings_s']['total_s']:.1f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
