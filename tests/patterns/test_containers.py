"""PatternDict and PatternArray."""
import pickle

import autograd
import autograd.numpy as anp
import numpy as np
import pytest
from autograd.test_util import check_grads
from hypothesis import given, settings, strategies as st

from refold import (
    NumericArrayPattern, NumericScalarPattern, NumericVectorPattern,
    Pattern, PatternArray, PatternDict)
from tests.patterns._helpers import autograd_jacobian


class Positive2(Pattern):
    """A custom (non-batched) pattern: a positive 2-vector, paragami-style."""

    def __init__(self, free_default=None):
        super().__init__(2, 2, free_default=free_default)

    def fold(self, flat_val, free=None, validate_value=None):
        free = self._free_with_default(free)
        flat_val = anp.atleast_1d(flat_val)
        if flat_val.shape != (2,):
            raise ValueError("wrong length")
        value = anp.exp(flat_val) if free else flat_val
        if not free and validate_value is not False and \
                np.any(np.asarray(autograd.tracer.getval(value)) <= 0):
            raise ValueError("not positive")
        return value

    def flatten(self, folded_val, free=None, validate_value=None):
        free = self._free_with_default(free)
        ok, message = self.validate_folded(folded_val, validate_value)
        if not ok:
            raise ValueError(message)
        return anp.log(folded_val) if free else folded_val * 1.0

    def empty(self, valid):
        return np.ones(2) if valid else np.empty(2)

    def validate_folded(self, folded_val, validate_value=None):
        raw = np.asarray(autograd.tracer.getval(folded_val))
        if raw.shape != (2,):
            return False, "expected shape (2,)"
        if validate_value is not False and np.any(raw <= 0):
            return False, "not positive"
        return True, ""

    def as_dict(self):
        return {"pattern": self.json_typename(),
                "free_default": self.free_default}


def _example_dict():
    pattern = PatternDict(free_default=True)
    pattern["a"] = NumericArrayPattern((2, 3), lb=0.0)
    pattern["b"] = NumericScalarPattern(lb=-1.0, ub=1.0)
    inner = PatternDict()
    inner["c"] = NumericVectorPattern(4, ub=5.0)
    pattern["inner"] = inner
    return pattern


def _assert_tree_close(a, b, **kwargs):
    if isinstance(a, dict):
        assert list(a) == list(b)
        for key in a:
            _assert_tree_close(a[key], b[key], **kwargs)
    else:
        np.testing.assert_allclose(a, b, **kwargs)


def test_dict_is_a_mapping_in_insertion_order():
    pattern = _example_dict()
    assert len(pattern) == 3 and "a" in pattern and "zz" not in pattern
    assert list(pattern) == ["a", "b", "inner"]
    assert list(pattern.keys()) == ["a", "b", "inner"]
    assert pattern.get("zz") is None
    assert [k for k, _ in pattern.items()] == ["a", "b", "inner"]
    assert list(pattern.values())[0] == NumericArrayPattern((2, 3), lb=0.0)
    assert dict(pattern.items())["b"] == NumericScalarPattern(lb=-1.0, ub=1.0)
    assert pattern.flat_length(False) == 6 + 1 + 4
    with pytest.raises(KeyError, match="zz"):
        pattern["zz"]


def test_dict_round_trip_and_order():
    pattern = _example_dict()
    value = pattern.random(rng=0)
    flat = pattern.flatten(value, free=False)
    np.testing.assert_array_equal(
        flat, np.concatenate([value["a"].ravel(), value["b"],
                              value["inner"]["c"]]))
    _assert_tree_close(pattern.fold(pattern.flatten(value)), value,
                       rtol=1e-12)
    free = pattern.flatten(value)
    check_grads(lambda v: pattern.flatten(pattern.fold(v), free=False),
                modes=["fwd", "rev"], order=2)(free)


def test_dict_locking_semantics():
    pattern = _example_dict()
    inner = pattern["inner"]
    assert inner.locked()
    with pytest.raises(ValueError, match="locked"):
        inner["d"] = NumericVectorPattern(1)
    pattern["d"] = NumericVectorPattern(2)
    assert pattern.flat_length(False) == 13
    del pattern["d"]
    assert pattern.flat_length(False) == 11
    pattern.lock()
    with pytest.raises(ValueError, match="locked"):
        pattern["e"] = NumericVectorPattern(2)
    with pytest.raises(ValueError, match="locked"):
        del pattern["a"]


