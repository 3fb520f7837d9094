r"""Solvers for the Jacobian of an estimating equation (private).

The first-order classes of :mod:`refold.sensitivity.linear_approx` and
:class:`~refold.sensitivity.cross.CrossSensitivity` solve with
:math:`J = \partial G/\partial\theta` (the Hessian, for an optimum).  Here a
solver specification -- a function ``b -> J^{-1} b``, a solver kind of
:func:`refold.sensitivity.solvers.as_solver`, or ``None`` -- becomes a
:class:`~refold.sensitivity.solvers.LinearSolver`, and solver errors get the
context of what is being solved.
"""
from __future__ import annotations

from typing import Any, Callable, Mapping, Optional, Union

import numpy as np

from refold.sensitivity.errors import HessianError
from refold.sensitivity.hvp import dense_jacobian, jvp_operator
from refold.sensitivity.solvers import (_FACTORISING_KINDS, _MATRIX_FREE_KINDS,
                                        as_solver)

SolverSpec = Union[None, str, Callable[[np.ndarray], np.ndarray]]


def _check_square(h: Any, name: str, dim: int) -> Any:
    shape = getattr(h, "shape", None)
    if shape is None:
        h = np.asarray(h)
        shape = h.shape
    if tuple(shape) != (dim, dim):
        raise ValueError(f"{name} must have shape ({dim}, {dim}) to match "
                         f"the parameter of length {dim}; got shape "
                         f"{tuple(shape)}")
    return h


def _check_solver_spec(solver: SolverSpec, name: str) -> SolverSpec:
    if solver is None or callable(solver) or isinstance(solver, str):
        return solver
    raise TypeError(f"{name} must be None, a solver kind such as 'cholesky', "
                    f"'cg' or 'lu', or a function b -> H^-1 b; got "
                    f"{type(solver).__name__}")


def _symmetry_gap(mat: np.ndarray) -> tuple:
    """``(max|A - A^T|, tolerance)`` with a dtype-aware tolerance.

    The tolerance is ``100 * D * eps(dtype) * max|A|``: rounding in an
    automatic-differentiation Jacobian of a truly symmetric matrix stays far
    below it.  Misclassifying a symmetric matrix as non-symmetric costs only
    speed (an LU solve instead of Cholesky), never accuracy.
    """
    eps = np.finfo(mat.dtype).eps if np.issubdtype(mat.dtype, np.floating) \
        else np.finfo(float).eps
    scale = float(np.max(np.abs(mat), initial=0.0))
    gap = float(np.max(np.abs(mat - mat.T), initial=0.0))
    return gap, 100.0 * mat.shape[0] * eps * scale


def _matvec_of_matrix(mat: Any) -> Callable:
    def matvec(v):
        return np.asarray(mat @ np.ravel(v)).reshape(np.shape(v))
    return matvec


def _make_solver(spec: SolverSpec, *, dim: int, matrix: Any = None,
                 matvec: Optional[Callable] = None,
                 options: Optional[Mapping] = None, name: str = "hessian",
                 what: str = "the Hessian") -> Callable:
    """:func:`as_solver` with refold's argument names and error context."""
    opts = dict(options or {})
    if isinstance(spec, str) and spec in _FACTORISING_KINDS:
        opts.setdefault("name", name)
    try:
        if callable(spec):
            return as_solver(spec, dim=dim, **opts)
        if spec in _MATRIX_FREE_KINDS and matrix is None:
            return as_solver(spec, hvp=matvec, dim=dim, **opts)
        if spec in _MATRIX_FREE_KINDS:
            return as_solver(spec, hvp=_matvec_of_matrix(matrix), dim=dim,
                             **opts)
        return as_solver(spec, hessian=matrix, **opts)
    except ValueError as err:
        raise _in_context(err, what) from err


