"""Gaussian mixture: EM reaches the MLE, and the EM-fix covariance is the
inverse marginal Hessian (checked by finite differences), also when the
components are so well separated that responsibilities are 1e-300."""
import autograd
import autograd.numpy as np
import numpy as onp
import pytest
import scipy.special
import scipy.stats

from refold.models import gaussian_mixture as gm
from refold.models.em_covariance import EMCovariance
from refold.sensitivity.refit import refit
from tests.models._truths import fd_hessian, max_rel_diff

TRUE_WEIGHTS = [0.4, 0.6]
TRUE_MEANS = [[0.0, 0.0], [2.5, 1.0]]
TRUE_COVS = [[[1.0, 0.0], [0.0, 1.0]], [[1.0, 0.3], [0.3, 0.5]]]


@pytest.fixture(scope="module")
def data():
    return gm.simulate(300, TRUE_WEIGHTS, TRUE_MEANS, TRUE_COVS, rng=1)


@pytest.fixture(scope="module")
def result(data):
    return gm.fit(data, 2, rng=0)


@pytest.fixture(scope="module")
def separated():
    """Three 1-d components 37 SDs apart: responsibilities of 1e-300 and
    exact zeros."""
    data = gm.simulate(60, [0.3, 0.3, 0.4], [[-37.0], [0.0], [37.0]],
                       [[[1.0]], [[1.0]], [[1.5]]], rng=3)
    return data, gm.fit(data, 3, rng=0)


def scipy_log_likelihood(theta, y):
    """log p(y | theta) from scipy's densities (independent of the module)."""
    dens = onp.stack([
        onp.log(w) + scipy.stats.multivariate_normal(m, c).logpdf(y)
        for w, m, c in zip(theta["weights"], theta["means"], theta["covs"])],
        axis=-1).reshape(len(y), -1)
    return scipy.special.logsumexp(dens, axis=1).sum()


def free_objective(result, y):
    pattern = result.theta_pattern
    return lambda free: -gm.marginal_log_likelihood(
        pattern.fold(free, free=True), y)


# ----------------------------------------------------------------------
# Simulation and the model's functions.

def test_simulate_shapes_reproducibility_and_moments():
    first = gm.simulate(5, [0.3, 0.7], [[0.0], [4.0]], [[[1.0]], [[2.0]]],
                        rng=7)
    again = gm.simulate(5, [0.3, 0.7], [[0.0], [4.0]], [[[1.0]], [[2.0]]],
                        rng=onp.random.default_rng(7))
    assert first.y.shape == (5, 1) and first.z.shape == (5,)
    assert first.n_obs == 5 and first.n_dim == 1
    assert onp.array_equal(first.y, again.y)
    big = gm.simulate(20000, TRUE_WEIGHTS, TRUE_MEANS, TRUE_COVS, rng=2)
    assert abs(onp.mean(big.z == 1) - 0.6) < 0.015
    member = big.y[big.z == 1]
    assert onp.allclose(member.mean(axis=0), TRUE_MEANS[1], atol=0.03)
    assert onp.allclose(onp.cov(member.T), TRUE_COVS[1], atol=0.03)


def test_marginal_log_likelihood_matches_scipy(data):
    rng = onp.random.default_rng(4)
    pattern = gm.theta_pattern(2, 2)
    for _ in range(3):
        theta = pattern.random(rng)
        assert onp.isclose(gm.marginal_log_likelihood(theta, data.y),
                           scipy_log_likelihood(theta, data.y), rtol=1e-12)


def test_e_step_is_the_exact_posterior(data, result):
    theta = result.estimates
    joint = onp.stack([
        onp.log(w) + scipy.stats.multivariate_normal(m, c).logpdf(data.y)
        for w, m, c in zip(theta["weights"], theta["means"], theta["covs"])],
        axis=1)
    posterior = onp.exp(joint - scipy.special.logsumexp(joint, axis=1,
                                                        keepdims=True))
    assert onp.allclose(result.responsibilities, posterior, atol=1e-13)
    assert onp.allclose(result.log_responsibilities, onp.log(posterior),
                        atol=1e-10)
    # Both E-step coordinates describe the same posterior.
    eta0 = gm.e_step(theta, data.y)
    assert onp.allclose(eta0, onp.log(posterior[:, 1:] / posterior[:, :1]))
    pivoted = gm.e_step(theta, data.y, result.pivot)
    other = 1 - result.pivot
    assert onp.allclose(pivoted[:, 0], onp.log(
        posterior[onp.arange(300), other]
        / posterior[onp.arange(300), result.pivot]))
    # At the exact E-step the EM objective is the marginal log likelihood,
    # in either coordinates.
    ll = scipy_log_likelihood(theta, data.y)
    assert onp.isclose(-gm.negative_em_objective(theta, eta0, data.y), ll,
                       rtol=1e-12)
    assert onp.isclose(-gm.negative_em_objective(theta, pivoted, data.y,
                                                 result.pivot), ll,
                       rtol=1e-12)


