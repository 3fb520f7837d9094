r"""Standard errors of M-estimators: model-based and sandwich, optionally
clustered, as functions of the optimum *and* the observation weights.

For the weighted objective :math:`f(\theta, w) = \sum_n w_n \ell_n(\theta)
+ \pi(\theta)` with optimum :math:`\hat\theta(w)` and Hessian
:math:`H = \nabla^2_\theta f`,

* the **model-based** covariance is :math:`\phi\, H^{-1}`, with
  :math:`\phi = 1` when :math:`\ell_n` is a negative log likelihood
  (logistic, Poisson, ...) and :math:`\phi` the residual variance for least
  squares with :math:`\ell_n = r_n^2 / 2` (``dispersion='gaussian'``:
  :math:`\phi = \sum_n w_n r_n^2 / (\sum_n w_n - D)`);
* for an estimating equation :math:`\sum_n w_n \psi_n(\theta) = 0`
  (instrumental variables, :mod:`refold.sensitivity.ee_weights`) the
  sandwich :math:`J^{-1} M J^{-\top}` with :math:`J = \partial G /
  \partial\theta` and :math:`g_n = \psi_n` below
  (:func:`moment_sandwich_covariance`);
* the **sandwich** (robust, HC0) covariance is :math:`H^{-1} M H^{-1}` with
  :math:`M = \sum_n w_n g_n g_n^\top`, :math:`g_n = \nabla\ell_n(\hat\theta)`;
  clustered by labels :math:`c_n`, :math:`M = \sum_c s_c s_c^\top` with
  :math:`s_c = \sum_{n: c_n = c} w_n g_n` (the Liang-Zeger estimator,
  without small-sample factors unless ``small_sample=True``, which
  multiplies by :math:`\frac{C}{C - 1}\frac{N - 1}{N - D}` as Stata does).

Decision: the weights enter :math:`M` linearly (:math:`w_n`, not
:math:`w_n^2`), as frequency weights: at 0/1 weights the two agree, and the
linear form makes a dropped observation's weight derivative the change of
dropping it.  ``N`` in the small-sample factor is :math:`\sum_n w_n`.

Everything is written in autograd's numpy, so a standard error is
differentiable in both :math:`\theta` and :math:`w`: that is what the
significance targets of :meth:`WeightSensitivity.drop_data
<refold.sensitivity.data_weights.WeightSensitivity.drop_data>` and
:func:`refold.sensitivity.drop_data.greedy_drop` need
(:func:`standard_error_fun` makes such a function).  Per-observation
gradients cost ``D`` forward-mode passes of the loss vector, never ``N``
reverse passes.  A near-singular Hessian (collinear design columns, or a
parameter the data do not identify) is a ``ValueError`` naming the
parameters involved (:func:`check_nonsingular`), never a covariance of
rounding noise.
"""
from __future__ import annotations

from typing import Any, Callable, Optional, Sequence, Union

import autograd
import autograd.numpy as anp
import numpy as np
from autograd.extend import defjvp, defvjp, primitive
from autograd.tracer import getval

__all__ = ["per_observation_gradients", "hessian_covariance",
           "sandwich_covariance", "standard_error_fun", "check_nonsingular",
           "moment_sandwich_covariance"]

#: Largest acceptable condition number of the unit-diagonal scaled Hessian.
_MAX_CONDITION = 1e10


@primitive
def _group_sum(values, labels, n_groups):
    """``out[c] = sum of values[n] with labels[n] == c`` (rows)."""
    out = np.zeros((n_groups,) + np.shape(values)[1:])
    np.add.at(out, labels, values)
    return out


defvjp(_group_sum, lambda ans, values, labels, n_groups:
       lambda g: g[labels])
defjvp(_group_sum, lambda g, ans, values, labels, n_groups:
       _group_sum(g, labels, n_groups))


