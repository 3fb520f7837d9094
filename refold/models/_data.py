"""Argument and data checks shared by the worked models (private).

Every check names the argument, what was expected and what came, in one
style: ``"<name>: expected <what>, got <what came>"`` (or, for an entry,
``"<name>[i, j] is <value>; expected ..."``). Values are copied, never
mutated.
"""
from __future__ import annotations

from typing import Any, Optional, Sequence, Tuple, Union

import numpy as onp
from autograd.tracer import getval

from refold.patterns.base import Pattern

__all__ = ["check_int", "check_bool", "check_positive", "check_finite",
           "check_variance", "check_data_scale", "DATA_SCALE_RANGE",
           "check_tol",
           "resolve_rng", "real_array", "check_design", "index_array",
           "check_index_range", "group_index", "check_init"]


def check_int(value: Any, name: str, minimum: int) -> int:
    """``value`` as an ``int`` of at least ``minimum`` (bools refused)."""
    if isinstance(value, (bool, onp.bool_)) or not isinstance(
            value, (int, onp.integer)):
        raise TypeError("{}: expected an int, got {!r}".format(name, value))
    if value < minimum:
        raise ValueError("{}: expected an int >= {}, got {}".format(
            name, minimum, value))
    return int(value)


def check_bool(value: Any, name: str) -> bool:
    """``value`` as a ``bool`` (``True``/``False`` or a numpy bool only)."""
    if not isinstance(value, (bool, onp.bool_)):
        raise TypeError("{}: expected True or False, got {!r}".format(
            name, value))
    return bool(value)


def check_positive(value: Any, name: str) -> float:
    """``value`` as a positive finite ``float`` (a scalar or a size-1 array;
    bools refused)."""
    if isinstance(value, (bool, onp.bool_, str, bytes)):
        raise TypeError("{}: expected a positive number, got {!r}".format(
            name, value))
    try:
        out = float(onp.reshape(onp.asarray(value, dtype=float), ()))
    except (TypeError, ValueError):
        raise TypeError("{}: expected a positive number, got {!r}".format(
            name, value)) from None
    if not (onp.isfinite(out) and out > 0):
        raise ValueError("{}: expected a positive finite number, got "
                         "{!r}".format(name, value))
    return out


def check_finite(value: Any, name: str) -> float:
    """``value`` as a finite ``float`` (a scalar or a size-1 array; bools
    and strings refused)."""
    if isinstance(value, (bool, onp.bool_, str, bytes)):
        raise TypeError("{}: expected a finite number, got {!r}".format(
            name, value))
    try:
        out = float(onp.reshape(onp.asarray(value, dtype=float), ()))
    except (TypeError, ValueError):
        raise TypeError("{}: expected a finite number, got {!r}".format(
            name, value)) from None
    if not onp.isfinite(out):
        raise ValueError("{}: expected a finite number, got {!r}".format(
            name, value))
    return out


def check_variance(value: Any, name: str, *, allow_zero: bool = False):
    """Check that ``value`` (possibly an autograd box, any shape) is real
    with every entry positive (``>= 0`` with ``allow_zero``) and not NaN;
    return it unchanged so derivatives flow through.

    The worked models' likelihoods and E-steps call it on their variances:
    a negative variance would otherwise give a silent NaN (a log of a
    negative number) or negative posterior variances, and a zero one a
    ``ZeroDivisionError``.
    """
    raw = onp.asarray(getval(value))
    if raw.dtype == object or raw.dtype.kind not in "biuf":
        raise TypeError("{}: expected a real number, got {!r}".format(
            name, getval(value)))
    ok = (raw >= 0) if allow_zero else (raw > 0)
    if not onp.all(ok):
        where = tuple(int(i) for i in onp.argwhere(~ok)[0])
        label = name + ("[{}]".format(", ".join(map(str, where)))
                        if raw.ndim and raw.size > 1 else "")
        raise ValueError("{}: expected a {} variance, got {!r}".format(
            label, "non-negative" if allow_zero else "positive",
            float(raw[where] if raw.ndim else raw)))
    return value


#: The spreads (standard deviations) of data the worked models fit
#: reliably in float64 (see :func:`check_data_scale`).
DATA_SCALE_RANGE = (1e-30, 1e30)


