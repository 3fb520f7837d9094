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
from __future__ import annotations

import contextlib
import copy
import inspect
import json
import numbers
import pickle
import warnings
from collections.abc import Mapping
from typing import Any, Callable, Sequence

import autograd
import numpy as onp
import scipy.sparse as osp
from autograd.test_util import check_grads
from autograd.tracer import getval

from refold.patterns._checks import resolve_rng
from refold.patterns.base import Pattern

__all__ = ["check_pattern", "check_derivatives", "assert_folded_allclose"]


# ----------------------------------------------------------------------
# Comparing folded values.

def _leaves(value, path="value"):
    """``(path, leaf)`` pairs of a folded value (dicts, lists, arrays)."""
    raw = getval(value)
    if isinstance(raw, Mapping):
        for key, item in raw.items():
            yield from _leaves(item, "{}[{!r}]".format(path, key))
    elif isinstance(raw, (list, tuple)):
        for i, item in enumerate(raw):
            yield from _leaves(item, "{}[{}]".format(path, i))
    else:
        yield path, raw


def _compare(actual, desired, path, rtol, atol, equal_nan):
    actual, desired = getval(actual), getval(desired)
    if isinstance(desired, Mapping):
        if not isinstance(actual, Mapping):
            raise AssertionError("{}: expected a dict, got {}".format(
                path, type(actual).__name__))
        if set(actual) != set(desired):
            raise AssertionError("{}: keys differ: expected {}, got {}".format(
                path, list(desired), list(actual)))
        for key in desired:
            _compare(actual[key], desired[key], "{}[{!r}]".format(path, key),
                     rtol, atol, equal_nan)
        return
    try:
        a, d = onp.asarray(actual), onp.asarray(desired)
    except Exception as err:
        raise AssertionError("{}: cannot compare {} with {} ({})".format(
            path, type(actual).__name__, type(desired).__name__,
            err)) from None
    if a.shape != d.shape:
        raise AssertionError("{}: expected shape {}, got shape {}".format(
            path, d.shape, a.shape))
    if a.dtype.kind not in "biufc" or d.dtype.kind not in "biufc":
        if not onp.array_equal(a, d):
            raise AssertionError("{}: expected {!r}, got {!r}".format(
                path, desired, actual))
        return
    a, d = a.astype(complex if "c" in a.dtype.kind + d.dtype.kind else
                    float), d.astype(float if d.dtype.kind != "c" else complex)
    close = onp.isclose(a, d, rtol=rtol, atol=atol, equal_nan=equal_nan)
    if not onp.all(close):
        bad = onp.unravel_index(int(onp.argmin(close.reshape(-1))), d.shape) \
            if d.ndim else ()
        raise AssertionError(
            "{}: {} of {} entries differ (rtol={}, atol={}); first at index "
            "{}: expected {!r}, got {!r}".format(
                path, int(onp.sum(~close)), close.size, rtol, atol,
                tuple(int(i) for i in bad), d[bad], a[bad]))


def assert_folded_allclose(actual: Any, desired: Any, *, rtol: float = 1e-8,
                           atol: float = 1e-8, equal_nan: bool = False,
                           name: str = "value") -> None:
    """Assert that two folded values are equal up to a tolerance.

    Parameters
    ----------
    actual, desired
        Folded values: arrays, numbers, or (nested) dicts of them.
    rtol, atol : float, optional
        Tolerances, elementwise as in :func:`numpy.isclose`.
    equal_nan : bool, optional
        Whether NaNs in the same place count as equal.
    name : str, optional
        The name used for the value in the message.

    Raises
    ------
    AssertionError
        Naming the first entry (``value['cov'][1, 2]``) that differs, or
        where the structure (keys, shapes) differs.

    Examples
    --------
    >>> import numpy as np
    >>> assert_folded_allclose({"a": np.ones(2)}, {"a": np.ones(2) + 1e-12})
    """
    _compare(actual, desired, name, rtol, atol, equal_nan)


# ----------------------------------------------------------------------
# check_derivatives.

