r"""Sparsity patterns of Hessians and Jacobians, detected from the code.

:func:`hessian_sparsity` and :func:`jacobian_sparsity` evaluate the function
once at ``x`` under a dependency trace of autograd's primitives (the approach
of Julia's SparseConnectivityTracer): every traced array knows, element by
element, which coordinates of ``x`` it can depend on, and every primitive that
is nonlinear in its inputs records which coordinates it couples.  The result
is a superset of the true pattern at ``x`` -- never a missing entry -- and is
tight on the structures researchers write: block-diagonal, arrowhead
(global/local), banded, and bilinear couplings over observed pairs.

The guarantee: the pattern holds every entry that can be nonzero at ``x``
(it may hold structural entries that vanish numerically).  How the rules read
primitives (``_sparsity_rules`` and ``_sparsity_einsum`` list them all):

* exact -- elementwise ufuncs with broadcasting (``multiply`` couples only
  across its operands, ``divide`` is nonlinear in its denominator only,
  ``add``/``negative`` couple nothing); indexing of every kind, reshape,
  transpose, concatenate, stack, split and tuple unpacking, ``where``,
  ``diag``, ``tril``, ``pad`` (all evaluated on integer labels); reductions
  over any ``axis`` with ``keepdims``; ``cumsum`` prefixes and ``diff``;
  ``dot``/``matmul``/``einsum``/``tensordot``/``inner``/``outer``/``kron``
  with broadcasting and diagonals, using a constant operand's zeros (a
  one-hot design ``Z @ u`` stays sparse); scipy.special's functions; linear
  algebra on stacked ``(..., n, n)`` arrays, matrix by matrix;
* tight on the structures researchers write -- block-diagonal, arrowhead
  (global/local), banded/tridiagonal, bilinear couplings over observed pairs,
  pattern folds of PSD and simplex arrays;
* conservative by design -- piecewise-linear selections (``maximum``,
  ``abs``, ``clip``, ``max``, ``sort``) depend on all of their candidates;
  within one matrix, linear algebra couples every entry with every other;
  an output of a contraction of several traced operands depends on all
  they contract over (their couplings use the constants' zeros); a
  constant more than half nonzero is taken as dense;
* any other primitive: every output depends on every traced input,
  nonlinearly, with one :class:`SparsityWarning` naming it (quietly for
  linear algebra, FFTs and multivariate densities); a rule that cannot read
  its arguments falls back to the same answer with a warning.  Register a
  rule for your own primitives with :func:`register_sparsity_rule`.

Python control flow is followed as it runs at ``x``: the pattern is the
pattern at ``x`` (a branch taken elsewhere may couple other coordinates).
:func:`refold.sensitivity.sparse_hessian` therefore verifies every Hessian
recovered from a detected pattern against a random probe, and a pattern the
objective contradicts is a ``ValueError`` naming the coordinate.
"""
from __future__ import annotations

from typing import Any, Callable

import numpy as np
import scipy.sparse as sp

from refold.sensitivity._checks import finite_array
from refold.sensitivity._sparsity_rules import RULE_KINDS, register_rule
from refold.sensitivity._sparsity_trace import SparsityWarning, run_trace

__all__ = ["hessian_sparsity", "jacobian_sparsity", "register_sparsity_rule",
           "SparsityWarning"]


def _check_fun(fun: Any) -> None:
    if not callable(fun):
        raise TypeError(f"fun must be callable; got {type(fun).__name__}.")


def hessian_sparsity(fun: Callable, x: Any, *args: Any) -> sp.csr_matrix:
    r"""Pattern of the Hessian of a scalar function, from one traced call.

    Parameters
    ----------
    fun : callable
        ``fun(x, *args)``, a scalar written with ``autograd.numpy``.
    x : array_like
        The point (any shape; the pattern is over ``x.ravel()``).
    *args
        Further arguments of ``fun`` (constants).

    Returns
    -------
    scipy.sparse.csr_matrix of bool, shape (D, D)
        Symmetric; ``True`` wherever
        :math:`\partial^2 f / \partial x_i \partial x_j` can be nonzero at
        ``x`` (a superset of the nonzeros).

    Raises
    ------
    TypeError, ValueError
        ``fun`` not callable, ``x`` not a finite real array, or ``fun`` not
        returning a scalar.

    Warns
    -----
    SparsityWarning
        Once per primitive that has no rule (conservatively treated).

    Examples
    --------
    >>> import autograd.numpy as np
    >>> f = lambda x: np.sum(x[1:] * x[:-1]) + np.sum(np.exp(x))
    >>> hessian_sparsity(f, np.zeros(4)).toarray().astype(int)
    array([[1, 1, 0, 0],
           [1, 1, 1, 0],
           [0, 1, 1, 1],
           [0, 0, 1, 1]])
    """
    _check_fun(fun)
    x = finite_array(x, "x", non_empty=True)
    dep, value, ctx = run_trace(fun, x, args, want_hessian=True)
    if np.size(value) != 1:
        raise ValueError(f"fun must return a scalar for a Hessian; it "
                         f"returned shape {np.shape(value)}.")
    return ctx.hessian().astype(bool)


