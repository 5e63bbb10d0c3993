"""Verification by reproduction: rebuild the graph from the metadata and compare.

Emission is deterministic: the same expression, options and compiler version
give the same ``model.onnx``. So instead of sampling a graph (an attacker who
can edit the file can always pick inputs the validator does not try), the
validator re-emits it:

* **compiled bundles**: the recorded exact expression(s) are re-parsed (safe
  parser) and re-flattened, compiled with the recorded variables, parameters,
  thresholds and emitter options (``metadata["emitter"]``), and the result must
  equal the stored graph field for field (:mod:`.protodiff`): nodes with their
  attributes, the ``Scan`` body, initializers bit for bit, inputs, outputs,
  opset imports and metadata properties;
* **traced bundles** (an arbitrary model traced to ONNX): the computation of
  ``P``, ``Q``, ``V`` cannot be verified, but the strict decoder that turns them
  into ``decoded`` and the masks is rebuilt and must be the end of the stored
  graph, unchanged, with nothing after it and no other writer of its tensors.

A bundle written by another compiler version (or emitter format) cannot be
reproduced; :func:`unverifiable_reason` says so, naming both versions.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

import onnx

from zpml_runtime.bundle.errors import BundleError
from zpml_runtime.bundle.metadata import BundleMetadata, EmitterRecord

if TYPE_CHECKING:
    from zpml_symbolic.emit.backends.onnx.artifact import OnnxArtifact
from zpml_runtime.bundle.protodiff import first_difference, has_unknown_fields, node_difference

#: Bump whenever the emitted graph can change for the same inputs (new lowering,
#: new node layout): bundles recording another format are not reproduced.
EMITTER_FORMAT = 1
COMPILED = "compiled_fru"
TRACED = "traced_decoder"
_KINDS = {"compiled_fru": COMPILED, "traced_model": TRACED}
_FIX = (
    "re-export the bundle with the installed zpml, or pass allow_unverified=True "
    "(zpml --allow-unverified) to use it unverified"
)


def compiler_version() -> str:
    """The installed compiler's version (``zpml_symbolic.__version__``)."""
    import zpml_symbolic

    return str(getattr(zpml_symbolic, "__version__", "unknown"))


@functools.lru_cache(maxsize=1)
def emitter_fingerprint() -> str:
    """SHA-256 (first 16 hex digits) of the graphs the installed emitter builds for a fixed
    set of inputs (validity factors, thresholds, parameters, several expressions, the
    regauged path, both dtypes, row tiles, the traced strict decoder).

    Recorded in every bundle: a development build whose emitter changed without a new
    version number is then told apart from the one that wrote the bundle (computed once
    per process, ~50 ms).
    """
    import hashlib

    from zpml_core.config import InferenceConfig
    from zpml_runtime.bundle.decoder import decoder_model
    from zpml_symbolic.emit.backends.onnx import to_onnx

    cfg = InferenceConfig(tau_infer=1e-6, tau_train=1e-3)
    graphs = [
        to_onnx("(x**2 + 1)/(x - y) + 1/(1 + 1/x)", config=cfg, validity_taus=1e-4),
        to_onnx(
            "(a + b*x)/(1 + c*x**2) + y/(x*y - 3)",
            parameters=["a", "b", "c"],
            init={"a": 0.1, "b": -2.0, "c": 0.5},
            dtype="float64",
            tile_rows=None,
        ),
        to_onnx(["d/(a*d - b*c)", "-b/(a*d - b*c)", "x/(1e-40*x + 1)"], dtype="float64"),
        decoder_model(2, config=cfg, validity_taus=[0.0, 1e-3], dtype="float32", opset=18),
        decoder_model(
            1,
            config=cfg,
            validity_taus=0.0,
            dtype="float64",
            opset=18,
            n_out=3,
            factor_shapes=[["batch"]],
        ),
    ]
    digest = hashlib.sha256()
    for g in graphs:
        digest.update(g.SerializeToString())
    return digest.hexdigest()[:16]


def emitter_record(kind: str, options: dict[str, Any]) -> dict[str, Any]:
    """The ``metadata["emitter"]`` section: who emitted the graph, and with which options."""
    return {
        "compiler": "zpml",
        "version": compiler_version(),
        "format": EMITTER_FORMAT,
        "fingerprint": emitter_fingerprint(),
        "kind": kind,
        "options": dict(options),
    }


