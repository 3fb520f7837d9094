r"""Preconditioned functions: :class:`PreconditionedFunction`.

A :class:`PreconditionedFunction` changes variables :math:`x = A x_c` so
that an optimiser works on :math:`f_c(x_c) = f(A x_c)`. Its Hessian is
:math:`A^\top H A`, so a preconditioner with :math:`A^\top H A = I`, such as
the symmetric inverse square root :math:`A = H^{-1/2}` (dense) or
:math:`A = S^{-\top}` for a sparse Cholesky factor :math:`H = S S^\top`,
makes the problem perfectly conditioned near the optimum.

Names, signatures and semantics are paragami 0.42's
(``paragami.optimization_lib``); refold also accepts sparse Hessians without
scikit-sparse, checks the Hessian (square, symmetric, positive definite
unless its eigenvalues are clipped with ``ev_min``) and never forms an
explicit inverse. The preconditioner is kept as a linear operator (its
product and its transpose's) that autograd differentiates in forward and
reverse mode, to any order. Both names are also importable from
:mod:`refold.patterns.optimization`.
"""
from __future__ import annotations

import warnings
from typing import Any, Callable, Optional

import autograd
import numpy as onp
import scipy.linalg as sla
import scipy.sparse as osp
from autograd.extend import defjvp, defvjp, primitive
from autograd.tracer import getval

from refold.patterns._checks import (
    check_callable, check_count, check_real_scalar)

__all__ = ["PreconditionedFunction", "truncate_eigenvalues"]

_EPS = float(onp.finfo(onp.float64).eps)
#: An eigenvalue (or pivot) below this multiple of eps times the largest one
#: counts as zero, as in refold.sensitivity's solvers.
_SINGULAR_FACTOR = 1e3
#: Relative residual tolerated when checking that ``a_inv`` inverts ``a``.
_INVERSE_RTOL = 1e-6


# ----------------------------------------------------------------------
# Linear maps that autograd differentiates (forward and reverse, any order).

class _LinearOp:
    """A linear map ``v -> M v`` known by its action and its transpose's."""

    def __init__(self, apply: Callable, apply_t: Callable, dim: int):
        self.apply = apply
        self.apply_t = apply_t
        self.dim = dim

    @property
    def T(self) -> "_LinearOp":
        return _LinearOp(self.apply_t, self.apply, self.dim)


@primitive
def _apply_linear(vec, op):
    return op.apply(onp.asarray(vec, dtype=float))


defvjp(_apply_linear, lambda ans, vec, op: lambda g: _apply_linear(g, op.T))
defjvp(_apply_linear, lambda g, ans, vec, op: _apply_linear(g, op))


def _matrix_op(mat) -> _LinearOp:
    mat_t = mat.T.tocsr() if osp.issparse(mat) else mat.T
    return _LinearOp(lambda v: mat @ v, lambda v: mat_t @ v, mat.shape[0])


def _scale_rows(d, v):
    return d * v if v.ndim == 1 else d[:, None] * v


# ----------------------------------------------------------------------
# Checks.

def _square_matrix(mat: Any, name: str, allow_sparse: bool = True):
    """A finite, real, square float64 matrix (dense ndarray or sparse CSC)."""
    if osp.issparse(mat):
        if not allow_sparse:
            raise TypeError("{}: expected a dense matrix, got a sparse "
                            "matrix".format(name))
        out = osp.csc_matrix(mat, dtype=float, copy=True)
        data = out.data
    else:
        raw = getval(mat)
        try:
            arr = onp.asarray(raw)
            if arr.dtype.kind not in "biuf":
                raise TypeError("dtype {}".format(arr.dtype))
            out = arr.astype(float, copy=True)
        except (TypeError, ValueError) as err:
            raise TypeError("{}: expected a real matrix, got {} ({})".format(
                name, type(raw).__name__, err)) from None
        data = out
    if out.ndim != 2 or out.shape[0] != out.shape[1]:
        raise ValueError("{}: expected a square matrix, got shape {}".format(
            name, out.shape))
    if out.shape[0] == 0:
        raise ValueError("{}: expected a non-empty matrix, got shape "
                         "{}".format(name, out.shape))
    if not onp.all(onp.isfinite(data)):
        raise ValueError("{}: expected finite entries, got NaN or "
                         "infinity".format(name))
    return out


