"""Tests for refold.sensitivity.sparse_hessian against autograd.hessian
(and vittles when importable)."""
import autograd
import autograd.numpy as np
import numpy as onp
import pytest
import scipy.sparse as sp

from refold.sensitivity.colouring import colour_hessian
from refold.sensitivity.sparse_hessian import (ArrowheadBlocks,
                                               SparseBlockHessian,
                                               sparse_hessian)

# --------------------------------------------------------------- objectives


def banded_objective(x, scale):
    """Couples x_i with x_{i+1} and x_{i+2} only."""
    return (scale * np.sum(np.exp(0.2 * x) * x ** 2)
            + np.sum(np.sin(x[1:] * x[:-1])) + np.sum(x[2:] ** 2 * x[:-2]))


def banded_mask(dim, half_width):
    idx = onp.arange(dim)
    return onp.abs(idx[:, None] - idx[None, :]) <= half_width


def make_grouped(num_groups=6, block_size=3, num_global=2, seed=0):
    """A grouped objective with shuffled coordinates: the local blocks
    interact with the globals and within themselves only."""
    rng = onp.random.default_rng(seed)
    dim = num_global + num_groups * block_size
    perm = rng.permutation(dim)
    local_inds = perm[:num_groups * block_size].reshape(num_groups,
                                                        block_size)
    global_inds = perm[num_groups * block_size:]
    mix = rng.normal(size=(num_groups, block_size, block_size))

    def fun(x):
        loc = x[local_inds]
        glob = x[global_inds]
        inner = np.einsum("tab,ta->tb", mix, loc) * 0.3
        return (np.sum(np.exp(inner + 0.2 * glob[0] * loc))
                + np.sum(glob ** 4) + glob[0] * glob[-1] * np.sum(loc ** 2)
                + np.sum(loc ** 2))

    x = 0.5 * rng.normal(size=dim)
    return fun, x, local_inds, global_inds


def arrowhead_mask(local_inds, global_inds, dim):
    mask = onp.zeros((dim, dim), dtype=bool)
    mask[global_inds, :] = True
    mask[:, global_inds] = True
    for block in local_inds:  # test-only construction of the truth
        mask[onp.ix_(block, block)] = True
    return mask


# ---------------------------------------------------------- sparse_hessian


def test_sparse_hessian_banded_matches_autograd():
    dim = 12
    x = onp.random.default_rng(1).normal(size=dim)
    truth = autograd.hessian(banded_objective)(x, 1.3)
    hess, info = sparse_hessian(banded_objective, x, banded_mask(dim, 2),
                                1.3, return_info=True)
    assert isinstance(hess, sp.csr_matrix)
    onp.testing.assert_allclose(hess.toarray(), truth, rtol=0, atol=1e-12)
    assert info["num_colours"] == 5
    assert info["num_hvps"] == 6  # five colours and one probe
    assert info["probe_max_error"] < 1e-12


def test_sparse_hessian_arrowhead_matches_autograd():
    fun, x, local_inds, global_inds = make_grouped()
    truth = autograd.hessian(fun)(x)
    mask = arrowhead_mask(local_inds, global_inds, len(x))
    hess, info = sparse_hessian(fun, x, sp.csr_matrix(mask),
                                return_info=True)
    onp.testing.assert_allclose(hess.toarray(), truth, rtol=0, atol=1e-12)
    assert info["num_colours"] == len(global_inds) + local_inds.shape[1]


def test_sparse_hessian_block_diagonal_matches_autograd():
    rng = onp.random.default_rng(2)
    mix = rng.normal(size=(5, 3, 3))

    def fun(x):
        loc = np.reshape(x, (5, 3))
        return np.sum(np.exp(0.3 * np.einsum("tab,ta->tb", mix, loc)))

    x = rng.normal(size=15)
    mask = sp.block_diag([onp.ones((3, 3))] * 5)
    hess, info = sparse_hessian(fun, x, mask, return_info=True)
    onp.testing.assert_allclose(hess.toarray(), autograd.hessian(fun)(x),
                                rtol=0, atol=1e-12)
    assert info["num_colours"] == 3


