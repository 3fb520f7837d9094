"""Re-fitting at new weights for the drop-data searches (private).

A fitter moves the optimum to new observation weights (damped Newton),
gives the weight derivatives of a function of the optimum there, and makes
the final confirming fit.  Two kinds:

* :class:`LossFitter`, for a :class:`WeightSensitivity` (an objective with
  per-observation losses): Newton on the gradient with an Armijo line search
  on the objective; the Hessian by ``'auto'`` (the structure the sensitivity
  detected, reused at every point; a dense one goes through
  ``check_nonsingular`` so collinear columns are named), dense
  (``'cholesky'``, ``'lu'``, ...),
  matrix-free (``'cg'``) or arrowhead-structured (``'arrowhead'`` with
  ``local_inds``: Schur complement, for random-effects models); the final
  fit by :func:`refold.sensitivity.refit.refit`.
* :class:`MomentFitter`, for an :class:`EstimatingEquationWeights` (a sum
  of per-observation moment contributions, e.g. instrumental variables):
  Newton on the equation with a line search on half its squared norm; the
  final fit by ``scipy.optimize.root`` polished by Newton steps.
"""
from __future__ import annotations

from typing import Optional, Tuple

import autograd
import numpy as np

from refold.sensitivity._equation_solver import hessian_solver_auto
from refold.sensitivity.data_weights import WeightSensitivity
from refold.sensitivity.ee_weights import (EstimatingEquationWeights,
                                          solve_root)
from refold.sensitivity.hvp import dense_hessian, jvp_operator
from refold.sensitivity.refit import refit as _refit
from refold.sensitivity.solvers import as_solver
from refold.sensitivity.sparse_hessian import SparseBlockHessian
from refold.sensitivity.standard_errors import check_nonsingular

_ROUNDING = 1e3 * float(np.finfo(float).eps)


class _Base:
    """Damped Newton with a line search on ``merit``, shared by both."""

    def step_and_merit(self, theta, weights):          # pragma: no cover
        raise NotImplementedError

    def newton(self, theta, weights, max_iter, tol
               ) -> Tuple[np.ndarray, bool, str]:
        """Damped Newton from ``theta``; ``(theta, converged, message)``."""
        f, g = self.merit_and_slope_vector(theta, weights)
        size = np.inf
        for _ in range(max_iter):
            try:
                step = self.newton_step(theta, weights, g)
            except ValueError as err:
                return theta, False, f"Newton failed: {err}"
            size = float(np.max(np.abs(step)))
            small = size <= tol * max(1.0, float(np.max(np.abs(theta))))
            slope, t = self.slope(theta, weights, g, step), 1.0
            while True:
                new = theta + t * step
                f_new, g_new = self.merit_and_slope_vector(new, weights)
                if np.isfinite(f_new) and np.all(np.isfinite(g_new)) and \
                        f_new <= f + 1e-4 * t * slope + _ROUNDING * max(
                            1.0, abs(f)):
                    break
                t *= 0.5
                if t < 1e-10:
                    if small:
                        return theta, True, "converged"
                    return theta, False, ("the line search could not "
                                          "decrease the objective")
            theta, f, g = new, float(f_new), np.asarray(g_new, dtype=float)
            if small:
                return theta, True, "converged"
        return theta, False, (f"no convergence in {max_iter} Newton steps "
                              f"(last step {size:.3g}); the optimum may not "
                              f"exist without these observations")

    def newton_step_size(self, theta, weights) -> Tuple[float, str]:
        """The max-norm of the Newton step at ``theta`` (inf on failure)."""
        try:
            g = self.merit_and_slope_vector(theta, weights)[1]
            size = float(np.max(np.abs(self.newton_step(theta, weights, g))))
        except ValueError as err:
            return np.inf, str(err)
        return size, f"a Newton step of {size:.3g} remains"


