"""Tests of the drop-data searches (refold.sensitivity.drop_data and
refold.sensitivity.ols_drop) against brute force: exhaustive search over
every set, fresh least-squares fits and independent re-fits of GLMs."""
import warnings

import autograd.numpy as anp
import numpy as np
import pytest
import scipy.optimize

from refold.sensitivity.data_weights import WeightSensitivity
from refold.sensitivity.drop_data import (DropPrediction, DropSearchResult,
                                          exhaustive_drop, greedy_drop,
                                          predict_drop)
from refold.sensitivity.ols_drop import OLSDrop
from refold.sensitivity.standard_errors import standard_error_fun
from refold.sensitivity.taylor import TaylorSeriesWarning


def _masking_data():
    """16 points with a negative slope, plus two clusters of two outliers at
    x = +4 and x = -4 on the line y = x / 2: together they make the slope
    positive, and each partner keeps the fit near the other."""
    rng = np.random.default_rng(7)
    x = rng.normal(size=16)
    y = -0.3 * x + 0.5 * rng.normal(size=16)
    xa = 4.0 + 0.05 * rng.normal(size=2)
    ya = 2.0 + 0.05 * rng.normal(size=2)
    x = np.concatenate([x, xa, -xa])
    y = np.concatenate([y, ya, -ya])
    return np.column_stack([np.ones(20), x]), y


def _lstsq_slope(x, y, drop):
    keep = np.setdiff1d(np.arange(len(y)), drop)
    return np.linalg.lstsq(x[keep], y[keep], rcond=None)[0][1]


def test_masking_greedy_finds_the_exhaustive_set_first_order_does_not():
    x, y = _masking_data()
    ols = OLSDrop(x, y)
    assert ols.opt_par[1] > 0
    truth = ols.exhaustive(1, 4)
    assert truth.found and sorted(truth.indices) == [16, 17, 18, 19]
    # Brute force: no set of 3 flips the sign (exhaustive over all 1350
    # sets by fresh least squares), the set of 4 does.
    assert _lstsq_slope(x, y, truth.indices) < 0
    assert not ols.exhaustive(1, 3).found
    # First-order ranking: dropping the top k by the AMIP scores, for any k
    # up to half the data, never flips the sign (checked by fresh fits):
    # one outlier of each cluster has a *negative* score, masked.
    scores = ols.first_order_scores(1)
    order = np.argsort(-scores)
    assert scores[16:].min() < 0
    assert all(_lstsq_slope(x, y, order[:k]) > 0 for k in range(1, 11))
    losses = (lambda t: 0.5 * (y - anp.dot(x, t)) ** 2)
    ws = WeightSensitivity(losses, ols.opt_par)
    amip = ws.drop_data(1, alpha=0.45)
    assert not amip.refit_check().flipped
    # The greedy searches find the smallest set, confirmed by re-fits.
    exact = ols.greedy(1, alpha=0.45)
    general = greedy_drop(ws, 1, alpha=0.45)
    for res in (exact, general):
        assert isinstance(res, DropSearchResult)
        assert res.found and sorted(res.indices) == [16, 17, 18, 19]
        assert res.refit_qoi == pytest.approx(
            _lstsq_slope(x, y, res.indices), rel=1e-8)
        assert res.fraction == pytest.approx(0.2)
        assert res.path_n_dropped[0] == 0 and res.path_n_dropped[-1] == 4
        assert res.path_qoi[0] == pytest.approx(ols.opt_par[1])


