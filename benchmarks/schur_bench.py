"""Schur-complement (arrowhead) blocks of H^-1 vs a general sparse factorisation.

A random SPD arrowhead Hessian at the Criteo shape (T = 5000 groups x m = 2
locals + g = 14 globals, D = 10,014) is built as a scipy.sparse matrix.  The
blocks that linear-response covariances need -- (H^-1)_gg and every group's
(H^-1)_tt -- are computed

* by refold: ``ArrowheadHessian.from_sparse`` (block extraction and checks
  included) then ``inverse_global_block`` and ``inverse_local_blocks``;
* by the floor a general solver offers: ``scipy.sparse.linalg.splu`` of the
  CSC matrix, then solves for the needed columns (all g global columns and all
  T m local columns, in chunks), from which the blocks are read off.

Run with ``OPENBLAS_NUM_THREADS=1 python benchmarks/schur_bench.py``.
"""
import os
import sys

import numpy as np
import scipy.sparse
import scipy.sparse.linalg

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _common import best_time, random_arrowhead, text_table  # noqa: E402
from refold.sensitivity.arrowhead import ArrowheadHessian  # noqa: E402


def schur_lr_blocks(h, gi, li):
    A = ArrowheadHessian.from_sparse(h, gi, li)
    return A.inverse_global_block(), A.inverse_local_blocks()


def schur_global_block(h, gi, li):
    return ArrowheadHessian.from_sparse(h, gi, li).inverse_global_block()


def schur_solve(h, gi, li, b):
    return ArrowheadHessian.from_sparse(h, gi, li).solve(b)


def splu_lr_blocks(h, gi, li, chunk=1000):
    """General sparse LU, then solve for every global and local column."""
    lu = scipy.sparse.linalg.splu(h.tocsc())
    dim = h.shape[0]
    T, m = li.shape
    hgg = lu.solve(np.eye(dim)[:, gi])[gi]
    group = np.empty(dim, dtype=int)
    slot = np.empty(dim, dtype=int)
    group[li] = np.arange(T)[:, None]
    slot[li] = np.arange(m)[None, :]
    htt = np.empty((T, m, m))
    cols = li.ravel()
    for start in range(0, cols.size, chunk):
        c = cols[start:start + chunk]
        rhs = np.zeros((dim, c.size))
        rhs[c, np.arange(c.size)] = 1.0
        x = lu.solve(rhs)                                  # (dim, chunk)
        t, j = group[c], slot[c]
        htt[t, :, j] = x[li[t], np.arange(c.size)[:, None]]
    return hgg, htt


def splu_global_block(h, gi, li):
    lu = scipy.sparse.linalg.splu(h.tocsc())
    return lu.solve(np.eye(h.shape[0])[:, gi])[gi]


def splu_solve(h, gi, li, b):
    return scipy.sparse.linalg.splu(h.tocsc()).solve(b)


def run(T=5000, m=2, g=14, seed=0, repeats=20, floor_repeats=2):
    """Time refold's Schur blocks against splu; return rows of the table."""
    h, gi, li = random_arrowhead(T, m, g, seed)
    b = np.random.default_rng(seed + 1).normal(size=h.shape[0])
    rows = []
    tasks = [
        ('(H^-1)_gg and all (H^-1)_tt (LR blocks)',
         lambda: schur_lr_blocks(h, gi, li), lambda: splu_lr_blocks(h, gi, li)),
        ('(H^-1)_gg alone', lambda: schur_global_block(h, gi, li),
         lambda: splu_global_block(h, gi, li)),
        ('one solve H^-1 b (factorisation included)',
         lambda: schur_solve(h, gi, li, b), lambda: splu_solve(h, gi, li, b)),
    ]
    for label, ours, floor in tasks:
        t_ours, out_ours = best_time(ours, repeats)
        t_floor, out_floor = best_time(floor, floor_repeats)
        if isinstance(out_ours, tuple):
            diff = max(float(np.max(np.abs(a - c)))
                       for a, c in zip(out_ours, out_floor))
        else:
            diff = float(np.max(np.abs(out_ours - out_floor)))
        rows.append({'task': label, 'refold_s': t_ours, 'splu_s': t_floor,
                     'ratio': t_floor / t_ours, 'max_abs_diff': diff})
    return rows


def main(argv=None):
    T, m, g = 5000, 2, 14
    print(f"Arrowhead Hessian: T = {T} groups x m = {m} locals + g = {g} globals "
          f"(D = {g + T * m}), random SPD, scipy.sparse")
    rows = run(T, m, g)
    head = ("task", "refold Schur (s)", "scipy splu (s)", "ratio",
            "max |diff|")
    print(text_table(head, [(r['task'], f"{r['refold_s']:.5f}",
                             f"{r['splu_s']:.4f}", f"{r['ratio']:.1f}x",
                             f"{r['max_abs_diff']:.2e}") for r in rows]))
    ok = rows[0]['ratio'] >= 100
    print(f"goal: LR blocks >= 100x faster than splu: "
          f"{'met' if ok else 'NOT met'} ({rows[0]['ratio']:.0f}x)")
    return 0


if __name__ == '__main__':
    sys.exit(main(sys.argv[1:]))
