r"""Damped Newton minimisation for objectives with an arrowhead Hessian.

Many latent-variable objectives (mean-field variational Bayes, MAP, EM in
joint form) have a few *global* coordinates shared by everything and, per
group ``t``, a block of ``m`` *local* coordinates that interact only with
themselves and the globals.  Their Hessian is arrowhead-shaped, so

* :class:`~refold.sensitivity.sparse_hessian.SparseBlockHessian` recovers it
  from ``m + g`` Hessian-vector products (``g`` globals), however many groups
  there are, and
* :class:`~refold.sensitivity.arrowhead.ArrowheadHessian` solves with it by
  Schur complement in :math:`O(T m^3 + T m g^2 + g^3)`,

which makes a full Newton step about as cheap as a few gradients.
:func:`arrowhead_newton` minimises such an objective by damped Newton steps:

1. the structured Hessian :math:`H` at :math:`x` (verified against one
   random Hessian-vector product at the first iteration);
2. the step :math:`s = -(H + \lambda I)^{-1} \nabla f` with
   :math:`\lambda = 0` when :math:`H` is positive definite, otherwise a
   Levenberg shift raised tenfold (from :math:`10^{-8}` times the largest
   curvature) until :math:`H + \lambda I` is (:func:`damped_newton_step`);
3. a backtracking (Armijo) line search on :math:`f`, the first trial step
   capped at ``max_step`` in the max-norm, with a tolerance of
   :math:`1000\,\varepsilon\,\max(1, |f|)` for the rounding of :math:`f`
   near the optimum.

It stops when an undamped step satisfies :math:`\|s\|_\infty \le`
``tol`` :math:`\max(1, \|x\|_\infty)` -- that last step is taken, so the
result is accurate to about ``tol**2`` (quadratic convergence) -- and
reports what it did in a :class:`NewtonReport`.
"""
from __future__ import annotations

from typing import Any, Callable, NamedTuple, Tuple

import autograd
import numpy as np

from refold.sensitivity._checks import finite_array
from refold.sensitivity.arrowhead import ArrowheadHessian
from refold.sensitivity.sparse_hessian import (SparseBlockHessian,
                                               _as_index_array)

__all__ = ["NewtonReport", "arrowhead_newton", "damped_newton_step"]

#: Relative tolerance of the line search for the rounding of the objective.
_ROUNDING = 1e3 * float(np.finfo(float).eps)


class NewtonReport(NamedTuple):
    r"""What :func:`arrowhead_newton` did.

    Attributes
    ----------
    converged : bool
        Whether the scale-aware Newton step fell below ``tol``.
    iterations : int
        Newton iterations (one structured Hessian each).
    num_hvps_per_hessian : int
        Hessian-vector products per Hessian (the verification probe of the
        first iteration not counted).
    num_fun_evals : int
        Objective+gradient evaluations (line search included).
    objective : float
        Final value.
    grad_norm : float
        Final ``max |gradient|``.
    step_norm : float
        ``max |Newton step|`` of the last iteration (before it was taken).
    message : str
    """
    converged: bool
    iterations: int
    num_hvps_per_hessian: int
    num_fun_evals: int
    objective: float
    grad_norm: float
    step_norm: float
    message: str


def _shifted(hessian: ArrowheadHessian, shift: float) -> ArrowheadHessian:
    """``hessian + shift * I`` (same structure, blocks of any sizes)."""
    return hessian._shifted(shift)


