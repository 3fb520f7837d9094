r"""The factorisations behind the solver factories (private).

* dense Cholesky with an ``O(D^2)`` condition estimate of the unit-diagonal
  scaling, and the validation of a precomputed factor;
* sparse :math:`LDL^T` (SuperLU with symmetric, diagonal pivoting and a
  fill-reducing ordering; CHOLMOD when scikit-sparse is importable), with
  eigenvalues computed only to describe a failure;
* the opt-in fallbacks for a refused factorisation: the eigen-decomposition
  pseudo-inverse (``on_failure='pinv'``), the shift
  :math:`H + \lambda I` (``on_failure='regularize'``) and, for LU, the SVD
  pseudo-inverse.

The public factories and the thresholds are in
:mod:`refold.sensitivity.solvers`.
"""
from __future__ import annotations

import warnings
from typing import Any, Callable, Optional, Tuple

import numpy as np
import scipy.linalg
import scipy.sparse
import scipy.sparse.linalg
from scipy.linalg import lapack

from refold.sensitivity._hessian_checks import (
    _OPT_IN, _Failure, _as_dense_square, _failure_from_eig, _norm1_estimate,
    _rcond_from_cholesky, _scaled_anorm, _singular_failure, _singular_rcond,
    _sparse_rcond)
from refold.sensitivity._solver_base import LinearSolver, RefoldWarning
from refold.sensitivity.errors import HessianError

_DENSE_EIG_MAX = 2000       # sparse diagnostics densify up to this dimension


# ----------------------------------------------------------------------------
# Dense Cholesky
# ----------------------------------------------------------------------------
def _dense_cholesky(hs: np.ndarray, eps: float,
                    rebuild: Optional[Callable[[], np.ndarray]] = None):
    """Cholesky-factor symmetric ``hs``; return ``(factor, rcond, failure)``.

    With ``rebuild`` (a function returning ``hs`` afresh) ``hs`` is factored
    in place, and rebuilt if the eigenvalues are needed to describe a failure.
    """
    d2 = np.diag(hs).copy()
    if np.min(d2) > 0:
        inv_d = 1.0 / np.sqrt(d2)
        anorm = _scaled_anorm(hs, inv_d)
        try:
            c, _ = scipy.linalg.cho_factor(hs, lower=True, check_finite=False,
                                           overwrite_a=rebuild is not None)
        except np.linalg.LinAlgError:
            pass
        else:
            rcond = _rcond_from_cholesky(c, anorm, inv_d)
            if rcond >= _singular_rcond(eps):
                return c, rcond, None
            return c, rcond, _singular_failure(rcond)
        if rebuild is not None:
            hs = rebuild()
    w, V = scipy.linalg.eigh(hs, check_finite=False)
    return None, 0.0, _failure_from_eig(float(w[0]), V[:, 0],
                                        float(np.max(np.abs(w))), eps, eig=(w, V))


def _factor_from_h_chol(h_chol: Any, dim_hint: Optional[int]):
    """Validate a precomputed Cholesky factor; return lower-triangular L."""
    if isinstance(h_chol, tuple):
        if len(h_chol) != 2:
            raise TypeError("h_chol must be the (c, lower) tuple returned by "
                            "scipy.linalg.cho_factor or a lower-triangular array; "
                            f"got a tuple of length {len(h_chol)}")
        c, lower = h_chol
        c, _ = _as_dense_square(c, 'h_chol[0]')
        L = np.tril(c) if lower else np.triu(c).T
    else:
        L, _ = _as_dense_square(h_chol, 'h_chol')
        upper = np.abs(np.triu(L, 1))
        if upper.max() > 0:
            i, j = np.unravel_index(np.argmax(upper), upper.shape)
            raise ValueError("h_chol must be lower-triangular (L with h = L L^T) "
                             "or the (c, lower) tuple from scipy.linalg.cho_factor;"
                             f" h_chol[{i}, {j}] = {L[i, j]} is above the diagonal")
    diag = np.diag(L)
    if np.min(diag) <= 0:
        i = int(np.argmin(diag))
        raise ValueError("h_chol must be a Cholesky factor with a positive "
                         f"diagonal; its diagonal entry {i} is {diag[i]}")
    if dim_hint is not None and L.shape[0] != dim_hint:
        raise ValueError(f"h_chol has shape {L.shape} but h has dimension {dim_hint}")
    return L


