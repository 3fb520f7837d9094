r"""Hessian-vector products of scalar autograd objectives.

For a twice-differentiable scalar objective :math:`f(x, \ldots)` this module builds

* :func:`get_hvp` -- one product :math:`H v = \nabla^2_x f(x)\, v` by
  forward-over-reverse differentiation (``autograd.make_jvp`` applied to
  ``autograd.grad``).  One call costs a small constant times one gradient.
* :func:`get_batch_hvp` -- the products :math:`H V` for a matrix of directions
  ``V`` of shape ``(D, k)``.  The gradient is traced **once** (with
  ``autograd.make_vjp`` of ``autograd.grad``) and the recorded graph is swept
  backwards once per column, so the forward evaluation of the objective and its
  gradient is shared by all ``k`` columns.  This uses the symmetry of the
  Hessian (:math:`v^\top H = (H v)^\top`).  autograd's forward mode cannot
  share a trace across tangents, which is why the batched product is
  reverse-over-reverse.  The recorded graph is compiled before its first
  sweep (:mod:`refold.sensitivity._graph_sweep`): elementwise derivatives
  are computed once and elementwise chains fold into single
  multiplications, so on the Criteo-shaped GLMM objective a sweep costs
  about a fifth of autograd's own sweep of the same graph
  (``benchmarks/default_paths_bench.py``).
* :func:`make_hvp_at` -- the traced operator ``v -> H v`` itself, for callers
  (colouring, matrix-free solvers) that produce directions one at a time.
* :func:`dense_hessian` -- the whole Hessian, as the reverse-mode Jacobian of
  the gradient (``autograd.jacobian(autograd.grad(f))``, which is faster than
  ``autograd.hessian``, the Jacobian of a Jacobian).  Every dense Hessian of
  the sensitivity layer is formed by it.

The loop over the ``k`` columns is a Python loop, which is fine: callers use
``k`` equal to the number of colours of a sparsity pattern (a handful), never the
dimension.

The builders follow autograd's ``argnum`` convention: the differentiated
argument ``x`` is the ``argnum``-th positional argument of ``fun``; the other
positional arguments are passed, in order, after the direction.
"""
import warnings
from typing import Any, Callable

import autograd
import numpy as onp

from refold.sensitivity._checks import check_int, finite_array

__all__ = ["get_hvp", "get_batch_hvp", "make_hvp_at", "dense_hessian"]


_INDEPENDENT = "Output seems independent of input"


def _call_with(fun: Callable, argnum: int, x: Any, args: tuple) -> Any:
    """Call ``fun`` with ``x`` inserted at position ``argnum`` of ``args``."""
    return fun(*args[:argnum], x, *args[argnum:])


def _check_fun_argnum(fun: Any, argnum: Any) -> int:
    """Check an objective and the position of its differentiated argument."""
    argnum = check_int(argnum, "argnum", minimum=0)
    if not callable(fun):
        raise TypeError(f"fun must be callable; got {type(fun).__name__}.")
    return argnum


def _as_finite_float_array(value: Any, name: str) -> onp.ndarray:
    """The shared point check; a floating dtype (float32) is kept."""
    return finite_array(value, name, keep_float_dtype=True)


def _check_args_length(args: tuple, argnum: int) -> None:
    if argnum > len(args):
        raise ValueError(
            f"argnum={argnum} but only {len(args)} further positional "
            f"argument(s) were given, so x cannot be argument {argnum} "
            f"of the objective.")


def get_hvp(fun: Callable, argnum: int = 0) -> Callable:
    r"""Build a Hessian-vector product of a scalar objective.

    Parameters
    ----------
    fun : callable
        Scalar objective, differentiable by autograd in forward and reverse
        mode, called as ``fun(*args[:argnum], x, *args[argnum:])``.
    argnum : int, optional
        Position of the differentiated argument ``x`` in ``fun``'s positional
        arguments.  Default 0.

    Returns
    -------
    hvp : callable
        ``hvp(x, v, *args)`` returns :math:`\nabla^2_x f(x)\, v` as an array
        of the shape of ``x``.  ``v`` must have the shape of ``x``.  Computed
        forward-over-reverse: the directional derivative (``make_jvp``) of the
        gradient (``grad``) at ``x`` in direction ``v``.

    Raises
    ------
    TypeError
        When ``argnum`` is not an int, or ``x``/``v`` are not real numeric.
    ValueError
        (from ``hvp``) when ``v`` has a different shape from ``x`` or either
        contains NaN/inf.

    Examples
    --------
    >>> import autograd.numpy as np
    >>> hvp = get_hvp(lambda x, a: a * np.sum(x ** 3))
    >>> hvp(np.array([1.0, 2.0]), np.array([1.0, 0.0]), 2.0)
    array([12.,  0.])
    """
    argnum = _check_fun_argnum(fun, argnum)

    def hvp(x: Any, v: Any, *args: Any) -> onp.ndarray:
        _check_args_length(args, argnum)
        x = _as_finite_float_array(x, "x")
        v = _as_finite_float_array(v, "v")
        if v.shape != x.shape:
            raise ValueError(f"v must have the shape of x, {x.shape}; "
                             f"got {v.shape}.")

        grad_at = autograd.grad(lambda y: _call_with(fun, argnum, y, args))
        # A gradient that does not depend on x is a zero Hessian.
        return onp.asarray(directional_derivative(grad_at, 0, v)(x))

    return hvp


