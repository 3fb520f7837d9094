r"""The Neyman-Scott problem: why the joint MLE is inconsistent.

Model: ``N`` pairs, a latent mean :math:`z_n \sim N(0, s^2)` per pair
(``s = prior_scale``, known) and

.. math::

    y_{na},\, y_{nb} \mid z_n, \theta \sim N(z_n, \theta)
    \quad\text{independently},

with the variance :math:`\theta > 0` the global parameter, described by
``NumericScalarPattern(lb=0)`` (free coordinate :math:`\log\theta`).

Three estimators, :func:`fit` ``method=``:

``'joint'``
    Maximise over :math:`(\theta, z)` jointly, ignoring the prior:
    :math:`\hat z_n = (y_{na} + y_{nb})/2` and :math:`\hat\theta =
    \sum_n (y_{na} - y_{nb})^2 / (4N)` (closed form), which converges to
    :math:`\theta_0 / 2`. Its reported SE, :math:`\hat\theta/\sqrt{N}` from
    the joint Hessian, is itself too small: the estimator's sampling SD is
    :math:`\hat\theta\sqrt{2/N}`.
``'marginal'``
    Maximise :math:`\log p(y \mid \theta)`: each pair is bivariate normal,
    variances :math:`s^2 + \theta`, covariance :math:`s^2`, so with
    :math:`d_n = y_{na} - y_{nb}` and :math:`u_n = y_{na} + y_{nb}`,

    .. math::

        \log p(y_n \mid \theta) = -\log 2\pi - \tfrac12\log\theta
          - \tfrac12\log(\theta + 2s^2) - \frac{d_n^2}{4\theta}
          - \frac{u_n^2}{4(\theta + 2s^2)}.

    Optimised over :math:`\log\theta` by trust-region Newton with
    Hessian-vector products (:func:`refold.sensitivity.refit.refit`); SE from
    the inverse Hessian. Consistent.
``'em'``
    EM with the exact E-step :math:`q(z_n) = N(m_n, v_n)`,
    :math:`v_n = (2/\theta + 1/s^2)^{-1}`, :math:`m_n = v_n u_n / \theta`
    (:math:`\eta_n = (m_n, \log v_n)`, a ``PatternArray`` over pairs), and
    the closed-form M-step :math:`\theta = \frac{1}{2N}\sum_n [(y_{na} -
    m_n)^2 + (y_{nb} - m_n)^2 + 2 v_n]`, vectorised over pairs and iterated
    to tight convergence. Covariances from
    :class:`~refold.models.em_covariance.EMCovariance` (the corrected one
    equals the marginal MLE's; the naive one is smaller), plus Louis', whose
    score variance is closed form here.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional

import autograd
import autograd.numpy as np
import numpy as onp

from refold.models._data import (check_int, check_positive, check_tol,
                                 check_data_scale, check_variance,
                                 resolve_rng)
from refold.models._em_fit import em_covariances, iterate_em
from refold.models.em_covariance import EMCovariance
from refold.patterns.containers import PatternArray, PatternDict
from refold.patterns.numeric import NumericArrayPattern, NumericScalarPattern
from refold.sensitivity.refit import refit

__all__ = ["NeymanScottData", "NeymanScottFit", "simulate", "fit",
           "theta_pattern", "eta_pattern", "e_step",
           "marginal_log_likelihood", "negative_em_objective", "METHODS"]

METHODS = ("joint", "marginal", "em")
_LOG_2PI = float(onp.log(2 * onp.pi))


# ----------------------------------------------------------------------
# Data and results.

@dataclass
class NeymanScottData:
    """Simulated (or observed) Neyman-Scott pairs.

    Attributes
    ----------
    y : numpy.ndarray, shape (N, 2)
        The pairs :math:`(y_{na}, y_{nb})`.
    z : numpy.ndarray, shape (N,) or None
        The latent means, when simulated.
    theta : float or None
        The true variance, when simulated.
    prior_scale : float
        The known prior standard deviation ``s`` of :math:`z_n`.
    """

    y: onp.ndarray
    z: Optional[onp.ndarray] = None
    theta: Optional[float] = None
    prior_scale: float = 1.0

    @property
    def n_pairs(self) -> int:
        """Number of pairs ``N``."""
        return int(self.y.shape[0])


@dataclass
class NeymanScottFit:
    """The result of :func:`fit`.

    Attributes
    ----------
    method : str
        ``'joint'``, ``'marginal'`` or ``'em'``.
    theta : float
        The estimate :math:`\\hat\\theta` (a variance).
    se : float
        Its standard error (of :math:`\\theta`, by the delta method from
        :math:`\\log\\theta`): from the joint Hessian (``'joint'``, too small
        by :math:`\\sqrt 2`), the marginal Hessian (``'marginal'``) or the
        EM-fix (``'em'``).
    z : numpy.ndarray, shape (N,)
        :math:`\\hat z_n` (``'joint'``) or the posterior means
        :math:`E[z_n \\mid y, \\hat\\theta]` (``'marginal'``, ``'em'``).
    covariances : dict of str to numpy.ndarray, shape (1, 1)
        Covariances of :math:`\\hat\\theta`: ``'joint'`` (joint Hessian),
        ``'marginal'`` (marginal Hessian), or for ``'em'`` ``'corrected'``
        (marginal-Hessian fix), ``'naive'`` (Q-function Hessian) and
        ``'louis'`` (Louis' formula).
    n_iter : int
        Iterations: 0 (closed form), optimiser iterations (``'marginal'``)
        or EM iterations.
    marginal_log_likelihood : float
        :math:`\\log p(y \\mid \\hat\\theta)`.
    em_covariance : EMCovariance or None
        For ``'em'``, the object behind the covariances (its
        ``comparison_table()`` prints them side by side).
    """

    method: str
    theta: float
    se: float
    z: onp.ndarray
    covariances: dict = field(default_factory=dict)
    n_iter: int = 0
    marginal_log_likelihood: float = float("nan")
    em_covariance: Optional[EMCovariance] = None


# ----------------------------------------------------------------------
# Patterns and the model's functions (differentiable by autograd).

def theta_pattern() -> NumericScalarPattern:
    """The pattern of :math:`\\theta`: a positive scalar, free
    coordinate :math:`\\log\\theta`."""
    return NumericScalarPattern(lb=0.0)


def eta_pattern(n_pairs: int) -> PatternArray:
    """The pattern of the E-step parameters: per pair a dict with ``'mean'``
    (:math:`m_n`) and ``'var'`` (:math:`v_n > 0`, free :math:`\\log v_n`);
    folded, a dict of two arrays of shape ``(n_pairs,)``."""
    base = PatternDict()
    base["mean"] = NumericArrayPattern(())
    base["var"] = NumericArrayPattern((), lb=0.0)
    return PatternArray((check_int(n_pairs, "n_pairs", 1),), base)


def _scalar(theta):
    return np.reshape(theta, ())


def marginal_log_likelihood(theta: Any, y: onp.ndarray,
                            prior_scale: float = 1.0):
    r""":math:`\log p(y \mid \theta) = \sum_n \log N(y_n; 0, \Sigma)`,
    :math:`\Sigma = \theta I + s^2 \mathbf{1}\mathbf{1}^\top` (see the
    module notes). ``theta`` is a scalar or a length-1 array."""
    theta = _scalar(check_variance(theta, "theta"))
    check_variance(prior_scale, "prior_scale")
    y = _as_pairs(y, "y")
    d2 = (y[:, 0] - y[:, 1]) ** 2
    u2 = (y[:, 0] + y[:, 1]) ** 2
    wide = theta + 2.0 * prior_scale ** 2
    n = y.shape[0]
    return (-n * _LOG_2PI - 0.5 * n * (np.log(theta) + np.log(wide))
            - np.sum(d2) / (4.0 * theta) - np.sum(u2) / (4.0 * wide))


def negative_em_objective(theta: Any, eta: dict, y: onp.ndarray,
                          prior_scale: float = 1.0):
    r"""The negative EM objective :math:`-E_q[\log p(y, z \mid \theta)] +
    E_q[\log q(z)]` for :math:`q(z_n) = N(m_n, v_n)`.

    ``theta`` is a scalar or a length-1 array, ``eta`` the folded value of
    :func:`eta_pattern` (``{'mean': (N,), 'var': (N,)}``).
    """
    theta = _scalar(check_variance(theta, "theta"))
    check_variance(prior_scale, "prior_scale")
    y = _as_pairs(y, "y")
    if not isinstance(eta, dict) or "mean" not in eta or "var" not in eta:
        raise TypeError("eta: expected a dict with 'mean' and 'var' (a folded "
                        "value of eta_pattern), got {}".format(
                            type(eta).__name__))
    m, v = eta["mean"], check_variance(eta["var"], "eta['var']")
    s2 = prior_scale ** 2
    resid = (y[:, 0] - m) ** 2 + (y[:, 1] - m) ** 2 + 2.0 * v
    neg_log_lik = np.log(theta) + _LOG_2PI + resid / (2.0 * theta)
    neg_log_prior = 0.5 * (_LOG_2PI + np.log(s2)) + (m ** 2 + v) / (2 * s2)
    entropy = 0.5 * (_LOG_2PI + 1.0 + np.log(v))
    return np.sum(neg_log_lik + neg_log_prior - entropy)


def e_step(theta: float, y: onp.ndarray, prior_scale: float = 1.0) -> dict:
    """The exact posterior :math:`q(z_n) = N(m_n, v_n)` at ``theta``, as a
    folded value of :func:`eta_pattern`."""
    theta = float(onp.reshape(check_variance(theta, "theta"), ()))
    prior_scale = check_positive(prior_scale, "prior_scale")
    y = _as_pairs(y, "y")
    var = 1.0 / (2.0 / theta + 1.0 / prior_scale ** 2)
    mean = var * (y[:, 0] + y[:, 1]) / theta
    return {"mean": mean, "var": onp.full(y.shape[0], var)}


def _m_step(eta: dict, y: onp.ndarray) -> float:
    m, v = eta["mean"], eta["var"]
    resid = (y[:, 0] - m) ** 2 + (y[:, 1] - m) ** 2 + 2.0 * v
    return float(onp.mean(resid) / 2.0)


def _louis_fun(y: onp.ndarray):
    r"""Conditional variance of the complete-data score in :math:`\log\theta`.

    The score is :math:`-1 + Q_n / (2\theta)` with :math:`Q_n = 2(z_n -
    \bar y_n)^2 + d_n^2/2`, so :math:`\mathrm{Var}_q = (2 v_n^2 + 4 v_n (m_n -
    \bar y_n)^2) / \theta^2`.
    """
    centre = y.mean(axis=1)

    def louis(theta, eta):
        theta = float(onp.reshape(theta, ()))
        m, v = onp.asarray(eta["mean"]), onp.asarray(eta["var"])
        var = (2.0 * v ** 2 + 4.0 * v * (m - centre) ** 2) / theta ** 2
        return onp.array([[onp.sum(var)]])
    return louis


# ----------------------------------------------------------------------
# Checks.

def _as_pairs(data: Any, name: str = "data") -> onp.ndarray:
    y = data.y if isinstance(data, NeymanScottData) else data
    label = name + ".y" if isinstance(data, NeymanScottData) or \
        name == "data" else name
    try:
        arr = onp.asarray(y)
    except Exception:  # ragged nested lists
        arr = onp.asarray(None)
    if arr.dtype == object or not onp.issubdtype(arr.dtype, onp.number) or \
            onp.iscomplexobj(arr):
        raise TypeError("{}: expected NeymanScottData or an (N, 2) real "
                        "array, got dtype {}".format(name, arr.dtype))
    if arr.ndim != 2 or arr.shape[1] != 2 or arr.shape[0] == 0:
        raise ValueError("{}: expected shape (N, 2) with N >= 1, got "
                         "{}".format(label, arr.shape))
    arr = arr.astype(float)
    if not onp.all(onp.isfinite(arr)):
        n, j = onp.argwhere(~onp.isfinite(arr))[0]
        raise ValueError("{}[{}, {}] is {}; the pairs must be "
                         "finite".format(label, n, j, arr[n, j]))
    return arr


# ----------------------------------------------------------------------

def simulate(n_pairs: int, theta: float, rng: Any = None,
             prior_scale: float = 1.0) -> NeymanScottData:
    r"""Simulate Neyman-Scott pairs.

    :math:`z_n \sim N(0, s^2)` with ``s = prior_scale``, then
    :math:`y_{na}, y_{nb} \sim N(z_n, \theta)` independently.

    Parameters
    ----------
    n_pairs : int
        ``N >= 1``.
    theta : float
        The within-pair variance, ``> 0``.
    rng : None, int or numpy.random.Generator, optional
        Source of randomness (a seed gives reproducible data).
    prior_scale : float, optional
        Standard deviation of the latent means (default 1).

    Returns
    -------
    NeymanScottData

    Examples
    --------
    >>> data = simulate(3, 2.0, rng=0)
    >>> data.y.shape, data.z.shape
    ((3, 2), (3,))
    """
    n_pairs = check_int(n_pairs, "n_pairs", 1)
    theta = check_positive(theta, "theta")
    prior_scale = check_positive(prior_scale, "prior_scale")
    rng = resolve_rng(rng)
    z = prior_scale * rng.standard_normal(n_pairs)
    y = z[:, None] + onp.sqrt(theta) * rng.standard_normal((n_pairs, 2))
    return NeymanScottData(y=y, z=z, theta=theta, prior_scale=prior_scale)


def fit(data: Any, method: str = "marginal", *,
        prior_scale: Optional[float] = None,
        theta_init: Optional[float] = None, tol: float = 1e-13,
        max_iter: int = 100000) -> NeymanScottFit:
    r"""Estimate :math:`\theta` by the joint MLE, the marginal MLE or EM.

    Parameters
    ----------
    data : NeymanScottData or array_like, shape (N, 2)
        The pairs.
    method : {'joint', 'marginal', 'em'}
        See the module notes.
    prior_scale : float, optional
        Prior SD of :math:`z_n`; default ``data.prior_scale`` (1 for a plain
        array). Not used by ``'joint'``.
    theta_init : float, optional
        Starting value for ``'marginal'`` and ``'em'``; default the
        consistent moment estimate :math:`\overline{d^2}/2`.
    tol : float, optional
        EM stops when the relative change of :math:`\theta` is at most
        ``tol`` (default ``1e-13``).
    max_iter : int, optional
        Iteration limit of EM (default 100000).

    Returns
    -------
    NeymanScottFit

    Raises
    ------
    TypeError, ValueError
        Bad data or arguments (named in the message); EM that does not
        converge within ``max_iter``; a sample whose pairs are all equal
        (:math:`\hat\theta = 0`).

    Examples
    --------
    >>> data = simulate(1000, 2.0, rng=3)
    >>> joint, em = fit(data, 'joint'), fit(data, 'em')
    >>> round(joint.theta, 2), round(em.theta, 2)  # theta_0 / 2 and theta_0
    (1.0, 2.0)
    >>> bool(em.covariances['naive'][0, 0] < em.covariances['corrected'][0, 0])
    True
    """
    if method not in METHODS:
        raise ValueError("method: expected one of {}, got {!r}".format(
            METHODS, method))
    y = _as_pairs(data)
    check_data_scale(y, "data.y" if isinstance(data, NeymanScottData)
                     else "data")
    if prior_scale is None:
        prior_scale = data.prior_scale if isinstance(
            data, NeymanScottData) else 1.0
    prior_scale = check_positive(prior_scale, "prior_scale")
    d2 = (y[:, 0] - y[:, 1]) ** 2
    if not onp.any(d2 > 0):
        raise ValueError("data.y: every pair has y_a == y_b, so the "
                         "within-pair variance estimate is 0")
    if theta_init is None:
        theta_init = float(onp.mean(d2) / 2.0)
    theta_init = check_positive(theta_init, "theta_init")
    tol = check_tol(tol)
    max_iter = check_int(max_iter, "max_iter", 1)
    if method == "joint":
        return _fit_joint(y, prior_scale)
    if method == "marginal":
        return _fit_marginal(y, prior_scale, theta_init)
    return _fit_em(y, prior_scale, theta_init, tol, max_iter)


def _fit_joint(y, prior_scale) -> NeymanScottFit:
    n = y.shape[0]
    theta = float(onp.sum((y[:, 0] - y[:, 1]) ** 2) / (4.0 * n))
    # Profile Hessian in log(theta) is N, so Var(theta) = theta^2 / N.
    var = theta ** 2 / n
    return NeymanScottFit(
        method="joint", theta=theta, se=float(onp.sqrt(var)),
        z=y.mean(axis=1), covariances={"joint": onp.array([[var]])},
        n_iter=0, marginal_log_likelihood=float(
            marginal_log_likelihood(theta, y, prior_scale)))


def _fit_marginal(y, prior_scale, theta_init) -> NeymanScottFit:
    pattern = theta_pattern()
    n = y.shape[0]

    def mean_objective(free):   # averaged, so gtol is scale-free
        theta = pattern.fold(free, free=True)
        return -marginal_log_likelihood(theta, y, prior_scale) / n

    result = refit(mean_objective, pattern.flatten(theta_init, free=True))
    free = result.x
    theta = float(pattern.fold(free, free=True)[0])
    hessian = n * onp.asarray(autograd.hessian(mean_objective)(free))
    jac = onp.asarray(pattern.unfreeing_jacobian(theta, sparse=False))
    cov = jac @ onp.linalg.inv(hessian) @ jac.T
    return NeymanScottFit(
        method="marginal", theta=theta, se=float(onp.sqrt(cov[0, 0])),
        z=e_step(theta, y, prior_scale)["mean"],
        covariances={"marginal": cov}, n_iter=int(result.nit),
        marginal_log_likelihood=float(
            marginal_log_likelihood(theta, y, prior_scale)))


def _fit_em(y, prior_scale, theta, tol, max_iter) -> NeymanScottFit:
    theta, n_iter, change = iterate_em(
        lambda th: _m_step(e_step(th, y, prior_scale), y),
        lambda new, old: abs(new - old) / old, theta, tol, max_iter)
    if change > tol:
        raise ValueError(
            "EM did not converge within max_iter = {} iterations (last "
            "relative change of theta {:.3g} > tol = {:.3g}); raise max_iter "
            "or loosen tol".format(max_iter, change, tol))
    eta = e_step(theta, y, prior_scale)
    em_cov = EMCovariance(
        lambda th, et: negative_em_objective(th, et, y, prior_scale),
        theta_pattern(), eta_pattern(y.shape[0]), theta, eta,
        louis_fun=_louis_fun(y))
    covariances = em_covariances(em_cov)
    return NeymanScottFit(
        method="em", theta=theta,
        se=float(onp.sqrt(covariances["corrected"][0, 0])),
        z=eta["mean"], covariances=covariances, n_iter=n_iter,
        marginal_log_likelihood=float(
            marginal_log_likelihood(theta, y, prior_scale)),
        em_covariance=em_cov)
