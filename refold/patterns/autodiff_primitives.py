r"""Small differentiable building blocks for models: sums by group, copies
with replaced entries, sparse products and black-box linear solves.

These are the public helpers of paragami 0.42's ``autograd_supplement_lib``
(also importable from :mod:`refold.compat.paragami.autograd_supplement_lib`),
written here as autograd primitives with reverse- and forward-mode rules that
are themselves differentiable, so derivatives of any order and any mix of
modes compose (forward over reverse Hessian-vector products, Taylor series).

=================================  ==========================================
function                           derivative rules
=================================  ==========================================
:func:`grouped_sum`                jvp: ``grouped_sum(v, groups)``; vjp:
                                   ``g[groups]`` (one vectorised
                                   ``numpy.add.at``, no loop over
                                   observations)
:func:`replace`                    jvp/vjp: the tangent of ``x_sub`` goes to
                                   ``inds``, that of ``x`` everywhere else
:func:`get_sparse_product`         ``Z b`` and ``Z^T b``: each is the other's
                                   vjp and its own jvp
:func:`get_differentiable_solver`  ``Z^{-1} b`` and ``Z^{-T} b``: likewise
=================================  ==========================================
"""
from __future__ import annotations

from typing import Any, Callable, Optional, Tuple

import autograd.numpy as anp
import numpy as onp
import scipy.sparse as osp
from autograd.extend import defjvp, defvjp, primitive
from autograd.tracer import getval

__all__ = ["grouped_sum", "replace", "get_sparse_product",
           "get_differentiable_solver"]


# ----------------------------------------------------------------------
# Sums by group.

def _check_groups(groups: Any, n_obs: int, num_groups: Optional[int]):
    groups = onp.atleast_1d(onp.asarray(getval(groups)))
    if groups.ndim != 1:
        raise ValueError("groups: expected a 1-d vector of group indices, "
                         "got shape {}".format(groups.shape))
    if groups.size and not onp.issubdtype(groups.dtype, onp.integer):
        as_int = onp.asarray(groups, dtype=float).astype(onp.int64) \
            if onp.issubdtype(groups.dtype, onp.number) else None
        if as_int is None or not onp.array_equal(as_int, groups):
            raise ValueError("groups: expected integer group indices, got "
                             "dtype {}".format(groups.dtype))
        groups = as_int
    groups = groups.astype(onp.int64)
    if groups.size != n_obs:
        raise ValueError("groups: expected one group per row of x ({} rows), "
                         "got {} groups".format(n_obs, groups.size))
    if groups.size and groups.min() < 0:
        raise ValueError("groups: expected non-negative (zero-based) group "
                         "indices, got {}".format(int(groups.min())))
    largest = int(groups.max()) if groups.size else -1
    if num_groups is None:
        num_groups = largest + 1
    else:
        if isinstance(num_groups, bool) or not isinstance(
                num_groups, (int, onp.integer)) or num_groups < 0:
            raise ValueError("num_groups: expected a non-negative integer, "
                             "got {!r}".format(num_groups))
        num_groups = int(num_groups)
        if largest >= num_groups:
            raise ValueError(
                "groups: the largest group index is {} but num_groups is {} "
                "(indices are zero-based)".format(largest, num_groups))
    return groups, num_groups


@primitive
def grouped_sum(x, groups, num_groups: Optional[int] = None):
    r"""Sum the rows of ``x`` by group: ``out[g] = sum(x[groups == g])``.

    Parameters
    ----------
    x : array_like, shape (N, ...)
        The values; a scalar or 1-d array counts as ``N`` scalars.
    groups : array_like of int, shape (N,)
        Zero-based group of each row of ``x``.
    num_groups : int, optional
        The number of groups (rows of the result); default
        ``max(groups) + 1``. Groups with no rows sum to zero.

    Returns
    -------
    numpy.ndarray, shape (num_groups, ...)

    Raises
    ------
    ValueError
        If ``groups`` is not a vector of non-negative integers of length
        ``N``, or has an index ``>= num_groups``.

    Examples
    --------
    >>> import numpy as np
    >>> grouped_sum(np.array([1.0, 2.0, 3.0]), [0, 1, 0])
    array([4., 2.])
    """
    x = onp.atleast_1d(onp.asarray(x, dtype=float))
    groups, num_groups = _check_groups(groups, x.shape[0], num_groups)
    out = onp.zeros((num_groups,) + x.shape[1:])
    onp.add.at(out, groups, x)
    return out


