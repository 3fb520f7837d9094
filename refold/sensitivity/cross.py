r"""Mixed second derivatives of a root in two hyperparameters.

Let :math:`G(\hat\theta(\epsilon_1, \epsilon_2), \epsilon_1, \epsilon_2) = 0`
with :math:`J = \partial G/\partial\theta` at the base point.  Differentiating
once in each hyperparameter, in directions :math:`\Delta_1, \Delta_2`,

.. math::

    \theta_1 = -J^{-1} G_{\epsilon_1}\Delta_1, \qquad
    \theta_2 = -J^{-1} G_{\epsilon_2}\Delta_2,

and once more,

.. math::

    \theta_{12} = -J^{-1}\bigl(
        G_{\theta\theta}[\theta_1, \theta_2]
        + G_{\theta\epsilon_1}[\theta_2, \Delta_1]
        + G_{\theta\epsilon_2}[\theta_1, \Delta_2]
        + G_{\epsilon_1\epsilon_2}[\Delta_1, \Delta_2]\bigr).

Every bracket is a nested forward-mode directional derivative of ``G``; no
tensor of second derivatives is formed.  :class:`OptimumChecker` uses this to
estimate how a sensitivity computed at an imperfect optimum would change
after a Newton step to the true one.

Public names and signatures are vittles 0.173's ``CrossSensitivity`` and
``OptimumChecker``.
"""
from __future__ import annotations

from typing import Any, Callable, Optional

import numpy as np

from refold.sensitivity._checks import (
    check_cross_column as _check_cross_column)
from refold.sensitivity._checks import as_vector as _as_vector
from refold.sensitivity._checks import check_bool as _check_flag
from refold.sensitivity._checks import real_array
from refold.sensitivity._equation_solver import (
    SolverSpec, _check_solver_spec, estimating_equation_solver)
from refold.sensitivity.hvp import directional_derivative

__all__ = ["CrossSensitivity", "OptimumChecker"]


def _jvp(fun: Callable, args: tuple, argnum: int, direction) -> Any:
    """Directional derivative of ``fun(*args)`` in argument ``argnum``
    (zero, silently, for a term that vanishes)."""
    return directional_derivative(fun, argnum, direction)(*args)


def _as_hyper(value: Any, name: str) -> np.ndarray:
    arr = np.array(real_array(value, name, what="a real number or array"),
                   dtype=np.float64)
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} must be finite; it has NaN or inf entries")
    return arr


def _as_direction(value: Any, name: str, like: np.ndarray,
                  like_name: str) -> np.ndarray:
    arr = _as_hyper(value, name)
    if arr.shape != like.shape:
        if arr.size == like.size == 1:
            return arr.reshape(like.shape)
        raise ValueError(f"{name} must have the shape of {like_name}, "
                         f"{like.shape}; got shape {arr.shape}")
    return arr


