r"""Sensitivity to observation weights of the root of an estimating equation.

Many estimators are not minimisers but roots of a sum of per-observation
moment contributions,

.. math::

    G(\theta, w) = \sum_{n=1}^N w_n \psi_n(\theta) = 0,

for example linear instrumental variables, :math:`\psi_n = z_n (y_n -
x_n^\top\theta)` (just identified: as many instruments as regressors).  With
:math:`J = \partial G/\partial\theta` (not symmetric in general) the
implicit function theorem gives :math:`d\hat\theta/dw_n = -J^{-1}
\psi_n(\hat\theta)`, so for a quantity of interest :math:`q`

.. math::

    \frac{dq}{dw_n} = -\psi_n^\top u, \qquad J^\top u = \nabla q,

one transposed solve and one product with the ``(N, D)`` moment matrix.
:class:`EstimatingEquationWeights` provides these scores, re-fits at new
weights, and works with the drop-data searches of
:mod:`refold.sensitivity.drop_data` (Newton on the equation, a line search
on :math:`\|G\|^2/2`, and ``scipy.optimize.root`` as the confirming fit).
:meth:`EstimatingEquationWeights.linear_iv` builds the linear IV case and
checks the design, the instruments and their relevance, naming the columns
at fault.
"""
from __future__ import annotations

from typing import Any, Callable, Optional, Sequence

import autograd
import autograd.numpy as anp
import numpy as np

from refold.sensitivity._checks import check_bool, real_array
from refold.sensitivity.standard_errors import check_nonsingular

__all__ = ["EstimatingEquationWeights"]


