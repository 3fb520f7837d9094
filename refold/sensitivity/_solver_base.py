r"""The solver object and the wrapping of user solvers (private).

:class:`LinearSolver` (documented in :mod:`refold.sensitivity.solvers`, where
users import it) validates every right-hand side before solving;
:func:`_user_solver` wraps a user's callable so that its output is checked
too.  :class:`RefoldWarning` is the warning of every documented fallback.
"""
from __future__ import annotations

from typing import Any, Callable, Optional, Tuple

import numpy as np
import scipy.sparse

from refold.sensitivity._hessian_checks import _check_real_dtype


class RefoldWarning(UserWarning):
    """Warning emitted when refold takes a documented fallback path."""

    __module__ = 'refold.sensitivity.solvers'   # its documented home


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

    __module__ = 'refold.sensitivity.solvers'   # its documented home

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
