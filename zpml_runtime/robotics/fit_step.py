"""Step 2 of the reference deployment: fit the generic head and train the template.

The generic rational head is always fitted (its degree search is logged and
plotted); the 2-link template is trained in the same run when the arm has one.
:func:`fit_models` returns both and the one the configuration deploys.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from zpml_runtime.robotics.config import ReferenceRoboticsDeploymentConfig

__all__ = ["FittedModels", "fit_models"]


@dataclass
class FittedModels:
    """The generic fit, the trained template (or None), and which one is deployed."""

    generic: Any
    template: Any
    history: list[dict[str, Any]]
    deployed: Any
    loss_curve: Path
    training_log: Path


def fit_models(
    cfg: ReferenceRoboticsDeploymentConfig,
    train: Any,
    calib: Any,
    arm: Any,
    out: Path,
    timings: dict[str, float],
) -> FittedModels:
    """Fit the generic head (always) and train the template (2-link arm), logging to ``out``."""
    from zpml_runtime.robotics.generic import fit_generic_head
    from zpml_runtime.robotics.training import train_template

    training_log = out / "training_log.jsonl"
    t0 = time.perf_counter()
    generic = fit_generic_head(train, calib, arm)
    timings["generic_fit_s"] = time.perf_counter() - t0
    _log_generic_fit(generic, training_log)
    degree_plot = _plot_degree_search(generic, out / "degree_search.svg")
    template, history = None, list[dict[str, Any]]()
    template_plot = degree_plot
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
    generic_deployed = cfg.variant == "generic"
    return FittedModels(
        generic=generic,
        template=template,
        history=history,
        deployed=generic.model if generic_deployed else template,
        loss_curve=degree_plot if generic_deployed else template_plot,
        training_log=training_log,
    )


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
