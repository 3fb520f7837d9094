"""The arrowhead split of a Hessian pattern (private to
:mod:`refold.sensitivity.structure`): which coordinates are globals (dense
rows) and how the rest fall into local blocks, grouped by size."""
import numpy as np
import scipy.sparse as sp
from scipy.sparse.csgraph import connected_components

from refold.sensitivity._arrowhead_blocks import _layout

__all__ = ["arrowhead_split", "size_classes"]


def size_classes(rest: np.ndarray, labels: np.ndarray, sizes: np.ndarray):
    """The blocks (connected components) of coordinates ``rest`` grouped by
    size: a ``(T, m)`` array for one size, else a tuple of ``(T_k, m_k)``
    arrays by increasing size; blocks in order of their first coordinate."""
    block_size = sizes[labels]
    order = np.lexsort((labels, block_size))          # stable: by size, block
    coords, block_size = rest[order], block_size[order]
    return _layout([coords[block_size == m].reshape(-1, m)
                    for m in np.unique(sizes)])       # a loop over the sizes


def arrowhead_split(pattern: sp.csr_matrix, max_block: int,
                    max_globals: int):
    """Globals (dense rows) and local blocks, or a reason why not.

    Tries thresholds on the row degree, highest first: the globals are the
    rows of at least that degree; the locals are the connected components of
    what remains.  The first (fewest globals) split whose blocks are all at
    most ``max_block`` wins.  Blocks of the commonest size (by
    coordinates) are the locals, and coordinates in blocks of other sizes
    join the globals when they are no more than that size (at most ``m``
    more HVPs keep the blocks equal); otherwise the blocks of every size are
    locals, grouped by size.
    """
    dim = pattern.shape[0]
    degree = np.diff(pattern.indptr)
    levels = np.unique(degree)[::-1]
    candidates = [0] + [int(np.sum(degree >= lev)) for lev in levels[:64]]
    reason = "no set of dense rows leaves small blocks"
    # A Schur complement pays only when the globals are a small part.
    most = min(max_globals, int(0.2 * dim))
    for n_glob in sorted(set(c for c in candidates if c <= most)):
        level = np.inf if n_glob == 0 else np.sort(degree)[::-1][n_glob - 1]
        is_global = degree >= level
        if int(is_global.sum()) != n_glob:
            continue
        rest = np.flatnonzero(~is_global)
        sub = pattern[rest][:, rest]
        n_comp, labels = connected_components(sub, directed=False)
        sizes = np.bincount(labels)
        if sizes.max() > max_block:
            continue
        # Blocks of the commonest size are the locals; a few coordinates in
        # blocks of other sizes (a scalar coupled to little) join the
        # globals; more of them are locals too, in classes by size.
        size_counts = np.bincount(sizes)
        block = int(np.argmax(size_counts * np.arange(len(size_counts))))
        odd = sizes[labels] != block
        n_odd = int(odd.sum())
        if n_odd and (n_odd > block or n_glob + n_odd > most):
            return np.flatnonzero(is_global), size_classes(rest, labels,
                                                           sizes), ""
        is_global[rest[odd]] = True
        local = rest[~odd]
        order = np.argsort(labels[~odd], kind="stable")
        return (np.flatnonzero(is_global),
                local[order].reshape(-1, block), "")
    return None, None, reason
