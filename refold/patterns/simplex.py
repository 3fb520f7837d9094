r"""Arrays of probability vectors: ``SimplexArrayPattern``.

The last axis of the folded array holds one simplex
:math:`s = (s_0, \dots, s_{K-1})`, :math:`s_k \ge 0`, :math:`\sum_k s_k = 1`.

Free parameterisation (exactly paragami's, so free vectors interchange): for
each simplex, :math:`f_k = \log(s_k / s_0)` for :math:`k = 1, \dots, K-1`,
stored element-major (simplex after simplex). The inverse is a softmax with a
zero reference logit for :math:`s_0`,

.. math::
    s_k = \frac{e^{f_k - m}}{e^{-m} + \sum_{j \ge 1} e^{f_j - m}},
    \qquad f_0 = 0,\; m = \max(0, f_1, \dots, f_{K-1}),

which never overflows: no finite free value folds to NaN (a probability
whose exact value underflows comes out as 0).

Jacobians are block-diagonal, one block per simplex:

- freeing, :math:`\partial f / \partial s` ((K-1) x K): :math:`-1/s_0` in
  column 0 and :math:`1/s_k` on the shifted diagonal;
- unfreeing, :math:`\partial s / \partial f` (K x (K-1)):
  :math:`\mathrm{diag}(s) - s s^\top` without its first column.

Log-determinants: the K entries of a simplex are not independent, so the
square map used is the one to the non-free coordinates
:math:`s_1, \dots, s_{K-1}` (the reference :math:`s_0 = 1 - \sum_{k\ge1}
s_k` is determined by them). Its Jacobian
:math:`\mathrm{diag}(s_{1:}) - s_{1:} s_{1:}^\top` has determinant
:math:`\prod_{k \ge 1} s_k \,(1 - \sum_{k \ge 1} s_k) = \prod_{k=0}^{K-1}
s_k`, so ``log_abs_det_unfreeing_jacobian`` is :math:`\sum_k \log s_k`
(summed over the simplexes) and the freeing one its negative.
"""
from __future__ import annotations

import itertools
from typing import Optional

import autograd.numpy as np
import numpy as onp
import scipy.sparse as osp
from autograd.tracer import getval

from refold.patterns._array_pattern import ArrayPattern
from refold.patterns._checks import (
    check_free_flag, check_shape, check_size, element_path, first_index,
    first_nonfinite, path_error)

__all__ = ["SimplexArrayPattern", "logsumexp"]

#: A simplex may miss a sum of one by this many ulps per entry (the rounding
#: of a softmax and of the sum itself each contribute about one per entry).
SUM_TOLERANCE_ULPS = 8


def sum_tolerance(dtype, simplex_size: int) -> float:
    """Allowed ``|sum - 1|`` for a simplex of ``simplex_size`` entries."""
    dtype = onp.dtype(dtype)
    eps = onp.finfo(dtype if dtype.kind == "f" else float).eps
    return float(SUM_TOLERANCE_ULPS * simplex_size * eps)