def _cholesky_linear_solver(c: np.ndarray, rcond: float, kind: str) -> LinearSolver:
    factor = (c, True)

    def solve(B):
        return scipy.linalg.cho_solve(factor, B, check_finite=False)
    return LinearSolver(solve, c.shape[0], kind,
                        {'method': 'cholesky', 'rcond': rcond})


def _dense_fallback(hs, eps, failure, on_failure, name) -> LinearSolver:
    """The opt-in solver for symmetric dense ``hs`` whose Cholesky failed."""
    def factor_shifted(lam):
        def shifted():
            return hs + lam * np.eye(hs.shape[0])
        c, rcond, again = _dense_cholesky(shifted(), eps, rebuild=shifted)
        if again is not None:
            return None, again
        return _cholesky_linear_solver(c, rcond, 'dense'), None

    def eigh():
        return _eigh_full(failure, lambda: hs) + ('',)

    def extremes():
        w, _ = _eigh_full(failure, lambda: hs)
        return float(w[0]), float(np.max(np.abs(w)))
    return _fallback_solver(failure, on_failure, name, eps, 'dense', eigh=eigh,
                            extremes=extremes, factor_shifted=factor_shifted)


# ----------------------------------------------------------------------------
# Sparse symmetric factorisation
# ----------------------------------------------------------------------------
def _symmetric_ordering(hs) -> str:
    """SuperLU ordering: minimum degree on H + H^T, or COLAMD with dense rows.

    SuperLU's multiple minimum degree is slow on matrices with dense rows
    (e.g. the global rows of an arrowhead Hessian take it ~1 s at D = 10^4);
    as in AMD, a row with more than ``max(16, 10 sqrt(D))`` entries counts
    as dense, and COLAMD (applied symmetrically) is used instead.
    """
    n = hs.shape[0]
    counts = np.diff(hs.indptr)          # column counts = row counts (symmetric)
    dense = counts.max() > max(16.0, 10.0 * np.sqrt(n))
    return 'COLAMD' if dense else 'MMD_AT_PLUS_A'


def _splu_symmetric(hs):
    """Symmetric-permutation LU (i.e. LDL^T) of symmetric CSC ``hs``, or None."""
    try:
        return scipy.sparse.linalg.splu(
            hs, permc_spec=_symmetric_ordering(hs), diag_pivot_thresh=0.0,
            options={'SymmetricMode': True})
    except RuntimeError:        # "Factor is exactly singular"
        return None


def _sparse_eigs(hs, want_vector: bool = True):
    """Smallest eigenvalue (and vector) and spectral radius of sparse ``hs``."""
    n = hs.shape[0]
    if n <= _DENSE_EIG_MAX:
        w, V = scipy.linalg.eigh(hs.toarray(), check_finite=False)
        return float(w[0]), V[:, 0], float(np.max(np.abs(w)))
    eigsh = scipy.sparse.linalg.eigsh
    rho = float(abs(eigsh(hs, k=1, which='LM', return_eigenvectors=False)[0]))
    try:
        w, V = eigsh(hs, k=1, which='SA', tol=1e-8, maxiter=max(1000, 10 * n))
        return float(w[0]), V[:, 0], rho
    except scipy.sparse.linalg.ArpackNoConvergence as err:
        if len(err.eigenvalues):
            return float(err.eigenvalues[0]), err.eigenvectors[:, 0], rho
        return None, None, rho


def _sparse_factor(hs, eps: float):
    """Return ``(lu, rcond, failure)`` for symmetric CSC ``hs``."""
    d2 = hs.diagonal()
    lu = _splu_symmetric(hs)
    n_neg = None
    if lu is not None and np.array_equal(lu.perm_r, lu.perm_c):
        pivots = lu.U.diagonal()
        n_neg = int(np.sum(pivots < 0))
        if np.all(pivots > 0) and np.min(d2) > 0:
            rcond = _sparse_rcond(hs, d2, lu.solve)
            if rcond >= _singular_rcond(eps):
                return lu, rcond, None
            return lu, rcond, _singular_failure(rcond)
    lam_min, v, rho = _sparse_eigs(hs)
    if lam_min is None:
        return None, 0.0, _Failure('indefinite', np.inf, None, rho, n_neg)
    return None, 0.0, _failure_from_eig(lam_min, v, rho, eps, n_negative=n_neg)


