"""Arrowhead matrices whose local blocks have unequal sizes (size classes),
against dense truth: numpy's solve, inv and slogdet of the full matrix."""
import numpy as np
import pytest
import scipy.sparse
from hypothesis import given, settings
from hypothesis import strategies as st

from refold.sensitivity.arrowhead import ArrowheadHessian, ArrowheadSizeClass
from refold.sensitivity.inverse_blocks import (inverse_sandwich,
                                               inverse_sandwich_blocks)
from refold.sensitivity.newton import damped_newton_step
from refold.sensitivity.solvers import RefoldWarning, get_solver
from tests.sensitivity.test_arrowhead import (SCHUR_NOT_PD, assert_matches_dense,
                                              with_indefinite_schur)


def random_classes(rng, counts=((1, 3), (2, 4), (3, 2)), g=3, cross=0.3):
    """SPD blocks: ``counts`` holds (size, number of blocks) per class."""
    Cs, Ls = [], []
    for m, t in counts:
        a = rng.normal(size=(t, m, m))
        Ls.append(a @ a.transpose(0, 2, 1) + np.eye(m))
        Cs.append(cross * rng.normal(size=(t, g, m)))
    schur = sum(np.einsum('tgm,tmn,thn->gh', C, np.linalg.inv(L), C)
                for C, L in zip(Cs, Ls))
    b = rng.normal(size=(g, g))
    G = b @ b.T + np.eye(g) + schur
    return 0.5 * (G + G.T), Cs, Ls


def dense_of(G, Cs, Ls):
    """The dense matrix, globals first then the blocks class by class, built
    with a plain loop over blocks (independently of the class)."""
    g = G.shape[0]
    blocks = [(C[t], L[t]) for C, L in zip(Cs, Ls) for t in range(len(L))]
    dim = g + sum(L.shape[0] for _, L in blocks)
    H = np.zeros((dim, dim))
    H[:g, :g] = G
    start = g
    spans = []
    for C, L in blocks:
        s = slice(start, start + L.shape[0])
        H[:g, s], H[s, :g], H[s, s] = C, C.T, L
        spans.append(np.arange(start, start + L.shape[0]))
        start += L.shape[0]
    return H, spans


@pytest.fixture
def rng():
    return np.random.default_rng(7)


@pytest.fixture
def shuffled(rng):
    """A mixed arrowhead with its coordinates permuted: (sparse matrix,
    dense matrix, global_inds, per-block index arrays in group order)."""
    G, Cs, Ls = random_classes(rng)
    H, spans = dense_of(G, Cs, Ls)
    perm = rng.permutation(H.shape[0])          # new position k holds old perm[k]
    where = np.argsort(perm)
    Hp = H[np.ix_(perm, perm)]
    gi = where[:G.shape[0]]
    blocks = [where[s] for s in spans]
    return scipy.sparse.csr_array(Hp), Hp, gi, blocks


def by_class(blocks):
    """The (T_k, m_k) index arrays of per-block index arrays in class order."""
    sizes = sorted({b.size for b in blocks})
    return [np.array([b for b in blocks if b.size == m]) for m in sizes]


def test_mixed_from_sparse_against_dense(shuffled, rng):
    hs, Hp, gi, blocks = shuffled
    A = ArrowheadHessian.from_sparse(hs, gi, by_class(blocks))
    b = rng.normal(size=(Hp.shape[0], 4))
    inv = assert_matches_dense(A, Hp, gi, b)
    local = A.inverse_local_blocks(by_size=True)
    cross = A.inverse_cross_blocks(by_size=True)
    assert [x.shape for x in local] == [(3, 1, 1), (4, 2, 2), (2, 3, 3)]
    for k, li in enumerate(by_class(blocks)):
        np.testing.assert_allclose(
            local[k], np.stack([inv[np.ix_(r, r)] for r in li]), rtol=1e-10,
            atol=1e-13)
        np.testing.assert_allclose(
            cross[k], np.stack([inv[np.ix_(gi, r)] for r in li]), rtol=1e-10,
            atol=1e-13)
    assert (A.dim, A.n_global, A.n_groups, A.block_sizes) == (20, 3, 9,
                                                              (1, 2, 3))
    assert repr(A) == ("ArrowheadHessian(n_global=3, n_groups=9, "
                       "block_sizes=(1, 2, 3))")
    solver = A.solver()
    assert solver.kind == 'arrowhead'
    assert solver.info['block_sizes'] == (1, 2, 3)
    np.testing.assert_allclose(solver(b), np.linalg.solve(Hp, b), rtol=1e-10,
                               atol=1e-12)


