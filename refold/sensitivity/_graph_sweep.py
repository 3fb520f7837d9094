"""A recorded gradient graph, swept backward with precomputed coefficients.

:func:`refold.sensitivity.hvp.make_hvp_at` records the computation of
:math:`\\nabla f(x)` once and answers each Hessian-vector product with one
backward sweep of that record (reverse over reverse).  autograd's own sweep
re-evaluates, at every product, everything its vector-Jacobian products need
that does not depend on the vector: ``exp(x - ans)`` for ``logaddexp``,
``x ** (y - 1)`` for ``power``, a materialised repeat for ``sum``.  On an
objective over many observations those dominate the sweep.

:class:`RecordedGraph` records the same graph with nodes that keep the
primitive, its arguments and its value, and builds each node's
vector-Jacobian product once, at the first sweep:

* elementwise primitives (the ufuncs in :data:`_UNARY` and :data:`_BINARY`)
  get their partial derivative as a coefficient array computed once, so a
  product costs one multiplication and, under broadcasting, one sum;
* ``sum`` and ``mean`` send the cotangent back as a broadcast view instead of
  a materialised copy;
* basic indexing (``x[:, None]``, ``x[2:5]``) writes the cotangent into
  zeros instead of autograd's ``np.add.at``;
* any other primitive with a small output (at most :data:`SMALL_OUTPUT`
  values: the scalar bookkeeping of an objective) gets its Jacobian once,
  from unit cotangents, and applies it as a small matrix product;
* every other primitive keeps autograd's own vector-Jacobian product.

Each coefficient is the expression autograd's rule evaluates, so a sweep
agrees with autograd's to rounding.  Complex values and primitives called
with keyword arguments (``out=``, ``where=``) keep autograd's rules.
Gradients are accumulated with autograd's own ``add_outgrads``, which never
writes into an array it did not allocate (the broadcast views are read-only).
"""
import math
import warnings
from typing import Any, Callable, Optional

import autograd.numpy as anp
import numpy as onp
from autograd.core import SparseObject, VJPNode, add_outgrads, primitive_vjps
from autograd.numpy.numpy_boxes import ArrayBox
from autograd.tracer import notrace_primitives, trace
from autograd.util import func, toposort

__all__ = ["RecordedGraph"]

_GETITEM = func(ArrayBox.__getitem__)


class _RecordNode(VJPNode):
    """A reverse-mode node that keeps its primitive call for a later sweep."""

    __slots__ = ["fun", "args", "kwargs", "value", "argnums"]

    def __init__(self, value, fun, args, kwargs, parent_argnums, parents):
        self.parents = parents
        self.fun, self.args, self.kwargs = fun, args, kwargs
        self.value, self.argnums = value, parent_argnums
        self.vjp = None

    def initialize_root(self):
        self.parents = []
        self.fun = self.args = self.kwargs = self.value = None
        self.argnums = ()
        self.vjp = lambda g: ()


# The primitives autograd leaves untraced (comparisons, shape queries) are
# registered per node type: share VJPNode's set, later registrations included.
notrace_primitives[_RecordNode] = notrace_primitives[VJPNode]


def _replace_zero(x, val):
    return onp.where(x, x, val)


# d ans / d x for unary ufuncs, as autograd's rules compute it.
_UNARY = {
    anp.exp: lambda ans, x: ans,
    anp.exp2: lambda ans, x: ans * onp.log(2),
    anp.expm1: lambda ans, x: ans + 1,
    anp.log: lambda ans, x: 1.0 / x,
    anp.log2: lambda ans, x: 1.0 / x / onp.log(2),
    anp.log10: lambda ans, x: 1.0 / x / onp.log(10),
    anp.log1p: lambda ans, x: 1.0 / (x + 1),
    anp.sqrt: lambda ans, x: 0.5 * x ** -0.5,
    anp.square: lambda ans, x: 2 * x,
    anp.reciprocal: lambda ans, x: -1.0 / x ** 2,
    anp.negative: lambda ans, x: -1.0,
    anp.sin: lambda ans, x: onp.cos(x),
    anp.cos: lambda ans, x: -onp.sin(x),
    anp.tan: lambda ans, x: 1.0 / onp.cos(x) ** 2,
    anp.sinh: lambda ans, x: onp.cosh(x),
    anp.cosh: lambda ans, x: onp.sinh(x),
    anp.tanh: lambda ans, x: 1.0 / onp.cosh(x) ** 2,
    anp.arctan: lambda ans, x: 1.0 / (1 + x ** 2),
    anp.arcsinh: lambda ans, x: 1.0 / onp.sqrt(x ** 2 + 1),
    anp.abs: lambda ans, x: _replace_zero(x, 0.0) / _replace_zero(ans, 1.0),
    anp.absolute: lambda ans, x: _replace_zero(x, 0.0) / _replace_zero(ans,
                                                                     1.0),
    anp.fabs: lambda ans, x: onp.sign(x),
}

