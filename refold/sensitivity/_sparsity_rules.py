r"""Dependency-propagation rules of autograd's primitives (private).

Each rule maps the :class:`~._sparsity_trace.Dep` of a primitive's traced
inputs to the ``Dep`` of its output and adds its second-order couplings to
the trace's Hessian accumulator.  Rules are found by the primitive object
(user registrations, :func:`register_rule`) or by the raw function's name:

* ufuncs are elementwise with broadcasting: linear (``add``, ``negative``,
  ``absolute``, ``maximum``...), bilinear (``multiply``: only cross pairs),
  ``divide`` (nonlinear in the denominator only) or nonlinear (every other
  ufunc, scipy.special's included);
* selections (indexing, reshape, transpose, concatenate, ``where``,
  ``diag``, ``tril``...) are evaluated on the integer ``index`` array itself,
  so they are exact whatever their arguments;
* reductions (``sum``, ``mean``, ``max``; nonlinear ``prod``, ``var``,
  ``logsumexp``) take the union over each reduced group;
* ``dot``/``matmul``/``einsum``/``tensordot``/``inner``/``outer`` become one
  einsum: with one traced operand and one constant, the constant's zeros are
  used (a one-hot design ``Z @ u`` stays sparse); otherwise operands are
  contracted over their labels (multilinear: pairs only across operands);
* linear algebra and anything unknown: every output depends on every traced
  input (nonlinear), an unknown primitive with one warning.
"""
from __future__ import annotations

import string
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np
import scipy.sparse as sp

from refold.sensitivity._sparsity_trace import (
    Dep, TraceContext, _ones, aggregate, broadcast_dep, constant_dep,
    make_dep, unique_inverse)

__all__ = ["apply_rule", "register_rule", "RULE_KINDS"]

#: Entries of one einsum incidence above which constants are taken dense.
_MAX_ENUMERATION = 20_000_000


class _Fallback(Exception):
    """A rule cannot handle these arguments: use the conservative rule."""


# ----------------------------------------------------------------------
# Conservative rules
# ----------------------------------------------------------------------
def _flat_deps(deps) -> List[Dep]:
    out = []
    for dep in deps:
        out.extend(_flat_deps(dep) if isinstance(dep, (list, tuple))
                   else [dep])
    return out


def _union_of(deps, dim) -> sp.csr_matrix:
    total = sp.csr_matrix((1, dim))
    for dep in _flat_deps(deps):
        total = total + dep.union_all()
    return _ones(total)


def _shaped_like(ans, row: sp.csr_matrix):
    if isinstance(ans, (list, tuple)):
        return [_shaped_like(item, row) for item in ans]
    return broadcast_dep(row, np.shape(ans))


def _conservative(nonlinear: bool):
    def rule(ctx, fun, ans, args, kwargs, argnums, deps):
        union = _union_of(deps, ctx.dim)
        if nonlinear:
            ctx.add_pairs(union, union)
        return _shaped_like(ans, union)
    return rule


_CONSERVATIVE = _conservative(True)


