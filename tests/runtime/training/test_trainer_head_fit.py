"""Fitting a projective head from data (``fit_head``, ``TrainingConfig(head_fit=...)``).

Claims are checked from random starts on several seeds and on fine grids
(100,001 points), never only on the training points.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from zpml_runtime.errors import InvalidConfigError
from zpml_runtime.layers import (
    AngularProjectiveHead,
    MultivariateRationalLayer,
    SCMRationalLayer,
    pole_report,
)
from zpml_runtime.losses import implicit_loss
from zpml_runtime.training import (
    HeadFitError,
    SCMTrainer,
    TrainingConfig,
    find_head,
    fit_head,
)

POLE = -0.1


@pytest.fixture(autouse=True)
def _one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def loss_fn(outputs, targets):
    p, q = outputs
    return implicit_loss(p, q, *targets)


class Backboned(nn.Module):
    """MLP features -> head; outputs squeezed (the seed example's layout)."""

    def __init__(self, head: nn.Module, width: int = 32, post: bool = False) -> None:
        super().__init__()
        self.backbone = nn.Sequential(
            nn.Linear(1, width), nn.ReLU(), nn.Linear(width, width), nn.ReLU()
        )
        self.head = head
        self.post = post

    def forward(self, x):
        p, q = self.head(self.backbone(x))
        if self.post:
            p = 2 * p
        return p.squeeze(-1), q.squeeze(-1)


class Elementwise(nn.Module):
    """x [B, 1] -> a rational layer applied elementwise, outputs [B]."""

    def __init__(self, layer: nn.Module) -> None:
        super().__init__()
        self.layer = layer

    def forward(self, x):
        p, q = self.layer(x.squeeze(-1))
        return p, q


def pole_data(n: int = 512, dtype=torch.float64, batch: int = 128, shuffle: bool = False):
    x = torch.linspace(-1.0, 1.0, n, dtype=dtype).unsqueeze(-1)
    y = (1.0 / (x + 0.1)).squeeze(-1)
    return x, y, DataLoader(TensorDataset(x, y), batch_size=batch, shuffle=shuffle)


def random_layer(seed: int, dtype=torch.float64) -> SCMRationalLayer:
    g = torch.Generator().manual_seed(seed)
    return SCMRationalLayer(
        3,
        3,
        numerator_init=torch.randn(4, generator=g, dtype=torch.float64),
        denominator_init=torch.randn(4, generator=g, dtype=torch.float64),
        dtype=dtype,
    )


def fine_grid_error(model: nn.Module, dtype=torch.float64, away: float = 1e-3) -> float:
    """Max relative error |r - f| / max(|f|, 1) on 100,001 points with |x - pole| > away."""
    x = torch.linspace(-1.0, 1.0, 100_001, dtype=torch.float64)
    x = x[(x - POLE).abs() > away]
    with torch.no_grad():
        P, Q = model(x.to(dtype).unsqueeze(-1))
    r = P.double() / Q.double()
    f = 1.0 / (x + 0.1)
    return float(((r - f).abs() / f.abs().clamp_min(1.0)).max())


# ----------------------------------------------------------------------------- find_head


def test_find_head_sees_through_squeeze_and_wrapper():
    from zpml_runtime.inference import InferenceConfig, SCMInferenceWrapper

    torch.manual_seed(0)
    model = Backboned(AngularProjectiveHead(32))
    name, mod = find_head(model, torch.zeros(4, 1))
    assert name == "head" and mod is model.head
    wrapped = SCMInferenceWrapper(model, config=InferenceConfig(tau_infer=1e-6))
    wrapped.eval()  # the wrapper is unwrapped: its eval-mode strict decoding plays no part
    assert find_head(wrapped, torch.zeros(4, 1))[1] is model.head
    layer = random_layer(0)
    assert find_head(layer, torch.zeros(5, dtype=torch.float64)) == ("", layer)


def test_find_head_refuses_a_post_processed_head_and_bad_names():
    torch.manual_seed(0)
    model = Backboned(AngularProjectiveHead(32), post=True)
    with pytest.raises(
        HeadFitError, match=r"head \(AngularProjectiveHead\) produces the model's \(P, Q\)|none of"
    ):
        find_head(model, torch.zeros(4, 1))
    with pytest.raises(HeadFitError, match="no projective layer"):
        find_head(nn.Sequential(nn.Linear(1, 2)), torch.zeros(4, 1))
    with pytest.raises(HeadFitError, match="no submodule named 'nope'"):
        find_head(model, torch.zeros(4, 1), head="nope")
    assert issubclass(HeadFitError, InvalidConfigError.__mro__[1]) or issubclass(
        HeadFitError, Exception
    )


def test_find_head_picks_the_innermost_terminal_layer():
    outer = Elementwise(random_layer(1))
    assert find_head(outer, torch.zeros(3, 1, dtype=torch.float64))[0] == "layer"


# ----------------------------------------------------------------------------- fit_head, rational layers


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_fit_head_from_random_start_places_the_pole(seed):
    """A [3/3] layer from a random N(0, 1) start: the fitted pole is at -0.1 to 1e-9, no spurious pole,
    and the fit holds on a 100,001-point grid (the near-cancelled second pole of a gradient fit is gone)."""
    x, y, loader = pole_data()
    model = Elementwise(random_layer(seed))
    res = fit_head(model, loader)
    assert res.head == "layer" and res.linear_start and res.rows == 512
    assert res.objective_after < 1e-20 < res.objective_before
    report = pole_report(model.layer, (-1.0, 1.0))
    assert len(report.poles) == 1 and abs(report.poles[0].location - POLE) < 1e-9
    assert fine_grid_error(model) < 1e-8


def test_fit_head_float32_layer_and_bottom_rows():
    """A float32 head (deployment dtype) fitted on data holding the pole itself, labelled +inf."""
    x = torch.cat([torch.linspace(-1.0, 1.0, 200), torch.tensor([POLE] * 4)]).unsqueeze(-1)
    y = torch.where(
        (x.squeeze(-1) - POLE).abs() < 1e-7, torch.tensor(math.inf), 1.0 / (x.squeeze(-1) + 0.1)
    )
    assert torch.isinf(y).sum() == 4
    model = Elementwise(random_layer(5, dtype=torch.float32))
    res = fit_head(model, DataLoader(TensorDataset(x, y), batch_size=64))
    assert res.objective_after < 1e-10
    report = pole_report(model.layer, (-1.0, 1.0))
    assert len(report.poles) == 1 and abs(report.poles[0].location - POLE) < 1e-6
    with torch.no_grad():
        _, q = model(torch.tensor([[POLE]]))
    assert abs(float(q)) < 1e-6 * float(model.layer.denominator.detach().abs().max())


def test_fit_head_multivariate_head_on_fixed_features():
    """A MultivariateRationalLayer on (fixed) backbone features: exact recovery of a rational target."""
    torch.manual_seed(0)
    h = torch.randn(300, 3, dtype=torch.float64)
    y = (1.0 + h[:, 0] - 0.5 * h[:, 1]) / (0.3 + h[:, 2])

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.backbone = nn.Identity()
            self.head = MultivariateRationalLayer(3, 1, 1, 1, dtype=torch.float64)

        def forward(self, x):
            p, q = self.head(self.backbone(x))
            return p.squeeze(-1), q.squeeze(-1)

    net = Net()
    res = fit_head(net, DataLoader(TensorDataset(h, y), batch_size=100), weighting="uniform")
    assert res.linear_start and res.objective_after < 1e-20
    hn = torch.randn(1000, 3, dtype=torch.float64)
    yn = (1.0 + hn[:, 0] - 0.5 * hn[:, 1]) / (0.3 + hn[:, 2])
    with torch.no_grad():
        p, q = net(hn)
    assert float(((p / q - yn).abs() / yn.abs().clamp_min(1.0)).max()) < 1e-8


def test_fit_head_excludes_missing_rows_and_never_worsens():
    x, y, _ = pole_data(n=128)
    y = y.clone()
    codes = torch.zeros(128, dtype=torch.long)
    codes[::7] = 5  # "missing": the value is garbage
    y[::7] = 1e6
    model = Elementwise(random_layer(2))
    loader = DataLoader(TensorDataset(x, y, codes), batch_size=32)
    res = fit_head(model, loader)
    assert res.rows == 128 - len(range(0, 128, 7))
    assert res.objective_after < 1e-20
    again = fit_head(model, loader)  # already optimal: the objective cannot go up
    assert again.objective_after <= again.objective_before


def test_fit_head_argument_errors():
    x, y, loader = pole_data(n=16)
    model = Elementwise(random_layer(0))
    with pytest.raises(InvalidConfigError, match="weighting"):
        fit_head(model, loader, weighting="angle")
    with pytest.raises(InvalidConfigError, match="max_iter"):
        fit_head(model, loader, max_iter=-1)
    with pytest.raises(InvalidConfigError, match="max_batches"):
        fit_head(model, loader, max_batches=0)
    with pytest.raises(InvalidConfigError, match="cap"):
        fit_head(model, loader, weight_cap=1.0)
    with pytest.raises(HeadFitError, match="no batches"):
        fit_head(model, [])


# ----------------------------------------------------------------------------- angular head


@pytest.mark.parametrize("seed", [0, 1])
def test_fit_head_angular_head_on_random_features(seed):
    """The seed's angular head on an untrained backbone: the fit alone puts Q's sign change near -0.1."""
    torch.manual_seed(seed)
    model = Backboned(AngularProjectiveHead(32))
    x, y, loader = pole_data(dtype=torch.float32)
    res = fit_head(model, loader, max_iter=200)
    assert res.objective_after < 1e-3 * res.objective_before
    xf = torch.linspace(-0.2, 0.0, 20001).unsqueeze(-1)
    with torch.no_grad():
        _, q = model(xf)
    flips = torch.nonzero(torch.sign(q[:-1]) != torch.sign(q[1:])).squeeze(-1)
    assert len(flips) == 1 and abs(float(xf[flips[0], 0]) - POLE) < 5e-3


# ----------------------------------------------------------------------------- trainer integration


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_trainer_head_fit_init_then_adam_from_random_start(seed):
    """SCMTrainer + Adam (lr 1e-3, batch 128) from a random [3/3] start with head_fit="init": after 50
    epochs one pole within 1e-6 of -0.1, fine-grid max relative error <= 1e-3. (Without the head fit
    these starts end with no pole or one far away; Adam's steps of size ~lr on an exact fit are what
    moves the pole off its exact place: measured 2.5e-7, 5e-8, 3e-8.)"""
    x, y, loader = pole_data(shuffle=True)
    torch.manual_seed(seed)
    model = Elementwise(random_layer(seed))
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    history = SCMTrainer(
        model,
        opt,
        loss_fn,
        loader,
        config=TrainingConfig(max_epochs=50, progress=False, head_fit="init"),
    ).fit()
    assert "head_fit_objective" not in history[-1]
    report = pole_report(model.layer, (-1.0, 1.0))
    assert len(report.poles) == 1 and abs(report.poles[0].location - POLE) < 1e-6
    assert not report.spurious
    assert fine_grid_error(model) < 1e-3


def test_trainer_head_fit_epoch_keeps_the_fit_exact():
    """head_fit="epoch" refits after every epoch: the result is the exact fit whatever Adam did."""
    x, y, loader = pole_data(shuffle=True)
    torch.manual_seed(0)
    model = Elementwise(random_layer(0))
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    SCMTrainer(
        model,
        opt,
        loss_fn,
        loader,
        config=TrainingConfig(max_epochs=5, progress=False, head_fit="epoch"),
    ).fit()
    report = pole_report(model.layer, (-1.0, 1.0))
    assert len(report.poles) == 1 and abs(report.poles[0].location - POLE) < 1e-9
    assert fine_grid_error(model) < 1e-8


def test_trainer_head_fit_epoch_records_logs_and_hash(tmp_path):
    x, y, loader = pole_data(n=64, batch=32)
    records = []
    conf = TrainingConfig(max_epochs=3, progress=False, head_fit="epoch", log_hook=records.append)
    model = Elementwise(random_layer(4))
    history = SCMTrainer(
        model, torch.optim.Adam(model.parameters(), lr=1e-3), loss_fn, loader, config=conf
    ).fit()
    fits = [r for r in records if r["event"] == "head_fit"]
    assert [r["epoch"] for r in fits] == [0, 1, 2, 3]
    assert fits[0]["linear_start"] and all(r["head"] == "layer" for r in fits)
    assert all(h["head_fit_objective"] < 1e-20 for h in history)
    # hash: unchanged for configs without head fitting, changed by any head-fit field when on
    off = TrainingConfig()
    assert "head_fit" not in off.hashed_fields()
    assert conf.config_hash() != conf.replace(head_fit="init").config_hash()
    assert conf.config_hash() != conf.replace(head_fit_max_iter=7).config_hash()


def test_trainer_head_fit_resume_matches_uninterrupted(tmp_path):
    x, y, loader = pole_data(n=64, batch=32)

    def run(epochs, resume=None, ckpt=None):
        torch.manual_seed(0)
        model = Backboned(AngularProjectiveHead(8), width=8).double()
        opt = torch.optim.Adam(model.parameters(), lr=1e-3)
        conf = TrainingConfig(
            max_epochs=epochs,
            progress=False,
            head_fit="epoch",
            head_fit_max_iter=5,
            resume_from=resume,
            checkpoint_dir=ckpt,
        )
        SCMTrainer(model, opt, loss_fn, loader, config=conf).fit()
        return torch.cat([p.detach().reshape(-1) for p in model.parameters()])

    full = run(3)
    run(2, ckpt=tmp_path)
    resumed = run(3, resume=tmp_path / "last.pt")
    assert torch.equal(full, resumed)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"head_fit": "always"}, "head_fit='always'"),
        ({"head_fit_batches": 0}, "head_fit_batches=0"),
        ({"head_fit_max_iter": -1}, "head_fit_max_iter=-1"),
        ({"head_fit_weighting": "angle"}, "head_fit_weighting='angle'"),
    ],
)
def test_head_fit_config_validation(kwargs, match):
    with pytest.raises(InvalidConfigError, match=match):
        TrainingConfig(**kwargs)


