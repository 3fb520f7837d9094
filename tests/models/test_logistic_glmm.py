"""Tests for refold.models.logistic_glmm against independent truths:
autograd's dense Hessian and Jacobians, finite differences, a trust-ncg
re-fit, Monte Carlo expectations under q, and the exact posterior by
importance sampling from a Laplace (multivariate t) proposal."""
import autograd
import autograd.numpy as anp
import numpy as np
import pytest
import scipy.special
import scipy.stats
from autograd.test_util import check_grads

from refold.models.logistic_glmm import (
    GLMMData, GLMMObjective, GLMMPrior, fit, make_group_ops, simulate,
    vb_pattern)
from refold.sensitivity.newton import damped_newton_step
from refold.sensitivity.refit import refit
from refold.sensitivity.solvers import RefoldWarning


def confounded_data(seed, n_obs, n_groups, n_fixed):
    """Covariates with a group-level component, so beta and u are
    correlated a posteriori and mean-field VB under-states sd(beta)."""
    rng = np.random.default_rng(seed)
    group = np.arange(n_obs) % n_groups
    x = (0.8 * rng.standard_normal((n_groups, n_fixed))[group]
         + 0.6 * rng.standard_normal((n_obs, n_fixed)))
    beta = np.linspace(0.8, -0.5, n_fixed)
    u = -0.3 + 0.7 * rng.standard_normal(n_groups)
    y = rng.uniform(size=n_obs) < scipy.special.expit(x @ beta + u[group])
    return GLMMData(x, y, group, n_groups)


@pytest.fixture(scope="module")
def small_fit():
    data = simulate(2000, 50, 3, rng=0)
    return fit(data)


@pytest.fixture(scope="module")
def tiny_objective():
    data = confounded_data(1, 120, 6, 2)
    objective = GLMMObjective(data, num_quadrature=6)
    rng = np.random.default_rng(2)
    x = objective.initial_free_par() + 0.3 * rng.standard_normal(
        objective.pattern.flat_length(True))
    return objective, x


# --------------------------------------------------------------- primitives
def test_group_ops_values_and_derivatives():
    rng = np.random.default_rng(0)
    group = rng.integers(0, 7, size=40)
    gather, group_sum = make_group_ops(group, 7)
    u, r = rng.standard_normal(7), rng.standard_normal(40)
    np.testing.assert_array_equal(gather(u), u[group])
    np.testing.assert_allclose(group_sum(r),
                               np.bincount(group, weights=r, minlength=7))
    check_grads(lambda v: anp.sum(anp.sin(gather(v)) ** 2), modes=["fwd", "rev"],
                order=2)(u)
    check_grads(lambda v: anp.sum(anp.exp(group_sum(v) / 3.0)),
                modes=["fwd", "rev"], order=2)(r)


def test_objective_derivatives_forward_and_reverse(tiny_objective):
    objective, x = tiny_objective
    check_grads(objective, modes=["fwd", "rev"], order=2)(x)


def test_objective_is_negative_elbo_by_monte_carlo():
    """-objective = E_q[log p(y, theta)] - E_q[log q(theta)], estimated by
    sampling q (normals and a gamma) and evaluating the log joint exactly."""
    data = confounded_data(4, 60, 3, 2)
    prior = GLMMPrior(beta_var=4.0, mu_var=9.0, tau_shape=3.0, tau_rate=2.0)
    objective = GLMMObjective(data, prior, num_quadrature=20)
    vb = objective.pattern.random(rng=5)
    vb["beta_var"] = 0.05 * vb["beta_var"]
    vb["u_var"] = 0.1 * vb["u_var"]
    vb["mu_var"] = np.array([0.02])
    vb["tau_shape"], vb["tau_rate"] = np.array([40.0]), np.array([25.0])
    rng = np.random.default_rng(6)
    n = 200_000
    sd = {k: np.sqrt(vb[k.replace("mean", "var")]) for k in
          ("beta_mean", "mu_mean", "u_mean")}
    beta = vb["beta_mean"] + sd["beta_mean"] * rng.standard_normal((n, 2))
    mu = vb["mu_mean"] + sd["mu_mean"] * rng.standard_normal((n, 1))
    u = vb["u_mean"] + sd["u_mean"] * rng.standard_normal((n, 3))
    tau = rng.gamma(vb["tau_shape"], 1.0 / vb["tau_rate"], size=(n, 1))
    z = beta @ data.x.T + u[:, data.group]
    norm = scipy.stats.norm
    log_joint = (np.sum(data.y * z - np.logaddexp(0.0, z), axis=1)
                 + np.sum(norm.logpdf(u, mu, 1.0 / np.sqrt(tau)), axis=1)
                 + np.sum(norm.logpdf(beta, 0.0, 2.0), axis=1)
                 + norm.logpdf(mu[:, 0], 0.0, 3.0)
                 + scipy.stats.gamma.logpdf(tau[:, 0], 3.0, scale=0.5))
    # The entropy of q from scipy's own formulas; E_q[log p] by sampling.
    entropy = (np.sum(norm(vb["beta_mean"], sd["beta_mean"]).entropy())
               + np.sum(norm(vb["mu_mean"], sd["mu_mean"]).entropy())
               + np.sum(norm(vb["u_mean"], sd["u_mean"]).entropy())
               + scipy.stats.gamma(vb["tau_shape"][0],
                                   scale=1.0 / vb["tau_rate"][0]).entropy())
    se = log_joint.std() / np.sqrt(n)
    elbo = log_joint.mean() + entropy
    value = objective.kl(vb)
    assert abs(-value - elbo) < 4 * se
    # The free-vector objective is the same function.
    free = objective.pattern.flatten(vb, free=True)
    assert np.isclose(objective(free), value, rtol=1e-12)


