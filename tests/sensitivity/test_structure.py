"""solver='auto': structure classification, the solver choice, and answers
identical to every explicit solver."""
import warnings

import autograd
import autograd.numpy as np
import numpy as onp
import pytest
import scipy.optimize
import scipy.sparse as sp

import refold
from refold.sensitivity import structure as st
from refold.sensitivity.hvp import dense_hessian
from refold.sensitivity.structure import (HessianStructure, classify_pattern,
                                          hessian_structure)

N_GROUPS, N_GLOBAL = 150, 3


def arrow_objective(x, h):
    """3 globals, 150 blocks of 2 locals, a hyperparameter h[0]."""
    glob = x[:N_GLOBAL]
    loc = x[N_GLOBAL:].reshape(N_GROUPS, 2)
    z = 0.3 * loc[:, 0] + 0.2 * loc[:, 1] + np.sum(0.1 * glob)
    return (np.sum(np.exp(z)) + 0.05 * np.sum(loc[:, 0] * loc[:, 1])
            + 0.5 * (1.0 + h[0]) * np.sum(x ** 2) - np.sum(x)
            + np.sum(glob[:-1] * glob[1:]))


def _optimum(fun, dim, h0):
    res = scipy.optimize.minimize(
        lambda x: fun(x, h0), onp.zeros(dim), method="Newton-CG",
        jac=lambda x: autograd.grad(fun)(x, h0),
        hess=lambda x: dense_hessian(fun, x, h0),
        options=dict(xtol=1e-15, maxiter=100))
    return res.x


@pytest.fixture(scope="module")
def arrow():
    h0 = onp.array([0.5])
    dim = N_GLOBAL + 2 * N_GROUPS
    return arrow_objective, _optimum(arrow_objective, dim, h0), h0


# ----------------------------------------------------------------------
# Classification
# ----------------------------------------------------------------------
def test_classify_small_dense_arrowhead_sparse():
    assert classify_pattern(onp.eye(50))[0] == "dense"
    dim = 400
    full = onp.ones((dim, dim), dtype=bool)
    assert classify_pattern(full)[0] == "dense"
    # Arrowhead with 2 globals and blocks of 3; one odd scalar joins them.
    pat = onp.zeros((dim, dim), dtype=bool)
    pat[:2, :] = pat[:, :2] = True
    for t in range(2, dim - 2, 3):
        pat[t:t + 3, t:t + 3] = True
    pat[dim - 2, dim - 2] = True  # a lone coordinate (block of 1)
    pat[dim - 1, dim - 1] = True
    kind, glob, loc, reason = classify_pattern(pat)
    assert kind == "arrowhead"
    assert loc.shape == (132, 3)
    assert set(glob) == {0, 1, dim - 2, dim - 1}
    assert "globals" in reason
    # Tridiagonal: one connected block of 400, no arrowhead split.
    band = sp.diags([1.0, 1.0, 1.0], [-1, 0, 1], shape=(dim, dim))
    assert classify_pattern(band)[0] == "sparse"


def test_classify_block_diagonal_without_globals():
    blocks = sp.block_diag([onp.ones((4, 4))] * 100)
    kind, glob, loc, _ = classify_pattern(blocks)
    assert kind == "arrowhead" and len(glob) == 0 and loc.shape == (100, 4)


def test_matrix_free_when_dense_would_not_fit(monkeypatch):
    monkeypatch.setattr(st, "MAX_DENSE_BYTES", 8 * 300 * 300)
    kind, _, _, reason = classify_pattern(onp.ones((400, 400), dtype=bool))
    assert kind == "matrix_free" and "GiB" in reason


def test_detected_structure_describe_and_save(arrow, tmp_path):
    fun, opt, h0 = arrow
    structure = hessian_structure(fun, opt, h0)
    assert structure.kind == "arrowhead"
    assert structure.local_inds.shape == (N_GROUPS, 2)
    assert structure.num_hvps == N_GLOBAL + 2 + 1   # colours + probe
    assert structure.describe().startswith(
        f"arrowhead: {N_GLOBAL} globals, {N_GROUPS} blocks of 2; 6 HVPs; "
        f"Schur complement")
    path = tmp_path / "structure.npz"
    structure.save(path)
    again = HessianStructure.load(path)
    assert again.kind == structure.kind
    assert (again.pattern != structure.pattern).nnz == 0
    onp.testing.assert_array_equal(again.local_inds, structure.local_inds)
    small = hessian_structure(lambda x: np.sum(x ** 4), onp.ones(5))
    assert small.kind == "dense" and small.pattern is None
    assert "D = 5" in small.describe()


