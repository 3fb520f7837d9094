r"""Exact posterior moments by importance sampling from a Laplace proposal.

A reference for checking approximate covariances (linear response, MFVB) on
models small enough to sample: find the posterior mode, take the Laplace
covariance :math:`(-\nabla^2 \log p(\theta \mid y))^{-1}` there, draw from a
multivariate *t* with that location and scale (heavier tails than the
posterior, so the weights stay bounded), and self-normalise the weights
:math:`w_i \propto p(\theta_i \mid y) / q(\theta_i)`. The reported Monte Carlo
standard errors come from splitting the draws into interleaved batches.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional

import autograd
import numpy as np
import scipy.special
import scipy.stats

from refold.models._data import (check_finite, check_int, check_positive,
                                 real_array, resolve_rng)
from refold.sensitivity._checks import user_call
from refold.sensitivity.refit import refit

__all__ = ["ImportanceSamplingResult", "laplace_importance_sampling"]


@dataclass
class ImportanceSamplingResult:
    r"""Posterior moments estimated by self-normalised importance sampling.

    Attributes
    ----------
    mode : numpy.ndarray, (D,)
        The posterior mode (the proposal's location).
    laplace_cov : numpy.ndarray, (D, D)
        The Laplace covariance at the mode (the proposal's scale matrix).
    draws : numpy.ndarray, (S, D)
        The proposal draws.
    weights : numpy.ndarray, (S,)
        Normalised importance weights (they sum to one).
    mean, cov : numpy.ndarray
        The weighted posterior mean (D,) and covariance (D, D).
    cov_mc_se : numpy.ndarray, (D, D)
        Monte Carlo standard errors of ``cov``'s entries (batch estimate).
    ess : float
        Kish's effective sample size, :math:`1 / \sum_i w_i^2`.
    """

    mode: np.ndarray
    laplace_cov: np.ndarray
    draws: np.ndarray
    weights: np.ndarray
    mean: np.ndarray
    cov: np.ndarray
    cov_mc_se: np.ndarray
    ess: float

    @property
    def sd(self) -> np.ndarray:
        """Posterior standard deviations, ``sqrt(diag(cov))``."""
        return np.sqrt(np.diag(self.cov))


def _weighted_cov(draws, weights):
    weights = weights / weights.sum()
    centred = draws - weights @ draws
    return (centred * weights[:, None]).T @ centred


def laplace_importance_sampling(
        log_posterior: Callable, init: np.ndarray, *, num_draws: int = 100_000,
        df: float = 6.0, rng=None, batch_size: int = 10_000,
        num_batches: int = 20, min_ess: Optional[float] = 1000.0
) -> ImportanceSamplingResult:
    r"""Posterior mean and covariance by importance sampling.

    Parameters
    ----------
    log_posterior : callable
        ``log_posterior(theta)`` for ``theta`` of shape (S, D) returns the
        unnormalised log posterior of each row, shape (S,). It must be
        differentiable by autograd (the mode and Laplace covariance are
        computed from it).
    init : numpy.ndarray, (D,)
        A starting point for finding the mode.
    num_draws : int, optional
        Number of proposal draws.
    df : float, optional
        Degrees of freedom of the multivariate *t* proposal.
    rng : None, int or numpy.random.Generator, optional
        Source of randomness.
    batch_size : int, optional
        Rows passed to ``log_posterior`` at once (bounds memory).
    num_batches : int, optional
        Interleaved batches for the Monte Carlo standard errors.
    min_ess : float or None, optional
        Raise if the effective sample size falls below this (``None`` to
        accept any).

    Returns
    -------
    ImportanceSamplingResult

    Raises
    ------
    ValueError
        If the arguments are invalid, the Laplace covariance is not positive
        definite, or the weights are too degenerate (``ess < min_ess``).
    """
    if not callable(log_posterior):
        raise TypeError("log_posterior: expected a callable, got {}".format(
            type(log_posterior).__name__))
    init = real_array(init, "init", 1)
    if init.size == 0:
        raise ValueError("init: expected a non-empty 1-d vector, got shape "
                         "{}".format(init.shape))
    num_draws = check_int(num_draws, "num_draws", 2)
    batch_size = check_int(batch_size, "batch_size", 1)
    num_batches = check_int(num_batches, "num_batches", 2)
    df = check_positive(df, "df")
    if min_ess is not None:
        min_ess = check_finite(min_ess, "min_ess")
        if min_ess < 0:
            raise ValueError("min_ess: expected a non-negative number or "
                             "None, got {!r}".format(min_ess))
    rng = resolve_rng(rng)

    def negative(theta):
        value = user_call(log_posterior, "log_posterior",
                          "at a point of shape (1, {})".format(theta.shape[0]),
                          theta[None, :])
        return -value[0]

    mode = refit(negative, init, gtol=1e-9).x
    hessian = autograd.hessian(negative)(mode)
    try:
        chol_prec = np.linalg.cholesky(0.5 * (hessian + hessian.T))
    except np.linalg.LinAlgError:
        raise ValueError(
            "log_posterior: the negative log posterior's Hessian at the mode "
            "is not positive definite (smallest eigenvalue {:.3g}), so there "
            "is no Laplace proposal".format(
                np.linalg.eigvalsh(hessian)[0])) from None
    eye = np.eye(mode.size)
    laplace_cov = scipy.linalg.cho_solve((chol_prec, True), eye)
    chol = np.linalg.cholesky(laplace_cov)
    scale = np.sqrt(rng.chisquare(df, num_draws) / df)
    draws = mode + (rng.standard_normal((num_draws, mode.size)) @ chol.T) \
        / scale[:, None]
    log_q = scipy.stats.multivariate_t(mode, laplace_cov, df=df).logpdf(draws)
    log_p = np.concatenate([
        np.asarray(log_posterior(draws[i:i + batch_size]), dtype=float)
        for i in range(0, num_draws, batch_size)])
    log_w = log_p - log_q
    if not np.all(np.isfinite(log_w)):
        raise ValueError(
            "log_posterior: returned non-finite values at {} of the draws".format(
                int(np.sum(~np.isfinite(log_w)))))
    weights = np.exp(log_w - scipy.special.logsumexp(log_w))
    ess = float(1.0 / np.sum(weights ** 2))
    if min_ess is not None and ess < min_ess:
        raise ValueError(
            "the importance weights are too degenerate: effective sample "
            "size {:.0f} < min_ess={:.0f}; use more draws, a smaller df, or "
            "a model closer to its Laplace approximation".format(ess, min_ess))
    cov = _weighted_cov(draws, weights)
    batches = np.stack([_weighted_cov(draws[i::num_batches],
                                      weights[i::num_batches])
                        for i in range(num_batches)])
    cov_mc_se = batches.std(axis=0, ddof=1) / np.sqrt(num_batches)
    return ImportanceSamplingResult(
        mode=mode, laplace_cov=laplace_cov, draws=draws, weights=weights,
        mean=weights @ draws, cov=cov, cov_mc_se=cov_mc_se, ess=ess)
