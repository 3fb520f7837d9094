r"""Linear solvers for Hessians and Jacobians, with diagnostics.

A *solver* is a callable ``solver(b) -> x`` with :math:`H x = b`, where ``b`` has
shape ``(D,)`` or ``(D, k)`` (``k`` right-hand sides share one factorisation) and
``x`` has the shape of ``b``.  Every solver made here is a :class:`LinearSolver`,
which validates ``b`` and records how it was made in ``solver.info``.

Factories
---------
``get_dense_cholesky_solver``, ``get_sparse_cholesky_solver``,
``get_cholesky_solver`` (vittles names), ``get_cg_solver`` (matrix-free, from
Hessian-vector products), ``get_lu_solver`` (non-symmetric Jacobians),
``get_solver(kind, ...)`` and ``as_solver(solver_or_kind, ...)``.  The block
(arrowhead) solver lives in :mod:`refold.sensitivity.arrowhead`.

Diagnostics and thresholds
--------------------------
With ``eps`` the machine epsilon of the matrix's dtype (at least float64's, since
the work is done in float64):

* *symmetric*: ``max |H - H.T| <= sqrt(eps) * max |H|``; the symmetric part
  ``(H + H.T) / 2`` is what is then factorised.
* *positive definite*: the Cholesky (dense) or symmetric-pivoting
  :math:`LDL^T` (sparse) factorisation succeeds with positive pivots;
  eigenvalues are only computed when it fails, to report the smallest one.
* *not near-singular*: the condition number of the matrix scaled to unit
  diagonal, :math:`\operatorname{diag}(H)^{-1/2} H \operatorname{diag}(H)^{-1/2}`
  (what governs the accuracy of a Cholesky solve; the scaling makes it
  independent of the units of the parameters) is at most ``1 / (1000 eps)``
  (about 4.5e12 in float64).  It is estimated from the factor in
  :math:`O(D^2)` (LAPACK ``pocon``/``gecon``) or, for sparse matrices, with a
  few extra solves (Hager-Higham 1-norm estimator).  LU solvers use the matrix
  equilibrated by powers of two.

Opt-in for singular or indefinite matrices
------------------------------------------
Factorising factories take ``on_failure``:

* ``'raise'`` (default): a ``ValueError`` naming the smallest eigenvalue or the
  condition number;
* ``'pinv'``: the Moore-Penrose pseudo-inverse from an eigen-decomposition
  (singular values for LU); eigenvalues with ``|lambda| <= 1000 eps max|lambda|``
  are treated as zero (negative eigenvalues above the cutoff are inverted, so an
  indefinite but non-singular matrix gets its true inverse);
* ``'regularize'``: solve :math:`(H + \lambda I) x = b` with
  :math:`\lambda = 2\max(0, -\lambda_{\min}) + \sqrt{eps}\,\max|\lambda_i|`,
  so that the smallest eigenvalue of :math:`H + \lambda I` is
  :math:`|\lambda_{\min}| + \sqrt{eps}\,\max|\lambda_i|` (a singular
  positive semi-definite :math:`H` gets a tiny ridge; an indefinite one has its
  most negative eigenvalue reflected, not moved next to zero).

Taking an opt-in path emits a :class:`RefoldWarning`; the choice is recorded in
``solver.info``.  Sparse matrices are densified for ``'pinv'``.
"""
from __future__ import annotations

import numbers
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Callable, Optional, Tuple

import numpy as np
import scipy.linalg
import scipy.sparse
import scipy.sparse.linalg
from scipy.linalg import lapack

__all__ = [
    'RefoldWarning', 'LinearSolver', 'SOLVER_KINDS', 'ON_FAILURE',
    'check_hessian', 'get_dense_cholesky_solver', 'get_sparse_cholesky_solver',
    'get_cholesky_solver', 'get_cg_solver', 'get_lu_solver', 'get_solver',
    'as_solver',
]

SOLVER_KINDS = ('cholesky', 'dense', 'sparse', 'cg', 'lu', 'arrowhead')
ON_FAILURE = ('raise', 'pinv', 'regularize')

_SINGULAR_FACTOR = 1e3      # near-singular when rcond < 1e3 * eps
_DENSE_EIG_MAX = 2000       # sparse diagnostics densify up to this dimension
_CG_DEFAULTS = {'rtol': 1e-10, 'atol': 0.0, 'maxiter': None}
_OPT_IN = ("To solve anyway, pass on_failure='pinv' (pseudo-inverse) or "
           "on_failure='regularize' (add a multiple of the identity).")


class RefoldWarning(UserWarning):
    """Warning emitted when refold takes a documented fallback path."""


# ----------------------------------------------------------------------------
# Validation helpers
# ----------------------------------------------------------------------------
def _eps_of(dtype: np.dtype) -> float:
    eps64 = float(np.finfo(np.float64).eps)
    if np.issubdtype(dtype, np.floating):
        return max(float(np.finfo(dtype).eps), eps64)
    return eps64


def _singular_rcond(eps: float) -> float:
    return _SINGULAR_FACTOR * eps


def _check_real_dtype(dtype: np.dtype, name: str) -> None:
    if np.issubdtype(dtype, np.complexfloating):
        raise TypeError(f"{name} must be real; got complex dtype {dtype}")
    if not (np.issubdtype(dtype, np.number) or dtype == np.bool_):
        raise TypeError(f"{name} must be a real numeric array; got dtype {dtype}")


def _check_on_failure(on_failure: Any, allowed=ON_FAILURE) -> str:
    if not isinstance(on_failure, str) or on_failure not in allowed:
        raise ValueError(f"on_failure must be one of {allowed}; got {on_failure!r}")
    return on_failure


def _check_dim(dim: Any, name: str = 'dim') -> int:
    if isinstance(dim, (bool, np.bool_)) or not isinstance(dim, numbers.Integral):
        raise TypeError(f"{name} must be a positive integer; got {dim!r}")
    if dim < 1:
        raise ValueError(f"{name} must be a positive integer; got {dim}")
    return int(dim)


