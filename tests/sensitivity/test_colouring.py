"""Tests for refold.sensitivity.colouring: validity by brute force and exact
recovery of random matrices with the pattern."""
import numpy as onp
import pytest
import scipy.sparse as sp
from hypothesis import given, settings
from hypothesis import strategies as st

from refold.sensitivity.colouring import (HessianColouring,
                                          as_sparsity_pattern,
                                          colour_columns, colour_hessian,
                                          recover_hessian,
                                          verify_hessian_probe)


def random_symmetric_pattern(dim, density, seed, diagonal=True):
    rng = onp.random.default_rng(seed)
    mask = rng.uniform(size=(dim, dim)) < density
    mask = mask | mask.T
    if diagonal:
        mask[onp.diag_indices(dim)] = True
    return mask


def arrowhead_pattern(num_global, num_blocks, block_size):
    dim = num_global + num_blocks * block_size
    mask = onp.zeros((dim, dim), dtype=bool)
    mask[:num_global, :] = True
    mask[:, :num_global] = True
    for t in range(num_blocks):
        lo = num_global + t * block_size
        mask[lo:lo + block_size, lo:lo + block_size] = True
    return mask


def banded_pattern(dim, half_width):
    idx = onp.arange(dim)
    return onp.abs(idx[:, None] - idx[None, :]) <= half_width


def brute_force_orthogonal(mask, colours):
    """No row has nonzeros in two columns of one colour."""
    for colour in onp.unique(colours):
        cols = onp.flatnonzero(colours == colour)
        for i in range(mask.shape[0]):
            if mask[i, cols].sum() > 1:
                return False
    return True


def random_matrix_with_pattern(mask, seed):
    rng = onp.random.default_rng(seed)
    mat = rng.normal(size=mask.shape)
    mat = (mat + mat.T) * mask
    return mat


def recover_from_matrix(mask, mat, colouring):
    products = mat @ colouring.directions()
    return recover_hessian(colouring, products).toarray()


@settings(max_examples=60, deadline=None)
@given(dim=st.integers(1, 12), density=st.floats(0.0, 0.6),
       seed=st.integers(0, 10_000))
def test_distance2_colouring_is_structurally_orthogonal(dim, density, seed):
    mask = random_symmetric_pattern(dim, density, seed,
                                    diagonal=seed % 2 == 0)
    colours = colour_columns(sp.csr_matrix(mask))
    assert colours.shape == (dim,)
    assert colours.min() >= 0
    assert brute_force_orthogonal(mask, colours)


@settings(max_examples=60, deadline=None)
@given(dim=st.integers(1, 12), density=st.floats(0.0, 0.6),
       seed=st.integers(0, 10_000),
       method=st.sampled_from(["symmetric", "distance2"]))
def test_recovery_is_exact_on_random_patterns(dim, density, seed, method):
    mask = random_symmetric_pattern(dim, density, seed,
                                    diagonal=seed % 3 != 0)
    colouring = colour_hessian(mask, method=method)
    mat = random_matrix_with_pattern(mask, seed)
    onp.testing.assert_allclose(recover_from_matrix(mask, mat, colouring),
                                mat, rtol=0, atol=1e-13)


def test_non_square_column_colouring():
    mask = onp.array([[1, 1, 0, 0], [0, 0, 1, 1], [1, 0, 1, 0]], dtype=bool)
    colours = colour_columns(sp.csr_matrix(mask))
    assert brute_force_orthogonal(mask, colours)


@pytest.mark.parametrize("num_global,num_blocks,block_size",
                         [(3, 10, 2), (14, 40, 2), (2, 5, 4)])
def test_arrowhead_needs_globals_plus_block_size(num_global, num_blocks,
                                                 block_size):
    mask = arrowhead_pattern(num_global, num_blocks, block_size)
    colouring = colour_hessian(sp.csr_matrix(mask))
    assert colouring.num_colours == num_global + block_size
    assert len(colouring.dense_inds) == num_global
    mat = random_matrix_with_pattern(mask, 3)
    onp.testing.assert_allclose(recover_from_matrix(mask, mat, colouring),
                                mat, atol=1e-13)


