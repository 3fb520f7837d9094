r"""Dependency-propagation rules of autograd's primitives (private).

Each rule maps the :class:`~._sparsity_trace.Dep` of a primitive's traced
inputs to the ``Dep`` of its output and adds its second-order couplings to
the trace's Hessian accumulator.  Rules are found by the primitive object
(user registrations, :func:`register_rule`) or by the raw function's name:

* **elementwise ufuncs** with broadcasting: linear (``add``, ``negative``,
  piecewise-linear ``absolute``/``maximum``/``clip``...: no couplings),
  bilinear (``multiply``: only pairs across its operands; a constant
  operand's zeros make those outputs constant), ``divide`` (nonlinear in
  the denominator only), zero-derivative (``sign``, ``floor``...) or
  nonlinear (every other ufunc, scipy.special's and scipy.stats' included);
* **selections** (indexing of every kind, reshape, transpose, concatenate,
  stack, split, ``where``, ``diag``, ``tril``, ``pad``, ``repeat``...) are
  evaluated on the integer ``index`` array itself, so they are exact
  whatever their arguments; containers (tuples from ``split``/``slogdet``
  and their unpacking) pass their items' dependencies through;
* **reductions** (``sum``, ``mean``, ``max``, ``min``: linear unions;
  ``prod``, ``var``, ``std``, ``logsumexp``, ``norm``: nonlinear within each
  reduced group) with ``axis`` (negative, tuples) and ``keepdims``;
  along-axis maps (``cumsum``: exact prefixes; ``sort``, ``softmax``: the
  whole line) and ``diff`` (neighbours): see :mod:`._sparsity_reductions`;
* **contractions and linear algebra**: see :mod:`._sparsity_einsum`;
* autograd's own adjoint primitives (``dot_adjoint_*``, ``untake``, sums of
  cotangents), so the Jacobian of a traced ``grad`` is the Hessian pattern;
* anything else: every output depends on every traced input
  (nonlinearly) -- quietly for linear algebra, FFTs and multivariate
  densities, otherwise with one :class:`SparsityWarning` naming the
  primitive.  A rule that meets arguments it cannot read falls back to the
  same conservative answer.
"""
from __future__ import annotations

from typing import Any, Callable, Dict, List, Optional, Sequence

import numpy as np
import scipy.sparse as sp

from refold.sensitivity._sparsity_einsum import (
    adjoint_rule, batched_linalg_rule, contraction_rule, norm_rule,
    solve_rule)
from refold.sensitivity._sparsity_reductions import (
    along_rule, diff_rule, reduction_rule, trace_rule)
from refold.sensitivity._sparsity_trace import (
    Dep, Fallback, _ones, aggregate, broadcast_dep, constant_dep, make_dep,
    pair_union)

__all__ = ["apply_rule", "register_rule", "RULE_KINDS"]


# ----------------------------------------------------------------------
# Conservative rules
# ----------------------------------------------------------------------
def _flat_deps(deps) -> List[Dep]:
    if isinstance(deps, Dep):
        return [deps]
    if isinstance(deps, dict):
        deps = list(deps.values())
    out: List[Dep] = []
    if isinstance(deps, (list, tuple)):
        for dep in deps:
            out.extend(_flat_deps(dep))
    return out


def _union_of(deps, dim) -> sp.csr_matrix:
    used = [dep.used_rows() for dep in _flat_deps(deps)]
    used = [rows for rows in used if rows.shape[0]]
    if not used:
        return sp.csr_matrix((1, dim))
    return _ones(sp.csr_matrix(sp.vstack(used).sum(axis=0)))


def _shaped_like(ans, row: sp.csr_matrix):
    if isinstance(ans, (list, tuple)):
        return [_shaped_like(item, row) for item in ans]
    if isinstance(ans, dict):
        return {key: _shaped_like(val, row) for key, val in ans.items()}
    return broadcast_dep(row, np.shape(ans))


def _conservative(nonlinear: bool):
    def rule(ctx, fun, ans, args, kwargs, argnums, deps):
        union = _union_of(deps, ctx.dim)
        if nonlinear:
            ctx.add_pairs(union, union)
        return _shaped_like(ans, union)
    return rule


