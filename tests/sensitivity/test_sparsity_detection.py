"""Sparsity detection on the objectives researchers write: detected
patterns hold every nonzero of autograd's dense Hessians at several random
points, are tight on structured ones (GLMMs, state space, matrix
factorisation, block-diagonal, arrowhead, banded), and are checked where
control flow branches.  Primitive-level rules: test_sparsity_rules.py.
"""

import autograd
import autograd.numpy as np
import autograd.scipy.special as asp
import numpy as onp
import pytest
from autograd.extend import defvjp, primitive

from refold.models import gaussian_mixture as gm
from refold.models import logistic_glmm as lg
from refold.patterns import (FlattenFunctionInput, NumericArrayPattern,
                             PatternArray, PatternDict,
                             PSDSymmetricMatrixPattern, SimplexArrayPattern)
from refold.sensitivity import sparse_hessian
from refold.sensitivity.sparsity import (SparsityWarning, hessian_sparsity,
                                         register_sparsity_rule)
from tests.sensitivity._sparsity_helpers import (RNG_SEEDS, check_hessian,
                                                 nonzero_pattern)

# ----------------------------------------------------------------------
# Structured objectives (tight: nnz within 1.5x of the truth)
# ----------------------------------------------------------------------
def test_logistic_glmm_library_objective_is_tight():
    data = lg.simulate(60, 6, 2, rng=0)
    obj = lg.GLMMObjective(data)
    dim = obj.pattern.flat_length(True)
    ratio = check_hessian(obj, dim, scale=0.3, tight=1.5)
    assert ratio < 1.2


def _hand_glmm(theta, x, y, group, n_groups):
    k = x.shape[1]
    beta, u, log_tau = theta[:k], theta[k:k + n_groups], theta[-1]
    z = np.dot(x, beta) + u[group]
    nll = np.sum(np.logaddexp(0.0, z) - y * z)
    prior = 0.5 * np.exp(log_tau) * np.sum(u ** 2) - 0.5 * n_groups * log_tau
    return nll + prior + 0.5 * np.sum(beta ** 2)