# ----------------------------------------------------------------------
# EM reaches the MLE.

def test_em_reaches_the_mle(data, result):
    assert onp.isclose(result.log_likelihood,
                       scipy_log_likelihood(result.estimates, data.y),
                       rtol=1e-12)
    fun = free_objective(result, data.y)
    free = result.theta_pattern.flatten(result.estimates, free=True)
    grad = autograd.grad(fun)(free)
    assert onp.max(onp.abs(grad)) / data.n_obs < 1e-8
    # A direct trust-region fit of the marginal likelihood agrees.
    start = free + 0.05 * onp.random.default_rng(5).standard_normal(free.size)
    direct = refit(lambda x: fun(x) / data.n_obs, start)
    assert onp.allclose(direct.x, free, atol=1e-6)


def test_estimates_are_near_the_truth_and_sorted(result):
    est, se = result.estimates, result.standard_errors
    assert onp.all(onp.diff(est["means"][:, 0]) > 0)
    assert onp.all(onp.abs(est["means"] - TRUE_MEANS) < 4 * se["means"])
    assert onp.all(onp.abs(est["weights"] - TRUE_WEIGHTS)
                   < 4 * se["weights"])
    assert onp.all(onp.abs(est["covs"] - TRUE_COVS) < 4 * se["covs"])
    assert onp.isclose(est["weights"].sum(), 1.0)


def test_label_switching_is_undone(data, result):
    swapped = {"weights": onp.array([0.5, 0.5]),
               "means": onp.array([[3.0, 1.0], [-0.5, 0.0]]),
               "covs": onp.stack([onp.eye(2), onp.eye(2)])}
    before = {key: value.copy() for key, value in swapped.items()}
    again = gm.fit(data, 2, init=swapped)
    for key in result.estimates:
        assert onp.allclose(again.estimates[key], result.estimates[key],
                            atol=1e-7)
        assert onp.array_equal(swapped[key], before[key])   # not mutated


def test_plain_em_reaches_the_same_optimum(data, result):
    plain = gm.fit(data, 2, rng=0, accelerate=False)
    assert plain.n_iter > result.n_iter
    for key in result.estimates:
        assert onp.allclose(plain.estimates[key], result.estimates[key],
                            atol=1e-8)
    with pytest.raises(TypeError, match="accelerate: expected True or False"):
        gm.fit(data, 2, accelerate=1)


# ----------------------------------------------------------------------
# Covariances.

def test_corrected_covariance_is_the_inverse_fd_marginal_hessian(data,
                                                                 result):
    free = result.theta_pattern.flatten(result.estimates, free=True)
    hess = fd_hessian(free_objective(result, data.y), free)
    truth = onp.linalg.inv(hess)
    assert max_rel_diff(result.em_covariance.covariance(), truth) < 1e-5
    assert onp.allclose(result.em_covariance.marginal_hessian(), hess,
                        rtol=1e-6, atol=1e-6 * onp.max(onp.abs(hess)))
    # Folded: the delta method with a finite-difference Jacobian of fold.
    pattern = result.theta_pattern
    step = 1e-6
    jac = onp.array([
        (pattern.flatten(pattern.fold(free + e, free=True), free=False)
         - pattern.flatten(pattern.fold(free - e, free=True), free=False))
        / (2 * step) for e in onp.eye(free.size) * step]).T
    assert max_rel_diff(result.covariances["corrected"],
                        jac @ truth @ jac.T) < 1e-5
    # Louis' formula is exact with the exact E-step.
    assert max_rel_diff(result.covariances["louis"],
                        result.covariances["corrected"]) < 1e-8


def test_naive_covariance_is_smaller_in_loewner_order(result):
    em = result.em_covariance
    corrected, naive = em.covariance(), em.naive_covariance()
    gap = onp.linalg.eigvalsh(corrected - naive)
    assert gap.min() > -1e-10 * onp.abs(gap).max()
    ratio = result.standard_errors["means"] / \
        result.naive_standard_errors["means"]
    assert onp.all(ratio >= 1.0) and ratio.max() > 1.3


def test_naive_covariance_is_the_inverse_q_hessian(data, result):
    pattern = result.theta_pattern
    free = pattern.flatten(result.estimates, free=True)

    def neg_q(x):
        return gm.negative_em_objective(pattern.fold(x, free=True),
                                        result.eta, data.y, result.pivot)
    truth = onp.linalg.inv(fd_hessian(neg_q, free))
    assert max_rel_diff(result.em_covariance.naive_covariance(), truth) < 1e-5