def check_data_scale(arr: onp.ndarray, name: str, *,
                     scale_range: Tuple[float, float] = DATA_SCALE_RANGE
                     ) -> None:
    """Refuse data whose spread is outside :data:`DATA_SCALE_RANGE`.

    The worked models compute in the data's own units: squares of
    deviations, and Hessians that scale like ``1 / variance**2``, so data of
    standard deviation near ``1e+-80`` overflow or underflow somewhere in a
    fit and the failure surfaces far from its cause (a singular sample
    covariance, a non-finite Hessian, a starting value the user never
    passed).  Each column of a finite 2-d ``arr`` (or a 1-d ``arr``) must
    have a standard deviation, computed without overflow, in
    ``[1e-30, 1e30]`` (fits were checked across that range); a zero spread
    is left to the model's own checks (constant data).  The message says
    that the data's scale is the problem and how to fix it.  A model whose
    fit is fine at one end passes its own ``scale_range`` (the logistic
    GLMM's covariates have no lower limit: a prior keeps ``beta`` finite).
    """
    cols = arr.reshape(arr.shape[0], -1) if arr.ndim > 1 else arr[:, None]
    big = onp.max(onp.abs(cols), axis=0)
    safe = onp.where(big > 0, big, 1.0)
    spread = big * onp.std(cols / safe, axis=0)
    low, high = scale_range
    bad = onp.flatnonzero((spread > 0) & ((spread < low) | (spread > high)))
    if bad.size:
        j = int(bad[0])
        where = "" if cols.shape[1] == 1 else " (column {})".format(j)
        raise ValueError(
            "{}: the data's scale is the problem: its standard deviation{} is "
            "{:.3g}, outside [{:g}, {:g}], the range over which this model's "
            "float64 computations (squares, Hessians in 1/variance^2) are "
            "reliable. Rescale the data (e.g. divide by a power of 10 near "
            "its standard deviation), fit, and transform the estimates "
            "back.".format(name, where, spread[j], low, high))


def check_tol(value: Any, name: str = "tol") -> float:
    """A convergence tolerance: a real number (not a bool) in ``(0, 1)``."""
    if isinstance(value, (bool, onp.bool_)) or not isinstance(
            value, (int, float, onp.floating)) or not 0 < value < 1:
        raise ValueError("{}: expected a number in (0, 1), got {!r}".format(
            name, value))
    return float(value)


def resolve_rng(rng: Any) -> onp.random.Generator:
    """``None`` (fresh entropy), an int seed or a ``Generator`` (used as is)."""
    if rng is None:
        return onp.random.default_rng()
    if isinstance(rng, onp.random.Generator):
        return rng
    if isinstance(rng, (int, onp.integer)) and not isinstance(rng, bool):
        return onp.random.default_rng(int(rng))
    raise TypeError("rng: expected None, an int seed or a "
                    "numpy.random.Generator, got {}".format(
                        type(rng).__name__))


def _format_shape(shape: Sequence[Optional[int]]) -> str:
    inner = ", ".join("n" if size is None else str(size) for size in shape)
    return "(" + inner + ("," if len(shape) == 1 else "") + ")"


def real_array(value: Any, name: str,
               shape: Union[int, Sequence[Optional[int]]]) -> onp.ndarray:
    """A finite float64 copy of ``value``.

    ``shape`` is a number of dimensions, or a shape whose ``None`` entries
    may have any size.
    """
    arr = onp.asarray(value)
    if arr.dtype == object or arr.dtype.kind not in "biuf":
        raise TypeError("{}: expected real numbers, got dtype {}".format(
            name, arr.dtype))
    if isinstance(shape, (int, onp.integer)):
        shape = (None,) * int(shape)
    if arr.ndim != len(shape) or any(
            want is not None and got != want
            for got, want in zip(arr.shape, shape)):
        want = ("a {}-dimensional array".format(len(shape))
                if all(size is None for size in shape)
                else "shape " + _format_shape(shape))
        raise ValueError("{}: expected {}, got shape {}".format(
            name, want, arr.shape))
    arr = onp.array(arr, dtype=float)
    bad = onp.argwhere(~onp.isfinite(arr))
    if len(bad):
        where = ", ".join(str(int(i)) for i in bad[0])
        raise ValueError("{}[{}] is {}; expected finite values".format(
            name, where, arr[tuple(bad[0])]))
    return arr


