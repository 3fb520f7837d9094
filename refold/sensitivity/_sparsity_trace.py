r"""Dependency tracing through autograd's primitives (private).

The machinery behind :func:`refold.sensitivity.sparsity.hessian_sparsity`.
``fun`` is evaluated once at ``x`` with every array that depends on ``x``
boxed by autograd; each primitive call creates a :class:`_SparsityNode`,
which applies the primitive's *rule* (:mod:`._sparsity_rules`) to the
dependencies of its inputs.  This is the approach of Julia's
SparseConnectivityTracer (global Hessian tracer), vectorised:

* **first order** -- each traced array carries a :class:`Dep`: a sparse
  boolean matrix ``rows`` (one row per *distinct* dependency set, row 0
  always empty) and an integer array ``index`` of the array's shape giving the
  row of every element.  Element ``e`` can depend on ``x[j]`` only if
  ``rows[index[e], j]`` is set.  Many elements share a set (every observation
  of a group depends on the same coordinates), so ``rows`` stays small and
  every rule works on the distinct rows, never on elements one by one.
* **second order** -- the Hessian of a composition is a sum over the graph's
  nodes of (input Jacobian)\ :sup:`T` (node's second derivative) (input
  Jacobian), weighted by adjoints.  So a primitive that is *nonlinear* in
  some of its inputs adds the pairs of their dependency sets to one global
  accumulator; linear primitives add nothing, and a sum of terms only couples
  what each term couples.  A contribution is a pair of row matrices
  ``(A, B)`` meaning ``A.T @ B``; at the end the distinct row pairs of all
  contributions are merged (hashing rows with random weights, checked
  exactly) and multiplied once -- sparsely, or by dense products when many
  dense-ish rows would make the sparse product the costlier.

Broadcasting costs nothing: rules keep ``index`` as a broadcast view and
work on its non-repeated core (stride-0 axes are done once).

The result is a superset of the Hessian's nonzeros at ``x``: every rule is
exact or errs on the side of more dependencies.  Control flow is followed
as it runs at ``x``; callers verify recovered Hessians with a random probe.
"""
from __future__ import annotations

import warnings
from typing import Any, Callable, List, Optional

import numpy as np
import scipy.sparse as sp
from autograd.tracer import Node, notrace_primitives, trace

from refold.sensitivity._solver_base import RefoldWarning

__all__ = ["Dep", "Fallback", "SparsityWarning", "TraceContext", "run_trace"]


class Fallback(Exception):
    """A rule cannot handle these arguments: use the conservative rule."""


class SparsityWarning(RefoldWarning):
    """A primitive without a sparsity rule was met: its outputs are taken to
    depend on all of its inputs (correct, but possibly far from tight)."""

    __module__ = "refold.sensitivity.sparsity"   # its documented home


# ----------------------------------------------------------------------
# Sparse row helpers
# ----------------------------------------------------------------------
def _ones(mat: sp.csr_matrix) -> sp.csr_matrix:
    """``mat`` with every stored value set to 1 (a boolean pattern)."""
    mat = sp.csr_matrix(mat)
    mat.sum_duplicates()
    mat.data = np.ones(len(mat.indices))
    return mat


def core(index: np.ndarray) -> np.ndarray:
    """``index`` without the repetitions of its broadcast (stride-0) axes."""
    index = np.asarray(index)
    return index[tuple(slice(0, 1) if stride == 0 else slice(None)
                       for stride in index.strides)]


def empty_rows(dim: int, n: int = 1) -> sp.csr_matrix:
    return sp.csr_matrix((n, dim))


def unique_inverse(key: np.ndarray, key_range: int):
    """``np.unique(key, return_inverse=True)`` for non-negative ints, in
    linear time when the range is small."""
    key = np.asarray(key, dtype=np.int64).ravel()
    if key_range <= 8 * key.size + 4096:
        present = np.zeros(key_range, dtype=bool)
        present[key] = True
        uniq = np.flatnonzero(present)
        rank = np.cumsum(present) - 1
        return uniq, rank[key]
    return np.unique(key, return_inverse=True)


class Dep:
    """Dependencies of one traced array: ``rows`` (distinct sets, row 0
    empty) and ``index`` (the row of each element, the array's shape)."""

    __slots__ = ("rows", "index")

    def __init__(self, rows: sp.csr_matrix, index: np.ndarray):
        self.rows = rows
        self.index = np.asarray(index, dtype=np.int64)

    @property
    def dim(self) -> int:
        return self.rows.shape[1]

    def used_rows(self) -> sp.csr_matrix:
        """The rows some element refers to (the empty row excluded)."""
        present = np.zeros(self.rows.shape[0], dtype=bool)
        present[core(self.index)] = True
        present[0] = False
        return self.rows[np.flatnonzero(present)]

    def union_all(self) -> sp.csr_matrix:
        """One row: every coordinate any element depends on."""
        used = self.used_rows()
        if used.shape[0] == 0:
            return empty_rows(self.dim)
        return _ones(sp.csr_matrix(used.sum(axis=0)))

    def element_rows(self) -> sp.csr_matrix:
        """The (n_elements x D) pattern, one row per element (flat)."""
        return self.rows[self.index.ravel()]


