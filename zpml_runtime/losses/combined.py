"""``SCMTrainingLoss``: implicit + margin + orientation + coverage + censoring + validity terms."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from zpml_core.resolution import check_order
from zpml_runtime.errors import ModelOutputError, UnsupportedInputError
from zpml_runtime.training.targets import SemanticTargets

from ._common import (
    abs_away_from_zero,
    align_mask,
    check_nonneg_number,
    check_same_shape,
    check_tensor,
    reduce_mean,
)
from .config import LossConfig
from .coverage import soft_coverage_loss
from .implicit import implicit_loss
from .terms import censored_loss, margin_loss, sign_consistency_loss

__all__ = ["SCMTrainingLoss"]

Tensor = torch.Tensor
_FUNC = "SCMTrainingLoss"


class SCMTrainingLoss(nn.Module):
    """Weighted sum of the projective loss terms, called as ``loss(outputs, targets, *, tau_train)``.

    ``outputs`` is ``(P, Q)`` or ``(P, Q, V)`` (``V``: validity factors, a
    tensor ``[..., k]`` or a sequence of ``k`` tensors, one per factor);
    ``targets`` is a :class:`~zpml_runtime.training.targets.SemanticTargets` or a
    ``(Y_n, Y_d)`` tuple from ``lift_targets``. Rows per term (each term is a
    mean over its own rows, then weighted by :class:`LossConfig`):

    ===========  =============================================================
    implicit     finite and singular (bottom, domain_invalid) targets; the
                 singular ones through ``(+-1, 0)``, never dropped; except
                 singular rows the model already makes bottom through ``V``
    margin       finite targets
    sign         oriented singular targets not already bottom through ``V``
    rejection    finite targets
    censored     censored_below / censored_above targets
    validity     finite targets (hinge on every factor of ``V``)
    ===========  =============================================================

    "missing" and "fault" rows enter no term. A row is bottom through ``V``
    when some factor has ``V == 0`` or ``|V| < tau_train``. With tuple targets
    every row with ``Y_d != 0`` is finite, ``Y_d == 0, Y_n != 0`` singular and
    ``(0, 0)`` excluded. After each call ``last_terms`` maps every active term
    (and ``"total"``) to its value; the floats are read lazily, so training
    without logging never synchronises with the device.
    """

    #: The loss reads ``SemanticTargets.loss_mask`` itself (the trainer need not drop rows).
    handles_loss_mask: bool = True

    def __init__(self, config: LossConfig | None = None) -> None:
        super().__init__()
        if config is None:
            config = LossConfig()
        if not isinstance(config, LossConfig):
            raise UnsupportedInputError(
                f"{_FUNC}: config must be a LossConfig or None, got {type(config).__name__}"
            )
        self.config = config
        self._last: dict[str, Tensor] = {}

    @property
    def last_terms(self) -> dict[str, float]:
        """Per-term values of the last call (``{}`` before the first call)."""
        return {k: float(v) for k, v in self._last.items()}

    def forward(self, outputs: Any, targets: Any, *, tau_train: Any = None) -> Tensor:
        """Total loss (0-d tensor) of ``outputs`` against ``targets`` at ``tau_train``."""
        cfg = self.config
        P, Q, V = _split_outputs(outputs)
        tau = cfg.tau_train if tau_train is None else tau_train
        tau = check_nonneg_number(tau, name="tau_train", func=_FUNC)
        if cfg.tau_infer is not None:
            check_order(cfg.tau_infer, tau, owner=f"{_FUNC}: ", infer_name="LossConfig.tau_infer")
        y_n, y_d, rows = _target_rows(targets, P)
        finite, singular, oriented, below, above = rows
        if V is not None:
            v_bottom, v_rows = _validity_bottom(V, P, tau)
            singular_fit = singular & ~v_bottom
            if oriented is not None:
                oriented = oriented & ~v_bottom
        else:
            singular_fit = singular
        w = cfg.weights()
        terms: dict[str, Tensor] = {}
        if w["implicit"]:
            terms["implicit"] = implicit_loss(
                P,
                Q,
                y_n,
                y_d,
                cfg.gamma,
                detach_scale=cfg.detach_scale,
                mask=finite | singular_fit,
                weighting=cfg.weighting,
                weight_cap=cfg.weight_cap,
                weight_power=cfg.weight_power,
            )
        if w["margin"]:
            terms["margin"] = margin_loss(Q, tau, mask=finite)
        if w["sign"] and oriented is not None:
            terms["sign"] = sign_consistency_loss(P, Q, y_n, y_d, mask=oriented)
        if w["rejection"]:
            terms["rejection"] = soft_coverage_loss(
                Q,
                tau,
                target_coverage=cfg.target_coverage,
                temperature=cfg.temperature,
                mask=finite,
            )
        if w["censored"] and below is not None:
            direction = torch.where(above, 1.0, -1.0).to(P.dtype)
            terms["censored"] = censored_loss(
                P, Q, y_n, y_d, direction=direction, gamma=cfg.gamma, mask=below | above
            )
        if w["validity"] and V is not None:
            terms["validity"] = _validity_margin(V, v_rows(finite), tau)
        total = sum((w[k] * t for k, t in terms.items()), start=P.new_zeros(()))
        self._last = {k: t.detach() for k, t in terms.items()}
        self._last["total"] = total.detach()
        return total


def _split_outputs(outputs: Any) -> tuple[Tensor, Tensor, Tensor | None]:
    if not isinstance(outputs, tuple | list) or len(outputs) not in (2, 3):
        what = type(outputs).__name__
        if isinstance(outputs, tuple | list):
            what += f" of length {len(outputs)}"
        raise ModelOutputError(
            f"{_FUNC}: outputs must be (P, Q) or (P, Q, V), got a {what}; in eval mode a "
            f"SCMInferenceWrapper decodes, so feed the loss wrapped.raw(x)"
        )
    P = check_tensor(outputs[0], name="P", func=_FUNC)
    Q = check_tensor(outputs[1], name="Q", func=_FUNC)
    check_same_shape(P, Q, names=("P", "Q"), func=_FUNC)
    V = outputs[2] if len(outputs) == 3 else None
    if V is not None and not isinstance(V, torch.Tensor):
        if not isinstance(V, Sequence) or not all(isinstance(v, torch.Tensor) for v in V):
            raise ModelOutputError(
                f"{_FUNC}: V must be a tensor [..., k] or a sequence of tensors, "
                f"got {type(V).__name__}"
            )
        V = torch.stack(list(V), dim=-1) if len(V) else None
    if V is not None:
        V = check_tensor(V, name="V", func=_FUNC)
    return P, Q, V


def _target_rows(targets: Any, P: Tensor) -> tuple[Tensor, Tensor, tuple[Any, ...]]:
    """Targets on P's device/dtype and the row masks (finite, singular, oriented, below, above)."""
    if isinstance(targets, SemanticTargets):
        t = targets if isinstance(targets.y_n, Tensor) else _to_torch(targets)
        t = t.to(device=P.device)
        y_n, y_d = t.y_n.to(P.dtype), t.y_d.to(P.dtype)
        check_same_shape(P, y_n, names=("P", "targets"), func=_FUNC)
        lm = t.loss_mask
        rows = (
            t.finite_mask & lm,
            t.singular_mask & lm,
            t.oriented_mask & lm,
            t.censored_below_mask & lm,
            t.censored_above_mask & lm,
        )
        return y_n, y_d, rows
    if not isinstance(targets, tuple | list) or len(targets) != 2:
        raise UnsupportedInputError(
            f"{_FUNC}: targets must be SemanticTargets or a (Y_n, Y_d) tuple, got "
            f"{type(targets).__name__}; lift raw values with lift_targets(y)"
        )
    y_n = check_tensor(targets[0], name="Y_n", func=_FUNC).to(device=P.device, dtype=P.dtype)
    y_d = check_tensor(targets[1], name="Y_d", func=_FUNC).to(device=P.device, dtype=P.dtype)
    check_same_shape(P, y_n, names=("P", "Y_n"), func=_FUNC)
    check_same_shape(P, y_d, names=("P", "Y_d"), func=_FUNC)
    finite = y_d != 0
    singular = (y_d == 0) & (y_n != 0)
    return y_n, y_d, (finite, singular, None, None, None)


