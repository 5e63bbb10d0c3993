"""The one threshold resolver agrees with every deployed mask at the edges.

``resolve_thresholds`` decides the stored thresholds, ``ResolvedThresholds.effective``
their values in a dtype; ``strict_inference`` (numpy and torch) and the ONNX graph
must classify exactly as the real comparison ``|v| < tau`` on the values around
those thresholds (the threshold itself, its neighbours, zeros, subnormals).
"""

from __future__ import annotations

import math
import re
from decimal import Decimal
from fractions import Fraction

import numpy as np
import pytest
import torch

from zpml_core.config import InferenceConfig
from zpml_core.errors import InvalidConfigError, ThresholdUnderflowError
from zpml_core.resolution import (
    EffectiveThresholds,
    ResolvedThresholds,
    check_order,
    factor_taus,
    resolve_thresholds,
)
from zpml_core.strict import strict_inference

DTYPES = ("float16", "float32", "float64")
#: exactly representable in every dtype (2**-10), representable in float64 only (0.1, 1e-4),
#: zero, and a value whose float64 is below it (rounded up when stored)
TAUS = (2.0**-10, 0.1, 1e-4, 0.0, Fraction(1, 3), Decimal("1e-3"))


def _probes(t: float, dtype: str) -> np.ndarray:
    """Values of ``dtype`` around its effective threshold ``t`` (both signs), plus zeros."""
    np_t = np.dtype(dtype).type
    out = [0.0, -0.0, float(np.finfo(dtype).smallest_subnormal), 1.0]
    if t > 0 and math.isfinite(t):
        base = np_t(t)
        below = np.nextafter(base, np_t(0))
        above = np.nextafter(base, np_t(np.inf))
        out += [float(base), float(below), float(above)]
    vals = np.array(out + [-v for v in out], dtype=dtype)
    return vals


def _real_below(v: float, tau: Fraction) -> bool:
    """The real test: ``v == 0`` or ``|v| < tau`` (exact)."""
    return v == 0 or abs(Fraction(v)) < tau


def _exact(tau: float | Fraction | Decimal) -> Fraction:
    return Fraction(tau)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("tau", TAUS, ids=repr)
def test_effective_threshold_gives_the_real_comparison_in_every_backend(dtype, tau) -> None:
    cfg = InferenceConfig(tau_infer=tau)
    resolved = resolve_thresholds(cfg)
    eff = resolved.effective(dtype)
    assert isinstance(eff, EffectiveThresholds)
    assert (eff.t_infer, eff.t_train) == cfg.thresholds_for(dtype)
    Q = _probes(eff.t_infer, dtype)
    expected = np.array([_real_below(float(q), _exact(tau)) for q in Q])
    P = np.ones_like(Q)
    r_np = strict_inference(P, Q, config=cfg)
    assert np.array_equal(r_np.semantic_bottom_mask, expected)
    Qt = torch.from_numpy(Q.copy())
    r_t = strict_inference(torch.ones_like(Qt), Qt, config=cfg)
    assert np.array_equal(r_t.semantic_bottom_mask.numpy(), expected)


@pytest.mark.parametrize("dtype", DTYPES)
def test_per_factor_overrides_are_applied_per_factor(dtype) -> None:
    taus = [0.0, 0.1, 2.0**-10]
    resolved = resolve_thresholds(InferenceConfig(tau_infer=0.0), taus, 3)
    assert resolved.factor_taus == (0.0, 0.1, 2.0**-10)
    eff = resolved.effective(dtype)
    columns = [_probes(t, dtype) for t in eff.t_factors]
    n = max(len(c) for c in columns)
    V = np.stack([np.resize(c, n) for c in columns], axis=-1).astype(dtype)
    P = np.ones(n, dtype=dtype)
    Q = np.ones(n, dtype=dtype)
    r = strict_inference(P, Q, validity_factors=V, validity_taus=taus)
    for i, tau in enumerate(taus):
        expected = [_real_below(float(v), Fraction(tau)) for v in V[:, i]]
        assert r.factor_semantic_masks[i].tolist() == expected, (i, tau)
    # one number for every factor
    assert factor_taus(1e-3, 3) == (1e-3,) * 3


def test_tau_train_rounds_with_tau_infer_and_never_below_it() -> None:
    for dtype in DTYPES:
        cfg = InferenceConfig(tau_infer=0.1, tau_train=0.1)
        eff = resolve_thresholds(cfg).effective(dtype)
        assert eff.t_train == eff.t_infer
        eff2 = resolve_thresholds(InferenceConfig(tau_infer=1e-4, tau_train=1e-3)).effective(dtype)
        assert eff2.t_train is not None and eff2.t_train >= eff2.t_infer
        assert Fraction(eff2.t_train) >= Fraction(1, 1000)


