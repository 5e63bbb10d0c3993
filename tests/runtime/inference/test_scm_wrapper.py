"""SCMInferenceWrapper: train pass-through, strict eval, raw outputs for validation, compile."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from zpml_runtime.errors import ModelOutputError, UnsupportedInputError
from zpml_runtime.inference import InferenceConfig, SCMInferenceWrapper, StrictInferenceResult

CFG = InferenceConfig(tau_infer=1e-6, tau_train=1e-4)


class Rational(nn.Module):
    """P = x, Q = x - shift (a pole at x = shift)."""

    def __init__(self, shift: float = 0.5, factors: bool = False) -> None:
        super().__init__()
        self.shift = nn.Parameter(torch.tensor(shift))
        self.factors = factors

    def forward(self, x: torch.Tensor):
        p, q = x * 2.0, x - self.shift
        if self.factors:
            return p, q, torch.stack([x + 1.0], dim=-1)
        return p, q


def test_train_mode_passes_raw_tuple_through():
    wrapped = SCMInferenceWrapper(Rational(), config=CFG)
    x = torch.tensor([0.5, 1.0])
    out = wrapped.train()(x)
    assert isinstance(out, tuple) and len(out) == 2
    assert torch.equal(out[1], torch.tensor([0.0, 0.5]))


def test_eval_mode_decodes_strictly_and_seed_chain_works():
    wrapped = SCMInferenceWrapper(Rational(), config=CFG).eval()
    decoded, bottom_mask, gap_mask = wrapped(torch.tensor([0.5, 1.0, 0.50005]))
    assert bottom_mask.tolist() == [True, False, False]
    assert gap_mask.tolist() == [False, False, True]
    assert decoded[1].item() == 4.0


def test_validity_factors_from_model():
    wrapped = SCMInferenceWrapper(Rational(factors=True), config=CFG).eval()
    result = wrapped(torch.tensor([-1.0, 1.0]))
    assert isinstance(result, StrictInferenceResult) and result.num_factors == 1
    assert result.bottom_mask.tolist() == [True, False]
    assert result.semantic_bottom_mask.tolist() == [True, False]


def test_validation_loop_sees_raw_tuples_in_eval_mode():
    wrapped = SCMInferenceWrapper(Rational(), config=CFG).eval()
    x = torch.tensor([0.25, 1.0])

    def loss_fn(outputs):
        p, q = outputs  # a projective loss: unpacks (P, Q)
        return (p - 2.0 * q).pow(2).mean()

    with torch.no_grad():
        assert torch.isfinite(loss_fn(wrapped.raw(x)))
        with wrapped.raw_outputs():
            assert torch.isfinite(loss_fn(wrapped(x)))
        with pytest.raises(ValueError, match="too many values to unpack"):
            loss_fn(wrapped(x))  # strict result: fails loudly, never silently
    # an error inside the block restores strict outputs too
    with pytest.raises(RuntimeError, match="inside"), wrapped.raw_outputs():
        raise RuntimeError("inside")
    with torch.no_grad():
        assert isinstance(wrapped(x), StrictInferenceResult)


def test_gradients_flow_through_decoded_in_eval_mode():
    model = Rational()
    wrapped = SCMInferenceWrapper(model, config=CFG).eval()
    decoded, bottom, _ = wrapped(torch.tensor([0.5, 1.0]))
    torch.nansum(decoded).backward()
    assert torch.isfinite(model.shift.grad) and model.shift.grad.item() == pytest.approx(8.0)


@pytest.mark.parametrize(
    ("output", "match"),
    [
        (torch.ones(2), r"must return \(P, Q\) or \(P, Q, V\), got a Tensor"),
        ((torch.ones(2),), r"got a tuple of length 1"),
        ((torch.ones(2), [1.0, 2.0]), r"returned Q as list"),
    ],
)
def test_bad_model_outputs_are_typed_errors(output, match):
    class Bad(nn.Module):
        def forward(self, x):
            return output

    with pytest.raises(ModelOutputError, match=match):
        SCMInferenceWrapper(Bad(), config=CFG).eval()(torch.ones(2))


def test_constructor_checks():
    with pytest.raises(UnsupportedInputError, match="model must be a torch.nn.Module"):
        SCMInferenceWrapper(lambda x: x, config=CFG)  # type: ignore[arg-type]
    with pytest.raises(UnsupportedInputError, match="config must be an InferenceConfig"):
        SCMInferenceWrapper(Rational(), config={"tau_infer": 1e-6})  # type: ignore[arg-type]
    assert "tau_infer=1e-06" in repr(SCMInferenceWrapper(Rational(), config=CFG))


@pytest.mark.parametrize("backend", ["aot_eager", pytest.param("inductor", marks=pytest.mark.slow)])
def test_torch_compile_fullgraph(backend):
    wrapped = SCMInferenceWrapper(Rational(factors=True), config=CFG).eval()
    x = torch.tensor([0.5, 1.0, 0.50005, -1.0, 2.0, 3.0, 0.0, 4.0])
    eager = wrapped(x)
    compiled = torch.compile(wrapped, fullgraph=True, backend=backend)
    with torch.no_grad():
        out = compiled(x)
    assert isinstance(out, StrictInferenceResult)
    for (key, a), b in zip(eager.as_dict().items(), out.as_dict().values(), strict=True):
        if a.is_floating_point():
            assert torch.allclose(a.detach().nan_to_num(), b.nan_to_num()), key
        else:
            assert torch.equal(a, b), key
