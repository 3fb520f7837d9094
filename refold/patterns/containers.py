r"""Containers of patterns: ``PatternDict`` and ``PatternArray``.

Both are patterns themselves, so they nest. Their flat vectors concatenate
their members' flat vectors: a ``PatternDict`` in insertion order, a
``PatternArray`` element by element (element-major, last index fastest), so
free vectors interchange with paragami's.

A ``PatternArray`` of refold's patterns folds and flattens the whole array
in one batched operation. Its base may also be a ``PatternDict`` (paragami
refuses this): the folded value is then a dict whose entries carry the array
dimensions in front, e.g. ``PatternArray((10,), d)`` with ``d['mu']`` a
vector of length 3 folds to ``{'mu': array of shape (10, 3), ...}``.
"""
from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping
from typing import Optional

import autograd.numpy as np
import numpy as onp
import scipy.sparse as osp
from autograd.tracer import getval

from refold.patterns._checks import check_shape, path_error
from refold.patterns.base import (
    BatchedPattern, Pattern, _batch_indices, _index_folded, check_any,
    flatten_any, fold_any, generic_jac_coo, is_batched)

__all__ = ["PatternDict", "PatternArray"]


# ----------------------------------------------------------------------
# Batched helpers that accept any pattern.

def empty_any(pattern, batch_shape, valid):
    """A stack of empty values of any pattern."""
    if is_batched(pattern):
        return pattern._empty_b(batch_shape, valid)
    element = pattern.empty(valid)
    if not batch_shape:
        return element
    element = onp.asarray(element)
    return onp.broadcast_to(element, tuple(batch_shape) + element.shape).copy()


def jac_coo_any(pattern, folded, batch_shape, kind):
    """Block-diagonal COO Jacobian of a stack for any pattern."""
    if is_batched(pattern):
        return pattern._jac_coo_b(folded, batch_shape, kind)
    return generic_jac_coo(pattern, folded, batch_shape, kind)


def log_abs_det_any(pattern, folded, batch_shape, kind):
    """Per-element log-determinants (shape ``batch_shape``) for any pattern."""
    if is_batched(pattern):
        return pattern._log_abs_det_b(folded, batch_shape, kind)
    method = (pattern.log_abs_det_freeing_jacobian if kind == "freeing"
              else pattern.log_abs_det_unfreeing_jacobian)
    if not batch_shape:
        return method(folded)
    values = [method(_index_folded(folded, idx))
              for idx in _batch_indices(batch_shape)]
    return np.reshape(np.array(values), tuple(batch_shape))


def _remap_block(index, inner_len, outer_len, offset):
    """Move element-major indices of a member into the container's layout."""
    index = onp.asarray(index, dtype=onp.int64)
    element, within = onp.divmod(index, inner_len) if inner_len else \
        (index, index)
    return element * outer_len + offset + within