def _as_vector(out):
    """Concatenate the leaves of a dict/list output (autograd-friendly)."""
    import autograd.numpy as anp
    if isinstance(out, Mapping):
        parts = [_as_vector(out[k]) for k in out]
    elif isinstance(out, (list, tuple)):
        parts = [_as_vector(v) for v in out]
    else:
        return out
    return anp.concatenate([anp.reshape(p, (-1,)) for p in parts]) \
        if parts else anp.zeros(0)


@contextlib.contextmanager
def _seeded_global_random(seed):
    """autograd's checks draw from numpy's global generator: seed it and
    restore the caller's state afterwards."""
    state = onp.random.get_state()
    onp.random.seed(seed)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings(
                "ignore", message="Output seems independent of input")
            yield
    finally:
        onp.random.set_state(state)


def check_derivatives(fun: Callable, x: Any, order: int = 2,
                      modes: Sequence[str] = ("fwd", "rev"), *args,
                      **kwargs) -> None:
    r"""Check autograd's derivatives of ``fun`` against finite differences.

    A thin wrapper over :func:`autograd.test_util.check_grads` that validates
    its arguments, accepts functions returning arrays, numbers or dicts/lists
    of arrays (their entries are concatenated), and draws its random
    directions from a fixed seed without disturbing numpy's global
    generator.

    Parameters
    ----------
    fun : callable
        ``fun(x, *args, **kwargs)``, differentiable by autograd in ``x``.
    x : array_like
        The point, real and finite; integers are converted to floats.
    order : int, optional
        Highest derivative order checked (``>= 1``).
    modes : sequence of {'fwd', 'rev'}, optional
        Forward mode (Jacobian-vector products), reverse mode
        (vector-Jacobian products) or both. A single string is accepted.
    *args, **kwargs
        Passed to ``fun``.

    Raises
    ------
    AssertionError
        If a derivative disagrees with finite differences (autograd's
        tolerance: absolute or relative error below 1e-6).
    ValueError, TypeError
        For invalid ``order``, ``modes``, ``fun`` or ``x``.
    NotImplementedError
        If autograd has no rule for an operation in the requested mode.

    Examples
    --------
    >>> import autograd.numpy as np
    >>> check_derivatives(lambda x, a: np.sin(a * x), np.ones(3), 2,
    ...                   ("fwd", "rev"), 2.0)
    """
    if not callable(fun):
        raise TypeError("fun: expected a callable, got {}".format(
            type(fun).__name__))
    if isinstance(order, (bool, onp.bool_)) or \
            not isinstance(order, (numbers.Integral, onp.integer)):
        raise TypeError("order: expected an integer >= 1, got {!r}".format(
            order))
    if order < 1:
        raise ValueError("order: expected an integer >= 1, got {}".format(
            order))
    if isinstance(modes, str):
        modes = (modes,)
    try:
        modes = list(modes)
    except TypeError:
        raise TypeError("modes: expected a sequence of 'fwd' and 'rev', got "
                        "{!r}".format(modes)) from None
    if not modes or any(m not in ("fwd", "rev") for m in modes):
        raise ValueError("modes: expected a non-empty subset of ('fwd', "
                         "'rev'), got {!r}".format(modes))
    raw = onp.asarray(getval(x))
    if raw.dtype.kind not in "biuf":
        raise TypeError("x: expected real numbers, got {}".format(
            "dtype " + str(raw.dtype) if raw.dtype != object
            else type(x).__name__))
    if not onp.all(onp.isfinite(raw)):
        raise ValueError("x: expected finite values, got {}".format(raw))
    point = raw.astype(float)

    def wrapped(v):
        return _as_vector(fun(v, *args, **kwargs))
    wrapped.__name__ = getattr(fun, "__name__", "fun")

    with _seeded_global_random(0):
        try:
            check_grads(wrapped, modes=modes, order=int(order))(point)
        except NotImplementedError as err:
            raise NotImplementedError(
                "{}: autograd has no derivative rule for an operation in "
                "modes {} ({}); check another mode with modes=('rev',)".format(
                    wrapped.__name__, modes, err)) from err


