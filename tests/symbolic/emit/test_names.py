"""Parameter names that are Python keywords, builtins or module attributes work in every back-end."""

from __future__ import annotations

import builtins
import keyword

import numpy as np
import onnxruntime as ort
import pytest
import sympy as sp
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

import zpml_symbolic as zs
from zpml_symbolic.emit.lowering.names import parameter_keys

NASTY = ["lambda", "def", "class", "None", "__class__", "forward", "coefficients", "training"]


def _parses(name: str) -> bool:
    try:
        zs.parse(f"{name}*x", parameters=[name])
    except zs.ZeroProofError:
        return False
    return name != "x"


CANDIDATES = sorted(
    {n for n in [*keyword.kwlist, *dir(builtins), *dir(nn.Module), *NASTY] if n.isidentifier()}
)
PARSED = [n for n in CANDIDATES if _parses(n)]


def _check_all_backends(name: str) -> None:
    expr = zs.parse(f"{name}*x/(1 + {name}*x)", parameters=[name])
    x = torch.tensor([[1.0], [2.0], [-2.0]], dtype=torch.float64)  # -2: a pole at name = 0.5
    want = np.array([1 / 3, 0.5, np.nan])
    m = zs.to_torch(expr, init={name: 0.5}, dtype=torch.float64)
    assert m.coefficient_values() == {name: 0.5}
    assert m.parameter_names == (name,)
    sym = m.to_sympy()  # the coefficient's value substituted, structure kept
    assert {str(s) for s in sym.free_symbols} == {"x"} and sym.subs("x", 1) == sp.Rational(1, 3)
    with torch.no_grad():
        P, Q = m(x)  # in-place graph
    P2, Q2 = m._functional(x)  # autograd graph
    torch.testing.assert_close(P, P2)
    ev = zs.strict_evaluator(m)
    got = ev(x).decoded.detach().numpy()
    np.testing.assert_allclose(got, want, equal_nan=True)
    # generated reverse mode: a gradient for the coefficient under its user name
    out = ev(x).decoded
    out[:2].sum().backward()
    assert m.coefficient(name).grad is not None and torch.isfinite(m.coefficient(name).grad)
    scripted = torch.jit.script(m)
    torch.testing.assert_close(scripted(x)[0], P)
    npe = zs.numpy_evaluator(expr, init={name: 0.5})
    np.testing.assert_allclose(npe(x.numpy()).decoded, want, equal_nan=True)
    model = zs.to_onnx(expr, init={name: 0.5}, dtype="float64")
    meta = {p.key: p.value for p in model.metadata_props}
    assert name in meta["zpml.parameters"]
    names = [t.name for t in model.graph.initializer]
    assert len(names) == len(set(names))
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    (decoded, *_) = sess.run(None, {"x": x.numpy()})
    np.testing.assert_allclose(decoded, want, equal_nan=True)


@pytest.mark.parametrize("name", NASTY)
def test_issue_names_work_everywhere(name: str) -> None:
    _check_all_backends(name)


def test_to_sympy_keeps_the_user_name() -> None:
    m = zs.to_torch(zs.parse("lambda*x/(1+lambda*x)", parameters=["lambda"]), init={"lambda": 0.5})
    assert {s.name for s in m.frus[0].parameters} == {"lambda"}
    assert "lambda" in str(zs.to_sympy(m.frus[0].root))
    assert m.coefficients[parameter_keys(["lambda"])[0]].item() == 0.5


def test_torch_compile_fullgraph_with_keyword_parameter() -> None:
    m = zs.to_torch(zs.parse("lambda*x/(1+lambda*x)", parameters=["lambda"]), init={"lambda": 0.5})
    x = torch.tensor([[1.0], [3.0]])
    compiled = torch.compile(m, backend="eager", fullgraph=True)
    with torch.no_grad():
        got, want = compiled(x), m(x)
    torch.testing.assert_close(got, want)


def test_storage_keys_are_unique_and_safe() -> None:
    keys = parameter_keys(["zpml_p1", "lambda", "a", "forward", "zpml_p0"])
    assert len(set(keys)) == 5 and keys[2] == "a"
    assert all(k.isidentifier() and not keyword.iskeyword(k) for k in keys)


@settings(max_examples=15, deadline=None)
@given(st.lists(st.sampled_from(PARSED), min_size=2, max_size=3, unique=True))
def test_any_parsed_names_work_together(names: list[str]) -> None:
    text = " + ".join(f"{n}*x" for n in names)
    expr = zs.parse(f"({text})/(1 + {names[0]}*x)", parameters=names)
    init = {n: 0.25 * (i + 1) for i, n in enumerate(names)}
    x = np.array([[1.0], [2.0]])
    exact = [sum(init[n] * v for n in names) / (1 + init[names[0]] * v) for v in (1.0, 2.0)]
    m = zs.to_torch(expr, init=init, dtype=torch.float64)
    assert m.coefficient_values() == init
    with torch.no_grad():
        P, Q = m(torch.from_numpy(x))
    np.testing.assert_allclose((P / Q).numpy(), exact)
    npe = zs.numpy_evaluator(expr, init=init)
    np.testing.assert_allclose(npe(x).decoded, exact)
    model = zs.to_onnx(expr, init=init, dtype="float64", tile_rows=None)
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    np.testing.assert_allclose(sess.run(["decoded"], {"x": x})[0], exact)
