"""Elementwise kernels of strict inference (internal).

Every kernel takes ``P`` and ``Q`` already broadcast to the output shape and
cast to one float dtype, plus the exact thresholds of
:func:`~zpml_core.arrays.effective_threshold`, and returns
``(d, fault, semantic, below_train)``:

* ``d``: ``P / Q`` where ``Q != 0`` and ``P`` where ``Q == 0`` (dividing by 1
  there keeps the finiteness test of ``P`` in the same pass; those entries are
  semantic bottoms and are overwritten by NaN afterwards);
* ``fault``: ``P`` or ``Q`` non-finite, or the quotient overflowed;
* ``semantic``: ``Q == 0`` or ``|Q| < t_infer`` (NaN/Inf compare false, so only
  finite ``Q`` qualify). Exact zeros are always tested with an equality
  (``x.bool()`` negated, or ``x == 0``): ``t_infer == 0`` means the test is
  ``Q == 0`` alone, and a positive ``t_infer`` below the dtype's smallest
  normal is OR-ed with ``Q == 0``, because under flush-to-zero /
  denormals-are-zero (``torch.set_flush_denormal(True)``, ``-ffast-math``
  libraries) a subnormal threshold reads as 0 and ``|Q| < t`` would accept
  ``Q == 0``. A normal ``t_infer`` catches zeros by itself. Under DAZ a
  subnormal ``Q`` compares equal to 0, so it is a semantic bottom there
  (fail-closed);
* ``below_train``: ``|Q| < t_train`` or ``None``.

The torch "fast" kernel is tuned for eager mode: it reuses two float buffers
with ``out=`` arguments and derives masks from float tests (``x - x`` is NaN
exactly for non-finite ``x``; ``x.bool()`` negated in place is ``x == 0``),
because bool-producing comparisons and fresh allocations dominate the cost on
CPU. On large CPU batches it skips provable no-ops after cheap whole-tensor
tests: no zero ``Q`` (:func:`any_set`) means ``d = P / Q`` directly, and a
finite sum (:func:`all_finite`) proves a fault mask all False without the
elementwise test. The "functional" kernel states the same mathematics with
plain functional ops for ``torch.compile``/tracing, where the compiler fuses
the passes. Tests check that both kernels and numpy agree bit for bit.
"""

from __future__ import annotations

import math

import numpy as np
import torch

__all__ = [
    "ANY_TEST_MIN_NUMEL",
    "all_finite",
    "any_set",
    "below_functional",
    "fill_nan",
    "numpy_below",
    "numpy_core",
    "numpy_factor",
    "torch_core_fast",
    "torch_core_functional",
    "torch_factor_fast",
    "torch_factor_functional",
    "zero_mask",
]

#: smallest positive *normal* value per dtype: a positive effective threshold below it
#: is subnormal, reads as 0 under denormals-are-zero, and is OR-ed with ``v == 0``
_NORMAL = {
    torch.float16: 2.0**-14,
    torch.bfloat16: 2.0**-126,
    torch.float32: 2.0**-126,
    torch.float64: 2.0**-1022,
}
_NUMPY_NORMAL = {
    np.dtype(np.float16): 2.0**-14,
    np.dtype(np.float32): 2.0**-126,
    np.dtype(np.float64): 2.0**-1022,
}

TorchCore = tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor | None]
NumpyCore = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray | None]


#: Below this many elements (or off CPU) the eager kernels do not test "is any entry
#: set" to skip work: the test (one ``max`` over a mask's bytes, a host sync on GPU)
#: would cost more than it can save.
ANY_TEST_MIN_NUMEL = 1 << 14


def any_set(mask: torch.Tensor) -> bool:
    """Whether a bool tensor has a True entry, or True when testing is not worthwhile.

    "Not worthwhile" (small or non-CPU tensors) answers True, so callers only
    ever skip work that is provably a no-op.
    """
    if mask.device.type != "cpu" or mask.numel() < ANY_TEST_MIN_NUMEL:
        return True
    return bool(mask.view(torch.uint8).max())


#: ``fill_nan`` uses numpy's masked copy when at most this fraction of entries is set
SPARSE_FILL_FRACTION = 1 / 100

_NUMPY_FLOATS = (torch.float16, torch.float32, torch.float64)


