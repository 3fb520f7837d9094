r"""Dropping a little data, done right: greedy recursive search, exhaustive
search, and higher-order predictions of dropping a set.

:meth:`WeightSensitivity.drop_data
<refold.sensitivity.data_weights.WeightSensitivity.drop_data>` ranks the
observations once by their first-order influence and adds up the scores
(the approximate maximum influence perturbation of Broderick, Giordano and
Meager).  That additive approximation misses sets whose members *mask* one
another -- two clusters of outliers, each of which keeps the fit near the
other, so that no single member looks influential until its partners are
gone (Huang, Burt, Shen, Nguyen and Broderick, 2025).  This module offers
what they found to work, and exact references:

* :func:`greedy_drop` -- drop the most influential observations, move the
  optimum to the new weights (warm-started damped Newton steps on the dense
  or matrix-free Hessian; the optimum re-converged exactly every
  ``refit_every`` steps and whenever the target looks flipped), recompute
  the influence scores *there*, and repeat, until the conclusion flips or
  the budget ``alpha * N`` is spent.  Each step drops a batch of
  ``batch_fraction`` times the number of observations the current scores
  say are still needed (at least one), so large ``N`` takes few steps and
  the end of the search goes one observation at a time.  The last batch is
  trimmed to the shortest prefix that still flips, and a final re-fit by
  :func:`refold.sensitivity.refit.refit` (an independent optimiser) confirms
  the set.
* :func:`exhaustive_drop` -- every set up to a size, each re-fitted: the
  truth for small ``N``.
* :func:`predict_drop` -- the Taylor series of the optimum in the weights
  along the path :math:`w(t) = 1 - t\,1_S` to any order (the higher-order
  infinitesimal jackknife), by
  :class:`~refold.sensitivity.taylor.ParametricSensitivityTaylorExpansion`
  with its divergence report.

For ordinary least squares, :class:`refold.sensitivity.ols_drop.OLSDrop`
does the same with exact rank-``k`` downdates instead of Newton steps.

Targets: ``'sign'`` (of :math:`q`), ``'threshold'`` (:math:`q` crosses
``threshold``) and ``'significance'`` (the end of :math:`q \pm z\,se`
nearest zero crosses zero, with :math:`z` from the two-sided ``level`` and
``se_fun(theta, weights)`` e.g. from
:func:`refold.sensitivity.standard_errors.standard_error_fun`).

Decisions: only whole observations are dropped (weights 0 or 1); "found"
means the *final re-fit* flips the target, never the approximation; a
search that cannot reach the target says so and reports the best target
value achieved; a fit that does not converge is reported in the result (and
stops the search), never accepted silently.
"""
from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from typing import Any, Callable, NamedTuple, Optional

import numpy as np

from refold.sensitivity._checks import check_int
from refold.sensitivity._drop_common import (Target, check_fraction,
                                             check_weights, next_batch,
                                             qoi_callable)
from refold.sensitivity._drop_fitters import make_fitter
from refold.sensitivity.data_weights import WeightSensitivity
from refold.sensitivity.taylor import ParametricSensitivityTaylorExpansion

__all__ = ["DropSearchResult", "DropPrediction", "greedy_drop",
           "exhaustive_drop", "predict_drop"]

@dataclass(frozen=True)
class DropSearchResult:
    r"""The outcome of a drop-data search.

    Attributes
    ----------
    indices : numpy.ndarray of int
        The dropped observations, in the order they were dropped.
    found : bool
        Whether the final re-fit without ``indices`` flips the target.
    method : str
        ``'greedy'``, ``'exhaustive'``, ``'ols greedy'`` or ``'ols
        exhaustive'``.
    target : str
        ``'sign'``, ``'threshold'`` or ``'significance'``.
    n_obs : int
    qoi, target_value : float
        At the full data.
    path_n_dropped, path_qoi, path_target : numpy.ndarray
        The search's path: observations dropped so far and the quantity of
        interest and target there, step by step.
    path_converged : numpy.ndarray of bool
        Whether each path point is a converged optimum (between re-converged
        fits the greedy search moves by ``newton_steps`` Newton steps; for
        least squares every point is exact).
    refit_opt_par : numpy.ndarray or None
        The final re-fit without ``indices`` (``None`` if it failed).
    refit_qoi, refit_se, refit_target_value : float or None
        The quantity of interest, standard error and target there.
    refit_converged : bool
    best_target_value : float
        The target value nearest the flip that the search reached (equal
        to ``refit_target_value`` when ``found``).
    message : str
        What happened, in words (including why nothing was found).
    """

    indices: np.ndarray
    found: bool
    method: str
    target: str
    n_obs: int
    qoi: float
    target_value: float
    path_n_dropped: np.ndarray
    path_qoi: np.ndarray
    path_target: np.ndarray
    path_converged: np.ndarray
    refit_opt_par: Optional[np.ndarray]
    refit_qoi: Optional[float]
    refit_se: Optional[float]
    refit_target_value: Optional[float]
    refit_converged: bool
    best_target_value: float
    message: str

    @property
    def n_dropped(self) -> int:
        """The number of observations dropped."""
        return int(self.indices.size)

    @property
    def fraction(self) -> float:
        """The fraction of the data dropped."""
        return self.n_dropped / self.n_obs