class CrossSensitivity:
    r"""The mixed derivative :math:`d^2\hat\theta/d\epsilon_1 d\epsilon_2`
    of a root, in two directions.

    Parameters
    ----------
    estimating_equation : callable
        ``G(input_par, hyper1, hyper2)`` returning an array of the length of
        ``input_par``, zero at the base point; differentiable twice by
        autograd in forward mode.
    solver : callable or str or None
        ``solver(b)`` returns :math:`J^{-1} b` with :math:`J = \partial
        G/\partial\theta` at the base point; or a solver kind
        (``'cholesky'``, ``'lu'``, ``'cg'``), or ``None`` (form ``J`` and
        choose Cholesky or, for a non-symmetric ``J``, LU).
    input_base : array_like, shape (D,)
        The root (``opt_par``).
    hyper1_base, hyper2_base : float or array_like
        Base values of the two hyperparameters (any shape).
    term_ii, term_i1, term_i2, term_12 : bool, optional
        Which of the four brackets above to include (all by default).  A
        bracket known to vanish (e.g. ``G`` linear in a hyperparameter) can
        be skipped.

    Notes
    -----
    Differences from vittles 0.173: every combination of the ``term_*``
    flags works (vittles raised ``AttributeError`` whenever ``term_ii`` and
    ``term_i1`` or ``term_i2`` were both off, and could not solve when all
    were off); no "experimental" warning; the solver may be a kind or
    ``None``; directions are checked against the base shapes.  The base
    point is deliberately not required to be a root:
    :class:`OptimumChecker` builds on that.
    """

    def __init__(self, estimating_equation: Callable, solver: SolverSpec,
                 input_base, hyper1_base, hyper2_base,
                 term_ii: bool = True, term_i1: bool = True,
                 term_i2: bool = True, term_12: bool = True) -> None:
        if not callable(estimating_equation):
            raise TypeError("estimating_equation must be callable; got "
                            f"{type(estimating_equation).__name__}")
        self._g = estimating_equation
        self._input_base = _as_vector(input_base, "input_base")
        self._hyper1_base = _as_hyper(hyper1_base, "hyper1_base")
        self._hyper2_base = _as_hyper(hyper2_base, "hyper2_base")
        self._terms = dict(
            ii=_check_flag(term_ii, "term_ii"),
            i1=_check_flag(term_i1, "term_i1"),
            i2=_check_flag(term_i2, "term_i2"),
            b12=_check_flag(term_12, "term_12"))
        spec = _check_solver_spec(solver, "solver")
        dim = self._input_base.shape[0]
        value = np.asarray(self._g(*self._base()))
        if value.shape != (dim,):
            raise ValueError(
                f"estimating_equation must return an array of shape ({dim},) "
                f"(the shape of input_base); got shape {value.shape}")
        self._solver, _ = estimating_equation_solver(
            self._g, self._input_base,
            (self._hyper1_base, self._hyper2_base), spec,
            what="the Jacobian of estimating_equation at input_base")

    def _base(self) -> tuple:
        return (self._input_base, self._hyper1_base, self._hyper2_base)

    def _vec(self, value: Any) -> np.ndarray:
        # autograd's scalar zero (no dependence) becomes a zero vector;
        # anything else of the wrong shape is an error, never broadcast.
        dim = self._input_base.shape[0]
        return _check_cross_column(value, (dim,), "estimating_equation")

    def _solve(self, rhs: np.ndarray) -> np.ndarray:
        return np.asarray(self._solver(rhs), dtype=float).reshape(rhs.shape)

    def _check_di(self, value: Any, name: str) -> np.ndarray:
        return _as_vector(value, name, length=self._input_base.shape[0])

    def get_di1(self, dh1) -> np.ndarray:
        r""":math:`\theta_1 = -J^{-1} G_{\epsilon_1}\Delta_1` for
        ``dh1`` (shape of ``hyper1_base``)."""
        dh1 = _as_direction(dh1, "dh1", self._hyper1_base, "hyper1_base")
        return -self._solve(self._vec(_jvp(self._g, self._base(), 1, dh1)))

    def get_di2(self, dh2) -> np.ndarray:
        r""":math:`\theta_2 = -J^{-1} G_{\epsilon_2}\Delta_2` for
        ``dh2`` (shape of ``hyper2_base``)."""
        dh2 = _as_direction(dh2, "dh2", self._hyper2_base, "hyper2_base")
        return -self._solve(self._vec(_jvp(self._g, self._base(), 2, dh2)))

    def evaluate(self, dh1, dh2, di1=None, di2=None,
                 debug: bool = False) -> np.ndarray:
        r"""The mixed derivative :math:`\theta_{12}` in directions
        ``dh1``, ``dh2``.

        Parameters
        ----------
        dh1, dh2 : float or array_like
            Directions, of the shapes of ``hyper1_base`` and ``hyper2_base``.
        di1, di2 : array_like, shape (D,), optional
            Precomputed :meth:`get_di1` / :meth:`get_di2` results.
        debug : bool, optional
            Print the size (max-abs) of each term.

        Returns
        -------
        d2input : numpy.ndarray, shape (D,)
        """
        g = self._g
        base = self._base()
        dh1 = _as_direction(dh1, "dh1", self._hyper1_base, "hyper1_base")
        dh2 = _as_direction(dh2, "dh2", self._hyper2_base, "hyper2_base")
        t = self._terms
        if t["ii"] or t["i2"]:
            di1 = self.get_di1(dh1) if di1 is None else \
                self._check_di(di1, "di1")
        if t["ii"] or t["i1"]:
            di2 = self.get_di2(dh2) if di2 is None else \
                self._check_di(di2, "di2")

        def d_input(direction):
            return lambda *args: _jvp(g, args, 0, direction)

        terms = {}
        if t["ii"]:
            terms["g_ii"] = _jvp(d_input(di1), base, 0, di2)
        if t["i1"]:
            terms["g_i1"] = _jvp(d_input(di2), base, 1, dh1)
        if t["i2"]:
            terms["g_i2"] = _jvp(d_input(di1), base, 2, dh2)
        if t["b12"]:
            terms["g_12"] = _jvp(
                lambda *args: _jvp(g, args, 1, dh1), base, 2, dh2)
        dim = self._input_base.shape[0]
        total = np.zeros(dim)
        for key in terms:
            terms[key] = self._vec(terms[key])
            total = total + terms[key]
        if debug:
            for key, val in terms.items():
                print(f"{key}: max-abs {np.max(np.abs(val)):.6g}")
        if not terms:
            return np.zeros(dim)
        return -self._solve(total)


