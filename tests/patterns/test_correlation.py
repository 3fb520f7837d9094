"""CorrelationMatrixPattern: CPC free map, batching, derivatives, errors."""
import pickle

import autograd.numpy as anp
import numpy as np
import pytest
from autograd.test_util import check_grads
from hypothesis import given, settings, strategies as st

from refold.patterns.containers import PatternArray, PatternDict
from refold.patterns.correlation import (
    CorrelationMatrixPattern, _traced_cholesky)
from tests.patterns._helpers import (
    assert_batched_protocol, autograd_jacobian, check_free_map_grads)


def _reference_fold(z, n):
    """The CPC -> Cholesky recursion, written out naively (independent)."""
    c = np.tanh(z)
    chol = np.zeros((n, n))
    chol[0, 0] = 1.0
    q = 0
    for i in range(1, n):
        for j in range(i):
            rest = np.sqrt(1.0 - np.sum(chol[i, :j] ** 2))
            chol[i, j] = c[q] * rest
            q += 1
        chol[i, i] = np.sqrt(1.0 - np.sum(chol[i, :i] ** 2))
    return chol @ chol.T


def _reference_free(corr):
    """Partial correlations from numpy's Cholesky, then arctanh."""
    n = corr.shape[0]
    chol = np.linalg.cholesky(corr)
    out = []
    for i in range(1, n):
        for j in range(i):
            out.append(np.arctanh(
                chol[i, j] / np.sqrt(1.0 - np.sum(chol[i, :j] ** 2))))
    return np.array(out)


def _random_correlation(rng, n):
    """A correlation matrix made without refold: a normalised covariance."""
    a = rng.standard_normal((n, n + 2))
    cov = a @ a.T
    d = np.sqrt(np.diag(cov))
    corr = cov / d[:, None] / d[None, :]
    corr = (corr + corr.T) / 2
    np.fill_diagonal(corr, 1.0)
    return corr


def _lower_rows(n):
    return [i * n + j for i in range(n) for j in range(i)]


def _from_lower(values, n):
    """A symmetric unit-diagonal matrix from its strict lower triangle
    (autograd-safe), for derivatives that stay on the constraint set."""
    index = np.zeros(n * n, dtype=int)
    rows, cols = np.tril_indices(n, -1)
    index[rows * n + cols] = np.arange(1, len(rows) + 1)
    lower = anp.reshape(anp.concatenate([anp.zeros(1), values])[index], (n, n))
    return lower + anp.swapaxes(lower, 0, 1) + np.eye(n)


