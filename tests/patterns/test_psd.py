"""PSDSymmetricMatrixPattern: round trips, paragami interchange, stability,
validation messages, analytic Jacobians and log-determinants, derivatives."""
import math
import pickle

import autograd
import autograd.numpy as anp
import numpy as np
import pytest
from autograd.test_util import check_grads

from refold.patterns.psd import PSDSymmetricMatrixPattern
from tests.patterns._helpers import (
    MODES, assert_round_trips, autograd_jacobian, check_free_map_grads)

# check_grads draws from numpy's global generator; importing paragami (the
# interchange tests' anchor) replaces some linalg rules.
pytestmark = pytest.mark.usefixtures("seeded_check_grads")


def _free_map(a, diag_lb):
    """The free vector written out independently: loop over the triangle."""
    chol = np.linalg.cholesky(a - diag_lb * np.eye(len(a)))
    out = []
    for i in range(len(a)):
        for j in range(i + 1):
            out.append(np.log(chol[i, i]) if i == j else chol[i, j])
    return np.array(out)


def _spd(n, rng, batch=()):
    x = rng.standard_normal(batch + (n, n))
    return x @ np.swapaxes(x, -1, -2) / n + np.eye(n)


def _element_free(pattern, values):
    return np.stack([pattern.flatten(v, free=True) for v in values])


# ----------------------------------------------------------------------
# Construction and accessors.

def test_accessors_and_description():
    pattern = PSDSymmetricMatrixPattern(3, diag_lb=0.5, free_default=True)
    assert pattern.size() == 3
    assert pattern.shape() == (3, 3)
    assert pattern.diag_lb() == 0.5
    assert pattern.flat_length(False) == 9
    assert pattern.flat_length(True) == 6
    assert pattern.as_dict() == {
        "pattern": "refold.PSDSymmetricMatrixPattern", "size": 3,
        "diag_lb": 0.5, "default_validate": True, "free_default": True}
    assert "3x3" in str(pattern) and "0.5" in str(pattern)
    assert pattern.flat_names(False)[:4] == ["[0,0]", "[0,1]", "[0,2]",
                                             "[1,0]"]
    assert pattern.flat_names(True) == ["[0,0]", "[1,0]", "[1,1]", "[2,0]",
                                        "[2,1]", "[2,2]"]
    assert pattern == PSDSymmetricMatrixPattern(3, 0.5, True, True)
    assert pattern != PSDSymmetricMatrixPattern(3, 0.5)
    assert hash(pattern) == hash(PSDSymmetricMatrixPattern(3, 0.5, True, True))
    clone = pickle.loads(pickle.dumps(pattern))
    assert clone == pattern
    assert PSDSymmetricMatrixPattern.from_json(pattern.to_json()) == pattern


@pytest.mark.parametrize("kwargs, error, match", [
    ({"size": 0}, ValueError, "size"),
    ({"size": -2}, ValueError, "size"),
    ({"size": 2.5}, TypeError, "size"),
    ({"size": "3"}, TypeError, "size"),
    ({"size": True}, TypeError, "size"),
    ({"size": 2, "diag_lb": -1.0}, ValueError, "diag_lb"),
    ({"size": 2, "diag_lb": np.nan}, ValueError, "diag_lb"),
    ({"size": 2, "diag_lb": np.inf}, ValueError, "diag_lb"),
    ({"size": 2, "diag_lb": "1"}, TypeError, "diag_lb"),
    ({"size": 2, "default_validate": "yes"}, TypeError, "default_validate"),
    ({"size": 2, "free_default": 1}, TypeError, "free_default"),
])
def test_bad_construction_names_the_argument(kwargs, error, match):
    with pytest.raises(error, match=match):
        PSDSymmetricMatrixPattern(**kwargs)