def check_nonsingular(matrix: Any, name: str = "the Hessian",
                      labels: Optional[Sequence[str]] = None) -> None:
    r"""Raise a ``ValueError`` naming the coordinates of a near-null
    direction of a symmetric matrix.

    The matrix is scaled to unit diagonal (so units do not matter) and its
    eigenvalues computed; a condition number above ``1e10``, a
    non-positive diagonal entry or a non-finite entry is an error whose
    message lists the coordinates with weight in the smallest eigenvector
    (typically collinear design columns).

    Parameters
    ----------
    matrix : array_like, shape (D, D)
    name : str, optional
        How the matrix is named in the message.
    labels : sequence of str, optional
        Names of the coordinates (default ``theta[i]``).

    Raises
    ------
    ValueError

    Examples
    --------
    >>> import numpy as np
    >>> x = np.column_stack([np.ones(5), np.arange(5.0), 2 * np.arange(5.0)])
    >>> check_nonsingular(x.T @ x, "X'X", labels=["const", "x1", "x2"])
    Traceback (most recent call last):
    ...
    ValueError: X'X is singular or nearly so (condition number ...): the columns ['x1', 'x2'] are collinear ...
    """
    mat = np.asarray(getval(matrix), dtype=float)
    dim = mat.shape[0]
    names = [f"theta[{i}]" for i in range(dim)] if labels is None \
        else [str(s) for s in labels]
    if not np.all(np.isfinite(mat)):
        raise ValueError(f"{name} is not finite")
    diag = np.diagonal(mat)
    if np.any(diag <= 0):
        bad = [names[i] for i in np.flatnonzero(diag <= 0)]
        raise ValueError(f"{name} has non-positive curvature in {bad}: the "
                         f"data do not identify these parameters (e.g. a "
                         f"column of zeros)")
    scale = 1.0 / np.sqrt(diag)
    scaled = mat * scale[:, None] * scale[None, :]
    evals, evecs = np.linalg.eigh(0.5 * (scaled + scaled.T))
    top = max(float(evals[-1]), 1e-300)
    if evals[0] <= top / _MAX_CONDITION:
        vec = evecs[:, 0]
        big = np.flatnonzero(np.abs(vec) > 0.1 * np.max(np.abs(vec)))
        cond = np.inf if evals[0] <= 0 else top / evals[0]
        combo = " + ".join(f"{vec[i]:.3g}*{names[i]}" for i in big)
        raise ValueError(
            f"{name} is singular or nearly so (condition number {cond:.3g} "
            f"after scaling to unit diagonal): the columns "
            f"{[names[i] for i in big]} are collinear (near-null direction "
            f"{combo}); drop or combine them")


def _weights_or_ones(weights, n_obs):
    if weights is None:
        return np.ones(n_obs)
    if getval(weights) is weights:
        w = np.asarray(weights, dtype=float)
        if w.shape != (n_obs,):
            raise ValueError(f"weights must have shape ({n_obs},); got "
                             f"{w.shape}")
        if not np.all(np.isfinite(w)):
            raise ValueError("weights must be finite")
        return w
    return weights


def per_observation_gradients(loss_terms_fun: Callable, theta: Any):
    r"""The ``(N, D)`` matrix of :math:`\nabla\ell_n(\theta)`, by ``D``
    forward-mode passes of the loss vector (differentiable by autograd).

    Examples
    --------
    >>> import autograd.numpy as anp, numpy as np
    >>> y = np.array([1.0, 3.0])
    >>> per_observation_gradients(lambda t: 0.5 * (y - t[0]) ** 2,
    ...                           np.array([2.0]))
    array([[ 1.],
           [-1.]])
    """
    dim = np.shape(getval(theta))[0]
    jvp = autograd.make_jvp(loss_terms_fun)(theta)
    return anp.stack([jvp(e)[1] for e in np.eye(dim)], axis=1)


def _hessian(loss_terms_fun, theta, weights, prior_fun):
    def objective(t):
        value = anp.dot(weights, loss_terms_fun(t))
        return value if prior_fun is None else value + prior_fun(t)
    return autograd.hessian(objective)(theta)


def _dispersion(dispersion, loss_terms_fun, theta, weights):
    if isinstance(dispersion, str):
        if dispersion != "gaussian":
            raise ValueError(f"dispersion must be a positive number, a "
                             f"callable or 'gaussian'; got {dispersion!r}")
        dim = np.shape(getval(theta))[0]
        dof = anp.sum(weights) - dim
        if getval(dof) <= 0:
            raise ValueError(f"dispersion='gaussian' needs more weight than "
                             f"parameters; sum(weights) - D = {getval(dof)}")
        return 2.0 * anp.dot(weights, loss_terms_fun(theta)) / dof
    if callable(dispersion):
        return dispersion(theta, weights)
    if isinstance(dispersion, (bool, np.bool_)) or not isinstance(
            dispersion, (int, float, np.integer, np.floating)) or not (
            np.isfinite(dispersion) and dispersion > 0):
        raise ValueError(f"dispersion must be a positive number, a callable "
                         f"or 'gaussian'; got {dispersion!r}")
    return float(dispersion)