@pytest.mark.parametrize("target", ["sign", "significance", "threshold"])
def test_ols_greedy_equals_exhaustive_search(target):
    matched = 0
    for seed in range(12):
        rng = np.random.default_rng(seed)
        x = np.column_stack([np.ones(18), rng.normal(size=18)])
        y = 0.4 * x[:, 1] + rng.standard_t(2, size=18)
        ols = OLSDrop(x, y)
        kw = {"threshold": 0.1} if target == "threshold" else {}
        truth = ols.exhaustive(1, 3, target=target, **kw)
        greedy = ols.greedy(1, alpha=0.45, target=target, **kw)
        if truth.found:
            matched += 1
            assert greedy.found and greedy.n_dropped == truth.n_dropped
        else:
            assert greedy.n_dropped > 3 or not greedy.found
        if greedy.found:                 # brute force: the set flips
            q, se, t = ols.drop_values([greedy.indices], 1, target=target,
                                       **kw)[0]
            assert np.sign(t) != np.sign(greedy.target_value)
            slope = _lstsq_slope(x, y, greedy.indices)
            assert q == pytest.approx(slope, rel=1e-9, abs=1e-12)
    assert matched >= 4


def test_ols_significance_closed_forms_and_large_n():
    rng = np.random.default_rng(5)
    n = 3000
    x = np.column_stack([np.ones(n), rng.normal(size=n)])
    y = 0.08 * x[:, 1] + rng.standard_t(3, size=n)
    groups = rng.integers(0, 60, size=n)
    ols = OLSDrop(x, y, clusters=groups)
    for se in ("model", "sandwich"):
        res = ols.greedy(1, alpha=0.05, target="significance", se=se)
        assert res.found, res.message
        keep = np.setdiff1d(np.arange(n), res.indices)
        xk, yk = x[keep], y[keep]
        theta = np.linalg.lstsq(xk, yk, rcond=None)[0]
        resid = yk - xk @ theta
        inv = np.linalg.inv(xk.T @ xk)
        if se == "model":
            var = resid @ resid / (len(keep) - 2) * inv[1, 1]
        else:
            meat = np.zeros((2, 2))
            for g in np.unique(groups[keep]):
                s = xk[groups[keep] == g].T @ resid[groups[keep] == g]
                meat += np.outer(s, s)
            var = (inv @ meat @ inv)[1, 1]
        assert res.refit_se == pytest.approx(np.sqrt(var), rel=1e-9)
        assert res.refit_qoi == pytest.approx(theta[1], rel=1e-9)
        assert np.sign(theta[1] - np.sign(res.qoi) * 1.959964 *
                       np.sqrt(var)) != np.sign(res.target_value)
        # Greedy beats the one-shot first-order ranking.
        scores = ols.first_order_scores(1, target="significance", se=se)
        order = np.argsort(-np.sign(res.target_value) * scores)
        k = res.n_dropped
        t_fo = ols.drop_values([order[:k - 1]], 1, target="significance",
                               se=se)[0, 2]
        assert np.sign(t_fo) == np.sign(res.target_value) or k == 1


def _glm(kind, n_obs, seed):
    rng = np.random.default_rng(seed)
    x = np.column_stack([np.ones(n_obs), rng.normal(size=n_obs)])
    if kind == "logistic":
        y = (rng.random(n_obs) < 1 / (1 + np.exp(-(0.2 + 0.5 * x[:, 1])))
             ).astype(float)

        def losses(t):
            z = anp.dot(x, t)
            return anp.logaddexp(0, z) - y * z
    else:
        y = rng.poisson(np.exp(0.3 + 0.15 * x[:, 1])).astype(float)

        def losses(t):
            z = anp.dot(x, t)
            return anp.exp(z) - y * z

    def prior(t):
        return 0.005 * anp.sum(t ** 2)
    start = WeightSensitivity(losses, np.zeros(2), prior_fun=prior,
                              validate_optimum=False)
    opt = start.refit(np.ones(n_obs), gtol=1e-12)
    return WeightSensitivity(losses, opt, prior_fun=prior), losses, prior


def _brute_force_refit(losses, prior, drop, n_obs):
    """An independent re-fit (BFGS to tight tolerance) without ``drop``."""
    w = np.ones(n_obs)
    w[drop] = 0.0
    res = scipy.optimize.minimize(
        lambda t: float(np.dot(w, losses(t)) + prior(t)), np.zeros(2),
        method="BFGS", options={"gtol": 1e-10})
    return res.x


