r"""First-order sensitivity of an optimum (or of a root) to a hyperparameter.

For :math:`\hat\theta(\epsilon) = \mathrm{argmin}_\theta f(\theta, \epsilon)`
the first-order condition :math:`\nabla_\theta f(\hat\theta(\epsilon),
\epsilon) = 0` differentiates to

.. math::

    \frac{d\hat\theta}{d\epsilon} = -H^{-1} C, \qquad
    H = \frac{\partial^2 f}{\partial\theta\,\partial\theta^\top}, \quad
    C = \frac{\partial^2 f}{\partial\theta\,\partial\epsilon^\top},

both at :math:`(\hat\theta, \epsilon_0)`.  The same holds for a root of an
estimating equation :math:`G(\hat\theta(\epsilon), \epsilon) = 0` with
:math:`H = \partial G / \partial\theta` and :math:`C = \partial G /
\partial\epsilon`.  ``C`` is computed one column at a time, as the
forward-mode derivative of :math:`\nabla_\theta f` (or ``G``) in the
direction of one hyperparameter coordinate: never a dense ``D x D``
Jacobian.  ``H`` is used only through a solver, :math:`b \mapsto H^{-1}b`.

Public classes keep the names and signatures of vittles 0.173:
:class:`EstimatingEquationLinearApproximation` and
:class:`HyperparameterSensitivityLinearApproximation`.
"""
from __future__ import annotations

import warnings
from typing import Any, Callable, Mapping, Optional, Union

import autograd
import autograd.numpy as anp
import numpy as np
import scipy.sparse as sps
from autograd.extend import defjvp, defvjp, primitive
from autograd.tracer import getval, isbox

from refold.sensitivity.hvp import get_hvp
from refold.sensitivity.optimum import validate_optimum
from refold.sensitivity.solvers import as_solver

__all__ = [
    "EstimatingEquationLinearApproximation",
    "HyperparameterSensitivityLinearApproximation",
]

SolverSpec = Union[None, str, Callable[[np.ndarray], np.ndarray]]

#: Solver kinds that work from a matrix-vector product alone.
_MATRIX_FREE_KINDS = frozenset({"cg"})


# ----------------------------------------------------------------------------
# Input checking
# ----------------------------------------------------------------------------
def _as_vector(value: Any, name: str, *, length: Optional[int] = None
               ) -> np.ndarray:
    """A finite 1-d float64 copy of ``value``; scalars only when length 1."""
    arr = np.asarray(value)
    if arr.dtype == object or arr.dtype == bool or not (
            np.issubdtype(arr.dtype, np.floating)
            or np.issubdtype(arr.dtype, np.integer)):
        raise TypeError(f"{name} must be a real numeric array; got dtype "
                        f"{arr.dtype}")
    if arr.ndim == 0:
        if length == 1:
            arr = arr.reshape(1)
        else:
            want = "a 1-d array" if length is None else \
                f"a 1-d array of length {length}"
            raise ValueError(
                f"{name} must be {want}; got a scalar (wrap it, e.g. "
                f"np.atleast_1d({name}))")
    if arr.ndim != 1:
        raise ValueError(f"{name} must be a 1-d array; got shape {arr.shape}")
    if length is not None and arr.shape[0] != length:
        raise ValueError(f"{name} must have length {length}; got length "
                         f"{arr.shape[0]}")
    if arr.shape[0] == 0:
        raise ValueError(f"{name} must not be empty")
    arr = np.array(arr, dtype=np.float64)
    if not np.all(np.isfinite(arr)):
        bad = np.flatnonzero(~np.isfinite(arr))
        raise ValueError(f"{name} must be finite; entries {bad[:10].tolist()} "
                         f"are NaN or inf")
    return arr


