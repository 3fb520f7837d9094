"""NumericArrayPattern and its vector/scalar forms."""
import pickle

import numpy as np
import pytest
from autograd.test_util import check_grads
from hypothesis import given, settings, strategies as st

from refold import (
    NumericArrayPattern, NumericScalarPattern, NumericVectorPattern)
from tests.patterns._helpers import assert_round_trips, autograd_jacobian

INF = np.inf
BOUNDS = [(-INF, INF), (0.0, INF), (-INF, 2.0), (-1.0, 3.0), (5.0, 5.5)]


def _free_map(x, lb, ub):
    """paragami's free parameterisation, written out independently."""
    if lb > -INF and ub < INF:
        return np.log(x - lb) - np.log(ub - x)
    if lb > -INF:
        return np.log(x - lb)
    if ub < INF:
        return -np.log(ub - x)
    return x


@pytest.mark.parametrize("lb, ub", BOUNDS)
def test_round_trips_and_closed_form(lb, ub):
    pattern = NumericArrayPattern((2, 3), lb=lb, ub=ub)
    value = pattern.random(rng=0)
    assert value.shape == (2, 3)
    assert_round_trips(pattern, value, _free_map(value, lb, ub).ravel(),
                       rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("lb, ub", BOUNDS)
def test_derivatives_order_two(lb, ub):
    pattern = NumericArrayPattern((3,), lb=lb, ub=ub)
    value = pattern.random(rng=1)
    free = pattern.flatten(value, free=True)
    check_grads(lambda v: pattern.fold(v, free=True),
                modes=["fwd", "rev"], order=2)(free)
    check_grads(lambda x: pattern.flatten(x, free=True),
                modes=["fwd", "rev"], order=2)(value)


@pytest.mark.parametrize("lb, ub", BOUNDS)
def test_jacobians_and_log_determinants(lb, ub):
    pattern = NumericArrayPattern((2, 2), lb=lb, ub=ub)
    value = pattern.random(rng=2)
    dense = autograd_jacobian(pattern, value, "freeing")
    freeing = pattern.freeing_jacobian(value)
    assert not isinstance(freeing, np.matrix)
    np.testing.assert_allclose(freeing.toarray(), dense, rtol=1e-12)
    unfreeing = pattern.unfreeing_jacobian(value, sparse=False)
    assert type(unfreeing) is np.ndarray
    np.testing.assert_allclose(unfreeing @ dense, np.eye(4), atol=1e-12)
    np.testing.assert_allclose(pattern.log_abs_det_freeing_jacobian(value),
                               np.linalg.slogdet(dense)[1], atol=1e-12)
    np.testing.assert_allclose(pattern.log_abs_det_unfreeing_jacobian(value),
                               -np.linalg.slogdet(dense)[1], atol=1e-12)


@pytest.mark.parametrize("lb, ub", BOUNDS)
def test_extreme_free_values_never_nan_and_stay_in_bounds(lb, ub):
    pattern = NumericVectorPattern(8, lb=lb, ub=ub)
    free = np.array([-1e300, -800.0, -40.0, -1e-300, 0.0, 40.0, 800.0, 1e300])
    with np.errstate(over="ignore"):
        folded = pattern.fold(free, free=True)
    assert not np.any(np.isnan(folded))
    assert np.all((folded >= lb) & (folded <= ub))
    if lb > -INF and ub < INF:
        assert np.all(np.isfinite(folded))


def test_precision_near_both_bounds():
    # With bounds [-1, 0] the exact values -sigmoid(-40) and
    # -1 + sigmoid(-40)... the first is representable with full relative
    # precision next to the upper bound 0, and must keep it.
    pattern = NumericVectorPattern(2, lb=-1.0, ub=0.0)
    folded = pattern.fold(np.array([40.0, -40.0]), free=True)
    tiny = 1.0 / (1.0 + np.exp(40.0))
    np.testing.assert_allclose(folded[0], -tiny, rtol=1e-14)
    # (-1 + tiny rounds onto the bound, so only the first flattens.)
    np.testing.assert_allclose(
        pattern.flatten(np.array([folded[0], -0.5]), free=True)[0], 40.0,
        rtol=1e-12)
    lower = NumericVectorPattern(1, lb=0.0, ub=1.0)
    np.testing.assert_allclose(lower.fold(np.array([-40.0]), free=True),
                               [tiny], rtol=1e-14)


def test_representable_subnormal_and_overflowing_differences():
    near_zero = NumericVectorPattern(1, lb=-1.0, ub=0.0)
    value = near_zero.fold(np.array([740.0]), free=True)
    assert value[0] < 0.0 and value[0] > -1e-320
    wide = NumericVectorPattern(3, lb=-1e308, ub=1e308)
    x = np.array([-9e307, 0.0, 9e307])
    free = wide.flatten(x, free=True)
    assert np.all(np.isfinite(free))
    np.testing.assert_allclose(wide.fold(free, free=True), x, rtol=1e-12)
    lower = NumericVectorPattern(1, lb=-1e308)
    np.testing.assert_allclose(lower.flatten(np.array([1e308]), free=True),
                               np.log(2.0) + np.log(1e308), rtol=1e-14)


def test_paragami_interchange(paragami):
    for lb, ub in BOUNDS:
        ours = NumericArrayPattern((2, 3), lb=lb, ub=ub)
        theirs = paragami.NumericArrayPattern((2, 3), lb=lb, ub=ub)
        value = ours.random(rng=3)
        np.testing.assert_allclose(ours.flatten(value, free=True),
                                   theirs.flatten(value, free=True),
                                   rtol=1e-12, atol=1e-12)
        free = np.linspace(-2, 2, 6)
        np.testing.assert_allclose(ours.fold(free, free=True),
                                   theirs.fold(free, free=True), rtol=1e-12)


def test_scalar_and_vector_forms():
    scalar = NumericScalarPattern(lb=0.0)
    assert scalar.shape() == (1,)
    np.testing.assert_allclose(scalar.flatten(np.e, free=True), [1.0])
    vector = NumericVectorPattern(4, ub=1.0)
    assert vector.length() == 4 and vector.shape() == (4,)
    assert vector.flat_names() == ["[0]", "[1]", "[2]", "[3]"]
    zero_d = NumericArrayPattern((), lb=0.0)
    assert zero_d.flat_length(free=True) == 1
    assert zero_d.fold(np.array([0.0]), free=True).shape == ()


def test_free_default_equality_hash_pickle_repr():
    pattern = NumericArrayPattern((2,), lb=1.0, free_default=True)
    np.testing.assert_allclose(pattern.flatten(np.array([2.0, 1.0 + np.e])),
                               [0.0, 1.0])
    other = NumericArrayPattern((2,), lb=1.0, free_default=True)
    assert pattern == other and hash(pattern) == hash(other)
    assert pattern != NumericArrayPattern((2,), lb=1.0, free_default=False)
    assert pattern != NumericVectorPattern(2, lb=1.0, free_default=True)
    assert pickle.loads(pickle.dumps(pattern)) == pattern
    assert "lb=1.0" in repr(pattern)
    with pytest.raises(ValueError, match="free_default is None"):
        NumericArrayPattern((2,)).flatten(np.zeros(2))


def test_random_reproducible():
    pattern = NumericArrayPattern((5,), lb=-1.0, ub=1.0)
    np.testing.assert_array_equal(pattern.random(rng=7), pattern.random(rng=7))
    gen = np.random.default_rng(7)
    np.testing.assert_array_equal(pattern.random(rng=gen),
                                  pattern.random(rng=7))
    with pytest.raises(TypeError, match="rng"):
        pattern.random(rng="seed")


@pytest.mark.parametrize("kwargs, error, match", [
    (dict(shape=(2,), lb=1.0, ub=1.0), ValueError, "strictly below"),
    (dict(shape=(2,), lb=2.0, ub=1.0), ValueError, "strictly below"),
    (dict(shape=(2,), lb=np.nan), ValueError, "lb"),
    (dict(shape=(2,), lb="0"), TypeError, "lb"),
    (dict(shape=(-1,)), ValueError, "shape"),
    (dict(shape=(2.5,)), TypeError, "shape"),
    (dict(shape=(2,), default_validate="yes"), TypeError, "default_validate"),
    (dict(shape=(2,), free_default=1), TypeError, "free_default"),
])
def test_bad_construction(kwargs, error, match):
    with pytest.raises(error, match=match):
        NumericArrayPattern(**kwargs)


def test_numpy_scalar_arguments_accepted():
    pattern = NumericArrayPattern(np.int64(3), lb=np.float32(0.0),
                                  ub=np.float64(2.0))
    assert pattern.shape() == (3,) and pattern.bounds() == (0.0, 2.0)


@pytest.mark.parametrize("bad, free, match", [
    (np.zeros(3), True, "length 2"),
    (np.zeros((2, 1)), True, "1-d vector"),
    (np.array([0.1, np.nan]), True, "free coordinate 1"),
    (np.array([np.inf, 0.5]), False, r"params\[0\]: expected a finite"),
    (np.array([0.5, 1.5]), False, r"params\[1\].*above the upper bound"),
])
def test_bad_flat_values(bad, free, match):
    pattern = NumericArrayPattern((2,), lb=0.0, ub=1.0)
    with pytest.raises(ValueError, match=match):
        pattern.fold(bad, free=free)


def test_bad_flat_dtype():
    with pytest.raises(TypeError, match="flat_val"):
        NumericArrayPattern((2,)).fold(np.array(["a", "b"]), free=False)


@pytest.mark.parametrize("bad, free, match", [
    (np.zeros((3,)), False, r"params: expected an array of shape \(2,\)"),
    (np.array([np.nan, 0.5]), False, r"params\[0\]: expected a finite"),
    (np.array([-0.5, 0.5]), True, r"params\[0\].*below the lower bound"),
    (np.array([0.0, 0.5]), True, r"params\[0\].*on the bound"),
    (np.array([0.5, 1.0]), True, r"params\[1\].*on the bound"),
])
def test_bad_folded_values(bad, free, match):
    pattern = NumericArrayPattern((2,), lb=0.0, ub=1.0)
    with pytest.raises(ValueError, match=match):
        pattern.flatten(bad, free=free)
    ok, message = pattern.validate_folded(bad)
    if "on the bound" not in match:
        assert not ok and "params" in message


def test_at_the_bound_is_valid_but_has_no_free_value():
    pattern = NumericArrayPattern((2,), lb=0.0, ub=1.0)
    assert pattern.validate_folded(np.array([0.0, 1.0])) == (True, "")
    np.testing.assert_array_equal(
        pattern.flatten(np.array([0.0, 1.0]), free=False), [0.0, 1.0])


def test_validation_can_be_switched_off():
    pattern = NumericArrayPattern((2,), lb=0.0, default_validate=False)
    np.testing.assert_array_equal(
        pattern.flatten(np.array([-1.0, 2.0]), free=False), [-1.0, 2.0])
    with pytest.raises(ValueError):
        pattern.flatten(np.array([-1.0, 2.0]), free=False, validate_value=True)
    with pytest.raises(ValueError, match="shape"):
        pattern.flatten(np.zeros(3), free=False)


def test_validate_folded_never_raises():
    pattern = NumericArrayPattern((2,), lb=0.0)
    for garbage in ["abc", None, object(), [[1, 2], [3]], {"a": 1}]:
        ok, message = pattern.validate_folded(garbage)
        assert ok is False and message


def test_inputs_not_mutated_and_outputs_not_aliased():
    pattern = NumericArrayPattern((2,), lb=0.0)
    value = np.array([1.0, 2.0])
    keep = value.copy()
    flat = pattern.flatten(value, free=False)
    flat[0] = 99.0
    np.testing.assert_array_equal(value, keep)
    flat_in = np.array([1.0, 2.0])
    folded = pattern.fold(flat_in, free=False)
    folded[0] = 99.0
    np.testing.assert_array_equal(flat_in, [1.0, 2.0])


def test_flat_indices_and_empty_bool():
    pattern = NumericArrayPattern((2, 3), lb=0.0)
    mask = pattern.empty_bool(False)
    mask[1, 0] = True
    np.testing.assert_array_equal(pattern.flat_indices(mask, free=True), [3])
    np.testing.assert_array_equal(pattern.flat_indices(mask, free=False), [3])
    assert pattern.flat_indices(pattern.empty_bool(False), free=True).size == 0
    valid = pattern.empty(valid=True)
    assert pattern.validate_folded(valid) == (True, "")


@settings(max_examples=40, deadline=None)
@given(shape=st.lists(st.integers(1, 4), min_size=0, max_size=3),
       lb=st.one_of(st.just(-INF), st.floats(-1e6, 1e6)),
       width=st.one_of(st.just(INF), st.floats(1e-3, 1e6)),
       seed=st.integers(0, 2 ** 16))
def test_property_round_trip(shape, lb, width, seed):
    ub = lb + width if np.isfinite(lb) else (INF if width == INF else width)
    if not lb < ub:
        return
    pattern = NumericArrayPattern(tuple(shape), lb=lb, ub=ub)
    rng = np.random.default_rng(seed)
    free = rng.normal(scale=3.0, size=pattern.flat_length(True))
    folded = pattern.fold(free, free=True)
    assert np.all((folded >= lb) & (folded <= ub))
    if np.all((folded > lb) & (folded < ub)):
        again = pattern.fold(pattern.flatten(folded, free=True), free=True)
        np.testing.assert_allclose(again, folded, rtol=1e-9,
                                   atol=1e-12 * max(1.0, abs(ub - lb)
                                                    if np.isfinite(ub - lb)
                                                    else 1.0))


@pytest.mark.parametrize("lb, ub", [(0.0, np.inf), (1e-3, np.inf),
                                    (-np.inf, 2.0), (-1.0, 3.0)])
def test_large_arrays_span_several_blocks(lb, ub):
    """The in-place free map works through blocks: check one array that
    spans several blocks and a remainder against the formula."""
    from refold.patterns import numeric
    size = 3 * numeric._BLOCK + 17
    rng = np.random.default_rng(5)
    lo = lb if np.isfinite(lb) else ub - 5.0
    hi = ub if np.isfinite(ub) else lb + 5.0
    x = rng.uniform(lo, hi, size)
    x = np.clip(x, np.nextafter(lo, hi), np.nextafter(hi, lo))
    pattern = NumericVectorPattern(size, lb=lb, ub=ub)
    free = pattern.flatten(x, free=True)
    np.testing.assert_allclose(free, _free_map(x, lb, ub), rtol=1e-12,
                               atol=1e-12)
    bad = x.copy()
    bad[2 * numeric._BLOCK + 3] = hi + 1.0 if np.isfinite(ub) else lo - 1.0
    with pytest.raises(ValueError,
                       match=r"params\[{}\]".format(2 * numeric._BLOCK + 3)):
        pattern.flatten(bad, free=True)
