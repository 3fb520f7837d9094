r"""Checking that a proposed optimum really is one.

Every sensitivity computation in refold differentiates the first-order
condition :math:`\nabla_\theta f(\hat\theta, \epsilon_0) = 0`.  If the point
handed in is not an optimum, the answer is the sensitivity of some other,
unrelated point, and nothing downstream can tell.  This module measures how
far a point is from the optimum in the units that matter: the size of the
Newton step :math:`H^{-1} \nabla f` that would carry it there.

Why the Newton step and not the gradient norm
----------------------------------------------
A gradient norm depends on the scaling of the objective: multiply a log
likelihood by the number of observations and the gradient grows with it,
while the optimum does not move.  The Newton step is invariant to that
scaling and is measured in the units of the parameter itself: it is (to
second order) the distance to the optimum.  The check is therefore

.. math::

    \| H^{-1} \nabla f \|_\infty \le \mathrm{tol} \cdot
        \max(1, \|\hat\theta\|_\infty),

that is, an absolute tolerance for parameters of size at most one and a
relative tolerance for larger ones.

The default tolerance, ``DEFAULT_OPTIMUM_TOL = 1e-6``
-----------------------------------------------------
If :math:`\hat\theta` is off by :math:`\delta`, the sensitivity
:math:`d\hat\theta/d\epsilon` computed there is off by
:math:`O(\|\delta\|)` (through the third derivatives of ``f``).  A relative
step of :math:`10^{-6}` therefore keeps the first-order sensitivity correct
to about six significant digits, far below the error of any linear or
low-order Taylor approximation at a useful perturbation size.  It is also
loose enough that any properly converged optimiser passes (``trust-ncg`` or
Newton with ``gtol`` around :math:`10^{-8}`, BFGS with its default ``gtol``
on a well-scaled problem), so the check only fires on points that are genuinely
not optima, e.g. an optimiser stopped by its iteration limit.  It is not
:math:`\sqrt{\varepsilon}` because quasi-Newton optimisers rarely get that
close and the extra digits buy nothing for sensitivity.
"""
from __future__ import annotations

from typing import Callable, NamedTuple, Optional

import numpy as np

__all__ = [
    "DEFAULT_OPTIMUM_TOL",
    "OptimumReport",
    "check_optimum",
    "validate_optimum",
]

#: Default tolerance of the scale-aware Newton-step check (see module docs).
DEFAULT_OPTIMUM_TOL: float = 1e-6


class OptimumReport(NamedTuple):
    r"""How far a proposed optimum is from the true one.

    Attributes
    ----------
    step_norm : float
        :math:`\|H^{-1}\nabla f\|_\infty`, the size of the Newton step to the
        optimum (``nan`` when it could not be computed).
    grad_norm : float
        :math:`\|\nabla f\|_\infty` (``nan`` when the gradient is not finite).
    scale : float
        :math:`\max(1, \|\hat\theta\|_\infty)`.
    tol : float
        The tolerance used; the point passes when
        ``step_norm <= tol * scale``.
    """

    step_norm: float
    grad_norm: float
    scale: float
    tol: float

    @property
    def threshold(self) -> float:
        """The largest Newton step accepted, ``tol * scale``."""
        return self.tol * self.scale

    @property
    def ok(self) -> bool:
        """Whether the point passes the check (``False`` for any NaN)."""
        return bool(np.isfinite(self.step_norm)
                    and self.step_norm <= self.threshold)


def _check_tol(tol: Optional[float]) -> float:
    if tol is None:
        return DEFAULT_OPTIMUM_TOL
    try:
        tol_f = float(tol)
    except (TypeError, ValueError):
        raise TypeError(
            f"tol must be a positive finite number or None; got {tol!r}"
        ) from None
    if not np.isfinite(tol_f) or tol_f <= 0:
        raise ValueError(
            f"tol must be a positive finite number or None; got {tol!r}")
    return tol_f


def _as_float_vector(value, name: str) -> np.ndarray:
    arr = np.asarray(value)
    if arr.dtype == object or not (
            np.issubdtype(arr.dtype, np.number)
            or np.issubdtype(arr.dtype, np.bool_)):
        raise TypeError(
            f"{name} must be a numeric array; got dtype {arr.dtype}")
    if np.iscomplexobj(arr):
        raise TypeError(f"{name} must be real; got dtype {arr.dtype}")
    if not np.issubdtype(arr.dtype, np.floating):
        arr = arr.astype(np.float64)
    return arr.ravel()