def _to_torch(t: SemanticTargets) -> SemanticTargets:
    return SemanticTargets(
        *(torch.as_tensor(f) for f in (t.y_n, t.y_d, t.status, t.loss_mask, t.oriented))
    )


def _validity_bottom(V: Tensor, P: Tensor, tau: float) -> tuple[Tensor, Any]:
    """Elementwise (P-shaped) mask of rows bottom through V, and a row-mask adapter for V."""
    if V.dim() == 0:
        raise ModelOutputError(
            f"{_FUNC}: V must have a trailing factor axis [..., k], got a scalar"
        )
    from zpml_core.arrays import dtype_name, effective_threshold

    t = effective_threshold(tau, dtype_name(V), f"{_FUNC}: tau_train")  # deployment's rounding
    vb = ((V == 0) | (V.abs() < t)).any(dim=-1)
    lead = tuple(vb.shape)
    pshape = tuple(P.shape)
    if pshape[: len(lead)] != lead:
        raise ModelOutputError(
            f"{_FUNC}: V has shape {tuple(V.shape)}; expected {pshape + ('k',)} (per output) "
            f"or {pshape[:1] + ('k',)} (per row) to match P {pshape}"
        )
    vb_full = align_mask(vb, P, name="V", func=_FUNC)

    def v_rows(mask: Tensor) -> Tensor:
        # a V entry takes part when every P entry of its row is included
        m = mask
        while m.dim() > len(lead):
            m = m.all(dim=-1)
        return m

    return vb_full, v_rows


def _validity_margin(V: Tensor, rows: Tensor, tau: float) -> Tensor:
    m = rows.unsqueeze(-1).expand(V.shape)
    v = torch.where(m, V, torch.full((), float("inf"), dtype=V.dtype, device=V.device))
    h = torch.relu(tau - abs_away_from_zero(v))
    return reduce_mean(h * h, m, None)
