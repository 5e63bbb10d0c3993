"""Typed input errors of the torch module, the strict evaluator and the numpy evaluator; variables=."""

from __future__ import annotations

import re

import numpy as np
import onnxruntime as ort
import pytest
import torch

import zpml_symbolic as zs
from zpml_core.errors import ShapeMismatchError, UnsupportedInputError

EXPR = "x/(x - y)"


def _callers():
    m = zs.to_torch(EXPR)
    ev = zs.strict_evaluator(EXPR)
    return {"RationalModule": m, "StrictEvaluator": ev}


@pytest.mark.parametrize("shape", [(4, 3), (4, 1), (3,), (5, 2, 1), ()])
def test_wrong_shapes_are_refused_with_the_column_order(shape: tuple[int, ...]) -> None:
    for where, f in _callers().items():
        with pytest.raises(
            ShapeMismatchError,
            match=rf"{where}: x must have shape \[\.\.\., 2\] \(columns in order \['x', 'y'\]\), got "
            + re.escape(str(tuple(shape))),
        ):
            f(torch.ones(shape))
    with pytest.raises(ShapeMismatchError, match=r"columns in order \['x', 'y'\]"):
        zs.numpy_evaluator(EXPR)(np.ones(shape))


def test_one_variable_batch_needs_a_column() -> None:
    m = zs.to_torch("1/x")
    with pytest.raises(ShapeMismatchError, match=r"x\[\.\.\., None\]"):
        m(torch.ones(5))
    P, Q = m(torch.ones(5)[..., None])
    assert P.shape == (5,)
    # one sample of n_vars entries is the [..., n_vars] rule with an empty batch
    assert zs.to_torch(EXPR)(torch.tensor([2.0, 1.0]))[0].shape == ()


@pytest.mark.parametrize("dtype", [torch.int64, torch.bool, torch.complex64])
def test_non_float_dtypes_are_refused(dtype: torch.dtype) -> None:
    for where, f in _callers().items():
        with pytest.raises(
            UnsupportedInputError,
            match=rf"{where}: x must have a real floating dtype .* got {dtype}",
        ):
            f(torch.ones(4, 2, dtype=dtype))
    arr = np.ones(
        (4, 2),
        dtype={torch.int64: np.int64, torch.bool: np.bool_, torch.complex64: np.complex64}[dtype],
    )
    with pytest.raises(UnsupportedInputError, match="float32 or float64 array"):
        zs.numpy_evaluator(EXPR)(arr)


def test_numpy_to_torch_and_torch_to_numpy_are_refused_with_the_conversion() -> None:
    for f in _callers().values():
        with pytest.raises(UnsupportedInputError, match=r"torch.from_numpy"):
            f(np.ones((4, 2), dtype=np.float32))
    with pytest.raises(UnsupportedInputError, match=r"\.numpy\(\)"):
        zs.numpy_evaluator(EXPR)(torch.ones(4, 2))


def test_errors_share_the_base_and_the_builtins() -> None:
    m = zs.to_torch(EXPR)
    with pytest.raises(zs.ZeroProofError):
        m(torch.ones(4, 3))
    with pytest.raises(ValueError):
        m(torch.ones(4, 3))
    with pytest.raises(TypeError):
        m(torch.ones(4, 2, dtype=torch.int64))


def test_wrong_device_is_refused() -> None:
    m = zs.to_torch(zs.parse("a*x/(x - y)", parameters=["a"]), init={"a": 1.0})
    m.to("meta")  # a device other than the input's, available everywhere
    with pytest.raises(
        UnsupportedInputError, match="x is on cpu but the module's coefficients are on meta"
    ):
        m(torch.ones(4, 2))


def test_checks_do_not_break_torch_compile_or_torchscript() -> None:
    m = zs.to_torch(EXPR)
    x = torch.tensor([[2.0, 1.0], [3.0, 3.0]])
    with torch.no_grad():
        want = m(x)
        torch.testing.assert_close(torch.compile(m, backend="eager", fullgraph=True)(x), want)
        torch.testing.assert_close(torch.jit.script(m)(x), want)


def test_variables_order_on_every_entry_point() -> None:
    x = np.array([[1.0, 3.0], [2.0, 2.0]])  # columns (y, x): x/(x - y) = 1.5, then a pole
    want = np.array([1.5, np.nan])
    order = ["y", "x"]
    m = zs.to_torch(EXPR, variables=order, dtype=torch.float64)
    assert m.variables == ("y", "x")
    P, Q = m(torch.from_numpy(x))
    np.testing.assert_allclose((P / Q).numpy()[:1], want[:1])
    ev = zs.strict_evaluator(EXPR, variables=order)
    np.testing.assert_allclose(ev(torch.from_numpy(x)).decoded.numpy(), want)
    npe = zs.numpy_evaluator(EXPR, variables=order)
    np.testing.assert_allclose(npe(x).decoded, want)
    model = zs.to_onnx(EXPR, variables=order, dtype="float64")
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    np.testing.assert_allclose(sess.run(["decoded"], {"x": x})[0], want)


def test_bad_variables_are_refused() -> None:
    with pytest.raises(zs.InvalidArgumentError, match=r"does not list the inputs \['y'\]"):
        zs.to_torch(EXPR, variables=["x"])
    with pytest.raises(zs.InvalidArgumentError, match=r"more than once"):
        zs.strict_evaluator(EXPR, variables=["x", "y", "x"])
    with pytest.raises(zs.InvalidArgumentError, match="sequence of names"):
        zs.numpy_evaluator(EXPR, variables="xy")
    with pytest.raises(zs.InvalidArgumentError, match="are parameters"):
        zs.to_onnx(zs.parse("a*x", parameters=["a"]), init={"a": 1.0}, variables=["x", "a"])
    with pytest.raises(zs.InvalidArgumentError, match="do not pass variables="):
        zs.strict_evaluator(zs.to_torch(EXPR), variables=["x", "y"])
