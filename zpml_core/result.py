"""``StrictInferenceResult``: unpacks as ``(decoded, bottom_mask, gap_mask)``, carries provenance."""

from __future__ import annotations

import dataclasses
from collections import OrderedDict
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch
from torch.utils import _pytree as pytree

from .outputs import PROVENANCE_CODES, STRICT_OUTPUT_NAMES

__all__ = ["PROVENANCE_CODES", "STRICT_OUTPUT_NAMES", "StrictInferenceResult"]

DEFAULT_FACTOR_PREFIX = "structural_validity_factor"


@dataclasses.dataclass(frozen=True, eq=False, slots=True)
class StrictInferenceResult:
    """Result of :func:`~zpml_core.strict.strict_inference` (also ``zpml_runtime.inference.strict_inference``).

    Unpacks as exactly three items, ``decoded, bottom_mask, gap_mask = result``
    (the stable contract); the provenance fields are attributes. All arrays are
    of the input backend (torch or numpy).

    Attributes:
        decoded: ``P/Q`` where not bottom, NaN where bottom (output shape).
        bottom_mask: ``fault_mask | semantic_bottom_mask`` (output shape, bool).
        gap_mask: not bottom and ``tau_infer <= |Q| < tau_train`` (all False without ``tau_train``).
        fault_mask: ``P``, ``Q`` or a validity factor non-finite, or ``P/Q`` overflowed.
        semantic_bottom_mask: finite ``Q`` with ``Q == 0`` or ``|Q| < tau_infer``, or a
            finite factor with ``V_i == 0`` or ``|V_i| < tau_i``.
        factor_values: the validity factor values ``V_i`` as given (their own shapes).
        factor_fault_masks: ``~isfinite(V_i)`` per factor (factor shape).
        factor_semantic_masks: ``isfinite(V_i) & ((V_i == 0) | (|V_i| < tau_i))`` per factor.
    """

    decoded: Any
    bottom_mask: Any
    gap_mask: Any
    fault_mask: Any
    semantic_bottom_mask: Any
    factor_values: tuple[Any, ...] = ()
    factor_fault_masks: tuple[Any, ...] = ()
    factor_semantic_masks: tuple[Any, ...] = ()

    def __iter__(self) -> Iterator[Any]:
        return iter((self.decoded, self.bottom_mask, self.gap_mask))

    def __len__(self) -> int:
        return 3

    def __getitem__(self, index: int) -> Any:
        return (self.decoded, self.bottom_mask, self.gap_mask)[index]

    @property
    def bottom_provenance(self) -> Any:
        """int8 codes per entry: 0 finite, 1 fault, 2 semantic, 3 mixed (derived from the masks)."""
        fault, semantic = self.fault_mask, self.semantic_bottom_mask
        if isinstance(fault, torch.Tensor):
            return fault.to(torch.int8) + semantic.to(torch.int8) * 2
        return np.asarray(fault.astype(np.int8) + semantic.astype(np.int8) * np.int8(2))

    @property
    def num_factors(self) -> int:
        """Number of validity factors that were evaluated."""
        return len(self.factor_values)

    def as_dict(self, prefix: str = DEFAULT_FACTOR_PREFIX) -> OrderedDict[str, Any]:
        """All outputs in the canonical order of docs/semantics.md section 3.

        Keys: ``decoded, bottom_mask, gap_mask, fault_mask, semantic_bottom_mask,
        bottom_provenance``, then per factor ``i``: ``{prefix}_{i}_value``,
        ``{prefix}_{i}_fault_mask``, ``{prefix}_{i}_semantic_bottom_mask``.
        """
        out: OrderedDict[str, Any] = OrderedDict(
            decoded=self.decoded,
            bottom_mask=self.bottom_mask,
            gap_mask=self.gap_mask,
            fault_mask=self.fault_mask,
            semantic_bottom_mask=self.semantic_bottom_mask,
            bottom_provenance=self.bottom_provenance,
        )
        for i, (value, fault, semantic) in enumerate(
            zip(
                self.factor_values, self.factor_fault_masks, self.factor_semantic_masks, strict=True
            )
        ):
            out[f"{prefix}_{i}_value"] = value
            out[f"{prefix}_{i}_fault_mask"] = fault
            out[f"{prefix}_{i}_semantic_bottom_mask"] = semantic
        return out


def _flatten(result: StrictInferenceResult) -> tuple[list[Any], int]:
    leaves = [
        result.decoded,
        result.bottom_mask,
        result.gap_mask,
        result.fault_mask,
        result.semantic_bottom_mask,
        *result.factor_values,
        *result.factor_fault_masks,
        *result.factor_semantic_masks,
    ]
    return leaves, len(result.factor_values)


def _unflatten(leaves: Any, k: int) -> StrictInferenceResult:
    leaves = list(leaves)
    rest = leaves[5:]
    return StrictInferenceResult(
        decoded=leaves[0],
        bottom_mask=leaves[1],
        gap_mask=leaves[2],
        fault_mask=leaves[3],
        semantic_bottom_mask=leaves[4],
        factor_values=tuple(rest[:k]),
        factor_fault_masks=tuple(rest[k : 2 * k]),
        factor_semantic_masks=tuple(rest[2 * k : 3 * k]),
    )


pytree.register_pytree_node(
    StrictInferenceResult,
    _flatten,
    _unflatten,
    serialized_type_name="zpml_runtime.inference.StrictInferenceResult",
)
