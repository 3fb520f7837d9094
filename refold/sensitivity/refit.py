r"""Re-optimise an objective, to check an approximation against the truth.

A sensitivity approximation predicts where the optimum moves when a
hyperparameter changes; :func:`refit` actually moves it, to a gradient
norm of ``1e-10`` by default, with autograd derivatives.  Like every other
entry point of the sensitivity layer it takes ``solver='auto'`` by default:

* **Structured Newton** (``'auto'``, when the Hessian is small and dense,
  arrowhead or sparse).  The Hessian's structure is detected once per
  objective (:func:`~refold.sensitivity.structure.hessian_structure`,
  cached like the other entry points' and re-detected when the probe of a
  recovered Hessian contradicts it); at every iterate the Hessian is
  recovered from its colours on one recorded gradient graph and factorised
  by the structure's solver (dense Cholesky, Schur complement, sparse
  :math:`LDL^T`).  Newton steps are globalised by an Armijo line search on
  the objective while its decrease is measurable, by a gradient-norm test
  at its rounding level, and by a Levenberg--Marquardt shift where the
  Hessian is not positive definite; a NaN or infinite value at a trial
  point rejects it (the private module ``_structured_newton`` holds the
  method; ``docs/sensitivity.rst``, "Re-fitting by structure", explains
  each decision).
* **Trust region** (``'trust-ncg'``, and ``'auto'`` when the structure is
  matrix-free or dense with ``D > 200``): ``scipy.optimize.minimize`` with
  ``method='trust-ncg'`` and exact Hessian-vector products.  A trust-region
  method accepts a step only when the objective decreases measurably, so it
  stalls once the predicted decrease sinks below the rounding error of the
  objective (for an objective of size 100 that happens near a gradient norm
  of 1e-6, and scipy reports "A bad approximation caused failure to predict
  improvement").  This path therefore finishes with a few plain Newton
  steps on the gradient (solved by conjugate gradients on Hessian-vector
  products, or densely), which need no function decrease and converge
  quadratically, accepting a step only while the gradient norm falls.

The result is accurate enough to serve as the reference in tests,
documentation and users' own checks.
"""
from __future__ import annotations

from typing import Any, Callable, Mapping, Optional

import autograd
import numpy as np
import scipy

from refold.sensitivity._checks import (
    check_bool, check_choice, check_int, check_positive_float, describe_point,
    real_array, user_call)
from refold.sensitivity.hvp import dense_hessian, make_hvp_at

__all__ = ["refit", "REFIT_SOLVERS"]

#: The values of ``refit``'s ``solver``.
REFIT_SOLVERS = ("auto", "trust-ncg")
#: ``solver_options`` keys of ``solver='auto'``.
_AUTO_OPTIONS = ("structure",)


def _as_start(init_par: Any) -> np.ndarray:
    arr = real_array(init_par, "init_par")
    if arr.ndim != 1 or arr.shape[0] == 0:
        raise ValueError(f"init_par must be a non-empty 1-d array; got shape "
                         f"{arr.shape}")
    arr = np.array(arr, dtype=np.float64)
    if not np.all(np.isfinite(arr)):
        raise ValueError("init_par must be finite; it has NaN or inf entries")
    return arr


def _guarded(objective_fun: Callable) -> tuple:
    """``(fun, scipy_fun)``: ``objective_fun`` with an exception raised
    inside it re-raised naming ``objective_fun`` and the point (autograd
    differentiates through ``fun``), and the value scipy's trust region sees,
    in which NaN is ``+inf``: a rejected step that shrinks the region (NaN
    would neither be accepted nor shrink it, and the method would stall)."""
    def fun(x, *args):
        return user_call(objective_fun, "objective_fun",
                         lambda: f"at par = {describe_point(x)}", x, *args)

    def scipy_fun(x, *args):
        value = fun(x, *args)
        return np.inf if np.isnan(value) else value
    return fun, scipy_fun


def _newton_polish(x, grad, hessp, hess, args, gtol, max_steps=20):
    """Newton steps on the gradient while its norm falls; returns (x, g, k)."""
    g = np.asarray(grad(x, *args), dtype=float)
    gnorm = np.linalg.norm(g)
    dim = x.shape[0]
    steps = 0
    for _ in range(max_steps):
        if not gnorm > gtol:
            break
        if hess is not None:
            try:
                step = np.linalg.solve(np.asarray(hess(x, *args)), -g)
            except np.linalg.LinAlgError:
                break
        else:
            import scipy.sparse.linalg   # on first use: slow to import
            op = scipy.sparse.linalg.LinearOperator(
                (dim, dim), matvec=lambda v: hessp(x, np.ravel(v), *args),
                dtype=float)
            step, _ = scipy.sparse.linalg.cg(op, -g, rtol=1e-12, atol=0.0,
                                             maxiter=10 * dim)
        x_new = x + step
        if not np.all(np.isfinite(x_new)):
            break
        g_new = np.asarray(grad(x_new, *args), dtype=float)
        gnorm_new = np.linalg.norm(g_new)
        if not gnorm_new < gnorm:
            break
        x, g, gnorm = x_new, g_new, gnorm_new
        steps += 1
    return x, g, steps