def _as_dense_square(h: Any, name: str) -> Tuple[np.ndarray, float]:
    """Return a float64 view/copy of a finite square matrix and its eps."""
    if scipy.sparse.issparse(h):
        h = h.toarray()
    try:
        arr = np.asarray(h)
    except Exception as err:  # e.g. ragged nested lists
        raise TypeError(f"{name} must be a square numeric matrix; got "
                        f"{type(h).__name__} ({err})") from None
    _check_real_dtype(arr.dtype, name)
    if arr.ndim != 2 or arr.shape[0] != arr.shape[1] or arr.shape[0] == 0:
        raise ValueError(f"{name} must be a non-empty square 2-d matrix; got "
                         f"shape {arr.shape}")
    eps = _eps_of(arr.dtype)
    arr = arr.astype(np.float64, copy=False)
    if not np.isfinite(np.sum(arr)):        # fast path; the sum may overflow
        bad = ~np.isfinite(arr)
        if not bad.any():
            return arr, eps
        i, j = np.argwhere(bad)[0]
        raise ValueError(f"{name} must be finite; {name}[{i}, {j}] = {arr[i, j]}")
    return arr, eps


def _as_sparse_square(h: Any, name: str):
    """Return a float64 CSC copy of a finite square scipy.sparse matrix."""
    if not scipy.sparse.issparse(h):
        raise TypeError(f"{name} must be a scipy.sparse matrix; got "
                        f"{type(h).__name__}")
    _check_real_dtype(h.dtype, name)
    if h.ndim != 2 or h.shape[0] != h.shape[1] or h.shape[0] == 0:
        raise ValueError(f"{name} must be a non-empty square 2-d matrix; got "
                         f"shape {h.shape}")
    eps = _eps_of(h.dtype)
    h = scipy.sparse.csc_array(h, dtype=np.float64, copy=True)
    h.sum_duplicates()
    if not np.isfinite(h.data).all():
        coo = h.tocoo()
        bad = np.flatnonzero(~np.isfinite(coo.data))
        k = bad[np.lexsort((coo.col[bad], coo.row[bad]))[0]]
        raise ValueError(f"{name} must be finite; {name}[{coo.row[k]}, "
                         f"{coo.col[k]}] = {coo.data[k]}")
    return h, eps


def _asymmetry_error(name, i, j, a_ij, a_ji, gap, tol) -> ValueError:
    return ValueError(
        f"{name} is not symmetric: |{name}[{i}, {j}] - {name}[{j}, {i}]| = "
        f"{gap:.3g} ({a_ij:.6g} vs {a_ji:.6g}) exceeds the tolerance {tol:.3g} "
        f"(sqrt(eps) * max|{name}|). A Hessian must be symmetric; for a "
        f"non-symmetric Jacobian use get_lu_solver (kind='lu').")


def _symmetrized(h: np.ndarray, name: str, eps: float) -> np.ndarray:
    """Check ``h`` is symmetric to tolerance; return ``(h + h.T) / 2`` (new array)."""
    diff = h - h.T
    hs = h - 0.5 * diff
    np.abs(diff, out=diff)
    k = int(np.argmax(diff))
    tol = np.sqrt(eps) * max(abs(float(np.max(h))), abs(float(np.min(h))))
    if diff.flat[k] > tol:
        i, j = divmod(k, h.shape[0])
        raise _asymmetry_error(name, i, j, h[i, j], h[j, i], diff.flat[k], tol)
    return hs


def _check_symmetric_sparse(h, name: str, eps: float) -> None:
    gap = abs(h - h.T).tocoo()
    if gap.nnz == 0:
        return
    k = int(np.argmax(gap.data))
    tol = np.sqrt(eps) * float(np.max(np.abs(h.data)))
    if gap.data[k] > tol:
        i, j = int(gap.row[k]), int(gap.col[k])
        raise _asymmetry_error(name, i, j, h[i, j], h[j, i], gap.data[k], tol)


def _check_rhs(b: Any, dim: Optional[int], name: str = 'b'
               ) -> Tuple[np.ndarray, bool]:
    """Validate a right-hand side; return it as float64 (D, k) and is-vector."""
    if scipy.sparse.issparse(b):
        b = b.toarray()
    try:
        arr = np.asarray(b)
    except Exception as err:
        raise TypeError(f"{name} must be a numeric array; got "
                        f"{type(b).__name__} ({err})") from None
    _check_real_dtype(arr.dtype, name)
    if arr.ndim not in (1, 2):
        raise ValueError(f"{name} must have shape (D,) or (D, k)"
                         f"{'' if dim is None else f' with D = {dim}'}; got "
                         f"shape {arr.shape}")
    if dim is not None and arr.shape[0] != dim:
        raise ValueError(f"{name} must have leading dimension D = {dim} "
                         f"(shape (D,) or (D, k)); got shape {arr.shape}")
    arr = arr.astype(np.float64, copy=False)
    bad = ~np.isfinite(arr)
    if bad.any():
        where = tuple(int(i) for i in np.argwhere(bad)[0])
        raise ValueError(f"{name} must be finite; {name}"
                         f"{list(where)} = {arr[where]}")
    vector = arr.ndim == 1
    return (arr[:, None] if vector else arr), vector


# ----------------------------------------------------------------------------
# The solver object
# ----------------------------------------------------------------------------
class LinearSolver:
    r"""A validated solver :math:`b \mapsto H^{-1} b`.

    Parameters
    ----------
    solve : callable
        Maps a float64 array of shape ``(D, k)`` to the solution of the same shape.
    dim : int or None
        ``D``; ``None`` when unknown (only for wrapped user callables).
    kind : str
        How the solver was made (``'cholesky'``, ``'cg'``, ``'user'``, ...).
    info : dict, optional
        Details (method, condition estimate, shift, rank, ...).

    Examples
    --------
    >>> import numpy as np
    >>> solver = get_cholesky_solver(np.array([[2.0, 0.0], [0.0, 4.0]]))
    >>> solver(np.array([2.0, 2.0]))
    array([1. , 0.5])
    """

    def __init__(self, solve: Callable[[np.ndarray], np.ndarray],
                 dim: Optional[int], kind: str, info: Optional[dict] = None):
        self._solve = solve
        self.dim = dim
        self.kind = kind
        self.info = dict(info or {})

    def __call__(self, b: Any) -> np.ndarray:
        """Return ``x`` with ``H x = b`` (shape of ``b``)."""
        b2, vector = _check_rhs(b, self.dim)
        if b2.shape[1] == 0:
            x = np.zeros(b2.shape)
        else:
            x = self._solve(b2)
        return x[:, 0] if vector else x

    def __repr__(self) -> str:
        method = self.info.get('method', self.kind)
        return f"LinearSolver(kind={self.kind!r}, dim={self.dim}, method={method!r})"


