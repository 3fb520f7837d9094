"""Argument checks shared by the sensitivity modules (private).

Each check raises with a message naming the argument, what was expected and
what came, and returns the value in the form the caller works with.
"""
from __future__ import annotations

import numbers
from typing import Any, Callable, Optional

import numpy as np

__all__ = ["check_int", "check_bool", "check_choice", "real_array",
           "finite_array", "as_vector", "check_optional_bool", "check_positive_float",
           "check_cross_column", "user_call", "describe_point",
           "traced_vector"]


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


def finite_array(value: Any, name: str, *, vector: bool = False,
                 non_empty: bool = False, keep_float_dtype: bool = False
                 ) -> np.ndarray:
    """A finite real array -- a point, a direction -- as a new float array.

    Parameters
    ----------
    value : array_like
    name : str
        How the argument is named in error messages.
    vector : bool
        It must be 1-d; a scalar is read as a vector of length one (as
        ``np.atleast_1d`` reads it).
    non_empty : bool
        It must have at least one entry.
    keep_float_dtype : bool
        Keep a floating dtype (``float32`` stays ``float32``); otherwise the
        dtype is promoted to at least ``float64``.  Integers become
        ``float64`` either way.

    Raises
    ------
    TypeError
        For a dtype that is not real numeric (boolean, complex, object,
        string) or a value numpy cannot make an array of.
    ValueError
        For a shape that is not a vector (with ``vector``), an empty array
        (with ``non_empty``), or a NaN or inf entry, named by its index
        (``x must be finite; x[2] is nan``).
    """
    arr = real_array(value, name, what="a real numeric vector" if vector
                     else "a real numeric array")
    if vector:
        arr = np.atleast_1d(arr)
        if arr.ndim != 1:
            raise ValueError(f"{name} must be a vector (1-d); got shape "
                             f"{arr.shape}")
    if non_empty and arr.size == 0:
        raise ValueError(f"{name} must have at least one entry; got shape "
                         f"{arr.shape}")
    keep = keep_float_dtype and arr.dtype.kind == "f"
    arr = np.array(arr, dtype=arr.dtype if keep else
                   np.result_type(arr.dtype, np.float64))
    bad = ~np.isfinite(arr)
    if bad.any():
        where = tuple(int(i) for i in np.argwhere(bad)[0])
        index = f"[{', '.join(map(str, where))}]" if where else ""
        raise ValueError(f"{name} must be finite; {name}{index} is "
                         f"{arr[where]}")
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


def check_choice(value: Any, name: str, choices: tuple) -> str:
    """``value``, one of the strings ``choices``: a ``TypeError`` for a
    non-string, a ``ValueError`` for another string, both listing them."""
    if not isinstance(value, str):
        raise TypeError(f"{name} must be one of {choices}; got "
                        f"{type(value).__name__}")
    if value not in choices:
        raise ValueError(f"{name} must be one of {choices}; got {value!r}")
    return value


def check_optional_bool(value: Any, name: str) -> Optional[bool]:
    """``None``, ``True`` or ``False`` (numpy bools too); anything else,
    a truthy string such as ``'no'`` included, is a ``TypeError``."""
    if value is None:
        return None
    return check_bool(value, name)


def check_positive_float(value: Any, name: str, *, allow_none: bool = False
                         ) -> Optional[float]:
    """A positive finite ``float`` (``None`` passes through with
    ``allow_none``); bools, strings and arrays of size other than one are a
    ``TypeError``, zero, negatives, NaN and inf a ``ValueError``."""
    if value is None and allow_none:
        return None
    want = "a positive finite number" + (" or None" if allow_none else "")
    if isinstance(value, (bool, np.bool_)) or isinstance(value, str):
        raise TypeError(f"{name} must be {want}; got {value!r}")
    try:
        arr = np.asarray(value)
    except Exception:  # pragma: no cover - exotic objects
        arr = np.asarray(None)
    if arr.dtype == object or arr.dtype.kind not in "iuf" or arr.size != 1:
        raise TypeError(f"{name} must be {want}; got {value!r}")
    out = float(arr.reshape(()))
    if not (np.isfinite(out) and out > 0):
        raise ValueError(f"{name} must be {want}; got {value!r}")
    return out


def check_cross_column(column: Any, shape: tuple, name: str) -> np.ndarray:
    r"""One column :math:`\partial g / \partial \epsilon_m` of a cross
    Jacobian, as a float array of ``shape`` (the parameter's shape).

    autograd returns a scalar zero where ``g`` does not depend on the
    hyperparameter; that is a legitimate zero column.  Any other shape --
    in particular a non-zero scalar from a function that returns a scalar
    instead of a vector -- is an error naming ``name``; it is never
    broadcast (which would give a silently wrong sensitivity).
    """
    arr = np.asarray(column, dtype=float)
    if arr.shape == tuple(shape):
        return arr
    if arr.ndim == 0 and arr == 0.0:
        return np.zeros(shape)
    raise ValueError(f"{name}: a derivative in the hyperparameter has shape "
                     f"{arr.shape}, not {tuple(shape)} (the shape of the "
                     f"parameter); the function behind it must return an "
                     f"array of the parameter's shape")


def user_call(fun: Callable, name: str, where: Any, *args: Any) -> Any:
    """``fun(*args)``, with an exception raised inside the user's function
    re-raised as a ``TypeError`` (for a ``TypeError``) or ``ValueError``
    (otherwise) that names ``fun``'s argument name and the point
    (``where``: a string, or a callable of no arguments returning one, so
    that describing the point costs nothing unless it fails), the original
    exception chained as the cause.

    refold's own ``ValueError``/``TypeError`` (already naming an argument)
    and ``KeyboardInterrupt`` pass unchanged.
    """
    try:
        return fun(*args)
    except (KeyboardInterrupt, SystemExit, MemoryError):
        raise
    except (ValueError, TypeError) as err:
        if _names_argument(err):
            raise
        raise type_for(err)(_user_message(name, where, err)) from err
    except Exception as err:
        raise type_for(err)(_user_message(name, where, err)) from err


def type_for(err: BaseException) -> type:
    """The class refold re-raises a user's exception as."""
    return TypeError if isinstance(err, TypeError) else ValueError


def _user_message(name: str, where: Any, err: BaseException) -> str:
    where = where() if callable(where) else where
    text = str(err) or "(no message)"
    if isinstance(err, KeyError):
        text = f"missing key {text}"
    return (f"{name} raised {type(err).__name__} {where}: {text}. Check that "
            f"{name} accepts the arguments it is given (their shapes, keys "
            f"and types); the original exception is chained below.")


def _names_argument(err: BaseException) -> bool:
    """Whether ``err`` is one of refold's own messages (from a nested refold
    call), which already names what was wrong."""
    return type(err).__module__.startswith("refold") or \
        getattr(err, "_refold_checked", False)


def describe_point(value: Any, limit: int = 6) -> str:
    """A short rendering of a point for messages: the first entries of a
    vector, with its length."""
    from autograd.tracer import getval
    arr = np.asarray(getval(value), dtype=float).ravel()
    shown = np.array2string(arr[:limit], precision=4, separator=", ")
    if arr.size > limit:
        shown = shown[:-1] + ", ...]"
    return f"{shown} (length {arr.size})"


def traced_vector(value: Any, name: str) -> Any:
    """Check a finite, non-empty, real 1-d vector that may be an autograd
    box (its raw value is checked); return it as a float array, or the box
    unchanged so derivatives flow through."""
    from autograd.tracer import getval
    raw = getval(value)
    if raw is value:
        return as_vector(value, name)
    as_vector(raw, name)
    return value