# (d ans / d x, d ans / d y) for binary broadcasting ufuncs.
_BINARY = {
    anp.add: (lambda ans, x, y: 1.0, lambda ans, x, y: 1.0),
    anp.subtract: (lambda ans, x, y: 1.0, lambda ans, x, y: -1.0),
    anp.multiply: (lambda ans, x, y: y, lambda ans, x, y: x),
    anp.divide: (lambda ans, x, y: 1.0 / y, lambda ans, x, y: -x / y ** 2),
    anp.true_divide: (lambda ans, x, y: 1.0 / y,
                      lambda ans, x, y: -x / y ** 2),
    anp.logaddexp: (lambda ans, x, y: onp.exp(x - ans),
                    lambda ans, x, y: onp.exp(y - ans)),
    anp.power: (lambda ans, x, y: y * x ** onp.where(y, y - 1, 1.0),
                lambda ans, x, y: onp.log(_replace_zero(x, 1.0)) * ans),
}


def _is_real(*values) -> bool:
    """Whether every value is a real (float, int or bool) array or scalar."""
    for v in values:
        if isinstance(v, (float, int)):
            continue
        if not isinstance(v, (onp.ndarray, onp.generic)) or \
                v.dtype.kind not in "fiub":
            return False
    return True


def _unbroadcast_plan(target: Any, full_shape: tuple) -> tuple:
    """The axes that sum a ``full_shape`` cotangent down to ``target``'s."""
    shape = onp.shape(target)
    lead = len(full_shape) - len(shape)
    kept = tuple(i for i, s in enumerate(shape)
                 if s == 1 and full_shape[lead + i] != 1)
    return tuple(range(lead)), kept


class _Edge:
    """One linear step of a sweep, from a node's cotangent to a parent's.

    ``g -> post(pre(g) * coef)``: ``pre`` broadcasts a reduction's
    cotangent back (``expand`` axes, then ``bshape``), ``coef`` is a
    partial derivative (``None`` for one) and ``post`` sums the ``lead``
    and ``kept`` axes a broadcasting primitive added.
    """

    __slots__ = ["parent", "expand", "bshape", "coef", "lead", "kept"]

    def __init__(self, parent, coef=None, lead=(), kept=(), expand=None,
                 bshape=None):
        self.parent, self.coef = parent, coef
        self.lead, self.kept = lead, kept
        self.expand, self.bshape = expand, bshape

    def __call__(self, g):
        if self.expand is not None:
            g = onp.expand_dims(onp.asarray(g, dtype=float), self.expand)
        if self.bshape is not None:
            g = onp.broadcast_to(onp.asarray(g, dtype=float), self.bshape)
        if self.coef is not None:
            g = g * self.coef
        if self.lead:
            g = onp.sum(g, axis=self.lead)
        if self.kept:
            g = onp.sum(g, axis=self.kept, keepdims=True)
        return g

    def same_route(self, other: "_Edge") -> bool:
        return (self.parent is other.parent and self.lead == other.lead
                and self.kept == other.kept and self.expand == other.expand
                and self.bshape == other.bshape)


def _scalar_one(coef: Any) -> Any:
    return None if onp.ndim(coef) == 0 and coef == 1.0 else coef