def make_dep(new_rows: sp.csr_matrix, inverse: np.ndarray,
             shape: tuple, ctx: "TraceContext") -> Dep:
    """A :class:`Dep` from rows ``new_rows`` (no empty row yet) and the row
    of each element; distinct rows are merged."""
    rows = sp.vstack([empty_rows(new_rows.shape[1]), _ones(new_rows)],
                     format="csr")
    rows, remap = ctx.dedup(rows)
    index = remap[np.asarray(inverse, dtype=np.int64) + 1]
    return Dep(rows, index.reshape(shape))


def aggregate(dep: Dep, group: np.ndarray, n_groups: int, shape: tuple,
              ctx: "TraceContext", nonlinear: bool = False) -> Dep:
    """Union of the dependency sets of the elements of each group.

    ``group`` has the size of ``dep.index`` and gives each element's output
    position in ``range(n_groups)``; the result has ``shape``.  With
    ``nonlinear`` every pair within a group is added to the Hessian.
    """
    group = np.asarray(group, dtype=np.int64).ravel()
    idx = dep.index.ravel()
    keep = idx > 0
    incidence = sp.csr_matrix(
        (np.ones(int(keep.sum())), (group[keep], idx[keep])),
        shape=(n_groups, dep.rows.shape[0]))
    union = _ones(incidence @ dep.rows)
    if nonlinear:
        ctx.add_pairs(union, union)
    return make_dep(union, np.arange(n_groups), shape, ctx)


