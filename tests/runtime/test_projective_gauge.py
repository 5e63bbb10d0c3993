"""GaugePolicy and ProjectiveNormalize."""

from __future__ import annotations

import json
import math

import pytest
import torch

from zpml_runtime.errors import InvalidConfigError, UnsupportedInputError
from zpml_runtime.inference import InferenceConfig, strict_inference
from zpml_runtime.projective import GaugePolicy, ProjectiveNormalize


def test_policy_values_are_json_strings():
    assert json.dumps(list(GaugePolicy)) == (
        '["canonical_denominator", "unit_l2_projective", "angular_unit_circle"]'
    )
    assert GaugePolicy.parse("angular_unit_circle") is GaugePolicy.ANGULAR_UNIT_CIRCLE
    with pytest.raises(InvalidConfigError, match="unknown gauge policy 'unit'"):
        GaugePolicy.parse("unit")


def test_canonical_is_identity_and_unit_policies_normalise():
    P, Q = torch.tensor([3.0, -1e-30, 1e38]), torch.tensor([4.0, 1e-30, -3e38])
    assert ProjectiveNormalize(GaugePolicy.CANONICAL_DENOMINATOR)(P, Q) == (P, Q)
    for policy in (GaugePolicy.UNIT_L2_PROJECTIVE, "angular_unit_circle"):
        p, q = ProjectiveNormalize(policy)(P, Q)
        assert torch.allclose(torch.hypot(p, q), torch.ones(3))  # no overflow for 1e38
        assert torch.allclose(p / q, P / Q)


def test_norm_is_detached():
    P = torch.tensor([3.0], requires_grad=True)
    Q = torch.tensor([4.0], requires_grad=True)
    p, _ = ProjectiveNormalize()(P, Q)
    p.sum().backward()
    assert P.grad.item() == pytest.approx(1 / 5) and Q.grad is None  # no path through the norm


def test_bottoms_and_faults_are_preserved():
    P = torch.tensor([0.0, 1.0, math.inf, 2.0])
    Q = torch.tensor([0.0, 0.0, 1.0, math.nan])
    p, q = ProjectiveNormalize()(P, Q)
    result = strict_inference(p, q, config=InferenceConfig(tau_infer=0.0))
    assert result.bottom_provenance.tolist() == [2, 2, 1, 1]
    gamma = ProjectiveNormalize(gamma=1.0)
    p, q = gamma(torch.tensor([3.0]), torch.tensor([4.0]))
    assert p.item() == pytest.approx(0.5) and q.item() == pytest.approx(4 / 6)


def test_argument_errors():
    with pytest.raises(InvalidConfigError, match="gamma must be a finite number >= 0"):
        ProjectiveNormalize(gamma=-1.0)
    with pytest.raises(UnsupportedInputError, match="expects torch tensors"):
        ProjectiveNormalize()(1.0, 2.0)  # type: ignore[arg-type]
    assert "unit_l2_projective" in repr(ProjectiveNormalize())