def test_trainer_head_fit_without_a_fittable_head_is_named():
    model = nn.Sequential(nn.Linear(1, 2))

    class Split(nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = nn.Linear(1, 2)

        def forward(self, x):
            out = self.lin(x)
            return out[..., 0], out[..., 1]

    model = Split()
    x, y, loader = pole_data(n=16, dtype=torch.float32)
    trainer = SCMTrainer(
        model,
        torch.optim.Adam(model.parameters()),
        loss_fn,
        loader,
        config=TrainingConfig(max_epochs=1, progress=False, head_fit="init"),
    )
    with pytest.raises(HeadFitError, match="no projective layer"):
        trainer.fit()


def test_pole_grid_helper_is_a_real_check():
    """The fine-grid helper catches a wrong model (guards the assertions above)."""
    layer = SCMRationalLayer(
        1, 1, numerator_init=[1.0, 0.0], denominator_init=[0.1001, 1.0], dtype=torch.float64
    )
    assert fine_grid_error(Elementwise(layer)) > 1e-2
    assert np.isfinite(fine_grid_error(Elementwise(layer)))


def test_head_fit_epoch_solves_the_head_instead_of_descending_it():
    """With head_fit="epoch" or "step" the optimiser never updates the head (its gradients are
    dropped); with "init" it does."""
    x, y, loader = pole_data(n=64, batch=16, dtype=torch.float32)
    for mode, head_state in (("epoch", False), ("step", False), ("init", True)):
        torch.manual_seed(0)
        model = Backboned(AngularProjectiveHead(8), width=8)
        opt = torch.optim.Adam(model.parameters(), lr=1e-3)
        SCMTrainer(
            model,
            opt,
            loss_fn,
            loader,
            config=TrainingConfig(max_epochs=2, progress=False, head_fit=mode, head_fit_max_iter=5),
        ).fit()
        assert all((len(opt.state[p]) > 0) == head_state for p in model.head.parameters())
        assert all(len(opt.state[p]) > 0 for p in model.backbone.parameters())


def test_fit_head_leaves_torch_rng_alone():
    """A shuffled loader draws from torch's RNG; fit_head undoes that, so a trainer with a head fit
    sees the same batch order as one without."""
    x, y, loader = pole_data(n=64, batch=16, shuffle=True)
    model = Elementwise(random_layer(0))
    torch.manual_seed(123)
    fit_head(model, loader)
    after = torch.rand(3)
    torch.manual_seed(123)
    assert torch.equal(after, torch.rand(3))


class _Records:
    """A logger keeping the trainer's records in memory."""

    def __init__(self) -> None:
        self.records: list[dict] = []

    def log(self, record: dict) -> None:
        self.records.append(record)


def _head_state(model: nn.Module) -> torch.Tensor:
    return torch.cat([p.detach().reshape(-1) for p in model.head.parameters()]).clone()


class _StepSpy(torch.optim.Adam):
    """Adam recording the head's parameters on entry to and exit from every step."""

    def __init__(self, model: nn.Module, **kwargs) -> None:
        super().__init__(model.parameters(), **kwargs)
        self.model = model
        self.seen: list[tuple[torch.Tensor, torch.Tensor]] = []

    def step(self, closure=None):  # type: ignore[override]
        before = _head_state(self.model)
        loss = super().step(closure)
        self.seen.append((before, _head_state(self.model)))
        return loss


def test_head_fit_step_refits_after_every_step_and_resumes(tmp_path):
    """head_fit="step": one logged first fit, then the head is solved again after every
    optimiser step (the optimiser itself never moves it); a resumed run is bit-identical."""
    x, y, loader = pole_data(n=64, batch=16)

    def run(epochs, resume=None, ckpt=None):
        torch.manual_seed(0)
        model = Backboned(AngularProjectiveHead(8), width=8).double()
        initial = _head_state(model)
        opt = _StepSpy(model, lr=1e-3)
        records = _Records()
        conf = TrainingConfig(
            max_epochs=epochs,
            progress=False,
            head_fit="step",
            head_fit_max_iter=3,
            resume_from=resume,
            checkpoint_dir=ckpt,
            logger=records,
        )
        history = SCMTrainer(model, opt, loss_fn, loader, config=conf).fit()
        params = torch.cat([p.detach().reshape(-1) for p in model.parameters()])
        return params, history, initial, opt.seen, records.records, _head_state(model)

    full, history, initial, seen, records, final_head = run(2)
    assert len(seen) == 8  # 4 steps per epoch
    fits = [r for r in records if r.get("event") == "head_fit"]
    assert len(fits) == 1 and fits[0]["epoch"] == 0  # the first fit; per-step refits are not logged
    assert not torch.equal(seen[0][0], initial)  # solved before the first step
    for before, after in seen:
        assert torch.equal(before, after)  # the optimiser never moves the solved head
    for (_, after), (before_next, _) in zip(seen[:-1], seen[1:], strict=True):
        assert not torch.equal(after, before_next)  # solved again after every step
    assert not torch.equal(seen[-1][1], final_head)  # ... the last one included
    assert all(h["head_fit_objective"] <= history[0]["head_fit_objective"] * 10 for h in history)
    run(1, ckpt=tmp_path)
    resumed = run(2, resume=tmp_path / "last.pt")[0]
    assert torch.equal(full, resumed)


def test_head_fit_restores_the_best_fitted_epoch_without_validation():
    """No val_loader, head_fit="epoch": restore_best returns the epoch with the lowest head-fit objective."""
    x, y, loader = pole_data(n=128, batch=16, dtype=torch.float32, shuffle=True)
    torch.manual_seed(3)
    model = Backboned(AngularProjectiveHead(8), width=8)
    opt = torch.optim.Adam(
        model.parameters(), lr=3e-2
    )  # large steps: the objective is not monotone
    trainer = SCMTrainer(
        model,
        opt,
        loss_fn,
        loader,
        config=TrainingConfig(max_epochs=7, progress=False, head_fit="epoch", head_fit_max_iter=10),
    )
    history = trainer.fit()
    objectives = [h["head_fit_objective"] for h in history]
    best = min(range(len(objectives)), key=objectives.__getitem__)
    assert best < len(objectives) - 1  # the case this test is about: the last epoch is not the best
    assert (
        trainer.best_epoch == history[best]["epoch"]
        and trainer.best_head_fit_objective == objectives[best]
    )
    assert [h["best"] for h in history] == [
        o == min(objectives[: i + 1]) for i, o in enumerate(objectives)
    ]
    # the restored parameters are the best epoch's: their objective is the best one
    again = fit_head(model, loader, max_iter=0, linear_start=False)
    assert again.objective_before == pytest.approx(objectives[best], rel=1e-5)
    # restore_best=False keeps the last epoch
    torch.manual_seed(3)
    model2 = Backboned(AngularProjectiveHead(8), width=8)
    conf = TrainingConfig(
        max_epochs=7, progress=False, head_fit="epoch", head_fit_max_iter=10, restore_best=False
    )
    SCMTrainer(
        model2, torch.optim.Adam(model2.parameters(), lr=3e-2), loss_fn, loader, config=conf
    ).fit()
    assert fit_head(
        model2, loader, max_iter=0, linear_start=False
    ).objective_before == pytest.approx(objectives[-1], rel=1e-5)
