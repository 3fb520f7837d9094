r"""Re-optimise an objective, to check an approximation against the truth.

A sensitivity approximation predicts where the optimum moves when a
hyperparameter changes; :func:`refit` actually moves it, with a
second-order trust-region method (``scipy.optimize.minimize`` with
``method='trust-ncg'``), autograd gradients and exact Hessian-vector products.
A trust-region method accepts a step only when the objective decreases
measurably, so it stalls once the predicted decrease sinks below the
rounding error of the objective (for an objective of size 100 that happens
near a gradient norm of 1e-6, and scipy reports "A bad approximation caused
failure to predict improvement").  :func:`refit` therefore finishes with a
few plain Newton steps on the gradient (solved by conjugate gradients on
Hessian-vector products, or densely), which need no function decrease and
converge quadratically, accepting a step only while the gradient norm falls.
The result is then accurate enough to serve as the reference in tests,
documentation and users' own checks.
"""
from __future__ import annotations

from typing import Any, Callable

import autograd
import numpy as np
import scipy.sparse.linalg

from refold.sensitivity._checks import check_int, real_array
from refold.sensitivity.hvp import dense_hessian, make_hvp_at

__all__ = ["refit"]


def _as_start(init_par: Any) -> np.ndarray:
    arr = real_array(init_par, "init_par")
    if arr.ndim != 1 or arr.shape[0] == 0:
        raise ValueError(f"init_par must be a non-empty 1-d array; got shape "
                         f"{arr.shape}")
    arr = np.array(arr, dtype=np.float64)
    if not np.all(np.isfinite(arr)):
        raise ValueError("init_par must be finite; it has NaN or inf entries")
    return arr


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


def refit(objective_fun: Callable, init_par: Any, hyper_par: Any = None, *,
          gtol: float = 1e-10, maxiter: int = 1000,
          hvp: bool = True) -> "scipy.optimize.OptimizeResult":
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
        Iteration limit of the trust-region method (default 1000).
    hvp : bool, optional
        ``True`` (default): Hessian-vector products (forward-over-reverse).
        ``False``: the dense autograd Hessian, for small problems.

    Returns
    -------
    result : scipy.optimize.OptimizeResult
        As from ``scipy.optimize.minimize``: ``x`` (the optimum, a new
        array), ``fun``, ``jac``, ``nit``, ``success``, ``message``, plus
        ``newton_steps``, the number of polishing Newton steps taken.

    Notes
    -----
    Convergence means a gradient norm below ``gtol``; like any first-order
    test it does not certify a minimum (a start exactly at a saddle point
    stays there).  Checking the result with
    ``HyperparameterSensitivityLinearApproximation`` (whose solver rejects
    an indefinite Hessian) covers that.

    Raises
    ------
    ValueError
        When ``init_par`` is not a finite 1-d array, the objective is not a
        finite scalar at ``init_par``, or the optimiser does not converge
        (the message gives its reason and the final gradient norm).

    Examples
    --------
    >>> import autograd.numpy as anp, numpy as np
    >>> res = refit(lambda x, a: anp.sum((x - a) ** 2), np.zeros(3), 2.0)
    >>> np.round(res.x, 8)
    array([2., 2., 2.])
    """
    if not callable(objective_fun):
        raise TypeError(f"objective_fun must be callable; got "
                        f"{type(objective_fun).__name__}")
    x0 = _as_start(init_par)
    if not (np.isfinite(gtol) and gtol > 0):
        raise ValueError(f"gtol must be a positive number; got {gtol!r}")
    check_int(maxiter, "maxiter", minimum=1, type_error=ValueError)
    args = () if hyper_par is None else (hyper_par,)

    value0 = np.asarray(objective_fun(x0, *args))
    if value0.size != 1 or not np.isfinite(value0).all():
        raise ValueError(
            f"objective_fun must return a finite scalar at init_par; got "
            f"{value0!r}")

    import scipy.optimize  # on first use: it is slow to import
    grad = autograd.grad(objective_fun, argnum=0)
    options = dict(gtol=float(gtol), maxiter=int(maxiter))
    if hvp:
        hessp = _hvp_per_point(objective_fun)
        result = scipy.optimize.minimize(
            objective_fun, x0, args=args, jac=grad, hessp=hessp,
            method="trust-ncg", options=options)
    else:
        def hess(x, *a):
            return dense_hessian(objective_fun, x, *a)
        result = scipy.optimize.minimize(
            objective_fun, x0, args=args, jac=grad, hess=hess,
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
    raise ValueError(
        f"refit did not converge: {result.message} (after {result.nit} "
        f"iterations, gradient norm {grad_norm:.3g}, gtol {gtol:.3g}). "
        f"Start closer to the optimum, raise maxiter, or loosen gtol.")