class OptimumChecker:
    r"""Estimate the error in a sensitivity caused by an inexact optimum.

    At a point :math:`\theta_0` with :math:`G(\theta_0, \epsilon_0) = g_0
    \neq 0`, the point is the exact root of :math:`G(\theta, \epsilon) +
    \lambda` at :math:`\lambda_0 = -g_0`; the true root is at
    :math:`\lambda = 0`.  Moving :math:`\lambda` by :math:`g_0` is (to first
    order) the Newton step, and the mixed derivative in :math:`(\epsilon,
    \lambda)` estimates how :math:`d\hat\theta/d\epsilon` changes over it.

    Parameters
    ----------
    estimating_equation : callable
        ``G(input_par, hyper_par)``, e.g. the gradient of an objective.
    solver : callable or str or None
        :math:`b \mapsto J^{-1} b` at ``input_base`` (``J`` the Jacobian of
        ``G``, the Hessian for a gradient), a kind, or ``None``.
    input_base : array_like, shape (D,)
        The approximate optimum.
    hyper_base : float or array_like
        The hyperparameter at which ``input_base`` was computed.

    Notes
    -----
    Differences from vittles 0.173: inputs are checked; the Newton step is
    computed once and cached.  ``input_base`` is deliberately not required
    to be an optimum.
    """

    def __init__(self, estimating_equation: Callable, solver: SolverSpec,
                 input_base, hyper_base) -> None:
        if not callable(estimating_equation):
            raise TypeError("estimating_equation must be callable; got "
                            f"{type(estimating_equation).__name__}")
        self._input_base = _as_vector(input_base, "input_base")
        self._hyper_base = _as_hyper(hyper_base, "hyper_base")
        residual = np.asarray(
            estimating_equation(self._input_base, self._hyper_base),
            dtype=float)
        dim = self._input_base.shape[0]
        if residual.shape != (dim,):
            raise ValueError(
                f"estimating_equation must return an array of shape ({dim},) "
                f"(the shape of input_base); got shape {residual.shape}")
        if not np.all(np.isfinite(residual)):
            raise ValueError("estimating_equation is not finite at "
                             "input_base")

        def with_multiplier(par, hyper, lam):
            return estimating_equation(par, hyper) + lam

        self._lam_base = -residual
        self._dlam = residual
        self._newton_step: Optional[np.ndarray] = None
        self._cross = CrossSensitivity(
            with_multiplier, solver, self._input_base, self._hyper_base,
            self._lam_base, term_i2=False, term_12=False)

    def get_newton_step(self) -> np.ndarray:
        r"""The Newton step :math:`-J^{-1} G(\theta_0, \epsilon_0)` to the
        optimum."""
        if self._newton_step is None:
            self._newton_step = self._cross.get_di2(self._dlam)
        return self._newton_step.copy()

    def get_dinput_dhyper(self, dhyper) -> np.ndarray:
        r"""The first-order change of the optimum for a hyperparameter
        change ``dhyper`` (shape of ``hyper_base``), at ``input_base``."""
        return self._cross.get_di1(_as_direction(dhyper, "dhyper",
                                                 self._hyper_base,
                                                 "hyper_base"))

    def _dhyper(self, hyper_new) -> np.ndarray:
        new = _as_direction(hyper_new, "hyper_new", self._hyper_base,
                            "hyper_base")
        return new - self._hyper_base

    def correction(self, hyper_new, dinput_dhyper=None,
                   newton_step=None) -> np.ndarray:
        r"""The first-order change of the sensitivity term
        :math:`(d\hat\theta/d\epsilon)(\epsilon_{new} - \epsilon_0)` over the
        Newton step to the optimum."""
        dhyper = self._dhyper(hyper_new)
        if dinput_dhyper is None:
            dinput_dhyper = self.get_dinput_dhyper(dhyper)
        if newton_step is None:
            newton_step = self.get_newton_step()
        return self._cross.evaluate(dhyper, self._dlam, di1=dinput_dhyper,
                                    di2=newton_step)

    def evaluate(self, hyper_new, dinput_dhyper=None,
                 newton_step=None) -> np.ndarray:
        r"""``input_base`` plus the sensitivity prediction for
        ``hyper_new``, corrected to first order for the inexact optimum."""
        dhyper = self._dhyper(hyper_new)
        if dinput_dhyper is None:
            dinput_dhyper = self.get_dinput_dhyper(dhyper)
        dinput_dhyper = _as_vector(dinput_dhyper, "dinput_dhyper",
                                   length=self._input_base.shape[0])
        return self._input_base + dinput_dhyper + self.correction(
            hyper_new, dinput_dhyper=dinput_dhyper, newton_step=newton_step)
