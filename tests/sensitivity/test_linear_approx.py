"""Tests of refold.sensitivity.linear_approx (first-order sensitivity)."""
import tracemalloc

import autograd
import autograd.numpy as anp
import numpy as np
import pytest
import scipy.sparse as sps

from refold.sensitivity.linear_approx import (
    EstimatingEquationLinearApproximation,
    HyperparameterSensitivityLinearApproximation)
from refold.sensitivity.refit import refit

HSLA = HyperparameterSensitivityLinearApproximation
EELA = EstimatingEquationLinearApproximation

# Tight CG so that every solver path agrees to 1e-8.
CG_OPTIONS = dict(cg_opts=dict(rtol=1e-13, atol=0.0))


# ---------------------------------------------------------------------------
# A nonlinear problem: logistic regression with a Gaussian prior whose
# log-scale (hyper_par[0]) and mean (hyper_par[1]) are hyperparameters.
# ---------------------------------------------------------------------------
def _logistic_problem(seed=0, n_obs=150, dim=6):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n_obs, dim))
    beta = rng.normal(size=dim)
    y = np.where(rng.uniform(size=n_obs) < 1 / (1 + np.exp(-x @ beta)),
                 1.0, -1.0)

    def objective(theta, hyper):
        loglik = anp.sum(anp.logaddexp(0.0, -y * (x @ theta)))
        prior = 0.5 * anp.sum((theta - hyper[1]) ** 2) * anp.exp(
            -2.0 * hyper[0])
        return loglik + prior

    return objective, dim


OBJ, DIM = _logistic_problem()
HYPER0 = np.array([0.1, 0.2])


def _opt(hyper, init=None):
    init = np.zeros(DIM) if init is None else init
    return refit(OBJ, init, hyper, gtol=1e-12).x


OPT0 = _opt(HYPER0)


def _fd_dopt_dhyper(hyper0, delta=1e-4):
    cols = []
    for e in np.eye(hyper0.shape[0]):
        plus = _opt(hyper0 + delta * e, OPT0)
        minus = _opt(hyper0 - delta * e, OPT0)
        cols.append((plus - minus) / (2 * delta))
    return np.stack(cols, axis=1)


FD_DOPT = _fd_dopt_dhyper(HYPER0)


def test_dopt_dhyper_matches_finite_differences_of_refits():
    approx = HSLA(OBJ, OPT0, HYPER0)
    sens = approx.get_dopt_dhyper()
    assert sens.shape == (DIM, 2)
    np.testing.assert_allclose(sens, FD_DOPT, rtol=1e-6, atol=1e-8)
    # The prediction is the linear extrapolation and approximates a refit.
    new = HYPER0 + np.array([0.01, -0.01])
    pred = approx.predict_opt_par_from_hyper_par(new)
    np.testing.assert_allclose(pred, OPT0 + sens @ (new - HYPER0))
    truth = _opt(new, OPT0)
    assert np.max(np.abs(pred - truth)) < 1e-2 * np.max(np.abs(truth - OPT0))


def _all_solver_paths():
    dense_h = autograd.hessian(OBJ)(OPT0, HYPER0)
    return {
        "dense_cholesky": HSLA(OBJ, OPT0, HYPER0),
        "given_dense": HSLA(OBJ, OPT0, HYPER0, hessian_at_opt=dense_h),
        "sparse": HSLA(OBJ, OPT0, HYPER0,
                       hessian_at_opt=sps.csc_matrix(dense_h)),
        "cg_matrix_free": HSLA(OBJ, OPT0, HYPER0, factorize_hessian=False,
                               solver_options=CG_OPTIONS),
        "cg_kind": HSLA(OBJ, OPT0, HYPER0, solver="cg",
                        solver_options=CG_OPTIONS),
        "lu": HSLA(OBJ, OPT0, HYPER0, solver="lu"),
        "callable": HSLA(OBJ, OPT0, HYPER0,
                         solver=lambda b: np.linalg.solve(dense_h, b)),
    }


def test_every_solver_path_gives_the_same_answer():
    paths = _all_solver_paths()
    ref = paths.pop("dense_cholesky").get_dopt_dhyper()
    for name, approx in paths.items():
        np.testing.assert_allclose(approx.get_dopt_dhyper(), ref, rtol=0,
                                   atol=1e-8, err_msg=name)


