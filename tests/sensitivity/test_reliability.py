"""Issue 10, sensitivity: every case the issue lists, each against an
independent truth (closed forms, brute-force re-fits, extended-precision
solves) where a number is involved."""
import warnings
from fractions import Fraction

import autograd.numpy as anp
import numpy as np
import pytest

import refold
from refold.sensitivity import (
    EstimatingEquationLinearApproximation,
    HyperparameterSensitivityLinearApproximation,
    ParametricSensitivityTaylorExpansion, TaylorSeriesWarning,
    WeightSensitivity, check_optimum, refit)

HSLA = HyperparameterSensitivityLinearApproximation
EELA = EstimatingEquationLinearApproximation


def objective(th, h):
    return 0.5 * anp.sum(th ** 2) - h[0] * anp.sum(th)


# ---------------------------------------------------------------- wrong answers
def test_scalar_cross_derivative_is_an_error_not_a_broadcast():
    th0, h0 = np.zeros(2), np.zeros(1)
    # d/dh of a scalar -h was broadcast to (-1, -1): dtheta/dh = (1, 1).
    with pytest.raises(ValueError, match=r"hyper_par_estimating_equation must "
                                         r"return an array of shape \(2,\).*"
                                         r"got shape \(\)"):
        EELA(lambda t, h: t - h[0], th0, h0,
             hyper_par_estimating_equation=lambda t, h: -h[0])
    with pytest.raises(ValueError, match=r"hyper_par_objective_fun must return "
                                         r"a scalar; got an array of shape"):
        HSLA(objective, th0, h0, hyper_par_objective_fun=lambda t, h: t * h)


def test_cross_derivative_matches_refits():
    # A hyperparameter acting on one coordinate only (the other column entry
    # is an exact zero), checked against finite differences of re-fits.
    def obj(th, h):
        return anp.sum(th ** 4) / 4 + 0.5 * anp.sum(th ** 2) - h[0] * th[0]
    h0 = np.array([0.3])
    opt = refit(obj, np.zeros(2), h0, gtol=1e-13).x
    sens = HSLA(obj, opt, h0).get_dopt_dhyper()
    step = 1e-5
    fd = (refit(obj, opt, h0 + step, gtol=1e-13).x
          - refit(obj, opt, h0 - step, gtol=1e-13).x) / (2 * step)
    np.testing.assert_allclose(sens[:, 0], fd, atol=1e-8)
    assert sens[1, 0] == 0.0


@pytest.mark.parametrize("flag", [None, "no", 1, 0.0])
def test_validate_flags_must_be_bools(flag):
    with pytest.raises(TypeError, match="validate_optimum must be True or "
                                        "False"):
        HSLA(objective, np.ones(2), np.zeros(1), validate_optimum=flag)
    with pytest.raises(TypeError, match="validate_solution must be True or "
                                        "False"):
        EELA(lambda t, h: t - h[0], np.ones(2), np.zeros(1),
             validate_solution=flag)


def test_cg_diagnoses_a_stationary_saddle():
    # The gradient is zero and the cross derivative lies in the positive
    # eigenspace, so CG alone returned -0.5 without meeting the negative
    # direction; the Lanczos probe finds it.
    def saddle(th, h):
        return th[0] ** 2 - th[1] ** 2 + h[0] * th[0]
    with pytest.raises(ValueError, match=r"Lanczos curvature probe found a "
                                         r"direction v with v\^T H v / v\^T "
                                         r"v = -2 < 0"):
        HSLA(saddle, np.zeros(2), np.zeros(1), factorize_hessian=False)
    # On a minimum the matrix-free answer equals the dense one.
    dense = HSLA(objective, np.zeros(2), np.zeros(1)).get_dopt_dhyper()
    free = HSLA(objective, np.zeros(2), np.zeros(1),
                factorize_hessian=False).get_dopt_dhyper()
    np.testing.assert_allclose(free, dense, atol=1e-10)


def test_taylor_flags_must_be_bools():
    taylor = ParametricSensitivityTaylorExpansion.optimization_objective(
        objective, np.zeros(2), np.zeros(1), order=2)
    with pytest.raises(TypeError, match="add_offset must be True or False"):
        taylor.evaluate_taylor_series(np.array([0.1]), add_offset="no")
    # add_offset=False still means the change only.
    change = taylor.evaluate_taylor_series(np.array([0.1]), add_offset=False)
    np.testing.assert_allclose(change, [0.1, 0.1])


