r"""Colouring a Hessian's sparsity pattern, and recovering the Hessian.

A sparse symmetric Hessian :math:`H` (``D x D``) can be recovered from a few
Hessian-vector products.  Give every column :math:`j` a colour :math:`c(j)`
and multiply :math:`H` by the indicator :math:`d_c = \sum_{c(j) = c} e_j` of
each colour.  When the columns of one colour are *structurally orthogonal*
(no row has a possible nonzero in two of them), row :math:`i` of
:math:`H d_{c(j)}` is exactly :math:`H_{ij}`.

refold's colouring is symmetric-aware in a simple, fully vectorised way:

1. A few *dense* vertices (rows/columns with many possible nonzeros, e.g. the
   global parameters of an arrowhead Hessian) each get a colour of their own,
   so their columns come out exactly.  By symmetry they also give the dense
   *rows*, so the dense rows need not be respected when the remaining columns
   are coloured.  The number of dense vertices is chosen greedily (largest
   degree first) to minimise ``(number dense) + (largest remaining row
   degree)``, the latter a lower bound on the colours the rest needs.
2. The remaining ("sparse") columns are coloured by a greedy distance-2
   colouring of the remaining pattern: the column-intersection graph
   :math:`S^\top S` is built with scipy.sparse and coloured largest-degree
   first.  The Python loop runs over the graph's vertices, never over the
   pattern's nonzeros.

Recovery reads entry :math:`(i, j)` from column :math:`c(j)` (or, when only
:math:`i` is dense, from row :math:`j` of column :math:`c(i)`), with one fancy
index over all nonzeros, and symmetrises :math:`(H + H^\top)/2` on the pattern.

For an arrowhead pattern with :math:`g` globals and blocks of :math:`m` locals
this uses :math:`g + m` products, the minimum for direct recovery.
"""
from typing import Any, Optional

import numpy as onp
import scipy.sparse as sp

__all__ = ["as_sparsity_pattern", "colour_columns", "HessianColouring",
           "colour_hessian", "recover_hessian", "verify_hessian_probe"]


def as_sparsity_pattern(sparsity: Any, dim: Optional[int] = None,
                        name: str = "sparsity") -> sp.csr_matrix:
    r"""Validate a symmetric sparsity pattern and return it as boolean CSR.

    Parameters
    ----------
    sparsity : scipy.sparse matrix or array_like of bool or numbers
        Square, symmetric pattern; an entry is a *possible nonzero* of the
        Hessian when its value is nonzero (stored zeros of a sparse matrix
        are not part of the pattern).
    dim : int, optional
        Required dimension ``D``.
    name : str
        Parameter name used in error messages.

    Returns
    -------
    pattern : scipy.sparse.csr_matrix of bool, shape (D, D)
        Canonical (sorted indices, no duplicates, no stored zeros).

    Raises
    ------
    TypeError
        When ``sparsity`` is not a matrix of booleans or real numbers.
    ValueError
        When it is not square, has the wrong dimension, contains NaN, or is
        not symmetric (the message names an offending entry).
    """
    if sp.issparse(sparsity):
        mat = sp.csr_matrix(sparsity)
    else:
        arr = onp.asarray(sparsity)
        if arr.dtype == object or not (
                arr.dtype == bool or onp.issubdtype(arr.dtype, onp.number)):
            raise TypeError(f"{name} must be a scipy.sparse matrix or an "
                            f"array of booleans; got dtype {arr.dtype}.")
        if arr.ndim != 2:
            raise ValueError(f"{name} must be a square 2-d matrix; got "
                             f"shape {arr.shape}.")
        mat = sp.csr_matrix(arr)
    if mat.dtype != bool and not onp.issubdtype(mat.dtype, onp.number):
        raise TypeError(f"{name} must hold booleans or numbers; got dtype "
                        f"{mat.dtype}.")
    if mat.shape[0] != mat.shape[1]:
        raise ValueError(f"{name} must be square; got shape {mat.shape}.")
    if dim is not None and mat.shape[0] != dim:
        raise ValueError(f"{name} must have shape ({dim}, {dim}) to match "
                         f"x; got {mat.shape}.")
    if mat.dtype != bool and onp.any(onp.isnan(mat.data)):
        raise ValueError(f"{name} contains NaN; expected booleans or "
                         f"finite numbers.")
    pattern = mat.astype(bool)
    pattern.eliminate_zeros()
    pattern.sum_duplicates()
    pattern.sort_indices()
    asym = (pattern != pattern.T).tocoo()
    if asym.nnz:
        k = onp.lexsort((asym.col, asym.row))[0]
        i, j = int(asym.row[k]), int(asym.col[k])
        has = bool(pattern[i, j])
        raise ValueError(
            f"{name} must be a symmetric pattern (a Hessian is symmetric); "
            f"entry ({i}, {j}) is {'set' if has else 'unset'} but "
            f"({j}, {i}) is {'unset' if has else 'set'}. Pass "
            f"{name} + {name}.T to symmetrise it.")
    return pattern


