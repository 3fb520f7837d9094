r"""Gaussian-mixture data: observations, input checks and a simulator.

:class:`MixtureData` holds observations ``y`` of shape ``(N, P)`` (and the
truth, when simulated); :func:`simulate` draws them from a mixture with
given weights, means and covariances.  The EM fit and its covariances live
in :mod:`refold.models.gaussian_mixture` (which re-exports both names).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

import numpy as onp

from refold.models._data import check_int, real_array, resolve_rng
from refold.patterns.containers import PatternArray
from refold.patterns.psd import PSDSymmetricMatrixPattern
from refold.patterns.simplex import sum_tolerance

__all__ = ["MixtureData", "simulate"]


@dataclass
class MixtureData:
    """Observations from a Gaussian mixture (simulated or observed).

    Attributes
    ----------
    y : numpy.ndarray, shape (N, P)
        The observations.
    z : numpy.ndarray of int, shape (N,), or None
        The true components, when simulated.
    weights, means, covs : numpy.ndarray or None
        The true parameters, shapes (K,), (K, P), (K, P, P), when simulated.
    """

    y: onp.ndarray
    z: Optional[onp.ndarray] = None
    weights: Optional[onp.ndarray] = None
    means: Optional[onp.ndarray] = None
    covs: Optional[onp.ndarray] = None

    @property
    def n_obs(self) -> int:
        """Number of observations ``N``."""
        return int(onp.shape(self.y)[0])

    @property
    def n_dim(self) -> int:
        """Dimension ``P`` of each observation."""
        return int(onp.shape(self.y)[1])



# ----------------------------------------------------------------------
# Checks.

def _check_observations(data: Any) -> onp.ndarray:
    y = data.y if isinstance(data, MixtureData) else data
    name = "data.y" if isinstance(data, MixtureData) else "data"
    arr = onp.asarray(y)
    if arr.ndim == 2 and arr.shape[1] == 0:
        raise ValueError("{}: expected at least one dimension (column), got "
                         "shape {}".format(name, arr.shape))
    if arr.ndim == 2 and arr.shape[0] == 0:
        raise ValueError("{}: expected at least one observation, got shape "
                         "{}".format(name, arr.shape))
    if arr.ndim != 2:
        hint = " (use y[:, None] for one-dimensional data)" \
            if arr.ndim == 1 else ""
        if arr.dtype != object and arr.dtype.kind in "biuf":
            raise ValueError("{}: expected an (N, P) array{}, got shape "
                             "{}".format(name, hint, arr.shape))
    return real_array(arr, name, (None, None))


def _check_weights(weights: Any) -> onp.ndarray:
    arr = real_array(weights, "weights", (None,))
    if arr.size == 0:
        raise ValueError("weights: expected at least one component")
    if onp.any(arr < 0):
        k = int(onp.flatnonzero(arr < 0)[0])
        raise ValueError("weights[{}] is {}; weights must be "
                         "non-negative".format(k, arr[k]))
    if abs(arr.sum() - 1.0) > sum_tolerance(float, arr.size):
        raise ValueError("weights: expected a probability vector summing to "
                         "1, got sum {!r}".format(float(arr.sum())))
    return arr


def _check_covs(covs: Any, n_components: int, n_dim: int,
                name: str = "covs") -> onp.ndarray:
    arr = real_array(covs, name, (n_components, n_dim, n_dim))
    pattern = PatternArray((n_components,), PSDSymmetricMatrixPattern(n_dim))
    ok, message = pattern.validate_folded(arr)
    if not ok:
        raise ValueError(message.replace("params", name, 1))
    return arr


# ----------------------------------------------------------------------

def simulate(n_obs: int, weights: Any, means: Any, covs: Any,
             rng: Any = None) -> MixtureData:
    r"""Draw ``n_obs`` observations from a Gaussian mixture.

    Parameters
    ----------
    n_obs : int
        ``N >= 1``.
    weights : array_like, shape (K,)
        Mixing proportions (non-negative, summing to one).
    means : array_like, shape (K, P)
        Component means.
    covs : array_like, shape (K, P, P)
        Component covariances (symmetric positive definite).
    rng : None, int or numpy.random.Generator, optional
        Source of randomness.

    Returns
    -------
    MixtureData
        With the true components ``z`` and parameters (copies).

    Raises
    ------
    TypeError, ValueError
        Naming the argument: wrong types, shapes that disagree, NaN,
        weights off the simplex, covariances that are not positive definite.

    Examples
    --------
    >>> data = simulate(5, [0.3, 0.7], [[0.0], [4.0]], [[[1.0]], [[2.0]]],
    ...                 rng=0)
    >>> data.y.shape, data.z.shape
    ((5, 1), (5,))
    """
    n_obs = check_int(n_obs, "n_obs", 1)
    weights = _check_weights(weights)
    n_components = weights.size
    means = real_array(means, "means", (n_components, None))
    if means.shape[1] == 0:
        raise ValueError("means: expected shape (K, P) with P >= 1, got "
                         "{}".format(means.shape))
    covs = _check_covs(covs, n_components, means.shape[1])
    rng = resolve_rng(rng)
    z = rng.choice(n_components, size=n_obs, p=weights / weights.sum())
    chol = onp.linalg.cholesky(covs)
    noise = rng.standard_normal((n_obs, means.shape[1]))
    y = means[z] + onp.einsum("npq,nq->np", chol[z], noise)
    return MixtureData(y=y, z=z, weights=weights, means=means, covs=covs)
