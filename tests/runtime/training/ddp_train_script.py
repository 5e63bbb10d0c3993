"""A training script that runs unchanged under ``python`` and ``torchrun --nproc_per_node=N``.

Used by ``test_ddp.py``: ``torchrun --nproc_per_node=2 ddp_train_script.py OUT_DIR``.
Each rank writes ``OUT_DIR/rank{r}.json`` (final parameters, history, rows seen).
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

from zpml_runtime.logging import JsonlLogger
from zpml_runtime.losses import implicit_loss
from zpml_runtime.training import SCMTrainer, TrainingConfig


class Moebius(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Parameter(torch.randn(2))
        self.b = nn.Parameter(torch.tensor([1.0, 0.0]) + 0.1 * torch.randn(2))

    def forward(self, x):
        x = x.squeeze(-1)
        return self.a[0] + self.a[1] * x, self.b[0] + self.b[1] * x


def _thread_names() -> list[str] | None:
    """Names of this process's threads (Linux ``/proc``), or None elsewhere."""
    task = Path("/proc/self/task")
    if not task.is_dir():
        return None
    names = []
    for t in task.iterdir():
        try:
            names.append((t / "comm").read_text().strip())
        except OSError:  # a thread that just ended
            pass
    return sorted(names)


def main(out: Path) -> None:
    torch.set_num_threads(1)
    if "WORLD_SIZE" in os.environ:
        dist.init_process_group("gloo")
    rank = dist.get_rank() if dist.is_initialized() else 0
    try:
        result = train(out, rank)
    finally:  # also on an error: a rank that exits with live gloo threads can abort at exit,
        if dist.is_initialized():  # hiding its traceback behind "SIGABRT"
            dist.destroy_process_group()
    # the gloo group must really be gone: threads left running abort the interpreter's exit
    result["threads_after_destroy"] = _thread_names()
    (out / f"rank{rank}.json").write_text(json.dumps(result))


def train(out: Path, rank: int) -> dict:
    torch.manual_seed(100 + rank)  # different inits: DDP must broadcast rank 0's
    x = torch.linspace(-1, 1, 256).unsqueeze(-1)
    y = (2.0 - x.squeeze(-1)) / (x.squeeze(-1) + 1.5)
    loader = DataLoader(TensorDataset(x, y), batch_size=16, shuffle=True)
    xv = torch.linspace(-1, 1, 64).unsqueeze(-1)
    val = DataLoader(
        TensorDataset(xv, 0.5 * (2.0 - xv.squeeze(-1)) / (xv.squeeze(-1) + 1.5)), batch_size=16
    )
    rows: dict[bool, list[int]] = {True: [], False: []}  # grad enabled: training, else validation

    def loss_fn(outputs, targets, *, tau_train):
        rows[torch.is_grad_enabled()].append(int(outputs[0].shape[0]))
        p, q = outputs
        y_n, y_d = targets
        return implicit_loss(p, q, y_n, y_d)

    model = Moebius()
    opt = torch.optim.Adam(model.parameters(), lr=0.05)
    config = TrainingConfig(
        max_epochs=40,
        val_loader=val,
        early_stopping_patience=2,
        gradient_accumulation_steps=2,
        logger=JsonlLogger(out / "log.jsonl"),
        checkpoint_dir=out / f"ckpt{rank}",
        progress=True,
    )
    history = SCMTrainer(model, opt, loss_fn, loader, config=config).fit()
    epochs = max(len(history), 1)
    result = {
        "params": [float(v) for v in torch.cat([model.a.detach(), model.b.detach()])],
        "history": history,
        "train_rows_per_epoch": sum(rows[True]) / epochs,
        "val_rows_per_epoch": sum(rows[False]) / epochs,
    }
    return result


if __name__ == "__main__":
    main(Path(sys.argv[1]))