def _as_cross_matrix(value: Any, name: str, shape: tuple) -> np.ndarray:
    if sps.issparse(value):
        value = value.toarray()
    arr = np.asarray(value)
    if arr.dtype == object or not np.issubdtype(arr.dtype, np.number) \
            or np.iscomplexobj(arr):
        raise TypeError(f"{name} must be a real numeric array; got dtype "
                        f"{arr.dtype}")
    if arr.shape != shape:
        raise ValueError(f"{name} must have shape {shape} (length of the "
                         f"parameter, length of the hyperparameter); got "
                         f"shape {arr.shape}")
    arr = np.array(arr, dtype=np.float64)
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} must be finite; it has NaN or inf entries")
    return arr


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


# ----------------------------------------------------------------------------
# Derivatives
# ----------------------------------------------------------------------------
def _cross_jacobian(vec_fun: Callable, par: np.ndarray, hyper: np.ndarray,
                    name: str) -> np.ndarray:
    r"""``d vec_fun(par, h) / dh`` at ``hyper``, one forward pass per column.

    ``vec_fun`` is the gradient of the objective (or the estimating
    equation); each column is the forward-mode directional derivative in the
    direction of one hyperparameter coordinate.
    """
    jvp = autograd.make_jvp(lambda h: vec_fun(par, h))(hyper)
    basis = np.eye(hyper.shape[0])
    cols = []
    for j in range(hyper.shape[0]):  # loop over hyperparameter dimensions
        with warnings.catch_warnings():  # a zero column is legitimate
            warnings.filterwarnings("ignore",
                                    "Output seems independent of input")
            _, col = jvp(basis[j])
        col = np.broadcast_to(np.asarray(col, dtype=float), par.shape)
        cols.append(col)
    cross = np.stack(cols, axis=1)
    if not np.all(np.isfinite(cross)):
        raise ValueError(f"{name} (computed by automatic differentiation) is "
                         f"not finite at the base values")
    return cross


def _linear_opt_function(value0: np.ndarray, arg0: np.ndarray,
                         jac: np.ndarray, arg_name: str) -> Callable:
    """An autograd primitive equal to ``value0`` at ``arg0`` with Jacobian
    ``jac``, differentiable once in reverse and forward mode."""
    value0, arg0, jac = value0.copy(), arg0.copy(), jac.copy()
    atol = 1e-8 * max(1.0, float(np.max(np.abs(arg0))))

    def check(arg):
        arr = np.asarray(getval(arg), dtype=float)
        if arr.size != arg0.size or arr.ndim > 1:
            raise ValueError(
                f"{arg_name} must have shape ({arg0.size},); got shape "
                f"{arr.shape}")
        dist = float(np.max(np.abs(arr.ravel() - arg0)))
        if not dist <= atol:
            raise ValueError(
                f"the optimum function is exact only at the base "
                f"{arg_name}; it was evaluated {dist:.3g} away (tolerance "
                f"{atol:.3g}). Use the predict_* method for a linear "
                f"prediction at other values.")

    def refuse(*_args, **_kwargs):
        raise ValueError(
            "second derivatives of the optimum are not available from a "
            "first-order approximation; use "
            "ParametricSensitivityTaylorExpansion")

    @primitive
    def apply_jac(direction):
        return jac @ np.ravel(direction)

    @primitive
    def apply_jac_t(cotangent):
        return jac.T @ cotangent

    defvjp(apply_jac, refuse)
    defjvp(apply_jac, refuse)
    defvjp(apply_jac_t, refuse)
    defjvp(apply_jac_t, refuse)

    @primitive
    def opt_par_function(arg):
        check(arg)
        return value0.copy()

    def vjp_maker(ans, arg):
        check(arg)
        if isbox(arg):  # differentiated again: needs d2 opt_par / d hyper2
            refuse()
        return lambda g: anp.reshape(apply_jac_t(g), np.shape(arg))

    def jvp_rule(g, ans, arg):
        check(arg)
        if isbox(arg):
            refuse()
        return apply_jac(g)

    defvjp(opt_par_function, vjp_maker)
    defjvp(opt_par_function, jvp_rule)
    return opt_par_function


