"""The batched protocol shared by patterns whose folded value is one array.

:class:`ArrayPattern` is the private base of refold's numeric, PSD, simplex
and correlation patterns. It implements the parts of the batched protocol
(see :class:`~refold.patterns.base.BatchedPattern`) that do not depend on the
constraint: the shape check, the non-free ``fold`` and ``flatten`` (a copy,
then validation), ``_check_b`` and ``_empty_b``. A subclass provides

- ``_full_shape(batch_shape)``: the shape of a stack of folded values;
- ``_check_values(raw, batch_shape, path, strict)``: raise for an invalid
  stack of raw (unboxed) values of the right shape;
- ``_valid_element()``: an array (or scalar) that broadcasts to a valid
  folded value;
- ``_constructor_args()``: the constructor's arguments other than
  ``default_validate`` and ``free_default``, by name, for ``as_dict``;
- optionally ``_shape_note(batch_shape)``, words describing the expected
  shape in an error message, and ``_shape_mismatch``, to accept another
  shape (a bare scalar for a scalar pattern);

and keeps its own free branches of ``_fold_b`` and ``_flatten_b`` inline,
calling :meth:`ArrayPattern._fold_flat` and :meth:`ArrayPattern._flatten_flat`
for the non-free ones, so the free (hot) paths pay no extra call.
"""
from __future__ import annotations

import autograd.numpy as np
import numpy as onp
from autograd.tracer import getval

from refold.patterns._checks import as_real_array, path_error
from refold.patterns.base import BatchedPattern

__all__ = ["ArrayPattern"]


class ArrayPattern(BatchedPattern):
    """A pattern whose folded value is one real array (private base)."""

    #: dtype kinds a non-free flat vector keeps (others become float64).
    _kept_flat_kinds = "b"

    def as_dict(self) -> dict:
        return {"pattern": self.json_typename(), **self._constructor_args(),
                "default_validate": self.default_validate,
                "free_default": self.free_default}

    def _validate(self, validate):
        return self.default_validate if validate is None else validate

    def _shape_note(self, batch_shape) -> str:
        return ""

    def _shape_mismatch(self, folded, raw, batch_shape, path):
        """Called when ``raw`` has the wrong shape: raise (or, in a
        subclass, return a reshaped ``(folded, raw)``)."""
        raise path_error(
            path, "expected an array of shape {}{}, got shape {}".format(
                self._full_shape(batch_shape), self._shape_note(batch_shape),
                raw.shape))

    def _check_shape_of(self, folded, batch_shape, path):
        """``(folded, raw)``: real data of the stack's shape, or raise."""
        folded, raw = as_real_array(folded, path)
        if raw.shape != self._full_shape(batch_shape):
            folded, raw = self._shape_mismatch(folded, raw, batch_shape, path)
        return folded, raw

    def _check_b(self, folded, batch_shape, validate, path, strict):
        folded, raw = self._check_shape_of(folded, batch_shape, path)
        if self._validate(validate):
            self._check_values(raw, batch_shape, path, strict)

    def _empty_b(self, batch_shape, valid):
        shape = self._full_shape(batch_shape)
        if not valid:
            return onp.empty(shape)
        return onp.broadcast_to(self._valid_element(), shape).copy()

    def _fold_flat(self, flat, batch_shape, validate, path):
        """The non-free fold: a reshaped copy, validated on request."""
        shape = self._full_shape(batch_shape)
        if isinstance(flat, onp.ndarray):
            folded = flat.reshape(shape).copy()
        else:
            folded = np.reshape(flat, shape)
        if self._validate(validate):
            self._check_values(getval(folded), batch_shape, path, False)
        return folded

    def _flatten_flat(self, folded, raw, batch_shape, check, path):
        """The non-free flatten of a shape-checked stack: a copy (booleans
        stay booleans), validated when ``check``."""
        if check:
            self._check_values(raw, batch_shape, path, False)
        out_shape = tuple(batch_shape) + (self._flat_length,)
        if folded is raw:
            if raw.dtype.kind in self._kept_flat_kinds:
                return raw.reshape(out_shape).copy()
            return raw.astype(float, copy=True).reshape(out_shape)
        return np.reshape(folded, out_shape)
