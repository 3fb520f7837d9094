"""Tests for refold.sensitivity.solvers against independent dense solves."""
import re
import warnings

import numpy as np
import pytest
import scipy.linalg
import scipy.sparse
import scipy.sparse.linalg
from hypothesis import given, settings
from hypothesis import strategies as st

from refold.sensitivity.solvers import (
    LinearSolver, RefoldWarning, as_solver, check_hessian, get_cg_solver,
    get_cholesky_solver, get_dense_cholesky_solver, get_lu_solver, get_solver,
    get_sparse_cholesky_solver)

D = 8


def spd(rng, d=D, cond=None):
    """Random SPD matrix; with ``cond`` its eigenvalues span [1, cond]."""
    q, _ = np.linalg.qr(rng.normal(size=(d, d)))
    w = (np.geomspace(1.0, cond, d) if cond else rng.uniform(0.5, 3.0, d))
    return (q * w) @ q.T


def with_eigenvalues(rng, w):
    q, _ = np.linalg.qr(rng.normal(size=(len(w), len(w))))
    h = (q * np.asarray(w, float)) @ q.T
    return 0.5 * (h + h.T)


@pytest.fixture
def rng():
    return np.random.default_rng(0)


@pytest.fixture
def problem(rng):
    h = spd(rng)
    b = rng.normal(size=(D, 3))
    return h, b, np.linalg.solve(h, b)


# --------------------------------------------------------------------------
# Every solver against np.linalg.solve
# --------------------------------------------------------------------------
def _factories():
    def cg(h):
        return get_cg_solver(lambda v: h @ v, D)

    def cg_jacobi(h):
        d = np.diag(h).copy()
        return get_cg_solver(lambda v: h @ v, D, preconditioner=lambda v: v / d)

    def cg_dense_pre(h):
        return get_cg_solver(lambda v: h @ v, D, {'maxiter': 50},
                             preconditioner=np.diag(1.0 / np.diag(h)))

    def cg_sparse_pre(h):
        return get_cg_solver(lambda v: h @ v, D,
                             preconditioner=scipy.sparse.diags_array(1 / np.diag(h)))

    def cg_linop_pre(h):
        inv = np.linalg.inv(h + 0.1 * np.eye(D))
        op = scipy.sparse.linalg.aslinearoperator(inv)
        return get_cg_solver(lambda v: h @ v, D, preconditioner=op)

    return {
        'dense': get_dense_cholesky_solver,
        'dense_hchol_tuple': lambda h: get_dense_cholesky_solver(
            h, scipy.linalg.cho_factor(h, lower=False)),
        'dense_hchol_lower_only': lambda h: get_dense_cholesky_solver(
            None, np.linalg.cholesky(h)),
        'sparse_csr_array': lambda h: get_sparse_cholesky_solver(scipy.sparse.csr_array(h)),
        'sparse_csc_matrix': lambda h: get_sparse_cholesky_solver(
            scipy.sparse.csc_matrix(h)),
        'cholesky_dense': get_cholesky_solver,
        'cholesky_sparse': lambda h: get_cholesky_solver(scipy.sparse.coo_array(h)),
        'lu_dense': get_lu_solver,
        'lu_sparse': lambda h: get_lu_solver(scipy.sparse.csr_array(h)),
        'cg': cg, 'cg_jacobi': cg_jacobi, 'cg_dense_pre': cg_dense_pre,
        'cg_sparse_pre': cg_sparse_pre, 'cg_linop_pre': cg_linop_pre,
        'kind_cholesky': lambda h: get_solver('cholesky', hessian=h),
        'kind_dense_from_sparse': lambda h: get_solver(
            'dense', hessian=scipy.sparse.csr_array(h)),
        'kind_sparse_from_dense': lambda h: get_solver('sparse', hessian=h),
        'kind_cg_hvp': lambda h: get_solver('cg', hvp=lambda v: h @ v, dim=D),
        'kind_cg_hessian': lambda h: get_solver('cg', hessian=h),
        'kind_lu': lambda h: get_solver('lu', hessian=h),
        'as_solver_kind': lambda h: as_solver('cholesky', hessian=h),
        'as_solver_callable': lambda h: as_solver(
            lambda v: scipy.linalg.solve(h, v), hessian=h),
    }


