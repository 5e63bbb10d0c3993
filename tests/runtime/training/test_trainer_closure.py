"""SCMTrainer with closure optimisers (L-BFGS and any optimiser whose step needs a closure)."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from zpml_runtime.losses import implicit_loss
from zpml_runtime.training import LossValueError, SCMTrainer, TrainingConfig, lift_targets


@pytest.fixture(autouse=True)
def _one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


class Moebius(nn.Module):
    def __init__(self, a=(0.5, 0.1), b=(1.0, 0.3), dtype=torch.float64) -> None:
        super().__init__()
        self.a = nn.Parameter(torch.tensor(a, dtype=dtype))
        self.b = nn.Parameter(torch.tensor(b, dtype=dtype))

    def forward(self, x):
        x = x.squeeze(-1)
        return self.a[0] + self.a[1] * x, self.b[0] + self.b[1] * x


def loss_fn(outputs, targets):
    p, q = outputs
    return implicit_loss(p, q, *targets)


def data(n=64, batch=64, dtype=torch.float64):
    x = torch.linspace(-1.0, 1.0, n, dtype=dtype).unsqueeze(-1)
    y = ((2.0 - x) / (x + 0.5)).squeeze(-1)
    return x, y, DataLoader(TensorDataset(x, y), batch_size=batch)


def lbfgs(params, **kw):
    kw.setdefault("line_search_fn", "strong_wolfe")
    kw.setdefault("max_iter", 20)
    return torch.optim.LBFGS(params, **kw)


def cfg(**kw):
    kw.setdefault("progress", False)
    return TrainingConfig(**kw)


class NeedsClosure(torch.optim.Optimizer):
    """A gradient step that must re-evaluate the loss: ``step(closure)`` has no default."""

    def __init__(self, params, lr=0.1):
        super().__init__(params, {"lr": lr})
        self.calls = 0

    def step(self, closure):  # type: ignore[override]
        loss = closure()
        self.calls += 1
        with torch.no_grad():
            for g in self.param_groups:
                for p in g["params"]:
                    if p.grad is not None:
                        p -= g["lr"] * p.grad
        return loss


def _spy(base: type[torch.optim.Optimizer], needs_closure: bool, seen: list[bool]):
    """``base`` with a ``step`` that records whether it was given a closure; its signature
    requires a closure exactly when ``needs_closure``."""
    if needs_closure:

        class Spy(base):  # type: ignore[valid-type, misc]
            def step(self, closure):  # type: ignore[override]
                seen.append(closure is not None)
                return super().step(closure)

    else:

        class Spy(base):  # type: ignore[valid-type, misc, no-redef]
            def step(self, closure=None):  # type: ignore[override]
                seen.append(closure is not None)
                return super().step(closure)

    return Spy


@pytest.mark.parametrize(
    ("base", "kwargs", "needs_closure"),
    [
        (torch.optim.Adam, {}, False),
        (torch.optim.SGD, {"lr": 0.1}, False),
        (torch.optim.LBFGS, {"max_iter": 2}, True),
        (NeedsClosure, {}, True),
    ],
)
def test_a_closure_is_passed_exactly_when_step_requires_one(base, kwargs, needs_closure):
    """L-BFGS and any step whose ``closure`` has no default get one; other optimisers are
    stepped plainly, once per batch."""
    _, _, loader = data(batch=16)
    seen: list[bool] = []
    model = Moebius()
    opt = _spy(base, needs_closure, seen)(model.parameters(), **kwargs)
    SCMTrainer(model, opt, loss_fn, loader, config=cfg(max_epochs=1)).fit()
    assert seen == [needs_closure] * len(loader)


def test_lbfgs_matches_a_hand_written_loop_bit_for_bit():
    """Two epochs of SCMTrainer + L-BFGS on two batches = the plain closure loop over the same batches."""
    x, y, loader = data(batch=32)
    m1, m2 = Moebius(), Moebius()
    o1, o2 = lbfgs(m1.parameters()), lbfgs(m2.parameters())
    history = SCMTrainer(m1, o1, loss_fn, loader, config=cfg(max_epochs=2)).fit()
    first_losses = []
    for _ in range(2):
        for xb, yb in loader:
            seen = []

            def closure(xb=xb, yb=yb, seen=seen):
                o2.zero_grad()
                loss = loss_fn(m2(xb), lift_targets(yb))
                loss.backward()
                seen.append(float(loss.detach()))
                return loss

            o2.step(closure)
            first_losses.append(seen[0])
    assert torch.equal(m1.a, m2.a) and torch.equal(m1.b, m2.b)
    # the recorded loss is the closure's first evaluation (parameters before each step)
    assert history[0]["train_loss"] == pytest.approx(sum(first_losses[:2]) / 2, rel=1e-12)
    assert history[1]["steps"] == 4


def test_lbfgs_fits_the_pole_in_a_few_steps():
    x, y, loader = data()
    model = Moebius(a=(0.3, -0.2), b=(0.7, 0.9))
    opt = lbfgs(model.parameters(), tolerance_grad=1e-14, tolerance_change=1e-20)
    history = SCMTrainer(model, opt, loss_fn, loader, config=cfg(max_epochs=5)).fit()
    assert history[-1]["train_loss"] < 1e-6 * history[0]["train_loss"]
    b0, b1 = model.b.tolist()
    assert abs(-b0 / b1 + 0.5) < 1e-9


def test_closure_objective_is_the_mean_over_the_accumulation_group():
    """batch 16 x 4 micro-batches per step == batch 64 in one: same objective, same L-BFGS trajectory."""
    x, y, _ = data()
    results = []
    for batch, accum in ((16, 4), (64, 1)):
        model = Moebius()
        loader = DataLoader(TensorDataset(x, y), batch_size=batch)
        conf = cfg(max_epochs=2, gradient_accumulation_steps=accum)
        h = SCMTrainer(model, lbfgs(model.parameters()), loss_fn, loader, config=conf).fit()
        results.append((torch.cat([model.a.detach(), model.b.detach()]), h))
    torch.testing.assert_close(results[0][0], results[1][0], rtol=1e-9, atol=1e-12)
    assert results[0][1][-1]["steps"] == results[1][1][-1]["steps"] == 2
    # history rows and loss are per micro-batch in both cases
    assert results[0][1][0]["n_rows"] == results[1][1][0]["n_rows"] == 64
    assert results[0][1][0]["train_loss"] == pytest.approx(results[1][1][0]["train_loss"], rel=1e-9)


def test_partial_group_at_epoch_end_is_stepped():
    x, y, _ = data(n=40)
    loader = DataLoader(
        TensorDataset(x, y), batch_size=16
    )  # 16, 16, 8: one full group of 2, one partial
    model = Moebius()
    opt = NeedsClosure(model.parameters())
    h = SCMTrainer(
        model, opt, loss_fn, loader, config=cfg(max_epochs=1, gradient_accumulation_steps=2)
    ).fit()
    assert opt.calls == 2 and h[0]["steps"] == 2 and h[0]["n_rows"] == 40


def test_custom_closure_optimiser_and_step_scheduler():
    x, y, loader = data(batch=16)
    model = Moebius()
    opt = NeedsClosure(model.parameters(), lr=0.05)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.5)
    h = SCMTrainer(
        model,
        opt,
        loss_fn,
        loader,
        scheduler=sched,
        config=cfg(max_epochs=1, scheduler_interval="step"),
    ).fit()
    assert opt.calls == 4 and h[0]["steps"] == 4
    assert opt.param_groups[0]["lr"] == pytest.approx(0.05 / 16)


def test_check_finite_step_stops_before_the_update():
    x, y, _ = data(n=8, dtype=torch.float64)
    y = y.clone()
    y[0] = 1.0
    model = Moebius()
    before = [p.detach().clone() for p in model.parameters()]

    def bad_loss(outputs, targets):
        return loss_fn(outputs, targets) * math.nan

    loader = DataLoader(TensorDataset(x, y), batch_size=8)
    trainer = SCMTrainer(
        model,
        lbfgs(model.parameters()),
        bad_loss,
        loader,
        config=cfg(max_epochs=1, check_finite="step"),
    )
    with pytest.raises(LossValueError, match="not applied"):
        trainer.fit()
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters(), strict=True))


def test_grad_clipping_applies_inside_the_closure():
    x, y, loader = data(n=16, batch=16)
    model = Moebius()
    before = torch.cat([p.detach().clone() for p in model.parameters()])
    opt = NeedsClosure(model.parameters(), lr=1.0)
    SCMTrainer(model, opt, loss_fn, loader, config=cfg(max_epochs=1, grad_clip_norm=1e-3)).fit()
    moved = float((torch.cat([p.detach() for p in model.parameters()]) - before).norm())
    assert 0 < moved <= 1e-3 * (1 + 1e-9)


def test_lbfgs_checkpoint_resume_matches_uninterrupted(tmp_path):
    x, y, loader = data(batch=32)
    full = Moebius()
    SCMTrainer(full, lbfgs(full.parameters()), loss_fn, loader, config=cfg(max_epochs=3)).fit()
    part = Moebius()
    SCMTrainer(
        part,
        lbfgs(part.parameters()),
        loss_fn,
        loader,
        config=cfg(max_epochs=1, checkpoint_dir=tmp_path),
    ).fit()
    resumed = Moebius(a=(9.0, 9.0), b=(9.0, 9.0))
    SCMTrainer(
        resumed,
        lbfgs(resumed.parameters()),
        loss_fn,
        loader,
        config=cfg(max_epochs=3, resume_from=tmp_path / "last.pt"),
    ).fit()
    assert torch.equal(resumed.a, full.a) and torch.equal(resumed.b, full.b)


@pytest.mark.skipif(
    not torch.distributed.is_available() or not torch.distributed.is_gloo_available(),
    reason="gloo needed",
)
@pytest.mark.parametrize("mode", ["lbfgs", "head_fit"])
def test_lbfgs_and_head_fit_under_torchrun_keep_ranks_in_lockstep(tmp_path, mode):
    import json
    import os
    import subprocess
    import sys
    from pathlib import Path

    script = Path(__file__).with_name("ddp_lbfgs_script.py")
    # --standalone: torchrun binds its rendezvous store to a free port itself (a port chosen
    # here could be taken by the time torchrun binds it on a busy machine)
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node=2",
        str(script),
        str(tmp_path),
        mode,
    ]
    proc = subprocess.run(
        cmd, env=dict(os.environ, OMP_NUM_THREADS="1"), capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    r0, r1 = (json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1))
    assert r0["params"] == r1["params"]
    if mode == "head_fit":  # rank 0's head fit was broadcast and its objective chose the best epoch
        assert r0["best_epoch"] == r1["best_epoch"] is not None
        assert [h["head_fit_objective"] for h in r0["history"]] == [
            h["head_fit_objective"] for h in r1["history"]
        ]
        return
    # equal numbers of closure evaluations (else gloo would have deadlocked or diverged)
    assert r0["loss_calls"] == r1["loss_calls"] > 3 * 2
    assert [h["train_loss"] for h in r0["history"]] == [h["train_loss"] for h in r1["history"]]
    assert r0["history"][-1]["train_loss"] < 1e-6 * r0["history"][0]["train_loss"]
    b0, b1 = r0["params"][2:]
    assert abs(-b0 / b1 + 1.5) < 1e-4
