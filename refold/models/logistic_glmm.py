r"""Logistic GLMM: mean-field VB with linear-response covariances at scale.

The model (Giordano, Broderick & Jordan, JMLR 2018, the "Criteo" example)::

    y_n | beta, u ~ Bernoulli(logistic(x_n' beta + u_{g(n)})),  n = 1..N,
    u_t | mu, tau ~ N(mu, 1 / tau),                            t = 1..T,
    beta ~ N(0, sigma_beta^2 I_K),  mu ~ N(0, sigma_mu^2),  tau ~ Gamma(a, b)

(``b`` a rate).  Defaults (:class:`GLMMPrior`): ``sigma_beta^2 = sigma_mu^2 =
100``, ``a = 2``, ``b = 1`` -- weakly informative; the gamma keeps ``tau``
away from zero.  The design ``x`` should not contain an intercept column:
``mu`` is the intercept.

Mean-field q: independent normals for every ``beta_k``, ``mu`` and ``u_t``,
and a **gamma** for ``tau`` (as in the paper; then ``E[tau]`` and
``E[log tau]`` are closed form).  The variational parameters are described
by the :class:`~refold.patterns.containers.PatternDict` of
:func:`vb_pattern`::

    beta_mean (K,), beta_var (K,) > 0, mu_mean, mu_var > 0,
    tau_shape > 0, tau_rate > 0, u_mean (T,), u_var (T,) > 0

whose free vector (length ``2K + 4 + 2T``) holds ``2K + 4`` global
coordinates followed by the ``T`` local means and ``T`` local log-variances.
The objective is the negative ELBO, ``KL(q || p(. | y)) - log p(y)``, as a
function of that free vector (through ``FlattenFunctionInput``).
``E_q[log(1 + e^z)]`` with ``z ~ N(m, s^2)`` uses Gauss-Hermite quadrature
(8 nodes by default: error below 1e-9 for ``s <= 0.6``).  Everything is
vectorised over rows and groups: group effects enter through the linear
primitives of :func:`make_group_ops` (a fixed sparse indicator matrix and
its transpose, the group sum), differentiable to any order in forward and
reverse mode.

The Hessian in the free coordinates is arrowhead-shaped (the locals of
different groups never interact), so :class:`SparseBlockHessian` recovers
it from ``2 + (2K + 4)`` Hessian-vector products (16 for ``K = 5``), and
:class:`~refold.sensitivity.arrowhead.ArrowheadHessian` solves with it and
returns the blocks of its inverse by Schur complement.  :func:`fit`
minimises the objective by damped Newton steps on that structure
(:func:`refold.sensitivity.newton.arrowhead_newton`; its report,
:class:`~refold.sensitivity.newton.NewtonReport`, is re-exported here), then
computes linear-response covariances ``J H^-1 J^T`` of the moments
``E_q[beta]``, ``E_q[mu]``, ``E_q[tau]`` and every ``E_q[u_t]`` -- ``J`` is a
known sparse matrix, so only the ``(2K+4)^2`` global block and the ``T``
``2 x 2`` local blocks of ``H^-1`` are ever formed.
"""
from __future__ import annotations

import time
import warnings
from typing import Any, NamedTuple

import autograd
import autograd.numpy as np
import numpy as onp
import scipy.sparse as sp
import scipy.special
from autograd.extend import defjvp, defvjp, primitive
from autograd.tracer import getval

from refold.models._data import (DATA_SCALE_RANGE, check_bool,
                                 check_data_scale, check_int, check_tol,
                                 real_array)
from refold.models.glmm_data import GLMMData, make_group_ops, simulate
from refold.patterns.containers import PatternDict
from refold.patterns.function_wrappers import FlattenFunctionInput
from refold.patterns.numeric import NumericArrayPattern, NumericScalarPattern
from refold.sensitivity.arrowhead import ArrowheadHessian
from refold.sensitivity.newton import NewtonReport, arrowhead_newton
from refold.sensitivity.optimum import check_optimum
from refold.sensitivity.solvers import RefoldWarning
from refold.sensitivity.sparse_hessian import SparseBlockHessian
from refold.sensitivity.sparsity import register_sparsity_rule

