"""Input checks of the compiled evaluators (torch module, strict evaluator, numpy reference).

Accepted input: an array of shape ``[*batch, n_vars]``: the **last** dimension
holds the variables, in the evaluator's ``variables`` order, and any leading
dimensions are the batch (outputs have shape ``batch``), of a real floating
dtype. There is no other reading of a shape, so a 1-D array is one sample and
must have exactly ``n_vars`` entries (``torch.func.vmap``/``jacrev`` call the
module per sample this way). In particular a batch of a one-variable model is
``(B, 1)``, never ``(B,)``: ``(B,)`` is refused with the hint ``x[..., None]``
(accepting it would make ``(1,)`` mean one sample but ``(2,)`` two).

The checks read attributes only (``type``, ``dtype``, ``ndim``, ``shape``,
``device``): no data pass, nothing that breaks ``torch.compile(fullgraph=True)``.
Errors are :class:`zpml_core.errors.ShapeMismatchError` (a ``ValueError``) and
:class:`zpml_core.errors.UnsupportedInputError` (a ``TypeError``), both
subclasses of ``zs.ZeroProofError``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from zpml_core.errors import ShapeMismatchError, UnsupportedInputError

__all__ = ["check_numpy_input", "check_torch_input", "shape_hint"]


def _columns(variables: Sequence[str]) -> str:
    return f"[..., {len(variables)}] (columns in order {list(variables)})"


def shape_hint(shape: tuple[int, ...], variables: Sequence[str], where: str) -> str:
    """The message of a refused input shape, with the fix."""
    n = len(variables)
    msg = f"{where}: x must have shape {_columns(variables)}, got {shape}"
    if len(shape) == 1 and n == 1:
        msg += "; for a batch of one variable write x[..., None] (shape (B, 1))"
    elif len(shape) == 0:
        msg += "; x is a scalar: write x.reshape(1, 1) for one sample of a one-variable model"
    elif shape[-1] != n:
        msg += f"; the last dimension must be the {n} variable(s), it is {shape[-1]}"
    return msg


def check_torch_input(x: Any, variables: Sequence[str], where: str, device: Any = None) -> None:
    """Refuse anything but a real floating ``torch.Tensor`` of shape ``[*batch, n_vars]``.

    ``device``: the device of the module's parameters, or None when it has none
    (a parameter-free program runs on any device).
    """
    import torch

    if not isinstance(x, torch.Tensor):
        hint = (
            "; convert it with torch.from_numpy(x) (or torch.as_tensor(x, dtype=torch.float32))"
            if type(x).__module__ == "numpy"
            else "; pass a torch.Tensor"
        )
        raise UnsupportedInputError(
            f"{where}: x must be a torch.Tensor of shape {_columns(variables)}, "
            f"got {type(x).__module__}.{type(x).__name__}{hint}"
        )
    if x.dtype not in (torch.float32, torch.float64):
        if x.is_complex():
            hint = "complex inputs are not supported (rational models are real)"
        elif x.is_floating_point():  # float16, bfloat16, float8: no constant checks, no ONNX twin
            hint = (
                "cast it explicitly, e.g. x.to(torch.float32) (strict_inference decodes "
                "float16/bfloat16 P and Q directly)"
            )
        else:
            hint = "cast it explicitly, e.g. x.to(torch.float32)"
        raise UnsupportedInputError(
            f"{where}: x must have a real floating dtype (float32 or float64), got {x.dtype}; {hint}"
        )
    if x.dim() < 1 or x.shape[-1] != len(variables):
        raise ShapeMismatchError(shape_hint(tuple(x.shape), variables, where))
    if device is not None and x.device != device:
        raise UnsupportedInputError(
            f"{where}: x is on {x.device} but the module's coefficients are on {device}; "
            f"move one of them (x.to({str(device)!r}) or module.to({str(x.device)!r}))"
        )


def check_numpy_input(x: Any, variables: Sequence[str], where: str) -> None:
    """Refuse anything but a float32/float64 ``numpy.ndarray`` of shape ``[*batch, n_vars]``."""
    import numpy as np

    if not isinstance(x, np.ndarray):
        hint = (
            "; convert a tensor with x.detach().cpu().numpy()"
            if type(x).__module__.startswith("torch")
            else "; pass np.asarray(x, dtype=np.float64)"
        )
        raise UnsupportedInputError(
            f"{where}: x must be a numpy.ndarray of shape {_columns(variables)}, "
            f"got {type(x).__module__}.{type(x).__name__}{hint}"
        )
    if x.dtype not in (np.float32, np.float64):
        hint = (
            "complex inputs are not supported (rational models are real)"
            if np.iscomplexobj(x)
            else "cast it explicitly, e.g. x.astype(np.float64)"
        )
        raise UnsupportedInputError(
            f"{where}: x must be a float32 or float64 array, got dtype {x.dtype}; {hint}"
        )
    if x.ndim < 1 or x.shape[-1] != len(variables):
        raise ShapeMismatchError(shape_hint(tuple(x.shape), variables, where))