# ----------------------------------------------------------------------------
# Solvers for an estimating equation
# ----------------------------------------------------------------------------
_FACTORISING_KINDS = frozenset({"cholesky", "dense", "sparse", "lu"})


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
    return ValueError(msg)


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
    if callable(spec):
        return _make_solver(spec, dim=dim, options=options, what=what), None

    def fun_of_par(p):
        return estimating_equation(p, *args)

    if spec in _MATRIX_FREE_KINDS:
        if symmetric is False:
            raise ValueError(
                f"solver={spec!r} needs a symmetric positive definite "
                f"Jacobian, but symmetric=False was given; use 'lu'")
        jvp = autograd.make_jvp(fun_of_par)(par)

        def matvec(v):
            return np.asarray(jvp(np.ravel(v))[1], dtype=float).reshape(
                np.shape(v))
        return _make_solver(spec, dim=dim, matvec=matvec, options=options,
                            what=what), None

    jacobian = np.asarray(autograd.jacobian(fun_of_par)(par), dtype=float)
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
    kw = dict(dim=dim, matrix=jacobian, options=options, name="jacobian",
              what=what)
    if spec is not None:
        return _make_solver(spec, **kw), jacobian
    if symmetric is False or not is_symmetric:
        return _make_solver("lu", **kw), jacobian
    try:
        return _make_solver("cholesky", **kw), jacobian
    except ValueError:
        return _make_solver("lu", **kw), jacobian