def _symmetrised(mat, name: str):
    """``(mat + mat.T) / 2`` after checking ``mat`` is symmetric within
    ``sqrt(eps) * max|mat|``."""
    gap = abs(mat - mat.T)
    scale = abs(mat).max()
    gap_max = gap.max()
    tol = onp.sqrt(_EPS) * scale
    if gap_max > tol:
        if osp.issparse(gap):
            gap = gap.tocoo()
            k = int(onp.argmax(gap.data))
            i, j = int(gap.row[k]), int(gap.col[k])
        else:
            i, j = onp.unravel_index(int(onp.argmax(gap)), gap.shape)
        raise ValueError(
            "{}: expected a symmetric matrix, but entries [{}, {}] and "
            "[{}, {}] differ by {:.3g} (tolerance sqrt(eps) * max|{}| = "
            "{:.3g}); symmetrise it with ({} + {}.T) / 2 if the asymmetry is "
            "numerical noise".format(name, i, j, j, i, gap_max, name, tol,
                                     name, name))
    sym = (mat + mat.T) * 0.5
    return sym.tocsc() if osp.issparse(sym) else sym


def _check_vector(x: Any, name: str, dim: Optional[int] = None):
    raw = getval(x)
    try:
        arr = onp.asarray(raw, dtype=float)
    except (TypeError, ValueError) as err:
        raise TypeError("{}: expected a vector of real numbers, got {} "
                        "({})".format(name, type(raw).__name__, err)) from None
    if arr.ndim != 1:
        raise ValueError("{}: expected a 1-d vector, got shape {}".format(
            name, arr.shape))
    if dim is not None and arr.shape[0] != dim:
        raise ValueError("{}: expected length {} (the preconditioner's "
                         "dimension), got length {}".format(
                             name, dim, arr.shape[0]))
    return arr


# ----------------------------------------------------------------------
# Eigenvalue truncation and square roots.

def truncate_eigenvalues(evals, ev_min: Optional[float] = None,
                         ev_max: Optional[float] = None):
    r"""Clip eigenvalues to ``[ev_min, ev_max]``.

    Parameters
    ----------
    evals : numpy.ndarray
        Real eigenvalues (not modified).
    ev_min, ev_max : float, optional
        Bounds; ``None`` leaves that side unclipped.

    Returns
    -------
    numpy.ndarray
        A copy of ``evals`` with values below ``ev_min`` set to ``ev_min``
        and values above ``ev_max`` set to ``ev_max``.

    Raises
    ------
    ValueError
        If a bound is NaN or ``ev_min > ev_max``.
    """
    ev_min, ev_max = _check_ev_bounds(ev_min, ev_max, positive=False)
    evals = onp.array(evals, dtype=float)
    lo = -onp.inf if ev_min is None else ev_min
    hi = onp.inf if ev_max is None else ev_max
    return onp.clip(evals, lo, hi)


def _check_ev_bounds(ev_min, ev_max, positive: bool):
    if ev_min is not None:
        ev_min = check_real_scalar(ev_min, "ev_min", allow_inf=False)
        if positive and ev_min <= 0:
            raise ValueError(
                "ev_min: expected a positive number (the preconditioner "
                "takes 1/sqrt of the clipped eigenvalues), got {}".format(
                    ev_min))
    if ev_max is not None:
        ev_max = check_real_scalar(ev_max, "ev_max")
        if positive and ev_max <= 0:
            raise ValueError("ev_max: expected a positive number, got "
                             "{}".format(ev_max))
    if ev_min is not None and ev_max is not None and ev_min > ev_max:
        raise ValueError("ev_min, ev_max: expected ev_min <= ev_max, got "
                         "ev_min={} and ev_max={}".format(ev_min, ev_max))
    return ev_min, ev_max


def _dense_sqrt_ops(hessian, ev_min, ev_max, name):
    r"""``(H^{-1/2}, H^{1/2})`` of the eigen-clipped symmetric ``hessian``,
    and the clipped Hessian."""
    evals, evecs = onp.linalg.eigh(hessian)
    scale = float(onp.max(onp.abs(evals)))
    clipped = truncate_eigenvalues(evals, ev_min, ev_max)
    if ev_min is None:
        floor = _SINGULAR_FACTOR * _EPS * scale
        if clipped[0] <= floor:
            kind = "singular" if evals[0] > -floor else "indefinite"
            raise ValueError(
                "{}: expected a positive definite matrix, but it is {}: its "
                "smallest eigenvalue is {:.6g} (largest {:.6g}); pass ev_min "
                "(a positive floor for the eigenvalues) to precondition "
                "away from an optimum".format(name, kind, evals[0],
                                              evals[-1]))
    root = onp.sqrt(clipped)
    inv_sqrt = (evecs / root) @ evecs.T
    sqrt = (evecs * root) @ evecs.T
    truncated = (evecs * clipped) @ evecs.T
    return _matrix_op(inv_sqrt), _matrix_op(sqrt), truncated