# ----------------------------------------------------------------------
# check_pattern.

class _Skip(Exception):
    """A property that does not apply to this pattern."""


@contextlib.contextmanager
def _property(label, name):
    try:
        yield
    except _Skip:
        pass
    except AssertionError as err:
        raise AssertionError("check_pattern({}): {} failed: {}".format(
            label, name, err)) from err
    except Exception as err:
        raise AssertionError("check_pattern({}): {} failed: raised {}: "
                             "{}".format(label, name, type(err).__name__,
                                         err)) from err


def _expect(condition, message, *args):
    if not condition:
        raise AssertionError(message.format(*args) if args else message)


def _expect_raises(call, what):
    try:
        call()
    except (ValueError, TypeError):
        return
    raise AssertionError(what)


def _flat(vector, length, what):
    raw = getval(vector)
    _expect(type(raw) is onp.ndarray, "{} returned a {}, expected a numpy "
            "array", what, type(raw).__name__)
    _expect(raw.shape == (length,), "{} returned shape {}, expected ({},)",
            what, raw.shape, length)
    return raw


def _no_shared_memory(output, inputs, what):
    for path, leaf in _leaves(output, "output"):
        if not isinstance(leaf, onp.ndarray):
            continue
        for _, source in _leaves(inputs):
            if isinstance(source, onp.ndarray) and leaf.size and \
                    onp.shares_memory(leaf, source):
                raise AssertionError(
                    "{}: the {} shares memory with its input, so changing "
                    "one changes the other; return a copy".format(what, path))


def _accepts_free_default(pattern):
    try:
        return "free_default" in inspect.signature(type(pattern)).parameters
    except (TypeError, ValueError):
        return False


def _set_free_default(pattern, free_default):
    variant = copy.deepcopy(pattern)
    variant.free_default = free_default
    _expect(variant.free_default is free_default,
            "setting free_default={} is not kept", free_default)
    return variant


def _check_round_trips(pattern, value, free, omit, tol, gen):
    """fold/flatten are inverse, with ``free`` given or from free_default."""
    def call(method, arg, **kw):
        return method(arg, **kw) if omit else method(arg, free=free, **kw)
    length = pattern.flat_length() if omit else pattern.flat_length(free)
    _expect(isinstance(length, (int, onp.integer)) and length >= 0,
            "flat_length({}) is {!r}, expected a non-negative int", free,
            length)
    names = pattern.flat_names(free)
    _expect(len(names) == length and all(isinstance(n, str) for n in names),
            "flat_names({}) should be {} strings", free, length)
    flat = _flat(call(pattern.flatten, value), length, "flatten")
    _expect(onp.all(onp.isfinite(flat)), "flatten gave a non-finite entry")
    flat_before = flat.copy()
    folded = call(pattern.fold, flat)
    assert_folded_allclose(folded, value, name="fold(flatten(value))", **tol)
    _expect(onp.array_equal(flat, flat_before), "fold changed its input")
    _no_shared_memory(folded, flat, "fold")
    _no_shared_memory(flat, value, "flatten")
    assert_folded_allclose(
        _flat(call(pattern.flatten, folded), length, "flatten"), flat,
        name="flatten(fold(flat))", **tol)
    if free:
        z = gen.standard_normal(length)
        image = call(pattern.fold, z)
        ok, message = pattern.validate_folded(image)
        _expect(ok, "fold of a standard normal free vector is invalid: {}",
                message)
        assert_folded_allclose(call(pattern.flatten, image), z,
                               name="flatten(fold(free_val))", **tol)


def _check_defaults(pattern, value, free_default):
    if free_default is None:
        _expect_raises(lambda: pattern.flatten(value),
                       "with free_default=None, flatten without free should "
                       "raise ValueError")
        _expect_raises(lambda: pattern.flat_length(),
                       "with free_default=None, flat_length() should raise "
                       "ValueError")
        return
    assert_folded_allclose(pattern.flatten(value),
                           pattern.flatten(value, free=free_default),
                           rtol=0, atol=0, name="flatten(value)")


