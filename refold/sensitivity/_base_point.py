"""An objective recorded once at a base point, for everything taken there.

A linear approximation at ``(x, h)`` needs the gradient (to check the
optimum), Hessian-vector products (to recover or apply the Hessian) and the
cross derivative :math:`\\partial^2 f / \\partial x \\partial h`.  Each of
those used to re-evaluate the objective: a gradient, one recorded graph for
the products, and a forward-mode pass for the cross derivative.

:class:`BasePointRecord` records the gradient of
:math:`F(z) = f(z_{:D}, z_{D:})` in :math:`z = (x, h)` once
(:class:`~refold.sensitivity._graph_sweep.RecordedGraph`).  Its value holds
the gradient in ``x`` and the objective's value; a sweep with cotangent
``(v, 0)`` is :math:`H_{xx} v`, and one with ``(0, e_j)`` is the ``j``-th
column of the cross derivative (by symmetry of the joint Hessian).

Inside :func:`sharing` the record is *active*: :func:`active_record` hands it
to :func:`~refold.sensitivity.hvp.make_hvp_at` when asked for products of the
same objective at the same point, so the solver built there sweeps the same
graph.  Outside a ``sharing`` block nothing is shared, so a user's later
change to the objective's data is always seen.
"""
import contextlib
import threading
from typing import Any, Callable, Iterator, Optional

import autograd
import autograd.numpy as anp
import numpy as onp
from autograd.tracer import getval

from refold.sensitivity._graph_sweep import RecordedGraph

__all__ = ["BasePointRecord", "sharing", "active_record"]

_STATE = threading.local()


class BasePointRecord:
    """``fun(x, h)`` and its gradient in ``(x, h)``, recorded at one point.

    Parameters
    ----------
    fun : callable
        ``fun(x, h)``, a scalar objective twice differentiable by autograd.
    x, h : ndarray
        The point: ``x`` 1-d float, ``h`` a float array of any shape.

    Attributes
    ----------
    value : float
        ``fun(x, h)``.
    gradient : ndarray, shape (D,)
        :math:`\\nabla_x f(x, h)`.

    Raises
    ------
    Exception
        Whatever evaluating ``fun`` or its gradient raises, unchanged; a
        caller that cannot record falls back to its ordinary path, which
        reports the problem in its own words.
    """

    def __init__(self, fun: Callable, x: onp.ndarray, h: onp.ndarray):
        self.fun, self.x, self.h = fun, x, h
        dim, shape = x.shape[0], onp.shape(h)
        values = []

        def joint_objective(z):
            return fun(z[:dim], anp.reshape(z[dim:], shape))

        def joint_gradient(z):
            value, grad = autograd.value_and_grad(joint_objective)(z)
            values.append(getval(value))
            return grad

        z = onp.concatenate([x, onp.ravel(h).astype(float)])
        self._graph = RecordedGraph(joint_gradient, z)
        self.value = values[0]
        self._dim, self._size = dim, z.shape[0]
        self.gradient = onp.asarray(self._graph.value, dtype=float)[:dim]

    def matches(self, fun: Callable, x: Any, args: tuple,
                argnum: int) -> bool:
        """Whether ``fun(x, *args)`` is this record's objective and point."""
        if fun is not self.fun or argnum != 0 or len(args) != 1:
            return False
        h = args[0]
        return (isinstance(x, onp.ndarray) and onp.array_equal(x, self.x)
                and (h is self.h or (isinstance(h, onp.ndarray)
                                     and onp.array_equal(h, self.h))))

    def hvp(self, v: onp.ndarray) -> onp.ndarray:
        """:math:`\\nabla^2_{xx} f\\, v`: one sweep of the recorded graph."""
        cotangent = onp.zeros(self._size)
        cotangent[:self._dim] = v
        return onp.asarray(self._graph.vjp(cotangent), dtype=float)[
            :self._dim]

    def cross(self) -> onp.ndarray:
        """:math:`\\partial^2 f / \\partial x \\partial h`, shape (D, M).

        ``min(D, M)`` sweeps: one per coordinate of ``h`` (a column each),
        or, when ``h`` is longer than ``x``, one per coordinate of ``x`` (a
        row each, by symmetry of the joint Hessian).
        """
        dim, n_hyper = self._dim, self._size - self._dim
        out = onp.empty((dim, n_hyper))
        by_column = n_hyper <= dim
        for j in range(n_hyper if by_column else dim):
            cotangent = onp.zeros(self._size)
            cotangent[dim + j if by_column else j] = 1.0
            swept = onp.asarray(self._graph.vjp(cotangent), dtype=float)
            if by_column:
                out[:, j] = swept[:dim]
            else:
                out[j] = swept[dim:]
        return out


def record_or_none(fun: Callable, x: onp.ndarray,
                   h: onp.ndarray) -> Optional[BasePointRecord]:
    """A :class:`BasePointRecord`, or ``None`` when recording fails (a
    non-scalar objective, an error inside it, a primitive without a
    reverse-mode rule): the caller then takes its ordinary path, whose
    checks name the problem."""
    try:
        record = BasePointRecord(fun, x, h)
    except (KeyboardInterrupt, SystemExit, MemoryError):
        raise
    except Exception:
        return None
    if onp.size(record.value) != 1:
        return None
    return record


@contextlib.contextmanager
def sharing(record: Optional[BasePointRecord]) -> Iterator[None]:
    """Make ``record`` the active one for the duration of the block."""
    previous = getattr(_STATE, "record", None)
    _STATE.record = record
    try:
        yield
    finally:
        _STATE.record = previous


def active_record(fun: Callable, x: Any, args: tuple,
                  argnum: int) -> Optional[BasePointRecord]:
    """The active record if it is of ``fun`` at ``(x, *args)``, else None."""
    record = getattr(_STATE, "record", None)
    if record is not None and record.matches(fun, x, args, argnum):
        return record
    return None