def jacobian_sparsity(fun: Callable, x: Any, *args: Any) -> sp.csr_matrix:
    r"""Pattern of the Jacobian of a vector function, from one traced call.

    Parameters
    ----------
    fun : callable
        ``fun(x, *args)``, written with ``autograd.numpy``; its output (any
        shape) is flattened to ``K`` entries.
    x : array_like
        The point (any shape; the pattern is over ``x.ravel()``).
    *args
        Further arguments of ``fun``.

    Returns
    -------
    scipy.sparse.csr_matrix of bool, shape (K, D)
        ``True`` wherever :math:`\partial f_k / \partial x_j` can be nonzero
        at ``x``.

    Examples
    --------
    >>> import autograd.numpy as np
    >>> f = lambda x: np.cumsum(x[::-1])[:2] ** 2
    >>> jacobian_sparsity(f, np.ones(3)).toarray().astype(int)
    array([[0, 0, 1],
           [0, 1, 1]])
    """
    _check_fun(fun)
    x = finite_array(x, "x", non_empty=True)
    dep, value, ctx = run_trace(fun, x, args, want_hessian=False)
    size = int(np.size(value))
    if dep is None:
        return sp.csr_matrix((size, x.size), dtype=bool)
    if isinstance(dep, (list, tuple)):
        raise ValueError("fun must return one array; it returned a "
                         f"{type(value).__name__}.")
    return dep.element_rows().astype(bool).tocsr()


def register_sparsity_rule(primitive: Callable, kind: str, *,
                           matrix: Any = None) -> None:
    r"""Tell :func:`hessian_sparsity` how your own autograd primitive acts.

    Parameters
    ----------
    primitive : callable
        A function made with ``autograd.extend.primitive``.
    kind : str
        * ``'elementwise'`` -- elementwise and nonlinear, with numpy
          broadcasting over its traced arguments;
        * ``'elementwise_linear'`` -- elementwise and linear (or piecewise
          linear);
        * ``'zero'`` -- zero derivative (the output is treated as constant);
        * ``'selection'`` -- every output element is one element of the traced
          argument(s) or zero (a gather, a reshape, a triangular packing): the
          primitive is called on integer labels to find which, so it must
          only move elements (never scale or combine them);
        * ``'linear'`` / ``'nonlinear'`` -- every output depends on every
          traced input (the default for unknown primitives, without the
          warning);
        * ``'linear_map'`` -- ``out = matrix @ in`` along the first axis of
          ``in`` (``matrix`` a dense or scipy.sparse matrix whose zeros are
          structural).
    matrix : array_like or scipy.sparse matrix, optional
        Only for ``'linear_map'``.

    Examples
    --------
    >>> import numpy as onp
    >>> from autograd.extend import primitive
    >>> @primitive
    ... def double_first(v):
    ...     return onp.array([2 * v[0]])
    >>> register_sparsity_rule(double_first, 'linear_map',
    ...                        matrix=onp.array([[2.0, 0.0]]))
    """
    if not callable(primitive) or not getattr(primitive, "fun", None):
        raise TypeError("primitive must be an autograd primitive (made with "
                        "autograd.extend.primitive); got "
                        f"{type(primitive).__name__}.")
    if kind not in RULE_KINDS:
        raise ValueError(f"kind must be one of {list(RULE_KINDS)}; got "
                         f"{kind!r}.")
    if (kind == "linear_map") != (matrix is not None):
        raise ValueError("matrix is needed with kind='linear_map' and only "
                         "then.")
    if matrix is not None:
        if not sp.issparse(matrix):
            matrix = np.asarray(matrix)
            if matrix.ndim != 2 or not np.issubdtype(matrix.dtype,
                                                     np.number):
                raise ValueError(f"matrix must be a 2-d numeric array; got "
                                 f"shape {matrix.shape}.")
    register_rule(primitive, kind, matrix)
