"""Lift training targets to projective tuples ``(Y_n, Y_d)``.

Two entry points (seed names):

* :func:`lift_targets` for sentinel-encoded streams: a finite value ``t`` becomes
  ``(t, 1)``, ``+inf`` becomes ``(1, 0)``, ``-inf`` ``(-1, 0)`` and NaN ``(1, 0)``.
* :func:`lift_semantic_targets` for audited labels: every row carries a status
  (``"finite"``, ``"bottom"``, ``"censored_below"``, ``"censored_above"``,
  ``"domain_invalid"``, ``"missing"``, ``"fault"``) and the result is a
  :class:`SemanticTargets` that knows which rows each loss term may use.

Both work on torch tensors and numpy arrays and keep the backend, device and
(floating) dtype of the values. Bottom targets are *trained*, through the tuple
``(+-1, 0)``; they are never dropped. Rows excluded from every loss ("missing",
"fault") get the null tuple ``(0, 0)``, which is no point of the projective
line: it decodes to bottom and gives exactly zero ``implicit_loss`` and zero
gradient even when a hand-written loss forgets ``loss_mask``. It is never a
finite ``0`` target (that would be ``(0, 1)``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import torch

from zpml_runtime.errors import ShapeMismatchError, UnsupportedInputError

from .errors import InvalidTargetError

__all__ = [
    "BOTTOM",
    "CENSORED_ABOVE",
    "CENSORED_BELOW",
    "DOMAIN_INVALID",
    "FAULT",
    "FINITE",
    "MISSING",
    "STATUS_CODES",
    "STATUS_NAMES",
    "InvalidTargetError",
    "SemanticTargets",
    "lift_semantic_targets",
    "lift_targets",
]

FINITE = 0
BOTTOM = 1
CENSORED_BELOW = 2
CENSORED_ABOVE = 3
DOMAIN_INVALID = 4
MISSING = 5
FAULT = 6

#: Status label -> integer code (the codes are stable and may be stored in datasets).
STATUS_CODES: dict[str, int] = {
    "finite": FINITE,
    "bottom": BOTTOM,
    "censored_below": CENSORED_BELOW,
    "censored_above": CENSORED_ABOVE,
    "domain_invalid": DOMAIN_INVALID,
    "missing": MISSING,
    "fault": FAULT,
}
#: Integer code -> status label.
STATUS_NAMES: dict[int, str] = {v: k for k, v in STATUS_CODES.items()}

Array = Any  # torch.Tensor | numpy.ndarray


# --------------------------------------------------------------------------- helpers


def _as_float(t: Any, *, name: str) -> Array:
    """Return ``t`` as a floating torch tensor or numpy array (integers are cast)."""
    if isinstance(t, torch.Tensor):
        if t.is_floating_point():
            return t
        if t.is_complex():
            raise UnsupportedInputError(f"{name} is complex ({t.dtype}); targets must be real")
        return t.to(torch.get_default_dtype())
    if isinstance(t, np.ndarray):
        if np.issubdtype(t.dtype, np.floating):
            return t
        if np.issubdtype(t.dtype, np.integer) or t.dtype == np.bool_:
            return t.astype(np.float64)
        raise UnsupportedInputError(
            f"{name} has dtype {t.dtype}; targets must be real numbers (float or integer arrays)"
        )
    if isinstance(t, int | float) and not isinstance(t, bool):
        return np.asarray(float(t), dtype=np.float64)
    if isinstance(t, Sequence) and not isinstance(t, str | bytes):
        try:
            arr = np.asarray(t, dtype=np.float64)
        except (TypeError, ValueError) as e:
            raise UnsupportedInputError(
                f"{name} must be numbers; could not convert the sequence to float: {e}"
            ) from e
        return arr
    raise UnsupportedInputError(
        f"{name} must be a torch.Tensor, a numpy.ndarray or a sequence of numbers, "
        f"got {type(t).__name__}"
    )


def _lift_pair(t: Array) -> tuple[Array, Array]:
    """Vectorised ``lift_targets`` for a float tensor/array (no Python loops)."""
    if isinstance(t, torch.Tensor):
        t = t.detach()
        finite = torch.isfinite(t)
        one = torch.ones_like(t)
        y_n = torch.where(finite, t, torch.where(t < 0, -one, one))  # NaN < 0 is False -> +1
        y_d = finite.to(t.dtype)
        return y_n, y_d
    isfinite = np.isfinite(t)
    with np.errstate(invalid="ignore"):
        a_n = np.where(isfinite, t, np.where(t < 0, -1.0, 1.0)).astype(t.dtype, copy=False)
    return a_n, isfinite.astype(t.dtype)


def _codes_from_labels(labels: Any, *, like: Array) -> Array:
    """Integer status codes (int64, same backend/device as ``like``) from labels."""
    torch_out = isinstance(like, torch.Tensor)
    if isinstance(labels, torch.Tensor):
        if labels.is_floating_point() or labels.is_complex() or labels.dtype == torch.bool:
            raise UnsupportedInputError(
                f"status_labels has dtype {labels.dtype}; pass integer codes (STATUS_CODES) "
                f"or label strings"
            )
        codes_t = labels.to(torch.int64)
        codes = codes_t.to(like.device) if torch_out else codes_t.cpu().numpy()
    else:
        arr = np.asarray(labels)
        if arr.dtype.kind in "US" or arr.dtype == object:
            uniq, inverse = np.unique(arr.astype(str), return_inverse=True)
            unknown = [u for u in uniq.tolist() if u not in STATUS_CODES]
            if unknown:
                raise InvalidTargetError(
                    f"status_labels contains unknown label {unknown[0]!r}; "
                    f"expected one of {', '.join(STATUS_CODES)}"
                )
            lut = np.asarray([STATUS_CODES[u] for u in uniq.tolist()], dtype=np.int64)
            codes = lut[inverse.reshape(arr.shape)]
        elif arr.dtype.kind in "iu":
            codes = arr.astype(np.int64)
        else:
            raise UnsupportedInputError(
                f"status_labels has dtype {arr.dtype}; pass label strings or integer codes "
                f"(STATUS_CODES)"
            )
        if torch_out:
            codes = torch.as_tensor(codes, device=like.device)
    bad = (codes < 0) | (codes > max(STATUS_NAMES))
    if bool(bad.any()):
        idx = _first_index(bad)
        raise InvalidTargetError(
            f"status_labels has unknown code {int(codes[idx])} at index {idx}; "
            f"valid codes are {STATUS_CODES}"
        )
    return codes


def _first_index(mask: Array) -> tuple[int, ...]:
    """Index tuple of the first True element (caller knows one exists)."""
    if isinstance(mask, torch.Tensor):
        return tuple(int(i) for i in mask.nonzero()[0].tolist())
    return tuple(int(i) for i in np.argwhere(mask)[0])


def _row_text(idx: tuple[int, ...]) -> str:
    if not idx:
        return "the (scalar) target"
    if len(idx) == 1:
        return f"row {idx[0]}"
    return f"row {idx[0]} (element {idx})"


def _isin(codes: Array, members: tuple[int, ...]) -> Array:
    out = codes == members[0]
    for m in members[1:]:
        out = out | (codes == m)
    return out


# --------------------------------------------------------------------------- public API


def lift_targets(t: Any) -> tuple[Array, Array]:
    """Lift sentinel-encoded targets to projective tuples ``(Y_n, Y_d)``.

    Finite ``t`` -> ``(t, 1)``; ``+inf`` -> ``(1, 0)``; ``-inf`` -> ``(-1, 0)``;
    NaN -> ``(1, 0)`` (bottom without orientation). The result has the shape,
    backend, device and dtype of ``t`` (integer input is cast to the default
    float dtype: ``torch.get_default_dtype()`` or float64 for numpy) and is
    detached from autograd. ``strict_inference(Y_n, Y_d)`` decodes it back:
    the finite values exactly, bottom at the non-finite ones.
    """
    return _lift_pair(_as_float(t, name="targets"))


@dataclasses.dataclass(frozen=True, eq=False)
class SemanticTargets:
    """Projective targets with a status per element (see :func:`lift_semantic_targets`).

    Fields: ``y_n``, ``y_d`` (float), ``status`` (int64 codes of
    :data:`STATUS_CODES`), ``loss_mask`` (bool: False for rows no loss may
    use) and ``oriented`` (bool: singular rows whose sign is known because the
    value was ``+inf`` or ``-inf``). All five share one shape, backend and device.
    ``y_n, y_d = targets`` unpacks the tuple for seed-style loss functions.
    """

    y_n: Array
    y_d: Array
    status: Array
    loss_mask: Array
    oriented: Array

    # -- status masks ---------------------------------------------------------
    def _is(self, *codes: int) -> Array:
        return _isin(self.status, codes)

    @property
    def finite_mask(self) -> Array:
        """Rows with a finite target value ``(t, 1)``."""
        return self._is(FINITE)

    @property
    def bottom_mask(self) -> Array:
        """Rows labelled ``"bottom"`` (trained through ``(+-1, 0)``)."""
        return self._is(BOTTOM)

    @property
    def domain_invalid_mask(self) -> Array:
        """Rows labelled ``"domain_invalid"`` (input outside the domain; trained as bottom)."""
        return self._is(DOMAIN_INVALID)

    @property
    def singular_mask(self) -> Array:
        """Rows trained as bottom through ``(+-1, 0)``: ``bottom | domain_invalid``."""
        return self._is(BOTTOM, DOMAIN_INVALID)

    @property
    def censored_below_mask(self) -> Array:
        """Rows whose true value lies below the stored bound ``y_n / y_d``."""
        return self._is(CENSORED_BELOW)

    @property
    def censored_above_mask(self) -> Array:
        """Rows whose true value lies above the stored bound ``y_n / y_d``."""
        return self._is(CENSORED_ABOVE)

    @property
    def censored_mask(self) -> Array:
        """``censored_below | censored_above``."""
        return self._is(CENSORED_BELOW, CENSORED_ABOVE)

    @property
    def missing_mask(self) -> Array:
        """Rows labelled ``"missing"`` (excluded from every loss)."""
        return self._is(MISSING)

    @property
    def fault_mask(self) -> Array:
        """Rows labelled ``"fault"`` (the reference failed; excluded from every loss)."""
        return self._is(FAULT)

    @property
    def oriented_mask(self) -> Array:
        """Singular rows with a known sign (value was ``+inf``/``-inf``)."""
        return self.oriented

    # -- container protocol ----------------------------------------------------
    def __iter__(self) -> Iterator[Array]:
        yield self.y_n
        yield self.y_d

    def __len__(self) -> int:
        if self.y_n.ndim == 0:
            raise TypeError("len() of scalar SemanticTargets")
        return int(self.y_n.shape[0])

    def __getitem__(self, index: Any) -> SemanticTargets:
        return SemanticTargets(
            self.y_n[index],
            self.y_d[index],
            self.status[index],
            self.loss_mask[index],
            self.oriented[index],
        )

    def select(self, mask: Array) -> SemanticTargets:
        """Rows where the boolean ``mask`` (over the leading dimension) is True."""
        return self[mask]

    @property
    def shape(self) -> tuple[int, ...]:
        """Shape shared by every field."""
        return tuple(self.y_n.shape)

    def to(self, *args: Any, **kwargs: Any) -> SemanticTargets:
        """``torch.Tensor.to`` on every field (device moves; dtype casts apply to y_n/y_d only)."""
        if not isinstance(self.y_n, torch.Tensor):
            raise UnsupportedInputError(
                "SemanticTargets.to() needs torch fields; build it from torch values "
                "or convert with torch.as_tensor first"
            )
        y_n = self.y_n.to(*args, **kwargs)
        dev = y_n.device
        return SemanticTargets(
            y_n,
            self.y_d.to(*args, **kwargs),
            self.status.to(dev),
            self.loss_mask.to(dev),
            self.oriented.to(dev),
        )


def lift_semantic_targets(values: Any, status_labels: Any) -> SemanticTargets:
    """Lift values with per-row status labels to :class:`SemanticTargets`.

    ``values``: tensor/array/sequence of shape ``S``. ``status_labels``: label
    strings, integer codes (:data:`STATUS_CODES`) or one label for all, of shape
    ``S`` or a leading part of ``S`` (e.g. ``[N]`` for ``[N, k]`` values; then
    each row's label applies to all its columns).

    Per status (value ``v``):

    * ``finite``: ``(v, 1)``; ``v`` must be finite (NaN/inf raise
      :class:`InvalidTargetError` naming the row).
    * ``bottom``, ``domain_invalid``: ``(-1, 0)`` if ``v`` is ``-inf`` else
      ``(1, 0)``; oriented when ``v`` is ``+-inf`` (any other value is ignored).
    * ``censored_below`` / ``censored_above``: ``(v, 1)`` with ``v`` the finite
      bound (the true value is below / above it); a non-finite bound raises.
    * ``missing``, ``fault``: the null tuple ``(0, 0)``, ``loss_mask`` False.
    """
    v = _as_float(values, name="values")
    codes = _codes_from_labels(status_labels, like=v)
    vshape, cshape = tuple(v.shape), tuple(codes.shape)
    if vshape[: len(cshape)] != cshape:
        raise ShapeMismatchError(
            f"status_labels has shape {cshape}; expected the values' shape {vshape} "
            f"or its leading dimensions {vshape[:1]} (one label per row)"
        )
    extra = len(vshape) - len(cshape)
    if isinstance(v, torch.Tensor):
        v = v.detach()
        codes = codes.reshape(cshape + (1,) * extra).expand(vshape)
    else:
        codes = np.broadcast_to(codes.reshape(cshape + (1,) * extra), vshape)

    is_finite_label = codes == FINITE
    censored = _isin(codes, (CENSORED_BELOW, CENSORED_ABOVE))
    singular = _isin(codes, (BOTTOM, DOMAIN_INVALID))
    excluded = _isin(codes, (MISSING, FAULT))
    if isinstance(v, torch.Tensor):
        finite_v = torch.isfinite(v)
        isinf = torch.isinf(v)
    else:
        finite_v = np.isfinite(v)
        isinf = np.isinf(v)
    for label_mask, what, fix in (
        (is_finite_label, "finite", "label it 'bottom' or 'missing', or fix the value"),
        (censored, "censored", "store the finite censoring bound, or label it 'bottom'"),
    ):
        bad = label_mask & ~finite_v
        if bool(bad.any()):
            idx = _first_index(bad)
            raise InvalidTargetError(
                f"values: {_row_text(idx)} is labelled {what} but holds {float(v[idx])}; {fix}"
            )

    y_n, y_d = _lift_pair(v)
    if isinstance(v, torch.Tensor):
        zero = torch.zeros_like(v)
        neg = v < 0  # only -inf reaches here as a negative singular orientation source
        y_n = torch.where(singular, torch.where(neg & isinf, -torch.ones_like(v), zero + 1), y_n)
        y_d = torch.where(singular, zero, y_d)
        y_n = torch.where(excluded, zero, y_n)
        y_d = torch.where(excluded, zero, y_d)
        status = codes.contiguous()
    else:
        with np.errstate(invalid="ignore"):
            neg_inf = isinf & (v < 0)
        y_n = np.where(singular, np.where(neg_inf, -1.0, 1.0), y_n).astype(v.dtype, copy=False)
        y_d = np.where(singular, 0.0, y_d).astype(v.dtype, copy=False)
        y_n = np.where(excluded, 0.0, y_n).astype(v.dtype, copy=False)
        y_d = np.where(excluded, 0.0, y_d).astype(v.dtype, copy=False)
        status = np.array(codes, dtype=np.int64)  # a writable copy (codes may be a broadcast view)
    return SemanticTargets(
        y_n=y_n,
        y_d=y_d,
        status=status,
        loss_mask=~excluded,
        oriented=singular & isinf,
    )
