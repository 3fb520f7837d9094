"""Tests of refold.sensitivity.ee_weights (instrumental variables as an
estimating equation) against the closed form (Z'WX)^-1 Z'Wy: influence by
finite differences of it, drop-data searches by brute-force enumeration,
the robust IV standard error by its formula."""
import itertools

import numpy as np
import pytest

from refold.sensitivity.drop_data import exhaustive_drop, greedy_drop
from refold.sensitivity.ee_weights import EstimatingEquationWeights
from refold.sensitivity.standard_errors import (moment_sandwich_covariance,
                                                standard_error_fun)


def _iv(n_obs, seed=0, beta=0.15):
    rng = np.random.default_rng(seed)
    z1 = rng.normal(size=n_obs)
    common = rng.normal(size=n_obs)            # makes x endogenous
    x1 = 0.8 * z1 + common + 0.3 * rng.normal(size=n_obs)
    y = 0.1 + beta * x1 + common + rng.standard_t(3, size=n_obs)
    x = np.column_stack([np.ones(n_obs), x1])
    z = np.column_stack([np.ones(n_obs), z1])
    return x, y, z


def _closed(x, y, z, w):
    return np.linalg.solve((z.T * w) @ x, (z.T * w) @ y)


def test_influence_and_refit_match_the_closed_form():
    x, y, z = _iv(80)
    ee = EstimatingEquationWeights.linear_iv(x, y, z)
    ones = np.ones(80)
    np.testing.assert_allclose(ee.opt_par, _closed(x, y, z, ones))
    scores = ee.influence(1)
    h = 1e-6
    for n in (0, 17, 55):
        e = np.zeros(80)
        e[n] = h
        fd = (_closed(x, y, z, ones + e)[1] - _closed(x, y, z, ones - e)[1]
              ) / (2 * h)
        assert scores[n] == pytest.approx(fd, rel=1e-6, abs=1e-10)
    w = ones.copy()
    w[:5] = 0.0
    np.testing.assert_allclose(ee.refit(w), _closed(x, y, z, w), rtol=1e-10)
    np.testing.assert_allclose(ee.influence(lambda t: t[0] * t[1]),
                               ee.opt_par[1] * ee.influence(0)
                               + ee.opt_par[0] * scores, rtol=1e-10)


def test_robust_iv_standard_error_matches_the_formula():
    x, y, z = _iv(120, seed=2)
    ee = EstimatingEquationWeights.linear_iv(x, y, z)
    theta = ee.opt_par
    resid = y - x @ theta
    zx_inv = np.linalg.inv(z.T @ x)
    expected = zx_inv @ (z.T * resid ** 2) @ z @ zx_inv.T
    np.testing.assert_allclose(
        moment_sandwich_covariance(ee.moment_fun, theta), expected,
        rtol=1e-10)
    groups = np.arange(120) % 9
    meat = sum(np.outer(z[groups == g].T @ resid[groups == g],
                        z[groups == g].T @ resid[groups == g])
               for g in range(9))
    np.testing.assert_allclose(
        moment_sandwich_covariance(ee.moment_fun, theta, clusters=groups),
        zx_inv @ meat @ zx_inv.T, rtol=1e-10)
    se = standard_error_fun(ee.moment_fun, 1, kind="moment")
    assert se(theta, np.ones(120)) == pytest.approx(np.sqrt(expected[1, 1]))


def test_iv_greedy_equals_brute_force_enumeration():
    x, y, z = _iv(14, seed=3, beta=0.3)
    ee = EstimatingEquationWeights.linear_iv(x, y, z)
    sign = np.sign(ee.opt_par[1])
    truth = None
    for size in (1, 2, 3):
        for combo in itertools.combinations(range(14), size):
            w = np.ones(14)
            w[list(combo)] = 0.0
            if np.sign(_closed(x, y, z, w)[1]) != sign:
                truth = combo
                break
        if truth:
            break
    assert truth is not None
    exhaustive = exhaustive_drop(ee, 1, 3)
    assert exhaustive.found and tuple(exhaustive.indices) == truth
    greedy = greedy_drop(ee, 1, alpha=0.4)
    assert greedy.found and greedy.n_dropped == len(truth)
    w = np.ones(14)
    w[greedy.indices] = 0.0
    np.testing.assert_allclose(greedy.refit_opt_par, _closed(x, y, z, w),
                               rtol=1e-8)


def test_iv_greedy_significance_at_larger_n():
    x, y, z = _iv(600, seed=4, beta=0.25)
    ee = EstimatingEquationWeights.linear_iv(x, y, z)
    se = standard_error_fun(ee.moment_fun, 1, kind="moment")
    res = greedy_drop(ee, 1, alpha=0.05, target="significance", se_fun=se)
    assert res.found, res.message
    w = np.ones(600)
    w[res.indices] = 0.0
    theta = _closed(x, y, z, w)
    resid = y - x @ theta
    zx_inv = np.linalg.inv((z.T * w) @ x)
    var = (zx_inv @ (z.T * (w * resid ** 2)) @ z @ zx_inv.T)[1, 1]
    t = theta[1] - np.sign(res.qoi) * 1.959964 * np.sqrt(var)
    assert np.sign(t) != np.sign(res.target_value)
    assert res.refit_target_value == pytest.approx(t, abs=1e-6)


def test_bad_input():
    x, y, z = _iv(40)
    # An instrument exactly orthogonal to the regressors identifies nothing.
    r = np.random.default_rng(0).normal(size=40)
    r -= x @ np.linalg.lstsq(x, r, rcond=None)[0]
    with pytest.raises(ValueError, match="instruments do not identify"):
        EstimatingEquationWeights.linear_iv(x, y, np.column_stack([z[:, 0],
                                                                   r]))
    with pytest.raises(ValueError, match=r"\['x\[:, 0\]', 'x\[:, 1\]'\] are "
                                         r"collinear"):
        EstimatingEquationWeights.linear_iv(
            np.column_stack([x[:, 0], 2 * x[:, 0]]), y, z)
    with pytest.raises(ValueError, match=r"must be \(N, D\)"):
        EstimatingEquationWeights.linear_iv(x, y, z[:, :1])
    ee = EstimatingEquationWeights.linear_iv(x, y, z)
    with pytest.raises(ValueError, match="not a root"):
        EstimatingEquationWeights(ee.moment_fun, ee.opt_par + 0.1)
    with pytest.raises(ValueError, match=r"\(N, 2\) matrix"):
        EstimatingEquationWeights(lambda t: t, ee.opt_par)
    with pytest.raises(ValueError, match="weights"):
        ee.refit(np.ones(3))
    with pytest.raises(TypeError, match="solver"):
        greedy_drop(ee, 1, solver="cg")
