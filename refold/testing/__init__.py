r"""Checks for your own tests: pattern conformance and derivatives.

:func:`check_pattern` runs the whole pattern contract against one pattern;
refold runs it on every built-in pattern, and you can run it on a pattern
of your own. :func:`check_derivatives` compares autograd's derivatives of a
function with finite differences, and :func:`assert_folded_allclose`
compares folded values (arrays or nested dicts of arrays).

Examples
--------
A pattern of your own needs ``fold``, ``flatten``, ``empty``,
``validate_folded`` and ``as_dict``; everything else is inherited. Here the
folded value is a diagonal matrix with a positive diagonal, the flat value
is the whole matrix (row-major) and the free value is the log of the
diagonal:

>>> import autograd.numpy as np
>>> import numpy as onp
>>> from autograd.tracer import getval
>>> from refold.patterns.base import Pattern
>>> from refold.patterns.json_io import register_pattern_json
>>> from refold.testing import check_pattern
>>>
>>> class PositiveDiagonalMatrixPattern(Pattern):
...     def __init__(self, size, free_default=None):
...         self._size = int(size)
...         super().__init__(self._size ** 2, self._size, free_default)
...
...     def as_dict(self):
...         return {"pattern": self.json_typename(), "size": self._size,
...                 "free_default": self.free_default}
...
...     def empty(self, valid):
...         n = self._size
...         return onp.eye(n) if valid else onp.empty((n, n))
...
...     def validate_folded(self, folded_val, validate_value=None):
...         n, value = self._size, getval(folded_val)  # unboxed
...         if not isinstance(value, onp.ndarray) \
...                 or value.shape != (n, n) or value.dtype.kind not in "biuf":
...             return False, "expected a real {0}x{0} matrix".format(n)
...         if validate_value is False:
...             return True, ""
...         diag = onp.diag(value)
...         if not onp.all(value == onp.diag(diag)):
...             return False, "expected a diagonal matrix"
...         if not onp.all(diag > 0):
...             return False, "expected a positive diagonal"
...         return True, ""
...
...     def fold(self, flat_val, free=None, validate_value=None):
...         free = self._free_with_default(free)
...         flat_val = np.atleast_1d(flat_val)
...         if np.shape(flat_val) != (self.flat_length(free),):
...             raise ValueError("flat_val: wrong length")
...         if free:
...             return np.diag(np.exp(flat_val))
...         folded = np.array(np.reshape(flat_val, (self._size,) * 2))
...         if validate_value is not False:
...             ok, message = self.validate_folded(folded, validate_value)
...             if not ok:
...                 raise ValueError("flat_val: " + message)
...         return folded
...
...     def flatten(self, folded_val, free=None, validate_value=None):
...         free = self._free_with_default(free)
...         ok, message = self.validate_folded(
...             folded_val, True if free else validate_value)
...         if not ok:
...             raise ValueError("folded_val: " + message)
...         if free:
...             return np.log(np.diag(folded_val))
...         return np.array(np.reshape(folded_val, (-1,)))
>>>
>>> _ = register_pattern_json(PositiveDiagonalMatrixPattern)
>>> check_pattern(PositiveDiagonalMatrixPattern(3))    # raises if broken

Its flat and free lengths differ (9 and 3), so the inherited
log-determinants raise ``NotImplementedError`` and ``check_pattern`` skips
them. Define the class at module level so that it can be pickled.
"""
from refold.testing._compare import assert_folded_allclose
from refold.testing._conformance import check_pattern
from refold.testing._derivatives import check_derivatives

__all__ = ["check_pattern", "check_derivatives", "assert_folded_allclose"]

# The public functions live in private modules; they are documented (and
# their doctests run) as members of this package.
for _function in (check_pattern, check_derivatives, assert_folded_allclose):
    _function.__module__ = __name__
del _function