def colour_columns(pattern: sp.spmatrix) -> onp.ndarray:
    r"""Greedy distance-2 colouring of the columns of a sparsity pattern.

    Columns of one colour are structurally orthogonal: no row of ``pattern``
    has a nonzero in two of them.  The column-intersection graph
    :math:`S^\top S` is coloured greedily in largest-degree-first order.

    Parameters
    ----------
    pattern : scipy.sparse matrix, shape (R, C)
        Pattern whose nonzero entries are the possible nonzeros.

    Returns
    -------
    colours : numpy.ndarray of int, shape (C,)
        Colour ``0, 1, ...`` of each column; columns with no nonzero get
        colour 0 (they are orthogonal to everything).
    """
    s = sp.csr_matrix(pattern, dtype=bool).astype(onp.int32)
    graph = sp.csr_matrix(s.T @ s)
    graph.sort_indices()
    num_cols = graph.shape[0]
    indptr, indices = graph.indptr, graph.indices
    degree = onp.diff(indptr)
    order = onp.argsort(-degree, kind="stable")
    colours = onp.full(num_cols, -1, dtype=onp.int64)
    # forbidden_by[c] == v  <=>  colour c is taken by a neighbour of v.
    forbidden_by = onp.full(num_cols + 1, -1, dtype=onp.int64)
    num_colours = 0
    for v in order:
        nbr_colours = colours[indices[indptr[v]:indptr[v + 1]]]
        forbidden_by[nbr_colours[nbr_colours >= 0]] = v
        free = onp.flatnonzero(forbidden_by[:num_colours + 1] != v)
        colour = int(free[0])
        colours[v] = colour
        num_colours = max(num_colours, colour + 1)
    return colours


def _choose_dense(pattern: sp.csr_matrix) -> onp.ndarray:
    """Vertices to give their own colour (see the module docstring)."""
    dim = pattern.shape[0]
    degree = onp.diff(pattern.indptr).astype(onp.int64)
    if dim == 0:
        return onp.zeros(0, dtype=onp.int64)
    order = onp.argsort(-degree, kind="stable")
    reduced = degree.copy()
    remaining = onp.ones(dim, dtype=bool)
    best_cost, best_k = int(degree.max()), 0
    k = 0
    while k < dim and k + 1 < best_cost:
        v = order[k]
        remaining[v] = False
        reduced[pattern.indices[pattern.indptr[v]:pattern.indptr[v + 1]]] -= 1
        k += 1
        rest = int(reduced[remaining].max()) if k < dim else 0
        if k + rest < best_cost:
            best_cost, best_k = k + rest, k
    return onp.sort(order[:best_k])


