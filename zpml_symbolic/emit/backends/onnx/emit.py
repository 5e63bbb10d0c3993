"""Program -> ONNX model, built directly with ``onnx.helper`` (no tracing).

The graph evaluates ``P``, ``Q`` and the retained validity factors ``V_i`` of
one FlattenedFRU with the same :class:`~zpml_symbolic.emit.lowering.program.Program` as
the numpy and torch back-ends (one ONNX node per operation; ``axpy`` is
``Mul`` then ``Add``, two roundings, bit for bit like the numpy reference,
whereas torch's fused ``torch.add(alpha=)`` rounds once). The input ``x`` is
2-D, ``[batch, n_vars]``, and every output is ``[batch]``. It then decodes
them strictly as in docs/semantics.md section 3, with the same mathematics as the
runtime's numpy kernel (``zpml_core.kernels.numpy_core``):

* ``Q_safe = Q + Cast(|Q| == 0)`` (``Q``, or 1 where ``Q == 0``),
  ``quotient = P / Q_safe``;
* a value ``v`` is non-finite iff ``v - v`` is NaN (IEEE), so the core fault
  is ``IsNaN((quotient - quotient) * Q)``: ``P`` or ``Q`` non-finite, or the
  quotient overflowed; a factor's fault is ``Not(|V_i| < inf)`` (NaN compares
  false), sharing ``|V_i|`` with its semantic test;
* semantic bottoms are ``|Q| < t_infer`` and ``|V_i| < t_i`` (NaN and Inf
  compare false, so only finite values qualify);
* ``bottom = fault | semantic``, ``gap = (|Q| < t_train) & ~bottom``,
  ``decoded = Where(bottom, NaN, quotient)``, ``bottom_provenance`` (int8) =
  ``fault + semantic + semantic`` (int8 ``Add`` of ``Cast`` masks; onnxruntime's
  ``Where`` takes several passes, so it is used for ``decoded`` only).

The input columns are one ``Squeeze`` (one variable) or one ``Split`` along
axis 1 plus ``Squeeze`` views, not a strided ``Gather`` per column.

By default the graph is a ``Scan`` over row tiles (``tile_rows=65536``): the
flat graph above is the ``Scan`` body, applied to ``x`` zero-padded to ``k``
equal tiles, and each output is flattened and sliced back to ``[batch]``.
Every operation is elementwise across rows, so any tile size gives the same
bytes; the tile's intermediates stay in cache, which is what makes the
~20-120 elementwise passes cheap at large batches. ``tile_rows=None`` builds
the flat graph (faster for small batches: the ``Scan`` costs ~50 us a call).
``outputs="quotient"`` builds the value-only graph ``P / Q`` (no masks).

The thresholds ``t_*`` are the *effective* thresholds of the evaluation dtype
(:meth:`zpml_core.resolution.ResolvedThresholds.effective`): ``|Q| < t`` in that
dtype is the exact real test ``|Q| < tau`` and includes exact zeros. They are
0-d initializers named ``zpml_t_infer``, ``zpml_t_train`` and
``zpml_t_factor_{i}``, always live in the graph (never folded into other
constants), and are also recorded in ``model.metadata_props``;
:func:`~zpml_symbolic.emit.backends.onnx.metadata.read_baked_thresholds` reads them
back from the graph and ``check_baked_thresholds`` compares both records.

Parameter- and constant-only instructions are computed on 0-d tensors and
broadcast; outputs that would be 0-d are expanded to ``[batch]``. Learnable
coefficients are 0-d initializers named after the parameters. Exact constants
are initializers rounded as the other back-ends do (``float(c)``, then to the
dtype); their ``doc_string`` records the exact rational. Only threshold-free
facts are folded at build time (a constant ``Q`` needs no zero test, dividing
by a constant 1 is the identity, the finiteness of a constant is known).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

import onnx
import sympy as sp
from onnx import helper

from zpml_core.config import InferenceConfig
from zpml_core.resolution import EffectiveThresholds, ResolvedThresholds
from zpml_symbolic.emit.backends.onnx.arguments import (
    DEFAULT_TILE_ROWS,
    QUOTIENT_NAME,
    check_compute_dtype,
    check_config,
    check_dtype,
    check_opset,
    check_outputs,
    check_tile_rows,
    expression_prefixes,
    expression_taus,
    parameter_initializers,
    resolve_source,
)
from zpml_symbolic.emit.backends.onnx.artifact import OnnxArtifact
from zpml_symbolic.emit.backends.onnx.decode import bake_thresholds, strict_decode, strict_outputs
from zpml_symbolic.emit.backends.onnx.graph import (
    BATCH_DIM,
    DTYPES,
    INPUT_NAME,
    METADATA_PREFIX,
    OUTPUT_NAMES,
    PRODUCER_NAME,
    T_FACTOR,
    T_INFER,
    T_TRAIN,
    Graph,
)
from zpml_symbolic.emit.backends.onnx.lowering import lower_program
from zpml_symbolic.emit.backends.onnx.metadata import model_metadata, package_version
from zpml_symbolic.emit.backends.onnx.tiling import TILE_DIM, TILE_INPUT, TILE_SUFFIX, tile
from zpml_symbolic.emit.lowering.gauge import emitted_thresholds, gauged_thresholds
from zpml_symbolic.emit.lowering.plan import Plan, check_constants
from zpml_symbolic.errors import EmitError, InvalidArgumentError
from zpml_symbolic.flatten.fru import FlattenedFRU
from zpml_symbolic.flatten.schema import StructuralValidityOutputSchema

if TYPE_CHECKING:  # pragma: no cover - annotations only (importing it loads torch)
    from zpml_symbolic.emit.backends.torch_emit import RationalModule

__all__ = ["emit_onnx_artifact", "to_onnx"]


@dataclass(frozen=True)
class _Layout:
    """Output names of a model: per expression its core and per-factor outputs."""

    prefixes: tuple[str, ...]
    schemas: list[StructuralValidityOutputSchema]
    core: list[list[str]]  # per expression: the strict outputs
    factors: list[list[list[str]]]  # per expression, per factor: value, fault, semantic
    names: list[str]  # every graph output, in order


def _layout(plan: Plan, prefix: str, strict: bool) -> _Layout:
    prefixes = expression_prefixes(len(plan.frus))
    schemas = [f.structural_validity_output_schema(prefix=prefix) for f in plan.frus]
    core = [[pre + n for n in OUTPUT_NAMES] for pre in prefixes]
    factors = [
        [[pre + n for n in out.output_names] for out in schema.outputs] if strict else []
        for pre, schema in zip(prefixes, schemas, strict=True)
    ]
    names: list[str] = []
    for k in range(len(plan.frus)):
        if strict:
            names += core[k] + [n for names_i in factors[k] for n in names_i]
        else:
            names.append(prefixes[k] + QUOTIENT_NAME)
    return _Layout(prefixes, schemas, core, factors, names)


def _bake(
    g: Graph, cfg: InferenceConfig, taus_k: list[tuple[float, ...]], plan: Plan, dtype: str
) -> tuple[tuple[ResolvedThresholds, ...], EffectiveThresholds]:
    """Resolve every expression's thresholds, scale them to its emitted gauge and bake them
    (one ``tau_infer``/``tau_train`` for all expressions, the factors in order)."""
    resolved = tuple(
        gauged_thresholds(cfg, taus, len(taus), plan.gauge(k)) for k, taus in enumerate(taus_k)
    )
    emitted = [emitted_thresholds(r) for r in resolved]
    if len({(e.tau_infer, e.tau_train) for e in emitted}) > 1:
        raise EmitError(
            "the expressions were regauged by different powers of two, so one baked "
            "tau_infer cannot serve them all; export them separately"
        )
    flat = ResolvedThresholds(
        emitted[0].tau_infer,
        emitted[0].tau_train,
        tuple(t for e in emitted for t in e.factor_taus),
    )
    return resolved, bake_thresholds(g, flat, dtype)


def _decode(
    g: Graph,
    plan: Plan,
    layout: _Layout,
    param_inits: dict[str, str],
    *,
    strict: bool,
    has_train: bool,
    suffix: str,
    dtype: str,
    wide: str,
    narrow: str | None,
) -> tuple[list[onnx.ValueInfoProto], list[onnx.ValueInfoProto]]:
    """Lower the program into ``g`` and append each expression's outputs (strict decoding
    or the plain quotient); returns the graph's and the tile body's output infos."""
    counts = [len(n.V) for n in plan.names]
    offsets = [sum(counts[:k]) for k in range(len(counts))]
    values = lower_program(g, plan, param_inits)
    out = plan.program.outputs
    taps = plan.program.taps
    elem = DTYPES[dtype][0]  # the input's and decoded's dtype
    wide_elem = DTYPES[wide][0]  # P, Q, V and the factor value outputs
    inner_outputs: list[onnx.ValueInfoProto] = []
    outputs: list[onnx.ValueInfoProto] = []
    for k, names in enumerate(plan.names):
        P, Q = values[out[names.P]], values[out[names.Q]]
        if strict:
            core_inner = [n + suffix for n in layout.core[k]]
            factor_inner = [[n + suffix for n in names_i] for names_i in layout.factors[k]]
            strict_decode(
                g,
                P,
                Q,
                [values[out[v]] for v in names.V],
                factor_inner,
                [T_FACTOR.format(offsets[k] + i) for i in range(counts[k])],
                has_train,
                core_inner,
                q_leaves=[values[taps[t]] for t in (plan.q_taps[k] if plan.q_taps else ())],
                narrow=narrow,
            )
            outputs += strict_outputs(
                wide_elem, layout.factors[k], layout.core[k], decoded_elem=elem
            )
            inner_outputs += strict_outputs(
                wide_elem, factor_inner, core_inner, TILE_DIM, decoded_elem=elem
            )
        else:
            name = layout.prefixes[k] + QUOTIENT_NAME
            q = P if g.is_known(Q, 1.0) else g.node("Div", [P, Q], "P_over_Q")
            if narrow is not None:
                q = g.node("Cast", [q], "P_over_Q_narrow", to=elem)
            g.expose(q, name + suffix)
            outputs.append(helper.make_tensor_value_info(name, elem, [BATCH_DIM]))
            inner_outputs.append(helper.make_tensor_value_info(name + suffix, elem, [TILE_DIM]))
    return outputs, inner_outputs


def emit_onnx_artifact(
    fru_or_exprs: FlattenedFRU
    | sp.Expr
    | str
    | Sequence[FlattenedFRU | sp.Expr | str]
    | RationalModule,
    *,
    config: InferenceConfig | None = None,
    validity_taus: float | Sequence[float] = 0.0,
    dtype: str = "float32",
    opset: int | None = None,
    parameters: Sequence[sp.Symbol | str] = (),
    init: Mapping[Any, float] | None = None,
    variables: Sequence[str | sp.Symbol] | None = None,
    prefix: str = "structural_validity_factor",
    model_name: str | None = None,
    tile_rows: int | None = DEFAULT_TILE_ROWS,
    outputs: str = "strict",
    compute_dtype: str | None = None,
) -> OnnxArtifact:
    """Build the strict ONNX model of one rational expression (or several) and return it
    with the decisions behind it as an :class:`OnnxArtifact`.

    Same arguments, checks and model bytes as :func:`to_onnx` (which returns
    ``emit_onnx_artifact(...).model``); the artifact adds the resolved thresholds, the
    baked effective thresholds, the decoded metadata and the input/output names.
    """
    dtype = check_dtype(dtype)
    opset = check_opset(opset)
    cfg = check_config(config)
    tile_rows = check_tile_rows(tile_rows)
    if model_name is not None and (not isinstance(model_name, str) or not model_name):
        raise InvalidArgumentError(f"model_name must be a non-empty string, got {model_name!r}")
    strict = check_outputs(outputs, config, validity_taus)
    wide = check_compute_dtype(compute_dtype, dtype)
    narrow = None if wide == dtype else dtype
    plan, coefficients = resolve_source(fru_or_exprs, parameters, init, variables)
    check_constants(plan, wide)
    counts = [len(n.V) for n in plan.names]
    taus_k = expression_taus(validity_taus, counts)
    layout = _layout(plan, prefix, strict)
    threshold_names = [T_INFER, T_TRAIN] + [T_FACTOR.format(i) for i in range(sum(counts))]
    reserved = {INPUT_NAME, *layout.names, *threshold_names}
    suffix = TILE_SUFFIX if tile_rows is not None else ""
    if (
        tile_rows is not None
    ):  # the body computes ``{name}_tile`` from ``x_tile``; the graph scans it
        reserved |= {TILE_INPUT, *(n + suffix for n in layout.names)}
    param_inits = parameter_initializers(plan.parameters, reserved)
    g = Graph(wide, reserved | set(param_inits.values()), TILE_INPUT if suffix else INPUT_NAME)
    g.opset = opset
    if narrow is not None:  # compute_dtype: every column is read from x cast to the wide dtype
        g.input = g.node("Cast", [g.input], f"{g.input}_{wide}", rank=2, to=DTYPES[wide][0])
    for name in plan.parameters:
        g.initializer(param_inits[name], coefficients[name], doc="learnable coefficient")
    # thresholds in the emitted gauge (2**-e times the canonical one; e = 0 unless regauged)
    gauges = tuple(plan.gauge(k) for k in range(len(plan.frus)))
    resolved, eff = _bake(g, cfg, taus_k, plan, wide) if strict else ((), None)
    graph_outputs, inner_outputs = _decode(
        g,
        plan,
        layout,
        param_inits,
        strict=strict,
        has_train=eff is not None and eff.t_train is not None,
        suffix=suffix,
        dtype=dtype,
        wide=wide,
        narrow=narrow,
    )
    graph = _graph(g, plan, layout, graph_outputs, inner_outputs, dtype, tile_rows, model_name)
    version = package_version()
    model = _model(graph, plan, opset, version, strict)
    metadata = model_metadata(
        plan,
        layout.prefixes,
        layout.schemas,
        layout.names,
        version=version,
        dtype=dtype,
        narrow=narrow,
        wide=wide,
        cfg=cfg,
        taus_k=taus_k,
        effective=eff,
        coefficients=coefficients,
        param_inits=param_inits,
        gauges=gauges,
        tile_rows=tile_rows,
    )
    helper.set_model_props(model, {METADATA_PREFIX + key: value for key, value in metadata.items()})
    return OnnxArtifact(
        model=model,
        thresholds=resolved,
        effective=eff,
        metadata=MappingProxyType({key: _decoded(value) for key, value in metadata.items()}),
        gauges=gauges,
        input_name=INPUT_NAME,
        output_names=tuple(layout.names),
        variables=tuple(plan.variables),
        parameters=tuple(plan.parameters),
        parameter_initializers=MappingProxyType(dict(param_inits)),
        coefficients=MappingProxyType(dict(coefficients)),
        dtype=dtype,
        compute_dtype=wide,
        tile_rows=tile_rows,
        strict=strict,
    )


def _decoded(value: str) -> Any:
    """A metadata value as ``read_metadata`` gives it (JSON decoded, else the text)."""
    try:
        return json.loads(value)
    except json.JSONDecodeError:
        return value


def _graph(
    g: Graph,
    plan: Plan,
    layout: _Layout,
    outputs: list[onnx.ValueInfoProto],
    inner_outputs: list[onnx.ValueInfoProto],
    dtype: str,
    tile_rows: int | None,
    model_name: str | None,
) -> onnx.GraphProto:
    """The model's graph: ``g`` itself, or a ``Scan`` over row tiles with ``g`` as body."""
    nodes, initializers = g.finish()
    n_vars = len(plan.variables)
    elem = DTYPES[dtype][0]
    x = helper.make_tensor_value_info(INPUT_NAME, elem, [BATCH_DIM, n_vars])
    if tile_rows is not None:
        body = helper.make_graph(
            nodes,
            "zpml_rational_tile",
            [helper.make_tensor_value_info(TILE_INPUT, elem, [TILE_DIM, n_vars])],
            inner_outputs,
        )
        outer = Graph(dtype, set(g.taken))
        inner = [o.name for o in inner_outputs]
        tile(outer, body, n_vars, tile_rows, list(zip(inner, layout.names, strict=True)))
        nodes, outer_initializers = outer.finish()
        initializers = [*initializers, *outer_initializers]
    return helper.make_graph(
        nodes,
        model_name or "zpml_rational",
        [x],
        outputs,
        initializer=initializers,
        doc_string=f"x columns: {', '.join(plan.variables) or '(none)'}",
    )


