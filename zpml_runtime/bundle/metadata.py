"""Typed view of a bundle's ``metadata.json``: frozen records parsed once.

:meth:`BundleMetadata.parse` turns the metadata (or a single-expression view of
a multi-output bundle, see :func:`~zpml_runtime.bundle.multi.expression_views`)
into frozen records: the input signature, outputs, smoke inputs, recorded taus,
baked effective thresholds, power-of-two gauge, emitter record, multi-output
layout, operating box. A field of the wrong type is a
:class:`BundleMetadataError` naming it. :meth:`BundleMetadata.load` first
checks the JSON schema of :mod:`.format` (every violation listed).

The dictionary stays the on-disk record (``raw``): it is what is hashed, signed
and reproduced, so nothing here ever writes metadata. Sections whose content
is checked elsewhere (the exact ``fru`` terms: :mod:`.exact`; the domain
report: :mod:`.domain`) are kept as read-only mappings.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from dataclasses import field as dc_field
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from zpml_runtime.bundle.format import METADATA_JSON_SCHEMA

from .errors import BundleMetadataError

if TYPE_CHECKING:
    from zpml_core.config import InferenceConfig

#: A threshold as recorded: a number, or the strings ``"inf"``/``"0"`` of the emitter.
Threshold = float | str


def _frozen(value: object) -> Mapping[str, Any]:
    return MappingProxyType(dict(value)) if isinstance(value, Mapping) else MappingProxyType({})


def _obj(meta: Mapping[str, Any], key: str, where: str = "") -> Mapping[str, Any]:
    value = meta.get(key)
    if not isinstance(value, Mapping):
        raise BundleMetadataError(where + key, f"must be an object, got {value!r:.80}")
    return value


def _str(meta: Mapping[str, Any], key: str, where: str = "") -> str:
    value = meta.get(key)
    if not isinstance(value, str):
        raise BundleMetadataError(where + key, f"must be a string, got {value!r:.80}")
    return value


def _int(value: object, field: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise BundleMetadataError(field, f"must be an integer, got {value!r:.80}")
    return value


def _number(value: object, field: str) -> float:
    if not isinstance(value, int | float) or isinstance(value, bool):
        raise BundleMetadataError(field, f"must be a number, got {value!r:.80}")
    return float(value)


def _list(meta: Mapping[str, Any], key: str, where: str = "") -> list[Any]:
    value = meta.get(key)
    if not isinstance(value, list):
        raise BundleMetadataError(where + key, f"must be a list, got {value!r:.80}")
    return value


def _threshold(value: object, field: str, *, optional: bool = False) -> Threshold | None:
    if value is None and optional:
        return None
    if isinstance(value, str) or (isinstance(value, int | float) and not isinstance(value, bool)):
        return value
    raise BundleMetadataError(field, f"must be a number or a string, got {value!r:.80}")


@dataclass(frozen=True, slots=True)
class TensorSpec:
    """One graph input or output as recorded: name, dtype and shape (``"batch"`` or sizes)."""

    name: str
    dtype: str
    shape: tuple[str | int, ...]
    #: any further keys of the record (none in a bundle this package writes)
    extra: Mapping[str, Any] = dc_field(default_factory=lambda: MappingProxyType({}))

    @staticmethod
    def parse(raw: object, field: str) -> TensorSpec:
        """A ``{"name", "dtype", "shape"}`` object."""
        if not isinstance(raw, Mapping):
            raise BundleMetadataError(field, f"must be an object, got {raw!r:.80}")
        return TensorSpec(
            _str(raw, "name", field + "."),
            _str(raw, "dtype", field + "."),
            tuple(_list(raw, "shape", field + ".")),
            _frozen({k: v for k, v in raw.items() if k not in ("name", "dtype", "shape")}),
        )

    def as_dict(self) -> dict[str, Any]:
        """The recorded form, keys sorted as written (what the graph's signature is compared with)."""
        out = {"name": self.name, "dtype": self.dtype, "shape": list(self.shape), **self.extra}
        return dict(sorted(out.items()))


@dataclass(frozen=True, slots=True)
class InputSpec:
    """``metadata["input"]``: the graph input ``x`` of shape ``[batch, n_vars]``."""

    name: str
    dtype: str
    shape: tuple[str | int, ...]
    variables: tuple[str, ...]

    @staticmethod
    def parse(raw: Mapping[str, Any]) -> InputSpec:
        """Read the ``input`` section."""
        sig = TensorSpec.parse(raw, "input")
        variables = _list(raw, "variables", "input.")
        if not all(isinstance(v, str) for v in variables):
            raise BundleMetadataError("input.variables", "must be a list of strings")
        return InputSpec(sig.name, sig.dtype, sig.shape, tuple(variables))


@dataclass(frozen=True, slots=True)
class SmokeSpec:
    """``metadata["smoke_inputs"]``: the stored smoke inputs' file, hash, size, shape, dtype."""

    file: str
    sha256: str
    size: int
    shape: tuple[int, ...]
    dtype: str

    @staticmethod
    def parse(raw: Mapping[str, Any]) -> SmokeSpec:
        """Read the ``smoke_inputs`` section."""
        w = "smoke_inputs."
        shape = _list(raw, "shape", w)
        return SmokeSpec(
            _str(raw, "file", w),
            _str(raw, "sha256", w),
            _int(raw.get("size"), w + "size"),
            tuple(_int(s, f"{w}shape[{i}]") for i, s in enumerate(shape)),
            _str(raw, "dtype", w),
        )


@dataclass(frozen=True, slots=True)
class RecordedConfig:
    """``metadata["inference_config"]``: the recorded taus (``raw`` holds every key)."""

    tau_infer: float
    tau_train: float | None
    raw: Mapping[str, Any]

    @staticmethod
    def parse(raw: Mapping[str, Any]) -> RecordedConfig:
        """Read the ``inference_config`` section (the config itself: :meth:`config`)."""
        t = raw.get("tau_train")
        return RecordedConfig(
            _number(raw.get("tau_infer"), "inference_config.tau_infer"),
            None if t is None else _number(t, "inference_config.tau_train"),
            _frozen(raw),
        )

    def config(self) -> InferenceConfig:
        """The :class:`~zpml_core.config.InferenceConfig` (raises for unknown keys or bad taus)."""
        from zpml_core.config import InferenceConfig

        return InferenceConfig.from_metadata(self.raw)


@dataclass(frozen=True, slots=True)
class EffectiveThresholds:
    """``metadata["effective_thresholds"]``: the thresholds baked into the graph."""

    dtype: str
    t_infer: Threshold
    t_train: Threshold | None
    t_factors: tuple[Threshold, ...]

    @staticmethod
    def parse(raw: Mapping[str, Any]) -> EffectiveThresholds:
        """Read the ``effective_thresholds`` section."""
        w = "effective_thresholds."
        t_infer = _threshold(raw.get("t_infer"), w + "t_infer")
        assert t_infer is not None
        return EffectiveThresholds(
            _str(raw, "dtype", w),
            t_infer,
            _threshold(raw.get("t_train"), w + "t_train", optional=True),
            tuple(
                _threshold(t, f"{w}t_factors[{i}]")  # type: ignore[misc]  # never None here
                for i, t in enumerate(_list(raw, "t_factors", w))
            ),
        )

    def as_dict(self) -> dict[str, Any]:
        """The recorded form (keys sorted as written)."""
        return {"dtype": self.dtype, **self.baked()}

    def baked(self) -> dict[str, Any]:
        """The form :func:`~zpml_symbolic.emit.backends.onnx.metadata.read_baked_thresholds` returns."""
        return {"t_infer": self.t_infer, "t_train": self.t_train, "t_factors": list(self.t_factors)}


@dataclass(frozen=True, slots=True)
class Gauge:
    """A power-of-two gauge: the graph holds ``P, Q`` times ``2**-pq`` and factor ``i``
    times ``2**-v[i]`` (all zero: the canonical gauge)."""

    pq: int = 0
    #: ``None`` when the record has no ``V`` (the caller knows how many factors there are)
    v: tuple[int, ...] | None = None

    @staticmethod
    def parse(raw: object, field: str) -> Gauge:
        """A ``{"PQ": int, "V": [int, ...]}`` object (a missing ``PQ`` is 0)."""
        if not isinstance(raw, Mapping):
            raise BundleMetadataError(field, f"must be an object, got {raw!r:.80}")
        try:
            pq = int(raw.get("PQ", 0))
            v = None if "V" not in raw else tuple(int(e) for e in raw["V"])
        except (TypeError, ValueError) as e:
            raise BundleMetadataError(field, f"exponents must be integers ({e})") from e
        return Gauge(pq, v)

    def factor_exponents(self, count: int) -> tuple[int, ...]:
        """``V`` (``count`` zeros when not recorded)."""
        return (0,) * count if self.v is None else self.v

    @staticmethod
    def of(meta: Mapping[str, Any]) -> Gauge | None:
        """The gauge of a single-expression bundle or view: its ``gauge`` (views), else the
        first ``gauge_exponents`` entry; ``None`` when neither is recorded (identity)."""
        if isinstance(meta.get("gauge"), dict):
            return Gauge.parse(meta["gauge"], "gauge")
        ge = meta.get("gauge_exponents")
        if isinstance(ge, list) and ge and isinstance(ge[0], dict):
            return Gauge.parse(ge[0], "gauge_exponents[0]")
        return None


@dataclass(frozen=True, slots=True)
class EmitterRecord:
    """``metadata["emitter"]``: who emitted the graph and with which options."""

    compiler: str
    version: str
    format: int
    kind: str
    options: Mapping[str, Any]
    fingerprint: str | None = None

    @staticmethod
    def parse(raw: Mapping[str, Any]) -> EmitterRecord:
        """Read the ``emitter`` section."""
        w = "emitter."
        fp = raw.get("fingerprint")
        return EmitterRecord(
            _str(raw, "compiler", w),
            _str(raw, "version", w),
            _int(raw.get("format"), w + "format"),
            _str(raw, "kind", w),
            _frozen(_obj(raw, "options", w)),
            fp if isinstance(fp, str) else None,
        )

    @property
    def prefix(self) -> str | None:
        """The validity-output name prefix the graph was emitted with."""
        p = self.options.get("prefix")
        return p if isinstance(p, str) else None

    @property
    def opset(self) -> int | None:
        """The ONNX opset the graph was emitted for."""
        o = self.options.get("opset")
        return o if isinstance(o, int) and not isinstance(o, bool) else None

    @property
    def tile_rows(self) -> int | None:
        """Rows per tile of the emitted ``Scan`` (``None``: untiled)."""
        t = self.options.get("tile_rows")
        return t if isinstance(t, int) and not isinstance(t, bool) else None


@dataclass(frozen=True, slots=True)
class MultiOutput:
    """``metadata["multi_output"]``: ``k`` outputs per sample, their names, factor layout."""

    k: int
    output_names: tuple[str, ...]
    factors: tuple[Mapping[str, Any], ...]

    @staticmethod
    def parse(raw: Mapping[str, Any]) -> MultiOutput:
        """Read the ``multi_output`` section (factor shapes: :func:`.multi.structure_problems`)."""
        w = "multi_output."
        names = _list(raw, "output_names", w)
        return MultiOutput(
            _int(raw.get("k"), w + "k"),
            tuple(str(n) for n in names),
            tuple(_frozen(f) for f in _list(raw, "factors", w)),
        )


@dataclass(frozen=True, slots=True)
class BundleMetadata:
    """Every field of ``metadata.json`` (or of one expression view), typed."""

    raw: Mapping[str, Any]
    bundle_id: str
    model_file: str
    model_sha256: str
    model_size: int
    source: str
    inference_config: RecordedConfig
    validity_taus: tuple[float, ...]
    effective_thresholds: EffectiveThresholds
    input: InputSpec
    outputs: tuple[TensorSpec, ...]
    output_order: tuple[str, ...]
    gauge_policy: str
    parameters: Mapping[str, float]
    smoke_inputs: SmokeSpec
    fru: Mapping[str, Any] | None = None
    output_schema: Mapping[str, Any] | None = None
    multi_output: MultiOutput | None = None
    expressions: tuple[Mapping[str, Any], ...] | None = None
    parameter_initializers: Mapping[str, str] | None = None
    input_box: Mapping[str, str] | None = None
    domain: Mapping[str, Any] | None = None
    emitter: EmitterRecord | None = None
    #: in an expression view: the output's column and name
    column: int | None = None
    output_name: str | None = None

    @staticmethod
    def parse(meta: Mapping[str, Any], *, draft: bool = False) -> BundleMetadata:
        """Typed records of schema-shaped metadata; :class:`BundleMetadataError` names a bad field.

        ``draft=True`` reads metadata that export is still assembling: the model's hash and
        size (known only once the graph is final) may be missing (then ``""`` and 0).
        """
        params = _obj(meta, "parameters")
        for k, v in params.items():
            _number(v, f"parameters.{k}")
        taus = _list(meta, "validity_taus")
        outputs = _list(meta, "outputs")
        order = _list(meta, "output_order")
        mo = meta.get("multi_output")
        exprs = meta.get("expressions")
        emitter = meta.get("emitter")
        schema = meta.get("structural_validity_output_schema")
        fru = meta.get("fru")
        inits = meta.get("parameter_initializers")
        box = meta.get("input_box")
        domain = meta.get("domain")
        column = meta.get("column")
        name = meta.get("output_name")
        return BundleMetadata(
            raw=MappingProxyType(dict(meta)),
            bundle_id=_str(meta, "bundle_id"),
            model_file=_str(meta, "model_file"),
            model_sha256="" if draft and "model_sha256" not in meta else _str(meta, "model_sha256"),
            model_size=0
            if draft and "model_size" not in meta
            else _int(meta.get("model_size"), "model_size"),
            source=_str(meta, "source"),
            inference_config=RecordedConfig.parse(_obj(meta, "inference_config")),
            validity_taus=tuple(_number(t, f"validity_taus[{i}]") for i, t in enumerate(taus)),
            effective_thresholds=EffectiveThresholds.parse(_obj(meta, "effective_thresholds")),
            input=InputSpec.parse(_obj(meta, "input")),
            outputs=tuple(TensorSpec.parse(o, f"outputs[{i}]") for i, o in enumerate(outputs)),
            output_order=tuple(str(o) for o in order),
            gauge_policy=_str(meta, "gauge_policy"),
            parameters=MappingProxyType({str(k): float(v) for k, v in params.items()}),
            smoke_inputs=SmokeSpec.parse(_obj(meta, "smoke_inputs")),
            fru=_frozen(fru) if isinstance(fru, Mapping) else None,
            output_schema=_frozen(schema) if isinstance(schema, Mapping) else None,
            multi_output=MultiOutput.parse(mo) if isinstance(mo, Mapping) else None,
            expressions=tuple(_frozen(e) for e in exprs) if isinstance(exprs, list) else None,
            parameter_initializers=_frozen(inits) if isinstance(inits, Mapping) else None,
            input_box=_frozen(box) if isinstance(box, Mapping) else None,
            domain=_frozen(domain) if isinstance(domain, Mapping) else None,
            emitter=EmitterRecord.parse(emitter) if isinstance(emitter, Mapping) else None,
            column=column if isinstance(column, int) and not isinstance(column, bool) else None,
            output_name=name if isinstance(name, str) else None,
        )

    @staticmethod
    def schema_problems(meta: object) -> list[str]:
        """Every JSON-schema violation of ``meta``, as ``metadata <path>: <message>`` lines."""
        import jsonschema

        return [
            f"metadata {'/'.join(str(p) for p in err.absolute_path) or '(top level)'}: "
            f"{err.message[:300]}"
            for err in sorted(
                jsonschema.Draft202012Validator(METADATA_JSON_SCHEMA).iter_errors(meta), key=str
            )
        ]

    @staticmethod
    def load(meta: Mapping[str, Any]) -> BundleMetadata:
        """Check ``meta`` against the JSON schema, then :meth:`parse` it.

        Raises :class:`BundleMetadataError` naming the first violating field.
        """
        problems = BundleMetadata.schema_problems(meta)
        if problems:
            field, _, message = problems[0].removeprefix("metadata ").partition(": ")
            raise BundleMetadataError(field, message)
        return BundleMetadata.parse(meta)

    def gauge(self) -> Gauge | None:
        """The power-of-two gauge of a single expression (``None``: canonical); read on
        demand, so a malformed record is reported where the thresholds are checked."""
        return Gauge.of(self.raw)

    @property
    def dtype(self) -> str:
        """The bundle's float dtype (``input.dtype``)."""
        return self.input.dtype

    @property
    def is_multi(self) -> bool:
        """True for a multi-output bundle."""
        return self.multi_output is not None

    @property
    def num_outputs(self) -> int:
        """``k``: outputs per sample (1 for a single-output bundle)."""
        return self.multi_output.k if self.multi_output is not None else 1

    @property
    def is_compiled(self) -> bool:
        """True for a compiled FRU (the exact expression is recorded)."""
        return self.source == "compiled_fru"

    @property
    def factor_prefix(self) -> str | None:
        """The prefix of the validity-factor outputs (the schema's, else the first expression's)."""
        schema = self.output_schema
        if schema is None and self.expressions:
            first = self.expressions[0].get("schema")
            schema = first if isinstance(first, Mapping) else None
        prefix = schema.get("prefix") if schema is not None else None
        return prefix if isinstance(prefix, str) else None

    @property
    def factor_outputs(self) -> tuple[str, ...]:
        """The per-factor output names (after the six strict outputs)."""
        return self.output_order[6:]


__all__ = [
    "BundleMetadata",
    "BundleMetadataError",
    "EffectiveThresholds",
    "EmitterRecord",
    "Gauge",
    "InputSpec",
    "MultiOutput",
    "RecordedConfig",
    "SmokeSpec",
    "TensorSpec",
    "Threshold",
]
