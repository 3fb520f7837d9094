"""Random-intercept LMM: the closed-form marginal likelihood is the dense
multivariate normal, EM reaches its maximum, and the EM-fix covariance is its
inverse Hessian (finite differences) with the GLS covariance for beta."""
import autograd
import numpy as onp
import pytest
import scipy.linalg
import scipy.stats

from refold.models import mixed_model as mm
from refold.sensitivity.refit import refit
from tests.models._truths import fd_hessian, max_rel_diff

BETA = [1.0, -0.5, 0.3]


@pytest.fixture(scope="module")
def data():
    sizes = onp.random.default_rng(11).integers(2, 8, size=40)
    return mm.simulate(40, sizes, BETA, 0.8, 0.6, rng=12)


@pytest.fixture(scope="module")
def result(data):
    return mm.fit(data)


def dense_cov(data, sigma_u_sq, sigma_sq):
    """V = blockdiag(sigma^2 I + sigma_u^2 11') built densely."""
    blocks = [sigma_sq * onp.eye(n) + sigma_u_sq * onp.ones((n, n))
              for n in data.group_sizes]
    return scipy.linalg.block_diag(*blocks)


def free_objective(result, data):
    pattern = result.theta_pattern
    return lambda free: -mm.marginal_log_likelihood(
        pattern.fold(free, free=True), data)


# ----------------------------------------------------------------------
# Simulation, data and the closed forms.

def test_simulate_shapes_sizes_and_reproducibility():
    first = mm.simulate(4, [2, 3, 1, 2], [1.0, 0.5], 1.0, 0.5, rng=0)
    again = mm.simulate(4, [2, 3, 1, 2], [1.0, 0.5], 1.0, 0.5,
                        rng=onp.random.default_rng(0))
    assert first.x.shape == (8, 2) and onp.all(first.x[:, 0] == 1)
    assert onp.array_equal(first.group, [0, 0, 1, 1, 1, 2, 3, 3])
    assert onp.array_equal(first.group_sizes, [2, 3, 1, 2])
    assert onp.array_equal(first.y, again.y)
    equal = mm.simulate(3, 4, [0.0], 1.0, 1.0, rng=1)
    assert onp.array_equal(equal.group_sizes, [4, 4, 4])
    assert onp.allclose(first.group_sum_x[1], first.x[2:5].sum(axis=0))
    assert onp.isclose(first.group_sum_y[3], first.y[6:].sum())


def test_simulated_moments():
    big = mm.simulate(4000, 5, [2.0, 1.0], 0.7, 0.4, rng=3)
    resid = big.y - big.x @ onp.array([2.0, 1.0])
    assert abs(onp.var(big.u) - 0.49) < 0.03
    assert abs(onp.var(resid - big.u[big.group]) - 0.16) < 0.01


def test_marginal_log_likelihood_is_the_dense_normal(data):
    rng = onp.random.default_rng(5)
    for _ in range(3):
        theta = {"beta": rng.standard_normal(3),
                 "sigma_u_sq": onp.array([rng.uniform(0.1, 2)]),
                 "sigma_sq": onp.array([rng.uniform(0.1, 2)])}
        dense = scipy.stats.multivariate_normal(
            data.x @ theta["beta"],
            dense_cov(data, theta["sigma_u_sq"][0], theta["sigma_sq"][0]))
        assert onp.isclose(mm.marginal_log_likelihood(theta, data),
                           dense.logpdf(data.y), rtol=1e-12)


def test_e_step_is_the_exact_posterior(data, result):
    theta = result.estimates
    su2, s2 = result.sigma_u_sq, result.sigma_sq
    post = mm.e_step(theta, data)
    # Gaussian conditioning: u_i | y_i with Cov(u_i, y_i) = su2 1'.
    for i in (0, 17, 39):
        rows = data.group == i
        n = rows.sum()
        cov_y = s2 * onp.eye(n) + su2 * onp.ones((n, n))
        gain = onp.linalg.solve(cov_y, su2 * onp.ones(n))
        resid = data.y[rows] - data.x[rows] @ theta["beta"]
        assert onp.isclose(post["mean"][i], gain @ resid)
        assert onp.isclose(post["var"][i], su2 - su2 * gain.sum())
    assert onp.allclose(result.posterior["mean"], post["mean"])
    # At the exact E-step the EM objective is the marginal log likelihood.
    assert onp.isclose(-mm.negative_em_objective(theta, post, data),
                       result.log_likelihood, rtol=1e-12)


# ----------------------------------------------------------------------
# EM reaches the MLE.