def test_sparse_hessian_reuses_colouring_and_rng():
    dim = 10
    mask = banded_mask(dim, 2)
    colouring = colour_hessian(mask)
    rng = onp.random.default_rng(3)
    for _ in range(2):
        x = rng.normal(size=dim)
        hess = sparse_hessian(banded_objective, x, None, 0.5,
                              colouring=colouring, rng=rng)
        onp.testing.assert_allclose(
            hess.toarray(), autograd.hessian(banded_objective)(x, 0.5),
            atol=1e-12)
    with pytest.raises(ValueError, match="different sparsity pattern"):
        sparse_hessian(banded_objective, x, banded_mask(dim, 3), 0.5,
                       colouring=colouring)
    with pytest.raises(ValueError, match="colouring is for dimension 10"):
        sparse_hessian(banded_objective, x[:-1], None, 0.5,
                       colouring=colouring)
    user = sparse_hessian(banded_objective, x, mask, 0.5,
                          colouring=onp.arange(dim) % 5)
    onp.testing.assert_allclose(
        user.toarray(), autograd.hessian(banded_objective)(x, 0.5),
        atol=1e-12)


def test_sparse_hessian_coupling_objective_raises():
    dim = 10
    x = onp.random.default_rng(4).normal(size=dim)

    def coupled(x_, scale):
        return banded_objective(x_, scale) + 0.1 * x_[0] * x_[7]

    with pytest.raises(ValueError, match="couples coordinates.*sparsity"):
        sparse_hessian(coupled, x, banded_mask(dim, 2), 1.0)
    # Without verification the (wrong) Hessian is returned, and it is wrong.
    wrong = sparse_hessian(coupled, x, banded_mask(dim, 2), 1.0,
                           verify=False)
    assert abs(wrong.toarray() - autograd.hessian(coupled)(x, 1.0)).max() \
        > 0.05


def test_sparse_hessian_bad_inputs():
    dim = 6
    x = onp.zeros(dim)
    mask = banded_mask(dim, 1)
    with pytest.raises(ValueError, match=r"sparsity must have shape \(7, 7\)"):
        sparse_hessian(banded_objective, onp.zeros(7), mask, 1.0)
    with pytest.raises(ValueError, match="x must be finite"):
        sparse_hessian(banded_objective, onp.full(dim, onp.nan), mask, 1.0)
    with pytest.raises(ValueError, match="x must be a vector"):
        sparse_hessian(banded_objective, onp.zeros((2, 3)), mask, 1.0)
    # No pattern: it is detected from the objective (same Hessian).
    detected = sparse_hessian(banded_objective, x + 0.3, None, 1.0)
    given = sparse_hessian(banded_objective, x + 0.3, banded_mask(dim, 2), 1.0)
    assert abs(detected - given).max() == 0.0
    with pytest.raises(ValueError, match="need their sparsity pattern"):
        sparse_hessian(banded_objective, x, None, 1.0,
                       colouring=onp.arange(dim))
    with pytest.raises(TypeError, match="rng must be"):
        sparse_hessian(banded_objective, x, mask, 1.0, rng="seed")
    with pytest.raises(ValueError, match="sparsity must be a symmetric"):
        sparse_hessian(banded_objective, x, onp.triu(mask), 1.0)

    def not_finite(x_):
        return np.sum(np.sqrt(x_) ** 3)

    # (The deliberate infinities warn inside autograd; the error is the point.)
    with pytest.raises(ValueError, match="not finite"), \
            onp.errstate(divide="ignore", invalid="ignore"):
        sparse_hessian(not_finite, onp.zeros(dim), onp.eye(dim))


# ------------------------------------------------------ SparseBlockHessian


