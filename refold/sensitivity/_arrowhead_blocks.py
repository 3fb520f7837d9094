r"""The blocks of an arrowhead matrix given as a whole (private).

:meth:`refold.sensitivity.arrowhead.ArrowheadHessian.from_sparse` takes a
scipy.sparse (or dense) matrix and the positions of its global and local
coordinates.  The blocks are cut out in one pass over CSR rows without
sorting: the global rows are densified (``g x D``, which gives :math:`G` and
the cross blocks :math:`C_t`), and the local rows, taken in group order,
give the transposed cross blocks (checked against :math:`C_t`: symmetry)
and the local-local entries, which must stay inside a group (an entry that
couples two groups raises).
"""
from __future__ import annotations

from typing import Any, Tuple

import numpy as np
import scipy.sparse

from refold.sensitivity._hessian_checks import (_as_dense_square,
                                                _check_real_dtype, _eps_of)


def _as_index_array(inds: Any, ndim: int, name: str) -> np.ndarray:
    arr = np.asarray(inds)
    if arr.size == 0 and arr.dtype.kind == 'f':
        arr = arr.astype(np.intp)
    if arr.dtype == np.bool_ or not np.issubdtype(arr.dtype, np.integer):
        raise TypeError(f"{name} must be an integer array; got dtype {arr.dtype}")
    if arr.ndim != ndim:
        shape = '(g,)' if ndim == 1 else '(T, m)'
        raise ValueError(f"{name} must have shape {shape}; got shape {arr.shape}")
    return arr.astype(np.intp)


def _check_partition(gi: np.ndarray, li: np.ndarray, dim: int, name: str) -> None:
    """``gi`` and ``li`` together must index each of ``range(dim)`` once."""
    if gi.size + li.size != dim:
        raise ValueError(f"global_inds and local_inds must index every coordinate "
                         f"of {name} exactly once: they hold {gi.size} + {li.size}"
                         f" indices but {name} has dimension {dim}")
    allinds = np.concatenate([gi, li.ravel()])
    out = (allinds < 0) | (allinds >= dim)
    if out.any():
        k = int(np.flatnonzero(out)[0])
        which = 'global_inds' if k < gi.size else 'local_inds'
        raise ValueError(f"{which} must lie in [0, {dim}); got {allinds[k]}")
    counts = np.bincount(allinds, minlength=dim)
    if (counts != 1).any():
        k = int(np.flatnonzero(counts != 1)[0])
        raise ValueError(f"global_inds and local_inds must index every coordinate "
                         f"of {name} exactly once; index {k} appears "
                         f"{counts[k]} times")


def _csr_parts(hessian: Any, name: str):
    """``(csr, stored, eps)``: a validated float64 CSR form of ``hessian``,
    its stored entries (for the tolerance) and the eps of its dtype."""
    if not scipy.sparse.issparse(hessian):
        dense, eps = _as_dense_square(hessian, name)
        csr = scipy.sparse.csr_array(dense)
        return csr, csr.data, eps
    _check_real_dtype(hessian.dtype, name)
    if hessian.ndim != 2 or hessian.shape[0] != hessian.shape[1] or \
            hessian.shape[0] == 0:
        raise ValueError(f"{name} must be a non-empty square 2-d matrix; got "
                         f"shape {hessian.shape}")
    eps = _eps_of(hessian.dtype)
    csr = hessian.tocsr().astype(np.float64, copy=False)
    stored = hessian.data if hessian.format in ('coo', 'csr', 'csc') \
        else csr.data
    if not np.isfinite(stored).all():
        coo = hessian.tocoo()
        row, col, data = coo.row, coo.col, coo.data.astype(np.float64)
        k = np.flatnonzero(~np.isfinite(data))
        k = k[np.lexsort((col[k], row[k]))[0]]
        raise ValueError(f"{name} must be finite; {name}[{row[k]}, {col[k]}] = "
                         f"{data[k]}")
    return csr, stored, eps


def _rows(csr, inds: np.ndarray):
    """Rows ``inds`` of a CSR matrix, never to be written to: when they are
    consecutive (the usual layouts) a CSR array viewing one run of its
    arrays, else a copy."""
    if inds.size and inds[-1] - inds[0] == inds.size - 1 and \
            np.all(np.diff(inds) == 1):
        r0, r1 = int(inds[0]), int(inds[-1]) + 1
        a, b = csr.indptr[r0], csr.indptr[r1]
        return scipy.sparse.csr_array(
            (csr.data[a:b], csr.indices[a:b], csr.indptr[r0:r1 + 1] - a),
            shape=(r1 - r0, csr.shape[1]), copy=False)
    return csr[inds]


def _arrowhead_blocks(hessian: Any, global_inds: Any, local_inds: Any,
                      name: str) -> Tuple[np.ndarray, ...]:
    """``(G, C, L, gi, li, eps)`` of an arrowhead ``hessian``; ``C`` is the
    mean of the upper and (checked equal) lower cross blocks."""
    csr, stored, eps = _csr_parts(hessian, name)
    dim = csr.shape[0]
    gi = _as_index_array(global_inds, 1, 'global_inds')
    li = _as_index_array(local_inds, 2, 'local_inds')
    _check_partition(gi, li, dim, name)
    g, (T, m) = gi.size, li.shape
    local = li.ravel()
    # The global rows, densely: G and the cross blocks, as H[L_t, G] (T, m, g).
    top = _rows(csr, gi).toarray()                              # (g, D)
    G = top[:, gi]
    upper = top.T[local].reshape(T, m, g)
    # The local rows in group order: the cross blocks again, from below ...
    local_rows = _rows(csr, local)                              # (T m, D)
    lower = local_rows[:, gi].toarray().reshape(T, m, g)
    # ... and the local-local entries, each inside its group.
    within = local_rows[:, local]                               # (T m, T m)
    row = np.repeat(np.arange(T * m), np.diff(within.indptr))
    col, data = within.indices, within.data
    row_group, col_group = row // m, col // m
    bad = np.flatnonzero((row_group != col_group) & (data != 0))
    if bad.size:
        r, c = local[row[bad]], local[col[bad]]
        first = np.lexsort((c, r))[0]
        k = bad[first]
        raise ValueError(f"{name} is not arrowhead-structured: {name}[{r[first]}, "
                         f"{c[first]}] = {data[k]:.6g} couples the locals of "
                         f"groups {row_group[k]} and {col_group[k]}, which must "
                         f"not interact")
    L = np.bincount(row * m + col % m, weights=data,            # sums duplicates
                    minlength=T * m * m).reshape(T, m, m)
    if upper.size:
        gap = np.subtract(upper, lower)
        np.abs(gap, out=gap)
        t, j, i = np.unravel_index(np.argmax(gap), gap.shape)
        scale = max(float(np.max(stored)), -float(np.min(stored))) \
            if stored.size else 0.0
        tol = np.sqrt(eps) * scale
        if gap[t, j, i] > tol:
            a, b = gi[i], li[t, j]
            raise ValueError(
                f"{name} is not symmetric: |{name}[{a}, {b}] - {name}[{b}, {a}]|"
                f" = {gap[t, j, i]:.3g} ({upper[t, j, i]:.6g} vs "
                f"{lower[t, j, i]:.6g}) exceeds the tolerance {tol:.3g} "
                f"(sqrt(eps) * max|{name}|)")
    cross = upper                                 # the mean, in place
    cross += lower
    cross *= 0.5
    return G, cross.transpose(0, 2, 1), L, gi, li, eps
