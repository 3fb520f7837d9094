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

The factories are here; the machinery behind them lives in private modules:
``_solver_base`` (:class:`LinearSolver`, the wrapping of user callables),
``_hessian_checks`` (validation, failure diagnosis, condition estimates),
``_factorisations`` (dense/sparse factorisations and the opt-in fallbacks)
and ``_cg`` (conjugate gradients).
"""
from __future__ import annotations

from __future__ import annotations

from typing import Any, Callable, Optional

import numpy as np
import scipy.sparse
import scipy.sparse.linalg
from scipy.linalg import lapack

from refold.sensitivity._cg import (_as_preconditioner, _cg_options, _cg_solve,
                                    _checked_vector_fn)
from refold.sensitivity._factorisations import (
    _cholesky_linear_solver, _cholmod_solver, _dense_cholesky, _dense_fallback,
    _equilibrated_lu, _factor_from_h_chol, _lu_fail, _lu_linear_solver,
    _pow2, _sparse_factor, _sparse_fallback)
from refold.sensitivity.errors import HessianError
from refold.sensitivity._hessian_checks import (
    ON_FAILURE, _as_dense_square, _as_sparse_square, _check_dim,
    _check_on_failure, _check_symmetric_sparse, _eps_of, _norm1_estimate,
    _rcond_from_cholesky, _scaled_anorm, _singular_failure, _singular_rcond,
    _symmetrized)
from refold.sensitivity._solver_base import (LinearSolver, RefoldWarning,
                                             _user_solver)

__all__ = [
    'RefoldWarning', 'LinearSolver', 'SOLVER_KINDS', 'ON_FAILURE',
    'check_hessian', 'get_dense_cholesky_solver', 'get_sparse_cholesky_solver',
    'get_cholesky_solver', 'get_cg_solver', 'get_lu_solver', 'get_solver',
    'as_solver',
]

SOLVER_KINDS = ('cholesky', 'dense', 'sparse', 'cg', 'lu', 'arrowhead')
#: Kinds that only multiply by the Hessian (no factorisation).
_MATRIX_FREE_KINDS = frozenset({'cg'})
#: Kinds that factorise a matrix and name it in their errors (``name=``).
_FACTORISING_KINDS = frozenset({'cholesky', 'dense', 'sparse', 'lu'})


# ----------------------------------------------------------------------------
# Dense Cholesky
# ----------------------------------------------------------------------------
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
            failure = _singular_failure(rcond)
            if on_failure == 'raise' or hs is None:
                raise HessianError(failure.message(name, eps))
            return _dense_fallback(hs, eps, failure, on_failure, name)
        return _cholesky_linear_solver(L, rcond, 'dense')

    h, eps = _as_dense_square(h, name)
    hs = _symmetrized(h, name, eps)
    c, rcond, failure = _dense_cholesky(hs, eps, rebuild=lambda: 0.5 * (h + h.T))
    if failure is None:
        return _cholesky_linear_solver(c, rcond, 'dense')
    if on_failure == 'raise':
        raise HessianError(failure.message(name, eps))
    return _dense_fallback(0.5 * (h + h.T), eps, failure, on_failure, name)


# ----------------------------------------------------------------------------
# Sparse symmetric factorisation
# ----------------------------------------------------------------------------
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
        raise HessianError(failure.message(name, eps))
    return _sparse_fallback(hs, eps, failure, on_failure, name)


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
    factored = _equilibrated_lu(hm, r, c)
    if factored is None:
        return _lu_fail(hm, eps, f"{name} is exactly singular (zero pivot in "
                        "its LU factorisation).", on_failure, name)
    solve_scaled, rcond = factored
    if rcond < _singular_rcond(eps):
        cond = np.inf if rcond == 0 else 1.0 / rcond
        return _lu_fail(hm, eps, f"{name} is numerically singular: its condition "
                        f"number is {cond:.3g} (estimated, of its equilibrated "
                        f"form), above {1 / _singular_rcond(eps):.3g} = "
                        "1/(1000 eps).", on_failure, name)

    def solve(B):
        return c[:, None] * solve_scaled(r[:, None] * B)
    return LinearSolver(solve, hm.shape[0], 'lu',
                        {'method': 'lu', 'rcond': rcond})


# ----------------------------------------------------------------------------
# Matrix-free conjugate gradient
# ----------------------------------------------------------------------------
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
    return LinearSolver(_cg_solve(hvp, dim, opts, M), dim, 'cg',
                        {'method': 'cg', **opts, 'preconditioned': M is not None})


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
        with options ``global_inds`` (g,) and ``local_inds`` (T, m) -- for
        local blocks of unequal sizes a list of index arrays, as
        :meth:`~refold.sensitivity.arrowhead.ArrowheadHessian.from_sparse`
        takes).
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
