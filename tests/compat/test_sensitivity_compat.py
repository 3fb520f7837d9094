"""Items 10 and 11: no objective evaluation with validate_optimum=False and
given Hessians; cross Hessians and Jacobians in the cheaper mode."""
import autograd
import autograd.numpy as anp
import numpy as np
import pytest

import refold
from refold.sensitivity import jacobian_modes
from refold.sensitivity.jacobian_modes import choose_mode, jacobian_matrix


def test_given_hessians_need_no_objective():
    calls = []

    def placeholder(theta, hyper):
        calls.append(1)
        raise RuntimeError("the objective must not be evaluated")

    hess = np.array([[2.0, 0.5], [0.5, 1.0]])
    cross = np.array([[1.0, 0.0, 2.0], [0.0, -1.0, 1.0]])
    sens = refold.HyperparameterSensitivityLinearApproximation(
        placeholder, np.zeros(2), np.zeros(3), validate_optimum=False,
        hessian_at_opt=hess, cross_hess_at_opt=cross)
    np.testing.assert_allclose(sens.get_dopt_dhyper(),
                               -np.linalg.solve(hess, cross))
    np.testing.assert_allclose(
        sens.predict_opt_par_from_hyper_par(np.ones(3)),
        -np.linalg.solve(hess, cross) @ np.ones(3))
    assert not calls


def _weighted_problem(n_obs=40, dim=3, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n_obs, dim))
    y = x @ np.array([1.0, -2.0, 0.5])[:dim] + rng.normal(size=n_obs)

    def objective(theta, w):
        return 0.5 * anp.sum(w * (y - anp.dot(x, theta)) ** 2) + \
            0.05 * anp.sum(theta ** 2)
    theta = np.linalg.solve(x.T @ x + 0.1 * np.eye(dim), x.T @ y)
    return objective, theta, x, y


def test_cross_hessian_by_reverse_mode_matches_the_closed_form():
    objective, theta, x, y = _weighted_problem()
    w = np.ones(x.shape[0])
    # d/dw_n of grad_theta = -x_n (y_n - x_n theta): a D x N matrix.
    expected = -(x * (y - x @ theta)[:, None]).T
    grad = autograd.grad(objective)
    for mode in ("forward", "reverse", "auto"):
        np.testing.assert_allclose(
            jacobian_matrix(grad, (theta, w), argnum=1, mode=mode),
            expected, atol=1e-10)
    sens = refold.HyperparameterSensitivityLinearApproximation(
        objective, theta, w)
    hess = x.T @ x + 0.1 * np.eye(3)
    np.testing.assert_allclose(sens.get_dopt_dhyper(),
                               -np.linalg.solve(hess, expected), atol=1e-10)


