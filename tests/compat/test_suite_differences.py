"""Differences the anchors' own test suites exposed (benchmarks/
anchor_suites.py), pinned as the porting guide documents them: checked
against closed forms and, where the anchor behaves the same, the anchor."""
import autograd
import autograd.numpy as anp
import numpy as np
import pytest

from refold.compat import paragami, vittles


def _quadratic():
    a = 2.0 * np.eye(3) + 0.1
    return a, (lambda x: 0.5 * anp.dot(x, anp.dot(a, x)))


def test_set_preconditioner_matrix_checks_a_wrong_inverse_when_set():
    a, objective = _quadratic()
    f_c = paragami.PreconditionedFunction(objective)
    with pytest.raises(ValueError, match="a_inv"):
        f_c.set_preconditioner_matrix(a, np.linalg.inv(a) + 2)
    # A right inverse is accepted, and the preconditioned function is
    # f(A^{-1} y)'s counterpart: f_c(y) = f(A y).
    f_c.set_preconditioner_matrix(a, np.linalg.inv(a))
    f_c.check_preconditioner(np.arange(3) / 5.0)
    y = np.array([0.3, -0.2, 0.5])
    np.testing.assert_allclose(f_c(y), objective(a @ y))
    np.testing.assert_allclose(f_c.precondition(a @ y), y)


def test_taylor_expansion_refuses_a_non_square_estimating_equation():
    def equation(x1, x2):
        return anp.array([anp.exp(anp.sum(x1) + anp.sum(x2)), 0.0])

    with pytest.raises(ValueError, match="estimating_equation"):
        vittles.ParametricSensitivityTaylorExpansion(
            estimating_equation=equation, input_val0=np.zeros(3),
            hyper_val0=np.zeros(6), order=2, forward_mode=False,
            hess_solver=lambda v: v, validate_optimum=False)


def test_taylor_expansion_away_from_an_optimum_needs_the_check_off():
    # vittles' Taylor expansion never checked the optimum; refold does by
    # default, and with the check off reproduces the series exactly: for
    # g(eta, eps) = (sum eta)^2 * sum eps, any point with a given Hessian.
    def objective(eta, eps):
        return anp.sum(eta) ** 2 * anp.sum(eps)

    eta0, eps0 = 0.01 * np.arange(2), 0.02 * np.arange(3)
    hess0 = np.diag([2.1, 4.5])
    with pytest.raises(ValueError, match="not an optimum"):
        vittles.ParametricSensitivityTaylorExpansion.optimization_objective(
            objective_function=objective, input_val0=eta0, hyper_val0=eps0,
            hess0=hess0, order=1)
    taylor = vittles.ParametricSensitivityTaylorExpansion\
        .optimization_objective(
            objective_function=objective, input_val0=eta0,
            hyper_val0=eps0, hess0=hess0, order=1, validate_optimum=False)
    deps = np.full(3, 0.1)
    # First order: -H^{-1} (d/deps grad_eta) deps, in closed form.
    cross = autograd.jacobian(autograd.grad(objective, 0), 1)(eta0, eps0)
    expected = eta0 - np.linalg.solve(hess0, cross @ deps)
    np.testing.assert_allclose(
        taylor.evaluate_taylor_series(eps0 + deps), expected)
