"""``validate_bundle``: open and check every part of a bundle, report every problem.

Nothing is half-loaded: the model bytes that were hashed are the bytes handed
on (to onnx for checking and to onnxruntime by the loader). Checks, in order:
the checksum file and ``metadata.json`` (strict JSON, JSON schema), that
``model_file`` and the smoke file name plain files inside the bundle (no path
traversal, no links), their sizes and SHA-256, the ONNX model
(``check_model(full_check=True)``), that its input/output names, dtypes and
shapes equal the metadata's, and that the thresholds baked into the graph
equal the recorded ones. All problems found are reported together in one
:class:`BundleValidationError`.
"""

from __future__ import annotations

import io
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jsonschema
import numpy as np
import onnx

from zpml_runtime.bundle.format import (
    CHECKSUM_FILE,
    METADATA_FILE,
    METADATA_JSON_SCHEMA,
    STRICT_OUTPUTS,
    BundleValidationError,
    loads_metadata,
    sha256_bytes,
)

_MAX_FILE_BYTES = 2**31


@dataclass(frozen=True, slots=True)
class ValidatedBundle:
    """A bundle that passed validation: metadata, the exact model bytes, smoke inputs."""

    path: Path
    metadata: dict[str, Any]
    model_bytes: bytes
    model: onnx.ModelProto
    smoke_inputs: np.ndarray


def _inside(bundle: Path, name: object, field: str, problems: list[str]) -> Path | None:
    """Resolve a file name from metadata, refusing anything outside the bundle."""
    if not isinstance(name, str) or not name:
        problems.append(f"metadata field {field!r} must be a file name, got {name!r}")
        return None
    if "/" in name or "\\" in name or name in (".", "..") or os.path.isabs(name):
        problems.append(
            f"metadata field {field!r} = {name!r} is not a plain file name inside the bundle (path traversal refused)"
        )
        return None
    path = bundle / name
    if path.is_symlink():
        problems.append(f"{field} {name!r} is a symbolic link; bundles hold regular files only")
        return None
    if path.resolve().parent != bundle.resolve():
        problems.append(f"{field} {name!r} resolves outside the bundle")
        return None
    if not path.is_file():
        problems.append(f"missing file {name!r} (metadata field {field!r})")
        return None
    return path


def _read(path: Path, problems: list[str]) -> bytes | None:
    try:
        if path.stat().st_size > _MAX_FILE_BYTES:
            problems.append(f"{path.name} is larger than {_MAX_FILE_BYTES} bytes")
            return None
        return path.read_bytes()
    except OSError as e:
        problems.append(f"cannot read {path.name}: {e}")
        return None


def _check_hash(
    data: bytes,
    meta: dict[str, Any],
    sha_field: str,
    size_field: str,
    label: str,
    problems: list[str],
) -> None:
    if meta.get(size_field) != len(data):
        problems.append(
            f"{label}: size {len(data)} bytes differs from metadata {size_field}={meta.get(size_field)!r} (truncated or replaced file)"
        )
    digest = sha256_bytes(data)
    if meta.get(sha_field) != digest:
        problems.append(
            f"{label}: sha256 {digest} differs from metadata {sha_field}={meta.get(sha_field)!r} (the file was modified)"
        )


_DTYPES = {
    onnx.TensorProto.FLOAT: "float32",
    onnx.TensorProto.DOUBLE: "float64",
    onnx.TensorProto.BOOL: "bool",
    onnx.TensorProto.INT8: "int8",
}


def _tensor_sig(vi: onnx.ValueInfoProto) -> dict[str, Any]:
    t = vi.type.tensor_type
    return {
        "name": vi.name,
        "dtype": _DTYPES.get(t.elem_type, f"onnx type {t.elem_type}"),
        "shape": [d.dim_param if d.dim_param else int(d.dim_value) for d in t.shape.dim],
    }


def _check_model(model: onnx.ModelProto, meta: dict[str, Any], problems: list[str]) -> None:
    try:
        onnx.checker.check_model(model, full_check=True)
    except Exception as e:  # noqa: BLE001 - report onnx's own message
        problems.append(f"model.onnx fails onnx.checker: {str(e).splitlines()[0]}")
    inputs = list(model.graph.input)
    want_in = meta.get("input", {})
    if len(inputs) != 1:
        problems.append(f"the graph has {len(inputs)} inputs; a bundle graph has exactly one (x)")
    else:
        got = _tensor_sig(inputs[0])
        for key in ("name", "dtype", "shape"):
            if got[key] != want_in.get(key):
                problems.append(
                    f"graph input {key} {got[key]!r} differs from metadata input.{key} {want_in.get(key)!r}"
                )
        if isinstance(want_in.get("variables"), list) and got["shape"][1:] != [
            len(want_in["variables"])
        ]:
            problems.append(
                f"graph input width {got['shape'][1:]} does not match {len(want_in['variables'])} variables"
            )
    got_out = [_tensor_sig(o) for o in model.graph.output]
    want_out = meta.get("outputs", [])
    if [o["name"] for o in got_out] != meta.get("output_order"):
        problems.append(
            f"graph outputs {[o['name'] for o in got_out]} differ from metadata output_order {meta.get('output_order')}"
        )
    if meta.get("output_order", [])[:6] != list(STRICT_OUTPUTS):
        problems.append(f"output_order must start with {list(STRICT_OUTPUTS)}")
    for got, want in zip(got_out, want_out, strict=False):
        if got != want:
            problems.append(f"graph output {got} differs from metadata {want}")
    if len(got_out) != len(want_out):
        problems.append(f"graph has {len(got_out)} outputs, metadata lists {len(want_out)}")
    dtype = want_in.get("dtype")
    thresholds = meta.get("effective_thresholds", {})
    if thresholds.get("dtype") != dtype:
        problems.append(
            f"effective_thresholds.dtype {thresholds.get('dtype')!r} differs from input dtype {dtype!r}"
        )
    try:
        from zpml_symbolic.emit.onnx_emit import read_baked_thresholds

        baked = read_baked_thresholds(model)
    except Exception as e:  # noqa: BLE001
        problems.append(f"cannot read the thresholds baked into the graph: {e}")
        return
    recorded = {k: thresholds.get(k) for k in ("t_infer", "t_train", "t_factors")}
    if baked != recorded:
        problems.append(
            f"thresholds baked into the graph {baked} differ from metadata effective_thresholds {recorded}"
        )
    _check_config_thresholds(meta, dtype, baked, problems)


