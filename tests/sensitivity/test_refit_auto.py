"""Tests of refit(solver='auto'): structured Newton, checked against
closed forms, scipy's own minimisers and the trust-region path."""
import autograd
import autograd.numpy as anp
import numpy as np
import pytest
import scipy.optimize
import scipy.sparse as sp
from autograd.tracer import getval

from refold.sensitivity.refit import REFIT_SOLVERS, refit
from refold.sensitivity.structure import HessianStructure, hessian_structure
from tests.sensitivity.test_refit import _logistic


def _scipy_truth(fun, x0, *args):
    """scipy's trust-exact with autograd's dense derivatives, then plain
    Newton steps (numpy's solve) while the gradient norm falls: trust-exact
    stalls where the objective's decrease is below its rounding."""
    grad = autograd.grad(fun)
    hess = autograd.jacobian(grad)
    x = scipy.optimize.minimize(
        fun, x0, args=args, jac=grad, hess=hess, method="trust-exact",
        options=dict(gtol=1e-13, maxiter=500)).x
    g = grad(x, *args)
    for _ in range(5):
        x_new = x - np.linalg.solve(hess(x, *args), g)
        g_new = grad(x_new, *args)
        if not np.linalg.norm(g_new) < np.linalg.norm(g):
            break
        x, g = x_new, g_new
    assert np.linalg.norm(g) < 1e-10
    return x


# ------------------------------------------------------------ closed forms
def test_dense_quadratic_closed_form():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(6, 6))
    h, b = a @ a.T + np.eye(6), rng.normal(size=6)
    res = refit(lambda x, s: 0.5 * x @ h @ x - (b + s) @ x, np.zeros(6), 0.3)
    np.testing.assert_allclose(res.x, np.linalg.solve(h, b + 0.3),
                               rtol=1e-10, atol=1e-12)
    assert res.success and res.solver == "newton"
    assert res.structure.kind == "dense"
    assert res.description.startswith("structured Newton (dense: D = 6")
    # A quadratic is one Newton step (then a gradient below gtol).
    assert res.nit == 1


def test_sparse_chain_quadratic_closed_form():
    # A tridiagonal Hessian: no dense rows, one connected chain of 300
    # coordinates -- the 'sparse' structure, solved by sparse LDL^T.
    dim = 300
    b = np.random.default_rng(1).normal(size=dim)

    def fun(x):
        return (0.5 * anp.sum((x[1:] - x[:-1]) ** 2)
                + 0.5 * anp.sum(x ** 2) - b @ x)
    hess = sp.diags([-np.ones(dim - 1), np.r_[2.0, 3 * np.ones(dim - 2), 2.0],
                     -np.ones(dim - 1)], [-1, 0, 1]).toarray()
    res = refit(fun, np.zeros(dim))
    assert res.structure.kind == "sparse" and res.solver == "newton"
    np.testing.assert_allclose(res.x, np.linalg.solve(hess, b), rtol=1e-10,
                               atol=1e-11)


def test_sparse_nonlinear_chain_matches_scipy():
    dim = 250
    c = np.random.default_rng(2).normal(size=dim)

    def fun(x):
        return (anp.sum(anp.exp(x[1:] - x[:-1])) + anp.sum((x - c) ** 2)
                + 0.1 * anp.sum(x ** 4))
    res = refit(fun, np.zeros(dim))
    assert res.structure.kind == "sparse" and res.solver == "newton"
    # The objective is strictly convex: its one minimum, found by scipy
    # from a perturbed start (from zero, trust-exact takes seconds here).
    start = res.x + 0.1 * np.random.default_rng(3).normal(size=dim)
    np.testing.assert_allclose(res.x, _scipy_truth(fun, start), atol=1e-9)


def test_logistic_matches_scipy_and_trust_ncg():
    fun = _logistic()
    start = np.full(6, 3.0)
    res = refit(fun, start, 2.0)
    assert res.solver == "newton" and res.success
    assert np.linalg.norm(autograd.grad(fun)(res.x, 2.0)) <= 1e-10
    np.testing.assert_allclose(res.x, _scipy_truth(fun, start, 2.0),
                               atol=1e-10)
    trust = refit(fun, start, 2.0, solver="trust-ncg")
    np.testing.assert_allclose(res.x, trust.x, atol=1e-10)
    # hvp=False under 'auto': the dense Hessian, without detection.
    dense = refit(fun, start, 2.0, hvp=False)
    assert "hvp=False" in dense.description
    np.testing.assert_allclose(dense.x, res.x, atol=1e-12)