__all__ = ["GLMMData", "GLMMPrior", "GLMMObjective", "GLMMFit",
           "NewtonReport", "simulate", "fit", "vb_pattern", "make_group_ops",
           "log_posterior", "DEFAULT_NUM_QUADRATURE"]

#: Gauss-Hermite nodes used for E_q[log(1 + e^z)].
DEFAULT_NUM_QUADRATURE = 8


# Special functions with forward- and reverse-mode rules to any order
# (autograd's digamma/gammaln have no forward-mode rules).
@primitive
def _polygamma(n, x):
    return scipy.special.polygamma(n, x)


@primitive
def _gammaln(x):
    return scipy.special.gammaln(x)


defvjp(_polygamma, None, lambda ans, n, x: lambda g: g * _polygamma(n + 1, x))
defjvp(_polygamma, None, lambda g, ans, n, x: g * _polygamma(n + 1, x))
defvjp(_gammaln, lambda ans, x: lambda g: g * _polygamma(0, x))
defjvp(_gammaln, lambda g, ans, x: g * _polygamma(0, x))
register_sparsity_rule(_polygamma, "elementwise")
register_sparsity_rule(_gammaln, "elementwise")

_LOG_2PI = float(onp.log(2.0 * onp.pi))


# ----------------------------------------------------------------------
# Prior.

class GLMMPrior(NamedTuple):
    r"""Prior hyperparameters: ``beta ~ N(0, beta_var I)``,
    ``mu ~ N(0, mu_var)``, ``tau ~ Gamma(tau_shape, rate=tau_rate)``."""
    beta_var: float = 100.0
    mu_var: float = 100.0
    tau_shape: float = 2.0
    tau_rate: float = 1.0


def _check_prior(prior: Any) -> GLMMPrior:
    if prior is None:
        return GLMMPrior()
    if isinstance(prior, dict):
        unknown = set(prior) - set(GLMMPrior._fields)
        if unknown:
            raise ValueError(f"prior has unknown keys {sorted(unknown)}; "
                             f"expected some of {list(GLMMPrior._fields)}.")
        prior = GLMMPrior(**prior)
    if not isinstance(prior, GLMMPrior):
        raise TypeError(f"prior must be None, a dict or a GLMMPrior; got "
                        f"{type(prior).__name__}.")
    for key, value in prior._asdict().items():
        if not (isinstance(value, (int, float, onp.number))
                and onp.isfinite(value) and value > 0):
            raise ValueError(f"prior['{key}'] must be a finite positive "
                             f"number; got {value!r}.")
    return GLMMPrior(*(float(v) for v in prior))


def log_posterior(theta, data: "GLMMData", prior: Any = None):
    r"""The exact unnormalised log posterior, for reference computations.

    Parameters
    ----------
    theta : array_like, shape (S, K + T + 2)
        Rows of :math:`(eta, u, \mu, \log	au)` (the precision on the log
        scale, so every coordinate is unconstrained).
    data : GLMMData
    prior : GLMMPrior, dict or None, optional

    Returns
    -------
    numpy.ndarray, shape (S,)
        :math:`\log p(eta, u, \mu, \log	au \mid y)` up to a constant, the
        Jacobian of :math:`	au \mapsto \log	au` included. Differentiable by
        autograd, so it feeds
        :func:`refold.models.importance_sampling.laplace_importance_sampling`
        directly (the exact posterior against which MFVB and LR covariances
        are checked).
    """
    if not isinstance(data, GLMMData):
        raise TypeError("data: expected a GLMMData, got {}".format(
            type(data).__name__))
    prior = _check_prior(prior)
    k, t = data.n_fixed, data.n_groups
    shape = onp.shape(getval(theta))
    if len(shape) != 2 or shape[1] != k + t + 2:
        raise ValueError(
            "theta: expected an array of shape (S, {}) of (beta, u, mu, "
            "log tau) rows, got shape {}".format(k + t + 2, shape))
    beta, u = theta[:, :k], theta[:, k:k + t]
    mu, log_tau = theta[:, k + t], theta[:, k + t + 1]
    tau = np.exp(log_tau)
    z = np.dot(beta, data.x.T) + u[:, data.group]
    return (np.sum(data.y * z - np.logaddexp(0.0, z), axis=1)
            + 0.5 * t * log_tau
            - 0.5 * tau * np.sum((u - mu[:, None]) ** 2, axis=1)
            - 0.5 * np.sum(beta ** 2, axis=1) / prior.beta_var
            - 0.5 * mu ** 2 / prior.mu_var
            + prior.tau_shape * log_tau - prior.tau_rate * tau)