def test_every_form_of_local_inds_gives_the_same_matrix(shuffled, rng):
    hs, Hp, gi, blocks = shuffled
    b = rng.normal(size=Hp.shape[0])
    truth = np.linalg.solve(Hp, b)
    classes = by_class(blocks)
    order = rng.permutation(len(blocks))                # interleave the sizes
    forms = [classes, tuple(classes), [blocks[i] for i in order],
             [list(map(int, blocks[i])) for i in order]]
    for form in forms:
        A = ArrowheadHessian.from_sparse(hs, gi, form)
        np.testing.assert_allclose(A.solve(b), truth, rtol=1e-10, atol=1e-12)
        np.testing.assert_array_equal(A.to_sparse().toarray(), Hp)
        assert A.block_sizes == (1, 2, 3)
    # Per-block lists are grouped by increasing size, in order within a size.
    A = ArrowheadHessian.from_sparse(hs, gi, [blocks[i] for i in order])
    for li, m in zip(A.local_inds_by_size, (1, 2, 3)):
        expected = [blocks[i] for i in order if blocks[i].size == m]
        np.testing.assert_array_equal(li, np.array(expected))
    # The block constructor with one stack per size, same classes.
    sizes = A.size_classes
    assert all(isinstance(c, ArrowheadSizeClass) for c in sizes)
    B = ArrowheadHessian(A.global_block, [c.cross_blocks for c in sizes],
                         [c.local_blocks for c in sizes], gi,
                         [c.local_inds for c in sizes])
    np.testing.assert_array_equal(B.to_sparse().toarray(), Hp)
    np.testing.assert_allclose(B.solve(b), truth, rtol=1e-10, atol=1e-12)
    # Stacks given without indices: globals first, class by class.
    G, Cs, Ls = random_classes(rng)
    C = ArrowheadHessian(G, Cs, Ls)
    np.testing.assert_array_equal(C.to_sparse().toarray(), dense_of(G, Cs, Ls)[0])


def test_classes_of_one_size_merge_and_empty_classes_drop(rng):
    G, Cs, Ls = random_classes(rng, counts=((2, 3), (2, 2), (3, 0)))
    A = ArrowheadHessian(G, Cs, Ls)
    assert A.block_sizes == (2,) and A.n_local == 2 and A.n_groups == 5
    np.testing.assert_array_equal(A.local_blocks, np.concatenate(Ls[:2]))
    H = dense_of(G, Cs, Ls)[0]
    np.testing.assert_allclose(A.inverse_local_blocks(),
                               A.inverse_local_blocks(by_size=True)[0])
    np.testing.assert_allclose(A.solve(np.ones(A.dim)),
                               np.linalg.solve(H, np.ones(A.dim)), rtol=1e-10)


@settings(max_examples=40, deadline=None)
@given(sizes=st.lists(st.integers(1, 5), min_size=1, max_size=12),
       g=st.integers(0, 4), seed=st.integers(0, 2 ** 31 - 1))
def test_random_mixed_arrowheads_against_dense(sizes, g, seed):
    rng = np.random.default_rng(seed)
    counts = [(m, sizes.count(m)) for m in sorted(set(sizes))]
    G, Cs, Ls = random_classes(rng, counts, g)
    H, spans = dense_of(G, Cs, Ls)
    perm = rng.permutation(H.shape[0])
    where = np.argsort(perm)
    Hp = H[np.ix_(perm, perm)]
    blocks = [where[s] for s in spans]
    A = ArrowheadHessian.from_sparse(scipy.sparse.csr_array(Hp), where[:g],
                                     [blocks[i] for i in
                                      rng.permutation(len(blocks))])
    b = rng.normal(size=(H.shape[0], 2))
    np.testing.assert_allclose(A.solve(b), np.linalg.solve(Hp, b), rtol=1e-9,
                               atol=1e-11)
    np.testing.assert_allclose(A.logdet(), np.linalg.slogdet(Hp)[1],
                               rtol=1e-11, atol=1e-11)
    inv = np.linalg.inv(Hp)
    for li, block in zip(A.local_inds_by_size,
                         A.inverse_local_blocks(by_size=True)):
        np.testing.assert_allclose(
            block, np.stack([inv[np.ix_(r, r)] for r in li]), rtol=1e-9,
            atol=1e-11)


def test_one_size_accessors_raise_for_mixed_blocks(shuffled):
    hs, Hp, gi, blocks = shuffled
    A = ArrowheadHessian.from_sparse(hs, gi, blocks)
    for what, call, use in (
            ("n_local", lambda: A.n_local, "block_sizes"),
            ("local_inds", lambda: A.local_inds, "local_inds_by_size"),
            ("local_blocks", lambda: A.local_blocks, "size_classes"),
            ("cross_blocks", lambda: A.cross_blocks, "size_classes"),
            (r"inverse_local_blocks\(\)", A.inverse_local_blocks,
             "by_size=True"),
            (r"inverse_cross_blocks\(\)", A.inverse_cross_blocks,
             "by_size=True")):
        with pytest.raises(ValueError, match=rf"{what} needs local blocks of "
                                             rf"one size; .* sizes 1, 2 and 3 "
                                             rf"\(use {use}"):
            call()


