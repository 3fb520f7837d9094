"""Shared argument checks and error formatting for the patterns layer.

Every error refold raises about a parameter names where the problem is, as a
*path* into the folded value: ``params['cov'][2]``. Internally a path is a
tuple of dictionary keys (``str``) and array indices (``tuple`` of ``int``);
it is only formatted into a string when an error is raised, so passing paths
down a container costs one small tuple per child.
"""
from __future__ import annotations

import math
import numbers
from typing import Any, Callable, Sequence

import numpy as onp
from autograd.tracer import getval

#: The name given to the root of a folded value in error messages.
ROOT_NAME = "params"
#: The name given to a flat vector in error messages.
FLAT_NAME = "flat_val"

_REAL_KINDS = "biuf"


def format_path(path: Sequence, root: str = ROOT_NAME) -> str:
    """Format a path tuple as ``params['a'][1, 2]``."""
    parts = [root]
    for item in path:
        if isinstance(item, str):
            parts.append("[{!r}]".format(item))
        elif isinstance(item, tuple):
            parts.append("[" + ", ".join(str(int(i)) for i in item) + "]")
        else:
            parts.append("[{}]".format(item))
    return "".join(parts)


def path_error(path: Sequence, message: str, cls: type = ValueError):
    """An exception of type ``cls`` whose message starts with the path."""
    return cls("{}: {}".format(format_path(path), message))


def describe(value: Any) -> str:
    """A short description of what came, for error messages."""
    raw = getval(value)
    if isinstance(raw, onp.ndarray):
        return "an array of shape {} and dtype {}".format(raw.shape, raw.dtype)
    if isinstance(raw, (numbers.Number, onp.generic)):
        return "the scalar {!r}".format(raw)
    return "a {}".format(type(raw).__name__)


def as_real_array(value: Any, path: Sequence):
    """Return ``(value, raw)``: the value (autograd boxes preserved) and its
    raw ``numpy`` array, raising ``TypeError`` for non-real data."""
    raw = getval(value)
    if not isinstance(raw, onp.ndarray):
        try:
            raw = onp.asarray(raw)
        except Exception as err:  # ragged lists and the like
            raise path_error(
                path, "expected an array of real numbers, got {} ({})".format(
                    describe(value), err), TypeError) from None
        if value is getval(value):
            value = raw
    if raw.dtype.kind not in _REAL_KINDS:
        raise path_error(
            path, "expected real numbers, got {}".format(describe(raw)),
            TypeError)
    return value, raw


def as_flat_vector(flat_val: Any, length: int, free: bool):
    """Check a flat vector handed to ``fold`` and return it.

    Scalars are accepted as vectors of length one. Autograd boxes are
    returned unchanged so derivatives flow through.
    """
    raw = getval(flat_val)
    if not isinstance(raw, onp.ndarray):
        try:
            raw = onp.asarray(raw)
        except Exception as err:
            raise TypeError(
                "{}: expected a 1-d vector of real numbers, got {} ({})".format(
                    FLAT_NAME, describe(flat_val), err)) from None
        flat_val = raw if flat_val is getval(flat_val) else flat_val
    if raw.ndim == 0:
        flat_val = flat_val.reshape(1) if flat_val is raw else \
            _box_reshape(flat_val, (1,))
        raw = raw.reshape(1)
    if raw.ndim != 1:
        raise ValueError(
            "{}: expected a 1-d vector of length {} (free={}), got an array "
            "of shape {}".format(FLAT_NAME, length, free, raw.shape))
    if raw.dtype.kind not in _REAL_KINDS:
        raise TypeError(
            "{}: expected real numbers, got dtype {}".format(
                FLAT_NAME, raw.dtype))
    if raw.shape[0] != length:
        raise ValueError(
            "{}: expected length {} (free={}), got length {}".format(
                FLAT_NAME, length, free, raw.shape[0]))
    return flat_val


def _box_reshape(value, shape):
    import autograd.numpy as anp
    return anp.reshape(value, shape)


def check_free_flag(free: Any, name: str = "free") -> bool:
    """Validate a ``free`` argument (``bool`` or numpy bool)."""
    if isinstance(free, (bool, onp.bool_)):
        return bool(free)
    raise TypeError("{}: expected True or False, got {!r}".format(name, free))


def check_optional_bool(value: Any, name: str):
    """Validate an argument that is ``None``, ``True`` or ``False``."""
    if value is None:
        return None
    return check_free_flag(value, name)


def check_callable(fun: Any, name: str) -> Callable:
    """Validate an argument that must be callable."""
    if not callable(fun):
        raise TypeError("{}: expected a callable, got {!r}".format(name, fun))
    return fun


