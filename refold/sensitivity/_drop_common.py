"""Pieces shared by the drop-data searches (private): argument checks, the
target (sign, threshold or significance of a quantity of interest), the
adaptive batch size and the result type's assembly."""
from __future__ import annotations

from typing import Any, Callable, Optional

import autograd
import numpy as np

TARGETS = ("sign", "threshold", "significance")


def check_fraction(value: Any, name: str) -> float:
    """A number strictly inside (0, 1)."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(
            value, (int, float, np.integer, np.floating)) or not (
            0.0 < float(value) < 1.0):
        raise ValueError(f"{name} must be a number in (0, 1); got {value!r}")
    return float(value)


def check_weights(weights: Any, n_obs: int, name: str = "weights"
                  ) -> np.ndarray:
    """A finite real ``(N,)`` vector with entries in [0, 1]."""
    arr = np.asarray(weights)
    if arr.dtype.kind not in "biuf":
        raise ValueError(f"{name} must be real numbers in [0, 1]; got dtype "
                         f"{arr.dtype}")
    arr = arr.astype(float)
    if arr.shape != (n_obs,):
        raise ValueError(f"{name} must have shape ({n_obs},); got "
                         f"{arr.shape}")
    bad = np.flatnonzero(~(np.isfinite(arr) & (arr >= 0) & (arr <= 1)))
    if bad.size:
        raise ValueError(f"{name} must be in [0, 1]; {name}[{bad[0]}] is "
                         f"{arr[bad[0]]}")
    return arr


def critical_value(level: Any) -> float:
    """The two-sided normal critical value of a significance ``level``."""
    level = check_fraction(level, "level")
    from scipy.special import ndtri  # on first use: slow to import
    return float(ndtri(1.0 - level / 2.0))


def qoi_callable(qoi_fun: Any, dim: int) -> Callable:
    """``q(theta)`` from a callable or an index into ``theta``."""
    if isinstance(qoi_fun, (int, np.integer)) and not isinstance(
            qoi_fun, (bool, np.bool_)):
        index = int(qoi_fun)
        if not -dim <= index < dim:
            raise ValueError(f"qoi_fun as an index must be in [0, {dim}); "
                             f"got {index}")
        return lambda theta: theta[index]
    if not callable(qoi_fun):
        raise TypeError(f"qoi_fun must be a callable q(theta) or an index "
                        f"into the parameters; got {type(qoi_fun).__name__}")
    return qoi_fun


def _finite_scalar(value: Any, name: str, where: str) -> float:
    arr = np.asarray(value)
    if arr.size != 1 or arr.dtype.kind not in "biuf" or \
            not np.isfinite(arr).all():
        raise ValueError(f"{name} must return a finite scalar {where}; got "
                         f"shape {arr.shape} value {arr.ravel()[:3]}")
    return float(arr.reshape(()))


class Target:
    """The quantity whose sign is to flip, as a function of (theta, w).

    ``'sign'``: :math:`t = q`; ``'threshold'``: :math:`t = q - c`;
    ``'significance'``: :math:`t = q - s z\\,se` with :math:`s` the sign of
    :math:`q` at the start (the end of the interval nearest zero).
    """

    def __init__(self, qoi: Callable, kind: str, theta0: np.ndarray,
                 weights0: np.ndarray, *, se_fun: Optional[Callable] = None,
                 level: float = 0.05, threshold: Any = None) -> None:
        if kind not in TARGETS:
            raise ValueError(f"target must be one of {TARGETS}; got {kind!r}")
        self.kind, self.qoi, self.se_fun = kind, qoi, se_fun
        self.offset, self.z, self.side = 0.0, 0.0, 0.0
        if kind == "threshold":
            if threshold is None or isinstance(threshold, (bool, np.bool_)) \
                    or not isinstance(threshold, (int, float, np.integer,
                                                  np.floating)) \
                    or not np.isfinite(threshold):
                raise ValueError(f"target='threshold' needs threshold, a "
                                 f"finite number; got {threshold!r}")
            self.offset = float(threshold)
        elif threshold is not None:
            raise ValueError("threshold is only used with target='threshold'")
        if kind == "significance":
            if se_fun is None or not callable(se_fun):
                raise ValueError("target='significance' needs se_fun, a "
                                 "callable se_fun(theta, weights) (see "
                                 "refold.sensitivity.standard_errors)")
            self.z = critical_value(level)
        q0 = _finite_scalar(qoi(theta0), "qoi_fun", "at opt_par")
        grad = np.asarray(autograd.grad(qoi)(theta0), dtype=float)
        if grad.shape != theta0.shape or not np.all(np.isfinite(grad)):
            raise ValueError(f"the gradient of qoi_fun at opt_par must be a "
                             f"finite vector of length {theta0.size}")
        if not np.any(grad):
            raise ValueError("qoi_fun does not depend on the parameters: its "
                             "gradient at opt_par is zero, so dropping data "
                             "cannot change it to first order")
        if kind == "significance":
            if q0 == 0:
                raise ValueError("qoi_fun is exactly zero at opt_par: the "
                                 "significance target is undefined")
            self.side = 1.0 if q0 > 0 else -1.0
        self.q0, self.se0, self.t0 = self.value(theta0, weights0, "at opt_par")
        if self.kind == "significance" and not self.se0 > 0:
            raise ValueError(f"se_fun must be positive at opt_par; got "
                             f"{self.se0}")
        if self.t0 == 0:
            raise ValueError(f"the {kind} target is exactly zero at opt_par, "
                             f"so its sign cannot be flipped")
        self.sign = 1.0 if self.t0 > 0 else -1.0

    def value(self, theta, weights, where="at the re-fit"):
        """``(q, se or None, t)`` at ``theta`` and ``weights``."""
        q = _finite_scalar(self.qoi(theta), "qoi_fun", where)
        if self.kind != "significance":
            return q, None, q - self.offset
        se = _finite_scalar(self.se_fun(theta, weights), "se_fun", where)
        return q, se, q - self.side * self.z * se

    def flipped(self, t: float) -> bool:
        """Whether ``t`` has the opposite sign of the start (or is zero)."""
        return bool(self.sign * t <= 0)

    def derivatives(self, theta, weights):
        """``(dt/dtheta, explicit dt/dw or None)`` at (theta, weights)."""
        d_theta = np.asarray(autograd.grad(self.qoi)(theta), dtype=float)
        if self.kind != "significance":
            return d_theta, None
        # One reverse pass for both arguments (autograd takes tuples).
        se_theta, se_w = autograd.grad(lambda pair: self.se_fun(*pair))(
            (theta, weights))
        se_theta = np.asarray(se_theta, dtype=float)
        se_w = np.asarray(se_w, dtype=float)
        if not (np.all(np.isfinite(se_theta)) and np.all(np.isfinite(se_w))):
            raise ValueError("the derivatives of se_fun are not finite")
        factor = self.side * self.z
        return d_theta - factor * se_theta, -factor * se_w


def next_batch(gain: np.ndarray, active: np.ndarray, distance: float,
               room: int, batch_fraction: float, max_batch: Optional[int]
               ) -> np.ndarray:
    """The observations to drop next: the most useful active ones, as many
    as ``batch_fraction`` of the number the scores say are still needed
    (at least one, at most ``room`` and ``max_batch``)."""
    score = np.where(active, gain, -np.inf)
    useful = np.flatnonzero(score > 0)
    if useful.size == 0:
        return useful
    if useful.size > 4 * room + 64:       # only the best few matter
        keep = np.argpartition(-score[useful], 4 * room + 63)[:4 * room + 64]
        useful = useful[keep]
    order = useful[np.argsort(-score[useful], kind="stable")]
    reach = np.flatnonzero(np.cumsum(score[order]) >= distance)
    needed = reach[0] + 1 if reach.size else order.size
    size = max(1, int(np.floor(batch_fraction * needed)))
    if max_batch is not None:
        size = min(size, max_batch)
    return order[:min(size, room)]
