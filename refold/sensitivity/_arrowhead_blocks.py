r"""The index layout and the blocks of an arrowhead matrix (private).

The locals of an arrowhead matrix come in *size classes*: all blocks of one
size form a ``(T_k, m_k)`` index array, and every class is stored and
factorised as a stack.  :func:`_local_classes` reads the forms
``local_inds`` may take -- a ``(T, m)`` array (blocks of one size), a list
of 2-d ``(T_k, m_k)`` arrays (one per class, blocks numbered class by
class), or a list of 1-d arrays (one per block; grouped by increasing size,
in the given order within a size) -- into a tuple of classes.

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

from typing import Any, List, Sequence, Tuple

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
        more = '' if ndim == 1 else f" (or be {_FORMS})"
        raise ValueError(f"{name} must have shape {shape}; got shape "
                         f"{arr.shape}{more}")
    return arr.astype(np.intp)


_FORMS = ("a (T, m) array, a list of (T_k, m_k) arrays (one per block "
          "size) or a list of 1-d arrays (one per block)")


def _merge_classes(shapes: Sequence[tuple], *stacks: Sequence) -> tuple:
    """Drop the classes without coordinates (unless all are) and merge the
    classes when they all have one block size; ``stacks`` are parallel lists
    (index arrays or blocks), transformed alike."""
    keep = [k for k, (t, m) in enumerate(shapes) if t * m] or [0]
    if len(keep) > 1 and len({shapes[k][1] for k in keep}) == 1:
        return tuple((np.concatenate([s[k] for k in keep]),) for s in stacks)
    return tuple(tuple(s[k] for k in keep) for s in stacks)


def _classes_of_blocks(blocks: Sequence, name: str) -> List[np.ndarray]:
    """One index array per block, of several sizes: their size classes."""
    sizes = np.fromiter((np.size(b) for b in blocks), np.intp, len(blocks))
    flat = _as_index_array(np.concatenate([np.ravel(b) for b in blocks]), 1,
                           name)
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    return [flat[starts[sizes == m][:, None] + np.arange(m)]
            for m in np.unique(sizes)]          # a loop over the sizes


def _is_size_class_list(local_inds: Any) -> bool:
    """A list of index arrays per class, or per block of unequal sizes
    (not a nested list that numpy reads as one ``(T, m)`` array)?"""
    if not (isinstance(local_inds, (list, tuple)) and len(local_inds)):
        return False
    ndims = {np.ndim(b) for b in local_inds}
    return ndims == {2} or len(ndims) > 1 or (
        ndims == {1} and len({np.size(b) for b in local_inds}) > 1)


def _local_classes(local_inds: Any, name: str = 'local_inds'
                   ) -> Tuple[np.ndarray, ...]:
    """The size classes of ``local_inds`` (see the module notes): a tuple
    of ``(T_k, m_k)`` index arrays, one array for blocks of one size."""
    if _is_size_class_list(local_inds):
        ndims = {np.ndim(b) for b in local_inds}
        if ndims == {2}:
            classes = [_as_index_array(c, 2, f"{name}[{k}]")
                       for k, c in enumerate(local_inds)]
            return _merge_classes([c.shape for c in classes], classes)[0]
        if len(ndims) > 1:
            raise ValueError(f"{name} must be {_FORMS}; got a list mixing "
                             f"arrays of {sorted(ndims)} dimensions")
        classes = _classes_of_blocks(local_inds, name)
        return _merge_classes([c.shape for c in classes], classes)[0]
    return (_as_index_array(local_inds, 2, name),)


def _layout(classes: Sequence[np.ndarray]):
    """``local_inds`` in the form the user would pass: the ``(T, m)`` array
    for one size class, else the tuple of classes."""
    return classes[0] if len(classes) == 1 else tuple(classes)


def _flat(classes: Sequence[np.ndarray]) -> np.ndarray:
    """Every local index, class by class, block by block."""
    return np.concatenate([c.ravel() for c in classes])


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
                      name: str) -> tuple:
    """``(G, Cs, Ls, gi, classes, eps)`` of an arrowhead ``hessian``, with
    one cross block stack ``(T_k, g, m_k)`` and local block stack ``(T_k,
    m_k, m_k)`` per size class; a cross block is the mean of the upper and
    (checked equal) lower ones."""
    csr, stored, eps = _csr_parts(hessian, name)
    dim = csr.shape[0]
    gi = _as_index_array(global_inds, 1, 'global_inds')
    classes = _local_classes(local_inds)
    local = _flat(classes)
    _check_partition(gi, local, dim, name)
    g, n_loc = gi.size, local.size
    sizes = [c.shape[1] for c in classes]
    counts = [c.shape[0] for c in classes]
    # The global rows, densely: G and the cross blocks, as H[L, G] (n, g).
    top = _rows(csr, gi).toarray()                              # (g, D)
    G = top[:, gi]
    upper = top.T[local]
    # The local rows in group order: the cross blocks again, from below ...
    local_rows = _rows(csr, local)                              # (n, D)
    lower = local_rows[:, gi].toarray()
    # ... and the local-local entries, each inside its group.
    within = local_rows[:, local]                               # (n, n)
    row = np.repeat(np.arange(n_loc), np.diff(within.indptr))
    col, data = within.indices, within.data
    if len(classes) == 1:                       # the group of a position
        row_group, col_group = row // sizes[0], col // sizes[0]
    else:                                       # numbered class by class
        group = np.repeat(np.arange(sum(counts)), np.repeat(sizes, counts))
        row_group, col_group = group[row], group[col]
    bad = np.flatnonzero((row_group != col_group) & (data != 0))
    if bad.size:
        r, c = local[row[bad]], local[col[bad]]
        first = np.lexsort((c, r))[0]
        k = bad[first]
        raise ValueError(f"{name} is not arrowhead-structured: {name}[{r[first]}, "
                         f"{c[first]}] = {data[k]:.6g} couples the locals of "
                         f"groups {row_group[k]} and {col_group[k]}, which must "
                         f"not interact")
    if upper.size:
        gap = np.subtract(upper, lower)
        np.abs(gap, out=gap)
        p, i = np.unravel_index(np.argmax(gap), gap.shape)
        scale = max(float(np.max(stored)), -float(np.min(stored))) \
            if stored.size else 0.0
        tol = np.sqrt(eps) * scale
        if gap[p, i] > tol:
            a, b = gi[i], local[p]
            raise ValueError(
                f"{name} is not symmetric: |{name}[{a}, {b}] - {name}[{b}, {a}]|"
                f" = {gap[p, i]:.3g} ({upper[p, i]:.6g} vs "
                f"{lower[p, i]:.6g}) exceeds the tolerance {tol:.3g} "
                f"(sqrt(eps) * max|{name}|)")
    cross = upper                                 # the mean, in place
    cross += lower
    cross *= 0.5
    # Local rows of one class are consecutive, so are their CSR entries.
    Cs, Ls = [], []
    start = 0
    for (t, m), cls in zip(zip(counts, sizes), classes):   # over the sizes
        stop = start + t * m
        a, b = within.indptr[start], within.indptr[stop]
        r, c = (row, col) if len(classes) == 1 else (row[a:b] - start,
                                                     col[a:b] - start)
        Ls.append(np.bincount(r * m + c % m, weights=data[a:b],  # sums
                              minlength=t * m * m).reshape(t, m, m))
        Cs.append(cross[start:stop].reshape(t, m, g).transpose(0, 2, 1))
        start = stop
    return G, Cs, Ls, gi, classes, eps