# ----------------------------------------------------------- structure
def test_layout_globals_and_locals():
    data = simulate(300, 8, 5, rng=3)
    objective = GLMMObjective(data)
    assert len(objective.global_inds) == 14 and objective.num_hvps == 16
    np.testing.assert_array_equal(objective.global_inds, np.arange(14))
    np.testing.assert_array_equal(
        objective.local_inds, 14 + np.stack([np.arange(8), 8 + np.arange(8)], 1))
    assert objective.pattern == vb_pattern(5, 8)


def test_structured_hessian_equals_autograd_hessian(tiny_objective, small_fit):
    objective, x = tiny_objective
    dense = autograd.hessian(objective)(x)
    structured = objective.hessian(x).to_sparse().toarray()
    np.testing.assert_allclose(structured, dense, rtol=1e-9,
                               atol=1e-9 * np.abs(dense).max())
    # And at an optimum.
    obj, opt = small_fit.objective, small_fit.opt_par
    dense = autograd.hessian(obj)(opt)
    np.testing.assert_allclose(small_fit.hessian.to_sparse().toarray(), dense,
                               rtol=1e-9, atol=1e-9 * np.abs(dense).max())


# ----------------------------------------------------------- the optimum
def test_optimum_matches_independent_refit(small_fit):
    objective, opt = small_fit.objective, small_fit.opt_par
    report = small_fit.optimizer_report
    assert report.converged and report.num_hvps_per_hessian == (2 * 3 + 4) + 2
    grad = autograd.grad(objective)(opt)
    assert np.max(np.abs(grad)) < 1e-8
    assert small_fit.optimum_report.ok
    start = opt + 0.05 * np.random.default_rng(7).standard_normal(opt.size)
    other = refit(objective, start, gtol=1e-9)
    np.testing.assert_allclose(small_fit.opt_par, other.x, atol=1e-7)
    assert small_fit.neg_elbo <= other.fun + 1e-9 * abs(other.fun)


def test_fit_attributes_are_consistent(small_fit):
    f = small_fit
    vb = f.pattern.fold(f.opt_par, free=True)
    np.testing.assert_allclose(f.beta_mean, vb["beta_mean"])
    np.testing.assert_allclose(f.u_sd, np.sqrt(vb["u_var"]))
    assert np.isclose(f.tau_mean, vb["tau_shape"][0] / vb["tau_rate"][0])
    assert np.isclose(f.tau_sd, np.sqrt(vb["tau_shape"][0]) / vb["tau_rate"][0])
    assert f.lr_beta_cov.shape == (3, 3) and f.lr_u_sd.shape == (50,)
    assert set(f.timings) >= {"mfvb", "hessian", "lr", "lr_total", "total"}
    # The simulated truth is recovered within a few LR sds.
    assert np.all(np.abs(f.beta_mean - f.data.true_beta) < 4 * f.lr_beta_sd)


