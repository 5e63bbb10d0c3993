"""Validation of :class:`~zpml_runtime.training.SCMTrainer`: mean loss and the deployed coverage."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import torch

from zpml_core.config import InferenceConfig
from zpml_core.strict import strict_inference

from ..errors import UnsupportedInputError
from ..inference.wrapper import SCMInferenceWrapper, split_model_outputs
from . import _distributed as D
from ._batches import split_batch

if TYPE_CHECKING:
    from .config import TrainingConfig
    from .trainer import SCMTrainer

__all__ = ["deployed_bottom", "evaluate", "validation_config"]


def validation_config(config: TrainingConfig, model: Any) -> InferenceConfig:
    """The thresholds validation decodes with: ``config.tau_infer`` when set, else an
    :class:`~zpml_runtime.inference.SCMInferenceWrapper` model's ``tau_infer``, else 0."""
    if config.tau_infer is not None:
        return InferenceConfig(tau_infer=config.tau_infer)
    if isinstance(model, SCMInferenceWrapper):
        return InferenceConfig(tau_infer=model.config.tau_infer)
    return InferenceConfig(tau_infer=0.0)


@torch.no_grad()
def evaluate(
    trainer: SCMTrainer, loader: Iterable[Any] | None = None
) -> dict[str, float | int | None]:
    """:meth:`SCMTrainer.evaluate <zpml_runtime.training.SCMTrainer.evaluate>` (documented there)."""
    loader = trainer.val_loader if loader is None else loader
    if loader is None:
        raise UnsupportedInputError(
            "SCMTrainer.evaluate: no loader given and config.val_loader is None"
        )
    module = trainer.model
    was_training = module.training
    module.eval()
    tau = 0.5 * (trainer.config.tau_train_min + trainer.config.tau_train_max)
    sums = torch.zeros(4, dtype=torch.float64, device=trainer.device)  # loss*n, n, covered, n_q
    try:
        for i, batch in enumerate(loader):
            where = f"validation batch {i} (epoch {trainer.epoch + 1})"
            x, y, status = split_batch(batch, where)
            x, y, status = trainer._to_device(x, y, status)
            outputs = module(x) if trainer._wrapper is None else trainer._wrapper.raw(x)
            loss, n, _outputs, _targets = trainer._loss(outputs, y, status, tau, where)
            bottom = deployed_bottom(trainer, outputs)
            sums += torch.stack(
                [
                    loss.detach().double() * n,
                    torch.as_tensor(float(n), dtype=torch.float64, device=trainer.device),
                    (~bottom).sum().double(),
                    torch.as_tensor(
                        float(bottom.numel()), dtype=torch.float64, device=trainer.device
                    ),
                ]
            )
    finally:
        module.train(was_training)
    total = D.all_reduce_sum(sums).tolist()
    return {
        "val_loss": total[0] / total[1] if total[1] > 0 else None,
        "val_coverage": total[2] / total[3] if total[3] > 0 else None,
        "val_rows": int(total[1]),
    }


def deployed_bottom(trainer: SCMTrainer, outputs: Any) -> torch.Tensor:
    """The bottom mask deployment computes for these raw outputs (strict decoding).

    A wrapper without a ``config.tau_infer`` override decodes with its own
    configuration and validity thresholds (``wrapped.decode``); otherwise
    :func:`strict_inference` at ``tau_infer``. Either way ``Q = +-inf``,
    non-finite ``P`` and overflowing quotients are bottom (faults) and the
    threshold is applied exactly in ``Q``'s dtype.
    """
    P, Q, V = split_model_outputs(outputs)
    P, Q = P.detach(), Q.detach()
    V = (
        V.detach()
        if isinstance(V, torch.Tensor)
        else (None if V is None else [v.detach() for v in V])
    )
    wrapper = trainer._wrapper
    if wrapper is not None and trainer.config.tau_infer is None:
        return wrapper.decode((P, Q) if V is None else (P, Q, V)).bottom_mask
    taus = 0.0 if wrapper is None else wrapper.validity_taus
    return strict_inference(
        P, Q, config=trainer._val_config, validity_factors=V, validity_taus=taus
    ).bottom_mask