def test_empty_random_and_flat_indices():
    pattern = PSDSymmetricMatrixPattern(3, diag_lb=0.25)
    np.testing.assert_array_equal(pattern.empty(True), 1.25 * np.eye(3))
    assert pattern.empty(False).shape == (3, 3)
    value = pattern.random(rng=3)
    np.testing.assert_array_equal(value, pattern.random(rng=3))
    assert pattern.validate_folded(value) == (True, "")
    mask = pattern.empty_bool(False)
    assert mask.dtype == bool and mask.shape == (3, 3)
    mask[2, 1] = True
    np.testing.assert_array_equal(pattern.flat_indices(mask, free=False), [7])
    # A[2, 1] depends on L[2, 0], L[2, 1], L[1, 0], L[1, 1] (k <= 1).
    np.testing.assert_array_equal(pattern.flat_indices(mask, free=True),
                                  [1, 2, 3, 4])


# ----------------------------------------------------------------------
# Round trips and the closed form of the free map.

@pytest.mark.parametrize("n", [1, 2, 3, 4])
@pytest.mark.parametrize("diag_lb", [0.0, 0.7])
def test_round_trips_and_closed_form(n, diag_lb):
    rng = np.random.default_rng(n)
    pattern = PSDSymmetricMatrixPattern(n, diag_lb=diag_lb)
    value = _spd(n, rng) + diag_lb * np.eye(n)
    assert_round_trips(pattern, value, _free_map(value, diag_lb),
                       rtol=1e-12, atol=1e-14)
    free2 = rng.standard_normal(pattern.flat_length(True))
    np.testing.assert_allclose(
        pattern.flatten(pattern.fold(free2, free=True), free=True), free2,
        rtol=1e-11, atol=1e-12)


def test_fold_is_exactly_symmetric_and_inputs_are_not_mutated():
    pattern = PSDSymmetricMatrixPattern(4)
    free = np.random.default_rng(4).standard_normal(10)
    free_copy = free.copy()
    value = pattern.fold(free, free=True)
    np.testing.assert_array_equal(value, value.T)
    np.testing.assert_array_equal(free, free_copy)
    value_copy = value.copy()
    pattern.flatten(value, free=True)
    pattern.flatten(value, free=False)[0] = 99.0
    folded = pattern.fold(value.ravel(), free=False)
    folded[0, 0] = 99.0
    np.testing.assert_array_equal(value, value_copy)


@pytest.mark.parametrize("batch", [(4,), (2, 3)])
def test_batched_protocol_matches_elements(batch):
    rng = np.random.default_rng(5)
    pattern = PSDSymmetricMatrixPattern(3, diag_lb=0.1)
    values = _spd(3, rng, batch) + 0.1 * np.eye(3)
    free = pattern._flatten_b(values, batch, True, None, ())
    assert free.shape == batch + (6,)
    expected = _element_free(pattern, values.reshape((-1, 3, 3)))
    np.testing.assert_allclose(free.reshape(-1, 6), expected, rtol=1e-13)
    folded = pattern._fold_b(free, batch, True, None, ())
    np.testing.assert_allclose(folded, values, rtol=1e-12)
    flat = pattern._flatten_b(values, batch, False, None, ())
    np.testing.assert_array_equal(
        pattern._fold_b(flat, batch, False, None, ()), values)
    empty = pattern._empty_b(batch, True)
    np.testing.assert_array_equal(empty[(0,) * len(batch)], 1.1 * np.eye(3))


def test_pattern_array_round_trip_and_error_path():
    containers = pytest.importorskip("refold.patterns.containers")
    pattern = containers.PatternArray((5,), PSDSymmetricMatrixPattern(2))
    rng = np.random.default_rng(6)
    values = _spd(2, rng, (5,))
    free = pattern.flatten(values, free=True)
    np.testing.assert_allclose(free.reshape(5, 3),
                               _element_free(pattern.base_pattern(), values),
                               rtol=1e-13)
    np.testing.assert_allclose(pattern.fold(free, free=True), values,
                               rtol=1e-12)
    values[3] = [[1.0, 2.0], [2.0, 1.0]]
    with pytest.raises(ValueError, match=r"params\[3\].*smallest eigenvalue "
                                         r"is -1"):
        pattern.flatten(values, free=True)
    outer = containers.PatternDict()
    outer["cov"] = pattern
    with pytest.raises(ValueError, match=r"params\['cov'\]\[3\]: expected a "
                                         r"symmetric positive-definite 2x2"):
        outer.flatten({"cov": values}, free=False)
    assert "params['cov'][3]" in outer.validate_folded({"cov": values})[1]


