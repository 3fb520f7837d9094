"""Checks shared by the patterns of stacks of symmetric matrices.

The PSD and correlation patterns validate stacks of matrices (leading batch
dimensions, then ``n x n``) with one batched operation each; these helpers
do the batched work and, on the error path only, find which matrix of the
stack failed so that the message can name it. The tolerances themselves
belong to each pattern (they are part of its documented contract).
"""
from __future__ import annotations

import autograd.numpy as np
import numpy as onp

from refold.patterns._checks import first_index

__all__ = ["transpose", "asymmetry", "try_cholesky", "eigenvalue_range",
           "first_not_positive_definite"]


def transpose(x):
    """Swap the last two axes (autograd-safe)."""
    return np.swapaxes(x, -1, -2)


def asymmetry(raw: onp.ndarray) -> onp.ndarray:
    r""":math:`|A - A^\top|` of each matrix of a stack (``inf`` where the
    difference overflows)."""
    with onp.errstate(over="ignore"):
        return onp.abs(raw - onp.swapaxes(raw, -1, -2))


def try_cholesky(matrix: onp.ndarray):
    """Batched Cholesky factor, or ``None`` if any matrix is not positive
    definite (its factorisation fails or is not finite)."""
    try:
        with onp.errstate(invalid="ignore"):
            chol = onp.linalg.cholesky(matrix)
    except onp.linalg.LinAlgError:
        return None
    return chol if onp.all(onp.isfinite(chol)) else None


def eigenvalue_range(stack: onp.ndarray):
    """``(smallest, largest)``: the extreme eigenvalues of each symmetric
    matrix of a stack (shape ``batch``); NaN when they cannot be computed."""
    with onp.errstate(all="ignore"):
        try:
            eig = onp.linalg.eigvalsh(stack)
        except onp.linalg.LinAlgError:
            nan = onp.full(stack.shape[:-2], onp.nan)
            return nan, nan
    return eig[..., 0], eig[..., -1]


def first_not_positive_definite(stack: onp.ndarray):
    """``(element, smallest)`` for a symmetric stack whose batched Cholesky
    factorisation failed: the batch index of the first matrix that is not
    positive definite and the smallest eigenvalue of each matrix."""
    smallest = eigenvalue_range(stack)[0]
    bad = ~(smallest > 0)
    if not bad.any():
        # Positive eigenvalues too small for a Cholesky factorisation:
        # find the failing matrix one by one (error path only).
        bad = onp.zeros(stack.shape[:-2], dtype=bool)
        for idx in onp.ndindex(*stack.shape[:-2]):
            try:
                onp.linalg.cholesky(stack[idx])
            except onp.linalg.LinAlgError:
                bad[idx] = True
                break
    element = first_index(bad) if bad.ndim else ()
    return element, smallest