@pytest.mark.parametrize("kind,seed", [("logistic", 3), ("poisson", 3)])
def test_glm_greedy_agrees_with_exhaustive_and_brute_force(kind, seed):
    ws, losses, prior = _glm(kind, 16, seed)
    greedy = greedy_drop(ws, 1, alpha=0.4)
    assert greedy.found and greedy.n_dropped == 3
    truth = exhaustive_drop(ws, 1, 3)
    assert truth.found and truth.n_dropped == greedy.n_dropped
    for res in (greedy, truth):
        brute = _brute_force_refit(losses, prior, res.indices, 16)
        np.testing.assert_allclose(res.refit_opt_par, brute, atol=1e-6)
        assert np.sign(brute[1]) != np.sign(ws.opt_par[1])
    # The converged points of the path are the optima without the
    # observations dropped so far (checked by re-fits).
    order = greedy.indices
    assert greedy.path_converged[-1]
    for k, q, conv in zip(greedy.path_n_dropped, greedy.path_qoi,
                          greedy.path_converged):
        if conv:
            brute = _brute_force_refit(losses, prior, order[:k], 16)
            assert q == pytest.approx(brute[1], abs=1e-6)


def test_glm_greedy_significance_at_larger_n():
    ws, losses, prior = _glm("poisson", 400, 0)
    se = standard_error_fun(losses, 1, kind="sandwich", prior_fun=prior)
    res = greedy_drop(ws, 1, alpha=0.1, target="significance", se_fun=se,
                      level=0.1)
    assert res.found, res.message
    brute = _brute_force_refit(losses, prior, res.indices, 400)
    np.testing.assert_allclose(res.refit_opt_par, brute, atol=1e-6)
    w = np.ones(400)
    w[res.indices] = 0.0
    t = brute[1] - np.sign(res.qoi) * 1.644854 * se(brute, w)
    assert np.sign(t) != np.sign(res.target_value)
    assert res.refit_target_value == pytest.approx(t, abs=1e-6)


def test_predict_drop_second_order_beats_first_order():
    ws, losses, prior = _glm("logistic", 60, 11)
    scores = ws.influence(1)
    drop = np.argsort(-np.abs(scores))[:4]
    w = np.ones(60)
    w[drop] = 0.0
    truth = ws.refit(w, gtol=1e-12)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", TaylorSeriesWarning)
        pred = predict_drop(ws, drop, 1, order=3)
    assert isinstance(pred, DropPrediction)
    assert pred.terms_qoi[0] == pytest.approx(ws.opt_par[1] -
                                              scores[drop].sum(), rel=1e-10)
    errors = np.abs(pred.terms_qoi - truth[1])
    assert errors[1] < 0.3 * errors[0] and errors[2] < errors[1]
    np.testing.assert_allclose(pred.opt_par[1], pred.qoi)
    half = predict_drop(ws, np.where(w == 0, 0.5, 1.0), 1, order=2)
    w_half = np.where(w == 0, 0.5, 1.0)
    assert abs(half.qoi - ws.refit(w_half, gtol=1e-12)[1]) < errors[0]


def test_unreachable_and_non_converging_are_reported():
    ws, losses, prior = _glm("logistic", 16, 4)
    res = greedy_drop(ws, 1, alpha=0.2)
    assert not res.found
    assert "cannot be reached by dropping up to floor(alpha * N) = 3" in \
        res.message and "best target value reached" in res.message
    assert abs(res.best_target_value) < abs(res.target_value)
    # Separable data without a prior: after dropping, the MLE runs away.
    x = np.column_stack([np.ones(8), np.arange(8.0) - 3.5])
    y = np.array([0, 0, 0, 1, 0, 1, 1, 1.0])

    def losses2(t):
        z = anp.dot(x, t)
        return anp.logaddexp(0, z) - y * z
    opt = WeightSensitivity(losses2, np.zeros(2), validate_optimum=False
                            ).refit(np.ones(8), gtol=1e-12)
    ws2 = WeightSensitivity(losses2, opt)
    res = greedy_drop(ws2, 1, alpha=0.5, max_newton=20, refit_every=1)
    assert not res.found and not res.refit_converged
    assert "a re-fit did not converge" in res.message
    assert "the final re-fit is not an optimum" in res.message
    none = exhaustive_drop(ws2, 1, 1)
    assert not none.found and "no set of up to 1" in none.message


