"""EMCovariance: the marginal-Hessian fix against independent truths.

The main model is a two-component 1-d mixture of unit-variance normals with
theta = (mixing weights on a simplex, the two means). Its marginal log
likelihood is closed form, so the truth is a finite-difference Hessian of it
(function values only, no autograd).
"""
import autograd
import autograd.numpy as np
import numpy as onp
import pytest
from autograd.scipy.special import logsumexp

from refold.models.em_covariance import (
    DEFAULT_LOCAL_RTOL, EMCovariance, infer_eta_blocks, log_simplex)
from refold.patterns.containers import PatternArray, PatternDict
from refold.patterns.numeric import NumericArrayPattern
from refold.patterns.psd import PSDSymmetricMatrixPattern
from refold.patterns.simplex import SimplexArrayPattern
from refold.sensitivity.refit import refit


# ----------------------------------------------------------------------
# The mixture model.

def make_theta_pattern():
    pattern = PatternDict()
    pattern["weights"] = SimplexArrayPattern(2, (1,))
    pattern["means"] = NumericArrayPattern((2,))
    return pattern


def log_joint(theta, y):
    """log p(y_n, z_n = k | theta), shape (N, 2)."""
    return (np.log(theta["weights"][0]) - 0.5 * (y[:, None] - theta["means"])
            ** 2 - 0.5 * onp.log(2 * onp.pi))


def neg_objective_prob(theta, resp, y):
    """-f with q given by responsibilities (probability space)."""
    return np.sum(resp * (np.log(resp) - log_joint(theta, y)))


def neg_objective_log(theta, eta, y):
    """-f with q given by log-ratios eta = log(r_1 / r_0) (log space)."""
    log_r = log_simplex(eta)
    return np.sum(np.exp(log_r) * (log_r - log_joint(theta, y)))


def neg_objective_lse(theta, eta, y):
    """Like neg_objective_log, with a logsumexp log-softmax (cancels)."""
    logits = np.concatenate([np.zeros((y.shape[0], 1)), eta], axis=1)
    log_r = logits - logsumexp(logits, axis=1, keepdims=True)
    return np.sum(np.exp(log_r) * (log_r - log_joint(theta, y)))


def neg_marginal(free, y, pattern):
    theta = pattern.fold(free, free=True)
    return -np.sum(logsumexp(log_joint(theta, y), axis=1))


def fd_hessian(fun, x, step=1e-3):
    """Central second differences of function values."""
    dim = x.size
    hess = onp.empty((dim, dim))
    basis = onp.eye(dim) * step
    for i in range(dim):
        for j in range(i, dim):
            val = (fun(x + basis[i] + basis[j]) - fun(x + basis[i] - basis[j])
                   - fun(x - basis[i] + basis[j])
                   + fun(x - basis[i] - basis[j])) / (4 * step ** 2)
            hess[i, j] = hess[j, i] = val
    return hess


