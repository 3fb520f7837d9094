"""Tests of refold.sensitivity.refit (the re-optimisation reference)."""
import autograd
import autograd.numpy as anp
import numpy as np
import pytest

from refold.sensitivity.refit import refit


def _quadratic(seed=0, dim=5):
    rng = np.random.default_rng(seed)
    a = rng.normal(size=(dim, dim))
    h = a @ a.T + np.eye(dim)
    b = rng.normal(size=dim)
    return h, b, (lambda x, shift: 0.5 * x @ h @ x - (b + shift) @ x)


def test_quadratic_closed_form():
    h, b, fun = _quadratic()
    shift = np.array([0.1, 0.0, -0.2, 0.3, 0.0])
    res = refit(fun, np.zeros(5), shift)
    np.testing.assert_allclose(res.x, np.linalg.solve(h, b + shift),
                               rtol=1e-10, atol=1e-12)
    assert res.success


def _logistic(seed=1, n_obs=500, dim=6):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n_obs, dim))
    y = np.where(rng.uniform(size=n_obs) < 0.5, 1.0, -1.0)

    def fun(theta, scale):
        return (anp.sum(anp.logaddexp(0.0, -y * (x @ theta)))
                + 0.5 * anp.sum(theta ** 2) / scale ** 2)

    return fun


def test_tight_gradient_on_a_nonlinear_problem():
    # An objective of size ~300: trust-ncg alone stalls near |grad| ~ 1e-6
    # ("failure to predict improvement"); the Newton polish gets to gtol.
    fun = _logistic()
    res = refit(fun, np.zeros(6), 2.0, gtol=1e-10)
    grad = autograd.grad(fun)(res.x, 2.0)  # independent gradient
    assert np.linalg.norm(grad) <= 1e-10
    # First-order optimality checked with the true Hessian: the Newton step
    # from the result is negligible.
    hess = autograd.hessian(fun)(res.x, 2.0)
    assert np.max(np.abs(np.linalg.solve(hess, grad))) < 1e-12
    # The dense-Hessian path finds the same optimum.
    dense = refit(fun, np.zeros(6), 2.0, hvp=False)
    np.testing.assert_allclose(dense.x, res.x, atol=1e-10)


def test_without_hyperparameter():
    res = refit(lambda x: anp.sum((x - 3.0) ** 2) + anp.sum(x ** 4) * 1e-3,
                np.zeros(3))
    # Optimum of (x-3)^2 + 1e-3 x^4 solves 2(x-3) + 4e-3 x^3 = 0.
    x = res.x[0]
    assert abs(2 * (x - 3) + 4e-3 * x ** 3) < 1e-10
    np.testing.assert_allclose(res.x, x)


def test_non_convergence_raises():
    fun = _logistic()
    with pytest.raises(ValueError, match="refit did not converge.*gradient "
                                         "norm.*maxiter"):
        refit(fun, np.full(6, 5.0), 2.0, maxiter=1)


def test_unbounded_objective_raises():
    with pytest.raises(ValueError, match="refit did not converge"):
        refit(lambda x: -anp.sum(x ** 2) + anp.sum(x), np.zeros(2),
              maxiter=50)


def test_bad_input():
    fun = _logistic()
    with pytest.raises(ValueError, match="init_par.*1-d"):
        refit(fun, np.zeros((2, 3)), 2.0)
    with pytest.raises(ValueError, match="init_par.*finite"):
        refit(fun, np.array([np.nan] * 6), 2.0)
    with pytest.raises(TypeError, match="init_par"):
        refit(fun, np.array(["a"] * 6), 2.0)
    with pytest.raises(ValueError, match="objective_fun.*finite scalar"):
        with np.errstate(invalid="ignore"):
            refit(lambda x: anp.sum(anp.log(x)), -np.ones(2))
    with pytest.raises(ValueError, match="gtol"):
        refit(fun, np.zeros(6), 2.0, gtol=0.0)
    with pytest.raises(ValueError, match="maxiter"):
        refit(fun, np.zeros(6), 2.0, maxiter=0)
    with pytest.raises(TypeError, match="objective_fun"):
        refit(3, np.zeros(6))


def test_init_not_mutated():
    init = np.zeros(6)
    refit(_logistic(), init, 2.0)
    np.testing.assert_array_equal(init, 0.0)
