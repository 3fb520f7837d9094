"""Tests of refold.sensitivity.data_weights against closed forms (weighted
least squares) and brute-force re-fits (finite differences of weights, exact
leave-one-out, re-fitting without the dropped set)."""
import autograd.numpy as anp
import numpy as np
import pytest

from refold.sensitivity.data_weights import (DropDataResult, RefitCheck,
                                             WeightSensitivity)


def _ols(seed=0, n_obs=50):
    rng = np.random.default_rng(seed)
    x = np.column_stack([np.ones(n_obs), rng.normal(size=n_obs)])
    y = x @ np.array([0.5, 1.0]) + rng.normal(size=n_obs)
    theta = np.linalg.solve(x.T @ x, x.T @ y)
    return x, y, theta, (lambda t: 0.5 * (y - anp.dot(x, t)) ** 2)


def _logistic(seed=1, n_obs=40, dim=3):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n_obs, dim))
    y = (rng.random(n_obs) < 1 / (1 + np.exp(-x @ np.array([1.0, -0.5, 0.3])))
         ).astype(float)

    def loss_terms(t):
        z = anp.dot(x, t)
        return anp.logaddexp(0, z) - y * z

    def prior(t):
        return 0.5 * anp.sum(t ** 2)

    start = WeightSensitivity(loss_terms, np.zeros(dim), prior_fun=prior,
                              validate_optimum=False)
    opt = start.refit(np.ones(n_obs), gtol=1e-12)
    return loss_terms, prior, opt


@pytest.fixture(scope="module")
def logistic():
    loss_terms, prior, opt = _logistic()
    return WeightSensitivity(loss_terms, opt, 40, prior_fun=prior)


def test_influence_matches_weighted_least_squares_closed_form():
    x, y, theta, loss_terms = _ols()
    ws = WeightSensitivity(loss_terms, theta, n_obs=50)
    # theta(w) = (X'WX)^-1 X'Wy, so d theta / d w_n = (X'X)^-1 x_n r_n.
    resid = y - x @ theta
    expected = np.linalg.solve(x.T @ x, x.T * resid)        # (2, N)
    np.testing.assert_allclose(ws.influence(1), expected[1], rtol=1e-10,
                               atol=1e-14)
    np.testing.assert_allclose(ws.influence(lambda t: t[0] * t[1]),
                               theta[1] * expected[0] + theta[0] * expected[1],
                               rtol=1e-10, atol=1e-14)
    # Exact leave-one-out of OLS: theta_-n = theta - (X'X)^-1 x_n r_n/(1-h_n)
    # agrees with the jackknife to first order (the 1/(1 - h_n) factor).
    loo = ws.approximate_loo()
    np.testing.assert_allclose(loo, theta - expected.T, rtol=1e-10)


def test_influence_matches_finite_differences_of_refits(logistic):
    scores = logistic.influence(lambda t: t[0] - 2 * t[2])
    h = 1e-4
    for n in [0, 7, 23]:
        plus, minus = np.ones(40), np.ones(40)
        plus[n] += h
        minus[n] -= h
        tp = logistic.refit(plus, gtol=1e-12)
        tm = logistic.refit(minus, gtol=1e-12)
        fd = ((tp[0] - 2 * tp[2]) - (tm[0] - 2 * tm[2])) / (2 * h)
        np.testing.assert_allclose(scores[n], fd, rtol=1e-5, atol=1e-9)


def test_approximate_loo_vs_exact_refits(logistic):
    opt = logistic.opt_par
    exact = np.zeros((40, 3))
    for n in range(40):
        weights = np.ones(40)
        weights[n] = 0.0
        exact[n] = logistic.refit(weights, gtol=1e-11)
    approx = logistic.approximate_loo()
    change = exact - opt
    # First-order accurate: the error is small next to the change itself.
    # (relative error O(1/N): about 5% typically, 25% at the most
    # influential of these 40 observations).
    rel = np.linalg.norm(approx - exact, axis=1) / np.linalg.norm(change,
                                                                  axis=1)
    assert np.max(rel) < 0.3
    assert np.median(rel) < 0.08
    assert np.corrcoef(change.ravel(), (approx - opt).ravel())[0, 1] > 0.99
    q_loo = logistic.approximate_loo(1)
    np.testing.assert_allclose(q_loo, approx[:, 1], rtol=1e-10)


def test_cg_solver_gives_the_same_influence(logistic):
    loss_terms, prior, opt = _logistic()
    cg = WeightSensitivity(loss_terms, opt, prior_fun=prior, solver="cg")
    np.testing.assert_allclose(cg.influence(0), logistic.influence(0),
                               rtol=1e-7, atol=1e-12)