# ------------------------------------------------------- structured models
def _small_glmm():
    from refold.models import logistic_glmm as lg
    data = lg.simulate(2000, 200, 5, rng=3)
    objective = lg.GLMMObjective(data)
    k, prior_var = data.n_fixed, objective.prior.beta_var

    def kl(x, h):   # the prior variance of beta as the hyperparameter
        return objective(x) + 0.5 * (1.0 / h[0] - 1.0 / prior_var) * \
            anp.sum(x[:k] ** 2 + anp.exp(x[k:2 * k]))
    return kl, objective.initial_free_par(), np.array([prior_var])


def test_logistic_glmm_auto_agrees_with_trust_ncg():
    kl, init, h0 = _small_glmm()
    old = refit(kl, init, h0)
    assert old.structure.kind == "arrowhead" and old.solver == "newton"
    assert old.structure.describe().startswith(
        "arrowhead: 14 globals, 200 blocks of 2")
    auto = refit(kl, old.x, 2 * h0)
    trust = refit(kl, old.x, 2 * h0, solver="trust-ncg")
    assert auto.solver == "newton" and trust.solver == "trust-ncg"
    np.testing.assert_allclose(auto.x, trust.x, rtol=0, atol=1e-8)
    assert abs(auto.fun - trust.fun) <= 1e-10 * abs(trust.fun)
    # The structure was detected once for kl and reused.
    assert auto.structure is old.structure


def _rosenbrock_arrowhead(n_groups=150):
    """2 globals shifting every group's Rosenbrock valley, plus a ridge on
    the globals: the unique minimum is globals 0, locals 1 (closed form)."""
    def fun(x):
        loc = x[2:].reshape(n_groups, 2)
        u, v = loc[:, 0] + x[0], loc[:, 1] + x[1]
        return (anp.sum((1.0 - u) ** 2 + 100.0 * (v - u ** 2) ** 2)
                + 0.5 * n_groups * anp.sum(x[:2] ** 2))
    truth = np.ones(2 + 2 * n_groups)
    truth[:2] = 0.0
    return fun, truth


def test_arrowhead_from_an_indefinite_start():
    fun, truth = _rosenbrock_arrowhead()
    start = np.zeros(truth.size)
    start[3::2] = 1.0                       # u = 0, v = 1 in every group
    hess = autograd.jacobian(autograd.grad(fun))
    assert np.linalg.eigvalsh(hess(start))[0] < -1e4
    res = refit(fun, start)
    assert res.structure.kind == "arrowhead" and res.solver == "newton"
    np.testing.assert_allclose(res.x, truth, rtol=0, atol=1e-10)
    assert np.linalg.eigvalsh(hess(res.x))[0] > 0


# ----------------------------------------------------------- nonconvexity
def test_double_well_from_a_maximum_of_curvature():
    def fun(x):
        return anp.sum((x ** 2 - 1.0) ** 2 + 0.1 * x)
    # H = 12 x^2 - 4 < 0 at 0: the shifted step descends into the well
    # that the tilt makes lower (the most negative root of 4x^3 - 4x + 0.1).
    res = refit(fun, np.zeros(1))
    roots = np.roots([4.0, 0.0, -4.0, 0.1])
    np.testing.assert_allclose(res.x, [np.min(roots.real)], atol=1e-12)
    assert res.solver == "newton"


@pytest.mark.parametrize("start", [[0.0, 1.0], [-1.2, 1.0], [2.0, -1.0]])
def test_rosenbrock(start):
    def fun(x):
        return (1.0 - x[0]) ** 2 + 100.0 * (x[1] - x[0] ** 2) ** 2
    res = refit(fun, np.array(start))
    np.testing.assert_allclose(res.x, [1.0, 1.0], atol=1e-10)
    assert res.solver == "newton"