def test_sparse_block_hessian_matches_autograd():
    fun, x, local_inds, global_inds = make_grouped()
    truth = autograd.hessian(fun)(x)
    sbh = SparseBlockHessian(fun, local_inds)
    hess = sbh.get_hessian(x)
    assert isinstance(hess, sp.csr_matrix)
    onp.testing.assert_allclose(hess.toarray(), truth, rtol=0, atol=1e-12)
    assert sbh.num_hvps == local_inds.shape[1] + len(global_inds) + 1
    assert (hess != hess.T).nnz == 0

    dim = len(x)
    local_mask = onp.zeros((dim, dim), dtype=bool)
    for block in local_inds:
        local_mask[onp.ix_(block, block)] = True
    block = sbh.get_block_hessian(x)
    assert isinstance(block, sp.coo_matrix)
    onp.testing.assert_allclose(block.toarray(), truth * local_mask,
                                atol=1e-12)
    assert sbh.num_hvps == local_inds.shape[1] + 1
    glob = sbh.get_global_hessian(x)
    onp.testing.assert_allclose(glob.toarray(), truth * ~local_mask,
                                atol=1e-12)
    assert sbh.num_hvps == len(global_inds)


def test_sparse_block_hessian_global_subset():
    fun, x, local_inds, global_inds = make_grouped(num_global=3)
    truth = autograd.hessian(fun)(x)
    subset = global_inds[:2]
    glob = SparseBlockHessian(fun, local_inds).get_global_hessian(
        x, global_inds=subset)
    expected = onp.zeros_like(truth)
    locals_ = local_inds.ravel()
    expected[onp.ix_(subset, subset)] = truth[onp.ix_(subset, subset)]
    expected[onp.ix_(subset, locals_)] = truth[onp.ix_(subset, locals_)]
    expected[onp.ix_(locals_, subset)] = truth[onp.ix_(locals_, subset)]
    onp.testing.assert_allclose(glob.toarray(), expected, atol=1e-12)


def test_arrowhead_blocks_layout():
    fun, x, local_inds, global_inds = make_grouped()
    truth = autograd.hessian(fun)(x)
    sbh = SparseBlockHessian(fun, local_inds)
    blocks = sbh.get_arrowhead_blocks(x)
    assert isinstance(blocks, ArrowheadBlocks)
    num_groups, block_size = local_inds.shape
    g = len(global_inds)
    assert blocks.global_block.shape == (g, g)
    assert blocks.cross_blocks.shape == (num_groups, g, block_size)
    assert blocks.local_blocks.shape == (num_groups, block_size, block_size)
    gi = onp.sort(global_inds)
    onp.testing.assert_array_equal(blocks.global_inds, gi)
    onp.testing.assert_allclose(blocks.global_block, truth[onp.ix_(gi, gi)],
                                atol=1e-12)
    for t in (0, num_groups - 1):
        block = local_inds[t]
        onp.testing.assert_allclose(blocks.cross_blocks[t],
                                    truth[onp.ix_(gi, block)], atol=1e-12)
        onp.testing.assert_allclose(blocks.local_blocks[t],
                                    truth[onp.ix_(block, block)], atol=1e-12)


def test_arrowhead_hessian_interop():
    pytest.importorskip("refold.sensitivity.arrowhead")
    fun, x, local_inds, _ = make_grouped()
    truth = autograd.hessian(fun)(x)
    sbh = SparseBlockHessian(fun, local_inds)
    hess, arrow = sbh.get_hessian(x, return_arrowhead=True)
    onp.testing.assert_allclose(arrow.to_sparse().toarray(), truth,
                                atol=1e-12)
    arrow2 = sbh.get_arrowhead_hessian(x)
    onp.testing.assert_allclose(arrow2.to_sparse().toarray(), hess.toarray(),
                                atol=1e-14)


def test_sparse_block_hessian_coupling_raises():
    fun, x, local_inds, _ = make_grouped()
    a, b = local_inds[0, 0], local_inds[1, 1]

    def coupled(x_):
        return fun(x_) + 0.1 * x_[a] * x_[b]

    sbh = SparseBlockHessian(coupled, local_inds)
    with pytest.raises(ValueError, match="couples coordinates.*sparsity_array"):
        sbh.get_hessian(x)
    with pytest.raises(ValueError, match="couples coordinates"):
        sbh.get_block_hessian(x)
    with pytest.raises(ValueError, match="couples coordinates"):
        sbh.get_arrowhead_blocks(x)
    wrong = sbh.get_hessian(x, verify=False)
    assert abs(wrong.toarray() - autograd.hessian(coupled)(x)).max() > 0.05