class HessianColouring:
    r"""A colouring of a symmetric pattern, with its recovery plan.

    Build with :func:`colour_hessian`; reuse across Hessian evaluations with
    the same pattern.

    Attributes
    ----------
    dim : int
        Dimension ``D``.
    pattern : scipy.sparse.csr_matrix of bool, shape (D, D)
        The validated pattern.
    colours : numpy.ndarray of int, shape (D,)
        Colour of each column, ``0 .. num_colours - 1``.
    num_colours : int
        Number of Hessian-vector products recovery needs.
    dense_inds : numpy.ndarray of int
        Vertices that have a colour of their own and are recovered by
        symmetry (empty for a plain distance-2 colouring).
    """

    def __init__(self, pattern: sp.csr_matrix, colours: onp.ndarray,
                 dense_inds: onp.ndarray):
        self.dim = pattern.shape[0]
        self.pattern = pattern
        self.colours = onp.asarray(colours, dtype=onp.int64)
        self.num_colours = (int(self.colours.max()) + 1
                            if self.dim else 0)
        self.dense_inds = onp.asarray(dense_inds, dtype=onp.int64)
        coo = pattern.tocoo()
        rows = coo.row.astype(onp.int64)
        cols = coo.col.astype(onp.int64)
        is_dense = onp.zeros(self.dim, dtype=bool)
        is_dense[self.dense_inds] = True
        # Read (i, j) from row i of colour c(j), unless only i is dense,
        # when it is read from row j of colour c(i).
        swap = is_dense[rows] & ~is_dense[cols]
        self._src_row = onp.where(swap, cols, rows)
        self._src_col = self.colours[onp.where(swap, rows, cols)]
        # Position of each entry's mirror (j, i) in CSR order.
        keys = rows * self.dim + cols
        self._mirror = onp.searchsorted(keys, cols * self.dim + rows)
        self._check_recoverable(rows, cols, is_dense)

    def _check_recoverable(self, rows, cols, is_dense) -> None:
        """Raise ValueError unless every entry can be read exactly."""
        if len(self.colours) != self.dim:
            raise ValueError(f"colouring must give one colour per column "
                             f"({self.dim}); got {len(self.colours)}.")
        if self.dim and self.colours.min() < 0:
            raise ValueError("colouring must hold non-negative colours.")
        dense_colours = self.colours[self.dense_inds]
        shared = onp.isin(self.colours, dense_colours)
        shared[self.dense_inds] = False
        if (onp.any(shared)
                or len(onp.unique(dense_colours)) != len(dense_colours)):
            raise ValueError("colouring: a dense vertex must have a colour "
                             "of its own.")
        sparse_entry = ~is_dense[rows] & ~is_dense[cols]
        r, c = rows[sparse_entry], cols[sparse_entry]
        # Each (row, colour) pair may hold at most one pattern entry.
        keys = r * max(self.num_colours, 1) + self.colours[c]
        order = onp.argsort(keys, kind="stable")
        clash = onp.flatnonzero(onp.diff(keys[order]) == 0)
        if len(clash):
            first, second = order[clash[0]], order[clash[0] + 1]
            i, j, k = int(r[first]), int(c[first]), int(c[second])
            raise ValueError(
                f"colouring does not separate the pattern: columns {j} and "
                f"{k} share colour {int(self.colours[j])} and both have a "
                f"possible nonzero in row {i}; columns sharing a colour "
                f"must not share a row.")

    def directions(self) -> onp.ndarray:
        """Indicator directions, shape (D, num_colours), as floats."""
        out = onp.zeros((self.dim, self.num_colours))
        out[onp.arange(self.dim), self.colours] = 1.0
        return out

    def __repr__(self) -> str:
        return (f"HessianColouring(dim={self.dim}, nnz={self.pattern.nnz}, "
                f"num_colours={self.num_colours}, "
                f"num_dense={len(self.dense_inds)})")


