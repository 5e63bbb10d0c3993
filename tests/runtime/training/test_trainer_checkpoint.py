"""Trainer checkpoints: state_dict based, weights_only loading, config hash checked on resume."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from zpml_runtime.losses import implicit_loss
from zpml_runtime.training import (
    CheckpointMismatchError,
    SCMTrainer,
    TrainingConfig,
    load_checkpoint,
)


class Moebius(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Parameter(torch.tensor([0.5, 0.1]))
        self.b = nn.Parameter(torch.tensor([1.0, 0.3]))

    def forward(self, x):
        x = x.squeeze(-1)
        return self.a[0] + self.a[1] * x, self.b[0] + self.b[1] * x


def loss_fn(outputs, targets, *, tau_train):
    p, q = outputs
    y_n, y_d = targets
    return implicit_loss(p, q, y_n, y_d) + tau_train * 0.0


def make(tmp_path, **kw):
    torch.manual_seed(0)
    x = torch.linspace(-1, 1, 48).unsqueeze(-1)
    y = (2.0 - x.squeeze(-1)) / (x.squeeze(-1) + 0.5)
    loader = DataLoader(TensorDataset(x, y), batch_size=16, shuffle=False)
    model = Moebius()
    opt = torch.optim.Adam(model.parameters(), lr=0.02)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=2, gamma=0.5)
    conf = TrainingConfig(
        progress=False, checkpoint_dir=tmp_path, tau_train_min=1e-4, tau_train_max=1e-3, **kw
    )
    return SCMTrainer(model, opt, loss_fn, loader, scheduler=sched, config=conf)


def params(trainer):
    return torch.cat([p.detach().flatten() for p in trainer.model.parameters()])


def test_resume_continues_exactly(tmp_path):
    straight = make(tmp_path / "a", max_epochs=4)
    straight.fit()
    first = make(tmp_path / "b", max_epochs=2)
    first.fit()
    resumed = make(tmp_path / "c", max_epochs=4, resume_from=tmp_path / "b" / "last.pt")
    assert resumed.epoch == 2 and len(resumed.history) == 2
    history = resumed.fit()
    torch.testing.assert_close(params(resumed), params(straight), rtol=0, atol=0)
    assert [r["lr"] for r in history] == [r["lr"] for r in straight.history]
    assert [r["tau_train_mean"] for r in history] == [r["tau_train_mean"] for r in straight.history]


def test_checkpoint_is_plain_state(tmp_path):
    trainer = make(tmp_path, max_epochs=1)
    trainer.fit()
    state = torch.load(tmp_path / "last.pt", weights_only=True)
    assert set(state["model"]) == {"a", "b"}
    assert state["epoch"] == 1 and state["config_hash"] == trainer.config.config_hash()
    assert state["optimizer"]["state"] and state["scheduler"]["last_epoch"] == 1


def test_config_hash_mismatch_names_the_field(tmp_path):
    make(tmp_path / "a", max_epochs=1).fit()
    with pytest.raises(
        CheckpointMismatchError, match=r"tau_train_max: checkpoint 0.001 vs now 0.01"
    ):
        trainer = make(tmp_path / "b", max_epochs=2, seed=0)
        trainer.config = trainer.config.replace(tau_train_max=1e-2)
        trainer.load_checkpoint(tmp_path / "a" / "last.pt")
    with pytest.raises(CheckpointMismatchError, match="seed"):
        make(tmp_path / "c", max_epochs=2, seed=5, resume_from=tmp_path / "a" / "last.pt")


class NotATensor:
    def __init__(self) -> None:
        self.payload = "arbitrary object"


def test_pickled_objects_are_refused(tmp_path):
    path = tmp_path / "evil.pt"
    torch.save({"format": "zpml.training.checkpoint/1", "model": NotATensor()}, path)
    with pytest.raises(CheckpointMismatchError, match="weights_only=True"):
        load_checkpoint(path)
    other = tmp_path / "other.pt"
    torch.save({"weights": torch.zeros(2)}, other)
    with pytest.raises(CheckpointMismatchError, match="not an SCMTrainer checkpoint"):
        load_checkpoint(other)
    with pytest.raises(TypeError, match="does not exist"):
        load_checkpoint(tmp_path / "missing.pt")