def _hvp_per_point(objective_fun: Callable) -> Callable:
    """``hessp(x, v, *args)`` that records the gradient graph once per
    point ``x`` and sweeps it backwards for every product there (the
    trust-region subproblem asks for many products at one point)."""
    cache: dict = {}

    def hessp(x, v, *args):
        x = np.asarray(x, dtype=float)
        key = (x.tobytes(), len(args))
        if cache.get("key") != key:
            cache["key"] = key
            cache["hvp"] = make_hvp_at(objective_fun, x, *args)
        return cache["hvp"](np.asarray(v, dtype=float))
    return hessp




def _trust_ncg(objective_fun, scipy_fun, x0, args, gtol, maxiter, hvp
               ) -> "scipy.optimize.OptimizeResult":
    """scipy's ``trust-ncg`` from ``x0``, then the Newton polish; raises
    ``ValueError`` when it does not reach ``gtol``."""
    import scipy.optimize  # on first use: it is slow to import
    grad = autograd.grad(objective_fun, argnum=0)
    options = dict(gtol=float(gtol), maxiter=int(maxiter))
    if hvp:
        hessp = _hvp_per_point(objective_fun)
        result = scipy.optimize.minimize(
            scipy_fun, x0, args=args, jac=grad, hessp=hessp,
            method="trust-ncg", options=options)
    else:
        def hess(x, *a):
            return dense_hessian(objective_fun, x, *a)
        result = scipy.optimize.minimize(
            scipy_fun, x0, args=args, jac=grad, hess=hess,
            method="trust-ncg", options=options)
    x = np.asarray(result.x, dtype=float)
    if np.all(np.isfinite(x)) and result.status in (0, 2):
        # 0: converged; 2: stalled at the rounding level of the objective.
        x, g, steps = _newton_polish(
            x, grad, hessp if hvp else None, None if hvp else hess, args,
            gtol)
        grad_norm = float(np.linalg.norm(g))
        fun = float(objective_fun(x, *args))
        # Polishing must not climb: the objective may rise only by rounding.
        no_climb = fun <= result.fun + 1e-10 * max(1.0, abs(result.fun))
        if grad_norm <= gtol and no_climb:
            result.x, result.jac, result.fun = x, g, fun
            result.success, result.status = True, 0
            result.newton_steps = steps
            if steps:
                result.message = (f"{result.message} Polished with {steps} "
                                  f"Newton step(s).")
            return result
    else:
        grad_norm = float(np.linalg.norm(result.jac)) \
            if result.get("jac") is not None else np.nan
    raise _not_converged(result.message, result.nit, grad_norm, gtol)


def _not_converged(message: str, nit: int, grad_norm: float, gtol: float
                   ) -> ValueError:
    return ValueError(
        f"refit did not converge: {message} (after {nit} iterations, "
        f"gradient norm {grad_norm:.3g}, gtol {gtol:.3g}). Start closer to "
        f"the optimum, raise maxiter, or loosen gtol.")


def _check_options(solver_options: Any, solver: str, dim: int) -> dict:
    from refold.sensitivity.structure import HessianStructure
    if solver_options is None:
        return {}
    if not isinstance(solver_options, Mapping):
        raise TypeError(f"solver_options must be a dict or None; got "
                        f"{type(solver_options).__name__}")
    options = dict(solver_options)
    takes = _AUTO_OPTIONS if solver == "auto" else ()
    unknown = sorted(set(options) - set(takes), key=str)
    if unknown:
        raise TypeError(f"solver_options {unknown} are not understood by "
                        f"solver={solver!r}; it takes {list(takes)}")
    structure = options.get("structure")
    if structure is not None:
        if not isinstance(structure, HessianStructure):
            raise TypeError(f"solver_options['structure'] must be a "
                            f"HessianStructure; got "
                            f"{type(structure).__name__}")
        if structure.dim != dim:
            raise ValueError(f"solver_options['structure'] is for dimension "
                             f"{structure.dim} but init_par has length "
                             f"{dim}")
    return options


def _auto_structure(raw_fun, fun, x0, args, options, hvp) -> tuple:
    """``(structure, given)`` for ``solver='auto'``."""
    from refold.sensitivity.structure import (HessianStructure,
                                              cached_structure)
    structure = options.get("structure")
    if not hvp:
        if structure is not None and structure.kind != "dense":
            raise ValueError(
                f"hvp=False asks for the dense Hessian, but "
                f"solver_options['structure'] is {structure.kind!r}; pass "
                f"one of them")
        return HessianStructure(
            "dense", x0.size, reason="hvp=False: the dense autograd Hessian",
            source="requested"), True
    if structure is not None:
        return structure, True
    return cached_structure(fun, x0, args, key=raw_fun), False


