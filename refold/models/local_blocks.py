r"""Per-observation (local) blocks of the EM objective: structure and solves.

The E-step parameters :math:`\eta` of
:class:`~refold.models.em_covariance.EMCovariance` are local: observation
``n`` owns the coordinates ``eta_blocks[n]``, and the Hessian block
:math:`H_{\eta\eta}` is block-diagonal with one ``k x k`` block :math:`L_n`
per observation.  This module holds

* :func:`infer_eta_blocks`, which reads ``eta_blocks`` off a pattern whose
  first axis is the observation;
* :func:`log_simplex`, log-probabilities from log-ratios with full relative
  precision in every derivative, for writing E-step objectives in log space;
* ``_LocalFactor`` (internal), the batched, scaled eigen-decompositions of
  the :math:`L_n` behind the stable Schur complement :math:`\sum_n C_n L_n^{+}
  C_n^\top` (units, eigen-directions, dropping and safeguards are explained
  in the notes of :mod:`refold.models.em_covariance`).
"""
from __future__ import annotations

from typing import Any, Sequence

import autograd.numpy as anp
import numpy as onp
from autograd.tracer import getval

from refold.patterns.base import Pattern
from refold.patterns.containers import PatternArray, PatternDict
from refold.patterns.numeric import NumericArrayPattern
from refold.patterns.simplex import SimplexArrayPattern

__all__ = ["infer_eta_blocks", "log_simplex"]

_EPS = float(onp.finfo(float).eps)

#: A scaled local block with an eigenvalue below ``-_NEGATIVE_TOL`` is not at
#: a minimum.
_NEGATIVE_TOL = float(onp.sqrt(_EPS))


# ----------------------------------------------------------------------
# Log space.

def log_simplex(log_ratios):
    r"""Log-probabilities from log-ratios, with full relative precision in
    every derivative.

    For a simplex :math:`r` with free coordinates :math:`\eta_k =
    \log(r_k / r_0)`, ``k = 1..K-1`` (those of ``SimplexArrayPattern``),
    returns :math:`\log r`. The dominant entry ``m`` of each simplex is the
    pivot: :math:`\log r_k = (\eta_k - \eta_m) - \log(1 + \sum_{j \ne m}
    e^{\eta_j - \eta_m})` (with :math:`\eta_0 = 0`), so autograd's
    derivatives of any order are sums of products of the small
    probabilities, never differences of numbers close to one. A
    log-softmax by ``logsumexp`` instead gives the curvature
    :math:`r_m (1 - r_m)` of a responsibility of :math:`10^{-20}` as
    ``1 - 1 = 0``, and ``r * log(r)`` overflows in its second derivative
    (:math:`1/r^2`); both break the Hessians that
    :class:`~refold.models.em_covariance.EMCovariance` needs for nearly
    degenerate posteriors.

    Parameters
    ----------
    log_ratios : array_like, shape (..., K - 1)
        The log-ratios (may be an autograd box).

    Returns
    -------
    array, shape (..., K)
        :math:`\log r`; :math:`\exp` of it sums to one.

    Examples
    --------
    >>> import numpy as np
    >>> np.exp(log_simplex(np.array([[0.0], [np.log(3.0)]])))
    array([[0.5 , 0.5 ],
           [0.25, 0.75]])
    """
    raw_in = getval(log_ratios)
    if not isinstance(raw_in, onp.ndarray):
        raw_in = onp.asarray(raw_in) if not isinstance(raw_in, str) else \
            onp.asarray(None)
        if raw_in.dtype.kind in "biuf":
            log_ratios = raw_in
    if raw_in.dtype == object or raw_in.dtype.kind not in "biuf" or \
            raw_in.ndim < 1:
        raise TypeError("log_ratios: expected a real array of shape (..., "
                        "K - 1), got {}".format(
                            "dtype {} and shape {}".format(raw_in.dtype,
                                                           raw_in.shape)))
    shape = anp.shape(log_ratios)[:-1] + (1,)
    logits = anp.concatenate([anp.zeros(shape), log_ratios], axis=-1)
    raw = onp.asarray(getval(logits))
    pivot = onp.arange(raw.shape[-1]) == onp.argmax(raw, axis=-1)[..., None]
    top = anp.sum(anp.where(pivot, logits, 0.0), axis=-1, keepdims=True)
    rel = logits - top
    others = anp.where(pivot, 0.0, anp.exp(anp.where(pivot, 0.0, rel)))
    return rel - anp.log1p(anp.sum(others, axis=-1, keepdims=True))


