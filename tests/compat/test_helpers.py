"""Item 2: paragami's and vittles' public helpers, checked against brute
force / closed forms, autograd's check_grads, and the anchors when present.
"""
import autograd
import autograd.numpy as anp
import numpy as np
import pytest
import scipy.sparse as sp
from autograd.test_util import check_grads

from refold.compat.paragami import (
    autograd_supplement_lib as asl, optimization_lib, simplex_patterns,
    sparse_preconditioners_lib)
from refold.compat.vittles import sensitivity_lib
from refold.sensitivity.errors import SecondDerivativeError


def test_grouped_sum_matches_a_loop_and_differentiates():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(7, 3))
    groups = np.array([0, 2, 2, 1, 0, 4, 2])
    expected = np.zeros((5, 3))
    for n, g in enumerate(groups):
        expected[g] += x[n]
    np.testing.assert_allclose(asl.grouped_sum(x, groups), expected)
    np.testing.assert_allclose(asl.grouped_sum(x, groups, num_groups=6)[:5],
                               expected)
    assert asl.grouped_sum(x, groups, 6)[5].sum() == 0
    np.testing.assert_allclose(asl.grouped_sum(x[:, 0], groups),
                               expected[:, 0])
    check_grads(lambda v: asl.grouped_sum(v ** 2, groups), modes=["fwd", "rev"],
                order=2)(x)
    with pytest.raises(ValueError, match="num_groups is 3"):
        asl.grouped_sum(x, groups, num_groups=3)
    with pytest.raises(ValueError, match="non-negative"):
        asl.grouped_sum(x, -groups)
    with pytest.raises(ValueError, match="one group per row"):
        asl.grouped_sum(x, groups[:3])


def test_replace_and_its_derivatives():
    x = np.arange(5.0)
    out = asl.replace(np.array([10.0, 20.0]), x, [1, 3])
    np.testing.assert_array_equal(out, [0, 10, 2, 20, 4])
    np.testing.assert_array_equal(x, np.arange(5.0))  # not modified
    check_grads(lambda s, v: asl.replace(s ** 2, anp.sin(v), [1, 3]),
                modes=["fwd", "rev"], order=2)(np.array([0.3, -0.4]), x)
    # A scalar broadcast into several entries: derivative summed.
    grad = autograd.grad(lambda s: anp.sum(asl.replace(s, x, [0, 2])))(1.5)
    assert grad == 2.0
    with pytest.raises(ValueError, match="at most once"):
        asl.replace(np.ones(2), x, [1, 1])


def test_sparse_product_and_solver():
    rng = np.random.default_rng(1)
    dense = rng.normal(size=(4, 3))
    dense[dense < 0] = 0.0
    z_mult, zt_mult = asl.get_sparse_product(sp.csr_matrix(dense))
    b = rng.normal(size=3)
    np.testing.assert_allclose(z_mult(b), dense @ b)
    np.testing.assert_allclose(zt_mult(rng.normal(size=(4, 2))).shape, (3, 2))
    check_grads(lambda v: anp.sum(z_mult(v) ** 2), modes=["fwd", "rev"],
                order=2)(b)
    a = rng.normal(size=(3, 3)) + 3 * np.eye(3)
    solve, solve_t = asl.get_differentiable_solver(
        lambda v: np.linalg.solve(a, v), lambda v: np.linalg.solve(a.T, v))
    np.testing.assert_allclose(a @ solve(b), b)
    np.testing.assert_allclose(a.T @ solve_t(b), b)
    check_grads(lambda v: anp.sum(anp.sin(solve(v))), modes=["fwd", "rev"],
                order=2)(b)
    with pytest.raises(ValueError, match="2-d"):
        asl.get_sparse_product(np.ones(3))


def test_logsumexp_keeps_the_axis():
    mat = np.array([[1.0, 2.0, 3.0], [-1000.0, -1000.0, -999.0]])
    out = simplex_patterns.logsumexp(mat, 1)
    assert out.shape == (2, 1)
    np.testing.assert_allclose(out[0, 0], np.log(np.exp(mat[0]).sum()))
    np.testing.assert_allclose(out[1, 0],
                               -999.0 + np.log(1 + 2 * np.exp(-1.0)))
    check_grads(lambda m: simplex_patterns.logsumexp(m, 0),
                modes=["fwd", "rev"], order=2)(mat[:1] + np.ones((2, 3)))
    with pytest.raises(ValueError, match="one integer axis"):
        simplex_patterns.logsumexp(mat, (0, 1))


def test_eigenspace_helpers():
    rng = np.random.default_rng(2)
    q, _ = np.linalg.qr(rng.normal(size=(4, 4)))
    vals = np.array([0.5, 4.0])
    a_mult = optimization_lib.transform_eigenspace(q[:, :2], vals, np.sqrt)
    matrix = np.eye(4) + q[:, :2] @ np.diag(np.sqrt(vals) - 1) @ q[:, :2].T
    v = rng.normal(size=4)
    np.testing.assert_allclose(a_mult(v), matrix @ v)
    many = rng.normal(size=(4, 3))
    np.testing.assert_allclose(a_mult(many), matrix @ many)
    np.testing.assert_array_equal(
        optimization_lib.truncate_eigenvalues(np.array([-1.0, 0.5, 9.0]),
                                              ev_min=0.1, ev_max=2.0),
        [0.1, 0.5, 2.0])