# ----------------------------------------------------------------------
# paragami interchange.

@pytest.mark.parametrize("n, diag_lb", [(1, 0.0), (3, 0.0), (4, 1.5)])
def test_free_vectors_interchange_with_paragami(paragami, n, diag_lb):
    ours = PSDSymmetricMatrixPattern(n, diag_lb=diag_lb)
    theirs = paragami.PSDSymmetricMatrixPattern(n, diag_lb=diag_lb)
    rng = np.random.default_rng(7)
    free = rng.standard_normal(ours.flat_length(True))
    np.testing.assert_allclose(ours.fold(free, free=True),
                               theirs.fold(free, free=True), rtol=1e-13)
    value = _spd(n, rng) + diag_lb * np.eye(n)
    np.testing.assert_allclose(ours.flatten(value, free=True),
                               theirs.flatten(value, free=True), rtol=1e-13,
                               atol=1e-15)
    np.testing.assert_allclose(
        theirs.fold(ours.flatten(value, free=True), free=True), value,
        rtol=1e-12)


# ----------------------------------------------------------------------
# Stability at extreme free values.

def _assert_no_nan(value):
    assert not np.any(np.isnan(value))


@pytest.mark.parametrize("log_diag", [-800.0, -400.0, 400.0, 800.0, 1e300])
@pytest.mark.parametrize("off", [0.0, 1e-300, 3.0, -1e200, 1e200])
def test_extreme_free_values_never_fold_to_nan(log_diag, off):
    pattern = PSDSymmetricMatrixPattern(3)
    free = np.array([log_diag, off, 0.5, -off, 2.0, log_diag])
    value = pattern.fold(free, free=True)
    _assert_no_nan(value)
    np.testing.assert_array_equal(value, value.T)
    # The folded value may hold inf (not representable), so only the
    # value's NaN-freedom is promised, not the gradient's.
    with np.errstate(all="ignore"):
        grad = autograd.grad(
            lambda v: anp.sum(pattern.fold(v, free=True)[2, 1]))(free)
    assert grad.shape == free.shape


def _exact_product(free, n):
    """A = L L^T entry by entry, each product formed in log space."""
    logs = np.full((n, n), -np.inf)
    signs = np.zeros((n, n))
    rows, cols = np.tril_indices(n)
    for f, (i, j) in enumerate(zip(rows, cols)):
        if i == j:
            logs[i, j], signs[i, j] = free[f], 1.0
        elif free[f] != 0:
            logs[i, j], signs[i, j] = math.log(abs(free[f])), \
                math.copysign(1.0, free[f])
    out = np.zeros((n, n))
    for i in range(n):
        for j in range(n):
            out[i, j] = sum(signs[i, k] * signs[j, k] *
                            math.exp(logs[i, k] + logs[j, k])
                            for k in range(min(i, j) + 1) if signs[i, k] *
                            signs[j, k] != 0)
    return out


@pytest.mark.parametrize("free, rescaled", [
    # Representable but large: the rescaled path, exact to rounding.
    ([354.0, 1e-150, -300.0], True),
    ([-5.0, 1.2e154, 0.0], True),
    ([300.0, -1e130, 340.0], False),
    ([-300.0, 1e-160, -350.0], False),
])
def test_large_but_representable_values_are_finite_and_exact(free, rescaled):
    pattern = PSDSymmetricMatrixPattern(2)
    free = np.array(free)
    assert (pattern._row_exponents(free) is not None) == rescaled
    value = pattern.fold(free, free=True)
    assert np.all(np.isfinite(value))
    np.testing.assert_allclose(value, _exact_product(free, 2), rtol=1e-12)
    np.testing.assert_array_equal(value, value.T)