def fill_nan(d: torch.Tensor, mask: torch.Tensor) -> None:
    """Write NaN into ``d`` where the bool ``mask`` (same shape) is set, in place.

    ``masked_fill_`` is a scalar loop on CPU, about 0.7 ms per 1e6 entries
    even for one set entry. For large contiguous CPU tensors with few set
    entries (at most :data:`SPARSE_FILL_FRACTION`; one ``count_nonzero`` pass
    decides) numpy's masked copy, which skips unset mask bytes in vector
    steps, writes the same NaN several times faster. Same result either way.
    """
    if (
        d.device.type == "cpu"
        and d.dtype in _NUMPY_FLOATS
        and d.numel() >= ANY_TEST_MIN_NUMEL
        and d.shape == mask.shape
        and d.is_contiguous()
        and mask.is_contiguous()
    ):
        dn, mn = d.detach().numpy(), mask.numpy()
        if np.count_nonzero(mn) <= d.numel() * SPARSE_FILL_FRACTION:
            np.copyto(dn, np.asarray(math.nan, dtype=dn.dtype), where=mn)
            return
    d.masked_fill_(mask, math.nan)


def _testable(x: torch.Tensor) -> bool:
    return (
        x.device.type == "cpu"
        and x.numel() >= ANY_TEST_MIN_NUMEL
        and x.dtype in (torch.float32, torch.float64)
    )


def all_finite(*xs: torch.Tensor) -> bool:
    """True only when every entry of every float tensor in ``xs`` is provably finite.

    A sum containing NaN or ±Inf is NaN or ±Inf, so a finite sum proves every
    term finite. Two contiguous tensors of one shape and dtype are tested in
    one pass with a dot product: a non-finite entry of either makes its term
    non-finite (``Inf * 0`` and ``NaN * y`` are NaN, ``Inf * y`` is ±Inf for
    ``y != 0``). A sum that overflows from finite terms answers False ("not
    proven"), as do small or non-CPU tensors and dtypes other than
    float32/float64, so callers then compute the exact mask: the answer only
    ever lets them skip work that is provably a no-op.
    """
    if not all(_testable(x) for x in xs):
        return False
    if (
        len(xs) == 2
        and xs[0].shape == xs[1].shape
        and xs[0].dtype == xs[1].dtype
        and xs[0].is_contiguous()
        and xs[1].is_contiguous()
    ):
        return math.isfinite(float(torch.dot(xs[0].view(-1), xs[1].view(-1))))
    return all(math.isfinite(float(torch.sum(x))) for x in xs)


def zero_mask(x: torch.Tensor) -> torch.Tensor:
    """``x == 0`` (either sign; NaN and ±Inf give False) as a fresh bool tensor.

    On CPU ``x.bool()`` is a vectorised pass and negating a bool tensor in
    place is cheap, together about a third of ``logical_not(x)`` on float input.
    """
    if x.device.type != "cpu":
        return torch.logical_not(x)
    return x.bool().logical_not_()


def _no_entries(shape: torch.Size, device: torch.device) -> torch.Tensor:
    """An all-False bool mask."""
    return torch.zeros(shape, dtype=torch.bool, device=device)


def torch_core_fast(P: torch.Tensor, Q: torch.Tensor, t: float, tr: float | None) -> TorchCore:
    """Eager kernel: two float buffers, float-valued tests, one ``.bool()`` per mask.

    With ``t == 0`` (``tau_infer = 0``: exact zeros only) the semantic mask is
    ``Q == 0`` (:func:`zero_mask`, one pass), and when no ``Q`` is zero (the
    common case on large CPU batches) ``d`` is simply ``P / Q`` (no "1 where
    Q == 0" buffer). A subnormal ``t`` also ORs in :func:`zero_mask`.
    """
    buf = torch.empty(Q.shape, dtype=Q.dtype, device=Q.device)
    scratch = torch.empty_like(buf)
    below_train = None
    if t == 0.0:
        semantic = zero_mask(Q)  # Q == 0, either sign
        if tr is not None:
            below_train = torch.lt(torch.abs(Q, out=scratch), tr, out=scratch).bool()
        if any_set(semantic):
            torch.eq(Q, 0.0, out=buf).add_(Q)  # Q, or 1 where Q == 0
            d = torch.div(P, buf, out=buf)
        else:
            d = torch.div(P, Q, out=buf)
    else:
        aq = torch.abs(Q, out=scratch)
        semantic = torch.lt(aq, t, out=buf).bool()
        if t < _NORMAL[Q.dtype]:  # subnormal t: 0 under DAZ, so test zeros by equality
            semantic.logical_or_(zero_mask(Q))
        if tr is not None:
            below_train = torch.lt(aq, tr, out=buf).bool()
        torch.eq(aq, 0.0, out=buf).add_(Q)  # Q, or 1 where Q == 0
        d = torch.div(P, buf, out=buf)
    if all_finite(d, Q):
        return d, _no_entries(Q.shape, Q.device), semantic, below_train
    # (d - d) is NaN iff d is non-finite; times Q is NaN iff additionally Q is.
    fault = torch.sub(d, d, out=scratch).mul_(Q).bool()
    return d, fault, semantic, below_train