def _check_empty(pattern, tol):
    value = pattern.empty(True)
    ok, message = pattern.validate_folded(value)
    _expect(ok, "empty(True) is not valid: {}", message)
    for free in (False, True):
        flat = _flat(pattern.flatten(value, free=free),
                     pattern.flat_length(free), "flatten(empty(True))")
        assert_folded_allclose(pattern.fold(flat, free=free), value,
                               name="fold(flatten(empty(True)))", **tol)
    _flat(pattern.flatten(pattern.empty(False), free=False,
                          validate_value=False),
          pattern.flat_length(False), "flatten(empty(False))")


def _check_empty_bool(pattern):
    for fill in (True, False):
        flat = _flat(pattern.flatten(pattern.empty_bool(fill), free=False,
                                     validate_value=False),
                     pattern.flat_length(False), "flatten(empty_bool)")
        # (An empty vector's dtype carries no information.)
        _expect(flat.size == 0 or flat.dtype.kind == "b",
                "flatten(empty_bool({})) has dtype "
                "{}; booleans must flatten to booleans", fill, flat.dtype)
        _expect(onp.all(flat == fill), "empty_bool({}) has an entry that is "
                "not {}", fill, fill)


def _check_random(pattern):
    exact = dict(rtol=0, atol=0, equal_nan=True)
    assert_folded_allclose(pattern.random(rng=7), pattern.random(rng=7),
                           name="random(rng=7)", **exact)
    assert_folded_allclose(
        pattern.random(rng=onp.random.default_rng(7)),
        pattern.random(rng=onp.random.default_rng(7)),
        name="random(rng=default_rng(7))", **exact)
    ok, message = pattern.validate_folded(pattern.random(rng=None))
    _expect(ok, "random() is not valid: {}", message)


def _garbage(pattern, value):
    yield "None", None
    yield "a string", "not a parameter"
    yield "an object()", object()
    yield "an array of the wrong shape", onp.zeros(
        (pattern.flat_length(False) + 1, 2))
    if isinstance(value, Mapping) and value:
        first = next(iter(value))
        yield "a dict missing {!r}".format(first), {
            k: v for k, v in value.items() if k != first}
    if pattern.flat_length(False) > 0:
        try:
            nan = pattern.fold(onp.full(pattern.flat_length(False), onp.nan),
                               free=False, validate_value=False)
        except (ValueError, TypeError):
            return
        yield "a value full of NaN", nan


def _check_validate(pattern, value):
    for validate in (None, True, False):
        result = pattern.validate_folded(value, validate_value=validate)
        _expect(isinstance(result, tuple) and len(result) == 2,
                "validate_folded should return (bool, str), got {!r}", result)
        _expect(isinstance(result[0], (bool, onp.bool_)) and result[0]
                and result[1] == "", "validate_folded(valid_value, "
                "validate_value={}) gave {!r}, expected (True, '')",
                validate, result)
    for what, garbage in _garbage(pattern, value):
        try:
            result = pattern.validate_folded(garbage, validate_value=True)
        except Exception as err:
            raise AssertionError(
                "validate_folded raised {} on {}: {}; it must return (False, "
                "message) and never raise".format(type(err).__name__, what,
                                                  err)) from err
        _expect(isinstance(result, tuple) and len(result) == 2
                and not result[0] and isinstance(result[1], str)
                and result[1] != "", "validate_folded on {} gave {!r}, "
                "expected (False, a message)", what, result)


