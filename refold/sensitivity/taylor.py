r"""Taylor series of an optimum in a hyperparameter, to any order.

Let :math:`\hat\theta(\epsilon)` solve the estimating equation
:math:`g(\hat\theta(\epsilon), \epsilon) = 0` (for an optimisation problem
:math:`g = \partial f / \partial \theta`).  Along a direction
:math:`\Delta\epsilon` write :math:`\theta(t) = \hat\theta(\epsilon_0 +
t\Delta\epsilon)` and :math:`a_k = d^k\theta/dt^k|_{t=0}`, the ``k``-th
directional derivative of the optimum.  Differentiating
:math:`g(\theta(t), \epsilon_0 + t\Delta\epsilon) = 0` ``k`` times gives

.. math::

    H a_k = -r_k, \qquad
    r_k = \frac{d^k}{dt^k}\, g\Big(\theta_0 + \sum_{j<k} a_j \frac{t^j}{j!},
          \epsilon_0 + t\Delta\epsilon\Big)\Big|_{t=0},

with :math:`H = \partial g / \partial\theta` at :math:`(\theta_0,
\epsilon_0)`: ``a_k`` enters the ``k``-th derivative only through
:math:`H a_k`.  So one factorisation of ``H`` serves every order and every
direction, and :math:`r_k` is a single ``k``-fold nested forward-mode
derivative of a function of the scalar ``t`` (no derivative tensors).  By Faa
di Bruno's formula :math:`r_k` is the sum of the terms

.. math::

    \frac{k!}{n!\,\prod_j (j!)^{c_j} c_j!}\;
    \frac{\partial^{m+n} g}{\partial\theta^m \partial\epsilon^n}
    [\underbrace{a_1}_{c_1}, \underbrace{a_2}_{c_2}, \ldots,
     \underbrace{\Delta\epsilon}_{n}],
    \qquad n + \sum_j j c_j = k, \; m = \sum_j c_j,

other than :math:`H a_k` itself; :class:`TaylorTerm` describes one of them
and :meth:`ParametricSensitivityTaylorExpansion.print_terms` lists them.
When ``max_input_order`` / ``max_hyper_order`` declare some partial
derivatives zero, or ``forward_mode=False`` asks for dense derivative
arrays, the terms are evaluated one by one instead.

The derivatives along a direction are cached: the ``k``-th derivative along
:math:`c\,\Delta\epsilon` is :math:`c^k` times that along
:math:`\Delta\epsilon`, so evaluating at many points of one line costs one
set of derivatives.
"""
from __future__ import annotations

import math
from typing import Callable, List, Optional, Tuple, Union

import autograd
import numpy as np

from refold.sensitivity._checks import check_bool as _check_bool
from refold.sensitivity._taylor_args import (_as_real_array, _checked_matrix,
                                             _check_positive_int,
                                             _kind_solver)
from refold.sensitivity._taylor_derivatives import _OptimumDerivatives
from refold.sensitivity._taylor_report import (TaylorSeriesReport,
                                               TaylorSeriesWarning,
                                               _warn_if_diverging,
                                               build_report)
from refold.sensitivity._taylor_terms import (TaylorTerm, _mixed_partial,
                                              taylor_terms)
from refold.sensitivity._equation_solver import (hessian_solver_auto,
                                                jacobian_solver_auto)
from refold.sensitivity.hvp import (dense_hessian, dense_jacobian,
                                   jvp_operator, make_hvp_at)
from refold.sensitivity.optimum import validate_optimum as _validate_optimum
from refold.sensitivity.refit import refit as _refit
from refold.sensitivity.structure import describe_solver
from refold.sensitivity.solvers import (_MATRIX_FREE_KINDS,
                                        as_solver)

__all__ = [
    "TaylorTerm",
    "TaylorSeriesReport",
    "TaylorSeriesWarning",
    "ParametricSensitivityTaylorExpansion",
    "taylor_terms",
]

_DEFAULT_CACHE_SIZE = 64


# ----------------------------------------------------------------------------
# Validation helpers.
# ----------------------------------------------------------------------------


