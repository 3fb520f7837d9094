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


def _few_dense_rows(x):
    # A banded Jacobian with two rows of every coordinate: forward mode alone
    # needs one colour per column; two reverse sweeps free the rest.
    return anp.concatenate([x[1:] * x[:-1], anp.sum(x ** 2)[None],
                            anp.exp(x[:3]), anp.sin(anp.sum(x))[None]])


_BLOCKS = np.random.default_rng(1).normal(size=(25, 4, 4))


def _block_diagonal(x):
    return anp.ravel(anp.tanh(anp.einsum("tij,tj->ti", _BLOCKS,
                                         anp.reshape(x, (25, 4)))))


_MIX = np.random.default_rng(2).normal(size=(12, 40))


def _dense(x):
    return anp.sin(anp.dot(_MIX, x)) * anp.sum(x ** 2)


@pytest.mark.parametrize("fun, dim, max_products, reverse", [
    (_few_dense_rows, 60, 2 + 2, 2),       # 2 colours + 2 reverse sweeps
    (_block_diagonal, 100, 4, 0),          # one colour per block column
    (_dense, 40, 12, 12),                  # every row in reverse mode
])
def test_bidirectional_sparse_jacobian_matches_autograd(fun, dim, max_products,
                                                        reverse):
    x = np.random.default_rng(3).uniform(-1.0, 1.0, dim)
    truth = np.asarray(autograd.jacobian(fun)(x))
    colouring = colour_jacobian(sps.csr_array(truth != 0))
    assert colouring.num_products <= max_products
    assert colouring.dense_rows.size == reverse
    for sparsity in (None, colouring, truth != 0):
        jac = sparse_jacobian(fun, x, sparsity=sparsity)
        assert sps.issparse(jac)
        np.testing.assert_allclose(jac.toarray(), truth, rtol=1e-13,
                                   atol=1e-15)


def test_dense_rows_are_verified_and_reused():
    x = np.linspace(-1.0, 1.0, 30)
    pattern = np.asarray(autograd.jacobian(_few_dense_rows)(x)) != 0
    forward_only = len(x)             # a full row needs one colour a column
    colouring = colour_jacobian(pattern)
    assert colouring.num_products < forward_only // 5
    assert colouring.describe() == "2 colours, 2 reverse passes"
    # A missing coordinate of a reverse-mode row is caught by the probe.
    wrong = pattern.copy()
    wrong[29, 5] = False
    assert 29 in colour_jacobian(wrong).dense_rows
    with pytest.raises(ValueError, match="outside the sparsity pattern"):
        sparse_jacobian(_few_dense_rows, x, sparsity=wrong)
    # A colouring built once is used as it is, for another point too.
    y = x + 0.1
    np.testing.assert_allclose(
        sparse_jacobian(_few_dense_rows, y, sparsity=colouring).toarray(),
        autograd.jacobian(_few_dense_rows)(y), rtol=1e-13, atol=1e-15)
    with pytest.raises(ValueError, match="sparsity must have 31 columns"):
        sparse_jacobian(_few_dense_rows, np.ones(31), sparsity=colouring)


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


def test_symmetric_gram_is_exact_and_symmetric():
    from refold.sensitivity.inverse_blocks import _symmetric_gram
    rng = np.random.default_rng(11)
    for n in (1, 5, 128, 129, 300):
        z = rng.standard_normal((n, 7))
        out = _symmetric_gram(z)
        assert np.array_equal(out, out.T)
        np.testing.assert_allclose(out, z @ z.T, rtol=1e-13, atol=1e-13)
