"""Thresholds decided once: :func:`resolve_thresholds` and :class:`ResolvedThresholds`.

Every stage that applies a threshold (eager strict inference, the torch strict
evaluator, the ONNX back end, bundle validation, training and the losses) takes
it from here, so the validation, the order ``tau_infer <= tau_train``, the
per-factor normalisation, the power-of-two gauge and the rounding to a dtype
are decided by one piece of code:

* each threshold is validated and stored as the smallest float64 ``>= tau``
  (:func:`~zpml_core.thresholds.to_threshold`);
* ``tau_train < tau_infer`` is refused by :func:`check_order` (one message);
* ``validity_taus`` (one number for every factor, or one per factor) becomes a
  tuple by :func:`factor_taus`;
* a regauged expression (emitted ``Q' = 2**-e * Q``, see
  ``zpml_symbolic.emit.lowering.gauge``) compares ``|Q'|`` with ``tau * 2**-e``
  (:meth:`ResolvedThresholds.emitted`);
* :meth:`ResolvedThresholds.effective` rounds them up to an evaluation dtype
  (:func:`~zpml_core.thresholds.ceil_to_dtype`): ``|v| < t`` in that dtype is
  the exact real test ``|v| < tau``.

Pure Python (no numpy/torch import), so the ONNX back end can use it without
loading torch, and the plain-float helpers trace under ``torch.compile``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import Any, Protocol

from .errors import InvalidConfigError
from .thresholds import ceil_to_dtype, to_threshold

__all__ = [
    "EffectiveThresholds",
    "ResolvedThresholds",
    "check_order",
    "effective_pair",
    "factor_taus",
    "resolve_thresholds",
]


class _HasTaus(Protocol):
    """What :func:`resolve_thresholds` reads from an ``InferenceConfig``."""

    @property
    def tau_infer(self) -> float: ...

    @property
    def tau_train(self) -> float | None: ...


def check_order(
    tau_infer: Any,
    tau_train: Any,
    *,
    owner: str = "",
    infer_name: str = "tau_infer",
    train_name: str = "tau_train",
) -> None:
    """Refuse ``tau_train < tau_infer`` (the one message every config uses).

    ``owner`` prefixes the message (``"LossConfig: "``); ``infer_name`` and
    ``train_name`` name the two fields as the caller's user knows them.
    """
    if tau_train < tau_infer:
        raise InvalidConfigError(
            f"{owner}{train_name}={tau_train!r} must be >= {infer_name}={tau_infer!r} (strict "
            "semantics: tau_infer <= tau_train, the gap region is tau_infer <= |Q| < tau_train)"
        )


def factor_taus(
    validity_taus: Any, k: int, *, field: str = "validity_taus", counted: str | None = None
) -> tuple[float, ...]:
    """Per-factor thresholds: one number for all ``k`` factors, or exactly ``k`` of them.

    Each entry is validated and stored as by :func:`~zpml_core.thresholds.to_threshold`
    (the smallest float64 ``>= tau_i``). ``counted`` ends the message of a length
    mismatch (default ``"there are {k} validity factors"``).

    Raises:
        InvalidConfigError: a wrong number of entries or a bad value (named ``field[i]``).
    """
    if isinstance(validity_taus, Sequence) and not isinstance(validity_taus, str | bytes):
        if len(validity_taus) != k:
            tail = f"there are {k} validity factors" if counted is None else counted
            raise InvalidConfigError(f"{field} has {len(validity_taus)} entries but {tail}")
        return tuple(to_threshold(t, f"{field}[{i}]") for i, t in enumerate(validity_taus))
    return (to_threshold(validity_taus, field),) * k


def effective_pair(
    tau_infer: float, tau_train: float | None, dtype: str
) -> tuple[float, float | None]:
    """``(t_infer, t_train)`` of ``dtype``: each the smallest ``dtype`` value ``>=`` its tau,
    ``t_train`` never below ``t_infer`` (``None`` without ``tau_train``)."""
    t_infer = ceil_to_dtype(tau_infer, dtype, "tau_infer")
    if tau_train is None:
        return t_infer, None
    return t_infer, max(t_infer, ceil_to_dtype(tau_train, dtype, "tau_train"))


def effective_factors(
    taus: Sequence[float], dtypes: str | Sequence[str], field: str = "validity_taus"
) -> tuple[float, ...]:
    """Each ``taus[i]`` rounded up to its dtype (one dtype for all, or one per factor)."""
    per = [dtypes] * len(taus) if isinstance(dtypes, str) else list(dtypes)
    return tuple(
        ceil_to_dtype(tau, dt, f"{field}[{i}]")
        for i, (tau, dt) in enumerate(zip(taus, per, strict=True))
    )


@dataclass(frozen=True, slots=True)
class EffectiveThresholds:
    """The thresholds the comparisons of one dtype use (``|v| < t`` is exact there).

    ``t_infer`` for ``|Q|``, ``t_train`` (``None``: no gap mask) and one ``t_factors[i]``
    per validity factor. ``0.0`` means "exact zeros only"; ``inf`` a threshold above the
    dtype's largest finite value.
    """

    dtype: str
    t_infer: float
    t_train: float | None
    t_factors: tuple[float, ...]

    def to_metadata(self) -> dict[str, Any]:
        """JSON layout of the ``zpml.effective_thresholds`` record (non-finite values as text)."""
        return {
            "t_infer": _json_float(self.t_infer),
            "t_train": _json_float(self.t_train),
            "t_factors": [_json_float(t) for t in self.t_factors],
        }


def _json_float(v: float | None) -> float | str | None:
    """JSON-safe float: non-finite values become ``"inf"``, ``"-inf"``, ``"nan"``."""
    if v is None or math.isfinite(v):
        return v
    return repr(v)


@dataclass(frozen=True, slots=True)
class ResolvedThresholds:
    """Validated thresholds of one expression, in the canonical gauge.

    Attributes:
        tau_infer: the bottom threshold (smallest float64 ``>=`` the user's value).
        tau_train: the gap threshold, ``>= tau_infer``, or ``None``.
        factor_taus: one threshold per retained validity factor.
        gauge: ``e`` of the emitted ``P' = 2**-e P``, ``Q' = 2**-e Q`` (0: not regauged).
        factor_gauges: ``e_i`` of each emitted ``V_i' = 2**-e_i V_i`` (empty: all 0).

    Build it with :func:`resolve_thresholds`; :meth:`emitted` gives the thresholds the
    emitted values are compared with, :meth:`effective` their values in a dtype.
    """

    tau_infer: float
    tau_train: float | None = None
    factor_taus: tuple[float, ...] = ()
    gauge: int = 0
    factor_gauges: tuple[int, ...] = ()

    @property
    def regauged(self) -> bool:
        """True when some emitted value is a power-of-two multiple of the canonical one."""
        return bool(self.gauge or any(self.factor_gauges))

    def emitted(self) -> ResolvedThresholds:
        """The thresholds of the emitted gauge: ``tau * 2**-e`` (exact; gauge 0 after).

        The scaled values are computed exactly and stored rounded up like every
        threshold (a power of two times a float64 is that float64 unless it leaves the
        range); one beyond float64's range raises :class:`InvalidConfigError`.
        """
        if not self.regauged:
            return self
        e = self.gauge
        tau_infer = _scaled(self.tau_infer, e, "tau_infer")
        tau_train = None if self.tau_train is None else _scaled(self.tau_train, e, "tau_train")
        gauges = self.factor_gauges or (0,) * len(self.factor_taus)
        taus = tuple(
            _scaled(t, g, f"validity_taus[{i}]")
            for i, (t, g) in enumerate(zip(self.factor_taus, gauges, strict=True))
        )
        return ResolvedThresholds(tau_infer, tau_train, taus)

    def effective(
        self, dtype: str, factor_dtypes: str | Sequence[str] | None = None
    ) -> EffectiveThresholds:
        """The emitted thresholds rounded up to ``dtype`` (factors to ``factor_dtypes``,
        default ``dtype``).

        Raises:
            ThresholdUnderflowError: a positive threshold below the dtype's smallest value.
        """
        em = self.emitted()
        t_infer, t_train = effective_pair(em.tau_infer, em.tau_train, dtype)
        t_factors = effective_factors(
            em.factor_taus, dtype if factor_dtypes is None else factor_dtypes
        )
        return EffectiveThresholds(dtype, t_infer, t_train, t_factors)


def _scaled(tau: float, e: int, field: str) -> float:
    """``tau * 2**-e`` as a stored threshold (exact, rounded up; validated)."""
    return tau if e == 0 else to_threshold(Fraction(tau) * Fraction(2) ** -e, field)


def resolve_thresholds(
    config: _HasTaus | None = None,
    validity_taus: Any = 0.0,
    n_factors: int = 0,
    *,
    gauge: int = 0,
    factor_gauges: Sequence[int] = (),
    counted: str | None = None,
) -> ResolvedThresholds:
    """The thresholds of one expression, validated once.

    Args:
        config: an ``InferenceConfig`` (its ``tau_infer``/``tau_train``, already
            validated), or ``None`` for ``tau_infer=0`` (exact zeros only).
        validity_taus: one number for every factor, or one per factor.
        n_factors: the number of retained validity factors.
        gauge: ``e`` of the emitted ``P' = 2**-e P``, ``Q' = 2**-e Q`` (0: not regauged).
        factor_gauges: ``e_i`` of each emitted ``V_i' = 2**-e_i V_i`` (empty: all 0).
        counted: end of the message for a wrong number of ``validity_taus``.

    Raises:
        InvalidConfigError: bad thresholds or ``tau_train < tau_infer``.
    """
    tau_infer = 0.0 if config is None else to_threshold(config.tau_infer, "tau_infer")
    tau_train = None
    if config is not None and config.tau_train is not None:
        tau_train = to_threshold(config.tau_train, "tau_train")
        check_order(tau_infer, tau_train)
    taus = factor_taus(validity_taus, n_factors, counted=counted)
    gauges = tuple(int(g) for g in factor_gauges)
    if gauges and len(gauges) != n_factors:
        raise InvalidConfigError(
            f"factor_gauges has {len(gauges)} entries but there are {n_factors} validity factors"
        )
    return ResolvedThresholds(tau_infer, tau_train, taus, int(gauge), gauges if any(gauges) else ())