def test_given_cross_hessian_is_used():
    cross = np.ones((DIM, 2))
    approx = HSLA(OBJ, OPT0, HYPER0, cross_hess_at_opt=cross)
    hess = autograd.hessian(OBJ)(OPT0, HYPER0)
    np.testing.assert_allclose(approx.get_dopt_dhyper(),
                               -np.linalg.solve(hess, cross), rtol=1e-10)


def test_hyper_par_objective_fun_is_used_for_the_cross_hessian():
    # The prior alone carries all the dependence on the hyperparameter.
    def prior(theta, hyper):
        return 0.5 * anp.sum((theta - hyper[1]) ** 2) * anp.exp(
            -2.0 * hyper[0])

    approx = HSLA(OBJ, OPT0, HYPER0, hyper_par_objective_fun=prior)
    np.testing.assert_allclose(approx.get_dopt_dhyper(), FD_DOPT, rtol=1e-6,
                               atol=1e-8)


def test_hessian_at_opt_matches_autograd():
    approx = HSLA(OBJ, OPT0, HYPER0)
    np.testing.assert_allclose(approx.get_hessian_at_opt(),
                               autograd.hessian(OBJ)(OPT0, HYPER0),
                               rtol=1e-12)
    free = HSLA(OBJ, OPT0, HYPER0, factorize_hessian=False,
                solver_options=CG_OPTIONS)
    np.testing.assert_allclose(free.get_hessian_at_opt(),
                               autograd.hessian(OBJ)(OPT0, HYPER0),
                               rtol=1e-12)


def _fd_gradient(fun, x0, delta=1e-4):
    return np.array([(fun(x0 + delta * e) - fun(x0 - delta * e)) / (2 * delta)
                     for e in np.eye(x0.shape[0])])


def test_opt_par_function_derivatives_match_finite_differences():
    approx = HSLA(OBJ, OPT0, HYPER0)
    opt_fun = approx.get_opt_par_function()

    # A nonlinear function of the optimum that also uses the hyperparameter.
    def stat(theta, hyper):
        return anp.sum(anp.sin(theta) * theta) + hyper[0] * theta[0]

    np.testing.assert_allclose(opt_fun(HYPER0), OPT0)
    truth = _fd_gradient(lambda h: stat(_opt(h, OPT0), h), HYPER0)
    rev = autograd.grad(lambda h: stat(opt_fun(h), h))(HYPER0)
    np.testing.assert_allclose(rev, truth, rtol=1e-6, atol=1e-8)
    fwd = np.array([
        autograd.make_jvp(lambda h: stat(opt_fun(h), h))(HYPER0)(e)[1]
        for e in np.eye(2)])
    np.testing.assert_allclose(fwd, truth, rtol=1e-6, atol=1e-8)
    # Vector output, reverse mode: the Jacobian itself.
    jac = autograd.jacobian(opt_fun)(HYPER0)
    np.testing.assert_allclose(jac, FD_DOPT, rtol=1e-6, atol=1e-8)


def test_opt_par_function_refuses_other_points_and_second_derivatives():
    opt_fun = HSLA(OBJ, OPT0, HYPER0).get_opt_par_function()
    with pytest.raises(ValueError, match="base hyper_par.*predict"):
        opt_fun(HYPER0 + 0.1)
    with pytest.raises(ValueError, match="hyper_par must have shape"):
        opt_fun(np.zeros(3))
    with pytest.raises(ValueError, match="second derivatives"):
        autograd.hessian(lambda h: anp.sum(opt_fun(h) ** 2))(HYPER0)
    with pytest.raises(ValueError, match="second derivatives"):
        # A linear function of the optimum: dropping d2 opt/dh2 would give
        # a silent zero, so this must refuse too.
        autograd.hessian(lambda h: anp.sum(opt_fun(h)))(HYPER0)


def test_set_base_values_refactorises():
    approx = HSLA(OBJ, OPT0, HYPER0)
    hyper1 = HYPER0 + np.array([0.5, -0.4])
    opt1 = _opt(hyper1, OPT0)
    fresh = HSLA(OBJ, opt1, hyper1).get_dopt_dhyper()
    old = approx.get_dopt_dhyper()
    assert np.max(np.abs(fresh - old)) > 1e-3  # the answer must move
    approx.set_base_values(opt1, hyper1, None, None)
    np.testing.assert_allclose(approx.get_dopt_dhyper(), fresh, rtol=1e-10)
    np.testing.assert_allclose(approx.get_hessian_at_opt(),
                               autograd.hessian(OBJ)(opt1, hyper1),
                               rtol=1e-12)
    np.testing.assert_allclose(approx.predict_opt_par_from_hyper_par(hyper1),
                               opt1)
    # Also for the matrix-free path.
    free = HSLA(OBJ, OPT0, HYPER0, factorize_hessian=False,
                solver_options=CG_OPTIONS)
    free.set_base_values(opt1, hyper1)
    np.testing.assert_allclose(free.get_dopt_dhyper(), fresh, atol=1e-8)