def _check_copies(pattern, value):
    copies = [("deepcopy", copy.deepcopy(pattern))]
    try:
        pickled = pickle.dumps(pattern)
    except (pickle.PicklingError, AttributeError, TypeError) as err:
        try:
            pickle.loads(pickle.dumps(type(pattern)))
            importable = True
        except Exception:
            importable = False
        if importable:
            raise AssertionError("pickling failed: {}".format(err)) from err
    else:
        copies.append(("pickle", pickle.loads(pickled)))
    _expect(pattern == pattern, "a pattern is not equal to itself")
    _expect(not pattern == object(), "a pattern equals object()")
    _expect(isinstance(repr(pattern), str), "repr is not a string")
    for how, other in copies:
        _expect(other == pattern and not other != pattern,
                "a {} copy is not equal to the pattern", how)
        _expect(hash(other) == hash(pattern), "a {} copy has another hash",
                how)
        _expect(other.free_default == pattern.free_default,
                "a {} copy has free_default={}, expected {}", how,
                other.free_default, pattern.free_default)
        for free in (False, True):
            assert_folded_allclose(
                other.flatten(value, free=free),
                pattern.flatten(value, free=free), rtol=0, atol=0,
                name="{} copy's flatten(free={})".format(how, free))


def _json_type_names(obj):
    if isinstance(obj, dict):
        if isinstance(obj.get("pattern"), str):
            yield obj["pattern"]
        for item in obj.values():
            yield from _json_type_names(item)
    elif isinstance(obj, list):
        for item in obj:
            yield from _json_type_names(item)


def _check_json(pattern, value):
    from refold.patterns.json_io import _lookup, get_pattern_from_json
    text = pattern.to_json()
    _expect(isinstance(text, str), "to_json returned a {}",
            type(text).__name__)

    def no_constant(token):
        raise AssertionError("to_json wrote the non-standard token " + token)
    parsed = json.loads(text, parse_constant=no_constant)
    if not all(_lookup(name) is not None
               for name in _json_type_names(parsed)):
        raise _Skip()
    for how, other in (("get_pattern_from_json", get_pattern_from_json(text)),
                       ("from_json", type(pattern).from_json(text))):
        _expect(type(other) is type(pattern), "{} built a {}", how,
                type(other).__name__)
        _expect(other == pattern, "{} built a different pattern: {!r}", how,
                other)
        if _accepts_free_default(pattern):
            _expect(other.free_default == pattern.free_default,
                    "{} lost free_default={}", how, pattern.free_default)
        for free in (False, True):
            _expect(other.flat_length(free) == pattern.flat_length(free),
                    "{} built a pattern of flat length {} (free={}), "
                    "expected {}", how, other.flat_length(free), free,
                    pattern.flat_length(free))
            assert_folded_allclose(
                other.flatten(value, free=free),
                pattern.flatten(value, free=free), rtol=0, atol=0,
                name="{}(...).flatten(free={})".format(how, free))
    _expect(get_pattern_from_json(text).to_json() == text,
            "to_json of the rebuilt pattern differs")


def _masks(length, gen):
    yield onp.ones(length, bool)
    yield onp.zeros(length, bool)
    for p in (0.2, 0.5):
        yield gen.random(length) < p


def _check_flat_indices(pattern, value, gen):
    flat_len, free_len = pattern.flat_length(False), pattern.flat_length(True)
    free0 = pattern.flatten(value, free=True)
    if flat_len and free_len:
        dependency = onp.asarray(autograd.jacobian(
            lambda v: pattern.flatten(pattern.fold(v, free=True),
                                      free=False))(free0)) != 0
    else:
        dependency = onp.zeros((flat_len, free_len), bool)
    for mask in _masks(flat_len, gen):
        folded_bool = pattern.fold(mask, free=False, validate_value=False)
        mask_before = mask.copy()
        expected = {False: onp.flatnonzero(mask),
                    True: onp.flatnonzero(dependency[mask].any(axis=0))}
        for free in (False, True):
            got = onp.asarray(pattern.flat_indices(folded_bool, free=free))
            _expect(got.ndim == 1 and got.dtype.kind in "iu",
                    "flat_indices(free={}) should be a 1-d integer array, "
                    "got {}", free, got)
            _expect(onp.array_equal(onp.sort(got), expected[free]),
                    "flat_indices(free={}) for the flat entries {} gave {}, "
                    "but the {} are {}", free, onp.flatnonzero(mask).tolist(),
                    onp.sort(got).tolist(),
                    "free coordinates they depend on (autograd Jacobian)"
                    if free else "selected flat positions",
                    expected[free].tolist())
        _expect(onp.array_equal(mask, mask_before),
                "fold changed its boolean input")