def _grouped_sum_vjp(ans, x, groups, num_groups=None):
    rows = onp.atleast_1d(onp.asarray(getval(x))).shape[0]
    index, _ = _check_groups(groups, rows, None)
    shape = anp.shape(x)
    return lambda g: anp.reshape(g[index], shape)


# autograd's primitive() keeps the name and docstring but not the module.
grouped_sum.__module__ = __name__
defvjp(grouped_sum, _grouped_sum_vjp, None)
defjvp(grouped_sum,
       lambda g, ans, x, groups, num_groups=None: grouped_sum(
           g, groups, num_groups=anp.shape(ans)[0]),
       None)


# ----------------------------------------------------------------------
# Replacing entries.

def _check_inds(x, inds):
    try:
        probe = onp.arange(onp.size(x)).reshape(onp.shape(x))[inds]
    except (IndexError, TypeError, ValueError) as err:
        raise ValueError("inds: cannot index x (shape {}) with {!r}: "
                         "{}".format(onp.shape(x), inds, err)) from None
    if onp.unique(probe).size != onp.size(probe):
        raise ValueError("inds: expected each entry of x at most once; the "
                         "index selects some entries twice, so which value "
                         "lands there (and its derivative) is ambiguous")


def _sum_to_shape(g, shape):
    shape = tuple(shape)
    while anp.ndim(g) > len(shape):
        g = anp.sum(g, axis=0)
    for axis, size in enumerate(shape):
        if size == 1 and anp.shape(g)[axis] != 1:
            g = anp.sum(g, axis=axis, keepdims=True)
    return g


@primitive
def replace(x_sub, x, inds):
    r"""A copy of ``x`` with ``x[inds]`` set to ``x_sub``, differentiable in
    both ``x_sub`` and ``x``.

    Parameters
    ----------
    x_sub : array_like
        The new values; broadcast to ``x[inds]``.
    x : array_like
        The values to copy.
    inds : index
        Any numpy index selecting each entry at most once (integers, slices,
        integer arrays, a boolean mask).

    Returns
    -------
    numpy.ndarray
        A float array of the shape of ``x``; ``x`` itself is not modified.

    Raises
    ------
    ValueError
        If ``inds`` does not index ``x`` or selects an entry twice.

    Examples
    --------
    >>> import numpy as np
    >>> replace(np.array([7.0, 8.0]), np.zeros(4), [1, 3])
    array([0., 7., 0., 8.])
    """
    _check_inds(x, inds)
    out = onp.array(x, dtype=float)
    out[inds] = x_sub
    return out


replace.__module__ = __name__


def _zero_at(g, inds):
    return replace(0.0, g, inds)


defvjp(replace,
       lambda ans, x_sub, x, inds: lambda g: _sum_to_shape(
           anp.broadcast_to(g[inds], anp.shape(ans[inds])),
           anp.shape(x_sub)),
       lambda ans, x_sub, x, inds: lambda g: _zero_at(g, inds),
       None)
defjvp(replace,
       lambda g, ans, x_sub, x, inds: replace(g, anp.zeros(anp.shape(ans)),
                                              inds),
       lambda g, ans, x_sub, x, inds: _zero_at(g, inds),
       None)


# ----------------------------------------------------------------------
# Sparse products and black-box solves.

