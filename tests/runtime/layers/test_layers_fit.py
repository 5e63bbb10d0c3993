"""Fitting acceptance of the rational layers (issue 11), with the exact pole report.

Plain torch loop: full-batch L-BFGS (strong Wolfe line search) in float64 on
``zpml_runtime.losses.implicit_loss`` of the lifted targets. Seeds perturb the
initial coefficients (``0.1 * randn``). The slow tests run 3 seeds; the fast
ones run one seed with fewer iterations.
"""

from __future__ import annotations

import math

import pytest
import torch

from zpml_runtime.inference import InferenceConfig, SCMInferenceWrapper
from zpml_runtime.layers import RationalTemplateLayer, SCMRationalLayer, pole_report
from zpml_runtime.losses import implicit_loss
from zpml_runtime.training.targets import lift_targets

F64 = torch.float64
X = torch.linspace(-1, 1, 512, dtype=F64)
Y = 1 / (X + 0.1)


def fit(layer: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, iters: int) -> float:
    y_n, y_d = lift_targets(y)
    opt = torch.optim.LBFGS(
        layer.parameters(),
        lr=1,
        max_iter=iters,
        history_size=50,
        line_search_fn="strong_wolfe",
        tolerance_grad=1e-30,
        tolerance_change=1e-30,
    )

    def closure() -> torch.Tensor:
        opt.zero_grad()
        P, Q = layer(x)[:2]
        loss = implicit_loss(P, Q, y_n, y_d)
        loss.backward()
        return loss

    opt.step(closure)
    return float(closure().detach())


def perturbed_rational(seed: int, **kw) -> SCMRationalLayer:
    torch.manual_seed(seed)
    layer = SCMRationalLayer(3, 3, dtype=F64, **kw)
    with torch.no_grad():
        layer.numerator.add_(0.1 * torch.randn(4, dtype=F64))
        layer.denominator.add_(0.1 * torch.randn(4, dtype=F64))
    return layer


def perturbed_template(seed: int) -> RationalTemplateLayer:
    torch.manual_seed(seed)
    init = {
        k: v + 0.1 * float(torch.randn(()))
        for k, v in {"a0": 1.0, "a1": 0.0, "b0": 1.0, "b1": 0.0}.items()
    }
    return RationalTemplateLayer(
        "(a0 + a1*x)/(b0 + b1*x)", ["a0", "a1", "b0", "b1"], init=init, dtype=F64
    )


def pole_error(layer, interval=(-1, 1), at=-0.1) -> float:
    nearest = pole_report(layer, interval).nearest(at)
    return math.inf if nearest is None else abs(nearest.location - at)


def check_rational(seed: int, iters: int) -> None:
    layer = perturbed_rational(seed)
    fit(layer, X, Y, iters)
    err = pole_error(layer)
    print(f"SCMRationalLayer(3, 3) seed {seed}: pole error {err:.3g}")
    assert err <= 1e-4


def check_template(seed: int, iters: int) -> None:
    layer = perturbed_template(seed)
    fit(layer, X.unsqueeze(-1), Y, iters)
    err = pole_error(layer)
    with torch.no_grad():
        P, Q = layer(X.unsqueeze(-1))
    rel = float(((P / Q - Y).abs() / Y.abs()).max())
    print(f"template seed {seed}: pole error {err:.3g}, max rel error {rel:.3g}")
    assert err <= 1e-6 and rel <= 1e-5
    # strict eval: bottom exactly where the learned Q vanishes, finite elsewhere
    wrapped = SCMInferenceWrapper(layer, config=InferenceConfig(tau_infer=1e-9)).eval()
    pole = pole_report(layer, (-1, 1)).poles[0]
    at = torch.tensor([[pole.location], [-0.1 + 1e-3], [0.5]], dtype=F64)
    decoded, bottom, _ = wrapped(at)
    assert bottom.tolist() == [True, False, False] and torch.isfinite(decoded[1:]).all()


def test_rational_fit_fast():
    check_rational(0, 150)


def test_template_fit_fast():
    check_template(0, 100)


@pytest.mark.slow
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_rational_fit_three_seeds(seed):
    check_rational(seed, 300)


@pytest.mark.slow
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_template_fit_three_seeds(seed):
    check_template(seed, 200)


def check_tan(seed: int, iters: int) -> float:
    x = torch.linspace(-2, 2, 512, dtype=F64)
    layer = perturbed_rational(seed, domain=(-2.0, 2.0))
    fit(layer, x, torch.tan(x), iters)
    report = pole_report(layer, (-2, 2))
    assert len(report.zeros) == 2 and len(report.poles) == 2  # no spurious real zero of Q
    errs = [abs(abs(p) - math.pi / 2) for p in report.locations]
    assert report.locations[0] < 0 < report.locations[1]
    assert max(errs) <= 1e-3
    with torch.no_grad():
        P, Q = layer(x)
    away = torch.minimum((x - math.pi / 2).abs(), (x + math.pi / 2).abs()) > 0.1
    linf = float((P / Q - torch.tan(x))[away].abs().max())
    print(
        f"tan [3/3] seed {seed}: pole errors {errs[0]:.3g}, {errs[1]:.3g}; L-inf (|x -+ pi/2| > 0.1) {linf:.3g}"
    )
    return linf


def test_tan_pade_fit_fast():
    assert check_tan(0, 400) < 0.2


@pytest.mark.slow
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_tan_pade_fit_three_seeds(seed):
    assert check_tan(seed, 500) < 0.2