def test_failures_name_the_group_across_classes(rng):
    G, Cs, Ls = random_classes(rng)               # groups 0-2: 1, 3-6: 2, 7-8: 3
    Ls[1][2] = np.array([[1.0, 1.25], [1.25, 1.0]])   # eigenvalues 2.25, -0.25
    A = ArrowheadHessian(G, Cs, Ls)
    with pytest.raises(ValueError, match=r"hessian is not positive definite: the "
                                         r"local block of group 5 \(hessian "
                                         r"indices \[10, 11\]\) has smallest "
                                         r"eigenvalue -0\.25 \(1 of 9 local"):
        A.solve(np.ones(A.dim))
    with pytest.warns(RefoldWarning, match="pseudo-inverse"):
        pinv = A.solver(on_failure='pinv')
    H = dense_of(G, Cs, Ls)[0]
    np.testing.assert_allclose(pinv(np.ones(A.dim)),
                               np.linalg.solve(H, np.ones(A.dim)), rtol=1e-8)
    Ls[1][2] = np.diag([1.0, 2.0])
    Ls[2][1] = np.diag([3.0, -1.0, 2.0])          # negative diagonal: fast path
    with pytest.raises(ValueError, match=r"group 8 has diagonal entry -1 <= 0 at "
                                         r"hessian index 18 .*smallest "
                                         r"eigenvalue -1\b"):
        ArrowheadHessian(G, Cs, Ls).inverse_global_block()
    Ls[2][1] = np.eye(3)
    Ls[0][1] = np.array([[1e-20]]) + 0 * Ls[0][1]
    Ls[2][0] = np.array([[1.0, 1.0, 0], [1.0, 1.0 + 1e-14, 0], [0, 0, 1.0]])
    with pytest.raises(ValueError, match=r"numerically singular: the local block "
                                         r"of group 7 .*condition number"):
        ArrowheadHessian(G, Cs, Ls).solver()


def test_schur_failure_with_mixed_blocks(rng):
    G, Cs, Ls = random_classes(rng, cross=1.0)
    schur = G - sum(np.einsum('tgm,tmn,thn->gh', C, np.linalg.inv(L), C)
                    for C, L in zip(Cs, Ls))
    G = with_indefinite_schur(G, schur, rng)
    A = ArrowheadHessian(G, Cs, Ls)
    with pytest.raises(ValueError, match=SCHUR_NOT_PD):
        A.logdet()
    assert np.sum(np.linalg.eigvalsh(dense_of(G, Cs, Ls)[0]) < 0) == 1


def test_bad_mixed_input_is_named(shuffled, rng):
    hs, Hp, gi, blocks = shuffled
    classes = by_class(blocks)
    bad = Hp.copy()
    i, j = classes[1][0, 0], classes[2][1, 2]
    bad[i, j] = bad[j, i] = 0.01
    with pytest.raises(ValueError, match=r"not arrowhead-structured: .*couples "
                                         r"the locals of groups (3 and 8|8 and 3)"):
        ArrowheadHessian.from_sparse(scipy.sparse.csr_array(bad), gi, classes)
    with pytest.raises(ValueError, match=r"index 1 appears 0 times"):
        ArrowheadHessian.from_sparse(hs, gi, [blocks[1]] + blocks[1:])
    with pytest.raises(TypeError, match=r"local_inds\[1\] must be an integer"):
        ArrowheadHessian.from_sparse(hs, gi, [classes[0], classes[1] * 1.0,
                                              classes[2]])
    with pytest.raises(ValueError, match=r"local_inds must be a \(T, m\) array, "
                                         r"a list of \(T_k, m_k\) arrays .*mixing"):
        ArrowheadHessian.from_sparse(hs, gi, [classes[1], blocks[0]])
    G, Cs, Ls = random_classes(rng)
    with pytest.raises(ValueError, match=r"cross_blocks must be a list of 3"):
        ArrowheadHessian(G, Cs[0], Ls)
    with pytest.raises(ValueError, match=r"cross_blocks\[1\] must have shape "
                                         r"\(T, g, m\) = \(4, 3, 2\)"):
        ArrowheadHessian(G, [Cs[0], Cs[2], Cs[1]], Ls)
    with pytest.raises(ValueError, match=r"local_inds \[\(3, 1\), \(4, 2\), "
                                         r"\(2, 3\)\] to match the blocks; got "
                                         r"\(3,\) and \(1, 17\)"):
        ArrowheadHessian(G, Cs, Ls, np.arange(3), [np.arange(3, 20)])
    Cb = [c.copy() for c in Cs]
    Cb[2][1, 0, 2] = np.nan
    with pytest.raises(ValueError, match=r"cross_blocks\[2\] must be finite; "
                                         r"cross_blocks\[2\]\[1, 0, 2\] = nan"):
        ArrowheadHessian(G, Cb, Ls)
    Lb = [v.copy() for v in Ls]
    Lb[2][0, 0, 1] += 0.5
    with pytest.raises(ValueError, match=r"hessian is not symmetric: "
                                         r"\|hessian\[14, 15\]"):
        ArrowheadHessian(G, Cs, Lb)


