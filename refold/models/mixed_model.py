r"""Random-intercept linear mixed model: EM and the covariance of estimates.

Model: groups ``i = 1..G`` with ``n_i >= 1`` rows each,

.. math::

    y_{ij} = x_{ij}^\top \beta + u_i + \varepsilon_{ij}, \qquad
    u_i \sim N(0, \sigma_u^2), \quad \varepsilon_{ij} \sim N(0, \sigma^2).

The global parameter :math:`\theta = (\beta, \sigma_u^2, \sigma^2)` is the
:class:`~refold.patterns.containers.PatternDict` of :func:`theta_pattern`
(``'beta'`` free; ``'sigma_u_sq'`` and ``'sigma_sq'`` positive, free
coordinates their logs).  The E-step family is :math:`q(u_i) = N(m_i,
v_i)`, :math:`\eta_i = (m_i, v_i)` a ``PatternArray`` over groups
(:func:`eta_pattern`; free coordinates :math:`(m_i, \log v_i)`).

Marginal likelihood (:func:`marginal_log_likelihood`): :math:`y_i \sim
N(X_i\beta, V_i)`, :math:`V_i = \sigma^2 I + \sigma_u^2 \mathbf 1
\mathbf 1^\top`. With :math:`r_i = y_i - X_i\beta`, :math:`d_i = \sigma^2
+ n_i\sigma_u^2` and :math:`s_i = \mathbf 1^\top r_i`, Sherman-Morrison and
the matrix-determinant lemma give

.. math::

    \log|V_i| = (n_i - 1)\log\sigma^2 + \log d_i, \qquad
    r_i^\top V_i^{-1} r_i = \frac{1}{\sigma^2}\Big(r_i^\top r_i -
        \frac{\sigma_u^2}{d_i} s_i^2\Big),

vectorised over groups through the per-group sums :math:`\sum_j x_{ij}`,
:math:`\sum_j y_{ij}` (computed once; :math:`s_i` is linear in
:math:`\beta`).

EM (:func:`fit`), closed form and vectorised over groups:

- E-step: :math:`v_i = (n_i/\sigma^2 + 1/\sigma_u^2)^{-1}`,
  :math:`m_i = v_i s_i / \sigma^2`;
- M-step: :math:`\beta = (X^\top X)^{-1} X^\top (y - m_{g})`,
  :math:`\sigma^2 = \frac1N \sum_{ij} E_q(r_{ij} - u_i)^2`,
  :math:`\sigma_u^2 = \frac1G \sum_i (m_i^2 + v_i)`.

Covariances from :class:`~refold.models.em_covariance.EMCovariance`:
corrected (marginal-Hessian fix), naive (Q-Hessian) and Louis' (the
conditional score covariance is closed form here).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional

import autograd.numpy as np
import numpy as onp
import scipy.sparse as sp

from refold.models._data import (check_design, check_init, check_int,
                                 check_data_scale, check_variance,
                                 check_positive, check_tol, group_index,
                                 real_array, resolve_rng)
from refold.models._em_fit import em_summary, iterate_em
from refold.models.em_covariance import EMCovariance
from refold.patterns.containers import PatternArray, PatternDict
from refold.patterns.numeric import NumericArrayPattern, NumericScalarPattern

__all__ = ["MixedModelData", "MixedModelFit", "simulate", "fit",
           "theta_pattern", "eta_pattern", "e_step",
           "marginal_log_likelihood", "negative_em_objective"]

_LOG_2PI = float(onp.log(2 * onp.pi))


# ----------------------------------------------------------------------
# Data and results.

class MixedModelData:
    r"""A validated random-intercept data set (inputs are copied).

    Parameters
    ----------
    x : array_like, shape (N, p)
        Fixed-effect design, full column rank (include an intercept column
        yourself).
    y : array_like, shape (N,)
        Responses.
    group : array_like of int, shape (N,)
        Group of each row; every group ``0..G-1`` must have a row.
    n_groups : int, optional
        ``G`` (default ``max(group) + 1``).
    beta, sigma_u, sigma, u : optional
        The truth, when simulated.

    Attributes
    ----------
    x, y, group, n_obs, n_fixed, n_groups
    group_sizes : numpy.ndarray of int, shape (G,)
    group_sum_x : numpy.ndarray, shape (G, p)
        :math:`\sum_j x_{ij}`.
    group_sum_y : numpy.ndarray, shape (G,)
        :math:`\sum_j y_{ij}`.
    beta, sigma_u, sigma, u
        The truth (``None`` unless simulated).

    Raises
    ------
    TypeError, ValueError
        Naming the argument: wrong dtype or shape, NaN/inf, lengths that
        disagree, a group index out of range, an empty group, a design
        without full column rank, fewer than 2 groups, or no group with
        two rows (then :math:`\sigma^2` and :math:`\sigma_u^2` are not
        identified).
    """

    def __init__(self, x: Any, y: Any, group: Any,
                 n_groups: Optional[int] = None, *, beta: Any = None,
                 sigma_u: Optional[float] = None,
                 sigma: Optional[float] = None, u: Any = None):
        x, y = check_design(x, y)
        n_obs, n_fixed = x.shape
        group, n_groups = group_index(group, n_obs, n_groups, min_groups=2)
        sizes = onp.bincount(group, minlength=n_groups)
        if onp.any(sizes == 0):
            raise ValueError("group: group {} has no rows; number the groups "
                             "0..n_groups-1 without gaps".format(
                                 int(onp.flatnonzero(sizes == 0)[0])))
        if n_obs <= n_groups:
            raise ValueError("group: every group has one row, so sigma_sq "
                             "and sigma_u_sq are not identified; at least one "
                             "group needs two rows")
        if onp.linalg.matrix_rank(x) < n_fixed:
            raise ValueError("x: the columns are linearly dependent (rank {} "
                             "< {}); beta is not identified".format(
                                 onp.linalg.matrix_rank(x), n_fixed))
        indicator = sp.csr_array((onp.ones(n_obs), (group, onp.arange(n_obs))),
                                 shape=(n_groups, n_obs))
        self.x, self.y, self.group = x, y, group
        self.n_obs, self.n_fixed, self.n_groups = n_obs, n_fixed, n_groups
        self.group_sizes = sizes
        self.group_sum_x = onp.asarray(indicator @ x)
        self.group_sum_y = onp.asarray(indicator @ y)
        self.beta = None if beta is None else real_array(
            beta, "beta", (n_fixed,))
        self.sigma_u = None if sigma_u is None else check_positive(
            sigma_u, "sigma_u")
        self.sigma = None if sigma is None else check_positive(sigma, "sigma")
        self.u = None if u is None else real_array(u, "u", (n_groups,))

    def __repr__(self) -> str:
        return "MixedModelData(n_obs={}, n_groups={}, n_fixed={})".format(
            self.n_obs, self.n_groups, self.n_fixed)


@dataclass
class MixedModelFit:
    r"""The result of :func:`fit`.

    Attributes
    ----------
    estimates : dict
        :math:`\hat\theta` folded: ``'beta'`` (p,), ``'sigma_u_sq'`` (1,),
        ``'sigma_sq'`` (1,).
    log_likelihood : float
        :math:`\log p(y \mid \hat\theta)` (closed form).
    n_iter : int
        EM iterations.
    posterior : dict
        ``'mean'`` and ``'var'`` (G,): :math:`p(u_i \mid y, \hat\theta)`.
    em_covariance : EMCovariance
    covariances : dict of str to numpy.ndarray
        ``'corrected'``, ``'naive'`` and ``'louis'`` covariances of the flat
        :math:`\hat\theta` = ``(beta, sigma_u_sq, sigma_sq)`` (delta method
        from the free coordinates).
    standard_errors, naive_standard_errors, louis_standard_errors : dict
        Square roots of their diagonals, folded like ``estimates``.
    theta_pattern : PatternDict
    """

    estimates: dict
    log_likelihood: float
    n_iter: int
    posterior: dict
    em_covariance: EMCovariance
    covariances: dict = field(default_factory=dict)
    standard_errors: dict = field(default_factory=dict)
    naive_standard_errors: dict = field(default_factory=dict)
    louis_standard_errors: dict = field(default_factory=dict)
    theta_pattern: Optional[PatternDict] = None

    @property
    def beta(self) -> onp.ndarray:
        r"""The fixed effects :math:`\hat\beta`."""
        return self.estimates["beta"].copy()

    @property
    def sigma_u_sq(self) -> float:
        r"""The random-intercept variance :math:`\hat\sigma_u^2`."""
        return float(self.estimates["sigma_u_sq"][0])

    @property
    def sigma_sq(self) -> float:
        r"""The residual variance :math:`\hat\sigma^2`."""
        return float(self.estimates["sigma_sq"][0])

    @property
    def beta_covariance(self) -> onp.ndarray:
        r"""Corrected covariance of :math:`\hat\beta`, (p, p)."""
        p = self.estimates["beta"].size
        return self.covariances["corrected"][:p, :p].copy()

    def comparison_table(self) -> str:
        """Naive, corrected and Louis standard errors side by side."""
        return self.em_covariance.comparison_table(folded=True)


# ----------------------------------------------------------------------
# Patterns and the model's functions (differentiable by autograd).

def theta_pattern(n_fixed: int) -> PatternDict:
    r"""The pattern of :math:`\theta`: ``'beta'`` (p,), ``'sigma_u_sq'`` and
    ``'sigma_sq'`` (positive scalars, free coordinates their logs)."""
    n_fixed = check_int(n_fixed, "n_fixed", 1)
    pattern = PatternDict()
    pattern["beta"] = NumericArrayPattern((n_fixed,))
    pattern["sigma_u_sq"] = NumericScalarPattern(lb=0.0)
    pattern["sigma_sq"] = NumericScalarPattern(lb=0.0)
    return pattern


def eta_pattern(n_groups: int) -> PatternArray:
    r"""Per group ``'mean'`` :math:`m_i` and ``'var'`` :math:`v_i > 0` (free
    :math:`\log v_i`); folded, a dict of two (G,) arrays."""
    base = PatternDict()
    base["mean"] = NumericArrayPattern(())
    base["var"] = NumericArrayPattern((), lb=0.0)
    return PatternArray((check_int(n_groups, "n_groups", 1),), base)


def _unpack(theta: dict, data: Any = None):
    """``(beta, sigma_u_sq, sigma_sq)``, checked: a dict with the three keys,
    positive variances, ``beta`` of length ``data.n_fixed``."""
    if not isinstance(theta, dict):
        raise TypeError("theta: expected a dict with 'beta', 'sigma_u_sq' and "
                        "'sigma_sq', got {}".format(type(theta).__name__))
    missing = [key for key in ("beta", "sigma_u_sq", "sigma_sq")
               if key not in theta]
    if missing:
        raise ValueError("theta: missing key(s) {}; expected 'beta', "
                         "'sigma_u_sq' and 'sigma_sq'".format(missing))
    if data is not None:
        if not isinstance(data, MixedModelData):
            raise TypeError("data: expected MixedModelData, got {}".format(
                type(data).__name__))
        if onp.shape(theta["beta"]) != (data.n_fixed,):
            raise ValueError("theta['beta']: expected shape ({},), one entry "
                             "per column of data.x, got {}".format(
                                 data.n_fixed, onp.shape(theta["beta"])))
    return (theta["beta"],
            np.reshape(check_variance(theta["sigma_u_sq"],
                                      "theta['sigma_u_sq']"), ()),
            np.reshape(check_variance(theta["sigma_sq"], "theta['sigma_sq']"),
                       ()))


def _eta(eta: Any, n_groups: int):
    """``(eta['mean'], eta['var'])``, checked: a dict of two (G,) arrays,
    the variances positive."""
    if not isinstance(eta, dict) or "mean" not in eta or "var" not in eta:
        raise TypeError("eta: expected a dict with 'mean' and 'var' (a folded "
                        "value of eta_pattern), got {}".format(
                            type(eta).__name__ if not isinstance(eta, dict)
                            else "keys {}".format(sorted(eta))))
    for key in ("mean", "var"):
        if onp.shape(eta[key]) != (n_groups,):
            raise ValueError("eta[{!r}]: expected shape ({},), one entry per "
                             "group, got {}".format(key, n_groups,
                                                    onp.shape(eta[key])))
    return eta["mean"], check_variance(eta["var"], "eta['var']")


def marginal_log_likelihood(theta: dict, data: MixedModelData):
    r""":math:`\log p(y \mid \theta) = \sum_i \log N(y_i \mid X_i\beta,
    \sigma^2 I + \sigma_u^2 \mathbf 1\mathbf 1^\top)` in closed form
    (module notes), vectorised over groups; differentiable by autograd."""
    beta, su2, s2 = _unpack(theta, data)
    resid = data.y - np.dot(data.x, beta)
    group_resid = data.group_sum_y - np.dot(data.group_sum_x, beta)
    wide = s2 + data.group_sizes * su2
    logdet = (data.n_obs - data.n_groups) * np.log(s2) + np.sum(np.log(wide))
    quad = (np.sum(resid ** 2) - su2 * np.sum(group_resid ** 2 / wide)) / s2
    return -0.5 * (data.n_obs * _LOG_2PI + logdet + quad)


def negative_em_objective(theta: dict, eta: dict, data: MixedModelData):
    r""":math:`-E_q[\log p(y, u \mid \theta)] + E_q[\log q(u)]` for
    :math:`q(u_i) = N(m_i, v_i)` (``eta`` folded by :func:`eta_pattern`)."""
    beta, su2, s2 = _unpack(theta, data)
    m, v = _eta(eta, data.n_groups)
    resid = data.y - np.dot(data.x, beta)
    group_resid = data.group_sum_y - np.dot(data.group_sum_x, beta)
    second = m ** 2 + v
    sq_err = (np.sum(resid ** 2) - 2.0 * np.sum(m * group_resid)
              + np.sum(data.group_sizes * second))
    neg_lik = 0.5 * data.n_obs * (_LOG_2PI + np.log(s2)) + sq_err / (2 * s2)
    neg_prior = (0.5 * data.n_groups * (_LOG_2PI + np.log(su2))
                 + np.sum(second) / (2 * su2))
    entropy = 0.5 * np.sum(_LOG_2PI + 1.0 + np.log(v))
    return neg_lik + neg_prior - entropy


def e_step(theta: dict, data: MixedModelData) -> dict:
    r"""The exact posterior :math:`p(u_i \mid y, \theta) = N(m_i, v_i)`, a
    folded value of :func:`eta_pattern`."""
    beta, su2, s2 = (onp.asarray(t, dtype=float)
                     for t in _unpack(theta, data))
    var = 1.0 / (data.group_sizes / s2 + 1.0 / su2)
    mean = var * (data.group_sum_y - data.group_sum_x @ beta) / s2
    return {"mean": mean, "var": var}


def _m_step(eta: dict, data: MixedModelData, gram_chol) -> dict:
    m, v = eta["mean"], eta["var"]
    rhs = data.x.T @ data.y - data.group_sum_x.T @ m
    beta = onp.linalg.solve(gram_chol.T, onp.linalg.solve(gram_chol, rhs))
    resid = data.y - data.x @ beta
    group_resid = data.group_sum_y - data.group_sum_x @ beta
    second = m ** 2 + v
    sq_err = (resid @ resid - 2.0 * m @ group_resid
              + data.group_sizes @ second)
    return {"beta": beta, "sigma_u_sq": onp.array([onp.mean(second)]),
            "sigma_sq": onp.array([sq_err / data.n_obs])}


def _louis_fun(data: MixedModelData):
    r"""Conditional covariance of the complete-data score in free
    coordinates :math:`(\beta, \log\sigma_u^2, \log\sigma^2)`.

    With :math:`u_i = m_i + \delta_i`, :math:`\delta_i \sim N(0, v_i)`, the
    random parts of the score are :math:`-\delta_i S_{x,i}/\sigma^2`,
    :math:`(2 m_i\delta_i + \delta_i^2)/(2\sigma_u^2)` and
    :math:`(2(n_i m_i - s_i)\delta_i + n_i\delta_i^2)/(2\sigma^2)`; odd
    moments of :math:`\delta` vanish and :math:`\mathrm{Var}\,\delta^2 =
    2v^2`.
    """
    def louis(theta, eta):
        beta, su2, s2 = (onp.asarray(t, dtype=float)
                         for t in _unpack(theta))
        m, v = onp.asarray(eta["mean"]), onp.asarray(eta["var"])
        n = data.group_sizes
        group_resid = data.group_sum_y - data.group_sum_x @ beta
        lin = onp.vstack([-data.group_sum_x.T / s2,          # (p + 2, G)
                          m[None, :] / su2,
                          ((n * m - group_resid) / s2)[None, :]])
        quad = onp.vstack([onp.zeros((beta.size, n.size)),
                           onp.full((1, n.size), 1.0 / (2 * su2)),
                           (n / (2 * s2))[None, :]])
        return (onp.einsum("ag,bg,g->ab", lin, lin, v)
                + onp.einsum("ag,bg,g->ab", quad, quad, 2 * v ** 2))
    return louis


# ----------------------------------------------------------------------

def simulate(n_groups: int, group_size: Any, beta: Any, sigma_u: float,
             sigma: float, rng: Any = None) -> MixedModelData:
    r"""Simulate a random-intercept data set.

    Parameters
    ----------
    n_groups : int
        ``G >= 2``.
    group_size : int or array_like of int, shape (G,)
        Rows per group: one size for all, or one per group (each ``>= 1``,
        not all 1).
    beta : array_like, shape (p,)
        Fixed effects; ``x`` has an intercept column followed by ``p - 1``
        standard-normal covariates.
    sigma_u, sigma : float
        Standard deviations of the random intercepts and of the noise
        (positive).
    rng : None, int or numpy.random.Generator, optional

    Returns
    -------
    MixedModelData
        Rows sorted by group; the truth (``beta``, ``sigma_u``, ``sigma``,
        ``u``) stored on it.

    Raises
    ------
    TypeError, ValueError
        Naming the argument.

    Examples
    --------
    >>> data = simulate(4, [2, 3, 1, 2], [1.0, 0.5], 1.0, 0.5, rng=0)
    >>> data.x.shape, data.group_sizes
    ((8, 2), array([2, 3, 1, 2]))
    """
    n_groups = check_int(n_groups, "n_groups", 2)
    if isinstance(group_size, (int, onp.integer)) and not isinstance(
            group_size, (bool, onp.bool_)):
        sizes = onp.full(n_groups, check_int(group_size, "group_size", 1))
    else:
        sizes = onp.asarray(group_size)
        if sizes.dtype.kind not in "iu":
            raise TypeError("group_size: expected an int or an array of "
                            "ints, got {!r}".format(group_size))
        if sizes.shape != (n_groups,):
            raise ValueError("group_size: expected one size per group, shape "
                             "({},), got shape {}".format(n_groups,
                                                          sizes.shape))
        if onp.any(sizes < 1):
            k = int(onp.flatnonzero(sizes < 1)[0])
            raise ValueError("group_size[{}] is {}; every group needs at "
                             "least one row".format(k, sizes[k]))
    beta = real_array(beta, "beta", 1)
    if beta.size == 0:
        raise ValueError("beta: expected at least one fixed effect (the "
                         "intercept), got shape (0,)")
    sigma_u = check_positive(sigma_u, "sigma_u")
    sigma = check_positive(sigma, "sigma")
    rng = resolve_rng(rng)
    group = onp.repeat(onp.arange(n_groups), sizes)
    n_obs = group.size
    x = onp.hstack([onp.ones((n_obs, 1)),
                    rng.standard_normal((n_obs, beta.size - 1))])
    u = sigma_u * rng.standard_normal(n_groups)
    y = x @ beta + u[group] + sigma * rng.standard_normal(n_obs)
    return MixedModelData(x, y, group, n_groups, beta=beta, sigma_u=sigma_u,
                          sigma=sigma, u=u)


def _initial_theta(data: MixedModelData, gram_chol) -> dict:
    """OLS fixed effects and moment estimates of the variances."""
    beta = onp.linalg.solve(gram_chol.T,
                            onp.linalg.solve(gram_chol, data.x.T @ data.y))
    resid = data.y - data.x @ beta
    group_mean = (data.group_sum_y - data.group_sum_x @ beta) \
        / data.group_sizes
    within = onp.sum((resid - group_mean[data.group]) ** 2) / (
        data.n_obs - data.n_groups)
    total = onp.mean(resid ** 2)
    sigma_sq = within if within > 0 else total
    between = onp.var(group_mean) - sigma_sq * onp.mean(1.0 / data.group_sizes)
    sigma_u_sq = max(between, 0.1 * sigma_sq)
    return {"beta": beta, "sigma_u_sq": onp.array([sigma_u_sq]),
            "sigma_sq": onp.array([sigma_sq])}


def fit(data: MixedModelData, *, init: Optional[dict] = None,
        tol: float = 1e-10, max_iter: int = 100000) -> MixedModelFit:
    r"""Fit the random-intercept model by EM, with covariances.

    Parameters
    ----------
    data : MixedModelData
    init : dict, optional
        Starting :math:`\theta` (``'beta'``, ``'sigma_u_sq'``,
        ``'sigma_sq'``; a valid value of :func:`theta_pattern`), not mutated.
        Default: OLS :math:`\beta` and moment estimates of the variances.
    tol : float, optional
        EM stops when, in one iteration, :math:`\log\sigma_u^2` and
        :math:`\log\sigma^2` move by at most ``tol`` and every
        :math:`\beta_j` by at most ``tol`` times
        :math:`\sigma / \mathrm{rms}(x_{\cdot j})` (default ``1e-10``).
    max_iter : int, optional
        Iteration limit (default 100000).

    Returns
    -------
    MixedModelFit

    Raises
    ------
    TypeError, ValueError
        Bad arguments (named); EM that does not converge within
        ``max_iter`` (e.g. :math:`\hat\sigma_u^2` heading to the boundary
        0); an optimum that ``EMCovariance`` rejects.

    Examples
    --------
    >>> data = simulate(50, 4, [1.0, -0.5], 1.0, 0.7, rng=0)
    >>> result = fit(data)
    >>> result.beta.round(2), round(result.sigma_u_sq, 2)
    (array([ 0.9 , -0.55]), 1.29)
    """
    if not isinstance(data, MixedModelData):
        raise TypeError("data: expected a MixedModelData, got {}".format(
            type(data).__name__))
    check_data_scale(data.y, "data.y")
    tol = check_tol(tol)
    max_iter = check_int(max_iter, "max_iter", 1)
    pattern = theta_pattern(data.n_fixed)
    gram_chol = onp.linalg.cholesky(data.x.T @ data.x)
    if init is None:
        theta = _initial_theta(data, gram_chol)
    else:
        theta = check_init(init, pattern)
    x_rms = onp.sqrt(onp.mean(data.x ** 2, axis=0))

    def step_size(new, old):   # in units of sd(beta) and of log-variances
        return max(
            onp.max(onp.abs(new["beta"] - old["beta"]) * x_rms)
            / onp.sqrt(new["sigma_sq"][0]),
            abs(onp.log(new["sigma_u_sq"][0] / old["sigma_u_sq"][0])),
            abs(onp.log(new["sigma_sq"][0] / old["sigma_sq"][0])))

    theta, n_iter, change = iterate_em(
        lambda th: _m_step(e_step(th, data), data, gram_chol), step_size,
        theta, tol, max_iter)
    if change > tol:
        raise ValueError(
            "EM did not converge within max_iter = {} iterations (last "
            "change {:.3g} > tol = {:.3g}; sigma_u_sq = {:.3g}, sigma_sq = "
            "{:.3g}). A sigma_u_sq shrinking towards 0 means the MLE is on "
            "the boundary; otherwise raise max_iter or loosen tol".format(
                max_iter, change, tol, theta["sigma_u_sq"][0],
                theta["sigma_sq"][0]))
    eta = e_step(theta, data)
    em_cov = EMCovariance(
        lambda th, et: negative_em_objective(th, et, data), pattern,
        eta_pattern(data.n_groups), theta, eta, louis_fun=_louis_fun(data))
    return MixedModelFit(
        estimates=theta,
        log_likelihood=float(marginal_log_likelihood(theta, data)),
        n_iter=n_iter, posterior=eta, em_covariance=em_cov,
        theta_pattern=pattern, **em_summary(em_cov, pattern))