class DropPrediction(NamedTuple):
    """A higher-order prediction of the optimum after re-weighting.

    Attributes
    ----------
    opt_par : numpy.ndarray
        The predicted optimum (the Taylor series to ``order`` at ``t = 1``).
    qoi : float or None
        ``qoi_fun`` there (when given).
    order : int
    terms_qoi : numpy.ndarray or None
        The predicted ``qoi`` at orders ``1..order`` (when ``qoi_fun`` is
        given), to show how the series settles.
    report : TaylorSeriesReport
        The series' own diagnostics (converging terms, Newton-step error
        estimate).
    """

    opt_par: np.ndarray
    qoi: Optional[float]
    order: int
    terms_qoi: Optional[np.ndarray]
    report: Any


def _check_common(fitter, qoi_fun, target, se_fun, level, threshold):
    q = qoi_callable(qoi_fun, fitter.dim)
    theta0, ones = fitter.opt_par, np.ones(fitter.n_obs)
    return Target(q, target, theta0, ones, se_fun=se_fun, level=level,
                  threshold=threshold)


def _confirm(fitter, target, theta, weights, refit_options):
    """The final re-fit, and a check that it is an optimum."""
    theta, ok, msg = fitter.confirm(theta, weights, refit_options)
    if not ok:
        return None, None, None, None, False, msg
    q, se, t = target.value(theta, weights)
    # A small gradient is not enough (a logistic fit on separable data has
    # a vanishing gradient and no optimum): the Newton step must be small.
    size, why = fitter.newton_step_size(theta, weights)
    if not size <= 1e-6 * max(1.0, float(np.max(np.abs(theta)))):
        return theta, q, se, t, False, (
            f"the final re-fit is not an optimum ({why}); the optimum may "
            f"not exist without these observations")
    return theta, q, se, t, True, ""


