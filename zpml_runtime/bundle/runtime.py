"""Load a validated bundle into onnxruntime; compare it with a reference module."""

from __future__ import annotations

import os
import re
import warnings
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from zpml_runtime.bundle.errors import BundleError, BundleSmokeTestError, UnverifiedBundleWarning
from zpml_runtime.bundle.format import STRICT_OUTPUTS
from zpml_runtime.bundle.metadata import BundleMetadata
from zpml_runtime.bundle.validate import ValidatedBundle, make_session, open_validated

_FACTOR_OUTPUT = re.compile(
    r"^(?P<prefix>.+)_(?P<index>\d+)_(?P<what>value|fault_mask|semantic_bottom_mask)$"
)


@dataclass(frozen=True, slots=True)
class BundleResult:
    """Outputs of a bundle run, with the protocol of the torch ``StrictInferenceResult``.

    Unpacks, iterates and indexes as exactly three items, ``(decoded, bottom_mask,
    gap_mask)`` (``res[0]``, ``res[-1]``, ``res[:2]``, ``len(res) == 3``); every graph
    output is an attribute (``res.fault_mask``, ``res.semantic_bottom_mask``,
    ``res.bottom_provenance``, ``res.structural_validity_factor_0_value``), and the
    per-factor outputs are also grouped as ``factor_values``, ``factor_fault_masks`` and
    ``factor_semantic_masks`` (in factor order), as on the torch result. Arrays are numpy.
    """

    outputs: OrderedDict[str, np.ndarray]

    def __iter__(self) -> Iterator[np.ndarray]:
        return iter(self._triple())

    def __len__(self) -> int:
        return 3

    def __getitem__(self, index: int | slice) -> Any:
        if isinstance(index, str):
            raise TypeError(
                f"BundleResult indices are 0, 1, 2 (decoded, bottom_mask, gap_mask) or slices; "
                f"for the output {index!r} use res.{index} or res.as_dict()[{index!r}]"
            )
        return self._triple()[index]

    def _triple(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        return (self.outputs["decoded"], self.outputs["bottom_mask"], self.outputs["gap_mask"])

    def __getattr__(self, name: str) -> np.ndarray:
        if name == "outputs":  # not set yet (copy/unpickling): no recursion
            raise AttributeError(name)
        try:
            return self.outputs[name]
        except KeyError:
            raise AttributeError(
                f"BundleResult has no output {name!r}; outputs: {list(self.outputs)}"
            ) from None

    def _factor_outputs(self, what: str) -> tuple[np.ndarray, ...]:
        found: dict[int, np.ndarray] = {}
        for key, value in self.outputs.items():
            m = _FACTOR_OUTPUT.match(key)
            if m and m["what"] == what:
                found[int(m["index"])] = value
        return tuple(found[i] for i in sorted(found))

    @property
    def factor_values(self) -> tuple[np.ndarray, ...]:
        """The validity factor values ``V_i`` (per-factor ``*_value`` outputs, in order)."""
        return self._factor_outputs("value")

    @property
    def factor_fault_masks(self) -> tuple[np.ndarray, ...]:
        """``~isfinite(V_i)`` per factor."""
        return self._factor_outputs("fault_mask")

    @property
    def factor_semantic_masks(self) -> tuple[np.ndarray, ...]:
        """``isfinite(V_i) & ((V_i == 0) | (|V_i| < tau_i))`` per factor."""
        return self._factor_outputs("semantic_bottom_mask")

    @property
    def num_factors(self) -> int:
        """Number of validity factors the graph evaluates."""
        return len(self.factor_values)

    def as_dict(self) -> OrderedDict[str, np.ndarray]:
        """All outputs in the bundle's canonical order."""
        return OrderedDict(self.outputs)


class OnnxRuntimeBundle:
    """A bundle loaded into an onnxruntime session: ``run(x)`` gives the strict result."""

    def __init__(
        self, validated: ValidatedBundle, providers: Sequence[str], session: Any = None
    ) -> None:
        self.path = validated.path
        self.metadata = validated.metadata
        #: the metadata as typed records
        self.info = validated.info or BundleMetadata.parse(validated.metadata)
        self.smoke_inputs = validated.smoke_inputs
        self.semantic = validated.semantic
        #: the whole graph was reproduced from the recorded expression (see :func:`validate_bundle`)
        self.verified = validated.verified
        #: what is not verified (``None`` when verified), e.g. a traced model's P, Q, V
        self.unverified_reason = validated.unverified_reason
        #: what validation checked, in one sentence
        self.verification = validated.verification
        #: the domain report over the declared operating box, recomputed by the validator
        #: (``None`` when the bundle declares no ``input_box``)
        self.domain = validated.domain
        # The exact bytes that were hashed and checked go to onnxruntime.
        if session is None:
            session = make_session(validated.model_bytes, providers, str(validated.path))
        self.session = session
        self.output_names = [o.name for o in self.session.get_outputs()]
        self.input_dtype = np.dtype(self.info.dtype)
        self.variables = self.info.input.variables
        multi = self.info.multi_output
        #: outputs per sample: ``decoded`` etc. are ``[batch]`` for 1, ``[batch, k]`` for k >= 2
        self.num_outputs = self.info.num_outputs
        #: names of the outputs (column order of a multi-output bundle)
        self.result_names = multi.output_names if multi else ("decoded",)

    def run(self, x: Any) -> BundleResult:
        """Run on ``x`` of shape ``[batch, n_vars]`` (cast to the bundle's dtype).

        The strict outputs are ``[batch]``, or ``[batch, k]`` for a bundle with
        ``k = self.num_outputs >= 2`` outputs (column ``j`` is ``self.result_names[j]``).
        """
        if hasattr(x, "detach"):
            x = x.detach().cpu().numpy()
        arr = np.asarray(x)
        if arr.ndim != 2 or arr.shape[1] != len(self.variables):
            raise BundleError(
                f"input must have shape [batch, {len(self.variables)}] (columns {list(self.variables)}), got {arr.shape}"
            )
        if not np.issubdtype(arr.dtype, np.floating):
            raise BundleError(f"input must be floating point, got {arr.dtype}")
        arr = np.ascontiguousarray(arr.astype(self.input_dtype, copy=False))
        try:
            values = self.session.run(None, {self.info.input.name: arr})
        except Exception as e:  # noqa: BLE001 - onnxruntime raises its own exception types
            raise BundleError(
                f"onnxruntime failed to run bundle {self.path}: {str(e).splitlines()[0][:300]}"
            ) from e
        return BundleResult(OrderedDict(zip(self.output_names, values, strict=True)))


def load_onnx_runtime_bundle(
    directory: str | os.PathLike[str],
    providers: Sequence[str] = ("CPUExecutionProvider",),
    *,
    signing_key: bytes | None = None,
    allow_unverified: bool = False,
    require_verified: bool = False,
) -> OnnxRuntimeBundle:
    """Validate the bundle completely (see :func:`validate_bundle`), then return it loaded.

    The onnxruntime session that passed the semantic check (with ``providers``)
    is the one that runs: exactly the validated model bytes. A bundle whose graph
    is not verified (a traced model, or one accepted with ``allow_unverified=True``)
    loads with an :class:`UnverifiedBundleWarning` saying what is not verified;
    ``require_verified=True`` refuses it instead.
    """
    validated, session = open_validated(
        directory,
        providers,
        signing_key=signing_key,
        allow_unverified=allow_unverified,
        require_verified=require_verified,
    )
    if not validated.verified:
        warnings.warn(
            UnverifiedBundleWarning(
                f"bundle {validated.path} is UNVERIFIED: {validated.unverified_reason}"
            ),
            stacklevel=2,
        )
    return OnnxRuntimeBundle(validated, providers, session)


@dataclass(frozen=True, slots=True)
class SmokeTestReport:
    """Per-output comparison of a bundle with its reference module."""

    samples: int
    max_abs_diff: dict[str, float]
    mismatches: dict[str, int]

    @property
    def passed(self) -> bool:
        """True when every output matched."""
        return not any(self.mismatches.values())


def _reference_outputs(
    reference: Any, x: np.ndarray, prefix: str | None
) -> OrderedDict[str, np.ndarray]:
    import torch

    was_training = getattr(reference, "training", False)
    if hasattr(reference, "eval"):
        reference.eval()
    try:
        with torch.no_grad():
            result = reference(torch.from_numpy(x))
    finally:
        if was_training and hasattr(reference, "train"):
            reference.train()
    if isinstance(result, tuple | list) and result and all(hasattr(r, "as_dict") for r in result):
        from zpml_runtime.bundle.multi import DEFAULT_PREFIX, stack_reference

        return OrderedDict(stack_reference(result, prefix or DEFAULT_PREFIX))
    if not hasattr(result, "as_dict"):
        raise BundleError(
            f"the reference returned {type(result).__name__}; expected a strict result "
            "(a strict evaluator or an SCMInferenceWrapper)"
        )
    out = result.as_dict(prefix) if prefix else result.as_dict()
    return OrderedDict((k, v.detach().cpu().numpy()) for k, v in out.items())


def run_bundle_reference_smoke_test(
    directory: str | os.PathLike[str],
    reference: Any,
    inputs: Any = None,
    *,
    rtol: float | None = None,
    atol: float = 0.0,
    allow_unverified: bool = False,
    require_verified: bool = False,
) -> SmokeTestReport:
    """Run the bundle and ``reference`` on ``inputs`` (default: the stored smoke inputs).

    Masks and provenance must be identical, float outputs equal within
    ``rtol`` (default 1e-5 for float32, 1e-12 for float64) with NaNs in the
    same places. Raises :class:`BundleSmokeTestError` on any mismatch.
    """
    runtime = load_onnx_runtime_bundle(
        directory, allow_unverified=allow_unverified, require_verified=require_verified
    )
    if inputs is None:
        x = runtime.smoke_inputs
    else:
        x = inputs[0] if isinstance(inputs, tuple | list) else inputs
        x = x.detach().cpu().numpy() if hasattr(x, "detach") else np.asarray(x)
    x = np.ascontiguousarray(x.astype(runtime.input_dtype))
    prefix = runtime.info.factor_prefix
    got = runtime.run(x).as_dict()
    want = _reference_outputs(reference, x, prefix)
    tol = rtol if rtol is not None else (1e-5 if runtime.input_dtype == np.float32 else 1e-12)
    max_diff: dict[str, float] = {}
    mismatches: dict[str, int] = {}
    for name in got:
        if name not in want:
            mismatches[name] = len(x)
            continue
        a, b = got[name], np.asarray(want[name])
        if b.shape == a.shape + (1,):  # a model returning [batch, 1] heads
            b = b[..., 0]
        if a.shape != b.shape:
            mismatches[name] = len(x)
            continue
        if a.dtype.kind == "f":
            nan_diff = np.isnan(a) != np.isnan(b)
            both = ~np.isnan(a) & ~np.isnan(b)
            with np.errstate(invalid="ignore"):  # inf vs inf compares equal in isclose
                close = np.isclose(a[both], b[both].astype(a.dtype), rtol=tol, atol=atol)
            mismatches[name] = int(nan_diff.sum() + (~close).sum())
            finite = np.isfinite(a) & np.isfinite(b)
            max_diff[name] = float(np.max(np.abs(a[finite] - b[finite]), initial=0.0))
        else:
            mismatches[name] = int((a != b.astype(a.dtype)).sum())
    report = SmokeTestReport(len(x), max_diff, mismatches)
    if not report.passed:
        bad = {k: v for k, v in mismatches.items() if v}
        raise BundleSmokeTestError(
            f"bundle {Path(directory)} disagrees with the reference on {bad} (of {len(x)} samples)"
        )
    missing = [n for n in STRICT_OUTPUTS if n not in got]
    if missing:
        raise BundleSmokeTestError(f"bundle outputs lack {missing}")
    return report


__all__ = [
    "BundleResult",
    "OnnxRuntimeBundle",
    "SmokeTestReport",
    "UnverifiedBundleWarning",
    "load_onnx_runtime_bundle",
    "run_bundle_reference_smoke_test",
]
