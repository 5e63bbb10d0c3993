"""End-to-end demo: compile a rational expression, evaluate strictly, explain bottoms.

Run with ``make demo``. Steps:
1. parse the expression safely (structure kept) and flatten it to P/Q with
   validity factors and provenance;
2. exact strict evaluation at regular and singular points, with explanations;
3. compile to a torch module and a strict evaluator, and to an ONNX graph run
   in onnxruntime, on a batch with poles; print the masks and, for every
   bottom sample, which denominator bottomed.
"""

from __future__ import annotations

import json
import math
import tempfile
from pathlib import Path

import numpy as np
import torch

import zpml_symbolic as zs
from zpml_runtime.inference import STRICT_OUTPUT_NAMES, InferenceConfig

EXPRESSION = "(x**2 + 1)/(x - y) + 1/(1 + 1/x)"


def section(title: str) -> None:
    """Print a section header."""
    print(f"\n=== {title} " + "=" * max(0, 70 - len(title)))


def main() -> None:
    """Run the demo."""
    section("1. Flatten")
    expr = zs.parse(EXPRESSION)
    fru = zs.flatten(expr)
    print(f"expression : {EXPRESSION}")
    print(f"variables  : {[s.name for s in fru.variables]}")
    print(f"P          : {fru.numerator}")
    print(f"Q          : {fru.denominator}   (factored: {fru.denominator_factors})")
    print(f"V (validity factors not enforced by Q): {list(fru.validity_factors)}")
    print("\nprovenance of every denominator met:")
    print(fru.provenance_table())
    schema = fru.structural_validity_output_schema()
    print("\nstructural validity output schema:")
    print(json.dumps(schema.to_metadata(), indent=2))

    section("2. Exact strict evaluation")
    for point in ({"x": 2, "y": 1}, {"x": 0, "y": 1}, {"x": 1, "y": 1}, {"x": -1, "y": 3}):
        print(fru.explain(point))

    section("3. Torch module, strict evaluator, ONNX")
    config = InferenceConfig(tau_infer=1e-6, tau_train=1e-3)
    module = zs.to_torch(fru)
    print("generated torch code (module.code):")
    print(module.code.strip())
    evaluator = zs.strict_evaluator(module, config=config)
    x = torch.tensor(
        [
            [2.0, 1.0],
            [0.0, 1.0],
            [1.0, 1.0],
            [-1.0, 3.0],
            [3.0, 3.0002],
            [math.nan, 1.0],
            [0.5, -2.0],
        ],
        dtype=torch.float32,
    )
    result = evaluator(x)
    outputs = result.as_dict()
    print(f"\ninputs (x, y):\n{x.numpy()}")
    for name in STRICT_OUTPUT_NAMES + schema.output_names:
        print(f"{name:>22}: {outputs[name].numpy()}")
    print("\nwhich denominator bottomed:")
    for explanation in evaluator.explain(x, result):
        print(explanation)

    model = zs.to_onnx(fru, config=config, dtype="float32")
    import onnxruntime as ort

    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    onnx_out = dict(zip(names, session.run(None, {"x": x.numpy()}), strict=True))
    print(f"\nONNX graph outputs: {names}")
    same = all(
        np.array_equal(
            onnx_out[k], outputs[k].numpy(), equal_nan=(k == "decoded" or k.endswith("_value"))
        )
        if k != "decoded"
        else np.allclose(onnx_out[k], outputs[k].numpy(), equal_nan=True, rtol=1e-6)
        for k in names
    )
    print(f"onnxruntime agrees with torch on every output: {same}")
    if not same:
        raise SystemExit("ONNX and torch disagree")

    section("4. Bundle: export, validate, reload, smoke test, report")
    deploy(evaluator, x)


def deploy(evaluator: torch.nn.Module, x: torch.Tensor) -> None:
    """Export an ONNX bundle, validate it, reload it in onnxruntime and report."""
    from zpml_runtime.bundle import (
        export_bundle,
        load_onnx_runtime_bundle,
        run_bundle_reference_smoke_test,
        validate_bundle,
    )
    from zpml_runtime.bundle.report import write_bundle_report

    out = Path(tempfile.mkdtemp(prefix="zpml-demo-")) / "bundle"
    exported = export_bundle(evaluator, out, example_inputs=(x,))
    print(f"bundle written to {out}: {sorted(p.name for p in out.iterdir())}")
    print(
        f"model.onnx sha256 {exported.metadata['model_sha256'][:16]}..., tau_infer "
        f"{exported.metadata['inference_config']['tau_infer']}"
    )
    validate_bundle(out)
    print("validate_bundle: OK (hashes, JSON schema, graph signature, baked thresholds)")
    runtime = load_onnx_runtime_bundle(out, providers=["CPUExecutionProvider"])
    decoded, bottom_mask, gap_mask = runtime.run(x.numpy())
    print(f"reloaded in onnxruntime: bottom_mask={bottom_mask}, gap_mask={gap_mask}")
    smoke = run_bundle_reference_smoke_test(out, evaluator)
    print(
        f"smoke test vs the torch reference on {smoke.samples} stored inputs: passed={smoke.passed}"
    )
    report = write_bundle_report(out)
    rates = report.summary["rates"]
    print(f"report: {', '.join(p.name for p in report.files.values())}")
    print(
        f"  bottom rate {rates['bottom_rate']:.3f}, gap rate {rates['gap_rate']:.3f}; "
        f"recommended fallback: {report.summary['recommended_fallback']['policy']}"
    )


if __name__ == "__main__":
    main()
