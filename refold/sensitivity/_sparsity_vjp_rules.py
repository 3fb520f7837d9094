r"""Sparsity rules for the primitives of autograd's backward pass (private).

Tracing an estimating equation that is itself a gradient,
``autograd.grad(f)``, runs autograd's reverse sweep under the dependency
trace; its primitives are the adjoints of the forward ones:

* ``untake`` (the adjoint of indexing) scatters into zeros: each output
  element depends on the union of the elements added into it;
* ``sparse_add`` and ``VSpace.add``/``mut_add`` (gradient accumulation) are
  elementwise sums, ``VSpace.scalar_mul`` an elementwise product;
* ``dot_adjoint_0``/``dot_adjoint_1`` are ``tensordot`` calls (with a
  transpose), handled by the contraction rule;
* ``make_diagonal`` and ``_astype`` are selections.

So the Jacobian of a gradient is found as tightly as the Hessian of the
objective.  Imported for its side effect: it fills the rule registry.
"""
from __future__ import annotations

import numpy as np
from autograd.core import VSpace, sparse_add
from autograd.numpy import numpy_vjps

from refold.sensitivity._sparsity_rules import (
    _REGISTRY, _Fallback, _contraction, _elementwise, _selection)
from refold.sensitivity._sparsity_trace import Dep, aggregate

_LINEAR = _elementwise("linear")
_TENSORDOT = _contraction("tensordot")
_PRODUCT = _elementwise("bilinear")


def _untake(ctx, fun, ans, args, kwargs, argnums, deps):
    x, idx, vs = args
    if argnums != (0,) or not isinstance(deps[0], Dep):
        raise _Fallback
    shape = tuple(vs.shape)
    size = int(np.prod(shape, dtype=np.int64))
    if isinstance(idx, list) and (not idx or not isinstance(idx[0], slice)):
        idx = np.array(idx, dtype=np.int64)
    targets = np.broadcast_to(np.arange(size).reshape(shape)[idx],
                              deps[0].index.shape)
    return aggregate(deps[0], targets, size, shape, ctx)


def _linear_union(ctx, fun, ans, args, kwargs, argnums, deps):
    """Elementwise sums, container by container."""
    if isinstance(ans, (list, tuple)):
        out = []
        for k, item in enumerate(ans):
            sub = [d[k] for d in deps if isinstance(d, (list, tuple))]
            if len(sub) != len(deps):
                raise _Fallback
            out.append(_linear_union(ctx, fun, item, [None] * len(sub), {},
                                     tuple(range(len(sub))), sub))
        return out
    return _LINEAR(ctx, fun, ans, args, kwargs, argnums, deps)


def _tensordot_call(ctx, fun, ans, first, second, axes, argnums, deps,
                    swap=False):
    """``tensordot(first, second, axes)`` (then a swap of the last two
    axes) with traced operands ``argnums`` in (0, 1)."""
    if min(np.ndim(first), np.ndim(second)) == 0:
        prod = np.asarray(first) * np.asarray(second)
        dep = _PRODUCT(ctx, fun, prod, (first, second), {}, argnums, deps)
    else:
        value = np.tensordot(first, second, axes)
        dep = _TENSORDOT(ctx, fun, value, (first, second, axes), {},
                         argnums, deps)
    if swap:
        dep = Dep(dep.rows, np.swapaxes(dep.index, -1, -2))
    if dep.index.shape != np.shape(ans):
        raise _Fallback
    return dep


def _traced(argnums, deps, positions):
    """Map traced arguments at ``positions`` to operand slots 0, 1."""
    slots, out = [], []
    for slot, pos in enumerate(positions):
        if pos in argnums:
            slots.append(slot)
            out.append(deps[argnums.index(pos)])
    if len(slots) != len(argnums):
        raise _Fallback
    return tuple(slots), out


def _dot_adjoint_0(ctx, fun, ans, args, kwargs, argnums, deps):
    B, G, A_meta, B_meta = args
    a_ndim, b_ndim = A_meta[1], B_meta[1]
    slots, tdeps = _traced(argnums, deps, (1, 0))   # (G, B)
    if b_ndim in (0, 1) or a_ndim == 0:
        return _tensordot_call(ctx, fun, ans, G, B,
                               max(0, b_ndim - (a_ndim != 0)), slots, tdeps)
    if 0 in argnums:
        tdeps = [d if s == 0 else Dep(d.rows, np.swapaxes(d.index, -1, -2))
                 for s, d in zip(slots, tdeps)]
    return _tensordot_call(ctx, fun, ans, G, np.swapaxes(B, -1, -2),
                           b_ndim - 1, slots, tdeps)


def _dot_adjoint_1(ctx, fun, ans, args, kwargs, argnums, deps):
    A, G, A_meta, B_meta = args
    a_ndim, b_ndim = A_meta[1], B_meta[1]
    swap = b_ndim > 1 and a_ndim != 0
    slots, tdeps = _traced(argnums, deps, (1, 0))   # (G, A)
    if a_ndim in (0, 1) or b_ndim == 0:
        axes = max(0, a_ndim - (b_ndim != 0))
    else:
        axes = [list(range(-a_ndim - b_ndim + 2, -b_ndim + 1)),
                list(range(a_ndim - 1))]
    return _tensordot_call(ctx, fun, ans, G, A, axes, slots, tdeps, swap)


def _scalar_mul(ctx, fun, ans, args, kwargs, argnums, deps):
    return _PRODUCT(ctx, fun, ans, args, kwargs, argnums, deps)


_REGISTRY[numpy_vjps.untake] = _untake
_REGISTRY[sparse_add] = _linear_union
_REGISTRY[VSpace.add] = _linear_union
_REGISTRY[VSpace.mut_add] = _linear_union
_REGISTRY[VSpace.scalar_mul] = _scalar_mul
_REGISTRY[numpy_vjps.dot_adjoint_0] = _dot_adjoint_0
_REGISTRY[numpy_vjps.dot_adjoint_1] = _dot_adjoint_1
_REGISTRY[numpy_vjps.anp.make_diagonal] = _selection()
