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
\partial\epsilon`.  ``C`` (``D x M``) is the Jacobian of
:math:`\nabla_\theta f` (or ``G``) in :math:`\epsilon`, formed by ``M``
forward passes (one per hyperparameter coordinate) when ``M <= D`` and by
one recorded evaluation and ``D`` reverse sweeps when ``M > D`` (one
hyperparameter per observation): never a dense ``D x D`` Jacobian.  ``H`` is used only through a solver, :math:`b \mapsto H^{-1}b`.

Public classes keep the names and signatures of vittles 0.173:
:class:`EstimatingEquationLinearApproximation` and
:class:`HyperparameterSensitivityLinearApproximation`.
"""
from __future__ import annotations

from typing import Callable, Mapping, Optional

import autograd
import numpy as np

from refold.sensitivity._checks import (
    as_vector as _as_vector, check_bool as _check_bool,
    check_optional_bool as _check_optional_bool, user_call as _user_call)
from refold.sensitivity._equation_solver import (
    SolverSpec, _check_solver_spec, _no_solve, _solve,
    estimating_equation_solver, objective_hessian_solver)
from refold.sensitivity._opt_function import _linear_opt_function
from refold.sensitivity.hvp import dense_hessian, get_hvp, jvp_operator
from refold.sensitivity._base_point import record_or_none, sharing
from refold.sensitivity._linear_approx_helpers import (
    _as_cross_matrix, _cross_jacobian, _scalar_valued, _where,
    objective_residual)
from refold.sensitivity.optimum import validate_optimum
from refold.sensitivity.solvers import _MATRIX_FREE_KINDS
from refold.sensitivity.structure import describe_solver

__all__ = [
    "EstimatingEquationLinearApproximation",
    "HyperparameterSensitivityLinearApproximation",
]


# ----------------------------------------------------------------------------
# Input checking
# ----------------------------------------------------------------------------


# ----------------------------------------------------------------------------
# Derivatives
# ----------------------------------------------------------------------------


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
    * :math:`\partial G/\partial\epsilon` is computed with ``min(D, M)``
      forward or reverse passes.
    """

    _names = dict(par="input_val0", hyper="hyper_val0",
                  cross="estimating_equation_jac0",
                  new_hyper="new_hyper_par_value",
                  jacobian="the Jacobian of estimating_equation",
                  opt_out="validate_solution=False", tol="solution_tol")

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
        self._symmetric = _check_optional_bool(symmetric, "symmetric")
        self._solver_options = dict(solver_options or {})
        self._solution_tol = solution_tol
        self.set_location(input_val0, hyper_val0, estimating_equation_jac0,
                          validate_solution=validate_solution,
                          solution_tol=solution_tol)

    # -- hooks shared with the optimisation subclass ------------------------
    def _vector_fun(self, par, hyper):
        return self._ee(par, hyper)

    def _base_record(self, par, hyper):
        return None   # estimating equations are not recorded jointly

    def _residual(self, par, hyper, record=None) -> np.ndarray:
        """``G`` at the base point, checked for shape."""
        residual = np.asarray(_user_call(
            self._vector_fun, "estimating_equation",
            _where(self._names, par, hyper), par, hyper),
            dtype=float)
        if residual.shape != par.shape:
            raise ValueError(
                f"estimating_equation must return an array of shape "
                f"{par.shape} (the shape of {self._names['par']}); got shape "
                f"{residual.shape}")
        return residual

    def _hyper_vector_fun(self, par, hyper):
        value = self._hyper_ee(par, hyper)
        if np.shape(value) != np.shape(par):
            name = "hyper_par_estimating_equation" \
                if self._hyper_ee is not self._ee else "estimating_equation"
            raise ValueError(
                f"{name} must return an array of shape {np.shape(par)} (the "
                f"shape of {self._names['par']}); got shape "
                f"{np.shape(value)}")
        return value

    def _matvec(self, par, hyper, jacobian) -> Callable:
        """``v -> J v`` at the base point (for the optimum check's
        conditioning estimate)."""
        if jacobian is not None:
            return lambda v: np.asarray(jacobian @ np.ravel(v))
        return jvp_operator(self._ee, par, hyper)

    def _make_solver(self, par, hyper, jacobian, spec):
        del jacobian  # an estimating equation's Jacobian is never given
        return estimating_equation_solver(
            self._ee, par, (hyper,), spec, symmetric=self._symmetric,
            options=self._solver_options, what=self._names["jacobian"])

    # -- setting the base point ----------------------------------------------
    def _set_base(self, par_value, hyper_value, jacobian, cross, validate,
                  tol, solver):
        n = self._names
        validate = _check_bool(validate, n["opt_out"].split("=")[0])
        par = _as_vector(par_value, n["par"])
        hyper = _as_vector(hyper_value, n["hyper"])
        dim = par.shape[0]
        spec = self._solver_spec if solver is None else \
            _check_solver_spec(solver, "solver")
        # Without validation, a given Hessian and cross Hessian need no
        # evaluation of the objective at all (as in vittles).
        # One recording of the objective at the base point (or None) serves
        # the optimum check, the solver's products and the cross derivative;
        # for the cross derivative alone a forward pass is cheaper.
        record = self._base_record(par, hyper) if cross is None and (
            validate or jacobian is None) else None
        with sharing(record):
            residual = self._residual(par, hyper, record) if validate \
                else None
            if validate and not np.all(np.isfinite(residual)):
                # Raises before any solve: a NaN gradient is never solved.
                validate_optimum(residual, _no_solve, par, name=n["par"],
                                 opt_out=n["opt_out"])
            solver_fun, jacobian = self._make_solver(par, hyper, jacobian,
                                                     spec)
        if validate:
            validate_optimum(residual,
                             lambda b: _solve(solver_fun, b, n["jacobian"]),
                             par,
                             tol=tol if tol is not None else
                             self._solution_tol,
                             name=n["par"], opt_out=n["opt_out"],
                             hvp=self._matvec(par, hyper, jacobian),
                             tol_name=n["tol"])
        if cross is None:
            cross = _cross_jacobian(self._hyper_vector_fun, par, hyper,
                                    n["cross"], record)
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
    @property
    def structure(self):
        """The :class:`~refold.sensitivity.structure.HessianStructure` that
        ``solver='auto'`` detected and chose from (``None`` when the caller
        chose the solver)."""
        return self._solver.info.get("structure")

    def describe(self) -> str:
        """One line: how the Hessian (or Jacobian) was formed and solved,
        and why."""
        return describe_solver(self._solver)

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
        :math:`\partial^2 f/\partial\theta\partial\epsilon`; computed when
        omitted with ``M`` forward-over-reverse passes if ``M <= D``, else
        ``D`` reverse-over-reverse sweeps.
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
    * the cross Hessian is computed with ``min(D, M)`` passes (forward
      over reverse per hyperparameter coordinate, or reverse over reverse
      per parameter coordinate), never a dense ``D x D`` Jacobian;
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
                  opt_out="validate_optimum=False", tol="grad_tol")

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
        hyper_obj = _scalar_valued(
            hyper_obj, "objective_fun" if hyper_par_objective_fun is None
            else "hyper_par_objective_fun")
        if not isinstance(factorize_hessian, (bool, np.bool_)):
            raise TypeError(f"factorize_hessian must be True or False; got "
                            f"{factorize_hessian!r}")
        self._objective_fun = objective_fun
        self._hyper_objective_given = hyper_par_objective_fun is not None
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

    def _base_record(self, par, hyper):
        if self._hyper_objective_given:
            return None
        return record_or_none(self._objective_fun, par, hyper)

    def _residual(self, par, hyper, record=None) -> np.ndarray:
        return objective_residual(self._objective_fun, self._grad,
                                  self._names, par, hyper, record)

    def _hyper_vector_fun(self, par, hyper):
        return self._hyper_grad(par, hyper)

    def _matvec(self, par, hyper, hessian) -> Callable:
        if hessian is not None:
            return lambda v: np.asarray(hessian @ np.ravel(v))
        return lambda v: self._hvp(par, np.ravel(v), hyper)

    def _make_solver(self, par, hyper, hessian, spec):
        kind = spec if spec is not None else \
            ("auto" if self._factorize else "cg")
        return objective_hessian_solver(
            self._objective_fun, par, hyper, hessian, kind,
            self._solver_options, self._names)

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

        A dense ``numpy.ndarray`` when the Hessian was formed densely (a
        small or dense problem, or ``solver='cholesky'``); a
        ``scipy.sparse`` CSR matrix when ``solver='auto'`` found it sparse
        or arrowhead (vittles always returned a dense array: call
        ``.toarray()`` if you need one).  On the matrix-free path the
        Hessian was never formed; it is then computed densely here (once,
        and cached), which costs D Hessian-vector products.
        """
        from refold.sensitivity.arrowhead import ArrowheadHessian
        if self._jacobian is None:
            self._jacobian = dense_hessian(self._objective_fun, self._par0,
                                           self._hyper0)
        if isinstance(self._jacobian, ArrowheadHessian):
            return self._jacobian.to_sparse()
        return self._jacobian

    def predict_opt_par_from_hyper_par(self, new_hyper_par_value
                                       ) -> np.ndarray:
        r"""Predict the optimum at ``new_hyper_par_value`` linearly, shape
        (D,): :meth:`predict_input_par_from_hyper_par` under vittles' name
        for optima (a scalar hyperparameter only when M is 1)."""
        return self.predict_input_par_from_hyper_par(new_hyper_par_value)

    def get_opt_par_function(self) -> Callable:
        r"""A function of the hyperparameter returning the optimum.

        Evaluate it at the base hyperparameter; autograd then differentiates
        functions of the optimum through it (reverse and forward mode, first
        order), with :math:`d\hat\theta/d\epsilon` as its Jacobian.
        """
        return self.get_input_par_function()
