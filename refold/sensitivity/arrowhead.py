r"""Block (Schur-complement) solves for global/local ("arrowhead") Hessians.

Many latent-variable models have a Hessian that couples ``g`` global
coordinates with everything, but each of ``T`` groups of ``m`` local
coordinates only with itself and the globals.  Ordering globals first,

.. math::

    H = \begin{pmatrix} G & C_1 & \cdots & C_T \\
                        C_1^T & L_1 & & \\
                        \vdots & & \ddots & \\
                        C_T^T & & & L_T \end{pmatrix},
    \qquad S = G - \sum_t C_t L_t^{-1} C_t^T ,

and :math:`H` is positive definite exactly when every :math:`L_t` and the
Schur complement :math:`S` are.  All :math:`L_t` are Cholesky-factored at once
(``np.linalg.cholesky`` on the ``(T, m, m)`` stack) and triangular solves are
batched over groups, so the cost is :math:`O(T m^2 (m + g) + T m g^2 + g^3)`
with no Python loop over groups.  The blocks of :math:`H^{-1}` that linear
response covariances need follow without forming :math:`H^{-1}`:

.. math::

    (H^{-1})_{gg} = S^{-1}, \quad
    (H^{-1})_{g t} = -S^{-1} C_t L_t^{-1}, \quad
    (H^{-1})_{tt} = L_t^{-1} + L_t^{-1} C_t^T S^{-1} C_t L_t^{-1}.

Layout: ``global_block`` is ``(g, g)``; ``cross_blocks`` is ``(T, g, m)`` with
``cross_blocks[t] = H[global_inds][:, local_inds[t]]``; ``local_blocks`` is
``(T, m, m)``; ``inverse_cross_blocks()`` has the layout of ``cross_blocks``.
"""
from __future__ import annotations

from typing import Any, Optional

import numpy as np
import scipy.linalg
import scipy.sparse

from refold.sensitivity._arrowhead_blocks import (_arrowhead_blocks,
                                                  _as_index_array,
                                                  _check_partition)
from refold.sensitivity._factorisations import _dense_cholesky
from refold.sensitivity._hessian_checks import (
    _check_on_failure, _check_real_dtype, _eps_of, _singular_rcond)
from refold.sensitivity._solver_base import LinearSolver, _check_rhs
from refold.sensitivity.solvers import get_sparse_cholesky_solver

__all__ = ['ArrowheadHessian']

_HINT = ("To solve anyway, use solver(on_failure='pinv') or "
         "solver(on_failure='regularize') (a general sparse factorisation).")


def _forward(K: np.ndarray, B: np.ndarray) -> np.ndarray:
    """Solve ``K[t] X[t] = B[t]`` for lower-triangular ``K`` (T, m, m)."""
    X = np.empty(B.shape)
    for i in range(K.shape[1]):         # loop over the m rows, batched over T
        acc = B[:, i, :]
        if i:
            acc = acc - np.einsum('tj,tjk->tk', K[:, i, :i], X[:, :i, :])
        X[:, i, :] = acc / K[:, i, i, None]
    return X


def _backward(K: np.ndarray, B: np.ndarray) -> np.ndarray:
    """Solve ``K[t]^T X[t] = B[t]`` for lower-triangular ``K`` (T, m, m)."""
    m = K.shape[1]
    X = np.empty(B.shape)
    for i in range(m - 1, -1, -1):
        acc = B[:, i, :]
        if i < m - 1:
            acc = acc - np.einsum('tj,tjk->tk', K[:, i + 1:, i], X[:, i + 1:, :])
        X[:, i, :] = acc / K[:, i, i, None]
    return X


def _check_finite_blocks(arrays: dict) -> None:
    for key, arr in arrays.items():
        bad = ~np.isfinite(arr)
        if bad.any():
            where = [int(i) for i in np.argwhere(bad)[0]]
            raise ValueError(f"{key} must be finite; {key}{where} = "
                             f"{arr[tuple(where)]}")