# ----------------------------------------------------------------------
# The variational objective.

def vb_pattern(n_fixed: int, n_groups: int) -> PatternDict:
    r"""The pattern of the variational parameters (``free_default=True``).

    Keys, in free-vector order: ``beta_mean`` (K,), ``beta_var`` (K,),
    ``mu_mean``, ``mu_var``, ``tau_shape``, ``tau_rate`` (scalars, shape
    (1,)), ``u_mean`` (T,), ``u_var`` (T,); variances and gamma parameters
    are positive (free coordinate: their log).
    """
    n_fixed = check_int(n_fixed, "n_fixed", 1)
    n_groups = check_int(n_groups, "n_groups", 1)
    pattern = PatternDict(free_default=True)
    pattern["beta_mean"] = NumericArrayPattern((n_fixed,))
    pattern["beta_var"] = NumericArrayPattern((n_fixed,), lb=0.0)
    pattern["mu_mean"] = NumericScalarPattern()
    pattern["mu_var"] = NumericScalarPattern(lb=0.0)
    pattern["tau_shape"] = NumericScalarPattern(lb=0.0)
    pattern["tau_rate"] = NumericScalarPattern(lb=0.0)
    pattern["u_mean"] = NumericArrayPattern((n_groups,))
    pattern["u_var"] = NumericArrayPattern((n_groups,), lb=0.0)
    return pattern