def _autograd_jacobians(pattern, value):
    flat_len, free_len = pattern.flat_length(False), pattern.flat_length(True)
    if not (flat_len and free_len):
        return onp.zeros((free_len, flat_len)), onp.zeros((flat_len, free_len))
    freeing = autograd.jacobian(lambda v: pattern.flatten(
        pattern.fold(v, free=False), free=True))(
            pattern.flatten(value, free=False))
    unfreeing = autograd.jacobian(lambda v: pattern.flatten(
        pattern.fold(v, free=True), free=False))(
            pattern.flatten(value, free=True))
    return onp.asarray(freeing), onp.asarray(unfreeing)


def _check_jacobians(pattern, value, tol):
    truth = dict(zip(("freeing", "unfreeing"),
                     _autograd_jacobians(pattern, value)))
    dense = {}
    for kind in ("freeing", "unfreeing"):
        method = getattr(pattern, kind + "_jacobian")
        shape = truth[kind].shape
        jac = method(value, sparse=True)
        _expect(osp.issparse(jac), "{}_jacobian(sparse=True) returned a {}, "
                "expected a scipy.sparse matrix", kind, type(jac).__name__)
        _expect(jac.shape == shape, "{}_jacobian has shape {}, expected {}",
                kind, jac.shape, shape)
        full = method(value, sparse=False)
        _expect(type(full) is onp.ndarray, "{}_jacobian(sparse=False) "
                "returned a {}, expected a numpy.ndarray", kind,
                type(full).__name__)
        assert_folded_allclose(full, truth[kind],
                               name=kind + "_jacobian vs autograd", **tol)
        assert_folded_allclose(jac.toarray(), full,
                               name=kind + "_jacobian sparse vs dense", **tol)
        dense[kind] = full
    free_len = dense["freeing"].shape[0]
    assert_folded_allclose(dense["freeing"] @ dense["unfreeing"],
                           onp.eye(free_len),
                           name="freeing_jacobian @ unfreeing_jacobian",
                           **tol)
    return truth


def _independent_rows(matrix):
    """First rows of ``matrix``, in order, that are linearly independent."""
    scale = max(float(onp.max(onp.linalg.norm(matrix, axis=1), initial=0)),
                1e-300)
    basis, rows = [], []
    for i, row in enumerate(matrix):
        resid = row.astype(float)
        for _ in range(2):  # twice is enough for Gram-Schmidt
            for b in basis:
                resid = resid - (b @ resid) * b
        norm = onp.linalg.norm(resid)
        if norm > 1e-8 * scale:
            basis.append(resid / norm)
            rows.append(i)
            if len(rows) == matrix.shape[1]:
                break
    return rows


def _check_log_dets(pattern, value, truth, tol):
    flat_len, free_len = pattern.flat_length(False), pattern.flat_length(True)
    results = {}
    for kind in ("freeing", "unfreeing"):
        try:
            results[kind] = float(getval(getattr(
                pattern, "log_abs_det_{}_jacobian".format(kind))(value)))
        except NotImplementedError:
            if flat_len == free_len:
                raise
            raise _Skip() from None
    unfreeing = truth["unfreeing"]
    rows = _independent_rows(unfreeing) if flat_len != free_len \
        else list(range(flat_len))
    _expect(len(rows) == free_len, "the unfreeing Jacobian has rank {} < "
            "{}, so the free parameterisation is degenerate", len(rows),
            free_len)
    expected = float(onp.linalg.slogdet(unfreeing[rows])[1]) if rows else 0.
    if flat_len == free_len and free_len:
        expected_free = float(onp.linalg.slogdet(truth["freeing"])[1])
    else:
        expected_free = -expected
    for kind, want in (("unfreeing", expected), ("freeing", expected_free)):
        got = results[kind]
        _expect(abs(got - want) <= tol["atol"] + tol["rtol"] * abs(want)
                + 1e-10 * max(1.0, abs(want)),
                "log_abs_det_{}_jacobian is {!r}, but slogdet of the autograd "
                "Jacobian{} gives {!r}", kind, got,
                "" if flat_len == free_len else
                " (over its first independent flat coordinates)", want)