# ----------------------------------------------------------------------------
# Estimating equations
# ----------------------------------------------------------------------------
class EstimatingEquationLinearApproximation:
    r"""Linear approximation of the root of an estimating equation.

    For :math:`G(\hat\theta(\epsilon), \epsilon) = 0` this computes
    :math:`d\hat\theta/d\epsilon = -J^{-1} \partial G/\partial\epsilon` at
    :math:`(\hat\theta_0, \epsilon_0)` with
    :math:`J = \partial G / \partial\theta`, and predicts
    :math:`\hat\theta(\epsilon) \approx \hat\theta_0 +
    (d\hat\theta/d\epsilon)(\epsilon - \epsilon_0)`.

    Parameters
    ----------
    estimating_equation : callable
        ``estimating_equation(input_par, hyper_par)`` returns an array of the
        length of ``input_par`` that is zero at the solution.  It must be
        differentiable by autograd (forward mode in ``hyper_par``).
    input_val0 : array_like, shape (D,)
        The root at ``hyper_val0`` (refold calls this ``opt_par``).
    hyper_val0 : array_like, shape (M,)
        The base hyperparameter (``hyper_par``); a 1-d float array.
    hess_solver : callable or str or None, optional
        ``hess_solver(b)`` returns :math:`J^{-1} b` at the base values, or a
        solver kind (``'cholesky'``, ``'lu'``, ``'cg'``, ...), or ``None``
        (default): form ``J`` and choose Cholesky when it is symmetric and
        LU when it is not (e.g. instrumental variables).
    validate_solution : bool, optional
        Check that ``input_val0`` is a root: the Newton step
        :math:`J^{-1} G` must satisfy
        :math:`\|J^{-1}G\|_\infty \le \mathrm{tol}\max(1,\|\theta\|_\infty)`.
        Default ``True``.
    estimating_equation_jac0 : array_like, shape (D, M), optional
        :math:`\partial G/\partial\epsilon` at the base values; computed by
        forward-mode differentiation when omitted.
    hyper_par_estimating_equation : callable, optional
        The part of ``estimating_equation`` that depends on ``hyper_par``,
        used for :math:`\partial G/\partial\epsilon`.
    solution_tol : float, optional
        Tolerance of the Newton-step check; ``None`` means
        :data:`refold.sensitivity.optimum.DEFAULT_OPTIMUM_TOL`.
    symmetric : bool or None, keyword-only
        Whether ``J`` is symmetric: ``None`` detects it (dtype-aware
        tolerance), ``False`` forces LU, ``True`` requires symmetry.
    solver : callable or str, keyword-only
        Synonym of ``hess_solver`` (give one or the other).
    solver_options : dict, keyword-only
        Passed to :func:`refold.sensitivity.solvers.as_solver` (e.g.
        ``cg_opts``).

    Notes
    -----
    Differences from vittles 0.173:

    * the solution is validated by default, with a scale-aware Newton-step
      test instead of a gradient-norm test; a NaN residual fails;
    * ``hess_solver`` may be omitted: the solver is then chosen from the
      Jacobian, with LU for non-symmetric Jacobians (vittles would need the
      user to notice that Cholesky silently uses one triangle);
    * ``set_location`` re-forms the Jacobian and its factorisation when
      refold built the solver; a user-supplied solver function is kept (as
      in vittles) unless a new one is passed;
    * the hyperparameter must be a 1-d array of the base length (a scalar
      only when that length is 1); vittles broadcast silently;
    * :math:`\partial G/\partial\epsilon` is computed with one forward pass
      per hyperparameter coordinate.
    """

    _names = dict(par="input_val0", hyper="hyper_val0",
                  cross="estimating_equation_jac0",
                  new_hyper="new_hyper_par_value",
                  jacobian="the Jacobian of estimating_equation",
                  opt_out="validate_solution=False")

    def __init__(self, estimating_equation: Callable, input_val0,
                 hyper_val0, hess_solver: SolverSpec = None,
                 validate_solution: bool = True,
                 estimating_equation_jac0=None,
                 hyper_par_estimating_equation: Optional[Callable] = None,
                 solution_tol: Optional[float] = None, *,
                 symmetric: Optional[bool] = None,
                 solver: SolverSpec = None,
                 solver_options: Optional[Mapping] = None) -> None:
        if not callable(estimating_equation):
            raise TypeError("estimating_equation must be callable; got "
                            f"{type(estimating_equation).__name__}")
        if hess_solver is not None and solver is not None:
            raise ValueError("give hess_solver or solver, not both")
        self._ee = estimating_equation
        self._hyper_ee = hyper_par_estimating_equation or estimating_equation
        if not callable(self._hyper_ee):
            raise TypeError("hyper_par_estimating_equation must be callable")
        self._solver_spec = _check_solver_spec(
            solver if solver is not None else hess_solver,
            "solver" if solver is not None else "hess_solver")
        if symmetric not in (None, True, False):
            raise TypeError(f"symmetric must be None, True or False; got "
                            f"{symmetric!r}")
        self._symmetric = symmetric
        self._solver_options = dict(solver_options or {})
        self._solution_tol = solution_tol
        self.set_location(input_val0, hyper_val0, estimating_equation_jac0,
                          validate_solution=validate_solution,
                          solution_tol=solution_tol)

    # -- hooks shared with the optimisation subclass ------------------------
    def _vector_fun(self, par, hyper):
        return self._ee(par, hyper)

    def _residual(self, par, hyper) -> np.ndarray:
        """``G`` at the base point, checked for shape."""
        residual = np.asarray(self._vector_fun(par, hyper), dtype=float)
        if residual.shape != par.shape:
            raise ValueError(
                f"estimating_equation must return an array of shape "
                f"{par.shape} (the shape of {self._names['par']}); got shape "
                f"{residual.shape}")
        return residual

    def _hyper_vector_fun(self, par, hyper):
        return self._hyper_ee(par, hyper)

    def _make_solver(self, par, hyper, jacobian, spec):
        del jacobian  # an estimating equation's Jacobian is never given
        return estimating_equation_solver(
            self._ee, par, (hyper,), spec, symmetric=self._symmetric,
            options=self._solver_options, what=self._names["jacobian"])

    # -- setting the base point ----------------------------------------------
    def _set_base(self, par_value, hyper_value, jacobian, cross, validate,
                  tol, solver):
        n = self._names
        par = _as_vector(par_value, n["par"])
        hyper = _as_vector(hyper_value, n["hyper"])
        dim = par.shape[0]
        spec = self._solver_spec if solver is None else \
            _check_solver_spec(solver, "solver")
        residual = self._residual(par, hyper)
        if validate and not np.all(np.isfinite(residual)):
            # Raises before any solve: a NaN gradient is never solved.
            validate_optimum(residual, _no_solve, par, name=n["par"],
                             opt_out=n["opt_out"])
        solver_fun, jacobian = self._make_solver(par, hyper, jacobian, spec)
        if validate:
            validate_optimum(residual,
                             lambda b: _solve(solver_fun, b, n["jacobian"]),
                             par,
                             tol=tol if tol is not None else
                             self._solution_tol,
                             name=n["par"], opt_out=n["opt_out"])
        if cross is None:
            cross = _cross_jacobian(self._hyper_vector_fun, par, hyper,
                                    n["cross"])
        else:
            cross = _as_cross_matrix(cross, n["cross"],
                                     (dim, hyper.shape[0]))
        sens = -_solve(solver_fun, cross, n["jacobian"])
        if not np.all(np.isfinite(sens)):
            raise ValueError(
                f"the sensitivity is not finite: {n['jacobian']} is singular "
                f"or too ill-conditioned at {n['par']}")
        # Commit only after everything succeeded.
        if solver is not None:
            self._solver_spec = spec
        self._par0, self._hyper0 = par, hyper
        self._solver, self._jacobian = solver_fun, jacobian
        self._cross, self._sens = cross, sens

    def set_location(self, input_val0, hyper_val0,
                     estimating_equation_jac0=None,
                     validate_solution: bool = True,
                     solution_tol: Optional[float] = None, *,
                     hess_solver: SolverSpec = None) -> None:
        """Move the base point and recompute the sensitivity.

        Parameters
        ----------
        input_val0, hyper_val0, estimating_equation_jac0 :
            As in the constructor.
        validate_solution : bool, optional
            Check that ``input_val0`` is a root (default ``True``).
        solution_tol : float, optional
            Tolerance of that check; defaults to the constructor's.
        hess_solver : callable or str, keyword-only
            A new solver (function or kind).  When omitted, a solver refold
            built is rebuilt at the new point; a user's solver function is
            kept as is (it must be valid at the new point).
        """
        self._set_base(input_val0, hyper_val0, None,
                       estimating_equation_jac0, validate_solution,
                       solution_tol, hess_solver)

    # -- results ---------------------------------------------------------
    def get_dinput_dhyper(self) -> np.ndarray:
        r"""The Jacobian :math:`d\hat\theta/d\epsilon`, shape (D, M)."""
        return self._sens.copy()

    def hess_solver(self) -> Callable:
        r"""The solver :math:`b \mapsto J^{-1} b` at the base values."""
        return self._solver

    def _new_hyper(self, value) -> np.ndarray:
        return _as_vector(value, self._names["new_hyper"],
                          length=self._hyper0.shape[0])

    def predict_input_par_from_hyper_par(self, new_hyper_par_value
                                         ) -> np.ndarray:
        r"""Predict the root at ``new_hyper_par_value`` linearly.

        Parameters
        ----------
        new_hyper_par_value : array_like, shape (M,)
            The hyperparameter (a scalar only when M is 1).

        Returns
        -------
        input_par : numpy.ndarray, shape (D,)
            :math:`\hat\theta_0 + (d\hat\theta/d\epsilon)(\epsilon -
            \epsilon_0)`.
        """
        hyper = self._new_hyper(new_hyper_par_value)
        return self._par0 + self._sens @ (hyper - self._hyper0)

    def get_input_par_function(self) -> Callable:
        r"""A function of the hyperparameter returning the root, for autograd.

        The returned function must be evaluated at the base hyperparameter;
        its value there is the root and its first derivative (reverse or
        forward mode) is :math:`d\hat\theta/d\epsilon`, so functions of the
        root (e.g. standard errors) can be differentiated through it.
        Second derivatives raise a ``ValueError`` (they need a higher-order
        expansion), rather than silently returning zero.
        """
        return _linear_opt_function(self._par0, self._hyper0, self._sens,
                                    "hyper_par")


