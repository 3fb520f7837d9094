"""Neyman-Scott: the joint MLE is inconsistent, the marginal MLE and EM are
not, and the EM-fix covariance is the inverse marginal Hessian."""
import autograd.numpy as np
import numpy as onp
import pytest

from refold.models import neyman_scott as ns
from refold.models.em_covariance import EMCovariance
from refold.patterns.numeric import NumericArrayPattern

THETA0 = 2.0
N_PAIRS = 2000


@pytest.fixture(scope="module")
def data():
    return ns.simulate(N_PAIRS, THETA0, rng=20240601)


@pytest.fixture(scope="module")
def fits(data):
    return {method: ns.fit(data, method) for method in ns.METHODS}


def neg_marginal_closed_form(theta, y, s=1.0):
    """-log p(y | theta) from the bivariate normal density, written out."""
    var, cov = s ** 2 + theta, s ** 2
    det = var ** 2 - cov ** 2
    quad = (var * (y[:, 0] ** 2 + y[:, 1] ** 2)
            - 2 * cov * y[:, 0] * y[:, 1]) / det
    return onp.sum(onp.log(2 * onp.pi) + 0.5 * onp.log(det) + 0.5 * quad)


def fd_second_derivative(fun, x, step):
    return (fun(x + step) - 2 * fun(x) + fun(x - step)) / step ** 2


def test_simulate_shapes_and_reproducibility():
    first = ns.simulate(5, 1.5, rng=3, prior_scale=2.0)
    again = ns.simulate(5, 1.5, rng=onp.random.default_rng(3),
                        prior_scale=2.0)
    assert first.y.shape == (5, 2) and first.z.shape == (5,)
    assert onp.array_equal(first.y, again.y)
    assert first.theta == 1.5 and first.prior_scale == 2.0
    assert first.n_pairs == 5


def test_simulated_moments():
    big = ns.simulate(20000, 3.0, rng=1, prior_scale=0.5)
    d = big.y[:, 0] - big.y[:, 1]
    assert abs(onp.var(d) / 2 - 3.0) < 0.1            # Var(d) = 2 theta
    assert abs(onp.var(big.z) - 0.25) < 0.02
    assert abs(onp.mean(big.y[:, 0] * big.y[:, 1]) - 0.25) < 0.05


def test_joint_mle_converges_to_half(data, fits):
    joint = fits["joint"]
    # Closed form.
    d2 = (data.y[:, 0] - data.y[:, 1]) ** 2
    assert onp.isclose(joint.theta, d2.sum() / (4 * N_PAIRS), rtol=1e-14)
    assert onp.allclose(joint.z, data.y.mean(axis=1))
    # Sampling SD of the estimator: (theta0 / 2) * sqrt(2 / N) (it is a
    # scaled chi-square), not the reported (too small) SE.
    sampling_sd = THETA0 / 2 * onp.sqrt(2.0 / N_PAIRS)
    assert abs(joint.theta - THETA0 / 2) < 3 * sampling_sd
    assert abs(joint.theta - THETA0) > 20 * sampling_sd
    assert onp.isclose(joint.se, joint.theta / onp.sqrt(N_PAIRS))
    assert joint.n_iter == 0


def test_joint_se_is_the_joint_hessian_profile(data, fits):
    # The joint objective in (theta, z), point masses for q: the Schur
    # complement is the profile Hessian, giving theta^2 / N.
    joint, y = fits["joint"], data.y

    def neg_joint(theta, z):
        return onp.log(2 * onp.pi) * N_PAIRS + np.sum(
            np.log(theta[0]) + ((y[:, 0] - z) ** 2 + (y[:, 1] - z) ** 2)
            / (2 * theta[0]))
    em = EMCovariance(neg_joint, ns.theta_pattern(),
                      NumericArrayPattern((N_PAIRS,)), joint.theta, joint.z)
    assert onp.isclose(em.covariance(folded=True)[0, 0],
                       joint.covariances["joint"][0, 0], rtol=1e-10)


def test_marginal_mle_is_consistent(data, fits):
    marginal = fits["marginal"]
    assert abs(marginal.theta - THETA0) < 3 * marginal.se
    # Stationary point of the closed-form density (finite differences).
    step = 1e-5 * marginal.theta
    slope = (neg_marginal_closed_form(marginal.theta + step, data.y)
             - neg_marginal_closed_form(marginal.theta - step, data.y)) \
        / (2 * step)
    assert abs(slope) < 1e-6 * N_PAIRS
    assert onp.isclose(marginal.marginal_log_likelihood,
                       -neg_marginal_closed_form(marginal.theta, data.y),
                       rtol=1e-12)


def test_marginal_se_is_inverse_fd_hessian(data, fits):
    marginal = fits["marginal"]
    curv = fd_second_derivative(
        lambda t: neg_marginal_closed_form(t, data.y), marginal.theta,
        1e-3 * marginal.theta)
    assert onp.isclose(marginal.covariances["marginal"][0, 0], 1 / curv,
                       rtol=1e-5)


def test_em_converges_to_marginal_mle(fits):
    em, marginal = fits["em"], fits["marginal"]
    assert abs(em.theta - marginal.theta) < 1e-9 * marginal.theta
    assert em.n_iter > 1
    assert onp.allclose(em.z, marginal.z, rtol=1e-8)