def test_lr_equals_dense_j_hinv_jt(small_fit):
    """LR blocks by Schur complement = J H^-1 J^T with autograd's dense
    Hessian and the autograd Jacobian of the moments."""
    f = small_fit
    pattern = f.pattern

    def moments(free):
        vb = pattern.fold(free, free=True)
        return anp.concatenate([vb["beta_mean"], vb["mu_mean"],
                                vb["tau_shape"] / vb["tau_rate"], vb["u_mean"]])

    jac = autograd.jacobian(moments)(f.opt_par)
    np.testing.assert_allclose(f.moment_jacobian.toarray(), jac, atol=1e-12)
    hess = autograd.hessian(f.objective)(f.opt_par)
    cov = jac @ np.linalg.solve(hess, jac.T)
    np.testing.assert_allclose(f.lr_global_cov, cov[:5, :5], rtol=1e-8)
    np.testing.assert_allclose(f.lr_beta_cov, cov[:3, :3], rtol=1e-8)
    np.testing.assert_allclose(f.lr_u_sd, np.sqrt(np.diag(cov)[5:]),
                               rtol=1e-8)


# ------------------------------------------- LR vs the exact posterior (IS)
def log_posterior(theta, data, prior):
    """Unnormalised log p(beta, u, mu, log tau | y), rows of theta."""
    k, t = data.n_fixed, data.n_groups
    beta, u = theta[:, :k], theta[:, k:k + t]
    mu, log_tau = theta[:, k + t], theta[:, k + t + 1]
    tau = anp.exp(log_tau)
    z = anp.dot(beta, data.x.T) + u[:, data.group]
    return (anp.sum(data.y * z - anp.logaddexp(0.0, z), axis=1)
            + 0.5 * t * log_tau
            - 0.5 * tau * anp.sum((u - mu[:, None]) ** 2, axis=1)
            - 0.5 * anp.sum(beta ** 2, axis=1) / prior.beta_var
            - 0.5 * mu ** 2 / prior.mu_var
            + prior.tau_shape * log_tau - prior.tau_rate * tau)


def test_library_log_posterior_matches_independent_copy():
    from refold.models.logistic_glmm import log_posterior as library
    data = confounded_data(4, 60, 5, 2)
    prior = GLMMPrior(beta_var=3.0, mu_var=2.0, tau_shape=1.5, tau_rate=0.5)
    theta = np.random.default_rng(0).standard_normal((7, 2 + 5 + 2))
    np.testing.assert_allclose(library(theta, data, prior),
                               log_posterior(theta, data, prior), rtol=1e-13)
    with pytest.raises(ValueError, match=r"theta: expected an array of "
                                         r"shape \(S, 9\)"):
        library(theta[:, :-1], data, prior)
    with pytest.raises(TypeError, match="data: expected a GLMMData"):
        library(theta, "data", prior)


def weighted_cov(draws, weights):
    weights = weights / weights.sum()
    centred = draws - weights @ draws
    return (centred * weights[:, None]).T @ centred


def test_lr_covariance_matches_importance_sampling_posterior():
    data = confounded_data(3, 500, 10, 2)
    prior = GLMMPrior()
    result = fit(data, prior=prior)
    k, t = 2, 10
    dim = k + t + 2

    def neg_log_post(theta):
        return -log_posterior(theta[None, :], data, prior)[0]

    start = np.concatenate([result.beta_mean, result.u_mean,
                            [result.mu_mean, np.log(result.tau_mean)]])
    mode = refit(neg_log_post, start, gtol=1e-9).x
    laplace = np.linalg.inv(autograd.hessian(neg_log_post)(mode))
    rng = np.random.default_rng(11)
    num_draws, df = 100_000, 6
    chol = np.linalg.cholesky(laplace)
    draws = mode + (rng.standard_normal((num_draws, dim)) @ chol.T) / np.sqrt(
        rng.chisquare(df, num_draws) / df)[:, None]
    log_q = scipy.stats.multivariate_t(mode, laplace, df=df).logpdf(draws)
    log_p = np.concatenate([log_posterior(draws[i:i + 10_000], data, prior)
                            for i in range(0, num_draws, 10_000)])
    log_w = log_p - log_q
    weights = np.exp(log_w - log_w.max())
    ess = weights.sum() ** 2 / np.sum(weights ** 2)
    assert ess > 2000, f"importance sampling too degenerate (ESS {ess:.0f})"
    is_cov = weighted_cov(draws[:, :k], weights)
    num_batches = 20
    batch = np.stack([weighted_cov(draws[i::num_batches, :k],
                                   weights[i::num_batches])
                      for i in range(num_batches)])
    mc_se = batch.std(axis=0, ddof=1) / np.sqrt(num_batches)
    is_sd = np.sqrt(np.diag(is_cov))
    bias = 0.03 * np.outer(is_sd, is_sd)
    assert np.all(np.abs(result.lr_beta_cov - is_cov) <= 4 * mc_se + bias), (
        result.lr_beta_cov, is_cov, mc_se)
    # Mean-field VB badly under-states the posterior sds; LR repairs them.
    assert np.all(result.beta_sd < 0.85 * is_sd)
    assert np.all(np.abs(result.lr_beta_sd / is_sd - 1.0) < 0.05)
    # LR sds of the random effects (not guaranteed by theory, but close here).
    is_u_sd = np.sqrt(np.diag(weighted_cov(draws[:, k:k + t], weights)))
    assert np.all(np.abs(result.lr_u_sd / is_u_sd - 1.0) < 0.08)
    assert (np.mean(np.abs(result.lr_u_sd - is_u_sd))
            < 0.5 * np.mean(np.abs(result.u_sd - is_u_sd)))