def greedy_drop(sensitivity: WeightSensitivity, qoi_fun: Any,
                alpha: float = 0.05, *, target: str = "sign",
                se_fun: Optional[Callable] = None, level: float = 0.05,
                threshold: Optional[float] = None,
                batch_fraction: float = 0.25,
                max_batch: Optional[int] = None, refit_every: int = 5,
                newton_steps: int = 1, tol: float = 1e-10,
                max_newton: int = 50, solver: str = "auto",
                solver_options: Optional[dict] = None,
                refit_options: Optional[dict] = None) -> DropSearchResult:
    r"""Greedy recursive search for a small set whose removal flips a
    conclusion (see the module documentation for the algorithm).

    Parameters
    ----------
    sensitivity : WeightSensitivity or EstimatingEquationWeights
        The model at its optimum: per-observation losses and a prior, or
        per-observation moments of an estimating equation (e.g.
        instrumental variables, :mod:`refold.sensitivity.ee_weights`).
    qoi_fun : callable or int
        ``q(theta)`` or an index into the parameters.
    alpha : float, optional
        The budget: at most ``floor(alpha * N)`` observations are dropped;
        in (0, 1) (default 0.05).
    target : {'sign', 'threshold', 'significance'}, optional
    se_fun : callable, optional
        ``se_fun(theta, weights)``, for ``'significance'``.
    level : float, optional
        Two-sided significance level, in (0, 1) (default 0.05).
    threshold : float, optional
        For ``'threshold'``.
    batch_fraction : float, optional
        Fraction of the still-needed count dropped per step, in (0, 1)
        (default 0.25; smaller is more careful and slower).
    max_batch : int, optional
        Cap on the batch size.
    refit_every : int, optional
        Re-converge the optimum every this many steps (default 5); between
        them ``newton_steps`` Newton steps (default 1) update it.
    tol, max_newton
        Convergence of those re-fits (scale-aware Newton step) and their
        iteration limit.
    solver : str, optional
        The solver kind for the Newton steps and influence scores of a
        ``WeightSensitivity``, with ``solver_options``: ``'auto'``
        (default: the Hessian structure the sensitivity detected, reused at
        every point -- dense, arrowhead or sparse; see
        :mod:`refold.sensitivity.structure`); ``'cholesky'``, ``'lu'`` or
        ``'dense'`` on the dense autograd Hessian;
        ``'cg'``: Hessian-vector products only; ``'arrowhead'`` with
        ``solver_options={'local_inds': (T, m) array}``: the structured
        Hessian of a random-effects model (``m + g`` Hessian-vector
        products, a Schur-complement solve) -- the choice at the Criteo
        shape.  An estimating equation always uses a dense LU.
    refit_options : dict, optional
        Options of the final :func:`refold.sensitivity.refit.refit`.

    Returns
    -------
    DropSearchResult

    Raises
    ------
    ValueError
        For ``alpha``, ``level`` or ``batch_fraction`` outside (0, 1), an
        unknown target, a missing ``se_fun`` or ``threshold``, a quantity
        of interest that does not depend on the parameters, or a Hessian
        that is singular (naming the collinear parameters).
    """
    alpha = check_fraction(alpha, "alpha")
    batch_fraction = check_fraction(batch_fraction, "batch_fraction")
    refit_every = check_int(refit_every, "refit_every", minimum=1,
                            type_error=ValueError)
    newton_steps = check_int(newton_steps, "newton_steps", minimum=1,
                             type_error=ValueError)
    max_newton = check_int(max_newton, "max_newton", minimum=1,
                           type_error=ValueError)
    if max_batch is not None:
        max_batch = check_int(max_batch, "max_batch", minimum=1,
                              type_error=ValueError)
    fitter = make_fitter(sensitivity, solver, solver_options)
    tgt = _check_common(fitter, qoi_fun, target, se_fun, level, threshold)
    n_obs = fitter.n_obs
    budget = int(np.floor(alpha * n_obs))
    theta, weights = fitter.opt_par, np.ones(n_obs)
    dropped, path = [], [(0, tgt.q0, tgt.t0, True)]
    message, steps, converged = "", 0, True
    t_now, last_batch = tgt.t0, np.zeros(0, dtype=int)
    while True:
        if tgt.flipped(t_now):
            if converged:
                break
            theta, converged, msg = fitter.newton(theta, weights,
                                                  max_newton, tol)
            if not converged:
                message = f"a re-fit did not converge: {msg}"
                break
            q, _, t_now = tgt.value(theta, weights)
            path.append((len(dropped), q, t_now, True))
            continue
        room = budget - len(dropped)
        if room <= 0:
            message = (f"the target cannot be reached by dropping up to "
                       f"floor(alpha * N) = {budget} observations")
            break
        d_theta, d_w = tgt.derivatives(theta, weights)
        infl = fitter.pullback(theta, weights, d_theta)
        if d_w is not None:
            infl = infl + d_w
        # Dropping n changes t by about -infl[n]: towards the flip by gain.
        batch = next_batch(tgt.sign * infl, weights > 0, abs(t_now), room,
                           batch_fraction, max_batch)
        if batch.size == 0:
            message = ("no remaining observation moves the target towards "
                       "the flip")
            break
        weights[batch] = 0.0
        dropped.extend(batch.tolist())
        last_batch = batch
        steps += 1
        full = steps % refit_every == 0
        theta, converged, msg = fitter.newton(
            theta, weights, max_newton if full else newton_steps, tol)
        if full and not converged:
            message = f"a re-fit did not converge: {msg}"
            break
        q, _, t_now = tgt.value(theta, weights)
        path.append((len(dropped), q, t_now, converged))
    if tgt.flipped(t_now) and converged and last_batch.size > 1:
        theta, weights, dropped = _trim_last_batch(
            fitter, tgt, theta, weights, dropped, last_batch, max_newton,
            tol, path)
    return _result(fitter, tgt, "greedy", np.asarray(dropped, dtype=int),
                   theta, weights, path, message, refit_options, n_obs)