def _annotate(result, solver: str, structure, description: str):
    result.solver, result.structure = solver, structure
    result.description = description
    return result


def _auto(raw_fun, fun, scipy_fun, x0, value0, args, gtol, maxiter, hvp,
          options) -> "scipy.optimize.OptimizeResult":
    """``solver='auto'``: structured Newton, or trust-ncg (see refit)."""
    import scipy.optimize
    from refold.sensitivity._structured_newton import (
        StructuredHessians, newton_suits, structured_newton)
    structure, given = _auto_structure(raw_fun, fun, x0, args, options, hvp)
    if not newton_suits(structure):
        result = _trust_ncg(fun, scipy_fun, x0, args, gtol, maxiter, hvp)
        return _annotate(result, "trust-ncg", structure,
                         f"trust-ncg ({structure.describe()})")
    hessians = StructuredHessians(fun, args, structure, given=given,
                                  key=raw_fun)
    value_and_grad = autograd.value_and_grad(lambda x: fun(x, *args))
    g0 = np.asarray(autograd.grad(fun)(x0, *args), dtype=float)
    if not np.all(np.isfinite(g0)):
        raise ValueError(f"the gradient of objective_fun is not finite at "
                         f"init_par ({int(np.sum(~np.isfinite(g0)))} "
                         f"entries are NaN or inf)")
    out = structured_newton(value_and_grad, hessians, x0.copy(),
                            float(value0), g0, gtol=gtol, maxiter=maxiter)
    what = f"structured Newton ({hessians.structure.describe()})"
    if out.status == "converged":
        result = scipy.optimize.OptimizeResult(
            x=out.x, fun=out.fun, jac=out.jac, nit=out.nit, nfev=out.nfev,
            njev=out.nfev, nhev=out.nhev, success=True, status=0,
            message=out.message, newton_steps=out.polish_steps)
        return _annotate(result, "newton", hessians.structure, what)
    if out.status != "handoff":
        raise _not_converged(f"structured Newton: {out.message}", out.nit,
                             float(np.linalg.norm(out.jac)), gtol)
    try:
        result = _trust_ncg(fun, scipy_fun, out.x, args, gtol,
                            max(1, maxiter - out.nit), hvp)
    except ValueError as err:
        raise ValueError(f"{err} (trust-ncg took over from structured "
                         f"Newton after {out.nit} iterations: "
                         f"{out.message})") from None
    result.nit += out.nit
    result.nfev += out.nfev
    result.message = (f"{result.message} (after {out.nit} structured "
                      f"Newton iterations: {out.message})")
    return _annotate(result, "trust-ncg", hessians.structure,
                     f"{what}, handed to trust-ncg after {out.nit} "
                     f"iterations: {out.message}")