def test_sparse_square_roots_precondition():
    rng = np.random.default_rng(3)
    a = sp.random(6, 6, density=0.3, random_state=3)
    h = sp.csr_matrix(a @ a.T + sp.eye(6))
    sqrt, inv_sqrt = sparse_preconditioners_lib.get_sym_matrix_inv_sqrt_funcs(
        h)
    # A = S^{-T}: A^T H A = I, and sqrt inverts inv_sqrt.
    cols = np.stack([inv_sqrt(e) for e in np.eye(6)], axis=1)
    np.testing.assert_allclose(cols.T @ h.toarray() @ cols, np.eye(6),
                               atol=1e-10)
    v = rng.normal(size=6)
    np.testing.assert_allclose(sqrt(inv_sqrt(v)), v)
    check_grads(lambda x: anp.sum(inv_sqrt(x) ** 2), modes=["fwd", "rev"],
                order=2)(v)
    with pytest.raises(ValueError, match="sparse"):
        sparse_preconditioners_lib.get_sym_matrix_inv_sqrt_funcs(h.toarray())


def test_get_linear_function():
    jac = np.array([[1.0, 2.0], [0.0, -1.0], [3.0, 0.5]])
    fun = sensitivity_lib.get_linear_function(np.ones(3), np.zeros(2), jac)
    np.testing.assert_array_equal(fun(np.zeros(2)), np.ones(3))
    np.testing.assert_allclose(autograd.jacobian(fun)(np.zeros(2)), jac)
    _, push = autograd.make_jvp(fun)(np.zeros(2))(np.array([1.0, 1.0]))
    np.testing.assert_allclose(push, jac @ np.ones(2))
    with pytest.raises(NotImplementedError):
        autograd.hessian(lambda x: anp.sum(fun(x)))(np.zeros(2))
    with pytest.raises(SecondDerivativeError):
        autograd.hessian(lambda x: anp.sum(fun(x)))(np.zeros(2))
    with pytest.raises(ValueError, match="base"):
        fun(np.ones(2))


def test_helpers_agree_with_paragami(paragami):
    import paragami.autograd_supplement_lib as pasl
    import paragami.optimization_lib as popt
    import paragami.simplex_patterns as psimplex
    rng = np.random.default_rng(4)
    x = rng.normal(size=(6, 2))
    groups = np.array([1, 0, 1, 3, 0, 1])
    np.testing.assert_allclose(asl.grouped_sum(x, groups),
                               pasl.grouped_sum(x, groups))
    np.testing.assert_allclose(asl.replace(np.ones(2), x[:, 0], [0, 4]),
                               pasl.replace(np.ones(2), x[:, 0], [0, 4]))
    np.testing.assert_allclose(simplex_patterns.logsumexp(x, 1),
                               psimplex.logsumexp(x, 1))
    q, _ = np.linalg.qr(rng.normal(size=(3, 3)))
    ours = optimization_lib.transform_eigenspace(q[:, :1], np.array([2.0]),
                                                 np.log)
    theirs = popt.transform_eigenspace(q[:, :1], np.array([2.0]), np.log)
    v = rng.normal(size=3)
    np.testing.assert_allclose(ours(v), theirs(v))


def test_transform_eigenspace_takes_a_scalar_transform():
    # paragami broadcast a scalar transform_function result (its own suite
    # uses ``lambda x: 10``): every eigenvalue in the span becomes it.
    rng = np.random.default_rng(7)
    q, _ = np.linalg.qr(rng.normal(size=(4, 4)))
    a_mult = optimization_lib.transform_eigenspace(
        q[:, :2], np.array([3.0, 5.0]), lambda x: 10)
    expected = q @ np.diag([10.0, 10.0, 1.0, 1.0]) @ q.T
    v = rng.normal(size=4)
    np.testing.assert_allclose(a_mult(v), expected @ v)
    with pytest.raises(ValueError, match="transform_function"):
        optimization_lib.transform_eigenspace(
            q[:, :2], np.array([3.0, 5.0]), lambda x: np.inf)


def test_transform_eigenspace_scalar_agrees_with_paragami(paragami):
    import paragami.optimization_lib as popt
    rng = np.random.default_rng(8)
    q, _ = np.linalg.qr(rng.normal(size=(3, 3)))
    ours = optimization_lib.transform_eigenspace(q[:, :1], np.array([2.0]),
                                                 lambda x: 10)
    theirs = popt.transform_eigenspace(q[:, :1], np.array([2.0]),
                                       lambda x: 10)
    v = rng.normal(size=3)
    np.testing.assert_allclose(ours(v), theirs(v))


def test_linear_function_agrees_with_vittles(vittles):
    import vittles.sensitivity_lib as vsl
    jac = np.array([[1.0, 2.0]])
    ours = sensitivity_lib.get_linear_function(np.ones(1), np.zeros(2), jac)
    theirs = vsl.get_linear_function(np.ones(1), np.zeros(2), jac)
    np.testing.assert_allclose(autograd.jacobian(ours)(np.zeros(2)),
                               autograd.jacobian(theirs)(np.zeros(2)))
