"""Per-batch plumbing of the trainer: unpack, lift targets, check shapes, call the loss."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from ..errors import ShapeMismatchError, UnsupportedInputError
from ..inference.wrapper import split_model_outputs
from .errors import BottomUnreachableError, LossValueError
from .targets import SemanticTargets, lift_semantic_targets, lift_targets

if TYPE_CHECKING:
    from .trainer import SCMTrainer

__all__ = [
    "accepts_tau_train",
    "batch_loss",
    "handles_loss_mask",
    "lift_batch_targets",
    "select_rows",
    "split_batch",
    "unreachable_bottom_layers",
]

Targets = tuple[torch.Tensor, torch.Tensor] | SemanticTargets


def split_batch(batch: Any, where: str) -> tuple[Any, torch.Tensor, Any]:
    """``(x, y)`` or ``(x, y, status)`` -> ``(x, y, status or None)``."""
    if not isinstance(batch, tuple | list) or len(batch) not in (2, 3):
        what = type(batch).__name__ + (
            f" of length {len(batch)}" if isinstance(batch, tuple | list) else ""
        )
        raise UnsupportedInputError(
            f"{where}: a batch must be (x, y) or (x, y, status), got a {what}; "
            "e.g. DataLoader(TensorDataset(x, y), ...)"
        )
    x, y = batch[0], batch[1]
    if not isinstance(y, torch.Tensor):
        raise UnsupportedInputError(
            f"{where}: targets y must be a torch.Tensor, got {type(y).__name__}"
        )
    return x, y, (batch[2] if len(batch) == 3 else None)


def lift_batch_targets(y: torch.Tensor, status: Any, where: str) -> Targets:
    """``lift_targets(y)`` or ``lift_semantic_targets(y, status)``; errors get ``where`` prepended."""
    try:
        if status is None:
            return lift_targets(y)
        return lift_semantic_targets(y, status)
    except (ValueError, TypeError) as e:
        try:
            wrapped = type(e)(f"{where}: {e}")
        except Exception:  # an error type with a different constructor: keep it as is (the
            raise e from None  # constructor's failure is noise; e keeps its own traceback)
        raise wrapped from e


def check_target_shape(P: torch.Tensor, y_n: torch.Tensor, where: str) -> None:
    """Model output and targets must have the same shape (no silent broadcasting)."""
    if P.shape != y_n.shape:
        hint = ""
        if P.dim() == y_n.dim() + 1 and P.shape[-1] == 1:
            hint = " (the model keeps a trailing dimension of 1: squeeze(-1) its outputs or unsqueeze(-1) y)"
        elif y_n.dim() == P.dim() + 1 and y_n.shape[-1] == 1:
            hint = " (y has a trailing dimension of 1: squeeze(-1) it or keep [batch, 1] outputs)"
        raise ShapeMismatchError(
            f"{where}: model output P has shape {list(P.shape)} but targets y have shape "
            f"{list(y_n.shape)}; they must match exactly, broadcasting would pair every "
            f"prediction with every target{hint}"
        )


def select_rows(
    outputs: tuple[Any, ...], targets: SemanticTargets, keep: torch.Tensor
) -> tuple[tuple[Any, ...], SemanticTargets]:
    """Drop excluded rows (``keep`` False) from outputs and targets, for losses that ignore ``loss_mask``."""
    P, Q, V = split_model_outputs(outputs)
    if keep.shape != P.shape:
        raise ShapeMismatchError(
            f"loss_mask shape {list(keep.shape)} != output shape {list(P.shape)}"
        )
    row_keep = keep if keep.dim() <= 1 else keep.reshape(keep.shape[0], -1).all(dim=1)
    if V is None:
        return (P[keep], Q[keep]), targets.select(keep)
    if isinstance(V, torch.Tensor):
        V = V[row_keep]
    else:
        V = [v[row_keep] for v in V]
    return (P[row_keep], Q[row_keep], V), targets.select(row_keep)


def unreachable_bottom_layers(model: nn.Module) -> list[str]:
    """Names (``"path (Class)"``) of the outermost modules declaring ``can_reach_bottom = False``.

    The outermost module that declares ``can_reach_bottom`` decides for its
    subtree; the root declaring ``True`` means the whole model can reach bottom.
    """
    declared: list[tuple[str, nn.Module]] = []
    for name, module in model.named_modules():
        if not hasattr(type(module), "can_reach_bottom") and not hasattr(
            module, "can_reach_bottom"
        ):
            continue
        if any(name == p or name.startswith(p + ".") for p, _ in declared if p):
            continue
        if not name:  # the root decides alone
            return (
                []
                if getattr(module, "can_reach_bottom", True)
                else [f"<model> ({type(module).__name__})"]
            )
        declared.append((name, module))
    return [
        f"{n!r} ({type(m).__name__})"
        for n, m in declared
        if not getattr(m, "can_reach_bottom", True)
    ]


def _parameters(fn: Callable[..., Any]) -> dict[str, inspect.Parameter] | None:
    target = fn.forward if isinstance(fn, nn.Module) else fn
    try:
        return dict(inspect.signature(target).parameters)
    except (TypeError, ValueError):
        return None


def accepts_tau_train(loss_fn: Callable[..., Any]) -> bool:
    """True when ``loss_fn`` has a ``tau_train`` parameter or ``**kwargs``."""
    params = _parameters(loss_fn)
    if params is None:
        return False
    return "tau_train" in params or any(p.kind is p.VAR_KEYWORD for p in params.values())


def handles_loss_mask(loss_fn: Callable[..., Any]) -> bool:
    """True for losses that read ``SemanticTargets.loss_mask`` themselves.

    ``SCMTrainingLoss`` does; any callable may declare it with a
    ``handles_loss_mask = True`` attribute. For other losses the trainer drops
    the excluded rows before calling them.
    """
    if getattr(loss_fn, "handles_loss_mask", False):
        return True
    return any(cls.__name__ == "SCMTrainingLoss" for cls in type(loss_fn).__mro__)


def batch_loss(
    trainer: SCMTrainer, outputs: Any, y: torch.Tensor, status: Any, tau: float, where: str
) -> tuple[torch.Tensor, int, Any, Any]:
    """Lift, check and call ``trainer``'s loss; returns ``(loss, rows used, outputs, targets)``.

    Rows a ``SemanticTargets`` excludes are dropped before a loss that does not take
    ``loss_mask``; ``tau_train=tau`` is passed to a loss that accepts it.
    """
    P, _Q, _V = split_model_outputs(outputs)
    targets = lift_batch_targets(y, status, where)
    y_n, y_d = targets
    check_target_shape(P, y_n, where)
    semantic = targets if isinstance(targets, SemanticTargets) else None
    if trainer._unreachable:
        singular = (y_d == 0) & semantic.loss_mask if semantic is not None else (y_d == 0)
        if bool(singular.any()):
            raise BottomUnreachableError(
                f"{where}: {int(singular.sum())} target rows have Y_d = 0 (bottom or +-inf), but "
                f"layer {', '.join(trainer._unreachable)} has can_reach_bottom = False: its Q is never "
                "0, so these targets can never be fitted. Use a layer whose Q can reach zero "
                "(e.g. SCMRationalLayer, AngularProjectiveHead) or relabel/drop these rows"
            )
    n = y_n.numel()
    call_outputs, call_targets = outputs, targets
    if semantic is not None and not trainer._mask_aware:
        keep = semantic.loss_mask
        if not bool(keep.all()):
            call_outputs, call_targets = select_rows(outputs, semantic, keep)
            n = call_targets.y_n.numel()
    if trainer._pass_tau:
        loss = trainer.loss_fn(call_outputs, call_targets, tau_train=tau)
    else:
        loss = trainer.loss_fn(call_outputs, call_targets)
    if not isinstance(loss, torch.Tensor):
        raise LossValueError(
            f"{where}: loss_fn returned {type(loss).__name__}; it must return a scalar torch.Tensor "
            "(e.g. a .mean() of per-row losses) so that it can be backpropagated"
        )
    if loss.numel() != 1:
        raise LossValueError(
            f"{where}: loss_fn returned a tensor of shape {list(loss.shape)}; it must return a "
            "scalar (0-d) tensor: reduce per-row losses with .mean() or .sum()"
        )
    return loss.reshape(()), n, call_outputs, targets