def _in_context(err: ValueError, what: str) -> ValueError:
    msg = f"{what}: {err}"
    if "on_failure=" in msg:
        msg += " Here, pass it as solver_options={'on_failure': ...}."
    # A HessianError stays one (a LinAlgError, as vittles raised).
    return (HessianError if isinstance(err, HessianError) else
            ValueError)(msg)


def _no_solve(b):  # pragma: no cover - never called for a NaN gradient
    raise AssertionError("a non-finite gradient must not be solved")


def _solve(solver: Callable, rhs: np.ndarray, what: str) -> np.ndarray:
    """Apply ``solver``, giving its errors (e.g. CG finding negative
    curvature) the context of what is being solved."""
    try:
        return np.asarray(solver(rhs), dtype=float).reshape(rhs.shape)
    except ValueError as err:
        raise _in_context(err, what) from err


def estimating_equation_solver(estimating_equation: Callable,
                               par: np.ndarray, args: tuple,
                               spec: SolverSpec, *,
                               symmetric: Optional[bool] = None,
                               options: Optional[Mapping] = None,
                               what: str = "the Jacobian of "
                                           "estimating_equation"
                               ) -> tuple:
    r"""A solver for the Jacobian :math:`J = \partial G / \partial\theta`.

    Parameters
    ----------
    estimating_equation : callable
        ``G(par, *args)``, differentiable by autograd.
    par : numpy.ndarray, shape (D,)
        Where ``J`` is taken.
    args : tuple
        The other arguments of ``G``.
    spec : callable, str or None
        A function ``b -> J^{-1} b`` (validated, used as is), a solver kind,
        or ``None``: form ``J`` (reverse-mode autograd) and use Cholesky
        when it is symmetric, LU when it is not or when it is symmetric but
        not positive definite (an estimating equation only needs an
        invertible Jacobian; the score of a log likelihood has a negative
        definite one).  ``'cg'`` uses Jacobian-vector products only and
        needs a symmetric positive definite ``J``.
    symmetric : bool or None
        ``None`` detects symmetry (``max|J - J^T| <= 100 D eps max|J|``;
        rounding in an autograd Jacobian of a symmetric matrix stays well
        below it, and a misclassification costs speed, never accuracy);
        ``False`` forces LU; ``True`` raises unless ``J`` is symmetric.
    options : dict, optional
        Passed to :func:`refold.sensitivity.solvers.as_solver`.
    what : str
        How ``J`` is described in error messages.

    Returns
    -------
    solver : LinearSolver
    jacobian : numpy.ndarray or None
        ``J`` when it was formed.
    """
    dim = par.shape[0]
    kw = dict(dim=dim, options=options, what=what)
    if callable(spec):
        return _make_solver(spec, **kw), None
    if spec in _MATRIX_FREE_KINDS:
        if symmetric is False:
            raise ValueError(
                f"solver={spec!r} needs a symmetric positive definite "
                f"Jacobian, but symmetric=False was given; use 'lu'")
        matvec = jvp_operator(estimating_equation, par, *args)
        return _make_solver(spec, matvec=matvec, **kw), None

    jacobian = dense_jacobian(estimating_equation, par, *args)
    _check_square(jacobian, what, dim)
    if not np.all(np.isfinite(jacobian)):
        raise ValueError(f"{what} is not finite at the base values")
    gap, tol = _symmetry_gap(jacobian)
    is_symmetric = gap <= tol
    if symmetric is True and not is_symmetric:
        raise ValueError(
            f"{what} is not symmetric (max|J - J^T| = {gap:.3g} > tolerance "
            f"{tol:.3g}) although symmetric=True was given; pass "
            f"symmetric=False (or leave it None) to use an LU solver")
    kw.update(matrix=jacobian, name="jacobian")
    if spec is not None:
        return _make_solver(spec, **kw), jacobian
    if symmetric is False or not is_symmetric:
        return _make_solver("lu", **kw), jacobian
    try:
        return _make_solver("cholesky", **kw), jacobian
    except ValueError:
        return _make_solver("lu", **kw), jacobian