class GLMMObjective:
    r"""The negative ELBO of the mean-field logistic GLMM.

    Parameters
    ----------
    data : GLMMData
    prior : GLMMPrior or dict, optional
        Default :class:`GLMMPrior()`.
    num_quadrature : int, optional
        Gauss-Hermite nodes for ``E_q[log(1 + e^z)]`` (default 8).

    Attributes
    ----------
    pattern : PatternDict
        :func:`vb_pattern` ``(K, T)``.
    global_inds : ndarray of int, shape (2K + 4,)
        Free coordinates shared by all groups.
    local_inds : ndarray of int, shape (T, 2)
        Row ``t``: the free coordinates of ``u_mean[t]`` and ``u_var[t]``.
    num_hvps : int
        Hessian-vector products per Hessian (``2 + len(global_inds)``).

    Notes
    -----
    ``objective(free_par)`` evaluates the negative ELBO at a free vector and
    ``objective.kl(vb_params)`` at a folded dict; both are differentiable by
    autograd to any order in forward and reverse mode.
    """

    def __init__(self, data: GLMMData, prior: Any = None,
                 num_quadrature: int = DEFAULT_NUM_QUADRATURE):
        if not isinstance(data, GLMMData):
            raise TypeError(f"data must be a GLMMData; got "
                            f"{type(data).__name__}.")
        self.data = data
        self.prior = _check_prior(prior)
        num_quadrature = check_int(num_quadrature, "num_quadrature", 1)
        nodes, weights = onp.polynomial.hermite.hermgauss(num_quadrature)
        self._nodes = onp.sqrt(2.0) * nodes
        self._weights = weights / onp.sqrt(onp.pi)
        self._x, self._x_sq = data.x, data.x ** 2
        self._xty = data.y @ data.x
        self._y_by_group = onp.bincount(data.group, weights=data.y,
                                        minlength=data.n_groups)
        self._gather, _ = make_group_ops(data.group, data.n_groups)
        self.pattern = vb_pattern(data.n_fixed, data.n_groups)
        self._free_kl = FlattenFunctionInput(self.kl, self.pattern, free=True)
        local = []
        for key in ("u_mean", "u_var"):
            mask = self.pattern.empty_bool(False)
            mask[key][:] = True
            local.append(self.pattern.flat_indices(mask, free=True))
        self.local_inds = onp.stack(local, axis=1)
        is_global = onp.ones(self.pattern.flat_length(True), dtype=bool)
        is_global[self.local_inds.ravel()] = False
        self.global_inds = onp.flatnonzero(is_global)
        self.num_hvps = self.local_inds.shape[1] + len(self.global_inds)
        self._sbh = SparseBlockHessian(self, self.local_inds)

    def kl(self, vb_params: dict):
        r"""Negative ELBO, ``KL(q || p(. | y)) - log p(y)``, at folded values."""
        prior, n_groups = self.prior, self.data.n_groups
        beta_mean, beta_var = vb_params["beta_mean"], vb_params["beta_var"]
        mu_mean, mu_var = vb_params["mu_mean"][0], vb_params["mu_var"][0]
        shape, rate = vb_params["tau_shape"][0], vb_params["tau_rate"][0]
        u_mean, u_var = vb_params["u_mean"], vb_params["u_var"]
        e_tau = shape / rate
        e_log_tau = _polygamma(0, shape) - np.log(rate)

        # E_q[log p(y | beta, u)] with z_n ~ N(z_mean, z_sd^2) under q.
        z_mean = np.dot(self._x, beta_mean) + self._gather(u_mean)
        z_sd = np.sqrt(np.dot(self._x_sq, beta_var) + self._gather(u_var))
        softplus = np.logaddexp(0.0, z_mean[:, None]
                                + z_sd[:, None] * self._nodes[None, :])
        log_lik = (np.dot(self._xty, beta_mean)
                   + np.dot(self._y_by_group, u_mean)
                   - np.sum(np.dot(softplus, self._weights)))
        # E_q[log p(u | mu, tau)].
        sum_sq = np.sum((u_mean - mu_mean) ** 2 + u_var) + n_groups * mu_var
        log_p_u = 0.5 * n_groups * (e_log_tau - _LOG_2PI) - 0.5 * e_tau * sum_sq
        # E_q[log prior].
        a, b = prior.tau_shape, prior.tau_rate
        log_prior = (
            -0.5 * np.sum(beta_mean ** 2 + beta_var) / prior.beta_var
            - 0.5 * len(self._xty) * onp.log(2 * onp.pi * prior.beta_var)
            - 0.5 * (mu_mean ** 2 + mu_var) / prior.mu_var
            - 0.5 * onp.log(2 * onp.pi * prior.mu_var)
            + (a - 1.0) * e_log_tau - b * e_tau
            + a * onp.log(b) - scipy.special.gammaln(a))
        # Entropy of q.
        num_normals = len(self._xty) + 1 + n_groups
        entropy = (0.5 * (np.sum(np.log(beta_var)) + np.log(mu_var)
                          + np.sum(np.log(u_var)))
                   + 0.5 * num_normals * (1.0 + _LOG_2PI)
                   + shape - np.log(rate) + _gammaln(shape)
                   + (1.0 - shape) * _polygamma(0, shape))
        return -(log_lik + log_p_u + log_prior + entropy)

    def __call__(self, free_par):
        """Negative ELBO at a free vector."""
        return self._free_kl(free_par)

    def hessian(self, free_par: Any, verify: bool = True) -> ArrowheadHessian:
        r"""The Hessian at ``free_par`` from ``num_hvps`` coloured HVPs.

        One HVP per local coordinate (the indicator of that coordinate in
        every group at once) and one per global coordinate, all sweeping one
        recorded gradient graph; with ``verify`` one more random probe checks
        the arrowhead structure.  Returns an
        :class:`~refold.sensitivity.arrowhead.ArrowheadHessian`.
        """
        dim = self.pattern.flat_length(True)
        par = real_array(free_par, "free_par", 1)
        if par.shape != (dim,):
            raise ValueError(f"free_par must have shape ({dim},), the free "
                             f"flat length of the pattern; got {par.shape}")
        return self._sbh.get_arrowhead_hessian(par, verify=verify)

    def initial_free_par(self) -> onp.ndarray:
        r"""A data-driven starting point (vectorised, no fitting).

        Group means start at shrunken empirical logits, ``mu`` at their mean,
        ``tau`` at their precision, ``beta`` at zero, and every variance at
        the inverse of a Fisher-information guess.
        """
        data = self.data
        counts = onp.bincount(data.group, minlength=data.n_groups)
        rate = (self._y_by_group + 0.5) / (counts + 1.0)
        logit = onp.log(rate) - onp.log1p(-rate)
        mu0 = float(onp.average(logit, weights=counts + 1.0))
        shrink = counts / (counts + 4.0)
        u0 = mu0 + shrink * (logit - mu0)
        tau0 = 1.0 / max(float(onp.var(u0)), 1e-2)
        folded = {
            "beta_mean": onp.zeros(data.n_fixed),
            "beta_var": 1.0 / (0.25 * onp.sum(self._x_sq, axis=0)
                               + 1.0 / self.prior.beta_var),
            "mu_mean": onp.array([mu0]),
            "mu_var": onp.array([1.0 / (tau0 * data.n_groups)]),
            "tau_shape": onp.array([0.5 * data.n_groups + 1.0]),
            "tau_rate": onp.array([(0.5 * data.n_groups + 1.0) / tau0]),
            "u_mean": u0, "u_var": 1.0 / (0.25 * counts + tau0)}
        return self.pattern.flatten(folded, free=True)


