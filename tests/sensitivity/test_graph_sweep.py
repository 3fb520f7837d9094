"""The recorded-graph sweep behind ``make_hvp_at`` against independent truth.

``make_hvp_at`` precomputes the elementwise coefficients of the gradient's
graph and folds chains of elementwise nodes into single multiplications.
Every product is checked against the dense autograd Hessian (``autograd.
hessian``, forward over reverse, which shares none of that machinery) and
against central finite differences of the gradient.
"""
import warnings

import autograd
import autograd.numpy as np
import autograd.scipy.special as asp
import numpy as onp
import pytest

from refold.models import logistic_glmm as lg
from refold.sensitivity._graph_sweep import RecordedGraph
from refold.sensitivity.hvp import make_hvp_at
from tests.sensitivity.test_sparsity_detection import (
    _arrowhead, _batched_covariances, _hand_glmm, _matrix_factorisation,
    _mlp, _piecewise, _random_walk, _special)

RNG = onp.random.default_rng(20261203)


def _broadcast_quadrature(theta, nodes, weights):
    # The logistic-GLMM pattern: (N, 1) means and sds against (1, Q) nodes.
    n = theta.shape[0] // 2
    mean, sd = theta[:n], np.exp(theta[n:])
    z = mean[:, None] + sd[:, None] * nodes[None, :]
    soft = np.logaddexp(0.0, z)
    return np.sum(np.dot(soft, weights)) + np.sum(np.mean(z ** 2, axis=1))


def _reductions(x):
    m = np.reshape(x, (3, 4))
    return (np.sum(np.sum(m, axis=0) ** 2)
            + np.sum(np.sum(m, axis=1, keepdims=True) * m)
            + np.mean(np.exp(m), axis=(0, 1)) + np.sum(np.mean(m, 0) ** 3)
            + np.sum(m, axis=-1)[1] ** 2)


def _elementwise_zoo(x):
    pos = np.exp(x) + 0.5
    return (np.sum(np.log(pos) * np.sqrt(pos)) + np.sum(np.tanh(x) ** 2)
            + np.sum(x * x) + np.sum(pos ** x) + np.sum(x / pos)
            + np.sum(np.sin(x) * np.cos(x)) + np.sum(np.log1p(pos))
            + np.sum(np.expm1(x / 4) ** 2) + np.sum(np.square(np.abs(x)) * x)
            + np.sum(np.reciprocal(pos) - np.negative(x) ** 3)
            + np.sum(np.arctan(x) * np.arcsinh(x)) + np.sum(np.log2(pos))
            + np.sum(np.log10(pos) * np.exp2(x / 3)) + np.sum(np.sinh(x / 5)
                                                              * np.cosh(x)))


def _shared_subexpressions(x):
    # One node feeding several children and itself twice.
    e = np.exp(x[:3] - x[3:])
    d = e * e + e
    return np.sum(d * np.logaddexp(e, d)) + np.sum(e) ** 2


def _scalar_chain(x):
    s = np.sum(x ** 2)
    return np.exp(-s / 10) * np.log(s + 1) + s ** 1.5


def _glmm_library(n_obs=60, n_groups=6):
    data = lg.simulate(n_obs, n_groups, 3, rng=0)
    objective = lg.GLMMObjective(data)
    dim = objective.pattern.flat_length(True)
    return objective, dim


