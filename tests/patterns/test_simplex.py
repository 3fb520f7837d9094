"""SimplexArrayPattern: free map, batching, derivatives, Jacobians, errors."""
import pickle

import autograd
import numpy as np
import pytest
from autograd.test_util import check_grads
from hypothesis import given, settings, strategies as st

from refold.patterns.containers import PatternArray, PatternDict
from refold.patterns.simplex import SimplexArrayPattern
from tests.patterns._helpers import (
    assert_batched_protocol, assert_round_trips, autograd_jacobian,
    check_free_map_grads)


def _random_simplexes(rng, shape):
    """Independent truth: normalised gamma draws (not refold's softmax)."""
    x = rng.gamma(1.0, size=shape) + 1e-3
    return x / x.sum(axis=-1, keepdims=True)


def _free_map(s):
    """paragami's free parameterisation, written out independently."""
    return (np.log(s[..., 1:]) - np.log(s[..., :1])).ravel()


def test_round_trips_and_closed_form():
    pattern = SimplexArrayPattern(4, (2, 3))
    value = _random_simplexes(np.random.default_rng(0), (2, 3, 4))
    free = assert_round_trips(pattern, value, _free_map(value), rtol=1e-13,
                              atol=1e-14)
    assert free.shape == (2 * 3 * 3,)
    assert pattern.flat_length(True) == 18 and pattern.flat_length(False) == 24


def test_batched_protocol_matches_element_by_element():
    pattern = SimplexArrayPattern(3, (2,))
    rng = np.random.default_rng(1)
    folded = assert_batched_protocol(
        pattern, rng.standard_normal((5, 4, pattern.flat_length(True))),
        (5, 4), fold_tol=dict(rtol=1e-15),
        flatten_tol=dict(rtol=1e-12, atol=1e-12))
    assert folded.shape == (5, 4, 2, 3)
    empty = pattern._empty_b((5,), True)
    np.testing.assert_array_equal(empty, np.full((5, 2, 3), 1 / 3))


def test_pattern_array_round_trip_and_layout():
    base = SimplexArrayPattern(3, (2,))
    array = PatternArray((4,), base)
    value = _random_simplexes(np.random.default_rng(2), (4, 2, 3))
    free = array.flatten(value, free=True)
    expected = np.concatenate([base.flatten(v, free=True) for v in value])
    np.testing.assert_allclose(free, expected, rtol=1e-14)
    np.testing.assert_allclose(array.fold(free, free=True), value,
                               rtol=1e-13)
    jac = array.freeing_jacobian(value, sparse=False)
    dense = autograd_jacobian(array, value, "freeing")
    np.testing.assert_allclose(jac, dense, rtol=1e-12, atol=1e-12)
    unfree = array.unfreeing_jacobian(value, sparse=False)
    dense_u = autograd_jacobian(array, value, "unfreeing")
    np.testing.assert_allclose(unfree, dense_u, rtol=1e-12, atol=1e-15)
    expected_ld = sum(base.log_abs_det_unfreeing_jacobian(v) for v in value)
    np.testing.assert_allclose(array.log_abs_det_unfreeing_jacobian(value),
                               expected_ld, rtol=1e-13)


def test_matches_paragami(paragami):
    ours = SimplexArrayPattern(4, (2, 3))
    theirs = paragami.SimplexArrayPattern(4, (2, 3))
    rng = np.random.default_rng(3)
    value = _random_simplexes(rng, (2, 3, 4))
    free = rng.standard_normal(ours.flat_length(True))
    np.testing.assert_allclose(ours.flatten(value, free=True),
                               theirs.flatten(value, free=True), rtol=1e-13)
    np.testing.assert_allclose(ours.fold(free, free=True),
                               theirs.fold(free, free=True), rtol=1e-13)
    for kind in ("freeing_jacobian", "unfreeing_jacobian"):
        np.testing.assert_allclose(
            getattr(ours, kind)(value, sparse=False),
            np.asarray(getattr(theirs, kind)(value, sparse=False)),
            rtol=1e-12, atol=1e-15)
    mask = np.zeros((2, 3, 4), dtype=bool)
    mask[1, 0, 2] = mask[0, 2, 0] = True
    for free_flag in (True, False):
        np.testing.assert_array_equal(
            ours.flat_indices(mask, free=free_flag),
            np.sort(theirs.flat_indices(mask, free=free_flag)))


