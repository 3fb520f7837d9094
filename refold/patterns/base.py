r"""The pattern contract.

A *pattern* describes the shape and constraints of a parameter and maps its
*folded* value (an array, a matrix, a dict of them) to and from one *flat*
vector, either as-is (``free=False``) or in an unconstrained *free*
parameterisation (``free=True``).

Writing a pattern of your own follows paragami's small contract: subclass
:class:`Pattern` and implement ``fold``, ``flatten``, ``empty``,
``validate_folded`` and ``as_dict``. Everything else (lengths, ``random``,
``empty_bool``, ``flat_indices``, Jacobians, their log-determinants when square,
names, JSON, equality, hashing, pickling) is inherited; check the result with
:func:`refold.testing.check_pattern`.

refold's own patterns also implement a private *batched* protocol
(:class:`BatchedPattern`): every operation works on a stack of values with
leading batch dimensions, which is how :class:`~refold.PatternArray` folds a
thousand matrices in one vectorised call.
"""
from __future__ import annotations

import json
from abc import ABC, abstractmethod
from typing import Optional

import autograd
import autograd.numpy as np
import numpy as onp
import scipy.sparse as osp
from autograd.tracer import getval

from refold.patterns._checks import (
    ROOT_NAME, as_flat_vector, check_optional_bool, format_path, path_error,
    resolve_rng)

__all__ = ["Pattern", "BatchedPattern"]