_CONSERVATIVE = _conservative(True)
_CONSERVATIVE_LINEAR = _conservative(False)


# ----------------------------------------------------------------------
# Elementwise
# ----------------------------------------------------------------------
def _zero_where_constant_zero(dep: Dep, const: Any, shape: tuple) -> Dep:
    """``const * traced``: outputs where ``const == 0`` are constant."""
    try:
        zero = np.asarray(const) == 0
    except Exception:  # pragma: no cover - exotic constants
        return dep
    if zero.dtype != bool or not zero.any():
        return dep
    zero = np.broadcast_to(zero, shape)
    return Dep(dep.rows, np.where(zero, 0, dep.index))


def _elementwise(kind: str):
    """``kind``: 'linear', 'bilinear', 'divide', 'nonlinear' or 'zero'."""
    def rule(ctx, fun, ans, args, kwargs, argnums, deps):
        shape = np.shape(ans)
        if kind == "zero":
            return constant_dep(shape, ctx.dim)
        if isinstance(ans, (list, tuple)) or any(
                not isinstance(dep, Dep) for dep in deps):
            raise Fallback
        if len(deps) == 1:
            dep = Dep(deps[0].rows, np.broadcast_to(deps[0].index, shape))
            if kind == "bilinear" and len(args) == 2:
                dep = _zero_where_constant_zero(dep, args[1 - argnums[0]],
                                                shape)
            if kind == "nonlinear" or (kind == "divide" and argnums[0] == 1):
                used = dep.used_rows()
                ctx.add_pairs(used, used)
            return dep
        out, left, right, union = pair_union(
            ctx, deps[0].rows, deps[0].index, deps[1].rows, deps[1].index,
            shape)
        for dep in deps[2:]:
            out, _, _, union = pair_union(ctx, out.rows, out.index,
                                          dep.rows, dep.index, shape)
        if kind == "nonlinear" or (len(deps) > 2 and kind != "linear"):
            ctx.add_pairs(union, union)
        elif kind == "bilinear":
            ctx.add_pairs(left, right)
        elif kind == "divide":
            ctx.add_pairs(left, right)
            ctx.add_pairs(right, right)
        return out
    return rule


def _identity(ctx, fun, ans, args, kwargs, argnums, deps):
    """Same shape, each element its own input (``astype``, ``real``...)."""
    if argnums != (0,) or not isinstance(deps[0], Dep) or \
            deps[0].index.shape != np.shape(ans):
        raise Fallback
    return deps[0]


# ----------------------------------------------------------------------
# Selections: evaluated on the index arrays
# ----------------------------------------------------------------------
def _selection(data_args: Optional[Callable[[tuple], Sequence[int]]] = None):
    def rule(ctx, fun, ans, args, kwargs, argnums, deps):
        data = list(argnums) if data_args is None else list(data_args(args))
        if not set(argnums) <= set(data) or any(
                not isinstance(dep, Dep) for dep in deps):
            raise Fallback
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
                raise Fallback
            return [_index_dep(rows, o, a) for o, a in zip(out, ans)]
        return _index_dep(rows, out, ans)
    return rule


_MOVING_PAD_MODES = {"constant", "edge", "reflect", "symmetric", "wrap",
                     "empty"}


def _pad_rule(ctx, fun, ans, args, kwargs, argnums, deps):
    """``pad``: a selection in the modes that copy elements (the padding
    constant is not an element: it is read as label 0, no dependency)."""
    mode = kwargs.get("mode", args[2] if len(args) > 2 else "constant")
    if argnums != (0,) or not isinstance(mode, str) or \
            mode not in _MOVING_PAD_MODES:
        raise Fallback
    kwargs = {k: v for k, v in kwargs.items() if k != "constant_values"}
    return _SELECT_ANY(ctx, fun, ans, args[:3], kwargs, argnums, deps)


def _index_dep(rows, out, ans) -> Dep:
    out = np.asarray(out)
    if out.shape != np.shape(ans):
        raise Fallback
    if out.dtype.kind not in "iub":
        if out.dtype.kind not in "fc" or int(rows.shape[0]) > 2 ** 52:
            raise Fallback
        out = np.rint(out.real)
    return Dep(rows, out.astype(np.int64))


