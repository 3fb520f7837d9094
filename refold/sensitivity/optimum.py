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
    #: The tolerance asked for (``tol`` is ``max(requested_tol, floors)``).
    requested_tol: float = np.nan
    #: The floor from the precision of ``opt_par`` (``2 eps`` of its
    #: precision: float32-rounded values get ``2 * 2**-23``).
    precision_floor: float = 0.0
    #: The floor from the conditioning of the Hessian (``8 eps cond``,
    #: ``cond`` estimated by one product and one solve), or 0 when not
    #: estimated.
    conditioning_floor: float = 0.0

    @property
    def threshold(self) -> float:
        """The largest Newton step accepted, ``tol * scale``."""
        return self.tol * self.scale

    @property
    def ok(self) -> bool:
        """Whether the point passes the check (``False`` for any NaN)."""
        return bool(np.isfinite(self.step_norm)
                    and self.step_norm <= self.threshold)


def _check_tol(tol: Optional[float], name: str = "tol") -> float:
    if tol is None:
        return DEFAULT_OPTIMUM_TOL
    if isinstance(tol, (bool, np.bool_, str)):
        raise TypeError(
            f"{name} must be a positive finite number or None; got {tol!r}")
    try:
        tol_f = float(tol)
    except (TypeError, ValueError):
        raise TypeError(
            f"{name} must be a positive finite number or None; got {tol!r}"
        ) from None
    if not np.isfinite(tol_f) or tol_f <= 0:
        raise ValueError(
            f"{name} must be a positive finite number or None; got {tol!r}")
    return tol_f


def _input_eps(par: np.ndarray) -> float:
    """The precision the optimum came in: its dtype's ``eps`` or, for
    float64 values that are all exactly float32 numbers (an optimum saved
    or computed in single precision), float32's."""
    if par.dtype != np.float64:
        return float(np.finfo(par.dtype).eps)
    single = par.astype(np.float32).astype(np.float64)
    # Exactly float32, and not merely "round" numbers (0, 1, 0.5, ...: any
    # value with a short mantissa is float32-exact; those that need more
    # than float16's 11 bits are the trace of float32 rounding).
    if np.all(single == par) and np.any(
            par.astype(np.float16).astype(np.float64) != par):
        return float(np.finfo(np.float32).eps)
    return float(np.finfo(np.float64).eps)


def _conditioning(hvp: Callable, solver: Callable, dim: int) -> float:
    r"""A cheap estimate of :math:`\kappa_\infty(H)`: with a fixed
    :math:`\pm 1` vector ``z``, :math:`\|Hz\|_\infty \|H^{-1}z\|_\infty`
    (one product, one solve).  It under-estimates by at most the factor
    by which ``z`` misses the extreme directions; the floor built on it
    has a factor 8 of slack (measured: at cond(H) = 1e12 the step at
    an exact optimum was 15 times below eps cond(H))."""
    z = np.where(np.random.default_rng(0).random(dim) < 0.5, -1.0, 1.0)
    hz = np.asarray(hvp(z), dtype=float).ravel()
    hiz = np.asarray(solver(z), dtype=float).ravel()
    est = float(np.max(np.abs(hz), initial=0.0)
                * np.max(np.abs(hiz), initial=0.0))
    return est if np.isfinite(est) else np.inf


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
                  opt_par, *, tol: Optional[float] = None,
                  hvp: Optional[Callable[[np.ndarray], np.ndarray]] = None,
                  tol_name: str = "tol") -> OptimumReport:
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
        :data:`DEFAULT_OPTIMUM_TOL`.  When the step exceeds it, the
        tolerance is raised to the precision floors (see Notes).
    hvp : callable, optional
        ``hvp(v)`` returns :math:`H v`; with it, a failing step is compared
        with the conditioning floor too.
    tol_name : str, optional
        How the caller's user names ``tol``, for messages.

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

    Notes
    -----
    No check can ask for more accuracy than the arithmetic gives.  The
    tolerance actually used is ``max(tol, precision_floor,
    conditioning_floor)``: ``precision_floor = 2 eps_in`` where ``eps_in``
    is the precision ``opt_par`` came in (float32 when its dtype is, or when
    every entry is exactly a float32 number and some entry needs more than
    float16's 11 significant bits, so "round" values such as 0 or 1.5 do
    not count: rounding an exact optimum to
    float32 moves it by up to ``eps32 / 2`` relative, and the Newton step
    measures exactly that move); ``conditioning_floor = 8 eps cond(H)``
    (with ``hvp``; ``cond`` estimated by one product and one solve): the
    rounding error of a gradient evaluated in double precision, about
    ``eps |H| |theta|``, becomes a Newton step of up to ``eps cond(H)
    |theta|``.  The floors are computed only when the step exceeds ``tol``.
    """
    tol_f = _check_tol(tol, tol_name)
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
    floor_p = floor_c = 0.0
    if np.isfinite(step_norm) and step_norm > tol_f * scale:
        floor_p = 2.0 * _input_eps(par)
        if hvp is not None:
            floor_c = 8.0 * float(np.finfo(float).eps) * _conditioning(
                hvp, solver, par.size)
    tol_eff = max(tol_f, floor_p, floor_c)
    return OptimumReport(step_norm, grad_norm, scale, tol_eff, tol_f,
                         floor_p, floor_c)


def validate_optimum(grad_at_opt, solver: Callable[[np.ndarray], np.ndarray],
                     opt_par, *, tol: Optional[float] = None,
                     name: str = "opt_par",
                     opt_out: str = "validate_optimum=False",
                     hvp: Optional[Callable[[np.ndarray], np.ndarray]] = None,
                     tol_name: str = "tol") -> float:
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
    hvp : callable, optional
        ``hvp(v)`` returns :math:`H v`: lets the tolerance account for the
        conditioning of ``H`` (see :func:`check_optimum`).
    tol_name : str, optional
        How the caller's user names ``tol``, for messages.

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
    report = check_optimum(grad_at_opt, solver, opt_par, tol=tol, hvp=hvp,
                           tol_name=tol_name)
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
        cond = (f"{report.conditioning_floor:.2g}"
                if report.conditioning_floor else "not estimated")
        floors = (f" (tol = max({tol_name} {report.requested_tol:.3g}, "
                  f"input-precision floor {report.precision_floor:.2g}, "
                  f"conditioning floor 8 eps cond(H) {cond}))")
        raise ValueError(
            f"{name} is not an optimum: {what} (gradient max-abs size "
            f"{report.grad_norm:.3g}), larger than the tolerance "
            f"tol * max(1, max|{name}|) = {report.tol:.3g} * "
            f"{report.scale:.3g} = {report.threshold:.3g}{floors}. {advice}")
    return report.step_norm