class SimplexArrayPattern(ArrayPattern):
    r"""An array of simplexes (probability vectors) along the last axis.

    Parameters
    ----------
    simplex_size : int
        Number of entries K of each simplex (at least 2).
    array_shape : tuple of int
        Shape of the array of simplexes; the folded value has shape
        ``array_shape + (simplex_size,)``.
    default_validate : bool, optional
        Whether values are checked (finite, non-negative, summing to one
        within ``8 * K * eps`` of their dtype) by default.
    free_default : bool or None, optional
        Default for ``free``.

    Raises
    ------
    ValueError
        If ``simplex_size < 2`` or ``array_shape`` has a negative size.
    TypeError
        If an argument has the wrong type.

    Notes
    -----
    The free coordinates of a simplex are :math:`\log(s_k / s_0)`,
    :math:`k = 1..K-1`; see the module notes for the stable inverse, the
    Jacobians and the coordinates used for the log-determinants.

    Examples
    --------
    >>> import numpy as np
    >>> from refold.patterns.simplex import SimplexArrayPattern
    >>> pattern = SimplexArrayPattern(3, (2,))
    >>> value = np.array([[0.5, 0.25, 0.25], [0.2, 0.2, 0.6]])
    >>> pattern.flatten(value, free=True).round(4)
    array([-0.6931, -0.6931,  0.    ,  1.0986])
    """

    _json_name = "refold.SimplexArrayPattern"

    def __init__(self, simplex_size: int, array_shape,
                 default_validate: bool = True,
                 free_default: Optional[bool] = None):
        self._k = check_size(simplex_size, "simplex_size", 2)
        self._array_shape = check_shape(array_shape, "array_shape")
        self.default_validate = check_free_flag(
            default_validate, "default_validate")
        self._num = int(onp.prod(self._array_shape, dtype=int))
        super().__init__(self._num * self._k, self._num * (self._k - 1),
                         free_default=free_default)

    # paragami's accessors ------------------------------------------------

    def array_shape(self) -> tuple:
        """Shape of the array of simplexes (without the simplex axis)."""
        return self._array_shape

    def simplex_size(self) -> int:
        """Number of entries of each simplex."""
        return self._k

    def shape(self) -> tuple:
        """Shape of the folded array, ``array_shape + (simplex_size,)``."""
        return self._array_shape + (self._k,)

    def _constructor_args(self) -> dict:
        return {"simplex_size": self._k, "array_shape": self._array_shape}

    def __str__(self):
        return "SimplexArrayPattern {} of {}-d simplexes".format(
            self._array_shape, self._k)

    def flat_names(self, free=None) -> list:
        """Names ``'[i,j,k]'``: simplex ``(i, j)``, entry ``k``.

        The free coordinate named ``'[i,j,k]'`` is
        :math:`\\log(s_k / s_0)` of that simplex, so free names start at
        ``k = 1``.
        """
        free = self._free_with_default(free)
        first = 1 if free else 0
        return ["[" + ",".join(str(i) for i in idx + (k,)) + "]"
                for idx in itertools.product(*(range(n) for n in
                                               self._array_shape))
                for k in range(first, self._k)]

    # The batched protocol ----------------------------------------------

    def _full_shape(self, batch_shape, free=False):
        return tuple(batch_shape) + self._array_shape + \
            (self._k - 1 if free else self._k,)

    def _valid_element(self):
        return 1.0 / self._k

    def _fold_b(self, flat, batch_shape, free, validate, path):
        if not free:
            return self._fold_flat(flat, batch_shape, validate, path)
        free_val = np.reshape(flat, self._full_shape(batch_shape, True))
        raw = onp.asarray(getval(free_val))
        if self._validate(validate):
            idx = first_nonfinite(raw)
            if idx is not None:
                raise path_error(
                    _where(path, idx), "the free value log(s_{}/s_0) is {}; "
                    "free values must be finite".format(idx[-1] + 1, raw[idx]))
        return _softmax_with_reference(free_val, raw)

    def _flatten_b(self, folded, batch_shape, free, validate, path):
        folded, raw = self._check_shape_of(folded, batch_shape, path)
        check = self._validate(validate)
        if not free:
            return self._flatten_flat(folded, raw, batch_shape, check, path)
        if check:
            self._check_values(raw, batch_shape, path, True)
        with onp.errstate(divide="ignore", invalid="ignore"):
            log_s = np.log(folded)
        free_val = log_s[..., 1:] - log_s[..., :1]
        if not check and not onp.all(onp.isfinite(getval(free_val))):
            # Unvalidated, but a free value must never be NaN or infinite.
            self._check_values(raw, batch_shape, path, True,
                               check_sum=False)
        return np.reshape(free_val, tuple(batch_shape) +
                          (self._num * (self._k - 1),))

    # Jacobians ----------------------------------------------------------

    def _jac_coo_b(self, folded, batch_shape, kind):
        k = self._k
        s = onp.asarray(getval(folded), dtype=float).reshape(-1, k)
        n = s.shape[0]
        elem = onp.arange(n)[:, None, None]
        r = onp.arange(k - 1)
        if kind == "freeing":
            # d f_r / d s: row r (f_r = log s_{r+1} - log s_0) of each block.
            rows = onp.broadcast_to(elem * (k - 1) + r[None, :, None],
                                    (n, k - 1, 2))
            cols = onp.stack(onp.broadcast_arrays(
                elem[..., 0] * k, elem[..., 0] * k + r + 1), axis=-1)
            vals = onp.stack(onp.broadcast_arrays(
                -1.0 / s[:, :1], 1.0 / s[:, 1:]), axis=-1)
        else:
            # d s_j / d f_r = s_j (delta_{j, r+1} - s_{r+1}).
            j = onp.arange(k)
            rows = onp.broadcast_to(elem * k + j[None, :, None], (n, k, k - 1))
            cols = onp.broadcast_to(elem * (k - 1) + r[None, None, :],
                                    (n, k, k - 1))
            delta = (j[:, None] == r[None, :] + 1).astype(float)
            vals = s[:, :, None] * (delta[None] - s[:, None, 1:])
        return rows.reshape(-1), cols.reshape(-1), vals.reshape(-1)

    def _log_abs_det_b(self, folded, batch_shape, kind):
        s = np.reshape(folded, tuple(batch_shape) + (self._num * self._k,))
        total = np.sum(np.log(s), axis=-1)
        return -total if kind == "freeing" else total

    def _free_dependency(self):
        block = osp.csr_matrix(onp.ones((self._k, self._k - 1), dtype=bool))
        return osp.kron(osp.identity(self._num, format="csr", dtype=bool),
                        block, format="csr").astype(bool)

    # Internals ----------------------------------------------------------

    def _shape_note(self, batch_shape):
        return " (an array {} of simplexes of size {})".format(
            tuple(batch_shape) + self._array_shape, self._k)

    def _check_values(self, raw, batch_shape, path, strict, check_sum=True):
        """Raise for a non-finite or negative entry or a bad sum."""
        if raw.size == 0:
            return
        values = raw.astype(float) if raw.dtype.kind in "biu" else raw
        idx = first_nonfinite(values)
        if idx is not None:
            raise path_error(_where(path, idx), "entry {} is {}; simplex "
                             "entries must be finite".format(
                                 idx[-1], values[idx]))
        negative = values < 0
        if negative.any():
            idx = first_index(negative)
            raise path_error(_where(path, idx), "entry {} is {}; simplex "
                             "entries must be non-negative".format(
                                 idx[-1], values[idx]))
        if check_sum:
            sums = onp.sum(values, axis=-1)
            tol = sum_tolerance(values.dtype, self._k)
            bad = onp.abs(sums - 1.0) > tol
            if bad.any():
                idx = first_index(bad)
                raise path_error(
                    _where(path, idx + (0,)), "the entries sum to {!r}, "
                    "not 1 (tolerance {:.2g}); a simplex must sum to "
                    "one".format(float(sums[idx]), tol))
        if strict:
            zero = values == 0
            if zero.any():
                idx = first_index(zero)
                raise path_error(
                    _where(path, idx), "entry {} is 0; the free "
                    "parameterisation log(s_k / s_0) needs every entry > 0 "
                    "(an exact zero has no free value)".format(idx[-1]))