# ----------------------------------------------------------------------------
# Failure diagnosis (shared by dense, sparse and block solvers)
# ----------------------------------------------------------------------------
@dataclass
class _Failure:
    """Why a symmetric factorisation was refused."""
    kind: str                      # 'indefinite' or 'singular'
    cond: float
    min_eig: Optional[float] = None
    max_abs_eig: Optional[float] = None
    n_negative: Optional[int] = None
    coord: Optional[int] = None    # largest entry of the smallest eigenvector
    scaled_cond: bool = False      # cond is of the unit-diagonal scaling
    eig: Optional[tuple] = None    # (w, V) when a full decomposition was done

    def message(self, name: str, eps: float, coord_names=None,
                hint: str = _OPT_IN) -> str:
        where = ''
        if self.coord is not None:
            label = (coord_names(self.coord) if coord_names is not None
                     else f"coordinate {self.coord}")
            where = f"; its eigenvector is largest at {label}"
        if self.kind == 'indefinite':
            neg = ('' if self.n_negative is None
                   else f" ({self.n_negative} negative eigenvalue"
                        f"{'s' if self.n_negative != 1 else ''})")
            low = ('could not be computed' if self.min_eig is None
                   else f"is {self.min_eig:.6g}")
            text = (f"{name} is not positive definite{neg}: its smallest "
                    f"eigenvalue {low}{where}.")
        else:
            how = (' (estimated, of its unit-diagonal scaling)'
                   if self.scaled_cond else '')
            eig = ('' if self.min_eig is None
                   else f" (smallest eigenvalue {self.min_eig:.6g}{where})")
            text = (f"{name} is numerically singular: its condition number is "
                    f"{self.cond:.3g}{how}, above {1.0 / _singular_rcond(eps):.3g}"
                    f" = 1/(1000 eps){eig}.")
        return f"{text} {hint}".rstrip()


def _failure_from_eig(min_eig: float, vector: Optional[np.ndarray],
                      max_abs_eig: float, eps: float, n_negative=None,
                      eig=None) -> _Failure:
    """Classify a refused factorisation from (estimates of) extreme eigenvalues."""
    cut = _singular_rcond(eps) * max_abs_eig
    coord = None if vector is None else int(np.argmax(np.abs(vector)))
    if min_eig < -cut:
        if eig is not None:
            n_negative = int(np.sum(eig[0] < -cut))
            small = float(np.min(np.abs(eig[0])))
            cond = np.inf if small == 0 else max_abs_eig / small
        else:
            cond = np.inf
        return _Failure('indefinite', cond, min_eig, max_abs_eig, n_negative,
                        coord, eig=eig)
    cond = np.inf if min_eig <= 0 else max_abs_eig / min_eig
    return _Failure('singular', cond, min_eig, max_abs_eig, None, coord, eig=eig)


def _scaled_anorm(hs: np.ndarray, inv_d: np.ndarray) -> float:
    """1-norm of diag(inv_d) hs diag(inv_d) for symmetric ``hs``."""
    return float(np.max((np.abs(hs) @ inv_d) * inv_d))


def _rcond_from_cholesky(c: np.ndarray, anorm: float, inv_d: np.ndarray) -> float:
    """Reciprocal condition estimate of the unit-diagonal scaling from its factor."""
    rcond, info = lapack.dpocon(c * inv_d[:, None], anorm, uplo='L')
    return float(rcond) if info == 0 else 0.0


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
            cond = np.inf if rcond == 0 else 1.0 / rcond
            return c, rcond, _Failure('singular', cond, scaled_cond=True)
        if rebuild is not None:
            hs = rebuild()
    w, V = scipy.linalg.eigh(hs, check_finite=False)
    return None, 0.0, _failure_from_eig(float(w[0]), V[:, 0],
                                        float(np.max(np.abs(w))), eps, eig=(w, V))


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
                  f"treated as zero.", RefoldWarning, stacklevel=4)

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
                  f"sqrt(eps) max|eigenvalue|).", RefoldWarning, stacklevel=4)


# ----------------------------------------------------------------------------
# Dense Cholesky
# ----------------------------------------------------------------------------
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


def get_dense_cholesky_solver(h: Any, h_chol: Any = None, *,
                              on_failure: str = 'raise',
                              name: str = 'h') -> LinearSolver:
    r"""Return a solver :math:`b \mapsto h^{-1} b` from a dense Cholesky factor.

    Parameters
    ----------
    h : array_like, shape (D, D)
        A symmetric positive definite matrix (a scipy.sparse input is
        densified).  May be ``None`` when ``h_chol`` is given.
    h_chol : tuple or ndarray, optional
        A precomputed factor: the ``(c, lower)`` tuple that
        ``scipy.linalg.cho_factor`` returns, or a lower-triangular ``L`` with
        ``h = L L^T``.  If ``h`` is also given, only the diagonal of
        ``L L^T`` is checked against ``h`` (:math:`O(D^2)`).
    on_failure : {'raise', 'pinv', 'regularize'}
        What to do if ``h`` is not positive definite or is near-singular (see
        the module docstring).  Needs ``h`` when the factor is precomputed.
    name : str
        How ``h`` is named in error messages.

    Returns
    -------
    LinearSolver
        ``solver(b)`` for ``b`` of shape ``(D,)`` or ``(D, k)``.

    Raises
    ------
    ValueError
        If ``h`` is not square, not finite, not symmetric, not positive
        definite (the message gives the smallest eigenvalue) or near-singular
        (the message gives the condition number), or ``h_chol`` is not a valid
        factor of it.
    """
    on_failure = _check_on_failure(on_failure)
    if h_chol is not None:
        hs = None
        if h is not None:
            hs, eps = _as_dense_square(h, name)
            hs = _symmetrized(hs, name, eps)
        else:
            eps = _eps_of(np.float64)
        L = _factor_from_h_chol(h_chol, None if hs is None else hs.shape[0])
        d2 = np.einsum('ij,ij->i', L, L)
        if hs is not None:
            gap = np.abs(d2 - np.diag(hs))
            tol = np.sqrt(eps) * float(np.max(np.abs(np.diag(hs))))
            if gap.max() > tol:
                i = int(np.argmax(gap))
                raise ValueError(f"h_chol is not a Cholesky factor of {name}: "
                                 f"(L L^T)[{i}, {i}] = {d2[i]:.6g} but {name}[{i}, "
                                 f"{i}] = {hs[i, i]:.6g}")
            inv_d = 1.0 / np.sqrt(d2)
            rcond = _rcond_from_cholesky(L, _scaled_anorm(hs, inv_d), inv_d)
        else:
            Ls = L / np.sqrt(d2)[:, None]

            def s_times(v):
                return Ls @ (Ls.T @ v)
            anorm = _norm1_estimate(s_times, s_times, L.shape[0])
            rcond = float(lapack.dpocon(Ls, anorm, uplo='L')[0])
        if rcond < _singular_rcond(eps):
            failure = _Failure('singular', np.inf if rcond == 0 else 1 / rcond,
                               scaled_cond=True)
            if on_failure == 'raise' or hs is None:
                raise ValueError(failure.message(name, eps))
            return _dense_fallback(hs, eps, failure, on_failure, name)
        return _cholesky_linear_solver(L, rcond, 'dense')

    h, eps = _as_dense_square(h, name)
    hs = _symmetrized(h, name, eps)
    c, rcond, failure = _dense_cholesky(hs, eps, rebuild=lambda: 0.5 * (h + h.T))
    if failure is None:
        return _cholesky_linear_solver(c, rcond, 'dense')
    if on_failure == 'raise':
        raise ValueError(failure.message(name, eps))
    return _dense_fallback(0.5 * (h + h.T), eps, failure, on_failure, name)


