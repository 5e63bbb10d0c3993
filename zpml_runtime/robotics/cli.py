"""Command line of the reference robotics deployment (``python -m zpml_runtime.reference_robotics_deployment``)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from zpml_runtime.errors import ZeroProofRuntimeError
from zpml_runtime.robotics.config import SCENARIOS, VARIANTS, ReferenceRoboticsDeploymentConfig

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m zpml_runtime.reference_robotics_deployment",
        description="Reference robotics deployment: fit/train -> calibrate -> bundle -> strict inference -> "
        "fallback -> report.",
    )
    d = ReferenceRoboticsDeploymentConfig()
    p.add_argument("--device", default=d.device)
    p.add_argument(
        "--epochs", type=int, default=d.epochs, help="Adam epochs of the symbolic template"
    )
    p.add_argument("--n-samples", type=int, default=d.n_samples)
    p.add_argument("--seed", type=int, default=d.seed)
    p.add_argument("--output-dir", default=str(d.output_dir))
    p.add_argument(
        "--overwrite", action="store_true", help="replace a previous run in --output-dir"
    )
    p.add_argument(
        "--scenario",
        choices=SCENARIOS,
        default=d.scenario,
        help="2link: position task; 3link: position + orientation",
    )
    p.add_argument("--label-mode", choices=("inverse", "dls"), default=d.label_mode)
    p.add_argument(
        "--variant",
        choices=VARIANTS,
        default=d.variant,
        help="the deployed model: generic rational head (default) or the 2-link template",
    )
    p.add_argument(
        "--baseline-iterations",
        type=int,
        default=d.baseline_iterations,
        help="L-BFGS iterations of the plain-MLP baseline (0: leave it out)",
    )
    p.add_argument(
        "--progress", action="store_true", help="show a tqdm progress bar while training"
    )
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point; returns the exit status (0 ok, 2 bad arguments or data)."""
    from zpml_runtime.robotics.pipeline import run_reference_robotics_deployment

    args = _parser().parse_args(argv)
    try:
        cfg = ReferenceRoboticsDeploymentConfig(
            device=args.device,
            epochs=args.epochs,
            n_samples=args.n_samples,
            seed=args.seed,
            output_dir=args.output_dir,
            overwrite=args.overwrite,
            scenario=args.scenario,
            label_mode=args.label_mode,
            variant=args.variant,
            baseline_iterations=args.baseline_iterations,
            progress=args.progress,
        )
        artifacts = run_reference_robotics_deployment(cfg)
    except ZeroProofRuntimeError as e:
        print(f"reference_robotics_deployment: error: {e}", file=sys.stderr)
        return 2
    s = artifacts.summary
    print(f"bundle: {artifacts.bundle_model_path}")
    print(
        f"deployed: {s['deployed']} ({args.scenario}); singular set of the generic head: "
        f"{s['generic_fit']['singular_set']['zero_set']}"
    )
    print(
        f"tau_infer={s['calibration']['tau_infer']:g} tau_train={s['calibration']['tau_train']:g}"
    )
    for row in s["buckets"]:
        if row["bucket"] == "all":
            print(f"bottom precision={row['bottom_precision']} recall={row['bottom_recall']}")
    print(
        f"artifacts: {artifacts.output_dir} (contract: {artifacts.output_contract_path.name}); "
        f"{s['timings_s']['total_s']:.1f} s"
    )
    return 0