class Mixture:
    """A fitted mixture: data, optimum, E-step in both parameterisations."""

    def __init__(self, y):
        self.y = y
        self.pattern = make_theta_pattern()
        init = {"weights": onp.array([[0.5, 0.5]]),
                "means": onp.array([y.min() / 2, y.max() / 2])}
        result = refit(lambda x: neg_marginal(x, y, self.pattern) / len(y),
                       self.pattern.flatten(init, free=True))
        self.free = result.x
        self.theta = self.pattern.fold(self.free, free=True)
        a = log_joint(self.theta, y)
        self.log_ratio = a[:, 1:] - a[:, :1]
        self.resp = SimplexArrayPattern(2, (len(y),)).fold(
            self.log_ratio.ravel(), free=True)

    def em_log(self, **kwargs):
        y = self.y
        return EMCovariance(lambda th, eta: neg_objective_log(th, eta, y),
                            self.pattern, NumericArrayPattern((len(y), 1)),
                            self.theta, self.log_ratio, **kwargs)

    def em_prob(self, **kwargs):
        y = self.y
        return EMCovariance(lambda th, r: neg_objective_prob(th, r, y),
                            self.pattern, SimplexArrayPattern(2, (len(y),)),
                            self.theta, self.resp, **kwargs)

    def fd_marginal_hessian(self):
        return fd_hessian(lambda x: neg_marginal(x, self.y, self.pattern),
                          self.free)

    def dense_joint_hessian(self):
        """autograd's dense Hessian of the log-space joint objective in
        (theta free, eta), at the optimum."""
        y, p = self.y, self.free.size

        def joint(x):
            return neg_objective_log(self.pattern.fold(x[:p], free=True),
                                     x[p:].reshape(-1, 1), y)
        return autograd.hessian(joint)(onp.concatenate(
            [self.free, self.log_ratio.ravel()]))

    def score_covariance(self, theta, eta):
        """Louis: sum_n Cov_q[grad log p(y_n, z_n | theta)] (free coords)."""
        y, pattern = self.y, self.pattern
        free = pattern.flatten(theta, free=True)
        scores = autograd.jacobian(
            lambda x: log_joint(pattern.fold(x, free=True), y))(free)
        logits = onp.concatenate([onp.zeros((len(y), 1)), eta], axis=1)
        resp = onp.exp(logits - logsumexp(logits, axis=1, keepdims=True))
        centred = scores - onp.einsum("nk,nkp->np", resp, scores)[:, None]
        return onp.einsum("nk,nkp,nkq->pq", resp, centred, centred)


def rel_err(a, b):
    return onp.max(onp.abs(a - b)) / onp.max(onp.abs(b))


@pytest.fixture(scope="module")
def moderate():
    rng = onp.random.default_rng(11)
    y = onp.concatenate([rng.normal(-1.0, 1.0, 120), rng.normal(2.0, 1.0, 80)])
    return Mixture(y)


def separated_data(half_gap, middle=(-0.25, 0.2), rng_seed=5):
    """Two far-apart clusters plus points in the middle, all symmetric about
    0, so the MLE is symmetric and the middle points have moderate
    responsibilities (exactly 1/2 at 0)."""
    noise = onp.random.default_rng(rng_seed).standard_normal(20)
    return onp.concatenate([-half_gap + noise, half_gap - noise,
                            onp.asarray(middle, dtype=float)])


# ----------------------------------------------------------------------
# Numerical truths.

def test_matches_finite_difference_marginal_hessian(moderate):
    em = moderate.em_log()
    truth = moderate.fd_marginal_hessian()
    assert rel_err(em.marginal_hessian(), truth) < 1e-5
    assert rel_err(em.covariance(), onp.linalg.inv(truth)) < 1e-5
    assert em.info["num_hvps"] == 3 + 1 + 1   # p + k + probe
    assert em.info["num_dropped"] == 0


def test_simplex_eta_matches_log_space_eta(moderate):
    # The Schur complement does not depend on how eta is parameterised.
    by_prob, by_log = moderate.em_prob(), moderate.em_log()
    assert rel_err(by_prob.marginal_hessian(), by_log.marginal_hessian()) \
        < 1e-10


def test_matches_dense_schur_complement(moderate):
    em = moderate.em_log()
    p = 3
    hess = moderate.dense_joint_hessian()
    dense = hess[:p, :p] - hess[:p, p:] @ onp.linalg.solve(
        hess[p:, p:], hess[p:, :p])
    assert rel_err(em.marginal_hessian(), dense) < 1e-10
    assert rel_err(em.theta_hessian, hess[:p, :p]) < 1e-12
    assert onp.allclose(em.cross_blocks[:, :, 0], hess[:p, p:].T)


def test_naive_is_smaller_in_loewner_order(moderate):
    em = moderate.em_log()
    gap = onp.linalg.eigvalsh(em.covariance() - em.naive_covariance())
    scale = onp.max(onp.abs(em.covariance()))
    assert gap.min() >= -1e-12 * scale
    assert gap.max() > 1e-3 * scale       # strictly larger somewhere
    assert onp.all(em.standard_errors() > em.standard_errors("naive"))