def test_weight_refit_refuses_complex_and_string_weights():
    y = np.array([1.0, 2.0, 6.0])
    ws = WeightSensitivity(lambda t: 0.5 * (y - t[0]) ** 2, np.array([3.0]))
    with pytest.raises(TypeError, match="weights must be a real numeric "
                                        "array; got dtype complex128"):
        ws.refit(np.ones(3) * (1 + 1j))
    with pytest.raises(TypeError, match="weights must be a real numeric"):
        ws.refit(["a", "b", "c"])
    # Real weights: the weighted mean, the closed form.
    w = np.array([1.0, 2.0, 0.5])
    np.testing.assert_allclose(ws.refit(w), [w @ y / w.sum()], rtol=1e-10)


# ------------------------------------------------------------- named arguments
@pytest.mark.parametrize("call, pattern", [
    (lambda: HSLA(objective, np.zeros(2), np.zeros(1), grad_tol=-1),
     "grad_tol must be a positive"),
    (lambda: HSLA(objective, np.zeros(2), np.zeros(1), solver="qr"),
     "solver must be one of"),
    (lambda: HSLA(lambda t, h: 0.5 * anp.sum(t ** 2)
                  - anp.dot(h, np.ones(1)) * t[0], np.zeros(2), np.zeros(3)),
     r"objective_fun raised ValueError at \(opt_par_value of shape \(2,\), "
     r"hyper_par_value of shape \(3,\)\)"),
    (lambda: refit(lambda x: anp.sum(x ** 2), np.ones(2), gtol="small"),
     "gtol must be a positive finite number"),
    (lambda: refold.ArrowheadHessian(
        np.eye(1), np.zeros((2, 1, 1)), np.stack([np.eye(1)] * 2),
        local_inds=np.array([[5], [6]])), "local_inds"),
])
def test_messages_name_the_argument(call, pattern):
    with pytest.raises((ValueError, TypeError), match=pattern):
        call()


# ------------------------------------------------------------------- robustness
def test_refit_treats_nan_as_a_rejected_step():
    # x - log(x) from 10: the first trial steps land at x < 0 (NaN); the
    # minimiser is x = 1.  It used to sit at 3 for 1000 iterations.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        result = refit(lambda x: anp.sum(x - anp.log(x)), np.array([10.0]))
    np.testing.assert_allclose(result.x, [1.0], atol=1e-10)
    assert result.nit < 100


def test_refit_names_the_point_where_the_objective_raised():
    def boom(x):
        if x[0] < 0.5:
            raise RuntimeError("boom")
        return anp.sum((x - 0.2) ** 2)
    with pytest.raises(ValueError, match=r"objective_fun raised RuntimeError "
                                         r"at par = \[") as info:
        refit(boom, np.array([1.0]))
    assert isinstance(info.value.__cause__, RuntimeError)
    y = np.array([1.0, 2.0])

    def loss(t):
        if t[0] < 1.2:
            raise KeyError("k")
        return 0.5 * (y - t[0]) ** 2
    ws = WeightSensitivity(loss, np.array([1.5]))
    with pytest.raises(ValueError, match="objective_fun raised KeyError at "
                                         "par = "):
        ws.refit(np.array([1.0, 1e-3]))


def _log1p_errors(eps, max_order=7):
    f = lambda th, e: anp.sum(anp.exp(th)) - (1 + e[0]) * anp.sum(th)  # noqa
    out = []
    for order in range(1, max_order + 1):
        taylor = ParametricSensitivityTaylorExpansion.optimization_objective(
            f, np.zeros(1), np.zeros(1), order=order)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            pred = taylor.evaluate_taylor_series(np.array([eps]))[0]
        warned = any(issubclass(w.category, TaylorSeriesWarning)
                     for w in caught)
        out.append((order, abs(pred - np.log1p(eps)) / np.log1p(eps),
                    warned))
    return out


@pytest.mark.parametrize("eps, first_warning", [(1.5, 2), (1.2, 3)])
def test_taylor_warns_at_the_first_order_beyond_the_radius(eps,
                                                            first_warning):
    # log(1 + eps) has radius 1; its terms (-1)^(k+1) eps^k / k stop
    # shrinking geometrically outside it.  The warning used to come at
    # order 4 for eps = 1.5 and never up to order 6 for eps = 1.2.
    rows = _log1p_errors(eps)
    warned = [order for order, _, w in rows if w]
    assert warned[0] == first_warning
    assert warned == list(range(first_warning, 8))
    # The truth: the relative errors are large at every warned order.
    assert all(err > 0.3 for order, err, w in rows if w)


@pytest.mark.parametrize("eps", [0.3, 0.6])
def test_taylor_is_quiet_inside_the_radius(eps):
    rows = _log1p_errors(eps)
    assert not any(w for _, _, w in rows)
    assert rows[-1][1] < 0.01        # and converging, against log1p