def test_em_reaches_the_mle(data, result):
    fun = free_objective(result, data)
    free = result.theta_pattern.flatten(result.estimates, free=True)
    assert onp.max(onp.abs(autograd.grad(fun)(free))) / data.n_obs < 1e-9
    start = free + 0.1 * onp.random.default_rng(6).standard_normal(free.size)
    direct = refit(lambda x: fun(x) / data.n_obs, start)
    assert onp.allclose(direct.x, free, atol=1e-7)
    assert onp.isclose(result.log_likelihood, -fun(free))


def test_estimates_near_truth(data, result):
    se = result.standard_errors
    assert onp.all(onp.abs(result.beta - BETA) < 4 * se["beta"])
    assert abs(result.sigma_u_sq - 0.64) < 4 * se["sigma_u_sq"][0]
    assert abs(result.sigma_sq - 0.36) < 4 * se["sigma_sq"][0]


def test_init_is_used_and_not_mutated(data, result):
    init = {"beta": onp.zeros(3), "sigma_u_sq": onp.array([3.0]),
            "sigma_sq": onp.array([0.1])}
    again = mm.fit(data, init=init)
    assert onp.array_equal(init["beta"], onp.zeros(3))
    assert onp.allclose(again.beta, result.beta, atol=1e-8)
    assert onp.isclose(again.sigma_u_sq, result.sigma_u_sq, rtol=1e-8)


# ----------------------------------------------------------------------
# Covariances.

def test_corrected_covariance_is_the_inverse_fd_marginal_hessian(data,
                                                                 result):
    free = result.theta_pattern.flatten(result.estimates, free=True)
    hess = fd_hessian(free_objective(result, data), free)
    truth = onp.linalg.inv(hess)
    assert max_rel_diff(result.em_covariance.covariance(), truth) < 1e-5
    # Folded: beta unchanged, variances by the delta method (d e^x = e^x).
    jac = onp.diag(onp.concatenate([onp.ones(3), [result.sigma_u_sq,
                                                   result.sigma_sq]]))
    assert max_rel_diff(result.covariances["corrected"],
                        jac @ truth @ jac.T) < 1e-5
    # Louis' formula is exact with the exact E-step.
    assert max_rel_diff(result.covariances["louis"],
                        result.covariances["corrected"]) < 1e-8


def test_naive_covariance_is_smaller_in_loewner_order(data, result):
    em = result.em_covariance
    gap = onp.linalg.eigvalsh(em.covariance() - em.naive_covariance())
    assert gap.min() > -1e-10 * onp.abs(gap).max()
    ratio = result.standard_errors["beta"] / \
        result.naive_standard_errors["beta"]
    assert onp.all(ratio >= 1.0) and ratio[0] > 2.0   # the intercept
    # The naive one is the inverse Q-Hessian (finite differences).
    pattern = result.theta_pattern
    free = pattern.flatten(result.estimates, free=True)

    def neg_q(x):
        return mm.negative_em_objective(pattern.fold(x, free=True),
                                        result.posterior, data)
    assert max_rel_diff(em.naive_covariance(),
                        onp.linalg.inv(fd_hessian(neg_q, free))) < 1e-5


def test_fixed_effects_match_gls(data, result):
    v_inv = onp.linalg.inv(dense_cov(data, result.sigma_u_sq,
                                     result.sigma_sq))
    info = data.x.T @ v_inv @ data.x
    # The beta block of the marginal Hessian is exactly X' V^-1 X ...
    assert onp.allclose(result.em_covariance.marginal_hessian()[:3, :3],
                        info, rtol=1e-9, atol=1e-9 * onp.abs(info).max())
    # ... and beta's SEs are the GLS ones up to the (observed, O(1/N))
    # coupling of beta with the variance components.
    gls_se = onp.sqrt(onp.diag(onp.linalg.inv(info)))
    assert onp.allclose(result.standard_errors["beta"], gls_se, rtol=5e-3)
    assert onp.allclose(result.beta_covariance,
                        result.covariances["corrected"][:3, :3])
    # GLS point estimate at the MLE variances equals the MLE of beta.
    gls_beta = onp.linalg.solve(info, data.x.T @ v_inv @ data.y)
    assert onp.allclose(result.beta, gls_beta, atol=1e-8)


def test_standard_errors_and_table(result):
    se = result.standard_errors
    assert se["beta"].shape == (3,) and se["sigma_sq"].shape == (1,)
    table = result.comparison_table()
    assert "sigma_u_sq" in table and "Louis SE" in table
    assert len(table.splitlines()) == 2 + 5


# ----------------------------------------------------------------------
# Bad input.

