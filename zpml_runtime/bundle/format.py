"""The ONNX bundle format: file names, metadata JSON schema, strict JSON I/O.

A bundle is a directory::

    model.onnx          the strict ONNX graph
    metadata.json       everything needed to use and audit it (schema below)
    metadata.sha256     ``<sha256>  metadata.json`` (``sha256sum -c`` accepts it)
    smoke_inputs.npy    stored smoke inputs (plain array; loaded with allow_pickle=False)

``metadata.json`` records the hashes and sizes of ``model.onnx`` and
``smoke_inputs.npy``, so the single checksum file covers every byte.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from typing import Any

import numpy as np

from zpml_core.outputs import STRICT_OUTPUT_NAMES

from .errors import BundleBusyError, BundleError, BundleSmokeTestError, BundleValidationError

BUNDLE_SCHEMA = "zpml.onnx_bundle"
BUNDLE_SCHEMA_VERSION = 2
MODEL_FILE = "model.onnx"
METADATA_FILE = "metadata.json"
CHECKSUM_FILE = "metadata.sha256"
SMOKE_FILE = "smoke_inputs.npy"
SIGNATURE_FILE = "metadata.sig"
REPORT_FILES = (
    "VALIDATION_REPORT.md",
    "VALIDATION_REPORT.summary.json",
    "VALIDATION_REPORT.summary.svg",
)
STRICT_OUTPUTS: tuple[str, ...] = STRICT_OUTPUT_NAMES
FLOAT_DTYPES = ("float32", "float64")
#: ``zpml_symbolic.domain.report.SCHEMA``: the JSON schema name of ``metadata["domain"]``
DOMAIN_REPORT_SCHEMA = "zpml.domain_report/1"

MASK_SEMANTICS: dict[str, str] = {
    "decoded": "P/Q where not bottom; NaN where bottom",
    "bottom_mask": "fault_mask | semantic_bottom_mask; authoritative fail-closed mask: reject or route",
    "gap_mask": "not bottom and tau_infer <= |Q| < tau_train; finite but close to the boundary (monitor)",
    "fault_mask": "P, Q or a validity factor non-finite (incl. from NaN/Inf inputs), or P/Q overflowed",
    "semantic_bottom_mask": "finite Q with Q == 0 or |Q| < tau_infer, or a finite validity factor with V_i == 0 or |V_i| < tau_i",
    "bottom_provenance": "int8: 0 finite, 1 fault, 2 semantic, 3 mixed",
    "per_factor": "{prefix}_{i}_value = V_i; _fault_mask = ~isfinite(V_i); _semantic_bottom_mask = isfinite(V_i) & (V_i == 0 | |V_i| < tau_i)",
}

_HEX64 = {"type": "string", "pattern": "^[0-9a-f]{64}$"}
_TENSOR = {
    "type": "object",
    "required": ["name", "dtype", "shape"],
    "properties": {
        "name": {"type": "string", "minLength": 1},
        "dtype": {"enum": ["float32", "float64", "bool", "int8"]},
        "shape": {"type": "array", "items": {"type": ["string", "integer"]}},
    },
}
_NUMBER_OR_NULL = {"type": ["number", "null"]}

#: JSON Schema (draft 2020-12) of ``metadata.json``.
METADATA_JSON_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "required": [
        "schema",
        "schema_version",
        "bundle_id",
        "model_file",
        "model_sha256",
        "model_size",
        "inference_config",
        "validity_taus",
        "effective_thresholds",
        "input",
        "outputs",
        "output_order",
        "mask_semantics",
        "gauge_policy",
        "parameters",
        "package_versions",
        "smoke_inputs",
        "source",
    ],
    "properties": {
        "schema": {"const": BUNDLE_SCHEMA},
        "schema_version": {"const": BUNDLE_SCHEMA_VERSION},
        "bundle_id": {"type": "string", "minLength": 1},
        "model_file": {"type": "string", "minLength": 1},
        "model_sha256": _HEX64,
        "model_size": {"type": "integer", "minimum": 1},
        "inference_config": {
            "type": "object",
            "required": ["tau_infer", "tau_train"],
            "properties": {
                "tau_infer": {"type": "number", "minimum": 0},
                "tau_train": _NUMBER_OR_NULL,
            },
        },
        "validity_taus": {"type": "array", "items": {"type": "number", "minimum": 0}},
        "effective_thresholds": {
            "type": "object",
            "required": ["dtype", "t_infer", "t_train", "t_factors"],
            "properties": {
                "dtype": {"enum": list(FLOAT_DTYPES)},
                "t_infer": {"type": ["number", "string"]},
                "t_train": {"type": ["number", "string", "null"]},
                "t_factors": {"type": "array", "items": {"type": ["number", "string"]}},
            },
        },
        "input": {
            "type": "object",
            "required": ["name", "dtype", "shape", "batch_axis", "variables"],
            "properties": {
                "name": {"type": "string"},
                "dtype": {"enum": list(FLOAT_DTYPES)},
                "shape": {"type": "array", "minItems": 2, "maxItems": 2},
                "batch_axis": {"const": 0},
                "variables": {"type": "array", "items": {"type": "string"}},
            },
        },
        "outputs": {"type": "array", "minItems": 6, "items": _TENSOR},
        "output_order": {"type": "array", "items": {"type": "string"}, "minItems": 6},
        "mask_semantics": {"type": "object"},
        "gauge_policy": {"type": "string"},
        "parameters": {"type": "object", "additionalProperties": {"type": "number"}},
        "package_versions": {"type": "object", "additionalProperties": {"type": "string"}},
        "smoke_inputs": {
            "type": "object",
            "required": ["file", "sha256", "size", "shape", "dtype"],
            "properties": {
                "file": {"type": "string"},
                "sha256": _HEX64,
                "size": {"type": "integer", "minimum": 1},
                "shape": {"type": "array", "items": {"type": "integer"}},
                "dtype": {"enum": list(FLOAT_DTYPES)},
            },
        },
        "source": {"enum": ["compiled_fru", "traced_model"]},
        "fru": {"type": ["object", "null"]},
        "structural_validity_output_schema": {"type": ["object", "null"]},
        "multi_output": {
            "type": "object",
            "required": ["k", "output_names", "factors"],
            "properties": {
                "k": {"type": "integer", "minimum": 2},
                "output_names": {"type": "array", "items": {"type": "string"}},
                "factors": {"type": "array", "items": {"type": "object"}},
            },
        },
        "expressions": {"type": "array", "items": {"type": "object"}},
        "gauge_exponents": {"type": "array", "items": {"type": "object"}},
        "parameter_initializers": {
            "type": "object",
            "additionalProperties": {"type": "string"},
        },
        "input_box": {
            "type": "object",
            "minProperties": 1,
            "additionalProperties": {"type": "string", "minLength": 1, "maxLength": 4096},
        },
        "domain": {
            "type": "object",
            "required": ["schema", "box", "factors", "defined_everywhere", "summary"],
            "properties": {
                "schema": {"const": DOMAIN_REPORT_SCHEMA},
                "box": {"type": "object"},
                "factors": {"type": "array", "items": {"type": "object"}},
                "defined_everywhere": {"type": "boolean"},
                "summary": {"type": "string"},
            },
        },
        "emitter": {
            "type": "object",
            "required": ["compiler", "version", "format", "kind", "options"],
            "properties": {
                "compiler": {"type": "string"},
                "version": {"type": "string"},
                "format": {"type": "integer"},
                "fingerprint": {"type": "string"},
                "kind": {"enum": ["compiled_fru", "traced_decoder"]},
                "options": {"type": "object"},
            },
        },
    },
    # the operating box and its domain report are recorded together (see bundle/domain.py)
    "dependentRequired": {"input_box": ["domain"], "domain": ["input_box"]},
}


def sha256_bytes(data: bytes) -> str:
    """Hex SHA-256 of ``data``."""
    return hashlib.sha256(data).hexdigest()


def dumps_metadata(metadata: dict[str, Any]) -> bytes:
    """Canonical strict JSON (sorted keys, no NaN/Infinity tokens)."""
    return (json.dumps(metadata, sort_keys=True, indent=2, allow_nan=False) + "\n").encode("utf-8")


def _reject_constant(token: str) -> Any:
    raise ValueError(f"non-standard JSON token {token!r}")


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise ValueError(f"duplicate key {key!r}")
        out[key] = value
    return out


def loads_metadata(data: bytes) -> dict[str, Any]:
    """Parse strict JSON: NaN/Infinity tokens and duplicate keys are errors."""
    value = json.loads(
        data.decode("utf-8"), parse_constant=_reject_constant, object_pairs_hook=_no_duplicates
    )
    if not isinstance(value, dict):
        raise ValueError("the top level is not a JSON object")
    return value


_JSON_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"', re.DOTALL)
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")


def json_depth(data: bytes) -> int:
    """Deepest ``[``/``{`` nesting of JSON text, computed on the bytes (no parsing, no recursion).

    Brackets inside strings do not count. Used to refuse deep JSON before
    ``json.loads`` (whose recursion would otherwise raise ``RecursionError``).
    """
    brackets = _JSON_STRING.sub(b'""', data).translate(None, _NOT_BRACKETS)
    if not brackets:
        return 0
    codes = np.frombuffer(brackets, dtype=np.uint8)
    steps = np.where((codes == ord("[")) | (codes == ord("{")), 1, -1).astype(np.int64)
    return int(np.cumsum(steps).max())


def signature_line(metadata_bytes: bytes, key: bytes) -> str:
    """The ``metadata.sig`` content: HMAC-SHA256 of ``metadata.json`` under ``key``."""
    digest = hmac.new(key, metadata_bytes, hashlib.sha256).hexdigest()
    return f"hmac-sha256 {digest}  {METADATA_FILE}\n"


def checksum_line(metadata_bytes: bytes) -> str:
    """The ``metadata.sha256`` content for ``metadata.json`` (``sha256sum`` format)."""
    return f"{sha256_bytes(metadata_bytes)}  {METADATA_FILE}\n"


__all__ = [
    "BUNDLE_SCHEMA",
    "BUNDLE_SCHEMA_VERSION",
    "CHECKSUM_FILE",
    "MASK_SEMANTICS",
    "METADATA_FILE",
    "METADATA_JSON_SCHEMA",
    "MODEL_FILE",
    "REPORT_FILES",
    "SIGNATURE_FILE",
    "SMOKE_FILE",
    "STRICT_OUTPUTS",
    "BundleBusyError",
    "BundleError",
    "BundleSmokeTestError",
    "BundleValidationError",
    "checksum_line",
    "dumps_metadata",
    "json_depth",
    "loads_metadata",
    "sha256_bytes",
    "signature_line",
]
