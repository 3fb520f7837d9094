r"""Preconditioners as functions: eigenspace transforms and sparse square
roots.

Two helpers of paragami 0.42 (``optimization_lib.transform_eigenspace`` and
``sparse_preconditioners_lib.get_sym_matrix_inv_sqrt_funcs``), for code that
builds its own preconditioner and passes the products to
:meth:`~refold.patterns.preconditioning.PreconditionedFunction.set_preconditioner_functions`.
:meth:`~refold.patterns.preconditioning.PreconditionedFunction.set_preconditioner_with_hessian`
does the same in one call.

* :func:`transform_eigenspace` returns :math:`v \mapsto v + V(\phi(\lambda)
  - 1) \odot V^\top v`: the identity orthogonal to the columns of ``V`` and
  eigenvalues :math:`\phi(\lambda)` on their span (``V`` orthonormal).
* :func:`get_sym_matrix_inv_sqrt_funcs` factorises a sparse symmetric
  positive-definite Hessian as :math:`H = S S^\top` (a sparse Cholesky
  factor, computed with scipy's SuperLU in symmetric mode: scikit-sparse,
  which paragami required, is not needed) and returns :math:`v \mapsto
  S^\top v` and :math:`v \mapsto S^{-\top} v`, differentiable by autograd in
  forward and reverse mode to any order. With :math:`A = S^{-\top}`,
  :math:`A^\top H A = I`.
"""
from __future__ import annotations

from typing import Callable, Tuple

import autograd.numpy as anp
import numpy as onp
import scipy.sparse as osp

from refold.patterns.preconditioning import _apply_linear, _sparse_sqrt_ops

__all__ = ["transform_eigenspace", "get_sym_matrix_inv_sqrt_funcs"]


def transform_eigenspace(eigvecs, eigvals, transform_function: Callable
                         ) -> Callable:
    r"""A linear map with transformed eigenvalues on a subspace.

    Parameters
    ----------
    eigvecs : numpy.ndarray, shape (N, K)
        Orthonormal eigenvectors (columns).
    eigvals : numpy.ndarray, shape (K,)
        Their eigenvalues.
    transform_function : callable
        Maps ``eigvals`` to the new eigenvalues: an array of length ``K``,
        or a scalar, which every eigenvalue in the span takes (as with
        paragami, whose arithmetic broadcast it).

    Returns
    -------
    a_mult : callable
        ``a_mult(v)``, for ``v`` of length ``N`` (or an ``(N, k)`` matrix,
        column by column): the identity on the
        orthogonal complement of ``eigvecs`` and
        ``transform_function(eigvals)`` on its span. Differentiable by
        autograd in ``v``.

    Raises
    ------
    ValueError
        If the shapes disagree, or ``transform_function`` does not return
        ``K`` finite values (or one finite scalar).

    Examples
    --------
    >>> import numpy as np
    >>> a_mult = transform_eigenspace(np.eye(3)[:, :1], np.array([4.0]),
    ...                               np.sqrt)
    >>> a_mult(np.ones(3))
    array([2., 1., 1.])
    """
    eigvecs = onp.asarray(eigvecs, dtype=float)
    eigvals = onp.asarray(eigvals, dtype=float)
    if eigvecs.ndim != 2:
        raise ValueError("eigvecs: expected a 2-d array (eigenvectors as "
                         "columns), got shape {}".format(eigvecs.shape))
    if eigvals.ndim != 1:
        raise ValueError("eigvals: expected a 1-d array, got shape "
                         "{}".format(eigvals.shape))
    if eigvecs.shape[1] != eigvals.size:
        raise ValueError(
            "eigvecs, eigvals: expected one eigenvalue per column of eigvecs "
            "({} columns), got {} eigenvalues".format(eigvecs.shape[1],
                                                      eigvals.size))
    if not callable(transform_function):
        raise TypeError("transform_function: expected a callable, got "
                        "{}".format(type(transform_function).__name__))
    new = onp.asarray(transform_function(eigvals), dtype=float)
    if new.ndim == 0:
        new = onp.full(eigvals.shape, float(new))
    if new.shape != eigvals.shape or not onp.all(onp.isfinite(new)):
        raise ValueError(
            "transform_function: expected {} finite values, got {}".format(
                eigvals.size, new if new.size < 10 else
                "shape {}".format(new.shape)))
    scale = new - 1.0
    vecs_t = eigvecs.T

    def a_mult(vec):
        loadings = anp.dot(vecs_t, vec)
        factor = scale if anp.ndim(loadings) < 2 else scale[:, None]
        return vec + anp.dot(eigvecs, factor * loadings)

    return a_mult


def get_sym_matrix_inv_sqrt_funcs(hessian) -> Tuple[Callable, Callable]:
    r"""Square-root preconditioner products from a sparse Hessian.

    Parameters
    ----------
    hessian : scipy.sparse matrix, shape (D, D)
        Symmetric positive definite.

    Returns
    -------
    mult_hess_sqrt, mult_hess_inv_sqrt : callable
        :math:`v \mapsto S^\top v` and :math:`v \mapsto S^{-\top} v` for a
        sparse Cholesky factor :math:`H = S S^\top`. Pass them to
        ``PreconditionedFunction.set_preconditioner_functions(
        mult_hess_inv_sqrt, mult_hess_sqrt)``.

    Raises
    ------
    ValueError
        If ``hessian`` is not sparse, not square, or not positive definite.

    Examples
    --------
    >>> import numpy as np, scipy.sparse as sp
    >>> h = sp.csr_matrix(np.array([[4.0, 1.0], [1.0, 3.0]]))
    >>> sqrt, inv_sqrt = get_sym_matrix_inv_sqrt_funcs(h)
    >>> v = np.array([1.0, -2.0])
    >>> np.allclose(sqrt(inv_sqrt(v)), v)
    True
    """
    if not osp.issparse(hessian):
        raise ValueError("hessian: expected a scipy.sparse matrix, got "
                         "{}; for a dense Hessian use "
                         "PreconditionedFunction.set_preconditioner_with_"
                         "hessian".format(type(hessian).__name__))
    if hessian.ndim != 2 or hessian.shape[0] != hessian.shape[1]:
        raise ValueError("hessian: expected a square matrix, got shape "
                         "{}".format(hessian.shape))
    hessian = osp.csc_matrix(hessian, dtype=float)
    asym = abs(hessian - hessian.T).max() if hessian.nnz else 0.0
    if asym > 1e-8 * max(1.0, abs(hessian).max()):
        raise ValueError("hessian: expected a symmetric matrix; the largest "
                         "|H - H^T| entry is {:.3g}".format(asym))
    inv_sqrt_op, sqrt_op = _sparse_sqrt_ops(hessian, "hessian")

    def mult_hess_sqrt(vec):
        return _apply_linear(vec, sqrt_op)

    def mult_hess_inv_sqrt(vec):
        return _apply_linear(vec, inv_sqrt_op)

    return mult_hess_sqrt, mult_hess_inv_sqrt