def hessian_covariance(loss_terms_fun: Callable, theta: Any,
                       weights: Any = None,
                       prior_fun: Optional[Callable] = None, *,
                       dispersion: Union[float, str, Callable] = 1.0):
    r"""The model-based covariance :math:`\phi H^{-1}` of the optimum.

    Parameters
    ----------
    loss_terms_fun : callable
        ``loss_terms_fun(theta)``, the length-``N`` vector of losses.
    theta : array_like, shape (D,)
        The optimum at ``weights``.
    weights : array_like, shape (N,), optional
        Observation weights (default all 1).
    prior_fun : callable, optional
        An unweighted prior or penalty :math:`\pi(\theta)`.
    dispersion : float, 'gaussian' or callable, optional
        :math:`\phi`: a number (default 1, for likelihoods), ``'gaussian'``
        (least squares with :math:`\ell_n = r_n^2/2`: the weighted residual
        variance with ``D`` degrees of freedom removed), or a callable
        ``dispersion(theta, weights)``.

    Returns
    -------
    (D, D) array, differentiable by autograd in ``theta`` and ``weights``.

    Raises
    ------
    ValueError
        A near-singular Hessian (naming the collinear parameters), bad
        weights or dispersion.
    """
    n_obs = np.shape(getval(loss_terms_fun(getval(theta))))[0]
    weights = _weights_or_ones(weights, n_obs)
    hess = _hessian(loss_terms_fun, theta, weights, prior_fun)
    check_nonsingular(hess, "the Hessian of the weighted objective")
    phi = _dispersion(dispersion, loss_terms_fun, theta, weights)
    return phi * anp.linalg.inv(hess)


def sandwich_covariance(loss_terms_fun: Callable, theta: Any,
                        weights: Any = None,
                        prior_fun: Optional[Callable] = None, *,
                        clusters: Any = None, small_sample: bool = False):
    r"""The sandwich (robust) covariance :math:`H^{-1} M H^{-1}`,
    optionally clustered.

    Parameters
    ----------
    loss_terms_fun, theta, weights, prior_fun
        As in :func:`hessian_covariance`.
    clusters : array_like of shape (N,), optional
        Cluster labels (any hashable values); ``None`` (default): every
        observation its own cluster (HC0).
    small_sample : bool, optional
        Multiply by :math:`\frac{C}{C-1}\frac{N-1}{N-D}` (clustered) or
        :math:`\frac{N}{N-D}` (HC1), with :math:`N = \sum_n w_n`.

    Returns
    -------
    (D, D) array, differentiable by autograd in ``theta`` and ``weights``.

    Raises
    ------
    ValueError
        A near-singular Hessian (naming the collinear parameters), bad
        weights or cluster labels of the wrong length.
    """
    grads = per_observation_gradients(loss_terms_fun, theta)
    weights = _weights_or_ones(weights, np.shape(getval(grads))[0])
    hess = _hessian(loss_terms_fun, theta, weights, prior_fun)
    check_nonsingular(hess, "the Hessian of the weighted objective")
    meat = _meat(grads, weights, clusters, small_sample)
    bread = anp.linalg.inv(hess)
    return anp.dot(bread, anp.dot(meat, bread))


def _meat(grads, weights, clusters, small_sample):
    n_obs, dim = np.shape(getval(grads))
    scaled = weights[:, None] * grads
    total = anp.sum(weights)
    if clusters is None:
        factor = total / (total - dim) if small_sample else 1.0
        return factor * anp.dot(grads.T, scaled)
    labels = np.asarray(clusters)
    if labels.shape != (n_obs,):
        raise ValueError(f"clusters must have shape ({n_obs},); got "
                         f"{labels.shape}")
    _, codes = np.unique(labels, return_inverse=True)
    n_clusters = int(codes.max()) + 1
    if n_clusters < 2:
        raise ValueError("clusters must have at least two distinct labels")
    sums = _group_sum(scaled, codes.ravel(), n_clusters)
    factor = (n_clusters / (n_clusters - 1.0) * (total - 1.0)
              / (total - dim)) if small_sample else 1.0
    return factor * anp.dot(sums.T, sums)