def torch_core_functional(
    P: torch.Tensor, Q: torch.Tensor, t: float, tr: float | None
) -> TorchCore:
    """The same mathematics as :func:`torch_core_fast` with functional ops (compile/trace)."""
    aq = torch.abs(Q)
    semantic = below_functional(Q, aq, t)
    below_train = None if tr is None else aq < tr
    d = P / torch.where(aq == 0.0, torch.ones_like(Q), Q)
    fault = ~(torch.isfinite(d) & torch.isfinite(Q))
    return d, fault, semantic, below_train


def torch_factor_fast(
    V: torch.Tensor, t: float, scratch: torch.Tensor | None = None, *, finite: bool = False
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(~isfinite(V), isfinite(V) & |V| < t)`` for one validity factor (eager).

    The fault mask is ``(V - V).bool()`` (``V - V`` is 0 for finite ``V``, NaN
    otherwise), written through a float buffer: float-valued tests followed by
    one ``.bool()`` cost less on CPU than bool-producing comparisons. With
    ``t == 0`` (``tau = 0``: exact zeros only) the semantic mask is
    :func:`zero_mask`: true exactly for ``V == 0`` (either sign); a subnormal
    ``t`` ORs it in (see the module docstring).
    ``scratch`` is an optional float buffer of ``V``'s shape, dtype and device
    to reuse (overwritten). ``finite=True`` says the caller has already proven
    every entry finite (:func:`all_finite`); otherwise it is tested here.
    """
    if (
        scratch is None
        or scratch.shape != V.shape
        or scratch.dtype != V.dtype
        or scratch.device != V.device
    ):
        scratch = torch.empty(V.shape, dtype=V.dtype, device=V.device)
    if finite or all_finite(V):
        fault = _no_entries(V.shape, V.device)
    else:
        fault = torch.sub(V, V, out=scratch).bool()
    if t == 0.0:
        return fault, zero_mask(V)
    semantic = torch.lt(torch.abs(V, out=scratch), t, out=scratch).bool()
    if t < _NORMAL[V.dtype]:
        semantic.logical_or_(zero_mask(V))
    return fault, semantic


def torch_factor_functional(V: torch.Tensor, t: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Functional twin of :func:`torch_factor_fast`."""
    return ~torch.isfinite(V), below_functional(V, torch.abs(V), t)


def below_functional(V: torch.Tensor, aV: torch.Tensor, t: float) -> torch.Tensor:
    """``V == 0 | |V| < t`` with functional ops (``aV = |V|``); the equality only where needed."""
    if t == 0.0:
        return V == 0.0
    if t < _NORMAL[V.dtype]:
        return (aV < t) | (V == 0.0)
    return aV < t


def numpy_below(V: np.ndarray, aV: np.ndarray, t: float) -> np.ndarray:
    """``V == 0 | |V| < t`` for numpy arrays (``aV = |V|``), as a bool array."""
    if t == 0.0:
        return np.asarray(V == 0.0)
    out = np.asarray(aV < t)
    normal = _NUMPY_NORMAL.get(V.dtype)
    if normal is None:  # e.g. ml_dtypes' bfloat16
        normal = _NUMPY_NORMAL[V.dtype] = float(np.finfo(V.dtype).smallest_normal)
    if t < normal:
        out = np.asarray(out | (V == 0.0))
    return out


def numpy_core(P: np.ndarray, Q: np.ndarray, t: float, tr: float | None) -> NumpyCore:
    """Numpy kernel (same mathematics; one float buffer, in-place where safe)."""
    with np.errstate(all="ignore"):
        aq = np.abs(Q)
        semantic = numpy_below(Q, aq, t)
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
        return ~np.isfinite(V), numpy_below(V, np.abs(V), t)