def _where(path, idx):
    """The path of the simplex holding entry ``idx`` (its last axis)."""
    return element_path(path, idx[:-1])


def _softmax_with_reference(free_val, raw):
    """Softmax over ``[0, free]`` along the last axis, overflow-free.

    The shift ``m`` is a constant for autograd: the softmax does not depend
    on it, so its derivatives are exact without differentiating the max.
    """
    shift = onp.maximum(0.0, onp.max(raw, axis=-1, keepdims=True))
    with onp.errstate(over="ignore"):  # -1e308 - 1e308 is -inf: weight 0
        logits = np.concatenate([-shift, free_val - shift], axis=-1)
        weights = np.exp(logits)
    return weights / np.sum(weights, axis=-1, keepdims=True)


def logsumexp(mat, axis: int):
    r"""``log(sum(exp(mat), axis))`` without overflow, keeping ``axis``.

    paragami 0.42's ``simplex_patterns.logsumexp``: differentiable by
    autograd (it is built from ``max``, ``exp``, ``sum`` and ``log``), and
    the reduced axis is kept with length 1 (``keepdims=True``), so
    ``mat - logsumexp(mat, axis)`` normalises along ``axis``.

    Parameters
    ----------
    mat : array_like
    axis : int
        One axis (negative values count from the end).

    Returns
    -------
    numpy.ndarray
        The shape of ``mat`` with ``axis`` of length 1.

    Raises
    ------
    ValueError
        If ``axis`` is not one integer or is out of range.

    Examples
    --------
    >>> import numpy as np
    >>> logsumexp(np.log(np.array([[1.0, 3.0]])), axis=1)
    array([[1.38629436]])
    """
    if isinstance(axis, bool) or not isinstance(axis, (int, onp.integer)):
        raise ValueError("axis: expected one integer axis, got "
                         "{!r}".format(axis))
    ndim = np.ndim(mat)
    if not -ndim <= axis < ndim:
        raise ValueError("axis: {} is out of range for an array with {} "
                         "dimensions".format(axis, ndim))
    top = np.max(getval(mat), axis=axis, keepdims=True)
    top = onp.where(onp.isfinite(top), top, 0.0)
    return np.log(np.sum(np.exp(mat - top), axis=axis, keepdims=True)) + top