def _elementwise_edges(node: _RecordNode) -> Optional[list]:
    """The node's edges with their coefficients computed, or ``None``."""
    fun, args, ans = node.fun, node.args, node.value
    if (fun not in _UNARY and fun not in _BINARY) or node.kwargs or \
            not _is_real(ans, *args):
        return None
    full_shape = onp.shape(ans)
    if fun in _UNARY and len(args) == 1:
        rules = (_UNARY[fun],)
    elif fun in _BINARY and len(args) == 2:
        rules = _BINARY[fun]
    else:
        return None
    edges = []
    for parent, a in zip(node.parents, node.argnums):
        lead, kept = _unbroadcast_plan(args[a], full_shape)
        coef = onp.asarray(rules[a](ans, *args), dtype=float)
        edges.append(_Edge(parent, _scalar_one(coef), lead, kept))
    return edges


def _normal_axes(axis: Any, ndim: int) -> Optional[tuple]:
    if axis is None:
        return None
    axes = axis if isinstance(axis, tuple) else (axis,)
    return tuple(sorted(int(a) % ndim for a in axes))


def _reduction_edges(node: _RecordNode) -> Optional[list]:
    """``sum``/``mean``: the cotangent broadcast back, as a read-only view."""
    if node.fun not in (anp.sum, anp.mean) or node.argnums != (0,):
        return None
    kwargs = node.kwargs
    if set(kwargs) - {"axis", "keepdims"} or len(node.args) != 1:
        return None
    x = node.args[0]
    if not isinstance(x, onp.ndarray) or not _is_real(x, node.value):
        return None
    shape, ndim = x.shape, x.ndim
    axes = _normal_axes(kwargs.get("axis"), max(ndim, 1))
    expand = axes if (axes is not None and not kwargs.get("keepdims")) \
        else None
    count = x.size if axes is None else math.prod(shape[a] for a in axes)
    coef = 1.0 / count if node.fun is anp.mean and count else None
    return [_Edge(node.parents[0], coef, expand=expand, bshape=shape)]


def _product(a: Any, b: Any) -> Any:
    if a is None:
        return b
    return a if b is None else a * b


def _total(a: Any, b: Any) -> Any:
    return _scalar_one((1.0 if a is None else a) + (1.0 if b is None else b))


def _add_edge(edges: list, new: _Edge) -> None:
    """Append ``new``, or add its coefficient to an edge of the same route."""
    for edge in edges:
        if edge.same_route(new):
            edge.coef = _total(edge.coef, new.coef)
            return
    edges.append(new)


def _spread_axes(e_in: _Edge, g_shape: tuple) -> Optional[tuple]:
    """The axes ``e_in`` broadcasts a ``g_shape`` cotangent over, if any."""
    if e_in.bshape is None:
        return None
    shape = list(g_shape)
    for axis in e_in.expand or ():
        shape.insert(axis, 1)
    full = tuple(e_in.bshape)
    if len(shape) != len(full):
        return None
    return tuple(i for i, (a, b) in enumerate(zip(shape, full))
                 if a == 1 and b != 1)


def _collapses(e_in: _Edge, e_out: _Edge, g_shape: tuple) -> bool:
    """Whether ``e_out`` sums back exactly the axes ``e_in`` broadcast."""
    spread = _spread_axes(e_in, g_shape)
    return spread is not None and not e_out.lead and \
        tuple(e_out.kept) == spread


def _compose(e_in: _Edge, e_out: _Edge, g_shape: tuple) -> _Edge:
    """The edge ``e_out`` after ``e_in`` (a cotangent of ``g_shape``).

    When ``e_in`` broadcasts the cotangent over some axes and ``e_out``
    sums exactly those axes back, the pair is one multiplication at the
    small shape, by the coefficient summed over those axes.
    """
    coef = _product(e_in.coef, e_out.coef)
    if _collapses(e_in, e_out, g_shape):
        spread = _spread_axes(e_in, g_shape)
        if spread:
            coef = onp.sum(onp.broadcast_to(1.0 if coef is None else coef,
                                            e_in.bshape),
                           axis=spread, keepdims=True)
        return _Edge(e_out.parent, _scalar_one(coef), expand=e_in.expand)
    return _Edge(e_out.parent, coef, e_out.lead, e_out.kept, e_in.expand,
                 e_in.bshape)