def _model(
    graph: onnx.GraphProto, plan: Plan, opset: int, version: str, strict: bool
) -> onnx.ModelProto:
    opsets = [helper.make_opsetid("", opset)]
    what = (
        "P/Q with bottom, gap, fault and semantic masks (docs/semantics.md section 3)"
        if strict
        else "the unguarded quotient P/Q (no masks)"
    )
    described = "; ".join(str(f.expression) for f in plan.frus)
    return helper.make_model(
        graph,
        opset_imports=opsets,
        producer_name=PRODUCER_NAME,
        producer_version=version,
        ir_version=helper.find_min_ir_version_for(opsets),
        doc_string=f"{'Strict r' if strict else 'R'}ational model of {described}: {what}",
    )


def to_onnx(
    fru_or_exprs: FlattenedFRU
    | sp.Expr
    | str
    | Sequence[FlattenedFRU | sp.Expr | str]
    | RationalModule,
    *,
    config: InferenceConfig | None = None,
    validity_taus: float | Sequence[float] = 0.0,
    dtype: str = "float32",
    opset: int | None = None,
    parameters: Sequence[sp.Symbol | str] = (),
    init: Mapping[Any, float] | None = None,
    variables: Sequence[str | sp.Symbol] | None = None,
    prefix: str = "structural_validity_factor",
    model_name: str | None = None,
    tile_rows: int | None = DEFAULT_TILE_ROWS,
    outputs: str = "strict",
    compute_dtype: str | None = None,
) -> onnx.ModelProto:
    """Build the strict ONNX model of one rational expression.

    Args:
        fru_or_exprs: a FlattenedFRU, sympy expression or text (or a one-element
            sequence of them), or a :class:`RationalModule` from ``to_torch`` (its plan
            and current coefficient values are used).
        config: thresholds (``tau_infer``, optional ``tau_train``); ``None`` means
            ``InferenceConfig(tau_infer=0.0)`` (exact zeros only).
        validity_taus: per-factor thresholds ``tau_i``: one number or one per factor.
        dtype: ``"float32"`` or ``"float64"``: input, computation and value outputs.
        opset: default-domain opset (default 21; at least 15).
        parameters: learnable coefficients (become initializers).
        init: the coefficients' values.
        variables: input column order (default: the FRU's variables).
        prefix: per-factor output name prefix (``{prefix}_{i}_value``, ...).
        model_name: the graph's name (default ``"zpml_rational"``).
        tile_rows: evaluate the rows in tiles of at most this many rows (a ``Scan``
            over row tiles, so every intermediate of a tile stays in cache; default
            65536), or ``None`` for one flat graph over the whole batch. Same outputs
            bit for bit either way.
        outputs: ``"strict"`` (default): the strict result below. ``"quotient"``: one
            output ``quotient`` = ``P / Q`` in IEEE arithmetic, unguarded (no masks, no
            thresholds; ``config`` and ``validity_taus`` must stay at their defaults),
            the value a hand-written formula returns.
        compute_dtype: ``None`` (default: compute in ``dtype``) or ``"float64"``: the
            graph casts ``x`` to this wider dtype, evaluates ``P, Q, V`` and decides the
            masks in it (thresholds baked in it, converted exactly), and casts
            ``decoded`` (or ``quotient``) back to ``dtype``; a sample where that cast
            overflows is a fault. Factor value outputs stay in ``compute_dtype``.

    Returns:
        An ``onnx.ModelProto`` with input ``x`` (2-D, ``[batch, n_vars]``) and outputs
        ``decoded, bottom_mask, gap_mask, fault_mask, semantic_bottom_mask,
        bottom_provenance`` then the per-factor outputs, all of shape ``[batch]``
        (masks bool, provenance int8); with ``outputs="quotient"`` the single output
        ``quotient``. Same arguments give a byte-identical model.

    Raises:
        InvalidArgumentError: bad dtype, opset, config, thresholds, init, names,
            ``tile_rows`` or ``outputs`` (or thresholds with ``outputs="quotient"``).
        EmitError: a constant the dtype cannot represent (named in the message).
        zpml_core.errors.ThresholdUnderflowError: a positive threshold the dtype
            cannot represent.
    """
    return emit_onnx_artifact(
        fru_or_exprs,
        config=config,
        validity_taus=validity_taus,
        dtype=dtype,
        opset=opset,
        parameters=parameters,
        init=init,
        variables=variables,
        prefix=prefix,
        model_name=model_name,
        tile_rows=tile_rows,
        outputs=outputs,
        compute_dtype=compute_dtype,
    ).model