def test_standard_errors_and_table(result):
    se = result.standard_errors
    assert se["weights"].shape == (2,) and se["means"].shape == (2, 2)
    assert se["covs"].shape == (2, 2, 2)
    flat = onp.sqrt(onp.diag(result.covariances["corrected"]))
    assert onp.allclose(result.theta_pattern.flatten(
        se, free=False, validate_value=False), flat)
    assert onp.allclose(se["covs"], onp.swapaxes(se["covs"], 1, 2))
    table = result.comparison_table()
    assert "means_[1,0]" in table and "Louis SE" in table
    assert len(table.splitlines()) == 2 + 14


# ----------------------------------------------------------------------
# Well-separated components.

def test_separated_responsibilities_are_degenerate(separated):
    _, result = separated
    resp = result.responsibilities
    assert onp.sum(resp == 0) > 10
    assert onp.sum((resp > 0) & (resp < 1e-250)) > 5
    assert onp.all(onp.isfinite(result.log_responsibilities))
    assert result.em_covariance.info["num_dropped"] > 0


def test_separated_covariance_matches_fd_marginal_hessian(separated):
    data, result = separated
    free = result.theta_pattern.flatten(result.estimates, free=True)
    hess = fd_hessian(free_objective(result, data.y), free)
    assert max_rel_diff(result.em_covariance.covariance(),
                        onp.linalg.inv(hess)) < 1e-5
    # Nothing is missing: the corrected and naive covariances agree.
    assert max_rel_diff(result.covariances["naive"],
                        result.covariances["corrected"]) < 1e-8


def test_separated_dense_joint_hessian_fails(separated):
    data, result = separated
    pattern = result.theta_pattern
    dim = pattern.flat_length(True)
    joint_free = onp.concatenate([pattern.flatten(result.estimates,
                                                  free=True),
                                  result.eta.ravel()])

    def neg_joint(vec):
        return gm.negative_em_objective(
            pattern.fold(vec[:dim], free=True),
            np.reshape(vec[dim:], result.eta.shape), data.y, result.pivot)
    hess = autograd.hessian(neg_joint)(joint_free)
    assert onp.all(onp.isfinite(hess))
    assert onp.linalg.cond(hess) > 1e16
    with pytest.raises(onp.linalg.LinAlgError):
        onp.linalg.cholesky(hess)
    with pytest.raises(onp.linalg.LinAlgError):
        onp.linalg.solve(hess[dim:, dim:], hess[dim:, :dim])


def test_pivoting_keeps_local_blocks_positive(separated):
    # With log-ratios against component 0, an observation whose component-0
    # responsibility is negligible gets an indefinite computed block; against
    # its own most responsible component the block is accurate.
    data, result = separated
    theta, y = result.estimates, data.y
    n = int(onp.flatnonzero(result.pivot == 2)[0])
    resp = result.responsibilities[n]
    assert resp[0] < 1e-300 < resp[1] < 1e-100

    def block(pivot):
        eta = gm.e_step(theta, y, pivot)

        def local(e):
            return gm.negative_em_objective(
                theta, np.concatenate([eta[:n], e[None], eta[n + 1:]]), y,
                pivot)
        return autograd.hessian(local)(eta[n])

    assert onp.linalg.eigvalsh(block(None)).min() < 0
    pivoted = block(result.pivot)
    exact = onp.diag(resp[:2]) - onp.outer(resp[:2], resp[:2])
    assert onp.linalg.eigvalsh(pivoted).min() >= 0   # accurate or exactly 0
    assert onp.allclose(pivoted, exact, rtol=1e-10, atol=0)


def test_fixed_reference_error_names_the_pivoting_remedy(separated):
    # The same optimum with log-ratios against component 0: EMCovariance
    # rejects the indefinite computed block and says how to avoid it.
    data, result = separated
    theta, y = result.estimates, data.y
    with pytest.raises(ValueError, match=r"not at a minimum in eta(.|\n)*"
                                         r"against its most likely component"):
        EMCovariance(lambda th, et: gm.negative_em_objective(th, et, y),
                     result.theta_pattern, gm.eta_pattern(len(y), 3), theta,
                     gm.e_step(theta, y))


# ----------------------------------------------------------------------
# Bad input.

@pytest.mark.parametrize("y, error, match", [
    (onp.ones(10), ValueError, r"data: expected an \(N, P\) array"),
    (onp.ones((4, 2, 1)), ValueError, r"data: expected an \(N, P\)"),
    (onp.ones((0, 2)), ValueError, "data: expected at least one"),
    (onp.array([["a", "b"]] * 4), TypeError, "data: expected real numbers"),
    (onp.ones((4, 2)) * 1j, TypeError, "data: expected real numbers"),
])
def test_bad_data(y, error, match):
    with pytest.raises(error, match=match):
        gm.fit(y, 2)


