"""Tests of refold.sensitivity.cross (CrossSensitivity, OptimumChecker)."""
import itertools

import autograd
import autograd.numpy as anp
import numpy as np
import pytest

from refold.sensitivity.cross import CrossSensitivity, OptimumChecker

A_MAT = np.array([[3.0, 1.0, 0.2], [1.0, 2.0, 0.3], [0.2, 0.3, 1.5]])
B_VEC = np.array([0.3, -0.2, 0.5])


def objective(x, h1, h2):
    """Strongly convex in x, nonlinear in both hyperparameters."""
    return (0.5 * x @ A_MAT @ x + 0.25 * h1[0] * anp.sum(x ** 4)
            + anp.cos(h2[0]) * anp.sum(anp.sin(x))
            - h1[0] * h2[1] * (B_VEC @ x)
            + 0.1 * anp.sum(h1[0] * h2 * x[:2]))


G = autograd.grad(objective, argnum=0)
H1 = np.array([0.4])
H2 = np.array([0.2, -0.3])


def _root(h1, h2, init=np.zeros(3)):
    x = init.copy()
    jac = autograd.jacobian(G, argnum=0)
    for _ in range(40):  # plain Newton, independent of refold
        x = x - np.linalg.solve(jac(x, h1, h2), G(x, h1, h2))
    assert np.max(np.abs(G(x, h1, h2))) < 1e-13
    return x


X0 = _root(H1, H2)
DH1 = np.array([0.7])
DH2 = np.array([0.5, 1.0])


def _solver(x=X0, h1=H1, h2=H2):
    jac = autograd.jacobian(G, argnum=0)(x, h1, h2)
    return lambda b: np.linalg.solve(jac, b)


def _fd_mixed(delta=1e-3):
    def root(s, t):
        return _root(H1 + s * DH1, H2 + t * DH2, X0)
    return (root(delta, delta) - root(delta, -delta) - root(-delta, delta)
            + root(-delta, -delta)) / (4 * delta ** 2)


FD_MIXED = _fd_mixed()


def test_mixed_derivative_matches_finite_differences():
    cross = CrossSensitivity(G, _solver(), X0, H1, H2)
    np.testing.assert_allclose(cross.evaluate(DH1, DH2), FD_MIXED, rtol=1e-5,
                               atol=1e-7)
    # First derivatives too.
    delta = 1e-5
    fd1 = (_root(H1 + delta * DH1, H2, X0) - _root(H1 - delta * DH1, H2, X0)
           ) / (2 * delta)
    np.testing.assert_allclose(cross.get_di1(DH1), fd1, rtol=1e-6, atol=1e-9)
    fd2 = (_root(H1, H2 + delta * DH2, X0) - _root(H1, H2 - delta * DH2, X0)
           ) / (2 * delta)
    np.testing.assert_allclose(cross.get_di2(DH2), fd2, rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize("solver", [None, "cholesky", "lu", "cg"])
def test_solver_kinds(solver):
    cross = CrossSensitivity(G, solver, X0, H1, H2)
    np.testing.assert_allclose(cross.evaluate(DH1, DH2), FD_MIXED, rtol=1e-5,
                               atol=1e-7)


FLAGS = list(itertools.product([True, False], repeat=4))


def test_every_flag_combination_is_the_sum_of_its_terms():
    # The answer is linear in the included terms: each flag combination
    # must equal the sum of the single-term results, and all four terms
    # together must match the finite differences.
    single = {}
    for k in range(4):
        flags = [False] * 4
        flags[k] = True
        single[k] = CrossSensitivity(G, _solver(), X0, H1, H2,
                                     *flags).evaluate(DH1, DH2)
    np.testing.assert_allclose(sum(single.values()), FD_MIXED, rtol=1e-5,
                               atol=1e-7)
    for flags in FLAGS:
        got = CrossSensitivity(G, _solver(), X0, H1, H2,
                               *flags).evaluate(DH1, DH2)
        expected = sum((single[k] for k in range(4) if flags[k]),
                       np.zeros(3))
        np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-14,
                                   err_msg=str(flags))