def damped_newton_step(hessian: ArrowheadHessian, grad: Any,
                       damping: float = 0.0) -> Tuple[np.ndarray, float]:
    r"""The Newton step :math:`-(H + \lambda I)^{-1} g`, damped as needed.

    Starting from ``damping`` :math:`= \lambda`, the shift is raised to
    ``max(10 lambda, 1e-8 * scale)`` (``scale``: the largest diagonal
    entry of the global block or entry of the local blocks, at least 1)
    until :math:`H + \lambda I` is positive definite, i.e. its Schur
    complement factorisation succeeds.

    Parameters
    ----------
    hessian : ArrowheadHessian
        :math:`H`.
    grad : array_like, shape (D,)
        The gradient :math:`g`, in the coordinates of ``hessian``.
    damping : float, optional
        The first shift tried (default 0: the plain Newton step when
        :math:`H` is positive definite).

    Returns
    -------
    step : numpy.ndarray, shape (D,)
    damping : float
        The shift used (0 when none was needed).

    Raises
    ------
    TypeError
        ``hessian`` is not an ``ArrowheadHessian``.
    ValueError
        ``grad`` of the wrong shape or not finite, ``damping`` negative or
        not finite, or no shift up to ``1e12 * scale`` makes :math:`H +
        \lambda I` positive definite (the factorisation's message).

    Examples
    --------
    An indefinite Hessian gets a Levenberg shift, and the step descends:

    >>> import numpy as np
    >>> h = ArrowheadHessian(-np.eye(1), np.zeros((2, 1, 1)), np.ones((2, 1, 1)))
    >>> step, shift = damped_newton_step(h, np.ones(3))
    >>> bool(shift > 1.0), bool(np.ones(3) @ step < 0)
    (True, True)
    """
    if not isinstance(hessian, ArrowheadHessian):
        raise TypeError(f"hessian must be an ArrowheadHessian; got "
                        f"{type(hessian).__name__}.")
    grad = finite_array(grad, "grad", vector=True)
    if grad.shape != (hessian.dim,):
        raise ValueError(f"grad must have shape ({hessian.dim},) to match "
                         f"hessian; got {grad.shape}.")
    if isinstance(damping, (bool, np.bool_)) or not isinstance(
            damping, (int, float, np.integer, np.floating)) or not (
            np.isfinite(damping) and damping >= 0):
        raise ValueError(f"damping must be a finite number >= 0; got "
                         f"{damping!r}.")
    damping = float(damping)
    scale = max(float(np.max(np.abs(np.diagonal(hessian.global_block)),
                             initial=0.0)),
                max((float(np.max(np.abs(c.local_blocks), initial=0.0))
                     for c in hessian.size_classes), default=0.0), 1.0)
    while True:
        try:
            shifted = hessian if damping == 0.0 else _shifted(hessian,
                                                              damping)
            return -shifted.solve(grad), damping
        except ValueError:
            damping = max(10.0 * damping, 1e-8 * scale)
            if damping > 1e12 * scale:
                raise


def _check_positive(value: Any, name: str) -> float:
    if isinstance(value, (bool, np.bool_)) or not isinstance(
            value, (int, float, np.integer, np.floating)) or not (
            np.isfinite(value) and value > 0):
        raise ValueError(f"{name} must be a finite positive number; got "
                         f"{value!r}.")
    return float(value)