def _check_config_thresholds(
    meta: dict[str, Any], dtype: Any, baked: dict[str, Any], problems: list[str]
) -> None:
    """The recorded tau values must produce the baked effective thresholds."""
    from zpml_core.arrays import effective_threshold
    from zpml_core.config import InferenceConfig

    if dtype not in ("float32", "float64"):
        return
    try:
        cfg = InferenceConfig.from_metadata(meta["inference_config"])
        t_infer, t_train = cfg.thresholds_for(dtype)
        t_factors = [
            effective_threshold(float(t), dtype, "validity_taus") for t in meta["validity_taus"]
        ]
    except Exception as e:  # noqa: BLE001
        problems.append(f"inference_config/validity_taus are not valid: {e}")
        return
    if (
        baked.get("t_infer") != t_infer
        or baked.get("t_train") != t_train
        or baked.get("t_factors") != t_factors
    ):
        problems.append(
            f"inference_config tau_infer={cfg.tau_infer!r}, tau_train={cfg.tau_train!r}, validity_taus="
            f"{meta['validity_taus']!r} do not give the graph's thresholds {baked} in {dtype}"
        )


def validate_bundle(directory: str | os.PathLike[str]) -> ValidatedBundle:
    """Check a bundle completely; raise :class:`BundleValidationError` listing every problem."""
    bundle = Path(directory)
    problems: list[str] = []
    if not bundle.is_dir():
        raise BundleValidationError(str(bundle), [f"{bundle} is not a directory"])
    meta_path = _inside(bundle, METADATA_FILE, "metadata file", problems)
    sum_path = _inside(bundle, CHECKSUM_FILE, "checksum file", problems)
    meta_bytes = _read(meta_path, problems) if meta_path else None
    if meta_bytes is not None and sum_path is not None:
        line = (_read(sum_path, problems) or b"").decode("ascii", "replace").strip()
        parts = line.split()
        if len(parts) != 2 or parts[1].lstrip("*") != METADATA_FILE:
            problems.append(
                f"{CHECKSUM_FILE} must read '<sha256>  {METADATA_FILE}', got {line[:100]!r}"
            )
        elif parts[0] != sha256_bytes(meta_bytes):
            problems.append(
                f"{METADATA_FILE} does not match {CHECKSUM_FILE} (sha256 {sha256_bytes(meta_bytes)} != {parts[0]}): metadata was edited or truncated"
            )
    if meta_bytes is None:
        raise BundleValidationError(str(bundle), problems)
    try:
        meta = loads_metadata(meta_bytes)
    except (ValueError, UnicodeDecodeError) as e:
        problems.append(f"{METADATA_FILE} is not valid strict JSON: {e}")
        raise BundleValidationError(str(bundle), problems) from None
    for err in sorted(
        jsonschema.Draft202012Validator(METADATA_JSON_SCHEMA).iter_errors(meta), key=str
    ):
        where = "/".join(str(p) for p in err.absolute_path) or "(top level)"
        problems.append(f"metadata {where}: {err.message}")
    model_path = _inside(bundle, meta.get("model_file"), "model_file", problems)
    model_bytes = _read(model_path, problems) if model_path else None
    model = None
    if model_bytes is not None:
        _check_hash(model_bytes, meta, "model_sha256", "model_size", "model.onnx", problems)
        try:
            model = onnx.load_model_from_string(model_bytes)
        except Exception as e:  # noqa: BLE001
            problems.append(f"model.onnx is not a readable ONNX model: {str(e).splitlines()[0]}")
    smoke_meta = meta.get("smoke_inputs") if isinstance(meta.get("smoke_inputs"), dict) else {}
    smoke = None
    smoke_path = _inside(bundle, smoke_meta.get("file"), "smoke_inputs.file", problems)
    smoke_bytes = _read(smoke_path, problems) if smoke_path else None
    if smoke_bytes is not None:
        _check_hash(smoke_bytes, smoke_meta, "sha256", "size", "smoke inputs", problems)
        try:
            smoke = np.load(io.BytesIO(smoke_bytes), allow_pickle=False)
            if list(smoke.shape) != smoke_meta.get("shape") or smoke.dtype.name != smoke_meta.get(
                "dtype"
            ):
                problems.append(
                    f"smoke inputs {smoke.dtype.name}{list(smoke.shape)} differ from metadata {smoke_meta.get('dtype')}{smoke_meta.get('shape')}"
                )
        except ValueError as e:
            problems.append(f"smoke inputs are not a plain .npy array: {e}")
    if model is not None:
        _check_model(model, meta, problems)
    if problems:
        raise BundleValidationError(str(bundle), problems)
    assert model is not None and model_bytes is not None and smoke is not None
    return ValidatedBundle(bundle, meta, model_bytes, model, smoke)


__all__ = ["ValidatedBundle", "validate_bundle"]
