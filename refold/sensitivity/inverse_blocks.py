r"""Sandwiches :math:`J_1 H^{-1} J_2^\top` through the Hessian's structure.

Linear-response covariances, sensitivities of many quantities of interest
and delta-method covariances all have the form :math:`J_1 H^{-1}
J_2^\top` with ``K`` rows of :math:`J` (often sparse) and a structured
Hessian :math:`H`.  :math:`H^{-1}` is never formed.

:func:`inverse_sandwich` computes the whole ``(K_1, K_2)`` matrix:

* for a global/local (arrowhead) Hessian
  (:class:`~refold.sensitivity.arrowhead.ArrowheadHessian`; ``g`` globals,
  ``T`` groups of ``m`` locals), from the exact splitting

  .. math::

      H^{-1} = P + W S^{-1} W^\top, \qquad
      P = \mathrm{blockdiag}(0_g, L_1^{-1}, \dots, L_T^{-1}), \quad
      W = \begin{pmatrix} I_g \\ -L^{-1} C^\top \end{pmatrix},

  with :math:`S` the Schur complement on the globals: :math:`J_1 P
  J_2^\top` is a sparse product when the Jacobians are sparse, and
  :math:`(J_1 W) S^{-1} (J_2 W)^\top` has rank ``g``; no right-hand side
  is solved, so thousands of moments cost about as much as the output;
* otherwise with one solve with the columns of :math:`J^\top` of whichever
  Jacobian has fewer rows (one factorisation; ``K`` conjugate-gradient runs
  on the matrix-free path).

:func:`inverse_sandwich_blocks` returns only the blocks that pair moments of
the globals, or of one group, from the blocks :math:`(H^{-1})_{gg}`,
:math:`(H^{-1})_{gt}` and :math:`(H^{-1})_{tt}`, in
:math:`O(T m^2 (m + g) + T m g^2 + g^3)`, as :class:`LRCovarianceBlocks`
(used by
:meth:`refold.models.lr_covariance.LinearResponseCovariances.get_lr_covariance_blocks`;
its old home ``refold.models.lr_blocks`` still exports it).  For local
blocks of unequal sizes (an arrowhead with several size classes) the
per-group fields are tuples with one stack per size class.
"""
from __future__ import annotations

from typing import Any, Callable, NamedTuple, Optional

import numpy as np
import scipy.sparse as sps

from refold.sensitivity._arrowhead_factor import _forward
from refold.sensitivity.arrowhead import ArrowheadHessian