def _container_take(ctx, fun, ans, args, kwargs, argnums, deps):
    dep = deps[0]
    if argnums != (0,) or not isinstance(dep, (list, tuple, dict)):
        raise Fallback
    got = dep[args[1]]
    return list(got) if isinstance(got, tuple) else got


def _item_dep(ctx, value, pos, argnums, deps):
    if pos in argnums:
        return deps[argnums.index(pos)]
    if isinstance(value, (list, tuple)):
        return [_item_dep(ctx, v, -1, (), ()) for v in value]
    return constant_dep(np.shape(value), ctx.dim)


def _make_sequence(ctx, fun, ans, args, kwargs, argnums, deps):
    """``make_sequence(type, *items)``: the items' dependencies."""
    return [_item_dep(ctx, args[pos], pos, argnums, deps)
            for pos in range(1, len(args))]


def _sequence_extend(right: bool):
    def rule(ctx, fun, ans, args, kwargs, argnums, deps):
        seq = _item_dep(ctx, args[0], 0, argnums, deps)
        items = [_item_dep(ctx, args[pos], pos, argnums, deps)
                 for pos in range(1, len(args))]
        return list(seq) + items if right else items + list(seq)
    return rule


def _kron_rule(ctx, fun, ans, args, kwargs, argnums, deps):
    """``kron(a, b)``: a product of ``a[i]`` and ``b[j]`` per element."""
    nd = max(np.ndim(args[0]), np.ndim(args[1]))
    full: List[int] = []
    for sa, sb in zip((1,) * (nd - np.ndim(args[0])) + np.shape(args[0]),
                      (1,) * (nd - np.ndim(args[1])) + np.shape(args[1])):
        full += [sa, sb]
    items = []
    for pos in (0, 1):
        src = deps[argnums.index(pos)].index if pos in argnums else \
            np.asarray(args[pos])
        src = src.reshape((1,) * (nd - src.ndim) + src.shape)
        expanded = []
        for size in src.shape:
            expanded += [size, 1] if pos == 0 else [1, size]
        items.append(src.reshape(expanded))
    shape = tuple(full)
    if len(argnums) == 2:
        out, left, right, _ = pair_union(ctx, deps[0].rows, items[0],
                                         deps[1].rows, items[1], shape)
        ctx.add_pairs(left, right)
    else:
        pos = argnums[0]
        out = _zero_where_constant_zero(
            Dep(deps[0].rows, np.broadcast_to(items[pos], shape)),
            items[1 - pos], shape)
    if int(np.prod(shape)) != int(np.size(ans)):
        raise Fallback
    return Dep(out.rows, out.index.reshape(np.shape(ans)))


def _linear_map(matrix) -> Callable:
    """``out = matrix @ in`` along the first axis of ``in``."""
    coo = sp.coo_matrix(matrix)
    mask = coo.data != 0
    rows_a, cols_a = coo.row[mask], coo.col[mask]
    n_out, n_in = coo.shape
    # At most one nonzero per row (a gather, e.g. u[group]): a selection.
    source = None
    if np.bincount(rows_a, minlength=n_out).max(initial=0) <= 1:
        source = np.full(n_out, -1, dtype=np.int64)
        source[rows_a] = cols_a

    def rule(ctx, fun, ans, args, kwargs, argnums, deps):
        dep = deps[0]
        if len(deps) != 1 or not isinstance(dep, Dep) or \
                dep.index.shape[:1] != (n_in,):
            raise Fallback
        rest = int(np.prod(dep.index.shape[1:], dtype=np.int64))
        if source is not None:
            index = dep.index.reshape(n_in, rest)[np.maximum(source, 0)]
            index[source < 0] = 0
            if index.size != int(np.size(ans)):
                raise Fallback
            return Dep(dep.rows, index.reshape(np.shape(ans)))
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