# ----------------------------------------------------------------------
# Fit and linear-response covariances.

class GLMMFit:
    r"""The result of :func:`fit`.

    Attributes
    ----------
    data : GLMMData
    objective : GLMMObjective
        The negative ELBO (call it on a free vector); ``objective.pattern``
        is the :class:`PatternDict` of the variational parameters.
    pattern : PatternDict
        Same as ``objective.pattern``.
    opt_par : ndarray, shape (2K + 4 + 2T,)
        The optimum in free coordinates.
    vb_params : dict
        The optimum folded: ``beta_mean``, ``beta_var``, ``mu_mean``,
        ``mu_var``, ``tau_shape``, ``tau_rate``, ``u_mean``, ``u_var``.
    neg_elbo : float
        The objective at the optimum (``KL(q || posterior) - log p(y)``).
    beta_mean, beta_sd : ndarray, shape (K,)
        MFVB means and standard deviations of ``beta``.
    mu_mean, mu_sd, tau_mean, tau_sd : float
        MFVB means and sds of ``mu`` and ``tau`` (``q(tau)`` is a gamma:
        mean ``shape / rate``, sd ``sqrt(shape) / rate``).
    u_mean, u_sd : ndarray, shape (T,)
        MFVB means and sds of every random effect.
    lr_beta_cov : ndarray, shape (K, K)
        Linear-response covariance of ``beta``.
    lr_beta_sd : ndarray, shape (K,)
    lr_mu_sd, lr_tau_sd : float
    lr_global_cov : ndarray, shape (K + 2, K + 2)
        LR covariance of ``(beta, mu, tau)``.
    lr_u_sd : ndarray, shape (T,)
        LR standard deviation of every ``u_t``.
    lr : LinearResponseCovariances
        For LR covariances of further moments (solver ``'arrowhead'``).
    hessian : ArrowheadHessian
        The objective's Hessian at ``opt_par``.
    moment_jacobian : scipy.sparse.csr_array, shape (K + 2 + T, D)
        Jacobian of ``(E[beta], E[mu], E[tau], E[u])`` in free coordinates.
    optimizer_report : NewtonReport
    optimum_report : OptimumReport
        Scale-aware Newton step at ``opt_par`` (``.ok`` says it passes).
    timings : dict
        Seconds: ``'mfvb'`` (the Newton fit), ``'hessian'`` (the structured
        Hessian at the optimum), ``'lr'`` (moment Jacobian, optimum check and
        Schur-complement LR blocks), ``'lr_total'`` (``hessian + lr``),
        ``'total'``.  With ``compute_lr=False`` the LR attributes are ``None``.
    """

    def __repr__(self) -> str:
        return (f"GLMMFit(n_obs={self.data.n_obs}, n_groups="
                f"{self.data.n_groups}, converged="
                f"{self.optimizer_report.converged}, total "
                f"{self.timings['total']:.2f} s)")