class Pattern(ABC):
    """Abstract base class of all patterns.

    Parameters
    ----------
    flat_length : int
        Length of the flat (non-free) vector.
    free_flat_length : int
        Length of the free flat vector.
    free_default : bool or None, optional
        Value of ``free`` used when a method is called with ``free=None``.
        With ``None``, ``free`` must always be given.
    """

    def __init__(self, flat_length: int, free_flat_length: int,
                 free_default: Optional[bool] = None):
        self._flat_length = int(flat_length)
        self._free_flat_length = int(free_flat_length)
        self.free_default = free_default

    # ------------------------------------------------------------------
    # The contract a new pattern implements.

    @abstractmethod
    def fold(self, flat_val, free: Optional[bool] = None,
             validate_value: Optional[bool] = None):
        """Fold a flat vector into a parameter value.

        Parameters
        ----------
        flat_val : numpy.ndarray, shape (flat_length(free),)
            The flat vector.
        free : bool, optional
            Whether ``flat_val`` is the free parameterisation. Defaults to
            ``free_default``.
        validate_value : bool, optional
            Whether to check the folded value's constraints (shapes are
            always checked). Defaults to the pattern's ``default_validate``.

        Returns
        -------
        folded_val
            The parameter in its folded shape.
        """

    @abstractmethod
    def flatten(self, folded_val, free: Optional[bool] = None,
                validate_value: Optional[bool] = None):
        """Flatten a parameter value into a flat vector.

        Parameters
        ----------
        folded_val
            The parameter in its folded shape.
        free : bool, optional
            Whether to return the free parameterisation. Defaults to
            ``free_default``.
        validate_value : bool, optional
            Whether to check the value's constraints before flattening.

        Returns
        -------
        numpy.ndarray, shape (flat_length(free),)
        """

    @abstractmethod
    def empty(self, valid: bool):
        """A folded value: valid (``valid=True``) or uninitialised."""

    @abstractmethod
    def validate_folded(self, folded_val, validate_value: Optional[bool] = None):
        """Check a folded value without raising.

        Returns
        -------
        is_valid : bool
        message : str
            Empty when valid, otherwise where and why the value is invalid.
        """

    @abstractmethod
    def as_dict(self) -> dict:
        """A dict describing the pattern completely.

        Its keys other than ``'pattern'`` are the constructor's arguments,
        which is what the default ``to_json``/``from_json`` rely on.
        """

    # ------------------------------------------------------------------
    # Defaults.

    @property
    def free_default(self) -> Optional[bool]:
        """The default for ``free`` (``None`` means it must be given)."""
        return self._free_default

    @free_default.setter
    def free_default(self, value):
        self._free_default = check_optional_bool(value, "free_default")

    def _free_with_default(self, free):
        if free is None:
            if self._free_default is None:
                raise ValueError(
                    "free: no value given and this pattern's free_default is "
                    "None; pass free=True or free=False")
            return self._free_default
        if isinstance(free, (bool, onp.bool_)):
            return bool(free)
        raise TypeError(
            "free: expected True, False or None, got {!r}".format(free))

    def flat_length(self, free: Optional[bool] = None) -> int:
        """Length of the flat vector (free or not)."""
        free = self._free_with_default(free)
        return self._free_flat_length if free else self._flat_length

    def random(self, rng=None):
        """A random valid folded value, for tests and initial values.

        Parameters
        ----------
        rng : None, int or numpy.random.Generator, optional
            Source of randomness. ``None`` (the default) draws from numpy's
            global generator, exactly as paragami 0.42 did (the free vector
            is ``numpy.random.random(n)``, uniform on :math:`[0, 1)`), so a
            script seeded with ``numpy.random.seed`` gets the same values
            and keeps its random stream. A seed or a ``Generator`` draws the
            free vector from a standard normal with that generator.

        Notes
        -----
        No meaningful distribution over folded values is implied.
        """
        if rng is None:
            return self.fold(onp.random.random(self._free_flat_length),
                             free=True)
        rng = resolve_rng(rng)
        return self.fold(rng.standard_normal(self._free_flat_length),
                         free=True)

    def empty_bool(self, value: bool):
        """A folded value of booleans, all equal to ``value``."""
        flat = onp.full(self._flat_length, bool(value))
        return self.fold(flat, free=False, validate_value=False)

    def flat_names(self, free: Optional[bool] = None) -> list:
        """Names of the flat vector's coordinates."""
        return [str(i) for i in range(self.flat_length(free))]

    def _free_dependency(self):
        """Structural nonzeros of d(flat)/d(free), (flat_len x free_len).

        The default reads them off the autograd Jacobian at a generic point;
        patterns override it with the exact structure.
        """
        cached = getattr(self, "_free_dependency_cache", None)
        if cached is None:
            free_val = self.flatten(self.random(rng=1234567), free=True)
            jac = autograd.jacobian(
                lambda v: self.flatten(self.fold(v, free=True), free=False))(
                    free_val)
            cached = osp.csr_matrix(onp.abs(jac) > 0)
            self._free_dependency_cache = cached
        return cached

    def flat_indices(self, folded_bool, free: Optional[bool] = None):
        """Flat indices that the ``True`` entries of ``folded_bool`` depend on.

        Parameters
        ----------
        folded_bool
            A folded value of booleans (see :meth:`empty_bool`).
        free : bool, optional
            Whether to index into the free vector.

        Returns
        -------
        numpy.ndarray of int
            For ``free=False`` the positions of the selected entries; for
            ``free=True`` every free coordinate that one of the selected
            entries depends on, sorted. Exact (not a superset).
        """
        free = self._free_with_default(free)
        mask = onp.asarray(getval(
            self.flatten(folded_bool, free=False, validate_value=False)))
        if mask.size == 0:
            return onp.zeros(0, dtype=int)
        if mask.dtype.kind != "b":
            raise TypeError(
                "folded_bool: expected a folded value of booleans, got "
                "dtype {}".format(mask.dtype))
        rows = onp.flatnonzero(mask)
        if not free or rows.size == 0:
            return rows.astype(int)
        dep = self._free_dependency()
        return onp.unique(dep[rows].indices).astype(int)

    def _jacobian_function(self, kind):
        if kind == "freeing":
            return lambda v: self.flatten(
                self.fold(v, free=False), free=True)
        return lambda v: self.flatten(self.fold(v, free=True), free=False)

    def freeing_jacobian(self, folded_val, sparse: bool = True):
        r"""Jacobian :math:`\partial\,\mathrm{free} / \partial\,\mathrm{flat}`.

        Shape ``(flat_length(True), flat_length(False))``: rows index the free
        vector, columns the flat vector. Returned as ``scipy.sparse.csr_matrix``
        (``sparse=True``) or a dense ``numpy.ndarray``.
        """
        flat = self.flatten(folded_val, free=False)
        jac = autograd.jacobian(self._jacobian_function("freeing"))(flat)
        return osp.csr_matrix(jac) if sparse else onp.asarray(jac)

    def unfreeing_jacobian(self, folded_val, sparse: bool = True):
        r"""Jacobian :math:`\partial\,\mathrm{flat} / \partial\,\mathrm{free}`.

        Shape ``(flat_length(False), flat_length(True))``.
        """
        free_val = self.flatten(folded_val, free=True)
        jac = autograd.jacobian(self._jacobian_function("unfreeing"))(free_val)
        return osp.csr_matrix(jac) if sparse else onp.asarray(jac)

    def _square_log_det(self, folded_val, kind):
        if self._flat_length != self._free_flat_length:
            raise NotImplementedError(
                "{}: the flat ({}) and free ({}) lengths differ, so the "
                "log-determinant needs the pattern to say which flat "
                "coordinates are independent; implement "
                "log_abs_det_{}_jacobian".format(
                    type(self).__name__, self._flat_length,
                    self._free_flat_length, kind))
        jac = (self.freeing_jacobian if kind == "freeing"
               else self.unfreeing_jacobian)(folded_val, sparse=False)
        return float(onp.linalg.slogdet(jac)[1])

    def log_abs_det_freeing_jacobian(self, folded_val) -> float:
        """Log absolute determinant of the freeing Jacobian."""
        return self._square_log_det(folded_val, "freeing")

    def log_abs_det_unfreeing_jacobian(self, folded_val) -> float:
        """Log absolute determinant of the unfreeing Jacobian."""
        return self._square_log_det(folded_val, "unfreeing")

    # ------------------------------------------------------------------
    # Serialisation, equality, display.

    @classmethod
    def json_typename(cls) -> str:
        """The name under which the pattern is registered for JSON.

        refold's own patterns set a stable class attribute ``_json_name``
        (``'refold.NumericArrayPattern'``); other patterns default to
        ``'module.ClassName'`` as in paragami.
        """
        name = cls.__dict__.get("_json_name")
        return name if name else "{}.{}".format(cls.__module__,
                                                cls.__qualname__)

    @classmethod
    def _from_dict(cls, spec: dict):
        """Build the pattern from ``as_dict()`` (without ``'pattern'``).

        Nested patterns arrive already rebuilt. Containers override this.
        """
        return cls(**spec)

    def to_json(self) -> str:
        """A standard JSON string describing the pattern."""
        from refold.patterns.json_io import pattern_to_json
        return pattern_to_json(self)

    @classmethod
    def from_json(cls, json_string: str):
        """The pattern described by ``json_string`` (made by ``to_json``)."""
        from refold.patterns.json_io import pattern_from_json
        return pattern_from_json(json_string, cls)

    def _key(self):
        return json.dumps(_canonical(self.as_dict()), sort_keys=True)

    def __eq__(self, other):
        if type(other) is not type(self):
            return False
        return self._key() == other._key()

    def __ne__(self, other):
        return not self == other

    def __hash__(self):
        return hash((type(self).__name__, self._key()))

    def __repr__(self):
        args = ", ".join(
            "{}={!r}".format(k, v) for k, v in self.as_dict().items()
            if k != "pattern")
        return "{}({})".format(type(self).__name__, args)

    def __str__(self):
        return repr(self)