def test_nan_data_is_named():
    y = onp.random.default_rng(0).standard_normal((20, 2))
    y[3, 1] = onp.nan
    with pytest.raises(ValueError, match=r"data\[3, 1\] is nan"):
        gm.fit(y, 2)
    with pytest.raises(ValueError, match=r"data.y\[3, 1\] is nan"):
        gm.fit(gm.MixtureData(y=y), 2)


@pytest.mark.parametrize("k, error, match", [
    (0, ValueError, "n_components: expected an int >= 1"),
    (1, ValueError, "n_components: expected an int >= 2"),
    (31, ValueError, "n_components: expected at most n_obs = 30"),
    (2.0, TypeError, "n_components: expected an int"),
])
def test_bad_n_components(k, error, match):
    y = onp.random.default_rng(0).standard_normal((30, 2))
    with pytest.raises(error, match=match):
        gm.fit(y, k)


def test_bad_fit_arguments(data):
    y = data.y
    good = {"weights": onp.array([0.5, 0.5]), "means": onp.zeros((2, 2)),
            "covs": onp.stack([onp.eye(2)] * 2)}
    with pytest.raises(TypeError, match="init: expected a dict"):
        gm.fit(y, 2, init=[1, 2])
    with pytest.raises(ValueError, match=r"init\['weights'\].*sum"):
        gm.fit(y, 2, init=dict(good, weights=onp.array([0.5, 0.6])))
    with pytest.raises(ValueError, match=r"init\['covs'\]"):
        gm.fit(y, 2, init=dict(good, covs=-onp.stack([onp.eye(2)] * 2)))
    with pytest.raises(ValueError, match=r"init\['means'\]"):
        gm.fit(y, 2, init=dict(good, means=onp.zeros((3, 2))))
    with pytest.raises(ValueError, match="tol: expected a number in"):
        gm.fit(y, 2, tol=0.0)
    with pytest.raises(ValueError, match="max_iter = 2"):
        gm.fit(y, 2, max_iter=2, rng=0)
    with pytest.raises(TypeError, match="rng: expected"):
        gm.fit(y, 2, rng="seed")
    with pytest.raises(ValueError, match="pivot"):
        gm.e_step(good, y, onp.zeros(5, dtype=int))
    with pytest.raises(ValueError, match=r"pivot\[0\] is 7"):
        gm.e_step(good, y, onp.full(len(y), 7))


def test_degenerate_fits_raise_clearly():
    y = onp.array([[1.0], [1.0], [1.0], [2.0]])
    with pytest.raises(ValueError, match="fewer than n_components = 3 "
                                         "distinct"):
        gm.fit(y, 3, rng=0)
    line = onp.arange(10.0)[:, None] * onp.array([[1.0, 2.0]])
    with pytest.raises(ValueError, match="data: the sample covariance is "
                                         "singular"):
        gm.fit(line, 2, rng=0)
    far = {"weights": onp.array([0.5, 0.5]),
           "means": onp.array([[0.0], [1e6]]),
           "covs": onp.array([[[1.0]], [[1.0]]])}
    y = onp.random.default_rng(0).standard_normal((20, 1))
    with pytest.raises(ValueError, match="component 1 lost all its "
                                         "responsibility"):
        gm.fit(y, 2, init=far)


def test_bad_simulate_arguments():
    means, covs = [[0.0], [1.0]], [[[1.0]], [[1.0]]]
    with pytest.raises(ValueError, match="weights: expected a probability"):
        gm.simulate(5, [0.5, 0.4], means, covs)
    with pytest.raises(ValueError, match=r"weights\[1\] is -0.5"):
        gm.simulate(5, [1.5, -0.5], means, covs)
    with pytest.raises(ValueError, match="means: expected shape"):
        gm.simulate(5, [0.5, 0.5], [[0.0], [1.0], [2.0]], covs)
    with pytest.raises(ValueError, match=r"covs\[1\]"):
        gm.simulate(5, [0.5, 0.5], means, [[[1.0]], [[-1.0]]])
    with pytest.raises(ValueError, match="covs: expected shape"):
        gm.simulate(5, [0.5, 0.5], means, [[1.0], [1.0]])
    with pytest.raises(ValueError, match="n_obs: expected an int >= 1"):
        gm.simulate(0, [0.5, 0.5], means, covs)
    with pytest.raises(ValueError, match=r"means\[1, 0\] is nan"):
        gm.simulate(5, [0.5, 0.5], [[0.0], [onp.nan]], covs)
    with pytest.raises(TypeError, match="rng: expected"):
        gm.simulate(5, [0.5, 0.5], means, covs, rng=1.5)