def _record(metadata: Mapping[str, Any] | BundleMetadata) -> EmitterRecord | str | None:
    """The emitter record, ``None`` when there is none, or a message when it is malformed."""
    if isinstance(metadata, BundleMetadata):
        return metadata.emitter
    try:
        return BundleMetadata.parse(metadata, draft=True).emitter
    except BundleError:
        return f"metadata emitter record {metadata.get('emitter')!r:.120} is malformed"


def unverifiable_reason(metadata: Mapping[str, Any] | BundleMetadata) -> str | None:
    """Why the installed compiler cannot reproduce this bundle's graph (``None``: it can)."""
    rec = _record(metadata)
    if rec is None:
        return (
            "metadata.json has no emitter record (the bundle predates verification by "
            f"reproduction, or the record was removed); its graph cannot be reproduced: {_FIX}"
        )
    if isinstance(rec, str):
        return f"{rec}; the graph cannot be reproduced: {_FIX}"
    want = (compiler_version(), EMITTER_FORMAT)
    got = (rec.version, rec.format)
    if got != want:
        return (
            f"the bundle was written by zpml {got[0]!r} (emitter format {got[1]!r}); the installed "
            f"zpml {want[0]} (emitter format {want[1]}) cannot reproduce its graph, so it cannot be "
            f"verified: {_FIX}"
        )
    if rec.fingerprint != emitter_fingerprint():
        return (
            f"the bundle was written by an emitter with fingerprint {rec.fingerprint!r}; "
            f"the installed zpml {want[0]} emits other graphs (fingerprint "
            f"{emitter_fingerprint()!r}: a build whose emitter changed under the same version), so "
            f"its graph cannot be verified: {_FIX}"
        )
    return None


def kind_problems(metadata: Mapping[str, Any] | BundleMetadata) -> list[str]:
    """The emitter kind must be the one of the recorded ``source``."""
    rec = _record(metadata)
    if not isinstance(rec, EmitterRecord):
        return []
    source = metadata.source if isinstance(metadata, BundleMetadata) else metadata.get("source")
    want = _KINDS.get(str(source))
    if rec.kind != want:
        return [
            f"metadata source {source!r} but emitter kind {rec.kind!r} "
            f"(expected {want!r}): the metadata was edited"
        ]
    return []


def _recorded_prefix(emitter: EmitterRecord) -> str:
    if emitter.prefix is None:
        raise BundleError(
            "the recorded emitter options name no validity-output prefix: the graph cannot be "
            "emitted again"
        )
    return emitter.prefix


def _emitted(metadata: Mapping[str, Any]) -> tuple[BundleMetadata, EmitterRecord]:
    """The typed metadata (a draft during export) and its emitter record."""
    info = BundleMetadata.parse(metadata, draft=True)
    if info.emitter is None:
        raise BundleError("metadata has no emitter record: the graph cannot be emitted again")
    return info, info.emitter


# ----------------------------------------------------------------- compiled bundles


def has_usable_fru(metadata: Mapping[str, Any]) -> bool:
    """Whether a compiled bundle carries its exact expression(s): ``fru`` (one output)
    or ``expressions`` with an ``fru`` object each (several)."""
    from zpml_runtime.bundle.multi import is_multi

    if is_multi(metadata):
        exprs = metadata.get("expressions")
        return (
            isinstance(exprs, list)
            and bool(exprs)
            and all(isinstance(e, dict) and isinstance(e.get("fru"), dict) for e in exprs)
        )
    return isinstance(metadata.get("fru"), dict)


def compiled_views(
    metadata: Mapping[str, Any],
) -> tuple[list[tuple[Mapping[str, Any], dict[str, str] | None]], list[Any], list[str]]:
    """Per output: its single-expression metadata view (and output name map for several
    outputs), the re-flattened FRU, and the problems (recorded terms that the recorded
    expression does not give)."""
    from zpml_runtime.bundle.multi import expression_views, is_multi
    from zpml_runtime.bundle.reflatten import reflatten

    if is_multi(metadata):
        views: list[tuple[Mapping[str, Any], dict[str, str] | None]] = list(
            expression_views(metadata)
        )
    else:
        views = [(metadata, None)]
    frus, problems = [], []
    for view, _ in views:
        fru, found = reflatten(view)
        if "column" in view:
            found = [f"output {view['column']} ({view.get('output_name')}): {p}" for p in found]
        problems += found
        frus.append(fru)
    return views, frus, problems


