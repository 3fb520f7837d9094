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
from refold.sensitivity.hvp import (dense_hessian, dense_jacobian,
                                    jvp_operator, make_hvp_at)
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
    from refold.sensitivity import solvers as _solvers  # its current kinds
    kinds = ("auto",) + tuple(_solvers.SOLVER_KINDS)
    if isinstance(solver, str) and solver not in kinds:
        raise ValueError(f"{name} must be one of {kinds} or a function "
                         f"b -> H^-1 b; got {solver!r}")
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
    if spec is None or spec == "auto":
        return jacobian_solver_auto(estimating_equation, par, args,
                                    symmetric=symmetric, options=options,
                                    what=what)[:2]
    if spec in _MATRIX_FREE_KINDS:
        if symmetric is False:
            raise ValueError(
                f"solver={spec!r} needs a symmetric positive definite "
                f"Jacobian, but symmetric=False was given; use 'lu'")
        matvec = jvp_operator(estimating_equation, par, *args)
        return _make_solver(spec, matvec=matvec, **kw), None

    return _dense_jacobian_solver(estimating_equation, par, args, spec,
                                  symmetric, kw)


def _dense_jacobian_solver(estimating_equation, par, args, spec, symmetric,
                           kw) -> tuple:
    """Form ``J`` densely; Cholesky when symmetric positive definite, LU
    otherwise (or the kind ``spec``)."""
    what, dim = kw["what"], kw["dim"]
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


#: ``solver_options`` keys that ``solver='auto'`` understands.
AUTO_OPTIONS = ("on_failure", "cg_opts", "preconditioner", "structure")


def hessian_solver_auto(objective: Optional[Callable], par: np.ndarray,
                        args: tuple, *, hessian: Any = None,
                        options: Optional[Mapping] = None,
                        name: str = "hessian_at_opt",
                        what: str = "the Hessian") -> tuple:
    r"""``solver='auto'`` for the Hessian of ``objective(par, *args)``.

    The structure is detected from the objective (or read from ``hessian``
    when the caller gives one) and the solver chosen from it; see
    :mod:`refold.sensitivity.structure`.  ``options`` may hold
    ``on_failure``, ``cg_opts``, ``preconditioner`` and ``structure`` (a
    :class:`~refold.sensitivity.structure.HessianStructure` to reuse).

    Returns
    -------
    solver : LinearSolver
    matrix : the Hessian as formed (None on the matrix-free path)
    structure : HessianStructure
    """
    from refold.sensitivity.structure import (HessianStructure,
                                              auto_hessian_solver)
    opts = dict(options or {})
    unknown = sorted(set(opts) - set(AUTO_OPTIONS))
    if unknown:
        raise TypeError(f"solver_options {unknown} are not understood by "
                        f"solver='auto'; it takes {list(AUTO_OPTIONS)}")
    structure = opts.pop("structure", None)
    if structure is not None and not isinstance(structure,
                                                HessianStructure):
        raise TypeError(f"solver_options['structure'] must be a "
                        f"HessianStructure; got {type(structure).__name__}")
    if hessian is not None:
        hessian = _check_square(hessian, name, par.shape[0])
        opts["name"] = name
    try:
        return auto_hessian_solver(objective, par, args, hessian=hessian,
                                   structure=structure, options=opts)
    except ValueError as err:
        raise _in_context(err, what) from err


