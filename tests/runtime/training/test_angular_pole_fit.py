"""Seed 004 (projective learning, angular head) end to end.

``SEED_EXAMPLE`` is the last code block of seed 004 with its imports renamed to
``zpml_runtime``; it must run as written. Then the same model is trained with
``TrainingConfig(max_epochs=200)`` and judged on the seed grid against the
issue's targets. ``tau_infer`` for the bottom checks is calibrated by a stated
rule (the seed's literal ``tau_infer=1e-6`` would need the learned pole placed
to ~1e-6, see docs/training.md, "Calibrating tau_infer"): the largest swept threshold with *zero* false
bottoms on a held-out grid whose in-range points are ``|x + 0.1| > 1e-3``
(``recommend_tau_infer(..., max_false_bottom_rate=0)``).

The library-side improvement is ``TrainingConfig(head_fit="epoch")``: the
example's code is unchanged, only its config line gains the option (the head
is solved from data after every epoch, variable projection). Seeds 0-9 are
measured in ``benchmarks/bench_training.py``; here two seeds run fast and all
ten as a slow test, against the targets: pole within 1e-3 with a calibrated
bottom on >= 9/10 seeds, median relative error <= 2e-3 on >= 8/10.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from zpml_runtime.metrics import recommend_tau_infer, tau_infer_sweep_from_q_abs

SEED_EXAMPLE = """
import torch
import torch.nn as nn

from zpml_runtime.inference import InferenceConfig, SCMInferenceWrapper
from zpml_runtime.layers.angular_projective import AngularProjectiveHead
from zpml_runtime.losses.implicit import implicit_loss
from zpml_runtime.training import SCMTrainer, TrainingConfig
from torch.utils.data import DataLoader, TensorDataset