def test_set_base_values_checks_the_new_optimum_and_keeps_the_old_state():
    approx = HSLA(OBJ, OPT0, HYPER0)
    before = approx.get_dopt_dhyper()
    with pytest.raises(ValueError, match="opt_par_value is not an optimum"):
        approx.set_base_values(OPT0, HYPER0 + 0.3)
    np.testing.assert_array_equal(approx.get_dopt_dhyper(), before)


def test_user_solver_cannot_go_stale():
    hess = autograd.hessian(OBJ)(OPT0, HYPER0)
    approx = HSLA(OBJ, OPT0, HYPER0, solver=lambda b: np.linalg.solve(hess, b))
    hyper1 = HYPER0 + 0.3
    opt1 = _opt(hyper1, OPT0)
    with pytest.raises(ValueError, match="solver="):
        approx.set_base_values(opt1, hyper1)
    approx.set_base_values(opt1, hyper1, solver="cholesky")
    np.testing.assert_allclose(approx.get_dopt_dhyper(),
                               HSLA(OBJ, opt1, hyper1).get_dopt_dhyper(),
                               rtol=1e-10)


# ---------------------------------------------------------------------------
# The matrix-free path never forms the dense Hessian.
# ---------------------------------------------------------------------------
def _big_problem(dim):
    # At hyper = 0 the optimum is theta = 0, H = I + 0.01 * 11^T and
    # d2f/dtheta dhyper = -1, so dopt/dhyper = 1 / (1 + 0.01 * dim).
    def objective(theta, hyper):
        return (anp.sum(anp.logaddexp(theta, -theta))
                + 0.005 * anp.sum(theta) ** 2
                - hyper[0] * anp.sum(anp.sin(theta)))
    return objective


def test_matrix_free_path_never_forms_a_dense_hessian(monkeypatch):
    dim = 600
    objective = _big_problem(dim)
    opt0, hyper0 = np.zeros(dim), np.zeros(1)
    truth = np.full((dim, 1), 1.0 / (1.0 + 0.01 * dim))

    # Control: the dense path allocates at least one D x D array, so the
    # memory check below can fail.
    tracemalloc.start()
    dense = HSLA(objective, opt0, hyper0)
    _, peak_dense = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert peak_dense >= dim * dim * 8
    np.testing.assert_allclose(dense.get_dopt_dhyper(), truth, rtol=1e-10)

    def forbidden(*args, **kwargs):
        raise AssertionError("a dense Hessian/Jacobian was requested")

    monkeypatch.setattr(autograd, "hessian", forbidden)
    monkeypatch.setattr(autograd, "jacobian", forbidden)
    tracemalloc.start()
    free = HSLA(objective, opt0, hyper0, factorize_hessian=False,
                solver_options=CG_OPTIONS)
    _, peak_free = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert peak_free < dim * dim * 8 / 4
    np.testing.assert_allclose(free.get_dopt_dhyper(), truth, rtol=1e-8)


def test_factorize_false_conflicts_with_a_factorising_kind():
    with pytest.raises(ValueError, match="factorize_hessian=False"):
        HSLA(OBJ, OPT0, HYPER0, factorize_hessian=False, solver="cholesky")


# ---------------------------------------------------------------------------
# Hyperparameter shapes
# ---------------------------------------------------------------------------
def test_wrong_length_hyperparameter_raises():
    approx = HSLA(OBJ, OPT0, HYPER0)
    with pytest.raises(ValueError, match="new_hyper_par_value.*length 2"):
        approx.predict_opt_par_from_hyper_par(np.array([0.1]))
    with pytest.raises(ValueError, match="new_hyper_par_value.*length 2"):
        approx.predict_opt_par_from_hyper_par(np.zeros(3))
    with pytest.raises(ValueError, match="new_hyper_par_value"):
        approx.predict_opt_par_from_hyper_par(0.1)  # no broadcasting
    with pytest.raises(ValueError, match="new_hyper_par_value.*1-d"):
        approx.predict_opt_par_from_hyper_par(np.zeros((2, 1)))
    with pytest.raises(ValueError, match="new_hyper_par_value.*finite"):
        approx.predict_opt_par_from_hyper_par(np.array([np.nan, 0.0]))
    with pytest.raises(TypeError, match="new_hyper_par_value"):
        approx.predict_opt_par_from_hyper_par(np.array(["a", "b"]))