def moment_sandwich_covariance(moment_fun: Callable, theta: Any,
                               weights: Any = None, *, clusters: Any = None,
                               small_sample: bool = False):
    r"""The sandwich covariance :math:`J^{-1} M J^{-	op}` of the root of
    :math:`G(	heta, w) = \sum_n w_n \psi_n(	heta) = 0`, optionally
    clustered (for instrumental variables: the robust IV covariance).

    Parameters
    ----------
    moment_fun : callable
        ``moment_fun(theta)``, the ``(N, D)`` per-observation contributions.
    theta : array_like, shape (D,)
        The root at ``weights``.
    weights, clusters, small_sample
        As in :func:`sandwich_covariance`.

    Returns
    -------
    (D, D) array, differentiable by autograd in ``theta`` and ``weights``.

    Raises
    ------
    ValueError
        A singular Jacobian, bad weights or cluster labels.
    """
    moments = moment_fun(theta)
    n_obs = np.shape(getval(moments))[0]
    weights = _weights_or_ones(weights, n_obs)
    jac = autograd.jacobian(lambda t: anp.dot(weights, moment_fun(t)))(theta)
    raw = np.asarray(getval(jac), dtype=float)
    sv = np.linalg.svd(raw, compute_uv=False)
    if not sv[-1] > 1e-12 * sv[0]:
        raise ValueError(f"the Jacobian of the estimating equation is "
                         f"singular or nearly so (singular values "
                         f"{sv[0]:.3g} ... {sv[-1]:.3g})")
    meat = _meat(moments, weights, clusters, small_sample)
    inv = anp.linalg.inv(jac)
    return anp.dot(inv, anp.dot(meat, inv.T))


def standard_error_fun(loss_terms_fun: Callable, qoi_fun: Any, *,
                       kind: str = "model",
                       prior_fun: Optional[Callable] = None,
                       dispersion: Union[float, str, Callable] = 1.0,
                       clusters: Any = None,
                       small_sample: bool = False) -> Callable:
    r"""A function ``se(theta, weights)``: the delta-method standard error
    :math:`\sqrt{\nabla q^\top V \nabla q}` of a quantity of interest, with
    :math:`V` model-based (``kind='model'``) or sandwich
    (``kind='sandwich'``, optionally clustered).

    The result is differentiable by autograd in both arguments, as the
    significance targets of the drop-data searches require.

    Parameters
    ----------
    loss_terms_fun : callable
    qoi_fun : callable or int
        ``q(theta)`` or an index into ``theta``.
    kind : {'model', 'sandwich', 'moment'}
        ``'moment'``: ``loss_terms_fun`` is then a ``moment_fun`` of an
        estimating equation and :func:`moment_sandwich_covariance` is used.
    prior_fun, dispersion
        As in :func:`hessian_covariance` (``dispersion`` only for
        ``'model'``).
    clusters, small_sample
        As in :func:`sandwich_covariance` (``'sandwich'`` only).

    Returns
    -------
    callable

    Examples
    --------
    >>> import autograd.numpy as anp, numpy as np
    >>> x = np.column_stack([np.ones(4), [0.0, 1.0, 2.0, 3.0]])
    >>> y = np.array([0.1, 0.9, 2.2, 2.8])
    >>> theta = np.linalg.lstsq(x, y, rcond=None)[0]
    >>> se = standard_error_fun(lambda t: 0.5 * (y - anp.dot(x, t)) ** 2, 1,
    ...                         dispersion="gaussian")
    >>> resid = y - x @ theta
    >>> closed = np.sqrt(resid @ resid / 2 * np.linalg.inv(x.T @ x)[1, 1])
    >>> bool(np.isclose(se(theta, np.ones(4)), closed))
    True
    """
    if kind not in ("model", "sandwich", "moment"):
        raise ValueError(f"kind must be 'model', 'sandwich' or 'moment'; "
                         f"got {kind!r}")
    if kind == "model" and (clusters is not None or small_sample):
        raise ValueError("clusters and small_sample need kind='sandwich'")
    if kind != "model" and not (isinstance(dispersion, (int, float))
                                and dispersion == 1.0):
        raise ValueError("dispersion is for kind='model' only")
    if kind == "moment" and prior_fun is not None:
        raise ValueError("prior_fun is not used with kind='moment'")
    if isinstance(qoi_fun, (int, np.integer)) and not isinstance(
            qoi_fun, (bool, np.bool_)):
        index = int(qoi_fun)

        def qoi(theta):
            return theta[index]
    elif callable(qoi_fun):
        qoi = qoi_fun
    else:
        raise TypeError(f"qoi_fun must be a callable q(theta) or an index; "
                        f"got {type(qoi_fun).__name__}")
    qoi_grad = autograd.grad(qoi)

    def se(theta, weights):
        if kind == "model":
            cov = hessian_covariance(loss_terms_fun, theta, weights,
                                     prior_fun, dispersion=dispersion)
        elif kind == "moment":
            cov = moment_sandwich_covariance(
                loss_terms_fun, theta, weights, clusters=clusters,
                small_sample=small_sample)
        else:
            cov = sandwich_covariance(loss_terms_fun, theta, weights,
                                      prior_fun, clusters=clusters,
                                      small_sample=small_sample)
        c = qoi_grad(theta)
        return anp.sqrt(anp.dot(c, anp.dot(cov, c)))
    return se