# ----------------------------------------------------------- convergence
def test_damped_newton_from_an_indefinite_start():
    data = simulate(400, 10, 2, rng=1)
    objective = GLMMObjective(data)
    reference = fit(data, compute_lr=False)
    rng = np.random.default_rng(0)
    for _ in range(50):
        start = 3.0 * rng.standard_normal(reference.opt_par.size)
        dense = autograd.hessian(objective)(start)
        if np.linalg.eigvalsh(dense)[0] < 0:
            break
    else:
        pytest.fail("no indefinite starting point found")
    grad = autograd.grad(objective)(start)
    step, shift = damped_newton_step(objective.hessian(start), grad, 0.0)
    assert shift > 0 and grad @ step < 0
    expected = -np.linalg.solve(dense + shift * np.eye(len(start)), grad)
    np.testing.assert_allclose(step, expected, rtol=1e-8,
                               atol=1e-10 * np.abs(expected).max())
    result = fit(data, init_par=start, compute_lr=False)
    assert result.optimizer_report.converged
    np.testing.assert_allclose(result.opt_par, reference.opt_par, atol=1e-7)


def test_non_convergence_warns_and_skips_lr():
    data = simulate(400, 10, 2, rng=1)
    with pytest.warns(RefoldWarning, match="did not converge"):
        result = fit(data, max_iter=1)
    assert not result.optimizer_report.converged
    assert result.lr_beta_cov is None and result.lr_u_sd is None


def test_init_par_and_compute_lr_false():
    data = simulate(400, 10, 2, rng=1)
    first = fit(data, compute_lr=False)
    assert first.lr_beta_cov is None and "hessian" not in first.timings
    again = fit(data, init_par=first.opt_par)
    assert again.optimizer_report.iterations <= 2
    np.testing.assert_allclose(again.opt_par, first.opt_par, atol=1e-8)


# ----------------------------------------------------------- bad input
@pytest.fixture
def good():
    rng = np.random.default_rng(0)
    return dict(x=rng.standard_normal((20, 2)),
                y=(rng.uniform(size=20) < 0.5).astype(float),
                group=np.arange(20) % 4)


@pytest.mark.parametrize("key, value, match", [
    ("x", np.zeros(20), "x: expected a 2-dimensional array"),
    ("x", np.zeros((0, 2)), "x: expected at least one row"),
    ("x", np.full((20, 2), "a"), "x: expected real numbers"),
    ("y", np.zeros(19), r"y: expected one entry per row of x \(20\)"),
    ("y", np.zeros((20, 1)), "y: expected a 1-dimensional array"),
    ("y", np.r_[np.zeros(19), 2.0], r"y must hold only 0 and 1; y\[19\] is 2"),
    ("group", np.arange(19) % 4, r"group: expected shape \(20,\)"),
    ("group", (np.arange(20) % 4).astype(str), "group: expected integer "
                                                "group indices"),
    ("group", np.r_[np.arange(19) % 4, 0.5], r"group: expected integer "
                                             r"group indices, got group\[19\]"),
    ("group", np.r_[np.arange(19) % 4, -1], r"group: expected non-negative "
                                            r"indices, group\[19\] is -1"),
])
def test_bad_data(good, key, value, match):
    good[key] = value
    with pytest.raises((ValueError, TypeError), match=match):
        GLMMData(**good)