def _xyg():
    rng = onp.random.default_rng(0)
    return (onp.column_stack([onp.ones(6), rng.standard_normal(6)]),
            rng.standard_normal(6), onp.array([0, 0, 1, 1, 2, 2]))


@pytest.mark.parametrize("change, error, match", [
    (dict(x=onp.ones(6)), ValueError, "x: expected a 2-dimensional"),
    (dict(x=onp.full((6, 2), "a")), TypeError, "x: expected real numbers"),
    (dict(y=onp.ones(5)), ValueError, r"y: expected one entry per row of x "
                                      r"\(6\), got 5"),
    (dict(y=onp.array([1, 2, onp.nan, 4, 5, 6.0])), ValueError,
     r"y\[2\] is nan"),
    (dict(group=onp.array([0, 0, 1, 1, 2])), ValueError,
     r"group: expected shape \(6,\)"),
    (dict(group=onp.array([0, 0, 1, 1, 2, 2.5])), TypeError,
     "group: expected integer group indices"),
    (dict(group=onp.array([0, 0, -1, 1, 2, 2])), ValueError,
     r"group: expected non-negative indices, group\[2\] is -1"),
    (dict(group=onp.array([0, 0, 1, 1, 3, 3])), ValueError,
     "group: group 2 has no rows"),
    (dict(group=onp.zeros(6, dtype=int)), ValueError,
     "n_groups: expected an int >= 2"),
    (dict(group=onp.arange(6)), ValueError, "at least one group needs two"),
    (dict(x=onp.ones((6, 2))), ValueError, "x: the columns are linearly "
                                           "dependent"),
])
def test_bad_data(change, error, match):
    x, y, group = _xyg()
    args = dict(x=x, y=y, group=group)
    args.update(change)
    with pytest.raises(error, match=match):
        mm.MixedModelData(args["x"], args["y"], args["group"])


def test_group_outside_n_groups():
    x, y, group = _xyg()
    with pytest.raises(ValueError, match=r"group: expected indices in \[0, "
                                         r"n_groups\) = \[0, 2\)"):
        mm.MixedModelData(x, y, group, n_groups=2)


def test_bad_simulate_arguments():
    with pytest.raises(ValueError, match=r"group_size: expected one size per "
                                         r"group, shape \(3,\)"):
        mm.simulate(3, [2, 2], [1.0], 1.0, 1.0)
    with pytest.raises(ValueError, match=r"group_size\[1\] is 0"):
        mm.simulate(3, [2, 0, 2], [1.0], 1.0, 1.0)
    with pytest.raises(ValueError, match="group_size: expected an int >= 1"):
        mm.simulate(3, 0, [1.0], 1.0, 1.0)
    with pytest.raises(TypeError, match="group_size: expected an int or"):
        mm.simulate(3, [2.0, 2.0, 2.0], [1.0], 1.0, 1.0)
    with pytest.raises(ValueError, match="n_groups: expected an int >= 2"):
        mm.simulate(1, 3, [1.0], 1.0, 1.0)
    with pytest.raises(ValueError, match="sigma_u: expected a positive"):
        mm.simulate(3, 2, [1.0], -1.0, 1.0)
    with pytest.raises(ValueError, match="sigma: expected a positive"):
        mm.simulate(3, 2, [1.0], 1.0, onp.nan)
    with pytest.raises(ValueError, match=r"beta\[1\] is inf"):
        mm.simulate(3, 2, [1.0, onp.inf], 1.0, 1.0)
    with pytest.raises(ValueError, match="group: every group has one row"):
        mm.simulate(3, 1, [1.0], 1.0, 1.0)


def test_bad_fit_arguments(data):
    with pytest.raises(TypeError, match="data: expected a MixedModelData"):
        mm.fit(onp.ones((5, 2)))
    with pytest.raises(TypeError, match="init: expected a dict"):
        mm.fit(data, init=[1.0])
    good = {"beta": onp.zeros(3), "sigma_u_sq": 1.0, "sigma_sq": 1.0}
    with pytest.raises(ValueError, match=r"init\['sigma_sq'\]"):
        mm.fit(data, init=dict(good, sigma_sq=-1.0))
    with pytest.raises(ValueError, match=r"init\['beta'\]"):
        mm.fit(data, init=dict(good, beta=onp.zeros(2)))
    with pytest.raises(ValueError, match="tol: expected a number in"):
        mm.fit(data, tol=2.0)
    with pytest.raises(ValueError, match="max_iter = 2"):
        mm.fit(data, max_iter=2)
    with pytest.raises(TypeError, match="max_iter: expected an int"):
        mm.fit(data, max_iter=2.5)
