r"""Dependency rules of contractions and linear algebra (private).

Part of the tracer behind :func:`refold.sensitivity.sparsity.hessian_sparsity`
(see :mod:`._sparsity_trace`).  ``dot``, ``matmul``, ``inner``, ``outer``,
``tensordot`` and ``einsum`` are all written as one einsum over labelled
axes, with numpy's broadcasting of length-1 axes (batch axes of ``matmul``,
``einsum``'s ellipsis) and repeated labels (diagonals, ``'ii->'``) taken
exactly:

* **one traced operand** -- the contraction is linear in it.  The constant
  operands' zeros are used: their nonzero pattern is contracted into one
  boolean array and every output element depends exactly on the traced
  elements it meets through a nonzero (a one-hot design ``Z @ u`` stays
  sparse).  A constant that is mostly nonzero (more than half) is taken as
  dense -- each output element then depends on the union over the
  contracted labels, exact for a constant without zeros -- and so is one
  too large to enumerate.
* **several traced operands** -- multilinear: each output element depends on
  what it meets of every operand through the constants' nonzeros (the other
  traced operands taken as nonzero everywhere), and each pair of operands
  couples the elements that meet in a product: through the nonzeros of the
  constants
  (enumerated, so a quadratic form ``einsum('i,ij,j', x, Q, x)`` with a
  banded ``Q`` is banded), or -- constants mostly nonzero or too large --
  the elements that share the values of their common labels.

Linear algebra (``inv``, ``det``, ``slogdet``, ``cholesky``, ``eigh``,
``solve``...) works matrix by matrix on stacked ``(..., n, n)`` arrays: each
output matrix depends on all of its own input matrix, nonlinearly.
``solve(a, b)`` with a constant ``a`` is linear in ``b`` column by column.
"""
from __future__ import annotations

import string
from typing import Dict, List, Optional, Tuple

import numpy as np
import scipy.sparse as sp

from refold.sensitivity._sparsity_trace import (
    Dep, Fallback, _ones, make_dep, pair_union, reduce_dep)

__all__ = ["adjoint_rule", "batched_linalg_rule", "contract",
           "contraction_rule", "norm_rule", "solve_rule"]

#: Enumerated (nonzero, free index) pairs above which a constant operand's
#: zeros are ignored (the result is then a superset, never wrong).
MAX_ENUMERATION = 4_000_000
#: Constants with a larger fraction of nonzeros are taken as dense (their
#: few zeros would cost more to enumerate than they save).
MAX_ENUMERATED_DENSITY = 0.5
#: Size of a combined constant above which constants are taken dense.
MAX_CONSTANT_COMBINATION = 10_000_000

_LETTERS = string.ascii_letters


# ----------------------------------------------------------------------
# Labels
# ----------------------------------------------------------------------
def _parse_einsum(spec: str, shapes: List[tuple]):
    spec = spec.replace(" ", "")
    ins, arrow, out = spec.partition("->")
    subs = ins.split(",")
    if len(subs) != len(shapes):
        raise Fallback
    used = set(spec) - set(".,->")
    pool = [c for c in _LETTERS if c not in used]
    n_ell = max((len(s) - (len(sub) - 3) if "..." in sub else 0)
                for sub, s in zip(subs, shapes))
    ell = pool[:n_ell]
    labels = []
    for sub, shape in zip(subs, shapes):
        if "..." in sub:
            head, tail = sub.split("...")
            k = len(shape) - len(head) - len(tail)
            labels.append(list(head) + ell[n_ell - k:] + list(tail))
        else:
            labels.append(list(sub))
        if len(labels[-1]) != len(shape):
            raise Fallback
    if not arrow:
        counts: Dict[str, int] = {}
        for lab in labels:
            for c in lab:
                counts[c] = counts.get(c, 0) + 1
        out_labels = ell + sorted(c for c, n in counts.items()
                                  if n == 1 and c not in ell)
    else:
        head, _, tail = out.partition("...")
        out_labels = list(head) + (ell if "..." in out else []) + list(tail)
    return labels, out_labels