class EstimatingEquationWeights:
    r"""Influence of each observation on the root of
    :math:`\sum_n w_n \psi_n(\theta) = 0`.

    Parameters
    ----------
    moment_fun : callable
        ``moment_fun(theta)`` returns the ``(N, D)`` matrix of
        per-observation contributions :math:`\psi_n(\theta)`,
        differentiable by autograd.
    opt_par : array_like, shape (D,)
        The root at unit weights.
    validate_optimum : bool, optional
        Check (default) that ``opt_par`` is a root: the Newton step
        :math:`J^{-1} G` must be below ``optimum_tol`` (default ``1e-6``)
        times ``max(1, max|opt_par|)``.
    optimum_tol : float, optional

    Raises
    ------
    ValueError
        For a mis-shaped or non-finite ``opt_par`` or moment matrix, a
        singular Jacobian, or a point that is not a root.

    Examples
    --------
    The mean as the root of :math:`\sum_n w_n (y_n - \theta) = 0`:

    >>> import numpy as np
    >>> y = np.array([1.0, 2.0, 6.0])
    >>> ee = EstimatingEquationWeights(lambda t: (y - t[0])[:, None],
    ...                                np.array([3.0]))
    >>> ee.influence(0)
    array([-0.66666667, -0.33333333,  1.        ])
    """

    def __init__(self, moment_fun: Callable, opt_par: Any, *,
                 validate_optimum: bool = True,
                 optimum_tol: Optional[float] = None) -> None:
        if not callable(moment_fun):
            raise TypeError(f"moment_fun must be callable; got "
                            f"{type(moment_fun).__name__}")
        theta = np.array(real_array(opt_par, "opt_par"), dtype=float)
        if theta.ndim != 1 or theta.size == 0 or \
                not np.all(np.isfinite(theta)):
            raise ValueError(f"opt_par must be a finite non-empty 1-d array; "
                             f"got shape {theta.shape}")
        moments = np.asarray(moment_fun(theta))
        if moments.ndim != 2 or moments.shape[1] != theta.size:
            raise ValueError(f"moment_fun must return an (N, {theta.size}) "
                             f"matrix; got shape {moments.shape}")
        if not np.all(np.isfinite(moments)):
            bad = np.argwhere(~np.isfinite(moments))[0].tolist()
            raise ValueError(f"moment_fun is not finite at opt_par; entry "
                             f"{bad}")
        self._moment_fun = moment_fun
        self._opt_par = theta
        self._n_obs = moments.shape[0]
        self._jac = autograd.jacobian(self.equation, 0)
        if check_bool(validate_optimum, "validate_optimum"):
            tol = 1e-6 if optimum_tol is None else float(optimum_tol)
            ones = np.ones(self._n_obs)
            step = np.linalg.solve(self.jacobian(theta, ones),
                                   self.equation(theta, ones))
            size = float(np.max(np.abs(step)))
            if not size <= tol * max(1.0, float(np.max(np.abs(theta)))):
                raise ValueError(f"opt_par is not a root of the estimating "
                                 f"equation: the Newton step is {size:.3g} "
                                 f"(tol {tol:.3g}); solve it first or pass "
                                 f"validate_optimum=False")

    @classmethod
    def linear_iv(cls, x: Any, y: Any, z: Any, *,
                  names: Optional[Sequence[str]] = None,
                  instrument_names: Optional[Sequence[str]] = None
                  ) -> "EstimatingEquationWeights":
        r"""Just-identified linear instrumental variables,
        :math:`\hat\theta = (Z^\top X)^{-1} Z^\top y`.

        Parameters
        ----------
        x : array_like, shape (N, D)
            Regressors (with the endogenous ones and an intercept column).
        y : array_like, shape (N,)
        z : array_like, shape (N, D)
            Instruments (the exogenous regressors instrument themselves).
        names, instrument_names : sequence of str, optional
            Column names for error messages.

        Raises
        ------
        ValueError
            Mis-shaped or non-finite data, collinear regressors or
            instruments (named), or instruments that do not identify the
            regressors (:math:`Z^\top X` near-singular).
        """
        x = np.array(real_array(x, "x"), dtype=float)
        y = np.array(real_array(y, "y"), dtype=float)
        z = np.array(real_array(z, "z"), dtype=float)
        if x.ndim != 2 or z.shape != x.shape or y.shape != (x.shape[0],) \
                or x.shape[0] <= x.shape[1]:
            raise ValueError(f"x and z must be (N, D) with N > D and y "
                             f"(N,); got x {x.shape}, z {z.shape}, y "
                             f"{y.shape}")
        for key, arr in (("x", x), ("y", y), ("z", z)):
            if not np.all(np.isfinite(arr)):
                raise ValueError(f"{key} must be finite")
        dim = x.shape[1]
        names = [f"x[:, {j}]" for j in range(dim)] if names is None \
            else list(names)
        inames = [f"z[:, {j}]" for j in range(dim)] \
            if instrument_names is None else list(instrument_names)
        check_nonsingular(x.T @ x, "X'X", names)
        check_nonsingular(z.T @ z, "Z'Z", inames)
        zx = z.T @ x
        sv = np.linalg.svd(zx / np.sqrt(np.outer(np.sum(z * z, 0),
                                                 np.sum(x * x, 0))),
                           compute_uv=False)
        if sv[-1] <= 1e-10 * sv[0]:
            _, _, vt = np.linalg.svd(zx)
            weak = [names[j] for j in np.flatnonzero(
                np.abs(vt[-1]) > 0.1 * np.max(np.abs(vt[-1])))]
            raise ValueError(f"Z'X is singular or nearly so: the instruments "
                             f"do not identify {weak}")
        theta = np.linalg.solve(zx, z.T @ y)

        def moments(t):
            return z * (y - anp.dot(x, t))[:, None]
        return cls(moments, theta)

    # --------------------------------------------------------------- parts
    @property
    def n_obs(self) -> int:
        """``N``."""
        return self._n_obs

    @property
    def opt_par(self) -> np.ndarray:
        """A copy of the root at unit weights."""
        return self._opt_par.copy()

    @property
    def moment_fun(self) -> Callable:
        """The per-observation contributions ``moment_fun(theta)``."""
        return self._moment_fun

    def moments(self, theta) -> np.ndarray:
        """The ``(N, D)`` moment matrix at ``theta``."""
        return np.asarray(self._moment_fun(theta), dtype=float)

    def equation(self, theta, weights):
        r""":math:`G(\theta, w) = \sum_n w_n \psi_n(\theta)`
        (differentiable by autograd)."""
        return anp.dot(weights, self._moment_fun(theta))

    def jacobian(self, theta, weights) -> np.ndarray:
        r""":math:`\partial G / \partial\theta` at (theta, weights)."""
        return np.asarray(self._jac(theta, weights), dtype=float)

    # -------------------------------------------------------------- public
    def influence(self, qoi_fun: Any) -> np.ndarray:
        r"""The influence scores :math:`dq/dw_n` at unit weights.

        Parameters
        ----------
        qoi_fun : callable or int
            ``q(theta)`` or an index into ``opt_par``.

        Returns
        -------
        numpy.ndarray, shape (N,)
            Dropping ``n`` changes ``q`` by about ``-scores[n]``.
        """
        if isinstance(qoi_fun, (int, np.integer)) and not isinstance(
                qoi_fun, (bool, np.bool_)):
            grad = np.zeros(self._opt_par.size)
            if not -grad.size <= qoi_fun < grad.size:
                raise ValueError(f"qoi_fun as an index must be in [0, "
                                 f"{grad.size}); got {qoi_fun}")
            grad[qoi_fun] = 1.0
        elif callable(qoi_fun):
            grad = np.asarray(autograd.grad(qoi_fun)(self._opt_par),
                              dtype=float)
        else:
            raise TypeError(f"qoi_fun must be a callable q(theta) or an "
                            f"index; got {type(qoi_fun).__name__}")
        ones = np.ones(self._n_obs)
        u = np.linalg.solve(self.jacobian(self._opt_par, ones).T, grad)
        return -self.moments(self._opt_par) @ u

    def refit(self, weights: Any, *, xtol: float = 1e-12) -> np.ndarray:
        """The root at new weights (``scipy.optimize.root``, from
        ``opt_par``, with the autograd Jacobian).

        Raises
        ------
        ValueError
            Weights of the wrong shape or not finite, or no convergence.
        """
        w = np.asarray(weights, dtype=float)
        if w.shape != (self._n_obs,) or not np.all(np.isfinite(w)):
            raise ValueError(f"weights must be a finite vector of shape "
                             f"({self._n_obs},); got shape {w.shape}")
        return solve_root(lambda t: self.equation(t, w),
                          lambda t: self.jacobian(t, w), self._opt_par, xtol)


def solve_root(equation: Callable, jacobian: Callable, start: np.ndarray,
               xtol: float = 1e-12) -> np.ndarray:
    """``scipy.optimize.root`` (Powell's hybrid method), then Newton steps
    while they shrink, until a Newton step is below ``xtol`` times
    ``max(1, max|x|)``; ``ValueError`` otherwise (with scipy's message)."""
    import scipy.optimize  # on first use: slow to import
    res = scipy.optimize.root(equation, start, jac=jacobian, method="hybr")
    x = np.asarray(res.x, dtype=float)
    last = np.inf
    for _ in range(20):
        if not np.all(np.isfinite(x)):
            break
        try:
            step = np.linalg.solve(jacobian(x), -np.asarray(equation(x)))
        except np.linalg.LinAlgError:
            break
        size = float(np.max(np.abs(step)))
        if size <= xtol * max(1.0, float(np.max(np.abs(x)))):
            return x + step
        if not size < last:
            break
        x, last = x + step, size
    raise ValueError(f"refit did not converge: {res.message.strip()} (last "
                     f"Newton step {last:.3g})")
