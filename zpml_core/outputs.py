"""Names and codes of the strict outputs (pure Python: the ONNX back end reads them
without importing torch)."""

from __future__ import annotations

__all__ = ["PROVENANCE_CODES", "STRICT_OUTPUT_NAMES"]

#: The strict outputs in their canonical order (docs/semantics.md section 3); per-factor
#: outputs follow them in exported graphs and in ``StrictInferenceResult.as_dict``.
STRICT_OUTPUT_NAMES: tuple[str, ...] = (
    "decoded",
    "bottom_mask",
    "gap_mask",
    "fault_mask",
    "semantic_bottom_mask",
    "bottom_provenance",
)

#: Integer codes of ``bottom_provenance``.
PROVENANCE_CODES: dict[str, int] = {"finite": 0, "fault": 1, "semantic": 2, "mixed": 3}