def emit_compiled(metadata: Mapping[str, Any], frus: list[Any]) -> onnx.ModelProto:
    """The graph the installed compiler emits for the recorded expression(s) and options.

    ``frus`` are the re-flattened FRUs (one per output). Raises :class:`BundleError`
    when the recorded options are not ones the compiler accepts.
    """
    return emit_compiled_artifact(metadata, frus).model


def emit_compiled_artifact(metadata: Mapping[str, Any], frus: list[Any]) -> OnnxArtifact:
    """:func:`emit_compiled` with what the ONNX back end decided (thresholds, gauges,
    initializer names): the model is ``.model``, its outputs stacked for several outputs."""
    from zpml_runtime.bundle.multi import stack_expression_outputs
    from zpml_symbolic.emit.backends.onnx import emit_onnx_artifact, expression_prefixes
    from zpml_symbolic.errors import ZeroProofError

    info, emitter = _emitted(metadata)
    multi = info.is_multi
    params = dict(info.parameters)
    if multi:
        taus: Any = [list(e["validity_taus"]) for e in info.expressions or ()]
    else:
        taus = list(info.validity_taus)
    prefix = _recorded_prefix(emitter)
    try:
        art = emit_onnx_artifact(
            frus if multi else frus[0],
            config=info.inference_config.config(),
            validity_taus=taus,
            dtype=info.dtype,
            opset=emitter.opset,
            parameters=list(params),
            init=params or None,
            variables=list(info.input.variables),
            prefix=prefix,
            tile_rows=emitter.tile_rows,
        )
    except (ZeroProofError, ValueError, TypeError, KeyError) as e:
        raise BundleError(
            f"the recorded expression and emitter options cannot be compiled: {str(e).splitlines()[0][:300]}"
        ) from e
    if multi:
        counts = [len(t) for t in taus]
        stack_expression_outputs(art.model, expression_prefixes(len(frus)), counts, prefix)
    return art


def compiled_problems(
    metadata: dict[str, Any], model: onnx.ModelProto, frus: list[Any]
) -> list[str]:
    """Problems when ``model`` is not the graph :func:`emit_compiled` gives."""
    try:
        want = emit_compiled(metadata, frus)
    except BundleError as e:
        return [str(e)]
    diff = first_difference(model, want)
    if diff is None:
        return []
    return [
        f"model.onnx is not the graph zpml {compiler_version()} compiles from the recorded "
        "expression, variable order, parameters, thresholds and emitter options (the graph or "
        f"the metadata was edited); first difference: {diff}"
    ]


# ----------------------------------------------------------------- traced bundles


def emit_decoder(metadata: dict[str, Any]) -> onnx.ModelProto:
    """The strict decoder a traced bundle must end with, from its metadata."""
    from zpml_runtime.bundle.decoder import decoder_model
    from zpml_symbolic.errors import ZeroProofError

    info, emitter = _emitted(metadata)
    mo = info.multi_output
    shapes: list[Any] = [f.get("shape") for f in mo.factors] if mo is not None else []
    if emitter.opset is None:
        raise BundleError(
            "the recorded emitter options name no opset: the strict decoder cannot be rebuilt"
        )
    try:
        return decoder_model(
            len(info.validity_taus),
            config=info.inference_config.config(),
            validity_taus=list(info.validity_taus),
            dtype=info.dtype,
            opset=emitter.opset,
            prefix=_recorded_prefix(emitter),
            n_out=info.num_outputs,
            factor_shapes=shapes,
        )
    except (ZeroProofError, ValueError, TypeError, KeyError, IndexError) as e:
        raise BundleError(
            f"the recorded thresholds and emitter options do not give a strict decoder: {str(e).splitlines()[0][:300]}"
        ) from e


def _subgraphs(node: onnx.NodeProto) -> Iterable[onnx.GraphProto]:
    for attr in node.attribute:
        if attr.type == onnx.AttributeProto.GRAPH:
            yield attr.g
        elif attr.type == onnx.AttributeProto.GRAPHS:
            yield from attr.graphs


def _names(nodes: Iterable[onnx.NodeProto]) -> tuple[set[str], set[str]]:
    """(names written, names read) by ``nodes`` and their subgraphs, recursively."""
    written: set[str] = set()
    read: set[str] = set()
    stack = list(nodes)
    while stack:
        node = stack.pop()
        written.update(n for n in node.output if n)
        read.update(n for n in node.input if n)
        for g in _subgraphs(node):
            written.update(i.name for i in g.input)
            written.update(i.name for i in g.initializer)
            read.update(o.name for o in g.output)
            stack.extend(g.node)
    return written, read