def test_bad_input():
    x, y = _masking_data()
    losses = (lambda t: 0.5 * (y - anp.dot(x, t)) ** 2)
    ols = OLSDrop(x, y)
    ws = WeightSensitivity(losses, ols.opt_par)
    for alpha in (0.0, 1.0, 1.5, -0.1, "a"):
        with pytest.raises(ValueError, match="alpha"):
            greedy_drop(ws, 1, alpha=alpha)
        with pytest.raises(ValueError, match="alpha"):
            ols.greedy(1, alpha=alpha)
    with pytest.raises(ValueError, match="level"):
        greedy_drop(ws, 1, target="significance", se_fun=lambda t, w: 1.0,
                    level=1.0)
    with pytest.raises(ValueError, match="level"):
        ols.greedy(1, target="significance", level=0)
    with pytest.raises(ValueError, match="does not depend on the param"):
        greedy_drop(ws, lambda t: 0.0 * t[0] + 1.0)
    with pytest.raises(ValueError, match="does not depend on the param"):
        ols.greedy(np.zeros(2))
    with pytest.raises(ValueError, match="threshold"):
        greedy_drop(ws, 1, target="threshold")
    with pytest.raises(ValueError, match="se_fun"):
        greedy_drop(ws, 1, target="significance")
    with pytest.raises(ValueError, match="target must be one of"):
        greedy_drop(ws, 1, target="size")
    with pytest.raises(ValueError, match=r"drop \(as weights\) must be in "
                                         r"\[0, 1\]; drop \(as weights\)\[3\]"):
        predict_drop(ws, np.r_[1.0, 1.0, 1.0, 1.5, np.ones(16)])
    with pytest.raises(ValueError, match=r"must have shape \(20,\)"):
        predict_drop(ws, np.ones(5))
    with pytest.raises(ValueError, match=r"indices must be in \[0, 20\)"):
        predict_drop(ws, np.array([3, 20]))
    with pytest.raises(ValueError, match="max_sets"):
        exhaustive_drop(ws, 1, 5)
    with pytest.raises(TypeError, match="WeightSensitivity"):
        greedy_drop(losses, 1)
    x3 = np.column_stack([x, 3 * x[:, 1] + 1])
    with pytest.raises(ValueError, match=r"\['const', 'x', 'x3'\] are "
                                         r"collinear"):
        OLSDrop(x3, y, names=["const", "x", "x3"])
    with pytest.raises(ValueError, match=r"x must be an \(N, D\) design"):
        OLSDrop(x[:2], y[:2])