# ----------------------------------------------------------------------
# Elementwise
# ----------------------------------------------------------------------
def _pair_union(ctx: TraceContext, a_rows, ia, b_rows, ib, shape):
    """Union of two broadcast dependency arrays, by distinct row pairs."""
    nb = b_rows.shape[0]
    uniq, inverse = unique_inverse(ia.ravel() * nb + ib.ravel(),
                                   a_rows.shape[0] * nb)
    left, right = a_rows[uniq // nb], b_rows[uniq % nb]
    union = _ones(left + right)
    return make_dep(union, inverse, shape, ctx), left, right, union


def _elementwise(kind: str):
    """``kind``: 'linear', 'bilinear', 'divide', 'nonlinear' or 'zero'."""
    def rule(ctx, fun, ans, args, kwargs, argnums, deps):
        shape = np.shape(ans)
        if kind == "zero":
            return constant_dep(shape, ctx.dim)
        if isinstance(ans, (list, tuple)) or any(
                not isinstance(dep, Dep) for dep in deps):
            raise _Fallback
        idx = [np.broadcast_to(dep.index, shape) for dep in deps]
        if len(deps) == 1:
            dep = Dep(deps[0].rows, idx[0])
            if kind == "nonlinear" or (kind == "divide" and argnums[0] == 1):
                used = dep.used_rows()
                ctx.add_pairs(used, used)
            return dep
        out, left, right, union = _pair_union(
            ctx, deps[0].rows, idx[0], deps[1].rows, idx[1], shape)
        for dep, more in zip(deps[2:], idx[2:]):
            out, _, _, union = _pair_union(ctx, out.rows, out.index,
                                           dep.rows, more, shape)
        if kind == "nonlinear" or len(deps) > 2 and kind != "linear":
            ctx.add_pairs(union, union)
        elif kind == "bilinear":
            ctx.add_pairs(left, right)
        elif kind == "divide":
            ctx.add_pairs(left, right)
            ctx.add_pairs(right, right)
        return out
    return rule


# ----------------------------------------------------------------------
# Selections: evaluated on the index arrays
# ----------------------------------------------------------------------
def _selection(data_args: Optional[Callable[[tuple], Sequence[int]]] = None):
    def rule(ctx, fun, ans, args, kwargs, argnums, deps):
        data = list(argnums) if data_args is None else list(data_args(args))
        if not set(argnums) <= set(data) or any(
                not isinstance(dep, Dep) for dep in deps):
            raise _Fallback
        if len(deps) == 1:
            rows, offsets = deps[0].rows, [0]
        else:
            rows = sp.vstack([dep.rows for dep in deps], format="csr")
            offsets = np.cumsum([0] + [dep.rows.shape[0] for dep in deps])
        new_args = list(args)
        for pos in data:
            if pos in argnums:
                k = argnums.index(pos)
                new_args[pos] = deps[k].index + offsets[k]
            else:
                new_args[pos] = np.zeros(np.shape(args[pos]), dtype=np.int64)
        out = fun.fun(*new_args, **kwargs)
        if isinstance(ans, (list, tuple)):
            if len(out) != len(ans):
                raise _Fallback
            return [_index_dep(rows, o, a) for o, a in zip(out, ans)]
        return _index_dep(rows, out, ans)
    return rule


def _index_dep(rows, out, ans) -> Dep:
    out = np.asarray(out)
    if out.shape != np.shape(ans):
        raise _Fallback
    return Dep(rows, np.rint(out.real).astype(np.int64)
               if out.dtype.kind in "fc" else out.astype(np.int64))


def _container_take(ctx, fun, ans, args, kwargs, argnums, deps):
    dep = deps[0]
    if argnums != (0,) or not isinstance(dep, (list, tuple)):
        raise _Fallback
    return dep[args[1]]


# ----------------------------------------------------------------------
# Reductions
# ----------------------------------------------------------------------
def _axes(axis, ndim: int) -> Tuple[int, ...]:
    if axis is None:
        return tuple(range(ndim))
    axis = tuple(axis) if isinstance(axis, (tuple, list)) else (axis,)
    return tuple(int(a) % ndim for a in axis) if ndim else ()


def _groups(shape: tuple, axes: Tuple[int, ...]):
    kept = tuple(1 if i in axes else s for i, s in enumerate(shape))
    n_out = int(np.prod(kept, dtype=np.int64))
    ids = np.broadcast_to(np.arange(n_out).reshape(kept), shape)
    return ids, n_out


def _reduce_dep(ctx, dep: Dep, axes, out_shape, nonlinear=False) -> Dep:
    ids, n_out = _groups(dep.index.shape, axes)
    if n_out != int(np.prod(out_shape, dtype=np.int64)):
        raise _Fallback
    return aggregate(dep, ids, n_out, out_shape, ctx, nonlinear)


def _reduction(nonlinear: bool, along: bool = False):
    """Reduce over ``axis`` (``along``: the result keeps the shape and each
    element depends on its whole line, e.g. ``cumsum``, ``softmax``)."""
    def rule(ctx, fun, ans, args, kwargs, argnums, deps):
        if argnums != (0,) or not isinstance(deps[0], Dep) or isinstance(
                ans, (list, tuple)):
            raise _Fallback
        dep = deps[0]
        axis = kwargs.get("axis", args[1] if len(args) > 1 else None)
        if not (axis is None or isinstance(axis, (int, np.integer, tuple,
                                                  list))):
            raise _Fallback
        shape = dep.index.shape
        axes = _axes(axis, len(shape))
        if not along:
            return _reduce_dep(ctx, dep, axes, np.shape(ans), nonlinear)
        if np.shape(ans) != shape and not (axis is None and np.ndim(ans) == 1):
            raise _Fallback
        ids, n_out = _groups(shape, axes)
        reduced = aggregate(dep, ids, n_out, (n_out,), ctx, nonlinear)
        return Dep(reduced.rows, reduced.index[ids].reshape(np.shape(ans)))
    return rule


def _trace_rule(ctx, fun, ans, args, kwargs, argnums, deps):
    if argnums != (0,):
        raise _Fallback
    offset = kwargs.get("offset", args[1] if len(args) > 1 else 0)
    axis1 = kwargs.get("axis1", args[2] if len(args) > 2 else 0)
    axis2 = kwargs.get("axis2", args[3] if len(args) > 3 else 1)
    diag = np.diagonal(deps[0].index, offset, axis1, axis2)
    return _reduce_dep(ctx, Dep(deps[0].rows, diag), (diag.ndim - 1,),
                       np.shape(ans))


# ----------------------------------------------------------------------
# Contractions (einsum and its special cases)
# ----------------------------------------------------------------------
_LETTERS = string.ascii_letters


def _parse_einsum(spec: str, shapes: List[tuple]):
    spec = spec.replace(" ", "")
    if "->" in spec:
        ins, out = spec.split("->")
    else:
        ins, out = spec, None
    subs = ins.split(",")
    if len(subs) != len(shapes):
        raise _Fallback
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
    if out is None:
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


def _contraction_labels(name: str, args: tuple, shapes: List[tuple]):
    """(operand positions in args, labels per operand, output labels)."""
    if name == "einsum":
        if not isinstance(args[0], str):
            raise _Fallback
        labels, out = _parse_einsum(args[0], shapes[1:])
        return list(range(1, len(args))), labels, out
    a, b = shapes[0], shapes[1]
    na, nb = len(a), len(b)
    letters = iter(_LETTERS)
    la = [next(letters) for _ in range(na)]
    lb = [next(letters) for _ in range(nb)]
    if name in ("dot", "matmul", "inner", "tensordot") and (
            na == 0 or nb == 0):
        raise _Fallback  # a scalar operand: handled as a product
    if name == "dot":
        lb[-2 if nb > 1 else 0] = la[-1]
        out = la[:-1] + [c for c in lb if c != la[-1]]
    elif name == "inner":
        lb[-1] = la[-1]
        out = la[:-1] + lb[:-1]
    elif name == "matmul":
        if na == 1 and nb == 1:
            lb = la[:]
            out = []
        elif na == 1:
            lb[-2] = la[0]
            out = lb[:-2] + lb[-1:]
        elif nb == 1:
            lb[0] = la[-1]
            out = la[:-1]
        else:
            if a[:-2] != b[:-2]:
                raise _Fallback
            lb[:-2] = la[:-2]
            lb[-2] = la[-1]
            out = la[:-1] + lb[-1:]
    elif name == "tensordot":
        axes = args[2] if len(args) > 2 else 2
        if isinstance(axes, (int, np.integer)):
            ax_a = list(range(na - int(axes), na))
            ax_b = list(range(int(axes)))
        else:
            ax_a, ax_b = ([x] if np.ndim(x) == 0 else list(x) for x in axes)
        for i, j in zip(ax_a, ax_b):
            lb[j % nb] = la[i % na]
        out = [la[i] for i in range(na) if i not in
               [x % na for x in ax_a]] + [lb[j] for j in range(nb) if j not in
                                          [x % nb for x in ax_b]]
    elif name == "outer":
        la, lb, out = ["i"], ["j"], ["i", "j"]
    else:  # pragma: no cover - guarded by the table
        raise _Fallback
    return [0, 1], [la, lb], out


def _reduce_to_labels(ctx, dep: Dep, labels: List[str], keep: List[str]):
    """Union over the labels not in ``keep``; returns (dep, labels kept)."""
    axes = tuple(i for i, c in enumerate(labels) if c not in keep)
    kept = [c for c in labels if c in keep]
    if axes:
        shape = tuple(dep.index.shape[i] for i in range(len(labels))
                      if i not in axes)
        dep = _reduce_dep(ctx, dep, axes, shape)
    return dep, kept


def _to_output(dep: Dep, labels: List[str], out: List[str], dims) -> Dep:
    """Broadcast a dep over ``labels`` (all in ``out``) to the output."""
    perm = sorted(range(len(labels)), key=lambda i: out.index(labels[i]))
    arr = np.transpose(dep.index, perm) if labels else dep.index
    shape = [dims[c] if c in labels else 1 for c in out]
    arr = np.reshape(arr, shape)
    return Dep(dep.rows, np.broadcast_to(arr, tuple(dims[c] for c in out)))


def _enumerate_incidence(ctx, dep: Dep, t_labels, const, c_labels, out,
                         dims, out_shape) -> Optional[Dep]:
    """Exact first-order deps of ``einsum(const, traced)`` from the
    constant's nonzeros; ``None`` when that would be too large."""
    free = [c for c in dict.fromkeys(t_labels) if c not in c_labels]
    n_free = int(np.prod([dims[c] for c in free], dtype=np.int64))
    nz = np.nonzero(const)
    nnz = len(nz[0]) if nz else 1
    if nnz * n_free > _MAX_ENUMERATION:
        return None
    values = {}
    for c, coords in zip(c_labels, nz):
        values[c] = np.repeat(coords, n_free)
    if free:
        grid = np.indices([dims[c] for c in free]).reshape(len(free), -1)
        for c, row in zip(free, grid):
            values[c] = np.tile(row, nnz)
    t_flat = np.ravel_multi_index([values[c] for c in t_labels],
                                  dep.index.shape) if t_labels else \
        np.zeros(nnz * n_free, dtype=np.int64)
    o_flat = np.ravel_multi_index([values[c] for c in out], out_shape) \
        if out else np.zeros(nnz * n_free, dtype=np.int64)
    idx = dep.index.ravel()[t_flat]
    keep = idx > 0
    n_out = int(np.prod(out_shape, dtype=np.int64))
    incidence = sp.csr_matrix((np.ones(int(keep.sum())),
                               (o_flat[keep], idx[keep])),
                              shape=(n_out, dep.rows.shape[0]))
    return make_dep(_ones(incidence @ dep.rows), np.arange(n_out),
                    out_shape, ctx)


def _contraction(name: str):
    def rule(ctx, fun, ans, args, kwargs, argnums, deps):
        if any(not isinstance(dep, Dep) for dep in deps) or set(
                kwargs) - {"axes", "optimize"}:
            raise _Fallback
        vals = list(args)
        if "axes" in kwargs:
            vals = vals[:2] + [kwargs["axes"]]
        deps = list(deps)
        if name == "outer":
            vals = [np.ravel(v) for v in vals]
            deps = [Dep(d.rows, d.index.ravel()) for d in deps]
        shapes = [np.shape(v) for v in vals]
        positions, labels, out = _contraction_labels(name, vals, shapes)
        dims: Dict[str, int] = {}
        for pos, lab in zip(positions, labels):
            for c, n in zip(lab, shapes[pos]):
                if dims.setdefault(c, n) != n:
                    raise _Fallback  # broadcasting a length-1 axis
            if len(set(lab)) != len(lab):
                raise _Fallback  # a diagonal: conservative
        out_shape = tuple(dims[c] for c in out)
        if out_shape != np.shape(ans):
            raise _Fallback
        traced = [(labels[positions.index(a)], d)
                  for a, d in zip(argnums, deps)]
        consts = [(labels[k], vals[p]) for k, p in enumerate(positions)
                  if p not in argnums]
        if len(traced) == 1 and len(consts) == 1:
            got = _enumerate_incidence(ctx, traced[0][1], traced[0][0],
                                       consts[0][1], consts[0][0], out, dims,
                                       out_shape)
            if got is not None:
                return got
        per_operand = []
        for lab, dep in traced:
            red, kept = _reduce_to_labels(ctx, dep, lab, out)
            per_operand.append(_to_output(red, kept, out, dims))
        result = per_operand[0]
        for other in per_operand[1:]:
            result = _pair_union(ctx, result.rows, result.index, other.rows,
                                 other.index, out_shape)[0]
        for i in range(len(traced)):
            for j in range(i + 1, len(traced)):
                _cross_pairs(ctx, traced[i], traced[j], dims)
        return result
    return rule


def _cross_pairs(ctx, first, second, dims) -> None:
    """Hessian pairs between two operands of a multilinear contraction:
    elements that meet in a product share the values of common labels."""
    (la, da), (lb, db) = first, second
    shared = [c for c in la if c in lb]
    ra, ka = _reduce_to_labels(ctx, da, la, shared)
    rb, kb = _reduce_to_labels(ctx, db, lb, shared)
    ib = np.transpose(rb.index, [kb.index(c) for c in ka]) if ka else \
        rb.index
    _, left, right, _ = _pair_union(ctx, ra.rows, ra.index, rb.rows, ib,
                                    ra.index.shape)
    ctx.add_pairs(left, right)


def _product_or(contraction_rule):
    """``dot``/``matmul`` with a 0-d operand are elementwise products."""
    product = _elementwise("bilinear")

    def rule(ctx, fun, ans, args, kwargs, argnums, deps):
        if min(np.ndim(args[0]), np.ndim(args[1])) == 0:
            return product(ctx, fun, ans, args, kwargs, argnums, deps)
        return contraction_rule(ctx, fun, ans, args, kwargs, argnums, deps)
    return rule


def _solve_rule(ctx, fun, ans, args, kwargs, argnums, deps):
    """``solve(a, b)``: linear in ``b`` column by column when ``a`` is
    constant; otherwise conservative."""
    if argnums != (1,) or not isinstance(deps[0], Dep):
        return _CONSERVATIVE(ctx, fun, ans, args, kwargs, argnums, deps)
    dep = deps[0]
    if dep.index.ndim == 2 and np.shape(ans) == dep.index.shape:
        cols = _reduce_dep(ctx, dep, (0,), (dep.index.shape[1],))
        return Dep(cols.rows, np.broadcast_to(cols.index[None, :],
                                              dep.index.shape))
    return _conservative(False)(ctx, fun, ans, args, kwargs, argnums, deps)


def _linear_map(matrix) -> Callable:
    """``out = matrix @ in`` along the first axis of ``in``."""
    coo = sp.coo_matrix(matrix)
    mask = coo.data != 0
    rows_a, cols_a = coo.row[mask], coo.col[mask]
    n_out, n_in = coo.shape

    def rule(ctx, fun, ans, args, kwargs, argnums, deps):
        dep = deps[0]
        if len(deps) != 1 or not isinstance(dep, Dep) or \
                dep.index.shape[:1] != (n_in,):
            raise _Fallback
        rest = int(np.prod(dep.index.shape[1:], dtype=np.int64))
        cols = np.arange(rest)
        o_flat = (rows_a[:, None] * rest + cols).ravel()
        i_flat = (cols_a[:, None] * rest + cols).ravel()
        idx = dep.index.ravel()[i_flat]
        keep = idx > 0
        incidence = sp.csr_matrix((np.ones(int(keep.sum())),
                                   (o_flat[keep], idx[keep])),
                                  shape=(n_out * rest, dep.rows.shape[0]))
        return make_dep(_ones(incidence @ dep.rows), np.arange(n_out * rest),
                        np.shape(ans), ctx)
    return rule


# ----------------------------------------------------------------------
# The tables
# ----------------------------------------------------------------------
_LINEAR_UFUNCS = {
    "add", "subtract", "negative", "positive", "conjugate", "deg2rad",
    "rad2deg", "degrees", "radians", "absolute", "fabs", "maximum",
    "minimum", "fmax", "fmin", "copysign"}
_ZERO_UFUNCS = {"sign", "floor", "ceil", "rint", "trunc", "heaviside",
                "floor_divide", "remainder", "fmod", "spacing"}
_SELECTIONS = {
    "reshape", "ravel", "transpose", "swapaxes", "moveaxis", "rollaxis",
    "squeeze", "expand_dims", "broadcast_to", "repeat", "tile", "flip",
    "fliplr", "flipud", "rot90", "roll", "diagonal", "diag", "tril", "triu",
    "take", "take_along_axis", "atleast_1d", "atleast_2d", "atleast_3d",
    "copy", "pad", "__getitem__", "real", "split", "array_split", "hsplit",
    "vsplit", "dsplit", "_unpack_tril", "_pack_tril", "asarray", "ascontiguousarray"}
_DATA_ARGS = {
    "concatenate_args": lambda args: range(1, len(args)),
    "array_from_args": lambda args: range(2, len(args)),
    "_array_from_scalar_or_array": lambda args: [2],
    "where": lambda args: [1, 2],
    "_where": lambda args: [1, 2],
}
_REDUCTIONS = {"sum": False, "mean": False, "nansum": False,
               "nanmean": False, "max": False, "min": False, "amax": False,
               "amin": False, "prod": True, "var": True, "std": True,
               "nanvar": True, "nanstd": True, "logsumexp": True}
_ALONG = {"cumsum": False, "cumprod": True, "sort": False,
          "softmax": True, "log_softmax": True}
_CONTRACTIONS = {"dot", "matmul", "einsum", "tensordot", "inner", "outer"}
_QUIET_CONSERVATIVE_MODULES = ("numpy.linalg", "scipy.linalg", "linalg")

RULE_KINDS = ("elementwise", "elementwise_linear", "zero", "selection",
              "linear", "nonlinear", "linear_map")

_REGISTRY: Dict[Any, Callable] = {}


def register_rule(primitive: Any, kind: str, matrix: Any = None) -> None:
    """Register the rule of ``primitive`` (see :data:`RULE_KINDS`)."""
    if kind == "linear_map":
        rule = _linear_map(matrix)
    else:
        rule = {"elementwise": _elementwise("nonlinear"),
                "elementwise_linear": _elementwise("linear"),
                "zero": _elementwise("zero"),
                "selection": _selection(),
                "linear": _conservative(False),
                "nonlinear": _CONSERVATIVE}[kind]
    _REGISTRY[primitive] = rule


def _rule_by_name(raw: Any) -> Optional[Callable]:
    name = getattr(raw, "__name__", "")
    module = getattr(raw, "__module__", "") or ""
    if isinstance(raw, np.ufunc):
        if name == "matmul":
            return _product_or(_contraction("matmul"))
        if raw.nout != 1:
            return None
        if name in _LINEAR_UFUNCS:
            return _elementwise("linear")
        if name in _ZERO_UFUNCS:
            return _elementwise("zero")
        if name == "multiply":
            return _elementwise("bilinear")
        if name in ("divide", "true_divide"):
            return _elementwise("divide")
        return _elementwise("nonlinear")
    if name in _CONTRACTIONS:
        rule = _contraction(name)
        return _product_or(rule) if name in ("dot", "inner") else rule
    if name in _SELECTIONS:
        return _selection()
    if name in _DATA_ARGS:
        return _selection(_DATA_ARGS[name])
    if name in _REDUCTIONS:
        return _reduction(_REDUCTIONS[name])
    if name in _ALONG:
        return _reduction(_ALONG[name], along=True)
    if name == "clip":
        return _elementwise("linear")
    if name in ("polygamma", "multigammaln"):
        return _elementwise("nonlinear")
    if name == "trace":
        return _trace_rule
    if name == "container_take":
        return _container_take
    if name in ("solve", "solve_triangular"):
        return _solve_rule
    if module.startswith("scipy.stats._distn") and name in (
            "logpdf", "pdf", "cdf", "logcdf", "sf", "logsf", "ppf"):
        return _elementwise("nonlinear")
    if any(module.startswith(m) or m in module.split(".")
           for m in _QUIET_CONSERVATIVE_MODULES):
        return _CONSERVATIVE
    return None


_BY_RAW: Dict[Any, Optional[Callable]] = {}


def apply_rule(ctx, fun, ans, args, kwargs, argnums, deps):
    """The output dep of one primitive call (conservative when unsure)."""
    rule = _REGISTRY.get(fun)
    raw = getattr(fun, "fun", fun)
    if rule is None:
        try:
            rule = _BY_RAW[raw]
        except (KeyError, TypeError):
            rule = _rule_by_name(raw)
            try:
                _BY_RAW[raw] = rule
            except TypeError:  # pragma: no cover - unhashable raw
                pass
    if rule is None:
        ctx.warn_unknown(getattr(raw, "__qualname__", repr(raw)))
        rule = _CONSERVATIVE
    try:
        return rule(ctx, fun, ans, args, kwargs, tuple(argnums), deps)
    except _Fallback:
        return _CONSERVATIVE(ctx, fun, ans, args, kwargs, argnums, deps)