def check_optimum(grad_at_opt, solver: Callable[[np.ndarray], np.ndarray],
                  opt_par, *, tol: Optional[float] = None) -> OptimumReport:
    r"""Measure the Newton step from a proposed optimum, without raising.

    Parameters
    ----------
    grad_at_opt : array_like, shape (D,)
        The gradient of the objective (or the value of the estimating
        equation) at ``opt_par``.
    solver : callable
        ``solver(b)`` returns :math:`H^{-1} b` for the Hessian (or Jacobian)
        :math:`H` at ``opt_par``.
    opt_par : array_like, shape (D,)
        The proposed optimum.
    tol : float, optional
        Tolerance of the scale-aware check; ``None`` means
        :data:`DEFAULT_OPTIMUM_TOL`.

    Returns
    -------
    report : OptimumReport
        ``report.ok`` says whether the point passes.  A non-finite gradient
        gives ``grad_norm = step_norm = nan`` without calling ``solver``.

    Raises
    ------
    ValueError
        If ``grad_at_opt`` and ``opt_par`` differ in size, ``opt_par`` is not
        finite or ``tol`` is not positive; errors raised by ``solver`` (e.g. an
        indefinite Hessian) propagate.
    """
    tol_f = _check_tol(tol)
    par = _as_float_vector(opt_par, "opt_par")
    grad = _as_float_vector(grad_at_opt, "grad_at_opt")
    if grad.shape != par.shape:
        raise ValueError(
            f"grad_at_opt must have the size of opt_par ({par.size}); "
            f"got {grad.size}")
    if not np.all(np.isfinite(par)):
        raise ValueError("opt_par must be finite; got non-finite entries at "
                         f"indices {np.flatnonzero(~np.isfinite(par))[:10]}")
    scale = max(1.0, float(np.max(np.abs(par), initial=0.0)))
    if not np.all(np.isfinite(grad)):
        return OptimumReport(np.nan, np.nan, scale, tol_f)
    grad_norm = float(np.max(np.abs(grad), initial=0.0))
    step = np.asarray(solver(grad), dtype=float)
    if step.size != grad.size:
        raise ValueError(
            f"solver must return an array of size {grad.size} for a vector "
            f"of size {grad.size}; got size {step.size}")
    step_norm = float(np.max(np.abs(step), initial=0.0))
    if not np.isfinite(step_norm):
        step_norm = np.nan
    return OptimumReport(step_norm, grad_norm, scale, tol_f)


def validate_optimum(grad_at_opt, solver: Callable[[np.ndarray], np.ndarray],
                     opt_par, *, tol: Optional[float] = None,
                     name: str = "opt_par",
                     opt_out: str = "validate_optimum=False") -> float:
    r"""Raise unless ``opt_par`` is an optimum; return the Newton-step size.

    The check passes when the gradient is finite and

    .. math::

        \| H^{-1} \nabla f \|_\infty \le \mathrm{tol} \cdot
            \max(1, \|\mathrm{opt\_par}\|_\infty).

    Parameters
    ----------
    grad_at_opt : array_like, shape (D,)
        The gradient of the objective (or the estimating equation) at
        ``opt_par``.
    solver : callable
        ``solver(b)`` returns :math:`H^{-1} b` at ``opt_par``.
    opt_par : array_like, shape (D,)
        The proposed optimum.
    tol : float, optional
        Tolerance; ``None`` means :data:`DEFAULT_OPTIMUM_TOL` (``1e-6``).
    name : str, optional
        The caller's name for ``opt_par``, used in messages.
    opt_out : str, optional
        How the caller's user switches the check off, quoted in messages.

    Returns
    -------
    step_norm : float
        :math:`\| H^{-1} \nabla f \|_\infty`.

    Raises
    ------
    ValueError
        If the gradient is not finite (NaN fails), or the Newton step is
        larger than the tolerance.  The message gives the step size, the
        gradient size, the tolerance and how to re-optimise or opt out.

    Examples
    --------
    >>> import numpy as np
    >>> h = np.diag([2.0, 4.0])
    >>> solver = lambda b: np.linalg.solve(h, b)
    >>> validate_optimum(np.array([1e-9, 0.0]), solver, np.array([1.0, 2.0]))
    5e-10
    """
    report = check_optimum(grad_at_opt, solver, opt_par, tol=tol)
    advice = (f"Re-optimise more tightly (for instance with "
              f"refold.sensitivity.refit.refit, or a smaller gtol), "
              f"or pass {opt_out} to skip this check.")
    if np.isnan(report.grad_norm):
        grad = np.asarray(grad_at_opt, dtype=float).ravel()
        bad = np.flatnonzero(~np.isfinite(grad))
        raise ValueError(
            f"{name} is not an optimum: the gradient there is not finite "
            f"(entries {bad[:10].tolist()} are NaN or inf). {advice}")
    if not report.ok:
        if np.isnan(report.step_norm):
            what = "the Newton step H^-1 grad is not finite"
        else:
            what = (f"the Newton step H^-1 grad has max-abs size "
                    f"{report.step_norm:.3g}")
        raise ValueError(
            f"{name} is not an optimum: {what} (gradient max-abs size "
            f"{report.grad_norm:.3g}), larger than the tolerance "
            f"tol * max(1, max|{name}|) = {report.tol:.3g} * "
            f"{report.scale:.3g} = {report.threshold:.3g}. {advice}")
    return report.step_norm