def _sparse_sqrt_ops(hessian, name):
    r"""``(S^{-T}, S^T)`` for a sparse Cholesky factor ``H = S S^T``.

    SuperLU with a symmetric fill-reducing ordering and diagonal pivoting
    gives ``P H P^T = L U`` with ``U = D L^T`` when ``H`` is positive
    definite, so ``S = P^T L D^{1/2}``.
    """
    import scipy.sparse.linalg as ospl   # on first use: slow to import
    n = hessian.shape[0]
    indefinite = ValueError(
        "{}: expected a positive definite matrix, but its sparse "
        "factorisation found a zero or negative pivot; it is singular or "
        "indefinite (refold does not clip eigenvalues of a sparse matrix: "
        "pass a dense {} with ev_min to do so)".format(name, name))
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            lu = ospl.splu(hessian, permc_spec="MMD_AT_PLUS_A",
                           diag_pivot_thresh=0.0,
                           options={"SymmetricMode": True})
    except RuntimeError:
        raise indefinite from None
    pivots = lu.U.diagonal()
    if not onp.array_equal(lu.perm_r, lu.perm_c) or \
            pivots.min() <= _SINGULAR_FACTOR * _EPS * onp.abs(pivots).max():
        raise indefinite
    perm = lu.perm_r                     # (P^T v) = v[perm]
    inv_perm = onp.argsort(perm)         # (P x) = x[inv_perm]
    root = onp.sqrt(pivots)
    lower = lu.L.tocsr()
    upper = lu.L.T.tocsr()

    def solve_upper(v):   # L^{-T} v
        return ospl.spsolve_triangular(upper, v, lower=False,
                                       unit_diagonal=True)

    def solve_lower(v):   # L^{-1} v
        return ospl.spsolve_triangular(lower, v, lower=True,
                                       unit_diagonal=True)

    # a = S^{-T} = P^T L^{-T} D^{-1/2};  a^T = D^{-1/2} L^{-1} P
    a_op = _LinearOp(lambda v: solve_upper(_scale_rows(1 / root, v))[perm],
                     lambda v: _scale_rows(1 / root, solve_lower(v[inv_perm])),
                     n)
    # a^{-1} = S^T = D^{1/2} L^T P;  a^{-T} = P^T L D^{1/2}
    a_inv_op = _LinearOp(lambda v: _scale_rows(root, upper @ v[inv_perm]),
                         lambda v: (lower @ _scale_rows(root, v))[perm], n)
    return a_op, a_inv_op


def _inverse_op(a, name):
    """An operator applying ``a^{-1}`` from an LU factorisation of ``a``."""
    import scipy.sparse.linalg as ospl   # on first use: slow to import
    n = a.shape[0]
    singular = "{}: the matrix is singular or nearly so; a preconditioner " \
        "must be invertible".format(name)
    if osp.issparse(a):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                lu = ospl.splu(a.tocsc())
        except RuntimeError:
            raise ValueError(singular) from None
        pivots = onp.abs(lu.U.diagonal())
        apply = lu.solve
        apply_t = lambda v: lu.solve(v, trans="T")  # noqa: E731
    else:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            factor = sla.lu_factor(a, check_finite=False)
        pivots = onp.abs(onp.diag(factor[0]))
        apply = lambda v: sla.lu_solve(factor, v)  # noqa: E731
        apply_t = lambda v: sla.lu_solve(factor, v, trans=1)  # noqa: E731
    if not pivots.min() > _SINGULAR_FACTOR * _EPS * pivots.max():
        raise ValueError(singular)
    return _LinearOp(apply, apply_t, n)


# ----------------------------------------------------------------------
# Preconditioned functions.