def test_banded_and_block_diagonal_colour_counts():
    assert colour_hessian(banded_pattern(50, 2)).num_colours == 5
    block = sp.block_diag([onp.ones((3, 3))] * 20)
    colouring = colour_hessian(block)
    assert colouring.num_colours == 3
    assert len(colouring.dense_inds) == 0


def test_recovered_matrix_is_exactly_symmetric():
    mask = random_symmetric_pattern(15, 0.3, 4)
    colouring = colour_hessian(mask)
    rng = onp.random.default_rng(0)
    # A slightly non-symmetric "Hessian" (as rounding would make it).
    mat = random_matrix_with_pattern(mask, 4)
    mat = mat + 1e-14 * rng.normal(size=mat.shape) * mask
    rec = recover_hessian(colouring, mat @ colouring.directions())
    assert (rec != rec.T).nnz == 0


def test_user_colours_checked():
    mask = banded_pattern(6, 1)
    good = onp.arange(6) % 3
    colouring = colour_hessian(mask, colours=good)
    assert colouring.num_colours == 3
    with pytest.raises(ValueError, match="colouring does not separate"):
        colour_hessian(mask, colours=onp.arange(6) % 2)
    with pytest.raises(ValueError, match=r"colours must have shape \(6,\)"):
        colour_hessian(mask, colours=onp.arange(5))
    with pytest.raises(TypeError, match="colours must be an array of int"):
        colour_hessian(mask, colours=onp.zeros(6))
    with pytest.raises(ValueError, match="non-negative"):
        colour_hessian(mask, colours=good - 1)


def test_pattern_validation():
    with pytest.raises(ValueError, match="sparsity must be square"):
        as_sparsity_pattern(onp.ones((2, 3), dtype=bool))
    with pytest.raises(ValueError, match="sparsity must be a square 2-d"):
        as_sparsity_pattern(onp.ones(3, dtype=bool))
    upper = onp.triu(onp.ones((3, 3), dtype=bool))
    with pytest.raises(ValueError,
                       match=r"sparsity must be a symmetric.*\(0, 1\)"):
        as_sparsity_pattern(upper)
    with pytest.raises(ValueError, match="sparsity contains NaN"):
        as_sparsity_pattern(onp.array([[1.0, onp.nan], [onp.nan, 1.0]]))
    with pytest.raises(TypeError, match="sparsity must be a scipy.sparse"):
        as_sparsity_pattern(onp.array([["a", "b"], ["b", "a"]]))
    with pytest.raises(ValueError, match=r"shape \(4, 4\) to match x"):
        as_sparsity_pattern(onp.eye(3), dim=4)
    with pytest.raises(ValueError, match="method must be"):
        colour_hessian(onp.eye(3), method="star")


def test_pattern_ignores_stored_zeros_and_does_not_mutate():
    mat = sp.csr_matrix(onp.array([[1.0, 0.0], [0.0, 2.0]]))
    mat.data[0] = 0.0  # an explicitly stored zero
    before = mat.copy()
    pattern = as_sparsity_pattern(mat)
    assert pattern.nnz == 1
    assert (mat != before).nnz == 0 and mat.nnz == 2


def test_recover_hessian_checks_shape():
    colouring = colour_hessian(banded_pattern(5, 1))
    with pytest.raises(ValueError, match="products must have shape"):
        recover_hessian(colouring, onp.zeros((5, 1)))


def test_verify_probe():
    assert verify_hessian_probe(onp.ones(3), onp.ones(3), "x") == 0.0
    with pytest.raises(ValueError, match="couples coordinates.*coordinate 1"):
        verify_hessian_probe(onp.array([1.0, 2.0, 3.0]),
                             onp.array([1.0, 2.5, 3.0]), "the pattern")
    with pytest.raises(ValueError, match="couples"):
        verify_hessian_probe(onp.array([1.0, onp.nan]), onp.ones(2), "p")


def test_colouring_repr_and_type():
    colouring = colour_hessian(arrowhead_pattern(2, 3, 2))
    assert isinstance(colouring, HessianColouring)
    assert "num_colours=4" in repr(colouring)