def _matmul_labels(a: tuple, b: tuple):
    na, nb = len(a), len(b)
    if na == 1 and nb == 1:
        return ["k"], ["k"], []
    if na == 1:
        batch = [_LETTERS[3 + i] for i in range(nb - 2)]
        return ["k"], batch + ["k", "m"], batch + ["m"]
    if nb == 1:
        batch = [_LETTERS[3 + i] for i in range(na - 2)]
        return batch + ["n", "k"], ["k"], batch + ["n"]
    n_batch = max(na, nb) - 2
    batch = [_LETTERS[3 + i] for i in range(n_batch)]
    la = batch[n_batch - (na - 2):] + ["n", "k"]
    lb = batch[n_batch - (nb - 2):] + ["k", "m"]
    return la, lb, batch + ["n", "m"]


def contraction_labels(name: str, args: tuple, shapes: List[tuple]):
    """(operand positions in args, labels per operand, output labels)."""
    if name == "einsum":
        if not isinstance(args[0], str):
            raise Fallback
        labels, out = _parse_einsum(args[0], shapes[1:])
        return list(range(1, len(args))), labels, out
    a, b = shapes[0], shapes[1]
    na, nb = len(a), len(b)
    if name == "matmul":
        la, lb, out = _matmul_labels(a, b)
        return [0, 1], [la, lb], out
    la = [_LETTERS[i] for i in range(na)]
    lb = [_LETTERS[na + i] for i in range(nb)]
    if name == "dot":
        lb[-2 if nb > 1 else 0] = la[-1]
        out = la[:-1] + [c for c in lb if c != la[-1]]
    elif name == "inner":
        lb[-1] = la[-1]
        out = la[:-1] + lb[:-1]
    elif name == "tensordot":
        axes = args[2] if len(args) > 2 else 2
        if isinstance(axes, (int, np.integer)):
            ax_a = list(range(na - int(axes), na))
            ax_b = list(range(int(axes)))
        else:
            ax_a, ax_b = ([x] if np.ndim(x) == 0 else list(x) for x in axes)
        ax_a = [int(i) % na for i in ax_a]
        ax_b = [int(j) % nb for j in ax_b]
        for i, j in zip(ax_a, ax_b):
            lb[j] = la[i]
        out = [la[i] for i in range(na) if i not in ax_a] + \
            [lb[j] for j in range(nb) if j not in ax_b]
    elif name == "outer":
        la, lb, out = ["i"], ["j"], ["i", "j"]
    else:  # pragma: no cover - guarded by the table
        raise Fallback
    return [0, 1], [la, lb], out


def _undiagonal(labels: List[str], arr: np.ndarray):
    """Take the diagonal of repeated labels (``'ii'`` -> ``'i'``)."""
    uniq = list(dict.fromkeys(labels))
    if len(uniq) == len(labels):
        return labels, arr
    sub = "".join(_LETTERS[uniq.index(c)] for c in labels)
    res = "".join(_LETTERS[i] for i in range(len(uniq)))
    return uniq, np.einsum(f"{sub}->{res}", arr)


# ----------------------------------------------------------------------
# Helpers on labelled dependency arrays
# ----------------------------------------------------------------------
def reduce_to_labels(ctx, dep: Dep, labels: List[str], keep):
    """Union over the labels not in ``keep``; returns (dep, labels kept)."""
    axes = tuple(i for i, c in enumerate(labels) if c not in keep)
    kept = [c for c in labels if c in keep]
    if axes:
        shape = tuple(n for i, n in enumerate(dep.index.shape)
                      if i not in axes)
        dep = reduce_dep(ctx, dep, axes, shape)
    return dep, kept


def to_output(dep: Dep, labels: List[str], out: List[str], dims) -> Dep:
    """Broadcast a dep over ``labels`` (all in ``out``) to the output."""
    perm = sorted(range(len(labels)), key=lambda i: out.index(labels[i]))
    arr = np.transpose(dep.index, perm) if labels else dep.index
    shape = [dims[c] if c in labels else 1 for c in out]
    arr = np.reshape(arr, shape)
    return Dep(dep.rows, np.broadcast_to(arr, tuple(dims[c] for c in out)))


