r"""Numeric arrays, optionally bounded: ``NumericArrayPattern`` and friends.

Free parameterisations (exactly paragami's, so free vectors interchange):

=====================  ===========================================
bounds                 free value of :math:`x`
=====================  ===========================================
none                   :math:`x`
:math:`[l, \infty)`    :math:`\log(x - l)`
:math:`(-\infty, u]`   :math:`-\log(u - x)`
:math:`[l, u]`         :math:`\log(x - l) - \log(u - x)`
=====================  ===========================================

The inverses are computed so that no finite free value folds to NaN: the
two-sided map uses the logistic function on the side of the nearer bound
(:math:`x = u - w\,\sigma(-f)` for :math:`f > 0`, :math:`x = l + w\,\sigma(f)`
otherwise, :math:`w = u - l`), so the result stays inside the bounds and
keeps full relative precision next to either bound.
"""
from __future__ import annotations

import itertools
from typing import Optional

import autograd.numpy as np
import numpy as onp
from autograd.tracer import getval

from refold.patterns._array_pattern import ArrayPattern
from refold.patterns._checks import (
    check_free_flag, check_real_scalar, check_shape, check_size,
    element_path, first_index, first_nonfinite, path_error, surely_finite)

__all__ = ["NumericArrayPattern", "NumericVectorPattern",
           "NumericScalarPattern"]

_LOG2 = onp.log(2.0)
_BLOCK = 1 << 17  # elements per block of the in-place free map (1 MiB)