def test_scalar_hyperparameter_only_for_length_one():
    def objective(theta, hyper):
        return anp.sum((theta - hyper[0]) ** 2) + anp.sum(theta ** 4)

    approx = HSLA(objective, np.zeros(2), np.array([0.0]))
    np.testing.assert_allclose(approx.get_dopt_dhyper(), [[1.0], [1.0]])
    np.testing.assert_allclose(approx.predict_opt_par_from_hyper_par(0.1),
                               approx.predict_opt_par_from_hyper_par([0.1]))
    with pytest.raises(ValueError, match="hyper_par_value.*scalar"):
        HSLA(objective, np.zeros(2), 0.0)
    with pytest.raises(ValueError, match="opt_par_value.*1-d"):
        HSLA(objective, np.zeros((2, 1)), np.array([0.0]))


def test_inputs_are_copied_not_mutated():
    opt, hyper = OPT0.copy(), HYPER0.copy()
    approx = HSLA(OBJ, opt, hyper)
    opt[:] = 5.0
    hyper[:] = 5.0
    np.testing.assert_allclose(approx.predict_opt_par_from_hyper_par(HYPER0),
                               OPT0)
    sens = approx.get_dopt_dhyper()
    sens[:] = 0.0
    assert np.any(approx.get_dopt_dhyper() != 0.0)


# ---------------------------------------------------------------------------
# Bad input
# ---------------------------------------------------------------------------
def test_non_optimum_reports_the_step():
    with pytest.raises(ValueError,
                       match=r"opt_par_value is not an optimum: the Newton "
                             r"step .* size [0-9.e-]+ .*validate_optimum="
                             r"False"):
        HSLA(OBJ, OPT0 + 1e-3, HYPER0)
    # Opting out works, and vittles' keyword grad_tol sets the tolerance.
    HSLA(OBJ, OPT0 + 1e-3, HYPER0, validate_optimum=False)
    HSLA(OBJ, OPT0 + 1e-3, HYPER0, grad_tol=1e-1)


def test_nan_gradient_fails():
    def objective(theta, hyper):
        return anp.sum(theta ** 2) + hyper[0] * anp.sqrt(theta[0] - 1.0)

    with np.errstate(invalid="ignore"), \
            pytest.raises(ValueError, match="opt_par_value.*not finite"):
        HSLA(objective, np.zeros(2), np.array([1.0]))


def test_indefinite_hessian_fails():
    def objective(theta, hyper):
        return theta[0] ** 2 - theta[1] ** 2 + hyper[0] * theta[0] * theta[1]

    with pytest.raises(ValueError, match="Hessian of objective_fun.*not "
                                         "positive definite"):
        HSLA(objective, np.zeros(2), np.array([0.0]))
    # On the matrix-free path CG meets the negative curvature.
    with pytest.raises(ValueError, match="Hessian of objective_fun.*not "
                                         "positive definite"):
        HSLA(lambda t, h: objective(t, h) + h[0] * t[1], np.zeros(2),
             np.array([0.0]), factorize_hessian=False)


def test_singular_hessian_fails():
    def objective(theta, hyper):
        s = theta[0] + theta[1]
        return s ** 2 + s ** 4 + hyper[0] * anp.sin(theta[0])

    with pytest.raises(ValueError, match="Hessian of objective_fun.*"
                                         "singular.*solver_options"):
        HSLA(objective, np.zeros(2), np.array([0.0]),
             validate_optimum=False)
    # The documented opt-in solves anyway (with a warning).
    with pytest.warns(UserWarning, match="pseudo-inverse"):
        approx = HSLA(objective, np.zeros(2), np.array([0.0]),
                      solver_options=dict(on_failure="pinv"))
    # Minimum-norm solution -H^+ c: the cross term c = (cos 0, 0) projected
    # on the non-null direction (1, 1) / sqrt(2), divided by its eigenvalue 4.
    np.testing.assert_allclose(approx.get_dopt_dhyper()[:, 0],
                               [-0.125, -0.125], atol=1e-12)