def test_skipping_vanishing_terms_is_exact():
    # G linear in h2 with no x-h2 interaction: g_i2 and g_12 vanish.
    def g(x, h1, h2):
        return A_MAT @ x + h1[0] * x ** 3 - h1[0] ** 2 * B_VEC + h2

    x0 = np.zeros(3)
    x0 = x0 - np.linalg.solve(A_MAT, g(x0, np.zeros(1), np.zeros(3)))
    solver = _solver_for(g, x0, np.zeros(1), np.zeros(3))
    full = CrossSensitivity(g, solver, x0, np.zeros(1), np.zeros(3))
    part = CrossSensitivity(g, solver, x0, np.zeros(1), np.zeros(3),
                            term_i2=False, term_12=False)
    dh1, dh2 = np.array([1.0]), np.array([0.3, 0.1, -0.2])
    np.testing.assert_allclose(part.evaluate(dh1, dh2),
                               full.evaluate(dh1, dh2), atol=1e-14)


def _solver_for(g, x0, h1, h2):
    jac = autograd.jacobian(g, argnum=0)(x0, h1, h2)
    return lambda b: np.linalg.solve(jac, b)


def test_precomputed_first_derivatives_are_used():
    cross = CrossSensitivity(G, _solver(), X0, H1, H2)
    di1, di2 = cross.get_di1(DH1), cross.get_di2(DH2)
    np.testing.assert_allclose(cross.evaluate(DH1, DH2, di1=di1, di2=di2),
                               cross.evaluate(DH1, DH2), rtol=1e-12)
    # Wrong ones change the answer (so they really are used).
    assert not np.allclose(cross.evaluate(DH1, DH2, di1=2 * di1, di2=di2),
                           cross.evaluate(DH1, DH2))


def test_scalar_hyperparameters():
    def g(x, h1, h2):
        return A_MAT @ x + h1 * anp.sin(x) * h2 + h1 ** 2 * B_VEC

    cross = CrossSensitivity(g, None, np.zeros(3), 0.0, 0.0)
    # At h1 = h2 = 0 and x = 0: di1 = 0 (the h1 term is quadratic), so the
    # mixed derivative is -A^-1 (d2 g / dh1 dh2) = -A^-1 sin(0) = 0 plus
    # terms in di2; checked against finite differences instead.
    def root(s, t):
        x = np.zeros(3)
        for _ in range(40):
            jac = autograd.jacobian(g)(x, s, t)
            x = x - np.linalg.solve(jac, g(x, s, t))
        return x
    d = 1e-3
    fd = (root(d, d) - root(d, -d) - root(-d, d) + root(-d, -d)) / (4 * d * d)
    np.testing.assert_allclose(cross.evaluate(1.0, 1.0), fd, atol=1e-6)


def test_non_symmetric_estimating_equation():
    mat = np.array([[2.0, 1.0, 0.0], [-0.5, 1.5, 0.4], [0.3, 0.0, 1.0]])

    def g(x, h1, h2):
        return mat @ x + h1[0] * anp.tanh(x) * h2[0] + h1[0] * x ** 2 - h2

    def root(h1, h2):
        x = np.zeros(3)
        for _ in range(40):
            x = x - np.linalg.solve(autograd.jacobian(g)(x, h1, h2),
                                    g(x, h1, h2))
        return x

    h1, h2 = np.array([0.3]), np.array([0.2, 0.1, -0.1])
    dh1, dh2 = np.array([1.0]), np.array([0.5, -1.0, 0.3])
    x0 = root(h1, h2)
    cross = CrossSensitivity(g, None, x0, h1, h2)  # LU chosen automatically
    d = 1e-3
    fd = (root(h1 + d * dh1, h2 + d * dh2) - root(h1 + d * dh1, h2 - d * dh2)
          - root(h1 - d * dh1, h2 + d * dh2)
          + root(h1 - d * dh1, h2 - d * dh2)) / (4 * d * d)
    np.testing.assert_allclose(cross.evaluate(dh1, dh2), fd, rtol=1e-5,
                               atol=1e-7)


def test_bad_input():
    cross = CrossSensitivity(G, _solver(), X0, H1, H2)
    with pytest.raises(ValueError, match=r"dh1 must have the shape of "
                                         r"hyper1_base"):
        cross.evaluate(np.ones(2), DH2)
    with pytest.raises(ValueError, match="dh2"):
        cross.get_di2(np.ones(3))
    with pytest.raises(ValueError, match="di1"):
        cross.evaluate(DH1, DH2, di1=np.ones(2))
    with pytest.raises(ValueError, match="dh1.*finite"):
        cross.get_di1(np.array([np.nan]))
    with pytest.raises(TypeError, match="term_ii"):
        CrossSensitivity(G, _solver(), X0, H1, H2, term_ii="yes")
    with pytest.raises(ValueError, match="input_base"):
        CrossSensitivity(G, _solver(), np.zeros((3, 1)), H1, H2)
    with pytest.raises(ValueError, match=r"shape \(2,\)"):
        CrossSensitivity(lambda x, h1, h2: np.zeros(2), _solver(), X0, H1,
                         H2)
    with pytest.raises(TypeError, match="solver"):
        CrossSensitivity(G, 5, X0, H1, H2)