class NumericArrayPattern(ArrayPattern):
    r"""An array of real numbers, each in ``[lb, ub]``.

    Parameters
    ----------
    shape : tuple of int
        Shape of the folded array.
    lb, ub : float, optional
        Inclusive lower and upper bounds (``-inf``/``inf`` for none). Each
        free coordinate maps one entry, see the module notes.
    default_validate : bool, optional
        Whether values are checked against the bounds by default.
    free_default : bool or None, optional
        Default for ``free``.

    Raises
    ------
    ValueError
        If ``lb >= ub``, a bound is NaN, or ``shape`` has a negative size.
    TypeError
        If an argument has the wrong type.

    Examples
    --------
    >>> import numpy as np
    >>> from refold import NumericArrayPattern
    >>> pattern = NumericArrayPattern((2,), lb=0.0)
    >>> pattern.flatten(np.array([1.0, np.e]), free=True)
    array([0., 1.])
    """

    _json_name = "refold.NumericArrayPattern"

    def __init__(self, shape, lb: float = -float("inf"),
                 ub: float = float("inf"), default_validate: bool = True,
                 free_default: Optional[bool] = None):
        self._shape = check_shape(shape)
        self._lb = check_real_scalar(lb, "lb")
        self._ub = check_real_scalar(ub, "ub")
        if not self._lb < self._ub:
            raise ValueError(
                "lb, ub: the lower bound must be strictly below the upper "
                "bound, got lb={} and ub={}".format(self._lb, self._ub))
        if self._lb == float("inf") or self._ub == -float("inf"):
            raise ValueError("lb, ub: got lb={} and ub={}, which admit no "
                             "finite value".format(self._lb, self._ub))
        self.default_validate = check_free_flag(
            default_validate, "default_validate")
        self._size = int(onp.prod(self._shape, dtype=int))
        self._has_lb = self._lb > -float("inf")
        self._has_ub = self._ub < float("inf")
        width = self._ub - self._lb
        # A width that overflows is handled by working with half-widths.
        self._half = not onp.isfinite(width)
        self._width = (self._ub / 2 - self._lb / 2) if self._half else width
        # The innermost floats: a fold that rounds onto a bound (lb + exp(f)
        # with exp(f) below half an ulp of lb) is moved to them, so that
        # every folded value validates and flattens back.
        self._inner = (onp.nextafter(self._lb, onp.inf),
                       onp.nextafter(self._ub, -onp.inf))
        if (self._has_lb or self._has_ub) and \
                not self._inner[0] <= self._inner[1]:
            raise ValueError(
                "lb, ub: no float lies strictly between lb={} and ub={}, so "
                "the free parameterisation has no values".format(
                    self._lb, self._ub))
        super().__init__(self._size, self._size, free_default=free_default)

    # paragami's accessors ------------------------------------------------

    def shape(self) -> tuple:
        """Shape of the folded array."""
        return self._shape

    def bounds(self) -> tuple:
        """``(lb, ub)``."""
        return self._lb, self._ub

    def _constructor_args(self) -> dict:
        return {"shape": self._shape, "lb": self._lb, "ub": self._ub}

    def __str__(self):
        return "NumericArrayPattern {} (lb={}, ub={})".format(
            self._shape, self._lb, self._ub)

    def flat_names(self, free=None) -> list:
        """Names ``'[i,j]'`` of the entries (the same free or not)."""
        return ["[" + ",".join(str(i) for i in idx) + "]"
                for idx in itertools.product(*(range(n) for n in self._shape))]

    # The batched protocol ----------------------------------------------

    def _full_shape(self, batch_shape):
        return tuple(batch_shape) + self._shape

    def _valid_element(self):
        if self._has_lb and self._has_ub:
            return self._lb + self._width * (2.0 if self._half else 1.0) / 2
        if self._has_lb:
            return self._lb + 1.0
        if self._has_ub:
            return self._ub - 1.0
        return 0.0

    def _fold_b(self, flat, batch_shape, free, validate, path):
        if not free:
            return self._fold_flat(flat, batch_shape, validate, path)
        if self.default_validate if validate is None else validate:
            raw = flat if type(flat) is onp.ndarray else getval(flat)
            if not surely_finite(raw):
                idx = first_nonfinite(raw)
                if idx is not None:
                    raise path_error(
                        path, "the free flat value is {} at free "
                        "coordinate {}; free values must be "
                        "finite".format(raw[idx], idx[-1]))
        folded = self._off_the_bounds(self._constrain(flat))
        shape = self._full_shape(batch_shape) if batch_shape else self._shape
        if type(folded) is onp.ndarray:
            return folded.reshape(shape)
        return np.reshape(folded, shape)

    def _flatten_b(self, folded, batch_shape, free, validate, path):
        folded, raw = self._check_shape_of(folded, batch_shape, path)
        check = self._validate(validate)
        if not free:
            return self._flatten_flat(folded, raw, batch_shape, check, path)
        out_shape = tuple(batch_shape) + (self._size,)
        if not (self._has_lb or self._has_ub):
            if check:
                self._check_values(raw, batch_shape, path, True)
            return np.reshape(folded, out_shape) * 1.0
        with onp.errstate(invalid="ignore", divide="ignore", over="ignore"):
            free_val = self._unconstrain_fast(folded)
        raw_free = getval(free_val)
        if not onp.isfinite(raw_free).all():
            # Either invalid (diagnosed with a message) or an overflow in
            # the fast formula, recomputed the careful way.
            self._check_values(raw, batch_shape, path, True)
            free_val = self._unconstrain_careful(folded)
        if type(free_val) is onp.ndarray:
            return free_val.reshape(out_shape)
        return np.reshape(free_val, out_shape)

    # Jacobians ----------------------------------------------------------

    def _jac_diag(self, folded, kind):
        """Diagonal of the freeing Jacobian d free / d x (autograd-safe)."""
        x = folded
        if self._has_lb and self._has_ub:
            lo, hi = x - self._lb, self._ub - x
            d = 1.0 / lo + 1.0 / hi
        elif self._has_lb:
            d = 1.0 / (x - self._lb)
        elif self._has_ub:
            d = 1.0 / (self._ub - x)
        else:
            d = np.ones(np.shape(x))
        return d if kind == "freeing" else 1.0 / d

    def _jac_coo_b(self, folded, batch_shape, kind):
        n = int(onp.prod(batch_shape, dtype=int)) * self._size
        diag = onp.asarray(getval(self._jac_diag(
            onp.asarray(getval(folded), dtype=float), kind))).reshape(-1)
        idx = onp.arange(n)
        return idx, idx, diag

    def _log_abs_det_b(self, folded, batch_shape, kind):
        x = np.reshape(folded, tuple(batch_shape) + (self._size,))
        if not (self._has_lb or self._has_ub):
            return np.zeros(tuple(batch_shape))
        if self._has_lb and self._has_ub:
            lo, hi = x - self._lb, self._ub - x
            # log(1/lo + 1/hi) = log(lo + hi) - log(lo) - log(hi)
            logd = np.log(lo + hi) - np.log(lo) - np.log(hi)
        elif self._has_lb:
            logd = -np.log(x - self._lb)
        else:
            logd = -np.log(self._ub - x)
        total = np.sum(logd, axis=-1)
        return total if kind == "freeing" else -total

    def _free_dependency(self):
        import scipy.sparse as osp
        return osp.identity(self._size, format="csr", dtype=bool)

    # Internals ----------------------------------------------------------

    def _shape_mismatch(self, folded, raw, batch_shape, path):
        if raw.ndim == 0 and self._full_shape(batch_shape) == (1,):
            # paragami accepts a bare scalar for a scalar pattern.
            return np.reshape(folded, (1,)), raw.reshape(1)
        return super()._shape_mismatch(folded, raw, batch_shape, path)

    def _check_values(self, raw, batch_shape, path, strict):
        """Raise for NaN/inf or out-of-bound entries of a raw array."""
        if raw.size == 0:
            return
        if raw.dtype.kind == "b":
            raw = raw.astype(float)
        with onp.errstate(invalid="ignore"):
            if strict:
                ok = (raw > self._lb) & (raw < self._ub)
            else:
                ok = (raw >= self._lb) & (raw <= self._ub)
            if self._has_lb and self._has_ub:
                pass  # finite bounds already exclude inf and NaN
            else:
                ok &= onp.isfinite(raw)
        if ok.all():
            return
        idx = first_index(~ok)
        value = raw[idx]
        where = element_path(path, idx)
        if not onp.isfinite(value):
            raise path_error(where, "expected a finite number, got {}".format(
                value))
        if strict and (value == self._lb or value == self._ub):
            raise path_error(
                where, "the value {} lies on the bound, where the free "
                "parameterisation is infinite; free values need "
                "{} < x < {}".format(value, self._lb, self._ub))
        side = "below the lower bound lb={}".format(self._lb) \
            if value < self._lb else \
            "above the upper bound ub={}".format(self._ub)
        raise path_error(where, "the value {} is {}".format(value, side))

    def _off_the_bounds(self, folded):
        """Folded values that rounded onto a bound, moved to the innermost
        float (see ``_inner``): the free map there is finite, so the value
        validates and flattens back to a free value folding to it again."""
        if not (self._has_lb or self._has_ub):
            return folded
        lo, hi = self._inner
        if type(folded) is onp.ndarray:
            return onp.clip(folded, lo, hi, out=folded)
        return np.clip(folded, lo, hi)

    def _constrain(self, free):
        """Map free values to the bounded set; never NaN for finite input.

        Plain arrays take numpy directly (no autograd dispatch); traced
        values take the same formulas through ``autograd.numpy``.
        """
        if type(free) is onp.ndarray:
            return self._constrain_numpy(free)
        xp = np
        if self._has_lb and self._has_ub:
            positive = getval(free) > 0
            # exp of the non-positive part only: no overflow, so no inf
            # enters either branch of the where (nor its derivatives).
            e_hi = xp.exp(-xp.where(positive, free, 0.0))
            e_lo = xp.exp(xp.where(positive, 0.0, free))
            scale = 2.0 if self._half else 1.0
            x_hi = self._ub - scale * (self._width * (e_hi / (1.0 + e_hi)))
            x_lo = self._lb + scale * (self._width * (e_lo / (1.0 + e_lo)))
            return xp.where(positive, x_hi, x_lo)
        if self._has_lb:
            return self._lb + xp.exp(free)
        if self._has_ub:
            return self._ub - xp.exp(-free)
        return free * 1.0

    def _constrain_numpy(self, free):
        """``_constrain`` for plain arrays, with few ufunc calls."""
        if self._has_lb and self._has_ub:
            # The distance from the nearer bound, w * sigmoid(-|f|), keeps
            # full relative precision next to either bound.
            # (scipy's expit underflows early: exp(-740) is representable.)
            dist = onp.abs(free, dtype=float)
            onp.negative(dist, out=dist)
            onp.exp(dist, out=dist)
            dist /= dist + 1.0
            dist *= self._width  # a half-width when the width overflows;
            if self._half:       # dist <= width / 2, so doubling is finite
                dist *= 2.0
            return onp.where(free > 0, self._ub - dist, self._lb + dist)
        if self._has_lb:
            out = onp.exp(free)
            out += self._lb
            return out
        if self._has_ub:
            out = onp.exp(-free)
            return onp.subtract(self._ub, out, out=out)
        return onp.array(free, dtype=float)

    def _unconstrain_fast(self, x):
        """The free map by the short formula (may overflow: then careful)."""
        if type(x) is onp.ndarray:
            return self._unconstrain_numpy(x.reshape(-1))
        # Traced values: a difference of logs, whose derivatives cannot
        # overflow the way those of log(a / b) do (x / y**2) at wide bounds.
        if self._has_lb and self._has_ub:
            return np.log(x - self._lb) - np.log(self._ub - x)
        if self._has_lb:
            return np.log(x - self._lb)
        return -np.log(self._ub - x)

    def _unconstrain_numpy(self, x):
        """The short formula on a plain 1-d array, computed in place.

        Large temporaries cost page faults that dominate one pass of
        ``log``, so the two-sided map works through cache-sized blocks.
        """
        if self._has_lb and not self._has_ub and self._lb == 0.0:
            return onp.log(x, dtype=float)
        out = onp.empty(x.shape, dtype=float)
        block = _BLOCK if x.size > _BLOCK else max(x.size, 1)
        buffer = onp.empty(block, dtype=float)
        for start in range(0, x.size, block):
            part, dest = x[start:start + block], out[start:start + block]
            if self._has_lb and self._has_ub:
                onp.subtract(part, self._lb, out=dest)
                tmp = buffer[:part.size]
                onp.subtract(self._ub, part, out=tmp)
                dest /= tmp
                onp.log(dest, out=dest)
            elif self._has_lb:
                onp.subtract(part, self._lb, out=dest)
                onp.log(dest, out=dest)
            else:
                onp.subtract(self._ub, part, out=dest)
                onp.log(dest, out=dest)
                onp.negative(dest, out=dest)
        return out

    def _unconstrain_careful(self, x):
        """Overflow-free version, for values whose differences overflow."""
        def log_diff(a, b):
            # log(a - b) for a > b: directly where the difference is finite
            # (halving would lose the smallest subnormal differences), by
            # halves where it overflows; each log sees only safe inputs.
            with onp.errstate(over="ignore", invalid="ignore"):
                direct = a - b
            ok = onp.isfinite(getval(direct))
            if ok.all():
                return np.log(direct)
            half = np.log(np.where(ok, 2.0, a / 2.0 - b / 2.0)) + _LOG2
            if not ok.any():
                return half
            return np.where(ok, np.log(np.where(ok, direct, 1.0)), half)
        if self._has_lb and self._has_ub:
            return log_diff(x, self._lb) - log_diff(self._ub, x)
        if self._has_lb:
            return log_diff(x, self._lb)
        return -log_diff(self._ub, x)


