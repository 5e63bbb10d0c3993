"""Baselines measured in the same run: a plain MLP trained with a relative loss, DLS alone, zero.

The MLP sees the same angle features as the generic head and is trained by
full-batch L-BFGS (strong-Wolfe line search) on the relative loss
``||f(x) - y||^2 / ||y||^2`` over the training rows with ``|det J| >= 1e-2``
(the rows whose labels an MLP can represent at all). Measured during design: mini-batch
Adam on the same loss stays at a relative training loss of 0.3 to 0.5 after
100 epochs, L-BFGS reaches about 0.04 in 500 iterations.
"""

from __future__ import annotations

import numpy as np

from zpml_runtime.errors import CalibrationError
from zpml_runtime.robotics.arm import IKArm
from zpml_runtime.robotics.dataset import IKDataset

__all__ = ["MLP_MIN_ABS_DET", "predict_mlp", "train_mlp_baseline"]

#: the MLP is trained on rows with ``|det J| >=`` this
MLP_MIN_ABS_DET = 1e-2


def train_mlp_baseline(
    train: IKDataset, arm: IKArm, *, hidden: int = 64, iterations: int = 500, seed: int = 0
) -> object:
    """The plain MLP of :mod:`this module <zpml_runtime.robotics.baselines>` (an ``nn.Module``)."""
    import torch

    from zpml_runtime.robotics.models import MLPBaseline

    rows = (np.abs(train.det) >= MLP_MIN_ABS_DET) & np.isfinite(train.targets).all(axis=1)
    if not rows.any():
        raise CalibrationError(
            f"no training rows with |det J| >= {MLP_MIN_ABS_DET}: the MLP baseline has no data"
        )
    torch.manual_seed(seed)
    model = MLPBaseline(hidden=hidden, n_joints=arm.n_joints, task_dim=arm.task_dim)
    x = torch.tensor(train.inputs[rows])
    y = torch.tensor(train.targets[rows])
    norm2 = (y**2).sum(-1).clamp_min(1e-300)

    def loss_fn() -> torch.Tensor:
        return (((model(x) - y) ** 2).sum(-1) / norm2).mean()

    if iterations > 0:
        opt = torch.optim.LBFGS(
            model.parameters(),
            lr=1.0,
            max_iter=iterations,
            max_eval=iterations + iterations // 4,
            history_size=50,
            line_search_fn="strong_wolfe",
            tolerance_grad=0.0,
            tolerance_change=0.0,
        )

        def closure() -> torch.Tensor:
            opt.zero_grad()
            loss = loss_fn()
            loss.backward()
            return loss

        opt.step(closure)
    return model.eval()


def predict_mlp(model: object, inputs: np.ndarray) -> np.ndarray:
    """The MLP's predictions ``[n, joints]`` as float64 numpy."""
    import torch

    with torch.no_grad():
        return model(torch.as_tensor(inputs, dtype=torch.float64)).numpy()  # type: ignore[operator]
