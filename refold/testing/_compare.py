"""Comparing folded values: :func:`assert_folded_allclose`."""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as onp
from autograd.tracer import getval

__all__ = ["assert_folded_allclose", "leaves"]


def leaves(value, path="value"):
    """``(path, leaf)`` pairs of a folded value (dicts, lists, arrays)."""
    raw = getval(value)
    if isinstance(raw, Mapping):
        for key, item in raw.items():
            yield from leaves(item, "{}[{!r}]".format(path, key))
    elif isinstance(raw, (list, tuple)):
        for i, item in enumerate(raw):
            yield from leaves(item, "{}[{}]".format(path, i))
    else:
        yield path, raw


def _compare(actual, desired, path, rtol, atol, equal_nan):
    actual, desired = getval(actual), getval(desired)
    if isinstance(desired, Mapping):
        if not isinstance(actual, Mapping):
            raise AssertionError("{}: expected a dict, got {}".format(
                path, type(actual).__name__))
        if set(actual) != set(desired):
            raise AssertionError("{}: keys differ: expected {}, got {}".format(
                path, list(desired), list(actual)))
        for key in desired:
            _compare(actual[key], desired[key], "{}[{!r}]".format(path, key),
                     rtol, atol, equal_nan)
        return
    try:
        a, d = onp.asarray(actual), onp.asarray(desired)
    except Exception as err:
        raise AssertionError("{}: cannot compare {} with {} ({})".format(
            path, type(actual).__name__, type(desired).__name__,
            err)) from None
    if a.shape != d.shape:
        raise AssertionError("{}: expected shape {}, got shape {}".format(
            path, d.shape, a.shape))
    if a.dtype.kind not in "biufc" or d.dtype.kind not in "biufc":
        if not onp.array_equal(a, d):
            raise AssertionError("{}: expected {!r}, got {!r}".format(
                path, desired, actual))
        return
    a, d = a.astype(complex if "c" in a.dtype.kind + d.dtype.kind else
                    float), d.astype(float if d.dtype.kind != "c" else complex)
    close = onp.isclose(a, d, rtol=rtol, atol=atol, equal_nan=equal_nan)
    if not onp.all(close):
        bad = onp.unravel_index(int(onp.argmin(close.reshape(-1))), d.shape) \
            if d.ndim else ()
        raise AssertionError(
            "{}: {} of {} entries differ (rtol={}, atol={}); first at index "
            "{}: expected {!r}, got {!r}".format(
                path, int(onp.sum(~close)), close.size, rtol, atol,
                tuple(int(i) for i in bad), d[bad], a[bad]))


def assert_folded_allclose(actual: Any, desired: Any, *, rtol: float = 1e-8,
                           atol: float = 1e-8, equal_nan: bool = False,
                           name: str = "value") -> None:
    """Assert that two folded values are equal up to a tolerance.

    Parameters
    ----------
    actual, desired
        Folded values: arrays, numbers, or (nested) dicts of them.
    rtol, atol : float, optional
        Tolerances, elementwise as in :func:`numpy.isclose`.
    equal_nan : bool, optional
        Whether NaNs in the same place count as equal.
    name : str, optional
        The name used for the value in the message.

    Raises
    ------
    AssertionError
        Naming the first entry (``value['cov'][1, 2]``) that differs, or
        where the structure (keys, shapes) differs.

    Examples
    --------
    >>> import numpy as np
    >>> assert_folded_allclose({"a": np.ones(2)}, {"a": np.ones(2) + 1e-12})
    """
    _compare(actual, desired, name, rtol, atol, equal_nan)