# ----------------------------------------------------------------------
# Which eta coordinates belong to which observation.

def _pattern_name(path: Sequence[str]) -> str:
    return "eta_pattern" + "".join("[{!r}]".format(key) for key in path)


def _leading_axis_blocks(pattern: Pattern, free: bool,
                         path: tuple) -> onp.ndarray:
    """(N, k) coordinates of each leading-axis element of ``pattern``."""
    if isinstance(pattern, PatternDict):
        parts, offset, first = [], 0, None
        for key, member in pattern.items():
            sub = _leading_axis_blocks(member, free, path + (key,))
            if first is None:
                first = (key, sub.shape[0])
            elif sub.shape[0] != first[1]:
                raise ValueError(
                    "eta_blocks: cannot infer the observations from "
                    "eta_pattern: {} has {} observations (leading size) but "
                    "{} has {}; pass eta_blocks explicitly".format(
                        _pattern_name(path + (first[0],)), first[1],
                        _pattern_name(path + (key,)), sub.shape[0]))
            parts.append(sub + offset)
            offset += member.flat_length(free)
        if not parts:
            raise ValueError(
                "eta_blocks: cannot infer the observations from {}: it is "
                "an empty PatternDict".format(_pattern_name(path)))
        return onp.concatenate(parts, axis=1)
    if isinstance(pattern, (PatternArray, SimplexArrayPattern)):
        shape = tuple(pattern.array_shape())
    elif isinstance(pattern, NumericArrayPattern):
        shape = tuple(pattern.shape())
    else:
        raise TypeError(
            "eta_blocks: cannot infer the observations from {} ({}); only a "
            "PatternArray, SimplexArrayPattern or NumericArrayPattern (first "
            "axis = observation) or a PatternDict of them is understood; "
            "pass eta_blocks explicitly".format(
                _pattern_name(path), type(pattern).__name__))
    total = pattern.flat_length(free)
    if len(shape) == 0 or shape[0] == 0 or total == 0:
        raise ValueError(
            "eta_blocks: cannot infer the observations from {}: its shape "
            "{} has no leading observation axis with local coordinates; "
            "pass eta_blocks explicitly".format(_pattern_name(path), shape))
    num = int(shape[0])
    return onp.arange(total).reshape(num, total // num)


def infer_eta_blocks(eta_pattern: Pattern, free: bool = True) -> onp.ndarray:
    r"""The η coordinates of each observation, read off a pattern.

    The first axis of the folded value is the observation: a
    ``PatternArray`` with ``array_shape`` ``(N, ...)``, a
    ``SimplexArrayPattern`` with ``array_shape`` ``(N, ...)``, a
    ``NumericArrayPattern`` with shape ``(N, ...)``, or a ``PatternDict`` of
    such members over the same ``N``. Flat vectors are element-major, so
    observation ``n`` of a member occupies a contiguous run of its
    coordinates; a ``PatternDict`` gathers the runs of its members.

    Parameters
    ----------
    eta_pattern : Pattern
        Pattern of the E-step parameters.
    free : bool, optional
        Whether the coordinates index the free (default) or the flat vector.

    Returns
    -------
    numpy.ndarray of int, shape (N, k)
        Row ``n`` holds observation ``n``'s coordinates, in the order of the
        flat vector.

    Raises
    ------
    TypeError, ValueError
        When the pattern has no recognisable observation axis, or the members
        of a ``PatternDict`` disagree about ``N``.

    Examples
    --------
    >>> from refold import PatternDict, NumericArrayPattern
    >>> eta_pattern = PatternDict()
    >>> eta_pattern['mean'] = NumericArrayPattern((3,))
    >>> eta_pattern['log_var'] = NumericArrayPattern((3,))
    >>> infer_eta_blocks(eta_pattern)
    array([[0, 3],
           [1, 4],
           [2, 5]])
    """
    if not isinstance(eta_pattern, Pattern):
        raise TypeError("eta_pattern: expected a refold Pattern, got "
                        "{}".format(type(eta_pattern).__name__))
    if not isinstance(free, (bool, onp.bool_)):
        raise TypeError("free: expected True or False, got "
                        "{!r}".format(free))
    return _leading_axis_blocks(eta_pattern, bool(free), ())


def _check_eta_blocks(eta_blocks: Any, eta_dim: int) -> onp.ndarray:
    arr = onp.asarray(eta_blocks)
    if arr.dtype == bool or not onp.issubdtype(arr.dtype, onp.integer):
        raise TypeError("eta_blocks: expected an (N, k) array of integer "
                        "indices, got dtype {}".format(arr.dtype))
    if arr.ndim != 2 or arr.shape[0] == 0 or arr.shape[1] == 0:
        raise ValueError("eta_blocks: expected a non-empty (N, k) array "
                         "(row n = observation n's eta coordinates), got "
                         "shape {}".format(arr.shape))
    arr = arr.astype(onp.int64)
    out = (arr < 0) | (arr >= eta_dim)
    if out.any():
        n, j = onp.argwhere(out)[0]
        raise ValueError(
            "eta_blocks[{}, {}] = {} is not an eta coordinate: the eta "
            "vector has length {}".format(n, j, arr[n, j], eta_dim))
    counts = onp.bincount(arr.ravel(), minlength=eta_dim)
    if (counts != 1).any():
        i = int(onp.flatnonzero(counts != 1)[0])
        raise ValueError(
            "eta_blocks must list every eta coordinate exactly once (the "
            "E-step parameters are all local); coordinate {} appears {} "
            "times (eta has {} coordinates, eta_blocks holds {})".format(
                i, counts[i], eta_dim, arr.size))
    return arr


# ----------------------------------------------------------------------
# The stable Schur complement.

class _LocalFactor:
    """Per-observation eigen-decompositions of the scaled local blocks.

    Attributes: ``inv_d`` (N, k) inverse Jacobi scales, ``vecs`` (N, k, k)
    eigenvectors, ``inv_vals`` (N, k) inverse eigenvalues (0 where dropped),
    ``w`` (N, p, k) the cross terms ``C_n D_n^-1 U_n``, ``dropped`` (N, k).
    """

    def __init__(self, global_block, cross_blocks, local_blocks, rtol):
        num, k = local_blocks.shape[:2]
        diag = onp.diagonal(local_blocks, axis1=1, axis2=2)
        col_scale = onp.max(diag, axis=0)
        col_scale = onp.where(col_scale > 0, col_scale, 1.0)
        # Negative-curvature check in the column units (step 1).
        unit = onp.sqrt(col_scale)
        in_units = local_blocks / (unit[None, :, None] * unit[None, None, :])
        low = onp.linalg.eigvalsh(in_units)[:, 0]
        if onp.min(low) < -_NEGATIVE_TOL:
            n = int(onp.argmin(low))
            raise ValueError(
                "objective_fun is not at a minimum in eta: the Hessian block "
                "of observation {} (eta coordinates eta_blocks[{}]) has a "
                "negative eigenvalue ({:.3g} relative to the largest "
                "curvature of those coordinates over observations). "
                "Re-run the E-step at theta_opt, or check that eta_pattern "
                "describes the E-step family objective_fun expects. If that "
                "observation's posterior is nearly degenerate, its tiny "
                "curvature may have been lost to rounding: with log-ratio "
                "coordinates against a fixed reference component whose "
                "probability is negligible (and K >= 3) the computed block "
                "comes out indefinite; measure each observation's log-ratios "
                "against its most likely component instead (pivoting, as "
                "refold.models.gaussian_mixture.fit does).".format(
                    n, n, float(low[n])))
        # The floor at the smallest normal number keeps 1/d_i * 1/d_j
        # finite when every observation's posterior is degenerate (whole
        # columns of curvature ~1e-300 or exactly 0); such directions then
        # have scaled eigenvalues <= rtol and are dropped below.
        d = onp.sqrt(onp.maximum(onp.maximum(diag, rtol * col_scale[None, :]),
                                 onp.finfo(float).tiny))
        self.inv_d = 1.0 / d
        scaled = local_blocks * (self.inv_d[:, :, None] *
                                 self.inv_d[:, None, :])
        vals, self.vecs = onp.linalg.eigh(scaled)
        self.dropped = vals <= rtol
        safe = onp.where(self.dropped, 1.0, vals)
        self.inv_vals = onp.where(self.dropped, 0.0, 1.0 / safe)
        self.w = onp.einsum("npk,nk,nkj->npj", cross_blocks, self.inv_d,
                            self.vecs)
        self._check_dropped(onp.diag(global_block), rtol)

    def _check_dropped(self, theta_curv, rtol):
        if not self.dropped.any():
            return
        bound = rtol * onp.maximum(theta_curv, 0.0)
        excess = onp.where(self.dropped[:, None, :],
                           self.w ** 2 - bound[None, :, None], -onp.inf)
        if (excess > 0).any():
            n, i, j = onp.unravel_index(onp.argmax(excess), excess.shape)
            raise ValueError(
                "objective_fun's Hessian at (theta_opt, eta_opt) is not "
                "positive semi-definite: the eta block of observation {} "
                "(eta_blocks[{}]) is flat in a direction (scaled eigenvalue "
                "<= local_rtol = {:.3g}) whose cross term with theta "
                "coordinate {} is {:.3g}, more than sqrt(local_rtol * "
                "H_theta_theta[{}, {}]) = {:.3g} allows. The point is not a "
                "minimum in eta, the E-step family has a redundant "
                "direction the objective still depends on through theta, "
                "or objective_fun lost the tiny curvature of a nearly "
                "degenerate posterior to cancellation (a log-softmax by "
                "logsumexp does; use log_simplex).".format(
                    n, n, rtol, i, float(self.w[n, i, j]), i, i,
                    float(onp.sqrt(bound[i]))))

    @property
    def num_dropped(self) -> int:
        return int(onp.sum(self.dropped))

    def schur_term(self) -> onp.ndarray:
        r""":math:`\sum_n C_n L_n^{+} C_n^\top`, shape (p, p)."""
        term = onp.einsum("npj,nqj,nj->pq", self.w, self.w, self.inv_vals)
        return 0.5 * (term + term.T)

    def apply_pinv(self, rhs: onp.ndarray) -> onp.ndarray:
        r""":math:`L_n^{+} b_n` for ``rhs`` of shape (N, k)."""
        proj = onp.einsum("nkj,nk->nj", self.vecs, rhs * self.inv_d)
        return self.inv_d * onp.einsum("nkj,nj->nk", self.vecs,
                                       proj * self.inv_vals)

    def cross_times_pinv(self, rhs: onp.ndarray) -> onp.ndarray:
        r""":math:`\sum_n C_n L_n^{+} b_n` for ``rhs`` of shape (N, k)."""
        proj = onp.einsum("nkj,nk->nj", self.vecs, rhs * self.inv_d)
        return onp.einsum("npj,nj->p", self.w, proj * self.inv_vals)