@pytest.mark.parametrize('factory', list(_factories()))
def test_solver_matches_dense_solve(factory, problem):
    h, b, x = problem
    h_before, b_before = h.copy(), b.copy()
    solver = _factories()[factory](h)
    tol = 1e-8 if 'cg' in factory else 1e-11
    np.testing.assert_allclose(solver(b), x, rtol=tol, atol=tol)
    np.testing.assert_allclose(solver(b[:, 1]), x[:, 1], rtol=tol, atol=tol)
    assert solver(b[:, 1]).shape == (D,)
    assert solver(b[:, :0]).shape == (D, 0)
    np.testing.assert_array_equal(h, h_before)     # inputs are not mutated
    np.testing.assert_array_equal(b, b_before)


def test_lu_nonsymmetric_and_badly_scaled(rng):
    a = rng.normal(size=(D, D)) + 3 * np.eye(D)
    a[2] *= 1e9                                      # equilibration handles this
    a[:, 5] *= 1e-7
    b = rng.normal(size=(D, 2))
    x = np.linalg.solve(a, b)
    for h in (a, scipy.sparse.csc_array(a)):
        solver = get_lu_solver(h)
        np.testing.assert_allclose(solver(b), x, rtol=1e-10)
        xs = solver(b[:, 0])                       # componentwise backward error
        assert np.max(np.abs(a @ xs - b[:, 0]) / (np.abs(a) @ np.abs(xs))) < 1e-13


def test_cg_tolerances_and_iterations(rng):
    h = spd(rng, d=30, cond=1e4)
    b = rng.normal(size=30)
    x = get_cg_solver(lambda v: h @ v, 30)(b)
    np.testing.assert_allclose(x, np.linalg.solve(h, b), rtol=1e-8)
    with pytest.raises(ValueError, match=r"did not converge.*after 3 iterations.*"
                                         r"relative residual"):
        get_cg_solver(lambda v: h @ v, 30, {'maxiter': 3})(b)
    # A loose tolerance gives a correspondingly loose answer.
    loose = get_cg_solver(lambda v: h @ v, 30, {'rtol': 1e-3})(b)
    assert np.linalg.norm(h @ loose - b) <= 1e-3 * np.linalg.norm(b) * (1 + 1e-9)


def test_cg_old_tol_name_warns(problem):
    h, b, x = problem
    with pytest.warns(RefoldWarning, match=r"cg_opts\['tol'\]"):
        solver = get_cg_solver(lambda v: h @ v, D, {'tol': 1e-12})
    np.testing.assert_allclose(solver(b), x, rtol=1e-9)


@settings(max_examples=15, deadline=None)
@given(d=st.integers(1, 12), k=st.integers(1, 3), seed=st.integers(0, 2**16))
def test_property_dense_and_sparse(d, k, seed):
    r = np.random.default_rng(seed)
    h = spd(r, d=d, cond=100.0)
    b = r.normal(size=(d, k))
    x = np.linalg.solve(h, b)
    for solver in (get_dense_cholesky_solver(h),
                   get_sparse_cholesky_solver(scipy.sparse.csr_array(h))):
        np.testing.assert_allclose(solver(b), x, rtol=1e-9, atol=1e-12)


# --------------------------------------------------------------------------
# Diagnostics
# --------------------------------------------------------------------------
def test_condition_estimate_matches_truth(rng):
    h = spd(rng, d=10, cond=1e6) * np.outer(np.geomspace(1, 1e3, 10),
                                            np.geomspace(1, 1e3, 10))
    d = 1 / np.sqrt(np.diag(h))
    true_rcond = 1 / np.linalg.cond(h * np.outer(d, d), 1)
    for solver in (get_dense_cholesky_solver(h),
                   get_sparse_cholesky_solver(scipy.sparse.csr_array(h))):
        assert 0.1 < solver.info['rcond'] / true_rcond < 10


def test_badly_scaled_but_well_conditioned_is_accepted():
    h = np.diag([1.0, 1e-14, 1e12])
    h[0, 2] = h[2, 0] = 1e5
    b = np.array([1.0, 1.0, 1.0])
    for solver in (get_dense_cholesky_solver(h),
                   get_sparse_cholesky_solver(scipy.sparse.csr_array(h))):
        np.testing.assert_allclose(solver(b), np.linalg.solve(h, b), rtol=1e-12)