def test_wrong_shaped_hessian_and_cross_hessian():
    with pytest.raises(ValueError, match=r"hessian_at_opt.*\(6, 6\)"):
        HSLA(OBJ, OPT0, HYPER0, hessian_at_opt=np.eye(5))
    with pytest.raises(ValueError, match=r"hessian_at_opt.*\(6, 6\)"):
        HSLA(OBJ, OPT0, HYPER0, hessian_at_opt=sps.eye(7))
    with pytest.raises(ValueError, match=r"cross_hess_at_opt.*\(6, 2\)"):
        HSLA(OBJ, OPT0, HYPER0, cross_hess_at_opt=np.ones((6, 1)))
    with pytest.raises(ValueError, match="cross_hess_at_opt.*finite"):
        HSLA(OBJ, OPT0, HYPER0, cross_hess_at_opt=np.full((6, 2), np.nan))


def test_non_scalar_objective():
    with pytest.raises(ValueError, match="objective_fun must return a scalar"):
        HSLA(lambda t, h: t * h[0], OPT0, HYPER0)


def test_bad_solver_argument():
    with pytest.raises(TypeError, match="solver"):
        HSLA(OBJ, OPT0, HYPER0, solver=3)
    with pytest.raises(TypeError, match="factorize_hessian"):
        HSLA(OBJ, OPT0, HYPER0, factorize_hessian="no")


# ---------------------------------------------------------------------------
# Estimating equations: instrumental variables (non-symmetric Jacobian)
# ---------------------------------------------------------------------------
def _iv_problem(seed=3, n_obs=400):
    rng = np.random.default_rng(seed)
    z = rng.normal(size=(n_obs, 3))
    common = rng.normal(size=n_obs)
    x = z @ np.array([[1.0, 0.3, 0.0], [0.2, 1.0, 0.1], [0.0, 0.4, 1.0]]) \
        + common[:, None] * np.array([0.5, 0.2, -0.3])
    beta = np.array([0.5, -0.3, 0.2])
    y = np.tanh(x @ beta) + 0.3 * common + 0.1 * rng.normal(size=n_obs)

    def ee(beta, hyper):
        # Moment conditions E[z (y - tanh(x b) - hyper * x_0)] = 0.
        resid = y - anp.tanh(x @ beta) - hyper[0] * x[:, 0]
        return z.T @ resid / n_obs

    return ee


IV_EE = _iv_problem()


def _iv_root(hyper, init=np.zeros(3)):
    beta = init.copy()
    jac = autograd.jacobian(IV_EE)
    for _ in range(50):  # plain Newton, independent of refold
        beta = beta - np.linalg.solve(jac(beta, hyper), IV_EE(beta, hyper))
    assert np.max(np.abs(IV_EE(beta, hyper))) < 1e-14
    return beta


def test_instrumental_variables_matches_finite_differences():
    hyper0 = np.array([0.1])
    root0 = _iv_root(hyper0)
    jac = autograd.jacobian(IV_EE)(root0, hyper0)
    assert np.max(np.abs(jac - jac.T)) > 1e-2  # genuinely non-symmetric
    approx = EELA(IV_EE, root0, hyper0)
    delta = 1e-5
    fd = (_iv_root(hyper0 + delta, root0)
          - _iv_root(hyper0 - delta, root0)) / (2 * delta)
    np.testing.assert_allclose(approx.get_dinput_dhyper()[:, 0], fd,
                               rtol=1e-6, atol=1e-9)
    # Forcing LU gives the same; claiming symmetry is refused.
    forced = EELA(IV_EE, root0, hyper0, symmetric=False)
    np.testing.assert_allclose(forced.get_dinput_dhyper(),
                               approx.get_dinput_dhyper(), rtol=1e-12)
    with pytest.raises(ValueError, match="not symmetric"):
        EELA(IV_EE, root0, hyper0, symmetric=True)
    # The input function differentiates like the finite differences.
    in_fun = approx.get_input_par_function()
    np.testing.assert_allclose(
        autograd.jacobian(in_fun)(hyper0)[:, 0], fd, rtol=1e-6, atol=1e-9)
    new = hyper0 + 0.01
    np.testing.assert_allclose(
        approx.predict_input_par_from_hyper_par(new),
        root0 + approx.get_dinput_dhyper() @ (new - hyper0))