def make_hvp_at(fun: Callable, x: Any, *args: Any,
                argnum: int = 0) -> Callable:
    r"""Trace the gradient once at ``x`` and return ``v -> H v``.

    Parameters
    ----------
    fun : callable
        Scalar objective, twice differentiable by autograd in reverse mode,
        called as ``fun(*args[:argnum], x, *args[argnum:])``.
    x : array_like, shape (D,)
        Point at which the Hessian is taken (finite).
    *args
        The other positional arguments of ``fun``.
    argnum : int, optional
        Position of ``x`` in ``fun``'s positional arguments.  Default 0.

    Returns
    -------
    hvp_at : callable
        ``hvp_at(v)`` with ``v`` of shape ``(D,)`` returns :math:`H v`.  The
        gradient's computation graph is recorded once (the graph
        ``autograd.make_vjp`` of ``autograd.grad`` records) and each call is
        one backward sweep of it, using the symmetry of :math:`H`.  The
        sweep's coefficients that do not depend on ``v`` (the derivatives of
        elementwise primitives) are computed once, at the first call.  The
        graph is held in memory for as long as ``hvp_at`` is alive.

    Raises
    ------
    ValueError
        When ``x`` is not a finite 1-d array or ``v`` has the wrong shape.
    """
    argnum = _check_fun_argnum(fun, argnum)
    _check_args_length(args, argnum)
    x = _as_finite_float_array(x, "x")
    if x.ndim != 1:
        raise ValueError(f"x must be one-dimensional; got shape {x.shape}.")
    # The sweep machinery loads on first use (``import refold`` stays light).
    from refold.sensitivity._base_point import active_record
    from refold.sensitivity._graph_sweep import RecordedGraph
    dim = x.shape[0]
    record = active_record(fun, x, args, argnum)
    if record is not None:
        # The caller recorded this objective at this point already.
        sweep = record.hvp
    else:
        grad_fun = autograd.grad(lambda y: _call_with(fun, argnum, y, args))
        # A gradient that does not depend on x is a zero Hessian.
        sweep = RecordedGraph(grad_fun, x).vjp

    def hvp_at(v: Any) -> onp.ndarray:
        v = _as_finite_float_array(v, "v")
        if v.shape != (dim,):
            raise ValueError(f"v must have shape ({dim},); got {v.shape}.")
        return onp.asarray(sweep(v), dtype=float)

    return hvp_at


def get_batch_hvp(fun: Callable, argnum: int = 0) -> Callable:
    r"""Build a batched Hessian-vector product :math:`H V`.

    Parameters
    ----------
    fun : callable
        Scalar objective of a one-dimensional ``x``, differentiable twice by
        autograd in reverse mode, called as
        ``fun(*args[:argnum], x, *args[argnum:])``.
    argnum : int, optional
        Position of ``x`` in ``fun``'s positional arguments.  Default 0.

    Returns
    -------
    batch_hvp : callable
        ``batch_hvp(x, V, *args)`` with ``x`` of shape ``(D,)`` and ``V`` of
        shape ``(D, k)`` returns ``H @ V`` of shape ``(D, k)``.  The gradient
        ``g(x)`` is traced once with ``autograd.make_vjp``; each column is one
        backward sweep of that trace, :math:`V_{:,j}^\top \partial g / \partial x
        = (H V_{:,j})^\top` by symmetry of :math:`H`.  ``k = 0`` returns an
        empty ``(D, 0)`` array without evaluating ``fun``.

    Raises
    ------
    TypeError
        When ``argnum`` is not an int, or inputs are not real numeric.
    ValueError
        (from ``batch_hvp``) when ``x`` is not 1-d, ``V`` is not ``(D, k)``, or
        either contains NaN/inf.
    """
    argnum = _check_fun_argnum(fun, argnum)

    def batch_hvp(x: Any, V: Any, *args: Any) -> onp.ndarray:
        _check_args_length(args, argnum)
        x = _as_finite_float_array(x, "x")
        if x.ndim != 1:
            raise ValueError(f"x must be one-dimensional for a batched "
                             f"Hessian-vector product; got shape {x.shape}.")
        V = _as_finite_float_array(V, "V")
        if V.ndim != 2 or V.shape[0] != x.shape[0]:
            raise ValueError(f"V must have shape (D, k) with D = len(x) = "
                             f"{x.shape[0]}; got shape {V.shape}.")
        k = V.shape[1]
        dtype = onp.result_type(x.dtype, V.dtype)
        out = onp.empty((x.shape[0], k), dtype=dtype)
        if k == 0:
            return out
        hvp_at = make_hvp_at(fun, x, *args, argnum=argnum)
        for j in range(k):
            out[:, j] = hvp_at(onp.ascontiguousarray(V[:, j]))
        return out

    return batch_hvp