def _cross_pairs(ctx, first, second) -> None:
    """Hessian pairs between two operands of a multilinear contraction:
    elements that meet in a product share the values of common labels."""
    (la, da), (lb, db) = first, second
    shared = [c for c in la if c in lb]
    ra, ka = reduce_to_labels(ctx, da, la, shared)
    rb, kb = reduce_to_labels(ctx, db, lb, shared)
    ib = np.transpose(rb.index, [kb.index(c) for c in ka]) if ka else \
        rb.index
    _, left, right, _ = pair_union(ctx, ra.rows, ra.index, rb.rows, ib,
                                   ra.index.shape)
    ctx.add_pairs(left, right)


def _cross_pairs_through_constants(ctx, first, second, consts,
                                   dims) -> bool:
    """Exact Hessian pairs between two traced operands that meet only
    through the nonzeros of the constants (``einsum('i,ij,j', x, Q, x)``
    with a banded ``Q`` couples neighbours only).  False when the
    constants are mostly nonzero or too large to enumerate."""
    (la, da), (lb, db) = first, second
    labels = list(dict.fromkeys(la + lb))
    combined = _combine_constants(consts, set(labels), dims)
    if combined is None or combined[1].mean() > MAX_ENUMERATED_DENSITY:
        return False
    c_labels, nonzero = combined
    free = [c for c in labels if c not in c_labels]
    n_free = int(np.prod([dims[c] for c in free], dtype=np.int64))
    nz = np.nonzero(nonzero) if c_labels else ()
    nnz = len(nz[0]) if c_labels else int(bool(nonzero))
    if nnz * n_free > MAX_ENUMERATION:
        return False
    values = {c: np.repeat(coords, n_free) for c, coords in zip(c_labels, nz)}
    if free:
        grid = np.indices([dims[c] for c in free]).reshape(len(free), -1)
        for c, row in zip(free, grid):
            values[c] = np.tile(row, nnz)
    total = nnz * n_free

    def gather(dep, lab):
        if not lab:
            return np.broadcast_to(dep.index.ravel()[:1], (total,))
        flat = np.ravel_multi_index([values[c] for c in lab],
                                    dep.index.shape)
        return dep.index.ravel()[flat]
    ia, ib = gather(da, la), gather(db, lb)
    keep = (ia > 0) & (ib > 0)
    if keep.any():
        nb = db.rows.shape[0]
        uniq = np.unique(ia[keep] * nb + ib[keep])
        ctx.add_pairs(da.rows[uniq // nb], db.rows[uniq % nb])
    return True


def _combine_constants(consts, keep: List[str], dims) -> Optional[tuple]:
    """The nonzero pattern of the constants contracted together, over their
    labels in ``keep``: (labels, boolean array), or None if too large."""
    all_labels = list(dict.fromkeys(c for lab, _ in consts for c in lab))
    size = int(np.prod([dims[c] for c in all_labels], dtype=np.int64))
    labels = [c for c in all_labels if c in keep]
    if len(consts) == 1 and len(labels) == len(consts[0][0]):
        lab, val = consts[0]
        return lab, val != 0
    if size > MAX_CONSTANT_COMBINATION or len(all_labels) > len(_LETTERS):
        return None
    code = {c: _LETTERS[i] for i, c in enumerate(all_labels)}
    subs = ",".join("".join(code[c] for c in lab) for lab, _ in consts)
    spec = subs + "->" + "".join(code[c] for c in labels)
    ops = [(val != 0).astype(float) for _, val in consts]
    return labels, np.einsum(spec, *ops, optimize=True) > 0


def _enumerate_incidence(ctx, dep: Dep, t_labels, nonzero: np.ndarray,
                         c_labels, out, dims, out_shape) -> Optional[Dep]:
    """Exact first-order deps of a contraction linear in one traced operand,
    from the nonzeros of the combined constant; None when too large."""
    free = [c for c in t_labels if c not in c_labels]
    n_free = int(np.prod([dims[c] for c in free], dtype=np.int64))
    nz = np.nonzero(nonzero)
    nnz = len(nz[0]) if c_labels else 1
    if nnz * n_free > MAX_ENUMERATION:
        return None
    values = {}
    for c, coords in zip(c_labels, nz):
        values[c] = np.repeat(coords, n_free)
    if free:
        grid = np.indices([dims[c] for c in free]).reshape(len(free), -1)
        for c, row in zip(free, grid):
            values[c] = np.tile(row, nnz)
    total = nnz * n_free
    t_flat = np.ravel_multi_index([values[c] for c in t_labels],
                                  dep.index.shape) if t_labels else \
        np.zeros(total, dtype=np.int64)
    o_flat = np.ravel_multi_index([values[c] for c in out], out_shape) \
        if out else np.zeros(total, dtype=np.int64)
    idx = dep.index.ravel()[t_flat]
    keep = idx > 0
    n_out = int(np.prod(out_shape, dtype=np.int64))
    incidence = sp.csr_matrix((np.ones(int(keep.sum())),
                               (o_flat[keep], idx[keep])),
                              shape=(n_out, dep.rows.shape[0]))
    return make_dep(_ones(incidence @ dep.rows), np.arange(n_out),
                    out_shape, ctx)


# ----------------------------------------------------------------------
# The contraction rule
# ----------------------------------------------------------------------
def _label_operands(name, args, kwargs, argnums, deps):
    """(labels, Dep or constant array) per operand, and the output labels."""
    vals = list(args)
    if "axes" in kwargs:
        vals = vals[:2] + [kwargs["axes"]]
    deps = list(deps)
    if name == "outer":
        vals = [np.ravel(v) if k not in argnums else v
                for k, v in enumerate(vals)]
        deps = [Dep(d.rows, d.index.ravel()) for d in deps]
    shapes = [deps[argnums.index(k)].index.shape if k in argnums
              else np.shape(val) for k, val in enumerate(vals)]
    positions, labels, out = contraction_labels(name, vals, shapes)
    operands = [(lab, deps[argnums.index(pos)] if pos in argnums
                 else np.asarray(vals[pos]))
                for pos, lab in zip(positions, labels)]
    return operands, out


def _prepare(operands):
    """Diagonals taken, operands broadcast to common label lengths;
    returns (operands, label lengths)."""
    undiag = []
    for lab, item in operands:
        if isinstance(item, Dep):
            lab, index = _undiagonal(lab, item.index)
            undiag.append((lab, Dep(item.rows, index)))
        else:
            undiag.append(_undiagonal(lab, item))
    sizes: Dict[str, set] = {}
    for lab, item in undiag:
        shape = item.index.shape if isinstance(item, Dep) else item.shape
        if len(shape) != len(lab):
            raise Fallback
        for c, n in zip(lab, shape):
            sizes.setdefault(c, set()).add(int(n))
    dims = {}
    for c, ns in sizes.items():
        big = ns - {1}
        if len(big) > 1:
            raise Fallback
        dims[c] = big.pop() if big else 1
    full = []
    for lab, item in undiag:
        target = tuple(dims[c] for c in lab)
        if isinstance(item, Dep):
            full.append((lab, Dep(item.rows,
                                  np.broadcast_to(item.index, target))))
        else:
            full.append((lab, np.broadcast_to(item, target)))
    return full, dims


def _through_constants(ctx, lab, dep: Dep, consts, out, dims,
                       out_shape) -> Dep:
    """The output's dependencies on one traced operand (the others taken as
    nonzero everywhere): exact through the constants' nonzeros when they
    are sparse enough to enumerate, else the union over the contracted
    labels (exact when the constants have no zeros)."""
    combined = None
    if consts:
        combined = _combine_constants(consts, set(lab) | set(out), dims)
    if combined is not None and not combined[0] and \
            not combined[1].any():   # a zero scalar constant
        return Dep(dep.rows, np.zeros(out_shape, dtype=np.int64))
    if combined is not None and combined[0] and \
            combined[1].mean() <= MAX_ENUMERATED_DENSITY:
        # Output labels of other traced operands only: broadcast after.
        sub = [c for c in out if c in lab or c in combined[0]]
        got = _enumerate_incidence(ctx, dep, lab, combined[1], combined[0],
                                   sub, dims, tuple(dims[c] for c in sub))
        if got is not None:
            return to_output(got, sub, out, dims)
    red, kept = reduce_to_labels(ctx, dep, lab, out)
    return to_output(red, kept, out, dims)


def contract(ctx, ans, operands, out) -> Dep:
    """The output dep of ``einsum`` over labelled operands (labels, Dep or
    constant array) to the output labels ``out``."""
    operands, dims = _prepare(operands)
    if any(c not in dims for c in out):
        raise Fallback
    out_shape = tuple(dims[c] for c in out)
    if out_shape != np.shape(ans):
        raise Fallback
    traced = [(lab, item) for lab, item in operands
              if isinstance(item, Dep)]
    consts = [(lab, item) for lab, item in operands
              if not isinstance(item, Dep)]
    per_operand = [_through_constants(ctx, lab, dep, consts, out, dims,
                                      out_shape) for lab, dep in traced]
    result = per_operand[0]
    for other in per_operand[1:]:
        result = pair_union(ctx, result.rows, result.index, other.rows,
                            other.index, out_shape)[0]
    for i in range(len(traced)):
        for j in range(i + 1, len(traced)):
            if not (consts and _cross_pairs_through_constants(
                    ctx, traced[i], traced[j], consts, dims)):
                _cross_pairs(ctx, traced[i], traced[j])
    return result


def contraction_rule(name: str):
    """Rule of ``dot``/``matmul``/``einsum``/``tensordot``/``inner``/
    ``outer`` (arguments with a 0-d operand are handled as products)."""
    def rule(ctx, fun, ans, args, kwargs, argnums, deps):
        if any(not isinstance(dep, Dep) for dep in deps) or set(
                kwargs) - {"axes", "optimize"}:
            raise Fallback
        operands, out = _label_operands(name, args, kwargs, list(argnums),
                                        deps)
        return contract(ctx, ans, operands, out)
    return rule


def adjoint_rule(name: str, which: int):
    """autograd's ``dot_adjoint_0/1`` and ``tensordot_adjoint_0/1`` (met
    when a traced function differentiates itself): the adjoint of operand
    ``which`` of ``dot(A, B)`` / ``tensordot(A, B, axes)``, an einsum of
    the other operand and the output's cotangent ``G``."""
    def rule(ctx, fun, ans, args, kwargs, argnums, deps):
        if any(not isinstance(dep, Dep) for dep in deps) or kwargs:
            raise Fallback
        other, grad = args[0], args[1]
        if name == "dot":
            shapes = [tuple(args[2][0]), tuple(args[3][0])]
            extra: tuple = ()
        else:
            shapes = [np.shape(ans), np.shape(other)] if which == 0 else \
                [np.shape(other), np.shape(ans)]
            extra = (args[2],)
        if min(len(shapes[0]), len(shapes[1])) == 0:
            raise Fallback
        _, labels, out = contraction_labels(name, (None, None) + extra,
                                            shapes)
        items = [deps[argnums.index(k)] if k in argnums else
                 np.asarray(args[k]) for k in (0, 1)]
        operands = [(labels[1 - which], items[0]), (out, items[1])]
        return contract(ctx, ans, operands, labels[which])
    return rule


# ----------------------------------------------------------------------
# Linear algebra, matrix by matrix
# ----------------------------------------------------------------------
def _broadcast_batch(dep: Dep, batch: tuple, out_shape: tuple) -> Dep:
    """A dep over the batch shape, broadcast to an output of
    ``batch + core`` shape."""
    extra = len(out_shape) - len(batch)
    index = dep.index.reshape(dep.index.shape + (1,) * extra)
    return Dep(dep.rows, np.broadcast_to(index, out_shape))


def batched_linalg_rule(ctx, fun, ans, args, kwargs, argnums, deps):
    """``f(a)`` of stacked ``(..., n, m)`` matrices: each output matrix (or
    each entry of the batch of scalars) depends on all of its own input
    matrix, nonlinearly."""
    if argnums != (0,) or not isinstance(deps[0], Dep):
        raise Fallback
    dep = deps[0]
    shape = dep.index.shape
    if len(shape) < 2:
        raise Fallback
    batch = shape[:-2]
    outs = list(ans) if isinstance(ans, (list, tuple)) else [ans]
    if any(np.shape(o)[:len(batch)] != batch for o in outs):
        raise Fallback
    ndim = len(shape)
    red = reduce_dep(ctx, dep, (ndim - 2, ndim - 1), batch, nonlinear=True)
    res = [_broadcast_batch(red, batch, np.shape(o)) for o in outs]
    return res if isinstance(ans, (list, tuple)) else res[0]


def solve_rule(ctx, fun, ans, args, kwargs, argnums, deps):
    """``solve(a, b)`` (numpy, batched) and ``solve_triangular(a, b)``:
    column ``j`` of each solution depends on all of its matrix ``a``
    (nonlinearly) and on column ``j`` of ``b`` (linearly)."""
    if any(not isinstance(dep, Dep) for dep in deps) or len(args) < 2:
        raise Fallback
    a_shape, b_shape = np.shape(args[0]), np.shape(args[1])
    vector = len(b_shape) == 1
    if len(a_shape) < 2 or (len(a_shape) > 2 and vector):
        raise Fallback
    b_mat = b_shape + (1,) if vector else b_shape
    batch = np.broadcast_shapes(a_shape[:-2], b_mat[:-2])
    out_shape = batch + (a_shape[-1], b_mat[-1])
    if int(np.prod(out_shape)) != int(np.size(ans)):
        raise Fallback
    parts = []
    if 0 in argnums:
        dep = deps[argnums.index(0)]
        nd = len(a_shape)
        red = reduce_dep(ctx, dep, (nd - 2, nd - 1), a_shape[:-2],
                         nonlinear=True)
        index = red.index.reshape(a_shape[:-2] + (1,))
        parts.append(Dep(red.rows,
                         np.broadcast_to(index, batch + (b_mat[-1],))))
    if 1 in argnums:
        dep = deps[argnums.index(1)]
        index = dep.index.reshape(b_mat)
        nd = len(b_mat)
        cols = reduce_dep(ctx, Dep(dep.rows, index), (nd - 2,),
                          b_mat[:-2] + (b_mat[-1],))
        parts.append(Dep(cols.rows, np.broadcast_to(cols.index,
                                                    batch + (b_mat[-1],))))
    if len(parts) == 2:
        merged, left, right, _ = pair_union(
            ctx, parts[0].rows, parts[0].index, parts[1].rows,
            parts[1].index, batch + (b_mat[-1],))
        ctx.add_pairs(left, right)
    else:
        merged = parts[0]
    index = np.broadcast_to(merged.index[..., None, :], out_shape)
    return Dep(merged.rows, index.reshape(np.shape(ans)))


def norm_rule(ctx, fun, ans, args, kwargs, argnums, deps):
    """``norm(x, ord, axis, keepdims)``: every norm (vector or matrix, any
    ``ord``) of a slice depends nonlinearly on all of the slice."""
    if argnums != (0,) or not isinstance(deps[0], Dep):
        raise Fallback
    dep = deps[0]
    axis = kwargs.get("axis", args[2] if len(args) > 2 else None)
    ndim = dep.index.ndim
    if axis is None:
        axes: Tuple[int, ...] = tuple(range(ndim))
    else:
        axes = tuple(int(a) % ndim for a in (
            axis if isinstance(axis, (tuple, list)) else (axis,)))
    return reduce_dep(ctx, dep, axes, np.shape(ans), nonlinear=True)