def jacobian_solver_auto(estimating_equation: Callable, par: np.ndarray,
                         args: tuple, *, symmetric: Optional[bool] = None,
                         options: Optional[Mapping] = None,
                         what: str = "the Jacobian of estimating_equation"
                         ) -> tuple:
    r"""``solver='auto'`` for the Jacobian :math:`J` of an estimating
    equation.

    ``J``'s pattern is detected
    (:func:`~refold.sensitivity.sparsity.jacobian_sparsity`); a small or
    dense ``J`` is formed densely (Cholesky when symmetric positive
    definite, LU otherwise).  A sparse one is recovered from Jacobian-vector
    products; when it is symmetric it is solved as a
    Hessian of that structure (Schur complement for an arrowhead, sparse
    Cholesky otherwise, falling back to LU when it is not positive
    definite), else by sparse LU.  The sparse ``J`` comes from
    :func:`~refold.sensitivity.jacobians.sparse_jacobian` (one reverse pass
    per dense row, one forward pass per colour of the other rows' columns,
    one forward probe verifying the detected pattern); an equation with no
    forward-mode derivative is formed densely (reverse mode).

    Returns
    -------
    solver, jacobian (dense, sparse or ArrowheadHessian), structure
    """
    import scipy.sparse as sps
    from refold.sensitivity.arrowhead import ArrowheadHessian
    from refold.sensitivity.jacobians import colour_jacobian, sparse_jacobian
    from refold.sensitivity.sparsity import jacobian_sparsity
    from refold.sensitivity.structure import (DENSE_FRACTION, SMALL_DIM,
                                              HessianStructure)
    dim = par.shape[0]
    opts = dict(options or {})
    opts.pop("structure", None)
    kw = dict(dim=dim, options=opts, what=what)
    pattern = jac = None
    reason = f"D = {dim} <= {SMALL_DIM}"
    if dim > SMALL_DIM:
        pattern = jacobian_sparsity(estimating_equation, par, *args)
        reason = (f"{100 * pattern.nnz / dim ** 2:.0f}% of the entries can "
                  f"be nonzero")
    if pattern is not None and pattern.nnz <= DENSE_FRACTION * dim * dim:
        colouring = colour_jacobian(pattern, dim=dim)
        n_products = colouring.num_products + 1          # with the probe
        try:
            jac = sps.csr_matrix(sparse_jacobian(
                estimating_equation, par, *args, sparsity=colouring,
                name="estimating_equation", at="the base values"))
        except ValueError as err:
            if not isinstance(err.__cause__, NotImplementedError):
                raise
            reason = "estimating_equation has no forward-mode derivative"
    if jac is None:
        solver, jac = _dense_jacobian_solver(estimating_equation, par, args,
                                             None, symmetric, kw)
        structure = HessianStructure("dense", dim, pattern, reason=reason,
                                     source="detected")
        solver.info["structure"] = structure
        return solver, jac, structure
    scale = float(np.max(np.abs(jac.data), initial=0.0))
    gap = float(np.max(np.abs((jac - jac.T).data), initial=0.0))
    is_symmetric = gap <= 100.0 * dim * np.finfo(float).eps * scale
    if symmetric is True and not is_symmetric:
        raise ValueError(
            f"{what} is not symmetric (max|J - J^T| = {gap:.3g}) although "
            f"symmetric=True was given; pass symmetric=False (or leave it "
            f"None) to use an LU solver")
    kw.update(name="jacobian")
    if is_symmetric and symmetric is not False:
        sym = (0.5 * (jac + jac.T)).tocsr()
        structure = HessianStructure.from_pattern(sym, source="detected")
        structure._num_products = n_products
        try:
            if structure.kind == "arrowhead":
                arrow = ArrowheadHessian.from_sparse(
                    sym, structure.global_inds, structure.local_inds)
                solver = _make_solver("arrowhead", matrix=arrow, **kw)
                solver.info["structure"] = structure
                return solver, arrow, structure
            solver = _make_solver("sparse", matrix=sym, **kw)
            structure.kind = "sparse"
            solver.info["structure"] = structure
            return solver, sym, structure
        except ValueError:
            pass  # symmetric but not positive definite: LU below
    structure = HessianStructure(
        "sparse", dim, pattern, reason="a non-symmetric sparse Jacobian",
        source="detected", num_products=n_products,
        solver_name="sparse LU")
    solver = _make_solver("lu", matrix=sps.csc_matrix(jac), **kw)
    solver.info["structure"] = structure
    return solver, jac, structure



def objective_hessian_solver(fun: Callable, par: np.ndarray,
                             hyper: np.ndarray, hessian: Any, kind: Any,
                             options: dict, names: dict) -> tuple:
    """``(solver, matrix)`` for the Hessian of ``fun(par, hyper)`` in
    ``par``, for the linear approximation of an optimum.

    ``kind`` is ``'auto'`` (:func:`hessian_solver_auto`), a solver kind or
    a solver function; ``hessian`` the user's Hessian or ``None``.
    ``matrix`` is the Hessian formed, or ``None`` on a matrix-free path.
    """
    dim = par.shape[0]
    if kind == "auto":
        solver, matrix, _ = hessian_solver_auto(
            fun, par, (hyper,), hessian=hessian, options=options,
            name=names["hessian_arg"], what=names["jacobian"])
        return solver, matrix
    options = {k: v for k, v in options.items() if k != "structure"}
    kw = dict(dim=dim, options=options, what=names["jacobian"])
    if hessian is not None:
        hessian = _check_square(hessian, names["hessian_arg"], dim)
        return _make_solver(kind, matrix=hessian, name=names["hessian_arg"],
                            **kw), hessian
    if callable(kind):
        return _make_solver(kind, **kw), None
    if kind in _MATRIX_FREE_KINDS:
        # One recorded gradient graph; each product is a backward sweep.
        matvec = make_hvp_at(fun, par, hyper)
        return _make_solver(kind, matvec=matvec, **kw), None
    hessian = dense_hessian(fun, par, hyper)
    return _make_solver(kind, matrix=hessian, name="hessian", **kw), hessian