def test_not_representable_tau_is_rounded_up_never_down() -> None:
    resolved = resolve_thresholds(InferenceConfig(tau_infer=Fraction(1, 10)))
    assert Fraction(resolved.tau_infer) >= Fraction(1, 10)
    t32 = resolved.effective("float32").t_infer
    assert Fraction(t32) >= Fraction(1, 10)
    assert Fraction(float(np.nextafter(np.float32(t32), np.float32(0)))) < Fraction(1, 10)
    # exactly representable: unchanged
    assert resolve_thresholds(InferenceConfig(tau_infer=0.25)).effective("float16").t_infer == 0.25


def test_zero_means_exact_zeros_and_underflow_is_refused() -> None:
    eff = resolve_thresholds(InferenceConfig(tau_infer=0.0)).effective("float16")
    assert eff.t_infer == 0.0
    with pytest.raises(ThresholdUnderflowError, match=r"tau_infer=.*float16"):
        resolve_thresholds(InferenceConfig(tau_infer=1e-9)).effective("float16")
    with pytest.raises(ThresholdUnderflowError, match=r"validity_taus\[1\]"):
        resolve_thresholds(None, [0.0, 1e-9], 2).effective("float16")


def test_gauge_scales_by_a_power_of_two_exactly() -> None:
    r = resolve_thresholds(
        InferenceConfig(tau_infer=1e-6, tau_train=1e-3),
        [0.1, 0.2],
        2,
        gauge=70,
        factor_gauges=[0, -3],
    )
    em = r.emitted()
    assert em.tau_infer == math.ldexp(1e-6, -70) and em.tau_train == math.ldexp(1e-3, -70)
    assert em.factor_taus == (0.1, 0.2 * 8)
    assert em.emitted() is em
    assert resolve_thresholds(None, 0.1, 1).emitted().factor_taus == (0.1,)
    with pytest.raises(InvalidConfigError, match="tau_infer"):
        resolve_thresholds(InferenceConfig(tau_infer=1e300), gauge=-100).emitted()


ONE_MESSAGE = re.compile(
    r"(\w+(?:\.\w+)?)=(\S+) must be >= (\w+(?:\.\w+)?)=(\S+) \(strict semantics: tau_infer <= "
    r"tau_train, the gap region is tau_infer <= \|Q\| < tau_train\)"
)


def _message(fn) -> str:
    with pytest.raises(InvalidConfigError) as info:
        fn()
    return str(info.value)


def test_tau_infer_above_tau_train_is_refused_with_one_message_everywhere() -> None:
    from zpml_core.spec import classify
    from zpml_runtime.losses import LossConfig, SCMTrainingLoss
    from zpml_runtime.training import TrainingConfig

    loss = SCMTrainingLoss(LossConfig(tau_infer=1e-3, tau_train=1e-2))
    P = torch.ones(2)
    messages = [
        _message(lambda: InferenceConfig(tau_infer=1e-3, tau_train=1e-4)),
        _message(lambda: resolve_thresholds(_Taus(1e-3, 1e-4))),
        _message(lambda: check_order(1e-3, 1e-4)),
        _message(lambda: classify(1.0, 1.0, tau_infer=1e-3, tau_train=1e-4)),
        _message(lambda: TrainingConfig(tau_infer=1e-3, tau_train_min=1e-4, tau_train_max=1e-2)),
        _message(lambda: LossConfig(tau_infer=1e-3, tau_train=1e-4)),
        _message(lambda: loss((P, P), (P, P), tau_train=1e-4)),
    ]
    for m in messages:
        found = ONE_MESSAGE.search(m)
        assert found is not None, m
        assert found.group(2) == "0.0001" and found.group(4) == "0.001", m


class _Taus:
    """A config-like object (the resolver reads only the two thresholds)."""

    def __init__(self, tau_infer: float, tau_train: float | None) -> None:
        self.tau_infer = tau_infer
        self.tau_train = tau_train


def test_resolved_thresholds_are_frozen_and_hashable() -> None:
    r = resolve_thresholds(InferenceConfig(tau_infer=0.1), 0.2, 2)
    assert r == ResolvedThresholds(0.1, None, (0.2, 0.2))
    assert hash(r) == hash(ResolvedThresholds(0.1, None, (0.2, 0.2)))
    with pytest.raises(AttributeError):
        r.tau_infer = 0.5  # type: ignore[misc]
    assert r.effective("float64").to_metadata() == {
        "t_infer": 0.1,
        "t_train": None,
        "t_factors": [0.2, 0.2],
    }
    assert (
        ResolvedThresholds(1e300, None, ()).effective("float16").to_metadata()["t_infer"] == "inf"
    )