def _canonical(obj):
    """A JSON-friendly, order-stable version of an ``as_dict`` value."""
    if isinstance(obj, Pattern):
        return _canonical(obj.as_dict())
    if isinstance(obj, dict):
        return {str(k): _canonical(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_canonical(v) for v in obj]
    if isinstance(obj, (onp.generic,)):
        return obj.item()
    if isinstance(obj, float) and not onp.isfinite(obj):
        return repr(obj)
    return obj


class BatchedPattern(Pattern):
    """Base class of refold's own patterns: one code path for one value and
    for a stack of values with leading batch dimensions.

    Subclasses implement the private methods below; every ``batch_shape``
    argument gives the leading dimensions of a stack (``()`` for one value),
    and ``path`` is the location used in error messages.

    - ``_fold_b(flat, batch_shape, free, validate, path)``: ``flat`` has shape
      ``batch_shape + (L,)``; return the stacked folded value.
    - ``_flatten_b(folded, batch_shape, free, validate, path)``: check and
      flatten a stacked value into shape ``batch_shape + (L,)``.
    - ``_check_b(folded, batch_shape, validate, path, strict)``: raise a
      ``ValueError``/``TypeError`` for an invalid value; ``strict`` asks for
      the open interior of the constraint set (needed by the free map).
    - ``_empty_b(batch_shape, valid)``.
    - ``_jac_coo_b(folded, batch_shape, kind)``: the block-diagonal Jacobian
      (``kind`` is ``'freeing'`` or ``'unfreeing'``) of the stack as COO
      triplets ``(rows, cols, vals)``, element-major.
    - ``_log_abs_det_b(folded, batch_shape, kind)``: per-element
      log-determinants, shape ``batch_shape``, differentiable by autograd.
    """

    # The public contract, in terms of the batched protocol.

    def fold(self, flat_val, free=None, validate_value=None):
        free = self._free_with_default(free)
        flat = as_flat_vector(flat_val, self.flat_length(free), free)
        return self._fold_b(flat, (), free, validate_value, ())

    def flatten(self, folded_val, free=None, validate_value=None):
        free = self._free_with_default(free)
        return self._flatten_b(folded_val, (), free, validate_value, ())

    def validate_folded(self, folded_val, validate_value=None):
        try:
            self._check_b(folded_val, (), validate_value, (), False)
        except (ValueError, TypeError) as err:
            return False, str(err)
        return True, ""

    def empty(self, valid: bool):
        return self._empty_b((), bool(valid))

    def _checked_raw(self, folded_val):
        """Check a value for a Jacobian (strictly inside the constraints)."""
        self._check_b(folded_val, (), True, (), True)
        return folded_val

    def _sparse_jacobian(self, folded_val, kind, sparse):
        folded_val = self._checked_raw(folded_val)
        rows, cols, vals = self._jac_coo_b(folded_val, (), kind)
        free_len, flat_len = self._free_flat_length, self._flat_length
        shape = (free_len, flat_len) if kind == "freeing" else \
            (flat_len, free_len)
        jac = coo_to_csr(rows, cols, vals, shape)
        return jac if sparse else jac.toarray()

    def freeing_jacobian(self, folded_val, sparse: bool = True):
        return self._sparse_jacobian(folded_val, "freeing", sparse)

    def unfreeing_jacobian(self, folded_val, sparse: bool = True):
        return self._sparse_jacobian(folded_val, "unfreeing", sparse)

    def log_abs_det_freeing_jacobian(self, folded_val):
        folded_val = self._checked_raw(folded_val)
        return np.sum(self._log_abs_det_b(folded_val, (), "freeing"))

    def log_abs_det_unfreeing_jacobian(self, folded_val):
        folded_val = self._checked_raw(folded_val)
        return np.sum(self._log_abs_det_b(folded_val, (), "unfreeing"))

    # Fallback for batched Jacobians: autograd per element. Patterns with
    # analytic Jacobians override it.
    def _jac_coo_b(self, folded, batch_shape, kind):
        return generic_jac_coo(self, folded, batch_shape, kind)


def coo_to_csr(rows, cols, vals, shape):
    """A CSR matrix from COO triplets, built directly when the rows come
    sorted (as refold's patterns produce them), else through COO."""
    rows = onp.asarray(rows, dtype=onp.int64).reshape(-1)
    cols = onp.asarray(cols, dtype=onp.int64).reshape(-1)
    vals = onp.asarray(getval(vals), dtype=float).reshape(-1)
    if rows.size and onp.all(rows[1:] >= rows[:-1]):
        indptr = onp.zeros(shape[0] + 1, dtype=onp.int64)
        onp.cumsum(onp.bincount(rows, minlength=shape[0]), out=indptr[1:])
        jac = osp.csr_matrix((vals, cols, indptr), shape=shape)
        jac.sum_duplicates()
        return jac
    return osp.csr_matrix((vals, (rows, cols)), shape=shape)


def is_batched(pattern: Pattern) -> bool:
    """Whether ``pattern`` follows the batched protocol unmodified.

    A user subclass of a refold pattern that overrides ``fold``, ``flatten``
    or ``validate_folded`` is treated as a custom pattern, so its overrides
    are always honoured.
    """
    cls = type(pattern)
    known = _BATCHED_CLASSES.get(cls)
    if known is None:
        known = (issubclass(cls, BatchedPattern)
                 and cls.fold is BatchedPattern.fold
                 and cls.flatten is BatchedPattern.flatten
                 and cls.validate_folded is BatchedPattern.validate_folded)
        _BATCHED_CLASSES[cls] = known
    return known


_BATCHED_CLASSES = {}


# ----------------------------------------------------------------------
# Helpers that let containers treat any pattern as batched. Custom patterns
# are called element by element through their public methods, and their
# error messages are prefixed with the path.

def _batch_indices(batch_shape):
    return [tuple(int(i) for i in idx) for idx in onp.ndindex(*batch_shape)]


def _reraise_with_path(err, path):
    message = str(err)
    if message.startswith(ROOT_NAME) or message.startswith("flat_val"):
        raise type(err)(message) from err
    raise type(err)("{}: {}".format(format_path(path), message)) from err


def _call_with_path(path, method, value, free, validate):
    """A custom pattern's ``fold`` or ``flatten`` of one value, its errors
    prefixed with ``path``."""
    try:
        return method(value, free=free, validate_value=validate)
    except (ValueError, TypeError) as err:
        _reraise_with_path(err, path)


def fold_any(pattern, flat, batch_shape, free, validate, path):
    """``_fold_b`` for any pattern (custom ones element by element)."""
    if is_batched(pattern):
        return pattern._fold_b(flat, batch_shape, free, validate, path)
    if batch_shape == ():
        return _call_with_path(path, pattern.fold, flat, free, validate)
    n = int(onp.prod(batch_shape))
    rows = np.reshape(flat, (n, -1))
    values = [fold_any(pattern, rows[i], (), free, validate, path + (idx,))
              for i, idx in enumerate(_batch_indices(batch_shape))]
    return stack_folded(values, batch_shape, path)


def flatten_any(pattern, folded, batch_shape, free, validate, path):
    """``_flatten_b`` for any pattern (custom ones element by element)."""
    if is_batched(pattern):
        return pattern._flatten_b(folded, batch_shape, free, validate, path)
    if batch_shape == ():
        return _call_with_path(path, pattern.flatten, folded, free, validate)
    check_stacked_shape(folded, batch_shape, path)
    rows = [flatten_any(pattern, folded[idx], (), free, validate,
                        path + (idx,))
            for idx in _batch_indices(batch_shape)]
    length = pattern.flat_length(free)
    return np.reshape(np.stack(rows) if rows else onp.zeros((0, length)),
                      tuple(batch_shape) + (length,))


def check_any(pattern, folded, batch_shape, validate, path, strict=False):
    """``_check_b`` for any pattern (custom ones element by element)."""
    if is_batched(pattern):
        return pattern._check_b(folded, batch_shape, validate, path, strict)
    if batch_shape == ():
        try:
            ok, message = pattern.validate_folded(
                folded, validate_value=validate)
        except (ValueError, TypeError) as err:
            ok, message = False, str(err)
        if not ok:
            raise path_error(path, message)
        return None
    check_stacked_shape(folded, batch_shape, path)
    for idx in _batch_indices(batch_shape):
        check_any(pattern, folded[idx], (), validate, path + (idx,), strict)
    return None


def check_stacked_shape(folded, batch_shape, path):
    raw = getval(folded)
    shape = getattr(raw, "shape", None)
    if shape is None or tuple(shape[:len(batch_shape)]) != tuple(batch_shape):
        raise path_error(
            path, "expected an array whose leading dimensions are {}, got "
            "{}".format(tuple(batch_shape), shape if shape is not None
                        else type(raw).__name__))


def stack_folded(values, batch_shape, path):
    """Stack per-element folded arrays of a custom pattern."""
    if not values:
        raise path_error(path, "cannot stack an empty batch of a custom "
                               "pattern")
    if not all(isinstance(getval(v), onp.ndarray) for v in values):
        raise path_error(
            path, "a custom pattern inside a PatternArray must fold to numpy "
            "arrays, got {}".format(type(getval(values[0])).__name__),
            TypeError)
    stacked = np.stack(values)
    return np.reshape(stacked, tuple(batch_shape) + stacked.shape[1:])


def generic_jac_coo(pattern, folded, batch_shape, kind):
    """Block-diagonal COO Jacobian of a stack, from per-element Jacobians."""
    raw = getval(folded)
    free_len = pattern.flat_length(True)
    flat_len = pattern.flat_length(False)
    out_len, in_len = (free_len, flat_len) if kind == "freeing" else \
        (flat_len, free_len)
    rows, cols, vals = [], [], []
    for e, idx in enumerate(_batch_indices(batch_shape)):
        element = _index_folded(raw, idx)
        jac = (pattern.freeing_jacobian if kind == "freeing"
               else pattern.unfreeing_jacobian)(element, sparse=True).tocoo()
        rows.append(jac.row + e * out_len)
        cols.append(jac.col + e * in_len)
        vals.append(jac.data)
    if not rows:
        return (onp.zeros(0, int), onp.zeros(0, int), onp.zeros(0))
    return onp.concatenate(rows), onp.concatenate(cols), onp.concatenate(vals)


def _index_folded(folded, idx):
    if isinstance(folded, dict):
        return {k: _index_folded(v, idx) for k, v in folded.items()}
    return folded[idx] if idx else folded
