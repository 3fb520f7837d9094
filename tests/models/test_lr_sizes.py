"""LR covariances through an arrowhead Hessian whose local blocks have
unequal sizes (groups with 1, 2 or 3 random effects), against the dense
autograd Hessian inverted by numpy."""
import autograd.numpy as anp
import numpy as np
import pytest
import scipy.optimize

import refold
from refold.models.lr_covariance import LinearResponseCovariances
from refold.sensitivity.hvp import dense_hessian
from tests.sensitivity.test_structure_sizes import (COUNTS, DIM, N_GLOBAL,
                                                    ragged_objective)

H0 = np.array([0.3])


def kl(x):
    return ragged_objective(x, H0)


@pytest.fixture(scope="module")
def fitted():
    import autograd
    opt = scipy.optimize.minimize(
        kl, np.zeros(DIM), method="Newton-CG", jac=autograd.grad(kl),
        hessp=refold.get_hvp(kl), options=dict(xtol=1e-15, maxiter=100)).x
    hess = dense_hessian(kl, opt)
    return opt, np.linalg.inv(hess)


def classes():
    """The (T_k, m_k) local indices, globals first then class by class."""
    out, start = [], N_GLOBAL
    for m, t in COUNTS.items():
        out.append(start + np.arange(m * t).reshape(t, m))
        start += m * t
    return out


def check_blocks(blocks, inv, expected=None):
    gi = np.arange(N_GLOBAL)
    np.testing.assert_allclose(blocks.global_cov, inv[:N_GLOBAL, :N_GLOBAL],
                               rtol=1e-10, atol=1e-14)
    assert isinstance(blocks.local_covs, tuple)
    for li, want, cov, cross in zip(expected or classes(), blocks.local_moments,
                                    blocks.local_covs, blocks.cross_covs):
        np.testing.assert_array_equal(want, li)
        np.testing.assert_allclose(cov, np.stack([inv[np.ix_(r, r)]
                                                  for r in li]),
                                   rtol=1e-10, atol=1e-14)
        np.testing.assert_allclose(cross, np.stack([inv[np.ix_(gi, r)]
                                                    for r in li]),
                                   rtol=1e-10, atol=1e-14)


def test_auto_lr_blocks_and_covariances(fitted):
    opt, inv = fitted
    lr = LinearResponseCovariances(kl, opt)
    assert lr.describe().startswith("arrowhead: 3 globals, 60 blocks of 1, "
                                    "50 blocks of 2 and 20 blocks of 3")
    check_blocks(lr.get_lr_covariance_blocks(), inv)

    def moments(par):                 # beta, and every u squared
        return anp.concatenate([par[:N_GLOBAL], par[N_GLOBAL:] ** 2])
    import autograd
    jac = autograd.jacobian(moments)(opt)
    np.testing.assert_allclose(lr.get_lr_covariance(moments),
                               jac @ inv @ jac.T, rtol=1e-10, atol=1e-14)


def test_explicit_and_matrix_free_splits(fitted):
    opt, inv = fitted
    # One array per block, in reverse: grouped by size, in order within one.
    ragged = [r for c in classes() for r in c][::-1]
    explicit = LinearResponseCovariances(kl, opt, solver="arrowhead",
                                         solver_options={"local_inds": ragged})
    check_blocks(explicit.get_lr_covariance_blocks(), inv,
                 [c[::-1] for c in classes()])
    cg = LinearResponseCovariances(kl, opt, factorize_hessian=False)
    check_blocks(cg.get_lr_covariance_blocks(local_inds=classes()), inv)
    with pytest.raises(ValueError, match=r"local_inds \(size class 1, blocks "
                                         r"of 2\) must hold indices into "
                                         r"opt_par_value"):
        cg.get_lr_covariance_blocks(local_inds=[classes()[0],
                                                classes()[1] + DIM])