__all__ = ["LRCovarianceBlocks", "inverse_sandwich", "inverse_sandwich_blocks"]


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

    Notes
    -----
    For an arrowhead whose local blocks have unequal sizes, ``local_covs``,
    ``cross_covs`` and ``local_moments`` are tuples with one entry per size
    class of the Hessian (``ArrowheadHessian.size_classes``, in order):
    ``(T_k, r_k, r_k)``, ``(T_k, p, r_k)`` and ``(T_k, r_k)``, where every
    group with blocks of size ``m_k`` has ``r_k`` moments.
    """
    global_cov: np.ndarray
    local_covs: np.ndarray
    cross_covs: np.ndarray
    global_moments: np.ndarray
    local_moments: np.ndarray


def _split_rows(jac: sps.csr_array, gi: np.ndarray, lis: list, name: str):
    """Classify the moment rows by group; gather their stacked blocks, one
    stack per size class of the Hessian."""
    num, dim = jac.shape
    g = gi.size
    counts = [li.shape[0] for li in lis]
    starts = np.concatenate([[0], np.cumsum(counts)])
    T = int(starts[-1])
    coo = jac.tocoo()
    keep = coo.data != 0
    row, col, val = coo.row[keep], coo.col[keep], coo.data[keep]
    group = np.full(dim, -1)
    slot = np.zeros(dim, dtype=np.intp)
    for start, li in zip(starts, lis):              # a loop over the sizes
        group[li] = start + np.arange(li.shape[0])[:, None]
        slot[li] = np.arange(li.shape[1])[None, :]
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
    per_group = np.bincount(gmax[gmax >= 0], minlength=T)
    local_rows = np.flatnonzero(gmax >= 0)
    local_rows = local_rows[np.argsort(gmax[local_rows], kind="stable")]
    p = global_rows.size
    pslot = np.zeros(num, dtype=np.intp)
    pslot[global_rows] = np.arange(p)
    is_global_row = gmax[row] < 0
    trow = gmax[row]

    def scatter(mask, lin, size):
        return np.bincount(lin[mask], weights=val[mask], minlength=size)
    jg = scatter(is_global_row, pslot[row] * g + gpos[col], p * g).reshape(p, g)
    a_s, b_s, moments = [], [], []
    used = 0
    for start, li in zip(starts, lis):              # a loop over the sizes
        (t_k, m), mine = li.shape, per_group[start:start + li.shape[0]]
        if t_k and (mine != mine[0]).any():
            t = int(np.flatnonzero(mine != mine[0])[0])
            if len(lis) == 1:
                raise ValueError(f"{name} must give every group the same number "
                                 f"of moments; group 0 has {mine[0]} and group "
                                 f"{t} has {mine[t]}")
            raise ValueError(f"{name} must give every group with local blocks "
                             f"of one size the same number of moments; groups "
                             f"{start} and {start + t} (blocks of {m}) have "
                             f"{mine[0]} and {mine[t]}")
        r = int(mine[0]) if t_k else 0
        rows_k = local_rows[used:used + t_k * r].reshape(t_k, r)
        used += t_k * r
        rslot = np.zeros(num, dtype=np.intp)
        rslot[rows_k] = np.arange(r)[None, :]
        in_k = ~is_global_row & (trow >= start) & (trow < start + t_k)
        lin = (trow - start) * r + rslot[row]
        a_s.append(scatter(in_k & loc, lin * m + slot[col],
                           t_k * r * m).reshape(t_k, r, m))
        b_s.append(scatter(in_k & ~loc, lin * g + gpos[col],
                           t_k * r * g).reshape(t_k, r, g))
        moments.append(rows_k)
    return jg, a_s, b_s, global_rows, moments


def inverse_sandwich_blocks(arrow: ArrowheadHessian, jac: Any = None,
                            name: str = "moment_jacobian"
                            ) -> LRCovarianceBlocks:
    r"""Global and per-group blocks of :math:`J H^{-1} J^\top`.

    Parameters
    ----------
    arrow : ArrowheadHessian
        :math:`H`.
    jac : scipy.sparse matrix, shape (K, D), optional
        A row whose nonzeros are all global is a *global moment*; a row
        touching group ``t``'s locals (and possibly the globals) is a moment
        of group ``t``; every group must have the same number ``r`` of
        moments (with local blocks of unequal sizes: every group of one
        block size).  Default: the identity (the blocks of :math:`H^{-1}`).
    name : str
        How ``jac`` is named in error messages.

    Returns
    -------
    LRCovarianceBlocks
        With per-class tuples when ``arrow``'s blocks have unequal sizes.

    Raises
    ------
    ValueError
        A row depending on the locals of two groups, groups with different
        numbers of moments, or an :math:`H` that is not positive definite.
    """
    hgg = arrow.inverse_global_block()            # (g, g)
    hgts = arrow.inverse_cross_blocks(by_size=True)   # (T, g, m) = (H^-1)_{g,t}
    htts = arrow.inverse_local_blocks(by_size=True)   # (T, m, m)
    gi, lis = arrow.global_inds, arrow.local_inds_by_size
    pack = (lambda parts: parts[0]) if len(lis) == 1 else tuple
    if jac is None:
        return LRCovarianceBlocks(hgg, pack(htts), pack(hgts), gi, pack(lis))
    jac = sps.csr_array(jac)
    jg, a_s, b_s, global_rows, moments = _split_rows(jac, gi, list(lis), name)
    locals_, crosses = [], []
    for a, b, htt, hgt in zip(a_s, b_s, htts, hgts):  # a loop over the sizes
        # x[t] = A_t (H^-1)_tt + B_t (H^-1)_gt,  y[t] = A_t (H^-1)_tg + B_t (H^-1)_gg
        T, r, g = b.shape
        x = a @ htt + b @ hgt
        y = a @ hgt.transpose(0, 2, 1) + (b.reshape(T * r, g) @ hgg).reshape(
            T, r, g)
        local = x @ a.transpose(0, 2, 1) + y @ b.transpose(0, 2, 1)
        locals_.append(0.5 * (local + local.transpose(0, 2, 1)))
        crosses.append((y.reshape(T * r, g) @ jg.T).reshape(
            T, r, jg.shape[0]).transpose(0, 2, 1))
    glob = jg @ hgg @ jg.T
    return LRCovarianceBlocks(0.5 * (glob + glob.T), pack(locals_),
                              pack(crosses), global_rows, pack(moments))


#: Rows per block of :func:`_symmetric_gram`.
_GRAM_BLOCK = 128


def _symmetric_gram(z: np.ndarray) -> np.ndarray:
    """``z @ z.T``, exactly symmetric, for a tall thin ``z``.

    The upper triangle is computed by row blocks (half of a full product's
    work) and copied to the lower one block by block.  numpy's own
    ``z @ z.T`` (BLAS ``syrk`` and a symmetrising copy) takes about 1.5
    times as long for the 5,005 x 5,005 covariance of the GLMM's moments.
    """
    n, b = z.shape[0], _GRAM_BLOCK
    zt = np.ascontiguousarray(z.T)
    out = np.empty((n, n))
    for i in range(0, n, b):        # a loop over blocks of rows
        out[i:i + b, i:] = z[i:i + b] @ zt[:, i:]
    for i in range(0, n, b):
        out[i + b:, i:i + b] = out[i:i + b, i + b:].T
        diag = out[i:i + b, i:i + b]
        lower = np.tril_indices(diag.shape[0], -1)
        diag[lower] = diag.T[lower]
    return out


def _arrowhead_sandwich(arrow: ArrowheadHessian, j1, j2, same: bool
                        ) -> np.ndarray:
    """``J1 H^-1 J2^T`` from ``H^-1 = P + W S^-1 W^T`` (no solves)."""
    fac = arrow._factor()
    gi, lis = arrow.global_inds, arrow.local_inds_by_size
    g, dim = gi.size, arrow.dim
    w_mat = np.zeros((dim, g))
    w_mat[gi] = np.eye(g)
    data, rows, cols = [], [], []
    for K, V, li in zip(fac["K"], arrow._Vs(), lis):  # a loop over the sizes
        (T, m) = li.shape
        kinv = _forward(K, np.broadcast_to(np.eye(m), (T, m, m)))
        data.append(np.einsum("tki,tkj->tij", kinv, kinv).ravel())  # L_t^-1
        rows.append(np.broadcast_to(li[:, :, None], (T, m, m)).ravel())
        cols.append(np.broadcast_to(li[:, None, :], (T, m, m)).ravel())
        if li.size and g:
            w_mat[li.ravel()] = -V.reshape(li.size, g)      # -L^-1 C^T
    p_mat = sps.csr_array((np.concatenate(data), (np.concatenate(rows),
                                                  np.concatenate(cols))),
                          shape=(dim, dim))
    a1 = np.asarray(j1 @ w_mat)
    if g and same:                  # Z Z^T, exactly symmetric
        z = a1 @ np.linalg.cholesky(arrow.inverse_global_block())
        out = _symmetric_gram(z)
    elif g:
        out = (a1 @ arrow.inverse_global_block()) @ np.asarray(j2 @ w_mat).T
    else:
        out = np.zeros((j1.shape[0], j2.shape[0]))
    local = j1 @ p_mat @ j2.T
    if sps.issparse(local):
        local = sps.coo_array(local)
        if same:
            local = sps.coo_array(0.5 * (local + local.T))
        local.sum_duplicates()
        out[local.row, local.col] += local.data
    else:
        local = np.asarray(local)
        out += 0.5 * (local + local.T) if same else local
    return out


def inverse_sandwich(jac1: Any, jac2: Any = None, *,
                     arrowhead: Optional[ArrowheadHessian] = None,
                     solver: Optional[Callable] = None) -> np.ndarray:
    r""":math:`J_1 H^{-1} J_2^\top` without forming :math:`H^{-1}`.

    Parameters
    ----------
    jac1 : ndarray or scipy.sparse, shape (K_1, D)
    jac2 : ndarray or scipy.sparse, shape (K_2, D), optional
        Default (or the same object): ``jac1``; the result is then exactly
        symmetric.
    arrowhead : ArrowheadHessian, keyword-only
        :math:`H` in global/local form: the splitting of the module notes,
        with no right-hand-side solves.
    solver : callable, keyword-only
        Otherwise a function ``B -> H^{-1} B`` for ``B`` of shape
        ``(D, k)`` (e.g. a :class:`~refold.sensitivity.solvers.LinearSolver`).

    Returns
    -------
    ndarray, shape (K_1, K_2)

    Examples
    --------
    >>> import numpy as np, scipy.sparse as sps
    >>> from refold.sensitivity.arrowhead import ArrowheadHessian
    >>> rng = np.random.default_rng(0)
    >>> G, C = 50 * np.eye(2), rng.normal(size=(40, 2, 3))
    >>> L = np.tile(4 * np.eye(3), (40, 1, 1))
    >>> arrow = ArrowheadHessian(G, C, L, global_inds=[0, 1],
    ...                          local_inds=np.arange(2, 122).reshape(40, 3))
    >>> jac = sps.random(30, 122, density=0.05, random_state=1)
    >>> dense = jac.toarray() @ np.linalg.solve(arrow.to_sparse().toarray(),
    ...                                         jac.toarray().T)
    >>> np.allclose(inverse_sandwich(jac, arrowhead=arrow), dense)
    True
    """
    same = jac2 is None or jac2 is jac1
    j1 = jac1
    j2 = j1 if same else jac2
    if (arrowhead is None) == (solver is None):
        raise TypeError("inverse_sandwich needs exactly one of arrowhead= "
                        "and solver=")
    if arrowhead is not None:
        return _arrowhead_sandwich(arrowhead, sps.csr_array(j1) if
                                   sps.issparse(j1) else j1,
                                   sps.csr_array(j2) if sps.issparse(j2)
                                   else j2, same)
    if j1.shape[0] < j2.shape[0]:
        rhs = j1.T.toarray() if sps.issparse(j1) else j1.T
        out = np.asarray(j2 @ np.asarray(
            solver(np.ascontiguousarray(rhs))).reshape(rhs.shape)).T.copy()
    else:
        rhs = j2.T.toarray() if sps.issparse(j2) else j2.T
        out = np.asarray(j1 @ np.asarray(
            solver(np.ascontiguousarray(rhs))).reshape(rhs.shape))
    return 0.5 * (out + out.T) if same else out
