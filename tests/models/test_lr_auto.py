"""solver='auto' of LinearResponseCovariances, detected sparse moment
Jacobians and the structured J H^-1 J^T (issue 12).

Truths: the dense autograd Hessian and Jacobian with numpy's solve; every
explicit solver kind agrees with 'auto' to 1e-10.
"""
import autograd
import autograd.numpy as anp
import numpy as np
import pytest
import scipy.sparse as sps

from refold.models import logistic_glmm as lg
from refold.models.lr_covariance import LinearResponseCovariances
from refold.sensitivity.sparse_hessian import SparseBlockHessian
from refold.sensitivity.structure import HessianStructure


@pytest.fixture(scope="module")
def glmm():
    data = lg.simulate(1500, 150, 3, rng=4)
    fit = lg.fit(data, compute_lr=False)
    kl, opt = fit.objective, fit.opt_par
    pattern = kl.pattern

    def means(par):                      # beta and every u
        v = pattern.fold(par, free=True)
        return anp.concatenate([v["beta_mean"], v["u_mean"]])

    def mixed(par):                      # globals mixed into local moments
        v = pattern.fold(par, free=True)
        e_tau = v["tau_shape"] / v["tau_rate"]
        return anp.concatenate([e_tau, v["u_mean"] ** 2 + v["u_var"],
                                v["u_mean"] * v["mu_mean"]])

    hess = np.asarray(autograd.hessian(kl)(opt))
    return kl, opt, means, mixed, hess


def _truth(fun, opt, hess):
    jac = np.asarray(autograd.jacobian(fun)(opt))
    return jac, jac @ np.linalg.solve(hess, jac.T)


def test_auto_is_arrowhead_and_matches_the_dense_truth(glmm):
    kl, opt, means, mixed, hess = glmm
    lr = LinearResponseCovariances(kl, opt)
    assert isinstance(lr.structure, HessianStructure)
    assert lr.structure.kind == "arrowhead"
    assert lr.structure.source == "detected"
    assert lr.structure.local_inds.shape == (150, 2)
    assert lr.hess_solver.kind == "arrowhead"
    for fun in (means, mixed):
        _, truth = _truth(fun, opt, hess)
        cov = lr.get_lr_covariance(fun)
        np.testing.assert_allclose(cov, truth, rtol=1e-10,
                                   atol=1e-10 * np.abs(truth).max())
        assert np.array_equal(cov, cov.T)
    text = lr.describe()
    assert text.startswith("arrowhead: ") and "Schur complement" in text
    assert "sparse Jacobian" in text


@pytest.mark.parametrize("kind,options", [
    ("cholesky", {}), ("dense", {}), ("lu", {}), ("sparse", {}),
    ("cg", {"cg_opts": {"rtol": 1e-14}}),
    ("arrowhead", "local"),
])
def test_auto_equals_every_explicit_solver(glmm, kind, options):
    kl, opt, means, mixed, _ = glmm
    if options == "local":
        options = {"local_inds": kl.local_inds}
    auto = LinearResponseCovariances(kl, opt)
    explicit = LinearResponseCovariances(kl, opt, solver=kind,
                                         solver_options=options)
    assert explicit.structure is None
    assert "chosen by the caller" in explicit.describe()
    for fun in (means, mixed):
        a, b = auto.get_lr_covariance(fun), explicit.get_lr_covariance(fun)
        np.testing.assert_allclose(a, b, rtol=1e-10,
                                   atol=1e-10 * np.abs(a).max())