def _lu_linear_solver(lu, rcond: float, kind: str, method: str) -> LinearSolver:
    def solve(B):
        return lu.solve(np.asfortranarray(B))
    return LinearSolver(solve, lu.shape[0], kind, {'method': method, 'rcond': rcond})


def _sparse_fallback(hs, eps, failure, on_failure, name) -> LinearSolver:
    """The opt-in solver for symmetric CSC ``hs`` whose factorisation failed."""
    def factor_shifted(lam):
        hr = (hs + lam * scipy.sparse.eye_array(hs.shape[0], format='csc')).tocsc()
        lu, rcond, again = _sparse_factor(hr, eps)
        if again is not None:
            return None, again
        return _lu_linear_solver(lu, rcond, 'sparse', 'ldlt'), None

    def eigh():
        return scipy.linalg.eigh(hs.toarray(), check_finite=False) + (
            ' (densified)',)

    def extremes():
        if failure.min_eig is None:
            raise HessianError(failure.message(name, eps) + " (on_failure="
                             "'regularize' needs the smallest eigenvalue, "
                             "which did not converge)")
        return failure.min_eig, failure.max_abs_eig or 0.0
    return _fallback_solver(failure, on_failure, name, eps, 'sparse', eigh=eigh,
                            extremes=extremes, factor_shifted=factor_shifted)


def _cholmod_solver(hs, eps: float):  # pragma: no cover - needs scikit-sparse
    """CHOLMOD solver if scikit-sparse is importable and ``hs`` is fine, else None.

    Any failure (not positive definite, near-singular) returns None so that
    the SuperLU path diagnoses it.
    """
    try:
        from sksparse.cholmod import CholmodError, cholesky
    except ImportError:
        return None
    try:
        factor = cholesky(hs)
    except CholmodError:
        return None
    d2 = hs.diagonal()
    if np.min(d2) <= 0:
        return None
    rcond = _sparse_rcond(hs, d2, factor)
    if not rcond >= _singular_rcond(eps):
        return None
    return LinearSolver(lambda B: np.asarray(factor(B)), hs.shape[0], 'sparse',
                        {'method': 'cholmod', 'rcond': rcond})


# ----------------------------------------------------------------------------
# Opt-in fallbacks
# ----------------------------------------------------------------------------
def _fallback_solver(failure: _Failure, on_failure: str, name: str, eps: float,
                     kind: str, *, eigh: Callable[[], Tuple],
                     extremes: Callable[[], Tuple[float, float]],
                     factor_shifted: Callable) -> LinearSolver:
    r"""The ``'pinv'`` or ``'regularize'`` solver for a refused factorisation.

    ``eigh()`` returns ``(w, V, note)``, the full eigen-decomposition and a
    note for the warning; ``extremes()`` the smallest eigenvalue and the
    spectral radius; ``factor_shifted(lam)`` the pair ``(solver, failure)``
    for :math:`H + \lambda I`.
    """
    reason = failure.message(name, eps).replace(' ' + _OPT_IN, '')
    if on_failure == 'pinv':
        w, V, note = eigh()
        return _pinv_solver(w, V, eps, kind, reason + note)
    min_eig, max_abs_eig = extremes()
    lam = _regularize_shift(min_eig, max_abs_eig, eps)
    _warn_regularize(reason, name, lam)
    solver, again = factor_shifted(lam)
    if again is not None:
        raise HessianError(again.message(f"{name} + {lam:.3g} I", eps))
    solver.info.update(method='regularize', shift=lam)
    return solver


def _eigh_full(failure: _Failure, hs_dense: Callable[[], np.ndarray]):
    if failure.eig is not None:
        return failure.eig
    return scipy.linalg.eigh(hs_dense(), check_finite=False)