def test_naive_is_inverse_q_hessian(moderate):
    em = moderate.em_log()
    y, pattern, eta = moderate.y, moderate.pattern, moderate.log_ratio

    def q_fun(x):   # -E_q log p(y, z | theta) at fixed q
        return neg_objective_log(pattern.fold(x, free=True), eta, y)
    truth = fd_hessian(q_fun, moderate.free)
    assert rel_err(em.naive_covariance(), onp.linalg.inv(truth)) < 1e-5


def test_louis_matches_corrected(moderate):
    em = moderate.em_log(louis_fun=moderate.score_covariance)
    assert rel_err(em.louis_covariance(), em.covariance()) < 1e-8
    assert rel_err(em.standard_errors("louis", folded=True),
                   em.standard_errors(folded=True)) < 1e-8
    assert "Louis SE" in em.comparison_table()


def test_folded_covariance_is_delta_method(moderate):
    em = moderate.em_log()
    pattern, free = moderate.pattern, moderate.free
    step = 1e-6
    jac = onp.stack([
        (pattern.flatten(pattern.fold(free + step * e, free=True), free=False)
         - pattern.flatten(pattern.fold(free - step * e, free=True),
                           free=False)) / (2 * step)
        for e in onp.eye(free.size)], axis=1)
    truth = jac @ em.covariance() @ jac.T
    assert rel_err(em.covariance(folded=True), truth) < 1e-7
    # The two weights sum to one: perfectly anti-correlated.
    cov_w = em.covariance(folded=True)[:2, :2]
    assert onp.isclose(cov_w[0, 1], -cov_w[0, 0], rtol=1e-10)
    assert em.standard_errors(folded=True).shape == (4,)


def test_theta_flat_coordinates():
    # With theta_free=False the Hessians are in flat coordinates.
    rng = onp.random.default_rng(3)
    y = onp.concatenate([rng.normal(-1.0, 1.0, 60), rng.normal(2.0, 1.0, 40)])
    mix = Mixture(y)
    means_pattern = NumericArrayPattern((2,))
    weights = mix.theta["weights"]

    def objective(means, eta):
        return neg_objective_log({"weights": weights, "means": means}, eta, y)
    em = EMCovariance(objective, means_pattern, NumericArrayPattern((100, 1)),
                      mix.theta["means"], mix.log_ratio, theta_free=False)

    def neg_marg(means):
        return -onp.sum(logsumexp(log_joint(
            {"weights": weights, "means": means}, y), axis=1))
    truth = fd_hessian(neg_marg, mix.theta["means"])
    assert rel_err(em.marginal_hessian(), truth) < 1e-5
    assert onp.allclose(em.covariance(folded=True), em.covariance())


# ----------------------------------------------------------------------
# Nearly degenerate posteriors.

@pytest.mark.parametrize("half_gap", [17.0, 25.0])
def test_well_separated_mixture(half_gap):
    mix = Mixture(separated_data(half_gap))
    extreme = onp.abs(mix.log_ratio).max()
    assert extreme > 500          # responsibilities below 1e-217
    em = mix.em_log()
    truth = mix.fd_marginal_hessian()
    assert rel_err(em.marginal_hessian(), truth) < 1e-5
    assert rel_err(em.covariance(), onp.linalg.inv(truth)) < 1e-5
    # The three middle points carry real Schur terms.
    gap = em.covariance() - em.naive_covariance()
    assert onp.linalg.eigvalsh(gap).max() > 1e-6
    if half_gap == 25.0:
        assert extreme > 745      # exp(-745) underflows: exact zeros
        assert em.info["num_dropped"] > 0


@pytest.mark.parametrize("half_gap", [19.5, 20.0])
def test_every_posterior_degenerate(half_gap):
    """No middle points: every responsibility is below exp(-700), so whole
    columns of local curvature are ~1e-305 (largest) down to exactly 0. The
    Jacobi scaling must not overflow (it once did, giving NaN); every
    direction is then negligible and the marginal Hessian is the Q-function
    Hessian."""
    mix = Mixture(separated_data(half_gap, middle=()))
    assert onp.abs(mix.log_ratio).min() > 700
    em = mix.em_log()
    truth = mix.fd_marginal_hessian()
    assert onp.all(onp.isfinite(em.marginal_hessian()))
    assert rel_err(em.marginal_hessian(), truth) < 1e-5
    assert em.info["num_dropped"] > 0