def test_hand_written_glmm_with_integer_indexing_is_arrowhead_and_tight():
    rng = onp.random.default_rng(3)
    n, k, g = 40, 3, 8
    x = rng.standard_normal((n, k))
    y = (rng.random(n) < 0.5).astype(float)
    group = onp.repeat(onp.arange(g), n // g)
    args = (x, y, group, g)
    check_hessian(_hand_glmm, k + g + 1, args, tight=1.5)
    pattern = hessian_sparsity(_hand_glmm, onp.zeros(k + g + 1),
                               *args).toarray()
    local = pattern[k:k + g, k:k + g]
    assert (local == onp.eye(g, dtype=bool)).all()   # no local-local links


def _random_walk(theta, y):
    t = y.shape[0]
    states, log_q = theta[:t], theta[t]
    steps = states[1:] - states[:-1]
    return (0.5 * np.sum((y - states) ** 2)
            + 0.5 * np.exp(-log_q) * np.sum(steps ** 2)
            + 0.5 * (t - 1) * log_q)


def test_random_walk_state_space_is_tridiagonal_plus_global():
    y = onp.cumsum(onp.random.default_rng(4).standard_normal(12))
    check_hessian(_random_walk, 13, (y,), tight=1.5)
    pattern = hessian_sparsity(_random_walk, onp.zeros(13), y).toarray()
    band = onp.abs(onp.subtract.outer(onp.arange(12), onp.arange(12))) <= 1
    assert (pattern[:12, :12] == band).all()


def _cumsum_walk(theta, y):
    # The same model parameterised by increments: states = cumsum(eps).
    states = np.cumsum(theta)
    return 0.5 * np.sum((y - states[::3]) ** 2) + 0.5 * np.sum(theta ** 2)


def test_cumsum_prefixes_are_exact():
    y = onp.ones(3)
    check_hessian(_cumsum_walk, 9, (y,), tight=1.0)


def _pentadiagonal(x):
    second = x[2:] - 2.0 * x[1:-1] + x[:-2]
    return np.sum(second ** 2) + np.sum(np.cosh(x))


def test_banded_second_differences_are_tight():
    check_hessian(_pentadiagonal, 10, tight=1.0)
    check_hessian(lambda x: np.sum(np.diff(x, 2) ** 2) + np.sum(x ** 4),
                  10, tight=1.0)


def test_quadratic_forms_through_a_banded_constant_are_tight():
    # Both operands traced, meeting only through the constant's nonzeros.
    prec = 2.0 * onp.eye(8) - onp.eye(8, k=1) - onp.eye(8, k=-1)
    check_hessian(lambda x: np.einsum("i,ij,j->", x, prec, x)
                  + np.sum(np.cosh(x)), 8, tight=1.0)
    check_hessian(lambda x: np.sum(np.einsum(
        "ki,ij,kj->k", x.reshape(2, 4), prec[:4, :4], x.reshape(2, 4))
        ** 2), 8, tight=1.0)
    check_hessian(lambda x: np.einsum("i,ij,j", x, prec, np.tanh(x)), 8,
                  tight=1.0)


def _matrix_factorisation(theta, rows, cols, ratings, n, m, k):
    u = np.reshape(theta[:n * k], (n, k))
    v = np.reshape(theta[n * k:], (m, k))
    fitted = np.sum(u[rows] * v[cols], axis=1)
    return (0.5 * np.sum((ratings - fitted) ** 2)
            + 0.05 * (np.sum(u ** 2) + np.sum(v ** 2)))


def test_matrix_factorisation_over_observed_pairs_is_tight():
    rng = onp.random.default_rng(5)
    n, m, k = 6, 5, 2
    pairs = onp.argwhere(rng.random((n, m)) < 0.35)
    rows, cols = pairs[:, 0], pairs[:, 1]
    args = (rows, cols, rng.standard_normal(len(rows)), n, m, k)
    check_hessian(_matrix_factorisation, (n + m) * k, args, tight=1.5)
    pattern = hessian_sparsity(_matrix_factorisation,
                               onp.ones((n + m) * k), *args).toarray()
    for i in range(n):
        for j in range(m):
            linked = pattern[i * k, n * k + j * k]
            assert linked == bool(((rows == i) & (cols == j)).any())


def _block_diagonal(x):
    blocks = np.reshape(x, (4, 3))
    return np.sum(asp.logsumexp(blocks, axis=1)) + np.sum(
        np.prod(blocks[:, :2], axis=-1))


def test_block_diagonal_is_tight():
    check_hessian(_block_diagonal, 12, tight=1.5)


def _arrowhead(x, w):
    glob, local = x[:2], np.reshape(x[2:], (5, 2))
    inner = np.einsum("ij,j->i", local, glob) + np.dot(local ** 2, w)
    return np.sum(np.log1p(np.exp(inner))) + np.sum(glob ** 2)


def test_arrowhead_is_tight():
    check_hessian(_arrowhead, 12, (onp.array([0.5, -1.0]),), tight=1.5)


def _batched_covariances(x, targets):
    # Block-diagonal through batched linear algebra: one 2x2 matrix each.
    mats = np.reshape(x, (3, 2, 2))
    spd = np.matmul(mats, np.swapaxes(mats, 1, 2)) + np.eye(2)[None]
    sign, logdet = np.linalg.slogdet(spd)
    quad = np.einsum("kij,kij->k", np.linalg.inv(spd), targets)
    chol = np.linalg.cholesky(spd)
    return np.sum(logdet + quad) + np.sum(np.linalg.solve(chol, targets)
                                          ** 2)


def test_batched_linear_algebra_is_block_diagonal():
    targets = onp.stack([onp.eye(2) * (k + 1) for k in range(3)])
    check_hessian(_batched_covariances, 12, (targets,), tight=1.0)


# ----------------------------------------------------------------------
# Models and pattern folds
# ----------------------------------------------------------------------
def test_gmm_em_objective():
    y = onp.random.default_rng(6).standard_normal((5, 2))
    pattern = gm.theta_pattern(2, 2)
    n_theta = pattern.flat_length(True)
    theta0 = pattern.flatten(pattern.random(rng=onp.random.default_rng(1))
                             if hasattr(pattern, "random") else
                             {"weights": onp.array([0.4, 0.6]),
                              "means": onp.zeros((2, 2)),
                              "covs": onp.stack([onp.eye(2)] * 2)},
                             free=True)

    def objective(z):
        theta = pattern.fold(z[:n_theta], free=True)
        eta = np.reshape(z[n_theta:], (5, 1))
        return gm.negative_em_objective(theta, eta, y)

    points = [onp.concatenate([theta0 + 0.1 * rng.standard_normal(n_theta),
                               rng.standard_normal(5)])
              for rng in map(onp.random.default_rng, RNG_SEEDS)]
    check_hessian(objective, n_theta + 5, points=points)
    detected = hessian_sparsity(objective, points[0]).toarray()
    eta = detected[n_theta:, n_theta:]
    assert (eta == onp.eye(5, dtype=bool)).all()     # observations separate


def test_psd_and_simplex_folds_are_block_diagonal():
    pattern = PatternDict()
    pattern["cov"] = PatternArray((3,), PSDSymmetricMatrixPattern(2))
    pattern["w"] = SimplexArrayPattern(3, (2,))
    pattern["mu"] = NumericArrayPattern((2,))
    target = onp.arange(1.0, 4.0)

    def kl(par):
        cov, w = par["cov"], par["w"]
        trace = np.sum(np.diagonal(cov, axis1=-1, axis2=-2), axis=1)
        logdet = np.linalg.slogdet(cov)[1]
        spread = np.sum(np.linalg.inv(cov), axis=(1, 2))
        return (np.sum(trace - logdet + spread) + np.sum(w * np.log(w))
                + np.sum(np.dot(w, target) ** 2) + np.sum(par["mu"] ** 4))

    fun = FlattenFunctionInput(kl, pattern, free=True)
    dim = pattern.flat_length(True)
    ratio = check_hessian(fun, dim, scale=0.5, tight=1.5)
    assert ratio <= 1.5


def test_fold_with_free_true_psd_matrix():
    pattern = PSDSymmetricMatrixPattern(3)
    dim = pattern.flat_length(True)

    def fun(z):
        mat = pattern.fold(z, free=True)
        return np.trace(mat) - np.linalg.slogdet(mat)[1] + mat[0, 1] ** 2

    check_hessian(fun, dim, scale=0.3)


# ----------------------------------------------------------------------
# Piecewise, special functions, dense layers, array plumbing
# ----------------------------------------------------------------------
def _piecewise(x):
    return (np.sum(np.where(x > 0, x ** 2, x ** 3))
            + np.sum(np.maximum(x[1:], x[:-1]) ** 2)
            + np.sum(np.abs(x) * x[::-1])
            + np.sum(np.clip(x, -0.5, 0.5) ** 2)
            + np.max(x[:3]) ** 2)


def test_piecewise_functions():
    check_hessian(_piecewise, 6)


def _special(x):
    pos = np.exp(x[:3])
    return (np.sum(asp.gammaln(pos)) + np.sum(asp.digamma(pos) * x[3:])
            + asp.logsumexp(x[:4]) + np.sum(asp.expit(x[2:]) ** 2)
            + np.sum(np.logaddexp(x[:3], x[3:])))


def test_special_functions():
    check_hessian(_special, 6)


def _mlp(theta, inputs, targets):
    w1 = np.reshape(theta[:6], (2, 3))
    w2 = theta[6:9]
    hidden = np.tanh(np.matmul(inputs, w1))
    out = hidden @ w2                 # both operands traced
    return np.sum((out - targets) ** 2)


def test_dense_mlp_is_dense_and_complete():
    rng = onp.random.default_rng(7)
    args = (rng.standard_normal((4, 2)), rng.standard_normal(4))
    check_hessian(_mlp, 9, args)
    assert hessian_sparsity(_mlp, onp.ones(9), *args).nnz == 81


# ----------------------------------------------------------------------
# Control flow, unknown primitives, registration
# ----------------------------------------------------------------------
def _branchy(x):
    if x[0] > 0:
        return np.sum(x ** 2) + x[1] * x[2]
    return np.sum(x ** 2) + x[2] * x[3]


def test_control_flow_pattern_is_right_at_the_base_point():
    here, there = onp.array([1.0, 0.5, -0.3, 0.2]), \
        onp.array([-1.0, 0.5, -0.3, 0.2])
    for x in (here, there):
        detected = hessian_sparsity(_branchy, x).toarray()
        exact = nonzero_pattern(autograd.hessian(_branchy)(x))
        assert (detected == exact).all()
    hess = sparse_hessian(_branchy, here)
    onp.testing.assert_allclose(hess.toarray(),
                                autograd.hessian(_branchy)(here))
    with pytest.raises(ValueError, match=r"coordinate [23]\b"):
        sparse_hessian(_branchy, there, hessian_sparsity(_branchy, here))


@primitive
def _no_rule(v):
    return onp.sin(v[::-1]) * onp.array([1.0, 2.0, 3.0])


defvjp(_no_rule, lambda ans, v: lambda g: (g * onp.array([1.0, 2.0, 3.0])
                                           * onp.cos(v[::-1]))[::-1])


def test_unknown_primitive_is_conservative_with_one_warning():
    def fun(x):
        return np.sum(_no_rule(x[:3]) ** 2) + np.sum(_no_rule(x[1:]))

    x = onp.linspace(0.1, 0.4, 4)
    with pytest.warns(SparsityWarning) as record:
        detected = hessian_sparsity(fun, x).toarray()
    messages = [str(w.message) for w in record
                if issubclass(w.category, SparsityWarning)]
    assert len(messages) == 1 and "_no_rule" in messages[0]
    # Every input of each call, nonlinearly: two overlapping blocks.
    expected = onp.zeros((4, 4), dtype=bool)
    expected[:3, :3] = expected[1:, 1:] = True
    assert (detected == expected).all()
    truth = nonzero_pattern(autograd.hessian(fun)(x))
    assert not (truth & ~detected).any()


@primitive
def _scaled_reverse(v):
    return 2.0 * v[::-1]


defvjp(_scaled_reverse, lambda ans, v: lambda g: 2.0 * g[::-1])


@primitive
def _square(v):
    return v ** 2


defvjp(_square, lambda ans, v: lambda g: 2.0 * g * v)


@pytest.mark.parametrize("kind, expected_nnz", [
    ("selection", 3), ("linear", 9), ("nonlinear", 9),
    ("linear_map", 3), ("elementwise_linear", 3), ("zero", 0)])
def test_registered_kinds(kind, expected_nnz):
    prim = primitive(lambda v: v[::-1])
    defvjp(prim, lambda ans, v: lambda g: g[::-1])
    matrix = onp.fliplr(onp.eye(3)) if kind == "linear_map" else None
    if kind == "elementwise_linear":
        prim = primitive(lambda v: 2.0 * v)
    register_sparsity_rule(prim, kind, matrix=matrix)
    pattern = hessian_sparsity(lambda x: np.sum(prim(x) ** 4), onp.ones(3))
    assert pattern.nnz == expected_nnz


def test_registered_elementwise_nonlinear():
    register_sparsity_rule(_square, "elementwise")
    assert check_hessian(lambda x: np.sum(_square(x) * x[::-1]), 4) <= 1.0


def test_register_sparsity_rule_rejects_bad_input():
    with pytest.raises(TypeError, match="primitive"):
        register_sparsity_rule(lambda v: v, "linear")
    with pytest.raises(ValueError, match="kind"):
        register_sparsity_rule(_scaled_reverse, "diagonal")
    with pytest.raises(ValueError, match="matrix"):
        register_sparsity_rule(_scaled_reverse, "linear_map")
    with pytest.raises(ValueError, match="matrix"):
        register_sparsity_rule(_scaled_reverse, "linear", matrix=onp.eye(3))
    with pytest.raises(ValueError, match="2-d"):
        register_sparsity_rule(_scaled_reverse, "linear_map",
                               matrix=onp.ones(3))


def test_bad_arguments_are_named():
    with pytest.raises(TypeError, match="fun"):
        hessian_sparsity(3.0, onp.ones(2))
    with pytest.raises(ValueError, match="finite"):
        hessian_sparsity(np.sum, onp.array([1.0, onp.nan]))
    with pytest.raises(TypeError, match="x"):
        hessian_sparsity(np.sum, onp.array(["a"]))
    with pytest.raises(ValueError, match="scalar"):
        hessian_sparsity(lambda x: x ** 2, onp.ones(2))