def _trim_last_batch(fitter, tgt, theta, weights, dropped, batch,
                     max_newton, tol, path):
    """The shortest prefix of the last batch that still flips (bisection
    over prefix lengths, each re-fitted)."""
    keep = len(dropped) - batch.size
    lo, hi, best = 0, batch.size, (theta, weights.copy())
    while hi - lo > 1:
        mid = (lo + hi) // 2
        trial = weights.copy()
        trial[batch[mid:]] = 1.0
        th, conv, _ = fitter.newton(best[0], trial, max_newton, tol)
        if conv and tgt.flipped(tgt.value(th, trial)[2]):
            hi, best = mid, (th, trial)
        else:
            lo = mid
    theta, weights = best
    dropped = dropped[:keep + hi]
    q, _, t = tgt.value(theta, weights)
    path[:] = [p for p in path if p[0] <= len(dropped)]
    path.append((len(dropped), q, t, True))
    return theta, weights, dropped


def _result(fitter, tgt, method, indices, theta, weights, path, message,
            refit_options, n_obs):
    r_theta, r_q, r_se, r_t, r_ok, r_msg = _confirm(
        fitter, tgt, theta, weights, refit_options)
    path = np.array(path, dtype=float).reshape(-1, 4)
    found = bool(r_ok and tgt.flipped(r_t))
    best = float(path[np.argmin(tgt.sign * path[:, 2]), 2])
    if r_ok:
        best = r_t if tgt.sign * r_t < tgt.sign * best else best
    if found:
        text = (f"dropping {indices.size} of {n_obs} observations "
                f"({indices.size / n_obs:.3%}) flips the {tgt.kind} target "
                f"from {tgt.t0:.4g} to {r_t:.4g} (confirmed by a re-fit)")
    else:
        text = (message or "the search stopped without a flip") + \
            f"; the best target value reached is {best:.4g} (from " \
            f"{tgt.t0:.4g})"
        if r_msg:
            text += f"; {r_msg}"
    return DropSearchResult(
        indices=indices, found=found, method=method, target=tgt.kind,
        n_obs=n_obs, qoi=tgt.q0, target_value=tgt.t0,
        path_n_dropped=path[:, 0].astype(int), path_qoi=path[:, 1],
        path_target=path[:, 2], path_converged=path[:, 3].astype(bool),
        refit_opt_par=r_theta, refit_qoi=r_q,
        refit_se=r_se, refit_target_value=r_t, refit_converged=r_ok,
        best_target_value=best, message=text)


def exhaustive_drop(sensitivity: WeightSensitivity, qoi_fun: Any,
                    max_size: int, *, target: str = "sign",
                    se_fun: Optional[Callable] = None, level: float = 0.05,
                    threshold: Optional[float] = None, tol: float = 1e-10,
                    max_newton: int = 50, max_sets: int = 20000,
                    refit_options: Optional[dict] = None
                    ) -> DropSearchResult:
    r"""The smallest set (up to ``max_size``) whose removal flips the
    target, by re-fitting every set: the reference for small ``N``.

    Sets are tried by increasing size, in lexicographic order within a size;
    each is re-fitted by damped Newton from the full-data optimum.  The
    first that flips is returned (confirmed by
    :func:`refold.sensitivity.refit.refit`).

    Parameters
    ----------
    sensitivity, qoi_fun, target, se_fun, level, threshold, tol, max_newton
        As in :func:`greedy_drop` (dense solves only).
    max_size : int
        The largest set tried.
    max_sets : int, optional
        Refuse (``ValueError``) when more than this many sets would be
        re-fitted (default 20000).

    Returns
    -------
    DropSearchResult
        ``found`` is ``False`` when no set up to ``max_size`` flips; the
        message then says so, and how many fits failed to converge (a set
        whose fit fails is not counted as flipping).
    """
    fitter = make_fitter(sensitivity, "auto", None)
    n_obs = fitter.n_obs
    max_size = check_int(max_size, "max_size", minimum=1,
                         type_error=ValueError)
    if max_size >= n_obs:
        raise ValueError(f"max_size must be below N = {n_obs}; got "
                         f"{max_size}")
    max_sets = check_int(max_sets, "max_sets", minimum=1,
                         type_error=ValueError)
    total = sum(math.comb(n_obs, k) for k in range(1, max_size + 1))
    if total > max_sets:
        raise ValueError(f"exhaustive search up to size {max_size} of N = "
                         f"{n_obs} re-fits {total} sets, more than max_sets "
                         f"= {max_sets}; lower max_size or raise max_sets")
    tgt = _check_common(fitter, qoi_fun, target, se_fun, level, threshold)
    theta0 = fitter.opt_par
    path, failed = [(0, tgt.q0, tgt.t0, True)], 0
    best = None
    for size in range(1, max_size + 1):
        for combo in itertools.combinations(range(n_obs), size):
            weights = np.ones(n_obs)
            weights[list(combo)] = 0.0
            theta, conv, _ = fitter.newton(theta0, weights, max_newton, tol)
            if not conv:
                failed += 1
                continue
            q, _, t = tgt.value(theta, weights)
            if best is None or tgt.sign * t < tgt.sign * best[2]:
                best = (size, q, t, True)
            if tgt.flipped(t):
                path.append((size, q, t, True))
                return _result(fitter, tgt, "exhaustive",
                               np.asarray(combo, dtype=int), theta, weights,
                               path, "", refit_options, n_obs)
    if best is not None:
        path.append(best)
    message = (f"no set of up to {max_size} observations flips the "
               f"{tgt.kind} target ({total} sets re-fitted, {failed} did not "
               f"converge)")
    return _result(fitter, tgt, "exhaustive", np.zeros(0, dtype=int),
                   theta0, np.ones(n_obs), path, message, refit_options,
                   n_obs)