def _eliminate(order: list, edges: dict, shapes: dict, end: Any) -> list:
    """Fold elementwise nodes into their neighbours' coefficients.

    A node ``P`` whose own steps are all plain edges (no broadcast before
    the coefficient), and whose children all reach it by edges without a
    sum after it, is removed when that does not add work: each child gets
    an edge straight to each of ``P``'s parents with the product of the two
    coefficients (computed here, once).  ``P`` goes when it has one
    incoming or one own edge (one pass over its array saved per sweep), or
    when every composed edge collapses (a broadcast then a sum over the
    same axes: a multiplication at the small shape).  Chains such as
    ``exp(x - logaddexp(0, x))`` of the inner backward pass, and the
    broadcast quadrature of an expectation, become few multiplications.
    """
    children = {id(node): [] for node in order}
    for node in order:
        parents = [e.parent for e in edges[id(node)]] \
            if id(node) in edges else node.parents
        for parent in {id(p): p for p in parents}.values():
            children[id(parent)].append(node)
    kept = []
    for node in order:
        own = edges.get(id(node))
        incoming = [(c, e) for c in children[id(node)]
                    for e in edges.get(id(c), ()) if e.parent is node]
        if (node is end or own is None or not incoming
                or any(e.bshape is not None or e.expand is not None
                       for e in own)
                or any(id(c) not in edges for c in children[id(node)])
                or any(e.lead or e.kept for _, e in incoming)):
            kept.append(node)
            continue
        if not (len(incoming) == 1 or len(own) == 1
                or all(_collapses(e_in, e_out, shapes[id(child)])
                       for child, e_in in incoming for e_out in own)):
            kept.append(node)
            continue
        composed = [(child, _compose(e_in, e_out, shapes[id(child)]))
                    for child, e_in in incoming for e_out in own]
        for child in {id(c): c for c, _ in incoming}.values():
            child_edges = edges[id(child)]
            child_edges[:] = [e for e in child_edges if e.parent is not node]
        for child, edge in composed:
            _add_edge(edges[id(child)], edge)
        for e_out in own:
            parents_children = children[id(e_out.parent)]
            parents_children[:] = [c for c in parents_children
                                   if c is not node]
            for child, _ in incoming:
                if all(c is not child for c in parents_children):
                    parents_children.append(child)
        edges.pop(id(node))
    return kept


def _is_basic_index(idx: Any) -> bool:
    """Whether ``idx`` is basic indexing (no index arrays, no duplicates)."""
    parts = idx if isinstance(idx, tuple) else (idx,)
    return all(p is None or p is Ellipsis or isinstance(p, (slice, int))
               and not isinstance(p, bool) for p in parts)


def _getitem_vjp(node: _RecordNode) -> Optional[Callable]:
    """``x[idx]`` with basic indexing: the cotangent written into zeros.

    autograd's rule returns a lazy ``np.add.at``, which costs as much as a
    sort for a plain ``x[:, None]``; basic indexing selects every element
    at most once, so an assignment is the same sum.
    """
    if node.fun is not _GETITEM or node.argnums != (0,) or node.kwargs:
        return None
    x, idx = node.args
    if not isinstance(x, onp.ndarray) or x.dtype.kind != "f" or \
            not _is_basic_index(idx):
        return None
    shape, dtype = x.shape, x.dtype

    def vjp(g):
        out = onp.zeros(shape, dtype)
        out[idx] = g
        return (out,)
    return vjp


#: Largest output of a primitive whose Jacobian is precomputed.
SMALL_OUTPUT = 16
#: Largest precomputed Jacobian (entries).
SMALL_JACOBIAN = 1 << 16


