r"""Newton's method on a structured Hessian: ``refit(solver='auto')``.

At every iterate the Hessian is recovered in the form its structure calls
for (:func:`~refold.sensitivity.structure.structured_hessian`: dense,
arrowhead or sparse, from one recorded gradient graph, checked against a
random probe) and factorised the way that structure is solved: dense
Cholesky, Schur complement (:class:`~refold.sensitivity.arrowhead.
ArrowheadHessian`), or sparse :math:`LDL^T` with symmetric pivoting (the
factorisation of :func:`~refold.sensitivity.solvers.
get_sparse_cholesky_solver`, positive definite exactly when every pivot
is positive).  Only success or failure of the factorisation is used here:
a failure costs no eigenvalues.

The globalisation
-----------------
* **The step** is :math:`s = -(H + \lambda I)^{-1} g` with
  :math:`\lambda = 0` when :math:`H` factorises as positive definite;
  otherwise a Levenberg--Marquardt shift, starting from
  :math:`\max(10^{-8}\max|H_{ij}|, \lambda_{\rm prev}/10)` and raised
  tenfold until :math:`H + \lambda I` factorises (it must by
  :math:`\lambda > D\max|H_{ij}|`, where it is diagonally dominant).
  :math:`s` is then a descent direction.
* **Far from the optimum**, where the model decrease
  :math:`m = -(g^\top s + \tfrac12 s^\top H s)` exceeds the rounding level
  :math:`10^4\,\varepsilon\max(1, |f|)` of the objective: a backtracking
  Armijo line search, halving :math:`t` from 1 until
  :math:`f(x + ts) \le f(x) + 10^{-4}\,t\,g^\top s`.  A NaN or infinite
  value or gradient at a trial point rejects it.
* **At the rounding level**, where differences of :math:`f` are noise (a
  method that needs a measurable decrease stalls there, cf. the polish of
  the trust-region path): the undamped Newton step (:math:`t = 1`, then
  1/2, 1/4, 1/8) is accepted when the gradient norm falls and the
  objective rises by no more than its rounding level.  Newton converges
  quadratically, so a few such steps reach ``gtol``; when none lowers the
  gradient norm, the arithmetic's floor is reached and the run stops.
* **Hand-off.**  When the line search cannot find a measurable decrease,
  when the Hessian is indefinite at the rounding level (a saddle point is
  near: the gradient-norm test could converge to it), or when no shift
  gives a positive definite matrix, the iterate is handed to the
  trust-region method (``trust-ncg``), which follows negative curvature.
"""
from __future__ import annotations

from typing import Any, Callable, NamedTuple, Optional

import numpy as np
import scipy.linalg
import scipy.sparse as sp

from refold.sensitivity._checks import describe_point
from refold.sensitivity._factorisations import _splu_symmetric
from refold.sensitivity.arrowhead import ArrowheadHessian
from refold.sensitivity.structure import (SMALL_DIM, HessianStructure,
                                          cached_structure, is_contradiction,
                                          structured_hessian)

_EPS = float(np.finfo(float).eps)
#: Sufficient-decrease constant of the Armijo line search.
ARMIJO = 1e-4
#: Relative rounding level of the objective: below ``NOISE * max(1, |f|)``
#: decreases of ``f`` are not measured.
NOISE = 1e4 * _EPS
#: First Levenberg--Marquardt shift, relative to ``max |H_ij|``.
FIRST_SHIFT = 1e-8
#: Step lengths tried at the rounding level (1, 1/2, 1/4, 1/8).
POLISH_TRIES = 4
#: Most halvings of one line search.
MAX_HALVINGS = 60
#: Largest dense Hessian Newton forms at every iterate: beyond, ``D``
#: reverse passes per iterate cost more than trust-ncg's conjugate
#: gradients (see ``benchmarks/default_paths_bench.py``).
NEWTON_MAX_DENSE_DIM = SMALL_DIM


def newton_suits(structure: HessianStructure) -> bool:
    """Whether ``refit(solver='auto')`` takes Newton steps on this
    structure (else trust-ncg on Hessian-vector products)."""
    return structure.kind in ("arrowhead", "sparse") or (
        structure.kind == "dense" and structure.dim <= NEWTON_MAX_DENSE_DIM)


class NotPositiveDefinite(Exception):
    """``H + shift I`` did not factorise as positive definite."""