def test_dense_solve_fails_where_emcovariance_does_not():
    mix = Mixture(separated_data(25.0))
    p = 3
    hess = mix.dense_joint_hessian()
    truth = mix.fd_marginal_hessian()
    try:
        with onp.errstate(all="ignore"):
            top = onp.linalg.solve(hess, onp.eye(hess.shape[0])[:, :p])[:p]
            dense_cov = onp.linalg.inv(onp.linalg.inv(top))
        dense_ok = bool(onp.all(onp.isfinite(dense_cov))) and rel_err(
            dense_cov, onp.linalg.inv(truth)) < 1e-3
    except onp.linalg.LinAlgError:
        dense_ok = False
    assert not dense_ok
    assert rel_err(mix.em_log().covariance(), onp.linalg.inv(truth)) < 1e-5


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_probability_space_objective_gets_log_space_advice():
    mix = Mixture(separated_data(17.0))
    with pytest.raises(ValueError, match="log space"):
        mix.em_prob()


# ----------------------------------------------------------------------
# eta_blocks inference.

def test_infer_blocks_matches_flat_indices():
    base = PatternDict()
    base["mean"] = NumericArrayPattern((2,))
    base["cov"] = PSDSymmetricMatrixPattern(2)
    outer = PatternDict()
    outer["a"] = PatternArray((4,), base)
    outer["r"] = SimplexArrayPattern(3, (4,))
    outer["v"] = NumericArrayPattern((4, 2), lb=0.0)
    for free in (True, False):
        blocks = infer_eta_blocks(outer, free)
        assert blocks.shape == (4, outer.flat_length(free) // 4)
        for n in range(4):
            mask = outer.empty_bool(False)
            mask["a"] = {"mean": onp.zeros((4, 2), bool),
                         "cov": onp.zeros((4, 2, 2), bool)}
            mask["a"]["mean"][n] = True
            mask["a"]["cov"][n] = True
            mask["r"][n] = True
            mask["v"][n] = True
            truth = outer.flat_indices(mask, free=free)
            assert onp.array_equal(onp.sort(blocks[n]), truth)


def test_infer_blocks_errors():
    with pytest.raises(TypeError, match="eta_blocks: cannot infer"):
        infer_eta_blocks(PSDSymmetricMatrixPattern(3))
    mixed = PatternDict()
    mixed["a"] = NumericArrayPattern((4,))
    mixed["b"] = NumericArrayPattern((5,))
    with pytest.raises(ValueError, match=r"eta_pattern\['b'\] has 5"):
        infer_eta_blocks(mixed)
    with pytest.raises(ValueError, match="no leading observation axis"):
        infer_eta_blocks(NumericArrayPattern(()))
    with pytest.raises(TypeError, match="free"):
        infer_eta_blocks(NumericArrayPattern((3,)), free="yes")


def test_explicit_blocks_equal_inferred(moderate):
    y = moderate.y
    em = EMCovariance(lambda th, eta: neg_objective_log(th, eta, y),
                      moderate.pattern, NumericArrayPattern((len(y), 1)),
                      moderate.theta, moderate.log_ratio,
                      eta_blocks=onp.arange(len(y))[::-1, None])
    assert rel_err(em.marginal_hessian(),
                   moderate.em_log().marginal_hessian()) < 1e-12


# ----------------------------------------------------------------------
# Bad input.

def test_not_an_optimum(moderate):
    y = moderate.y
    theta = {"weights": moderate.theta["weights"],
             "means": moderate.theta["means"] + 0.01}
    a = log_joint(theta, y)
    with pytest.raises(ValueError, match="theta_opt is not an optimum"):
        EMCovariance(lambda th, eta: neg_objective_log(th, eta, y),
                     moderate.pattern, NumericArrayPattern((len(y), 1)),
                     theta, a[:, 1:] - a[:, :1])
    with pytest.raises(ValueError, match="eta_opt is not an optimum"):
        EMCovariance(lambda th, eta: neg_objective_log(th, eta, y),
                     moderate.pattern, NumericArrayPattern((len(y), 1)),
                     moderate.theta, moderate.log_ratio + 0.01)
    # The check can be switched off.
    EMCovariance(lambda th, eta: neg_objective_log(th, eta, y),
                 moderate.pattern, NumericArrayPattern((len(y), 1)),
                 moderate.theta, moderate.log_ratio + 0.01,
                 validate_optimum=False)


def test_maximum_instead_of_minimum(moderate):
    y = moderate.y
    with pytest.raises(ValueError, match="not at a minimum in eta"):
        EMCovariance(lambda th, eta: -neg_objective_log(th, eta, y),
                     moderate.pattern, NumericArrayPattern((len(y), 1)),
                     moderate.theta, moderate.log_ratio)


def _em(moderate, **overrides):
    y = moderate.y
    args = dict(objective_fun=lambda th, eta: neg_objective_log(th, eta, y),
                theta_pattern=moderate.pattern,
                eta_pattern=NumericArrayPattern((len(y), 1)),
                theta_opt=moderate.theta, eta_opt=moderate.log_ratio)
    args.update(overrides)
    return EMCovariance(**args)


def test_bad_patterns_and_values(moderate):
    n = len(moderate.y)
    with pytest.raises(TypeError, match="theta_pattern"):
        _em(moderate, theta_pattern="not a pattern")
    with pytest.raises(TypeError, match="eta_pattern"):
        _em(moderate, eta_pattern=None)
    with pytest.raises(TypeError, match="objective_fun"):
        _em(moderate, objective_fun=3)
    with pytest.raises(TypeError, match="louis_fun"):
        _em(moderate, louis_fun="x")
    with pytest.raises(TypeError, match="theta_free"):
        _em(moderate, theta_free=1)
    with pytest.raises(ValueError, match="theta_opt does not match "
                                         "theta_pattern"):
        _em(moderate, theta_opt={"weights": onp.array([[0.5, 0.5]]),
                                 "means": onp.zeros(3)})
    with pytest.raises(ValueError, match="theta_opt does not match"):
        _em(moderate, theta_opt={"weights": onp.array([[0.7, 0.7]]),
                                 "means": onp.zeros(2)})
    with pytest.raises(ValueError, match="eta_opt does not match "
                                         "eta_pattern"):
        _em(moderate, eta_pattern=NumericArrayPattern((n - 1, 1)))
    bad = moderate.log_ratio.copy()
    bad[4, 0] = onp.nan
    with pytest.raises(ValueError, match="eta_opt"):
        _em(moderate, eta_opt=bad)
    assert onp.isnan(bad[4, 0])     # not mutated either way
    with pytest.raises(ValueError, match="local_rtol"):
        _em(moderate, local_rtol=2.0)


def test_bad_eta_blocks(moderate):
    n = len(moderate.y)
    with pytest.raises(ValueError, match="eta_blocks must list every eta "
                                         "coordinate exactly once"):
        _em(moderate, eta_blocks=onp.zeros((n, 1), int))
    with pytest.raises(ValueError, match=r"eta_blocks\[0, 0\] = -1"):
        _em(moderate, eta_blocks=onp.arange(-1, n - 1)[:, None])
    with pytest.raises(ValueError, match="exactly once"):
        _em(moderate, eta_blocks=onp.arange(n - 1)[:, None])
    with pytest.raises(ValueError, match="eta_blocks: expected a non-empty"):
        _em(moderate, eta_blocks=onp.arange(n))
    with pytest.raises(TypeError, match="eta_blocks"):
        _em(moderate, eta_blocks=onp.arange(n, dtype=float)[:, None])


def test_blocks_that_interact_are_rejected(moderate):
    # An E-step objective that couples observations (here neighbouring
    # log-ratios) does not factorise as eta_blocks claims.
    y = moderate.y

    def coupled(theta, eta):
        return neg_objective_log(theta, eta, y) + 0.01 * np.sum(
            eta[1:, 0] * eta[:-1, 0])
    with pytest.raises(ValueError, match="eta_blocks"):
        _em(moderate, objective_fun=coupled)


def test_objective_failures(moderate):
    with pytest.raises(ValueError, match="objective_fun must return a "
                                         "finite scalar"):
        _em(moderate, objective_fun=lambda th, eta: np.nan)
    # The user's KeyError is wrapped (a ValueError naming objective_fun and
    # the missing key), the original kept as the cause.
    with pytest.raises(ValueError, match="objective_fun.*raised KeyError.*"
                                         "missing key 'missing'") as info:
        _em(moderate, objective_fun=lambda th, eta: th["missing"])
    assert isinstance(info.value.__cause__, KeyError)


def test_louis_errors_and_table_names(moderate):
    em = moderate.em_log()
    with pytest.raises(ValueError, match="louis_covariance needs louis_fun"):
        em.louis_covariance()
    with pytest.raises(ValueError, match="louis_fun must return a"):
        moderate.em_log(louis_fun=lambda th, eta: onp.eye(2)) \
            .louis_covariance()
    with pytest.raises(ValueError, match="names: expected 4 names"):
        em.comparison_table(names=["a"])
    with pytest.raises(ValueError, match="kind"):
        em.standard_errors("sandwich")
    with pytest.raises(TypeError, match="folded"):
        em.covariance(folded="yes")
    table = em.comparison_table(names=["w0", "w1", "mu0", "mu1"])
    lines = table.splitlines()
    assert len(lines) == 6 and lines[2].startswith("w0")
    ratio = float(lines[4].split()[-1])
    se = em.standard_errors(folded=True)[2] / \
        em.standard_errors("naive", folded=True)[2]
    assert onp.isclose(ratio, se, rtol=1e-5)
    assert "weights_[0,1]" in em.comparison_table(folded=False)
    assert repr(em).startswith("EMCovariance(theta_dim=3")
    assert DEFAULT_LOCAL_RTOL == em.info["local_rtol"]


def test_flat_local_direction_coupled_to_theta_is_rejected():
    # f = sum_n (theta^2 / (2N) + theta * eta_n): eta has no curvature but
    # moves theta's gradient, so (0, 0) is a saddle, not a minimum.
    num = 5

    def objective(theta, eta):
        return theta[0] ** 2 / 2.0 + theta[0] * np.sum(eta)
    with pytest.raises(ValueError, match="not positive semi-definite"):
        EMCovariance(objective, NumericArrayPattern((1,)),
                     NumericArrayPattern((num,)), onp.zeros(1),
                     onp.zeros(num))


def test_log_simplex_keeps_relative_precision():
    # Truth: r and the Fisher information diag(r) - r r^T of the log-ratio
    # coordinates with 1 - r_j computed from the other entries, in logs.
    cases = [[600.0, 0.0], [600.0, 599.0], [-600.0, 3.0], [2.0, 1.0],
             [46.0, 0.0], [30.0, -20.0]]
    for eta in cases:
        eta = onp.array([eta])
        logits = onp.concatenate([[0.0], eta[0]])
        log_r = logits - onp.logaddexp.reduce(logits)
        assert onp.allclose(log_simplex(eta)[0], log_r, rtol=1e-13,
                            atol=1e-13)
        r = onp.exp(log_r)
        rest = onp.array([onp.exp(onp.logaddexp.reduce(onp.delete(log_r, j)))
                          for j in range(3)])
        fisher = -onp.outer(r[1:], r[1:])
        fisher[onp.diag_indices(2)] = r[1:] * rest[1:]

        def neg_f(e):   # KL(q || posterior) up to a constant
            lr = log_simplex(e)
            return np.sum(np.exp(lr) * (lr - logits[None]))
        hess = autograd.hessian(neg_f)(eta).reshape(2, 2)
        assert onp.all(onp.abs(hess - fisher) <= 1e-12 * onp.abs(fisher))
