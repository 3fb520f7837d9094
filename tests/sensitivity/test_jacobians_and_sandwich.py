"""refold.sensitivity.jacobians and refold.sensitivity.inverse_blocks.

Truths: autograd's dense Jacobian and numpy's dense solve.
"""
import autograd
import autograd.numpy as anp
import numpy as np
import pytest
import scipy.sparse as sps

from refold.sensitivity.arrowhead import ArrowheadHessian
from refold.sensitivity.inverse_blocks import (inverse_sandwich,
                                               inverse_sandwich_blocks)
from refold.sensitivity.jacobians import (JacobianColouring,
                                          MomentJacobianColouring,
                                          auto_jacobian, colour_jacobian,
                                          colour_moment_jacobian,
                                          sparse_jacobian)


def _arrow(T=30, m=3, g=4, seed=0):
    rng = np.random.default_rng(seed)
    a = rng.normal(size=(T, m, m))
    L = a @ a.transpose(0, 2, 1) + 3 * np.eye(m)
    C = 0.3 * rng.normal(size=(T, g, m))
    b = rng.normal(size=(g, g))
    G = b @ b.T + (5 + 2 * T) * np.eye(g)
    perm = rng.permutation(g + T * m)
    return ArrowheadHessian(G, C, L, global_inds=perm[:g],
                            local_inds=perm[g:].reshape(T, m))


@pytest.mark.parametrize("sparse_input", [True, False])
def test_inverse_sandwich_matches_dense(sparse_input):
    arrow = _arrow()
    dense_h = arrow.to_sparse().toarray()
    j1 = sps.random(40, arrow.dim, density=0.05, random_state=1, format="csr")
    j2 = sps.random(7, arrow.dim, density=0.3, random_state=2, format="csr")
    if not sparse_input:
        j1, j2 = j1.toarray(), j2.toarray()
    d1 = j1.toarray() if sps.issparse(j1) else j1
    d2 = j2.toarray() if sps.issparse(j2) else j2
    truth12 = d1 @ np.linalg.solve(dense_h, d2.T)
    truth11 = d1 @ np.linalg.solve(dense_h, d1.T)
    for kw in ({"arrowhead": arrow},
               {"solver": lambda b: np.linalg.solve(dense_h, b)}):
        np.testing.assert_allclose(inverse_sandwich(j1, j2, **kw), truth12,
                                   rtol=1e-10, atol=1e-12)
        same = inverse_sandwich(j1, **kw)
        np.testing.assert_allclose(same, truth11, rtol=1e-10, atol=1e-12)
        assert np.array_equal(same, same.T)
    with pytest.raises(TypeError, match="exactly one of"):
        inverse_sandwich(j1)


def test_inverse_sandwich_blocks_identity_are_inverse_blocks():
    arrow = _arrow(T=5, m=2, g=3)
    inv = np.linalg.inv(arrow.to_sparse().toarray())
    blocks = inverse_sandwich_blocks(arrow)
    gi, li = arrow.global_inds, arrow.local_inds
    np.testing.assert_allclose(blocks.global_cov, inv[np.ix_(gi, gi)],
                               rtol=1e-10)
    for t in range(5):
        np.testing.assert_allclose(blocks.local_covs[t],
                                   inv[np.ix_(li[t], li[t])], rtol=1e-10)


def test_sparse_jacobian_detects_and_matches_autograd():
    def fun(x, scale):
        return anp.concatenate([scale * x[1:] * x[:-1], anp.exp(x[:3])])
    x = np.linspace(-1.0, 1.0, 60)
    dense = np.asarray(autograd.jacobian(lambda v: fun(v, 2.0))(x))
    jac = sparse_jacobian(fun, x, 2.0)
    assert sps.issparse(jac) and jac.nnz <= 2 * 59 + 3
    np.testing.assert_allclose(jac.toarray(), dense, rtol=1e-14)
    got, how = auto_jacobian(fun, x, 2.0)
    assert sps.issparse(got) and how.startswith("sparse Jacobian")
    np.testing.assert_allclose(got.toarray(), dense, rtol=1e-14)


def test_auto_jacobian_dense_when_dense():
    mix = np.random.default_rng(0).normal(size=(4, 30))
    got, how = auto_jacobian(lambda x: anp.sin(anp.dot(mix, x)), np.ones(30))
    assert isinstance(got, np.ndarray) and how.startswith("dense Jacobian")
    np.testing.assert_allclose(got, np.cos(mix @ np.ones(30))[:, None] * mix,
                               rtol=1e-14)


def test_wrong_pattern_raises_naming_the_row():
    x = np.ones(10)
    with pytest.raises(ValueError, match="outside the sparsity pattern"):
        sparse_jacobian(lambda v: v[1:] * v[:-1], x,
                        sparsity=sps.eye(9, 10, format="csr"))


def test_colouring_aliases_and_vectorised_path():
    assert MomentJacobianColouring is JacobianColouring
    assert colour_moment_jacobian is colour_jacobian
    deps = np.stack([np.arange(500), 500 + np.arange(500)], axis=1)
    col = colour_jacobian(deps, dim=1000)
    assert col.num_colours == 2
    # Columns of one row differ; the greedy path agrees on a shared column.
    shared = np.concatenate([deps, np.zeros((500, 1), dtype=int)], axis=1)
    shared[:, 2] = 999
    shared[:, 1] = np.minimum(shared[:, 1], 998)
    col2 = colour_jacobian(shared, dim=1000)
    pat = col2.pattern.toarray()
    for c in range(col2.num_colours):
        assert pat[:, col2.colours == c].sum(axis=1).max() <= 1