def _untake(ctx, fun, ans, args, kwargs, argnums, deps):
    """autograd's ``untake(x, idx, vs)``: ``x`` scattered (and summed) into
    zeros of ``vs``'s shape at ``idx`` (the adjoint of indexing)."""
    if argnums != (0,) or not isinstance(deps[0], Dep):
        raise Fallback
    shape = tuple(args[2].shape)
    idx = args[1]
    if isinstance(idx, list) and (len(idx) == 0 or not isinstance(
            idx[0], slice)):
        idx = np.array(idx, dtype=np.int64)
    size = int(np.prod(shape, dtype=np.int64))
    target = np.broadcast_to(np.arange(size).reshape(shape)[idx],
                             deps[0].index.shape)
    return aggregate(deps[0], target, size, shape, ctx)


def _vspace_add(ctx, fun, ans, args, kwargs, argnums, deps):
    """``VSpace.add/mut_add(vs, x, y)`` and ``sparse_add(vs, prev, new)``:
    a sum of cotangents."""
    if any(not isinstance(dep, Dep) for dep in deps):
        raise Fallback
    shape = np.shape(ans)
    if len(deps) == 1:
        return Dep(deps[0].rows, np.broadcast_to(deps[0].index, shape))
    return pair_union(ctx, deps[0].rows, deps[0].index, deps[1].rows,
                      deps[1].index, shape)[0]


def _product_or(rule_2d):
    """``dot``/``matmul``/``inner`` with a 0-d operand are products."""
    product = _elementwise("bilinear")

    def rule(ctx, fun, ans, args, kwargs, argnums, deps):
        if min(np.ndim(args[0]), np.ndim(args[1])) == 0:
            return product(ctx, fun, ans, args[:2], kwargs, argnums, deps)
        return rule_2d(ctx, fun, ans, args, kwargs, argnums, deps)
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
_IDENTITY = {"astype", "real", "copy", "asarray", "ascontiguousarray",
             "nan_to_num", "real_if_close"}
_SELECTIONS = {
    "reshape", "ravel", "transpose", "swapaxes", "moveaxis", "rollaxis",
    "squeeze", "expand_dims", "broadcast_to", "repeat", "tile", "flip",
    "fliplr", "flipud", "rot90", "roll", "diagonal", "diag", "tril", "triu",
    "take", "take_along_axis", "atleast_1d", "atleast_2d", "atleast_3d",
    "__getitem__", "split", "array_split", "hsplit", "vsplit",
    "dsplit", "_unpack_tril", "_pack_tril", "make_diagonal",
    "matrix_transpose"}
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
_ALONG = {"cumsum": (False, True), "cumprod": (True, True),
          "sort": (False, False), "partition": (False, False),
          "softmax": (True, False), "log_softmax": (True, False)}
_CONTRACTIONS = {"dot", "matmul", "einsum", "tensordot", "inner", "outer"}
_BATCHED_LINALG = {"inv", "det", "slogdet", "cholesky", "eigh", "eigvalsh",
                   "eig", "eigvals", "pinv", "svd", "matrix_power"}
_ELEMENTWISE_NONLINEAR = {"polygamma", "multigammaln", "sinc", "angle",
                          "logpdf", "pdf", "cdf", "logcdf", "sf", "logsf",
                          "ppf", "pmf", "logpmf"}
_QUIET_CONSERVATIVE_MODULES = ("numpy.linalg", "scipy.linalg", "linalg",
                               "numpy.fft", "autograd.numpy.fft",
                               "scipy.stats._multivariate", "scipy.signal",
                               "autograd.scipy.signal")

#: Only functions of these modules are recognised by name.
_KNOWN_MODULES = ("numpy", "scipy", "autograd", "refold")

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
                "linear": _CONSERVATIVE_LINEAR,
                "nonlinear": _CONSERVATIVE}[kind]
    _REGISTRY[primitive] = rule


def _ufunc_rule(name: str) -> Callable:
    if name in _LINEAR_UFUNCS:
        return _elementwise("linear")
    if name in _ZERO_UFUNCS:
        return _elementwise("zero")
    if name == "multiply":
        return _elementwise("bilinear")
    if name in ("divide", "true_divide"):
        return _elementwise("divide")
    return _elementwise("nonlinear")