def _cholesky_linear_solver(c: np.ndarray, rcond: float, kind: str) -> LinearSolver:
    factor = (c, True)

    def solve(B):
        return scipy.linalg.cho_solve(factor, B, check_finite=False)
    return LinearSolver(solve, c.shape[0], kind,
                        {'method': 'cholesky', 'rcond': rcond})


def _dense_fallback(hs, eps, failure, on_failure, name) -> LinearSolver:
    reason = failure.message(name, eps).replace(' ' + _OPT_IN, '')
    w, V = _eigh_full(failure, lambda: hs)
    if on_failure == 'pinv':
        return _pinv_solver(w, V, eps, 'dense', reason)
    lam = _regularize_shift(float(w[0]), float(np.max(np.abs(w))), eps)
    _warn_regularize(reason, name, lam)
    hr = hs + lam * np.eye(hs.shape[0])
    c, rcond, again = _dense_cholesky(hr, eps, rebuild=lambda: hs + lam * np.eye(
        hs.shape[0]))
    if again is not None:
        raise ValueError(again.message(f"{name} + {lam:.3g} I", eps))
    solver = _cholesky_linear_solver(c, rcond, 'dense')
    solver.info.update(method='regularize', shift=lam)
    return solver


# ----------------------------------------------------------------------------
# Sparse symmetric factorisation
# ----------------------------------------------------------------------------
def _norm1_estimate(matvec: Callable, rmatvec: Callable, n: int) -> float:
    """Hager-Higham estimate of the 1-norm of an operator (deterministic)."""
    x = np.full(n, 1.0 / n)
    est = 0.0
    for _ in range(5):
        y = matvec(x)
        new = float(np.abs(y).sum())
        if new <= est:
            break
        est = new
        z = rmatvec(np.where(y >= 0, 1.0, -1.0))
        j = int(np.argmax(np.abs(z)))
        if abs(z[j]) <= z @ x:
            break
        x = np.zeros(n)
        x[j] = 1.0
    alt = (-1.0) ** np.arange(n) * (1.0 + np.arange(n) / max(n - 1, 1))
    return max(est, 2.0 * float(np.abs(matvec(alt)).sum()) / (3.0 * n))


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


def _sparse_rcond(hs, d2: np.ndarray, solve: Callable) -> float:
    """Reciprocal 1-norm condition estimate of the unit-diagonal scaling of ``hs``."""
    d = np.sqrt(d2)

    def scaled_inv(v):
        return d * solve(d * v)
    inv_norm = _norm1_estimate(scaled_inv, scaled_inv, hs.shape[0])
    inv_d = scipy.sparse.diags_array(1.0 / d)
    anorm = float(abs(inv_d @ hs @ inv_d).sum(axis=0).max())
    return 1.0 / (anorm * inv_norm) if inv_norm > 0 else 0.0


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
            return lu, rcond, _Failure('singular', 1.0 / rcond if rcond else np.inf,
                                       scaled_cond=True)
    lam_min, v, rho = _sparse_eigs(hs)
    if lam_min is None:
        return None, 0.0, _Failure('indefinite', np.inf, None, rho, n_neg)
    return None, 0.0, _failure_from_eig(lam_min, v, rho, eps, n_negative=n_neg)


def _lu_linear_solver(lu, rcond: float, kind: str, method: str) -> LinearSolver:
    def solve(B):
        return lu.solve(np.asfortranarray(B))
    return LinearSolver(solve, lu.shape[0], kind, {'method': method, 'rcond': rcond})