class NumericVectorPattern(NumericArrayPattern):
    """A vector of real numbers in ``[lb, ub]``; see :class:`NumericArrayPattern`.

    Parameters
    ----------
    length : int
        Length of the vector.
    lb, ub, default_validate, free_default
        As for :class:`NumericArrayPattern`.
    """

    _json_name = "refold.NumericVectorPattern"

    def __init__(self, length: int, lb: float = -float("inf"),
                 ub: float = float("inf"), default_validate: bool = True,
                 free_default: Optional[bool] = None):
        super().__init__((check_size(length, "length", 0),), lb=lb, ub=ub,
                         default_validate=default_validate,
                         free_default=free_default)

    def length(self) -> int:
        """Length of the vector."""
        return self._shape[0]

    def _constructor_args(self) -> dict:
        return {"length": self._shape[0], "lb": self._lb, "ub": self._ub}


class NumericScalarPattern(NumericArrayPattern):
    """A real number in ``[lb, ub]``, folded as an array of shape ``(1,)``.

    As in paragami, ``flatten`` also accepts a bare scalar.
    """

    _json_name = "refold.NumericScalarPattern"

    def __init__(self, lb: float = -float("inf"), ub: float = float("inf"),
                 default_validate: bool = True,
                 free_default: Optional[bool] = None):
        super().__init__((1,), lb=lb, ub=ub, default_validate=default_validate,
                         free_default=free_default)

    def _constructor_args(self) -> dict:
        return {"lb": self._lb, "ub": self._ub}