# ----------------------------------------------------------------------------
# The expansion.
# ----------------------------------------------------------------------------
class ParametricSensitivityTaylorExpansion:
    r"""Taylor series of the solution of an estimating equation (or an
    optimum) in a hyperparameter, to any order.

    The ``k``-th derivative of :math:`\hat\theta(\epsilon)` along
    :math:`\Delta\epsilon` solves :math:`H a_k = -r_k` with
    :math:`H = \partial g/\partial\theta` factorised once (see the module
    documentation).  Derivatives are cached per direction and scaled along
    it, and several directions are solved together.

    Parameters
    ----------
    estimating_equation : callable
        ``estimating_equation(input_par, hyper_par)`` returns a vector of
        the length of ``input_par``, zero at (``input_val0``,
        ``hyper_val0``); differentiable by autograd in forward mode to the
        order of the series.
    input_val0 : array_like, shape (D,)
        The solution (``opt_par``) at ``hyper_val0``.
    hyper_val0 : array_like
        The hyperparameter at which ``input_val0`` was found; usually of
        shape ``(M,)`` (any shape is allowed).
    order : int
        The highest order of the series, ``>= 1``.
    hess_solver : callable or str
        ``hess_solver(b)`` returns :math:`H^{-1} b` for ``b`` of shape
        ``(D,)`` (and, ideally, ``(D, k)``), or a solver kind of
        :func:`refold.sensitivity.solvers.as_solver` (``'cholesky'``,
        ``'lu'``, ``'cg'``, ...), in which case :math:`H` is formed by
        autograd (or, for ``'cg'``, only multiplied by).
    forward_mode : bool, optional
        ``True`` (default): nested forward-mode derivatives, never a dense
        derivative array.  ``False``: dense partial-derivative arrays at
        the base point, contracted term by term (only for small ``D``).
    max_input_order, max_hyper_order : int, optional
        Declare partial derivatives of ``g`` of more than this many
        :math:`\theta` (resp. :math:`\epsilon`) derivatives zero: their
        terms are skipped (vittles' semantics).  ``None`` (default): none
        are skipped.
    force : bool, optional
        Allow dense derivative arrays of more than 100,000 entries
        (``forward_mode=False`` only).
    solver_options : dict, optional
        Options of the solver kind when ``hess_solver`` is a string (e.g.
        ``on_failure='pinv'``, ``cg_opts``, ``preconditioner``).
    validate_optimum : bool, optional
        Check (default) that ``input_val0`` solves the equation, by the
        Newton-step test of :func:`refold.sensitivity.optimum.validate_optimum`.
    optimum_tol : float, optional
        Tolerance of that check (``None``: its default).
    cache_size : int, optional
        How many directions' derivatives are kept (default 64).

    Raises
    ------
    ValueError
        For an ``order`` that is not a positive integer, non-finite or
        mis-shaped inputs, an equation whose value has the wrong shape or
        is not finite, a point that is not a solution, or a solver kind
        that fails (e.g. an indefinite Hessian with ``'cholesky'``).

    Examples
    --------
    >>> import autograd.numpy as anp, numpy as np
    >>> f = lambda th, eps: anp.sum(anp.exp(th)) - (1 + eps[0]) * anp.sum(th)
    >>> taylor = ParametricSensitivityTaylorExpansion.optimization_objective(
    ...     f, np.zeros(2), np.zeros(1), order=3)
    >>> np.round(taylor.evaluate_taylor_series(np.array([0.1])), 5)
    array([0.09533, 0.09533])
    """

    @classmethod
    def optimization_objective(
            cls, objective_function: Callable, input_val0, hyper_val0,
            order: int, hess0=None, forward_mode: bool = True,
            max_input_order: Optional[int] = None,
            max_hyper_order: Optional[int] = None, force: bool = False, *,
            hess_solver: Union[str, Callable] = "auto",
            solver_options: Optional[dict] = None,
            validate_optimum: bool = True,
            optimum_tol: Optional[float] = None,
            cache_size: int = _DEFAULT_CACHE_SIZE
    ) -> "ParametricSensitivityTaylorExpansion":
        r"""The Taylor series of :math:`\hat\theta(\epsilon) =
        \mathrm{argmin}_\theta f(\theta, \epsilon)`.

        Parameters
        ----------
        objective_function : callable
            ``f(input_par, hyper_par)``, a scalar.
        hess0 : array_like, shape (D, D), optional
            The Hessian at the optimum; formed by autograd when omitted
            (unless ``hess_solver='cg'``, which only multiplies by it).
        hess_solver : str or callable, optional
            Solver kind or a ready solver, in which case ``hess0`` is not
            used.  The default ``'auto'`` detects the Hessian's structure
            (:mod:`refold.sensitivity.structure`) and chooses the solver
            from it; one factorisation serves every order and direction.
        solver_options : dict, optional
            Options of the solver kind (e.g. ``on_failure='pinv'``,
            ``cg_opts``, ``preconditioner``).
        The other parameters are those of the class.

        Raises
        ------
        ValueError
            When ``f`` is not a finite scalar at the base point, ``hess0``
            is not a finite symmetric ``(D, D)`` matrix, the Hessian is not
            positive definite, plus the errors of the class.
        """
        if not callable(objective_function):
            raise TypeError(f"objective_function must be callable; got "
                            f"{type(objective_function).__name__}")
        par0 = _as_real_array(input_val0, "input_val0")
        hyper0 = _as_real_array(hyper_val0, "hyper_val0")
        value = np.asarray(objective_function(par0, hyper0))
        if value.size != 1 or not np.all(np.isfinite(value)):
            raise ValueError(
                f"objective_function must return a finite scalar at "
                f"(input_val0, hyper_val0); got shape {value.shape} "
                f"value {value.ravel()[:3]}")
        grad = autograd.grad(objective_function, argnum=0)
        solver = hess_solver
        options = dict(solver_options or {})
        if options and not isinstance(hess_solver, str):
            raise TypeError("solver_options can only be used with a solver "
                            "kind string as hess_solver")
        if hess_solver == "auto":
            solver, _, _ = hessian_solver_auto(
                objective_function, par0, (hyper0,), hessian=hess0,
                options=options, name="hess0",
                what="the Hessian of objective_function")
            options = {}
        elif isinstance(hess_solver, str):
            if hess0 is not None:
                hess = _as_real_array(hess0, "hess0")
                if hess.shape != (par0.size, par0.size):
                    raise ValueError(
                        f"hess0 must have shape ({par0.size}, {par0.size}); "
                        f"got {hess.shape}")
                solver = _kind_solver(hess_solver, "hess0", options,
                                      hessian=hess)
            elif hess_solver in _MATRIX_FREE_KINDS:
                # Products on one recorded gradient graph.
                solver = _kind_solver(
                    hess_solver, "the Hessian of objective_function", options,
                    hvp=make_hvp_at(objective_function, par0, hyper0),
                    dim=par0.size)
                options = {}
            else:
                what = "the Hessian of objective_function"
                hessian = _checked_matrix(
                    dense_hessian(objective_function, par0, hyper0), par0, what)
                solver = _kind_solver(hess_solver, what, options,
                                      hessian=hessian)
                options = {}
        taylor = cls(grad, par0, hyper0, order, solver,
                     forward_mode=forward_mode,
                     max_input_order=max_input_order,
                     max_hyper_order=max_hyper_order, force=force,
                     solver_options=options if isinstance(solver, str)
                     else None,
                     validate_optimum=validate_optimum,
                     optimum_tol=optimum_tol, cache_size=cache_size)
        taylor._objective_function = objective_function
        return taylor

    def __init__(self, estimating_equation: Callable, input_val0,
                 hyper_val0, order: int,
                 hess_solver: Union[str, Callable],
                 forward_mode: bool = True,
                 max_input_order: Optional[int] = None,
                 max_hyper_order: Optional[int] = None,
                 force: bool = False, *,
                 solver_options: Optional[dict] = None,
                 validate_optimum: bool = True,
                 optimum_tol: Optional[float] = None,
                 cache_size: int = _DEFAULT_CACHE_SIZE) -> None:
        if not callable(estimating_equation):
            raise TypeError(f"estimating_equation must be callable; got "
                            f"{type(estimating_equation).__name__}")
        self._order = _check_positive_int(order, "order")
        self._max_input_order = None if max_input_order is None else \
            _check_positive_int(max_input_order, "max_input_order")
        self._max_hyper_order = None if max_hyper_order is None else \
            _check_positive_int(max_hyper_order, "max_hyper_order")
        self._forward_mode = _check_bool(forward_mode, "forward_mode")
        force = _check_bool(force, "force")
        self._cache_size = _check_positive_int(cache_size, "cache_size")
        par0 = _as_real_array(input_val0, "input_val0")
        if par0.ndim != 1 or par0.size == 0:
            raise ValueError(f"input_val0 must be a non-empty 1-d array; got "
                             f"shape {par0.shape}")
        hyper0 = _as_real_array(hyper_val0, "hyper_val0")
        self._input_val0, self._hyper_val0 = par0, hyper0
        self._ee = estimating_equation
        self._objective_function = None
        ee0 = self._eval_ee(par0, hyper0, "at (input_val0, hyper_val0)")

        options = dict(solver_options or {})
        if isinstance(hess_solver, str):
            what = "the Jacobian of estimating_equation"
            if hess_solver == "auto":
                hess_solver = jacobian_solver_auto(
                    estimating_equation, par0, (hyper0,), options=options,
                    what=what)[0]
            elif hess_solver in _MATRIX_FREE_KINDS:
                matvec = jvp_operator(estimating_equation, par0, hyper0)
                hess_solver = _kind_solver(hess_solver, what, options,
                                           hvp=matvec, dim=par0.size)
            else:
                jacobian = _checked_matrix(dense_jacobian(
                    estimating_equation, par0, hyper0), par0, what)
                hess_solver = _kind_solver(hess_solver, what, options,
                                           hessian=jacobian)
        elif not callable(hess_solver):
            raise TypeError(f"hess_solver must be a callable solver or a "
                            f"solver kind string; got "
                            f"{type(hess_solver).__name__}")
        elif options:
            raise TypeError("solver_options can only be used with a solver "
                            "kind string as hess_solver")
        #: The solver ``b -> H^{-1} b`` shared by every order and direction
        #: (a user callable is wrapped to validate its input and output).
        self.hess_solver = as_solver(hess_solver, dim=par0.size)
        if _check_bool(validate_optimum, "validate_optimum"):
            _validate_optimum(ee0, self._solve, par0, tol=optimum_tol,
                              name="input_val0", tol_name="optimum_tol",
                              hvp=jvp_operator(estimating_equation, par0,
                                               hyper0))

        self._derivs = _OptimumDerivatives(
            estimating_equation, par0, hyper0, self._solve, self._order,
            max_input_order=self._max_input_order,
            max_hyper_order=self._max_hyper_order,
            forward_mode=self._forward_mode, force=force,
            cache_size=self._cache_size)
        self._terms = self._derivs.terms

    # ------------------------------------------------------------------ utils
    def __repr__(self) -> str:
        return (f"ParametricSensitivityTaylorExpansion(order={self._order}, "
                f"dim={self._input_val0.size}, "
                f"hyper_shape={self._hyper_val0.shape}, "
                f"forward_mode={self._forward_mode})")

    @property
    def structure(self):
        """The :class:`~refold.sensitivity.structure.HessianStructure`
        ``'auto'`` chose from (``None`` when the caller chose the
        solver)."""
        return self.hess_solver.info.get("structure")

    def describe(self) -> str:
        """One line: how the Hessian was formed and solved, and why."""
        return describe_solver(self.hess_solver)

    def get_max_order(self) -> int:
        """The highest order of the series (the ``order`` argument)."""
        return self._order

    def clear_cache(self) -> None:
        """Forget every cached direction."""
        self._derivs.clear()

    def _eval_ee(self, par, hyper, where: str) -> np.ndarray:
        value = np.asarray(self._ee(par, hyper))
        if value.shape != self._input_val0.shape:
            raise ValueError(
                f"estimating_equation must return an array of the shape of "
                f"input_val0, {self._input_val0.shape}; got {value.shape} "
                f"{where}")
        if not np.all(np.isfinite(value)):
            raise ValueError(f"estimating_equation is not finite {where}")
        return value

    def _solve(self, rhs: np.ndarray) -> np.ndarray:
        """``H^{-1} rhs`` for a vector or a (D, k) matrix."""
        return np.asarray(self.hess_solver(rhs))

    def _check_max_order(self, max_order) -> int:
        if max_order is None:
            return self._order
        max_order = _check_positive_int(max_order, "max_order")
        if max_order > self._order:
            raise ValueError(f"max_order must be at most the order of the "
                             f"expansion, {self._order}; got {max_order}")
        return max_order

    def _as_directions(self, value, name: str, subtract: bool):
        """``(n, *hyper_shape)`` array of directions and whether batched."""
        arr = _as_real_array(value, name)
        shape = self._hyper_val0.shape
        if arr.shape == shape:
            arr, batched = arr[None], False
        elif arr.ndim == len(shape) + 1 and arr.shape[1:] == shape:
            batched = True
        else:
            raise ValueError(
                f"{name} must have the shape of hyper_val0, {shape}, or "
                f"(n_directions,) + {shape} for several directions; got "
                f"{arr.shape}")
        if subtract:
            arr = arr - self._hyper_val0
        return arr, batched

    # ------------------------------------------------------------ derivatives
    # ---------------------------------------------------------------- public
    def evaluate_input_derivs(self, dhyper, max_order: Optional[int] = None
                              ) -> List[np.ndarray]:
        r"""The directional derivatives :math:`a_k = d^k\hat\theta[\Delta
        \epsilon]`, ``k = 1..max_order``.

        Parameters
        ----------
        dhyper : array_like
            The direction :math:`\Delta\epsilon`, of the shape of
            ``hyper_val0``, or ``(n_dir,) + hyper_val0.shape`` for several.
        max_order : int, optional
            Highest order (default: the expansion's ``order``).

        Returns
        -------
        derivs : list of numpy.ndarray
            ``derivs[k-1]`` of shape ``(D,)`` (or ``(n_dir, D)``).
        """
        max_order = self._check_max_order(max_order)
        dirs, batched = self._as_directions(dhyper, "dhyper", False)
        derivs = self._derivs.derivatives(dirs, max_order)
        return [d if batched else d[0] for d in derivs]

    def evaluate_taylor_series_terms(self, new_hyper_val,
                                     add_offset: bool = True,
                                     max_order: Optional[int] = None,
                                     sum_terms: bool = False):
        r"""The terms :math:`[\theta_0, a_1, a_2/2!, \ldots, a_K/K!]`.

        Parameters
        ----------
        new_hyper_val : array_like
            Hyperparameter (shape of ``hyper_val0``, or ``(n_dir,) +`` that).
        add_offset : bool, optional
            Whether the zeroth term is ``input_val0`` (default) or zeros.
        max_order : int, optional
            ``K`` (default: the expansion's ``order``).
        sum_terms : bool, optional
            ``False`` (default, as vittles): return the list of terms;
            ``True``: their sum.

        Returns
        -------
        terms : list of numpy.ndarray or numpy.ndarray
            ``K + 1`` arrays of shape ``(D,)`` (or ``(n_dir, D)``), or their
            sum.
        """
        max_order = self._check_max_order(max_order)
        add_offset = _check_bool(add_offset, "add_offset")
        sum_terms = _check_bool(sum_terms, "sum_terms")
        dirs, batched = self._as_directions(new_hyper_val, "new_hyper_val",
                                            True)
        derivs = self._derivs.derivatives(dirs, max_order)
        offset = np.broadcast_to(self._input_val0, derivs.shape[1:]).copy() \
            if add_offset else np.zeros(derivs.shape[1:])
        terms = [offset] + [derivs[k - 1] / math.factorial(k)
                            for k in range(1, max_order + 1)]
        if not batched:
            terms = [t[0] for t in terms]
        return np.sum(terms, axis=0) if sum_terms else terms

    def evaluate_taylor_series(self, new_hyper_val, add_offset: bool = True,
                               max_order: Optional[int] = None,
                               sum_terms: bool = True, *,
                               return_report: bool = False):
        r"""The Taylor-series prediction of :math:`\hat\theta(\epsilon_{new})`.

        Warns (:class:`TaylorSeriesWarning`) when the terms stop shrinking.

        Parameters
        ----------
        new_hyper_val : array_like
            Hyperparameter (shape of ``hyper_val0``, or ``(n_dir,) +`` that
            to predict several at once).
        add_offset : bool, optional
            Include ``input_val0`` (default), else predict the change.
        max_order : int, optional
            Order of the series (default: the expansion's ``order``).
        sum_terms : bool, optional
            ``True`` (default): the sum, shape ``(D,)`` (or ``(n_dir, D)``).
            ``False``: the terms stacked, shape ``(K + 1, D)`` (or
            ``(K + 1, n_dir, D)``), offset first.
        return_report : bool, optional
            Also return a :class:`TaylorSeriesReport` (costs one evaluation
            of the estimating equation and one solve per direction).

        Returns
        -------
        prediction : numpy.ndarray
        report : TaylorSeriesReport
            Only when ``return_report``.
        """
        max_order = self._check_max_order(max_order)
        sum_terms = _check_bool(sum_terms, "sum_terms")
        return_report = _check_bool(return_report, "return_report")
        terms = self.evaluate_taylor_series_terms(new_hyper_val, add_offset,
                                                  max_order)
        stacked = np.stack(terms)
        _warn_if_diverging(stacked, self._input_val0)
        value = np.sum(stacked, axis=0) if sum_terms else stacked
        if not return_report:
            return value
        return value, self.diagnose(new_hyper_val, max_order)

    def diagnose(self, new_hyper_val, max_order: Optional[int] = None, *,
                 refit: bool = False, refit_options: Optional[dict] = None
                 ) -> TaylorSeriesReport:
        r"""Report the term sizes, the residual of the estimating equation
        at the prediction and (optionally) the error against a re-fit.

        Parameters
        ----------
        new_hyper_val : array_like
            As in :meth:`evaluate_taylor_series`.
        max_order : int, optional
            Order of the series (default: the expansion's ``order``).
        refit : bool, optional
            Also re-optimise with :func:`refold.sensitivity.refit.refit`,
            started at the prediction (only for expansions built by
            :meth:`optimization_objective`).
        refit_options : dict, optional
            Keyword arguments of ``refit``.

        Returns
        -------
        report : TaylorSeriesReport
        """
        max_order = self._check_max_order(max_order)
        refit = _check_bool(refit, "refit")
        if refit_options is not None and not isinstance(refit_options, dict):
            raise TypeError(f"refit_options must be a dict or None; got "
                            f"{type(refit_options).__name__}")
        new, batched = self._as_directions(new_hyper_val, "new_hyper_val",
                                           False)
        stacked = np.stack(self.evaluate_taylor_series_terms(
            new if batched else new[0], True, max_order))
        if refit and self._objective_function is None:
            raise ValueError(
                "refit=True needs the objective function: build the "
                "expansion with ParametricSensitivityTaylorExpansion."
                "optimization_objective")
        opts = dict(refit_options or {})
        refit_fun = (lambda p, h: _refit(self._objective_function, p, h,
                                         **opts).x) if refit else None
        return build_report(
            stacked, new, batched, max_order, self._input_val0,
            lambda p, h: self._eval_ee(p, h, "at the Taylor prediction"),
            self._solve, refit_fun)

    def get_terms(self, k: Optional[int] = None):
        """The :class:`TaylorTerm` s of order ``k`` (a tuple), or of every
        order (a list of tuples) when ``k`` is ``None``."""
        if k is None:
            return list(self._terms)
        return self._terms[self._check_order_arg(k) - 1]

    def _check_order_arg(self, k) -> int:
        k = _check_positive_int(k, "k")
        if k > self._order:
            raise ValueError(f"k must be at most the order of the expansion, "
                             f"{self._order}; got {k}")
        return k

    def evaluate_terms(self, dhyper, k: int
                       ) -> List[Tuple[TaylorTerm, np.ndarray]]:
        r"""The value of every term of the ``k``-th derivative along
        ``dhyper`` (one direction), the solved term :math:`H a_k` included;
        they sum to zero.  Each is evaluated by nested forward-mode
        derivatives, independently of the fast path.

        Returns
        -------
        values : list of (TaylorTerm, numpy.ndarray)
        """
        k = self._check_order_arg(k)
        dirs, batched = self._as_directions(dhyper, "dhyper", False)
        if batched:
            raise ValueError("dhyper must be a single direction of the shape "
                             f"of hyper_val0, {self._hyper_val0.shape}; got "
                             f"{dirs.shape}")
        derivs = [d[0] for d in self._derivs.derivatives(dirs, k)]
        out = []
        for term in self._terms[k - 1]:
            dirs_k = [derivs[j - 1] for j in term.input_derivative_orders]
            value = _mixed_partial(self._ee, self._input_val0,
                                   self._hyper_val0, dirs_k, dirs[0],
                                   term.hyper_order)
            out.append((term, term.coefficient * np.asarray(value)))
        return out

    def print_terms(self, k: Optional[int] = None) -> None:
        """Print the terms of the derivative of order ``k`` (all orders when
        ``k`` is ``None``); the last of each order is the one solved for."""
        orders = range(1, self._order + 1) if k is None else \
            [self._check_order_arg(k)]
        for order in orders:
            print(f"\nTerms for order {order}:")
            for term in self._terms[order - 1]:
                print(term)