@pytest.mark.parametrize("n", [2, 3, 5])
def test_fold_matches_reference_and_round_trips(n):
    pattern = CorrelationMatrixPattern(n)
    rng = np.random.default_rng(n)
    z = rng.standard_normal(n * (n - 1) // 2)
    corr = pattern.fold(z, free=True)
    np.testing.assert_allclose(corr, _reference_fold(z, n), atol=1e-14)
    np.testing.assert_array_equal(corr, corr.T)
    np.testing.assert_array_equal(np.diag(corr), np.ones(n))
    np.testing.assert_allclose(pattern.flatten(corr, free=True), z,
                               atol=1e-13)
    flat = pattern.flatten(corr, free=False)
    np.testing.assert_array_equal(flat, corr.ravel())
    np.testing.assert_array_equal(pattern.fold(flat, free=False), corr)
    other = _random_correlation(rng, n)
    free = pattern.flatten(other, free=True)
    np.testing.assert_allclose(free, _reference_free(other), atol=1e-12)
    np.testing.assert_allclose(pattern.fold(free, free=True), other,
                               atol=1e-13)


def test_two_by_two_closed_form():
    pattern = CorrelationMatrixPattern(2)
    corr = pattern.fold(np.array([np.arctanh(-0.3)]), free=True)
    np.testing.assert_allclose(corr, [[1.0, -0.3], [-0.3, 1.0]], rtol=1e-15)
    assert pattern.flat_length(True) == 1 and pattern.flat_length(False) == 4


def test_size_one():
    pattern = CorrelationMatrixPattern(1)
    assert pattern.flat_length(True) == 0
    np.testing.assert_array_equal(pattern.fold(np.zeros(0), free=True),
                                  [[1.0]])
    assert pattern.flatten(np.ones((1, 1)), free=True).shape == (0,)
    assert pattern.freeing_jacobian(np.ones((1, 1))).shape == (0, 1)
    assert pattern.log_abs_det_freeing_jacobian(np.ones((1, 1))) == 0.0
    none = PatternArray((0,), CorrelationMatrixPattern(3))
    assert none.flatten(np.zeros((0, 3, 3)), free=True).shape == (0,)
    assert none.log_abs_det_unfreeing_jacobian(np.zeros((0, 3, 3))) == 0.0
    assert none.unfreeing_jacobian(np.zeros((0, 3, 3))).shape == (0, 0)


def test_batched_protocol_matches_element_by_element():
    pattern = CorrelationMatrixPattern(3)
    rng = np.random.default_rng(11)
    folded = assert_batched_protocol(
        pattern, rng.standard_normal((4, 2, 3)), (4, 2),
        fold_tol=dict(atol=1e-15), flatten_tol=dict(atol=1e-13))
    assert folded.shape == (4, 2, 3, 3)
    np.testing.assert_array_equal(pattern._empty_b((2,), True),
                                  np.stack([np.eye(3)] * 2))
    dets = pattern._log_abs_det_b(folded, (4, 2), "unfreeing")
    assert dets.shape == (4, 2)
    np.testing.assert_allclose(
        dets[3, 1], pattern.log_abs_det_unfreeing_jacobian(folded[3, 1]),
        rtol=1e-13)


def test_pattern_array_round_trip_and_jacobians():
    base = CorrelationMatrixPattern(3)
    array = PatternArray((3,), base)
    rng = np.random.default_rng(12)
    value = np.stack([_random_correlation(rng, 3) for _ in range(3)])
    free = array.flatten(value, free=True)
    np.testing.assert_allclose(
        free, np.concatenate([_reference_free(v) for v in value]),
        atol=1e-12)
    np.testing.assert_allclose(array.fold(free, free=True), value,
                               atol=1e-13)
    dense_free = autograd_jacobian(array, value, "freeing")
    np.testing.assert_allclose(array.freeing_jacobian(value, sparse=False),
                               dense_free, atol=1e-11)
    dense_unfree = autograd_jacobian(array, value, "unfreeing")
    np.testing.assert_allclose(array.unfreeing_jacobian(value, sparse=False),
                               dense_unfree, atol=1e-13)
    expected = sum(base.log_abs_det_freeing_jacobian(v) for v in value)
    np.testing.assert_allclose(array.log_abs_det_freeing_jacobian(value),
                               expected, rtol=1e-13)


def test_extreme_free_values_never_nan():
    pattern = CorrelationMatrixPattern(4)
    free = np.array([1e300, -1e300, 1e308, -1e308, 800.0, -40.0])
    corr = pattern.fold(free, free=True)
    assert np.all(np.isfinite(corr))
    np.testing.assert_array_equal(corr, corr.T)
    np.testing.assert_array_equal(np.diag(corr), np.ones(4))
    assert np.all(np.abs(corr) <= 1.0)
    # Singular, but a valid (semidefinite) correlation matrix ...
    assert pattern.validate_folded(corr)[0]
    # ... whose partial correlations of +-1 have no free value.
    with pytest.raises(ValueError, match=r"params: the correlation matrix is "
                       r"singular.*no free value"):
        pattern.flatten(corr, free=True)


@settings(max_examples=40, deadline=None)
@given(st.lists(st.floats(allow_nan=False, allow_infinity=False),
                min_size=3, max_size=3))
def test_any_finite_free_value_folds_to_a_correlation_matrix(values):
    pattern = CorrelationMatrixPattern(3)
    corr = pattern.fold(np.array(values), free=True)
    assert np.all(np.isfinite(corr))
    assert pattern.validate_folded(corr)[0]


@pytest.mark.parametrize("z", [[5.0], [15.0], [-17.0], [8.0, -7.5, 6.0],
                               [3.0, -9.0, 2.0], [5.0, 1.0, -5.0, 6.0, 0.0,
                                                  3.0]])
def test_accuracy_near_the_boundary(z):
    """Round-trip error within the conditioning eps / lambda_min."""
    z = np.array(z)
    n = {1: 2, 3: 3, 6: 4}[len(z)]
    pattern = CorrelationMatrixPattern(n)
    corr = pattern.fold(z, free=True)
    smallest = np.linalg.eigvalsh(corr)[0]
    error = np.abs(pattern.flatten(corr, free=True) - z).max()
    assert error <= 2 * np.finfo(float).eps / smallest


def test_traced_cholesky_matches_numpy():
    rng = np.random.default_rng(13)
    stack = np.stack([_random_correlation(rng, 4) for _ in range(3)])
    np.testing.assert_allclose(_traced_cholesky(stack, 4),
                               np.linalg.cholesky(stack), atol=1e-14)


def test_derivatives_order_two():
    pattern = CorrelationMatrixPattern(3)
    rng = np.random.default_rng(14)
    corr = check_free_map_grads(pattern, rng.standard_normal(3))
    lower = corr[np.tril_indices(3, -1)]
    check_grads(lambda v: pattern.log_abs_det_unfreeing_jacobian(
        _from_lower(v, 3)), modes=["fwd", "rev"], order=2)(lower)
    check_grads(lambda v: pattern.fold(v, free=True),
                modes=["fwd", "rev"], order=2)(np.zeros(3))


@pytest.mark.parametrize("n", [2, 4])
def test_jacobians_and_log_determinants_match_autograd(n):
    pattern = CorrelationMatrixPattern(n)
    rng = np.random.default_rng(20 + n)
    corr = _random_correlation(rng, n)
    m = n * (n - 1) // 2
    dense_unfree = autograd_jacobian(pattern, corr, "unfreeing")
    dense_free = autograd_jacobian(pattern, corr, "freeing")
    unfreeing = pattern.unfreeing_jacobian(corr)
    freeing = pattern.freeing_jacobian(corr)
    assert unfreeing.shape == (n * n, m) and freeing.shape == (m, n * n)
    np.testing.assert_allclose(unfreeing.toarray(), dense_unfree, atol=1e-13)
    np.testing.assert_allclose(freeing.toarray(), dense_free, atol=1e-11)
    np.testing.assert_allclose((freeing @ unfreeing).toarray(), np.eye(m),
                               atol=1e-11)
    # Non-free coordinates for the determinant: the strict lower triangle.
    expected = np.linalg.slogdet(dense_unfree[_lower_rows(n)])[1]
    np.testing.assert_allclose(pattern.log_abs_det_unfreeing_jacobian(corr),
                               expected, rtol=1e-12)
    np.testing.assert_allclose(pattern.log_abs_det_freeing_jacobian(corr),
                               -expected, rtol=1e-12)
    # Exact sparsity: the stored structure is autograd's non-zeros.
    np.testing.assert_array_equal(freeing.toarray() != 0,
                                  np.abs(dense_free) > 1e-15)
    np.testing.assert_array_equal(pattern._free_dependency().toarray(),
                                  np.abs(dense_unfree) > 0)


def test_log_determinant_closed_form_in_free_coordinates():
    """sum_{i>j} [log L_jj + log(1 - c_ij^2) + log w_ij], from z directly."""
    n = 4
    pattern = CorrelationMatrixPattern(n)
    z = np.random.default_rng(15).standard_normal(6)
    c = np.tanh(z)
    cmat = np.zeros((n, n))
    cmat[np.tril_indices(n, -1)] = c
    w = np.ones((n, n))
    for i in range(n):
        for j in range(1, i + 1):
            w[i, j] = w[i, j - 1] * np.sqrt(1 - cmat[i, j - 1] ** 2)
    expected = sum(np.log(w[j, j]) + np.log(1 - cmat[i, j] ** 2)
                   + np.log(w[i, j]) for i in range(n) for j in range(i))
    np.testing.assert_allclose(
        pattern.log_abs_det_unfreeing_jacobian(pattern.fold(z, free=True)),
        expected, rtol=1e-12)


def test_flat_indices():
    pattern = CorrelationMatrixPattern(3)
    mask = pattern.empty_bool(False)
    assert mask.dtype == bool and mask.shape == (3, 3)
    mask[2, 1] = True  # R_21 depends on z_20, z_21 and z_10
    np.testing.assert_array_equal(pattern.flat_indices(mask, free=False), [7])
    np.testing.assert_array_equal(pattern.flat_indices(mask, free=True),
                                  [0, 1, 2])
    mask[:] = False
    mask[1, 0] = True
    np.testing.assert_array_equal(pattern.flat_indices(mask, free=True), [0])
    mask[:] = False
    mask[2, 0] = True  # z_20 only
    np.testing.assert_array_equal(pattern.flat_indices(mask, free=True), [1])


def test_description_names_and_serialisation():
    pattern = CorrelationMatrixPattern(3, free_default=False)
    assert pattern.size() == 3 and pattern.shape() == (3, 3)
    spec = pattern.as_dict()
    assert spec == {"pattern": "refold.CorrelationMatrixPattern", "size": 3,
                    "default_validate": True, "free_default": False}
    assert str(pattern) == "CorrelationMatrixPattern 3x3"
    assert pattern.flat_names(True) == ["[1,0]", "[2,0]", "[2,1]"]
    assert pattern.flat_names()[:4] == ["[0,0]", "[0,1]", "[0,2]", "[1,0]"]
    same = CorrelationMatrixPattern(3, free_default=False)
    assert pattern == same and hash(pattern) == hash(same)
    assert pattern != CorrelationMatrixPattern(4, free_default=False)
    assert pickle.loads(pickle.dumps(pattern)) == pattern
    del spec["pattern"]
    assert CorrelationMatrixPattern._from_dict(spec) == pattern
    np.testing.assert_array_equal(pattern.empty(True), np.eye(3))
    assert pattern.validate_folded(pattern.random(rng=0))[0]
    try:
        text = pattern.to_json()
    except ImportError:
        return
    assert CorrelationMatrixPattern.from_json(text) == pattern


def test_inputs_are_not_mutated():
    pattern = CorrelationMatrixPattern(3)
    corr = _random_correlation(np.random.default_rng(16), 3)
    saved = corr.copy()
    pattern.flatten(corr, free=True)
    pattern.flatten(corr, free=False)[0] = 9.0
    pattern.freeing_jacobian(corr)
    pattern.unfreeing_jacobian(corr)
    pattern.log_abs_det_freeing_jacobian(corr)
    np.testing.assert_array_equal(corr, saved)
    flat = saved.ravel().copy()
    pattern.fold(flat, free=False)[0, 0] = 9.0
    np.testing.assert_array_equal(flat, saved.ravel())


# ----------------------------------------------------------------------
# Bad input.

@pytest.fixture
def good():
    return _random_correlation(np.random.default_rng(17), 3)


def test_wrong_shape(good):
    pattern = CorrelationMatrixPattern(3)
    with pytest.raises(ValueError, match=r"params: expected an array of "
                       r"shape \(3, 3\).*got shape \(2, 2\)"):
        pattern.flatten(np.eye(2), free=True)
    with pytest.raises(TypeError, match=r"params: expected real numbers"):
        pattern.flatten(good.astype(complex), free=False)
    with pytest.raises(ValueError, match=r"flat_val: expected length 3"):
        pattern.fold(np.zeros(4), free=True)


def test_not_symmetric(good):
    pattern = CorrelationMatrixPattern(3)
    bad = good.copy()
    bad[0, 2] += 1e-6
    with pytest.raises(ValueError, match=r"params: entry \(0, 2\) is .* but "
                       r"entry \(2, 0\) is .*must be symmetric"):
        pattern.fold(bad.ravel(), free=False)
    # Rounding-level asymmetry is tolerated.
    tiny = good.copy()
    tiny[0, 2] += 1e-16
    assert pattern.validate_folded(tiny)[0]


def test_not_unit_diagonal_reports_worst(good):
    pattern = CorrelationMatrixPattern(3)
    bad = good.copy()
    bad[1, 1] = 1.001
    bad[2, 2] = 0.9
    with pytest.raises(ValueError, match=r"params: diagonal entry \(2, 2\) is "
                       r"0\.9 \(the worst"):
        pattern.flatten(bad, free=False)


def test_not_positive_definite_reports_smallest_eigenvalue():
    pattern = CorrelationMatrixPattern(3)
    bad = np.array([[1.0, 0.9, -0.9], [0.9, 1.0, 0.9], [-0.9, 0.9, 1.0]])
    smallest = np.linalg.eigvalsh(bad)[0]
    for call in (lambda: pattern.flatten(bad, free=False),
                 lambda: pattern.flatten(bad, free=True),
                 lambda: pattern.flatten(bad, free=True,
                                         validate_value=False),
                 lambda: pattern.freeing_jacobian(bad)):
        with pytest.raises(ValueError, match=r"params: the correlation matrix "
                           r"is not positive (semi)?definite: its smallest "
                           r"eigenvalue is {:.3g}".format(smallest)):
            call()


def test_non_finite_entries_and_free_values(good):
    pattern = CorrelationMatrixPattern(3)
    bad = good.copy()
    bad[2, 1] = np.inf
    with pytest.raises(ValueError, match=r"params: entry \(2, 1\) is inf"):
        pattern.flatten(bad, free=True, validate_value=False)
    with pytest.raises(ValueError, match=r"params: the free value of entry "
                       r"\(2, 0\) is nan"):
        pattern.fold(np.array([0.0, np.nan, 0.0]), free=True)


def test_paths_inside_containers(good):
    params = PatternDict()
    params["R"] = PatternArray((2, 3), CorrelationMatrixPattern(3))
    value = {"R": np.broadcast_to(good, (2, 3, 3, 3)).copy()}
    value["R"][1, 2] = [[1.0, 0.9, -0.9], [0.9, 1.0, 0.9], [-0.9, 0.9, 1.0]]
    with pytest.raises(ValueError, match=r"params\['R'\]\[1, 2\]: the "
                       r"correlation matrix is not positive"):
        params.flatten(value, free=True)
    value["R"][1, 2] = good
    value["R"][0, 1, 1, 1] = 2.0
    ok, message = params.validate_folded(value)
    assert not ok and message.startswith(
        "params['R'][0, 1]: diagonal entry (1, 1) is 2.0")


@pytest.mark.parametrize("args, kwargs, error, pattern", [
    ((0,), {}, ValueError, r"size: expected an integer >= 1, got 0"),
    ((2.5,), {}, TypeError, r"size: expected an integer"),
    (("3",), {}, TypeError, r"size: expected an integer"),
    ((True,), {}, TypeError, r"size: expected an integer"),
    ((3,), {"default_validate": None}, TypeError,
     r"default_validate: expected True or False"),
    ((3,), {"free_default": "no"}, TypeError,
     r"free_default: expected True or False"),
])
def test_bad_constructor_arguments(args, kwargs, error, pattern):
    with pytest.raises(error, match=pattern):
        CorrelationMatrixPattern(*args, **kwargs)
