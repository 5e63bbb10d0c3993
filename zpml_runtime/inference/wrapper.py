"""``SCMInferenceWrapper``: projective tuples in train mode, strict decoding in eval mode."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from typing import Any

import torch
from torch import nn

from zpml_core.config import InferenceConfig
from zpml_core.result import StrictInferenceResult
from zpml_core.strict import strict_inference

from ..errors import ModelOutputError, UnsupportedInputError

__all__ = ["SCMInferenceWrapper", "split_model_outputs"]


def split_model_outputs(outputs: Any) -> tuple[torch.Tensor, torch.Tensor, Any]:
    """Split a model's ``(P, Q)`` or ``(P, Q, V)`` output into ``(P, Q, V or None)``."""
    if not isinstance(outputs, tuple | list) or len(outputs) not in (2, 3):
        what = f"a {type(outputs).__name__}"
        if isinstance(outputs, tuple | list):
            what += f" of length {len(outputs)}"
        raise ModelOutputError(
            f"the wrapped model must return (P, Q) or (P, Q, V), got {what}; "
            "V is the validity factors: a tensor [..., k] or a sequence of tensors"
        )
    for name, value in zip(("P", "Q"), outputs[:2], strict=False):
        if not isinstance(value, torch.Tensor):
            raise ModelOutputError(
                f"the wrapped model returned {name} as {type(value).__name__}; expected a torch.Tensor"
            )
    factors = outputs[2] if len(outputs) == 3 else None
    return outputs[0], outputs[1], factors


class SCMInferenceWrapper(nn.Module):
    """Wrap a model returning ``(P, Q)`` or ``(P, Q, V)`` for training and strict inference.

    * ``train()`` mode: ``wrapped(x)`` returns the model's outputs unchanged, so
      projective losses see the raw tuple.
    * ``eval()`` mode: ``wrapped(x)`` returns :func:`strict_inference` of them, a
      :class:`StrictInferenceResult` unpacking as ``(decoded, bottom_mask, gap_mask)``.

    Validation loops that put the model in eval mode and still need the raw
    tuple for a loss use :meth:`raw` (raw outputs in any mode) or the
    :meth:`raw_outputs` context manager. A loss that unpacks ``p, q = outputs``
    fails loudly on a strict result (three items), never silently.

    Works under ``torch.compile(fullgraph=True)``.
    """

    def __init__(
        self,
        model: nn.Module,
        *,
        config: InferenceConfig | None = None,
        validity_taus: float | Sequence[float] = 0.0,
    ) -> None:
        super().__init__()
        if not isinstance(model, nn.Module):
            raise UnsupportedInputError(
                f"model must be a torch.nn.Module, got {type(model).__name__}"
            )
        if config is not None and not isinstance(config, InferenceConfig):
            raise UnsupportedInputError(
                f"config must be an InferenceConfig or None, got {type(config).__name__}"
            )
        self.model = model
        self.config = InferenceConfig(tau_infer=0.0) if config is None else config
        self.validity_taus = validity_taus
        self._raw_mode = False

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        """Raw model outputs in train mode (or inside :meth:`raw_outputs`), strict result in eval."""
        outputs = self.model(*args, **kwargs)
        if self.training or self._raw_mode:
            return outputs
        return self.decode(outputs)

    def decode(self, outputs: Any) -> StrictInferenceResult:
        """Strictly decode raw model outputs ``(P, Q)`` or ``(P, Q, V)`` with this config."""
        P, Q, factors = split_model_outputs(outputs)
        return strict_inference(
            P,
            Q,
            config=self.config,
            validity_factors=factors,
            validity_taus=self.validity_taus,
        )

    def raw(self, *args: Any, **kwargs: Any) -> Any:
        """The model's raw ``(P, Q[, V])`` outputs, whatever the mode (for validation losses)."""
        return self.model(*args, **kwargs)

    @contextlib.contextmanager
    def raw_outputs(self) -> Iterator[SCMInferenceWrapper]:
        """Within the block, ``wrapped(x)`` returns raw outputs even in eval mode."""
        previous = self._raw_mode
        self._raw_mode = True
        try:
            yield self
        finally:
            self._raw_mode = previous

    def extra_repr(self) -> str:
        return f"config={self.config!r}"