def traced_problems(metadata: dict[str, Any], model: onnx.ModelProto) -> list[str]:
    """Problems when the stored graph does not end with the rebuilt strict decoder, or
    when anything but that decoder writes the outputs or the decoder's tensors."""
    try:
        dec = emit_decoder(metadata)
    except BundleError as e:
        return [str(e)]
    g, d = model.graph, dec.graph
    n = len(d.node)
    head = list(g.node[: max(len(g.node) - n, 0)])
    tail = list(g.node[len(head) :])
    what = "the strict decoder at the end of model.onnx"
    if len(tail) < n:
        return [f"model.onnx has {len(g.node)} nodes, fewer than the {n} of the strict decoder"]
    for i, (got, want) in enumerate(zip(tail, d.node, strict=True)):
        label = f"node #{len(head) + i} ({got.op_type}, outputs {list(got.output)}) of {what}"
        diff = node_difference(got, want, label)
        if diff:
            return [
                "model.onnx does not end with the strict decoder zpml "
                f"{compiler_version()} rebuilds from the recorded thresholds (the decode was "
                f"edited, or nodes were appended after it); first difference: {diff}"
            ]
    problems: list[str] = []
    inits: dict[str, onnx.TensorProto] = {}
    for t in g.initializer:
        if t.name in inits:
            problems.append(f"model.onnx holds two initializers named {t.name!r}")
        inits[t.name] = t
    for t in d.initializer:
        got_t = inits.get(t.name)
        if got_t is None or got_t != t:
            problems.append(
                f"initializer {t.name!r} of the strict decoder is "
                f"{'missing' if got_t is None else 'not the one zpml emits (value or type edited)'}"
            )
    if list(g.output) != list(d.output):
        problems.append(
            f"the graph outputs {[o.name for o in g.output]} (with their types) are not the strict "
            f"decoder's outputs {[o.name for o in d.output]}"
        )
    dec_written = {o for node in d.node for o in node.output} | {t.name for t in d.initializer}
    head_written, head_read = _names(head)
    head_written |= {t.name for t in g.initializer if t.name not in {x.name for x in d.initializer}}
    head_written |= {t.values.name for t in g.sparse_initializer}
    head_written |= {i.name for i in g.input}
    clash = sorted(head_written & dec_written)
    if clash:
        problems.append(
            f"the traced part of model.onnx writes {clash[:5]}, tensors of the strict decoder"
        )
    read_clash = sorted(head_read & dec_written)
    if read_clash:
        problems.append(
            f"the traced part of model.onnx reads {read_clash[:5]}, tensors of the strict decoder"
        )
    missing = [i.name for i in d.input if i.name not in head_written]
    if missing:
        problems.append(f"nothing before the strict decoder computes its inputs {missing}")
    annotated = sorted({v.name for v in g.value_info} & dec_written)
    if annotated:
        problems.append(f"model.onnx annotates tensors of the strict decoder {annotated[:5]}")
    if [(p.key, p.value) for p in model.metadata_props] != [
        (p.key, p.value) for p in dec.metadata_props
    ]:
        problems.append(
            "the metadata properties of model.onnx are not the strict decoder's (edited)"
        )
    got_ops = {(o.domain or "", o.version) for o in model.opset_import}
    want_ops = {(o.domain or "", o.version) for o in dec.opset_import}
    if not want_ops <= got_ops:
        problems.append(
            f"model.onnx imports opsets {sorted(got_ops)}, the decoder needs {sorted(want_ops)}"
        )
    return problems


def unknown_field_problems(model: onnx.ModelProto) -> list[str]:
    """Protobuf fields onnx does not define (readers skip them silently) are refused."""
    if has_unknown_fields(model):
        return [
            "model.onnx carries protobuf fields that ONNX does not define (hidden data); "
            "bundle graphs have none"
        ]
    return []


__all__ = [
    "COMPILED",
    "EMITTER_FORMAT",
    "TRACED",
    "compiled_problems",
    "compiled_views",
    "compiler_version",
    "emit_compiled",
    "emit_decoder",
    "emitter_fingerprint",
    "emitter_record",
    "has_usable_fru",
    "kind_problems",
    "traced_problems",
    "unknown_field_problems",
    "unverifiable_reason",
]