@pytest.mark.parametrize('make', ['dense', 'sparse'])
def test_indefinite_reports_smallest_eigenvalue(make, rng):
    h = with_eigenvalues(rng, [-0.75, 1.0, 2.0, 3.0, 4.0])
    mat = h if make == 'dense' else scipy.sparse.csr_array(h)
    with pytest.raises(ValueError, match=r"h is not positive definite.*smallest "
                                         r"eigenvalue is -0\.75.*on_failure="):
        get_cholesky_solver(mat)
    with pytest.raises(ValueError, match=r"hessian is not positive definite"):
        check_hessian(mat)
    with pytest.raises(ValueError, match=r"my_hess is not positive definite"):
        get_solver('cholesky', hessian=mat, name='my_hess')


def test_sparse_indefinite_counts_negative_eigenvalues(rng):
    h = with_eigenvalues(rng, [-2.0, -1.0, 1.0, 2.0, 3.0])
    with pytest.raises(ValueError, match=r"\(2 negative eigenvalues\).*-2\b"):
        get_sparse_cholesky_solver(scipy.sparse.csc_array(h))
    with pytest.raises(ValueError, match=r"\(2 negative eigenvalues\).*-2\b"):
        get_dense_cholesky_solver(h)


@pytest.mark.parametrize('make', ['dense', 'sparse'])
def test_singular_reports_condition_number(make, rng):
    exact = with_eigenvalues(rng, [0.0, 1.0, 2.0, 3.0])
    near = with_eigenvalues(rng, [1e-14, 1.0, 2.0, 3.0])
    conv = (lambda a: a) if make == 'dense' else scipy.sparse.csr_array
    for h in (exact, near):
        with pytest.raises(ValueError, match=r"h is numerically singular: its "
                                             r"condition number is ([0-9.e+]+|inf)"):
            get_cholesky_solver(conv(h))
    # The reported condition number is the true one, to the estimate's accuracy.
    h = with_eigenvalues(rng, [1e-15, 1.0, 1.0, 1.0])
    h = h / np.sqrt(np.outer(np.diag(h), np.diag(h)))
    with pytest.raises(ValueError) as err:
        get_cholesky_solver(conv(h))
    found = re.search(r"condition number is ([0-9.e+]+|inf)",
                      str(err.value)).group(1)
    assert found == 'inf' or 1e14 < float(found) < 1e17


def test_lu_singular_reports_condition(rng):
    a = rng.normal(size=(5, 5))
    a[4] = a[0] + a[1]
    for h in (a, scipy.sparse.csr_array(a)):
        with pytest.raises(ValueError, match=r"jac is (numerically|exactly) singular"
                                             r".*on_failure='pinv'"):
            get_lu_solver(h, name='jac')
    with pytest.raises(ValueError, match="singular: its row 2 is zero"):
        get_lu_solver(np.diag([1.0, 1.0, 0.0]))
    with pytest.raises(ValueError, match="jacobian is .*singular"):
        check_hessian(a, 'jacobian', symmetric=False)
    with pytest.raises(ValueError, match="on_failure must be one of"):
        get_lu_solver(a, on_failure='regularize')


def test_check_hessian_accepts_good_and_names_bad(rng):
    h = spd(rng)
    assert check_hessian(h) is None
    assert check_hessian(scipy.sparse.csr_array(h)) is None
    assert check_hessian(h + np.triu(np.ones((D, D)), 1), symmetric=False) is None
    with pytest.raises(ValueError, match=r"theta_hess must be a non-empty square"):
        check_hessian(np.ones((2, 3)), 'theta_hess')
    with pytest.raises(ValueError, match=r"theta_hess must be finite; "
                                         r"theta_hess\[1, 0\] = inf"):
        check_hessian(np.array([[1.0, 0.0], [np.inf, 1.0]]), 'theta_hess')


@pytest.mark.parametrize('make', ['dense', 'sparse'])
def test_nonsymmetric_reports_max_asymmetry_and_location(make, rng):
    h = spd(rng)
    h[5, 2] += 0.3
    h[1, 6] += 0.01
    mat = h if make == 'dense' else scipy.sparse.csr_array(h)
    with pytest.raises(ValueError, match=r"hessian is not symmetric: \|hessian"
                                         r"\[(2, 5|5, 2)\] - .*= 0\.3"):
        check_hessian(mat)