def test_saddle_escaped_and_handed_to_trust_ncg_at_the_rounding_level():
    def fun(x):
        return x[0] ** 2 - x[1] ** 2 + x[1] ** 4   # minima (0, +-1/sqrt 2)
    # Far enough from the saddle: shifted Newton steps with a line search.
    res = refit(fun, np.array([0.3, 0.01]))
    assert res.solver == "newton"
    np.testing.assert_allclose(res.x, [0.0, 0.5 ** 0.5], atol=1e-12)
    # At the rounding level next to the saddle the objective cannot judge
    # a shifted step: trust-ncg takes over and follows negative curvature.
    res = refit(fun, np.array([0.0, 1e-9]))
    assert res.solver == "trust-ncg"
    assert "handed to trust-ncg" in res.description
    assert "indefinite" in res.description
    np.testing.assert_allclose(res.x, [0.0, 0.5 ** 0.5], atol=1e-12)


def test_nan_region_is_rejected():
    a = np.array([1.0, 2.0, 3.0])
    values = []

    def fun(x):   # minimised at x = a; NaN for x < 0
        value = anp.sum(x - a * anp.log(x))
        values.append(float(getval(value)))
        return value
    # The first Newton step from 10 a lands at x < 0 (NaN there).
    res = refit(fun, 10 * a)
    assert any(np.isnan(values))
    np.testing.assert_allclose(res.x, a, rtol=1e-12)
    assert res.solver == "newton"


# ------------------------------------------------------ structure choices
def test_structure_redetected_when_contradicted():
    def fun(x):     # couples x0 and x1 only where x0 > 0.5
        base = anp.sum((x - 1.0) ** 2)
        if x[0] > 0.5:
            return base + 0.1 * (x[0] - 0.5) ** 2 * x[1] ** 2
        return base
    start = np.zeros(300)
    assert hessian_structure(fun, start).pattern[0, 1] == 0
    res = refit(fun, start)
    assert res.solver == "newton" and res.structure.pattern[0, 1]

    def pair(z):
        return ((z[0] - 1.0) ** 2 + (z[1] - 1.0) ** 2
                + 0.1 * (z[0] - 0.5) ** 2 * z[1] ** 2)
    np.testing.assert_allclose(res.x[:2], _scipy_truth(pair, np.ones(2)),
                               atol=1e-12)
    np.testing.assert_allclose(res.x[2:], 1.0, atol=1e-14)
    # A given structure is used as given: a contradiction is an error.
    with pytest.raises(ValueError, match="couples coordinates"):
        refit(fun, start, solver_options={
            "structure": hessian_structure(fun, start)})


def test_matrix_free_and_large_dense_use_trust_ncg():
    fun = _logistic(dim=6)
    mf = HessianStructure("matrix_free", 6, reason="for the test")
    res = refit(fun, np.zeros(6), 2.0, solver_options={"structure": mf})
    assert res.solver == "trust-ncg" and res.structure is mf
    assert res.description.startswith("trust-ncg (matrix_free: D = 6")
    np.testing.assert_allclose(res.x, refit(fun, np.zeros(6), 2.0).x,
                               atol=1e-10)
    # Dense and D > 200: D reverse passes per Hessian; trust-ncg instead.
    rng = np.random.default_rng(4)
    design = rng.normal(size=(300, 210)) / np.sqrt(210)
    y = (rng.uniform(size=300) < 0.5).astype(float)

    def dense(theta):
        z = design @ theta
        return anp.sum(anp.logaddexp(0.0, z) - y * z) + anp.sum(theta ** 2)
    res = refit(dense, np.zeros(210))
    assert res.solver == "trust-ncg" and res.structure.kind == "dense"
    assert np.linalg.norm(autograd.grad(dense)(res.x)) <= 1e-10


