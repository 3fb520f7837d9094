"""OptimizationObjective and PreconditionedFunction."""
import autograd
import autograd.numpy as anp
import numpy as np
import pytest
import scipy.optimize
import scipy.sparse as sp
from autograd.extend import defvjp, primitive
from autograd.test_util import check_grads

from refold.patterns.containers import PatternDict
from refold.patterns.function_wrappers import FlattenFunctionInput
from refold.patterns.numeric import NumericVectorPattern
from refold.patterns.optimization import (
    OptimizationObjective, PreconditionedFunction, truncate_eigenvalues)
from refold.patterns.psd import PSDSymmetricMatrixPattern


def random_spd(dim, seed, evals=None):
    rng = np.random.default_rng(seed)
    q, _ = np.linalg.qr(rng.standard_normal((dim, dim)))
    if evals is None:
        evals = np.exp(rng.uniform(-2, 2, dim))
    return (q * evals) @ q.T


def quartic(h, center):
    """A convex objective with minimum at ``center`` and Hessian ``h`` there."""
    def fun(x):
        d = x - center
        return 0.5 * anp.dot(d, anp.dot(h, d)) + anp.sum(d ** 4)
    return fun


# ----------------------------------------------------------------------
# OptimizationObjective.

def test_counts_prints_and_logs_exactly():
    lines = []
    obj = OptimizationObjective(lambda x: anp.sum(x ** 2), print_every=3,
                                log_every=2, print_fun=lines.append)
    xs = [np.full(2, float(i)) for i in range(7)]
    for x in xs:
        assert obj.f(x) == pytest.approx(2.0 * x[0] ** 2)
    assert obj.num_f_evals() == obj.num_iterations() == 7
    assert lines == ["Iter 0: f = 0.00000000", "Iter 3: f = 18.00000000",
                     "Iter 6: f = 72.00000000"]
    assert [entry[0] for entry in obj.optimization_log] == [0, 2, 4, 6]
    for num, x, f_val in obj.optimization_log:
        np.testing.assert_array_equal(x, xs[num])
        assert f_val == 2.0 * num ** 2


def test_log_keeps_copies_of_x():
    obj = OptimizationObjective(lambda x: anp.sum(x), print_every=0,
                                log_every=1)
    x = np.ones(3)
    obj.f(x)
    x[:] = 5.0          # an optimiser reusing its array
    np.testing.assert_array_equal(obj.optimization_log[0][1], np.ones(3))


def test_print_every_zero_never_prints(capsys):
    def fail(line):
        raise AssertionError("printed " + line)
    obj = OptimizationObjective(lambda x: anp.sum(x), print_every=0,
                                print_fun=fail)
    for _ in range(4):
        obj.f(np.ones(2))
    assert obj.num_f_evals() == 4
    assert capsys.readouterr().out == ""


def test_default_print_goes_to_stdout(capsys):
    obj = OptimizationObjective(lambda x: anp.sum(x))
    obj.f(np.ones(2))
    obj(np.ones(2))     # calling the object is f
    assert capsys.readouterr().out == \
        "Iter 0: f = 2.00000000\nIter 1: f = 2.00000000\n"


def test_resets_and_setters():
    lines = []
    obj = OptimizationObjective(lambda x: anp.sum(x), print_every=1,
                                log_every=1, print_fun=lines.append)
    obj.f(np.ones(1))
    obj.f(np.ones(1))
    obj.reset_iteration_count()
    assert obj.num_f_evals() == 0 and len(obj.optimization_log) == 2
    obj.reset_log()
    assert obj.optimization_log == []
    obj.set_print_every(2)
    obj.set_log_every(0)
    for _ in range(3):
        obj.f(np.ones(1))
    assert lines[2:] == ["Iter 0: f = 1.00000000", "Iter 2: f = 1.00000000"]
    assert obj.optimization_log == []
    obj.reset()
    assert obj.num_f_evals() == 0 and obj.optimization_log == []


