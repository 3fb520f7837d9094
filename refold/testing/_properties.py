"""The value-level properties :func:`~refold.testing.check_pattern` checks:
round trips, defaults, ``empty``, ``random``, ``validate_folded``, copies and
JSON. Each raises an ``AssertionError`` (through :func:`expect`) saying what
failed, or :class:`Skip` when the property does not apply."""
from __future__ import annotations

import copy
import inspect
import json
import pickle
from collections.abc import Mapping

import numpy as onp
from autograd.tracer import getval

from refold.testing._compare import assert_folded_allclose, leaves


class Skip(Exception):
    """A property that does not apply to this pattern."""


def expect(condition, message, *args):
    """Raise ``AssertionError(message.format(*args))`` unless ``condition``."""
    if not condition:
        raise AssertionError(message.format(*args) if args else message)


def _expect_raises(call, what):
    try:
        call()
    except (ValueError, TypeError):
        return
    raise AssertionError(what)


def flat_vector(vector, length, what):
    """The raw ``vector`` returned by ``what``, asserting it is a numpy
    vector of ``length``."""
    raw = getval(vector)
    expect(type(raw) is onp.ndarray, "{} returned a {}, expected a numpy "
           "array", what, type(raw).__name__)
    expect(raw.shape == (length,), "{} returned shape {}, expected ({},)",
           what, raw.shape, length)
    return raw


def _no_shared_memory(output, inputs, what):
    for path, leaf in leaves(output, "output"):
        if not isinstance(leaf, onp.ndarray):
            continue
        for _, source in leaves(inputs):
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


def set_free_default(pattern, free_default):
    variant = copy.deepcopy(pattern)
    variant.free_default = free_default
    expect(variant.free_default is free_default,
           "setting free_default={} is not kept", free_default)
    return variant


def check_round_trips(pattern, value, free, omit, tol, gen):
    """fold/flatten are inverse, with ``free`` given or from free_default."""
    def call(method, arg, **kw):
        return method(arg, **kw) if omit else method(arg, free=free, **kw)
    length = pattern.flat_length() if omit else pattern.flat_length(free)
    expect(isinstance(length, (int, onp.integer)) and length >= 0,
           "flat_length({}) is {!r}, expected a non-negative int", free,
           length)
    names = pattern.flat_names(free)
    expect(len(names) == length and all(isinstance(n, str) for n in names),
           "flat_names({}) should be {} strings", free, length)
    flat = flat_vector(call(pattern.flatten, value), length, "flatten")
    expect(onp.all(onp.isfinite(flat)), "flatten gave a non-finite entry")
    flat_before = flat.copy()
    folded = call(pattern.fold, flat)
    assert_folded_allclose(folded, value, name="fold(flatten(value))", **tol)
    expect(onp.array_equal(flat, flat_before), "fold changed its input")
    _no_shared_memory(folded, flat, "fold")
    _no_shared_memory(flat, value, "flatten")
    assert_folded_allclose(
        flat_vector(call(pattern.flatten, folded), length, "flatten"), flat,
        name="flatten(fold(flat))", **tol)
    if free:
        z = gen.standard_normal(length)
        image = call(pattern.fold, z)
        ok, message = pattern.validate_folded(image)
        expect(ok, "fold of a standard normal free vector is invalid: {}",
               message)
        assert_folded_allclose(call(pattern.flatten, image), z,
                               name="flatten(fold(free_val))", **tol)


def check_defaults(pattern, value, free_default):
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


def check_empty(pattern, tol):
    value = pattern.empty(True)
    ok, message = pattern.validate_folded(value)
    expect(ok, "empty(True) is not valid: {}", message)
    for free in (False, True):
        flat = flat_vector(pattern.flatten(value, free=free),
                           pattern.flat_length(free), "flatten(empty(True))")
        assert_folded_allclose(pattern.fold(flat, free=free), value,
                               name="fold(flatten(empty(True)))", **tol)
    flat_vector(pattern.flatten(pattern.empty(False), free=False,
                                validate_value=False),
                pattern.flat_length(False), "flatten(empty(False))")