def get_sparse_cholesky_solver(h: Any, *, on_failure: str = 'raise',
                               name: str = 'h') -> LinearSolver:
    r"""Return a solver :math:`b \mapsto h^{-1} b` for a sparse SPD matrix.

    scikit-sparse's CHOLMOD is used when it is importable.  Otherwise the
    factorisation is SuperLU's (``scipy.sparse.linalg.splu``) with a
    fill-reducing ordering applied symmetrically (``permc_spec=
    'MMD_AT_PLUS_A'``, or ``'COLAMD'`` when some row has more than
    ``max(16, 10 sqrt(D))`` entries, where minimum degree is slow),
    ``SymmetricMode`` and ``diag_pivot_thresh=0``: every pivot is then a
    diagonal one (checked: the row and column permutations agree), so the
    factorisation is :math:`P H P^T = L D L^T` and, by Sylvester's law of
    inertia, ``h`` is positive definite exactly when all pivots (the diagonal
    of ``U``) are positive.  No dense matrix is formed; eigenvalues (dense
    up to D = 2000, ARPACK beyond) are computed only to describe a failure.

    Parameters
    ----------
    h : scipy.sparse matrix or array, shape (D, D)
        Symmetric positive definite.
    on_failure : {'raise', 'pinv', 'regularize'}
        See the module docstring; ``'pinv'`` densifies ``h``.
    name : str
        How ``h`` is named in error messages.

    Returns
    -------
    LinearSolver

    Raises
    ------
    TypeError
        If ``h`` is not a scipy.sparse matrix.
    ValueError
        If ``h`` is not square, finite, symmetric, positive definite or
        well-conditioned (see :func:`get_dense_cholesky_solver`).
    """
    on_failure = _check_on_failure(on_failure)
    hs, eps = _as_sparse_square(h, name)
    _check_symmetric_sparse(hs, name, eps)
    hs = ((hs + hs.T) * 0.5).tocsc()
    cholmod = _cholmod_solver(hs, eps)
    if cholmod is not None:
        return cholmod
    lu, rcond, failure = _sparse_factor(hs, eps)
    if failure is None:
        return _lu_linear_solver(lu, rcond, 'sparse', 'ldlt')
    if on_failure == 'raise':
        raise ValueError(failure.message(name, eps))
    reason = failure.message(name, eps).replace(' ' + _OPT_IN, '')
    if on_failure == 'pinv':
        w, V = scipy.linalg.eigh(hs.toarray(), check_finite=False)
        return _pinv_solver(w, V, eps, 'sparse', reason + ' (densified)')
    if failure.min_eig is None:
        raise ValueError(failure.message(name, eps) + " (on_failure='regularize' "
                         "needs the smallest eigenvalue, which did not converge)")
    lam = _regularize_shift(failure.min_eig, failure.max_abs_eig or 0.0, eps)
    _warn_regularize(reason, name, lam)
    hr = (hs + lam * scipy.sparse.eye_array(hs.shape[0], format='csc')).tocsc()
    lu, rcond, again = _sparse_factor(hr, eps)
    if again is not None:
        raise ValueError(again.message(f"{name} + {lam:.3g} I", eps))
    solver = _lu_linear_solver(lu, rcond, 'sparse', 'regularize')
    solver.info['shift'] = lam
    return solver


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


def get_cholesky_solver(h: Any, *, on_failure: str = 'raise',
                        name: str = 'h') -> LinearSolver:
    r"""Return a solver :math:`b \mapsto h^{-1} b`, sparse or dense by type of ``h``.

    scipy.sparse input goes to :func:`get_sparse_cholesky_solver`, an
    :class:`~refold.sensitivity.arrowhead.ArrowheadHessian` to its block
    solver, anything else to :func:`get_dense_cholesky_solver`.  ``on_failure``
    and ``name`` are as there.
    """
    if scipy.sparse.issparse(h):
        return get_sparse_cholesky_solver(h, on_failure=on_failure, name=name)
    from refold.sensitivity.arrowhead import ArrowheadHessian
    if isinstance(h, ArrowheadHessian):
        return h.solver(on_failure=on_failure)
    return get_dense_cholesky_solver(h, on_failure=on_failure, name=name)


# ----------------------------------------------------------------------------
# LU for non-symmetric Jacobians
# ----------------------------------------------------------------------------
def _pow2(x: np.ndarray) -> np.ndarray:
    return np.exp2(np.round(np.log2(x)))


def get_lu_solver(h: Any, *, on_failure: str = 'raise',
                  name: str = 'h') -> LinearSolver:
    r"""Return a solver :math:`b \mapsto h^{-1} b` for a non-symmetric square matrix.

    ``h`` is first equilibrated by power-of-two row and column scalings
    :math:`R h C`, then LU-factorised with partial pivoting (dense:
    ``scipy.linalg.lu_factor``; scipy.sparse: ``splu`` with COLAMD).  The
    condition number of :math:`R h C` is estimated (LAPACK ``gecon``, or the
    Hager-Higham estimator for sparse input).

    Parameters
    ----------
    h : array_like or scipy.sparse matrix, shape (D, D)
        E.g. the Jacobian of estimating equations.
    on_failure : {'raise', 'pinv'}
        ``'pinv'`` uses the SVD pseudo-inverse (singular values
        ``<= 1000 eps s_max`` dropped; sparse input densified) and warns.
    name : str
        How ``h`` is named in error messages.

    Returns
    -------
    LinearSolver

    Raises
    ------
    ValueError
        If ``h`` is not square or not finite, or is singular or near-singular
        (the message gives the condition estimate).
    """
    on_failure = _check_on_failure(on_failure, ('raise', 'pinv'))
    sparse = scipy.sparse.issparse(h)
    if sparse:
        hm, eps = _as_sparse_square(h, name)
        absh = abs(hm)
    else:
        hm, eps = _as_dense_square(h, name)
        absh = np.abs(hm)
    row_max = np.asarray(absh.max(axis=1).todense() if sparse else absh.max(axis=1)
                         ).ravel()
    if np.min(row_max) == 0:
        i = int(np.argmin(row_max))
        failure = f"{name} is singular: its row {i} is zero."
        return _lu_fail(hm, eps, failure, on_failure, name)
    r = 1.0 / _pow2(row_max)
    if sparse:
        scaled_abs = scipy.sparse.diags_array(r) @ absh
        col_max = np.asarray(scaled_abs.max(axis=0).todense()).ravel()
    else:
        col_max = (r[:, None] * absh).max(axis=0)
    if np.min(col_max) == 0:
        j = int(np.argmin(col_max))
        return _lu_fail(hm, eps, f"{name} is singular: its column {j} is zero.",
                        on_failure, name)
    c = 1.0 / _pow2(col_max)
    n = hm.shape[0]
    if sparse:
        a = (scipy.sparse.diags_array(r) @ hm @ scipy.sparse.diags_array(c)).tocsc()
        anorm = float(abs(a).sum(axis=0).max())
        try:
            lu = scipy.sparse.linalg.splu(a)
        except RuntimeError:
            return _lu_fail(hm, eps, f"{name} is exactly singular (zero pivot in "
                            "its LU factorisation).", on_failure, name)
        inv_norm = _norm1_estimate(lu.solve, lambda v: lu.solve(v, trans='T'), n)
        rcond = 1.0 / (anorm * inv_norm) if inv_norm > 0 else 0.0

        def solve_scaled(B):
            return lu.solve(np.asfortranarray(B))
    else:
        a = r[:, None] * hm * c[None, :]
        anorm = float(np.abs(a).sum(axis=0).max())
        with warnings.catch_warnings():
            warnings.simplefilter('ignore', scipy.linalg.LinAlgWarning)
            lu_piv = scipy.linalg.lu_factor(a, check_finite=False)
        if np.min(np.abs(np.diag(lu_piv[0]))) == 0:
            rcond = 0.0
        else:
            rcond = float(lapack.dgecon(lu_piv[0], anorm, norm='1')[0])

        def solve_scaled(B):
            return scipy.linalg.lu_solve(lu_piv, B, check_finite=False)
    if rcond < _singular_rcond(eps):
        cond = np.inf if rcond == 0 else 1.0 / rcond
        return _lu_fail(hm, eps, f"{name} is numerically singular: its condition "
                        f"number is {cond:.3g} (estimated, of its equilibrated "
                        f"form), above {1 / _singular_rcond(eps):.3g} = "
                        "1/(1000 eps).", on_failure, name)

    def solve(B):
        return c[:, None] * solve_scaled(r[:, None] * B)
    return LinearSolver(solve, n, 'lu', {'method': 'lu', 'rcond': rcond})