def _cases():
    x = RNG.standard_normal((30, 3))
    y = (RNG.random(30) < 0.5).astype(float)
    group = onp.repeat(onp.arange(5), 6)
    pairs = onp.argwhere(RNG.random((4, 3)) < 0.6)
    nodes, weights = onp.polynomial.hermite.hermgauss(5)
    glmm, glmm_dim = _glmm_library()
    targets = RNG.standard_normal((3, 2, 2))
    return {
        "glmm library": (glmm, glmm_dim, ()),
        "hand glmm": (_hand_glmm, 3 + 5 + 1, (x, y, group, 5)),
        "quadrature broadcast": (_broadcast_quadrature, 14,
                                 (nodes, weights)),
        "random walk": (_random_walk, 9, (RNG.standard_normal(8),)),
        "matrix factorisation": (_matrix_factorisation, 14,
                                 (pairs[:, 0], pairs[:, 1],
                                  RNG.standard_normal(len(pairs)), 4, 3, 2)),
        "arrowhead": (_arrowhead, 12, (onp.array([0.5, -1.0]),)),
        "batched linalg": (_batched_covariances, 12, (targets,)),
        "piecewise": (_piecewise, 6, ()),
        "special": (_special, 6, ()),
        "mlp": (_mlp, 9, (RNG.standard_normal((7, 2)),
                          RNG.standard_normal(7))),
        "reductions": (_reductions, 12, ()),
        "elementwise zoo": (_elementwise_zoo, 5, ()),
        "shared subexpressions": (_shared_subexpressions, 6, ()),
        "scalar chain": (_scalar_chain, 4, ()),
    }


CASES = _cases()


@pytest.mark.parametrize("name", sorted(CASES))
def test_products_match_the_dense_hessian(name):
    fun, dim, args = CASES[name]
    rng = onp.random.default_rng(abs(hash(name)) % 2 ** 32)
    for _ in range(2):
        x = 0.5 * rng.standard_normal(dim)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            dense = autograd.hessian(lambda z: fun(z, *args))(x)
            hvp = make_hvp_at(fun, x, *args)
            for _ in range(3):
                v = rng.standard_normal(dim)
                got, want = hvp(v), dense @ v
                scale = max(1.0, onp.abs(want).max())
                assert onp.abs(got - want).max() <= 1e-10 * scale, name


def test_products_match_finite_differences_of_the_gradient():
    fun, dim, args = CASES["quadrature broadcast"]
    grad = autograd.grad(fun)
    x = 0.3 * RNG.standard_normal(dim)
    v = RNG.standard_normal(dim)
    eps = 1e-5
    fd = (grad(x + eps * v, *args) - grad(x - eps * v, *args)) / (2 * eps)
    got = make_hvp_at(fun, x, *args)(v)
    assert onp.allclose(got, fd, rtol=1e-6, atol=1e-7)


def test_repeated_sweeps_do_not_share_or_mutate_state():
    fun, dim, args = CASES["shared subexpressions"]
    x = RNG.standard_normal(dim)
    hvp = make_hvp_at(fun, x, *args)
    v = RNG.standard_normal(dim)
    first = hvp(v)
    first_copy = first.copy()
    others = [hvp(RNG.standard_normal(dim)) for _ in range(3)]
    assert onp.array_equal(hvp(v), first_copy)
    assert onp.array_equal(first, first_copy)
    assert not any(o is first for o in others)


def test_chains_are_folded_into_fewer_steps():
    # exp(x - logaddexp(0, x)) * c of the GLMM's inner backward pass: its
    # elementwise chain must collapse (fewer steps than recorded nodes).
    fun, dim, args = CASES["quadrature broadcast"]
    graph = RecordedGraph(autograd.grad(lambda z: fun(z, *args)),
                          onp.zeros(dim))
    from autograd.util import toposort
    recorded = len(list(toposort(graph._end)))
    graph.vjp(onp.ones(dim))
    assert len(graph._steps) < recorded - 4


def test_a_linear_objective_has_a_zero_hessian():
    hvp = make_hvp_at(lambda z: np.sum(3.0 * z), onp.ones(4))
    out = hvp(onp.arange(4.0))
    assert out.shape == (4,) and onp.array_equal(out, onp.zeros(4))


def test_a_quadratic_in_one_coordinate():
    # Graph where part of the gradient does not depend on x at all.
    hvp = make_hvp_at(lambda z: z[0] ** 2 + np.sum(z), onp.ones(3))
    assert onp.array_equal(hvp(onp.array([1.0, 2.0, 3.0])),
                           onp.array([2.0, 0.0, 0.0]))