class PatternDict(BatchedPattern, Mapping):
    """An ordered dictionary of patterns, itself a pattern.

    Flat vectors concatenate the members' flat vectors in insertion order.
    A ``PatternDict`` is a read-only :class:`~collections.abc.Mapping`
    (``len``, ``in``, iteration, ``keys``, ``values``, ``items``, ``get``)
    with paragami's mutation: ``d[key] = pattern`` and ``del d[key]`` until
    :meth:`lock` is called. A ``PatternDict`` added to another container is
    locked, because a parent cannot follow a change of its size.

    Parameters
    ----------
    free_default : bool or None, optional
        Default for ``free``. The members' own ``free_default`` values are
        ignored inside a container: a container never mixes free and
        non-free values.

    Examples
    --------
    >>> from refold import PatternDict, NumericVectorPattern
    >>> from refold import PSDSymmetricMatrixPattern
    >>> pattern = PatternDict(free_default=True)
    >>> pattern['mean'] = NumericVectorPattern(2)
    >>> pattern['cov'] = PSDSymmetricMatrixPattern(2)
    >>> pattern.flat_length(free=True), pattern.flat_length(free=False)
    (5, 6)
    """

    _json_name = "refold.PatternDict"

    def __init__(self, free_default: Optional[bool] = None):
        self._patterns = {}
        self._locked = False
        self._layouts = {}
        super().__init__(0, 0, free_default=free_default)

    # Mapping and mutation ----------------------------------------------

    def __getitem__(self, key):
        try:
            return self._patterns[key]
        except KeyError:
            raise KeyError(
                "{!r} is not in this PatternDict; its keys are {}".format(
                    key, list(self._patterns))) from None

    def __iter__(self):
        return iter(self._patterns)

    def __len__(self):
        return len(self._patterns)

    def __contains__(self, key):
        return key in self._patterns

    def __array__(self, dtype=None, copy=None):
        # numpy would read a Mapping as the sequence of its keys; a
        # PatternDict is one object to numpy, as paragami's was.
        if dtype is not None and onp.dtype(dtype) != onp.dtype(object):
            raise TypeError("a PatternDict converts to an object array only,"
                            " not dtype {}".format(onp.dtype(dtype)))
        out = onp.empty((), dtype=object)
        out[()] = self
        return out

    def lock(self):
        """Forbid adding, replacing or removing members from now on."""
        self._locked = True

    def locked(self) -> bool:
        """Whether the dictionary is locked."""
        return self._locked

    def _check_unlocked(self, key):
        if self._locked:
            raise ValueError(
                "PatternDict[{!r}]: the dictionary is locked (it was locked "
                "explicitly or added to a container), so its members cannot "
                "change".format(key))

    def __setitem__(self, key, pattern):
        self._check_unlocked(key)
        if not isinstance(key, str):
            raise TypeError(
                "PatternDict keys must be strings, got {!r}".format(key))
        if not isinstance(pattern, Pattern):
            raise TypeError(
                "PatternDict[{!r}]: expected a Pattern, got {}".format(
                    key, type(pattern).__name__))
        if pattern is self:
            raise ValueError(
                "PatternDict[{!r}]: a PatternDict cannot contain itself".format(
                    key))
        if isinstance(pattern, PatternDict):
            pattern.lock()
        self._patterns[key] = pattern
        self._update_lengths()

    def __delitem__(self, key):
        self._check_unlocked(key)
        if key not in self._patterns:
            raise KeyError(
                "{!r} is not in this PatternDict; its keys are {}".format(
                    key, list(self._patterns)))
        del self._patterns[key]
        self._update_lengths()

    def _update_lengths(self):
        self._layouts = {}
        self._free_dependency_cache = None
        self._flat_length = sum(
            p.flat_length(False) for p in self._patterns.values())
        self._free_flat_length = sum(
            p.flat_length(True) for p in self._patterns.values())

    def _layout(self, free):
        """``[(key, pattern, start, stop)]`` for a flat vector."""
        layout = self._layouts.get(free)
        if layout is None:
            layout, start = [], 0
            for key, pattern in self._patterns.items():
                stop = start + pattern.flat_length(free)
                layout.append((key, pattern, start, stop))
                start = stop
            self._layouts[free] = layout
        return layout

    # Description --------------------------------------------------------

    def as_dict(self) -> dict:
        return {"pattern": self.json_typename(),
                "free_default": self.free_default,
                "keys": list(self._patterns),
                "contents": dict(self._patterns)}

    @classmethod
    def _from_dict(cls, spec):
        contents = spec.get("contents", {})
        keys = spec.get("keys", list(contents))
        if sorted(keys) != sorted(contents):
            raise ValueError(
                "PatternDict: 'keys' {} and 'contents' {} disagree".format(
                    list(keys), list(contents)))
        result = cls(free_default=spec.get("free_default"))
        for key in keys:
            result[key] = contents[key]
        return result

    def __repr__(self):
        members = ", ".join(
            "{!r}: {!r}".format(k, p) for k, p in self._patterns.items())
        return "PatternDict({{{}}}, free_default={!r})".format(
            members, self.free_default)

    def __str__(self):
        lines = ["PatternDict:"]
        lines += ["\t[{}] = {}".format(k, p) for k, p in self._patterns.items()]
        return "\n".join(lines)

    def flat_names(self, free=None, delim: str = "_") -> list:
        """Member names prefixed with their key (``'mean_[0]'``)."""
        return [key + delim + name
                for key, pattern in self._patterns.items()
                for name in pattern.flat_names(free)]

    # The batched protocol ----------------------------------------------

    def _fold_b(self, flat, batch_shape, free, validate, path):
        folded = OrderedDict()
        for key, pattern, start, stop in self._layout(free):
            folded[key] = fold_any(pattern, flat[..., start:stop],
                                   batch_shape, free, validate, path + (key,))
        return folded

    def _check_keys(self, folded, path):
        if not isinstance(getval(folded), Mapping):
            raise path_error(
                path, "expected a dict with keys {}, got {}".format(
                    list(self._patterns), type(getval(folded)).__name__),
                TypeError)
        if len(folded) != len(self._patterns) or \
                any(key not in folded for key in self._patterns):
            missing = [k for k in self._patterns if k not in folded]
            extra = [k for k in folded if k not in self._patterns]
            raise path_error(
                path, "expected the keys {}; missing {}, unexpected {}".format(
                    list(self._patterns), missing, extra))

    def _flatten_b(self, folded, batch_shape, free, validate, path):
        self._check_keys(folded, path)
        parts = [flatten_any(pattern, folded[key], batch_shape, free,
                             validate, path + (key,))
                 for key, pattern in self._patterns.items()]
        if not parts:
            return onp.zeros(tuple(batch_shape) + (0,))
        if len(parts) == 1:
            return parts[0]
        return np.concatenate(parts, axis=-1)

    def _check_b(self, folded, batch_shape, validate, path, strict):
        self._check_keys(folded, path)
        for key, pattern in self._patterns.items():
            check_any(pattern, folded[key], batch_shape, validate,
                      path + (key,), strict)

    def _empty_b(self, batch_shape, valid):
        return OrderedDict((key, empty_any(pattern, batch_shape, valid))
                           for key, pattern in self._patterns.items())

    def _jac_coo_b(self, folded, batch_shape, kind):
        out_free = kind == "freeing"
        out_total = self.flat_length(out_free)
        in_total = self.flat_length(not out_free)
        rows, cols, vals = [], [], []
        out_off = in_off = 0
        for key, pattern in self._patterns.items():
            out_len = pattern.flat_length(out_free)
            in_len = pattern.flat_length(not out_free)
            r, c, v = jac_coo_any(pattern, folded[key], batch_shape, kind)
            rows.append(_remap_block(onp.asarray(r), out_len, out_total,
                                     out_off))
            cols.append(_remap_block(onp.asarray(c), in_len, in_total, in_off))
            vals.append(onp.asarray(getval(v), dtype=float).reshape(-1))
            out_off += out_len
            in_off += in_len
        if not rows:
            return onp.zeros(0, int), onp.zeros(0, int), onp.zeros(0)
        return onp.concatenate(rows), onp.concatenate(cols), \
            onp.concatenate(vals)

    def _log_abs_det_b(self, folded, batch_shape, kind):
        total = np.zeros(tuple(batch_shape))
        for key, pattern in self._patterns.items():
            total = total + log_abs_det_any(pattern, folded[key], batch_shape,
                                            kind)
        return total

    def _free_dependency(self):
        cached = getattr(self, "_free_dependency_cache", None)
        if cached is None:
            blocks = [p._free_dependency() for p in self._patterns.values()]
            cached = osp.block_diag(blocks, format="csr").astype(bool) \
                if blocks else osp.csr_matrix((0, 0), dtype=bool)
            self._free_dependency_cache = cached
        return cached


