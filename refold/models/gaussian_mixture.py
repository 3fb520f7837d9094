r"""Gaussian mixture: EM and the covariance of its estimates.

Model: ``K`` components in ``P`` dimensions, ``N`` observations,

.. math::

    z_n \sim \mathrm{Categorical}(\pi), \qquad
    y_n \mid z_n = k \sim N(\mu_k, \Sigma_k).

The global parameter :math:`\theta = (\pi, \mu, \Sigma)` is described by the
:class:`~refold.patterns.containers.PatternDict` of :func:`theta_pattern`:
``'weights'`` a ``SimplexArrayPattern(K, ())`` (free: :math:`\log(\pi_k /
\pi_0)`), ``'means'`` a ``NumericArrayPattern((K, P))`` and ``'covs'`` a
``PatternArray((K,), PSDSymmetricMatrixPattern(P))`` (free: the Cholesky
factor with its diagonal logged).

The E-step family is categorical, :math:`q(z_n = k) = r_{nk}`, and its
parameters :math:`\eta_n` are log-ratios of responsibilities, held by the
``NumericArrayPattern((N, K - 1))`` of :func:`eta_pattern`.  By default
(``pivot=None``) they are the *free coordinates* of the responsibilities
under ``SimplexArrayPattern(K, (N,))`` (:func:`responsibility_pattern`),
:math:`\eta_{nk} = \log(r_{nk} / r_{n0})`, ``k = 1..K-1``.  The objective
receives the log-ratios themselves, not the probabilities, so that it is
written in log space:

.. math::

    -f(\theta, \eta) = \sum_n \sum_k r_{nk}\,(\log r_{nk} - a_{nk}),
    \qquad \log r_{n\cdot} = \mathrm{logsoftmax}(0, \eta_n), \quad
    a_{nk} = \log \pi_k + \log N(y_n \mid \mu_k, \Sigma_k).

(Folding through the simplex pattern would hand the objective :math:`r`,
whose second derivatives overflow when a responsibility is ``1e-300``.)

*Pivoting.* At the optimum the :math:`\eta`-Hessian of observation ``n``
is :math:`\mathrm{diag}(\rho) - \rho\rho^\top` with :math:`\rho` the
responsibilities of the non-reference components; its diagonal
:math:`\rho_k(1 - \rho_k)` is lost to rounding when :math:`\rho_k`
rounds to 1, i.e. when the reference component 0 is itself negligible. With
``K >= 3`` the block then comes out indefinite (e.g. ``[[a, -a], [-a, 0]]``,
``a = 1e-178``), although the true block is positive definite. :func:`fit`
therefore measures each observation's log-ratios against its own most
responsible component, ``pivot[n]`` (``pivot`` argument of
:func:`negative_em_objective` and :func:`e_step`): then every
:math:`\rho_k \le 1/2`, nothing cancels, and every block is accurate (or
exactly zero where :math:`\rho` underflows). The Schur complement, hence
every covariance, does not depend on this choice of coordinates.

At the exact E-step :math:`-f = -\log p(y \mid \theta)` with
:math:`\log p(y \mid \theta) = \sum_n \mathrm{logsumexp}_k\, a_{nk}`
(:func:`marginal_log_likelihood`).

:func:`fit` runs EM vectorised over observations and components (the
responsibilities in log space; closed-form M-step), by default accelerated
by SQUAREM in :math:`\theta`'s free coordinates, orders the components by
their means (lexicographically, to fix the labels) and hands the optimum to
:class:`~refold.models.em_covariance.EMCovariance`, which gives the
marginal-Hessian ("corrected"), Q-Hessian ("naive") and Louis' covariances,
free and folded (delta method).  Well-separated components, whose
responsibilities are ``1e-300`` or exactly zero, are fine: their Schur terms
are negligible and ``EMCovariance`` drops them.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional

import autograd
import autograd.numpy as np
import numpy as onp
import scipy.special
from autograd.scipy.special import logsumexp
from autograd.tracer import getval

from refold.models._data import (check_bool, check_data_scale,
                                 check_index_range, check_init,
                                 check_int, check_tol, index_array,
                                 resolve_rng)
from refold.models._em_fit import em_summary, squarem_point
from refold.models.em_covariance import EMCovariance
from refold.models.mixture_data import (MixtureData, _check_observations,
                                        simulate)
from refold.patterns.containers import PatternArray, PatternDict
from refold.patterns.numeric import NumericArrayPattern
from refold.patterns.psd import PSDSymmetricMatrixPattern
from refold.patterns.simplex import SimplexArrayPattern

__all__ = ["MixtureData", "MixtureFit", "simulate", "fit", "theta_pattern",
           "eta_pattern", "responsibility_pattern", "log_joint", "e_step",
           "marginal_log_likelihood", "negative_em_objective"]

_LOG_2PI = float(onp.log(2 * onp.pi))


# ----------------------------------------------------------------------
# Data and results.

@dataclass
class MixtureFit:
    r"""The result of :func:`fit`.

    Attributes
    ----------
    estimates : dict
        :math:`\hat\theta` folded: ``'weights'`` (K,), ``'means'`` (K, P),
        ``'covs'`` (K, P, P); components ordered by their means
        (lexicographically).
    log_likelihood : float
        :math:`\log p(y \mid \hat\theta)`.
    n_iter : int
        EM updates (E-step + M-step) used, SQUAREM's included.
    responsibilities : numpy.ndarray, shape (N, K)
        :math:`p(z_n = k \mid y_n, \hat\theta)` (may hold exact zeros).
    log_responsibilities : numpy.ndarray, shape (N, K)
        :math:`\log r_{nk}`, finite even where :math:`r_{nk}` underflows.
    eta : numpy.ndarray, shape (N, K - 1)
        The E-step parameters handed to ``EMCovariance``: the log-ratios of
        each observation's responsibilities to those of its ``pivot``.
    pivot : numpy.ndarray of int, shape (N,)
        The most responsible component of each observation.
    em_covariance : EMCovariance
        The object behind the covariances (``marginal_hessian()``,
        ``covariance(folded=...)``, ...).
    covariances : dict of str to numpy.ndarray
        ``'corrected'`` (marginal-Hessian fix), ``'naive'`` (Q-function
        Hessian) and ``'louis'`` (Louis' formula) covariances of the flat
        (folded) :math:`\hat\theta`, in the order of
        ``theta_pattern.flat_names(False)``, by the delta method.
    standard_errors, naive_standard_errors, louis_standard_errors : dict
        Square roots of their diagonals, folded like ``estimates`` (the
        standard error of every weight, mean and covariance entry).
    theta_pattern : PatternDict
        The pattern of :math:`\theta`.
    """

    estimates: dict
    log_likelihood: float
    n_iter: int
    responsibilities: onp.ndarray
    log_responsibilities: onp.ndarray
    eta: onp.ndarray
    pivot: onp.ndarray
    em_covariance: EMCovariance
    covariances: dict = field(default_factory=dict)
    standard_errors: dict = field(default_factory=dict)
    naive_standard_errors: dict = field(default_factory=dict)
    louis_standard_errors: dict = field(default_factory=dict)
    theta_pattern: Optional[PatternDict] = None

    def comparison_table(self) -> str:
        """Naive and corrected standard errors of every folded coordinate,
        side by side (see ``EMCovariance.comparison_table``)."""
        return self.em_covariance.comparison_table(folded=True)


# ----------------------------------------------------------------------
# Patterns and the model's functions (differentiable by autograd).

def theta_pattern(n_components: int, n_dim: int) -> PatternDict:
    r"""The pattern of :math:`\theta`: ``'weights'`` (simplex, K >= 2),
    ``'means'`` (K, P), ``'covs'`` (K positive definite P x P)."""
    n_components = check_int(n_components, "n_components", 2)
    n_dim = check_int(n_dim, "n_dim", 1)
    pattern = PatternDict()
    pattern["weights"] = SimplexArrayPattern(n_components, ())
    pattern["means"] = NumericArrayPattern((n_components, n_dim))
    pattern["covs"] = PatternArray((n_components,),
                                   PSDSymmetricMatrixPattern(n_dim))
    return pattern


def responsibility_pattern(n_obs: int, n_components: int
                           ) -> SimplexArrayPattern:
    r"""The responsibilities (N, K) as a pattern; its free vector, reshaped
    to (N, K - 1), is :math:`\eta`."""
    return SimplexArrayPattern(check_int(n_components, "n_components", 2),
                               (check_int(n_obs, "n_obs", 1),))


def eta_pattern(n_obs: int, n_components: int) -> NumericArrayPattern:
    r"""The pattern of the E-step parameters: (N, K - 1) log-ratios of
    responsibilities, :math:`\log(r_{nk} / r_{n0})` (the free coordinates of
    :func:`responsibility_pattern`) or, as :func:`fit` uses them, against
    each observation's pivot component (see :func:`negative_em_objective`).
    """
    return NumericArrayPattern((check_int(n_obs, "n_obs", 1),
                                check_int(n_components, "n_components", 2)
                                - 1))


def _theta_parts(theta: Any, y: Any):
    """``(means, covs)`` after checking ``theta``'s keys and shapes against
    the observations ``y`` (N, P) and each other; ``weights`` positive."""
    if not isinstance(theta, dict):
        raise TypeError("theta: expected a dict with 'weights', 'means' and "
                        "'covs', got {}".format(type(theta).__name__))
    missing = [key for key in ("weights", "means", "covs")
               if key not in theta]
    if missing:
        raise ValueError("theta: missing key(s) {}; expected 'weights', "
                         "'means' and 'covs'".format(missing))
    if not isinstance(y, onp.ndarray) or y.ndim != 2:
        raise ValueError("y: expected an (N, P) array of observations, got "
                         "{}".format(_describe_shape(y)))
    k, p = onp.shape(theta["means"]) if onp.ndim(theta["means"]) == 2 \
        else (None, None)
    if k is None or p != y.shape[1]:
        raise ValueError("theta['means']: expected shape (K, {}) to match y "
                         "of shape {}, got {}".format(
                             y.shape[1], y.shape, onp.shape(theta["means"])))
    if onp.shape(theta["covs"]) != (k, p, p):
        raise ValueError("theta['covs']: expected shape {}, got {}".format(
            (k, p, p), onp.shape(theta["covs"])))
    if onp.shape(theta["weights"]) != (k,):
        raise ValueError("theta['weights']: expected shape ({},), got "
                         "{}".format(k, onp.shape(theta["weights"])))
    raw_w = onp.asarray(getval(theta["weights"]))
    if not onp.all(raw_w >= 0):
        j = int(onp.flatnonzero(~(raw_w >= 0))[0])
        raise ValueError("theta['weights'][{}] is {}; weights must be "
                         "non-negative".format(j, raw_w[j]))
    return theta["means"], theta["covs"]


def _describe_shape(value: Any) -> str:
    shape = onp.shape(getval(value)) if hasattr(getval(value), "shape") \
        else None
    return "shape {}".format(shape) if shape is not None else \
        type(value).__name__


def log_joint(theta: dict, y: onp.ndarray):
    r""":math:`a_{nk} = \log \pi_k + \log N(y_n \mid \mu_k, \Sigma_k)`,
    shape (N, K), batched over components through a Cholesky factor."""
    means, covs = _theta_parts(theta, y)
    try:
        chol = np.linalg.cholesky(covs)                           # (K, P, P)
    except onp.linalg.LinAlgError:
        raw = onp.asarray(getval(covs))
        low = onp.linalg.eigvalsh(0.5 * (raw + onp.swapaxes(raw, 1, 2)))[:, 0]
        k = int(onp.argmin(low))
        raise ValueError("theta['covs'][{}]: expected a positive definite "
                         "covariance matrix; its smallest eigenvalue is "
                         "{:.3g}".format(k, low[k])) from None
    diff = y[None, :, :] - means[:, None, :]                      # (K, N, P)
    white = np.linalg.solve(chol, np.swapaxes(diff, 1, 2))        # (K, P, N)
    half_logdet = np.sum(np.log(np.diagonal(chol, axis1=-1, axis2=-2)),
                         axis=-1)
    log_dens = (-0.5 * np.sum(white ** 2, axis=1) - half_logdet[:, None]
                - 0.5 * y.shape[1] * _LOG_2PI)
    return np.transpose(log_dens) + np.log(theta["weights"])[None, :]


def marginal_log_likelihood(theta: dict, y: onp.ndarray):
    r""":math:`\log p(y \mid \theta) = \sum_n \log \sum_k \pi_k N(y_n \mid
    \mu_k, \Sigma_k)`, computed by log-sum-exp."""
    return np.sum(logsumexp(log_joint(theta, y), axis=1))


def _pivot_columns(pivot: Any, n_obs: int, n_components: int):
    """Where component k sits in (0, eta_n): an (N, K) index array, and the
    non-pivot components in order, (N, K - 1); None for ``pivot=None``."""
    if pivot is None:
        return None, None
    arr = index_array(pivot, "pivot", n_obs, "component", "observation")
    check_index_range(arr, n_components, "pivot", "n_components")
    comp = onp.arange(n_components)[None, :]
    position = onp.where(comp < arr[:, None], comp + 1,
                         onp.where(comp == arr[:, None], 0, comp))
    slot = onp.arange(n_components - 1)[None, :]
    others = slot + (slot >= arr[:, None])
    return position, others


def negative_em_objective(theta: dict, eta, y: onp.ndarray,
                          pivot: Any = None):
    r"""The negative EM objective :math:`\sum_{n,k} r_{nk}(\log r_{nk} -
    a_{nk})`.

    ``eta`` (N, K - 1) holds log-ratios: against component 0
    (``pivot=None``, the free coordinates of :func:`responsibility_pattern`)
    or against component ``pivot[n]`` for observation ``n`` (the other
    components in increasing order).  :math:`\log r_n` is the log-softmax of
    the logits ``0`` (reference) and :math:`\eta_n`: log space throughout,
    so responsibilities that underflow to zero are harmless.
    """
    n_obs = y.shape[0]
    position, _ = _pivot_columns(pivot, n_obs, np.shape(eta)[1] + 1)
    logits = np.concatenate([np.zeros((n_obs, 1)), eta], axis=1)
    if position is not None:
        logits = logits[onp.arange(n_obs)[:, None], position]
    log_r = logits - logsumexp(logits, axis=1, keepdims=True)
    return np.sum(np.exp(log_r) * (log_r - log_joint(theta, y)))


def e_step(theta: dict, y: onp.ndarray, pivot: Any = None) -> onp.ndarray:
    r"""The exact E-step at ``theta`` as log-ratios :math:`\eta`, shape
    (N, K - 1) (a folded value of :func:`eta_pattern`), against component 0
    or against ``pivot`` (see :func:`negative_em_objective`)."""
    a = onp.asarray(log_joint(theta, y))
    _, others = _pivot_columns(pivot, a.shape[0], a.shape[1])
    if others is None:
        return a[:, 1:] - a[:, :1]
    rows = onp.arange(a.shape[0])
    return a[rows[:, None], others] - a[rows, onp.asarray(pivot)][:, None]


def fit(data: Any, n_components: int, init: Optional[dict] = None,
        rng: Any = None, tol: float = 1e-10, max_iter: int = 10000, *,
        accelerate: bool = True) -> MixtureFit:
    r"""Fit a ``K``-component Gaussian mixture by EM, with covariances.

    Parameters
    ----------
    data : MixtureData or array_like, shape (N, P)
        The observations (finite).
    n_components : int
        ``K``, with ``2 <= K <= N`` (one component has no latent variable:
        its MLE is the sample mean and covariance).
    init : dict, optional
        Starting :math:`\theta` (``'weights'``, ``'means'``, ``'covs'``, a
        valid value of :func:`theta_pattern`); not mutated. By default
        k-means++ seeds (drawn with ``rng``), one hard assignment, and the
        pooled within-cluster covariance for every component.
    rng : None, int or numpy.random.Generator, optional
        Randomness of the default initialisation.
    tol : float, optional
        EM stops when no parameter moves by more than ``tol`` in one
        iteration, with means and covariances measured in units of the
        data's standard deviation per dimension (default ``1e-10``).
    max_iter : int, optional
        Limit on the number of EM updates (default 10000).
    accelerate : bool, optional
        Extrapolate EM by SQUAREM in the free coordinates of
        :func:`theta_pattern` (default ``True``; monotone in the likelihood
        and with EM's fixed points, but often ten times fewer updates when
        the components overlap). ``False``: plain EM.

    Returns
    -------
    MixtureFit

    Raises
    ------
    TypeError, ValueError
        Bad data or arguments (named in the message); a component that
        collapses (no responsibility, or a singular covariance); EM that
        does not converge within ``max_iter``; an optimum that
        ``EMCovariance`` rejects.

    Examples
    --------
    >>> data = simulate(200, [0.4, 0.6], [[-2.0], [2.0]], [[[1.0]], [[1.0]]],
    ...                 rng=0)
    >>> result = fit(data, 2, rng=0)
    >>> result.estimates['means'].round(1)
    array([[-2.1],
           [ 1.8]])
    >>> bool(onp.all(result.standard_errors['means'] >=
    ...              result.naive_standard_errors['means']))
    True
    """
    y = _check_observations(data)
    check_data_scale(y, "data.y" if isinstance(data, MixtureData) else "data")
    n_obs, n_dim = y.shape
    n_components = check_int(n_components, "n_components", 1)
    if n_components < 2:
        raise ValueError(
            "n_components: expected an int >= 2, got 1 (a single Gaussian "
            "has no latent variable: its MLE is the sample mean and "
            "covariance)")
    if n_components > n_obs:
        raise ValueError("n_components: expected at most n_obs = {} "
                         "components, got {}".format(n_obs, n_components))
    tol = check_tol(tol)
    max_iter = check_int(max_iter, "max_iter", 1)
    pattern = theta_pattern(n_components, n_dim)
    if init is None:
        theta = _initial_theta(y, n_components, resolve_rng(rng))
    else:
        theta = check_init(init, pattern)

    theta, n_iter = _run_em(theta, y, pattern, tol, max_iter,
                            check_bool(accelerate, "accelerate"))
    order = onp.lexsort(theta["means"].T[::-1])
    theta = {key: value[order] for key, value in theta.items()}
    log_resp = _log_responsibilities(theta, y, n_iter)
    pivot = onp.argmax(log_resp, axis=1)
    eta = e_step(theta, y, pivot)
    em_cov = EMCovariance(
        lambda th, et: negative_em_objective(th, et, y, pivot), pattern,
        eta_pattern(n_obs, n_components), theta, eta,
        louis_fun=_louis_fun(y, pattern))
    resp = responsibility_pattern(n_obs, n_components).fold(
        (log_resp[:, 1:] - log_resp[:, :1]).ravel(), free=True)
    return MixtureFit(
        estimates=theta,
        log_likelihood=float(marginal_log_likelihood(theta, y)),
        n_iter=n_iter, responsibilities=resp, log_responsibilities=log_resp,
        eta=eta, pivot=pivot, em_covariance=em_cov,
        theta_pattern=pattern, **em_summary(em_cov, pattern))


def _louis_fun(y: onp.ndarray, pattern: PatternDict):
    r"""Conditional covariance of the complete-data score in free
    coordinates: :math:`\sum_n \mathrm{Cov}_{r_n}(\nabla a_{n\cdot})`,
    with the scores :math:`\nabla a_{nk}` from one forward-mode derivative
    per free coordinate of :math:`\theta` (a loop over parameters only)."""
    def louis(theta, eta):
        free = onp.asarray(pattern.flatten(theta, free=True))
        jvp = autograd.make_jvp(
            lambda x: log_joint(pattern.fold(x, free=True), y))(free)
        scores = onp.stack([onp.asarray(jvp(direction)[1])
                            for direction in onp.eye(free.size)])  # (D,N,K)
        resp = onp.exp(_log_responsibilities(theta, y, 0))
        centred = scores - onp.einsum("dnk,nk->dn", scores, resp)[:, :, None]
        return onp.einsum("dnk,enk,nk->de", centred, centred, resp)
    return louis


def _em_step(theta: dict, y: onp.ndarray, n_iter: int):
    """One EM update; returns it and the log likelihood at ``theta``."""
    log_resp, log_lik = _log_responsibilities(theta, y, n_iter, True)
    return _m_step(onp.exp(log_resp), y, n_iter), log_lik


def _run_em(theta: dict, y: onp.ndarray, pattern: PatternDict, tol: float,
            max_iter: int, accelerate: bool):
    r"""EM from ``theta`` to convergence; returns (theta, EM updates used).

    With ``accelerate``, SQUAREM (Varadhan & Roland 2008, scheme S3) in the
    free coordinates of ``pattern``: after two EM updates :math:`x_1 =
    F(x_0)`, :math:`x_2 = F(x_1)`, the extrapolated point of
    ``squarem_point`` (:mod:`refold.models._em_fit`) is followed by one
    stabilising EM update and accepted when its log likelihood is no lower
    than at :math:`x_1`; otherwise :math:`x_2` is kept. The iteration is
    monotone in the likelihood, like EM, and has the same fixed points.
    """
    scale = onp.std(y, axis=0)
    scale = onp.where(scale > 0, scale, 1.0)
    scale2 = onp.outer(scale, scale)
    n_iter, change = 0, onp.inf
    while n_iter < max_iter:
        first, _ = _em_step(theta, y, n_iter)
        n_iter += 1
        change = max(onp.max(onp.abs(first["weights"] - theta["weights"])),
                     onp.max(onp.abs(first["means"] - theta["means"]) / scale),
                     onp.max(onp.abs(first["covs"] - theta["covs"]) / scale2))
        if change <= tol:
            return first, n_iter
        if n_iter == max_iter:
            break
        second, log_lik_first = _em_step(first, y, n_iter)
        n_iter += 1
        jump = squarem_point(pattern, theta, first, second) \
            if accelerate and n_iter < max_iter else None
        theta = second
        if jump is not None:
            n_iter += 1
            try:
                candidate, log_lik_jump = _em_step(jump, y, n_iter)
            except ValueError:     # the jump left the region EM can use
                continue
            if log_lik_jump >= log_lik_first:
                theta = candidate
    raise ValueError(
        "EM did not converge within max_iter = {} iterations (last "
        "change {:.3g} > tol = {:.3g}); raise max_iter, loosen tol or "
        "start elsewhere (init, rng)".format(max_iter, change, tol))


def _log_responsibilities(theta: dict, y: onp.ndarray, n_iter: int,
                          with_log_lik: bool = False):
    """log r (N, K) at ``theta`` (and the log likelihood); a clear error for
    a singular covariance."""
    vals = onp.linalg.eigvalsh(theta["covs"])
    low = vals[:, 0]
    bad = onp.flatnonzero(~(low > 1e3 * onp.finfo(float).eps * vals[:, -1]))
    if bad.size:
        raise ValueError(
            "covs[{}] became singular at EM iteration {} (smallest "
            "eigenvalue {:.3g}): the component collapsed onto too few "
            "points; try another init or rng, or fewer components".format(
                bad[0], n_iter, low[bad[0]]))
    a = onp.asarray(log_joint(theta, y))
    log_norm = scipy.special.logsumexp(a, axis=1, keepdims=True)
    if with_log_lik:
        return a - log_norm, float(onp.sum(log_norm))
    return a - log_norm


def _m_step(resp: onp.ndarray, y: onp.ndarray, n_iter: int) -> dict:
    counts = resp.sum(axis=0)
    empty = onp.flatnonzero(~(counts > 0))
    if empty.size:
        raise ValueError(
            "component {} lost all its responsibility at EM iteration {} "
            "(it collapsed); try another init or rng, or fewer "
            "components".format(empty[0], n_iter))
    means = (resp.T @ y) / counts[:, None]
    diff = y[None, :, :] - means[:, None, :]
    covs = onp.einsum("nk,knp,knq->kpq", resp, diff, diff) / counts[:, None,
                                                                    None]
    return {"weights": counts / counts.sum(), "means": means,
            "covs": 0.5 * (covs + onp.swapaxes(covs, 1, 2))}


def _initial_theta(y: onp.ndarray, n_components: int,
                   rng: onp.random.Generator) -> dict:
    """k-means++ seeds, one hard assignment, the pooled covariance."""
    n_obs, n_dim = y.shape
    scale = onp.std(y, axis=0)
    scaled = y / onp.where(scale > 0, scale, 1.0)
    seeds = [int(rng.integers(n_obs))]
    dist2 = onp.sum((scaled - scaled[seeds[0]]) ** 2, axis=1)
    for _ in range(1, n_components):      # a loop over components only
        total = dist2.sum()
        if not total > 0:
            raise ValueError(
                "data: fewer than n_components = {} distinct observations; "
                "cannot start {} components".format(n_components,
                                                    n_components))
        seeds.append(int(rng.choice(n_obs, p=dist2 / total)))
        dist2 = onp.minimum(dist2, onp.sum((scaled - scaled[seeds[-1]]) ** 2,
                                           axis=1))
    labels = onp.argmin(onp.sum(
        (scaled[:, None, :] - scaled[seeds][None, :, :]) ** 2, axis=2), axis=1)
    resp = onp.eye(n_components)[labels]
    theta = _m_step(resp, y, 0)
    pooled = onp.einsum("k,kpq->pq", theta["weights"], theta["covs"])
    vals = onp.linalg.eigvalsh(pooled)
    if not vals[0] > 1e3 * onp.finfo(float).eps * max(vals[-1], 1e-300):
        pooled = onp.atleast_2d(onp.cov(y, rowvar=False))
        vals = onp.linalg.eigvalsh(pooled)
        if not vals[0] > 1e3 * onp.finfo(float).eps * max(vals[-1], 1e-300):
            raise ValueError(
                "data: the sample covariance is singular (a constant or "
                "collinear dimension); a Gaussian mixture needs full-rank "
                "data")
    theta["covs"] = onp.broadcast_to(pooled, theta["covs"].shape).copy()
    return theta
