"""Elementwise kernels of strict inference (internal).

Every kernel takes ``P`` and ``Q`` already broadcast to the output shape and
cast to one float dtype, plus the exact thresholds of
:func:`~zpml_runtime.inference._arrays.effective_threshold`, and returns
``(d, fault, semantic, below_train)``:

* ``d``: ``P / Q`` where ``Q != 0`` and ``P`` where ``Q == 0`` (dividing by 1
  there keeps the finiteness test of ``P`` in the same pass; those entries are
  semantic bottoms and are overwritten by NaN afterwards);
* ``fault``: ``P`` or ``Q`` non-finite, or the quotient overflowed;
* ``semantic``: ``|Q| < t_infer`` (``t_infer > 0``, so exact zeros are included;
  NaN/Inf compare false, so only finite ``Q`` qualify);
* ``below_train``: ``|Q| < t_train`` or ``None``.

The torch "fast" kernel is tuned for eager mode: it reuses two float buffers
with ``out=`` arguments and derives masks from float tests (``x - x`` is NaN
exactly for non-finite ``x``), because bool-producing comparisons and fresh
allocations dominate the cost on CPU. The "functional" kernel states the same
mathematics with plain functional ops for ``torch.compile``/tracing, where the
compiler fuses the passes. Tests check that both kernels and numpy agree bit
for bit.
"""

from __future__ import annotations

import numpy as np
import torch

__all__ = [
    "numpy_core",
    "numpy_factor",
    "torch_core_fast",
    "torch_core_functional",
    "torch_factor_fast",
    "torch_factor_functional",
]

_SMALLEST = {
    torch.float16: 2.0**-24,
    torch.bfloat16: 2.0**-133,
    torch.float32: 2.0**-149,
    torch.float64: 2.0**-1074,
}

TorchCore = tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor | None]
NumpyCore = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray | None]


def torch_core_fast(P: torch.Tensor, Q: torch.Tensor, t: float, tr: float | None) -> TorchCore:
    """Eager kernel: two float buffers, float-valued tests, one ``.bool()`` per mask."""
    aq = torch.abs(Q)
    buf = torch.empty_like(aq)
    semantic = torch.lt(aq, t, out=buf).bool()
    below_train = None if tr is None else torch.lt(aq, tr, out=buf).bool()
    torch.eq(aq, 0.0, out=buf).add_(Q)  # Q, or 1 where Q == 0
    d = torch.div(P, buf, out=buf)
    # (d - d) is NaN iff d is non-finite; times Q is NaN iff additionally Q is.
    fault = torch.sub(d, d, out=aq).mul_(Q).bool()
    return d, fault, semantic, below_train


def torch_core_functional(
    P: torch.Tensor, Q: torch.Tensor, t: float, tr: float | None
) -> TorchCore:
    """The same mathematics as :func:`torch_core_fast` with functional ops (compile/trace)."""
    aq = torch.abs(Q)
    semantic = aq < t
    below_train = None if tr is None else aq < tr
    d = P / torch.where(aq == 0.0, torch.ones_like(Q), Q)
    fault = ~(torch.isfinite(d) & torch.isfinite(Q))
    return d, fault, semantic, below_train


def torch_factor_fast(V: torch.Tensor, t: float) -> tuple[torch.Tensor, torch.Tensor]:
    """``(~isfinite(V), isfinite(V) & |V| < t)`` for one validity factor (eager).

    With ``t`` the smallest subnormal (``tau = 0``: exact zeros only) the
    semantic test is the single comparison ``V == 0``, which is the same set
    (NaN and Inf compare unequal to 0) in one pass instead of two.
    """
    fault = torch.sub(V, V).bool()
    if t == _SMALLEST.get(V.dtype):
        return fault, torch.eq(V, 0.0)
    return fault, torch.abs(V) < t


def torch_factor_functional(V: torch.Tensor, t: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Functional twin of :func:`torch_factor_fast`."""
    return ~torch.isfinite(V), torch.abs(V) < t


def numpy_core(P: np.ndarray, Q: np.ndarray, t: float, tr: float | None) -> NumpyCore:
    """Numpy kernel (same mathematics; one float buffer, in-place where safe)."""
    with np.errstate(all="ignore"):
        aq = np.abs(Q)
        semantic = np.asarray(aq < t)  # np.asarray: 0-d inputs give numpy scalars
        below_train = None if tr is None else np.asarray(aq < tr)
        d = np.asarray(np.add(Q, aq == 0, dtype=Q.dtype))  # Q, or 1 where Q == 0 (0-d safe)
        np.divide(P, d, out=d)
        ok = np.asarray(np.isfinite(d))
        ok &= np.isfinite(aq)
        fault = np.logical_not(ok, out=ok)
    return d, fault, semantic, below_train


def numpy_factor(V: np.ndarray, t: float) -> tuple[np.ndarray, np.ndarray]:
    """``(~isfinite(V), isfinite(V) & |V| < t)`` for one numpy validity factor."""
    with np.errstate(all="ignore"):
        return ~np.isfinite(V), np.abs(V) < t
