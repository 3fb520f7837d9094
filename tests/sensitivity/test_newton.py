"""arrowhead_newton and damped_newton_step against independent truths:
dense linear solves, scipy's trust-region optimiser with autograd's dense
Hessian, and the first-order optimality condition."""
import autograd
import autograd.numpy as anp
import numpy as np
import pytest
import scipy.optimize

from refold.sensitivity.arrowhead import ArrowheadHessian
from refold.sensitivity.newton import (NewtonReport, arrowhead_newton,
                                       damped_newton_step)

T, M, G = 6, 2, 3                       # groups, locals per group, globals
LOCAL_INDS = np.arange(T * M).reshape(T, M)
DIM = T * M + G


def random_arrowhead(seed, indefinite=False):
    """A random symmetric arrowhead matrix, globals last, and its dense form."""
    rng = np.random.default_rng(seed)
    a = rng.normal(size=(T, M, M))
    local = a @ a.transpose(0, 2, 1) + np.eye(M)
    cross = 0.3 * rng.normal(size=(T, G, M))
    b = rng.normal(size=(G, G))
    glob = b @ b.T + 5.0 * np.eye(G)
    if indefinite:
        glob = glob - 20.0 * np.eye(G)
    hess = ArrowheadHessian(glob, cross, local, T * M + np.arange(G),
                            LOCAL_INDS)
    return hess, hess.to_sparse().toarray()


def logistic_objective(seed=0):
    """A strictly convex, non-quadratic objective with arrowhead structure:
    per group a softplus of (local_0 + global_0) and a quartic coupling."""
    rng = np.random.default_rng(seed)
    targets = rng.normal(size=(T, M))

    def fun(x):
        loc = anp.reshape(x[:T * M], (T, M))
        glob = x[T * M:]
        z = loc[:, 0] + glob[0] * targets[:, 1]
        return (anp.sum(anp.logaddexp(0.0, z) - targets[:, 0] * z)
                + anp.sum((loc[:, 1] - targets[:, 1]) ** 2 * (1.0 + glob[1] ** 2))
                + anp.sum(loc ** 2) * 0.1 + anp.sum(glob ** 4 + glob ** 2))
    return fun


# ------------------------------------------------------------ damped step
def test_damped_step_is_newton_step_when_positive_definite():
    hess, dense = random_arrowhead(0)
    grad = np.random.default_rng(1).normal(size=DIM)
    step, shift = damped_newton_step(hess, grad)
    assert shift == 0.0
    np.testing.assert_allclose(step, -np.linalg.solve(dense, grad),
                               rtol=1e-10, atol=1e-12)


def test_damped_step_shifts_an_indefinite_hessian():
    hess, dense = random_arrowhead(2, indefinite=True)
    assert np.linalg.eigvalsh(dense)[0] < 0
    grad = np.random.default_rng(3).normal(size=DIM)
    step, shift = damped_newton_step(hess, grad)
    assert shift > 0 and grad @ step < 0
    shifted = dense + shift * np.eye(DIM)
    assert np.linalg.eigvalsh(shifted)[0] > 0
    np.testing.assert_allclose(step, -np.linalg.solve(shifted, grad),
                               rtol=1e-8, atol=1e-12)
    # A shift ten times smaller would not have been positive definite
    # (the shift is raised tenfold from 1e-8 * scale).
    assert np.linalg.eigvalsh(dense + 0.1 * shift * np.eye(DIM))[0] <= 0


# ------------------------------------------------------------ the optimiser
def test_quadratic_converges_to_the_dense_solution():
    hess, dense = random_arrowhead(4)
    rhs = np.random.default_rng(5).normal(size=DIM)

    def fun(x):
        return 0.5 * anp.dot(x, anp.dot(dense, x)) - anp.dot(rhs, x)

    x0 = np.zeros(DIM)
    x, report = arrowhead_newton(fun, x0, LOCAL_INDS)
    assert isinstance(report, NewtonReport) and report.converged
    np.testing.assert_allclose(x, np.linalg.solve(dense, rhs), rtol=1e-10,
                               atol=1e-12)
    # One step to the optimum, a second (tiny) one confirms convergence.
    assert report.iterations == 2
    assert report.num_hvps_per_hessian == M + G
    assert np.all(x0 == 0.0)                    # not mutated