def _as_vector_or_matrix(b, what: str):
    b = onp.atleast_1d(onp.asarray(b, dtype=float))
    if b.ndim > 2:
        raise ValueError("{}: expected a vector or a matrix, got shape "
                         "{}".format(what, b.shape))
    return b


def _linear_pair(apply: Callable, apply_t: Callable) -> Tuple[Callable,
                                                              Callable]:
    """Two primitives for a linear map and its transpose, each the other's
    vjp and its own jvp (so every derivative is again one of the two)."""
    @primitive
    def forward(b):
        return apply(_as_vector_or_matrix(b, "b"))

    @primitive
    def transpose(b):
        return apply_t(_as_vector_or_matrix(b, "b"))

    defvjp(forward, lambda ans, b: lambda g: anp.reshape(
        transpose(g), anp.shape(b)))
    defjvp(forward, lambda g, ans, b: forward(g))
    defvjp(transpose, lambda ans, b: lambda g: anp.reshape(
        forward(g), anp.shape(b)))
    defjvp(transpose, lambda g, ans, b: transpose(g))
    return forward, transpose


def get_sparse_product(z_mat) -> Tuple[Callable, Callable]:
    r"""Differentiable products with a (sparse) matrix and its transpose.

    Parameters
    ----------
    z_mat : scipy.sparse matrix or numpy.ndarray, 2-d

    Returns
    -------
    z_mult, zt_mult : callable
        ``z_mult(b) = z_mat @ b`` and ``zt_mult(b) = z_mat.T @ b`` for a
        vector or matrix ``b``, differentiable by autograd in forward and
        reverse mode to any order (autograd cannot trace a scipy.sparse
        product itself).

    Raises
    ------
    ValueError
        If ``z_mat`` is not 2-d.

    Examples
    --------
    >>> import numpy as np, scipy.sparse as sp
    >>> z_mult, zt_mult = get_sparse_product(sp.csr_matrix([[1.0, 2.0]]))
    >>> zt_mult(np.array([3.0]))
    array([3., 6.])
    """
    if onp.ndim(z_mat) != 2 and not osp.issparse(z_mat):
        raise ValueError("z_mat: expected a 2-d matrix, got shape "
                         "{}".format(onp.shape(z_mat)))
    if osp.issparse(z_mat):
        z_mat = osp.csr_matrix(z_mat)
        z_t = z_mat.T.tocsr()
    else:
        z_mat = onp.asarray(z_mat, dtype=float)
        z_t = z_mat.T

    def dense(v):
        return onp.asarray(v.toarray() if osp.issparse(v) else v)

    return _linear_pair(lambda b: dense(z_mat @ b), lambda b: dense(z_t @ b))


def get_differentiable_solver(z_solve: Callable, zt_solve: Callable
                              ) -> Tuple[Callable, Callable]:
    r"""Make a black-box solver differentiable.

    Parameters
    ----------
    z_solve, zt_solve : callable
        ``z_solve(b)`` returns :math:`Z^{-1} b` and ``zt_solve(b)`` returns
        :math:`Z^{-\top} b` for a fixed matrix :math:`Z` (e.g. from
        ``scipy.sparse.linalg.factorized``).

    Returns
    -------
    z_solve_ad, zt_solve_ad : callable
        The same solves, differentiable by autograd in ``b`` (forward and
        reverse mode, any order): :math:`b \mapsto Z^{-1}b` is linear, so its
        jvp is itself and its vjp is the transposed solve.

    Raises
    ------
    TypeError
        If either argument is not callable.
    """
    for name, fun in (("z_solve", z_solve), ("zt_solve", zt_solve)):
        if not callable(fun):
            raise TypeError("{}: expected a callable solve, got {}".format(
                name, type(fun).__name__))
    return _linear_pair(lambda b: onp.asarray(z_solve(b)),
                        lambda b: onp.asarray(zt_solve(b)))