# ----------------------------------------------------------------------
# The solver choice and identical answers
# ----------------------------------------------------------------------
def test_linear_approx_auto_matches_every_explicit_solver(arrow):
    fun, opt, h0 = arrow
    auto = refold.HyperparameterSensitivityLinearApproximation(fun, opt, h0)
    assert auto.structure.kind == "arrowhead"
    assert "Schur complement" in auto.describe()
    ref = refold.HyperparameterSensitivityLinearApproximation(
        fun, opt, h0, solver="cholesky")
    assert ref.structure is None and "chosen by the caller" in ref.describe()
    truth = ref.get_dopt_dhyper()
    onp.testing.assert_allclose(auto.get_dopt_dhyper(), truth, rtol=1e-10,
                                atol=1e-13)
    hess = dense_hessian(fun, opt, h0)
    for kwargs in (dict(solver="sparse", hessian_at_opt=sp.csr_matrix(hess)),
                   dict(solver="lu"),
                   dict(hessian_at_opt=sp.csr_matrix(hess))):
        other = refold.HyperparameterSensitivityLinearApproximation(
            fun, opt, h0, **kwargs)
        onp.testing.assert_allclose(other.get_dopt_dhyper(), truth,
                                    rtol=1e-10, atol=1e-13)
    # A sparse Hessian handed in (the vittles route) is classified too.
    given = refold.HyperparameterSensitivityLinearApproximation(
        fun, opt, h0, hessian_at_opt=sp.csr_matrix(hess))
    assert given.structure.kind == "arrowhead"
    assert given.structure.source == "given"
    cg = refold.HyperparameterSensitivityLinearApproximation(
        fun, opt, h0, factorize_hessian=False)
    onp.testing.assert_allclose(cg.get_dopt_dhyper(), truth, rtol=1e-7)
    # Against brute-force re-optimisation (central differences).
    step = 1e-5
    fd = (_optimum(fun, len(opt), h0 + step)
          - _optimum(fun, len(opt), h0 - step)) / (2 * step)
    onp.testing.assert_allclose(auto.get_dopt_dhyper()[:, 0], fd, rtol=1e-5,
                                atol=1e-6)


def test_taylor_and_weights_auto_match_dense(arrow):
    fun, opt, h0 = arrow
    taylor = refold.ParametricSensitivityTaylorExpansion
    auto = taylor.optimization_objective(fun, opt, h0, order=2)
    dense = taylor.optimization_objective(fun, opt, h0, order=2,
                                          hess_solver="cholesky")
    assert auto.structure.kind == "arrowhead"
    onp.testing.assert_allclose(auto.evaluate_taylor_series(h0 + 0.01),
                                dense.evaluate_taylor_series(h0 + 0.01),
                                rtol=1e-10)
    # Estimating-equation constructor: the Jacobian of the gradient.
    ee = taylor(autograd.grad(fun), opt, h0, 2, "auto")
    assert ee.structure.kind == "arrowhead"
    onp.testing.assert_allclose(ee.evaluate_taylor_series(h0 + 0.01),
                                dense.evaluate_taylor_series(h0 + 0.01),
                                rtol=1e-10)


def test_weight_sensitivity_auto_matches_dense():
    rng = onp.random.default_rng(3)
    n_groups = 300
    group = onp.repeat(onp.arange(n_groups), 3)
    y = rng.normal(size=group.size)

    def losses(theta):
        u = theta[1:]
        return 0.5 * (y - theta[0] - u[group]) ** 2

    def prior(theta):
        return 0.5 * np.sum(theta[1:] ** 2) + 0.01 * theta[0] ** 2
    dim = n_groups + 1
    obj = lambda t: np.sum(losses(t)) + prior(t)  # noqa: E731
    opt = scipy.optimize.minimize(obj, onp.zeros(dim),
                                  jac=autograd.grad(obj), method="BFGS",
                                  options=dict(gtol=1e-12)).x
    auto = refold.WeightSensitivity(losses, opt, prior_fun=prior)
    dense = refold.WeightSensitivity(losses, opt, prior_fun=prior,
                                     solver="cholesky")
    assert auto.structure.kind == "arrowhead"
    onp.testing.assert_allclose(auto.influence(0), dense.influence(0),
                                rtol=1e-10, atol=1e-14)


def test_estimating_equation_auto_non_symmetric_uses_sparse_lu(arrow):
    fun, opt, h0 = arrow
    grad = autograd.grad(fun)

    def ee(x, h):
        return grad(x, h) + 0.01 * np.concatenate([x[1:], x[:1]])
    auto = refold.EstimatingEquationLinearApproximation(
        ee, opt, h0, validate_solution=False)
    assert "sparse LU" in auto.describe()
    lu = refold.EstimatingEquationLinearApproximation(
        ee, opt, h0, validate_solution=False, hess_solver="lu")
    onp.testing.assert_allclose(auto.get_dinput_dhyper(),
                                lu.get_dinput_dhyper(), rtol=1e-10)
    cross = refold.CrossSensitivity(
        lambda x, a, b: grad(x, a) - b[0] * x, None, opt, h0,
        onp.zeros(1))
    dense = refold.CrossSensitivity(
        lambda x, a, b: grad(x, a) - b[0] * x, "cholesky", opt, h0,
        onp.zeros(1))
    onp.testing.assert_allclose(cross.evaluate(onp.ones(1), onp.ones(1)),
                                dense.evaluate(onp.ones(1), onp.ones(1)),
                                rtol=1e-10)


