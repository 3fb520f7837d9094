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

**Blocks of unequal sizes.**  The local blocks may have different sizes (a
random-effects model with one or two slopes per group, ragged groups): they
are kept in *size classes*, class ``k`` holding its ``T_k`` blocks of size
``m_k`` as a ``(T_k, m_k, m_k)`` stack.  Each class is factorised by one
batched Cholesky and the Schur complement sums the classes' terms, so the
Python loops run over the distinct sizes, never over groups.  Such a matrix
is built

* by :meth:`ArrowheadHessian.from_sparse` with ``local_inds`` a list of
  ``(T_k, m_k)`` index arrays (one per size) or a list of 1-d index arrays
  (one per block, grouped by increasing size, in their order within a size);
* by the constructor with ``cross_blocks`` and ``local_blocks`` lists of
  ``(T_k, g, m_k)`` and ``(T_k, m_k, m_k)`` stacks (and ``local_inds`` a
  list of ``(T_k, m_k)`` arrays).

Groups are numbered class by class (in messages, and in the ``by_size``
outputs).  Every method works for both; the attributes and methods whose
result is one ``(T, ...)`` stack (``local_blocks``, ``cross_blocks``,
``local_inds``, ``n_local``, ``inverse_cross_blocks()``,
``inverse_local_blocks()``) need blocks of one size and otherwise raise a
``ValueError`` naming the per-class alternative: :attr:`~ArrowheadHessian.size_classes`,
:attr:`~ArrowheadHessian.local_inds_by_size`, :attr:`~ArrowheadHessian.block_sizes`
and ``by_size=True``.  Classes of one size given separately are merged, and
classes without coordinates dropped.
"""
from __future__ import annotations

from typing import Any, NamedTuple, Tuple

import numpy as np
import scipy.linalg
import scipy.sparse

from refold.sensitivity._arrowhead_blocks import (
    _arrowhead_blocks, _as_index_array, _check_partition, _flat,
    _local_classes, _merge_classes)
from refold.sensitivity._arrowhead_factor import (
    _backward, _check_finite_blocks, _forward, factor_arrowhead)
from refold.sensitivity._hessian_checks import (
    _check_on_failure, _check_real_dtype, _eps_of)
from refold.sensitivity._solver_base import LinearSolver, _check_rhs
from refold.sensitivity.solvers import get_sparse_cholesky_solver

__all__ = ['ArrowheadHessian', 'ArrowheadSizeClass']


class ArrowheadSizeClass(NamedTuple):
    r"""The local blocks of one size of an :class:`ArrowheadHessian`.

    Attributes
    ----------
    local_inds : ndarray of int, shape (T_k, m_k)
        Positions of the locals of each block of this size.
    cross_blocks : ndarray, shape (T_k, g, m_k)
        :math:`C_t` of these blocks.
    local_blocks : ndarray, shape (T_k, m_k, m_k)
        :math:`L_t` of these blocks.
    """
    local_inds: np.ndarray
    cross_blocks: np.ndarray
    local_blocks: np.ndarray


def _is_class_list(value: Any) -> bool:
    """A list or tuple of 3-d stacks (one per size class)?"""
    return (isinstance(value, (list, tuple)) and len(value) > 0
            and all(np.ndim(v) == 3 for v in value))


def _checked_array(value: Any, key: str, ndim: int) -> np.ndarray:
    arr = np.asarray(value)
    _check_real_dtype(arr.dtype, key)
    if arr.ndim != ndim:
        raise ValueError(f"{key} must be {ndim}-d; got shape {arr.shape}")
    return arr


def _sizes_text(sizes) -> str:
    sizes = [str(m) for m in sizes]
    return sizes[0] if len(sizes) == 1 else \
        f"{', '.join(sizes[:-1])} and {sizes[-1]}"


class ArrowheadHessian:
    r"""A symmetric matrix with global/local (arrowhead) structure.

    Parameters
    ----------
    global_block : array_like, shape (g, g)
        :math:`G`, symmetric.
    cross_blocks : array_like, shape (T, g, m), or a list of such stacks
        :math:`C_t`, the coupling of the globals with group ``t``'s locals;
        for blocks of unequal sizes a list of ``(T_k, g, m_k)`` stacks, one
        per size class (see the module notes).
    local_blocks : array_like, shape (T, m, m), or a list of such stacks
        :math:`L_t`, symmetric; for blocks of unequal sizes a list of
        ``(T_k, m_k, m_k)`` stacks matching ``cross_blocks``.
    global_inds : array_like of int, shape (g,), optional
        Positions of the globals in the full vector (default ``arange(g)``).
    local_inds : array_like of int, shape (T, m), or a list, optional
        Positions of each group's locals (default ``g + arange(T m)`` row by
        row, class by class); for size classes a list of ``(T_k, m_k)``
        arrays, or a list of 1-d arrays, one per block.
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

    Blocks of sizes 1 and 2, given as one stack per size:

    >>> H2 = ArrowheadHessian(np.eye(1) * 3, [np.ones((2, 1, 1)),
    ...                                       np.ones((1, 1, 2))],
    ...                       [np.ones((2, 1, 1)) * 2, np.eye(2)[None] * 2])
    >>> H2.block_sizes, H2.n_groups, H2.dim
    ((1, 2), 3, 5)
    >>> np.allclose(H2.solve(np.ones(5)),
    ...             np.linalg.solve(H2.to_sparse().toarray(), np.ones(5)))
    True
    """

    def __init__(self, global_block: Any, cross_blocks: Any, local_blocks: Any,
                 global_inds: Any = None, local_inds: Any = None, *,
                 name: str = 'hessian'):
        G = _checked_array(global_block, 'global_block', 2)
        if _is_class_list(local_blocks):
            if not (isinstance(cross_blocks, (list, tuple))
                    and len(cross_blocks) == len(local_blocks)):
                raise ValueError(
                    f"cross_blocks must be a list of {len(local_blocks)} "
                    f"(T_k, g, m_k) stacks, one per entry of local_blocks; "
                    f"got {type(cross_blocks).__name__}")
            keys = [(f"cross_blocks[{k}]", f"local_blocks[{k}]")
                    for k in range(len(local_blocks))]
            pairs = list(zip(cross_blocks, local_blocks))
        else:
            keys, pairs = [('cross_blocks', 'local_blocks')], \
                [(cross_blocks, local_blocks)]
        Cs = [_checked_array(c, ck, 3) for (c, _), (ck, _) in zip(pairs, keys)]
        Ls = [_checked_array(v, lk, 3) for (_, v), (_, lk) in zip(pairs, keys)]
        g = G.shape[0]
        if G.shape != (g, g):
            raise ValueError(f"global_block must be square; got shape {G.shape}")
        for (ck, lk), C, L in zip(keys, Cs, Ls):
            T, m = L.shape[0], L.shape[1]
            if L.shape != (T, m, m):
                raise ValueError(f"{lk} must have shape (T, m, m); got {L.shape}")
            if C.shape != (T, g, m):
                raise ValueError(f"{ck} must have shape (T, g, m) = {(T, g, m)} "
                                 f"to match global_block {G.shape} and {lk} "
                                 f"{L.shape}; got {C.shape}")
        dim = g + sum(L.shape[0] * L.shape[1] for L in Ls)
        if dim == 0:
            raise ValueError("an ArrowheadHessian needs at least one coordinate")
        eps = max(_eps_of(a.dtype) for a in [G] + Cs + Ls)
        _check_finite_blocks(dict([('global_block', G)]
                                  + [(ck, C) for (ck, _), C in zip(keys, Cs)]
                                  + [(lk, L) for (_, lk), L in zip(keys, Ls)]))
        G = np.array(G, dtype=np.float64)
        Cs = [np.array(C, dtype=np.float64) for C in Cs]
        Ls = [np.array(L, dtype=np.float64) for L in Ls]
        shapes = [L.shape[:2] for L in Ls]
        if global_inds is None and local_inds is None:
            gi = np.arange(g)
            ends = np.cumsum([g] + [t * m for t, m in shapes])
            lis = [np.arange(a, b).reshape(t, m)
                   for a, b, (t, m) in zip(ends[:-1], ends[1:], shapes)]
            Cs, Ls, lis = _merge_classes(shapes, Cs, Ls, lis)
        else:
            gi = _as_index_array(
                np.arange(g) if global_inds is None else global_inds, 1,
                'global_inds')
            Cs, Ls = _merge_classes(shapes, Cs, Ls)
            want = [L.shape[:2] for L in Ls]
            if local_inds is None:
                ends = np.cumsum([g] + [t * m for t, m in want])
                lis = tuple(np.arange(a, b).reshape(t, m)
                            for a, b, (t, m) in zip(ends[:-1], ends[1:], want))
            else:
                lis = _local_classes(local_inds)
            got = [li.shape for li in lis]
            if gi.shape != (g,) or got != want:
                shown = (lambda x: x[0] if len(x) == 1 else x)
                raise ValueError(f"global_inds must have shape {(g,)} and local_inds "
                                 f"{shown(want)} to match the blocks; got "
                                 f"{gi.shape} and {shown(got)}")
            _check_partition(gi, _flat(lis), dim, name)
        self._set_blocks(G, list(Cs), list(Ls), gi, list(lis), name, eps)

    def _set_blocks(self, G: np.ndarray, Cs: list, Ls: list, gi: np.ndarray,
                    lis: list, name: str, eps: float) -> None:
        """Own the checked float64 blocks; check and enforce symmetry."""
        self._G, self._Cs, self._Ls = G, Cs, Ls
        self._gi, self._lis, self._name, self._eps = gi, lis, name, eps
        self._check_symmetry()
        self._G = 0.5 * (G + G.T)
        self._Ls = [0.5 * (L + L.transpose(0, 2, 1)) for L in Ls]
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
        local_inds : array_like of int, shape (T, m), or a list
            Row ``t`` holds the positions of group ``t``'s locals.  Together with
            ``global_inds`` every index in ``range(D)`` must appear once.  For
            blocks of unequal sizes: a list of ``(T_k, m_k)`` arrays, one per
            size, or a list of 1-d arrays, one per block (see the module notes).
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
        G, Cs, Ls, gi, lis, eps = _arrowhead_blocks(hessian, global_inds,
                                                    local_inds, name)
        Cs = [np.ascontiguousarray(C) for C in Cs]
        one = len(Cs) == 1
        _check_finite_blocks(dict(                  # duplicates may overflow
            [('global_block', G)]
            + [('cross_blocks' if one else f'cross_blocks[{k}]', C)
               for k, C in enumerate(Cs)]
            + [('local_blocks' if one else f'local_blocks[{k}]', L)
               for k, L in enumerate(Ls)]))
        out = cls.__new__(cls)
        # G and L symmetric to float64's sqrt(eps), as blocks given directly.
        out._set_blocks(G, Cs, Ls, gi, list(lis), name, _eps_of(np.float64))
        out._eps = eps
        return out

    def _check_symmetry(self) -> None:
        scale = max([max(-float(np.min(a)), float(np.max(a))) if a.size else 0.0
                     for a in [self._G] + self._Cs + self._Ls])
        tol = np.sqrt(self._eps) * scale
        name = self._name
        for block, inds in [(self._G[None], self._gi[None])] + list(
                zip(self._Ls, self._lis)):
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
    def _one_size(self, what: str, alternative: str) -> None:
        """Raise unless the local blocks have one size."""
        if len(self._Ls) > 1:
            raise ValueError(
                f"{what} needs local blocks of one size; this ArrowheadHessian "
                f"has blocks of sizes {_sizes_text(self.block_sizes)} (use "
                f"{alternative}, one entry per size)")

    @property
    def shape(self) -> tuple:
        """``(D, D)``."""
        return (self.dim, self.dim)

    @property
    def dim(self) -> int:
        """``D = g + T m`` (``g + sum_k T_k m_k``)."""
        return self._gi.size + sum(li.size for li in self._lis)

    @property
    def n_global(self) -> int:
        """``g``, the number of global coordinates."""
        return self._gi.size

    @property
    def n_groups(self) -> int:
        """``T``, the number of groups (of every size)."""
        return sum(li.shape[0] for li in self._lis)

    @property
    def n_local(self) -> int:
        """``m``, the number of local coordinates per group (one size only)."""
        self._one_size('n_local', 'block_sizes')
        return self._lis[0].shape[1]

    @property
    def block_sizes(self) -> Tuple[int, ...]:
        """The block size ``m_k`` of each size class, e.g. ``(2, 3)``."""
        return tuple(int(li.shape[1]) for li in self._lis)

    @property
    def global_inds(self) -> np.ndarray:
        """Positions of the globals (a copy)."""
        return self._gi.copy()

    @property
    def local_inds(self) -> np.ndarray:
        """Positions of each group's locals, shape (T, m) (a copy; one size)."""
        self._one_size('local_inds', 'local_inds_by_size')
        return self._lis[0].copy()

    @property
    def local_inds_by_size(self) -> Tuple[np.ndarray, ...]:
        """Positions of the locals, one ``(T_k, m_k)`` array per size class
        (copies): a ``local_inds`` that :meth:`from_sparse` takes."""
        return tuple(li.copy() for li in self._lis)

    @property
    def size_classes(self) -> Tuple[ArrowheadSizeClass, ...]:
        """The local blocks, one :class:`ArrowheadSizeClass` per size (copies)."""
        return tuple(ArrowheadSizeClass(li.copy(), C.copy(), L.copy())
                     for li, C, L in zip(self._lis, self._Cs, self._Ls))

    @property
    def global_block(self) -> np.ndarray:
        """:math:`G`, shape (g, g) (a copy)."""
        return self._G.copy()

    @property
    def cross_blocks(self) -> np.ndarray:
        """:math:`C_t`, shape (T, g, m) (a copy; one size)."""
        self._one_size('cross_blocks', 'size_classes')
        return self._Cs[0].copy()

    @property
    def local_blocks(self) -> np.ndarray:
        """:math:`L_t`, shape (T, m, m) (a copy; one size)."""
        self._one_size('local_blocks', 'size_classes')
        return self._Ls[0].copy()

    def __repr__(self) -> str:
        local = (f"n_local={self.n_local}" if len(self._Ls) == 1 else
                 f"block_sizes={self.block_sizes}")
        return (f"ArrowheadHessian(n_global={self.n_global}, n_groups="
                f"{self.n_groups}, {local})")

    def _shifted(self, shift: float) -> 'ArrowheadHessian':
        """``H + shift * I``, same structure (for damped Newton steps)."""
        return ArrowheadHessian(
            self._G + shift * np.eye(self.n_global), list(self._Cs),
            [L + shift * np.eye(L.shape[1]) for L in self._Ls], self._gi,
            list(self._lis), name=self._name)

    # --------------------------------------------------------- factorisation
    def _factor(self):
        """Factor once: batched Cholesky per size class, then Cholesky of S."""
        if self._fac is None:
            self._fac = factor_arrowhead(self._G, self._Cs, self._Ls, self._gi,
                                         self._lis, self._name, self._eps)
        return self._fac

    def _Vs(self) -> list:
        """:math:`L_t^{-1} C_t^T` per class, shape (T_k, m_k, g), cached."""
        fac = self._factor()
        for k, V in enumerate(fac['V']):
            if V is None:
                fac['V'][k] = _backward(fac['K'][k], fac['W'][k])
        return fac['V']

    def _s_solve(self, B: np.ndarray) -> np.ndarray:
        R = self._factor()['R']
        if R is None:
            return np.zeros((0,) + B.shape[1:])
        return scipy.linalg.cho_solve((R, True), B, check_finite=False)

    # ----------------------------------------------------------------- solves
    def _solve2d(self, B: np.ndarray) -> np.ndarray:
        fac = self._factor()
        g, k = self.n_global, B.shape[1]
        rg = B[self._gi]
        Ys = []
        for K, W, li in zip(fac['K'], fac['W'], self._lis):   # over the sizes
            Y = _forward(K, B[li]) if li.size else np.zeros(li.shape + (k,))
            Ys.append(Y)
            if li.size:
                rg = rg - W.reshape(li.size, g).T @ Y.reshape(li.size, k)
        xg = self._s_solve(rg)
        X = np.empty(B.shape)
        X[self._gi] = xg
        for K, W, li, Y in zip(fac['K'], fac['W'], self._lis, Ys):
            if li.size:
                Z = Y - np.einsum('tmg,gk->tmk', W, xg)
                X[li.ravel()] = _backward(K, Z).reshape(li.size, k)
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

        Notes
        -----
        ``solver.info`` holds ``n_global``, ``n_groups`` and ``n_local`` --
        for blocks of unequal sizes ``block_sizes`` in place of ``n_local``.
        """
        on_failure = _check_on_failure(on_failure)
        try:
            self._factor()
        except ValueError:
            if on_failure == 'raise':
                raise
            return get_sparse_cholesky_solver(self.to_sparse(), on_failure=on_failure,
                                              name=self._name)
        info = {'method': 'schur', 'n_global': self.n_global,
                'n_groups': self.n_groups}
        if len(self._Ls) == 1:
            info['n_local'] = self.n_local
        else:
            info['block_sizes'] = self.block_sizes
        return LinearSolver(self._solve2d, self.dim, 'arrowhead', info)

    # --------------------------------------------------------- inverse blocks
    def inverse_global_block(self) -> np.ndarray:
        r""":math:`(H^{-1})_{gg} = S^{-1}`, shape (g, g)."""
        out = self._s_solve(np.eye(self.n_global))
        return 0.5 * (out + out.T)

    def inverse_cross_blocks(self, *, by_size: bool = False):
        r""":math:`(H^{-1})_{g,t} = -S^{-1} C_t L_t^{-1}`, shape (T, g, m).

        With ``by_size=True``, a tuple with one ``(T_k, g, m_k)`` stack per
        size class (the only form for blocks of unequal sizes).
        """
        if not by_size:
            self._one_size('inverse_cross_blocks()', 'by_size=True')
        g = self.n_global
        out = []
        for V, li in zip(self._Vs(), self._lis):
            X = self._s_solve(V.reshape(li.size, g).T)          # (g, T m)
            out.append(np.ascontiguousarray(
                -X.reshape((g,) + li.shape).transpose(1, 0, 2)))
        return tuple(out) if by_size else out[0]

    def inverse_local_blocks(self, *, by_size: bool = False):
        r""":math:`(H^{-1})_{tt} = L_t^{-1} + L_t^{-1} C_t^T S^{-1} C_t L_t^{-1}`.

        Parameters
        ----------
        by_size : bool, keyword-only
            Return a tuple with one ``(T_k, m_k, m_k)`` stack per size class
            (the only form for blocks of unequal sizes).

        Returns
        -------
        ndarray, shape (T, m, m)
            The diagonal blocks of :math:`H^{-1}`, symmetric by construction.
        """
        if not by_size:
            self._one_size('inverse_local_blocks()', 'by_size=True')
        fac = self._factor()
        g = self.n_global
        out = []
        for K, V, li in zip(fac['K'], self._Vs(), self._lis):
            (T, m), n = li.shape, li.size
            Kinv = _forward(K, np.broadcast_to(np.eye(m), (T, m, m)))
            blocks = np.einsum('tki,tkj->tij', Kinv, Kinv)
            if g and n:
                Q = scipy.linalg.solve_triangular(
                    fac['R'], V.reshape(n, g).T, lower=True,
                    check_finite=False).reshape(g, T, m)
                blocks += np.einsum('gti,gtj->tij', Q, Q)
            out.append(blocks)
        return tuple(out) if by_size else out[0]

    def logdet(self) -> float:
        r""":math:`\log\det H = \sum_t \log\det L_t + \log\det S`."""
        fac = self._factor()
        total = sum(2.0 * np.sum(np.log(np.diagonal(K, axis1=1, axis2=2)))
                    for K in fac['K'])
        if fac['R'] is not None:
            total += 2.0 * np.sum(np.log(np.diag(fac['R'])))
        return float(total)

    # ------------------------------------------------------------ conversions
    def dot(self, v: Any) -> np.ndarray:
        r"""Return :math:`H v` for ``v`` of shape ``(D,)`` or ``(D, k)``."""
        v2, vector = _check_rhs(v, self.dim, 'v')
        vg = v2[self._gi]                                        # (g, k)
        out = np.empty(v2.shape)
        top = self._G @ vg
        for C, L, li in zip(self._Cs, self._Ls, self._lis):
            vl = v2[li]                                          # (T, m, k)
            top += np.einsum('tgm,tmk->gk', C, vl)
            if li.size:
                loc = (np.einsum('tgm,gk->tmk', C, vg)
                       + np.einsum('tij,tjk->tik', L, vl))
                out[li.ravel()] = loc.reshape(-1, v2.shape[1])
        out[self._gi] = top
        return out[:, 0] if vector else out

    def __matmul__(self, v: Any) -> np.ndarray:
        return self.dot(v)

    def to_sparse(self) -> scipy.sparse.csr_array:
        r"""The full matrix as a ``scipy.sparse.csr_array`` (for checks)."""
        gi, g = self._gi, self.n_global
        rg = np.broadcast_to(gi[:, None], (g, g))
        rows, cols, data = [rg.ravel()], [rg.T.ravel()], [self._G.ravel()]
        for C, L, li in zip(self._Cs, self._Ls, self._lis):
            (T, m) = li.shape
            rc = np.broadcast_to(gi[None, :, None], (T, g, m))
            cc = np.broadcast_to(li[:, None, :], (T, g, m))
            rl = np.broadcast_to(li[:, :, None], (T, m, m))
            cl = np.broadcast_to(li[:, None, :], (T, m, m))
            rows += [rc.ravel(), cc.ravel(), rl.ravel()]
            cols += [cc.ravel(), rc.ravel(), cl.ravel()]
            data += [C.ravel(), C.ravel(), L.ravel()]
        return scipy.sparse.csr_array(
            (np.concatenate(data), (np.concatenate(rows), np.concatenate(cols))),
            shape=self.shape)