class PreconditionedFunction:
    r"""A function of one vector, evaluated in preconditioned coordinates.

    With preconditioner :math:`A`, the point :math:`x` of the original
    domain is :math:`x = A x_c`, and the preconditioned function is
    :math:`f_c(x_c) = f(A x_c)`; its derivatives are with respect to
    :math:`x_c`. Its Hessian is :math:`A^\top H A`, so choosing
    :math:`A^\top H A = I` (see :meth:`set_preconditioner_with_hessian`)
    makes an optimiser see an identity Hessian at the optimum.

    Parameters
    ----------
    original_fun : callable
        The function :math:`f` of one vector (further arguments given to
        :meth:`__call__` are passed on).

    Examples
    --------
    >>> import numpy as np
    >>> from refold import PreconditionedFunction
    >>> h = np.array([[4.0, 1.0], [1.0, 2.0]])
    >>> f = lambda x: 0.5 * x @ h @ x
    >>> f_c = PreconditionedFunction(f)
    >>> _ = f_c.set_preconditioner_with_hessian(hessian=h)
    >>> x_c = f_c.precondition(np.array([1.0, -1.0]))
    >>> bool(np.isclose(f_c(x_c), 0.5 * x_c @ x_c))
    True
    """

    def __init__(self, original_fun: Callable):
        self._original_fun = check_callable(original_fun, "original_fun")
        self.set_identity_preconditioner()

    # Setting the preconditioner -----------------------------------------

    def _set_ops(self, a_op: Optional[_LinearOp],
                 a_inv_op: Optional[_LinearOp], dim: Optional[int]):
        self._a_op, self._a_inv_op, self._dim = a_op, a_inv_op, dim
        if a_op is not None:
            self._a_times = lambda v: _apply_linear(v, a_op)
            self._a_inv_times = lambda v: _apply_linear(v, a_inv_op)

    def set_identity_preconditioner(self) -> None:
        """Use :math:`A = I` (no preconditioning)."""
        self._set_ops(None, None, None)
        self._a_times = self._a_inv_times = _identity

    #: paragami's spelling.
    set_identitity_preconditioner = set_identity_preconditioner

    def set_preconditioner_matrix(self, a, a_inv=None) -> None:
        r"""Set the preconditioner :math:`A` to a matrix.

        Parameters
        ----------
        a : numpy.ndarray or scipy.sparse matrix, shape (D, D)
            The preconditioner: :math:`x = A x_c`.
        a_inv : numpy.ndarray or scipy.sparse matrix, optional
            Its inverse. If omitted, products with :math:`A^{-1}` use an LU
            factorisation of :math:`A` (no explicit inverse is formed).

        Raises
        ------
        ValueError
            If ``a`` is not square and finite or is singular, or ``a_inv``
            has the wrong shape or does not invert ``a``.
        """
        a = _square_matrix(a, "a")
        dim = a.shape[0]
        a_op = _matrix_op(a)
        if a_inv is None:
            a_inv_op = _inverse_op(a, "a")
        else:
            a_inv = _square_matrix(a_inv, "a_inv")
            if a_inv.shape != a.shape:
                raise ValueError("a_inv: expected shape {} (the shape of a), "
                                 "got {}".format(a.shape, a_inv.shape))
            a_inv_op = _matrix_op(a_inv)
            probe = onp.random.default_rng(0).standard_normal(dim)
            resid = a_op.apply(a_inv_op.apply(probe)) - probe
            rel = onp.linalg.norm(resid) / onp.linalg.norm(probe)
            if not rel <= _INVERSE_RTOL:
                raise ValueError(
                    "a_inv: expected the inverse of a, but a @ a_inv @ v "
                    "differs from v by a relative {:.3g} for a test vector "
                    "v".format(rel))
        self._set_ops(a_op, a_inv_op, dim)

    def set_preconditioner(self, preconditioner, preconditioner_inv=None):
        """Deprecated (as in paragami): use :meth:`set_preconditioner_matrix`."""
        warnings.warn("set_preconditioner is deprecated; use "
                      "set_preconditioner_matrix", DeprecationWarning,
                      stacklevel=2)
        self.set_preconditioner_matrix(preconditioner, preconditioner_inv)

    def set_preconditioner_functions(self, a_times: Callable,
                                     a_inv_times: Callable) -> None:
        r"""Set the preconditioner by its products.

        Parameters
        ----------
        a_times : callable
            :math:`v \mapsto A v`. It must be differentiable by autograd for
            derivatives of the preconditioned function.
        a_inv_times : callable
            :math:`v \mapsto A^{-1} v`.
        """
        check_callable(a_times, "a_times")
        check_callable(a_inv_times, "a_inv_times")
        self._set_ops(None, None, None)
        self._a_times, self._a_inv_times = a_times, a_inv_times

    def set_preconditioner_with_hessian(self, x=None, hessian=None,
                                        ev_min: Optional[float] = None,
                                        ev_max: Optional[float] = None):
        r"""Precondition with the Hessian :math:`H` of the original function.

        For a dense :math:`H` the preconditioner is the symmetric inverse
        square root :math:`A = H^{-1/2}` of :math:`H` with its eigenvalues
        clipped to ``[ev_min, ev_max]``; for a ``scipy.sparse`` :math:`H` it
        is :math:`A = S^{-\top}` with :math:`H = S S^\top` a sparse
        Cholesky factorisation. Either way :math:`A^\top H A = I` (for the
        clipped :math:`H`).

        Parameters
        ----------
        x : numpy.ndarray, optional
            Where to evaluate :math:`H` with autograd. Give ``x`` or
            ``hessian``, not both.
        hessian : numpy.ndarray or scipy.sparse matrix, optional
            The Hessian, or an approximation of it. Must be symmetric (within
            ``sqrt(eps) * max|hessian|``).
        ev_min, ev_max : float, optional
            Positive clipping bounds for the eigenvalues (dense only).
            Without ``ev_min`` the Hessian must be positive definite.

        Returns
        -------
        numpy.ndarray or scipy.sparse matrix
            The (clipped, symmetrised) Hessian the preconditioner inverts.

        Raises
        ------
        ValueError
            If neither or both of ``x`` and ``hessian`` are given, the
            Hessian is not square, finite, symmetric or (without ``ev_min``)
            positive definite, or the bounds are not positive and ordered.
        """
        if (x is None) == (hessian is None):
            raise ValueError("x, hessian: give exactly one of them (got {})"
                             .format("both" if x is not None else "neither"))
        ev_min, ev_max = _check_ev_bounds(ev_min, ev_max, positive=True)
        name = "hessian"
        if hessian is None:
            x = _check_vector(x, "x")
            if not onp.all(onp.isfinite(x)):
                raise ValueError("x: expected finite entries, got NaN or "
                                 "infinity")
            hessian = autograd.hessian(self._original_fun)(x)
            hessian = onp.reshape(getval(hessian), (x.size, x.size))
            name = "hessian (of original_fun at x)"
        hessian = _symmetrised(_square_matrix(hessian, name), name)
        dim = hessian.shape[0]
        if osp.issparse(hessian):
            if ev_min is not None or ev_max is not None:
                raise ValueError(
                    "ev_min, ev_max: eigenvalue clipping needs a dense "
                    "hessian; pass hessian.toarray() to clip, or omit them")
            a_op, a_inv_op = _sparse_sqrt_ops(hessian, name)
            used = hessian
        else:
            a_op, a_inv_op, used = _dense_sqrt_ops(hessian, ev_min, ev_max,
                                                   name)
        self._set_ops(a_op, a_inv_op, dim)
        return used

    # Using it -----------------------------------------------------------

    def precondition(self, x):
        r"""Map :math:`x` to :math:`x_c = A^{-1} x`."""
        if self._dim is not None:
            _check_vector(x, "x", self._dim)
        return self._a_inv_times(x)

    def unprecondition(self, x_c):
        r"""Map :math:`x_c` to :math:`x = A x_c`."""
        if self._dim is not None:
            _check_vector(x_c, "x_c", self._dim)
        return self._a_times(x_c)

    def check_preconditioner(self, vec, tol: float = 1e-8) -> None:
        r"""Raise ``ValueError`` unless :math:`\|v - A A^{-1} v\| \le` ``tol``."""
        err = float(onp.linalg.norm(
            getval(vec) - getval(self._a_times(self._a_inv_times(vec)))))
        if not err <= tol:
            raise ValueError(
                "a_times does not invert a_inv_times: the error {:.3g} "
                "exceeds tol {:.3g}".format(err, tol))

    def _operator_matrix(self, dim, op, fun):
        dim = check_count(dim, "dim")
        if self._dim is not None and dim != self._dim:
            raise ValueError("dim: the preconditioner has dimension {}, got "
                             "{}".format(self._dim, dim))
        if op is not None:
            mat = op.apply(onp.eye(dim))
            return mat.toarray() if osp.issparse(mat) else onp.asarray(mat)
        columns = [onp.asarray(getval(fun(col))) for col in onp.eye(dim)]
        return onp.column_stack(columns) if columns else \
            onp.zeros((0, 0))

    def get_preconditioner(self, dim: int):
        """The matrix :math:`A` (dense, for inspection and tests)."""
        return self._operator_matrix(dim, self._a_op, self._a_times)

    def get_preconditioner_inv(self, dim: int):
        """The matrix :math:`A^{-1}` (dense, for inspection and tests)."""
        return self._operator_matrix(dim, self._a_inv_op,
                                     self._a_inv_times)

    def __call__(self, x_c, *args, **kwargs):
        r""":math:`f(A x_c)`; further arguments go to ``original_fun``."""
        return self._original_fun(self.unprecondition(x_c), *args, **kwargs)

    def __repr__(self):
        if self._a_op is not None:
            kind = "matrix preconditioner of dimension {}".format(self._dim)
        elif self._a_times is _identity:
            kind = "identity preconditioner"
        else:
            kind = "function preconditioner"
        return "PreconditionedFunction(original_fun={}, {})".format(
            getattr(self._original_fun, "__qualname__",
                    repr(self._original_fun)), kind)


def _identity(v):
    return v
