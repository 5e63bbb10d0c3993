"""SCMTrainer under ``torchrun --nproc_per_node=2`` (DDP, gloo backend, two local processes)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch.distributed as dist

SCRIPT = Path(__file__).with_name("ddp_train_script.py")

pytestmark = pytest.mark.skipif(
    not dist.is_available() or not dist.is_gloo_available(), reason="torch.distributed with gloo needed"
)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_trainer_runs_unchanged_under_torchrun(tmp_path):
    env = dict(os.environ, OMP_NUM_THREADS="1")
    cmd = [
        sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--nnodes=1",
        "--master_addr=127.0.0.1", f"--master_port={_free_port()}", str(SCRIPT), str(tmp_path),
    ]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    r0 = json.loads((tmp_path / "rank0.json").read_text())
    r1 = json.loads((tmp_path / "rank1.json").read_text())
    # different initial parameters per rank, identical at the end (DDP broadcast + all-reduced grads)
    assert r0["params"] == r1["params"]
    h0, h1 = r0["history"], r1["history"]
    assert h0[-1]["train_loss"] < 0.5 * h0[0]["train_loss"]
    # validation loss and the early-stopping decision are the same on both ranks
    assert [r["val_loss"] for r in h0] == [r["val_loss"] for r in h1]
    assert len(h0) == len(h1) < 40
    # each rank trained (validated) on its own half of the 256 (64) rows; the history counts all
    assert r0["train_rows_per_epoch"] == r1["train_rows_per_epoch"] == 128
    assert r0["val_rows_per_epoch"] == r1["val_rows_per_epoch"] == 32
    assert h0[0]["n_rows"] == 256 and h0[0]["val_rows"] == 64
    # only rank 0 logs and writes checkpoints
    events = [json.loads(line)["event"] for line in (tmp_path / "log.jsonl").read_text().splitlines()]
    assert events.count("fit_start") == 1 and events.count("epoch") == len(h0)
    assert (tmp_path / "ckpt0" / "last.pt").exists() and not (tmp_path / "ckpt1").exists()
    assert proc.stderr.count("SCMTrainer:") >= 1  # rank 0's progress bar only