def test_symmetry_tolerance_is_dtype_aware(rng):
    h = spd(rng)
    e = np.zeros((D, D))
    e[0, 1] = 1e-12
    get_dense_cholesky_solver(h + e)                     # roundoff-level: fine
    e[0, 1] = 1e-5
    with pytest.raises(ValueError, match="not symmetric"):
        get_dense_cholesky_solver(h + e)
    # In float32 an asymmetry of 1e-5 is roundoff (sqrt(eps32) ~ 3.5e-4).
    solver = get_dense_cholesky_solver((h + e).astype(np.float32))
    b = rng.normal(size=D)
    np.testing.assert_allclose(solver(b), np.linalg.solve(h, b), rtol=1e-3)


def test_bad_matrix_inputs():
    with pytest.raises(ValueError, match="h must be a non-empty square"):
        get_dense_cholesky_solver(np.ones(3))
    with pytest.raises(ValueError, match="h must be a non-empty square"):
        get_sparse_cholesky_solver(scipy.sparse.csr_array(np.ones((2, 3))))
    with pytest.raises(ValueError, match=r"h must be finite; h\[0, 1\] = nan"):
        get_sparse_cholesky_solver(scipy.sparse.csr_array(
            np.array([[1.0, np.nan], [np.nan, 1.0]])))
    with pytest.raises(TypeError, match="h must be a scipy.sparse matrix"):
        get_sparse_cholesky_solver(np.eye(2))
    with pytest.raises(TypeError, match="h must be real"):
        get_dense_cholesky_solver(np.eye(2) * 1j)
    with pytest.raises(TypeError, match="h must be a real numeric"):
        get_dense_cholesky_solver(np.array([['a', 'b'], ['c', 'd']]))
    with pytest.raises(ValueError, match="on_failure must be one of"):
        get_dense_cholesky_solver(np.eye(2), on_failure='ignore')


def test_bad_h_chol(rng):
    h = spd(rng)
    L = np.linalg.cholesky(h)
    with pytest.raises(ValueError, match=r"h_chol must be lower-triangular.*"
                                         r"h_chol\[\d+, \d+\] = .* above the diagonal"):
        get_dense_cholesky_solver(h, L.T)
    bad = L.copy()
    bad[3, 3] = -1.0
    with pytest.raises(ValueError, match="h_chol .*diagonal entry 3 is -1"):
        get_dense_cholesky_solver(h, bad)
    with pytest.raises(ValueError, match=r"h_chol is not a Cholesky factor of h"):
        get_dense_cholesky_solver(h + np.eye(D), L)
    with pytest.raises(ValueError, match="h_chol has shape"):
        get_dense_cholesky_solver(h[:3, :3], L)
    with pytest.raises(TypeError, match="h_chol must be the .* tuple"):
        get_dense_cholesky_solver(h, (L, True, 1))


def test_bad_right_hand_sides(problem):
    h, b, _ = problem
    solver = get_cholesky_solver(h)
    with pytest.raises(ValueError, match=r"b must have leading dimension D = 8.*"
                                         r"got shape \(7,\)"):
        solver(b[:7, 0])
    with pytest.raises(ValueError, match=r"b must have shape \(D,\) or \(D, k\)"):
        solver(np.zeros((D, 2, 2)))
    with pytest.raises(ValueError, match=r"b must have shape"):
        solver(1.0)
    with pytest.raises(ValueError, match=r"b must be finite; b\[3, 1\] = nan"):
        bad = b.copy()
        bad[3, 1] = np.nan
        solver(bad)
    with pytest.raises(TypeError, match="b must be real"):
        solver(b[:, 0] * 1j)
    with pytest.raises(TypeError, match="b must be a real numeric"):
        solver(np.array(['x'] * D))
    # lists and sparse right-hand sides are fine
    np.testing.assert_allclose(solver(list(b[:, 0])), solver(b[:, 0]))
    np.testing.assert_allclose(solver(scipy.sparse.csr_array(b)), solver(b))


# --------------------------------------------------------------------------
# Opt-in paths
# --------------------------------------------------------------------------
@pytest.mark.parametrize('make', ['dense', 'sparse'])
def test_pinv_singular_gives_pseudo_inverse(make, rng):
    a = rng.normal(size=(6, 3))
    h = a @ a.T                                       # rank 3
    b = rng.normal(size=(6, 2))
    mat = h if make == 'dense' else scipy.sparse.csr_array(h)
    with pytest.warns(RefoldWarning, match=r"singular.*pseudo-inverse: 3 of 6"):
        solver = get_cholesky_solver(mat, on_failure='pinv')
    np.testing.assert_allclose(solver(b), np.linalg.pinv(h, rcond=1e-10) @ b,
                               rtol=1e-8, atol=1e-10)
    assert solver.info['method'] == 'pinv' and solver.info['rank'] == 3