def test_nonquadratic_matches_scipy_trust_exact():
    fun = logistic_objective(6)
    x0 = np.random.default_rng(7).normal(size=DIM)
    x, report = arrowhead_newton(fun, x0, LOCAL_INDS, tol=1e-10)
    assert report.converged, report.message
    truth = scipy.optimize.minimize(
        fun, x0, jac=autograd.grad(fun), hess=autograd.hessian(fun),
        method="trust-exact", options={"gtol": 1e-12})
    np.testing.assert_allclose(x, truth.x, atol=1e-8)
    grad = autograd.grad(fun)(x)
    assert np.max(np.abs(grad)) < 1e-10
    assert report.grad_norm == pytest.approx(np.max(np.abs(grad)), abs=1e-14)
    assert report.objective == pytest.approx(float(fun(x)), rel=1e-14)
    assert report.num_fun_evals >= report.iterations + 1


def test_indefinite_start_still_converges():
    fun = logistic_objective(8)
    rng = np.random.default_rng(9)
    for _ in range(50):
        x0 = 3.0 * rng.normal(size=DIM)
        if np.linalg.eigvalsh(autograd.hessian(fun)(x0))[0] < 0:
            break
    else:
        pytest.fail("no indefinite starting point found")
    x, report = arrowhead_newton(fun, x0, LOCAL_INDS, tol=1e-10)
    assert report.converged
    truth = scipy.optimize.minimize(
        fun, x0, jac=autograd.grad(fun), hess=autograd.hessian(fun),
        method="trust-exact", options={"gtol": 1e-12})
    np.testing.assert_allclose(x, truth.x, atol=1e-8)


def test_max_iter_is_reported_not_raised():
    fun = logistic_objective(9)
    x0 = 2.0 * np.ones(DIM)
    x, report = arrowhead_newton(fun, x0, LOCAL_INDS, max_iter=1)
    assert not report.converged and report.iterations == 1
    assert report.message == "reached max_iter=1"
    assert fun(x) < fun(x0)                     # the step was taken


def test_line_search_failure_is_reported():
    x0 = np.linspace(1.0, 2.0, DIM)

    def fun(x):  # finite only within 1e-14 of x0
        return anp.where(anp.max(anp.abs(x - x0)) < 1e-14,
                         anp.sum(x ** 2), anp.nan)

    x, report = arrowhead_newton(fun, x0, LOCAL_INDS)
    assert not report.converged
    assert "line search failed" in report.message
    np.testing.assert_array_equal(x, x0)


def test_wrong_structure_is_caught_by_the_verification_probe():
    def fun(x):  # couples the locals of groups 0 and 1
        return anp.sum(x ** 2) + x[0] * x[2]

    with pytest.raises(ValueError, match="sparsity_array|structure"):
        arrowhead_newton(fun, np.ones(DIM), LOCAL_INDS)


# ------------------------------------------------------------ bad input
def test_bad_arguments_are_named():
    fun = logistic_objective(0)
    x0 = np.zeros(DIM)
    hess, _ = random_arrowhead(0)
    with pytest.raises(TypeError, match="fun must be callable"):
        arrowhead_newton(3.0, x0, LOCAL_INDS)
    with pytest.raises(ValueError, match=r"x0 must be finite; x0\[2\]"):
        arrowhead_newton(fun, np.where(np.arange(DIM) == 2, np.nan, 0.0),
                         LOCAL_INDS)
    with pytest.raises(ValueError, match=r"local_inds must be .*length 15"):
        arrowhead_newton(fun, x0, LOCAL_INDS + 10)
    with pytest.raises(TypeError, match="local_inds must be an array of "
                                        "integer"):
        arrowhead_newton(fun, x0, LOCAL_INDS.astype(float))
    with pytest.raises(ValueError, match="tol must be a finite positive"):
        arrowhead_newton(fun, x0, LOCAL_INDS, tol=0.0)
    with pytest.raises(ValueError, match="max_step must be a finite"):
        arrowhead_newton(fun, x0, LOCAL_INDS, max_step=-1.0)
    with pytest.raises(ValueError, match="max_iter must be at least 1"):
        arrowhead_newton(fun, x0, LOCAL_INDS, max_iter=0)
    with pytest.raises(TypeError, match="max_iter must be an int"):
        arrowhead_newton(fun, x0, LOCAL_INDS, max_iter=2.0)
    with pytest.raises(ValueError, match="finite at x0"), \
            np.errstate(invalid="ignore", divide="ignore"):
        arrowhead_newton(lambda x: anp.sum(anp.log(x - 1.0)), x0, LOCAL_INDS)
    with pytest.raises(TypeError, match="hessian must be an ArrowheadHessian"):
        damped_newton_step(np.eye(DIM), x0)
    with pytest.raises(ValueError, match=r"grad must have shape \(15,\)"):
        damped_newton_step(hess, np.zeros(4))
    with pytest.raises(ValueError, match="damping must be a finite number"):
        damped_newton_step(hess, x0, -1.0)