def _check_grads_of_maps(pattern, value):
    free0 = onp.asarray(pattern.flatten(value, free=True), dtype=float)
    if free0.size == 0:
        raise _Skip()
    maps = [("fold(free=True)", free0,
             lambda v: pattern.flatten(pattern.fold(v, free=True),
                                       free=False)),
            ("flatten(free=True) after fold", free0,
             lambda v: pattern.flatten(pattern.fold(v, free=True),
                                       free=True))]
    if pattern.flat_length(False) == free0.size:
        maps.append(("flatten(free=True) of a flat value",
                     onp.asarray(pattern.flatten(value, free=False),
                                 dtype=float),
                     lambda v: pattern.flatten(pattern.fold(
                         v, free=False, validate_value=False), free=True)))
    for what, point, fun in maps:
        fun.__name__ = what
        with _seeded_global_random(0):
            try:
                check_grads(fun, modes=["fwd", "rev"], order=2)(point)
            except AssertionError as err:
                raise AssertionError("derivatives of {}: {}".format(
                    what, err)) from None


def _check_tolerance(value, name):
    if isinstance(value, (bool, onp.bool_)) or \
            not isinstance(value, (numbers.Real, onp.floating, onp.integer)):
        raise TypeError("{}: expected a non-negative number, got {!r}".format(
            name, value))
    if not (value >= 0 and onp.isfinite(value)):
        raise ValueError("{}: expected a finite non-negative number, got "
                         "{}".format(name, value))
    return float(value)