def colour_hessian(sparsity: Any, method: str = "symmetric",
                   colours: Optional[Any] = None) -> HessianColouring:
    r"""Colour a symmetric Hessian sparsity pattern for recovery.

    Parameters
    ----------
    sparsity : scipy.sparse matrix or array_like of bool
        Symmetric pattern of the Hessian's possible nonzeros.
    method : {"symmetric", "distance2"}
        ``"symmetric"`` (default) gives dense vertices their own colour and
        uses symmetry for their rows (see the module docstring);
        ``"distance2"`` is a plain column colouring.
    colours : array_like of int, shape (D,), optional
        A user-supplied column colouring (``method`` is then ignored).  It is
        checked: columns sharing a colour must be structurally orthogonal.

    Returns
    -------
    HessianColouring

    Raises
    ------
    ValueError
        Bad pattern, unknown ``method``, or an invalid ``colours``.
    """
    pattern = as_sparsity_pattern(sparsity)
    dim = pattern.shape[0]
    if colours is not None:
        arr = onp.asarray(colours)
        if arr.dtype == bool or not onp.issubdtype(arr.dtype, onp.integer):
            raise TypeError(f"colours must be an array of int; got dtype "
                            f"{arr.dtype}.")
        if arr.shape != (dim,):
            raise ValueError(f"colours must have shape ({dim},); got "
                             f"{arr.shape}.")
        return HessianColouring(pattern, arr, onp.zeros(0, dtype=onp.int64))
    if method == "symmetric":
        dense = _choose_dense(pattern)
    elif method == "distance2":
        dense = onp.zeros(0, dtype=onp.int64)
    else:
        raise ValueError(f"method must be 'symmetric' or 'distance2'; got "
                         f"{method!r}.")
    colours_out = onp.zeros(dim, dtype=onp.int64)
    colours_out[dense] = onp.arange(len(dense))
    is_sparse = onp.ones(dim, dtype=bool)
    is_sparse[dense] = False
    if onp.any(is_sparse):
        sub = pattern[is_sparse][:, is_sparse]
        colours_out[is_sparse] = len(dense) + colour_columns(sub)
    return HessianColouring(pattern, colours_out, dense)


def recover_hessian(colouring: HessianColouring,
                    products: onp.ndarray) -> sp.csr_matrix:
    r"""Assemble the sparse Hessian from the colour products.

    Parameters
    ----------
    colouring : HessianColouring
    products : numpy.ndarray, shape (D, num_colours)
        Column ``c`` is :math:`H d_c`, ``d_c`` the colour-``c`` indicator
        (``colouring.directions()[:, c]``).

    Returns
    -------
    scipy.sparse.csr_matrix, shape (D, D)
        :math:`(H + H^\top)/2` on the pattern (exactly symmetric).
    """
    products = onp.asarray(products)
    if products.shape != (colouring.dim, colouring.num_colours):
        raise ValueError(f"products must have shape "
                         f"({colouring.dim}, {colouring.num_colours}); got "
                         f"{products.shape}.")
    values = products[colouring._src_row, colouring._src_col]
    values = 0.5 * (values + values[colouring._mirror])
    pattern = colouring.pattern
    return sp.csr_matrix((values, pattern.indices.copy(),
                          pattern.indptr.copy()), shape=pattern.shape)


def verify_hessian_probe(hessian_times_probe: onp.ndarray,
                         true_hvp: onp.ndarray, what: str) -> float:
    r"""Compare a structured Hessian's product with a true HVP.

    Raises ``ValueError`` when they differ by more than
    :math:`\sqrt{\epsilon}\,\max(\|Hv\|_\infty, \|\tilde H v\|_\infty)`
    (``eps`` of the result dtype): the objective couples coordinates that
    ``what`` says are independent.  Returns the largest absolute difference.
    """
    true_hvp = onp.asarray(true_hvp)
    diff = onp.abs(onp.asarray(hessian_times_probe) - true_hvp)
    scale = max(float(onp.max(onp.abs(true_hvp), initial=0.0)),
                float(onp.max(onp.abs(hessian_times_probe), initial=0.0)))
    dtype = onp.result_type(true_hvp.dtype, onp.float32)
    tol = onp.sqrt(onp.finfo(dtype).eps) * scale
    worst = int(onp.argmax(diff)) if diff.size else 0
    max_diff = float(diff[worst]) if diff.size else 0.0
    if not onp.isfinite(max_diff) or max_diff > tol:
        raise ValueError(
            f"The objective couples coordinates that {what} claims are "
            f"independent: at coordinate {worst} the structured Hessian "
            f"times a random probe differs from the true Hessian-vector "
            f"product by {max_diff:.3g} (tolerance {tol:.3g} = sqrt(eps) "
            f"* |Hv|_inf). Row/column {worst} has nonzeros outside the "
            f"pattern; refusing to return a wrong Hessian (pass "
            f"verify=False to skip this check).")
    return max_diff