def predict_drop(sensitivity: WeightSensitivity, drop: Any,
                 qoi_fun: Any = None, order: int = 2
                 ) -> DropPrediction:
    r"""Predict the optimum after dropping (or re-weighting) observations,
    by the Taylor series in the weights to ``order``.

    Along :math:`w(t) = 1 + t\,(w_{new} - 1)` the optimum's derivatives in
    ``t`` solve :math:`H a_k = -r_k` with the Hessian factorised once (the
    ``sensitivity``'s solver), so order 2 costs about one extra solve and a
    few forward-mode passes.  Order 1 is the sum of the influence scores.

    Parameters
    ----------
    sensitivity : WeightSensitivity
    drop : array_like
        The indices of the observations to drop (ints), or the new weights
        (a float vector of length ``N`` in [0, 1]).
    qoi_fun : callable or int, optional
        Also predict ``q`` (at every order up to ``order``).
    order : int, optional
        Default 2.

    Returns
    -------
    DropPrediction

    Raises
    ------
    ValueError
        Indices out of range or repeated, weights outside [0, 1] or of the
        wrong length, a non-positive ``order``.
    """
    if not isinstance(sensitivity, WeightSensitivity):
        raise TypeError(f"sensitivity must be a WeightSensitivity; got "
                        f"{type(sensitivity).__name__}")
    n_obs = sensitivity.n_obs
    order = check_int(order, "order", minimum=1, type_error=ValueError)
    arr = np.asarray(drop)
    if arr.dtype.kind in "iu" or (arr.size == 0 and arr.ndim == 1):
        idx = arr.astype(int).ravel()
        if idx.size and (idx.min() < 0 or idx.max() >= n_obs):
            raise ValueError(f"drop indices must be in [0, {n_obs}); got "
                             f"{idx.min()}..{idx.max()}")
        if np.unique(idx).size != idx.size:
            raise ValueError("drop indices must not repeat")
        new_w = np.ones(n_obs)
        new_w[idx] = 0.0
    else:
        new_w = check_weights(arr, n_obs, "drop (as weights)")
    delta = new_w - 1.0
    objective = sensitivity.objective

    def weighted(theta, t):
        return objective(theta, 1.0 + t[0] * delta)
    theta0 = sensitivity.opt_par
    taylor = ParametricSensitivityTaylorExpansion.optimization_objective(
        weighted, theta0, np.zeros(1), order=order,
        hess_solver=sensitivity.solver, validate_optimum=False)
    pred, report = taylor.evaluate_taylor_series(np.ones(1),
                                                 return_report=True)
    pred = np.asarray(pred, dtype=float)
    q_val = terms = None
    if qoi_fun is not None:
        q = qoi_callable(qoi_fun, theta0.size)
        terms = np.array([float(q(taylor.evaluate_taylor_series(
            np.ones(1), max_order=k))) for k in range(1, order + 1)])
        q_val = float(terms[-1])
    return DropPrediction(pred, q_val, order, terms, report)
