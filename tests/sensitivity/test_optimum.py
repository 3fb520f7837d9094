"""Tests of refold.sensitivity.optimum (the scale-aware optimum check)."""
import autograd
import autograd.numpy as anp
import numpy as np
import pytest

from refold.sensitivity.optimum import (
    DEFAULT_OPTIMUM_TOL, OptimumReport, check_optimum, validate_optimum)


def _problem(seed=0, dim=5):
    rng = np.random.default_rng(seed)
    a = rng.normal(size=(dim, dim))
    h = a @ a.T + dim * np.eye(dim)
    return h, (lambda b: np.linalg.solve(h, b))


def test_step_is_the_newton_step():
    h, solver = _problem()
    rng = np.random.default_rng(1)
    grad = 1e-9 * rng.normal(size=5)
    par = rng.normal(size=5)
    step = validate_optimum(grad, solver, par)
    # Independent truth: the Newton step by an explicit inverse.
    assert step == pytest.approx(np.max(np.abs(np.linalg.inv(h) @ grad)),
                                 rel=1e-10)


def test_non_optimum_message_gives_step_gradient_and_tolerance():
    h, solver = _problem()
    grad = np.full(5, 1e-2)
    par = np.zeros(5)
    true_step = np.max(np.abs(np.linalg.solve(h, grad)))
    with pytest.raises(ValueError) as info:
        validate_optimum(grad, solver, par, name="opt_par_value")
    msg = str(info.value)
    assert "opt_par_value is not an optimum" in msg
    assert f"{true_step:.3g}" in msg          # how far off
    assert "0.01" in msg                      # gradient size
    assert f"{DEFAULT_OPTIMUM_TOL:.3g}" in msg  # the tolerance
    assert "validate_optimum=False" in msg    # how to opt out
    assert "Re-optimise" in msg


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_gradient_fails(bad):
    _, solver = _problem()
    grad = np.zeros(5)
    grad[3] = bad
    with pytest.raises(ValueError, match=r"my_par .*not finite.*\[3\]"):
        validate_optimum(grad, solver, np.zeros(5), name="my_par")
    report = check_optimum(grad, solver, np.zeros(5))
    assert not report.ok


def test_nan_step_fails():
    grad = np.zeros(3)
    with pytest.raises(ValueError, match="Newton step .* not finite"):
        validate_optimum(grad, lambda b: np.full(3, np.nan), np.zeros(3))


def test_scale_aware_tolerance():
    solver = lambda b: b  # noqa: E731
    grad = np.array([5e-4, 0.0])
    # Relative for large parameters: |step| 5e-4 <= 1e-6 * 1e3.
    assert validate_optimum(grad, solver, np.array([1e3, 0.0])) == 5e-4
    # Absolute for small ones: the same step fails at scale 1.
    with pytest.raises(ValueError, match="5e-04|0.0005"):
        validate_optimum(grad, solver, np.array([1e-3, 0.0]))


def test_invariant_to_scaling_of_the_objective():
    # f and 1000 f have the same optimum: the Newton step must not change,
    # while the gradient norm grows 1000-fold.
    rng = np.random.default_rng(2)
    x = rng.normal(size=(30, 3))

    def f(theta):
        return anp.sum(anp.log1p(anp.exp(x @ theta))) + anp.sum(theta ** 2)

    theta = np.array([0.1, -0.2, 0.3])
    reports = []
    for c in (1.0, 1000.0):
        g = autograd.grad(lambda t: c * f(t))(theta)
        hm = autograd.hessian(lambda t: c * f(t))(theta)
        reports.append(check_optimum(g, lambda b: np.linalg.solve(hm, b),
                                     theta))
    assert reports[1].step_norm == pytest.approx(reports[0].step_norm,
                                                 rel=1e-10)
    assert reports[1].grad_norm == pytest.approx(1000 * reports[0].grad_norm)


def test_report_fields():
    report = check_optimum(np.array([2e-7, 0.0]), lambda b: b / 2,
                           np.array([-4.0, 1.0]), tol=1e-7)
    assert isinstance(report, OptimumReport)
    assert report.step_norm == pytest.approx(1e-7)
    assert report.grad_norm == pytest.approx(2e-7)
    assert report.scale == 4.0
    assert report.threshold == pytest.approx(4e-7)
    assert report.ok


def test_custom_tol_tightens():
    grad = np.array([1e-8])
    assert validate_optimum(grad, lambda b: b, np.zeros(1)) == 1e-8
    with pytest.raises(ValueError, match="1e-09"):
        validate_optimum(grad, lambda b: b, np.zeros(1), tol=1e-9)


@pytest.mark.parametrize("tol", [0.0, -1.0, np.nan])
def test_bad_tol(tol):
    with pytest.raises(ValueError, match="tol"):
        validate_optimum(np.zeros(2), lambda b: b, np.zeros(2), tol=tol)


def test_size_mismatch_names_argument():
    with pytest.raises(ValueError, match="grad_at_opt"):
        validate_optimum(np.zeros(3), lambda b: b, np.zeros(2))


def test_non_finite_opt_par():
    with pytest.raises(ValueError, match="opt_par"):
        check_optimum(np.zeros(2), lambda b: b, np.array([0.0, np.nan]))


def test_solver_wrong_size():
    with pytest.raises(ValueError, match="solver"):
        validate_optimum(np.zeros(2), lambda b: np.zeros(3), np.zeros(2))


def test_inputs_not_mutated():
    grad = np.array([1e-9, 2e-9])
    par = np.array([1.0, 2.0])
    validate_optimum(grad, lambda b: b, par)
    np.testing.assert_array_equal(grad, [1e-9, 2e-9])
    np.testing.assert_array_equal(par, [1.0, 2.0])