def _pinv_solver(w: np.ndarray, V: np.ndarray, eps: float, kind: str,
                 reason: str) -> LinearSolver:
    amax = float(np.max(np.abs(w)))
    cut = _singular_rcond(eps) * amax
    keep = np.abs(w) > cut
    Vk, inv_w = V[:, keep], 1.0 / w[keep]
    warnings.warn(f"{reason} Using the eigen-decomposition pseudo-inverse: "
                  f"{int(np.sum(~keep))} of {w.size} eigenvalues with "
                  f"|eigenvalue| <= {cut:.3g} (1000 eps max|eigenvalue|) are "
                  f"treated as zero.", RefoldWarning, stacklevel=5)

    def solve(B):
        return Vk @ (inv_w[:, None] * (Vk.T @ B))
    return LinearSolver(solve, w.size, kind,
                        {'method': 'pinv', 'cutoff': cut, 'rank': int(keep.sum()),
                         'min_eigenvalue': float(w[0])})


def _regularize_shift(min_eig: float, max_abs_eig: float, eps: float) -> float:
    scale = max_abs_eig if max_abs_eig > 0 else 1.0
    return float(2.0 * max(0.0, -min_eig) + np.sqrt(eps) * scale)


def _warn_regularize(reason: str, name: str, lam: float) -> None:
    warnings.warn(f"{reason} Regularising: solving ({name} + lambda I) x = b with "
                  f"lambda = {lam:.6g} (= 2 max(0, -smallest eigenvalue) + "
                  f"sqrt(eps) max|eigenvalue|).", RefoldWarning, stacklevel=5)


# ----------------------------------------------------------------------------
# LU for non-symmetric Jacobians
# ----------------------------------------------------------------------------
def _pow2(x: np.ndarray) -> np.ndarray:
    """The nearest powers of two (exact scalings)."""
    return np.exp2(np.round(np.log2(x)))


def _lu_fail(hm, eps, reason, on_failure, name) -> LinearSolver:
    if on_failure == 'raise':
        raise HessianError(f"{reason} To solve anyway, pass on_failure='pinv' "
                         "(pseudo-inverse).")
    a = hm.toarray() if scipy.sparse.issparse(hm) else hm
    U, s, Vt = scipy.linalg.svd(a, check_finite=False)
    cut = _singular_rcond(eps) * float(s[0])
    keep = s > cut
    Uk, Vk, inv_s = U[:, keep], Vt[keep].T, 1.0 / s[keep]
    warnings.warn(f"{reason} Using the SVD pseudo-inverse: {int(np.sum(~keep))} of "
                  f"{s.size} singular values <= {cut:.3g} (1000 eps s_max) are "
                  "treated as zero.", RefoldWarning, stacklevel=3)

    def solve(B):
        return Vk @ (inv_s[:, None] * (Uk.T @ B))
    return LinearSolver(solve, s.size, 'lu', {'method': 'pinv', 'cutoff': cut,
                                              'rank': int(keep.sum())})


def _equilibrated_lu(hm, r: np.ndarray, c: np.ndarray):
    """LU (partial pivoting) of the equilibrated :math:`R h C`.

    Returns ``(solve_scaled, rcond)``, the solve with :math:`R h C` and the
    reciprocal 1-norm condition estimate of :math:`R h C` (LAPACK ``gecon``,
    or Hager-Higham for scipy.sparse ``hm``), or ``None`` when SuperLU meets
    an exactly zero pivot.
    """
    n = hm.shape[0]
    if scipy.sparse.issparse(hm):
        a = (scipy.sparse.diags_array(r) @ hm @ scipy.sparse.diags_array(c)).tocsc()
        anorm = float(abs(a).sum(axis=0).max())
        try:
            lu = scipy.sparse.linalg.splu(a)
        except RuntimeError:
            return None
        inv_norm = _norm1_estimate(lu.solve, lambda v: lu.solve(v, trans='T'), n)
        rcond = 1.0 / (anorm * inv_norm) if inv_norm > 0 else 0.0

        def solve_sparse(B):
            return lu.solve(np.asfortranarray(B))
        return solve_sparse, rcond
    a = r[:, None] * hm * c[None, :]
    anorm = float(np.abs(a).sum(axis=0).max())
    with warnings.catch_warnings():
        warnings.simplefilter('ignore', scipy.linalg.LinAlgWarning)
        lu_piv = scipy.linalg.lu_factor(a, check_finite=False)
    if np.min(np.abs(np.diag(lu_piv[0]))) == 0:
        rcond = 0.0
    else:
        rcond = float(lapack.dgecon(lu_piv[0], anorm, norm='1')[0])

    def solve_dense(B):
        return scipy.linalg.lu_solve(lu_piv, B, check_finite=False)
    return solve_dense, rcond