def test_sparse_block_hessian_bad_inputs():
    fun, x, local_inds, global_inds = make_grouped()
    with pytest.raises(TypeError, match="sparsity_array must be an array of "
                                        "integer"):
        SparseBlockHessian(fun, local_inds.astype(float))
    with pytest.raises(TypeError, match="sparsity_array must be an array of "
                                        "integer"):
        SparseBlockHessian(fun, local_inds > 3)
    with pytest.raises(ValueError, match="sparsity_array must be "
                                         "2-dimensional"):
        SparseBlockHessian(fun, local_inds.ravel())
    with pytest.raises(ValueError, match="sparsity_array must hold "
                                         "non-negative"):
        SparseBlockHessian(fun, local_inds - 5)
    dup = local_inds.copy()
    dup[1, 0] = dup[0, 0]
    with pytest.raises(ValueError, match="indices in sparsity_array must be "
                                         "unique"):
        SparseBlockHessian(fun, dup)
    with pytest.raises(ValueError, match="sparsity_array must hold at least"):
        SparseBlockHessian(fun, onp.zeros((0, 2), dtype=int))
    with pytest.raises(TypeError, match="objective_function must be "
                                        "callable"):
        SparseBlockHessian(None, local_inds)

    sbh = SparseBlockHessian(fun, local_inds)
    with pytest.raises(ValueError, match="sparsity_array holds index"):
        sbh.get_hessian(x[:5])
    with pytest.raises(ValueError, match="opt_par must be a vector"):
        sbh.get_hessian(onp.zeros((2, len(x))))
    bad = x.copy()
    bad[0] = onp.inf
    with pytest.raises(ValueError, match=r"opt_par must be finite; "
                                         r"opt_par\[0\]"):
        sbh.get_block_hessian(bad)
    with pytest.raises(ValueError, match="global_inds and sparsity_array "
                                         "must be disjoint"):
        sbh.get_global_hessian(x, global_inds=local_inds[0])
    with pytest.raises(ValueError, match="global_inds holds index"):
        sbh.get_global_hessian(x, global_inds=[len(x)])
    with pytest.raises(TypeError, match="print_every must be an int"):
        sbh.get_hessian(x, print_every=0.5)


def test_print_every(capsys):
    fun, x, local_inds, _ = make_grouped()
    SparseBlockHessian(fun, local_inds).get_hessian(x, print_every=1)
    out = capsys.readouterr().out
    assert "Local coordinate 0 of 3." in out
    assert "Global index 1 of 2." in out
    assert "Done differentiating." in out


def _import_vittles():
    onp.product = onp.prod
    np.product = np.prod
    return pytest.importorskip("vittles")


def test_matches_vittles():
    vittles = _import_vittles()
    fun, x, local_inds, _ = make_grouped(seed=5)
    ours = SparseBlockHessian(fun, local_inds)
    theirs = vittles.SparseBlockHessian(fun, local_inds)
    onp.testing.assert_allclose(ours.get_hessian(x).toarray(),
                                theirs.get_hessian(x).toarray(), atol=1e-12)
    onp.testing.assert_allclose(ours.get_block_hessian(x).toarray(),
                                theirs.get_block_hessian(x).toarray(),
                                atol=1e-12)
    onp.testing.assert_allclose(ours.get_global_hessian(x).toarray(),
                                theirs.get_global_hessian(x).toarray(),
                                atol=1e-12)


def test_inputs_not_mutated():
    fun, x, local_inds, global_inds = make_grouped()
    x_before, inds_before = x.copy(), local_inds.copy()
    mask = sp.csr_matrix(arrowhead_mask(local_inds, global_inds, len(x)))
    mask_before = mask.copy()
    sbh = SparseBlockHessian(fun, local_inds)
    sbh.get_hessian(x)
    sbh.get_arrowhead_blocks(x).local_inds[0, 0] = -1  # a copy
    sparse_hessian(fun, x, mask)
    onp.testing.assert_array_equal(x, x_before)
    onp.testing.assert_array_equal(local_inds, inds_before)
    assert (mask != mask_before).nnz == 0
    onp.testing.assert_allclose(sbh.get_hessian(x).toarray(),
                                autograd.hessian(fun)(x), atol=1e-12)
