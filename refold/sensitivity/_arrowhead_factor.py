r"""The factorisation of an arrowhead matrix, size class by size class (private).

:class:`refold.sensitivity.arrowhead.ArrowheadHessian` keeps its local blocks
in *size classes*: class ``k`` holds the ``T_k`` blocks of size ``m_k`` as a
``(T_k, m_k, m_k)`` stack :math:`L^{(k)}`, with cross blocks
:math:`C^{(k)}` ``(T_k, g, m_k)``.  Each class is Cholesky-factored at once
(``np.linalg.cholesky`` on the stack, :math:`L^{(k)}_t = K_t K_t^\top`), its
triangular solves are batched over its groups (:func:`_forward`,
:func:`_backward`: a loop over the ``m_k`` rows, never over groups), and the
Schur complement sums the contributions of every class,

.. math::

    S = G - \sum_k \sum_t W^{(k)\top}_t W^{(k)}_t, \qquad
    W^{(k)}_t = K_t^{-1} C^{(k)\top}_t ,

so the Python loops run over the handful of distinct block sizes only.
Failures name the group (numbered class by class) or the Schur complement.
"""
from __future__ import annotations

from typing import List, Optional, Sequence

import numpy as np

from refold.sensitivity._factorisations import _dense_cholesky
from refold.sensitivity._hessian_checks import _singular_rcond

HINT = ("To solve anyway, use solver(on_failure='pinv') or "
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


def _locate(Ls: Sequence[np.ndarray], group: int):
    """``(k, t)``: the class and position of a group numbered class by class."""
    for k, L in enumerate(Ls):
        if group < L.shape[0]:
            return k, group
        group -= L.shape[0]
    raise IndexError(group)     # pragma: no cover - callers pass valid groups


def _check_diagonals(Ls, lis, name: str) -> None:
    """A nonpositive diagonal entry (the most negative, first) fails fast."""
    lows = [float(np.min(np.diagonal(L, axis1=1, axis2=2))) if L.size else
            np.inf for L in Ls]
    k = int(np.argmin(lows))
    if lows[k] > 0:
        return
    diag = np.diagonal(Ls[k], axis1=1, axis2=2)
    t, i = np.unravel_index(np.argmin(diag), diag.shape)
    group = sum(L.shape[0] for L in Ls[:k]) + int(t)
    lam = float(np.linalg.eigvalsh(Ls[k][t])[0])
    raise ValueError(
        f"{name} is not positive definite: the local block of group "
        f"{group} has diagonal entry {diag[t, i]:.6g} <= 0 at {name} index "
        f"{lis[k][t, i]} (smallest eigenvalue {lam:.6g}). {HINT}")


def _local_failure(Ls, lis, evs, name: str, thresh: float) -> Optional[str]:
    """Message for the first non-PD or near-singular local block, if any.

    ``evs[k]`` are the eigenvalues of class ``k``'s unit-diagonal scaled
    blocks, shape ``(T_k, m_k)``.
    """
    low = np.concatenate([ev[:, 0] for ev in evs])
    high = np.concatenate([ev[:, -1] for ev in evs])
    indefinite = low <= -thresh * high
    singular = low <= thresh * high
    if not singular.any():
        return None
    if indefinite.any():
        group = int(np.flatnonzero(indefinite)[0])
        k, t = _locate(Ls, group)
        lam = float(np.linalg.eigvalsh(Ls[k][t])[0])
        n = int(indefinite.sum())
        return (f"{name} is not positive definite: the local block of group "
                f"{group} ({name} indices {lis[k][t].tolist()}) has smallest "
                f"eigenvalue {lam:.6g} ({n} of {low.size} local blocks are "
                f"not positive definite). {HINT}")
    group = int(np.flatnonzero(singular)[0])
    k, t = _locate(Ls, group)
    cond = np.inf if low[group] <= 0 else high[group] / low[group]
    lam = float(np.linalg.eigvalsh(Ls[k][t])[0])
    return (f"{name} is numerically singular: the local block of group {group} "
            f"({name} indices {lis[k][t].tolist()}) has condition number "
            f"{cond:.3g} (unit-diagonal scaling; smallest eigenvalue "
            f"{lam:.6g}) above {1 / thresh:.3g} = 1/(1000 eps). {HINT}")


def factor_arrowhead(G: np.ndarray, Cs: Sequence[np.ndarray],
                     Ls: Sequence[np.ndarray], gi: np.ndarray,
                     lis: Sequence[np.ndarray], name: str, eps: float) -> dict:
    """``{'K': [K_k], 'W': [W_k], 'R': R or None, 'V': [None, ...]}``.

    Batched Cholesky of every class's local blocks, then the Cholesky factor
    ``R`` (lower) of the Schur complement; raises ``ValueError`` naming the
    group or the global block on failure.
    """
    thresh = _singular_rcond(eps)
    g = G.shape[0]
    present = [k for k, L in enumerate(Ls) if L.size]
    if present:
        _check_diagonals(Ls, lis, name)
        evs = []
        for L in Ls:                                 # a loop over the sizes
            if not L.size:
                evs.append(np.ones((0, 1)))
                continue
            d = np.sqrt(np.diagonal(L, axis1=1, axis2=2))
            evs.append(np.linalg.eigvalsh(L / (d[:, :, None] * d[:, None, :])))
        msg = _local_failure(Ls, lis, evs, name, thresh)
        if msg:
            raise ValueError(msg)
    Ks: List[np.ndarray] = []
    Ws: List[np.ndarray] = []
    S = G
    for C, L in zip(Cs, Ls):
        T, m = L.shape[0], L.shape[1]
        if not L.size:
            Ks.append(np.zeros((T, m, m)))
            Ws.append(np.zeros((T, m, g)))
            continue
        K = np.linalg.cholesky(L)
        W = _forward(K, C.transpose(0, 2, 1))        # K^-1 C^T (T, m, g)
        Wf = W.reshape(T * m, g)
        S = S - Wf.T @ Wf
        Ks.append(K)
        Ws.append(W)
    if present:
        S = 0.5 * (S + S.T)
    R = None
    if g:
        R, _, failure = _dense_cholesky(S, eps)
        if failure is not None:
            text = failure.message(
                f"{name}'s Schur complement S = G - sum_t C_t L_t^-1 C_t^T on "
                f"its global coordinates", eps,
                coord_names=lambda i: f"global coordinate {i} ({name} index "
                                      f"{gi[i]})", hint='')
            raise ValueError(f"{text} As every local block is positive "
                             f"definite, this is a property of {name}. {HINT}")
    return {'K': Ks, 'W': Ws, 'R': R, 'V': [None] * len(Ls)}