def _small_linear_vjp(vjp: Callable, out_shape: tuple,
                      parent_shapes: list) -> Optional[Callable]:
    """A primitive with a small output, its Jacobian precomputed.

    A vector-Jacobian product is linear in the cotangent, so ``m`` calls
    with unit cotangents (``m`` the output size, at most
    :data:`SMALL_OUTPUT`) give each parent's Jacobian, and every later
    sweep is a small matrix product instead of the primitive's rule (the
    scalar bookkeeping of an objective -- a digamma, a prior term -- costs
    far more in autograd's dispatch than in arithmetic).
    """
    size = math.prod(out_shape)
    sizes = [math.prod(shape) for shape in parent_shapes]
    if size > SMALL_OUTPUT or size * sum(sizes) > SMALL_JACOBIAN:
        return None
    columns = []
    for k in range(size):
        unit = onp.zeros(size)
        unit[k] = 1.0
        try:
            ingrads = list(vjp(unit.reshape(out_shape)))
        except Exception:   # a rule that wants its own cotangent type
            return None
        if len(ingrads) != len(sizes):
            return None
        dense = []
        for ingrad, shape in zip(ingrads, parent_shapes):
            if isinstance(ingrad, SparseObject):
                ingrad = ingrad.mut_add(onp.zeros(shape))
            ingrad = onp.asarray(ingrad)
            if ingrad.shape != tuple(shape) or ingrad.dtype.kind != "f":
                return None
            dense.append(ingrad.ravel())
        columns.append(dense)
    jacobians = [onp.stack([col[i] for col in columns], axis=1)
                 for i in range(len(sizes))]

    def small_vjp(g):
        g = onp.ravel(onp.asarray(g, dtype=float))
        return tuple((jac @ g).reshape(shape)
                     for jac, shape in zip(jacobians, parent_shapes))
    return small_vjp


def _node_vjp(node: _RecordNode) -> Callable:
    fast = _getitem_vjp(node)
    if fast is not None:
        return fast
    return primitive_vjps[node.fun](node.argnums, node.value, node.args,
                                    node.kwargs)


class RecordedGraph:
    """The computation of ``fun(x)``, recorded once, for repeated sweeps.

    Parameters
    ----------
    fun : callable
        Function of one array, traceable by autograd.
    x : ndarray
        The point.

    Attributes
    ----------
    value : object
        ``fun(x)``.
    """

    def __init__(self, fun: Callable, x: onp.ndarray):
        self._start = _RecordNode.new_root()
        with warnings.catch_warnings():
            # A value that does not depend on x has a zero Jacobian.
            warnings.filterwarnings("ignore", "Output seems independent")
            self.value, self._end = trace(self._start, fun, x)
        self._zeros = onp.zeros(onp.shape(x))
        self._steps = None

    def _compile(self) -> list:
        order = list(toposort(self._end))
        edges = {}
        shapes = {id(node): onp.shape(node.value) if node.fun is not None
                  else onp.shape(self._zeros) for node in order}
        for node in order:
            if node.fun is None:
                continue
            own = _elementwise_edges(node) or _reduction_edges(node)
            if own is not None:
                edges[id(node)] = own
        while True:   # to a fixed point: a removal can enable another
            fewer = _eliminate(order, edges, shapes, self._end)
            if len(fewer) == len(order):
                break
            order = fewer
        steps = []
        for node in order:
            own = edges.get(id(node))
            if own is None and node.vjp is None:
                node.vjp = _node_vjp(node)
                if node.fun is not None and _is_real(node.value):
                    node.vjp = _small_linear_vjp(node.vjp, shapes[id(node)],
                                                 [shapes[id(p)] for p in
                                                  node.parents]) or node.vjp
            steps.append((node, own))
        for node in order:
            node.args = node.kwargs = node.value = None
        return steps

    def vjp(self, g: Any) -> Any:
        """One backward sweep: :math:`J(x)^T g` for the recorded ``fun``."""
        if self._end is None:
            return self._zeros.copy()
        if self._steps is None:
            self._steps = self._compile()
        outgrads = {self._end: (g, False)}
        for node, own in self._steps:
            flagged = outgrads.pop(node, None)
            if flagged is None:
                continue
            out = flagged[0]
            if node is self._start:
                return out
            if own is None:
                pairs = zip(node.parents, node.vjp(out))
            else:
                pairs = ((e.parent, e(out)) for e in own)
            for parent, ingrad in pairs:
                outgrads[parent] = add_outgrads(outgrads.get(parent), ingrad)
        return self._zeros.copy()