def test_estimating_equation_sparse_jacobian_is_autograds(arrow):
    # The globals' rows of J are dense: they come from reverse sweeps, the
    # rest from a few colours, and J is autograd's dense Jacobian.
    from refold.sensitivity._equation_solver import jacobian_solver_auto
    fun, opt, h0 = arrow
    grad = autograd.grad(fun)

    def ee(x, h):
        return grad(x, h) + 0.01 * np.concatenate([x[1:], x[:1]])
    solver, jac, structure = jacobian_solver_auto(ee, opt, (h0,))
    assert sp.issparse(jac) and structure.solver_name == "sparse LU"
    truth = autograd.jacobian(ee)(opt, h0)
    onp.testing.assert_allclose(jac.toarray(), truth, rtol=1e-13, atol=1e-15)
    # 3 reverse sweeps, a handful of colours and the probe, not D = 303.
    assert structure.num_hvps <= 3 + 8 + 1
    rhs = onp.arange(1.0, len(opt) + 1)
    onp.testing.assert_allclose(solver(rhs), onp.linalg.solve(truth, rhs),
                                rtol=1e-10)


# ----------------------------------------------------------------------
# Control flow and a structure the objective contradicts
# ----------------------------------------------------------------------
def branchy(x, h):
    """Couples the first local with the last only when x[3] > 0."""
    base = arrow_objective(x, h)
    if x[3] > 0:
        return base + x[3] * x[-1] ** 2
    return base


def test_branch_reused_structure_is_verified(arrow):
    _, opt, h0 = arrow
    at_neg = opt.copy()
    at_neg[3] = -1.0
    at_pos = opt.copy()
    at_pos[3] = 1.0
    structure = hessian_structure(branchy, at_neg, h0)
    assert not structure.pattern[3, len(opt) - 1]
    with pytest.raises(ValueError, match=r"couples coordinates .*coordinate"):
        refold.HyperparameterSensitivityLinearApproximation(
            branchy, at_pos, h0, validate_optimum=False,
            solver_options={"structure": structure})
    # Without a given structure, the cached one is contradicted by the probe
    # and detected anew: the Hessian is right.
    refold.HyperparameterSensitivityLinearApproximation(
        branchy, at_neg, h0, validate_optimum=False)
    approx = refold.HyperparameterSensitivityLinearApproximation(
        branchy, at_pos, h0, validate_optimum=False)
    assert approx.structure.pattern[3, len(opt) - 1]
    dense = refold.HyperparameterSensitivityLinearApproximation(
        branchy, at_pos, h0, validate_optimum=False, solver="cholesky")
    onp.testing.assert_allclose(approx.get_dopt_dhyper(),
                                dense.get_dopt_dhyper(), rtol=1e-10)


def test_auto_bad_options(arrow):
    fun, opt, h0 = arrow
    with pytest.raises(TypeError, match=r"solver_options \['cg_iters'\]"):
        refold.HyperparameterSensitivityLinearApproximation(
            fun, opt, h0, solver_options={"cg_iters": 3})
    with pytest.raises(TypeError, match="must be a HessianStructure"):
        refold.HyperparameterSensitivityLinearApproximation(
            fun, opt, h0, solver_options={"structure": "arrowhead"})
    small = hessian_structure(lambda x: np.sum(x ** 4), onp.ones(5))
    with pytest.raises(ValueError, match="structure is for dimension 5"):
        refold.HyperparameterSensitivityLinearApproximation(
            fun, opt, h0, solver_options={"structure": small})
    with pytest.raises(ValueError, match="kind must be one of"):
        HessianStructure("tridiagonal", 3)


def test_unknown_primitive_warns_once_and_stays_correct():
    from autograd.extend import defvjp, primitive

    @primitive
    def rowsum_cubed(v):
        return onp.array([onp.sum(v ** 3)])
    defvjp(rowsum_cubed, lambda ans, v: lambda g: g[0] * 3 * v ** 2)

    def f(x):
        return np.sum(rowsum_cubed(x[:3])) + np.sum(x[3:] ** 2)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        pattern = refold.hessian_sparsity(f, onp.ones(6))
    named = [w for w in caught
             if issubclass(w.category, refold.SparsityWarning)]
    assert len(named) == 1 and "rowsum_cubed" in str(named[0].message)
    truth = onp.abs(dense_hessian(f, onp.ones(6) * 0.7)) > 0
    assert onp.all(pattern.toarray() >= truth)
    assert pattern[0, 2] and not pattern[0, 4]
