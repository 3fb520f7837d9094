"""Tests for refold.sensitivity.arrowhead against dense inverses."""
import numpy as np
import pytest
import scipy.sparse

from refold.sensitivity.arrowhead import ArrowheadHessian
from refold.sensitivity.solvers import (
    LinearSolver, RefoldWarning, as_solver, get_cholesky_solver, get_solver)


def random_blocks(rng, T=5, m=2, g=3, cross=0.3):
    a = rng.normal(size=(T, m, m))
    L = a @ a.transpose(0, 2, 1) + np.eye(m)
    C = cross * rng.normal(size=(T, g, m))
    # G = (something SPD) + sum_t C_t L_t^-1 C_t^T, computed with plain inverses
    schur_part = np.einsum('tgm,tmn,thn->gh', C, np.linalg.inv(L), C)
    b = rng.normal(size=(g, g))
    G = b @ b.T + np.eye(g) + schur_part
    return G, C, L


def dense_of(G, C, L):
    """Dense matrix with globals first, built independently of the class."""
    T, g, m = C.shape
    H = np.zeros((g + T * m,) * 2)
    H[:g, :g] = G
    for t in range(T):
        s = slice(g + t * m, g + (t + 1) * m)
        H[:g, s] = C[t]
        H[s, :g] = C[t].T
        H[s, s] = L[t]
    return H


@pytest.fixture
def rng():
    return np.random.default_rng(1)


@pytest.fixture
def shuffled(rng):
    """A sparse arrowhead matrix with its coordinates randomly permuted."""
    T, m, g = 5, 2, 3
    G, C, L = random_blocks(rng, T, m, g)
    H = dense_of(G, C, L)
    perm = rng.permutation(H.shape[0])           # new position k holds old perm[k]
    where = np.argsort(perm)                     # old coordinate i is at where[i]
    Hp = H[np.ix_(perm, perm)]
    gi = where[:g]
    li = where[g:].reshape(T, m)
    return scipy.sparse.csr_array(Hp), gi, li, Hp