def test_em_fix_is_inverse_fd_marginal_hessian(data, fits):
    em = fits["em"]
    theta = em.theta
    # In theta itself (the gradient vanishes, so this equals the delta
    # method from log theta) ...
    curv = fd_second_derivative(
        lambda t: neg_marginal_closed_form(t, data.y), theta, 1e-3 * theta)
    assert onp.isclose(em.covariances["corrected"][0, 0], 1 / curv,
                       rtol=1e-5)
    # ... and in the free coordinate log theta.
    curv_free = fd_second_derivative(
        lambda u: neg_marginal_closed_form(onp.exp(u), data.y),
        onp.log(theta), 1e-3)
    em_cov = em.em_covariance
    assert onp.isclose(em_cov.covariance()[0, 0], 1 / curv_free, rtol=1e-5)
    assert onp.isclose(em_cov.marginal_hessian()[0, 0], curv_free,
                       rtol=1e-5)
    assert onp.isclose(em.se, fits["marginal"].se, rtol=1e-6)


def test_naive_is_smaller_and_closed_form(fits):
    em = fits["em"]
    corrected = em.covariances["corrected"]
    naive = em.covariances["naive"]
    # Loewner order (1 x 1 here): the difference has a positive eigenvalue.
    assert onp.linalg.eigvalsh(corrected - naive).min() > 0
    # The Q-function Hessian in theta at the M-step is N / theta^2.
    assert onp.isclose(naive[0, 0], em.theta ** 2 / N_PAIRS, rtol=1e-10)
    # Louis' formula with the closed-form score variance agrees with the fix.
    assert onp.isclose(em.covariances["louis"][0, 0], corrected[0, 0],
                       rtol=1e-8)
    table = em.em_covariance.comparison_table(names=["theta"])
    assert table.splitlines()[2].split()[0] == "theta"


def test_em_objective_equals_marginal_at_e_step(data):
    # The EM identity: f(theta, eta*(theta)) = log p(y | theta).
    for theta in (0.7, 2.0, 5.0):
        eta = ns.e_step(theta, data.y)
        value = -ns.negative_em_objective(onp.array([theta]), eta, data.y)
        assert onp.isclose(value, -neg_marginal_closed_form(theta, data.y),
                           rtol=1e-12)


def test_prior_scale_is_used():
    data = ns.simulate(300, 1.0, rng=7, prior_scale=3.0)
    marginal = ns.fit(data, "marginal")
    em = ns.fit(data, "em")
    assert abs(marginal.theta - em.theta) < 1e-9 * marginal.theta
    curv = fd_second_derivative(
        lambda t: neg_marginal_closed_form(t, data.y, 3.0), em.theta,
        1e-3 * em.theta)
    assert onp.isclose(em.covariances["corrected"][0, 0], 1 / curv,
                       rtol=1e-5)
    # A plain array uses prior_scale = 1 unless told otherwise.
    assert ns.fit(data.y, "marginal", prior_scale=3.0).theta == \
        pytest.approx(marginal.theta, rel=1e-9)
    assert abs(ns.fit(data.y, "marginal").theta - marginal.theta) > 1e-6


def test_fit_does_not_mutate(data):
    before = data.y.copy()
    ns.fit(data, "em")
    assert onp.array_equal(before, data.y)


def test_bad_input():
    data = ns.simulate(10, 1.0, rng=0)
    with pytest.raises(ValueError, match="n_pairs"):
        ns.simulate(0, 1.0)
    with pytest.raises(TypeError, match="n_pairs"):
        ns.simulate(2.5, 1.0)
    with pytest.raises(ValueError, match="theta"):
        ns.simulate(5, -1.0)
    with pytest.raises(ValueError, match="prior_scale"):
        ns.simulate(5, 1.0, prior_scale=0.0)
    with pytest.raises(TypeError, match="rng"):
        ns.simulate(5, 1.0, rng="seed")
    with pytest.raises(ValueError, match="method"):
        ns.fit(data, "bayes")
    with pytest.raises(ValueError, match=r"data.y: expected shape \(N, 2\)"):
        ns.fit(onp.zeros((4, 3)), "joint")
    bad = data.y.copy()
    bad[2, 1] = onp.nan
    with pytest.raises(ValueError, match=r"data.y\[2, 1\]"):
        ns.fit(bad, "em")
    with pytest.raises(TypeError, match="data"):
        ns.fit("pairs", "em")
    with pytest.raises(ValueError, match="theta_init"):
        ns.fit(data, "em", theta_init=0.0)
    with pytest.raises(ValueError, match="prior_scale"):
        ns.fit(data, "marginal", prior_scale=-1.0)
    with pytest.raises(ValueError, match="tol"):
        ns.fit(data, "em", tol=0.0)
    with pytest.raises(ValueError, match="max_iter"):
        ns.fit(data, "em", max_iter=2)
    with pytest.raises(ValueError, match="y_a == y_b"):
        ns.fit(onp.ones((3, 2)), "marginal")
    with pytest.raises(ValueError, match="n_pairs"):
        ns.eta_pattern(0)