def test_dict_bad_members():
    pattern = PatternDict()
    with pytest.raises(TypeError, match=r"PatternDict\['x'\]: expected a Pattern"):
        pattern["x"] = np.zeros(3)
    with pytest.raises(TypeError, match="keys must be strings"):
        pattern[1] = NumericVectorPattern(1)


def test_dict_bad_values_name_the_path():
    pattern = _example_dict()
    value = pattern.random(rng=1)
    value["inner"]["c"] = value["inner"]["c"].copy()
    value["inner"]["c"][2] = 6.0
    with pytest.raises(ValueError,
                       match=r"params\['inner'\]\['c'\]\[2\].*upper bound"):
        pattern.flatten(value)
    missing = dict(value)
    del missing["a"]
    with pytest.raises(ValueError, match=r"missing \['a'\]"):
        pattern.flatten(missing)
    extra = dict(pattern.random(rng=1))
    extra["zz"] = 1.0
    with pytest.raises(ValueError, match=r"unexpected \['zz'\]"):
        pattern.flatten(extra)
    with pytest.raises(TypeError, match="expected a dict"):
        pattern.flatten(np.zeros(11))
    ok, message = pattern.validate_folded([1, 2, 3])
    assert not ok and "expected a dict" in message


def test_dict_jacobians_and_log_det():
    pattern = _example_dict()
    value = pattern.random(rng=2)
    dense = autograd_jacobian(pattern, value, "freeing")
    np.testing.assert_allclose(pattern.freeing_jacobian(value).toarray(),
                               dense, atol=1e-12)
    np.testing.assert_allclose(
        pattern.unfreeing_jacobian(value, sparse=False) @ dense,
        np.eye(11), atol=1e-10)
    np.testing.assert_allclose(pattern.log_abs_det_freeing_jacobian(value),
                               np.linalg.slogdet(dense)[1], atol=1e-10)


def test_dict_flat_indices_and_names():
    pattern = _example_dict()
    mask = pattern.empty_bool(False)
    mask["inner"]["c"][1] = True
    mask["a"][0, 2] = True
    np.testing.assert_array_equal(pattern.flat_indices(mask, free=True),
                                  [2, 8])
    assert pattern.flat_names(True)[:2] == ["a_[0,0]", "a_[0,1]"]
    assert pattern.flat_names(True)[-1] == "inner_c_[3]"


def test_dict_equality_hash_pickle():
    one, two = _example_dict(), _example_dict()
    assert one == two and hash(one) == hash(two)
    assert pickle.loads(pickle.dumps(one)) == one
    two_changed = _example_dict()
    two_changed["z"] = NumericVectorPattern(1)
    assert one != two_changed
    reordered = PatternDict(free_default=True)
    for key in ["b", "a", "inner"]:
        reordered[key] = _example_dict()[key]
    assert one != reordered


def test_paragami_dict_and_array_interchange(paragami):
    ours = PatternDict()
    ours["a"] = NumericArrayPattern((2,), lb=0.0)
    ours["arr"] = PatternArray((3,), NumericVectorPattern(2, ub=1.0))
    theirs = paragami.PatternDict()
    theirs["a"] = paragami.NumericArrayPattern((2,), lb=0.0)
    theirs["arr"] = paragami.PatternArray(
        (3,), paragami.NumericVectorPattern(2, ub=1.0))
    free = np.linspace(-1.0, 1.0, ours.flat_length(True))
    _assert_tree_close(ours.fold(free, free=True),
                       theirs.fold(free, free=True), rtol=1e-12)


def test_array_of_numeric_is_element_major():
    base = NumericVectorPattern(2, lb=0.0)
    pattern = PatternArray((3, 2), base, free_default=True)
    value = pattern.random(rng=3)
    assert value.shape == (3, 2, 2)
    free = pattern.flatten(value)
    np.testing.assert_allclose(free[2 * 3:2 * 4],
                               base.flatten(value[1, 1], free=True))
    np.testing.assert_allclose(pattern.fold(free), value, rtol=1e-12)
    assert pattern.shape() == (3, 2, 2) and pattern.array_shape() == (3, 2)
    assert pattern.base_pattern() == base