def test_vittles_route_sparse_hessian_at_opt_goes_to_schur(glmm):
    kl, opt, means, mixed, hess = glmm
    h_sparse = SparseBlockHessian(kl, kl.local_inds).get_hessian(opt)
    assert sps.issparse(h_sparse)
    lr = LinearResponseCovariances(kl, opt, hessian_at_opt=h_sparse)
    assert lr.structure.kind == "arrowhead"
    assert lr.hess_solver.kind == "arrowhead"       # never SuperLU
    assert lr.describe().startswith("arrowhead: 10 globals, 150 blocks of 2;"
                                    " hessian_at_opt given; Schur")
    np.testing.assert_array_equal(np.sort(lr.structure.global_inds),
                                  np.sort(kl.global_inds))
    _, truth = _truth(means, opt, hess)
    np.testing.assert_allclose(lr.get_lr_covariance(means), truth,
                               rtol=1e-10, atol=1e-10 * np.abs(truth).max())
    # The Hessian held is the user's matrix.
    assert sps.issparse(lr.get_hessian_at_opt())
    # Moving the base point recomputes in the same (arrowhead) structure.
    lr.set_base_values(opt, validate=False)
    assert lr.structure.kind == "arrowhead"
    np.testing.assert_allclose(lr.get_lr_covariance(means), truth,
                               rtol=1e-10, atol=1e-10 * np.abs(truth).max())
    # An ArrowheadHessian given is described (it has no pattern).
    arrow = LinearResponseCovariances(kl, opt, hessian_at_opt=kl.hessian(opt))
    assert arrow.hess_solver.kind == "arrowhead"
    assert "hessian_at_opt given" in arrow.describe()


def test_detected_moment_jacobian_matches_autograd(glmm):
    kl, opt, means, mixed, _ = glmm
    lr = LinearResponseCovariances(kl, opt)
    for fun in (means, mixed):
        dense = np.asarray(autograd.jacobian(fun)(opt))
        jac = lr.get_moment_jacobian(fun, sparse=True)
        assert sps.issparse(jac)
        # The detected pattern holds every nonzero of the true Jacobian ...
        pattern = jac.toarray() != 0
        assert not np.any((dense != 0) & ~pattern)
        # ... and the values are autograd's.
        np.testing.assert_allclose(jac.toarray(), dense, rtol=1e-12,
                                   atol=1e-14)
        np.testing.assert_allclose(lr.get_moment_jacobian(fun), dense,
                                   rtol=1e-12, atol=1e-14)
    assert "colour" in lr.describe()


def test_dense_moments_stay_dense():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(5, 5))
    lam = a @ a.T + 5 * np.eye(5)

    def f(x):
        return 0.5 * x @ lam @ x
    lr = LinearResponseCovariances(f, np.zeros(5))
    assert lr.structure.kind == "dense"
    mix = rng.normal(size=(3, 5))
    cov = lr.get_lr_covariance(lambda x: anp.tanh(anp.dot(mix, x)))
    np.testing.assert_allclose(cov, mix @ np.linalg.solve(lam, mix.T),
                               rtol=1e-12)
    assert "dense Jacobian" in lr.describe()
    assert "chosen by the caller" not in lr.describe()


def test_explicit_solver_still_wins_and_factorize_false_is_cg(glmm):
    kl, opt, means, _, _ = glmm
    assert LinearResponseCovariances(kl, opt, solver="cholesky") \
        .hess_solver.kind in ("cholesky", "dense")
    lr = LinearResponseCovariances(kl, opt, factorize_hessian=False)
    assert lr.hess_solver.kind == "cg" and lr.structure is None
    with pytest.raises(TypeError, match="not understood by solver='auto'"):
        LinearResponseCovariances(kl, opt, solver="auto",
                                  solver_options={"local_inds": None})


def test_blocks_from_the_auto_structure(glmm):
    kl, opt, means, mixed, hess = glmm
    lr = LinearResponseCovariances(kl, opt)          # no local_inds given
    jac = lr.get_moment_jacobian(means, sparse=True)
    blocks = lr.get_lr_covariance_blocks(jac)
    _, truth = _truth(means, opt, hess)
    k = 3
    np.testing.assert_allclose(
        blocks.global_cov[np.ix_(np.argsort(blocks.global_moments),
                                 np.argsort(blocks.global_moments))],
        truth[:k, :k], rtol=1e-10)
    u_rows = blocks.local_moments[:, 0]
    np.testing.assert_allclose(blocks.local_covs[:, 0, 0],
                               np.diag(truth)[u_rows], rtol=1e-10)