def _lu_fail(hm, eps, reason, on_failure, name) -> LinearSolver:
    if on_failure == 'raise':
        raise ValueError(f"{reason} To solve anyway, pass on_failure='pinv' "
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


# ----------------------------------------------------------------------------
# Matrix-free conjugate gradient
# ----------------------------------------------------------------------------
def _cg_options(cg_opts: Any, dim: int) -> dict:
    if cg_opts is None:
        cg_opts = {}
    if not isinstance(cg_opts, Mapping):
        raise TypeError(f"cg_opts must be a dict; got {type(cg_opts).__name__}")
    opts = dict(_CG_DEFAULTS)
    for key, value in cg_opts.items():
        if key == 'tol':
            warnings.warn("cg_opts['tol'] is the old scipy name; using it as "
                          "cg_opts['rtol']", RefoldWarning, stacklevel=4)
            key = 'rtol'
        if key == 'M':
            raise TypeError("cg_opts['M'] is not accepted; pass preconditioner=")
        if key not in _CG_DEFAULTS:
            raise TypeError(f"cg_opts has unknown key {key!r}; allowed keys are "
                            f"{tuple(_CG_DEFAULTS)}")
        if key == 'maxiter':
            if value is not None:
                value = _check_dim(value, "cg_opts['maxiter']")
        elif (isinstance(value, bool) or not isinstance(value, numbers.Real)
              or not np.isfinite(value) or value < 0):
            raise ValueError(f"cg_opts[{key!r}] must be a finite number >= 0; "
                             f"got {value!r}")
        opts[key] = value
    if opts['maxiter'] is None:
        opts['maxiter'] = 10 * dim
    return opts


def _checked_vector_fn(fn: Callable, dim: int, name: str) -> Callable:
    def apply(v):
        out = fn(v)
        if scipy.sparse.issparse(out):
            out = out.toarray()
        out = np.asarray(out, dtype=np.float64)
        if out.size != dim:
            raise ValueError(f"{name} must return a vector of length {dim}; got "
                             f"shape {out.shape}")
        out = out.reshape(dim)
        if not np.isfinite(out).all():
            raise ValueError(f"{name} returned non-finite values")
        return out
    return apply


def _as_preconditioner(preconditioner: Any, dim: int):
    """Return a function r -> M^{-1} r that checks r^T M^{-1} r > 0."""
    if preconditioner is None:
        return None
    if isinstance(preconditioner, scipy.sparse.linalg.LinearOperator):
        if preconditioner.shape != (dim, dim):
            raise ValueError(f"preconditioner must have shape ({dim}, {dim}); "
                             f"got {preconditioner.shape}")
        apply = _checked_vector_fn(preconditioner.matvec, dim, 'preconditioner')
    elif scipy.sparse.issparse(preconditioner) or isinstance(preconditioner, np.ndarray):
        if scipy.sparse.issparse(preconditioner):
            m, _ = _as_sparse_square(preconditioner, 'preconditioner')
        else:
            m, _ = _as_dense_square(preconditioner, 'preconditioner')
        if m.shape != (dim, dim):
            raise ValueError(f"preconditioner must have shape ({dim}, {dim}); "
                             f"got {m.shape}")
        apply = lambda r: m @ r  # noqa: E731
    elif callable(preconditioner):
        apply = _checked_vector_fn(preconditioner, dim, 'preconditioner')
    else:
        raise TypeError("preconditioner must be a callable v -> M^{-1} v, a "
                        "LinearOperator or a dense/sparse matrix approximating "
                        f"the inverse Hessian; got {type(preconditioner).__name__}")

    def psolve(r):
        z = apply(r)
        if not r @ z > 0:
            raise ValueError("preconditioner is not positive definite: "
                             f"r^T M^-1 r = {r @ z:.3g} <= 0 for a CG residual r")
        return z
    return scipy.sparse.linalg.LinearOperator((dim, dim), matvec=psolve,
                                              dtype=np.float64)


def get_cg_solver(mat_times_vec: Callable[[np.ndarray], np.ndarray], dim: int,
                  cg_opts: Optional[dict] = None,
                  preconditioner: Any = None) -> LinearSolver:
    r"""Return a matrix-free conjugate-gradient solver :math:`b \mapsto H^{-1} b`.

    Uses ``scipy.sparse.linalg.cg``; each Hessian-vector product is checked
    for positive curvature :math:`p^T H p > 0` along the search direction
    :math:`p`, which is how an indefinite Hessian shows itself in CG.  A matrix
    right-hand side is solved column by column.

    Parameters
    ----------
    mat_times_vec : callable
        The Hessian-vector product ``v -> H v`` for ``v`` of shape ``(dim,)``.
    dim : int
        The dimension ``D``.
    cg_opts : dict, optional
        ``rtol`` (default 1e-10), ``atol`` (default 0) and ``maxiter`` (default
        ``10 * dim``), as in ``scipy.sparse.linalg.cg``: CG stops when
        ``||b - H x|| <= max(rtol ||b||, atol)``.  The old name ``tol`` is
        read as ``rtol`` with a :class:`RefoldWarning`.
    preconditioner : callable, LinearOperator, ndarray or sparse matrix, optional
        An approximation ``M^{-1}`` of :math:`H^{-1}` (symmetric positive
        definite), given as the map ``v -> M^{-1} v`` or as a matrix.

    Returns
    -------
    LinearSolver

    Raises
    ------
    ValueError
        When solving: if CG does not converge (the message gives the relative
        residual and the iterations), if :math:`p^T H p \le 0` along a search
        direction (the Hessian is not positive definite; the message gives the
        Rayleigh quotient, an upper bound on the smallest eigenvalue), or if
        ``mat_times_vec`` returns the wrong shape or non-finite values.
    """
    dim = _check_dim(dim)
    if not callable(mat_times_vec):
        raise TypeError("mat_times_vec must be a callable v -> H v; got "
                        f"{type(mat_times_vec).__name__}")
    opts = _cg_options(cg_opts, dim)
    M = _as_preconditioner(preconditioner, dim)
    hvp = _checked_vector_fn(mat_times_vec, dim, 'mat_times_vec')
    state = {'iterations': 0}

    def matvec(p):
        q = hvp(p)
        curvature = float(p @ q)
        if not curvature > 0:
            pp = float(p @ p)
            k = int(np.argmax(np.abs(p)))
            raise ValueError(
                "the Hessian (mat_times_vec) is not positive definite along a "
                "conjugate-gradient "
                f"search direction p (iteration {state['iterations'] + 1}): "
                f"p^T H p / p^T p = {curvature / pp:.6g} <= 0, so its smallest "
                f"eigenvalue is at most that; p is largest at coordinate {k}. "
                "Use a factorising solver with on_failure='pinv' or "
                "'regularize' to solve anyway.")
        return q
    op = scipy.sparse.linalg.LinearOperator((dim, dim), matvec=matvec,
                                            dtype=np.float64)

    def count(_):
        state['iterations'] += 1

    def solve(B):
        X = np.empty_like(B)
        for j in range(B.shape[1]):
            state['iterations'] = 0
            x, status = scipy.sparse.linalg.cg(
                op, B[:, j], rtol=opts['rtol'], atol=opts['atol'],
                maxiter=opts['maxiter'], M=M, callback=count)
            if status != 0:
                res = np.linalg.norm(B[:, j] - hvp(x)) / np.linalg.norm(B[:, j])
                raise ValueError(
                    f"conjugate gradient did not converge for column {j} of b "
                    f"after {state['iterations']} iterations: relative residual "
                    f"||b - H x|| / ||b|| = {res:.3g} > cg_opts['rtol'] = "
                    f"{opts['rtol']:.3g}. Raise cg_opts['maxiter'], loosen "
                    "cg_opts['rtol'] or pass a preconditioner.")
            X[:, j] = x
        return X
    return LinearSolver(solve, dim, 'cg', {'method': 'cg', **opts,
                                           'preconditioned': M is not None})


# ----------------------------------------------------------------------------
# Diagnostics and dispatch
# ----------------------------------------------------------------------------
def check_hessian(h: Any, name: str = 'hessian', *, symmetric: bool = True) -> None:
    r"""Raise ``ValueError`` unless ``h`` is a usable Hessian (or Jacobian).

    Checks, in order: a non-empty square 2-d real matrix (dense or
    scipy.sparse), finite entries, and then, if ``symmetric``, symmetry
    (``max|h - h^T| <= sqrt(eps) max|h|``, the worst pair is reported),
    positive definiteness (the factorisation is attempted first; the smallest
    eigenvalue is computed only on failure) and conditioning (condition number
    of the unit-diagonal scaling at most ``1/(1000 eps)``).  With
    ``symmetric=False`` (a Jacobian) it checks that the equilibrated matrix is
    not near-singular.  Costs one factorisation.

    Parameters
    ----------
    h : array_like or scipy.sparse matrix
    name : str
        How ``h`` is named in error messages.
    symmetric : bool
        Whether ``h`` must be a symmetric positive definite Hessian.

    Raises
    ------
    TypeError, ValueError
        With a message naming ``name``, what was expected and what was found.
    """
    if not symmetric:
        get_lu_solver(h, name=name)
    elif scipy.sparse.issparse(h):
        get_sparse_cholesky_solver(h, name=name)
    else:
        get_dense_cholesky_solver(h, name=name)


_KIND_OPTIONS = {
    'cholesky': ('on_failure', 'name'),
    'dense': ('on_failure', 'name', 'h_chol'),
    'sparse': ('on_failure', 'name'),
    'cg': ('cg_opts', 'preconditioner'),
    'lu': ('on_failure', 'name'),
    'arrowhead': ('global_inds', 'local_inds', 'on_failure', 'name'),
}


def get_solver(kind: str, *, hessian: Any = None, hvp: Optional[Callable] = None,
               dim: Optional[int] = None, **options: Any) -> LinearSolver:
    r"""Make a solver of the given kind.

    Parameters
    ----------
    kind : str
        ``'cholesky'`` (dense or sparse by the type of ``hessian``),
        ``'dense'`` (sparse input densified), ``'sparse'`` (dense input made
        sparse), ``'cg'`` (needs ``hvp`` and ``dim``, or ``hessian``), ``'lu'``
        (non-symmetric), ``'arrowhead'`` (``hessian`` an
        :class:`~refold.sensitivity.arrowhead.ArrowheadHessian`, or a matrix
        with options ``global_inds`` (g,) and ``local_inds`` (T, m)).
    hessian : array_like, scipy.sparse matrix or ArrowheadHessian, optional
    hvp : callable, optional
        ``v -> H v``, for ``'cg'``.
    dim : int, optional
        ``D``, for ``'cg'`` (taken from ``hessian`` when given).
    **options
        Per kind: ``on_failure``, ``name`` (factorising kinds), ``h_chol``
        (``'dense'``), ``cg_opts``, ``preconditioner`` (``'cg'``),
        ``global_inds``, ``local_inds`` (``'arrowhead'``).

    Returns
    -------
    LinearSolver

    Raises
    ------
    ValueError
        For an unknown kind (the message lists the kinds) or a bad matrix.
    TypeError
        For a missing ``hessian``/``hvp``/``dim`` or an option the kind does
        not take.
    """
    if not isinstance(kind, str):
        raise TypeError(f"kind must be a string, one of {SOLVER_KINDS}; got "
                        f"{type(kind).__name__}")
    if kind not in SOLVER_KINDS:
        raise ValueError(f"kind must be one of {SOLVER_KINDS}; got {kind!r}")
    extra = sorted(set(options) - set(_KIND_OPTIONS[kind]))
    if extra:
        raise TypeError(f"solver kind {kind!r} does not take option(s) {extra}; "
                        f"it takes {_KIND_OPTIONS[kind]}")
    from refold.sensitivity.arrowhead import ArrowheadHessian
    if isinstance(hessian, ArrowheadHessian) and kind == 'cg' and hvp is None:
        hvp, dim = hessian.dot, hessian.dim if dim is None else dim
    elif isinstance(hessian, ArrowheadHessian) and kind in ('dense', 'sparse', 'lu'):
        hessian = hessian.to_sparse()
    if kind == 'cg':
        if hvp is None and hessian is not None:
            hm = (_as_sparse_square(hessian, 'hessian')[0]
                  if scipy.sparse.issparse(hessian)
                  else _as_dense_square(hessian, 'hessian')[0])
            hvp, dim = (lambda v: hm @ v), (hm.shape[0] if dim is None else dim)
        if hvp is None or dim is None:
            raise TypeError("solver kind 'cg' needs hvp= (a Hessian-vector "
                            "product) and dim=, or hessian=")
        return get_cg_solver(hvp, dim, options.get('cg_opts'),
                             options.get('preconditioner'))
    if hessian is None:
        raise TypeError(f"solver kind {kind!r} needs hessian=")
    if kind != 'arrowhead':
        options.setdefault('name', 'hessian')
    if kind == 'cholesky':
        return get_cholesky_solver(hessian, **options)
    if kind == 'dense':
        return get_dense_cholesky_solver(hessian, **options)
    if kind == 'sparse':
        if not scipy.sparse.issparse(hessian):
            hessian = scipy.sparse.csc_array(_as_dense_square(hessian, 'hessian')[0])
        return get_sparse_cholesky_solver(hessian, **options)
    if kind == 'lu':
        return get_lu_solver(hessian, **options)
    on_failure = options.pop('on_failure', 'raise')
    if isinstance(hessian, ArrowheadHessian):
        if options:
            raise TypeError(f"option(s) {sorted(options)} are not taken with an "
                            "ArrowheadHessian, which already holds its indices")
        return hessian.solver(on_failure=on_failure)
    missing = [k for k in ('global_inds', 'local_inds') if k not in options]
    if missing:
        raise TypeError(f"solver kind 'arrowhead' needs option(s) {missing} with "
                        "a matrix hessian")
    return ArrowheadHessian.from_sparse(
        hessian, options['global_inds'], options['local_inds'],
        name=options.get('name', 'hessian')).solver(on_failure=on_failure)


def _user_solver(fn: Callable, dim: Optional[int], matrix_rhs: Optional[bool]
                 ) -> LinearSolver:
    """Wrap a user callable: validate ``b`` and the returned shape/values."""
    mode = {'matrix': matrix_rhs}

    def checked(out, shape):
        if scipy.sparse.issparse(out):
            out = out.toarray()
        out = np.asarray(out)
        if out.dtype == object or out.size != int(np.prod(shape)):
            raise ValueError(f"solver returned shape {out.shape} for a right-hand "
                             f"side of shape {shape}")
        out = out.astype(np.float64, copy=False).reshape(shape)
        if not np.isfinite(out).all():
            raise ValueError("solver returned non-finite values")
        return out

    def by_columns(B):
        return np.column_stack([checked(fn(B[:, j]), (B.shape[0],))
                                for j in range(B.shape[1])])

    def solve(B):
        if B.shape[1] == 1:
            return checked(fn(B[:, 0]), (B.shape[0],))[:, None]
        if mode['matrix'] is False:
            return by_columns(B)
        if mode['matrix']:
            return checked(fn(B), B.shape)
        try:                         # auto: try a matrix call once
            out = np.asarray(fn(B))
            ok = out.shape == B.shape
        except Exception:            # noqa: BLE001 - a vector-only solver
            ok = False
        if ok:
            mode['matrix'] = True
            return checked(out, B.shape)
        mode['matrix'] = False
        return by_columns(B)
    return LinearSolver(solve, dim, 'user', {'method': 'user'})


def as_solver(solver_or_kind: Any, *, hessian: Any = None,
              hvp: Optional[Callable] = None, dim: Optional[int] = None,
              **options: Any) -> LinearSolver:
    r"""Return a validated solver from a kind string or a user callable.

    Parameters
    ----------
    solver_or_kind : str or callable
        A kind for :func:`get_solver`, a :class:`LinearSolver` (returned as
        is after a dimension check), or any callable ``b -> H^{-1} b``, which
        is wrapped so that ``b`` is validated and its output checked for
        shape and finiteness.
    hessian, hvp, dim
        As in :func:`get_solver`; for a callable they only fix ``D``.
    **options
        For a kind, as in :func:`get_solver`.  For a callable only
        ``matrix_rhs``: ``True`` (it accepts ``(D, k)`` right-hand sides, as
        vittles' solvers do), ``False`` (call it once per column) or ``None``
        (default: try a matrix call once, and fall back to columns if it
        raises or returns the wrong shape).

    Returns
    -------
    LinearSolver

    Raises
    ------
    TypeError
        If ``solver_or_kind`` is neither, or options are given with a callable.
    ValueError
        If the solver's dimension disagrees with ``hessian``/``dim``.
    """
    if isinstance(solver_or_kind, str):
        options.pop('matrix_rhs', None)
        return get_solver(solver_or_kind, hessian=hessian, hvp=hvp, dim=dim,
                          **options)
    if not callable(solver_or_kind):
        raise TypeError(f"solver must be a callable b -> H^-1 b or one of "
                        f"{SOLVER_KINDS}; got {type(solver_or_kind).__name__}")
    matrix_rhs = options.pop('matrix_rhs', None)
    if options:
        raise TypeError(f"options {sorted(options)} cannot be used with a solver "
                        "callable (only with a solver kind string)")
    if dim is None and hessian is not None:
        dim = getattr(hessian, 'shape', (None,))[0]
    if dim is not None:
        dim = _check_dim(dim)
    if isinstance(solver_or_kind, LinearSolver):
        if dim is not None and solver_or_kind.dim not in (None, dim):
            raise ValueError(f"solver has dimension {solver_or_kind.dim} but the "
                             f"Hessian has dimension {dim}")
        return solver_or_kind
    return _user_solver(solver_or_kind, dim, matrix_rhs)
