"""Tests of refold.sensitivity.taylor against independent truths:
re-optimisation (refit + Newton polish), finite differences of refits,
closed forms and vittles 0.173 (when importable)."""
import math
import warnings

import autograd
import autograd.numpy as anp
import numpy as np
import pytest

from refold.sensitivity.refit import refit
from refold.sensitivity.taylor import (
    ParametricSensitivityTaylorExpansion as Taylor, TaylorSeriesReport,
    TaylorSeriesWarning, taylor_terms)


# ----------------------------------------------------------------------------
# Problems and the re-optimisation truth.
# ----------------------------------------------------------------------------
def _optimum(objective, start, hyper):
    """Re-fit, then polish with exact Newton steps (machine precision)."""
    x = refit(objective, start, hyper, gtol=1e-10).x
    grad = autograd.grad(objective)
    hess = autograd.hessian(objective)
    for _ in range(3):
        x = x - np.linalg.solve(hess(x, hyper), grad(x, hyper))
    return x


def _logistic_problem(seed=0, n_obs=60, dim=5):
    """Logistic regression; hyper = (log prior precision, prior mean)."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n_obs, dim))
    y = (rng.random(n_obs) < 1 / (1 + np.exp(-0.5 * x.sum(1)))).astype(float)

    def objective(theta, hyper):
        z = x @ theta
        return (anp.sum(anp.logaddexp(0, z) - y * z)
                + 0.5 * anp.exp(hyper[0]) * anp.sum((theta - hyper[1]) ** 2))

    hyper0 = np.array([0.0, 0.2])
    return objective, _optimum(objective, np.zeros(dim), hyper0), hyper0


@pytest.fixture(scope="module")
def logistic():
    return _logistic_problem()


@pytest.fixture(scope="module")
def logistic_taylor(logistic):
    objective, opt, hyper0 = logistic
    return Taylor.optimization_objective(objective, opt, hyper0, order=5)


def _log_problem():
    r"""g = exp(theta) - (1 + s eps): theta_hat = log(1 + s eps), whose
    series in eps has radius of convergence 1 / max(s) = 0.5."""
    s = np.array([1.0, 0.5, 2.0])

    def objective(theta, hyper):
        return anp.sum(anp.exp(theta) - (1 + s * hyper[0]) * theta)
    return objective, s


# ----------------------------------------------------------------------------
# The terms.
# ----------------------------------------------------------------------------
def test_term_counts_and_coefficients_closed_form():
    # Order 2: eps^2, 2 theta1 eps, theta1^2, H theta2.
    coefs = {(t.hyper_order, t.input_counts): t.coefficient
             for t in taylor_terms(2)}
    assert coefs == {(2, (0, 0)): 1, (1, (1, 0)): 2, (0, (2, 0)): 1,
                     (0, (0, 1)): 1}
    # Number of terms = sum over n of partitions of k - n.
    assert [len(taylor_terms(k)) for k in range(1, 6)] == [2, 4, 7, 12, 19]
    # In one dimension with g(theta, eps) = theta + eps + theta*eps etc. the
    # coefficients of the terms without eps are the Bell-polynomial ones:
    # their sum over terms with n = 0 equals the Bell number B_k.
    bell = [1, 2, 5, 15, 52]
    for k in range(1, 6):
        total = sum(t.coefficient for t in taylor_terms(k)
                    if t.hyper_order == 0)
        assert total == bell[k - 1]
    assert taylor_terms(3)[-1].is_solved


def test_term_values_sum_to_zero(logistic_taylor):
    # Each term is evaluated independently (nested partial derivatives with
    # the Faa di Bruno coefficients); at the derivatives found by the fast
    # univariate path, the k-th total derivative of g must vanish.
    dhyper = np.array([0.3, -0.2])
    for k in range(1, 5):
        values = logistic_taylor.evaluate_terms(dhyper, k)
        total = sum(v for _, v in values)
        scale = max(np.max(np.abs(v)) for _, v in values)
        assert np.max(np.abs(total)) <= 1e-12 * scale


def test_print_terms(logistic_taylor, capsys):
    logistic_taylor.print_terms(3)
    out = capsys.readouterr().out
    assert "Terms for order 3" in out
    assert out.count("Order 3:") == 7
    assert "solved for" in out
    logistic_taylor.print_terms()
    assert capsys.readouterr().out.count("Terms for order") == 5
    assert logistic_taylor.get_max_order() == 5
    assert len(logistic_taylor.get_terms(4)) == 12


# ----------------------------------------------------------------------------
# Accuracy against re-optimisation.
# ----------------------------------------------------------------------------
def test_error_rate_vs_refit_orders_1_to_5(logistic, logistic_taylor):
    objective, opt, hyper0 = logistic
    direction = np.array([0.3, -0.2])
    steps = np.array([0.4, 0.2, 0.1])
    errors = np.zeros((5, steps.size))
    for i, h in enumerate(steps):
        truth = _optimum(objective, opt, hyper0 + h * direction)
        for k in range(1, 6):
            pred = logistic_taylor.evaluate_taylor_series(
                hyper0 + h * direction, max_order=k)
            errors[k - 1, i] = np.max(np.abs(pred - truth))
    for k in range(1, 6):
        slope = np.polyfit(np.log(steps), np.log(errors[k - 1]), 1)[0]
        assert abs(slope - (k + 1)) < 0.35, (k, slope, errors[k - 1])
    # At the smallest step every extra order helps.
    assert np.all(np.diff(errors[:, -1]) < 0)


def test_first_derivative_matches_finite_differences_of_refits(logistic):
    objective, opt, hyper0 = logistic
    taylor = Taylor.optimization_objective(objective, opt, hyper0, order=1)
    h = 1e-3
    for j in range(2):
        e = np.zeros(2)
        e[j] = 1.0
        fd = (_optimum(objective, opt, hyper0 + h * e)
              - _optimum(objective, opt, hyper0 - h * e)) / (2 * h)
        d1 = taylor.evaluate_input_derivs(e)[0]
        np.testing.assert_allclose(d1, fd, rtol=1e-5, atol=1e-8)


def test_psd_matrix_parameter_through_pattern():
    from refold.patterns.psd import PSDSymmetricMatrixPattern
    pattern = PSDSymmetricMatrixPattern(3)
    rng = np.random.default_rng(1)
    a = rng.normal(size=(3, 3))
    data = rng.multivariate_normal(np.zeros(3), a @ a.T + np.eye(3), size=40)
    scatter = data.T @ data

    def objective(free, hyper):
        sigma = pattern.fold(free, free=True)
        sigma_inv = anp.linalg.inv(sigma)
        return (0.5 * anp.sum(sigma_inv * scatter)
                + 20 * anp.linalg.slogdet(sigma)[1]
                + 0.5 * anp.exp(hyper[0]) * anp.trace(sigma)
                + hyper[1] * anp.trace(sigma_inv))

    hyper0 = np.array([0.0, 0.5])
    opt = _optimum(objective, pattern.flatten(scatter / 40, free=True), hyper0)
    taylor = Taylor.optimization_objective(objective, opt, hyper0, order=3)
    direction = np.array([0.2, 0.3])
    steps = np.array([0.4, 0.2, 0.1])
    errors = np.zeros((3, steps.size))
    for i, h in enumerate(steps):
        truth = _optimum(objective, opt, hyper0 + h * direction)
        for k in range(1, 4):
            errors[k - 1, i] = np.max(np.abs(taylor.evaluate_taylor_series(
                hyper0 + h * direction, max_order=k) - truth))
    for k in range(1, 4):
        slope = np.polyfit(np.log(steps), np.log(errors[k - 1]), 1)[0]
        assert abs(slope - (k + 1)) < 0.35, (k, slope, errors[k - 1])
    # The folded prediction is a valid covariance close to the re-fit.
    pred = pattern.fold(taylor.evaluate_taylor_series(hyper0 + 0.1 * direction),
                        free=True)
    truth = pattern.fold(_optimum(objective, opt, hyper0 + 0.1 * direction),
                         free=True)
    np.testing.assert_allclose(pred, truth, rtol=1e-8, atol=1e-8)


def test_closed_form_log_series():
    objective, s = _log_problem()
    taylor = Taylor.optimization_objective(objective, np.zeros(3),
                                           np.zeros(1), order=5)
    derivs = taylor.evaluate_input_derivs(np.array([1.0]))
    for k, d in enumerate(derivs, start=1):
        # d^k/de^k log(1 + s e) at 0 = (-1)^(k-1) (k-1)! s^k
        np.testing.assert_allclose(
            d, (-1) ** (k - 1) * math.factorial(k - 1) * s ** k, rtol=1e-12)


# ----------------------------------------------------------------------------
# Directions: batches, caching, terms.
# ----------------------------------------------------------------------------
def test_several_directions_equal_separate_evaluations(logistic):
    objective, opt, hyper0 = logistic
    dirs = np.array([[0.3, -0.2], [0.0, 0.1], [-0.1, 0.05], [0.0, 0.0]])
    batch = Taylor.optimization_objective(objective, opt, hyper0, order=4)
    together = batch.evaluate_taylor_series(hyper0 + dirs)
    derivs = batch.evaluate_input_derivs(dirs)
    assert together.shape == (4, 5)
    assert [d.shape for d in derivs] == [(4, 5)] * 4
    for i, d in enumerate(dirs):
        single = Taylor.optimization_objective(objective, opt, hyper0, order=4)
        np.testing.assert_allclose(together[i],
                                   single.evaluate_taylor_series(hyper0 + d),
                                   rtol=1e-13, atol=1e-15)
        for k in range(4):
            np.testing.assert_allclose(
                derivs[k][i], single.evaluate_input_derivs(d)[k],
                rtol=1e-12, atol=1e-15)
    np.testing.assert_array_equal(together[3], opt)


def test_cached_direction_is_reused_and_scaled(logistic):
    objective, opt, hyper0 = logistic
    calls = {"n": 0}
    grad = autograd.grad(objective)

    def equation(theta, hyper):
        calls["n"] += 1
        return grad(theta, hyper)

    taylor = Taylor(equation, opt, hyper0, 4, "cholesky")
    direction = np.array([0.3, -0.2])
    base = taylor.evaluate_input_derivs(direction)
    used = calls["n"]
    for t in [0.5, -2.0, 3.0, 1e-3]:
        scaled = taylor.evaluate_input_derivs(t * direction)
        for k, (d, b) in enumerate(zip(scaled, base), start=1):
            np.testing.assert_allclose(d, t ** k * b, rtol=1e-12)
        taylor.evaluate_taylor_series(hyper0 + t * direction)
    assert calls["n"] == used
    # A higher order request extends the cached lower orders only.
    fresh = Taylor(grad, opt, hyper0, 4, "cholesky")
    fresh.evaluate_input_derivs(direction, max_order=2)
    np.testing.assert_allclose(fresh.evaluate_input_derivs(direction)[3],
                               base[3], rtol=1e-12)
    taylor.clear_cache()
    taylor.evaluate_input_derivs(direction)
    assert calls["n"] > used


def test_sum_terms_false_returns_the_terms(logistic_taylor, logistic):
    _, opt, hyper0 = logistic
    new = hyper0 + np.array([0.1, 0.05])
    terms = logistic_taylor.evaluate_taylor_series(new, max_order=3,
                                                   sum_terms=False)
    assert terms.shape == (4, 5)
    np.testing.assert_array_equal(terms[0], opt)
    derivs = logistic_taylor.evaluate_input_derivs(np.array([0.1, 0.05]), 3)
    for k in range(1, 4):
        np.testing.assert_allclose(terms[k], derivs[k - 1] / math.factorial(k),
                                   rtol=1e-14)
    np.testing.assert_allclose(
        terms.sum(0), logistic_taylor.evaluate_taylor_series(new, max_order=3),
        rtol=1e-14)
    listed = logistic_taylor.evaluate_taylor_series_terms(
        new, add_offset=False, max_order=3)
    assert isinstance(listed, list) and len(listed) == 4
    np.testing.assert_array_equal(listed[0], np.zeros(5))
    batch = logistic_taylor.evaluate_taylor_series(
        hyper0 + np.array([[0.1, 0.05], [0.0, 0.1]]), sum_terms=False)
    assert batch.shape == (6, 2, 5)


# ----------------------------------------------------------------------------
# Reliability: the divergence warning and the report.
# ----------------------------------------------------------------------------
def test_divergence_warning_fires_only_beyond_radius():
    objective, s = _log_problem()
    taylor = Taylor.optimization_objective(objective, np.zeros(3),
                                           np.zeros(1), order=4)
    with pytest.warns(TaylorSeriesWarning, match="not converging"):
        taylor.evaluate_taylor_series(np.array([2.0]))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        pred = taylor.evaluate_taylor_series(np.array([0.05]))
    # The truncation error of log(1 + x) after x^4/4 is about x^5 / 5.
    x = 0.05 * s
    assert np.all(np.abs(pred - np.log1p(x)) < 1.01 * x ** 5 / 5)
    report = taylor.diagnose(np.array([[0.05], [2.0]]))
    np.testing.assert_array_equal(report.converging, [True, False])
    assert issubclass(TaylorSeriesWarning, UserWarning)


def test_diagnose_error_estimate_tracks_refit(logistic):
    objective, opt, hyper0 = logistic
    taylor = Taylor.optimization_objective(objective, opt, hyper0, order=2)
    new = hyper0 + np.array([0.4, -0.3])
    value, report = taylor.evaluate_taylor_series(new, return_report=True)
    assert isinstance(report, TaylorSeriesReport)
    truth = _optimum(objective, opt, new)
    true_err = np.max(np.abs(value - truth))
    # The Newton step from the prediction estimates the distance to the
    # re-fit to first order.
    assert 0.5 * true_err < report.newton_step_norm < 2 * true_err
    np.testing.assert_allclose(report.residual_norm, np.max(np.abs(
        autograd.grad(objective)(value, new))), rtol=1e-12)
    refit_report = taylor.diagnose(new, refit=True)
    np.testing.assert_allclose(refit_report.refit_error, true_err, rtol=1e-4)
    assert report.term_norms.shape == (2,)
    assert "converging" in str(refit_report)


# ----------------------------------------------------------------------------
# Other paths: vittles, dense arrays, declared zero partials, solvers.
# ----------------------------------------------------------------------------
def _import_vittles():
    np.product = np.prod
    anp.product = anp.prod
    try:
        import vittles
    except Exception:  # pragma: no cover - depends on the environment
        pytest.skip("vittles is not importable")
    return vittles


def test_matches_vittles_orders_1_to_4(logistic):
    vittles = _import_vittles()
    objective, opt, hyper0 = logistic
    ours = Taylor.optimization_objective(objective, opt, hyper0, order=4)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs = vittles.ParametricSensitivityTaylorExpansion.\
            optimization_objective(objective, opt, hyper0, order=4)
    for direction in ([0.3, -0.2], [0.0, 1.0]):
        direction = np.array(direction)
        for a, b in zip(ours.evaluate_input_derivs(direction),
                        theirs.evaluate_input_derivs(direction)):
            np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-14)
    new = hyper0 + np.array([0.2, 0.1])
    np.testing.assert_allclose(ours.evaluate_taylor_series(new),
                               theirs.evaluate_taylor_series(new), rtol=1e-12)
    # Same terms with the same coefficients.
    for k in range(1, 5):
        theirs_terms = sorted((t.eps_order, tuple(t.eta_orders), t.prefactor)
                              for t in theirs._taylor_terms_list[k - 1])
        ours_terms = sorted((t.hyper_order, t.input_counts,
                             float(t.coefficient)) for t in taylor_terms(k))
        assert ours_terms == theirs_terms


def test_dense_arrays_and_declared_zero_partials_agree(logistic):
    objective, opt, hyper0 = logistic
    d = np.array([0.3, -0.2])
    fast = Taylor.optimization_objective(objective, opt, hyper0, order=3)
    dense = Taylor.optimization_objective(objective, opt, hyper0, order=3,
                                          forward_mode=False)
    termwise = Taylor.optimization_objective(objective, opt, hyper0, order=3,
                                             max_input_order=3,
                                             max_hyper_order=3)
    for a, b, c in zip(fast.evaluate_input_derivs(d),
                       dense.evaluate_input_derivs(d),
                       termwise.evaluate_input_derivs(d)):
        np.testing.assert_allclose(b, a, rtol=1e-10, atol=1e-14)
        np.testing.assert_allclose(c, a, rtol=1e-10, atol=1e-14)
    # A hyperparameter entering linearly: declaring the higher eps partials
    # zero changes nothing.
    obj_lin, s = _log_problem()
    full = Taylor.optimization_objective(obj_lin, np.zeros(3), np.zeros(1), 4)
    lin = Taylor.optimization_objective(obj_lin, np.zeros(3), np.zeros(1), 4,
                                        max_hyper_order=1)
    for a, b in zip(full.evaluate_input_derivs(np.array([0.5])),
                    lin.evaluate_input_derivs(np.array([0.5]))):
        np.testing.assert_allclose(a, b, rtol=1e-12)
    # Declaring nonzero partials zero drops their terms (vittles' semantics).
    trunc = Taylor.optimization_objective(obj_lin, np.zeros(3), np.zeros(1), 2,
                                          max_input_order=1)
    np.testing.assert_allclose(trunc.evaluate_input_derivs(np.array([1.0]))[1],
                               0.0, atol=1e-15)


def test_estimating_equation_solver_kinds_agree(logistic):
    objective, opt, hyper0 = logistic
    grad = autograd.grad(objective)
    d = np.array([0.3, -0.2])
    ref = Taylor(grad, opt, hyper0, 3, "cholesky").evaluate_input_derivs(d)
    hess = autograd.hessian(objective)(opt, hyper0)
    for solver in ("cg", "lu", lambda b: np.linalg.solve(hess, b)):
        other = Taylor(grad, opt, hyper0, 3, solver).evaluate_input_derivs(d)
        for a, b in zip(ref, other):
            np.testing.assert_allclose(b, a, rtol=1e-7, atol=1e-12)
    diag = np.diag(hess)
    pre = Taylor.optimization_objective(
        objective, opt, hyper0, 3, hess_solver="cg",
        solver_options={"preconditioner": lambda v: v / diag,
                        "cg_opts": {"rtol": 1e-12}})
    for a, b in zip(ref, pre.evaluate_input_derivs(d)):
        np.testing.assert_allclose(b, a, rtol=1e-9, atol=1e-13)
    with pytest.raises(TypeError, match="solver_options"):
        Taylor(grad, opt, hyper0, 3, lambda b: b, solver_options={"a": 1})


def test_non_symmetric_estimating_equation():
    # g(theta, eps) = A theta + theta^3 - eps b, A not symmetric: Newton's
    # method on the scalar-in-t identity is the truth.
    a = np.array([[2.0, 1.0], [-0.5, 3.0]])
    b = np.array([1.0, -2.0])

    def equation(theta, eps):
        return anp.dot(a, theta) + theta ** 3 - eps[0] * b

    taylor = Taylor(equation, np.zeros(2), np.zeros(1), 3, "lu")
    eps = 0.05
    theta = np.zeros(2)
    for _ in range(50):
        jac = a + np.diag(3 * theta ** 2)
        theta = theta - np.linalg.solve(jac, equation(theta, np.array([eps])))
    pred = taylor.evaluate_taylor_series(np.array([eps]))
    assert np.max(np.abs(pred - theta)) < 1e-6
    assert np.max(np.abs(pred - theta)) < 1e-2 * np.max(np.abs(theta))


# ----------------------------------------------------------------------------
# Bad input.
# ----------------------------------------------------------------------------
@pytest.mark.parametrize("order", [0, -1, 2.5, 2.0, True, "3", None])
def test_bad_order(logistic, order):
    objective, opt, hyper0 = logistic
    with pytest.raises(ValueError, match="order"):
        Taylor.optimization_objective(objective, opt, hyper0, order=order)


def test_bad_max_orders_and_k(logistic, logistic_taylor):
    objective, opt, hyper0 = logistic
    with pytest.raises(ValueError, match="max_input_order"):
        Taylor.optimization_objective(objective, opt, hyper0, 2,
                                      max_input_order=0)
    with pytest.raises(ValueError, match="max_hyper_order"):
        Taylor.optimization_objective(objective, opt, hyper0, 2,
                                      max_hyper_order=1.5)
    with pytest.raises(ValueError, match="max_order"):
        logistic_taylor.evaluate_taylor_series(hyper0, max_order=6)
    with pytest.raises(ValueError, match="max_order"):
        logistic_taylor.evaluate_input_derivs(hyper0, max_order=0)
    with pytest.raises(ValueError, match="k must be at most"):
        logistic_taylor.print_terms(k=6)


def test_wrong_hyperparameter_shape(logistic_taylor):
    # No broadcasting of a length-1 value over a length-2 hyperparameter.
    with pytest.raises(ValueError, match=r"new_hyper_val must have the shape"):
        logistic_taylor.evaluate_taylor_series(np.array([0.1]))
    with pytest.raises(ValueError, match=r"new_hyper_val must have the shape"):
        logistic_taylor.evaluate_taylor_series(0.1)
    with pytest.raises(ValueError, match=r"new_hyper_val must have the shape"):
        logistic_taylor.evaluate_taylor_series(np.zeros((2, 3)))
    with pytest.raises(ValueError, match=r"dhyper must have the shape"):
        logistic_taylor.evaluate_input_derivs(np.zeros(3))


def test_nan_inputs(logistic, logistic_taylor):
    objective, opt, hyper0 = logistic
    with pytest.raises(ValueError, match=r"new_hyper_val\[1\]"):
        logistic_taylor.evaluate_taylor_series(np.array([0.0, np.nan]))
    bad = opt.copy()
    bad[2] = np.nan
    with pytest.raises(ValueError, match=r"input_val0\[2\]"):
        Taylor.optimization_objective(objective, bad, hyper0, 2)
    with pytest.raises(ValueError, match=r"hyper_val0"):
        Taylor.optimization_objective(objective, opt, np.array([np.inf, 0]), 2)


def test_not_an_optimum(logistic):
    objective, opt, hyper0 = logistic
    with pytest.raises(ValueError, match="input_val0 is not an optimum"):
        Taylor.optimization_objective(objective, opt + 0.05, hyper0, 2)
    # Opting out works.
    Taylor.optimization_objective(objective, opt + 0.05, hyper0, 2,
                                  validate_optimum=False)


def test_indefinite_hessian(logistic):
    objective, opt, hyper0 = logistic

    def saddle(theta, hyper):
        return anp.sum(theta[:1] ** 2) - anp.sum(theta[1:] ** 2) + hyper[0] * \
            anp.sum(theta)

    x0 = np.array([0.0, 0.0])
    with pytest.raises(ValueError, match="Hessian of objective_function"):
        Taylor.optimization_objective(saddle, x0, np.zeros(1), 2)
    with pytest.raises(ValueError, match="hess0"):
        Taylor.optimization_objective(saddle, x0, np.zeros(1), 2,
                                      hess0=np.diag([2.0, -2.0]))
    with pytest.raises(ValueError, match="hess0 must have shape"):
        Taylor.optimization_objective(objective, opt, hyper0, 2,
                                      hess0=np.eye(3))


def test_bad_functions_and_solvers(logistic):
    objective, opt, hyper0 = logistic
    with pytest.raises(ValueError, match="estimating_equation must return"):
        Taylor(lambda t, h: t[:2], opt, hyper0, 2, "cholesky")
    with pytest.raises(ValueError, match="objective_function must return"):
        Taylor.optimization_objective(lambda t, h: t, opt, hyper0, 2)
    with pytest.raises(TypeError, match="hess_solver"):
        Taylor(autograd.grad(objective), opt, hyper0, 2, 3.0)
    with pytest.raises(ValueError, match="input_val0 must be a non-empty 1-d"):
        Taylor(autograd.grad(objective), opt[None], hyper0, 2, "cholesky")
    with pytest.raises(ValueError, match="force=True"):
        Taylor.optimization_objective(
            lambda t, h: anp.sum(t ** 2) * anp.exp(h[0]), np.zeros(40),
            hyper0, 4, forward_mode=False)


def test_inputs_not_mutated(logistic):
    objective, opt, hyper0 = logistic
    opt_copy, hyper_copy = opt.copy(), hyper0.copy()
    taylor = Taylor.optimization_objective(objective, opt, hyper0, 2)
    new = hyper0 + 0.1
    new_copy = new.copy()
    out = taylor.evaluate_taylor_series(new)
    out[:] = 0.0
    terms = taylor.evaluate_taylor_series_terms(new)
    terms[0][:] = 5.0
    np.testing.assert_array_equal(opt, opt_copy)
    np.testing.assert_array_equal(hyper0, hyper_copy)
    np.testing.assert_array_equal(new, new_copy)
    np.testing.assert_allclose(
        taylor.evaluate_taylor_series(new),
        Taylor.optimization_objective(objective, opt, hyper0, 2)
        .evaluate_taylor_series(new), rtol=1e-14)
