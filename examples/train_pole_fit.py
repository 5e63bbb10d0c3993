"""Fit 1/(x + 0.1) two ways and plot the loss curves (writes docs/img/training_loss.svg).

1. An MLP backbone + AngularProjectiveHead with SCMTrainer.
2. SCMRationalLayer(1, 1): the pole is a root of Q, found by training.

Run: ``python examples/train_pole_fit.py [--epochs 200] [--out docs/img/training_loss.svg]``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402
from torch import nn  # noqa: E402
from torch.utils.data import DataLoader, TensorDataset  # noqa: E402

from zpml_runtime.inference import InferenceConfig, SCMInferenceWrapper  # noqa: E402
from zpml_runtime.layers.angular_projective import AngularProjectiveHead  # noqa: E402
from zpml_runtime.layers.rational import SCMRationalLayer  # noqa: E402
from zpml_runtime.losses import implicit_loss  # noqa: E402
from zpml_runtime.training import SCMTrainer, TrainingConfig  # noqa: E402


class ToyAngularProjective(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.backbone = nn.Sequential(nn.Linear(1, 32), nn.ReLU(), nn.Linear(32, 32), nn.ReLU())
        self.head = AngularProjectiveHead(input_dim=32, output_dim=1, theta_scale=1.0)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        p, q = self.head(self.backbone(x))
        return p.squeeze(-1), q.squeeze(-1)


def loss_fn(outputs, lifted_targets):
    p, q = outputs
    y_n, y_d = lifted_targets
    return implicit_loss(p, q, y_n, y_d)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--epochs", type=int, default=200)
    parser.add_argument(
        "--out",
        default=str(Path(__file__).resolve().parent.parent / "docs" / "img" / "training_loss.svg"),
    )
    args = parser.parse_args()
    torch.manual_seed(0)
    x = torch.linspace(-1.0, 1.0, 512).unsqueeze(-1)
    y = (1.0 / (x + 0.1)).squeeze(-1)
    loader = DataLoader(TensorDataset(x, y), batch_size=128, shuffle=True)

    wrapped = SCMInferenceWrapper(
        ToyAngularProjective(), config=InferenceConfig(tau_infer=1e-6, tau_train=1e-4)
    )
    opt = torch.optim.AdamW(wrapped.parameters(), lr=1e-3)
    h_head = SCMTrainer(
        wrapped, opt, loss_fn, loader, config=TrainingConfig(max_epochs=args.epochs, progress=False)
    ).fit()

    layer = SCMRationalLayer(1, 1, numerator_init=[1.0, 0.0])  # start from P = 1, Q = 1
    flat = DataLoader(TensorDataset(x.squeeze(-1), y), batch_size=128, shuffle=True)
    opt = torch.optim.Adam(layer.parameters(), lr=3e-2)
    h_rat = SCMTrainer(
        layer, opt, loss_fn, flat, config=TrainingConfig(max_epochs=args.epochs, progress=False)
    ).fit()
    a0, a1 = layer.numerator.tolist()
    b0, b1 = layer.denominator.tolist()
    print(f"MLP + angular head: final loss {h_head[-1]['train_loss']:.3e}")
    print(
        f"SCMRationalLayer(1, 1): ({a0:.5f} + {a1:.5f} x) / ({b0:.5f} + {b1:.5f} x), pole at {-b0 / b1:.6f}"
    )

    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.semilogy(
        [r["epoch"] for r in h_head], [r["train_loss"] for r in h_head], label="MLP + angular head"
    )
    ax.semilogy(
        [r["epoch"] for r in h_rat],
        [r["train_loss"] for r in h_rat],
        label="SCMRationalLayer(1, 1)",
    )
    ax.set_xlabel("epoch")
    ax.set_ylabel("implicit loss (epoch mean)")
    ax.set_title("fitting 1/(x + 0.1) with SCMTrainer")
    ax.legend()
    fig.tight_layout()
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