def check_empty_bool(pattern):
    for fill in (True, False):
        value = pattern.flatten(pattern.empty_bool(fill), free=False,
                                validate_value=False)
        flat = flat_vector(value, pattern.flat_length(False),
                           "flatten(empty_bool)")
        # (An empty vector's dtype carries no information.)
        expect(flat.size == 0 or flat.dtype.kind == "b",
               "flatten(empty_bool({})) has dtype "
               "{}; booleans must flatten to booleans", fill, flat.dtype)
        expect(onp.all(flat == fill), "empty_bool({}) has an entry that is "
               "not {}", fill, fill)


def check_random(pattern):
    exact = dict(rtol=0, atol=0, equal_nan=True)
    assert_folded_allclose(pattern.random(rng=7), pattern.random(rng=7),
                           name="random(rng=7)", **exact)
    assert_folded_allclose(
        pattern.random(rng=onp.random.default_rng(7)),
        pattern.random(rng=onp.random.default_rng(7)),
        name="random(rng=default_rng(7))", **exact)
    ok, message = pattern.validate_folded(pattern.random(rng=None))
    expect(ok, "random() is not valid: {}", message)


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


def check_validate(pattern, value):
    for validate in (None, True, False):
        result = pattern.validate_folded(value, validate_value=validate)
        expect(isinstance(result, tuple) and len(result) == 2,
               "validate_folded should return (bool, str), got {!r}", result)
        expect(isinstance(result[0], (bool, onp.bool_)) and result[0]
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
        expect(isinstance(result, tuple) and len(result) == 2
               and not result[0] and isinstance(result[1], str)
               and result[1] != "", "validate_folded on {} gave {!r}, "
               "expected (False, a message)", what, result)


def check_copies(pattern, value):
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
    expect(pattern == pattern, "a pattern is not equal to itself")
    expect(not pattern == object(), "a pattern equals object()")
    expect(isinstance(repr(pattern), str), "repr is not a string")
    for how, other in copies:
        expect(other == pattern and not other != pattern,
               "a {} copy is not equal to the pattern", how)
        expect(hash(other) == hash(pattern), "a {} copy has another hash",
               how)
        expect(other.free_default == pattern.free_default,
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


def check_json(pattern, value):
    from refold.patterns.json_io import _lookup, get_pattern_from_json
    text = pattern.to_json()
    expect(isinstance(text, str), "to_json returned a {}",
           type(text).__name__)

    def no_constant(token):
        raise AssertionError("to_json wrote the non-standard token " + token)
    parsed = json.loads(text, parse_constant=no_constant)
    if not all(_lookup(name) is not None
               for name in _json_type_names(parsed)):
        raise Skip()
    for how, other in (("get_pattern_from_json", get_pattern_from_json(text)),
                       ("from_json", type(pattern).from_json(text))):
        expect(type(other) is type(pattern), "{} built a {}", how,
               type(other).__name__)
        expect(other == pattern, "{} built a different pattern: {!r}", how,
               other)
        if _accepts_free_default(pattern):
            expect(other.free_default == pattern.free_default,
                   "{} lost free_default={}", how, pattern.free_default)
        for free in (False, True):
            expect(other.flat_length(free) == pattern.flat_length(free),
                   "{} built a pattern of flat length {} (free={}), "
                   "expected {}", how, other.flat_length(free), free,
                   pattern.flat_length(free))
            assert_folded_allclose(
                other.flatten(value, free=free),
                pattern.flatten(value, free=free), rtol=0, atol=0,
                name="{}(...).flatten(free={})".format(how, free))
    expect(get_pattern_from_json(text).to_json() == text,
           "to_json of the rebuilt pattern differs")
