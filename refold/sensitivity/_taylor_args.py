"""Argument checks and solver construction of the Taylor expansion
(private)."""
from __future__ import annotations

from typing import Any, Callable

import numpy as np

from refold.sensitivity._checks import check_int, real_array
from refold.sensitivity.solvers import _FACTORISING_KINDS, as_solver


def _check_positive_int(value: Any, name: str) -> int:
    return check_int(value, name, minimum=1, type_error=ValueError)


def _as_real_array(value: Any, name: str) -> np.ndarray:
    """A finite float64 copy of ``value``; errors name ``name``."""
    arr = np.array(real_array(value, name, allow_bool=True), dtype=np.float64)
    if not np.all(np.isfinite(arr)):
        bad = np.argwhere(~np.isfinite(arr))[0]
        where = f"{name}[{', '.join(str(int(i)) for i in bad)}]" \
            if arr.ndim else name
        raise ValueError(f"{name} must be finite; {where} is "
                         f"{arr[tuple(bad)] if arr.ndim else arr}")
    return arr


def _checked_matrix(matrix: np.ndarray, par0: np.ndarray,
                    what: str) -> np.ndarray:
    """A dense derivative matrix at the base point, checked: (D, D), finite."""
    if matrix.shape != (par0.size, par0.size):
        raise ValueError(f"{what} must be a ({par0.size}, {par0.size}) "
                         f"matrix; got shape {matrix.shape}")
    if not np.all(np.isfinite(matrix)):
        raise ValueError(f"{what} is not finite at (input_val0, hyper_val0)")
    return matrix


def _kind_solver(kind: str, name: str, options: dict,
                 **kwargs) -> Callable:
    """A solver of the given kind; solver errors name ``name``."""
    kwargs.update(options)
    if kind in _FACTORISING_KINDS:
        kwargs.setdefault("name", name)
    try:
        return as_solver(kind, **kwargs)
    except ValueError as err:
        if name in str(err):
            raise
        raise type(err)(f"{name} cannot be used with hess_solver="
                         f"{kind!r}: {err}") from err