def test_derivatives_do_not_count_and_are_right():
    h = random_spd(4, 0)
    center = np.arange(4.0)
    fun = quartic(h, center)
    obj = OptimizationObjective(fun, print_every=0)
    x = center + 0.3
    d = x - center
    np.testing.assert_allclose(obj.grad(x), h @ d + 4 * d ** 3, rtol=1e-12)
    np.testing.assert_allclose(obj.hessian(x), h + np.diag(12 * d ** 2),
                               rtol=1e-12)
    v = np.linspace(-1, 1, 4)
    np.testing.assert_allclose(obj.hessian_vector_product(x, v),
                               (h + np.diag(12 * d ** 2)) @ v, rtol=1e-12)
    assert obj.num_f_evals() == 0


def test_f_under_autograd_counts_once_and_prints_a_number():
    lines = []
    obj = OptimizationObjective(lambda x: anp.sum(x ** 3), print_every=1,
                                print_fun=lines.append)
    np.testing.assert_allclose(autograd.grad(obj.f)(np.ones(2)), [3.0, 3.0])
    assert obj.num_f_evals() == 1
    assert lines == ["Iter 0: f = 2.00000000"]


def test_extra_arguments_pass_through():
    obj = OptimizationObjective(lambda x, a: a * anp.sum(x ** 2),
                                print_every=0)
    x = np.array([1.0, 2.0])
    assert obj.f(x, 3.0) == pytest.approx(15.0)
    np.testing.assert_allclose(obj.grad(x, 3.0), 6.0 * x)
    np.testing.assert_allclose(
        obj.hessian_vector_product(x, np.array([1.0, 0.0]), 3.0), [6.0, 0.0])


def test_hvp_falls_back_without_forward_mode():
    @primitive
    def cube(x):
        return x ** 3
    defvjp(cube, lambda ans, x: lambda g: g * 3 * x ** 2)
    obj = OptimizationObjective(lambda x: anp.sum(cube(x)), print_every=0)
    x = np.array([1.0, 2.0])
    np.testing.assert_allclose(
        obj.hessian_vector_product(x, np.array([1.0, 1.0])), 6 * x)


def test_objective_bad_input():
    with pytest.raises(TypeError, match="objective_fun"):
        OptimizationObjective(3.0)
    with pytest.raises(ValueError, match="print_every"):
        OptimizationObjective(anp.sum, print_every=-1)
    with pytest.raises(TypeError, match="log_every"):
        OptimizationObjective(anp.sum, log_every=1.5)
    with pytest.raises(TypeError, match="print_fun"):
        OptimizationObjective(anp.sum, print_fun="stdout")
    obj = OptimizationObjective(anp.sum, print_every=0)
    with pytest.raises(ValueError, match="vector"):
        obj.hessian_vector_product(np.ones(3), np.ones(2))
    assert "print_every=0" in repr(obj)


# ----------------------------------------------------------------------
# PreconditionedFunction: dense Hessians.

def test_identity_preconditioner_by_default():
    fun = quartic(random_spd(3, 1), np.zeros(3))
    pf = PreconditionedFunction(fun)
    x = np.array([0.1, -0.2, 0.3])
    assert pf(x) == fun(x)
    np.testing.assert_array_equal(pf.precondition(x), x)
    np.testing.assert_array_equal(pf.get_preconditioner(3), np.eye(3))


@pytest.mark.parametrize("use_x", [True, False])
def test_hessian_preconditioner_gives_identity_hessian(use_x):
    dim = 5
    h = random_spd(dim, 2, evals=np.array([1e-3, 0.1, 1.0, 10.0, 1e3]))
    center = np.linspace(-1, 1, dim)
    fun = quartic(h, center)
    pf = PreconditionedFunction(fun)
    if use_x:
        used = pf.set_preconditioner_with_hessian(x=center)
    else:
        used = pf.set_preconditioner_with_hessian(hessian=h)
    np.testing.assert_allclose(used, h, rtol=1e-10, atol=1e-10)
    center_c = pf.precondition(center)
    np.testing.assert_allclose(pf.unprecondition(center_c), center,
                               atol=1e-12)
    np.testing.assert_allclose(autograd.hessian(pf)(center_c), np.eye(dim),
                               atol=1e-9)
    np.testing.assert_allclose(autograd.grad(pf)(center_c), 0.0, atol=1e-12)
    # A is the symmetric inverse square root of H.
    a = pf.get_preconditioner(dim)
    np.testing.assert_allclose(a, a.T, atol=1e-12)
    np.testing.assert_allclose(a @ a @ h, np.eye(dim), atol=1e-8)
    np.testing.assert_allclose(a @ pf.get_preconditioner_inv(dim), np.eye(dim),
                               atol=1e-10)
    check_grads(pf, modes=["fwd", "rev"], order=2)(center_c + 0.1)


