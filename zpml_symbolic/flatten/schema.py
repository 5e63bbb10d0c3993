"""The output schema of structural validity factors (names for value and masks)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from zpml_symbolic.errors import InvalidArgumentError

SCHEMA_NAME = "zpml.structural_validity_output_schema"
SCHEMA_VERSION = 1


@dataclass(frozen=True, slots=True)
class StructuralValidityOutput:
    """The three outputs of retained validity factor ``index``."""

    index: int
    kind: str
    kinds: tuple[str, ...]
    factor: str
    factor_terms: tuple[tuple[tuple[int, ...], str], ...]
    source: str
    path: str
    sources: tuple[str, ...]
    value_name: str
    fault_mask_name: str
    semantic_bottom_mask_name: str

    @property
    def output_names(self) -> tuple[str, str, str]:
        """``(value, fault_mask, semantic_bottom_mask)`` names."""
        return (self.value_name, self.fault_mask_name, self.semantic_bottom_mask_name)


@dataclass(frozen=True, slots=True)
class StructuralValidityOutputSchema:
    """Deterministic output names for every retained validity factor, in index order."""

    prefix: str
    outputs: tuple[StructuralValidityOutput, ...]
    variables: tuple[str, ...]
    parameters: tuple[str, ...]

    @property
    def output_names(self) -> tuple[str, ...]:
        """``{prefix}_{i}_value, {prefix}_{i}_fault_mask, {prefix}_{i}_semantic_bottom_mask`` for each i."""
        return tuple(name for out in self.outputs for name in out.output_names)

    def to_metadata(self) -> dict[str, Any]:
        """JSON-ready description: schema name and version, exact factor terms, sources."""
        return {
            "schema": SCHEMA_NAME,
            "version": SCHEMA_VERSION,
            "prefix": self.prefix,
            "generators": list(self.variables) + list(self.parameters),
            "variables": list(self.variables),
            "parameters": list(self.parameters),
            "output_names": list(self.output_names),
            "outputs": [
                {
                    "index": o.index,
                    "kind": o.kind,
                    "kinds": list(o.kinds),
                    "factor": o.factor,
                    "factor_terms": [
                        {"exponents": list(m), "coefficient": c} for m, c in o.factor_terms
                    ],
                    "source": o.source,
                    "path": o.path,
                    "sources": list(o.sources),
                    "value": o.value_name,
                    "fault_mask": o.fault_mask_name,
                    "semantic_bottom_mask": o.semantic_bottom_mask_name,
                }
                for o in self.outputs
            ],
        }


def check_prefix(prefix: object) -> str:
    """A prefix must be a Python identifier (it becomes part of output names)."""
    if not isinstance(prefix, str) or not prefix.isidentifier() or not prefix.isascii():
        raise InvalidArgumentError(
            f"prefix must be an ASCII identifier such as 'structural_validity_factor', got {prefix!r}"
        )
    return prefix


__all__ = [
    "SCHEMA_NAME",
    "SCHEMA_VERSION",
    "StructuralValidityOutput",
    "StructuralValidityOutputSchema",
    "check_prefix",
]