# ----------------------------------------------------------------------------
# Shared derivative operators of the sensitivity layer.
# ----------------------------------------------------------------------------
def directional_derivative(fun: Callable, argnum: int,
                           direction: Any) -> Callable:
    r"""``(*args) -> d/dt fun(..., args[argnum] + t direction, ...)`` at 0.

    Forward mode (``autograd.make_jvp``); composable, so nesting it gives
    higher directional derivatives.  Where ``fun`` does not depend on the
    argument the derivative is zero, and autograd's "Output seems
    independent of input" warning is silenced: a vanishing term is normal
    for the callers (Taylor terms, cross derivatives, zero Hessians).
    """
    make = autograd.make_jvp(fun, argnum=argnum)

    def derivative(*args):
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", _INDEPENDENT)
            return make(*args)(direction)[1]
    return derivative


def jvp_operator(fun: Callable, x: Any, *args: Any,
                 argnum: int = 0) -> Callable:
    r"""``v -> J v`` with :math:`J = \partial fun / \partial x` at ``x``.

    One forward-mode pass per product (``autograd.make_jvp``); the result
    is a float array of the shape of ``v``.  For a gradient ``fun`` this is
    a Hessian-vector product; for an estimating equation, a Jacobian-vector
    product.  ``x`` and ``args`` are used as given (the caller checked them).
    """
    jvp = autograd.make_jvp(fun, argnum=argnum)(
        *args[:argnum], x, *args[argnum:])

    def matvec(v):
        v = onp.asarray(v, dtype=float)
        return onp.asarray(jvp(v.ravel())[1], dtype=float).reshape(v.shape)
    return matvec


def dense_jacobian(fun: Callable, x: Any, *args: Any,
                   argnum: int = 0) -> onp.ndarray:
    r""":math:`\partial fun / \partial x` at ``x`` as a dense float array
    (``autograd.jacobian``, one reverse sweep per output coordinate).  ``x``
    and ``args`` are used as given (the caller checked them)."""
    jac = autograd.jacobian(fun, argnum)(*args[:argnum], x, *args[argnum:])
    return onp.asarray(jac, dtype=float)


def dense_hessian(fun: Callable, x: Any, *args: Any,
                  argnum: int = 0) -> onp.ndarray:
    r"""The dense Hessian :math:`\nabla^2_x f` of a scalar objective.

    Formed as the reverse-mode Jacobian of the gradient,
    ``autograd.jacobian(autograd.grad(fun))``: the same ``D`` backward
    sweeps of the gradient's graph as ``autograd.hessian`` (the Jacobian of
    a Jacobian), with less bookkeeping, so measurably faster.

    Parameters
    ----------
    fun, x, *args, argnum
        As in :func:`make_hvp_at`, except that ``x`` (finite) may have any
        shape.

    Returns
    -------
    numpy.ndarray, shape ``x.shape + x.shape``
        ``(D, D)`` for a vector ``x``.

    Raises
    ------
    TypeError, ValueError
        When ``fun`` is not callable, ``argnum`` is not a valid position, or
        ``x`` is not a finite real array.

    Examples
    --------
    >>> import autograd.numpy as np
    >>> dense_hessian(lambda x, a: a * np.sum(x ** 3), np.array([1.0, 2.0]), 2.0)
    array([[12.,  0.],
           [ 0., 24.]])
    """
    argnum = _check_fun_argnum(fun, argnum)
    _check_args_length(args, argnum)
    x = _as_finite_float_array(x, "x")
    return dense_jacobian(autograd.grad(fun, argnum), x, *args, argnum=argnum)
