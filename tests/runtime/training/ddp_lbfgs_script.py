"""SCMTrainer + L-BFGS, or + ``head_fit="epoch"``, under ``torchrun --nproc_per_node=2``.

Used by ``test_trainer_closure.py``: ``ddp_lbfgs_script.py OUT_DIR [lbfgs|head_fit]``.
Each rank sees its own shard of the data, so local losses (and local head fits)
differ; the trainer averages the closure's loss across ranks and broadcasts
rank 0's head fit, so both ranks take the same decisions and end with
identical parameters. Writes ``OUT_DIR/rank{r}.json``.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import torch
import torch.distributed as dist
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from zpml_runtime.layers import AngularProjectiveHead
from zpml_runtime.losses import implicit_loss
from zpml_runtime.training import SCMTrainer, TrainingConfig


class Moebius(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Parameter(torch.randn(2, dtype=torch.float64))
        self.b = nn.Parameter(
            torch.tensor([1.0, 0.0], dtype=torch.float64)
            + 0.1 * torch.randn(2, dtype=torch.float64)
        )

    def forward(self, x):
        x = x.squeeze(-1)
        return self.a[0] + self.a[1] * x, self.b[0] + self.b[1] * x


class Backboned(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.backbone = nn.Sequential(nn.Linear(1, 8), nn.ReLU())
        self.head = AngularProjectiveHead(8, dtype=torch.float64)

    def forward(self, x):
        p, q = self.head(self.backbone(x))
        return p.squeeze(-1), q.squeeze(-1)


def main(out: Path, mode: str) -> None:
    torch.set_num_threads(1)
    if "WORLD_SIZE" in os.environ:
        dist.init_process_group("gloo")
    rank = dist.get_rank() if dist.is_initialized() else 0
    torch.manual_seed(100 + rank)  # different inits: DDP broadcasts rank 0's
    x = torch.linspace(-1, 1, 256, dtype=torch.float64).unsqueeze(-1)
    # the shards differ (rank 0 gets even rows, rank 1 odd ones): local closure losses differ
    y = (2.0 - x.squeeze(-1)) / (x.squeeze(-1) + 1.5)
    loader = DataLoader(TensorDataset(x, y), batch_size=64, shuffle=True)
    calls = [0]

    def loss_fn(outputs, targets):
        calls[0] += 1
        p, q = outputs
        return implicit_loss(p, q, *targets)

    if mode == "lbfgs":
        model = Moebius()
        opt = torch.optim.LBFGS(model.parameters(), max_iter=10, line_search_fn="strong_wolfe")
        config = TrainingConfig(max_epochs=3, progress=False)
    else:
        model = Backboned().double()
        opt = torch.optim.Adam(model.parameters(), lr=3e-2)
        config = TrainingConfig(max_epochs=4, progress=False, head_fit="epoch", head_fit_max_iter=5)
    trainer = SCMTrainer(model, opt, loss_fn, loader, config=config)
    history = trainer.fit()
    result = {
        "params": [
            float(v) for v in torch.cat([p.detach().reshape(-1) for p in model.parameters()])
        ],
        "best_epoch": trainer.best_epoch,
        "history": history,
        "loss_calls": calls[0],
    }
    (out / f"rank{rank}.json").write_text(json.dumps(result))
    if dist.is_initialized():
        dist.destroy_process_group()


if __name__ == "__main__":
    main(Path(sys.argv[1]), sys.argv[2] if len(sys.argv) > 2 else "lbfgs")
