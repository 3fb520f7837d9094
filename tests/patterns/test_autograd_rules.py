"""Forward-mode (and batch-correct reverse-mode) linalg rules.

Each rule is checked by ``check_grads(order=2, modes=['fwd', 'rev'])``: the
jvp and vjp against central finite differences, and every second-order
combination (fwd-over-fwd, rev-over-fwd, fwd-over-rev, rev-over-rev).
"""
import autograd
import autograd.extend
import autograd.numpy as np
import autograd.scipy.linalg as asla
import numpy as onp
import pytest
from autograd.test_util import check_grads

from refold.patterns import autograd_rules
from tests.patterns._helpers import MODES

# check_grads draws from numpy's global generator; importing paragami
# (another test's anchor) replaces some linalg rules.
pytestmark = pytest.mark.usefixtures("seeded_check_grads")

RNG = onp.random.default_rng(0)
BATCH = RNG.standard_normal((2, 3, 3))
SINGLE = RNG.standard_normal((3, 3))


def _spd(x):
    """A symmetric positive-definite function of x (batched)."""
    return np.matmul(x, np.swapaxes(x, -1, -2)) + 3.0 * np.eye(3)


CASES = {
    "cholesky": lambda x: np.linalg.cholesky(_spd(x)),
    "cholesky_upper": lambda x: np.linalg.cholesky(_spd(x), upper=True),
    "inv": lambda x: np.linalg.inv(_spd(x) + x),
    "det": lambda x: np.linalg.det(_spd(x) + x),
    "slogdet": lambda x: np.linalg.slogdet(_spd(x) + x)[1],
    "eigh_values": lambda x: np.linalg.eigh(_spd(x))[0],
    # Eigenvectors up to sign: their squares are smooth.
    "eigh_vectors": lambda x: np.linalg.eigh(_spd(x))[1] ** 2,
    "eigh_lower_triangle": lambda x: np.linalg.eigh(x + 4 * np.eye(3))[0],
    "eigh_upper_triangle": lambda x: np.linalg.eigh(
        x + 4 * np.eye(3), UPLO="U")[0],
    "eigvalsh": lambda x: np.linalg.eigvalsh(x),
    "eigvalsh_upper": lambda x: np.linalg.eigvalsh(x, UPLO="U"),
}


@pytest.mark.parametrize("name", sorted(CASES))
@pytest.mark.parametrize("value", [SINGLE, BATCH], ids=["single", "batch"])
def test_linalg_rules_order_two(name, value):
    check_grads(CASES[name], modes=MODES, order=2)(value)


SQUARE = RNG.standard_normal((2, 3, 3)) + 4 * onp.eye(3)
RHS = {
    "vector": RNG.standard_normal(3),
    "matrices": RNG.standard_normal((2, 3, 2)),
    "broadcast_matrix": RNG.standard_normal((3, 2)),
}


@pytest.mark.parametrize("rhs", sorted(RHS))
def test_solve_order_two(rhs):
    check_grads(np.linalg.solve, modes=MODES, order=2)(SQUARE, RHS[rhs])
    check_grads(np.linalg.solve, modes=MODES, order=2)(SQUARE[0], RHS[rhs])


@pytest.mark.parametrize("rhs", sorted(RHS))
@pytest.mark.parametrize("trans", [0, "T"])
@pytest.mark.parametrize("lower", [True, False])
def test_solve_triangular_order_two(rhs, trans, lower):
    for unit in (False, True):
        fun = lambda a, b: asla.solve_triangular(
            a, b, trans=trans, lower=lower, unit_diagonal=unit)
        check_grads(fun, modes=MODES, order=2)(SQUARE, RHS[rhs])


@pytest.mark.parametrize("trans", [0, "N", 1, "T", 2, "C"])
def test_solve_triangular_single_matrix_all_trans_codes(trans):
    fun = lambda a, b: asla.solve_triangular(a, b, trans=trans, lower=True)
    check_grads(fun, modes=MODES, order=2)(SQUARE[0], RHS["vector"])
    check_grads(fun, modes=MODES, order=1)(SQUARE[0], RHS["broadcast_matrix"])


def test_slogdet_sign_tangent_is_zero():
    _, tangent = autograd.make_jvp(
        lambda x: np.linalg.slogdet(x)[0])(SQUARE)(BATCH)
    onp.testing.assert_array_equal(tangent, onp.zeros(2))


def test_cholesky_jvp_closed_form():
    # d chol(A + t V) / dt against a central difference with t = 1e-6.
    a = onp.array(_spd(SINGLE))
    v = SINGLE + SINGLE.T
    _, tangent = autograd.make_jvp(np.linalg.cholesky)(a)(v)
    step = 1e-6
    numeric = (onp.linalg.cholesky(a + step * v)
               - onp.linalg.cholesky(a - step * v)) / (2 * step)
    onp.testing.assert_allclose(tangent, numeric, rtol=1e-7, atol=1e-8)


def test_forward_hessian_vector_product_through_cholesky():
    # Forward-over-reverse HVP of a log-likelihood through cholesky equals
    # the reverse-over-reverse Hessian times the vector.
    def objective(x):
        chol = np.linalg.cholesky(_spd(np.reshape(x, (3, 3))))
        return np.sum(np.log(np.diagonal(chol, axis1=-1, axis2=-2))) + \
            np.sum(chol ** 3)

    x = SINGLE.ravel()
    v = RNG.standard_normal(9)
    hvp_fwd = autograd.make_jvp(autograd.grad(objective))(x)(v)[1]
    hessian = autograd.hessian(objective)(x)
    onp.testing.assert_allclose(hvp_fwd, hessian @ v, rtol=1e-10)


def test_register_is_idempotent_and_restores_replaced_rules():
    rule = autograd.core.primitive_jvps[np.linalg.cholesky]
    autograd_rules.register()
    assert autograd.core.primitive_jvps[np.linalg.cholesky] is rule
    # Another library replacing a rule (as importing paragami does).
    autograd.extend.defjvp(np.linalg.slogdet, lambda g, ans, x: None)
    autograd_rules.register()
    check_grads(CASES["slogdet"], modes=["fwd"], order=1)(BATCH)


def test_bad_trans_is_named():
    with pytest.raises(ValueError, match="trans"):
        autograd.make_jvp(lambda a: asla.solve_triangular(
            a, onp.ones(3), trans="X"))(SQUARE[0])(SQUARE[0])
