r"""Local blocks of a sparsity pattern, given its global coordinates.

A global/local (arrowhead) Hessian couples ``g`` *global* coordinates to
everything and splits the rest into ``T`` *local* blocks of ``m``
coordinates that couple only among themselves (and to the globals).  When
the globals are known -- the :math:`\theta` of an EM objective, the
hyperparameters of a hierarchical model -- :func:`local_blocks` recovers the
blocks from a pattern (detected by
:func:`~refold.sensitivity.sparsity.hessian_sparsity`, or the nonzeros of a
sparse Hessian) as the connected components of the pattern restricted to
the other coordinates.  (:func:`~refold.sensitivity.structure.classify_pattern`
finds the globals too.)

Each block lists its coordinates in increasing order, and blocks are ordered
by their smallest coordinate, so when every block repeats the same layout
(observation ``n``'s ``k`` E-step coordinates, say) column ``j`` of the
result holds the same kind of coordinate in every block.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import scipy.sparse as sps
from scipy.sparse.csgraph import connected_components

__all__ = ["local_blocks"]


def local_blocks(pattern: Any, global_inds: Any) -> np.ndarray:
    r"""The local blocks of ``pattern`` outside ``global_inds``.

    Parameters
    ----------
    pattern : scipy.sparse matrix or array_like, shape (D, D)
        Possible nonzeros of a symmetric matrix.
    global_inds : array_like of int, shape (g,)
        The global coordinates.

    Returns
    -------
    ndarray of int, shape (T, m)
        Row ``t``: the coordinates of block ``t`` (increasing); blocks
        ordered by their first coordinate.

    Raises
    ------
    ValueError
        A pattern that is not square, indices out of range, or blocks of
        different sizes (the message names two of them).

    Examples
    --------
    >>> import numpy as np
    >>> pat = np.eye(7, dtype=bool)
    >>> pat[0, :] = pat[:, 0] = True          # coordinate 0 is global
    >>> pat[1, 4] = pat[4, 1] = pat[2, 5] = pat[5, 2] = True
    >>> pat[3, 6] = pat[6, 3] = True
    >>> local_blocks(pat, [0]).tolist()
    [[1, 4], [2, 5], [3, 6]]
    """
    pat = sps.csr_array(pattern) if sps.issparse(pattern) else \
        sps.csr_array(np.asarray(pattern) != 0)
    dim = pat.shape[0]
    if pat.ndim != 2 or pat.shape != (dim, dim):
        raise ValueError(f"pattern must be square (D, D); got shape "
                         f"{pat.shape}")
    glob = np.asarray(global_inds, dtype=np.int64).ravel()
    if glob.size and (glob.min() < 0 or glob.max() >= dim):
        raise ValueError(f"global_inds must lie in [0, {dim}); got "
                         f"{glob.min()}..{glob.max()}")
    rest = np.setdiff1d(np.arange(dim), glob)
    if rest.size == 0:
        return np.zeros((0, 0), dtype=np.int64)
    sub = pat[rest][:, rest]
    _, labels = connected_components(sub != 0, directed=False)
    sizes = np.bincount(labels)
    if (sizes != sizes[0]).any():
        a = int(np.argmax(sizes != sizes[0]))
        first = rest[labels == 0].tolist()[:8]
        other = rest[labels == a].tolist()[:8]
        raise ValueError(
            f"the coordinates outside global_inds do not form blocks of one "
            f"size: the block of coordinate {first[0]} has {sizes[0]} "
            f"({first}{'...' if sizes[0] > 8 else ''}) but the block of "
            f"coordinate {other[0]} has {sizes[a]} "
            f"({other}{'...' if sizes[a] > 8 else ''})")
    # connected_components labels in order of first appearance, and
    # rest is increasing: a stable sort by label keeps each block sorted.
    order = np.argsort(labels, kind="stable")
    return rest[order].reshape(sizes.size, sizes[0])