def test_taylor_quiet_for_vanishing_odd_terms():
    # theta(eps) = cosh(eps) - 1, an entire function with zero odd terms.
    def f(th, e):
        return 0.5 * anp.sum((th - (anp.cosh(e[0]) - 1.0)) ** 2)
    taylor = ParametricSensitivityTaylorExpansion.optimization_objective(
        f, np.zeros(1), np.zeros(1), order=6)
    with warnings.catch_warnings():
        warnings.simplefilter("error", TaylorSeriesWarning)
        for order in range(1, 7):
            pred = taylor.evaluate_taylor_series(np.array([1.0]),
                                                 max_order=order)
    np.testing.assert_allclose(pred, [np.cosh(1.0) - 1.0], rtol=1e-4)


def _ill_conditioned(seed=0):
    """A quadratic with cond(H) = 1e12 and its exact optimum (50 digits)."""
    rng = np.random.default_rng(seed)
    q, _ = np.linalg.qr(rng.standard_normal((4, 4)))
    h = q @ np.diag([1.0, 1e-4, 1e-8, 1e-12]) @ q.T
    h = 0.5 * (h + h.T)
    b = h @ rng.standard_normal(4)
    return h, b, q, np.array([float(x) for x in _exact_solve(h, b)])


def _exact_solve(a, b):
    """``a^-1 b`` in exact rational arithmetic (the floats are exact
    Fractions), by Gauss-Jordan elimination with pivoting on nonzeros."""
    n = len(b)
    rows = [[Fraction(float(v)) for v in a[i]] + [Fraction(float(b[i]))]
            for i in range(n)]
    for col in range(n):
        pivot = next(r for r in range(col, n) if rows[r][col] != 0)
        rows[col], rows[pivot] = rows[pivot], rows[col]
        for r in range(n):
            if r != col and rows[r][col] != 0:
                factor = rows[r][col] / rows[col][col]
                rows[r] = [x - factor * y for x, y in zip(rows[r], rows[col])]
    return [rows[i][n] / rows[i][i] for i in range(n)]


def test_optimum_check_accounts_for_conditioning():
    h, b, q, opt = _ill_conditioned()
    grad = h @ opt - b
    solve = lambda v: np.linalg.solve(h, v)    # noqa: E731
    # Without the conditioning estimate the exact optimum fails: the Newton
    # step of the gradient's rounding error is eps cond(H) |theta| ~ 1e-5.
    plain = check_optimum(grad, solve, opt)
    assert not plain.ok
    report = check_optimum(grad, solve, opt, hvp=lambda v: h @ v)
    assert report.ok and report.conditioning_floor > report.requested_tol
    assert 1e-4 < report.conditioning_floor / (8 * 2.2e-16 * 1e12) < 10

    def obj(t, e):
        return 0.5 * anp.dot(t, anp.dot(h, t)) - anp.dot(b, t) + 0 * e[0]
    HSLA(obj, opt, np.zeros(1))                        # accepted
    with pytest.raises(ValueError, match=r"conditioning floor 8 eps cond\(H\)"):
        HSLA(obj, opt + 0.1 * q[:, 0], np.zeros(1))    # a real miss


def test_optimum_check_accounts_for_float32_input():
    weights = np.array([1.0, 10.0, 100.0])
    exact = np.array([0.1234567, 3.3333333, -2.7182818])

    def kl(t):
        return 0.5 * anp.sum(weights * (t - exact) ** 2)
    rounded = exact.astype(np.float32)
    # Rounding to float32 moves the optimum by up to eps32 / 2 relative:
    # more than LR's default grad_tol = 1e-8, which used to reject it.
    assert np.max(np.abs(rounded - exact)) > 1e-8
    refold.LinearResponseCovariances(kl, rounded)
    refold.LinearResponseCovariances(kl, rounded.astype(float))
    # A float64 point off by 1e-6 still fails, and the message says which
    # floors were used.
    with pytest.raises(ValueError, match="input-precision floor 4.4e-16"):
        refold.LinearResponseCovariances(kl, exact + 1e-6)


def test_cross_column_check_accepts_only_autograd_zero():
    from refold.sensitivity._checks import check_cross_column
    np.testing.assert_array_equal(
        check_cross_column(0.0, (3,), "g"), np.zeros(3))
    np.testing.assert_array_equal(
        check_cross_column(np.arange(3.0), (3,), "g"), np.arange(3.0))
    with pytest.raises(ValueError, match=r"g: a derivative in the "
                                         r"hyperparameter has shape \(\)"):
        check_cross_column(-1.0, (3,), "g")
    with pytest.raises(ValueError, match=r"has shape \(2,\), not \(3,\)"):
        check_cross_column(np.ones(2), (3,), "g")