def test_extreme_free_values_never_nan():
    pattern = SimplexArrayPattern(3, (6,))
    free = np.array([[1e300, -1e300], [1e308, -1e308], [-1e308, -1e308],
                     [800.0, 800.0], [-800.0, 0.0], [1e-300, 40.0]]).ravel()
    folded = pattern.fold(free, free=True)
    assert not np.any(np.isnan(folded))
    assert np.all((folded >= 0) & (folded <= 1))
    np.testing.assert_allclose(folded[0], [0.0, 1.0, 0.0])
    np.testing.assert_allclose(folded[2], [1.0, 0.0, 0.0])
    np.testing.assert_allclose(folded[3], [0.0, 0.5, 0.5])
    assert pattern.validate_folded(folded)[0]


@settings(max_examples=40, deadline=None)
@given(st.lists(st.floats(allow_nan=False, allow_infinity=False),
                min_size=3, max_size=3))
def test_any_finite_free_value_folds_to_a_simplex(values):
    pattern = SimplexArrayPattern(4, ())
    folded = pattern.fold(np.array(values), free=True)
    assert np.all(np.isfinite(folded)) and np.all(folded >= 0)
    assert pattern.validate_folded(folded)[0]


def test_sum_tolerance_is_dtype_aware():
    pattern = SimplexArrayPattern(5, (3,))
    rng = np.random.default_rng(4)
    x = rng.gamma(1.0, size=(3, 5)).astype(np.float32)
    single = x / x.sum(axis=-1, keepdims=True)
    single[0] *= np.float32(1 + 2e-7)  # a float32 rounding error
    assert pattern.validate_folded(single)[0]
    ok, message = pattern.validate_folded(single.astype(np.float64))
    assert not ok and "params[0]" in message and "sum to" in message


def test_derivatives_order_two():
    pattern = SimplexArrayPattern(3, (2,))
    rng = np.random.default_rng(5)
    value = check_free_map_grads(pattern, rng.standard_normal(4))
    check_grads(lambda x: pattern._log_abs_det_b(x, (), "unfreeing"),
                modes=["fwd", "rev"], order=2)(value)


def test_jacobians_match_autograd():
    pattern = SimplexArrayPattern(4, (3,))
    value = _random_simplexes(np.random.default_rng(6), (3, 4))
    dense_free = autograd_jacobian(pattern, value, "freeing")
    dense_unfree = autograd_jacobian(pattern, value, "unfreeing")
    freeing = pattern.freeing_jacobian(value)
    assert freeing.shape == (9, 12) and freeing.nnz == 3 * 3 * 2
    np.testing.assert_allclose(freeing.toarray(), dense_free, rtol=1e-13)
    unfreeing = pattern.unfreeing_jacobian(value, sparse=False)
    assert type(unfreeing) is np.ndarray and unfreeing.shape == (12, 9)
    np.testing.assert_allclose(unfreeing, dense_unfree, rtol=1e-12,
                               atol=1e-16)
    np.testing.assert_allclose(freeing @ unfreeing, np.eye(9), atol=1e-12)


def test_log_determinants_match_slogdet():
    pattern = SimplexArrayPattern(4, (2,))
    value = _random_simplexes(np.random.default_rng(7), (2, 4))
    dense = autograd_jacobian(pattern, value, "unfreeing")
    # Non-free coordinates s_1..s_{K-1} of each simplex (drop s_0).
    keep = [i for i in range(8) if i % 4 != 0]
    expected = np.linalg.slogdet(dense[keep])[1]
    np.testing.assert_allclose(pattern.log_abs_det_unfreeing_jacobian(value),
                               expected, rtol=1e-12)
    np.testing.assert_allclose(pattern.log_abs_det_freeing_jacobian(value),
                               -expected, rtol=1e-12)
    grad = autograd.grad(pattern.log_abs_det_unfreeing_jacobian)(value)
    np.testing.assert_allclose(grad, 1.0 / value, rtol=1e-13)


def test_free_dependency_and_flat_indices_are_exact():
    pattern = SimplexArrayPattern(3, (2, 2))
    value = _random_simplexes(np.random.default_rng(8), (2, 2, 3))
    jac = pattern.unfreeing_jacobian(value, sparse=False)
    np.testing.assert_array_equal(pattern._free_dependency().toarray(),
                                  np.abs(jac) > 0)
    mask = pattern.empty_bool(False)
    assert mask.dtype == bool and mask.shape == (2, 2, 3)
    mask[1, 0, 2] = True
    np.testing.assert_array_equal(pattern.flat_indices(mask, free=False), [8])
    np.testing.assert_array_equal(pattern.flat_indices(mask, free=True),
                                  [4, 5])