def _max_abs(hessian: Any) -> float:
    if isinstance(hessian, ArrowheadHessian):
        return max(float(np.max(np.abs(block), initial=0.0)) for block in
                   (hessian.global_block, hessian.cross_blocks,
                    hessian.local_blocks))
    if sp.issparse(hessian):
        return float(abs(hessian).max()) if hessian.nnz else 0.0
    return float(np.max(np.abs(hessian), initial=0.0))


def _solve_shifted(hessian: Any, g: np.ndarray, shift: float) -> np.ndarray:
    r""":math:`(H + \text{shift}\, I)^{-1} g`, or :class:`NotPositiveDefinite`.

    ``hessian`` is an ArrowheadHessian, a symmetric CSC matrix or a
    symmetric ndarray."""
    if isinstance(hessian, ArrowheadHessian):
        if shift:
            hessian = ArrowheadHessian(
                hessian.global_block + shift * np.eye(hessian.n_global),
                hessian.cross_blocks,
                hessian.local_blocks + shift * np.eye(hessian.n_local),
                hessian.global_inds, hessian.local_inds)
        try:
            return hessian.solve(g)
        except ValueError as err:   # not PD, or numerically singular
            raise NotPositiveDefinite(str(err)) from None
    if sp.issparse(hessian):
        shifted = hessian if not shift else (
            hessian + shift * sp.eye(hessian.shape[0], format="csc")).tocsc()
        lu = _splu_symmetric(shifted)
        # Diagonal pivots only (the permutations agree): LDL^T, positive
        # definite exactly when every pivot is positive.
        if lu is None or not np.array_equal(lu.perm_r, lu.perm_c) or not \
                np.all(lu.U.diagonal() > 0):
            raise NotPositiveDefinite("a non-positive pivot")
        return lu.solve(g)
    shifted = hessian + shift * np.eye(hessian.shape[0]) if shift else hessian
    try:
        factor = scipy.linalg.cho_factor(shifted, lower=True,
                                         check_finite=False)
    except np.linalg.LinAlgError as err:
        raise NotPositiveDefinite(str(err)) from None
    return scipy.linalg.cho_solve(factor, g, check_finite=False)


def newton_step(hessian: Any, g: np.ndarray, previous_shift: float = 0.0
                ) -> tuple:
    r"""``(s, shift)``: :math:`s = -(H + \text{shift}\, I)^{-1} g` with the
    smallest shift of the schedule (0 first) that factorises."""
    try:
        return -_solve_shifted(hessian, g, 0.0), 0.0
    except NotPositiveDefinite:
        pass
    scale = _max_abs(hessian) or 1.0
    # Beyond D max|H_ij| the shifted matrix is diagonally dominant.
    limit = 100.0 * hessian.shape[0] * scale
    shift = max(FIRST_SHIFT * scale, previous_shift / 10.0)
    while shift <= limit:
        try:
            return -_solve_shifted(hessian, g, shift), shift
        except NotPositiveDefinite:
            shift *= 10.0
    raise NotPositiveDefinite(f"no shift up to {limit:.3g} made the Hessian "
                              f"positive definite")


class StructuredHessians:
    """The Hessian of ``fun`` at successive points, in the form of its
    structure.  A detected (not given) structure that the probe of a
    recovered Hessian contradicts is detected anew at that point and
    replaces the cached one."""

    def __init__(self, fun: Callable, args: tuple,
                 structure: HessianStructure, *, given: bool, key: Any):
        self.fun, self.args, self.structure = fun, args, structure
        self.given, self.key = given, key

    def at(self, x: np.ndarray) -> Optional[Any]:
        """The Hessian at ``x``: a symmetric ndarray, CSC matrix or
        ArrowheadHessian; ``None`` when the structure, re-detected, no
        longer suits Newton steps.  A Hessian that cannot be formed (not
        finite, or a given structure contradicted) is a ``ValueError``
        naming ``objective_fun`` and the point."""
        try:
            hessian = self._recover(x)
        except ValueError as err:
            if "objective_fun" in str(err):   # already says where
                raise
            raise ValueError(f"the Hessian of objective_fun at par = "
                             f"{describe_point(x)} could not be formed: "
                             f"{err}") from err
        if hessian is None or isinstance(hessian, ArrowheadHessian):
            return hessian
        if sp.issparse(hessian):
            return ((hessian + hessian.T) * 0.5).tocsc()
        if not np.all(np.isfinite(hessian)):
            raise ValueError(f"the Hessian of objective_fun at par = "
                             f"{describe_point(x)} is not finite")
        return 0.5 * (hessian + hessian.T)

    def _recover(self, x: np.ndarray) -> Optional[Any]:
        try:
            return structured_hessian(self.fun, x, *self.args,
                                      structure=self.structure)
        except ValueError as err:
            if self.given or not is_contradiction(err):
                raise
        self.structure = cached_structure(self.fun, x, self.args,
                                          key=self.key, fresh=True)
        if not newton_suits(self.structure):
            return None
        return structured_hessian(self.fun, x, *self.args,
                                  structure=self.structure)