def test_round_trip_next_to_the_largest_float():
    pattern = PSDSymmetricMatrixPattern(2)
    value = np.array([[1.7e308, 1e308], [1e308, 1.7e308]])
    assert pattern.validate_folded(value) == (True, "")
    back = pattern.fold(pattern.flatten(value, free=True), free=True)
    np.testing.assert_allclose(back, value, rtol=1e-13)


def test_overflowing_entries_are_infinite_and_the_rest_exact():
    pattern = PSDSymmetricMatrixPattern(2)
    value = pattern.fold(np.array([400.0, 0.5, 0.0]), free=True)
    assert value[0, 0] == np.inf
    np.testing.assert_allclose(value[1, 0], 0.5 * np.exp(400.0), rtol=1e-12)
    np.testing.assert_allclose(value[1, 1], 1.25, rtol=1e-15)


def test_gradient_in_rescaled_regime_matches_closed_form():
    # d A_11 / d free_0 = 2 exp(2 free_0) at free_0 = 354 (representable).
    pattern = PSDSymmetricMatrixPattern(2)
    free = np.array([354.0, 1.0, 0.0])
    grad = autograd.grad(lambda v: pattern.fold(v, free=True)[0, 0])(free)
    np.testing.assert_allclose(grad, [2 * np.exp(708.0), 0.0, 0.0],
                               rtol=1e-12)


# ----------------------------------------------------------------------
# Validation messages.

def test_non_symmetric_names_path_position_and_size():
    pattern = PSDSymmetricMatrixPattern(3)
    value = np.eye(3)
    value[0, 2] = 0.1
    with pytest.raises(ValueError, match=r"params: expected a symmetric "
                       r"3x3 matrix; the largest asymmetry \|A\[0, 2\] - "
                       r"A\[2, 0\]\| = 0.1"):
        pattern.flatten(value, free=True)
    ok, message = pattern.validate_folded(value)
    assert not ok and "asymmetry" in message
    # Rounding-level asymmetry is accepted.
    value[0, 2] = value[2, 0] = 0.3
    value[0, 2] += 1e-16
    assert pattern.validate_folded(value) == (True, "")


def test_not_positive_definite_names_batch_index_and_eigenvalue():
    pattern = PSDSymmetricMatrixPattern(3, diag_lb=0.5)
    values = np.stack([np.eye(3) * 2.0] * 4)
    values[2] = np.diag([2.0, 0.09, 3.0])
    message = (r"params\['cov'\]\[2\]: expected a symmetric positive-"
               r"definite 3x3 matrix \(after subtracting diag_lb=0.5 from "
               r"the diagonal\); its smallest eigenvalue is -0.41")
    with pytest.raises(ValueError, match=message):
        pattern._check_b(values, (4,), True, ("cov",), False)
    with pytest.raises(ValueError, match=message):
        pattern._flatten_b(values, (4,), True, True, ("cov",))
    with pytest.raises(ValueError, match=message):
        pattern._fold_b(values.reshape(4, 9), (4,), False, True, ("cov",))
    # Without validation only the shape is checked...
    pattern._fold_b(values.reshape(4, 9), (4,), False, False, ("cov",))
    # ...but the free map still cannot factor it: a ValueError, never a
    # LinAlgError.
    with pytest.raises(ValueError, match=message):
        pattern._flatten_b(values, (4,), True, False, ("cov",))


def test_batched_errors_use_multi_dimensional_index():
    pattern = PSDSymmetricMatrixPattern(2)
    values = np.broadcast_to(np.eye(2), (2, 3, 2, 2)).copy()
    values[1, 2] = [[1.0, 0.0], [0.0, -3.0]]
    with pytest.raises(ValueError, match=r"params\[1, 2\]: .*eigenvalue is "
                                         r"-3"):
        pattern._check_b(values, (2, 3), True, (), False)