def pair_union(ctx: "TraceContext", a_rows, ia, b_rows, ib, shape):
    """Union of two broadcast dependency arrays, by distinct row pairs.

    Returns (dep, left, right, union): ``left[k]``/``right[k]`` are the rows
    of the k-th distinct pair met and ``union[k]`` their union."""
    nb = b_rows.shape[0]
    ia, ib = np.broadcast_to(ia, shape), np.broadcast_to(ib, shape)
    # Axes along which both are broadcast are done once, then broadcast.
    cut = tuple(slice(0, 1) if sa == 0 and sb == 0 else slice(None)
                for sa, sb in zip(ia.strides, ib.strides))
    ia, ib = ia[cut], ib[cut]
    uniq, inverse = unique_inverse(ia.ravel() * nb + ib.ravel(),
                                   a_rows.shape[0] * nb)
    left, right = a_rows[uniq // nb], b_rows[uniq % nb]
    union = _ones(left + right)
    dep = make_dep(union, inverse, ia.shape, ctx)
    return Dep(dep.rows, np.broadcast_to(dep.index, shape)), left, right, \
        union


def reduction_groups(shape: tuple, axes: tuple):
    """The output position of each element when ``axes`` are reduced, and
    the number of outputs."""
    kept = tuple(1 if i in axes else s for i, s in enumerate(shape))
    n_out = int(np.prod(kept, dtype=np.int64))
    ids = np.broadcast_to(np.arange(n_out).reshape(kept), shape)
    return ids, n_out


def reduce_dep(ctx: "TraceContext", dep: Dep, axes: tuple, out_shape: tuple,
               nonlinear: bool = False) -> Dep:
    """Union over ``axes`` (the result has ``out_shape``: the kept axes,
    with or without length-1 axes in place of the reduced ones)."""
    axes = tuple(axes)
    index = dep.index
    # A reduced axis along which the index is broadcast adds nothing.
    index = index[tuple(slice(0, 1) if i in axes and stride == 0
                        else slice(None)
                        for i, stride in enumerate(index.strides))]
    if int(np.prod(out_shape, dtype=np.int64)) != int(np.prod(
            [n for i, n in enumerate(index.shape) if i not in axes],
            dtype=np.int64)):
        raise Fallback
    if all(index.shape[i] == 1 for i in axes):
        out = Dep(dep.rows, index.reshape(tuple(out_shape)))
        if nonlinear:
            used = out.used_rows()
            ctx.add_pairs(used, used)
        return out
    ids, n_out = reduction_groups(index.shape, axes)
    return aggregate(Dep(dep.rows, index), ids, n_out, tuple(out_shape),
                     ctx, nonlinear)


_GOLDEN = 1.6180339887498949
#: Dimension up to which a Hessian pattern may be accumulated densely.
_MAX_DENSE_DIM = 6000
#: Cost of one sparse-product flop in dense BLAS flops (for the choice).
_SPARSE_FLOP_COST = 30.0
#: Pairs per dense BLAS product.
_DENSE_CHUNK = 2048


def _dense_pattern(dim: int) -> sp.csr_matrix:
    return sp.csr_matrix((np.ones(dim * dim), np.tile(np.arange(dim), dim),
                          np.arange(0, dim * dim + 1, dim)),
                         shape=(dim, dim))


def _dense_products(left: sp.csr_matrix, right: sp.csr_matrix,
                    dim: int) -> sp.csr_matrix:
    """Pattern of ``L.T @ R + R.T @ L`` accumulated densely (BLAS), for
    many dense-ish rows, stopping once every entry is set."""
    total = np.zeros((dim, dim), dtype=np.float32)
    for start in range(0, left.shape[0], _DENSE_CHUNK):
        block = slice(start, start + _DENSE_CHUNK)
        chunk_l = left[block].toarray().astype(np.float32)
        chunk_r = right[block].toarray().astype(np.float32)
        total += chunk_l.T @ chunk_r
        if start + _DENSE_CHUNK < left.shape[0] and (
                (total + total.T) > 0).all():
            break
    pattern = (total + total.T) > 0
    if pattern.all():
        return _dense_pattern(dim)
    return sp.csr_matrix(pattern.astype(float))


def full_pattern(dim: int) -> sp.csr_matrix:
    """The all-true ``dim x dim`` pattern, built directly in CSR."""
    indptr = np.arange(0, dim * dim + 1, dim, dtype=np.int64)
    indices = np.tile(np.arange(dim, dtype=np.int32), dim)
    return sp.csr_matrix((np.ones(dim * dim, dtype=bool), indices, indptr),
                         shape=(dim, dim))


def constant_dep(shape: tuple, dim: int) -> Dep:
    return Dep(empty_rows(dim), np.zeros(shape, dtype=np.int64))


def broadcast_dep(union_row: sp.csr_matrix, shape: tuple) -> Dep:
    """Every element of ``shape`` depends on ``union_row``."""
    dim = union_row.shape[1]
    rows = sp.vstack([empty_rows(dim), union_row], format="csr")
    fill = 1 if union_row.nnz else 0
    return Dep(rows, np.full(shape, fill, dtype=np.int64))


# ----------------------------------------------------------------------
# The trace
# ----------------------------------------------------------------------
class TraceContext:
    """State of one trace: the dimension, the Hessian accumulator, the
    hashing vectors for merging rows, and the warnings already given."""

    def __init__(self, dim: int, want_hessian: bool):
        self.dim = dim
        self.want_hessian = want_hessian
        self._pairs: List[tuple] = []
        #: Set when one pair couples every coordinate with every other: the
        #: Hessian pattern is then full, whatever else the trace meets, so
        #: the remaining primitives are not analysed (a dense objective's
        #: detection costs little more than one evaluation).
        self.saturated = False
        rng = np.random.default_rng(20260101)
        self._hash = rng.uniform(1.0, 2.0, size=(dim, 2))
        self.unknown: List[str] = []

    # -- rows ----------------------------------------------------------
    def dedup(self, rows: sp.csr_matrix):
        """Merge identical rows.  Returns (rows, remap) with row 0 (empty)
        kept first.  Exact: a hash collision is detected and undone."""
        n = rows.shape[0]
        if n <= 2:
            return rows, np.arange(n)
        hashed = rows @ self._hash
        # One random-weighted sum per row (the empty row's 0 sorts first);
        # a collision is caught by the exact comparison below, and then the
        # rows are keyed by two sums and their counts.
        _, first, inverse = np.unique(hashed[:, 0], return_index=True,
                                      return_inverse=True)
        merged = rows[first]
        if (merged[inverse] != rows).nnz:  # pragma: no cover - collision
            keys = np.column_stack([np.diff(rows.indptr), hashed])
            _, first, inverse = np.unique(keys, axis=0, return_index=True,
                                          return_inverse=True)
            inverse = np.asarray(inverse).ravel()
            merged = rows[first]
        if len(first) == n:
            return rows, np.arange(n)
        return merged, inverse

    # -- Hessian -------------------------------------------------------
    def add_pairs(self, left: sp.csr_matrix, right: sp.csr_matrix) -> None:
        """Add ``sum_k outer(left[k], right[k])`` to the Hessian pattern."""
        if self.want_hessian and left.nnz and right.nnz \
                and not self.saturated:
            full_l = np.diff(left.indptr) == self.dim
            full_r = np.diff(right.indptr) == self.dim
            if np.any(full_l & full_r):
                self.saturated = True
                self._pairs = []
                return
            self._pairs.append((left, right))

    def hessian(self) -> sp.csr_matrix:
        """The symmetric pattern of every pair added (stored values 1).

        Pairs of rows met several times (the same dependency sets coupled
        by several primitives) are merged first, so the one sparse product
        ``L.T @ R`` costs what the distinct couplings cost."""
        if self.saturated:
            return full_pattern(self.dim)
        if not self._pairs:
            return sp.csr_matrix((self.dim, self.dim))
        left = sp.vstack([pair[0] for pair in self._pairs], format="csr")
        right = sp.vstack([pair[1] for pair in self._pairs], format="csr")
        key_l, key_r = left @ self._hash, right @ self._hash
        # Orient each pair canonically (smaller key first), then merge.
        n = left.shape[0]
        swap = key_l[:, 0] > key_r[:, 0]
        both = sp.vstack([left, right], format="csr")
        order = np.arange(n)
        left = both[np.where(swap, order + n, order)]
        right = both[np.where(swap, order, order + n)]
        # One random-weighted key per pair (a collision is caught below).
        keys = (left @ self._hash[:, 0]) * _GOLDEN + right @ self._hash[:, 1]
        _, first, inverse = np.unique(keys, return_index=True,
                                      return_inverse=True)
        inverse = np.asarray(inverse).ravel()
        first_l, first_r = left[first], right[first]
        if (first_l[inverse] != left).nnz or (first_r[inverse] != right).nnz:
            first_l, first_r = left, right  # pragma: no cover - collision
        dim = self.dim
        flops = float(np.dot(np.diff(first_l.indptr).astype(float),
                             np.diff(first_r.indptr)))
        if dim <= _MAX_DENSE_DIM and flops * _SPARSE_FLOP_COST > \
                (first_l.shape[0] + 50.0) * dim * dim:
            return _dense_products(first_l, first_r, dim)
        total = (first_l.T.tocsr() @ first_r).tocsr()
        # A sparse product stores each entry once: all of them set means a
        # dense pattern, returned without sorting D * D indices.
        if total.nnz == dim * dim:
            return _dense_pattern(dim)
        return _ones(total + total.T)

    def warn_failed(self, name: str, err: Exception) -> None:
        key = "failed:" + name
        if key not in self.unknown:
            self.unknown.append(key)
            warnings.warn(
                f"hessian_sparsity: the sparsity rule of {name!r} could not "
                f"read its arguments ({type(err).__name__}: {err}); every "
                f"output is taken to depend on all of its inputs.",
                SparsityWarning, stacklevel=2)

    def warn_unknown(self, name: str) -> None:
        if name not in self.unknown:
            self.unknown.append(name)
            warnings.warn(
                f"hessian_sparsity: no sparsity rule for the primitive "
                f"{name!r}; every output is taken to depend on all of its "
                f"inputs (a correct but possibly dense pattern). Register a "
                f"rule with refold.sensitivity.register_sparsity_rule.",
                SparsityWarning, stacklevel=2)


_ACTIVE: List[TraceContext] = []


class _SparsityNode(Node):
    __slots__ = ["dep"]

    def __init__(self, value, fun, args, kwargs, parent_argnums, parents):
        from refold.sensitivity._sparsity_rules import apply_rule
        ctx = _ACTIVE[-1]
        deps = [parent.dep for parent in parents]
        self.dep = apply_rule(ctx, fun, value, args, kwargs,
                              parent_argnums, deps)

    def initialize_root(self, dep):
        self.dep = dep


def _register_notrace() -> None:
    # Functions with a zero derivative (floor, comparisons, argmax, ...)
    # return plain values under this trace, as under autograd's own.
    from autograd.core import VJPNode
    import autograd.numpy  # noqa: F401 - registers them for VJPNode
    notrace_primitives[_SparsityNode] = notrace_primitives[VJPNode]


def run_trace(fun: Callable, x: np.ndarray, args: tuple,
              want_hessian: bool):
    """Trace ``fun(x, *args)``; returns (output dep or None, output value,
    context)."""
    if _SparsityNode not in notrace_primitives:
        _register_notrace()
    dim = x.size
    ctx = TraceContext(dim, want_hessian)
    rows = sp.vstack([empty_rows(dim), sp.identity(dim, format="csr")],
                     format="csr")
    root = _SparsityNode.new_root(
        Dep(rows, np.arange(1, dim + 1).reshape(x.shape)))
    _ACTIVE.append(ctx)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", "Output seems independent")
            value, end_node = trace(root, lambda z: fun(z, *args), x)
    finally:
        _ACTIVE.pop()
    dep: Optional[Any] = None if end_node is None else end_node.dep
    return dep, value, ctx