def assert_matches_dense(A, Hp, gi, b):
    """Solves, the inverse's global block, logdet, the sparse form and
    products of an ``ArrowheadHessian`` against its dense matrix ``Hp``
    (``b`` of shape (D, k)); returns ``inv(Hp)`` for the block checks."""
    inv = np.linalg.inv(Hp)
    np.testing.assert_allclose(A.solve(b), np.linalg.solve(Hp, b), rtol=1e-10,
                               atol=1e-12)
    np.testing.assert_allclose(A.solve(b[:, 0]), np.linalg.solve(Hp, b[:, 0]),
                               rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(A.inverse_global_block(), inv[np.ix_(gi, gi)],
                               rtol=1e-10, atol=1e-13)
    np.testing.assert_allclose(A.logdet(), np.linalg.slogdet(Hp)[1], rtol=1e-12)
    np.testing.assert_array_equal(A.to_sparse().toarray(), Hp)
    np.testing.assert_allclose(A.dot(b), Hp @ b, rtol=1e-12)
    np.testing.assert_allclose(A @ b[:, 0], Hp @ b[:, 0], rtol=1e-12)
    return inv


def test_from_sparse_solve_and_inverse_blocks(shuffled, rng):
    hs, gi, li, Hp = shuffled
    hs_before = hs.copy()
    A = ArrowheadHessian.from_sparse(hs, gi, li)
    inv = assert_matches_dense(A, Hp, gi, rng.normal(size=(Hp.shape[0], 3)))
    local = np.stack([inv[np.ix_(r, r)] for r in li])
    np.testing.assert_allclose(A.inverse_local_blocks(), local, rtol=1e-10, atol=1e-13)
    cross = np.stack([inv[np.ix_(gi, r)] for r in li])
    np.testing.assert_allclose(A.inverse_cross_blocks(), cross, rtol=1e-10, atol=1e-13)
    assert (hs != hs_before).nnz == 0
    assert A.shape == Hp.shape and A.n_global == 3 and A.n_groups == 5
    assert A.n_local == 2


def test_solvers_from_every_entry_point(shuffled, rng):
    hs, gi, li, Hp = shuffled
    b = rng.normal(size=(Hp.shape[0], 2))
    x = np.linalg.solve(Hp, b)
    A = ArrowheadHessian.from_sparse(hs, gi, li)
    for solver in (A.solver(),
                   get_solver('arrowhead', hessian=hs, global_inds=gi, local_inds=li),
                   get_solver('arrowhead', hessian=Hp, global_inds=gi, local_inds=li),
                   get_solver('arrowhead', hessian=A),
                   get_cholesky_solver(A),
                   as_solver('arrowhead', hessian=A)):
        assert isinstance(solver, LinearSolver) and solver.kind == 'arrowhead'
        np.testing.assert_allclose(solver(b), x, rtol=1e-10, atol=1e-12)
    # Other kinds accept an ArrowheadHessian too (as its sparse matrix / product).
    for kind in ('dense', 'sparse', 'lu', 'cg'):
        solver = get_solver(kind, hessian=A)
        assert solver.kind == kind
        np.testing.assert_allclose(solver(b), x, rtol=1e-8, atol=1e-10)
    with pytest.raises(ValueError, match="b must have leading dimension D = 13"):
        A.solver()(np.ones(12))
    with pytest.raises(ValueError, match="b must have leading dimension D = 13"):
        A.solve(np.ones((12, 2)))
    with pytest.raises(ValueError, match=r"b must be finite"):
        A.solve(np.full(13, np.nan))


@pytest.mark.parametrize('T,m,g', [(4, 1, 2), (3, 3, 4), (6, 2, 0), (0, 2, 3),
                                   (1, 1, 1)])
def test_shapes_and_edge_cases(T, m, g, rng):
    G, C, L = random_blocks(rng, T, m, g)
    A = ArrowheadHessian(G, C, L)
    H = dense_of(G, C, L)
    inv = np.linalg.inv(H)
    b = rng.normal(size=H.shape[0])
    np.testing.assert_allclose(A.solve(b), np.linalg.solve(H, b), rtol=1e-10,
                               atol=1e-12)
    np.testing.assert_allclose(A.inverse_global_block(), inv[:g, :g], atol=1e-12)
    loc = np.stack([inv[g + t * m:g + (t + 1) * m, g + t * m:g + (t + 1) * m]
                    for t in range(T)]) if T else np.zeros((0, m, m))
    np.testing.assert_allclose(A.inverse_local_blocks(), loc, atol=1e-12)
    assert A.inverse_cross_blocks().shape == (T, g, m)
    np.testing.assert_allclose(A.to_sparse().toarray(), H)


def test_block_constructor_copies_and_does_not_mutate(rng):
    G, C, L = random_blocks(rng)
    G0, C0, L0 = G.copy(), C.copy(), L.copy()
    A = ArrowheadHessian(G, C, L)
    A.solve(np.ones(A.dim))
    G[0, 0] = 1e6                                  # later edits do not leak in
    np.testing.assert_allclose(A.global_block, G0)
    np.testing.assert_array_equal(C, C0)
    np.testing.assert_array_equal(L, L0)
    out = A.local_blocks
    out[0] = 0.0                                   # nor do edits of the copies
    np.testing.assert_array_equal(A.local_blocks, L0)


def test_local_block_not_pd_names_group_and_eigenvalue(rng):
    G, C, L = random_blocks(rng, T=6)
    q, _ = np.linalg.qr(rng.normal(size=(2, 2)))
    L[3] = (q * np.array([-0.25, 2.0])) @ q.T
    A = ArrowheadHessian(G, C, L)
    with pytest.raises(ValueError, match=r"hessian is not positive definite: the "
                                         r"local block of group 3 .*smallest "
                                         r"eigenvalue -0\.25"):
        A.solve(np.ones(A.dim))
    L[3] = np.diag([-1.0, 2.0])                     # negative diagonal: fast path
    with pytest.raises(ValueError, match=r"group 3 has diagonal entry -1 .*"
                                         r"smallest eigenvalue -1\b"):
        ArrowheadHessian(G, C, L).inverse_local_blocks()


def test_local_block_near_singular(rng):
    G, C, L = random_blocks(rng, T=4)
    L[2] = np.array([[1.0, 1.0], [1.0, 1.0 + 1e-14]])
    with pytest.raises(ValueError, match=r"numerically singular: the local block "
                                         r"of group 2 .*condition number"):
        ArrowheadHessian(G, C, L).solver()


#: The message of a Schur complement with eigenvalue -0.5.
SCHUR_NOT_PD = (r"hessian's Schur complement .* is not positive definite.*"
                r"smallest eigenvalue is -0\.5\b.*global coordinate")


def with_indefinite_schur(G, schur, rng):
    """``G`` changed so that the Schur complement ``schur`` of the arrowhead
    becomes one with eigenvalues -0.5, 1 and 2 (``G`` is 3 x 3)."""
    q, _ = np.linalg.qr(rng.normal(size=(3, 3)))
    return G - schur + (q * np.array([-0.5, 1.0, 2.0])) @ q.T


def test_schur_complement_not_pd_reports_eigenvalue(rng):
    G, C, L = random_blocks(rng, T=5, g=3, cross=1.0)
    schur = G - np.einsum('tgm,tmn,thn->gh', C, np.linalg.inv(L), C)
    G = with_indefinite_schur(G, schur, rng)
    A = ArrowheadHessian(G, C, L)
    with pytest.raises(ValueError, match=SCHUR_NOT_PD):
        A.inverse_global_block()
    # The full matrix is indeed indefinite with exactly one negative eigenvalue.
    assert np.sum(np.linalg.eigvalsh(dense_of(G, C, L)) < 0) == 1
    # Opt-in falls back to a general factorisation with a warning.
    b = rng.normal(size=A.dim)
    with pytest.warns(RefoldWarning, match="pseudo-inverse"):
        solver = A.solver(on_failure='pinv')
    np.testing.assert_allclose(solver(b), np.linalg.solve(dense_of(G, C, L), b),
                               rtol=1e-9)


def test_from_sparse_rejects_cross_group_coupling(shuffled):
    hs, gi, li, Hp = shuffled
    bad = Hp.copy()
    i, j = li[1, 0], li[3, 1]
    bad[i, j] = bad[j, i] = 0.01
    with pytest.raises(ValueError, match=r"hessian is not arrowhead-structured: "
                                         r"hessian\[\d+, \d+\] = 0\.01 couples the "
                                         r"locals of groups (1 and 3|3 and 1)"):
        ArrowheadHessian.from_sparse(scipy.sparse.csr_array(bad), gi, li)


def test_from_sparse_rejects_bad_indices(shuffled):
    hs, gi, li, _ = shuffled
    dup = li.copy()
    dup[0, 0] = gi[0]
    with pytest.raises(ValueError, match=r"exactly once; index \d+ appears 2 times"):
        ArrowheadHessian.from_sparse(hs, gi, dup)
    with pytest.raises(ValueError, match=r"they hold 2 \+ 10 indices but hessian "
                                         r"has dimension 13"):
        ArrowheadHessian.from_sparse(hs, gi[:2], li)
    neg = li.copy()
    neg[0, 0] = -1
    with pytest.raises(ValueError, match=r"local_inds must lie in \[0, 13\); got -1"):
        ArrowheadHessian.from_sparse(hs, gi, neg)
    with pytest.raises(TypeError, match="global_inds must be an integer array"):
        ArrowheadHessian.from_sparse(hs, gi.astype(float), li)
    with pytest.raises(ValueError, match=r"local_inds must have shape \(T, m\)"):
        ArrowheadHessian.from_sparse(hs, gi, li.ravel())


def test_from_sparse_rejects_bad_matrices(shuffled):
    hs, gi, li, Hp = shuffled
    bad = Hp.copy()
    bad[gi[0], li[2, 1]] += 1.0
    with pytest.raises(ValueError, match=r"hess is not symmetric"):
        ArrowheadHessian.from_sparse(scipy.sparse.csr_array(bad), gi, li, name='hess')
    bad = Hp.copy()
    bad[li[0, 0], li[0, 0]] = np.nan
    with pytest.raises(ValueError, match=r"hessian must be finite"):
        ArrowheadHessian.from_sparse(bad, gi, li)
    with pytest.raises(ValueError, match="hessian must be a non-empty square"):
        ArrowheadHessian.from_sparse(np.ones((13, 12)), gi, li)


def test_block_constructor_rejects_bad_blocks(rng):
    G, C, L = random_blocks(rng)
    with pytest.raises(ValueError, match=r"cross_blocks must have shape \(T, g, m\)"):
        ArrowheadHessian(G, C.transpose(1, 0, 2), L)
    with pytest.raises(ValueError, match="local_blocks must be 3-d"):
        ArrowheadHessian(G, C, L[0])
    with pytest.raises(ValueError, match="global_block must be square"):
        ArrowheadHessian(G[:2], C, L)
    Lb = L.copy()
    Lb[2, 0, 1] += 0.5
    with pytest.raises(ValueError, match=r"hessian is not symmetric: \|hessian"
                                         r"\[7, 8\] - hessian\[8, 7\]\|"):
        ArrowheadHessian(G, C, Lb)
    Cb = C.copy()
    Cb[1, 0, 0] = np.inf
    with pytest.raises(ValueError, match=r"cross_blocks must be finite; "
                                         r"cross_blocks\[1, 0, 0\] = inf"):
        ArrowheadHessian(G, Cb, L)
    with pytest.raises(TypeError, match="local_blocks must be real"):
        ArrowheadHessian(G, C, L * 1j)
    with pytest.raises(ValueError, match="on_failure must be one of"):
        ArrowheadHessian(G, C, L).solver(on_failure='skip')


def _blocks_of(H, gi, li):
    """The blocks of a dense matrix, cut out independently of the class."""
    return (H[np.ix_(gi, gi)], np.stack([H[np.ix_(gi, r)] for r in li]),
            np.stack([H[np.ix_(r, r)] for r in li]))


def _stored(Hp, fmt):
    """``Hp`` in scipy format ``fmt``, with the awkward storage cases: COO
    with split duplicates, CSR with unsorted indices and explicit zeros."""
    if fmt == 'coo-duplicates':
        coo = scipy.sparse.coo_array(Hp)
        half = 0.5 * coo.data
        return scipy.sparse.coo_array(
            (np.concatenate([half, half]), (np.tile(coo.row, 2),
                                            np.tile(coo.col, 2))), shape=Hp.shape)
    if fmt == 'csr-unsorted':
        csr = scipy.sparse.csr_array(Hp)
        for r in range(csr.shape[0]):          # reverse every row's entries
            s = slice(csr.indptr[r], csr.indptr[r + 1])
            csr.indices[s] = csr.indices[s][::-1]
            csr.data[s] = csr.data[s][::-1]
        csr.has_sorted_indices = False
        return csr
    if fmt == 'dense':
        return Hp
    return scipy.sparse.csr_matrix(Hp).asformat(fmt)


@pytest.mark.parametrize('ordered', [False, True])
@pytest.mark.parametrize('fmt', ['csr', 'csc', 'coo', 'lil', 'dense',
                                 'coo-duplicates', 'csr-unsorted'])
def test_from_sparse_blocks_in_every_storage(shuffled, fmt, ordered, rng):
    hs, gi, li, Hp = shuffled
    if ordered:         # globals first, then the groups in turn (row runs)
        T, m, g = 5, 2, 3
        Hp = dense_of(*random_blocks(rng, T, m, g))
        gi, li = np.arange(g), g + np.arange(T * m).reshape(T, m)
    G, C, L = _blocks_of(Hp, gi, li)
    stored = _stored(Hp, fmt)
    A = ArrowheadHessian.from_sparse(stored, gi, li)
    np.testing.assert_allclose(A.global_block, G, rtol=1e-15, atol=0)
    np.testing.assert_allclose(A.cross_blocks, C, rtol=1e-15, atol=0)
    np.testing.assert_allclose(A.local_blocks, L, rtol=1e-15, atol=0)
    np.testing.assert_array_equal(A.global_inds, gi)
    np.testing.assert_array_equal(A.local_inds, li)


@pytest.mark.parametrize('T,m,g', [(6, 2, 0), (0, 2, 3), (1, 1, 1), (4, 3, 2)])
def test_from_sparse_edge_shapes_and_float32(T, m, g, rng):
    G, C, L = random_blocks(rng, T, m, g)
    H = dense_of(G, C, L)
    perm = rng.permutation(H.shape[0])
    where = np.argsort(perm)
    Hp = H[np.ix_(perm, perm)]
    gi, li = where[:g], where[g:].reshape(T, m)
    A = ArrowheadHessian.from_sparse(scipy.sparse.csr_array(Hp), gi, li)
    np.testing.assert_allclose(A.to_sparse().toarray(), Hp, rtol=1e-15, atol=0)
    A32 = ArrowheadHessian.from_sparse(
        scipy.sparse.csr_array(Hp.astype(np.float32)), gi, li)
    np.testing.assert_allclose(A32.to_sparse().toarray(), Hp, rtol=1e-6)


def test_from_sparse_allows_explicit_zero_couplings(shuffled):
    hs, gi, li, Hp = shuffled
    coo = scipy.sparse.coo_array(Hp)
    i, j = li[1, 0], li[3, 1]
    with_zeros = scipy.sparse.coo_array(
        (np.concatenate([coo.data, [0.0, 0.0]]),
         (np.concatenate([coo.row, [i, j]]), np.concatenate([coo.col, [j, i]]))),
        shape=Hp.shape).tocsr()
    A = ArrowheadHessian.from_sparse(with_zeros, gi, li)
    np.testing.assert_allclose(A.to_sparse().toarray(), Hp, rtol=0, atol=0)


def test_from_sparse_reports_the_first_coupling_and_nan(shuffled):
    hs, gi, li, Hp = shuffled
    bad = Hp.copy()
    pairs = [(li[4, 1], li[0, 0]), (li[2, 0], li[1, 1])]
    for i, j in pairs:
        bad[i, j] = bad[j, i] = 0.5
    first = min(min(p) for p in pairs)                 # the smallest row index
    with pytest.raises(ValueError, match=rf"hessian\[{first}, \d+\] = 0\.5 "
                                         r"couples the locals of groups"):
        ArrowheadHessian.from_sparse(scipy.sparse.csr_array(bad), gi, li)
    bad = Hp.copy()
    bad[li[3, 1], gi[2]] = bad[li[0, 0], li[0, 1]] = np.inf
    k = min((li[3, 1], gi[2]), (li[0, 0], li[0, 1]))
    with pytest.raises(ValueError, match=rf"hessian must be finite; "
                                         rf"hessian\[{k[0]}, {k[1]}\] = inf"):
        ArrowheadHessian.from_sparse(scipy.sparse.csc_array(bad), gi, li)
