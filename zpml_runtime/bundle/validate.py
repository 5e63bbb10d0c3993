"""``validate_bundle``: open and check every part of a bundle, report every problem.

Nothing is half-loaded: the model bytes that were hashed are the bytes handed
on (to onnx for checking and to onnxruntime by the loader). Files are read
through one directory descriptor (no links, sizes checked before reading).
Checks: the checksum file, an optional HMAC signature, ``metadata.json``
(nesting depth, strict JSON, JSON schema), plain file names, sizes and SHA-256,
the ONNX model (checker, standard operator domains only, no unused
initializers, input/output signature, baked thresholds), then the graph itself
(:mod:`zpml_runtime.bundle.verify`): verification by reproduction
(:mod:`.reproduce`) and the sampling second line of defence (:mod:`.semantic`).
All problems found are reported together in one :class:`BundleValidationError`.
The file reads are :mod:`.files`, the model checks :mod:`.model_checks`; the
metadata is parsed once into :class:`~.metadata.BundleMetadata`.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import onnx

from zpml_runtime.bundle.errors import BundleMetadataError
from zpml_runtime.bundle.files import (
    MAX_CHECKSUM_BYTES,
    MAX_FILE_BYTES,
    MAX_METADATA_BYTES,
    MAX_SMOKE_BYTES,
    check_hash,
    check_name,
    check_signature,
    load_npy_bytes,
    read_at,
    recorded_size,
)
from zpml_runtime.bundle.format import (
    CHECKSUM_FILE,
    METADATA_FILE,
    BundleError,
    BundleValidationError,
    json_depth,
    loads_metadata,
    sha256_bytes,
)
from zpml_runtime.bundle.metadata import BundleMetadata
from zpml_runtime.bundle.model_checks import (
    check_hygiene,
    check_model,
    check_parameters,
)
from zpml_runtime.bundle.semantic import SemanticCheckReport

if TYPE_CHECKING:
    from zpml_symbolic.domain import DomainReport

_read_at = read_at  # the name tests and older callers use
_MAX_JSON_DEPTH = 64


@dataclass(frozen=True, slots=True)
class ValidatedBundle:
    """A bundle that passed validation: metadata, the exact model bytes, smoke inputs.

    ``verified`` is True when the whole graph was reproduced from the recorded
    expression and options; otherwise ``unverified_reason`` says what is not
    verified (a traced model's computation of ``P, Q, V``, or a bundle accepted with
    ``allow_unverified=True``). ``verification`` says what was checked.
    ``semantic`` is the recomputation report (``None`` for traced bundles, which
    carry no exact expression, or when the check was not asked for).
    ``domain`` is the certified domain report over the declared operating box
    (``metadata["input_box"]``), recomputed from the recorded expression by the
    validator (never read from the bundle); ``None`` without an operating box.
    ``info`` is ``metadata`` as typed records (:class:`~.metadata.BundleMetadata`).
    """

    path: Path
    metadata: dict[str, Any]
    model_bytes: bytes
    model: onnx.ModelProto
    smoke_inputs: np.ndarray
    semantic: SemanticCheckReport | None = None
    verified: bool = False
    unverified_reason: str | None = "not checked (file-level validation only)"
    verification: str = "file-level checks only"
    domain: DomainReport | None = None
    #: ``metadata`` parsed into typed records (``None`` only if built by hand without it)
    info: BundleMetadata | None = None


def _read_metadata(
    bundle: Path, dfd: int, signing_key: bytes | None, problems: list[str]
) -> tuple[dict[str, Any], BundleMetadata]:
    meta_bytes = read_at(dfd, METADATA_FILE, "metadata file", MAX_METADATA_BYTES, problems)
    sum_bytes = read_at(dfd, CHECKSUM_FILE, "checksum file", MAX_CHECKSUM_BYTES, problems)
    if meta_bytes is not None and sum_bytes is not None:
        line = sum_bytes.decode("ascii", "replace").strip()
        parts = line.split()
        if len(parts) != 2 or parts[1].lstrip("*") != METADATA_FILE:
            problems.append(
                f"{CHECKSUM_FILE} must read '<sha256>  {METADATA_FILE}', got {line[:100]!r}"
            )
        elif parts[0] != sha256_bytes(meta_bytes):
            problems.append(
                f"{METADATA_FILE} does not match {CHECKSUM_FILE} (sha256 {sha256_bytes(meta_bytes)} != {parts[0][:64]}): metadata was edited or truncated"
            )
    if meta_bytes is None:
        raise BundleValidationError(str(bundle), problems)
    check_signature(dfd, meta_bytes, signing_key, problems)
    depth = json_depth(meta_bytes)
    if depth > _MAX_JSON_DEPTH:
        problems.append(
            f"{METADATA_FILE} nests {depth} levels deep (limit {_MAX_JSON_DEPTH}); not parsed"
        )
        raise BundleValidationError(str(bundle), problems)
    try:
        meta = loads_metadata(meta_bytes)
    except (ValueError, UnicodeDecodeError, RecursionError) as e:
        problems.append(f"{METADATA_FILE} is not valid strict JSON: {str(e)[:300]}")
        raise BundleValidationError(str(bundle), problems) from e
    problems += BundleMetadata.schema_problems(meta)
    if problems:  # later checks read the metadata: stop at a schema violation
        raise BundleValidationError(str(bundle), problems)
    try:
        info = BundleMetadata.parse(meta)
    except BundleMetadataError as e:
        raise BundleValidationError(str(bundle), [str(e)]) from e
    return meta, info


def _read_model(
    dfd: int, meta: BundleMetadata, problems: list[str]
) -> tuple[bytes, onnx.ModelProto] | None:
    name = check_name(meta.model_file, "model_file", problems)
    size = recorded_size(meta.model_size, MAX_FILE_BYTES)
    if name is None:
        return None
    data = read_at(
        dfd, name, "model_file", size or MAX_FILE_BYTES, problems, exact=size, label="model.onnx"
    )
    if data is None:
        return None
    recorded = ("model_sha256", meta.model_sha256, "model_size", meta.model_size)
    check_hash(data, recorded, "model.onnx", problems)
    try:
        model = onnx.load_model_from_string(data)
    except Exception as e:  # noqa: BLE001 - protobuf raises several types
        problems.append(f"model.onnx is not a readable ONNX model: {str(e).splitlines()[0][:200]}")
        return None
    return data, model


def _read_smoke(dfd: int, meta: BundleMetadata, problems: list[str]) -> np.ndarray | None:
    spec = meta.smoke_inputs
    name = check_name(spec.file, "smoke_inputs.file", problems)
    if name is None:
        return None
    size = recorded_size(spec.size, MAX_SMOKE_BYTES)
    data = read_at(
        dfd,
        name,
        "smoke_inputs.file",
        size or MAX_SMOKE_BYTES,
        problems,
        exact=size,
        label="smoke inputs",
    )
    if data is None:
        return None
    check_hash(data, ("sha256", spec.sha256, "size", spec.size), "smoke inputs", problems)
    try:
        smoke = load_npy_bytes(data, "smoke inputs")
    except BundleError as e:
        problems.append(str(e))
        return None
    if smoke.shape != spec.shape or smoke.dtype.name != spec.dtype:
        problems.append(
            f"smoke inputs {smoke.dtype.name}{list(smoke.shape)} differ from metadata {spec.dtype}{list(spec.shape)}"
        )
    return smoke


@dataclass(frozen=True, slots=True)
class _Read:
    bundle: Path
    meta: dict[str, Any]
    info: BundleMetadata
    model_bytes: bytes
    model: onnx.ModelProto
    smoke: np.ndarray


def _structural(directory: str | os.PathLike[str], signing_key: bytes | None) -> _Read:
    bundle = Path(directory)
    problems: list[str] = []
    try:
        if bundle.is_symlink() and not bundle.is_dir():
            raise NotADirectoryError
        dfd = os.open(bundle, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except (OSError, ValueError) as e:
        raise BundleValidationError(str(bundle), [f"{bundle} is not a directory"]) from e
    try:
        meta, info = _read_metadata(bundle, dfd, signing_key, problems)
        read = _read_model(dfd, info, problems)
        smoke = _read_smoke(dfd, info, problems)
    finally:
        os.close(dfd)
    if read is not None:
        from zpml_runtime.bundle.multi import structure_problems

        check_hygiene(read[1], problems)
        check_model(read[1], info, problems)
        problems += structure_problems(info, read[1])
        check_parameters(read[1], info, problems)
    if problems:
        raise BundleValidationError(str(bundle), problems)
    assert read is not None and smoke is not None
    return _Read(bundle, meta, info, read[0], read[1], smoke)


def _session_runner(session: Any, input_name: str) -> Callable[[np.ndarray], dict[str, np.ndarray]]:
    names = [o.name for o in session.get_outputs()]

    def run(x: np.ndarray) -> dict[str, np.ndarray]:
        return dict(zip(names, session.run(None, {input_name: x}), strict=True))

    return run


def make_session(model_bytes: bytes, providers: Sequence[str], directory: str) -> Any:
    """An onnxruntime session for validated bytes; errors become :class:`BundleValidationError`."""
    import onnxruntime as ort

    try:
        return ort.InferenceSession(model_bytes, providers=list(providers))
    except Exception as e:  # noqa: BLE001 - onnxruntime raises its own exception types
        raise BundleValidationError(
            directory, [f"onnxruntime cannot load model.onnx: {str(e).splitlines()[0][:300]}"]
        ) from e


def open_validated(
    directory: str | os.PathLike[str],
    providers: Sequence[str] = ("CPUExecutionProvider",),
    *,
    signing_key: bytes | None = None,
    seed: int | None = None,
    allow_unverified: bool = False,
    require_verified: bool = False,
) -> tuple[ValidatedBundle, Any]:
    """Validate completely and return the bundle with the onnxruntime session that was checked."""
    from zpml_runtime.bundle.domain import check_domain
    from zpml_runtime.bundle.verify import check_policy, verify_graph

    check_policy(allow_unverified, require_verified)
    read = _structural(directory, signing_key)
    bundle = read.bundle
    domain, domain_problems = check_domain(read.info)
    session = make_session(read.model_bytes, providers, str(bundle))
    try:
        verdict, report = verify_graph(
            bundle,
            read.meta,
            read.model,
            _session_runner(session, read.info.input.name),
            read.smoke,
            seed,
            allow_unverified=allow_unverified,
            require_verified=require_verified,
        )
    except BundleValidationError as e:
        if not domain_problems:
            raise
        raise BundleValidationError(str(bundle), e.problems + domain_problems) from None
    if domain_problems:
        raise BundleValidationError(str(bundle), domain_problems)
    validated = ValidatedBundle(
        bundle,
        read.meta,
        read.model_bytes,
        read.model,
        read.smoke,
        report,
        verdict.verified,
        verdict.unverified,
        verdict.detail,
        domain,
        read.info,
    )
    return validated, session


def validate_bundle(
    directory: str | os.PathLike[str],
    *,
    signing_key: bytes | None = None,
    seed: int | None = None,
    allow_unverified: bool = False,
    require_verified: bool = False,
) -> ValidatedBundle:
    """Check a bundle completely; raise :class:`BundleValidationError` listing every problem.

    Besides the files (checksum, strict JSON, schema, sizes, hashes, ONNX
    checker, signature, thresholds), the graph is verified by reproduction: a
    compiled bundle's ``model.onnx`` must be exactly the graph the installed
    compiler emits for the recorded expression, variables, parameters,
    thresholds and options (a difference is refused, naming the first differing
    node or initializer); a traced bundle must end with exactly the strict
    decoder rebuilt from its thresholds. As a second line of defence a compiled
    graph is run in onnxruntime on unpredictable points the validator generates
    (random, huge and tiny, on the zero set of ``Q`` and of every factor, inside
    and just above each tau band; batches of several sizes) and compared with
    exact recomputation and with the numpy program. ``seed`` fixes those points
    (default: fresh random ones from the OS; the seed is in any error message).
    ``signing_key`` (bytes) also requires a matching HMAC-SHA256 signature in
    ``metadata.sig``.

    A compiled bundle that cannot be reproduced (written by another compiler
    version, or without a usable ``fru``) is refused unless
    ``allow_unverified=True``; the result then has ``verified=False``. Traced
    bundles are valid but ``verified=False`` (their P, Q, V computation is the
    user's model); ``require_verified=True`` refuses every bundle that is not
    verified.

    A bundle that declares an operating box (``input_box``) gets its domain report
    recomputed from the recorded expression (the result's ``domain``); a stored report
    that differs from it is refused, naming the first differing field.
    """
    return open_validated(
        directory,
        signing_key=signing_key,
        seed=seed,
        allow_unverified=allow_unverified,
        require_verified=require_verified,
    )[0]


def validate_structure(directory: str | os.PathLike[str]) -> ValidatedBundle:
    """The file-level checks only (no onnxruntime run): used before replacing a bundle."""
    r = _structural(directory, None)
    return ValidatedBundle(r.bundle, r.meta, r.model_bytes, r.model, r.smoke, None, info=r.info)


__all__ = [
    "ValidatedBundle",
    "load_npy_bytes",
    "open_validated",
    "validate_bundle",
    "validate_structure",
]