# ---------------------------------------------------------------------------
# The base-point record shared by the linear approximation.
# ---------------------------------------------------------------------------
def _hyper_objective(theta, h):
    mean, log_sd = theta[:3], theta[3:]
    return (np.sum(np.logaddexp(0.0, mean[:, None] + np.exp(log_sd)[:, None]
                                * onp.array([[-1.0, 0.0, 1.0]])))
            + 0.5 * np.exp(h[0]) * np.sum(theta ** 2) + h[1] * np.sum(mean)
            + np.sum(h ** 2) * np.sum(log_sd ** 3))


def test_base_point_record_against_autograd():
    from refold.sensitivity._base_point import BasePointRecord
    x = RNG.standard_normal(6)
    h = onp.array([0.3, -0.7])
    record = BasePointRecord(_hyper_objective, x, h)
    assert onp.isclose(record.value, _hyper_objective(x, h), rtol=1e-14)
    assert onp.allclose(record.gradient,
                        autograd.grad(_hyper_objective)(x, h), rtol=1e-13)
    cross = autograd.jacobian(autograd.grad(_hyper_objective, 0), 1)(x, h)
    assert onp.allclose(record.cross(), cross, rtol=1e-12, atol=1e-13)
    dense = autograd.hessian(_hyper_objective)(x, h)
    v = RNG.standard_normal(6)
    assert onp.allclose(record.hvp(v), dense @ v, rtol=1e-12, atol=1e-13)


def test_sensitivity_from_the_record_equals_the_separate_path():
    # hyper_par_objective_fun (the same function) switches the record off:
    # both paths must agree, and match finite differences of refits.
    import scipy.optimize
    from refold.sensitivity.linear_approx import (
        HyperparameterSensitivityLinearApproximation as Approx)
    h0 = onp.array([0.2, 0.1])

    def fit(h):
        return scipy.optimize.minimize(
            _hyper_objective, onp.zeros(6), args=(h,), method="Newton-CG",
            jac=autograd.grad(_hyper_objective),
            hess=autograd.hessian(_hyper_objective),
            options=dict(xtol=1e-13)).x
    opt = fit(h0)
    shared = Approx(_hyper_objective, opt, h0).get_dopt_dhyper()
    separate = Approx(_hyper_objective, opt, h0,
                      hyper_par_objective_fun=_hyper_objective
                      ).get_dopt_dhyper()
    assert onp.allclose(shared, separate, rtol=1e-11, atol=1e-13)
    eps = 1e-5
    for j in range(2):
        step = onp.zeros(2)
        step[j] = eps
        fd = (fit(h0 + step) - fit(h0 - step)) / (2 * eps)
        assert onp.allclose(shared[:, j], fd, rtol=1e-5, atol=1e-7)


def test_the_record_is_not_kept_between_calls():
    # A user who changes the objective's data between two calls must see
    # the change: nothing recorded at one call is reused at the next.
    from refold.sensitivity.linear_approx import (
        HyperparameterSensitivityLinearApproximation as Approx)
    data = onp.array([1.0, 2.0, 3.0])

    def objective(theta, h):
        return 0.5 * np.sum((theta - data) ** 2 * np.exp(h[0])) \
            + h[0] * np.sum(theta)

    h0 = onp.array([0.0])
    # opt(h) = data - h exp(-h): d opt / dh = -1 at h = 0, for any data.
    first = Approx(objective, data.copy(), h0)
    data *= 2.0
    second = Approx(objective, data.copy(), h0)
    assert onp.allclose(first.get_dopt_dhyper(), -1.0, rtol=1e-12)
    assert onp.allclose(second.get_dopt_dhyper(), -1.0, rtol=1e-12)
    # The old point is no optimum of the changed objective: seen, not reused.
    with pytest.raises(ValueError, match="is not an optimum"):
        Approx(objective, data / 2.0, h0)


def test_a_failing_record_falls_back_to_the_checked_path():
    from refold.sensitivity._base_point import record_or_none
    assert record_or_none(lambda t, h: t * h[0], onp.ones(2),
                          onp.ones(1)) is None
    from refold.sensitivity.linear_approx import (
        HyperparameterSensitivityLinearApproximation as Approx)
    with pytest.raises(ValueError, match="objective_fun must return a scalar"):
        Approx(lambda t, h: t * h[0], onp.ones(2), onp.ones(1))
