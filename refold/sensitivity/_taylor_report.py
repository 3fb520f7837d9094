r"""How far a Taylor series of an optimum can be trusted (private).

:class:`TaylorSeriesReport` and :class:`TaylorSeriesWarning` (documented in
:mod:`refold.sensitivity.taylor`) and the test behind them: a series is
taken to have stopped converging when the ratio test says its terms no
longer shrink geometrically (see :func:`_ratio_test`).
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import NamedTuple, Union

import numpy as np

from refold.sensitivity.solvers import RefoldWarning


class TaylorSeriesWarning(RefoldWarning):
    """A Taylor series whose terms stop shrinking: the prediction is not
    to be trusted at that distance from the base hyperparameter."""

    __module__ = "refold.sensitivity.taylor"     # its documented home


@dataclass(frozen=True)
class TaylorSeriesReport:
    r"""How far a Taylor-series prediction can be trusted.

    Sizes are max-abs norms.  For several directions each field has a
    leading axis of length ``n_dir``.

    Attributes
    ----------
    max_order : int
        The order of the series evaluated.
    prediction : numpy.ndarray
        The prediction :math:`\theta_T` (offset included).
    term_norms : numpy.ndarray
        Shape ``(K,)`` (or ``(n_dir, K)``): sizes of the terms
        :math:`a_k / k!` for ``k = 1..K``.
    converging : bool or numpy.ndarray
        ``False`` when the ratio test says the terms have stopped shrinking
        geometrically: the last ratio of successive term sizes, or its
        limit extrapolated in ``1/k``, is at least 1, or the geometric tail
        it implies exceeds the first term.
    residual_norm : float or numpy.ndarray
        :math:`\|g(\theta_T, \epsilon_{new})\|`.
    newton_step_norm : float or numpy.ndarray
        :math:`\|H_0^{-1} g(\theta_T, \epsilon_{new})\|`: to first order the
        distance from the prediction to the re-fitted optimum.
    refit_error : float, numpy.ndarray or None
        :math:`\|\theta_T - \hat\theta(\epsilon_{new})\|` from an actual
        re-fit, when one was asked for.
    """

    __module__ = "refold.sensitivity.taylor"     # its documented home

    max_order: int
    prediction: np.ndarray
    term_norms: np.ndarray
    converging: Union[bool, np.ndarray]
    residual_norm: Union[float, np.ndarray]
    newton_step_norm: Union[float, np.ndarray]
    refit_error: Union[float, np.ndarray, None] = None

    def __str__(self) -> str:
        norms = np.atleast_2d(self.term_norms)
        lines = [f"Taylor series of order {self.max_order}"]
        head = "direction  " + "  ".join(
            f"|term {k}|".rjust(10) for k in range(1, norms.shape[1] + 1))
        lines.append(head + "  converging  |residual|  |Newton step|"
                     + ("  |refit error|" if self.refit_error is not None
                        else ""))
        conv = np.atleast_1d(self.converging)
        res = np.atleast_1d(self.residual_norm)
        step = np.atleast_1d(self.newton_step_norm)
        refit = None if self.refit_error is None else \
            np.atleast_1d(self.refit_error)
        for i, row in enumerate(norms):
            line = f"{i:9d}  " + "  ".join(f"{v:10.3e}" for v in row)
            line += f"  {str(bool(conv[i])):>10}  {res[i]:10.3e}  " \
                    f"{step[i]:13.3e}"
            if refit is not None:
                line += f"  {refit[i]:13.3e}"
            lines.append(line)
        return "\n".join(lines)


class RatioTest(NamedTuple):
    """The evidence of the ratio test on a row of term sizes."""

    converging: bool
    order: int            # the order judged (the last one)
    ratio: float          # |t_K| / |t_K-1| (root of it across zero terms)
    limit: float          # the ratio extrapolated to K -> infinity
    tail: float           # geometric estimate of the neglected terms
    first: float          # the size of the first significant term


def _ratio_test(norms: np.ndarray, scale: float) -> RatioTest:
    r"""Whether a series with term sizes ``norms`` (orders 1..K) still
    converges geometrically at order K.

    The ratio test: :math:`r_k = |t_k| / |t_{k-1}|` (across negligible
    terms, e.g. the vanishing odd terms of a symmetric problem, the
    geometric mean per order), or the two-step
    :math:`(|t_k| / |t_{k-2}|)^{1/2}` when smaller (one nearly cancelling
    term between two larger ones is a see-saw, not divergence).  Near a
    singularity at radius :math:`R` the ratios approach
    :math:`|\Delta\epsilon| / R` like :math:`a + b / k`, so the limit is
    extrapolated linearly in :math:`1/k` from the last two (Domb--Sykes:
    :math:`r_\infty = k r_k - (k-1) r_{k-1}`, exact for
    :math:`\log(1+\epsilon)` and for poles) when the ratios are rising
    regularly (the last at most twice the one before).
    The series has stopped converging when the last ratio or its limit
    is at least 1, or when the geometric tail :math:`|t_K| r / (1 - r)` it
    implies exceeds the first term (the neglected terms would then be
    larger than the whole first-order change).  A negligible last term
    (``<= 64 eps scale``) or a single term passes.
    """
    k = norms.size
    tiny = 64 * np.finfo(float).eps * scale
    sig = np.flatnonzero(norms > tiny)
    if k < 2 or norms[-1] <= tiny or sig.size < 2:
        return RatioTest(True, k, 0.0, 0.0, 0.0, float(norms[0]) if k else 0.)
    orders = sig + 1
    vals = norms[sig]
    ratios = (vals[1:] / vals[:-1]) ** (1.0 / np.diff(orders))
    if vals.size >= 3:
        # Two-step ratios smooth an odd/even see-saw (one small term between
        # two larger ones, common when a term nearly cancels): take the
        # smaller of the one-step and the two-step (per order) estimate.
        two = (vals[2:] / vals[:-2]) ** (1.0 / (orders[2:] - orders[:-2]))
        ratios[1:] = np.minimum(ratios[1:], two)
    ratio = float(ratios[-1])
    limit = ratio
    # Extrapolate only ratios that rise regularly (like a + b/k: the last
    # at most twice the one before); a jump is a see-saw, not a singularity.
    if ratios.size >= 2 and ratios[-2] < ratios[-1] <= 2 * ratios[-2]:
        k1, k0 = orders[-1], orders[-2]
        # linear in 1/k through (1/k0, r0) and (1/k1, r1), at 1/k = 0
        limit = float(ratios[-1] + (ratios[-1] - ratios[-2])
                      * (1.0 / k1) / (1.0 / k0 - 1.0 / k1))
    first = float(vals[0])
    tail = np.inf if limit >= 1 else float(vals[-1] * limit / (1 - limit))
    ok = ratio < 1 and limit < 1 and tail <= first
    return RatioTest(bool(ok), k, ratio, limit, tail, first)


def _series_converging(norms: np.ndarray, scale: float) -> bool:
    """Whether the series still converges geometrically (the ratio test of
    :func:`_ratio_test`)."""
    return _ratio_test(norms, scale).converging


def _term_norms(stacked: np.ndarray) -> np.ndarray:
    """``(n, K)`` max-abs sizes of terms 1..K of a stacked series."""
    terms = stacked[1:]
    if terms.ndim == 2:
        terms = terms[:, None, :]
    return np.max(np.abs(terms), axis=2).T


def _scale(par0: np.ndarray, row: np.ndarray) -> float:
    return max(1.0, float(np.max(np.abs(par0))), float(row.max()))


def _converging(norms: np.ndarray, par0: np.ndarray) -> np.ndarray:
    """Whether each row of term sizes is converging, on the scale of the
    optimum ``par0``."""
    return np.array([_series_converging(row, _scale(par0, row))
                     for row in norms])


def _warn_if_diverging(stacked: np.ndarray, par0: np.ndarray) -> None:
    """Warn (for the caller's caller) when a stacked series stops
    converging, with the ratio test's evidence."""
    norms = _term_norms(stacked)
    tests = [_ratio_test(row, _scale(par0, row)) for row in norms]
    bad = [i for i, t in enumerate(tests) if not t.converging]
    if not bad:
        return
    k = norms.shape[1]
    where = "" if stacked.ndim == 2 else \
        f" for direction(s) {bad[:10]} of new_hyper_val"
    t = tests[bad[0]]
    if t.ratio >= 1:
        why = (f"the order-{k} term ({norms[bad[0], -1]:.3g}) is not smaller "
               f"than the terms before it: the ratio of successive term "
               f"sizes is {t.ratio:.3g} >= 1")
    elif t.limit >= 1:
        why = (f"the ratios of successive term sizes are rising towards "
               f"{t.limit:.3g} >= 1 (last ratio {t.ratio:.3g}, extrapolated "
               f"in 1/k): the terms stop shrinking geometrically, so the "
               f"change is beyond the radius of convergence")
    else:
        why = (f"the terms shrink too slowly: with ratio {t.limit:.3g} the "
               f"neglected terms sum to about {t.tail:.3g}, more than the "
               f"first-order term ({t.first:.3g})")
    warnings.warn(
        f"The Taylor series of order {k} is not converging{where}: {why} "
        f"(term sizes {', '.join(f'{v:.3g}' for v in norms[bad[0]])}). "
        f"The prediction is unreliable this far from hyper_val0; use a "
        f"smaller change or re-fit (refold.sensitivity.refit.refit).",
        TaylorSeriesWarning, stacklevel=3)


def build_report(stacked: np.ndarray, new: np.ndarray, batched: bool,
                 max_order: int, par0: np.ndarray, residual, solve,
                 refit_fun=None) -> TaylorSeriesReport:
    """The :class:`TaylorSeriesReport` of the stacked terms at the
    hyperparameters ``new`` (one row each): term sizes, convergence, the
    estimating equation's residual and Newton step at the prediction, and
    (with ``refit_fun(pred, hyper) -> optimum``) the error against a
    re-fit."""
    pred = np.sum(stacked, axis=0).reshape(new.shape[0], -1)
    norms = _term_norms(stacked)
    conv = _converging(norms, par0)
    resid = np.stack([residual(p, h) for p, h in zip(pred, new)], axis=1)
    step = np.max(np.abs(solve(resid)), axis=0)
    resid_norm = np.max(np.abs(resid), axis=0)
    refit_err = None
    if refit_fun is not None:
        refit_err = np.array([np.max(np.abs(p - refit_fun(p, h)))
                              for p, h in zip(pred, new)])
    pick = (lambda a: a) if batched else (lambda a: a[0])
    return TaylorSeriesReport(
        max_order=max_order, prediction=pick(pred),
        term_norms=pick(norms),
        converging=pick(conv) if batched else bool(conv[0]),
        residual_norm=pick(resid_norm) if batched else float(resid_norm[0]),
        newton_step_norm=pick(step) if batched else float(step[0]),
        refit_error=None if refit_err is None else (
            refit_err if batched else float(refit_err[0])))