class LossFitter(_Base):
    """For a WeightSensitivity (see the module documentation)."""

    def __init__(self, ws: WeightSensitivity, solver: str,
                 solver_options: Optional[dict]) -> None:
        if not isinstance(solver, str):
            raise TypeError(f"solver must be a solver kind string; got "
                            f"{type(solver).__name__}")
        self.ws, self.kind = ws, solver
        self.options = dict(solver_options or {})
        self.local_inds = self.structure = None
        if solver == "auto":
            # The structure the sensitivity detected (or detect it once);
            # the sparsity pattern at 0/1 weights is within it.
            structure = getattr(ws, "structure", None)
            if structure is None:
                structure = hessian_solver_auto(
                    ws.objective, ws.opt_par, (np.ones(ws.n_obs),),
                    options=self.options)[2]
            self.structure = structure
            if structure.kind == "dense":       # named collinearity errors
                self.kind = "cholesky"
            else:
                self.options["structure"] = structure
        elif solver == "arrowhead":
            if set(self.options) != {"local_inds"}:
                raise TypeError("solver='arrowhead' needs solver_options="
                                "{'local_inds': (T, m) array} and nothing "
                                "else (every other coordinate is global)")
            self.local_inds = self.options.pop("local_inds")
        self.objective = ws.objective
        self.value_and_grad = autograd.value_and_grad(ws.objective, 0)
        self.grad = autograd.grad(ws.objective, 0)
        self.n_obs, self.opt_par = ws.n_obs, ws.opt_par
        self.dim = self.opt_par.size

    def solver(self, theta, weights):
        """``b -> H^{-1} b`` at (theta, weights)."""
        if self.kind == "auto":
            return hessian_solver_auto(
                self.objective, theta, (weights,), options=self.options,
                what="the Hessian of the weighted objective")[0]
        if self.kind == "cg":
            return as_solver(self.kind, hvp=jvp_operator(
                self.grad, theta, weights), dim=self.dim, **self.options)
        if self.kind == "arrowhead":
            sbh = SparseBlockHessian(lambda t: self.objective(t, weights),
                                     self.local_inds)
            return sbh.get_arrowhead_hessian(theta, verify=False).solver()
        hess = dense_hessian(self.objective, theta, weights)
        check_nonsingular(hess, "the Hessian of the weighted objective")
        return as_solver(self.kind, hessian=hess, **self.options)

    def pullback(self, theta, weights, theta_grad):
        r""":math:`-\Psi H^{-1} c`, the weight derivatives of a function of
        the optimum with gradient ``c``."""
        v = np.asarray(self.solver(theta, weights)(theta_grad), dtype=float)
        return -np.asarray(autograd.make_jvp(self.ws.loss_terms_fun)(theta)(
            v)[1], dtype=float)

    def merit_and_slope_vector(self, theta, weights):
        f, g = self.value_and_grad(theta, weights)
        return float(f), np.asarray(g, dtype=float)

    def newton_step(self, theta, weights, g):
        return -np.asarray(self.solver(theta, weights)(g), dtype=float)

    def slope(self, theta, weights, g, step):
        return float(g @ step)

    def confirm(self, theta, weights, options):
        """``(theta, ok, message)`` of the final re-fit."""
        try:
            theta = _refit(self.objective, theta, weights,
                           **dict(options or {})).x
        except ValueError as err:
            return None, False, f"the final re-fit failed: {err}"
        return theta, True, ""


class MomentFitter(_Base):
    """For an EstimatingEquationWeights (see the module documentation)."""

    def __init__(self, ee: EstimatingEquationWeights, solver: str,
                 solver_options: Optional[dict]) -> None:
        if solver not in ("auto", "cholesky", "lu") or solver_options:
            raise TypeError("an estimating equation takes no solver options "
                            "(its Jacobian is dense and solved by LU)")
        self.ee = ee
        self.n_obs, self.opt_par = ee.n_obs, ee.opt_par
        self.dim = self.opt_par.size

    def solver(self, theta, weights):
        """``b -> J^{-T} b`` at (theta, weights) (for the pullback)."""
        jac = self.ee.jacobian(theta, weights)
        return as_solver("lu", hessian=jac.T.copy(),
                         name="the transposed Jacobian of the equation")

    def pullback(self, theta, weights, theta_grad):
        u = np.asarray(self.solver(theta, weights)(theta_grad), dtype=float)
        return -np.asarray(self.ee.moments(theta) @ u, dtype=float)

    def merit_and_slope_vector(self, theta, weights):
        g = np.asarray(self.ee.equation(theta, weights), dtype=float)
        return 0.5 * float(g @ g), g

    def newton_step(self, theta, weights, g):
        jac = self.ee.jacobian(theta, weights)
        return -np.asarray(as_solver("lu", hessian=jac, name="the Jacobian "
                                     "of the equation")(g), dtype=float)

    def slope(self, theta, weights, g, step):
        return -float(g @ g)      # d/dt 0.5|G|^2 along a Newton step

    def confirm(self, theta, weights, options):
        opts = dict(options or {})
        tol = opts.pop("xtol", 1e-12)
        if opts:
            raise TypeError(f"refit_options of an estimating equation take "
                            f"only 'xtol'; got {sorted(opts)}")
        try:
            theta = solve_root(lambda t: self.ee.equation(t, weights),
                               lambda t: self.ee.jacobian(t, weights),
                               theta, tol)
        except ValueError as err:
            return None, False, f"the final re-fit failed: {err}"
        return theta, True, ""


def make_fitter(sensitivity, solver: str, solver_options: Optional[dict]):
    """The fitter for a WeightSensitivity or EstimatingEquationWeights."""
    if isinstance(sensitivity, WeightSensitivity):
        return LossFitter(sensitivity, solver, solver_options)
    if isinstance(sensitivity, EstimatingEquationWeights):
        return MomentFitter(sensitivity, solver, solver_options)
    raise TypeError(f"sensitivity must be a WeightSensitivity or an "
                    f"EstimatingEquationWeights; got "
                    f"{type(sensitivity).__name__}")
