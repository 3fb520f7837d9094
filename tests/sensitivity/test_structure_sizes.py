"""solver='auto' on Hessians whose local blocks have unequal sizes: the
classification, the structure's colouring and description, and answers
identical to the explicit dense path (numpy's Cholesky of the autograd
Hessian)."""
import autograd
import autograd.numpy as np
import numpy as onp
import pytest
import scipy.optimize
import scipy.sparse as sp
from hypothesis import given, settings
from hypothesis import strategies as st

import refold
from refold.sensitivity import structure as st_module
from refold.sensitivity.arrowhead import ArrowheadHessian
from refold.sensitivity.hvp import dense_hessian
from refold.sensitivity.structure import (HessianStructure, classify_pattern,
                                          hessian_structure)

# A random-effects logistic regression: 3 fixed effects (globals); groups
# with a random intercept only (1 local), with one random slope too (2) or
# with two slopes (3).  Hyperparameter: the log prior precision of u.
N_GLOBAL, COUNTS, PER_GROUP = 3, {1: 60, 2: 50, 3: 20}, 6


def _data():
    rng = onp.random.default_rng(11)
    out = {}
    for m, t in COUNTS.items():
        n = t * PER_GROUP
        out[m] = dict(group=onp.repeat(onp.arange(t), PER_GROUP),
                      x=rng.normal(size=(n, N_GLOBAL)),
                      z=onp.column_stack([onp.ones(n),
                                          rng.normal(size=(n, m - 1))]),
                      y=(rng.uniform(size=n) < 0.4).astype(float))
    return out


DATA = _data()
DIM = N_GLOBAL + sum(m * t for m, t in COUNTS.items())


def ragged_objective(x, h):
    beta, start, total = x[:N_GLOBAL], N_GLOBAL, 0.0
    for m, t in COUNTS.items():              # three model terms, vectorised
        u = np.reshape(x[start:start + m * t], (t, m))
        d = DATA[m]
        eta = np.dot(d["x"], beta) + np.sum(u[d["group"]] * d["z"], axis=1)
        total = total + np.sum(np.logaddexp(0.0, eta) - d["y"] * eta)
        total = total + 0.5 * np.exp(h[0]) * np.sum(u ** 2)
        start += m * t
    return total + 0.05 * np.sum(beta ** 2)


@pytest.fixture(scope="module")
def ragged():
    h0 = onp.array([0.3])
    opt = scipy.optimize.minimize(
        ragged_objective, onp.zeros(DIM), args=(h0,), method="Newton-CG",
        jac=autograd.grad(ragged_objective),
        hessp=refold.get_hvp(ragged_objective),
        options=dict(xtol=1e-15, maxiter=100)).x
    return ragged_objective, opt, h0


def block_pattern(sizes, n_global):
    """Globals first, then full blocks of ``sizes`` (in that order)."""
    blocks = sp.block_diag([onp.ones((m, m)) for m in sizes]).tocsr()
    dim = n_global + blocks.shape[0]
    pat = sp.lil_matrix((dim, dim), dtype=bool)
    pat[:n_global, :] = True
    pat[:, :n_global] = True
    pat[n_global:, n_global:] = blocks
    return pat.tocsr()


def test_mixed_blocks_classify_as_arrowhead(tmp_path):
    sizes = [2, 3] * 100 + [2] * 50                # interleaved sizes
    pat = block_pattern(sizes, 4)
    kind, glob, loc, reason = classify_pattern(pat)
    assert kind == "arrowhead"
    onp.testing.assert_array_equal(glob, onp.arange(4))
    assert isinstance(loc, tuple) and [c.shape for c in loc] == [(150, 2),
                                                                  (100, 3)]
    starts = 4 + onp.concatenate([[0], onp.cumsum(sizes)[:-1]])
    onp.testing.assert_array_equal(loc[0][:, 0], starts[onp.array(sizes) == 2])
    onp.testing.assert_array_equal(loc[1][:, 2],
                                   starts[onp.array(sizes) == 3] + 2)
    assert reason == "4 globals couple to all; the rest in blocks of 2 and 3"
    structure = HessianStructure.from_pattern(pat)
    assert structure.describe().startswith(
        "arrowhead: 4 globals, 150 blocks of 2 and 100 blocks of 3; ")
    assert structure.colouring.num_colours == 4 + 3      # g + largest block
    assert structure.num_hvps == 8
    path = tmp_path / "mixed.npz"
    structure.save(path)
    again = HessianStructure.load(path)
    assert again.describe() == structure.describe()
    for a, b in zip(again.local_inds, structure.local_inds):
        onp.testing.assert_array_equal(a, b)
    # Recovery with that colouring is exact.
    rng = onp.random.default_rng(0)
    values = sp.csr_matrix(pat, dtype=float)
    values.data = rng.normal(size=values.nnz)
    hess = (values + values.T).tocsr()
    products = hess @ structure.colouring.directions()
    recovered = refold.sensitivity.colouring.recover_hessian(
        structure.colouring, products)
    assert abs(recovered - hess).max() < 1e-14


def test_few_odd_coordinates_join_the_globals_many_make_classes():
    # Two lone coordinates next to blocks of 3 join the globals (unchanged);
    # four of them (more than a block's size) are a size class of their own.
    few = classify_pattern(block_pattern([3] * 100 + [1, 1], 2))
    assert few[2].shape == (100, 3) and len(few[1]) == 4
    many = classify_pattern(block_pattern([3] * 100 + [1] * 4, 2))
    assert [c.shape for c in many[2]] == [(4, 1), (100, 3)]
    assert len(many[1]) == 2
    # Past four sizes the description gives their range.
    wide = HessianStructure.from_pattern(block_pattern(
        [1, 2, 3, 4, 5, 6] * 20, 3))
    assert wide.describe().startswith(
        "arrowhead: 3 globals, 120 blocks of 6 sizes, 1 to 6; ")
    assert "the rest in blocks of 6 sizes, 1 to 6" in wide.describe()