def test_pinv_indefinite_is_the_inverse(rng):
    h = with_eigenvalues(rng, [-1.0, 0.5, 2.0, 3.0])
    b = rng.normal(size=4)
    with pytest.warns(RefoldWarning, match="not positive definite"):
        solver = get_dense_cholesky_solver(h, on_failure='pinv')
    np.testing.assert_allclose(solver(b), np.linalg.solve(h, b), rtol=1e-10)


@pytest.mark.parametrize('make', ['dense', 'sparse'])
def test_regularize(make, rng):
    conv = (lambda a: a) if make == 'dense' else scipy.sparse.csr_array
    b = rng.normal(size=5)
    # Singular PSD: a tiny ridge sqrt(eps) * max eigenvalue.
    h = with_eigenvalues(rng, [0.0, 1.0, 2.0, 3.0, 4.0])
    with pytest.warns(RefoldWarning, match=r"Regularising: .*lambda = "):
        solver = get_cholesky_solver(conv(h), on_failure='regularize')
    lam = solver.info['shift']
    np.testing.assert_allclose(lam, np.sqrt(np.finfo(float).eps) * 4.0, rtol=1e-6)
    np.testing.assert_allclose(solver(b), np.linalg.solve(h + lam * np.eye(5), b),
                               rtol=1e-6)
    # Indefinite: the most negative eigenvalue is reflected.
    h = with_eigenvalues(rng, [-0.5, 1.0, 2.0, 3.0, 4.0])
    with pytest.warns(RefoldWarning, match="not positive definite"):
        solver = get_cholesky_solver(conv(h), on_failure='regularize')
    lam = solver.info['shift']
    np.testing.assert_allclose(lam, 1.0 + np.sqrt(np.finfo(float).eps) * 4.0,
                               rtol=1e-6)
    np.testing.assert_allclose(solver(b), np.linalg.solve(h + lam * np.eye(5), b),
                               rtol=1e-8)


def test_lu_pinv(rng):
    a = rng.normal(size=(5, 5))
    a[4] = a[0] - 2 * a[3]
    b = rng.normal(size=5)
    with pytest.warns(RefoldWarning, match="SVD pseudo-inverse: 1 of 5"):
        solver = get_lu_solver(a, on_failure='pinv')
    np.testing.assert_allclose(solver(b), np.linalg.pinv(a, rcond=1e-10) @ b,
                               rtol=1e-8)


def test_no_warning_on_the_normal_path(problem):
    h = problem[0]
    with warnings.catch_warnings():
        warnings.simplefilter('error')
        get_cholesky_solver(h, on_failure='pinv')
        get_cholesky_solver(scipy.sparse.csr_array(h), on_failure='regularize')


# --------------------------------------------------------------------------
# CG failures
# --------------------------------------------------------------------------
def test_cg_detects_negative_curvature(rng):
    h = with_eigenvalues(rng, [-0.5, 1.0, 2.0, 3.0])
    with pytest.raises(ValueError, match=r"Hessian \(mat_times_vec\) is not positive "
                                         r"definite along a conjugate-gradient"):
        get_cg_solver(lambda v: h @ v, 4,
                      cg_opts={'curvature_probe': 0})(np.ones(4))


def test_cg_curvature_probe_finds_a_negative_direction_cg_never_sees(rng):
    # b lies in the positive eigenspace, so CG's Krylov space never meets the
    # negative eigenvector: only the Lanczos probe can diagnose it.
    q, _ = np.linalg.qr(rng.standard_normal((5, 5)))
    h = q @ np.diag([-0.3, 1.0, 2.0, 3.0, 4.0]) @ q.T
    b = q[:, 1] + q[:, 2]
    unprobed = get_cg_solver(lambda v: h @ v, 5,
                             cg_opts={'curvature_probe': 0})(b)
    np.testing.assert_allclose(unprobed, np.linalg.solve(h, b), atol=1e-8)
    with pytest.raises(ValueError, match=r"Lanczos curvature probe found a "
                                         r"direction v with v\^T H v / v\^T v "
                                         r"= -0\.3"):
        get_cg_solver(lambda v: h @ v, 5)(b)
    # Positive definite: the probe is silent and the answer unchanged.
    spd = q @ np.diag([0.3, 1.0, 2.0, 3.0, 4.0]) @ q.T
    np.testing.assert_allclose(get_cg_solver(lambda v: spd @ v, 5)(b),
                               np.linalg.solve(spd, b), atol=1e-8)
    with pytest.raises(ValueError, match="curvature_probe"):
        get_cg_solver(lambda v: spd @ v, 5, cg_opts={'curvature_probe': -1})