def test_description_names_and_serialisation():
    pattern = SimplexArrayPattern(3, [2], free_default=True)
    assert pattern.array_shape() == (2,) and pattern.simplex_size() == 3
    assert pattern.shape() == (2, 3)
    spec = pattern.as_dict()
    assert spec == {"pattern": "refold.SimplexArrayPattern",
                    "simplex_size": 3, "array_shape": (2,),
                    "default_validate": True, "free_default": True}
    assert str(pattern) == "SimplexArrayPattern (2,) of 3-d simplexes"
    assert pattern.flat_names(False) == [
        "[0,0]", "[0,1]", "[0,2]", "[1,0]", "[1,1]", "[1,2]"]
    assert pattern.flat_names() == ["[0,1]", "[0,2]", "[1,1]", "[1,2]"]
    same = SimplexArrayPattern(3, (2,), free_default=True)
    assert pattern == same and hash(pattern) == hash(same)
    assert pattern != SimplexArrayPattern(3, (2,))
    assert pickle.loads(pickle.dumps(pattern)) == pattern
    del spec["pattern"]
    assert SimplexArrayPattern._from_dict(spec) == pattern
    np.testing.assert_array_equal(pattern.empty(True), np.full((2, 3), 1 / 3))
    assert pattern.empty(False).shape == (2, 3)
    assert pattern.validate_folded(pattern.random(rng=0))[0]


def test_json_round_trip():
    pattern = SimplexArrayPattern(3, (2, 1), default_validate=False)
    try:
        text = pattern.to_json()
    except ImportError:
        pytest.skip("refold.patterns.json_io is not available yet")
    assert SimplexArrayPattern.from_json(text) == pattern


def test_inputs_are_not_mutated_and_results_are_copies():
    pattern = SimplexArrayPattern(3, (2,))
    value = _random_simplexes(np.random.default_rng(9), (2, 3))
    saved = value.copy()
    flat = pattern.flatten(value, free=False)
    flat[0] = 5.0
    pattern.flatten(value, free=True)
    pattern.freeing_jacobian(value)
    pattern.log_abs_det_freeing_jacobian(value)
    np.testing.assert_array_equal(value, saved)
    flat = value.ravel().copy()
    folded = pattern.fold(flat, free=False)
    folded[0, 0] = 7.0
    np.testing.assert_array_equal(flat, saved.ravel())
    free = np.zeros(4)
    pattern.fold(free, free=True)
    np.testing.assert_array_equal(free, np.zeros(4))


# ----------------------------------------------------------------------
# Bad input.

@pytest.fixture
def good():
    return _random_simplexes(np.random.default_rng(10), (4, 3))


def test_wrong_shape_and_dtype(good):
    pattern = SimplexArrayPattern(3, (4,))
    with pytest.raises(ValueError, match=r"params: expected an array of "
                       r"shape \(4, 3\).*got shape \(3, 4\)"):
        pattern.flatten(good.T, free=True)
    with pytest.raises(TypeError, match=r"params: expected real numbers"):
        pattern.flatten(good.astype(complex), free=False)
    with pytest.raises(ValueError, match=r"flat_val: expected length 8"):
        pattern.fold(np.zeros(9), free=True)


def test_negative_entry_names_simplex_and_value(good):
    pattern = SimplexArrayPattern(3, (4,))
    bad = good.copy()
    bad[2] = [0.7, -0.1, 0.4]
    with pytest.raises(ValueError, match=r"params\[2\]: entry 1 is -0\.1; "
                       r"simplex entries must be non-negative"):
        pattern.flatten(bad, free=False)
    ok, message = pattern.validate_folded(bad)
    assert not ok and message.startswith("params[2]: entry 1")


