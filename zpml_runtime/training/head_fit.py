"""Fit a model's projective head from data, with the rest of the model fixed (variable projection).

A model ``backbone -> head -> (P, Q)`` is, for fixed backbone features, a small
and well-posed problem in the head's parameters: rational heads are linear in
their coefficients (a linearised least-squares solve, :func:`fit_rational`,
finds the global optimum with Sanathanan-Koerner reweighting and degree
reduction), and the angular head ``(cos theta, sin theta)`` with ``theta``
linear in the features is a smooth, low-dimensional fit. :func:`fit_head`
caches the head's inputs on the training batches, optionally starts from
:func:`fit_rational`, and polishes with L-BFGS on the implicit loss (by default
``weighting="relative"``). ``TrainingConfig(head_fit="init")`` calls it once
before training, ``head_fit="epoch"`` also after every epoch, so gradient
descent trains the backbone while the head is always the best fit to the
current features. See ``docs/training.md``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import time
from collections.abc import Iterable
from typing import Any

import numpy as np
import torch
from torch import nn

from ..errors import InvalidConfigError, UnsupportedInputError
from ..inference.wrapper import SCMInferenceWrapper, split_model_outputs
from ..layers._base import ProjectiveLayer
from ..losses._common import check_nonneg_number
from ..losses.implicit import RELATIVE_WEIGHT_CAP, WEIGHTINGS, implicit_residual, relative_weight
from ._batches import check_target_shape, lift_batch_targets, split_batch
from ._head_linear import load_linear_fit
from .errors import HeadFitError
from .targets import SemanticTargets

__all__ = ["HeadFitError", "HeadFitResult", "find_head", "fit_head"]


@dataclasses.dataclass(frozen=True)
class HeadFitResult:
    """What :func:`fit_head` did.

    ``head``: the fitted module's name (``""`` for the model itself);
    ``rows``: output entries used; ``objective_before`` / ``objective_after``:
    the fit objective (weighted implicit loss) at the old and new parameters;
    ``linear_start``: whether a :func:`fit_rational` solution was the L-BFGS
    start (it is kept only when it lowers the objective); ``iterations``:
    L-BFGS objective evaluations; ``time_s``: wall time.
    """

    head: str
    rows: int
    objective_before: float
    objective_after: float
    linear_start: bool
    iterations: int
    time_s: float


@dataclasses.dataclass
class _Cache:
    inputs: list[torch.Tensor]
    targets: list[
        tuple[torch.Tensor, torch.Tensor, torch.Tensor]
    ]  # y_n, y_d, mask (model output shape)
    weights: list[torch.Tensor] = dataclasses.field(
        default_factory=list
    )  # objective weights, 0 = excluded

    def merge(self) -> None:
        """One tensor per field when every batch has the same trailing shape (one head call per evaluation)."""
        shapes = {tuple(h.shape[1:]) for h in self.inputs}
        tshapes = {tuple(t[0].shape[1:]) for t in self.targets}
        if (
            len(self.inputs) > 1
            and len(shapes) == 1
            and len(tshapes) == 1
            and all(h.dim() > 0 for h in self.inputs)
        ):
            self.inputs = [torch.cat(self.inputs)]
            y_n, y_d, mask = (torch.cat(parts) for parts in zip(*self.targets, strict=True))
            self.targets = [(y_n, y_d, mask)]
            self.weights = [torch.cat(self.weights)]


def _raw_module(model: nn.Module) -> nn.Module:
    return model.model if isinstance(model, SCMInferenceWrapper) else model


def _candidates(model: nn.Module) -> list[tuple[str, nn.Module]]:
    return [(n, m) for n, m in model.named_modules() if isinstance(m, ProjectiveLayer)]


def _same(a: torch.Tensor, b: torch.Tensor) -> bool:
    return a.numel() == b.numel() and bool(torch.equal(a.reshape(-1), b.reshape(-1)))


def find_head(
    model: nn.Module, x: Any, *, head: str | nn.Module | None = None
) -> tuple[str, nn.Module]:
    """The module whose ``(P, Q)`` output *is* the model's output on input ``x``.

    Candidates are the projective layers inside ``model`` (``ProjectiveLayer``:
    ``AngularProjectiveHead``, ``SCMRationalLayer``, ``MultivariateRationalLayer``,
    ``RationalTemplateLayer``), or the module given as ``head`` (an
    ``nn.Module`` or its dotted name). The head's outputs must equal the
    model's ``P`` and ``Q`` up to a reshape (e.g. ``squeeze(-1)``) and it must
    take one tensor argument. Among several such modules the one with the
    fewest parameters wins (the innermost head). Raises :class:`HeadFitError`
    naming the candidates otherwise.
    """
    raw = _raw_module(model)
    if head is None:
        cands = _candidates(raw)
    elif isinstance(head, str):
        mods = dict(raw.named_modules())
        if head not in mods:
            raise HeadFitError(f"fit_head: the model has no submodule named {head!r}")
        cands = [(head, mods[head])]
    elif isinstance(head, nn.Module):
        cands = [(n, m) for n, m in raw.named_modules() if m is head]
        if not cands:
            raise HeadFitError(
                f"fit_head: head {type(head).__name__} is not a submodule of the model"
            )
    else:
        raise HeadFitError(
            f"fit_head: head must be None, a submodule or its name, got {type(head).__name__}"
        )
    if not cands:
        raise HeadFitError(
            f"fit_head: {type(raw).__name__} contains no projective layer (AngularProjectiveHead, "
            "SCMRationalLayer, MultivariateRationalLayer, RationalTemplateLayer); pass head= to name one"
        )
    seen: dict[str, tuple[tuple[Any, ...], dict[str, Any], Any]] = {}

    def recorder(name: str) -> Any:
        def hook(mod: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any], out: Any) -> None:
            seen.setdefault(name, (args, kwargs, out))  # returns None: the output is left alone

        return hook

    hooks = [m.register_forward_hook(recorder(n), with_kwargs=True) for n, m in cands]
    try:
        with torch.no_grad():
            outputs = raw(x)
    finally:
        for h in hooks:
            h.remove()
    P, Q, _ = split_model_outputs(outputs)
    terminal = []
    for name, mod in cands:
        if name not in seen:
            continue
        args, kwargs, out = seen[name]
        if kwargs or len(args) != 1 or not isinstance(args[0], torch.Tensor):
            continue
        if (
            isinstance(out, tuple | list)
            and len(out) >= 2
            and _same(out[0], P)
            and _same(out[1], Q)
        ):
            terminal.append((sum(p.numel() for p in mod.parameters()), -name.count("."), name, mod))
    if not terminal:
        names = ", ".join(f"{n or '<model>'} ({type(m).__name__})" for n, m in cands)
        raise HeadFitError(
            f"fit_head: none of {names} produces the model's (P, Q): the head must be the last step "
            "(its outputs returned as they are, up to a reshape such as squeeze(-1)) and take one tensor"
        )
    _, _, name, mod = min(terminal, key=lambda t: (t[0], t[1]))
    if not any(p.requires_grad for p in mod.parameters()):
        raise HeadFitError(
            f"fit_head: head {name or '<model>'} ({type(mod).__name__}) has no trainable parameters"
        )
    return name, mod


def _row_mask(targets: Any, y_n: torch.Tensor, y_d: torch.Tensor) -> torch.Tensor:
    mask = (y_n != 0) | (y_d != 0)  # the null tuple (excluded rows) carries no information
    if isinstance(targets, SemanticTargets):
        mask = mask & targets.loss_mask
    return mask


def _cache(
    model: nn.Module,
    head: nn.Module,
    loader: Iterable[Any],
    max_batches: int | None,
    device: torch.device,
) -> _Cache:
    raw = _raw_module(model)
    cache = _Cache([], [])
    captured: list[torch.Tensor] = []
    hook = head.register_forward_hook(lambda mod, args, out: captured.append(args[0].detach()))
    try:
        with torch.no_grad():
            for i, batch in enumerate(loader):
                if max_batches is not None and i >= max_batches:
                    break
                where = f"fit_head batch {i}"
                x, y, status = split_batch(batch, where)
                if isinstance(x, torch.Tensor):
                    x = x.to(device)
                y = y.to(device)
                if isinstance(status, torch.Tensor):
                    status = status.to(device)
                captured.clear()
                P, _Q, _V = split_model_outputs(raw(x))
                if len(captured) != 1:
                    raise HeadFitError(
                        f"{where}: the head ran {len(captured)} times in one forward pass; expected once"
                    )
                targets = lift_batch_targets(y, status, where)
                y_n, y_d = targets
                check_target_shape(P, y_n, where)
                cache.inputs.append(captured[0])
                cache.targets.append(
                    (y_n.to(P.dtype), y_d.to(P.dtype), _row_mask(targets, y_n, y_d))
                )
    finally:
        hook.remove()
    if not cache.inputs:
        raise HeadFitError("fit_head: the loader yielded no batches")
    return cache


def _objective(head: nn.Module, cache: _Cache, gamma: float) -> torch.Tensor:
    """Weighted mean of the implicit residual over every cached entry (float64 accumulation)."""
    device = cache.weights[0].device
    num = torch.zeros((), dtype=torch.float64, device=device)
    den = torch.zeros((), dtype=torch.float64, device=device)
    for h, (y_n, y_d, _mask), w in zip(cache.inputs, cache.targets, cache.weights, strict=True):
        out = head(h)
        P, Q = out[0].reshape(y_n.shape), out[1].reshape(y_n.shape)
        E = implicit_residual(P, Q, y_n, y_d, gamma)
        num = num + (E * w).sum().to(torch.float64)
        den = den + w.sum().to(torch.float64)
    return num / den.clamp_min(torch.finfo(torch.float64).tiny)


def _weights(cache: _Cache, options: dict[str, Any]) -> None:
    """Objective weights per entry (relative or 1, 0 where excluded); excluded targets become ``(0, 0)``."""
    cache.weights = []
    for i, (y_n, y_d, mask) in enumerate(cache.targets):
        w = torch.ones_like(y_n)
        if options["weighting"] == "relative":
            w = relative_weight(y_n, y_d, options["weight_cap"], options["weight_power"])
        zero = torch.zeros((), dtype=y_n.dtype, device=y_n.device)
        cache.weights.append(torch.where(mask, w, zero))
        cache.targets[i] = (torch.where(mask, y_n, zero), torch.where(mask, y_d, zero), mask)


def _snapshot(head: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in head.state_dict().items()}


def fit_head(
    model: nn.Module,
    loader: Iterable[Any],
    *,
    head: str | nn.Module | None = None,
    max_batches: int | None = None,
    weighting: str = "relative",
    weight_cap: float = RELATIVE_WEIGHT_CAP,
    weight_power: float = 1.0,
    gamma: float = 1e-9,
    max_iter: int = 50,
    linear_start: bool = True,
) -> HeadFitResult:
    """Fit the head's parameters to the data of ``loader`` with the rest of ``model`` fixed.

    ``model`` returns ``(P, Q[, V])`` (an ``SCMInferenceWrapper`` is unwrapped);
    ``loader`` yields ``(x, y)`` or ``(x, y, status)`` batches like the
    trainer's. The head is found by :func:`find_head` (or named by ``head``).
    Its inputs on the first ``max_batches`` batches (all when ``None``) are
    computed once, in eval mode, without gradients. The objective is
    :func:`~zpml_runtime.losses.implicit_loss` with the given ``weighting``,
    ``weight_cap``, ``weight_power`` and ``gamma`` over every used target
    (bottom targets included; excluded rows left out). Rational heads
    (``SCMRationalLayer``, ``MultivariateRationalLayer``) first get the
    :func:`~zpml_runtime.layers.fit_rational` solution when ``linear_start``
    and it lowers the objective; then L-BFGS (strong Wolfe, ``max_iter``
    evaluations) polishes. Parameters are only replaced when the objective
    improves and stays finite, so a fit never makes the head worse on these
    data. torch's global RNG is left as it was (a shuffled loader's draws are
    undone), so a run with a head fit shuffles its batches as one without.
    Returns a :class:`HeadFitResult`. Under ``torch.distributed`` rank 0's
    fit (and its objective values) is broadcast so every rank holds the same head.
    """
    if weighting not in WEIGHTINGS:
        raise InvalidConfigError(
            f"fit_head: weighting must be one of {WEIGHTINGS}, got {weighting!r}"
        )
    if isinstance(max_iter, bool) or not isinstance(max_iter, int) or max_iter < 0:
        raise InvalidConfigError(f"fit_head: max_iter must be an integer >= 0, got {max_iter!r}")
    if max_batches is not None and (
        isinstance(max_batches, bool) or not isinstance(max_batches, int) or max_batches < 1
    ):
        raise InvalidConfigError(
            f"fit_head: max_batches must be an integer >= 1 or None, got {max_batches!r}"
        )
    if not hasattr(loader, "__iter__"):
        raise UnsupportedInputError(
            f"fit_head: loader must be an iterable of batches, got {type(loader).__name__}"
        )
    t0 = time.perf_counter()
    gamma = check_nonneg_number(gamma, name="gamma", func="fit_head")
    relative_weight(
        torch.ones(1), torch.ones(1), weight_cap, weight_power
    )  # validates cap and power
    options = {"weighting": weighting, "weight_cap": weight_cap, "weight_power": weight_power}
    raw = _raw_module(model)
    params = list(raw.parameters())
    device = params[0].device if params else torch.device("cpu")
    was_training = raw.training
    raw.eval()
    try:
        with torch.random.fork_rng(
            devices=[]
        ):  # shuffled loaders draw from torch's RNG: leave it untouched
            first = next(iter(loader), None)
            if first is None:
                raise HeadFitError("fit_head: the loader yielded no batches")
            x0 = split_batch(first, "fit_head batch 0")[0]
            name, mod = find_head(
                raw, x0.to(device) if isinstance(x0, torch.Tensor) else x0, head=head
            )
            cache = _cache(raw, mod, loader, max_batches, device)
        _weights(cache, options)
        rows = int(sum(int(m.sum()) for _, _, m in cache.targets))
        if rows == 0:
            raise HeadFitError(
                "fit_head: every target row is excluded (missing/fault); nothing to fit"
            )
        cache.merge()
        result = _fit(mod, cache, gamma, max_iter, linear_start)
    finally:
        raw.train(was_training)
    before, after = _broadcast(mod, result[0], result[1])
    return HeadFitResult(name, rows, before, after, result[2], result[3], time.perf_counter() - t0)


def _fit(
    head: nn.Module, cache: _Cache, gamma: float, max_iter: int, linear_start: bool
) -> tuple[float, float, bool, int]:
    with torch.no_grad():
        before = float(_objective(head, cache, gamma))
    best, best_state = before, _snapshot(head)
    used_linear = False
    if linear_start:
        try:
            applied = load_linear_fit(head, cache)
        except (ValueError, ArithmeticError, np.linalg.LinAlgError):
            applied = False  # fit_rational refused these data: fall back to the current parameters
        if applied:
            with torch.no_grad():
                value = float(_objective(head, cache, gamma))
            if math.isfinite(value) and (value < best or not math.isfinite(best)):
                best, best_state, used_linear = value, _snapshot(head), True
            else:
                head.load_state_dict(best_state)
    evaluations = 0
    trainable = [p for p in head.parameters() if p.requires_grad]
    if max_iter > 0 and trainable:
        opt = torch.optim.LBFGS(
            trainable,
            lr=1.0,
            max_iter=max_iter,
            history_size=50,
            line_search_fn="strong_wolfe",
            tolerance_grad=1e-12,
            tolerance_change=1e-15,
        )

        def closure() -> torch.Tensor:
            nonlocal evaluations
            evaluations += 1
            opt.zero_grad(set_to_none=True)
            value = _objective(head, cache, gamma)
            if value.requires_grad:
                value.backward()
            return value.detach()

        with contextlib.suppress(
            RuntimeError
        ):  # a failed line search leaves the best state in place
            opt.step(closure)
        with torch.no_grad():
            value = float(_objective(head, cache, gamma))
        if (
            math.isfinite(value)
            and value <= best
            and all(bool(torch.isfinite(p).all()) for p in trainable)
        ):
            best, best_state = value, _snapshot(head)
    head.load_state_dict(best_state)
    return before, best, used_linear, evaluations


def _broadcast(head: nn.Module, before: float, after: float) -> tuple[float, float]:
    """Rank 0's head parameters and objectives on every rank (no-op without a process group)."""
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() < 2:
        return before, after
    device = next(head.parameters()).device
    with torch.no_grad():
        for p in head.parameters():
            dist.broadcast(p.data, src=0)
        values = torch.tensor([before, after], dtype=torch.float64, device=device)
        dist.broadcast(values, src=0)
    return float(values[0]), float(values[1])