def test_random_effects_model_with_the_arrowhead_solver():
    """A logistic model with a random intercept per group (MAP): the greedy
    search on the structured (Schur-complement) Hessian finds the set the
    dense one does, and re-fits confirm it."""
    rng = np.random.default_rng(2)
    n_groups, per = 25, 8
    n_obs = n_groups * per
    group = np.repeat(np.arange(n_groups), per)
    x = np.column_stack([np.ones(n_obs), rng.normal(size=n_obs)])
    b_true = 0.7 * rng.normal(size=n_groups)
    y = (rng.random(n_obs) < 1 / (1 + np.exp(
        -(x @ np.array([0.1, 0.35]) + b_true[group])))).astype(float)

    def losses(t):
        z = anp.dot(x, t[:2]) + t[2:][group]
        return anp.logaddexp(0, z) - y * z

    def prior(t):
        return 0.5 * anp.sum(t[2:] ** 2) + 0.005 * anp.sum(t[:2] ** 2)
    start = WeightSensitivity(losses, np.zeros(2 + n_groups), prior_fun=prior,
                              validate_optimum=False)
    ws = WeightSensitivity(losses, start.refit(np.ones(n_obs), gtol=1e-12),
                           prior_fun=prior)
    local = (2 + np.arange(n_groups)).reshape(n_groups, 1)
    dense = greedy_drop(ws, 1, alpha=0.1)
    structured = greedy_drop(ws, 1, alpha=0.1, solver="arrowhead",
                             solver_options={"local_inds": local})
    assert dense.found and structured.found
    np.testing.assert_array_equal(np.sort(dense.indices),
                                  np.sort(structured.indices))
    np.testing.assert_allclose(structured.path_qoi, dense.path_qoi,
                               rtol=1e-8, atol=1e-10)
    w = np.ones(n_obs)
    w[structured.indices] = 0.0
    refit = scipy.optimize.minimize(
        lambda t: float(np.dot(w, losses(t)) + prior(t)),
        structured.refit_opt_par + 0.01, method="BFGS",
        options={"gtol": 1e-9}).x
    np.testing.assert_allclose(structured.refit_opt_par, refit, atol=1e-5)
    assert np.sign(refit[1]) != np.sign(ws.opt_par[1])
    with pytest.raises(TypeError, match="local_inds"):
        greedy_drop(ws, 1, solver="arrowhead")


def test_auto_solver_uses_the_detected_arrowhead_structure():
    """At D = 252 the default solver='auto' detects the random-effects
    (arrowhead) structure, and the search matches the explicit arrowhead
    solver; an independent L-BFGS re-fit confirms the flip."""
    import autograd
    rng = np.random.default_rng(2)
    n_groups, per = 250, 4
    n_obs = n_groups * per
    group = np.repeat(np.arange(n_groups), per)
    x = np.column_stack([np.ones(n_obs), rng.normal(size=n_obs)])
    b_true = 0.7 * rng.normal(size=n_groups)
    y = (rng.random(n_obs) < 1 / (1 + np.exp(
        -(x @ np.array([0.1, 0.2]) + b_true[group])))).astype(float)

    def losses(t):
        z = anp.dot(x, t[:2]) + t[2:][group]
        return anp.logaddexp(0, z) - y * z

    def prior(t):
        return 0.5 * anp.sum(t[2:] ** 2) + 0.005 * anp.sum(t[:2] ** 2)
    start = WeightSensitivity(losses, np.zeros(2 + n_groups),
                              prior_fun=prior, validate_optimum=False,
                              solver="cg")
    ws = WeightSensitivity(losses, start.refit(np.ones(n_obs), gtol=1e-10),
                           prior_fun=prior)
    assert ws.structure.kind == "arrowhead"
    auto = greedy_drop(ws, 1, alpha=0.1)
    local = (2 + np.arange(n_groups)).reshape(n_groups, 1)
    explicit = greedy_drop(ws, 1, alpha=0.1, solver="arrowhead",
                           solver_options={"local_inds": local})
    assert auto.found and explicit.found
    np.testing.assert_array_equal(auto.indices, explicit.indices)
    w = np.ones(n_obs)
    w[auto.indices] = 0.0

    def objective(t):          # written out in numpy, with its gradient
        z = x @ t[:2] + t[2:][group]
        resid = w * (1 / (1 + np.exp(-z)) - y)
        value = np.dot(w, np.logaddexp(0, z) - y * z) + 0.5 * np.sum(
            t[2:] ** 2) + 0.005 * np.sum(t[:2] ** 2)
        grad = np.concatenate([x.T @ resid + 0.01 * t[:2],
                               np.bincount(group, resid, n_groups) + t[2:]])
        return value, grad
    brute = scipy.optimize.minimize(objective, np.zeros(2 + n_groups),
                                    jac=True, method="L-BFGS-B",
                                    options={"gtol": 1e-10, "ftol": 1e-15,
                                             "maxiter": 5000}).x
    np.testing.assert_allclose(auto.refit_opt_par[:2], brute[:2], atol=1e-5)
    assert np.sign(brute[1]) != np.sign(ws.opt_par[1])