def test_auto_mode_takes_the_fewer_passes(monkeypatch):
    assert choose_mode(2000, 5) == "reverse"
    assert choose_mode(3, 5) == "forward"
    assert choose_mode(5, 5) == "forward"
    with pytest.raises(ValueError, match="mode"):
        choose_mode(1, 1, "sideways")
    counts = {"jvp": 0, "vjp": 0}
    real_jvp, real_vjp = autograd.make_jvp, autograd.make_vjp

    def counting_jvp(fun, *a, **k):
        made = real_jvp(fun, *a, **k)

        def at(x):
            push = made(x)

            def call(v):
                counts["jvp"] += 1
                return push(v)
            return call
        return at

    def counting_vjp(fun, *a, **k):
        made = real_vjp(fun, *a, **k)

        def at(x):
            pull, value = made(x)

            def call(g):
                counts["vjp"] += 1
                return pull(g)
            return call, value
        return at
    monkeypatch.setattr(jacobian_modes.autograd, "make_jvp", counting_jvp)
    monkeypatch.setattr(jacobian_modes.autograd, "make_vjp", counting_vjp)
    objective, theta, x, _ = _weighted_problem(n_obs=50)
    # With a separate hyper_par_objective_fun the cross Hessian is taken
    # by jacobian_modes, in the cheaper mode.
    refold.HyperparameterSensitivityLinearApproximation(
        objective, theta, np.ones(50), hyper_par_objective_fun=objective)
    assert counts == {"jvp": 0, "vjp": 3}            # D = 3 reverse sweeps
    counts.update(jvp=0, vjp=0)
    shifted = lambda t, h: objective(t, np.ones(50)) + h[0] * t[0]  # noqa
    refold.HyperparameterSensitivityLinearApproximation(
        shifted, theta, np.zeros(1), validate_optimum=False,
        hyper_par_objective_fun=shifted)
    assert counts == {"jvp": 1, "vjp": 0}            # M = 1 forward pass
    # Otherwise it comes from the record of the base point, also in
    # min(D, M) sweeps of its graph.
    from refold.sensitivity import _graph_sweep
    sweeps = []
    real_sweep = _graph_sweep.RecordedGraph.vjp
    monkeypatch.setattr(_graph_sweep.RecordedGraph, "vjp",
                        lambda self, g: sweeps.append(1) or real_sweep(self,
                                                                       g))
    approx = refold.HyperparameterSensitivityLinearApproximation(
        objective, theta, np.ones(50))
    assert counts == {"jvp": 1, "vjp": 0}            # jacobian_modes unused
    assert len(sweeps) == 3        # D = 3 rows (the small Hessian is dense)
    expected = jacobian_matrix(autograd.grad(objective), (theta, np.ones(50)),
                               1)
    np.testing.assert_allclose(approx._cross, expected, rtol=1e-12,
                               atol=1e-14)


def test_zero_cross_hessian_in_both_modes():
    fun = autograd.grad(lambda t, h: anp.sum(t ** 2))
    for mode in ("forward", "reverse"):
        np.testing.assert_array_equal(
            jacobian_matrix(fun, (np.ones(2), np.ones(4)), 1, mode=mode),
            np.zeros((2, 4)))


def test_approximate_loo_uses_the_cheaper_mode():
    objective, theta, x, y = _weighted_problem(n_obs=30)
    ws = refold.WeightSensitivity(
        lambda t: 0.5 * (y - anp.dot(x, t)) ** 2, theta,
        prior_fun=lambda t: 0.05 * anp.sum(t ** 2))
    loo = ws.approximate_loo()
    hess = x.T @ x + 0.1 * np.eye(3)
    grads = -(x * (y - x @ theta)[:, None])           # (N, D)
    np.testing.assert_allclose(loo, theta + np.linalg.solve(hess, grads.T).T,
                               atol=1e-10)


def test_data_weight_sensitivity_agrees_with_vittles(vittles):
    objective, theta, _, _ = _weighted_problem(n_obs=60)
    w = np.ones(60)
    ours = refold.HyperparameterSensitivityLinearApproximation(
        objective, theta, w)
    theirs = vittles.HyperparameterSensitivityLinearApproximation(
        objective, theta, w)
    np.testing.assert_allclose(ours.get_dopt_dhyper(),
                               theirs.get_dopt_dhyper(), atol=1e-12)


def test_dense_taylor_cross_jacobian_with_many_hyperparameters():
    """forward_mode=False with M > D: the cross Jacobian (reverse sweeps)
    gives the same series as the directional (forward) path, and matches
    refits to second order."""
    objective, theta, x, y = _weighted_problem(n_obs=40)
    w = np.ones(40)
    new_w = w.copy()
    new_w[:5] = 0.9
    series = {}
    for forward_mode in (True, False):
        taylor = refold.ParametricSensitivityTaylorExpansion.\
            optimization_objective(objective, theta, w, order=2,
                                   forward_mode=forward_mode)
        series[forward_mode] = taylor.evaluate_taylor_series(new_w)
    np.testing.assert_allclose(series[False], series[True], atol=1e-12)
    # The weighted ridge optimum is closed-form.
    exact = np.linalg.solve((x * new_w[:, None]).T @ x + 0.1 * np.eye(3),
                            (x * new_w[:, None]).T @ y)
    assert np.abs(series[False] - exact).max() < 1e-3 * np.abs(
        exact - theta).max()