class NewtonOutcome(NamedTuple):
    """Where :func:`structured_newton` stopped, and why."""

    x: np.ndarray
    fun: float
    jac: np.ndarray
    #: ``'converged'``, ``'maxiter'``, ``'stalled'`` or ``'handoff'``.
    status: str
    message: str
    nit: int
    nfev: int
    nhev: int
    #: Steps accepted on the gradient-norm test at the rounding level.
    polish_steps: int


def _trial(value_and_grad: Callable, x: np.ndarray) -> tuple:
    """``(f, g)`` at a trial point, or ``(None, None)`` when either is not
    finite (a rejected step; floating-point warnings there are moot)."""
    if not np.all(np.isfinite(x)):
        return None, None
    with np.errstate(all="ignore"):
        value, grad = value_and_grad(x)
    value, grad = float(value), np.asarray(grad, dtype=float)
    if not (np.isfinite(value) and np.all(np.isfinite(grad))):
        return None, None
    return value, grad


def structured_newton(value_and_grad: Callable,
                      hessians: StructuredHessians, x: np.ndarray,
                      f: float, g: np.ndarray, *, gtol: float,
                      maxiter: int) -> NewtonOutcome:
    """Minimise from ``x`` (where ``f, g`` are the finite value and
    gradient) until the gradient's 2-norm is at most ``gtol``; see the
    module documentation.  ``value_and_grad(x)`` returns ``(f, g)``."""
    nit = nfev = nhev = polish = 0
    shift = 0.0

    def stop(status: str, message: str) -> NewtonOutcome:
        return NewtonOutcome(x, f, g, status, message, nit, nfev, nhev,
                             polish)
    while True:
        gnorm = float(np.linalg.norm(g))
        if gnorm <= gtol:
            return stop("converged", f"Gradient norm {gnorm:.3g} <= gtol "
                                     f"after {nit} Newton iterations.")
        if nit >= maxiter:
            return stop("maxiter", f"Maximum number of iterations "
                                   f"({maxiter}) reached.")
        nit += 1
        hessian = hessians.at(x)
        if hessian is None:
            return stop("handoff", f"the structure re-detected at "
                                   f"iteration {nit} is "
                                   f"{hessians.structure.kind}")
        nhev += 1
        try:
            step, shift = newton_step(hessian, g, shift)
        except NotPositiveDefinite as err:
            return stop("handoff", str(err))
        slope = float(g @ step)
        model = -(slope + 0.5 * float(step @ (hessian @ step)))
        noise = NOISE * max(1.0, abs(f))
        if model > noise:
            t, accepted = 1.0, False
            for _ in range(MAX_HALVINGS):
                f_new, g_new = _trial(value_and_grad, x + t * step)
                nfev += 1
                if f_new is not None and f_new <= f + ARMIJO * t * slope:
                    accepted = True
                    break
                t *= 0.5
                if -t * slope <= noise:     # no longer measurable
                    break
            if not accepted:
                return stop("handoff", f"the line search found no "
                                       f"measurable decrease at iteration "
                                       f"{nit}")
            x, f, g = x + t * step, f_new, g_new
            continue
        if shift:
            return stop("handoff", f"the Hessian is indefinite at the "
                                   f"rounding level of the objective "
                                   f"(iteration {nit})")
        t = 1.0
        for _ in range(POLISH_TRIES):
            f_new, g_new = _trial(value_and_grad, x + t * step)
            nfev += 1
            if f_new is not None and f_new <= f + noise and \
                    float(np.linalg.norm(g_new)) < gnorm:
                break
            t *= 0.5
        else:
            return stop("stalled", f"the gradient norm stopped falling at "
                                   f"the rounding level of the objective "
                                   f"(iteration {nit})")
        x, f, g = x + t * step, f_new, g_new
        polish += 1
