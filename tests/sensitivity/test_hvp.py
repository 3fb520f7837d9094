"""Tests for refold.sensitivity.hvp against autograd.hessian and finite
differences."""
import autograd
import autograd.numpy as np
import numpy as onp
import pytest

from refold.sensitivity.hvp import (
    dense_hessian, get_batch_hvp, get_hvp, make_hvp_at)


def objective(x, a, b):
    return (a * np.sum(np.exp(0.3 * x) * x ** 2)
            + np.dot(x, np.dot(b, x)) + np.sum(np.sin(x[1:] * x[:-1])))


@pytest.fixture
def problem():
    rng = onp.random.default_rng(0)
    dim = 7
    x = rng.normal(size=dim)
    v = rng.normal(size=dim)
    b = rng.normal(size=(dim, dim))
    return x, v, 1.7, b, rng


def test_hvp_matches_autograd_hessian(problem):
    x, v, a, b, _ = problem
    hess = autograd.hessian(objective)(x, a, b)
    onp.testing.assert_allclose(get_hvp(objective)(x, v, a, b), hess @ v,
                                rtol=1e-12, atol=1e-12)


def test_hvp_matches_finite_differences(problem):
    x, v, a, b, _ = problem
    grad = autograd.grad(objective)
    step = 1e-5
    fd = (grad(x + step * v, a, b) - grad(x - step * v, a, b)) / (2 * step)
    onp.testing.assert_allclose(get_hvp(objective)(x, v, a, b), fd,
                                rtol=1e-6, atol=1e-6)


def test_hvp_argnum(problem):
    x, v, a, b, _ = problem

    def swapped(a_, x_, b_):
        return objective(x_, a_, b_)

    hess = autograd.hessian(swapped, 1)(a, x, b)
    onp.testing.assert_allclose(get_hvp(swapped, argnum=1)(x, v, a, b),
                                hess @ v, rtol=1e-12, atol=1e-12)


def test_hvp_matrix_argument():
    rng = onp.random.default_rng(1)
    x = rng.normal(size=(2, 3))
    v = rng.normal(size=(2, 3))

    def f(m):
        return np.sum(np.dot(m, m.T) ** 2)

    hess = autograd.hessian(f)(x).reshape(6, 6)
    out = get_hvp(f)(x, v)
    assert out.shape == (2, 3)
    onp.testing.assert_allclose(out.ravel(), hess @ v.ravel(), rtol=1e-12)


def test_batch_hvp_matches_hessian(problem):
    x, _, a, b, rng = problem
    big_v = rng.normal(size=(len(x), 4))
    hess = autograd.hessian(objective)(x, a, b)
    out = get_batch_hvp(objective)(x, big_v, a, b)
    assert out.shape == (len(x), 4)
    onp.testing.assert_allclose(out, hess @ big_v, rtol=1e-12, atol=1e-12)
    assert get_batch_hvp(objective)(x, onp.zeros((len(x), 0)), a,
                                    b).shape == (len(x), 0)


def test_make_hvp_at_reusable(problem):
    x, v, a, b, rng = problem
    hess = autograd.hessian(objective)(x, a, b)
    hvp_at = make_hvp_at(objective, x, a, b)
    for _ in range(3):
        w = rng.normal(size=len(x))
        onp.testing.assert_allclose(hvp_at(w), hess @ w, rtol=1e-12,
                                    atol=1e-12)


def test_hvp_bad_inputs(problem):
    x, v, a, b, _ = problem
    hvp = get_hvp(objective)
    with pytest.raises(ValueError, match="v must have the shape of x"):
        hvp(x, v[:-1], a, b)
    bad_x = x.copy()
    bad_x[2] = onp.nan
    with pytest.raises(ValueError, match="x must be finite"):
        hvp(bad_x, v, a, b)
    with pytest.raises(ValueError, match="v must be finite"):
        hvp(x, onp.full_like(v, onp.inf), a, b)
    with pytest.raises(TypeError, match="v must be a real numeric"):
        hvp(x, onp.array(["a"] * len(x)), a, b)
    with pytest.raises(TypeError, match="argnum"):
        get_hvp(objective, argnum="0")
    with pytest.raises(ValueError, match="argnum"):
        get_hvp(objective, argnum=-1)
    with pytest.raises(TypeError, match="fun must be callable"):
        get_hvp(3.0)
    with pytest.raises(ValueError, match="argnum=3"):
        get_hvp(objective, argnum=3)(x, v, a)


def test_batch_hvp_bad_inputs(problem):
    x, _, a, b, _ = problem
    batch = get_batch_hvp(objective)
    with pytest.raises(ValueError, match=r"V must have shape \(D, k\)"):
        batch(x, onp.ones((len(x) + 1, 2)), a, b)
    with pytest.raises(ValueError, match=r"V must have shape \(D, k\)"):
        batch(x, onp.ones(len(x)), a, b)
    with pytest.raises(ValueError, match="x must be one-dimensional"):
        batch(x.reshape(1, -1), onp.ones((len(x), 1)), a, b)
    hvp_at = make_hvp_at(objective, x, a, b)
    with pytest.raises(ValueError, match="v must have shape"):
        hvp_at(onp.ones(len(x) + 1))


def test_linear_objective_has_zero_hvp(recwarn):
    def linear(x):
        return np.sum(2.0 * x)

    x = onp.ones(3)
    onp.testing.assert_array_equal(get_hvp(linear)(x, x), onp.zeros(3))
    onp.testing.assert_array_equal(make_hvp_at(linear, x)(x), onp.zeros(3))
    assert not [w for w in recwarn if "independent" in str(w.message)]


def test_dense_hessian_matches_autograd_and_finite_differences(problem):
    x, _, a, b, _ = problem
    hess = dense_hessian(objective, x, a, b)
    onp.testing.assert_allclose(hess, autograd.hessian(objective)(x, a, b),
                                rtol=1e-13, atol=1e-13)
    grad = autograd.grad(objective)
    step = 1e-6
    fd = onp.stack([(grad(x + step * e, a, b) - grad(x - step * e, a, b))
                    / (2 * step) for e in onp.eye(len(x))], axis=1)
    onp.testing.assert_allclose(hess, fd, rtol=1e-6, atol=1e-6)

    def moved(a_, x_, b_):                       # x as argument 1
        return objective(x_, a_, b_)
    onp.testing.assert_allclose(dense_hessian(moved, x, a, b, argnum=1), hess,
                                rtol=1e-13, atol=1e-13)
    matrix = x.reshape(1, -1)                    # any shape of x
    assert dense_hessian(lambda y: np.sum(y ** 3), matrix).shape == \
        matrix.shape * 2
    x_before = x.copy()
    dense_hessian(objective, x, a, b)
    onp.testing.assert_array_equal(x, x_before)


def test_dense_hessian_bad_inputs(problem):
    x, _, a, b, _ = problem
    with pytest.raises(TypeError, match="fun must be callable"):
        dense_hessian(3.0, x)
    with pytest.raises(TypeError, match="argnum"):
        dense_hessian(objective, x, a, b, argnum=1.0)
    with pytest.raises(ValueError, match="argnum=3"):
        dense_hessian(objective, x, a, argnum=3)
    with pytest.raises(ValueError, match="x must be finite"):
        dense_hessian(objective, onp.full_like(x, onp.nan), a, b)
    with pytest.raises(TypeError, match="x must be a real numeric"):
        dense_hessian(objective, x.astype(complex), a, b)
