"""Importance sampling reference: exact on targets with known moments."""
import autograd.numpy as anp
import numpy as np
import pytest

from refold.models.importance_sampling import laplace_importance_sampling


def test_gaussian_target_is_recovered():
    mean = np.array([1.0, -2.0])
    cov = np.array([[2.0, 0.6], [0.6, 0.5]])
    prec = np.linalg.inv(cov)

    def log_post(theta):
        centred = theta - mean
        return -0.5 * anp.sum(anp.dot(centred, prec) * centred, axis=1)

    result = laplace_importance_sampling(log_post, np.zeros(2),
                                         num_draws=40_000, rng=0)
    np.testing.assert_allclose(result.mode, mean, atol=1e-7)
    np.testing.assert_allclose(result.laplace_cov, cov, rtol=1e-7)
    assert np.all(np.abs(result.cov - cov) <= 5 * result.cov_mc_se + 1e-3)
    np.testing.assert_allclose(result.mean, mean, atol=0.05)
    np.testing.assert_allclose(result.weights.sum(), 1.0)
    assert result.ess > 10_000


def test_skewed_target_differs_from_laplace():
    # Gamma(3, 1) in log space: log p(x) = 3x - exp(x); exact variance of x
    # is trigamma(3) = 0.3949..., the Laplace one 1/3.
    def log_post(theta):
        return 3.0 * theta[:, 0] - anp.exp(theta[:, 0])

    result = laplace_importance_sampling(log_post, np.array([0.5]),
                                         num_draws=60_000, rng=1)
    exact = 0.39493406684822646
    assert abs(result.laplace_cov[0, 0] - 1.0 / 3.0) < 1e-8
    assert abs(result.cov[0, 0] - exact) < 5 * result.cov_mc_se[0, 0] + 2e-3
    assert abs(result.cov[0, 0] - 1.0 / 3.0) > 0.03


def test_bad_input():
    def log_post(theta):
        return -anp.sum(theta ** 2, axis=1)

    with pytest.raises(ValueError, match="init"):
        laplace_importance_sampling(log_post, np.zeros((2, 2)))
    with pytest.raises(ValueError, match="num_draws"):
        laplace_importance_sampling(log_post, np.zeros(2), num_draws=1)
    with pytest.raises(ValueError, match="df"):
        laplace_importance_sampling(log_post, np.zeros(2), df=0.0)

    def saddle(theta):
        return -theta[:, 0] ** 2 + 0.0 * theta[:, 1]

    with pytest.raises(ValueError, match="not positive definite"):
        laplace_importance_sampling(saddle, np.zeros(2), num_draws=100)
