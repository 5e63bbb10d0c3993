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
"""

from __future__ import annotations

import hmac
import io
import math
import os
import stat
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import jsonschema
import numpy as np
import onnx

from zpml_runtime.bundle.format import (
    CHECKSUM_FILE,
    METADATA_FILE,
    METADATA_JSON_SCHEMA,
    SIGNATURE_FILE,
    STRICT_OUTPUTS,
    BundleError,
    BundleValidationError,
    json_depth,
    loads_metadata,
    sha256_bytes,
    signature_line,
)
from zpml_runtime.bundle.semantic import SemanticCheckReport

if TYPE_CHECKING:
    from zpml_symbolic.domain import DomainReport

_MAX_FILE_BYTES = 2**31 - 1  # protobuf's limit for one model
_MAX_METADATA_BYTES = 64 * 2**20
_MAX_CHECKSUM_BYTES = 4096
_MAX_SMOKE_BYTES = 256 * 2**20
_MAX_JSON_DEPTH = 64
_STANDARD_DOMAINS = ("", "ai.onnx")


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


def _check_name(name: object, field: str, problems: list[str]) -> str | None:
    """A file name from metadata: a plain name inside the bundle, or a problem."""
    if not isinstance(name, str) or not name:
        problems.append(f"metadata field {field!r} must be a file name, got {name!r:.80}")
        return None
    if any(ord(ch) < 32 or ch == "\x7f" for ch in name) or len(name) > 255:
        problems.append(
            f"metadata field {field!r} = {name!r:.80} contains control characters (e.g. NUL) or is "
            "longer than 255 characters; write a plain file name such as 'model.onnx'"
        )
        return None
    if "/" in name or "\\" in name or name in (".", "..") or os.path.isabs(name):
        problems.append(
            f"metadata field {field!r} = {name!r} is not a plain file name inside the bundle (path traversal refused)"
        )
        return None
    return name


def _read_at(
    dfd: int,
    name: str,
    field: str,
    limit: int,
    problems: list[str],
    *,
    exact: int | None = None,
    label: str | None = None,
) -> bytes | None:
    """Read a regular file of the bundle through the directory descriptor ``dfd``.

    Symbolic links are refused (``O_NOFOLLOW``), the size is checked with
    ``fstat`` before anything is read (against ``limit``, and against the
    recorded size ``exact`` when given), and at most ``limit + 1`` bytes are read.
    """
    flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)
    try:
        fd = os.open(name, flags, dir_fd=dfd)
    except FileNotFoundError:
        problems.append(f"missing file {name!r} (metadata field {field!r})")
        return None
    except OSError as e:
        if os.path.islink(os.path.join(f"/proc/self/fd/{dfd}", name)) or e.errno == 40:
            problems.append(f"{field} {name!r} is a symbolic link; bundles hold regular files only")
        else:
            problems.append(f"cannot open {name!r} ({field}): {e.strerror or e}")
        return None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            problems.append(f"{field} {name!r} is not a regular file")
            return None
        if st.st_size > limit:
            problems.append(
                f"{name} is {st.st_size} bytes, larger than the limit of {limit} bytes for {field}; "
                "not read"
            )
            return None
        if exact is not None and st.st_size != exact:
            problems.append(
                f"{label or name}: size {st.st_size} bytes differs from the recorded size {exact} "
                "(truncated or replaced file); not read"
            )
            return None
        chunks, left = [], limit + 1
        while left > 0:
            chunk = os.read(fd, min(left, 1 << 24))
            if not chunk:
                break
            chunks.append(chunk)
            left -= len(chunk)
        data = b"".join(chunks)
        if len(data) > limit:
            problems.append(f"{name} grew beyond {limit} bytes while it was read")
            return None
        return data
    except OSError as e:
        problems.append(f"cannot read {name!r} ({field}): {e.strerror or e}")
        return None
    finally:
        os.close(fd)


def _recorded_size(value: object, limit: int) -> int | None:
    if isinstance(value, int) and not isinstance(value, bool) and 0 < value <= limit:
        return value
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


def load_npy_bytes(data: bytes, what: str) -> np.ndarray:
    """Parse a plain ``.npy`` array from bytes, checking the header before allocating.

    Raises :class:`BundleError` for a malformed or oversized header, a non-float
    dtype, object arrays, or a shape that does not match the data length.
    """
    buf = io.BytesIO(data)
    try:
        version = np.lib.format.read_magic(buf)
        if version == (1, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_1_0(buf)
        elif version in ((2, 0), (3, 0)):
            shape, fortran, dtype = np.lib.format.read_array_header_2_0(buf)
        else:
            raise ValueError(f"unsupported .npy version {version}")
    except (ValueError, SyntaxError, OverflowError, MemoryError, RecursionError) as e:
        raise BundleError(f"{what} is not a plain .npy array: {str(e)[:200]}") from None
    if dtype.hasobject or dtype.name not in ("float32", "float64") or dtype.byteorder == ">":
        raise BundleError(f"{what} must be a little-endian float32/float64 .npy array, got {dtype}")
    count = math.prod(shape)
    body = len(data) - buf.tell()
    if count * dtype.itemsize != body:
        raise BundleError(
            f"{what}: the .npy header promises shape {tuple(shape)} ({count * dtype.itemsize} bytes) "
            f"but {body} bytes follow it"
        )
    arr = np.frombuffer(data, dtype=dtype, count=count, offset=buf.tell())
    return arr.reshape(shape, order="F" if fortran else "C").copy()


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
    """The recorded tau values (scaled by each expression's power-of-two gauge) must
    produce the baked effective thresholds."""
    from zpml_runtime.bundle.multi import expression_views, is_multi, single_gauge

    if dtype not in ("float32", "float64"):
        return
    try:
        if is_multi(meta) and meta.get("expressions") is not None:
            views = [v for v, _ in expression_views(meta)]
            expected = [_expected_thresholds(v, dtype, single_gauge(v)) for v in views]
            t_infer, t_train = expected[0][0], expected[0][1]
            if any(e[:2] != (t_infer, t_train) for e in expected):
                problems.append("the expressions' gauges give different tau_infer thresholds")
            t_factors = [t for e in expected for t in e[2]]
        else:
            t_infer, t_train, t_factors = _expected_thresholds(meta, dtype, single_gauge(meta))
    except Exception as e:  # noqa: BLE001
        problems.append(f"inference_config/validity_taus are not valid: {e}")
        return
    if (
        baked.get("t_infer") != t_infer
        or baked.get("t_train") != t_train
        or baked.get("t_factors") != t_factors
    ):
        problems.append(
            f"inference_config tau_infer={meta['inference_config'].get('tau_infer')!r}, "
            f"tau_train={meta['inference_config'].get('tau_train')!r}, validity_taus="
            f"{meta['validity_taus']!r} do not give the graph's thresholds {baked} in {dtype}"
        )


def _expected_thresholds(
    meta: dict[str, Any], dtype: str, gauge: dict[str, Any] | None
) -> tuple[Any, Any, list[Any]]:
    """``(t_infer, t_train, t_factors)`` the graph must hold, in the emitted gauge."""
    from zpml_core.arrays import effective_threshold
    from zpml_core.config import InferenceConfig

    cfg = InferenceConfig.from_metadata(meta["inference_config"])
    taus = [float(t) for t in meta["validity_taus"]]
    e_pq, e_v = 0, [0] * len(taus)
    if gauge is not None:
        e_pq, e_v = int(gauge.get("PQ", 0)), [int(e) for e in gauge.get("V", e_v)]
        if len(e_v) != len(taus):
            raise BundleError(f"gauge V has {len(e_v)} exponents for {len(taus)} validity factors")
    if e_pq:
        from zpml_symbolic.emit.lowering.plan import scaled_config

        cfg = scaled_config(cfg, e_pq)
    t_infer, t_train = cfg.thresholds_for(dtype)
    t_factors = [
        effective_threshold(math.ldexp(t, -e), dtype, "validity_taus")
        for t, e in zip(taus, e_v, strict=True)
    ]
    return t_infer, t_train, t_factors


def _check_parameters(model: onnx.ModelProto, meta: dict[str, Any], problems: list[str]) -> None:
    """Each learnable coefficient's initializer (named by ``parameter_initializers`` when
    present, else by the parameter) must hold the metadata value in the bundle dtype."""
    from onnx import numpy_helper

    dtype = meta["input"]["dtype"]
    names = meta.get("parameter_initializers") or {}
    if not isinstance(names, dict):
        problems.append("metadata parameter_initializers must be an object")
        return
    inits = {i.name: i for g in _walk_graphs(model.graph) for i in g.initializer}
    for param, value in (meta.get("parameters") or {}).items():
        init = inits.get(str(names.get(param, param)))
        if init is None:
            continue  # a coefficient the program does not read (folded away)
        got = numpy_helper.to_array(init)
        want = np.asarray(value, dtype=dtype)
        if got.shape != () or got.dtype != want.dtype or not (got == want or (np.isnan(got) and np.isnan(want))):
            problems.append(
                f"parameter {param!r}: the graph's initializer {init.name!r} holds {got.tolist()!r}, "
                f"metadata parameters say {value!r}"
            )


def _walk_graphs(graph: onnx.GraphProto) -> list[onnx.GraphProto]:
    """The graph and every subgraph (Scan/Loop/If bodies), depth first."""
    out, stack = [], [graph]
    while stack:
        g = stack.pop()
        out.append(g)
        for node in g.node:
            for attr in node.attribute:
                if attr.type == onnx.AttributeProto.GRAPH:
                    stack.append(attr.g)
                elif attr.type == onnx.AttributeProto.GRAPHS:
                    stack.extend(attr.graphs)
    return out


def _check_hygiene(model: onnx.ModelProto, problems: list[str]) -> None:
    """Standard operators only, no model-local functions, no unused initializers."""
    custom = sorted({o.domain for o in model.opset_import} - set(_STANDARD_DOMAINS))
    if custom:
        problems.append(
            f"model.onnx imports non-standard operator domains {custom} (custom operators); "
            "a bundle graph uses the default ONNX domain only"
        )
    if len(model.functions):
        problems.append(
            f"model.onnx defines {len(model.functions)} local function(s); bundle graphs use none"
        )
    graphs = _walk_graphs(model.graph)
    used: set[str] = set()
    for g in graphs:
        for node in g.node:
            used.update(node.input)
            if node.domain not in _STANDARD_DOMAINS:
                problems.append(
                    f"node {node.name or node.op_type!r} uses operator {node.domain}.{node.op_type} "
                    "from a non-standard domain (custom operator)"
                )
        used.update(o.name for o in g.output)
    for g in graphs:
        for init in [*g.initializer, *(s.values for s in g.sparse_initializer)]:
            if init.name not in used:
                size = init.ByteSize()
                problems.append(
                    f"model.onnx holds an initializer {init.name!r} ({size} bytes) that no node "
                    "reads; bundle graphs carry no unused data"
                )


def _check_signature(
    dfd: int, meta_bytes: bytes, signing_key: bytes | None, problems: list[str]
) -> None:
    if signing_key is None:
        return
    if not isinstance(signing_key, bytes | bytearray) or not signing_key:
        raise BundleError("signing_key must be non-empty bytes (the key the bundle was signed with)")
    data = _read_at(dfd, SIGNATURE_FILE, "signature file", _MAX_CHECKSUM_BYTES, problems)
    if data is None:
        problems.append(
            f"a signing key was given but the bundle has no readable {SIGNATURE_FILE}: it is unsigned"
        )
        return
    want = signature_line(meta_bytes, bytes(signing_key)).encode("ascii")
    if not hmac.compare_digest(data.strip(), want.strip()):
        problems.append(
            f"{SIGNATURE_FILE} does not match metadata.json under the given key: the bundle was "
            "modified or signed with another key"
        )


def _read_metadata(
    bundle: Path, dfd: int, signing_key: bytes | None, problems: list[str]
) -> dict[str, Any]:
    meta_bytes = _read_at(dfd, METADATA_FILE, "metadata file", _MAX_METADATA_BYTES, problems)
    sum_bytes = _read_at(dfd, CHECKSUM_FILE, "checksum file", _MAX_CHECKSUM_BYTES, problems)
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
    _check_signature(dfd, meta_bytes, signing_key, problems)
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
        raise BundleValidationError(str(bundle), problems) from None
    for err in sorted(
        jsonschema.Draft202012Validator(METADATA_JSON_SCHEMA).iter_errors(meta), key=str
    ):
        where = "/".join(str(p) for p in err.absolute_path) or "(top level)"
        problems.append(f"metadata {where}: {err.message[:300]}")
    if problems:  # later checks index the metadata: stop at a schema violation
        raise BundleValidationError(str(bundle), problems)
    return meta


def _read_model(dfd: int, meta: dict[str, Any], problems: list[str]) -> tuple[bytes, Any] | None:
    name = _check_name(meta.get("model_file"), "model_file", problems)
    size = _recorded_size(meta.get("model_size"), _MAX_FILE_BYTES)
    if name is None:
        return None
    data = _read_at(
        dfd, name, "model_file", size or _MAX_FILE_BYTES, problems, exact=size, label="model.onnx"
    )
    if data is None:
        return None
    _check_hash(data, meta, "model_sha256", "model_size", "model.onnx", problems)
    try:
        model = onnx.load_model_from_string(data)
    except Exception as e:  # noqa: BLE001 - protobuf raises several types
        problems.append(f"model.onnx is not a readable ONNX model: {str(e).splitlines()[0][:200]}")
        return None
    return data, model


def _read_smoke(dfd: int, meta: dict[str, Any], problems: list[str]) -> np.ndarray | None:
    smoke_meta = meta["smoke_inputs"]
    name = _check_name(smoke_meta.get("file"), "smoke_inputs.file", problems)
    if name is None:
        return None
    size = _recorded_size(smoke_meta.get("size"), _MAX_SMOKE_BYTES)
    data = _read_at(
        dfd,
        name,
        "smoke_inputs.file",
        size or _MAX_SMOKE_BYTES,
        problems,
        exact=size,
        label="smoke inputs",
    )
    if data is None:
        return None
    _check_hash(data, smoke_meta, "sha256", "size", "smoke inputs", problems)
    try:
        smoke = load_npy_bytes(data, "smoke inputs")
    except BundleError as e:
        problems.append(str(e))
        return None
    if list(smoke.shape) != smoke_meta.get("shape") or smoke.dtype.name != smoke_meta.get("dtype"):
        problems.append(
            f"smoke inputs {smoke.dtype.name}{list(smoke.shape)} differ from metadata {smoke_meta.get('dtype')}{smoke_meta.get('shape')}"
        )
    return smoke


def _structural(
    directory: str | os.PathLike[str], signing_key: bytes | None
) -> tuple[Path, dict[str, Any], bytes, onnx.ModelProto, np.ndarray]:
    bundle = Path(directory)
    problems: list[str] = []
    try:
        if bundle.is_symlink() and not bundle.is_dir():
            raise NotADirectoryError
        dfd = os.open(bundle, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except (OSError, ValueError):
        raise BundleValidationError(str(bundle), [f"{bundle} is not a directory"]) from None
    try:
        meta = _read_metadata(bundle, dfd, signing_key, problems)
        read = _read_model(dfd, meta, problems)
        smoke = _read_smoke(dfd, meta, problems)
    finally:
        os.close(dfd)
    if read is not None:
        from zpml_runtime.bundle.multi import structure_problems

        _check_hygiene(read[1], problems)
        _check_model(read[1], meta, problems)
        problems += structure_problems(meta, read[1])
        _check_parameters(read[1], meta, problems)
    if problems:
        raise BundleValidationError(str(bundle), problems)
    assert read is not None and smoke is not None
    return bundle, meta, read[0], read[1], smoke


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
        ) from None


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
    bundle, meta, model_bytes, model, smoke = _structural(directory, signing_key)
    domain, domain_problems = check_domain(meta)
    session = make_session(model_bytes, providers, str(bundle))
    try:
        verdict, report = verify_graph(
            bundle,
            meta,
            model,
            _session_runner(session, meta["input"]["name"]),
            smoke,
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
        meta,
        model_bytes,
        model,
        smoke,
        report,
        verdict.verified,
        verdict.unverified,
        verdict.detail,
        domain,
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
    bundle, meta, model_bytes, model, smoke = _structural(directory, None)
    return ValidatedBundle(bundle, meta, model_bytes, model, smoke, None)


__all__ = [
    "ValidatedBundle",
    "load_npy_bytes",
    "open_validated",
    "validate_bundle",
    "validate_structure",
]
