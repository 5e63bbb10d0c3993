"""Training the symbolic template (the "known physics" variant) with ``SCMTrainer``.

The inverse template fixes its own gauge (``Q = l1*s2`` and ``l1*l2*s2``) and is
trained with the gauge-keeping cross product; the DLS template, whose
denominator never vanishes, with the relative error of its decoded value.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from zpml_runtime.robotics.dataset import IKDataset

__all__ = ["dls_training_loss", "ik_training_loss", "plot_curve", "train_template"]


def ik_training_loss(outputs: Any, targets: Any) -> Any:
    """The inverse-Jacobian template's loss: :func:`~zpml_runtime.losses.cross_product_loss`.

    The template fixes its own gauge (``Q = l1*s2``, ``l1*l2*s2``), so the
    gauge-keeping cross product makes the fit a well-conditioned least-squares
    problem in the link lengths. The scale-invariant
    :func:`~zpml_runtime.losses.implicit_loss` stalls in the narrow valley
    ``l1 == l2`` that the rows near ``theta2 = pi`` carve out when the arm's
    links are equal. Bottom targets ``(+-1, 0)`` train ``Q`` towards 0; rows
    outside the loss mask are excluded.
    """
    from zpml_runtime.inference import split_model_outputs
    from zpml_runtime.losses import cross_product_loss

    P, Q, _ = split_model_outputs(outputs)
    y_n, y_d = targets
    return cross_product_loss(P, Q, y_n, y_d, mask=getattr(targets, "loss_mask", None))


def dls_training_loss(outputs: Any, targets: Any) -> Any:
    """The DLS template's loss: mean squared relative value error ``(P/Q - y) / max(|y|, 1)``.

    Its denominator ``det(J J^T + lam^2 I) >= lam^4 > 0`` never vanishes on the
    arm, so the decoded value is a safe training signal. The gauge-keeping cross
    product is not: ``Q`` scales like the fourth power of the link lengths, so
    shrinking the links lowers it (measured with unequal links: ``l1`` drifts
    to 0.5 for a true 1.0); the scale-invariant implicit loss stalls far from
    the optimum in 2 epochs. Rows outside the loss mask or with a bottom label
    (``y_d == 0``) are excluded.
    """
    import torch

    from zpml_runtime.inference import split_model_outputs

    P, Q, _ = split_model_outputs(outputs)
    y_n, y_d = targets
    keep = y_d != 0
    mask = getattr(targets, "loss_mask", None)
    if mask is not None:
        keep = keep & mask
    y = y_n[keep] / y_d[keep]
    r = (P[keep] / Q[keep] - y) / torch.clamp(y.abs(), min=1.0)
    return (r**2).mean() if r.numel() else (P * 0).sum()


def _loaders(train: IKDataset, calib: IKDataset, batch_size: int, seed: int) -> tuple[Any, Any]:
    import torch
    from torch.utils.data import DataLoader, TensorDataset

    def ds(d: IKDataset) -> TensorDataset:
        y = torch.tensor(np.where(np.isfinite(d.targets), d.targets, 0.0))
        status = torch.tensor(np.repeat(d.status[:, None], d.targets.shape[1], axis=1))
        return TensorDataset(torch.tensor(d.inputs), y, status)

    g = torch.Generator().manual_seed(seed)
    return (
        DataLoader(ds(train), batch_size=batch_size, shuffle=True, generator=g),
        DataLoader(ds(calib), batch_size=4096, shuffle=False),
    )


def plot_curve(
    xs: Sequence[float],
    series: dict[str, Sequence[float | None]],
    path: Path,
    *,
    title: str,
    xlabel: str,
    ylabel: str,
) -> Path:
    """A small log-scale line plot (SVG, no timestamp, so reruns are byte-identical)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3.2))
    for (label, ys), marker in zip(series.items(), "os^v", strict=False):
        pts = [(x, y) for x, y in zip(xs, ys, strict=True) if y is not None and y > 0]
        if pts:
            ax.semilogy([p[0] for p in pts], [p[1] for p in pts], marker=marker, label=label)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, metadata={"Date": None})
    plt.close(fig)
    return path


def train_template(
    train: IKDataset,
    calib: IKDataset,
    *,
    label_mode: str,
    epochs: int,
    batch_size: int,
    learning_rate: float,
    seed: int,
    device: str = "cpu",
    log_path: Path | None = None,
    progress: bool = False,
) -> tuple[Any, list[dict[str, Any]]]:
    """Adam (cosine-decayed per step) on the 2-link template; returns ``(model, history)``."""
    import torch

    from zpml_runtime.logging import JsonlLogger
    from zpml_runtime.robotics.models import IKTemplateModel
    from zpml_runtime.training import SCMTrainer, TrainingConfig

    torch.manual_seed(seed)
    model = IKTemplateModel(kind=label_mode).to(torch.device(device))
    train_loader, calib_loader = _loaders(train, calib, batch_size, seed)
    optimizer = torch.optim.Adam(model.parameters(), lr=learning_rate)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(
        optimizer, T_max=epochs * len(train_loader)
    )
    trainer = SCMTrainer(
        model,
        optimizer,
        ik_training_loss if label_mode == "inverse" else dls_training_loss,
        train_loader,
        scheduler=scheduler,
        config=TrainingConfig(
            max_epochs=epochs,
            val_loader=calib_loader,
            logger=JsonlLogger(log_path) if log_path is not None else None,
            progress=progress,
            seed=seed,
            scheduler_interval="step",
        ),
    )
    history = trainer.fit()
    return model.cpu().eval(), history