def test_auto_with_ragged_groups_matches_dense_cholesky(ragged):
    fun, opt, h0 = ragged
    structure = hessian_structure(fun, opt, h0)
    assert structure.kind == "arrowhead"
    assert [c.shape for c in structure.local_inds] == [(60, 1), (50, 2),
                                                       (20, 3)]
    auto = refold.HyperparameterSensitivityLinearApproximation(fun, opt, h0)
    assert auto.describe().startswith(
        "arrowhead: 3 globals, 60 blocks of 1, 50 blocks of 2 and 20 blocks "
        "of 3; 7 HVPs; Schur complement")
    dense = refold.HyperparameterSensitivityLinearApproximation(
        fun, opt, h0, solver="cholesky")
    truth = dense.get_dopt_dhyper()
    onp.testing.assert_allclose(auto.get_dopt_dhyper(), truth, rtol=1e-10,
                                atol=1e-13)
    # The Hessian it formed is the autograd Hessian.
    hess = dense_hessian(fun, opt, h0)
    onp.testing.assert_allclose(auto.get_hessian_at_opt().toarray(), hess,
                                rtol=1e-10, atol=1e-12)
    # A sparse Hessian handed in is split the same way.
    given = refold.HyperparameterSensitivityLinearApproximation(
        fun, opt, h0, hessian_at_opt=sp.csr_matrix(hess))
    assert given.describe().startswith("arrowhead: 3 globals, 60 blocks of 1")
    onp.testing.assert_allclose(given.get_dopt_dhyper(), truth, rtol=1e-10,
                                atol=1e-13)
    # Estimating-equation form (the symmetric Jacobian of the gradient).
    ee = refold.EstimatingEquationLinearApproximation(
        autograd.grad(fun), opt, h0)
    assert ee.describe().startswith("arrowhead: 3 globals")
    onp.testing.assert_allclose(ee.get_dinput_dhyper(), truth, rtol=1e-10,
                                atol=1e-13)
    # Against brute-force re-optimisation (chord Newton steps with the dense
    # Hessian until the gradient vanishes; central differences).
    def refit(h):
        x, hess_h = opt.copy(), dense_hessian(fun, opt, h)
        for _ in range(6):
            x = x - onp.linalg.solve(hess_h, autograd.grad(fun)(x, h))
        assert onp.max(onp.abs(autograd.grad(fun)(x, h))) < 1e-13
        return x
    step = 1e-5
    onp.testing.assert_allclose(auto.get_dopt_dhyper()[:, 0],
                                (refit(h0 + step) - refit(h0 - step))
                                / (2 * step), rtol=1e-5, atol=1e-8)


def _indefinite(fun):
    """``fun`` plus a term that makes one block of 2 indefinite."""
    where = N_GLOBAL + COUNTS[1] + 2 * 7          # group 7 of the 2-blocks

    def bad(x, h):
        return fun(x, h) - 5.0 * x[where] * x[where + 1]
    return bad


def test_indefinite_block_is_named_as_for_equal_blocks(ragged):
    fun, opt, h0 = ragged
    with pytest.raises(ValueError, match=r"is not positive definite: the local "
                                         r"block of group 67 \(hessian indices "
                                         r"\[77, 78\]\) has smallest eigenvalue"):
        refold.HyperparameterSensitivityLinearApproximation(
            _indefinite(fun), opt, h0, validate_optimum=False)
    # The same message as for blocks of one size (here given as an
    # ArrowheadHessian with one size).
    hess = dense_hessian(_indefinite(fun), opt, h0)
    blocks = [N_GLOBAL + COUNTS[1] + onp.arange(2 * COUNTS[2]).reshape(-1, 2)]
    others = onp.setdiff1d(onp.arange(DIM), blocks[0])
    equal = ArrowheadHessian.from_sparse(hess, others, blocks[0])
    with pytest.raises(ValueError, match=r"is not positive definite: the local "
                                         r"block of group 7 \(hessian indices "
                                         r"\[77, 78\]\) has smallest eigenvalue"):
        equal.solver()


@settings(max_examples=25, deadline=None)
@given(sizes=st.lists(st.integers(1, 6), min_size=60, max_size=120),
       n_global=st.integers(0, 5), seed=st.integers(0, 2 ** 31 - 1))
def test_random_block_patterns_split_into_their_blocks(sizes, n_global, seed):
    pat = block_pattern(sizes, n_global)
    dim = pat.shape[0]
    perm = onp.random.default_rng(seed).permutation(dim)
    where = onp.argsort(perm)                   # old coordinate i is at where[i]
    kind, glob, loc, _ = classify_pattern(pat[perm][:, perm])
    if dim <= st_module.SMALL_DIM:
        assert kind == "dense"
        return
    assert kind == "arrowhead"
    starts = n_global + onp.concatenate([[0], onp.cumsum(sizes)[:-1]])
    truth = {frozenset(where[s + onp.arange(m)]) for s, m in zip(starts, sizes)}
    classes = loc if isinstance(loc, tuple) else (loc,)
    found = {frozenset(row) for c in classes for row in c}
    assert found <= truth                       # every local block is a block
    assert set(where[:n_global]) <= set(glob)   # every global is global
    extra = set(glob) - set(where[:n_global])   # the rest: a few small blocks
    assert extra == set().union(*(truth - found))
    assert len(extra) <= max(sizes)
    sizes_found = [c.shape[1] for c in classes]
    assert sizes_found == sorted(set(sizes_found))
