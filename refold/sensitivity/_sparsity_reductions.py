r"""Dependency rules of reductions and along-axis maps (private).

Part of the tracer behind :func:`refold.sensitivity.sparsity.hessian_sparsity`
(see :mod:`._sparsity_trace`):

* reductions (``sum``, ``mean``, ``max``, ``min``: linear unions; ``prod``,
  ``var``, ``std``, ``logsumexp``: nonlinear, every pair within a reduced
  group) over any ``axis`` (negative, tuples, ``None``), with ``keepdims``;
* along-axis maps keeping the shape: ``cumsum``/``cumprod`` (each element
  depends exactly on its prefix; lines too long for that take the whole
  line), ``sort``, ``partition``, ``softmax`` (the whole line);
* ``diff`` (each element on its ``n + 1`` neighbours) and ``trace``.
"""
from __future__ import annotations

from typing import Tuple

import numpy as np
import scipy.sparse as sp

from refold.sensitivity._sparsity_trace import (
    Dep, Fallback, _ones, aggregate, make_dep, pair_union, reduce_dep)

__all__ = ["along_rule", "diff_rule", "reduction_rule", "trace_rule"]

#: Prefix pairs (``cumsum``) above which a line is taken as one union.
_MAX_PREFIX = 4_000_000


def _axes(axis, ndim: int) -> Tuple[int, ...]:
    if axis is None:
        return tuple(range(ndim))
    axis = tuple(axis) if isinstance(axis, (tuple, list)) else (axis,)
    return tuple(int(a) % ndim for a in axis) if ndim else ()


def _axis_arg(args, kwargs, position: int = 1):
    axis = kwargs.get("axis", args[position] if len(args) > position
                      else None)
    if not (axis is None or isinstance(axis, (int, np.integer, tuple,
                                              list))):
        raise Fallback
    return axis


def reduction_rule(nonlinear: bool):
    """Union over ``axis`` (every element of a group: pairs if nonlinear)."""
    def rule(ctx, fun, ans, args, kwargs, argnums, deps):
        if argnums != (0,) or not isinstance(deps[0], Dep) or isinstance(
                ans, (list, tuple)):
            raise Fallback
        dep = deps[0]
        axes = _axes(_axis_arg(args, kwargs), dep.index.ndim)
        return reduce_dep(ctx, dep, axes, np.shape(ans), nonlinear)
    return rule


def _lines(dep: Dep, axis, ans):
    """The index as (lines, length) along ``axis`` (``None``: flattened)
    and a function putting a (lines, length) index back in ``ans``'s
    shape."""
    index = dep.index
    if axis is None:
        if np.size(ans) != index.size:
            raise Fallback
        return index.reshape(1, -1), lambda arr: arr.reshape(np.shape(ans))
    if not isinstance(axis, (int, np.integer)) or np.shape(ans) != \
            index.shape:
        raise Fallback
    axis = int(axis) % index.ndim
    moved = np.moveaxis(index, axis, -1)
    shape = moved.shape

    def back(arr):
        return np.moveaxis(arr.reshape(shape), -1, axis)
    return moved.reshape(-1, shape[-1]), back


def along_rule(nonlinear: bool, prefix: bool = False):
    """Maps along ``axis`` keeping the shape: each element depends on its
    whole line (``sort``, ``softmax``) or on its prefix (``cumsum``,
    ``cumprod``; the line as a whole when the prefixes are too many)."""
    def rule(ctx, fun, ans, args, kwargs, argnums, deps):
        if argnums != (0,) or not isinstance(deps[0], Dep):
            raise Fallback
        dep = deps[0]
        name = getattr(fun, "fun", fun).__name__
        position = 2 if name == "partition" else 1
        axis = _axis_arg(args, kwargs, position)
        if name in ("sort", "partition") and "axis" not in kwargs and \
                len(args) <= position:
            axis = -1
        lines, back = _lines(dep, axis, ans)
        n_lines, length = lines.shape
        whole = aggregate(Dep(dep.rows, lines), np.repeat(
            np.arange(n_lines), length), n_lines, (n_lines,), ctx, nonlinear)
        if not prefix or n_lines * length * (length + 1) // 2 > _MAX_PREFIX:
            return Dep(whole.rows, back(np.repeat(whole.index, length)))
        row, col = np.tril_indices(length)
        line = np.repeat(np.arange(n_lines), len(row))
        out_pos = line * length + np.tile(row, n_lines)
        idx = lines[line, np.tile(col, n_lines)]
        keep = idx > 0
        incidence = sp.csr_matrix((np.ones(int(keep.sum())),
                                   (out_pos[keep], idx[keep])),
                                  shape=(n_lines * length, dep.rows.shape[0]))
        got = make_dep(_ones(incidence @ dep.rows),
                       np.arange(n_lines * length), (n_lines * length,), ctx)
        return Dep(got.rows, back(got.index))
    return rule


def diff_rule(ctx, fun, ans, args, kwargs, argnums, deps):
    """``diff(a, n, axis)``: element ``i`` depends on ``a[i:i + n + 1]``."""
    if argnums != (0,) or not isinstance(deps[0], Dep) or \
            {"prepend", "append"} & set(kwargs) or len(args) > 3:
        raise Fallback
    dep = deps[0]
    n = int(kwargs.get("n", args[1] if len(args) > 1 else 1))
    axis = int(kwargs.get("axis", args[2] if len(args) > 2 else -1))
    index = np.moveaxis(dep.index, axis, -1)
    length = index.shape[-1] - n
    if n < 1 or length < 1:
        raise Fallback
    out = Dep(dep.rows, index[..., :length])
    for k in range(1, n + 1):
        out = pair_union(ctx, out.rows, out.index, dep.rows,
                         index[..., k:k + length], out.index.shape)[0]
    result = Dep(out.rows, np.moveaxis(out.index, -1, axis))
    if result.index.shape != np.shape(ans):
        raise Fallback
    return result


def trace_rule(ctx, fun, ans, args, kwargs, argnums, deps):
    if argnums != (0,):
        raise Fallback
    offset = kwargs.get("offset", args[1] if len(args) > 1 else 0)
    axis1 = kwargs.get("axis1", args[2] if len(args) > 2 else 0)
    axis2 = kwargs.get("axis2", args[3] if len(args) > 3 else 1)
    diag = np.diagonal(deps[0].index, offset, axis1, axis2)
    return reduce_dep(ctx, Dep(deps[0].rows, diag), (diag.ndim - 1,),
                      np.shape(ans))
