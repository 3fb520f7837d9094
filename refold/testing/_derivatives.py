"""Derivative checks against finite differences: :func:`check_derivatives`."""
from __future__ import annotations

import contextlib
import numbers
import warnings
from collections.abc import Mapping
from typing import Any, Callable, Sequence

import numpy as onp
from autograd.test_util import check_grads
from autograd.tracer import getval

__all__ = ["check_derivatives", "seeded_global_random"]


def _as_vector(out):
    """Concatenate the leaves of a dict/list output (autograd-friendly)."""
    import autograd.numpy as anp
    if isinstance(out, Mapping):
        parts = [_as_vector(out[k]) for k in out]
    elif isinstance(out, (list, tuple)):
        parts = [_as_vector(v) for v in out]
    else:
        return out
    return anp.concatenate([anp.reshape(p, (-1,)) for p in parts]) \
        if parts else anp.zeros(0)


@contextlib.contextmanager
def seeded_global_random(seed):
    """autograd's checks draw from numpy's global generator: seed it and
    restore the caller's state afterwards."""
    state = onp.random.get_state()
    onp.random.seed(seed)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings(
                "ignore", message="Output seems independent of input")
            yield
    finally:
        onp.random.set_state(state)


def check_derivatives(fun: Callable, x: Any, order: int = 2,
                      modes: Sequence[str] = ("fwd", "rev"), *args,
                      **kwargs) -> None:
    r"""Check autograd's derivatives of ``fun`` against finite differences.

    A thin wrapper over :func:`autograd.test_util.check_grads` that validates
    its arguments, accepts functions returning arrays, numbers or dicts/lists
    of arrays (their entries are concatenated), and draws its random
    directions from a fixed seed without disturbing numpy's global
    generator.

    Parameters
    ----------
    fun : callable
        ``fun(x, *args, **kwargs)``, differentiable by autograd in ``x``.
    x : array_like
        The point, real and finite; integers are converted to floats.
    order : int, optional
        Highest derivative order checked (``>= 1``).
    modes : sequence of {'fwd', 'rev'}, optional
        Forward mode (Jacobian-vector products), reverse mode
        (vector-Jacobian products) or both. A single string is accepted.
    *args, **kwargs
        Passed to ``fun``.

    Raises
    ------
    AssertionError
        If a derivative disagrees with finite differences (autograd's
        tolerance: absolute or relative error below 1e-6).
    ValueError, TypeError
        For invalid ``order``, ``modes``, ``fun`` or ``x``.
    NotImplementedError
        If autograd has no rule for an operation in the requested mode.

    Examples
    --------
    >>> import autograd.numpy as np
    >>> check_derivatives(lambda x, a: np.sin(a * x), np.ones(3), 2,
    ...                   ("fwd", "rev"), 2.0)
    """
    if not callable(fun):
        raise TypeError("fun: expected a callable, got {}".format(
            type(fun).__name__))
    if isinstance(order, (bool, onp.bool_)) or \
            not isinstance(order, (numbers.Integral, onp.integer)):
        raise TypeError("order: expected an integer >= 1, got {!r}".format(
            order))
    if order < 1:
        raise ValueError("order: expected an integer >= 1, got {}".format(
            order))
    if isinstance(modes, str):
        modes = (modes,)
    try:
        modes = list(modes)
    except TypeError:
        raise TypeError("modes: expected a sequence of 'fwd' and 'rev', got "
                        "{!r}".format(modes)) from None
    if not modes or any(m not in ("fwd", "rev") for m in modes):
        raise ValueError("modes: expected a non-empty subset of ('fwd', "
                         "'rev'), got {!r}".format(modes))
    raw = onp.asarray(getval(x))
    if raw.dtype.kind not in "biuf":
        raise TypeError("x: expected real numbers, got {}".format(
            "dtype " + str(raw.dtype) if raw.dtype != object
            else type(x).__name__))
    if not onp.all(onp.isfinite(raw)):
        raise ValueError("x: expected finite values, got {}".format(raw))
    point = raw.astype(float)

    def wrapped(v):
        return _as_vector(fun(v, *args, **kwargs))
    wrapped.__name__ = getattr(fun, "__name__", "fun")

    with seeded_global_random(0):
        try:
            check_grads(wrapped, modes=modes, order=int(order))(point)
        except NotImplementedError as err:
            raise NotImplementedError(
                "{}: autograd has no derivative rule for an operation in "
                "modes {} ({}); check another mode with modes=('rev',)".format(
                    wrapped.__name__, modes, err)) from err