def test_estimating_equation_set_location_and_solution_check():
    hyper0, hyper1 = np.array([0.1]), np.array([0.4])
    root0, root1 = _iv_root(hyper0), _iv_root(hyper1)
    approx = EELA(IV_EE, root0, hyper0)
    approx.set_location(root1, hyper1, None)
    np.testing.assert_allclose(approx.get_dinput_dhyper(),
                               EELA(IV_EE, root1, hyper1).get_dinput_dhyper(),
                               rtol=1e-10)
    with pytest.raises(ValueError, match="input_val0 is not an optimum.*"
                                         "validate_solution=False"):
        EELA(IV_EE, root0 + 1e-3, hyper0)
    EELA(IV_EE, root0 + 1e-3, hyper0, validate_solution=False)


def test_estimating_equation_user_solver_is_used():
    hyper0 = np.array([0.1])
    root0 = _iv_root(hyper0)
    jac = autograd.jacobian(IV_EE)(root0, hyper0)
    calls = []

    def solver(b):
        calls.append(np.shape(b))
        return np.linalg.solve(jac, b)

    approx = EELA(IV_EE, root0, hyper0, solver)
    assert calls  # used for the check and the sensitivity
    np.testing.assert_allclose(approx.get_dinput_dhyper(),
                               EELA(IV_EE, root0, hyper0).get_dinput_dhyper(),
                               rtol=1e-12)
    b = np.arange(3.0)
    np.testing.assert_allclose(approx.hess_solver()(b), solver(b))
    # A user solver returning NaN is caught, not propagated.
    with pytest.raises(ValueError, match="non-finite"):
        EELA(IV_EE, root0, hyper0, lambda b: np.full(np.shape(b), np.nan),
             validate_solution=False)
    with pytest.raises(ValueError, match="not both"):
        EELA(IV_EE, root0, hyper0, solver, solver="lu")


def test_estimating_equation_gradient_agrees_with_objective_class():
    grad = autograd.grad(OBJ)
    ee = EELA(grad, OPT0, HYPER0)
    np.testing.assert_allclose(ee.get_dinput_dhyper(),
                               HSLA(OBJ, OPT0, HYPER0).get_dopt_dhyper(),
                               rtol=1e-10)


def test_estimating_equation_negative_definite_jacobian():
    # The score of a log likelihood: symmetric, negative definite.
    neg = EELA(lambda t, h: -autograd.grad(OBJ)(t, h), OPT0, HYPER0)
    np.testing.assert_allclose(neg.get_dinput_dhyper(), FD_DOPT, rtol=1e-6,
                               atol=1e-8)


def test_estimating_equation_wrong_cross_shape():
    hyper0 = np.array([0.1])
    root0 = _iv_root(hyper0)
    with pytest.raises(ValueError, match="estimating_equation_jac0"):
        EELA(IV_EE, root0, hyper0, estimating_equation_jac0=np.ones((3, 2)))


# ---------------------------------------------------------------------------
# Agreement with vittles 0.173 (skipped when it is not importable)
# ---------------------------------------------------------------------------
def _vittles():
    import numpy
    try:
        if not hasattr(numpy, "product"):
            numpy.product = numpy.prod
            anp.product = anp.prod
        from vittles import sensitivity_lib
    except Exception as err:  # pragma: no cover - depends on environment
        pytest.skip(f"vittles not importable: {err}")
    return sensitivity_lib


def test_matches_vittles():
    vittles = _vittles()
    ours = HSLA(OBJ, OPT0, HYPER0).get_dopt_dhyper()
    theirs = vittles.HyperparameterSensitivityLinearApproximation(
        OBJ, OPT0, HYPER0, validate_optimum=True).get_dopt_dhyper()
    np.testing.assert_allclose(ours, theirs, rtol=1e-10, atol=1e-12)
    hess = autograd.hessian(OBJ)(OPT0, HYPER0)
    theirs_ee = vittles.EstimatingEquationLinearApproximation(
        autograd.grad(OBJ), OPT0, HYPER0,
        lambda b: np.linalg.solve(hess, b)).get_dinput_dhyper()
    np.testing.assert_allclose(EELA(autograd.grad(OBJ), OPT0,
                                    HYPER0).get_dinput_dhyper(),
                               theirs_ee, rtol=1e-10, atol=1e-12)