def _moment_jacobian(objective: GLMMObjective,
                     vb_params: dict) -> sp.csr_array:
    r"""``d (E[beta], E[mu], E[tau], E[u]) / d free``, sparse.

    The means are flat coordinates (a selector); ``E[tau] = shape / rate``
    has gradient ``(1 / rate, -shape / rate^2)`` in ``(shape, rate)``.  The
    chain rule to free coordinates uses the pattern's sparse unfreeing
    Jacobian.
    """
    pattern = objective.pattern

    def flat_of(key):
        mask = pattern.empty_bool(False)
        mask[key][:] = True
        return pattern.flat_indices(mask, free=False)

    beta, mu, u = flat_of("beta_mean"), flat_of("mu_mean"), flat_of("u_mean")
    shape, rate = flat_of("tau_shape")[0], flat_of("tau_rate")[0]
    a, b = float(vb_params["tau_shape"][0]), float(vb_params["tau_rate"][0])
    k, t = len(beta), len(u)
    n_mom = k + 2 + t
    rows = onp.concatenate([onp.arange(k), [k, k + 1, k + 1],
                            k + 2 + onp.arange(t)])
    cols = onp.concatenate([beta, mu, [shape, rate], u])
    vals = onp.concatenate([onp.ones(k), [1.0, 1.0 / b, -a / b ** 2],
                            onp.ones(t)])
    flat_jac = sp.csr_array((vals, (rows, cols)),
                            shape=(n_mom, pattern.flat_length(False)))
    unfree = sp.csr_array(pattern.unfreeing_jacobian(vb_params, sparse=True))
    return sp.csr_array(flat_jac @ unfree)


