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
(``zpml_core.arrays.effective_threshold``): ``|Q| < t`` in that
dtype is the exact real test ``|Q| < tau`` and includes exact zeros. They are
0-d initializers named ``zpml_t_infer``, ``zpml_t_train`` and
``zpml_t_factor_{i}``, always live in the graph (never folded into other
constants), and are also recorded in ``model.metadata_props``;
:func:`read_baked_thresholds` reads them back from the graph and
:func:`check_baked_thresholds` compares both records.

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
import math
import numbers
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import onnx
import sympy as sp
from onnx import helper, numpy_helper

from zpml_core.config import InferenceConfig, check_threshold
from zpml_core.errors import InvalidConfigError
from zpml_symbolic.emit.backends.torch_emit import RationalModule
from zpml_symbolic.emit.lowering.plan import (
    Plan,
    check_constants,
    coefficient_values,
    make_plan,
    scaled_config,
    split_expression_taus,
)

#: name of the single graph input, of shape ``[batch, n_vars]``
from zpml_symbolic.emit.onnx_graph import (  # noqa: F401 - public constants re-exported
    _DTYPES,
    BATCH_DIM,
    DEFAULT_OPSET,
    INPUT_NAME,
    METADATA_PREFIX,
    MIN_OPSET,
    ONNX_OPS,
    OUTPUT_NAMES,
    PRODUCER_NAME,
    T_FACTOR,
    T_INFER,
    T_TRAIN,
    TILE_DIM,
    TILE_INPUT,
    TILE_SUFFIX,
    _Graph,
    _lower_program,
    _strict,
    _strict_outputs,
    _threshold_initializers,
    _tile,
)
from zpml_symbolic.errors import EmitError, InvalidArgumentError
from zpml_symbolic.flatten.coerce import as_frus
from zpml_symbolic.flatten.fru import FlattenedFRU
from zpml_symbolic.flatten.schema import check_prefix

# --------------------------------------------------------------------------- arguments


def _check_dtype(dtype: object) -> str:
    if not isinstance(dtype, str) or dtype not in _DTYPES:
        raise InvalidArgumentError(
            f"dtype must be 'float32' or 'float64' (a string), got {dtype!r}"
        )
    return dtype


def _check_compute_dtype(compute_dtype: object, dtype: str) -> str:
    """The dtype the graph computes in: ``dtype``, or the wider ``compute_dtype``."""
    if compute_dtype is None:
        return dtype
    if not isinstance(compute_dtype, str) or compute_dtype not in _DTYPES:
        raise InvalidArgumentError(
            f"compute_dtype must be None, 'float32' or 'float64' (a string), got "
            f"{compute_dtype!r}; e.g. compute_dtype='float64' for SI-sized inputs in float32"
        )
    return compute_dtype if np.dtype(compute_dtype).itemsize > np.dtype(dtype).itemsize else dtype


def _check_opset(opset: object) -> int:
    if opset is None:
        return DEFAULT_OPSET
    highest = onnx.defs.onnx_opset_version()
    if isinstance(opset, bool) or not isinstance(opset, int) or not MIN_OPSET <= opset <= highest:
        raise InvalidArgumentError(
            f"opset must be an integer between {MIN_OPSET} and {highest} (this onnx release), "
            f"got {opset!r}; the default is {DEFAULT_OPSET}"
        )
    return opset


#: default rows per tile of the Scan in :func:`to_onnx` (256 KiB per float32 value)
DEFAULT_TILE_ROWS = 65536


def _check_tile_rows(tile_rows: object) -> int | None:
    if tile_rows is None:
        return None
    if isinstance(tile_rows, bool) or not isinstance(tile_rows, int) or not 1 <= tile_rows < 2**62:
        raise InvalidArgumentError(
            f"tile_rows must be a positive int (below 2**62) or None (no tiling), got {tile_rows!r}"
        )
    return tile_rows


#: the single output of ``to_onnx(..., outputs="quotient")``
QUOTIENT_NAME = "quotient"
OUTPUTS = ("strict", "quotient")


