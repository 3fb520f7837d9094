"""Shared checks of the sparsity-detection tests."""
import warnings

import autograd
import numpy as onp
import scipy.sparse as sp

from refold.sensitivity.sparsity import SparsityWarning, hessian_sparsity

RNG_SEEDS = (0, 1, 2)


def nonzero_pattern(matrix):
    """Entries of a dense autograd matrix that are (numerically) nonzero."""
    matrix = onp.asarray(matrix)
    assert onp.all(onp.isfinite(matrix))
    return onp.abs(matrix) > 1e-12 * max(1.0, onp.abs(matrix).max())


def check_hessian(fun, dim, args=(), points=None, scale=1.0, tight=None):
    """Detected ⊇ truth at every point; returns the largest nnz ratio."""
    points = points if points is not None else [
        scale * onp.random.default_rng(seed).standard_normal(dim)
        for seed in RNG_SEEDS]
    worst = 0.0
    for x in points:
        with warnings.catch_warnings():
            warnings.simplefilter("error", SparsityWarning)
            pattern = hessian_sparsity(fun, x, *args)
        assert sp.issparse(pattern) and pattern.shape == (dim, dim)
        assert pattern.dtype == bool
        detected = pattern.toarray()
        assert (detected == detected.T).all()
        exact = nonzero_pattern(autograd.hessian(lambda z: fun(z, *args))(x))
        missing = onp.argwhere(exact & ~detected)
        assert len(missing) == 0, f"missing entries {missing[:5].tolist()}"
        worst = max(worst, detected.sum() / max(exact.sum(), 1))
    if tight is not None:
        assert worst <= tight, f"nnz ratio {worst:.2f} > {tight}"
    return worst