def test_array_of_dict_is_a_dict_of_stacks():
    base = _example_dict()
    pattern = PatternArray((4,), base, free_default=True)
    assert base.locked()
    value = pattern.random(rng=4)
    assert value["a"].shape == (4, 2, 3)
    assert value["inner"]["c"].shape == (4, 4)
    free = pattern.flatten(value)
    element = {"a": value["a"][2], "b": value["b"][2],
               "inner": {"c": value["inner"]["c"][2]}}
    length = base.flat_length(True)
    np.testing.assert_allclose(free[2 * length:3 * length],
                               base.flatten(element), rtol=1e-12)
    _assert_tree_close(pattern.fold(free), value, rtol=1e-12)
    check_grads(lambda v: pattern.flatten(pattern.fold(v), free=False),
                modes=["fwd", "rev"], order=2)(free)
    with pytest.raises(TypeError, match="no single shape"):
        pattern.shape()
    bad = pattern.random(rng=4)
    bad["b"] = bad["b"].copy()
    bad["b"][3, 0] = 2.0
    with pytest.raises(ValueError, match=r"params\['b'\]\[3, 0\]"):
        pattern.flatten(bad)


def test_array_jacobians_log_det_and_flat_indices():
    pattern = PatternArray((2, 2), NumericVectorPattern(2, lb=-1.0, ub=2.0))
    value = pattern.random(rng=5)
    dense = autograd_jacobian(pattern, value, "freeing")
    np.testing.assert_allclose(pattern.freeing_jacobian(value).toarray(),
                               dense, atol=1e-12)
    np.testing.assert_allclose(
        pattern.log_abs_det_unfreeing_jacobian(value),
        -np.linalg.slogdet(dense)[1], atol=1e-10)
    mask = pattern.empty_bool(False)
    mask[1, 0, 1] = True
    np.testing.assert_array_equal(pattern.flat_indices(mask, free=True), [5])


def test_array_of_custom_pattern_falls_back_per_element():
    pattern = PatternArray((3,), Positive2())
    value = pattern.random(rng=6)
    assert value.shape == (3, 2) and np.all(value > 0)
    free = pattern.flatten(value, free=True)
    np.testing.assert_allclose(free, np.log(value).ravel(), rtol=1e-12)
    np.testing.assert_allclose(pattern.fold(free, free=True), value)
    check_grads(lambda v: pattern.fold(v, free=True),
                modes=["fwd", "rev"], order=2)(free)
    dense = autograd_jacobian(pattern, value, "freeing")
    np.testing.assert_allclose(pattern.freeing_jacobian(value).toarray(),
                               dense, atol=1e-12)
    np.testing.assert_allclose(pattern.log_abs_det_freeing_jacobian(value),
                               np.linalg.slogdet(dense)[1], atol=1e-12)
    bad = value.copy()
    bad[1, 0] = -1.0
    with pytest.raises(ValueError, match=r"params\[1\]: not positive"):
        pattern.flatten(bad, free=True)
    np.testing.assert_array_equal(pattern.empty(True), np.ones((3, 2)))


def test_array_bad_construction():
    with pytest.raises(TypeError, match="base_pattern"):
        PatternArray((2,), "not a pattern")
    with pytest.raises(ValueError, match="array_shape"):
        PatternArray((-2,), NumericVectorPattern(1))
    with pytest.raises(ValueError, match="length 4"):
        PatternArray((2,), NumericVectorPattern(2)).fold(np.zeros(3),
                                                         free=False)


def test_empty_containers():
    pattern = PatternDict()
    assert pattern.flat_length(True) == 0
    assert pattern.fold(np.zeros(0), free=True) == {}
    assert pattern.flatten({}, free=True).shape == (0,)


@settings(max_examples=25, deadline=None)
@given(array_shape=st.lists(st.integers(1, 3), min_size=1, max_size=2),
       length=st.integers(1, 3), seed=st.integers(0, 2 ** 16),
       nest=st.booleans())
def test_property_array_round_trip(array_shape, length, seed, nest):
    base = NumericVectorPattern(length, lb=-2.0, ub=3.0)
    if nest:
        inner = PatternDict()
        inner["v"] = base
        inner["w"] = NumericScalarPattern(lb=0.0)
        base = inner
    pattern = PatternArray(tuple(array_shape), base)
    rng = np.random.default_rng(seed)
    free = rng.normal(size=pattern.flat_length(True))
    folded = pattern.fold(free, free=True)
    np.testing.assert_allclose(pattern.flatten(folded, free=True), free,
                               rtol=1e-8, atol=1e-10)
    flat = pattern.flatten(folded, free=False)
    _assert_tree_close(pattern.fold(flat, free=False), folded)
