"""Issue 10, models: the worked models' bad inputs, silent NaNs, raw
exceptions and data scale, and the EM covariance's blame and wrapping."""
import numpy as np
import pytest

from refold.models import EMCovariance
from refold.models import gaussian_mixture as gm
from refold.models import logistic_glmm as lg
from refold.models import mixed_model as mm
from refold.models import neyman_scott as ns
from refold.models.importance_sampling import laplace_importance_sampling


@pytest.fixture(scope="module")
def pairs():
    return ns.simulate(40, 2.0, rng=0)


@pytest.mark.parametrize("theta", [-1.0, 0.0, np.nan])
def test_neyman_scott_variance_checked(pairs, theta):
    # e_step(-1) returned negative variances, e_step(0) raised
    # ZeroDivisionError and marginal_log_likelihood(-1) was a silent NaN.
    with pytest.raises(ValueError, match="theta: expected a positive "
                                         "variance"):
        ns.e_step(theta, pairs.y)
    with pytest.raises(ValueError, match="theta: expected a positive "
                                         "variance"):
        ns.marginal_log_likelihood(theta, pairs.y)


def test_neyman_scott_e_step_is_the_exact_posterior(pairs):
    # The truth: z | y ~ N(v (y_a + y_b) / theta, v), 1/v = 2/theta + 1.
    theta = 1.7
    post = ns.e_step(theta, pairs.y)
    var = 1.0 / (2.0 / theta + 1.0)
    np.testing.assert_allclose(post["var"], var)
    np.testing.assert_allclose(post["mean"], var * pairs.y.sum(1) / theta)


def test_mixed_model_negative_variance(pairs):
    data = mm.simulate(5, 3, np.array([1.0, 0.5]), 1.0, 1.0, rng=0)
    theta = {"beta": np.array([1.0, 0.5]), "sigma_u_sq": np.array([-1.0]),
             "sigma_sq": np.array([1.0])}
    with pytest.raises(ValueError, match=r"theta\['sigma_u_sq'\]: expected "
                                         r"a positive variance, got -1"):
        mm.marginal_log_likelihood(theta, data)
    with pytest.raises(TypeError, match="beta: expected real numbers"):
        mm.MixedModelData(data.x, data.y, data.group, beta="abc")


def test_mixture_non_pd_covariance_named():
    mix = gm.simulate(20, np.array([0.5, 0.5]),
                      np.array([[0.0, 0.0], [4.0, 4.0]]),
                      np.stack([np.eye(2)] * 2), rng=0)
    theta = {"weights": np.array([0.5, 0.5]),
             "means": np.array([[0.0, 0.0], [4.0, 4.0]]),
             "covs": np.stack([np.eye(2), np.diag([1.0, -2.0])])}
    with pytest.raises(ValueError, match=r"theta\['covs'\]\[1\]: expected a "
                                         r"positive definite covariance "
                                         r"matrix; its smallest eigenvalue "
                                         r"is -2"):
        gm.log_joint(theta, mix.y)


def test_simulate_and_sampling_arguments_named():
    with pytest.raises(TypeError, match="mu: expected a finite number"):
        lg.simulate(40, 5, mu="abc")
    with pytest.raises(TypeError, match="df: expected a positive number"):
        laplace_importance_sampling(lambda t: -0.5 * np.sum(t ** 2, axis=1),
                                    np.zeros(2), df="six")
    with pytest.raises(TypeError, match="theta: expected a positive number"):
        ns.simulate(5, "1")      # a string is not a number, even "1"


def _em_pieces(pairs):
    fit = ns.fit(pairs, "em")
    y = pairs.y
    return dict(objective_fun=lambda th, et: ns.negative_em_objective(
        th, et, y), theta_pattern=ns.theta_pattern(),
        eta_pattern=ns.eta_pattern(y.shape[0]), theta_opt=fit.theta,
        eta_opt=ns.e_step(fit.theta, y)), fit


def test_em_covariance_wraps_the_users_key_error(pairs):
    pieces, _ = _em_pieces(pairs)
    pieces["objective_fun"] = lambda th, et: et["missing"]
    with pytest.raises(ValueError, match="objective_fun.*raised KeyError.*"
                                         "missing key 'missing'") as info:
        EMCovariance(**pieces)
    assert isinstance(info.value.__cause__, KeyError)


def test_em_covariance_blames_eta_opt_when_only_eta_is_off(pairs):
    pieces, fit = _em_pieces(pairs)
    # eta from the E-step at another theta: theta_opt is the MLE, eta_opt
    # is not its E-step.  This used to be blamed on theta_opt.
    off = dict(pieces, eta_opt=ns.e_step(1.5 * fit.theta, pairs.y))
    with pytest.raises(ValueError, match="^eta_opt is not an optimum"):
        EMCovariance(**off)
    # theta off, eta its E-step: blamed on theta_opt.
    theta = 1.5 * fit.theta
    with pytest.raises(ValueError, match="^theta_opt is not an optimum"):
        EMCovariance(**dict(pieces, theta_opt=theta,
                            eta_opt=ns.e_step(theta, pairs.y)))
    # The truth: the EM covariance matches the marginal MLE's.
    marginal = ns.fit(pairs, "marginal")
    np.testing.assert_allclose(fit.se, marginal.se, rtol=1e-5)


@pytest.mark.parametrize("scale", [1e-180, 1e-60, 1e60, 1e200])
def test_worked_models_say_the_data_scale_is_the_problem(pairs, scale):
    # These used to blame a theta_init never passed, or report "fewer than
    # 2 distinct observations" of 40.
    with pytest.raises(ValueError, match="the data's scale is the problem"):
        ns.fit(pairs.y * scale, "em")
    mix = gm.simulate(40, np.array([0.5, 0.5]),
                      np.array([[0.0, 0.0], [4.0, 4.0]]),
                      np.stack([np.eye(2)] * 2), rng=0)
    with pytest.raises(ValueError, match="the data's scale is the problem"):
        gm.fit(mix.y * scale, 2)
    data = mm.simulate(5, 3, np.array([1.0, 0.5]), 1.0, 1.0, rng=0)
    with pytest.raises(ValueError, match="the data's scale is the problem"):
        mm.fit(mm.MixedModelData(data.x, data.y * scale, data.group))


def test_glmm_covariates_beyond_1e30_refused():
    # They used to fail with "params['beta_var'][0]: the value 0.0 lies on
    # the bound" (1e200) or a non-finite Hessian-vector product (1e100).
    data = lg.simulate(60, 6, 2, rng=0)
    with pytest.raises(ValueError, match=r"data.x: the data's scale is the "
                                         r"problem"):
        lg.fit(lg.GLMMData(data.x * 1e100, data.y, data.group),
               compute_lr=False)


@pytest.mark.parametrize("scale", [1e-25, 1e25])
def test_worked_models_equivariant_inside_the_scale_range(pairs, scale):
    # Scaling y by c (and the prior scale with it) scales theta by c^2.
    base = ns.fit(pairs, "em")
    scaled = ns.fit(pairs.y * scale, "em", prior_scale=scale)
    np.testing.assert_allclose(scaled.theta / scale ** 2, base.theta,
                               rtol=1e-8)
    np.testing.assert_allclose(scaled.se / scale ** 2, base.se, rtol=1e-5)