def _check_outputs(outputs: object, config: object, validity_taus: object) -> bool:
    """True for the strict outputs; the quotient-only graph takes no thresholds."""
    if not isinstance(outputs, str) or outputs not in OUTPUTS:
        raise InvalidArgumentError(f"outputs must be one of {OUTPUTS}, got {outputs!r}")
    if outputs == "quotient" and (config is not None or not _is_zero(validity_taus)):
        raise InvalidArgumentError(
            "outputs='quotient' computes P/Q without masks; config= and validity_taus= do "
            "not apply (leave them at their defaults)"
        )
    return outputs == "strict"


def _is_zero(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and value == 0


def _check_config(config: object) -> InferenceConfig:
    if config is None:
        return InferenceConfig(tau_infer=0.0)
    if not isinstance(config, InferenceConfig):
        raise InvalidArgumentError(
            f"config must be a zpml_core.InferenceConfig (also zpml_runtime.inference.InferenceConfig) or None, got {type(config).__name__}"
        )
    return config


def _check_tau(value: object, field: str) -> float:
    """The runtime's threshold check, reported as a compiler argument error."""
    try:
        return check_threshold(value, field)
    except InvalidConfigError as e:
        raise InvalidArgumentError(str(e)) from None


def _expression_taus(validity_taus: object, counts: Sequence[int]) -> list[tuple[float, ...]]:
    """Per-expression factor thresholds: one number for all, or one entry per expression."""
    if len(counts) == 1:
        return [_factor_taus(validity_taus, counts[0])]
    split = split_expression_taus(validity_taus, counts)
    return [_factor_taus(t, k) for t, k in zip(split, counts, strict=True)]


def _factor_taus(validity_taus: object, k: int) -> tuple[float, ...]:
    if isinstance(validity_taus, Sequence) and not isinstance(validity_taus, str | bytes):
        if len(validity_taus) != k:
            raise InvalidArgumentError(
                f"validity_taus has {len(validity_taus)} entries but the expression has {k} retained "
                f"validity factors; pass one number for all or exactly {k}"
            )
        return tuple(_check_tau(t, f"validity_taus[{i}]") for i, t in enumerate(validity_taus))
    return (_check_tau(validity_taus, "validity_taus"),) * k


def _resolve(
    obj: object,
    parameters: Sequence[sp.Symbol | str],
    init: Mapping[Any, float] | None,
    variables: Sequence[str | sp.Symbol] | None,
) -> tuple[Plan, dict[str, float]]:
    if isinstance(obj, RationalModule):
        if tuple(parameters) or init is not None or variables is not None:
            raise InvalidArgumentError(
                "to_onnx(module) takes the module's plan and current coefficient values; "
                "do not pass parameters=, init= or variables="
            )
        plan, coefficients = obj.plan, obj.coefficient_values()
    else:
        frus, _ = as_frus(obj, parameters=parameters)  # type: ignore[arg-type]
        plan = make_plan(frus, variables=variables)
        coefficients = coefficient_values(plan, init)
    return plan, coefficients


def expression_prefixes(n: int) -> tuple[str, ...]:
    """Output-name prefix of each expression: ``""`` for one, ``"e0_"``, ``"e1_"``, ... for several."""
    return ("",) if n == 1 else tuple(f"e{k}_" for k in range(n))


def _parameter_initializers(parameters: Sequence[str], reserved: set[str]) -> dict[str, str]:
    """Initializer name of each parameter: the name itself when it is a plain ASCII
    identifier the graph does not use, else ``param_{i}`` (unique)."""
    taken = set(reserved) | {p for p in parameters if _plain(p, reserved)}
    out: dict[str, str] = {}
    for i, p in enumerate(parameters):
        if _plain(p, reserved):
            out[p] = p
            continue
        name, n = f"param_{i}", 0
        while name in taken:
            n += 1
            name = f"param_{i}_{n}"
        taken.add(name)
        out[p] = name
    return out


def _plain(name: str, reserved: set[str]) -> bool:
    return (
        name.isidentifier()
        and name.isascii()
        and not name.startswith(("zpml_", "param_", "_"))
        and name not in reserved
    )


# --------------------------------------------------------------------------- entry point


def strict_decoder_model(
    num_factors: int,
    *,
    config: InferenceConfig | None = None,
    validity_taus: float | Sequence[float] = 0.0,
    dtype: str = "float32",
    opset: int | None = None,
    prefix: str = "structural_validity_factor",
) -> onnx.ModelProto:
    """A graph decoding inputs ``P``, ``Q`` (``[batch]``) and ``V`` (``[batch, k]``) strictly.

    Same outputs, masks and baked thresholds as :func:`to_onnx`; used to
    append strict decoding to a traced model (``onnx.compose.merge_models``).
    """
    dtype = _check_dtype(dtype)
    opset = _check_opset(opset)
    cfg = _check_config(config)
    check_prefix(prefix)
    if isinstance(num_factors, bool) or not isinstance(num_factors, int) or num_factors < 0:
        raise InvalidArgumentError(f"num_factors must be an int >= 0, got {num_factors!r}")
    taus = _factor_taus(validity_taus, num_factors)
    factor_names = [
        (f"{prefix}_{i}_value", f"{prefix}_{i}_fault_mask", f"{prefix}_{i}_semantic_bottom_mask")
        for i in range(num_factors)
    ]
    reserved = {"P", "Q", "V", *OUTPUT_NAMES, *(n for names in factor_names for n in names)}
    reserved |= {T_INFER, T_TRAIN, *(T_FACTOR.format(i) for i in range(num_factors))}
    g = _Graph(dtype, reserved)
    g.batch_ref = "Q"
    t_infer, t_train, t_factors = _threshold_initializers(g, cfg, taus, dtype)
    g.rank["P"] = g.rank["Q"] = 1
    factors = [
        g.node("Gather", ["V", g.const(i, "int64")], f"V{i}", axis=1) for i in range(num_factors)
    ]
    thresholds = [T_FACTOR.format(i) for i in range(num_factors)]
    _strict(g, "P", "Q", factors, factor_names, thresholds, t_train is not None)
    nodes, initializers = g.finish()
    elem = _DTYPES[dtype][0]
    inputs = [helper.make_tensor_value_info(n, elem, [BATCH_DIM]) for n in ("P", "Q")]
    if num_factors:
        inputs.append(helper.make_tensor_value_info("V", elem, [BATCH_DIM, num_factors]))
    outputs = _strict_outputs(elem, factor_names)
    graph = helper.make_graph(
        nodes, "zpml_strict_decoder", inputs, outputs, initializer=initializers
    )
    opsets = [helper.make_opsetid("", opset)]
    model = helper.make_model(
        graph,
        opset_imports=opsets,
        producer_name=PRODUCER_NAME,
        producer_version=_package_version(),
        ir_version=helper.find_min_ir_version_for(opsets),
    )
    metadata = {
        "dtype": dtype,
        "tau_infer": json.dumps(cfg.tau_infer),
        "tau_train": json.dumps(cfg.tau_train),
        "validity_taus": json.dumps(list(taus)),
        "effective_thresholds": json.dumps(_thresholds_json(t_infer, t_train, t_factors)),
        "inference_config": json.dumps(cfg.to_metadata()),
    }
    helper.set_model_props(model, {METADATA_PREFIX + key: value for key, value in metadata.items()})
    return model


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
    dtype = _check_dtype(dtype)
    opset = _check_opset(opset)
    cfg = _check_config(config)
    tile_rows = _check_tile_rows(tile_rows)
    if model_name is not None and (not isinstance(model_name, str) or not model_name):
        raise InvalidArgumentError(f"model_name must be a non-empty string, got {model_name!r}")
    strict = _check_outputs(outputs, config, validity_taus)
    wide = _check_compute_dtype(compute_dtype, dtype)
    narrow = None if wide == dtype else dtype
    plan, coefficients = _resolve(fru_or_exprs, parameters, init, variables)
    check_constants(plan, wide)
    n_expr = len(plan.frus)
    prefixes = expression_prefixes(n_expr)
    counts = [len(n.V) for n in plan.names]
    taus_k = _expression_taus(validity_taus, counts)
    schemas = [f.structural_validity_output_schema(prefix=prefix) for f in plan.frus]
    # per expression: core output names, per-factor output names, global factor threshold indices
    core_k = [[pre + n for n in OUTPUT_NAMES] for pre in prefixes]
    factor_k = [
        [[pre + n for n in out.output_names] for out in schema.outputs] if strict else []
        for pre, schema in zip(prefixes, schemas, strict=True)
    ]
    offsets = [sum(counts[:k]) for k in range(n_expr)]
    output_names: list[str] = []
    for k in range(n_expr):
        if strict:
            output_names += core_k[k] + [n for names_i in factor_k[k] for n in names_i]
        else:
            output_names.append(prefixes[k] + QUOTIENT_NAME)
    total = sum(counts)
    threshold_names = [T_INFER, T_TRAIN] + [T_FACTOR.format(i) for i in range(total)]
    reserved = {INPUT_NAME, *output_names, *threshold_names}
    tiled = tile_rows is not None
    suffix = TILE_SUFFIX if tiled else ""
    if tiled:  # the body computes ``{name}_tile`` from ``x_tile``; the graph scans it
        reserved |= {TILE_INPUT, *(n + suffix for n in output_names)}
    param_inits = _parameter_initializers(plan.parameters, reserved)
    g = _Graph(wide, reserved | set(param_inits.values()), TILE_INPUT if tiled else INPUT_NAME)
    g.opset = opset
    if narrow is not None:  # compute_dtype: every column is read from x cast to the wide dtype
        g.input = g.node("Cast", [g.input], f"{g.input}_{wide}", rank=2, to=_DTYPES[wide][0])
    for name in plan.parameters:
        g.initializer(param_inits[name], coefficients[name], doc="learnable coefficient")
    # thresholds in the emitted gauge (2**-e times the canonical one; e = 0 unless regauged)
    gauges = [plan.gauge(k) for k in range(n_expr)]
    cfg_q = [scaled_config(cfg, gauges[k].pq) for k in range(n_expr)]
    flat_taus = [
        math.ldexp(t, -e)
        for k in range(n_expr)
        for t, e in zip(taus_k[k], gauges[k].v, strict=True)
    ]
    if strict:
        if len({(c.tau_infer, c.tau_train) for c in cfg_q}) > 1:
            raise EmitError(
                "the expressions were regauged by different powers of two, so one baked "
                "tau_infer cannot serve them all; export them separately"
            )
        t_infer, t_train, t_factors = _threshold_initializers(g, cfg_q[0], flat_taus, wide)

    values = _lower_program(g, plan, param_inits)
    out = plan.program.outputs
    taps = plan.program.taps
    elem = _DTYPES[dtype][0]  # the input's and decoded's dtype
    wide_elem = _DTYPES[wide][0]  # P, Q, V and the factor value outputs
    inner_outputs: list[onnx.ValueInfoProto] = []
    outputs = []
    for k, names in enumerate(plan.names):
        P, Q = values[out[names.P]], values[out[names.Q]]
        if strict:
            core_inner = [n + suffix for n in core_k[k]]
            factor_inner = [[n + suffix for n in names_i] for names_i in factor_k[k]]
            _strict(
                g,
                P,
                Q,
                [values[out[v]] for v in names.V],
                factor_inner,
                [T_FACTOR.format(offsets[k] + i) for i in range(counts[k])],
                t_train is not None,
                core_inner,
                q_leaves=[values[taps[t]] for t in (plan.q_taps[k] if plan.q_taps else ())],
                narrow=narrow,
            )
            outputs += _strict_outputs(wide_elem, factor_k[k], core_k[k], decoded_elem=elem)
            inner_outputs += _strict_outputs(
                wide_elem, factor_inner, core_inner, TILE_DIM, decoded_elem=elem
            )
        else:
            name = prefixes[k] + QUOTIENT_NAME
            q = P if g.is_known(Q, 1.0) else g.node("Div", [P, Q], "P_over_Q")
            if narrow is not None:
                q = g.node("Cast", [q], "P_over_Q_narrow", to=elem)
            g.expose(q, name + suffix)
            outputs.append(helper.make_tensor_value_info(name, elem, [BATCH_DIM]))
            inner_outputs.append(helper.make_tensor_value_info(name + suffix, elem, [TILE_DIM]))
    nodes, initializers = g.finish()
    n_vars = len(plan.variables)
    x = helper.make_tensor_value_info(INPUT_NAME, elem, [BATCH_DIM, n_vars])
    if tiled:
        assert tile_rows is not None
        body = helper.make_graph(
            nodes,
            "zpml_rational_tile",
            [helper.make_tensor_value_info(TILE_INPUT, elem, [TILE_DIM, n_vars])],
            inner_outputs,
        )
        outer = _Graph(dtype, set(g.taken))
        inner = [o.name for o in inner_outputs]
        _tile(outer, body, n_vars, tile_rows, list(zip(inner, output_names, strict=True)))
        nodes, outer_initializers = outer.finish()
        initializers = [*initializers, *outer_initializers]
    graph = helper.make_graph(
        nodes,
        model_name or "zpml_rational",
        [x],
        outputs,
        initializer=initializers,
        doc_string=f"x columns: {', '.join(plan.variables) or '(none)'}",
    )
    opsets = [helper.make_opsetid("", opset)]
    version = _package_version()
    what = (
        "P/Q with bottom, gap, fault and semantic masks (docs/semantics.md section 3)"
        if strict
        else "the unguarded quotient P/Q (no masks)"
    )
    described = "; ".join(str(f.expression) for f in plan.frus)
    model = helper.make_model(
        graph,
        opset_imports=opsets,
        producer_name=PRODUCER_NAME,
        producer_version=version,
        ir_version=helper.find_min_ir_version_for(opsets),
        doc_string=f"{'Strict r' if strict else 'R'}ational model of {described}: {what}",
    )
    metadata: dict[str, str] = {"version": version, "dtype": dtype}
    if narrow is not None:
        metadata["compute_dtype"] = wide
    if n_expr == 1:
        fru = plan.frus[0]
        metadata |= {
            "expression": str(fru.expression),
            "numerator": str(fru.numerator),
            "denominator": str(fru.denominator),
        }
    metadata |= {
        "gauge": "canonical_denominator",
        "variables": json.dumps(list(plan.variables)),
        "parameters": json.dumps(list(plan.parameters)),
        "coefficients": json.dumps({n: _json_float(v) for n, v in coefficients.items()}),
    }
    if any(param_inits[n] != n for n in plan.parameters):
        metadata["parameter_initializers"] = json.dumps(param_inits)
    if any(gz.pq or any(gz.v) for gz in gauges):
        metadata["gauge_exponents"] = json.dumps([gz.to_metadata() for gz in gauges])
    if strict:
        metadata |= {
            "tau_infer": json.dumps(cfg.tau_infer),
            "tau_train": json.dumps(cfg.tau_train),
            "validity_taus": json.dumps(
                list(taus_k[0]) if n_expr == 1 else [list(t) for t in taus_k]
            ),
            "effective_thresholds": json.dumps(_thresholds_json(t_infer, t_train, t_factors)),
            "inference_config": json.dumps(cfg.to_metadata()),
        }
    metadata |= {
        "outputs": "strict" if strict else "quotient",
        "output_names": json.dumps(list(output_names)),
        "tile_rows": json.dumps(tile_rows),
    }
    if strict and n_expr == 1:
        metadata["schema"] = json.dumps(schemas[0].to_metadata(), default=_json_default)
    if n_expr > 1:
        metadata["expressions"] = json.dumps(
            [
                {
                    "expression": str(f.expression),
                    "numerator": str(f.numerator),
                    "denominator": str(f.denominator),
                    "output_prefix": prefixes[k],
                    "output_names": [n for n in output_names if n.startswith(prefixes[k])],
                    **({"schema": schemas[k].to_metadata()} if strict else {}),
                }
                for k, f in enumerate(plan.frus)
            ],
            default=_json_default,
        )
    helper.set_model_props(model, {METADATA_PREFIX + key: value for key, value in metadata.items()})
    return model


def _package_version() -> str:
    import zpml_symbolic  # late: this module is imported while the package initialises

    return str(getattr(zpml_symbolic, "__version__", "unknown"))


def _json_float(v: float | None) -> float | str | None:
    """JSON-safe float: non-finite values (e.g. a huge tau in float32) become ``"inf"``, ``"-inf"``, ``"nan"``."""
    if v is None or math.isfinite(v):
        return v
    return repr(v)


def _json_default(obj: object) -> int | str:
    """Integers of other libraries (e.g. python-flint ``fmpz`` exponents) as ints, else text."""
    if isinstance(obj, numbers.Integral) or hasattr(obj, "__index__"):
        return int(obj)  # type: ignore[call-overload]
    return str(obj)


def _thresholds_json(
    t_infer: float, t_train: float | None, t_factors: Sequence[float]
) -> dict[str, Any]:
    return {
        "t_infer": _json_float(t_infer),
        "t_train": _json_float(t_train),
        "t_factors": [_json_float(t) for t in t_factors],
    }


# --------------------------------------------------------------------------- readers


def read_metadata(model: onnx.ModelProto) -> dict[str, Any]:
    """The ``zpml.*`` metadata of ``model``, JSON values decoded (keys without the prefix)."""
    out: dict[str, Any] = {}
    for prop in model.metadata_props:
        if prop.key.startswith(METADATA_PREFIX):
            key = prop.key.removeprefix(METADATA_PREFIX)
            try:
                out[key] = json.loads(prop.value)
            except json.JSONDecodeError:
                out[key] = prop.value
    return out


def read_baked_thresholds(model: onnx.ModelProto) -> dict[str, Any]:
    """The thresholds the GRAPH compares against, read from its initializers (or
    Constant nodes) ``zpml_t_infer``, ``zpml_t_train``, ``zpml_t_factor_{i}``.

    Returns ``{"t_infer": float, "t_train": float | None, "t_factors": [float, ...]}``
    with infinities as ``"inf"``, the layout of the ``zpml.effective_thresholds``
    metadata, so ``read_baked_thresholds(m) == read_metadata(m)["effective_thresholds"]``
    checks that both records agree.
    """
    found: dict[str, float] = {}
    for tensor in model.graph.initializer:
        if tensor.name.startswith("zpml_t_"):
            found[tensor.name] = float(numpy_helper.to_array(tensor).reshape(()))
    for node in model.graph.node:
        if node.op_type == "Constant" and node.output and node.output[0].startswith("zpml_t_"):
            attr = next((a for a in node.attribute if a.name == "value"), None)
            if attr is not None:
                found[node.output[0]] = float(numpy_helper.to_array(attr.t).reshape(()))
    if T_INFER not in found:
        raise EmitError(
            f"the graph has no threshold constant {T_INFER!r}; is it a zpml_symbolic model?"
        )
    factors = []
    while T_FACTOR.format(len(factors)) in found:
        factors.append(found[T_FACTOR.format(len(factors))])
    return _thresholds_json(found[T_INFER], found.get(T_TRAIN), factors)


def check_baked_thresholds(model: onnx.ModelProto) -> None:
    """Raise :class:`EmitError` unless the graph's thresholds equal the metadata's."""
    baked = read_baked_thresholds(model)
    recorded = read_metadata(model).get("effective_thresholds")
    if baked != recorded:
        raise EmitError(
            f"thresholds baked into the graph {baked} differ from the metadata "
            f"zpml.effective_thresholds {recorded}; the model was edited after export"
        )


__all__ = [
    "DEFAULT_OPSET",
    "DEFAULT_TILE_ROWS",
    "MIN_OPSET",
    "ONNX_OPS",
    "OUTPUT_NAMES",
    "check_baked_thresholds",
    "strict_decoder_model",
    "read_baked_thresholds",
    "read_metadata",
    "to_onnx",
]
