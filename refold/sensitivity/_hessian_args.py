"""Argument checks shared by the structured-Hessian builders (private):
the probe's random source, finite products, index arrays.  (The point is
checked by :func:`refold.sensitivity._checks.finite_array`.)"""
from typing import Any

import numpy as onp


def _as_rng(rng: Any) -> onp.random.Generator:
    if rng is None:
        return onp.random.default_rng(0)
    if isinstance(rng, onp.random.Generator):
        return rng
    if isinstance(rng, (int, onp.integer)) and not isinstance(rng, bool):
        return onp.random.default_rng(int(rng))
    raise TypeError(f"rng must be None, an int seed or a "
                    f"numpy.random.Generator; got {type(rng).__name__}.")


def _check_finite_product(product: onp.ndarray, what: str,
                          name: str = "opt_par") -> None:
    bad = onp.flatnonzero(~onp.isfinite(product))
    if len(bad):
        raise ValueError(f"The Hessian-vector product for {what} is not "
                         f"finite at coordinate {bad[0]}: the objective's "
                         f"second derivatives are not finite at {name}.")


_ONE_SIZE = ("blocks of one size; local blocks of unequal sizes are "
             "taken by ArrowheadHessian.from_sparse and found by "
             "solver='auto'")


def _as_index_array(value: Any, name: str, ndim: int) -> onp.ndarray:
    try:
        arr = onp.asarray(value)
    except ValueError:              # ragged nested sequences
        raise ValueError(f"{name} must be a {ndim}-dimensional integer array"
                         + (f" ({_ONE_SIZE})" if ndim == 2 else "")
                         + "; got a ragged sequence") from None
    if arr.dtype == bool or not onp.issubdtype(arr.dtype, onp.integer):
        if arr.size == 0 and arr.dtype != bool and onp.issubdtype(
                arr.dtype, onp.number):
            arr = arr.astype(onp.int64)
        else:
            raise TypeError(f"{name} must be an array of integer indices; "
                            f"got dtype {arr.dtype}.")
    if arr.ndim != ndim:
        raise ValueError(f"{name} must be {ndim}-dimensional"
                         + (f" ({_ONE_SIZE})" if ndim == 2 else "")
                         + f"; got shape {arr.shape}.")
    arr = arr.astype(onp.int64)
    if arr.size and arr.min() < 0:
        raise ValueError(f"{name} must hold non-negative indices; found "
                         f"{int(arr.min())}.")
    uniq, counts = onp.unique(arr, return_counts=True)
    if onp.any(counts > 1):
        raise ValueError(f"The indices in {name} must be unique; "
                         f"{int(uniq[counts > 1][0])} appears "
                         f"{int(counts[counts > 1][0])} times.")
    return arr

