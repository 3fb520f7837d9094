"""Argument checks shared by the sensitivity modules (private).

Each check raises with a message naming the argument, what was expected and
what came, and returns the value in the form the caller works with.
"""
from __future__ import annotations

import numbers
from typing import Any, Optional

import numpy as np

__all__ = ["check_int", "check_bool", "real_array", "as_vector"]


def check_int(value: Any, name: str, *, minimum: Optional[int] = None,
              type_error: type = TypeError) -> int:
    """``value`` as an ``int`` (``bool`` is not an integer here).

    Parameters
    ----------
    value : object
    name : str
        How the argument is named in error messages.
    minimum : int, optional
        The smallest allowed value (``None``: any integer).
    type_error : type
        The exception raised for a non-integer (``TypeError`` or, where the
        public contract says so, ``ValueError``).

    Raises
    ------
    TypeError or ValueError
        For a non-integer (``type_error``); ``ValueError`` below ``minimum``.
    """
    if minimum is None:
        want = "an int"
    elif minimum == 0:
        want = "a non-negative integer"
    elif minimum == 1:
        want = "a positive integer"
    else:
        want = f"an integer >= {minimum}"
    if isinstance(value, (bool, np.bool_)) or not isinstance(
            value, numbers.Integral):
        raise type_error(f"{name} must be {want}; got {value!r} of type "
                         f"{type(value).__name__}")
    if minimum is not None and value < minimum:
        raise ValueError(f"{name} must be {want}; got {value}")
    return int(value)


def check_bool(value: Any, name: str) -> bool:
    """``value`` as a ``bool``; only ``True``/``False`` (numpy's too) pass."""
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be True or False; got {value!r}")
    return bool(value)


def real_array(value: Any, name: str, *, allow_bool: bool = False,
               what: str = "a real numeric array") -> np.ndarray:
    """``np.asarray(value)``, which must have a real (integer or floating)
    dtype; booleans only with ``allow_bool``.  Shape and finiteness are the
    caller's to check.

    Raises
    ------
    TypeError
        For a complex, object, string or (unless allowed) boolean dtype, or
        a value numpy cannot make an array of (e.g. a ragged list).
    """
    try:
        arr = np.asarray(value)
    except Exception as err:  # ragged nested lists, exotic objects
        raise TypeError(f"{name} must be {what}; got "
                        f"{type(value).__name__}") from err
    kinds = "biuf" if allow_bool else "iuf"
    if arr.dtype == object or arr.dtype.kind not in kinds:
        raise TypeError(f"{name} must be {what}; got dtype {arr.dtype}")
    return arr


def as_vector(value: Any, name: str, *, length: Optional[int] = None
              ) -> np.ndarray:
    """A finite 1-d float64 copy of ``value``; scalars only when length 1."""
    arr = real_array(value, name)
    if arr.ndim == 0:
        if length == 1:
            arr = arr.reshape(1)
        else:
            want = "a 1-d array" if length is None else \
                f"a 1-d array of length {length}"
            raise ValueError(
                f"{name} must be {want}; got a scalar (wrap it, e.g. "
                f"np.atleast_1d({name}))")
    if arr.ndim != 1:
        raise ValueError(f"{name} must be a 1-d array; got shape {arr.shape}")
    if length is not None and arr.shape[0] != length:
        raise ValueError(f"{name} must have length {length}; got length "
                         f"{arr.shape[0]}")
    if arr.shape[0] == 0:
        raise ValueError(f"{name} must not be empty")
    arr = np.array(arr, dtype=np.float64)
    if not np.all(np.isfinite(arr)):
        bad = np.flatnonzero(~np.isfinite(arr))
        raise ValueError(f"{name} must be finite; entries {bad[:10].tolist()} "
                         f"are NaN or inf")
    return arr