def test_eigenvalue_clipping():
    dim = 4
    evals = np.array([-2.0, 1e-4, 1.0, 50.0])
    h = random_spd(dim, 3, evals=evals)
    center = np.zeros(dim)
    fun = lambda x: 0.5 * anp.dot(x, anp.dot(h, x))  # noqa: E731
    pf = PreconditionedFunction(fun)
    used = pf.set_preconditioner_with_hessian(hessian=h, ev_min=0.5,
                                              ev_max=10.0)
    clipped = np.array([0.5, 0.5, 1.0, 10.0])
    np.testing.assert_allclose(np.linalg.eigvalsh(used), clipped, rtol=1e-10)
    # The preconditioned Hessian A H A has eigenvalues evals / clipped.
    hess_c = autograd.hessian(pf)(pf.precondition(center))
    np.testing.assert_allclose(np.linalg.eigvalsh(hess_c),
                               np.sort(evals / clipped), rtol=1e-9,
                               atol=1e-12)
    np.testing.assert_allclose(truncate_eigenvalues(evals, 0.5, 10.0), clipped)
    np.testing.assert_allclose(truncate_eigenvalues(evals), evals)


def test_hessian_input_not_mutated():
    h = random_spd(3, 4)
    h[0, 1] += 1e-12    # within the symmetry tolerance
    copy = h.copy()
    PreconditionedFunction(anp.sum).set_preconditioner_with_hessian(
        hessian=h, ev_min=0.1)
    np.testing.assert_array_equal(h, copy)


# ----------------------------------------------------------------------
# PreconditionedFunction: sparse Hessians and matrices.

def tridiagonal_spd(dim):
    main = 2.0 + np.linspace(0.0, 1.0, dim)
    off = -0.9 * np.ones(dim - 1)
    return sp.diags([off, main, off], [-1, 0, 1], format="csr")


def test_sparse_hessian_preconditioner_gives_identity_hessian():
    dim = 8
    h = tridiagonal_spd(dim)
    center = np.linspace(0.5, -0.5, dim)
    fun = quartic(h.toarray(), center)
    pf = PreconditionedFunction(fun)
    pf.set_preconditioner_with_hessian(hessian=h)
    center_c = pf.precondition(center)
    np.testing.assert_allclose(pf.unprecondition(center_c), center,
                               atol=1e-12)
    np.testing.assert_allclose(autograd.hessian(pf)(center_c), np.eye(dim),
                               atol=1e-10)
    a = pf.get_preconditioner(dim)
    np.testing.assert_allclose(a.T @ h.toarray() @ a, np.eye(dim), atol=1e-10)
    np.testing.assert_allclose(pf.get_preconditioner_inv(dim) @ a, np.eye(dim),
                               atol=1e-10)
    check_grads(pf, modes=["fwd", "rev"], order=2)(center_c + 0.2)


@pytest.mark.parametrize("sparse", [False, True])
@pytest.mark.parametrize("give_inverse", [False, True])
def test_preconditioner_matrix(sparse, give_inverse):
    rng = np.random.default_rng(5)
    a = np.eye(4) + 0.3 * rng.standard_normal((4, 4))
    a_inv = np.linalg.inv(a)
    if sparse:
        a, a_inv = sp.csr_matrix(a), sp.csr_matrix(a_inv)
    fun = quartic(random_spd(4, 6), np.ones(4))
    pf = PreconditionedFunction(fun)
    pf.set_preconditioner_matrix(a, a_inv if give_inverse else None)
    dense_a = a.toarray() if sparse else a
    x_c = np.array([0.3, -0.1, 0.2, 0.5])
    assert pf(x_c) == pytest.approx(fun(dense_a @ x_c), rel=1e-13)
    np.testing.assert_allclose(pf.precondition(dense_a @ x_c), x_c,
                               atol=1e-12)
    pf.check_preconditioner(x_c)
    check_grads(pf, modes=["fwd", "rev"], order=2)(x_c)