def check_design(x: Any, y: Any) -> Tuple[onp.ndarray, onp.ndarray]:
    """A regression design: ``x`` (N, p) with ``N, p >= 1`` and ``y`` (N,),
    both finite (float64 copies)."""
    x = real_array(x, "x", 2)
    if x.shape[0] == 0 or x.shape[1] == 0:
        raise ValueError("x: expected at least one row and one column, got "
                         "shape {}".format(x.shape))
    y = real_array(y, "y", 1)
    if y.shape[0] != x.shape[0]:
        raise ValueError("y: expected one entry per row of x ({}), got "
                         "{}".format(x.shape[0], y.shape[0]))
    return x, y


def check_index_range(index: onp.ndarray, size: Optional[int], name: str,
                      size_name: str) -> None:
    """Every entry of the 1-d integer ``index`` lies in ``[0, size)`` (is
    non-negative when ``size`` is None)."""
    low = onp.flatnonzero(index < 0)
    if low.size:
        raise ValueError("{}: expected non-negative indices, {}[{}] is "
                         "{}".format(name, name, low[0], index[low[0]]))
    if size is None:
        return
    high = onp.flatnonzero(index >= size)
    if high.size:
        raise ValueError("{}: expected indices in [0, {}) = [0, {}), {}[{}] "
                         "is {}".format(name, size_name, size, name, high[0],
                                        index[high[0]]))


def index_array(value: Any, name: str, length: int, what: str,
                per: str) -> onp.ndarray:
    """An int64 copy of ``value``, integer indices of shape ``(length,)``
    (one ``what`` index per ``per``); the range is not checked."""
    arr = onp.asarray(value)
    if arr.dtype.kind not in "iu":
        raise TypeError("{}: expected integer {} indices, got dtype "
                        "{}".format(name, what, arr.dtype))
    if arr.shape != (length,):
        raise ValueError("{}: expected shape ({},), one index per {}, got "
                         "{}".format(name, length, per, arr.shape))
    return arr.astype(onp.int64)


def group_index(group: Any, n_obs: int, n_groups: Any = None,
                min_groups: int = 1) -> Tuple[onp.ndarray, int]:
    """Validated group labels, one per row, and the number of groups.

    ``group`` may be integers or integral floats; ``n_groups`` defaults to
    ``max(group) + 1`` and must be at least ``min_groups``.  Returns an
    int64 copy and ``n_groups``.
    """
    arr = onp.asarray(group)
    if arr.dtype.kind == "f" and arr.ndim == 1:
        bad = onp.flatnonzero(~onp.isfinite(arr))
        if bad.size:
            raise ValueError("group[{}] is {}; expected finite integer "
                             "indices".format(bad[0], arr[bad[0]]))
        bad = onp.flatnonzero(arr != onp.round(arr))
        if bad.size:
            raise TypeError("group: expected integer group indices, got "
                            "group[{}] = {}".format(bad[0], arr[bad[0]]))
        arr = arr.astype(onp.int64)
    arr = index_array(arr, "group", n_obs, "group", "row of x")
    check_index_range(arr, None, "group", "n_groups")
    if n_groups is None:
        n_groups = int(arr.max()) + 1 if n_obs else 0
    n_groups = check_int(n_groups, "n_groups", min_groups)
    check_index_range(arr, n_groups, "group", "n_groups")
    return arr, n_groups


def check_init(init: Any, pattern: Pattern) -> dict:
    """A starting value: a dict that ``pattern`` validates, copied to float
    arrays of the pattern's folded shapes."""
    keys = ["'{}'".format(key) for key in pattern]
    listed = (", ".join(keys[:-1]) + " and " + keys[-1]) if len(keys) > 1 \
        else keys[0]
    if not isinstance(init, dict):
        raise TypeError("init: expected a dict with {}, got {}".format(
            listed, type(init).__name__))
    ok, message = pattern.validate_folded(init)
    if not ok:
        raise ValueError(message.replace("params", "init", 1))
    shapes = pattern.empty(False)
    return {key: onp.array(init[key], dtype=float).reshape(
        onp.shape(shapes[key])) for key in pattern}