_NAMED: Dict[str, Callable] = {
    "clip": _elementwise("linear"), "imag": _elementwise("linear"),
    "full": _elementwise("linear"), "trace": trace_rule,
    "container_take": _container_take, "make_sequence": _make_sequence,
    "sequence_extend_right": _sequence_extend(True),
    "sequence_extend_left": _sequence_extend(False),
    "solve": solve_rule, "solve_triangular": solve_rule, "norm": norm_rule,
    "diff": diff_rule, "kron": _kron_rule, "pad": _pad_rule,
    "linspace": _CONSERVATIVE_LINEAR, "_apply_linear": _CONSERVATIVE_LINEAR}


def _rule_by_name(raw: Any) -> Optional[Callable]:
    name = getattr(raw, "__name__", "")
    module = getattr(raw, "__module__", "") or ""
    if module.startswith("autograd.") and getattr(
            raw, "__qualname__", "") in _QUALNAMED:
        return _QUALNAMED[raw.__qualname__]
    if isinstance(raw, np.ufunc):
        if raw.nout != 1:
            return None
        if getattr(raw, "__module__", None) != "numpy":
            return _elementwise("nonlinear")    # scipy.special's, yours
        if name == "matmul":
            return _product_or(contraction_rule("matmul"))
        return _ufunc_rule(name)
    if not module.startswith(_KNOWN_MODULES):
        return None     # a function of yours that shares a numpy name
    if name in _NAMED:
        return _NAMED[name]
    if name in _CONTRACTIONS:
        rule = contraction_rule(name)
        return _product_or(rule) if name in ("dot", "inner") else rule
    if name in _IDENTITY:
        return _identity_or_selection
    if name in _SELECTIONS:
        return _selection()
    if name in _DATA_ARGS:
        return _selection(_DATA_ARGS[name])
    if name in _REDUCTIONS:
        return reduction_rule(_REDUCTIONS[name])
    if name in _ALONG:
        return along_rule(*_ALONG[name])
    if name in _BATCHED_LINALG and "linalg" in module:
        return batched_linalg_rule
    if name in _ELEMENTWISE_NONLINEAR and (
            module.startswith("scipy.special") or name in (
                "sinc", "angle") or module.startswith(
                "scipy.stats._distn")):
        return _elementwise("nonlinear")
    if any(module.startswith(m) or m in module.split(".")
           for m in _QUIET_CONSERVATIVE_MODULES):
        return _CONSERVATIVE
    return None


_SELECT_ANY = _selection()


def _identity_or_selection(ctx, fun, ans, args, kwargs, argnums, deps):
    try:
        return _identity(ctx, fun, ans, args, kwargs, argnums, deps)
    except Fallback:
        return _SELECT_ANY(ctx, fun, ans, args, kwargs, argnums, deps)


#: autograd's own primitives, met when a traced function calls ``grad``.
_QUALNAMED: Dict[str, Callable] = {
    "dot_adjoint_0": adjoint_rule("dot", 0),
    "dot_adjoint_1": adjoint_rule("dot", 1),
    "tensordot_adjoint_0": adjoint_rule("tensordot", 0),
    "tensordot_adjoint_1": adjoint_rule("tensordot", 1),
    "untake": _untake, "VSpace.add": _vspace_add,
    "VSpace.mut_add": _vspace_add, "sparse_add": _vspace_add}

_BY_RAW: Dict[Any, Optional[Callable]] = {}


def apply_rule(ctx, fun, ans, args, kwargs, argnums, deps):
    """The output dep of one primitive call (conservative when unsure)."""
    if ctx.saturated:   # the Hessian pattern is full already
        return _shaped_like(ans, sp.csr_matrix((1, ctx.dim)))
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
    name = getattr(raw, "__qualname__", None) or repr(raw)
    if rule is None:
        ctx.warn_unknown(name)
        rule = _CONSERVATIVE
    argnums = tuple(argnums)
    try:
        return rule(ctx, fun, ans, args, kwargs, argnums, deps)
    except Fallback:
        pass
    except Exception as err:  # a rule that cannot read these arguments
        ctx.warn_failed(name, err)
    return _CONSERVATIVE(ctx, fun, ans, args, kwargs, argnums, deps)