def test_preconditioner_functions():
    scale = np.array([2.0, 0.5])
    pf = PreconditionedFunction(lambda x: anp.sum(x ** 2))
    pf.set_preconditioner_functions(lambda v: scale * v, lambda v: v / scale)
    assert pf(np.ones(2)) == pytest.approx(4.25)
    np.testing.assert_allclose(pf.get_preconditioner(2), np.diag(scale))
    pf.set_preconditioner_functions(lambda v: scale * v, lambda v: v)
    with pytest.raises(ValueError, match="a_times does not invert"):
        pf.check_preconditioner(np.ones(2))
    pf.set_identitity_preconditioner()      # paragami's spelling
    assert pf(np.ones(2)) == pytest.approx(2.0)


def test_deprecated_set_preconditioner():
    pf = PreconditionedFunction(anp.sum)
    with pytest.warns(DeprecationWarning):
        pf.set_preconditioner(2.0 * np.eye(2))
    assert pf(np.ones(2)) == pytest.approx(4.0)


# ----------------------------------------------------------------------
# PreconditionedFunction: bad input.

@pytest.mark.parametrize("kwargs, match", [
    (dict(), "x, hessian"),
    (dict(x=np.zeros(2), hessian=np.eye(2)), "x, hessian"),
    (dict(hessian=np.ones((2, 3))), "hessian.*square"),
    (dict(hessian=np.array([[1.0, 0.5], [0.0, 1.0]])), "hessian.*symmetric"),
    (dict(hessian=np.diag([1.0, -1.0])), "hessian.*indefinite.*ev_min"),
    (dict(hessian=np.diag([1.0, 0.0])), "hessian.*singular"),
    (dict(hessian=np.diag([1.0, np.nan])), "hessian.*finite"),
    (dict(hessian=sp.diags([1.0, -1.0]).tocsr()), "hessian.*positive definite"),
    (dict(hessian=sp.csr_matrix(np.array([[1.0, 2.0], [0.0, 1.0]]))),
     "hessian.*symmetric"),
    (dict(hessian=sp.identity(2).tocsr(), ev_min=0.1), "ev_min.*dense"),
    (dict(hessian=np.eye(2), ev_min=0.0), "ev_min.*positive"),
    (dict(hessian=np.eye(2), ev_min=2.0, ev_max=1.0), "ev_min <= ev_max"),
    (dict(x=np.zeros((2, 2))), "x: expected a 1-d"),
    (dict(x=np.array([0.0, np.inf])), "x: expected finite"),
])
def test_bad_hessian(kwargs, match):
    pf = PreconditionedFunction(lambda x: anp.sum(x ** 2))
    with pytest.raises(ValueError, match=match):
        pf.set_preconditioner_with_hessian(**kwargs)


def test_indefinite_hessian_at_x_is_named():
    pf = PreconditionedFunction(lambda x: x[0] ** 2 - x[1] ** 2)
    with pytest.raises(ValueError, match=r"hessian \(of original_fun at x\)"):
        pf.set_preconditioner_with_hessian(x=np.zeros(2))
    # With ev_min the same point is fine.
    pf.set_preconditioner_with_hessian(x=np.zeros(2), ev_min=1.0)
    np.testing.assert_allclose(pf.get_preconditioner(2),
                               np.diag([2.0 ** -0.5, 1.0]), atol=1e-12)


def test_bad_preconditioner_matrix():
    pf = PreconditionedFunction(anp.sum)
    with pytest.raises(ValueError, match="a: the matrix is singular"):
        pf.set_preconditioner_matrix(np.ones((2, 2)))
    with pytest.raises(ValueError, match="a: the matrix is singular"):
        pf.set_preconditioner_matrix(sp.csr_matrix(np.diag([1.0, 0.0])))
    with pytest.raises(ValueError, match="a: expected a square"):
        pf.set_preconditioner_matrix(np.ones(3))
    with pytest.raises(ValueError, match="a_inv: expected shape"):
        pf.set_preconditioner_matrix(np.eye(2), np.eye(3))
    with pytest.raises(ValueError, match="a_inv: expected the inverse"):
        pf.set_preconditioner_matrix(2 * np.eye(2), np.eye(2))
    with pytest.raises(TypeError, match="a: expected a real matrix"):
        pf.set_preconditioner_matrix(np.eye(2) * 1j)
    with pytest.raises(TypeError, match="a_inv_times"):
        pf.set_preconditioner_functions(lambda v: v, None)
    with pytest.raises(TypeError, match="original_fun"):
        PreconditionedFunction(None)
    pf.set_preconditioner_matrix(np.eye(2))
    with pytest.raises(ValueError, match="x_c: expected length 2"):
        pf(np.ones(3))
    with pytest.raises(ValueError, match="dim"):
        pf.get_preconditioner(3)
    assert "dimension 2" in repr(pf)