# ---------------------------------------------------------------------------
# OptimumChecker
# ---------------------------------------------------------------------------
def _g2(x, h):
    return G(x, h, H2)


def test_newton_step_points_to_the_optimum():
    x_off = X0 + np.array([2e-3, -1e-3, 1.5e-3])
    checker = OptimumChecker(_g2, None, x_off, H1)
    step = checker.get_newton_step()
    # Quadratic convergence: the error after one step is O(|offset|^2).
    assert np.max(np.abs(x_off + step - X0)) < 1e-4
    assert np.max(np.abs(x_off + step - X0)) < 0.05 * np.max(np.abs(step))


def test_correction_repairs_the_sensitivity_of_an_inexact_optimum():
    x_off = X0 + np.array([2e-2, -1e-2, 1.5e-2])
    hyper_new = H1 + 0.1
    checker = OptimumChecker(_g2, None, x_off, H1)
    # The truth: the first-order change computed at the exact optimum.
    exact = OptimumChecker(_g2, None, X0, H1).get_dinput_dhyper(hyper_new - H1)
    at_off = checker.get_dinput_dhyper(hyper_new - H1)
    corrected = checker.evaluate(hyper_new) - x_off
    err_before = np.max(np.abs(at_off - exact))
    err_after = np.max(np.abs(corrected - exact))
    assert err_after < 0.05 * err_before
    np.testing.assert_allclose(
        checker.correction(hyper_new), corrected - at_off, rtol=1e-12)


def test_checker_at_exact_optimum_has_no_correction():
    checker = OptimumChecker(_g2, _solver(), X0, H1)
    assert np.max(np.abs(checker.get_newton_step())) < 1e-12
    assert np.max(np.abs(checker.correction(H1 + 0.1))) < 1e-12


def test_checker_bad_input():
    with pytest.raises(ValueError, match="hyper_new"):
        OptimumChecker(_g2, None, X0, H1).evaluate(np.ones(2))
    with pytest.raises(ValueError, match="estimating_equation.*shape"):
        OptimumChecker(lambda x, h: np.zeros(2), None, X0, H1)
    with pytest.raises(ValueError, match="not finite"):
        OptimumChecker(lambda x, h: x * np.nan, None, X0, H1)


# ---------------------------------------------------------------------------
# Agreement with vittles 0.173 where it does not crash
# ---------------------------------------------------------------------------
def _vittles():
    import warnings
    import numpy
    try:
        if not hasattr(numpy, "product"):
            numpy.product = numpy.prod
            anp.product = anp.prod
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            from vittles import bivariate_sensitivity_lib
    except Exception as err:  # pragma: no cover - depends on environment
        pytest.skip(f"vittles not importable: {err}")
    return bivariate_sensitivity_lib


def test_matches_vittles():
    import warnings
    vit = _vittles()
    solver = _solver()
    for flags in FLAGS:
        ours = CrossSensitivity(G, solver, X0, H1, H2, *flags)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            theirs = vit.CrossSensitivity(G, solver, X0, H1, H2, *flags)
        try:
            expected = theirs.evaluate(DH1, DH2)
        except AttributeError:  # vittles' bug for these flag combinations
            assert not flags[0] and (not flags[1] or not flags[2])
            continue
        np.testing.assert_allclose(ours.evaluate(DH1, DH2), expected,
                                   rtol=1e-12, atol=1e-15)
    x_off = X0 + 1e-2
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs = vit.OptimumChecker(_g2, _solver(x_off), x_off, H1)
    ours = OptimumChecker(_g2, _solver(x_off), x_off, H1)
    np.testing.assert_allclose(ours.get_newton_step(),
                               theirs.get_newton_step(), rtol=1e-12)
    np.testing.assert_allclose(ours.evaluate(H1 + 0.1),
                               theirs.evaluate(H1 + 0.1), rtol=1e-12)
