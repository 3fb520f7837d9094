r"""Sensitivity of an optimum to the weights of the observations.

Give observation ``n`` the weight :math:`w_n` in

.. math::

    f(\theta, w) = \sum_{n=1}^N w_n \ell_n(\theta) + \pi(\theta),

with base weights :math:`w = 1` and optimum :math:`\hat\theta`.  The
implicit function theorem gives :math:`d\hat\theta/dw_n = -H^{-1}\nabla
\ell_n(\hat\theta)` and, for a quantity of interest :math:`q(\theta)`,

.. math::

    \frac{dq}{dw_n} = -\nabla q^\top H^{-1} \nabla\ell_n
                    = -(G v)_n, \qquad v = H^{-1}\nabla q,

where :math:`G` (``N x D``) stacks the per-observation gradients.  So all
``N`` influence scores cost one solve and one forward-mode product of the
vector of losses (:math:`G v` is the directional derivative of
:math:`\theta \mapsto (\ell_1(\theta), \ldots, \ell_N(\theta))` along
:math:`v`), never a loop over observations and never :math:`G` itself.

Dropping observation ``n`` is the change :math:`\Delta w_n = -1`, so to first
order (the infinitesimal jackknife) :math:`\hat\theta_{-n} \approx
\hat\theta + H^{-1}\nabla\ell_n` and :math:`q(\hat\theta_{-n}) \approx
q(\hat\theta) - dq/dw_n`.  Dropping a set ``S`` changes ``q`` by about
:math:`-\sum_{n\in S} dq/dw_n`; sorting the scores gives the smallest set
predicted to flip a conclusion ("drop a little data", Broderick, Giordano
and Meager), which :meth:`DropDataResult.refit_check` confirms by re-fitting.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, NamedTuple, Optional, Union

import autograd
import autograd.numpy as anp
import numpy as np

from refold.sensitivity._checks import (check_bool, check_int, real_array,
                                      user_call)
from refold.sensitivity._drop_common import qoi_callable
from refold.sensitivity._equation_solver import hessian_solver_auto
from refold.sensitivity.hvp import dense_hessian, make_hvp_at
from refold.sensitivity.jacobian_modes import jacobian_matrix
from refold.sensitivity.optimum import validate_optimum as _validate_optimum
from refold.sensitivity.refit import refit as _refit
from refold.sensitivity.solvers import _MATRIX_FREE_KINDS, as_solver

__all__ = ["WeightSensitivity", "DropDataResult", "RefitCheck"]

_TARGETS = ("sign", "significance")


def _as_opt_par(value: Any) -> np.ndarray:
    arr = real_array(value, "opt_par", allow_bool=True)
    if arr.ndim != 1 or arr.size == 0:
        raise ValueError(f"opt_par must be a non-empty 1-d array; got shape "
                         f"{arr.shape}")
    arr = np.array(arr, dtype=np.float64)
    if not np.all(np.isfinite(arr)):
        bad = int(np.flatnonzero(~np.isfinite(arr))[0])
        raise ValueError(f"opt_par must be finite; opt_par[{bad}] is "
                         f"{arr[bad]}")
    return arr


def _scalar(value: Any, name: str, where: str) -> float:
    arr = np.asarray(value)
    if arr.size != 1 or arr.dtype.kind not in "biuf" \
            or not np.isfinite(arr).all():
        raise ValueError(f"{name} must return a finite scalar {where}; got "
                         f"shape {arr.shape} value {arr.ravel()[:3]}")
    return float(arr.reshape(()))


def _number(value: Any, name: str) -> float:
    if isinstance(value, (bool, np.bool_)) or not isinstance(
            value, (int, float, np.integer, np.floating)):
        raise ValueError(f"{name} must be a number; got {value!r}")
    return float(value)


class RefitCheck(NamedTuple):
    """The outcome of actually re-fitting without the dropped observations.

    Attributes
    ----------
    opt_par : numpy.ndarray
        The re-fitted optimum.
    qoi : float
        The quantity of interest there.
    se : float or None
        Its standard error there (``target='significance'`` only).
    target_value : float
        The quantity whose sign was to flip (``qoi``, or the end of the
        confidence interval nearest zero).
    flipped : bool
        Whether its sign actually flipped.
    """

    opt_par: np.ndarray
    qoi: float
    se: Optional[float]
    target_value: float
    flipped: bool


@dataclass(frozen=True)
class DropDataResult:
    r"""The smallest set of observations whose removal is predicted (to first
    order) to flip a conclusion.

    Attributes
    ----------
    indices : numpy.ndarray of int
        The observations to drop, most influential first.  When ``found`` is
        ``False`` these are the (at most ``alpha * N``) observations with the
        largest predicted effect.
    found : bool
        Whether dropping ``indices`` is predicted to flip the conclusion.
    target : str
        ``'sign'`` (the sign of ``q``) or ``'significance'`` (the sign of
        the end of :math:`q \pm z\,se` nearest zero: significance is lost,
        or gained when there was none).
    n_obs : int
        ``N``.
    qoi, predicted_qoi : float
        ``q`` at the optimum, and predicted after dropping ``indices``.
    se, predicted_se : float or None
        The same for the standard error (``'significance'`` only).
    target_value, predicted_target_value : float
        The same for the quantity whose sign is to flip.
    """

    indices: np.ndarray
    found: bool
    target: str
    n_obs: int
    qoi: float
    predicted_qoi: float
    se: Optional[float]
    predicted_se: Optional[float]
    target_value: float
    predicted_target_value: float
    _refit: Callable = field(repr=False, compare=False, default=None)

    @property
    def n_dropped(self) -> int:
        """The number of observations dropped."""
        return int(self.indices.size)

    @property
    def fraction(self) -> float:
        """The fraction of the data dropped."""
        return self.n_dropped / self.n_obs

    def refit_check(self, **refit_options: Any) -> RefitCheck:
        """Re-fit without ``indices`` (by
        :func:`refold.sensitivity.refit.refit`, from the old optimum) and
        report the actual values.  ``refit_options`` go to ``refit``."""
        return self._refit(self.indices, self.target_value, refit_options)


class WeightSensitivity:
    r"""Influence of each observation on an optimum and on functions of it.

    Parameters
    ----------
    loss_terms_fun : callable
        ``loss_terms_fun(theta)`` returns the length-``N`` vector of
        per-observation losses :math:`\ell_n(\theta)`, differentiable by
        autograd (forward and reverse mode).
    opt_par : array_like, shape (D,)
        :math:`\hat\theta`, the minimiser of :math:`\sum_n \ell_n(\theta) +
        \pi(\theta)`.
    n_obs : int, optional
        ``N``; when given, the length of ``loss_terms_fun(opt_par)`` is
        checked against it.
    prior_fun : callable, optional
        ``prior_fun(theta)``, a scalar :math:`\pi(\theta)` not weighted by
        observations (a prior or a penalty).
    solver : str or callable, optional
        ``'auto'`` (default, also for ``None``): the Hessian's structure is
        detected and the solver chosen from it
        (:mod:`refold.sensitivity.structure`); or a solver kind of
        :func:`refold.sensitivity.solvers.as_solver` (``'cholesky'``: the
        dense Hessian; ``'cg'``: Hessian-vector products on one recorded
        graph) or a callable ``b -> H^{-1} b``.
    validate_optimum : bool, optional
        Check (default) that ``opt_par`` is an optimum (scale-aware Newton
        step, :func:`refold.sensitivity.optimum.validate_optimum`).
    optimum_tol : float, optional
        Tolerance of that check.
    solver_options : dict, optional
        Options of the solver kind (e.g. ``cg_opts``).

    Raises
    ------
    ValueError
        For a non-finite or mis-shaped ``opt_par``, losses of the wrong
        length or not finite, an indefinite Hessian, or a point that is not
        an optimum.

    Examples
    --------
    >>> import autograd.numpy as anp, numpy as np
    >>> y = np.array([1.0, 2.0, 6.0])
    >>> ws = WeightSensitivity(lambda t: 0.5 * (y - t[0]) ** 2,
    ...                        np.array([3.0]))
    >>> ws.influence(0)   # d mean / d w_n = (y_n - mean) / N
    array([-0.66666667, -0.33333333,  1.        ])
    """

    def __init__(self, loss_terms_fun: Callable, opt_par,
                 n_obs: Optional[int] = None,
                 prior_fun: Optional[Callable] = None,
                 solver: Union[str, Callable, None] = None,
                 validate_optimum: bool = True, *,
                 optimum_tol: Optional[float] = None,
                 solver_options: Optional[dict] = None) -> None:
        if not callable(loss_terms_fun):
            raise TypeError(f"loss_terms_fun must be callable; got "
                            f"{type(loss_terms_fun).__name__}")
        if prior_fun is not None and not callable(prior_fun):
            raise TypeError(f"prior_fun must be callable or None; got "
                            f"{type(prior_fun).__name__}")
        self._loss_terms = loss_terms_fun
        self._prior = prior_fun
        self._opt_par = _as_opt_par(opt_par)
        losses = np.asarray(user_call(loss_terms_fun, "loss_terms_fun",
                                      "at opt_par", self._opt_par))
        if losses.ndim != 1:
            raise ValueError(f"loss_terms_fun must return a 1-d vector of "
                             f"per-observation losses; got shape "
                             f"{losses.shape}")
        if n_obs is not None:
            n_obs = check_int(n_obs, "n_obs", minimum=1, type_error=ValueError)
            if losses.size != n_obs:
                raise ValueError(f"loss_terms_fun must return n_obs = {n_obs}"
                                 f" losses; got {losses.size}")
        if not np.all(np.isfinite(losses)):
            bad = np.flatnonzero(~np.isfinite(losses))
            raise ValueError(f"loss_terms_fun is not finite at opt_par for "
                             f"observation(s) {bad[:10].tolist()}")
        self._n_obs = losses.size
        self._ones = np.ones(self._n_obs)
        if prior_fun is not None:
            _scalar(prior_fun(self._opt_par), "prior_fun", "at opt_par")
        self._grad = autograd.grad(self.objective, argnum=0)
        self._loss_jvp = autograd.make_jvp(loss_terms_fun)(self._opt_par)
        self.solver = self._make_solver(solver, dict(solver_options or {}))
        grad0 = self._grad(self._opt_par, self._ones)
        if check_bool(validate_optimum, "validate_optimum"):
            _validate_optimum(grad0, self.solver, self._opt_par,
                              tol=optimum_tol, name="opt_par",
                              tol_name="optimum_tol")

    # ------------------------------------------------------------------ setup
    def objective(self, theta, weights):
        r"""The weighted objective :math:`\sum_n w_n \ell_n(\theta) +
        \pi(\theta)` (differentiable by autograd in both arguments)."""
        value = anp.dot(weights, self._loss_terms(theta))
        return value if self._prior is None else value + self._prior(theta)

    def _make_solver(self, solver, options):
        dim = self._opt_par.size
        kind = "auto" if solver is None else solver
        if kind == "auto":
            return hessian_solver_auto(
                self.objective, self._opt_par, (self._ones,),
                options=options, what="the Hessian of the objective at "
                "opt_par")[0]
        if not isinstance(kind, str):
            if not callable(kind):
                raise TypeError(f"solver must be a solver kind string or a "
                                f"callable; got {type(kind).__name__}")
            return as_solver(kind, dim=dim)
        if kind in _MATRIX_FREE_KINDS:
            return as_solver(kind, hvp=make_hvp_at(
                self.objective, self._opt_par, self._ones), dim=dim,
                **options)
        hess = dense_hessian(self.objective, self._opt_par, self._ones)
        if not np.all(np.isfinite(hess)):
            raise ValueError("the Hessian of the objective is not finite at "
                             "opt_par")
        options.setdefault("name", "the Hessian of the objective at opt_par")
        return as_solver(kind, hessian=hess, **options)

    @property
    def structure(self):
        """The :class:`~refold.sensitivity.structure.HessianStructure`
        ``'auto'`` chose from (``None`` when the caller chose the
        solver)."""
        return self.solver.info.get("structure")

    @property
    def n_obs(self) -> int:
        """``N``, the number of observations."""
        return self._n_obs

    @property
    def opt_par(self) -> np.ndarray:
        """A copy of the optimum."""
        return self._opt_par.copy()

    @property
    def loss_terms_fun(self) -> Callable:
        """The per-observation loss vector ``loss_terms_fun(theta)``."""
        return self._loss_terms

    @property
    def prior_fun(self) -> Optional[Callable]:
        """The unweighted prior or penalty (``None`` when there is none)."""
        return self._prior

    def _qoi(self, qoi_fun) -> Callable:
        """``q(theta)`` from a callable or an index into ``opt_par``."""
        return qoi_callable(qoi_fun, self._opt_par.size)

    def _pullback(self, theta_grad: np.ndarray) -> np.ndarray:
        r""":math:`-G H^{-1} c`: the weight derivatives of a function of
        :math:`\theta` with gradient ``c``, by one solve and one jvp."""
        v = np.asarray(self.solver(theta_grad))
        return -np.asarray(self._loss_jvp(v)[1])

    def _value_and_grad(self, fun: Callable, name: str):
        value = _scalar(fun(self._opt_par), name, "at opt_par")
        grad = np.asarray(autograd.grad(fun)(self._opt_par), dtype=float)
        if grad.shape != self._opt_par.shape or not np.all(np.isfinite(grad)):
            raise ValueError(f"the gradient of {name} at opt_par must be a "
                             f"finite vector of length {self._opt_par.size}")
        return value, grad

    # --------------------------------------------------------------- public
    def influence(self, qoi_fun) -> np.ndarray:
        r"""The influence scores :math:`dq/dw_n = -\nabla q^\top H^{-1}
        \nabla \ell_n`, at the base weights.

        Parameters
        ----------
        qoi_fun : callable or int
            ``q(theta)``, a scalar differentiable by autograd, or an index
            ``i`` meaning ``q(theta) = theta[i]``.

        Returns
        -------
        scores : numpy.ndarray, shape (N,)
            Dropping observation ``n`` changes ``q`` by about ``-scores[n]``.
        """
        _, grad = self._value_and_grad(self._qoi(qoi_fun), "qoi_fun")
        return self._pullback(grad)

    def total_influence(self, fun: Callable) -> np.ndarray:
        r"""Weight derivatives of a function of the optimum *and* the
        weights: :math:`\frac{d}{dw_n} F(\hat\theta(w), w) = -\nabla_\theta
        F^\top H^{-1}\nabla\ell_n + \partial F/\partial w_n` at ``w = 1``.

        Parameters
        ----------
        fun : callable
            ``fun(theta, weights)``, a scalar differentiable by autograd in
            both arguments (e.g. a standard error built from weighted
            residuals).

        Returns
        -------
        numpy.ndarray, shape (N,)
        """
        if not callable(fun):
            raise TypeError(f"fun must be callable fun(theta, weights); got "
                            f"{type(fun).__name__}")
        return self._total_influence(fun, "fun")[1]

    def _total_influence(self, fun: Callable, name: str):
        value = _scalar(fun(self._opt_par, self._ones), name,
                        "at opt_par with unit weights")
        d_theta = np.asarray(autograd.grad(fun, 0)(self._opt_par, self._ones),
                             dtype=float)
        d_w = np.asarray(autograd.grad(fun, 1)(self._opt_par, self._ones),
                         dtype=float)
        if not (np.all(np.isfinite(d_theta)) and np.all(np.isfinite(d_w))):
            raise ValueError(f"the derivatives of {name} at opt_par are not "
                             f"finite")
        return value, self._pullback(d_theta) + d_w

    def approximate_loo(self, qoi_fun=None) -> np.ndarray:
        r"""Infinitesimal-jackknife leave-one-out values.

        Parameters
        ----------
        qoi_fun : callable or int, optional
            With a quantity of interest: the first-order approximations
            :math:`q(\hat\theta_{-n}) \approx q(\hat\theta) - dq/dw_n`,
            shape ``(N,)``.  Without: the approximate leave-one-out optima
            :math:`\hat\theta_{-n} \approx \hat\theta + H^{-1}\nabla\ell_n`,
            shape ``(N, D)`` (the per-observation gradients by ``min(D, N)``
            forward or reverse passes, then one solve with ``N`` right-hand
            sides).

        Returns
        -------
        numpy.ndarray
        """
        if qoi_fun is not None:
            q = self._qoi(qoi_fun)
            value, grad = self._value_and_grad(q, "qoi_fun")
            return value - self._pullback(grad)
        # G (N, D) by D forward passes or N reverse sweeps, whichever is fewer.
        grads = jacobian_matrix(self._loss_terms, (self._opt_par,),
                                out_size=self._n_obs).T        # (D, N) = G^T
        return self._opt_par + np.asarray(self.solver(grads)).T

    def refit(self, weights, **refit_options: Any) -> np.ndarray:
        """Re-optimise with the given weights, from ``opt_par``, with
        :func:`refold.sensitivity.refit.refit`; returns the new optimum."""
        w = np.array(real_array(weights, "weights", allow_bool=True),
                     dtype=float)
        if w.shape != (self._n_obs,):
            raise ValueError(f"weights must have shape ({self._n_obs},); got "
                             f"{w.shape}")
        if not np.all(np.isfinite(w)):
            raise ValueError("weights must be finite")
        return _refit(self.objective, self._opt_par, w, **refit_options).x

    def drop_data(self, qoi_fun, alpha: float = 0.05, target: str = "sign",
                  se_fun: Optional[Callable] = None,
                  z: float = 1.96) -> DropDataResult:
        r"""The smallest set of observations whose removal is predicted, to
        first order, to flip the sign of ``q`` (``target='sign'``) or of
        the end of :math:`q \pm z\,se` nearest zero
        (``target='significance'``).

        Parameters
        ----------
        qoi_fun : callable or int
            ``q(theta)`` or an index into ``opt_par``.
        alpha : float, optional
            The largest fraction of the data that may be dropped (default
            0.05).
        target : {'sign', 'significance'}, optional
        se_fun : callable, optional
            ``se_fun(theta, weights)``, the standard error of ``q``
            (needed for ``'significance'``); it is linearised in both
            arguments, so a standard error that depends on the weights
            explicitly (e.g. a sandwich or residual variance) is handled.
        z : float, optional
            The critical value (default 1.96).

        Returns
        -------
        DropDataResult
            Call its ``refit_check()`` to re-fit without the set.

        See Also
        --------
        refold.sensitivity.drop_data.greedy_drop : the greedy recursive
            search, which re-ranks after every re-fitted step and finds sets
            whose members mask one another, where this one-shot ranking
            fails.

        Raises
        ------
        ValueError
            For ``alpha`` outside (0, 1], an unknown ``target``, a missing
            ``se_fun``, a non-positive ``z`` or standard error, or a target
            quantity exactly zero (its sign is undefined).
        """
        alpha = _number(alpha, "alpha")
        if not 0 < alpha <= 1:
            raise ValueError(f"alpha must be in (0, 1]; got {alpha}")
        if target not in _TARGETS:
            raise ValueError(f"target must be one of {_TARGETS}; got "
                             f"{target!r}")
        q = self._qoi(qoi_fun)
        q0, q_grad = self._value_and_grad(q, "qoi_fun")
        infl_q = self._pullback(q_grad)
        se0 = infl_se = None
        if target == "sign":
            t0, infl_t = q0, infl_q
        else:
            if se_fun is None or not callable(se_fun):
                raise ValueError("target='significance' needs se_fun, a "
                                 "callable se_fun(theta, weights)")
            z = _number(z, "z")
            if not (np.isfinite(z) and z > 0):
                raise ValueError(f"z must be a positive number; got {z!r}")
            se0, infl_se = self._total_influence(se_fun, "se_fun")
            if se0 <= 0:
                raise ValueError(f"se_fun must be positive at opt_par; got "
                                 f"{se0}")
            side = 1.0 if q0 >= 0 else -1.0   # the end nearest zero
            t0 = q0 - side * z * se0
            infl_t = infl_q - side * z * infl_se
        if t0 == 0:
            raise ValueError(f"the {target} target is exactly zero at "
                             f"opt_par, so its sign cannot be flipped")
        sign = np.sign(t0)
        # Dropping n changes the target by -infl_t[n]; it moves towards zero
        # by sign * infl_t[n].
        gain = sign * infl_t
        order = np.argsort(-gain, kind="stable")
        limit = int(np.floor(alpha * self._n_obs))
        useful = order[:limit][gain[order[:limit]] > 0]
        reached = np.flatnonzero(np.cumsum(gain[useful]) > abs(t0))
        found = reached.size > 0
        chosen = useful[:reached[0] + 1] if found else useful
        pred_q = q0 - float(np.sum(infl_q[chosen]))
        pred_se = None if infl_se is None else \
            se0 - float(np.sum(infl_se[chosen]))
        pred_t = t0 - float(np.sum(infl_t[chosen]))

        def refit_check(indices, base_target, options):
            weights = self._ones.copy()
            weights[indices] = 0.0
            theta = self.refit(weights, **options)
            qv = _scalar(q(theta), "qoi_fun", "at the re-fit")
            if target == "sign":
                sev, tv = None, qv
            else:
                sev = _scalar(se_fun(theta, weights), "se_fun", "at the re-fit")
                tv = qv - (1.0 if q0 >= 0 else -1.0) * z * sev
            return RefitCheck(theta, qv, sev, tv,
                              bool(np.sign(tv) != np.sign(base_target)))

        return DropDataResult(
            indices=np.asarray(chosen, dtype=int), found=bool(found),
            target=target, n_obs=self._n_obs, qoi=q0, predicted_qoi=pred_q,
            se=se0, predicted_se=pred_se, target_value=float(t0),
            predicted_target_value=pred_t, _refit=refit_check)