# ----------------------------------------------------------------------
# A worked example: the Gaussian MLE by trust-region Newton-CG.

def gaussian_problem(seed=0, n_obs=200, dim=3):
    rng = np.random.default_rng(seed)
    true_cov = random_spd(dim, seed + 1, evals=np.array([0.5, 1.0, 2.0]))
    y = rng.multivariate_normal(np.arange(dim, dtype=float), true_cov,
                                size=n_obs)
    pattern = PatternDict(free_default=True)
    pattern["mean"] = NumericVectorPattern(dim)
    pattern["cov"] = PSDSymmetricMatrixPattern(dim)

    def neg_log_lik(params):
        resid = y - params["mean"]
        cov = params["cov"]
        quad = anp.sum(resid * anp.linalg.solve(cov, resid.T).T)
        return 0.5 * (anp.linalg.slogdet(cov)[1] + quad / n_obs)

    mle_mean = y.mean(axis=0)
    mle_cov = (y - mle_mean).T @ (y - mle_mean) / n_obs
    return pattern, neg_log_lik, mle_mean, mle_cov


def test_worked_trust_ncg_recovers_the_gaussian_mle():
    pattern, neg_log_lik, mle_mean, mle_cov = gaussian_problem()
    flat_nll = FlattenFunctionInput(neg_log_lik, pattern, free=True)
    lines = []
    objective = OptimizationObjective(flat_nll, print_every=5, log_every=1,
                                      print_fun=lines.append)
    dim = mle_mean.size
    init = pattern.flatten({"mean": np.zeros(dim), "cov": np.eye(dim)})
    result = scipy.optimize.minimize(
        objective.f, init, method="trust-ncg", jac=objective.grad,
        hessp=objective.hessian_vector_product, options={"gtol": 1e-10})
    assert result.success, result.message
    fit = pattern.fold(result.x)
    np.testing.assert_allclose(fit["mean"], mle_mean, atol=1e-6)
    np.testing.assert_allclose(fit["cov"], mle_cov, atol=1e-6)
    # The objective saw every evaluation scipy made, and logged each.
    assert objective.num_f_evals() == result.nfev
    assert len(objective.optimization_log) == result.nfev
    assert len(lines) == (result.nfev + 4) // 5
    # The log's last value is the optimum's.
    assert objective.optimization_log[-1][2] == pytest.approx(result.fun)


def test_worked_preconditioned_optimum_has_identity_hessian():
    pattern, neg_log_lik, mle_mean, mle_cov = gaussian_problem(seed=3)
    flat_nll = FlattenFunctionInput(neg_log_lik, pattern, free=True)
    opt_par = pattern.flatten({"mean": mle_mean, "cov": mle_cov})
    np.testing.assert_allclose(autograd.grad(flat_nll)(opt_par), 0.0,
                               atol=1e-10)
    precond = PreconditionedFunction(flat_nll)
    # Precondition with the Hessian at the start; optimise in x_c.
    init = pattern.flatten({"mean": np.zeros(3), "cov": np.eye(3)})
    precond.set_preconditioner_with_hessian(x=init, ev_min=1e-3)
    objective = OptimizationObjective(precond, print_every=0)
    result = scipy.optimize.minimize(
        objective.f, precond.precondition(init), method="trust-ncg",
        jac=objective.grad, hessp=objective.hessian_vector_product,
        options={"gtol": 1e-8})
    assert result.success, result.message
    fit = pattern.fold(precond.unprecondition(result.x))
    np.testing.assert_allclose(fit["mean"], mle_mean, atol=1e-6)
    np.testing.assert_allclose(fit["cov"], mle_cov, atol=1e-6)
    # Re-preconditioned at the optimum, the Hessian is the identity.
    precond.set_preconditioner_with_hessian(x=opt_par)
    hess_c = autograd.hessian(precond)(precond.precondition(opt_par))
    np.testing.assert_allclose(hess_c, np.eye(opt_par.size), atol=1e-8)