def check_count(n: Any, name: str) -> int:
    """Validate a non-negative integer count (``0`` turns a feature off)."""
    if isinstance(n, (bool, onp.bool_)) or \
            not isinstance(n, (numbers.Integral, onp.integer)):
        raise TypeError("{}: expected a non-negative integer, got "
                        "{!r}".format(name, n))
    if n < 0:
        raise ValueError("{}: expected a non-negative integer (0 turns it "
                         "off), got {}".format(name, int(n)))
    return int(n)


def check_shape(shape: Any, name: str = "shape") -> tuple:
    """Validate an array shape: an int or a tuple of non-negative ints."""
    if isinstance(shape, (numbers.Integral, onp.integer)) and \
            not isinstance(shape, (bool, onp.bool_)):
        shape = (shape,)
    try:
        items = tuple(shape)
    except TypeError:
        raise TypeError(
            "{}: expected a tuple of non-negative integers, got {!r}".format(
                name, shape)) from None
    out = []
    for item in items:
        if isinstance(item, (bool, onp.bool_)) or \
                not isinstance(item, (numbers.Integral, onp.integer)):
            raise TypeError(
                "{}: expected a tuple of non-negative integers, got {!r}".format(
                    name, shape))
        if item < 0:
            raise ValueError(
                "{}: expected non-negative sizes, got {!r}".format(name, shape))
        out.append(int(item))
    # numpy indexes with intp: a larger array cannot exist (and numpy would
    # raise OverflowError, not name the argument).
    if math.prod(out) > onp.iinfo(onp.intp).max or any(
            item > onp.iinfo(onp.intp).max for item in out):
        raise ValueError(
            "{}: expected an array numpy can index (at most {} entries), "
            "got {!r} ({} entries)".format(
                name, onp.iinfo(onp.intp).max, shape, math.prod(out)))
    return tuple(out)


def check_size(size: Any, name: str, minimum: int) -> int:
    """Validate an integer size of at least ``minimum``."""
    if isinstance(size, (bool, onp.bool_)) or \
            not isinstance(size, (numbers.Integral, onp.integer)):
        # Accept integral floats such as 3.0, which paragami accepted.
        if isinstance(size, (float, onp.floating)) and float(size).is_integer():
            size = int(size)
        else:
            raise TypeError(
                "{}: expected an integer >= {}, got {!r}".format(
                    name, minimum, size))
    if size < minimum:
        raise ValueError(
            "{}: expected an integer >= {}, got {}".format(name, minimum, size))
    return int(size)


def check_real_scalar(value: Any, name: str, allow_inf: bool = True) -> float:
    """Validate a real scalar (numpy scalars and 0-d arrays accepted)."""
    raw = value
    if isinstance(raw, onp.ndarray) and raw.ndim == 0:
        raw = raw[()]
    if isinstance(raw, (bool, onp.bool_)) or \
            not isinstance(raw, (numbers.Real, onp.integer, onp.floating)):
        raise TypeError(
            "{}: expected a real number, got {!r}".format(name, value))
    raw = float(raw)
    if onp.isnan(raw) or (not allow_inf and onp.isinf(raw)):
        raise ValueError(
            "{}: expected a {}real number, got {}".format(
                name, "" if allow_inf else "finite ", raw))
    return raw


def surely_finite(raw: onp.ndarray) -> bool:
    """A cheap screen: ``True`` means every entry is finite.

    ``False`` means "run the exact check" (a finite sum can overflow).
    Small arrays are summed in Python, which beats a numpy reduction's
    call overhead; large ones use ``isfinite``.
    """
    if raw.size <= 64:
        return math.isfinite(sum(raw.ravel().tolist()))
    return bool(onp.isfinite(raw).all())


def first_index(mask: onp.ndarray) -> tuple:
    """The index (as a tuple) of the first True entry of ``mask``."""
    flat = int(onp.argmax(mask.reshape(-1)))
    return tuple(int(i) for i in onp.unravel_index(flat, mask.shape))


def first_nonfinite(raw: onp.ndarray):
    """The index (a tuple) of the first NaN or infinite entry, or ``None``."""
    finite = onp.isfinite(raw)
    if finite.all():
        return None
    return first_index(~finite)


def element_path(path: tuple, index: Sequence) -> tuple:
    """The path of one element of a stack, ``index`` its batch index (the
    path itself when the stack has no batch dimensions)."""
    return path + (tuple(index),) if len(index) else path


def resolve_rng(rng: Any) -> onp.random.Generator:
    """A ``numpy.random.Generator`` from ``None``, a seed or a Generator."""
    if isinstance(rng, onp.random.Generator):
        return rng
    if rng is None or isinstance(rng, (numbers.Integral, onp.integer)):
        return onp.random.default_rng(rng)
    if isinstance(rng, onp.random.RandomState):
        return onp.random.default_rng(rng.randint(2 ** 31))
    raise TypeError(
        "rng: expected None, an integer seed or a numpy.random.Generator, "
        "got {!r}".format(rng))
