"""SCMTrainer / TrainingConfig: behaviour, user errors, logging (small models, a few epochs)."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from zpml_runtime.errors import InvalidConfigError, ShapeMismatchError, ZeroProofRuntimeError
from zpml_runtime.inference import InferenceConfig, SCMInferenceWrapper
from zpml_runtime.logging import JsonlLogger
from zpml_runtime.losses import SCMTrainingLoss, implicit_loss
from zpml_runtime.training import (
    BottomUnreachableError,
    LossValueError,
    SCMTrainer,
    TrainingConfig,
    UnknownConfigFieldError,
)
from zpml_runtime.training.targets import InvalidTargetError


@pytest.fixture(autouse=True)
def _one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


class Moebius(nn.Module):
    """(a0 + a1 x) / (b0 + b1 x) elementwise: Q reaches 0 at x = -b0/b1."""

    can_reach_bottom = True

    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Parameter(torch.tensor([0.5, 0.1]))
        self.b = nn.Parameter(torch.tensor([1.0, 0.3]))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = x.squeeze(-1)
        return self.a[0] + self.a[1] * x, self.b[0] + self.b[1] * x


class FlooredHead(nn.Module):
    """Q = softplus(.) + 0.1 > 0: can never reach bottom."""

    can_reach_bottom = False

    def __init__(self) -> None:
        super().__init__()
        self.lin = nn.Linear(1, 2)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        out = self.lin(x)
        return out[..., 0], nn.functional.softplus(out[..., 1]) + 0.1


class Net(nn.Module):
    def __init__(self, head: nn.Module) -> None:
        super().__init__()
        self.pre = nn.Identity()
        self.head = head

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.head(self.pre(x))


def seed_loss(outputs, lifted_targets):
    p, q = outputs
    y_n, y_d = lifted_targets
    return implicit_loss(p, q, y_n, y_d)


def data(n: int = 64, pole: float = 0.5, batch: int = 16, shuffle: bool = False):
    x = torch.linspace(-1.0, 1.0, n).unsqueeze(-1)
    y = (2.0 - x) / (x + pole)
    return (
        x,
        y.squeeze(-1),
        DataLoader(TensorDataset(x, y.squeeze(-1)), batch_size=batch, shuffle=shuffle),
    )


def cfg(**kw) -> TrainingConfig:
    kw.setdefault("progress", False)
    return TrainingConfig(**kw)


# ----------------------------------------------------------------------------- config


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"tau_train_min": 1e-2, "tau_train_max": 1e-3}, "tau_train_min=0.01 > tau_train_max"),
        # thresholds go through InferenceConfig's validator: the field and the value are named
        (
            {"tau_train_min": -1e-4},
            r"TrainingConfig\.tau_train_min must be finite and >= 0 .*got -0\.0001",
        ),
        ({"tau_train_max": math.inf}, r"TrainingConfig\.tau_train_max must be finite .*got inf"),
        ({"tau_infer": "1e-3"}, r"TrainingConfig\.tau_infer must be a finite real number"),
        ({"grad_clip_norm": 0.0}, "grad_clip_norm=0.0"),
        ({"grad_clip_norm": math.nan}, "grad_clip_norm=nan"),
        ({"max_epochs": -1}, "max_epochs=-1"),
        ({"gradient_accumulation_steps": 0}, "gradient_accumulation_steps=0"),
        ({"early_stopping_patience": 3}, "val_loader is None"),
        (
            {"tau_infer": 1e-3, "tau_train_min": 1e-4},
            "tau_train_min=0.0001 must be >= tau_infer=0.001",
        ),
        ({"scheduler_interval": "batch"}, "scheduler_interval='batch'"),
        ({"progress": 1}, "progress=1"),
    ],
)
def test_config_rejects_bad_values(kwargs, match):
    with pytest.raises(InvalidConfigError, match=match):
        TrainingConfig(**kwargs)


def test_config_unknown_field_is_typed_and_suggests():
    with pytest.raises(
        UnknownConfigFieldError, match="no field 'max_epoch'.*did you mean 'max_epochs'"
    ):
        TrainingConfig(max_epoch=3)
    with pytest.raises(TypeError, match="keyword arguments only"):
        TrainingConfig(3)
    assert issubclass(UnknownConfigFieldError, ValueError)
    assert issubclass(UnknownConfigFieldError, ZeroProofRuntimeError)


@settings(max_examples=30, deadline=None)
@given(
    lo=st.floats(0, 1e-2),
    width=st.floats(0, 1e-2),
    seed=st.integers(0, 2**31),
    epochs=st.integers(0, 1000),
)
def test_config_hash_covers_trajectory_fields_only(lo, width, seed, epochs):
    base = TrainingConfig(tau_train_min=lo, tau_train_max=lo + width, seed=seed)
    # fields outside HASHED_FIELDS (e.g. max_epochs, progress) leave the hash alone
    assert base.replace(max_epochs=epochs, progress=False).config_hash() == base.config_hash()
    assert base.replace(seed=seed + 1).config_hash() != base.config_hash()
    assert base.replace(tau_train_max=lo + width + 1e-3).config_hash() != base.config_hash()


# ----------------------------------------------------------------------------- training behaviour


def test_fit_reduces_loss_and_returns_history():
    _, _, loader = data()
    model = Moebius()
    opt = torch.optim.Adam(model.parameters(), lr=0.05)
    history = SCMTrainer(model, opt, seed_loss, loader, config=cfg(max_epochs=30)).fit()
    assert [r["epoch"] for r in history] == list(range(1, 31))
    assert history[-1]["train_loss"] < 0.1 * history[0]["train_loss"]
    assert history[-1]["steps"] == 30 * 4
    assert all(r["n_rows"] == 64 and r["n_bottom_rows"] == 0 for r in history)


class TauRecorder:
    def __init__(self) -> None:
        self.taus: list[float] = []

    def __call__(self, outputs, targets, *, tau_train: float):
        self.taus.append(tau_train)
        return seed_loss(outputs, targets)


def test_tau_train_drawn_per_step_in_range_and_seeded():
    _, _, loader = data()

    def run(seed: int) -> list[float]:
        rec = TauRecorder()
        model = Moebius()
        conf = cfg(max_epochs=3, tau_train_min=1e-4, tau_train_max=1e-2, seed=seed)
        SCMTrainer(
            model, torch.optim.SGD(model.parameters(), lr=1e-3), rec, loader, config=conf
        ).fit()
        return rec.taus

    a, b, c = run(0), run(0), run(1)
    assert len(a) == 12 and all(1e-4 <= t <= 1e-2 for t in a)
    assert len(set(a)) == 12  # a fresh draw per step
    assert a == b and a != c


def test_tau_train_not_passed_to_a_two_argument_loss():
    _, _, loader = data()
    calls = []

    def loss(outputs, targets):
        calls.append(1)
        return seed_loss(outputs, targets)

    model = Moebius()
    SCMTrainer(
        model, torch.optim.SGD(model.parameters(), lr=1e-3), loss, loader, config=cfg(max_epochs=1)
    ).fit()
    assert len(calls) == 4


def test_wrapped_model_trains_and_validates_on_raw_tuple():
    _, _, loader = data()
    wrapped = SCMInferenceWrapper(Moebius(), config=InferenceConfig(tau_infer=1e-6, tau_train=1e-4))
    opt = torch.optim.Adam(wrapped.parameters(), lr=0.05)
    conf = cfg(max_epochs=5, val_loader=loader, tau_train_min=1e-4, tau_train_max=1e-4)
    history = SCMTrainer(wrapped, opt, seed_loss, loader, config=conf).fit()
    # the seed-style loss unpacks `p, q = outputs`: a strict result (3 items) would raise
    assert history[-1]["val_loss"] < history[0]["val_loss"]
    assert history[-1]["val_coverage"] == 1.0
    wrapped.eval()
    decoded, bottom, gap = wrapped(torch.tensor([[0.0]]))
    assert decoded.shape == (1,) and not bottom.any()


def test_bottom_targets_are_trained_not_dropped():
    x = torch.linspace(-1.0, 1.0, 64).unsqueeze(-1)  # misses -0.5; add 8 rows at the pole
    x = torch.cat([x, torch.full((8, 1), -0.5)])
    y = (2.0 - x.squeeze(-1)) / (x.squeeze(-1) + 0.5)  # +inf at the pole: lifted to (1, 0)
    assert torch.isinf(y).sum() == 8
    loader = DataLoader(TensorDataset(x, y), batch_size=72)
    seen = []

    def loss(outputs, targets):
        seen.append(int((targets[1] == 0).sum()))
        return seed_loss(outputs, targets)

    model = Moebius()
    opt = torch.optim.Adam(model.parameters(), lr=0.05)
    history = SCMTrainer(model, opt, loss, loader, config=cfg(max_epochs=200)).fit()
    assert seen[0] == 8 and history[0]["n_bottom_rows"] == 8
    # the bottom rows pull Q(-0.5) to zero: the learned pole sits at -0.5
    with torch.no_grad():
        b0, b1 = model.b.tolist()
    assert abs(-b0 / b1 + 0.5) < 1e-2


def test_missing_rows_excluded_and_counted():
    x = torch.linspace(-1.0, 1.0, 32).unsqueeze(-1)
    y = 1.0 / (x.squeeze(-1) + 2.0)
    status = ["finite"] * 32
    for i in (3, 7, 20):
        status[i] = "missing"
        y[i] = float("nan")  # a missing value may hold anything
    codes = torch.tensor([5 if s == "missing" else 0 for s in status])
    loader = DataLoader(TensorDataset(x, y, codes), batch_size=32)
    sizes = []

    def loss(outputs, targets):
        sizes.append(outputs[0].shape[0])
        return seed_loss(outputs, targets)

    model = Moebius()
    history = SCMTrainer(
        model, torch.optim.SGD(model.parameters(), lr=1e-2), loss, loader, config=cfg(max_epochs=2)
    ).fit()
    assert sizes == [29, 29]
    assert history[0]["n_missing_rows"] == 3 and history[0]["n_bottom_rows"] == 0
    assert math.isfinite(history[-1]["train_loss"])

    # a mask-aware loss (SCMTrainingLoss) gets the whole batch and masks itself
    model = Moebius()
    history = SCMTrainer(
        model,
        torch.optim.SGD(model.parameters(), lr=1e-2),
        SCMTrainingLoss(),
        loader,
        config=cfg(max_epochs=2),
    ).fit()
    assert history[0]["n_missing_rows"] == 3 and math.isfinite(history[-1]["train_loss"])
    assert "implicit" in history[-1].get("loss_terms", {})


def test_gradient_accumulation_matches_one_big_batch():
    x, y, _ = data(n=32)
    results = []
    for batch, accum in ((16, 2), (32, 1)):
        torch.manual_seed(0)
        model = Moebius()
        loader = DataLoader(TensorDataset(x, y), batch_size=batch)
        conf = cfg(max_epochs=1, gradient_accumulation_steps=accum)
        SCMTrainer(
            model, torch.optim.SGD(model.parameters(), lr=0.1), seed_loss, loader, config=conf
        ).fit()
        results.append(torch.cat([model.a.detach(), model.b.detach()]))
    torch.testing.assert_close(results[0], results[1], rtol=1e-6, atol=1e-7)


def test_grad_clipping_bounds_the_update():
    x, y, _ = data(n=16)
    loader = DataLoader(TensorDataset(x, y), batch_size=16)
    moves = {}
    for clip in (None, 1e-3):
        model = Moebius()
        before = torch.cat([model.a.detach(), model.b.detach()]).clone()
        conf = cfg(max_epochs=1, grad_clip_norm=clip)
        SCMTrainer(
            model, torch.optim.SGD(model.parameters(), lr=1.0), seed_loss, loader, config=conf
        ).fit()
        moves[clip] = float((torch.cat([model.a.detach(), model.b.detach()]) - before).norm())
    assert moves[1e-3] <= 1e-3 * (1 + 1e-5)
    assert moves[None] > 10 * moves[1e-3]


def test_early_stopping_and_best_restore(tmp_path):
    x, y, loader = data()
    # validation targets from another function: val loss falls then rises while training fits y
    val = DataLoader(TensorDataset(x, 0.3 * y), batch_size=64)
    model = Moebius()
    conf = cfg(max_epochs=200, val_loader=val, early_stopping_patience=3, checkpoint_dir=tmp_path)
    trainer = SCMTrainer(
        model, torch.optim.Adam(model.parameters(), lr=0.05), seed_loss, loader, config=conf
    )
    history = trainer.fit()
    assert trainer.stopped_early and len(history) < 200
    best = min(history, key=lambda r: r["val_loss"])
    assert trainer.best_epoch == best["epoch"] == history[-4]["epoch"]
    # the restored parameters are the best epoch's: their validation loss is the best one
    assert trainer.evaluate()["val_loss"] == pytest.approx(best["val_loss"], rel=1e-6)
    ckpt = torch.load(tmp_path / "best.pt", weights_only=True)
    assert ckpt["epoch"] == best["epoch"]
    torch.testing.assert_close(ckpt["model"]["a"], model.a.detach())


def test_log_hook_and_jsonl_logger(tmp_path, capsys):
    _, _, loader = data()
    records = []
    logger = JsonlLogger(tmp_path / "train.jsonl")
    model = Moebius()
    conf = cfg(max_epochs=3, log_hook=records.append, logger=logger, log_every_n_steps=2)
    SCMTrainer(
        model, torch.optim.SGD(model.parameters(), lr=1e-2), seed_loss, loader, config=conf
    ).fit()
    events = [r["event"] for r in records]
    assert events[0] == "fit_start" and events[-1] == "fit_end"
    assert events.count("epoch") == 3 and events.count("step") == 6
    lines = logger.read()
    assert [r["event"] for r in lines] == events
    assert lines[1]["epoch"] == records[1]["epoch"]
    assert lines[0]["config_hash"] == conf.config_hash()
    assert capsys.readouterr().err == ""  # progress=False: no bar


def test_progress_bar_can_be_on(capsys):
    _, _, loader = data()
    model = Moebius()
    conf = TrainingConfig(max_epochs=2, progress=True)
    SCMTrainer(
        model, torch.optim.SGD(model.parameters(), lr=1e-2), seed_loss, loader, config=conf
    ).fit()
    assert "SCMTrainer" in capsys.readouterr().err


def test_scheduler_stepped_per_epoch():
    _, _, loader = data()
    model = Moebius()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.5)
    history = SCMTrainer(
        model, opt, seed_loss, loader, scheduler=sched, config=cfg(max_epochs=3)
    ).fit()
    assert [r["lr"] for r in history] == pytest.approx([0.1, 0.05, 0.025])


# ----------------------------------------------------------------------------- user errors


def test_wrong_target_shape_is_named():
    x = torch.linspace(-1, 1, 16).unsqueeze(-1)
    loader = DataLoader(TensorDataset(x, x.squeeze(-1)), batch_size=8)

    class KeepsDim(Moebius):
        def forward(self, x):
            p, q = super().forward(x)
            return p.unsqueeze(-1), q.unsqueeze(-1)

    model = KeepsDim()
    trainer = SCMTrainer(
        model,
        torch.optim.SGD(model.parameters(), lr=1e-2),
        seed_loss,
        loader,
        config=cfg(max_epochs=1),
    )
    with pytest.raises(ShapeMismatchError, match=r"epoch 1, batch 0.*\[8, 1\].*\[8\].*squeeze"):
        trainer.fit()


def test_nan_in_finite_labelled_target_names_row_and_epoch():
    x = torch.linspace(-1, 1, 8).unsqueeze(-1)
    y = torch.ones(8)
    y[5] = float("nan")
    loader = DataLoader(TensorDataset(x, y, torch.zeros(8, dtype=torch.long)), batch_size=8)
    model = Moebius()
    trainer = SCMTrainer(
        model,
        torch.optim.SGD(model.parameters(), lr=1e-2),
        seed_loss,
        loader,
        config=cfg(max_epochs=1),
    )
    with pytest.raises(
        InvalidTargetError, match="epoch 1, batch 0.*row 5 is labelled finite but holds nan"
    ):
        trainer.fit()


def test_bottom_labels_with_layer_that_cannot_reach_bottom():
    x = torch.linspace(-1, 1, 8).unsqueeze(-1)
    y = torch.ones(8)
    status = torch.tensor([0, 0, 1, 0, 0, 0, 0, 0])  # row 2 is bottom
    loader = DataLoader(TensorDataset(x, y, status), batch_size=8)
    model = Net(FlooredHead())
    trainer = SCMTrainer(
        model,
        torch.optim.SGD(model.parameters(), lr=1e-2),
        seed_loss,
        loader,
        config=cfg(max_epochs=1),
    )
    with pytest.raises(
        BottomUnreachableError,
        match=r"1 target rows.*layer 'head' \(FlooredHead\).*can_reach_bottom = False",
    ):
        trainer.fit()
    # finite-only data is fine for the same model
    ok = DataLoader(TensorDataset(x, y), batch_size=8)
    SCMTrainer(
        model, torch.optim.SGD(model.parameters(), lr=1e-2), seed_loss, ok, config=cfg(max_epochs=1)
    ).fit()


def test_non_scalar_loss_is_named():
    _, _, loader = data()
    model = Moebius()

    def per_row(outputs, targets):
        p, q = outputs
        return (p * targets[1] - q * targets[0]) ** 2

    trainer = SCMTrainer(
        model,
        torch.optim.SGD(model.parameters(), lr=1e-2),
        per_row,
        loader,
        config=cfg(max_epochs=1),
    )
    with pytest.raises(LossValueError, match=r"epoch 1, batch 0.*shape \[16\].*scalar"):
        trainer.fit()


@pytest.mark.parametrize("mode", ["epoch", "step"])
def test_non_finite_loss_names_epoch_and_batch(mode):
    _, _, loader = data()
    model = Moebius()
    calls = []

    def loss(outputs, targets):
        calls.append(1)
        value = seed_loss(outputs, targets)
        return value * float("nan") if len(calls) == 7 else value  # epoch 2, batch 2

    trainer = SCMTrainer(
        model,
        torch.optim.SGD(model.parameters(), lr=1e-3),
        loss,
        loader,
        config=cfg(max_epochs=3, check_finite=mode),
    )
    with pytest.raises(LossValueError, match=r"epoch 2, batch 2.*not finite"):
        trainer.fit()
    params_finite = bool(torch.isfinite(model.a).all() and torch.isfinite(model.b).all())
    # per-step checking stops before the bad update; per-epoch checking reports after it
    assert params_finite == (mode == "step")


# ----------------------------------------------------------------------------- validation coverage


class FixedTuple(nn.Module):
    """Returns stored (P, Q) rows, indexed by x (a row index)."""

    def __init__(self, P: torch.Tensor, Q: torch.Tensor) -> None:
        super().__init__()
        self.P, self.Q = P, Q
        self.dummy = nn.Parameter(torch.zeros(()))

    def forward(self, idx: torch.Tensor):
        i = idx.long().squeeze(-1)
        return self.P[i] + 0 * self.dummy, self.Q[i]


def _coverage_case():
    f32 = torch.float32
    below = torch.nextafter(
        torch.tensor(1e-6, dtype=f32), torch.tensor(0.0, dtype=f32)
    )  # float32 below 1e-6
    nearest = torch.tensor(1e-6, dtype=f32)  # float32(1e-6) < 1e-6: bottom under tau_infer = 1e-6
    Q = torch.stack(
        [
            torch.tensor(math.inf),
            torch.tensor(-math.inf),
            below,
            nearest,
            torch.tensor(2e-6),
            torch.tensor(0.0),
            torch.tensor(1.0),
            torch.tensor(0.5),
        ]
    ).to(f32)
    P = torch.tensor([1.0, 1.0, 1.0, 1.0, 1.0, 1.0, math.nan, 3e38], dtype=f32)
    idx = torch.arange(len(Q), dtype=f32).unsqueeze(-1)
    y = torch.ones(len(Q))
    return P, Q, DataLoader(TensorDataset(idx, y), batch_size=3)


@pytest.mark.parametrize("wrapped", [False, True])
def test_val_coverage_is_the_deployed_bottom_mask(wrapped):
    """Q = +-inf, NaN P and float32 |Q| just below tau_infer are bottom at deployment, so not covered."""
    from zpml_runtime.inference import strict_inference

    P, Q, loader = _coverage_case()
    assert float(Q[3]) < 1e-6  # float32 rounding of 1e-6 is below it
    model = FixedTuple(P, Q)
    icfg = InferenceConfig(tau_infer=1e-6)
    if wrapped:
        model = SCMInferenceWrapper(model, config=icfg)
        conf = cfg(max_epochs=0, val_loader=loader, tau_train_min=1e-4, tau_train_max=1e-4)
    else:
        conf = cfg(
            max_epochs=0, val_loader=loader, tau_infer=1e-6, tau_train_min=1e-4, tau_train_max=1e-4
        )
    trainer = SCMTrainer(
        model,
        torch.optim.SGD(model.parameters(), lr=0.0),
        lambda o, t: o[0].sum() * 0,
        loader,
        config=conf,
    )
    deployed = strict_inference(P, Q, config=icfg).bottom_mask
    # inf, -inf, below, nearest, exact 0, NaN P, overflowing quotient: 7 bottoms; only 2e-6 is covered
    assert deployed.tolist() == [True, True, True, True, False, True, True, True]
    assert trainer.evaluate()["val_coverage"] == pytest.approx(1 / 8)


def test_val_coverage_with_tau_infer_zero_counts_faults_as_bottom():
    P, Q, loader = _coverage_case()
    model = FixedTuple(P, Q)
    trainer = SCMTrainer(
        model,
        torch.optim.SGD(model.parameters(), lr=0.0),
        lambda o, t: o[0].sum() * 0,
        loader,
        config=cfg(max_epochs=0, val_loader=loader),
    )
    # tau_infer = 0: Q = +-inf, Q = 0, NaN P and the overflowing 3e38 / 0.5 are bottom; the three tiny Q are covered
    assert trainer.evaluate()["val_coverage"] == pytest.approx(3 / 8)


def test_training_and_loss_thresholds_use_the_inference_validator():
    # one validator for every threshold: exact conversion, rounded up to float64, never down
    from fractions import Fraction

    from zpml_core.config import InferenceConfig
    from zpml_runtime.losses import LossConfig

    third = Fraction(1, 3) * Fraction(1, 10**4)
    cfg = TrainingConfig(tau_train_min=third, tau_train_max=third, tau_infer=third)
    loss = LossConfig(tau_train=third, tau_infer=third)
    inf = InferenceConfig(tau_infer=third, tau_train=third)
    assert cfg.tau_infer == cfg.tau_train_min == loss.tau_train == loss.tau_infer == inf.tau_infer
    assert type(cfg.tau_infer) is float and Fraction(cfg.tau_infer) >= third
    assert Fraction(cfg.tau_infer) - third < Fraction(cfg.tau_infer) * Fraction(1, 2**52)
    with pytest.raises(InvalidConfigError, match=r"LossConfig\.tau_train must be finite"):
        LossConfig(tau_train=math.nan)