def arrowhead_newton(fun: Callable, x0: Any, local_inds: Any, *,
                     tol: float = 1e-8, max_iter: int = 50,
                     max_step: float = 5.0
                     ) -> Tuple[np.ndarray, NewtonReport]:
    r"""Minimise ``fun`` by damped Newton steps on its arrowhead Hessian.

    Parameters
    ----------
    fun : callable
        ``fun(x) -> float`` for ``x`` of shape ``(D,)``, twice
        differentiable by autograd (reverse mode), whose Hessian is
        arrowhead-shaped: the locals of different groups never interact.
    x0 : array_like, shape (D,)
        Starting point (finite; not mutated).
    local_inds : array_like of int, shape (T, m)
        Row ``t`` holds group ``t``'s local coordinates; every other
        coordinate is global (as in
        :class:`~refold.sensitivity.sparse_hessian.SparseBlockHessian`).
    tol : float, optional
        Converged when an undamped step has :math:`\|s\|_\infty \le`
        ``tol`` :math:`\max(1, \|x\|_\infty)` (default ``1e-8``); that step
        is taken.
    max_iter : int, optional
        Newton iterations at most (default 50).
    max_step : float, optional
        Cap on the max-norm of the first trial step of each line search
        (default 5).

    Returns
    -------
    x : numpy.ndarray, shape (D,)
        The last iterate (the optimum when ``report.converged``).
    report : NewtonReport
        Convergence, iterations, Hessian-vector products per Hessian
        (``m + g``), evaluations, final objective, gradient and step norms,
        and a message.  Not converging within ``max_iter``, or a line search
        that cannot decrease ``fun``, is reported, not raised.

    Raises
    ------
    TypeError, ValueError
        Bad arguments (named in the message); ``fun`` or its gradient not
        finite at ``x0``; a Hessian whose structure is not the one
        ``local_inds`` describes (from the verification probe).

    Examples
    --------
    Three groups of two locals coupled to one global (index 6):

    >>> import autograd.numpy as anp
    >>> import numpy as np
    >>> def f(x):
    ...     loc = x[:6].reshape(3, 2)
    ...     return (anp.sum(anp.exp(loc[:, 0] + x[6]) - loc[:, 0])
    ...             + anp.sum((loc[:, 1] - 1.0) ** 2) + x[6] ** 2)
    >>> x, report = arrowhead_newton(f, np.zeros(7),
    ...                              np.arange(6).reshape(3, 2))
    >>> report.converged, report.num_hvps_per_hessian
    (True, 3)
    >>> bool(np.max(np.abs(autograd.grad(f)(x))) < 1e-12)
    True
    """
    if not callable(fun):
        raise TypeError(f"fun must be callable; got {type(fun).__name__}.")
    x = np.array(finite_array(x0, "x0", vector=True), dtype=float)
    tol = _check_positive(tol, "tol")
    max_step = _check_positive(max_step, "max_step")
    if isinstance(max_iter, (bool, np.bool_)) or not isinstance(
            max_iter, (int, np.integer)):
        raise TypeError(f"max_iter must be an int; got {max_iter!r}.")
    if max_iter < 1:
        raise ValueError(f"max_iter must be at least 1; got {max_iter}.")
    local_inds = _as_index_array(local_inds, "local_inds", 2)
    if local_inds.size == 0 or local_inds.max() >= x.size:
        raise ValueError(f"local_inds must be a non-empty (T, m) array of "
                         f"coordinates of x0 (length {x.size}); got shape "
                         f"{local_inds.shape}"
                         + (f" with index {local_inds.max()}"
                            if local_inds.size else "") + ".")
    sbh = SparseBlockHessian(fun, local_inds)
    num_hvps = local_inds.shape[1] + x.size - local_inds.size
    value_and_grad = autograd.value_and_grad(fun)
    f, g = value_and_grad(x)
    f, g = float(f), np.asarray(g, dtype=float)
    if not (np.isfinite(f) and np.all(np.isfinite(g))):
        raise ValueError(f"fun and its gradient must be finite at x0; got "
                         f"fun(x0) = {f!r} and "
                         f"{int(np.sum(~np.isfinite(g)))} non-finite "
                         f"gradient entries.")
    evals, step_norm = 1, np.inf
    message = f"reached max_iter={max_iter}"
    converged = False
    for iteration in range(1, int(max_iter) + 1):
        hess = sbh.get_arrowhead_hessian(x, verify=(iteration == 1))
        step, damping = damped_newton_step(hess, g, 0.0)
        step_norm = float(np.max(np.abs(step)))
        scale = max(1.0, float(np.max(np.abs(x))))
        small = step_norm <= tol * scale and damping == 0.0
        t = min(1.0, max_step / step_norm) if step_norm > 0 else 1.0
        slope = float(g @ step)
        allowance = _ROUNDING * max(1.0, abs(f))
        while True:
            x_new = x + t * step
            f_new, g_new = value_and_grad(x_new)
            evals += 1
            if np.isfinite(f_new) and np.all(np.isfinite(g_new)) and (
                    f_new <= f + 1e-4 * t * slope + allowance):
                break
            t *= 0.5
            if t < 1e-10:
                message = "line search failed to decrease the objective"
                return x, NewtonReport(False, iteration, num_hvps, evals,
                                       float(f), float(np.max(np.abs(g))),
                                       step_norm, message)
        x, f, g = x_new, float(f_new), np.asarray(g_new, dtype=float)
        if small:
            converged = True
            message = (f"converged: Newton step {step_norm:.3g} <= tol * "
                       f"scale = {tol * scale:.3g}")
            break
    return x, NewtonReport(converged, iteration, num_hvps, evals, float(f),
                           float(np.max(np.abs(g))), step_norm, message)
