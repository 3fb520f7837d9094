r"""Pieces shared by the EM fits of the worked models (private).

:mod:`~refold.models.neyman_scott`, :mod:`~refold.models.gaussian_mixture`
and :mod:`~refold.models.mixed_model` iterate a closed-form EM update to a
fixed point (the mixture with SQUAREM extrapolation) and report the same
three covariances of the flat :math:`\hat\theta` from an
:class:`~refold.models.em_covariance.EMCovariance` (given ``louis_fun``),
with standard errors folded like the estimates.
"""
from __future__ import annotations

from typing import Any, Callable, Dict, Optional, Tuple

import numpy as onp

from refold.models.em_covariance import EMCovariance
from refold.patterns.base import Pattern

__all__ = ["iterate_em", "squarem_point", "em_covariances", "em_summary"]


def iterate_em(update: Callable[[Any], Any],
               change: Callable[[Any, Any], float], theta: Any, tol: float,
               max_iter: int) -> Tuple[Any, int, float]:
    """Iterate ``theta <- update(theta)`` until ``change(new, old) <= tol``.

    Returns ``(theta, n_iter, last_change)``; the caller raises (in its own
    words) when ``last_change > tol``, i.e. when ``max_iter`` updates did
    not converge.
    """
    last = onp.inf
    for n_iter in range(1, max_iter + 1):
        new = update(theta)
        last = change(new, theta)
        theta = new
        if last <= tol:
            break
    return theta, n_iter, last


def em_covariances(em_cov: EMCovariance) -> Dict[str, onp.ndarray]:
    """``'corrected'``, ``'naive'`` and ``'louis'`` covariances of the flat
    (folded) estimate, by the delta method."""
    return {"corrected": em_cov.covariance(folded=True),
            "naive": em_cov.naive_covariance(folded=True),
            "louis": em_cov.louis_covariance(folded=True)}


def em_summary(em_cov: EMCovariance, pattern: Pattern) -> dict:
    """The keyword arguments ``covariances``, ``standard_errors``,
    ``naive_standard_errors`` and ``louis_standard_errors`` of a fit result:
    :func:`em_covariances` and the square roots of their diagonals, folded
    by ``pattern`` like the estimates."""
    covariances = em_covariances(em_cov)
    se = {kind: pattern.fold(onp.sqrt(onp.maximum(onp.diag(cov), 0.0)),
                             free=False, validate_value=False)
          for kind, cov in covariances.items()}
    return {"covariances": covariances, "standard_errors": se["corrected"],
            "naive_standard_errors": se["naive"],
            "louis_standard_errors": se["louis"]}


def squarem_point(pattern: Pattern, theta0: dict, theta1: dict,
                  theta2: dict) -> Optional[dict]:
    r"""The SQUAREM extrapolation from ``theta0`` and two EM updates of it,
    or None when it is the plain double step or not finite.

    Varadhan & Roland (2008), scheme S3, in the free coordinates of
    ``pattern`` (so every extrapolated point is a valid parameter): with
    :math:`x_1 = F(x_0)`, :math:`x_2 = F(x_1)`, :math:`r = x_1 - x_0`,
    :math:`v = x_2 - 2x_1 + x_0` and :math:`\alpha = \min(-1,
    -\|r\|/\|v\|)`, the point :math:`x_0 - 2\alpha r + \alpha^2 v`,
    folded.
    """
    x0, x1, x2 = (pattern.flatten(t, free=True)
                  for t in (theta0, theta1, theta2))
    r, v = x1 - x0, x2 - 2 * x1 + x0
    vv = float(v @ v)
    if not vv > 0:
        return None
    alpha = min(-1.0, -onp.sqrt(float(r @ r) / vv))
    if alpha == -1.0:
        return None
    point = x0 - 2 * alpha * r + alpha ** 2 * v
    if not onp.all(onp.isfinite(point)):
        return None
    with onp.errstate(all="ignore"):
        theta = pattern.fold(point, free=True, validate_value=False)
    if not all(onp.all(onp.isfinite(value)) for value in theta.values()):
        return None
    return {key: onp.asarray(value) for key, value in theta.items()}