def refit(objective_fun: Callable, init_par: Any, hyper_par: Any = None, *,
          gtol: float = 1e-10, maxiter: int = 1000, hvp: bool = True,
          solver: str = "auto", solver_options: Optional[Mapping] = None
          ) -> "scipy.optimize.OptimizeResult":
    r"""Minimise ``objective_fun`` from ``init_par`` to high accuracy.

    Parameters
    ----------
    objective_fun : callable
        ``objective_fun(par)`` or, when ``hyper_par`` is given,
        ``objective_fun(par, hyper_par)``: a scalar differentiable twice by
        autograd.
    init_par : array_like, shape (D,)
        Starting point (typically the old optimum, or a sensitivity
        prediction of the new one).
    hyper_par : optional
        Passed as the second argument of ``objective_fun`` when not ``None``.
    gtol : float, optional
        Stop when the gradient's 2-norm is below ``gtol`` (default
        ``1e-10``: tight, because the result is meant as a reference).
    maxiter : int, optional
        Iteration limit (default 1000): Newton iterations (one Hessian
        each), plus trust-region iterations when trust-ncg runs.
    hvp : bool, optional
        ``True`` (default): the Hessian as the structure calls for it
        (``'auto'``) or as Hessian-vector products (``'trust-ncg'``).
        ``False``: the dense autograd Hessian, for small problems (with
        ``'auto'``: the structure is taken as dense without detection).
    solver : {'auto', 'trust-ncg'}, optional
        ``'auto'`` (default): Newton steps on the structured Hessian when
        the structure is arrowhead, sparse, or dense with ``D <= 200``;
        trust-ncg otherwise (matrix-free, or dense and larger, where ``D``
        reverse passes per Hessian cost more than conjugate gradients).
        ``'trust-ncg'``: scipy's trust region on Hessian-vector products
        with the Newton polish, always.
    solver_options : dict, optional
        For ``'auto'``: ``{'structure': HessianStructure}`` reuses a
        structure (from :func:`~refold.sensitivity.structure.
        hessian_structure` or an entry point's ``.structure``) instead of
        the cached or detected one; a given structure is never re-detected.
        ``'trust-ncg'`` takes no options.

    Returns
    -------
    result : scipy.optimize.OptimizeResult
        As from ``scipy.optimize.minimize``: ``x`` (the optimum, a new
        array), ``fun``, ``jac``, ``nit``, ``nfev``, ``success``,
        ``message``, plus

        * ``newton_steps``: steps accepted without a decrease of the
          objective, on the gradient-norm test at its rounding level (the
          polish of either method);
        * ``solver``: the method that finished, ``'newton'`` or
          ``'trust-ncg'``;
        * ``structure``: the
          :class:`~refold.sensitivity.structure.HessianStructure` used
          (``None`` for ``solver='trust-ncg'``);
        * ``description``: one line saying what was done and why.

    Notes
    -----
    Structured Newton (``'auto'``): the step is
    :math:`-(H + \lambda I)^{-1}\nabla f` with :math:`\lambda = 0` when the
    structure's solver factorises :math:`H` as positive definite, else a
    Levenberg--Marquardt shift raised tenfold from
    :math:`10^{-8}\max|H_{ij}|` until it does.  While the model decrease
    exceeds the objective's rounding level :math:`10^4\varepsilon
    \max(1,|f|)`, an Armijo line search (halving) accepts a step; below
    it, the undamped step is accepted when the gradient norm falls (the
    objective cannot tell better from worse there).  If the line search
    finds no measurable decrease, the Hessian is indefinite at the rounding
    level (a saddle point is near) or no shift works, the iterate is handed
    to trust-ncg, which follows negative curvature; ``description`` says
    so.  ``'auto'`` and ``'trust-ncg'`` reach the same optimum to about
    ``gtol`` times the inverse Hessian's norm.

    Convergence means a gradient norm below ``gtol``; like any first-order
    test it does not certify a minimum (a start exactly at a saddle point
    stays there).  Checking the result with
    ``HyperparameterSensitivityLinearApproximation`` (whose solver rejects
    an indefinite Hessian) covers that.

    A NaN value at a trial point is a rejected step, like ``+inf``: the
    line search halves the step (the trust region shrinks) and the
    optimiser continues from the last accepted point.

    Raises
    ------
    ValueError
        When ``init_par`` is not a finite 1-d array, the objective (or, for
        ``'auto'``, its gradient) is not finite at ``init_par``, the
        optimiser does not converge (the message gives its reason and the
        final gradient norm), ``solver`` is unknown (the message lists the
        valid ones), or a given structure does not fit.
    ValueError or TypeError
        When ``objective_fun`` raises: the message names ``objective_fun``
        and the point where it failed (the original exception is chained).
    TypeError
        For a ``solver`` that is not a string, or ``solver_options`` that
        the solver does not take.

    Examples
    --------
    >>> import autograd.numpy as anp, numpy as np
    >>> res = refit(lambda x, a: anp.sum((x - a) ** 2), np.zeros(3), 2.0)
    >>> np.round(res.x, 8)
    array([2., 2., 2.])
    >>> res.solver, res.description
    ('newton', 'structured Newton (dense: D = 3; 3 reverse passes; dense Cholesky (D = 3 <= 200))')
    """
    if not callable(objective_fun):
        raise TypeError(f"objective_fun must be callable; got "
                        f"{type(objective_fun).__name__}")
    x0 = _as_start(init_par)
    gtol = check_positive_float(gtol, "gtol")
    check_int(maxiter, "maxiter", minimum=1, type_error=ValueError)
    hvp = check_bool(hvp, "hvp")
    solver = check_choice(solver, "solver", REFIT_SOLVERS)
    options = _check_options(solver_options, solver, x0.size)
    args = () if hyper_par is None else (hyper_par,)
    raw_fun = objective_fun
    objective_fun, scipy_fun = _guarded(objective_fun)

    value0 = np.asarray(objective_fun(x0, *args))
    if value0.size != 1 or not np.isfinite(value0).all():
        raise ValueError(
            f"objective_fun must return a finite scalar at init_par; got "
            f"{value0!r}")
    if solver == "auto":
        return _auto(raw_fun, objective_fun, scipy_fun, x0, value0, args,
                     gtol, int(maxiter), hvp, options)
    result = _trust_ncg(objective_fun, scipy_fun, x0, args, gtol,
                        int(maxiter), hvp)
    return _annotate(result, "trust-ncg", None, "trust-ncg with " + (
        "Hessian-vector products" if hvp else "the dense Hessian"))