def test_explicit_trust_ncg_is_todays_path():
    fun = _logistic()
    res = refit(fun, np.zeros(6), 2.0, solver="trust-ncg")
    assert res.solver == "trust-ncg" and res.structure is None
    assert res.description == "trust-ncg with Hessian-vector products"
    dense = refit(fun, np.zeros(6), 2.0, solver="trust-ncg", hvp=False)
    assert dense.description == "trust-ncg with the dense Hessian"
    # The same scipy run: its iterations and evaluations.
    plain = scipy.optimize.minimize(
        fun, np.zeros(6), args=(2.0,), jac=autograd.grad(fun),
        hessp=lambda x, v, s: autograd.hessian(fun)(x, s) @ v,
        method="trust-ncg", options=dict(gtol=1e-10, maxiter=1000))
    assert (res.nit, res.nfev) == (plain.nit, plain.nfev)
    np.testing.assert_allclose(res.x, plain.x, atol=1e-8)
    np.testing.assert_allclose(res.x, dense.x, atol=1e-10)


# ------------------------------------------------------------- failures
def test_non_convergence_raises():
    fun = _logistic()
    with pytest.raises(ValueError, match="refit did not converge: "
                                         "structured Newton: Maximum "
                                         "number of iterations"):
        refit(fun, np.full(6, 5.0), 2.0, maxiter=1)
    with pytest.raises(ValueError, match="stopped falling at the rounding "
                                         "level.*loosen gtol"):
        refit(fun, np.zeros(6), 2.0, gtol=1e-30)
    with pytest.raises(ValueError, match="refit did not converge"):
        refit(lambda x: -anp.sum(x ** 2) + anp.sum(x), np.zeros(2),
              maxiter=50)


def test_bad_solver_arguments():
    fun = _logistic()
    assert REFIT_SOLVERS == ("auto", "trust-ncg")
    with pytest.raises(ValueError, match=r"solver must be one of \('auto', "
                                         r"'trust-ncg'\); got 'newton'"):
        refit(fun, np.zeros(6), 2.0, solver="newton")
    with pytest.raises(TypeError, match="solver must be one of"):
        refit(fun, np.zeros(6), 2.0, solver=None)
    with pytest.raises(TypeError, match="solver_options must be a dict"):
        refit(fun, np.zeros(6), 2.0, solver_options=[("structure", None)])
    with pytest.raises(TypeError, match=r"solver_options \['cg_opts'\] are "
                                        r"not understood by solver='auto'; "
                                        r"it takes \['structure'\]"):
        refit(fun, np.zeros(6), 2.0, solver_options={"cg_opts": {}})
    with pytest.raises(TypeError, match="solver='trust-ncg'; it takes"):
        refit(fun, np.zeros(6), 2.0, solver="trust-ncg",
              solver_options={"structure": HessianStructure("dense", 6)})
    with pytest.raises(TypeError, match=r"solver_options\['structure'\] "
                                        r"must be a HessianStructure"):
        refit(fun, np.zeros(6), 2.0, solver_options={"structure": "dense"})
    with pytest.raises(ValueError, match=r"solver_options\['structure'\] is "
                                         r"for dimension 5 but init_par has "
                                         r"length 6"):
        refit(fun, np.zeros(6), 2.0,
              solver_options={"structure": HessianStructure("dense", 5)})
    arrow = HessianStructure("arrowhead", 6, None, [0, 1], [[2, 3], [4, 5]])
    with pytest.raises(ValueError, match="hvp=False.*'arrowhead'"):
        refit(fun, np.zeros(6), 2.0, hvp=False,
              solver_options={"structure": arrow})
    with pytest.raises(ValueError, match="gradient of objective_fun is not "
                                         "finite at init_par"):
        with np.errstate(divide="ignore"):
            refit(lambda x: anp.sum(anp.sqrt(x)), np.zeros(2))


@pytest.mark.parametrize("dim", [5, 300])
def test_hessian_not_finite_is_named(dim):
    def fun(x):     # |x|^1.5 has an infinite second derivative at 0
        return (anp.sum((x[1:] - x[:-1]) ** 2) + anp.sum(anp.abs(x) ** 1.5)
                + anp.sum((x - 1.0) ** 2))
    with np.errstate(all="ignore"), pytest.raises(
            ValueError, match=r"the Hessian of objective_fun at par = "
                              r"\[0\., 0\., .*\(length " + str(dim) +
                              r"\) (is not finite|could not be formed: "
                              r".*not finite)"):
        refit(fun, np.zeros(dim))