class ArrowheadHessian:
    r"""A symmetric matrix with global/local (arrowhead) structure.

    Parameters
    ----------
    global_block : array_like, shape (g, g)
        :math:`G`, symmetric.
    cross_blocks : array_like, shape (T, g, m)
        :math:`C_t`, the coupling of the globals with group ``t``'s locals.
    local_blocks : array_like, shape (T, m, m)
        :math:`L_t`, symmetric.
    global_inds : array_like of int, shape (g,), optional
        Positions of the globals in the full vector (default ``arange(g)``).
    local_inds : array_like of int, shape (T, m), optional
        Positions of each group's locals (default ``g + arange(T m)`` row by row).
    name : str
        How the matrix is named in error messages.

    Notes
    -----
    Inputs are copied.  Shapes, finiteness and symmetry (``sqrt(eps)`` times
    the largest entry) are checked on construction; positive definiteness
    when first factorised (by any solve or inverse block), where a failure
    names the group (or the global Schur complement) and the smallest
    eigenvalue.  Near-singularity is judged block by block: each unit-diagonal
    scaled :math:`L_t` and :math:`S` must have condition number at most
    ``1/(1000 eps)``.

    Examples
    --------
    >>> import numpy as np
    >>> H = ArrowheadHessian(np.eye(1) * 3, np.ones((2, 1, 1)),
    ...                      np.ones((2, 1, 1)) * 2)
    >>> b = np.ones(3)
    >>> np.allclose(H.solve(b), np.linalg.solve(H.to_sparse().toarray(), b))
    True
    """

    def __init__(self, global_block: Any, cross_blocks: Any, local_blocks: Any,
                 global_inds: Any = None, local_inds: Any = None, *,
                 name: str = 'hessian'):
        arrays = {}
        for key, value, ndim in (('global_block', global_block, 2),
                                 ('cross_blocks', cross_blocks, 3),
                                 ('local_blocks', local_blocks, 3)):
            arr = np.asarray(value)
            _check_real_dtype(arr.dtype, key)
            if arr.ndim != ndim:
                raise ValueError(f"{key} must be {ndim}-d; got shape {arr.shape}")
            arrays[key] = arr
        G, C, L = (arrays[key] for key in ('global_block', 'cross_blocks',
                                           'local_blocks'))
        g = G.shape[0]
        T, m = L.shape[0], L.shape[1]
        if G.shape != (g, g):
            raise ValueError(f"global_block must be square; got shape {G.shape}")
        if L.shape != (T, m, m):
            raise ValueError(f"local_blocks must have shape (T, m, m); got {L.shape}")
        if C.shape != (T, g, m):
            raise ValueError(f"cross_blocks must have shape (T, g, m) = {(T, g, m)} "
                             f"to match global_block {G.shape} and local_blocks "
                             f"{L.shape}; got {C.shape}")
        dim = g + T * m
        if dim == 0:
            raise ValueError("an ArrowheadHessian needs at least one coordinate")
        eps = max(_eps_of(a.dtype) for a in (G, C, L))
        _check_finite_blocks(arrays)
        G, C, L = (np.array(a, dtype=np.float64) for a in (G, C, L))
        if global_inds is None and local_inds is None:
            gi = np.arange(g)
            li = g + np.arange(T * m).reshape(T, m)
        else:
            gi = _as_index_array(
                np.arange(g) if global_inds is None else global_inds, 1,
                'global_inds')
            li = _as_index_array(
                np.arange(g, dim).reshape(T, m) if local_inds is None else local_inds,
                2, 'local_inds')
            if gi.shape != (g,) or li.shape != (T, m):
                raise ValueError(f"global_inds must have shape {(g,)} and local_inds "
                                 f"{(T, m)} to match the blocks; got "
                                 f"{gi.shape} and {li.shape}")
            _check_partition(gi, li, dim, name)
        self._set_blocks(G, C, L, gi, li, name, eps)

    def _set_blocks(self, G: np.ndarray, C: np.ndarray, L: np.ndarray,
                    gi: np.ndarray, li: np.ndarray, name: str,
                    eps: float) -> None:
        """Own the checked float64 blocks; check and enforce symmetry."""
        self._G, self._C, self._L = G, C, L
        self._gi, self._li, self._name, self._eps = gi, li, name, eps
        self._check_symmetry()
        self._G = 0.5 * (G + G.T)
        self._L = 0.5 * (L + L.transpose(0, 2, 1))
        self._fac = None

    # -------------------------------------------------------------- building
    @classmethod
    def from_sparse(cls, hessian: Any, global_inds: Any, local_inds: Any, *,
                    name: str = 'hessian') -> 'ArrowheadHessian':
        r"""Extract the blocks of a sparse (or dense) arrowhead matrix.

        Parameters
        ----------
        hessian : scipy.sparse matrix or ndarray, shape (D, D)
        global_inds : array_like of int, shape (g,)
        local_inds : array_like of int, shape (T, m)
            Row ``t`` holds the positions of group ``t``'s locals.  Together with
            ``global_inds`` every index in ``range(D)`` must appear once.
        name : str
            How ``hessian`` is named in error messages.

        Returns
        -------
        ArrowheadHessian

        Raises
        ------
        ValueError
            If the indices are not a partition of ``range(D)``, ``hessian`` is
            not finite or symmetric, or it couples locals of different groups.
        """
        G, C, L, gi, li, eps = _arrowhead_blocks(hessian, global_inds,
                                                 local_inds, name)
        C = np.ascontiguousarray(C)
        _check_finite_blocks({'global_block': G, 'cross_blocks': C,
                              'local_blocks': L})   # duplicates may overflow
        out = cls.__new__(cls)
        # G and L symmetric to float64's sqrt(eps), as blocks given directly.
        out._set_blocks(G, C, L, gi, li, name, _eps_of(np.float64))
        out._eps = eps
        return out

    def _check_symmetry(self) -> None:
        scale = max([max(-float(np.min(a)), float(np.max(a))) if a.size else 0.0
                     for a in (self._G, self._C, self._L)])
        tol = np.sqrt(self._eps) * scale
        name = self._name
        for block, inds in ((self._G[None], self._gi[None]), (self._L, self._li)):
            if block.size == 0:
                continue
            gap = np.abs(block - block.transpose(0, 2, 1))
            t, i, j = np.unravel_index(np.argmax(gap), gap.shape)
            if gap[t, i, j] > tol:
                a, b = inds[t, i], inds[t, j]
                raise ValueError(
                    f"{name} is not symmetric: |{name}[{a}, {b}] - {name}[{b}, {a}]|"
                    f" = {gap[t, i, j]:.3g} ({block[t, i, j]:.6g} vs "
                    f"{block[t, j, i]:.6g}) exceeds the tolerance {tol:.3g} "
                    f"(sqrt(eps) * max|{name}|)")

    # ------------------------------------------------------------ properties
    @property
    def shape(self) -> tuple:
        """``(D, D)``."""
        return (self.dim, self.dim)

    @property
    def dim(self) -> int:
        """``D = g + T m``."""
        return self._gi.size + self._li.size

    @property
    def n_global(self) -> int:
        """``g``, the number of global coordinates."""
        return self._gi.size

    @property
    def n_groups(self) -> int:
        """``T``, the number of groups."""
        return self._li.shape[0]

    @property
    def n_local(self) -> int:
        """``m``, the number of local coordinates per group."""
        return self._li.shape[1]

    @property
    def global_inds(self) -> np.ndarray:
        """Positions of the globals (a copy)."""
        return self._gi.copy()

    @property
    def local_inds(self) -> np.ndarray:
        """Positions of each group's locals, shape (T, m) (a copy)."""
        return self._li.copy()

    @property
    def global_block(self) -> np.ndarray:
        """:math:`G`, shape (g, g) (a copy)."""
        return self._G.copy()

    @property
    def cross_blocks(self) -> np.ndarray:
        """:math:`C_t`, shape (T, g, m) (a copy)."""
        return self._C.copy()

    @property
    def local_blocks(self) -> np.ndarray:
        """:math:`L_t`, shape (T, m, m) (a copy)."""
        return self._L.copy()

    def __repr__(self) -> str:
        return (f"ArrowheadHessian(n_global={self.n_global}, n_groups="
                f"{self.n_groups}, n_local={self.n_local})")

    # --------------------------------------------------------- factorisation
    def _local_failure(self, ev: np.ndarray, thresh: float) -> Optional[str]:
        """Message for the first non-PD or near-singular local block, if any."""
        name = self._name
        indefinite = ev[:, 0] <= -thresh * ev[:, -1]
        singular = ev[:, 0] <= thresh * ev[:, -1]
        if not singular.any():
            return None
        if indefinite.any():
            t = int(np.flatnonzero(indefinite)[0])
            lam = float(np.linalg.eigvalsh(self._L[t])[0])
            n = int(indefinite.sum())
            return (f"{name} is not positive definite: the local block of group "
                    f"{t} ({name} indices {self._li[t].tolist()}) has smallest "
                    f"eigenvalue {lam:.6g} ({n} of {ev.shape[0]} local blocks are "
                    f"not positive definite). {_HINT}")
        t = int(np.flatnonzero(singular)[0])
        cond = np.inf if ev[t, 0] <= 0 else ev[t, -1] / ev[t, 0]
        lam = float(np.linalg.eigvalsh(self._L[t])[0])
        return (f"{name} is numerically singular: the local block of group {t} "
                f"({name} indices {self._li[t].tolist()}) has condition number "
                f"{cond:.3g} (unit-diagonal scaling; smallest eigenvalue "
                f"{lam:.6g}) above {1 / thresh:.3g} = 1/(1000 eps). {_HINT}")

    def _factor(self):
        """Factor once: batched Cholesky of the L_t, then Cholesky of S."""
        if self._fac is not None:
            return self._fac
        name, eps = self._name, self._eps
        thresh = _singular_rcond(eps)
        T, m, g = self.n_groups, self.n_local, self.n_global
        if T * m:
            diag = np.diagonal(self._L, axis1=1, axis2=2)
            if np.min(diag) <= 0:
                t, i = np.unravel_index(np.argmin(diag), diag.shape)
                lam = float(np.linalg.eigvalsh(self._L[t])[0])
                raise ValueError(
                    f"{name} is not positive definite: the local block of group "
                    f"{t} has diagonal entry {diag[t, i]:.6g} <= 0 at {name} index "
                    f"{self._li[t, i]} (smallest eigenvalue {lam:.6g}). {_HINT}")
            d = np.sqrt(diag)
            ev = np.linalg.eigvalsh(self._L / (d[:, :, None] * d[:, None, :]))
            msg = self._local_failure(ev, thresh)
            if msg:
                raise ValueError(msg)
            K = np.linalg.cholesky(self._L)
            W = _forward(K, self._C.transpose(0, 2, 1))        # K^-1 C^T (T, m, g)
            Wf = W.reshape(T * m, g)
            S = self._G - Wf.T @ Wf
            S = 0.5 * (S + S.T)
        else:
            K = np.zeros((T, m, m))
            W = np.zeros((T, m, g))
            S = self._G
        R = None
        if g:
            R, _, failure = _dense_cholesky(S, eps)
            if failure is not None:
                gi = self._gi
                text = failure.message(
                    f"{name}'s Schur complement S = G - sum_t C_t L_t^-1 C_t^T on "
                    f"its global coordinates", eps,
                    coord_names=lambda i: f"global coordinate {i} ({name} index "
                                          f"{gi[i]})", hint='')
                raise ValueError(f"{text} As every local block is positive "
                                 f"definite, this is a property of {name}. {_HINT}")
        self._fac = {'K': K, 'W': W, 'R': R, 'V': None}
        return self._fac

    def _V(self) -> np.ndarray:
        """:math:`L_t^{-1} C_t^T`, shape (T, m, g), cached."""
        fac = self._factor()
        if fac['V'] is None:
            fac['V'] = _backward(fac['K'], fac['W'])
        return fac['V']

    def _s_solve(self, B: np.ndarray) -> np.ndarray:
        R = self._factor()['R']
        if R is None:
            return np.zeros((0,) + B.shape[1:])
        return scipy.linalg.cho_solve((R, True), B, check_finite=False)

    # ----------------------------------------------------------------- solves
    def _solve2d(self, B: np.ndarray) -> np.ndarray:
        fac = self._factor()
        K, W = fac['K'], fac['W']
        T, m, g = self.n_groups, self.n_local, self.n_global
        k = B.shape[1]
        Y = _forward(K, B[self._li]) if T * m else np.zeros((T, m, k))
        rg = B[self._gi] - W.reshape(T * m, g).T @ Y.reshape(T * m, k)
        xg = self._s_solve(rg)
        Z = Y - np.einsum('tmg,gk->tmk', W, xg)
        X = np.empty(B.shape)
        X[self._gi] = xg
        if T * m:
            X[self._li.ravel()] = _backward(K, Z).reshape(T * m, k)
        return X

    def solve(self, b: Any) -> np.ndarray:
        r"""Return :math:`H^{-1} b` for ``b`` of shape ``(D,)`` or ``(D, k)``.

        Raises
        ------
        ValueError
            If ``b`` has the wrong shape or non-finite values, or ``H`` is not
            positive definite (naming the group or the global block).
        """
        b2, vector = _check_rhs(b, self.dim)
        x = self._solve2d(b2)
        return x[:, 0] if vector else x

    def solver(self, *, on_failure: str = 'raise') -> LinearSolver:
        r"""Return a :class:`~refold.sensitivity.solvers.LinearSolver` for ``H``.

        Parameters
        ----------
        on_failure : {'raise', 'pinv', 'regularize'}
            If ``H`` is not positive definite or is near-singular, ``'raise'``
            (default) raises; the opt-ins fall back to
            :func:`~refold.sensitivity.solvers.get_sparse_cholesky_solver` on
            :meth:`to_sparse` with that ``on_failure`` (which warns).
        """
        on_failure = _check_on_failure(on_failure)
        try:
            self._factor()
        except ValueError:
            if on_failure == 'raise':
                raise
            return get_sparse_cholesky_solver(self.to_sparse(), on_failure=on_failure,
                                              name=self._name)
        return LinearSolver(self._solve2d, self.dim, 'arrowhead',
                            {'method': 'schur', 'n_global': self.n_global,
                             'n_groups': self.n_groups, 'n_local': self.n_local})

    # --------------------------------------------------------- inverse blocks
    def inverse_global_block(self) -> np.ndarray:
        r""":math:`(H^{-1})_{gg} = S^{-1}`, shape (g, g)."""
        out = self._s_solve(np.eye(self.n_global))
        return 0.5 * (out + out.T)

    def inverse_cross_blocks(self) -> np.ndarray:
        r""":math:`(H^{-1})_{g,t} = -S^{-1} C_t L_t^{-1}`, shape (T, g, m)."""
        T, m, g = self.n_groups, self.n_local, self.n_global
        X = self._s_solve(self._V().reshape(T * m, g).T)          # (g, T m)
        return np.ascontiguousarray(-X.reshape(g, T, m).transpose(1, 0, 2))

    def inverse_local_blocks(self) -> np.ndarray:
        r""":math:`(H^{-1})_{tt} = L_t^{-1} + L_t^{-1} C_t^T S^{-1} C_t L_t^{-1}`.

        Returns
        -------
        ndarray, shape (T, m, m)
            The diagonal blocks of :math:`H^{-1}`, symmetric by construction.
        """
        fac = self._factor()
        T, m, g = self.n_groups, self.n_local, self.n_global
        Kinv = _forward(fac['K'], np.broadcast_to(np.eye(m), (T, m, m)))
        out = np.einsum('tki,tkj->tij', Kinv, Kinv)
        if g and T * m:
            Q = scipy.linalg.solve_triangular(
                fac['R'], self._V().reshape(T * m, g).T, lower=True,
                check_finite=False).reshape(g, T, m)
            out += np.einsum('gti,gtj->tij', Q, Q)
        return out

    def logdet(self) -> float:
        r""":math:`\log\det H = \sum_t \log\det L_t + \log\det S`."""
        fac = self._factor()
        total = 2.0 * np.sum(np.log(np.diagonal(fac['K'], axis1=1, axis2=2)))
        if fac['R'] is not None:
            total += 2.0 * np.sum(np.log(np.diag(fac['R'])))
        return float(total)

    # ------------------------------------------------------------ conversions
    def dot(self, v: Any) -> np.ndarray:
        r"""Return :math:`H v` for ``v`` of shape ``(D,)`` or ``(D, k)``."""
        v2, vector = _check_rhs(v, self.dim, 'v')
        vg, vl = v2[self._gi], v2[self._li]                      # (g,k), (T,m,k)
        out = np.empty(v2.shape)
        out[self._gi] = self._G @ vg + np.einsum('tgm,tmk->gk', self._C, vl)
        if self._li.size:
            loc = (np.einsum('tgm,gk->tmk', self._C, vg)
                   + np.einsum('tij,tjk->tik', self._L, vl))
            out[self._li.ravel()] = loc.reshape(-1, v2.shape[1])
        return out[:, 0] if vector else out

    def __matmul__(self, v: Any) -> np.ndarray:
        return self.dot(v)

    def to_sparse(self) -> scipy.sparse.csr_array:
        r"""The full matrix as a ``scipy.sparse.csr_array`` (for checks)."""
        gi, li = self._gi, self._li
        T, m, g = self.n_groups, self.n_local, self.n_global
        rg = np.broadcast_to(gi[:, None], (g, g))
        rc = np.broadcast_to(gi[None, :, None], (T, g, m))
        cc = np.broadcast_to(li[:, None, :], (T, g, m))
        rl = np.broadcast_to(li[:, :, None], (T, m, m))
        cl = np.broadcast_to(li[:, None, :], (T, m, m))
        rows = np.concatenate([rg.ravel(), rc.ravel(), cc.ravel(), rl.ravel()])
        cols = np.concatenate([rg.T.ravel(), cc.ravel(), rc.ravel(), cl.ravel()])
        data = np.concatenate([self._G.ravel(), self._C.ravel(), self._C.ravel(),
                               self._L.ravel()])
        return scipy.sparse.csr_array((data, (rows, cols)), shape=self.shape)