# ----------------------------------------------------------------------------
# Optima
# ----------------------------------------------------------------------------
class HyperparameterSensitivityLinearApproximation(
        EstimatingEquationLinearApproximation):
    r"""Linear approximation of an optimum as a function of a hyperparameter.

    For :math:`\hat\theta(\epsilon) = \mathrm{argmin}_\theta
    f(\theta, \epsilon)`, computes :math:`d\hat\theta/d\epsilon =
    -H^{-1} \partial^2 f/\partial\theta\partial\epsilon` at
    :math:`(\hat\theta_0, \epsilon_0)` and predicts
    :math:`\hat\theta(\epsilon) \approx \hat\theta_0 +
    (d\hat\theta/d\epsilon)(\epsilon - \epsilon_0)`.

    Parameters
    ----------
    objective_fun : callable
        ``objective_fun(opt_par, hyper_par)``, a scalar to minimise,
        differentiable by autograd (forward-over-reverse).
    opt_par_value : array_like, shape (D,)
        The optimum at ``hyper_par_value``; a 1-d float array.
    hyper_par_value : array_like, shape (M,)
        The base hyperparameter; a 1-d float array.
    validate_optimum : bool, optional
        Check that ``opt_par_value`` is an optimum (default ``True``): the
        Newton step must satisfy :math:`\|H^{-1}\nabla f\|_\infty \le
        \mathrm{tol}\cdot\max(1, \|\hat\theta\|_\infty)`.
    hessian_at_opt : array_like or sparse matrix, shape (D, D), optional
        The Hessian at the optimum; computed by autograd when needed and
        omitted.  A scipy sparse matrix selects a sparse factorisation.
    cross_hess_at_opt : array_like, shape (D, M), optional
        :math:`\partial^2 f/\partial\theta\partial\epsilon`; computed with
        one forward-over-reverse pass per hyperparameter coordinate when
        omitted.
    hyper_par_objective_fun : callable, optional
        The part of ``objective_fun`` depending on both arguments, used for
        the cross Hessian.
    grad_tol : float, optional
        Tolerance of the optimum check (on the Newton step, see above);
        ``None`` means :data:`refold.sensitivity.optimum.DEFAULT_OPTIMUM_TOL`
        (``1e-6``).
    factorize_hessian : bool, keyword-only
        ``True`` (default): factorise the Hessian (dense or sparse
        Cholesky).  ``False``: matrix-free conjugate gradients with
        Hessian-vector products; the dense Hessian is never formed.
    solver : callable or str, keyword-only
        A function ``b -> H^{-1} b`` at the optimum, or a kind
        (``'cholesky'``, ``'cg'``, ``'lu'``, ...) passed to
        :func:`refold.sensitivity.solvers.as_solver`.
    solver_options : dict, keyword-only
        Extra options for :func:`~refold.sensitivity.solvers.as_solver`
        (e.g. ``cg_opts``, ``preconditioner``).

    Raises
    ------
    ValueError
        A non-optimum (the message gives the Newton-step size), a NaN
        gradient, an indefinite or singular Hessian, a wrong-shaped
        ``hessian_at_opt`` or ``cross_hess_at_opt``, or a hyperparameter
        of the wrong length.

    Notes
    -----
    Differences from vittles 0.173 (bugs fixed):

    * ``validate_optimum=True`` by default (vittles: ``False``), and the
      check is the scale-aware Newton step, not a gradient norm; a NaN
      gradient fails;
    * ``set_base_values`` re-forms the Hessian and its factorisation
      (vittles kept solving with the factorisation of the old point); a
      solver function given by the user cannot be refreshed, so moving the
      base point then requires a new ``solver=``;
    * ``factorize_hessian=False`` really is matrix-free: Hessian-vector
      products and conjugate gradients, never the dense Hessian (CG then
      detects an indefinite Hessian only along the directions it explores,
      by the sign of :math:`p^\top H p`);
    * a hyperparameter of the wrong length raises (vittles broadcast a
      length-1 value silently); hyperparameters are 1-d float arrays, a
      scalar being accepted only when the base value has length 1;
    * error messages name arguments, never private attributes;
    * the cross Hessian is computed with one forward-over-reverse pass per
      hyperparameter coordinate, never a dense autograd Jacobian;
    * ``get_opt_par_function`` refuses second derivatives instead of
      silently dropping the curvature of the optimum;
    * a singular or indefinite Hessian raises (naming its smallest
      eigenvalue) unless ``solver_options={'on_failure': 'pinv'}`` or
      ``'regularize'`` opts in.

    Examples
    --------
    >>> import autograd.numpy as anp, numpy as np
    >>> f = lambda th, eps: anp.sum((th - eps[0]) ** 2) + anp.sum(th ** 4)
    >>> approx = HyperparameterSensitivityLinearApproximation(
    ...     f, np.zeros(2), np.array([0.0]))
    >>> approx.get_dopt_dhyper().ravel()
    array([1., 1.])
    """

    _names = dict(par="opt_par_value", hyper="hyper_par_value",
                  cross="cross_hess_at_opt",
                  new_hyper="new_hyper_par_value",
                  hessian_arg="hessian_at_opt",
                  jacobian="the Hessian of objective_fun at opt_par_value",
                  opt_out="validate_optimum=False")

    def __init__(self, objective_fun: Callable, opt_par_value,
                 hyper_par_value, validate_optimum: bool = True,
                 hessian_at_opt=None, cross_hess_at_opt=None,
                 hyper_par_objective_fun: Optional[Callable] = None,
                 grad_tol: Optional[float] = None, *,
                 factorize_hessian: bool = True,
                 solver: SolverSpec = None,
                 solver_options: Optional[Mapping] = None) -> None:
        if not callable(objective_fun):
            raise TypeError("objective_fun must be callable; got "
                            f"{type(objective_fun).__name__}")
        hyper_obj = hyper_par_objective_fun or objective_fun
        if not callable(hyper_obj):
            raise TypeError("hyper_par_objective_fun must be callable")
        if not isinstance(factorize_hessian, (bool, np.bool_)):
            raise TypeError(f"factorize_hessian must be True or False; got "
                            f"{factorize_hessian!r}")
        self._objective_fun = objective_fun
        self._grad = autograd.grad(objective_fun, argnum=0)
        self._hyper_grad = autograd.grad(hyper_obj, argnum=0)
        self._hvp = get_hvp(objective_fun, argnum=0)
        self._factorize = bool(factorize_hessian)
        self._solver_spec = _check_solver_spec(solver, "solver")
        if (not self._factorize and isinstance(solver, str)
                and solver not in _MATRIX_FREE_KINDS):
            raise ValueError(
                f"factorize_hessian=False asks for a matrix-free solver, "
                f"but solver={solver!r} factorises the Hessian; use "
                f"solver='cg' or factorize_hessian=True")
        self._symmetric = True
        self._solver_options = dict(solver_options or {})
        self._solution_tol = grad_tol
        self.set_base_values(opt_par_value, hyper_par_value, hessian_at_opt,
                             cross_hess_at_opt,
                             validate_optimum=validate_optimum,
                             grad_tol=grad_tol)

    def _vector_fun(self, par, hyper):
        return self._grad(par, hyper)

    def _residual(self, par, hyper) -> np.ndarray:
        value = np.asarray(self._objective_fun(par, hyper))
        if value.size != 1 or not np.issubdtype(value.dtype, np.number):
            raise ValueError(
                f"objective_fun must return a scalar; at ("
                f"{self._names['par']}, {self._names['hyper']}) it returned "
                f"an array of shape {value.shape}")
        return np.asarray(self._grad(par, hyper), dtype=float)

    def _hyper_vector_fun(self, par, hyper):
        return self._hyper_grad(par, hyper)

    def _make_solver(self, par, hyper, hessian, spec):
        n = self._names
        dim = par.shape[0]
        kind = spec if spec is not None else \
            ("cholesky" if self._factorize else "cg")
        kw = dict(dim=dim, options=self._solver_options, what=n["jacobian"])
        if hessian is not None:
            hessian = _check_square(hessian, n["hessian_arg"], dim)
            return _make_solver(kind, matrix=hessian, name=n["hessian_arg"],
                                **kw), hessian
        if callable(kind):
            return _make_solver(kind, **kw), None
        if kind in _MATRIX_FREE_KINDS:
            hvp = self._hvp

            def matvec(v):
                return hvp(par, np.ravel(v), hyper).reshape(np.shape(v))
            return _make_solver(kind, matvec=matvec, **kw), None
        hessian = np.asarray(autograd.hessian(
            self._objective_fun, argnum=0)(par, hyper), dtype=float)
        return _make_solver(kind, matrix=hessian, name="hessian", **kw), \
            hessian

    def set_base_values(self, opt_par_value, hyper_par_value,
                        hessian_at_opt=None, cross_hess_at_opt=None,
                        validate_optimum: bool = True,
                        grad_tol: Optional[float] = None, *,
                        solver: SolverSpec = None) -> None:
        """Move the base point; the Hessian is re-formed and re-factorised.

        Parameters
        ----------
        opt_par_value, hyper_par_value, hessian_at_opt, cross_hess_at_opt :
            As in the constructor, at the new point.
        validate_optimum : bool, optional
            Check the optimum (default ``True``).
        grad_tol : float, optional
            Tolerance of the check; defaults to the constructor's.
        solver : callable or str, keyword-only
            A new solver.  Required when the current one is a user-supplied
            function (refold cannot refresh it at the new point).

        Raises
        ------
        ValueError
            As the constructor.  On error, the previous base point is kept.
        """
        if solver is None and callable(self._solver_spec) \
                and hasattr(self, "_par0"):
            raise ValueError(
                "the solver was given as a function, valid only at the old "
                "base values; pass solver= (a function valid at the new "
                "point, or a kind such as 'cholesky') to set_base_values")
        self._set_base(opt_par_value, hyper_par_value, hessian_at_opt,
                       cross_hess_at_opt, validate_optimum, grad_tol, solver)

    def get_dopt_dhyper(self) -> np.ndarray:
        r"""The Jacobian :math:`d\hat\theta/d\epsilon`, shape (D, M)."""
        return self.get_dinput_dhyper()

    def get_hessian_at_opt(self):
        """The Hessian at the optimum (as given, or computed).

        On the matrix-free path the Hessian was never formed; it is then
        computed densely here (once, and cached), which costs D
        Hessian-vector products.
        """
        if self._jacobian is None:
            h = autograd.hessian(self._objective_fun, argnum=0)(
                self._par0, self._hyper0)
            self._jacobian = np.asarray(h, dtype=float)
        return self._jacobian

    def predict_opt_par_from_hyper_par(self, new_hyper_par_value
                                       ) -> np.ndarray:
        r"""Predict the optimum at ``new_hyper_par_value`` linearly.

        Parameters
        ----------
        new_hyper_par_value : array_like, shape (M,)
            The hyperparameter (a scalar only when M is 1).

        Returns
        -------
        opt_par : numpy.ndarray, shape (D,)
        """
        return self.predict_input_par_from_hyper_par(new_hyper_par_value)

    def get_opt_par_function(self) -> Callable:
        r"""A function of the hyperparameter returning the optimum.

        Evaluate it at the base hyperparameter; autograd then differentiates
        functions of the optimum through it (reverse and forward mode, first
        order), with :math:`d\hat\theta/d\epsilon` as its Jacobian.
        """
        return self.get_input_par_function()
