r"""Checks and diagnoses of Hessians (and Jacobians) for the solvers (private).

* validation: a matrix (dense or scipy.sparse) is a non-empty, square, real,
  finite float64 matrix, symmetric to ``sqrt(eps) * max|H|``;
* diagnosis: why a factorisation was refused (:class:`_Failure`: not positive
  definite, or numerically singular), with the message the user sees;
* condition estimates: of the unit-diagonal scaling, from a Cholesky factor
  (LAPACK ``pocon``) or, for sparse matrices, from a few solves (the
  Hager-Higham 1-norm estimator).

The thresholds are those of :mod:`refold.sensitivity.solvers`, whose module
documentation states them.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Optional, Tuple

import numpy as np
import scipy.sparse
from scipy.linalg import lapack

from refold.sensitivity._checks import check_int

ON_FAILURE = ('raise', 'pinv', 'regularize')

_SINGULAR_FACTOR = 1e3      # near-singular when rcond < 1e3 * eps
_OPT_IN = ("To solve anyway, pass on_failure='pinv' (pseudo-inverse) or "
           "on_failure='regularize' (add a multiple of the identity).")


# ----------------------------------------------------------------------------
# Validation
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
    return check_int(dim, name, minimum=1)


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


def _singular_failure(rcond: float) -> _Failure:
    """A refusal for a reciprocal condition estimate below the threshold."""
    return _Failure('singular', np.inf if rcond == 0 else 1.0 / rcond,
                    scaled_cond=True)


# ----------------------------------------------------------------------------
# Condition estimates (of the unit-diagonal scaling)
# ----------------------------------------------------------------------------
def _scaled_anorm(hs: np.ndarray, inv_d: np.ndarray) -> float:
    """1-norm of diag(inv_d) hs diag(inv_d) for symmetric ``hs``."""
    return float(np.max((np.abs(hs) @ inv_d) * inv_d))


def _rcond_from_cholesky(c: np.ndarray, anorm: float, inv_d: np.ndarray) -> float:
    """Reciprocal condition estimate of the unit-diagonal scaling from its factor."""
    rcond, info = lapack.dpocon(c * inv_d[:, None], anorm, uplo='L')
    return float(rcond) if info == 0 else 0.0


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


def _sparse_rcond(hs, d2: np.ndarray, solve: Callable) -> float:
    """Reciprocal 1-norm condition estimate of the unit-diagonal scaling of ``hs``."""
    d = np.sqrt(d2)

    def scaled_inv(v):
        return d * solve(d * v)
    inv_norm = _norm1_estimate(scaled_inv, scaled_inv, hs.shape[0])
    inv_d = scipy.sparse.diags_array(1.0 / d)
    anorm = float(abs(inv_d @ hs @ inv_d).sum(axis=0).max())
    return 1.0 / (anorm * inv_norm) if inv_norm > 0 else 0.0