@pytest.mark.parametrize("bad, match", [
    (np.array([[1.0, np.nan], [np.nan, 1.0]]),
     r"params: expected a finite 2x2 matrix, got nan at entry \(0, 1\)"),
    (np.array([[1.0, 0.0], [0.0, np.inf]]), r"got inf at entry \(1, 1\)"),
    (np.eye(3), r"params: expected an array of shape \(2, 2\), got shape "
                r"\(3, 3\)"),
    (np.array([[0.0, 0.0], [0.0, 1.0]]), r"smallest eigenvalue is 0"),
])
def test_bad_values_raise_value_error(bad, match):
    pattern = PSDSymmetricMatrixPattern(2)
    for free in (True, False):
        with pytest.raises(ValueError, match=match):
            pattern.flatten(bad, free=free)
    assert pattern.validate_folded(bad)[0] is False


def test_bad_types_and_lengths():
    pattern = PSDSymmetricMatrixPattern(2)
    with pytest.raises(TypeError, match="params: expected real numbers"):
        pattern.flatten(np.eye(2) * 1j, free=True)
    with pytest.raises(ValueError, match="flat_val: expected length 3"):
        pattern.fold(np.zeros(4), free=True)
    with pytest.raises(ValueError, match="free coordinate 1"):
        pattern.fold(np.array([0.0, np.nan, 0.0]), free=True)
    with pytest.raises(ValueError, match=r"expected a symmetric"):
        pattern.fold(np.array([1.0, 0.5, 0.0, 1.0]), free=False)


def test_validation_off_checks_shape_only():
    pattern = PSDSymmetricMatrixPattern(2, default_validate=False)
    bad = np.array([[1.0, 3.0], [0.0, -1.0]])
    np.testing.assert_array_equal(pattern.flatten(bad, free=False),
                                  bad.ravel())
    np.testing.assert_array_equal(pattern.fold(bad.ravel(), free=False), bad)
    assert pattern.validate_folded(bad) == (True, "")
    assert pattern.validate_folded(bad, validate_value=True)[0] is False
    with pytest.raises(ValueError, match="shape"):
        pattern.flatten(np.eye(3), free=False)


# ----------------------------------------------------------------------
# Jacobians, log-determinants, dependency structure.

@pytest.mark.parametrize("n", [1, 2, 3, 4])
@pytest.mark.parametrize("kind", ["freeing", "unfreeing"])
def test_jacobians_match_autograd(n, kind):
    pattern = PSDSymmetricMatrixPattern(n, diag_lb=0.3)
    value = _spd(n, np.random.default_rng(n)) + 0.3 * np.eye(n)
    method = getattr(pattern, kind + "_jacobian")
    expected = autograd_jacobian(pattern, value, kind)
    sparse = method(value)
    np.testing.assert_allclose(sparse.toarray(), expected, rtol=1e-12,
                               atol=1e-13 * np.max(np.abs(expected)))
    np.testing.assert_array_equal(method(value, sparse=False),
                                  sparse.toarray())
    # The stored entries are exactly the structural nonzeros: those of
    # autograd's Jacobian above rounding level, at generic points.
    structure = np.zeros(expected.shape, dtype=bool)
    for seed in range(3):
        other = _spd(n, np.random.default_rng(100 + seed)) + 0.3 * np.eye(n)
        jac = autograd_jacobian(pattern, other, kind)
        structure |= np.abs(jac) > 1e-10 * np.max(np.abs(jac))
    stored = np.zeros(expected.shape, dtype=bool)
    stored[sparse.nonzero()] = True
    assert sparse.nnz == np.count_nonzero(stored)
    np.testing.assert_array_equal(stored, structure)


@pytest.mark.parametrize("kind", ["freeing", "unfreeing"])
def test_batched_jacobian_is_block_diagonal(kind):
    pattern = PSDSymmetricMatrixPattern(3)
    values = _spd(3, np.random.default_rng(8), (2, 2))
    rows, cols, vals = pattern._jac_coo_b(values, (2, 2), kind)
    out_len, in_len = (6, 9) if kind == "freeing" else (9, 6)
    import scipy.sparse as sp
    full = sp.csr_matrix((vals, (rows, cols)), shape=(4 * out_len,
                                                      4 * in_len)).toarray()
    for e, value in enumerate(values.reshape(4, 3, 3)):
        block = full[e * out_len:(e + 1) * out_len,
                     e * in_len:(e + 1) * in_len]
        np.testing.assert_allclose(
            block, autograd_jacobian(pattern, value, kind), rtol=1e-12,
            atol=1e-14)
        full[e * out_len:(e + 1) * out_len, e * in_len:(e + 1) * in_len] = 0
    assert not np.any(full)