def check_pattern(pattern: Pattern, valid_value: Any = None, *, rng=0,
                  check_derivatives: bool = True, atol: float = 1e-8,
                  rtol: float = 1e-8) -> None:
    r"""Check that ``pattern`` keeps the whole pattern contract.

    Checked, each failing with an ``AssertionError`` that names the property:

    - for ``free`` in (True, False) and ``free_default`` in (None, True,
      False): ``flatten``/``fold`` are inverse (values and flat vectors),
      lengths agree with ``flat_length`` and ``flat_names``, an omitted
      ``free`` uses ``free_default`` (and raises when it is None), a
      standard-normal free vector folds to a valid value, outputs do not
      share memory with inputs and inputs are not changed;
    - ``empty(True)`` is valid and flattens both ways; ``empty(False)``
      flattens without validation; ``empty_bool`` flattens to booleans;
    - ``random(rng)`` is valid and reproducible with a seed;
    - ``validate_folded`` gives ``(True, '')`` for the valid value and
      ``(False, message)`` for garbage (None, strings, wrong shapes, NaN),
      never raising;
    - copies (``copy.deepcopy`` and a pickle round trip) are equal, hash
      equally and flatten equally (pickling is skipped for classes that
      cannot be pickled by reference, such as classes defined in a
      function);
    - ``to_json`` is standard JSON and, when every type in it is registered,
      reads back (by ``get_pattern_from_json`` and ``from_json``) as an
      equal pattern with the same ``free_default``;
    - ``flat_indices`` (free and not) for random boolean masks are exactly
      the selected flat positions and the free coordinates the selected
      entries depend on (the nonzero columns of autograd's Jacobian);
    - ``freeing_jacobian`` and ``unfreeing_jacobian`` equal autograd's
      Jacobians, as ``scipy.sparse`` matrices (``sparse=True``) and dense
      ``numpy.ndarray`` (``sparse=False``), and their product is the
      identity; checked at ``valid_value`` and at a random value;
    - the log-determinants equal ``slogdet`` of autograd's Jacobian; when
      the flat and free lengths differ, over the first linearly independent
      flat coordinates (the lower triangle of a symmetric matrix, all but
      one entry of a simplex). A ``NotImplementedError`` is accepted then;
    - with ``check_derivatives``, the derivatives of ``fold`` and
      ``flatten`` to second order in forward and reverse mode, by
      :func:`autograd.test_util.check_grads`, at a random value.

    Parameters
    ----------
    pattern : Pattern
        The pattern to check. It is not modified (variants with other
        ``free_default`` values are copies).
    valid_value : optional
        A valid folded value to check at; by default ``pattern.random(rng)``.
    rng : None, int or numpy.random.Generator, optional
        Source of the random values, masks and vectors used.
    check_derivatives : bool, optional
        Whether to run the (slower) finite-difference derivative checks.
    atol, rtol : float, optional
        Tolerances for round trips and Jacobians.

    Raises
    ------
    AssertionError
        If a property fails; the message starts with
        ``check_pattern(<class>): <property> failed``.
    TypeError, ValueError
        If the arguments are invalid (``valid_value`` not valid for
        ``pattern``, negative tolerances, ...).

    Examples
    --------
    >>> from refold import NumericArrayPattern
    >>> check_pattern(NumericArrayPattern((2, 3), lb=-1.0, ub=2.0))
    """
    if not isinstance(pattern, Pattern):
        raise TypeError("pattern: expected a refold Pattern, got {}".format(
            type(pattern).__name__))
    if not isinstance(check_derivatives, (bool, onp.bool_)):
        raise TypeError("check_derivatives: expected True or False, got "
                        "{!r}".format(check_derivatives))
    tol = dict(atol=_check_tolerance(atol, "atol"),
               rtol=_check_tolerance(rtol, "rtol"))
    gen = resolve_rng(rng)
    label = type(pattern).__name__
    pattern_before = copy.deepcopy(pattern)
    free_default_before = pattern.free_default

    if valid_value is None:
        with _property(label, "random()"):
            valid_value = pattern.random(rng=gen)
    else:
        try:
            ok, message = pattern.validate_folded(valid_value)
        except Exception as err:
            ok, message = False, "validate_folded raised {}: {}".format(
                type(err).__name__, err)
        if not ok:
            raise ValueError("valid_value: not a valid value of {}: {}".format(
                label, message))
    value_before = copy.deepcopy(valid_value)
    with _property(label, "random()"):
        random_value = pattern.random(rng=gen)

    for free_default in (None, True, False):
        with _property(label, "setting free_default={}".format(free_default)):
            variant = _set_free_default(pattern, free_default)
        for free in (True, False):
            name = "fold/flatten round trip (free={}, free_default={})".format(
                free, free_default)
            with _property(label, name):
                _check_round_trips(variant, valid_value, free,
                                   free_default is free, tol, gen)
        with _property(label, "free_default={}".format(free_default)):
            _check_defaults(variant, valid_value, free_default)
        with _property(label, "copy and pickle (free_default={})".format(
                free_default)):
            _check_copies(variant, valid_value)
        with _property(label, "JSON round trip (free_default={})".format(
                free_default)):
            _check_json(variant, valid_value)

    checks = [("empty", lambda: _check_empty(pattern, tol)),
              ("empty_bool", lambda: _check_empty_bool(pattern)),
              ("random", lambda: _check_random(pattern)),
              ("validate_folded", lambda: _check_validate(pattern,
                                                          valid_value)),
              ("flat_indices", lambda: _check_flat_indices(
                  pattern, random_value, gen))]
    for name, run in checks:
        with _property(label, name):
            run()
    for where, value in (("valid_value", valid_value),
                         ("a random value", random_value)):
        truth = None
        with _property(label, "Jacobians at " + where):
            truth = _check_jacobians(pattern, value, tol)
        with _property(label, "log-determinants at " + where):
            _check_log_dets(pattern, value, truth, tol)
    if check_derivatives:
        with _property(label, "derivatives (check_grads)"):
            _check_grads_of_maps(pattern, random_value)

    with _property(label, "inputs unchanged"):
        assert_folded_allclose(valid_value, value_before, rtol=0, atol=0,
                               equal_nan=True, name="valid_value")
        _expect(pattern == pattern_before and
                pattern.free_default == free_default_before,
                "the pattern itself was changed")