def _fragile_ols(seed=3):
    """A slope whose sign rests on a few high-leverage points."""
    rng = np.random.default_rng(seed)
    n_obs = 200
    x = rng.normal(size=n_obs)
    y = -0.05 * x + rng.normal(size=n_obs)
    x[:4] = [3.0, 3.5, -3.0, -3.5]
    y[:4] = [3.0, 4.0, -3.0, -3.5]
    design = np.column_stack([np.ones(n_obs), x])
    theta = np.linalg.solve(design.T @ design, design.T @ y)

    def loss_terms(t):
        return 0.5 * (y - anp.dot(design, t)) ** 2

    def se_fun(t, w):
        resid = y - anp.dot(design, t)
        sigma2 = anp.sum(w * resid ** 2) / (anp.sum(w) - 2)
        xtwx = anp.dot(design.T * w, design)
        return anp.sqrt(sigma2 * anp.linalg.inv(xtwx)[1, 1])

    return loss_terms, theta, se_fun


def test_drop_data_flips_the_sign_when_refit():
    loss_terms, theta, _ = _fragile_ols()
    assert theta[1] > 0
    ws = WeightSensitivity(loss_terms, theta)
    result = ws.drop_data(1, alpha=0.05)
    assert isinstance(result, DropDataResult)
    assert result.found and 1 <= result.n_dropped <= 10
    assert result.predicted_qoi < 0 < result.qoi
    check = result.refit_check()
    assert isinstance(check, RefitCheck)
    assert check.flipped and check.qoi < 0
    # The set is minimal for the prediction: one fewer is not predicted to
    # flip.
    scores = ws.influence(1)
    fewer = result.indices[:-1]
    assert theta[1] - np.sum(scores[fewer]) > 0
    # The high-leverage points are the ones chosen first.
    assert set(result.indices[:2]) <= {0, 1, 2, 3}


def test_drop_data_significance_with_weight_dependent_se():
    loss_terms, theta, se_fun = _fragile_ols()
    ws = WeightSensitivity(loss_terms, theta)
    se0 = float(se_fun(theta, np.ones(200)))
    result = ws.drop_data(1, alpha=0.1, target="significance", se_fun=se_fun)
    assert result.se == pytest.approx(se0)
    assert result.target_value == pytest.approx(
        theta[1] - np.sign(theta[1]) * 1.96 * se0)
    assert result.found
    assert np.sign(result.predicted_target_value) != \
        np.sign(result.target_value)
    check = result.refit_check()
    assert check.flipped
    # The linearised se (through theta and the weights) agrees with finite
    # differences of re-fits.
    se_infl = ws.total_influence(se_fun)
    for n in [0, 10]:
        wp, wm = np.ones(200), np.ones(200)
        wp[n], wm[n] = 1 + 1e-4, 1 - 1e-4
        fd = (se_fun(ws.refit(wp, gtol=1e-12), wp)
              - se_fun(ws.refit(wm, gtol=1e-12), wm)) / 2e-4
        np.testing.assert_allclose(se_infl[n], fd, rtol=1e-5)
    np.testing.assert_allclose(
        result.predicted_se, se0 - np.sum(se_infl[result.indices]),
        rtol=1e-12)


def test_drop_data_not_found_within_alpha():
    x, y, theta, loss_terms = _ols()
    ws = WeightSensitivity(loss_terms, theta)
    result = ws.drop_data(1, alpha=0.02)     # one observation of fifty
    assert not result.found
    assert result.n_dropped <= 1
    assert result.predicted_qoi > 0


def test_bad_input():
    x, y, theta, loss_terms = _ols()
    with pytest.raises(ValueError, match=r"opt_par\[1\]"):
        WeightSensitivity(loss_terms, np.array([0.0, np.nan]))
    with pytest.raises(ValueError, match="n_obs = 40"):
        WeightSensitivity(loss_terms, theta, n_obs=40)
    with pytest.raises(ValueError, match="1-d vector"):
        WeightSensitivity(lambda t: anp.outer(t, t), theta)
    with pytest.raises(ValueError, match="opt_par is not an optimum"):
        WeightSensitivity(loss_terms, theta + 0.1)
    with pytest.raises(ValueError, match="Hessian"):
        WeightSensitivity(lambda t: -loss_terms(t), theta)
    ws = WeightSensitivity(loss_terms, theta)
    with pytest.raises(ValueError, match="qoi_fun as an index"):
        ws.influence(5)
    with pytest.raises(TypeError, match="qoi_fun"):
        ws.influence("slope")
    with pytest.raises(ValueError, match="qoi_fun must return a finite"):
        ws.influence(lambda t: t)
    with pytest.raises(ValueError, match="alpha"):
        ws.drop_data(1, alpha=0.0)
    with pytest.raises(ValueError, match="target"):
        ws.drop_data(1, target="size")
    with pytest.raises(ValueError, match="se_fun"):
        ws.drop_data(1, target="significance")
    with pytest.raises(ValueError, match=r"weights must have shape \(50,\)"):
        ws.refit(np.ones(49))
    theta_copy = theta.copy()
    ws.influence(1)
    np.testing.assert_array_equal(theta, theta_copy)
