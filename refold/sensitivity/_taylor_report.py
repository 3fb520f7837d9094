r"""How far a Taylor series of an optimum can be trusted (private).

:class:`TaylorSeriesReport` and :class:`TaylorSeriesWarning` (documented in
:mod:`refold.sensitivity.taylor`) and the test behind them: a series is
taken to have stopped converging when its last term is not smaller than the
larger of the two before it (unless it is negligible).
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Union

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
        ``False`` when the last term is not smaller than the larger of the
        two before it: the series has stopped converging.
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


def _series_converging(norms: np.ndarray, scale: float) -> bool:
    """Whether the last term is smaller than the larger of the two before
    it (or negligible).  One term cannot be judged: ``True``."""
    if norms.size < 2:
        return True
    last = norms[-1]
    if last <= 64 * np.finfo(float).eps * scale:
        return True
    return bool(last < np.max(norms[-3:-1]))


def _term_norms(stacked: np.ndarray) -> np.ndarray:
    """``(n, K)`` max-abs sizes of terms 1..K of a stacked series."""
    terms = stacked[1:]
    if terms.ndim == 2:
        terms = terms[:, None, :]
    return np.max(np.abs(terms), axis=2).T


def _converging(norms: np.ndarray, par0: np.ndarray) -> np.ndarray:
    """Whether each row of term sizes is converging, on the scale of the
    optimum ``par0``."""
    scale = max(1.0, float(np.max(np.abs(par0))))
    return np.array([_series_converging(row, max(scale, row.max()))
                     for row in norms])


def _warn_if_diverging(stacked: np.ndarray, par0: np.ndarray) -> None:
    """Warn (for the caller's caller) when a stacked series stops
    converging."""
    norms = _term_norms(stacked)
    ok = _converging(norms, par0)
    if np.all(ok):
        return
    bad = np.flatnonzero(~ok)
    k = norms.shape[1]
    where = "" if stacked.ndim == 2 else \
        f" for direction(s) {bad[:10].tolist()} of new_hyper_val"
    row = norms[bad[0]]
    warnings.warn(
        f"The Taylor series of order {k} is not converging{where}: the "
        f"order-{k} term has size {row[-1]:.3g}, not smaller than the "
        f"earlier terms ({', '.join(f'{v:.3g}' for v in row[-3:-1])}). "
        f"The prediction is unreliable this far from hyper_val0; use a "
        f"smaller change or re-fit (refold.sensitivity.refit.refit).",
        TaylorSeriesWarning, stacklevel=3)