def fit(data: GLMMData, *, prior: Any = None,
        num_quadrature: int = DEFAULT_NUM_QUADRATURE, init_par: Any = None,
        tol: float = 1e-8, max_iter: int = 50,
        compute_lr: bool = True) -> GLMMFit:
    r"""Fit the mean-field VB approximation and its LR covariances.

    Parameters
    ----------
    data : GLMMData
    prior : GLMMPrior or dict, optional
        Default :class:`GLMMPrior` ``()``.
    num_quadrature : int, optional
        Gauss-Hermite nodes (default 8).
    init_par : array_like, shape (D,), optional
        Starting free vector (default
        :meth:`GLMMObjective.initial_free_par`).
    tol : float, optional
        Newton stops when ``max |step| <= tol * max(1, max |opt_par|)``
        (default ``1e-8``); that last step is taken, so the optimum is
        accurate to about ``tol ** 2``.
    max_iter : int, optional
        Newton iterations at most (default 50).
    compute_lr : bool, optional
        Also compute the LR covariances (default True).

    Returns
    -------
    GLMMFit

    Raises
    ------
    TypeError, ValueError
        Bad ``data``, ``prior``, ``num_quadrature``, ``init_par``, ``tol``,
        ``max_iter``.

    Warns
    -----
    RefoldWarning
        When Newton does not converge; the LR covariances are then skipped
        (they are only meaningful at an optimum).

    Notes
    -----
    Each Newton iteration takes the Hessian from ``2 + (2K + 4)``
    Hessian-vector products (the locals of all groups at once, then one per
    global) and solves by Schur complement, with a Levenberg shift only
    when the Hessian is not positive definite and a backtracking line
    search on the objective.  The LR stage recomputes the (verified)
    Hessian at the optimum and takes the global block and every group's
    diagonal block of ``J H^-1 J^T`` by Schur complement.
    """
    from refold.models.lr_covariance import LinearResponseCovariances

    start = time.perf_counter()
    tol = check_tol(tol)
    max_iter = check_int(max_iter, "max_iter", 1)
    compute_lr = check_bool(compute_lr, "compute_lr")
    objective = GLMMObjective(data, prior, num_quadrature)
    # Covariates beyond 1e30 overflow the logits' second derivatives.
    check_data_scale(data.x, "data.x", scale_range=(0.0, DATA_SCALE_RANGE[1]))
    dim = objective.pattern.flat_length(True)
    if init_par is None:
        x0 = objective.initial_free_par()
    else:
        x0 = real_array(init_par, "init_par", 1)
        if x0.shape != (dim,):
            raise ValueError(f"init_par must have shape ({dim},); got "
                             f"{x0.shape}.")
    opt_par, report = arrowhead_newton(objective, x0, objective.local_inds,
                                       tol=tol, max_iter=max_iter)
    timings = {"mfvb": time.perf_counter() - start}

    out = GLMMFit()
    out.data, out.objective, out.pattern = data, objective, objective.pattern
    out.opt_par = opt_par
    out.vb_params = objective.pattern.fold(opt_par, free=True)
    out.neg_elbo = report.objective
    out.optimizer_report = report
    vb = out.vb_params
    out.beta_mean = vb["beta_mean"].copy()
    out.beta_sd = onp.sqrt(vb["beta_var"])
    out.mu_mean, out.mu_sd = float(vb["mu_mean"][0]), float(
        onp.sqrt(vb["mu_var"][0]))
    shape, rate = float(vb["tau_shape"][0]), float(vb["tau_rate"][0])
    out.tau_mean, out.tau_sd = shape / rate, onp.sqrt(shape) / rate
    out.u_mean, out.u_sd = vb["u_mean"].copy(), onp.sqrt(vb["u_var"])
    for name in ("lr", "hessian", "moment_jacobian", "optimum_report",
                 "lr_beta_cov", "lr_beta_sd", "lr_mu_sd", "lr_tau_sd",
                 "lr_global_cov", "lr_u_sd"):
        setattr(out, name, None)
    if not report.converged:
        warnings.warn(f"fit: Newton did not converge ({report.message}; last "
                      f"step {report.step_norm:.3g}, gradient "
                      f"{report.grad_norm:.3g}); LR covariances skipped.",
                      RefoldWarning, stacklevel=2)
    elif compute_lr:
        lr_start = time.perf_counter()
        hessian = objective.hessian(opt_par, verify=True)
        timings["hessian"] = time.perf_counter() - lr_start
        lr_start = time.perf_counter()
        jac = _moment_jacobian(objective, vb)
        grad = autograd.grad(objective)(opt_par)
        out.optimum_report = check_optimum(grad, hessian.solve, opt_par)
        out.lr = LinearResponseCovariances(
            objective, opt_par, validate_optimum=False,
            hessian_at_opt=hessian, solver="arrowhead")
        blocks = out.lr.get_lr_covariance_blocks(jac)
        k = data.n_fixed
        order = onp.argsort(blocks.global_moments)
        glob = blocks.global_cov[onp.ix_(order, order)]
        out.lr_global_cov = glob
        out.lr_beta_cov = glob[:k, :k].copy()
        out.lr_beta_sd = onp.sqrt(onp.diag(out.lr_beta_cov))
        out.lr_mu_sd = float(onp.sqrt(glob[k, k]))
        out.lr_tau_sd = float(onp.sqrt(glob[k + 1, k + 1]))
        u_var = blocks.local_covs[:, 0, 0]
        out.lr_u_sd = onp.sqrt(u_var)
        out.hessian, out.moment_jacobian = hessian, jac
        timings["lr"] = time.perf_counter() - lr_start
        timings["lr_total"] = timings["hessian"] + timings["lr"]
    timings["total"] = time.perf_counter() - start
    out.timings = timings
    return out
