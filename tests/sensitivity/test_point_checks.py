"""The shared point check (refold.sensitivity._checks.finite_array) and the
messages of the functions that use it: sparsity detection, Hessian-vector
products, structured Hessians, Newton steps and coloured Jacobians."""
import autograd.numpy as anp
import numpy as np
import pytest

from refold.sensitivity import (ArrowheadHessian, SparseBlockHessian,
                                dense_hessian, get_hvp, hessian_sparsity,
                                jacobian_sparsity, make_hvp_at,
                                sparse_hessian)
from refold.sensitivity._checks import finite_array
from refold.sensitivity.jacobians import auto_jacobian, sparse_jacobian
from refold.sensitivity.newton import damped_newton_step


def quartic(x):
    return anp.sum(x ** 4)


def test_finite_array_values_and_dtypes():
    out = finite_array([1, 2, 3], "x")
    assert out.dtype == np.float64
    np.testing.assert_array_equal(out, [1.0, 2.0, 3.0])
    x32 = np.ones(3, dtype=np.float32)
    assert finite_array(x32, "x", keep_float_dtype=True).dtype == np.float32
    assert finite_array(x32, "x").dtype == np.float64
    # A new array: the caller's array is never aliased.
    x = np.ones(3)
    assert not np.shares_memory(finite_array(x, "x"), x)
    assert not np.shares_memory(finite_array(x, "x", keep_float_dtype=True), x)
    # vector=True reads a scalar as a vector of length one.
    np.testing.assert_array_equal(finite_array(2.5, "x", vector=True), [2.5])
    assert finite_array(np.zeros((2, 0)), "x").shape == (2, 0)


@pytest.mark.parametrize("value, kwargs, error, pattern", [
    (np.ones(3, dtype=bool), {}, TypeError,
     "x must be a real numeric array; got dtype bool"),
    (np.ones(3) * 1j, {"vector": True}, TypeError,
     "x must be a real numeric vector; got dtype complex128"),
    (["a", "b"], {}, TypeError, "x must be a real numeric array; got dtype"),
    ([[1.0], [2.0, 3.0]], {}, TypeError, "x must be a real numeric array; "
                                         "got list"),
    (np.ones((2, 3)), {"vector": True}, ValueError,
     r"x must be a vector \(1-d\); got shape \(2, 3\)"),
    (np.ones(0), {"non_empty": True}, ValueError,
     r"x must have at least one entry; got shape \(0,\)"),
    (np.array([1.0, np.nan, np.inf]), {}, ValueError,
     r"x must be finite; x\[1\] is nan"),
    (np.array([[1.0, 2.0], [3.0, -np.inf]]), {}, ValueError,
     r"x must be finite; x\[1, 1\] is -inf"),
    (np.float64(np.nan), {}, ValueError, "x must be finite; x is nan"),
])
def test_finite_array_messages(value, kwargs, error, pattern):
    with pytest.raises(error, match=pattern):
        finite_array(value, "x", **kwargs)


BAD = np.array([0.5, np.nan, 1.0])


@pytest.mark.parametrize("call, error, pattern", [
    # sparsity detection: any shape, not empty
    (lambda: hessian_sparsity(quartic, BAD), ValueError,
     r"x must be finite; x\[1\] is nan"),
    (lambda: jacobian_sparsity(anp.sin, np.ones(0)), ValueError,
     "x must have at least one entry"),
    (lambda: hessian_sparsity(quartic, np.ones(2) * 1j), TypeError,
     "x must be a real numeric array"),
    # Hessian-vector products: x and the direction v named
    (lambda: get_hvp(quartic)(np.ones(3), BAD), ValueError,
     r"v must be finite; v\[1\] is nan"),
    (lambda: make_hvp_at(quartic, BAD), ValueError, r"x must be finite; x\[1\]"),
    (lambda: dense_hessian(quartic, np.ones(3, dtype=bool)), TypeError,
     "x must be a real numeric array; got dtype bool"),
    # structured Hessians and Newton steps: vectors
    (lambda: sparse_hessian(quartic, np.ones((3, 1)), np.eye(3, dtype=bool)),
     ValueError, r"x must be a vector \(1-d\); got shape \(3, 1\)"),
    (lambda: SparseBlockHessian(quartic, np.array([[0], [1], [2]]))
     .get_hessian(BAD), ValueError, r"opt_par must be finite; opt_par\[1\]"),
    (lambda: damped_newton_step(
        ArrowheadHessian(np.eye(1), np.zeros((2, 1, 1)),
                         np.ones((2, 1, 1))), BAD),
     ValueError, r"grad must be finite; grad\[1\] is nan"),
    # coloured Jacobians: a vector, named as the caller names it
    (lambda: sparse_jacobian(anp.sin, np.ones((2, 2))), ValueError,
     r"x must be a vector \(1-d\)"),
    (lambda: auto_jacobian(anp.sin, BAD, at="opt_par_value"), ValueError,
     r"opt_par_value must be finite; opt_par_value\[1\] is nan"),
])
def test_callers_name_the_argument(call, error, pattern):
    with pytest.raises(error, match=pattern):
        call()


def test_hvp_keeps_float32_and_structured_hessians_promote():
    x32 = np.linspace(0.5, 1.5, 4).astype(np.float32)
    hvp_at = make_hvp_at(quartic, x32)
    out = hvp_at(np.ones(4, dtype=np.float32))
    # H = diag(12 x^2): the float32 point is used as it is.
    np.testing.assert_allclose(out, 12 * x32.astype(float) ** 2, rtol=1e-6)
    hess = sparse_hessian(quartic, x32, np.eye(4, dtype=bool))
    assert hess.dtype == np.float64
    np.testing.assert_allclose(hess.toarray(),
                               np.diag(12 * x32.astype(float) ** 2),
                               rtol=1e-14)