class ToyAngularProjective(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.backbone = nn.Sequential(nn.Linear(1, 32), nn.ReLU(), nn.Linear(32, 32), nn.ReLU())
        self.head = AngularProjectiveHead(input_dim=32, output_dim=1, theta_scale=1.0)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.backbone(x)
        p, q = self.head(h)
        return p.squeeze(-1), q.squeeze(-1)


model = ToyAngularProjective()
wrapped = SCMInferenceWrapper(model, config=InferenceConfig(tau_infer=1e-6, tau_train=1e-4))

# Train on smooth tuples (wrapper in train mode passes (P, Q) through unchanged).
x = torch.linspace(-1.0, 1.0, 512).unsqueeze(-1)
y = 1.0 / (x + 0.1)  # may include large-magnitude targets near the pole
train_loader = DataLoader(TensorDataset(x, y.squeeze(-1)), batch_size=128, shuffle=True)


def loss_fn(outputs, lifted_targets):
    p, q = outputs
    y_n, y_d = lifted_targets
    return implicit_loss(p, q, y_n, y_d)


opt = torch.optim.AdamW(wrapped.parameters(), lr=1e-3)
trainer = SCMTrainer(model=wrapped, optimizer=opt, loss_fn=loss_fn, train_loader=train_loader)
trainer.fit()

# Infer on strict (wrapper in eval mode decodes + emits masks).
wrapped.eval()
decoded, bottom_mask, gap_mask = wrapped(x)
"""

POLE = -0.1


@pytest.fixture(autouse=True)
def _one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def run_seed_example(*, seed: int, config_line: str | None = None) -> dict:
    """Execute the seed example (optionally with ``config=...`` passed to SCMTrainer)."""
    code = SEED_EXAMPLE
    if config_line is not None:
        code = code.replace(
            "train_loader=train_loader)", f"train_loader=train_loader, config={config_line})"
        )
    torch.manual_seed(seed)
    namespace: dict = {"__name__": "seed004_example"}
    exec(compile(code, "seed004_example", "exec"), namespace)  # noqa: S102 - our own constant code
    return namespace


def evaluate_pole_fit(wrapped) -> dict:
    """The issue's numbers for a trained seed-004 model."""
    from zpml_runtime.inference import InferenceConfig, strict_inference

    x = torch.linspace(-1.0, 1.0, 512).unsqueeze(-1)
    y = (1.0 / (x + 0.1)).squeeze(-1)
    with torch.no_grad():
        P, Q = wrapped.raw(x)
        away = (x.squeeze(-1) - POLE).abs() > 0.05
        rel = ((P / Q - y) / y).abs()[away]
        # sign changes of Q on a fine grid around the pole
        xf = torch.linspace(-0.2, 0.0, 200001, dtype=torch.float64).unsqueeze(-1).float()
        _, qf = wrapped.raw(xf)
        flips = torch.nonzero(torch.sign(qf[:-1]) != torch.sign(qf[1:])).squeeze(-1)
        poles = (0.5 * (xf[flips, 0] + xf[flips + 1, 0])).tolist()
        # calibrate tau_infer on a held-out grid (not the training grid)
        xh = torch.linspace(-1.0, 1.0, 40001).unsqueeze(-1)
        _, qh = wrapped.raw(xh)
        in_range = ((xh.squeeze(-1) - POLE).abs() > 1e-3).numpy()
        taus = np.logspace(-8, -1, 141).tolist()
        sweep = tau_infer_sweep_from_q_abs(q_abs=qh.abs().numpy(), is_in_range=in_range, taus=taus)
        tau = recommend_tau_infer(sweep, max_false_bottom_rate=0.0).tau_infer
        pts = torch.cat([torch.tensor([[POLE]]), xh])
        Pp, Qp = wrapped.raw(pts)
        res = strict_inference(
            Pp, Qp, config=InferenceConfig(tau_infer=tau, tau_train=max(tau, 1e-4))
        )
        bottom = res.bottom_mask
        far = (pts.squeeze(-1) - POLE).abs() > 1e-3
        _, q_seed_tau = wrapped.raw(torch.tensor([[POLE]]))
    nearest = min(poles, key=lambda p: abs(p - POLE)) if poles else float("nan")
    return {
        "median": float(rel.median()),
        "max": float(rel.max()),
        "pole_error": abs(nearest - POLE),
        "n_sign_changes": len(poles),
        "tau_infer": tau,
        "bottom_at_pole": bool(bottom[0]),
        "bottom_far": int((bottom & far).sum()),
        "q_at_pole": float(q_seed_tau.abs()),
    }


def test_seed_example_runs_as_written():
    ns = run_seed_example(seed=0)
    decoded, bottom_mask, gap_mask = ns["decoded"], ns["bottom_mask"], ns["gap_mask"]
    history = ns["trainer"].history
    assert len(history) == 100  # TrainingConfig() default
    assert history[-1]["train_loss"] < 0.01 * history[0]["train_loss"]
    assert decoded.shape == bottom_mask.shape == gap_mask.shape == (512,)
    assert torch.isnan(decoded[bottom_mask]).all() and torch.isfinite(decoded[~bottom_mask]).all()
    assert not (gap_mask & bottom_mask).any()


def test_seed_fit_200_epochs_one_seed():
    """Cheaper version of the slow test: one seed; asserts the behaviour it must show."""
    ns = run_seed_example(seed=0, config_line="TrainingConfig(max_epochs=200, progress=False)")
    m = evaluate_pole_fit(ns["wrapped"])
    assert m["pole_error"] <= 1e-3, m  # Q changes sign within 1e-3 of x = -0.1
    assert m["bottom_at_pole"] and m["bottom_far"] == 0, m
    assert m["median"] <= 5e-3 and m["max"] <= 0.1, m
    # the seed's literal tau_infer=1e-6 needs |Q(-0.1)| < 1e-6: the learned pole is not that exact
    assert m["q_at_pole"] > 1e-6


@pytest.mark.slow
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_seed_fit_200_epochs_pole_and_bottom(seed):
    ns = run_seed_example(seed=seed, config_line="TrainingConfig(max_epochs=200, progress=False)")
    m = evaluate_pole_fit(ns["wrapped"])
    assert m["median"] <= 5e-3 and m["max"] <= 0.1, m


@pytest.mark.slow
@pytest.mark.xfail(
    strict=True,
    reason=(
        "the stricter targets (median <= 1e-3, max <= 1e-2) are not reached with the example's defaults "
        "and budget (800 AdamW steps at lr 1e-3): measured median 2.5e-3..4.5e-3, max 5.9e-2..7.3e-2, "
        "pole error 4e-4..2.5e-3 (the same as zeroproofml 0.6.1); with head_fit='epoch' see "
        "test_seed_example_with_head_fit_* and benchmarks/bench_training.py"
    ),
)
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_seed_fit_200_epochs_issue_targets(seed):
    ns = run_seed_example(seed=seed, config_line="TrainingConfig(max_epochs=200, progress=False)")
    m = evaluate_pole_fit(ns["wrapped"])
    assert m["median"] <= 1e-3 and m["max"] <= 1e-2, m
    assert m["pole_error"] <= 1e-3, m
    assert m["bottom_at_pole"] and m["bottom_far"] == 0, m


HEAD_FIT_LINE = 'TrainingConfig(max_epochs=200, progress=False, head_fit="epoch")'


def _meets_targets(m: dict) -> tuple[bool, bool]:
    pole = m["pole_error"] <= 1e-3 and m["bottom_at_pole"] and m["bottom_far"] == 0
    return pole, m["median"] <= 2e-3


@pytest.mark.parametrize("seed", [0, 1])
def test_seed_example_with_head_fit_meets_the_targets(seed):
    ns = run_seed_example(seed=seed, config_line=HEAD_FIT_LINE)
    m = evaluate_pole_fit(ns["wrapped"])
    pole_ok, median_ok = _meets_targets(m)
    assert pole_ok and median_ok, m
    assert m["n_sign_changes"] <= 2 and m["max"] <= 3e-2, m
    # the head was solved, not descended: AdamW holds no state for its parameters
    head = ns["model"].head
    opt = ns["opt"]
    assert all(len(opt.state[p]) == 0 for p in head.parameters())
    assert all(len(opt.state[p]) > 0 for p in ns["model"].backbone.parameters())


@pytest.mark.slow
def test_seed_example_with_head_fit_ten_seeds():
    results = [
        evaluate_pole_fit(run_seed_example(seed=s, config_line=HEAD_FIT_LINE)["wrapped"])
        for s in range(10)
    ]
    flags = [_meets_targets(m) for m in results]
    assert sum(p for p, _ in flags) >= 9, results
    assert sum(med for _, med in flags) >= 8, results
