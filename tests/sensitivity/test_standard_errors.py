"""Tests of refold.sensitivity.standard_errors against closed forms (OLS
homoskedastic, HC0/HC1 and cluster-robust formulas written out in numpy;
logistic regression's inverse Fisher information) and finite differences."""
import autograd
import autograd.numpy as anp
import numpy as np
import pytest

from refold.sensitivity.standard_errors import (
    check_nonsingular, hessian_covariance, per_observation_gradients,
    sandwich_covariance, standard_error_fun)


def _ols(seed=0, n_obs=60):
    rng = np.random.default_rng(seed)
    x = np.column_stack([np.ones(n_obs), rng.normal(size=n_obs),
                         rng.normal(size=n_obs)])
    y = x @ np.array([0.5, 1.0, -0.3]) + rng.standard_t(3, size=n_obs)
    theta = np.linalg.solve(x.T @ x, x.T @ y)

    def losses(t):
        return 0.5 * (y - anp.dot(x, t)) ** 2
    return x, y, theta, losses


def test_ols_model_and_sandwich_match_closed_forms():
    x, y, theta, losses = _ols()
    n, d = x.shape
    resid = y - x @ theta
    xtx_inv = np.linalg.inv(x.T @ x)
    model = hessian_covariance(losses, theta, dispersion="gaussian")
    np.testing.assert_allclose(model, resid @ resid / (n - d) * xtx_inv,
                               rtol=1e-10)
    hc0 = xtx_inv @ (x.T * resid ** 2) @ x @ xtx_inv
    np.testing.assert_allclose(sandwich_covariance(losses, theta), hc0,
                               rtol=1e-10)
    np.testing.assert_allclose(
        sandwich_covariance(losses, theta, small_sample=True),
        hc0 * n / (n - d), rtol=1e-10)
    groups = np.arange(n) % 7
    meat = np.zeros((d, d))
    for g in range(7):
        s = x[groups == g].T @ resid[groups == g]
        meat += np.outer(s, s)
    clustered = xtx_inv @ meat @ xtx_inv
    np.testing.assert_allclose(
        sandwich_covariance(losses, theta, clusters=groups), clustered,
        rtol=1e-10)
    np.testing.assert_allclose(
        sandwich_covariance(losses, theta, clusters=groups.astype(str),
                            small_sample=True),
        clustered * 7 / 6 * (n - 1) / (n - d), rtol=1e-10)
    grads = per_observation_gradients(losses, theta)
    np.testing.assert_allclose(grads, -x * resid[:, None], rtol=1e-12)


def test_logistic_model_based_is_inverse_fisher_information():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(80, 3))
    y = (rng.random(80) < 0.5).astype(float)

    def losses(t):
        z = anp.dot(x, t)
        return anp.logaddexp(0, z) - y * z
    theta = np.array([0.1, -0.2, 0.3])      # any point: H is the formula
    p = 1 / (1 + np.exp(-x @ theta))
    w = rng.random(80)
    np.testing.assert_allclose(
        hessian_covariance(losses, theta, w),
        np.linalg.inv((x.T * (w * p * (1 - p))) @ x), rtol=1e-10)


def test_standard_errors_are_differentiable_in_theta_and_weights():
    x, y, theta, losses = _ols(n_obs=30)
    groups = np.arange(30) % 4
    for se in (standard_error_fun(losses, 1, dispersion="gaussian"),
               standard_error_fun(losses, lambda t: t[1] * t[2],
                                  kind="sandwich", clusters=groups)):
        w = np.ones(30)
        d_w = autograd.grad(se, 1)(theta, w)
        d_t = autograd.grad(se, 0)(theta, w)
        h = 1e-6
        for n in (0, 13):
            e = np.zeros(30)
            e[n] = h
            fd = (se(theta, w + e) - se(theta, w - e)) / (2 * h)
            np.testing.assert_allclose(d_w[n], fd, rtol=1e-6, atol=1e-10)
        for i in range(3):
            e = np.zeros(3)
            e[i] = h
            fd = (se(theta + e, w) - se(theta - e, w)) / (2 * h)
            np.testing.assert_allclose(d_t[i], fd, rtol=1e-6, atol=1e-10)


def test_collinear_design_names_the_columns():
    x, y, theta, losses = _ols()
    x3 = np.column_stack([x, 2 * x[:, 1] - x[:, 2]])

    def collinear(t):
        return 0.5 * (y - anp.dot(x3, t)) ** 2
    with pytest.raises(ValueError, match=r"\['theta\[1\]', 'theta\[2\]', "
                                         r"'theta\[3\]'\] are collinear"):
        hessian_covariance(collinear, np.zeros(4))
    with pytest.raises(ValueError, match="collinear"):
        standard_error_fun(collinear, 1, kind="sandwich")(np.zeros(4),
                                                          np.ones(60))
    with pytest.raises(ValueError, match=r"non-positive curvature in "
                                         r"\['b'\]"):
        check_nonsingular(np.diag([1.0, 0.0]), labels=["a", "b"])
    check_nonsingular(np.diag([1e-8, 1e8]))    # badly scaled is fine


def test_bad_input():
    x, y, theta, losses = _ols()
    with pytest.raises(ValueError, match=r"weights must have shape \(60,\)"):
        hessian_covariance(losses, theta, np.ones(3))
    with pytest.raises(ValueError, match="dispersion"):
        hessian_covariance(losses, theta, dispersion=-1.0)
    with pytest.raises(ValueError, match="dispersion"):
        hessian_covariance(losses, theta, dispersion="poisson")
    with pytest.raises(ValueError, match=r"clusters must have shape"):
        sandwich_covariance(losses, theta, clusters=np.zeros(5))
    with pytest.raises(ValueError, match="two distinct"):
        sandwich_covariance(losses, theta, clusters=np.zeros(60))
    with pytest.raises(ValueError, match="kind"):
        standard_error_fun(losses, 1, kind="robust")
    with pytest.raises(ValueError, match="clusters"):
        standard_error_fun(losses, 1, clusters=np.zeros(60))
    with pytest.raises(TypeError, match="qoi_fun"):
        standard_error_fun(losses, "slope")
