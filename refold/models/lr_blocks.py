r"""Blocks of an LR covariance :math:`J H^{-1} J^\top` by Schur complement.

For a global/local (arrowhead) Hessian -- ``g`` globals and ``T`` groups of
``m`` locals that interact only with themselves and the globals -- the blocks
of :math:`J H^{-1} J^\top` that pair moments of the globals, or of one
group, need only the blocks :math:`(H^{-1})_{gg}`, :math:`(H^{-1})_{gt}` and
:math:`(H^{-1})_{tt}` of
:class:`~refold.sensitivity.arrowhead.ArrowheadHessian`, in
:math:`O(T m^2 (m + g) + T m g^2 + g^3)`, with no other part of
:math:`H^{-1}`.  Used by
:meth:`refold.models.lr_covariance.LinearResponseCovariances.get_lr_covariance_blocks`.
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np
import scipy.sparse as sps

from refold.sensitivity.arrowhead import ArrowheadHessian

__all__ = ["LRCovarianceBlocks"]


class LRCovarianceBlocks(NamedTuple):
    r"""Blocks of an LR covariance under global/local (arrowhead) structure.

    Attributes
    ----------
    global_cov : ndarray, shape (p, p)
        LR covariance of the moments that depend on globals only.
    local_covs : ndarray, shape (T, r, r)
        ``local_covs[t]``: LR covariance of group ``t``'s moments (those that
        depend on group ``t``'s locals, and possibly the globals).
    cross_covs : ndarray, shape (T, p, r)
        ``cross_covs[t]``: LR covariance of the global moments with group
        ``t``'s moments.
    global_moments : ndarray of int, shape (p,)
        The rows of the moment Jacobian (for identity moments: the
        coordinates of ``opt_par``) of the global moments.
    local_moments : ndarray of int, shape (T, r)
        Row ``t`` holds group ``t``'s moment rows (coordinates).
    """
    global_cov: np.ndarray
    local_covs: np.ndarray
    cross_covs: np.ndarray
    global_moments: np.ndarray
    local_moments: np.ndarray


def _split_rows(jac: sps.csr_array, gi: np.ndarray, li: np.ndarray, name: str):
    """Classify the moment rows by group; gather their stacked blocks."""
    num, dim = jac.shape
    g, (T, m) = gi.size, li.shape
    coo = jac.tocoo()
    keep = coo.data != 0
    row, col, val = coo.row[keep], coo.col[keep], coo.data[keep]
    group = np.full(dim, -1)
    group[li] = np.arange(T)[:, None]
    slot = np.zeros(dim, dtype=np.intp)
    slot[li] = np.arange(m)[None, :]
    gpos = np.zeros(dim, dtype=np.intp)
    gpos[gi] = np.arange(g)
    grp = group[col]
    loc = grp >= 0
    gmax = np.full(num, -1)
    gmin = np.full(num, T)
    np.maximum.at(gmax, row[loc], grp[loc])
    np.minimum.at(gmin, row[loc], grp[loc])
    bad = (gmax >= 0) & (gmin != gmax)
    if bad.any():
        k = int(np.flatnonzero(bad)[0])
        raise ValueError(f"{name} row {k} depends on the locals of groups "
                         f"{gmin[k]} and {gmax[k]}; blocks of the LR covariance "
                         f"need each moment to depend on the globals and at "
                         f"most one group (use get_lr_covariance_from_jacobians "
                         f"for such moments)")
    global_rows = np.flatnonzero(gmax < 0)
    counts = np.bincount(gmax[gmax >= 0], minlength=T)
    if T and (counts != counts[0]).any():
        t = int(np.flatnonzero(counts != counts[0])[0])
        raise ValueError(f"{name} must give every group the same number of "
                         f"moments; group 0 has {counts[0]} and group {t} has "
                         f"{counts[t]}")
    r = int(counts[0]) if T else 0
    local_rows = np.flatnonzero(gmax >= 0)
    local_rows = local_rows[np.argsort(gmax[local_rows], kind="stable")]
    local_moments = local_rows.reshape(T, r)
    p = global_rows.size
    pslot = np.zeros(num, dtype=np.intp)
    pslot[global_rows] = np.arange(p)
    rslot = np.zeros(num, dtype=np.intp)
    rslot[local_moments] = np.arange(r)[None, :]

    def scatter(mask, lin, size):
        return np.bincount(lin[mask], weights=val[mask], minlength=size)
    is_global_row = gmax[row] < 0
    jg = scatter(is_global_row, pslot[row] * g + gpos[col], p * g).reshape(p, g)
    trow, irow = gmax[row], rslot[row]
    a = scatter(~is_global_row & loc, (trow * r + irow) * m + slot[col],
                T * r * m).reshape(T, r, m)
    b = scatter(~is_global_row & ~loc, (trow * r + irow) * g + gpos[col],
                T * r * g).reshape(T, r, g)
    return jg, a, b, global_rows, local_moments


def _lr_blocks(arrow: ArrowheadHessian, jac, name: str) -> LRCovarianceBlocks:
    hgg = arrow.inverse_global_block()            # (g, g)
    hgt = arrow.inverse_cross_blocks()            # (T, g, m) = (H^-1)_{g,t}
    htt = arrow.inverse_local_blocks()            # (T, m, m)
    gi, li = arrow.global_inds, arrow.local_inds
    if jac is None:
        return LRCovarianceBlocks(hgg, htt, hgt, gi, li)
    jg, a, b, global_rows, local_moments = _split_rows(jac, gi, li, name)
    # x[t] = A_t (H^-1)_tt + B_t (H^-1)_gt,  y[t] = A_t (H^-1)_tg + B_t (H^-1)_gg
    T, r, g = b.shape
    x = a @ htt + b @ hgt
    y = a @ hgt.transpose(0, 2, 1) + (b.reshape(T * r, g) @ hgg).reshape(T, r, g)
    local = x @ a.transpose(0, 2, 1) + y @ b.transpose(0, 2, 1)
    local = 0.5 * (local + local.transpose(0, 2, 1))
    glob = jg @ hgg @ jg.T
    cross = (y.reshape(T * r, g) @ jg.T).reshape(T, r, jg.shape[0]).transpose(
        0, 2, 1)
    return LRCovarianceBlocks(0.5 * (glob + glob.T), local, cross, global_rows,
                              local_moments)