def test_bad_group_ops():
    with pytest.raises(ValueError, match=r"group: expected indices in \[0, "
                                         r"n_groups\) = \[0, 3\), group\[1\] "
                                         r"is 3"):
        make_group_ops(np.array([0, 3]), 3)
    with pytest.raises(ValueError, match="group: expected a 1-d array of "
                                         "integer"):
        make_group_ops(np.array([0.0, 1.0]), 3)
    with pytest.raises(ValueError, match="n_groups: expected an int >= 1"):
        make_group_ops(np.array([0]), 0)


def test_bad_data_nan_and_range(good):
    x = good["x"].copy()
    x[3, 1] = np.nan
    with pytest.raises(ValueError, match=r"x\[3, 1\] is nan; expected finite"):
        GLMMData(x, good["y"], good["group"])
    y = good["y"].copy()
    y[5] = np.nan
    with pytest.raises(ValueError, match=r"y\[5\] is nan; expected finite"):
        GLMMData(good["x"], y, good["group"])
    group = good["group"].astype(float)
    group[2] = np.nan
    with pytest.raises(ValueError, match=r"group\[2\] is nan; expected finite "
                                         r"integer"):
        GLMMData(good["x"], good["y"], group)
    with pytest.raises(ValueError, match=r"group: expected indices in \[0, "
                                         r"n_groups\) = \[0, 3\), group\[3\] "
                                         r"is 3"):
        GLMMData(good["x"], good["y"], good["group"], n_groups=3)
    with pytest.raises(ValueError, match="n_groups: expected an int >= 1"):
        GLMMData(good["x"], good["y"], good["group"], n_groups=0)


def test_inputs_not_mutated_and_copied(good):
    before = {k: v.copy() for k, v in good.items()}
    data = GLMMData(**good)
    data.x[0, 0] = 99.0
    for key in good:
        np.testing.assert_array_equal(good[key], before[key])
    assert GLMMData(good["x"], good["y"].astype(bool), good["group"]).y.dtype \
        == float


def test_bad_fit_and_simulate_arguments(good):
    data = GLMMData(**good)
    with pytest.raises(TypeError, match="data must be a GLMMData"):
        fit(good)
    with pytest.raises(ValueError, match=r"prior\['tau_shape'\] must be a "
                                         r"finite positive"):
        fit(data, prior={"tau_shape": -1.0})
    with pytest.raises(ValueError, match="prior has unknown keys"):
        fit(data, prior={"tau_scale": 1.0})
    with pytest.raises(TypeError, match="prior must be None, a dict or a "
                                        "GLMMPrior"):
        fit(data, prior=[1.0, 2.0])
    with pytest.raises(ValueError, match="num_quadrature: expected an int >= "
                                         "1"):
        fit(data, num_quadrature=0)
    with pytest.raises(ValueError, match=r"init_par must have shape \(16,\)"):
        fit(data, init_par=np.zeros(5))
    with pytest.raises(ValueError, match=r"init_par\[0\] is nan; expected "
                                         r"finite"):
        fit(data, init_par=np.full(16, np.nan))
    with pytest.raises(ValueError, match="tol: expected a number in"):
        fit(data, tol=0.0)
    with pytest.raises(TypeError, match="max_iter: expected an int"):
        fit(data, max_iter=2.5)
    with pytest.raises(TypeError, match="compute_lr: expected True or False"):
        fit(data, compute_lr="yes")
    with pytest.raises(ValueError, match="n_obs: expected an int >= 10"):
        simulate(5, 10)
    with pytest.raises(ValueError, match=r"beta must have shape \(3,\)"):
        simulate(50, 5, 3, beta=[1.0, 2.0])
    with pytest.raises(ValueError, match="tau: expected a positive finite"):
        simulate(50, 5, 3, tau=-1.0)
    with pytest.raises(TypeError, match="rng: expected None, an int seed"):
        simulate(50, 5, 3, rng="seed")


def test_simulate_shapes_and_reproducibility():
    a, b = simulate(300, 20, 4, rng=5), simulate(300, 20, 4, rng=5)
    np.testing.assert_array_equal(a.y, b.y)
    assert a.x.shape == (300, 4) and a.true_u.shape == (20,)
    assert np.all(np.bincount(a.group, minlength=20) >= 1)
    assert set(np.unique(a.y)) <= {0.0, 1.0}