def test_cg_bad_arguments(problem):
    h, b, _ = problem
    with pytest.raises(ValueError, match=r"mat_times_vec must return a vector of "
                                         r"length 8"):
        get_cg_solver(lambda v: v[:3], D)(b[:, 0])
    with pytest.raises(ValueError, match="mat_times_vec returned non-finite"):
        get_cg_solver(lambda v: v * np.nan, D)(b[:, 0])
    with pytest.raises(TypeError, match="mat_times_vec must be a callable"):
        get_cg_solver(h, D)
    with pytest.raises(TypeError, match="dim must be a positive integer"):
        get_cg_solver(lambda v: h @ v, 2.5)
    with pytest.raises(ValueError, match="dim must be a positive integer"):
        get_cg_solver(lambda v: h @ v, 0)
    with pytest.raises(TypeError, match=r"cg_opts has unknown key 'tolerance'"):
        get_cg_solver(lambda v: h @ v, D, {'tolerance': 1e-3})
    with pytest.raises(TypeError, match=r"cg_opts\['M'\].*preconditioner="):
        get_cg_solver(lambda v: h @ v, D, {'M': np.eye(D)})
    with pytest.raises(ValueError, match=r"cg_opts\['rtol'\] must be a finite"):
        get_cg_solver(lambda v: h @ v, D, {'rtol': -1.0})
    with pytest.raises(TypeError, match=r"cg_opts must be a dict"):
        get_cg_solver(lambda v: h @ v, D, [1e-3])
    with pytest.raises(ValueError, match=r"preconditioner must have shape \(8, 8\)"):
        get_cg_solver(lambda v: h @ v, D, preconditioner=np.eye(3))
    with pytest.raises(TypeError, match="preconditioner must be a callable"):
        get_cg_solver(lambda v: h @ v, D, preconditioner='jacobi')
    with pytest.raises(ValueError, match="preconditioner is not positive definite"):
        get_cg_solver(lambda v: h @ v, D, preconditioner=-np.eye(D))(b[:, 0])


# --------------------------------------------------------------------------
# get_solver / as_solver
# --------------------------------------------------------------------------
def test_get_solver_errors(problem):
    h = problem[0]
    with pytest.raises(ValueError, match=r"kind must be one of \('cholesky', "
                                         r"'dense', 'sparse', 'cg', 'lu', "
                                         r"'arrowhead'\); got 'qr'"):
        get_solver('qr', hessian=h)
    with pytest.raises(TypeError, match="kind must be a string"):
        get_solver(3, hessian=h)
    with pytest.raises(TypeError, match=r"kind 'cholesky' needs hessian="):
        get_solver('cholesky')
    with pytest.raises(TypeError, match=r"kind 'cg' needs hvp="):
        get_solver('cg', hvp=lambda v: v)
    with pytest.raises(TypeError, match=r"'cholesky' does not take option\(s\) "
                                         r"\['cg_opts'\]"):
        get_solver('cholesky', hessian=h, cg_opts={})
    with pytest.raises(TypeError, match=r"'arrowhead' needs option\(s\)"):
        get_solver('arrowhead', hessian=h)
    with pytest.raises(ValueError, match="hessian is not positive definite"):
        get_solver('dense', hessian=-h)
    with pytest.raises(ValueError, match="hessian must be a non-empty square"):
        get_solver('cg', hessian=np.ones((2, 3)))
    with pytest.raises(ValueError, match=r"hessian must be finite"):
        get_solver('cg', hessian=scipy.sparse.csr_array(np.full((2, 2), np.nan)))