@pytest.mark.parametrize("n", [1, 2, 3, 4])
def test_log_determinants_match_slogdet(n):
    pattern = PSDSymmetricMatrixPattern(n, diag_lb=0.2)
    value = _spd(n, np.random.default_rng(9 + n)) + 0.2 * np.eye(n)
    rows, cols = np.tril_indices(n)
    jac = autograd.jacobian(
        lambda v: pattern.fold(v, free=True)[rows, cols])(
            pattern.flatten(value, free=True))
    expected = np.linalg.slogdet(jac)[1]
    np.testing.assert_allclose(
        pattern.log_abs_det_unfreeing_jacobian(value), expected, rtol=1e-12)
    np.testing.assert_allclose(
        pattern.log_abs_det_freeing_jacobian(value), -expected, rtol=1e-12)


def test_log_determinant_is_differentiable():
    pattern = PSDSymmetricMatrixPattern(3)
    free = np.random.default_rng(10).standard_normal(6)
    check_grads(lambda v: pattern.log_abs_det_unfreeing_jacobian(
        pattern.fold(v, free=True)), modes=MODES, order=2)(free)
    values = _spd(3, np.random.default_rng(11), (2,))
    check_grads(lambda x: pattern._log_abs_det_b(x, (2,), "freeing"),
                modes=MODES, order=1)(values)


@pytest.mark.parametrize("n", [1, 2, 3, 5])
def test_free_dependency_is_exact(n):
    pattern = PSDSymmetricMatrixPattern(n)
    dep = pattern._free_dependency().toarray()
    expected = np.zeros_like(dep)
    rows, cols = np.tril_indices(n)
    for i in range(n):
        for j in range(n):
            for f, (p, q) in enumerate(zip(rows, cols)):
                expected[i * n + j, f] = q <= min(i, j) and p in (i, j)
    np.testing.assert_array_equal(dep, expected)
    jac = autograd_jacobian(pattern, pattern.random(rng=n), "unfreeing")
    np.testing.assert_array_equal(dep, jac != 0)


# ----------------------------------------------------------------------
# Derivatives of fold and flatten.

@pytest.mark.parametrize("batch", [(), (2,)])
def test_fold_and_flatten_derivatives_order_two(batch):
    pattern = PSDSymmetricMatrixPattern(3, diag_lb=0.4)
    rng = np.random.default_rng(12)
    free = rng.standard_normal(batch + (6,))
    value = _spd(3, rng, batch) + 0.4 * np.eye(3)
    fold_free = lambda v: pattern._fold_b(v, batch, True, None, ())
    flatten_free = lambda x: pattern._flatten_b(x, batch, True, False, ())
    fold_flat = lambda v: pattern._fold_b(v, batch, False, False, ())
    flatten_flat = lambda x: pattern._flatten_b(x, batch, False, False, ())
    check_grads(fold_free, modes=MODES, order=2)(free)
    check_grads(flatten_free, modes=MODES, order=2)(value)
    check_grads(fold_flat, modes=MODES, order=2)(value.reshape(batch + (9,)))
    check_grads(flatten_flat, modes=MODES, order=2)(value)


def test_public_fold_flatten_derivatives_order_two():
    pattern = PSDSymmetricMatrixPattern(2)
    check_free_map_grads(pattern, np.array([0.3, -0.4, 0.1]))


def test_flatten_gradient_is_symmetric():
    pattern = PSDSymmetricMatrixPattern(3)
    value = _spd(3, np.random.default_rng(13))
    weights = np.arange(6.0)
    grad = autograd.grad(
        lambda x: anp.sum(weights * pattern.flatten(x, free=True)))(value)
    np.testing.assert_allclose(grad, grad.T, rtol=1e-14)
