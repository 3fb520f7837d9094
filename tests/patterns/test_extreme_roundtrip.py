"""Hypothesis round-trip fuzz of nested patterns with extreme ``diag_lb``
and bounds, at a small example count (it runs in CI).

For any free vector of moderate size, ``fold`` must return a value that
validates, and ``flatten`` must take it back: folded again it is the same
value to rounding (relative to its largest entry: with ``diag_lb`` far
above the free scale, ``A - diag_lb I`` is known only to ``eps * diag_lb``,
so the free vector itself cannot come back, but the folded value does).
Without ``free``, flattening a folded value and folding it back is exact.
"""
import numpy as np
from hypothesis import given, settings, strategies as st

import refold

DIAG_LBS = [0.0, 1e-300, 1e-8, 1.0, 1e5, 1e100]
BOUNDS = [(-np.inf, np.inf), (0.0, np.inf), (-np.inf, -1e300),
          (1e-300, np.inf), (-1e300, 1e300), (1e300, np.inf),
          (-1.0, 1.0), (0.0, 1e-300), (5.0, 5.0 + 1e-9)]


@st.composite
def nested(draw):
    lb, ub = draw(st.sampled_from(BOUNDS))
    size = draw(st.integers(1, 3))
    diag_lb = draw(st.sampled_from(DIAG_LBS))
    inner = refold.PatternDict()
    inner["x"] = refold.NumericArrayPattern((2,), lb=lb, ub=ub)
    inner["cov"] = refold.PSDSymmetricMatrixPattern(size, diag_lb=diag_lb)
    outer = refold.PatternDict()
    outer["inner"] = inner
    outer["covs"] = refold.PatternArray(
        (2,), refold.PSDSymmetricMatrixPattern(size, diag_lb=diag_lb))
    outer["w"] = refold.SimplexArrayPattern(3, (2,))
    outer["s"] = refold.NumericScalarPattern(lb=lb, ub=ub)
    return outer


def _leaves(value):
    if isinstance(value, dict):
        for key in value:
            yield from _leaves(value[key])
    else:
        yield np.asarray(value, dtype=float)


def _assert_close(a, b):
    for x, y in zip(_leaves(a), _leaves(b)):
        scale = max(1.0, float(np.max(np.abs(x), initial=0.0)))
        np.testing.assert_allclose(x, y, rtol=0, atol=1e-12 * scale)


@settings(max_examples=30, deadline=None)
@given(pattern=nested(), seed=st.integers(0, 2 ** 16), spread=st.sampled_from(
    [0.1, 1.0, 5.0]))
def test_free_fold_validates_and_flattens_back(pattern, seed, spread):
    rng = np.random.default_rng(seed)
    free = spread * rng.standard_normal(pattern.flat_length(free=True))
    folded = pattern.fold(free, free=True)
    ok, message = pattern.validate_folded(folded)
    assert ok, message
    again = pattern.fold(pattern.flatten(folded, free=True), free=True)
    _assert_close(folded, again)


@settings(max_examples=30, deadline=None)
@given(pattern=nested(), seed=st.integers(0, 2 ** 16))
def test_fixed_flatten_fold_is_exact(pattern, seed):
    folded = pattern.random(rng=seed)
    flat = pattern.flatten(folded, free=False)
    np.testing.assert_array_equal(
        pattern.flatten(pattern.fold(flat, free=False), free=False), flat)


def test_issue_example_psd_diag_lb_1e5():
    # fold used to return a matrix failing its own validation (eigenvalue
    # -9.5e-13 of A - diag_lb I after the rounding of adding diag_lb).
    pattern = refold.PSDSymmetricMatrixPattern(3, diag_lb=1e5)
    free = np.array([-2.78125, 3., -3., 0., 5., -5.])
    folded = pattern.fold(free, free=True)
    assert pattern.validate_folded(folded) == (True, "")
    again = pattern.fold(pattern.flatten(folded, free=True), free=True)
    np.testing.assert_allclose(again, folded, rtol=0, atol=1e-15 * 1e5 * 8)
    # Only the rounding of diag_lb is forgiven: a clearly indefinite
    # A - diag_lb I, and a singular matrix without diag_lb, are refused.
    bad = folded - 1e-6 * np.eye(3) - 1e-3 * np.outer([1, 0, 0], [1, 0, 0])
    assert not pattern.validate_folded(bad)[0]
    singular = refold.PSDSymmetricMatrixPattern(2)
    assert not singular.validate_folded(np.ones((2, 2)))[0]