def test_sandwiches_with_mixed_blocks(shuffled, rng):
    hs, Hp, gi, blocks = shuffled
    A = ArrowheadHessian.from_sparse(hs, gi, blocks)
    inv = np.linalg.inv(Hp)
    jac = scipy.sparse.random(15, Hp.shape[0], density=0.2, random_state=3)
    np.testing.assert_allclose(inverse_sandwich(jac, arrowhead=A),
                               jac @ inv @ jac.T, rtol=1e-10, atol=1e-12)
    jac2 = rng.normal(size=(4, Hp.shape[0]))
    np.testing.assert_allclose(inverse_sandwich(jac, jac2, arrowhead=A),
                               jac @ inv @ jac2.T, rtol=1e-10, atol=1e-12)
    # Identity moments: the blocks of H^-1, one stack per size.
    out = inverse_sandwich_blocks(A)
    assert isinstance(out.local_covs, tuple) and len(out.local_covs) == 3
    for li, cov, cross in zip(out.local_moments, out.local_covs,
                              out.cross_covs):
        np.testing.assert_allclose(cov, np.stack([inv[np.ix_(r, r)]
                                                  for r in li]), atol=1e-12)
        np.testing.assert_allclose(cross, np.stack([inv[np.ix_(gi, r)]
                                                    for r in li]), atol=1e-12)
    # Moments: 2 global ones; per group one moment per local coordinate
    # plus, for blocks of 2, one that also reads the globals.
    classes = A.local_inds_by_size
    rows, pos = [], 0
    jac = np.zeros((2 + sum(c.size for c in classes) + len(classes[1]),
                    Hp.shape[0]))
    jac[0, gi] = rng.normal(size=3)
    jac[1, gi[:2]] = 1.0
    for c in classes:
        for r in c:
            for k in range(r.size):
                jac[2 + pos + k, r] = rng.normal(size=r.size)
            if r.size == 2:
                jac[2 + pos + 2, r[1]], jac[2 + pos + 2, gi[0]] = 1.0, 2.0
            rows.append(2 + pos + np.arange(r.size + (r.size == 2)))
            pos += r.size + (r.size == 2)
    out = inverse_sandwich_blocks(A, scipy.sparse.csr_array(jac))
    full = jac @ inv @ jac.T
    np.testing.assert_allclose(out.global_cov, full[:2, :2], atol=1e-12)
    np.testing.assert_array_equal(out.global_moments, [0, 1])
    start = 0
    for k, c in enumerate(classes):
        mine = np.array(rows[start:start + len(c)])
        start += len(c)
        np.testing.assert_array_equal(out.local_moments[k], mine)
        np.testing.assert_allclose(
            out.local_covs[k], np.stack([full[np.ix_(r, r)] for r in mine]),
            rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(
            out.cross_covs[k], np.stack([full[np.ix_([0, 1], r)] for r in mine]),
            rtol=1e-10, atol=1e-12)
    jac[rows[3][-1]] = 0.0                   # group 3 (blocks of 2) loses one
    with pytest.raises(ValueError, match=r"every group with local blocks of one "
                                         r"size the same number of moments; "
                                         r"groups 3 and 4 \(blocks of 2\) have "
                                         r"2 and 3"):
        inverse_sandwich_blocks(A, scipy.sparse.csr_array(jac), "jac")


def test_solver_kinds_and_newton_with_mixed_blocks(shuffled, rng):
    hs, Hp, gi, blocks = shuffled
    b = rng.normal(size=Hp.shape[0])
    solver = get_solver('arrowhead', hessian=hs, global_inds=gi,
                        local_inds=blocks)
    np.testing.assert_allclose(solver(b), np.linalg.solve(Hp, b), rtol=1e-10)
    A = ArrowheadHessian.from_sparse(hs, gi, blocks)
    for kind in ('cholesky', 'sparse', 'dense', 'cg'):
        np.testing.assert_allclose(get_solver(kind, hessian=A)(b),
                                   np.linalg.solve(Hp, b), rtol=1e-6)
    step, damping = damped_newton_step(A, b)
    assert damping == 0.0
    np.testing.assert_allclose(step, -np.linalg.solve(Hp, b), rtol=1e-10)
    shifted = A._shifted(2.5)
    np.testing.assert_allclose(shifted.to_sparse().toarray(),
                               Hp + 2.5 * np.eye(Hp.shape[0]))