class PatternArray(BatchedPattern):
    """An array of values of one base pattern, itself a pattern.

    The folded value has the array dimensions first: with
    ``array_shape=(3, 4)`` and a 5x5 ``PSDSymmetricMatrixPattern`` base it is
    an array of shape ``(3, 4, 5, 5)``. Flat vectors are element-major.
    Bases from refold are processed in one batched operation; a custom base
    (any other :class:`~refold.patterns.base.Pattern` folding to arrays) is
    processed element by element.

    Parameters
    ----------
    array_shape : tuple of int
        Shape of the array of base values.
    base_pattern : Pattern
        The pattern of each element (a ``PatternDict`` is allowed and is
        locked; its folded value is a dict of stacked arrays).
    free_default : bool or None, optional
        Default for ``free``; the base's own default is ignored.
    """

    _json_name = "refold.PatternArray"

    def __init__(self, array_shape, base_pattern: Pattern,
                 free_default: Optional[bool] = None):
        self._array_shape = check_shape(array_shape, "array_shape")
        if not isinstance(base_pattern, Pattern):
            raise TypeError(
                "base_pattern: expected a Pattern, got {}".format(
                    type(base_pattern).__name__))
        if isinstance(base_pattern, PatternDict):
            base_pattern.lock()
        elif not is_batched(base_pattern):
            example = base_pattern.empty(valid=True)
            if not isinstance(getval(example), onp.ndarray):
                raise TypeError(
                    "base_pattern: a custom pattern in a PatternArray must "
                    "fold to numpy arrays, but {} folds to {}".format(
                        type(base_pattern).__name__,
                        type(getval(example)).__name__))
        self._base = base_pattern
        self._num = int(onp.prod(self._array_shape, dtype=int))
        super().__init__(self._num * base_pattern.flat_length(False),
                         self._num * base_pattern.flat_length(True),
                         free_default=free_default)

    def array_shape(self) -> tuple:
        """Shape of the array of base values (without the base's shape)."""
        return self._array_shape

    def base_pattern(self) -> Pattern:
        """The pattern of each element."""
        return self._base

    def shape(self) -> tuple:
        """Shape of the folded array (array shape + base shape).

        Raises
        ------
        TypeError
            If the base folds to a dict (a ``PatternDict``).
        """
        example = self._base.empty(valid=False)
        if isinstance(example, dict):
            raise TypeError(
                "PatternArray.shape: the base pattern folds to a dict, so "
                "the folded value has no single shape; use array_shape()")
        return self._array_shape + onp.shape(example)

    def as_dict(self) -> dict:
        return {"pattern": self.json_typename(),
                "array_shape": self._array_shape,
                "base_pattern": self._base,
                "free_default": self.free_default}

    def __str__(self):
        return "PatternArray {} of {}".format(self._array_shape, self._base)

    def flat_names(self, free=None) -> list:
        """Element index followed by the base's names (``'[0,1][2]'``)."""
        base_names = self._base.flat_names(free)
        return ["[" + ",".join(str(i) for i in idx) + "]" + name
                for idx in onp.ndindex(*self._array_shape)
                for name in base_names]

    # The batched protocol ----------------------------------------------

    def _inner(self, batch_shape):
        return tuple(batch_shape) + self._array_shape

    def _fold_b(self, flat, batch_shape, free, validate, path):
        inner = self._inner(batch_shape)
        length = self._base.flat_length(free)
        flat = np.reshape(flat, inner + (length,))
        return fold_any(self._base, flat, inner, free, validate, path)

    def _flatten_b(self, folded, batch_shape, free, validate, path):
        inner = self._inner(batch_shape)
        flat = flatten_any(self._base, folded, inner, free, validate, path)
        return np.reshape(flat, tuple(batch_shape) +
                          (self._num * self._base.flat_length(free),))

    def _check_b(self, folded, batch_shape, validate, path, strict):
        check_any(self._base, folded, self._inner(batch_shape), validate,
                  path, strict)

    def _empty_b(self, batch_shape, valid):
        return empty_any(self._base, self._inner(batch_shape), valid)

    def _jac_coo_b(self, folded, batch_shape, kind):
        # Element-major layouts coincide: no re-indexing needed.
        return jac_coo_any(self._base, folded, self._inner(batch_shape), kind)

    def _log_abs_det_b(self, folded, batch_shape, kind):
        per_element = log_abs_det_any(self._base, folded,
                                      self._inner(batch_shape), kind)
        per_element = np.reshape(per_element, tuple(batch_shape) + (-1,))
        return np.sum(per_element, axis=-1)

    def _free_dependency(self):
        cached = getattr(self, "_free_dependency_cache", None)
        if cached is None:
            cached = osp.kron(osp.identity(self._num, format="csr"),
                              self._base._free_dependency(),
                              format="csr").astype(bool)
            self._free_dependency_cache = cached
        return cached