def test_as_solver_validates(problem):
    h, b, x = problem
    with pytest.raises(TypeError, match="solver must be a callable"):
        as_solver(42)
    with pytest.raises(TypeError, match=r"options \['cg_opts'\] cannot be used"):
        as_solver(lambda v: v, cg_opts={})
    with pytest.raises(ValueError, match="solver has dimension 8 but the Hessian "
                                         "has dimension 3"):
        as_solver(get_cholesky_solver(h), dim=3)
    existing = get_cholesky_solver(h)
    assert as_solver(existing, hessian=h) is existing
    wrong = as_solver(lambda v: np.ones(3), dim=D)
    with pytest.raises(ValueError, match=r"solver returned shape \(3,\)"):
        wrong(b[:, 0])
    nan = as_solver(lambda v: v * np.nan, dim=D)
    with pytest.raises(ValueError, match="solver returned non-finite"):
        nan(b)
    with pytest.raises(ValueError, match="b must have leading dimension D = 8"):
        as_solver(lambda v: v, dim=D)(np.ones(3))


def test_as_solver_vector_only_callable(problem):
    h, b, x = problem
    calls = []

    def vector_only(v):
        calls.append(np.shape(v))
        if np.ndim(v) != 1:
            raise ValueError("vectors only")
        return np.linalg.solve(h, v)
    for mode in (None, False):
        calls.clear()
        solver = as_solver(vector_only, dim=D, matrix_rhs=mode)
        assert isinstance(solver, LinearSolver)
        np.testing.assert_allclose(solver(b), x, rtol=1e-12)
        assert calls.count((D,)) == 3
    strict = as_solver(vector_only, dim=D, matrix_rhs=True)
    with pytest.raises(ValueError, match="vectors only"):
        strict(b)
    # A matrix-capable callable is called once with the matrix.
    calls.clear()
    solver = as_solver(lambda v: (calls.append(np.shape(v)), np.linalg.solve(h, v))[1])
    np.testing.assert_allclose(solver(b), x, rtol=1e-12)
    assert calls == [(D, 3)]


# --------------------------------------------------------------------------
# Sparse internals: large-matrix diagnostics and orderings
# --------------------------------------------------------------------------
def _toeplitz_tridiagonal(n, a, b):
    """Sparse tridiagonal Toeplitz matrix; eigenvalues a + 2 b cos(k pi/(n+1))."""
    return scipy.sparse.diags_array([np.full(n - 1, b), np.full(n, a),
                                     np.full(n - 1, b)], offsets=[-1, 0, 1],
                                    format='csc')


def test_sparse_diagnostics_without_densifying(monkeypatch):
    import refold.sensitivity._factorisations as _factorisations
    monkeypatch.setattr(_factorisations, "_DENSE_EIG_MAX", 5)     # force ARPACK
    n, a, b = 40, 0.5, -1.0
    h = _toeplitz_tridiagonal(n, a, b)
    eig = a + 2 * b * np.cos(np.arange(1, n + 1) * np.pi / (n + 1))
    n_neg = int(np.sum(eig < 0))
    with pytest.raises(ValueError, match=rf"\({n_neg} negative eigenvalues\)") as err:
        get_sparse_cholesky_solver(h)
    found = float(re.search(r"smallest eigenvalue is (\S+);", str(err.value)).group(1))
    np.testing.assert_allclose(found, eig.min(), rtol=1e-5)
    with pytest.warns(RefoldWarning, match="Regularising"):
        solver = get_sparse_cholesky_solver(h, on_failure='regularize')
    expected = 2 * -eig.min() + np.sqrt(np.finfo(float).eps) * np.abs(eig).max()
    np.testing.assert_allclose(solver.info['shift'], expected, rtol=1e-6)
    rhs = np.ones(n)
    np.testing.assert_allclose(
        solver(rhs), np.linalg.solve(h.toarray() + expected * np.eye(n), rhs),
        rtol=1e-5)


def test_sparse_with_dense_rows(rng):
    # An arrowhead-like matrix whose first row is dense (the COLAMD branch).
    n = 401
    h = _toeplitz_tridiagonal(n, 4.0, -1.0).tolil()
    h[0, :] = 0.01
    h[:, 0] = 0.01
    h[0, 0] = 10.0
    h = scipy.sparse.csr_array(h)
    b = rng.normal(size=(n, 2))
    solver = get_sparse_cholesky_solver(h)
    np.testing.assert_allclose(solver(b), np.linalg.solve(h.toarray(), b),
                               rtol=1e-10)