def test_bad_sum_names_simplex_and_sum(good):
    pattern = SimplexArrayPattern(3, (4,))
    bad = good.copy()
    bad[3, 0] += 0.01
    with pytest.raises(ValueError, match=r"params\[3\]: the entries sum to "
                       r"1\.0099.*not 1"):
        pattern.fold(bad.ravel(), free=False)
    # Unvalidated, the bad sum passes (the free map is scale-invariant).
    pattern.flatten(bad, free=False, validate_value=False)
    np.testing.assert_allclose(
        pattern.flatten(bad, free=True, validate_value=False),
        _free_map(bad), rtol=1e-13)


def test_non_finite_entries_and_free_values(good):
    pattern = SimplexArrayPattern(3, (4,))
    bad = good.copy()
    bad[1, 2] = np.nan
    with pytest.raises(ValueError, match=r"params\[1\]: entry 2 is nan"):
        pattern.flatten(bad, free=True)
    free = np.zeros(8)
    free[5] = np.inf
    with pytest.raises(ValueError, match=r"params\[2\]: the free value "
                       r"log\(s_2/s_0\) is inf"):
        pattern.fold(free, free=True)


def test_exact_zero_has_no_free_value(good):
    pattern = SimplexArrayPattern(3, (4,))
    bad = good.copy()
    bad[0] = [0.0, 0.5, 0.5]
    assert pattern.validate_folded(bad)[0]  # a valid simplex ...
    pattern.flatten(bad, free=False)
    for call in (lambda: pattern.flatten(bad, free=True),
                 lambda: pattern.flatten(bad, free=True,
                                         validate_value=False),
                 lambda: pattern.freeing_jacobian(bad),
                 lambda: pattern.log_abs_det_unfreeing_jacobian(bad)):
        with pytest.raises(ValueError, match=r"params\[0\]: entry 0 is 0; "
                           r".*no free value"):
            call()


def test_paths_inside_containers(good):
    params = PatternDict()
    params["pi"] = SimplexArrayPattern(3, (4,))
    params["many"] = PatternArray((2,), SimplexArrayPattern(3, (4,)))
    value = {"pi": good.copy(), "many": np.stack([good, good])}
    value["pi"][3] = [0.2, 0.2, 0.2]
    with pytest.raises(ValueError, match=r"params\['pi'\]\[3\]: the entries "
                       r"sum to 0\.6"):
        params.flatten(value, free=False)
    value["pi"] = good
    value["many"][1, 2, 0] = -0.5
    with pytest.raises(ValueError, match=r"params\['many'\]\[1, 2\]: entry 0 "
                       r"is -0\.5"):
        params.flatten(value, free=True)


@pytest.mark.parametrize("args, kwargs, error, pattern", [
    ((1, (2,)), {}, ValueError, r"simplex_size: expected an integer >= 2, "
                                r"got 1"),
    ((2.5, (2,)), {}, TypeError, r"simplex_size: expected an integer"),
    (("3", (2,)), {}, TypeError, r"simplex_size: expected an integer"),
    ((3, (-1,)), {}, ValueError, r"array_shape: expected non-negative"),
    ((3, "ab"), {}, TypeError, r"array_shape: expected a tuple"),
    ((3, (2,)), {"default_validate": "yes"}, TypeError,
     r"default_validate: expected True or False"),
    ((3, (2,)), {"free_default": 1}, TypeError,
     r"free_default: expected True or False"),
])
def test_bad_constructor_arguments(args, kwargs, error, pattern):
    with pytest.raises(error, match=pattern):
        SimplexArrayPattern(*args, **kwargs)


def test_empty_array_shape_and_scalar_shape():
    empty = SimplexArrayPattern(3, (0,))
    assert empty.flat_length(True) == 0
    assert empty.fold(np.zeros(0), free=True).shape == (0, 3)
    assert empty.flatten(np.zeros((0, 3)), free=True).shape == (0,)
    assert empty.log_abs_det_freeing_jacobian(np.zeros((0, 3))) == 0.0
    none = PatternArray((0,), SimplexArrayPattern(3, (2,)))
    assert none.log_abs_det_unfreeing_jacobian(np.zeros((0, 2, 3))) == 0.0
    assert none.freeing_jacobian(np.zeros((0, 2, 3))).shape == (0, 0)
    single = SimplexArrayPattern(2, ())
    value = single.fold(np.array([np.log(3.0)]), free=True)
    np.testing.assert_allclose(value, [0.25, 0.75], rtol=1e-15)
    with pytest.raises(ValueError, match=r"^params: the entries sum to 1\.5"):
        single.flatten(np.array([0.75, 0.75]), free=False)
